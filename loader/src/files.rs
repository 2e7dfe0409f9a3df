//! Reopening the program's file descriptors (`ckpt_image::Fd`), each at its
//! number, with its flags and offset.
//!
//! [`check`] runs before the point of no return: it looks at every file the
//! image names (stat by path) and says on stderr, one line per descriptor,
//! what will not come back as it was:
//!
//! ```text
//! restart: warning: fd 3 (/tmp/job/log): the file was deleted; it is /dev/null
//! restart: warning: fd 4 (/tmp/job/in): the file was replaced by another since the checkpoint; reopened anyway
//! restart: warning: fd 4 (/tmp/job/in): the file was truncated to 10 bytes, below its offset 4096; reopened anyway
//! restart: warning: fd 6 (/tmp/job/data): the file grew from 100 to 180 bytes since the checkpoint; reopened anyway
//! restart: warning: fd 7 (/tmp/job/key): cannot be reopened: Permission denied (EACCES); it is /dev/null
//! restart: warning: fd 5 (socket:[1234]) was not restored; it is /dev/null
//! ```
//!
//! With `--strict`, the first such finding is the restart's one-line error
//! instead, before anything has changed.
//!
//! [`restore`] then, single-threaded and with every signal blocked:
//!
//! 1. closes every descriptor above 2 (the loader holds none by then: the
//!    image is closed), so that the program finds exactly its own;
//! 2. raises the soft `RLIMIT_NOFILE` if the program's highest descriptor
//!    needs it (the program's own limits are restored afterwards);
//! 3. reopens each file by path with its saved flags (minus O_CREAT,
//!    O_EXCL, O_TRUNC; FIFOs non-blocking first, so that the open cannot
//!    hang, their write-only ends after their read ends), places it at its
//!    number (`dup3`), seeks to its offset; recreates each pipe whose both
//!    ends were in the process and writes back the bytes that were in it;
//!    puts `/dev/null` where something cannot be reopened (never something
//!    else, never silently);
//! 4. makes descriptors that shared an open file description (dup, `2>&1`)
//!    share one again (the capture marks them, see [`shared_with`]).
//!
//! Stdin, stdout and stderr that the program got from its launcher stay
//! restart's own; one the program opened or `dup2`'ed there itself (marked
//! `FD_NOT_INHERITED` by the capture: `sort -o FILE`) is reopened like any
//! other descriptor. With `--keep-stdio` all three are reopened like any
//! other descriptor (a stdout file
//! continues at its offset), except those that cannot be (a pipe or a
//! terminal that is gone), which stay restart's own, with a warning.
//! Messages during [`restore`] go to restart's own stderr even when the
//! program's replaces it.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::fmt::Write;

use ckpt_image::{Fd, FdKind, Meta, RegionKind, StdioIdentity, FD_NOT_INHERITED, MAX_FDS, STDIO_IDENTITY_MAGIC};
use ckpt_sys::{self as sys, msg::Line, BorrowedFd, Errno, OwnedFd};

use crate::args::Options;
use crate::fail::Fail;
use crate::{events, locks, sockets};

use ckpt_sys::PATH_MAX;
/// Largest amount of pipe data written back (the kernel's largest pipe).
const MAX_PIPE: usize = 1 << 30;

/// What [`check`] decided for an entry; [`restore`] follows it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Verdict {
    /// Nothing known: reopen, warn if that fails.
    Reopen = 0,
    /// Warned already (replaced, truncated): reopen anyway.
    ReopenWarned = 1,
    /// Warned already: `/dev/null` goes at this number.
    Null = 2,
    /// Warned already: a standard descriptor that stays restart's own.
    KeepOwn = 3,
}

/// Per-entry state kept in the loader's own memory (statics live in the
/// loader's range): the verdicts of [`check`], and which entries
/// [`restore`] has placed.
struct Table {
    verdict: [u8; MAX_FDS as usize],
    done: [u8; MAX_FDS as usize],
    /// The ends of each in-process pipe, chained in table order ([`link_pipes`]):
    /// the group's first entry, and the next entry of the group (`NONE`: last).
    pipe_head: [u32; MAX_FDS as usize],
    pipe_next: [u32; MAX_FDS as usize],
    /// Scratch for [`link_pipes`]'s sort.
    order: [u32; MAX_FDS as usize],
}

