//! Mutation testing of the image parsers, deterministic and on stable Rust
//! (the coverage-guided fuzz target is `fuzz/`, see docs/FUZZING.md).
//!
//! The corpus is real images, written by ckpt. Each case changes one to
//! four things in the header or the tables — a bit, a byte, a field set to
//! an "interesting" value (0, ~0, page edges, the loader's range, the end of
//! user space, an address from the image itself), an entry copied over
//! another, the file length — and re-seals both checksums, so that only the
//! structural checks stand between the change and the loader. A small
//! xorshift generator with fixed seeds makes every run the same.
//!
//! Every case goes through `Header::parse` and `Meta::parse` in this process:
//! they must never panic, and what they accept must have the properties the
//! loader relies on. A sample goes through the real `restart` and
//! `readckpt`: an image the parsers refuse gets exit status 1 and exactly
//! one line from each, never a signal; one they accept restarts to the end
//! or fails, within the time limit.

mod common;

use ckpt_image::*;
use common::*;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Cases per corpus image.
const CASES: usize = 3000;
/// Of them, how many of the refused and of the accepted go to the real tools.
const SAMPLE_REFUSED: usize = 80;
const SAMPLE_ACCEPTED: usize = 12;

/// xorshift64*: small, fixed, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `ckpt cat` checkpointed while it waits on its stdin (a pipe from here):
/// restarted with an empty stdin, it ends at once. With `options`.
fn cat_image(dir: &TempDir, name: &str, options: &[&str]) -> PathBuf {
    let image = dir.join(name);
    let mut args = options.to_vec();
    args.extend(["-o", image.to_str().unwrap(), "cat"]);
    let mut c = command(&exe("ckpt"), &args, &dir.path);
    c.stdin(Stdio::piped());
    let mut run = spawn("ckpt cat", &mut c);
    run.write_stdin(b"line\n");
    run.wait_line(Stream::Stdout, |l| l == "line\n", "cat's echo");
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    image
}

/// `files-many 40` checkpointed while it holds files, dups and pipes with
/// bytes in them: an image with a rich fd table and string table.
fn files_image(dir: &TempDir) -> PathBuf {
    let image = dir.join("files.dat");
    let mut c = command(
        &exe("ckpt"),
        &["-o", image.to_str().unwrap(), demo("files-many").to_str().unwrap(), "40", dir.path.to_str().unwrap()],
        &dir.path,
    );
    c.stdin(Stdio::piped());
    let mut run = spawn("ckpt files-many 40", &mut c);
    run.wait_line(Stream::Stderr, |l| l.trim_end() == "files-many: ready", "ready");
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    image
}

/// Values that sit on the edges the checks are about.
fn interesting(rng: &mut Rng, meta: &Meta) -> u64 {
    let r = meta.region(rng.below(meta.n_regions()));
    let pick = [
        0,
        1,
        u64::MAX,
        u32::MAX as u64,
        1 << 31,
        1 << 47,
        PAGE_SIZE - 1,
        PAGE_SIZE,
        USER_END,
        USER_END - PAGE_SIZE,
        LOADER_BASE,
        LOADER_END - 8,
        r.start,
        r.end,
        r.end - 8,
        r.start.wrapping_sub(PAGE_SIZE),
        r.end + PAGE_SIZE,
        MAX_FDS as u64,
        MAX_EXTENT,
        MAX_EXTENT + PAGE_SIZE,
    ];
    let v = pick[rng.below(pick.len())];
    match rng.below(4) {
        0 => v.wrapping_add(rng.below(16) as u64),
        1 => v.wrapping_sub(rng.below(16) as u64),
        _ => v,
    }
}

