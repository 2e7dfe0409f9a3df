//! The format's checksum: XXH3-64 with seed 0, bit for bit the value of
//! `xxhash_rust::xxh3::xxh3_64`. Inputs longer than 240 bytes (every
//! extent) take XXH3's long path, which is written here three times over
//! one driver: for AVX-512 (one 512-bit accumulator), AVX2 (two 256-bit
//! ones), and otherwise the SSE2 form of xxhash-rust itself. Which one runs
//! is chosen at run time, once, from what this CPU and its OS enable
//! (`ckpt_sys::cpu::level`: x86-64-v4 has AVX-512F with ZMM state on,
//! x86-64-v3 AVX2 with YMM state on); nothing of the build machine is
//! baked in. Short inputs (the header, small tables) go to xxhash-rust.

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

use xxhash_rust::xxh3::xxh3_64;

/// The widths of the long path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    Sse2 = 1,
    Avx2 = 2,
    Avx512 = 3,
}

/// The width this CPU runs (0: not asked yet). It lives in the memory of
/// the process, so it goes into images too: a program restarted on another
/// CPU would find the old CPU's answer here. The capture library, which is
/// restarted with the program, asks again ([`recheck`]) at each checkpoint.
static WIDTH: AtomicU8 = AtomicU8::new(0);

/// The widest form this CPU and OS can run.
pub fn width() -> Width {
    match WIDTH.load(Relaxed) {
        1 => Width::Sse2,
        2 => Width::Avx2,
        3 => Width::Avx512,
        _ => recheck(),
    }
}

/// Asks the CPU again (CPUID, XGETBV: no system call, no allocation) and
/// keeps the answer: for code that may have been restarted on another CPU
/// since it last asked.
pub fn recheck() -> Width {
    let w = match ckpt_sys::cpu::level() {
        4 => Width::Avx512,
        3 => Width::Avx2,
        _ => Width::Sse2,
    };
    WIDTH.store(w as u8, Relaxed);
    w
}

/// XXH3-64 of `input` (seed 0).
pub fn checksum(input: &[u8]) -> u64 {
    if input.len() <= MID_SIZE_MAX {
        return xxh3_64(input);
    }
    checksum_as(width(), input).unwrap_or_else(|| xxh3_64(input))
}

/// XXH3-64 of `input` with the long path of width `w`, if this CPU has it
/// (for the tests and the benchmark, which compare the widths).
pub fn checksum_as(w: Width, input: &[u8]) -> Option<u64> {
    if input.len() <= MID_SIZE_MAX || w == Width::Sse2 {
        return Some(xxh3_64(input));
    }
    if (w as u8) > (width() as u8) {
        return None;
    }
    // SAFETY: the CPU and OS enable the instructions of width `w` (width()).
    Some(unsafe {
        match w {
            Width::Avx512 => long_avx512(input),
            _ => long_avx2(input),
        }
    })
}

const MID_SIZE_MAX: usize = 240;
const STRIPE: usize = 64;
const SECRET_SIZE: usize = 192;
const SECRET: [u8; SECRET_SIZE] = xxhash_rust::const_xxh3::const_custom_default_secret(0);
/// Stripes per block, each taking the secret 8 bytes further.
const STRIPES: usize = (SECRET_SIZE - STRIPE) / 8;
const BLOCK: usize = STRIPE * STRIPES;
const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;
const INITIAL_ACC: [u64; 8] = [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];

/// The eight 64-bit accumulators in vector registers of one width.
trait Lanes {
    type Acc: Copy;
    /// # Safety
    /// The CPU has the instructions (each implementation's feature).
    unsafe fn load(acc: &[u64; 8]) -> Self::Acc;
    /// # Safety
    /// As `load`.
    unsafe fn store(acc: Self::Acc, out: &mut [u64; 8]);
    /// One stripe: `input` and `secret` each have 64 readable bytes.
    /// # Safety
    /// As `load`, and those bytes readable.
    unsafe fn accumulate(acc: &mut Self::Acc, input: *const u8, secret: *const u8);
    /// # Safety
    /// As `accumulate`, for the secret.
    unsafe fn scramble(acc: &mut Self::Acc, secret: *const u8);
}

/// XXH3's long path (input longer than 240 bytes), on lanes `L`.
///
/// # Safety
/// The CPU has `L`'s instructions; inlined into a function that enables them.
#[inline(always)]
unsafe fn long<L: Lanes>(input: &[u8]) -> u64 {
    let (p, len, s) = (input.as_ptr(), input.len(), SECRET.as_ptr());
    // SAFETY: every stripe read lies inside `input` (len > 240 > 64) and
    // every secret read inside SECRET: the reference algorithm's offsets.
    unsafe {
        let mut acc = L::load(&INITIAL_ACC);
        let blocks = (len - 1) / BLOCK;
        for b in 0..blocks {
            for k in 0..STRIPES {
                L::accumulate(&mut acc, p.add(b * BLOCK + k * STRIPE), s.add(k * 8));
            }
            L::scramble(&mut acc, s.add(SECRET_SIZE - STRIPE));
        }
        let stripes = (len - 1 - blocks * BLOCK) / STRIPE;
        for k in 0..stripes {
            L::accumulate(&mut acc, p.add(blocks * BLOCK + k * STRIPE), s.add(k * 8));
        }
        L::accumulate(&mut acc, p.add(len - STRIPE), s.add(SECRET_SIZE - STRIPE - 7));
        let mut a = [0u64; 8];
        L::store(acc, &mut a);
        merge(&a, (len as u64).wrapping_mul(PRIME64_1))
    }
}