struct Global(UnsafeCell<Table>);
// SAFETY: the loader is single-threaded while check and restore run, and
// nothing else touches the table.
unsafe impl Sync for Global {}
static TABLE: Global = Global(UnsafeCell::new(Table {
    verdict: [0; MAX_FDS as usize],
    done: [0; MAX_FDS as usize],
    pipe_head: [0; MAX_FDS as usize],
    pipe_next: [0; MAX_FDS as usize],
    order: [0; MAX_FDS as usize],
}));
const NONE: u32 = u32::MAX;

/// Lends the table to `f`. `f` never calls back into this function (the
/// uses below are leaf ones), so the one `&mut` is the only one alive.
fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    // SAFETY: see Global: one thread; and no nested borrow (above).
    f(unsafe { &mut *TABLE.0.get() })
}

fn verdict(i: usize) -> Verdict {
    match with_table(|t| t.verdict.get(i).copied().unwrap_or(0)) {
        1 => Verdict::ReopenWarned,
        2 => Verdict::Null,
        3 => Verdict::KeepOwn,
        _ => Verdict::Reopen,
    }
}

fn set_verdict(i: usize, v: Verdict) {
    with_table(|t| {
        if let Some(slot) = t.verdict.get_mut(i) {
            *slot = v as u8;
        }
    })
}

/// Whether entry `i` was dealt with (placed, or given /dev/null, or left).
pub(crate) fn done(i: usize) -> bool {
    with_table(|t| t.done.get(i).is_some_and(|&d| d != 0))
}

/// Whether entry `i` is in place as what it was (its file, its pipe).
pub(crate) fn placed(i: usize) -> bool {
    with_table(|t| t.done.get(i).is_some_and(|&d| d == 2))
}

pub(crate) fn set_done(i: usize) {
    with_table(|t| {
        if let Some(slot) = t.done.get_mut(i) {
            *slot = 1;
        }
    })
}

pub(crate) fn set_placed(i: usize) {
    with_table(|t| {
        if let Some(slot) = t.done.get_mut(i) {
            *slot = 2;
        }
    })
}

/// Chains the ends of each pipe (entries with the same pipe inode), so that
/// restoring a pipe visits its own ends only: one sort, not a scan of the
/// whole table per pipe (65,536 pipe ends took half a minute that way).
fn link_pipes(meta: &Meta) {
    with_table(|t| link_pipes_in(meta, t))
}

fn link_pipes_in(meta: &Meta, t: &mut Table) {
    let n = meta.n_fds();
    let Table { order, pipe_head, pipe_next, .. } = t;
    let order = &mut order[..n];
    for (k, o) in order.iter_mut().enumerate() {
        *o = k as u32;
    }
    let group = |i: u32| {
        let f = meta.fd(i as usize);
        (!is_pipe(&f), f.pipe, f.dev, f.ino)
    };
    order.sort_unstable_by_key(|&i| (group(i), i));
    for k in 0..n {
        let i = order[k];
        let prev =
            k.checked_sub(1).map(|p| order[p]).filter(|&p| is_pipe(&meta.fd(i as usize)) && group(p) == group(i));
        pipe_next[i as usize] = NONE;
        pipe_head[i as usize] = match prev {
            Some(p) => {
                pipe_next[p as usize] = i;
                pipe_head[p as usize]
            }
            None => i,
        };
    }
}

/// Every entry of the pipe that entry `i` is an end of, in table order.
fn pipe_ends(i: usize) -> impl Iterator<Item = usize> {
    // The table is read afresh at each step (no reference is kept across
    // the caller's own uses of it).
    let head = with_table(|t| t.pipe_head[i]) as usize;
    core::iter::successors(Some(head), |&k| {
        let j = with_table(|t| t.pipe_next[k]);
        (j != NONE).then_some(j as usize)
    })
}

/// The entry that `f` (entry `i`) shares its open file description with:
/// an earlier entry, of the same kind (the capture keeps it, as k+1, in the
/// `shared` field of [`Fd`]; 0: none).
pub(crate) fn shared_with(meta: &Meta, i: usize, f: &Fd) -> Option<usize> {
    let k = (f.shared as usize).checked_sub(1)?;
    (k < i && meta.fd(k).kind == f.kind && !is_pipe(f)).then_some(k)
}

