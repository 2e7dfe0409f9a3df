//! A job image: several processes checkpointed together (`ckpt --tree`).
//!
//! ```text
//! offset 0             JobHeader (JOB_HEADER_SIZE bytes)
//! JOB_HEADER_SIZE      Member[n_members], Link[n_links], SharedMap[n_shared], then the job's strings
//!                      (command lines, the bytes waiting in pipes between members)
//! page aligned         member 0's process image (a whole image as the single-process
//!                      format has it, its offsets relative to its own start), then
//!                      member 1's at the next page boundary, ...
//! file_len             end of file
//! ```
//!
//! Member 0 is the root (the process `ckpt` started); the others follow in
//! the order the barrier found them (every parent before its children). A
//! member that had exited and was not yet waited for (a zombie) has no
//! process image: only its pid, its parent and its wait status. A job of one
//! process is written as a plain process image, without this wrapper.

use core::mem::size_of;

use crate::{bytes_of, checksum, page_up, read_at, Pod, StrRef, PAGE_SIZE};

pub const JOB_MAGIC: [u8; 8] = *b"CKPTJOB\0";
pub const JOB_VERSION: u32 = 1;
/// Most members a job image may hold.
pub const MAX_MEMBERS: u32 = 1024;
/// Most links a job image may hold.
pub const MAX_LINKS: u32 = 1 << 16;
/// Most bytes of a job's string table.
pub const MAX_JOB_STRINGS: u64 = 64 << 20;

/// The fixed-size header at offset 0 of a job image.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub n_members: u32,
    pub n_links: u32,
    pub n_shared: u32,
    /// Wall-clock time the checkpoint was taken, nanoseconds since the epoch.
    pub created_ns: u64,
    /// Bytes of the string table after the member table.
    pub strings_len: u64,
    pub file_len: u64,
    /// xxh3 of the member table and the string table.
    pub table_checksum: u64,
    /// xxh3 of this header with this field zero.
    pub header_checksum: u64,
}
// SAFETY: repr(C), integers and arrays of them, no padding (layout.rs).
unsafe impl Pod for JobHeader {}

pub const JOB_HEADER_SIZE: usize = size_of::<JobHeader>();

/// A running member: its process image is in the file.
pub const MEMBER_RUNNING: u32 = 0;
/// A zombie: exited, not yet waited for by its parent; no process image.
pub const MEMBER_ZOMBIE: u32 = 1;

/// One process of the job.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub pid: u32,
    /// Its parent (for the root: its parent outside the job).
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// `MEMBER_RUNNING` or `MEMBER_ZOMBIE`.
    pub state: u32,
    /// A zombie's wait status (as `wait` would return it); 0 otherwise.
    pub wait_status: u32,
    /// Where its process image starts (page aligned) and its length; 0, 0
    /// for a zombie.
    pub offset: u64,
    pub len: u64,
    /// Its command line (NUL separated) in the job's string table.
    pub command: StrRef,
}
// SAFETY: repr(C), integers only, no padding (layout.rs).
unsafe impl Pod for Member {}

/// A descriptor that ties members together: one of an open file
/// description that descriptors of several members share (inherited
/// across fork: one offset, one set of flags), or an end of a pipe or of a
/// connected UNIX socket between members. Each member's own process image
/// describes the descriptor as it would alone (a pipe to another process
/// as lost).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Index of the member in the member table, and its descriptor.
    pub member: u32,
    pub fd: u32,
    /// The open file description: links with the same number share one
    /// (numbered from 1 in the order of the table).
    pub description: u32,
    /// A pipe, or a pair of connected UNIX sockets: 1 + its number, the
    /// same for both ends; 0 for anything else.
    pub channel: u32,
    /// `LINK_FILE`, `LINK_PIPE`, `LINK_SOCKET`, `LINK_PIPE_ENDED` or
    /// `LINK_LISTEN`.
    pub kind: u32,
    /// The description's flags (`O_ACCMODE`, `O_NONBLOCK`...).
    pub flags: u32,
    /// On a pipe's first read end: the bytes that were waiting in it; on
    /// a socket's first descriptor: its `events::SocketState` and the
    /// messages waiting on it (as a process image holds them).
    pub data: StrRef,
}

