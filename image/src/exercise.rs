//! For fuzzing and mutation tests: re-sealing a changed image, and parsing
//! one the way the loader does, using every accessor and checking the
//! promises `Meta::parse` makes. No allocation, no panic expected: a panic
//! here is a bug in the parsers.

use crate::*;

/// Makes both checksums of an image right again after its header or
/// metadata changed. `head` is the start of the file: at least the header,
/// and the metadata if it holds it (else only the header is re-sealed).
pub fn reseal(head: &mut [u8]) {
    let Some(mut h) = read_at::<Header>(head, 0) else { return };
    let meta = (h.meta_offset as usize).checked_add(h.meta_len as usize).map(|end| h.meta_offset as usize..end);
    if let Some(m) = meta.and_then(|r| head.get(r)) {
        h.meta_checksum = checksum(m);
    }
    h.header_checksum = h.compute_checksum();
    head[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
}

/// Parses `head` (the start of a file of `file_len` bytes: its header and
/// metadata) as the loader and readckpt do. `Ok(true)`: accepted, and every
/// promise holds; `Ok(false)`: refused; `Err`: accepted, but a promise the
/// loader relies on is broken.
pub fn exercise(head: &[u8], file_len: u64) -> Result<bool, &'static str> {
    let Ok(h) = Header::parse(head, file_len) else { return Ok(false) };
    let end = h.meta_offset.checked_add(h.meta_len).ok_or("metadata range overflows")?;
    // The loader reads exactly meta_len bytes: a shorter file is Truncated.
    let Some(meta) = head.get(h.meta_offset as usize..end as usize) else { return Ok(false) };
    let Ok(m) = Meta::parse(&h, meta) else { return Ok(false) };
    let mut prev_end = 0;
    for r in m.regions() {
        if r.start < prev_end || r.start >= r.end || r.end > USER_END || (r.start < LOADER_END && r.end > LOADER_BASE) {
            return Err("a bad region was accepted");
        }
        prev_end = r.end;
        m.string(r.path).ok_or("a region's path is out of range")?;
        for x in m.extents_of(&r) {
            // Its bytes lie in the file of its source: this one, or a parent.
            let source_len = match x.source as usize {
                0 => file_len,
                k => m.parents().get(k - 1).ok_or("an extent's source is not in the chain")?.file_len,
            };
            if x.addr < r.start || x.addr + x.len > r.end || x.file_pos + x.stored_len > source_len {
                return Err("a bad extent was accepted");
            }
            if !x.stored_len_ok() {
                return Err("an extent's storage does not fit its encoding");
            }
        }
        let _ = m.stored_bytes(&r);
        let _ = m.region_at(r.start);
        let _ = m.region_at(r.end - 1);
    }
    for t in m.threads() {
        if m.region_at(t.ucontext).is_none() {
            return Err("a thread's frame is outside memory");
        }
        // The loader writes the new tid at fs_base + tid_offset.
        let tid_at = t.fs_base.wrapping_add(t.tid_offset as u64);
        let writable = m.region_at(tid_at).is_some_and(|r| tid_at + 4 <= r.end && r.prot & PROT_WRITE != 0);
        if t.tid_offset != 0 && !writable {
            return Err("a thread's cached tid is outside writable memory");
        }
    }
    for p in m.parents() {
        let name = m.string(p.name).ok_or("a parent's name is out of range")?;
        if name.is_empty() || name.contains(&b'/') {
            return Err("a parent's name is not a plain file name");
        }
    }
    for f in m.fds() {
        m.string(f.path).ok_or("an fd's path is out of range")?;
        m.string(f.data).ok_or("an fd's data is out of range")?;
        let _ = f.kind();
    }
    for sig in 0..=NSIG {
        let _ = m.sigaction(sig);
    }
    for s in [h.cmdline, h.cwd, h.exe] {
        m.string(s).ok_or("a header string is out of range")?;
    }
    if h.process.valid & crate::PROCESS_TIMERS != 0 {
        let bytes = m.string(h.process.timers).ok_or("the POSIX timers are out of range")?;
        let timers = crate::timers::parse(bytes).ok_or("a POSIX timer record is not sane")?;
        if timers.iter().count() != m.timers().len() {
            return Err("the POSIX timers are not all read");
        }
    }
    Ok(true)
}
