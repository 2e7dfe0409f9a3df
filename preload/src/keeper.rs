//! The lock keeper: a stopped program's file locks stay held until a
//! restart takes them back (`ckpt --release-locks` turns this off).
//!
//! A program that stops at a checkpoint exits, and its locks would go with
//! it: another process (a second sqlite connection) could take them, find
//! itself alone and, say, checkpoint and delete a WAL file the program's
//! image still counts on. So when the program holds a lock, the capture,
//! once the image is in place and just before the program exits, starts a
//! *keeper* that shares the program's descriptor table:
//!
//! ```text
//!  coordinator (program)              middle                   keeper
//!  ─────────────────────              ──────                   ──────
//!  scan: the locked files' fds
//!  listen on \0ckpt-locks/UID/PID-CREATED
//!  pidfd of the program
//!  clone(VM|FILES|VFORK) ───────────► clone(VM|FILES) ───────► setsid, "ckpt-locks",
//!  (sleeps until the middle exits)    exit                      signals default (HUP,
//!  "locks held by keeper pid N"                                 INT, PIPE ignored)
//!  exit_group(99) ·····························(pidfd)········► closes every fd but the
//!                                                               locked files' and its
//!                                                               socket; unmaps all but
//!                                                               libckpt.so and its stack
//!  restart: connect, SO_PEERCRED ─────────────────────────────► same uid: "R"
//!            waits for "K" ◄─────────────────────────────────── closes everything, "K",
//!            takes the locks                                    exits
//! ```
//!
//! * **Gapless.** `fcntl` record locks belong to the descriptor table,
//!   OFD and `flock` locks to the open file descriptions: the keeper shares
//!   both, so the program's exit drops only a reference and releases
//!   nothing. It keeps every descriptor of a locked inode (closing any
//!   descriptor of an inode drops the table's record locks on it) and
//!   closes the rest once the program is gone, so that pipes, sockets and
//!   terminals see the program's end as they would have without it.
//! * **Nothing of the program.** It shares the program's memory only
//!   until the program has exited, then unmaps all of it but libckpt.so
//!   and its own stack; it runs raw system calls only; no handler of the
//!   program's can run in it; it is in a session of its own, not a child
//!   of the program's parent (the middle exits: init, or the nearest child
//!   subreaper, adopts it).
//! * **Released by restart** (loader/src/locks.rs), by `kill PID`, or by
//!   nothing else: a restart on another machine, or a second restart of the
//!   same image, finds no keeper and takes the locks as it can.
//!
//! In a job, each process that holds locks has a keeper of its own (its
//! image's header names its pid and time): restart's copy that restores
//! that process asks it.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::SeqCst};

use ckpt_sys::events as ev;
use ckpt_sys::locks::{KeeperAddr, KEEPER_NAME, KEEPER_RELEASE, KEEPER_RELEASED};
use ckpt_sys::{self as sys, thread, Errno, OwnedFd};

use crate::fdinfo;
use crate::msg;

const MAX_FDS: usize = ckpt_image::MAX_FDS as usize;
/// Locked files told apart; with more, every regular file is kept.
const MAX_INODES: usize = 1024;
/// The keeper's own memory: its [`Plan`], then its stack.
const REGION: u64 = 128 << 10;

/// The creation time of the image being written (its header's), which
/// with the pid names the keeper's socket.
static CREATED_NS: AtomicU64 = AtomicU64::new(0);

/// Called by the capture with the image's header: the keeper of this
/// checkpoint is named after it.
pub fn note(header: &ckpt_image::Header) {
    CREATED_NS.store(header.created_ns, SeqCst);
}

