//! Writing an image: the [`Encoder`] lays the file out from the tables and
//! seals its checksums, in the one order docs/FORMAT.md gives. The capture
//! writes with it (in pieces: its data goes out from two threads), and so do
//! the tests' sample images ([`Encoder::write`]). No allocation: the tables
//! are the caller's.

use crate::*;

/// The metadata tables of an image, in file order (borrowed).
pub struct Tables<'a> {
    pub regions: &'a [Region],
    /// Where each extent's data goes is the encoder's to say; its checksum
    /// is set once its data is known ([`Encoder::set_checksum`]).
    pub extents: &'a mut [Extent],
    pub threads: &'a [Thread],
    /// `NSIG` entries (index 0 unused).
    pub sigactions: &'a [SigAction],
    pub fds: &'a [Fd],
    pub strings: &'a [u8],
}

/// An image being written: the header and the tables, laid out.
pub struct Encoder<'a> {
    h: Header,
    t: Tables<'a>,
}

impl<'a> Encoder<'a> {
    /// Lays out an image of header `h` (its own fields filled by the
    /// caller) and tables `t`: the counts go into the header, the metadata
    /// after the header page, the data section after that (page aligned),
    /// each extent's data at its place in table order.
    pub fn new(mut h: Header, t: Tables<'a>) -> Encoder<'a> {
        debug_assert_eq!(t.sigactions.len(), NSIG);
        h.n_regions = t.regions.len() as u32;
        h.n_extents = t.extents.len() as u32;
        h.n_threads = t.threads.len() as u32;
        h.n_fds = t.fds.len() as u32;
        h.strings_len = t.strings.len() as u64;
        h.layout();
        // The bytes of this image's own extents (source 0), in table order;
        // a delta's other extents are in its parents, where they say.
        let mut pos = h.data_offset;
        for x in t.extents.iter_mut().filter(|x| x.source == 0) {
            x.file_pos = pos;
            pos += x.stored_len;
        }
        h.data_len = pos - h.data_offset;
        h.file_len = pos;
        Encoder { h, t }
    }

    /// The header as laid out (not sealed before [`seal`](Self::seal)).
    pub fn header(&self) -> &Header {
        &self.h
    }

    /// For the fields that are known only later (the capture's duration).
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.h
    }

    pub fn extents(&self) -> &[Extent] {
        self.t.extents
    }

    /// Records the checksum of extent `i`'s data.
    pub fn set_checksum(&mut self, i: usize, sum: u64) {
        self.t.extents[i].checksum = sum;
    }

    /// The metadata, in file order: its parts go one after the other from
    /// `meta_offset`.
    pub fn meta_parts(&self) -> [&[u8]; 6] {
        let t = &self.t;
        [
            bytes_of_slice(t.regions),
            bytes_of_slice(t.extents),
            bytes_of_slice(t.threads),
            bytes_of_slice(t.sigactions),
            bytes_of_slice(t.fds),
            t.strings,
        ]
    }

    /// Seals the image once every extent's checksum is set: the metadata's
    /// checksum, then the header's. Returns the header, to be written at
    /// offset 0 (the rest of the header page is zero).
    pub fn seal(&mut self) -> &Header {
        self.h.meta_checksum = checksum_parts(&self.meta_parts());
        self.h.header_checksum = self.h.compute_checksum();
        &self.h
    }

    /// Writes the whole image through `put(file offset, bytes)`, with
    /// `data(i)` the bytes of extent `i` stored in this image (its checksum
    /// is taken from them; the others keep theirs):
    /// the data, the metadata, then the sealed header. A file of
    /// `header().file_len` zero bytes, with every piece put, is the image.
    pub fn write<'d>(mut self, data: impl Fn(usize) -> &'d [u8], mut put: impl FnMut(u64, &[u8])) -> Header {
        for i in 0..self.t.extents.len() {
            if self.t.extents[i].source != 0 {
                continue;
            }
            let (bytes, pos) = (data(i), self.t.extents[i].file_pos);
            debug_assert_eq!(bytes.len() as u64, self.t.extents[i].len);
            self.set_checksum(i, checksum(bytes));
            put(pos, bytes);
        }
        let mut pos = self.h.meta_offset;
        for part in self.meta_parts() {
            put(pos, part);
            pos += part.len() as u64;
        }
        let h = *self.seal();
        put(0, bytes_of(&h));
        h
    }

    /// [`write`](Self::write) into `file`, of `header().file_len` zero
    /// bytes (a sample image in memory).
    pub fn write_into<'d>(self, data: impl Fn(usize) -> &'d [u8], file: &mut [u8]) -> Header {
        self.write(data, |pos, bytes| file[pos as usize..pos as usize + bytes.len()].copy_from_slice(bytes))
    }
}
