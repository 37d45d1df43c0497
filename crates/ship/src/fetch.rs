//! Captures under a prefix, brought to a local folder to be read as local
//! ones. Pruned before any segment is read: a capture whose `node=`
//! folder or manifest node is not the one asked for, or whose start..end
//! does not meet the time range, costs one listing entry (and one small
//! manifest for the time range), never its segments.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use credtrail_capture::file_location;
use credtrail_capture::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, SIGNATURE_FILE};

use crate::ShipError;
use crate::store::{FETCHES, Listed, Remote};

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
    /// What was not fetched because the bucket holds something other than
    /// the manifest lists (by size), one line each.
    pub problems: Vec<String>,
}

/// What [`fetch`] read.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub captures: usize,
    pub pruned: usize,
    pub objects_listed: usize,
    pub objects_fetched: usize,
    pub bytes: u64,
    /// Keys the fleet layout does not allow (passed over, never fetched).
    pub skipped_keys: Vec<String>,
}

/// A capture's files to fetch, with the size its manifest lists for each.
type Names = Vec<(String, u64)>;

/// The signature's size at most (ed25519: 64 bytes).
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// Whether `rel` names a capture's file in the fleet layout: every folder a
/// plain name (not empty, `.`, `..`, hidden or with a control or hidden
/// character), ending in `manifest.json`, its signature, or
/// `TABLE/part-N.parquet`. Returns (capture folder, file name in it).
fn layout_key(rel: &str) -> Option<(&str, &str)> {
    let plain = |c: &str| {
        !c.is_empty()
            && !c.starts_with('.')
            && !c
                .chars()
                .any(|ch| ch.is_control() || credtrail_cli::term::hidden(ch))
    };
    if !rel.split('/').all(plain) || object_store::path::Path::parse(rel).is_err() {
        return None;
    }
    let (folder, last) = match rel.rsplit_once('/') {
        Some((f, l)) => (f, l),
        None => ("", rel),
    };
    if last == MANIFEST_FILE || last == SIGNATURE_FILE {
        return Some((folder, last));
    }
    // TABLE/part-N.parquet under the capture folder.
    let (capture, table) = match folder.rsplit_once('/') {
        Some((c, t)) => (c, t),
        None => ("", folder),
    };
    let name = &rel[rel.len() - last.len() - table.len() - 1..];
    file_location(table, name).ok()?;
    Some((capture, name))
}

/// Fetches the captures under `remote` into `dest` (created 0700; files 0600).
///
/// Nothing is fetched whole into memory, nor beyond the size the listing
/// and the manifest agree on: manifests in batches of at most
/// [`BATCH_BYTES`] by their listed sizes (each at most
/// [`MAX_MANIFEST_BYTES`]), then each listed segment whose listed size is
/// the manifest's, streamed to disk with that size as a hard limit. Keys
/// the layout does not allow are passed over and named in
/// [`Stats::skipped_keys`].
pub fn fetch(
    remote: &Remote,
    dest: &Path,
    prune: &Prune,
) -> Result<(Vec<Fetched>, Stats), ShipError> {
    let listed = remote.list("")?;
    let mut run = Run::new(remote, dest, prune, &listed);
    let wanted = run.wanted();
    run.refuse_big_manifests(&wanted)?;
    run.make_private_dir(dest, true)?;
    // Manifests, a batch at a time, each to disk and parsed from there;
    // what is kept of each is the names it lists and their sizes.
    let staged = dest.join(".manifests");
    run.make_private_dir(&staged, false)?;
    let kept = run.fetch_manifests(&wanted, &staged)?;
    let (out, jobs) = run.place_captures(kept)?;
    let _ = std::fs::remove_dir(&staged);
    run.fetch_files(&jobs)?;
    Ok((out, run.stats))
}

/// The listing, read by the fleet layout.
struct Layout<'a> {
    listed: &'a [Listed],
    /// Key -> (listed size); only keys of the layout.
    sizes: HashMap<&'a str, u64>,
    /// The folder of every manifest listed, sorted.
    captures: Vec<&'a str>,
}

