//! Test helpers shared by credtrail's test binaries: the built binaries,
//! the real recorder started and stopped, workload storms, podman with a
//! busybox image, fixtures, sample rows, and checks of a whole capture.

mod podman;
pub mod samples;
mod servers;

pub use podman::{IMAGE, podman, podman_container, podman_ready, podman_run_argv};

pub use servers::{MotoS3, Prometheus, free_port, http_get, sample};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credtrail_capture::model::{Event, ProcEvent, ProcessRow};
use credtrail_capture::{Capture, TABLES};

/// `credtrail-record`, as [`bin`] finds it.
pub fn record_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| bin("credtrail-record"))
}

/// `credtrail-workload`, as [`bin`] finds it.
pub fn workload_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| bin("credtrail-workload"))
}

/// `credtrail-ship`, as [`bin`] finds it.
pub fn ship_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| bin("credtrail-ship"))
}

/// `credtrail-replay`, as [`bin`] finds it.
pub fn replay_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| bin("credtrail-replay"))
}

/// `credtrail-query`, as [`bin`] finds it.
pub fn query_bin() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| bin("credtrail-query"))
}

/// The workspace this testkit was compiled from: the code under test.
pub fn workspace_root() -> &'static Path {
    // As Cargo spells it in dep-info files: crates/testkit's grandparent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit is two levels below the workspace root")
}

/// A workspace binary beside the test executable (`target/debug/NAME` for
/// `target/debug/deps/it-HASH`), built from the code under test. Cargo
/// builds a package's binaries for its own integration tests only, so the
/// test command builds them all first (`cargo build --workspace --bins`,
/// scripts/test). A binary that is missing, or older than a source file
/// Cargo says it was built from (its `NAME.d`), or built from another
/// checkout, fails the test with one line: never a fallback to whatever
/// an earlier build left in the target directory.
pub fn bin(name: &str) -> String {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/PROFILE/deps");
    let path = dir.join(name);
    if let Err(why) = check_fresh(&path, workspace_root()) {
        panic!(
            "{name}: {why}: build every binary from this checkout first with `cargo build --workspace --bins` (scripts/test does)"
        );
    }
    path.to_string_lossy().into_owned()
}

/// Whether `bin` was built from the sources under `root` as they are now,
/// by Cargo's own list of what it was built from (`bin.d`, a make rule).
pub fn check_fresh(bin: &Path, root: &Path) -> Result<(), String> {
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{} is not built ({e})", bin.display()))?;
    let dep_file = bin.with_extension("d");
    let rule = std::fs::read_to_string(&dep_file)
        .map_err(|e| format!("{} is missing ({e})", dep_file.display()))?;
    let target_dir = bin.parent().and_then(Path::parent).unwrap_or(bin);
    let sources = make_rule_sources(&rule)
        .ok_or_else(|| format!("{} is not a make rule", dep_file.display()))?;
    let mut from_root = 0;
    for src in &sources {
        let src = Path::new(src);
        if src.starts_with(root) {
            from_root += 1;
        } else if !src.starts_with(target_dir) {
            return Err(format!(
                "{} was built from {}, not from this checkout ({})",
                bin.display(),
                src.display(),
                root.display()
            ));
        }
        let changed = std::fs::metadata(src)
            .and_then(|m| m.modified())
            .map_err(|e| {
                format!(
                    "{} was built from {}, now gone ({e})",
                    bin.display(),
                    src.display()
                )
            })?;
        if changed > built {
            return Err(format!(
                "{} is older than {}, a source it is built from",
                bin.display(),
                src.display()
            ));
        }
    }
    if from_root == 0 {
        return Err(format!(
            "{} names no source under {}",
            dep_file.display(),
            root.display()
        ));
    }
    Ok(())
}

/// The prerequisites of a make rule `target: a b\ c`, unescaped.
fn make_rule_sources(rule: &str) -> Option<Vec<String>> {
    let first = rule.lines().next()?;
    let (_, deps) = first.split_once(": ")?;
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ' ' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Some(out)
}

