//! Tests where another user of the machine is the adversary (see
//! tests/common for the harness): images written into a sticky,
//! world-writable directory where user `nobody` planted links and files at
//! the names ckpt uses, the image's mode under any umask, temporaries left
//! by a killed checkpoint, images of other users given to `restart`, and
//! privileged (setuid, file-capability) programs given to `ckpt`.
//!
//! Planting as `nobody` needs root (the files are chowned to 65534): as an
//! ordinary user those cases print a skip line with the reason, and the
//! cases that need no other user still run.

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{lchown, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ckpt ARGS...` in `dir`, no stdin, piped stdout and stderr.
fn ckpt(args: &[&str], dir: &Path) -> Command {
    command(&exe("ckpt"), args, dir)
}

/// Whether the cases that plant files as `nobody` can run; if not, says why.
fn can_plant(test: &str) -> bool {
    if is_root() {
        true
    } else {
        eprintln!("{test}: skipped the cases planted by another user: they need root (to chown files to nobody)");
        false
    }
}

/// A directory like /tmp: mode 1777, owned by root (or the current user).
fn sticky_dir(parent: &TempDir) -> PathBuf {
    let shared = parent.join("shared");
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    shared
}

/// A file of `nobody`'s, mode 0666, holding `content`.
fn plant_file(p: &Path, content: &[u8]) {
    fs::write(p, content).unwrap();
    chmod(p, 0o666);
    lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// A symbolic link of `nobody`'s (if root) at `p`, to `target`.
fn plant_link(p: &Path, target: &Path) {
    std::os::unix::fs::symlink(target, p).unwrap();
    if is_root() {
        lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

/// A file that must never change: (path, content).
fn victim(dir: &TempDir) -> (PathBuf, Vec<u8>) {
    let p = dir.join("victim");
    let content = b"the victim's own content\n".to_vec();
    fs::write(&p, &content).unwrap();
    chmod(&p, 0o644);
    (p, content)
}

/// Waits for ckpt's next line on stderr (written or failed) and returns it.
fn next_ckpt_line(run: &mut Run, what: &str) -> String {
    run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: "), what).text()
}

/// Asserts `image` is a regular file, mode 0600, owned by the caller, that
/// `readckpt --verify` accepts.
fn assert_private_image(image: &Path, dir: &Path) {
    let m = fs::symlink_metadata(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    assert!(m.file_type().is_file(), "{} should be a regular file", image.display());
    assert_eq!(m.mode() & 0o7777, 0o600, "{} should have mode 0600, has {:o}", image.display(), m.mode() & 0o7777);
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    assert_eq!(m.uid(), me, "{} should be owned by the caller (uid {me}), not uid {}", image.display(), m.uid());
    let o = spawn("readckpt --verify", &mut command(&exe("readckpt"), &["--verify", path_str(image)], dir)).finish();
    o.expect_code(0);
}

/// Runs `cli-count STEPS 30` under `ckpt --continue EXTRA... -o IMAGE`.
fn continuing(image: &Path, extra: &[&str], steps: &str, dir: &Path) -> Run {
    let prog = demo("cli-count");
    let mut args = vec!["--continue"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", path_str(image), path_str(&prog), steps, "30"]);
    let mut run = spawn("ckpt --continue cli-count", &mut ckpt(&args, dir));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 1 "), "step 1");
    run
}

/// The root-run adversarial case: `ckpt -o shared/job.dat` where `nobody`
/// planted, at the temporary name earlier versions used
/// (`job.dat.<pid>.tmp`), first a symbolic link to a root file, then a
/// 0666 file of its own that it holds open to read the image from. Neither
/// may be written; the image is 0600 and the caller's.
#[test]
fn planted_temporary_names_are_never_written() {
    if !can_plant("planted_temporary_names_are_never_written") {
        return;
    }
    let dir = TempDir::new("planted-tmp");
    let shared = sticky_dir(&dir);
    let (victim, content) = victim(&dir);
    let image = shared.join("job.dat");
    let mut run = continuing(&image, &[], "200", &dir.path);
    let planted = shared.join(format!("job.dat.{}.tmp", run.pid));

    plant_link(&planted, &victim);
    run.checkpoint();
    let line = next_ckpt_line(&mut run, "the first checkpoint");
    assert!(line.starts_with("ckpt: checkpoint written to "), "the checkpoint should be written: {line}");
    assert!(read(&victim) == content, "the file behind the planted link was overwritten");
    assert_eq!(fs::read_link(&planted).ok().as_deref(), Some(victim.as_path()), "the planted link was replaced");
    assert_private_image(&image, &dir.path);

    fs::remove_file(&planted).unwrap();
    plant_file(&planted, b"");
    let mut spy = fs::File::open(&planted).unwrap();
    run.checkpoint();
    let line = next_ckpt_line(&mut run, "the second checkpoint");
    assert!(line.starts_with("ckpt: checkpoint written to "), "the checkpoint should be written: {line}");
    let mut leaked = Vec::new();
    spy.read_to_end(&mut leaked).unwrap();
    assert!(leaked.is_empty(), "the planted file received {} bytes of the image", leaked.len());
    let m = fs::symlink_metadata(&planted).unwrap();
    assert_eq!((m.uid(), m.len()), (NOBODY, 0), "the planted file should still be nobody's, and empty");
    assert_private_image(&image, &dir.path);
    let o = run.finish();
    o.expect_code(0);
}

/// The image path (or an older image's name, --keep) is a symbolic link or
/// another user's file: the checkpoint is refused with one line, the
/// program goes on, nothing is written through the link, and the previous
/// image is untouched. `--allow-foreign-output` replaces another user's
/// file (never writing into it).
#[test]
fn linked_or_foreign_image_path_is_refused() {
    let dir = TempDir::new("foreign-out");
    let shared = sticky_dir(&dir);
    let (victim, content) = victim(&dir);
    let image = shared.join("job.dat");

    // A link at the image path (the caller's own, or nobody's as root).
    plant_link(&image, &victim);
    let mut run = continuing(&image, &[], "60", &dir.path);
    run.checkpoint();
    let line = next_ckpt_line(&mut run, "the refusal");
    assert!(
        line.starts_with("ckpt: checkpoint failed: the image path is a symbolic link"),
        "a link at the image path should be refused: {line}"
    );
    let o = run.finish();
    o.expect_code(0);
    assert!(o.stdout_text().contains("done "), "the program should have gone on to its end\n{}", o.describe());
    assert_eq!(o.text_lines(Stream::Stderr).len(), 1, "one line on stderr\n{}", o.describe());
    assert!(read(&victim) == content, "the file behind the link was overwritten");
    assert!(fs::symlink_metadata(&image).unwrap().file_type().is_symlink(), "the link was replaced");
    fs::remove_file(&image).unwrap();

    // A link at an older image's name (--keep 3): refused as well, and the
    // current image stays.
    let mut run = continuing(&image, &["--keep", "3"], "60", &dir.path);
    run.checkpoint();
    assert!(next_ckpt_line(&mut run, "the first image").starts_with("ckpt: checkpoint written to "));
    let first = read(&image);
    plant_link(&shared.join("job.2.dat"), &victim);
    run.checkpoint();
    let line = next_ckpt_line(&mut run, "the refusal (--keep)");
    assert!(
        line.starts_with("ckpt: checkpoint failed: an older image's name (--keep) is a symbolic link"),
        "a link at an older image's name should be refused: {line}"
    );
    run.finish().expect_code(0);
    assert!(read(&image) == first, "the previous image should be untouched");
    assert!(!shared.join("job.1.dat").exists(), "nothing should have moved along");
    assert!(read(&victim) == content, "the file behind the link was overwritten");
    fs::remove_file(shared.join("job.2.dat")).unwrap();
    fs::remove_file(&image).unwrap();

    if !can_plant("linked_or_foreign_image_path_is_refused") {
        return;
    }
    // Another user's file at the image path, held open by its owner.
    plant_file(&image, b"planted\n");
    let mut spy = fs::File::open(&image).unwrap();
    let mut run = continuing(&image, &[], "60", &dir.path);
    run.checkpoint();
    let line = next_ckpt_line(&mut run, "the refusal");
    assert!(
        line.starts_with("ckpt: checkpoint failed: the image path is a file of another user")
            && line.contains("--allow-foreign-output"),
        "another user's file at the image path should be refused, naming the option: {line}"
    );
    run.finish().expect_code(0);
    assert!(read(&image) == b"planted\n", "the other user's file was changed");

    // With --allow-foreign-output it is replaced by a new file, the
    // caller's; the owner's open file sees nothing of the image.
    let mut run = continuing(&image, &["--allow-foreign-output"], "60", &dir.path);
    run.checkpoint();
    let line = next_ckpt_line(&mut run, "the checkpoint");
    assert!(line.starts_with("ckpt: checkpoint written to "), "the checkpoint should be written: {line}");
    run.finish().expect_code(0);
    assert_private_image(&image, &dir.path);
    let mut seen = Vec::new();
    spy.read_to_end(&mut seen).unwrap();
    assert!(seen == b"planted\n", "the other user's open file should see only its own bytes");
}

/// With umask 0777 the image is still mode 0600 (not 0000), and restarts.
#[test]
fn image_is_0600_whatever_the_umask() {
    let dir = TempDir::new("umask");
    let prog = demo("cli-count");
    let image = dir.join("img.dat");
    let reference = spawn("uninterrupted run", &mut command(&prog, &["12", "30"], &dir.path)).finish();
    reference.expect_code(0);
    let mut c = ckpt(&["-o", "img.dat", path_str(&prog), "12", "30"], &dir.path);
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe; it runs in the child before exec.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o777);
            Ok(())
        });
    }
    let mut run = spawn("ckpt under umask 0777", &mut c);
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 4 "), "step 4");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(ckpt_image::EXIT_CHECKPOINTED);
    assert_private_image(&image, &dir.path);
    let second = spawn("restart", &mut command(&exe("restart"), &["img.dat"], &dir.path)).finish();
    second.expect_code(0);
    assert_same("umask 0777", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
}

/// The descriptors of `pid` open on a file in `dir` (the image's
/// temporary; not `dir` itself, which the sweep of stale temporaries opens
/// first).
fn fds_into(pid: i32, dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    entries.flatten().filter(|e| fs::read_link(e.path()).is_ok_and(|t| t.parent() == Some(dir))).count()
}

/// `bigmem MIB` under `ckpt -o IMAGE`, once it is ready; with
/// `no_tmpfile`, as on a file system without O_TMPFILE.
fn bigmem(image: &Path, mib: &str, dir: &TempDir, no_tmpfile: bool) -> Run {
    use std::os::unix::process::CommandExt;
    let mut c = ckpt(&["-o", path_str(image), path_str(&demo("bigmem")), mib], &dir.path);
    c.stdin(std::process::Stdio::piped());
    if no_tmpfile {
        // SAFETY: no_o_tmpfile only makes system calls.
        unsafe { c.pre_exec(no_o_tmpfile) };
    }
    let mut run = spawn(&format!("ckpt bigmem {mib}"), &mut c);
    run.wait_line(Stream::Stdout, |l| l.starts_with("bigmem: ready"), "ready");
    run
}

/// Checkpoints `run` and kills it (SIGKILL) as soon as it has a file open
/// in `dir`: while it writes the image.
fn kill_while_writing(run: Run, dir: &Path) {
    run.checkpoint();
    let start = Instant::now();
    while fds_into(run.pid, dir) == 0 {
        assert!(start.elapsed() < TIMEOUT, "the checkpoint never opened its image file");
        thread::sleep(Duration::from_micros(200));
    }
    run.signal(libc::SIGKILL);
    let o = run.finish();
    assert_eq!(describe_status(&o.status), "killed by signal 9 (SIGKILL)", "{}", o.describe());
}

/// A checkpoint killed (SIGKILL) while it writes leaves nothing in the
/// image's directory; and the next checkpoint removes this image's
/// temporaries that an earlier one left (from a file system without
/// O_TMPFILE, or an earlier version) — only the caller's, only with the
/// image's name, and none that a checkpoint in progress holds.
#[test]
fn killed_checkpoint_leaves_no_temporary() {
    let dir = TempDir::new("killed");
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    let image = out.join("big.dat");
    kill_while_writing(bigmem(&image, "384", &dir, false), &out);
    let left: Vec<_> = fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a killed checkpoint left {left:?} in the image's directory");

    // Leftovers: the caller's own (removed), a locked one (a checkpoint in
    // progress elsewhere: kept), other names (kept), nobody's (kept).
    let stale = [out.join("big.dat.4242.tmp"), out.join("big.dat.00c0ffee00c0ffee.tmp")];
    for p in &stale {
        fs::write(p, b"partial image").unwrap();
    }
    let locked = out.join("big.dat.1234abcd.tmp");
    let held = fs::File::create(&locked).unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut kept = vec![locked.clone(), out.join("big.dat.4242.tmp.save"), out.join("other.dat.4242.tmp")];
    if can_plant("killed_checkpoint_leaves_no_temporary") {
        let theirs = out.join("big.dat.77.tmp");
        plant_file(&theirs, b"theirs");
        kept.push(theirs);
    }
    for p in &kept[1..] {
        if !p.exists() {
            fs::write(p, b"keep").unwrap();
        }
    }
    let run = bigmem(&image, "8", &dir, false);
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    assert_private_image(&image, &dir.path);
    for p in &stale {
        assert!(!p.exists(), "the stale temporary {} should have been removed", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} is not a stale temporary of the caller's: it should be kept", p.display());
    }
    drop(held);
}

/// `cli-count 12 30` under ckpt, checkpointed (stopped) after step 4 into
/// `dir/img.dat`; returns the run's stdout and the uninterrupted output.
fn checkpointed_count(dir: &TempDir) -> (Vec<u8>, Vec<u8>) {
    let prog = demo("cli-count");
    let reference = spawn("uninterrupted run", &mut command(&prog, &["12", "30"], &dir.path)).finish();
    reference.expect_code(0);
    let mut run = spawn("ckpt cli-count", &mut ckpt(&["-o", "img.dat", path_str(&prog), "12", "30"], &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 4 "), "step 4");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(ckpt_image::EXIT_CHECKPOINTED);
    (first.stdout(), reference.stdout())
}

/// `restart ARGS... img.dat` in `dir`.
fn restart(args: &[&str], dir: &TempDir) -> Outcome {
    let mut a = args.to_vec();
    a.push("img.dat");
    spawn(&format!("restart {}", a.join(" ")), &mut command(&exe("restart"), &a, &dir.path)).finish()
}

/// Asserts `restart img.dat` refused the image with one line containing
/// `why` and naming --trust-image, without running any of it.
fn assert_untrusted(o: &Outcome, why: &str) {
    assert_refused(o, 1, &["img.dat", why, "--trust-image"]);
}

/// An image is the program's code and memory: `restart` refuses one that
/// group or others may write, and (as root) one that belongs to another
/// user — which would run that user's code as root — unless
/// `--trust-image`. `readckpt` still reads any image.
#[test]
fn restart_refuses_an_image_it_does_not_own() {
    let dir = TempDir::new("trust");
    let (first, reference) = checkpointed_count(&dir);
    let image = dir.join("img.dat");

    chmod(&image, 0o620);
    assert_untrusted(&restart(&[], &dir), "writable by group or others");
    chmod(&image, 0o606);
    assert_untrusted(&restart(&[], &dir), "writable by group or others");
    let o = spawn("readckpt", &mut command(&exe("readckpt"), &["img.dat"], &dir.path)).finish();
    o.expect_code(0);
    let second = restart(&["--trust-image"], &dir);
    second.expect_code(0);
    assert_same("restart --trust-image", &cat(&[&first, &second.stdout()]), &reference);
    chmod(&image, 0o600);

    if can_plant("restart_refuses_an_image_it_does_not_own") {
        lchown(&image, Some(NOBODY), Some(NOBODY)).unwrap();
        assert_untrusted(&restart(&[], &dir), "belongs to another user");
        let o =
            spawn("readckpt --verify", &mut command(&exe("readckpt"), &["--verify", "img.dat"], &dir.path)).finish();
        o.expect_code(0);
        let second = restart(&["--trust-image"], &dir);
        second.expect_code(0);
        assert_same("restart --trust-image of nobody's image", &cat(&[&first, &second.stdout()]), &reference);
        lchown(&image, Some(0), Some(0)).unwrap();
    }
    let second = restart(&[], &dir);
    second.expect_code(0);
    assert_same("restart of the caller's own 0600 image", &cat(&[&first, &second.stdout()]), &reference);
}

/// Asserts `ckpt PROG` refused the program (exit 126, one line saying
/// `why`) without running it.
fn assert_refused_program(o: &Outcome, why: &str) {
    assert_refused(o, 126, &[why, "LD_PRELOAD"]);
}

/// Setuid, setgid and file-capability programs run in the dynamic loader's
/// secure mode, without libckpt.so: ckpt refuses them (exit 126) instead
/// of running them unprotected. As root: a program setuid/setgid to
/// nobody; as nobody (setpriv): a program with a file capability.
#[test]
fn privileged_programs_are_refused() {
    if !can_plant("privileged_programs_are_refused") {
        return;
    }
    let dir = TempDir::new("privileged");
    dir.chmod(0o777);
    let prog = dir.join("count");
    fs::copy(demo("cli-count"), &prog).unwrap();
    let run = |args: &[&str]| {
        let mut a = vec!["-o", "img.dat"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[path_str(&prog), "2", "10"]);
        spawn("ckpt cli-count", &mut ckpt(&a, &dir.path)).finish()
    };

    lchown(&prog, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&prog, 0o4755);
    assert_refused_program(&run(&[]), "is setuid");
    chmod(&prog, 0o2755);
    assert_refused_program(&run(&[]), "is setgid");
    // Setgid without group execute is not a setgid program (mandatory
    // locking); and a plain copy runs.
    chmod(&prog, 0o2745);
    run(&[]).expect_code(0);
    chmod(&prog, 0o755);
    let o = run(&[]);
    o.expect_code(0);
    assert!(!o.stdout().is_empty(), "the plain program should have run\n{}", o.describe());

    // A setuid script is not privileged (the kernel ignores the bit): it runs.
    let script = dir.join("script");
    fs::write(&script, "#!/bin/sh\necho script ran\n").unwrap();
    lchown(&script, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&script, 0o4755);
    let o = spawn("ckpt of a setuid script", &mut ckpt(&["-o", "img.dat", path_str(&script)], &dir.path)).finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "script ran\n", "{}", o.describe());

    let setcap = Path::new("/usr/sbin/setcap");
    if !setcap.exists() {
        eprintln!("privileged_programs_are_refused: skipped the file-capability case: /usr/sbin/setcap (libcap2-bin) is missing");
        return;
    }
    let st = Command::new(setcap).args(["cap_net_raw+ep", path_str(&prog)]).status().unwrap();
    assert!(st.success(), "setcap cap_net_raw+ep {} failed", prog.display());
    let a = ["-o", "img.dat", path_str(&prog), "2", "10"];
    let o = spawn("ckpt as nobody", &mut command_as(NOBODY, NOBODY, &exe("ckpt"), &a, &dir.path)).finish();
    assert_refused_program(&o, "has file capabilities");
}

/// Makes every `openat` with `O_TMPFILE` in this process and what it execs
/// fail with EOPNOTSUPP, as on a file system without it (a seccomp filter,
/// which survives exec). For `pre_exec`: async-signal-safe.
fn no_o_tmpfile() -> std::io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const O_TMPFILE_BIT: u32 = 0o20000000; // __O_TMPFILE
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 0, 5, AUDIT_ARCH_X86_64),
        op(LD_W_ABS, 0, 0, 0), // .nr
        op(JEQ_K, 0, 3, libc::SYS_openat as u32),
        op(LD_W_ABS, 0, 0, 32), // .args[2] (flags), low half
        op(JSET_K, 0, 1, O_TMPFILE_BIT),
        op(RET_K, 0, 0, 0x0005_0000 | libc::EOPNOTSUPP as u32), // SECCOMP_RET_ERRNO
        op(RET_K, 0, 0, 0x7fff_0000),                           // SECCOMP_RET_ALLOW
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl with a filter program that lives for the call.
    let ok = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `name` is `<base>.<16 hex digits>.tmp`.
fn is_random_temporary(name: &str, base: &str) -> bool {
    let digits = name.strip_prefix(base).and_then(|r| r.strip_prefix('.')).and_then(|r| r.strip_suffix(".tmp"));
    digits.is_some_and(|d| d.len() == 16 && d.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Where the file system has no O_TMPFILE: the temporary is a random name,
/// mode 0600; a checkpoint killed while writing it leaves it, and the next
/// checkpoint of the image removes it.
#[test]
fn without_o_tmpfile_the_next_checkpoint_removes_a_killed_ones_temporary() {
    let dir = TempDir::new("no-tmpfile");
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    let image = out.join("big.dat");
    kill_while_writing(bigmem(&image, "384", &dir, true), &out);
    let left: Vec<String> =
        fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(
        left.len() == 1 && is_random_temporary(&left[0], "big.dat"),
        "the killed checkpoint should have left one big.dat.<16 hex>.tmp: {left:?}"
    );
    let stale = out.join(&left[0]);
    assert_eq!(fs::metadata(&stale).unwrap().mode() & 0o7777, 0o600, "the temporary should be mode 0600");

    let run = bigmem(&image, "8", &dir, true);
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    assert_private_image(&image, &dir.path);
    let left: Vec<_> = fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["big.dat"], "the next checkpoint should have removed the stale temporary");
}
