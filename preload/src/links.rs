//! What ties the members of a job together through their descriptors,
//! found by the root once every member is stopped: open file descriptions
//! that descriptors of several members share (a fork's inherited stdout, a
//! file both append to, a listening socket), pipes between members with the
//! bytes waiting in them (copied with `tee`, not consumed), and connected
//! UNIX sockets between members (a socketpair made before a fork) with the
//! messages waiting on them (peeked, as `sockets.rs` does in one process,
//! through a copy of the descriptor from `pidfd_getfd`); and the shared
//! memory mappings (same inode and name in `/proc/PID/maps`) that several
//! members map.
//!
//! Every descriptor of every running member is listed through
//! `/proc/PID/fd`; those of one file (device and inode) that more than one
//! member holds are links. Two of them share one open file description when
//! `kcmp(KCMP_FILE)` says so (or, without `CONFIG_KCMP`, when their offset
//! and flags in `/proc/PID/fdinfo` are equal). Raw system calls only.

use core::ffi::CStr;

use ckpt_image::job::{
    Link, Member, SharedMap, LINK_FILE, LINK_LISTEN, LINK_PIPE, LINK_PIPE_ENDED, LINK_SOCKET, MEMBER_RUNNING,
};
use ckpt_image::maps;
use ckpt_image::StrRef;
use ckpt_sys::{self as sys, Errno};

use crate::files::{self, Strings};
use crate::msg;
use crate::procfs;

/// One descriptor of one member.
#[derive(Clone, Copy, Default)]
pub struct Entry {
    dev: u64,
    ino: u64,
    member: u32,
    fd: u32,
    pid: u32,
    /// `LINK_FILE`, `LINK_PIPE` or `LINK_SOCKET`.
    kind: u32,
    readable: bool,
    flags: u32,
    /// A connected UNIX socket's peer (inode).
    peer: u64,
}

/// Fills `links` with the links of the members (`entries`: scratch, one per
/// descriptor of the job); returns how many. Pipe contents go to `strings`.
pub fn capture(
    members: &[Member],
    entries: &mut [Entry],
    links: &mut [Link],
    strings: &mut dyn Strings,
    scratch: &mut [u8],
) -> Result<usize, Errno> {
    let mut n = 0;
    for (i, m) in members.iter().enumerate().filter(|(_, m)| m.state == MEMBER_RUNNING) {
        n = list(i as u32, m.pid, entries, n, scratch)?;
    }
    let entries = &mut entries[..n];
    crate::sockets::each_unix_peer(scratch, |ino, peer| {
        for e in entries.iter_mut().filter(|e| e.ino == ino && e.kind == LINK_SOCKET) {
            e.peer = peer;
        }
    });
    entries.sort_unstable_by_key(|e| (e.dev, e.ino, e.member, e.fd));
    let entries = &entries[..];
    // The first entry of the file (dev, ino), if a member holds it.
    let first_of = |dev: u64, ino: u64| {
        let i = entries.partition_point(|e| (e.dev, e.ino) < (dev, ino));
        entries.get(i).filter(|e| (e.dev, e.ino) == (dev, ino)).map(|_| i)
    };
    let (mut count, mut descriptions) = (0, 0);
    let mut start = 0;
    while start < entries.len() {
        let first = entries[start];
        let end = start + entries[start..].iter().take_while(|e| (e.dev, e.ino) == (first.dev, first.ino)).count();
        let group = &entries[start..end];
        let spans = group.iter().any(|e| e.member != first.member);
        // A socket whose peer another member holds.
        let peer = (first.kind == LINK_SOCKET && first.peer != 0).then(|| first_of(first.dev, first.peer)).flatten();
        let crosses = peer.is_some_and(|p| entries[p].member != first.member || group.len() > 1);
        // A pipe's bytes, on its first read end, and whether its writers
        // are all gone: then a pipe that one member alone reads is the
        // job's too if bytes wait in it (the process image would lose them).
        let mut waiting = StrRef::default();
        let mut ended = false;
        if first.kind == LINK_PIPE {
            if let Some(reader) = group.iter().find(|e| e.readable) {
                (waiting, ended) = pipe_bytes(reader, strings, scratch)?;
            }
        }
        // A listening UNIX socket: its address, to bind again.
        let mut listening = None;
        if first.kind == LINK_SOCKET && peer.is_none() {
            listening = listen_address(&first, strings, scratch);
        }
        if spans || crosses || waiting.len != 0 || listening.is_some() {
            if count + group.len() > links.len() {
                return Err(Errno::ENOBUFS);
            }
            // Both ends of a pipe (one inode) or of a socket pair (the
            // lower inode's first entry) get the same number.
            let channel = match (first.kind, peer) {
                (LINK_PIPE, _) => 1 + start as u32,
                (LINK_SOCKET, Some(p)) => 1 + start.min(p) as u32,
                _ => 0,
            };
            let mut data_saved = first.kind == LINK_PIPE || listening.is_some();
            for (k, e) in group.iter().enumerate() {
                let same = group[..k].iter().position(|o| shared(o, e, scratch));
                let description = match same {
                    Some(j) => links[count - k + j].description,
                    None => {
                        descriptions += 1;
                        descriptions
                    }
                };
                let mut data = if e.readable && k == group.iter().position(|o| o.readable).unwrap_or(0) {
                    waiting
                } else {
                    StrRef::default()
                };
                if !data_saved && e.kind == LINK_SOCKET {
                    data = socket_queue(e, strings, scratch)?;
                    data_saved = true;
                }
                if let Some(address) = listening.filter(|_| k == 0) {
                    data = address;
                }
                let kind = match () {
                    _ if ended => LINK_PIPE_ENDED,
                    _ if listening.is_some() => LINK_LISTEN,
                    _ => e.kind,
                };
                links[count] = Link { member: e.member, fd: e.fd, description, channel, kind, flags: e.flags, data };
                count += 1;
            }
        }
        start = end;
    }
    Ok(count)
}

