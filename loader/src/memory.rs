//! Rebuilding the address space.
//!
//! ```text
//!  before                                   after
//!  0x0000_0000_0000 ┌──────────────┐        ┌──────────────┐
//!                   │ (unmapped)   │        │ program, heap│  image regions,
//!                   │              │        │ libraries …  │  data read into
//!  0x2000_0000_0000 ├──────────────┤        ├──────────────┤  place
//!                   │ loader       │  kept  │ loader       │
//!                   │ scratch vDSO │ ─────► │ (reserved)   │
//!  0x2000_1000_0000 ├──────────────┤        ├──────────────┤
//!                   │ kernel stack │        │ mmap area,   │
//!                   │ (unmapped)   │        │ vDSO, stack  │
//!  0x7fff_ffff_f000 └──────────────┘        └──────────────┘
//! ```
//!
//! Every region is mapped anonymous and writable, its stored extents are
//! read straight into place and checked against their checksums (`data`),
//! then it gets its final protection. Pages without an extent stay zero, as
//! they were never touched. A shared file mapping whose file is unchanged
//! since the checkpoint is then mapped from the file again (its contents
//! written back where they differ); one whose file changed or is gone stays
//! shared memory detached from the file, with a warning.

use core::ffi::CStr;
use core::fmt::Write;

use ckpt_image::{
    FileId, Meta, Region, RegionKind, LOADER_BASE, LOADER_END, PROT_WRITE, REGION_GROWSDOWN, REGION_SHARED, USER_END,
};
use ckpt_sys::{self as sys, msg::Line, Errno};

use crate::fail::{self, Fail};
use crate::image::Image;

/// Unmaps everything below and above the loader's range.
///
/// # Safety
/// After this, only memory inside the loader's range exists.
pub unsafe fn unmap_all_but_loader() {
    // SAFETY: the loader uses nothing outside its range (its stack, heap
    // and the parked vDSO are inside).
    unsafe {
        let _ = sys::munmap(0, LOADER_BASE);
        let _ = sys::munmap(LOADER_END, USER_END - LOADER_END);
    }
}

/// Maps every region of the image, fills it from the file (showing its
/// progress on a terminal after `progress_after_ms`), and gives it its
/// final protection.
///
/// # Safety
/// The address space outside the loader's range must be empty but for the
/// placed vDSO.
pub unsafe fn restore(img: &Image, progress_after_ms: u64) -> Result<(), Fail> {
    let regions = || img.meta.regions().filter(|r| !r.kind().is_some_and(|k| k.is_vdso()));
    for r in regions() {
        // SAFETY: as the function's contract.
        unsafe { map_region(&r)? };
    }
    // SAFETY: every stored extent lies in a region just mapped writable.
    unsafe { crate::data::read_all(img, progress_after_ms)? };
    // SAFETY: as the function's contract: the memory several processes of
    // a job share, one object for all of them.
    unsafe { crate::job::map_shared(img.meta)? };
    let own_file = |r: &Region| !crate::job::is_shared_region(r.start);
    for r in regions().filter(|r| r.kind() == Some(RegionKind::File) && r.flags & REGION_SHARED != 0 && own_file(r)) {
        // SAFETY: the region is mapped and holds its verified contents.
        unsafe { reattach_shared_file(img.meta, &r) };
    }
    for r in regions() {
        let prot = r.prot as i32;
        if r.n_extents != 0 && map_prot(&r) != prot {
            // SAFETY: the region is the target's; this is its own protection.
            unsafe { sys::mprotect(r.start, r.len(), prot) }.map_err(fail::sys("cannot protect a region"))?;
        }
    }
    Ok(())
}

/// The protection a region is mapped with: writable while its data is read.
pub fn map_prot(r: &Region) -> i32 {
    if r.n_extents != 0 {
        r.prot as i32 | sys::PROT_READ | sys::PROT_WRITE
    } else {
        r.prot as i32
    }
}

/// The `mmap` flags a region is mapped with (but for `MAP_FIXED_NOREPLACE`).
pub fn map_flags(r: &Region) -> i32 {
    let stored = r.n_extents != 0;
    let mut flags = sys::MAP_ANONYMOUS;
    flags |= if r.flags & REGION_SHARED != 0 { sys::MAP_SHARED } else { sys::MAP_PRIVATE };
    if r.flags & REGION_GROWSDOWN != 0 {
        flags |= sys::MAP_GROWSDOWN;
    }
    if r.kind() == Some(RegionKind::Workspace) || (!stored && r.prot == 0) {
        flags |= sys::MAP_NORESERVE;
    }
    flags
}

