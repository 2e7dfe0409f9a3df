//! A job of several processes (`ckpt --tree`): the process ckpt started
//! (the root) and every descendant, checkpointed together into one image.
//!
//! Every descendant runs this library too (LD_PRELOAD is inherited, and a
//! forked child stays armed: `intercept::rearm_in_child`), as a *member*
//! whose root is `CKPT_PID`. Only the root takes the checkpoint signal from
//! outside; a member checkpoints when its root asks, through the barrier:
//!
//! ```text
//!  root (coordinator)                         each member (its coordinator thread)
//!  stop own threads
//!  memfd "board" (shared page) ─────────┐
//!  loop: list /proc, find descendants   │
//!        sigqueue(pid, SIG, JOIN|fd) ──►│──► handler: stop own threads,
//!        wait arrivals ◄────────────────│◄── open /proc/ROOT/fd/FD, map the board,
//!  until a listing finds no new one     │    ARRIVED; wait for the phase
//!  phase CAPTURE ──────────────────────►│──► capture (tables, layout): CAPTURED + length
//!  capture own tables; wait CAPTURED    │
//!  lay out the job file; temp file      │
//!  phase WRITE (bases, temp fd) ───────►│──► open /proc/ROOT/fd/TEMP, write own image
//!  write own image; wait WRITTEN ◄──────│◄── at its base: WRITTEN
//!  job table; fsync; rename             │
//!  phase COMMIT (or ABORT) ────────────►│──► stop (exit 99) or resume, as the root
//! ```
//!
//! Nothing is allocated and nothing locks: the board is a shared mapping of
//! atomics and (process-shared) futexes, made by the root at the checkpoint and unmapped at
//! its end. A descendant is signalled only once it has the library's
//! handler (`SigCgt` in `/proc/PID/status`); one that never gets it (a
//! static executable, a program run without LD_PRELOAD) fails the
//! checkpoint after the arrival timeout, named, and so does one that does
//! not arrive; a descendant that exits meanwhile is recorded as a zombie.
//! Each passes its phase only when every member has, so no member's image
//! data is taken before every process of the job is stopped.

use core::ffi::CStr;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};

use ckpt_image::job::{JobHeader, Link, Member, SharedMap, MAX_MEMBERS, MEMBER_RUNNING, MEMBER_ZOMBIE};
use ckpt_image::{bytes_of, bytes_of_slice, checksum_parts, page_up};
use ckpt_sys::{self as sys, Errno};

use crate::capture::{failed, refuse, Failure};
use crate::files::Strings;
use crate::links::{self, Entry, MapEntry};
use crate::msg::{self, Line};
use crate::procfs;
use crate::workspace::JobTables;

/// The high half of a JOIN request's value: a tag and the checkpoint's nonce.
const JOIN_TAG: u64 = 0xc4b7;

/// How long the root waits for a descendant to arrive at the barrier.
const ARRIVAL_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long it waits for a descendant that runs a statically linked program.
const STATIC_GRACE_NS: u64 = 500_000_000;
/// How often a waiting side checks that the other is still alive.
const TICK_NS: u64 = 50_000_000;

// Phases of the board.
const GATHER: u32 = 1;
const CAPTURE: u32 = 2;
const WRITE: u32 = 3;
const COMMIT: u32 = 4;
const ABORT: u32 = 5;

// States of a member's slot.
const SIGNALED: u32 = 1;
const ARRIVED: u32 = 2;
const CAPTURED: u32 = 3;
const WRITTEN: u32 = 4;
const FAILED: u32 = 5;
const ZOMBIE: u32 = 6;

#[repr(C)]
struct Slot {
    pid: AtomicU32,
    state: AtomicU32,
    /// The member's image length (CAPTURED), then its place (WRITE).
    len: AtomicU64,
    base: AtomicU64,
}

