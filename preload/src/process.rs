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
//!
//! A signal that arrives during the checkpoint (every signal is blocked in
//! the handlers) is pending when the capture reads the sets. One whose
//! default action ends the process, left at that default and not blocked by
//! the program, was sent to the running program — `kill -USR2 P; kill -TERM
//! P` — and is never kept in the image, where it would end every restart at
//! once: it acts on the run it was sent to ([`fatal_pending`]). A signal the
//! program handles or blocks is kept: it comes back pending.

use core::ffi::CStr;

use ckpt_image::{ITimer, ProcessState, PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS};
use ckpt_sys::{self as sys, Errno, ITimerVal};

use crate::config;
use crate::threads::THREAD_SIGNAL;

/// Fills `state` for the whole process. Called by the coordinator while
/// every thread is parked.
/// `blocked`: the signals every thread blocks (a process-wide signal that
/// some thread does not block would have been delivered).
pub fn capture(state: &mut ProcessState, blocked: u64) {
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
        state.pending = keep(p & !own, blocked);
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

/// The calling thread's own pending signals (bit n-1 for signal n), as the
/// image keeps them; `blocked`: the thread's mask when it was interrupted.
/// Called by each thread in its checkpoint handler.
pub fn thread_pending(blocked: u64) -> u64 {
    keep(status_hex(c"/proc/thread-self/status", b"SigPnd:").unwrap_or(0) & !own_signals(), blocked)
}

/// The signals ckpt itself uses, never recorded as pending: a second
/// checkpoint signal re-raised after a restart would checkpoint the
/// restarted program at once.
fn own_signals() -> u64 {
    bit(config::get().signal) | bit(THREAD_SIGNAL)
}

const fn bit(sig: i32) -> u64 {
    if 1 <= sig && sig <= 64 {
        1u64 << (sig - 1)
    } else {
        0
    }
}

/// Signals whose default action is to be ignored, to stop or to continue:
/// all others (real-time ones included) end the process by default.
const NOT_FATAL: u64 = bit(libc::SIGCHLD)
    | bit(libc::SIGCONT)
    | bit(libc::SIGSTOP)
    | bit(libc::SIGTSTP)
    | bit(libc::SIGTTIN)
    | bit(libc::SIGTTOU)
    | bit(libc::SIGURG)
    | bit(libc::SIGWINCH);

/// The signals that would end the process now if delivered: those left at
/// a default action that terminates it (ckpt's own two excepted).
fn fatal_at_default() -> u64 {
    let mut set = 0;
    for sig in 1..=64 {
        if bit(sig) & NOT_FATAL != 0 {
            continue;
        }
        let mut k = sys::KSigAction::default();
        if sys::rt_sigaction(sig, None, Some(&mut k)).is_ok() && k.handler == libc::SIG_DFL as u64 {
            set |= bit(sig);
        }
    }
    set & !own_signals()
}

/// Pending signals as the image keeps them: not those that, unblocked and
/// at their default action, end the process (see the module's comment),
/// and never SIGKILL or SIGSTOP, which the kernel is about to act on (an
/// image with them pending is refused as corrupt).
fn keep(pending: u64, blocked: u64) -> u64 {
    if pending == 0 {
        return 0;
    }
    pending & !(fatal_at_default() & !blocked) & !ckpt_image::NEVER_PENDING
}

/// The signals every one of `threads` blocked when it was interrupted.
pub fn blocked_everywhere(threads: &[ckpt_image::Thread]) -> u64 {
    threads.iter().fold(!0, |m, t| m & t.sigmask)
}

/// A process-wide signal pending now that will end the process as soon as
/// the handlers return (`blocked`: as [`blocked_everywhere`]): sent during
/// the checkpoint, left out of the image.
pub fn fatal_pending(blocked: u64) -> Option<i32> {
    let p = status_hex(c"/proc/self/status", b"ShdPnd:")? & fatal_at_default() & !blocked;
    (p != 0).then(|| p.trailing_zeros() as i32 + 1)
}

/// Says that `sig` came with the checkpoint and ends the program.
pub fn announce_fatal(sig: i32) {
    let mut l = crate::msg::Line::new();
    l.push(b"ckpt: ");
    config::write_signal(&mut l, sig);
    l.push(b" arrived during the checkpoint; the program ends by it (the image does not hold it)");
    l.emit();
}

/// Once the image is written, in place of stopping: a fatal signal that
/// came with the checkpoint (`fatal`, or one found now) ends the process as
/// it would have without ckpt. Never returns then.
pub fn end_by_fatal_pending(fatal: Option<i32>, blocked: u64) {
    if let Some(sig) = fatal.or_else(|| fatal_pending(blocked)) {
        announce_fatal(sig);
        // Unblocked in this thread, at its default action: delivered when
        // the system call returns, and the process ends.
        let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, !bit(sig));
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
pub fn status_hex(path: &CStr, key: &[u8]) -> Option<u64> {
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
