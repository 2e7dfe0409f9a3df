//! Stopping every thread for a checkpoint, and describing each one.
//!
//! The checkpoint signal is process-directed: whichever thread the kernel
//! picks becomes the coordinator. It signals every other thread with the
//! thread signal (`THREAD_SIGNAL`, reserved for ckpt), and each of them, in
//! its own handler, records its own state in a slot of the thread table —
//! its signal frame, %fs, rseq, tid address, robust list, name — then parks
//! on a futex until the coordinator releases it.
//!
//! ```text
//!  coordinator                              other threads
//!  ───────────                              ─────────────
//!  active := odd generation, slots := 1
//!  loop: list /proc/self/task
//!        tgkill each new tid ─────────────► handler: record own state in
//!        wait until all signaled arrived ◄── slots[n]; arrived += 1;
//!  until a listing finds no new thread       futex-wait until release
//!  write the image
//!  stop: exit_group (everyone ends)
//!  or:   release := generation, wake all ─► re-register rseq; arrived -= 1;
//!        wait until arrived == 0             return from handler
//!        active := generation + 1 (even: idle)
//! ```
//!
//! Threads created or exiting meanwhile are found by the re-listing; a
//! thread that exits before it handles its signal is noticed (tgkill with
//! signal 0 answers ESRCH) and no longer waited for. Parked threads wait on
//! raw futexes, never on anything of glibc's. The coordination words live in
//! the workspace, which a restart maps back zero-filled: a restarted program
//! starts with no checkpoint in progress.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use ckpt_image::{Thread, PAGE_SIZE};
use ckpt_sys::{self as sys, Errno};

use crate::workspace::{self, Shared, MAX_THREADS};

/// The signal that stops the other threads: a real-time signal that
/// programs leave alone (glibc uses 32 and 33; SIGRTMIN is 34).
pub const THREAD_SIGNAL: i32 = 62;

/// How long a signaled thread may take to arrive before the checkpoint is
/// abandoned.
const ARRIVAL_TIMEOUT_NS: u64 = 5_000_000_000;

/// Coordination words, in the workspace.
#[repr(C)]
pub struct Sync {
    /// Checkpoint generation: odd while a checkpoint is being taken.
    pub active: AtomicU32,
    /// Threads that recorded themselves and are parked.
    pub arrived: AtomicU32,
    /// The generation whose parked threads may go.
    pub release: AtomicU32,
    /// Next free slot of the thread table (slot 0: the coordinator).
    pub slots: AtomicU32,
    /// 1 when the checkpoint signal arrived during a checkpoint: one more
    /// follows it. (In the workspace, so an image never carries it set.)
    pub again: AtomicU32,
}

/// What the constructor learned about glibc, for every capture.
#[derive(Clone, Copy)]
struct Glibc {
    /// rseq area offset from the thread pointer, and registered length
    /// (`__rseq_offset`, `__rseq_size`); length 0: no rseq.
    rseq_offset: i64,
    rseq_len: u32,
    /// Offset of the cached tid in glibc's thread descriptor (0: unknown).
    tid_offset: u32,
}

struct GlibcCell(core::cell::UnsafeCell<Glibc>);
// SAFETY: written once by the constructor before any handler is installed.
unsafe impl core::marker::Sync for GlibcCell {}
static GLIBC: GlibcCell = GlibcCell(core::cell::UnsafeCell::new(Glibc { rseq_offset: 0, rseq_len: 0, tid_offset: 0 }));

fn glibc() -> Glibc {
    // SAFETY: see GlibcCell.
    unsafe { *GLIBC.0.get() }
}

/// glibc's rseq signature on x86-64 (`RSEQ_SIG`).
const RSEQ_SIG: u32 = 0x5305_3053;

