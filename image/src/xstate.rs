//! The extended register state in a signal frame, and how it moves between
//! CPUs.
//!
//! When the checkpoint signal arrives, the kernel saves the thread's x87,
//! SSE, AVX, AVX-512… registers into the signal frame, in the *standard*
//! (non-compacted) XSAVE format, and `rt_sigreturn` restores them from there:
//!
//! ```text
//! fpstate (64-byte aligned; uc_mcontext.fpregs points here)
//!    0  legacy area (FXSAVE): x87, MXCSR, xmm0-15              512 bytes
//!  464    └ sw_reserved: magic1, extended_size, xfeatures, xstate_size
//!  512  XSAVE header: xstate_bv, xcomp_bv (0), reserved         64 bytes
//!  576  component 2 (AVX: upper halves of ymm0-15)   ┐ offset and size of
//!   …   component i (opmask, ZMM_Hi256, Hi16_ZMM,    │ each: CPUID(0xD, i),
//!        PKRU, …)                                   ┘ not the same on all CPUs
//! xstate_size: FP_XSTATE_MAGIC2 (4 bytes)
//! ```
//!
//! Bit *i* of `xstate_bv` is clear when component *i* was in its initial
//! state (XINUSE), and its bytes are then meaningless. Where the offsets
//! differ (Intel puts the AVX-512 opmask at 1088, AMD at 832) or the sizes
//! do (the frame of a machine with AVX-512 is bigger than an AVX2
//! machine's kernel accepts), a frame must be laid out again for the CPU
//! that resumes it, which is what [`rewrite`] does.
//!
//! A component *in use* is one whose bit is set and whose bytes are not its
//! initial value (zero; for PKRU, also the kernel's default). An image
//! requires only the components its threads use: a program that never
//! touched an AVX-512 register resumes on a CPU without AVX-512.

use core::fmt;

use crate::Pod;

/// Components a layout describes: XCR0 bits 0..=31.
pub const NCOMP: usize = 32;
/// The legacy FXSAVE area.
pub const LEGACY_SIZE: usize = 512;
/// The legacy area plus the XSAVE header: the smallest XSAVE frame.
pub const MIN_XSAVE: usize = LEGACY_SIZE + 64;
/// Where the kernel's `struct _fpx_sw_bytes` is, in the legacy area.
pub const SW_BYTES: usize = 464;
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// The size of `FP_XSTATE_MAGIC2` after the XSAVE area.
pub const MAGIC2_SIZE: usize = 4;
/// Largest XSAVE area a frame may claim (AMX tile data included: ~11 KiB).
pub const MAX_XSAVE: usize = 16 << 10;
/// Offset in `struct ucontext` of `uc_mcontext.fpregs`, the XSAVE area's address.
pub const UC_FPSTATE: u64 = 224;

/// x87 and SSE: in every x86-64 CPU's XCR0, restored from the legacy area.
pub const FPSSE: u64 = 0b11;
pub const AVX: u64 = 1 << 2;
pub const AVX512: u64 = 0b111 << 5;
pub const PKRU: u64 = 1 << 9;
/// AMX tile data: a component the kernel enables per process on request.
pub const XTILEDATA: u64 = 1 << 18;
/// The kernel's initial PKRU (every key but 0 write- and access-disabled).
const PKRU_DEFAULT: u32 = 0x5555_5554;

/// Offset and size of one component in the standard format: CPUID(0xD, i)
/// EBX and EAX. All zero for a component the CPU does not have.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Component {
    pub offset: u32,
    pub size: u32,
}
// SAFETY: two u32, no padding.
unsafe impl Pod for Component {}

/// Where each component lives in one CPU's standard-format XSAVE area.
/// Entries 0 and 1 (x87, SSE) are the legacy area and stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub comps: [Component; NCOMP],
}
// SAFETY: an array of Pod.
unsafe impl Pod for Layout {}

impl Default for Layout {
    fn default() -> Self {
        Layout { comps: [Component::default(); NCOMP] }
    }
}

impl Layout {
    /// The layout CPUID describes: (offset, size) of each component.
    pub fn from_components(c: [(u32, u32); NCOMP]) -> Layout {
        Layout { comps: c.map(|(offset, size)| Component { offset, size }) }
    }

