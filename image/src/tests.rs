//! Round trip and corruption tests for the format (no process involved).

use super::*;
use std::vec::Vec;

/// Builds a small valid image in memory: two regions, three extents, one thread.
fn sample() -> Vec<u8> {
    let base = 0x5555_0000_0000u64;
    let mut s = sample::Sample::new();
    s.region(base, 4, PROT_READ | PROT_EXEC, RegionKind::File, b"/usr/bin/prog", &[(0, 4)]);
    s.region(base + 8 * PAGE_SIZE, 8, PROT_READ | PROT_WRITE, RegionKind::Stack, b"", &[(1, 1), (4, 2)]);
    s.header.cmdline = s.string(b"/usr/bin/prog\0arg");
    s.header.cwd = s.string(b"/tmp/dir");
    let t = s.thread(42, base + 12 * PAGE_SIZE + 64);
    (t.fs_base, t.gregs, t.comm) = (1, [7; 23], *b"prog\0\0\0\0\0\0\0\0\0\0\0\0");
    s.build()
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
            let d = &file[e.file_pos as usize..(e.file_pos + e.len) as usize];
            if checksum(d) != e.checksum {
                return Err(Error::BadExtent);
            }
        }
    }
    Ok(())
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
    // loader relies on.
    let file = sample();
    let h = Header::parse(&file, file.len() as u64).unwrap();
    let meta_range = h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize;
    for i in meta_range.clone() {
        for delta in [0x01u8, 0x80, 0xff] {
            let mut bad = file.clone();
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
                    assert!(x.file_pos + x.len <= bad.len() as u64, "byte {i}: extent past the file");
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
