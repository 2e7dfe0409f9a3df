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
pub fn run(pidfd: i32, pid: i32, signal: i32, period_ns: u64) -> ! {
    let _ = sys::setsid();
    // SAFETY: PR_SET_NAME reads a NUL-terminated name, a static string.
    let _ = unsafe { sys::prctl(sys::PR_SET_NAME, c"ckpt-ticker".as_ptr() as u64, 0, 0, 0) };
    let _ = sys::chdir(c"/");
    // Keep the pidfd only: holding the program's stdout or stderr open would
    // keep a reader of its pipes waiting after it ended.
    if pidfd != FD {
        let _ = sys::dup3(pidfd, FD, 0);
    }
    let low = sys::close_range(0, (FD - 1) as u32, 0);
    let high = sys::close_range((FD + 1) as u32, u32::MAX, 0);
    if low.is_err() || high.is_err() {
        // Before Linux 5.9: one by one.
        (0..1 << 16).filter(|&fd| fd != FD).for_each(sys::close);
    }
    for _ in 0..3 {
        let _ = sys::open(c"/dev/null", sys::O_RDWR);
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
    let mut buf = [0u8; 4096];
    let Ok(fd) = sys::open(status, sys::O_RDONLY) else { return false };
    let n = sys::read(fd, &mut buf).unwrap_or(0);
    sys::close(fd);
    let text = &buf[..n];
    let bit = 1u64 << (signal - 1);
    let caught = status_mask(text, b"SigCgt").is_some_and(|m| m & bit != 0);
    let pending = status_mask(text, b"ShdPnd").is_some_and(|m| m & bit != 0);
    caught && !pending
}

/// The hex mask of field `name` (`SigCgt`, `ShdPnd`...) in
/// `/proc/PID/status` text.
pub fn status_mask(text: &[u8], name: &[u8]) -> Option<u64> {
    let line = text.split(|&c| c == b'\n').find(|l| l.strip_prefix(name).is_some_and(|r| r.first() == Some(&b':')))?;
    let value = &line[name.len() + 1..];
    let mut digits = value.iter().skip_while(|c| c.is_ascii_whitespace()).take_while(|c| c.is_ascii_hexdigit());
    digits.try_fold(0u64, |acc, &c| Some(acc << 4 | (c as char).to_digit(16)? as u64))
}

#[cfg(test)]
mod tests {
    use super::status_mask;

    #[test]
    fn masks_of_a_status_file() {
        let text = b"Name:\tx\nShdPnd:\t0000000000000800\nSigBlk:\t0\nSigCgt:\t0000000180000200\n";
        assert_eq!(status_mask(text, b"SigCgt"), Some(0x1_8000_0200));
        assert_eq!(status_mask(text, b"ShdPnd"), Some(0x800));
        assert_eq!(status_mask(text, b"SigPnd"), None);
        assert_eq!(status_mask(b"XSigCgt:\t1\n", b"SigCgt"), None);
    }
}