/// `bin` where every user can run it, for tests that drop privileges: the
/// binary itself when every folder above it lets others through, else a
/// copy (a hard link when it can) in a world-readable folder of the temp
/// dir, removed when the test process exits. A checkout under /root (mode
/// 0700), the usual place on a root-only machine, needs the copy.
pub fn shared_bin(bin: &str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static COPIES: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
    let copies = copies.get_or_insert_with(HashMap::new);
    if let Some(p) = copies.get(bin) {
        return p;
    }
    let path = Path::new(bin);
    let shared: &'static str = if others_can_run(path) {
        Box::leak(bin.to_owned().into_boxed_str())
    } else {
        let dir = DIR.get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let d = tempfile::Builder::new()
                .prefix("credtrail-test-bins.")
                .tempdir()
                .expect("a temp dir for shared binaries")
                .keep();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
            extern "C" fn remove() {
                if let Some(d) = DIR.get() {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            // SAFETY: registers a plain function to run at exit.
            unsafe { libc::atexit(remove) };
            d
        });
        let to = dir.join(path.file_name().expect("a binary's file name"));
        if std::fs::hard_link(path, &to).is_err() {
            std::fs::copy(path, &to).expect("copy a binary where other users can run it");
        }
        Box::leak(to.to_string_lossy().into_owned().into_boxed_str())
    };
    copies.insert(bin.to_owned(), shared);
    shared
}

/// Whether a user other than the owner can reach and run `path` by the
/// folders it names (a symlinked folder counts as what it points to).
fn others_can_run(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(path) = std::path::absolute(path) else {
        return false;
    };
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
    mode(&path) & 0o005 == 0o005 && path.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0)
}

/// Every listed segment matches its size, checksum and row count, the chain
/// holds, every table is listed, and nothing open or unlisted is left.
pub fn assert_whole(dir: &Path) -> Capture {
    let cap = Capture::open(dir).unwrap();
    let m = &cap.manifest;
    assert!(m.check_chain().is_empty(), "{:?}", m.check_chain());
    for seg in m.segments.iter().filter(|s| !s.evicted) {
        cap.check_segment(seg).unwrap();
    }
    let events: Vec<Event> = cap.read().unwrap();
    assert_eq!(
        events.len() as u64,
        m.counters.events_written - m.counters.events_evicted
    );
    cap.read::<ProcEvent>().unwrap();
    cap.read::<ProcessRow>().unwrap();
    for table in TABLES {
        assert!(m.segments_of(table).next().is_some(), "{table} not listed");
        for e in std::fs::read_dir(dir.join(table)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let rel = format!("{table}/{name}");
            assert!(
                m.segments.iter().any(|s| s.file == rel) || name.ends_with(".discarded"),
                "left over: {rel}"
            );
        }
    }
    cap
}

/// `credtrail-workload storm`: `threads` threads toggling their euid for
/// `seconds`, each at `rate` calls/s (0: as fast as it can).
pub fn storm(threads: u32, seconds: u32, rate: u32) -> Command {
    let mut c = Command::new(workload_bin());
    c.args(["storm", "--threads", &threads.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--rate", &rate.to_string()]);
    c
}

/// Root tests run one at a time: each asserts on everything the kernel
/// reported while it ran, so a concurrent test's calls would interfere.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether root BPF tests can run here; panics under CI when they cannot.
pub fn bpf_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    let why = match (root, btf) {
        (true, true) => return true,
        (false, _) => "not running as root",
        (true, false) => "the kernel has no BTF (/sys/kernel/btf/vmlinux)",
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("root eBPF test cannot run under CI: {why}");
    }
    eprintln!("SKIPPED root eBPF test: {why} (run as root: sudo scripts/test)");
    false
}

pub struct Recorder {
    pub child: Child,
    pub dir: PathBuf,
    pub stdout: std::thread::JoinHandle<String>,
    pub stderr: std::thread::JoinHandle<String>,
    pub _tmp: tempfile::TempDir,
    /// `stop` fails on any unexplained change unless this is set: every
    /// root test is also a test of the detector's false positives.
    pub expect_unexplained: bool,
}

/// The sealed captures under a fleet-layout root (`ROOT/node=*/NAME`),
/// oldest name first; hidden folders (a cut being made) left out.
pub fn sealed_captures(root: &Path) -> Vec<PathBuf> {
    use credtrail_capture::manifest::{CaptureState, Manifest};
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|n| std::fs::read_dir(n.path()).into_iter().flatten().flatten())
        .filter(|c| !c.file_name().to_string_lossy().starts_with('.'))
        .map(|c| c.path())
        .filter(|c| Manifest::read(c).is_ok_and(|m| m.state == CaptureState::Sealed))
        .collect();
    found.sort();
    found
}

