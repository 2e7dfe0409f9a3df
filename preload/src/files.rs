//! Open file descriptors: what each refers to, its flags and offset, and the
//! bytes waiting in pipes whose both ends are in the process
//! (`ckpt_image::Fd`).
//!
//! Runs inside the capture (raw system calls only, no allocation).
//!
//! For every entry of `/proc/self/fd` (listed with getdents64; the listing's
//! own descriptor is skipped): the link (`readlink`), `fstat`, the status
//! flags (`F_GETFL`), `FD_CLOEXEC` (`F_GETFD`) and the offset
//! (`lseek(fd, 0, SEEK_CUR)`). Then:
//!
//! * regular files (and block devices), directories, character devices and
//!   FIFOs are kept by path — provided the path still leads to the same
//!   file (a deleted file's link ends in ` (deleted)`; a memfd's is
//!   `/memfd:… (deleted)`): otherwise the descriptor is `Lost`;
//! * a pipe is kept only if both of its ends are open here (same inode on a
//!   read end and a write end); a pipe to another process is `Lost`;
//! * eventfd, timerfd, signalfd, epoll and inotify instances are kept with
//!   their state (`events.rs`, `inotify.rs`), memfds with their contents
//!   (`memfd.rs`), UNIX sockets whose peer is in the process with the bytes
//!   waiting on them (`sockets.rs`), and the locks held through regular
//!   files are recorded (`locks.rs`);
//! * other sockets, pidfds, io_uring… (links `socket:[…]`,
//!   `anon_inode:[…]`) are `Lost`;
//! * descriptors that share one open file description (dup, dup2, a fork's
//!   inheritance: same offset and status flags) are found with
//!   `kcmp(KCMP_FILE)`, and marked in [`Fd`]'s `shared` field as
//!   "shares with entry k" (k+1; 0: shares with no earlier entry), so that
//!   the restart dups them instead of opening the file twice. (Until the
//!   format names that word, see [`set_shared`].)
//! * the bytes waiting in a pipe whose both ends are here are copied with
//!   `tee(2)` into a temporary pipe (which does not consume them: if the
//!   checkpoint fails, the program continues with its pipe intact) and
//!   stored in the string table, on the pipe's first read end.
//! * the bytes waiting in a FIFO are not saved (the format keeps bytes for
//!   pipes only; and if another process keeps the FIFO open, they stay in
//!   it, and writing them back would duplicate them): a warning says so.
//!
//! A `Lost` descriptor above 2 is named on stderr, one line each. Stdin,
//! stdout and stderr are recorded but never warned about: a restart keeps
//! its own unless asked (`--keep-stdio`), and says so itself then.

use core::ffi::CStr;
use core::fmt::Write as _;

use ckpt_image::{Fd, FdKind, StdioIdentity, StrRef, FD_NOT_INHERITED, STDIO_IDENTITY_MAGIC};
use ckpt_sys::{self as sys, Errno, Stat};

use crate::msg;
use crate::workspace;
use crate::{events, locks, memfd, sockets};

/// Where capture puts strings (paths, pipe contents): the image's string table.
pub trait Strings {
    fn add(&mut self, bytes: &[u8]) -> Option<StrRef>;
}

/// What [`capture`] fails with when the program has more descriptors open
/// than the table holds (`ckpt_image::MAX_FDS`): not an errno any call here
/// returns, so that it cannot be mistaken for a real failure.
pub const TOO_MANY: Errno = Errno::E2BIG;

// Longest link kept.
use ckpt_sys::PATH_MAX;

/// Records that `fd` shares its open file description with entry `index`
/// of the table (which comes before it). Kept in the `shared` field of
/// [`Fd`], which the format reserves; the loader reads it back the same way.
fn set_shared(fd: &mut Fd, index: usize) {
    fd.shared = index as u32 + 1;
}

fn empty(fd: i32) -> Fd {
    Fd { fd, kind: FdKind::Lost as u32, ..Fd::default() }
}

