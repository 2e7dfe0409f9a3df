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

/// The number after `"key":` in the first thread of `readckpt --json`.
fn leader_field(image: &Path, key: &str) -> u64 {
    let o =
        spawn("readckpt --json", &mut command(&exe("readckpt"), &["--json", image.to_str().unwrap()], Path::new("/")))
            .finish();
    o.expect_code(0);
    let json = o.stdout_text();
    let threads = &json[json.find("\"threads\"").expect("no threads in readckpt --json")..];
    let at =
        threads.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in readckpt --json")) + key.len() + 3;
    let digits: String = threads[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{key} is not a number in readckpt --json"))
}

// ---------------------------------------------------------------------------
// Signal frames on small stacks.

/// `sig-coroutine MODE`'s coroutine stack, from its first line "stack LO HI".
fn coroutine_stack(run: &mut Run) -> (u64, u64) {
    let l = run.wait_line(Stream::Stdout, |l| l.starts_with("stack "), "stack").text();
    let v: Vec<u64> = l.split_whitespace().skip(1).map(|x| u64::from_str_radix(x, 16).unwrap()).collect();
    (v[0], v[1])
}

/// The image was taken while the main thread ran on the coroutine's stack,
/// and its signal frame is not on that stack.
fn check_frame_off_stack(image: &Path, (lo, hi): (u64, u64)) {
    let rsp = leader_field(image, "rsp");
    let frame = leader_field(image, "ucontext");
    assert!((lo..hi).contains(&rsp), "the checkpoint did not interrupt the coroutine (rsp {rsp:#x})");
    assert!(!(lo..hi).contains(&frame), "the signal frame {frame:#x} is on the coroutine's stack {lo:#x}..{hi:#x}");
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

/// A Go toolchain, or None after a skip line saying why.
fn go_tool(test: &str) -> Option<PathBuf> {
    let found =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("go")).find(|g| g.is_file()));
    if found.is_none() {
        eprintln!("SKIP {test}: no `go` in PATH (Debian package golang-go; .ci/run installs it)");
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

const GO_ROUNDS: &str = "400";

fn round(n: usize) -> impl Fn(&str) -> bool {
    move |l: &str| l.starts_with(&format!("round {n} "))
}

#[test]
fn go_goroutines_checkpointed_and_restarted() {
    let Some(go) = go_tool("go_goroutines_checkpointed_and_restarted") else { return };
    let dir = TempDir::new("go-compute");
    let prog = go_build(&go, &dir, "go-compute", GO_COMPUTE, &[]);
    let reference = spawn("uninterrupted run", &mut command(&prog, &[GO_ROUNDS], &dir.path)).finish();
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
