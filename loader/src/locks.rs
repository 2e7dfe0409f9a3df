//! Re-acquiring the file locks the program held (`FileLock` records of a
//! regular file's entry): `fcntl` record locks and OFD locks on the
//! reopened descriptor, `flock` locks likewise, never waiting. A lock that
//! another process holds now is not taken: a warning says so, or with
//! `--strict` the restart is refused before anything has changed
//! ([`check`]).
//!
//! A program that stopped at its checkpoint left its locks to a lock
//! keeper (preload/src/keeper.rs), reached on the abstract socket named
//! after the image's header: [`release`] asks it to let go just before the
//! locks are taken again here, then taking one that another process got
//! in between is retried for up to a second. (A keeper of another user at
//! that name is ignored, with a warning; no keeper is today's behaviour.)

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use ckpt_image::events::{record, FileLock, LOCK_FLOCK, LOCK_OFD};
use ckpt_image::{Fd, FdKind, Meta};
use ckpt_sys::events as ev;
use ckpt_sys::locks::{self as lk, Flock, KeeperAddr, KEEPER_RELEASE, KEEPER_RELEASED};
use ckpt_sys::{self as sys, msg::Line, Errno, OwnedFd};

use crate::args::Options;
use crate::fail::Fail;
use crate::files::{self, Out};

fn locks<'m>(meta: &'m Meta, f: &Fd) -> impl Iterator<Item = FileLock> + 'm {
    let data = if files::kind(f) == FdKind::File { meta.string(f.data).unwrap_or_default() } else { &[] };
    (0..data.len() / core::mem::size_of::<FileLock>()).filter_map(move |i| record(data, i))
}

fn flock_of(l: &FileLock) -> Flock {
    Flock {
        l_type: if l.write != 0 { lk::F_WRLCK } else { lk::F_RDLCK },
        l_start: l.start as i64,
        l_len: l.len as i64,
        ..Flock::default()
    }
}

/// How long a lock the keeper let go of is tried again, if another
/// process took it in between.
const RETRY_NS: u64 = 1_000_000_000;

/// When a keeper released this process's locks ([`release`]), for
/// [`take`]'s retries (CLOCK_MONOTONIC ns; 0: no keeper did).
static RELEASED_AT: AtomicU64 = AtomicU64::new(0);

/// Takes lock `l` through descriptor `fd`; if a keeper held it until just
/// now, waits for it (up to [`RETRY_NS`] after the release).
fn take(fd: i32, l: &FileLock) -> Result<(), Errno> {
    loop {
        match take_now(fd, l) {
            Err(Errno::EAGAIN | Errno::EACCES)
                if RELEASED_AT.load(SeqCst) != 0
                    && sys::clock_ns(sys::CLOCK_MONOTONIC) < RELEASED_AT.load(SeqCst) + RETRY_NS =>
            {
                sys::sleep_ns(10_000_000)
            }
            r => return r,
        }
    }
}

fn take_now(fd: i32, l: &FileLock) -> Result<(), Errno> {
    match l.kind {
        LOCK_FLOCK => lk::flock(fd, if l.write != 0 { lk::LOCK_EX } else { lk::LOCK_SH } | lk::LOCK_NB),
        LOCK_OFD => lk::set_lock(fd, lk::F_OFD_SETLK, &flock_of(l)),
        _ => lk::set_lock(fd, lk::F_SETLK, &flock_of(l)),
    }
}

fn describe(l: &FileLock, line: &mut Line) {
    let kind = match l.kind {
        LOCK_FLOCK => "flock",
        LOCK_OFD => "OFD",
        _ => "record",
    };
    let mode = if l.write != 0 { "write" } else { "read" };
    let _ = write!(line, "its {kind} {mode} lock");
    if l.kind != LOCK_FLOCK {
        let _ = match l.len {
            0 => write!(line, " (bytes {} to the end)", l.start),
            n => write!(line, " (bytes {} to {})", l.start, l.start + n - 1),
        };
    }
}

/// Whether the image's process holds a lock on the file `dev`:`ino`.
pub fn held_on(meta: &Meta, dev: u64, ino: u64) -> bool {
    meta.fds().any(|f| f.dev == dev && f.ino == ino && locks(meta, &f).next().is_some())
}

/// After `f` is in place at its number: takes its locks again.
pub fn restore(meta: &Meta, f: &Fd, out: &Out) {
    for l in locks(meta, f) {
        match take(f.fd, &l) {
            Ok(()) => out.verbose(meta, f, format_args!(": lock re-acquired")),
            Err(e) => {
                let mut line = Line::new();
                describe(&l, &mut line);
                let why = match e {
                    Errno::EAGAIN | Errno::EACCES => "is held by another process",
                    _ => sys::errno_text(e),
                };
                out.warn(
                    meta,
                    f,
                    format_args!(": {} {why}; not re-acquired", core::str::from_utf8(line.as_bytes()).unwrap_or("")),
                );
            }
        }
    }
}

