//! Event descriptors (eventfd, timerfd, signalfd, epoll) and sockets: one
//! thin typed wrapper per system call, as in the rest of the crate.

use syscalls::{syscall, Sysno};

use crate::{getpid, AsFd, Errno, Result};

pub const EFD_SEMAPHORE: i32 = 1;
pub const TFD_TIMER_ABSTIME: i32 = 1;
pub const EPOLL_CTL_ADD: i32 = 1;
pub const EPOLL_CTL_DEL: i32 = 2;

pub const AF_UNIX: i32 = 1;
pub const AF_NETLINK: i32 = 16;
pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_SEQPACKET: i32 = 5;
pub const SOCK_CLOEXEC: i32 = 0o2000000;
pub const SOL_SOCKET: i32 = 1;
pub const SO_TYPE: i32 = 3;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_PEEK_OFF: i32 = 42;
pub const MSG_PEEK: i32 = 2;
pub const MSG_TRUNC: i32 = 0x20;
pub const MSG_DONTWAIT: i32 = 0x40;
pub const MSG_NOSIGNAL: i32 = 0x4000;
pub const NETLINK_SOCK_DIAG: i32 = 4;

/// `struct itimerspec`: interval then value, each (seconds, nanoseconds).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ITimerSpec {
    pub interval: [i64; 2],
    pub value: [i64; 2],
}

/// `struct epoll_event` (packed on x86-64).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

pub fn eventfd2(initval: u32, flags: i32) -> Result<crate::OwnedFd> {
    // SAFETY: no pointer: an integer and flags.
    crate::fd::created(unsafe { syscall!(Sysno::eventfd2, initval, flags) })
}

pub fn timerfd_create(clockid: i32, flags: i32) -> Result<crate::OwnedFd> {
    // SAFETY: no pointer: a clock id and flags.
    crate::fd::created(unsafe { syscall!(Sysno::timerfd_create, clockid, flags) })
}

pub fn timerfd_settime(fd: impl AsFd, flags: i32, new: &ITimerSpec) -> Result<()> {
    // SAFETY: `new` is a live ITimerSpec the kernel only reads; no old value is asked for.
    unsafe { syscall!(Sysno::timerfd_settime, fd.raw(), flags, new as *const ITimerSpec, 0usize) }.map(drop)
}

/// `ioctl(fd, TFD_IOC_SET_TICKS)`: sets a timerfd's count of expirations
/// not yet read (needs CONFIG_CHECKPOINT_RESTORE).
pub fn timerfd_set_ticks(fd: impl AsFd, ticks: u64) -> Result<()> {
    const TFD_IOC_SET_TICKS: u64 = 0x4008_5400;
    // SAFETY: the kernel reads one u64 from `ticks`, a live local.
    unsafe { syscall!(Sysno::ioctl, fd.raw(), TFD_IOC_SET_TICKS, &ticks as *const u64) }.map(drop)
}

/// `signalfd4(-1, mask)`: a new signalfd for the signals of `mask`.
pub fn signalfd4(mask: u64, flags: i32) -> Result<crate::OwnedFd> {
    // SAFETY: the kernel reads the 8-byte mask from `mask`, a live local.
    crate::fd::created(unsafe { syscall!(Sysno::signalfd4, -1i32, &mask as *const u64, 8usize, flags) })
}

pub fn epoll_create1(flags: i32) -> Result<crate::OwnedFd> {
    // SAFETY: no pointer: flags only.
    crate::fd::created(unsafe { syscall!(Sysno::epoll_create1, flags) })
}

pub fn epoll_ctl(epfd: impl AsFd, op: i32, fd: impl AsFd, events: u32, data: u64) -> Result<()> {
    let ev = EpollEvent { events, data };
    // SAFETY: the kernel reads one epoll_event from `ev`, a live local.
    unsafe { syscall!(Sysno::epoll_ctl, epfd.raw(), op, fd.raw(), &ev as *const EpollEvent) }.map(drop)
}

/// Whether the open file of descriptor `tfd` is registered in epoll `epfd`
/// under that number, asked without side effect when it is: an
/// `EPOLL_CTL_ADD` that the kernel refuses with EEXIST (a lookup in the
/// interest list's tree, where `kcmp` walks the list). When it is not,
/// the add succeeds and is undone at once (`EPOLL_CTL_DEL`): the entry
/// lived for two system calls, long enough for at most a spurious wakeup
/// of a thread waiting on the epoll. Err: the kernel would not say (a
/// descriptor that cannot be polled, ELOOP, the watch limit…).
pub fn epoll_registered(epfd: i32, tfd: i32) -> Result<bool> {
    match epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, 0, 0) {
        Err(Errno::EEXIST) => Ok(true),
        Ok(()) => epoll_ctl(epfd, EPOLL_CTL_DEL, tfd, 0, 0).map(|()| false),
        Err(e) => Err(e),
    }
}

