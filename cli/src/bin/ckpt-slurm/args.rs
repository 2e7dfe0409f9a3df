//! ckpt-slurm's command line: its own options, and ckpt's, which it passes
//! on to ckpt (it reads only the three it needs itself: the image path, the
//! checkpoint signal and the number of images kept).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::process::exit;

pub const USAGE: &str = "\
usage: ckpt-slurm [OPTIONS] [CKPT OPTIONS] PROGRAM [ARGS...]

Runs PROGRAM under ckpt inside a SLURM batch job, so that the job survives
its time limit: when SLURM sends its warning signal (sbatch --signal=B:USR1@T),
the program is checkpointed and stops, and the job is requeued
(scontrol requeue $SLURM_JOB_ID); when the requeued job starts again,
ckpt-slurm restarts the program from the image instead of starting it anew.
When the program ends with status 0, the images are removed; ckpt-slurm
exits with the program's status. Start it with exec from the batch script, so that it is the
process SLURM signals:

  #!/bin/bash
  #SBATCH --time=4:00:00 --signal=B:USR1@300 --requeue --open-mode=append
  exec ckpt-slurm -o $HOME/ckpt/sim.dat ./sim input.cfg

Options:
  -o, --output PATH      the image (default: ckpt-$SLURM_JOB_ID.dat in the
                         working directory); the same path in every run of
                         the job
  -w, --warning SIG      the signal SLURM sends before the time limit
                         (default USR1, as in --signal=B:USR1@300)
      --keep-images      keep the images when the program ends well (they are
                         always kept when it fails)
  -h, --help             this help
  -V, --version          the version

Every other option is ckpt's, passed on to it (see ckpt --help):
--continue, -i/--interval TIME, --keep N, -s/--signal SIG, --portable,
-q, -v; they apply to the first run, and the image keeps them for the runs
that restart it.

An image found at PATH is restarted only if it is a regular file of this user
and was taken from the same command line (PROGRAM ARGS); anything else there
is refused, untouched. While it runs, ckpt-slurm holds PATH.lock: a second
job with the same PATH stops at once.

Exit status: the program's own; 0 when the job was requeued after a
checkpoint; 1 if the image at PATH cannot be used or is another job's, or
the requeue failed (the image is kept); 2 for a usage error.";

/// Exit status of a usage error.
pub const USAGE_ERROR: i32 = 2;

pub fn fail(status: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("ckpt-slurm: {msg}");
    exit(status)
}

pub fn usage(msg: impl std::fmt::Display) -> ! {
    fail(USAGE_ERROR, format!("{msg} (try: ckpt-slurm --help)"))
}

pub struct Options {
    /// The image, as given (or from CKPT_OUTPUT); None: the default.
    pub output: Option<OsString>,
    /// The signal SLURM warns with.
    pub warning: i32,
    pub keep_images: bool,
    /// The checkpoint signal ckpt will arm.
    pub signal: i32,
    /// Images ckpt keeps (`--keep`).
    pub keep: u32,
    /// ckpt's options, as given, but `-o`.
    pub ckpt_options: Vec<OsString>,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// A signal that can be caught, by name or number.
fn parse_signal(option: &str, v: &OsStr) -> i32 {
    match ckpt_image::signals::parse(v.as_bytes()) {
        Some(sig) if sig != libc::SIGKILL && sig != libc::SIGSTOP => sig,
        _ => usage(format!("{option}: bad signal {:?}; give a name like USR1 or a number", v.to_string_lossy())),
    }
}

fn parse_keep(option: &str, v: &OsStr) -> u32 {
    match v.to_str().and_then(|s| s.trim().parse::<u32>().ok()) {
        Some(n) if n >= 1 => n,
        _ => usage(format!("{option}: bad number of images {:?}", v.to_string_lossy())),
    }
}

fn env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

pub fn parse() -> Options {
    let mut args = std::env::args_os().skip(1);
    let mut o = Options {
        output: None,
        warning: libc::SIGUSR1,
        keep_images: false,
        signal: 0,
        keep: 0,
        ckpt_options: Vec::new(),
        program: OsString::new(),
        args: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        // "--name=value" and "-xVALUE" forms.
        let (name, inline): (&[u8], Option<OsString>) = if bytes.starts_with(b"--") {
            match bytes.iter().position(|&c| c == b'=') {
                Some(eq) => (&bytes[..eq], Some(OsStr::from_bytes(&bytes[eq + 1..]).to_owned())),
                None => (bytes, None),
            }
        } else if bytes.len() > 2 && bytes[0] == b'-' && matches!(bytes[1], b'o' | b'w' | b'i' | b's') {
            (&bytes[..2], Some(OsStr::from_bytes(&bytes[2..]).to_owned()))
        } else {
            (bytes, None)
        };
        let shown = String::from_utf8_lossy(name).into_owned();
        let mut value = || match inline.clone().or_else(|| args.next()) {
            Some(v) => v,
            None => usage(format!("{shown} needs a value")),
        };
        match name {
            b"-h" | b"--help" => {
                println!("{USAGE}");
                exit(0)
            }
            b"-V" | b"--version" => {
                println!("ckpt-slurm {}", env!("CARGO_PKG_VERSION"));
                exit(0)
            }
            b"--keep-images" => o.keep_images = true,
            b"-w" | b"--warning" => o.warning = parse_signal(&shown, &value()),
            b"-o" | b"--output" => o.output = Some(value()).filter(|v| !v.is_empty()),
            // ckpt's options with a value: passed on, the two it needs read.
            b"-s" | b"--signal" | b"--keep" | b"-i" | b"--interval" => {
                let v = value();
                match name {
                    b"-s" | b"--signal" => o.signal = parse_signal(&shown, &v),
                    b"--keep" => o.keep = parse_keep(&shown, &v),
                    _ => {}
                }
                o.ckpt_options.push(OsString::from(&shown));
                o.ckpt_options.push(v);
            }
            b"--" => {
                o.program = args.next().unwrap_or_else(|| usage("no program given"));
                break;
            }
            // ckpt's other options: flags, or --name=value.
            _ if bytes.starts_with(b"-") && bytes.len() > 1 => o.ckpt_options.push(arg.clone()),
            _ => {
                o.program = arg;
                break;
            }
        }
    }
    if o.program.is_empty() {
        usage("no program given");
    }
    o.args = args.collect();
    // What ckpt would take from the environment, read the same way.
    o.output = o.output.or_else(|| env("CKPT_OUTPUT"));
    if o.signal == 0 {
        o.signal = env("CKPT_SIGNAL").map_or(libc::SIGUSR2, |v| parse_signal("CKPT_SIGNAL", &v));
    }
    if o.keep == 0 {
        o.keep = env("CKPT_KEEP").map_or(1, |v| parse_keep("CKPT_KEEP", &v));
    }
    if o.signal == o.warning {
        usage(format!(
            "the checkpoint signal and SLURM's warning signal are both {}; they must differ",
            ckpt_image::signals::Name(o.signal)
        ));
    }
    o
}
