//! The parents of a delta image (docs/FORMAT.md, "Delta images"): each
//! link is opened and checked before the loader changes anything — the
//! file is there (beside the image), a regular file (the caller's own,
//! unless `--trust-image`), a valid image, the very one the delta names
//! (same `header_checksum` and length), and its own chain is the rest of
//! this one's. A missing or changed link is refused in one line naming it.
//! The bytes read from a parent are then checked by each extent's checksum,
//! as the image's own.

use core::ffi::CStr;
use core::fmt::Write;

use ckpt_image::{Header, Meta, HEADER_SIZE};
use ckpt_sys::{self as sys, msg::Line, BorrowedFd, Errno, OwnedFd, PATH_MAX};

use crate::fail::{self, Fail};
use crate::image;

/// Opens parent `k` (1: the nearest) of the image at `path`.
pub fn open_link(path: &CStr, meta: &Meta, k: usize, trust: bool) -> Result<OwnedFd, Fail> {
    let p = meta.parents()[k - 1];
    let name = meta.string(p.name).unwrap_or(b"");
    let refuse = |why: &dyn core::fmt::Display| {
        let mut l = Line::new();
        let _ = write!(l, "parent {k} of {} in the chain, ", meta.parents().len());
        l.push_escaped(name);
        let _ = write!(l, ", {why}");
        fail::composed(&l)
    };
    // Beside the image: its directory, then the name (a plain name, checked).
    let image = path.to_bytes();
    let dir = image.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    let mut buf = [0u8; PATH_MAX + 256];
    if dir + name.len() >= buf.len() {
        return Err(refuse(&"has too long a path"));
    }
    buf[..dir].copy_from_slice(&image[..dir]);
    buf[dir..dir + name.len()].copy_from_slice(name);
    let link = CStr::from_bytes_until_nul(&buf).map_err(|_| refuse(&"has a bad name"))?;
    let fd = match sys::open(link, sys::O_RDONLY | sys::O_NONBLOCK) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(refuse(&"is missing")),
        Err(e) => return Err(refuse(&format_args!("cannot be opened: {}", sys::errno_text(e)))),
    };
    check(fd.borrow(), meta, k, trust).map(|()| fd).map_err(|why| match why {
        Why::Said(f) => match f {
            Fail::Msg(m) => refuse(&m),
            Fail::Image(e) => refuse(&format_args!("is not a usable image: {}", e.message())),
            Fail::Sys(what, e) => refuse(&format_args!("{what}: {}", sys::errno_text(e))),
            _ => refuse(&"cannot be read"),
        },
        Why::Changed => refuse(&"has changed: it is not the image this delta was taken after"),
    })
}

enum Why {
    Said(Fail),
    Changed,
}

impl From<Fail> for Why {
    fn from(f: Fail) -> Self {
        Why::Said(f)
    }
}

fn check(fd: BorrowedFd, meta: &Meta, k: usize, trust: bool) -> Result<(), Why> {
    let st = sys::fstat(fd).map_err(|e| Fail::Sys("cannot stat it", e))?;
    if st.mode & sys::S_IFMT != sys::S_IFREG {
        return Err(Fail::Msg("is not a regular file").into());
    }
    if !trust {
        image::check_trusted(&st)?;
    }
    let file_len = st.size as u64;
    let mut head = [0u8; HEADER_SIZE];
    let n = (file_len as usize).min(HEADER_SIZE);
    image::read_exact(fd, &mut head[..n], 0)?;
    let h = Header::parse(&head[..n], file_len).map_err(Fail::Image)?;
    if h.is_link(&meta.parents()[k - 1], &meta.parents()[k..]) {
        Ok(())
    } else {
        Err(Why::Changed)
    }
}
