//! Restoring the process-wide kernel state of `ckpt_image::ProcessState`:
//! interval timers, resource limits, prctl flags, and pending signals
//! (raised again, so that they are delivered once the threads run).
//!
//! Nothing here fails the restart: what the kernel does not allow (a hard
//! resource limit above what this process may have) is said in one
//! `restart: warning:` line and the nearest allowed value is kept.

use core::fmt::Write;

use ckpt_image::{ITimer, Meta, NLIMITS, PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS};
use ckpt_sys::{self as sys, msg::Line, ITimerVal, RLimit};

/// Names of the resource limits, in RLIMIT_* order.
const LIMIT_NAMES: [&str; NLIMITS] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

const SIGKILL: i32 = 9;
const SIGSTOP: i32 = 19;

/// Called after memory is restored, with every signal blocked, before the
/// threads are recreated. (Each thread's own pending signals are raised by
/// `threads::register`.)
pub fn restore(meta: &Meta) {
    let p = &meta.header.process;
    if p.valid & PROCESS_RLIMITS != 0 {
        for (r, &[soft, hard]) in p.rlimits.iter().enumerate() {
            restore_limit(r, RLimit { soft, hard });
        }
    }
    if p.valid & PROCESS_PRCTL != 0 {
        // SAFETY: these options (all three) take plain values, no address.
        unsafe {
            let _ = sys::prctl(sys::PR_SET_PDEATHSIG, p.pdeathsig as u64, 0, 0, 0);
            // 2 (core dumps readable by root only) can only come from a
            // set-user-ID program; it cannot be set.
            if p.dumpable <= 1 {
                let _ = sys::prctl(sys::PR_SET_DUMPABLE, p.dumpable as u64, 0, 0, 0);
            }
            let _ = sys::prctl(sys::PR_SET_CHILD_SUBREAPER, (p.child_subreaper != 0) as u64, 0, 0, 0);
        }
    }
    if p.valid & PROCESS_PENDING != 0 {
        // Every signal is blocked in the only thread there is: each stays
        // pending for the process and is delivered once a thread's own
        // mask comes back with its frame.
        let pid = sys::getpid();
        for sig in 1..=64 {
            if p.pending & (1u64 << (sig - 1)) != 0 && sig != SIGKILL && sig != SIGSTOP {
                let _ = sys::kill(pid, sig);
            }
        }
    }
    if p.valid & PROCESS_ITIMERS != 0 {
        // What was left of each timer at the checkpoint: the time the
        // program was not running does not count. The CPU-time timers
        // (VIRTUAL, PROF) count this process's CPU time from here.
        for (which, t) in p.itimers.iter().enumerate() {
            let _ = sys::setitimer(which as i32, &itimerval(t));
        }
    }
}

fn itimerval(t: &ITimer) -> ITimerVal {
    // A remaining value below one microsecond would disarm the timer:
    // such a timer was about to fire, so it fires at once.
    let value_us = t.value_ns.div_ceil(1000);
    let interval_us = t.interval_ns.div_ceil(1000);
    ITimerVal {
        interval_sec: (interval_us / 1_000_000) as i64,
        interval_usec: (interval_us % 1_000_000) as i64,
        value_sec: (value_us / 1_000_000) as i64,
        value_usec: (value_us % 1_000_000) as i64,
    }
}

/// Sets one resource limit; if the kernel refuses (a hard limit above what
/// this process may raise it to), keeps the nearest allowed one and warns.
fn restore_limit(r: usize, want: RLimit) {
    let res = r as i32;
    let Err(e) = sys::prlimit64(0, res, Some(&want)) else {
        return;
    };
    let mut fallback = None;
    if let Ok(cur) = sys::prlimit64(0, res, None) {
        let hard = want.hard.min(cur.hard);
        let lower = RLimit { soft: want.soft.min(hard), hard };
        if sys::prlimit64(0, res, Some(&lower)).is_ok() {
            fallback = Some(lower);
        } else {
            fallback = Some(cur);
        }
    }
    let mut l = Line::new();
    let _ = write!(l, "restart: warning: cannot restore {} (", LIMIT_NAMES[r]);
    limit(&mut l, want);
    let _ = write!(l, "): {} ({})", sys::errno_text(e), sys::errno_name(e));
    if let Some(kept) = fallback {
        l.push(b"; it is ");
        limit(&mut l, kept);
    }
    l.emit();
}

fn limit(l: &mut Line, v: RLimit) {
    for (name, x) in [("soft ", v.soft), (", hard ", v.hard)] {
        l.push(name.as_bytes());
        if x == u64::MAX {
            l.push(b"unlimited");
        } else {
            let _ = write!(l, "{x}");
        }
    }
}
