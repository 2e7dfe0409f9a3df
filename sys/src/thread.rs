//! Raw threads, for the two places that cannot use pthreads: the loader
//! (no libc) and the capture handler (no allocation, no locks).
//!
//! [`spawn`] starts a thread with `clone` on a stack the caller provides;
//! the thread must end with `exit` (or never return). [`split`] shares a
//! list of independent work items between the calling thread and one such
//! helper, which take items from a common counter until none is left.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Acquire, Ordering::SeqCst};

use crate::{exit_thread, futex_wait_tid, Errno, Sysno};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;

/// A thread of this process, sharing everything (and the caller's %fs).
pub const THREAD: u64 = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
/// The same, with its own %fs base.
pub const THREAD_TLS: u64 = THREAD | CLONE_SETTLS;
/// A process sharing the caller's memory (not its descriptors or signal
/// handlers), which the caller waits for (`vfork`-like: the caller sleeps
/// until it exits), and whose exit sends no signal: reap it with
/// [`crate::wait4_clone`].
pub const PROCESS_VM_VFORK: u64 = CLONE_VM | CLONE_VFORK;
/// The same, sharing the caller's descriptor table too.
pub const PROCESS_VM_FILES_VFORK: u64 = PROCESS_VM_VFORK | CLONE_FILES;
/// A process sharing the caller's memory and descriptor table (not its
/// signal handlers), whose exit sends no signal.
pub const PROCESS_VM_FILES: u64 = CLONE_VM | CLONE_FILES;

global_asm!(
    // ckpt_sys_clone(flags: rdi, stack: rsi, tls: rdx, tid_word: rcx) -> tid
    // or -errno. The tid word is both parent_tid and child_tid (used only
    // with CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID).
    ".globl ckpt_sys_clone",
    ".hidden ckpt_sys_clone",
    ".type ckpt_sys_clone,@function",
    "ckpt_sys_clone:",
    "    mov r8, rdx",  // tls
    "    mov rdx, rcx", // parent_tid
    "    mov r10, rcx", // child_tid
    "    mov eax, {clone}",
    "    syscall",
    "    test rax, rax",
    "    jz 2f",
    "    ret",
    // ckpt_sys_clone3(args: rdi, size: rsi) -> tid or -errno; the child's
    // stack ends at args.stack + args.stack_size.
    ".globl ckpt_sys_clone3",
    ".hidden ckpt_sys_clone3",
    ".type ckpt_sys_clone3,@function",
    "ckpt_sys_clone3:",
    "    mov eax, {clone3}",
    "    syscall",
    "    test rax, rax",
    "    jz 2f",
    "    ret",
    // The child of either: its stack holds [arg, entry]; it pops both and
    // calls entry(arg).
    "2:  xor ebp, ebp",
    "    pop rdi", // arg
    "    pop rax", // entry
    "    call rax",
    "    ud2",
    clone = const Sysno::clone as u32,
    clone3 = const Sysno::clone3 as u32,
);

extern "C" {
    fn ckpt_sys_clone(flags: u64, stack: u64, tls: u64, tid_word: u64) -> i64;
    fn ckpt_sys_clone3(args: *const crate::ns::CloneArgs, size: usize) -> i64;
}

/// Starts `entry(arg)` in a new thread on the stack that ends at
/// `stack_end` (16-byte aligned). Returns the new tid. The thread inherits
/// the caller's signal mask.
///
/// # Safety
/// The stack must be unused memory that stays mapped while the thread runs;
/// `entry` must never return.
pub unsafe fn spawn(
    flags: u64,
    stack_end: u64,
    tls: u64,
    entry: unsafe extern "C" fn(u64) -> !,
    arg: u64,
) -> Result<i32, Errno> {
    clone(flags, stack_end, tls, entry, arg, 0)
}

/// As [`spawn`], with the thread's tid chosen: `tid` in this process's
/// pid namespace (`clone3` with `set_tid`; the caller needs
/// `CAP_CHECKPOINT_RESTORE` in the user namespace that owns it). The stack
/// is `[stack_start, stack_end)`.
///
/// # Safety
/// As [`spawn`].
pub unsafe fn spawn_at(
    flags: u64,
    stack_start: u64,
    stack_end: u64,
    tls: u64,
    entry: unsafe extern "C" fn(u64) -> !,
    arg: u64,
    tid: u32,
) -> Result<i32, Errno> {
    let top = push_entry(stack_end, entry, arg);
    let tids = [tid as i32];
    let args = crate::ns::CloneArgs {
        flags,
        stack: stack_start,
        stack_size: top - stack_start,
        tls,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..Default::default()
    };
    // SAFETY: the kernel reads `args` and `tids`; the child starts on the
    // caller's stack (see spawn), in `entry`.
    let tid = unsafe { ckpt_sys_clone3(&args, core::mem::size_of::<crate::ns::CloneArgs>()) };
    tid_or_errno(tid)
}

fn tid_or_errno(r: i64) -> Result<i32, Errno> {
    if r < 0 {
        Err(Errno::new(-r as i32))
    } else {
        Ok(r as i32)
    }
}

