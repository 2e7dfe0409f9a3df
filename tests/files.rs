//! Integration tests: open file descriptors across checkpoint and restart
//! (see tests/common for the harness).
//!
//! Each test runs one of the `demo/files-*` programs under ckpt, checkpoints
//! it in the middle of its run (after a line it prints, never after a fixed
//! sleep), restarts the image, and compares what the two runs did together
//! with an uninterrupted run of the same program in a directory of its own:
//! output, and the files written.
mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// `ckpt -o IMAGE PROGRAM ARGS...` in `cwd`.
fn ckpt(image: &Path, program: &Path, args: &[&str], cwd: &Path) -> Command {
    let mut a = vec!["-o", image.to_str().unwrap(), program.to_str().unwrap()];
    a.extend_from_slice(args);
    command(&exe("ckpt"), &a, cwd)
}

/// `restart OPTIONS... IMAGE` in `cwd`.
fn restart(image: &Path, options: &[&str], cwd: &Path) -> Command {
    let mut a = options.to_vec();
    a.push(image.to_str().unwrap());
    command(&exe("restart"), &a, cwd)
}

fn lines_starting(o: &Outcome, s: Stream, prefix: &str) -> Vec<String> {
    o.text_lines(s).into_iter().filter(|l| l.starts_with(prefix)).collect()
}

/// The checkpointed run stopped with the checkpoint status and said where
/// the image is.
fn checkpointed(first: &Outcome, image: &Path) {
    first.expect_code(CHECKPOINTED);
    let said = lines_starting(first, Stream::Stderr, "ckpt: checkpoint written to");
    assert!(said.len() == 1 && image.is_file(), "no image at {}\n{}", image.display(), first.describe());
}

/// Input for files-log: lines of varied length, several stdio buffers' worth.
fn log_input(lines: usize) -> String {
    (0..lines).map(|i| format!("line {i} {}\n", "abcdefghij".repeat(i * 7 % 23))).collect()
}

const LOG_STEPS: &str = "60";

/// files-log with its input in `dir` (a fresh subdirectory of the test's):
/// the uninterrupted reference run, whose outputs are compared with.
fn files_log_reference(dir: &Path) -> Outcome {
    fs::create_dir(dir).unwrap();
    fs::write(dir.join("input.txt"), log_input(500)).unwrap();
    let args = ["input.txt", "log.txt", LOG_STEPS];
    let o = spawn("uninterrupted run", &mut command(&demo("files-log"), &args, dir)).finish();
    o.expect_code(0);
    o
}

/// files-log under ckpt in `dir`, checkpointed after step 5.
fn files_log_checkpointed(dir: &Path, image: &Path, stdout: Option<Stdio>) -> Outcome {
    fs::create_dir(dir).unwrap();
    fs::write(dir.join("input.txt"), log_input(500)).unwrap();
    let mut c = ckpt(image, &demo("files-log"), &["input.txt", "log.txt", LOG_STEPS], dir);
    if let Some(s) = stdout {
        c.stdout(s);
    }
    let mut run = spawn("checkpointed run", &mut c);
    run.wait_line(Stream::Stderr, |l| l == "files-log: step 5\n", "step 5");
    run.checkpoint();
    let first = run.finish();
    checkpointed(&first, image);
    first
}

/// The number of steps files-log made in a run (its progress lines).
fn steps(o: &Outcome) -> usize {
    lines_starting(o, Stream::Stderr, "files-log: step").len()
}

#[test]
fn log_and_input_continue_at_their_offsets() {
    let dir = TempDir::new("files-log");
    let reference = files_log_reference(&dir.join("ref"));
    let run_dir = dir.join("run");
    let image = dir.join("log.dat");
    let first = files_log_checkpointed(&run_dir, &image, None);
    let done = steps(&first);
    assert!((5..60).contains(&done), "the checkpoint should land mid-run, after {done} steps\n{}", first.describe());
    assert!(
        lines_starting(&first, Stream::Stderr, "ckpt: warning").is_empty(),
        "nothing here should be lost\n{}",
        first.describe()
    );

    let second = spawn("restart", &mut restart(&image, &[], &dir.path)).finish();
    second.expect_code(0);
    assert!(
        lines_starting(&second, Stream::Stderr, "restart:").is_empty(),
        "the restart should have nothing to say\n{}",
        second.describe()
    );
    assert_same(
        "stdout (a digest of every input line)",
        &cat(&[&first.stdout(), &second.stdout()]),
        &reference.stdout(),
    );
    let ref_dir = dir.join("ref");
    for log in ["log.txt", "log.txt.stdio"] {
        assert_same(log, &read(&run_dir.join(log)), &read(&ref_dir.join(log)));
    }
    // Every input line exactly once, in order, in the log.
    let log = String::from_utf8(read(&run_dir.join("log.txt"))).unwrap();
    let want: String = log_input(500).lines().take(420).enumerate().map(|(i, l)| format!("{} {l}\n", i + 1)).collect();
    assert_same("log.txt against the input", log.as_bytes(), want.as_bytes());
}

