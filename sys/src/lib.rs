//! One thin, typed wrapper per Linux system call that ckpt uses.
//!
//! Both users of this crate run where libc must not be called: the capture
//! library inside a signal handler that may have interrupted malloc or
//! printf, and the loader, which has no libc at all. So every call here is
//! a raw `syscall` instruction (through the `syscalls` crate): no errno, no
//! locks, no allocation, no cancellation points. Errors come back as
//! [`Errno`] values.
#![no_std]

use core::ffi::CStr;

pub mod cpu;
pub mod events;
pub mod fd;
pub mod lines;
pub mod locks;
pub mod msg;
pub mod ns;
pub mod progress;
pub mod status;
pub mod thread;
pub mod ticker;
pub mod timers;
pub mod wp;

pub use fd::{AsFd, BorrowedFd, OwnedFd};
use syscalls::syscall;
pub use syscalls::{Errno, Sysno};

pub type Result<T> = core::result::Result<T, Errno>;

/// Longest path the kernel takes, with its NUL (`PATH_MAX` of <linux/limits.h>).
pub const PATH_MAX: usize = 4096;
pub const AT_FDCWD: i32 = -100;
pub const O_RDONLY: i32 = 0;
pub const O_WRONLY: i32 = 1;
pub const O_CREAT: i32 = 0o100;
pub const O_EXCL: i32 = 0o200;
pub const O_TRUNC: i32 = 0o1000;
pub const O_DIRECTORY: i32 = 0o200000;
pub const O_CLOEXEC: i32 = 0o2000000;
pub const O_RDWR: i32 = 2;
pub const O_ACCMODE: i32 = 3;
pub const O_NOCTTY: i32 = 0o400;
pub const O_APPEND: i32 = 0o2000;
pub const O_NONBLOCK: i32 = 0o4000;
pub const O_PATH: i32 = 0o10000000;

pub const PROT_NONE: i32 = 0;
pub const PROT_READ: i32 = 1;
pub const PROT_WRITE: i32 = 2;
pub const MAP_SHARED: i32 = 0x01;
pub const MAP_PRIVATE: i32 = 0x02;
pub const MAP_FIXED: i32 = 0x10;
pub const MAP_ANONYMOUS: i32 = 0x20;
pub const MAP_GROWSDOWN: i32 = 0x100;
pub const MAP_NORESERVE: i32 = 0x4000;
pub const MAP_FIXED_NOREPLACE: i32 = 0x100000;
pub const MREMAP_MAYMOVE: i32 = 1;
pub const MREMAP_FIXED: i32 = 2;
pub const MADV_DONTNEED: i32 = 4;
pub const MADV_POPULATE_WRITE: i32 = 23;

pub const ARCH_SET_GS: i32 = 0x1001;
pub const ARCH_SET_FS: i32 = 0x1002;
pub const ARCH_GET_FS: i32 = 0x1003;
pub const ARCH_GET_GS: i32 = 0x1004;

pub const RLIMIT_NOFILE: i32 = 7;

pub const PR_SET_NAME: i32 = 15;
pub const PR_GET_NAME: i32 = 16;
pub const PR_SET_MM: i32 = 35;
pub const PR_SET_MM_MAP: i32 = 14;
pub const PR_GET_TID_ADDRESS: i32 = 40;
pub const PR_SET_PDEATHSIG: i32 = 1;
pub const PR_GET_PDEATHSIG: i32 = 2;
pub const PR_GET_DUMPABLE: i32 = 3;
pub const PR_SET_DUMPABLE: i32 = 4;
pub const PR_SET_CHILD_SUBREAPER: i32 = 36;
pub const PR_GET_CHILD_SUBREAPER: i32 = 37;

pub const RSEQ_FLAG_UNREGISTER: i32 = 1;

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;

/// The kernel's `struct stat` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad0: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: [i64; 2],
    pub mtime: [i64; 2],
    pub ctime: [i64; 2],
    pub _unused: [i64; 3],
}

impl Stat {
    /// The modification time in nanoseconds since the epoch (0 before it).
    pub fn mtime_ns(&self) -> u64 {
        (self.mtime[0].max(0) as u64).saturating_mul(1_000_000_000).saturating_add(self.mtime[1].max(0) as u64)
    }
}

/// The kernel's `struct sigaction` on x86-64 (same layout as the image's).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct KSigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// `struct prctl_mm_map`, for `prctl(PR_SET_MM, PR_SET_MM_MAP)`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PrctlMmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

/// `struct iovec`.
#[repr(C)]
pub struct IoVec {
    pub base: *mut u8,
    pub len: usize,
}

// Every wrapper below passes its arguments to the kernel exactly as the
// system call documents them, and says on its own SAFETY line what memory
// the kernel touches; slices go with their own length, so the kernel never
// reads or writes past them. Wrappers that take raw addresses are
// `unsafe fn` and say what the caller must uphold.

