//! End-to-end tests of ckpt: each one drives the built executables (`make`
//! puts them in the workspace root) the way a user would, checkpoints a
//! program in the middle of its run with SIGUSR2, restarts the image, and
//! checks that the output of the first run followed by the output of the
//! restart is exactly the output of an uninterrupted run, with the same exit
//! status. Every test works in its own temporary directory.
//!
//! Synchronisation is never a fixed sleep: a test waits for a line the
//! program prints, or, when the program's stdout is fully buffered (a file or
//! a pipe), for its real progress in /proc/PID/status (voluntary context
//! switches: one per sleep). Every wait has a timeout, and a failing test
//! kills what it started.

mod common;

use ckpt_image::{bytes_of, checksum, read_at, Header, Meta, Region, HEADER_SIZE};
use common::*;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Exit status of a checkpointed program.
const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// The checkpointed run's stderr must be the one line saying where the image is.
fn check_ckpt_message(first: &Outcome, image: &Path) {
    let err = first.stderr_text();
    let name = image.file_name().unwrap().to_str().unwrap();
    assert!(
        err.lines().count() == 1 && err.ends_with('\n') && err.contains(name),
        "the checkpointed run should print exactly one line on stderr, naming the image {name}\n{}",
        first.describe()
    );
    assert!(image.is_file(), "no image at {}\n{}", image.display(), first.describe());
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Output {
    File,
    Pipe,
}

/// Runs `program args` under ckpt with stdout to a file or a pipe (fully
/// buffered either way: nothing to wait for), checkpoints it once it has
/// slept `sleeps` times, restarts it, and compares with an uninterrupted run
/// that runs at the same time. With `default_image`, uses ckpt's and
/// restart's default image path (myckpt.dat in the working directory).
fn buffered_case(
    tools: &Tools,
    dir: &TempDir,
    program: &Path,
    args: &[&str],
    output: Output,
    sleeps: u64,
    default_image: bool,
) {
    let image = if default_image { dir.join("myckpt.dat") } else { dir.join("img.dat") };
    let image_arg = if default_image { None } else { Some(image.as_path()) };
    let set_out = |c: &mut Command, name: &str| {
        if output == Output::File {
            c.stdout(file(&dir.join(name)));
        }
    };
    let stdout_of = |o: &Outcome, name: &str| match output {
        Output::File => read(&dir.join(name)),
        Output::Pipe => o.stdout(),
    };

    let mut c = tools.cmd(program, args, &dir.path);
    set_out(&mut c, "reference.out");
    let reference = spawn("uninterrupted run", &mut c);

    let mut c = tools.ckpt(image_arg, program, args, &dir.path);
    set_out(&mut c, "first.out");
    let run = spawn("checkpointed run", &mut c);
    run.wait_switches(sleeps);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    check_ckpt_message(&first, &image);

    let mut c = tools.restart(image_arg, &dir.path);
    set_out(&mut c, "restart.out");
    let second = spawn("restart", &mut c).finish_within(TIMEOUT + Duration::from_secs(15));
    second.expect_code(0);

    let reference = reference.finish_within(TIMEOUT + Duration::from_secs(15));
    reference.expect_code(0);
    assert_same(
        &format!("{} {args:?}, stdout to a {output:?}", program.display()),
        &cat(&[&stdout_of(&first, "first.out"), &stdout_of(&second, "restart.out")]),
        &stdout_of(&reference, "reference.out"),
    );
}

#[test]
fn hello_test_stdout_to_file() {
    let dir = TempDir::new("hello-file");
    // Also covers the default image path, myckpt.dat in the working directory.
    buffered_case(&Tools::new(), &dir, &exe("hello-test"), &[], Output::File, 3, true);
}

#[test]
fn hello_test_stdout_to_pipe() {
    let dir = TempDir::new("hello-pipe");
    buffered_case(&Tools::new(), &dir, &exe("hello-test"), &[], Output::Pipe, 3, false);
}

#[test]
fn counting_test_stdout_to_file() {
    let dir = TempDir::new("counting-file");
    buffered_case(&Tools::new(), &dir, &exe("counting-test"), &["5"], Output::File, 3, false);
}

#[test]
fn counting_test_stdout_to_pipe() {
    let dir = TempDir::new("counting-pipe");
    buffered_case(&Tools::new(), &dir, &exe("counting-test"), &["5"], Output::Pipe, 3, false);
}

const PYTHON_LOOP: &str = r#"
import time
total = 0
history = []
for i in range(15):
    total = (total * 31 + i * i + 7) % 1000000007
    history.append(total % 97)
    print(i, total, sum(history), flush=True)
    time.sleep(0.2)
print("done", total, history, flush=True)
"#;

/// python3 running a loop that prints (flushed) as it goes: checkpointed
/// after its sixth line.
fn python_case(tools: &Tools, dir: &TempDir) {
    let script = dir.join("loop.py");
    fs::write(&script, PYTHON_LOOP).unwrap();
    let python = Path::new("/usr/bin/python3");
    let args = [script.to_str().unwrap()];

    let reference = spawn("uninterrupted run", &mut tools.cmd(python, &args, &dir.path));

    let image = dir.join("py.dat");
    let mut run = spawn("checkpointed run", &mut tools.ckpt(Some(&image), python, &args, &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("5 "), "line 5");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    check_ckpt_message(&first, &image);

    let second = spawn("restart", &mut tools.restart(Some(&image), &dir.path)).finish();
    second.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("python3 loop", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    assert!(reference.stdout_text().contains("done"));
}

#[test]
fn python3_loop() {
    let dir = TempDir::new("python");
    python_case(&Tools::new(), &dir);
}

/// Parses clock's "tick I real S.N tod S.U time S mono_delta_ns D real_delta_ns R".
struct Tick {
    i: u64,
    real: f64,
    mono_delta: i64,
    real_delta: i64,
    at: SystemTime,
}

fn bad_tick(t: &str) -> ! {
    panic!("unexpected clock line {t:?}")
}

fn ticks(o: &Outcome) -> Vec<Tick> {
    o.lines
        .iter()
        .filter(|l| l.stream == Stream::Stdout && l.text().starts_with("tick "))
        .map(|l| {
            let t = l.text();
            let w: Vec<&str> = t.split_whitespace().collect();
            if w.len() != 12 {
                bad_tick(&t);
            }
            Tick {
                i: w[1].parse().unwrap_or_else(|_| bad_tick(&t)),
                real: w[3].parse().unwrap_or_else(|_| bad_tick(&t)),
                mono_delta: w[9].parse().unwrap_or_else(|_| bad_tick(&t)),
                real_delta: w[11].parse().unwrap_or_else(|_| bad_tick(&t)),
                at: l.at,
            }
        })
        .collect()
}

#[test]
fn clocks_after_restart() {
    let dir = TempDir::new("clock");
    let tools = Tools::new();
    let prog = demo("clock");
    let args = ["30", "100"];
    let reference = spawn("uninterrupted run", &mut tools.cmd(&prog, &args, &dir.path));
    let image = dir.join("clock.dat");
    let mut run = spawn("checkpointed run", &mut tools.ckpt(Some(&image), &prog, &args, &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("tick 5 "), "tick 5");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    let second = spawn("restart", &mut tools.restart(Some(&image), &dir.path)).finish();
    second.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);

    let all = format!("{}\n{}", first.describe(), second.describe());
    let out = format!("{}{}", first.stdout_text(), second.stdout_text());
    assert!(!out.contains("BAD"), "clock found inconsistent clocks\n{all}");
    assert!(out.starts_with("clock: start\n") && out.ends_with("clock: done\n"), "{all}");
    let mut t = ticks(&first);
    let after = ticks(&second);
    assert!(!after.is_empty(), "no tick after the restart\n{all}");
    for k in &after {
        // The wall clock read by the restarted program is the real time: it
        // is a little before the moment the test read the line.
        let now = k.at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(
            k.real <= now + 0.5 && k.real > now - 3.0,
            "tick {} after the restart says CLOCK_REALTIME is {:.3}, but the time is {now:.3}\n{all}",
            k.i,
            k.real
        );
    }
    t.extend(after);
    for k in &t {
        assert!(
            k.mono_delta > 0 && k.real_delta > 0,
            "tick {}: clocks did not advance (mono delta {} ns, real delta {} ns)\n{all}",
            k.i,
            k.mono_delta,
            k.real_delta
        );
    }
    let got: Vec<u64> = t.iter().map(|k| k.i).collect();
    let want: Vec<u64> = ticks(&reference).iter().map(|k| k.i).collect();
    assert_eq!(got, want, "every tick exactly once\n{all}");
}

#[test]
fn malloc_and_sbrk_after_restart() {
    let dir = TempDir::new("mallocs");
    let tools = Tools::new();
    let prog = demo("mallocs");
    let args = ["30", "1000"];
    let reference = spawn("uninterrupted run", &mut tools.cmd(&prog, &args, &dir.path));
    let image = dir.join("mallocs.dat");
    let mut run = spawn("checkpointed run", &mut tools.ckpt(Some(&image), &prog, &args, &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("round 10 "), "round 10");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    let second = spawn("restart", &mut tools.restart(Some(&image), &dir.path)).finish();
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("mallocs", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    second.expect_code(0);
    assert!(second.stdout_text().contains("mallocs: OK"));
}

#[test]
fn big_memory_256_mib() {
    let dir = TempDir::new("bigmem");
    let tools = Tools::new();
    let prog = demo("bigmem");
    let args = ["256"];
    let image = dir.join("bigmem.dat");
    let mut c = tools.ckpt(Some(&image), &prog, &args, &dir.path);
    c.stdin(Stdio::piped());
    let mut run = spawn("checkpointed run", &mut c);
    run.wait_line(Stream::Stdout, |l| l.starts_with("bigmem: ready"), "ready");
    // It now waits for a line on stdin, which only the restart gets.
    run.checkpoint();
    let first = run.finish_within(TIMEOUT * 2);
    first.expect_code(CHECKPOINTED);
    let size = fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
    assert!(size >= 256 << 20, "the image of 256 MiB of data is only {size} bytes\n{}", first.describe());

    let mut c = tools.restart(Some(&image), &dir.path);
    c.stdin(Stdio::piped());
    let mut second = spawn("restart", &mut c);
    second.write_stdin(b"go\n");
    second.close_stdin();
    let second = second.finish_within(TIMEOUT * 2);
    second.expect_code(0);

    let mut c = tools.cmd(&prog, &args, &dir.path);
    c.stdin(Stdio::piped());
    let mut reference = spawn("uninterrupted run", &mut c);
    reference.write_stdin(b"go\n");
    reference.close_stdin();
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("bigmem", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    assert!(second.stdout_text().contains("bigmem: OK"));
}

/// Checkpoints `counting-test 0` (stdout to a file) after `sleeps` sleeps:
/// a small, valid image. Returns the first run's outcome.
fn counting_image(tools: &Tools, dir: &TempDir, image: &Path, sleeps: u64) -> Outcome {
    let mut c = tools.ckpt(Some(image), &exe("counting-test"), &["0"], &dir.path);
    c.stdout(file(&dir.join("first.out")));
    let run = spawn("checkpointed run", &mut c);
    run.wait_switches(sleeps);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    check_ckpt_message(&first, image);
    first
}

fn counting_output(from: u64) -> Vec<u8> {
    (from..from + 10).map(|i| format!("{i}\n")).collect::<String>().into_bytes()
}

#[test]
fn one_image_restarted_twice() {
    let dir = TempDir::new("twice");
    let tools = Tools::new();
    let image = dir.join("img.dat");
    counting_image(&tools, &dir, &image, 3);
    let first_out = read(&dir.join("first.out"));
    let before = read(&image);
    for n in 1..=2 {
        let name = format!("restart{n}.out");
        let mut c = tools.restart(Some(&image), &dir.path);
        c.stdout(file(&dir.join(&name)));
        let o = spawn(&format!("restart number {n}"), &mut c).finish();
        o.expect_code(0);
        assert_same(&format!("restart number {n}"), &cat(&[&first_out, &read(&dir.join(&name))]), &counting_output(0));
        assert!(read(&image) == before, "restart number {n} changed the image");
    }
}

#[test]
fn three_generations() {
    // checkpoint -> restart -> checkpoint -> restart -> checkpoint -> restart:
    // each restarted program is checkpointed again (its pid is the restart
    // process's), the image goes to the path chosen at the start, and the
    // output comes out complete and once.
    let dir = TempDir::new("generations");
    let tools = Tools::new();
    let image = dir.join("gen.dat");
    counting_image(&tools, &dir, &image, 2);
    let mut outputs = vec![read(&dir.join("first.out"))];
    let mut created = vec![image_header(&image).created_ns];
    for generation in 2..=3 {
        let name = format!("gen{generation}.out");
        let mut c = tools.restart(Some(&image), &dir.path);
        c.stdout(file(&dir.join(&name)));
        let run = spawn(&format!("restart, generation {generation}"), &mut c);
        // A restarted program's sleeps count from the restart.
        run.wait_switches(2);
        run.checkpoint();
        let o = run.finish();
        o.expect_code(CHECKPOINTED);
        check_ckpt_message(&o, &image);
        outputs.push(read(&dir.join(&name)));
        let h = image_header(&image);
        assert!(
            h.created_ns > *created.last().unwrap(),
            "generation {generation} did not write a new image at {}",
            image.display()
        );
        created.push(h.created_ns);
    }
    let mut c = tools.restart(Some(&image), &dir.path);
    c.stdout(file(&dir.join("last.out")));
    let last = spawn("last restart", &mut c).finish_within(TIMEOUT + Duration::from_secs(10));
    last.expect_code(0);
    outputs.push(read(&dir.join("last.out")));
    let parts: Vec<&[u8]> = outputs.iter().map(|v| v.as_slice()).collect();
    assert_same("three generations", &cat(&parts), &counting_output(0));
}

fn image_header(image: &Path) -> Header {
    let bytes = read(image);
    Header::parse(&bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("{}: {e}", image.display()))
}

/// A tiny deterministic generator for "random" images.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn bad_images_are_refused() {
    let dir = TempDir::new("bad-images");
    let tools = Tools::new();
    let image = dir.join("good.dat");
    counting_image(&tools, &dir, &image, 1);
    let good = read(&image);
    let len = good.len();
    let h = Header::parse(&good, len as u64).expect("the image ckpt wrote does not parse");
    let meta = h.meta_offset as usize;
    let meta_end = meta + h.meta_len as usize;
    let data = h.data_offset as usize;
    assert!(h.data_len > 0 && data < len);

    let mut cases: Vec<(String, PathBuf)> = Vec::new();
    let mut add = |name: String, bytes: &[u8]| {
        let p = dir.join(&format!("bad-{}.dat", cases.len()));
        fs::write(&p, bytes).unwrap();
        chmod(&p, 0o600); // what ckpt writes, whatever the umask: only the bytes are bad
        cases.push((name, p));
    };
    let mut cuts = vec![
        1,
        7,
        8,
        12,
        100,
        HEADER_SIZE - 1,
        HEADER_SIZE,
        4096,
        meta + 1,
        (meta + meta_end) / 2,
        meta_end - 1,
        data,
        data + 4096,
        (data + len) / 2,
        len - 1,
    ];
    cuts.sort();
    cuts.dedup();
    for cut in cuts.into_iter().filter(|&c| c > 0 && c < len) {
        add(format!("truncated to {cut} of {len} bytes"), &good[..cut]);
    }
    for (what, at) in [
        ("magic", 0),
        ("version", 8),
        ("header field", 40),
        ("header checksum", HEADER_SIZE - 1),
        ("region table", meta + 3),
        ("metadata middle", (meta + meta_end) / 2),
        ("metadata end", meta_end - 1),
        ("first data byte", data),
        ("data middle", (data + len) / 2),
        ("last data byte", len - 1),
    ] {
        let mut b = good.clone();
        b[at] ^= 0x01;
        add(format!("one bit flipped in the {what} (offset {at})"), &b);
    }
    add("random bytes".into(), &random_bytes(64 << 10, 0x1234_5678_9abc_def1));
    let mut b = good[..16].to_vec();
    b.extend(random_bytes(64 << 10, 42));
    add("the right magic and version, then random bytes".into(), &b);
    add("an empty file".into(), &[]);
    add(
        "format version FORMAT_VERSION + 1 (checksum right)".into(),
        &patch_header(&good, |h| h.version = ckpt_image::FORMAT_VERSION + 1),
    );
    add(
        "a header claiming a longer file (checksum right)".into(),
        &patch_header(&good, |h| {
            h.data_len += 1 << 20;
            h.file_len += 1 << 20;
        }),
    );
    add("no threads (checksum right)".into(), &patch_header(&good, |h| h.n_threads = 0));
    {
        // A misaligned region, with both checksums right.
        let mut b = good.clone();
        let mut r: Region = read_at(&b[meta..], 0).unwrap();
        r.start += 1;
        b[meta..meta + std::mem::size_of::<Region>()].copy_from_slice(bytes_of(&r));
        let mc = checksum(&b[meta..meta_end]);
        add("a misaligned region (checksums right)".into(), &patch_header(&b, |h| h.meta_checksum = mc));
    }
    if let Some((what, image)) = needing_what_this_cpu_lacks(&good) {
        add(what, &image);
    }
    let adir = dir.join("a-directory");
    fs::create_dir(&adir).unwrap();
    cases.push(("a directory".into(), adir));
    cases.push(("a missing file".into(), dir.join("does-not-exist.dat")));

    let limit = Duration::from_secs(20);
    let mut failures = Vec::new();
    for (what, path) in &cases {
        let o =
            spawn(&format!("restart of {what}"), &mut tools.restart(Some(path), &dir.path)).try_finish_within(limit);
        match o {
            Err(e) => failures.push(format!("restart of {what}: hangs: {e}")),
            Ok(o) => failures.extend(refusal_problem("restart: ", &o)),
        }
        let r = spawn(
            &format!("readckpt of {what}"),
            &mut tools.cmd(&tools.bin("readckpt"), &["--verify", path.to_str().unwrap()], &dir.path),
        )
        .try_finish_within(limit);
        match r {
            Err(e) => failures.push(format!("readckpt of {what}: hangs: {e}")),
            Ok(r) if r.status.code() != Some(1) => failures.push(format!(
                "readckpt of {what}: expected exit status 1, got {}, stderr {:?}",
                describe_status(&r.status),
                r.stderr_text()
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad images were not refused properly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // And the good one still restarts.
    let mut c = tools.restart(Some(&image), &dir.path);
    c.stdout(file(&dir.join("good.out")));
    spawn("restart of the good image", &mut c).finish_within(TIMEOUT + Duration::from_secs(10)).expect_code(0);
    assert_same(
        "restart of the good image",
        &cat(&[&read(&dir.join("first.out")), &read(&dir.join("good.out"))]),
        &counting_output(0),
    );
}

#[test]
fn unprivileged_counting_test() {
    let (bins, tools, work) = unprivileged("nobody-counting", &[]);
    let prog = bins.join("counting-test");
    buffered_case(&tools, &work, &prog, &["5"], Output::File, 3, false);
    if tools.user.is_some() {
        let uid = fs::metadata(work.join("img.dat")).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        assert_eq!(uid.ok(), Some(65534), "the image should belong to nobody");
    }
}

#[test]
fn unprivileged_python3_loop() {
    let (_bins, tools, work) = unprivileged("nobody-python", &[]);
    python_case(&tools, &work);
}

#[test]
fn static_program_is_refused() {
    let dir = TempDir::new("static");
    let prog = build_static(
        &dir,
        "static-hello",
        "#include <stdio.h>\nint main(void) { puts(\"static hello\"); return 0; }\n",
    );
    let tools = Tools::new();
    let o =
        spawn("ckpt of a static program", &mut tools.ckpt(Some(&dir.join("s.dat")), &prog, &[], &dir.path)).finish();
    assert!(
        o.status.code().is_some_and(|c| c != 0) && o.status.signal().is_none(),
        "ckpt should refuse a statically linked program with a non-zero exit status\n{}",
        o.describe()
    );
    assert!(o.stdout().is_empty(), "the static program should not have run\n{}", o.describe());
    assert!(
        o.stderr_text().to_lowercase().contains("static"),
        "ckpt's error should say the program is statically linked\n{}",
        o.describe()
    );
}

#[test]
fn readckpt_lists_regions() {
    let dir = TempDir::new("readckpt");
    let tools = Tools::new();
    let image = dir.join("img.dat");
    counting_image(&tools, &dir, &image, 1);
    let o = spawn("readckpt", &mut tools.cmd(&tools.bin("readckpt"), &[image.to_str().unwrap()], &dir.path)).finish();
    o.expect_code(0);

    let bytes = read(&image);
    let h = Header::parse(&bytes, bytes.len() as u64).unwrap();
    let meta = &bytes[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
    let m = Meta::parse(&h, meta).unwrap();
    let lines: Vec<String> = o.stdout_text().lines().map(|l| l.to_ascii_lowercase()).collect();
    assert!(m.n_regions() > 0);
    // Each region has its own line, showing its start and end addresses.
    let mut used = vec![false; lines.len()];
    for r in m.regions() {
        let (s, e) = (format!("{:x}", r.start), format!("{:x}", r.end));
        let found = (0..lines.len()).find(|&i| !used[i] && lines[i].contains(&s) && lines[i].contains(&e));
        match found {
            Some(i) => used[i] = true,
            None => panic!(
                "readckpt shows no line for region {s}-{e} ({})\n{}",
                r.kind().map(|k| k.name()).unwrap_or("?"),
                o.describe()
            ),
        }
    }
}

#[test]
fn failed_checkpoint_keeps_the_previous_image_and_the_program_runs_on() {
    // A good image first; then a run whose image cannot be written (its
    // file size limit is far below the image's size): the checkpoint fails
    // with one line naming why, the program goes on to its normal end, and
    // the previous image is untouched, with no temporary file left.
    let dir = TempDir::new("failed-write");
    let tools = Tools::new();
    let image = dir.join("img.dat");
    counting_image(&tools, &dir, &image, 2);
    let good = read(&image);

    let script = r#"ulimit -f 64; exec "$0" -o "$1" "$2" 0"#;
    let ckpt = tools.bin("ckpt");
    let counting = exe("counting-test");
    let args = [script, ckpt.to_str().unwrap(), image.to_str().unwrap(), counting.to_str().unwrap()];
    let mut c =
        command(Path::new("/bin/sh"), &["-c"].iter().chain(args.iter()).copied().collect::<Vec<_>>(), &dir.path);
    c.stdout(file(&dir.join("limited.out")));
    let run = spawn("run with a small file size limit", &mut c);
    run.wait_switches(2);
    run.checkpoint();
    let o = run.finish_within(TIMEOUT);
    o.expect_code(0);
    let err = o.stderr_text();
    assert!(
        err.lines().count() == 1 && err.contains("checkpoint failed") && err.contains("File too large"),
        "expected one line saying the checkpoint failed (file too large)\n{}",
        o.describe()
    );
    assert_same("the program after a failed checkpoint", &read(&dir.join("limited.out")), &counting_output(0));
    assert!(read(&image) == good, "the failed checkpoint changed the previous image");
    let leftovers: Vec<_> = fs::read_dir(&dir.path)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

#[test]
fn restarted_program_shows_its_own_command_line() {
    // ps and /proc/PID/cmdline show the program's command line, and
    // /proc/PID/comm its name, not "restart IMAGE" (in namespace mode PID is
    // the program's process, under the outer restart and init).
    let dir = TempDir::new("cmdline");
    let tools = Tools::new();
    let image = dir.join("img.dat");
    counting_image(&tools, &dir, &image, 2);
    let mut c = tools.restart(Some(&image), &dir.path);
    c.stdout(file(&dir.join("restart.out")));
    let run = spawn("restart", &mut c);
    run.wait_switches(1);
    let pid = program_pid(run.pid);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    let want = format!("{}\0{}\0", exe("counting-test").display(), 0);
    assert_eq!(String::from_utf8_lossy(&cmdline), want);
    assert_eq!(comm.trim_end(), "counting-test");
    run.finish().expect_code(0);
}

/// A restarted program that re-execs itself (same pid, new program image)
/// is still armed: checkpointed after the exec, it stops with an image,
/// and that image restarts to the end of the uninterrupted output.
#[test]
fn reexec_after_restart_keeps_checkpointing() {
    let dir = TempDir::new("reexec");
    let prog = demo("reexec");
    let args = ["1", "8", "30"];
    let reference = spawn("uninterrupted run", &mut command(&prog, &args, &dir.path));
    let tools = Tools::new();
    let image = dir.join("img.dat");
    let mut run = spawn("ckpt reexec", &mut tools.ckpt(Some(&image), &prog, &args, &dir.path));
    run.wait_line(Stream::Stdout, |l| l == "gen 1 step 3\n", "gen 1 step 3");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);

    // The restart re-execs into generation 0: checkpoint it there.
    let mut run = spawn("restart", &mut tools.restart(Some(&image), &dir.path));
    run.wait_line(Stream::Stdout, |l| l == "gen 0 step 2\n", "gen 0 step 2 (after the re-exec)");
    run.checkpoint();
    let second = run.finish();
    second.expect_code(CHECKPOINTED);
    check_ckpt_message(&second, &image);

    let third = spawn("second restart", &mut tools.restart(Some(&image), &dir.path)).finish();
    third.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same(
        "re-exec after a restart",
        &cat(&[&first.stdout(), &second.stdout(), &third.stdout()]),
        &reference.stdout(),
    );
}

/// The loader brings its own memory functions (loader/mem): none may call
/// itself, as a loop the compiler turned into a call to that very function
/// would (that crate is `#![no_builtins]` for it: docs/ARCHITECTURE.md).
#[test]
fn the_loaders_memory_functions_never_call_themselves() {
    let out = match Command::new("objdump").args(["-d", "--no-show-raw-insn"]).arg(exe("restart")).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => return println!("skip: no objdump (binutils) to disassemble restart with"),
    };
    let mut seen = Vec::new();
    for name in ["memcpy", "memmove", "memset", "memcmp", "bcmp", "strlen"] {
        let head = format!("<{name}>:");
        let Some(at) = out.lines().position(|l| l.ends_with(&head)) else { continue };
        seen.push(name);
        let own = format!("<{name}>");
        let body = out.lines().skip(at + 1).take_while(|l| !l.trim().is_empty() && !l.ends_with(">:"));
        for l in body {
            let branch = l.contains("call") || l.contains("jmp");
            assert!(!(branch && l.trim_end().ends_with(&own)), "{name} calls itself: {l}");
        }
    }
    assert!(seen.contains(&"memcpy") && seen.contains(&"memset"), "restart defines no memcpy/memset: {seen:?}");
}
