//! The maps walk: `/proc/self/maps` into the region table, and per region
//! the pages to store (the extent policy).
//!
//! [`Builder`] fills the region, extent and string tables: every readable
//! page of file-backed and shared memory ([`readable_prefix`]: a file
//! mapping may reach past its file's end), the present or swapped pages
//! (`/proc/self/pagemap`) of private anonymous memory, in extents that do
//! not cross a multiple of the block (for deltas); in a copy-on-write
//! checkpoint, readable private anonymous memory is left for the writer to
//! scan from its own copy ([`Builder::scan_late`]).

use core::ffi::CStr;

use ckpt_image::maps::{self, Mapping};
use ckpt_image::{
    Extent, FileId, Region, RegionKind, StrRef, LOADER_BASE, LOADER_END, MAX_EXTENT, PAGE_SIZE, REGION_GROWSDOWN,
    REGION_SHARED, USER_END,
};
use ckpt_sys::{self as sys, Errno};

use crate::capture::{failed, refuse, Failure};
use crate::files;
use crate::job;
use crate::procfs;
use crate::workspace::{self, MAX_EXTENTS, MAX_REGIONS, PAGEMAP_WORDS};

/// Fills the region, extent and string tables.
pub(crate) struct Builder<'a> {
    pub(crate) strings: &'a mut [u8],
    pub(crate) regions: &'a mut [Region],
    pub(crate) extents: &'a mut [Extent],
    pub(crate) pagemap_words: &'a mut [u64],
    pub(crate) strings_len: usize,
    pub(crate) n_regions: usize,
    pub(crate) n_extents: usize,
    pub(crate) pagemap: i32,
    /// Per region: its pages are left for the copy-on-write writer to find
    /// ([`Builder::scan_late`]).
    pub(crate) late: &'a mut [bool],
    /// Whether to leave them (a copy-on-write checkpoint).
    pub(crate) defer: bool,
    /// Extents do not cross a multiple of this (a power of two ≤ MAX_EXTENT).
    pub(crate) block: u64,
}

/// The files module adds its paths and pipe contents to the string table.
impl files::Strings for Builder<'_> {
    fn add(&mut self, bytes: &[u8]) -> Option<StrRef> {
        self.string(bytes).ok()
    }
}

impl<'a> Builder<'a> {
    /// Appends what `fill` writes to the string table.
    pub(crate) fn string_from(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, Errno>,
    ) -> Result<StrRef, Errno> {
        let start = self.strings_len;
        let n = fill(&mut self.strings[start..])?;
        self.strings_len += n;
        Ok(StrRef { offset: start as u32, len: n as u32 })
    }

    pub(crate) fn string(&mut self, s: &[u8]) -> Result<StrRef, Failure> {
        let start = self.strings_len;
        let dst = self.strings.get_mut(start..start + s.len()).ok_or(refuse("too many mapped file names"))?;
        dst.copy_from_slice(s);
        self.strings_len += s.len();
        Ok(StrRef { offset: start as u32, len: s.len() as u32 })
    }

    /// Reads `/proc/self/maps` into `buf` and adds its regions.
    pub(crate) fn walk_maps(&mut self, buf: &mut [u8]) -> Result<(), Failure> {
        let n = procfs::read_file(c"/proc/self/maps", buf).map_err(failed("reading /proc/self/maps"))?;
        let (ws_start, ws_end) = workspace::range();
        let (board_start, board_end) = job::board_range();
        let text = &buf[..n];
        for m in maps::mappings(text) {
            let m = m.map_err(|_| refuse("cannot parse /proc/self/maps"))?;
            if m.end > USER_END || (m.start < LOADER_END && m.end > LOADER_BASE) {
                continue; // [vsyscall]; the loader's reservation or leftovers
            }
            if m.start < board_end && m.end > board_start {
                continue; // a job's barrier, for the time of the checkpoint
            }
            let kind = match m.name {
                _ if m.start >= ws_start && m.end <= ws_end => RegionKind::Workspace,
                b"[vvar]" => RegionKind::Vvar,
                b"[vvar_vclock]" => RegionKind::VvarVclock,
                b"[vdso]" => RegionKind::Vdso,
                b"[heap]" => RegionKind::Heap,
                b"[stack]" => RegionKind::Stack,
                _ if m.is_file() => RegionKind::File,
                _ => RegionKind::Anon,
            };
            self.add_region(&m, kind)?;
        }
        Ok(())
    }