pub fn openat(dir: impl AsFd, path: &CStr, flags: i32, mode: u32) -> Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated CStr that lives through the call; the kernel only reads it.
    fd::created(unsafe { syscall!(Sysno::openat, dir.raw(), path.as_ptr(), flags | O_CLOEXEC, mode) })
}

pub fn open(path: &CStr, flags: i32) -> Result<OwnedFd> {
    openat(AT_FDCWD, path, flags, 0)
}

pub fn close(fd: i32) {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    let _ = unsafe { syscall!(Sysno::close, fd) };
}

pub fn read(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::read, fd.raw(), buf.as_mut_ptr(), buf.len()) }
}

pub fn pread(fd: impl AsFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::pread64, fd.raw(), buf.as_mut_ptr(), buf.len(), offset) }
}

/// Reads `len` bytes from `fd` at `offset` into memory at `addr`.
///
/// # Safety
/// `[addr, addr+len)` must be writable memory that no Rust reference covers.
pub unsafe fn pread_raw(fd: impl AsFd, addr: u64, len: usize, offset: u64) -> Result<usize> {
    syscall!(Sysno::pread64, fd.raw(), addr, len, offset)
}

pub fn write(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes of `buf`, borrowed for the call.
    unsafe { syscall!(Sysno::write, fd.raw(), buf.as_ptr(), buf.len()) }
}

/// Writes `len` bytes of memory at `addr` to `fd` at `offset`.
///
/// # Safety
/// None beyond the kernel's own checks: a bad address gives EFAULT.
pub unsafe fn pwrite_raw(fd: impl AsFd, addr: u64, len: usize, offset: u64) -> Result<usize> {
    syscall!(Sysno::pwrite64, fd.raw(), addr, len, offset)
}

/// Why a whole-range transfer stopped: the kernel's error, or no progress
/// (end of file for a read, a zero-byte write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Short {
    Errno(Errno),
    End,
}

/// Reads `len` bytes at `offset` of `fd` into memory at `addr`, retrying
/// short reads and EINTR.
///
/// # Safety
/// `[addr, addr+len)` must be writable memory that no Rust reference covers.
pub unsafe fn pread_all(
    fd: impl AsFd,
    mut addr: u64,
    mut len: u64,
    mut offset: u64,
) -> core::result::Result<(), Short> {
    while len > 0 {
        match pread_raw(&fd, addr, len.min(1 << 30) as usize, offset) {
            Ok(0) => return Err(Short::End),
            Ok(n) => {
                addr += n as u64;
                offset += n as u64;
                len -= n as u64;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Short::Errno(e)),
        }
    }
    Ok(())
}

/// Writes `len` bytes of memory at `addr` to `fd` at `offset`, retrying
/// short writes and EINTR.
///
/// # Safety
/// None beyond the kernel's own checks: a bad address gives EFAULT.
pub unsafe fn pwrite_all(
    fd: impl AsFd,
    mut addr: u64,
    mut len: u64,
    mut offset: u64,
) -> core::result::Result<(), Short> {
    while len > 0 {
        match pwrite_raw(&fd, addr, len.min(1 << 30) as usize, offset) {
            Ok(0) => return Err(Short::End),
            Ok(n) => {
                addr += n as u64;
                offset += n as u64;
                len -= n as u64;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Short::Errno(e)),
        }
    }
    Ok(())
}

/// Writes all of `buf` (retrying short writes and EINTR).
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match write(&fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn fsync(fd: impl AsFd) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::fsync, fd.raw()) }.map(drop)
}

pub fn ftruncate(fd: impl AsFd, len: u64) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::ftruncate, fd.raw(), len) }.map(drop)
}

pub fn fstat(fd: impl AsFd) -> Result<Stat> {
    let mut st = Stat::default();
    // SAFETY: the kernel writes one `struct stat` into the local `st`, which has its layout.
    unsafe { syscall!(Sysno::fstat, fd.raw(), &mut st as *mut Stat) }.map(|_| st)
}

pub fn renameat(old: &CStr, new: &CStr) -> Result<()> {
    // SAFETY: both paths are NUL-terminated CStrs that live through the call; the kernel only reads them.
    unsafe { syscall!(Sysno::renameat, AT_FDCWD, old.as_ptr(), AT_FDCWD, new.as_ptr()) }.map(drop)
}

/// Makes `new` another name of the file `old` (a hard link); never
/// replaces `new` (EEXIST). A symbolic link `old` is linked itself, unless
/// `flags` has `AT_SYMLINK_FOLLOW`.
pub fn linkat(old: &CStr, new: &CStr, flags: i32) -> Result<()> {
    // SAFETY: both paths are NUL-terminated CStrs that live through the call; the kernel only reads them.
    unsafe { syscall!(Sysno::linkat, AT_FDCWD, old.as_ptr(), AT_FDCWD, new.as_ptr(), flags) }.map(drop)
}

