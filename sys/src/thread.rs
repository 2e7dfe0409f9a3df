//! Raw threads, for the two places that cannot use pthreads: the loader
//! (no libc) and the capture handler (no allocation, no locks).
//!
//! [`spawn`] starts a thread with `clone` on a stack the caller provides;
//! the thread must end with `exit` (or never return). [`split`] shares a
//! list of independent work items between the calling thread and one such
//! helper, which take items from a common counter until none is left.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use crate::{exit_thread, futex_wait, futex_wake, Errno};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;

/// A thread of this process, sharing everything (and the caller's %fs).
pub const THREAD: u64 = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
/// The same, with its own %fs base.
pub const THREAD_TLS: u64 = THREAD | CLONE_SETTLS;

global_asm!(
    // ckpt_sys_clone(flags: rdi, stack: rsi, tls: rdx) -> tid or -errno.
    // The child's stack holds [arg, entry]: it pops both and calls entry(arg).
    ".globl ckpt_sys_clone",
    ".hidden ckpt_sys_clone",
    ".type ckpt_sys_clone,@function",
    "ckpt_sys_clone:",
    "    mov r8, rdx",    // tls
    "    xor edx, edx",   // parent_tid
    "    xor r10d, r10d", // child_tid
    "    mov eax, 56",    // __NR_clone
    "    syscall",
    "    test rax, rax",
    "    jnz 1f",
    "    xor ebp, ebp",
    "    pop rdi", // arg
    "    pop rax", // entry
    "    call rax",
    "    ud2",
    "1:  ret",
);

extern "C" {
    fn ckpt_sys_clone(flags: u64, stack: u64, tls: u64) -> i64;
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
    // After the child pops two words its stack is 16-byte aligned again,
    // as a call requires.
    let top = stack_end - 16;
    core::ptr::write(top as *mut u64, arg);
    core::ptr::write((top + 8) as *mut u64, entry as usize as u64);
    let tid = ckpt_sys_clone(flags, top, tls);
    if tid < 0 {
        Err(Errno::new(-tid as i32))
    } else {
        Ok(tid as i32)
    }
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
    done: AtomicU32,
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
    // SAFETY: `split` keeps the Split alive until `done` is set.
    let s = unsafe { &*(arg as *const Split<J>) };
    s.work(1);
    s.done.store(1, SeqCst);
    futex_wake(&s.done, 1);
    exit_thread(0)
}

/// Runs every item of `job`, on the calling thread and, if `parallel`, on a
/// helper thread using `stack` too. Returns the first failure: (item, code).
///
/// # Safety
/// `stack` must be memory nothing else uses while this runs (16-byte aligned
/// end); the job's items must be safe to run concurrently.
pub unsafe fn split<J: Job>(job: &J, parallel: bool, stack: &mut [u8]) -> Result<(), (usize, u32)> {
    let s = Split {
        job,
        next: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        code: AtomicU32::new(0),
        done: AtomicU32::new(0),
    };
    let end = (stack.as_mut_ptr() as u64 + stack.len() as u64) & !15;
    let helped =
        parallel && stack.len() >= 16 << 10 && spawn(THREAD, end, 0, helper::<J>, &s as *const Split<J> as u64).is_ok();
    s.work(0);
    if helped {
        while s.done.load(SeqCst) == 0 {
            let _ = futex_wait(&s.done, 0, 0);
        }
    }
    match s.failed.load(SeqCst) {
        0 => Ok(()),
        i => Err((i - 1, s.code.load(SeqCst))),
    }
}