/// The shared page(s) of one job checkpoint.
#[repr(C)]
struct Board {
    nonce: AtomicU32,
    phase: AtomicU32,
    /// Bumped (and woken) at each change of a member's state.
    changes: AtomicU32,
    /// The root's descriptor of the temporary image file (WRITE).
    temp_fd: AtomicU32,
    slots: [Slot; MAX_MEMBERS as usize],
}

const BOARD_SIZE: u64 = page_up(core::mem::size_of::<Board>() as u64);

/// Where this process maps the board during a checkpoint (0: nowhere), so
/// that the capture leaves it out of the image.
static BOARD_AT: AtomicU64 = AtomicU64::new(0);
/// The root's descriptor of the board's memfd during a checkpoint (-1: none),
/// left out of its descriptor table.
static BOARD_FD: AtomicI32 = AtomicI32::new(-1);
/// The JOIN request the handler took, for the coordinator (0: none).
static REQUEST: AtomicU64 = AtomicU64::new(0);

/// The board's mapping, to be left out of the region table.
pub fn board_range() -> (u64, u64) {
    let at = BOARD_AT.load(SeqCst);
    (at, if at == 0 { 0 } else { at + BOARD_SIZE })
}

/// Whether `fd` is the capture's own (the board), not the program's.
pub fn is_own_fd(fd: i32) -> bool {
    fd >= 0 && fd == BOARD_FD.load(SeqCst)
}

/// The root this process would take a JOIN request from: its configured
/// root, or, in a child the root forked that has not yet learnt it, its
/// parent.
fn expected_root() -> i32 {
    match crate::config::get().root {
        0 => sys::getppid(),
        r => r,
    }
}

/// Whether this signal is the root's request to join the barrier; if so it
/// is noted for [`take_request`].
///
/// # Safety
/// `info` is the kernel's siginfo for the signal (or null).
pub unsafe fn note_request(info: *const libc::siginfo_t) -> bool {
    if info.is_null() || (*info).si_code != libc::SI_QUEUE {
        return false;
    }
    let value = (*info).si_value().sival_ptr as usize as u64;
    if value >> 48 != JOIN_TAG || (*info).si_pid() != expected_root() {
        return false;
    }
    REQUEST.store(value, SeqCst);
    true
}

/// The JOIN request that started this checkpoint, if any.
pub fn take_request() -> u64 {
    REQUEST.swap(0, SeqCst)
}

fn now() -> u64 {
    sys::clock_ns(sys::CLOCK_MONOTONIC)
}

/// Maps the board of `fd` shared.
fn map(fd: i32) -> Result<&'static Board, Errno> {
    // SAFETY: a new shared mapping where the kernel chooses; nothing is
    // replaced.
    let at = unsafe { sys::mmap(0, BOARD_SIZE, sys::PROT_READ | sys::PROT_WRITE, sys::MAP_SHARED, fd, 0) }?;
    BOARD_AT.store(at, SeqCst);
    // SAFETY: BOARD_SIZE bytes of shared memory, zero-filled by the kernel
    // and used only through atomics, for as long as the mapping stays
    // (unmap() ends every use first).
    Ok(unsafe { &*(at as *const Board) })
}

fn unmap() {
    let at = BOARD_AT.swap(0, SeqCst);
    if at != 0 {
        // SAFETY: the board's own mapping; no reference to it is used after.
        let _ = unsafe { sys::munmap(at, BOARD_SIZE) };
    }
}

fn changed(board: &Board) {
    board.changes.fetch_add(1, SeqCst);
    sys::futex_wake_shared(&board.changes, u32::MAX);
}

/// Whether process `pid` is gone or has exited (a zombie), with its wait
/// status then.
fn exited(pid: u32, buf: &mut [u8]) -> Option<u32> {
    let mut p = [0u8; 32];
    let path = msg::c_path(&mut p, format_args!("/proc/{pid}/stat"), c"/proc/0/stat");
    match procfs::stat_fields(path, buf) {
        Ok((b'Z' | b'X', f)) => Some(f[52] as u32),
        Ok(_) => None,
        Err(_) => Some(0),
    }
}

