//! The capture's working memory: one anonymous mapping, made by the
//! constructor, holding the capture stack and every buffer and table.
//!
//! ```text
//! base                  guard page (PROT_NONE)
//! base+4K               the launcher's stdio (ckpt_image::StdioIdentity)
//! base+8K               capture stack (grows down from `stack_top`)
//!                       Shared: coordination words, thread slots
//!                               (every thread writes its own slot and
//!                               publishes it with the slot's ready word)
//!                       thread stacks: one per slot, where each
//!                               stopped thread's handler parks
//!                       the writer page: MAP_SHARED, the one page the
//!                               program and its copy-on-write writer
//!                               share ([`crate::cow`])
//!                       Tables: maps text, pagemap words, strings,
//!                               region, extent and fd tables, bounce and
//!                               compression buffers
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
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ckpt_image::{Extent, Fd, Region, SigAction, Thread, MAX_EXTENT, NSIG};
use ckpt_sys as sys;

use crate::threads::Sync;

pub const STACK_SIZE: usize = 512 << 10;
pub const MAPS_SIZE: usize = 16 << 20;
pub const PAGEMAP_WORDS: usize = 16 << 10;
pub const STRINGS_SIZE: usize = 8 << 20;
pub const PARENT_META: usize = 64 << 20;
/// Runs of written pages one checkpoint can take note of (more: every
/// extent is compared instead).
pub const WRITTEN_RUNS: usize = 1 << 18;
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

/// What every thread touches during a checkpoint: only through atomics and
/// the slots' publication protocol, so a shared reference is all anyone
/// holds.
#[repr(C)]
pub struct Shared {
    pub sync: Sync,
    pub slots: [Slot; MAX_THREADS],
}

/// One stopped thread's record. The thread that claimed the slot for a
/// generation (`Sync::slots`, handed out once per generation) writes the
/// record, then stores the generation in `ready` (Release); the coordinator
/// reads the record only once it has seen that generation there (Acquire),
/// and the writer never touches it again in that generation.
#[repr(C)]
pub struct Slot {
    ready: AtomicU32,
    thread: UnsafeCell<Thread>,
}

// SAFETY: the record is written by one thread (the slot's claimant) before
// `ready` publishes it and only read after; see Slot.
unsafe impl core::marker::Sync for Slot {}

impl Slot {
    /// Writes and publishes this slot's record for `generation`.
    ///
    /// # Safety
    /// The caller claimed this slot for `generation` and publishes once.
    pub unsafe fn publish(&self, generation: u32, t: Thread) {
        // SAFETY: the slot is the caller's alone until `ready` says
        // otherwise: the coordinator does not read it before.
        unsafe { *self.thread.get() = t };
        self.ready.store(generation, Ordering::Release);
    }

    /// The record, once published for `generation`.
    pub fn get(&self, generation: u32) -> Option<Thread> {
        // SAFETY: published (Acquire pairs with publish's Release): the
        // writer is done with it.
        (self.ready.load(Ordering::Acquire) == generation).then(|| unsafe { *self.thread.get() })
    }

    /// The tid of the record, once published for `generation`.
    pub fn tid(&self, generation: u32) -> Option<u32> {
        // SAFETY: as get.
        (self.ready.load(Ordering::Acquire) == generation).then(|| unsafe { (*self.thread.get()).tid })
    }
}

/// One writer worker's buffer. `ckpt_sys::thread::split` gives each
/// worker its own index and worker `w` uses only buffer `w`, so the buffer
/// has one user at a time; it is reached through a raw pointer only.
#[repr(transparent)]
pub struct Worker<T>(UnsafeCell<T>);

// SAFETY: one user at a time, see Worker.
unsafe impl<T> core::marker::Sync for Worker<T> {}

impl<T> Worker<T> {
    pub fn as_mut_ptr(&self) -> *mut T {
        self.0.get()
    }
}

/// A copy of one extent (shared memory, which may change meanwhile).
pub type Bounce = Worker<[u8; MAX_EXTENT as usize]>;
/// The compressed form of one extent.
pub type Packed = Worker<[u8; ckpt_image::codec::PACKED_MAX]>;
/// The compressor's hash table, set up afresh for each checkpoint (the
/// workspace comes back zero-filled after a restart).
pub type Lz4Table = Worker<core::mem::MaybeUninit<ckpt_image::codec::Table>>;