/// One mutated image: header and metadata bytes (the data is unchanged and
/// not copied), and the file length it claims to have. Returns a description.
fn mutate(rng: &mut Rng, head: &mut [u8], file_len: &mut u64, good: &Meta) -> String {
    let h = good.header;
    let meta = h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize;
    let l = MetaLayout::of(&h);
    // Table boundaries inside the metadata, with their entry sizes.
    let tables = [
        (0, l.regions, std::mem::size_of::<Region>()),
        (l.regions, l.extents, std::mem::size_of::<Extent>()),
        (l.regions + l.extents, l.threads, std::mem::size_of::<Thread>()),
        (l.regions + l.extents + l.threads + l.sigactions, l.fds, std::mem::size_of::<Fd>()),
    ];
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(4) {
        match rng.below(10) {
            // A bit or a byte anywhere in the header or the metadata.
            0 | 1 => {
                let at = if rng.below(4) == 0 { rng.below(HEADER_SIZE) } else { meta.start + rng.below(meta.len()) };
                if rng.below(2) == 0 {
                    head[at] ^= 1 << rng.below(8);
                    what.push(format!("bit at {at}"));
                } else {
                    head[at] = rng.next() as u8;
                    what.push(format!("byte at {at}"));
                }
            }
            // A field of a table entry (aligned 4 or 8) set to an interesting value.
            2..=6 => {
                let (start, len, size) = tables[rng.below(tables.len())];
                if len == 0 {
                    continue;
                }
                let entry = rng.below(len / size);
                let width = if rng.below(3) == 0 { 4 } else { 8 };
                let field = rng.below(size / width) * width;
                let at = meta.start + start + entry * size + field;
                let v = interesting(rng, good);
                head[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                what.push(format!("table field at {at} = {v:#x}"));
            }
            // One entry copied over another of the same table.
            7 => {
                let (start, len, size) = tables[rng.below(tables.len())];
                if len < 2 * size {
                    continue;
                }
                let (a, b) = (rng.below(len / size), rng.below(len / size));
                let (a, b) = (meta.start + start + a * size, meta.start + start + b * size);
                head.copy_within(a..a + size, b);
                what.push(format!("entry at {a} copied to {b}"));
            }
            // A header field (aligned 8) set to an interesting value.
            8 => {
                let at = rng.below(HEADER_SIZE / 8) * 8;
                let v = interesting(rng, good);
                head[at..at + 8].copy_from_slice(&v.to_le_bytes());
                what.push(format!("header field at {at} = {v:#x}"));
            }
            // The file cut or grown.
            _ => {
                *file_len = match rng.below(3) {
                    0 => rng.next() % *file_len,
                    1 => *file_len + 1 + rng.below(1 << 20) as u64,
                    _ => h.data_offset + rng.below((*file_len - h.data_offset) as usize) as u64,
                };
                what.push(format!("file length {file_len}"));
            }
        }
    }
    reseal(head);
    what.join(", ")
}

/// Parses one case in this process: Ok(true) accepted, Ok(false) refused,
/// Err if a parser panicked or broke a promise.
fn parse_case(head: &[u8], file_len: u64) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| ckpt_image::exercise::exercise(head, file_len).map_err(String::from)))
        .unwrap_or_else(|_| Err("a parser panicked".into()))
}

/// The whole file of a case: its header and metadata, then the good
/// image's data, cut or padded to the length it claims.
fn whole_file(head: &[u8], good: &[u8], data_offset: usize, file_len: u64) -> Vec<u8> {
    let mut f = head.to_vec();
    f.extend_from_slice(&good[data_offset..]);
    f.resize(file_len as usize, 0);
    f
}

