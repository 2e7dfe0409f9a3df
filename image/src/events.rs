//! The state records of event descriptors (eventfd, timerfd, signalfd,
//! epoll) and of in-process UNIX sockets, kept in the string table and
//! referred to by an [`Fd`](crate::Fd)'s `data` field.
//!
//! Each kind has one fixed layout (epoll: an array of one), described in
//! `docs/FORMAT.md` next to the `Fd` table.

use crate::{read_at, FdKind, Pod};
use core::mem::size_of;

/// `FdKind::EventFd`: the counter and the semaphore mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventFdState {
    /// The counter (`eventfd-count` of fdinfo).
    pub count: u64,
    /// 1: `EFD_SEMAPHORE` (`eventfd-semaphore` of fdinfo).
    pub semaphore: u32,
    pub _pad: u32,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for EventFdState {}

/// `FdKind::TimerFd`: the clock, the timer, the expirations not yet read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerFdState {
    /// `clockid` of fdinfo (`CLOCK_REALTIME`, `CLOCK_MONOTONIC`, …).
    pub clockid: u32,
    /// `settime flags`: `TFD_TIMER_ABSTIME` (1), `TFD_TIMER_CANCEL_ON_SET` (2).
    pub settime_flags: u32,
    /// Expirations not yet read (`ticks`).
    pub ticks: u64,
    /// Time left until the next expiration, ns (0: disarmed).
    pub value_ns: u64,
    /// The period, ns (0: one-shot).
    pub interval_ns: u64,
    /// `CLOCK_REALTIME` when the state was read, ns: an absolute
    /// `CLOCK_REALTIME` timer's deadline is this plus `value_ns`.
    pub realtime_ns: u64,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for TimerFdState {}

/// `FdKind::SignalFd`: the signals it accepts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalFdState {
    /// Bit n-1: signal n (`sigmask` of fdinfo).
    pub mask: u64,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for SignalFdState {}

/// `FdKind::Epoll`: one registration of the interest list (one `tfd:` line
/// of fdinfo), in fdinfo order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollTarget {
    /// The descriptor number it was registered with (`tfd`).
    pub tfd: i32,
    /// A descriptor of the table open on the same file (usually `tfd`
    /// itself; another one if `tfd` was since closed or reused); -1: none.
    pub fd: i32,
    /// The events mask, with `EPOLLET`, `EPOLLONESHOT`, `EPOLLEXCLUSIVE`…
    pub events: u32,
    pub _pad: u32,
    /// The program's 64-bit data.
    pub data: u64,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for EpollTarget {}

/// `FdKind::Socket` (a UNIX socket whose peer is also in the process): the
/// messages waiting to be read on it, `SocketState` then each message as a
/// little-endian u32 length and its bytes (a stream socket: at most one
/// "message", all its bytes). The socket's inode is the `Fd`'s `ino`, its
/// peer's the `Fd`'s `pipe`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketState {
    /// `SOCK_STREAM` (1), `SOCK_DGRAM` (2), `SOCK_SEQPACKET` (5).
    pub sock_type: u32,
    /// How many messages follow.
    pub n_msgs: u32,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for SocketState {}

/// `FdKind::Inotify`: one watch (one `inotify wd:` line of fdinfo).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InotifyWatch {
    /// The watch descriptor the program holds.
    pub wd: i32,
    /// The events mask (with `IN_ONESHOT`, `IN_EXCL_UNLINK`…).
    pub mask: u32,
    /// The absolute path it was added with (recorded by the capture
    /// library's `inotify_add_watch`).
    pub path: crate::StrRef,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for InotifyWatch {}

/// A lock held through a regular file's descriptor (`FdKind::File`: its
/// `data` is an array of them, one per `lock:` line of fdinfo).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileLock {
    /// [`LOCK_POSIX`], [`LOCK_OFD`] or [`LOCK_FLOCK`].
    pub kind: u32,
    /// 1: a write (exclusive) lock; 0: a read (shared) one.
    pub write: u32,
    /// First byte (record locks; 0 for `flock`).
    pub start: u64,
    /// Bytes, 0: to the end of the file, however long it grows.
    pub len: u64,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for FileLock {}

/// A `fcntl` record lock (owned by the process).
pub const LOCK_POSIX: u32 = 1;
/// An open file description lock (`F_OFD_SETLK`).
pub const LOCK_OFD: u32 = 2;
/// A `flock` lock.
pub const LOCK_FLOCK: u32 = 3;

/// `FdKind::Memfd`: its seals and size; its contents follow the record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemfdState {
    /// `fcntl(F_GET_SEALS)` (`F_SEAL_SEAL` alone: sealing was not allowed).
    pub seals: u32,
    pub _pad: u32,
    /// Its size; the contents that follow are this long.
    pub size: u64,
}
// SAFETY: repr(C) integers without padding (sizes and offsets: layout.rs).
unsafe impl Pod for MemfdState {}

/// The record size of a kind that keeps one (`data` must be exactly this
/// long, or for epoll and sockets a multiple or a prefix of it).
pub fn record_size(kind: FdKind) -> Option<usize> {
    Some(match kind {
        FdKind::EventFd => size_of::<EventFdState>(),
        FdKind::TimerFd => size_of::<TimerFdState>(),
        FdKind::SignalFd => size_of::<SignalFdState>(),
        FdKind::Epoll => size_of::<EpollTarget>(),
        FdKind::Socket => size_of::<SocketState>(),
        FdKind::Inotify => size_of::<InotifyWatch>(),
        FdKind::File => size_of::<FileLock>(),
        FdKind::Memfd => size_of::<MemfdState>(),
        _ => return None,
    })
}

/// Whether `data` is a well-formed record for `kind` (pipes: any bytes).
pub fn data_fits(kind: FdKind, data: &[u8]) -> bool {
    match (kind, record_size(kind)) {
        (FdKind::PipeRead, _) => true,
        (FdKind::Epoll | FdKind::Inotify | FdKind::File, Some(size)) => data.len().is_multiple_of(size),
        (FdKind::Socket, Some(_)) => socket_messages(data).is_some(),
        (FdKind::Memfd, Some(size)) => {
            read_at::<MemfdState>(data, 0).is_some_and(|m| (data.len() - size) as u64 == m.size)
        }
        (_, Some(size)) => data.len() == size,
        (_, None) => data.is_empty(),
    }
}

/// A socket's record and an iterator over its messages (each a u32 length,
/// little-endian, then the bytes); None if malformed.
pub fn socket_messages(data: &[u8]) -> Option<(SocketState, SocketMessages<'_>)> {
    let s: SocketState = read_at(data, 0)?;
    let rest = &data[size_of::<SocketState>()..];
    // Validate the whole list first.
    let mut check = rest;
    for _ in 0..s.n_msgs {
        let len = u32::from_le_bytes(check.get(..4)?.try_into().ok()?) as usize;
        check = check.get(4..)?.get(len..)?;
    }
    if !check.is_empty() {
        return None;
    }
    Some((s, SocketMessages { rest, left: s.n_msgs }))
}

/// The messages of a [`SocketState`] record.
pub struct SocketMessages<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for SocketMessages<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let len = u32::from_le_bytes(self.rest.get(..4)?.try_into().ok()?) as usize;
        let msg = self.rest.get(4..4 + len)?;
        self.rest = &self.rest[4 + len..];
        self.left -= 1;
        Some(msg)
    }
}

/// The `i`-th record of type `T` in `data`.
pub fn record<T: Pod>(data: &[u8], i: usize) -> Option<T> {
    read_at(data, i)
}
