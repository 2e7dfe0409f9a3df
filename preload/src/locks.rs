//! File locks held through the program's regular files: `fcntl` record
//! locks, OFD locks and `flock` locks, one per `lock:` line of the
//! descriptor's fdinfo (which lists the locks taken through that open file
//! by this process), kept in the entry's `data` as `FileLock` records.
//!
//! ```text
//! lock:    1: POSIX  ADVISORY  WRITE 15492 fe:00:10011045 10 29
//! lock:    2: OFDLCK ADVISORY  READ  -1 fe:00:10011061 5 EOF
//! lock:    3: FLOCK  ADVISORY  WRITE 15492 fe:00:10011077 0 EOF
//! ```
//!
//! Runs inside the capture (raw system calls only, no allocation).

use ckpt_image::events::{FileLock, LOCK_FLOCK, LOCK_OFD, LOCK_POSIX};
use ckpt_image::{bytes_of, Fd, FdKind};
use ckpt_sys::Errno;

use crate::events::Appender;
use crate::fdinfo::{self, number};
use crate::files::Strings;

/// Records the locks of every regular file of the table (on the first of
/// the descriptors that share an open file).
pub fn capture(fds: &mut [Fd], strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<(), Errno> {
    for f in fds.iter_mut().filter(|f| f.kind == FdKind::File as u32 && f.shared == 0) {
        let mut list = Appender::default();
        let mut failed = None;
        let read = fdinfo::for_each_line(f.fd, scratch, |line| {
            if let Some(lock) = line.strip_prefix(b"lock:").and_then(parse) {
                if failed.is_none() {
                    failed = list.add(strings, bytes_of(&lock)).err();
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if read.is_ok() {
            f.data = list.whole;
        }
    }
    Ok(())
}

/// One lock line, after "lock:": "1: POSIX  ADVISORY  WRITE pid dev:ino start end".
pub(crate) fn parse(line: &[u8]) -> Option<FileLock> {
    let mut words = line.split(|c| c.is_ascii_whitespace()).filter(|w| !w.is_empty());
    let _id = words.next()?;
    let kind = match words.next()? {
        b"POSIX" => LOCK_POSIX,
        b"OFDLCK" => LOCK_OFD,
        b"FLOCK" => LOCK_FLOCK,
        _ => return None, // a lease, a blocked request ("->")…
    };
    let _advisory = words.next()?;
    let write = match words.next()? {
        b"WRITE" => 1,
        b"READ" => 0,
        _ => return None,
    };
    let (_pid, _file) = (words.next()?, words.next()?);
    let (start, _) = number(words.next()?, 10)?;
    let len = match words.next()? {
        b"EOF" => 0,
        end => number(end, 10)?.0.checked_sub(start)? + 1,
    };
    Some(FileLock { kind, write, start, len })
}
