//! `make install` and `make uninstall` (see tests/common for the harness):
//! the installed ckpt finds its capture library in PREFIX/lib/ckpt/ from its
//! own path, and checkpoints a demo run from another directory (as user
//! `nobody` when the tests run as root), which the installed restart brings
//! back; the man pages render with `man -l` without a warning and name every
//! option each program's --help lists; the bash completion completes
//! options; uninstall leaves no file behind. (ckpt-slurm is installed with
//! them; tests/slurm.rs runs it.)

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PREFIX: &str = "/usr/local";

/// `make -C ROOT TARGET PREFIX=/usr/local DESTDIR=dest`, which must succeed.
fn make(target: &str, dest: &Path) {
    let o = spawn(
        &format!("make {target}"),
        &mut command(
            Path::new("make"),
            &[
                "-s",
                "-C",
                root().to_str().unwrap(),
                target,
                &format!("PREFIX={PREFIX}"),
                &format!("DESTDIR={}", dest.display()),
            ],
            &root(),
        ),
    )
    .finish();
    o.expect_code(0);
}

/// Every file (and link) under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A command run as `nobody` through setpriv when the tests run as root,
/// as the current user otherwise.
fn as_user(program: &Path, args: &[&str], cwd: &Path) -> Command {
    if !is_root() {
        return command(program, args, cwd);
    }
    let mut full = vec!["--reuid=65534", "--regid=65534", "--clear-groups", "--", program.to_str().unwrap()];
    full.extend_from_slice(args);
    command(Path::new("/usr/bin/setpriv"), &full, cwd)
}

/// The long options (`--name`) a program's --help lists.
fn long_options(help: &str) -> Vec<String> {
    let mut opts: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=' || c == '(' || c == ')')
        .filter(|w| w.starts_with("--") && w.len() > 2 && w[2..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_string)
        .collect();
    opts.sort();
    opts.dedup();
    opts
}

#[test]
fn install_and_run_from_another_directory() {
    let dest = TempDir::new("install");
    dest.chmod(0o755);
    make("install", &dest.path);
    let prefix = dest.path.join(PREFIX.trim_start_matches('/'));
    let bin = prefix.join("bin");
    for f in ["bin/ckpt", "bin/restart", "bin/readckpt", "bin/ckpt-slurm", "lib/ckpt/libckpt.so"] {
        assert!(prefix.join(f).is_file(), "make install did not install {f}");
    }
    assert!(!bin.join("libckpt.so").exists(), "the library belongs in lib/ckpt, not beside the programs");

    // A demo in a working directory of its own, far from the build tree.
    let work = TempDir::new("install-work");
    work.chmod(0o777);
    let demo_copy = work.join("cli-count");
    fs::copy(demo("cli-count"), &demo_copy).unwrap();
    chmod(&demo_copy, 0o755);
    let reference = spawn("cli-count", &mut as_user(&demo_copy, &["12", "40"], &work.path)).finish();
    reference.expect_code(0);

    let mut run = spawn("installed ckpt", &mut as_user(&bin.join("ckpt"), &["./cli-count", "12", "40"], &work.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 3 "), "step 3 of the demo");
    run.checkpoint();
    let before = run.finish();
    before.expect_code(ckpt_image::EXIT_CHECKPOINTED);
    assert!(work.join("myckpt.dat").is_file(), "no image in the working directory\n{}", before.describe());

    let o = spawn("installed readckpt", &mut as_user(&bin.join("readckpt"), &["--verify", "myckpt.dat"], &work.path))
        .finish();
    o.expect_code(0);
    let after = spawn("installed restart", &mut as_user(&bin.join("restart"), &["myckpt.dat"], &work.path)).finish();
    after.expect_code(0);
    assert_same(
        "output before the checkpoint and after the restart",
        &cat(&[&before.stdout(), &after.stdout()]),
        &reference.stdout(),
    );

    make("uninstall", &dest.path);
    let left = files_under(&dest.path);
    assert!(left.is_empty(), "make uninstall left files behind: {left:?}");
}

#[test]
fn man_pages_render_and_name_every_option() {
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("skipped: `man` is not installed (Debian package man-db)");
        return;
    }
    let dest = TempDir::new("install-man");
    make("install", &dest.path);
    let prefix = dest.path.join(PREFIX.trim_start_matches('/'));
    for name in ["ckpt", "restart", "readckpt", "ckpt-slurm"] {
        let page = prefix.join(format!("share/man/man1/{name}.1"));
        assert!(page.is_file(), "make install did not install {}", page.display());
        let mut cmd = command(Path::new("man"), &["--warnings", "-l", page.to_str().unwrap()], &dest.path);
        cmd.env("LC_ALL", "C").env("MANWIDTH", "80").env("MANPAGER", "cat").env_remove("MANOPT");
        let o = spawn(&format!("man -l {name}.1"), &mut cmd).finish();
        o.expect_code(0);
        assert!(o.stderr().is_empty(), "man -l {name}.1 warned:\n{}", o.stderr_text());
        let text = o.stdout_text();
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{name}.1 lacks NAME or SYNOPSIS:\n{text}");

        let help =
            spawn(&format!("{name} --help"), &mut command(&prefix.join("bin").join(name), &["--help"], &dest.path))
                .finish();
        help.expect_code(0);
        let options = long_options(&help.stdout_text());
        assert!(options.len() >= 3, "{name} --help lists too few options: {options:?}");
        for opt in &options {
            assert!(
                text.contains(opt.as_str()),
                "man page {name}(1) does not document {opt}, which {name} --help lists"
            );
        }
    }
}

#[test]
fn bash_completion_completes_options() {
    let dest = TempDir::new("install-bash");
    make("install", &dest.path);
    let dir = dest.path.join(PREFIX.trim_start_matches('/')).join("share/bash-completion/completions");
    let zsh = dest.path.join(PREFIX.trim_start_matches('/')).join("share/zsh/site-functions/_ckpt");
    assert!(fs::read_to_string(&zsh).is_ok_and(|s| s.starts_with("#compdef ckpt restart readckpt")), "zsh completion");
    // (words typed, the function bash-completion would call, expected among the completions)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("ckpt", "ckpt --inter", "_ckpt", "--interval"),
        ("ckpt", "ckpt -o img.dat --cont", "_ckpt", "--continue"),
        ("ckpt", "ckpt --portable=x86-64-v", "_ckpt", "--portable=x86-64-v3"),
        ("ckpt", "ckpt -s USR", "_ckpt", "USR1"),
        ("restart", "restart --keep", "_ckpt_restart", "--keep-stdio"),
        ("readckpt", "readckpt --ver", "_ckpt_readckpt", "--verify"),
        ("ckpt-slurm", "ckpt-slurm --keep-im", "_ckpt_slurm", "--keep-images"),
        ("ckpt-slurm", "ckpt-slurm -w USR1 -i 10m --con", "_ckpt_slurm", "--continue"),
    ];
    for (file, words, function, want) in cases {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); {function}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.join(file).display()
        );
        let o = spawn(
            &format!("bash completion of {words:?}"),
            &mut command(Path::new("bash"), &["-c", &script], &dest.path),
        )
        .finish();
        o.expect_code(0);
        assert!(
            o.stdout_text().lines().any(|l| l == *want),
            "completing {words:?} should offer {want}\n{}",
            o.describe()
        );
    }
}
