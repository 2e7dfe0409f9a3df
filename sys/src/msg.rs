//! One-line messages on stderr, composed in a fixed buffer (no allocation).

use core::fmt::{self, Write};

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
pub fn write_quietly(fd: i32, bytes: &[u8]) {
    let had = crate::rt_sigpending() & SIGPIPE != 0;
    let old = crate::rt_sigprocmask(crate::SIG_BLOCK, SIGPIPE);
    let written = crate::write_all(fd, bytes);
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
