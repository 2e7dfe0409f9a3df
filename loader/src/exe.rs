//! `/proc/self/exe`: the program's executable again, not `restart`.
//!
//! `PR_SET_MM_MAP` takes an `exe_fd` (with `CAP_CHECKPOINT_RESTORE` in the
//! process's user namespace: held in namespace mode), but the kernel
//! refuses to replace the executable while the old one is still mapped
//! (kernel/fork.c `replace_mm_exe_file`: -EBUSY if any mapping's file is
//! the current exe file). The loader's own segments are mappings of the
//! `restart` file; so they are first replaced by anonymous copies of
//! themselves, at the same addresses and with the same protections
//! ([`detach_loader`]), and only then is the exe changed.
//!
//! The file is opened by the path the image recorded, and must be the very
//! file the program ran (device, inode, size and modification time of the
//! image's mapping of it); if it is gone or changed, `/proc/self/exe`
//! stays `restart`, with a warning. (An image of a restarted program has no
//! file mapping of it — restored private mappings are anonymous — so there
//! the path alone names it: it must still be a regular file.)

use core::fmt::Write;

use ckpt_image::{maps, Meta, RegionKind, LOADER_BASE};
use ckpt_sys::{self as sys, msg::Line, OwnedFd};

use crate::fail;

extern "C" {
    /// End of the loader's image (linker.ld).
    static __loader_end: u8;
}

/// The program's executable, opened and checked, with the loader's own
/// file unmapped: a descriptor for `PR_SET_MM_MAP`'s `exe_fd`. None (and a
/// warning) where that cannot be.
pub fn prepare(meta: &Meta) -> Option<OwnedFd> {
    let path = meta.string(meta.header.exe).unwrap_or(b"");
    let fd = match open_checked(meta, path) {
        Ok(fd) => fd,
        Err(why) => {
            warn(path, why);
            return None;
        }
    };
    if let Err(why) = detach_loader() {
        warn(path, why);
        return None;
    }
    Some(fd)
}

pub fn warn(path: &[u8], why: &str) {
    let mut l = Line::new();
    l.push(b"restart: warning: /proc/self/exe stays restart, not ").push_escaped(path);
    let _ = write!(l, ": {why}");
    fail::warn(&mut l);
}

/// Opens `path` if it is the file the image's program ran.
fn open_checked(meta: &Meta, path: &[u8]) -> Result<OwnedFd, &'static str> {
    let mut buf = [0u8; sys::PATH_MAX + 1];
    if path.is_empty() || path.len() >= buf.len() {
        return Err("the image names no executable");
    }
    buf[..path.len()].copy_from_slice(path);
    let cpath = core::ffi::CStr::from_bytes_until_nul(&buf).map_err(|_| "bad path")?;
    let recorded = meta
        .regions()
        .find(|r| r.kind() == Some(RegionKind::File) && meta.string(r.path) == Some(path) && r.file.ino != 0)
        .map(|r| r.file);
    let fd = sys::open(cpath, sys::O_RDONLY).map_err(|_| "it is gone")?;
    let same = sys::fstat(&fd).is_ok_and(|st| match recorded {
        Some(id) => {
            st.dev == id.dev && st.ino == id.ino && st.size.max(0) as u64 == id.size && st.mtime_ns() == id.mtime_ns
        }
        None => st.mode & sys::S_IFMT == sys::S_IFREG,
    });
    if !same {
        return Err("it is not the file the program ran (it changed or was replaced)");
    }
    Ok(fd)
}

/// Replaces every mapping of the loader's own file by an anonymous copy at
/// the same address, with the same protection.
fn detach_loader() -> Result<(), &'static str> {
    let mut text = alloc::vec![0u8; 64 << 10];
    let n = crate::vdso::read_own_maps(&mut text).map_err(|_| "cannot read /proc/self/maps")?;
    // Only the address of the linker symbol is taken, never its value.
    let end = core::ptr::addr_of!(__loader_end) as u64;
    let sp = stack_pointer();
    for m in maps::mappings(&text[..n]) {
        let m = m.map_err(|_| "cannot parse /proc/self/maps")?;
        if !m.is_file() || m.start < LOADER_BASE || m.end > end {
            continue;
        }
        if (m.start..m.end).contains(&sp) {
            // Writes to the stack between the copy and the move would be lost.
            return Err("the loader's stack lies in a mapping of its file");
        }
        // SAFETY: a fresh anonymous mapping (anywhere) receives a copy of
        // the loader's mapping, and is moved over it: the same bytes at
        // the same address, the old mapping replaced atomically; the loader
        // is single-threaded here.
        unsafe {
            let len = m.len();
            let rw = sys::PROT_READ | sys::PROT_WRITE;
            let copy = sys::mmap(0, len, rw, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS, -1, 0)
                .map_err(|_| "cannot map a copy of the loader")?;
            core::ptr::copy_nonoverlapping(m.start as *const u8, copy as *mut u8, len as usize);
            let prot = m.prot as i32; // PROT_* bits, as maps gives them
            if sys::mprotect(copy, len, prot).is_err() || sys::mremap_fixed(copy, len, m.start).is_err() {
                let _ = sys::munmap(copy, len);
                return Err("cannot replace the loader's mapping");
            }
        }
    }
    Ok(())
}

fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: reads the stack pointer register only.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}
