//! Captures under a prefix, brought to a local folder to be read as local
//! ones. Pruned before any segment is read: a capture whose `node=`
//! folder or manifest node is not the one asked for, or whose start..end
//! does not meet the time range, costs one listing entry (and one small
//! manifest for the time range), never its segments.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use credtrail_core::capture::file_location;
use credtrail_core::capture::manifest::{
    MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, SIGNATURE_FILE,
};

use crate::ShipError;
use crate::store::{FETCHES, Remote};

/// Bytes fetched into memory at once (a larger object is fetched alone).
const BATCH_BYTES: u64 = 256 << 20;

/// What to leave in object storage.
#[derive(Debug, Clone, Default)]
pub struct Prune {
    pub node: Option<String>,
    /// Wall-clock ns: captures that ended before this are not fetched.
    pub since_ns: Option<i64>,
    /// Wall-clock ns: captures that started after this are not fetched.
    pub until_ns: Option<i64>,
    /// Fetch every object under a capture's folder, listed or not (for
    /// `--verify`, which reports files the manifest does not list).
    pub everything: bool,
}

impl Prune {
    /// Whether a capture in a `node=<folder_node>` folder may be kept,
    /// before its manifest is read.
    pub fn keeps_folder(&self, folder_node: Option<&str>) -> bool {
        match (&self.node, folder_node) {
            (Some(want), Some(n)) => want == n,
            _ => true,
        }
    }

    /// Whether the capture may hold rows the filters keep: its node, and its
    /// start..end (a capture still recording has no end) against the range.
    pub fn keeps(&self, folder_node: Option<&str>, m: &Manifest) -> bool {
        let wall = |k: u64| k as i64 + m.realtime_offset_ns;
        let ends = m.end.as_ref().map_or(i64::MAX, |e| wall(e.ktime_ns));
        self.keeps_folder(folder_node)
            && self.node.as_ref().is_none_or(|n| *n == m.node_name)
            && self.since_ns.is_none_or(|s| ends >= s)
            && self.until_ns.is_none_or(|u| wall(m.start.ktime_ns) <= u)
    }
}

/// One capture fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub dir: PathBuf,
    pub url: String,
}

/// What [`fetch`] read.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub captures: usize,
    pub pruned: usize,
    pub objects_listed: usize,
    pub objects_fetched: usize,
    pub bytes: u64,
}