/// Looks up glibc's rseq registration and tid cache (constructor only).
pub fn prepare() {
    let mut g = Glibc { rseq_offset: 0, rseq_len: 0, tid_offset: 0 };
    // SAFETY: dlsym from the constructor; the symbols, when present, are
    // glibc's exported `ptrdiff_t __rseq_offset` and `unsigned __rseq_size`.
    unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()) as *const i64;
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()) as *const u32;
        if !off.is_null() && !size.is_null() && *size != 0 {
            g.rseq_offset = *off;
            // glibc registers at least the original 32-byte struct rseq.
            g.rseq_len = (*size).max(32);
        }
    }
    g.tid_offset = find_tid_offset();
    // SAFETY: see GlibcCell.
    unsafe { *GLIBC.0.get() = g };
}

fn fs_base() -> u64 {
    // SAFETY: reads this thread's fs base.
    unsafe { sys::arch_prctl(sys::ARCH_GET_FS, 0) }.unwrap_or(0)
}

/// Finds where glibc caches this thread's tid in its descriptor, which
/// starts at the thread pointer: the first 32-bit slot past the TCB header
/// that holds the tid. (glibc 2.36: 0x2d0.)
fn find_tid_offset() -> u32 {
    let fs = fs_base();
    let tid = sys::gettid() as u32;
    if fs == 0 {
        return 0;
    }
    let mut off = 0x40u64;
    while off < 0x1000 {
        let addr = fs + off;
        if (off == 0x40 || addr.is_multiple_of(PAGE_SIZE)) && !sys::readable(addr) {
            return 0;
        }
        // SAFETY: the page holding addr was just found readable.
        if unsafe { core::ptr::read_volatile(addr as *const u32) } == tid {
            return off as u32;
        }
        off += 4;
    }
    0
}

/// The rseq registration of this thread: (area, len), len 0 for none.
pub type Rseq = (u64, u32);

/// Drops this thread's rseq registration for the capture: the kernel
/// writes to the area on preemption, which would change memory while it is
/// being written to the image.
pub fn unregister_rseq() -> Rseq {
    let g = glibc();
    if g.rseq_len == 0 {
        return (0, 0);
    }
    let area = fs_base().wrapping_add(g.rseq_offset as u64);
    // SAFETY: unregistering the area glibc registered for this thread.
    match unsafe { sys::rseq(area, g.rseq_len, sys::RSEQ_FLAG_UNREGISTER, RSEQ_SIG) } {
        Ok(()) => (area, g.rseq_len),
        Err(_) => (0, 0),
    }
}

pub fn reregister_rseq((area, len): Rseq) {
    if len != 0 {
        // SAFETY: the same registration glibc made.
        let _ = unsafe { sys::rseq(area, len, 0, RSEQ_SIG) };
    }
}

/// Describes the calling thread, interrupted with signal frame `uc`.
pub fn describe(uc: *const libc::ucontext_t, (rseq_area, rseq_len): Rseq) -> Thread {
    // SAFETY: the kernel passed a valid ucontext to the handler.
    let ucr = unsafe { &*uc };
    // SAFETY: as fs_base.
    let gs_base = unsafe { sys::arch_prctl(sys::ARCH_GET_GS, 0) }.unwrap_or(0);
    let mut tid_address = 0u64;
    // SAFETY: PR_GET_TID_ADDRESS writes one pointer to the address given.
    let _ = unsafe { sys::prctl(sys::PR_GET_TID_ADDRESS, &mut tid_address as *mut u64 as u64, 0, 0, 0) };
    let mut comm = [0u8; 16];
    // SAFETY: PR_GET_NAME writes 16 bytes.
    let _ = unsafe { sys::prctl(sys::PR_GET_NAME, comm.as_mut_ptr() as u64, 0, 0, 0) };
    let (robust_list, robust_len) = sys::get_robust_list().unwrap_or((0, 0));
    let mut gregs = [0u64; 23];
    for (g, &v) in gregs.iter_mut().zip(ucr.uc_mcontext.gregs.iter()) {
        *g = v as u64;
    }
    // SAFETY: sigset_t begins with the 64 bits the kernel uses.
    let sigmask = unsafe { core::ptr::read_unaligned(&ucr.uc_sigmask as *const libc::sigset_t as *const u64) };
    let fpstate = ucr.uc_mcontext.fpregs as u64;
    let (xstate_bv, xinuse) = frame_xstate(fpstate);
    Thread {
        tid: sys::gettid() as u32,
        tid_offset: glibc().tid_offset,
        ucontext: uc as u64,
        fs_base: fs_base(),
        gs_base,
        rseq_area,
        rseq_len,
        rseq_sig: if rseq_len != 0 { RSEQ_SIG } else { 0 },
        clear_child_tid: tid_address,
        robust_list,
        robust_len,
        gregs,
        sigmask,
        comm,
        pending: crate::process::thread_pending(sigmask),
        fpstate,
        xstate_bv,
        xinuse,
    }
}

