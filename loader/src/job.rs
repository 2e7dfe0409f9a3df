//! A job image (`ckpt --tree`) at restart: the whole process tree comes
//! back, each process at its own pid, in the pid namespace `pidns.rs`
//! makes.
//!
//! ```text
//!  root's loader (the root's pid, under init)
//!    every member's tables read and checked; ns_last_pid above every pid
//!    and tid of the job
//!    the pipes and socket pairs between members: made once, with what
//!    waited in them; each open file description other members share (a
//!    file, a device, an eventfd...): opened once, at its offset; one
//!    memfd per shared memory object, with its bytes
//!    for each child of the root, in table order: clone3(set_tid = its pid)
//!      └─ child's loader: its session / process group, then its own
//!         children the same way (parents before children); a zombie
//!         exits at once with its status, for its parent's wait
//!  each loader: its pipe and socket ends and shared descriptions,
//!  inherited (kept above its other descriptors until files.rs has put
//!  those back, then moved to their numbers; those it did not hold
//!  closed), its own image restored as a single image is, its shared
//!  regions replaced by the objects' memfds (memory.rs)
//! ```
//!
//! Without exact pids (no namespace: the fallback), only the root is
//! restarted, and each other process is named on stderr. A pipe that leads
//! outside the job (the caller's stdout…) is restored by each member on its
//! own, as for a single process; so is a shared file that changed since the
//! checkpoint (with `files::check`'s warning) or holds locks
//! (`files::open_shared`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};

use ckpt_image::events::socket_messages;
use ckpt_image::job::{
    Job, JobHeader, Link, JOB_HEADER_SIZE, LINK_FILE, LINK_LISTEN, LINK_PIPE, LINK_PIPE_ENDED, LINK_SOCKET,
    MEMBER_ZOMBIE,
};
use ckpt_image::{Fd, Meta};
use ckpt_sys::events as ev;
use ckpt_sys::{self as sys, msg::Line, ns};

use crate::args::Options;
use crate::fail::Fail;
use crate::files;
use crate::image::{self, read_exact, Image};
use crate::pidns::Pids;

/// The job of the image being restarted (leaked: it lives as long as the
/// loader).
struct Tree {
    job: Job<'static>,
    /// Channels whose both ends are in the job: pipes with a read end and a
    /// write end, socket pairs with both sockets.
    internal: Vec<u32>,
}

static TREE: AtomicPtr<Tree> = AtomicPtr::new(core::ptr::null_mut());
/// The member this process restores (0: the root).
static ME: AtomicUsize = AtomicUsize::new(0);
/// This process's ends of pipes and socket pairs between members, kept
/// above its descriptors: (its number, where it is kept, flags of the
/// description).
static STASH: AtomicPtr<Vec<(i32, i32, u32)>> = AtomicPtr::new(core::ptr::null_mut());

fn tree() -> Option<&'static Tree> {
    // SAFETY: null, or a Tree leaked once by root_of and never changed.
    unsafe { TREE.load(SeqCst).as_ref() }
}

/// The shared memory objects of the job, made by the root's loader before
/// the fork: (object, memfd).
static OBJECTS: AtomicPtr<Vec<(u32, i32)>> = AtomicPtr::new(core::ptr::null_mut());

fn objects() -> &'static [(u32, i32)] {
    // SAFETY: null, or a Vec leaked once by make_objects and never changed.
    unsafe { OBJECTS.load(SeqCst).as_ref() }.map_or(&[], |v| &v[..])
}

fn stash() -> &'static [(i32, i32, u32)] {
    // SAFETY: null, or a Vec leaked once by keep_pipe_ends and never changed.
    unsafe { STASH.load(SeqCst).as_ref() }.map_or(&[], |v| &v[..])
}

