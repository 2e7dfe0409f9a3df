//! The CPU check, and each thread's saved registers made fit for this CPU.
//!
//! A thread resumes by `rt_sigreturn` on the signal frame the kernel built
//! when the checkpoint signal arrived. Its extended registers are in the
//! frame's XSAVE area, laid out for the CPU that took the image
//! (`ckpt_image::xstate`). Before the point of no return, [`plan`] reads
//! every thread's area from the image file and decides:
//!
//! * a component the program uses (not in its initial state) that this CPU
//!   lacks: refused, one line naming it;
//! * an area this kernel takes as it is (same CPU, or a smaller one with the
//!   same offsets): left alone;
//! * otherwise the area is laid out again for this CPU, into the loader's
//!   heap (64-byte aligned, as XRSTOR needs), components in their initial
//!   state dropped.
//!
//! After memory is restored, [`Frames::apply`] points each such frame's
//! `uc_mcontext.fpregs` at its new area; the kernel reads it once, at
//! `rt_sigreturn`, and the loader's heap stays mapped in the program:
//!
//! ```text
//!  thread stack (restored)                 loader heap (0x2000_…)
//!  ┌──────────────────────┐                ┌─────────────────────────┐
//!  │ ucontext  .fpregs ───┼──── moved ────►│ XSAVE area, this CPU's  │
//!  │ XSAVE area, old CPU  │                │ layout, + FP_XSTATE_MAGIC2
//!  └──────────────────────┘                └─────────────────────────┘
//! ```

use alloc::vec;
use alloc::vec::Vec;

use ckpt_image::xstate::{self, Frame, Layout, Target, MIN_XSAVE, UC_FPSTATE, XTILEDATA};
use ckpt_sys::{self as sys, msg::Line};

use crate::fail::Fail;
use crate::image::Image;

/// The frames [`plan`] laid out again, to be pointed at after the load.
pub struct Frames {
    moved: Vec<Moved>,
}

struct Moved {
    /// The frame's ucontext, and the address of its XSAVE area in it.
    ucontext: u64,
    fpstate: u64,
    /// The area as the image stores it: checked again once it is in memory.
    original: Vec<u8>,
    /// The new area, in the loader's heap (leaked: it is read at sigreturn).
    area: &'static [u8],
}

/// Checks every thread's registers against this CPU and lays out again the
/// frames that need it. Reads only; changes nothing but the loader's heap
/// (and, for an AMX program, asks the kernel for AMX state).
pub fn plan(img: &Image, verbose: bool) -> Result<Frames, Fail> {
    let h = &img.meta.header;
    let (xcr0, level) = (sys::cpu::xcr0(), sys::cpu::level());
    xstate::check_cpu(h, xcr0, level).map_err(Fail::Cpu)?;
    let mut here =
        Target { xfeatures: xcr0 & !XTILEDATA, layout: Layout::from_components(sys::cpu::xstate_components()) };
    let mut moved = Vec::new();
    for t in img.meta.threads() {
        let mut word = [0u8; 8];
        img.read_memory(t.ucontext + UC_FPSTATE, &mut word)?;
        let fpstate = u64::from_le_bytes(word);
        if fpstate == 0 {
            continue; // no FPU state saved: the kernel starts it afresh
        }
        let bad = || Fail::Cpu(xstate::XError::BadFrame);
        if !fpstate.is_multiple_of(64) {
            return Err(bad());
        }
        let mut area = vec![0u8; MIN_XSAVE];
        img.read_memory(fpstate, &mut area)?;
        let head = Frame::parse_head(&area).map_err(Fail::Cpu)?;
        area.resize(head.total_len().max(MIN_XSAVE), 0);
        img.read_memory(fpstate, &mut area).map_err(|_| bad())?;
        let f = Frame::parse(&area, &h.xlayout).map_err(Fail::Cpu)?;
        if f.xstate_bv & XTILEDATA != 0 && here.xfeatures & XTILEDATA == 0 && xcr0 & XTILEDATA != 0 {
            // The program had asked for AMX: so does this process, or the
            // kernel would not take a frame that holds tile data.
            if sys::cpu::request_xcomp_perm(18).is_ok() {
                here.xfeatures |= XTILEDATA;
            }
        }
        let used = f.in_use(&area, &h.xlayout);
        if used & !here.xfeatures != 0 {
            return Err(Fail::Cpu(xstate::XError::Missing(used & !here.xfeatures)));
        }
        if here.accepts(&f, &h.xlayout) {
            continue;
        }
        let mut buf = vec![0u8; here.frame_len() + 63];
        let skip = (64 - buf.as_ptr() as usize % 64) % 64;
        xstate::rewrite(&area, &f, &h.xlayout, &here, &mut buf[skip..]).map_err(Fail::Cpu)?;
        // Leaked, read-only from here: the kernel reads it at rt_sigreturn,
        // after the loader's last word (leaking does not move the buffer).
        let buf: &'static [u8] = buf.leak();
        moved.push(Moved { ucontext: t.ucontext, fpstate, original: area, area: &buf[skip..] });
    }
    if h.portable_level == 0 && h.cpu_level > level {
        let mut l = Line::new();
        let _ = core::fmt::Write::write_fmt(
            &mut l,
            format_args!(
                "restart: warning: the program ran on an {} CPU without ckpt --portable; code it chose for that CPU may fail on this {} one",
                xstate::level_name(h.cpu_level),
                xstate::level_name(level)
            ),
        );
        l.emit();
    }
    if verbose && !moved.is_empty() {
        let mut l = Line::new();
        let _ = core::fmt::Write::write_fmt(
            &mut l,
            format_args!("restart: {} register frames laid out again for this CPU", moved.len()),
        );
        l.emit();
    }
    Ok(Frames { moved })
}

impl Frames {
    /// Points each moved frame at its new XSAVE area.
    ///
    /// # Safety
    /// The program's memory must be restored (the frames are in it).
    pub unsafe fn apply(&self) -> Result<(), Fail> {
        for m in &self.moved {
            // SAFETY: the area lies in restored memory: plan read it from
            // the image's stored extents, which are mapped and loaded now.
            let now = unsafe { core::slice::from_raw_parts(m.fpstate as *const u8, m.original.len()) };
            if now != m.original.as_slice() {
                return Err(Fail::Msg("the image changed while it was being restarted (a saved register frame)"));
            }
            // SAFETY: the ucontext is in restored writable memory (validated
            // with the thread table); fpregs is its 8-byte aligned field.
            unsafe { core::ptr::write_volatile((m.ucontext + UC_FPSTATE) as *mut u64, m.area.as_ptr() as u64) };
        }
        Ok(())
    }
}
