//! `restart`: turns a ckpt image back into the process it was.
//!
//! # The rules of this code
//!
//! This program runs where no world exists yet, and then destroys the one it
//! was given. It is a static executable at a fixed address (`linker.ld`),
//! with no libc, no C runtime, no TLS and no unwinder:
//!
//! * `_start` is ours. It leaves the kernel's stack at once for a static one
//!   inside the loader's range, because the kernel's stack is unmapped with
//!   everything else that is not the loader.
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
//!   main ─ args ─ image::open ─ frames::plan (CPU check; frames laid out
//!        for this CPU) ─ vdso::plan ─ files::check
//!        ─ ticker::start (for ckpt --interval) ─ resume::set_mm
//!        ── point of no return ──
//!        vdso park ─ unmap all but the loader ─ vdso place ─ memory::restore
//!        ─ frames::apply
//!        ─ resume::resume (sigactions, cwd) ─ threads (clone each, then
//!          tid address, robust list, rseq, %fs) ─ every thread returns
//!          into the program by rt_sigreturn on its own signal frame
//! ```
#![no_std]
#![no_main]

extern crate alloc;

mod args;
mod data;
mod events;
mod fail;
mod files;
mod frames;
mod image;
mod inotify;
mod locks;
mod mem;
mod memfd;
mod memory;
mod process;
mod resume;
mod sockets;
mod threads;
mod ticker;
mod vdso;

use core::arch::global_asm;

use linked_list_allocator::LockedHeap;

use crate::fail::Fail;

/// The loader's own stack, inside its address range.
const STACK_SIZE: usize = 1 << 20;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
#[no_mangle]
static mut LOADER_STACK: Stack = Stack([0; STACK_SIZE]);

/// The heap arena: the metadata of the largest image (1M extents) fits.
const ARENA_SIZE: usize = 64 << 20;
#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);
static mut ARENA: Arena = Arena([0; ARENA_SIZE]);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

global_asm!(
    ".globl _start",
    ".type _start,@function",
    ".section .text._start,\"ax\",@progbits",
    "_start:",
    // rdi = the kernel's initial stack pointer: argc, argv[], envp[], auxv.
    "    mov rdi, rsp",
    "    lea rsp, [rip + {stack} + {size}]",
    "    xor ebp, ebp",
    "    call {main}",
    "    ud2",
    stack = sym LOADER_STACK,
    size = const STACK_SIZE,
    main = sym loader_main,
);

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
    match restart(&opts) {
        Ok(never) => match never {},
        Err(f) => f.exit(opts.image()),
    }
}

pub enum Never {}

fn restart(opts: &args::Options) -> Result<Never, Fail> {
    let img = image::open(opts.image_cstr())?;
    let frames = frames::plan(&img, opts.verbose)?;
    threads::check(img.meta)?;
    let mut vdso = vdso::plan(img.meta)?;
    files::check(img.meta, opts)?;
    ticker::start(img.meta);
    resume::set_mm(&img.meta.header)?;

    // The point of no return: from here on the loader's world is gone.
    // SAFETY: the vDSO plan was checked against this process's own maps;
    // everything outside the loader's range is unmapped, then rebuilt.
    unsafe {
        vdso.park()?;
        memory::unmap_all_but_loader();
        vdso.place()?;
        memory::restore(&img)?;
        frames.apply()?;
        resume::resume(img.meta, img.fd, opts)
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let _ = ckpt_sys::write_all(2, b"restart: internal error\n");
    ckpt_sys::exit_group(1)
}
