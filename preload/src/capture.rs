//! The capture: from the checkpoint signal's frame to an image file.
//!
//! Runs on the workspace stack with every signal blocked. The program's
//! memory does not change while it runs (this thread is here, and it is the
//! only one), except the rseq area, which the kernel updates on preemption:
//! the registration is dropped for the duration and re-made on failure.
//!
//! The order of work:
//! 1. describe the thread (frame address, %fs, rseq, tid address, robust
//!    list) and the process (signal dispositions, memory layout, auxv,
//!    command line, working directory);
//! 2. walk `/proc/self/maps` into the region table, and decide per region
//!    which pages to store (extents);
//! 3. write the data, hashing each extent just before writing it (and with
//!    `--compress`, compressing it), then the metadata, then the header, to
//!    a temporary file beside the image;
//! 4. fsync, rename over the image, fsync the directory: the previous image
//!    stays intact until the new one is complete on disk.
//!
//! In a copy-on-write checkpoint ([`crate::cow`]) steps 3 and 4, and the
//! pagemap scan of readable private anonymous memory, are done by the
//! writer process, from its copy of the program; the threads are released
//! as soon as it exists.

use core::ffi::{c_void, CStr};
use core::fmt::Write as _;

use ckpt_image::maps::{self, Mapping};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use ckpt_image::encode::{self, Encoder};
use ckpt_image::{
    bytes_of, checksum, codec, Extent, FileId, Header, Region, RegionKind, StrRef, EXIT_CHECKPOINTED, EXTENT_LZ4,
    EXTENT_RAW, LOADER_BASE, LOADER_END, MAX_EXTENT, PAGE_SIZE, REGION_GROWSDOWN, REGION_SHARED, USER_END,
};
use ckpt_sys::progress::Progress;
use ckpt_sys::{self as sys, thread, Errno};

use crate::children;
use crate::config::{self, Config};
use crate::delta;
use crate::dirty;
use crate::files;
use crate::job;
use crate::msg::{self, Size};
use crate::output::Output;
use crate::procfs;
use crate::threads;
use crate::workspace::{self, Bounce, JobTables, Lz4Table, Packed, Tables, MAX_EXTENTS, MAX_REGIONS, PAGEMAP_WORDS};

core::arch::global_asm!(
    // ckpt_call_on_stack(arg: rdi, f: rsi, stack_top: rdx): calls f(arg) on
    // the given stack and comes back to the caller's stack.
    ".globl ckpt_call_on_stack",
    ".hidden ckpt_call_on_stack",
    ".type ckpt_call_on_stack,@function",
    "ckpt_call_on_stack:",
    "    push rbp",
    "    mov rbp, rsp",
    "    mov rsp, rdx",
    "    call rsi",
    "    mov rsp, rbp",
    "    pop rbp",
    "    ret",
);

extern "C" {
    fn ckpt_call_on_stack(arg: *mut c_void, f: extern "C" fn(*mut c_void), stack_top: u64);
}

/// Calls `f(arg)` on another stack.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned top of a stack nothing else uses.
pub unsafe fn call_on_stack(arg: *mut c_void, f: extern "C" fn(*mut c_void), stack_top: u64) {
    ckpt_call_on_stack(arg, f, stack_top)
}

/// Set by the handler when the checkpoint signal came with
/// [`ckpt_image::signals::STOP_AFTER`]: the next checkpoint stops the
/// program even under `--continue`. Read and cleared when a checkpoint
/// starts, so the image never holds it set. (While a checkpoint runs the
/// handler cannot: every thread has the signal blocked.)
pub static STOP_AFTER: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Why a checkpoint failed: what was being done, and the kernel's answer.
pub struct Failure {
    what: &'static str,
    /// More about `what` ("the image path" " is a symbolic link...").
    detail: &'static str,
    errno: Option<Errno>,
    /// A thread that did not stop, if that is the reason.
    stuck: u32,
    /// How many children the program has, if that is the reason (--strict).
    children: usize,
    /// 1 + a descriptor that would be lost (`--strict`), if that is the reason.
    lost_fd: u32,
    /// A process of the job that is the reason (pid; 0: none).
    pub member: u32,
}

impl Failure {
    fn stuck(tid: u32) -> Failure {
        Failure { stuck: tid, ..refuse("a thread did not stop for the checkpoint") }
    }

    /// A refusal naming a process of the job (`what` follows its pid and
    /// command).
    pub fn member(pid: u32, what: &'static str) -> Failure {
        Failure { member: pid, ..refuse(what) }
    }

    /// Whether the root of the job abandoned the checkpoint (the member
    /// says nothing: the root says why).
    pub fn is_abandoned(&self) -> bool {
        self.what == crate::job::ABORTED
    }

    /// A refusal about something: `what` followed by `detail`.
    pub fn named(what: &'static str, detail: &'static str) -> Failure {
        Failure { what, detail, errno: None, stuck: 0, children: 0, lost_fd: 0, member: 0 }
    }
}

pub fn failed(what: &'static str) -> impl FnOnce(Errno) -> Failure {
    move |e| Failure { errno: Some(e), ..refuse(what) }
}

// The refusal for too many descriptors names the number.
const _: () = assert!(ckpt_image::MAX_FDS == 65_536);

pub fn refuse(what: &'static str) -> Failure {
    Failure::named(what, "")
}

/// What a capture did with the image.
enum Written {
    /// Written here, this many bytes.
    Here(u64),
    /// Handed to a copy-on-write writer ([`crate::cow`]), which says how it
    /// went.
    Forked,
}

