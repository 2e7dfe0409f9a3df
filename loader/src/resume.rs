//! The last steps: the process-wide kernel state, then the thread's own,
//! then `rt_sigreturn` on the thread's saved signal frame.
//!
//! The frame is the one the kernel built when the checkpoint signal arrived;
//! it lies in the thread's stack, which is restored memory now. Returning
//! through it restores every register the kernel saved — general, flags,
//! x87/SSE/AVX/AVX-512 — and the signal mask and alternate stack, and the
//! program continues at the very instruction the signal interrupted. What
//! the frame does not hold (%fs and %gs bases, rseq, the tid address, the
//! robust list) is set here first.

use core::arch::asm;
use core::fmt::Write;

use ckpt_image::{Header, Meta, LOADER_END, LOADER_THREAD_STACKS, LOADER_THREAD_STACK_SIZE};
use ckpt_sys::{self as sys, msg::Line, OwnedFd, PrctlMmMap};

use crate::args::Options;
use crate::fail::{self, Fail};
use crate::pidns::Pids;
use crate::threads;
use crate::Never;
use crate::{files, process};

extern "C" {
    /// End of the loader's image (linker.ld).
    static __loader_end: u8;
}

/// Restores the memory layout the kernel keeps for the process: code, data,
/// break, stack, argument and environment ranges, auxv. The kernel checks
/// them without looking at the mappings, so this is done before the point
/// of no return: a refusal leaves the loader intact. With `exe`, the
/// program's executable becomes `/proc/self/exe` again (see exe.rs); if the
/// kernel refuses that, the rest is set without it, with a warning.
pub fn set_mm(meta: &Meta, exe: Option<OwnedFd>) -> Result<(), Fail> {
    let h = &meta.header;
    if let Some(fd) = exe {
        let done = set_mm_map(h, fd.as_raw() as u32);
        drop(fd);
        match done {
            Ok(()) => return Ok(()),
            Err(e) => {
                let mut why = Line::new();
                let _ = write!(why, "the kernel refused it: {} ({})", sys::errno_text(e), sys::errno_name(e));
                let path = meta.string(h.exe).unwrap_or(b"");
                crate::exe::warn(path, core::str::from_utf8(why.as_bytes()).unwrap_or(""));
            }
        }
    }
    set_mm_map(h, u32::MAX).map_err(fail::sys("the kernel refused the program's memory layout (prctl PR_SET_MM_MAP)"))
}

fn set_mm_map(h: &Header, exe_fd: u32) -> Result<(), sys::Errno> {
    let mm = &h.mm;
    let map = PrctlMmMap {
        start_code: mm.start_code,
        end_code: mm.end_code,
        start_data: mm.start_data,
        end_data: mm.end_data,
        start_brk: mm.start_brk,
        brk: mm.brk,
        start_stack: mm.start_stack,
        arg_start: mm.arg_start,
        arg_end: mm.arg_end,
        env_start: mm.env_start,
        env_end: mm.env_end,
        auxv: h.auxv.as_ptr() as u64,
        auxv_size: h.auxv_words * 8,
        exe_fd,
    };
    // SAFETY: the kernel reads `map` (and the auxv it points to), both
    // alive for the call.
    unsafe {
        sys::prctl(
            sys::PR_SET_MM,
            sys::PR_SET_MM_MAP as u64,
            &map as *const PrctlMmMap as u64,
            core::mem::size_of::<PrctlMmMap>() as u64,
            0,
        )
    }
    .map(drop)
}