/// Writes `[arg, entry]` at the top of a new thread's stack, which ends at
/// `stack_end`: the child's first instructions pop them and call
/// `entry(arg)`. Returns the child's stack pointer. After the child pops
/// two words its stack is 16-byte aligned again, as a call requires.
fn push_entry(stack_end: u64, entry: unsafe extern "C" fn(u64) -> !, arg: u64) -> u64 {
    let top = stack_end - 16;
    // SAFETY: the caller's stack, unused memory (see spawn).
    unsafe {
        core::ptr::write(top as *mut u64, arg);
        core::ptr::write((top + 8) as *mut u64, entry as usize as u64);
    }
    top
}

/// As [`spawn`], for a thread whose end the caller waits for: the kernel
/// stores the new tid in `*tid_word` before the thread runs, and when the
/// thread has exited (and no longer uses its stack), clears it and wakes a
/// futex waiter on it (`CLONE_CHILD_CLEARTID`, see [`join`]).
///
/// # Safety
/// As [`spawn`]; `tid_word` must stay alive until [`join`] returns.
unsafe fn spawn_joinable(
    stack_end: u64,
    entry: unsafe extern "C" fn(u64) -> !,
    arg: u64,
    tid_word: &AtomicU32,
) -> Result<i32, Errno> {
    let flags = THREAD | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    clone(flags, stack_end, 0, entry, arg, tid_word.as_ptr() as u64)
}

/// Waits until the thread started by [`spawn_joinable`] with `tid_word`
/// has exited: the kernel cleared the word.
fn join(tid_word: &AtomicU32) {
    loop {
        let tid = tid_word.load(Acquire);
        if tid == 0 {
            return;
        }
        let _ = futex_wait_tid(tid_word, tid);
    }
}

/// # Safety
/// As [`spawn`].
unsafe fn clone(
    flags: u64,
    stack_end: u64,
    tls: u64,
    entry: unsafe extern "C" fn(u64) -> !,
    arg: u64,
    tid_word: u64,
) -> Result<i32, Errno> {
    let top = push_entry(stack_end, entry, arg);
    // SAFETY: the child starts on that stack, in `entry`; the tid word, if
    // any, outlives it (see spawn_joinable).
    let tid = unsafe { ckpt_sys_clone(flags, top, tls, tid_word) };
    tid_or_errno(tid)
}

/// Work that can be shared: `len` independent items.
#[allow(clippy::len_without_is_empty)]
pub trait Job: Sync {
    fn len(&self) -> usize;
    /// Does item `i` on worker `worker` (0: the caller, 1: the helper).
    /// An error code stops both workers.
    fn run(&self, worker: usize, i: usize) -> Result<(), u32>;
}

struct Split<'a, J: Job> {
    job: &'a J,
    next: AtomicUsize,
    /// First failed item + 1 (0: none), and its error code.
    failed: AtomicUsize,
    code: AtomicU32,
}

impl<J: Job> Split<'_, J> {
    fn work(&self, worker: usize) {
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.job.len() || self.failed.load(SeqCst) != 0 {
                return;
            }
            if let Err(code) = self.job.run(worker, i) {
                if self.failed.compare_exchange(0, i + 1, SeqCst, SeqCst).is_ok() {
                    self.code.store(code, SeqCst);
                }
                return;
            }
        }
    }
}

unsafe extern "C" fn helper<J: Job>(arg: u64) -> ! {
    // Every signal blocked, first: the helper is ckpt's, never the
    // program's, and may outlive `split` by a few instructions (it exits
    // after `done`): in the loader, a restored program that checkpoints at
    // once must not find it taking the thread signal on the loader's stack.
    let _ = crate::rt_sigprocmask(crate::SIG_SETMASK, !0);
    // SAFETY: `split` keeps the Split alive until the kernel reports this
    // thread gone (join); it is not touched after `work`.
    let s = unsafe { &*(arg as *const Split<J>) };
    s.work(1);
    // Nothing is signalled by hand: the kernel clears the tid word and wakes
    // `split` only once this thread has exited, so neither the Split nor this
    // stack is touched after the caller may reuse them.
    exit_thread(0)
}

/// Runs every item of `job`, on the calling thread and, if `parallel`, on a
/// helper thread using `stack` too. Returns the first failure: (item, code).
///
/// # Safety
/// `stack` must be memory nothing else uses while this runs (16-byte aligned
/// end); the job's items must be safe to run concurrently.
pub unsafe fn split<J: Job>(job: &J, parallel: bool, stack: &mut [u8]) -> Result<(), (usize, u32)> {
    let s = Split { job, next: AtomicUsize::new(0), failed: AtomicUsize::new(0), code: AtomicU32::new(0) };
    let tid_word = AtomicU32::new(0);
    let end = (stack.as_mut_ptr() as u64 + stack.len() as u64) & !15;
    let arg = &s as *const Split<J> as u64;
    // SAFETY: the stack is the caller's to lend (see above); `s` and
    // `tid_word` live until `join` returns.
    let helped =
        parallel && stack.len() >= 16 << 10 && unsafe { spawn_joinable(end, helper::<J>, arg, &tid_word) }.is_ok();
    s.work(0);
    if helped {
        join(&tid_word);
    }
    match s.failed.load(SeqCst) {
        0 => Ok(()),
        i => Err((i - 1, s.code.load(SeqCst))),
    }
}
