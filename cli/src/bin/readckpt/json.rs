//! The JSON output (`--json`; the schema is in docs/FORMAT.md): the image
//! as serde structs, one member per line of the top object, and one line
//! per item of its lists of records (threads, signals, regions, files).
//!
//! Member order is the structs' field order; tests/fixtures/readckpt-json.shape
//! pins the names, types and nesting (tests `json_shape_is_pinned`).

use crate::describe::*;
use crate::{Report, Verdict};
use ckpt_image::{xstate, Fd, FdKind, Meta, MmLayout, Region, Thread, NSIG};
use ckpt_image::{PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS, REGION_GROWSDOWN, REGION_SHARED};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

/// Version of the `--json` output layout (see docs/FORMAT.md).
const SCHEMA: u32 = 1;

/// Prints the report: the top object one member per line, a list of
/// records one record per line, everything else compact.
pub fn write(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    write_value(out, &serde_json::to_value(Image::of(rep))?)
}

/// [`write`]'s layout of any object (a job image's report too).
pub fn write_value(out: &mut dyn Write, top: &Value) -> io::Result<()> {
    let Value::Object(top) = top else { unreachable!("the reports are structs") };
    let mut sep = "{\n";
    for (key, value) in top {
        write!(out, "{sep}  {}: ", Value::from(key.as_str()))?;
        match value {
            Value::Array(items) if items.first().is_some_and(Value::is_object) => {
                let mut sep = "[\n    ";
                for item in items {
                    write!(out, "{sep}{item}")?;
                    sep = ",\n    ";
                }
                write!(out, "\n  ]")?;
            }
            value => write!(out, "{value}")?,
        }
        sep = ",\n";
    }
    writeln!(out, "\n}}")
}

/// A bit set or a raw register word: a hex string, `"0x3"`.
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

/// A byte string from the image: UTF-8, invalid sequences as U+FFFD.
pub struct Text<'a>(pub &'a [u8]);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(self.0))
    }
}