/// Fills `out` with one entry per open descriptor, in descriptor order;
/// returns how many. Descriptors that cannot be restored are recorded as
/// `FdKind::Lost` and named on stderr.
/// `order` is scratch for as many indices as `out` has entries: entries are
/// grouped by sorting (65,536 descriptors, no pair compared twice).
pub fn capture(
    out: &mut [Fd],
    strings: &mut dyn Strings,
    scratch: &mut [u8],
    order: &mut [u32],
) -> Result<usize, Errno> {
    if scratch.len() < PATH_MAX + 1 || order.len() < out.len() {
        return Err(Errno::ENOBUFS);
    }
    let n = list(out, scratch)?;
    let fds = &mut out[..n];
    for f in fds.iter_mut() {
        describe(f, strings, scratch)?;
    }
    mark_not_inherited(fds);
    pair_pipes(fds, order);
    sockets::capture(fds, strings, scratch)?;
    find_shared(fds, order);
    events::capture_epolls(fds, strings, scratch, order)?;
    locks::capture(fds, strings, scratch)?;
    // The bytes of each pipe or FIFO, through its first readable descriptor.
    let m = sort_groups(fds, order, |f| readable_pipe(f).then_some((f.dev, f.ino)));
    let mut start = 0;
    while start < m {
        let end = group_end(fds, &order[..m], start, |f| readable_pipe(f).then_some((f.dev, f.ino)));
        let i = order[start] as usize;
        if fds[i].kind == FdKind::PipeRead as u32 {
            save_pipe_data(&mut fds[i], strings, scratch)?;
        } else {
            warn_fifo_data(&fds[i], scratch);
        }
        start = end;
    }
    // (With --strict the checkpoint fails instead, naming the first one.)
    for f in fds.iter().filter(|_| !crate::config::get().strict) {
        if is_lost(f) && !parent_warns(f.fd, scratch) {
            warn_lost(f, link_of(f.fd, scratch));
        }
    }
    Ok(n)
}

/// Records who the launcher's stdin, stdout and stderr are (constructor;
/// `restart` does the same for a restarted program).
pub fn note_inherited_stdio() {
    let mut id = StdioIdentity { magic: STDIO_IDENTITY_MAGIC, ..Default::default() };
    for fd in 0..3 {
        if let Ok(st) = sys::fstat(fd as i32) {
            (id.dev[fd], id.ino[fd]) = (st.dev, st.ino);
        }
    }
    // SAFETY: the workspace exists; nothing else writes this slot.
    unsafe { workspace::stdio_identity().write(id) };
}

/// Marks descriptors 0, 1 and 2 that are not the launcher's files: the
/// program's own, which `restart` reopens like any other descriptor.
fn mark_not_inherited(fds: &mut [Fd]) {
    // SAFETY: the workspace exists; read only.
    let id = unsafe { workspace::stdio_identity().read() };
    if id.magic != STDIO_IDENTITY_MAGIC {
        return; // unknown: every stdio descriptor is taken as inherited
    }
    for f in fds.iter_mut().filter(|f| (0..3).contains(&f.fd)) {
        let i = f.fd as usize;
        if (f.dev, f.ino) != (id.dev[i], id.ino[i]) {
            f.fd_flags |= FD_NOT_INHERITED;
        }
    }
}

/// The numbers of the open descriptors, into `out` (other fields empty),
/// sorted; the listing's own descriptor is not among them.
fn list(out: &mut [Fd], scratch: &mut [u8]) -> Result<usize, Errno> {
    let dir = sys::open(c"/proc/self/fd", sys::O_RDONLY | sys::O_DIRECTORY)?;
    let mut n = 0;
    let result = loop {
        let len = match sys::getdents64(&dir, scratch) {
            Ok(0) => break Ok(()),
            Ok(len) => len,
            Err(Errno::EINTR) => continue,
            Err(e) => break Err(e),
        };
        let mut full = false;
        // Not the listing's own descriptor, a job's barrier, nor the write
        // tracker.
        let own = |fd: i32| fd == dir.as_raw() || crate::job::is_own_fd(fd) || crate::dirty::is_own_fd(fd);
        for fd in sys::dirent_names(&scratch[..len]).filter_map(parse_fd).filter(|&fd| !own(fd)) {
            if n == out.len() {
                full = true;
                break;
            }
            out[n] = empty(fd);
            n += 1;
        }
        if full {
            break Err(TOO_MANY);
        }
    };
    drop(dir);
    result?;
    // /proc lists descriptors in order; sort anyway (insertion sort: linear
    // on sorted input).
    let fds = &mut out[..n];
    for i in 1..n {
        let mut j = i;
        while j > 0 && fds[j - 1].fd > fds[j].fd {
            fds.swap(j - 1, j);
            j -= 1;
        }
    }
    Ok(n)
}

fn parse_fd(s: &[u8]) -> Option<i32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(
        0i32,
        |a, &c| {
            if c.is_ascii_digit() {
                a.checked_mul(10)?.checked_add((c - b'0') as i32)
            } else {
                None
            }
        },
    )
}

/// `/proc/self/fd/N`, NUL-terminated, in `buf`.
fn proc_fd_path(fd: i32, buf: &mut [u8; 32]) -> &CStr {
    msg::c_path(buf, format_args!("/proc/self/fd/{fd}"), c"/proc/self/fd")
}