/// The root's side of one job checkpoint.
pub struct Root<'t> {
    board: &'static Board,
    memfd: sys::OwnedFd,
    /// Slots handed out on the board (every process found).
    n: usize,
    /// Members in the table (the processes still there once all stopped),
    /// and the board slot of each.
    n_members: usize,
    slot_of: [u16; MAX_MEMBERS as usize],
    members: &'t mut [Member],
    links: &'t mut [Link],
    n_links: usize,
    entries: &'t mut [Entry],
    shared: &'t mut [SharedMap],
    n_shared: usize,
    map_entries: &'t mut [MapEntry],
    maps_text: &'t mut [u8],
    strings: JobStrings<'t>,
}

/// The job's string table (command lines, pipe contents).
struct JobStrings<'t> {
    bytes: &'t mut [u8],
    len: usize,
}

impl Strings for JobStrings<'_> {
    fn add(&mut self, bytes: &[u8]) -> Option<ckpt_image::StrRef> {
        let dst = self.bytes.get_mut(self.len..self.len + bytes.len())?;
        dst.copy_from_slice(bytes);
        let s = ckpt_image::StrRef { offset: self.len as u32, len: bytes.len() as u32 };
        self.len += bytes.len();
        Some(s)
    }
}

/// Starts a job checkpoint in the root: the board, with the root in slot 0.
pub fn start(t: &mut JobTables) -> Result<Root<'_>, Failure> {
    let memfd = sys::events::memfd_create(c"ckpt-job", sys::events::MFD_CLOEXEC)
        .map_err(failed("creating the job's barrier"))?;
    BOARD_FD.store(memfd.as_raw(), SeqCst);
    let board = sys::ftruncate(&memfd, BOARD_SIZE).and_then(|()| map(memfd.as_raw()));
    let board = match board {
        Ok(b) => b,
        Err(e) => {
            BOARD_FD.store(-1, SeqCst);
            return Err(failed("creating the job's barrier")(e));
        }
    };
    let mut nonce = [0u8; 2];
    let _ = sys::getrandom(&mut nonce);
    board.nonce.store(u16::from_le_bytes(nonce) as u32, SeqCst);
    board.slots[0].pid.store(sys::getpid() as u32, SeqCst);
    board.slots[0].state.store(ARRIVED, SeqCst);
    board.phase.store(GATHER, SeqCst);
    let strings = JobStrings { bytes: &mut t.strings, len: 0 };
    Ok(Root {
        board,
        memfd,
        n: 1,
        n_members: 0,
        slot_of: [0; MAX_MEMBERS as usize],
        members: &mut t.members,
        links: &mut t.links,
        n_links: 0,
        entries: &mut t.entries,
        shared: &mut t.shared,
        n_shared: 0,
        map_entries: &mut t.map_entries,
        maps_text: &mut t.maps_text,
        strings,
    })
}