fn secret_u64(at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&SECRET[at..at + 8]);
    u64::from_le_bytes(b)
}

fn fold(a: u64, b: u64) -> u64 {
    let m = a as u128 * b as u128;
    m as u64 ^ (m >> 64) as u64
}

fn merge(acc: &[u64; 8], start: u64) -> u64 {
    let mut r = start;
    for i in 0..4 {
        let at = 11 + 16 * i;
        r = r.wrapping_add(fold(acc[2 * i] ^ secret_u64(at), acc[2 * i + 1] ^ secret_u64(at + 8)));
    }
    r ^= r >> 37;
    r = r.wrapping_mul(0x1656_6791_9E37_79F9);
    r ^ (r >> 32)
}

/// `_MM_SHUFFLE(1, 0, 3, 2)`: swaps the 64-bit halves of each 128 bits.
const SWAP64: i32 = 0b01_00_11_10;

struct Avx2;

impl Lanes for Avx2 {
    type Acc = [__m256i; 2];

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(acc: &[u64; 8]) -> Self::Acc {
        let p = acc.as_ptr() as *const __m256i;
        // SAFETY: 64 bytes of `acc`, unaligned loads.
        unsafe { [_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))] }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(acc: Self::Acc, out: &mut [u64; 8]) {
        let p = out.as_mut_ptr() as *mut __m256i;
        // SAFETY: 64 bytes of `out`, unaligned stores.
        unsafe { (_mm256_storeu_si256(p, acc[0]), _mm256_storeu_si256(p.add(1), acc[1])) };
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn accumulate(acc: &mut Self::Acc, input: *const u8, secret: *const u8) {
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: 32 bytes of each, inside the 64 the caller vouches for.
            let (data, key) = unsafe {
                (
                    _mm256_loadu_si256((input as *const __m256i).add(i)),
                    _mm256_loadu_si256((secret as *const __m256i).add(i)),
                )
            };
            let data_key = _mm256_xor_si256(data, key);
            let product = _mm256_mul_epu32(data_key, _mm256_srli_epi64::<32>(data_key));
            let swapped = _mm256_shuffle_epi32::<SWAP64>(data);
            *a = _mm256_add_epi64(product, _mm256_add_epi64(*a, swapped));
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn scramble(acc: &mut Self::Acc, secret: *const u8) {
        let prime = _mm256_set1_epi32(PRIME32_1 as i32);
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: 32 bytes of the secret, inside the 64 vouched for.
            let key = unsafe { _mm256_loadu_si256((secret as *const __m256i).add(i)) };
            let data_key = _mm256_xor_si256(_mm256_xor_si256(*a, _mm256_srli_epi64::<47>(*a)), key);
            let lo = _mm256_mul_epu32(data_key, prime);
            let hi = _mm256_mul_epu32(_mm256_srli_epi64::<32>(data_key), prime);
            *a = _mm256_add_epi64(lo, _mm256_slli_epi64::<32>(hi));
        }
    }
}

struct Avx512;

impl Lanes for Avx512 {
    type Acc = __m512i;

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(acc: &[u64; 8]) -> Self::Acc {
        // SAFETY: 64 bytes of `acc`, an unaligned load.
        unsafe { _mm512_loadu_si512(acc.as_ptr() as *const __m512i) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(acc: Self::Acc, out: &mut [u64; 8]) {
        // SAFETY: 64 bytes of `out`, an unaligned store.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, acc) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn accumulate(acc: &mut Self::Acc, input: *const u8, secret: *const u8) {
        // SAFETY: 64 bytes of each, as the caller vouches.
        let (data, key) =
            unsafe { (_mm512_loadu_si512(input as *const __m512i), _mm512_loadu_si512(secret as *const __m512i)) };
        let data_key = _mm512_xor_si512(data, key);
        let product = _mm512_mul_epu32(data_key, _mm512_srli_epi64::<32>(data_key));
        let swapped = _mm512_shuffle_epi32::<SWAP64>(data);
        *acc = _mm512_add_epi64(product, _mm512_add_epi64(*acc, swapped));
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn scramble(acc: &mut Self::Acc, secret: *const u8) {
        // SAFETY: 64 bytes of the secret, as the caller vouches.
        let key = unsafe { _mm512_loadu_si512(secret as *const __m512i) };
        // key ^ acc ^ (acc >> 47), in one instruction.
        let data_key = _mm512_ternarylogic_epi32::<0x96>(key, *acc, _mm512_srli_epi64::<47>(*acc));
        let prime = _mm512_set1_epi32(PRIME32_1 as i32);
        let lo = _mm512_mul_epu32(data_key, prime);
        let hi = _mm512_mul_epu32(_mm512_srli_epi64::<32>(data_key), prime);
        *acc = _mm512_add_epi64(lo, _mm512_slli_epi64::<32>(hi));
    }
}

/// # Safety
/// The CPU and OS enable AVX2; `input` is longer than 240 bytes.
#[target_feature(enable = "avx2")]
unsafe fn long_avx2(input: &[u8]) -> u64 {
    // SAFETY: AVX2 is enabled here (caller).
    unsafe { long::<Avx2>(input) }
}

/// # Safety
/// The CPU and OS enable AVX-512F; `input` is longer than 240 bytes.
#[target_feature(enable = "avx512f")]
unsafe fn long_avx512(input: &[u8]) -> u64 {
    // SAFETY: AVX-512F is enabled here (caller).
    unsafe { long::<Avx512>(input) }
}