/// Entry point on the workspace stack: `arg` is the handler's ucontext.
/// The caller has claimed the coordinator's role (`threads::begin`).
pub extern "C" fn run(arg: *mut c_void) {
    let t0 = sys::clock_ns(sys::CLOCK_MONOTONIC);
    crate::rawsig::check();
    // This process may have been restarted on another CPU since it last
    // hashed anything: the checksum's vector width is asked again.
    ckpt_image::checksum::recheck();
    let cfg = config::get();
    let stop = STOP_AFTER.swap(false, core::sync::atomic::Ordering::SeqCst);
    // SAFETY: the caller won threads::begin: this thread is the checkpoint's
    // coordinator, and this its one session.
    let (shared, mut session) = unsafe { (workspace::shared(), workspace::Session::claim()) };
    let (tables, job_tables) = session.split();
    let sync = &shared.sync;
    let generation = sync.active.load(core::sync::atomic::Ordering::SeqCst);
    // A request from the root of this process's job (job.rs), or 0.
    let join = crate::job::take_request();
    let rseq = threads::unregister_rseq();
    tables.threads[0] = threads::describe(arg as *const libc::ucontext_t, rseq);
    let mut n_threads = 1;
    let mut processes = 1;
    let result = match threads::stop_all(shared, generation, &mut tables.tids, &mut tables.dents, &mut tables.threads) {
        Ok(n) => {
            n_threads = n;
            // Copy-on-write when the program goes on after the image
            // (not when it stops: it would only wait for the writer); not in
            // a job of several processes (job.rs writes in place), nor for
            // deltas (the write tracking restarts in the program itself).
            let cow = cfg.cow
                && !cfg.tree
                && !cfg.incremental
                && join == 0
                && !stop
                && crate::process::fatal_pending(crate::process::blocked_everywhere(&tables.threads[..n])).is_none()
                && crate::cow::possible();
            capture(tables, job_tables, n, cfg, t0, join, cow).map(|(written, p)| {
                processes = p;
                written
            })
        }
        Err(threads::StopError::TooMany) => Err(refuse("too many threads")),
        Err(threads::StopError::Stuck(tid)) => Err(Failure::stuck(tid)),
        Err(threads::StopError::Sys(e)) => Err(failed("stopping the threads")(e)),
    };
    let blocked = crate::process::blocked_everywhere(&tables.threads[..n_threads]);
    match result {
        Ok(Written::Forked) => {
            // The writer holds the snapshot: everyone goes on now.
            threads::release(sync, generation);
            threads::reregister_rseq(rseq);
            crate::cow::released(sys::clock_ns(sys::CLOCK_MONOTONIC) - t0);
        }
        // A signal that ends the program came with the checkpoint: it ends
        // it now, --continue or not (process.rs); so does ckpt-slurm's
        // STOP_AFTER request.
        Ok(Written::Here(written)) if cfg.cont && !stop && crate::process::fatal_pending(blocked).is_none() => {
            // --continue: the image is on disk; let everyone go on.
            let done = sys::clock_ns(sys::CLOCK_MONOTONIC);
            threads::release(sync, generation);
            threads::reregister_rseq(rseq);
            let paused = sys::clock_ns(sys::CLOCK_MONOTONIC) - t0;
            if !cfg.quiet && join == 0 {
                written_line(written, done - t0, Some(paused), n_threads, processes, None).emit();
            }
        }
        Ok(Written::Here(written)) => {
            let fatal = crate::process::fatal_pending(blocked);
            if !cfg.quiet && join == 0 {
                let ms = sys::clock_ns(sys::CLOCK_MONOTONIC) - t0;
                let mut l = written_line(written, ms, None, n_threads, processes, None);
                if fatal.is_none() {
                    let _ = write!(l, "; stopping (exit status {EXIT_CHECKPOINTED})");
                }
                l.emit();
            }
            crate::process::end_by_fatal_pending(fatal, blocked);
            sys::exit_group(EXIT_CHECKPOINTED);
        }
        Err(f) => {
            threads::release(sync, generation);
            threads::reregister_rseq(rseq);
            if join != 0 && f.is_abandoned() {
                return; // the root says why
            }
            failure_line(&f, join != 0, &mut tables.dents);
        }
    }
}

/// "ckpt: checkpoint written to PATH (SIZE in T ms[; the program was
/// paused P ms])", with -v the number of threads (and the writer's pid).
fn written_line(
    written: u64,
    took_ns: u64,
    paused_ns: Option<u64>,
    n_threads: usize,
    processes: usize,
    writer: Option<i32>,
) -> msg::Line {
    let cfg = config::get();
    let mut l = msg::Line::new();
    l.push(b"ckpt: checkpoint written to ").push(cfg.output());
    let _ = write!(l, " ({} in {:.1} ms", Size(written), took_ns as f64 / 1e6);
    if let Some(p) = paused_ns {
        let _ = write!(l, "; the program was paused {:.1} ms", p as f64 / 1e6);
    }
    if processes > 1 {
        let _ = write!(l, ", {processes} processes");
    }
    l.push(b")");
    if cfg.verbose {
        let _ = write!(l, "; {n_threads} thread{}", if n_threads == 1 { "" } else { "s" });
        if let Some(pid) = writer {
            let _ = write!(l, "; written by copy-on-write writer {pid}");
        }
    }
    l
}

/// Says on stderr why a checkpoint failed (`member`: in a process of a job
/// other than its root; `scratch`: room to name a child or a descriptor).
fn failure_line(f: &Failure, member: bool, scratch: &mut [u8]) {
    let mut l = msg::Line::new();
    l.push(b"ckpt: checkpoint failed: ");
    if member {
        let _ = write!(l, "in process {} of the job: ", sys::getpid());
    }
    if f.member != 0 {
        crate::job::name_member(&mut l, f.member, scratch);
    }
    if let Some(fd) = f.lost_fd.checked_sub(1) {
        files::name_lost(&mut l, fd as i32, scratch);
    }
    l.push(f.what.as_bytes()).push(f.detail.as_bytes());
    if f.stuck != 0 {
        let _ = write!(l, " (thread {} blocks signal {})", f.stuck, threads::THREAD_SIGNAL);
    }
    if let Some(child) = (f.children != 0).then(|| children::first(scratch)).flatten() {
        l.push(b": ");
        children::describe(&mut l, child, scratch);
        if f.children > 1 {
            let _ = write!(l, " and {} more", f.children - 1);
        }
    }
    if let Some(e) = f.errno {
        let _ = write!(l, ": {} ({})", sys::errno_text(e), sys::errno_name(e));
    }
    l.push(b"; the program continues, any previous image is unchanged");
    l.emit();
}

