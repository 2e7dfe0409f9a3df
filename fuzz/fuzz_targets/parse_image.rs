//! The image parsers under libFuzzer: `Header::parse`, `Meta::parse` and
//! every accessor the loader uses (`ckpt_image::exercise`).
//!
//! Input: 1 byte of mode, 8 bytes of claimed file length (little-endian),
//! then the start of an image file (header and metadata). Mode bit 0 set:
//! both checksums are made right first (`exercise::reseal`), so that the
//! fuzzer reaches the structural checks instead of stopping at a checksum;
//! clear: the bytes are parsed as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some((len, head)) = rest.split_first_chunk::<8>() else { return };
    let file_len = u64::from_le_bytes(*len);
    let mut head = head.to_vec();
    if mode & 1 != 0 {
        ckpt_image::exercise::reseal(&mut head);
    }
    if let Err(broken) = ckpt_image::exercise::exercise(&head, file_len) {
        panic!("the parsers accepted an image that breaks a promise: {broken}");
    }
});
