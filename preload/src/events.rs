//! Event descriptors: eventfd, timerfd, signalfd and epoll
//! (`FdKind::EventFd`…`Epoll`, their records in `ckpt_image::events`).
//!
//! Runs inside the capture (raw system calls only, no allocation). Their
//! state is in `/proc/self/fdinfo/N` (read with [`fdinfo`]):
//!
//! ```text
//! eventfd-count:                5      (hexadecimal)
//! eventfd-semaphore: 1
//! clockid: 1 / ticks: 0 / settime flags: 01 (octal) / it_value: (2, 996140911) / it_interval: (1, 500)
//! sigmask:    0000000000000202
//! tfd:        3 events: 80000019 data:       1234567890  pos:0 ino:40f sdev:10
//! ```
//!
//! An epoll's registrations name the descriptor number they were added
//! with (`tfd`), which the program may since have closed or reused; the
//! file itself is found among the table's descriptors: the number itself
//! when the kernel finds that file registered under it (an
//! `EPOLL_CTL_ADD` refused with EEXIST), else with `kcmp(KCMP_EPOLL_TFD)`
//! among those of the same inode and device (eventfds, timerfds… all share
//! one anonymous inode: kcmp decides).

use ckpt_image::events::{EpollTarget, EventFdState, SignalFdState, TimerFdState};
use ckpt_image::{bytes_of, checksum, Fd, FdKind, StrRef};
use ckpt_sys::{self as sys, Errno};

use crate::fdinfo::{self, after, field, number, timespec_ns};
use crate::files::Strings;

/// The kind of an anonymous-inode descriptor, from its link
/// (`anon_inode:[eventfd]`…), if it is one kept here.
pub fn kind_of_link(link: &[u8]) -> Option<FdKind> {
    Some(match link {
        b"anon_inode:[eventfd]" => FdKind::EventFd,
        b"anon_inode:[timerfd]" => FdKind::TimerFd,
        b"anon_inode:[signalfd]" => FdKind::SignalFd,
        b"anon_inode:[eventpoll]" => FdKind::Epoll,
        b"anon_inode:inotify" => FdKind::Inotify,
        _ => return None,
    })
}

/// Whether `f` is one of the kinds kept here, or an in-process socket:
/// descriptors of them that share one open file are dups of one another.
pub fn shareable(f: &Fd) -> bool {
    matches!(
        FdKind::from_u32(f.kind),
        Some(
            FdKind::EventFd
                | FdKind::TimerFd
                | FdKind::SignalFd
                | FdKind::Epoll
                | FdKind::Socket
                | FdKind::Inotify
                | FdKind::Memfd
        )
    )
}

/// Records the state of an eventfd, timerfd or signalfd in `f.data` (an
/// epoll's is recorded by [`capture_epolls`], once the table is complete).
/// Leaves `f` Lost if its fdinfo cannot be read.
///
/// All these share one anonymous inode: `f.pipe` gets a key that tells
/// their open files apart (the eventfd's id; a digest of a timerfd's
/// state, a signalfd's mask, an epoll's interest list), so that only
/// descriptors with equal keys need `kcmp` to find dups.
pub fn describe(f: &mut Fd, kind: FdKind, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    let data = match kind {
        FdKind::Inotify => return crate::inotify::describe(f, strings, scratch),
        FdKind::EventFd => {
            let mut s = EventFdState::default();
            let mut seen = false;
            read(f.fd, scratch, |line| {
                if let Some((v, _)) = field(line, b"eventfd-count:").and_then(|v| number(v, 16)) {
                    s.count = v;
                    seen = true;
                } else if let Some((v, _)) = field(line, b"eventfd-semaphore:").and_then(|v| number(v, 10)) {
                    s.semaphore = v as u32;
                } else if let Some((v, _)) = field(line, b"eventfd-id:").and_then(|v| number(v, 10)) {
                    f.pipe = v + 1;
                }
            })?;
            seen.then(|| strings.add(bytes_of(&s)))
        }
        FdKind::TimerFd => {
            let mut s = TimerFdState { realtime_ns: sys::clock_ns(sys::CLOCK_REALTIME), ..Default::default() };
            let mut seen = 0;
            read(f.fd, scratch, |line| {
                let num = |key: &[u8], radix| field(line, key).and_then(|v| number(v, radix)).map(|(v, _)| v);
                if let Some(v) = num(b"clockid:", 10) {
                    s.clockid = v as u32;
                    seen += 1;
                } else if let Some(v) = num(b"ticks:", 10) {
                    s.ticks = v;
                } else if let Some(v) = num(b"settime flags:", 8) {
                    s.settime_flags = v as u32;
                } else if let Some(v) = field(line, b"it_value:").and_then(timespec_ns) {
                    s.value_ns = v;
                    seen += 1;
                } else if let Some(v) = field(line, b"it_interval:").and_then(timespec_ns) {
                    s.interval_ns = v;
                    seen += 1;
                }
            })?;
            f.pipe = checksum(bytes_of(&TimerFdState { realtime_ns: 0, ..s }));
            (seen == 3).then(|| strings.add(bytes_of(&s)))
        }
        FdKind::SignalFd => {
            let mut s = None;
            read(f.fd, scratch, |line| {
                if let Some((v, _)) = field(line, b"sigmask:").and_then(|v| number(v, 16)) {
                    s = Some(SignalFdState { mask: v });
                }
            })?;
            f.pipe = s.map_or(0, |s| s.mask);
            s.map(|s| strings.add(bytes_of(&s)))
        }
        FdKind::Epoll => {
            // The interest list is recorded once the table is complete
            // (capture_epolls); here only its digest, for the key.
            let mut key = 0u64;
            read(f.fd, scratch, |line| {
                if line.starts_with(b"tfd:") {
                    key = key.rotate_left(7) ^ checksum(line);
                }
            })?;
            f.pipe = key;
            Some(Some(StrRef::default()))
        }
        _ => None,
    };
    match data {
        Some(Some(d)) => {
            f.data = d;
            f.kind = kind as u32;
            Ok(())
        }
        Some(None) => Err(Errno::ENOBUFS), // the string table is full
        None => Ok(()),                    // Lost: fdinfo without the fields
    }
}

