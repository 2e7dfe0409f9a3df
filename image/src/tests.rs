//! Round trip and corruption tests for the format (no process involved).

use super::*;
use std::vec::Vec;

/// The sample: two regions, three extents, one thread.
fn sample_builder() -> sample::Sample {
    let base = 0x5555_0000_0000u64;
    let mut s = sample::Sample::new();
    s.region(base, 4, PROT_READ | PROT_EXEC, RegionKind::File, b"/usr/bin/prog", &[(0, 4)]);
    s.region(base + 8 * PAGE_SIZE, 8, PROT_READ | PROT_WRITE, RegionKind::Stack, b"", &[(1, 1), (4, 2)]);
    s.header.cmdline = s.string(b"/usr/bin/prog\0arg");
    s.header.cwd = s.string(b"/tmp/dir");
    let t = s.thread(42, base + 12 * PAGE_SIZE + 64);
    (t.fs_base, t.gregs, t.comm) = (1, [7; 23], *b"prog\0\0\0\0\0\0\0\0\0\0\0\0");
    s
}

/// [`sample`] with its header and extents changed by `edit` before it is
/// laid out and written.
fn sample_with(edit: impl FnOnce(&mut Header, &mut [Extent])) -> Vec<u8> {
    let mut s = sample_builder();
    let mut h = s.header;
    edit(&mut h, s.extents_mut());
    s.header = h;
    s.build()
}

/// The sample; with `compress`, its extents compressed where that pays.
fn sample_of(compress: bool) -> Vec<u8> {
    match compress {
        true => sample_builder().build_compressed(),
        false => sample_builder().build(),
    }
}

fn sample() -> Vec<u8> {
    sample_of(false)
}

/// The encoder's layout is the format's: metadata right after the header
/// page in table order, data page aligned after it, extents back to back in
/// table order, each with the checksum of its bytes; both checksums sealed.
#[test]
fn encoder_layout() {
    let file = sample();
    let h = Header::parse(&file, file.len() as u64).unwrap();
    assert_eq!(h.meta_offset, HEADER_SPACE);
    assert_eq!(h.meta_len as usize, MetaLayout::of(&h).total());
    assert_eq!(h.data_offset, page_up(h.meta_offset + h.meta_len));
    assert_eq!(h.file_len, file.len() as u64);
    let meta = &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
    assert_eq!(checksum(meta), h.meta_checksum);
    let m = Meta::parse(&h, meta).unwrap();
    let mut pos = h.data_offset;
    for i in 0..h.n_extents as usize {
        let x = m.extent(i);
        assert_eq!(x.file_pos, pos);
        assert_eq!(checksum(&file[pos as usize..(pos + x.len) as usize]), x.checksum);
        pos += x.len;
    }
    assert_eq!(pos, h.file_len);
    // The threads follow the extents, the strings close the metadata.
    let threads_at = MetaLayout::of(&h).regions + MetaLayout::of(&h).extents;
    assert_eq!(read_at::<Thread>(&meta[threads_at..], 0).unwrap().tid, 42);
    assert!(meta.ends_with(b"/usr/bin/prog/usr/bin/prog\0arg/tmp/dir"));
}

fn parse(file: &[u8]) -> Result<(), Error> {
    let h = Header::parse(file, file.len() as u64)?;
    let meta = file.get(h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize).ok_or(Error::Truncated)?;
    let m = Meta::parse(&h, meta)?;
    for r in m.regions() {
        for e in m.extents_of(&r) {
            let stored = &file[e.file_pos as usize..(e.file_pos + e.stored_len) as usize];
            let mut d = std::vec![0u8; e.len as usize];
            if codec::decode(&e, stored, &mut d).is_err() || checksum(&d) != e.checksum {
                return Err(Error::BadExtent);
            }
        }
    }
    Ok(())
}

