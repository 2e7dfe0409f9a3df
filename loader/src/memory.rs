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
//! they were never touched.

use ckpt_image::{Region, RegionKind, LOADER_BASE, LOADER_END, REGION_GROWSDOWN, REGION_SHARED, USER_END};
use ckpt_sys as sys;

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

/// Maps every region of the image, fills it from the file, and gives it
/// its final protection.
///
/// # Safety
/// The address space outside the loader's range must be empty but for the
/// placed vDSO.
pub unsafe fn restore(img: &Image) -> Result<(), Fail> {
    let regions = || img.meta.regions().filter(|r| !r.kind().is_some_and(|k| k.is_vdso()));
    for r in regions() {
        // SAFETY: as the function's contract.
        unsafe { map_region(&r)? };
    }
    // SAFETY: every stored extent lies in a region just mapped writable.
    unsafe { crate::data::read_all(img)? };
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
fn map_prot(r: &Region) -> i32 {
    if r.n_extents != 0 {
        r.prot as i32 | sys::PROT_READ | sys::PROT_WRITE
    } else {
        r.prot as i32
    }
}

unsafe fn map_region(r: &Region) -> Result<(), Fail> {
    let stored = r.n_extents != 0;
    let mut flags = sys::MAP_ANONYMOUS | sys::MAP_FIXED_NOREPLACE;
    flags |= if r.flags & REGION_SHARED != 0 { sys::MAP_SHARED } else { sys::MAP_PRIVATE };
    if r.flags & REGION_GROWSDOWN != 0 {
        flags |= sys::MAP_GROWSDOWN;
    }
    if r.kind() == Some(RegionKind::Workspace) || (!stored && r.prot == 0) {
        flags |= sys::MAP_NORESERVE;
    }
    // SAFETY: NOREPLACE: nothing existing is replaced; the range is
    // validated to be in user space and outside the loader's range.
    let at = unsafe { sys::mmap(r.start, r.len(), map_prot(r), flags, -1, 0) }.map_err(fail::sys("cannot map a region"))?;
    if at != r.start {
        return Err(Fail::Msg("the kernel placed a region elsewhere than asked"));
    }
    if stored && r.flags & REGION_SHARED == 0 && r.len() >= HUGE_PAGE {
        // Large private memory is read into transparent huge pages where the
        // system allows it: 512 times fewer page faults on the way in.
        // SAFETY: advice only; the region is empty and ours.
        let _ = unsafe { sys::madvise(r.start, r.len(), sys::MADV_HUGEPAGE) };
    }
    Ok(())
}