/// The XSAVE features and area size of the frame at `fpstate` (the
/// kernel's software bytes), for display.
fn frame_size(fpstate: u64) -> (u64, u32) {
    if fpstate == 0 {
        return (0, 0);
    }
    // SAFETY: the kernel's XSAVE area, at least MIN_XSAVE bytes.
    let head = unsafe { core::slice::from_raw_parts(fpstate as *const u8, ckpt_image::xstate::MIN_XSAVE) };
    ckpt_image::xstate::Frame::parse_head(head).map_or((0, 0), |f| (f.xfeatures, f.xstate_size as u32))
}

/// Captures this process, alone, as the root of a job (`cfg.tree`), or as
/// a member of one (`join`: the root's request); returns the bytes written
/// and the number of processes in the image.
fn capture(
    t: &mut Tables,
    job_tables: &mut JobTables,
    n_threads: usize,
    cfg: &Config,
    t0: u64,
    join: u64,
    cow: bool,
) -> Result<(Written, usize), Failure> {
    if join != 0 {
        // A stale request (that checkpoint is over) is no checkpoint at all.
        let joined = job::join(join).ok_or(refuse(job::ABORTED))?;
        let result =
            joined.wait_all_stopped().and_then(|()| capture_one(t, n_threads, cfg, t0, Role::Member(&joined), false));
        if result.as_ref().is_err_and(|f| !f.is_abandoned()) {
            joined.fail();
        }
        joined.leave();
        return result;
    }
    if !cfg.tree {
        return capture_one(t, n_threads, cfg, t0, Role::Single, cow);
    }
    let mut root = job::start(job_tables)?;
    let gathered = root.gather(cfg.signal, &mut t.dents);
    if gathered.is_ok() && root.len() == 1 {
        root.end(false); // no one else: an image of one process
        return capture_one(t, n_threads, cfg, t0, Role::Single, false);
    }
    let result = gathered.and_then(|()| root.describe(&mut t.dents));
    // The tables are lent again below: the root's job part stays in `root`.
    let result = result.and_then(|()| capture_one(t, n_threads, cfg, t0, Role::Root(&mut root), false));
    root.end(result.is_ok());
    result
}

