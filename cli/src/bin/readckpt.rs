//! readckpt: shows what a ckpt image holds.
//!
//! It reads the header and the metadata tables only (the data too with
//! `--verify`), validates them with the format crate, and prints them as text
//! for a human or as JSON for a program (the schema is in docs/FORMAT.md).
//!
//! Every failure is one line on stderr and exit status 1 (2 for usage
//! errors). Output goes through one buffered `write!` chain so that a closed
//! pipe (`readckpt img | head -1`) ends the program quietly instead of
//! aborting it (the workspace builds with panic=abort).

use ckpt_image::{xstate, REGION_GROWSDOWN, REGION_SHARED};
use ckpt_image::{Extent, Fd, FdKind, Header, Meta, ProcessState, Region, RegionKind, Thread};
use ckpt_image::{HEADER_SIZE, NLIMITS, NSIG, PROT_EXEC, PROT_READ, PROT_WRITE};
use ckpt_image::{PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

const USAGE: &str = "\
Usage: readckpt [--verify] [--json] IMAGE

Prints what a ckpt checkpoint image holds: the process it came from, its
kernel state (timers, limits, pending signals), its threads, its signal
dispositions, its open files and its memory regions. Only the header and the
metadata are read, and validated, unless --verify is given.

Options:
  --verify    also read every stored extent (decoding compressed ones) and
              check its xxh3 checksum, and check that this CPU has the
              register state it needs
  --json      print JSON instead of text (schema: docs/FORMAT.md)
  --help      print this help and exit
  --version   print the version and exit

Example:
  readckpt --verify myckpt.dat

Exit status: 0 when the image is valid, 1 when it is not or cannot be read
(one line on stderr says why), 2 on a usage error.
";

/// glibc's REG_* indices into `uc_mcontext.gregs`.
const REG_RSP: usize = 15;
const REG_RIP: usize = 16;
const REG_EFL: usize = 17;

/// Version of the `--json` output layout (see docs/FORMAT.md).
const JSON_SCHEMA: u32 = 1;

#[path = "readckpt/chain.rs"]
mod chain;

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let code = run(&args, &mut out, &mut io::stderr());
    std::process::exit(code);
}

// ---------------------------------------------------------------- arguments

struct Options {
    path: OsString,
    json: bool,
    verify: bool,
}

enum Command {
    Help,
    Version,
    Inspect(Options),
}

fn parse_args(args: &[OsString]) -> Result<Command, String> {
    let (mut json, mut verify, mut path, mut options_done) = (false, false, None, false);
    for arg in args {
        match arg.to_str() {
            Some("--help" | "-h") if !options_done => return Ok(Command::Help),
            Some("--version" | "-V") if !options_done => return Ok(Command::Version),
            Some("--json") if !options_done => json = true,
            Some("--verify") if !options_done => verify = true,
            Some("--") if !options_done => options_done = true,
            Some(s) if !options_done && s.starts_with('-') && s != "-" => {
                return Err(format!("unknown option '{s}' (try 'readckpt --help')"));
            }
            _ if path.is_some() => return Err("more than one IMAGE given (try 'readckpt --help')".into()),
            _ => path = Some(arg.clone()),
        }
    }
    let path = path.ok_or("no IMAGE given (try 'readckpt --help')")?;
    Ok(Command::Inspect(Options { path, json, verify }))
}

/// Why an inspection stopped: the image (reported as `readckpt: IMAGE: why`)
/// or the output (a closed pipe is quiet).
enum Failure {
    Image(String),
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

/// Runs readckpt and returns its exit status.
fn run(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let (name, result) = match parse_args(args) {
        Ok(Command::Help) => (String::new(), write_flush(out, USAGE)),
        Ok(Command::Version) => (String::new(), write_flush(out, &format!("readckpt {}\n", env!("CARGO_PKG_VERSION")))),
        Ok(Command::Inspect(opts)) => {
            let name = opts.path.to_string_lossy().into_owned();
            let result = inspect(&opts, &name, out);
            (name, result)
        }
        Err(msg) => {
            let _ = writeln!(err, "readckpt: {msg}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Image(msg)) => {
            let _ = writeln!(err, "readckpt: {name}: {msg}");
            1
        }
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(Failure::Output(e)) => {
            let _ = writeln!(err, "readckpt: write error: {}", os_message(&e));
            1
        }
    }
}

fn write_flush(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

/// Reads, validates and prints one image (a job image: each of its
/// processes); with --verify, a bad extent is reported after the output.
fn inspect(opts: &Options, name: &str, out: &mut dyn Write) -> Result<(), Failure> {
    match job::open(&opts.path).map_err(Failure::Image)? {
        Some(job) => job::inspect(opts, name, &job, out),
        None => inspect_at(opts, name, 0, out),
    }
}

/// [`inspect`] of the process image at `base` in the file.
fn inspect_at(opts: &Options, name: &str, base: u64, out: &mut dyn Write) -> Result<(), Failure> {
    let image = Image::open(&opts.path, base).map_err(Failure::Image)?;
    let meta = Meta::parse(&image.header, &image.meta).map_err(|e| Failure::Image(e.message().into()))?;
    let mut verdict = None;
    if opts.verify {
        let mut files = chain::open(&opts.path, image.file, &meta).map_err(Failure::Image)?;
        let v = verify(&mut files, base, &meta).map_err(|e| Failure::Image(read_error(&e)))?;
        verdict = Some(v);
    }
    let mut report = Report { name, meta: &meta, disk_len: image.len, verdict, refused: None };
    // The exit status is decided before anything is printed, so that the
    // output (the JSON "ok") says the same as the exit status.
    let result = match &report.verdict {
        Some(Verdict::Bad(bad)) => Err(Failure::Image(bad.message())),
        // --verify answers "would restart take it here": the CPU too.
        Some(_) => match xstate::check_cpu(&meta.header, ckpt_sys::cpu::xcr0(), ckpt_sys::cpu::level()) {
            Err(e) => Err(Failure::Image(format!("{e}; restart would refuse it"))),
            Ok(()) => Ok(()),
        },
        _ => Ok(()),
    };
    if let Err(Failure::Image(why)) = &result {
        report.refused = Some(why.clone());
    }
    if opts.json {
        write_json(out, &report)?;
    } else {
        write_text(out, &report)?;
    }
    out.flush()?;
    result
}

/// The OS error text alone ("No such file or directory"), without Rust's
/// " (os error 2)" suffix.
pub(crate) fn os_message(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------- reading

/// A read error: an early end of file means the image shrank under us.
fn read_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ckpt_image::Error::Truncated.message().into(),
        _ => os_message(e),
    }
}

/// The open image file, its validated header and its raw metadata (of the
/// process image at `base`: 0, or a member of a job image).
struct Image {
    file: File,
    len: u64,
    header: Header,
    meta: Vec<u8>,
}

impl Image {
    fn open(path: &OsString, base: u64) -> Result<Image, String> {
        // stat before open: opening a FIFO would block.
        let st = std::fs::metadata(path).map_err(|e| os_message(&e))?;
        if st.is_dir() {
            return Err(os_message(&io::Error::from_raw_os_error(libc::EISDIR)));
        }
        if !st.is_file() {
            return Err("not a regular file".into());
        }
        let mut file = File::open(path).map_err(|e| os_message(&e))?;
        let len = file.metadata().map_err(|e| os_message(&e))?.len().saturating_sub(base);
        file.seek(SeekFrom::Start(base)).map_err(|e| os_message(&e))?;
        let mut head = Vec::with_capacity(HEADER_SIZE);
        (&mut file).take(HEADER_SIZE as u64).read_to_end(&mut head).map_err(|e| os_message(&e))?;
        let header = Header::parse(&head, len).map_err(|e| e.message().to_string())?;
        let mut meta = vec![0; header.meta_len as usize];
        file.seek(SeekFrom::Start(base + header.meta_offset))
            .and_then(|_| file.read_exact(&mut meta))
            .map_err(|e| read_error(&e))?;
        Ok(Image { file, len, header, meta })
    }
}

/// Outcome of `--verify`.
enum Verdict {
    Good { extents: u64, bytes: u64 },
    Bad(BadExtent),
}

struct BadExtent {
    index: usize,
    region: usize,
    extent: Extent,
    /// The checksum of the data; None: compressed data that cannot be decoded.
    computed: Option<u64>,
}

impl BadExtent {
    fn why(&self) -> &'static str {
        match self.computed {
            Some(_) => "checksum mismatch",
            None => "its compressed data cannot be decoded",
        }
    }

    fn message(&self) -> String {
        format!(
            "extent {} at {:#x} (region {}) is corrupted ({})",
            self.index,
            self.extent.addr,
            self.region,
            self.why()
        )
    }
}

/// Reads every extent's stored bytes, from the file of its source
/// (`files[0]` the image, at `base` in it, `files[k]` its k-th parent),
/// decodes the compressed ones and checks each extent's checksum; stops at
/// the first mismatch. Two buffers of the longest extent (at most
/// `MAX_EXTENT`).
fn verify(files: &mut [File], base: u64, m: &Meta) -> io::Result<Verdict> {
    let (mut stored, mut buf) = (Vec::new(), Vec::new());
    let (mut index, mut bytes) = (0, 0);
    for (region, r) in m.regions().enumerate() {
        for extent in m.extents_of(&r) {
            stored.resize(extent.stored_len as usize, 0);
            let file = &mut files[extent.source as usize];
            // A process image inside a job image starts at `base`.
            let at = if extent.source == 0 { base } else { 0 };
            file.seek(SeekFrom::Start(at + extent.file_pos))?;
            file.read_exact(&mut stored)?;
            buf.resize(extent.len as usize, 0);
            let computed =
                ckpt_image::codec::decode(&extent, &stored, &mut buf).ok().map(|()| ckpt_image::checksum(&buf));
            if computed != Some(extent.checksum) {
                return Ok(Verdict::Bad(BadExtent { index, region, extent, computed }));
            }
            index += 1;
            bytes += extent.len;
        }
    }
    Ok(Verdict::Good { extents: index as u64, bytes })
}

// ---------------------------------------------------------------- formatting helpers

struct Report<'a> {
    name: &'a str,
    meta: &'a Meta<'a>,
    /// Length of the file on disk (it may exceed the header's `file_len`).
    disk_len: u64,
    verdict: Option<Verdict>,
    /// Why `--verify` fails although every extent is right (the exit status
    /// will be 1): the JSON's `verify.ok` follows the exit status.
    refused: Option<String>,
}

impl Report<'_> {
    fn string(&self, s: ckpt_image::StrRef) -> &[u8] {
        self.meta.string(s).unwrap_or_default()
    }
    fn argv(&self) -> Vec<&[u8]> {
        let cmdline = self.string(self.meta.header.cmdline);
        let cmdline = cmdline.strip_suffix(b"\0").unwrap_or(cmdline);
        if cmdline.is_empty() {
            return Vec::new();
        }
        cmdline.split(|&b| b == 0).collect()
    }
    fn comm(&self) -> &[u8] {
        until_nul(&self.meta.header.comm)
    }
}

/// A NUL padded name (`comm`) without its padding.
fn until_nul(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
}

/// "12.0K", "1.5M": a size for a human (powers of 1024).
fn human(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64;
    for unit in ["K", "M", "G", "T"] {
        v /= 1024.0;
        if v < 1024.0 || unit == "T" {
            return format!("{v:.1}{unit}");
        }
    }
    unreachable!()
}