#[test]
fn relative_paths_after_chdir() {
    let dir = TempDir::new("files-cwd");
    let prog = demo("files-cwd");
    let args = ["sub", "40"];
    let ref_dir = dir.join("ref");
    fs::create_dir(&ref_dir).unwrap();
    let reference = spawn("uninterrupted run", &mut command(&prog, &args, &ref_dir));

    let run_dir = dir.join("run");
    fs::create_dir(&run_dir).unwrap();
    let image = dir.join("cwd.dat");
    let mut run = spawn("checkpointed run", &mut ckpt(&image, &prog, &args, &run_dir));
    run.wait_line(Stream::Stdout, |l| l == "step 5\n", "step 5");
    run.checkpoint();
    let first = run.finish();
    checkpointed(&first, &image);
    assert!(!first.stdout_text().contains("done"), "the checkpoint came too late\n{}", first.describe());

    // Restarted from another directory: the program's own comes back.
    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let second = spawn("restart", &mut restart(&image, &[], &elsewhere)).finish();
    second.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    assert!(reference.stdout_text().ends_with("files-cwd: done, sum 820, in sub\n"), "{}", reference.describe());
    let journal: String = (1..=40).map(|k| format!("journal {k}\n")).collect();
    assert_same("journal", &read(&run_dir.join("sub/journal")), journal.as_bytes());
    for k in 1..=40 {
        assert_same(&format!("step-{k}"), &read(&run_dir.join(format!("sub/step-{k}"))), format!("{k}\n").as_bytes());
    }
    let strays: Vec<_> = fs::read_dir(&elsewhere).unwrap().collect();
    assert!(strays.is_empty(), "the restarted program wrote into restart's directory: {strays:?}");
}

/// Runs `program args` in `dir` under ckpt with a piped stdin, checkpoints
/// it once it says `ready` on stderr (it then waits for a line on stdin),
/// and restarts it with `options`, giving it its line. Also runs it
/// uninterrupted (`program ref_args` in `ref_dir`). Returns (reference,
/// first, restart).
fn stdin_case(
    program: &str,
    (args, dir): (&[&str], &Path),
    (ref_args, ref_dir): (&[&str], &Path),
    image: &Path,
    ready: &str,
    options: &[&str],
) -> (Outcome, Outcome, Outcome) {
    let prog = demo(program);
    let mut c = command(&prog, ref_args, ref_dir);
    c.stdin(Stdio::piped());
    let mut reference = spawn("uninterrupted run", &mut c);
    reference.write_stdin(b"go\n");
    reference.close_stdin();
    let reference = reference.finish();
    reference.expect_code(0);

    let mut c = ckpt(image, &prog, args, dir);
    c.stdin(Stdio::piped());
    let mut run = spawn("checkpointed run", &mut c);
    run.wait_line(Stream::Stderr, |l| l.trim_end() == ready, ready);
    run.checkpoint();
    let first = run.finish();
    checkpointed(&first, image);

    let mut c = restart(image, options, dir);
    c.stdin(Stdio::piped());
    let mut second = spawn("restart", &mut c);
    second.write_stdin(b"go\n");
    second.close_stdin();
    let second = second.finish();
    (reference, first, second)
}

fn subdir(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::create_dir(&p).unwrap();
    p
}

