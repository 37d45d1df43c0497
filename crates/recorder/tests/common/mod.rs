//! Helpers shared by the root eBPF test binaries.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credtrail_recorder::capture::Capture;

pub const RECORD: &str = env!("CARGO_BIN_EXE_credtrail-record");
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_credtrail-workload");

/// `credtrail-workload storm`: `threads` threads toggling their euid for
/// `seconds`, each at `rate` calls/s (0: as fast as it can).
pub fn storm(threads: u32, seconds: u32, rate: u32) -> Command {
    let mut c = Command::new(WORKLOAD);
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
        let mut cmd = Command::new(RECORD);
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
        (stdout, stderr, cap, self._tmp)
    }
}
