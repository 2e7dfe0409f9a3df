//! Delta images (`ckpt --incremental`): the next image stores only the
//! extents whose bytes changed since the current one, which becomes its
//! parent (docs/FORMAT.md, "Delta images").
//!
//! 1. [`Base::open`]: the current image at the output path is the parent
//!    if it can be one: a regular file of the caller's, a valid image whose
//!    chain is shorter than `--max-chain` and whose parents are all still
//!    there. Otherwise the next image is a full one.
//! 2. [`Base::reuse`]: every extent of the new image with the same address
//!    and length as one of the parent's (the extents are cut at fixed
//!    addresses, so unchanged memory gives the same extents) and the same
//!    bytes — the checksum of the memory now equals the parent's checksum —
//!    becomes a reference to the parent's copy, in whichever file of the
//!    chain holds it. Where the kernel tracks the program's writes
//!    (dirty.rs), an extent it says was not written is reused unread;
//!    elsewhere the memory is hashed (by two threads) and compared. Only
//!    what changed is written.
//! 3. [`Base::link`]: the new image's header names its chain; the commit
//!    (output.rs) gives the parent its chain name before the delta replaces
//!    it at the image path.
//!
//! Raw system calls only, no allocation: this runs in the capture.

use core::ffi::CStr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ckpt_image::{checksum, Extent, Header, Meta, Parent, Region, StrRef, HEADER_SIZE, MAX_CHAIN, PROT_READ};
use ckpt_sys::{self as sys, thread, BorrowedFd, OwnedFd};

use crate::dirty::Scan;

/// With `--incremental`, extents are cut at multiples of this: a delta
/// stores whole extents, so this is the unit of what it writes (64 KiB: a
/// page changed rewrites 64 KiB; 4 GiB of memory is 65,536 extents, 3 MiB
/// of tables).
pub const BLOCK: u64 = 64 << 10;

/// A reuse mark's flag: the kernel's tracking says the extent was not
/// written since the parent, no need to compare its bytes.
const CLEAN: u64 = 1 << 63;

/// The image a delta is taken after, open, its tables validated (in the
/// workspace's `parent_meta`).
pub struct Base<'a> {
    pub fd: OwnedFd,
    pub meta: Meta<'a>,
}

