//! Where an image is written, and how, in a directory other users may write
//! to (a sticky `1777` one): nothing is ever opened through a name someone
//! else could have planted.
//!
//! 1. **Check the targets.** The image path and, with `--keep`, the older
//!    images' names must each be absent or a regular file of the caller's
//!    own (effective uid). A symbolic link is always refused (it would be
//!    replaced, not followed: give the real path); a file of another user is
//!    refused unless `--allow-foreign-output` (`CKPT_ALLOW_FOREIGN_OUTPUT`).
//! 2. **Sweep.** Temporaries of this image left by a checkpoint that was
//!    killed mid-write (`IMAGE.<hex>.tmp`, owned by the caller, and not
//!    locked by a checkpoint in progress) are removed.
//! 3. **Create** the temporary: an unnamed `O_TMPFILE` file in the image's
//!    directory where the file system supports it (a checkpoint killed
//!    mid-write leaves nothing), else `IMAGE.<16 random hex>.tmp` created
//!    with `O_CREAT|O_EXCL|O_NOFOLLOW` (never an existing file, never
//!    through a link). Either way `fchmod 0600` follows, whatever the umask,
//!    and the writer holds an `flock` on it until the end, which tells the
//!    sweep of another process that it is not stale.
//! 4. **Commit.** An `O_TMPFILE` file gets its random temporary name with
//!    `linkat` (which never replaces anything: EEXIST, another name); then
//!    the older images move along (`--keep`), and `rename` puts the
//!    temporary over the image atomically. `linkat` straight to the image
//!    path is not used because it cannot replace the previous image.
//!
//! Raw system calls only, no allocation: this runs in the capture.

use core::ffi::CStr;

use ckpt_sys::{self as sys, BorrowedFd, Errno, OwnedFd};

use crate::capture::{failed, refuse, Failure};

/// Room for one path: PATH_MAX, a suffix, the NUL.
pub const NAME_BUF: usize = 4200;
/// Hex digits of a random temporary name.
const RANDOM_DIGITS: usize = 16;

/// Appends to a fixed buffer (what does not fit is cut; the caller sizes
/// the buffer for the longest path).
struct Cursor<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(self.buf.len().saturating_sub(self.pos + 1));
        self.buf[self.pos..self.pos + n].copy_from_slice(&bytes[..n]);
        self.pos += n;
        self
    }

    fn number(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    fn hex(&mut self, n: u64) -> &mut Self {
        let mut digits = [0u8; RANDOM_DIGITS];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = b"0123456789abcdef"[(n >> (60 - 4 * i)) as usize & 15];
        }
        self.push(&digits)
    }

    /// Ends the string with a NUL; it is `buf[..len+1]`.
    fn finish(self) -> usize {
        let len = self.pos;
        if self.pos < self.buf.len() {
            self.buf[self.pos] = 0;
        }
        len
    }
}

fn cstr(buf: &[u8], len: usize) -> &CStr {
    CStr::from_bytes_with_nul(&buf[..len + 1]).unwrap_or(c"")
}

/// 64 unpredictable bits: the kernel's random pool (never blocking), mixed
/// with the clock should it not be ready yet. The names they make are
/// created exclusively anyway; unpredictability only keeps another user
/// from planting something at the name in advance.
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let got = sys::getrandom(&mut b);
    let r = u64::from_le_bytes(b);
    if got == Ok(8) {
        r
    } else {
        (sys::clock_ns(sys::CLOCK_MONOTONIC) ^ sys::clock_ns(sys::CLOCK_REALTIME).rotate_left(29))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ ((sys::gettid() as u64) << 32)
    }
}

/// The image's temporary file, open for writing.
pub struct Temp {
    pub fd: OwnedFd,
    /// Whether it has a name yet (the fallback path, or after linking).
    named: bool,
}

/// The image path, its directory, and its temporary's name, as C strings.
pub struct Output {
    path: [u8; NAME_BUF],
    path_len: usize,
    dir: [u8; NAME_BUF],
    dir_len: usize,
    tmp: [u8; NAME_BUF],
    tmp_len: usize,
    keep: u32,
    allow_foreign: bool,
    /// A delta's parent (the image at the path when it was taken, open),
    /// and its identity; None: a full image. (Dropped, so closed, when a
    /// checkpoint fails before its commit: it must not stay open in the
    /// program.)
    parent_fd: Option<OwnedFd>,
    parent_id: u64,
}