/// A shared memory mapping (`MAP_SHARED` anonymous memory, a `/dev/shm`
/// object, a shared file mapping) that several members map: the same
/// pages, which each member's process image also stores as its own.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedMap {
    /// Index of the member in the member table.
    pub member: u32,
    /// The object: the same number for every mapping of it.
    pub object: u32,
    pub start: u64,
    pub end: u64,
    /// Offset of `start` in the object.
    pub offset: u64,
}
// SAFETY: repr(C), integers only, no padding (layout.rs).
unsafe impl Pod for SharedMap {}

/// A link to anything but a pipe or a socket (a file, a terminal...).
pub const LINK_FILE: u32 = 0;
pub const LINK_PIPE: u32 = 1;
pub const LINK_SOCKET: u32 = 2;
/// A read end of a pipe whose write ends are all closed (its writer has
/// exited): what waits in it, then the end of file.
pub const LINK_PIPE_ENDED: u32 = 3;
/// A listening UNIX socket: `data` holds its type (u32) and the address it
/// is bound to (`struct sockaddr_un`, as `getsockname` gave it).
pub const LINK_LISTEN: u32 = 4;
// SAFETY: repr(C), integers only, no padding (layout.rs).
unsafe impl Pod for Link {}

/// What is wrong with a job image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobError {
    NotAJob,
    Version,
    Truncated,
    HeaderChecksum,
    TableChecksum,
    TooMany,
    BadMember,
    BadLink,
}

impl JobError {
    pub fn message(self) -> &'static str {
        match self {
            JobError::NotAJob => "not a job image",
            JobError::Version => "a job image of another format version",
            JobError::Truncated => "the job image is truncated",
            JobError::HeaderChecksum => "the job header's checksum does not match (corrupt job image)",
            JobError::TableChecksum => "the job's member table checksum does not match (corrupt job image)",
            JobError::TooMany => "the job image has more members than it may",
            JobError::BadMember => "a member of the job image lies outside the file or overlaps another",
            JobError::BadLink => "a link of the job image names no member or lies outside its strings",
        }
    }
}

/// Whether `bytes` (the start of a file) begin like a job image.
pub fn is_job(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..8] == JOB_MAGIC
}

impl JobHeader {
    pub fn new(n_members: u32, n_links: u32, n_shared: u32, strings_len: u64) -> JobHeader {
        JobHeader {
            magic: JOB_MAGIC,
            version: JOB_VERSION,
            n_members,
            n_links,
            n_shared,
            strings_len,
            ..JobHeader::default()
        }
    }

    fn links_offset(&self) -> usize {
        self.n_members as usize * size_of::<Member>()
    }

    fn shared_offset(&self) -> usize {
        self.links_offset() + self.n_links as usize * size_of::<Link>()
    }

    fn strings_offset(&self) -> usize {
        self.shared_offset() + self.n_shared as usize * size_of::<SharedMap>()
    }

    /// Bytes of the member table, the links and the strings.
    pub fn table_len(&self) -> u64 {
        self.strings_offset() as u64 + self.strings_len
    }

    /// Where the first member's image may start.
    pub fn members_offset(&self) -> u64 {
        page_up(JOB_HEADER_SIZE as u64 + self.table_len())
    }

    pub fn compute_checksum(&self) -> u64 {
        let mut h = *self;
        h.header_checksum = 0;
        checksum(bytes_of(&h))
    }