#[test]
fn pipe_bytes_survive() {
    let dir = TempDir::new("files-pipe");
    let (run_dir, ref_dir) = (subdir(&dir, "run"), subdir(&dir, "ref"));
    let image = dir.join("pipe.dat");
    let args = ["50000", "fifo"];
    let (reference, first, second) =
        stdin_case("files-pipe", (&args, &run_dir), (&args, &ref_dir), &image, "files-pipe: ready", &[]);
    second.expect_code(0);
    assert!(
        lines_starting(&first, Stream::Stderr, "ckpt: warning").is_empty(),
        "pipes inside the process are not lost\n{}",
        first.describe()
    );
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    let out = second.stdout_text();
    for want in [
        "after: A holds 50000 (via 12: 50000), B holds 3, C holds 0, FIFO holds 0\n",
        "A: 50000 bytes, 0 wrong, then EOF\n",
        "B: 3 bytes \"abc\", then EAGAIN (non-blocking)\n",
        "FIFO: 10 bytes \"fifo data\"\n",
    ] {
        assert!(out.contains(want), "missing {want:?}\n{}", second.describe());
    }
}

#[test]
fn flags_offsets_and_sharing_preserved() {
    let dir = TempDir::new("files-flags");
    let (run_dir, ref_dir) = (subdir(&dir, "run"), subdir(&dir, "ref"));
    for d in [&run_dir, &ref_dir] {
        fs::write(d.join("input"), "abcdefghijklmnopqrstuvwxyz\n").unwrap();
    }
    let image = dir.join("flags.dat");
    let args_run = [run_dir.to_str().unwrap()];
    let args_ref = [ref_dir.to_str().unwrap()];
    let (reference, first, second) =
        stdin_case("files-flags", (&args_run, &run_dir), (&args_ref, &ref_dir), &image, "files-flags: ready", &[]);
    second.expect_code(0);

    let before: Vec<String> =
        lines_starting(&first, Stream::Stdout, "before: ").iter().map(|l| l["before: ".len()..].to_string()).collect();
    let after: Vec<String> =
        lines_starting(&second, Stream::Stdout, "after: ").iter().map(|l| l["after: ".len()..].to_string()).collect();
    assert_eq!(before.len(), 9, "{}", first.describe());
    assert_eq!(after, before, "flags and offsets after the restart\n{}", second.describe());
    assert!(before.contains(&"fd 10: file w append cloexec offset 4\n".to_string()), "{before:?}");
    assert!(before.contains(&"fd 12: file r nonblock offset 5\n".to_string()), "{before:?}");
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    let out = second.stdout_text();
    for want in [
        "append.log: 14 bytes: one\ntwo\nthree\n",
        "read 3 through fd 100: \"fgh\"; fd 12 now at 8\n",
        "read through fd 14: \"23\", through fd 13: \"45\"\n",
    ] {
        assert!(out.contains(want), "missing {want:?}\n{}", second.describe());
    }
}

#[test]
fn deleted_log_warns_or_refuses_with_strict() {
    let dir = TempDir::new("files-deleted");
    let reference = files_log_reference(&dir.join("ref"));
    let run_dir = dir.join("run");
    let image = dir.join("deleted.dat");
    let first = files_log_checkpointed(&run_dir, &image, None);
    let log = run_dir.join("log.txt");
    fs::remove_file(&log).unwrap();

    let strict = spawn("restart --strict", &mut restart(&image, &["--strict"], &dir.path)).finish();
    strict.expect_code(1);
    let err = strict.stderr_text();
    assert!(
        err.lines().count() == 1 && err.contains(log.to_str().unwrap()) && err.contains("deleted"),
        "--strict should refuse in one line naming the file\n{}",
        strict.describe()
    );
    assert!(strict.stdout().is_empty(), "the program ran under --strict\n{}", strict.describe());

    let second = spawn("restart", &mut restart(&image, &[], &dir.path)).finish();
    second.expect_code(0);
    let warnings = lines_starting(&second, Stream::Stderr, "restart:");
    assert!(
        warnings.len() == 1 && warnings[0].contains(log.to_str().unwrap()) && warnings[0].contains("deleted"),
        "one warning naming the deleted file\n{}",
        second.describe()
    );
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    assert!(!log.exists(), "the deleted log came back");
    // The other log, still there, was continued.
    assert_same("log.txt.stdio", &read(&run_dir.join("log.txt.stdio")), &read(&dir.join("ref/log.txt.stdio")));
}