/// Fills in everything about `f.fd` that the descriptor itself says, and
/// its kind (pipes provisionally: [`pair_pipes`] decides).
fn describe(f: &mut Fd, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    let st = sys::fstat(f.fd);
    let link_len = match &st {
        // A socket's link is `socket:[INODE]`: made here rather than read
        // (readlink is the dearest call per descriptor, and a program with
        // many descriptors has mostly sockets).
        Ok(st) if st.mode & sys::S_IFMT == sys::S_IFSOCK => {
            let mut buf = [0u8; 40];
            let link = msg::c_path(&mut buf, format_args!("socket:[{}]", st.ino), c"socket:[]").to_bytes();
            scratch[..link.len()].copy_from_slice(link);
            link.len()
        }
        _ => {
            let mut pbuf = [0u8; 32];
            sys::readlink(proc_fd_path(f.fd, &mut pbuf), &mut scratch[..PATH_MAX]).unwrap_or(0)
        }
    };
    let link = &scratch[..link_len];
    f.path = strings.add(link).ok_or(Errno::ENOBUFS)?;
    let Ok(st) = st else {
        return Ok(()); // Lost
    };
    f.flags = sys::fcntl(f.fd, sys::F_GETFL, 0).unwrap_or(0) as u32;
    f.fd_flags = sys::fcntl(f.fd, sys::F_GETFD, 0).unwrap_or(0) as u32;
    f.size = st.size.max(0) as u64;
    f.dev = st.dev;
    f.ino = st.ino;
    f.mtime_ns = st.mtime_ns();
    f.mode = st.mode;
    let access = f.flags as i32 & sys::O_ACCMODE;
    if access == sys::O_ACCMODE {
        // Opened for ioctl only (access mode 3): not a mode the image may
        // hold, nor one to reopen with.
        f.flags &= !(sys::O_ACCMODE as u32);
        return Ok(()); // Lost
    }
    let kind = match st.mode & sys::S_IFMT {
        sys::S_IFREG | sys::S_IFBLK => FdKind::File,
        sys::S_IFDIR => FdKind::Dir,
        sys::S_IFCHR => FdKind::CharDev,
        sys::S_IFIFO if link.starts_with(b"pipe:[") => {
            f.pipe = st.ino;
            match access {
                sys::O_RDONLY => FdKind::PipeRead,
                sys::O_WRONLY => FdKind::PipeWrite,
                _ => FdKind::Lost, // a pipe end reopened read-write through /proc
            }
        }
        sys::S_IFIFO => FdKind::Fifo,
        _ => FdKind::Lost,
    };
    if let Some(k) = events::kind_of_link(link).filter(|_| kind == FdKind::Lost) {
        return events::describe(f, k, strings, scratch);
    }
    let by_path = matches!(kind, FdKind::File | FdKind::Dir | FdKind::CharDev | FdKind::Fifo);
    let link = &scratch[..link_len];
    if kind == FdKind::File && link.starts_with(b"/memfd:") && link.ends_with(b" (deleted)") {
        return memfd::describe(f, link_len, strings, scratch);
    }
    if by_path && !path_leads_to(link_len, &st, scratch) {
        return Ok(()); // Lost: deleted, unreachable, an anonymous inode…
    }
    if matches!(kind, FdKind::File | FdKind::Dir) && f.flags as i32 & sys::O_PATH == 0 {
        f.offset = sys::lseek(f.fd, 0, sys::SEEK_CUR).unwrap_or(0);
    }
    f.kind = kind as u32;
    Ok(())
}

/// Whether the link (the first `len` bytes of `scratch`) is an absolute
/// path that leads to the file `st` describes (not true of a deleted file,
/// whose link ends in " (deleted)", nor of an anonymous inode).
fn path_leads_to(len: usize, st: &Stat, scratch: &mut [u8]) -> bool {
    if len == 0 || len >= PATH_MAX || scratch[0] != b'/' {
        return false;
    }
    scratch[len] = 0;
    let Ok(path) = CStr::from_bytes_with_nul(&scratch[..len + 1]) else {
        return false;
    };
    matches!(sys::stat(path), Ok(now) if now.dev == st.dev && now.ino == st.ino)
}

fn is_pipe(f: &Fd) -> bool {
    f.kind == FdKind::PipeRead as u32 || f.kind == FdKind::PipeWrite as u32
}