    /// The component `i` if it lies, whole, past the header and inside `size`.
    fn get(&self, i: usize, size: usize) -> Option<(usize, usize)> {
        let c = self.comps[i];
        let (off, len) = (c.offset as usize, c.size as usize);
        (len != 0 && off >= MIN_XSAVE && off + len <= size).then_some((off, len))
    }
    /// The end of the highest component of `features` (at least MIN_XSAVE),
    /// or None if one of them is not described.
    pub fn size_for(&self, features: u64) -> Option<usize> {
        let mut end = MIN_XSAVE;
        for i in bits(features & !FPSSE) {
            let c = self.comps[i];
            if c.size == 0 || (c.offset as usize) < MIN_XSAVE {
                return None;
            }
            end = end.max(c.offset as usize + c.size as usize);
        }
        Some(end)
    }
}

/// The set bits of `mask`, lowest first, below NCOMP.
fn bits(mask: u64) -> impl Iterator<Item = usize> {
    (0..NCOMP).filter(move |&i| mask & (1 << i) != 0)
}

/// What the kernel wrote in a frame's software bytes and XSAVE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// `sw_reserved.xfeatures`: the components this frame has room for.
    pub xfeatures: u64,
    /// `sw_reserved.xstate_size`: bytes of the XSAVE area (512: FXSAVE only).
    pub xstate_size: usize,
    /// The XSAVE header's `xstate_bv`: components not in their initial state.
    pub xstate_bv: u64,
}

impl Frame {
    /// An FXSAVE-only frame: the kernel found no XSAVE (or the magic is gone).
    const LEGACY: Frame = Frame { xfeatures: FPSSE, xstate_size: LEGACY_SIZE, xstate_bv: FPSSE };

    /// Reads the software bytes of an area of which `head` holds at least
    /// the first MIN_XSAVE bytes. The caller then needs `total_len()` bytes.
    pub fn parse_head(head: &[u8]) -> Result<Frame, XError> {
        if head.len() < MIN_XSAVE {
            return Err(XError::BadFrame);
        }
        if u32_at(head, SW_BYTES) != FP_XSTATE_MAGIC1 {
            return Ok(Frame::LEGACY);
        }
        let extended = u32_at(head, SW_BYTES + 4) as usize;
        let xfeatures = u64_at(head, SW_BYTES + 8);
        let xstate_size = u32_at(head, SW_BYTES + 16) as usize;
        if !(MIN_XSAVE..=MAX_XSAVE).contains(&xstate_size) || extended < xstate_size + MAGIC2_SIZE {
            return Err(XError::BadFrame);
        }
        // Standard format only: xcomp_bv and the next word are zero.
        if u64_at(head, LEGACY_SIZE + 8) != 0 || u64_at(head, LEGACY_SIZE + 16) != 0 {
            return Err(XError::BadFrame);
        }
        Ok(Frame { xfeatures: xfeatures | FPSSE, xstate_size, xstate_bv: u64_at(head, LEGACY_SIZE) | FPSSE })
    }

    /// Bytes of the frame to read: the area and, for XSAVE, its end marker.
    pub fn total_len(&self) -> usize {
        if self.xstate_size == LEGACY_SIZE {
            LEGACY_SIZE
        } else {
            self.xstate_size + MAGIC2_SIZE
        }
    }

    /// Parses a whole area (`total_len()` bytes at least) and checks it
    /// against the layout of the CPU that wrote it.
    pub fn parse(area: &[u8], layout: &Layout) -> Result<Frame, XError> {
        let f = Frame::parse_head(area)?;
        if area.len() < f.total_len() {
            return Err(XError::BadFrame);
        }
        if f.xstate_size == LEGACY_SIZE {
            return Ok(f);
        }
        if u32_at(area, f.xstate_size) != FP_XSTATE_MAGIC2 {
            return Err(XError::BadFrame);
        }
        for i in bits(f.xstate_bv & !FPSSE) {
            if f.xfeatures & (1 << i) == 0 || layout.get(i, f.xstate_size).is_none() {
                return Err(XError::Unknown(i as u32));
            }
        }
        Ok(f)
    }

    /// The components this frame holds in a non-initial state: x87 and SSE
    /// always (every x86-64 CPU restores them), others if their bit is set
    /// and their bytes are not their initial value.
    pub fn in_use(&self, area: &[u8], layout: &Layout) -> u64 {
        let mut used = FPSSE;
        for i in bits(self.xstate_bv & !FPSSE) {
            let Some((off, len)) = layout.get(i, self.xstate_size) else { continue };
            let bytes = &area[off..off + len];
            let initial = if 1 << i == PKRU {
                matches!(u32_at(bytes, 0), 0 | PKRU_DEFAULT)
            } else {
                bytes.iter().all(|&b| b == 0)
            };
            if !initial {
                used |= 1 << i;
            }
        }
        used
    }
}