/// The fdinfo of `fd`, line by line; an unreadable one leaves the
/// descriptor Lost rather than failing the checkpoint.
fn read(fd: i32, scratch: &mut [u8], each: impl FnMut(&[u8])) -> Result<(), Errno> {
    match fdinfo::for_each_line(fd, scratch, each) {
        Err(Errno::E2BIG) => Err(Errno::E2BIG),
        _ => Ok(()),
    }
}

/// Records the interest list of every epoll of the table (all other
/// descriptors described): one [`EpollTarget`] per `tfd:` line.
/// `counts` is scratch for one counter per table entry (see [`Numbers`]).
pub fn capture_epolls(
    fds: &mut [Fd],
    strings: &mut dyn Strings,
    scratch: &mut [u8],
    counts: &mut [u32],
) -> Result<(), Errno> {
    for i in 0..fds.len() {
        if fds[i].kind != FdKind::Epoll as u32 {
            continue;
        }
        let epfd = fds[i].fd;
        let mut numbers = Numbers::new(fds, counts);
        fdinfo::for_each_line(epfd, scratch, |line| {
            if let Some((tfd, _)) = field(line, b"tfd:").and_then(fdinfo::signed) {
                numbers.count(tfd as i32);
            }
        })?;
        let mut list = Appender::default();
        let (mut failed, mut orphan) = (None, None);
        fdinfo::for_each_line(epfd, scratch, |line| {
            if failed.is_some() || !line.starts_with(b"tfd:") {
                return;
            }
            let Some(t) = parse_target(line, epfd, &mut numbers) else { return };
            if t.fd < 0 {
                orphan = Some(t.tfd);
            }
            if let Err(e) = list.add(strings, bytes_of(&t)) {
                failed = Some(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        fds[i].data = list.whole;
        if let Some(tfd) = orphan {
            warn_orphan(&mut fds[i], tfd);
        }
    }
    Ok(())
}

/// How many of one epoll's registrations name each descriptor number, and
/// how many of those the walk in fdinfo's order has passed: a number
/// closed and reused while its old file stayed registered names two, told
/// apart by their rank (`kcmp`'s `toff`). Kept per table entry in
/// `counts` (total in the low half, passed in the high half), and for
/// numbers no longer open in a short list (beyond it the rank is taken
/// as 0: only a number shared by more closed-and-reused registrations
/// than the list holds could then be misplaced).
struct Numbers<'a> {
    fds: &'a [Fd],
    counts: &'a mut [u32],
    closed: [(i32, u32); 16],
    n_closed: usize,
}

const PASSED: u32 = 1 << 16;

impl<'a> Numbers<'a> {
    fn new(fds: &'a [Fd], counts: &'a mut [u32]) -> Self {
        let counts = &mut counts[..fds.len()];
        counts.fill(0);
        Numbers { fds, counts, closed: [(0, 0); 16], n_closed: 0 }
    }

    fn count(&mut self, tfd: i32) {
        if let Some(i) = index_of(self.fds, tfd) {
            self.counts[i] = (self.counts[i] + 1).min(PASSED - 1);
        }
    }

    /// The table entry numbered `tfd` (if open), how many registrations
    /// name it, and this one's rank among them (the walk moves on).
    fn next(&mut self, tfd: i32) -> (Option<usize>, u32, u32) {
        if let Some(i) = index_of(self.fds, tfd) {
            let c = self.counts[i];
            self.counts[i] += PASSED;
            return (Some(i), c & (PASSED - 1), c >> 16);
        }
        let n = self.n_closed;
        if let Some((_, rank)) = self.closed[..n].iter_mut().find(|(number, _)| *number == tfd) {
            *rank += 1;
            return (None, 0, *rank);
        }
        if n < self.closed.len() {
            self.closed[n] = (tfd, 0);
            self.n_closed += 1;
        }
        (None, 0, 0)
    }
}

/// The index of descriptor `fd` in the table (which is in descriptor order).
fn index_of(fds: &[Fd], fd: i32) -> Option<usize> {
    fds.binary_search_by_key(&fd, |g| g.fd).ok()
}

/// A registration whose file no descriptor of the process holds (it was
/// passed away, or is held by a mapping): it cannot be added again. Named
/// on stderr; with `--strict` the epoll counts as lost (the checkpoint
/// fails, naming it).
fn warn_orphan(f: &mut Fd, tfd: i32) {
    if crate::config::get().strict {
        f.kind = FdKind::Lost as u32;
        return;
    }
    let mut l = crate::msg::Line::new();
    let _ = core::fmt::Write::write_fmt(
        &mut l,
        format_args!(
            "ckpt: warning: fd {} (epoll): its registration of fd {tfd} is of a file no descriptor holds; it will be dropped at restart",
            f.fd
        ),
    );
    l.emit();
}

/// One `tfd:` line, its file found in the table.
fn parse_target(line: &[u8], epfd: i32, numbers: &mut Numbers) -> Option<EpollTarget> {
    let (tfd, _) = field(line, b"tfd:").and_then(fdinfo::signed)?;
    let tfd = tfd as i32;
    let events = after(line, b"events:", 16)? as u32;
    let data = after(line, b"data:", 16)?;
    let ino = after(line, b"ino:", 16)?;
    let dev = user_dev(after(line, b"sdev:", 16)?);
    let fd = find_target(numbers, epfd, tfd, ino, dev);
    Some(EpollTarget { tfd, fd, events, _pad: 0, data })
}

/// The descriptor of the table whose open file is the one registered in
/// `epfd` as `tfd` (with inode `ino` on device `dev`): `tfd` itself if it
/// still is, else another descriptor of that file; -1 if none is open.
///
/// Usually `tfd` still is that file, and when `tfd` names this
/// registration only, the kernel says so in a lookup
/// ([`sys::events::epoll_registered`]). Otherwise `kcmp(KCMP_EPOLL_TFD)`
/// decides, among the descriptors of that inode; it walks the interest
/// list from its start, so asking it about each of n registrations would
/// cost n²/2 steps: it is kept for the numbers that are not what they were.
fn find_target(numbers: &mut Numbers, epfd: i32, tfd: i32, ino: u64, dev: u64) -> i32 {
    let (at, named, rank) = numbers.next(tfd);
    let fds = numbers.fds;
    let same = |g: &&Fd| g.ino == ino && g.dev == dev && g.fd != epfd;
    let by_number = at.map(|i| &fds[i]).filter(same);
    if let Some(g) = by_number {
        // A socket's inode is its own (one open file per socket, dups aside).
        let socket = g.mode & sys::S_IFMT == sys::S_IFSOCK;
        if socket || (named == 1 && sys::events::epoll_registered(epfd, tfd) == Ok(true)) {
            return tfd;
        }
    }
    let mut kcmp_works = true;
    for g in by_number.into_iter().chain(fds.iter().filter(same)) {
        match sys::events::kcmp_epoll_tfd(g.fd, epfd, tfd, rank) {
            Ok(0) => return g.fd,
            Ok(_) => {}
            Err(_) => kcmp_works = false,
        }
    }
    if kcmp_works {
        return -1;
    }
    // No kcmp: the number if it is still that inode, else the first such.
    by_number.or_else(|| fds.iter().find(same)).map_or(-1, |g| g.fd)
}

/// A device number as the kernel prints it (`MAJOR << 20 | MINOR`), in
/// the encoding of `stat`'s `st_dev`.
fn user_dev(kdev: u64) -> u64 {
    let (major, minor) = (kdev >> 20, kdev & 0xf_ffff);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Appends pieces to the string table, keeping one reference to all of
/// them (the table appends: the pieces are consecutive).
#[derive(Default)]
pub struct Appender {
    pub whole: StrRef,
    started: bool,
}

impl Appender {
    pub fn add(&mut self, strings: &mut dyn Strings, bytes: &[u8]) -> Result<(), Errno> {
        let piece = strings.add(bytes).ok_or(Errno::ENOBUFS)?;
        if !self.started {
            self.whole = piece;
            self.started = true;
        } else if piece.offset != self.whole.offset + self.whole.len {
            return Err(Errno::EINVAL);
        } else {
            self.whole.len += piece.len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        assert_eq!(user_dev(0x10), 0x10);
        assert_eq!(user_dev((8 << 20) | 1), 0x801);
        assert_eq!(user_dev((259 << 20) | 0x12345), 0x12300 << 12 | 0x45 | 259 << 8);
    }
}