pub fn unlink(path: &CStr) -> Result<()> {
    unlinkat(AT_FDCWD, path)
}

pub fn chdir(path: &CStr) -> Result<()> {
    // SAFETY: the path is a NUL-terminated CStr that lives through the call; the kernel only reads it.
    unsafe { syscall!(Sysno::chdir, path.as_ptr()) }.map(drop)
}

pub fn getdents64(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::getdents64, fd.raw(), buf.as_mut_ptr(), buf.len()) }
}

/// The entries, (inode, name), in the bytes a `getdents64` returned
/// (`struct linux_dirent64`: ino u64, off i64, reclen u16, type u8, name
/// NUL-terminated): the one reader of them.
pub struct Dirents<'a> {
    buf: &'a [u8],
    off: usize,
}

pub fn dirents(buf: &[u8]) -> Dirents<'_> {
    Dirents { buf, off: 0 }
}

/// The names of [`dirents`].
pub fn dirent_names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    dirents(buf).map(|(_, name)| name)
}

impl<'a> Iterator for Dirents<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        let rec = self.buf.get(self.off..)?;
        if rec.len() < 19 {
            return None;
        }
        let ino = u64::from_le_bytes(rec[..8].try_into().unwrap_or_default());
        let reclen = u16::from_le_bytes([rec[16], rec[17]]) as usize;
        let name = rec.get(19..reclen.min(rec.len())).unwrap_or(&[]);
        self.off += reclen.max(19);
        Some((ino, &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())]))
    }
}

/// The working directory, NUL excluded.
pub fn getcwd(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::getcwd, buf.as_mut_ptr(), buf.len()) }.map(|n| n.saturating_sub(1))
}

pub fn readlink(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the path is a CStr the kernel reads; it writes at most `buf.len()` bytes into `buf`.
    unsafe { syscall!(Sysno::readlinkat, AT_FDCWD, path.as_ptr(), buf.as_mut_ptr(), buf.len()) }
}

/// # Safety
/// With MAP_FIXED, whatever was mapped at `addr` is replaced.
pub unsafe fn mmap(addr: u64, len: u64, prot: i32, flags: i32, fd: impl AsFd, off: u64) -> Result<u64> {
    syscall!(Sysno::mmap, addr, len, prot, flags, fd.raw(), off).map(|a| a as u64)
}

/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(addr: u64, len: u64) -> Result<()> {
    syscall!(Sysno::munmap, addr, len).map(drop)
}

/// # Safety
/// Moves a mapping: nothing may use the old range afterwards, and anything
/// mapped at the new one is replaced.
pub unsafe fn mremap_fixed(old: u64, len: u64, new: u64) -> Result<u64> {
    syscall!(Sysno::mremap, old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, new).map(|a| a as u64)
}

/// # Safety
/// Removing access from memory that is in use faults its next user.
pub unsafe fn mprotect(addr: u64, len: u64, prot: i32) -> Result<()> {
    syscall!(Sysno::mprotect, addr, len, prot).map(drop)
}

/// # Safety
/// MADV_DONTNEED discards the contents of private memory.
pub unsafe fn madvise(addr: u64, len: u64, advice: i32) -> Result<()> {
    syscall!(Sysno::madvise, addr, len, advice).map(drop)
}

/// Sets or reads the program break (`brk(0)` reads it).
pub fn brk(addr: u64) -> u64 {
    // SAFETY: brk only moves the program break, which no Rust reference covers.
    unsafe { syscall!(Sysno::brk, addr) }.unwrap_or(0) as u64
}

pub fn getpid() -> i32 {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::getpid) }.unwrap_or(0) as i32
}

pub fn gettid() -> i32 {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::gettid) }.unwrap_or(0) as i32
}

pub fn umask(mask: u32) -> u32 {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::umask, mask) }.unwrap_or(0) as u32
}

/// Ends the calling thread only.
pub fn exit_thread(status: i32) -> ! {
    loop {
        // SAFETY: ends this thread; its arguments are integers.
        let _ = unsafe { syscall!(Sysno::exit, status) };
    }
}

pub fn exit_group(status: i32) -> ! {
    loop {
        // SAFETY: ends the process; its arguments are integers.
        let _ = unsafe { syscall!(Sysno::exit_group, status) };
    }
}

pub fn tgkill(pid: i32, tid: i32, sig: i32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::tgkill, pid, tid, sig) }.map(drop)
}

/// The parent's pid.
pub fn getppid() -> i32 {
    // SAFETY: no arguments: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::getppid) }.unwrap_or(0) as i32
}