unsafe fn map_region(r: &Region) -> Result<(), Fail> {
    let flags = map_flags(r) | sys::MAP_FIXED_NOREPLACE;
    // SAFETY: NOREPLACE: nothing existing is replaced; the range is
    // validated to be in user space and outside the loader's range.
    let at =
        unsafe { sys::mmap(r.start, r.len(), map_prot(r), flags, -1, 0) }.map_err(fail::sys("cannot map a region"))?;
    if at != r.start {
        return Err(Fail::Msg("the kernel placed a region elsewhere than asked"));
    }
    Ok(())
}

/// A `MAP_SHARED` file mapping, restored as shared memory with its
/// checkpointed contents, is mapped from its file again if the file is
/// still there and unchanged since the checkpoint (same device, inode, size
/// and modification time): the stored contents are written back where the
/// file differs (normally nowhere: the mapping was the file's page cache),
/// and the file is mapped over the region, so that the program's writes
/// reach it again. A file the program holds a lock on is mapped again as
/// it is now even if it changed (other processes changed it under the
/// locks, which its lock keeper held meanwhile: what the program would
/// see had it run on). Otherwise the region stays detached from the file, and
/// one warning line says why. Shared anonymous memory (`/dev/zero
/// (deleted)` in the maps) is not a file and stays as it is.
///
/// # Safety
/// The region must be mapped, holding its verified contents, and not in
/// use by anything else.
unsafe fn reattach_shared_file(meta: &Meta, r: &Region) {
    const DELETED: &[u8] = b" (deleted)";
    let name = meta.string(r.path).unwrap_or(b"");
    if name == b"/dev/zero (deleted)" || crate::memfd::backs_fd(meta, r) {
        return; // (a memfd the program holds: memfd.rs maps it again)
    }
    let why = if name.ends_with(DELETED) {
        Err(Detached::Deleted)
    } else {
        // SAFETY: as the function's contract.
        unsafe { reattach(meta, r, name) }
    };
    let Err(why) = why else { return };
    let mut l = Line::new();
    let _ = write!(l, "restart: warning: shared mapping {:x}-{:x} of ", r.start, r.end);
    l.push_escaped(name.strip_suffix(DELETED).unwrap_or(name)).push(b": ");
    let _ = match why {
        Detached::Deleted => l.write_str("the file was deleted"),
        Detached::Unknown => l.write_str("the file could not be identified at the checkpoint"),
        Detached::Replaced => l.write_str("the path names another file now"),
        Detached::Changed => l.write_str("the file changed since the checkpoint"),
        Detached::Sys(what, e) => {
            write!(l, "{what}: {} ({})", sys::errno_text(e), sys::errno_name(e))
        }
    };
    l.push(b"; the memory keeps its contents of the checkpoint, but no longer reaches the file");
    crate::fail::warn(&mut l);
}

