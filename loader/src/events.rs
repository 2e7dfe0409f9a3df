//! Recreating event descriptors: eventfd, timerfd, signalfd, epoll (and
//! inotify, in `inotify.rs`)
//! (their records: `ckpt_image::events`). Called by `files::restore` for
//! entries of these kinds; single-threaded, every signal blocked.
//!
//! * an eventfd gets its counter back (written into a new one) and
//!   `EFD_SEMAPHORE`;
//! * a timerfd is armed again on its clock: a relative timer with the time
//!   it had left, an absolute `CLOCK_REALTIME` one at its deadline (which
//!   may have passed: it then expires at once), and gets the expirations
//!   the program had not read yet (`TFD_IOC_SET_TICKS`);
//! * a signalfd gets its mask (the signals pending for it are the
//!   process's, restored by `process.rs`);
//! * an epoll is recreated last, once every descriptor it watches is in
//!   place (an epoll that watches another epoll after that one), and its
//!   registrations are added again in the order fdinfo listed them, with
//!   their events mask and data. A registration made under a descriptor
//!   number since closed is added under that number again (the file is
//!   dup'ed there for the call) so that the program's `EPOLL_CTL_MOD` and
//!   `DEL` with that number keep working.
//!
//! Status flags (`O_NONBLOCK`) come from the entry's saved flags.

use ckpt_image::events::{record, EpollTarget, EventFdState, SignalFdState, TimerFdState};
use core::mem::size_of;

use ckpt_image::{Fd, FdKind, Meta};
use ckpt_sys::events::{self as ev, ITimerSpec};
use ckpt_sys::{self as sys, BorrowedFd, Errno, OwnedFd};

use crate::args::Options;
use crate::files::{self, Out};

const CLOCK_REALTIME_ALARM: u32 = 8;
const NS: u64 = 1_000_000_000;

/// Whether entries of kind `k` are created here (epoll included).
pub fn handles(k: FdKind) -> bool {
    matches!(k, FdKind::EventFd | FdKind::TimerFd | FdKind::SignalFd | FdKind::Epoll | FdKind::Inotify | FdKind::Memfd)
}

/// Creates the eventfd, timerfd or signalfd of `f`; returns the new
/// (temporary) descriptor, with `f`'s status flags.
pub fn create(meta: &Meta, f: &Fd, out: &Out) -> Result<OwnedFd, Errno> {
    let data = meta.string(f.data).unwrap_or_default();
    let fd = match files::kind(f) {
        FdKind::EventFd => {
            let s: EventFdState = record(data, 0).ok_or(Errno::EINVAL)?;
            let fd = ev::eventfd2(0, if s.semaphore != 0 { ev::EFD_SEMAPHORE } else { 0 })?;
            if s.count != 0 {
                sys::write(&fd, &s.count.to_ne_bytes())?;
            }
            out.verbose(meta, f, format_args!(": eventfd recreated, counter {}", s.count));
            fd
        }
        FdKind::TimerFd => {
            let s: TimerFdState = record(data, 0).ok_or(Errno::EINVAL)?;
            let fd = ev::timerfd_create(s.clockid as i32, 0)?;
            arm(fd.borrow(), &s)?;
            if s.ticks != 0 {
                if let Err(e) = ev::timerfd_set_ticks(&fd, s.ticks) {
                    out.warn(
                        meta,
                        f,
                        format_args!(": its {} unread expirations are lost: {}", s.ticks, sys::errno_text(e)),
                    );
                }
            }
            out.verbose(meta, f, format_args!(": timerfd rearmed, {} ns left, {} pending", s.value_ns, s.ticks));
            fd
        }
        FdKind::SignalFd => {
            let s: SignalFdState = record(data, 0).ok_or(Errno::EINVAL)?;
            let fd = ev::signalfd4(s.mask, 0)?;
            out.verbose(meta, f, format_args!(": signalfd recreated, mask {:#x}", s.mask));
            fd
        }
        FdKind::Inotify => crate::inotify::create(meta, f, out)?,
        FdKind::Memfd => crate::memfd::create(meta, f, out)?,
        _ => return Err(Errno::EINVAL),
    };
    let _ = sys::fcntl(&fd, sys::F_SETFL, f.flags as u64);
    Ok(fd)
}

/// Arms a new timerfd as the saved one was.
fn arm(fd: BorrowedFd, s: &TimerFdState) -> Result<(), Errno> {
    if s.value_ns == 0 && s.interval_ns == 0 {
        return Ok(()); // disarmed
    }
    let realtime = s.clockid == sys::CLOCK_REALTIME as u32 || s.clockid == CLOCK_REALTIME_ALARM;
    let (flags, value) = if s.settime_flags as i32 & ev::TFD_TIMER_ABSTIME != 0 && realtime {
        (s.settime_flags as i32, s.realtime_ns.saturating_add(s.value_ns))
    } else {
        // Relative (and absolute timers on clocks that a reboot resets):
        // the time that was left. Zero would disarm an armed timer.
        (0, s.value_ns.max(1))
    };
    let spec = ITimerSpec {
        interval: [(s.interval_ns / NS) as i64, (s.interval_ns % NS) as i64],
        value: [(value / NS) as i64, (value % NS) as i64],
    };
    ev::timerfd_settime(fd, flags, &spec)
}