/// What the keeper keeps, at the start of its own mapping.
#[repr(C)]
struct Plan {
    /// A bit per descriptor the keeper does not close: a locked inode's,
    /// and its listening socket.
    keep: [u64; MAX_FDS / 64],
    /// The locked files (device, inode).
    inodes: [(u64, u64); MAX_INODES],
    n_inodes: usize,
    /// More locked files than `inodes` holds: every regular file is kept.
    overflow: bool,
    listen: i32,
    pidfd: i32,
    /// The keeper's pid, or -errno of its clone (set by the middle).
    keeper: AtomicI32,
    /// The mapping this plan begins.
    region: (u64, u64),
}

impl Plan {
    fn kept(&self, fd: usize) -> bool {
        fd < MAX_FDS && self.keep[fd / 64] & (1 << (fd % 64)) != 0
    }

    fn set(&mut self, fd: usize, on: bool) {
        if fd < MAX_FDS {
            let bit = 1u64 << (fd % 64);
            self.keep[fd / 64] = if on { self.keep[fd / 64] | bit } else { self.keep[fd / 64] & !bit };
        }
    }

    fn locked(&self, st: &sys::Stat) -> bool {
        self.overflow || self.inodes[..self.n_inodes].contains(&(st.dev, st.ino))
    }
}

/// In stop mode, once the image is in place and before the program exits:
/// if it holds a file lock, starts its keeper and says so on stderr
/// (unless `quiet`). `member`: this process is a member of a job.
/// `scratch`: room to list the descriptors and read their fdinfo.
pub fn start(quiet: bool, member: bool, scratch: &mut [u8]) {
    // SAFETY: a new private anonymous mapping, which nothing else uses.
    let Ok(base) = (unsafe {
        sys::mmap(0, REGION, sys::PROT_READ | sys::PROT_WRITE, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS, -1, 0)
    }) else {
        return;
    };
    const _: () = assert!(core::mem::size_of::<Plan>() as u64 + (64 << 10) <= REGION);
    // SAFETY: the mapping is zero-filled, large enough and aligned for a
    // Plan (plain integers and an atomic, for which zero is valid), and
    // this is its only reference until the keeper gets it.
    let plan = unsafe { &mut *(base as *mut Plan) };
    plan.region = (base, base + REGION);
    (plan.listen, plan.pidfd) = (-1, -1);
    let started = match scan(plan, scratch) {
        Ok(true) => listen(plan).and_then(|()| spawn(plan)),
        Ok(false) => Ok(0),
        Err(e) => Err(e),
    };
    match started {
        Ok(0) => {}
        // (The region is the keeper's now.)
        Ok(_) if quiet => return,
        Ok(pid) => {
            let mut l = msg::Line::new();
            l.push(b"ckpt: ");
            if member {
                let _ = write!(l, "the locks of process {} are", sys::getpid());
            } else {
                l.push(b"locks");
            }
            let _ = write!(l, " held by keeper pid {pid} until restart (kill it to release)");
            l.emit();
            return;
        }
        Err(e) => {
            let mut l = msg::Line::new();
            let _ = write!(
                l,
                "ckpt: warning: cannot start a lock keeper: {} ({}); the program's file locks are released as it stops",
                sys::errno_text(e),
                sys::errno_name(e)
            );
            l.emit();
            for fd in [plan.listen, plan.pidfd] {
                if fd >= 0 {
                    sys::close(fd);
                }
            }
        }
    }
    // SAFETY: the region mapped above, which no keeper uses.
    let _ = unsafe { sys::munmap(base, REGION) };
}

