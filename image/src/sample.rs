//! Sample images for tests: one builder, on [`encode::Encoder`], for the
//! format's own tests and readckpt's (feature `sample`, which only
//! dev-dependencies turn on: release builds do not have it).
//!
//! Tables are added one record at a time, each with plain defaults that the
//! test then sets; the data of each extent is a pattern of its index.

use crate::*;
use alloc::vec::Vec;

/// An image being put together.
pub struct Sample {
    pub header: Header,
    regions: Vec<Region>,
    extents: Vec<Extent>,
    data: Vec<Vec<u8>>,
    threads: Vec<Thread>,
    sigactions: [SigAction; NSIG],
    fds: Vec<Fd>,
    strings: Vec<u8>,
}

impl Default for Sample {
    fn default() -> Self {
        Self::new()
    }
}

impl Sample {
    pub fn new() -> Sample {
        Sample {
            header: Header::new(),
            regions: Vec::new(),
            extents: Vec::new(),
            data: Vec::new(),
            threads: Vec::new(),
            sigactions: [SigAction::default(); NSIG],
            fds: Vec::new(),
            strings: Vec::new(),
        }
    }

    /// Adds `s` to the string table.
    pub fn string(&mut self, s: &[u8]) -> StrRef {
        let r = StrRef { offset: self.strings.len() as u32, len: s.len() as u32 };
        self.strings.extend_from_slice(s);
        r
    }

    /// A region of `pages` pages at `start`, after the ones added before,
    /// with its data stored as `extents`: (first page, pages) in order.
    pub fn region(
        &mut self,
        start: u64,
        pages: u64,
        prot: u32,
        kind: RegionKind,
        path: &[u8],
        extents: &[(u64, u64)],
    ) -> &mut Region {
        let first_extent = self.extents.len() as u32;
        for &(page, n) in extents {
            let i = self.data.len();
            self.data.push((0..n * PAGE_SIZE).map(|b| (b as u8).wrapping_mul(i as u8 + 3)).collect());
            self.extents.push(Extent::new(start + page * PAGE_SIZE, n * PAGE_SIZE));
        }
        let path = self.string(path);
        self.regions.push(Region {
            start,
            end: start + pages * PAGE_SIZE,
            prot,
            kind: kind as u32,
            n_extents: extents.len() as u32,
            first_extent,
            path,
            ..Region::default()
        });
        self.regions.last_mut().unwrap()
    }

    /// A thread whose signal frame is at `ucontext`, using x87 and SSE
    /// state only; everything else 0.
    pub fn thread(&mut self, tid: u32, ucontext: u64) -> &mut Thread {
        self.threads.push(Thread { tid, ucontext, xstate_bv: 3, xinuse: 3, ..Thread::default() });
        self.threads.last_mut().unwrap()
    }

    /// The disposition of signal `sig`.
    pub fn sigaction(&mut self, sig: usize, a: SigAction) {
        self.sigactions[sig] = a;
    }

    /// Descriptor `fd`, a `kind` open at `path` with `F_GETFL` flags
    /// `flags`, holding `data` (a pipe's bytes, an event record...).
    pub fn fd(&mut self, fd: i32, kind: FdKind, flags: u32, path: &[u8], data: &[u8]) -> &mut Fd {
        let (path, data) = (self.string(path), self.string(data));
        self.fds.push(Fd { fd, kind: kind as u32, flags, path, data, ..Fd::default() });
        self.fds.last_mut().unwrap()
    }

    /// The extents added so far, in table order, to change before the
    /// image is laid out (a delta's `source`, a hostile `len`...).
    pub fn extents_mut(&mut self) -> &mut [Extent] {
        &mut self.extents
    }

    /// The image file, laid out and sealed by the [`encode::Encoder`].
    pub fn build(mut self) -> Vec<u8> {
        let (enc, data) = self.encoder();
        written(enc, |i| &data[i])
    }

    /// [`Sample::build`] with the extents compressed where that pays
    /// ([`encode::Encoder::write_compressed`]).
    pub fn build_compressed(mut self) -> Vec<u8> {
        let (enc, data) = self.encoder();
        let mut file = alloc::vec![0u8; enc.header().file_len as usize];
        let (mut table, mut packed) = (codec::table(), alloc::vec![0u8; codec::PACKED_MAX]);
        let put = |pos: u64, bytes: &[u8]| file[pos as usize..pos as usize + bytes.len()].copy_from_slice(bytes);
        let h = enc.write_compressed(|i| &data[i], &mut table, &mut packed, put);
        file.truncate(h.file_len as usize);
        file
    }

    /// The encoder of the tables, and the extents' data.
    fn encoder(&mut self) -> (encode::Encoder<'_>, &[Vec<u8>]) {
        let tables = encode::Tables {
            regions: &self.regions,
            extents: &mut self.extents,
            threads: &self.threads,
            sigactions: &self.sigactions,
            fds: &self.fds,
            strings: &self.strings,
        };
        (encode::Encoder::new(self.header, tables), &self.data)
    }
}

/// The image file of header `h` and tables `t`, extent `i`'s data being
/// `data(i)`: laid out and sealed by the [`encode::Encoder`].
pub fn write<'d>(h: Header, t: encode::Tables, data: impl Fn(usize) -> &'d [u8]) -> Vec<u8> {
    written(encode::Encoder::new(h, t), data)
}

fn written<'d>(enc: encode::Encoder, data: impl Fn(usize) -> &'d [u8]) -> Vec<u8> {
    let mut file = alloc::vec![0u8; enc.header().file_len as usize];
    enc.write_into(data, &mut file);
    file
}