impl<'a> Base<'a> {
    /// The current image at `path`, if the next image can be a delta on it
    /// (`max_chain`: most parents a delta may have), its tables read into
    /// `buf`; `dir` is the image's directory, where its chain's files are.
    pub fn open(path: &CStr, max_chain: u32, buf: &'a mut [u8], dir: &CStr) -> Option<Base<'a>> {
        let fd = sys::open(path, sys::O_RDONLY | sys::O_NOFOLLOW | sys::O_NONBLOCK).ok()?;
        Self::read(fd.borrow(), max_chain, buf, dir).map(|meta| Base { fd, meta })
    }

    fn read(fd: BorrowedFd, max_chain: u32, buf: &'a mut [u8], dir: &CStr) -> Option<Meta<'a>> {
        let st = sys::fstat(fd).ok()?;
        if st.mode & sys::S_IFMT != sys::S_IFREG || st.uid != sys::geteuid() {
            return None;
        }
        let mut head = [0u8; HEADER_SIZE];
        if sys::pread(fd, &mut head, 0).ok()? != HEADER_SIZE {
            return None;
        }
        let h = Header::parse(&head, st.size as u64).ok()?;
        if h.chain_depth >= max_chain || h.chain_depth as usize >= MAX_CHAIN || h.meta_len > buf.len() as u64 {
            return None;
        }
        let meta = &mut buf[..h.meta_len as usize];
        // SAFETY: the kernel writes into `meta`, ours and borrowed for the call.
        unsafe { sys::pread_all(fd, meta.as_mut_ptr() as u64, meta.len() as u64, h.meta_offset) }.ok()?;
        let m = Meta::parse(&h, meta).ok()?;
        // A chain with a missing link would make the delta as unusable as
        // the parent already is: a full image then.
        let dir_fd = sys::open(dir, sys::O_RDONLY | sys::O_DIRECTORY).ok()?;
        let mut name = [0u8; 256];
        let all_there = m.parents().iter().all(|p| {
            let n = m.string(p.name).unwrap_or(b"");
            n.len() < name.len() && {
                name[..n.len()].copy_from_slice(n);
                name[n.len()] = 0;
                CStr::from_bytes_with_nul(&name[..=n.len()])
                    .ok()
                    .and_then(|c| sys::fstatat(&dir_fd, c, sys::AT_SYMLINK_NOFOLLOW).ok())
                    .is_some_and(|st| st.mode & sys::S_IFMT == sys::S_IFREG && st.size as u64 == p.file_len)
            }
        });
        all_there.then_some(m)
    }

    /// The parent's identity: its header checksum.
    pub fn id(&self) -> u64 {
        self.meta.header.header_checksum
    }

    /// Turns the extents of `extents` whose bytes the parent holds into
    /// references to them; `marks` is scratch of the same length (the
    /// writer's checksum slots) and `stack` the helper thread's stack.
    /// Returns how many extents are reused.
    pub fn reuse(
        &self,
        regions: &[Region],
        extents: &mut [Extent],
        written: &Scan,
        marks: &[AtomicU64],
        stack: &mut [u8],
    ) -> usize {
        // 1. Candidates: same address and length as a parent extent, in a
        //    readable region (both tables are in address order), and not
        //    written since, as far as the kernel's tracking knows. marks[i]:
        //    1 + the parent extent's index (with CLEAN: known unchanged),
        //    0: none.
        let n_parent = self.meta.header.n_extents as usize;
        let mut j = 0;
        let mut bytes = 0;
        for r in regions {
            let first = r.first_extent as usize;
            for (i, x) in extents[first..first + r.n_extents as usize].iter().enumerate() {
                while j < n_parent && self.meta.extent(j).addr < x.addr {
                    j += 1;
                }
                let hit = r.prot & PROT_READ != 0
                    && j < n_parent
                    && self.meta.extent(j).len == x.len
                    && self.meta.extent(j).addr == x.addr;
                let mark = match (hit, written.written(x.addr, x.len)) {
                    (false, _) | (true, Some(true)) => 0,
                    (true, Some(false)) => (j as u64 + 1) | CLEAN,
                    (true, None) => {
                        bytes += x.len;
                        j as u64 + 1
                    }
                };
                marks[first + i].store(mark, Relaxed);
            }
        }
        // 2. The same bytes? (Where the tracking does not know: the memory
        //    is hashed where it is.)
        let job = Compare { extents, parent: &self.meta, marks };
        // SAFETY: the stack is the caller's to lend; each item reads its
        // own extent's memory and writes its own mark.
        let _ = unsafe { thread::split(&job, bytes >= 32 << 20, stack) };
        // 3. The unchanged ones point at the parent's copy.
        let mut reused = 0;
        for (x, mark) in extents.iter_mut().zip(marks) {
            if let Some(j) = ((mark.load(Relaxed) & !CLEAN) as usize).checked_sub(1) {
                let p = self.meta.extent(j);
                *x = Extent { source: p.source + 1, ..p };
                reused += 1;
            }
        }
        reused
    }

    /// Fills in the chain of the delta being written on this parent:
    /// `name` is the parent's chain name; `add` puts a string in the new
    /// image's string table.
    pub fn link(&self, h: &mut Header, name: StrRef, mut add: impl FnMut(&[u8]) -> Option<StrRef>) -> Option<()> {
        let ph = &self.meta.header;
        h.chain_depth = ph.chain_depth + 1;
        h.parents[0] = Parent { id: ph.header_checksum, file_len: ph.file_len, name };
        for (k, p) in self.meta.parents().iter().enumerate() {
            h.parents[k + 1] = Parent { name: add(self.meta.string(p.name)?)?, ..*p };
        }
        Some(())
    }
}

/// Whether each candidate's memory has the parent's checksum (item `i`
/// clears `marks[i]` if not).
struct Compare<'a> {
    extents: &'a [Extent],
    parent: &'a Meta<'a>,
    marks: &'a [AtomicU64],
}

impl thread::Job for Compare<'_> {
    fn len(&self) -> usize {
        self.extents.len()
    }

    fn run(&self, _worker: usize, i: usize) -> Result<(), u32> {
        let mark = self.marks[i].load(Relaxed);
        let Some(j) = (mark as usize).checked_sub(1).filter(|_| mark & CLEAN == 0) else { return Ok(()) };
        let x = self.extents[i];
        // SAFETY: the extent is readable memory of the stopped program
        // (its region has PROT_READ, checked by the caller).
        let now = checksum(unsafe { core::slice::from_raw_parts(x.addr as *const u8, x.len as usize) });
        if now != self.parent.extent(j).checksum {
            self.marks[i].store(0, Relaxed);
        }
        Ok(())
    }
}
