//! `ckpt --interval` goes on after a restart.
//!
//! The image records the period and the signal of the periodic checkpoints
//! (`ProcessState::interval_ms`). As the launcher did, `restart` starts a
//! ticker that is not the program's child: it takes a pidfd of itself (the
//! program's pid from now on), forks, and the child forks the ticker and
//! exits at once (reaped here), so the ticker is reparented away. This
//! happens before the point of no return, while the process is still only
//! the loader: the ticker is a copy of the loader, never of the program.
//!
//! The ticker itself is the launcher's: `ckpt_sys::ticker::run`.

use ckpt_image::Meta;
use ckpt_sys::{self as sys, msg::Line, Errno};
use core::fmt::Write;

/// Starts the ticker if the image asks for one.
pub fn start(meta: &Meta) {
    let p = &meta.header.process;
    let (period_ms, signal) = (p.interval_ms, p.interval_signal as i32);
    if period_ms == 0 || !(1..=64).contains(&signal) {
        return;
    }
    let pid = sys::getpid();
    let Ok(pidfd) = sys::pidfd_open(pid) else {
        warn("cannot open a pidfd of this process", None);
        return;
    };
    // SAFETY: the loader is single-threaded here; the child only forks
    // again and exits, the grandchild runs `tick` and exits (neither
    // returns, so neither drops, and closes, what the loader owns).
    match unsafe { sys::fork() } {
        Ok(0) => {
            // SAFETY: as above.
            if let Ok(0) = unsafe { sys::fork() } {
                sys::ticker::run(&pidfd, pid, signal, period_ms * 1_000_000);
            }
            sys::exit_group(0)
        }
        Ok(child) => {
            let _ = sys::wait4(child);
        }
        Err(e) => warn("cannot start the ticker", Some(e)),
    }
}

fn warn(what: &str, e: Option<Errno>) {
    let mut l = Line::new();
    let _ = write!(l, "restart: warning: {what}");
    if let Some(e) = e {
        let _ = write!(l, ": {} ({})", sys::errno_text(e), sys::errno_name(e));
    }
    l.push(b"; periodic checkpoints (--interval) stop here");
    crate::fail::warn(&mut l);
}