/// Adds the descriptors of member `member` (process `pid`) from entry `n` on.
fn list(member: u32, pid: u32, entries: &mut [Entry], mut n: usize, scratch: &mut [u8]) -> Result<usize, Errno> {
    let mut p = [0u8; 32];
    let dir = msg::c_path(&mut p, format_args!("/proc/{pid}/fd"), c"/proc/0/fd");
    let Ok(mut fds) = procfs::Tasks::dir(dir) else { return Ok(n) };
    let (dents, rest) = scratch.split_at_mut(2048);
    let mut batch = [0u32; 64];
    loop {
        let got = fds.next_batch(dents, &mut batch)?;
        if got == 0 {
            return Ok(n);
        }
        for &fd in &batch[..got] {
            if member == 0 && crate::job::is_own_fd(fd as i32) {
                continue;
            }
            let mut q = [0u8; 48];
            let path = msg::c_path(&mut q, format_args!("/proc/{pid}/fd/{fd}"), c"/proc/0/fd/0");
            let Ok(st) = sys::stat(path) else { continue };
            let link_len = sys::readlink(path, rest).unwrap_or(0);
            let kind = match st.mode & sys::S_IFMT {
                sys::S_IFIFO if rest[..link_len].starts_with(b"pipe:[") => LINK_PIPE,
                sys::S_IFSOCK => LINK_SOCKET,
                _ => LINK_FILE,
            };
            let flags = fdinfo_flags(pid, fd, rest).unwrap_or(0);
            if n == entries.len() {
                return Err(Errno::ENOBUFS);
            }
            let readable = flags as i32 & sys::O_ACCMODE != sys::O_WRONLY;
            entries[n] =
                Entry { dev: st.dev, ino: st.ino, member, fd, pid, kind, readable, flags: flags as u32, peer: 0 };
            n += 1;
        }
    }
}

/// The `flags:` (octal) and `pos:` of /proc/PID/fdinfo/FD.
fn fdinfo(pid: u32, fd: u32, buf: &mut [u8]) -> Option<(u64, u64)> {
    let mut p = [0u8; 48];
    let path = msg::c_path(&mut p, format_args!("/proc/{pid}/fdinfo/{fd}"), c"/proc/0/fdinfo/0");
    let n = procfs::read_file(path, buf).ok()?;
    let text = &buf[..n];
    let octal = sys::status::field(text, b"flags")?
        .iter()
        .try_fold(0u64, |a, &c| c.is_ascii_digit().then(|| a * 8 + (c - b'0') as u64))?;
    Some((octal, sys::status::decimal(text, b"pos")?))
}

fn fdinfo_flags(pid: u32, fd: u32, buf: &mut [u8]) -> Option<u64> {
    fdinfo(pid, fd, buf).map(|(flags, _)| flags)
}

/// Whether two descriptors of one file share one open file description.
fn shared(a: &Entry, b: &Entry, scratch: &mut [u8]) -> bool {
    match sys::kcmp_files(a.pid as i32, a.fd as i32, b.pid as i32, b.fd as i32) {
        Ok(r) => r == 0,
        // No kcmp: the same offset and flags (all a description holds that
        // the program can see).
        Err(_) => {
            let x = fdinfo(a.pid, a.fd, scratch);
            x.is_some() && x == fdinfo(b.pid, b.fd, scratch)
        }
    }
}