pub(crate) fn kind(f: &Fd) -> FdKind {
    f.kind().unwrap_or(FdKind::Lost)
}

fn is_pipe(f: &Fd) -> bool {
    matches!(kind(f), FdKind::PipeRead | FdKind::PipeWrite)
}

/// Stdin, stdout or stderr as the program got it from its launcher (not
/// a file it put there itself: those are restored like any other).
fn is_stdio(f: &Fd) -> bool {
    (0..=2).contains(&f.fd) && f.fd_flags & FD_NOT_INHERITED == 0
}

/// Tells the restarted program's library who its launcher's stdio is now:
/// restart's own descriptors 0, 1 and 2, as `ckpt_image::StdioIdentity` at
/// the start of the workspace's lowest writable page (mapped zero-filled,
/// and the program's memory is restored). Before [`restore`] places the
/// program's own files there.
pub fn note_stdio(meta: &Meta) {
    let Some(ws) = meta
        .regions()
        .filter(|r| r.kind() == Some(RegionKind::Workspace) && r.prot as i32 & sys::PROT_WRITE != 0)
        .min_by_key(|r| r.start)
    else {
        return;
    };
    if ws.len() < core::mem::size_of::<StdioIdentity>() as u64 {
        return;
    }
    let mut id = StdioIdentity { magic: STDIO_IDENTITY_MAGIC, ..Default::default() };
    for fd in 0..3 {
        if let Ok(st) = sys::fstat(fd as i32) {
            (id.dev[fd], id.ino[fd]) = (st.dev, st.ino);
        }
    }
    // SAFETY: a writable anonymous region of the image, mapped by now, that
    // the program's code does not use (the library's workspace).
    unsafe { (ws.start as *mut StdioIdentity).write_unaligned(id) };
}

/// Whether the entry is restored at all: stdin, stdout and stderr only
/// with `--keep-stdio`.
pub(crate) fn wanted(f: &Fd, opts: &Options) -> bool {
    f.fd >= 0 && (opts.keep_stdio || !is_stdio(f))
}

/// The saved path of `f`, NUL-terminated in `buf`, if it is one.
pub(crate) fn c_path<'b>(meta: &Meta, f: &Fd, buf: &'b mut [u8; PATH_MAX + 1]) -> Option<&'b CStr> {
    let p = meta.string(f.path)?;
    if p.is_empty() || p.len() > PATH_MAX || p[0] != b'/' || p.contains(&0) {
        return None;
    }
    buf[..p.len()].copy_from_slice(p);
    buf[p.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..p.len() + 1]).ok()
}