/// What this process is in the checkpoint.
enum Role<'r, 't> {
    Single,
    Root(&'r mut job::Root<'t>),
    Member(&'r job::Joined),
}

fn capture_one(
    t: &mut Tables,
    n_threads: usize,
    cfg: &Config,
    t0: u64,
    role: Role,
    cow: bool,
) -> Result<(Written, usize), Failure> {
    // Each part of the tables is lent where it is used: disjoint borrows.
    let Tables {
        maps,
        pagemap,
        strings,
        regions,
        extents,
        sums,
        threads,
        fds,
        fd_order,
        sigactions,
        dents,
        bounce,
        helper_stack,
        late,
        late_extents,
        parent_meta,
        tracked,
        tracked_next,
        written,
        stored,
        packed,
        lz4,
        ..
    } = t;
    let threads = &threads[..n_threads];
    // Children are not in the image: named, or with --strict a refusal
    // (in a job, they are members).
    let n_children = if cfg.tree { 0 } else { children::report(cfg.strict, dents) };
    if cfg.strict && n_children != 0 {
        return Err(Failure {
            children: n_children,
            ..refuse("the program has child processes, which an image cannot hold (--strict)")
        });
    }
    let mut h = Header::new();
    h.created_ns = sys::clock_ns(sys::CLOCK_REALTIME);
    h.pid = sys::getpid() as u32;
    h.n_threads = threads.len() as u32;
    h.leader = 0;
    (h.xfeatures, h.xsave_size) = frame_size(threads[0].fpstate);
    h.required_xfeatures = threads.iter().fold(0, |all, t| all | t.xinuse);
    h.cpu_level = cfg.cpu_level;
    h.portable_level = cfg.portable_level;
    h.cpu_brand = cfg.cpu_brand;
    h.xlayout = cfg.xlayout;
    let mask = sys::umask(0o022);
    sys::umask(mask);
    h.umask = mask;

    for (sig, action) in sigactions.iter_mut().enumerate().skip(1) {
        let mut k = sys::KSigAction::default();
        if sys::rt_sigaction(sig as i32, None, Some(&mut k)).is_ok() {
            *action = ckpt_image::SigAction { handler: k.handler, flags: k.flags, restorer: k.restorer, mask: k.mask };
        }
    }

    crate::process::capture(&mut h.process, crate::process::blocked_everywhere(threads));
    h.process.interval_ms = cfg.interval_ms;
    h.process.interval_signal = cfg.signal as u32;

    let mut b = Builder {
        strings: &mut strings[..],
        regions: &mut regions[..],
        extents: &mut extents[..],
        pagemap_words: &mut pagemap[..],
        strings_len: 0,
        n_regions: 0,
        n_extents: 0,
        pagemap: -1,
        late: &mut late[..],
        defer: cow,
        block: if cfg.incremental && !cfg.tree { delta::BLOCK } else { MAX_EXTENT },
    };
    h.mm = procfs::mm_layout(dents).map_err(failed("reading /proc/self/stat"))?;
    let n = procfs::read_file(c"/proc/self/auxv", dents).map_err(failed("reading /proc/self/auxv"))?;
    let words = (n / 8).min(h.auxv.len());
    for (i, w) in h.auxv[..words].iter_mut().enumerate() {
        *w = u64::from_le_bytes(dents[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    }
    h.auxv_words = words as u32;
    let n = procfs::read_file(c"/proc/self/comm", dents).map_err(failed("reading /proc/self/comm"))?;
    let comm = &dents[..n.min(16)];
    let comm_len = comm.iter().position(|&c| c == b'\n' || c == 0).unwrap_or(comm.len());
    h.comm[..comm_len].copy_from_slice(&comm[..comm_len]);

    h.cmdline = b
        .string_from(|buf| procfs::read_file(c"/proc/self/cmdline", buf))
        .map_err(failed("reading /proc/self/cmdline"))?;
    h.cwd = b.string_from(sys::getcwd).map_err(failed("reading the working directory"))?;
    h.exe = b.string_from(|buf| sys::readlink(c"/proc/self/exe", buf)).map_err(failed("reading /proc/self/exe"))?;
    // POSIX timers (a kernel without CONFIG_CHECKPOINT_RESTORE has no
    // /proc/self/timers: then none are recorded).
    match b.string_from(|buf| crate::timers::capture(dents, buf)) {
        Ok(timers) => {
            h.process.timers = timers;
            h.process.valid |= ckpt_image::PROCESS_TIMERS;
        }
        Err(sys::Errno::ENOENT) => {}
        Err(e) => return Err(failed("reading the POSIX timers (/proc/self/timers)")(e)),
    }

    let n_fds = files::capture(fds, &mut b, dents, fd_order).map_err(|e| match e {
        files::TOO_MANY => refuse("the program has more than 65,536 open descriptors, more than an image can hold"),
        e => failed("listing the open files")(e),
    })?;
    if cfg.strict {
        // --strict: no image that would lose a descriptor.
        if let Some(f) = fds[..n_fds].iter().find(|f| files::is_lost(f)) {
            let what = "cannot be restored (--strict: no image written)";
            return Err(Failure { lost_fd: f.fd as u32 + 1, ..refuse(what) });
        }
    }

    b.pagemap = sys::open(c"/proc/self/pagemap", sys::O_RDONLY).map_err(failed("opening /proc/self/pagemap"))?;
    let walked = b.walk_maps(maps);
    sys::close(b.pagemap);
    walked?;

    // A copy-on-write writer writes in place from its own copy; a job's
    // member writes into the root's file.
    let mut out = match role {
        Role::Member(_) => None,
        _ => Some(Output::new(cfg.output(), cfg.keep, cfg.allow_foreign)?),
    };
    // Deltas are for a single process that writes its images in place.
    let tracking = match (&role, out.as_mut()) {
        (Role::Single, Some(out)) if cfg.incremental && !cfg.tree && !cow => {
            let program_has_uffd = fds[..n_fds].iter().any(|f| {
                let path = &b.strings[f.path.offset as usize..][..f.path.len as usize];
                path == b"anon_inode:[userfaultfd]"
            });
            let base = if cfg.max_chain > 0 {
                delta::Base::open(out.path(), cfg.max_chain, &mut parent_meta[..], out.dir())
            } else {
                None
            };
            // The kernel's record of the pages written since the last image,
            // taken (and started again) now, while the threads are stopped.
            let scan = dirty::scan(&mut tracked[..], &mut written[..], base.as_ref().map_or(0, |b| b.id()));
            if let Some(base) = base {
                let regions = &b.regions[..b.n_regions];
                let extents = &mut b.extents[..b.n_extents];
                let reused = base.reuse(regions, extents, &scan, &sums[..], &mut helper_stack[..]);
                let mut name = [0u8; crate::output::NAME_BUF];
                let name = out.parent_name(base.id(), &mut name);
                let linked = (reused != 0)
                    .then(|| b.string(name).ok())
                    .flatten()
                    .and_then(|name| base.link(&mut h, name, |s| b.string(s).ok()));
                if linked.is_some() {
                    out.set_parent(base.fd, base.id());
                } else {
                    // Nothing in common, or no room for the names: a full image.
                    b.extents[..b.n_extents].iter_mut().for_each(|x| *x = Extent::new(x.addr, x.len));
                    h.chain_depth = 0;
                    h.parents = Default::default();
                    sys::close(base.fd);
                }
            }
            Some(Tracking { tracked: &mut tracked[..], next: &mut tracked_next[..], program_has_uffd })
        }
        _ => None,
    };

    let compress = cfg.compress.then_some(Compress { stored, packed, lz4 });
    let rest = Rest {
        threads,
        sigactions: &sigactions[..],
        fds: &fds[..n_fds],
        sums,
        bounce,
        helper_stack,
        dents,
        out,
        tracking,
        compress,
    };
    if !cow {
        return finish(b, rest, h, t0, role).map(|(written, n)| (Written::Here(written), n));
    }
    // In the writer process: the pages it scans itself, the same steps,
    // and the line that says how they went.
    let mut job = Some((b, rest));
    let mut job = || {
        let Some((b, rest)) = job.take() else { return };
        if !crate::cow::inherited(&b.regions[..b.n_regions]) {
            return; // and the program takes it again, in place
        }
        let result = b.scan_late(late_extents).and_then(|b| finish(b, rest, h, t0, Role::Single));
        let took = sys::clock_ns(sys::CLOCK_MONOTONIC) - t0;
        match result {
            Ok((written, _)) if !cfg.quiet => {
                written_line(written, took, crate::cow::paused_ns(), n_threads, 1, Some(sys::getpid())).emit()
            }
            Ok(_) => {}
            Err(f) => failure_line(&f, false, &mut [0u8; 4096]),
        }
    };
    crate::cow::spawn(&mut job, cfg.signal)
        .map(|_| (Written::Forked, 1))
        .map_err(failed("starting the copy-on-write writer (--no-cow writes in place)"))
}

/// What a checkpoint needs beside the region, extent and string tables to
/// write the image.
struct Rest<'a> {
    threads: &'a [ckpt_image::Thread],
    sigactions: &'a [ckpt_image::SigAction],
    fds: &'a [ckpt_image::Fd],
    sums: &'a [AtomicU64],
    bounce: &'a [Bounce],
    helper_stack: &'a mut [u8],
    /// Scratch for the sweep of stale temporaries.
    dents: &'a mut [u8],
    /// Where the image goes (not in a job's member: the root's file).
    out: Option<Output>,
    /// With --incremental: the write tracking to start again once the
    /// image is in place.
    tracking: Option<Tracking<'a>>,
    /// With --compress: the writer threads' buffers.
    compress: Option<Compress<'a>>,
}

/// The write tracker's tables (dirty.rs), lent to the end of a checkpoint.
struct Tracking<'a> {
    tracked: &'a mut [crate::workspace::Range],
    next: &'a mut [crate::workspace::Range],
    program_has_uffd: bool,
}

/// Lays out and writes the image, once the tables are complete, as `role`
/// says: its size, and the number of processes in it.
fn finish(b: Builder, rest: Rest, h: Header, t0: u64, role: Role) -> Result<(u64, usize), Failure> {
    let Builder { strings, regions, extents, strings_len, n_regions, n_extents, .. } = b;
    let Rest { threads, sigactions, fds, sums, bounce, helper_stack, dents, out, tracking, compress } = rest;
    let regions = &regions[..n_regions];
    let tables = encode::Tables {
        regions,
        extents: &mut extents[..n_extents],
        threads,
        sigactions,
        fds,
        strings: &strings[..strings_len],
    };
    let mut enc = Encoder::new(h, tables);
    let writer = Writer { regions, sums, bounce, helper_stack, compress };
    let len = enc.header().file_len;
    let created = enc.header().created_ns;
    match (role, out) {
        (Role::Member(joined), _) => {
            let (fd, base) = joined.place(len)?;
            let written = write_to(fd, &mut enc, writer, t0, base);
            sys::close(fd);
            written.and_then(|()| joined.written()).map(|()| (len, 1))
        }
        (Role::Single, Some(mut out)) => {
            out.check_targets()?;
            out.remove_stale(dents);
            write(&mut out, |fd| write_to(fd, &mut enc, writer, t0, 0))?;
            if let Some(t) = tracking {
                out.remove_unused_parents(dents);
                let id = enc.header().header_checksum;
                if let Some(why) = dirty::arm(regions, t.tracked, t.next, id, t.program_has_uffd) {
                    let mut l = msg::Line::new();
                    l.push(b"ckpt: --incremental: ").push(why.as_bytes());
                    l.push(b"; the next images compare memory with the previous one instead of tracking writes");
                    l.emit();
                }
            }
            Ok((len, 1))
        }
        (Role::Root(root), Some(mut out)) => {
            out.check_targets()?;
            out.remove_stale(dents);
            let base = root.lay_out(len, dents)?;
            let n = root.len();
            let mut file_len = 0;
            write(&mut out, |fd| {
                root.start_writing(fd);
                write_to(fd, &mut enc, writer, t0, base)?;
                file_len = root.finish_writing(fd, created, dents)?;
                Ok(())
            })
            .map(|()| (file_len, n))
        }
        (_, None) => Err(refuse("no output for the image")),
    }
}

/// What the data writer uses beside the encoder's tables.
struct Writer<'a> {
    regions: &'a [Region],
    sums: &'a [AtomicU64],
    bounce: &'a [Bounce],
    helper_stack: &'a mut [u8],
    compress: Option<Compress<'a>>,
}