/// Text-like bytes (a cycle of log lines), zeros, and pseudo-random ones.
fn kinds(len: usize) -> [Vec<u8>; 3] {
    let lines: &[&[u8]] =
        &[b"2026-11-30T08:15:02Z INFO worker-3 GET /items 200 4ms\n", b"DEBUG cache hit key=user:1\n"];
    let text: Vec<u8> = lines.iter().cycle().flat_map(|l| l.iter().copied()).take(len).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let random = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    [text, std::vec![0; len], random]
}

#[test]
fn codec_round_trip_and_raw_when_it_does_not_pay() {
    let (mut table, mut packed) = (codec::table(), std::vec![0u8; codec::PACKED_MAX]);
    for len in [PAGE_SIZE as usize, 3 * PAGE_SIZE as usize, MAX_EXTENT as usize] {
        let [text, zeros, random] = kinds(len);
        for (name, data) in [("text", &text), ("zeros", &zeros)] {
            let n = codec::compress(data, &mut packed, &mut table).expect(name);
            assert!(n < len / 8, "{name} of {len} bytes compressed to only {n}");
            let x = Extent { stored_len: n as u64, encoding: EXTENT_LZ4, ..Extent::new(0, len as u64) };
            let mut out = std::vec![1u8; len];
            codec::decode(&x, &packed[..n], &mut out).unwrap();
            assert!(out == *data, "{name} of {len} bytes: round trip differs");
            // The same block through lz4_flex's own decoder: standard LZ4.
            out.fill(1);
            assert_eq!(lz4_flex::block::decompress_into(&packed[..n], &mut out).ok(), Some(len));
            assert!(out == *data, "{name} of {len} bytes: lz4_flex decodes otherwise");
        }
        assert_eq!(codec::compress(&random, &mut packed, &mut table), None, "random data is stored raw");
    }
}

#[test]
fn codec_corrupt_streams_stay_inside_the_extent() {
    // Every prefix and many single-byte changes of a compressed extent:
    // decoding fails or yields exactly len bytes, never writes past them,
    // never panics or hangs.
    let len = 64 * 1024;
    let (mut table, mut packed) = (codec::table(), std::vec![0u8; codec::PACKED_MAX]);
    let mut data = kinds(len)[0].clone();
    data[len / 2..len / 2 + 4096].copy_from_slice(&kinds(4096)[2]);
    let n = codec::compress(&data, &mut packed, &mut table).unwrap();
    let stream = packed[..n].to_vec();
    let x = Extent { stored_len: n as u64, encoding: EXTENT_LZ4, ..Extent::new(0, len as u64) };
    let mut out = std::vec![0u8; len + 4096];
    let mut check = |s: &[u8]| {
        out.fill(0xa5);
        let r = codec::decode(&x, s, &mut out[..len]);
        assert!(out[len..].iter().all(|&b| b == 0xa5), "wrote past the extent");
        // What lz4_flex's decoder accepts, this one does, with the same bytes.
        let mut theirs = std::vec![0u8; len];
        if lz4_flex::block::decompress_into(s, &mut theirs).ok() == Some(len) {
            assert_eq!(r, Ok(()), "lz4_flex accepts a block this decoder refuses");
            assert!(out[..len] == theirs[..], "lz4_flex decodes a block otherwise");
        }
        r
    };
    for cut in (0..n).step_by(7) {
        assert_eq!(check(&stream[..cut]), Err(codec::DecodeError::Corrupt), "prefix of {cut} bytes accepted");
    }
    for i in (0..n).step_by(3) {
        for delta in [0x01u8, 0x80, 0xff] {
            let mut bad = stream.clone();
            bad[i] = bad[i].wrapping_add(delta);
            let _ = check(&bad);
        }
    }
    let unknown = Extent { encoding: EXTENT_ZSTD, ..x };
    assert_eq!(codec::decode(&unknown, &stream, &mut out[..len]), Err(codec::DecodeError::Unknown));
}