/// What is wrong with an entry, found before anything changes.
#[derive(Clone, Copy)]
enum Problem {
    /// A socket, a pipe to another process, a deleted file at checkpoint time…
    Lost,
    /// The file is gone from its path.
    Deleted,
    /// The path cannot be looked at, or opened as it was (permission…).
    Unreachable(Errno),
    /// Something else is at the path: not a directory, FIFO, device.
    WrongType(&'static str),
    /// Another file is at the path (other device or inode).
    Replaced,
    /// A regular file is shorter than the saved offset.
    Truncated(u64),
    /// A regular file's size (now this) or modification time differs from
    /// the checkpoint's: written to since.
    Modified(u64),
}

impl Problem {
    /// Whether the descriptor gets /dev/null (rather than the file anyway).
    fn is_fatal(self) -> bool {
        !matches!(self, Problem::Replaced | Problem::Truncated(_) | Problem::Modified(_))
    }
}

/// Looks at the file an entry names, as it is now.
fn problem(meta: &Meta, f: &Fd) -> Option<Problem> {
    let k = kind(f);
    if k == FdKind::Lost {
        return Some(Problem::Lost);
    }
    if matches!(k, FdKind::PipeRead | FdKind::PipeWrite | FdKind::Socket) || events::handles(k) {
        return None;
    }
    let mut buf = [0u8; PATH_MAX + 1];
    let Some(path) = c_path(meta, f, &mut buf) else {
        return Some(Problem::Lost);
    };
    let st = match sys::stat(path) {
        Ok(st) => st,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Some(Problem::Deleted),
        Err(e) => return Some(Problem::Unreachable(e)),
    };
    let ty = st.mode & sys::S_IFMT;
    let saved_ty = f.mode & sys::S_IFMT;
    let (want, name) = match k {
        FdKind::Dir => (sys::S_IFDIR, "a directory"),
        FdKind::CharDev => (sys::S_IFCHR, "a character device"),
        FdKind::Fifo => (sys::S_IFIFO, "a FIFO"),
        _ if saved_ty == sys::S_IFBLK => (sys::S_IFBLK, "a block device"),
        _ => (sys::S_IFREG, "a regular file"),
    };
    if ty != want {
        return Some(Problem::WrongType(name));
    }
    if matches!(k, FdKind::File | FdKind::Dir) && (st.dev != f.dev || st.ino != f.ino) {
        return Some(Problem::Replaced);
    }
    if let Err(e) = sys::access(path, access_mode(f)) {
        return Some(Problem::Unreachable(e));
    }
    let size = st.size.max(0) as u64;
    if k == FdKind::File && ty == sys::S_IFREG {
        if size < f.offset {
            return Some(Problem::Truncated(size));
        }
        if (size != f.size || st.mtime_ns() != f.mtime_ns) && !is_stderr_file(meta, f) {
            return Some(Problem::Modified(size));
        }
    }
    None
}

/// Whether `f` is the file the program's stderr was: ckpt's own line about
/// the checkpoint went there after the capture, so that it always grew.
fn is_stderr_file(meta: &Meta, f: &Fd) -> bool {
    meta.fds().any(|g| g.fd == 2 && g.dev == f.dev && g.ino == f.ino)
}

/// What reopening `f` will need: read and/or write permission (none for
/// O_PATH, an existence check).
fn access_mode(f: &Fd) -> i32 {
    let flags = f.flags as i32;
    if flags & sys::O_PATH != 0 {
        return 0;
    }
    match flags & sys::O_ACCMODE {
        sys::O_WRONLY => sys::W_OK,
        sys::O_RDWR => sys::R_OK | sys::W_OK,
        _ => sys::R_OK,
    }
}

/// Writes what happened to entry `f`, after "fd N (PATH)".
fn describe_problem(l: &mut Line, p: Problem, f: &Fd, keep_own: bool) {
    let _ = match p {
        Problem::Lost if keep_own => write!(l, " was not restored; it is restart's own"),
        Problem::Lost => write!(l, " was not restored; it is /dev/null"),
        Problem::Deleted => match kind(f) {
            FdKind::Dir => write!(l, ": the directory was deleted"),
            FdKind::CharDev => write!(l, ": the device no longer exists"),
            FdKind::Fifo => write!(l, ": the FIFO was deleted"),
            _ => write!(l, ": the file was deleted"),
        },
        Problem::Unreachable(e) => write!(l, ": cannot be reopened: {} ({})", sys::errno_text(e), sys::errno_name(e)),
        Problem::WrongType(what) => write!(l, ": is no longer {what}"),
        Problem::Replaced => write!(l, ": the file was replaced by another since the checkpoint"),
        Problem::Truncated(size) => {
            write!(l, ": the file was truncated to {size} bytes, below its offset {}", f.offset)
        }
        Problem::Modified(size) if size > f.size => {
            write!(l, ": the file grew from {} to {size} bytes since the checkpoint", f.size)
        }
        Problem::Modified(size) if size < f.size => {
            write!(l, ": the file shrank from {} to {size} bytes since the checkpoint", f.size)
        }
        Problem::Modified(size) => {
            write!(l, ": the file was modified in place since the checkpoint (same size, {size} bytes)")
        }
    };
}

fn head(l: &mut Line, meta: &Meta, f: &Fd) {
    let _ = write!(l, "fd {} (", f.fd);
    l.push_escaped(meta.string(f.path).unwrap_or(b"?")).push(b")");
}

/// Before the point of no return: says (on stderr) what will not come back
/// as it was — a deleted, truncated or replaced file, a lost socket — and,
/// with `--strict`, refuses to go on.
pub fn check(meta: &Meta, opts: &Options) -> Result<(), Fail> {
    // (Checked again for each process of a job: nothing of another's stays.)
    with_table(|t| t.verdict[..meta.n_fds().min(MAX_FDS as usize)].fill(0));
    for i in 0..meta.n_fds() {
        let f = meta.fd(i);
        if !wanted(&f, opts) || crate::job::is_linked(f.fd) {
            continue;
        }
        locks::check(meta, &f, opts)?;
        let Some(p) = problem(meta, &f) else { continue };
        let keep_own = is_stdio(&f) && p.is_fatal();
        let mut l = Line::new();
        if opts.strict {
            head(&mut l, meta, &f);
            if let Problem::Lost = p {
                l.push(b" cannot be restored");
            } else {
                describe_problem(&mut l, p, &f, false);
            }
            l.push(b"; not restarting (--strict)");
            return Err(crate::fail::composed(&l));
        }
        l.push(b"restart: warning: ");
        head(&mut l, meta, &f);
        describe_problem(&mut l, p, &f, keep_own);
        let v = match p {
            _ if keep_own => Verdict::KeepOwn,
            Problem::Lost => Verdict::Null,
            _ if p.is_fatal() => {
                l.push(b"; it is /dev/null");
                Verdict::Null
            }
            _ => {
                l.push(b"; reopened anyway");
                Verdict::ReopenWarned
            }
        };
        if keep_own && !matches!(p, Problem::Lost) {
            l.push(b"; it is restart's own");
        }
        crate::fail::warn(&mut l);
        set_verdict(i, v);
    }
    Ok(())
}

/// Where restore's messages go: restart's own stderr, even once the
/// program's is in place.
pub(crate) struct Out {
    fd: i32,
    pub(crate) verbose: bool,
}

impl Out {
    pub(crate) fn emit(&self, l: &mut Line) {
        l.push(b"\n");
        let _ = sys::write_all(self.fd, l.as_bytes());
    }