impl Output {
    pub fn new(path: &[u8], keep: u32, allow_foreign: bool) -> Result<Output, Failure> {
        if path.is_empty() || path.len() > 4096 {
            return Err(refuse("image path empty or too long"));
        }
        let mut o = Output {
            path: [0; NAME_BUF],
            path_len: 0,
            dir: [0; NAME_BUF],
            dir_len: 0,
            tmp: [0; NAME_BUF],
            tmp_len: 0,
            keep,
            allow_foreign,
            parent_fd: None,
            parent_id: 0,
        };
        let slash = path.iter().rposition(|&c| c == b'/').unwrap_or(0);
        let dir: &[u8] = if slash == 0 { b"/" } else { &path[..slash] };
        let mut c = Cursor { buf: &mut o.path, pos: 0 };
        c.push(path);
        o.path_len = c.finish();
        let mut c = Cursor { buf: &mut o.dir, pos: 0 };
        c.push(dir);
        o.dir_len = c.finish();
        Ok(o)
    }

    pub fn path(&self) -> &CStr {
        cstr(&self.path, self.path_len)
    }
    pub fn dir(&self) -> &CStr {
        cstr(&self.dir, self.dir_len)
    }
    fn tmp(&self) -> &CStr {
        cstr(&self.tmp, self.tmp_len)
    }
    /// The file name of the image (after the last slash).
    fn base(&self) -> &[u8] {
        let path = &self.path[..self.path_len];
        &path[path.iter().rposition(|&c| c == b'/').map_or(0, |p| p + 1)..]
    }

