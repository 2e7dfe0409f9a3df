//! The ckpt image format, version 3.
//!
//! One crate, shared by the three programs that touch an image:
//! the capture library (`preload`, writes it), the loader (`restart`, reads it
//! before it has a libc or even its own stack) and the inspector (`readckpt`).
//! `docs/FORMAT.md` is the prose version of this file; keep them together.
//!
//! ```text
//! offset 0            Header (fixed size, HEADER_SIZE bytes, zero padded to one page)
//! meta_offset         metadata: Region[n_regions] Extent[n_extents] Thread[n_threads]
//!                               SigAction[NSIG] Fd[n_fds] strings[strings_len]
//! data_offset         page-aligned data: every Extent's stored bytes, in table order
//!                               (raw, page aligned; or LZ4-compressed, packed:
//!                               `Extent::encoding`, `Extent::place_at`)
//! file_len            end of file
//! ```
//!
//! Every integer is little-endian (the only architecture is x86-64). Every
//! table entry is `#[repr(C)]`, made of `u64`/`u32` fields with explicit
//! padding, so that it can be written straight from memory and read back with
//! an unaligned copy. The header carries an xxh3 checksum of itself and one of
//! the metadata; each extent carries the xxh3 of its data (uncompressed).
//!
//! The crate is `no_std` and allocation-free: the loader validates an image
//! before it touches its own address space, with no heap of consequence.
#![no_std]

#[cfg(any(test, feature = "sample"))]
extern crate alloc;

use core::mem::size_of;

pub mod codec;
pub mod encode;
pub mod events;
pub mod exercise;
pub mod job;
mod layout;
pub mod maps;
#[cfg(any(test, feature = "sample"))]
pub mod sample;
pub mod signals;
pub mod timers;
pub mod xstate;

pub mod checksum;
pub use checksum::checksum;

/// The checksum of several byte slices laid end to end (equal to
/// `checksum` of their concatenation; xxhash-rust's streaming form, for
/// the metadata).
pub fn checksum_parts(parts: &[&[u8]]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(p);
    }
    h.digest()
}

/// First eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"CKPTIMG\0";
/// The version this crate reads and writes. A newer one is refused.
pub const FORMAT_VERSION: u32 = 3;
/// ELF machine number of x86-64: the only architecture images come from.
pub const ARCH_X86_64: u32 = 62;
pub const PAGE_SIZE: u64 = 4096;
/// Bytes reserved for the header at the start of the file (one page).
pub const HEADER_SPACE: u64 = PAGE_SIZE;
/// Number of signal dispositions stored (signals 1..=64; index 0 unused).
pub const NSIG: usize = 65;
/// Largest `saved_auxv` the kernel keeps (`AT_VECTOR_SIZE` longs).
pub const AUXV_WORDS: usize = 64;

/// Hard limits: a header claiming more is corrupt, not large.
pub const MAX_REGIONS: u32 = 1 << 17;
pub const MAX_EXTENTS: u32 = 1 << 20;
pub const MAX_THREADS: u32 = 4096;
pub const MAX_FDS: u32 = 1 << 16;
pub const MAX_STRINGS: u64 = 64 << 20;

/// Highest user address on x86-64 with 4-level paging (`TASK_SIZE`).
pub const USER_END: u64 = 0x7fff_ffff_f000;

/// The loader's fixed home. The capture library reserves this range in every
/// target (PROT_NONE, `MAP_FIXED_NOREPLACE`) so that no target mapping can
/// ever land where the loader lives; an image region inside it is refused.
///
/// ```text
/// 0x2000_0000_0000  loader ELF: .text .rodata .data .bss (stack, heap arena)
/// 0x2000_0800_0000  scratch: the loader's own vDSO/vvar are parked here
/// 0x2000_0c00_0000  thread stacks for the restart (16 KiB each, MAX_THREADS)
/// 0x2000_1000_0000  end of the reservation
/// ```
pub const LOADER_BASE: u64 = 0x2000_0000_0000;
pub const LOADER_SIZE: u64 = 0x1000_0000;
pub const LOADER_END: u64 = LOADER_BASE + LOADER_SIZE;
pub const LOADER_SCRATCH: u64 = LOADER_BASE + 0x0800_0000;
pub const LOADER_THREAD_STACKS: u64 = LOADER_BASE + 0x0c00_0000;
pub const LOADER_THREAD_STACK_SIZE: u64 = 16 << 10;

/// Most parents a delta image may name (`Header::parents`).
pub const MAX_CHAIN: usize = 16;

/// Longest extent: data is hashed and written in pieces of at most this
/// size, so that each piece is still in cache when it is written or checked.
pub const MAX_EXTENT: u64 = 4 << 20;

/// SIGKILL and SIGSTOP (bits 8 and 18 of a pending set): the kernel acts on
/// them at once, so no real process has them pending; an image that says so
/// is corrupt (restarting it would kill or stop the program at once).
pub const NEVER_PENDING: u64 = 1 << (9 - 1) | 1 << (19 - 1);

/// Exit status of a program that stopped because it was checkpointed.
pub const EXIT_CHECKPOINTED: i32 = 99;

/// Marker for "readable", "writable", "executable" in [`Region::prot`]:
/// the same bits as `PROT_READ`, `PROT_WRITE`, `PROT_EXEC`.
pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// [`Region::flags`] bits.
pub const REGION_SHARED: u32 = 1;
/// The region grows down (the main stack): restored with `MAP_GROWSDOWN`.
pub const REGION_GROWSDOWN: u32 = 2;

/// What a region was in the checkpointed process.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Anonymous memory (malloc arenas, thread stacks, `mmap(MAP_ANONYMOUS)`).
    Anon = 0,
    /// Mapped from a file; the contents are stored, the file is not needed.
    File = 1,
    /// The program break area (`[heap]`).
    Heap = 2,
    /// The main thread's stack (`[stack]`).
    Stack = 3,
    /// The kernel's `[vvar]`: never stored, the loader moves its own here.
    Vvar = 4,
    /// The kernel's `[vvar_vclock]` (Linux 6.13 and later): as `Vvar`.
    VvarVclock = 5,
    /// The kernel's `[vdso]`: as `Vvar`.
    Vdso = 6,
    /// ckpt's own working memory (the capture stack and tables): mapped back
    /// zero-filled, never stored; its contents were dead once the image was written.
    Workspace = 7,
}

