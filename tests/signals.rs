//! Integration tests: ckpt's own signals meeting the program's (see
//! tests/common for the harness) — signal frames on small stacks (a C
//! coroutine on a `makecontext` stack, Go goroutines), signals the program
//! sends itself, fatal signals sent together with the checkpoint signal, the
//! checkpoint signal during restart's load, handlers installed with a raw
//! `rt_sigaction` — and the program's redirected stdio and children in
//! flight at a checkpoint.
//!
//! Synchronisation is the program's flushed output, "checkpoint written"
//! lines, and the system call a process is blocked in.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;
/// x86-64 system call number of read.
const SYS_READ: i64 = 0;

/// `ckpt OPTIONS -o IMAGE PROGRAM ARGS...` in `cwd`.
fn ckpt(options: &[&str], image: &Path, program: &Path, args: &[&str], cwd: &Path) -> Command {
    let mut a = options.to_vec();
    a.extend_from_slice(&["-o", image.to_str().unwrap(), program.to_str().unwrap()]);
    a.extend_from_slice(args);
    command(&exe("ckpt"), &a, cwd)
}

fn restart(image: &Path, cwd: &Path) -> Command {
    command(&exe("restart"), &[image.to_str().unwrap()], cwd)
}

fn is_written(l: &str) -> bool {
    l.starts_with("ckpt: checkpoint written to ")
}

fn wait_written(run: &mut Run, what: &str) {
    run.wait_line(Stream::Stderr, is_written, what);
}