/// Puts in `order` the indices of the entries that have a `key`, sorted by
/// key, then by index (so each group of equal keys is in table order);
/// returns how many.
fn sort_groups<K: Ord>(fds: &[Fd], order: &mut [u32], key: impl Fn(&Fd) -> Option<K>) -> usize {
    let mut m = 0;
    for (i, f) in fds.iter().enumerate() {
        if key(f).is_some() {
            order[m] = i as u32;
            m += 1;
        }
    }
    order[..m].sort_unstable_by(|&a, &b| key(&fds[a as usize]).cmp(&key(&fds[b as usize])).then(a.cmp(&b)));
    m
}

/// The end of the group that starts at `order[start]`.
fn group_end<K: Ord>(fds: &[Fd], order: &[u32], start: usize, key: impl Fn(&Fd) -> Option<K>) -> usize {
    let k = key(&fds[order[start] as usize]);
    let mut end = start + 1;
    while end < order.len() && key(&fds[order[end] as usize]) == k {
        end += 1;
    }
    end
}

/// A pipe stays a pipe only if one of its read ends and one of its write
/// ends are both here; otherwise it leads to another process: Lost.
fn pair_pipes(fds: &mut [Fd], order: &mut [u32]) {
    let key = |f: &Fd| is_pipe(f).then_some((f.pipe, f.dev, f.ino));
    let m = sort_groups(fds, order, key);
    let mut start = 0;
    while start < m {
        let end = group_end(fds, &order[..m], start, key);
        let group = &order[start..end];
        let has = |k: FdKind| group.iter().any(|&i| fds[i as usize].kind == k as u32);
        if !(has(FdKind::PipeRead) && has(FdKind::PipeWrite)) {
            for &i in group {
                fds[i as usize].kind = FdKind::Lost as u32;
            }
        }
        start = end;
    }
}

/// Marks each descriptor that shares its open file description with an
/// earlier one (kcmp answers only for the same file: the candidates are
/// narrowed by device and inode first). Pipes are grouped by inode at
/// restart and need no marks.
fn find_shared(fds: &mut [Fd], order: &mut [u32]) {
    // (`pipe`: 0, or a key that tells apart the open files of event
    // descriptors, which all share one inode; a socket's peer.)
    let key = |f: &Fd| {
        (matches!(FdKind::from_u32(f.kind), Some(FdKind::File | FdKind::Dir | FdKind::CharDev | FdKind::Fifo))
            || events::shareable(f))
        .then_some((f.kind, f.dev, f.ino, f.pipe))
    };
    let m = sort_groups(fds, order, key);
    let mut start = 0;
    while start < m {
        let end = group_end(fds, &order[..m], start, key);
        // The group: the same file, in table order.
        for a in start + 1..end {
            let i = order[a] as usize;
            for &j in &order[start..a] {
                match sys::kcmp_file(fds[j as usize].fd, fds[i].fd) {
                    Ok(0) => {
                        // The first match is the earliest: an entry that shares
                        // with an earlier one would have matched that one first.
                        set_shared(&mut fds[i], j as usize);
                        break;
                    }
                    Ok(_) => {}
                    // No kcmp here (kernel without CONFIG_KCMP, or refused):
                    // every descriptor is restored on its own.
                    Err(_) => return,
                }
            }
        }
        start = end;
    }
}

/// A descriptor through which the bytes waiting in a pipe or FIFO can be read.
fn readable_pipe(f: &Fd) -> bool {
    let access = f.flags as i32 & sys::O_ACCMODE;
    let readable = access == sys::O_RDONLY || access == sys::O_RDWR;
    f.flags as i32 & sys::O_PATH == 0
        && readable
        && (f.kind == FdKind::PipeRead as u32 || f.kind == FdKind::Fifo as u32)
}

/// Copies the bytes waiting in the pipe that `f` reads from, without
/// consuming them, into the string table (`f.data`).
fn save_pipe_data(f: &mut Fd, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    let (data, waiting) = peek_pipe(f.fd, strings, scratch)?;
    if data.len as usize != waiting {
        warn_data(f, data.len as usize, waiting, scratch);
    }
    f.data = data;
    Ok(())
}

