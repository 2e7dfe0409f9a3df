//! Namespaces and processes at chosen pids: `clone3` (with `set_tid`),
//! `mount`, `signalfd`, `capset`, and `waitid`-style reaping — what
//! `restart` needs to run a program at its own pid, unprivileged, inside a
//! user + pid + mount namespace of its own.

use core::ffi::CStr;

use syscalls::{syscall, Sysno};

use crate::{AsFd, Result};

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const SIGCHLD: u64 = 17;

/// `struct clone_args` (clone3), version 2 (with `set_tid`).
#[repr(C)]
#[derive(Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    /// Address of an array of pids, innermost namespace first.
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// A new process, a copy of this one, as `fork` does but with `flags`
/// (namespaces) and, if `pid` is not 0, at that pid in the child's pid
/// namespace (`set_tid`: needs `CAP_CHECKPOINT_RESTORE` in the user
/// namespace that owns it). Ok(0) in the child, Ok(pid) in the parent.
/// Where `clone3` is filtered out (ENOSYS, as Docker's default seccomp
/// profile does), `clone` makes the process if no pid is asked for.
///
/// # Safety
/// As [`crate::fork`]: the child is a copy of the calling thread only.
pub unsafe fn clone_process(flags: u64, pid: u32) -> Result<i32> {
    let tid = [pid as i32];
    let args = CloneArgs {
        flags,
        exit_signal: SIGCHLD,
        set_tid: if pid != 0 { tid.as_ptr() as u64 } else { 0 },
        set_tid_size: (pid != 0) as u64,
        ..CloneArgs::default()
    };
    // SAFETY (the caller's, for the child): the kernel reads `args` and the
    // local `tid` array; no stack is given, so the child runs on a copy of
    // this one, as after fork.
    match syscall!(Sysno::clone3, &args as *const CloneArgs, core::mem::size_of::<CloneArgs>()) {
        Err(crate::Errno::ENOSYS) if pid == 0 => syscall!(Sysno::clone, flags | SIGCHLD, 0, 0, 0, 0),
        r => r,
    }
    .map(|p| p as i32)
}

pub const MS_NOSUID: u64 = 2;
pub const MS_NODEV: u64 = 4;
pub const MS_NOEXEC: u64 = 8;
pub const MS_REC: u64 = 0x4000;
pub const MS_PRIVATE: u64 = 0x40000;

/// `mount(source, target, fstype, flags, NULL)`; a `None` source or type is
/// passed as NULL (a change of propagation).
pub fn mount(source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: u64) -> Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(core::ptr::null(), CStr::as_ptr);
    // SAFETY: the kernel reads the NUL-terminated strings (or takes NULL); no data is passed.
    unsafe { syscall!(Sysno::mount, ptr(source), target.as_ptr(), ptr(fstype), flags, 0) }.map(drop)
}

/// A signalfd for the signals in `mask` (which the caller keeps blocked),
/// close-on-exec.
pub fn signalfd(mask: u64) -> Result<crate::OwnedFd> {
    const SFD_CLOEXEC: i32 = 0o2000000;
    // SAFETY: the kernel reads the local 8-byte mask.
    crate::fd::created(unsafe { syscall!(Sysno::signalfd4, -1i32, &mask as *const u64, 8, SFD_CLOEXEC) })
}

/// What `signalfd` says of one signal: its number and `si_code` (positive
/// for the kernel's own signals, 0 or negative for those a process sent),
/// the sender's uid, and the value of a `sigqueue`d one.
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    /// The sender's pid (0 if outside our pid namespace).
    pub pid: u32,
    pub uid: u32,
    pub value: u64,
}

pub const SI_QUEUE: i32 = -1;

/// Reads one signal from a signalfd (blocks until there is one).
pub fn read_signal(fd: impl AsFd) -> Result<SigInfo> {
    // struct signalfd_siginfo: 128 bytes, ssi_signo (u32) at 0, ssi_code (i32) at 8.
    let mut buf = [0u8; 128];
    let n = crate::read(&fd, &mut buf)?;
    if n < 12 {
        return Err(crate::Errno::EIO);
    }
    let word = |at: usize| i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    // ssi_pid at 12, ssi_uid at 16, ssi_ptr (the sigval) at 48.
    let value = u64::from(word(48) as u32) | u64::from(word(52) as u32) << 32;
    Ok(SigInfo { signo: word(0), code: word(8), pid: word(12) as u32, uid: word(16) as u32, value })
}

