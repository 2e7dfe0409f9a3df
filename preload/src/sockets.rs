//! UNIX sockets whose peer is in the process too (a `socketpair`, or a
//! connection between two sockets of the program): `FdKind::Socket`.
//!
//! Runs inside the capture (raw system calls only, no allocation).
//!
//! The peers of UNIX sockets are asked of the kernel's sock_diag netlink
//! (one dump of the UNIX sockets with `UNIX_DIAG_PEER`). A socket whose peer is among the table's
//! descriptors is kept (its peer's inode in the `Fd`'s `pipe`); any other
//! socket (to another process, a listening one, TCP…) stays Lost.
//!
//! The bytes waiting to be read on each such socket are read without
//! consuming them: `SO_PEEK_OFF` set to 0, then `MSG_PEEK` reads that each
//! move the peek offset on, message by message for datagram and seqpacket
//! sockets (their boundaries are kept); the program's own peek offset is
//! put back. If the checkpoint fails, the program's queues are intact.

use ckpt_image::events::SocketState;
use ckpt_image::{bytes_of, Fd, FdKind, StrRef};
use ckpt_sys::events::{self as ev};
use ckpt_sys::{self as sys, Errno};

use crate::events::Appender;
use crate::files::Strings;

/// Keeps the sockets whose peer is here, and records the messages waiting
/// on each (once per socket: on its first descriptor).
pub fn capture(fds: &mut [Fd], strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    let is_socket = |f: &Fd| f.kind == FdKind::Socket as u32;
    if !fds.iter().any(|f| f.kind == FdKind::Lost as u32 && f.mode & sys::S_IFMT == sys::S_IFSOCK) {
        return Ok(());
    }
    Diag::open().each_peer(scratch, |ino, peer| {
        for f in fds.iter_mut().filter(|f| f.ino == ino && f.kind == FdKind::Lost as u32) {
            if f.mode & sys::S_IFMT == sys::S_IFSOCK {
                f.pipe = peer;
                f.kind = FdKind::Socket as u32;
            }
        }
    });
    for i in 0..fds.len() {
        if is_socket(&fds[i]) && !fds.iter().any(|g| is_socket(g) && g.ino == fds[i].pipe && g.dev == fds[i].dev) {
            fds[i].kind = FdKind::Lost as u32;
            fds[i].pipe = 0;
        }
    }
    for i in 0..fds.len() {
        if !is_socket(&fds[i]) {
            continue;
        }
        let first = fds[..i].iter().find(|g| is_socket(g) && g.ino == fds[i].ino && g.dev == fds[i].dev);
        fds[i].data = match first {
            Some(g) => g.data,
            None => save_queue(fds[i].fd, strings, scratch)?,
        };
    }
    Ok(())
}

