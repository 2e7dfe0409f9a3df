//! The memory functions the compiler calls (`memcpy` and friends). With no
//! libc, the loader brings its own; `rep movsb`/`rep stosb` are fast on
//! every CPU with ERMSB and cannot be turned back into calls to themselves.
//!
//! A crate of their own, `#![no_builtins]` (as `compiler_builtins` is): LLVM
//! turns loops that copy, fill (and in time maybe compare or measure)
//! memory into calls to these functions, which inside one of them would be
//! a call to itself. No loop here becomes a library call; the rest of the
//! loader keeps the compiler's builtins and its link-time optimisation
//! (rustc leaves a `no_builtins` crate out of LTO: see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), no_std)]
#![no_builtins]

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `n` bytes readable at `src` and writable at `dst`, not overlapping.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract: n bytes valid at both, not overlapping.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`, which may overlap.
///
/// # Safety
/// `n` bytes readable at `src` and writable at `dst`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
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

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// `n` bytes writable at `dst`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract: n bytes writable at dst.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// Compares `n` bytes at `a` and `b`: the difference of the first pair
/// that differs, or 0.
///
/// # Safety
/// `n` bytes readable at both.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller's contract: n bytes readable at both.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// Whether `n` bytes at `a` and `b` differ (non-zero if they do).
///
/// # Safety
/// `n` bytes readable at both.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// The length of the NUL-terminated string at `s`.
///
/// # Safety
/// `s` points to a NUL-terminated string.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller's contract: s is NUL-terminated.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg_attr(miri, ignore = "system calls (inline assembly)")]
    fn memory_functions() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        for n in [0, 1, 15, 16, 17, 255, 300] {
            let mut dst = vec![0u8; 300];
            // SAFETY: n bytes at both, apart.
            unsafe { super::memcpy(dst.as_mut_ptr(), src.as_ptr(), n) };
            assert_eq!(&dst[..n], &src[..n]);
            assert!(dst[n..].iter().all(|&b| b == 0), "memcpy wrote past {n}");
            // Overlapping moves, both ways.
            for (from, to) in [(0, 5), (5, 0), (0, 0)] {
                let mut buf = src.clone();
                let n = n.min(300 - from.max(to));
                let mut want = src.clone();
                want.copy_within(from..from + n, to);
                // SAFETY: n bytes at both places, inside buf.
                unsafe { super::memmove(buf.as_mut_ptr().add(to), buf.as_ptr().add(from), n) };
                assert_eq!(buf, want, "memmove of {n} from {from} to {to}");
            }
            let mut buf = src.clone();
            // SAFETY: n bytes in buf.
            unsafe { super::memset(buf.as_mut_ptr().add(3), 0x1ab, n.min(297)) };
            assert!(buf[3..3 + n.min(297)].iter().all(|&b| b == 0xab) && buf[..3] == src[..3]);
        }
        let (a, b) = (b"abcd\0", b"abce\0");
        // SAFETY: 5 bytes at both; NUL-terminated.
        unsafe {
            assert_eq!(super::memcmp(a.as_ptr(), b.as_ptr(), 3), 0);
            assert!(super::memcmp(a.as_ptr(), b.as_ptr(), 5) < 0 && super::bcmp(b.as_ptr(), a.as_ptr(), 4) > 0);
            assert_eq!(super::strlen(a.as_ptr()), 4);
            assert_eq!(super::strlen([0u8].as_ptr()), 0);
        }
    }
}
