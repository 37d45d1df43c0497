//! `credtrail-ship --follow ROOT`: a folder of captures in the fleet layout
//! (`ROOT/node=<node>/<capture>`, e.g. a recorder's `--cut-root`), watched
//! until SIGTERM or SIGINT: each capture is shipped once it is sealed, as
//! it appears. A capture being written (no manifest yet, or still
//! recording) waits for the next look; one that fails to ship is tried
//! again, [`TRIES`] times at most, then left with one error line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credtrail_core::capture::manifest::{CaptureState, MANIFEST_FILE, Manifest};
use credtrail_core::fs::Dir;

use crate::store::Remote;
use crate::upload::{Options, Report, ship};

/// Shipping attempts per capture.
const TRIES: u32 = 3;
/// Capture folders looked at per round at most: a root flooded with
/// folders costs bounded work per round (the rest wait for later rounds).
const MAX_PER_ROUND: usize = 10_000;

/// Whether `dir` is a root of captures rather than a capture.
pub fn is_root(dir: &Path) -> bool {
    !dir.join(MANIFEST_FILE).exists()
}

/// Watches `root` until `stop`; one line on `out` per capture shipped.
pub fn follow_root(
    root: &Path,
    remote: &Remote,
    opts: Options,
    every: Duration,
    stop: &AtomicBool,
    out: &mut dyn Write,
    line: impl Fn(&Path, &Report) -> String,
) -> anyhow::Result<()> {
    let top = Dir::open_root(root)?;
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    let mut failures: BTreeMap<PathBuf, u32> = BTreeMap::new();
    tracing::info!(
        "following {}: each sealed capture under it is shipped as it appears",
        root.display()
    );
    while !stop.load(Ordering::Relaxed) {
        for dir in captures(&top)? {
            if done.contains(&dir) || failures.get(&dir).is_some_and(|n| *n >= TRIES) {
                continue;
            }
            match Manifest::read_in(&Dir::open(&dir)?) {
                Ok(m) if m.state != CaptureState::Recording => {}
                // Being written: looked at again next round.
                _ => continue,
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
        let slept = Instant::now();
        while slept.elapsed() < every && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100).min(every));
        }
    }
    Ok(())
}

/// The capture folders under `top`: `node=*/NAME` (ours only: a folder
/// another user made, or open to others, is passed over).
fn captures(top: &Dir) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for node in top.names()? {
        if !node.starts_with("node=") {
            continue;
        }
        let Ok(folder) = top.subdir(&node) else {
            continue;
        };
        if !folder.is_private() {
            continue;
        }
        for name in folder.names()? {
            if found.len() >= MAX_PER_ROUND {
                return Ok(found);
            }
            if name.starts_with('.') {
                continue;
            }
            if let Ok(capture) = folder.subdir(&name)
                && capture.is_private()
                && capture.exists(MANIFEST_FILE)
            {
                found.push(capture.path().to_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}