/// The XSAVE area of this thread's signal frame: its `xstate_bv`, and the
/// components whose contents are not their initial value (what restarting
/// it requires of a CPU).
fn frame_xstate(fpstate: u64) -> (u64, u64) {
    use ckpt_image::xstate::{Frame, MIN_XSAVE};
    if fpstate == 0 {
        return (0, 0);
    }
    let layout = &crate::config::get().xlayout;
    // SAFETY: the kernel wrote the XSAVE area of the frame it built for this
    // handler at `fpstate`: at least MIN_XSAVE bytes (FXSAVE's 512 are
    // followed by more of the frame), then the size its header gives.
    let head = unsafe { core::slice::from_raw_parts(fpstate as *const u8, MIN_XSAVE) };
    let Ok(f) = Frame::parse_head(head) else { return (0, 0) };
    // SAFETY: as above, the whole area and its end marker.
    let area = unsafe { core::slice::from_raw_parts(fpstate as *const u8, f.total_len().max(MIN_XSAVE)) };
    match Frame::parse(area, layout) {
        Ok(f) => (f.xstate_bv, f.in_use(area, layout)),
        Err(_) => (f.xstate_bv, f.xstate_bv),
    }
}

/// Handler of THREAD_SIGNAL in every thread but the coordinator. It runs
/// on the thread's alternate signal stack if it has one (SA_ONSTACK), else
/// on whatever stack the thread was on, which may be small (a coroutine's):
/// so it claims a slot and moves at once to that slot's stack in the
/// workspace, where it records the thread and parks.
pub extern "C" fn on_thread_signal(_sig: i32, _info: *mut libc::siginfo_t, uc: *mut core::ffi::c_void) {
    // SAFETY: the workspace exists once the handler is installed.
    let sync = &unsafe { workspace::shared() }.sync;
    let generation = sync.active.load(SeqCst);
    if generation % 2 == 0 {
        return; // no checkpoint in progress: late, or not ours
    }
    let mut park = Park { uc, slot: sync.slots.fetch_add(1, SeqCst) as usize, generation };
    let arg = &mut park as *mut Park as *mut core::ffi::c_void;
    match workspace::thread_stack_top(park.slot) {
        // SAFETY: the slot's stack is this thread's alone for this
        // checkpoint (slots are handed out once per generation).
        Some(top) => unsafe { crate::capture::call_on_stack(arg, park_thread, top) },
        None => park_thread(arg), // no slot: the coordinator refuses the checkpoint
    }
    // Off the slot's stack: only now may the coordinator count this thread
    // gone, end the checkpoint, and the next one hand the slot (and its
    // stack) to another thread. The coordinator waits for the last one only.
    if sync.arrived.fetch_sub(1, SeqCst) == 1 {
        sys::futex_wake(&sync.arrived, 1);
    }
}

/// What a stopped thread's handler hands to [`park_thread`].
struct Park {
    uc: *mut core::ffi::c_void,
    slot: usize,
    generation: u32,
}

