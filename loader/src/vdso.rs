//! The kernel's special mappings: `[vvar]`, `[vvar_vclock]` and `[vdso]`.
//!
//! They are never stored in an image: their contents belong to the running
//! kernel (vvar pages may even fault when read). The program's code holds
//! addresses inside its old vDSO, so the loader moves its *own* mappings,
//! each whole, to where the image had them (`mremap` keeps the kernel's
//! bookkeeping right). The vDSO code finds its data at fixed offsets from
//! itself, so the set moves together: the layout (order, sizes, distances)
//! must be the same in this process as in the image, or the restart stops
//! here with a clear error, before anything changed.
//!
//! ```text
//!   this process             scratch (loader range)       image addresses
//!   [vvar][vvar_vclock][vdso] ──park──► [..][..][..] ──place──► [..][..][..]
//! ```
//! Parking first means the moves never overlap, wherever ASLR put the two.

use alloc::vec::Vec;

use ckpt_image::maps;
use ckpt_image::{Meta, RegionKind, LOADER_SCRATCH};
use ckpt_sys as sys;

use crate::fail::{self, Fail};

#[derive(Clone, Copy)]
struct Special {
    kind: RegionKind,
    /// Where the loader's own mapping is now.
    here: u64,
    len: u64,
    /// Where the image wants it.
    there: u64,
}

pub struct Plan {
    specials: Vec<Special>,
}

const MAX_SPECIALS: usize = 8;

fn kind_of(name: &[u8]) -> Option<RegionKind> {
    match name {
        b"[vvar]" => Some(RegionKind::Vvar),
        b"[vvar_vclock]" => Some(RegionKind::VvarVclock),
        b"[vdso]" => Some(RegionKind::Vdso),
        _ => None,
    }
}

/// Matches this process's special mappings with the image's.
pub fn plan(meta: &Meta) -> Result<Plan, Fail> {
    let mut text = alloc::vec![0u8; 64 << 10];
    let n = read_own_maps(&mut text)?;
    let mut specials = Vec::new();
    for m in maps::mappings(&text[..n]) {
        let m = m.map_err(|_| Fail::Msg("cannot parse /proc/self/maps"))?;
        if let Some(kind) = kind_of(m.name) {
            if specials.len() == MAX_SPECIALS {
                return Err(Fail::Msg("too many vDSO mappings in this process"));
            }
            specials.push(Special { kind, here: m.start, len: m.len(), there: 0 });
        }
    }
    let wanted = meta.regions().filter(|r| r.kind().is_some_and(|k| k.is_vdso()));
    let mut i = 0;
    let mut base_here = 0;
    let mut base_there = 0;
    for r in wanted {
        let same = specials.get(i).is_some_and(|s| {
            if i == 0 {
                base_here = s.here;
                base_there = r.start;
            }
            Some(s.kind) == r.kind() && s.len == r.len() && s.here - base_here == r.start - base_there
        });
        if !same {
            return Err(Fail::Msg(
                "this kernel's vDSO layout differs from the image's (was it taken under another kernel?)",
            ));
        }
        specials[i].there = r.start;
        i += 1;
    }
    if i != specials.len() && i != 0 {
        return Err(Fail::Msg(
            "this kernel's vDSO layout differs from the image's (was it taken under another kernel?)",
        ));
    }
    // An image without a vDSO (booted with vdso=0): drop ours with the rest.
    specials.truncate(i);
    Ok(Plan { specials })
}

pub fn read_own_maps(buf: &mut [u8]) -> Result<usize, Fail> {
    let fd = sys::open(c"/proc/self/maps", sys::O_RDONLY).map_err(fail::sys("cannot read /proc/self/maps"))?;
    let mut len = 0;
    loop {
        match sys::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(Fail::Sys("cannot read /proc/self/maps", e)),
        }
        if len == buf.len() {
            return Err(Fail::Msg("/proc/self/maps of the loader is unexpectedly large"));
        }
    }
    Ok(len)
}

impl Plan {
    /// Moves the special mappings into the loader's scratch area, keeping
    /// their distances.
    ///
    /// # Safety
    /// Nothing may use the vDSO until [`Plan::place`] (the loader does not).
    pub unsafe fn park(&mut self) -> Result<(), Fail> {
        let Some(first) = self.specials.first().map(|s| s.here) else { return Ok(()) };
        for s in self.specials.iter_mut() {
            let scratch = LOADER_SCRATCH + (s.here - first);
            // SAFETY: the scratch area is inside the loader's range and empty.
            s.here = unsafe { sys::mremap_fixed(s.here, s.len, scratch) }.map_err(fail::sys("cannot move the vDSO"))?;
        }
        Ok(())
    }

    /// Moves the parked mappings to the image's addresses.
    ///
    /// # Safety
    /// Everything outside the loader's range must be unmapped already.
    pub unsafe fn place(&self) -> Result<(), Fail> {
        for s in &self.specials {
            // SAFETY: the target range is empty (all unmapped) and checked
            // to lie outside the loader's range.
            unsafe { sys::mremap_fixed(s.here, s.len, s.there) }
                .map_err(fail::sys("cannot move the vDSO into place"))?;
        }
        Ok(())
    }
}
