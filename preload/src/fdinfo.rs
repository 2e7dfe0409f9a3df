//! Reading `/proc/self/fdinfo/N` line by line, with raw system calls into a
//! caller's buffer (an epoll's interest list can be longer than any buffer:
//! lines are handed over as they complete), and the parsers of its fields.

use core::ffi::CStr;

use ckpt_sys::{self as sys, Errno};

use crate::msg;

/// Calls `each` with every line (without its newline) of descriptor `fd`'s
/// fdinfo; `buf` must hold the longest line.
pub fn for_each_line(fd: i32, buf: &mut [u8], each: impl FnMut(&[u8])) -> Result<(), Errno> {
    let mut path = [0u8; 40];
    let file = sys::open(fdinfo_path(fd, &mut path), sys::O_RDONLY | sys::O_CLOEXEC)?;
    sys::lines::for_each(|b| sys::read(&file, b), buf, sys::lines::Long::Fail, each)
}

fn fdinfo_path(fd: i32, buf: &mut [u8; 40]) -> &CStr {
    msg::c_path(buf, format_args!("/proc/self/fdinfo/{fd}"), c"/proc/self/fdinfo")
}

/// The text after `key` (e.g. `b"ticks:"`) if `line` starts with it,
/// leading blanks removed.
pub fn field<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(key).map(trim)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(s.len());
    &s[start..]
}

/// The number at the start of `s` in `radix` (8, 10, 16; a `0x` before a
/// hexadecimal one is allowed), and the rest after it.
pub fn number(s: &[u8], radix: u32) -> Option<(u64, &[u8])> {
    let s = trim(s);
    let s = if radix == 16 { s.strip_prefix(b"0x").unwrap_or(s) } else { s };
    let len = s.iter().position(|c| !(*c as char).is_digit(radix)).unwrap_or(s.len());
    if len == 0 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[..len] {
        v = v.checked_mul(radix as u64)?.checked_add((c as char).to_digit(radix)? as u64)?;
    }
    Some((v, &s[len..]))
}

/// A signed decimal number at the start of `s`, and the rest.
pub fn signed(s: &[u8]) -> Option<(i64, &[u8])> {
    let s = trim(s);
    match s.strip_prefix(b"-") {
        Some(rest) => number(rest, 10).map(|(v, r)| (-(v as i64), r)),
        None => number(s, 10).map(|(v, r)| (v as i64, r)),
    }
}

/// The value after the word `key` anywhere in `line` (`"events:"`,
/// `"ino:"`), in `radix`.
pub fn after(line: &[u8], key: &[u8], radix: u32) -> Option<u64> {
    let at = line.windows(key.len()).position(|w| w == key)?;
    number(&line[at + key.len()..], radix).map(|(v, _)| v)
}

/// `(sec, nsec)` as fdinfo prints a timespec, in nanoseconds.
pub fn timespec_ns(s: &[u8]) -> Option<u64> {
    let s = trim(s).strip_prefix(b"(")?;
    let (sec, rest) = number(s, 10)?;
    let rest = trim(rest).strip_prefix(b",")?;
    let (nsec, _) = number(rest, 10)?;
    sec.checked_mul(1_000_000_000)?.checked_add(nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_numbers() {
        assert_eq!(field(b"ticks:\t3", b"ticks:"), Some(&b"3"[..]));
        assert_eq!(field(b"xticks: 3", b"ticks:"), None);
        assert_eq!(number(b" 0x1fz", 16), Some((0x1f, &b"z"[..])));
        assert_eq!(number(b"0755 rest", 8), Some((0o755, &b" rest"[..])));
        assert_eq!(number(b"18446744073709551616", 10), None, "overflow");
        assert_eq!(number(b"x", 10), None);
        assert_eq!(signed(b" -12,"), Some((-12, &b","[..])));
        assert_eq!(after(b"tfd:        5 events:       19 data: ffffffffffffffff", b"data:", 16), Some(u64::MAX));
        assert_eq!(after(b"tfd: 5 events: 19", b"ino:", 16), None);
        assert_eq!(timespec_ns(b" (1, 500)"), Some(1_000_000_500));
        assert_eq!(timespec_ns(b"(18446744073, 0)"), Some(18_446_744_073_000_000_000));
        assert_eq!(timespec_ns(b"(18446744074, 0)"), None, "overflow");
        assert_eq!(timespec_ns(b"1, 2"), None);
    }

    /// A real eventfd's fdinfo, read through a buffer smaller than the
    /// file: every line comes whole, the counter among them.
    #[test]
    #[cfg_attr(miri, ignore = "system calls (inline assembly)")]
    fn lines_of_a_real_fdinfo() {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0x2a, libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        let mut lines = std::vec::Vec::new();
        assert_eq!(for_each_line(fd, &mut [0u8; 64], |l| lines.push(l.to_vec())), Ok(()));
        let count = lines.iter().find_map(|l| field(l, b"eventfd-count:")).map(|v| number(v, 16));
        assert_eq!(count, Some(Some((0x2a, &b""[..]))), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with(b"pos:")) && lines.iter().all(|l| !l.contains(&b'\n')));
        assert_eq!(for_each_line(fd, &mut [0u8; 4], |_| {}), Err(Errno::E2BIG));
        sys::close(fd);
        assert_eq!(for_each_line(fd, &mut [0u8; 64], |_| {}), Err(Errno::ENOENT));
    }
}
