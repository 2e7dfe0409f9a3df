//! Exact pids and tids, unprivileged: the namespaces of a restart.
//!
//! A program's pid and tids can be chosen (`clone3` with `set_tid`) by
//! whoever holds `CAP_CHECKPOINT_RESTORE` in the user namespace that owns
//! the pid namespace. So `restart`, once the image is validated, makes
//! those namespaces itself (root, who holds CAP_SYS_ADMIN already, only the
//! pid and mount namespaces; anyone else a user namespace too, which owns
//! them):
//!
//! ```text
//!  host pid namespace           │ new user + pid + mount namespace
//!                               │
//!  restart (the outer process) ─┼─► init, pid 1 (init.rs)
//!    writes init's uid_map and  │     mounts a fresh /proc, then
//!    gid_map (own ids only),    │     clone3(set_tid = image pid) ─► the program's
//!    then forwards signals and  │     forwards signals, reaps,       process: the loader
//!    mirrors the end (outer.rs) │     reports the program's end      goes on here, threads
//!                               │                                     at their own tids
//! ```
//!
//! [`enter`] returns in the program's process (at its pid), and never in
//! the outer process or in init. Where the namespaces cannot be made (user
//! namespaces disabled or filtered, an image whose pid is 1), nothing has
//! changed yet: restart goes on as before, in its own process, with new
//! pids and tids, and says so in one line (or, with `--exact-pids`, refuses).

use core::fmt::Write;

use ckpt_image::Meta;
use ckpt_sys::{self as sys, msg::Line, ns, Errno, OwnedFd};

use crate::args::Options;
use crate::fail::{self, Fail};

/// How the program gets its pid and tids.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pids {
    /// Its own, in a pid namespace of its own (this process has them).
    Exact,
    /// New ones: restart's pid, new tids (the fallback).
    New,
}

