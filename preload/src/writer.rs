//! The data writer: an image's bytes into its file, once the tables are
//! complete.
//!
//! [`write`] creates the temporary file beside the image and puts it in
//! place once complete (the steps are in output.rs); [`write_to`] fills it:
//! the stored pages (hashed just before each is written, with `--compress`
//! compressed, by two threads above [`PARALLEL_BYTES`]: [`WriteData`],
//! [`Order`]), then the metadata, then the sealed header. Unreadable
//! regions with stored pages are readable for the time of the copy
//! ([`readable_for_copy`]).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use ckpt_image::encode::Encoder;
use ckpt_image::{bytes_of, checksum, codec, Extent, Region, EXTENT_LZ4, EXTENT_RAW, REGION_SHARED};
use ckpt_sys::progress::Progress;
use ckpt_sys::{self as sys, thread, Errno};

use crate::capture::{failed, refuse, Failure};
use crate::config;
use crate::output::Output;
use crate::workspace::{Bounce, Lz4Table, Packed};

/// What the data writer uses beside the encoder's tables.
pub(crate) struct Writer<'a> {
    pub(crate) regions: &'a [Region],
    pub(crate) sums: &'a [AtomicU64],
    pub(crate) bounce: &'a [Bounce],
    pub(crate) helper_stack: &'a mut [u8],
    pub(crate) compress: Option<Compress<'a>>,
}

/// `--compress`: where the writer threads compress (see Tables).
#[derive(Clone, Copy)]
pub(crate) struct Compress<'a> {
    pub(crate) stored: &'a [AtomicU64],
    pub(crate) packed: &'a [Packed],
    pub(crate) lz4: &'a [Lz4Table],
}

/// Writes the image to a temporary file, then moves it into place
/// (the steps are in output.rs).
pub(crate) fn write(out: &mut Output, fill: impl FnOnce(i32) -> Result<(), Failure>) -> Result<(), Failure> {
    let temp = out.create()?;
    let fd = temp.fd.as_raw();
    // A write past the program's RLIMIT_FSIZE raises SIGXFSZ (blocked
    // in here) as well as failing with EFBIG: that signal is ours, and
    // must not kill the program once the handler returns.
    const SIGXFSZ: u64 = 1 << (25 - 1);
    let xfsz_pending = sys::rt_sigpending() & SIGXFSZ != 0;
    let result = fill(fd);
    let result = result.and_then(|()| sys::fsync(fd).map_err(failed("writing the image to disk")));
    if result.is_err() && !xfsz_pending {
        let _ = sys::rt_sigtimedwait_now(SIGXFSZ);
    }
    match result {
        // Only now, with the new image complete on disk, are the older
        // ones moved along (--keep) and the new one put in place.
        Ok(()) => out.commit(temp),
        Err(f) => {
            out.abandon(temp);
            Err(f)
        }
    }
}

