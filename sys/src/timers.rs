//! POSIX timers (`timer_create` and friends) as raw system calls, and the
//! prctl that lets `timer_create` take the id a restore asks for.

use syscalls::{syscall, Sysno};

use crate::Result;

/// The kernel's `struct itimerspec`, in nanoseconds split as it wants.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ITimerSpec {
    pub interval_sec: i64,
    pub interval_nsec: i64,
    pub value_sec: i64,
    pub value_nsec: i64,
}

impl ITimerSpec {
    pub fn from_ns(value_ns: u64, interval_ns: u64) -> Self {
        const NS: u64 = 1_000_000_000;
        ITimerSpec {
            interval_sec: (interval_ns / NS) as i64,
            interval_nsec: (interval_ns % NS) as i64,
            value_sec: (value_ns / NS) as i64,
            value_nsec: (value_ns % NS) as i64,
        }
    }
    pub fn value_ns(&self) -> u64 {
        (self.value_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(self.value_nsec as u64)
    }
    pub fn interval_ns(&self) -> u64 {
        (self.interval_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(self.interval_nsec as u64)
    }
}

/// The kernel's `struct sigevent` (64 bytes): value, signal, notify kind,
/// and for `SIGEV_THREAD_ID` the target thread.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SigEvent {
    pub value: u64,
    pub signo: i32,
    pub notify: i32,
    pub tid: i32,
    pub _pad: [i32; 11],
}

/// `prctl(PR_TIMER_CREATE_RESTORE_IDS, …)` (Linux 6.15+): while on,
/// `timer_create` creates the timer under the id its third argument points
/// to (-EBUSY if taken).
pub const PR_TIMER_CREATE_RESTORE_IDS: i32 = 77;
pub const RESTORE_IDS_OFF: u64 = 0;
pub const RESTORE_IDS_ON: u64 = 1;

/// Creates a timer; `id` is the id to ask for (in restore-ids mode) and
/// receives the one the kernel gave.
pub fn create(clock: i32, ev: &SigEvent, id: &mut i32) -> Result<()> {
    // SAFETY: the kernel reads the sigevent and reads/writes the int, both alive for the call.
    unsafe { syscall!(Sysno::timer_create, clock, ev as *const SigEvent, id as *mut i32) }.map(drop)
}

/// Arms (relative) or, with a zero value, disarms timer `id`; returns the
/// old setting.
pub fn set(id: i32, new: &ITimerSpec) -> Result<ITimerSpec> {
    let mut old = ITimerSpec::default();
    // SAFETY: the kernel reads `*new` and writes the local `old`, both `struct itimerspec`s.
    unsafe { syscall!(Sysno::timer_settime, id, 0, new as *const ITimerSpec, &mut old as *mut ITimerSpec) }.map(|_| old)
}

/// Time left and period of timer `id`.
pub fn get(id: i32) -> Result<ITimerSpec> {
    let mut cur = ITimerSpec::default();
    // SAFETY: the kernel writes one `struct itimerspec` into the local `cur`.
    unsafe { syscall!(Sysno::timer_gettime, id, &mut cur as *mut ITimerSpec) }.map(|_| cur)
}

pub fn delete(id: i32) -> Result<()> {
    // SAFETY: an integer argument only.
    unsafe { syscall!(Sysno::timer_delete, id) }.map(drop)
}

/// Turns restore-ids mode on or off (Err on kernels without it).
pub fn restore_ids(on: bool) -> Result<()> {
    let arg = if on { RESTORE_IDS_ON } else { RESTORE_IDS_OFF };
    // SAFETY: integer arguments only.
    unsafe { syscall!(Sysno::prctl, PR_TIMER_CREATE_RESTORE_IDS, arg, 0, 0, 0) }.map(drop)
}
