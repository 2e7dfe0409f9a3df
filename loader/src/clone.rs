//! Starting a thread with the raw `clone` system call.
//!
//! The new thread begins on the stack it is given, where [`spawn`] has
//! left its argument and its entry function; it must never return (it ends
//! with `exit` or `rt_sigreturn`). No glibc is involved: the thread has no
//! TLS of the loader's (there is none), only the %fs it is given.

use core::arch::global_asm;

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;

/// A thread of this process, sharing everything.
pub const THREAD: u64 = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
/// The same, with its own %fs base.
pub const THREAD_TLS: u64 = THREAD | CLONE_SETTLS;

global_asm!(
    // ckpt_clone(flags: rdi, stack: rsi, tls: rdx) -> tid or -errno.
    // The child's stack holds [arg, entry]: it pops both and calls entry(arg).
    ".globl ckpt_clone",
    ".type ckpt_clone,@function",
    "ckpt_clone:",
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
    fn ckpt_clone(flags: u64, stack: u64, tls: u64) -> i64;
}

/// Starts `entry(arg)` in a new thread on the stack that ends at
/// `stack_end` (16-byte aligned). Returns the new tid.
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
) -> Result<i32, ckpt_sys::Errno> {
    // After the child pops two words its stack is 16-byte aligned again,
    // as a call requires.
    let top = stack_end - 16;
    // SAFETY: the top two words of the caller's unused stack.
    unsafe {
        core::ptr::write(top as *mut u64, arg);
        core::ptr::write((top + 8) as *mut u64, entry as usize as u64);
    }
    // SAFETY: the caller's contract.
    let tid = unsafe { ckpt_clone(flags, top, tls) };
    if tid < 0 {
        Err(ckpt_sys::Errno::new(-tid as i32))
    } else {
        Ok(tid as i32)
    }
}