/// Copies the bytes waiting in the pipe that `fd` reads from into the
/// strings, without consuming them (`tee` into a temporary pipe); returns
/// them and how many were waiting (more, if they could not all be copied).
pub fn peek_pipe(fd: i32, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(StrRef, usize), Errno> {
    let waiting = sys::fionread(fd).unwrap_or(0);
    if waiting == 0 {
        return Ok((StrRef::default(), 0));
    }
    let Ok((r, w)) = sys::pipe2(sys::O_CLOEXEC | sys::O_NONBLOCK) else {
        return Ok((StrRef::default(), waiting));
    };
    // tee copies pipe buffers: the temporary pipe needs as many slots as
    // the program's has.
    if let Ok(size) = sys::fcntl(fd, sys::F_GETPIPE_SZ, 0) {
        let _ = sys::fcntl(&w, sys::F_SETPIPE_SZ, size as u64);
    }
    let copied = sys::tee(fd, &w, waiting, sys::SPLICE_F_NONBLOCK).unwrap_or(0);
    Ok((read_into_strings(r.borrow(), copied, strings, scratch)?, waiting))
}

/// Reads `len` bytes from the (non-blocking) pipe `r` and appends them to
/// the string table in pieces of the scratch buffer's size; returns the
/// reference to all of them (the pieces are consecutive).
fn read_into_strings(
    r: sys::BorrowedFd,
    len: usize,
    strings: &mut dyn Strings,
    scratch: &mut [u8],
) -> Result<StrRef, Errno> {
    let mut whole = StrRef::default();
    let mut first = true;
    let mut left = len;
    while left > 0 {
        let want = left.min(scratch.len());
        let got = match sys::read(r, &mut scratch[..want]) {
            Ok(0) | Err(Errno::EAGAIN) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let piece = strings.add(&scratch[..got]).ok_or(Errno::ENOBUFS)?;
        if first {
            whole = piece;
            first = false;
        } else if piece.offset != whole.offset + whole.len {
            return Err(Errno::EINVAL); // the string table did not append
        } else {
            whole.len += piece.len;
        }
        left -= got;
    }
    Ok(whole)
}

/// The link of descriptor `fd`, read (again) into `scratch`, for messages:
/// the string table cannot be read back through [`Strings`].
fn link_of(fd: i32, scratch: &mut [u8]) -> &[u8] {
    let mut pbuf = [0u8; 32];
    let n = sys::readlink(proc_fd_path(fd, &mut pbuf), &mut scratch[..PATH_MAX]).unwrap_or(0);
    &scratch[..n]
}

/// A descriptor the image cannot bring back that the program would miss:
/// any but the stdio it inherited from ckpt's caller (which follows
/// restart's).
pub fn is_lost(f: &Fd) -> bool {
    f.kind == FdKind::Lost as u32 && (f.fd > 2 || f.fd_flags & FD_NOT_INHERITED != 0)
}

/// "fd N (LINK) " of descriptor `fd`, for a failed `--strict` checkpoint.
pub fn name_lost(l: &mut msg::Line, fd: i32, scratch: &mut [u8]) {
    let _ = write!(l, "fd {fd} (");
    l.push(link_of(fd, scratch)).push(b") ");
}

/// In a job, whether this process's parent is a member holding the same
/// open file at the same number: then it names it (once for the job, by
/// the topmost member that holds it, not once per process).
fn parent_warns(fd: i32, scratch: &mut [u8]) -> bool {
    let root = crate::config::get().root;
    let parent = sys::getppid();
    root != 0
        && sys::kcmp_files(sys::getpid(), fd, parent, fd) == Ok(0)
        && descends_from(parent as u32, root as u32, scratch)
}

/// Whether process `pid` is `root` or one of its descendants (a member of
/// its job).
fn descends_from(mut pid: u32, root: u32, scratch: &mut [u8]) -> bool {
    while pid != root {
        match crate::children::parent_and_state(pid, scratch) {
            Some((ppid, _)) if ppid > 1 && ppid != pid as u64 => pid = ppid as u32,
            _ => return false,
        }
    }
    true
}

fn warn_lost(f: &Fd, link: &[u8]) {
    let mut l = msg::Line::new();
    let _ = write!(l, "ckpt: warning: fd {} (", f.fd);
    l.push(link).push(b") cannot be restored; it will be /dev/null after a restart");
    l.emit();
}

fn warn_fifo_data(f: &Fd, scratch: &mut [u8]) {
    let waiting = sys::fionread(f.fd).unwrap_or(0);
    if waiting == 0 {
        return;
    }
    let link = link_of(f.fd, scratch);
    let mut l = msg::Line::new();
    let _ = write!(l, "ckpt: warning: fd {} (", f.fd);
    l.push_escaped(link);
    let _ = write!(l, "): the {waiting} bytes waiting in this FIFO are not saved");
    l.emit();
}

fn warn_data(f: &Fd, saved: usize, waiting: usize, scratch: &mut [u8]) {
    let link = link_of(f.fd, scratch);
    let mut l = msg::Line::new();
    let _ = write!(l, "ckpt: warning: fd {} (", f.fd);
    l.push_escaped(link);
    let _ = write!(l, "): only {saved} of the {waiting} bytes waiting in it could be saved");
    l.emit();
}