impl Root<'_> {
    /// How many processes the job has (zombies included; before
    /// [`describe`](Self::describe): found so far).
    pub fn len(&self) -> usize {
        if self.n_members == 0 {
            self.n
        } else {
            self.n_members
        }
    }

    fn slot(&self, i: usize) -> &Slot {
        &self.board.slots[i]
    }

    fn known(&self, pid: u32) -> bool {
        self.board.slots[..self.n].iter().any(|s| s.pid.load(SeqCst) == pid)
    }

    /// Stops every descendant at the barrier: lists `/proc` again and again
    /// until a listing finds no new descendant and every one found has
    /// arrived (or exited). A descendant that cannot take the request yet
    /// (just exec'ed, or never: a static executable) is waited for, up to
    /// the timeout, as is one that does not arrive.
    pub fn gather(&mut self, signal: i32, dents: &mut [u8]) -> Result<(), Failure> {
        let start = now();
        let value = JOIN_TAG << 48 | (self.board.nonce.load(SeqCst) as u64) << 32 | self.memfd.as_raw() as u32 as u64;
        loop {
            let (new, unarmed) = self.scan(signal, value, dents)?;
            let waiting = self.wait_arrivals(start, dents)?;
            if new == 0 && unarmed == 0 && waiting == 0 {
                return Ok(());
            }
            // A statically linked program never takes it: refused after a
            // short grace (in which it may exit), not the whole timeout.
            let static_one = unarmed != 0 && crate::exec::is_static(unarmed);
            if now() - start > if static_one { STATIC_GRACE_NS } else { ARRIVAL_TIMEOUT_NS } {
                let pid = if unarmed != 0 { unarmed } else { waiting };
                return Err(Failure::member(
                    pid,
                    if unarmed != 0 {
                        " never took the checkpoint signal (a static executable, or a program run without the \
                         capture library: it cannot be in the job)"
                    } else {
                        " did not stop for the checkpoint"
                    },
                ));
            }
            if new == 0 {
                let _ = sys::futex_wait_shared(&self.board.changes, self.board.changes.load(SeqCst), 2_000_000);
            }
        }
    }

    /// One pass over `/proc`: each new descendant is added (a zombie as
    /// such) and signalled. Returns how many were new, and the pid of one
    /// that does not catch the signal yet (0: none).
    fn scan(&mut self, signal: i32, value: u64, dents: &mut [u8]) -> Result<(usize, u32), Failure> {
        let mut dir = procfs::Tasks::processes().map_err(failed("listing the processes"))?;
        let (list, buf) = dents.split_at_mut(2048);
        let mut pids = [0u32; 64];
        let (mut new, mut unarmed) = (0, 0);
        loop {
            let n = dir.next_batch(list, &mut pids).map_err(failed("listing the processes"))?;
            if n == 0 {
                break;
            }
            for &pid in &pids[..n] {
                if self.known(pid) {
                    continue;
                }
                let mut p = [0u8; 32];
                let path = msg::c_path(&mut p, format_args!("/proc/{pid}/stat"), c"/proc/0/stat");
                let Ok((state, f)) = procfs::stat_fields(path, buf) else { continue };
                if !self.known(f[4] as u32) {
                    continue; // not a child of a member
                }
                if self.n == MAX_MEMBERS as usize {
                    return Err(refuse("the job has more processes than an image can hold (1024)"));
                }
                let slot = self.slot(self.n);
                if state == b'Z' || state == b'X' {
                    slot.len.store(f[52], SeqCst); // its wait status
                    slot.state.store(ZOMBIE, SeqCst);
                } else if catches(pid, signal, buf) {
                    slot.state.store(SIGNALED, SeqCst);
                    slot.pid.store(pid, SeqCst);
                    match sys::sigqueue(pid as i32, signal, value) {
                        Ok(()) => {}
                        Err(Errno::ESRCH) => continue, // gone meanwhile
                        Err(e) => return Err(failed("signalling a process of the job")(e)),
                    }
                } else {
                    unarmed = pid;
                    continue;
                }
                slot.pid.store(pid, SeqCst);
                self.n += 1;
                new += 1;
            }
        }
        Ok((new, unarmed))
    }

    /// Waits until every signalled member has arrived or exited; returns the
    /// pid of one still on its way at the timeout (0: none).
    fn wait_arrivals(&self, start: u64, buf: &mut [u8]) -> Result<u32, Failure> {
        loop {
            let changes = self.board.changes.load(SeqCst);
            let mut waiting = 0;
            for s in &self.board.slots[1..self.n] {
                if s.state.load(SeqCst) == SIGNALED {
                    let pid = s.pid.load(SeqCst);
                    match exited(pid, buf) {
                        Some(status) => {
                            s.len.store(status as u64, SeqCst);
                            s.state.store(ZOMBIE, SeqCst);
                        }
                        None => waiting = pid,
                    }
                }
            }
            if waiting == 0 || now() - start > ARRIVAL_TIMEOUT_NS {
                return Ok(waiting);
            }
            let _ = sys::futex_wait_shared(&self.board.changes, changes, TICK_NS);
        }
    }

    /// With every process stopped: each one's place in the tree and its
    /// command line, into the job table; then the members capture.
    pub fn describe(&mut self, dents: &mut [u8]) -> Result<(), Failure> {
        let board = self.board;
        for slot in 0..self.n {
            let s = &board.slots[slot];
            let pid = s.pid.load(SeqCst);
            let zombie = s.state.load(SeqCst) == ZOMBIE;
            let mut p = [0u8; 40];
            let path = msg::c_path(&mut p, format_args!("/proc/{pid}/stat"), c"/proc/0/stat");
            let f = match procfs::stat_fields(path, dents) {
                Ok((_, f)) => f,
                // A process that exited and was reaped before its parent
                // stopped: not in the job.
                Err(_) if zombie => continue,
                Err(_) => [0; 53],
            };
            let i = self.n_members;
            self.slot_of[i] = slot as u16;
            self.n_members += 1;
            let path = msg::c_path(&mut p, format_args!("/proc/{pid}/cmdline"), c"/proc/0/cmdline");
            let cmd_len = procfs::read_file(path, dents).or_else(|e| if e == Errno::E2BIG { Ok(4096) } else { Err(e) });
            let cmd = &dents[..cmd_len.unwrap_or(0).min(4096)];
            let command = self.strings.add(cmd).unwrap_or_default();
            self.members[i] = Member {
                pid,
                ppid: f[4] as u32,
                pgid: f[5] as u32,
                sid: f[6] as u32,
                state: if zombie { MEMBER_ZOMBIE } else { MEMBER_RUNNING },
                wait_status: if zombie { f[52] as u32 } else { 0 },
                offset: 0,
                len: 0,
                command,
            };
        }
        self.board.phase.store(CAPTURE, SeqCst);
        sys::futex_wake_shared(&self.board.phase, u32::MAX);
        Ok(())
    }

    /// Waits until every running member has reached `state` (or failed, or
    /// died: the checkpoint fails, naming it).
    fn wait_all(&self, state: u32, buf: &mut [u8]) -> Result<(), Failure> {
        loop {
            let changes = self.board.changes.load(SeqCst);
            let mut pending = false;
            for s in &self.board.slots[1..self.n] {
                let st = s.state.load(SeqCst);
                let pid = s.pid.load(SeqCst);
                if st == FAILED {
                    return Err(Failure::member(pid, " could not be captured (it said why above)"));
                }
                if st != ZOMBIE && st < state {
                    if exited(pid, buf).is_some() {
                        return Err(Failure::member(pid, " ended during the checkpoint"));
                    }
                    pending = true;
                }
            }
            if !pending {
                return Ok(());
            }
            let _ = sys::futex_wait_shared(&self.board.changes, changes, TICK_NS);
        }
    }

    /// Once the root's own image is laid out (`root_len` bytes): waits for
    /// every member's length, and gives each its place in the job file.
    /// Returns the root's place.
    pub fn lay_out(&mut self, root_len: u64, buf: &mut [u8]) -> Result<u64, Failure> {
        self.wait_all(CAPTURED, buf)?;
        // Every member is stopped and captured: what ties them together.
        let members = &self.members[..self.n_members];
        self.n_links = links::capture(members, self.entries, self.links, &mut self.strings, buf)
            .map_err(failed("finding the descriptors shared by the job's processes"))?;
        self.n_shared = links::capture_shared(members, self.map_entries, self.shared, self.maps_text)
            .map_err(failed("finding the memory shared by the job's processes"))?;
        let mut next = self.header().members_offset();
        for i in 0..self.n_members {
            if self.members[i].state == MEMBER_ZOMBIE {
                continue;
            }
            let slot = self.slot(self.slot_of[i] as usize);
            let len = if i == 0 { root_len } else { slot.len.load(SeqCst) };
            slot.base.store(next, SeqCst);
            self.members[i].offset = next;
            self.members[i].len = len;
            next = page_up(next + len);
        }
        Ok(self.members[0].offset)
    }

    /// The job header for the tables as they are (counts, no checksums).
    fn header(&self) -> JobHeader {
        JobHeader::new(self.n_members as u32, self.n_links as u32, self.n_shared as u32, self.strings.len as u64)
    }

    /// Lets the members write into `fd` (the temporary image file).
    pub fn start_writing(&self, fd: i32) {
        self.board.temp_fd.store(fd as u32, SeqCst);
        self.board.phase.store(WRITE, SeqCst);
        sys::futex_wake_shared(&self.board.phase, u32::MAX);
    }

    /// Waits for every member's image, then writes the job header and
    /// table at the start of `fd` and gives the file its length.
    pub fn finish_writing(&self, fd: i32, created_ns: u64, buf: &mut [u8]) -> Result<u64, Failure> {
        self.wait_all(WRITTEN, buf)?;
        let members = &self.members[..self.n_members];
        let links = &self.links[..self.n_links];
        let shared = &self.shared[..self.n_shared];
        let strings = &self.strings.bytes[..self.strings.len];
        let mut h = self.header();
        h.created_ns = created_ns;
        h.file_len = members.iter().map(|m| m.offset + m.len).max().unwrap_or(0);
        h.table_checksum =
            checksum_parts(&[bytes_of_slice(members), bytes_of_slice(links), bytes_of_slice(shared), strings]);
        h.header_checksum = h.compute_checksum();
        let mut pos = 0;
        for part in [bytes_of(&h), bytes_of_slice(members), bytes_of_slice(links), bytes_of_slice(shared), strings] {
            // SAFETY: the kernel reads [part] of our own memory.
            unsafe { sys::pwrite_all(fd, part.as_ptr() as u64, part.len() as u64, pos) }
                .map_err(|_| refuse("writing the job table"))?;
            pos += part.len() as u64;
        }
        sys::ftruncate(fd, h.file_len).map_err(failed("sizing the image file"))?;
        Ok(h.file_len)
    }

    /// Ends the job checkpoint: the members stop or resume (`ok`), or
    /// resume (the checkpoint failed).
    pub fn end(self, ok: bool) {
        self.board.phase.store(if ok { COMMIT } else { ABORT }, SeqCst);
        sys::futex_wake_shared(&self.board.phase, u32::MAX);
        unmap();
        BOARD_FD.store(-1, SeqCst);
        drop(self.memfd);
    }

    /// Writes "PID (command line)" of the member with that pid.
    pub fn describe_member(l: &mut Line, pid: u32, buf: &mut [u8]) {
        crate::children::describe(l, crate::children::Child { pid, exited: false }, buf);
    }
}

