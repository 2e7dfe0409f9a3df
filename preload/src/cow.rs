//! Copy-on-write checkpoints: the default in `--continue` and `--interval`
//! mode (`--no-cow` / `CKPT_NO_COW=1` turn them off).
//!
//! The capture stops the threads and records everything but the memory's
//! contents as usual; then, instead of writing the image while the program
//! waits, it starts a *writer*: a copy of the process made by `fork`,
//! which holds the program's memory as it was at that instant (the kernel
//! shares the pages and copies one only when the program writes to it) and
//! writes, fsyncs and renames the image from that copy, says so on stderr,
//! and exits. The program is released as soon as the writer exists.
//!
//! ```text
//!  coordinator (program)        middle                    writer
//!  ─────────────────────        ──────                    ──────
//!  clone(VM|VFORK, no signal) ► comm "ckpt-writer"
//!    (sleeps until the           pidfd_open(program)
//!     middle exits)              fork ──────────────────► robust futex on page.writer,
//!                                page.writer := pid         closes the program's fds
//!                                exit                       (not 2)
//!  wait4(middle, __WALL)                                    writes, fsyncs, renames
//!  release the threads                                      stderr: "checkpoint written"
//!  page.paused := pause ───────────────────────────────────► (read for that line)
//!                                                           page.writer := 0; if
//!                                                           page.again: signal the program
//! ```
//!
//! * **Not the program's child.** The middle process shares the program's
//!   memory (no copy: cheap) and is reaped by the coordinator before any
//!   thread of the program runs again; its exit sends no signal. The
//!   writer, orphaned at once, belongs to init (or the nearest child
//!   subreaper above the program): the program's `wait` never sees it and
//!   no SIGCHLD comes for it. A program that is itself a child subreaper
//!   would get the orphan back: its checkpoints are written in place.
//! * **One writer at a time.** `page.writer` holds the running writer's
//!   pid. A checkpoint asked for meanwhile is coalesced: it sets
//!   `page.again`, and the writer, when done, sends the checkpoint signal
//!   (through a pidfd taken while the program was surely alive): however
//!   many came, one more checkpoint follows. The word is the writer's
//!   robust futex: if the writer is killed, the kernel marks it
//!   `FUTEX_OWNER_DIED`, and the next checkpoint says so and goes on.
//! * **Nothing of the program's runs in the writer.** It has every signal
//!   blocked (it comes from the checkpoint handler), so Ctrl-C or a signal
//!   to the process group does nothing to it (SIGKILL and SIGSTOP still
//!   do); it runs no atexit handler and flushes no stdio buffer (it ends
//!   with `exit_group`); it keeps only the program's stderr.
//! * **The program may die first**: the writer finishes the image anyway.
//!
//! Raw system calls only, in the handler's context.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::SeqCst};

use ckpt_sys::{self as sys, thread, Errno};

use ckpt_image::Region;

use crate::msg;
use crate::workspace;

/// What the program and its writer share: the writer page of the workspace,
/// `MAP_SHARED`. (In an image, like the rest of the workspace, it is not
/// stored.)
#[repr(C)]
struct Page {
    /// The running writer's pid; 0 when none. The writer's robust futex:
    /// the kernel sets [`OWNER_DIED`] (and clears the pid) if the writer
    /// dies without clearing it.
    writer: AtomicU32,
    /// 1: a checkpoint was asked for while the writer ran.
    again: AtomicU32,
    /// How long the program was paused for the checkpoint being written,
    /// in µs, plus one; 0 until the coordinator knows.
    paused_us: AtomicU32,
    /// 1: the program has memory a writer does not get
    /// ([`inherited`]): checkpoints are written in place from now on.
    in_place: AtomicU32,
}

const TID_MASK: u32 = 0x3fff_ffff;
const OWNER_DIED: u32 = 0x4000_0000;
const PAGE: u64 = 4096;

/// The pid of the process that mapped the writer page: a forked child of
/// the program, or a restarted one under another pid, maps its own.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Set in the writer process only.
static IN_WRITER: AtomicBool = AtomicBool::new(false);

/// Whether this is a copy-on-write writer: it shows no progress line on a
/// terminal (the program is not waiting, and its own output goes on).
pub fn in_writer() -> bool {
    IN_WRITER.load(SeqCst)
}

