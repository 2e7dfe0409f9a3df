//! Reading the image's data straight into place, and checking it.
//!
//! Most of a large restart is the kernel's: every page read into is a fresh
//! anonymous page that the kernel zeroes before the copy. The extents (at
//! most 4 MiB each) are shared between this thread and a helper thread
//! (`ckpt_sys::thread::split`). Each extent's checksum is verified right
//! after it is read, while the data is still in cache. A compressed extent
//! is read into the thread's own buffer and decoded from there straight
//! into place (the decoder writes the extent's bytes and nothing else,
//! whatever the stored bytes say), then verified the same way. The first
//! failure stops both threads and is reported; the program never runs on
//! unverified data.

use ckpt_image::codec::{self, DecodeError};
use ckpt_image::{checksum, Extent, Meta, MAX_EXTENT};
use ckpt_sys::progress::Progress;
use ckpt_sys::{self as sys, thread, Errno, Short};

use crate::fail::Fail;
use crate::image::Image;

/// Below this much data one thread is enough.
const PARALLEL_BYTES: u64 = 32 << 20;

const WHY_SHORT: u32 = 1;
const WHY_CHECKSUM: u32 = 2;
const WHY_UNDECODABLE: u32 = 3;
const WHY_ERRNO: u32 = 1000;

#[repr(C, align(16))]
struct Stack([u8; 64 << 10]);
static mut HELPER_STACK: Stack = Stack([0; 64 << 10]);

/// The stored bytes of one compressed extent, one buffer per thread.
struct Stored([u8; MAX_EXTENT as usize]);
static mut STORED: [Stored; 2] = [const { Stored([0; MAX_EXTENT as usize]) }; 2];

/// Reads the stored bytes of compressed extent `x` (at `base + file_pos` in
/// `fd`) into thread `worker`'s buffer and decodes them into `dst` (`x.len`
/// bytes).
///
/// # Safety
/// Worker `worker`'s buffer must be the caller's alone (one call at a time
/// per worker).
unsafe fn decode(fd: i32, base: u64, x: &Extent, worker: usize, dst: &mut [u8]) -> Result<(), u32> {
    // SAFETY: the worker's own buffer (caller); stored_len < len <= MAX_EXTENT (Meta::parse).
    let bufs = unsafe { &mut *core::ptr::addr_of_mut!(STORED) };
    let buf = &mut bufs[worker].0[..x.stored_len as usize];
    // SAFETY: the buffer is ours, writable, lent for the call.
    match unsafe { sys::pread_all(fd, buf.as_mut_ptr() as u64, x.stored_len, base + x.file_pos) } {
        Err(Short::End) => Err(WHY_SHORT),
        Err(Short::Errno(e)) => Err(WHY_ERRNO + e.into_raw() as u32),
        Ok(()) => codec::decode(x, buf, dst).map_err(|e| match e {
            DecodeError::Corrupt | DecodeError::Unknown => WHY_UNDECODABLE,
        }),
    }
}

/// The compressed extent that [`with_decoded`] decoded last (index + 1;
/// 0: none), and its bytes.
struct Decoded(usize, Stored);
static mut DECODED: Decoded = Decoded(0, Stored([0; MAX_EXTENT as usize]));

/// Calls `f` with the bytes of compressed extent `i`, decoded (and kept for
/// the next call: the threads' frames lie in a few extents). For the checks
/// made before the point of no return, while the loader has one thread.
pub fn with_decoded<R>(img: &Image, i: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R, Fail> {
    let x = img.meta.extent(i);
    // SAFETY: one thread before the point of no return, and no reference
    // to DECODED outlives this call.
    let d = unsafe { &mut *core::ptr::addr_of_mut!(DECODED) };
    let bytes = &mut d.1 .0[..x.len as usize];
    if d.0 != i + 1 {
        d.0 = 0;
        let base = if x.source == 0 { img.base } else { 0 };
        // SAFETY: one thread: worker 0's buffer is free.
        unsafe { decode(img.files[x.source as usize], base, &x, 0, bytes) }.map_err(|why| failure(img, i, why))?;
        d.0 = i + 1;
    }
    Ok(f(bytes))
}

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

    fn run(&self, worker: usize, i: usize) -> Result<(), u32> {
        let x = self.meta.extent(i);
        // Fault the extent's pages in with one call, not one fault each
        // during the copy (much cheaper, in a VM above all). Transparent huge
        // pages would be fewer faults still, but their allocation stalls on
        // compaction for hundreds of ms: measured slower and erratic.
        // SAFETY: advice on our own fresh mapping.
        let _ = unsafe { sys::madvise(x.addr, x.len, sys::MADV_POPULATE_WRITE) };
        // The bytes are in the file of the extent's source; the image's own
        // at `base` in its file (a job image).
        let fd = self.files[x.source as usize];
        let base = if x.source == 0 { self.base } else { 0 };
        // SAFETY: read_all's caller mapped every extent writable, for us
        // alone (the items are disjoint).
        let data = unsafe { core::slice::from_raw_parts_mut(x.addr as *mut u8, x.len as usize) };
        if x.compressed() {
            // SAFETY: split gives each worker its own index.
            unsafe { decode(fd, base, &x, worker, data) }?;
        } else {
            // SAFETY: as above; the kernel writes the extent's bytes.
            match unsafe { sys::pread_all(fd, x.addr, x.len, base + x.file_pos) } {
                Err(Short::End) => return Err(WHY_SHORT),
                Err(Short::Errno(e)) => return Err(WHY_ERRNO + e.into_raw() as u32),
                Ok(()) => {}
            }
        }
        if checksum(data) == x.checksum {
            self.progress.add(x.len);
            Ok(())
        } else {
            Err(WHY_CHECKSUM)
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
    Err(failure(img, failed, why))
}

/// What went wrong with extent `i`.
fn failure(img: &Image, i: usize, why: u32) -> Fail {
    let x = img.meta.extent(i);
    let (start, end) = img.meta.region_at(x.addr).map_or((x.addr, x.addr + x.len), |r| (r.start, r.end));
    match why {
        WHY_SHORT => Fail::Data(start, end, "is missing: the image is truncated"),
        WHY_CHECKSUM => Fail::Data(start, end, "is corrupted (checksum mismatch)"),
        WHY_UNDECODABLE => Fail::Data(start, end, "is corrupted (its compressed data cannot be decoded)"),
        e => Fail::Sys("reading the image", Errno::new((e - WHY_ERRNO) as i32)),
    }
}