/// An object whose member names are a fixed table's (timers, limits).
struct Named<T>(Vec<(&'static str, T)>);

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// An x86-64 level by name, or null for none.
fn level(level: u32) -> Option<&'static str> {
    (level != 0).then(|| xstate::level_name(level))
}

/// A resource limit: a number, or null for unlimited (`RLIM_INFINITY`).
fn limit(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

#[derive(Serialize)]
struct Image<'a> {
    schema: u32,
    file: Text<'a>,
    format_version: u32,
    arch: &'static str,
    page_size: u32,
    created_ns: u64,
    created: String,
    capture_ns: u64,
    pid: u32,
    argv: Vec<Text<'a>>,
    cwd: Text<'a>,
    exe: Text<'a>,
    comm: Text<'a>,
    umask: u32,
    xfeatures: Hex,
    xfeature_names: Vec<&'static str>,
    xsave_size: u32,
    required_xfeatures: Hex,
    required_names: Vec<&'static str>,
    required_level: &'static str,
    portable_level: Option<&'static str>,
    cpu: Text<'a>,
    cpu_level: Option<&'static str>,
    file_len: u64,
    meta_offset: u64,
    meta_len: u64,
    data_offset: u64,
    data_len: u64,
    leader: u32,
    mm: Named<u64>,
    threads: Vec<JThread>,
    signals: Vec<Signal>,
    regions: Vec<JRegion<'a>>,
    totals: Totals,
    process: Process,
    files: Vec<File<'a>>,
    chain: Vec<crate::chain::Link<'a>>,
    compression: Compression,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<Verify>,
}

/// How much of the data is stored compressed (`ratio`: memory bytes per
/// stored byte, to three decimals).
#[derive(Serialize)]
struct Compression {
    compressed_extents: u64,
    memory: u64,
    stored: u64,
    ratio: f64,
}

impl From<&ckpt_image::DataTotals> for Compression {
    fn from(t: &ckpt_image::DataTotals) -> Compression {
        Compression {
            compressed_extents: t.compressed,
            memory: t.memory,
            stored: t.stored,
            ratio: (t.ratio() * 1000.0).round() / 1000.0,
        }
    }
}

impl<'a> Image<'a> {
    fn of(rep: &'a Report) -> Image<'a> {
        let m = rep.meta;
        let h = &m.header;
        let (mut size, mut stored) = (0, 0);
        for r in m.regions() {
            size += r.len();
            stored += m.stored_bytes(&r);
        }
        Image {
            schema: SCHEMA,
            file: Text(rep.name.as_bytes()),
            format_version: h.version,
            arch: "x86_64",
            page_size: h.page_size,
            created_ns: h.created_ns,
            created: iso8601(h.created_ns),
            capture_ns: h.capture_ns,
            pid: h.pid,
            argv: rep.argv().into_iter().map(Text).collect(),
            cwd: Text(rep.string(h.cwd)),
            exe: Text(rep.string(h.exe)),
            comm: Text(rep.comm()),
            umask: h.umask,
            xfeatures: Hex(h.xfeatures),
            xfeature_names: xfeature_names(h.xfeatures),
            xsave_size: h.xsave_size,
            required_xfeatures: Hex(h.required_xfeatures),
            required_names: xfeature_names(h.required_xfeatures),
            required_level: xstate::level_name(xstate::required_level(h)),
            portable_level: level(h.portable_level),
            cpu: Text(until_nul(&h.cpu_brand)),
            cpu_level: level(h.cpu_level),
            file_len: h.file_len,
            meta_offset: h.meta_offset,
            meta_len: h.meta_len,
            data_offset: h.data_offset,
            data_len: h.data_len,
            leader: h.leader,
            mm: mm(&h.mm),
            threads: m.threads().map(|t| JThread::from(&t)).collect(),
            signals: Signal::all(m),
            regions: m.regions().map(|r| JRegion::of(m, &r)).collect(),
            totals: Totals { regions: m.n_regions(), extents: h.n_extents, size, stored, fds: m.n_fds() },
            process: Process::of(m),
            files: m.fds().map(|f| File::of(m, &f)).collect(),
            chain: crate::chain::json(m),
            compression: Compression::from(&m.data_totals()),
            verify: rep.verdict.as_ref().map(|v| Verify::of(v, rep.refused.as_deref())),
        }
    }
}

/// The mm layout (prctl PR_SET_MM_MAP's fields), named as the kernel names them.
fn mm(mm: &MmLayout) -> Named<u64> {
    Named(vec![
        ("start_code", mm.start_code),
        ("end_code", mm.end_code),
        ("start_data", mm.start_data),
        ("end_data", mm.end_data),
        ("start_brk", mm.start_brk),
        ("brk", mm.brk),
        ("start_stack", mm.start_stack),
        ("arg_start", mm.arg_start),
        ("arg_end", mm.arg_end),
        ("env_start", mm.env_start),
        ("env_end", mm.env_end),
    ])
}

#[derive(Serialize)]
struct JThread {
    tid: u32,
    tid_offset: u32,
    rip: u64,
    rsp: u64,
    rflags: Hex,
    fs_base: u64,
    gs_base: u64,
    rseq_area: u64,
    rseq_len: u32,
    rseq_sig: Hex,
    clear_child_tid: u64,
    robust_list: u64,
    robust_len: u64,
    sigmask: Hex,
    ucontext: u64,
    gregs: Vec<Hex>,
    comm: String,
    pending: Hex,
    fpstate: u64,
    xstate_bv: Hex,
    xinuse: Hex,
}

impl From<&Thread> for JThread {
    fn from(t: &Thread) -> JThread {
        JThread {
            tid: t.tid,
            tid_offset: t.tid_offset,
            rip: t.gregs[REG_RIP],
            rsp: t.gregs[REG_RSP],
            rflags: Hex(t.gregs[REG_EFL]),
            fs_base: t.fs_base,
            gs_base: t.gs_base,
            rseq_area: t.rseq_area,
            rseq_len: t.rseq_len,
            rseq_sig: Hex(t.rseq_sig as u64),
            clear_child_tid: t.clear_child_tid,
            robust_list: t.robust_list,
            robust_len: t.robust_len,
            sigmask: Hex(t.sigmask),
            ucontext: t.ucontext,
            gregs: t.gregs.iter().map(|&g| Hex(g)).collect(),
            comm: String::from_utf8_lossy(until_nul(&t.comm)).into_owned(),
            pending: Hex(t.pending),
            fpstate: t.fpstate,
            xstate_bv: Hex(t.xstate_bv),
            xinuse: Hex(t.xinuse),
        }
    }
}

/// A signal whose disposition is not SIG_DFL.
#[derive(Serialize)]
struct Signal {
    signo: usize,
    name: String,
    action: &'static str,
    handler: u64,
    flags: Hex,
    mask: Hex,
}

impl Signal {
    fn all(m: &Meta) -> Vec<Signal> {
        let set = (1..NSIG).map(|sig| (sig, m.sigaction(sig))).filter(|(_, a)| a.handler != 0);
        set.map(|(sig, a)| Signal {
            signo: sig,
            name: signal_name(sig),
            action: if a.handler == 1 { "ignore" } else { "handler" },
            handler: a.handler,
            flags: Hex(a.flags),
            mask: Hex(a.mask),
        })
        .collect()
    }
}

#[derive(Serialize)]
struct JRegion<'a> {
    start: u64,
    end: u64,
    range: String,
    perms: String,
    kind: &'static str,
    shared: bool,
    growsdown: bool,
    size: u64,
    stored: u64,
    file_offset: u64,
    path: Text<'a>,
    extents: Vec<JExtent>,
    file_id: FileId,
}

#[derive(Serialize)]
struct JExtent {
    addr: u64,
    len: u64,
    file_pos: u64,
    checksum: Hex,
    stored_len: u64,
    /// Its encoding's name ("raw", "lz4").
    encoding: &'static str,
    /// Where its bytes are: 0 this image, k its k-th parent in the chain.
    source: u32,
}

#[derive(Serialize)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: u64,
}

