//! Words and numbers for what an image holds, shared by the text and the
//! JSON output: sizes, times, signal and limit names, file flags, region
//! permissions, the state of an event descriptor.

use ckpt_image::{xstate, Fd, FdKind, Meta, Region, RegionKind, NLIMITS, NSIG};
use ckpt_image::{PROT_EXEC, PROT_READ, PROT_WRITE, REGION_SHARED};

/// glibc's REG_* indices into `uc_mcontext.gregs`.
pub const REG_RSP: usize = 15;
pub const REG_RIP: usize = 16;
pub const REG_EFL: usize = 17;

/// A NUL padded name (`comm`) without its padding.
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
}

/// "12.0K", "1.5M": a size for a human (powers of 1024).
pub fn human(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64;
    for unit in ["K", "M", "G", "T"] {
        v /= 1024.0;
        if v < 1024.0 || unit == "T" {
            return format!("{v:.1}{unit}");
        }
    }
    unreachable!()
}

pub fn duration(ns: u64) -> String {
    match ns {
        0..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.3} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

/// ISO 8601 UTC time, to the millisecond, of nanoseconds since the epoch.
pub fn iso8601(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let ms = ns / 1_000_000 % 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", t / 3600, t / 60 % 60, t % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// Names of the XSAVE feature groups in `xfeatures`.
pub fn xfeature_names(xfeatures: u64) -> Vec<&'static str> {
    xstate::names(xfeatures).collect()
}

/// "0x3 (x87 SSE)".
pub fn xfeature_set(xfeatures: u64) -> String {
    format!("{xfeatures:#x} ({})", xfeature_names(xfeatures).join(" "))
}

/// "SIGINT", "SIGRTMIN+2", "signal 32".
pub fn signal_name(sig: usize) -> String {
    ckpt_image::signals::Name(sig as i32).to_string()
}

/// The signals of a set (bit n-1 for signal n): "SIGUSR1 SIGTERM", or "none".
pub fn signal_set(set: u64) -> String {
    let names: Vec<String> = (1..NSIG).filter(|&sig| set & 1 << (sig - 1) != 0).map(signal_name).collect();
    match names.is_empty() {
        true => "none".into(),
        false => names.join(" "),
    }
}

/// Names of the resource limits, in RLIMIT_* order (Linux, x86-64).
pub const RLIMIT_NAMES: [&str; NLIMITS] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

/// Names of the interval timers, in ITIMER_* order.
pub const ITIMER_NAMES: [&str; 3] = ["real", "virtual", "prof"];

/// Nanoseconds as exact seconds: "1.5", "0.000000001", "10".
pub fn seconds(ns: u64) -> String {
    let s = format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A resource limit: the number, or "unlimited" (`RLIM_INFINITY`).
pub fn limit(v: u64) -> String {
    match v {
        u64::MAX => "unlimited".into(),
        v => v.to_string(),
    }
}

pub fn fd_kind_name(f: &Fd) -> &'static str {
    f.kind().map_or("?", FdKind::name)
}

/// The access mode of an open file description: "rdonly", "wronly", "rdwr".
pub fn fd_access(f: &Fd) -> &'static str {
    match f.flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "rdonly",
        libc::O_WRONLY => "wronly",
        libc::O_RDWR => "rdwr",
        _ => "?",
    }
}

pub fn fd_append(f: &Fd) -> bool {
    f.flags as i32 & libc::O_APPEND != 0
}

pub fn fd_nonblock(f: &Fd) -> bool {
    f.flags as i32 & libc::O_NONBLOCK != 0
}

pub fn fd_cloexec(f: &Fd) -> bool {
    f.fd_flags as i32 & libc::FD_CLOEXEC != 0
}

/// "wronly,append,nonblock,cloexec": the access mode and the flags that
/// matter to the program (other `F_GETFL` bits are in the JSON).
pub fn fd_flags(f: &Fd) -> String {
    let mut words = vec![fd_access(f)];
    let own = f.fd_flags & ckpt_image::FD_NOT_INHERITED != 0;
    for (set, word) in
        [(fd_append(f), "append"), (fd_nonblock(f), "nonblock"), (fd_cloexec(f), "cloexec"), (own, "not-inherited")]
    {
        if set {
            words.push(word);
        }
    }
    words.join(",")
}

/// `rwxp` / `rwxs` as in /proc/PID/maps.
pub fn perms(r: &Region) -> String {
    let bit = |set: bool, c: char| if set { c } else { '-' };
    let (p, f) = (r.prot, r.flags);
    [(p & PROT_READ, 'r'), (p & PROT_WRITE, 'w'), (p & PROT_EXEC, 'x')]
        .iter()
        .map(|&(b, c)| bit(b != 0, c))
        .chain([if f & REGION_SHARED != 0 { 's' } else { 'p' }])
        .collect()
}