/// The record and the messages waiting on socket `fd`, read with MSG_PEEK
/// twice (the program is stopped, its queues cannot change between): once
/// to count them, once to store them.
pub fn save_queue(fd: i32, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<StrRef, Errno> {
    let sock_type = ev::getsockopt_int(fd, ev::SOL_SOCKET, ev::SO_TYPE).unwrap_or(ev::SOCK_STREAM);
    let stream = sock_type == ev::SOCK_STREAM;
    if stream && sys::fionread(fd) == Ok(0) {
        // Nothing waiting (the common case): no need to peek.
        return strings.add(bytes_of(&SocketState { sock_type: sock_type as u32, n_msgs: 0 })).ok_or(Errno::ENOBUFS);
    }
    let old_off = ev::getsockopt_int(fd, ev::SOL_SOCKET, ev::SO_PEEK_OFF).unwrap_or(-1);
    let (mut n_msgs, mut stream_len) = (0u32, 0usize);
    let counted = peek_all(fd, stream, scratch, |piece| {
        n_msgs += 1;
        stream_len += piece.len();
        Ok(())
    });
    let result = counted.and_then(|()| {
        let mut out = Appender::default();
        if stream {
            n_msgs = (stream_len > 0) as u32;
        }
        out.add(strings, bytes_of(&SocketState { sock_type: sock_type as u32, n_msgs }))?;
        if stream && stream_len > 0 {
            out.add(strings, &(stream_len as u32).to_le_bytes())?;
        }
        peek_all(fd, stream, scratch, |piece| {
            if !stream {
                out.add(strings, &(piece.len() as u32).to_le_bytes())?;
            }
            out.add(strings, piece)
        })?;
        Ok(out.whole)
    });
    let _ = ev::setsockopt_int(fd, ev::SOL_SOCKET, ev::SO_PEEK_OFF, old_off);
    result
}

/// Peeks at every message waiting on `fd` from the start of its queue (a
/// stream socket's bytes in pieces of `scratch`), handing each to `each`.
fn peek_all(
    fd: i32,
    stream: bool,
    scratch: &mut [u8],
    mut each: impl FnMut(&[u8]) -> Result<(), Errno>,
) -> Result<(), Errno> {
    ev::setsockopt_int(fd, ev::SOL_SOCKET, ev::SO_PEEK_OFF, 0)?;
    let flags = ev::MSG_PEEK | ev::MSG_DONTWAIT | if stream { 0 } else { ev::MSG_TRUNC };
    loop {
        let got = match ev::recv(fd, scratch, flags) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        if stream && got == 0 {
            return Ok(()); // the peer shut its side down
        }
        if got > scratch.len() {
            return Err(Errno::EMSGSIZE); // a datagram larger than the buffer
        }
        each(&scratch[..got])?;
        if got == 0 {
            return Ok(()); // an empty datagram does not move the peek offset
        }
    }
}

/// The kernel's sock_diag netlink, asked for the peers of UNIX sockets.
struct Diag {
    fd: Option<sys::OwnedFd>,
}

impl Diag {
    fn open() -> Diag {
        Diag { fd: ev::socket(ev::AF_NETLINK, ev::SOCK_DGRAM | ev::SOCK_CLOEXEC, ev::NETLINK_SOCK_DIAG).ok() }
    }

    /// Calls `each(inode, peer's inode)` for every UNIX socket of the
    /// system that has a peer: one dump of the UNIX sockets with their
    /// peers (`UDIAG_SHOW_PEER`), read into `scratch`.
    fn each_peer(&self, scratch: &mut [u8], mut each: impl FnMut(u64, u64)) {
        const SOCK_DIAG_BY_FAMILY: u16 = 20;
        const NLM_F_REQUEST_DUMP: u16 = 0x301;
        const NLMSG_DONE: u16 = 3;
        const UDIAG_SHOW_PEER: u32 = 4;
        const UNIX_DIAG_PEER: u16 = 2;
        let Some(fd) = &self.fd else { return };
        // struct nlmsghdr (16 bytes) + struct unix_diag_req (24 bytes).
        let mut req = [0u8; 40];
        req[0..4].copy_from_slice(&40u32.to_le_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_le_bytes());
        req[6..8].copy_from_slice(&NLM_F_REQUEST_DUMP.to_le_bytes());
        req[16] = ev::AF_UNIX as u8;
        req[20..24].copy_from_slice(&u32::MAX.to_le_bytes()); // every state
        req[28..32].copy_from_slice(&UDIAG_SHOW_PEER.to_le_bytes());
        if ev::send_netlink(fd, &req).is_err() {
            return;
        }
        loop {
            let n = match ev::recv(fd, scratch, 0) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut msgs = &scratch[..n];
            // Each: nlmsghdr, struct unix_diag_msg (16 bytes: inode at 4),
            // then attributes.
            while msgs.len() >= 16 {
                let len = u32::from_le_bytes([msgs[0], msgs[1], msgs[2], msgs[3]]) as usize;
                let ty = u16::from_le_bytes([msgs[4], msgs[5]]);
                if ty == NLMSG_DONE || len < 16 || len > msgs.len() {
                    return;
                }
                if ty == SOCK_DIAG_BY_FAMILY && len >= 32 {
                    let ino = u32::from_le_bytes([msgs[20], msgs[21], msgs[22], msgs[23]]) as u64;
                    if let Some(peer) = attribute(&msgs[32..len], UNIX_DIAG_PEER) {
                        each(ino, peer as u64);
                    }
                }
                msgs = msgs.get((len + 3) & !3..).unwrap_or(&[]);
            }
        }
    }
}

/// Calls `each(inode, peer's inode)` for every connected UNIX socket.
pub fn each_unix_peer(scratch: &mut [u8], each: impl FnMut(u64, u64)) {
    Diag::open().each_peer(scratch, each);
}

/// The u32 value of netlink attribute `want` among `attrs`.
fn attribute(mut attrs: &[u8], want: u16) -> Option<u32> {
    while attrs.len() >= 4 {
        let len = u16::from_le_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_le_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == want && len >= 8 {
            return Some(u32::from_le_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]));
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}
