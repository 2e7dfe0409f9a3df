//! Reading the process's own `/proc` files with raw system calls into
//! caller-provided buffers.

use core::ffi::CStr;

use ckpt_image::MmLayout;
use ckpt_sys::{self as sys, Errno};

/// Reads a whole file into `buf`; fails with E2BIG if it does not fit.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    let fd = sys::open(path, sys::O_RDONLY)?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            break Err(Errno::E2BIG);
        }
        match sys::read(&fd, &mut buf[len..]) {
            Ok(0) => break Ok(len),
            Ok(n) => len += n,
            Err(Errno::EINTR) => {}
            Err(e) => break Err(e),
        }
    }
}

/// The numeric fields of a `/proc/PID/stat` text, by their number in
/// proc(5) (field 3, the state letter, is returned apart; a field that is
/// not a number reads as 0).
pub fn stat_fields(path: &CStr, buf: &mut [u8]) -> Result<(u8, [u64; 53]), Errno> {
    let n = read_file(path, buf)?;
    let text = &buf[..n];
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')'. The field after it is field 3.
    let close = text.iter().rposition(|&c| c == b')').ok_or(Errno::EINVAL)?;
    let mut fields = [0u64; 53];
    let mut state = 0;
    for (i, f) in text[close + 1..].split(|&c| c == b' ' || c == b'\n').filter(|f| !f.is_empty()).enumerate() {
        if i == 0 {
            state = f[0];
        }
        if let Some(slot) = fields.get_mut(i + 3) {
            *slot = f
                .iter()
                .try_fold(0u64, |a, &c| if c.is_ascii_digit() { Some(a * 10 + (c - b'0') as u64) } else { None })
                .unwrap_or(0);
        }
    }
    Ok((state, fields))
}

/// The memory layout fields of `/proc/self/stat` (see proc(5): fields 26-28
/// and 45-51), plus the current break.
pub fn mm_layout(buf: &mut [u8]) -> Result<MmLayout, Errno> {
    let (_, fields) = stat_fields(c"/proc/self/stat", buf)?;
    Ok(MmLayout {
        start_code: fields[26],
        end_code: fields[27],
        start_stack: fields[28],
        start_data: fields[45],
        end_data: fields[46],
        start_brk: fields[47],
        arg_start: fields[48],
        arg_end: fields[49],
        env_start: fields[50],
        env_end: fields[51],
        brk: sys::brk(0),
    })
}

/// The threads of this process: a listing of `/proc/self/task`.
pub struct Tasks {
    fd: sys::OwnedFd,
}

impl Tasks {
    pub fn open() -> Result<Tasks, Errno> {
        sys::open(c"/proc/self/task", sys::O_RDONLY | sys::O_DIRECTORY).map(|fd| Tasks { fd })
    }

    /// The same listing of any directory of numbered entries
    /// (`/proc/PID/fd`).
    pub fn dir(path: &CStr) -> Result<Tasks, Errno> {
        sys::open(path, sys::O_RDONLY | sys::O_DIRECTORY).map(|fd| Tasks { fd })
    }

    /// The same listing of `/proc`: every process's pid.
    pub fn processes() -> Result<Tasks, Errno> {
        sys::open(c"/proc", sys::O_RDONLY | sys::O_DIRECTORY).map(|fd| Tasks { fd })
    }

    /// Fills `out` with the next tids (using `buf` for the raw entries);
    /// returns how many, 0 at the end.
    pub fn next_batch(&mut self, buf: &mut [u8], out: &mut [u32]) -> Result<usize, Errno> {
        // Each linux_dirent64 of a tid is at most 32 bytes: read no more
        // entries than `out` can take.
        let len = buf.len().min(out.len() * 24);
        loop {
            let n = sys::getdents64(&self.fd, &mut buf[..len])?;
            if n == 0 {
                return Ok(0);
            }
            let mut count = 0;
            for tid in sys::dirent_names(&buf[..n]).filter_map(parse_u32) {
                if count == out.len() {
                    break;
                }
                out[count] = tid;
                count += 1;
            }
            if count > 0 {
                return Ok(count);
            }
        }
    }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(
        0u32,
        |a, &c| if c.is_ascii_digit() { a.checked_mul(10)?.checked_add((c - b'0') as u32) } else { None },
    )
}