fn duration(ns: u64) -> String {
    match ns {
        0..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.3} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// ISO 8601 UTC time, to the millisecond, of nanoseconds since the epoch.
fn iso8601(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let ms = ns / 1_000_000 % 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", t / 3600, t / 60 % 60, t % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// Names of the XSAVE feature groups in `xfeatures`.
fn xfeature_names(xfeatures: u64) -> Vec<&'static str> {
    xstate::names(xfeatures).collect()
}

/// "0x3 (x87 SSE)".
fn xfeature_set(xfeatures: u64) -> String {
    format!("{xfeatures:#x} ({})", xfeature_names(xfeatures).join(" "))
}

/// "SIGINT", "SIGRTMIN+2", "signal 32".
fn signal_name(sig: usize) -> String {
    ckpt_image::signals::Name(sig as i32).to_string()
}

/// The signals of a set (bit n-1 for signal n): "SIGUSR1 SIGTERM", or "none".
fn signal_set(set: u64) -> String {
    let names: Vec<String> = (1..NSIG).filter(|&sig| set & 1 << (sig - 1) != 0).map(signal_name).collect();
    match names.is_empty() {
        true => "none".into(),
        false => names.join(" "),
    }
}

/// Names of the resource limits, in RLIMIT_* order (Linux, x86-64).
const RLIMIT_NAMES: [&str; NLIMITS] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

/// Names of the interval timers, in ITIMER_* order.
const ITIMER_NAMES: [&str; 3] = ["real", "virtual", "prof"];

/// Nanoseconds as exact seconds: "1.5", "0.000000001", "10".
fn seconds(ns: u64) -> String {
    let s = format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A resource limit: the number, or "unlimited" (`RLIM_INFINITY`).
fn limit(v: u64) -> String {
    match v {
        u64::MAX => "unlimited".into(),
        v => v.to_string(),
    }
}

fn fd_kind_name(f: &Fd) -> &'static str {
    f.kind().map_or("?", FdKind::name)
}

/// The access mode of an open file description: "rdonly", "wronly", "rdwr".
fn fd_access(f: &Fd) -> &'static str {
    match f.flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "rdonly",
        libc::O_WRONLY => "wronly",
        libc::O_RDWR => "rdwr",
        _ => "?",
    }
}

fn fd_append(f: &Fd) -> bool {
    f.flags as i32 & libc::O_APPEND != 0
}

fn fd_nonblock(f: &Fd) -> bool {
    f.flags as i32 & libc::O_NONBLOCK != 0
}

fn fd_cloexec(f: &Fd) -> bool {
    f.fd_flags as i32 & libc::FD_CLOEXEC != 0
}

/// "wronly,append,nonblock,cloexec": the access mode and the flags that
/// matter to the program (other `F_GETFL` bits are in the JSON).
fn fd_flags(f: &Fd) -> String {
    let mut words = vec![fd_access(f)];
    let own = f.fd_flags & ckpt_image::FD_NOT_INHERITED != 0;
    for (set, word) in
        [(fd_append(f), "append"), (fd_nonblock(f), "nonblock"), (fd_cloexec(f), "cloexec"), (own, "not-inherited")]
    {
        if set {
            words.push(word);
        }
    }
    words.join(",")
}

/// `rwxp` / `rwxs` as in /proc/PID/maps.
fn perms(r: &Region) -> String {
    let bit = |set: bool, c: char| if set { c } else { '-' };
    let (p, f) = (r.prot, r.flags);
    [(p & PROT_READ, 'r'), (p & PROT_WRITE, 'w'), (p & PROT_EXEC, 'x')]
        .iter()
        .map(|&(b, c)| bit(b != 0, c))
        .chain([if f & REGION_SHARED != 0 { 's' } else { 'p' }])
        .collect()
}

fn kind_name(r: &Region) -> &'static str {
    r.kind().map_or("?", RegionKind::name)
}

/// A byte string for a terminal, escaped as restart's messages escape it
/// (`ckpt_sys::msg::escape`): control characters and bytes that are not
/// UTF-8 as `\\xNN`.
fn show(bytes: &[u8]) -> String {
    let mut s = Vec::new();
    ckpt_sys::msg::escape(bytes, |piece| s.extend_from_slice(piece));
    String::from_utf8(s).expect("escape leaves only UTF-8")
}

/// One argument, quoted for a POSIX shell only when it needs it.
fn shell_quote(arg: &[u8]) -> String {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(b);
    if !arg.is_empty() && arg.iter().all(plain) {
        return String::from_utf8_lossy(arg).into_owned();
    }
    match std::str::from_utf8(arg) {
        Ok(s) if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', r"'\''")),
        // Control characters or invalid UTF-8: bash's $'...' with escapes.
        _ => {
            let mut s = String::from("$'");
            for &b in arg {
                match b {
                    b'\'' | b'\\' => s.extend(['\\', b as char]),
                    0x20..=0x7e => s.push(b as char),
                    _ => s.push_str(&format!("\\x{b:02x}")),
                }
            }
            s + "'"
        }
    }
}

// ---------------------------------------------------------------- text

fn write_text(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    write_summary(out, rep)?;
    write_mm(out, &rep.meta.header)?;
    write_process(out, &rep.meta.header.process)?;
    write_posix_timers(out, rep.meta)?;
    write_threads(out, rep.meta)?;
    write_signals(out, rep.meta)?;
    write_files(out, rep.meta)?;
    write_regions(out, rep.meta)?;
    match &rep.verdict {
        None => Ok(()),
        Some(Verdict::Good { extents, bytes }) => match &rep.refused {
            None => writeln!(out, "verify: OK, all {extents} extents ({}) match their checksums", human(*bytes)),
            Some(why) => writeln!(
                out,
                "verify: FAILED: all {extents} extents ({}) match their checksums, but {why}",
                human(*bytes)
            ),
        },
        Some(Verdict::Bad(b)) => write!(
            out,
            "verify: FAILED: extent {} ({:#x}-{:#x}, region {}, file offset {:#x}): ",
            b.index,
            b.extent.addr,
            b.extent.addr + b.extent.len,
            b.region,
            b.extent.file_pos,
        )
        .and_then(|()| match b.computed {
            Some(c) => writeln!(out, "computed {c:#018x}, expected {:#018x}", b.extent.checksum),
            None => writeln!(out, "{}", b.why()),
        }),
    }
}

fn write_summary(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    let h = &rep.meta.header;
    let argv: Vec<String> = rep.argv().iter().map(|a| shell_quote(a)).collect();
    let none = |s: String| {
        if s.is_empty() {
            "(none)".to_string()
        } else {
            s
        }
    };
    writeln!(out, "image       {}", show(rep.name.as_bytes()))?;
    writeln!(out, "format      version {}, x86-64, page size {}", h.version, h.page_size)?;
    writeln!(out, "created     {}", iso8601(h.created_ns))?;
    writeln!(out, "capture     {}", duration(h.capture_ns))?;
    writeln!(out, "pid         {}", h.pid)?;
    writeln!(out, "command     {}", none(argv.join(" ")))?;
    writeln!(out, "cwd         {}", none(show(rep.string(h.cwd))))?;
    writeln!(out, "exe         {}", none(show(rep.string(h.exe))))?;
    writeln!(out, "comm        {}", none(show(rep.comm())))?;
    writeln!(out, "umask       {:04o}", h.umask)?;
    writeln!(out, "cpu         {} ({})", none(show(until_nul(&h.cpu_brand))), xstate::level_name(h.cpu_level))?;
    writeln!(out, "xfeatures   {}", xfeature_set(h.xfeatures))?;
    writeln!(out, "xsave size  {} bytes", h.xsave_size)?;
    let held = match h.portable_level {
        0 => {
            format!("not portable: the program may use any instruction its {} CPU has", xstate::level_name(h.cpu_level))
        }
        l => format!("held to {} by ckpt --portable", xstate::level_name(l)),
    };
    writeln!(
        out,
        "requires    {}, {}; {held}",
        xfeature_set(h.required_xfeatures),
        xstate::level_name(xstate::required_level(h))
    )?;
    write!(out, "file        {} bytes ({})", h.file_len, human(h.file_len))?;
    if rep.disk_len != h.file_len {
        write!(out, ", {} bytes on disk", rep.disk_len)?;
    }
    writeln!(out)?;
    writeln!(out, "metadata    {} bytes at {:#x}", h.meta_len, h.meta_offset)?;
    writeln!(out, "data        {} bytes ({}) at {:#x}", h.data_len, human(h.data_len), h.data_offset)?;
    let t = rep.meta.data_totals();
    match t.compressed {
        0 => writeln!(out, "compression none")?,
        n => writeln!(
            out,
            "compression lz4: {n} of {} extents; {} of memory in {} (ratio {:.1})",
            h.n_extents,
            human(t.memory),
            human(t.stored),
            t.ratio()
        )?,
    }
    chain::write_text(out, rep.meta)
}

fn write_mm(out: &mut dyn Write, h: &Header) -> io::Result<()> {
    let mm = &h.mm;
    writeln!(out, "\nmm layout")?;
    writeln!(out, "  code      {:#x}-{:#x}", mm.start_code, mm.end_code)?;
    writeln!(out, "  data      {:#x}-{:#x}", mm.start_data, mm.end_data)?;
    writeln!(out, "  brk       {:#x}-{:#x}", mm.start_brk, mm.brk)?;
    writeln!(out, "  stack     {:#x}", mm.start_stack)?;
    writeln!(out, "  args      {:#x}-{:#x}", mm.arg_start, mm.arg_end)?;
    writeln!(out, "  env       {:#x}-{:#x}", mm.env_start, mm.env_end)
}

/// The POSIX timers (`timer_create`), if the image has any.
fn write_posix_timers(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    use ckpt_image::timers::{SIGEV_NONE, SIGEV_THREAD_ID};
    let timers = m.timers();
    if timers.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nposix timers ({})", timers.len())?;
    for t in timers.iter() {
        let notify = match t.notify {
            SIGEV_NONE => "no signal".to_string(),
            SIGEV_THREAD_ID => format!("signal {} to thread {}", t.signal, t.tid),
            _ => format!("signal {}", t.signal),
        };
        let left = match (t.value_ns, t.interval_ns) {
            (0, _) => "disarmed".to_string(),
            (v, 0) => format!("{} s left, once", seconds(v)),
            (v, i) => format!("{} s left, then every {} s", seconds(v), seconds(i)),
        };
        writeln!(out, "  timer {:<4} clock {}, {notify}, value {:#x}, {left}", t.id, t.clock, t.value)?;
    }
    Ok(())
}

