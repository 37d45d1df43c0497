//! The flight recorder's outside: finding the capture a recorder is
//! writing, cutting its last minutes (`credtrail-record cut`, `kill -USR1`)
//! and reporting whether it runs (`credtrail-record status`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use credtrail_capture::control::{Pin, request_seal};
use credtrail_capture::cut::{CutReport, CutWindow, cut};
use credtrail_capture::folder::recorder_pid;
use credtrail_capture::fs::Dir;
use credtrail_capture::manifest::{CaptureState, MANIFEST_FILE, Manifest, SigningKey};

/// `dir` itself if it is a capture; else the newest capture under it (two
/// levels at most: `ROOT/node=N/CAPTURE`), preferring one whose recorder is
/// proved alive, then one still recording. Folders below `dir` that are not
/// ours and closed to others are passed over (another user's fake is not a
/// capture of ours), and said so on stderr.
pub fn find_capture(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.join(MANIFEST_FILE).exists() {
        return Ok(dir.to_owned());
    }
    let mut found: Vec<(bool, bool, u64, PathBuf)> = Vec::new();
    let mut skipped = Vec::new();
    let top = Dir::open(dir)?;
    let mut folders = vec![(top, 0)];
    while let Some((folder, depth)) = folders.pop() {
        for name in folder.names()? {
            // A symlink or a file is no capture folder.
            let Ok(sub) = folder.subdir(&name) else {
                continue;
            };
            if !sub.is_private() {
                skipped.push(sub.path().display().to_string());
                continue;
            }
            match Manifest::read_in(&sub) {
                Ok(m) => found.push((
                    recorder_pid(&sub).is_some(),
                    m.state == CaptureState::Recording,
                    m.start.ktime_ns,
                    sub.path().to_owned(),
                )),
                Err(_) if depth < 1 => folders.push((sub, depth + 1)),
                Err(_) => {}
            }
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(
            "passed over {} folder(s) not owned by uid {} or open to others: {}",
            skipped.len(),
            credtrail_capture::fs::euid(),
            skipped.join(", ")
        );
    }
    found.sort();
    found.pop().map(|(.., p)| p).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no capture there, nor in the folders under it (pass the --out or --out-root folder of a recorder)",
            dir.display()
        )
    })
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
            if recorder_pid(&root).is_none() {
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

/// Where the recorder's own cuts go (`kill -USR1`, `--cut-on`), made on a
/// thread while the recorder goes on.
#[derive(Debug, Clone)]
pub struct CutPlan {
    pub root: PathBuf,
    pub node: String,
    pub key: Option<SigningKey>,
}

impl CutPlan {
    /// Starts the cut of `window` of `capture` (its open segments just
    /// sealed); `pin` holds the window's segments from before the
    /// recorder's next eviction. `done` hears how it went. The cut is made
    /// in a hidden folder and renamed into place once whole (manifest and
    /// signature), so a follower (`credtrail-ship --follow`) never takes a
    /// cut half made.
    pub fn spawn(
        &self,
        capture: &Path,
        window: CutWindow,
        pin: Pin,
        done: impl FnOnce(Result<(PathBuf, CutReport), String>) + Send + 'static,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        // Refused if someone else made them.
        Dir::open_root(&self.root)?
            .private_subdir(&credtrail_capture::layout::node_folder(&self.node)?)?;
        let incident = credtrail_capture::layout::capture_dir(
            &self.root,
            &self.node,
            chrono::Utc::now().timestamp(),
        )?;
        let name = incident
            .file_name()
            .and_then(|n| n.to_str())
            .context("a cut folder's name")?;
        let partial = incident.with_file_name(format!(".{name}.partial"));
        // Both made now: the next cut started this second takes the next
        // name, and the cut fills an empty folder.
        for dir in [&incident, &partial] {
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
                .create(dir)
                .with_context(|| format!("cannot make {}", dir.display()))?;
        }
        let (capture, key) = (capture.to_owned(), self.key.clone());
        Ok(std::thread::spawn(move || {
            let made = cut(&capture, &partial, window, key.as_ref(), Some(pin))
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    // Onto the empty folder that held the name.
                    std::fs::rename(&partial, &incident)
                        .map(|()| (incident.clone(), r))
                        .map_err(|e| {
                            format!(
                                "cannot rename {} to {}: {e}",
                                partial.display(),
                                incident.display()
                            )
                        })
                });
            if made.is_err() {
                let _ = std::fs::remove_dir(&incident);
            }
            done(made)
        }))
    }

    /// The cuts this node's folder under the root holds now (hidden
    /// folders, cuts being made, count too).
    pub fn cuts_held(&self) -> usize {
        let folder = credtrail_capture::layout::node_folder(&self.node).map(|n| self.root.join(n));
        folder
            .ok()
            .and_then(|f| std::fs::read_dir(f).ok())
            .map_or(0, |entries| entries.count())
    }
}

/// `credtrail-record status`: what the recorder of `dir` is doing; an
/// error when none runs or its hooks are not attached.
pub fn status(dir: &Path) -> anyhow::Result<String> {
    let dir = find_capture(dir)?;
    let root = Dir::open(&dir)?;
    let m = Manifest::read_in(&root)?;
    let pid = recorder_pid(&root);
    let running = pid.is_some();
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
        match pid {
            Some(pid) => format!("recorder (pid {pid}) running on"),
            None => "no recorder on".to_owned(),
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
