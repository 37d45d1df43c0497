//! `credtrail-ship --follow ROOT`: a folder of captures in the fleet layout
//! (`ROOT/node=<node>/<capture>`, e.g. a recorder's `--cut-root`), watched
//! until SIGTERM or SIGINT: each capture is shipped once it is sealed, as
//! it appears. A capture being written (a hidden folder, no manifest yet,
//! or still recording) waits for the next look; one that fails to ship is
//! tried again, [`TRIES`] times at most, then left with one error line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credtrail_capture::fs::Dir;
use credtrail_capture::manifest::{CaptureState, MANIFEST_FILE, Manifest};

use crate::store::Remote;
use crate::upload::{Options, Report, ship};

/// Shipping attempts per capture.
const TRIES: u32 = 3;
/// Captures shipped per round at most (the rest wait for later rounds).
const MAX_PER_ROUND: usize = 10_000;

/// Whether `dir` is a root of captures rather than a capture.
pub fn is_root(dir: &Path) -> bool {
    !dir.join(MANIFEST_FILE).exists()
}

/// Watches `root` until `stop`; one line on `out` per capture shipped.
/// A root that does not exist yet (no cut made so far) is waited for,
/// not made: the recorder makes it, owned by its own user.
pub fn follow_root(
    root: &Path,
    remote: &Remote,
    opts: Options,
    every: Duration,
    stop: &AtomicBool,
    out: &mut dyn Write,
    line: impl Fn(&Path, &Report) -> String,
) -> anyhow::Result<()> {
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    let mut failures: BTreeMap<PathBuf, u32> = BTreeMap::new();
    tracing::info!(
        "following {}: each sealed capture under it is shipped as it appears",
        root.display()
    );
    if !root.exists() {
        tracing::warn!(
            "{} does not exist yet; waiting for it (a recorder's --cut-root appears with its first cut)",
            root.display()
        );
    }
    while !stop.load(Ordering::Relaxed) {
        // Not there (yet): nothing to ship this round.
        let found = match Dir::open(root) {
            Ok(top) => captures(&top, |d| {
                !done.contains(d) && failures.get(d).is_none_or(|n| *n < TRIES)
            }),
            Err(_) => Vec::new(),
        };
        for dir in found {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // Gone since listed, being written, or still recording: looked
            // at again next round.
            let sealed = Dir::open(&dir)
                .and_then(|d| Manifest::read_in(&d))
                .is_ok_and(|m| m.state != CaptureState::Recording);
            if !sealed {
                continue;
            }
            match ship(
                &dir,
                remote,
                Options {
                    follow: None,
                    ..opts
                },
            ) {
                Ok(r) => {
                    writeln!(out, "{}", line(&dir, &r))?;
                    out.flush()?;
                    done.insert(dir);
                }
                Err(e) => {
                    let n = failures.entry(dir.clone()).or_default();
                    *n += 1;
                    if *n >= TRIES {
                        tracing::error!("{e}; tried {TRIES} times, left unshipped");
                    } else {
                        tracing::warn!("{e}; trying again");
                    }
                }
            }
        }
        // Folders removed since (--remove-local, retention) are forgotten.
        done.retain(|d| d.exists());
        failures.retain(|d, _| d.exists());
        let slept = Instant::now();
        while slept.elapsed() < every && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100).min(every));
        }
    }
    Ok(())
}

/// The capture folders under `top` that `wanted` picks: `node=*/NAME`
/// (ours only: a folder another user made, or open to others, is passed
/// over; hidden ones are being made), at most [`MAX_PER_ROUND`], oldest
/// names first.
fn captures(top: &Dir, wanted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for node in top.names().unwrap_or_default() {
        if !node.starts_with("node=") {
            continue;
        }
        let Ok(folder) = top.subdir(&node) else {
            continue;
        };
        if !folder.is_private() {
            continue;
        }
        // A folder removed while listed is no error: it is simply not there.
        let Ok(names) = folder.names() else {
            continue;
        };
        for name in names {
            if found.len() >= MAX_PER_ROUND {
                return found;
            }
            if name.starts_with('.') {
                continue;
            }
            if let Ok(capture) = folder.subdir(&name)
                && capture.is_private()
                && capture.exists(MANIFEST_FILE)
                && wanted(capture.path())
            {
                found.push(capture.path().to_owned());
            }
        }
    }
    found
}