/// Fetches the captures under `remote` into `dest` (created 0700; files 0600).
pub fn fetch(
    remote: &Remote,
    dest: &Path,
    prune: &Prune,
) -> Result<(Vec<Fetched>, Stats), ShipError> {
    let listed = remote.list("")?;
    let mut stats = Stats {
        objects_listed: listed.len(),
        ..Stats::default()
    };
    let mut captures: Vec<&str> = listed
        .iter()
        .filter_map(|o| match o.rel.rsplit_once('/') {
            Some((dir, MANIFEST_FILE)) => Some(dir),
            None if o.rel == MANIFEST_FILE => Some(""),
            _ => None,
        })
        .collect();
    captures.sort_unstable();
    // Manifests first, all at once: they decide what else is read.
    let mut wanted = Vec::new();
    for &rel in &captures {
        let bad = |message: String| ShipError::Url {
            url: remote.url_of(rel),
            message,
        };
        if rel
            .split('/')
            .any(|c| c == "." || c == ".." || c.starts_with('.'))
            || (!rel.is_empty() && rel.split('/').any(str::is_empty))
        {
            return Err(bad(
                "a folder name no capture has; refusing to fetch it".into()
            ));
        }
        if prune.keeps_folder(folder_node(rel)) {
            wanted.push(rel);
        } else {
            stats.pruned += 1;
        }
    }
    // Everything left out: the first capture is fetched all the same, so
    // that a query can answer with an empty table (it prunes it again and
    // reads only its columns).
    if wanted.is_empty()
        && let Some(first) = captures.first()
    {
        wanted.push(first);
    }
    let sizes: std::collections::HashMap<&str, u64> =
        listed.iter().map(|o| (o.rel.as_str(), o.size)).collect();
    let size_of = |rel: &str, name: &str| sizes.get(join(rel, name).as_str()).copied().unwrap_or(0);
    // A manifest larger than any reader accepts is not fetched at all.
    if let Some(big) = wanted
        .iter()
        .find(|rel| size_of(rel, MANIFEST_FILE) > MAX_MANIFEST_BYTES)
    {
        return Err(ShipError::Url {
            url: remote.url_of(&join(big, MANIFEST_FILE)),
            message: format!(
                "larger than {MAX_MANIFEST_BYTES} bytes: not a manifest credtrail writes"
            ),
        });
    }
    let manifests = remote.get_many(
        &wanted
            .iter()
            .map(|rel| join(rel, MANIFEST_FILE))
            .collect::<Vec<_>>(),
    )?;
    let mut kept = Vec::new();
    let mut first = None;
    for (rel, text) in wanted.into_iter().zip(manifests) {
        let Some(text) = text else {
            continue;
        };
        let local = if rel.is_empty() {
            dest.to_owned()
        } else {
            dest.join(rel)
        };
        let m = Manifest::parse(&local.join(MANIFEST_FILE), &text)?;
        if prune.keeps(folder_node(rel), &m) {
            kept.push((rel, local, text, m));
        } else if first.is_none() {
            first = Some((rel, local, text, m));
        } else {
            stats.pruned += 1;
        }
    }
    match first {
        // As above: one capture for its columns when nothing is kept.
        Some(f) if kept.is_empty() => kept.push(f),
        Some(_) => stats.pruned += 1,
        None => {}
    }
    let mut out = Vec::new();
    // (capture folder, its local copy, file name) of every object to fetch.
    let mut jobs: Vec<(&str, PathBuf, String)> = Vec::new();
    for (rel, local, text, m) in kept {
        let bad = |message: String| ShipError::Url {
            url: remote.url_of(rel),
            message,
        };
        make_dir(&local, true).map_err(&bad)?;
        let mut names: Vec<String> = if prune.everything {
            let under = join(rel, "");
            listed
                .iter()
                .filter_map(|o| o.rel.strip_prefix(&under))
                .filter(|n| *n != MANIFEST_FILE && n.matches('/').count() <= 1)
                .map(str::to_owned)
                .collect()
        } else {
            let mut n: Vec<String> = m
                .segments
                .iter()
                .filter(|s| !s.evicted)
                .map(|s| s.file.clone())
                .collect();
            n.push(SIGNATURE_FILE.to_owned());
            n
        };
        names.sort_unstable();
        names.dedup();
        write_new(&local, MANIFEST_FILE, &text).map_err(&bad)?;
        stats.objects_fetched += 1;
        stats.bytes += text.len() as u64;
        // Only names a capture has: table/part-N.parquet as checked for
        // manifest records, or the signature.
        for name in names {
            let plain = name == SIGNATURE_FILE
                || name
                    .split_once('/')
                    .is_some_and(|(t, _)| file_location(t, &name).is_ok());
            if plain {
                if let Some((table, _)) = name.split_once('/') {
                    make_dir(&local.join(table), false).map_err(&bad)?;
                }
                jobs.push((rel, local.clone(), name));
            }
        }
        stats.captures += 1;
        out.push(Fetched {
            dir: local,
            url: remote.url_of(rel),
        });
    }
    // In batches of at most FETCHES objects and BATCH_BYTES (by their
    // listed sizes), so that memory holds a batch, not the fleet.
    let mut batches: Vec<&[(&str, PathBuf, String)]> = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, (rel, _, name)) in jobs.iter().enumerate() {
        let size = size_of(rel, name);
        if i > start && (i - start == FETCHES || bytes + size > BATCH_BYTES) {
            batches.push(&jobs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    batches.push(&jobs[start..]);
    for batch in batches {
        let keys: Vec<String> = batch.iter().map(|(rel, _, n)| join(rel, n)).collect();
        for ((rel, local, name), bytes) in batch.iter().zip(remote.get_many(&keys)?) {
            // A listed object missing is left missing: readers then say
            // which one (`--verify` among its problems).
            let Some(bytes) = bytes else {
                continue;
            };
            write_new(local, name, &bytes).map_err(|message| ShipError::Url {
                url: remote.url_of(rel),
                message,
            })?;
            stats.objects_fetched += 1;
            stats.bytes += bytes.len() as u64;
        }
    }
    Ok((out, stats))
}

fn folder_node(rel: &str) -> Option<&str> {
    rel.split('/').find_map(|c| c.strip_prefix("node="))
}

/// Creates a private folder (0700); `recursive` for its parents too.
fn make_dir(dir: &Path, recursive: bool) -> Result<(), String> {
    match std::fs::DirBuilder::new()
        .recursive(recursive)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// Writes a new file (0600), never over an existing one.
fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Capture arguments with the remote ones (`s3://…`) fetched into a
/// private temporary folder, removed when this is dropped.
#[derive(Debug)]
pub struct Localized {
    /// Local paths: the arguments as given, or the fetched captures.
    pub paths: Vec<PathBuf>,
    /// Each fetched capture's folder and URL, to name it in answers.
    pub urls: Vec<(PathBuf, String)>,
    /// One line per remote argument: what was read and what was pruned.
    pub notes: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Localized {
    /// The URL a fetched capture folder came from.
    pub fn url_of(&self, dir: &Path) -> Option<&str> {
        self.urls
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, u)| u.as_str())
    }

    /// `text` with fetched folders named by their URLs.
    pub fn rename(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for (d, u) in &self.urls {
            t = t.replace(&d.display().to_string(), u);
        }
        t
    }
}

/// Fetches every `s3://` argument (see [`fetch`]); others are kept as they are.
pub fn localize(
    args: &[PathBuf],
    endpoint: Option<&str>,
    prune: &Prune,
) -> Result<Localized, ShipError> {
    let mut out = Localized {
        paths: Vec::new(),
        urls: Vec::new(),
        notes: Vec::new(),
        _tmp: None,
    };
    for (i, arg) in args.iter().enumerate() {
        let Some(url) = arg.to_str().filter(|a| crate::store::is_remote(a)) else {
            out.paths.push(arg.clone());
            continue;
        };
        let remote = Remote::open(url, endpoint)?;
        if out._tmp.is_none() {
            out._tmp = Some(
                tempfile::Builder::new()
                    .prefix("credtrail-fetch-")
                    .tempdir()
                    .map_err(|e| ShipError::Url {
                        url: url.to_owned(),
                        message: format!("cannot make a temporary folder to fetch into: {e}"),
                    })?,
            );
        }
        let dest = out
            ._tmp
            .as_ref()
            .expect("made above")
            .path()
            .join(i.to_string());
        let (fetched, stats) = fetch(&remote, &dest, prune)?;
        if fetched.is_empty() {
            return Err(ShipError::Url {
                url: url.to_owned(),
                message: format!(
                    "no credtrail capture there ({} objects listed, {} captures left out by --node/--since/--until)",
                    stats.objects_listed, stats.pruned
                ),
            });
        }
        out.notes.push(format!(
            "{url}: read {} captures ({} objects, {} bytes); {} left out by --node/--since/--until without reading their segments",
            stats.captures, stats.objects_fetched, stats.bytes, stats.pruned
        ));
        for f in fetched {
            out.paths.push(f.dir.clone());
            out.urls.push((f.dir, f.url));
        }
    }
    Ok(out)
}