    fn add_region(&mut self, m: &Mapping, kind: RegionKind) -> Result<(), Failure> {
        if self.n_regions == MAX_REGIONS {
            return Err(refuse("too many memory regions"));
        }
        let mut flags = 0;
        if m.shared {
            flags |= REGION_SHARED;
        }
        if kind == RegionKind::Stack {
            flags |= REGION_GROWSDOWN;
        }
        // A sem_open semaphore's mapping: under the name its file has now.
        let mut live = [0u8; 512];
        let renamed = if m.shared { crate::shm::live_path(m.name, m.inode, &mut live) } else { None };
        let m = &Mapping { name: renamed.unwrap_or(m.name), ..*m };
        let path = self.string(m.name)?;
        let first_extent = self.n_extents;
        // Readable private anonymous memory, in a copy-on-write checkpoint:
        // the writer reads which pages it has from its own pagemap, which
        // the fork made the program's (every page and swap entry of memory
        // that was ever written is copied; memory only ever read has none
        // to store either way). The program's pause is shorter by the scan.
        let late = self.defer
            && !m.shared
            && m.prot & 1 != 0
            && matches!(kind, RegionKind::Anon | RegionKind::Heap | RegionKind::Stack);
        self.late[self.n_regions] = late;
        if !kind.is_vdso() && kind != RegionKind::Workspace && !late {
            self.add_extents(m, kind)?;
        }
        self.regions[self.n_regions] = Region {
            start: m.start,
            end: m.end,
            prot: m.prot,
            flags,
            kind: kind as u32,
            n_extents: (self.n_extents - first_extent) as u32,
            first_extent: first_extent as u32,
            _pad: 0,
            file_offset: m.offset,
            file: if kind == RegionKind::File { self.file_id(m) } else { FileId::default() },
            path,
        };
        self.n_regions += 1;
        Ok(())
    }

    /// The identity of a file mapping's backing file as it is now, so that a
    /// restart can tell whether it changed (and write a shared mapping back
    /// only to an unchanged file). All zero when it cannot be known: the
    /// file was deleted, or the path now names another file (its inode is
    /// not the mapping's). The regions of one file usually follow each
    /// other: the previous region's answer is reused.
    fn file_id(&self, m: &Mapping) -> FileId {
        if let Some(prev) = self.n_regions.checked_sub(1).map(|i| &self.regions[i]) {
            let start = prev.path.offset as usize;
            let prev_name = self.strings.get(start..start + prev.path.len as usize);
            if prev.kind == RegionKind::File as u32 && prev.file.ino == m.inode && prev_name == Some(m.name) {
                return prev.file;
            }
        }
        let mut buf = [0u8; 4097];
        if m.name.starts_with(b"/memfd:") && m.name.ends_with(b" (deleted)") {
            // A memfd: only its inode, to find its descriptor at restart.
            return FileId { ino: m.inode, ..FileId::default() };
        }
        if m.inode == 0 || m.name.len() >= buf.len() || m.name.ends_with(b" (deleted)") {
            return FileId::default();
        }
        buf[..m.name.len()].copy_from_slice(m.name);
        let Ok(path) = CStr::from_bytes_until_nul(&buf) else { return FileId::default() };
        match sys::stat(path) {
            Ok(st) if st.ino == m.inode => {
                FileId { dev: st.dev, ino: st.ino, size: st.size.max(0) as u64, mtime_ns: st.mtime_ns() }
            }
            _ => FileId::default(),
        }
    }

    /// Decides which pages of a region are stored:
    /// - readable file or shared memory: every page that can be read (a file
    ///   mapping may reach past the end of its file; those pages are left out);
    /// - private anonymous memory, and anything unreadable: the pages the
    ///   kernel has (present or swapped, from /proc/self/pagemap). The rest
    ///   was never touched and is zero.
    fn add_extents(&mut self, m: &Mapping, kind: RegionKind) -> Result<(), Failure> {
        let pages = m.len() / PAGE_SIZE;
        let readable = m.prot & 1 != 0;
        if readable && (kind == RegionKind::File || m.shared) {
            let n = readable_prefix(m.start, pages);
            return self.add_run(m.start, n * PAGE_SIZE);
        }
        self.add_present(m.start, pages)
    }