/// `--compress`: where the writer threads compress (see Tables).
#[derive(Clone, Copy)]
struct Compress<'a> {
    stored: &'a [AtomicU64],
    packed: &'a [Packed],
    lz4: &'a [Lz4Table],
}

/// Fills the region, extent and string tables.
struct Builder<'a> {
    strings: &'a mut [u8],
    regions: &'a mut [Region],
    extents: &'a mut [Extent],
    pagemap_words: &'a mut [u64],
    strings_len: usize,
    n_regions: usize,
    n_extents: usize,
    pagemap: i32,
    /// Per region: its pages are left for the copy-on-write writer to find
    /// ([`Builder::scan_late`]).
    late: &'a mut [bool],
    /// Whether to leave them (a copy-on-write checkpoint).
    defer: bool,
    /// Extents do not cross a multiple of this (a power of two ≤ MAX_EXTENT).
    block: u64,
}

/// The files module adds its paths and pipe contents to the string table.
impl files::Strings for Builder<'_> {
    fn add(&mut self, bytes: &[u8]) -> Option<StrRef> {
        self.string(bytes).ok()
    }
}

impl<'a> Builder<'a> {
    /// Appends what `fill` writes to the string table.
    fn string_from(&mut self, fill: impl FnOnce(&mut [u8]) -> Result<usize, Errno>) -> Result<StrRef, Errno> {
        let start = self.strings_len;
        let n = fill(&mut self.strings[start..])?;
        self.strings_len += n;
        Ok(StrRef { offset: start as u32, len: n as u32 })
    }

    fn string(&mut self, s: &[u8]) -> Result<StrRef, Failure> {
        let start = self.strings_len;
        let dst = self.strings.get_mut(start..start + s.len()).ok_or(refuse("too many mapped file names"))?;
        dst.copy_from_slice(s);
        self.strings_len += s.len();
        Ok(StrRef { offset: start as u32, len: s.len() as u32 })
    }

    /// Reads `/proc/self/maps` into `buf` and adds its regions.
    fn walk_maps(&mut self, buf: &mut [u8]) -> Result<(), Failure> {
        let n = procfs::read_file(c"/proc/self/maps", buf).map_err(failed("reading /proc/self/maps"))?;
        let (ws_start, ws_end) = workspace::range();
        let (board_start, board_end) = job::board_range();
        let text = &buf[..n];
        for m in maps::mappings(text) {
            let m = m.map_err(|_| refuse("cannot parse /proc/self/maps"))?;
            if m.end > USER_END || (m.start < LOADER_END && m.end > LOADER_BASE) {
                continue; // [vsyscall]; the loader's reservation or leftovers
            }
            if m.start < board_end && m.end > board_start {
                continue; // a job's barrier, for the time of the checkpoint
            }
            let kind = match m.name {
                _ if m.start >= ws_start && m.end <= ws_end => RegionKind::Workspace,
                b"[vvar]" => RegionKind::Vvar,
                b"[vvar_vclock]" => RegionKind::VvarVclock,
                b"[vdso]" => RegionKind::Vdso,
                b"[heap]" => RegionKind::Heap,
                b"[stack]" => RegionKind::Stack,
                _ if m.is_file() => RegionKind::File,
                _ => RegionKind::Anon,
            };
            self.add_region(&m, kind)?;
        }
        Ok(())
    }

