//! The memory functions the compiler calls (`memcpy` and friends). With no
//! libc, the loader brings its own; `rep movsb`/`rep stosb` are fast on
//! every CPU with ERMSB and cannot be turned back into calls to themselves.

use core::arch::asm;

#[cfg_attr(not(test), no_mangle)]
pub(crate) unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract: n bytes valid at both, not overlapping.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

#[cfg_attr(not(test), no_mangle)]
pub(crate) unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: no forward overlap: a forward copy is correct.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: copy backwards (direction flag set and cleared around it).
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dst.add(n).wrapping_sub(1) => _,
             inout("rsi") src.add(n).wrapping_sub(1) => _, options(nostack));
    }
    dst
}

#[cfg_attr(not(test), no_mangle)]
pub(crate) unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract: n bytes writable at dst.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

#[cfg_attr(not(test), no_mangle)]
pub(crate) unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller's contract: n bytes readable at both.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

#[cfg_attr(not(test), no_mangle)]
pub(crate) unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

#[cfg_attr(not(test), no_mangle)]
pub(crate) unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller's contract: s is NUL-terminated.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}