/// With `--strict`, before the point of no return: refuses if a lock of
/// `f` is held by another process now (tested through a descriptor of our
/// own, which is closed again).
pub fn check(meta: &Meta, f: &Fd, opts: &Options) -> Result<(), Fail> {
    if !opts.strict || locks(meta, f).next().is_none() {
        return Ok(());
    }
    let mut buf = [0u8; 4097];
    let Some(path) = files::c_path(meta, f, &mut buf) else { return Ok(()) };
    let Ok(fd) = sys::open(path, sys::O_RDONLY | sys::O_CLOEXEC) else { return Ok(()) };
    let busy = locks(meta, f).find(|l| match l.kind {
        LOCK_FLOCK => {
            let op = if l.write != 0 { lk::LOCK_EX } else { lk::LOCK_SH };
            let free = lk::flock(&fd, op | lk::LOCK_NB).is_ok();
            let _ = lk::flock(&fd, lk::LOCK_UN);
            !free
        }
        _ => {
            let mut probe = flock_of(l);
            lk::get_lock(&fd, lk::F_OFD_GETLK, &mut probe).is_ok() && probe.l_type != lk::F_UNLCK
        }
    });
    drop(fd);
    // (Held by this image's keeper: they are the program's own.)
    let Some(l) = busy.filter(|_| !has_keeper(meta)) else { return Ok(()) };
    let mut line = Line::new();
    let _ = write!(line, "fd {} (", f.fd);
    line.push(meta.string(f.path).unwrap_or(b"?")).push(b"): ");
    describe(&l, &mut line);
    line.push(b" is held by another process; not restarting (--strict)");
    Err(crate::fail::composed(&line))
}

/// What listens at the keeper's address of an image.
enum Keeper {
    None,
    /// The keeper, connected: the connection and its pid.
    Ours(OwnedFd, i32),
    /// A process of another user (its uid).
    Foreign(u32),
}

/// Connects to the keeper of the image `meta`.
fn keeper(meta: &Meta) -> Keeper {
    let h = &meta.header;
    let addr = KeeperAddr::new(sys::geteuid(), h.pid, h.created_ns);
    let Ok(fd) = ev::socket(ev::AF_UNIX, ev::SOCK_STREAM | ev::SOCK_CLOEXEC, 0) else { return Keeper::None };
    let found = match ev::connect(&fd, addr.as_bytes()).and_then(|()| ev::peer_cred(&fd)) {
        Ok((pid, uid)) if uid == sys::geteuid() => return Keeper::Ours(fd, pid),
        Ok((_, uid)) => Keeper::Foreign(uid),
        Err(_) => Keeper::None,
    };
    found
}

/// Whether the keeper of the image `meta` is there (and ours).
fn has_keeper(meta: &Meta) -> bool {
    matches!(keeper(meta), Keeper::Ours(..))
}

/// Before the first descriptor is reopened: if the image's process has
/// locks, has their keeper (if one is there) let go of them.
pub fn release(meta: &Meta, out: &Out) {
    if !(0..meta.n_fds()).any(|i| locks(meta, &meta.fd(i)).next().is_some()) {
        return;
    }
    let mut l = Line::new();
    match keeper(meta) {
        Keeper::None => return,
        Keeper::Foreign(uid) => {
            let _ = write!(
                l,
                "restart: warning: the lock keeper's address of this image is taken by a process of another \
                 user (uid {uid}); ignored"
            );
        }
        Keeper::Ours(fd, pid) => {
            let mut answer = [0u8; 1];
            let released = ev::send(&fd, &[KEEPER_RELEASE], ev::MSG_NOSIGNAL) == Ok(1)
                && sys::poll_readable(&fd, 10 * RETRY_NS) == Ok(true)
                && ev::recv(&fd, &mut answer, 0) == Ok(1)
                && answer[0] == KEEPER_RELEASED;
            drop(fd);
            if released {
                RELEASED_AT.store(sys::clock_ns(sys::CLOCK_MONOTONIC).max(1), SeqCst);
                if !out.verbose {
                    return;
                }
                l.push(b"restart: the file locks were released by their lock keeper");
            } else {
                l.push(b"restart: warning: the lock keeper did not release the file locks");
            }
            if pid > 0 {
                let _ = write!(l, " (pid {pid})"); // (0: in another pid namespace)
            }
        }
    }
    out.emit(&mut l);
}