    pub(crate) fn warn(&self, meta: &Meta, f: &Fd, what: core::fmt::Arguments) {
        let mut l = Line::new();
        l.push(b"restart: warning: ");
        head(&mut l, meta, f);
        let _ = l.write_fmt(what);
        self.emit(&mut l);
    }

    pub(crate) fn verbose(&self, meta: &Meta, f: &Fd, what: core::fmt::Arguments) {
        if self.verbose {
            let mut l = Line::new();
            l.push(b"restart: ");
            head(&mut l, meta, f);
            let _ = l.write_fmt(what);
            self.emit(&mut l);
        }
    }
}

/// After memory is restored and the image file closed: reopens every
/// descriptor at its number. Stdin, stdout and stderr stay restart's own
/// unless `--keep-stdio`. Every descriptor above 2 that the image does not
/// name is closed: the loader must hold none by now.
pub fn restore(meta: &Meta, opts: &Options) -> Result<(), Fail> {
    let n = meta.n_fds();
    link_pipes(meta);
    // (The ends of pipes between the processes of a job stay: job.rs.)
    crate::job::close_all_but_kept();
    let max_fd = meta.fds().filter(|f| wanted(f, opts)).map(|f| f.fd).max().unwrap_or(2);
    raise_nofile(max_fd as u64 + 8);
    // Restart's stderr, moved above every descriptor to come.
    let err_copy = if opts.keep_stdio { sys::dup_from(2, max_fd + 1).ok() } else { None };
    let out = Out { fd: err_copy.as_ref().map_or(2, OwnedFd::as_raw), verbose: opts.verbose };
    // The program's file locks, from the keeper that held them (if any).
    locks::release(meta, &out);

    let write_only_fifo = |f: &Fd| kind(f) == FdKind::Fifo && f.flags as i32 & sys::O_ACCMODE == sys::O_WRONLY;
    // Pipes, and everything opened on its own; FIFOs' write-only ends after
    // their read ends (opened non-blocking, a write end needs a reader).
    for pass in 0..2 {
        for i in 0..n {
            let f = meta.fd(i);
            if crate::job::is_linked(f.fd) {
                set_done(i); // an end of a pipe between the job's processes
                continue;
            }
            if !wanted(&f, opts) || done(i) || shared_with(meta, i, &f).is_some() || write_only_fifo(&f) != (pass == 1)
            {
                continue;
            }
            if is_pipe(&f) {
                restore_pipe(meta, opts, i, &out);
            } else if sockets::is_socket(&f) {
                sockets::restore_pair(meta, opts, i, &out);
            } else {
                restore_one(meta, i, &f, &out);
            }
        }
    }
    // Descriptors that shared an open file description share one again.
    for i in 0..n {
        let f = meta.fd(i);
        if !wanted(&f, opts) || done(i) {
            continue;
        }
        restore_shared(meta, i, &f, &out);
    }
    crate::job::place_kept(meta);
    // Epolls last: after everything they watch.
    events::restore_epolls(meta, opts, &out);
    drop(err_copy);
    Ok(())
}

/// Makes entry `i` share the open file of the entry it shares with, if
/// that one is in place; else restores it on its own.
pub(crate) fn restore_shared(meta: &Meta, i: usize, f: &Fd, out: &Out) {
    match shared_with(meta, i, f) {
        Some(k) if placed(k) && verdict(i) != Verdict::Null => {
            let src = meta.fd(k).fd;
            match sys::dup3(src, f.fd, cloexec(f)) {
                Ok(_) => {
                    set_placed(i);
                    out.verbose(meta, f, format_args!(": shares fd {src}'s open file"));
                }
                Err(e) => {
                    out.warn(meta, f, format_args!(": cannot share fd {src}'s open file: {}", sys::errno_text(e)));
                    restore_one(meta, i, f, out);
                }
            }
        }
        _ => restore_one(meta, i, f, out),
    }
}

/// Opens the file of `f` once for the processes of a job that share its
/// open file description (job.rs, before it forks them), as [`restore`]
/// would, at its offset, with its flags: a file, directory or device by
/// path, an eventfd, timerfd, signalfd or inotify made anew. None for
/// anything else, for a file with locks (locks.rs restores them on each
/// descriptor), and for one that is not as it was at the checkpoint
/// (deleted, replaced, modified...): then each process restores it on its
/// own, with [`check`]'s warnings.
pub(crate) fn open_shared(meta: &Meta, f: &Fd, opts: &Options) -> Option<i32> {
    let k = kind(f);
    let by_path = matches!(k, FdKind::File | FdKind::Dir | FdKind::CharDev);
    let made = matches!(k, FdKind::EventFd | FdKind::TimerFd | FdKind::SignalFd | FdKind::Inotify);
    let locked = k == FdKind::File && meta.string(f.data).is_some_and(|d| !d.is_empty());
    if !wanted(f, opts) || !(by_path || made) || locked || problem(meta, f).is_some() {
        return None;
    }
    let out = Out { fd: 2, verbose: opts.verbose };
    let opened = if made { events::create(meta, f, &out) } else { reopen(meta, f, &out) };
    // (Inherited by the members that hold it, then placed: theirs.)
    opened.ok().map(OwnedFd::into_raw)
}

/// Raises the soft limit on descriptors to `need` if it is lower (up to the
/// hard limit): a descriptor number must be below it.
fn raise_nofile(need: u64) {
    if let Ok(cur) = sys::prlimit64(0, sys::RLIMIT_NOFILE, None) {
        if cur.soft < need {
            let new = sys::RLimit { soft: need.min(cur.hard), hard: cur.hard };
            let _ = sys::prlimit64(0, sys::RLIMIT_NOFILE, Some(&new));
        }
    }
}

fn cloexec(f: &Fd) -> i32 {
    if f.fd_flags as i32 & sys::FD_CLOEXEC != 0 {
        sys::O_CLOEXEC
    } else {
        0
    }
}

/// Puts `tmp` at `f`'s number (closing `tmp`), with `f`'s FD_CLOEXEC: the
/// program's descriptor from now on.
pub(crate) fn place(tmp: OwnedFd, f: &Fd) -> Result<(), Errno> {
    if tmp.as_raw() == f.fd {
        return sys::fcntl(tmp.into_raw(), sys::F_SETFD, (f.fd_flags as i32 & sys::FD_CLOEXEC) as u64).map(drop);
    }
    sys::dup3(&tmp, f.fd, cloexec(f)).map(drop)
}

/// Reopens one descriptor by path (or /dev/null in its place).
fn restore_one(meta: &Meta, i: usize, f: &Fd, out: &Out) {
    let k = kind(f);
    if k == FdKind::Epoll {
        return; // events::restore_epolls, once what it watches is in place
    }
    set_done(i);
    let v = verdict(i);
    if v == Verdict::KeepOwn {
        return;
    }
    if k == FdKind::Lost || is_pipe(f) {
        if v == Verdict::Reopen {
            let keep_own = is_stdio(f);
            let mut l = Line::new();
            l.push(b"restart: warning: ");
            head(&mut l, meta, f);
            describe_problem(&mut l, Problem::Lost, f, keep_own);
            out.emit(&mut l);
            if keep_own {
                return;
            }
        }
        return put_null(meta, f, out);
    }
    if v == Verdict::Null {
        return put_null(meta, f, out);
    }
    let created = if events::handles(k) { events::create(meta, f, out) } else { reopen(meta, f, out) };
    let tmp = match created {
        Ok(t) => t,
        Err(e) => {
            let own = is_stdio(f);
            let then = if own { "it is restart's own" } else { "it is /dev/null" };
            out.warn(
                meta,
                f,
                format_args!(": cannot be reopened: {} ({}); {then}", sys::errno_text(e), sys::errno_name(e)),
            );
            if !own {
                put_null(meta, f, out);
            }
            return;
        }
    };
    if let Err(e) = place(tmp, f) {
        out.warn(
            meta,
            f,
            format_args!(": cannot be put at its number: {} ({})", sys::errno_text(e), sys::errno_name(e)),
        );
        return;
    }
    set_placed(i);
    locks::restore(meta, f, out);
    if matches!(k, FdKind::File | FdKind::Dir) {
        out.verbose(meta, f, format_args!(": {} reopened at offset {}", k.name(), f.offset));
    } else if !events::handles(k) {
        out.verbose(meta, f, format_args!(": {} reopened", k.name()));
    }
}

/// Opens the file of `f` with its flags, at its offset; returns the new
/// (temporary) descriptor.
fn reopen(meta: &Meta, f: &Fd, out: &Out) -> Result<OwnedFd, Errno> {
    let mut buf = [0u8; PATH_MAX + 1];
    let path = c_path(meta, f, &mut buf).ok_or(Errno::ENOENT)?;
    let k = kind(f);
    let saved = f.flags as i32;
    let mut flags = (saved & !(sys::O_CREAT | sys::O_EXCL | sys::O_TRUNC)) | sys::O_NOCTTY;
    if k == FdKind::Dir {
        flags |= sys::O_DIRECTORY;
    }
    if k == FdKind::Fifo {
        flags |= sys::O_NONBLOCK; // no wait for the other end
    }
    let tmp = match sys::openat(sys::AT_FDCWD, path, flags, 0) {
        // A FIFO's write end with no reader left: open it read-write, which
        // never blocks and keeps writes from failing with EPIPE.
        Err(Errno::ENXIO) if k == FdKind::Fifo => {
            let t = sys::openat(sys::AT_FDCWD, path, (flags & !sys::O_ACCMODE) | sys::O_RDWR, 0)?;
            out.warn(meta, f, format_args!(": the FIFO has no reader; reopened read-write"));
            t
        }
        r => r?,
    };
    if saved & sys::O_PATH == 0 {
        // The status flags (O_NONBLOCK for a FIFO, and any that open ignored).
        let _ = sys::fcntl(&tmp, sys::F_SETFL, saved as u32 as u64);
    }
    if matches!(k, FdKind::File | FdKind::Dir) && f.offset != 0 {
        if let Err(e) = sys::lseek(&tmp, f.offset as i64, sys::SEEK_SET) {
            out.warn(meta, f, format_args!(": cannot seek to offset {}: {}", f.offset, sys::errno_text(e)));
        }
    }
    Ok(tmp)
}

/// `/dev/null` at `f`'s number (read-write), with `f`'s FD_CLOEXEC.
pub(crate) fn put_null(meta: &Meta, f: &Fd, out: &Out) {
    let result = sys::open(c"/dev/null", sys::O_RDWR).and_then(|t| place(t, f));
    if let Err(e) = result {
        out.warn(meta, f, format_args!(": cannot put /dev/null there: {}", sys::errno_text(e)));
    }
}

/// Recreates the pipe of entry `first` (a read or write end): one pipe,
/// both ends at all their numbers, the bytes that were in it written back.
fn restore_pipe(meta: &Meta, opts: &Options, first: usize, out: &Out) {
    let p = meta.fd(first);
    let (mut r, mut w) = match sys::pipe2(sys::O_CLOEXEC) {
        Ok(ends) => ends,
        Err(e) => {
            for i in pipe_ends(first) {
                let g = meta.fd(i);
                if wanted(&g, opts) {
                    set_done(i);
                    out.warn(
                        meta,
                        &g,
                        format_args!(": cannot recreate the pipe: {}; it is /dev/null", sys::errno_text(e)),
                    );
                    put_null(meta, &g, out);
                }
            }
            return;
        }
    };
    // The bytes, written before the ends are placed (the pipe is empty:
    // writing up to its size does not block).
    let data = pipe_ends(first).find_map(|i| meta.string(meta.fd(i).data).filter(|d| !d.is_empty()));
    if let Some(data) = data {
        write_back(w.borrow(), data, meta, &p, out);
    }
    let (mut r_placed, mut w_placed) = (false, false);
    for i in pipe_ends(first) {
        let g = meta.fd(i);
        if !wanted(&g, opts) {
            continue;
        }
        set_done(i);
        let reader = kind(&g) == FdKind::PipeRead;
        let (src, other, placed) =
            if reader { (&mut r, &mut w, &mut r_placed) } else { (&mut w, &mut r, &mut w_placed) };
        // The number may be the other end's temporary one: move that away.
        if g.fd == other.as_raw() {
            match sys::dup_from(&*other, 0) {
                Ok(moved) => *other = moved, // (the old number closed)
                Err(e) => {
                    out.warn(meta, &g, format_args!(": cannot be put at its number: {}", sys::errno_text(e)));
                    continue;
                }
            }
        }
        let result = if g.fd == src.as_raw() {
            *placed = true;
            sys::fcntl(g.fd, sys::F_SETFD, (g.fd_flags as i32 & sys::FD_CLOEXEC) as u64).map(drop)
        } else {
            sys::dup3(&*src, g.fd, cloexec(&g)).map(drop)
        };
        let _ = sys::fcntl(g.fd, sys::F_SETFL, g.flags as u64);
        match result {
            Ok(()) => {
                set_placed(i);
                out.verbose(meta, &g, format_args!(": {} recreated", kind(&g).name()));
            }
            Err(e) => out.warn(meta, &g, format_args!(": cannot be put at its number: {}", sys::errno_text(e))),
        }
    }
    // An end already at one of its numbers is the program's now.
    for (end, placed) in [(r, r_placed), (w, w_placed)] {
        if placed {
            let _ = end.into_raw();
        }
    }
}

/// Writes the saved bytes into a pipe through its write end `w`, growing
/// it first if they need more room than it has. Leaves `w` non-blocking.
fn write_back(w: BorrowedFd, data: &[u8], meta: &Meta, f: &Fd, out: &Out) {
    let len = data.len().min(MAX_PIPE);
    if let Ok(size) = sys::fcntl(w, sys::F_GETPIPE_SZ, 0) {
        if (size as usize) < len {
            let _ = sys::fcntl(w, sys::F_SETPIPE_SZ, len as u64);
        }
    }
    // Non-blocking while the loader writes: what does not fit is reported,
    // never waited for. (The ends get their own flags when placed.)
    let _ = sys::fcntl(w, sys::F_SETFL, sys::O_NONBLOCK as u64);
    let mut written = 0;
    while written < len {
        match sys::write(w, &data[written..len]) {
            Ok(0) => break,
            Ok(k) => written += k,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    if written < data.len() {
        out.warn(meta, f, format_args!(": only {written} of the {} bytes that were in the pipe fit back", data.len()));
    } else {
        out.verbose(meta, f, format_args!(": {written} bytes written back into the pipe"));
    }
}
