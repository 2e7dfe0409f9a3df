//! Recreating inotify instances (`FdKind::Inotify`): each watch added again
//! by its path, in watch-descriptor order, under the same watch descriptor
//! (`INOTIFY_IOC_SETNEXTWD` before each), so that the numbers the program
//! holds stay valid. Events that were queued are not restored.

use core::ffi::CStr;

use ckpt_image::events::{record, InotifyWatch};
use ckpt_image::{Fd, Meta};
use ckpt_sys::events as ev;
use ckpt_sys::{self as sys, Errno, OwnedFd};

use crate::files::Out;

use ckpt_sys::PATH_MAX;

/// A new inotify instance with the watches of `f`.
pub fn create(meta: &Meta, f: &Fd, out: &Out) -> Result<OwnedFd, Errno> {
    let data = meta.string(f.data).unwrap_or_default();
    let n = data.len() / core::mem::size_of::<InotifyWatch>();
    let fd = ev::inotify_init1(0)?;
    let mut last = i32::MIN;
    let mut added = 0;
    // In watch-descriptor order (the smallest above the last one each time).
    for _ in 0..n {
        let Some(w) =
            (0..n).filter_map(|i| record::<InotifyWatch>(data, i)).filter(|w| w.wd > last).min_by_key(|w| w.wd)
        else {
            break;
        };
        last = w.wd;
        let mut buf = [0u8; PATH_MAX + 1];
        let path = meta.string(w.path).filter(|p| p.len() <= PATH_MAX && !p.contains(&0)).map(|p| {
            buf[..p.len()].copy_from_slice(p);
            buf[p.len()] = 0;
            p.len()
        });
        let Some(path) = path.and_then(|len| CStr::from_bytes_with_nul(&buf[..len + 1]).ok()) else { continue };
        let _ = ev::inotify_set_next_wd(&fd, w.wd);
        match ev::inotify_add_watch(&fd, path, w.mask) {
            Ok(wd) if wd == w.wd => added += 1,
            Ok(wd) => out.warn(meta, f, format_args!(": watch {} came back as {wd}", w.wd)),
            Err(e) => {
                let p = path.to_bytes();
                out.warn(
                    meta,
                    f,
                    format_args!(
                        ": watch {} of {} cannot be added again: {}",
                        w.wd,
                        core::str::from_utf8(p).unwrap_or("?"),
                        sys::errno_text(e)
                    ),
                )
            }
        }
    }
    out.verbose(meta, f, format_args!(": inotify recreated with {added} watches"));
    Ok(fd)
}