    /// Adds the pages of `[start, start+pages*4K)` that the kernel has
    /// (present or swapped, from /proc/self/pagemap).
    fn add_present(&mut self, start: u64, pages: u64) -> Result<(), Failure> {
        let mut run_start = 0u64;
        let mut run_len = 0u64;
        let mut page = 0u64;
        while page < pages {
            let chunk = (pages - page).min(PAGEMAP_WORDS as u64) as usize;
            let words = &mut self.pagemap_words[..chunk];
            // SAFETY: the u64 words are plain memory of the right size.
            let bytes = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, chunk * 8) };
            let offset = (start / PAGE_SIZE + page) * 8;
            let got = sys::pread(self.pagemap, bytes, offset).map_err(failed("reading /proc/self/pagemap"))?;
            if got != chunk * 8 {
                return Err(refuse("short read of /proc/self/pagemap"));
            }
            for i in 0..chunk {
                let has = self.pagemap_words[i] & (3 << 62) != 0;
                let addr = start + (page + i as u64) * PAGE_SIZE;
                if has {
                    if run_len == 0 {
                        run_start = addr;
                    }
                    run_len += PAGE_SIZE;
                } else if run_len != 0 {
                    self.add_run(run_start, run_len)?;
                    run_len = 0;
                }
            }
            page += chunk as u64;
        }
        if run_len != 0 {
            self.add_run(run_start, run_len)?;
        }
        Ok(())
    }

    /// In the copy-on-write writer: a builder whose extent table is `into`,
    /// with the extents of every region in order: the pages of the regions
    /// left late, from this process's own pagemap, and the others' extents
    /// as they were found at the checkpoint.
    pub(crate) fn scan_late<'b>(self, into: &'b mut [Extent]) -> Result<Builder<'b>, Failure>
    where
        'a: 'b,
    {
        let Builder { strings, regions, extents: found, pagemap_words, strings_len, n_regions, late, .. } = self;
        let file = sys::open(c"/proc/self/pagemap", sys::O_RDONLY).map_err(failed("opening /proc/self/pagemap"))?;
        let pagemap = file.as_raw(); // lent for the scan
        let mut b = Builder {
            strings,
            regions,
            extents: into,
            pagemap_words,
            strings_len,
            n_regions,
            n_extents: 0,
            pagemap,
            late,
            defer: false,
            block: MAX_EXTENT,
        };
        let scanned = (0..n_regions).try_for_each(|i| {
            let r = b.regions[i];
            let first = b.n_extents;
            if b.late[i] {
                b.add_present(r.start, r.len() / PAGE_SIZE)?;
            } else {
                let n = r.n_extents as usize;
                let mine = &found[r.first_extent as usize..r.first_extent as usize + n];
                b.extents[first..first + n].copy_from_slice(mine);
                b.n_extents += n;
            }
            b.regions[i].first_extent = first as u32;
            b.regions[i].n_extents = (b.n_extents - first) as u32;
            Ok(())
        });
        drop(file);
        scanned.map(|()| b)
    }

    /// Adds `[addr, addr+len)` as extents that do not cross a multiple of
    /// `block`: the same memory is cut the same way in every image, so a
    /// delta can reuse its parent's extents (delta.rs).
    fn add_run(&mut self, mut addr: u64, mut len: u64) -> Result<(), Failure> {
        while len > 0 {
            if self.n_extents == MAX_EXTENTS {
                return Err(refuse("memory too fragmented (too many extents)"));
            }
            let piece = len.min(self.block - addr % self.block);
            self.extents[self.n_extents] = Extent::new(addr, piece);
            self.n_extents += 1;
            addr += piece;
            len -= piece;
        }
        Ok(())
    }
}

/// Number of leading pages of `[start, start+pages*4K)` that can be read.
fn readable_prefix(start: u64, pages: u64) -> u64 {
    if pages == 0 || sys::readable(start + (pages - 1) * PAGE_SIZE) {
        return pages;
    }
    // Invariant: page lo is readable or lo == 0 with nothing known; hi is not.
    let (mut lo, mut hi) = (0u64, pages - 1);
    if !sys::readable(start) {
        return 0;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if sys::readable(start + mid * PAGE_SIZE) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}
