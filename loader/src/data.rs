//! Reading the image's data straight into place, and checking it.
//!
//! Most of a large restart is the kernel's: every page read into is a fresh
//! anonymous page that the kernel zeroes before the copy. The work is split
//! over two threads (the machine has more than one core, usually), which take
//! extents (at most 4 MiB each) from a shared counter until none is left.
//! Each extent's checksum is verified right after it is read, while the data
//! is still in cache. The first failure stops both threads and is reported;
//! the program never runs on unverified data.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};

use ckpt_image::{checksum, Meta};
use ckpt_sys::{self as sys, Errno};

use crate::clone;
use crate::fail::Fail;
use crate::image::Image;

/// Below this much data one thread is enough.
const PARALLEL_BYTES: u64 = 32 << 20;

/// The job both threads work on (set before the helper starts).
static META: core::sync::atomic::AtomicPtr<Meta<'static>> = core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());
static FD: AtomicU32 = AtomicU32::new(0);
/// Next extent to take.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// First failed extent (u64::MAX: none) and why: see `Why`.
static FAILED: AtomicU64 = AtomicU64::new(u64::MAX);
static WHY: AtomicU32 = AtomicU32::new(0);
/// 1 once the helper thread is done.
static DONE: AtomicU32 = AtomicU32::new(0);

const WHY_SHORT: u32 = 1;
const WHY_CHECKSUM: u32 = 2;
const WHY_ERRNO: u32 = 1000;

#[repr(C, align(16))]
struct Stack([u8; 64 << 10]);
static mut HELPER_STACK: Stack = Stack([0; 64 << 10]);

/// Reads and verifies every extent.
///
/// # Safety
/// Every extent must lie in memory mapped writable for it.
pub unsafe fn read_all(img: &Image) -> Result<(), Fail> {
    META.store(img.meta as *const Meta<'static> as *mut Meta<'static>, SeqCst);
    FD.store(img.fd as u32, SeqCst);
    let mut helper = false;
    if img.meta.header.data_len >= PARALLEL_BYTES {
        let stack_end = core::ptr::addr_of_mut!(HELPER_STACK) as u64 + core::mem::size_of::<Stack>() as u64;
        // SAFETY: the helper's stack is its own static; it ends with exit.
        helper = unsafe { clone::spawn(clone::THREAD, stack_end, 0, helper_main, 0) }.is_ok();
    }
    work(img.meta, img.fd);
    if helper {
        while DONE.load(SeqCst) == 0 {
            let _ = sys::futex_wait(&DONE, 0, 0);
        }
    }
    let failed = FAILED.load(SeqCst);
    if failed == u64::MAX {
        return Ok(());
    }
    let x = img.meta.extent(failed as usize);
    let (start, end) = img.meta.region_at(x.addr).map_or((x.addr, x.addr + x.len), |r| (r.start, r.end));
    Err(match WHY.load(SeqCst) {
        WHY_SHORT => Fail::Data(start, end, "is missing: the image is truncated"),
        WHY_CHECKSUM => Fail::Data(start, end, "is corrupted (checksum mismatch)"),
        e => Fail::Sys("reading the image", Errno::new((e - WHY_ERRNO) as i32)),
    })
}

unsafe extern "C" fn helper_main(_: u64) -> ! {
    // SAFETY: set before the helper was started, alive until restore ends.
    let meta = unsafe { &*META.load(SeqCst) };
    work(meta, FD.load(SeqCst) as i32);
    DONE.store(1, SeqCst);
    sys::futex_wake(&DONE, 1);
    sys::exit_thread(0)
}

/// Takes extents until none is left or one failed.
fn work(meta: &Meta, fd: i32) {
    let n = meta.header.n_extents as usize;
    loop {
        let i = NEXT.fetch_add(1, SeqCst);
        if i >= n || FAILED.load(SeqCst) != u64::MAX {
            return;
        }
        let x = meta.extent(i);
        // SAFETY: the caller of read_all mapped the extent writable.
        let why = match unsafe { read_into(fd, x.addr, x.len, x.file_pos) } {
            Err(None) => WHY_SHORT,
            Err(Some(e)) => WHY_ERRNO + e.into_raw() as u32,
            Ok(()) => {
                // SAFETY: the bytes were just written by the kernel, in our mapping.
                let data = unsafe { core::slice::from_raw_parts(x.addr as *const u8, x.len as usize) };
                if checksum(data) == x.checksum {
                    continue;
                }
                WHY_CHECKSUM
            }
        };
        if FAILED.compare_exchange(u64::MAX, i as u64, SeqCst, SeqCst).is_ok() {
            WHY.store(why, SeqCst);
        }
        return;
    }
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
