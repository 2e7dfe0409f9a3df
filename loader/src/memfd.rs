//! Recreating memfds (`FdKind::Memfd`): a new memfd of the same name with
//! the saved contents, size and offset, mapped again under the program's
//! shared mappings of the old one (which memory restore left as detached
//! copies of the same bytes, see [`backs_fd`]), then sealed as it was.

use core::ffi::CStr;

use ckpt_image::events::MemfdState;
use ckpt_image::{read_at, Fd, FdKind, Meta, Region, REGION_SHARED};
use ckpt_sys::events as ev;
use ckpt_sys::{self as sys, BorrowedFd, Errno, OwnedFd};

use crate::files::Out;

/// Whether shared region `r` maps the memfd of an entry of the fd table
/// (then [`create`] maps it again, and memory restore says nothing).
pub fn backs_fd(meta: &Meta, r: &Region) -> bool {
    meta.fds().any(|f| f.kind() == Some(FdKind::Memfd) && maps(meta, r, &f))
}

/// Whether region `r` is a shared mapping of memfd `f` (the capture keeps
/// a memfd region's inode; its name is the descriptor's link).
fn maps(meta: &Meta, r: &Region, f: &Fd) -> bool {
    r.flags & REGION_SHARED != 0 && r.file.ino == f.ino && meta.string(r.path) == meta.string(f.path)
}

/// A new memfd as `f` was; its shared mappings in place again.
pub fn create(meta: &Meta, f: &Fd, out: &Out) -> Result<OwnedFd, Errno> {
    let data = meta.string(f.data).unwrap_or_default();
    let s: MemfdState = read_at(data, 0).ok_or(Errno::EINVAL)?;
    let contents = &data[core::mem::size_of::<MemfdState>()..];
    let link = meta.string(f.path).unwrap_or_default();
    let name = link.strip_prefix(b"/memfd:").and_then(|n| n.strip_suffix(b" (deleted)")).unwrap_or(b"ckpt");
    let mut buf = [0u8; 256];
    let n = name.len().min(249);
    buf[..n].copy_from_slice(&name[..n]);
    let cname = CStr::from_bytes_until_nul(&buf).unwrap_or(c"ckpt");
    let fd = ev::memfd_create(cname, ev::MFD_ALLOW_SEALING)?;
    fill(fd.borrow(), contents, s.size)?;
    let mut mapped = 0;
    for r in meta.regions().filter(|r| maps(meta, r, f)) {
        // SAFETY: the region is the program's, holding the same bytes as
        // the memfd (both were its page cache at the checkpoint); the new
        // mapping replaces it in one step (mapped elsewhere, then moved).
        match unsafe { remap(fd.borrow(), &r) } {
            Ok(()) => mapped += 1,
            Err(e) => out.warn(
                meta,
                f,
                format_args!(": cannot map it again at {:x}: {}; that memory is detached", r.start, sys::errno_text(e)),
            ),
        }
    }
    // F_SEAL_SEAL alone is a memfd that never allowed sealing.
    if s.seals != 0 {
        if let Err(e) = sys::fcntl(&fd, ev::F_ADD_SEALS, s.seals as u64) {
            out.warn(meta, f, format_args!(": its seals {:#x} cannot be set: {}", s.seals, sys::errno_text(e)));
        }
    }
    let _ = sys::lseek(&fd, f.offset as i64, sys::SEEK_SET);
    out.verbose(meta, f, format_args!(": memfd recreated, {} bytes, seals {:#x}, {mapped} mappings", s.size, s.seals));
    Ok(fd)
}

fn fill(fd: BorrowedFd, contents: &[u8], size: u64) -> Result<(), Errno> {
    let mut at = 0;
    while at < contents.len() {
        match ev::pwrite(fd, &contents[at..], at as u64) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => at += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    sys::ftruncate(fd, size)
}

/// # Safety
/// `r` must be a region of the program that nothing else uses now.
unsafe fn remap(fd: BorrowedFd, r: &Region) -> Result<(), Errno> {
    // SAFETY: a new mapping where the kernel chooses.
    let at = unsafe { sys::mmap(0, r.len(), r.prot as i32, sys::MAP_SHARED, fd, r.file_offset) }?;
    // SAFETY: `at` is the mapping just made; the region is the caller's.
    if let Err(e) = unsafe { sys::mremap_fixed(at, r.len(), r.start) } {
        // SAFETY: the mapping just made, used by nothing.
        let _ = unsafe { sys::munmap(at, r.len()) };
        return Err(e);
    }
    Ok(())
}
