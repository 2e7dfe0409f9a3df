//! Job images (`ckpt --tree`, docs/FORMAT.md "Job images"): the member
//! table, the descriptors and memory the processes share, then each
//! process image as readckpt shows one.

use crate::describe::shell_quote;
use crate::json::Text;
use crate::{inspect_at, os_message, read_error, Failure, Image, Options};
use ckpt_image::job::{self as fmt, JobHeader, Member, JOB_HEADER_SIZE, MEMBER_ZOMBIE};
use ckpt_image::Meta;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};

/// A job image's validated header and table.
pub struct JobImage {
    header: JobHeader,
    table: Vec<u8>,
}

impl JobImage {
    fn job(&self) -> fmt::Job<'_> {
        fmt::Job::parse(self.header, &self.table).expect("validated by open")
    }
}

/// The job image at `path`, or None if it is not one (a process image).
pub fn open(path: &OsString) -> Result<Option<JobImage>, String> {
    // stat before open: opening a FIFO would block (Image::open says
    // what is wrong with anything but a regular file).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let Ok(mut file) = File::open(path) else { return Ok(None) };
    let len = file.metadata().map_err(|e| os_message(&e))?.len();
    let mut head = Vec::new();
    (&mut file).take(JOB_HEADER_SIZE as u64).read_to_end(&mut head).map_err(|e| os_message(&e))?;
    if !fmt::is_job(&head) {
        return Ok(None);
    }
    let header = JobHeader::parse(&head, len).map_err(|e| e.message().to_string())?;
    let mut table = vec![0; header.table_len() as usize];
    file.read_exact(&mut table).map_err(|e| read_error(&e))?;
    fmt::Job::parse(header, &table).map_err(|e| e.message().to_string())?;
    Ok(Some(JobImage { header, table }))
}

fn state(m: &Member) -> String {
    if m.state == MEMBER_ZOMBIE {
        format!("exited (wait status {:#x}), not yet waited for", m.wait_status)
    } else {
        "running".into()
    }
}

fn state_name(m: &Member) -> &'static str {
    if m.state == MEMBER_ZOMBIE {
        "zombie"
    } else {
        "running"
    }
}

fn command<'a>(job: &fmt::Job<'a>, m: &Member) -> Vec<&'a [u8]> {
    let c = job.command(m);
    let c = c.strip_suffix(b"\0").unwrap_or(c);
    if c.is_empty() {
        return Vec::new();
    }
    c.split(|&b| b == 0).collect()
}

/// Prints the member table, then each running member's process image
/// as readckpt shows one (and verifies it, with --verify).
pub fn inspect(opts: &Options, name: &str, image: &JobImage, out: &mut dyn Write) -> Result<(), Failure> {
    let job = image.job();
    let members: Vec<Member> = (0..job.len()).map(|i| job.member(i)).collect();
    if opts.json {
        return write_json(opts, name, &job, &members, out);
    }
    let mut result = Ok(());
    writeln!(out, "job:          {} processes (the first is the one ckpt started)", members.len())?;
    writeln!(out, "  {:>7} {:>7} {:>7} {:>7}  {:<10} command", "pid", "ppid", "pgid", "sid", "state")?;
    for m in &members {
        let cmd: Vec<String> = command(&job, m).iter().map(|a| shell_quote(a)).collect();
        let st = state_name(m);
        writeln!(out, "  {:>7} {:>7} {:>7} {:>7}  {:<10} {}", m.pid, m.ppid, m.pgid, m.sid, st, cmd.join(" "))?;
    }
    write_links(out, &job, &members, &mut Paths::new(opts, &members))?;
    write_shared(out, &job, &members)?;
    for m in &members {
        writeln!(out, "\nprocess {}: {}", m.pid, state(m))?;
        if m.state == MEMBER_ZOMBIE {
            continue;
        }
        let r = inspect_at(opts, name, m.offset, out);
        if let Err(Failure::Output(e)) = r {
            return Err(Failure::Output(e));
        }
        result = result.and_then(|()| r.map_err(|e| in_member(m.pid, e)));
    }
    out.flush()?;
    result
}

/// The `--json` report of a job image.
#[derive(Serialize)]
struct JobJson<'a> {
    job: Vec<JMember<'a>>,
    links: Vec<JLink<'a>>,
    shared_memory: Vec<JShared>,
    /// Each running member's report, as readckpt --json shows a process image.
    processes: Vec<Value>,
}

