//! The image at the job's path: whether there is one, whether it is this
//! job's to restart, which checkpoint it is, and removing it (with the older
//! images `--keep` left) when the program has ended.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use ckpt_image::{Header, Meta, HEADER_SPACE};

/// Which file is at the image path: a new checkpoint is a new file, renamed
/// over the old one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Identity {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
}

pub fn identity(path: &Path) -> Option<Identity> {
    let m = fs::symlink_metadata(path).ok()?;
    Some(Identity { dev: m.dev(), ino: m.ino(), mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128 })
}

/// The command line an image was taken from (argv, NUL separated in the
/// image), reading its header and tables only.
fn command_line(path: &Path) -> Result<Vec<OsString>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = vec![0u8; HEADER_SPACE as usize];
    let n = file.read_at(&mut head, 0).map_err(|e| e.to_string())?;
    let header = Header::parse(&head[..n], len).map_err(|e| e.message().to_string())?;
    let mut meta = vec![0u8; header.meta_len as usize];
    file.read_exact_at(&mut meta, header.meta_offset).map_err(|e| e.to_string())?;
    let meta = Meta::parse(&header, &meta).map_err(|e| e.message().to_string())?;
    let cmdline = meta.string(header.cmdline).ok_or("its command line is missing")?;
    Ok(cmdline.split(|&c| c == 0).filter(|a| !a.is_empty()).map(|a| OsString::from_vec(a.to_vec())).collect())
}

/// Ok if the file at `path` is an image of this user's, taken from
/// `command` (the program as given, and its arguments); else why not.
pub fn belongs(path: &Path, command: &[OsString]) -> Result<(), String> {
    let m = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !m.file_type().is_file() {
        return Err("it is not a regular file".into());
    }
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if m.uid() != me {
        return Err(format!("it belongs to user {}, not to this job's user {me}", m.uid()));
    }
    let taken = command_line(path).map_err(|e| format!("it is not a usable image: {e}"))?;
    // An empty argument is dropped in both, as the image cannot tell it.
    let wanted: Vec<&OsString> = command.iter().filter(|a| !a.is_empty()).collect();
    if taken.iter().collect::<Vec<_>>() != wanted {
        let show = |v: &[&OsString]| v.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        return Err(format!(
            "it was taken from another command: {:?}, not {:?}",
            show(&taken.iter().collect::<Vec<_>>()),
            show(&wanted)
        ));
    }
    Ok(())
}

/// The images ckpt writes for `path` with `--keep keep`: `path` and the
/// older ones, numbered before the extension (`job.1.dat`) or at the end.
pub fn all(path: &Path, keep: u32) -> Vec<PathBuf> {
    let bytes = path.as_os_str().as_bytes();
    let base = bytes.iter().rposition(|&c| c == b'/').map_or(0, |p| p + 1);
    let cut = match bytes[base..].iter().rposition(|&c| c == b'.') {
        Some(d) if d > 0 => base + d,
        _ => bytes.len(),
    };
    let mut out = vec![path.to_path_buf()];
    for i in 1..keep {
        let mut p = bytes[..cut].to_vec();
        p.extend_from_slice(format!(".{i}").as_bytes());
        p.extend_from_slice(&bytes[cut..]);
        out.push(PathBuf::from(OsString::from_vec(p)));
    }
    out
}

/// Holds `PATH.lock` locked for as long as it lives: one job at a time per
/// image path (the same script submitted twice would otherwise have two
/// programs checkpoint over each other's image).
pub struct Lock {
    pub path: PathBuf,
    _file: File,
}

/// Takes the image's lock, or says which job holds it.
pub fn lock(image: &Path, job: &str) -> Result<Lock, String> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mut path = image.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    // Never through a link someone planted; only a file of our own.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| format!("cannot open the lock {}: {e}", path.display()))?;
    let m = file.metadata().map_err(|e| e.to_string())?;
    // SAFETY: getuid cannot fail.
    if m.uid() != unsafe { libc::getuid() } || !m.file_type().is_file() {
        return Err(format!("the lock {} is not a file of this user's", path.display()));
    }
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(format!(
            "{} is in use by job {} (it holds {}); give each job its own -o",
            image.display(),
            holder.trim(),
            path.display()
        ));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{job}");
    Ok(Lock { path, _file: file })
}