/// Recreates every epoll of the table (each after the epolls it watches),
/// then the descriptors that shared an epoll's open file.
pub fn restore_epolls(meta: &Meta, opts: &Options, out: &Out) {
    let n = meta.n_fds();
    let is_epoll = |i: usize| files::kind(&meta.fd(i)) == FdKind::Epoll && files::wanted(&meta.fd(i), opts);
    let pending = |i: usize| is_epoll(i) && !files::done(i) && files::shared_with(meta, i, &meta.fd(i)).is_none();
    loop {
        let mut progress = false;
        let mut left = false;
        for i in 0..n {
            if !pending(i) {
                continue;
            }
            left = true;
            let f = meta.fd(i);
            // Epolls this one watches come first.
            // (A dup of an epoll is placed once the epoll it shares is.)
            let source = |k: usize| files::shared_with(meta, k, &meta.fd(k)).unwrap_or(k);
            let waits =
                targets(meta, &f).any(|t| index_of(meta, t.fd).is_some_and(|k| source(k) != i && pending(source(k))));
            if !waits {
                restore_epoll(meta, i, &f, out);
                progress = true;
            }
        }
        if !left {
            break;
        }
        if !progress {
            // Cannot happen (the kernel refuses loops of epolls); restore
            // the rest as they are.
            for i in (0..n).filter(|&i| pending(i)) {
                restore_epoll(meta, i, &meta.fd(i), out);
            }
            break;
        }
    }
    for i in 0..n {
        let f = meta.fd(i);
        if is_epoll(i) && !files::done(i) {
            files::restore_shared(meta, i, &f, out);
        }
    }
}

fn targets<'m>(meta: &'m Meta, f: &Fd) -> impl Iterator<Item = EpollTarget> + 'm {
    let data = meta.string(f.data).unwrap_or_default();
    (0..data.len() / size_of::<EpollTarget>()).filter_map(move |i| record(data, i))
}

/// The index of descriptor `fd` in the table (sorted by number).
fn index_of(meta: &Meta, fd: i32) -> Option<usize> {
    let (mut lo, mut hi) = (0, meta.n_fds());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let g = meta.fd(mid).fd;
        if g == fd {
            return Some(mid);
        } else if g < fd {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

fn restore_epoll(meta: &Meta, i: usize, f: &Fd, out: &Out) {
    files::set_done(i);
    let ep = match ev::epoll_create1(sys::O_CLOEXEC) {
        Ok(ep) => ep,
        Err(e) => {
            out.warn(meta, f, format_args!(": cannot recreate the epoll: {}; it is /dev/null", sys::errno_text(e)));
            return files::put_null(meta, f, out);
        }
    };
    let mut added = 0;
    for t in targets(meta, f) {
        match add(meta, ep.borrow(), &t, out) {
            Ok(()) => added += 1,
            Err(why) => out.warn(meta, f, format_args!(": the registration of fd {} was dropped: {why}", t.tfd)),
        }
    }
    if let Err(e) = files::place(ep, f) {
        out.warn(meta, f, format_args!(": cannot be put at its number: {}", sys::errno_text(e)));
        return;
    }
    files::set_placed(i);
    out.verbose(meta, f, format_args!(": epoll recreated with {added} registrations"));
}

/// Adds one registration to the new epoll `ep`.
fn add(meta: &Meta, ep: BorrowedFd, t: &EpollTarget, out: &Out) -> Result<(), &'static str> {
    let k = index_of(meta, t.fd).ok_or("its file was closed")?;
    let target = meta.fd(k);
    if !files::placed(k) && files::shared_with(meta, k, &target).is_some_and(files::placed) {
        // A dup of an epoll placed already: it goes in place now.
        files::restore_shared(meta, k, &target, out);
    }
    let placed = files::placed(k) || (0..=2).contains(&t.fd);
    if !placed {
        return Err("its file was not restored");
    }
    let mut number = t.fd;
    // Registered under a number since closed: that number again, if free.
    let mut borrowed = false;
    if t.tfd != t.fd
        && t.tfd != ep.as_raw()
        && index_of(meta, t.tfd).is_none()
        && sys::dup3(t.fd, t.tfd, sys::O_CLOEXEC).is_ok()
    {
        number = t.tfd;
        borrowed = true;
    }
    let r = ev::epoll_ctl(ep, ev::EPOLL_CTL_ADD, number, t.events, t.data);
    if borrowed {
        sys::close(number);
    }
    r.map_err(sys::errno_text)
}
