//! POSIX shared memory and semaphores (`/dev/shm`): `sem_open` maps a file
//! under a temporary name and then links it under its real one and removes
//! the temporary name, so that `/proc/self/maps` shows the mapping as
//! `/dev/shm/sem.XXXXXX (deleted)` although the file lives on as
//! `/dev/shm/sem.NAME`. The capture records such a mapping under the name
//! the file has now (found by inode in `/dev/shm`), so that a restart maps
//! it from the file again instead of detaching it.
//!
//! Runs inside the capture (raw system calls only, no allocation).

use ckpt_sys as sys;

const DIR: &[u8] = b"/dev/shm/";

/// The path in `/dev/shm` of the file of inode `ino`, into `out`, if a
/// mapping named `name` (a deleted `/dev/shm` file) has one.
pub fn live_path<'o>(name: &[u8], ino: u64, out: &'o mut [u8; 512]) -> Option<&'o [u8]> {
    if !name.starts_with(DIR) || !name.ends_with(b" (deleted)") || ino == 0 {
        return None;
    }
    let dir = sys::open(c"/dev/shm", sys::O_RDONLY | sys::O_DIRECTORY | sys::O_CLOEXEC).ok()?;
    let mut buf = [0u8; 4096];
    let mut found = None;
    'scan: while let Ok(len) = sys::getdents64(&dir, &mut buf) {
        if len == 0 {
            break;
        }
        for (d_ino, entry) in sys::dirents(&buf[..len]) {
            if d_ino == ino && DIR.len() + entry.len() < out.len() {
                out[..DIR.len()].copy_from_slice(DIR);
                out[DIR.len()..DIR.len() + entry.len()].copy_from_slice(entry);
                found = Some(DIR.len() + entry.len());
                break 'scan;
            }
        }
    }
    found.map(|n| &out[..n])
}
