//! Signal names, both ways: the launcher parses `-s USR1`, the capture
//! library names its signals on stderr, readckpt names dispositions.

use core::fmt;

/// Names of signals 1..=31 (index 0 unused).
const NAMES: [&str; 32] = [
    "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
    "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH",
    "IO", "PWR", "SYS",
];
/// The value of a checkpoint signal sent with `sigqueue` that asks for this
/// checkpoint to stop the program (exit status 99) even under `--continue`:
/// ckpt-slurm's checkpoint before the time limit, after which the job is
/// requeued and nothing the program does may follow the image.
pub const STOP_AFTER: i32 = 0x434b_5054; // "CKPT"

/// glibc keeps 32 and 33 for itself: its SIGRTMIN is 34.
pub const RTMIN: i32 = 34;
pub const RTMAX: i32 = 64;

/// A signal given as a number or a name, any case, with or without `SIG`:
/// `10`, `USR1`, `SIGUSR1`, `IOT`, `RTMIN`, `RTMIN+2`, `RTMAX-1`.
pub fn parse(v: &[u8]) -> Option<i32> {
    let mut buf = [0u8; 16];
    let v = trim(v);
    if v.len() > buf.len() {
        return None;
    }
    let up = &mut buf[..v.len()];
    up.copy_from_slice(v);
    up.make_ascii_uppercase();
    let s = core::str::from_utf8(up).ok()?;
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let s = s.strip_prefix("SIG").unwrap_or(s);
    match s {
        "IOT" => return Some(6),
        "POLL" => return Some(29),
        _ => {}
    }
    if let Some(i) = NAMES.iter().position(|&n| !n.is_empty() && n == s) {
        return Some(i as i32);
    }
    let (base, rest, sign) = if let Some(rest) = s.strip_prefix("RTMIN") {
        (RTMIN, rest, '+')
    } else if let Some(rest) = s.strip_prefix("RTMAX") {
        (RTMAX, rest, '-')
    } else {
        return None;
    };
    let off: i32 = if rest.is_empty() { 0 } else { rest.strip_prefix(sign)?.parse().ok()? };
    let n = if sign == '+' { base + off } else { base - off };
    (RTMIN..=RTMAX).contains(&n).then_some(n)
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\n'] = v {
        v = rest;
    }
    v
}

/// Displays a signal's name: "SIGUSR2", "SIGRTMIN", "SIGRTMIN+3", or
/// "signal 32" for the ones without a name.
pub struct Name(pub i32);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            sig @ 1..=31 => write!(f, "SIG{}", NAMES[sig as usize]),
            RTMIN => f.write_str("SIGRTMIN"),
            sig @ 35..=RTMAX => write!(f, "SIGRTMIN+{}", sig - RTMIN),
            sig => write!(f, "signal {sig}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn both_ways() {
        for sig in 1..=RTMAX {
            let name = Name(sig).to_string();
            if sig != 32 && sig != 33 {
                assert_eq!(parse(name.as_bytes()), Some(sig), "{name}");
            }
        }
        assert_eq!(parse(b" usr1 "), Some(10));
        assert_eq!(parse(b"RTMAX-2"), Some(62));
        assert_eq!(parse(b"12"), Some(12));
        assert_eq!(parse(b"0"), None);
        assert_eq!(parse(b"65"), None);
        assert_eq!(parse(b"NOPE"), None);
        assert_eq!(Name(33).to_string(), "signal 33");
    }
}