/// The writer page, mapped now if this process has not mapped it yet.
fn page() -> Option<&'static Page> {
    let me = sys::getpid() as u32;
    let addr = workspace::writer_page();
    let owner = OWNER.load(SeqCst);
    if owner != me && OWNER.compare_exchange(owner, me, SeqCst, SeqCst).is_ok() {
        // SAFETY: the page is the workspace's, set aside for this and used
        // by nothing else; a new zero page replaces it.
        let mapped = unsafe {
            sys::mmap(
                addr,
                PAGE,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_SHARED | sys::MAP_ANONYMOUS | sys::MAP_FIXED,
                -1,
                0,
            )
        };
        if mapped != Ok(addr) {
            OWNER.store(0, SeqCst);
            return None;
        }
    }
    // SAFETY: a mapped, writable page; Page is atomics only.
    Some(unsafe { &*(addr as *const Page) })
}

/// Maps the writer page (constructor), so that the first checkpoint does
/// not have to.
pub fn prepare() {
    let _ = page();
}

/// Whether a writer is running. A pid whose process is gone (a writer
/// killed before its robust futex was set) counts as none.
fn running(p: &Page) -> bool {
    let pid = p.writer.load(SeqCst) & TID_MASK;
    pid != 0 && sys::kill(pid as i32, 0) != Err(Errno::ESRCH)
}

/// Called by the checkpoint handler: true if a writer is running, in which
/// case the request is handed to it (it signals the program when it is
/// done) and the handler returns at once.
pub fn defer() -> bool {
    let Some(p) = page() else { return false };
    if !running(p) {
        return false;
    }
    p.again.store(1, SeqCst);
    if running(p) {
        return true;
    }
    // It ended meanwhile: this handler takes the checkpoint, unless the
    // writer took the request (then its signal is on the way).
    p.again.swap(0, SeqCst) == 0
}

/// Whether this checkpoint can be copy-on-write: the writer page is there,
/// no writer runs (the handler coalesces), and the program is not a child
/// subreaper (the orphaned writer would become its child).
pub fn possible() -> bool {
    let mut subreaper = 0i32;
    // SAFETY: the kernel writes one int to `subreaper`.
    let got = unsafe { sys::prctl(sys::PR_GET_CHILD_SUBREAPER, &mut subreaper as *mut i32 as u64, 0, 0, 0) };
    got.is_ok() && subreaper == 0 && page().is_some_and(|p| !running(p) && p.in_place.load(SeqCst) == 0)
}

/// In the writer: whether every region came with the fork. Memory the
/// program marked `MADV_DONTFORK` did not: then the writer says so, has the
/// program write this checkpoint and the next ones in place, and returns
/// false. (`mprotect` to a region's own protection
/// changes nothing, and fails with ENOMEM where nothing is mapped.)
/// Memory marked `MADV_WIPEONFORK` is in the writer's copy zero-filled,
/// and so it is in the image: what a forked child of the program sees.
pub fn inherited(regions: &[Region]) -> bool {
    // SAFETY: each region's own protection, on its own range.
    let missing =
        regions.iter().any(|r| unsafe { sys::mprotect(r.start, r.len(), r.prot as i32) } == Err(Errno::ENOMEM));
    if !missing {
        return true;
    }
    msg::line(&[
        b"ckpt: the program has memory marked MADV_DONTFORK, which a copy-on-write writer does not get: ",
        b"this checkpoint and the next ones are written in place (as with --no-cow)",
    ]);
    if let Some(p) = page() {
        p.in_place.store(1, SeqCst);
        p.again.store(1, SeqCst);
    }
    false
}

/// What the middle process hands back, through the memory it shares with
/// the coordinator.
struct Start<'a> {
    job: *mut (dyn FnMut() + 'a),
    program: i32,
    signal: i32,
    page: &'a Page,
    /// The writer's pid, or -errno of the fork.
    result: AtomicI32,
}