/// Where the process image to restart lies in the file of `file_len`
/// bytes: (0, file_len) for a process image; for a job image, the root's
/// place, once its tables are validated.
pub fn root_of(fd: i32, file_len: u64) -> Result<(u64, u64), Fail> {
    let mut head = [0u8; JOB_HEADER_SIZE];
    let n = (file_len as usize).min(JOB_HEADER_SIZE);
    read_exact(fd, &mut head[..n], 0)?;
    if !ckpt_image::job::is_job(&head[..n]) {
        return Ok((0, file_len));
    }
    let header = JobHeader::parse(&head[..n], file_len).map_err(|e| Fail::Msg(e.message()))?;
    let mut table = Vec::new();
    table.try_reserve_exact(header.table_len() as usize).map_err(|_| Fail::Msg("the job's table is too large"))?;
    table.resize(header.table_len() as usize, 0u8);
    read_exact(fd, &mut table, JOB_HEADER_SIZE as u64)?;
    let table: &'static [u8] = table.leak();
    let job = Job::parse(header, table).map_err(|e| Fail::Msg(e.message()))?;
    let links = || (0..job.header.n_links as usize).map(|i| job.link(i)).filter(|l| l.channel != 0);
    let mut internal = Vec::new();
    for l in links() {
        let same = || links().filter(|o| o.channel == l.channel);
        let access = |o: &Link| o.flags as i32 & sys::O_ACCMODE;
        let both = match l.kind {
            LINK_PIPE => same().any(|o| access(&o) == sys::O_RDONLY) && same().any(|o| access(&o) == sys::O_WRONLY),
            // Its writer is gone: what waits in it, then the end of file.
            LINK_PIPE_ENDED => true,
            // Two sockets: two descriptions (a socket cannot be reopened).
            LINK_SOCKET => same().any(|o| o.description != l.description),
            _ => false,
        };
        if both && !internal.contains(&l.channel) {
            internal.push(l.channel);
        }
    }
    let root = job.member(0);
    TREE.store(Box::leak(Box::new(Tree { job, internal })), SeqCst);
    Ok((root.offset, root.len))
}

/// Whether descriptor `fd` of this process is an end of a pipe between
/// members, or a file description it shares with other members, which
/// this module puts in place (files.rs leaves it alone).
pub fn is_linked(fd: i32) -> bool {
    let Some(t) = tree() else { return false };
    let me = ME.load(SeqCst) as u32;
    stash().iter().any(|&(kept, _, _)| kept == fd)
        || (0..t.job.header.n_links as usize).map(|i| t.job.link(i)).any(|l| {
            l.member == me
                && l.fd as i32 == fd
                && (l.kind == LINK_LISTEN || (l.channel != 0 && t.internal.contains(&l.channel)))
        })
}

/// The pid of the job's root, if this is a job.
pub fn root_pid() -> Option<u32> {
    tree().map(|t| t.job.member(0).pid)
}

/// Whether this process restores the root (or a single image).
pub fn is_root() -> bool {
    ME.load(SeqCst) == 0
}

/// With exact pids, creates every other process of the job, each in a copy
/// of this loader at its pid, parents before children; returns in each
/// the image that process restores (None in the root: `root`, its own).
/// Without, names the processes that are not restarted.
pub fn spawn(root: &Image, pids: Pids, opts: &Options) -> Result<Option<Image>, Fail> {
    let Some(t) = tree() else { return Ok(None) };
    let job = &t.job;
    if pids != Pids::Exact {
        name_not_restarted(job);
        return Ok(None);
    }
    // Every member's tables, read now (a bad one is refused before any
    // process is made); their highest tid keeps new processes off them.
    let mut images: Vec<Option<Image>> = Vec::new();
    let mut top = 0;
    for i in 0..job.len() {
        let m = job.member(i);
        top = top.max(m.pid);
        if i == 0 || m.state == MEMBER_ZOMBIE {
            images.push(None);
            continue;
        }
        let img = image::open_at(root.fd, m.offset, m.len)?;
        top = top.max(max_tid(img.meta));
        images.push(Some(img));
    }
    top = top.max(max_tid(root.meta));
    let mut l = Line::new();
    let _ = write!(l, "{top}");
    let _ = ns::write_file(c"/proc/sys/kernel/ns_last_pid", l.as_bytes());
    let mut ends = make_channels(t)?;
    ends.extend(open_shared_files(job, root, &images, opts));
    make_objects(job, root, &images)?;
    join_group(job, 0);
    let me = fork_tree(job)?;
    ME.store(me, SeqCst);
    let meta = if me == 0 { root.meta } else { images[me].as_ref().map_or(root.meta, |i| i.meta) };
    keep_pipe_ends(t, me, &ends, meta, opts);
    Ok(if me == 0 { None } else { images.swap_remove(me) })
}

