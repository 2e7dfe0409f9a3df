//! ckpt-slurm's command line (clap): its own options, and ckpt's, which it
//! passes on to ckpt as given (it reads only the three it needs itself: the
//! image path, the checkpoint signal and the number of images kept; those
//! three also from ckpt's variables, as ckpt reads them).

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser};
use std::ffi::OsString;

const ABOUT: &str = "\
Runs PROGRAM under ckpt inside a SLURM batch job, so that the job survives
its time limit: when SLURM sends its warning signal (sbatch --signal=B:USR1@T),
the program is checkpointed and stops, and the job is requeued
(scontrol requeue $SLURM_JOB_ID); when the requeued job starts again,
ckpt-slurm restarts the program from the image instead of starting it anew.
When the program ends with status 0, the images are removed; ckpt-slurm
exits with the program's status. Start it with exec from the batch script, so
that it is the process SLURM signals:

  #!/bin/bash
  #SBATCH --time=4:00:00 --signal=B:USR1@300 --requeue --open-mode=append
  exec ckpt-slurm -o $HOME/ckpt/sim.dat ./sim input.cfg";

const AFTER_HELP: &str = "\
ckpt's options apply to the first run, and the image keeps them for the runs
that restart it.

An image found at PATH is restarted only if it is a regular file of this user
and was taken from the same command line (PROGRAM ARGS); anything else there
is refused, untouched. While it runs, ckpt-slurm holds PATH.lock: a second
job with the same PATH stops at once.

Exit status: the program's own; 0 when the job was requeued after a
checkpoint; 1 if the image at PATH cannot be used or is another job's, or
the requeue failed (the image is kept); 2 for a usage error.";

#[derive(Parser)]
#[command(
    name = "ckpt-slurm",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    override_usage = "ckpt-slurm [OPTIONS] [CKPT OPTIONS] PROGRAM [ARGS...]"
)]
struct Cli {
    /// The image (default: ckpt-$SLURM_JOB_ID.dat in the working
    /// directory); the same path in every run of the job
    #[arg(short, long, value_name = "PATH", env = "CKPT_OUTPUT", hide_env_values = true)]
    output: Option<OsString>,
    /// The signal SLURM sends before the time limit (default USR1, as in
    /// --signal=B:USR1@300)
    #[arg(short, long, value_name = "SIG", allow_hyphen_values = true)]
    warning: Option<String>,
    /// Keep the images when the program ends well (they are always kept
    /// when it fails)
    #[arg(long)]
    keep_images: bool,
    /// The program to run, and its arguments
    #[arg(value_name = "PROGRAM", required = true, num_args = 1.., trailing_var_arg = true)]
    command: Vec<OsString>,
    #[command(flatten)]
    ckpt: Ckpt,
}

/// ckpt's options: passed on to ckpt as given (see ckpt --help).
#[derive(Args)]
#[command(next_help_heading = "ckpt's options (passed on to ckpt, see ckpt --help)")]
struct Ckpt {
    /// Keep running after each checkpoint
    #[arg(long = "continue")]
    cont: bool,
    /// Also checkpoint every TIME (30, 0.5, 500ms, 5m, 1h)
    #[arg(short, long, value_name = "TIME", allow_hyphen_values = true)]
    interval: Option<String>,
    /// Keep the last N images (default 1)
    #[arg(long, value_name = "N", env = "CKPT_KEEP", hide_env_values = true, allow_hyphen_values = true)]
    keep: Option<String>,
    /// Refuse an image that cannot hold the whole job
    #[arg(long)]
    strict: bool,
    /// The checkpoint signal (default USR2)
    #[arg(short, long, value_name = "SIG", env = "CKPT_SIGNAL", hide_env_values = true)]
    #[arg(allow_hyphen_values = true)]
    signal: Option<String>,
    /// Hold glibc's CPU dispatch to LEVEL (default x86-64-v2)
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    portable: Option<String>,
    /// Replace an image at PATH that belongs to another user
    #[arg(long)]
    allow_foreign_output: bool,
    /// With --continue or --interval, keep the program paused for the whole write
    #[arg(long)]
    no_cow: bool,
    /// Write delta images
    #[arg(long)]
    incremental: bool,
    /// With --incremental: at most N deltas on a full image
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_chain: Option<String>,
    /// The whole process tree is the job (the default)
    #[arg(long)]
    tree: bool,
    /// Only the program is the job
    #[arg(long)]
    no_tree: bool,
    /// Let the file locks go when the program stops (no lock keeper)
    #[arg(long)]
    release_locks: bool,
    /// Store the memory in the images compressed with CODEC (lz4, the default)
    #[arg(long, value_name = "CODEC", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    compress: Option<String>,
    /// No line on stderr when a checkpoint is written
    #[arg(short, long)]
    quiet: bool,
    /// Say more on stderr
    #[arg(short, long)]
    verbose: bool,
}

