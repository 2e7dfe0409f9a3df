//! The restarted program's own pid in its environment (`CKPT_PID`).
//!
//! libckpt.so arms only the process whose pid is `CKPT_PID`, so that the
//! children that inherit `LD_PRELOAD` are left alone. After a restart with
//! new pids (the fallback) the pid is restart's: a program that re-execs
//! itself (same pid, new image) would find the pre-restart pid there and
//! run unarmed. So the value is
//! rewritten in place, in the restored environment strings (the kernel's
//! `env_start..env_end`, which `environ` points into), before the program
//! runs (in namespace mode it is the same pid again). ckpt writes it
//! zero-padded to 10 digits, so that any pid fits; an image from an earlier
//! ckpt gets the new pid only where it fits.

use ckpt_image::{Meta, PROT_WRITE};

const KEY: &[u8] = b"CKPT_PID=";

/// Puts `pid` into the `CKPT_PID=` string of the restored environment.
///
/// # Safety
/// The image's memory must be in place (after `memory::restore`), and
/// nothing of the program may run yet.
pub unsafe fn update_ckpt_pid(meta: &Meta, pid: u32) {
    let (start, end) = (meta.header.mm.env_start, meta.header.mm.env_end);
    // Only memory that is the image's own and writable.
    let writable = meta.regions().any(|r| r.start <= start && end <= r.end && r.prot & PROT_WRITE != 0);
    if start >= end || !writable {
        return;
    }
    // SAFETY: the range lies in a restored, writable region of the image,
    // which nothing else references now.
    let env = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, (end - start) as usize) };
    for var in env.split_mut(|&c| c == 0) {
        if var.starts_with(KEY) {
            let digits = &mut var[KEY.len()..];
            if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                write_padded(digits, pid);
            }
        }
    }
}

/// Writes `n` into all of `digits`, zero-padded; leaves them if it does not fit.
fn write_padded(digits: &mut [u8], mut n: u32) {
    let mut out = [b'0'; 20];
    let width = digits.len().min(out.len());
    for d in out[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    if n == 0 && width == digits.len() {
        digits.copy_from_slice(&out[..width]);
    }
}

#[cfg(test)]
mod tests {
    use super::write_padded;

    /// The restarted program's CKPT_PID keeps its width: zero-padded, or
    /// left as it was when the new pid has more digits.
    #[test]
    fn a_pid_fills_the_digits_it_replaces() {
        let mut digits = *b"0000000";
        write_padded(&mut digits, 4321);
        assert_eq!(&digits, b"0004321");
        let mut digits = *b"99";
        write_padded(&mut digits, 123);
        assert_eq!(&digits, b"99", "too wide: left as it was");
        let mut digits = *b"123";
        write_padded(&mut digits, 0);
        assert_eq!(&digits, b"000");
    }
}