#[test]
fn compressed_sample_round_trips() {
    let file = sample_of(true);
    let raw = sample();
    assert!(file.len() < raw.len(), "compressed sample is not smaller");
    let h = Header::parse(&file, file.len() as u64).unwrap();
    let m = Meta::parse(&h, &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    assert!(m.data_totals().compressed > 0, "{:?}", m.data_totals());
    assert_eq!(m.data_totals().stored, h.data_len);
    parse(&file).unwrap();
}

/// The compressed sample with extent `i` changed by `f`, re-sealed.
fn with_extent(i: usize, f: impl FnOnce(&mut Extent)) -> Vec<u8> {
    let mut file = sample_of(true);
    let h: Header = read_at(&file, 0).unwrap();
    let at = h.meta_offset as usize + 2 * size_of::<Region>() + i * size_of::<Extent>();
    let mut x: Extent = read_at(&file[at..], 0).unwrap();
    f(&mut x);
    file[at..at + size_of::<Extent>()].copy_from_slice(bytes_of(&x));
    reseal(&mut file);
    file
}

#[test]
fn extent_encodings_are_checked() {
    let meta = |file: &[u8]| {
        let h = Header::parse(file, file.len() as u64)?;
        Meta::parse(&h, &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).map(drop)
    };
    let m = sample_of(true);
    let h = Header::parse(&m, m.len() as u64).unwrap();
    let m = Meta::parse(&h, &m[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    let i = (0..3).find(|&i| m.extent(i).compressed()).expect("a compressed extent");
    assert_eq!(meta(&with_extent(i, |x| x.encoding = EXTENT_ZSTD)), Err(Error::BadExtent));
    assert_eq!(meta(&with_extent(i, |x| x.encoding = 7)), Err(Error::BadExtent));
    assert_eq!(meta(&with_extent(i, |x| x.stored_len = x.len)), Err(Error::BadExtent));
    assert_eq!(meta(&with_extent(i, |x| x.encoding = EXTENT_RAW)), Err(Error::BadExtent));
    assert_eq!(meta(&with_extent(i, |x| x.source = 1)), Err(Error::BadExtent), "a source beyond the chain");
    // A shorter stream, re-sealed: the layout no longer adds up.
    assert_eq!(meta(&with_extent(i, |x| x.stored_len -= 1)), Err(Error::BadExtent));
}

#[test]
fn round_trip() {
    let file = sample();
    let h = Header::parse(&file, file.len() as u64).unwrap();
    let meta = &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
    let m = Meta::parse(&h, meta).unwrap();
    assert_eq!(m.n_regions(), 2);
    assert_eq!(m.region(1).kind(), Some(RegionKind::Stack));
    assert_eq!(m.stored_bytes(&m.region(1)), 3 * PAGE_SIZE);
    assert_eq!(m.string(h.cmdline).unwrap(), b"/usr/bin/prog\0arg");
    assert_eq!(m.string(h.cwd).unwrap(), b"/tmp/dir");
    assert_eq!(m.thread(0).tid, 42);
    assert_eq!(m.thread(0).gregs, [7; 23]);
    // Writing the parsed tables back gives the same bytes.
    let mut again = Vec::new();
    for r in m.regions() {
        again.extend_from_slice(bytes_of(&r));
    }
    for i in 0..h.n_extents as usize {
        again.extend_from_slice(bytes_of(&m.extent(i)));
    }
    assert_eq!(&again[..], &meta[..again.len()]);
    assert!(parse(&file).is_ok());
}

#[test]
fn empty_and_garbage() {
    assert_eq!(parse(&[]), Err(Error::Empty));
    assert_eq!(parse(b"hello"), Err(Error::BadMagic));
    let random: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert_eq!(parse(&random), Err(Error::BadMagic));
}

#[test]
fn every_truncation_is_refused() {
    let file = sample();
    for len in (0..file.len()).step_by(97).chain([file.len() - 1]) {
        assert!(parse(&file[..len]).is_err(), "truncated to {len} accepted");
    }
}

#[test]
fn every_flipped_byte_is_refused() {
    let file = sample();
    let h = Header::parse(&file, file.len() as u64).unwrap();
    // Every byte of the header and the metadata, and a sample of the data.
    let covered = (0..HEADER_SIZE)
        .chain(h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize)
        .chain((h.data_offset as usize..file.len()).step_by(131));
    for i in covered {
        let mut bad = file.clone();
        bad[i] ^= 0x20;
        assert!(parse(&bad).is_err(), "flipped byte {i} accepted");
    }
}

#[test]
fn newer_version_is_named() {
    let mut file = sample();
    file[8] = (FORMAT_VERSION + 1) as u8;
    assert_eq!(parse(&file), Err(Error::NewerVersion));
}

#[test]
fn region_in_loader_range_is_refused() {
    let mut h = Header::new();
    h.n_regions = 1;
    h.n_threads = 1;
    h.layout();
    let r = Region { start: LOADER_BASE, end: LOADER_BASE + PAGE_SIZE, prot: 3, ..Region::default() };
    let t = Thread { tid: 1, ucontext: LOADER_BASE, xstate_bv: 3, xinuse: 3, ..Thread::default() };
    let mut meta = Vec::new();
    meta.extend_from_slice(bytes_of(&r));
    meta.extend_from_slice(bytes_of(&t));
    meta.extend_from_slice(bytes_of_slice(&[SigAction::default(); NSIG]));
    h.meta_checksum = checksum(&meta);
    h.file_len = h.data_offset;
    assert_eq!(Meta::parse(&h, &meta).err(), Some(Error::RegionInLoader));
}

use crate::exercise::reseal;

#[test]
fn structural_checks_hold_without_checksums() {
    // Every byte of the metadata, changed in a few ways and re-sealed: parsing
    // never panics, and whatever it accepts still has the properties the
    // loader relies on. Raw and compressed.
    for file in [sample(), sample_of(true)] {
        structural_checks_hold_for(&file);
    }
}

fn structural_checks_hold_for(file: &[u8]) {
    let h = Header::parse(file, file.len() as u64).unwrap();
    let meta_range = h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize;
    for i in meta_range.clone() {
        for delta in [0x01u8, 0x80, 0xff] {
            let mut bad = file.to_vec();
            bad[i] = bad[i].wrapping_add(delta);
            reseal(&mut bad);
            let h = Header::parse(&bad, bad.len() as u64).unwrap();
            let Ok(m) = Meta::parse(&h, &bad[meta_range.clone()]) else { continue };
            let mut prev_end = 0;
            for r in m.regions() {
                assert!(r.start >= prev_end && r.start < r.end && r.end <= USER_END, "byte {i}: bad region accepted");
                assert!(r.end <= LOADER_BASE || r.start >= LOADER_END, "byte {i}: region in the loader accepted");
                prev_end = r.end;
                for x in m.extents_of(&r) {
                    assert!(x.addr >= r.start && x.addr + x.len <= r.end, "byte {i}: extent outside its region");
                    assert!(x.file_pos + x.stored_len <= bad.len() as u64, "byte {i}: extent past the file");
                    assert!(x.stored_len_ok(), "byte {i}: stored length does not fit the encoding");
                }
            }
            for t in m.threads() {
                assert!(m.region_at(t.ucontext).is_some(), "byte {i}: thread frame outside memory");
            }
        }
    }
}

#[test]
fn resealed_header_changes_never_panic() {
    // Every header byte changed, the header checksum recomputed: the parsers
    // refuse or accept, never panic, and never read past the file.
    let file = sample();
    for i in 0..HEADER_SIZE {
        for delta in [0x01u8, 0x80, 0xff] {
            let mut bad = file.clone();
            bad[i] = bad[i].wrapping_add(delta);
            let mut h: Header = read_at(&bad, 0).unwrap();
            h.header_checksum = h.compute_checksum();
            bad[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
            let _ = parse(&bad);
        }
    }
}

/// The sample with its one thread record changed by `f`, re-sealed.
fn with_thread(f: impl FnOnce(&mut Thread)) -> Vec<u8> {
    let mut file = sample();
    let h: Header = read_at(&file, 0).unwrap();
    let at = h.meta_offset as usize + 2 * size_of::<Region>() + 3 * size_of::<Extent>();
    let mut t: Thread = read_at(&file[at..], 0).unwrap();
    f(&mut t);
    file[at..at + size_of::<Thread>()].copy_from_slice(bytes_of(&t));
    reseal(&mut file);
    file
}

#[test]
fn thread_addresses_must_be_writable_image_memory() {
    const CODE: u64 = 0x5555_0000_0000; // the sample's read-only region
    let stack = CODE + 8 * PAGE_SIZE; // its writable one
    let good = |t: &mut Thread| {
        t.fs_base = stack + 0x100;
        t.tid_offset = 0x2d0;
        t.clear_child_tid = stack + 0x100 + 0x2d0;
        t.robust_list = stack + 0x300;
        t.robust_len = 24;
        t.rseq_area = stack + 0x400;
        t.rseq_len = 32;
    };
    assert_eq!(parse(&with_thread(good)), Ok(()));
    type Case = (&'static str, fn(&mut Thread));
    let cases: [Case; 14] = [
        ("cached tid in the loader", |t| t.fs_base = LOADER_BASE + 0x1000),
        ("cached tid unmapped", |t| t.fs_base = 0),
        ("cached tid read-only", |t| t.fs_base = CODE),
        ("cached tid misaligned", |t| t.tid_offset += 1),
        ("cached tid address overflows", |t| t.fs_base = u64::MAX - 8),
        ("fs base beyond user space", |t| {
            t.fs_base = USER_END;
            t.tid_offset = 0
        }),
        ("gs base beyond user space", |t| t.gs_base = 1 << 63),
        ("tid address in the loader", |t| t.clear_child_tid = LOADER_BASE),
        ("robust list past its region", |t| t.robust_list = CODE + 16 * PAGE_SIZE - 16),
        ("robust list unmapped", |t| t.robust_list = 0x1000),
        ("robust list misaligned", |t| t.robust_list += 4),
        ("rseq area read-only", |t| t.rseq_area = CODE),
        ("rseq area misaligned", |t| t.rseq_area += 8),
        ("rseq area too short", |t| t.rseq_len = 16),
    ];
    for (what, f) in cases {
        let bad = with_thread(|t| {
            good(t);
            f(t)
        });
        assert_eq!(parse(&bad), Err(Error::ThreadAddress), "{what}");
    }
}

#[test]
fn sigkill_or_sigstop_pending_is_refused() {
    // A real process never has them pending: the kernel acts on them at once.
    for sig in [9u64, 19] {
        assert_eq!(parse(&with_thread(|t| t.pending = 1 << (sig - 1))), Err(Error::BadSignals), "thread, {sig}");
        let mut file = sample();
        let mut h: Header = read_at(&file, 0).unwrap();
        h.process.pending |= 1 << (sig - 1);
        file[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
        crate::exercise::reseal(&mut file);
        assert_eq!(parse(&file), Err(Error::BadSignals), "process, {sig}");
    }
    // SIGTSTP may be pending (blocked): accepted.
    assert_eq!(parse(&with_thread(|t| t.pending = 1 << (20 - 1))), Ok(()));
}

/// A delta image: its first extent (4 pages of the file region) is in its
/// parent, at a position there; the rest is its own.
fn delta_with(edit: impl FnOnce(&mut Header, &mut Extent)) -> Vec<u8> {
    sample_with(|h, x| {
        h.chain_depth = 1;
        // The parent's name: "prog", in the string table.
        h.parents[0] = Parent { id: 0x1234, file_len: 1 << 20, name: StrRef { offset: 9, len: 4 } };
        x[0].source = 1;
        x[0].file_pos = 8 * PAGE_SIZE;
        x[0].checksum = 0x5678;
        edit(h, &mut x[0]);
    })
}

fn parse_meta(file: &[u8]) -> Result<(), Error> {
    let h = Header::parse(file, file.len() as u64)?;
    Meta::parse(&h, &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).map(drop)
}

#[test]
fn delta_extents_name_their_source() {
    let full = sample();
    let file = delta_with(|_, _| {});
    let h = Header::parse(&file, file.len() as u64).unwrap();
    let m = Meta::parse(&h, &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    assert_eq!(m.parents().len(), 1);
    assert_eq!(m.string(m.parents()[0].name).unwrap(), b"prog");
    let x = m.extent(0);
    // Kept as the writer said (the encoder lays out only its own extents).
    assert_eq!((x.source, x.file_pos, x.checksum), (1, 8 * PAGE_SIZE, 0x5678));
    assert_eq!(m.locate(x.addr + 5), Some((1, 8 * PAGE_SIZE + 5, x.len - 5)));
    assert_eq!(m.file_pos_of(x.addr), None);
    let full_h = Header::parse(&full, full.len() as u64).unwrap();
    assert_eq!(h.data_len, full_h.data_len - x.len, "the data area holds the image's own extents only");
    assert_eq!(m.extent(1).file_pos, h.data_offset);
}

#[test]
fn bad_chains_are_refused() {
    let cases: [(&str, Vec<u8>, Error); 6] = [
        ("source beyond the chain", delta_with(|_, x| x.source = 2), Error::BadExtent),
        ("past the parent's end", delta_with(|_, x| x.file_pos = (1 << 20) - PAGE_SIZE), Error::BadExtent),
        ("in the parent's header", delta_with(|_, x| x.file_pos = 0), Error::BadExtent),
        ("a path, not a name", delta_with(|h, _| h.parents[0].name = StrRef { offset: 0, len: 13 }), Error::BadChain),
        ("an entry past the depth", delta_with(|h, _| h.parents[1].id = 1), Error::BadChain),
        ("too deep", delta_with(|h, _| h.chain_depth = MAX_CHAIN as u32 + 1), Error::BadChain),
    ];
    for (what, file, want) in cases {
        assert_eq!(parse_meta(&file), Err(want), "{what}");
    }
    assert_eq!(parse_meta(&delta_with(|_, _| {})), Ok(()));
}

/// Every width this CPU has gives xxhash-rust's XXH3-64, at every length
/// around the block and stripe edges and for a whole extent; the widths it
/// lacks are named, not run.
#[test]
fn checksum_widths_agree_with_xxh3() {
    use crate::checksum::{checksum_as, width, Width};
    let data = &kinds(MAX_EXTENT as usize + 4096)[2];
    let mut lens: Vec<usize> = (0..1200).chain([1023, 1024, 1025, 2047, 2048, 2049, 65536, 65537]).collect();
    lens.push(MAX_EXTENT as usize);
    for w in [Width::Sse2, Width::Avx2, Width::Avx512] {
        if checksum_as(w, &data[..1000]).is_none() {
            std::println!("skip: this CPU runs {:?} at most, not {w:?}", width());
            continue;
        }
        for &len in &lens {
            for start in [0usize, 1, 7] {
                let input = &data[start..start + len];
                assert_eq!(
                    checksum_as(w, input),
                    Some(xxhash_rust::xxh3::xxh3_64(input)),
                    "{w:?}, {len} bytes at +{start}"
                );
            }
        }
    }
    assert_eq!(checksum(&data[..MAX_EXTENT as usize]), xxhash_rust::xxh3::xxh3_64(&data[..MAX_EXTENT as usize]));
}

/// `cargo test --release -p ckpt-image -- --ignored checksum_speed
/// --nocapture` (`make bench` runs it): GB/s of each width this CPU has,
/// over 4 MiB extents in cache and over 256 MiB.
#[test]
#[ignore]
fn checksum_speed() {
    use crate::checksum::{checksum_as, Width};
    let big = kinds(256 << 20)[2].clone();
    for w in [Width::Sse2, Width::Avx2, Width::Avx512] {
        if checksum_as(w, &big[..1000]).is_none() {
            std::println!("checksum {w:?}: not on this CPU");
            continue;
        }
        let mut line = std::format!("checksum {w:?}:");
        for (what, len, rounds) in [("4 MiB in cache", MAX_EXTENT as usize, 64), ("256 MiB", big.len(), 3)] {
            let mut best = f64::MAX;
            for _ in 0..rounds {
                let t = std::time::Instant::now();
                let mut x = 0u64;
                for chunk in big[..len].chunks(MAX_EXTENT as usize) {
                    x ^= checksum_as(w, chunk).unwrap();
                }
                std::hint::black_box(x);
                best = best.min(t.elapsed().as_secs_f64());
            }
            line += &std::format!(" {:.1} GB/s ({what})", len as f64 / best / 1e9);
        }
        std::println!("{line}");
    }
}

/// `cargo test --release -p ckpt-image -- --ignored codec_speed
/// --nocapture`: GB/s of the compressor and the decoder on 4 MiB extents.
#[test]
#[ignore]
fn codec_speed() {
    let len = MAX_EXTENT as usize;
    let (mut table, mut packed) = (codec::table(), std::vec![0u8; codec::PACKED_MAX]);
    for (name, data) in ["text", "zeros", "random"].iter().zip(kinds(len)) {
        let t = std::time::Instant::now();
        let mut n = None;
        for _ in 0..16 {
            n = codec::compress(&data, &mut packed, &mut table);
        }
        let c = 16.0 * len as f64 / t.elapsed().as_secs_f64() / 1e9;
        let mut line = std::format!("{name}: compress {c:.2} GB/s, {n:?} bytes");
        if let Some(n) = n {
            let x = Extent { stored_len: n as u64, encoding: EXTENT_LZ4, ..Extent::new(0, len as u64) };
            let mut out = std::vec![0u8; len];
            let t = std::time::Instant::now();
            for _ in 0..16 {
                codec::decode(&x, &packed[..n], &mut out).unwrap();
            }
            line += &std::format!(", decode {:.2} GB/s", 16.0 * len as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        std::println!("{line}");
    }
}

#[test]
fn posix_timer_records_are_checked() {
    use crate::timers::{parse, PosixTimer, SIGEV_NONE, SIGEV_SIGNAL, SIGEV_THREAD_ID};
    let good = [
        PosixTimer { id: 0, clock: 1, notify: SIGEV_SIGNAL, signal: 34, value: 101, value_ns: 5, ..Default::default() },
        PosixTimer { id: 3, clock: 0, notify: SIGEV_NONE, ..Default::default() },
        PosixTimer { id: 7, clock: -6, notify: SIGEV_THREAD_ID, signal: 35, tid: 1234, ..Default::default() },
    ];
    let bytes = |ts: &[PosixTimer]| ts.iter().flat_map(|t| bytes_of(t).to_vec()).collect::<Vec<u8>>();
    let all = bytes(&good);
    let parsed = parse(&all).expect("sane timers");
    assert_eq!(parsed.iter().collect::<Vec<_>>(), good.to_vec());
    assert!(parse(&[]).is_some_and(|t| t.is_empty()));
    assert!(parse(&all[..all.len() - 1]).is_none(), "a partial record");
    let broken: [fn(&mut [PosixTimer; 3]); 7] = [
        |t| t[1].id = 0,       // not increasing
        |t| t[2].id = 1 << 31, // beyond i32
        |t| t[0].signal = 0,   // a signal timer without a signal
        |t| t[0].signal = 65,  // no such signal
        |t| t[2].tid = 0,      // a thread timer without its thread
        |t| t[0].tid = 9,      // a thread for a process timer
        |t| t[1].notify = 2,   // SIGEV_THREAD is glibc's, never the kernel's
    ];
    for (i, f) in broken.iter().enumerate() {
        let mut t = good;
        f(&mut t);
        assert!(parse(&bytes(&t)).is_none(), "case {i}");
    }
}