pub fn fail(status: i32, msg: impl std::fmt::Display) -> ! {
    ckpt_cli::fail("ckpt-slurm", status, msg)
}

pub fn usage(msg: impl std::fmt::Display) -> ! {
    ckpt_cli::usage("ckpt-slurm", msg)
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
    /// ckpt's options from the command line, in their order.
    pub ckpt_options: Vec<OsString>,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// A signal that can be caught, by name or number.
fn parse_signal(v: &str) -> Result<i32, String> {
    match ckpt_image::signals::parse(v.as_bytes()) {
        Some(sig) if sig != libc::SIGKILL && sig != libc::SIGSTOP => Ok(sig),
        _ => Err(format!("bad signal {v:?}; give a name like USR1 or a number")),
    }
}

fn parse_keep(v: &str) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("bad number of images {v:?}")),
    }
}

/// A value from the command line, or else from its variable (empty: unset),
/// through `parse`; a bad one is a usage error naming the option, or the
/// variable.
fn checked<T>(m: &ArgMatches, id: &str, v: Option<String>, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
    let v = v?;
    let var = match m.value_source(id) {
        Some(ValueSource::EnvVariable) if v.is_empty() => return None,
        Some(ValueSource::EnvVariable) => Some(format!("CKPT_{}", id.to_ascii_uppercase())),
        _ => None,
    };
    parse(&v).map(Some).unwrap_or_else(|e| usage(format!("{}: {e}", var.unwrap_or(format!("--{id}")))))
}

/// ckpt's options that were on the command line, as ckpt takes them, in
/// their order (ckpt's -q and -v: the last one wins).
fn ckpt_options(m: &ArgMatches, c: &Ckpt) -> Vec<OsString> {
    let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let mut options: Vec<(usize, Vec<String>)> = Vec::new();
    let mut add = |id: &str, words: Vec<String>| {
        if given(id) {
            options.push((m.index_of(id).unwrap_or(0), words));
        }
    };
    let flag = |name: &str| vec![format!("--{name}")];
    let valued = |name: &str, v: &Option<String>| vec![format!("--{name}"), v.clone().unwrap_or_default()];
    add("cont", flag("continue"));
    add("interval", valued("interval", &c.interval));
    add("keep", valued("keep", &c.keep));
    add("strict", flag("strict"));
    add("signal", valued("signal", &c.signal));
    let level = c.portable.as_deref().unwrap_or_default();
    add("portable", vec![if level.is_empty() { "--portable".into() } else { format!("--portable={level}") }]);
    add("allow_foreign_output", flag("allow-foreign-output"));
    add("no_cow", flag("no-cow"));
    add("incremental", flag("incremental"));
    add("max_chain", valued("max-chain", &c.max_chain));
    add("tree", flag("tree"));
    add("no_tree", flag("no-tree"));
    add("release_locks", flag("release-locks"));
    let codec = c.compress.as_deref().unwrap_or_default();
    add("compress", vec![if codec.is_empty() { "--compress".into() } else { format!("--compress={codec}") }]);
    add("quiet", flag("quiet"));
    add("verbose", flag("verbose"));
    options.sort_by_key(|(index, _)| *index);
    options.into_iter().flat_map(|(_, words)| words).map(OsString::from).collect()
}

