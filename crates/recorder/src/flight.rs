//! The flight recorder's outside: finding the capture a recorder is
//! writing, cutting its last minutes (`credtrail-record cut`, `kill -USR1`)
//! and reporting whether it runs (`credtrail-record status`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use credtrail_core::capture::control::{Pin, request_seal};
use credtrail_core::capture::cut::{CutReport, CutWindow, cut};
use credtrail_core::capture::manifest::{CaptureState, MANIFEST_FILE, Manifest, SigningKey};
use credtrail_core::error::CaptureError;
use credtrail_core::fs::Dir;

/// `dir` itself if it is a capture; else the newest capture under it (two
/// levels at most: `ROOT/node=N/CAPTURE`), preferring one still recording.
pub fn find_capture(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.join(MANIFEST_FILE).exists() {
        return Ok(dir.to_owned());
    }
    let mut found: Vec<(bool, u64, PathBuf)> = Vec::new();
    let mut folders = vec![(dir.to_owned(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot list {}", folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match Manifest::read(&path) {
                Ok(m) => found.push((m.state == CaptureState::Recording, m.start.ktime_ns, path)),
                Err(_) if depth < 1 => folders.push((path, depth + 1)),
                Err(_) => {}
            }
        }
    }
    found.sort();
    found.pop().map(|(_, _, p)| p).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no capture there, nor in the folders under it (pass the --out or --out-root folder of a recorder)",
            dir.display()
        )
    })
}

/// Whether a recorder holds the capture (its lock is taken).
fn recorder_running(root: &Dir) -> anyhow::Result<bool> {
    match root.lock() {
        Ok(_) => Ok(false),
        Err(CaptureError::Busy { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// `credtrail-record cut`: has the recorder seal its open segments, then
/// cuts the `last` window (everything kept, without it) into `incident`.
pub fn cut_running(
    running: &Path,
    incident: &Path,
    last: Option<Duration>,
    key: Option<&SigningKey>,
    timeout: Duration,
) -> anyhow::Result<(PathBuf, CutReport)> {
    let dir = find_capture(running)?;
    let root = Dir::open(&dir)?;
    let m = Manifest::read_in(&root)?;
    let end = match (m.state, &m.end) {
        (CaptureState::Recording, _) => {
            if !recorder_running(&root)? {
                anyhow::bail!(
                    "{}: its recorder is gone (state recording, nobody holds it); seal it with `credtrail-record recover {}`, then cut",
                    dir.display(),
                    dir.display()
                );
            }
            request_seal(&root, timeout)?
        }
        (_, Some(end)) => end.ktime_ns,
        (_, None) => m.start.ktime_ns,
    };
    let window = CutWindow {
        start_ktime_ns: last.map_or(0, |l| end.saturating_sub(l.as_nanos() as u64)),
        end_ktime_ns: end,
    };
    let report = cut(&dir, incident, window, key, None)?;
    Ok((dir, report))
}

/// One line on a finished cut.
pub fn cut_line(dir: &Path, incident: &Path, r: &CutReport) -> String {
    let m = &r.manifest;
    format!(
        "cut {} .. {} of {} into {}: {} events, {} lifecycle rows; {} segment(s) linked, {} copied, {} rewritten{}; chain head {}",
        m.start.time,
        m.end.as_ref().map_or("", |e| e.time.as_str()),
        dir.display(),
        incident.display(),
        m.counters.events_written,
        m.counters.lifecycle_written,
        r.linked,
        r.copied,
        r.rewritten,
        if r.clipped {
            "; the window's start had already been evicted"
        } else {
            ""
        },
        m.chain_head.as_deref().unwrap_or("-")
    )
}

/// A `kill -USR1` cut, made on a thread while the recorder goes on.
#[derive(Debug, Clone)]
pub struct SignalCut {
    pub root: PathBuf,
    pub last: Duration,
    pub node: String,
    pub key: Option<SigningKey>,
}

impl SignalCut {
    /// Starts the cut of `capture` up to `end_ktime_ns` (its open segments
    /// just sealed); `pin` was made before the recorder's next eviction.
    pub fn spawn(
        &self,
        capture: &Path,
        end_ktime_ns: u64,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let start = end_ktime_ns.saturating_sub(self.last.as_nanos() as u64);
        let pin = Pin::new(&Dir::open(capture)?, start)?;
        let node_folder = self
            .root
            .join(credtrail_core::capture::layout::node_folder(&self.node)?);
        credtrail_core::fs::mkdir_private(&self.root)?;
        credtrail_core::fs::mkdir_private(&node_folder)?;
        let incident = credtrail_core::capture::layout::capture_dir(
            &self.root,
            &self.node,
            chrono::Utc::now().timestamp(),
        )?;
        let (capture, key) = (capture.to_owned(), self.key.clone());
        let window = CutWindow {
            start_ktime_ns: start,
            end_ktime_ns,
        };
        Ok(std::thread::spawn(move || {
            match cut(&capture, &incident, window, key.as_ref(), Some(pin)) {
                Ok(r) => tracing::info!("{}", cut_line(&capture, &incident, &r)),
                Err(e) => tracing::error!("SIGUSR1 cut failed: {e}"),
            }
        }))
    }
}

/// `credtrail-record status`: what the recorder of `dir` is doing; an
/// error when none runs or its hooks are not attached.
pub fn status(dir: &Path) -> anyhow::Result<String> {
    let dir = find_capture(dir)?;
    let root = Dir::open(&dir)?;
    let m = Manifest::read_in(&root)?;
    let running = recorder_running(&root)?;
    let c = &m.counters;
    let missing = m
        .settings
        .get("missing_hooks")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len);
    let age = std::fs::metadata(dir.join(MANIFEST_FILE))
        .and_then(|md| md.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(String::from("?"), |d| format!("{} s", d.as_secs()));
    let text = format!(
        "{} {}: {:?}, node {}, since {}; {} hooks attached ({missing} optional missing); {} events written, {} lost (ringbuf_full {}), {} evicted; {} segments, {} bytes kept; manifest written {age} ago",
        if running {
            "recorder running on"
        } else {
            "no recorder on"
        },
        dir.display(),
        m.state,
        m.node_name,
        m.start.time,
        m.hooks.len(),
        c.events_written,
        c.lost(),
        c.ringbuf_full,
        c.events_evicted,
        m.segments.iter().filter(|s| !s.evicted).count(),
        m.kept_bytes(),
    );
    if !running || m.state != CaptureState::Recording || m.hooks.is_empty() {
        anyhow::bail!("not ready: {text}");
    }
    Ok(text)
}
