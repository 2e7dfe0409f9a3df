//! Fields of `/proc/PID/status` text, the one parser of it (the capture,
//! the ticker, ckpt-slurm and the tests read it through here).

use core::ffi::CStr;

/// The value of field `name` (`SigCgt`, `State`...), without the blanks
/// around it.
pub fn field<'t>(text: &'t [u8], name: &[u8]) -> Option<&'t [u8]> {
    let line = text.split(|&c| c == b'\n').find_map(|l| l.strip_prefix(name)?.strip_prefix(b":"))?;
    let start = line.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    Some(&line[start..end])
}

/// A hex mask field (`SigCgt`, `ShdPnd`...).
pub fn hex(text: &[u8], name: &[u8]) -> Option<u64> {
    number(field(text, name)?, 16)
}

/// A decimal field (`voluntary_ctxt_switches`...).
pub fn decimal(text: &[u8], name: &[u8]) -> Option<u64> {
    number(field(text, name)?, 10)
}

fn number(digits: &[u8], radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |acc, &c| acc.checked_mul(radix as u64)?.checked_add((c as char).to_digit(radix)? as u64))
}

/// The hex mask fields `names` of the status file at `path`, read once,
/// with no allocation and no lock (the capture reads it in its signal
/// handler): line by line through a small buffer, a line longer than the
/// buffer (`Groups`, `Cpus_allowed` on a big machine) passed over. `None`
/// for a field missing or malformed, or all when the file cannot be read.
pub fn read_hex<const N: usize>(path: &CStr, names: [&[u8]; N]) -> [Option<u64>; N] {
    let Ok(fd) = crate::open(path, crate::O_RDONLY) else { return [None; N] };
    scan_hex(|buf| crate::read(&fd, buf), names)
}

/// [`read_hex`] over `read`, which fills a buffer as read(2) does.
fn scan_hex<const N: usize>(
    read: impl FnMut(&mut [u8]) -> crate::Result<usize>,
    names: [&[u8]; N],
) -> [Option<u64>; N] {
    let mut found = [None; N];
    let each = |line: &[u8]| {
        for (slot, name) in found.iter_mut().zip(names) {
            *slot = slot.or_else(|| hex(line, name));
        }
    };
    match crate::lines::for_each(read, &mut [0u8; 512], crate::lines::Long::Skip, each) {
        Ok(()) => found,
        Err(_) => [None; N],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_status_file() {
        let text = b"Name:\tx\nState:\tS (sleeping)\nShdPnd:\t0000000000000800\nSigCgt:\t0000000180000200\n\
                     voluntary_ctxt_switches:\t42\n";
        assert_eq!(hex(text, b"SigCgt"), Some(0x1_8000_0200));
        assert_eq!(hex(text, b"ShdPnd"), Some(0x800));
        assert_eq!(hex(text, b"SigPnd"), None);
        assert_eq!(decimal(text, b"voluntary_ctxt_switches"), Some(42));
        assert_eq!(field(text, b"State"), Some(&b"S (sleeping)"[..]));
        assert_eq!(hex(b"XSigCgt:\t1\n", b"SigCgt"), None);
        assert_eq!(hex(b"SigCgt:\tzz\n", b"SigCgt"), None);
    }

    /// The status text given to scan_hex `chunk` bytes at a time.
    fn scanned<const N: usize>(text: &[u8], chunk: usize, names: [&[u8]; N]) -> [Option<u64>; N] {
        let mut rest = text;
        scan_hex(
            |buf| {
                let n = rest.len().min(chunk).min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                Ok(n)
            },
            names,
        )
    }

    #[test]
    fn read_line_by_line() {
        // A Groups line longer than the buffer, which holds 512 bytes: its
        // rest is passed over, even where it looks like a field.
        let mut text = [0u8; 1100];
        let parts: [&[u8]; 4] = [b"Name:\tx\nGroups:\t", &[b'7'; 504], b"SigPnd:\t5\n", b"SigPnd:\t1\nShdPnd:\t4200\n"];
        let mut len = 0;
        for p in parts {
            text[len..len + p.len()].copy_from_slice(p);
            len += p.len();
        }
        let tail = b"SigCgt:\t00000000fffffeff";
        text[len..len + tail.len()].copy_from_slice(tail);
        let text = &text[..len + tail.len()];
        for chunk in [1, 7, 100, 512, 4096] {
            let got = scanned(text, chunk, [b"SigPnd", b"ShdPnd", b"SigCgt", b"SigBlk"]);
            assert_eq!(got, [Some(1), Some(0x4200), Some(0xffff_feff), None], "chunks of {chunk}");
        }
        assert_eq!(scanned(b"ShdPnd:\t12\n", 3, [b"ShdPnd"]), [Some(0x12)]);
        assert_eq!(scanned(b"", 3, [b"ShdPnd"]), [None]);
    }
}
