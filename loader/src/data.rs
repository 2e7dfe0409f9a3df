//! Reading the image's data straight into place, and checking it.
//!
//! Most of a large restart is the kernel's: every page read into is a fresh
//! anonymous page that the kernel zeroes before the copy. The extents (at
//! most 4 MiB each) are shared between this thread and a helper thread
//! (`ckpt_sys::thread::split`). Each extent's checksum is verified right
//! after it is read, while the data is still in cache. The first failure
//! stops both threads and is reported; the program never runs on
//! unverified data.

use ckpt_image::{checksum, Meta};
use ckpt_sys::progress::Progress;
use ckpt_sys::{self as sys, thread, Errno, Short};

use crate::fail::Fail;
use crate::image::Image;

/// Below this much data one thread is enough.
const PARALLEL_BYTES: u64 = 32 << 20;

const WHY_SHORT: u32 = 1;
const WHY_CHECKSUM: u32 = 2;
const WHY_ERRNO: u32 = 1000;

#[repr(C, align(16))]
struct Stack([u8; 64 << 10]);
static mut HELPER_STACK: Stack = Stack([0; 64 << 10]);

struct Load<'a> {
    meta: &'a Meta<'a>,
    /// The file of each extent source (`Image::files`).
    files: &'a [i32],
    /// Where the process image starts in its file (`files[0]`).
    base: u64,
    progress: Progress,
}

impl thread::Job for Load<'_> {
    fn len(&self) -> usize {
        self.meta.header.n_extents as usize
    }

    fn run(&self, _worker: usize, i: usize) -> Result<(), u32> {
        let x = self.meta.extent(i);
        // Fault the extent's pages in with one call, not one fault each
        // during the copy (much cheaper, in a VM above all). Transparent huge
        // pages would be fewer faults still, but their allocation stalls on
        // compaction for hundreds of ms: measured slower and erratic.
        // SAFETY: advice on our own fresh mapping.
        let _ = unsafe { sys::madvise(x.addr, x.len, sys::MADV_POPULATE_WRITE) };
        // The image's own data is at `base` in its file (a job image).
        let base = if x.source == 0 { self.base } else { 0 };
        // SAFETY: read_all's caller mapped every extent writable.
        match unsafe { sys::pread_all(self.files[x.source as usize], x.addr, x.len, base + x.file_pos) } {
            Err(Short::End) => Err(WHY_SHORT),
            Err(Short::Errno(e)) => Err(WHY_ERRNO + e.into_raw() as u32),
            Ok(()) => {
                // SAFETY: the bytes were just written by the kernel, in our mapping.
                let data = unsafe { core::slice::from_raw_parts(x.addr as *const u8, x.len as usize) };
                if checksum(data) == x.checksum {
                    self.progress.add(x.len);
                    Ok(())
                } else {
                    Err(WHY_CHECKSUM)
                }
            }
        }
    }
}

/// Reads and verifies every extent; on a terminal, shows the progress
/// after `progress_after_ms`.
///
/// # Safety
/// Every extent must lie in memory mapped writable for it.
pub unsafe fn read_all(img: &Image, progress_after_ms: u64) -> Result<(), Fail> {
    let t0 = sys::clock_ns(sys::CLOCK_MONOTONIC);
    let total = (0..img.meta.header.n_extents as usize).map(|i| img.meta.extent(i).len).sum();
    let progress = Progress::new("restart: reading the image", total, t0, progress_after_ms);
    let job = Load { meta: img.meta, files: &img.files, base: img.base, progress };
    // SAFETY: the helper stack is used by nothing else (this runs once, on
    // the loader's one thread): this is its only reference.
    let stack = unsafe { &mut (*core::ptr::addr_of_mut!(HELPER_STACK)).0 };
    let parallel = total >= PARALLEL_BYTES;
    // SAFETY: that stack, lent for the call; the items touch disjoint
    // memory and file ranges, so they may run concurrently.
    let result = unsafe { thread::split(&job, parallel, stack) };
    job.progress.end();
    let Err((failed, why)) = result else {
        return Ok(());
    };
    let x = img.meta.extent(failed);
    let (start, end) = img.meta.region_at(x.addr).map_or((x.addr, x.addr + x.len), |r| (r.start, r.end));
    Err(match why {
        WHY_SHORT => Fail::Data(start, end, "is missing: the image is truncated"),
        WHY_CHECKSUM => Fail::Data(start, end, "is corrupted (checksum mismatch)"),
        e => Fail::Sys("reading the image", Errno::new((e - WHY_ERRNO) as i32)),
    })
}
