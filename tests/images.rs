//! Hostile images: images ckpt really wrote, then changed and re-sealed
//! with valid checksums, as someone who can write an image file could. Every
//! one must be refused by `restart` with one line and exit status 1 (never a
//! signal, never a write into the loader's memory), and by `readckpt`.

mod common;

use ckpt_image::{Header, LOADER_BASE};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// Checkpoints `counting-test 0` (stdout to `dir/first.out`) after its
/// first sleep: a small, valid, single-threaded image at `dir/good.dat`.
fn small_image(dir: &TempDir) -> PathBuf {
    small_image_writing_to(dir, "first.out")
}

/// As [`small_image`], with the program's stdout in `dir/STDOUT`.
fn small_image_writing_to(dir: &TempDir, stdout: &str) -> PathBuf {
    let image = dir.join("good.dat");
    let mut c =
        command(&exe("ckpt"), &["-o", image.to_str().unwrap(), exe("counting-test").to_str().unwrap(), "0"], &dir.path);
    c.stdout(file(&dir.join(stdout)));
    let run = spawn("checkpointed run", &mut c);
    run.wait_switches(1);
    run.checkpoint();
    run.finish().expect_code(CHECKPOINTED);
    image
}

/// Runs `restart` and `readckpt --verify` on `path`; returns what went
/// wrong (empty: both refused it properly).
fn refused(dir: &TempDir, what: &str, path: &Path) -> Vec<String> {
    let limit = Duration::from_secs(20);
    let p = path.to_str().unwrap();
    let mut problems = Vec::new();
    match spawn(&format!("restart of {what}"), &mut command(&exe("restart"), &[p], &dir.path)).try_finish_within(limit)
    {
        Err(e) => problems.push(format!("restart of {what}: hangs: {e}")),
        Ok(o) => problems.extend(refusal_problem("restart: ", &o)),
    }
    match spawn(&format!("readckpt of {what}"), &mut command(&exe("readckpt"), &["--verify", p], &dir.path))
        .try_finish_within(limit)
    {
        Err(e) => problems.push(format!("readckpt of {what}: hangs: {e}")),
        Ok(o) if o.status.code() != Some(1) => {
            problems.push(format!("readckpt of {what}: expected exit status 1, got {}", describe_status(&o.status)))
        }
        Ok(_) => {}
    }
    problems
}

