//! What the kernel would refuse of the memory layout an image asks for,
//! found before the point of no return: after it, a refused mapping could
//! only end the half-built process. Three limits, each asked of the kernel
//! itself where it can be (capabilities and sysctls change the answers):
//!
//! * the lowest address: below `vm.mmap_min_addr` only a process with
//!   `CAP_SYS_RAWIO` may map; a page is mapped there and unmapped again;
//! * the number of mappings: each region is at least one of the kernel's
//!   VMAs, and the loader keeps a few of its own; `vm.max_map_count` is the
//!   most a process may have;
//! * the size: each large region is mapped once, with the flags it will
//!   have, wherever the kernel likes, and unmapped again, so the kernel's
//!   overcommit accounting and `RLIMIT_AS` judge it; the sum of all regions
//!   is compared with `RLIMIT_AS`.

use core::fmt::Write;

use ckpt_image::{Meta, Region, PAGE_SIZE};
use ckpt_sys::{self as sys, msg::Line, Errno};

use crate::fail::Fail;
use crate::memory::{map_flags, map_prot};

/// Mappings of the loader that outlive the restart (its sections, stack,
/// heap, thread stacks, the reserved rest of its range), with room to spare.
const LOADER_MAPS: u64 = 32;
/// Regions smaller than this are not probed one by one: no kernel limit
/// can refuse them that would not refuse the loader's own heap first.
const PROBE_FROM: u64 = 64 << 20;
const RLIMIT_AS: i32 = 9;

pub fn check(meta: &Meta) -> Result<(), Fail> {
    lowest_address(meta)?;
    map_count(meta)?;
    sizes(meta)
}

fn refuse(r: &Region, why: &str) -> Fail {
    let mut l = Line::new();
    let _ = write!(l, "memory region {:x}-{:x} {why}", r.start, r.end);
    crate::fail::composed(&l)
}

fn lowest_address(meta: &Meta) -> Result<(), Fail> {
    let Some(r) = meta.regions().next() else { return Ok(()) };
    // SAFETY: NOREPLACE never replaces a mapping; PROT_NONE, unmapped at once.
    let probe = unsafe {
        sys::mmap(
            r.start,
            PAGE_SIZE,
            sys::PROT_NONE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE | sys::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    match probe {
        Ok(at) => {
            // SAFETY: the page just mapped (or, on a kernel that took the
            // address as a hint, wherever it went), ours alone.
            let _ = unsafe { sys::munmap(at, PAGE_SIZE) };
            Ok(())
        }
        Err(Errno::EPERM) | Err(Errno::EACCES) => Err(refuse(
            &r,
            "lies below the lowest address this kernel lets the program map (vm.mmap_min_addr in /proc/sys/vm)",
        )),
        // Taken by the loader itself (it is unmapped at the restart), or a
        // failure the real mapping will report.
        Err(_) => Ok(()),
    }
}

fn map_count(meta: &Meta) -> Result<(), Fail> {
    let Some(max) = read_number(c"/proc/sys/vm/max_map_count") else { return Ok(()) };
    let need = meta.n_regions() as u64 + LOADER_MAPS;
    if need > max {
        let mut l = Line::new();
        let _ = write!(
            l,
            "the image has {} memory regions, more than this kernel lets a process map (vm.max_map_count = {max})",
            meta.n_regions()
        );
        return Err(crate::fail::composed(&l));
    }
    Ok(())
}

fn sizes(meta: &Meta) -> Result<(), Fail> {
    let total: u64 = meta.regions().map(|r| r.len()).sum();
    if let Ok(lim) = sys::prlimit64(0, RLIMIT_AS, None) {
        if total > lim.soft {
            let mut l = Line::new();
            let _ = write!(
                l,
                "the image's memory ({} MiB) is more than this process may map (RLIMIT_AS {} MiB)",
                total >> 20,
                lim.soft >> 20
            );
            return Err(crate::fail::composed(&l));
        }
    }
    for r in meta.regions().filter(|r| r.len() >= PROBE_FROM) {
        let flags = map_flags(&r);
        // SAFETY: a new mapping where the kernel likes (no address given),
        // unmapped at once.
        match unsafe { sys::mmap(0, r.len(), map_prot(&r), flags, -1, 0) } {
            Ok(at) => {
                // SAFETY: the mapping just made, ours alone.
                let _ = unsafe { sys::munmap(at, r.len()) };
            }
            Err(Errno::ENOMEM) => {
                return Err(refuse(
                    &r,
                    "is larger than this machine lets a process map (memory overcommit or address space)",
                ))
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// A number in a /proc file.
fn read_number(path: &core::ffi::CStr) -> Option<u64> {
    let fd = sys::open(path, sys::O_RDONLY).ok()?;
    let mut buf = [0u8; 32];
    let n = sys::read(fd, &mut buf);
    let text = core::str::from_utf8(buf.get(..n.ok()?)?).ok()?;
    text.trim().parse().ok()
}