/// Process-wide kernel state: only what the image says it recorded (its
/// `valid` bits); timers only when armed, limits only when not unlimited.
fn write_process(out: &mut dyn Write, p: &ProcessState) -> io::Result<()> {
    writeln!(out, "\nprocess")?;
    let all = PROCESS_ITIMERS | PROCESS_RLIMITS | PROCESS_PENDING | PROCESS_PRCTL;
    if p.valid & all == 0 {
        return writeln!(out, "  (not recorded)");
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    if p.valid & PROCESS_ITIMERS != 0 {
        for (name, t) in ITIMER_NAMES.iter().zip(&p.itimers) {
            if t.value_ns != 0 {
                let every = match t.interval_ns {
                    0 => "once".to_string(),
                    ns => format!("then every {} s", seconds(ns)),
                };
                lines.push((format!("timer {name}"), format!("{} s, {every}", seconds(t.value_ns))));
            }
        }
        if p.itimers.iter().all(|t| t.value_ns == 0) {
            lines.push(("timers".into(), "none armed".into()));
        }
    }
    if p.valid & PROCESS_RLIMITS != 0 {
        for (name, &[soft, hard]) in RLIMIT_NAMES.iter().zip(&p.rlimits) {
            if soft != u64::MAX || hard != u64::MAX {
                lines.push((format!("rlimit {name}"), format!("{} / {}", limit(soft), limit(hard))));
            }
        }
        if p.rlimits.iter().all(|&l| l == [u64::MAX; 2]) {
            lines.push(("rlimits".into(), "all unlimited".into()));
        }
    }
    if p.valid & PROCESS_PENDING != 0 {
        let value = match p.pending {
            0 => "none".to_string(),
            set => format!("{} ({set:#x})", signal_set(set)),
        };
        lines.push(("pending".into(), value));
    }
    if p.valid & PROCESS_PRCTL != 0 {
        let pdeathsig = match p.pdeathsig as usize {
            0 => "none".to_string(),
            sig => format!("{} ({sig})", signal_name(sig)),
        };
        let subreaper = if p.child_subreaper != 0 { "yes" } else { "no" };
        lines.push(("pdeathsig".into(), pdeathsig));
        lines.push(("dumpable".into(), p.dumpable.to_string()));
        lines.push(("child subreaper".into(), subreaper.into()));
    }
    for (label, value) in lines {
        writeln!(out, "  {label:<17} {value}")?;
    }
    Ok(())
}

fn rseq(t: &Thread) -> String {
    match t.rseq_area {
        0 => "none".into(),
        area => format!("{area:#x}+{}", t.rseq_len),
    }
}

fn write_threads(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    writeln!(out, "\nthreads ({}; * wrote the image)", m.n_threads())?;
    let columns = "TID     NAME             RIP            RSP            RFLAGS   FS_BASE        RSEQ               UCONTEXT       SIGMASK            XINUSE PENDING";
    writeln!(out, "   {columns}")?;
    for (i, t) in m.threads().enumerate() {
        let mark = if i == m.header.leader as usize { '*' } else { ' ' };
        let name = match show(until_nul(&t.comm)) {
            name if name.is_empty() => "-".to_string(),
            name => name,
        };
        let pending = match t.pending {
            0 => "-".to_string(),
            set => format!("{set:#x} ({})", signal_set(set)),
        };
        writeln!(
            out,
            "  {mark}{:<8}{name:<16} {:#014x} {:#014x} {:<8} {:#014x} {:<18} {:#014x} {:<18} {:<6} {pending}",
            t.tid,
            t.gregs[REG_RIP],
            t.gregs[REG_RSP],
            format!("{:#x}", t.gregs[REG_EFL]),
            t.fs_base,
            rseq(&t),
            t.ucontext,
            format!("{:#x}", t.sigmask),
            format!("{:#x}", t.xinuse)
        )?;
    }
    Ok(())
}

fn write_signals(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    let set: Vec<_> = (1..NSIG).map(|sig| (sig, m.sigaction(sig))).filter(|(_, a)| a.handler != 0).collect();
    writeln!(out, "\nsignals ({} not SIG_DFL)", set.len())?;
    for (sig, a) in set {
        let handler = if a.handler == 1 { "IGN".to_string() } else { format!("{:#x}", a.handler) };
        let name = format!("{} ({sig})", signal_name(sig));
        writeln!(out, "  {name:<16} handler {handler:<16} flags {:#010x}  mask {:#x}", a.flags, a.mask)?;
    }
    Ok(())
}

/// What an event descriptor or an in-process socket held, or the locks
/// held through a file, in words.
fn event_state(m: &Meta, f: &Fd, kind: FdKind) -> Option<String> {
    use ckpt_image::events::{
        record, socket_messages, EpollTarget, EventFdState, FileLock, InotifyWatch, SignalFdState, TimerFdState,
        LOCK_FLOCK, LOCK_OFD,
    };
    let data = m.string(f.data)?;
    let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    Some(match kind {
        FdKind::EventFd => {
            let s: EventFdState = record(data, 0)?;
            format!("counter {}{}", s.count, if s.semaphore != 0 { ", semaphore" } else { "" })
        }
        FdKind::TimerFd => {
            let s: TimerFdState = record(data, 0)?;
            let armed = if s.value_ns == 0 && s.interval_ns == 0 {
                "disarmed".to_string()
            } else {
                format!("{} left, every {}", secs(s.value_ns), secs(s.interval_ns))
            };
            let abs = if s.settime_flags & 1 != 0 { ", absolute" } else { "" };
            format!("clock {}{abs}, {armed}, {} pending", s.clockid, s.ticks)
        }
        FdKind::SignalFd => format!("mask {:#x}", record::<SignalFdState>(data, 0)?.mask),
        FdKind::Epoll => {
            let n = data.len() / core::mem::size_of::<EpollTarget>();
            let list: Vec<String> = (0..n)
                .filter_map(|i| record::<EpollTarget>(data, i))
                .map(|t| format!("{}:{:#x}", t.tfd, t.events))
                .collect();
            format!("{n} registrations: {}", list.join(" "))
        }
        FdKind::File if !data.is_empty() => {
            let n = data.len() / core::mem::size_of::<FileLock>();
            let list: Vec<String> = (0..n)
                .filter_map(|i| record::<FileLock>(data, i))
                .map(|l| {
                    let kind = match l.kind {
                        LOCK_FLOCK => "flock",
                        LOCK_OFD => "ofd",
                        _ => "record",
                    };
                    let mode = if l.write != 0 { "write" } else { "read" };
                    match l.len {
                        0 => format!("{kind} {mode} {}-EOF", l.start),
                        n => format!("{kind} {mode} {}-{}", l.start, l.start + n - 1),
                    }
                })
                .collect();
            format!("locks: {}", list.join(", "))
        }
        FdKind::Memfd => {
            let s: ckpt_image::events::MemfdState = record(data, 0)?;
            format!("{} bytes, seals {:#x}", s.size, s.seals)
        }
        FdKind::Inotify => {
            let n = data.len() / core::mem::size_of::<InotifyWatch>();
            let list: Vec<String> = (0..n)
                .filter_map(|i| record::<InotifyWatch>(data, i))
                .map(|w| format!("{}:{}", w.wd, show(m.string(w.path).unwrap_or_default())))
                .collect();
            format!("{n} watches: {}", list.join(" "))
        }
        FdKind::Socket => {
            let (s, msgs) = socket_messages(data)?;
            let bytes: usize = msgs.map(|m| m.len()).sum();
            format!("type {}, {} messages, {bytes} bytes waiting, peer inode {}", s.sock_type, s.n_msgs, f.pipe)
        }
        _ => return None,
    })
}

/// One line per descriptor, in table order; the ones that cannot be
/// restored say so.
fn write_files(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    let lost = m.fds().filter(|f| f.kind() == Some(FdKind::Lost)).count();
    match lost {
        0 => writeln!(out, "\nfiles ({})", m.n_fds())?,
        n => writeln!(out, "\nfiles ({}, {n} not restored)", m.n_fds())?,
    }
    if m.n_fds() == 0 {
        return Ok(());
    }
    writeln!(out, "  {:>6}  {:<8} {:<30} {:>12}  PATH", "FD", "KIND", "FLAGS", "OFFSET")?;
    for f in m.fds() {
        let kind = f.kind();
        let offset = match kind {
            Some(FdKind::File | FdKind::Dir) => f.offset.to_string(),
            _ => "-".into(),
        };
        let mut tail = show(m.string(f.path).unwrap_or_default());
        match kind {
            Some(FdKind::PipeRead) => {
                let held = f.data.len as u64;
                let unit = if held == 1 { "byte" } else { "bytes" };
                tail = format!("{tail} ({held} {unit} held)");
            }
            Some(FdKind::Lost) => tail = format!("{tail}  NOT RESTORED (becomes /dev/null)"),
            Some(k) => {
                if let Some(state) = event_state(m, &f, k) {
                    tail = format!("{tail} ({state})");
                }
            }
            None => {}
        }
        let line =
            format!("  {:>6}  {:<8} {:<30} {offset:>12}  {}", f.fd, fd_kind_name(&f), fd_flags(&f), tail.trim_start());
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_regions(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    writeln!(out, "\nregions")?;
    writeln!(out, "  {:<25} {:<4} {:<11} {:>8} {:>8}  PATH", "START-END", "PERM", "KIND", "SIZE", "STORED")?;
    let (mut size, mut stored) = (0, 0);
    for r in m.regions() {
        let bytes = m.stored_bytes(&r);
        let mut tail = show(m.string(r.path).unwrap_or_default());
        if r.flags & REGION_GROWSDOWN != 0 {
            tail = format!("{tail} (grows down)").trim_start().to_string();
        }
        let line = format!(
            "  {:012x}-{:012x} {} {:<11} {:>8} {:>8}  {tail}",
            r.start,
            r.end,
            perms(&r),
            kind_name(&r),
            human(r.len()),
            human(bytes),
        );
        writeln!(out, "{}", line.trim_end())?;
        size += r.len();
        stored += bytes;
    }
    writeln!(
        out,
        "  total: {} regions, {} extents, {} stored of {} mapped ({stored} bytes)",
        m.n_regions(),
        m.header.n_extents,
        human(stored),
        human(size)
    )
}

// ---------------------------------------------------------------- JSON

/// A JSON string of a byte string (UTF-8, invalid sequences as U+FFFD).
fn jstr(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s + "\""
}

fn jhex(v: u64) -> String {
    format!("\"{v:#x}\"")
}

/// `{"k":v,...}` of already rendered values.
fn jobj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// An array, one item per line, indented for a member of the top object.
fn jarray(items: Vec<String>) -> String {
    if items.is_empty() {
        return "[]".into();
    }
    format!("[\n    {}\n  ]", items.join(",\n    "))
}

fn jlist<I: IntoIterator<Item = String>>(items: I) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

fn write_json(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    let m = rep.meta;
    let h = &m.header;
    let mm = &h.mm;
    let mm = [
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
    ];
    let mm: Vec<(&str, String)> = mm.iter().map(|&(k, v)| (k, v.to_string())).collect();
    let (mut size, mut stored) = (0, 0);
    for r in m.regions() {
        size += r.len();
        stored += m.stored_bytes(&r);
    }
    let mut top: Vec<(&str, String)> = vec![
        ("schema", JSON_SCHEMA.to_string()),
        ("file", jstr(rep.name.as_bytes())),
        ("format_version", h.version.to_string()),
        ("arch", jstr(b"x86_64")),
        ("page_size", h.page_size.to_string()),
        ("created_ns", h.created_ns.to_string()),
        ("created", jstr(iso8601(h.created_ns).as_bytes())),
        ("capture_ns", h.capture_ns.to_string()),
        ("pid", h.pid.to_string()),
        ("argv", jlist(rep.argv().iter().map(|a| jstr(a)))),
        ("cwd", jstr(rep.string(h.cwd))),
        ("exe", jstr(rep.string(h.exe))),
        ("comm", jstr(rep.comm())),
        ("umask", h.umask.to_string()),
        ("xfeatures", jhex(h.xfeatures)),
        ("xfeature_names", jlist(xfeature_names(h.xfeatures).iter().map(|n| jstr(n.as_bytes())))),
        ("xsave_size", h.xsave_size.to_string()),
        ("required_xfeatures", jhex(h.required_xfeatures)),
        ("required_names", jlist(xfeature_names(h.required_xfeatures).iter().map(|n| jstr(n.as_bytes())))),
        ("required_level", jstr(xstate::level_name(xstate::required_level(h)).as_bytes())),
        ("portable_level", jlevel(h.portable_level)),
        ("cpu", jstr(until_nul(&h.cpu_brand))),
        ("cpu_level", jlevel(h.cpu_level)),
        ("file_len", h.file_len.to_string()),
        ("meta_offset", h.meta_offset.to_string()),
        ("meta_len", h.meta_len.to_string()),
        ("data_offset", h.data_offset.to_string()),
        ("data_len", h.data_len.to_string()),
        ("leader", h.leader.to_string()),
        ("mm", jobj(&mm)),
        ("threads", jarray(m.threads().map(|t| json_thread(&t)).collect())),
        ("signals", jarray(json_signals(m))),
        ("regions", jarray(m.regions().map(|r| json_region(m, &r)).collect())),
        (
            "totals",
            jobj(&[
                ("regions", m.n_regions().to_string()),
                ("extents", h.n_extents.to_string()),
                ("size", size.to_string()),
                ("stored", stored.to_string()),
                ("fds", m.n_fds().to_string()),
            ]),
        ),
        ("process", json_process(m)),
        ("files", jarray(m.fds().map(|f| json_fd(m, &f)).collect())),
        ("chain", chain::json(m, jstr, jhex)),
        ("compression", json_compression(&m.data_totals())),
    ];
    if let Some(v) = &rep.verdict {
        top.push(("verify", json_verdict(v, rep.refused.as_deref())));
    }
    let body: Vec<String> = top.iter().map(|(k, v)| format!("  \"{k}\": {v}")).collect();
    writeln!(out, "{{\n{}\n}}", body.join(",\n"))
}

fn json_compression(t: &ckpt_image::DataTotals) -> String {
    jobj(&[
        ("compressed_extents", t.compressed.to_string()),
        ("memory", t.memory.to_string()),
        ("stored", t.stored.to_string()),
        ("ratio", format!("{:.3}", t.ratio())),
    ])
}

fn json_thread(t: &Thread) -> String {
    jobj(&[
        ("tid", t.tid.to_string()),
        ("tid_offset", t.tid_offset.to_string()),
        ("rip", t.gregs[REG_RIP].to_string()),
        ("rsp", t.gregs[REG_RSP].to_string()),
        ("rflags", jhex(t.gregs[REG_EFL])),
        ("fs_base", t.fs_base.to_string()),
        ("gs_base", t.gs_base.to_string()),
        ("rseq_area", t.rseq_area.to_string()),
        ("rseq_len", t.rseq_len.to_string()),
        ("rseq_sig", jhex(t.rseq_sig as u64)),
        ("clear_child_tid", t.clear_child_tid.to_string()),
        ("robust_list", t.robust_list.to_string()),
        ("robust_len", t.robust_len.to_string()),
        ("sigmask", jhex(t.sigmask)),
        ("ucontext", t.ucontext.to_string()),
        ("gregs", jlist(t.gregs.iter().map(|&g| jhex(g)))),
        ("comm", jstr(until_nul(&t.comm))),
        ("pending", jhex(t.pending)),
        ("fpstate", t.fpstate.to_string()),
        ("xstate_bv", jhex(t.xstate_bv)),
        ("xinuse", jhex(t.xinuse)),
    ])
}

/// An x86-64 level by name, or null for none.
fn jlevel(level: u32) -> String {
    match level {
        0 => "null".into(),
        l => jstr(xstate::level_name(l).as_bytes()),
    }
}

/// A resource limit: a number, or null for unlimited (`RLIM_INFINITY`).
fn jlimit(v: u64) -> String {
    match v {
        u64::MAX => "null".into(),
        v => v.to_string(),
    }
}

/// Members only for the fields the `valid` bits say were recorded.
fn json_process(m: &Meta) -> String {
    let p = &m.header.process;
    let mut fields = vec![("valid", jhex(p.valid as u64))];
    if p.valid & PROCESS_ITIMERS != 0 {
        let timers: Vec<(&str, String)> = ITIMER_NAMES
            .iter()
            .zip(&p.itimers)
            .map(|(&name, t)| {
                let t = jobj(&[("value_ns", t.value_ns.to_string()), ("interval_ns", t.interval_ns.to_string())]);
                (name, t)
            })
            .collect();
        fields.push(("itimers", jobj(&timers)));
    }
    if p.valid & PROCESS_RLIMITS != 0 {
        let limits: Vec<(&str, String)> = RLIMIT_NAMES
            .iter()
            .zip(&p.rlimits)
            .map(|(&name, &[soft, hard])| (name, jobj(&[("soft", jlimit(soft)), ("hard", jlimit(hard))])))
            .collect();
        fields.push(("rlimits", jobj(&limits)));
    }
    if p.valid & PROCESS_PENDING != 0 {
        fields.push(("pending", jhex(p.pending)));
    }
    if p.valid & PROCESS_PRCTL != 0 {
        fields.push(("pdeathsig", p.pdeathsig.to_string()));
        fields.push(("dumpable", p.dumpable.to_string()));
        fields.push(("child_subreaper", p.child_subreaper.to_string()));
    }
    if p.valid & ckpt_image::PROCESS_TIMERS != 0 {
        let timers = m
            .timers()
            .iter()
            .map(|t| {
                jobj(&[
                    ("id", t.id.to_string()),
                    ("clock", t.clock.to_string()),
                    ("notify", t.notify.to_string()),
                    ("signal", t.signal.to_string()),
                    ("tid", t.tid.to_string()),
                    ("value", jhex(t.value)),
                    ("value_ns", t.value_ns.to_string()),
                    ("interval_ns", t.interval_ns.to_string()),
                ])
            })
            .collect();
        fields.push(("posix_timers", jarray(timers)));
    }
    jobj(&fields)
}

fn json_fd(m: &Meta, f: &Fd) -> String {
    jobj(&[
        ("fd", f.fd.to_string()),
        ("kind", jstr(fd_kind_name(f).as_bytes())),
        ("restored", (f.kind() != Some(FdKind::Lost)).to_string()),
        ("access", jstr(fd_access(f).as_bytes())),
        ("append", fd_append(f).to_string()),
        ("nonblock", fd_nonblock(f).to_string()),
        ("cloexec", fd_cloexec(f).to_string()),
        ("flags", jhex(f.flags as u64)),
        ("fd_flags", jhex(f.fd_flags as u64)),
        ("offset", f.offset.to_string()),
        ("path", jstr(m.string(f.path).unwrap_or_default())),
        ("data_len", f.data.len.to_string()),
        ("state", jstr(f.kind().and_then(|k| event_state(m, f, k)).unwrap_or_default().as_bytes())),
        ("pipe", f.pipe.to_string()),
        ("size", f.size.to_string()),
        ("dev", f.dev.to_string()),
        ("ino", f.ino.to_string()),
        ("mtime_ns", f.mtime_ns.to_string()),
        ("mode", f.mode.to_string()),
    ])
}

fn json_signals(m: &Meta) -> Vec<String> {
    let set = (1..NSIG).map(|sig| (sig, m.sigaction(sig))).filter(|(_, a)| a.handler != 0);
    set.map(|(sig, a)| {
        jobj(&[
            ("signo", sig.to_string()),
            ("name", jstr(signal_name(sig).as_bytes())),
            ("action", jstr(if a.handler == 1 { b"ignore" } else { b"handler" })),
            ("handler", a.handler.to_string()),
            ("flags", jhex(a.flags)),
            ("mask", jhex(a.mask)),
        ])
    })
    .collect()
}

fn json_region(m: &Meta, r: &Region) -> String {
    let extents = m.extents_of(r).map(|e| {
        jobj(&[
            ("addr", e.addr.to_string()),
            ("len", e.len.to_string()),
            ("file_pos", e.file_pos.to_string()),
            ("checksum", jhex(e.checksum)),
            ("stored_len", e.stored_len.to_string()),
            ("encoding", jstr(e.encoding_name().as_bytes())),
            ("source", e.source.to_string()),
        ])
    });
    jobj(&[
        ("start", r.start.to_string()),
        ("end", r.end.to_string()),
        ("range", jstr(format!("{:08x}-{:08x}", r.start, r.end).as_bytes())),
        ("perms", jstr(perms(r).as_bytes())),
        ("kind", jstr(kind_name(r).as_bytes())),
        ("shared", (r.flags & REGION_SHARED != 0).to_string()),
        ("growsdown", (r.flags & REGION_GROWSDOWN != 0).to_string()),
        ("size", r.len().to_string()),
        ("stored", m.stored_bytes(r).to_string()),
        ("file_offset", r.file_offset.to_string()),
        ("path", jstr(m.string(r.path).unwrap_or_default())),
        ("extents", jlist(extents)),
        (
            "file_id",
            jobj(&[
                ("dev", r.file.dev.to_string()),
                ("ino", r.file.ino.to_string()),
                ("size", r.file.size.to_string()),
                ("mtime_ns", r.file.mtime_ns.to_string()),
            ]),
        ),
    ])
}

fn json_verdict(v: &Verdict, refused: Option<&str>) -> String {
    match v {
        Verdict::Good { extents, bytes } => {
            let mut o = vec![
                ("ok", refused.is_none().to_string()),
                ("extents", extents.to_string()),
                ("bytes", bytes.to_string()),
            ];
            if let Some(why) = refused {
                o.push(("error", jstr(why.as_bytes())));
            }
            jobj(&o)
        }
        Verdict::Bad(b) => jobj(&[
            ("ok", "false".into()),
            ("extent", b.index.to_string()),
            ("region", b.region.to_string()),
            ("addr", b.extent.addr.to_string()),
            ("len", b.extent.len.to_string()),
            ("file_pos", b.extent.file_pos.to_string()),
            ("expected", jhex(b.extent.checksum)),
            ("computed", b.computed.map_or("null".into(), jhex)),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ckpt_image::{bytes_of, checksum, encode, FileId, ITimer, SigAction, StrRef, HEADER_SPACE, PAGE_SIZE};
    use core::mem::offset_of;
    use std::path::PathBuf;

    const BASE: u64 = 0x5555_0000_0000;
    const STACK: u64 = 0x7ffd_0000_0000;
    const P: u64 = PAGE_SIZE;

    /// One region of the sample: start, pages, prot, flags, kind, path, and
    /// its extents as (first page, pages).
    type Spec = (u64, u64, u32, u32, RegionKind, &'static [u8], &'static [(u64, u64)]);

    const SPECS: [Spec; 7] = [
        (BASE, 4, 5, 0, RegionKind::File, b"/usr/bin/prog", &[(0, 4)]),
        (BASE + 8 * P, 8, 3, 0, RegionKind::Heap, b"", &[(1, 1), (4, 2)]),
        (0x7f00_0000_0000, 2, 3, REGION_SHARED, RegionKind::File, b"/dev/shm/x y", &[(0, 2)]),
        (0x7f00_0001_0000, 2, 3, 0, RegionKind::Workspace, b"", &[]),
        (STACK - 16 * P, 16, 3, REGION_GROWSDOWN, RegionKind::Stack, b"", &[(12, 4)]),
        (STACK + 0x1000_0000, 4, 1, 0, RegionKind::Vvar, b"", &[]),
        (STACK + 0x1000_4000, 2, 5, 0, RegionKind::Vdso, b"", &[]),
    ];
    const CMDLINE: &[u8] = b"/usr/bin/prog\0two words\0it's\0\0\x1bx\0";

    /// What the first region's file was.
    const PROG_ID: FileId = FileId { dev: 0x803, ino: 1_234_567, size: 16 * P, mtime_ns: 1_690_000_000_000_000_001 };

    /// One descriptor of the sample: fd, kind, F_GETFL, F_GETFD, offset,
    /// path, pipe contents.
    type FdSpec = (i32, FdKind, i32, i32, u64, &'static [u8], &'static [u8]);

    const FDS: [FdSpec; 6] = [
        (0, FdKind::CharDev, libc::O_RDWR, 0, 0, b"/dev/pts/3", b""),
        (1, FdKind::File, libc::O_WRONLY | libc::O_APPEND | 0o100000, libc::FD_CLOEXEC, 1234, b"/tmp/out put.txt", b""),
        (3, FdKind::PipeRead, libc::O_NONBLOCK, 0, 0, b"pipe:[77]", b"hello\n"),
        (4, FdKind::PipeWrite, libc::O_WRONLY, 0, 0, b"pipe:[77]", b""),
        (5, FdKind::Dir, libc::O_DIRECTORY, libc::FD_CLOEXEC, 48, b"/tmp", b""),
        (7, FdKind::Lost, libc::O_RDWR, 0, 0, b"socket:[4242]", b""),
    ];

    /// A small valid image with every kind of thing readckpt shows.
    /// The XCR0 the sample records for the CPU it was "taken" on (an Intel
    /// with AVX-512 and PKRU): data shown by readckpt, never this machine's.
    const SAMPLE_XCR0: u64 = xstate::FPSSE | xstate::AVX | xstate::AVX512 | xstate::PKRU;

    fn sample() -> Vec<u8> {
        sample_with(|_| {})
    }

    /// The sample, with `edit` applied to its header before it is laid out.
    fn sample_with(edit: impl FnOnce(&mut Header)) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut add = |s: &[u8]| {
            let r = StrRef { offset: strings.len() as u32, len: s.len() as u32 };
            strings.extend_from_slice(s);
            r
        };
        let (cmdline, cwd, exe) = (add(CMDLINE), add(b"/tmp/dir \"q\""), add(b"/usr/bin/prog"));
        let paths: Vec<StrRef> = SPECS.iter().map(|s| add(s.5)).collect();
        let fds: Vec<Fd> = FDS
            .iter()
            .map(|&(fd, kind, flags, fd_flags, offset, path, data)| Fd {
                fd,
                kind: kind as u32,
                flags: flags as u32,
                fd_flags: fd_flags as u32,
                offset,
                size: 100,
                dev: 0x803,
                ino: 1000 + fd as u64,
                mtime_ns: 1_690_000_000_000_000_000,
                mode: 0o100644,
                shared: 0,
                pipe: if path.starts_with(b"pipe:") { 77 } else { 0 },
                path: add(path),
                data: add(data),
            })
            .collect();
        let mut h = Header::new();
        h.leader = 1;
        (h.cmdline, h.cwd, h.exe) = (cmdline, cwd, exe);
        (h.created_ns, h.capture_ns, h.pid) = (1_700_000_000_123_456_789, 2_345_678, 1000);
        // The CPU it was taken on had AVX-512 (recorded, for display); the
        // program used only x87 and SSE and was held to baseline x86-64, so
        // every x86-64 CPU can take it (--verify checks the running one).
        (h.xfeatures, h.xsave_size, h.umask) = (SAMPLE_XCR0, 2696, 0o22);
        (h.required_xfeatures, h.cpu_level, h.portable_level) = (0x3, 4, 1);
        h.cpu_brand[..8].copy_from_slice(b"Test CPU");
        h.comm[..4].copy_from_slice(b"prog");
        (h.mm.start_code, h.mm.end_code, h.mm.start_brk, h.mm.brk) = (BASE, BASE + 4 * P, BASE + 8 * P, BASE + 16 * P);
        let p = &mut h.process;
        p.valid = PROCESS_ITIMERS | PROCESS_RLIMITS | PROCESS_PENDING | PROCESS_PRCTL;
        p.itimers[0] = ITimer { interval_ns: 250_000_000, value_ns: 1_500_000_000 };
        p.itimers[2] = ITimer { interval_ns: 0, value_ns: 3_000_000_001 };
        p.rlimits = [[u64::MAX; 2]; NLIMITS];
        p.rlimits[3] = [8 << 20, u64::MAX];
        p.rlimits[4] = [0, u64::MAX];
        p.rlimits[7] = [1024, 4096];
        p.pending = 1 << 9 | 1 << 14;
        (p.pdeathsig, p.dumpable, p.child_subreaper) = (15, 1, 0);
        edit(&mut h);
        let (mut regions, mut extents, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &(start, pages, prot, flags, kind, _, exts)) in SPECS.iter().enumerate() {
            let first_extent = extents.len() as u32;
            for &(page, n) in exts {
                data.push((0..n * P).map(|b| (b as u8).wrapping_mul(i as u8 + 3)).collect::<Vec<u8>>());
                extents.push(Extent::new(start + page * P, n * P));
            }
            let n_extents = exts.len() as u32;
            let (end, path, file_offset) = (start + pages * P, paths[i], 0);
            let file = if i == 0 { PROG_ID } else { FileId::default() };
            regions.push(Region {
                start,
                end,
                prot,
                flags,
                kind: kind as u32,
                n_extents,
                first_extent,
                _pad: 0,
                file_offset,
                file,
                path,
            });
        }
        let thread = |tid, ucontext, comm: &[u8], pending| Thread {
            tid,
            tid_offset: 0x2d0,
            ucontext,
            fs_base: 0x7f00_0000_0740,
            gs_base: 0,
            rseq_area: 0x7f00_0000_0fe0,
            rseq_len: 32,
            rseq_sig: 0x5305_3053,
            clear_child_tid: 0,
            robust_list: 0,
            robust_len: 24,
            gregs: core::array::from_fn(|i| 0x1000 + i as u64),
            sigmask: 1 << 9,
            comm: core::array::from_fn(|i| comm.get(i).copied().unwrap_or(0)),
            pending,
            fpstate: ucontext + 0x140,
            xstate_bv: 0x7,
            xinuse: 0x3,
        };
        let threads = [thread(1001, BASE + 13 * P, b"worker\x01", 1 << 11), thread(1000, STACK - 2 * P, b"prog", 0)];
        let mut sig = [SigAction::default(); NSIG];
        sig[2] = SigAction { handler: BASE + 0x1234, flags: 0x0400_0004, restorer: BASE + 0x99, mask: 1 << 1 };
        sig[13].handler = 1;
        sig[33] = SigAction { handler: BASE + 0x2000, flags: 0x0c00_0004, restorer: 0, mask: 1 << 63 };
        let tables = encode::Tables {
            regions: &regions,
            extents: &mut extents,
            threads: &threads,
            sigactions: &sig,
            fds: &fds,
            strings: &strings,
        };
        let enc = encode::Encoder::new(h, tables);
        let mut file = vec![0u8; enc.header().file_len as usize];
        enc.write_into(|i| &data[i], &mut file);
        file
    }

    /// `READCKPT_SAMPLE=/tmp/x.dat cargo test -p ckpt-cli --bin readckpt -- --ignored`
    /// writes the sample image, to try readckpt by hand.
    #[test]
    #[ignore]
    fn write_sample() {
        let path = std::env::var_os("READCKPT_SAMPLE").expect("READCKPT_SAMPLE=path");
        std::fs::write(path, sample()).unwrap();
    }

    /// A file in the temporary directory, removed when dropped.
    struct Temp(PathBuf);
    impl Temp {
        fn new(contents: &[u8]) -> Temp {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("readckpt-test-{}-{n}.dat", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            Temp(path)
        }
        fn arg(&self) -> OsString {
            self.0.clone().into_os_string()
        }
    }
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs readckpt: (status, stdout, stderr).
    fn readckpt(args: &[OsString]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(args, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn on(opts: &[&str], image: &Temp) -> (i32, String, String) {
        let mut args: Vec<OsString> = opts.iter().map(OsString::from).collect();
        args.push(image.arg());
        readckpt(&args)
    }

    /// Runs on a broken image: status 1, nothing on stdout, one stderr line.
    fn refused(contents: &[u8]) -> String {
        let t = Temp::new(contents);
        let (code, out, err) = on(&[], &t);
        assert_eq!((code, out.as_str()), (1, ""), "{err}");
        let prefix = format!("readckpt: {}: ", t.0.display());
        assert!(err.starts_with(&prefix) && err.ends_with('\n') && err.lines().count() == 1, "{err:?}");
        err[prefix.len()..err.len() - 1].to_string()
    }

    #[test]
    fn text_output() {
        let t = Temp::new(&sample());
        let (code, out, err) = on(&[], &t);
        assert_eq!((code, err.as_str()), (0, ""));
        for want in [
            "format      version 3, x86-64, page size 4096\n",
            "compression none\n",
            "created     2023-11-14T22:13:20.123Z\n",
            "capture     2.346 ms\n",
            "pid         1000\n",
            "command     /usr/bin/prog 'two words' 'it'\\''s' '' $'\\x1bx'\n",
            "cwd         /tmp/dir \"q\"\n",
            "comm        prog\n",
            "umask       0022\n",
            &format!("cpu         Test CPU (x86-64-v4)\nxfeatures   {SAMPLE_XCR0:#x} (x87 SSE AVX AVX-512 PKRU)\n"),
            "requires    0x3 (x87 SSE), x86-64; held to x86-64 by ckpt --portable\n",
            "  brk       0x555500008000-0x555500010000\n",
            "threads (2; * wrote the image)\n",
            "   TID     NAME             RIP            RSP            RFLAGS   FS_BASE        RSEQ               UCONTEXT       SIGMASK            XINUSE PENDING\n",
            "  *1000    prog             0x000000001010 0x00000000100f 0x1011   0x7f0000000740 0x7f0000000fe0+32  0x7ffcffffe000 0x200              0x3    -\n",
            "   1001    worker\\x01       0x000000001010 ",
            " 0x55550000d000 0x200              0x3    0x800 (SIGUSR2)\n",
            "file        65536 bytes (64.0K)\n",
            "\nprocess\n  timer real        1.5 s, then every 0.25 s\n  timer prof        3.000000001 s, once\n",
            "  rlimit STACK      8388608 / unlimited\n  rlimit CORE       0 / unlimited\n  rlimit NOFILE     1024 / 4096\n",
            "  pending           SIGUSR1 SIGTERM (0x4200)\n",
            "  pdeathsig         SIGTERM (15)\n  dumpable          1\n  child subreaper   no\n\nthreads",
            "\nfiles (6, 1 not restored)\n",
            "      FD  KIND     FLAGS                                OFFSET  PATH\n",
            "       0  chardev  rdwr                                      -  /dev/pts/3\n",
            "       1  file     wronly,append,cloexec                  1234  /tmp/out put.txt\n",
            "       3  pipe-r   rdonly,nonblock                           -  pipe:[77] (6 bytes held)\n",
            "       4  pipe-w   wronly                                    -  pipe:[77]\n",
            "       5  dir      rdonly,cloexec                           48  /tmp\n",
            "       7  lost     rdwr                                      -  socket:[4242]  NOT RESTORED (becomes /dev/null)\n",
            "  SIGINT (2)       handler 0x555500001234   flags 0x04000004  mask 0x2\n",
            "  SIGPIPE (13)     handler IGN",
            "  signal 33 (33)  ",
            "  555500000000-555500004000 r-xp file           16.0K    16.0K  /usr/bin/prog\n",
            "  555500008000-555500010000 rw-p heap           32.0K    12.0K\n",
            "  7f0000000000-7f0000002000 rw-s file            8.0K     8.0K  /dev/shm/x y\n",
            " rw-p ckpt            8.0K       0B\n",
            " rw-p stack          64.0K    16.0K  (grows down)\n",
            " r--p vvar ",
            " r-xp vdso ",
            "  total: 7 regions, 5 extents, 52.0K stored of 152.0K mapped (53248 bytes)\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("SIGQUIT") && !out.contains("verify"));
        // No timer "virtual" (disarmed), no limit that is unlimited/unlimited.
        assert!(!out.contains("virtual") && !out.contains("rlimit CPU"), "{out}");
    }

    /// Only the process fields whose `valid` bit is set are shown.
    #[test]
    fn process_state_only_when_recorded() {
        let t = Temp::new(&sample_with(|h| h.process.valid = 0));
        let (code, out, _) = on(&[], &t);
        assert_eq!(code, 0);
        assert!(out.contains("\nprocess\n  (not recorded)\n\nthreads"), "{out}");
        let v = Json::parse(&on(&["--json"], &t).1);
        assert_eq!(v.get("process"), &Json::Obj(vec![("valid".into(), Json::Str("0x0".into()))]));

        let t = Temp::new(&sample_with(|h| {
            h.process.valid = PROCESS_PENDING;
            h.process.pending = 0;
        }));
        let out = on(&[], &t).1;
        assert!(out.contains("\nprocess\n  pending           none\n\nthreads"), "{out}");
        let v = Json::parse(&on(&["--json"], &t).1);
        let keys: Vec<&str> = v.get("process").members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["valid", "pending"]);

        let t = Temp::new(&sample_with(|h| {
            h.process.valid = PROCESS_ITIMERS | PROCESS_RLIMITS;
            h.process.itimers = Default::default();
            h.process.rlimits = [[u64::MAX; 2]; NLIMITS];
        }));
        let out = on(&[], &t).1;
        assert!(
            out.contains("\nprocess\n  timers            none armed\n  rlimits           all unlimited\n\nthreads"),
            "{out}"
        );
    }

    /// Recomputes the metadata and header checksums of an edited image.
    fn reseal(file: &mut [u8]) {
        let mut h: Header = ckpt_image::read_at(file, 0).unwrap();
        let meta = HEADER_SPACE as usize..(HEADER_SPACE + h.meta_len) as usize;
        h.meta_checksum = checksum(&file[meta]);
        h.header_checksum = h.compute_checksum();
        file[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
    }

    /// Offset in the sample file of field `at` of its fd table entry `i`.
    fn fd_field(file: &[u8], i: usize, at: usize) -> usize {
        let h = Header::parse(file, file.len() as u64).unwrap();
        let l = ckpt_image::MetaLayout::of(&h);
        let table = HEADER_SPACE as usize + l.regions + l.extents + l.threads + l.sigactions;
        table + i * core::mem::size_of::<Fd>() + at
    }

    #[test]
    fn bad_fd_records_are_refused() {
        let file = sample();
        let mut resealed = file.clone();
        reseal(&mut resealed);
        assert_eq!(resealed, file);
        let cases = [
            (offset_of!(Fd, kind), 7u32.to_le_bytes()),
            (offset_of!(Fd, fd), (-1i32).to_le_bytes()),
            (offset_of!(Fd, path), 1_000_000u32.to_le_bytes()),
        ];
        let messages = [
            "the image has an invalid file descriptor record",
            "the image has an invalid file descriptor record",
            "the image has an invalid string reference",
        ];
        for ((at, bytes), want) in cases.into_iter().zip(messages) {
            let mut bad = file.clone();
            let i = fd_field(&file, 2, at);
            bad[i..i + 4].copy_from_slice(&bytes);
            reseal(&mut bad);
            assert_eq!(refused(&bad), want);
        }
    }

    /// --verify says whether restart would take the image on this CPU: it
    /// refuses one that uses a register component this CPU lacks, or was held
    /// to a higher x86-64 level than this CPU's, naming it.
    #[test]
    fn verify_checks_this_cpu() {
        let have = ckpt_sys::cpu::xcr0();
        // A component this CPU lacks, given room in the recorded layout.
        let missing = [17u32, 18, 9, 7, 6, 5, 2].into_iter().find(|&b| have & (1 << b) == 0);
        match missing {
            Some(bit) => {
                let t = Temp::new(&sample_with(|h| {
                    h.required_xfeatures |= 1 << bit;
                    h.xlayout.comps[bit as usize] = xstate::Component { offset: 4096, size: 64 };
                }));
                let (code, _, err) = on(&["--verify"], &t);
                let name = xstate::names(1 << bit).next().unwrap();
                assert_eq!(code, 1, "{err}");
                assert!(err.contains("this CPU lacks register state the program uses") && err.contains(name), "{err}");
                assert_eq!(err.lines().count(), 1, "{err}");
            }
            None => println!("skip: this CPU has every XSAVE component (XCR0 {have:#x})"),
        }
        let level = ckpt_sys::cpu::level();
        if level < 4 {
            let t = Temp::new(&sample_with(|h| h.portable_level = level + 1));
            let (code, _, err) = on(&["--verify"], &t);
            assert_eq!(code, 1, "{err}");
            let want = format!(
                "ckpt --portable={} but this CPU is only {}",
                xstate::level_name(level + 1),
                xstate::level_name(level)
            );
            assert!(err.contains(&want), "{err}");
        } else {
            println!("skip: this CPU is x86-64-v4, no image can be held above it");
        }
    }

    #[test]
    fn verify_good_and_bad() {
        let file = sample();
        let t = Temp::new(&file);
        let (code, out, err) = on(&["--verify"], &t);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.ends_with("verify: OK, all 5 extents (52.0K) match their checksums\n"), "{out}");
        // Corrupt the first byte of the stack's extent (the fifth, region 4).
        let mut bad = file.clone();
        let data_offset = Header::parse(&file, file.len() as u64).unwrap().data_offset as usize;
        bad[data_offset + (4 + 1 + 2 + 2) as usize * P as usize] ^= 1;
        let t = Temp::new(&bad);
        let (code, out, err) = on(&["--verify"], &t);
        assert_eq!(code, 1);
        assert!(out.contains("verify: FAILED: extent 4 (0x7ffcffffc000-0x7ffd00000000, region 4"), "{out}");
        assert!(err.ends_with(": extent 4 at 0x7ffcffffc000 (region 4) is corrupted (checksum mismatch)\n"), "{err}");
        // Without --verify the data is not read.
        assert_eq!(on(&[], &t).0, 0);
        let (code, out, _) = on(&["--json", "--verify"], &t);
        assert_eq!(code, 1);
        let v = Json::parse(&out);
        assert_eq!(v.get("verify").get("ok"), &Json::Bool(false));
        assert_eq!(v.get("verify").get("extent"), &Json::Num("4".into()));
    }

    #[test]
    fn json_output() {
        let t = Temp::new(&sample());
        let (code, out, err) = on(&["--json", "--verify"], &t);
        assert_eq!((code, err.as_str()), (0, ""));
        let v = Json::parse(&out);
        let num = |n: u64| Json::Num(n.to_string());
        let s = |s: &str| Json::Str(s.into());
        assert_eq!(v.get("schema"), &num(1));
        assert_eq!(v.get("file"), &s(t.0.to_str().unwrap()));
        assert_eq!(v.get("created_ns"), &num(1_700_000_000_123_456_789));
        assert_eq!(v.get("created"), &s("2023-11-14T22:13:20.123Z"));
        let argv = ["/usr/bin/prog", "two words", "it's", "", "\x1bx"];
        assert_eq!(v.get("argv"), &Json::Arr(argv.iter().map(|a| s(a)).collect()));
        assert_eq!(v.get("cwd"), &s("/tmp/dir \"q\""));
        assert_eq!(v.get("xfeatures"), &s(&format!("{SAMPLE_XCR0:#x}")));
        assert_eq!(v.get("required_xfeatures"), &s("0x3"));
        assert_eq!(v.get("required_names"), &Json::Arr(vec![s("x87"), s("SSE")]));
        assert_eq!(v.get("required_level"), &s("x86-64"));
        assert_eq!(v.get("portable_level"), &s("x86-64"));
        assert_eq!((v.get("cpu"), v.get("cpu_level")), (&s("Test CPU"), &s("x86-64-v4")));
        assert_eq!(v.get("mm").get("brk"), &num(BASE + 16 * P));
        let threads = v.get("threads").items();
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[1].get("tid"), &num(1000));
        assert_eq!(threads[1].get("sigmask"), &s("0x200"));
        assert_eq!((threads[1].get("xstate_bv"), threads[1].get("xinuse")), (&s("0x7"), &s("0x3")));
        assert_eq!(threads[1].get("gregs").items().len(), 23);
        let signals = v.get("signals").items();
        assert_eq!(signals.len(), 3);
        assert_eq!(signals[1].get("action"), &s("ignore"));
        assert_eq!(signals[2].get("mask"), &s("0x8000000000000000"));
        let regions = v.get("regions").items();
        assert_eq!(regions.len(), 7);
        assert_eq!(regions[2].get("perms"), &s("rw-s"));
        assert_eq!(regions[2].get("shared"), &Json::Bool(true));
        assert_eq!(regions[4].get("growsdown"), &Json::Bool(true));
        assert_eq!(regions[3].get("kind"), &s("ckpt"));
        assert_eq!(regions[1].get("range"), &s("555500008000-555500010000"));
        assert_eq!(regions[1].get("extents").items().len(), 2);
        assert_eq!(v.get("totals").get("stored"), &num(13 * P));
        assert_eq!(v.get("verify").get("ok"), &Json::Bool(true));
        // What the format gained since schema 1 was first written: new
        // members, appended; "verify" stays last.
        assert_eq!(threads[0].get("comm"), &s("worker\u{1}"));
        assert_eq!(threads[0].get("pending"), &s("0x800"));
        assert_eq!(threads[1].get("pending"), &s("0x0"));
        let id = regions[0].get("file_id");
        assert_eq!(id.get("ino"), &num(1_234_567));
        assert_eq!(id.get("mtime_ns"), &num(1_690_000_000_000_000_001));
        assert_eq!(regions[1].get("file_id").get("dev"), &num(0));
        assert_eq!(v.get("totals").get("fds"), &num(6));
        let p = v.get("process");
        assert_eq!(p.get("valid"), &s("0xf"));
        assert_eq!(p.get("itimers").get("real").get("value_ns"), &num(1_500_000_000));
        assert_eq!(p.get("itimers").get("real").get("interval_ns"), &num(250_000_000));
        assert_eq!(p.get("itimers").get("virtual").get("value_ns"), &num(0));
        let rlimits = p.get("rlimits");
        assert_eq!(rlimits.members().len(), NLIMITS);
        assert_eq!(rlimits.get("NOFILE").get("soft"), &num(1024));
        assert_eq!(rlimits.get("STACK").get("hard"), &Json::Null);
        assert_eq!(rlimits.get("RTTIME").get("soft"), &Json::Null);
        assert_eq!(p.get("pending"), &s("0x4200"));
        assert_eq!(p.get("pdeathsig"), &num(15));
        assert_eq!(p.get("dumpable"), &num(1));
        assert_eq!(p.get("child_subreaper"), &num(0));
        let files = v.get("files").items();
        assert_eq!(files.len(), 6);
        let f = &files[1];
        assert_eq!(f.get("fd"), &num(1));
        assert_eq!(f.get("kind"), &s("file"));
        assert_eq!(f.get("access"), &s("wronly"));
        assert_eq!(f.get("append"), &Json::Bool(true));
        assert_eq!(f.get("nonblock"), &Json::Bool(false));
        assert_eq!(f.get("cloexec"), &Json::Bool(true));
        assert_eq!(f.get("flags"), &s("0x8401"));
        assert_eq!(f.get("fd_flags"), &s("0x1"));
        assert_eq!(f.get("offset"), &num(1234));
        assert_eq!(f.get("path"), &s("/tmp/out put.txt"));
        assert_eq!(f.get("restored"), &Json::Bool(true));
        assert_eq!(f.get("mode"), &num(0o100644));
        assert_eq!(files[2].get("kind"), &s("pipe-r"));
        assert_eq!(files[2].get("data_len"), &num(6));
        assert_eq!(files[2].get("pipe"), &num(77));
        assert_eq!(files[2].get("nonblock"), &Json::Bool(true));
        assert_eq!(files[5].get("kind"), &s("lost"));
        assert_eq!(files[5].get("restored"), &Json::Bool(false));
        let keys: Vec<&str> = v.members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[keys.len() - 6..], ["totals", "process", "files", "chain", "compression", "verify"]);
        // Without --verify there is no verify member.
        let v = Json::parse(&on(&["--json"], &t).1);
        assert!(v.members().iter().all(|(k, _)| k != "verify"));
    }

    #[test]
    fn broken_images_are_refused_in_one_line() {
        let file = sample();
        assert_eq!(refused(b""), "the image file is empty");
        assert_eq!(refused(b"hello"), "not a ckpt image (bad magic number)");
        assert_eq!(refused(&file[..100]), "the image is truncated (shorter than its header says)");
        assert_eq!(refused(&file[..file.len() - 1]), "the image is truncated (shorter than its header says)");
        let mut newer = file.clone();
        newer[8] += 1;
        assert_eq!(refused(&newer), "the image was written by a newer ckpt (format version too new)");
        let mut bad = file.clone();
        bad[40] ^= 1;
        assert_eq!(refused(&bad), "the image header is corrupted (checksum mismatch)");
        let mut bad = file.clone();
        bad[HEADER_SPACE as usize + 3] ^= 1;
        assert!(refused(&bad).contains("checksum mismatch"));
        // Every truncation and every flipped header/metadata byte is refused.
        let meta_end = HEADER_SPACE as usize + Header::parse(&file, file.len() as u64).unwrap().meta_len as usize;
        for len in (0..file.len()).step_by(509) {
            refused(&file[..len]);
        }
        for i in (0..HEADER_SIZE).chain(HEADER_SPACE as usize..meta_end).step_by(7) {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            refused(&bad);
        }
    }

    #[test]
    fn missing_files_and_directories() {
        let dir = std::env::temp_dir();
        let (code, out, err) = readckpt(&[dir.clone().into_os_string()]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, format!("readckpt: {}: Is a directory\n", dir.display()));
        let (code, _, err) = readckpt(&["/nonexistent/x.dat".into()]);
        assert_eq!((code, err.as_str()), (1, "readckpt: /nonexistent/x.dat: No such file or directory\n"));
        let (code, _, err) = readckpt(&["/dev/null".into()]);
        assert_eq!((code, err.as_str()), (1, "readckpt: /dev/null: not a regular file\n"));
    }

    #[test]
    fn usage() {
        for args in [&[][..], &["--bogus", "x"], &["a", "b"], &["--json"]] {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            let (code, out, err) = readckpt(&args);
            assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
            assert!(err.starts_with("readckpt: ") && err.lines().count() == 1, "{err}");
        }
        let (code, out, _) = readckpt(&["--help".into()]);
        assert!(code == 0 && out.contains("Example:\n  readckpt --verify"));
        let (code, out, _) = readckpt(&["--json".into(), "--version".into()]);
        assert_eq!((code, out.as_str()), (0, "readckpt 0.1.0\n"));
        // After "--", an option-like name is a file name.
        let (code, _, err) = readckpt(&["--".into(), "--json".into()]);
        assert_eq!((code, err.as_str()), (1, "readckpt: --json: No such file or directory\n"));
    }

    /// Name, offset and size of each field of a struct, in declaration order.
    macro_rules! fields {
        ($t:ty: $($f:ident),+ $(,)?) => {
            vec![$((stringify!($f), offset_of!($t, $f), field_size(|s: &$t| &s.$f))),+]
        };
    }

    fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
        core::mem::size_of::<F>()
    }

    /// The rows (field, offset, size) of the first table after `heading`.
    fn doc_table(doc: &str, heading: &str) -> Vec<(String, usize, usize)> {
        let start = doc.find(heading).unwrap_or_else(|| panic!("docs/FORMAT.md has no {heading:?}"));
        let rows =
            doc[start..].lines().skip_while(|l| !l.starts_with("| off ")).skip(2).take_while(|l| l.starts_with('|'));
        rows.map(|row| {
            let c: Vec<&str> = row.split('|').map(str::trim).collect();
            let n = |s: &str| s.parse().unwrap_or_else(|_| panic!("bad number in {row}"));
            (c[3].trim_matches('`').to_string(), n(c[1]), n(c[2]))
        })
        .collect()
    }

    /// The field names of the sentence that starts with `start`: what is
    /// in backquotes after its last colon ("… two `u64`: `a`, `b`.").
    fn doc_prose(doc: &str, start: &str) -> Vec<String> {
        let at = doc.find(start).unwrap_or_else(|| panic!("docs/FORMAT.md has no {start:?}"));
        let text = &doc[at + start.len()..];
        let end = ["\n\n", ". ", ".\n"].iter().filter_map(|e| text.find(e)).min().unwrap_or(text.len());
        let text = &text[..end];
        let list = &text[text.rfind(':').map_or(0, |i| i + 1)..];
        list.split('`').skip(1).step_by(2).map(String::from).collect()
    }

    /// docs/FORMAT.md states every struct's size and every field's offset
    /// and size as the compiler lays them out. `cargo test format_doc_sizes
    /// -- --nocapture` prints the tables.
    #[test]
    fn format_doc_sizes() {
        use ckpt_image::{MmLayout, ProcessState};
        use core::mem::size_of;
        let doc = include_str!("../../../docs/FORMAT.md");
        let header = fields!(Header: magic, version, arch, page_size, header_size, created_ns,
            capture_ns, pid, n_threads, n_regions, n_extents, meta_offset, meta_len,
            meta_checksum, strings_len, data_offset, data_len, file_len, xfeatures, xsave_size,
            leader, n_fds, _pad, mm, process, auxv, auxv_words, umask, comm, cmdline, cwd, exe,
            required_xfeatures, cpu_level, portable_level, cpu_brand, xlayout, chain_depth, _pad2, parents,
            header_checksum);
        let process = fields!(ProcessState: itimers, rlimits, pending, pdeathsig, dumpable,
            child_subreaper, valid, interval_ms, interval_signal, _pad, timers, reserved);
        let posix_timer = fields!(ckpt_image::timers::PosixTimer: id, clock, notify, signal, tid, _pad, value,
            value_ns, interval_ns);
        let region = fields!(Region: start, end, prot, flags, kind, n_extents, first_extent, _pad,
            file_offset, file, path);
        let extent = fields!(Extent: addr, len, file_pos, checksum, stored_len, encoding, source);
        let parent = fields!(ckpt_image::Parent: id, file_len, name);
        let thread = fields!(Thread: tid, tid_offset, ucontext, fs_base, gs_base, rseq_area,
            rseq_len, rseq_sig, clear_child_tid, robust_list, robust_len, gregs, sigmask, comm,
            pending, fpstate, xstate_bv, xinuse);
        let sigaction = fields!(SigAction: handler, flags, restorer, mask);
        let fd = fields!(Fd: fd, kind, flags, fd_flags, offset, size, dev, ino, mtime_ns, mode,
            shared, pipe, path, data);
        let mm = fields!(MmLayout: start_code, end_code, start_data, end_data, start_brk, brk,
            start_stack, arg_start, arg_end, env_start, env_end);
        let file_id = fields!(FileId: dev, ino, size, mtime_ns);
        let itimer = fields!(ITimer: interval_ns, value_ns);
        let strref = fields!(StrRef: offset, len);
        use ckpt_image::events::{
            EpollTarget, EventFdState, FileLock, InotifyWatch, MemfdState, SignalFdState, SocketState, TimerFdState,
        };
        let eventfd = fields!(EventFdState: count, semaphore, _pad);
        let timerfd = fields!(TimerFdState: clockid, settime_flags, ticks, value_ns, interval_ns, realtime_ns);
        let signalfd = fields!(SignalFdState: mask);
        let epoll = fields!(EpollTarget: tfd, fd, events, _pad, data);
        let socket = fields!(SocketState: sock_type, n_msgs);
        let inotify = fields!(InotifyWatch: wd, mask, path);
        let lock = fields!(FileLock: kind, write, start, len);
        let memfd = fields!(MemfdState: seals, _pad, size);
        use ckpt_image::job::{JobHeader, Link, Member, SharedMap};
        let job_header = fields!(JobHeader: magic, version, n_members, n_links, n_shared, created_ns, strings_len,
            file_len, table_checksum, header_checksum);
        let member = fields!(Member: pid, ppid, pgid, sid, state, wait_status, offset, len, command);
        let link = fields!(Link: member, fd, description, channel, kind, flags, data);
        let shared = fields!(SharedMap: member, object, start, end, offset);
        // (name, size, fields, heading of its table in FORMAT.md, or None: prose)
        let structs = [
            ("Header", HEADER_SIZE, header, Some("## Header (")),
            ("ProcessState", size_of::<ProcessState>(), process, Some("### ProcessState (")),
            ("Region", size_of::<Region>(), region, Some("### Region (")),
            ("Extent", size_of::<Extent>(), extent, Some("### Extent (")),
            ("Thread", size_of::<Thread>(), thread, Some("### Thread (")),
            ("SigAction", size_of::<SigAction>(), sigaction, Some("### SigAction (")),
            ("Fd", size_of::<Fd>(), fd, Some("### Fd (")),
            ("MmLayout", size_of::<MmLayout>(), mm, None),
            ("FileId", size_of::<FileId>(), file_id, None),
            ("ITimer", size_of::<ITimer>(), itimer, None),
            ("PosixTimer", size_of::<ckpt_image::timers::PosixTimer>(), posix_timer, Some("#### PosixTimer (")),
            ("StrRef", size_of::<StrRef>(), strref, None),
            ("Parent", size_of::<ckpt_image::Parent>(), parent, None),
            ("EventFdState", size_of::<EventFdState>(), eventfd, Some("#### EventFdState (")),
            ("TimerFdState", size_of::<TimerFdState>(), timerfd, Some("#### TimerFdState (")),
            ("SignalFdState", size_of::<SignalFdState>(), signalfd, Some("#### SignalFdState (")),
            ("EpollTarget", size_of::<EpollTarget>(), epoll, Some("#### EpollTarget (")),
            ("SocketState", size_of::<SocketState>(), socket, Some("#### SocketState (")),
            ("InotifyWatch", size_of::<InotifyWatch>(), inotify, Some("#### InotifyWatch (")),
            ("FileLock", size_of::<FileLock>(), lock, Some("#### FileLock (")),
            ("MemfdState", size_of::<MemfdState>(), memfd, Some("#### MemfdState (")),
            ("JobHeader", size_of::<JobHeader>(), job_header, Some("### JobHeader (")),
            ("Member", size_of::<Member>(), member, Some("### Member (")),
            ("Link", size_of::<Link>(), link, Some("### Link (")),
            ("SharedMap", size_of::<SharedMap>(), shared, Some("### SharedMap (")),
        ];
        for (name, size, fields, heading) in &structs {
            println!("{name} ({size} bytes)");
            let mut end = 0;
            for &(field, off, len) in fields {
                println!("| {off:>4} | {len:>3} | `{field}` |");
                // Contiguous and complete: no padding, no field left out.
                assert_eq!(off, end, "{name}.{field}: a gap before it, or a field missing here");
                end = off + len;
            }
            assert_eq!(end, *size, "{name}: fields missing at the end");
            let want: Vec<(String, usize, usize)> = fields.iter().map(|&(f, o, l)| (f.to_string(), o, l)).collect();
            match heading {
                Some(heading) => {
                    let heading = format!("{heading}{size} bytes");
                    assert_eq!(doc_table(doc, &heading), want, "table after {heading:?}");
                }
                None => {
                    let start = format!("`{name}` ({size} bytes");
                    let names: Vec<String> = fields.iter().map(|f| f.0.to_string()).collect();
                    assert_eq!(doc_prose(doc, &start), names, "paragraph {start:?}");
                }
            }
        }
        // The file layout and the checksum table.
        assert!(doc.contains(&format!("HEADER_SIZE = {HEADER_SIZE} bytes")));
        assert!(doc.contains(&format!("| the {HEADER_SIZE} header bytes, with")));
        for (table, size) in [
            ("Region    [n_regions]", size_of::<Region>()),
            ("Extent    [n_extents]", size_of::<Extent>()),
            ("Thread    [n_threads]", size_of::<Thread>()),
            ("SigAction [NSIG = 65]", size_of::<SigAction>()),
            ("Fd        [n_fds]", size_of::<Fd>()),
        ] {
            let line = doc.lines().find(|l| l.contains(table)).expect(table);
            assert!(line.contains(&format!(" {size} bytes each")), "{line}");
        }
        assert_eq!((HEADER_SIZE, size_of::<Region>(), size_of::<Thread>(), size_of::<Fd>()), (1880, 88, 312, 88));
    }

    /// A writer whose reader has gone away.
    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn closed_pipe_is_quiet() {
        let t = Temp::new(&sample());
        for opts in [&[][..], &["--json"], &["--help"]] {
            let mut args: Vec<OsString> = opts.iter().map(OsString::from).collect();
            args.push(t.arg());
            let mut err = Vec::new();
            assert_eq!(run(&args, &mut io::BufWriter::new(ClosedPipe), &mut err), 0);
            assert!(err.is_empty());
        }
        let mut full = io::BufWriter::new(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap());
        let mut err = Vec::new();
        assert_eq!(run(&[t.arg()], &mut full, &mut err), 1);
        assert_eq!(String::from_utf8(err).unwrap(), "readckpt: write error: No space left on device\n");
    }

    #[test]
    fn helpers() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(4_107_542_399_999_000_000), "2100-02-28T23:59:59.999Z");
        assert_eq!(iso8601(u64::MAX), "2554-07-21T23:34:33.709Z");
        assert_eq!(human(0), "0B");
        assert_eq!(human(12 * 1024), "12.0K");
        assert_eq!(human(1536 * 1024), "1.5M");
        assert_eq!(human(u64::MAX), "16777216.0T");
        assert_eq!(duration(1_500), "1.5 µs");
        assert_eq!(duration(2_500_000_000), "2.500 s");
        assert_eq!(shell_quote(b"a-b/c.d"), "a-b/c.d");
        assert_eq!(shell_quote(b"*"), "'*'");
        assert_eq!(shell_quote(b"\xff'\\"), "$'\\xff\\'\\\\'");
        assert_eq!(xfeature_names(0x60003), ["x87", "SSE", "AMX"]);
        assert_eq!(jstr("a\"\\\n\u{1}é\u{7f}".as_bytes()), "\"a\\\"\\\\\\n\\u0001é\u{7f}\"");
        assert_eq!(jstr(b"\xff"), "\"\u{fffd}\"");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(64), "SIGRTMIN+30");
    }

    /// A strict little JSON reader, to check the output is well formed.
    #[derive(Debug, PartialEq)]
    enum Json {
        Null,
        Bool(bool),
        Num(String),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn parse(text: &str) -> Json {
            let mut p = text.as_bytes();
            let v = Json::value(&mut p);
            assert!(Json::ws(&mut p).is_empty(), "trailing text: {:?}", String::from_utf8_lossy(p));
            v
        }
        fn ws<'a>(p: &mut &'a [u8]) -> &'a [u8] {
            while let [b' ' | b'\n' | b'\t' | b'\r', rest @ ..] = p {
                *p = rest;
            }
            p
        }
        fn eat(p: &mut &[u8], token: &str) -> bool {
            Json::ws(p);
            let hit = p.starts_with(token.as_bytes());
            if hit {
                *p = &p[token.len()..];
            }
            hit
        }
        fn value(p: &mut &[u8]) -> Json {
            match *Json::ws(p).first().expect("value expected") {
                b'{' => Json::Obj(Json::seq(p, b'{', b'}', |p| {
                    let Json::Str(k) = Json::value(p) else { panic!("key expected") };
                    assert!(Json::eat(p, ":"), "':' expected");
                    (k, Json::value(p))
                })),
                b'[' => Json::Arr(Json::seq(p, b'[', b']', Json::value)),
                b'"' => Json::Str(Json::string(p)),
                b't' if Json::eat(p, "true") => Json::Bool(true),
                b'f' if Json::eat(p, "false") => Json::Bool(false),
                b'n' if Json::eat(p, "null") => Json::Null,
                b'-' | b'0'..=b'9' => {
                    let n = p.iter().take_while(|c| c.is_ascii_digit() || b"-+.eE".contains(c)).count();
                    let s = std::str::from_utf8(&p[..n]).unwrap().to_string();
                    assert!(s == "0" || !s.starts_with('0'), "bad number {s}");
                    *p = &p[n..];
                    Json::Num(s)
                }
                c => panic!("unexpected {:?}", c as char),
            }
        }
        fn seq<T>(p: &mut &[u8], open: u8, close: u8, item: impl Fn(&mut &[u8]) -> T) -> Vec<T> {
            assert_eq!(p[0], open);
            *p = &p[1..];
            let mut items = Vec::new();
            if Json::eat(p, std::str::from_utf8(&[close]).unwrap()) {
                return items;
            }
            loop {
                items.push(item(p));
                if Json::eat(p, std::str::from_utf8(&[close]).unwrap()) {
                    return items;
                }
                assert!(Json::eat(p, ","), "',' expected at {:?}", String::from_utf8_lossy(&p[..20.min(p.len())]));
            }
        }
        fn string(p: &mut &[u8]) -> String {
            let mut s = Vec::new();
            *p = &p[1..];
            loop {
                let (c, rest) = p.split_first().expect("unterminated string");
                *p = rest;
                match c {
                    b'"' => return String::from_utf8(s).unwrap(),
                    b'\\' => {
                        let (e, rest) = p.split_first().unwrap();
                        *p = rest;
                        let c = match e {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            b'"' | b'\\' | b'/' => *e as char,
                            b'u' => {
                                let hex = std::str::from_utf8(&p[..4]).unwrap();
                                *p = &p[4..];
                                char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap()
                            }
                            _ => panic!("bad escape"),
                        };
                        s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    c if *c < 0x20 => panic!("raw control character in string"),
                    c => s.push(*c),
                }
            }
        }
        fn members(&self) -> &[(String, Json)] {
            match self {
                Json::Obj(m) => m,
                _ => panic!("not an object: {self:?}"),
            }
        }
        fn get(&self, key: &str) -> &Json {
            let m = self.members();
            let mut hits = m.iter().filter(|(k, _)| k == key);
            let v = &hits.next().unwrap_or_else(|| panic!("no {key}")).1;
            assert!(hits.next().is_none(), "duplicate {key}");
            v
        }
        fn items(&self) -> &[Json] {
            match self {
                Json::Arr(a) => a,
                _ => panic!("not an array"),
            }
        }
    }
}

// ---------------------------------------------------------------- job images

/// Job images (`ckpt --tree`): the member table, then each process image.
mod job {
    use super::{inspect_at, jarray, jobj, jstr, os_message, read_error, shell_quote, Failure, Options};
    use ckpt_image::job::{self as fmt, JobHeader, Member, JOB_HEADER_SIZE, MEMBER_ZOMBIE};
    use std::ffi::OsString;
    use std::fs::File;
    use std::io::{self, Read, Write};

    /// A job image's validated header and table.
    pub struct JobImage {
        header: JobHeader,
        table: Vec<u8>,
    }

    impl JobImage {
        fn job(&self) -> fmt::Job<'_> {
            fmt::Job::parse(self.header, &self.table).expect("validated by open")
        }
    }

    /// The job image at `path`, or None if it is not one (a process image).
    pub fn open(path: &OsString) -> Result<Option<JobImage>, String> {
        // stat before open: opening a FIFO would block (Image::open says
        // what is wrong with anything but a regular file).
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let Ok(mut file) = File::open(path) else { return Ok(None) };
        let len = file.metadata().map_err(|e| os_message(&e))?.len();
        let mut head = Vec::new();
        (&mut file).take(JOB_HEADER_SIZE as u64).read_to_end(&mut head).map_err(|e| os_message(&e))?;
        if !fmt::is_job(&head) {
            return Ok(None);
        }
        let header = JobHeader::parse(&head, len).map_err(|e| e.message().to_string())?;
        let mut table = vec![0; header.table_len() as usize];
        file.read_exact(&mut table).map_err(|e| read_error(&e))?;
        fmt::Job::parse(header, &table).map_err(|e| e.message().to_string())?;
        Ok(Some(JobImage { header, table }))
    }

    fn state(m: &Member) -> String {
        if m.state == MEMBER_ZOMBIE {
            format!("exited (wait status {:#x}), not yet waited for", m.wait_status)
        } else {
            "running".into()
        }
    }

    fn command(job: &fmt::Job, m: &Member) -> Vec<Vec<u8>> {
        let c = job.command(m);
        let c = c.strip_suffix(b"\0").unwrap_or(c);
        if c.is_empty() {
            return Vec::new();
        }
        c.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
    }

    /// Prints the member table, then each running member's process image
    /// as readckpt shows one (and verifies it, with --verify).
    pub fn inspect(opts: &Options, name: &str, image: &JobImage, out: &mut dyn Write) -> Result<(), Failure> {
        let job = image.job();
        let members: Vec<Member> = (0..job.len()).map(|i| job.member(i)).collect();
        let mut result = Ok(());
        if opts.json {
            let mut reports = Vec::new();
            for m in members.iter().filter(|m| m.state != MEMBER_ZOMBIE) {
                let mut buf = Vec::new();
                let r = inspect_at(opts, name, m.offset, &mut buf);
                reports.push(String::from_utf8_lossy(&buf).trim_end().to_string());
                result = result.and_then(|()| r.map_err(|e| in_member(m.pid, e)));
            }
            let table = members.iter().map(|m| {
                jobj(&[
                    ("pid", m.pid.to_string()),
                    ("ppid", m.ppid.to_string()),
                    ("pgid", m.pgid.to_string()),
                    ("sid", m.sid.to_string()),
                    ("state", jstr(if m.state == MEMBER_ZOMBIE { b"zombie" } else { b"running" })),
                    ("wait_status", m.wait_status.to_string()),
                    ("offset", m.offset.to_string()),
                    ("length", m.len.to_string()),
                    ("command", jarray(command(&job, m).iter().map(|a| jstr(a)).collect())),
                ])
            });
            let links = (0..job.header.n_links as usize).map(|i| {
                let l = job.link(i);
                jobj(&[
                    ("pid", members[l.member as usize].pid.to_string()),
                    ("fd", l.fd.to_string()),
                    ("description", l.description.to_string()),
                    ("channel", l.channel.to_string()),
                    (
                        "kind",
                        jstr(match l.kind {
                            fmt::LINK_PIPE => b"pipe",
                            fmt::LINK_PIPE_ENDED => b"pipe-ended",
                            fmt::LINK_SOCKET => b"socket",
                            _ => b"file",
                        }),
                    ),
                    ("waiting", jstr(job.string(l.data))),
                ])
            });
            let shared = (0..job.header.n_shared as usize).map(|i| {
                let m = job.shared(i);
                jobj(&[
                    ("pid", members[m.member as usize].pid.to_string()),
                    ("object", m.object.to_string()),
                    ("start", m.start.to_string()),
                    ("end", m.end.to_string()),
                    ("offset", m.offset.to_string()),
                ])
            });
            let j = jobj(&[
                ("job", jarray(table.collect())),
                ("links", jarray(links.collect())),
                ("shared_memory", jarray(shared.collect())),
                ("processes", jarray(reports)),
            ]);
            writeln!(out, "{j}")?;
            out.flush()?;
            return result;
        }
        writeln!(out, "job:          {} processes (the first is the one ckpt started)", members.len())?;
        writeln!(out, "  {:>7} {:>7} {:>7} {:>7}  {:<10} command", "pid", "ppid", "pgid", "sid", "state")?;
        for m in &members {
            let cmd: Vec<String> = command(&job, m).iter().map(|a| shell_quote(a)).collect();
            let st = if m.state == MEMBER_ZOMBIE { "zombie" } else { "running" };
            writeln!(out, "  {:>7} {:>7} {:>7} {:>7}  {:<10} {}", m.pid, m.ppid, m.pgid, m.sid, st, cmd.join(" "))?;
        }
        write_links(out, &job, &members)?;
        write_shared(out, &job, &members)?;
        for m in &members {
            writeln!(out, "\nprocess {}: {}", m.pid, state(m))?;
            if m.state == MEMBER_ZOMBIE {
                continue;
            }
            let r = inspect_at(opts, name, m.offset, out);
            if let Err(Failure::Output(e)) = r {
                return Err(Failure::Output(e));
            }
            result = result.and_then(|()| r.map_err(|e| in_member(m.pid, e)));
        }
        out.flush()?;
        result
    }

    /// The descriptors that tie the processes together, one line per open
    /// file description: its descriptors (pid:fd), and for a pipe the
    /// bytes that were waiting in it.
    fn write_links(out: &mut dyn Write, job: &fmt::Job, members: &[Member]) -> io::Result<()> {
        let links: Vec<fmt::Link> = (0..job.header.n_links as usize).map(|i| job.link(i)).collect();
        if links.is_empty() {
            return Ok(());
        }
        writeln!(out, "shared by the processes (open file descriptions):")?;
        let mut seen = Vec::new();
        for l in &links {
            if seen.contains(&l.description) {
                continue;
            }
            seen.push(l.description);
            let fds: Vec<String> = links
                .iter()
                .filter(|o| o.description == l.description)
                .map(|o| format!("{}:{}", members[o.member as usize].pid, o.fd))
                .collect();
            write!(out, "  {:<4} {}", l.description, fds.join(" "))?;
            let waiting: usize =
                links.iter().filter(|o| o.description == l.description).map(|o| o.data.len as usize).sum();
            match l.kind {
                fmt::LINK_PIPE => write!(out, "  (pipe {}, {waiting} bytes waiting)", l.channel)?,
                fmt::LINK_PIPE_ENDED => {
                    write!(out, "  (pipe {}, its writers gone, {waiting} bytes waiting)", l.channel)?
                }
                fmt::LINK_SOCKET if l.channel != 0 => write!(out, "  (connected UNIX socket, pair {})", l.channel)?,
                fmt::LINK_SOCKET => write!(out, "  (socket)")?,
                _ => {}
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// The memory mapped shared by several processes, one line per
    /// object: its mappings (pid start-end).
    fn write_shared(out: &mut dyn Write, job: &fmt::Job, members: &[Member]) -> io::Result<()> {
        let maps: Vec<fmt::SharedMap> = (0..job.header.n_shared as usize).map(|i| job.shared(i)).collect();
        if maps.is_empty() {
            return Ok(());
        }
        writeln!(out, "memory shared by the processes:")?;
        let mut seen = Vec::new();
        for m in &maps {
            if seen.contains(&m.object) {
                continue;
            }
            seen.push(m.object);
            let at: Vec<String> = maps
                .iter()
                .filter(|o| o.object == m.object)
                .map(|o| format!("{}:{:#x}-{:#x}+{:#x}", members[o.member as usize].pid, o.start, o.end, o.offset))
                .collect();
            writeln!(out, "  {:<4} {}", m.object, at.join(" "))?;
        }
        Ok(())
    }

    fn in_member(pid: u32, f: Failure) -> Failure {
        match f {
            Failure::Image(why) => Failure::Image(format!("process {pid}: {why}")),
            other => other,
        }
    }
}
