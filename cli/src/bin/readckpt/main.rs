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

mod chain;
mod describe;
mod job;
mod json;
#[cfg(test)]
mod tests;
mod text;

use ckpt_image::{xstate, Extent, Header, Meta, HEADER_SIZE};
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
        json::write(out, &report)?;
    } else {
        text::write(out, &report)?;
    }
    out.flush()?;
    result
}

/// The OS error text alone ("No such file or directory"), without Rust's
/// " (os error 2)" suffix.
fn os_message(e: &io::Error) -> String {
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

// ---------------------------------------------------------------- report

/// What text and JSON output show: the validated image and, with
/// `--verify`, its verdict.
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
        describe::until_nul(&self.meta.header.comm)
    }
}