/// Records the thread in its slot and parks it until the coordinator
/// releases the generation (on the slot's stack; the caller, back on its
/// own, says it has left).
extern "C" fn park_thread(arg: *mut core::ffi::c_void) {
    // SAFETY: `arg` is the handler's Park, alive until this returns.
    let park = unsafe { &*(arg as *const Park) };
    // SAFETY: the workspace exists once the handler is installed.
    let shared = unsafe { workspace::shared() };
    let sync = &shared.sync;
    let rseq = unregister_rseq();
    if let Some(slot) = shared.slots.get(park.slot) {
        // SAFETY: the handler claimed this slot for this generation.
        unsafe { slot.publish(park.generation, describe(park.uc as *const libc::ucontext_t, rseq)) };
    }
    sync.arrived.fetch_add(1, SeqCst);
    sys::futex_wake(&sync.arrived, 1);
    loop {
        let released = sync.release.load(SeqCst);
        if released == park.generation {
            break;
        }
        let _ = sys::futex_wait(&sync.release, released, 0);
    }
    reregister_rseq(rseq);
}

/// Why stopping the threads failed.
pub enum StopError {
    TooMany,
    Stuck(u32),
    Sys(Errno),
}

/// Stops every other thread (the coordinator holds slot 0) and collects
/// their records into `records` (slot order; the coordinator's, slot 0, is
/// the caller's to fill). Returns the number of records, the coordinator's
/// included.
pub fn stop_all(
    shared: &Shared,
    generation: u32,
    tids: &mut [u32; MAX_THREADS],
    dents: &mut [u8],
    records: &mut [Thread; MAX_THREADS],
) -> Result<usize, StopError> {
    let stopped = stop_every(shared, generation, tids, dents, records);
    crate::nudge::finish();
    stopped
}

fn stop_every(
    shared: &Shared,
    generation: u32,
    tids: &mut [u32; MAX_THREADS],
    dents: &mut [u8],
    records: &mut [Thread; MAX_THREADS],
) -> Result<usize, StopError> {
    let me = sys::gettid() as u32;
    let pid = sys::getpid();
    let mut signaled = 0usize;
    let mut gone = 0u32;
    loop {
        let mut new = 0;
        let mut fresh = [0u32; 256];
        let mut scan = crate::procfs::Tasks::open().map_err(StopError::Sys)?;
        loop {
            let n = scan.next_batch(dents, &mut fresh).map_err(StopError::Sys)?;
            if n == 0 {
                break;
            }
            for &tid in &fresh[..n] {
                if tid == me || tids[..signaled].contains(&tid) {
                    continue;
                }
                if signaled + 1 >= MAX_THREADS {
                    return Err(StopError::TooMany);
                }
                match sys::tgkill(pid, tid as i32, crate::nudge::signal_for(tid)) {
                    Ok(()) => {
                        tids[signaled] = tid;
                        signaled += 1;
                        new += 1;
                    }
                    Err(Errno::ESRCH) => {} // exited meanwhile
                    Err(e) => return Err(StopError::Sys(e)),
                }
            }
        }
        drop(scan);
        gone = wait_arrivals(shared, generation, &tids[..signaled], gone, pid)?;
        if new == 0 {
            return collect(shared, generation, records);
        }
    }
}

/// Copies the published records of slots 1 and up into `records`, waiting
/// for any slot claimed but not yet published (a thread that took the
/// signal from elsewhere may be counted among the arrivals late).
fn collect(shared: &Shared, generation: u32, records: &mut [Thread; MAX_THREADS]) -> Result<usize, StopError> {
    let sync = &shared.sync;
    let n = sync.slots.load(SeqCst) as usize;
    if n > MAX_THREADS {
        return Err(StopError::TooMany);
    }
    let start = sys::clock_ns(sys::CLOCK_MONOTONIC);
    for (slot, record) in shared.slots[1..n].iter().zip(&mut records[1..n]) {
        *record = loop {
            if let Some(t) = slot.get(generation) {
                break t;
            }
            let arrived = sync.arrived.load(SeqCst);
            if sys::clock_ns(sys::CLOCK_MONOTONIC) - start > ARRIVAL_TIMEOUT_NS {
                return Err(StopError::Stuck(0));
            }
            let _ = sys::futex_wait(&sync.arrived, arrived, 50_000_000);
        };
    }
    Ok(n)
}

