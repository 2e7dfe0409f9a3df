//! `restart`: turns a ckpt image back into the process it was (the
//! `restart` binary, `main.rs`, is this library linked at a fixed address).
//!
//! # The rules of this code
//!
//! This program runs where no world exists yet, and then destroys the one it
//! was given. It is a static executable at a fixed address (`linker.ld`),
//! with no libc, no C runtime, no TLS and no unwinder:
//!
//! * `_start` is ours. It blocks every signal (the checkpoint signal must
//!   not kill a job being restarted), then leaves the kernel's stack at once
//!   for a static one inside the loader's range, because the kernel's stack
//!   is unmapped with everything else that is not the loader.
//! * System calls are raw (`ckpt_sys`). There is no errno.
//! * The heap is a static arena (`linked_list_allocator`); it holds the
//!   image's metadata and the loader's own `/proc/self/maps`, nothing else.
//! * Nothing panics on any input: images are validated by `ckpt_image`
//!   before use, and every failure is a one-line message and exit status 1.
//!   (The panic handler exists only to say "internal error" and exit 1.)
//! * No static holds an address outside the loader's range: after the point
//!   of no return, everything outside that range is the target's.
//! * Order is everything. Validation (header, tables, CPU features, vDSO
//!   layout, the kernel's acceptance of the memory layout) happens before the
//!   point of no return; data checksums are verified as the data is read,
//!   before the program runs a single instruction.
//!
//! # The flow
//!
//! ```text
//!   main ─ args ─ image::open ─ unblock all but the checkpoint signal
//!        ─ frames::plan (CPU check; frames laid out for this CPU)
//!        ─ vdso::plan ─ files::check ─ layout::check   (the image is valid)
//!        ─ pidns::enter: user+pid+mount namespaces; this process stays
//!          outside (outer.rs: forwards signals, mirrors the end), init is
//!          pid 1 (init.rs), the program's process is cloned at its pid and
//!          goes on below (fallback: this process, new pids, one line)
//!        ─ ticker::start (for ckpt --interval)
//!        ─ exe::prepare (namespace mode) ─ resume::set_mm (+ exe_fd)
//!        ── point of no return ──
//!        vdso park ─ unmap all but the loader ─ vdso place ─ memory::restore
//!        ─ frames::apply
//!        ─ resume::resume (sigactions, cwd) ─ threads (clone3 each at its
//!          tid, or clone with a new one; then tid address, robust list,
//!          rseq, %fs) ─ every thread returns into the program by
//!          rt_sigreturn on its own signal frame
//! ```
// Its unit tests (`cargo test -p ckpt-loader`) build the same modules with
// std and the test harness: no `_start`, heap or panic handler of ours there.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(test, allow(dead_code))]

extern crate alloc;

mod args;
mod chain;
mod data;
mod environ;
mod events;
mod exe;
mod fail;
mod files;
mod frames;
mod image;
mod init;
mod inotify;
mod job;
mod layout;
mod locks;
mod memfd;
mod memory;
mod outer;
mod pidns;
mod process;
mod resume;
mod sockets;
mod threads;
mod ticker;
mod timers;
mod vdso;

#[cfg(not(test))]
use core::arch::global_asm;

use linked_list_allocator::LockedHeap;
// memcpy and friends, which the compiler calls (there is no libc; the unit
// tests have std's).
#[cfg(not(test))]
use ckpt_loader_mem as _;

use crate::fail::Fail;

/// The loader's own stack, inside its address range.
const STACK_SIZE: usize = 1 << 20;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
#[no_mangle]
static mut LOADER_STACK: Stack = Stack([0; STACK_SIZE]);

/// The heap arena: the metadata of the largest image (1M extents) fits.
const ARENA_SIZE: usize = 64 << 20;
/// What the heap must keep free beside an image's metadata (the loader's
/// own /proc/self/maps, the vDSO plan): a larger metadata is refused with
/// its reason, not met by an allocation failure later.
pub const ARENA_SPARE: usize = 2 << 20;
/// The largest metadata restart takes.
pub const MAX_META: usize = ARENA_SIZE - ARENA_SPARE;
// image::open's refusal names the size.
const _: () = assert!(MAX_META == 62 << 20);
#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);
static mut ARENA: Arena = Arena([0; ARENA_SIZE]);

#[cfg_attr(not(test), global_allocator)]
static HEAP: LockedHeap = LockedHeap::empty();

/// Every signal, blocked by `_start`; and the mask restart was started with.
#[no_mangle]
static ALL_SIGNALS: u64 = !0;
#[no_mangle]
static mut INHERITED_MASK: u64 = 0;

#[cfg(not(test))]
global_asm!(
    ".globl _start",
    ".type _start,@function",
    ".section .text._start,\"ax\",@progbits",
    "_start:",
    // First of all, block every signal (SIGKILL and SIGSTOP excepted): a
    // checkpoint signal sent to a job being restarted must not kill the
    // loader. rt_sigprocmask(SIG_BLOCK, &ALL_SIGNALS, &INHERITED_MASK, 8);
    // the kernel keeps every register but rax, rcx and r11.
    "    mov eax, {rt_sigprocmask}",
    "    xor edi, edi",
    "    lea rsi, [rip + {all}]",
    "    lea rdx, [rip + {inherited}]",
    "    mov r10d, 8",
    "    syscall",
    // rdi = the kernel's initial stack pointer: argc, argv[], envp[], auxv.
    "    mov rdi, rsp",
    "    lea rsp, [rip + {stack} + {size}]",
    "    xor ebp, ebp",
    "    call {main}",
    "    ud2",
    all = sym ALL_SIGNALS,
    inherited = sym INHERITED_MASK,
    stack = sym LOADER_STACK,
    size = const STACK_SIZE,
    main = sym loader_main,
    rt_sigprocmask = const ckpt_sys::Sysno::rt_sigprocmask as u32,
);

