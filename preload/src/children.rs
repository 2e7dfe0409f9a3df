//! The program's children at a checkpoint.
//!
//! Only the process ckpt runs is in the image. A child it started and that
//! is still running (a shell's `sh -c …`, a `$(…)` in flight) or that has
//! exited and not been waited for is gone after a restart: the program's
//! `wait` finds nothing, and its exit status and output are lost. Each one
//! is named on stderr at the checkpoint (pid and command line); with
//! `--strict` the checkpoint is refused instead.
//!
//! Children are found by their parent pid in `/proc/PID/stat` (the kernel's
//! `/proc/PID/task/TID/children` needs `CONFIG_PROC_CHILDREN`, which not
//! every kernel has): one pass over `/proc`, raw system calls only.

use core::fmt::Write as _;

use ckpt_sys as sys;

use crate::msg::Line;
use crate::procfs;

/// A child of this process found in `/proc`.
#[derive(Clone, Copy)]
pub struct Child {
    pub pid: u32,
    /// It has exited and waits to be reaped (state Z).
    pub exited: bool,
}

/// Calls `each` for every child of this process; returns how many there
/// are. `buf` is scratch space (at least 4 KiB).
pub fn each(buf: &mut [u8], mut each: impl FnMut(Child, &mut [u8])) -> usize {
    let me = sys::getpid() as u64;
    let Ok(mut dir) = procfs::Tasks::processes() else { return 0 };
    let (dents, rest) = buf.split_at_mut(2048);
    let mut pids = [0u32; 64];
    let mut found = 0;
    while let Ok(n) = dir.next_batch(dents, &mut pids) {
        if n == 0 {
            break;
        }
        for &pid in &pids[..n] {
            if let Some((ppid, state)) = parent_and_state(pid, rest) {
                if ppid == me {
                    found += 1;
                    each(Child { pid, exited: state == b'Z' }, rest);
                }
            }
        }
    }
    found
}

/// Field 4 (ppid) and field 3 (state) of /proc/PID/stat.
pub fn parent_and_state(pid: u32, buf: &mut [u8]) -> Option<(u64, u8)> {
    let n = read_proc(pid, "stat", buf)?;
    let text = &buf[..n];
    let close = text.iter().rposition(|&c| c == b')')?;
    let mut fields = text[close + 1..].split(|&c| c == b' ').filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let ppid = fields.next()?.iter().try_fold(0u64, |a, &c| c.is_ascii_digit().then(|| a * 10 + (c - b'0') as u64))?;
    Some((ppid, state))
}

/// Reads /proc/PID/NAME into `buf` (truncated to it).
fn read_proc(pid: u32, name: &str, buf: &mut [u8]) -> Option<usize> {
    let mut path = Line::new();
    let _ = write!(path, "/proc/{pid}/{name}\0");
    let p = core::ffi::CStr::from_bytes_until_nul(path.as_bytes()).ok()?;
    let fd = sys::open(p, sys::O_RDONLY).ok()?;
    sys::read(fd, buf).ok()
}

/// Writes "PID (command line)" of `child` to `l`: at most 120 bytes of the
/// command, NULs as spaces, control characters escaped.
pub fn describe(l: &mut Line, child: Child, buf: &mut [u8]) {
    let _ = write!(l, "{} (", child.pid);
    let n = read_proc(child.pid, "cmdline", buf).unwrap_or(0);
    let cmd = &buf[..n];
    let cmd = cmd.strip_suffix(b"\0").unwrap_or(cmd);
    for &c in cmd.iter().take(120) {
        if c == 0 {
            l.push(b" ");
        } else if (b' '..=b'~').contains(&c) {
            l.push(&[c]);
        } else {
            let _ = write!(l, "\\x{c:02x}");
        }
    }
    if cmd.len() > 120 {
        l.push(b"...");
    }
    if cmd.is_empty() {
        l.push(b"?");
    }
    l.push(b")");
}

/// Names each child on stderr, one line each (not with `--strict`, which
/// refuses the checkpoint with one line instead: [`first`]). Returns how
/// many there are.
pub fn report(strict: bool, buf: &mut [u8]) -> usize {
    each(buf, |child, buf| {
        if strict {
            return;
        }
        let mut l = Line::new();
        l.push(b"ckpt: warning: child ");
        describe(&mut l, child, buf);
        l.push(if child.exited {
            b" has exited and was not waited for: the image does not hold it, and after a restart the program will not find its status"
        } else {
            b" is running: the image does not hold it, and after a restart the program will not find it"
        });
        l.emit();
    })
}

/// The first child found, for the `--strict` refusal.
pub fn first(buf: &mut [u8]) -> Option<Child> {
    let mut first = None;
    each(buf, |c, _| {
        first.get_or_insert(c);
    });
    first
}
