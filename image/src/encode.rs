//! Writing an image: the [`Encoder`] lays the file out from the tables and
//! seals its checksums, in the one order docs/FORMAT.md gives. The capture
//! writes with it (in pieces: its data goes out from two threads, raw or
//! compressed, and [`Encoder::set_stored`] places it), and so do
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
        let mut enc = Encoder { h, t };
        enc.place();
        enc
    }

    /// Places the stored bytes of this image's own extents (source 0) one
    /// after the other from `data_offset`, in table order (raw ones page
    /// aligned: [`Extent::place_at`]), and sizes the data and the file; a
    /// delta's other extents are in its parents, where they say.
    fn place(&mut self) {
        let mut pos = self.h.data_offset;
        for x in self.t.extents.iter_mut().filter(|x| x.source == 0) {
            x.file_pos = x.place_at(pos);
            pos = x.file_pos + x.stored_len;
        }
        self.h.data_len = pos - self.h.data_offset;
        self.h.file_len = pos;
    }

    /// Records how each extent is stored (`stored(i)`: its stored length
    /// and encoding, as the writer chose) and places them again, as
    /// [`Encoder::new`] does.
    pub fn set_stored(&mut self, stored: impl Fn(usize) -> (u64, u32)) {
        for (i, x) in self.t.extents.iter_mut().enumerate() {
            (x.stored_len, x.encoding) = stored(i);
        }
        self.place();
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
        self.finish(put)
    }

    /// The metadata, then the sealed header.
    fn finish(mut self, mut put: impl FnMut(u64, &[u8])) -> Header {
        let mut pos = self.h.meta_offset;
        for part in self.meta_parts() {
            put(pos, part);
            pos += part.len() as u64;
        }
        let h = *self.seal();
        put(0, bytes_of(&h));
        h
    }

    /// As [`write`](Self::write), with each extent stored compressed where
    /// that pays ([`codec::compress`], with `table`, into `packed`, of
    /// `codec::PACKED_MAX` bytes): for sample images, so each extent is
    /// compressed twice, once to place it and once to write it. The file is
    /// then `header().file_len` bytes as returned (it shrinks).
    pub fn write_compressed<'d>(
        mut self,
        data: impl Fn(usize) -> &'d [u8],
        table: &mut codec::Table,
        packed: &mut [u8],
        mut put: impl FnMut(u64, &[u8]),
    ) -> Header {
        let stored = |i: usize, table: &mut codec::Table, packed: &mut [u8]| {
            codec::compress(data(i), packed, table)
                .map_or((data(i).len() as u64, EXTENT_RAW), |n| (n as u64, EXTENT_LZ4))
        };
        for i in 0..self.t.extents.len() {
            let (len, encoding) = stored(i, table, packed);
            (self.t.extents[i].stored_len, self.t.extents[i].encoding) = (len, encoding);
        }
        self.place();
        for i in 0..self.t.extents.len() {
            let x = self.t.extents[i];
            self.set_checksum(i, checksum(data(i)));
            let bytes = match stored(i, table, packed) {
                (n, EXTENT_LZ4) => &packed[..n as usize],
                _ => data(i),
            };
            debug_assert_eq!(bytes.len() as u64, x.stored_len);
            put(x.file_pos, bytes);
        }
        self.finish(put)
    }

    /// [`write`](Self::write) into `file`, of `header().file_len` zero
    /// bytes (a sample image in memory).
    pub fn write_into<'d>(self, data: impl Fn(usize) -> &'d [u8], file: &mut [u8]) -> Header {
        self.write(data, |pos, bytes| file[pos as usize..pos as usize + bytes.len()].copy_from_slice(bytes))
    }
}