/// The numbers after `"key":` in each thread of `readckpt --json`.
fn thread_fields(image: &Path, key: &str) -> Vec<u64> {
    let o =
        spawn("readckpt --json", &mut command(&exe("readckpt"), &["--json", image.to_str().unwrap()], Path::new("/")))
            .finish();
    o.expect_code(0);
    let json = o.stdout_text();
    let start = json.find("\"threads\"").expect("no threads in readckpt --json");
    let end = start + json[start..].find("\n  ],").expect("no end of the threads in readckpt --json");
    let pattern = format!("\"{key}\":");
    json[start..end]
        .match_indices(&pattern)
        .map(|(at, _)| {
            let digits: String = json[start + at + pattern.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or_else(|_| panic!("{key} is not a number in readckpt --json"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Signal frames on small stacks.

/// `sig-coroutine MODE`'s coroutine stack, from its first line "stack LO HI".
fn coroutine_stack(run: &mut Run) -> (u64, u64) {
    let l = run.wait_line(Stream::Stdout, |l| l.starts_with("stack "), "stack").text();
    let v: Vec<u64> = l.split_whitespace().skip(1).map(|x| u64::from_str_radix(x, 16).unwrap()).collect();
    (v[0], v[1])
}

/// The image was taken while a thread ran on the coroutine's stack, and no
/// thread's signal frame is on that stack.
fn check_frame_off_stack(image: &Path, (lo, hi): (u64, u64)) {
    let rsp = thread_fields(image, "rsp");
    let frames = thread_fields(image, "ucontext");
    assert!(rsp.iter().any(|r| (lo..hi).contains(r)), "the checkpoint did not interrupt the coroutine (rsp {rsp:x?})");
    assert!(
        !frames.iter().any(|f| (lo..hi).contains(f)),
        "a signal frame ({frames:x?}) is on the coroutine's stack {lo:#x}..{hi:#x}"
    );
}

const STEPS: usize = 6;

/// Output after the "stack" line (whose addresses differ from run to run).
fn steps_of(out: &[u8]) -> &[u8] {
    let nl = out.iter().position(|&c| c == b'\n').map_or(0, |n| n + 1);
    &out[nl..]
}

/// A coroutine on a 16 KiB makecontext stack, blocked in read there,
/// checkpointed three times with --continue, then stopped and restarted: the
/// demo checks that nothing was written on that stack while it waited, and
/// the output is that of an uninterrupted run.
fn coroutine_case(mode: &str) {
    let dir = TempDir::new(&format!("coroutine-{mode}"));
    let prog = demo("sig-coroutine");
    let steps = STEPS.to_string();
    let args = [mode, steps.as_str()];
    let mut reference = spawn("uninterrupted run", command(&prog, &args, &dir.path).stdin(Stdio::piped()));
    reference.write_stdin(&[b'x'; STEPS]);
    let reference = reference.finish();
    reference.expect_code(0);

    // --continue: three checkpoints while the coroutine waits.
    let image = dir.join("cont.dat");
    let mut run =
        spawn("ckpt --continue", ckpt(&["--continue"], &image, &prog, &args, &dir.path).stdin(Stdio::piped()));
    let stack = coroutine_stack(&mut run);
    for step in 0..3 {
        wait_in_syscall(&run, SYS_READ);
        run.checkpoint();
        wait_written(&mut run, "checkpoint written");
        check_frame_off_stack(&image, stack);
        run.write_stdin(b"x");
        run.wait_line(Stream::Stdout, |l| l.starts_with(&format!("step {step} ")), "the next step");
    }
    run.write_stdin(&[b'x'; STEPS - 3]);
    let cont = run.finish();
    cont.expect_code(0);
    assert_same(&format!("sig-coroutine {mode} --continue"), steps_of(&cont.stdout()), steps_of(&reference.stdout()));

    // Stopped while it waits for its third step, and restarted.
    let image = dir.join("stop.dat");
    let mut run = spawn("ckpt", ckpt(&[], &image, &prog, &args, &dir.path).stdin(Stdio::piped()));
    let stack = coroutine_stack(&mut run);
    run.write_stdin(b"xx");
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 1 "), "step 1");
    wait_in_syscall(&run, SYS_READ);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    check_frame_off_stack(&image, stack);
    let mut second = spawn("restart", restart(&image, &dir.path).stdin(Stdio::piped()));
    second.write_stdin(&[b'x'; STEPS - 2]);
    let second = second.finish();
    second.expect_code(0);
    assert_same(
        &format!("sig-coroutine {mode} restarted"),
        steps_of(&cat(&[&first.stdout(), &second.stdout()])),
        steps_of(&reference.stdout()),
    );
}

#[test]
fn coroutine_stack_with_the_programs_altstack() {
    coroutine_case("own");
}

#[test]
fn coroutine_stack_without_an_altstack() {
    // The program has no alternate stack: ckpt gave the main thread one.
    coroutine_case("none");
}

#[test]
fn coroutine_stack_in_a_second_thread() {
    // The same in a thread the program starts with pthread_create, without
    // an alternate stack: ckpt gave it one as it started.
    coroutine_case("thread");
}

#[test]
fn threads_end_through_the_altstack_wrapper() {
    // pthread_exit and pthread_cancel unwind through ckpt's start wrapper;
    // each thread had an alternate stack from ckpt.
    let dir = TempDir::new("threads-exit");
    let out =
        spawn("ckpt threads-exit", &mut ckpt(&[], &dir.join("img"), &demo("threads-exit"), &[], &dir.path)).finish();
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "exit 7 altstack=yes\ncancel yes altstack=yes\ndone\n", "{}", out.describe());
}

/// Program `name` from PATH, or None after a skip line for `test` saying
/// why (`package`: the Debian package that has it).
fn tool(name: &str, package: &str, test: &str) -> Option<PathBuf> {
    let found =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|g| g.is_file()));
    if found.is_none() {
        eprintln!("SKIP {test}: no `{name}` in PATH (Debian package {package})");
    }
    found
}

/// Builds the Go program `source` in `dir` as `dir/NAME`, with its build
/// cache and module path in `dir`; `flags` go to `go build`.
fn go_build(go: &Path, dir: &TempDir, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(&format!("{name}-src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("main.go"), source).unwrap();
    fs::write(src.join("go.mod"), format!("module {name}\n\ngo 1.19\n")).unwrap();
    let out = dir.join(name);
    let mut args = vec!["build", "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.push(".");
    let mut cmd = command(go, &args, &src);
    cmd.env("GOCACHE", dir.join("gocache")).env("GOPATH", dir.join("gopath")).env("GOFLAGS", "").env("HOME", &dir.path);
    spawn("go build", &mut cmd).finish_within(std::time::Duration::from_secs(300)).expect_code(0);
    out
}

/// Goroutines computing with deep recursion on their small, growing
/// stacks; one line per round, written at once (os.Stdout is unbuffered).
/// `import "C"`: linked with runtime/cgo, dynamically.
const GO_COMPUTE: &str = r#"package main

import "C"

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

func walk(n, seed uint64) uint64 {
	if n == 0 {
		return seed*6364136223846793005 + 1442695040888963407
	}
	a := walk(n-1, seed^n)
	return a ^ (a >> 13) + n
}

func main() {
	rounds, _ := strconv.Atoi(os.Args[1])
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		res := make([]uint64, 16)
		for g := range res {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				x := uint64(r*16 + g)
				for i := 0; i < 60000; i++ {
					x = walk(uint64(i%40), x)
				}
				res[g] = x
			}(g)
		}
		wg.Wait()
		var sum uint64
		for _, v := range res {
			sum ^= v
		}
		fmt.Printf("round %d %016x\n", r, sum)
	}
	fmt.Println("done")
}
"#;

const GO_ROUNDS: &str = "300";

fn round(n: usize) -> impl Fn(&str) -> bool {
    move |l: &str| l.starts_with(&format!("round {n} "))
}

#[test]
fn go_goroutines_checkpointed_and_restarted() {
    let Some(go) = tool("go", "golang-go", "go_goroutines_checkpointed_and_restarted") else { return };
    let dir = TempDir::new("go-compute");
    let prog = go_build(&go, &dir, "go-compute", GO_COMPUTE, &[]);
    // As long as the checkpointed runs may take: a loaded machine slows Go's
    // goroutines a lot.
    let reference = spawn("uninterrupted run", &mut command(&prog, &[GO_ROUNDS], &dir.path))
        .finish_within(std::time::Duration::from_secs(120));
    reference.expect_code(0);

    // Eight checkpoints in a row with --continue, while goroutines run.
    let image = dir.join("cont.dat");
    let mut run = spawn("ckpt --continue", &mut ckpt(&["--continue"], &image, &prog, &[GO_ROUNDS], &dir.path));
    run.wait_line(Stream::Stdout, round(2), "round 2");
    for k in 0..8 {
        run.checkpoint();
        wait_written(&mut run, &format!("checkpoint {k}"));
    }
    let cont = run.finish_within(std::time::Duration::from_secs(120));
    cont.expect_code(0);
    assert_same("go-compute --continue", &cont.stdout(), &reference.stdout());

    // Stopped, restarted, stopped again and restarted again.
    let image = dir.join("stop.dat");
    let mut run = spawn("ckpt", &mut ckpt(&[], &image, &prog, &[GO_ROUNDS], &dir.path));
    run.wait_line(Stream::Stdout, round(5), "round 5");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    let mut run = spawn("restart", &mut restart(&image, &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("round "), "a round after the restart");
    run.checkpoint();
    let second = run.finish();
    second.expect_code(CHECKPOINTED);
    let third =
        spawn("second restart", &mut restart(&image, &dir.path)).finish_within(std::time::Duration::from_secs(120));
    third.expect_code(0);
    assert_same(
        "go-compute restarted twice",
        &cat(&[&first.stdout(), &second.stdout(), &third.stdout()]),
        &reference.stdout(),
    );
}

// ---------------------------------------------------------------------------
// Signals the program sends itself.

#[test]
fn self_sent_checkpoint_signal_reaches_the_programs_handler() {
    // The program handles SIGUSR2 and sends it to itself five ways, twice:
    // each reaches its handler, with its mask, and none is a checkpoint.
    // Only the test's SIGUSR2, from outside, checkpoints it.
    let dir = TempDir::new("sig-self");
    let prog = demo("sig-self");
    let mut reference = spawn("uninterrupted run", command(&prog, &[], &dir.path).stdin(Stdio::piped()));
    reference.write_stdin(b"x");
    let reference = reference.finish();
    reference.expect_code(0);
    assert!(reference
        .stdout_text()
        .contains("pthread_kill: si_code=-6 from_self=yes usr1_blocked=yes usr2_blocked=yes count=10\ndone\n"));

    let image = dir.join("img");
    let mut run = spawn("ckpt sig-self", ckpt(&[], &image, &prog, &[], &dir.path).stdin(Stdio::piped()));
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    wait_in_syscall(&run, SYS_READ);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    let written = first.text_lines(Stream::Stderr).iter().filter(|l| is_written(l)).count();
    assert_eq!(written, 1, "one checkpoint, the one sent from outside\n{}", first.describe());
    let mut second = spawn("restart", restart(&image, &dir.path).stdin(Stdio::piped()));
    second.write_stdin(b"x");
    let second = second.finish();
    second.expect_code(0);
    assert_same("sig-self", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
}

/// A Java program that computes and prints "round R" every 100 ms.
const JAVA_WORK: &str = r#"public class Work {
    public static void main(String[] args) {
        int rounds = Integer.parseInt(args[0]);
        long x = 1;
        for (int r = 0; r < rounds; r++) {
            long end = System.nanoTime() + 100_000_000L;
            while (System.nanoTime() < end) {
                for (int i = 0; i < 100000; i++) x = x * 6364136223846793005L + 1442695040888963407L;
            }
            System.out.println("round " + r);
        }
        System.out.println("done");
    }
}
"#;

#[test]
fn java_flight_recorder_is_not_a_checkpoint_request() {
    // HotSpot suspends its own threads with SIGUSR2 to sample them (JFR):
    // those signals go to HotSpot's handler; the test's SIGUSR2 checkpoints.
    let test = "java_flight_recorder_is_not_a_checkpoint_request";
    let (Some(java), Some(javac)) = (tool("java", "default-jdk", test), tool("javac", "default-jdk", test)) else {
        return;
    };
    let dir = TempDir::new("java-jfr");
    fs::write(dir.join("Work.java"), JAVA_WORK).unwrap();
    spawn("javac", &mut command(&javac, &["Work.java"], &dir.path))
        .finish_within(std::time::Duration::from_secs(120))
        .expect_code(0);
    let jfr = format!("-XX:StartFlightRecording=filename={},settings=profile", dir.join("rec.jfr").display());
    let args = [jfr.as_str(), "-cp", dir.path.to_str().unwrap(), "Work", "30"];
    let reference = spawn("uninterrupted run", &mut command(&java, &args, &dir.path))
        .finish_within(std::time::Duration::from_secs(120));
    reference.expect_code(0);

    let image = dir.join("img");
    let mut run = spawn("ckpt java", &mut ckpt(&[], &image, &java, &args, &dir.path));
    run.wait_line(Stream::Stdout, |l| l == "round 20\n", "round 20 (two seconds of sampling)");
    run.checkpoint();
    let first = run.finish_within(std::time::Duration::from_secs(120));
    first.expect_code(CHECKPOINTED);
    let written = first.text_lines(Stream::Stderr).iter().filter(|l| is_written(l)).count();
    assert_eq!(written, 1, "one checkpoint, the one sent from outside\n{}", first.describe());
    let second = spawn("restart", &mut restart(&image, &dir.path)).finish_within(std::time::Duration::from_secs(120));
    second.expect_code(0);
    // The JVM's own lines (JFR's start message) come before the rounds.
    let rounds = |o: &[u8]| -> Vec<u8> {
        String::from_utf8_lossy(o)
            .lines()
            .filter(|l| l.starts_with("round ") || *l == "done")
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    };
    assert_same("java Work", &rounds(&cat(&[&first.stdout(), &second.stdout()])), &rounds(&reference.stdout()));
}

// ---------------------------------------------------------------------------
// A fatal signal sent together with the checkpoint signal.

/// `kill -USR2 P; kill -SIG P` back to back, to `cli-count` (SIG at its
/// default action, unblocked), with and without --continue: the image is
/// written without SIG, the run ends by SIG (saying so), and the image
/// restarts to the end of an uninterrupted run.
fn fatal_with_checkpoint(sig: i32, name: &str) {
    let dir = TempDir::new(&format!("fatal-{name}"));
    fatal_case(&Tools::new(), &demo("cli-count"), &dir, sig, name);
}

fn fatal_case(tools: &Tools, prog: &Path, dir: &TempDir, sig: i32, name: &str) {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let args = ["8", "40"];
    let reference = spawn("uninterrupted run", &mut tools.cmd(prog, &args, &dir.path)).finish();
    reference.expect_code(0);
    for options in [&[][..], &["--continue"][..]] {
        let what = format!("ckpt {} cli-count, then SIG{name}", options.join(" "));
        let image = dir.join(&format!("img{}", options.len()));
        let mut cmd = tools.ckpt_with(options, Some(&image), prog, &args, &dir.path);
        // SAFETY: setrlimit is async-signal-safe; no core file for SIGXCPU.
        unsafe {
            cmd.pre_exec(|| {
                let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::setrlimit(libc::RLIMIT_CORE, &none);
                Ok(())
            });
        }
        // Sent back to back, the fatal signal may reach the program before
        // the checkpoint signal's handler starts: then the kernel ends it
        // at once, before any checkpoint (nothing of ckpt's runs, nothing is
        // said). That ordering is the kernel's, not the case under test: it
        // is tried again, a few times.
        let mut attempts = 0;
        let first = loop {
            attempts += 1;
            let mut run = spawn(&what, &mut cmd);
            run.wait_line(Stream::Stdout, |l| l.starts_with("step 2 "), "step 2");
            run.checkpoint();
            run.signal(sig);
            let first = run.finish();
            let before_any_checkpoint = first.status.signal() == Some(sig) && !first.stderr_text().contains("ckpt:");
            if !before_any_checkpoint || attempts == 10 {
                break first;
            }
        };
        assert_eq!(first.status.signal(), Some(sig), "{what}: the run should end by SIG{name}\n{}", first.describe());
        let err = first.stderr_text();
        assert!(err.lines().any(is_written), "{what}: no image (in {attempts} attempts)\n{}", first.describe());
        assert!(
            err.contains(&format!(
                "ckpt: SIG{name} arrived during the checkpoint; the program ends by it (the image does not hold it)"
            )),
            "{what}\n{}",
            first.describe()
        );
        let second = spawn("restart", &mut tools.restart(Some(&image), &dir.path)).finish();
        second.expect_code(0);
        assert_same(&what, &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    }
}

#[test]
fn unprivileged_sigterm_with_the_checkpoint_signal() {
    let (bins, tools, work) = unprivileged("nobody-fatal", &[&demo("cli-count")]);
    fatal_case(&tools, &bins.join("cli-count"), &work, libc::SIGTERM, "TERM");
}

#[test]
fn sigterm_with_the_checkpoint_signal() {
    fatal_with_checkpoint(libc::SIGTERM, "TERM");
}

#[test]
fn sigalrm_with_the_checkpoint_signal() {
    fatal_with_checkpoint(libc::SIGALRM, "ALRM");
}

#[test]
fn sigpipe_with_the_checkpoint_signal() {
    fatal_with_checkpoint(libc::SIGPIPE, "PIPE");
}

#[test]
fn sigxcpu_with_the_checkpoint_signal() {
    fatal_with_checkpoint(libc::SIGXCPU, "XCPU");
}

// ---------------------------------------------------------------------------
// The checkpoint signal while restart loads an image.

/// `rchar` of /proc/PID/io: bytes the process has read so far.
/// Bytes read by restart `pid` (with init and the program's process, which
/// loads the image in namespace mode); None once it has ended.
fn bytes_read(pid: i32) -> Option<u64> {
    let rchar = |p: i32| -> Option<u64> {
        let io = fs::read_to_string(format!("/proc/{p}/io")).ok()?;
        io.lines().find_map(|l| l.strip_prefix("rchar:")).and_then(|v| v.trim().parse().ok())
    };
    let outer = rchar(pid)?;
    Some(outer + job_pids(pid).into_iter().skip(1).filter_map(rchar).sum::<u64>())
}

#[test]
fn checkpoint_signal_during_restart_load() {
    // bigmem (256 MiB) is checkpointed while it waits for a line on stdin.
    // SIGUSR2 is sent to its restart once the loader has read 32 MiB of the
    // image and before it has read it all: restart is not killed, and the
    // restarted program takes that checkpoint at once (exit 99, a new
    // image), which restarts to the end of an uninterrupted run.
    let dir = TempDir::new("load-signal");
    let prog = demo("bigmem");
    let args = ["256"];
    let mut reference = spawn("uninterrupted run", command(&prog, &args, &dir.path).stdin(Stdio::piped()));
    reference.write_stdin(b"go\n");
    let reference = reference.finish();
    reference.expect_code(0);

    let image = dir.join("big.dat");
    let mut run = spawn("ckpt bigmem", ckpt(&[], &image, &prog, &args, &dir.path).stdin(Stdio::piped()));
    run.wait_line(Stream::Stdout, |l| l.starts_with("bigmem: ready"), "ready");
    run.checkpoint();
    let first = run.finish_within(TIMEOUT * 2);
    first.expect_code(CHECKPOINTED);
    let size = fs::metadata(&image).unwrap().len();

    let second = spawn("restart", &mut restart(&image, &dir.path));
    let start = std::time::Instant::now();
    let at = loop {
        match bytes_read(second.pid) {
            Some(n) if n >= 32 << 20 => break n,
            Some(_) => {}
            None => panic!("restart ended before it read 32 MiB of the image"),
        }
        assert!(start.elapsed() < TIMEOUT, "restart did not read 32 MiB of the image in {TIMEOUT:?}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    second.checkpoint();
    let after = bytes_read(second.pid).unwrap_or(0);
    assert!(
        after < size,
        "restart had read the whole image ({after} of {size} bytes) when the signal came: too late to tell"
    );
    let second = second.finish_within(TIMEOUT * 2);
    second.expect_code(CHECKPOINTED);
    assert!(
        second.stderr_text().lines().any(is_written),
        "no checkpoint after the restart (signal sent at {at} bytes read)\n{}",
        second.describe()
    );

    let mut third = spawn("second restart", restart(&image, &dir.path).stdin(Stdio::piped()));
    third.write_stdin(b"go\n");
    let third = third.finish_within(TIMEOUT * 2);
    third.expect_code(0);
    assert_same("bigmem", &cat(&[&first.stdout(), &second.stdout(), &third.stdout()]), &reference.stdout());
}

// ---------------------------------------------------------------------------
// Handlers installed with raw rt_sigaction system calls.

#[test]
fn rt_sigaction_through_syscall_keeps_checkpointing() {
    // syscall(SYS_rt_sigaction, SIGUSR2, ...) is recorded as sigaction is:
    // the program reads its handler back and gets its own raises, and the
    // test's SIGUSR2 still checkpoints.
    let dir = TempDir::new("sig-raw");
    let prog = demo("sig-raw");
    let mut reference = spawn("uninterrupted run", command(&prog, &["syscall"], &dir.path).stdin(Stdio::piped()));
    reference.write_stdin(b"x");
    let reference = reference.finish();
    reference.expect_code(0);

    let image = dir.join("img");
    let mut run =
        spawn("ckpt sig-raw syscall", ckpt(&[], &image, &prog, &["syscall"], &dir.path).stdin(Stdio::piped()));
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    wait_in_syscall(&run, SYS_READ);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    assert!(first.stderr_text().contains("ckpt: the program set a handler for SIGUSR2"), "{}", first.describe());
    let mut second = spawn("restart", restart(&image, &dir.path).stdin(Stdio::piped()));
    second.write_stdin(b"x");
    let second = second.finish();
    second.expect_code(0);
    assert_same("sig-raw syscall", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
}

#[test]
fn handler_replaced_by_a_raw_system_call_is_named() {
    // The program replaces ckpt's SIGUSR2 handler with the syscall
    // instruction itself, then calls sigaction for another signal: ckpt
    // notices then and says so.
    let dir = TempDir::new("sig-raw-asm");
    let mut run = spawn(
        "ckpt sig-raw asm",
        ckpt(&[], &dir.join("img"), &demo("sig-raw"), &["asm"], &dir.path).stdin(Stdio::piped()),
    );
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    run.write_stdin(b"x");
    let out = run.finish();
    out.expect_code(0);
    let want = "ckpt: the program replaced ckpt's handler of SIGUSR2 with a raw rt_sigaction system call: \
                the checkpoint signal no longer checkpoints it (choose another signal with -s)\n";
    assert_eq!(out.stderr_text(), want, "{}", out.describe());
}

const GO_TICKS: &str = r#"package main

import (
	"fmt"
	"time"
)

func main() {
	for i := 0; i < 20; i++ {
		fmt.Printf("tick %d\n", i)
		time.Sleep(20 * time.Millisecond)
	}
}
"#;

#[test]
fn go_without_cgo_is_named_at_start() {
    // Linked externally (dynamically, so LD_PRELOAD reaches it) but without
    // runtime/cgo: the Go runtime installs its handlers with raw system
    // calls. ckpt says so before the program runs.
    let Some(go) = tool("go", "golang-go", "go_without_cgo_is_named_at_start") else { return };
    let dir = TempDir::new("go-nocgo");
    let prog = go_build(&go, &dir, "go-ticks", GO_TICKS, &["-ldflags=-linkmode=external"]);
    let mut run = spawn("ckpt go-ticks", &mut ckpt(&[], &dir.join("img"), &prog, &[], &dir.path));
    let l = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: "), "a line from ckpt").text();
    assert_eq!(
        l,
        "ckpt: this Go program does not link runtime/cgo: the Go runtime sets its signal handlers with raw system \
         calls, over ckpt's, and SIGUSR2 will not checkpoint it (build it with cgo: import \"C\")\n"
    );
    assert!(run.lines.iter().all(|l| l.stream == Stream::Stderr), "the line comes before the program's first");
    run.finish().expect_code(0);
}

// ---------------------------------------------------------------------------
// Stdio the program redirected itself.

#[test]
fn stdout_redirected_by_the_program_stays_its_own() {
    // files-redirect dup2s a file onto its stdout (as `sort -o` does) and is
    // checkpointed halfway: the restart writes the rest into that file, at
    // its offset, not into restart's stdout.
    let dir = TempDir::new("redirect");
    let prog = demo("files-redirect");
    let reference_file = dir.join("reference.txt");
    let mut reference = spawn(
        "uninterrupted run",
        command(&prog, &[reference_file.to_str().unwrap(), "3000"], &dir.path).stdin(Stdio::piped()),
    );
    reference.write_stdin(b"x");
    reference.finish().expect_code(0);

    let out = dir.join("sorted.txt");
    let image = dir.join("img");
    let args = [out.to_str().unwrap(), "3000"];
    let mut run = spawn("ckpt files-redirect", ckpt(&[], &image, &prog, &args, &dir.path).stdin(Stdio::piped()));
    run.wait_line(Stream::Stderr, |l| l == "ready\n", "ready");
    wait_in_syscall(&run, SYS_READ);
    run.checkpoint();
    run.finish().expect_code(CHECKPOINTED);
    let mut second = spawn("restart", restart(&image, &dir.path).stdin(Stdio::piped()));
    second.write_stdin(b"x");
    let second = second.finish();
    second.expect_code(0);
    assert!(second.stdout().is_empty(), "the program's output went to restart's stdout\n{}", second.describe());
    assert_same("sorted.txt", &read(&out), &read(&reference_file));
}

// ---------------------------------------------------------------------------
// Children in flight at a checkpoint.

/// The children of `pid` whose command is `comm`.
fn children_named(pid: i32, comm: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") ")) else { continue };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) && name == comm {
            found.push(child);
        }
    }
    found
}

/// `sh -c 'echo start; CHILD; echo status $?'` under `ckpt OPTIONS` with
/// `env` (stdin piped), checkpointed while CHILD (`sleep 30`, or `head -n
/// 1`) runs: returns the run (not finished), the child's pid and the image
/// path.
fn shell_with(dir: &TempDir, child: &str, options: &[&str], env: &[(&str, &str)]) -> (Run, i32, PathBuf) {
    let image = dir.join("img");
    let script = format!("echo start; {child}; echo status $?");
    let mut cmd = ckpt(options, &image, Path::new("/bin/sh"), &["-c", &script], &dir.path);
    cmd.stdin(Stdio::piped()).envs(env.iter().copied());
    let mut run = spawn("ckpt sh", &mut cmd);
    run.wait_line(Stream::Stdout, |l| l == "start\n", "start");
    let comm = child.split(' ').next().and_then(|p| p.rsplit('/').next()).unwrap();
    let start = std::time::Instant::now();
    let pid = loop {
        if let Some(&p) = children_named(run.pid, comm).first() {
            break p;
        }
        assert!(start.elapsed() < TIMEOUT, "sh did not start {comm}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    run.checkpoint();
    (run, pid, image)
}

/// `shell_with` a `sleep 30` child.
fn shell_with_a_child(dir: &TempDir, options: &[&str], env: &[(&str, &str)]) -> (Run, i32, PathBuf) {
    shell_with(dir, "sleep 30", options, env)
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process this test started (through sh).
    unsafe { libc::kill(pid, sig) };
}

/// With --no-tree (or CKPT_TREE=0) only the program is in the image: its
/// child is named at the checkpoint.
#[test]
fn children_in_flight_are_named() {
    for (options, env) in [(&["--no-tree"][..], &[][..]), (&[], &[("CKPT_TREE", "0")])] {
        let dir = TempDir::new("children");
        let (mut run, sleep, image) = shell_with_a_child(&dir, options, env);
        wait_written(&mut run, "checkpoint written");
        kill(sleep, libc::SIGKILL); // it holds the output pipes open
        let first = run.finish();
        first.expect_code(CHECKPOINTED);
        assert!(image.is_file());
        let want = format!(
            "ckpt: warning: child {sleep} (sleep 30) is running: the image does not hold it, and after a restart \
             the program will not find it\n"
        );
        assert!(
            first.text_lines(Stream::Stderr).contains(&want),
            "{options:?} {env:?}: expected: {want}{}",
            first.describe()
        );
    }
}

/// A shell running one short command after another, checkpointed again and
/// again (`--continue`): a checkpoint that comes while a command is being
/// exec'ed never ends it (the kernel resets the library's handler at exec;
/// the request is held for the new program's library), so every checkpoint
/// is written and every command exits 0.
fn exec_storm(tools: &Tools, work: &Path) {
    let image = work.join("img");
    let script = "echo start; i=0; while [ ! -e stop ]; do sh -c 'exec /bin/true' || echo \"status $? at $i\"; \
                  i=$((i+1)); done; echo \"done\"";
    let mut cmd = tools.ckpt_with(&["--continue"], Some(&image), Path::new("/bin/bash"), &["-c", script], work);
    let mut run = spawn("ckpt sh", &mut cmd);
    run.wait_line(Stream::Stdout, |l| l == "start\n", "start");
    for n in 1..=100 {
        run.checkpoint();
        wait_written(&mut run, &format!("checkpoint {n}"));
    }
    fs::write(work.join("stop"), b"").unwrap();
    let o = run.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "start\ndone\n", "{}", o.describe());
    assert!(!o.stderr_text().contains("failed"), "{}", o.describe());
}

#[test]
fn checkpoints_during_execs_end_no_command() {
    let work = TempDir::new("exec-storm");
    exec_storm(&Tools::new(), &work.path);
}

#[test]
fn checkpoints_during_execs_end_no_command_as_nobody() {
    let (_bins, tools, work) = unprivileged("exec-storm-nobody", &[]);
    exec_storm(&tools, &work.path);
}

/// A statically linked child cannot be in the job: the checkpoint is
/// refused in one line naming it, after half a second (not the 5 s a
/// dynamic program that has not armed yet is waited for: the whole job is
/// paused meanwhile); the previous image stays and the program goes on.
#[test]
fn a_static_child_is_refused_without_the_whole_wait() {
    let dir = TempDir::new("static-child");
    let prog = build_static(&dir, "static-wait", STATIC_WAIT);
    fs::write(dir.join("img"), b"the previous image").unwrap();
    let (mut run, pid, image) = shell_with(&dir, prog.to_str().unwrap(), &[], &[]);
    let asked = std::time::Instant::now();
    let l = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: "), "ckpt's line").text();
    let took = asked.elapsed();
    assert_eq!(
        l,
        format!(
            "ckpt: checkpoint failed: process {pid} ({}) never took the checkpoint signal (a static executable, or a \
             program run without the capture library: it cannot be in the job); the program continues, any previous \
             image is unchanged\n",
            prog.display()
        )
    );
    assert!(took < std::time::Duration::from_secs(4), "the refusal took {took:?}");
    run.write_stdin(b"\n");
    let o = run.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "start\nready\nstatus 4\n");
    assert_eq!(read(&image), b"the previous image");
}

/// By default the child is a member of the job: nothing is named, the one
/// image holds both processes, and after a restart the child reads what
/// restart's caller gives it and the shell gets its status.
#[test]
fn a_child_in_flight_is_in_the_job_by_default() {
    let dir = TempDir::new("children-job");
    let (mut run, _head, image) = shell_with(&dir, "head -n 1", &[], &[]);
    let line = run.wait_line(Stream::Stderr, is_written, "checkpoint written").text();
    assert!(line.contains(", 2 processes)"), "the image should hold the shell and head: {line:?}");
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    assert!(!first.stderr_text().contains("warning"), "{}", first.describe());
    assert_eq!(first.stdout_text(), "start\n");
    let (probe, args) = UNSHARE_PROBE;
    if !namespaces_available(command(Path::new(probe), &args, &dir.path), "restart of a job") {
        return;
    }
    let mut cmd = restart(&image, &dir.path);
    cmd.stdin(Stdio::piped());
    let mut restarted = spawn("restart", &mut cmd);
    restarted.write_stdin(b"read after the restart\n");
    restarted.close_stdin();
    let o = restarted.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "read after the restart\nstatus 0\n", "{}", o.describe());
}

#[test]
fn strict_refuses_a_checkpoint_with_children() {
    // --strict: one line, no image (the previous one untouched), and the
    // program goes on; its child, killed by the test, ends as it would.
    let dir = TempDir::new("children-strict");
    fs::write(dir.join("img"), b"the previous image").unwrap();
    let (mut run, sleep, image) = shell_with_a_child(&dir, &["--no-tree", "--strict"], &[]);
    let l = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: "), "ckpt's line").text();
    assert_eq!(
        l,
        format!(
            "ckpt: checkpoint failed: the program has child processes, which an image cannot hold (--strict): \
             {sleep} (sleep 30); the program continues, any previous image is unchanged\n"
        )
    );
    kill(sleep, libc::SIGTERM);
    let out = run.finish();
    out.expect_code(0);
    assert_eq!(out.stdout_text(), "start\nstatus 143\n");
    assert_eq!(read(&image), b"the previous image");
}
