//! Compile-time checks of the on-disk layout: the size of every struct an
//! image holds and the offset of every field, as docs/FORMAT.md gives them
//! (readckpt's `format_doc_sizes` test checks the document against the same
//! structs, field by field). With the sizes, the contiguous offsets say that
//! no struct has padding, which `Pod` requires: a change of layout fails
//! the build here before it can change the format unnoticed.

use core::mem::{offset_of, size_of};

use crate::events::{
    EpollTarget, EventFdState, FileLock, InotifyWatch, MemfdState, SignalFdState, SocketState, TimerFdState,
};
use crate::job::{JobHeader, Link, Member, SharedMap};
use crate::timers::PosixTimer;
use crate::xstate::{Component, Layout, NCOMP};
use crate::{Extent, Fd, FileId, Header, ITimer, MmLayout, Parent, ProcessState, Region, SigAction, StrRef, Thread};

/// `layout!(Type, size, field offset, ...)`: the struct's size and each
/// field's offset.
macro_rules! layout {
    ($t:ty, $size:expr, $($field:ident $off:expr),* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $size);
        $(const _: () = assert!(offset_of!($t, $field) == $off);)*
    };
}

layout!(
    Header,
    1880,
    magic 0,
    version 8,
    arch 12,
    page_size 16,
    header_size 20,
    created_ns 24,
    capture_ns 32,
    pid 40,
    n_threads 44,
    n_regions 48,
    n_extents 52,
    meta_offset 56,
    meta_len 64,
    meta_checksum 72,
    strings_len 80,
    data_offset 88,
    data_len 96,
    file_len 104,
    xfeatures 112,
    xsave_size 120,
    leader 124,
    n_fds 128,
    _pad 132,
    mm 136,
    process 224,
    auxv 600,
    auxv_words 1112,
    umask 1116,
    comm 1120,
    cmdline 1136,
    cwd 1144,
    exe 1152,
    required_xfeatures 1160,
    cpu_level 1168,
    portable_level 1172,
    cpu_brand 1176,
    xlayout 1224,
    chain_depth 1480,
    _pad2 1484,
    parents 1488,
    header_checksum 1872,
);
layout!(
    ProcessState,
    376,
    itimers 0,
    rlimits 48,
    pending 304,
    pdeathsig 312,
    dumpable 316,
    child_subreaper 320,
    valid 324,
    interval_ms 328,
    interval_signal 336,
    _pad 340,
    timers 344,
    reserved 352,
);
layout!(
    PosixTimer,
    48,
    id 0,
    clock 4,
    notify 8,
    signal 12,
    tid 16,
    _pad 20,
    value 24,
    value_ns 32,
    interval_ns 40,
);
layout!(
    Region,
    88,
    start 0,
    end 8,
    prot 16,
    flags 20,
    kind 24,
    n_extents 28,
    first_extent 32,
    _pad 36,
    file_offset 40,
    file 48,
    path 80,
);
layout!(
    Extent,
    48,
    addr 0,
    len 8,
    file_pos 16,
    checksum 24,
    stored_len 32,
    encoding 40,
    source 44,
);
layout!(Parent, 24, id 0, file_len 8, name 16);
layout!(
    Thread,
    312,
    tid 0,
    tid_offset 4,
    ucontext 8,
    fs_base 16,
    gs_base 24,
    rseq_area 32,
    rseq_len 40,
    rseq_sig 44,
    clear_child_tid 48,
    robust_list 56,
    robust_len 64,
    gregs 72,
    sigmask 256,
    comm 264,
    pending 280,
    fpstate 288,
    xstate_bv 296,
    xinuse 304,
);
layout!(
    SigAction,
    32,
    handler 0,
    flags 8,
    restorer 16,
    mask 24,
);
layout!(
    Fd,
    88,
    fd 0,
    kind 4,
    flags 8,
    fd_flags 12,
    offset 16,
    size 24,
    dev 32,
    ino 40,
    mtime_ns 48,
    mode 56,
    shared 60,
    pipe 64,
    path 72,
    data 80,
);
layout!(
    MmLayout,
    88,
    start_code 0,
    end_code 8,
    start_data 16,
    end_data 24,
    start_brk 32,
    brk 40,
    start_stack 48,
    arg_start 56,
    arg_end 64,
    env_start 72,
    env_end 80,
);
layout!(
    FileId,
    32,
    dev 0,
    ino 8,
    size 16,
    mtime_ns 24,
);
layout!(
    ITimer,
    16,
    interval_ns 0,
    value_ns 8,
);
layout!(
    StrRef,
    8,
    offset 0,
    len 4,
);
layout!(Component, 8, offset 0, size 4);
layout!(Layout, 8 * NCOMP, comps 0);
// The header's XSAVE layout is one Layout: 32 components.
const _: () = assert!(NCOMP == 32);

// The fd state records (docs/FORMAT.md, fd kinds 7-13).
layout!(EventFdState, 16, count 0, semaphore 8, _pad 12);
layout!(TimerFdState, 40, clockid 0, settime_flags 4, ticks 8, value_ns 16, interval_ns 24, realtime_ns 32);
layout!(SignalFdState, 8, mask 0);
layout!(EpollTarget, 24, tfd 0, fd 4, events 8, _pad 12, data 16);
layout!(SocketState, 8, sock_type 0, n_msgs 4);
layout!(InotifyWatch, 16, wd 0, mask 4, path 8);
layout!(FileLock, 24, kind 0, write 4, start 8, len 16);
layout!(MemfdState, 16, seals 0, _pad 4, size 8);

layout!(
    JobHeader,
    64,
    magic 0,
    version 8,
    n_members 12,
    n_links 16,
    n_shared 20,
    created_ns 24,
    strings_len 32,
    file_len 40,
    table_checksum 48,
    header_checksum 56,
);
layout!(Link, 32, member 0, fd 4, description 8, channel 12, kind 16, flags 20, data 24);
layout!(Member, 48, pid 0, ppid 4, pgid 8, sid 12, state 16, wait_status 20, offset 24, len 32, command 40);
layout!(SharedMap, 32, member 0, object 4, start 8, end 16, offset 24);