/// What only the coordinator touches (through its [`Session`]).
#[repr(C)]
pub struct Tables {
    pub maps: [u8; MAPS_SIZE],
    pub pagemap: [u64; PAGEMAP_WORDS],
    pub strings: [u8; STRINGS_SIZE],
    pub regions: [Region; MAX_REGIONS],
    pub extents: [Extent; MAX_EXTENTS],
    /// Per region: its pages are left for the copy-on-write writer to find.
    pub late: [bool; MAX_REGIONS],
    /// The writer's extent table, made from `extents` and its own scan.
    pub late_extents: [Extent; MAX_EXTENTS],
    /// The extents' checksums, each written by the worker that wrote the
    /// extent (then copied into the extent table).
    pub sums: [AtomicU64; MAX_EXTENTS],
    pub tids: [u32; MAX_THREADS],
    /// The thread records collected from the slots, in slot order.
    pub threads: [Thread; MAX_THREADS],
    pub fds: [Fd; MAX_FDS],
    /// Scratch for grouping the fd table (`files::capture`).
    pub fd_order: [u32; MAX_FDS],
    pub sigactions: [SigAction; NSIG],
    pub dents: [u8; 64 << 10],
    /// One bounce buffer per writer thread.
    pub bounce: [Bounce; 2],
    /// `--compress`: how each extent was stored (written by the worker that
    /// wrote it: stored length, encoding << 32), one compression buffer
    /// and one compressor table per writer thread.
    pub stored: [AtomicU64; MAX_EXTENTS],
    pub packed: [Packed; 2],
    pub lz4: [Lz4Table; 2],
    /// The stack of the capture's helper thread.
    pub helper_stack: [u8; 64 << 10],
    /// The tables of the image a delta is taken after (delta.rs); a parent
    /// with more metadata than this is not used (a full image instead).
    pub parent_meta: [u8; PARENT_META],
    /// The ranges whose writes the kernel tracks (dirty.rs), and scratch
    /// for the next list; the runs of pages written found at a checkpoint.
    pub tracked: [Range; MAX_REGIONS],
    pub tracked_next: [Range; MAX_REGIONS],
    pub written: [ckpt_sys::wp::PageRegion; WRITTEN_RUNS],
}

/// A range of addresses whose writes are tracked (dirty.rs); `ok`: its
/// last scan worked.
#[derive(Clone, Copy, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
    pub ok: bool,
}

/// The root's part of a job checkpoint (`job.rs`): the member table and
/// their command lines.
#[repr(C)]
pub struct JobTables {
    pub members: [ckpt_image::job::Member; ckpt_image::job::MAX_MEMBERS as usize],
    pub links: [ckpt_image::job::Link; ckpt_image::job::MAX_LINKS as usize],
    /// Scratch for finding the links: every descriptor of every member.
    pub entries: [crate::links::Entry; ckpt_image::job::MAX_LINKS as usize],
    pub shared: [ckpt_image::job::SharedMap; ckpt_image::job::MAX_LINKS as usize],
    /// Scratch for finding the shared mappings.
    pub map_entries: [crate::links::MapEntry; ckpt_image::job::MAX_LINKS as usize],
    pub maps_text: [u8; 4 << 20],
    /// Command lines, and the bytes waiting in pipes between members.
    pub strings: [u8; 16 << 20],
}

const GUARD: usize = 4096;
/// The stdio identity: the start of the lowest writable page, where
/// `restart` finds it.
const STDIO_OFFSET: usize = GUARD;
const SHARED_OFFSET: usize = GUARD + 4096 + STACK_SIZE;
const THREAD_STACKS_OFFSET: usize = (SHARED_OFFSET + size_of::<Shared>() + 4095) & !4095;
const WRITER_PAGE_OFFSET: usize = THREAD_STACKS_OFFSET + MAX_THREADS * THREAD_STACK_SIZE;
const TABLES_OFFSET: usize = WRITER_PAGE_OFFSET + 4096;
const JOB_OFFSET: usize = (TABLES_OFFSET + size_of::<Tables>() + 4095) & !4095;
pub const WORKSPACE_SIZE: usize = (JOB_OFFSET + size_of::<JobTables>() + 4095) & !4095;

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

/// The address of the page shared with the copy-on-write writer (mapped
/// there by [`crate::cow`]).
pub fn writer_page() -> u64 {
    base() + WRITER_PAGE_OFFSET as u64
}

/// The coordination words and the thread slots.
///
/// # Safety
/// The workspace must exist (the handlers are installed after it is made).
pub unsafe fn shared() -> &'static Shared {
    // SAFETY: the workspace exists (caller); Shared is used only through
    // atomics and Slot's protocol.
    unsafe { &*((base() + SHARED_OFFSET as u64) as *const Shared) }
}

/// The coordinator's hold on the tables for one checkpoint. Made once per
/// checkpoint by the thread that won `threads::begin`, neither Copy nor
/// Clone: the `&mut Tables` it lends lives no longer than the borrow of the
/// session, so there is never more than one.
pub struct Session(*mut Tables);

impl Session {
    /// # Safety
    /// The workspace must exist, the caller must be the coordinator of the
    /// checkpoint in progress, and make one session for it.
    pub unsafe fn claim() -> Session {
        Session((base() + TABLES_OFFSET as u64) as *mut Tables)
    }

    /// The tables and the job's tables, lent together.
    pub fn split(&mut self) -> (&mut Tables, &mut JobTables) {
        let job = (self.0 as usize - TABLES_OFFSET + JOB_OFFSET) as *mut JobTables;
        // SAFETY: the session is the one holder of both (claim), they do not
        // overlap, and the borrows are tied to the session's.
        unsafe { (&mut *self.0, &mut *job) }
    }
}
