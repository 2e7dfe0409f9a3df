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
//! The ticker sends the signal through the pidfd every period, only when the
//! program catches it and does not already have it pending (before the
//! restart completes, or during a slow checkpoint), and exits as soon as the
//! pidfd says the program ended.

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
    // again and exits, the grandchild runs `tick` and exits.
    match unsafe { sys::fork() } {
        Ok(0) => {
            // SAFETY: as above.
            if let Ok(0) = unsafe { sys::fork() } {
                tick(pidfd, pid, signal, period_ms * 1_000_000);
            }
            sys::exit_group(0)
        }
        Ok(child) => {
            let _ = sys::wait4(child);
        }
        Err(e) => warn("cannot start the ticker", Some(e)),
    }
    sys::close(pidfd);
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

/// The ticker's life.
fn tick(pidfd: i32, pid: i32, signal: i32, period_ns: u64) -> ! {
    const FD: i32 = 3;
    let _ = sys::setsid();
    // SAFETY: PR_SET_NAME reads a NUL-terminated name.
    let _ = unsafe { sys::prctl(sys::PR_SET_NAME, c"ckpt-ticker".as_ptr() as u64, 0, 0, 0) };
    let _ = sys::chdir(c"/");
    // Keep the pidfd only: holding the program's stdout or stderr open would
    // keep a reader of its pipes waiting after it ended.
    if pidfd != FD {
        let _ = sys::dup3(pidfd, FD, 0);
    }
    let _ = sys::close_range(0, (FD - 1) as u32, 0);
    let _ = sys::close_range((FD + 1) as u32, u32::MAX, 0);
    for _ in 0..3 {
        let _ = sys::open(c"/dev/null", sys::O_RDWR);
    }
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, 0);
    let mut status = [0u8; 64];
    let mut l = Line::new();
    let _ = write!(l, "/proc/{pid}/status");
    let n = l.as_bytes().len().min(status.len() - 1);
    status[..n].copy_from_slice(&l.as_bytes()[..n]);
    let path = core::ffi::CStr::from_bytes_until_nul(&status).unwrap_or(c"/proc/self/status");
    loop {
        match sys::poll_readable(FD, period_ns) {
            Ok(true) => break, // the program ended
            Ok(false) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
        if ready(path, signal) && sys::pidfd_send_signal(FD, signal) == Err(Errno::ESRCH) {
            break;
        }
    }
    sys::exit_group(0)
}

/// Whether to signal now: the program catches the signal (its handler is
/// back) and does not have it pending yet.
fn ready(path: &core::ffi::CStr, signal: i32) -> bool {
    let mut buf = [0u8; 4096];
    let Ok(fd) = sys::open(path, sys::O_RDONLY) else { return false };
    let n = sys::read(fd, &mut buf).unwrap_or(0);
    sys::close(fd);
    let text = &buf[..n];
    let bit = 1u64 << (signal - 1);
    let caught = mask(text, b"\nSigCgt:").is_some_and(|m| m & bit != 0);
    let pending = mask(text, b"\nShdPnd:").is_some_and(|m| m & bit != 0);
    caught && !pending
}

/// The hex mask after `key` in /proc/PID/status text.
fn mask(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let mut digits = text[at..].iter().skip_while(|c| c.is_ascii_whitespace()).take_while(|c| c.is_ascii_hexdigit());
    digits.try_fold(0u64, |acc, &c| Some(acc << 4 | (c as char).to_digit(16)? as u64))
}