impl RegionKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Anon,
            1 => Self::File,
            2 => Self::Heap,
            3 => Self::Stack,
            4 => Self::Vvar,
            5 => Self::VvarVclock,
            6 => Self::Vdso,
            7 => Self::Workspace,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Anon => "anon",
            Self::File => "file",
            Self::Heap => "heap",
            Self::Stack => "stack",
            Self::Vvar => "vvar",
            Self::VvarVclock => "vvar_vclock",
            Self::Vdso => "vdso",
            Self::Workspace => "ckpt",
        }
    }

    /// The kernel's special mappings, which are moved, never stored.
    pub fn is_vdso(self) -> bool {
        matches!(self, Self::Vvar | Self::VvarVclock | Self::Vdso)
    }
}

/// Marks a type whose every bit pattern is valid and which has no padding,
/// so it may be viewed as bytes and read back from bytes.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs of integers without implicit padding.
pub unsafe trait Pod: Copy + 'static {}

/// The bytes of a [`Pod`] value, for writing it out.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod: no padding, so every byte is initialised.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// The bytes of a slice of [`Pod`] values.
pub fn bytes_of_slice<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: as bytes_of, for each element; the length cannot overflow
    // because the slice exists.
    unsafe { core::slice::from_raw_parts(v.as_ptr() as *const u8, core::mem::size_of_val(v)) }
}

/// Reads the `index`-th `T` of a table that starts at `bytes[0]`, if it fits.
pub fn read_at<T: Pod>(bytes: &[u8], index: usize) -> Option<T> {
    let start = index.checked_mul(size_of::<T>())?;
    let end = start.checked_add(size_of::<T>())?;
    let b = bytes.get(start..end)?;
    // SAFETY: b holds exactly size_of::<T>() bytes, and any bit pattern is a
    // valid T (Pod); read_unaligned has no alignment requirement.
    Some(unsafe { core::ptr::read_unaligned(b.as_ptr() as *const T) })
}

/// The process-wide layout that `prctl(PR_SET_MM, PR_SET_MM_MAP)` restores,
/// as read from `/proc/self/stat` and `brk(0)` at checkpoint time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmLayout {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for MmLayout {}

/// The fixed-size header at offset 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: u32,
    pub arch: u32,
    pub page_size: u32,
    /// `size_of::<Header>()` of the writer: a reader checks it equals its own.
    pub header_size: u32,
    /// Wall-clock time the checkpoint was taken, nanoseconds since the epoch.
    pub created_ns: u64,
    /// Wall-clock nanoseconds the capture took until the data was written.
    pub capture_ns: u64,
    pub pid: u32,
    pub n_threads: u32,
    pub n_regions: u32,
    pub n_extents: u32,
    pub meta_offset: u64,
    pub meta_len: u64,
    pub meta_checksum: u64,
    pub strings_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub file_len: u64,
    /// XCR0 feature bits enabled where the image was taken (for display:
    /// what the image needs is `required_xfeatures`).
    pub xfeatures: u64,
    /// Size of the XSAVE area in a signal frame where the image was taken.
    pub xsave_size: u32,
    /// Index of the thread whose signal handler wrote the image.
    pub leader: u32,
    /// Number of entries in the file descriptor table.
    pub n_fds: u32,
    pub _pad: u32,
    pub mm: MmLayout,
    /// Process-wide kernel state: timers, limits, pending signals, flags.
    pub process: ProcessState,
    /// `/proc/self/auxv` as (type, value) words, AT_NULL terminated.
    pub auxv: [u64; AUXV_WORDS],
    pub auxv_words: u32,
    /// umask of the process.
    pub umask: u32,
    /// Process name (`/proc/self/comm`, `PR_SET_NAME`), NUL padded.
    pub comm: [u8; 16],
    /// Strings in the string table: the command line (NUL separated), the
    /// working directory, the executable path.
    pub cmdline: StrRef,
    pub cwd: StrRef,
    pub exe: StrRef,
    /// The XSAVE components the threads' frames hold in a non-initial
    /// state: a CPU must have all of them to resume the image.
    pub required_xfeatures: u64,
    /// The x86-64 level (1-4) of the CPU the image was taken on.
    pub cpu_level: u32,
    /// `ckpt --portable`: the level the program's CPU dispatch was held to
    /// (1-4); 0: none, the program may use anything its CPU had.
    pub portable_level: u32,
    /// The CPU's brand string (CPUID 0x8000_0002-4), NUL padded.
    pub cpu_brand: [u8; 48],
    /// Where each XSAVE component lies in a frame on that CPU (CPUID 0xD).
    pub xlayout: xstate::Layout,
    /// Number of parents of a delta image (0: a full image, every extent's
    /// bytes are in this file); at most [`MAX_CHAIN`].
    pub chain_depth: u32,
    pub _pad2: u32,
    /// The parents of a delta image, nearest first (`parents[k-1]` holds the
    /// extents of `source` k): the whole chain down to the full image.
    /// Unused entries are zero.
    pub parents: [Parent; MAX_CHAIN],
    /// xxh3 of the header bytes with this field zero.
    pub header_checksum: u64,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for Header {}

pub const HEADER_SIZE: usize = size_of::<Header>();

/// One link of a delta image's chain: the image it takes unchanged
/// extents from, by name and identity.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parent {
    /// The parent's `header_checksum` (which covers its `meta_checksum`,
    /// `created_ns` and `file_len`): its identity.
    pub id: u64,
    /// The parent's `file_len`.
    pub file_len: u64,
    /// string: the parent's file name, in the directory of this image (no `/`).
    pub name: StrRef,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for Parent {}