    /// Checks the header alone (`bytes`: the start of the file).
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<JobHeader, JobError> {
        if !is_job(bytes) {
            return Err(JobError::NotAJob);
        }
        let h: JobHeader = read_at(bytes, 0).ok_or(JobError::Truncated)?;
        if h.version != JOB_VERSION {
            return Err(JobError::Version);
        }
        if h.compute_checksum() != h.header_checksum {
            return Err(JobError::HeaderChecksum);
        }
        if h.n_members == 0
            || h.n_members > MAX_MEMBERS
            || h.n_links > MAX_LINKS
            || h.n_shared > MAX_LINKS
            || h.strings_len > MAX_JOB_STRINGS
        {
            return Err(JobError::TooMany);
        }
        if file_len < h.file_len || h.file_len < h.members_offset() {
            return Err(JobError::Truncated);
        }
        Ok(h)
    }
}

/// A validated member table.
pub struct Job<'a> {
    pub header: JobHeader,
    table: &'a [u8],
}

impl<'a> Job<'a> {
    /// Checks the table (`table`: the `table_len()` bytes after the header)
    /// against the header: its checksum, every member image inside the file,
    /// page aligned, after the tables and in order without overlap, every
    /// command inside the strings.
    pub fn parse(header: JobHeader, table: &'a [u8]) -> Result<Job<'a>, JobError> {
        if table.len() as u64 != header.table_len() {
            return Err(JobError::Truncated);
        }
        if checksum(table) != header.table_checksum {
            return Err(JobError::TableChecksum);
        }
        let job = Job { header, table };
        let mut next = header.members_offset();
        for i in 0..header.n_members as usize {
            let m = job.member(i);
            let command_end = m.command.offset as u64 + m.command.len as u64;
            if command_end > header.strings_len {
                return Err(JobError::BadMember);
            }
            match m.state {
                MEMBER_ZOMBIE if m.offset == 0 && m.len == 0 => continue,
                MEMBER_RUNNING => {}
                _ => return Err(JobError::BadMember),
            }
            let end = m.offset.checked_add(m.len).ok_or(JobError::BadMember)?;
            if !m.offset.is_multiple_of(PAGE_SIZE) || m.offset < next || m.len == 0 || end > header.file_len {
                return Err(JobError::BadMember);
            }
            next = page_up(end);
        }
        if job.member(0).state != MEMBER_RUNNING {
            return Err(JobError::BadMember);
        }
        for i in 0..header.n_links as usize {
            let l = job.link(i);
            let data_end = l.data.offset as u64 + l.data.len as u64;
            if l.member >= header.n_members
                || l.description == 0
                || l.kind > LINK_LISTEN
                || data_end > header.strings_len
            {
                return Err(JobError::BadLink);
            }
        }
        for i in 0..header.n_shared as usize {
            let m = job.shared(i);
            if m.member >= header.n_members || m.object == 0 || m.start >= m.end {
                return Err(JobError::BadLink);
            }
        }
        Ok(job)
    }

    pub fn len(&self) -> usize {
        self.header.n_members as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Member `i` (`i < len()`).
    pub fn member(&self, i: usize) -> Member {
        read_at(self.table, i).unwrap_or_default()
    }

    /// Link `i` (`i < header.n_links`).
    pub fn link(&self, i: usize) -> Link {
        read_at(&self.table[self.header.links_offset()..], i).unwrap_or_default()
    }

    /// Shared mapping `i` (`i < header.n_shared`).
    pub fn shared(&self, i: usize) -> SharedMap {
        read_at(&self.table[self.header.shared_offset()..], i).unwrap_or_default()
    }

    /// A string of the job's table (a command line, a pipe's bytes).
    pub fn string(&self, s: StrRef) -> &'a [u8] {
        let strings = &self.table[self.header.strings_offset()..];
        let start = s.offset as usize;
        strings.get(start..start + s.len as usize).unwrap_or(&[])
    }

    /// The command line of `m` (NUL separated).
    pub fn command(&self, m: &Member) -> &'a [u8] {
        self.string(m.command)
    }
}
