//! Compressed images (`ckpt --compress`): text-like, zero and random memory
//! come back byte for byte; the image is smaller where the memory
//! compresses and no more than a few percent larger where it does not; a
//! corrupted or truncated compressed extent is refused with one line before
//! the program runs, and `readckpt --verify` finds it. As `nobody`.

mod common;

use ckpt_image::{bytes_of, codec, Extent, Header, Meta, MetaLayout};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Stdio;

/// `compressible TEXT ZERO RANDOM` (MiB of each) checkpointed while it
/// waits, with `options`: the image. `tools` runs it (as nobody).
fn checkpoint(tools: &Tools, work: &TempDir, name: &str, options: &[&str], mib: [u32; 3]) -> Vec<u8> {
    let image = work.join(name);
    let args: Vec<String> = mib.iter().map(|m| m.to_string()).collect();
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let mut c = tools.ckpt_with(options, Some(&image), &tools.bin("compressible"), &args, &work.path);
    c.stdin(Stdio::piped());
    let mut run = spawn(&format!("ckpt {options:?} compressible {args:?}"), &mut c);
    run.wait_line(Stream::Stdout, |l| l == "compressible: ready\n", "ready");
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    read(&image)
}

/// What the program prints after its line when it is not interrupted.
fn uninterrupted(tools: &Tools, work: &TempDir, mib: [u32; 3]) -> Vec<u8> {
    let args: Vec<String> = mib.iter().map(|m| m.to_string()).collect();
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let o = run_with_input("compressible", &mut tools.cmd(&tools.bin("compressible"), &args, &work.path), b"go\n");
    o.expect_code(0);
    o.stdout()
}

/// `restart` of `image` (written as `name`), with `input` on its stdin.
fn restart(tools: &Tools, work: &TempDir, image: &[u8], name: &str, input: &[u8]) -> Outcome {
    let path = work.join(name);
    fs::write(&path, image).unwrap();
    // The image is the test's (root's) file: it must be nobody's own.
    if let Some((uid, gid)) = tools.user {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
    }
    chmod(&path, 0o600);
    run_with_input("restart", &mut tools.restart(Some(&path), &work.path), input)
}

fn meta(image: &[u8]) -> Meta<'_> {
    let h = Header::parse(image, image.len() as u64).expect("a valid image");
    Meta::parse(&h, &image[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).expect("valid tables")
}

/// `readckpt --verify` of the image, as the tools' user.
fn verify(tools: &Tools, work: &TempDir, image: &[u8], name: &str) -> Outcome {
    let path = work.join(name);
    fs::write(&path, image).unwrap();
    chmod(&path, 0o644);
    let p = path.to_str().unwrap();
    spawn("readckpt --verify", &mut tools.cmd(&tools.bin("readckpt"), &["--verify", p], &work.path)).finish()
}

const MIB: u64 = 1 << 20;

#[test]
fn compressed_images_restart_to_identical_output() {
    let (_bins, tools, work) = unprivileged("compress", &[&demo("compressible")]);
    let mib = [24, 8, 8];
    let want = uninterrupted(&tools, &work, mib);
    assert!(String::from_utf8_lossy(&want).starts_with("compressible: ready\ncompressible: OK digest"));
    let raw = checkpoint(&tools, &work, "raw.dat", &[], mib);
    let packed = checkpoint(&tools, &work, "lz4.dat", &["--compress"], mib);
    // The variable does the same as the option.
    let mut c = tools.ckpt(Some(&work.join("env.dat")), &tools.bin("compressible"), &["1", "1", "1"], &work.path);
    c.stdin(Stdio::piped()).env("CKPT_COMPRESS", "lz4");
    let mut run = spawn("CKPT_COMPRESS=lz4 ckpt compressible", &mut c);
    run.wait_line(Stream::Stdout, |l| l == "compressible: ready\n", "ready");
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    assert!(
        meta(&read(&work.join("env.dat"))).data_totals().compressed > 0,
        "CKPT_COMPRESS=lz4 wrote no compressed extent"
    );

    for (name, image) in [("raw.dat", &raw), ("lz4.dat", &packed)] {
        let o = restart(&tools, &work, image, name, b"go\n");
        o.expect_code(0);
        // The restarted program prints what the uninterrupted one printed after "ready".
        assert_same(&format!("restart of {name}"), &o.stdout(), &want["compressible: ready\n".len()..]);
    }
    // Text and zeros shrink to almost nothing; the random 8 MiB stay.
    let (r, p) = (meta(&raw).data_totals(), meta(&packed).data_totals());
    assert_eq!(r.compressed, 0);
    // (The two runs' memory differs by the odd page the program touched.)
    assert!(p.compressed > 0 && p.memory.abs_diff(r.memory) < MIB, "{p:?} vs {r:?}");
    assert!(p.stored < r.stored - 30 * MIB, "compressed data {} of {} is not 30 MiB smaller", p.stored, r.stored);
    assert!(packed.len() < raw.len() - 30 * MIB as usize);
    let o = verify(&tools, &work, &packed, "lz4-verify.dat");
    o.expect_code(0);
    let out = o.stdout_text();
    assert!(out.contains("\ncompression lz4: "), "{out}");
    assert!(out.contains("verify: OK, all "), "{out}");
}

