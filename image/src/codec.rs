//! Compressed extents: an extent's bytes as one LZ4 block (the LZ4 block
//! format, no frame), and back. Both directions are allocation-free: the
//! compressor's hash table is the caller's ([`Table`]), kept where the
//! capture may use it (never the program's heap, which a checkpoint signal
//! may have interrupted), and the decoder writes straight into the
//! extent's memory, never past it, whatever the stored bytes say.

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
        EXTENT_LZ4 => match lz4_flex::block::decompress_into(stored, dst) {
            Ok(n) if n == dst.len() => Ok(()),
            _ => Err(DecodeError::Corrupt),
        },
        EXTENT_RAW => Err(DecodeError::Corrupt),
        _ => Err(DecodeError::Unknown),
    }
}