fn max_tid(meta: &Meta) -> u32 {
    meta.threads().map(|t| t.tid).max().unwrap_or(0)
}

fn name_not_restarted(job: &Job) {
    for i in 1..job.len() {
        let m = job.member(i);
        let mut l = Line::new();
        let _ = write!(l, "restart: warning: process {} (", m.pid);
        let cmd = job.command(&m);
        let cmd = cmd.strip_suffix(b"\0").unwrap_or(cmd);
        for (k, part) in cmd.split(|&c| c == 0).take(8).enumerate() {
            l.push(if k == 0 { b"" } else { b" " }).push_escaped(part);
        }
        let state = if m.state == MEMBER_ZOMBIE { "exited, not yet waited for" } else { "running" };
        let _ =
            write!(l, ") of the job ({state}) is not restarted: without exact pids only the process ckpt started is");
        l.emit();
    }
}

/// The pipes and socket pairs between members, made once, with what was
/// waiting in them: for each of their descriptions, its end (description,
/// fd).
fn make_channels(t: &Tree) -> Result<Vec<(u32, i32)>, Fail> {
    let job = &t.job;
    let links = || (0..job.header.n_links as usize).map(|i| job.link(i));
    let mut ends = Vec::new();
    for &channel in &t.internal {
        let first = links().find(|l| l.channel == channel).unwrap_or_default();
        if first.kind == LINK_SOCKET {
            let state = socket_messages(job.string(first.data)).map(|(s, _)| s);
            let ty = state.map_or(ev::SOCK_STREAM, |s| s.sock_type as i32);
            let (a, b) = ev::socketpair(ev::AF_UNIX, ty | ev::SOCK_CLOEXEC, 0)
                .map_err(|e| Fail::Sys("creating a socket pair of the job", e))?;
            // (Numbers every member inherits and closes: keep_pipe_ends.)
            let (a, b) = (a.into_raw(), b.into_raw());
            let other = links().find(|l| l.channel == channel && l.description != first.description);
            ends.push((first.description, a));
            // What waited on each socket comes from its new peer.
            let _ = crate::sockets::send_waiting(job.string(first.data), b);
            if let Some(o) = other {
                ends.push((o.description, b));
                let data = links().find(|l| l.description == o.description && l.data.len != 0).map(|l| l.data);
                let _ = crate::sockets::send_waiting(job.string(data.unwrap_or_default()), a);
            }
            continue;
        }
        let (r, w) = sys::pipe2(sys::O_CLOEXEC).map_err(|e| Fail::Sys("creating a pipe of the job", e))?;
        let (r, w) = (r.into_raw(), w.into_raw());
        for l in links().filter(|l| l.channel == channel) {
            if ends.iter().any(|&(d, _)| d == l.description) {
                continue;
            }
            let read = l.flags as i32 & sys::O_ACCMODE == sys::O_RDONLY;
            ends.push((l.description, if read { r } else { w }));
        }
        for l in links().filter(|l| l.channel == channel) {
            let data = job.string(l.data);
            if !data.is_empty() {
                let _ = sys::fcntl(w, sys::F_SETPIPE_SZ, data.len().next_power_of_two().max(4096) as u64);
                sys::write_all(w, data).map_err(|e| Fail::Sys("writing back the bytes of a pipe of the job", e))?;
            }
        }
        if first.kind == LINK_PIPE_ENDED {
            sys::close(w); // no one writes to it any more
        }
    }
    for l in links().filter(|l| l.kind == LINK_LISTEN && l.data.len != 0) {
        match listen_again(job.string(l.data)) {
            Ok(fd) => ends.push((l.description, fd.into_raw())),
            Err(e) => {
                let mut line = Line::new();
                let _ = write!(
                    line,
                    "restart: warning: a listening socket of the job cannot listen again: {}",
                    sys::errno_text(e)
                );
                line.emit();
            }
        }
    }
    Ok(ends)
}

