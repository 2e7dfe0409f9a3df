//! One-line messages on stderr, composed without allocation.

use core::ffi::CStr;
use core::fmt;

pub use ckpt_sys::msg::{Line, Size};

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
