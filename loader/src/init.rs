//! The new pid namespace's init (pid 1): a copy of the loader that makes
//! the namespace usable, creates the program's process at its pid, then
//! only forwards signals, reaps, and reports.
//!
//! ```text
//!  wait for the outer's "go" (the id maps are written)
//!  ─ / private (recursively) ─ a fresh /proc ─ ns_last_pid above every tid
//!  ─ clone3(set_tid = pid) ──► the program's process: run returns there
//!  ─ report Ready ─ loop: a signal sent by a process → the program;
//!                         SIGCHLD → reap; the program stopped → report;
//!                         the program ended → report its status, exit
//! ```
//!
//! Signals the kernel sends to the whole process group (the terminal's
//! Ctrl-C, Ctrl-Z, window size changes) reach the program directly, as
//! they reach init: init does not forward those (`si_code` > 0), or the
//! program would see each twice. When init exits, the kernel kills
//! whatever else is left in the namespace; so if the program, stopped at a
//! checkpoint, left a lock keeper (preload/src/keeper.rs), init outlives
//! restart: it ends every other process left, as its own end would have,
//! and waits for the keepers (released by a restart, or killed) before it
//! exits.

use core::fmt::Write;

use ckpt_image::Meta;
use ckpt_sys::{self as sys, msg::Line, ns};

use crate::pidns::{Pipes, Report};

const SIGCHLD: i32 = 17;
const SIGKILL: u64 = 9;

/// Init's life. Returns only in the program's process (at pid `pid`).
pub fn run(meta: &Meta, pid: u32, pipes: Pipes) {
    // Init reads `go` and writes `report`; the outer's ends closed here (a
    // `_` pattern would leave them open in `pipes`: init never returns).
    let Pipes { go: (go, outers_go), report: (outers_report, report_end) } = pipes;
    drop((outers_go, outers_report));
    let report = report_end.as_raw();
    // If the outer process dies, so does the namespace (as the program
    // would have died with restart).
    // SAFETY: PR_SET_PDEATHSIG takes a plain value.
    let _ = unsafe { sys::prctl(sys::PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) };
    let mut byte = [0u8; 1];
    if sys::read(&go, &mut byte) != Ok(1) {
        sys::exit_group(1); // the outer gave up (it says why)
    }
    let fail = |stage: u32, e: sys::Errno| -> ! {
        Report::Failed(stage, e.into_raw()).send(report);
        sys::exit_group(1)
    };
    if let Err(e) = ns::mount(None, c"/", None, ns::MS_REC | ns::MS_PRIVATE) {
        fail(0, e)
    }
    let proc_flags = ns::MS_NOSUID | ns::MS_NODEV | ns::MS_NOEXEC;
    if let Err(e) = ns::mount(Some(c"proc"), c"/proc", Some(c"proc"), proc_flags) {
        fail(1, e)
    }
    // New processes (the ticker, the program's own children) take pids
    // above every tid of the image, which stay free for its threads.
    let top = meta.threads().map(|t| t.tid).max().unwrap_or(pid).max(pid);
    let mut l = Line::new();
    let _ = write!(l, "{top}");
    let _ = ns::write_file(c"/proc/sys/kernel/ns_last_pid", l.as_bytes());
    // SAFETY: single-threaded; the child goes on as the loader.
    match unsafe { ns::clone_process(0, pid) } {
        Ok(0) => return, // the program's process: both ends dropped (closed)
        Ok(_) => {}
        Err(e) => fail(2, e),
    }
    drop(go);
    Report::Ready.send(report);
    serve(pid as i32, report)
}

/// Forwards signals to the program, reaps every child, reports the
/// program's stops and its end.
fn serve(program: i32, report: i32) -> ! {
    let Ok(sfd) = ns::signalfd(!0) else {
        // Without a signalfd init can still reap: it just waits.
        loop {
            reap(program, report, 0);
        }
    };
    loop {
        match ns::read_signal(&sfd) {
            Ok(si) if si.signo == SIGCHLD => reap(program, report, ns::WNOHANG),
            // Sent by a process (kill, sigqueue, tgkill) other than the
            // program itself: for the program.
            Ok(si) if si.code <= 0 && si.pid != program as u32 => {
                let _ = ns::forward(program, &si);
            }
            _ => {}
        }
    }
}

/// Reaps every child that changed state (`options`: WNOHANG, or 0 to wait).
fn reap(program: i32, report: i32, options: i32) {
    while let Ok(Some((pid, status))) = ns::wait_any(-1, options | ns::WUNTRACED | ns::WALL) {
        if pid != program {
            continue; // an orphan the namespace handed to init
        }
        if status & 0xff == 0x7f {
            Report::Stopped((status >> 8) & 0xff).send(report);
        } else {
            let keepers = each_other_process(|_, _| {});
            if keepers {
                // The outer process ends now; this one stays for the keepers.
                // SAFETY: PR_SET_PDEATHSIG takes a plain value (0: none).
                let _ = unsafe { sys::prctl(sys::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
            }
            Report::Ended(status, keepers).send(report);
            if keepers {
                outlive_for_keepers();
            }
            sys::exit_group(0);
        }
        if options == 0 {
            return;
        }
    }
}

/// After the program's end: ends every process of the namespace but the
/// lock keepers, reaps, and returns when no child is left.
fn outlive_for_keepers() {
    // Restart's stdin, stdout and stderr (and the report pipe) are not
    // held open by init any longer than by the program.
    let _ = sys::close_range(0, u32::MAX, 0);
    loop {
        each_other_process(|pid, keeper| {
            if !keeper {
                let _ = sys::kill(pid, SIGKILL as i32);
            }
        });
        if ns::wait_any(-1, ns::WALL).is_err() {
            return; // ECHILD: the keepers are gone
        }
    }
}

/// Calls `each(pid, is_keeper)` for every process of the namespace but
/// init; whether any is a lock keeper (named `ckpt-locks`).
fn each_other_process(mut each: impl FnMut(i32, bool)) -> bool {
    let Ok(dir) = sys::open(c"/proc", sys::O_RDONLY | sys::O_DIRECTORY | sys::O_CLOEXEC) else { return false };
    let mut any = false;
    let mut dents = [0u8; 4096];
    while let Ok(n @ 1..) = sys::getdents64(&dir, &mut dents) {
        for name in sys::dirent_names(&dents[..n]) {
            let Some(pid) = core::str::from_utf8(name).ok().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if pid == 1 {
                continue;
            }
            let mut l = Line::new();
            let _ = write!(l, "/proc/{pid}/comm\0");
            let mut comm = [0u8; 32];
            let keeper = core::ffi::CStr::from_bytes_with_nul(l.as_bytes())
                .ok()
                .and_then(|path| sys::open(path, sys::O_RDONLY | sys::O_CLOEXEC).ok())
                .is_some_and(|fd| {
                    let got = sys::read(&fd, &mut comm);
                    let name = ckpt_sys::locks::KEEPER_NAME.to_bytes();
                    got.is_ok_and(|n| comm[..n].strip_suffix(b"\n") == Some(name))
                });
            any |= keeper;
            each(pid, keeper);
        }
    }
    drop(dir);
    any
}
