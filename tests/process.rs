//! Integration tests: process-wide kernel state across a checkpoint and a
//! restart — signal handlers, masks and pending signals (for the process
//! and for single threads), interval timers, resource limits, prctl
//! settings — and MAP_SHARED file mappings, which are mapped from their file
//! again only if it is unchanged (see tests/common for the harness).
//!
//! Each test runs a `demo/proc-*` program under ckpt, waits for its own
//! output and for it to be asleep in its wait, checkpoints it, restarts the
//! image and talks to the restarted program with signals. Synchronisation
//! is the program's flushed output, and the system call it is blocked in
//! (`/proc/PID/syscall`): a signal sent then cannot land before the wait.
mod common;

use ckpt_image::{bytes_of, Header, HEADER_SIZE};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;
/// x86-64 system call number of rt_sigsuspend, where the demos wait.
const SYS_RT_SIGSUSPEND: i64 = 130;

fn ckpt(image: &Path, program: &Path, args: &[&str], cwd: &Path) -> Command {
    let mut a = vec!["-o", image.to_str().unwrap(), program.to_str().unwrap()];
    a.extend_from_slice(args);
    command(&exe("ckpt"), &a, cwd)
}

fn restart(image: &Path, cwd: &Path) -> Command {
    command(&exe("restart"), &[image.to_str().unwrap()], cwd)
}

