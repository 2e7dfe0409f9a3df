//! The ticker of `ckpt --interval`, one implementation for the launcher
//! (`ckpt`) and for `restart`, which starts it again from what the image
//! records.
//!
//! Each starts it the same way: a pidfd of itself (the program's pid from
//! then on) taken before a double fork, so the ticker is reparented away and
//! is neither a thread nor a child of the program; the grandchild calls
//! [`run`]. From then on it sends the checkpoint signal through the pidfd,
//! so it can never signal a process that took over the pid, on a schedule
//! that does not drift (period after period from the start, a missed tick
//! not made up), only when the program catches the signal and does not
//! already have it pending; and it exits as soon as the program does.

use crate::{self as sys, msg::Line, Errno};
use core::fmt::Write;

/// The descriptor the pidfd is moved to; every other one is closed.
const FD: i32 = 3;

/// The ticker's life: `pidfd` refers to process `pid`; every `period_ns`,
/// `signal` to it. Never returns.
pub fn run(pidfd: impl sys::AsFd, pid: i32, signal: i32, period_ns: u64) -> ! {
    let _ = sys::setsid();
    // SAFETY: PR_SET_NAME reads a NUL-terminated name, a static string.
    let _ = unsafe { sys::prctl(sys::PR_SET_NAME, c"ckpt-ticker".as_ptr() as u64, 0, 0, 0) };
    let _ = sys::chdir(c"/");
    // Keep the pidfd only: holding the program's stdout or stderr open would
    // keep a reader of its pipes waiting after it ended.
    if pidfd.raw() != FD {
        let _ = sys::dup3(&pidfd, FD, 0);
    }
    let low = sys::close_range(0, (FD - 1) as u32, 0);
    let high = sys::close_range((FD + 1) as u32, u32::MAX, 0);
    if low.is_err() || high.is_err() {
        // Before Linux 5.9: one by one.
        (0..1 << 16).filter(|&fd| fd != FD).for_each(sys::close);
    }
    for _ in 0..3 {
        // Standard input, output and error from here on: kept open.
        let _ = sys::open(c"/dev/null", sys::O_RDWR).map(sys::OwnedFd::into_raw);
    }
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, 0);
    let mut path = [0u8; 32];
    let mut l = Line::new();
    let _ = write!(l, "/proc/{pid}/status");
    let n = l.as_bytes().len().min(path.len() - 1);
    path[..n].copy_from_slice(&l.as_bytes()[..n]);
    let status = core::ffi::CStr::from_bytes_until_nul(&path).unwrap_or(c"/proc/self/status");
    let mut next = sys::clock_ns(sys::CLOCK_MONOTONIC) + period_ns;
    loop {
        let now = sys::clock_ns(sys::CLOCK_MONOTONIC);
        if now < next {
            match sys::poll_readable(FD, next - now) {
                Ok(true) => break, // the program ended
                Ok(false) | Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if ready(status, signal) && sys::pidfd_send_signal(FD, signal) == Err(Errno::ESRCH) {
            break;
        }
        next += period_ns;
        if next <= now {
            next = now + period_ns; // missed ticks are not made up
        }
    }
    sys::exit_group(0)
}

/// Whether to signal now: the program catches the signal (before libckpt.so
/// arms it, or before a restart completes, the signal would kill it) and
/// does not already have it pending (a checkpoint slower than the period).
/// When the status cannot be read, no: a tick is skipped, never the program
/// killed.
fn ready(status: &core::ffi::CStr, signal: i32) -> bool {
    let bit = 1u64 << (signal - 1);
    let [caught, pending] = sys::status::read_hex(status, [b"SigCgt", b"ShdPnd"]);
    caught.is_some_and(|m| m & bit != 0) && pending.is_none_or(|m| m & bit == 0)
}
