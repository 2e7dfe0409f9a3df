//! One-line messages on stderr, composed without allocation.

use core::ffi::CStr;
use core::fmt;

pub use ckpt_sys::msg::Line;

/// Writes the parts as one line on stderr.
pub fn line(parts: &[&[u8]]) {
    let mut l = Line::new();
    for p in parts {
        l.push(p);
    }
    l.emit();
}

/// A short path composed from `args` (`/proc/self/fd/3`), NUL-terminated
/// in `buf`; `fallback` if it does not fit.
pub fn c_path<'b>(buf: &'b mut [u8], args: fmt::Arguments, fallback: &'b CStr) -> &'b CStr {
    let mut l = Line::new();
    let _ = fmt::Write::write_fmt(&mut l, args);
    let b = l.as_bytes();
    if b.len() >= buf.len() {
        return fallback;
    }
    buf[..b.len()].copy_from_slice(b);
    buf[b.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..b.len() + 1]).unwrap_or(fallback)
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