/// Runs `program args` under ckpt, waits for its "ready"-like `line` and
/// for it to be blocked in its wait, and checkpoints it. Returns the
/// checkpointed run's outcome.
fn checkpoint_when(dir: &TempDir, image: &Path, program: &str, args: &[&str], line: &str) -> Outcome {
    let mut run = spawn("checkpointed run", &mut ckpt(image, &demo(program), args, &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with(line), line);
    wait_in_syscall(&run, SYS_RT_SIGSUSPEND);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    assert!(image.is_file(), "no image\n{}", first.describe());
    first
}

fn line_after(run: &mut Run, prefix: &str) -> String {
    run.wait_line(Stream::Stdout, |l| l.starts_with(prefix), prefix).text()
}

/// `ShdPnd` of a process, as a bit set.
fn shared_pending(pid: i32) -> u64 {
    ckpt_sys::status::hex(&fs::read(format!("/proc/{pid}/status")).unwrap(), b"ShdPnd").unwrap()
}

#[test]
fn signal_handlers_masks_and_pending_signals() {
    let dir = TempDir::new("proc-signals");
    let image = dir.join("img");
    let first = checkpoint_when(&dir, &image, "proc-signals", &[], "ready");
    let before = "usr1=0 blocked=TERM,HUP,WINCH shdpnd=HUP sigpnd=WINCH worker=PWR\n";
    assert_eq!(
        first.text_lines(Stream::Stdout)[0],
        format!("state start {before}"),
        "the demo did not set up its signals\n{}",
        first.describe()
    );

    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    // The checkpoint signal interrupted sigsuspend: it returns once.
    let l = line_after(&mut run, "state ");
    assert_eq!(
        l,
        format!("state woke {before}"),
        "after the restart: the blocked mask, the pending signals of the process, of the main thread and of the worker thread"
    );
    wait_in_syscall(&run, SYS_RT_SIGSUSPEND);
    run.signal(libc::SIGUSR1);
    line_after(&mut run, "handler SIGUSR1 1");
    let l = line_after(&mut run, "state ");
    assert_eq!(l, "state woke usr1=1 blocked=TERM,HUP,WINCH shdpnd=HUP sigpnd=WINCH worker=PWR\n");
    wait_in_syscall(&run, SYS_RT_SIGSUSPEND);
    // SIGTERM is still blocked: it stays pending and does not kill.
    // (In namespace mode the signal goes through the outer restart and init.)
    run.signal(libc::SIGTERM);
    let pid = program_pid(run.pid);
    let start = std::time::Instant::now();
    while shared_pending(pid) & 1 << (libc::SIGTERM - 1) == 0 {
        assert!(start.elapsed() < TIMEOUT, "SIGTERM is not pending after it was sent");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    run.signal(libc::SIGUSR1);
    let out = run.finish();
    out.expect_code(0);
    let lines = out.text_lines(Stream::Stdout);
    let all = out.describe();
    assert!(
        lines.contains(
            &"state woke usr1=2 blocked=TERM,HUP,WINCH shdpnd=TERM,HUP sigpnd=WINCH worker=PWR\n".to_string()
        ),
        "{all}"
    );
    // Once unblocked, every signal pending before the checkpoint (HUP for
    // the process, WINCH for the main thread, PWR for the worker) and the
    // SIGTERM sent after the restart are delivered, once each.
    for sig in ["SIGPWR", "SIGTERM", "SIGHUP", "SIGWINCH"] {
        let n = lines.iter().filter(|l| **l == format!("handler {sig}\n")).count();
        assert_eq!(n, 1, "handler of {sig} ran {n} times\n{all}");
    }
    assert!(
        lines.ends_with(&[
            "state unblocked usr1=2 blocked=- shdpnd=- sigpnd=- worker=-\n".to_string(),
            "done\n".to_string()
        ]),
        "{all}"
    );
    // Nothing ran before the restart that should not have.
    assert!(!first.stdout_text().contains("handler"), "{}", first.describe());
}

/// One "timers real=V/I virtual=V/I prof=V/I alarms=N" line, in ms.
#[derive(Debug)]
struct Timers {
    real: (i64, i64),
    virt: (i64, i64),
    prof: (i64, i64),
    alarms: i64,
}

fn timers(l: &str) -> Timers {
    let field = |name: &str| -> &str {
        l.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} in {l:?}"))
    };
    let pair = |name: &str| -> (i64, i64) {
        let (v, i) = field(name).split_once('/').unwrap();
        (v.parse().unwrap(), i.parse().unwrap())
    };
    Timers {
        real: pair("real="),
        virt: pair("virtual="),
        prof: pair("prof="),
        alarms: field("alarms=").parse().unwrap(),
    }
}

#[test]
fn alarm_and_cpu_timers_survive() {
    let dir = TempDir::new("proc-alarm");
    let image = dir.join("img");
    let first = checkpoint_when(&dir, &image, "proc-timers", &["alarm"], "armed");
    assert!(!first.stdout_text().contains("alarm"), "the alarm fired before the checkpoint\n{}", first.describe());

    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    let woke = run.wait_line(Stream::Stdout, |l| l.starts_with("timers "), "timers");
    let t = timers(&woke.text());
    let what = format!("after the restart: {}", woke.text());
    assert!(t.real.0 > 0 && t.real.0 <= 3000 && t.real.1 == 0, "alarm(3): {what}");
    // The CPU-time timers hardly moved: the program sleeps.
    assert!((19_000..=20_100).contains(&t.virt.0) && t.virt.1 == 10_000, "ITIMER_VIRTUAL: {what}");
    assert!((29_000..=30_100).contains(&t.prof.0) && t.prof.1 == 5_000, "ITIMER_PROF: {what}");
    assert_eq!(t.alarms, 0, "{what}");
    let fired = run.wait_line(Stream::Stdout, |l| l == "alarm 1\n", "the alarm");
    let waited = fired.at.duration_since(woke.at).unwrap_or_default();
    assert!(
        waited + Duration::from_millis(500) >= Duration::from_millis(t.real.0 as u64),
        "the alarm fired {waited:?} after the restart, but {} ms were left",
        t.real.0
    );
    let out = run.finish();
    out.expect_code(0);
    let text = out.stdout_text();
    assert_eq!(text.matches("alarm ").count(), 1, "{}", out.describe());
    assert!(text.ends_with("done\n"), "{}", out.describe());
}

#[test]
fn interval_timer_keeps_ticking() {
    let dir = TempDir::new("proc-interval");
    let image = dir.join("img");
    let first = checkpoint_when(&dir, &image, "proc-timers", &["interval"], "alarm 3");
    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    let woke = line_after(&mut run, "timers ");
    let t = timers(&woke);
    assert!(
        t.real.0 > 0 && t.real.0 <= 200 && t.real.1 == 200,
        "after the restart, ITIMER_REAL should be running with a 200 ms interval: {woke}"
    );
    let out = run.finish();
    out.expect_code(0);
    // Every expiration exactly once, across the checkpoint.
    let all = format!("{}\n{}", first.describe(), out.describe());
    let alarms: Vec<String> = first
        .text_lines(Stream::Stdout)
        .into_iter()
        .chain(out.text_lines(Stream::Stdout))
        .filter(|l| l.starts_with("alarm "))
        .collect();
    let want: Vec<String> = (1..=8).map(|i| format!("alarm {i}\n")).collect();
    assert_eq!(alarms, want, "{all}");
    assert!(out.stdout_text().ends_with("done\n"), "{all}");
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default()
}

#[test]
fn limits_name_and_prctl_settings_survive() {
    let dir = TempDir::new("proc-limits");
    let image = dir.join("img");
    let first = checkpoint_when(&dir, &image, "proc-limits", &[], "ready");
    let before = first.text_lines(Stream::Stdout)[0].clone();
    assert!(
        before.starts_with("limits nofile=100/")
            && before
                .contains(" core=65536/1048576 name=proc-renamed pdeathsig=28 dumpable=0 subreaper=1 dupfd150=EINVAL"),
        "the demo did not set its limits\n{}",
        first.describe()
    );

    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    let after = line_after(&mut run, "limits ");
    assert_eq!(after, before, "limits and prctl settings after the restart");
    wait_in_syscall(&run, SYS_RT_SIGSUSPEND);
    let pid = program_pid(run.pid);
    assert_eq!(comm(pid), "proc-renamed\n", "/proc/PID/comm");
    let ps = Command::new("ps").args(["-o", "comm=", "-p", &pid.to_string()]).output().expect("ps");
    assert_eq!(String::from_utf8_lossy(&ps.stdout).trim(), "proc-renamed", "ps");
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = |name: &str| -> Vec<String> {
        let l = limits.lines().find(|l| l.starts_with(name)).unwrap();
        l[name.len()..].split_whitespace().map(String::from).collect()
    };
    assert_eq!(row("Max core file size")[..2], ["65536", "1048576"], "{limits}");
    assert_eq!(row("Max open files")[0], "100", "{limits}");
    run.signal(libc::SIGUSR1);
    let out = run.finish();
    out.expect_code(0);
    assert!(out.stdout_text().ends_with("done\n"), "{}", out.describe());
    assert!(!out.stderr_text().contains("cannot restore RLIMIT"), "{}", out.describe());
}

/// Rewrites the header of the image at `path` with `f` (and a new checksum).
fn patch_header(path: &Path, f: impl FnOnce(&mut Header)) {
    let mut bytes = fs::read(path).unwrap();
    let mut h = Header::parse(&bytes, bytes.len() as u64).expect("a valid image");
    f(&mut h);
    h.header_checksum = h.compute_checksum();
    bytes[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
    fs::write(path, bytes).unwrap();
}

#[test]
fn hard_limit_above_allowed_is_a_warning() {
    let dir = TempDir::new("proc-limits-warn");
    let image = dir.join("img");
    checkpoint_when(&dir, &image, "proc-limits", &[], "ready");
    // A hard RLIMIT_NOFILE above fs.nr_open: even root may not set it.
    const RLIMIT_NOFILE: usize = 7;
    patch_header(&image, |h| h.process.rlimits[RLIMIT_NOFILE] = [100, u64::MAX]);
    let mut own = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) };

    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    let after = line_after(&mut run, "limits ");
    assert!(
        after.starts_with(&format!("limits nofile=100/{} core=65536/1048576 ", own.rlim_max)),
        "the soft limit is kept, the hard one is what restart had: {after}"
    );
    wait_in_syscall(&run, SYS_RT_SIGSUSPEND);
    run.signal(libc::SIGUSR1);
    let out = run.finish();
    out.expect_code(0);
    let warnings: Vec<String> = out.text_lines(Stream::Stderr).into_iter().filter(|l| l.contains("RLIMIT")).collect();
    assert_eq!(
        warnings,
        [format!(
            "restart: warning: cannot restore RLIMIT_NOFILE (soft 100, hard unlimited): Operation not permitted (EPERM); it is soft 100, hard {}\n",
            own.rlim_max
        )],
        "{}",
        out.describe()
    );
}