/// Sends a signal a process sent us on to process `pid`: as `kill` does,
/// or, for a `sigqueue`d one, queued with its value (`rt_sigqueueinfo`),
/// from pid 0 (a sender outside the receiver's pid namespace).
pub fn forward(pid: i32, si: &SigInfo) -> Result<()> {
    if si.code != SI_QUEUE {
        return crate::kill(pid, si.signo);
    }
    // siginfo_t: si_signo, si_errno, si_code, padding; si_pid at 16, si_uid
    // at 20, si_value at 24; 128 bytes.
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&si.signo.to_ne_bytes());
    info[8..12].copy_from_slice(&SI_QUEUE.to_ne_bytes());
    info[20..24].copy_from_slice(&si.uid.to_ne_bytes());
    info[24..32].copy_from_slice(&si.value.to_ne_bytes());
    // SAFETY: the kernel reads the local 128-byte siginfo.
    unsafe { syscall!(Sysno::rt_sigqueueinfo, pid, si.signo, info.as_ptr()) }.map(drop)
}

pub const WNOHANG: i32 = 1;
pub const WUNTRACED: i32 = 2;
pub const WCONTINUED: i32 = 8;
pub const WALL: i32 = 0x4000_0000;

/// `wait4(pid, &status, options, NULL)`: Ok(None) with WNOHANG when no
/// child changed state, else the child's pid and its wait status.
pub fn wait_any(pid: i32, options: i32) -> Result<Option<(i32, i32)>> {
    let mut status = 0i32;
    // SAFETY: the kernel writes the local `status`; no rusage (null).
    let p = unsafe { syscall!(Sysno::wait4, pid, &mut status as *mut i32, options, 0) }?;
    Ok((p != 0).then_some((p as i32, status)))
}

pub const CAP_SYS_ADMIN: u32 = 21;

/// Whether the calling thread has capability `cap` in effect (in its own
/// user namespace).
pub fn has_capability(cap: u32) -> bool {
    const VERSION_3: u32 = 0x2008_0522;
    let header = [VERSION_3, 0u32];
    // Two structs {effective, permitted, inheritable}: capabilities 0-31, 32-63.
    let mut data = [0u32; 6];
    // SAFETY: the kernel reads the local header and writes the two local structs.
    let ok = unsafe { syscall!(Sysno::capget, header.as_ptr(), data.as_mut_ptr()) }.is_ok();
    ok && cap < 64 && data[(cap / 32) as usize * 3] & (1 << (cap % 32)) != 0
}

/// Drops every capability of the calling thread (effective, permitted,
/// inheritable): a process in a user namespace it created holds them all
/// there, which the program it becomes never had.
pub fn drop_capabilities() -> Result<()> {
    const VERSION_3: u32 = 0x2008_0522;
    let header = [VERSION_3, 0u32];
    let data = [0u32; 6];
    // SAFETY: the kernel reads the local header (version, pid 0: this
    // thread) and two zeroed data structs.
    unsafe { syscall!(Sysno::capset, header.as_ptr(), data.as_ptr()) }.map(drop)
}

/// Writes all of `text` to the file at `path` (opened for writing, not
/// created): for `/proc` files such as `uid_map`.
pub fn write_file(path: &CStr, text: &[u8]) -> Result<()> {
    let fd = crate::open(path, crate::O_WRONLY)?;
    crate::write(fd, text).and_then(|n| if n == text.len() { Ok(()) } else { Err(crate::Errno::EIO) })
}

pub fn getegid() -> u32 {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::getegid) }.unwrap_or(u32::MAX as usize) as u32
}

/// Waits until one of `fds` is readable (or hung up); a bit per descriptor
/// that is (bit i for `fds[i]`, at most 8 descriptors).
pub fn poll_any(fds: &[i32]) -> Result<u32> {
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct PollFd {
        fd: i32,
        events: i16,
        revents: i16,
    }
    const POLLIN: i16 = 1;
    let mut p = [PollFd { fd: -1, events: POLLIN, revents: 0 }; 8];
    let n = fds.len().min(p.len());
    for (slot, &fd) in p.iter_mut().zip(&fds[..n]) {
        slot.fd = fd;
    }
    // SAFETY: the kernel reads and writes the local `p` (n pollfds); no timeout, no mask (null).
    unsafe { syscall!(Sysno::ppoll, p.as_mut_ptr(), n, 0, 0, 8) }?;
    Ok(p[..n].iter().enumerate().filter(|(_, s)| s.revents != 0).fold(0, |bits, (i, _)| bits | 1 << i))
}
