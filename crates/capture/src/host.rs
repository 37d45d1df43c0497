//! Facts about the recording host: names, boot id and clocks.

use std::ffi::CStr;

/// Nanoseconds of a clock.
pub fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer we pass.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(
        rc, 0,
        "CLOCK_REALTIME and CLOCK_BOOTTIME always exist on Linux"
    );
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME) as u64
}

/// CLOCK_REALTIME − CLOCK_BOOTTIME, from the tightest of several samples, so
/// that `ktime_ns + offset` is the wall clock of a kernel timestamp.
pub fn realtime_offset_ns() -> i64 {
    let mut best: Option<(i64, i64)> = None; // (window, offset)
    for _ in 0..9 {
        let b0 = clock_ns(libc::CLOCK_BOOTTIME);
        let r = clock_ns(libc::CLOCK_REALTIME);
        let b1 = clock_ns(libc::CLOCK_BOOTTIME);
        let window = b1 - b0;
        let offset = r - (b0 + window / 2);
        if best.is_none_or(|(w, _)| window < w) {
            best = Some((window, offset));
        }
    }
    best.expect("sampled at least once").1
}

/// (nodename, kernel release) from uname(2).
pub fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let s = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (s(&u.nodename), s(&u.release))
}

/// The host's namespaces, which a policy's `host_ns` names: those of pid 1
/// (recorded in the capture's manifest as `host_pid_ns` and
/// `host_user_ns`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostNamespaces {
    pub pid: u32,
    pub user: u32,
}

/// The host's pid and user namespaces (those of pid 1), which a policy's
/// `host_ns` names. Where pid 1's are not readable (a sandbox that hides
/// it), the recorder's own: it runs in the host's (hostPID on Kubernetes).
/// 0 where /proc says nothing.
pub fn namespaces() -> HostNamespaces {
    use std::os::unix::fs::MetadataExt as _;
    let inode = |ns: &str| {
        ["/proc/1/ns", "/proc/self/ns"]
            .iter()
            .find_map(|dir| {
                let path = format!("{dir}/{ns}");
                if let Ok(m) = std::fs::metadata(&path) {
                    return Some(m.ino() as u32);
                }
                // `pid:[4026531836]`
                let link = std::fs::read_link(&path).ok()?;
                let link = link.to_string_lossy();
                link.split_once('[')?.1.strip_suffix(']')?.parse().ok()
            })
            .unwrap_or(0)
    };
    HostNamespaces {
        pid: inode("pid"),
        user: inode("user"),
    }
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`
/// field 22): with the boot id, what tells a process from a later one that
/// reuses its pid.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count after its end.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(19)?.parse().ok()
}

/// RFC 3339 UTC with nanoseconds, as Tetragon prints times.
pub fn rfc3339_ns(unix_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