#[derive(Serialize)]
struct JMember<'a> {
    pid: u32,
    ppid: u32,
    pgid: u32,
    sid: u32,
    state: &'static str,
    wait_status: u32,
    offset: u64,
    length: u64,
    command: Vec<Text<'a>>,
}

#[derive(Serialize)]
struct JLink<'a> {
    pid: u32,
    fd: u32,
    description: u32,
    channel: u32,
    kind: &'static str,
    /// How many processes hold this open file description (more than
    /// one: restart opens it once, for them all to share).
    processes: usize,
    /// A file's path, as the process image names it ("" for anything else).
    path: String,
    /// The bytes that were waiting in a pipe.
    waiting: Text<'a>,
}

#[derive(Serialize)]
struct JShared {
    pid: u32,
    object: u32,
    start: u64,
    end: u64,
    offset: u64,
}

fn write_json(
    opts: &Options,
    name: &str,
    job: &fmt::Job,
    members: &[Member],
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut result = Ok(());
    let mut paths = Paths::new(opts, members);
    let holders = holders(job);
    let mut processes = Vec::new();
    for m in members.iter().filter(|m| m.state != MEMBER_ZOMBIE) {
        let mut buf = Vec::new();
        let r = inspect_at(opts, name, m.offset, &mut buf);
        if !buf.is_empty() {
            processes.push(serde_json::from_slice(&buf).map_err(io::Error::from)?);
        }
        result = result.and_then(|()| r.map_err(|e| in_member(m.pid, e)));
    }
    let report = JobJson {
        job: members
            .iter()
            .map(|m| JMember {
                pid: m.pid,
                ppid: m.ppid,
                pgid: m.pgid,
                sid: m.sid,
                state: state_name(m),
                wait_status: m.wait_status,
                offset: m.offset,
                length: m.len,
                command: command(job, m).into_iter().map(Text).collect(),
            })
            .collect(),
        links: (0..job.header.n_links as usize)
            .map(|i| {
                let l = job.link(i);
                let path = (l.kind == fmt::LINK_FILE).then(|| paths.get(l.member, l.fd)).flatten();
                JLink {
                    pid: members[l.member as usize].pid,
                    fd: l.fd,
                    description: l.description,
                    channel: l.channel,
                    kind: match l.kind {
                        fmt::LINK_PIPE => "pipe",
                        fmt::LINK_PIPE_ENDED => "pipe-ended",
                        fmt::LINK_LISTEN => "listening",
                        fmt::LINK_SOCKET => "socket",
                        _ => "file",
                    },
                    processes: holders[&l.description],
                    path: path.map_or(String::new(), |p| String::from_utf8_lossy(&p).into_owned()),
                    waiting: Text(job.string(l.data)),
                }
            })
            .collect(),
        shared_memory: (0..job.header.n_shared as usize)
            .map(|i| {
                let m = job.shared(i);
                JShared {
                    pid: members[m.member as usize].pid,
                    object: m.object,
                    start: m.start,
                    end: m.end,
                    offset: m.offset,
                }
            })
            .collect(),
        processes,
    };
    crate::json::write_value(out, &serde_json::to_value(report).map_err(io::Error::from)?)?;
    out.flush()?;
    result
}

/// For each open file description, how many processes hold descriptors
/// of it.
fn holders(job: &fmt::Job) -> BTreeMap<u32, usize> {
    let mut held: Vec<(u32, u32)> =
        (0..job.header.n_links as usize).map(|i| job.link(i)).map(|l| (l.description, l.member)).collect();
    held.sort_unstable();
    held.dedup();
    let mut count = BTreeMap::new();
    for (description, _) in held {
        *count.entry(description).or_insert(0) += 1;
    }
    count
}

/// The paths of the members' descriptors, as their process images name
/// them (each image read once, when first asked).
struct Paths<'a> {
    opts: &'a Options,
    members: &'a [Member],
    read: BTreeMap<u32, BTreeMap<i32, Vec<u8>>>,
}