/// No credential change in `cap` went unexplained: the detector's false
/// positives, checked by every recording a test makes.
pub fn assert_no_unexplained(cap: &Capture) {
    assert_no_unexplained_logged(cap, "");
}

/// [`assert_no_unexplained`], naming the recorder's warnings about them
/// (which outlive rows evicted by a disk budget).
fn assert_no_unexplained_logged(cap: &Capture, stderr: &str) {
    let found: Vec<_> = cap
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.syscall == "unexplained")
        .collect();
    assert!(
        found.is_empty() && cap.manifest.counters.unexplained == 0,
        "unexplained credential changes in a run that makes none: {found:#?}; counters {:?}; recorder: {}",
        cap.manifest.counters,
        stderr
            .lines()
            .filter(|l| l.contains("unexplained credential change"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Reads a pipe to the end on a thread, so the recorder never blocks on it.
fn slurp(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        s
    })
}

impl Recorder {
    /// Starts `credtrail-record` into a new capture (printing JSON live if
    /// `print`) and waits until its hooks are attached: the manifest is
    /// written only after attach.
    pub fn start(print: bool, extra: &[&str]) -> Recorder {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("capture");
        let mut cmd = Command::new(record_bin());
        cmd.arg("--out").arg(&dir).args(extra);
        if print {
            cmd.args(["--print", "json"]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn credtrail-record");
        let stdout = slurp(child.stdout.take().unwrap());
        let stderr = slurp(child.stderr.take().unwrap());
        let mut rec = Recorder {
            child,
            dir,
            stdout,
            stderr,
            _tmp: tmp,
            expect_unexplained: false,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !rec.dir.join("manifest.json").exists() {
            if let Some(status) = rec.child.try_wait().unwrap() {
                let err = rec.stderr.join().unwrap();
                panic!("credtrail-record exited early ({status}): {err}");
            }
            assert!(
                Instant::now() < deadline,
                "recorder did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Fully set up once it has dropped its capabilities (after the
        // /proc snapshot): its own capset calls are then behind it.
        let status = format!("/proc/{}/status", rec.child.id());
        while std::fs::read_to_string(&status)
            .is_ok_and(|s| !s.contains("CapEff:\t0000000000000004"))
        {
            assert!(
                Instant::now() < deadline,
                "recorder did not drop its capabilities within 60 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        rec
    }

    /// SIGINT, wait, and return (live stdout, stderr, capture, the temp dir
    /// guard that keeps the capture on disk).
    pub fn stop(mut self) -> (String, String, Capture, tempfile::TempDir) {
        // SAFETY: kill with a valid pid and signal.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        let stdout = self.stdout.join().unwrap();
        let stderr = self.stderr.join().unwrap();
        assert!(status.success(), "recorder failed: {stderr}");
        let cap = Capture::open(&self.dir).unwrap();
        if !self.expect_unexplained {
            assert_no_unexplained_logged(&cap, &stderr);
        }
        (stdout, stderr, cap, self._tmp)
    }
}

/// A setuid-root copy of the workload (`ct-suid` in a world-readable
/// temporary directory, kept while the guard lives): exec'd by another
/// user, its exec changes credentials.
pub fn setuid_workload() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let suid = dir.path().join("ct-suid");
    std::fs::copy(workload_bin(), &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    (dir, suid)
}

/// The command line that runs `cmd` as a rootless user would: as uid and
/// gid 1000 without groups (util-linux `setpriv`), in a new user namespace
/// that maps that user to root (util-linux `unshare --map-root-user`).
pub fn rootless_userns_argv<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "unshare",
        "--user",
        "--map-root-user",
    ];
    // The rootless user must be able to reach the program.
    argv.extend(
        cmd.first()
            .map(|p| if p.contains('/') { shared_bin(p) } else { p }),
    );
    argv.extend_from_slice(cmd.get(1..).unwrap_or_default());
    argv
}

/// A fixture capture of `fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// A capture whose recorder died with an open, checkpointed events segment.
pub fn crashed_capture(root: &Path) -> PathBuf {
    use credtrail_capture::{CaptureWriter, FLUSH_INTERVAL, Rotation};
    let src = credtrail_capture::Capture::open(&fixture("su-like")).unwrap();
    let dir = root.join("crashed");
    let mut w = CaptureWriter::create(&dir, src.manifest.clone(), Rotation::default()).unwrap();
    for e in src.events().unwrap() {
        w.push(&e).unwrap();
    }
    std::thread::sleep(FLUSH_INTERVAL);
    w.tick().unwrap();
    drop(w); // the crash
    assert!(dir.join("events/part-00000.parquet.open.ckpt").exists());
    dir
}

/// A private copy of a fixture to damage.
pub fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_fixture_to(name, &dir);
    (tmp, dir)
}

/// Copies a fixture to `to`.
pub fn copy_fixture_to(name: &str, to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    copy(&fixture(name), to);
}

/// Rewrites `dir/manifest.json` through `f`, as an attacker or a damaged
/// disk would (the hash chain is not recomputed).
pub fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut v = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for e in dir {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n != ".gitkeep") {
                v.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v
}

/// Replays the fuzzers' seeds and every input that once crashed a parser
/// (`fuzz/regressions/TARGET/`, filled by `scripts/fuzz`), and prefixes of
/// each: none may panic.
pub fn replay_fuzz_inputs(target: &str, f: fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no seeds for {target}");
    for (name, bytes) in all {
        // Every prefix too: truncated input is the commonest hostile case.
        for cut in [
            bytes.len(),
            bytes.len() / 2,
            bytes.len().saturating_sub(1),
            0,
        ] {
            let r = std::panic::catch_unwind(|| f(&bytes[..cut]));
            assert!(r.is_ok(), "{target} panicked on {name} cut at {cut}");
        }
    }
}

/// Runs a Python script with DuckDB (installed by scripts/setup) and
/// returns what it printed.
pub fn duckdb(script: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd` to the end inside a memory cgroup limited to `bytes` (cgroup
/// v1's memory controller, as this machine has it; root only), and returns
/// its output: a reader that needs more is killed by the kernel (a signal
/// in its status), one that stays within returns. Also returns the cgroup's
/// peak usage (page cache included). Without the controller, or not root,
/// the command runs unlimited and the peak is 0.
pub fn output_in_memory_cgroup(cmd: &mut Command, bytes: u64) -> (std::process::Output, u64) {
    use std::os::unix::process::CommandExt;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = Path::new("/sys/fs/cgroup/memory");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !base.join("cgroup.procs").exists() {
        return (cmd.output().expect("run"), 0);
    }
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cg = base.join(format!("credtrail-test-{}-{n}", std::process::id()));
    std::fs::create_dir(&cg).expect("a memory cgroup");
    // No swap here: the memory limit is the limit.
    std::fs::write(cg.join("memory.limit_in_bytes"), bytes.to_string()).unwrap();
    let procs = std::ffi::CString::new(cg.join("cgroup.procs").to_str().unwrap()).unwrap();
    // SAFETY: only open/write/close between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let out = cmd.output().expect("run");
    let peak = std::fs::read_to_string(cg.join("memory.max_usage_in_bytes"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let _ = std::fs::remove_dir(&cg);
    (out, peak)
}

/// Failed cleanly: exit status 1 (not a signal, not a panic's 101) and one
/// error line naming the program (`NAME: error: …`, or the memory budget's
/// `NAME: stopped: …`); returns that line.
#[track_caller]
pub fn one_error_line(o: &std::process::Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        (o.status.code(), o.status.signal()),
        (Some(1), None),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": error: ") || l.contains(": stopped: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}