/// Once the image is open: every signal back as restart was started with,
/// except the image's checkpoint signal, which stays blocked until each
/// thread's own mask comes back with its frame. A checkpoint signal sent
/// during the load is then pending, and the restarted program, which
/// catches it, takes that checkpoint at once. (Any other signal acts now,
/// on the loader, as it would have.)
fn unblock_all_but_checkpoint(meta: &ckpt_image::Meta) {
    let sig = meta.header.process.interval_signal as i32;
    let keep = if (1..=64).contains(&sig) { 1u64 << (sig - 1) } else { 0 };
    // SAFETY: written once by _start, before anything else ran.
    let inherited = unsafe { core::ptr::addr_of!(INHERITED_MASK).read() };
    let _ = ckpt_sys::rt_sigprocmask(ckpt_sys::SIG_SETMASK, inherited | keep);
}

/// Entry from `_start`, on the loader's stack.
///
/// # Safety
/// `initial_sp` is the kernel's initial stack pointer.
unsafe extern "C" fn loader_main(initial_sp: *const u64) -> ! {
    // SAFETY: the arena is used by nothing but this heap, which is set up
    // once, here, before anything allocates.
    unsafe { HEAP.lock().init(core::ptr::addr_of_mut!(ARENA) as *mut u8, ARENA_SIZE) };
    // SAFETY: the kernel's initial stack layout.
    let opts = unsafe { args::parse(initial_sp) };
    // The options live in this frame, which never returns: the panic
    // handler may name the image.
    OPTIONS.store(&opts as *const args::Options as *mut args::Options, core::sync::atomic::Ordering::SeqCst);
    match restart(&opts) {
        Ok(never) => match never {},
        Err(f) => f.exit(opts.image()),
    }
}

pub enum Never {}

fn restart(opts: &args::Options) -> Result<Never, Fail> {
    let img = image::open(opts.image_cstr(), opts.trust_image)?;
    unblock_all_but_checkpoint(img.meta);
    let (frames, vdso) = check(&img, opts)?;
    // The image is valid: the namespaces, and from here (in namespace mode)
    // this is the program's process, at its pid, under init.
    let pids = pidns::enter(img.meta, opts)?;
    // A job image: every other process of the job, at its pid, in a copy
    // of this loader that restores that process's image (job.rs).
    let (img, frames, mut vdso) = match job::spawn(&img, pids, opts)? {
        None => (img, frames, vdso),
        Some(member) => {
            let (frames, vdso) = check(&member, opts)?;
            (member, frames, vdso)
        }
    };
    if job::is_root() {
        ticker::start(img.meta);
    }
    let exe = if pids == pidns::Pids::Exact { exe::prepare(img.meta) } else { None };
    resume::set_mm(img.meta, exe)?;

    // The point of no return: from here on the loader's world is gone.
    // SAFETY: the vDSO plan was checked against this process's own maps;
    // everything outside the loader's range is unmapped, then rebuilt.
    unsafe {
        vdso.park()?;
        memory::unmap_all_but_loader();
        vdso.place()?;
        memory::restore(&img, opts.progress_after_ms)?;
        img.close_parents();
        frames.apply()?;
        // CKPT_PID names the job's root: this process, or the root of its job.
        let root = if job::is_root() { ckpt_sys::getpid() as u32 } else { job::root_pid().unwrap_or(0) };
        environ::update_ckpt_pid(img.meta, root);
        // The program's memory is back and verified: the restart happens.
        fail::commit();
        resume::resume(img.meta, img.fd, opts, pids)
    }
}

/// Everything checked of an image before anything changes: its frames
/// for this CPU, its threads, the vDSO, its files, its layout.
fn check(img: &image::Image, opts: &args::Options) -> Result<(frames::Frames, vdso::Plan), Fail> {
    let frames = frames::plan(img, opts.verbose)?;
    threads::check(img.meta)?;
    let vdso = vdso::plan(img.meta)?;
    files::check(img.meta, opts)?;
    layout::check(img.meta)?;
    Ok((frames, vdso))
}

/// The options, for the panic handler (set once, in `loader_main`).
static OPTIONS: core::sync::atomic::AtomicPtr<args::Options> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// A bug of the loader (no input may get here): still one line, naming the
/// image and what went wrong.
#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    let mut l = ckpt_sys::msg::Line::new();
    l.push(b"restart: ");
    // SAFETY: null, or the options in loader_main's frame, which never returns.
    if let Some(opts) = unsafe { OPTIONS.load(core::sync::atomic::Ordering::SeqCst).as_ref() } {
        l.push_escaped(opts.image()).push(b": ");
    }
    let _ = write!(l, "internal error: {}", info.message());
    if let Some(at) = info.location() {
        let _ = write!(l, " ({}:{})", at.file(), at.line());
    }
    l.emit();
    ckpt_sys::exit_group(1)
}
