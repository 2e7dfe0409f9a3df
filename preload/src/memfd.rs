//! memfds (`FdKind::Memfd`): a file with no path (`/memfd:NAME (deleted)`),
//! kept by contents: its seals, size and bytes go into the image (up to
//! [`MAX_CONTENTS`]; a larger one is Lost, with a warning), its name and
//! offset are the entry's `path` and `offset`. At restart the loader
//! creates it again and maps it again under the program's shared mappings
//! of it.
//!
//! Runs inside the capture (raw system calls only, no allocation).

use core::fmt::Write as _;

use ckpt_image::events::MemfdState;
use ckpt_image::{bytes_of, Fd, FdKind};
use ckpt_sys::{self as sys, events as ev, Errno};

use crate::events::Appender;
use crate::files::Strings;
use crate::msg;

/// Largest memfd kept (the string table holds the contents).
const MAX_CONTENTS: u64 = 4 << 20;

/// Records memfd `f` (its link, of `link_len` bytes, is in `scratch`).
pub fn describe(f: &mut Fd, link_len: usize, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    if f.size > MAX_CONTENTS {
        if !crate::config::get().strict {
            let mut l = msg::Line::new();
            let _ = write!(l, "ckpt: warning: fd {} (", f.fd);
            l.push(&scratch[..link_len]);
            let _ = write!(l, ") is a memfd of {} bytes, above the {MAX_CONTENTS} kept; it will be /dev/null", f.size);
            l.emit();
        }
        return Ok(()); // Lost
    }
    let seals = sys::fcntl(f.fd, ev::F_GET_SEALS, 0).unwrap_or(0) as u32;
    let mut out = Appender::default();
    out.add(strings, bytes_of(&MemfdState { seals, _pad: 0, size: f.size }))?;
    let mut at = 0u64;
    while at < f.size {
        let want = ((f.size - at) as usize).min(scratch.len());
        let got = match sys::pread(f.fd, &mut scratch[..want], at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        out.add(strings, &scratch[..got])?;
        at += got as u64;
    }
    if at != f.size {
        return Ok(()); // shrank under us? Lost
    }
    f.offset = sys::lseek(f.fd, 0, sys::SEEK_CUR).unwrap_or(0);
    f.data = out.whole;
    f.kind = FdKind::Memfd as u32;
    Ok(())
}