    fn add_region(&mut self, m: &Mapping, kind: RegionKind) -> Result<(), Failure> {
        if self.n_regions == MAX_REGIONS {
            return Err(refuse("too many memory regions"));
        }
        let mut flags = 0;
        if m.shared {
            flags |= REGION_SHARED;
        }
        if kind == RegionKind::Stack {
            flags |= REGION_GROWSDOWN;
        }
        // A sem_open semaphore's mapping: under the name its file has now.
        let mut live = [0u8; 512];
        let renamed = if m.shared { crate::shm::live_path(m.name, m.inode, &mut live) } else { None };
        let m = &Mapping { name: renamed.unwrap_or(m.name), ..*m };
        let path = self.string(m.name)?;
        let first_extent = self.n_extents;
        // Readable private anonymous memory, in a copy-on-write checkpoint:
        // the writer reads which pages it has from its own pagemap, which
        // the fork made the program's (every page and swap entry of memory
        // that was ever written is copied; memory only ever read has none
        // to store either way). The program's pause is shorter by the scan.
        let late = self.defer
            && !m.shared
            && m.prot & 1 != 0
            && matches!(kind, RegionKind::Anon | RegionKind::Heap | RegionKind::Stack);
        self.late[self.n_regions] = late;
        if !kind.is_vdso() && kind != RegionKind::Workspace && !late {
            self.add_extents(m, kind)?;
        }
        self.regions[self.n_regions] = Region {
            start: m.start,
            end: m.end,
            prot: m.prot,
            flags,
            kind: kind as u32,
            n_extents: (self.n_extents - first_extent) as u32,
            first_extent: first_extent as u32,
            _pad: 0,
            file_offset: m.offset,
            file: if kind == RegionKind::File { self.file_id(m) } else { FileId::default() },
            path,
        };
        self.n_regions += 1;
        Ok(())
    }

    /// The identity of a file mapping's backing file as it is now, so that a
    /// restart can tell whether it changed (and write a shared mapping back
    /// only to an unchanged file). All zero when it cannot be known: the
    /// file was deleted, or the path now names another file (its inode is
    /// not the mapping's). The regions of one file usually follow each
    /// other: the previous region's answer is reused.
    fn file_id(&self, m: &Mapping) -> FileId {
        if let Some(prev) = self.n_regions.checked_sub(1).map(|i| &self.regions[i]) {
            let start = prev.path.offset as usize;
            let prev_name = self.strings.get(start..start + prev.path.len as usize);
            if prev.kind == RegionKind::File as u32 && prev.file.ino == m.inode && prev_name == Some(m.name) {
                return prev.file;
            }
        }
        let mut buf = [0u8; 4097];
        if m.name.starts_with(b"/memfd:") && m.name.ends_with(b" (deleted)") {
            // A memfd: only its inode, to find its descriptor at restart.
            return FileId { ino: m.inode, ..FileId::default() };
        }
        if m.inode == 0 || m.name.len() >= buf.len() || m.name.ends_with(b" (deleted)") {
            return FileId::default();
        }
        buf[..m.name.len()].copy_from_slice(m.name);
        let Ok(path) = CStr::from_bytes_until_nul(&buf) else { return FileId::default() };
        match sys::stat(path) {
            Ok(st) if st.ino == m.inode => {
                FileId { dev: st.dev, ino: st.ino, size: st.size.max(0) as u64, mtime_ns: st.mtime_ns() }
            }
            _ => FileId::default(),
        }
    }

    /// Decides which pages of a region are stored:
    /// - readable file or shared memory: every page that can be read (a file
    ///   mapping may reach past the end of its file; those pages are left out);
    /// - private anonymous memory, and anything unreadable: the pages the
    ///   kernel has (present or swapped, from /proc/self/pagemap). The rest
    ///   was never touched and is zero.
    fn add_extents(&mut self, m: &Mapping, kind: RegionKind) -> Result<(), Failure> {
        let pages = m.len() / PAGE_SIZE;
        let readable = m.prot & 1 != 0;
        if readable && (kind == RegionKind::File || m.shared) {
            let n = readable_prefix(m.start, pages);
            return self.add_run(m.start, n * PAGE_SIZE);
        }
        self.add_present(m.start, pages)
    }

    /// Adds the pages of `[start, start+pages*4K)` that the kernel has
    /// (present or swapped, from /proc/self/pagemap).
    fn add_present(&mut self, start: u64, pages: u64) -> Result<(), Failure> {
        let mut run_start = 0u64;
        let mut run_len = 0u64;
        let mut page = 0u64;
        while page < pages {
            let chunk = (pages - page).min(PAGEMAP_WORDS as u64) as usize;
            let words = &mut self.pagemap_words[..chunk];
            // SAFETY: the u64 words are plain memory of the right size.
            let bytes = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, chunk * 8) };
            let offset = (start / PAGE_SIZE + page) * 8;
            let got = sys::pread(self.pagemap, bytes, offset).map_err(failed("reading /proc/self/pagemap"))?;
            if got != chunk * 8 {
                return Err(refuse("short read of /proc/self/pagemap"));
            }
            for i in 0..chunk {
                let has = self.pagemap_words[i] & (3 << 62) != 0;
                let addr = start + (page + i as u64) * PAGE_SIZE;
                if has {
                    if run_len == 0 {
                        run_start = addr;
                    }
                    run_len += PAGE_SIZE;
                } else if run_len != 0 {
                    self.add_run(run_start, run_len)?;
                    run_len = 0;
                }
            }
            page += chunk as u64;
        }
        if run_len != 0 {
            self.add_run(run_start, run_len)?;
        }
        Ok(())
    }

    /// In the copy-on-write writer: a builder whose extent table is `into`,
    /// with the extents of every region in order: the pages of the regions
    /// left late, from this process's own pagemap, and the others' extents
    /// as they were found at the checkpoint.
    fn scan_late<'b>(self, into: &'b mut [Extent]) -> Result<Builder<'b>, Failure>
    where
        'a: 'b,
    {
        let Builder { strings, regions, extents: found, pagemap_words, strings_len, n_regions, late, .. } = self;
        let pagemap = sys::open(c"/proc/self/pagemap", sys::O_RDONLY).map_err(failed("opening /proc/self/pagemap"))?;
        let mut b = Builder {
            strings,
            regions,
            extents: into,
            pagemap_words,
            strings_len,
            n_regions,
            n_extents: 0,
            pagemap,
            late,
            defer: false,
            block: MAX_EXTENT,
        };
        let scanned = (0..n_regions).try_for_each(|i| {
            let r = b.regions[i];
            let first = b.n_extents;
            if b.late[i] {
                b.add_present(r.start, r.len() / PAGE_SIZE)?;
            } else {
                let n = r.n_extents as usize;
                let mine = &found[r.first_extent as usize..r.first_extent as usize + n];
                b.extents[first..first + n].copy_from_slice(mine);
                b.n_extents += n;
            }
            b.regions[i].first_extent = first as u32;
            b.regions[i].n_extents = (b.n_extents - first) as u32;
            Ok(())
        });
        sys::close(pagemap);
        scanned.map(|()| b)
    }

    /// Adds `[addr, addr+len)` as extents that do not cross a multiple of
    /// `block`: the same memory is cut the same way in every image, so a
    /// delta can reuse its parent's extents (delta.rs).
    fn add_run(&mut self, mut addr: u64, mut len: u64) -> Result<(), Failure> {
        while len > 0 {
            if self.n_extents == MAX_EXTENTS {
                return Err(refuse("memory too fragmented (too many extents)"));
            }
            let piece = len.min(self.block - addr % self.block);
            self.extents[self.n_extents] = Extent::new(addr, piece);
            self.n_extents += 1;
            addr += piece;
            len -= piece;
        }
        Ok(())
    }
}