/// Whether process `pid` catches `signal` (the library's handler is in).
fn catches(pid: u32, signal: i32, buf: &mut [u8]) -> bool {
    let mut p = [0u8; 32];
    let path = msg::c_path(&mut p, format_args!("/proc/{pid}/status"), c"/proc/0/status");
    let Ok(n) = procfs::read_file(path, buf) else { return false };
    sys::status::hex(&buf[..n], b"SigCgt").is_some_and(|m| m & 1 << (signal - 1) != 0)
}

/// A member's side of one job checkpoint.
pub struct Joined {
    board: &'static Board,
    slot: usize,
    root: i32,
}

/// Joins the barrier the root asked for (`value`: its request): maps its
/// board and says this process has arrived. None if the request is stale
/// (that checkpoint is over).
pub fn join(value: u64) -> Option<Joined> {
    let root = expected_root();
    let mut p = [0u8; 48];
    let fd = value as u32;
    let path: &CStr = msg::c_path(&mut p, format_args!("/proc/{root}/fd/{fd}"), c"/proc/0/fd/0");
    let memfd = sys::open(path, sys::O_RDWR).ok()?;
    let st = sys::fstat(&memfd);
    let board = match st {
        Ok(st) if st.size as u64 == BOARD_SIZE => map(memfd.as_raw()).ok(),
        _ => None,
    };
    drop(memfd);
    let board = board?;
    let me = sys::getpid() as u32;
    let slot = board.slots.iter().position(|s| s.pid.load(SeqCst) == me);
    let fresh = board.nonce.load(SeqCst) as u64 == (value >> 32) & 0xffff && board.phase.load(SeqCst) == GATHER;
    match slot {
        Some(slot) if fresh && board.slots[slot].state.load(SeqCst) == SIGNALED => {
            board.slots[slot].state.store(ARRIVED, SeqCst);
            changed(board);
            Some(Joined { board, slot, root })
        }
        _ => {
            unmap();
            None
        }
    }
}

