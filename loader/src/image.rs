//! Opening an image: the header and the metadata are read and validated
//! here, before the loader changes anything.

use alloc::vec::Vec;
use core::ffi::CStr;

use ckpt_image::{Header, Meta, HEADER_SIZE};
use ckpt_sys::{self as sys, Short};

use crate::fail::{self, Fail};

/// An open, validated image. The metadata lives in the loader's heap.
pub struct Image {
    pub fd: i32,
    pub meta: &'static Meta<'static>,
}

/// Reads exactly `buf.len()` bytes at `offset`, or says the image is short.
pub fn read_exact(fd: i32, buf: &mut [u8], offset: u64) -> Result<(), Fail> {
    // SAFETY: the buffer is ours, writable, and lent for the call.
    unsafe { sys::pread_all(fd, buf.as_mut_ptr() as u64, buf.len() as u64, offset) }.map_err(|e| match e {
        Short::End => Fail::Image(ckpt_image::Error::Truncated),
        Short::Errno(e) => Fail::Sys("reading the image", e),
    })
}

pub fn open(path: &CStr) -> Result<Image, Fail> {
    // Non-blocking: opening a FIFO for reading would wait for a writer
    // (it is refused just below); on a regular file the flag changes nothing.
    let fd = sys::open(path, sys::O_RDONLY | sys::O_NONBLOCK).map_err(fail::sys("cannot open the image"))?;
    let st = sys::fstat(fd).map_err(fail::sys("cannot stat the image"))?;
    match st.mode & sys::S_IFMT {
        sys::S_IFREG => {}
        sys::S_IFDIR => return Err(Fail::Msg("is a directory, not an image")),
        _ => return Err(Fail::Msg("is not a regular file")),
    }
    let file_len = st.size as u64;
    let mut head = [0u8; HEADER_SIZE];
    let n = (file_len as usize).min(HEADER_SIZE);
    read_exact(fd, &mut head[..n], 0)?;
    let header = Header::parse(&head[..n], file_len)?;
    if header.meta_len > crate::MAX_META as u64 {
        return Err(Fail::Msg(
            "the image's tables (its metadata) are larger than restart can hold (62 MiB): too many regions, extents, descriptors or strings",
        ));
    }
    let mut meta = Vec::new();
    meta.try_reserve_exact(header.meta_len as usize).map_err(|_| Fail::Msg("the image metadata is too large"))?;
    meta.resize(header.meta_len as usize, 0u8);
    read_exact(fd, &mut meta, header.meta_offset)?;
    // The metadata lives as long as the loader: leak it into 'static.
    let meta: &'static [u8] = meta.leak();
    let meta = Meta::parse(&header, meta)?;
    // Leaked as well: the restarted threads keep reading their records.
    let meta: &'static Meta<'static> = alloc::boxed::Box::leak(alloc::boxed::Box::new(meta));
    Ok(Image { fd, meta })
}

impl Image {
    /// The saved signal frames hold state for `xfeatures`: this CPU (and
    /// kernel) must enable every one of them, or the vector registers could
    /// not be restored.
    pub fn check_cpu(&self) -> Result<(), Fail> {
        let need = self.meta.header.xfeatures;
        if need & !sys::xcr0() != 0 {
            return Err(Fail::Msg(
                "this CPU lacks register state the image needs (XSAVE features); restart it on a machine like the one it came from",
            ));
        }
        Ok(())
    }
}