/// The open file descriptions other than pipes and sockets (a file, a
/// device, an eventfd...) that descriptors of several members share
/// (inherited across fork: one offset, one set of flags): each opened
/// once, here, before the fork, as the first member that holds it had it,
/// for every member that holds it to inherit (the others close it:
/// [`keep_pipe_ends`]): for each, (description, fd). One that cannot be
/// (`files::open_shared`) is left to each member to restore on its own.
fn open_shared_files(job: &Job, root: &Image, images: &[Option<Image>], opts: &Options) -> Vec<(u32, i32)> {
    let meta_of = |member: u32| match member {
        0 => Some(root.meta),
        m => images.get(m as usize)?.as_ref().map(|i| i.meta),
    };
    // Its descriptors that the members restore (not the launcher's stdio),
    // each with its member's entry, by description.
    let mut held: Vec<(u32, u32, &Meta, Fd)> = (0..job.header.n_links as usize)
        .map(|i| job.link(i))
        .filter(|l| l.kind == LINK_FILE)
        .filter_map(|l| {
            let meta = meta_of(l.member)?;
            Some((l.description, l.member, meta, shared_entry(meta, &l, opts)?))
        })
        .collect();
    held.sort_unstable_by_key(|&(description, member, _, f)| (description, member, f.fd));
    let mut ends = Vec::new();
    for group in held.chunk_by(|a, b| a.0 == b.0) {
        let &(description, first, meta, f) = &group[0];
        if group.iter().all(|&(_, m, _, _)| m == first) {
            continue; // one member's alone: files.rs
        }
        if let Some(fd) = files::open_shared(meta, &f, opts) {
            ends.push((description, fd));
        }
    }
    ends
}