impl Joined {
    /// Waits until the root's phase is at least `phase` (or ABORT); a root
    /// that is gone aborts.
    fn wait_phase(&self, phase: u32) -> u32 {
        loop {
            let now = self.board.phase.load(SeqCst);
            if now >= phase {
                return now;
            }
            if sys::kill(self.root, 0) == Err(Errno::ESRCH) {
                return ABORT;
            }
            let _ = sys::futex_wait_shared(&self.board.phase, now, TICK_NS);
        }
    }

    /// Waits at the barrier until every process of the job is stopped.
    pub fn wait_all_stopped(&self) -> Result<(), Failure> {
        match self.wait_phase(CAPTURE) {
            CAPTURE => Ok(()),
            _ => Err(aborted()),
        }
    }

    fn set(&self, state: u32) {
        self.board.slots[self.slot].state.store(state, SeqCst);
        changed(self.board);
    }

    /// Says this member failed: the root abandons the checkpoint.
    pub fn fail(&self) {
        self.set(FAILED);
    }

    /// Gives the root this member's image length and waits for its place
    /// and the file: returns the root's temporary file, opened here, and
    /// the image's base offset in it.
    pub fn place(&self, len: u64) -> Result<(sys::OwnedFd, u64), Failure> {
        self.board.slots[self.slot].len.store(len, SeqCst);
        self.set(CAPTURED);
        if self.wait_phase(WRITE) != WRITE {
            return Err(aborted());
        }
        let mut p = [0u8; 48];
        let (root, fd) = (self.root, self.board.temp_fd.load(SeqCst));
        let path = msg::c_path(&mut p, format_args!("/proc/{root}/fd/{fd}"), c"/proc/0/fd/0");
        let temp = sys::open(path, sys::O_WRONLY).map_err(failed("opening the job's image file"))?;
        Ok((temp, self.board.slots[self.slot].base.load(SeqCst)))
    }

    /// Says this member's image is written, and waits for the root's word.
    pub fn written(&self) -> Result<(), Failure> {
        self.set(WRITTEN);
        match self.wait_phase(COMMIT) {
            COMMIT => Ok(()),
            _ => Err(aborted()),
        }
    }

    /// Leaves the board (end of the checkpoint).
    pub fn leave(self) {
        unmap();
    }
}

/// The refusal of a member whose root abandoned the checkpoint: the root
/// says why.
pub const ABORTED: &str = "the job's checkpoint was abandoned";

fn aborted() -> Failure {
    refuse(ABORTED)
}

/// Writes the pid and command of the member named by a failure.
pub fn name_member(l: &mut Line, pid: u32, buf: &mut [u8]) {
    let _ = write!(l, "process ");
    Root::describe_member(l, pid, buf);
}