/// Sends `sig` to process `pid` (process-directed: any thread that does not
/// block it may take it).
pub fn kill(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::kill, pid, sig) }.map(drop)
}

pub const ITIMER_REAL: i32 = 0;
pub const ITIMER_VIRTUAL: i32 = 1;
pub const ITIMER_PROF: i32 = 2;

/// The kernel's `struct itimerval` (two `struct timeval`s).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ITimerVal {
    pub interval_sec: i64,
    pub interval_usec: i64,
    pub value_sec: i64,
    pub value_usec: i64,
}

pub fn getitimer(which: i32) -> Result<ITimerVal> {
    let mut v = ITimerVal::default();
    // SAFETY: the kernel writes one `struct itimerval` into the local `v`, which has its layout.
    unsafe { syscall!(Sysno::getitimer, which, &mut v as *mut ITimerVal) }.map(|_| v)
}

/// Arms (or, with a zero value, disarms) an interval timer; returns the
/// previous setting.
pub fn setitimer(which: i32, new: &ITimerVal) -> Result<ITimerVal> {
    let mut old = ITimerVal::default();
    // SAFETY: the kernel reads `*new` and writes the local `old`, both `struct itimerval`s alive for the call.
    unsafe { syscall!(Sysno::setitimer, which, new as *const ITimerVal, &mut old as *mut ITimerVal) }.map(|_| old)
}

/// Number of resource limits (`RLIM_NLIMITS`); `RLIM_INFINITY` is `u64::MAX`.
pub const RLIMIT_NLIMITS: i32 = 16;

/// The kernel's `struct rlimit64`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct RLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Reads (`new` None) or sets resource limit `resource` of process `pid`
/// (0: the caller); returns the previous limit.
pub fn prlimit64(pid: i32, resource: i32, new: Option<&RLimit>) -> Result<RLimit> {
    let mut old = RLimit::default();
    let new = new.map_or(core::ptr::null(), |n| n as *const RLimit);
    // SAFETY: `new` is null or points to a live `RLimit`; the kernel writes the local `old`.
    unsafe { syscall!(Sysno::prlimit64, pid, resource, new, &mut old as *mut RLimit) }.map(|_| old)
}

pub const SIG_BLOCK: i32 = 0;
pub const SIG_SETMASK: i32 = 2;

/// Sets the calling thread's signal mask; returns the old one.
pub fn rt_sigprocmask(how: i32, set: u64) -> Result<u64> {
    let mut old = 0u64;
    // SAFETY: the kernel reads the local `set` and writes the local `old`, 8 bytes each as the size says.
    unsafe { syscall!(Sysno::rt_sigprocmask, how, &set as *const u64, &mut old as *mut u64, 8) }.map(|_| old)
}

/// Signals pending for the calling thread or the process (bit n-1: signal n).
pub fn rt_sigpending() -> u64 {
    let mut set = 0u64;
    // SAFETY: the kernel writes the local `set`, 8 bytes as the size says.
    let _ = unsafe { syscall!(Sysno::rt_sigpending, &mut set as *mut u64, 8) };
    set
}

/// Takes one pending signal of `set` without waiting; Err(EAGAIN) if none.
pub fn rt_sigtimedwait_now(set: u64) -> Result<i32> {
    let ts = [0i64; 2];
    // SAFETY: the kernel reads the local `set` and timeout `ts`; no siginfo is asked for (null).
    unsafe { syscall!(Sysno::rt_sigtimedwait, &set as *const u64, 0, ts.as_ptr(), 8) }.map(|s| s as i32)
}

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAIT_PRIVATE: i32 = 128;
const FUTEX_WAKE_PRIVATE: i32 = 129;

/// Sleeps while `*word == expected`, at most `timeout_ns` (0: no limit).
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ns: u64) -> Result<()> {
    let ts = [(timeout_ns / 1_000_000_000) as i64, (timeout_ns % 1_000_000_000) as i64];
    let tsp = if timeout_ns == 0 { core::ptr::null() } else { ts.as_ptr() };
    // SAFETY: the futex word is a live AtomicU32 (the kernel reads it atomically); the timeout, if any, is a local timespec.
    unsafe { syscall!(Sysno::futex, word.as_ptr(), FUTEX_WAIT_PRIVATE, expected, tsp, 0, 0) }.map(drop)
}

/// Sleeps while the tid word of an exiting thread (`CLONE_CHILD_CLEARTID`)
/// holds `expected`. The kernel's wake-up at thread exit is a shared-futex
/// one, which a private wait would never see.
pub fn futex_wait_tid(word: &core::sync::atomic::AtomicU32, expected: u32) -> Result<()> {
    // SAFETY: the kernel reads the word, which the reference keeps alive.
    unsafe { syscall!(Sysno::futex, word.as_ptr(), FUTEX_WAIT, expected, 0, 0, 0) }.map(drop)
}