/// The bytes waiting in the pipe that `e` reads from, read through a
/// descriptor of its own (opened through /proc), not consumed; and whether
/// every write end of the pipe is closed.
fn pipe_bytes(e: &Entry, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(StrRef, bool), Errno> {
    let mut p = [0u8; 48];
    let path: &CStr = msg::c_path(&mut p, format_args!("/proc/{}/fd/{}", e.pid, e.fd), c"/proc/0/fd/0");
    let Ok(fd) = sys::open(path, sys::O_RDONLY | sys::O_NONBLOCK) else { return Ok((StrRef::default(), false)) };
    let result = files::peek_pipe(fd.as_raw(), strings, scratch);
    let ended = sys::pipe_widowed(fd);
    result.map(|(data, _)| (data, ended))
}

/// The messages waiting on the socket of `e`, peeked (not consumed)
/// through a copy of its descriptor; nothing if no copy can be had.
fn socket_queue(e: &Entry, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<StrRef, Errno> {
    let Ok(pidfd) = sys::pidfd_open(e.pid as i32) else { return Ok(StrRef::default()) };
    let Ok(fd) = sys::pidfd_getfd(pidfd, e.fd as i32) else { return Ok(StrRef::default()) };
    crate::sockets::save_queue(fd.as_raw(), strings, scratch)
}

/// One shared mapping of one member.
#[derive(Clone, Copy, Default)]
pub struct MapEntry {
    inode: u64,
    /// xxh3 of the mapping's name (its path, or `/dev/zero (deleted)`):
    /// with the inode, the object.
    name: u64,
    member: u32,
    start: u64,
    end: u64,
    offset: u64,
}

/// Fills `shared` with the shared mappings of objects that more than one
/// member maps (`entries`: scratch; `text`: room for one member's
/// `/proc/PID/maps`); returns how many.
pub fn capture_shared(
    members: &[Member],
    entries: &mut [MapEntry],
    shared: &mut [SharedMap],
    text: &mut [u8],
) -> Result<usize, Errno> {
    let (board_start, board_end) = crate::job::board_range();
    let mut n = 0;
    for (i, m) in members.iter().enumerate().filter(|(_, m)| m.state == MEMBER_RUNNING) {
        let mut p = [0u8; 32];
        let path = msg::c_path(&mut p, format_args!("/proc/{}/maps", m.pid), c"/proc/0/maps");
        let Ok(len) = procfs::read_file(path, text) else { continue };
        for map in maps::mappings(&text[..len]).flatten().filter(|map| map.shared && map.inode != 0) {
            if i == 0 && map.start < board_end && map.end > board_start {
                continue; // the job's own barrier
            }
            if n == entries.len() {
                return Err(Errno::ENOBUFS);
            }
            entries[n] = MapEntry {
                inode: map.inode,
                name: ckpt_image::checksum(map.name),
                member: i as u32,
                start: map.start,
                end: map.end,
                offset: map.offset,
            };
            n += 1;
        }
    }
    let entries = &mut entries[..n];
    entries.sort_unstable_by_key(|e| (e.inode, e.name, e.member, e.start));
    let mut count = 0;
    let mut start = 0;
    while start < entries.len() {
        let first = entries[start];
        let end =
            start + entries[start..].iter().take_while(|e| (e.inode, e.name) == (first.inode, first.name)).count();
        let group = &entries[start..end];
        if group.iter().any(|e| e.member != first.member) {
            for e in group {
                if count == shared.len() {
                    return Err(Errno::ENOBUFS);
                }
                let object = 1 + start as u32;
                shared[count] = SharedMap { member: e.member, object, start: e.start, end: e.end, offset: e.offset };
                count += 1;
            }
        }
        start = end;
    }
    Ok(count)
}

/// If the socket of `e` is a listening UNIX socket bound to an address:
/// its type and address, in the strings.
fn listen_address(e: &Entry, strings: &mut dyn Strings, scratch: &mut [u8]) -> Option<StrRef> {
    use ckpt_sys::events as ev;
    let pidfd = sys::pidfd_open(e.pid as i32).ok()?;
    let fd = sys::pidfd_getfd(pidfd, e.fd as i32).ok()?;
    let listening = ev::getsockopt_int(&fd, ev::SOL_SOCKET, ev::SO_ACCEPTCONN) == Ok(1);
    let ty = ev::getsockopt_int(&fd, ev::SOL_SOCKET, ev::SO_TYPE).unwrap_or(ev::SOCK_STREAM);
    let (head, addr) = scratch.split_at_mut(4);
    let len = ev::getsockname(fd, &mut addr[..110]);
    let len = len.ok().filter(|&n| listening && n > 2 && addr[..2] == (ev::AF_UNIX as u16).to_le_bytes())?;
    head.copy_from_slice(&(ty as u32).to_le_bytes());
    strings.add(&scratch[..4 + len])
}