impl<'a> Layout<'a> {
    /// The layout of `listed`, and the keys it does not allow (as listed).
    fn of(listed: &'a [Listed]) -> (Self, Vec<String>) {
        let mut sizes = HashMap::new();
        let mut captures = Vec::new();
        let mut skipped = Vec::new();
        for o in listed {
            match layout_key(&o.rel) {
                Some((folder, MANIFEST_FILE)) => {
                    captures.push(folder);
                    sizes.insert(o.rel.as_str(), o.size);
                }
                Some(_) => {
                    sizes.insert(o.rel.as_str(), o.size);
                }
                None => skipped.push(o.rel.clone()),
            }
        }
        captures.sort_unstable();
        let layout = Layout {
            listed,
            sizes,
            captures,
        };
        (layout, skipped)
    }

    /// The listed size of the file `name` of the capture folder `rel`.
    fn size_of(&self, rel: &str, name: &str) -> Option<u64> {
        self.sizes.get(join(rel, name).as_str()).copied()
    }
}

/// A capture kept once its manifest is read.
struct Kept<'a> {
    rel: &'a str,
    /// Its manifest, staged until moved into the capture's folder.
    manifest: PathBuf,
    /// The names the manifest lists and their sizes.
    names: Names,
}

impl<'a> Kept<'a> {
    fn new(rel: &'a str, manifest: &Path, m: &Manifest) -> Self {
        Kept {
            rel,
            manifest: manifest.to_owned(),
            names: listed_names(m),
        }
    }
}

/// The files `m` lists (those not evicted) with their sizes, and its
/// signature with the most it may hold.
fn listed_names(m: &Manifest) -> Names {
    let mut v: Names = m
        .segments
        .iter()
        .filter(|s| !s.evicted)
        .map(|s| (s.file.clone(), s.bytes))
        .collect();
    v.push((SIGNATURE_FILE.to_owned(), MAX_SIGNATURE_BYTES));
    v
}

/// An object to fetch.
struct Job<'a> {
    /// The capture folder.
    rel: &'a str,
    /// Its local copy.
    local: PathBuf,
    /// The file's name in it.
    name: String,
    /// The size expected.
    size: u64,
}

/// One [`fetch`]: where from and to, what to leave, the listing, and what
/// was read so far.
struct Run<'a> {
    remote: &'a Remote,
    dest: &'a Path,
    prune: &'a Prune,
    layout: Layout<'a>,
    stats: Stats,
}

impl<'a> Run<'a> {
    fn new(remote: &'a Remote, dest: &'a Path, prune: &'a Prune, listed: &'a [Listed]) -> Self {
        let (layout, skipped_keys) = Layout::of(listed);
        let stats = Stats {
            objects_listed: listed.len(),
            skipped_keys,
            ..Stats::default()
        };
        Run {
            remote,
            dest,
            prune,
            layout,
            stats,
        }
    }