/// Wakes up to `n` waiters on `word` (the kernel takes an int: clamped).
pub fn futex_wake(word: &core::sync::atomic::AtomicU32, n: u32) {
    let n = n.min(i32::MAX as u32);
    // SAFETY: the futex word is a live AtomicU32; a wake reads no other memory.
    let _ = unsafe { syscall!(Sysno::futex, word.as_ptr(), FUTEX_WAKE_PRIVATE, n, 0, 0, 0) };
}

/// [`futex_wait`] on a word in memory shared between processes (a shared
/// mapping): a process-shared futex, which [`futex_wake_shared`] wakes.
pub fn futex_wait_shared(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ns: u64) -> Result<()> {
    let ts = [(timeout_ns / 1_000_000_000) as i64, (timeout_ns % 1_000_000_000) as i64];
    let tsp = if timeout_ns == 0 { core::ptr::null() } else { ts.as_ptr() };
    // SAFETY: the futex word is a live AtomicU32 (the kernel reads it atomically); the timeout, if any, is a local timespec.
    unsafe { syscall!(Sysno::futex, word.as_ptr(), FUTEX_WAIT, expected, tsp, 0, 0) }.map(drop)
}

/// [`futex_wake`] of the waiters of a word shared between processes.
pub fn futex_wake_shared(word: &core::sync::atomic::AtomicU32, n: u32) {
    const FUTEX_WAKE: i32 = 1;
    let n = n.min(i32::MAX as u32);
    // SAFETY: the futex word is a live AtomicU32; a wake reads no other memory.
    let _ = unsafe { syscall!(Sysno::futex, word.as_ptr(), FUTEX_WAKE, n, 0, 0, 0) };
}

pub fn rt_sigaction(sig: i32, new: Option<&KSigAction>, old: Option<&mut KSigAction>) -> Result<()> {
    let new = new.map_or(core::ptr::null(), |n| n as *const KSigAction);
    let old = old.map_or(core::ptr::null_mut(), |o| o as *mut KSigAction);
    // SAFETY: `new` and `old` are null or point to live `KSigAction`s, the kernel's layout; the mask size is 8.
    unsafe { syscall!(Sysno::rt_sigaction, sig, new, old, 8) }.map(drop)
}

/// # Safety
/// Changing the fs or gs base changes where thread-local storage is.
pub unsafe fn arch_prctl(code: i32, addr: u64) -> Result<u64> {
    let mut out = 0u64;
    let arg = if code == ARCH_GET_FS || code == ARCH_GET_GS { &mut out as *mut u64 as u64 } else { addr };
    syscall!(Sysno::arch_prctl, code, arg).map(|_| out)
}

/// # Safety
/// Some prctl options take addresses the kernel reads or writes.
pub unsafe fn prctl(option: i32, a2: u64, a3: u64, a4: u64, a5: u64) -> Result<usize> {
    syscall!(Sysno::prctl, option, a2, a3, a4, a5)
}

/// # Safety
/// The kernel writes to `area` from now on (or stops, with UNREGISTER).
pub unsafe fn rseq(area: u64, len: u32, flags: i32, sig: u32) -> Result<()> {
    syscall!(Sysno::rseq, area, len, flags, sig).map(drop)
}

/// # Safety
/// The kernel clears and wakes `*addr` when the thread exits.
pub unsafe fn set_tid_address(addr: u64) -> i32 {
    syscall!(Sysno::set_tid_address, addr).unwrap_or(0) as i32
}

/// # Safety
/// The kernel walks the list when the thread exits.
pub unsafe fn set_robust_list(head: u64, len: u64) -> Result<()> {
    syscall!(Sysno::set_robust_list, head, len).map(drop)
}

/// The calling thread's robust list (head, length).
pub fn get_robust_list() -> Result<(u64, u64)> {
    let (mut head, mut len) = (0u64, 0u64);
    // SAFETY: the kernel writes the locals `head` and `len`, one word each.
    unsafe { syscall!(Sysno::get_robust_list, 0, &mut head as *mut u64, &mut len as *mut u64) }.map(|_| (head, len))
}

/// Nanoseconds on `clock`.
pub fn clock_ns(clock: i32) -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: the kernel writes the local two-word timespec `ts`.
    let _ = unsafe { syscall!(Sysno::clock_gettime, clock, ts.as_mut_ptr()) };
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

/// Sleeps for `ns` nanoseconds (less if a signal comes).
pub fn sleep_ns(ns: u64) {
    let ts = [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64];
    // SAFETY: the kernel reads the local two-word timespec `ts`; no remainder is asked for.
    let _ = unsafe { syscall!(Sysno::nanosleep, ts.as_ptr(), 0usize) };
}

