//! Opening an image: the header and the metadata are read and validated
//! here, before the loader changes anything.

use alloc::vec::Vec;
use core::ffi::CStr;

use ckpt_image::{Header, Meta, HEADER_SIZE};
use ckpt_sys::{self as sys, Short};

use crate::fail::{self, Fail};

/// An open, validated image. The metadata lives in the loader's heap.
///
/// Its descriptors are numbers, not owners: a job's members read the
/// root's file through the same number, and the loader never returns to
/// drop anything (it jumps into the program). They are closed where the
/// loader stops reading them: the parents' after the memory is restored
/// ([`Image::close_parents`]), the image's own by `resume`.
pub struct Image {
    pub fd: i32,
    /// Where the process image starts in the file (0; in a job image,
    /// the root's place).
    pub base: u64,
    pub meta: &'static Meta<'static>,
    /// The file of each extent `source`: `files[0]` is `fd`, `files[k]` the
    /// k-th parent of a delta image (docs/FORMAT.md, "Delta images").
    pub files: Vec<i32>,
}

/// Reads exactly `buf.len()` bytes at `offset`, or says the image is short.
pub fn read_exact(fd: impl sys::AsFd, buf: &mut [u8], offset: u64) -> Result<(), Fail> {
    // SAFETY: the buffer is ours, writable, and lent for the call.
    unsafe { sys::pread_all(fd, buf.as_mut_ptr() as u64, buf.len() as u64, offset) }.map_err(|e| match e {
        Short::End => Fail::Image(ckpt_image::Error::Truncated),
        Short::Errno(e) => Fail::Sys("reading the image", e),
    })
}

/// Opens and validates the image; unless `trust`, it must be the
/// caller's own and writable by no one else ([`check_trusted`]).
pub fn open(path: &CStr, trust: bool) -> Result<Image, Fail> {
    let mut img = open_one(path, trust)?;
    let parents = img.meta.parents().len();
    img.files.try_reserve_exact(parents).map_err(|_| Fail::Msg("out of memory"))?;
    for k in 1..=parents {
        img.files.push(crate::chain::open_link(path, img.meta, k, trust)?.into_raw());
    }
    Ok(img)
}

/// Opens one image file and validates its header and metadata.
fn open_one(path: &CStr, trust: bool) -> Result<Image, Fail> {
    // Non-blocking: opening a FIFO for reading would wait for a writer
    // (it is refused just below); on a regular file the flag changes nothing.
    let fd = sys::open(path, sys::O_RDONLY | sys::O_NONBLOCK).map_err(fail::sys("cannot open the image"))?;
    let st = sys::fstat(&fd).map_err(fail::sys("cannot stat the image"))?;
    match st.mode & sys::S_IFMT {
        sys::S_IFREG => {}
        sys::S_IFDIR => return Err(Fail::Msg("is a directory, not an image")),
        _ => return Err(Fail::Msg("is not a regular file")),
    }
    if !trust {
        check_trusted(&st)?;
    }
    let (base, file_len) = crate::job::root_of(fd.as_raw(), st.size as u64)?;
    open_at(fd.into_raw(), base, file_len)
}

/// The process image at `base` in the open image file `fd`, `file_len`
/// bytes long (the root's, or another member's of a job image).
pub fn open_at(fd: i32, base: u64, file_len: u64) -> Result<Image, Fail> {
    let mut head = [0u8; HEADER_SIZE];
    let n = (file_len as usize).min(HEADER_SIZE);
    read_exact(fd, &mut head[..n], base)?;
    let header = Header::parse(&head[..n], file_len)?;
    if header.meta_len > crate::MAX_META as u64 {
        return Err(Fail::Msg(
            "the image's tables (its metadata) are larger than restart can hold (62 MiB): too many regions, extents, descriptors or strings",
        ));
    }
    let mut meta = Vec::new();
    meta.try_reserve_exact(header.meta_len as usize).map_err(|_| Fail::Msg("the image metadata is too large"))?;
    meta.resize(header.meta_len as usize, 0u8);
    read_exact(fd, &mut meta, base + header.meta_offset)?;
    // The metadata lives as long as the loader: leak it into 'static.
    let meta: &'static [u8] = meta.leak();
    let meta = Meta::parse(&header, meta)?;
    // Leaked as well: the restarted threads keep reading their records.
    let meta: &'static Meta<'static> = alloc::boxed::Box::leak(alloc::boxed::Box::new(meta));
    let mut files = Vec::new();
    files.try_reserve_exact(1).map_err(|_| Fail::Msg("out of memory"))?;
    files.push(fd);
    Ok(Image { fd, base, meta, files })
}

/// An image is a whole program, code included, that restart runs with the
/// caller's credentials (and a shared file mapping in it is written back
/// to its file): it must come from the caller. Another user's image, or
/// one that others could have rewritten, is refused. Checked on the open
/// file (fstat), so the name cannot be swapped in between.
pub fn check_trusted(st: &sys::Stat) -> Result<(), Fail> {
    if st.uid != sys::geteuid() {
        return Err(Fail::Msg(
            "belongs to another user; restarting it would run their code as you (give --trust-image if you trust it)",
        ));
    }
    if st.mode & 0o022 != 0 {
        return Err(Fail::Msg(
            "is writable by group or others, who could have changed its code (chmod 600 it, or give --trust-image)",
        ));
    }
    Ok(())
}

impl Image {
    /// Closes the parents' files (the image's own is closed by `resume`).
    pub fn close_parents(&self) {
        self.files[1..].iter().for_each(|&fd| sys::close(fd));
    }

    /// Reads the program's memory at `addr` as the image stores it (before
    /// it is mapped: for checks made before the point of no return).
    pub fn read_memory(&self, mut addr: u64, buf: &mut [u8]) -> Result<(), Fail> {
        let mut done = 0;
        while done < buf.len() {
            let bad = Fail::Image(ckpt_image::Error::BadThread);
            let i = self.meta.extent_at(addr).ok_or(bad)?;
            let x = self.meta.extent(i);
            let n = ((x.addr + x.len - addr) as usize).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            if x.compressed() {
                let from = (addr - x.addr) as usize;
                crate::data::with_decoded(self, i, |bytes| dst.copy_from_slice(&bytes[from..from + n]))?;
            } else {
                // The image's own data is at `base` in its file (a job image).
                let base = if x.source == 0 { self.base } else { 0 };
                read_exact(self.files[x.source as usize], dst, base + x.file_pos + (addr - x.addr))?;
            }
            done += n;
            addr += n as u64;
        }
        Ok(())
    }
}