fn run_corpus(dir: &TempDir, name: &str, image: &Path, seed: u64) {
    let good = read(image);
    let h = Header::parse(&good, good.len() as u64).unwrap();
    let head_len = h.data_offset as usize;
    let meta = &good[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
    let m = Meta::parse(&h, meta).unwrap();
    let mut rng = Rng(seed);
    let (mut refused, mut accepted) = (Vec::new(), Vec::new());
    let mut problems = Vec::new();
    for case in 0..CASES {
        let mut head = good[..head_len].to_vec();
        let mut file_len = good.len() as u64;
        let what = mutate(&mut rng, &mut head, &mut file_len, &m);
        match parse_case(&head, file_len) {
            Err(e) => problems.push(format!("{name} case {case} ({what}): {e}")),
            Ok(ok) => {
                let list = if ok { &mut accepted } else { &mut refused };
                list.push((case, what, head, file_len));
            }
        }
    }
    eprintln!("{name}: {CASES} mutated images, {} refused, {} accepted by the parsers", refused.len(), accepted.len());
    assert!(problems.is_empty(), "{} cases broke the parsers:\n{}", problems.len(), problems.join("\n"));
    assert!(
        refused.len() >= SAMPLE_REFUSED && accepted.len() >= SAMPLE_ACCEPTED,
        "the mutations are too mild or too harsh"
    );

    let pick = |list: &Vec<(usize, String, Vec<u8>, u64)>, n: usize| -> Vec<usize> {
        (0..n).map(|i| i * list.len() / n).collect()
    };
    let path = dir.join("case.dat");
    for i in pick(&refused, SAMPLE_REFUSED) {
        let (case, what, head, file_len) = &refused[i];
        fs::write(&path, whole_file(head, &good, head_len, *file_len)).unwrap();
        let tag = format!("{name} case {case} ({what})");
        let p = path.to_str().unwrap();
        match spawn(&format!("restart of {tag}"), &mut command(&exe("restart"), &[p], &dir.path))
            .try_finish_within(Duration::from_secs(20))
        {
            Err(e) => problems.push(format!("restart of {tag} hangs: {e}")),
            Ok(o) => problems.extend(refusal_problem("restart: ", &o)),
        }
        match spawn(&format!("readckpt of {tag}"), &mut command(&exe("readckpt"), &["--verify", p], &dir.path))
            .try_finish_within(Duration::from_secs(20))
        {
            Err(e) => problems.push(format!("readckpt of {tag} hangs: {e}")),
            Ok(o) => problems.extend(refusal_problem("readckpt: ", &o)),
        }
    }
    for i in pick(&accepted, SAMPLE_ACCEPTED) {
        let (case, what, head, file_len) = &accepted[i];
        fs::write(&path, whole_file(head, &good, head_len, *file_len)).unwrap();
        let tag = format!("{name} case {case} ({what})");
        // The program may fail on its own changed state, or stop on it (a
        // stop signal it no longer blocks, as any program would); it must
        // not hang running.
        match spawn(&format!("restart of {tag}"), &mut command(&exe("restart"), &[path.to_str().unwrap()], &dir.path))
            .try_finish_within(Duration::from_secs(20))
        {
            Err(e) if e.contains("state: T") => eprintln!("{tag}: accepted; the restarted program stopped itself"),
            Err(e) => problems.push(format!("restart of {tag} hangs: {e}")),
            Ok(o) => eprintln!("{tag}: accepted; restart: {}", describe_status(&o.status)),
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn mutated_images_never_break_the_parsers_or_the_tools() {
    let dir = TempDir::new("mutations");
    let cat = cat_image(&dir, "cat.dat", &[]);
    run_corpus(&dir, "cat", &cat, 0x9e37_79b9_7f4a_7c15);
    // Compressed extents: their stored lengths and encodings mutated too.
    let packed = cat_image(&dir, "cat-lz4.dat", &["--compress"]);
    let m = read(&packed);
    let h = Header::parse(&m, m.len() as u64).unwrap();
    let meta = Meta::parse(&h, &m[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    assert!(meta.data_totals().compressed > 0, "cat --compress stored nothing compressed");
    run_corpus(&dir, "cat --compress", &packed, 0x0123_4567_89ab_cdef);
    let files = files_image(&dir);
    run_corpus(&dir, "files-many", &files, 0xdead_beef_1234_5678);
}
