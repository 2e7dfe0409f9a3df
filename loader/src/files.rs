//! Reopening the program's file descriptors (`ckpt_image::Fd`), each at its
//! number, with its flags and offset.

use ckpt_image::Meta;

use crate::args::Options;
use crate::fail::Fail;

/// Before the point of no return: says (on stderr) what will not come back
/// as it was — a deleted, truncated or replaced file, a lost socket — and,
/// with `--strict`, refuses to go on.
pub fn check(meta: &Meta, opts: &Options) -> Result<(), Fail> {
    let _ = (meta, opts);
    Ok(())
}

/// After memory is restored and the image file closed: reopens every
/// descriptor at its number. Stdin, stdout and stderr stay restart's own
/// unless `--keep-stdio`.
pub fn restore(meta: &Meta, opts: &Options) -> Result<(), Fail> {
    let _ = (meta, opts);
    Ok(())
}