/// Whether the byte at `addr` of this process can be read, found without
/// touching it: a file mapping past the end of its file would raise SIGBUS,
/// `process_vm_readv` answers EFAULT instead.
pub fn readable(addr: u64) -> bool {
    let mut byte = 0u8;
    let local = IoVec { base: &mut byte, len: 1 };
    let remote = IoVec { base: addr as *mut u8, len: 1 };
    let pid = getpid();
    matches!(
        // SAFETY: both iovecs are locals for one byte: the kernel writes `byte` and reads the remote address itself, answering EFAULT if it is not mapped.
        unsafe { syscall!(Sysno::process_vm_readv, pid, &local as *const IoVec, 1, &remote as *const IoVec, 1, 0) },
        Ok(1)
    )
}

/// A short name for an errno value ("ENOSPC"), for one-line messages.
pub fn errno_name(e: Errno) -> &'static str {
    e.name().unwrap_or("EUNKNOWN")
}

/// A description of an errno value ("No space left on device").
pub fn errno_text(e: Errno) -> &'static str {
    e.description().unwrap_or("unknown error")
}

// Open file descriptors: listing, describing and reopening them.

pub const F_DUPFD: i32 = 0;
pub const F_GETFD: i32 = 1;
pub const F_SETFD: i32 = 2;
pub const F_GETFL: i32 = 3;
pub const F_SETFL: i32 = 4;
pub const F_DUPFD_CLOEXEC: i32 = 1030;
pub const F_SETPIPE_SZ: i32 = 1031;
pub const F_GETPIPE_SZ: i32 = 1032;
pub const FD_CLOEXEC: i32 = 1;

pub const SEEK_SET: i32 = 0;
pub const SEEK_CUR: i32 = 1;

pub const S_IFIFO: u32 = 0o010000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFSOCK: u32 = 0o140000;

pub const SPLICE_F_NONBLOCK: u32 = 2;

/// `fcntl` with an integer argument (F_GETFL, F_SETFD, F_DUPFD_CLOEXEC…).
pub fn fcntl(fd: impl AsFd, cmd: i32, arg: u64) -> Result<i32> {
    // SAFETY: the commands this takes have an integer argument (see above): no memory is touched.
    unsafe { syscall!(Sysno::fcntl, fd.raw(), cmd, arg) }.map(|r| r as i32)
}

/// Moves (or, with SEEK_CUR and 0, reads) the file offset; returns the new one.
pub fn lseek(fd: impl AsFd, offset: i64, whence: i32) -> Result<u64> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::lseek, fd.raw(), offset, whence) }.map(|r| r as u64)
}

/// A copy of `fd` at the lowest free number from `min` up, close-on-exec
/// (`fcntl(F_DUPFD_CLOEXEC)`).
pub fn dup_from(fd: impl AsFd, min: i32) -> Result<OwnedFd> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    fd::created(unsafe { syscall!(Sysno::fcntl, fd.raw(), F_DUPFD_CLOEXEC, min) })
}

/// Makes `new` a copy of `old` (closing what `new` was); `flags`: O_CLOEXEC or 0.
pub fn dup3(old: impl AsFd, new: i32, flags: i32) -> Result<i32> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::dup3, old.raw(), new, flags) }.map(|r| r as i32)
}

/// A new pipe: (read end, write end).
pub fn pipe2(flags: i32) -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into the local `fds`.
    let r = unsafe { syscall!(Sysno::pipe2, fds.as_mut_ptr(), flags) };
    fd::created_pair(r, fds)
}

/// Copies up to `len` bytes from pipe `fd_in` to pipe `fd_out` without
/// consuming them.
pub fn tee(fd_in: impl AsFd, fd_out: impl AsFd, len: usize, flags: u32) -> Result<usize> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::tee, fd_in.raw(), fd_out.raw(), len, flags) }
}

/// `ioctl(fd, FIONREAD)`: bytes waiting to be read (pipes, FIFOs, sockets, ttys).
pub fn fionread(fd: impl AsFd) -> Result<usize> {
    const FIONREAD: u64 = 0x541b;
    let mut n: i32 = 0;
    // SAFETY: FIONREAD writes one int into the local `n`.
    unsafe { syscall!(Sysno::ioctl, fd.raw(), FIONREAD, &mut n as *mut i32) }.map(|_| n.max(0) as usize)
}

/// `stat` of a path (following symbolic links).
pub fn stat(path: &CStr) -> Result<Stat> {
    let mut st = Stat::default();
    // SAFETY: the path is a CStr the kernel reads; it writes one `struct stat` into the local `st`.
    unsafe { syscall!(Sysno::newfstatat, AT_FDCWD, path.as_ptr(), &mut st as *mut Stat, 0) }.map(|_| st)
}

