//! A delta image's chain (docs/FORMAT.md, "Delta images"): showing it, and
//! for `--verify` opening every link and checking it as `restart` does —
//! present beside the image, a valid image, the very one named (same
//! `header_checksum` and length), its own chain the rest of this one's.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::json::{Hex, Text};
use ckpt_image::{Header, Meta, HEADER_SIZE};
use serde::Serialize;

/// The text lines: one per parent, nearest first.
pub fn write_text(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    let parents = m.parents();
    if parents.is_empty() {
        return writeln!(out, "chain       none: a full image");
    }
    writeln!(out, "chain       a delta on {} image{}:", parents.len(), if parents.len() == 1 { "" } else { "s" })?;
    for (k, p) in parents.iter().enumerate() {
        let name = String::from_utf8_lossy(m.string(p.name).unwrap_or_default());
        let here = m.extents().filter(|x| x.source as usize == k + 1).map(|x| x.len).sum::<u64>();
        writeln!(
            out,
            "  {} {name} (id {:#018x}, {} bytes; holds {here} bytes of this image)",
            k + 1,
            p.id,
            p.file_len
        )?;
    }
    Ok(())
}

/// A parent in the `chain` member of the JSON output.
#[derive(Serialize)]
pub struct Link<'a> {
    name: Text<'a>,
    id: Hex,
    file_len: u64,
}

/// The `chain` member of the JSON output: the parents, nearest first.
pub fn json<'a>(m: &'a Meta) -> Vec<Link<'a>> {
    let parents = m.parents();
    let link = |p: &ckpt_image::Parent| Link {
        name: Text(m.string(p.name).unwrap_or_default()),
        id: Hex(p.id),
        file_len: p.file_len,
    };
    parents.iter().map(link).collect()
}

/// Opens the file of every extent source: the image itself (`image`), then
/// each parent, checked; a missing or changed link is named in the error.
pub fn open(path: &OsString, image: File, m: &Meta) -> Result<Vec<File>, String> {
    let dir = Path::new(path).parent().unwrap_or(Path::new(""));
    let mut files = vec![image];
    let parents = m.parents();
    for (k, p) in parents.iter().enumerate() {
        let name = m.string(p.name).unwrap_or_default();
        let link = |why: &str| {
            format!("parent {} of {} in the chain, {}, {why}", k + 1, parents.len(), String::from_utf8_lossy(name))
        };
        let at = dir.join(std::ffi::OsStr::from_bytes(name));
        let mut f = match File::open(&at) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(link("is missing")),
            Err(e) => return Err(link(&format!("cannot be opened: {}", super::os_message(&e)))),
        };
        let len = f.metadata().map_err(|e| link(&super::os_message(&e)))?.len();
        let mut head = Vec::with_capacity(HEADER_SIZE);
        (&mut f).take(HEADER_SIZE as u64).read_to_end(&mut head).map_err(|e| link(&super::os_message(&e)))?;
        let h = Header::parse(&head, len).map_err(|e| link(&format!("is not a usable image: {}", e.message())))?;
        if !h.is_link(p, &parents[k + 1..]) {
            return Err(link("has changed: it is not the image this delta was taken after"));
        }
        files.push(f);
    }
    Ok(files)
}