    /// The chain name of the image of identity `id` (a delta's parent):
    /// `<image file name>.<16 hex digits of id>`, beside the image.
    pub fn parent_name<'b>(&self, id: u64, buf: &'b mut [u8; NAME_BUF]) -> &'b [u8] {
        let mut c = Cursor { buf: &mut buf[..], pos: 0 };
        c.push(self.base()).push(b".").hex(id);
        let len = c.finish();
        &buf[..len]
    }

    /// Whether `name` is a chain name of this image (`parent_name`).
    fn is_parent_name(&self, name: &[u8]) -> Option<u64> {
        let digits = name.strip_prefix(self.base())?.strip_prefix(b".")?;
        if digits.len() != RANDOM_DIGITS {
            return None;
        }
        digits.iter().try_fold(0u64, |n, &d| Some(n << 4 | (d as char).to_digit(16)? as u64))
    }

    /// The image being written is a delta on the image open at `fd`, of
    /// identity `id`: the commit gives that one its chain name first.
    pub fn set_parent(&mut self, fd: OwnedFd, id: u64) {
        self.parent_fd = Some(fd);
        self.parent_id = id;
    }

    /// Makes a new random temporary name, `<path>.<16 hex>.tmp`.
    fn new_tmp_name(&mut self) {
        let mut c = Cursor { buf: &mut self.tmp, pos: 0 };
        c.push(&self.path[..self.path_len]).push(b".").hex(random_u64()).push(b".tmp");
        self.tmp_len = c.finish();
    }

    /// The name of older image number `i` (--keep), in `buf`: the number
    /// goes before the extension of the file name (`myckpt.dat` →
    /// `myckpt.1.dat`), or at the end if it has none (`job` → `job.1`).
    fn numbered<'b>(&self, i: u32, buf: &'b mut [u8; NAME_BUF]) -> &'b CStr {
        let path = &self.path[..self.path_len];
        let base = path.len() - self.base().len();
        let cut = match path[base..].iter().rposition(|&c| c == b'.') {
            Some(d) if d > 0 => base + d,
            _ => path.len(),
        };
        let mut c = Cursor { buf: &mut buf[..], pos: 0 };
        c.push(&path[..cut]).push(b".").number(i as u64).push(&path[cut..]);
        let len = c.finish();
        cstr(&buf[..], len)
    }

    /// Step 1: the image path and the older images' names are absent or
    /// regular files of the caller's.
    pub fn check_targets(&self) -> Result<(), Failure> {
        self.check_target(self.path(), "the image path")?;
        let mut buf = [0u8; NAME_BUF];
        for i in 1..self.keep {
            self.check_target(self.numbered(i, &mut buf), "an older image's name (--keep)")?;
        }
        Ok(())
    }

    fn check_target(&self, path: &CStr, what: &'static str) -> Result<(), Failure> {
        let st = match sys::lstat(path) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(failed("examining the image path")(e)),
        };
        let bad = match st.mode & sys::S_IFMT {
            sys::S_IFLNK => " is a symbolic link; give the path of the file itself",
            sys::S_IFREG if st.uid == sys::geteuid() || self.allow_foreign => return Ok(()),
            sys::S_IFREG => " is a file of another user (replace it with --allow-foreign-output)",
            _ => " is not a regular file",
        };
        Err(Failure::named(what, bad))
    }

    /// Step 2: removes this image's temporaries left by checkpoints that
    /// were killed while writing: `<image>.<hex digits>.tmp`, regular files
    /// of the caller's that no checkpoint in progress holds locked (a
    /// restarted copy of the same program may be writing the same image).
    /// `scratch` holds the directory listing. Best effort: nothing here
    /// fails a checkpoint.
    pub fn remove_stale(&self, scratch: &mut [u8]) {
        let Ok(dir) = sys::open(self.dir(), sys::O_RDONLY | sys::O_DIRECTORY) else { return };
        let me = sys::geteuid();
        const NAME_MAX: usize = 255;
        let mut name_buf = [0u8; NAME_MAX + 1];
        while let Ok(n @ 1..) = sys::getdents64(&dir, scratch) {
            let names = sys::dirent_names(&scratch[..n]);
            for name in names.filter(|name| name.len() <= NAME_MAX && self.is_temporary(name)) {
                name_buf[..name.len()].copy_from_slice(name);
                name_buf[name.len()] = 0;
                remove_if_stale(dir.borrow(), cstr(&name_buf, name.len()), me);
            }
        }
    }

    /// Whether `name` is `<image name>.<hex digits>.tmp` (the random names,
    /// and the `<pid>` ones of earlier versions).
    fn is_temporary(&self, name: &[u8]) -> bool {
        let Some(rest) = name.strip_prefix(self.base()).and_then(|r| r.strip_prefix(b".")) else { return false };
        let Some(digits) = rest.strip_suffix(b".tmp") else { return false };
        !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_hexdigit)
    }

    /// Step 3: the temporary file, mode 0600, locked.
    pub fn create(&mut self) -> Result<Temp, Failure> {
        let creating = failed("creating the image file");
        let unnamed = sys::openat(sys::AT_FDCWD, self.dir(), sys::O_TMPFILE | sys::O_WRONLY, 0o600);
        let temp = match unnamed {
            Ok(fd) => Temp { fd, named: false },
            // No O_TMPFILE on this file system (or kernel): a random name.
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                let mut tries = 0;
                loop {
                    self.new_tmp_name();
                    let flags = sys::O_WRONLY | sys::O_CREAT | sys::O_EXCL | sys::O_NOFOLLOW;
                    match sys::openat(sys::AT_FDCWD, self.tmp(), flags, 0o600) {
                        Ok(fd) => break Temp { fd, named: true },
                        Err(Errno::EEXIST) if tries < 16 => tries += 1,
                        Err(e) => return Err(creating(e)),
                    }
                }
            }
            Err(e) => return Err(creating(e)),
        };
        // The mode the file was created with is 0600 less the umask: with a
        // umask of 0777 that would be an image nobody can read.
        let ready = sys::fchmod(&temp.fd, 0o600).and_then(|()| sys::flock(&temp.fd, sys::LOCK_EX | sys::LOCK_NB));
        match ready {
            Ok(()) => Ok(temp),
            Err(e) => {
                self.abandon(temp);
                Err(failed("setting the image file's mode")(e))
            }
        }
    }

    /// Step 4: the complete, synced temporary becomes the image (and the
    /// older images move along, --keep). On failure the temporary is gone
    /// and the previous image is where it was.
    pub fn commit(&mut self, mut temp: Temp) -> Result<(), Failure> {
        let done = self.name_temp(&mut temp).and_then(|()| self.link_parent()).and_then(|()| {
            if self.keep > 1 {
                self.rotate()?;
            }
            sys::renameat(self.tmp(), self.path()).map_err(failed("renaming the image into place"))
        });
        if done.is_err() {
            self.abandon(temp);
            return done;
        }
        drop(temp);
        if let Ok(dir) = sys::open(self.dir(), sys::O_RDONLY | sys::O_DIRECTORY) {
            let _ = sys::fsync(dir);
        }
        Ok(())
    }

    /// A delta's parent gets its chain name, beside the image: a hard link
    /// to the very file the delta was computed from (through its open
    /// descriptor). A file already at that name must be the same image.
    fn link_parent(&mut self) -> Result<(), Failure> {
        let Some(parent) = self.parent_fd.take() else { return Ok(()) };
        let mut proc_path = [0u8; 32];
        let mut c = Cursor { buf: &mut proc_path, pos: 0 };
        c.push(b"/proc/self/fd/").number(parent.as_raw() as u64);
        let len = c.finish();
        let mut name = [0u8; NAME_BUF];
        let mut c = Cursor { buf: &mut name, pos: 0 };
        c.push(&self.path[..self.path_len - self.base().len()]);
        let mut id_name = [0u8; NAME_BUF];
        c.push(self.parent_name(self.parent_id, &mut id_name));
        let name_len = c.finish();
        let target = cstr(&name, name_len);
        let linked = sys::linkat(cstr(&proc_path, len), target, sys::AT_SYMLINK_FOLLOW);
        let same = |st: sys::Stat| sys::fstat(&parent).is_ok_and(|p| p.ino == st.ino && p.dev == st.dev);
        match linked {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) if sys::lstat(target).is_ok_and(same) => Ok(()),
            Err(e) => Err(failed("linking the previous image as the delta's parent")(e)),
        }
    }

    /// With `--incremental`, after a commit: removes this image's chain
    /// files (`parent_name`) that no kept image (the image, and with
    /// `--keep` the numbered ones) names as a parent any more. Regular
    /// files of the caller's only; best effort, as [`remove_stale`].
    pub fn remove_unused_parents(&self, scratch: &mut [u8]) {
        let Ok(dir) = sys::open(self.dir(), sys::O_RDONLY | sys::O_DIRECTORY) else { return };
        let me = sys::geteuid();
        let mut name_buf = [0u8; 256];
        while let Ok(n @ 1..) = sys::getdents64(&dir, scratch) {
            for name in sys::dirent_names(&scratch[..n]).filter(|name| name.len() < 256) {
                let Some(id) = self.is_parent_name(name) else { continue };
                if self.kept_images_name(id) {
                    continue;
                }
                name_buf[..name.len()].copy_from_slice(name);
                name_buf[name.len()] = 0;
                let name = cstr(&name_buf, name.len());
                let ours = |st: sys::Stat| st.mode & sys::S_IFMT == sys::S_IFREG && st.uid == me;
                if sys::fstatat(&dir, name, sys::AT_SYMLINK_NOFOLLOW).is_ok_and(ours) {
                    let _ = sys::unlinkat(&dir, name);
                }
            }
        }
    }

    /// Whether the image or a kept older one names the image of identity
    /// `id` as a parent (an image that cannot be read counts as naming it).
    fn kept_images_name(&self, id: u64) -> bool {
        let mut buf = [0u8; NAME_BUF];
        (0..self.keep).any(|i| {
            let path = if i == 0 { self.path() } else { self.numbered(i, &mut buf) };
            let Ok(fd) = sys::open(path, sys::O_RDONLY | sys::O_NOFOLLOW | sys::O_NONBLOCK) else {
                return false; // absent: names nothing
            };
            let mut head = [0u8; ckpt_image::HEADER_SIZE];
            let h = sys::fstat(&fd)
                .ok()
                .filter(|_| sys::pread(&fd, &mut head, 0).ok() == Some(head.len()))
                .and_then(|st| ckpt_image::Header::parse(&head, st.size as u64).ok());
            h.is_none_or(|h| h.parents[..h.chain_depth as usize].iter().any(|p| p.id == id))
        })
    }

    /// Gives an `O_TMPFILE` file a random temporary name (through
    /// `/proc/self/fd`, which needs no privilege, unlike `AT_EMPTY_PATH`).
    fn name_temp(&mut self, temp: &mut Temp) -> Result<(), Failure> {
        if temp.named {
            return Ok(());
        }
        let mut buf = [0u8; 32];
        let mut c = Cursor { buf: &mut buf, pos: 0 };
        c.push(b"/proc/self/fd/").number(temp.fd.as_raw() as u64);
        let len = c.finish();
        let mut tries = 0;
        loop {
            self.new_tmp_name();
            match sys::linkat(cstr(&buf, len), self.tmp(), sys::AT_SYMLINK_FOLLOW) {
                Ok(()) => {
                    temp.named = true;
                    return Ok(());
                }
                Err(Errno::EEXIST) if tries < 16 => tries += 1,
                Err(e) => return Err(failed("linking the image file into its directory")(e)),
            }
        }
    }

    /// Closes and removes the temporary (a failed checkpoint).
    pub fn abandon(&self, temp: Temp) {
        if temp.named {
            let _ = sys::unlink(self.tmp());
        }
        drop(temp);
    }

    /// Makes room for the new image when `keep` images are kept: the image
    /// numbered keep-2 becomes keep-1 (replacing the oldest), ..., 1 becomes
    /// 2, and the current image is linked as 1. A hard link, not a rename:
    /// the image path never disappears, the rename of the new image replaces
    /// it atomically. (Where hard links are not supported, the image is
    /// renamed to 1, and for a moment there is no image at the path.)
    /// Missing images are skipped. Any other error stops the checkpoint; at
    /// worst the older images were shifted, the current one is still at
    /// the path. The names were checked (`check_targets`): none is a link
    /// or another user's file, and a rename or link never follows one.
    fn rotate(&self) -> Result<(), Failure> {
        let mut from = [0u8; NAME_BUF];
        let mut to = [0u8; NAME_BUF];
        for i in (1..self.keep - 1).rev() {
            match sys::renameat(self.numbered(i, &mut from), self.numbered(i + 1, &mut to)) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(failed("moving the previous images along (--keep)")(e)),
            }
        }
        let first = self.numbered(1, &mut to);
        let linked = match sys::linkat(self.path(), first, 0) {
            Err(Errno::EEXIST) => {
                // keep == 2: the one numbered 1 is the oldest, dropped now.
                let _ = sys::unlink(first);
                sys::linkat(self.path(), first, 0)
            }
            other => other,
        };
        match linked {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(_) => match sys::renameat(self.path(), first) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(failed("keeping the previous image (--keep)")(e)),
            },
        }
    }
}

