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
//! read straight into place and checked against their checksums, then it
//! gets its final protection. Pages without an extent stay zero, as they
//! were never touched.

use ckpt_image::{checksum, Region, RegionKind, LOADER_BASE, LOADER_END, REGION_GROWSDOWN, REGION_SHARED, USER_END};
use ckpt_sys::{self as sys, Errno};

use crate::fail::{self, Fail};
use crate::image::Image;

const HUGE_PAGE: u64 = 2 << 20;

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

/// Maps every region of the image and fills it from the file.
///
/// # Safety
/// The address space outside the loader's range must be empty but for the
/// placed vDSO.
pub unsafe fn restore(img: &Image) -> Result<(), Fail> {
    for r in img.meta.regions() {
        match r.kind() {
            Some(k) if k.is_vdso() => continue,
            _ => {}
        }
        // SAFETY: as the function's contract.
        unsafe { restore_region(img, &r)? };
    }
    Ok(())
}

unsafe fn restore_region(img: &Image, r: &Region) -> Result<(), Fail> {
    let stored = r.n_extents != 0;
    let mut flags = sys::MAP_ANONYMOUS | sys::MAP_FIXED_NOREPLACE;
    flags |= if r.flags & REGION_SHARED != 0 { sys::MAP_SHARED } else { sys::MAP_PRIVATE };
    if r.flags & REGION_GROWSDOWN != 0 {
        flags |= sys::MAP_GROWSDOWN;
    }
    if r.kind() == Some(RegionKind::Workspace) || (!stored && r.prot == 0) {
        flags |= sys::MAP_NORESERVE;
    }
    let prot = r.prot as i32;
    let map_prot = if stored { prot | sys::PROT_READ | sys::PROT_WRITE } else { prot };
    // SAFETY: NOREPLACE: nothing existing is replaced; the range is
    // validated to be in user space and outside the loader's range.
    let at = unsafe { sys::mmap(r.start, r.len(), map_prot, flags, -1, 0) }.map_err(fail::sys("cannot map a region"))?;
    if at != r.start {
        return Err(Fail::Msg("the kernel placed a region elsewhere than asked"));
    }
    if !stored {
        return Ok(());
    }
    if r.flags & REGION_SHARED == 0 && r.len() >= HUGE_PAGE {
        // Large private memory is read into transparent huge pages where the
        // system allows it: 512 times fewer page faults on the way in.
        // SAFETY: advice only; the region is empty and ours.
        let _ = unsafe { sys::madvise(r.start, r.len(), sys::MADV_HUGEPAGE) };
    }
    for x in img.meta.extents_of(r) {
        // SAFETY: [addr, addr+len) lies inside the region just mapped
        // writable (validated by Meta::parse).
        unsafe { read_into(img.fd, x.addr, x.len, x.file_pos) }.map_err(|e| match e {
            None => Fail::Data(r.start, r.end, "is missing: the image is truncated"),
            Some(e) => Fail::Sys("reading the image", e),
        })?;
        // SAFETY: the bytes were just written by the kernel, in our mapping.
        let data = unsafe { core::slice::from_raw_parts(x.addr as *const u8, x.len as usize) };
        if checksum(data) != x.checksum {
            return Err(Fail::Data(r.start, r.end, "is corrupted (checksum mismatch)"));
        }
    }
    if map_prot != prot {
        // SAFETY: the region is the target's; this is its own protection.
        unsafe { sys::mprotect(r.start, r.len(), prot) }.map_err(fail::sys("cannot protect a region"))?;
    }
    Ok(())
}

/// Reads `len` bytes at `pos` of the image straight into memory at `addr`.
/// `Err(None)`: the file ended first.
unsafe fn read_into(fd: i32, mut addr: u64, mut len: u64, mut pos: u64) -> Result<(), Option<Errno>> {
    while len > 0 {
        // SAFETY: the caller's contract: the range is ours and writable.
        match unsafe { sys::pread_raw(fd, addr, len as usize, pos) } {
            Ok(0) => return Err(None),
            Ok(n) => {
                addr += n as u64;
                pos += n as u64;
                len -= n as u64;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Some(e)),
        }
    }
    Ok(())
}