#[test]
fn truncated_and_replaced_files_are_warned() {
    let dir = TempDir::new("files-changed");
    let run_dir = dir.join("run");
    let image = dir.join("changed.dat");
    files_log_checkpointed(&run_dir, &image, None);
    // The input shrinks below the program's offset; the log is replaced.
    fs::write(run_dir.join("input.txt"), "short\n").unwrap();
    // (Renamed away, not deleted: a new file could get the freed inode.)
    let log = run_dir.join("log.txt");
    fs::rename(&log, run_dir.join("log.old")).unwrap();
    fs::write(&log, "new\n").unwrap();
    let strict = spawn("restart --strict", &mut restart(&image, &["--strict"], &dir.path)).finish();
    strict.expect_code(1);
    assert_eq!(strict.stderr_text().lines().count(), 1, "{}", strict.describe());
    let second = spawn("restart", &mut restart(&image, &[], &dir.path)).finish();
    second.expect_code(0);
    let warnings = lines_starting(&second, Stream::Stderr, "restart:");
    assert!(
        warnings.len() == 2
            && warnings.iter().any(|w| w.contains("input.txt") && w.contains("truncated"))
            && warnings.iter().any(|w| w.contains("log.txt") && w.contains("replaced")),
        "a warning for each\n{}",
        second.describe()
    );
}

#[test]
fn sockets_become_dev_null_with_warnings() {
    let dir = TempDir::new("files-socket");
    let (run_dir, ref_dir) = (subdir(&dir, "run"), subdir(&dir, "ref"));
    let image = dir.join("socket.dat");
    let (reference, first, second) =
        stdin_case("files-socket", (&[], &run_dir), (&[], &ref_dir), &image, "files-socket: ready", &[]);
    second.expect_code(0);
    // The TCP socket is lost; the socketpair and the eventfd are restored.
    let lost = [(12, "socket:[")];
    let ckpt_warnings = lines_starting(&first, Stream::Stderr, "ckpt: warning");
    assert_eq!(ckpt_warnings.len(), 1, "one warning per lost descriptor\n{}", first.describe());
    let restart_warnings = lines_starting(&second, Stream::Stderr, "restart: warning");
    assert_eq!(restart_warnings.len(), 1, "one warning per lost descriptor\n{}", second.describe());
    for ((fd, name), (c, r)) in lost.iter().zip(ckpt_warnings.iter().zip(&restart_warnings)) {
        let at = format!("fd {fd} ({name}");
        assert!(c.starts_with(&format!("ckpt: warning: {at}")) && c.contains("/dev/null"), "{c}");
        assert!(r.starts_with(&format!("restart: warning: {at}")) && r.contains("/dev/null"), "{r}");
    }
    // Before the checkpoint, as the uninterrupted run; after, the same but
    // the TCP socket, which is /dev/null.
    let before = |o: &Outcome| lines_starting(o, Stream::Stdout, "before: ");
    assert_eq!(before(&first), before(&reference));
    let after = lines_starting(&second, Stream::Stdout, "after: ");
    let want: Vec<String> = before(&reference)
        .iter()
        .map(|l| match l.strip_prefix("before: fd 12: ") {
            Some(_) => "after: fd 12: /dev/null (char 1:3) (null)\n".to_string(),
            None => l.replacen("before: ", "after: ", 1),
        })
        .collect();
    assert_eq!(after, want, "{}", second.describe());
    assert!(second.stdout_text().contains("writing to fd 10: 1\n"), "{}", second.describe());

    let strict = spawn("restart --strict", &mut restart(&image, &["--strict"], &dir.path)).finish();
    strict.expect_code(1);
    assert_eq!(strict.stderr_text().lines().count(), 1, "{}", strict.describe());
    assert!(strict.stderr_text().contains("fd 12 (socket:["), "{}", strict.describe());
}

#[test]
fn keep_stdio_continues_stdout_file() {
    let dir = TempDir::new("files-keep-stdio");
    let reference = files_log_reference(&dir.join("ref"));
    let run_dir = dir.join("run");
    let image = dir.join("stdio.dat");
    let out = dir.join("program.out");
    let first = files_log_checkpointed(&run_dir, &image, Some(Stdio::from(file(&out))));
    let at_checkpoint = read(&out);
    assert!(!at_checkpoint.is_empty() && at_checkpoint.len() < reference.stdout().len());

    let mut c = restart(&image, &["--keep-stdio"], &dir.path);
    c.stdout(Stdio::null());
    let second = spawn("restart --keep-stdio", &mut c).finish();
    second.expect_code(0);
    assert_same("the program's own stdout file", &read(&out), &reference.stdout());
    // Its stderr was a pipe to this test: restart's own instead, said once.
    let warnings = lines_starting(&second, Stream::Stderr, "restart:");
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with("restart: warning: fd 2 (pipe:[")
            && warnings[0].contains("restart's own"),
        "{}",
        second.describe()
    );
    assert_eq!(steps(&first) + steps(&second), 60, "{}", second.describe());
}