/// Why a shared file mapping stays detached from its file.
enum Detached {
    Deleted,
    Unknown,
    Replaced,
    Changed,
    Sys(&'static str, Errno),
}

/// # Safety
/// As [`reattach_shared_file`].
unsafe fn reattach(meta: &Meta, r: &Region, name: &[u8]) -> Result<(), Detached> {
    let mut buf = [0u8; 4097];
    if name.len() >= buf.len() || r.file == FileId::default() {
        return Err(Detached::Unknown);
    }
    buf[..name.len()].copy_from_slice(name);
    let path = CStr::from_bytes_until_nul(&buf).map_err(|_| Detached::Unknown)?;
    // A writable shared mapping needs a file open for writing; a read-only
    // one gets a read-only descriptor (no system file is opened for writing
    // because a program mapped it).
    let mode = if r.prot & PROT_WRITE != 0 { sys::O_RDWR } else { sys::O_RDONLY };
    let fd = sys::open(path, mode).map_err(|e| Detached::Sys("cannot open the file", e))?;
    // SAFETY: as the function's contract; the descriptor is ours.
    unsafe { reattach_fd(meta, r, fd.borrow()) }
}

/// # Safety
/// As [`reattach_shared_file`]; `fd` is the region's file, open.
unsafe fn reattach_fd(meta: &Meta, r: &Region, fd: sys::BorrowedFd) -> Result<(), Detached> {
    let st = sys::fstat(fd).map_err(|e| Detached::Sys("cannot read the file's status", e))?;
    let mtime_ns = (st.mtime[0].max(0) as u64).saturating_mul(1_000_000_000).saturating_add(st.mtime[1].max(0) as u64);
    if st.dev != r.file.dev || st.ino != r.file.ino {
        return Err(Detached::Replaced);
    }
    let changed = st.size.max(0) as u64 != r.file.size || mtime_ns != r.file.mtime_ns;
    // A file the program holds a lock on is shared under those locks with
    // other processes (sqlite's -shm): it comes back as they left it.
    let shared_under_locks = crate::locks::held_on(meta, st.dev, st.ino);
    if changed && !shared_under_locks {
        return Err(Detached::Changed);
    }
    // The last page of a mapping may reach past the end of the file: only
    // the bytes inside the file are the file's (the file keeps its size).
    for x in meta.extents_of(r).filter(|_| !changed) {
        let offset = r.file_offset + (x.addr - r.start);
        let len = x.len.min(r.file.size.saturating_sub(offset));
        // SAFETY: the extent lies in the region, mapped and readable.
        unsafe { write_back(fd, x.addr, len, offset) }.map_err(|e| Detached::Sys("cannot write the file", e))?;
    }
    // The file is mapped elsewhere first, then moved over the region in one
    // step: a failure leaves the region as it was.
    // SAFETY: a new mapping where the kernel chooses; nothing is replaced.
    let at = unsafe { sys::mmap(0, r.len(), r.prot as i32, sys::MAP_SHARED, fd, r.file_offset) }
        .map_err(|e| Detached::Sys("cannot map the file", e))?;
    // SAFETY: `at` is the mapping just made; the region is ours (contract).
    if let Err(e) = unsafe { sys::mremap_fixed(at, r.len(), r.start) } {
        // SAFETY: the mapping just made, used by nothing.
        let _ = unsafe { sys::munmap(at, r.len()) };
        return Err(Detached::Sys("cannot map the file", e));
    }
    Ok(())
}

/// Writes `[addr, addr+len)` to `fd` at `offset` where the file's bytes
/// differ from it, comparing 64 KiB at a time.
///
/// # Safety
/// The range must be readable memory.
unsafe fn write_back(fd: sys::BorrowedFd, addr: u64, len: u64, offset: u64) -> Result<(), Errno> {
    let mut file = [0u8; 64 << 10];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(file.len() as u64) as usize;
        // SAFETY: inside the caller's range.
        let mem = unsafe { core::slice::from_raw_parts((addr + done) as *const u8, n) };
        let got = sys::pread(fd, &mut file[..n], offset + done)?;
        if got != n || file[..n] != *mem {
            // SAFETY: inside the caller's range.
            unsafe { sys::pwrite_all(fd, addr + done, n as u64, offset + done) }.map_err(|e| match e {
                sys::Short::End => Errno::EIO,
                sys::Short::Errno(e) => e,
            })?;
        }
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{map_flags, map_prot};
    use ckpt_image::{Region, RegionKind, REGION_GROWSDOWN, REGION_SHARED};
    use ckpt_sys as sys;

    fn region(prot: i32, flags: u32, kind: RegionKind, n_extents: u32) -> Region {
        Region {
            start: 0x1000,
            end: 0x3000,
            prot: prot as u32,
            flags,
            kind: kind as u32,
            n_extents,
            ..Region::default()
        }
    }

    /// A region with data is mapped writable while it is read, then gets
    /// its own protection; its flags follow the image's.
    #[test]
    fn how_a_region_is_mapped() {
        let ro = region(sys::PROT_READ, 0, RegionKind::Anon, 2);
        assert_eq!(map_prot(&ro), sys::PROT_READ | sys::PROT_WRITE);
        assert_eq!(map_flags(&ro), sys::MAP_ANONYMOUS | sys::MAP_PRIVATE);
        let empty = region(sys::PROT_READ, 0, RegionKind::Anon, 0);
        assert_eq!(map_prot(&empty), sys::PROT_READ, "nothing to read: its own protection at once");
        let stack = region(sys::PROT_READ | sys::PROT_WRITE, REGION_GROWSDOWN, RegionKind::Stack, 1);
        assert_eq!(map_flags(&stack), sys::MAP_ANONYMOUS | sys::MAP_PRIVATE | sys::MAP_GROWSDOWN);
        let shared = region(sys::PROT_READ, REGION_SHARED, RegionKind::Anon, 1);
        assert_eq!(map_flags(&shared), sys::MAP_ANONYMOUS | sys::MAP_SHARED);
        let guard = region(sys::PROT_NONE, 0, RegionKind::Anon, 0);
        assert_eq!(map_flags(&guard), sys::MAP_ANONYMOUS | sys::MAP_PRIVATE | sys::MAP_NORESERVE);
        let workspace = region(sys::PROT_READ | sys::PROT_WRITE, 0, RegionKind::Workspace, 0);
        assert_ne!(map_flags(&workspace) & sys::MAP_NORESERVE, 0, "the capture's workspace reserves no swap");
    }
}
