//! The capture's working memory: one anonymous mapping, made by the
//! constructor, holding the capture stack and every buffer and table.
//!
//! ```text
//! base                  guard page (PROT_NONE)
//! base+4K               the launcher's stdio (ckpt_image::StdioIdentity)
//! base+8K               capture stack (grows down from `stack_top`)
//!                       Shared: coordination words, thread records
//!                               (every thread writes its own slot)
//!                       thread stacks: one per slot, where each
//!                               stopped thread's handler parks
//!                       Tables: maps text, pagemap words, strings,
//!                               region, extent and fd tables, bounce buffer
//!                               (the coordinator's alone)
//! base+WORKSPACE_SIZE
//! ```
//!
//! The mapping is `MAP_NORESERVE` and mostly untouched: it costs the
//! program only the pages a checkpoint actually used. In the image it is a
//! `Workspace` region, which is not stored and comes back zero-filled: its
//! contents are dead once the image is written, and the addresses the
//! library keeps in its statics stay valid after a restart.

use core::cell::UnsafeCell;
use core::mem::size_of;

use ckpt_image::{Extent, Fd, Region, SigAction, Thread, MAX_EXTENT, NSIG};
use ckpt_sys as sys;

use crate::threads::Sync;

pub const STACK_SIZE: usize = 512 << 10;
pub const MAPS_SIZE: usize = 16 << 20;
pub const PAGEMAP_WORDS: usize = 16 << 10;
pub const STRINGS_SIZE: usize = 8 << 20;
pub const MAX_REGIONS: usize = ckpt_image::MAX_REGIONS as usize;
pub const MAX_EXTENTS: usize = ckpt_image::MAX_EXTENTS as usize;
pub const MAX_THREADS: usize = ckpt_image::MAX_THREADS as usize;
/// As many descriptors as an image may hold. The workspace is
/// `MAP_NORESERVE` and written in order, so the table costs only the pages
/// the program's descriptors fill, and no limit the program sets later
/// (`RLIMIT_NOFILE` can be raised at any time) can outgrow it: a program with
/// more open descriptors than this cannot be checkpointed, and is told so.
pub const MAX_FDS: usize = ckpt_image::MAX_FDS as usize;
/// The stack of one stopped thread's handler (slots 1 and up).
pub const THREAD_STACK_SIZE: usize = 16 << 10;

/// What every thread touches during a checkpoint.
#[repr(C)]
pub struct Shared {
    pub sync: Sync,
    pub threads: [Thread; MAX_THREADS],
}

/// What only the coordinator touches.
#[repr(C)]
pub struct Tables {
    pub maps: [u8; MAPS_SIZE],
    pub pagemap: [u64; PAGEMAP_WORDS],
    pub strings: [u8; STRINGS_SIZE],
    pub regions: [Region; MAX_REGIONS],
    pub extents: [Extent; MAX_EXTENTS],
    pub tids: [u32; MAX_THREADS],
    pub fds: [Fd; MAX_FDS],
    /// Scratch for grouping the fd table (`files::capture`).
    pub fd_order: [u32; MAX_FDS],
    pub sigactions: [SigAction; NSIG],
    pub dents: [u8; 64 << 10],
    /// One bounce buffer per writer thread.
    pub bounce: [[u8; MAX_EXTENT as usize]; 2],
    /// The stack of the capture's helper thread.
    pub helper_stack: [u8; 64 << 10],
}

const GUARD: usize = 4096;
/// The stdio identity: the start of the lowest writable page, where
/// `restart` finds it.
const STDIO_OFFSET: usize = GUARD;
const SHARED_OFFSET: usize = GUARD + 4096 + STACK_SIZE;
const THREAD_STACKS_OFFSET: usize = (SHARED_OFFSET + size_of::<Shared>() + 4095) & !4095;
const TABLES_OFFSET: usize = THREAD_STACKS_OFFSET + MAX_THREADS * THREAD_STACK_SIZE;
pub const WORKSPACE_SIZE: usize = (TABLES_OFFSET + size_of::<Tables>() + 4095) & !4095;

struct Base(UnsafeCell<u64>);
// SAFETY: written once by the constructor, read-only afterwards.
unsafe impl core::marker::Sync for Base {}
static BASE: Base = Base(UnsafeCell::new(0));

fn base() -> u64 {
    // SAFETY: see Base.
    unsafe { *BASE.0.get() }
}

/// Maps the workspace (constructor only).
pub fn create() -> Result<(), &'static str> {
    // SAFETY: a new mapping where the kernel chooses; nothing is replaced.
    let addr = unsafe {
        sys::mmap(
            0,
            WORKSPACE_SIZE as u64,
            sys::PROT_READ | sys::PROT_WRITE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE,
            -1,
            0,
        )
    }
    .map_err(|_| "cannot map the checkpoint workspace")?;
    // SAFETY: the guard page is ours, at the bottom of the capture stack.
    let _ = unsafe { sys::mprotect(addr, GUARD as u64, sys::PROT_NONE) };
    // SAFETY: see Base; called before the handler exists.
    unsafe { *BASE.0.get() = addr };
    Ok(())
}

/// The address range of the workspace.
pub fn range() -> (u64, u64) {
    (base(), base() + WORKSPACE_SIZE as u64)
}

/// Who the launcher's stdin, stdout and stderr are (see
/// `ckpt_image::StdioIdentity`).
pub fn stdio_identity() -> *mut ckpt_image::StdioIdentity {
    (base() + STDIO_OFFSET as u64) as *mut ckpt_image::StdioIdentity
}

/// The top of the capture stack (16-byte aligned).
pub fn stack_top() -> u64 {
    base() + SHARED_OFFSET as u64
}

/// The top of the handler stack of thread slot `slot` (16-byte aligned),
/// if there is such a slot (slot 0 is the coordinator's: [`stack_top`]).
pub fn thread_stack_top(slot: usize) -> Option<u64> {
    (1..MAX_THREADS).contains(&slot).then(|| base() + (THREAD_STACKS_OFFSET + (slot + 1) * THREAD_STACK_SIZE) as u64)
}

/// The coordination words and the thread table.
///
/// # Safety
/// The workspace must exist (the handlers are installed after it is made).
/// Each thread writes only the slot it claimed; the coordinator reads the
/// table only once the threads have arrived.
pub unsafe fn sync_and_threads() -> (&'static Sync, &'static mut [Thread; MAX_THREADS]) {
    let shared = (base() + SHARED_OFFSET as u64) as *mut Shared;
    (&(*shared).sync, &mut (*shared).threads)
}

/// The tables.
///
/// # Safety
/// Only the capture (one at a time: the handler blocks every signal) may
/// hold this reference.
pub unsafe fn tables() -> &'static mut Tables {
    &mut *((base() + TABLES_OFFSET as u64) as *mut Tables)
}