/// Writes the image to a temporary file, then moves it into place
/// (the steps are in output.rs).
fn write(out: &mut Output, fill: impl FnOnce(i32) -> Result<(), Failure>) -> Result<(), Failure> {
    let temp = out.create()?;
    let fd = temp.fd;
    // A write past the program's RLIMIT_FSIZE raises SIGXFSZ (blocked
    // in here) as well as failing with EFBIG: that signal is ours, and
    // must not kill the program once the handler returns.
    const SIGXFSZ: u64 = 1 << (25 - 1);
    let xfsz_pending = sys::rt_sigpending() & SIGXFSZ != 0;
    let result = fill(fd);
    let result = result.and_then(|()| sys::fsync(fd).map_err(failed("writing the image to disk")));
    if result.is_err() && !xfsz_pending {
        let _ = sys::rt_sigtimedwait_now(SIGXFSZ);
    }
    match result {
        // Only now, with the new image complete on disk, are the older
        // ones moved along (--keep) and the new one put in place.
        Ok(()) => out.commit(temp),
        Err(f) => {
            out.abandon(temp);
            Err(f)
        }
    }
}

/// The data (hashed as written, by two threads for much of it), then the
/// metadata, then the sealed header: at `base` in the file (a member of a
/// job image), or as the whole file (`base` 0: it is sized to the image).
fn write_to(fd: i32, enc: &mut Encoder, w: Writer, t0: u64, base: u64) -> Result<(), Failure> {
    // Stored pages of unreadable regions are made readable for the copy.
    readable_for_copy(w.regions, true)?;
    let data_len = enc.header().data_len;
    let after_ms = if crate::cow::in_writer() { u64::MAX } else { config::get().progress_after_ms };
    let progress = Progress::new("ckpt: writing the image", data_len, t0, after_ms);
    if let Some(c) = w.compress {
        for t in c.lz4 {
            // SAFETY: the table is the coordinator's until split hands it to
            // its one worker; a const value, no allocation.
            unsafe { (*t.as_mut_ptr()).write(codec::table()) };
        }
    }
    let order = Order { next: AtomicU32::new(0), pos: AtomicU64::new(enc.header().data_offset) };
    let job = WriteData {
        fd,
        base,
        regions: w.regions,
        extents: enc.extents(),
        sums: w.sums,
        bounce: w.bounce,
        compress: w.compress,
        order,
        progress,
    };
    // SAFETY: the helper stack is the coordinator's alone (borrowed here);
    // the extents are disjoint, each item writes its own checksum and file
    // range, and each worker has its own bounce buffer.
    let written = unsafe { thread::split(&job, data_len >= PARALLEL_BYTES, w.helper_stack) };
    job.progress.end();
    let end = job.order.pos.load(Relaxed);
    readable_for_copy(w.regions, false)?;
    if let Err((_, code)) = written {
        return Err(match code {
            NO_PROGRESS => refuse("writing the image: no progress"),
            e => failed("writing the image")(Errno::new(e as i32)),
        });
    }
    for (i, sum) in w.sums[..enc.extents().len()].iter().enumerate() {
        if enc.extents()[i].source == 0 {
            enc.set_checksum(i, sum.load(Relaxed)); // split's end ordered the workers' stores
        }
    }
    if let Some(c) = w.compress {
        // Placed as the workers took their places (Order): in table order.
        enc.set_stored(|i| {
            let v = c.stored[i].load(Relaxed);
            (v & 0xffff_ffff, (v >> 32) as u32)
        });
        debug_assert_eq!(enc.header().file_len, end);
    }
    enc.header_mut().capture_ns = sys::clock_ns(sys::CLOCK_MONOTONIC) - t0;
    let mut pos = base + enc.header().meta_offset;
    for part in enc.meta_parts() {
        write_at(fd, part.as_ptr() as u64, part.len() as u64, pos)?;
        pos += part.len() as u64;
    }
    let h = *enc.seal();
    let hb = bytes_of(&h);
    write_at(fd, hb.as_ptr() as u64, hb.len() as u64, base)?;
    if base != 0 {
        return Ok(()); // the job's root sizes the file
    }
    sys::ftruncate(fd, h.file_len).map_err(failed("sizing the image file"))
}

/// Adds read access to the unreadable regions that have stored pages
/// (`on`), or gives them back their own protection.
fn readable_for_copy(regions: &[Region], on: bool) -> Result<(), Failure> {
    for r in regions {
        if r.n_extents != 0 && r.prot & 1 == 0 {
            let prot = if on { r.prot as i32 | sys::PROT_READ } else { r.prot as i32 };
            // SAFETY: read access only, for the copy; then the program's own.
            unsafe { sys::mprotect(r.start, r.len(), prot) }.map_err(failed("making a region readable"))?;
        }
    }
    Ok(())
}

