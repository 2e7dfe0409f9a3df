//! Compressed extents: an extent's bytes as one LZ4 block (the LZ4 block
//! format, no frame), and back. Both directions are allocation-free: the
//! compressor (`lz4_flex`) takes its hash table from the caller ([`Table`]),
//! kept where the capture may use it (never the program's heap, which a
//! checkpoint signal may have interrupted); the decoder (here, in safe
//! code) writes straight into the extent's memory, never past it, whatever
//! the stored bytes say, in time linear in their length.

use crate::{Extent, EXTENT_LZ4, EXTENT_RAW, MAX_EXTENT};

/// The compressor's hash table (16 KiB; one per writer thread).
pub use lz4_flex::block::CompressTable as Table;

/// Room the compressor needs for the compressed form of one extent (a
/// little more than the extent: LZ4's worst case).
pub const PACKED_MAX: usize = lz4_flex::block::get_maximum_output_size(MAX_EXTENT as usize);

/// A table for [`compress`].
pub const fn table() -> Table {
    Table::large()
}

/// Compresses `src` into `dst` (at least `PACKED_MAX` bytes, or the
/// maximum LZ4 output for `src`) and returns the compressed length, if it
/// saves at least an eighth: less than that is stored raw (incompressible
/// data costs no space, and a restart decodes only what pays).
pub fn compress(src: &[u8], dst: &mut [u8], table: &mut Table) -> Option<usize> {
    let n = lz4_flex::block::compress_into_with_table(src, dst, table).ok()?;
    (n != 0 && n <= src.len() - src.len() / 8).then_some(n)
}

/// What a stored extent could not be decoded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The compressed bytes are not a valid stream, or not of `len` bytes.
    Corrupt,
    /// An encoding this version does not read.
    Unknown,
}

/// Decodes the stored bytes of `x` (`stored`, `x.stored_len` of them) into
/// `dst` (`x.len` bytes): exactly `dst` is written, or an error.
pub fn decode(x: &Extent, stored: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    match x.encoding {
        EXTENT_RAW if stored.len() == dst.len() => {
            dst.copy_from_slice(stored);
            Ok(())
        }
        EXTENT_LZ4 => lz4_decode(stored, dst).ok_or(DecodeError::Corrupt),
        EXTENT_RAW => Err(DecodeError::Corrupt),
        _ => Err(DecodeError::Unknown),
    }
}

/// Decodes one LZ4 block into exactly `dst`; None if the block is not
/// valid or does not fill `dst` exactly. Every access is checked, so that
/// no input can write outside `dst` or read outside `src`; each step
/// consumes input, so that it ends.
///
/// A block is a list of sequences: a token (literal count in its high
/// nibble, match length - 4 in its low one; 15 means more length bytes
/// follow, each added, until one is not 255), the literals, then a 2-byte
/// little-endian offset back into the output; the last sequence has
/// literals only. A long match at a short offset (a repeated pattern) is
/// copied in doubling steps, each one `copy_within`: a few calls, not one
/// per byte.
fn lz4_decode(src: &[u8], dst: &mut [u8]) -> Option<()> {
    let (mut i, mut o) = (0usize, 0usize);
    loop {
        let token = *src.get(i)?;
        i += 1;
        let mut literals = (token >> 4) as usize;
        if literals == 15 {
            literals += length(src, &mut i)?;
        }
        let from = src.get(i..i.checked_add(literals)?)?;
        dst.get_mut(o..o.checked_add(literals)?)?.copy_from_slice(from);
        i += literals;
        o += literals;
        if i == src.len() {
            return (o == dst.len()).then_some(());
        }
        let offset = u16::from_le_bytes([*src.get(i)?, *src.get(i + 1)?]) as usize;
        i += 2;
        let mut len = (token & 15) as usize + 4;
        if len == 19 {
            len += length(src, &mut i)?;
        }
        if offset == 0 || offset > o || len > dst.len() - o {
            return None;
        }
        let start = o - offset;
        let end = o + len;
        while o < end {
            // [start, o) is written; it repeats with period `offset`, so
            // copying its first o - start bytes to o continues the pattern.
            let n = (end - o).min(o - start);
            dst.copy_within(start..start + n, o);
            o += n;
        }
    }
}

/// An LZ4 length continuation at `src[*i]`: bytes added until one is not 255.
fn length(src: &[u8], i: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    loop {
        let b = *src.get(*i)?;
        *i += 1;
        n += b as usize;
        if b != 255 {
            return Some(n);
        }
    }
}