/// Whether the file registered in epoll `epfd` under descriptor number
/// `tfd` — the `nth` such registration in the interest list's order, which
/// is fdinfo's (a number closed and reused while its old file stayed
/// registered names two) — is the open file of descriptor `fd`
/// (`kcmp(KCMP_EPOLL_TFD)`: Ok(0) if it is).
pub fn kcmp_epoll_tfd(fd: i32, epfd: i32, tfd: i32, nth: u32) -> Result<usize> {
    const KCMP_EPOLL_TFD: i32 = 7;
    // struct kcmp_epoll_slot { efd, tfd, toff: u32 }
    let slot: [u32; 3] = [epfd as u32, tfd as u32, nth];
    let pid = getpid();
    // SAFETY: the kernel reads the three-word kcmp_epoll_slot `slot`, a live local.
    unsafe { syscall!(Sysno::kcmp, pid, pid, KCMP_EPOLL_TFD, fd, slot.as_ptr()) }
}

pub fn socket(domain: i32, ty: i32, protocol: i32) -> Result<crate::OwnedFd> {
    // SAFETY: no pointer: three integers.
    crate::fd::created(unsafe { syscall!(Sysno::socket, domain, ty, protocol) })
}

pub fn socketpair(domain: i32, ty: i32, protocol: i32) -> Result<(crate::OwnedFd, crate::OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into `fds`, a live array of two.
    let r = unsafe { syscall!(Sysno::socketpair, domain, ty, protocol, fds.as_mut_ptr()) };
    crate::fd::created_pair(r, fds)
}

pub const SO_ACCEPTCONN: i32 = 30;

/// The address socket `fd` is bound to (`getsockname`), into `buf`: its
/// length.
pub fn getsockname(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    let mut len = buf.len() as u32;
    // SAFETY: the kernel writes at most `len` bytes into `buf` (borrowed mutably) and updates `len`, a live local.
    unsafe { syscall!(Sysno::getsockname, fd.raw(), buf.as_mut_ptr(), &mut len as *mut u32) }
        .map(|_| (len as usize).min(buf.len()))
}

/// `bind(fd, addr)`: `addr` is a whole `struct sockaddr_*`.
pub fn bind(fd: impl AsFd, addr: &[u8]) -> Result<()> {
    // SAFETY: the kernel reads `addr.len()` bytes from `addr`, borrowed for the call.
    unsafe { syscall!(Sysno::bind, fd.raw(), addr.as_ptr(), addr.len()) }.map(drop)
}

/// `connect(fd, addr)`: `addr` is a whole `struct sockaddr_*`.
pub fn connect(fd: impl AsFd, addr: &[u8]) -> Result<()> {
    // SAFETY: the kernel reads `addr.len()` bytes from `addr`, borrowed for the call.
    unsafe { syscall!(Sysno::connect, fd.raw(), addr.as_ptr(), addr.len()) }.map(drop)
}

/// `accept4(fd, NULL, NULL, flags)`: the new connection.
pub fn accept4(fd: impl AsFd, flags: i32) -> Result<crate::OwnedFd> {
    // SAFETY: no address is asked for: the kernel writes no memory of ours.
    crate::fd::created(unsafe { syscall!(Sysno::accept4, fd.raw(), 0usize, 0usize, flags) })
}

/// The process at the other end of UNIX socket `fd` (`SO_PEERCRED`):
/// its pid and user id, as the caller's namespaces see them.
pub fn peer_cred(fd: impl AsFd) -> Result<(i32, u32)> {
    const SO_PEERCRED: i32 = 17;
    let mut cred = [0u32; 3]; // struct ucred { pid, uid, gid }
    let mut len: u32 = 12;
    // SAFETY: the kernel writes at most `len` (12) bytes into `cred` and updates `len`, both live locals.
    unsafe { syscall!(Sysno::getsockopt, fd.raw(), SOL_SOCKET, SO_PEERCRED, cred.as_mut_ptr(), &mut len as *mut u32) }
        .map(|_| (cred[0] as i32, cred[1]))
}

