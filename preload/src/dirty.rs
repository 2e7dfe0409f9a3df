//! Which pages the program wrote since the last image (`--incremental`),
//! from the kernel's write tracking (`ckpt_sys::wp`: a userfaultfd in
//! asynchronous write-protect mode and `PAGEMAP_SCAN`), so that a delta
//! neither reads nor hashes the memory that did not change.
//!
//! - After an image is committed, [`arm`] registers the program's private,
//!   writable anonymous regions (heap, stacks, `mmap` memory) and
//!   write-protects them: the *tracked ranges*. Other mappings (file,
//!   shared: another process may write them; a region another userfaultfd
//!   holds) are not tracked: delta.rs compares their bytes instead.
//! - At the next checkpoint, while the threads are stopped, [`scan`]
//!   collects the runs of pages written (or mapped to the zero page: a page
//!   dropped with `MADV_DONTNEED` and read again) in each tracked range and
//!   write-protects them again in the same walk. A range whose scan fails
//!   (it was unmapped, or something else mapped there: no longer registered)
//!   is not tracked this time. The result says, for an extent, written or
//!   not, or unknown (compare the bytes).
//! - The result is only used against the image [`arm`] was called for (its
//!   identity is kept): after a failed checkpoint, a restart, or a parent
//!   that is not ckpt's last image, every extent is compared instead.
//!
//! The program sees one more descriptor (`anon_inode:[userfaultfd]`, placed
//! at 1000 or above, close-on-exec, left out of the image) and, in
//! `/proc/self/smaps`, the `uw` flag on tracked mappings. A program that
//! holds a userfaultfd of its own is not tracked at all (said once).

use core::cell::UnsafeCell;

use ckpt_image::{Region, RegionKind, PROT_WRITE, REGION_SHARED};
use ckpt_sys::wp::{self, PageRegion, PAGE_IS_PFNZERO, PAGE_IS_WRITTEN};
use ckpt_sys::{self as sys, Errno};

use crate::workspace::Range;

/// What a page counts as changed by.
const CHANGED: u64 = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO;
/// Where the userfaultfd is placed, out of the way of small numbers.
const UFFD_MIN_FD: i32 = 1000;

struct State {
    /// The userfaultfd (-1: none yet), and what it is, to notice it was
    /// closed or replaced (after a restart, the number is nothing of ours).
    uffd: i32,
    dev: u64,
    ino: u64,
    /// Tracking cannot work here (no kernel support, seccomp, the program's
    /// own userfaultfd): not tried again.
    off: bool,
    /// The image the tracked ranges were protected for (0: none).
    image_id: u64,
    n_tracked: usize,
}

struct Global(UnsafeCell<State>);
// SAFETY: used by the checkpoint's coordinator only, one checkpoint at a time.
unsafe impl Sync for Global {}
static STATE: Global =
    Global(UnsafeCell::new(State { uffd: -1, dev: 0, ino: 0, off: false, image_id: 0, n_tracked: 0 }));

/// Runs `f` on the tracker's state, lent for the call only.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    // SAFETY: see Global: one user at a time (the checkpoint's
    // coordinator), and the reference does not outlive the call.
    f(unsafe { &mut *STATE.0.get() })
}

/// Whether `fd` is the tracker's own descriptor (left out of the image):
/// the number, and still the file (the program may have put one of its own
/// there).
pub fn is_own_fd(fd: i32) -> bool {
    with_state(|s| fd >= 0 && s.uffd == fd && still_ours(s))
}

/// Whether the descriptor is still the userfaultfd we opened.
fn still_ours(s: &State) -> bool {
    s.uffd >= 0 && sys::fstat(s.uffd).is_ok_and(|st| st.dev == s.dev && st.ino == s.ino)
}

/// What the scan at this checkpoint found.
pub struct Scan<'a> {
    /// The tracked ranges; `ok[i]`: range i scanned, its runs are in `runs`.
    tracked: &'a [Range],
    runs: &'a [PageRegion],
    /// Whether the scan may be used against the parent at all.
    valid: bool,
}

impl Scan<'_> {
    /// No tracking: every extent is compared.
    pub fn none() -> Scan<'static> {
        Scan { tracked: &[], runs: &[], valid: false }
    }

    /// Whether a page of `[addr, addr+len)` changed since the parent was
    /// taken: `None` when not known (the range is not tracked).
    pub fn written(&self, addr: u64, len: u64) -> Option<bool> {
        if !self.valid {
            return None;
        }
        let end = addr + len;
        let i = self.tracked.partition_point(|r| r.end <= addr);
        self.tracked.get(i).filter(|r| r.ok && r.start <= addr && end <= r.end)?;
        // The runs are sorted: the first run ending after addr decides.
        let j = self.runs.partition_point(|p| p.end <= addr);
        Some(self.runs.get(j).is_some_and(|p| p.start < end))
    }
}

