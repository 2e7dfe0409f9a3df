//! The kernel's write tracking without soft-dirty bits (Linux 6.7+): a
//! userfaultfd in asynchronous write-protect mode, and the `PAGEMAP_SCAN`
//! ioctl on `/proc/self/pagemap`, which reports the pages written since the
//! last scan and write-protects them again in the same walk.
//!
//! The userfaultfd is opened with `UFFD_USER_MODE_ONLY`, which needs no
//! privilege (even with `vm.unprivileged_userfaultfd` = 0). With
//! `UFFD_FEATURE_WP_ASYNC` a write to a protected page is resolved by the
//! kernel itself (the page is marked written, nobody is told), so the
//! program never notices; `UFFD_FEATURE_WP_UNPOPULATED` protects pages not
//! yet populated too, so a first touch counts as a write.

use syscalls::{syscall, Sysno};

use crate::{AsFd, Result};

const UFFD_USER_MODE_ONLY: u64 = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;
/// `_IOWR(0xaa, 0x3f, struct uffdio_api)` (24 bytes).
const UFFDIO_API: u64 = 0xc018_aa3f;
/// `_IOWR(0xaa, 0x00, struct uffdio_register)` (32 bytes).
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
/// `_IOWR('f', 16, struct pm_scan_arg)` (96 bytes).
const PAGEMAP_SCAN: u64 = 0xc060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1;
const PM_SCAN_CHECK_WPASYNC: u64 = 2;
/// Page categories of `PAGEMAP_SCAN`.
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// `struct page_region`: pages `[start, end)` in the categories asked for.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// A userfaultfd ready for asynchronous write protection (close-on-exec,
/// non-blocking: it never has anything to read).
pub fn open_async_wp() -> Result<crate::OwnedFd> {
    let flags = crate::O_CLOEXEC as u64 | crate::O_NONBLOCK as u64 | UFFD_USER_MODE_ONLY;
    // SAFETY: integer arguments only.
    let fd = crate::fd::created(unsafe { syscall!(Sysno::userfaultfd, flags) })?;
    let mut api = UffdioApi { api: UFFD_API, features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, ioctls: 0 };
    // SAFETY: the kernel reads and writes the local `api`, of the size the
    // command encodes.
    unsafe { syscall!(Sysno::ioctl, fd.as_raw(), UFFDIO_API, &mut api as *mut UffdioApi) }.map(|_| fd)
}

/// Registers `[start, start+len)` for write protection (every mapping in
/// it must allow it: private anonymous, shmem, hugetlb; already registered
/// with another userfaultfd is EBUSY).
pub fn register(uffd: impl AsFd, start: u64, len: u64) -> Result<()> {
    let mut r = UffdioRegister { start, len, mode: UFFDIO_REGISTER_MODE_WP, ioctls: 0 };
    // SAFETY: the kernel reads and writes the local `r`; registration
    // changes no memory contents.
    unsafe { syscall!(Sysno::ioctl, uffd.raw(), UFFDIO_REGISTER, &mut r as *mut UffdioRegister) }.map(drop)
}

/// One `PAGEMAP_SCAN` of `[start, end)` on the open `/proc/self/pagemap`:
/// fills `out` with the runs of pages in any of the `categories` and, with
/// `protect`, write-protects them again. Every mapping in the range must be
/// registered for asynchronous write protection (else EPERM). Returns the
/// runs found and where the walk stopped (`end`, unless `out` filled up).
pub fn scan(
    pagemap: impl AsFd,
    start: u64,
    end: u64,
    categories: u64,
    protect: bool,
    out: &mut [PageRegion],
) -> Result<(usize, u64)> {
    let mut arg = PmScanArg {
        size: core::mem::size_of::<PmScanArg>() as u64,
        flags: PM_SCAN_CHECK_WPASYNC | if protect { PM_SCAN_WP_MATCHING } else { 0 },
        start,
        end,
        walk_end: 0,
        vec: out.as_mut_ptr() as u64,
        vec_len: out.len() as u64,
        max_pages: 0,
        category_inverted: 0,
        category_mask: 0,
        category_anyof_mask: categories,
        return_mask: categories,
    };
    // SAFETY: the kernel reads `arg` and writes at most `vec_len` entries
    // into `out` and `walk_end` into `arg`, both ours for the call; it
    // write-protects pages of our own, which changes no contents.
    let n = unsafe { syscall!(Sysno::ioctl, pagemap.raw(), PAGEMAP_SCAN, &mut arg as *mut PmScanArg) }?;
    Ok((n, arg.walk_end))
}