/// Writes each case beside the good image and checks that it is refused.
fn all_refused(dir: &TempDir, cases: Vec<(String, Vec<u8>)>) {
    let n = cases.len();
    let mut problems = Vec::new();
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let p = dir.join(&format!("bad-{i}.dat"));
        fs::write(&p, bytes).unwrap();
        problems.extend(refused(dir, &what, &p));
    }
    assert!(problems.is_empty(), "{} problems with {n} hostile images:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn hostile_thread_addresses_are_refused() {
    let dir = TempDir::new("hostile-threads");
    let good = read(&small_image(&dir));
    let h = Header::parse(&good, good.len() as u64).unwrap();
    assert_eq!(h.n_threads, 1, "counting-test has one thread");
    let t: ckpt_image::Thread = {
        let meta = &good[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
        ckpt_image::Meta::parse(&h, meta).unwrap().thread(0)
    };
    assert!(t.tid_offset != 0 && t.clear_child_tid != 0, "glibc's tid cache was found: {t:?}");
    let loader_word = LOADER_BASE + 0x1000;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |what: &str, f: &dyn Fn(&mut ckpt_image::Thread)| {
        cases.push((what.to_string(), patch_thread(&good, 0, |t| f(t))));
    };
    add("cached tid in the loader's memory", &|t| t.fs_base = loader_word - t.tid_offset as u64);
    add("cached tid at an unmapped low address", &|t| t.fs_base = 0);
    add("fs base beyond user space", &|t| t.fs_base = 1 << 47);
    add("tid address in the loader's memory", &|t| t.clear_child_tid = loader_word);
    add("robust list in the loader's memory", &|t| t.robust_list = loader_word);
    add("rseq area unmapped", &|t| {
        t.rseq_area = 0x10000;
        t.rseq_len = 32
    });
    all_refused(&dir, cases);
    // The untouched image still restarts and finishes the count.
    let mut c = command(&exe("restart"), &[dir.join("good.dat").to_str().unwrap()], &dir.path);
    c.stdout(file(&dir.join("rest.out")));
    spawn("restart of the good image", &mut c).finish_within(TIMEOUT).expect_code(0);
    let want: String = (0..10).map(|i| format!("{i}\n")).collect();
    assert_same("good image", &cat(&[&read(&dir.join("first.out")), &read(&dir.join("rest.out"))]), want.as_bytes());
}

/// The image with one byte of its data changed: header and tables are
/// right, the data's checksum is not (found only while loading).
fn corrupt_data(good: &[u8]) -> Vec<u8> {
    let h = Header::parse(good, good.len() as u64).unwrap();
    let mut bad = good.to_vec();
    bad[h.data_offset as usize + 100] ^= 0x40;
    bad
}

fn restart_cmd(args: &[&str], dir: &TempDir) -> std::process::Command {
    command(&exe("restart"), args, &dir.path)
}

#[test]
fn a_failed_restart_says_one_line() {
    // A warning found before the point of no return (the program's stdout
    // file, to be reopened with --keep-stdio, was deleted) and a data error
    // found while loading: the restart fails, and says so in one line, the
    // error; the warning is about a program that never runs.
    let dir = TempDir::new("one-line");
    let good = read(&small_image(&dir));
    fs::remove_file(dir.join("first.out")).unwrap();
    fs::write(dir.join("bad.dat"), corrupt_data(&good)).unwrap();
    let o =
        spawn("restart --keep-stdio of corrupted data", &mut restart_cmd(&["--keep-stdio", "bad.dat"], &dir)).finish();
    assert_eq!(refusal_problem("restart: ", &o), None);
    assert!(o.stderr_text().contains("corrupted"), "{}", o.describe());
    // The same warning with good data: the restart goes on and says it.
    let o = spawn("restart --keep-stdio", &mut restart_cmd(&["--keep-stdio", "good.dat"], &dir)).finish();
    o.expect_code(0);
    // (fd 2, the test's pipe, is not restorable either: a second warning.)
    let err = o.text_lines(Stream::Stderr);
    assert!(
        err.iter().all(|l| l.starts_with("restart: warning: fd "))
            && err.iter().any(|l| l.starts_with("restart: warning: fd 1 (") && l.contains("deleted")),
        "{}",
        o.describe()
    );
}

#[test]
fn restart_messages_escape_names() {
    // Names with a newline and a terminal escape: the image path in an
    // error, a file's path in a warning. Each message stays one line, with
    // no control character in it, escaped as readckpt shows names.
    let dir = TempDir::new("escape");
    let weird = "out\n\x1b[31mred";
    let good = read(&small_image_writing_to(&dir, weird));
    let bad = dir.join("img\n\x1b[31m.dat");
    fs::write(&bad, corrupt_data(&good)).unwrap();
    let o = spawn("restart of a weird name", &mut restart_cmd(&[bad.to_str().unwrap()], &dir)).finish();
    assert_eq!(refusal_problem("restart: ", &o), None);
    let err = o.stderr_text();
    assert!(err.contains("img\\x0a\\x1b[31m.dat: "), "the name is escaped: {err:?}");
    assert!(!err.trim_end().chars().any(char::is_control), "{err:?}");

    fs::remove_file(dir.join(weird)).unwrap();
    let o = spawn("restart --keep-stdio", &mut restart_cmd(&["--keep-stdio", "good.dat"], &dir)).finish();
    o.expect_code(0);
    let err = o.stderr_text();
    let fd1 = err.lines().find(|l| l.starts_with("restart: warning: fd 1 ("));
    assert!(fd1.is_some_and(|l| l.contains("out\\x0a\\x1b[31mred")), "{}", o.describe());
    assert!(err.lines().all(|l| !l.chars().any(char::is_control)), "{err:?}");
}

#[test]
fn a_fifo_is_refused_at_once() {
    // Opening a FIFO for reading waits for a writer: restart must not.
    let dir = TempDir::new("fifo");
    let fifo = dir.join("image.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let problems = refused(&dir, "a FIFO", &fifo);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn readckpt_json_ok_follows_the_exit_status() {
    // --verify fails on a CPU without the image's register state: the JSON
    // must not say "ok": true.
    let dir = TempDir::new("json-ok");
    let good = read(&small_image(&dir));
    let Some((_, bad)) = needing_what_this_cpu_lacks(&good) else { return };
    fs::write(dir.join("bad.dat"), bad).unwrap();
    chmod(&dir.join("bad.dat"), 0o600);
    let json = |image: &str| {
        spawn("readckpt --json --verify", &mut command(&exe("readckpt"), &["--json", "--verify", image], &dir.path))
            .finish()
    };
    let o = json("bad.dat");
    o.expect_code(1);
    let out = o.stdout_text();
    let verify = &out[out.find("\"verify\"").unwrap_or_else(|| panic!("no verify member\n{}", o.describe()))..];
    assert!(verify.contains("\"ok\":false") && !verify.contains("\"ok\":true"), "{}", o.describe());
    let o = json("good.dat");
    o.expect_code(0);
    assert!(o.stdout_text().contains("\"ok\":true"), "{}", o.describe());
}

/// The pid's `/proc/PID/comm`, if it still exists.
fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

#[test]
fn metadata_near_the_arena_is_refused_with_its_reason() {
    // A valid image whose string table makes the metadata almost 64 MiB:
    // more than restart's heap can hold with its own needs.
    let dir = TempDir::new("arena");
    let good = read(&small_image(&dir));
    let h = Header::parse(&good, good.len() as u64).unwrap();
    let extra = (64 << 20) - (16 << 10) - h.meta_len as usize;
    let big = rebuild_image(&good, |t| t.strings.resize(t.strings.len() + extra, 0));
    fs::write(dir.join("big.dat"), big).unwrap();
    let o = spawn("restart of big metadata", &mut restart_cmd(&["big.dat"], &dir)).finish();
    assert_eq!(refusal_problem("restart: big.dat: ", &o), None);
    assert!(o.stderr_text().contains("larger than restart can hold"), "{}", o.describe());
}

#[test]
fn many_pipe_ends_restart() {
    // 65,536 descriptors, all pipe ends but 0, 1 and 2 (both ends of each
    // pipe in the process) come back. Where the hard limit on open files
    // cannot be raised to hold them all, the ends above it are refused by
    // the kernel with a warning each. (How the time grows with the number
    // of descriptors — linearly; a table scan per pipe once took 4 to 29 s
    // here — is measured by `make bench`, against a tenth as many.)
    const N: usize = ckpt_image::MAX_FDS as usize - 1; // 0, 1, 2 and pairs
    let hard = raise_own_nofile(N as u64 + 64);
    let dir = TempDir::new("pipes");
    let good = read(&small_image(&dir));
    let many = rebuild_image(&good, |t| {
        let proto = t.fds[0];
        t.fds.retain(|f| f.fd <= 2);
        let mut fd = 3;
        while t.fds.len() < N {
            for kind in [ckpt_image::FdKind::PipeRead, ckpt_image::FdKind::PipeWrite] {
                t.fds.push(ckpt_image::Fd {
                    fd,
                    kind: kind as u32,
                    flags: if kind == ckpt_image::FdKind::PipeRead { 0 } else { 1 },
                    fd_flags: 0,
                    pipe: 1_000_000 + fd as u64 / 2,
                    path: ckpt_image::StrRef::default(),
                    data: ckpt_image::StrRef::default(),
                    ..proto
                });
                fd += 1;
            }
        }
    });
    fs::write(dir.join("many.dat"), many).unwrap();
    let run = spawn("restart of 65,535 pipe ends", &mut restart_cmd(&["many.dat"], &dir));
    // The restored program's name is set once its descriptors are back
    // (in namespace mode, in the program's process under restart and init).
    let pid = program_pid(run.pid);
    let start = std::time::Instant::now();
    while comm(pid).is_some_and(|c| c != "counting-test") && start.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let o = run.finish();
    o.expect_code(0);
    let fit = N.min(hard as usize - 8);
    assert!(fds >= fit, "the restarted program has {fds} descriptors, not {fit} (hard limit {hard})");
}

/// A copy of `restart` that user `nobody` can run, and the command that
/// runs it as nobody (when the tests run as root; else as this user).
fn restart_as_nobody(dir: &TempDir, bins: &TempDir, image: &Path) -> std::process::Command {
    bins.chmod(0o755);
    let restart = bins.join("restart");
    fs::copy(exe("restart"), &restart).unwrap();
    chmod(&restart, 0o755);
    dir.chmod(0o777);
    if is_root() {
        // nobody's own image: restart takes no other user's.
        std::os::unix::fs::chown(image, Some(65534), Some(65534)).unwrap();
    }
    let image = image.to_str().unwrap();
    if is_root() {
        command(
            Path::new("/usr/bin/setpriv"),
            &["--reuid=65534", "--regid=65534", "--clear-groups", "--", restart.to_str().unwrap(), image],
            &dir.path,
        )
    } else {
        command(&restart, &[image], &dir.path)
    }
}

#[test]
fn layouts_the_kernel_refuses_are_found_before_the_point_of_no_return() {
    let dir = TempDir::new("layouts");
    let bins = TempDir::new("layouts-bin");
    let good = read(&small_image(&dir));
    let sysctl =
        |name: &str| -> u64 { fs::read_to_string(format!("/proc/sys/vm/{name}")).unwrap().trim().parse().unwrap() };
    let mut problems = Vec::new();
    let mut check = |what: &str, image: Vec<u8>, needle: &str, as_nobody: bool| {
        // (A neutral name: the line names the image, it must not match the needle.)
        let p = dir.join(&format!("case-{}.dat", what.len()));
        fs::write(&p, image).unwrap();
        chmod(&p, 0o600); // as ckpt writes it: only its bytes may be refused
        let mut c =
            if as_nobody { restart_as_nobody(&dir, &bins, &p) } else { restart_cmd(&[p.to_str().unwrap()], &dir) };
        let o = spawn(&format!("restart of {what}"), &mut c).finish_within(TIMEOUT + Duration::from_secs(30));
        problems.extend(refusal_problem("restart: ", &o));
        if !o.stderr_text().contains(needle) {
            problems.push(format!("restart of {what}: the line should name {needle:?}: {:?}", o.stderr_text()));
        }
    };
    // Below vm.mmap_min_addr (only CAP_SYS_RAWIO may map there: as nobody).
    if sysctl("mmap_min_addr") > 0 {
        let low = rebuild_image(&good, |t| insert_region(&mut t.regions, empty_region(0, 4096, 3)));
        check("a page at address 0", low, "mmap_min_addr", true);
    } else {
        eprintln!("SKIP the low-address case: vm.mmap_min_addr is 0 here");
    }
    // More regions than vm.max_map_count (one-page regions with gaps between
    // them, so the kernel cannot merge them).
    let max = sysctl("max_map_count");
    if max < ckpt_image::MAX_REGIONS as u64 - 64 {
        let many = rebuild_image(&good, |t| {
            let base = 0x1000_0000_0000u64;
            // (The kernel checks the count before adding a mapping: it
            // lets a process reach max_map_count + 1; the loader has its own.)
            let n = max as usize + 64 - t.regions.len();
            for i in 0..n as u64 {
                insert_region(&mut t.regions, empty_region(base + 2 * i * 4096, base + (2 * i + 1) * 4096, 1));
            }
        });
        check("more regions than vm.max_map_count", many, "max_map_count", false);
    } else {
        eprintln!("SKIP the region-count case: vm.max_map_count is {max}, above what an image may hold");
    }
    // 16 TiB of private writable memory: refused by the overcommit heuristic.
    if sysctl("overcommit_memory") != 1 {
        let huge = rebuild_image(&good, |t| {
            insert_region(&mut t.regions, empty_region(0x1000_0000_0000, 0x2000_0000_0000, 3))
        });
        check("a 16 TiB region", huge, "larger than this machine lets a process map", false);
    } else {
        eprintln!("SKIP the 16 TiB case: vm.overcommit_memory is 1 (always), the kernel maps anything");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