    /// The capture folders whose `node=` folder the prune keeps.
    fn wanted(&mut self) -> Vec<&'a str> {
        let mut wanted = Vec::new();
        for &rel in &self.layout.captures {
            if self.prune.keeps_folder(folder_node(rel)) {
                wanted.push(rel);
            } else {
                self.stats.pruned += 1;
            }
        }
        // Everything left out: the first capture is fetched all the same, so
        // that a query can answer with an empty table (it prunes it again and
        // reads only its columns).
        if wanted.is_empty()
            && let Some(first) = self.layout.captures.first()
        {
            wanted.push(*first);
        }
        wanted
    }

    /// A manifest larger than any reader accepts is not fetched at all.
    fn refuse_big_manifests(&self, wanted: &[&str]) -> Result<(), ShipError> {
        if let Some(big) = wanted
            .iter()
            .find(|rel| self.layout.size_of(rel, MANIFEST_FILE).unwrap_or(0) > MAX_MANIFEST_BYTES)
        {
            return Err(ShipError::Url {
                url: self.remote.url_of(&join(big, MANIFEST_FILE)),
                message: format!(
                    "larger than {MAX_MANIFEST_BYTES} bytes: not a manifest credtrail writes"
                ),
            });
        }
        Ok(())
    }

    /// [`make_dir`], an error naming the remote.
    fn make_private_dir(&self, dir: &Path, recursive: bool) -> Result<(), ShipError> {
        make_dir(dir, recursive).map_err(|message| ShipError::Url {
            url: self.remote.url().to_owned(),
            message,
        })
    }

    /// An error about the capture folder `rel`.
    fn capture_error(&self, rel: &str, message: String) -> ShipError {
        ShipError::Url {
            url: self.remote.url_of(rel),
            message,
        }
    }

    /// The local copy of the capture folder `rel`.
    fn local_dir(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.dest.to_owned()
        } else {
            self.dest.join(rel)
        }
    }

    /// Fetches the manifests of `wanted` into `staged`, a batch at a time,
    /// and reads each back: returns the captures the prune keeps (the first
    /// one read if it keeps none); the others' staged manifests are removed.
    fn fetch_manifests(
        &mut self,
        wanted: &[&'a str],
        staged: &Path,
    ) -> Result<Vec<Kept<'a>>, ShipError> {
        let mut kept = Vec::new();
        let mut first = None;
        let mut n = 0usize;
        for batch in batches(wanted, |rel| {
            self.layout.size_of(rel, MANIFEST_FILE).unwrap_or(0)
        }) {
            let jobs: Vec<(String, PathBuf, u64)> = batch
                .iter()
                .map(|rel| {
                    n += 1;
                    (
                        join(rel, MANIFEST_FILE),
                        staged.join(format!("{n}.json")),
                        MAX_MANIFEST_BYTES,
                    )
                })
                .collect();
            let got = self.remote.get_to_files(&jobs)?;
            for ((&rel, (_, path, _)), size) in batch.iter().zip(&jobs).zip(got) {
                let Some(size) = size else { continue };
                self.stats.objects_fetched += 1;
                self.stats.bytes += size;
                let m = self.read_manifest(rel, path)?;
                if self.prune.keeps(folder_node(rel), &m) {
                    kept.push(Kept::new(rel, path, &m));
                } else if first.is_none() {
                    first = Some(Kept::new(rel, path, &m));
                } else {
                    self.stats.pruned += 1;
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        match first {
            // As in `wanted`: one capture for its columns when nothing is kept.
            Some(f) if kept.is_empty() => kept.push(f),
            Some(Kept { manifest, .. }) => {
                self.stats.pruned += 1;
                let _ = std::fs::remove_file(manifest);
            }
            None => {}
        }
        Ok(kept)
    }

    /// Reads back and parses the manifest of `rel`, fetched to `path`.
    fn read_manifest(&self, rel: &str, path: &Path) -> Result<Manifest, ShipError> {
        let local = self.local_dir(rel);
        let text = credtrail_capture::fs::read_bounded(path, MAX_MANIFEST_BYTES).map_err(|e| {
            ShipError::Url {
                url: self.remote.url_of(&join(rel, MANIFEST_FILE)),
                message: format!("cannot read it back: {e}"),
            }
        })?;
        Ok(Manifest::parse(&local.join(MANIFEST_FILE), &text)?)
    }

    /// Places each kept capture (see [`Run::place_capture`]): returns them,
    /// and the objects to fetch.
    fn place_captures(
        &mut self,
        kept: Vec<Kept<'a>>,
    ) -> Result<(Vec<Fetched>, Vec<Job<'a>>), ShipError> {
        let mut out = Vec::new();
        let mut jobs = Vec::new();
        for capture in kept {
            out.push(self.place_capture(capture, &mut jobs)?);
        }
        Ok((out, jobs))
    }

    /// Makes the capture's local folder, moves its manifest into it, and
    /// queues in `jobs` the files to fetch (see [`Run::queue_files`]).
    fn place_capture(
        &mut self,
        capture: Kept<'a>,
        jobs: &mut Vec<Job<'a>>,
    ) -> Result<Fetched, ShipError> {
        let Kept {
            rel,
            manifest,
            mut names,
        } = capture;
        let local = self.local_dir(rel);
        make_dir(&local, true).map_err(|m| self.capture_error(rel, m))?;
        std::fs::rename(&manifest, local.join(MANIFEST_FILE)).map_err(|e| {
            self.capture_error(rel, format!("cannot move its manifest into place: {e}"))
        })?;
        if self.prune.everything {
            self.stand_in_for_unlisted(rel, &local, &names)?;
        }
        names.sort_unstable();
        names.dedup();
        let problems = self.queue_files(rel, &local, names, jobs)?;
        if !self.prune.everything
            && let Some(p) = problems.first()
        {
            // A query does not answer from a capture that is not what its
            // manifest says.
            return Err(ShipError::Integrity {
                url: self.remote.url_of(rel),
                message: p.clone(),
            });
        }
        self.stats.captures += 1;
        Ok(Fetched {
            dir: local,
            url: self.remote.url_of(rel),
            problems,
        })
    }

    /// --verify names what the manifest does not list: a file of that name
    /// stands for it (its bytes are not needed, and not trusted to be small).
    fn stand_in_for_unlisted(
        &self,
        rel: &str,
        local: &Path,
        names: &[(String, u64)],
    ) -> Result<(), ShipError> {
        let under = join(rel, "");
        for o in self.layout.listed {
            let Some(name) = o.rel.strip_prefix(&under) else {
                continue;
            };
            let listed_here = names.iter().any(|(n, _)| n == name);
            if name != MANIFEST_FILE
                && !listed_here
                && name.matches('/').count() <= 1
                && layout_key(&o.rel).is_some()
            {
                self.make_table_dir(rel, local, name)?;
                write_new(local, name, b"").map_err(|m| self.capture_error(rel, m))?;
            }
        }
        Ok(())
    }

    /// Queues in `jobs` each of `names` the bucket holds at the size the
    /// manifest says; returns a line for each it holds at another size.
    fn queue_files(
        &self,
        rel: &'a str,
        local: &Path,
        names: Names,
        jobs: &mut Vec<Job<'a>>,
    ) -> Result<Vec<String>, ShipError> {
        let mut problems = Vec::new();
        for (name, expected) in names {
            let Some(there) = self.layout.size_of(rel, &name) else {
                // Listed by the manifest, not in the bucket: left missing,
                // readers say which.
                continue;
            };
            let exact = name != SIGNATURE_FILE;
            if (exact && there != expected) || there > expected {
                problems.push(format!(
                    "{}: {there} bytes in the bucket, the manifest says {}: altered or truncated; not fetched",
                    self.remote.url_of(&join(rel, &name)),
                    if exact {
                        expected.to_string()
                    } else {
                        format!("at most {expected}")
                    }
                ));
                continue;
            }
            self.make_table_dir(rel, local, &name)?;
            jobs.push(Job {
                rel,
                local: local.to_owned(),
                name,
                size: there,
            });
        }
        Ok(problems)
    }

    /// Makes the folder of `name`'s table (`TABLE/part-N.parquet`) in
    /// `local`, if it is in one.
    fn make_table_dir(&self, rel: &str, local: &Path, name: &str) -> Result<(), ShipError> {
        if let Some((table, _)) = name.split_once('/') {
            make_dir(&local.join(table), false).map_err(|m| self.capture_error(rel, m))?;
        }
        Ok(())
    }

    /// Fetches `jobs` in batches of at most FETCHES objects and BATCH_BYTES
    /// (by their listed sizes), each streamed to disk.
    fn fetch_files(&mut self, jobs: &[Job]) -> Result<(), ShipError> {
        for batch in batches(jobs, |job| job.size) {
            let files: Vec<(String, PathBuf, u64)> = batch
                .iter()
                .map(|job| {
                    (
                        join(job.rel, &job.name),
                        job.local.join(&job.name),
                        job.size,
                    )
                })
                .collect();
            for size in self.remote.get_to_files(&files)?.into_iter().flatten() {
                // A listed object missing is left missing: readers then say
                // which one (`--verify` among its problems).
                self.stats.objects_fetched += 1;
                self.stats.bytes += size;
            }
        }
        Ok(())
    }
}

/// `items` in batches of at most [`FETCHES`] and [`BATCH_BYTES`] by
/// `size_of` (a larger item alone).
fn batches<T>(items: &[T], size_of: impl Fn(&T) -> u64) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        let size = size_of(item);
        if i > start && (i - start == FETCHES || bytes.saturating_add(size) > BATCH_BYTES) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(size);
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
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
