//! Where the kernel puts the frames of ckpt's two signals.
//!
//! Both handlers are installed with `SA_ONSTACK`: on a thread that has an
//! alternate signal stack (`sigaltstack`) the kernel writes the signal frame
//! — every register, about 1 KiB, 3 KiB with AVX-512 — there, not on the
//! stack the thread was running on. Programs that run code on small stacks
//! (Go's goroutines, coroutine libraries built on `makecontext`) give their
//! threads such a stack for exactly this reason. The handlers then move to a
//! stack in the workspace before doing anything else, so that what ckpt
//! itself pushes on the program's stack is a few words, not a capture.
//!
//! A thread with no alternate stack still gets the frame on its current
//! stack, as it does for any signal the program handles. The main thread
//! is given one here, of ckpt's own, if it has none when the library loads:
//! a program that switches stacks in its main thread without having ever
//! asked for an alternate stack is then safe too. The program can see it
//! (`sigaltstack` answers with it) and can replace it, per thread, at any
//! time, with its own or with none (the kernel keeps no more than one per
//! thread); ckpt never puts it back, and never touches another thread's.
//! Threads the program creates start without one (POSIX threads do), and
//! get none from ckpt: giving each a stack of its own would mean wrapping
//! every thread start, tracking who owns which stack when the program
//! installs its own, and freeing it when the thread ends; the frame on
//! those threads' stacks is the same one any handled signal puts there.

use ckpt_sys as sys;

/// Size of the main thread's alternate stack, when ckpt provides it (Go
/// adopts an existing alternate stack as its own signal stack, and asks for
/// 32 KiB).
const SIZE: u64 = 64 << 10;
const GUARD: u64 = 4096;

/// Gives the calling (main) thread an alternate signal stack if it has
/// none (constructor only). Not fatal if it fails: the handlers still work,
/// on the thread's own stack.
pub fn ensure_main() {
    // SAFETY: sigaltstack with a null new stack only reads the current one.
    let mut old: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: `old` is a valid stack_t for the kernel to fill.
    if unsafe { libc::sigaltstack(core::ptr::null(), &mut old) } != 0 || old.ss_flags & libc::SS_DISABLE == 0 {
        return; // the program has one already (or we cannot tell)
    }
    // SAFETY: a new private mapping where the kernel chooses.
    let Ok(addr) = (unsafe {
        sys::mmap(0, GUARD + SIZE, sys::PROT_READ | sys::PROT_WRITE, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS, -1, 0)
    }) else {
        return;
    };
    // SAFETY: the guard page is the bottom of the mapping just made.
    let _ = unsafe { sys::mprotect(addr, GUARD, sys::PROT_NONE) };
    let stack = libc::stack_t { ss_sp: (addr + GUARD) as *mut libc::c_void, ss_flags: 0, ss_size: SIZE as usize };
    // SAFETY: the stack is ours, mapped above, and never unmapped.
    unsafe { libc::sigaltstack(&stack, core::ptr::null_mut()) };
}