impl<'a> Paths<'a> {
    fn new(opts: &'a Options, members: &'a [Member]) -> Paths<'a> {
        Paths { opts, members, read: BTreeMap::new() }
    }

    /// The path of descriptor `fd` of member `member`, if its image names one.
    fn get(&mut self, member: u32, fd: u32) -> Option<Vec<u8>> {
        let (opts, members) = (self.opts, self.members);
        let fds = self.read.entry(member).or_insert_with(|| {
            let Some(m) = members.get(member as usize).filter(|m| m.state != MEMBER_ZOMBIE) else {
                return BTreeMap::new();
            };
            let Ok(image) = Image::open(&opts.path, m.offset) else { return BTreeMap::new() };
            let Ok(meta) = Meta::parse(&image.header, &image.meta) else { return BTreeMap::new() };
            meta.fds().filter_map(|f| Some((f.fd, meta.string(f.path)?.to_vec()))).collect()
        });
        fds.get(&(fd as i32)).filter(|p| !p.is_empty()).cloned()
    }
}

/// The descriptors that tie the processes together, one line per open
/// file description: its descriptors (pid:fd); for a pipe the bytes that
/// were waiting in it; for a file its path, and whether several processes
/// share it (one offset: restart opens it once, for them all).
fn write_links(out: &mut dyn Write, job: &fmt::Job, members: &[Member], paths: &mut Paths) -> io::Result<()> {
    let links: Vec<fmt::Link> = (0..job.header.n_links as usize).map(|i| job.link(i)).collect();
    if links.is_empty() {
        return Ok(());
    }
    writeln!(out, "shared by the processes (open file descriptions):")?;
    let holders = holders(job);
    for (description, group) in grouped(&links, |l| l.description) {
        let fds: Vec<String> = group.iter().map(|o| format!("{}:{}", members[o.member as usize].pid, o.fd)).collect();
        write!(out, "  {description:<4} {}", fds.join(" "))?;
        let waiting: usize = group.iter().map(|o| o.data.len as usize).sum();
        let channel = group[0].channel;
        match group[0].kind {
            fmt::LINK_PIPE => write!(out, "  (pipe {channel}, {waiting} bytes waiting)")?,
            fmt::LINK_PIPE_ENDED => write!(out, "  (pipe {channel}, its writers gone, {waiting} bytes waiting)")?,
            fmt::LINK_SOCKET if channel != 0 => write!(out, "  (connected UNIX socket, pair {channel})")?,
            fmt::LINK_SOCKET => write!(out, "  (socket)")?,
            fmt::LINK_LISTEN => write!(out, "  (listening UNIX socket)")?,
            _ => {
                let path = paths.get(group[0].member, group[0].fd).map_or("a file".into(), |p| shell_quote(&p));
                match holders[&description] {
                    1 => write!(out, "  ({path}, this process's own)")?,
                    n => write!(out, "  ({path}, one offset for {n} processes)")?,
                }
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The memory mapped shared by several processes, one line per
/// object: its mappings (pid start-end).
fn write_shared(out: &mut dyn Write, job: &fmt::Job, members: &[Member]) -> io::Result<()> {
    let maps: Vec<fmt::SharedMap> = (0..job.header.n_shared as usize).map(|i| job.shared(i)).collect();
    if maps.is_empty() {
        return Ok(());
    }
    writeln!(out, "memory shared by the processes:")?;
    for (object, group) in grouped(&maps, |m| m.object) {
        let at: Vec<String> = group
            .iter()
            .map(|o| format!("{}:{:#x}-{:#x}+{:#x}", members[o.member as usize].pid, o.start, o.end, o.offset))
            .collect();
        writeln!(out, "  {object:<4} {}", at.join(" "))?;
    }
    Ok(())
}

/// The distinct keys of `items` in order of first appearance, each with
/// its items.
fn grouped<T, K: PartialEq + Copy>(items: &[T], key: impl Fn(&T) -> K) -> Vec<(K, Vec<&T>)> {
    let mut groups: Vec<(K, Vec<&T>)> = Vec::new();
    for item in items {
        match groups.iter_mut().find(|(k, _)| *k == key(item)) {
            Some((_, group)) => group.push(item),
            None => groups.push((key(item), vec![item])),
        }
    }
    groups
}

fn in_member(pid: u32, f: Failure) -> Failure {
    match f {
        Failure::Image(why) => Failure::Image(format!("process {pid}: {why}")),
        other => other,
    }
}