/// At the stop: the pages written in every tracked range since the last
/// [`arm`], each range write-protected again. `parent_id`: the image the
/// delta is taken after (0: none). `runs` holds the answer.
pub fn scan<'a>(tracked: &'a mut [Range], runs: &'a mut [PageRegion], parent_id: u64) -> Scan<'a> {
    with_state(|s| {
        if !still_ours(s) {
            s.uffd = -1;
            s.image_id = 0;
            s.n_tracked = 0;
            return Scan::none();
        }
        let Ok(pagemap) = sys::open(c"/proc/self/pagemap", sys::O_RDONLY) else {
            s.image_id = 0;
            return Scan::none();
        };
        let tracked = &mut tracked[..s.n_tracked];
        let mut n = 0;
        let mut full = false;
        let mut spare = [PageRegion::default(); 64];
        for r in tracked.iter_mut() {
            let mut at = r.start;
            r.ok = true;
            while at < r.end {
                // Once the table is full, the walk goes on (to protect the
                // pages again) into a scratch table, and nothing is known.
                let out = if full { &mut spare[..] } else { &mut runs[n..] };
                match wp::scan(&pagemap, at, r.end, CHANGED, true, out) {
                    Ok((got, walk_end)) => {
                        if !full {
                            n += got;
                        }
                        if walk_end < r.end && !full && n == runs.len() {
                            full = true;
                        }
                        if walk_end <= at {
                            r.ok = false;
                            break;
                        }
                        at = walk_end;
                    }
                    Err(_) => {
                        r.ok = false; // unmapped, or another mapping there
                        break;
                    }
                }
            }
        }
        drop(pagemap);
        let valid = !full && parent_id != 0 && s.image_id == parent_id;
        s.image_id = 0; // until the next arm
        Scan { tracked, runs: &runs[..n], valid }
    })
}

/// Which regions are tracked: private, writable, anonymous memory.
fn trackable(r: &Region) -> bool {
    let anon = matches!(r.kind(), Some(RegionKind::Anon | RegionKind::Heap | RegionKind::Stack));
    anon && r.flags & REGION_SHARED == 0 && r.prot & PROT_WRITE != 0
}

/// After the image `image_id` is committed (threads still stopped): the
/// tracked ranges become the trackable regions, registered and
/// write-protected (those the scan covered already are); `next` is scratch
/// of the same size. A program with a userfaultfd of its own
/// (`program_has_uffd`) is never tracked: its registrations would collide
/// with ckpt's (EBUSY). Returns a reason when tracking was just found
/// impossible, for one line on stderr.
pub fn arm(
    regions: &[Region],
    tracked: &mut [Range],
    next: &mut [Range],
    image_id: u64,
    program_has_uffd: bool,
) -> Option<&'static str> {
    with_state(|s| {
        if s.off {
            return None;
        }
        if program_has_uffd {
            s.off = true;
            return Some("the program uses userfaultfd itself");
        }
        if !still_ours(s) {
            match open() {
                Ok(fd) => s.uffd = fd,
                Err(_) => {
                    s.off = true;
                    return Some("this kernel gives no write tracking (userfaultfd write-protect, PAGEMAP_SCAN)");
                }
            }
            let st = sys::fstat(s.uffd).unwrap_or_default();
            (s.dev, s.ino, s.n_tracked) = (st.dev, st.ino, 0);
        }
        let Ok(pagemap) = sys::open(c"/proc/self/pagemap", sys::O_RDONLY) else { return None };
        // The old list (sorted) says what the scan just protected.
        let old = s.n_tracked;
        let mut old_i = 0;
        let mut n = 0;
        let mut spare = [PageRegion::default(); 64];
        for r in regions.iter().filter(|r| trackable(r)) {
            while old_i < old && tracked[old_i].end <= r.start {
                old_i += 1;
            }
            let covered = old_i < old && {
                let t = tracked[old_i];
                t.ok && t.start <= r.start && r.end <= t.end
            };
            let protected = covered
                || (wp::register(s.uffd, r.start, r.len()).is_ok()
                    && protect(pagemap.borrow(), r.start, r.end, &mut spare));
            if protected && n < next.len() {
                next[n] = Range { start: r.start, end: r.end, ok: true };
                n += 1;
            }
        }
        drop(pagemap);
        tracked[..n].copy_from_slice(&next[..n]);
        s.n_tracked = n;
        s.image_id = image_id;
        None
    })
}

/// Write-protects every page of `[start, end)` (a scan whose answer is
/// dropped).
fn protect(pagemap: sys::BorrowedFd, start: u64, end: u64, spare: &mut [PageRegion]) -> bool {
    let mut at = start;
    while at < end {
        match wp::scan(pagemap, at, end, CHANGED, true, spare) {
            Ok((_, walk_end)) if walk_end > at => at = walk_end,
            _ => return false,
        }
    }
    true
}

/// The userfaultfd, at a number of 1000 or more: kept open for the
/// program's life (the tracker's state holds its number).
fn open() -> Result<i32, Errno> {
    let fd = wp::open_async_wp()?;
    Ok(sys::dup_from(&fd, UFFD_MIN_FD).unwrap_or(fd).into_raw())
}
