//! Progress of a long checkpoint or restart on stderr, when stderr is a
//! terminal: once the operation has taken longer than a threshold (about a
//! second), every quarter of a second one line, rewritten in place
//! (`\r… \x1b[K`): bytes done, total, percentage, rate. [`Progress::end`]
//! erases it, so that the final line (or the program's own output) starts
//! on a clean line. Nothing when stderr is not a terminal.
//!
//! Worker threads count their bytes with [`Progress::add`]; whichever thread
//! finds a line due prints it (one at a time). No allocation, no lock.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::msg::{Line, Size};
use crate::AsFd;

/// After how long progress is shown, by default (`CKPT_PROGRESS_AFTER`, ms).
pub const AFTER_MS: u64 = 1000;
/// How often the line is rewritten.
const EVERY_NS: u64 = 250_000_000;

/// Whether `fd` is a terminal (it answers TCGETS).
pub fn is_terminal(fd: impl AsFd) -> bool {
    const TCGETS: u64 = 0x5401;
    let mut termios = [0u8; 64];
    // SAFETY: TCGETS writes a struct termios (60 bytes) into the buffer.
    unsafe { crate::syscall!(crate::Sysno::ioctl, fd.raw(), TCGETS, termios.as_mut_ptr()) }.is_ok()
}

/// The threshold in ms from the value of `CKPT_PROGRESS_AFTER` (digits);
/// the default when unset or not a number.
pub fn after_ms(v: Option<&[u8]>) -> u64 {
    match v {
        Some(d) if !d.is_empty() && d.len() <= 12 && d.iter().all(u8::is_ascii_digit) => {
            d.iter().fold(0, |n, &c| n * 10 + (c - b'0') as u64)
        }
        _ => AFTER_MS,
    }
}

pub struct Progress {
    /// "ckpt: writing the image", "restart: reading the image".
    what: &'static str,
    total: u64,
    /// CLOCK_MONOTONIC when the operation started.
    t0: u64,
    after_ns: u64,
    on: bool,
    done: AtomicU64,
    /// When the line was last written (0: never).
    last: AtomicU64,
    shown: AtomicBool,
}

impl Progress {
    pub fn new(what: &'static str, total: u64, t0: u64, after_ms: u64) -> Progress {
        Progress {
            what,
            total,
            t0,
            after_ns: after_ms.saturating_mul(1_000_000),
            on: total != 0 && is_terminal(2),
            done: AtomicU64::new(0),
            last: AtomicU64::new(0),
            shown: AtomicBool::new(false),
        }
    }

    /// `n` more bytes done; writes the line if one is due.
    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Relaxed) + n;
        if !self.on {
            return;
        }
        let now = crate::clock_ns(crate::CLOCK_MONOTONIC);
        let since = now.saturating_sub(self.t0);
        let last = self.last.load(Relaxed);
        if since < self.after_ns || (last != 0 && now - last < EVERY_NS) {
            return;
        }
        if self.last.compare_exchange(last, now, Relaxed, Relaxed).is_err() {
            return; // another thread writes this one
        }
        self.shown.store(true, Relaxed);
        let rate = (done as u128 * 1_000_000_000 / since.max(1) as u128) as u64;
        let mut l = Line::new();
        let _ = write!(
            l,
            "\r{}: {} / {} ({}%), {}/s\x1b[K",
            self.what,
            Size(done),
            Size(self.total),
            done.min(self.total) * 100 / self.total,
            Size(rate)
        );
        let _ = crate::write_all(2, l.as_bytes());
    }

    /// Erases the line, if one was written.
    pub fn end(&self) {
        if self.shown.load(Relaxed) {
            let _ = crate::write_all(2, b"\r\x1b[K");
        }
    }
}
