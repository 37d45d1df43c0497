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

/// How log lines look on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per message.
    #[default]
    Human,
    /// One JSON object per line (timestamp, level, fields with the
    /// message, target), for Fluent Bit, Vector or Loki.
    Json,
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Logs to stderr (never raw escapes); `RUST_LOG` overrides `default`.
fn init_logging(default: &str, format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Log lines carry names from processes and captures: no raw escapes
    // (and so no colours of our own either).
    let fmt = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(filter);
    match format {
        LogFormat::Human => fmt
            .with_writer(|| crate::term::SafeWriter(std::io::stderr()))
            .init(),
        LogFormat::Json => fmt
            .json()
            .with_writer(|| crate::term::JsonSafeWriter(std::io::stderr()))
            .init(),
    }
}

/// A binary's closing line on stderr (`credtrail-record: sealed ...`): as
/// it is, or, under `--log-format json`, as a log record like the others.
pub fn say(program: &str, line: &str) {
    match LOG_FORMAT.get() {
        // As the log records are, but past RUST_LOG's filter: the closing
        // line is always there, as in text.
        Some(LogFormat::Json) => {
            use std::io::Write as _;
            let record = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "fields": { "message": line, "program": program },
                "target": program,
            });
            let _ = writeln!(crate::term::JsonSafeWriter(std::io::stderr()), "{record}");
        }
        _ => eprintln!("{program}: {}", crate::term::safe(line)),
    }
}

/// The `main` of every credtrail binary: logs to stderr at `log_level`
/// (`RUST_LOG` wins), runs `run` with panics turned into errors, treats a
/// closed stdout (`| head`) as success, and prints any other error as one
/// line, exit status 1.
pub fn main(
    program: &str,
    log_level: &str,
    run: impl FnOnce() -> anyhow::Result<std::process::ExitCode>,
) -> std::process::ExitCode {
    main_logged(program, log_level, LogFormat::Human, run)
}

/// [`main`] with the log lines in `format`; under JSON the error line is a
/// log record too.
pub fn main_logged(
    program: &str,
    log_level: &str,
    format: LogFormat,
    run: impl FnOnce() -> anyhow::Result<std::process::ExitCode>,
) -> std::process::ExitCode {
    init_logging(log_level, format);
    match run_guarded(run) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) if format == LogFormat::Json => {
            // The encoder escapes the text; the record carries the program.
            tracing::error!(program, "{}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{}", error_line(program, &e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The one line a binary prints for an error, made safe for a terminal.
fn error_line(program: &str, e: &anyhow::Error) -> String {
    format!("{program}: error: {}", crate::term::safe(&error_text(e)))
}

/// An error's message and each cause it does not already say (errors that
/// name their cause also chain it).
fn error_text(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// True when the error comes from writing to a closed pipe: `| head` having
/// read enough is not a failure of the tool writing.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs a binary's `run`, turning a panic (a dependency's decoder failing on
/// a crafted or damaged file) into one error line instead of a backtrace.
/// The panic's own message is logged at debug level (`RUST_LOG=debug`).
pub fn run_guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        tracing::debug!("panic: {msg}");
        if let Ok(mut last) = LAST.lock() {
            last.get_or_insert(msg);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.unwrap_or_else(|_| {
        let msg = LAST
            .lock()
            .ok()
            .and_then(|mut l| l.take())
            .unwrap_or_default()
            .replace('\n', " ");
        Err(anyhow::anyhow!(
            "internal failure ({msg}); if it was reading a capture, check that with `credtrail-replay --verify`"
        ))
    })
}