/// The CPU a frame is to be resumed on.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The components this CPU and kernel restore from a frame (XCR0, less
    /// AMX tile data unless the process has asked for it).
    pub xfeatures: u64,
    pub layout: Layout,
}

impl Target {
    /// The XSAVE area size of a frame on this CPU.
    pub fn xstate_size(&self) -> usize {
        self.layout.size_for(self.xfeatures & !FPSSE).unwrap_or(MIN_XSAVE)
    }

    /// Whether the kernel resumes `f` (written with `src`'s layout) on this
    /// CPU exactly as it is: every component it holds is restored here, at
    /// the same place, and the area is not bigger than this kernel accepts.
    pub fn accepts(&self, f: &Frame, src: &Layout) -> bool {
        if f.xstate_size == LEGACY_SIZE {
            return true;
        }
        f.xstate_bv & !self.xfeatures == 0
            && f.xstate_size <= self.xstate_size()
            && bits(f.xstate_bv & !FPSSE).all(|i| src.comps[i] == self.layout.comps[i])
    }

    /// Bytes [`rewrite`] writes: the area and its end marker.
    pub fn frame_len(&self) -> usize {
        self.xstate_size() + MAGIC2_SIZE
    }
}

/// Lays out the frame area `src` (parsed as `f`, written with layout `from`)
/// again for `to`, into `dst` (at least `to.frame_len()` bytes, 64-byte
/// aligned by the caller). Components in use must exist on `to` with the
/// same size; those in their initial state are dropped.
pub fn rewrite(src: &[u8], f: &Frame, from: &Layout, to: &Target, dst: &mut [u8]) -> Result<(), XError> {
    let used = f.in_use(src, from);
    if used & !to.xfeatures != 0 {
        return Err(XError::Missing(used & !to.xfeatures));
    }
    let size = to.xstate_size();
    if dst.len() < size + MAGIC2_SIZE {
        return Err(XError::BadFrame);
    }
    dst[..size + MAGIC2_SIZE].fill(0);
    dst[..LEGACY_SIZE].copy_from_slice(&src[..LEGACY_SIZE]);
    let bv = (f.xstate_bv & to.xfeatures) | FPSSE;
    for i in bits(bv & !FPSSE) {
        let (Some((s, len)), Some((d, dlen))) = (from.get(i, f.xstate_size), to.layout.get(i, size)) else {
            return Err(XError::Unknown(i as u32));
        };
        if len != dlen {
            return Err(XError::SizeMismatch(i as u32));
        }
        dst[d..d + len].copy_from_slice(&src[s..s + len]);
    }
    put_u32(dst, SW_BYTES, FP_XSTATE_MAGIC1);
    put_u32(dst, SW_BYTES + 4, (size + MAGIC2_SIZE) as u32);
    dst[SW_BYTES + 8..SW_BYTES + 16].copy_from_slice(&to.xfeatures.to_le_bytes());
    put_u32(dst, SW_BYTES + 16, size as u32);
    dst[LEGACY_SIZE..LEGACY_SIZE + 8].copy_from_slice(&bv.to_le_bytes());
    put_u32(dst, size, FP_XSTATE_MAGIC2);
    Ok(())
}

/// Why a frame cannot be resumed on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XError {
    /// The software bytes, sizes or end marker are not what a kernel writes.
    BadFrame,
    /// The frame holds component i, which the image's layout does not describe.
    Unknown(u32),
    /// Component i has another size on this CPU.
    SizeMismatch(u32),
    /// The program uses these components, which this CPU lacks.
    Missing(u64),
    /// The program was held to x86-64 level .0 (`ckpt --portable`); this CPU is .1.
    Level(u32, u32),
}

/// The lowest x86-64 level that can resume the image `h` describes: its
/// threads' register state, and the level the program was held to.
pub fn required_level(h: &crate::Header) -> u32 {
    level_for(h.required_xfeatures).max(h.portable_level)
}

/// Whether a CPU enabling `xcr0`, of x86-64 `level`, can resume the image
/// `h` describes: it has every component the threads use, and the level the
/// program was held to. (The loader also checks each frame itself.)
pub fn check_cpu(h: &crate::Header, xcr0: u64, level: u32) -> Result<(), XError> {
    if h.required_xfeatures & !xcr0 != 0 {
        return Err(XError::Missing(h.required_xfeatures & !xcr0));
    }
    if h.portable_level > level {
        return Err(XError::Level(h.portable_level, level));
    }
    Ok(())
}