/// A slice of the string table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    pub offset: u32,
    pub len: u32,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for StrRef {}

/// One memory mapping of the process, one line of `/proc/self/maps`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    /// PROT_* bits of the mapping.
    pub prot: u32,
    /// REGION_* bits.
    pub flags: u32,
    /// A [`RegionKind`].
    pub kind: u32,
    /// Number of extents that belong to this region.
    pub n_extents: u32,
    /// Index of the region's first extent in the extent table.
    pub first_extent: u32,
    pub _pad: u32,
    /// Offset into the backing file, for File regions.
    pub file_offset: u64,
    /// The backing file as it was at checkpoint time (File regions): a
    /// shared file mapping is written back only to an unchanged file.
    pub file: FileId,
    /// The name `/proc/self/maps` gave: the backing file's path for File
    /// regions (with ` (deleted)` if it was), `[heap]`, `[stack]`, `[vdso]`…
    /// for the others, empty for plain anonymous memory.
    pub path: StrRef,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for Region {}

impl Region {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    pub fn kind(&self) -> Option<RegionKind> {
        RegionKind::from_u32(self.kind)
    }
}

/// What identifies a file's state: all zero when unknown.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: u64,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for FileId {}

/// A run of stored pages of one region. Pages of a region that no extent
/// covers were never touched and come back zero-filled.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// Address of the first byte (page aligned, inside its region).
    pub addr: u64,
    /// Length in bytes (a multiple of the page size, non zero).
    pub len: u64,
    /// Where the stored bytes are in the file (inside the data area; the
    /// extents' stored bytes follow each other in table order, a raw
    /// extent's from the next page boundary: [`Extent::place_at`]).
    pub file_pos: u64,
    /// xxh3 of the bytes (uncompressed: of the memory, however stored).
    pub checksum: u64,
    /// Bytes in the file at `file_pos`: `len` when stored raw, less when
    /// compressed.
    pub stored_len: u64,
    /// How the bytes are stored: `EXTENT_RAW` or `EXTENT_LZ4`.
    pub encoding: u32,
    /// Which file holds the bytes: 0 this image, k the k-th parent
    /// ([`Header::parents`]`[k-1]`) of a delta image.
    pub source: u32,
}

/// [`Extent::encoding`]: the memory as it is.
pub const EXTENT_RAW: u32 = 0;
/// [`Extent::encoding`]: one LZ4 block (the LZ4 block format, no frame).
pub const EXTENT_LZ4: u32 = 1;
/// [`Extent::encoding`]: reserved for zstd; this version neither writes
/// nor reads it.
pub const EXTENT_ZSTD: u32 = 2;

impl Extent {
    /// An extent of `len` bytes at `addr`, stored raw, not placed yet.
    pub const fn new(addr: u64, len: u64) -> Extent {
        Extent { addr, len, file_pos: 0, checksum: 0, stored_len: len, encoding: EXTENT_RAW, source: 0 }
    }

    /// Whether `stored_len` fits the encoding: raw, all of it; compressed,
    /// at least one byte and fewer than raw (else it is stored raw).
    pub fn stored_len_ok(&self) -> bool {
        match self.encoding {
            EXTENT_RAW => self.stored_len == self.len,
            EXTENT_LZ4 => self.stored_len != 0 && self.stored_len < self.len,
            _ => false,
        }
    }

    /// Where the stored bytes go when the data so far ends at `data_pos`:
    /// raw bytes at the next page boundary (so that they are written and
    /// read a page at a time), compressed ones right there.
    pub fn place_at(&self, data_pos: u64) -> u64 {
        if self.compressed() {
            data_pos
        } else {
            page_up(data_pos)
        }
    }

    /// Whether the stored bytes are compressed.
    pub fn compressed(&self) -> bool {
        self.encoding != EXTENT_RAW
    }

    /// The encoding's name ("raw", "lz4").
    pub fn encoding_name(&self) -> &'static str {
        match self.encoding {
            EXTENT_RAW => "raw",
            EXTENT_LZ4 => "lz4",
            EXTENT_ZSTD => "zstd",
            _ => "unknown",
        }
    }
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for Extent {}

/// One thread, as its checkpoint signal handler found it.
///
/// The complete CPU state (general registers, flags, x87/SSE/AVX/AVX-512
/// and the signal mask) is the kernel's own signal frame, which lives in the
/// thread's stack and so is in the image's memory: `ucontext` points at it.
/// The loader resumes the thread with `rt_sigreturn` on that frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thread {
    pub tid: u32,
    /// Offset from `fs_base` of the tid glibc caches in its thread
    /// descriptor (0: not found). The loader writes the new tid there.
    pub tid_offset: u32,
    /// Address of the `ucontext_t` the kernel passed to the handler.
    pub ucontext: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    /// rseq registration: area, length, signature (area 0: none).
    pub rseq_area: u64,
    pub rseq_len: u32,
    pub rseq_sig: u32,
    /// `set_tid_address` pointer (glibc: the thread descriptor's tid).
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: u64,
    pub robust_len: u64,
    /// Copy of the saved general registers (`uc_mcontext.gregs`, in glibc's
    /// REG_* order), for display only: the loader uses the frame in memory.
    pub gregs: [u64; 23],
    /// Copy of the saved signal mask, for display only.
    pub sigmask: u64,
    /// The thread's name (`PR_GET_NAME`), NUL padded.
    pub comm: [u8; 16],
    /// Signals pending for this thread alone (bit n-1 for signal n),
    /// raised again for it after the restart.
    pub pending: u64,
    /// Address of the frame's XSAVE area (`uc_mcontext.fpregs`).
    pub fpstate: u64,
    /// The frame's `xstate_bv`: components not in their initial state.
    pub xstate_bv: u64,
    /// The components whose saved contents are not their initial value
    /// (`xstate_bv`, less components that hold zeros): what it requires.
    pub xinuse: u64,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for Thread {}

