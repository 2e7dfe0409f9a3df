//! File locks: `fcntl` record and OFD locks, `flock`. One thin typed
//! wrapper per call, as in the rest of the crate.

use syscalls::{syscall, Sysno};

use crate::{AsFd, Result};

pub const F_GETLK: i32 = 5;
pub const F_SETLK: i32 = 6;
pub const F_OFD_GETLK: i32 = 36;
pub const F_OFD_SETLK: i32 = 37;
pub const F_RDLCK: i16 = 0;
pub const F_WRLCK: i16 = 1;
pub const F_UNLCK: i16 = 2;
pub const LOCK_SH: i32 = 1;
pub const LOCK_EX: i32 = 2;
pub const LOCK_NB: i32 = 4;
pub const LOCK_UN: i32 = 8;

/// `struct flock` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Flock {
    pub l_type: i16,
    pub l_whence: i16,
    pub _pad: u32,
    pub l_start: i64,
    pub l_len: i64,
    pub l_pid: i32,
    pub _pad2: u32,
}

/// `fcntl(fd, F_SETLK or F_OFD_SETLK, lock)`.
pub fn set_lock(fd: impl AsFd, cmd: i32, lock: &Flock) -> Result<()> {
    // SAFETY: the kernel reads one Flock from `lock`, borrowed for the call.
    unsafe { syscall!(Sysno::fcntl, fd.raw(), cmd, lock as *const Flock) }.map(drop)
}

/// `fcntl(fd, F_GETLK or F_OFD_GETLK, lock)`: `lock` becomes the first
/// conflicting lock, or has `l_type` F_UNLCK.
pub fn get_lock(fd: impl AsFd, cmd: i32, lock: &mut Flock) -> Result<()> {
    // SAFETY: the kernel reads and writes one Flock at `lock`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::fcntl, fd.raw(), cmd, lock as *mut Flock) }.map(drop)
}

pub fn flock(fd: impl AsFd, op: i32) -> Result<()> {
    // SAFETY: no pointer: a descriptor and an operation.
    unsafe { syscall!(Sysno::flock, fd.raw(), op) }.map(drop)
}

/// A lock keeper's process name (its `comm`).
pub const KEEPER_NAME: &core::ffi::CStr = c"ckpt-locks";

/// The byte restart sends a lock keeper to have it let go of the locks.
pub const KEEPER_RELEASE: u8 = b'R';
/// The keeper's answer: every descriptor is closed, the locks are free.
pub const KEEPER_RELEASED: u8 = b'K';

/// The abstract UNIX socket address of the lock keeper of the image whose
/// header names process `pid` and creation time `created_ns`, for user
/// `uid`: `\0ckpt-locks/UID/PID-CREATED` in a `struct sockaddr_un`
/// (capture and restart compute it alike from the header).
pub struct KeeperAddr {
    buf: [u8; 80],
    len: usize,
}

impl KeeperAddr {
    pub fn new(uid: u32, pid: u32, created_ns: u64) -> KeeperAddr {
        use core::fmt::Write;
        let mut l = crate::msg::Line::new();
        let _ = write!(l, "ckpt-locks/{uid}/{pid}-{created_ns}");
        let name = l.as_bytes();
        let mut buf = [0u8; 80];
        buf[..2].copy_from_slice(&(crate::events::AF_UNIX as u16).to_le_bytes());
        // buf[2] stays 0: an abstract name.
        let n = name.len().min(buf.len() - 3);
        buf[3..3 + n].copy_from_slice(&name[..n]);
        KeeperAddr { buf, len: 3 + n }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
