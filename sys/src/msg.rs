//! One-line messages on stderr, composed in a fixed buffer (no allocation).

use core::fmt::{self, Write};

use crate::AsFd;

/// A fixed buffer that `core::fmt` can write into; what does not fit is cut.
pub struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    pub fn new() -> Self {
        Line { buf: [0; 1024], len: 0 }
    }

    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// Pushes a name that came from outside (a path, a command line) with
    /// [`escape`]: a newline or a terminal escape in it cannot break the
    /// line or drive the terminal.
    pub fn push_escaped(&mut self, bytes: &[u8]) -> &mut Self {
        escape(bytes, |piece| {
            self.push(piece);
        });
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the line, with its newline, to stderr in one system call.
    pub fn emit(&mut self) {
        self.buf[self.len] = b'\n';
        write_quietly(2, &self.buf[..self.len + 1]);
    }
}

const SIGPIPE: u64 = 1 << (13 - 1);

/// Writes `bytes` to `fd` without ever raising a signal in the process: a
/// closed pipe (stderr whose reader went away) raises SIGPIPE, which would
/// kill the program once ckpt's handler returns. SIGPIPE is blocked for the
/// write, and the one this write raised is taken back (a write to a broken
/// pipe sends it to the calling thread); one the program already had
/// pending stays. Signal-handler safe: raw system calls only.
pub fn write_quietly(fd: impl AsFd, bytes: &[u8]) {
    let had = crate::rt_sigpending() & SIGPIPE != 0;
    let old = crate::rt_sigprocmask(crate::SIG_BLOCK, SIGPIPE);
    let written = crate::write_all(&fd, bytes);
    if written == Err(crate::Errno::EPIPE) && !had {
        let _ = crate::rt_sigtimedwait_now(SIGPIPE);
    }
    if let Ok(old) = old {
        let _ = crate::rt_sigprocmask(crate::SIG_SETMASK, old);
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Bytes as a human-readable size ("3.1 MiB").
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 {
            write!(f, "{:.2} GiB", b as f64 / (1u64 << 30) as f64)
        } else if b >= 1 << 20 {
            write!(f, "{:.1} MiB", b as f64 / (1u64 << 20) as f64)
        } else {
            write!(f, "{:.1} KiB", b as f64 / 1024.0)
        }
    }
}
/// Escapes a byte string for a one-line message, in pieces handed to `put`:
/// UTF-8 text stays as it is, except a backslash (`\\`) and control
/// characters (C0, DEL, C1: `\xNN`); a byte that is not UTF-8 is `\xNN` too.
/// The one escaping rule of ckpt, restart and readckpt.
pub fn escape(bytes: &[u8], mut put: impl FnMut(&[u8])) {
    let hex = |v: u32, put: &mut dyn FnMut(&[u8])| {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        put(&[b'\\', b'x', DIGITS[(v >> 4) as usize & 15], DIGITS[v as usize & 15]]);
    };
    for chunk in bytes.utf8_chunks() {
        let text = chunk.valid();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if c == '\\' || c.is_control() {
                put(&text.as_bytes()[start..i]);
                if c == '\\' {
                    put(b"\\\\");
                } else {
                    hex(c as u32, &mut put);
                }
                start = i + c.len_utf8();
            }
        }
        put(&text.as_bytes()[start..]);
        for &b in chunk.invalid() {
            hex(b as u32, &mut put);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn escaped(b: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        escape(b, |p| v.extend_from_slice(p));
        v
    }

    #[test]
    fn escapes_what_could_break_a_line() {
        assert_eq!(escaped(b"/tmp/plain name.dat"), b"/tmp/plain name.dat");
        assert_eq!(escaped(b"a\nb"), b"a\\x0ab");
        assert_eq!(escaped(b"a\x1b[31mred\\"), b"a\\x1b[31mred\\\\");
        assert_eq!(escaped("caf\u{e9} \u{9b}".as_bytes()), "caf\u{e9} \\x9b".as_bytes());
        assert_eq!(escaped(b"\xff\x7f"), b"\\xff\\x7f");
        let mut l = Line::new();
        l.push(b"x ").push_escaped(b"\r\n");
        assert_eq!(l.as_bytes(), b"x \\x0d\\x0a");
    }
}
