//! One-line messages on stderr, composed without allocation.

pub use ckpt_sys::msg::{Line, Size};

/// Writes the parts as one line on stderr.
pub fn line(parts: &[&[u8]]) {
    let mut l = Line::new();
    for p in parts {
        l.push(p);
    }
    l.emit();
}