/// The string at `offset` of a file (up to its first NUL).
fn file_string(path: &Path, offset: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let s = bytes.get(offset..).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

const PAGE: usize = 4096;

/// What happens to the data file of `proc-shared` between the checkpoint
/// and the restart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Meanwhile {
    Nothing,
    /// Rewritten, with its size and modification time put back as they were.
    TamperedInPlace,
    Modified,
    Removed,
}

/// Checkpoints `proc-shared`, does `meanwhile` to its file, restarts it,
/// and lets it write once more. Returns the restart's outcome.
fn shared_mapping_case(tag: &str, meanwhile: Meanwhile) -> (TempDir, Outcome) {
    let dir = TempDir::new(tag);
    let image = dir.join("img");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap().to_string();
    checkpoint_when(&dir, &image, "proc-shared", &[&data_arg], "ready");
    assert_eq!(file_string(&data, 0), "checkpointed");
    match meanwhile {
        Meanwhile::Nothing => {}
        Meanwhile::TamperedInPlace => {
            use std::os::unix::fs::FileExt;
            let mtime = fs::metadata(&data).unwrap().modified().unwrap();
            let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
            f.write_at(b"tampered\0", 0).unwrap();
            f.set_modified(mtime).unwrap();
        }
        Meanwhile::Modified => {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
            f.write_at(b"changed\0", 0).unwrap();
            // A different size as well: a changed file whatever the clock.
            f.set_len(3 * PAGE as u64).unwrap();
        }
        Meanwhile::Removed => fs::remove_file(&data).unwrap(),
    }

    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    let l = line_after(&mut run, "wrote step 1 ");
    assert_eq!(
        l, "wrote step 1 mem0=checkpointed anon=anon\n",
        "the program's view of its shared memory after the restart"
    );
    wait_in_syscall(&run, SYS_RT_SIGSUSPEND);
    let written = file_string(&data, PAGE);
    run.signal(libc::SIGUSR1);
    let out = run.finish();
    out.expect_code(0);
    let all = out.describe();
    assert!(out.stdout_text().ends_with("done\n"), "{all}");
    let warnings: Vec<String> =
        out.text_lines(Stream::Stderr).into_iter().filter(|l| l.contains("shared mapping")).collect();
    let attached = matches!(meanwhile, Meanwhile::Nothing | Meanwhile::TamperedInPlace);
    if attached {
        assert!(warnings.is_empty(), "{all}");
        assert_eq!(
            fs::metadata(&data).unwrap().len(),
            2 * PAGE as u64 + 100,
            "the file keeps its size (its mapping reaches past its end)"
        );
        assert_eq!(file_string(&data, 0), "checkpointed", "the file holds the checkpointed contents");
        assert_eq!(written, "step 1", "the restarted program's write reached the file\n{all}");
    } else {
        let name = data.display().to_string();
        let why = if meanwhile == Meanwhile::Removed {
            "cannot open the file: No such file or directory (ENOENT)"
        } else {
            "the file changed since the checkpoint"
        };
        assert_eq!(warnings.len(), 1, "one warning\n{all}");
        let w = &warnings[0];
        assert!(
            w.starts_with("restart: warning: shared mapping ")
                && w.contains(&format!(" of {name}: {why}; "))
                && w.ends_with("the memory keeps its contents of the checkpoint, but no longer reaches the file\n"),
            "{all}"
        );
        if meanwhile == Meanwhile::Modified {
            assert_eq!(file_string(&data, 0), "changed", "the file is left alone");
            assert_eq!(file_string(&data, PAGE), "", "the file is left alone");
        } else {
            assert!(!data.exists(), "the removed file stays removed");
        }
    }
    (dir, out)
}

#[test]
fn shared_file_mapping_unchanged_file() {
    shared_mapping_case("proc-shared", Meanwhile::Nothing);
}

#[test]
fn shared_file_mapping_written_back() {
    shared_mapping_case("proc-shared-back", Meanwhile::TamperedInPlace);
}

#[test]
fn shared_file_mapping_changed_file() {
    shared_mapping_case("proc-shared-changed", Meanwhile::Modified);
}

#[test]
fn shared_file_mapping_removed_file() {
    shared_mapping_case("proc-shared-removed", Meanwhile::Removed);
}
