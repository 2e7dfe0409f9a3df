//! Reading `/proc/self/fdinfo/N` line by line, with raw system calls into a
//! caller's buffer (an epoll's interest list can be longer than any buffer:
//! lines are handed over as they complete), and the parsers of its fields.

use core::ffi::CStr;

use ckpt_sys::{self as sys, Errno};

use crate::msg;

/// Calls `each` with every line (without its newline) of descriptor `fd`'s
/// fdinfo; `buf` must hold the longest line.
pub fn for_each_line(fd: i32, buf: &mut [u8], mut each: impl FnMut(&[u8])) -> Result<(), Errno> {
    let mut path = [0u8; 40];
    let file = sys::open(fdinfo_path(fd, &mut path), sys::O_RDONLY | sys::O_CLOEXEC)?;
    let mut held = 0;
    let result = loop {
        if held == buf.len() {
            break Err(Errno::E2BIG); // a line longer than the buffer
        }
        let n = match sys::read(file, &mut buf[held..]) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => break Err(e),
        };
        let end = held + n;
        let mut start = 0;
        while let Some(nl) = buf[start..end].iter().position(|&c| c == b'\n') {
            each(&buf[start..start + nl]);
            start += nl + 1;
        }
        buf.copy_within(start..end, 0);
        held = end - start;
    };
    sys::close(file);
    if result.is_ok() && held > 0 {
        each(&buf[..held]);
    }
    result
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