pub fn kind_name(r: &Region) -> &'static str {
    r.kind().map_or("?", RegionKind::name)
}

/// A byte string for a terminal, escaped as restart's messages escape it
/// (`ckpt_sys::msg::escape`): control characters and bytes that are not
/// UTF-8 as `\\xNN`.
pub fn show(bytes: &[u8]) -> String {
    let mut s = Vec::new();
    ckpt_sys::msg::escape(bytes, |piece| s.extend_from_slice(piece));
    String::from_utf8(s).expect("escape leaves only UTF-8")
}

/// One argument, quoted for a POSIX shell only when it needs it.
pub fn shell_quote(arg: &[u8]) -> String {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(b);
    if !arg.is_empty() && arg.iter().all(plain) {
        return String::from_utf8_lossy(arg).into_owned();
    }
    match std::str::from_utf8(arg) {
        Ok(s) if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', r"'\''")),
        // Control characters or invalid UTF-8: bash's $'...' with escapes.
        _ => {
            let mut s = String::from("$'");
            for &b in arg {
                match b {
                    b'\'' | b'\\' => s.extend(['\\', b as char]),
                    0x20..=0x7e => s.push(b as char),
                    _ => s.push_str(&format!("\\x{b:02x}")),
                }
            }
            s + "'"
        }
    }
}

/// What an event descriptor or an in-process socket held, or the locks
/// held through a file, in words.
pub fn event_state(m: &Meta, f: &Fd, kind: FdKind) -> Option<String> {
    use ckpt_image::events::{
        record, socket_messages, EpollTarget, EventFdState, FileLock, InotifyWatch, SignalFdState, TimerFdState,
        LOCK_FLOCK, LOCK_OFD,
    };
    let data = m.string(f.data)?;
    let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    Some(match kind {
        FdKind::EventFd => {
            let s: EventFdState = record(data, 0)?;
            format!("counter {}{}", s.count, if s.semaphore != 0 { ", semaphore" } else { "" })
        }
        FdKind::TimerFd => {
            let s: TimerFdState = record(data, 0)?;
            let armed = if s.value_ns == 0 && s.interval_ns == 0 {
                "disarmed".to_string()
            } else {
                format!("{} left, every {}", secs(s.value_ns), secs(s.interval_ns))
            };
            let abs = if s.settime_flags & 1 != 0 { ", absolute" } else { "" };
            format!("clock {}{abs}, {armed}, {} pending", s.clockid, s.ticks)
        }
        FdKind::SignalFd => format!("mask {:#x}", record::<SignalFdState>(data, 0)?.mask),
        FdKind::Epoll => {
            let n = data.len() / core::mem::size_of::<EpollTarget>();
            let list: Vec<String> = (0..n)
                .filter_map(|i| record::<EpollTarget>(data, i))
                .map(|t| format!("{}:{:#x}", t.tfd, t.events))
                .collect();
            format!("{n} registrations: {}", list.join(" "))
        }
        FdKind::File if !data.is_empty() => {
            let n = data.len() / core::mem::size_of::<FileLock>();
            let list: Vec<String> = (0..n)
                .filter_map(|i| record::<FileLock>(data, i))
                .map(|l| {
                    let kind = match l.kind {
                        LOCK_FLOCK => "flock",
                        LOCK_OFD => "ofd",
                        _ => "record",
                    };
                    let mode = if l.write != 0 { "write" } else { "read" };
                    match l.len {
                        0 => format!("{kind} {mode} {}-EOF", l.start),
                        n => format!("{kind} {mode} {}-{}", l.start, l.start + n - 1),
                    }
                })
                .collect();
            format!("locks: {}", list.join(", "))
        }
        FdKind::Memfd => {
            let s: ckpt_image::events::MemfdState = record(data, 0)?;
            format!("{} bytes, seals {:#x}", s.size, s.seals)
        }
        FdKind::Inotify => {
            let n = data.len() / core::mem::size_of::<InotifyWatch>();
            let list: Vec<String> = (0..n)
                .filter_map(|i| record::<InotifyWatch>(data, i))
                .map(|w| format!("{}:{}", w.wd, show(m.string(w.path).unwrap_or_default())))
                .collect();
            format!("{n} watches: {}", list.join(" "))
        }
        FdKind::Socket => {
            let (s, msgs) = socket_messages(data)?;
            let bytes: usize = msgs.map(|m| m.len()).sum();
            format!("type {}, {} messages, {bytes} bytes waiting, peer inode {}", s.sock_type, s.n_msgs, f.pipe)
        }
        _ => return None,
    })
}
