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

/// Checkpoints `counting-test 0` (stdout to a file) after its first sleep:
/// a small, valid, single-threaded image at `dir/good.dat`.
fn small_image(dir: &TempDir) -> PathBuf {
    let image = dir.join("good.dat");
    let mut c =
        command(&exe("ckpt"), &["-o", image.to_str().unwrap(), exe("counting-test").to_str().unwrap(), "0"], &dir.path);
    c.stdout(file(&dir.join("first.out")));
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