impl fmt::Display for XError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            XError::BadFrame => f.write_str("a saved register frame is corrupted (XSAVE area sizes or markers)"),
            XError::Unknown(i) => {
                write!(f, "a saved register frame holds XSAVE component {i}, which the image does not describe")
            }
            XError::SizeMismatch(i) => write!(
                f,
                "XSAVE component {i} ({}) has another size on this CPU than where the image was taken",
                component_name(i as usize)
            ),
            XError::Missing(m) => {
                f.write_str("this CPU lacks register state the program uses:")?;
                for name in names(m) {
                    write!(f, " {name}")?;
                }
                write!(f, " (XSAVE features {m:#x})")
            }
            XError::Level(need, have) => write!(
                f,
                "the program was run with ckpt --portable={} but this CPU is only {}",
                level_name(need),
                level_name(have)
            ),
        }
    }
}

/// The name of XSAVE component `i`.
pub fn component_name(i: usize) -> &'static str {
    match i {
        0 => "x87",
        1 => "SSE",
        2 => "AVX",
        3 => "MPX-BNDREGS",
        4 => "MPX-BNDCSR",
        5 => "AVX-512-opmask",
        6 => "AVX-512-ZMM_Hi256",
        7 => "AVX-512-Hi16_ZMM",
        8 => "PT",
        9 => "PKRU",
        10 => "PASID",
        11 => "CET-U",
        12 => "CET-S",
        13 => "HDC",
        14 => "UINTR",
        15 => "LBR",
        16 => "HWP",
        17 => "AMX-TILECFG",
        18 => "AMX-TILEDATA",
        19 => "APX",
        _ => "unknown",
    }
}

/// Short names of the feature groups in `mask` ("x87 SSE AVX AVX-512"),
/// each group once, components outside any group by their own name.
pub fn names(mask: u64) -> impl Iterator<Item = &'static str> {
    const GROUPS: [(u64, &str); 7] = [
        (1, "x87"),
        (2, "SSE"),
        (AVX, "AVX"),
        (0b11 << 3, "MPX"),
        (AVX512, "AVX-512"),
        (PKRU, "PKRU"),
        (0b11 << 17, "AMX"),
    ];
    let grouped: u64 = GROUPS.iter().map(|g| g.0).fold(0, |a, b| a | b);
    let groups = GROUPS.into_iter().filter(move |g| mask & g.0 != 0).map(|g| g.1);
    groups.chain(bits(mask & !grouped).map(component_name))
}

/// The x86-64 micro-architecture levels (psABI): 1 is baseline x86-64.
pub const LEVEL_NAMES: [&str; 5] = ["native", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"];

/// "x86-64-v3" for 3; "native" for 0 (no level chosen).
pub fn level_name(level: u32) -> &'static str {
    LEVEL_NAMES.get(level as usize).copied().unwrap_or("unknown")
}

/// 1..=4 for "x86-64" … "x86-64-v4" (also "v2", "2").
pub fn parse_level(s: &[u8]) -> Option<u32> {
    let s = s.strip_prefix(b"x86-64").map(|r| r.strip_prefix(b"-").unwrap_or(r)).unwrap_or(s);
    match s {
        b"" | b"v1" | b"1" => Some(1),
        b"v2" | b"2" => Some(2),
        b"v3" | b"3" => Some(3),
        b"v4" | b"4" => Some(4),
        _ => None,
    }
}