/// The data (hashed as written, by two threads for much of it), then the
/// metadata, then the sealed header: at `base` in the file (a member of a
/// job image), or as the whole file (`base` 0: it is sized to the image).
pub(crate) fn write_to(fd: i32, enc: &mut Encoder, w: Writer, t0: u64, base: u64) -> Result<(), Failure> {
    // Stored pages of unreadable regions are made readable for the copy.
    readable_for_copy(w.regions, true)?;
    let data_len = enc.header().data_len;
    let after_ms = if crate::cow::in_writer() { u64::MAX } else { config::get().progress_after_ms };
    let progress = Progress::new("ckpt: writing the image", data_len, t0, after_ms);
    if let Some(c) = w.compress {
        for t in c.lz4 {
            // SAFETY: the table is the coordinator's until split hands it to
            // its one worker; a const value, no allocation.
            unsafe { (*t.as_mut_ptr()).write(codec::table()) };
        }
    }
    let order = Order { next: AtomicU32::new(0), pos: AtomicU64::new(enc.header().data_offset) };
    let job = WriteData {
        fd,
        base,
        regions: w.regions,
        extents: enc.extents(),
        sums: w.sums,
        bounce: w.bounce,
        compress: w.compress,
        order,
        progress,
    };
    // SAFETY: the helper stack is the coordinator's alone (borrowed here);
    // the extents are disjoint, each item writes its own checksum and file
    // range, and each worker has its own bounce buffer.
    let written = unsafe { thread::split(&job, data_len >= PARALLEL_BYTES, w.helper_stack) };
    job.progress.end();
    let end = job.order.pos.load(Relaxed);
    readable_for_copy(w.regions, false)?;
    if let Err((_, code)) = written {
        return Err(match code {
            NO_PROGRESS => refuse("writing the image: no progress"),
            e => failed("writing the image")(Errno::new(e as i32)),
        });
    }
    for (i, sum) in w.sums[..enc.extents().len()].iter().enumerate() {
        if enc.extents()[i].source == 0 {
            enc.set_checksum(i, sum.load(Relaxed)); // split's end ordered the workers' stores
        }
    }
    if let Some(c) = w.compress {
        // Placed as the workers took their places (Order): in table order.
        enc.set_stored(|i| {
            let v = c.stored[i].load(Relaxed);
            (v & 0xffff_ffff, (v >> 32) as u32)
        });
        debug_assert_eq!(enc.header().file_len, end);
    }
    enc.header_mut().capture_ns = sys::clock_ns(sys::CLOCK_MONOTONIC) - t0;
    let mut pos = base + enc.header().meta_offset;
    for part in enc.meta_parts() {
        write_at(fd, part.as_ptr() as u64, part.len() as u64, pos)?;
        pos += part.len() as u64;
    }
    let h = *enc.seal();
    let hb = bytes_of(&h);
    write_at(fd, hb.as_ptr() as u64, hb.len() as u64, base)?;
    if base != 0 {
        return Ok(()); // the job's root sizes the file
    }
    sys::ftruncate(fd, h.file_len).map_err(failed("sizing the image file"))
}

/// Adds read access to the unreadable regions that have stored pages
/// (`on`), or gives them back their own protection.
fn readable_for_copy(regions: &[Region], on: bool) -> Result<(), Failure> {
    for r in regions {
        if r.n_extents != 0 && r.prot & 1 == 0 {
            let prot = if on { r.prot as i32 | sys::PROT_READ } else { r.prot as i32 };
            // SAFETY: read access only, for the copy; then the program's own.
            unsafe { sys::mprotect(r.start, r.len(), prot) }.map_err(failed("making a region readable"))?;
        }
    }
    Ok(())
}

/// Data larger than this is hashed and written by two threads.
const PARALLEL_BYTES: u64 = 32 << 20;
/// Error code of a write that made no progress.
const NO_PROGRESS: u32 = u32::MAX;

/// Hashing (compressing) and writing the extents, one item each
/// (`ckpt_sys::thread::split`): the tables are read only; item `i` stores
/// its checksum in `sums[i]` (and how it was stored in `stored[i]`),
/// worker `w` uses `bounce[w]`, `packed[w]` and `lz4[w]` alone.
struct WriteData<'a> {
    fd: i32,
    /// Where the image starts in the file.
    base: u64,
    regions: &'a [Region],
    extents: &'a [Extent],
    sums: &'a [AtomicU64],
    bounce: &'a [Bounce],
    compress: Option<Compress<'a>>,
    order: Order,
    progress: Progress,
}

/// Compressed extents have sizes known only once compressed, and their
/// stored bytes follow each other in table order: each worker compresses
/// its extent, then waits until every extent before it has taken its
/// place, takes the next one and writes there. Items are handed out in
/// increasing order and every item started takes its place (nothing fails
/// before), so the wait always ends; the other worker compresses meanwhile.
struct Order {
    /// The extent whose turn it is to take a place.
    next: AtomicU32,
    /// Where the next place starts.
    pos: AtomicU64,
}