/// The entry of `meta` for link `l`'s descriptor, if it is one the member
/// restores (not the launcher's stdio, which stays restart's own). (The
/// table is in increasing descriptor order: a binary search.)
fn shared_entry(meta: &Meta, l: &Link, opts: &Options) -> Option<Fd> {
    let (mut low, mut high) = (0, meta.n_fds());
    while low < high {
        let mid = low + (high - low) / 2;
        if meta.fd(mid).fd < l.fd as i32 {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    (low < meta.n_fds()).then(|| meta.fd(low)).filter(|f| f.fd == l.fd as i32 && files::wanted(f, opts))
}

/// A listening UNIX socket bound to its address again (`data`: its type
/// and address). A socket file left at the path by the checkpointed process
/// is replaced (only a socket of the caller's: anything else is an error).
fn listen_again(data: &[u8]) -> Result<sys::OwnedFd, sys::Errno> {
    let (ty, addr) = data.split_at(4.min(data.len()));
    let ty = u32::from_le_bytes(ty.try_into().map_err(|_| sys::Errno::EINVAL)?) as i32;
    let fd = ev::socket(ev::AF_UNIX, ty | ev::SOCK_CLOEXEC, 0)?;
    let path = addr.get(2..).unwrap_or(&[]);
    if path.first().is_some_and(|&c| c != 0) {
        // A path (not an abstract name): NUL-terminated, then looked at.
        let mut p = [0u8; 110];
        let len = path.iter().position(|&c| c == 0).unwrap_or(path.len()).min(108);
        p[..len].copy_from_slice(&path[..len]);
        if let Ok(name) = core::ffi::CStr::from_bytes_until_nul(&p) {
            if let Ok(st) = sys::lstat(name) {
                if st.mode & sys::S_IFMT == sys::S_IFSOCK && st.uid == sys::geteuid() {
                    let _ = sys::unlink(name);
                }
            }
        }
    }
    ev::bind(&fd, addr).and_then(|()| ev::listen(&fd, 128))?;
    Ok(fd)
}

/// The memory several members map shared: one memfd per object, holding
/// what the first member that maps it stored (every member's copy is the
/// same: they were all stopped), for each member to map at its place.
fn make_objects(job: &Job, root: &Image, images: &[Option<Image>]) -> Result<(), Fail> {
    let mut made: Vec<(u32, i32)> = Vec::new();
    let mut buf = alloc::vec![0u8; 64 << 10];
    for i in 0..job.header.n_shared as usize {
        let m = job.shared(i);
        if made.iter().any(|&(o, _)| o == m.object) {
            continue;
        }
        let size = (0..job.header.n_shared as usize)
            .map(|k| job.shared(k))
            .filter(|k| k.object == m.object)
            .map(|k| k.offset + (k.end - k.start))
            .max()
            .unwrap_or(0);
        let fd = ev::memfd_create(c"ckpt-job-shared", ev::MFD_CLOEXEC)
            .map_err(|e| Fail::Sys("creating the job's shared memory", e))?;
        sys::ftruncate(&fd, size).map_err(|e| Fail::Sys("sizing the job's shared memory", e))?;
        let img = if m.member == 0 { Some(root) } else { images.get(m.member as usize).and_then(Option::as_ref) };
        if let Some(img) = img {
            let mut at = m.start;
            while at < m.end {
                // Page by page where the image stores only some of a chunk.
                let chunk = ((m.end - at) as usize).min(buf.len());
                let n = if img.read_memory(at, &mut buf[..chunk]).is_ok() { chunk } else { 4096.min(chunk) };
                // A page the image does not store was never touched: zero.
                if img.read_memory(at, &mut buf[..n]).is_ok() {
                    let _ = ev::pwrite(&fd, &buf[..n], m.offset + (at - m.start));
                }
                at += n as u64;
            }
        }
        made.push((m.object, fd.into_raw())); // closed by map_objects, in each member
    }
    OBJECTS.store(Box::leak(Box::new(made)), SeqCst);
    Ok(())
}

/// Whether this process's region at `start` is memory shared with other
/// members ([`map_shared`] maps it).
pub fn is_shared_region(start: u64) -> bool {
    let Some(t) = tree() else { return false };
    let me = ME.load(SeqCst) as u32;
    (0..t.job.header.n_shared as usize).map(|i| t.job.shared(i)).any(|m| m.member == me && m.start == start)
}

/// Maps the job's shared memory over this process's regions of it (their
/// own copies are restored; the object holds the same bytes), then closes
/// every object.
///
/// # Safety
/// Each such region must be mapped and not in use (the loader's point of
/// no return: memory is being restored).
pub unsafe fn map_shared(meta: &Meta) -> Result<(), Fail> {
    let Some(t) = tree() else { return Ok(()) };
    let me = ME.load(SeqCst) as u32;
    for m in (0..t.job.header.n_shared as usize).map(|i| t.job.shared(i)).filter(|m| m.member == me) {
        let Some(&(_, fd)) = objects().iter().find(|&&(o, _)| o == m.object) else { continue };
        let Some(r) = meta.regions().find(|r| r.start == m.start && r.end == m.end) else { continue };
        let flags = sys::MAP_SHARED | sys::MAP_FIXED;
        // SAFETY: the region is this process's own (the caller's contract):
        // replaced by the object at the same place and protection.
        unsafe { sys::mmap(r.start, r.len(), crate::memory::map_prot(&r), flags, fd, m.offset) }
            .map_err(|e| Fail::Sys("mapping the job's shared memory", e))?;
    }
    for &(_, fd) in objects() {
        sys::close(fd);
    }
    Ok(())
}

/// Creates the children of this process's member, each at its pid, and
/// in each child its own children; returns the member this process is.
fn fork_tree(job: &Job) -> Result<usize, Fail> {
    let mut me = 0;
    let mut i = 1;
    while i < job.len() {
        let m = job.member(i);
        if m.ppid != job.member(me).pid {
            i += 1;
            continue;
        }
        // SAFETY: the loader is single-threaded here; the child goes on as
        // the loader of member i.
        match unsafe { ns::clone_process(0, m.pid) } {
            Ok(0) => {
                me = i;
                become_member(job, i);
                i = 1; // now this member's own children
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(Fail::Sys("creating a process of the job at its pid (clone3 set_tid)", e)),
        }
        i += 1;
    }
    Ok(me)
}

/// In the new process of member `i`: its session and process group, or,
/// for a zombie, its end (the parent's wait will find its status).
fn become_member(job: &Job, i: usize) {
    let m = job.member(i);
    if m.state == MEMBER_ZOMBIE {
        let status = m.wait_status;
        let sig = (status & 0x7f) as i32;
        if sig != 0 && sig != 0x7f {
            let dfl = sys::KSigAction::default();
            let _ = sys::rt_sigaction(sig, Some(&dfl), None);
            let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, 0);
            let _ = sys::kill(sys::getpid(), sig);
        }
        sys::exit_group(((status >> 8) & 0xff) as i32);
    }
    join_group(job, i);
}

/// Puts this process (member `i`) in its session or process group, when
/// it leads it or its leader is a member (made before: parents first);
/// else it stays in its parent's.
fn join_group(job: &Job, i: usize) {
    let m = job.member(i);
    let member_pid = |pid: u32| (0..job.len()).any(|k| job.member(k).pid == pid);
    if m.sid == m.pid {
        let _ = sys::setsid();
    } else if m.pgid == m.pid || member_pid(m.pgid) {
        let _ = sys::setpgid(0, m.pgid as i32);
    }
}

/// Keeps the pipe ends and shared files member `me` (its image: `meta`)
/// holds above every descriptor of its image (files.rs closes the others),
/// and closes every other end: nothing another member holds stays in it.
fn keep_pipe_ends(t: &Tree, me: usize, ends: &[(u32, i32)], meta: &Meta, opts: &Options) {
    let job = &t.job;
    let mut kept = Vec::new();
    let max_fd = meta.fds().map(|f| f.fd).max().unwrap_or(2);
    let base = max_fd.max(2) as u64 + 64;
    if let Ok(cur) = sys::prlimit64(0, sys::RLIMIT_NOFILE, None) {
        let need = base + job.header.n_links as u64 + 16;
        if cur.soft < need {
            let _ =
                sys::prlimit64(0, sys::RLIMIT_NOFILE, Some(&sys::RLimit { soft: need.min(cur.hard), hard: cur.hard }));
        }
    }
    for i in 0..job.header.n_links as usize {
        let l = job.link(i);
        if l.member as usize != me || (l.kind == LINK_FILE && shared_entry(meta, &l, opts).is_none()) {
            continue;
        }
        if let Some(&(_, src)) = ends.iter().find(|&&(d, _)| d == l.description) {
            if let Ok(copy) = sys::fcntl(src, sys::F_DUPFD_CLOEXEC, base) {
                // (Above every descriptor of the image, and of the loader's
                // now: the pipes were made before the fork.)
                kept.push((l.fd as i32, copy, l.flags));
            }
        }
    }
    for &(_, fd) in ends {
        sys::close(fd);
    }
    STASH.store(Box::leak(Box::new(kept)), SeqCst);
}

/// Closes every descriptor from 3 up but the kept pipe ends (files.rs,
/// before it puts the image's descriptors back).
pub fn close_all_but_kept() {
    let low = stash().iter().map(|&(_, k, _)| k).min();
    match low {
        Some(low) => {
            let _ = sys::close_range(3, low as u32 - 1, 0);
            let high = stash().iter().map(|&(_, k, _)| k).max().unwrap_or(low);
            let _ = sys::close_range(high as u32 + 1, u32::MAX, 0);
        }
        None => {
            let _ = sys::close_range(3, u32::MAX, 0);
        }
    }
}

/// Puts each kept pipe end and shared description at its number, with its
/// descriptor flags from the image (files.rs, once the others are in
/// place).
pub fn place_kept(meta: &Meta) {
    for &(fd, kept, flags) in stash() {
        let entry = meta.fds().position(|f| f.fd == fd);
        let cloexec = entry.is_some_and(|i| meta.fd(i).fd_flags as i32 & sys::FD_CLOEXEC != 0);
        if sys::dup3(kept, fd, if cloexec { sys::O_CLOEXEC } else { 0 }).is_ok() {
            let _ = sys::fcntl(fd, sys::F_SETFL, flags as u64);
            // In place: an epoll that watches it registers it (events.rs).
            if let Some(i) = entry {
                files::set_placed(i);
            }
        }
        sys::close(kept);
    }
}
