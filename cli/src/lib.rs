//! What the std programs `ckpt` and `ckpt-slurm` share: their command line
//! through clap, and its errors as one line with exit status 2.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use std::error::Error as _;
use std::ffi::OsString;
use std::fmt::Display;
use std::process::exit;

/// Exit status of a usage error.
pub const USAGE_ERROR: i32 = 2;

/// `PROGRAM: msg` on stderr, and exit with `status`.
pub fn fail(program: &str, status: i32, msg: impl Display) -> ! {
    eprintln!("{program}: {msg}");
    exit(status)
}

/// A usage error: `PROGRAM: msg (try: PROGRAM --help)`, exit status 2.
pub fn usage(program: &str, msg: impl Display) -> ! {
    fail(program, USAGE_ERROR, format!("{msg} (try: {program} --help)"))
}

/// `args` (the program's name first) parsed into `C`, with help for 80
/// columns and an option given twice taking the last value; `--help` and
/// `--version` print and exit 0, anything wrong is a usage error.
pub fn parse_args<C: CommandFactory + FromArgMatches>(
    program: &str,
    args: impl IntoIterator<Item = OsString>,
) -> (ArgMatches, C) {
    let command = C::command().max_term_width(80).args_override_self(true);
    let m = command.try_get_matches_from(args).unwrap_or_else(|e| clap_error(program, e));
    let c = C::from_arg_matches(&m).unwrap_or_else(|e| clap_error(program, e));
    (m, c)
}

/// A clap error as one usage line.
fn clap_error(program: &str, e: clap::Error) -> ! {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
        ErrorKind::MissingRequiredArgument => usage(program, "no program given"),
        // Only the flags have their values checked by clap, and a flag's
        // value can only come from its variable.
        ErrorKind::ValueValidation => {
            let flag = context(ContextKind::InvalidArg);
            let name = flag.trim_start_matches('-').split(' ').next().unwrap_or_default();
            let var = format!("CKPT_{}", name.to_ascii_uppercase().replace('-', "_"));
            let why = e.source().map(|s| s.to_string()).unwrap_or_default();
            usage(program, format!("{var}={}: {why}", context(ContextKind::InvalidValue)))
        }
        _ => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or_default();
            usage(program, line.strip_prefix("error: ").unwrap_or(line))
        }
    }
}