#[test]
fn keep_stdio_stdout_and_stderr_sharing_one_file() {
    // `program >out 2>&1`: one open file for both. Reopened twice they would
    // overwrite each other; shared again, every line lands once.
    let dir = TempDir::new("files-keep-shared");
    let ref_dir = dir.join("ref");
    fs::create_dir(&ref_dir).unwrap();
    fs::write(ref_dir.join("input.txt"), log_input(500)).unwrap();
    let ref_out = dir.join("reference.out");
    let f = file(&ref_out);
    let mut c = command(&demo("files-log"), &["input.txt", "log.txt", LOG_STEPS], &ref_dir);
    c.stdout(f.try_clone().unwrap()).stderr(f);
    spawn("uninterrupted run", &mut c).finish().expect_code(0);

    let run_dir = dir.join("run");
    fs::create_dir(&run_dir).unwrap();
    fs::write(run_dir.join("input.txt"), log_input(500)).unwrap();
    let out = dir.join("program.out");
    let f = file(&out);
    let image = dir.join("shared.dat");
    let mut c = ckpt(&image, &demo("files-log"), &["input.txt", "log.txt", LOG_STEPS], &run_dir);
    c.stdout(f.try_clone().unwrap()).stderr(f);
    let run = spawn("checkpointed run", &mut c);
    // Everything goes to the file: wait for the program's sleeps instead.
    run.wait_switches(8);
    run.checkpoint();
    run.finish().expect_code(CHECKPOINTED);

    let mut c = restart(&image, &["--keep-stdio"], &dir.path);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let second = spawn("restart --keep-stdio", &mut c).finish();
    second.expect_code(0);
    assert!(second.stderr().is_empty(), "{}", second.describe());
    let got: String = String::from_utf8(read(&out))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("ckpt: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_same("stdout and stderr, in one file", got.as_bytes(), &read(&ref_out));
}

/// A file changed since the checkpoint — grown, or modified in place at
/// the same size — is named with what changed (a warning, or --strict's
/// refusal); so is a file that can no longer be opened as it was (no
/// permission: --strict refuses, the default puts /dev/null there). The
/// permission case runs as nobody when the tests run as root (root may
/// open anything).
#[test]
fn changed_or_unopenable_files_are_named_and_refused_with_strict() {
    let dir = TempDir::new("files-modified");
    let reference = files_log_reference(&dir.join("ref"));

    // Grown: more input appended after the checkpoint.
    let run_dir = dir.join("grown");
    let image = dir.join("grown.dat");
    let first = files_log_checkpointed(&run_dir, &image, None);
    let input = run_dir.join("input.txt");
    let size = fs::metadata(&input).unwrap().len();
    fs::OpenOptions::new().append(true).open(&input).unwrap().write_all(b"one more line\n").unwrap();
    let grew = format!("input.txt): the file grew from {size} to {} bytes since the checkpoint", size + 14);
    let strict = spawn("restart --strict", &mut restart(&image, &["--strict"], &dir.path)).finish();
    assert_strict_refused(&strict, &grew);
    let second = spawn("restart", &mut restart(&image, &[], &dir.path)).finish();
    second.expect_code(0);
    let warnings = lines_starting(&second, Stream::Stderr, "restart:");
    assert!(
        warnings.len() == 1 && warnings[0].contains(&grew) && warnings[0].ends_with("; reopened anyway\n"),
        "one warning saying how the input grew\n{}",
        second.describe()
    );
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());

    // Modified in place: the same size, other bytes (past what was read).
    let run_dir = dir.join("in-place");
    let image = dir.join("in-place.dat");
    files_log_checkpointed(&run_dir, &image, None);
    let input = run_dir.join("input.txt");
    let mut bytes = read(&input);
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    fs::write(&input, &bytes).unwrap();
    let strict = spawn("restart --strict", &mut restart(&image, &["--strict"], &dir.path)).finish();
    assert_strict_refused(&strict, "input.txt): the file was modified in place since the checkpoint (same size");

    // No permission any more: the log, open for writing, made mode 0000.
    let run_dir = dir.join("denied");
    let image = run_dir.join("denied.dat");
    let user = is_root().then_some((65534, 65534));
    let as_user = |program: &Path, args: &[&str]| match user {
        Some((uid, gid)) => command_as(uid, gid, program, args, &run_dir),
        None => command(program, args, &run_dir),
    };
    fs::create_dir(&run_dir).unwrap();
    chmod(&run_dir, 0o777);
    fs::write(run_dir.join("input.txt"), log_input(500)).unwrap();
    let prog = demo("files-log");
    let args = ["-o", image.to_str().unwrap(), prog.to_str().unwrap(), "input.txt", "log.txt", LOG_STEPS];
    let mut run = spawn("checkpointed run", &mut as_user(&exe("ckpt"), &args));
    run.wait_line(Stream::Stderr, |l| l == "files-log: step 5\n", "step 5");
    run.checkpoint();
    let denied_first = run.finish();
    checkpointed(&denied_first, &image);
    let log = run_dir.join("log.txt");
    chmod(&log, 0o000);
    let image_arg = image.to_str().unwrap();
    let strict = spawn("restart --strict", &mut as_user(&exe("restart"), &["--strict", image_arg])).finish();
    assert_strict_refused(&strict, "log.txt): cannot be reopened: Permission denied (EACCES)");
    let second = spawn("restart", &mut as_user(&exe("restart"), &[image_arg])).finish();
    second.expect_code(0);
    let warnings = lines_starting(&second, Stream::Stderr, "restart:");
    assert!(
        warnings.len() == 1
            && warnings[0].contains("log.txt): cannot be reopened: Permission denied (EACCES); it is /dev/null"),
        "one warning saying the log cannot be reopened\n{}",
        second.describe()
    );
    // (This run's own first part: it may have been checkpointed at
    // another step than the first run.)
    assert_same("stdout", &cat(&[&denied_first.stdout(), &second.stdout()]), &reference.stdout());
}