/// The lowest level whose CPUs have the register state `xfeatures`:
/// AVX needs v3, AVX-512 v4; x87 and SSE are baseline.
pub fn level_for(xfeatures: u64) -> u32 {
    if xfeatures & AVX512 != 0 {
        4
    } else if xfeatures & AVX != 0 {
        3
    } else {
        1
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    /// A layout from (component, offset, size) rows.
    fn layout(rows: &[(usize, u32, u32)]) -> Layout {
        let mut l = Layout::default();
        for &(i, offset, size) in rows {
            l.comps[i] = Component { offset, size };
        }
        l
    }
    /// Intel with AVX-512 and PKRU (and MPX's slots), XCR0 0x2ff.
    fn intel() -> Target {
        let rows =
            [(2, 576, 256), (3, 960, 64), (4, 1024, 64), (5, 1088, 64), (6, 1152, 512), (7, 1664, 1024), (9, 2688, 8)];
        Target { xfeatures: 0x2ff, layout: layout(&rows) }
    }
    /// AMD Zen 4 with AVX-512, no PKRU: the opmask right after AVX. XCR0 0xe7.
    fn amd() -> Target {
        Target { xfeatures: 0xe7, layout: layout(&[(2, 576, 256), (5, 832, 64), (6, 896, 512), (7, 1408, 1024)]) }
    }
    /// AVX2 only: XCR0 0x7.
    fn avx2() -> Target {
        Target { xfeatures: 0x7, layout: layout(&[(2, 576, 256)]) }
    }

    /// A frame as the kernel of `cpu` writes it, with `bv` set and each
    /// component of `filled` holding a pattern (the others zero).
    fn frame(cpu: &Target, bv: u64, filled: u64) -> Vec<u8> {
        let size = cpu.xstate_size();
        let mut a = vec![0u8; size + MAGIC2_SIZE];
        for (i, b) in a[..LEGACY_SIZE].iter_mut().enumerate() {
            *b = i as u8;
        }
        a[SW_BYTES..SW_BYTES + 48].fill(0);
        put_u32(&mut a, SW_BYTES, FP_XSTATE_MAGIC1);
        put_u32(&mut a, SW_BYTES + 4, (size + MAGIC2_SIZE) as u32);
        a[SW_BYTES + 8..SW_BYTES + 16].copy_from_slice(&cpu.xfeatures.to_le_bytes());
        put_u32(&mut a, SW_BYTES + 16, size as u32);
        a[LEGACY_SIZE..LEGACY_SIZE + 8].copy_from_slice(&(bv | FPSSE).to_le_bytes());
        for i in bits(filled & !FPSSE) {
            let (off, len) = cpu.layout.get(i, size).expect("component of this cpu");
            for (k, b) in a[off..off + len].iter_mut().enumerate() {
                *b = (k as u8) ^ (i as u8 * 37) | 1;
            }
        }
        put_u32(&mut a, size, FP_XSTATE_MAGIC2);
        a
    }

    fn moved(src: &[u8], from: &Target, to: &Target) -> Result<Vec<u8>, XError> {
        let f = Frame::parse(src, &from.layout)?;
        let mut dst = vec![0xeeu8; to.frame_len()];
        rewrite(src, &f, &from.layout, to, &mut dst)?;
        Ok(dst)
    }

    /// The bytes of component i of a frame in layout `l`.
    fn comp<'a>(a: &'a [u8], l: &Target, i: usize) -> &'a [u8] {
        let c = l.layout.comps[i];
        &a[c.offset as usize..(c.offset + c.size) as usize]
    }

    #[test]
    fn avx512_moves_between_intel_and_amd_layouts() {
        let src = frame(&intel(), 0xe7, 0xe7);
        let f = Frame::parse(&src, &intel().layout).unwrap();
        assert_eq!(f.in_use(&src, &intel().layout), 0xe7);
        assert!(!amd().accepts(&f, &intel().layout), "the opmask is elsewhere on AMD");
        let on_amd = moved(&src, &intel(), &amd()).unwrap();
        let g = Frame::parse(&on_amd, &amd().layout).unwrap();
        assert_eq!((g.xstate_bv, g.xstate_size, g.xfeatures), (0xe7, 2432, 0xe7));
        for i in [2, 5, 6, 7] {
            assert_eq!(comp(&on_amd, &amd(), i), comp(&src, &intel(), i), "component {i}");
        }
        assert_eq!(on_amd[..SW_BYTES], src[..SW_BYTES], "legacy area");
        let back = moved(&on_amd, &amd(), &intel()).unwrap();
        for i in [2, 5, 6, 7] {
            assert_eq!(comp(&back, &intel(), i), comp(&src, &intel(), i), "component {i} back");
        }
    }

    #[test]
    fn unused_components_are_dropped_for_a_smaller_cpu() {
        // glibc's EVEX string functions leave the AVX-512 bits set with zeros
        // in them after a vzeroupper: not in use.
        let src = frame(&intel(), FPSSE | AVX | AVX512 | PKRU, FPSSE | AVX);
        let f = Frame::parse(&src, &intel().layout).unwrap();
        assert_eq!(f.in_use(&src, &intel().layout), 0x7);
        assert!(!avx2().accepts(&f, &intel().layout));
        let out = moved(&src, &intel(), &avx2()).unwrap();
        let g = Frame::parse(&out, &avx2().layout).unwrap();
        assert_eq!((g.xstate_bv, g.xstate_size), (0x7, 832));
        assert_eq!(comp(&out, &avx2(), 2), comp(&src, &intel(), 2));
    }

    #[test]
    fn components_in_use_must_exist_here() {
        let src = frame(&amd(), 0xe7, 0xe7);
        assert_eq!(moved(&src, &amd(), &avx2()), Err(XError::Missing(0xe0)));
        let msg = std::format!("{}", XError::Missing(0xe0));
        assert!(msg.contains("AVX-512") && msg.contains("0xe0"), "{msg}");
    }

    #[test]
    fn pkru_at_its_default_is_not_in_use() {
        let mut src = frame(&intel(), 0x207, 0x7);
        let at = intel().layout.comps[9].offset as usize;
        put_u32(&mut src, at, PKRU_DEFAULT);
        let f = Frame::parse(&src, &intel().layout).unwrap();
        assert_eq!(f.in_use(&src, &intel().layout), 0x7);
        put_u32(&mut src, at, 0x5555_5550);
        assert_eq!(f.in_use(&src, &intel().layout), 0x207);
    }

    #[test]
    fn a_frame_this_cpu_takes_as_it_is() {
        let src = frame(&amd(), 0xe7, 0x7);
        let f = Frame::parse(&src, &amd().layout).unwrap();
        assert!(amd().accepts(&f, &amd().layout));
        // A smaller frame is fine on a bigger CPU with the same offsets.
        let small = frame(&avx2(), 0x7, 0x7);
        assert!(amd().accepts(&Frame::parse(&small, &avx2().layout).unwrap(), &avx2().layout));
    }

    #[test]
    fn corrupted_frames_are_refused() {
        let good = frame(&amd(), 0xe7, 0xe7);
        let l = &amd().layout;
        let mut no_magic2 = good.clone();
        put_u32(&mut no_magic2, 2432, 0);
        let mut compacted = good.clone();
        compacted[LEGACY_SIZE + 15] = 0x80;
        let mut too_big = good.clone();
        put_u32(&mut too_big, SW_BYTES + 16, 1 << 20);
        let mut extended_short = good.clone();
        put_u32(&mut extended_short, SW_BYTES + 4, 2432);
        for (what, a) in
            [("magic2", no_magic2), ("xcomp_bv", compacted), ("size", too_big), ("extended", extended_short)]
        {
            assert_eq!(Frame::parse(&a, l), Err(XError::BadFrame), "{what}");
        }
        let mut unknown = good.clone();
        unknown[LEGACY_SIZE + 1] |= 0x02; // bit 9, PKRU: no room for it on this layout
        assert_eq!(Frame::parse(&unknown, l), Err(XError::Unknown(9)));
        assert_eq!(Frame::parse(&good[..100], l), Err(XError::BadFrame));
        // A component whose size differs on the target.
        let mut odd = amd();
        odd.layout.comps[5].size = 128;
        let src = frame(&intel(), 0x27, 0x27);
        assert_eq!(moved(&src, &intel(), &odd), Err(XError::SizeMismatch(5)));
    }

    #[test]
    fn legacy_frames_go_anywhere() {
        let mut a = vec![0u8; MIN_XSAVE];
        put_u32(&mut a, SW_BYTES, 0);
        let f = Frame::parse(&a, &Layout::default()).unwrap();
        assert_eq!((f.xstate_size, f.total_len(), f.xstate_bv), (512, 512, FPSSE));
        assert!(avx2().accepts(&f, &Layout::default()));
    }

    #[test]
    fn levels_and_names() {
        assert_eq!((level_for(0x3), level_for(0x7), level_for(0xe7), level_for(0x203)), (1, 3, 4, 1));
        assert_eq!(parse_level(b"x86-64-v3"), Some(3));
        assert_eq!(parse_level(b"x86-64"), Some(1));
        assert_eq!(parse_level(b"v2"), Some(2));
        assert_eq!(parse_level(b"x86-64-v5"), None);
        assert_eq!(level_name(4), "x86-64-v4");
        let n: Vec<&str> = names(0x602e7 | 1 << 11).collect();
        assert_eq!(n, ["x87", "SSE", "AVX", "AVX-512", "PKRU", "AMX", "CET-U"]);
    }
}
