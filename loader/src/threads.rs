//! Recreating the threads and resuming every one of them.
//!
//! The loader's own thread keeps the process's pid, so it becomes the
//! program's main thread (the record whose tid was the old pid). Every other
//! record gets a kernel thread, on a small temporary stack inside the
//! loader's range, with the program's %fs already set (CLONE_SETTLS): in
//! namespace mode (`Pids::Exact`) at its own tid (`clone3` with `set_tid`),
//! otherwise (the fallback) with a new one from `clone`.
//!
//! A thread whose tid changed (the fallback) has the new one written where
//! glibc caches it and into the robust mutexes it holds; with its own tid
//! back there is nothing to fix, and nothing is written.
//!
//! ```text
//!  main (loader thread)                    thread i (clone)
//!  ────────────────────                    ─────────────────
//!  clone(stack_i, tls=fs_i) ─────────────► set_tid_address, robust list,
//!  ... for every thread                     rseq, %gs, name; tid patched
//!  wait until ready == n-1  ◄───────────── ready += 1; wait for go
//!  own registrations; go := 1 ───────────► rt_sigreturn(own frame)
//!  rt_sigreturn(own frame)
//! ```
//!
//! No thread runs program code before all exist and are registered. The
//! loader blocks every signal first; each thread's own mask comes back from
//! its frame.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};

use ckpt_image::{Meta, Thread, LOADER_THREAD_STACKS, LOADER_THREAD_STACK_SIZE, MAX_THREADS};
use ckpt_sys as sys;

use crate::fail::{self, Fail};
use crate::pidns::Pids;

/// Threads that have set themselves up and wait for `GO`.
static READY: AtomicU32 = AtomicU32::new(0);
/// 1 when every thread may return into the program.
static GO: AtomicU32 = AtomicU32::new(0);
/// The image's metadata, for the threads (set before the first clone).
static META: core::sync::atomic::AtomicPtr<Meta<'static>> = core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// (old tid << 32 | tid now) of each thread that has registered, for the
/// timers that signal one thread (`tid_now`).
static TIDS: [AtomicU64; MAX_THREADS as usize] = [const { AtomicU64::new(0) }; MAX_THREADS as usize];
static N_TIDS: AtomicU32 = AtomicU32::new(0);

/// The tid now of the thread whose tid was `old` (the same one unless
/// restart fell back to new pids); None if no such thread registered.
pub fn tid_now(old: u32) -> Option<u32> {
    let n = (N_TIDS.load(SeqCst) as usize).min(TIDS.len());
    TIDS[..n].iter().map(|e| e.load(SeqCst)).find(|e| (e >> 32) as u32 == old).map(|e| e as u32)
}

/// The index of the record the loader's own thread becomes: the thread
/// whose tid was the process's pid (or the one that took the checkpoint if
/// the main thread had exited).
pub fn main_index(meta: &Meta) -> usize {
    let pid = meta.header.pid;
    meta.threads().position(|t| t.tid == pid).unwrap_or(meta.header.leader as usize)
}

/// Refuses images with more threads than there are temporary stacks.
pub fn check(meta: &Meta) -> Result<(), Fail> {
    if meta.n_threads() > MAX_THREADS as usize {
        return Err(Fail::Msg("the image has more threads than restart supports"));
    }
    Ok(())
}

/// Starts every thread but the main one; returns once all are ready.
///
/// # Safety
/// The program's memory must be restored, and every signal blocked.
pub unsafe fn start_others(meta: &'static Meta<'static>, pids: Pids) -> Result<(), Fail> {
    let n = meta.n_threads();
    let main = main_index(meta);
    META.store(meta as *const Meta<'static> as *mut Meta<'static>, SeqCst);
    if n > 1 {
        // SAFETY: the stack area is inside the loader's range, empty.
        unsafe {
            sys::mmap(
                LOADER_THREAD_STACKS,
                n as u64 * LOADER_THREAD_STACK_SIZE,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        }
        .map_err(fail::sys("cannot map the thread stacks"))?;
    }
    let records = decode_records(meta);
    let mut started = 0;
    for i in (0..n).filter(|&i| i != main) {
        let Some(t) = records[i].as_ref() else { continue };
        let stack = LOADER_THREAD_STACKS + i as u64 * LOADER_THREAD_STACK_SIZE;
        let stack_end = stack + LOADER_THREAD_STACK_SIZE;
        let (flags, arg) = (sys::thread::THREAD_TLS, t as *const Thread as u64);
        // SAFETY: a new thread of this process on its own temporary stack,
        // starting in thread_main with the program's %fs. At its own tid if
        // it can be had (a tid the image repeats cannot): else a new one.
        unsafe {
            let exact = || sys::thread::spawn_at(flags, stack, stack_end, t.fs_base, thread_main, arg, t.tid);
            (if pids == Pids::Exact { exact() } else { Err(sys::Errno::EPERM) })
                .or_else(|_| sys::thread::spawn(flags, stack_end, t.fs_base, thread_main, arg))
        }
        .map_err(fail::sys("cannot create a thread"))?;
        started += 1;
    }
    loop {
        let ready = READY.load(SeqCst);
        if ready == started {
            return Ok(());
        }
        let _ = sys::futex_wait(&READY, ready, 0);
    }
}

/// The thread records, decoded once into a static table so that each
/// thread can be handed a stable address.
struct Records(UnsafeCell<[Option<Thread>; MAX_THREADS as usize]>);
// SAFETY: written only by `decode_records`, once, before any thread that
// reads it exists; only read afterwards.
unsafe impl Sync for Records {}
static RECORDS: Records = Records(UnsafeCell::new([None; MAX_THREADS as usize]));
static DECODED: AtomicBool = AtomicBool::new(false);

/// Decodes every record of `meta` into the static table (the single-owner
/// initialiser: the main thread, once, before the first clone), and gives
/// the table out shared.
fn decode_records(meta: &Meta) -> &'static [Option<Thread>] {
    if !DECODED.swap(true, SeqCst) {
        // SAFETY: the first call, by the only thread: nothing reads the
        // table yet, and this borrow ends here.
        let table = unsafe { &mut *RECORDS.0.get() };
        for (i, slot) in table.iter_mut().enumerate().take(meta.n_threads()) {
            *slot = Some(meta.thread(i));
        }
    }
    // SAFETY: never written again (above).
    unsafe { &*RECORDS.0.get() }
}