impl<'a> JRegion<'a> {
    fn of(m: &'a Meta, r: &Region) -> JRegion<'a> {
        let extents = m.extents_of(r);
        JRegion {
            start: r.start,
            end: r.end,
            range: format!("{:08x}-{:08x}", r.start, r.end),
            perms: perms(r),
            kind: kind_name(r),
            shared: r.flags & REGION_SHARED != 0,
            growsdown: r.flags & REGION_GROWSDOWN != 0,
            size: r.len(),
            stored: m.stored_bytes(r),
            file_offset: r.file_offset,
            path: Text(m.string(r.path).unwrap_or_default()),
            extents: extents
                .map(|e| JExtent {
                    addr: e.addr,
                    len: e.len,
                    file_pos: e.file_pos,
                    checksum: Hex(e.checksum),
                    stored_len: e.stored_len,
                    encoding: e.encoding_name(),
                    source: e.source,
                })
                .collect(),
            file_id: FileId { dev: r.file.dev, ino: r.file.ino, size: r.file.size, mtime_ns: r.file.mtime_ns },
        }
    }
}

#[derive(Serialize)]
struct Totals {
    regions: usize,
    extents: u32,
    size: u64,
    stored: u64,
    fds: usize,
}

#[derive(Serialize)]
struct ITimer {
    value_ns: u64,
    interval_ns: u64,
}

#[derive(Serialize)]
struct Limit {
    soft: Option<u64>,
    hard: Option<u64>,
}

/// Process-wide state: members only for the fields the `valid` bits say
/// were recorded.
#[derive(Serialize)]
struct Process {
    valid: Hex,
    #[serde(skip_serializing_if = "Option::is_none")]
    itimers: Option<Named<ITimer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rlimits: Option<Named<Limit>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<Hex>,
    #[serde(flatten)]
    prctl: Option<Prctl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    posix_timers: Option<Vec<PosixTimer>>,
}

/// A POSIX timer (`timer_create`).
#[derive(Serialize)]
struct PosixTimer {
    id: u32,
    clock: i32,
    notify: u32,
    signal: u32,
    tid: u32,
    value: Hex,
    value_ns: u64,
    interval_ns: u64,
}

#[derive(Serialize)]
struct Prctl {
    pdeathsig: u32,
    dumpable: u32,
    child_subreaper: u32,
}

impl Process {
    fn of(m: &Meta) -> Process {
        let p = &m.header.process;
        let has = |bit: u32| p.valid & bit != 0;
        let timers = ITIMER_NAMES.iter().zip(&p.itimers);
        let limits = RLIMIT_NAMES.iter().zip(&p.rlimits);
        Process {
            valid: Hex(p.valid as u64),
            itimers: has(PROCESS_ITIMERS).then(|| {
                Named(timers.map(|(&n, t)| (n, ITimer { value_ns: t.value_ns, interval_ns: t.interval_ns })).collect())
            }),
            rlimits: has(PROCESS_RLIMITS).then(|| {
                Named(limits.map(|(&n, &[soft, hard])| (n, Limit { soft: limit(soft), hard: limit(hard) })).collect())
            }),
            pending: has(PROCESS_PENDING).then_some(Hex(p.pending)),
            prctl: has(PROCESS_PRCTL).then_some(Prctl {
                pdeathsig: p.pdeathsig,
                dumpable: p.dumpable,
                child_subreaper: p.child_subreaper,
            }),
            posix_timers: has(ckpt_image::PROCESS_TIMERS).then(|| {
                m.timers()
                    .iter()
                    .map(|t| PosixTimer {
                        id: t.id,
                        clock: t.clock,
                        notify: t.notify,
                        signal: t.signal,
                        tid: t.tid,
                        value: Hex(t.value),
                        value_ns: t.value_ns,
                        interval_ns: t.interval_ns,
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Serialize)]
struct File<'a> {
    fd: i32,
    kind: &'static str,
    restored: bool,
    access: &'static str,
    append: bool,
    nonblock: bool,
    cloexec: bool,
    flags: Hex,
    fd_flags: Hex,
    offset: u64,
    path: Text<'a>,
    data_len: u32,
    state: String,
    pipe: u64,
    size: u64,
    dev: u64,
    ino: u64,
    mtime_ns: u64,
    mode: u32,
}

impl<'a> File<'a> {
    fn of(m: &'a Meta, f: &Fd) -> File<'a> {
        File {
            fd: f.fd,
            kind: fd_kind_name(f),
            restored: f.kind() != Some(FdKind::Lost),
            access: fd_access(f),
            append: fd_append(f),
            nonblock: fd_nonblock(f),
            cloexec: fd_cloexec(f),
            flags: Hex(f.flags as u64),
            fd_flags: Hex(f.fd_flags as u64),
            offset: f.offset,
            path: Text(m.string(f.path).unwrap_or_default()),
            data_len: f.data.len,
            state: f.kind().and_then(|k| event_state(m, f, k)).unwrap_or_default(),
            pipe: f.pipe,
            size: f.size,
            dev: f.dev,
            ino: f.ino,
            mtime_ns: f.mtime_ns,
            mode: f.mode,
        }
    }
}

/// What `--verify` found: every extent right (and `ok` as the exit status
/// says, with the reason when it fails anyway), or the first bad extent.
#[derive(Serialize)]
#[serde(untagged)]
enum Verify {
    Good {
        ok: bool,
        extents: u64,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Bad {
        ok: bool,
        extent: usize,
        region: usize,
        addr: u64,
        len: u64,
        file_pos: u64,
        expected: Hex,
        /// null: compressed data that cannot be decoded.
        computed: Option<Hex>,
    },
}

impl Verify {
    fn of(v: &Verdict, refused: Option<&str>) -> Verify {
        match v {
            Verdict::Good { extents, bytes } => Verify::Good {
                ok: refused.is_none(),
                extents: *extents,
                bytes: *bytes,
                error: refused.map(String::from),
            },
            Verdict::Bad(b) => Verify::Bad {
                ok: false,
                extent: b.index,
                region: b.region,
                addr: b.extent.addr,
                len: b.extent.len,
                file_pos: b.extent.file_pos,
                expected: Hex(b.extent.checksum),
                computed: b.computed.map(Hex),
            },
        }
    }
}