/// Starts the writer, which runs `job` on a copy of the process as it is
/// now, then signals the program with `signal` if a checkpoint was asked
/// for meanwhile, and exits. Returns when the writer exists (its pid); the
/// caller releases the program.
pub fn spawn(job: &mut dyn FnMut(), signal: i32) -> Result<i32, Errno> {
    let page = page().ok_or(Errno::ENOMEM)?;
    if page.writer.swap(0, SeqCst) & OWNER_DIED != 0 {
        msg::line(&[
            b"ckpt: the writer of the previous checkpoint was killed before it finished; ",
            b"that image was not written, the one before is unchanged",
        ]);
    }
    page.again.store(0, SeqCst);
    page.paused_us.store(0, SeqCst);
    let start =
        Start { job: job as *mut (dyn FnMut() + '_), program: sys::getpid(), signal, page, result: AtomicI32::new(0) };
    // The middle process runs below this frame, on the same stack: this
    // thread sleeps until it has exited (CLONE_VFORK).
    let here = 0u8;
    let stack_end = (core::ptr::addr_of!(here) as u64 - (16 << 10)) & !15;
    // SAFETY: the stack below this frame is unused while this thread
    // sleeps in clone; the middle never returns (it exits), and `start`
    // outlives it.
    let middle =
        unsafe { thread::spawn(thread::PROCESS_VM_VFORK, stack_end, 0, middle, &start as *const Start as u64) }?;
    let _ = sys::wait4_clone(middle);
    match start.result.load(SeqCst) {
        pid if pid > 0 => Ok(pid),
        e => Err(Errno::new(-e)),
    }
}

/// The coordinator, once the threads are released: how long they were
/// paused, for the writer's line.
pub fn released(paused_ns: u64) {
    let Some(p) = page() else { return };
    p.paused_us.store((paused_ns / 1000).min(u32::MAX as u64 - 1) as u32 + 1, SeqCst);
    sys::futex_wake_shared(&p.paused_us, u32::MAX);
}

/// The writer: the program's pause (waited for, up to a second), in ns.
pub fn paused_ns() -> Option<u64> {
    let p = page()?;
    let start = sys::clock_ns(sys::CLOCK_MONOTONIC);
    loop {
        let us = p.paused_us.load(SeqCst);
        if us != 0 {
            return Some((us as u64 - 1) * 1000);
        }
        if sys::clock_ns(sys::CLOCK_MONOTONIC) - start > 1_000_000_000 {
            return None;
        }
        let _ = sys::futex_wait_shared(&p.paused_us, 0, 100_000_000);
    }
}

/// The middle process: shares the program's memory, forks the writer
/// from it, and exits.
unsafe extern "C" fn middle(arg: u64) -> ! {
    // SAFETY: the coordinator's Start, alive while it waits for us.
    let start = unsafe { &*(arg as *const Start) };
    // Named at once (the writer inherits the name): for a moment this is a
    // child of the program, which the process-tree code must pass over.
    // SAFETY: PR_SET_NAME reads a NUL-terminated name (up to 16 bytes).
    let _ = unsafe { sys::prctl(sys::PR_SET_NAME, c"ckpt-writer".as_ptr() as u64, 0, 0, 0) };
    // Taken now, while the program certainly is the process of that pid.
    // (Its number is this process's and then the writer's, as the rest of
    // their descriptors: both end by exiting, never by returning.)
    let pidfd = sys::pidfd_open(start.program).map_or(-1, sys::OwnedFd::into_raw);
    // SAFETY: this process has one thread, and the writer uses only raw
    // system calls and the workspace.
    match unsafe { sys::fork() } {
        Ok(0) => writer(start, pidfd),
        Ok(pid) => {
            start.page.writer.store(pid as u32, SeqCst);
            start.result.store(pid, SeqCst);
        }
        Err(e) => start.result.store(-e.into_raw(), SeqCst),
    }
    sys::exit_thread(0)
}

/// The writer process (named by the middle): keeps only stderr (and the
/// pidfd), has the kernel mark its death on the page, runs the job, and
/// ends.
fn writer(start: &Start, pidfd: i32) -> ! {
    // The page stays the one shared with the program ([`page`] maps a new
    // one in any other process).
    OWNER.store(sys::getpid() as u32, SeqCst);
    IN_WRITER.store(true, SeqCst);
    sys::close(0);
    sys::close(1);
    if pidfd > 3 {
        let _ = sys::close_range(3, pidfd as u32 - 1, 0);
    }
    let _ = sys::close_range(3.max(pidfd + 1) as u32, u32::MAX, 0);
    // The robust list: one entry, whose futex is page.writer. The kernel
    // walks it when this process ends, however it ends.
    let word = start.page.writer.as_ptr() as u64;
    let mut entry = [0u64; 1];
    let mut head = [0u64; 3];
    head[0] = entry.as_ptr() as u64;
    head[1] = word.wrapping_sub(entry.as_ptr() as u64);
    entry[0] = head.as_ptr() as u64;
    // SAFETY: the list lives on this stack until the process ends.
    let _ = unsafe { sys::set_robust_list(head.as_mut_ptr() as u64, 24) };
    // SAFETY: the coordinator's job, in this process's own copy of its
    // memory, which nothing else uses.
    unsafe { (*start.job)() };
    let me = sys::getpid() as u32;
    // The middle stores our pid before it exits: wait for that (briefly).
    for _ in 0..1000 {
        if start.page.writer.compare_exchange(me, 0, SeqCst, SeqCst).is_ok() {
            break;
        }
        let _ = sys::futex_wait_shared(&start.page.writer, 0, 1_000_000);
    }
    if start.page.again.swap(0, SeqCst) == 1 && pidfd >= 0 {
        let _ = sys::pidfd_send_signal(pidfd, start.signal);
    }
    core::hint::black_box(&entry);
    sys::exit_group(0)
}