/// Whether two descriptors of this process share one open file description
/// (`kcmp(KCMP_FILE)`: Ok(0) if they do; ENOSYS without CONFIG_KCMP).
pub fn kcmp_file(fd1: i32, fd2: i32) -> Result<usize> {
    kcmp_files(getpid(), fd1, getpid(), fd2)
}

/// Whether descriptor `fd1` of process `pid1` and `fd2` of `pid2` share one
/// open file description (Ok(0) if they do; the caller may read both
/// processes, as for /proc/PID/fd).
pub fn kcmp_files(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> Result<usize> {
    const KCMP_FILE: i32 = 0;
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::kcmp, pid1, pid2, KCMP_FILE, fd1, fd2) }
}

/// Closes every descriptor from `first` to `last` (inclusive).
pub fn close_range(first: u32, last: u32, flags: u32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::close_range, first, last, flags) }.map(drop)
}

/// A new process, a copy of this one (`clone` with just SIGCHLD): Ok(0) in
/// the child, Ok(pid) in the parent.
///
/// # Safety
/// The child is a copy of the calling thread only: it must not rely on
/// other threads or on locks they held.
pub unsafe fn fork() -> Result<i32> {
    const SIGCHLD: usize = 17;
    syscall!(Sysno::clone, SIGCHLD, 0, 0, 0, 0).map(|p| p as i32)
}

/// Waits for child `pid` to end; its exit status.
pub fn wait4(pid: i32) -> Result<i32> {
    let mut status = 0i32;
    // SAFETY: the kernel writes the local `status`; no rusage is asked for (null).
    unsafe { syscall!(Sysno::wait4, pid, &mut status as *mut i32, 0, 0) }.map(|_| status)
}

/// Reaps child `pid` whatever its exit signal (`__WALL`): a child
/// started with none (see `thread::PROCESS_VM_VFORK`) is invisible to a
/// plain wait. Its exit status.
pub fn wait4_clone(pid: i32) -> Result<i32> {
    const WALL: i32 = 0x4000_0000;
    let mut status = 0i32;
    // SAFETY: the kernel writes the local `status`; no rusage is asked for (null).
    unsafe { syscall!(Sysno::wait4, pid, &mut status as *mut i32, WALL, 0) }.map(|_| status)
}

pub fn setsid() -> Result<i32> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::setsid) }.map(|s| s as i32)
}

/// Puts process `pid` (0: the caller) in process group `pgid`.
pub fn setpgid(pid: i32, pgid: i32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::setpgid, pid, pgid) }.map(drop)
}

/// A pidfd of process `pid` (close-on-exec).
/// A copy, in this process, of descriptor `fd` of the process of `pidfd`
/// (close-on-exec; the caller must be allowed to ptrace it).
pub fn pidfd_getfd(pidfd: impl AsFd, fd: i32) -> Result<OwnedFd> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    fd::created(unsafe { syscall!(Sysno::pidfd_getfd, pidfd.raw(), fd, 0) })
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    fd::created(unsafe { syscall!(Sysno::pidfd_open, pid, 0) })
}

pub fn pidfd_send_signal(pidfd: impl AsFd, sig: i32) -> Result<()> {
    // SAFETY: integer arguments and a null siginfo: no memory of ours is touched.
    unsafe { syscall!(Sysno::pidfd_send_signal, pidfd.raw(), sig, 0, 0) }.map(drop)
}

/// Waits until `fd` is readable or `timeout_ns` passed; true if readable.
pub fn poll_readable(fd: impl AsFd, timeout_ns: u64) -> Result<bool> {
    poll_in(&fd, timeout_ns).map(|revents| revents != 0)
}

/// Whether the pipe that `fd` reads from has no write end left anywhere
/// (`POLLHUP`, at once).
pub fn pipe_widowed(fd: impl AsFd) -> bool {
    const POLLHUP: i16 = 0x10;
    poll_in(&fd, 0).is_ok_and(|revents| revents & POLLHUP != 0)
}

/// `ppoll` of one descriptor for POLLIN: its `revents` (0: timed out).
fn poll_in(fd: impl AsFd, timeout_ns: u64) -> Result<i16> {
    #[repr(C)]
    struct PollFd {
        fd: i32,
        events: i16,
        revents: i16,
    }
    const POLLIN: i16 = 1;
    let mut p = PollFd { fd: fd.raw(), events: POLLIN, revents: 0 };
    let ts = [(timeout_ns / 1_000_000_000) as i64, (timeout_ns % 1_000_000_000) as i64];
    // SAFETY: the kernel reads and writes the local `p` (one pollfd) and reads the local timeout `ts`; no mask (null).
    let n = unsafe { syscall!(Sysno::ppoll, &mut p as *mut PollFd, 1, ts.as_ptr(), 0, 8) }?;
    Ok(if n > 0 { p.revents } else { 0 })
}

// Creating files safely where other users may write (the image's directory
// may be a sticky, world-writable one).

