//! Re-acquiring the file locks the program held (`FileLock` records of a
//! regular file's entry): `fcntl` record locks and OFD locks on the
//! reopened descriptor, `flock` locks likewise, never waiting. A lock that
//! another process holds now is not taken: a warning says so, or with
//! `--strict` the restart is refused before anything has changed
//! ([`check`]).

use core::fmt::Write;

use ckpt_image::events::{record, FileLock, LOCK_FLOCK, LOCK_OFD};
use ckpt_image::{Fd, FdKind, Meta};
use ckpt_sys::locks::{self as lk, Flock};
use ckpt_sys::{self as sys, msg::Line, Errno};

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

/// Takes lock `l` through descriptor `fd`.
fn take(fd: i32, l: &FileLock) -> Result<(), Errno> {
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
    let Some(l) = busy else { return Ok(()) };
    let mut line = Line::new();
    let _ = write!(line, "fd {} (", f.fd);
    line.push(meta.string(f.path).unwrap_or(b"?")).push(b"): ");
    describe(&l, &mut line);
    line.push(b" is held by another process; not restarting (--strict)");
    Err(crate::fail::composed(&line))
}