/// Gives the process back its kernel state and jumps into the program.
///
/// # Safety
/// The program's memory must be fully restored.
pub unsafe fn resume(meta: &'static Meta<'static>, fd: i32, opts: &Options, pids: Pids) -> Result<Never, Fail> {
    // No signal may run program code before every thread is back: block
    // them all; each thread's own mask returns with its frame.
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, !0);
    let h = &meta.header;
    sys::umask(h.umask);
    for sig in 1..=64 {
        if sig == 9 || sig == 19 {
            continue; // SIGKILL, SIGSTOP: not settable
        }
        let a = meta.sigaction(sig);
        let k = sys::KSigAction { handler: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask };
        let _ = sys::rt_sigaction(sig as i32, Some(&k), None);
    }
    restore_cwd(meta);
    sys::close(fd);
    files::note_stdio(meta);
    files::restore(meta, opts)?;
    process::restore(meta);

    // SAFETY: memory is restored and signals are blocked.
    unsafe { threads::start_others(meta, pids)? };
    reserve_loader_range(meta.n_threads());
    let t = meta.thread(threads::main_index(meta));
    // SAFETY: the thread's own registrations, in restored memory.
    unsafe { threads::register(meta, &t) };
    threads::drop_namespace_capabilities();
    // Every thread exists now: the timers that signal one can find it.
    crate::timers::restore(meta);
    // The process name is the main thread's.
    // SAFETY: PR_SET_NAME reads 16 bytes, NUL padded.
    let _ = unsafe { sys::prctl(sys::PR_SET_NAME, h.comm.as_ptr() as u64, 0, 0, 0) };
    threads::go();
    // SAFETY: %fs is the program's from here: no loader code may use TLS
    // (none does); then the main thread's own frame.
    unsafe {
        let _ = sys::arch_prctl(sys::ARCH_SET_FS, t.fs_base);
        sigreturn(t.ucontext)
    }
}

/// Returns to the saved working directory; a warning if it is gone.
fn restore_cwd(meta: &Meta) {
    let cwd = meta.string(meta.header.cwd).unwrap_or(b"");
    let mut buf = [0u8; 4097];
    if cwd.is_empty() || cwd.len() >= buf.len() {
        return;
    }
    buf[..cwd.len()].copy_from_slice(cwd);
    let path = core::ffi::CStr::from_bytes_until_nul(&buf).unwrap_or(c"/");
    if let Err(e) = sys::chdir(path) {
        let mut l = Line::new();
        l.push(b"restart: warning: cannot return to the working directory ").push_escaped(cwd);
        let _ = write!(l, ": {} ({})", sys::errno_text(e), sys::errno_name(e));
        l.emit();
    }
}

/// Keeps the free part of the loader's range reserved in the restarted
/// program, as the capture library reserved it in the original.
fn reserve_loader_range(n_threads: usize) {
    // Only the address of the linker symbol is taken, never its value.
    let end = core::ptr::addr_of!(__loader_end) as u64;
    let stacks_end = LOADER_THREAD_STACKS + n_threads as u64 * LOADER_THREAD_STACK_SIZE;
    let stacks_start = if n_threads > 1 { LOADER_THREAD_STACKS } else { stacks_end };
    for (start, stop) in [(end, stacks_start), (stacks_end, LOADER_END)] {
        if start >= stop {
            continue;
        }
        // SAFETY: NOREPLACE: nothing is replaced; PROT_NONE reserves only.
        let _ = unsafe {
            sys::mmap(
                start,
                stop - start,
                sys::PROT_NONE,
                sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE | sys::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
    }
}

/// `rt_sigreturn` with the stack pointer on the frame's ucontext: the kernel
/// finds the frame at `rsp - 8` (the return address slot it had pushed).
///
/// # Safety
/// `ucontext` must be a signal frame the kernel built, in restored memory.
pub unsafe fn sigreturn(ucontext: u64) -> ! {
    // SAFETY: the caller's contract; this never returns.
    unsafe {
        asm!(
            "mov rsp, {uc}",
            "mov eax, {rt_sigreturn}",
            "syscall",
            "ud2",
            uc = in(reg) ucontext,
            rt_sigreturn = const sys::Sysno::rt_sigreturn as u32,
            options(noreturn)
        )
    }
}