/// `restart --strict` refused in one line containing `why`, before the
/// program ran.
fn assert_strict_refused(o: &Outcome, why: &str) {
    assert_refused(o, 1, &[why, "not restarting (--strict)"]);
}

#[test]
fn ten_thousand_descriptors() {
    // More descriptors than the capture's table once held (8,192): files at
    // their offsets, dups sharing them, pipes with a byte each.
    const N: &str = "10000";
    let dir = TempDir::new("files-many");
    let (run_dir, ref_dir) = (subdir(&dir, "run"), subdir(&dir, "ref"));
    if let Some(why) = too_few_descriptors(N, &dir) {
        eprintln!("SKIP ten_thousand_descriptors: {why}");
        return;
    }
    let image = dir.join("many.dat");
    let (reference, first, second) = stdin_case(
        "files-many",
        (&[N, run_dir.to_str().unwrap()], &run_dir),
        (&[N, ref_dir.to_str().unwrap()], &ref_dir),
        &image,
        "files-many: ready",
        &[],
    );
    second.expect_code(0);
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    assert!(second.stdout_text().contains("files-many: 10000 descriptors checked"), "{}", second.describe());
}

/// Why `files-many N` cannot run here (its hard limit on open files is too
/// low), if it cannot.
fn too_few_descriptors(n: &str, dir: &TempDir) -> Option<String> {
    raise_own_nofile(n.parse::<u64>().unwrap() + 64);
    let probe = spawn("files-many probe", &mut command(&demo("files-many"), &[n, "/nonexistent"], &dir.path)).finish();
    (probe.status.code() == Some(77)).then(|| probe.stderr_text().trim_end().to_string())
}

#[test]
fn more_descriptors_than_an_image_holds() {
    // 65,540 open descriptors: the checkpoint fails, saying why, and the
    // program goes on with all of them.
    const N: &str = "65540";
    let dir = TempDir::new("files-too-many");
    if let Some(why) = too_few_descriptors(N, &dir) {
        eprintln!("SKIP more_descriptors_than_an_image_holds: {why}");
        return;
    }
    let image = dir.join("many.dat");
    let mut c = ckpt(&image, &demo("files-many"), &[N, dir.path.to_str().unwrap()], &dir.path);
    c.stdin(Stdio::piped());
    let mut run = spawn("checkpointed run", &mut c);
    run.wait_line(Stream::Stderr, |l| l.trim_end() == "files-many: ready", "ready");
    run.checkpoint();
    let line = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: "), "the checkpoint's line");
    assert!(line.text().contains("more than 65,536 open descriptors"), "{}", line.text());
    run.write_stdin(b"go\n");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert!(o.stdout_text().contains("65540 descriptors checked"), "{}", o.describe());
    assert!(!image.exists(), "an image was written");
}