/// Data larger than this is hashed and written by two threads.
const PARALLEL_BYTES: u64 = 32 << 20;
/// Error code of a write that made no progress.
const NO_PROGRESS: u32 = u32::MAX;

/// Hashing (compressing) and writing the extents, one item each
/// (`ckpt_sys::thread::split`): the tables are read only; item `i` stores
/// its checksum in `sums[i]` (and how it was stored in `stored[i]`),
/// worker `w` uses `bounce[w]`, `packed[w]` and `lz4[w]` alone.
struct WriteData<'a> {
    fd: i32,
    /// Where the image starts in the file.
    base: u64,
    regions: &'a [Region],
    extents: &'a [Extent],
    sums: &'a [AtomicU64],
    bounce: &'a [Bounce],
    compress: Option<Compress<'a>>,
    order: Order,
    progress: Progress,
}

/// Compressed extents have sizes known only once compressed, and their
/// stored bytes follow each other in table order: each worker compresses
/// its extent, then waits until every extent before it has taken its
/// place, takes the next one and writes there. Items are handed out in
/// increasing order and every item started takes its place (nothing fails
/// before), so the wait always ends; the other worker compresses meanwhile.
struct Order {
    /// The extent whose turn it is to take a place.
    next: AtomicU32,
    /// Where the next place starts.
    pos: AtomicU64,
}

impl Order {
    /// Waits for extent `i`'s turn and takes its place in the file (as
    /// `Encoder::set_stored` will lay it out: `Extent::place_at`).
    fn take(&self, i: usize, x: &Extent) -> u64 {
        self.wait_turn(i);
        let pos = x.place_at(self.pos.load(Relaxed));
        self.pos.store(pos + x.stored_len, Relaxed);
        self.next.store(i as u32 + 1, Release);
        sys::futex_wake(&self.next, u32::MAX);
        pos
    }

    /// Waits for extent `i`'s turn and passes it on: an extent stored in
    /// another image takes no place in this one.
    fn pass(&self, i: usize) {
        self.wait_turn(i);
        self.next.store(i as u32 + 1, Release);
        sys::futex_wake(&self.next, u32::MAX);
    }

    fn wait_turn(&self, i: usize) {
        loop {
            let next = self.next.load(Acquire);
            if next as usize == i {
                return;
            }
            let _ = sys::futex_wait(&self.next, next, 0);
        }
    }
}

impl thread::Job for WriteData<'_> {
    fn len(&self) -> usize {
        self.extents.len()
    }

    /// Hashes and writes extent `i`. Shared memory (which another process
    /// may change meanwhile) goes through the worker's bounce buffer, so
    /// that the checksum is that of the bytes written.
    fn run(&self, worker: usize, i: usize) -> Result<(), u32> {
        let x = self.extents[i];
        if x.source != 0 {
            // A delta's unchanged extent: its parent holds it, as it is.
            if let Some(c) = self.compress {
                c.stored[i].store(x.stored_len | (x.encoding as u64) << 32, Relaxed);
                self.order.pass(i);
            }
            return Ok(());
        }
        let r = self.regions.partition_point(|r| r.first_extent as usize + r.n_extents as usize <= i);
        let shared = self.regions.get(r).is_some_and(|r| r.flags & REGION_SHARED != 0);
        let src = if shared {
            let bounce = self.bounce[worker].as_mut_ptr() as *mut u8;
            // SAFETY: the extent is readable memory of at most MAX_EXTENT
            // bytes, the size of the worker's own bounce buffer, which no
            // one else uses (Bounce).
            unsafe { core::ptr::copy_nonoverlapping(x.addr as *const u8, bounce, x.len as usize) };
            bounce as u64
        } else {
            x.addr
        };
        // SAFETY: [src, src+len) is readable (checked when the extent was
        // chosen) and does not change during the capture.
        let data = unsafe { core::slice::from_raw_parts(src as *const u8, x.len as usize) };
        let sum = checksum(data);
        let (from, len, pos) = match self.compress {
            None => (src, x.len, x.file_pos),
            Some(c) => {
                // SAFETY: the worker's own buffer and table (Worker), the
                // table set up before the split.
                let (packed, table) =
                    unsafe { (&mut *c.packed[worker].as_mut_ptr(), (*c.lz4[worker].as_mut_ptr()).assume_init_mut()) };
                let (from, len, encoding) = match codec::compress(data, packed, table) {
                    Some(n) => (packed.as_ptr() as u64, n as u64, EXTENT_LZ4),
                    None => (src, x.len, EXTENT_RAW),
                };
                c.stored[i].store(len | (encoding as u64) << 32, Relaxed);
                (from, len, self.order.take(i, &Extent { stored_len: len, encoding, ..x }))
            }
        };
        write_at(self.fd, from, len, self.base + pos)
            .map_err(|f| f.errno.map_or(NO_PROGRESS, |e| e.into_raw() as u32))?;
        self.sums[i].store(sum, Relaxed);
        self.progress.add(x.len);
        Ok(())
    }
}

fn write_at(fd: i32, addr: u64, len: u64, pos: u64) -> Result<(), Failure> {
    // SAFETY: the kernel reads [addr, addr+len) of our own memory.
    unsafe { sys::pwrite_all(fd, addr, len, pos) }.map_err(|e| match e {
        sys::Short::End => refuse("writing the image: no progress"),
        sys::Short::Errno(e) => failed("writing the image")(e),
    })
}

/// Number of leading pages of `[start, start+pages*4K)` that can be read.
fn readable_prefix(start: u64, pages: u64) -> u64 {
    if pages == 0 || sys::readable(start + (pages - 1) * PAGE_SIZE) {
        return pages;
    }
    // Invariant: page lo is readable or lo == 0 with nothing known; hi is not.
    let (mut lo, mut hi) = (0u64, pages - 1);
    if !sys::readable(start) {
        return 0;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if sys::readable(start + mid * PAGE_SIZE) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}