/// A signal disposition in the kernel's `struct sigaction` layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for SigAction {}

/// An interval timer (`setitimer`), in nanoseconds; zero value: disarmed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ITimer {
    pub interval_ns: u64,
    pub value_ns: u64,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for ITimer {}

/// Number of resource limits stored (`RLIMIT_NLIMITS` on Linux).
pub const NLIMITS: usize = 16;

/// Process-wide kernel state other than memory and signal dispositions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessState {
    /// ITIMER_REAL (alarm), ITIMER_VIRTUAL, ITIMER_PROF.
    pub itimers: [ITimer; 3],
    /// Resource limits, RLIMIT_* order: (soft, hard); u64::MAX is infinity.
    pub rlimits: [[u64; 2]; NLIMITS],
    /// Signals pending for the whole process (bit n-1 for signal n).
    pub pending: u64,
    /// `PR_GET_PDEATHSIG` (0: none).
    pub pdeathsig: u32,
    /// `PR_GET_DUMPABLE`.
    pub dumpable: u32,
    /// `PR_GET_CHILD_SUBREAPER`.
    pub child_subreaper: u32,
    /// Which fields are valid: PROCESS_* bits.
    pub valid: u32,
    /// `ckpt --interval`: the period of the periodic checkpoints in ms (0:
    /// none) and their signal. `restart` starts a ticker again with them.
    pub interval_ms: u64,
    pub interval_signal: u32,
    pub _pad: u32,
    /// string: the POSIX timers, an array of [`timers::PosixTimer`] sorted
    /// by id (valid with `PROCESS_TIMERS`; older images: zero, none).
    pub timers: StrRef,
    pub reserved: [u64; 3],
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for ProcessState {}

pub const PROCESS_ITIMERS: u32 = 1;
pub const PROCESS_RLIMITS: u32 = 2;
pub const PROCESS_PENDING: u32 = 4;
pub const PROCESS_PRCTL: u32 = 8;
pub const PROCESS_TIMERS: u32 = 16;

/// What an open file descriptor referred to.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A regular file, reopened by path at its offset.
    File = 0,
    /// A directory, reopened by path.
    Dir = 1,
    /// A character device (/dev/null, /dev/zero, /dev/urandom, a tty…).
    CharDev = 2,
    /// The read end of a pipe whose both ends are in the process: `data`
    /// holds the bytes that were in it; `pipe` pairs it with its write end.
    PipeRead = 3,
    /// The write end of such a pipe.
    PipeWrite = 4,
    /// A named pipe (FIFO), reopened by path.
    Fifo = 5,
    /// Not restorable: a socket to another process, a pipe to another
    /// process, an io_uring… Comes back as /dev/null, with a warning at
    /// checkpoint and restart.
    Lost = 6,
    /// An eventfd: `data` holds an [`events::EventFdState`].
    EventFd = 7,
    /// A timerfd: `data` holds an [`events::TimerFdState`].
    TimerFd = 8,
    /// A signalfd: `data` holds an [`events::SignalFdState`].
    SignalFd = 9,
    /// An epoll instance: `data` holds its interest list, an array of
    /// [`events::EpollTarget`].
    Epoll = 10,
    /// A UNIX socket whose peer is in the process too (a socketpair):
    /// `data` holds an [`events::SocketState`] and the bytes waiting on it.
    Socket = 11,
    /// An inotify instance: `data` holds its watches, an array of
    /// [`events::InotifyWatch`].
    Inotify = 12,
    /// A memfd: `data` holds an [`events::MemfdState`] and its contents.
    Memfd = 13,
}

impl FdKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::File,
            1 => Self::Dir,
            2 => Self::CharDev,
            3 => Self::PipeRead,
            4 => Self::PipeWrite,
            5 => Self::Fifo,
            6 => Self::Lost,
            7 => Self::EventFd,
            8 => Self::TimerFd,
            9 => Self::SignalFd,
            10 => Self::Epoll,
            11 => Self::Socket,
            12 => Self::Inotify,
            13 => Self::Memfd,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::CharDev => "chardev",
            Self::PipeRead => "pipe-r",
            Self::PipeWrite => "pipe-w",
            Self::Fifo => "fifo",
            Self::Lost => "lost",
            Self::EventFd => "eventfd",
            Self::TimerFd => "timerfd",
            Self::SignalFd => "signalfd",
            Self::Epoll => "epoll",
            Self::Socket => "socket",
            Self::Inotify => "inotify",
            Self::Memfd => "memfd",
        }
    }
}

/// `Fd::fd_flags` bit, beside `FD_CLOEXEC`: a descriptor 0, 1 or 2 that is
/// not the one the program got from its launcher (`ckpt`'s caller, or
/// `restart`): a file the program opened or `dup2`'ed there itself. `restart`
/// reopens it like any other descriptor instead of giving the program its
/// own stdin, stdout or stderr.
pub const FD_NOT_INHERITED: u32 = 1 << 16;

/// Which files the launcher gave the program as descriptors 0, 1 and 2
/// (device and inode; 0 and 0: none), to tell them from files the program
/// put there itself ([`FD_NOT_INHERITED`]). It lives at the start of the
/// lowest writable page of the workspace: the library writes it when the
/// program starts, and `restart`, whose workspace comes back zero-filled,
/// writes its own there before the program runs again.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StdioIdentity {
    /// [`STDIO_IDENTITY_MAGIC`] when valid.
    pub magic: u64,
    pub dev: [u64; 3],
    pub ino: [u64; 3],
}

pub const STDIO_IDENTITY_MAGIC: u64 = u64::from_le_bytes(*b"ckptstdi");

