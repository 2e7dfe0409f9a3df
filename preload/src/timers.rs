//! The process's POSIX timers (`timer_create`), for the image: each one
//! `/proc/self/timers` lists (id, signal and `sigev_value`, notify kind and
//! target, clock), with what `timer_gettime` says is left of it.
//!
//! Runs inside the capture, threads parked (raw system calls only, no
//! allocation). The records go into the string table sorted by id
//! (`ckpt_image::timers`); the loader creates them again under the same ids.
//! A timer that expires while the image is written has its signal pending
//! in the image or its time left in it, as the kernel had it when each was
//! read (a few microseconds apart from the pending set).

use core::mem::size_of;

use ckpt_image::timers::{PosixTimer, MAX_TIMERS, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD_ID};
use ckpt_image::{bytes_of, read_at};
use ckpt_sys::{self as sys, Errno};

use crate::fdinfo::{field, number, signed};
use crate::procfs;

/// Reads every timer, `text` the scratch for `/proc/self/timers`, and writes
/// their records into `out`, sorted by id: the bytes written.
pub fn capture(text: &mut [u8], out: &mut [u8]) -> Result<usize, Errno> {
    let n = procfs::read_file(c"/proc/self/timers", text)?;
    let mut count = 0;
    let mut cur = PosixTimer::default();
    let mut seen = false;
    for line in text[..n].split(|&c| c == b'\n') {
        if let Some(v) = field(line, b"ID:") {
            if seen {
                count = put(out, count, &cur)?;
            }
            cur = PosixTimer { id: number(v, 10).ok_or(Errno::EINVAL)?.0 as u32, ..Default::default() };
            seen = true;
        } else if let Some(v) = field(line, b"signal:") {
            // "signal: SIG/VALUE", the value as a pointer in hexadecimal.
            let (sig, rest) = number(v, 10).ok_or(Errno::EINVAL)?;
            cur.signal = sig as u32;
            cur.value = rest.strip_prefix(b"/").and_then(|r| number(r, 16)).map_or(0, |(v, _)| v);
        } else if let Some(v) = field(line, b"notify:") {
            // "notify: signal|none|thread/pid|tid.N"
            let kind = if v.starts_with(b"none") { SIGEV_NONE } else { SIGEV_SIGNAL };
            let tid = v.windows(4).position(|w| w == b"tid.").and_then(|at| number(&v[at + 4..], 10));
            (cur.notify, cur.tid) = match tid {
                Some((tid, _)) => (kind | SIGEV_THREAD_ID, tid as u32),
                None => (kind, 0),
            };
        } else if let Some(v) = field(line, b"ClockID:") {
            cur.clock = signed(v).ok_or(Errno::EINVAL)?.0 as i32;
        }
    }
    if seen {
        count = put(out, count, &cur)?;
    }
    sort_by_id(&mut out[..count * size_of::<PosixTimer>()]);
    Ok(count * size_of::<PosixTimer>())
}

/// Adds `t`, with its time left, as record `i` of `out`.
fn put(out: &mut [u8], i: usize, t: &PosixTimer) -> Result<usize, Errno> {
    if i >= MAX_TIMERS {
        return Err(Errno::E2BIG);
    }
    let mut t = *t;
    if t.notify == SIGEV_NONE {
        t.signal = 0;
    }
    if let Ok(spec) = sys::timers::get(t.id as i32) {
        (t.value_ns, t.interval_ns) = (spec.value_ns(), spec.interval_ns());
    }
    let size = size_of::<PosixTimer>();
    out.get_mut(i * size..(i + 1) * size).ok_or(Errno::E2BIG)?.copy_from_slice(bytes_of(&t));
    Ok(i + 1)
}

/// Insertion sort of the records by id (a few timers, in hash order).
fn sort_by_id(bytes: &mut [u8]) {
    let size = size_of::<PosixTimer>();
    let id = |b: &[u8], i: usize| read_at::<PosixTimer>(b, i).map_or(0, |t| t.id);
    for i in 1..bytes.len() / size {
        let mut j = i;
        while j > 0 && id(bytes, j - 1) > id(bytes, j) {
            let (a, b) = bytes.split_at_mut(j * size);
            a[(j - 1) * size..].swap_with_slice(&mut b[..size]);
            j -= 1;
        }
    }
}