/// Why the namespaces could not be made.
pub struct Why(&'static str, Option<Errno>);

impl Why {
    fn say(&self, l: &mut Line) {
        l.push(self.0.as_bytes());
        if let Some(e) = self.1 {
            let _ = write!(l, ": {} ({})", sys::errno_text(e), sys::errno_name(e));
        }
    }
}

/// Where init's setup failed, as its report names it.
pub const STAGES: [&str; 4] = [
    "cannot make the new mounts private",
    "cannot mount a fresh /proc in the new namespace",
    "cannot create the program's process at its pid (clone3 set_tid)",
    "the new namespace's init ended",
];

/// What init reports to the outer process: one record each.
#[derive(Clone, Copy)]
pub enum Report {
    /// The program's process exists, at its pid.
    Ready,
    /// The setup failed at `STAGES[stage]`, with errno.
    Failed(u32, i32),
    /// The program stopped, by this signal.
    Stopped(i32),
    /// The program ended: its wait status, and whether init stays for the
    /// lock keepers it left (init.rs).
    Ended(i32, bool),
}

impl Report {
    pub fn send(self, fd: i32) {
        let rec: [u32; 3] = match self {
            Report::Ready => [1, 0, 0],
            Report::Failed(stage, e) => [2, stage, e as u32],
            Report::Stopped(sig) => [3, sig as u32, 0],
            Report::Ended(status, stays) => [4, status as u32, stays as u32],
        };
        let mut b = [0u8; 12];
        for (i, w) in rec.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        // A pipe write of 12 bytes is atomic; if the outer is gone, no one reads.
        let _ = sys::write_all(fd, &b);
    }

    /// Reads one record; None at the end of the pipe (init is gone).
    pub fn receive(fd: i32) -> Option<Report> {
        let mut b = [0u8; 12];
        let mut n = 0;
        while n < b.len() {
            match sys::read(fd, &mut b[n..]) {
                Ok(0) => return None,
                Ok(k) => n += k,
                Err(Errno::EINTR) => continue,
                Err(_) => return None,
            }
        }
        let w = |i: usize| u32::from_ne_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
        match w(0) {
            1 => Some(Report::Ready),
            2 => Some(Report::Failed(w(1), w(2) as i32)),
            3 => Some(Report::Stopped(w(1) as i32)),
            4 => Some(Report::Ended(w(1) as i32, w(2) != 0)),
            _ => None,
        }
    }
}

/// The pipes between the outer process and init: `go` (outer to init: the
/// id maps are written) and `report` (init to outer), each (read end,
/// write end). Made before the clone: each process takes the pair apart
/// and drops (closes) the ends it does not use.
pub struct Pipes {
    pub go: (OwnedFd, OwnedFd),
    pub report: (OwnedFd, OwnedFd),
}

/// Decides how the program gets its pids, and in namespace mode makes the
/// namespaces: returns in the program's process only. Called once the
/// image is validated, before anything else is changed.
pub fn enter(meta: &Meta, opts: &Options) -> Result<Pids, Fail> {
    if opts.new_pids {
        return Ok(Pids::New);
    }
    let why = match namespaces(meta, opts) {
        Ok(()) => return Ok(Pids::Exact),
        Err(why) => why,
    };
    let mut l = Line::new();
    if opts.exact_pids {
        l.push(b"cannot restore the exact pids (--exact-pids): ");
        why.say(&mut l);
        return Err(fail::composed(&l));
    }
    let _ = write!(l, "restart: notice: the program's pid and thread ids changed (pid {} now): ", sys::getpid());
    why.say(&mut l);
    fail::warn(&mut l);
    Ok(Pids::New)
}

/// The namespaces, init, and the program's process at its pid; Ok in the
/// program's process only. An error leaves this process as it was.
fn namespaces(meta: &Meta, opts: &Options) -> Result<(), Why> {
    let pid = meta.header.pid;
    if pid == 1 || meta.threads().any(|t| t.tid == 1) {
        return Err(Why("the image's pid or a thread id is 1, which is the new namespace's init", None));
    }
    let pipe = || sys::pipe2(sys::O_CLOEXEC).map_err(|e| Why("cannot create a pipe", Some(e)));
    let pipes = Pipes { go: pipe()?, report: pipe()? };
    // Every signal blocked from here: init and the outer process take them
    // from a signalfd; the program's process gets `mask` back.
    let mask = sys::rt_sigprocmask(sys::SIG_SETMASK, !0).unwrap_or(0);
    // Privileged (root): a pid and a mount namespace of the caller's own
    // user namespace suffice, and the program keeps all it had (its
    // capabilities over the machine, its exemption from per-user limits).
    // Anyone else: a user namespace of their own, which owns the others.
    let user_ns = !ns::has_capability(ns::CAP_SYS_ADMIN);
    let flags = if user_ns { ns::CLONE_NEWUSER } else { 0 } | ns::CLONE_NEWPID | ns::CLONE_NEWNS;
    // SAFETY: the loader is single-threaded here; the child is init.
    let init = match unsafe { ns::clone_process(flags, 0) } {
        Ok(0) => {
            USER_NS.store(user_ns, core::sync::atomic::Ordering::SeqCst);
            // Returns in the program's process, every end closed.
            crate::init::run(meta, pid, pipes);
            let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, mask);
            if opts.verbose {
                let mut l = Line::new();
                let user = if user_ns { " (in a user namespace of the caller's)" } else { "" };
                let _ =
                    write!(l, "restart: pid {pid} and the thread ids restored, in a new pid and mount namespace{user}");
                fail::warn(&mut l);
            }
            return Ok(());
        }
        Ok(init) => init,
        Err(e) => {
            let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, mask);
            return Err(Why("cannot create a user and pid namespace", Some(e)));
        }
    };
    // The outer process: writes `go`, reads `report`; init's ends closed
    // here (a `_` pattern would leave them open in `pipes`).
    let Pipes { go: (inits_go, go), report: (report, inits_report) } = pipes;
    drop((inits_go, inits_report));
    let failed = |why: Why| {
        let _ = sys::kill(init, 9);
        let _ = sys::wait4(init);
        let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, mask);
        Err(why)
    };
    if let Err(e) = if user_ns { map_ids(init) } else { Ok(()) } {
        return failed(Why("cannot map the user and group ids in the new user namespace", Some(e)));
    }
    if let Err(e) = sys::write_all(&go, b"g") {
        return failed(Why("cannot start the new namespace's init", Some(e)));
    }
    match Report::receive(report.as_raw()) {
        Some(Report::Ready) => {
            drop(go);
            crate::outer::run(init, report.as_raw(), meta.header.process.interval_signal as i32)
        }
        Some(Report::Failed(stage, e)) => {
            let what = STAGES.get(stage as usize).copied().unwrap_or(STAGES[3]);
            failed(Why(what, Some(Errno::new(e))))
        }
        _ => failed(Why(STAGES[3], None)),
    }
}

/// Whether the program's process is in a user namespace restart created
/// (set in that process only).
static USER_NS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether restart created a user namespace for the program: it then holds
/// every capability there, which an ordinary user's program never had.
pub fn in_user_namespace() -> bool {
    USER_NS.load(core::sync::atomic::Ordering::SeqCst)
}

/// Maps init's user and group ids to the caller's own (the only mapping an
/// unprivileged user may write); `setgroups` is denied first, as the kernel
/// requires for an unprivileged gid map.
fn map_ids(init: i32) -> Result<(), Errno> {
    let file = |name: &str, text: &[u8]| {
        let mut path = [0u8; 64];
        let mut l = Line::new();
        let _ = write!(l, "/proc/{init}/{name}");
        let n = l.as_bytes().len().min(path.len() - 1);
        path[..n].copy_from_slice(&l.as_bytes()[..n]);
        let path = core::ffi::CStr::from_bytes_until_nul(&path).map_err(|_| Errno::EINVAL)?;
        ns::write_file(path, text)
    };
    let map = |id: u32| {
        let mut l = Line::new();
        let _ = writeln!(l, "{id} {id} 1");
        l
    };
    file("setgroups", b"deny")?;
    file("uid_map", map(sys::geteuid()).as_bytes())?;
    file("gid_map", map(ns::getegid()).as_bytes())
}
