//! Threads that block the thread signal: glibc's timer helper.
//!
//! The first `SIGEV_THREAD` timer makes glibc start a helper thread that
//! waits in `sigwaitinfo` for the timers' signal with every signal blocked
//! but SIGSETXID (33), glibc's own for `setuid` in a threaded process. No
//! libc call of the program made that mask, so `intercept` never saw it, and
//! the thread signal stays pending there: the checkpoint would fail ("a
//! thread did not stop").
//!
//! Such a thread — one that blocks the thread signal and not SIGSETXID,
//! found when it does not arrive in time — is sent SIGSETXID instead, with
//! ckpt's thread handler put in glibc's place for the checkpoint (the
//! kernel's action of the thread signal, copied: same handler, flags and
//! restorer). Its tid is remembered, so the next checkpoint sends it
//! SIGSETXID at once. glibc's action comes back when the threads are
//! stopped, before the dispositions are recorded; if a SIGSETXID of ours
//! were still pending then (a thread that never took it), ckpt's handler is
//! left in place, which ignores a signal outside a checkpoint: glibc's
//! handler, given one that no `setuid` sent, would run a command that is not
//! there.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

use ckpt_sys::{self as sys, KSigAction};

use crate::threads::THREAD_SIGNAL;

pub const SIGSETXID: i32 = 33;

const REMEMBERED: usize = 8;
/// Threads known to block the thread signal (0: free).
static BLOCKERS: [AtomicU32; REMEMBERED] = [const { AtomicU32::new(0) }; REMEMBERED];
/// Whether ckpt's handler is SIGSETXID's now, and glibc's action.
static SWAPPED: AtomicBool = AtomicBool::new(false);
static SAVED: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];

const fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// The signal to stop thread `tid` with.
pub fn signal_for(tid: u32) -> i32 {
    if BLOCKERS.iter().any(|b| b.load(SeqCst) == tid) && swap() {
        SIGSETXID
    } else {
        THREAD_SIGNAL
    }
}

/// For a thread that has not arrived: if it blocks the thread signal and
/// not SIGSETXID, sends it SIGSETXID (once) and remembers it. Whether it did.
pub fn nudge(pid: i32, tid: u32) -> bool {
    if BLOCKERS.iter().any(|b| b.load(SeqCst) == tid) {
        return false; // already sent
    }
    let Some(blocked) = task_status_hex(tid, b"SigBlk") else { return false };
    if blocked & bit(THREAD_SIGNAL) == 0 || blocked & bit(SIGSETXID) != 0 {
        return false;
    }
    let Some(slot) = BLOCKERS.iter().find(|b| b.compare_exchange(0, tid, SeqCst, SeqCst).is_ok()) else {
        return false;
    };
    if !swap() || sys::tgkill(pid, tid as i32, SIGSETXID).is_err() {
        slot.store(0, SeqCst);
        return false;
    }
    true
}

/// Once the threads are stopped (or the stop failed): glibc's SIGSETXID
/// action back, unless one of ours is still pending somewhere; threads
/// that are gone are forgotten.
pub fn finish() {
    let mut pending = false;
    for b in &BLOCKERS {
        let tid = b.load(SeqCst);
        if tid == 0 {
            continue;
        }
        match task_status_hex(tid, b"SigPnd") {
            Some(p) => pending |= p & bit(SIGSETXID) != 0,
            None => b.store(0, SeqCst), // gone
        }
    }
    if SWAPPED.load(SeqCst) && !pending {
        let saved = load();
        if sys::rt_sigaction(SIGSETXID, Some(&saved), None).is_ok() {
            SWAPPED.store(false, SeqCst);
        }
    }
}

/// Puts ckpt's thread handler in SIGSETXID's place (once per checkpoint).
fn swap() -> bool {
    if SWAPPED.load(SeqCst) {
        return true;
    }
    let mut ours = KSigAction::default();
    let mut glibc = KSigAction::default();
    if sys::rt_sigaction(THREAD_SIGNAL, None, Some(&mut ours)).is_err()
        || sys::rt_sigaction(SIGSETXID, Some(&ours), Some(&mut glibc)).is_err()
    {
        return false;
    }
    store(&glibc);
    SWAPPED.store(true, SeqCst);
    true
}

fn store(a: &KSigAction) {
    for (i, w) in [a.handler, a.flags, a.restorer, a.mask].iter().enumerate() {
        SAVED[2 * i].store(*w as u32, SeqCst);
        SAVED[2 * i + 1].store((*w >> 32) as u32, SeqCst);
    }
}

fn load() -> KSigAction {
    let w = |i: usize| SAVED[2 * i].load(SeqCst) as u64 | (SAVED[2 * i + 1].load(SeqCst) as u64) << 32;
    KSigAction { handler: w(0), flags: w(1), restorer: w(2), mask: w(3) }
}

fn task_status_hex(tid: u32, key: &[u8]) -> Option<u64> {
    let mut path = [0u8; 48];
    let path = crate::msg::c_path(&mut path, format_args!("/proc/self/task/{tid}/status"), c"/proc/self/status");
    ckpt_sys::status::read_hex(path, [key])[0]
}
