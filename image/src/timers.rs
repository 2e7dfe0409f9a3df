//! POSIX timers (`timer_create`): one record per timer of the process, an
//! array of them in the string table, referred to by
//! [`ProcessState::timers`](crate::ProcessState) (valid bit
//! [`PROCESS_TIMERS`](crate::PROCESS_TIMERS)). Described in
//! `docs/FORMAT.md` beside `ProcessState`.

use crate::{read_at, Pod};
use core::mem::size_of;

/// One POSIX timer: what `/proc/self/timers` lists and `timer_gettime` says.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosixTimer {
    /// The kernel's timer id (`ID`), restored as it was.
    pub id: u32,
    /// The clock (`ClockID`, a `clockid_t`; negative: a CPU-time clock).
    pub clock: i32,
    /// `sigev_notify`: `SIGEV_SIGNAL` 0, `SIGEV_NONE` 1, `SIGEV_THREAD_ID` 4.
    pub notify: u32,
    /// `sigev_signo` (unused for `SIGEV_NONE`).
    pub signal: u32,
    /// `SIGEV_THREAD_ID`: the thread the signal goes to; 0 otherwise.
    pub tid: u32,
    pub _pad: u32,
    /// `sigev_value`, as the signal's `si_value` carries it.
    pub value: u64,
    /// Time left until the next expiration, ns (0: disarmed).
    pub value_ns: u64,
    /// The period, ns (0: one-shot).
    pub interval_ns: u64,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for PosixTimer {}

pub const SIGEV_SIGNAL: u32 = 0;
pub const SIGEV_NONE: u32 = 1;
pub const SIGEV_THREAD_ID: u32 = 4;

/// At most this many timers in an image.
pub const MAX_TIMERS: usize = 4096;

impl PosixTimer {
    /// Whether the record is one the kernel could have had: a known notify
    /// kind, a signal number for one that sends a signal, a target thread
    /// exactly for `SIGEV_THREAD_ID`, a non-negative id.
    pub fn is_sane(&self) -> bool {
        let signal_ok = (1..=64).contains(&self.signal);
        let kind_ok = match self.notify {
            SIGEV_NONE => self.tid == 0,
            SIGEV_SIGNAL => signal_ok && self.tid == 0,
            SIGEV_THREAD_ID => signal_ok && self.tid != 0,
            _ => false,
        };
        kind_ok && self.id <= i32::MAX as u32 && self._pad == 0
    }
}

/// The records of `bytes` (the string the header refers to), if it is an
/// array of sane timers sorted by id, without repeats, at most
/// [`MAX_TIMERS`].
pub fn parse(bytes: &[u8]) -> Option<Timers<'_>> {
    let size = size_of::<PosixTimer>();
    if !bytes.len().is_multiple_of(size) || bytes.len() / size > MAX_TIMERS {
        return None;
    }
    let t = Timers(bytes);
    let mut prev: Option<u32> = None;
    for x in t.iter() {
        if !x.is_sane() || prev.is_some_and(|p| x.id <= p) {
            return None;
        }
        prev = Some(x.id);
    }
    Some(t)
}

/// A checked array of timer records ([`parse`]).
#[derive(Clone, Copy)]
pub struct Timers<'a>(&'a [u8]);

impl<'a> Timers<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / size_of::<PosixTimer>()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = PosixTimer> + 'a {
        let bytes = self.0;
        (0..bytes.len() / size_of::<PosixTimer>()).filter_map(move |i| read_at(bytes, i))
    }
}
