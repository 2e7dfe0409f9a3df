//! What this CPU is, as CPUID and XGETBV tell: the register state the OS
//! enables, where XSAVE puts each component, its x86-64 level, its name.
//! (Instructions, not system calls; they live here beside `arch_prctl` as
//! the other facts about the machine the capture and the loader ask for.)

use core::arch::x86_64::{__cpuid, __cpuid_count};

/// XCR0: the state components the OS enables for XSAVE.
pub fn xcr0() -> u64 {
    if __cpuid(1).ecx & (1 << 27) == 0 {
        return 0b11; // no OSXSAVE: x87 and SSE only, saved by FXSAVE
    }
    let (lo, hi): (u32, u32);
    // SAFETY: with OSXSAVE set, xgetbv with ecx=0 reads XCR0; no side effects.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// (offset, size) of each XSAVE component in the standard format, CPUID
/// leaf 0xD; (0, 0) for components this CPU does not have, and for the
/// legacy x87/SSE area (0 and 1) and supervisor components.
pub fn xstate_components() -> [(u32, u32); 32] {
    let mut out = [(0, 0); 32];
    if __cpuid(0).eax < 0xd {
        return out;
    }
    let have = xcr0();
    for (i, c) in out.iter_mut().enumerate().skip(2) {
        if have & (1 << i) != 0 {
            let r = __cpuid_count(0xd, i as u32);
            *c = (r.ebx, r.eax);
        }
    }
    out
}

/// The x86-64 micro-architecture level (1 to 4) this CPU and OS support,
/// by the psABI's feature lists.
pub fn level() -> u32 {
    let l1 = __cpuid(1);
    let max = __cpuid(0).eax;
    let l7 = if max >= 7 { __cpuid_count(7, 0).ebx } else { 0 };
    let ext = if __cpuid(0x8000_0000).eax >= 0x8000_0001 { __cpuid(0x8000_0001).ecx } else { 0 };
    let all = |reg: u32, bits: &[u32]| bits.iter().all(|b| reg & (1 << b) != 0);
    let xcr0 = xcr0();
    // SSE3 CX16 SSSE3 SSE4.1 SSE4.2 POPCNT; LAHF-SAHF.
    let v2 = all(l1.ecx, &[0, 9, 13, 19, 20, 23]) && all(ext, &[0]);
    // FMA MOVBE OSXSAVE AVX F16C; BMI1 AVX2 BMI2; LZCNT; YMM state enabled.
    let v3 = v2 && all(l1.ecx, &[12, 22, 27, 28, 29]) && all(l7, &[3, 5, 8]) && all(ext, &[5]) && xcr0 & 0x6 == 0x6;
    // AVX512F DQ CD BW VL; opmask and ZMM state enabled.
    let v4 = v3 && all(l7, &[16, 17, 28, 30, 31]) && xcr0 & 0xe0 == 0xe0;
    1 + v2 as u32 + v3 as u32 + v4 as u32
}

/// The processor brand string ("AMD EPYC 9R14 96-Core Processor"), NUL padded.
pub fn brand() -> [u8; 48] {
    let mut out = [0u8; 48];
    if __cpuid(0x8000_0000).eax < 0x8000_0004 {
        return out;
    }
    for (k, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let r = __cpuid(leaf);
        for (j, reg) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
            out[k * 16 + j * 4..k * 16 + j * 4 + 4].copy_from_slice(&reg.to_le_bytes());
        }
    }
    out
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM)`: asks the kernel for a dynamically
/// enabled XSAVE component (AMX tile data, 18) for this process.
pub fn request_xcomp_perm(component: u64) -> crate::Result<()> {
    const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
    // SAFETY: reads no memory; only this process's permissions change.
    unsafe { crate::arch_prctl(ARCH_REQ_XCOMP_PERM as i32, component) }.map(|_| ())
}