/// Sets up the calling thread's kernel state from its record.
///
/// # Safety
/// The record's addresses are in restored memory.
pub unsafe fn register(meta: &Meta, t: &Thread) {
    // SAFETY: the thread's own registrations, in restored memory.
    unsafe {
        let tid = sys::set_tid_address(t.clear_child_tid);
        let moved = tid as u32 != t.tid;
        if let Some(slot) = TIDS.get(N_TIDS.fetch_add(1, SeqCst) as usize) {
            slot.store((t.tid as u64) << 32 | tid as u32 as u64, SeqCst);
        }
        if moved && t.tid_offset != 0 {
            // glibc caches the tid in its descriptor: pthread_kill, raise and
            // mutex ownership use it. The kernel gave a new tid.
            core::ptr::write_volatile((t.fs_base + t.tid_offset as u64) as *mut u32, tid as u32);
        }
        if t.robust_list != 0 {
            if moved {
                fix_robust_owners(meta, t, tid as u32);
            }
            let _ = sys::set_robust_list(t.robust_list, t.robust_len);
        }
        if t.rseq_len != 0 {
            let _ = sys::rseq(t.rseq_area, t.rseq_len, 0, t.rseq_sig);
        }
        if t.gs_base != 0 {
            let _ = sys::arch_prctl(sys::ARCH_SET_GS, t.gs_base);
        }
        let _ = sys::prctl(sys::PR_SET_NAME, t.comm.as_ptr() as u64, 0, 0, 0);
        // Signals that were pending for this thread alone: raised again for
        // it; every signal is blocked until its frame restores its mask.
        for sig in 1..=64 {
            if t.pending & (1u64 << (sig - 1)) != 0 {
                let _ = sys::tgkill(sys::getpid(), tid, sig);
            }
        }
    }
}

/// The robust mutexes a thread holds are on its robust list, and their lock
/// words (and glibc's owner field beside them) hold the owner's tid, which
/// is new now: rewrite them, so that unlocking after the restart works.
/// Every address is checked to lie in restored writable memory.
fn fix_robust_owners(meta: &Meta, t: &Thread, new_tid: u32) {
    const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
    // The head itself was checked with the metadata (Meta::parse).
    let head = t.robust_list;
    // SAFETY: struct robust_list_head { next, futex_offset, list_op_pending },
    // checked to be in restored memory.
    let (mut entry, offset) = unsafe { (*(head as *const u64), *((head + 8) as *const i64)) };
    let mut steps = 0;
    while entry != head && steps < 4096 && meta.writable(entry, 8, 8) {
        let lock = entry.wrapping_add(offset as u64);
        if meta.writable(lock, 12, 4) {
            // SAFETY: the lock word and glibc's __owner (lock + 8), checked.
            unsafe {
                let word = lock as *mut u32;
                if *word & FUTEX_TID_MASK == t.tid {
                    *word = (*word & !FUTEX_TID_MASK) | new_tid;
                }
                let owner = (lock + 8) as *mut u32;
                if *owner == t.tid {
                    *owner = new_tid;
                }
            }
        }
        // SAFETY: checked above; the list is circular through `head`.
        entry = unsafe { *(entry as *const u64) };
        steps += 1;
    }
}

/// In a user namespace it created, the loader holds every capability
/// there (clone3 set_tid and the exe change needed them); the program, run
/// by an ordinary user, had none: each thread drops them before it returns
/// into the program.
pub fn drop_namespace_capabilities() {
    if crate::pidns::in_user_namespace() && sys::geteuid() != 0 {
        let _ = sys::ns::drop_capabilities();
    }
}

/// Lets the other threads return into the program.
pub fn go() {
    GO.store(1, SeqCst);
    sys::futex_wake(&GO, u32::MAX);
}

/// First code of a cloned thread, on its temporary stack.
unsafe extern "C" fn thread_main(record: u64) -> ! {
    // SAFETY: the address of this thread's entry in the static table.
    let t = unsafe { &*(record as *const Thread) };
    // SAFETY: the record's addresses are in restored memory.
    unsafe { register(META.load(SeqCst).as_ref().unwrap_unchecked(), t) };
    drop_namespace_capabilities();
    READY.fetch_add(1, SeqCst);
    sys::futex_wake(&READY, 1);
    while GO.load(SeqCst) == 0 {
        let _ = sys::futex_wait(&GO, 0, 0);
    }
    // SAFETY: the thread's own frame, in restored memory.
    unsafe { crate::resume::sigreturn(t.ucontext) }
}