pub fn parse() -> Options {
    parse_from(std::env::args_os())
}

fn parse_from(args: impl IntoIterator<Item = OsString>) -> Options {
    let (m, cli) = ckpt_cli::parse_args::<Cli>("ckpt-slurm", args);
    let warning = checked(&m, "warning", cli.warning.clone(), parse_signal).unwrap_or(libc::SIGUSR1);
    let signal = checked(&m, "signal", cli.ckpt.signal.clone(), parse_signal).unwrap_or(libc::SIGUSR2);
    let keep = checked(&m, "keep", cli.ckpt.keep.clone(), parse_keep).unwrap_or(1);
    if signal == warning {
        usage(format!(
            "the checkpoint signal and SLURM's warning signal are both {}; they must differ",
            ckpt_image::signals::Name(signal)
        ));
    }
    let mut command = cli.command.into_iter();
    let Some(program) = command.next().filter(|p| !p.is_empty()) else { usage("no program given") };
    Options {
        output: cli.output.filter(|v| !v.is_empty()),
        warning,
        keep_images: cli.keep_images,
        signal,
        keep,
        ckpt_options: ckpt_options(&m, &cli.ckpt),
        program,
        args: command.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Options {
        parse_from(["ckpt-slurm"].iter().chain(args).map(OsString::from))
    }

    /// ckpt's options go to ckpt in the order given (its -q and -v: the
    /// last wins), with their values; the three ckpt-slurm needs are read.
    #[test]
    fn ckpt_options_are_passed_on_in_order() {
        let o = parse(&["-v", "-i", "10m", "-w", "USR2", "-qs", "HUP", "--portable", "--keep=3", "--", "prog", "-v"]);
        let want = ["--verbose", "--interval", "10m", "--quiet", "--signal", "HUP", "--portable", "--keep", "3"];
        assert_eq!(o.ckpt_options, want.map(OsString::from));
        assert_eq!((o.warning, o.signal, o.keep), (libc::SIGUSR2, libc::SIGHUP, 3));
        assert_eq!((o.program.to_str(), &o.args[..]), (Some("prog"), &[OsString::from("-v")][..]));
        let o = parse(&["--portable=x86-64-v3", "--continue", "--strict", "--allow-foreign-output", "prog"]);
        let want = ["--portable=x86-64-v3", "--continue", "--strict", "--allow-foreign-output"];
        assert_eq!(o.ckpt_options, want.map(OsString::from));
        let o = parse(&["--incremental", "--max-chain", "3", "--compress", "--no-cow", "--tree", "prog"]);
        let want = ["--incremental", "--max-chain", "3", "--compress", "--no-cow", "--tree"];
        assert_eq!(o.ckpt_options, want.map(OsString::from));
        let o2 = parse(&["--tree", "--no-tree", "--release-locks", "prog"]);
        assert_eq!(o2.ckpt_options, ["--tree", "--no-tree", "--release-locks"].map(OsString::from));
        assert_eq!(parse(&["--compress=lz4", "prog"]).ckpt_options, ["--compress=lz4"].map(OsString::from));
        assert!(o.output.is_none() && !o.keep_images);
    }

    /// The variables ckpt-slurm reads are ckpt's own, declared with their
    /// options (so that --help shows them).
    #[test]
    fn variables_are_ckpts() {
        let cmd = Cli::command();
        let vars: Vec<_> = cmd.get_arguments().filter_map(|a| a.get_env()).collect();
        assert_eq!(vars, ["CKPT_OUTPUT", "CKPT_KEEP", "CKPT_SIGNAL"]);
    }
}