/// Waits until every signaled thread has arrived or is known to be gone.
/// Returns the updated number of threads that exited before arriving.
fn wait_arrivals(shared: &Shared, generation: u32, tids: &[u32], mut gone: u32, pid: i32) -> Result<u32, StopError> {
    let sync = &shared.sync;
    let start = sys::clock_ns(sys::CLOCK_MONOTONIC);
    loop {
        let arrived = sync.arrived.load(SeqCst);
        if arrived + gone >= tids.len() as u32 {
            return Ok(gone);
        }
        if sys::futex_wait(&sync.arrived, arrived, 50_000_000) == Err(Errno::ETIMEDOUT) {
            // Count the threads that no longer exist and never arrived.
            let filled = (sync.slots.load(SeqCst) as usize).min(MAX_THREADS);
            let recorded = |tid: u32| shared.slots[1..filled].iter().any(|s| s.tid(generation) == Some(tid));
            gone = tids.iter().filter(|&&t| !recorded(t) && !alive(pid, t)).count() as u32;
            // A thread that blocks the thread signal: glibc's timer helper.
            tids.iter().filter(|&&t| !recorded(t)).for_each(|&t| _ = crate::nudge::nudge(pid, t));
            if sys::clock_ns(sys::CLOCK_MONOTONIC) - start > ARRIVAL_TIMEOUT_NS {
                let stuck = tids.iter().copied().find(|&t| !recorded(t)).unwrap_or(0);
                return Err(StopError::Stuck(stuck));
            }
        }
    }
}

/// Claims the coordinator's role: Some(generation) unless a checkpoint is
/// already in progress.
pub fn begin(sync: &Sync) -> Option<u32> {
    let idle = sync.active.load(SeqCst);
    if idle % 2 == 1 {
        return None;
    }
    sync.active.compare_exchange(idle, idle + 1, SeqCst, SeqCst).ok()?;
    sync.slots.store(1, SeqCst);
    Some(idle + 1)
}

/// Whether thread `tid` can still handle a signal: it exists and is not a
/// zombie (a main thread that called pthread_exit stays listed as one).
fn alive(pid: i32, tid: u32) -> bool {
    if sys::tgkill(pid, tid as i32, 0) == Err(Errno::ESRCH) {
        return false;
    }
    let mut path = [0u8; 48];
    let mut l = ckpt_sys::msg::Line::new();
    let _ = core::fmt::Write::write_fmt(&mut l, format_args!("/proc/self/task/{tid}/stat"));
    let p = l.as_bytes();
    path[..p.len()].copy_from_slice(p);
    let Ok(name) = core::ffi::CStr::from_bytes_until_nul(&path) else { return true };
    let mut buf = [0u8; 512];
    match crate::procfs::read_file(name, &mut buf) {
        Ok(n) => {
            let stat = &buf[..n];
            let close = stat.iter().rposition(|&c| c == b')').unwrap_or(0);
            !matches!(stat.get(close + 2), Some(b'Z') | Some(b'X'))
        }
        Err(_) => false,
    }
}

/// Lets the parked threads go and waits until they have left the table.
/// The checkpoint is still in progress: the coordinator is on the
/// workspace stack, which the next coordinator would use too. It calls
/// [`end`] once back on its own stack.
pub fn release(sync: &Sync, generation: u32) {
    sync.release.store(generation, SeqCst);
    sys::futex_wake(&sync.release, u32::MAX);
    loop {
        let arrived = sync.arrived.load(SeqCst);
        if arrived == 0 {
            break;
        }
        let _ = sys::futex_wait(&sync.arrived, arrived, 0);
    }
}

/// Ends the checkpoint `generation`: from now on another may begin.
pub fn end(sync: &Sync, generation: u32) {
    sync.slots.store(0, SeqCst);
    sync.active.store(generation + 1, SeqCst);
}