#[test]
fn random_data_costs_no_more_than_a_few_percent() {
    let (_bins, tools, work) = unprivileged("compress-random", &[&demo("compressible")]);
    let mib = [0, 0, 48];
    let raw = checkpoint(&tools, &work, "raw.dat", &[], mib);
    let packed = checkpoint(&tools, &work, "lz4.dat", &["--compress"], mib);
    assert!(packed.len() as f64 <= raw.len() as f64 * 1.03, "{} bytes compressed vs {} raw", packed.len(), raw.len());
    // The random block is stored raw: it does not shrink by an eighth.
    let m = meta(&packed);
    let big: Vec<Extent> = (0..m.header.n_extents as usize).map(|i| m.extent(i)).filter(|x| x.len == 4 * MIB).collect();
    assert!(big.len() >= 11 && big.iter().all(|x| !x.compressed()), "random extents compressed: {big:?}");
    let o = restart(&tools, &work, &packed, "lz4.dat", b"go\n");
    o.expect_code(0);
    assert!(o.stdout_text().starts_with("compressible: OK digest"), "{}", o.describe());
}

/// The largest compressed extent of an image.
fn largest_compressed(m: &Meta) -> (usize, Extent) {
    (0..m.header.n_extents as usize)
        .map(|i| (i, m.extent(i)))
        .filter(|(_, x)| x.compressed())
        .max_by_key(|(_, x)| x.stored_len)
        .expect("a compressed extent")
}

/// The image with the last `cut` bytes of extent `i`'s stored stream taken
/// out: the data laid out again as a writer would (`Extent::place_at`),
/// the extents' places, the data and file lengths updated, and both
/// checksums re-sealed, so that the tables are right and only decoding the
/// data can tell.
fn truncate_stream(good: &[u8], i: usize, cut: u64) -> Vec<u8> {
    let m = meta(good);
    let h = m.header;
    let mut out = good[..h.data_offset as usize].to_vec();
    let at = h.meta_offset as usize + MetaLayout::of(&h).regions;
    for j in 0..h.n_extents as usize {
        let mut x = m.extent(j);
        let mut bytes = &good[x.file_pos as usize..(x.file_pos + x.stored_len) as usize];
        if j == i {
            bytes = &bytes[..bytes.len() - cut as usize];
            x.stored_len -= cut;
        }
        x.file_pos = x.place_at(out.len() as u64);
        out.resize(x.file_pos as usize, 0);
        out.extend_from_slice(bytes);
        let p = at + j * size_of::<Extent>();
        out[p..p + size_of::<Extent>()].copy_from_slice(bytes_of(&x));
    }
    let len = out.len() as u64;
    let mut out = patch_header(&out, |h| {
        h.data_len = len - h.data_offset;
        h.file_len = len;
    });
    reseal(&mut out);
    out
}

use std::mem::size_of;

#[test]
fn corrupted_or_truncated_compressed_extents_are_refused_before_the_program_runs() {
    let (_bins, tools, work) = unprivileged("compress-bad", &[&demo("compressible")]);
    let good = checkpoint(&tools, &work, "good.dat", &["--compress"], [8, 0, 1]);
    let m = meta(&good);
    let (i, x) = largest_compressed(&m);
    let region = m.region_at(x.addr).unwrap();
    let data_of = format!("data of region {:x}-{:x} is corrupted", region.start, region.end);

    // One byte of the stream changed (the tables are untouched: only the
    // data can tell). Every byte value that still decodes is caught by the
    // checksum, the others by the decoder: each a one-line refusal.
    let mut corrupt = good.clone();
    let at = (x.file_pos + x.stored_len / 2) as usize;
    corrupt[at] ^= 0x5a;
    // A stream cut short, in a file whose tables say so.
    let truncated = truncate_stream(&good, i, 16);
    let reparsed = meta(&truncated);
    assert_eq!(reparsed.extent(i).stored_len, x.stored_len - 16, "the tables of the truncated image are valid");
    let mut decoded = vec![0u8; x.len as usize];
    let y = reparsed.extent(i);
    let stored = &truncated[y.file_pos as usize..(y.file_pos + y.stored_len) as usize];
    assert!(codec::decode(&y, stored, &mut decoded).is_err(), "a cut stream decodes");

    for (name, image) in [("corrupt.dat", &corrupt), ("truncated.dat", &truncated)] {
        // Nothing on its stdin: a refused restart reads none.
        let o = restart(&tools, &work, image, name, b"");
        if let Some(p) = refusal_problem("restart: ", &o) {
            panic!("{name}: {p}\n{}", o.describe());
        }
        assert!(o.stderr_text().contains(&data_of), "{name}: {}", o.stderr_text());
        let o = verify(&tools, &work, image, &format!("verify-{name}"));
        assert_eq!(o.status.code(), Some(1), "{name}: readckpt --verify: {}", o.describe());
        let err = o.stderr_text();
        assert!(
            err.starts_with("readckpt: ") && err.lines().count() == 1 && err.contains(&format!("extent {i} at")),
            "{name}: {err}"
        );
        assert!(o.stdout_text().contains("verify: FAILED: extent "), "{name}");
    }
    // And the good one restarts.
    restart(&tools, &work, &good, "good.dat", b"go\n").expect_code(0);
}

#[test]
fn compress_option_takes_lz4_only() {
    let dir = TempDir::new("compress-cli");
    let t = Tools::new();
    for (args, env, want) in [
        (&["--compress=zstd"][..], None, "ckpt: --compress: zstd is not supported by this version; give lz4"),
        (&["--compress=gzip"][..], None, "ckpt: --compress: unknown codec \"gzip\"; give lz4"),
        (&[][..], Some("brotli"), "ckpt: CKPT_COMPRESS=brotli: unknown codec \"brotli\"; give lz4"),
    ] {
        let mut c = t.ckpt_with(args, None, Path::new("/bin/true"), &[], &dir.path);
        if let Some(v) = env {
            c.env("CKPT_COMPRESS", v);
        }
        let o = spawn("ckpt", &mut c).finish();
        assert_refused(&o, 2, &[want]);
    }
}
