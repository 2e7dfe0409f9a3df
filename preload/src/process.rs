//! Process-wide kernel state beyond memory: interval timers, resource
//! limits, pending signals, prctl flags (`ckpt_image::ProcessState`), and
//! each thread's own pending signals.
//!
//! Runs inside the capture (raw system calls only, no allocation). The
//! per-thread part runs in every thread's own handler, on that thread's own
//! stack, which may be small: it reads `/proc` in small pieces.
//!
//! The interval timers and the process-wide pending signals are taken at
//! one instant: the timers are stopped (`setitimer` swaps in a zero value
//! and gives the old one back), the pending set is read, and the timers are
//! re-armed with what they had left. A timer that expires around the
//! checkpoint is thus counted exactly once: either still running in the
//! image, or its signal pending in it. (The timers lose the few
//! microseconds the read takes.)
//!
//! Pending signals are kept as sets: a real-time signal queued several
//! times, and the `siginfo` of any signal, come back as one plain `kill`.

use core::ffi::CStr;

use ckpt_image::{ITimer, ProcessState, PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS};
use ckpt_sys::{self as sys, Errno, ITimerVal};

use crate::config;
use crate::threads::THREAD_SIGNAL;

/// Fills `state` for the whole process. Called by the coordinator while
/// every thread is parked.
pub fn capture(state: &mut ProcessState) {
    let own = own_signals();

    let mut timers = [None; 3];
    for (which, t) in timers.iter_mut().enumerate() {
        *t = sys::setitimer(which as i32, &ITimerVal::default()).ok();
    }
    let pending = status_hex(c"/proc/self/status", b"ShdPnd:");
    for (which, t) in timers.iter().enumerate() {
        if let Some(old) = t {
            let _ = sys::setitimer(which as i32, old);
        }
    }
    if timers.iter().all(Option::is_some) {
        for (slot, t) in state.itimers.iter_mut().zip(timers.iter().flatten()) {
            *slot =
                ITimer { interval_ns: ns(t.interval_sec, t.interval_usec), value_ns: ns(t.value_sec, t.value_usec) };
        }
        state.valid |= PROCESS_ITIMERS;
    }
    if let Some(p) = pending {
        state.pending = p & !own;
        state.valid |= PROCESS_PENDING;
    }

    let mut limits_ok = true;
    for (r, slot) in state.rlimits.iter_mut().enumerate() {
        match sys::prlimit64(0, r as i32, None) {
            Ok(l) => *slot = [l.soft, l.hard],
            Err(_) => limits_ok = false,
        }
    }
    if limits_ok {
        state.valid |= PROCESS_RLIMITS;
    }

    let pdeathsig = prctl_get_int(sys::PR_GET_PDEATHSIG);
    // SAFETY: PR_GET_DUMPABLE takes no address; the value is the result.
    let dumpable = unsafe { sys::prctl(sys::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    let subreaper = prctl_get_int(sys::PR_GET_CHILD_SUBREAPER);
    if let (Ok(p), Ok(d), Ok(s)) = (pdeathsig, dumpable, subreaper) {
        state.pdeathsig = p;
        state.dumpable = d as u32;
        state.child_subreaper = s;
        state.valid |= PROCESS_PRCTL;
    }
}

/// The calling thread's own pending signals (bit n-1 for signal n).
/// Called by each thread in its checkpoint handler.
pub fn thread_pending() -> u64 {
    status_hex(c"/proc/thread-self/status", b"SigPnd:").unwrap_or(0) & !own_signals()
}

/// The signals ckpt itself uses, never recorded as pending: a second
/// checkpoint signal re-raised after a restart would checkpoint the
/// restarted program at once.
fn own_signals() -> u64 {
    bit(config::get().signal) | bit(THREAD_SIGNAL)
}

fn bit(sig: i32) -> u64 {
    if (1..=64).contains(&sig) {
        1u64 << (sig - 1)
    } else {
        0
    }
}

fn ns(sec: i64, usec: i64) -> u64 {
    (sec.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(usec.max(0) as u64 * 1000)
}

/// A prctl "get" that writes an int to the address in its second argument.
fn prctl_get_int(option: i32) -> Result<u32, Errno> {
    let mut v = 0i32;
    // SAFETY: the kernel writes one int to `v`, alive for the call.
    unsafe { sys::prctl(option, &mut v as *mut i32 as u64, 0, 0, 0) }.map(|_| v as u32)
}

/// The hexadecimal value of the line `key<whitespace>HEX` of a `/proc`
/// status file. The file is read in small pieces and scanned as it comes,
/// with no line buffer: lines such as `Cpus_allowed` may be long.
fn status_hex(path: &CStr, key: &[u8]) -> Option<u64> {
    let fd = sys::open(path, sys::O_RDONLY).ok()?;
    let mut scan = HexField::new(key);
    let mut buf = [0u8; 256];
    let found = loop {
        match sys::read(fd, &mut buf) {
            Ok(0) => break scan.end(),
            Ok(n) => {
                if let Some(v) = scan.feed(&buf[..n]) {
                    break v;
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break None,
        }
    };
    sys::close(fd);
    found
}

/// The scanner of [`status_hex`].
struct HexField<'k> {
    key: &'k [u8],
    /// Bytes of the key matched at the start of the current line;
    /// `usize::MAX`: this line is not the one.
    matched: usize,
    value: u64,
    digits: u32,
}

impl<'k> HexField<'k> {
    fn new(key: &'k [u8]) -> Self {
        HexField { key, matched: 0, value: 0, digits: 0 }
    }

    fn in_value(&self) -> bool {
        self.matched == self.key.len()
    }

    /// Some(result) once the field is complete (or malformed).
    fn feed(&mut self, bytes: &[u8]) -> Option<Option<u64>> {
        for &c in bytes {
            if self.in_value() {
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    b'A'..=b'F' => c - b'A' + 10,
                    b' ' | b'\t' if self.digits == 0 => continue,
                    b'\n' => return Some(self.end()),
                    _ => return Some(None),
                };
                if self.digits == 16 {
                    return Some(None);
                }
                self.value = self.value << 4 | d as u64;
                self.digits += 1;
            } else if c == b'\n' {
                self.matched = 0;
            } else if self.matched != usize::MAX {
                self.matched = if self.key[self.matched] == c { self.matched + 1 } else { usize::MAX };
            }
        }
        None
    }

    /// The result at the end of the input.
    fn end(&self) -> Option<u64> {
        (self.in_value() && self.digits > 0).then_some(self.value)
    }
}