pub fn listen(fd: impl AsFd, backlog: i32) -> Result<()> {
    // SAFETY: integer arguments only: the kernel touches no memory of ours.
    unsafe { syscall!(Sysno::listen, fd.raw(), backlog) }.map(drop)
}

pub fn getsockopt_int(fd: impl AsFd, level: i32, name: i32) -> Result<i32> {
    let mut v: i32 = 0;
    let mut len: u32 = 4;
    // SAFETY: the kernel writes at most `len` (4) bytes into `v` and updates `len`, both live locals.
    unsafe { syscall!(Sysno::getsockopt, fd.raw(), level, name, &mut v as *mut i32, &mut len as *mut u32) }.map(|_| v)
}

pub fn setsockopt_int(fd: impl AsFd, level: i32, name: i32, value: i32) -> Result<()> {
    // SAFETY: the kernel reads 4 bytes from `value`, a live local.
    unsafe { syscall!(Sysno::setsockopt, fd.raw(), level, name, &value as *const i32, 4usize) }.map(drop)
}

/// `recvfrom(fd, buf, flags)` without an address: bytes received (with
/// MSG_TRUNC on a datagram socket, the message's whole length).
pub fn recv(fd: impl AsFd, buf: &mut [u8], flags: i32) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, borrowed mutably for the call.
    unsafe { syscall!(Sysno::recvfrom, fd.raw(), buf.as_mut_ptr(), buf.len(), flags, 0usize, 0usize) }
}

/// `sendto(fd, buf, flags)` without an address.
pub fn send(fd: impl AsFd, buf: &[u8], flags: i32) -> Result<usize> {
    // SAFETY: the kernel reads `buf.len()` bytes from `buf`, borrowed for the call.
    unsafe { syscall!(Sysno::sendto, fd.raw(), buf.as_ptr(), buf.len(), flags, 0usize, 0usize) }
}

/// `sendto` the kernel's netlink (`struct sockaddr_nl` with pid 0).
pub fn send_netlink(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    let addr: [u32; 3] = [AF_NETLINK as u32, 0, 0];
    // SAFETY: the kernel reads `buf` and the 12-byte sockaddr_nl `addr`, both live for the call.
    unsafe { syscall!(Sysno::sendto, fd.raw(), buf.as_ptr(), buf.len(), 0, addr.as_ptr(), 12usize) }
}

pub const MFD_CLOEXEC: u32 = 1;
pub const MFD_ALLOW_SEALING: u32 = 2;
pub const F_ADD_SEALS: i32 = 1033;
pub const F_GET_SEALS: i32 = 1034;

pub fn memfd_create(name: &core::ffi::CStr, flags: u32) -> Result<crate::OwnedFd> {
    // SAFETY: `name` is a NUL-terminated string the kernel only reads.
    crate::fd::created(unsafe { syscall!(Sysno::memfd_create, name.as_ptr(), flags) })
}

/// `pwrite` of a whole buffer at `offset`.
pub fn pwrite(fd: impl AsFd, buf: &[u8], offset: u64) -> Result<usize> {
    // SAFETY: the kernel reads `buf.len()` bytes from `buf`, borrowed for the call.
    unsafe { syscall!(Sysno::pwrite64, fd.raw(), buf.as_ptr(), buf.len(), offset) }
}

pub fn inotify_init1(flags: i32) -> Result<crate::OwnedFd> {
    // SAFETY: no pointer: flags only.
    crate::fd::created(unsafe { syscall!(Sysno::inotify_init1, flags) })
}

pub fn inotify_add_watch(fd: impl AsFd, path: &core::ffi::CStr, mask: u32) -> Result<i32> {
    // SAFETY: `path` is a NUL-terminated string the kernel only reads.
    unsafe { syscall!(Sysno::inotify_add_watch, fd.raw(), path.as_ptr(), mask) }.map(|wd| wd as i32)
}

/// `ioctl(fd, INOTIFY_IOC_SETNEXTWD)`: the watch descriptor the next
/// `inotify_add_watch` of a new inode gets (needs CONFIG_CHECKPOINT_RESTORE).
pub fn inotify_set_next_wd(fd: impl AsFd, wd: i32) -> Result<()> {
    const INOTIFY_IOC_SETNEXTWD: u64 = 0x4004_4900;
    // SAFETY: no pointer: the watch descriptor is passed by value.
    unsafe { syscall!(Sysno::ioctl, fd.raw(), INOTIFY_IOC_SETNEXTWD, wd as i64) }.map(drop)
}