/// One open file descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fd {
    /// The descriptor number.
    pub fd: i32,
    /// A [`FdKind`].
    pub kind: u32,
    /// `fcntl(F_GETFL)`: access mode and O_APPEND, O_NONBLOCK…
    pub flags: u32,
    /// `fcntl(F_GETFD)`: FD_CLOEXEC.
    pub fd_flags: u32,
    /// File offset (files, directories).
    pub offset: u64,
    /// What the file was, to notice at restart that it changed:
    /// size, device, inode, modification time (ns), mode.
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: u64,
    pub mode: u32,
    /// 1 + the index of the earliest entry of this table that shares this
    /// descriptor's open file description (a dup: same offset and flags);
    /// 0: none. The loader dups that entry's descriptor.
    pub shared: u32,
    /// Pipes: the pipe's inode, shared by its two ends.
    pub pipe: u64,
    /// What `/proc/self/fd/N` names (a path, `pipe:[…]`, `socket:[…]`).
    pub path: StrRef,
    /// Pipes (read end): the bytes that were in the pipe; event
    /// descriptors and sockets: their state record (`events`).
    pub data: StrRef,
}
// SAFETY: repr(C), integers and arrays of Pod only, no padding (layout.rs
// pins the size and every offset); any bit pattern is a valid value.
unsafe impl Pod for Fd {}

impl Fd {
    pub fn kind(&self) -> Option<FdKind> {
        FdKind::from_u32(self.kind)
    }
}

/// Everything that can be wrong with an image, each with a one-line message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Empty,
    Truncated,
    BadMagic,
    NewerVersion,
    OldVersion,
    WrongArch,
    WrongPageSize,
    WrongHeaderSize,
    HeaderChecksum,
    MetaChecksum,
    BadLayout,
    TooMany,
    BadRegion,
    RegionsOverlap,
    RegionInLoader,
    BadExtent,
    BadThread,
    ThreadAddress,
    BadFd,
    BadString,
    BadCpu,
    BadSignals,
    BadChain,
    BadTimers,
}