/// With O_DIRECTORY: an unnamed file in that directory (`O_TMPFILE`).
pub const O_TMPFILE: i32 = 0o20200000;
pub const O_NOFOLLOW: i32 = 0o400000;
pub const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
pub const AT_SYMLINK_FOLLOW: i32 = 0x400;
pub const S_IFLNK: u32 = 0o120000;
pub const LOCK_EX: i32 = 2;
pub const LOCK_NB: i32 = 4;

/// `stat` of `name` in directory `dir` (`AT_FDCWD`: the working directory),
/// with `flags` (`AT_SYMLINK_NOFOLLOW`: a symbolic link itself).
pub fn fstatat(dir: impl AsFd, name: &CStr, flags: i32) -> Result<Stat> {
    let mut st = Stat::default();
    // SAFETY: the path is a CStr the kernel reads; it writes one `struct stat` into the local `st`.
    unsafe { syscall!(Sysno::newfstatat, dir.raw(), name.as_ptr(), &mut st as *mut Stat, flags) }.map(|_| st)
}

/// `stat` of a path, not following a final symbolic link.
pub fn lstat(path: &CStr) -> Result<Stat> {
    fstatat(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)
}

pub fn fchmod(fd: impl AsFd, mode: u32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::fchmod, fd.raw(), mode) }.map(drop)
}

pub fn geteuid() -> u32 {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::geteuid) }.unwrap_or(u32::MAX as usize) as u32
}

/// Fills `buf` with random bytes, never blocking (EAGAIN before the kernel's
/// pool is ready).
pub fn getrandom(buf: &mut [u8]) -> Result<usize> {
    const GRND_NONBLOCK: u32 = 1;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::getrandom, buf.as_mut_ptr(), buf.len(), GRND_NONBLOCK) }
}

/// Removes `name` from directory `dir`.
pub fn unlinkat(dir: impl AsFd, name: &CStr) -> Result<()> {
    // SAFETY: the path is a NUL-terminated CStr that lives through the call; the kernel only reads it.
    unsafe { syscall!(Sysno::unlinkat, dir.raw(), name.as_ptr(), 0) }.map(drop)
}

pub const R_OK: i32 = 4;
pub const W_OK: i32 = 2;

/// Whether the caller may open `path` for `mode` (`R_OK`, `W_OK`), without
/// opening it (`faccessat`: real uid, as restart is never setuid).
pub fn access(path: &CStr, mode: i32) -> Result<()> {
    // SAFETY: the path is a NUL-terminated CStr that lives through the call; the kernel only reads it.
    unsafe { syscall!(Sysno::faccessat, AT_FDCWD, path.as_ptr(), mode) }.map(drop)
}

/// `flock(fd, op)`.
pub fn flock(fd: impl AsFd, op: i32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::flock, fd.raw(), op) }.map(drop)
}

// ---------------------------------------------------------------------------
// A job of several processes (the capture's barrier between them).

/// `sigqueue(pid, sig, value)`: a process-directed signal carrying `value`
/// (`si_code` SI_QUEUE, `si_pid` the caller).
pub fn sigqueue(pid: i32, sig: i32, value: u64) -> Result<()> {
    const SI_QUEUE: i32 = -1;
    // The kernel's siginfo: 128 bytes; signo, errno, code, then pid, uid, value.
    let mut info = [0u64; 16];
    info[0] = sig as u32 as u64;
    info[1] = SI_QUEUE as u32 as u64;
    info[2] = getpid() as u32 as u64 | (geteuid() as u64) << 32;
    info[3] = value;
    // SAFETY: the kernel reads the 128-byte siginfo, borrowed for the call.
    unsafe { syscall!(Sysno::rt_sigqueueinfo, pid, sig, info.as_ptr()) }.map(drop)
}

#[cfg(test)]
mod tests {
    /// Two `linux_dirent64` records as getdents64 lays them out (8-byte
    /// aligned, the name NUL-padded), then a truncated one.
    #[test]
    fn dirents_of_a_buffer() {
        let mut buf = [0u8; 64];
        for (at, ino, name) in [(0usize, 7u64, &b"a.dat"[..]), (24, 9, b"longer-name")] {
            let reclen: u16 = if at == 0 { 24 } else { 32 };
            buf[at..at + 8].copy_from_slice(&ino.to_le_bytes());
            buf[at + 16..at + 18].copy_from_slice(&reclen.to_le_bytes());
            buf[at + 19..at + 19 + name.len()].copy_from_slice(name);
        }
        let entries: [(u64, &[u8]); 2] = [(7, b"a.dat"), (9, b"longer-name")];
        assert!(super::dirents(&buf[..56]).eq(entries));
        assert!(super::dirent_names(&buf[..60]).eq([&b"a.dat"[..], b"longer-name"]), "a record cut short ends it");
    }
}
