//! The capture: from the checkpoint signal's frame to an image file.
//!
//! Runs on the workspace stack with every signal blocked. The program's
//! memory does not change while it runs (this thread is here, and it is the
//! only one), except the rseq area, which the kernel updates on preemption:
//! the registration is dropped for the duration and re-made on failure.
//!
//! The order of work, in this file top to bottom ([`run`], [`capture`],
//! `capture_one`, `finish`):
//! 1. begin: the coordinator's session, the rseq registration dropped, this
//!    thread described (frame address, %fs, rseq, tid address, robust list);
//! 2. stop all the other threads, each describing itself (threads.rs);
//! 3. describe the process (children, signal dispositions, memory layout,
//!    auxv, command line, working directory, open files);
//! 4. walk `/proc/self/maps` into the region table, and decide per region
//!    which pages to store (extents): walk.rs;
//! 5. write the data, hashing each extent just before writing it (and with
//!    `--compress`, compressing it), then the metadata, then the header, to
//!    a temporary file beside the image; fsync, rename over the image, fsync
//!    the directory: the previous image stays intact until the new one is
//!    complete on disk (writer.rs, output.rs);
//! 6. exit (the program stops; a lock keeper holds its file locks, keeper.rs),
//!    or release the threads (`--continue`, or a failure, said on stderr).
//!
//! In a copy-on-write checkpoint ([`crate::cow`]) step 5, and the
//! pagemap scan of readable private anonymous memory, are done by the
//! writer process, from its copy of the program; the threads are released
//! as soon as it exists.

use core::ffi::c_void;
use core::fmt::Write as _;
use core::sync::atomic::AtomicU64;

use ckpt_image::encode::{self, Encoder};
use ckpt_image::{Extent, Header, EXIT_CHECKPOINTED, MAX_EXTENT};
use ckpt_sys::{self as sys, Errno};

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
use crate::walk::Builder;
use crate::workspace::{self, Bounce, JobTables, Tables};
use crate::writer::{write, write_to, Compress, Writer};

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
    pub(crate) errno: Option<Errno>,
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
            // (not when it stops: it would only wait for the writer); not
            // for deltas (the write tracking restarts in the program itself).
            // A job found to have several processes writes in place anyway
            // ([`capture`]).
            let cow = cfg.cow
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
            // Its file locks stay held until a restart (keeper.rs).
            if !cfg.release_locks {
                crate::keeper::start(cfg.quiet, join != 0, &mut tables.dents);
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
    // The program alone (no child, running or exited: its threads are
    // stopped, none can come now): the image of one process, without the
    // job's barrier.
    if !cfg.tree || children::each(&mut t.dents, |_, _| {}) == 0 {
        return capture_one(t, n_threads, cfg, t0, Role::Single, cow);
    }
    let mut root = job::start(job_tables)?;
    let gathered = root.gather(cfg.signal, &mut t.dents);
    if gathered.is_ok() && root.len() == 1 {
        // No one else: an image of one process, as without --tree
        // (copy-on-write, deltas).
        root.end(false);
        return capture_one(t, n_threads, cfg, t0, Role::Single, cow);
    }
    if gathered.is_ok() && (cow || cfg.incremental) && !cfg.quiet {
        job_in_place(root.len(), cow, cfg.incremental);
    }
    let result = gathered.and_then(|()| root.describe(&mut t.dents));
    // The tables are lent again below: the root's job part stays in `root`.
    let result = result.and_then(|()| capture_one(t, n_threads, cfg, t0, Role::Root(&mut root), false));
    root.end(result.is_ok());
    result
}

/// Says that this checkpoint of a job of `n` processes is a full image
/// written in place, though copy-on-write (`cow`) or a delta
/// (`incremental`) was asked for: those are for a job of one process.
fn job_in_place(n: usize, cow: bool, incremental: bool) {
    let mut l = msg::Line::new();
    let _ = write!(l, "ckpt: the job has {n} processes: ");
    l.push(match (incremental, cow) {
        (true, true) => b"a full image (not a delta), written with the job paused (not copy-on-write)",
        (true, false) => b"a full image (not a delta)",
        _ => b"the image is written with the job paused (not copy-on-write)",
    });
    l.push(b"; those are for a job of one process");
    l.emit();
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
    // (unless --no-tree, they are members).
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
    crate::keeper::note(&h);
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
        block: if cfg.incremental && matches!(role, Role::Single) { delta::BLOCK } else { MAX_EXTENT },
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

    let pagemap = sys::open(c"/proc/self/pagemap", sys::O_RDONLY).map_err(failed("opening /proc/self/pagemap"))?;
    b.pagemap = pagemap.as_raw(); // lent for the walk
    let walked = b.walk_maps(maps);
    drop(pagemap);
    walked?;

    // A copy-on-write writer writes in place from its own copy; a job's
    // member writes into the root's file.
    let mut out = match role {
        Role::Member(_) => None,
        _ => Some(Output::new(cfg.output(), cfg.keep, cfg.allow_foreign)?),
    };
    // Deltas are for a single process that writes its images in place.
    let tracking = match (&role, out.as_mut()) {
        (Role::Single, Some(out)) if cfg.incremental && !cow => {
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
                    let id = base.id();
                    out.set_parent(base.fd, id);
                } else {
                    // Nothing in common, or no room for the names: a full image.
                    b.extents[..b.n_extents].iter_mut().for_each(|x| *x = Extent::new(x.addr, x.len));
                    h.chain_depth = 0;
                    h.parents = Default::default();
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
            let written = write_to(fd.as_raw(), &mut enc, writer, t0, base);
            drop(fd);
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
