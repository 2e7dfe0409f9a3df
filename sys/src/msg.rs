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
        let _ = crate::write_all(2, &self.buf[..self.len + 1]);
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