impl Error {
    pub fn message(self) -> &'static str {
        match self {
            Error::Empty => "the image file is empty",
            Error::Truncated => "the image is truncated (shorter than its header says)",
            Error::BadMagic => "not a ckpt image (bad magic number)",
            Error::NewerVersion => "the image was written by a newer ckpt (format version too new)",
            Error::OldVersion => "the image format version is not supported",
            Error::WrongArch => "the image is for another architecture",
            Error::WrongPageSize => "the image was taken with another page size",
            Error::WrongHeaderSize => "the image header has an unexpected size",
            Error::HeaderChecksum => "the image header is corrupted (checksum mismatch)",
            Error::MetaChecksum => "the image metadata (its tables) is corrupted (checksum mismatch)",
            Error::BadLayout => "the image layout is inconsistent (section offsets)",
            Error::TooMany => "the image claims more regions, extents, threads, descriptors or strings than possible",
            Error::BadRegion => "the image has an invalid memory region",
            Error::RegionsOverlap => "the image has overlapping memory regions",
            Error::RegionInLoader => "an image region overlaps the loader's reserved address range",
            Error::BadExtent => "the image has an invalid data extent",
            Error::BadThread => "the image has an invalid thread record",
            Error::ThreadAddress => {
                "a thread record points outside the image's writable memory (TLS, cached tid, tid address, robust list or rseq area)"
            }
            Error::BadFd => "the image has an invalid file descriptor record",
            Error::BadString => "the image has an invalid string reference",
            Error::BadCpu => "the image has an invalid CPU description (x86-64 level or XSAVE layout)",
            Error::BadSignals => "the image has SIGKILL or SIGSTOP pending, which no process can have",
            Error::BadChain => "the image has an invalid parent chain (delta image)",
            Error::BadTimers => "the image has an invalid POSIX timer record",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Byte sizes of the metadata tables, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaLayout {
    pub regions: usize,
    pub extents: usize,
    pub threads: usize,
    pub sigactions: usize,
    pub fds: usize,
    pub strings: usize,
}

impl MetaLayout {
    /// The sizes for the counts in `h` (which must be within the limits).
    pub fn of(h: &Header) -> Self {
        MetaLayout {
            regions: h.n_regions as usize * size_of::<Region>(),
            extents: h.n_extents as usize * size_of::<Extent>(),
            threads: h.n_threads as usize * size_of::<Thread>(),
            sigactions: NSIG * size_of::<SigAction>(),
            fds: h.n_fds as usize * size_of::<Fd>(),
            strings: h.strings_len as usize,
        }
    }
    pub fn total(&self) -> usize {
        self.regions + self.extents + self.threads + self.sigactions + self.fds + self.strings
    }
}

/// Size of the kernel's `struct ucontext` on x86-64 (flags, link, stack,
/// sigcontext, mask); the XSAVE area it points to follows elsewhere in the frame.
pub const UCONTEXT_SIZE: u64 = 304;

/// Rounds up to the page size.
pub const fn page_up(v: u64) -> u64 {
    (v + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

impl Header {
    /// A header with the constant fields filled in and everything else zero.
    pub fn new() -> Self {
        Header {
            magic: MAGIC,
            version: FORMAT_VERSION,
            arch: ARCH_X86_64,
            page_size: PAGE_SIZE as u32,
            header_size: HEADER_SIZE as u32,
            created_ns: 0,
            capture_ns: 0,
            pid: 0,
            n_threads: 0,
            n_regions: 0,
            n_extents: 0,
            meta_offset: HEADER_SPACE,
            meta_len: 0,
            meta_checksum: 0,
            strings_len: 0,
            data_offset: 0,
            data_len: 0,
            file_len: 0,
            xfeatures: 0,
            xsave_size: 0,
            leader: 0,
            n_fds: 0,
            _pad: 0,
            mm: MmLayout::default(),
            process: ProcessState::default(),
            auxv: [0; AUXV_WORDS],
            auxv_words: 0,
            umask: 0,
            comm: [0; 16],
            cmdline: StrRef::default(),
            cwd: StrRef::default(),
            exe: StrRef::default(),
            required_xfeatures: 0,
            cpu_level: 0,
            portable_level: 0,
            cpu_brand: [0; 48],
            xlayout: xstate::Layout::default(),
            chain_depth: 0,
            _pad2: 0,
            parents: [Parent::default(); MAX_CHAIN],
            header_checksum: 0,
        }
    }

    /// Fills in `meta_len`, `data_offset` from the counts already set.
    pub fn layout(&mut self) -> MetaLayout {
        let l = MetaLayout::of(self);
        self.meta_offset = HEADER_SPACE;
        self.meta_len = l.total() as u64;
        self.data_offset = page_up(self.meta_offset + self.meta_len);
        l
    }

    /// Whether this header is the image a delta names as its parent `link`,
    /// with `rest` (the delta's parents after that one) as its own chain.
    pub fn is_link(&self, link: &Parent, rest: &[Parent]) -> bool {
        self.header_checksum == link.id
            && self.file_len == link.file_len
            && self.chain_depth as usize == rest.len()
            && self.parents[..rest.len()].iter().zip(rest).all(|(a, b)| a.id == b.id && a.file_len == b.file_len)
    }

    /// The checksum of this header, computed with `header_checksum` as zero.
    pub fn compute_checksum(&self) -> u64 {
        let mut h = *self;
        h.header_checksum = 0;
        checksum(bytes_of(&h))
    }

    /// Checks the header alone: `bytes` is the start of the file, `file_len`
    /// its real length. Everything the loader needs before reading further.
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<Header, Error> {
        if file_len == 0 || bytes.is_empty() {
            return Err(Error::Empty);
        }
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        // Version before anything else: a newer format may have a bigger header.
        if bytes.len() < 12 {
            return Err(Error::Truncated);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version > FORMAT_VERSION {
            return Err(Error::NewerVersion);
        }
        if version < FORMAT_VERSION {
            return Err(Error::OldVersion);
        }
        let h: Header = read_at(bytes, 0).ok_or(Error::Truncated)?;
        if h.compute_checksum() != h.header_checksum {
            return Err(Error::HeaderChecksum);
        }
        if h.arch != ARCH_X86_64 {
            return Err(Error::WrongArch);
        }
        if h.page_size as u64 != PAGE_SIZE {
            return Err(Error::WrongPageSize);
        }
        if h.header_size as usize != HEADER_SIZE {
            return Err(Error::WrongHeaderSize);
        }
        if h.n_regions > MAX_REGIONS
            || h.n_extents > MAX_EXTENTS
            || h.n_threads > MAX_THREADS
            || h.n_fds > MAX_FDS
            || h.strings_len > MAX_STRINGS
            || h.auxv_words as usize > AUXV_WORDS
        {
            return Err(Error::TooMany);
        }
        let l = MetaLayout::of(&h);
        if h.meta_offset != HEADER_SPACE
            || h.meta_len != l.total() as u64
            || h.data_offset != page_up(h.meta_offset + h.meta_len)
            || h.data_offset.checked_add(h.data_len) != Some(h.file_len)
        {
            return Err(Error::BadLayout);
        }
        if h.n_threads == 0 || h.leader >= h.n_threads {
            return Err(Error::BadThread);
        }
        if h.cpu_level > 4 || h.portable_level > 4 || h.xlayout.size_for(h.required_xfeatures).is_none() {
            return Err(Error::BadCpu);
        }
        if h.process.pending & NEVER_PENDING != 0 {
            return Err(Error::BadSignals);
        }
        let depth = h.chain_depth as usize;
        if depth > MAX_CHAIN
            || h.parents[..depth.min(MAX_CHAIN)].iter().any(|p| p.file_len < HEADER_SPACE)
            || h.parents[depth.min(MAX_CHAIN)..].iter().any(|p| *p != Parent::default())
        {
            return Err(Error::BadChain);
        }
        if file_len < h.file_len {
            return Err(Error::Truncated);
        }
        Ok(h)
    }
}

impl Default for Header {
    fn default() -> Self {
        Self::new()
    }
}

/// A validated view of the metadata of an image: the tables, checked against
/// each other and against the header.
#[derive(Clone, Copy)]
pub struct Meta<'a> {
    pub header: Header,
    regions: &'a [u8],
    extents: &'a [u8],
    threads: &'a [u8],
    sigactions: &'a [u8],
    fds: &'a [u8],
    strings: &'a [u8],
}

impl<'a> Meta<'a> {
    /// Validates the metadata bytes (exactly `header.meta_len` of them, read
    /// from `header.meta_offset`). After this, every accessor succeeds and
    /// every region, extent and thread is known to be sane:
    /// regions page-aligned, sorted, disjoint, in user space and outside the
    /// loader's range; extents inside their region and inside the data area;
    /// threads' frames inside a stored writable region.
    pub fn parse(header: &Header, meta: &'a [u8]) -> Result<Meta<'a>, Error> {
        let l = MetaLayout::of(header);
        if meta.len() as u64 != header.meta_len || meta.len() != l.total() {
            return Err(Error::Truncated);
        }
        if checksum(meta) != header.meta_checksum {
            return Err(Error::MetaChecksum);
        }
        let (regions, rest) = meta.split_at(l.regions);
        let (extents, rest) = rest.split_at(l.extents);
        let (threads, rest) = rest.split_at(l.threads);
        let (sigactions, rest) = rest.split_at(l.sigactions);
        let (fds, strings) = rest.split_at(l.fds);
        let m = Meta { header: *header, regions, extents, threads, sigactions, fds, strings };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), Error> {
        let h = &self.header;
        let mut prev_end = 0u64;
        let mut next_extent = 0u64;
        let mut data_pos = h.data_offset;
        for i in 0..h.n_regions as usize {
            let r = self.region(i);
            if !r.start.is_multiple_of(PAGE_SIZE)
                || !r.end.is_multiple_of(PAGE_SIZE)
                || r.start >= r.end
                || r.end > USER_END
                || r.prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0
                || r.flags & !(REGION_SHARED | REGION_GROWSDOWN) != 0
                || r.kind().is_none()
                || (r.n_extents != 0 && r.kind().is_some_and(|k| k.is_vdso() || k == RegionKind::Workspace))
            {
                return Err(Error::BadRegion);
            }
            if r.start < prev_end {
                return Err(Error::RegionsOverlap);
            }
            if r.start < LOADER_END && r.end > LOADER_BASE {
                return Err(Error::RegionInLoader);
            }
            prev_end = r.end;
            self.string(r.path).ok_or(Error::BadString)?;
            if r.first_extent as u64 != next_extent {
                return Err(Error::BadExtent);
            }
            next_extent += r.n_extents as u64;
            if next_extent > h.n_extents as u64 {
                return Err(Error::BadExtent);
            }
            let mut prev = r.start;
            for e in 0..r.n_extents as usize {
                let x = self.extent(r.first_extent as usize + e);
                if !x.addr.is_multiple_of(PAGE_SIZE)
                    || !x.len.is_multiple_of(PAGE_SIZE)
                    || x.len == 0
                    || x.addr < prev
                    || x.addr.checked_add(x.len).is_none_or(|end| end > r.end)
                    || x.len > MAX_EXTENT
                    || !x.stored_len_ok()
                    || !self.in_source(&x, data_pos)
                {
                    return Err(Error::BadExtent);
                }
                prev = x.addr + x.len;
                if x.source == 0 {
                    data_pos = x.file_pos + x.stored_len;
                }
            }
        }
        if next_extent != h.n_extents as u64 || data_pos != h.file_len {
            return Err(Error::BadExtent);
        }
        for i in 0..h.n_threads as usize {
            let t = self.thread(i);
            if t.pending & NEVER_PENDING != 0 {
                return Err(Error::BadSignals);
            }
            // The signal frame must lie in stored, writable memory: the
            // loader resumes the thread from it.
            let frame_end = t.ucontext.checked_add(UCONTEXT_SIZE).ok_or(Error::BadThread)?;
            let stored = self.region_at(t.ucontext).is_some_and(|r| {
                frame_end <= r.end && r.prot & PROT_WRITE != 0 && self.covered(&r, t.ucontext, frame_end)
            });
            if t.tid == 0 || !stored {
                return Err(Error::BadThread);
            }
            self.check_thread_addresses(&t)?;
        }
        let mut prev_fd = -1;
        for f in self.fds() {
            // Sorted by number, no duplicates; a real access mode; bytes
            // only for the read end of a pipe, a state record of the
            // right size for the kinds that have one.
            let kind = f.kind().ok_or(Error::BadFd)?;
            if f.fd <= prev_fd || f.flags & 3 == 3 {
                return Err(Error::BadFd);
            }
            prev_fd = f.fd;
            self.string(f.path).ok_or(Error::BadString)?;
            let data = self.string(f.data).ok_or(Error::BadString)?;
            if !events::data_fits(kind, data) {
                return Err(Error::BadFd);
            }
        }
        for s in [h.cmdline, h.cwd, h.exe] {
            self.string(s).ok_or(Error::BadString)?;
        }
        if h.process.valid & PROCESS_TIMERS != 0 {
            timers::parse(self.string(h.process.timers).ok_or(Error::BadString)?).ok_or(Error::BadTimers)?;
        }
        for p in self.parents() {
            // A plain file name, looked up beside the image: never a path.
            let name = self.string(p.name).ok_or(Error::BadString)?;
            if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&c| c == b'/' || c == 0) {
                return Err(Error::BadChain);
            }
        }
        Ok(())
    }

    /// Whether extent `x`'s bytes lie where its source can hold them: the
    /// next bytes of this image's data area (`data_pos`), or inside the
    /// data of its parent (past the parent's header page, within its length;
    /// the parent's own checks and the extent's checksum do the rest).
    fn in_source(&self, x: &Extent, data_pos: u64) -> bool {
        match x.source as usize {
            0 => x.file_pos == x.place_at(data_pos),
            k if k <= self.header.chain_depth as usize => {
                let p = &self.header.parents[k - 1];
                x.file_pos >= HEADER_SPACE && x.file_pos.checked_add(x.stored_len).is_some_and(|end| end <= p.file_len)
            }
            _ => false,
        }
    }

    /// The parents of a delta image, nearest first (none for a full image).
    pub fn parents(&self) -> &[Parent] {
        &self.header.parents[..self.header.chain_depth as usize]
    }

    /// Every address the loader hands to the kernel or writes to for a
    /// thread must be where the restarted program has writable memory of
    /// its own: never the loader's, never unmapped (a fault there would be
    /// a SIGSEGV after the point of no return).
    fn check_thread_addresses(&self, t: &Thread) -> Result<(), Error> {
        // arch_prctl(ARCH_SET_FS/GS) and CLONE_SETTLS refuse bases at or
        // above TASK_SIZE_MAX, which is USER_END.
        let ok = t.fs_base < USER_END
            && t.gs_base < USER_END
            // glibc's cached tid: the loader stores the new tid there.
            && (t.tid_offset == 0
                || t.fs_base.checked_add(t.tid_offset as u64).is_some_and(|a| self.writable(a, 4, 4)))
            // set_tid_address: the kernel clears it when the thread exits.
            && (t.clear_child_tid == 0 || self.writable(t.clear_child_tid, 4, 4))
            // set_robust_list: struct robust_list_head (three words), read
            // by the loader to rewrite owners and by the kernel at exit.
            && (t.robust_list == 0 || self.writable(t.robust_list, 24, 8))
            // rseq: the kernel writes the cpu id into the area (32-byte aligned).
            && (t.rseq_len == 0 || (t.rseq_len >= 32 && self.writable(t.rseq_area, t.rseq_len as u64, 32)));
        if ok {
            Ok(())
        } else {
            Err(Error::ThreadAddress)
        }
    }

    /// Whether `[addr, addr + len)` is `align`-aligned and lies in one
    /// writable region that the restart maps as ordinary memory (not the
    /// kernel's vDSO pages, which come back read-only whatever the image says).
    pub fn writable(&self, addr: u64, len: u64, align: u64) -> bool {
        addr.is_multiple_of(align)
            && addr.checked_add(len).is_some_and(|end| {
                self.region_at(addr)
                    .is_some_and(|r| end <= r.end && r.prot & PROT_WRITE != 0 && r.kind().is_some_and(|k| !k.is_vdso()))
            })
    }

    pub fn n_regions(&self) -> usize {
        self.header.n_regions as usize
    }
    /// Whether the stored extents of `r` cover `[start, end)` (a range may
    /// span adjacent extents: long runs are split at MAX_EXTENT).
    fn covered(&self, r: &Region, start: u64, end: u64) -> bool {
        let mut at = start;
        for x in self.extents_of(r) {
            if x.addr <= at && at < x.addr + x.len {
                at = x.addr + x.len;
                if at >= end {
                    return true;
                }
            }
        }
        false
    }

    /// The region that contains `addr` (regions are sorted and disjoint).
    pub fn region_at(&self, addr: u64) -> Option<Region> {
        let (mut lo, mut hi) = (0, self.n_regions());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = self.region(mid);
            if addr < r.start {
                hi = mid;
            } else if addr >= r.end {
                lo = mid + 1;
            } else {
                return Some(r);
            }
        }
        None
    }
    /// The index of the extent that stores the byte at `addr`.
    pub fn extent_at(&self, addr: u64) -> Option<usize> {
        let r = self.region_at(addr)?;
        let first = r.first_extent as usize;
        (first..first + r.n_extents as usize).find(|&i| {
            let x = self.extent(i);
            x.addr <= addr && addr < x.addr + x.len
        })
    }
    /// Where the stored byte at `addr` is: its extent's source (0: this
    /// file, k: the k-th parent), the position in that file, and how many
    /// stored bytes follow it there (to the end of its extent); None if it
    /// is not stored, or stored compressed (then see
    /// [`extent_at`](Self::extent_at)).
    pub fn locate(&self, addr: u64) -> Option<(u32, u64, u64)> {
        let x = self.extent(self.extent_at(addr)?);
        (!x.compressed()).then(|| (x.source, x.file_pos + (addr - x.addr), x.addr + x.len - addr))
    }
    /// [`locate`](Self::locate) for a byte stored raw in this file: where
    /// it is, and how many stored bytes follow it there.
    pub fn file_pos_of(&self, addr: u64) -> Option<(u64, u64)> {
        self.locate(addr).filter(|l| l.0 == 0).map(|(_, pos, avail)| (pos, avail))
    }
    pub fn n_threads(&self) -> usize {
        self.header.n_threads as usize
    }
    pub fn region(&self, i: usize) -> Region {
        read_at(self.regions, i).expect("region index checked by caller")
    }
    pub fn regions(&self) -> impl Iterator<Item = Region> + '_ {
        (0..self.n_regions()).map(move |i| self.region(i))
    }
    pub fn extent(&self, i: usize) -> Extent {
        read_at(self.extents, i).expect("extent index checked by caller")
    }
    /// Every extent, in table (address) order.
    pub fn extents(&self) -> impl Iterator<Item = Extent> + '_ {
        (0..self.header.n_extents as usize).map(move |i| self.extent(i))
    }
    /// The extents of one region, in address order.
    pub fn extents_of(&self, r: &Region) -> impl Iterator<Item = Extent> + '_ {
        let first = r.first_extent as usize;
        (first..first + r.n_extents as usize).map(move |i| self.extent(i))
    }
    pub fn thread(&self, i: usize) -> Thread {
        read_at(self.threads, i).expect("thread index checked by caller")
    }
    pub fn threads(&self) -> impl Iterator<Item = Thread> + '_ {
        (0..self.n_threads()).map(move |i| self.thread(i))
    }
    /// Disposition of signal `sig` (1..=64).
    pub fn sigaction(&self, sig: usize) -> SigAction {
        read_at(self.sigactions, sig).unwrap_or_default()
    }
    pub fn n_fds(&self) -> usize {
        self.header.n_fds as usize
    }
    pub fn fd(&self, i: usize) -> Fd {
        read_at(self.fds, i).expect("fd index checked by caller")
    }
    pub fn fds(&self) -> impl Iterator<Item = Fd> + '_ {
        (0..self.n_fds()).map(move |i| self.fd(i))
    }
    /// The POSIX timers (none if the image did not record them).
    pub fn timers(&self) -> timers::Timers<'a> {
        let p = &self.header.process;
        let bytes = if p.valid & PROCESS_TIMERS != 0 { self.string(p.timers) } else { None };
        bytes.and_then(timers::parse).unwrap_or_else(|| timers::parse(&[]).expect("empty"))
    }
    /// A string of the string table (None if the reference is out of range).
    pub fn string(&self, s: StrRef) -> Option<&'a [u8]> {
        let start = s.offset as usize;
        self.strings.get(start..start.checked_add(s.len as usize)?)
    }
    /// Bytes of data stored for region `r` (in this image and its parents).
    pub fn stored_bytes(&self, r: &Region) -> u64 {
        self.extents_of(r).map(|e| e.len).sum()
    }
    /// What the data section holds, over all extents.
    pub fn data_totals(&self) -> DataTotals {
        let mut t = DataTotals::default();
        for i in 0..self.header.n_extents as usize {
            let x = self.extent(i);
            t.compressed += x.compressed() as u64;
            t.memory += x.len;
            t.stored += x.stored_len;
        }
        t
    }
}

/// [`Meta::data_totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataTotals {
    /// Extents stored compressed.
    pub compressed: u64,
    /// Bytes of memory the extents hold.
    pub memory: u64,
    /// Bytes they take in the file.
    pub stored: u64,
}

impl DataTotals {
    /// Memory bytes per stored byte (1 when nothing is stored).
    pub fn ratio(&self) -> f64 {
        if self.stored == 0 {
            1.0
        } else {
            self.memory as f64 / self.stored as f64
        }
    }
}

#[cfg(test)]
extern crate std;
#[cfg(test)]
mod tests;
