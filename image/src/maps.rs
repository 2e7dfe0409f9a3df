//! A parser for `/proc/self/maps`, without allocation: both the capture
//! library (in a signal handler) and the loader (before it has a heap of
//! consequence) read their own address space with it.

/// One line of `/proc/PID/maps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping<'a> {
    pub start: u64,
    pub end: u64,
    /// PROT_* bits (read 1, write 2, exec 4).
    pub prot: u32,
    pub shared: bool,
    pub offset: u64,
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`, `[stack]`, `[vdso]`…), empty for
    /// plain anonymous memory. A deleted file keeps its ` (deleted)` suffix.
    pub name: &'a [u8],
}

impl Mapping<'_> {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Backed by a file that can still be found by its path.
    pub fn is_file(&self) -> bool {
        self.name.first() == Some(&b'/')
    }
}

fn hex(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 16 {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)? as u64;
        Some(acc << 4 | d)
    })
}

fn dec(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(10)? as u64;
        acc.checked_mul(10)?.checked_add(d)
    })
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Option<Mapping<'_>> {
    let mut fields = line.splitn(6, |&c| c == b' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = hex(fields.next()?)?;
    let _dev = fields.next()?;
    let inode = dec(fields.next()?)?;
    let rest = fields.next().unwrap_or(&[]);
    let name_start = rest.iter().position(|&c| c != b' ').unwrap_or(rest.len());
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = hex(&range[..dash])?;
    let end = hex(&range[dash + 1..])?;
    if perms.len() != 4 || end < start {
        return None;
    }
    let mut prot = 0;
    if perms[0] == b'r' {
        prot |= 1;
    }
    if perms[1] == b'w' {
        prot |= 2;
    }
    if perms[2] == b'x' {
        prot |= 4;
    }
    Some(Mapping { start, end, prot, shared: perms[3] == b's', offset, inode, name: &rest[name_start..] })
}

/// The mappings of a whole `/proc/PID/maps` text, in order. Lines that do
/// not parse end the iteration (`Err` carries the offending line).
pub fn mappings(text: &[u8]) -> impl Iterator<Item = Result<Mapping<'_>, &[u8]>> {
    text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).map(|l| parse_line(l).ok_or(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_lines() {
        let text = b"556bfe50d000-556bfe50f000 r--p 00000000 fe:00 247030                     /usr/bin/cat\n\
7f6374ebb000-7f6374edd000 rw-p 00000000 00:00 0 \n\
7f6375123000-7f637512a000 r--s 00000000 fe:00 325745                     /usr/lib/gconv modules.cache\n\
7ffd4bbfa000-7ffd4bc1b000 rw-p 00000000 00:00 0                          [stack]\n\
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";
        let m: Result<std::vec::Vec<_>, _> = mappings(text).collect();
        let m = m.unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].start, 0x556bfe50d000);
        assert_eq!(m[0].prot, 1);
        assert!(m[0].is_file());
        assert_eq!(m[1].name, b"");
        assert_eq!(m[1].prot, 3);
        assert!(m[2].shared);
        assert_eq!(m[2].name, b"/usr/lib/gconv modules.cache");
        assert_eq!(m[3].name, b"[stack]");
        assert_eq!(m[4].prot, 4);
        assert_eq!(m[4].end, 0xffffffffff601000);
    }

    #[test]
    fn refuses_garbage() {
        assert!(parse_line(b"hello world").is_none());
        assert!(parse_line(b"1000-0 rw-p 0 0:0 0").is_none());
    }
}
