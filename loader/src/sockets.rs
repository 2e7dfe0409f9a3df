//! Recreating UNIX socket pairs whose both ends were in the process
//! (`FdKind::Socket`), connected again, with the messages that were waiting
//! on each end sent from the other (datagram and seqpacket messages one by
//! one, so their boundaries stay). Called by `files::restore`.

use ckpt_image::events::socket_messages;
use ckpt_image::{Fd, FdKind, Meta};
use ckpt_sys::events::{self as ev};
use ckpt_sys::{self as sys, Errno};

use crate::args::Options;
use crate::files::{self, Out};

pub fn is_socket(f: &Fd) -> bool {
    files::kind(f) == FdKind::Socket
}

/// Recreates the pair of entry `first` and places both of its ends (their
/// dups are placed by the shared pass).
pub fn restore_pair(meta: &Meta, opts: &Options, first: usize, out: &Out) {
    let a = meta.fd(first);
    let peer = (0..meta.n_fds()).find(|&j| {
        let g = meta.fd(j);
        is_socket(&g) && g.ino == a.pipe && g.dev == a.dev && files::shared_with(meta, j, &g).is_none()
    });
    let data = meta.string(a.data).unwrap_or_default();
    let Some((state, _)) = socket_messages(data) else {
        return lost(meta, first, &a, out, "its record is malformed");
    };
    let pair = ev::socketpair(ev::AF_UNIX, state.sock_type as i32 | ev::SOCK_CLOEXEC, 0);
    let (sa, mut sb) = match pair {
        Ok(p) => p,
        Err(e) => return lost(meta, first, &a, out, sys::errno_text(e)),
    };
    // The first end goes to its number, which may be the other end's
    // temporary one: move that away first.
    if sb.as_raw() == a.fd {
        match sys::dup_from(&sb, 0) {
            Ok(moved) => sb = moved, // (the old number closed)
            Err(e) => return lost(meta, first, &a, out, sys::errno_text(e)),
        }
    }
    fill(meta, &a, sb.borrow(), out);
    let b = peer.map(|j| (j, meta.fd(j)));
    if let Some((_, b)) = &b {
        fill(meta, b, sa.borrow(), out);
    }
    files::set_done(first);
    if files::place(sa, &a).is_ok() {
        let _ = sys::fcntl(a.fd, sys::F_SETFL, a.flags as u64);
        files::set_placed(first);
        out.verbose(meta, &a, format_args!(": socket pair recreated"));
    }
    match b {
        Some((j, b)) if files::wanted(&b, opts) => {
            files::set_done(j);
            if files::place(sb, &b).is_ok() {
                let _ = sys::fcntl(b.fd, sys::F_SETFL, b.flags as u64);
                files::set_placed(j);
            }
        }
        _ => drop(sb),
    }
}

fn lost(meta: &Meta, i: usize, f: &Fd, out: &Out, why: &str) {
    files::set_done(i);
    out.warn(meta, f, format_args!(": cannot recreate the socket pair: {why}; it is /dev/null"));
    files::put_null(meta, f, out);
}

/// Sends the messages that were waiting on `f` from the new peer end `w`.
fn fill(meta: &Meta, f: &Fd, w: sys::BorrowedFd, out: &Out) {
    let data = meta.string(f.data).unwrap_or_default();
    match send_waiting(data, w) {
        Ok((0, _)) => {}
        Ok((count, sent)) => out.verbose(meta, f, format_args!(": {count} messages, {sent} bytes waiting again")),
        Err((sent, e)) => {
            out.warn(meta, f, format_args!(": only {sent} bytes of what waited on it fit back: {}", sys::errno_text(e)))
        }
    }
}

/// Sends the messages of a socket's record (`data`: its `SocketState`
/// and what waited on it) from its new peer end `w`: (messages, bytes),
/// or the bytes sent before an error.
pub fn send_waiting(data: &[u8], w: impl sys::AsFd) -> Result<(usize, usize), (usize, Errno)> {
    let Some((_, msgs)) = socket_messages(data) else { return Ok((0, 0)) };
    let total: usize = socket_messages(data).map_or(0, |(_, m)| m.map(|m| m.len() + 64).sum());
    if total > 0 {
        // Room for all of it: the sender's buffer bounds what may wait.
        let _ = ev::setsockopt_int(&w, ev::SOL_SOCKET, ev::SO_SNDBUF, total.min(i32::MAX as usize / 2) as i32);
    }
    let (mut sent, mut count) = (0usize, 0usize);
    for m in msgs {
        count += 1;
        let mut at = 0;
        loop {
            match ev::send(&w, &m[at..], ev::MSG_DONTWAIT | ev::MSG_NOSIGNAL) {
                Ok(k) => at += k,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err((sent, e)),
            }
            if at >= m.len() {
                break;
            }
        }
        sent += m.len();
    }
    Ok((count, sent))
}
