//! Fields of `/proc/PID/status` text, the one parser of it (the ticker,
//! ckpt-slurm and the tests read it through here).

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
}