/// Fills `plan.keep` and `plan.inodes` from the program's descriptors:
/// whether any file is locked.
fn scan(plan: &mut Plan, scratch: &mut [u8]) -> Result<bool, Errno> {
    let (dents, line) = scratch.split_at_mut(scratch.len() / 2);
    let dir = sys::open(c"/proc/self/fd", sys::O_RDONLY | sys::O_DIRECTORY | sys::O_CLOEXEC)?;
    let mut listed = Ok(());
    loop {
        let len = match sys::getdents64(&dir, dents) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                listed = Err(e);
                break;
            }
        };
        for name in sys::dirent_names(&dents[..len]) {
            let Some((fd, _)) = fdinfo::number(name, 10) else { continue };
            let fd = fd as i32;
            let regular = fd != dir.as_raw() && sys::fstat(fd).is_ok_and(|st| st.mode & sys::S_IFMT == sys::S_IFREG);
            if !regular {
                continue;
            }
            plan.set(fd as usize, true);
            let mut locked = false;
            let _ = fdinfo::for_each_line(fd, line, |l| {
                locked |= l.strip_prefix(b"lock:").and_then(crate::locks::parse).is_some();
            });
            if locked {
                if let Ok(st) = sys::fstat(fd) {
                    if plan.n_inodes == MAX_INODES {
                        plan.overflow = true;
                    } else if !plan.locked(&st) {
                        plan.inodes[plan.n_inodes] = (st.dev, st.ino);
                        plan.n_inodes += 1;
                    }
                }
            }
        }
    }
    drop(dir);
    listed?;
    for fd in 0..MAX_FDS {
        if plan.kept(fd) && !sys::fstat(fd as i32).is_ok_and(|st| plan.locked(&st)) {
            plan.set(fd, false);
        }
    }
    Ok(plan.n_inodes != 0)
}

/// The keeper's socket, named after this image, and a pidfd of the program.
fn listen(plan: &mut Plan) -> Result<(), Errno> {
    let addr = KeeperAddr::new(sys::geteuid(), sys::getpid() as u32, CREATED_NS.load(SeqCst));
    // Both are the plan's: the keeper's, or closed by `start` on failure.
    plan.listen = ev::socket(ev::AF_UNIX, ev::SOCK_STREAM | ev::SOCK_CLOEXEC, 0)?.into_raw();
    ev::bind(plan.listen, addr.as_bytes())?;
    ev::listen(plan.listen, 8)?;
    plan.set(plan.listen as usize, true);
    plan.pidfd = sys::pidfd_open(sys::getpid())?.into_raw();
    Ok(())
}

/// Starts the keeper through a middle process: its pid.
fn spawn(plan: &Plan) -> Result<i32, Errno> {
    // The middle runs below this frame, on the same stack: this thread
    // sleeps until it has exited (CLONE_VFORK).
    let here = 0u8;
    let stack_end = (core::ptr::addr_of!(here) as u64 - (16 << 10)) & !15;
    // SAFETY: the stack below this frame is unused while this thread
    // sleeps in clone; the middle never returns (it exits), and `plan`
    // outlives it.
    let middle =
        unsafe { thread::spawn(thread::PROCESS_VM_FILES_VFORK, stack_end, 0, middle, plan as *const Plan as u64) }?;
    let _ = sys::wait4_clone(middle);
    match plan.keeper.load(SeqCst) {
        pid if pid > 0 => Ok(pid),
        e => Err(Errno::new(-e)),
    }
}

/// The middle process: starts the keeper on the plan's stack, and exits
/// (the keeper is orphaned at once).
unsafe extern "C" fn middle(arg: u64) -> ! {
    // SAFETY: the coordinator's plan, alive while it waits for us.
    let plan = unsafe { &*(arg as *const Plan) };
    // Named now, so that the keeper has its name from its first instant
    // (a restarted program's init looks for it by name: loader/src/init.rs).
    // SAFETY: PR_SET_NAME reads a NUL-terminated name (up to 16 bytes).
    let _ = unsafe { sys::prctl(sys::PR_SET_NAME, KEEPER_NAME.as_ptr() as u64, 0, 0, 0) };
    let top = (plan.region.1 - 64) & !15;
    // SAFETY: the plan's region past the Plan is the keeper's own stack;
    // the keeper never returns.
    let result = unsafe { thread::spawn(thread::PROCESS_VM_FILES, top, 0, keeper, arg) };
    plan.keeper.store(result.unwrap_or_else(|e| -e.into_raw()), SeqCst);
    sys::exit_thread(0)
}