/// Removes `name` (in `dir`) if it is a regular file of `owner`'s that no
/// one holds locked. Opened without following links and without blocking
/// (a FIFO planted at the name).
fn remove_if_stale(dir: BorrowedFd, name: &CStr, owner: u32) {
    let ours = |st: sys::Stat| st.mode & sys::S_IFMT == sys::S_IFREG && st.uid == owner;
    if !sys::fstatat(dir, name, sys::AT_SYMLINK_NOFOLLOW).is_ok_and(ours) {
        return; // not even opened: a device planted at the name
    }
    let flags = sys::O_RDONLY | sys::O_NOFOLLOW | sys::O_NONBLOCK | sys::O_NOCTTY;
    let Ok(fd) = sys::openat(dir, name, flags, 0) else { return };
    if sys::fstat(&fd).is_ok_and(ours) && sys::flock(&fd, sys::LOCK_EX | sys::LOCK_NB).is_ok() {
        // Still the same file at the name? (Only its owner or the
        // directory's could have swapped it meanwhile.)
        let same = sys::fstatat(dir, name, sys::AT_SYMLINK_NOFOLLOW)
            .ok()
            .zip(sys::fstat(&fd).ok())
            .is_some_and(|(a, b)| a.ino == b.ino && a.dev == b.dev);
        if same {
            let _ = sys::unlinkat(dir, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(path: &str) -> Output {
        Output::new(path.as_bytes(), 3, false).unwrap_or_else(|_| panic!("{path} refused"))
    }

    #[test]
    fn names() {
        let o = out("/tmp/dir/myckpt.dat");
        assert_eq!((o.path(), o.dir(), o.base()), (c"/tmp/dir/myckpt.dat", c"/tmp/dir", &b"myckpt.dat"[..]));
        let mut buf = [0u8; NAME_BUF];
        assert_eq!(o.numbered(2, &mut buf), c"/tmp/dir/myckpt.2.dat");
        assert_eq!(out("/tmp/v1.2/job").numbered(1, &mut buf), c"/tmp/v1.2/job.1");
        assert_eq!(out("/.hidden").numbered(10, &mut buf), c"/.hidden.10");
        assert_eq!(out("rel.dat").dir(), c"/");
        assert!(Output::new(b"", 1, false).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "system calls (inline assembly)")]
    fn temporary_names() {
        let mut o = out("/tmp/x.dat");
        o.new_tmp_name();
        let tmp = o.tmp().to_bytes();
        let name = &tmp[b"/tmp/".len()..];
        assert_eq!(name.len(), b"x.dat.".len() + RANDOM_DIGITS + b".tmp".len(), "{:?}", o.tmp());
        assert!(o.is_temporary(name) && o.is_temporary(b"x.dat.1234.tmp"));
        for other in [&b"x.dat"[..], b"x.dat.tmp", b"x.dat.12g4.tmp", b"y.dat.1234.tmp", b"x.dat.1234.tmpx"] {
            assert!(!o.is_temporary(other), "{}", String::from_utf8_lossy(other));
        }
        let mut buf = [0u8; 8];
        let mut c = Cursor { buf: &mut buf, pos: 0 };
        c.push(b"ab").number(12345).push(b"cd");
        assert_eq!(c.finish(), 7, "truncated to the buffer, with room for the NUL");
        assert_eq!(&buf, b"ab12345\0");
    }
}