impl Order {
    /// Waits for extent `i`'s turn and takes its place in the file (as
    /// `Encoder::set_stored` will lay it out: `Extent::place_at`).
    fn take(&self, i: usize, x: &Extent) -> u64 {
        self.wait_turn(i);
        let pos = x.place_at(self.pos.load(Relaxed));
        self.pos.store(pos + x.stored_len, Relaxed);
        self.next.store(i as u32 + 1, Release);
        sys::futex_wake(&self.next, u32::MAX);
        pos
    }

    /// Waits for extent `i`'s turn and passes it on: an extent stored in
    /// another image takes no place in this one.
    fn pass(&self, i: usize) {
        self.wait_turn(i);
        self.next.store(i as u32 + 1, Release);
        sys::futex_wake(&self.next, u32::MAX);
    }

    fn wait_turn(&self, i: usize) {
        loop {
            let next = self.next.load(Acquire);
            if next as usize == i {
                return;
            }
            let _ = sys::futex_wait(&self.next, next, 0);
        }
    }
}

impl thread::Job for WriteData<'_> {
    fn len(&self) -> usize {
        self.extents.len()
    }

    /// Hashes and writes extent `i`. Shared memory (which another process
    /// may change meanwhile) goes through the worker's bounce buffer, so
    /// that the checksum is that of the bytes written.
    fn run(&self, worker: usize, i: usize) -> Result<(), u32> {
        let x = self.extents[i];
        if x.source != 0 {
            // A delta's unchanged extent: its parent holds it, as it is.
            if let Some(c) = self.compress {
                c.stored[i].store(x.stored_len | (x.encoding as u64) << 32, Relaxed);
                self.order.pass(i);
            }
            return Ok(());
        }
        let r = self.regions.partition_point(|r| r.first_extent as usize + r.n_extents as usize <= i);
        let shared = self.regions.get(r).is_some_and(|r| r.flags & REGION_SHARED != 0);
        let src = if shared {
            let bounce = self.bounce[worker].as_mut_ptr() as *mut u8;
            // SAFETY: the extent is readable memory of at most MAX_EXTENT
            // bytes, the size of the worker's own bounce buffer, which no
            // one else uses (Bounce).
            unsafe { core::ptr::copy_nonoverlapping(x.addr as *const u8, bounce, x.len as usize) };
            bounce as u64
        } else {
            x.addr
        };
        // SAFETY: [src, src+len) is readable (checked when the extent was
        // chosen) and does not change during the capture.
        let data = unsafe { core::slice::from_raw_parts(src as *const u8, x.len as usize) };
        let sum = checksum(data);
        let (from, len, pos) = match self.compress {
            None => (src, x.len, x.file_pos),
            Some(c) => {
                // SAFETY: the worker's own buffer and table (Worker), the
                // table set up before the split.
                let (packed, table) =
                    unsafe { (&mut *c.packed[worker].as_mut_ptr(), (*c.lz4[worker].as_mut_ptr()).assume_init_mut()) };
                let (from, len, encoding) = match codec::compress(data, packed, table) {
                    Some(n) => (packed.as_ptr() as u64, n as u64, EXTENT_LZ4),
                    None => (src, x.len, EXTENT_RAW),
                };
                c.stored[i].store(len | (encoding as u64) << 32, Relaxed);
                (from, len, self.order.take(i, &Extent { stored_len: len, encoding, ..x }))
            }
        };
        write_at(self.fd, from, len, self.base + pos)
            .map_err(|f| f.errno.map_or(NO_PROGRESS, |e| e.into_raw() as u32))?;
        self.sums[i].store(sum, Relaxed);
        self.progress.add(x.len);
        Ok(())
    }
}

fn write_at(fd: i32, addr: u64, len: u64, pos: u64) -> Result<(), Failure> {
    // SAFETY: the kernel reads [addr, addr+len) of our own memory.
    unsafe { sys::pwrite_all(fd, addr, len, pos) }.map_err(|e| match e {
        sys::Short::End => refuse("writing the image: no progress"),
        sys::Short::Errno(e) => failed("writing the image")(e),
    })
}
