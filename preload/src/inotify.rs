//! inotify instances (`FdKind::Inotify`): the kernel shows a watch's inode
//! in fdinfo, never its path, so the library records the path when the
//! program adds the watch (`inotify_add_watch` is interposed), and the
//! capture pairs each `inotify wd:` line of fdinfo with the path recorded
//! for that descriptor and watch descriptor.
//!
//! The record lives in the library's own static memory, which is in the
//! image: after a restart the program's watches still have their paths,
//! for the next checkpoint. A watch added with a raw system call (Go's
//! `syscall` package) has no recorded path: its instance is Lost, with a
//! warning. Events queued at checkpoint time are not kept.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, CStr};
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ckpt_image::events::InotifyWatch;
use ckpt_image::{bytes_of, checksum, Fd, FdKind, StrRef};
use ckpt_sys::{self as sys, events as ev, Errno};

use crate::events::Appender;
use crate::fdinfo::{self, after};
use crate::files::Strings;

const MAX_WATCHES: usize = 4096;
const ARENA: usize = 256 << 10;

#[derive(Clone, Copy)]
struct Watch {
    fd: i32,
    wd: i32,
    off: u32,
    len: u32,
}

struct Table {
    watches: [Watch; MAX_WATCHES],
    arena: [u8; ARENA],
    used: usize,
}

struct Global {
    lock: AtomicBool,
    /// Entries of `table.watches` complete and visible to the capture.
    n: AtomicUsize,
    table: UnsafeCell<Table>,
}
// SAFETY: `table` is written only under `lock`, and an entry only before
// `n` makes it visible (Release); readers take `n` with Acquire and read
// entries below it, which are never written again.
unsafe impl Sync for Global {}

static WATCHES: Global = Global {
    lock: AtomicBool::new(false),
    n: AtomicUsize::new(0),
    table: UnsafeCell::new(Table {
        watches: [Watch { fd: 0, wd: 0, off: 0, len: 0 }; MAX_WATCHES],
        arena: [0; ARENA],
        used: 0,
    }),
};

/// inotify_add_watch(2), which also records the watch's absolute path.
///
/// # Safety
/// As inotify_add_watch(2): `path` is a NUL-terminated string.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn inotify_add_watch(fd: c_int, path: *const c_char, mask: u32) -> c_int {
    // SAFETY: the caller passes a C string.
    let p = unsafe { CStr::from_ptr(path) };
    match ev::inotify_add_watch(fd, p, mask) {
        Ok(wd) => {
            record(fd, wd, p.to_bytes());
            wd
        }
        Err(e) => {
            // SAFETY: the calling thread's errno.
            unsafe { *libc::__errno_location() = e.into_raw() };
            -1
        }
    }
}

/// Appends (fd, wd, absolute path) to the table, if it has room.
fn record(fd: i32, wd: i32, path: &[u8]) {
    while WATCHES.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    // SAFETY: under the lock; entries at or above `n` are not read.
    let t = unsafe { &mut *WATCHES.table.get() };
    let n = WATCHES.n.load(Ordering::Relaxed);
    let start = t.used;
    let mut len = 0;
    if path.first() != Some(&b'/') {
        if let Ok(cwd) = sys::getcwd(&mut t.arena[start..]) {
            len = cwd;
            if let Some(slash) = t.arena.get_mut(start + len) {
                *slash = b'/';
                len += 1;
            }
        }
    }
    let end = start + len + path.len();
    if n < MAX_WATCHES && end <= ARENA && (path.first() == Some(&b'/') || len > 0) {
        t.arena[start + len..end].copy_from_slice(path);
        t.watches[n] = Watch { fd, wd, off: start as u32, len: (end - start) as u32 };
        t.used = end;
        WATCHES.n.store(n + 1, Ordering::Release);
    }
    WATCHES.lock.store(false, Ordering::Release);
}

/// The path last recorded for watch `wd` of instance `fd`.
fn path_of(fd: i32, wd: i32) -> Option<&'static [u8]> {
    let n = WATCHES.n.load(Ordering::Acquire);
    // SAFETY: entries below `n` are complete and never written again; the
    // arena bytes they name likewise.
    let t = unsafe { &*WATCHES.table.get() };
    let w = t.watches[..n].iter().rev().find(|w| w.fd == fd && w.wd == wd)?;
    t.arena.get(w.off as usize..(w.off + w.len) as usize)
}

/// Records the watches of inotify instance `f` (wd, mask, path) in
/// `f.data`; leaves it Lost, with a line on stderr, if a watch has no
/// recorded path. Two passes over fdinfo (the program is stopped: the same
/// lines): the paths into the string table, then the records, which must
/// be consecutive there.
pub fn describe(f: &mut Fd, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    let fd = f.fd;
    let watch = |line: &[u8]| -> Option<(i32, u32)> {
        if !line.starts_with(b"inotify ") {
            return None;
        }
        Some((after(line, b"wd:", 16)? as i32, after(line, b"mask:", 16)? as u32))
    };
    let mut paths = Appender::default();
    let (mut missing, mut failed, mut key) = (None, None, 0u64);
    fdinfo::for_each_line(fd, scratch, |line| {
        let Some((wd, _)) = watch(line) else { return };
        key = key.rotate_left(7) ^ checksum(line);
        match path_of(fd, wd) {
            Some(path) if failed.is_none() => failed = paths.add(strings, path).err(),
            Some(_) => {}
            None => missing = Some(wd),
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(wd) = missing {
        if crate::config::get().strict {
            return Ok(()); // Lost: the checkpoint fails, naming it
        }
        let mut l = crate::msg::Line::new();
        let _ = write!(l, "ckpt: warning: fd {fd} (inotify): watch {wd} was not added through inotify_add_watch, ");
        l.push(b"its path is unknown; it will be /dev/null after a restart");
        l.emit();
        return Ok(()); // Lost
    }
    let mut list = Appender::default();
    let mut at = paths.whole.offset;
    fdinfo::for_each_line(fd, scratch, |line| {
        let Some((wd, mask)) = watch(line) else { return };
        let len = path_of(fd, wd).map_or(0, |p| p.len() as u32);
        let w = InotifyWatch { wd, mask, path: StrRef { offset: at, len } };
        at += len;
        if failed.is_none() {
            failed = list.add(strings, bytes_of(&w)).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    f.data = list.whole;
    f.pipe = key;
    f.kind = FdKind::Inotify as u32;
    Ok(())
}