/// The keeper (see the module's documentation). Raw system calls only.
unsafe extern "C" fn keeper(arg: u64) -> ! {
    // SAFETY: the plan at the start of the keeper's own region, which the
    // coordinator no longer touches.
    let plan = unsafe { &*(arg as *const Plan) };
    let _ = sys::setsid();
    // No handler of the program's may run here: every signal does what it
    // does by default (`kill PID` ends the keeper, which releases), but
    // those of a terminal or a reader that went away.
    const SIGHUP: i32 = 1;
    const SIGINT: i32 = 2;
    const SIGPIPE: i32 = 13;
    for sig in (1..=64).filter(|&s| s != 9 && s != 19) {
        let ignore = matches!(sig, SIGHUP | SIGINT | SIGPIPE);
        let k = sys::KSigAction { handler: ignore as u64, flags: 0, restorer: 0, mask: 0 };
        let _ = sys::rt_sigaction(sig, Some(&k), None);
    }
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, 0);
    // The program's end: its descriptors and memory are ours alone now.
    loop {
        match sys::poll_readable(plan.pidfd, u64::MAX / 2) {
            Ok(true) => break,
            Ok(false) | Err(Errno::EINTR) => continue,
            Err(_) => sys::exit_group(1),
        }
    }
    close_all_but(|fd| plan.kept(fd as usize));
    unmap_all_but(plan.region);
    // (Nor does it keep the program's working directory busy.)
    let _ = sys::chdir(c"/");
    loop {
        let conn = match ev::accept4(plan.listen, ev::SOCK_CLOEXEC) {
            Ok(conn) => conn,
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            // (Not to be: the locks go with this process.)
            Err(_) => sys::exit_group(1),
        };
        if ev::peer_cred(&conn).is_ok_and(|(_, uid)| uid == sys::geteuid()) && asks_release(&conn) {
            close_all_but(|fd| fd == conn.as_raw() as u32);
            let _ = ev::send(&conn, &[KEEPER_RELEASED], ev::MSG_NOSIGNAL);
            sys::exit_group(0);
        }
    }
}

/// Whether connection `conn` sends the release request (within 2 s).
fn asks_release(conn: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    sys::poll_readable(conn, 2_000_000_000) == Ok(true) && ev::recv(conn, &mut b, 0) == Ok(1) && b[0] == KEEPER_RELEASE
}

/// Closes every descriptor but those `keep` says.
fn close_all_but(keep: impl Fn(u32) -> bool) {
    let mut first = 0u32;
    for fd in 0..MAX_FDS as u32 {
        if keep(fd) {
            if fd > first {
                let _ = sys::close_range(first, fd - 1, 0);
            }
            first = fd + 1;
        }
    }
    let _ = sys::close_range(first, u32::MAX, 0);
}

/// Unmaps all of this process's memory but libckpt.so and `own`.
fn unmap_all_but(own: (u64, u64)) {
    extern "C" {
        // Defined by the linker: the start of libckpt.so's ELF header and
        // the end of its last segment.
        static __ehdr_start: u8;
        static _end: u8;
    }
    let lib = (
        core::ptr::addr_of!(__ehdr_start) as u64 & !(ckpt_image::PAGE_SIZE - 1),
        (core::ptr::addr_of!(_end) as u64 + ckpt_image::PAGE_SIZE - 1) & !(ckpt_image::PAGE_SIZE - 1),
    );
    let (low, high) = if lib.0 < own.0 { (lib, own) } else { (own, lib) };
    // (Above 47 bits only with 5-level paging, for a program that asked.)
    const TOP_57: u64 = (1 << 56) - ckpt_image::PAGE_SIZE;
    for (start, end) in [(0, low.0), (low.1, high.0), (high.1, ckpt_image::USER_END), (ckpt_image::USER_END, TOP_57)] {
        if end > start {
            // SAFETY: the program has exited: nothing but this process
            // uses its memory, and this process keeps what it runs on.
            let _ = unsafe { sys::munmap(start, end - start) };
        }
    }
}
