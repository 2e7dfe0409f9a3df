//! A file line by line through the caller's buffer, with no allocation and
//! no lock: how the capture reads `/proc` files (fdinfo, status) in its
//! signal handler, and the ticker its program's status.

use crate::{Errno, Result};

/// What to do with a line longer than the buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Long {
    /// Stop with `E2BIG`.
    Fail,
    /// Pass over it (`Groups` or `Cpus_allowed` of a status file).
    Skip,
}

/// Calls `each` with every line, without its newline (the last one also
/// without one), of what `read` gives as read(2) fills a buffer.
pub fn for_each(
    mut read: impl FnMut(&mut [u8]) -> Result<usize>,
    buf: &mut [u8],
    long: Long,
    mut each: impl FnMut(&[u8]),
) -> Result<()> {
    // Bytes held (the start of a line), and whether that line is too long.
    let (mut held, mut skipping) = (0, false);
    loop {
        if held == buf.len() {
            if long == Long::Fail {
                return Err(Errno::E2BIG);
            }
            (held, skipping) = (0, true);
        }
        let n = match read(&mut buf[held..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let end = held + n;
        let mut start = 0;
        while let Some(nl) = buf[start..end].iter().position(|&c| c == b'\n') {
            if !skipping {
                each(&buf[start..start + nl]);
            }
            skipping = false;
            start += nl + 1;
        }
        buf.copy_within(start..end, 0);
        held = end - start;
    }
    if held > 0 && !skipping {
        each(&buf[..held]);
    }
    Ok(())
}
