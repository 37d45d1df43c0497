//! Writing a capture: the writer of all five tables, rotation, the disk
//! budget, sealing, and stopping cleanly after a write error.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{checkpoint_name, live_checkpoint_name};
use crate::control::{answer_seal, oldest_pin, pending_seal};
use crate::durable::{Job, Syncer};
use crate::error::CaptureError;
use crate::fs::{self, Dir};
use crate::manifest::{
    CaptureState, Counters, FORMAT_VERSION, MANIFEST_FILE, Manifest, Segment, SigningKey,
};
use crate::model::{ContainerRow, Event, ProcEvent, ProcessRow, UsernsRow};
use crate::segment::{Rotation, TableWriter};
use crate::status::write_status;
use crate::table::{
    CAPTURES, CONTAINERS, EVENTS, LIFECYCLE, Table, USER_NAMESPACES, epoch_of, missing_tables,
};

/// Room kept free from the start so that a full disk still leaves space
/// for the final manifest that says what was lost.
pub(crate) const RESERVE_FILE: &str = ".reserve";
/// Who writes the capture while it is open: `PID START_TICKS BOOT_ID`,
/// for `credtrail-record status` to prove the writer alive (see
/// [`recorder_pid`]).
pub const RECORDER_FILE: &str = ".recorder";
const RESERVE_BYTES: usize = 256 << 10;
/// Evicted records kept one by one before runs of them are folded (see
/// `Manifest::fold_evicted`): the manifest of a flight recorder stays
/// within its live segments, its metadata and this.
const FOLD_AFTER: usize = 64;
/// What a `captures` row's file takes at most (≈ 5.5 KB measured).
const STATUS_ROOM: u64 = 8 << 10;

/// How the capture may use the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest segments within this many bytes, deleting the oldest
    /// (a ring), instead of growing without bound.
    pub max_capture_bytes: Option<u64>,
    /// Checkpoints are written without fsync. A killed recorder still
    /// loses at most the last half second; a power cut or kernel crash can
    /// lose back to the last sealed segment. For storage where fsync is
    /// slow (measured here: 0.2 ms each, ~8 per checkpoint).
    pub no_fsync: bool,
    /// Flight recorder: delete the segment sets whose newest row is older
    /// than this (the newest set always stays).
    pub keep: Option<std::time::Duration>,
}

/// Writes a capture directory.
pub struct CaptureWriter {
    /// The capture's folder, opened once: every file is created through it.
    root: Dir,
    manifest: Manifest,
    rotation: Rotation,
    retention: Retention,
    key: Option<SigningKey>,
    /// Segment number shared by every table: `events/part-00003.parquet`
    /// covers the same stretch of time as `lifecycle/part-00003.parquet`.
    epoch: u32,
    processes: TableWriter<ProcessRow>,
    events: TableWriter<Event>,
    lifecycle: TableWriter<ProcEvent>,
    containers: TableWriter<ContainerRow>,
    user_namespaces: TableWriter<UsernsRow>,
    /// The `captures` table's folder (see `status`).
    captures: Dir,
    /// Every fsync and manifest write, off the writer's path (see `durable`).
    syncer: Syncer,
    _lock: fs::DirLock,
}

impl CaptureWriter {
    /// Creates the capture directory (refusing anything that is not new or
    /// empty) and writes the initial manifest, state `recording`.
    pub fn create(
        dir: &Path,
        manifest: Manifest,
        rotation: Rotation,
    ) -> Result<Self, CaptureError> {
        Self::create_with(dir, manifest, rotation, Retention::default(), None)
    }

    /// [`CaptureWriter::create`] with a disk budget and a signing key (each
    /// manifest write is followed by `manifest.json.sig`).
    pub fn create_with(
        dir: &Path,
        manifest: Manifest,
        mut rotation: Rotation,
        retention: Retention,
        key: Option<SigningKey>,
    ) -> Result<Self, CaptureError> {
        let root = create_capture_dir(dir)?;
        let lock = root.lock()?;
        if let Some(max) = retention.max_capture_bytes {
            // Eviction works in whole segments: keep several in the budget.
            rotation.max_bytes = rotation.max_bytes.min((max / 4).max(4096));
        }
        let mut manifest = manifest;
        manifest.format_version = FORMAT_VERSION;
        manifest.state = CaptureState::Recording;
        manifest.segments.clear();
        manifest.chain_head = None;
        manifest.error = None;
        manifest.recovery = None;
        // The row counts are this writer's own (a replay copy starts from
        // its source's manifest).
        let c = &mut manifest.counters;
        (c.events_written, c.lifecycle_written) = (0, 0);
        (c.events_evicted, c.lifecycle_evicted) = (0, 0);
        (c.events_lost_io, c.lifecycle_lost_io) = (0, 0);
        if let Some(max) = retention.max_capture_bytes {
            manifest
                .settings
                .insert("max_capture_bytes".into(), max.into());
        }
        if retention.no_fsync {
            manifest.settings.insert("no_fsync".into(), true.into());
        }
        if let Some(keep) = retention.keep {
            manifest
                .settings
                .insert("keep_seconds".into(), keep.as_secs().into());
        }
        {
            let pid = std::process::id();
            let line = format!(
                "{pid} {} {}\n",
                crate::host::process_start_ticks(pid).unwrap_or(0),
                crate::host::boot_id()
            );
            let mut f = root.create_new(RECORDER_FILE)?;
            std::io::Write::write_all(&mut f, line.as_bytes())
                .map_err(CaptureError::io(&root.child(RECORDER_FILE), "write"))?;
        }
        {
            let mut f = root.create_new(RESERVE_FILE)?;
            std::io::Write::write_all(&mut f, &vec![0u8; RESERVE_BYTES]).map_err(|source| {
                CaptureError::Io {
                    path: root.child(RESERVE_FILE),
                    op: "write",
                    source,
                }
            })?;
        }
        manifest.write(&root, key.as_ref())?;
        let syncer = Syncer::start(&root, !retention.no_fsync)?;
        Ok(CaptureWriter {
            processes: TableWriter::new(&root)?,
            events: TableWriter::new(&root)?,
            lifecycle: TableWriter::new(&root)?,
            containers: TableWriter::new(&root)?,
            user_namespaces: TableWriter::new(&root)?,
            captures: root.create_subdir(CAPTURES)?,
            root,
            manifest,
            rotation,
            retention,
            key,
            epoch: 0,
            syncer,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Writes a process snapshot as one sealed segment: the /proc scan at
    /// start, then the process cache whenever a new segment begins.
    pub fn write_processes(&mut self, rows: &[ProcessRow]) -> Result<(), CaptureError> {
        self.processes.start_segment(self.epoch)?;
        for row in rows {
            self.processes.push(self.epoch, row)?;
        }
        let mut job = Job::default();
        let sealed = self.processes.seal(&mut job)?;
        self.list(sealed.into_iter().collect(), job)
    }

    /// Lists sealed segments in the manifest; their checkpoints go once it
    /// is on disk.
    fn list(&mut self, sealed: Vec<Segment>, mut job: Job) -> Result<(), CaptureError> {
        for seg in &sealed {
            let (table, name) = seg
                .file
                .split_once('/')
                .expect("the writer names files table/part");
            let open_name = format!("{name}.open");
            let dir = self.table_dir(table).try_clone()?;
            job.removals
                .push((dir.try_clone()?, live_checkpoint_name(&open_name)));
            job.removals.push((dir, checkpoint_name(&open_name)));
        }
        self.manifest.segments.extend(sealed);
        self.publish(job)
    }

    /// Hands `job` with the manifest as it stands to the syncer; fails with
    /// the first error the syncer met (recording then stops).
    fn publish(&mut self, mut job: Job) -> Result<(), CaptureError> {
        if let Some(e) = self.syncer.take_error() {
            return Err(e);
        }
        job.manifest = Some(self.manifest.encode(self.key.as_ref()));
        self.syncer.submit(job);
        Ok(())
    }

    pub fn push(&mut self, event: &Event) -> Result<(), CaptureError> {
        self.events.push(self.epoch, event)?;
        self.manifest.counters.events_written += 1;
        Ok(())
    }

    /// A lifecycle record (always written, whatever else is filtered).
    pub fn push_lifecycle(&mut self, ev: &ProcEvent) -> Result<(), CaptureError> {
        self.lifecycle.push(self.epoch, ev)?;
        self.manifest.counters.lifecycle_written += 1;
        Ok(())
    }

    /// Metadata of a container seen for the first time.
    pub fn push_container(&mut self, row: &ContainerRow) -> Result<(), CaptureError> {
        self.containers.push(self.epoch, row)
    }

    /// A user namespace first seen, or its maps written.
    pub fn push_user_namespace(&mut self, row: &UsernsRow) -> Result<(), CaptureError> {
        self.user_namespaces.push(self.epoch, row)
    }

    /// Call regularly (e.g. after every poll): checkpoints at least every
    /// [`FLUSH_INTERVAL`] (row groups flushed, footers and manifest
    /// written, so a killed recorder loses at most that much), rotates
    /// segments by age and size (all tables together) and keeps the disk
    /// budget. Returns true when segments were sealed: the caller then
    /// writes the process snapshot that opens the next ones.
    pub fn tick(&mut self) -> Result<bool, CaptureError> {
        self.checkpoint_if_due()?;
        let max = self.retention.max_capture_bytes;
        self.evict_before(max, self.epoch)?;
        // Still over budget with only the newest segments left: seal the
        // open ones so that they can go next time (never empty ones).
        let over_budget = max.is_some_and(|max| self.disk_bytes() > max)
            && (self.events.holds_rows()
                || self.lifecycle.holds_rows()
                || self.containers.holds_rows()
                || self.user_namespaces.holds_rows());
        if over_budget
            || self.events.needs_rotation(&self.rotation)
            || self.lifecycle.needs_rotation(&self.rotation)
        {
            if self.seal_all()? {
                // How the capture stands as of this set, for readers of
                // the Parquet files alone.
                self.list_status(self.epoch - 1, false)?;
            }
            self.evict_before(max, self.epoch)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Checkpoints every table once [`FLUSH_INTERVAL`] has passed since the
    /// last time (row groups flushed, footers and manifest written), so a
    /// killed recorder loses at most that much of what it applied. Returns
    /// whether it did. Cheap to call often.
    pub fn checkpoint_if_due(&mut self) -> Result<bool, CaptureError> {
        if !(self.events.needs_flush()
            || self.lifecycle.needs_flush()
            || self.containers.needs_flush()
            || self.user_namespaces.needs_flush())
        {
            return Ok(false);
        }
        let mut job = Job::default();
        // Dependencies first: an event's enrichment rests on the
        // namespace, container and lifecycle rows before it, so a
        // crash between two of these never keeps an event without them.
        self.user_namespaces.flush(&mut job)?;
        self.containers.flush(&mut job)?;
        self.lifecycle.flush(&mut job)?;
        self.events.flush(&mut job)?;
        self.publish(job)?;
        Ok(true)
    }

    /// Bytes the capture's segments take now (sealed and open).
    fn disk_bytes(&self) -> u64 {
        self.manifest.kept_bytes()
            + self.events.open_bytes()
            + self.lifecycle.open_bytes()
            + self.containers.open_bytes()
            + self.user_namespaces.open_bytes()
    }

    /// Deletes the oldest whole segment sets before set `keep` (all tables
    /// but container and namespace metadata, which later events still
    /// need) while the capture is over `max` bytes or, with `--keep`, while
    /// the oldest set's newest row is older than that. Sets a cut has
    /// pinned (see `control`) stay, over budget if need be, until the cut
    /// is complete. The manifest lists them as evicted before the files go,
    /// so a crash in between leaves files `recover` deletes, never a listed
    /// file missing.
    fn evict_before(&mut self, max: Option<u64>, keep: u32) -> Result<(), CaptureError> {
        if max.is_none() && self.retention.keep.is_none() {
            return Ok(());
        }
        let expired = self
            .retention
            .keep
            .map(|k| crate::host::boottime_ns().saturating_sub(k.as_nanos() as u64));
        // Each set's newest row, oldest set first.
        let mut sets = std::collections::BTreeMap::<u32, u64>::new();
        for s in self.manifest.segments.iter() {
            if s.evicted || is_metadata(&s.table) {
                continue;
            }
            if let Some(e) = epoch_of(&s.file).filter(|e| *e < keep) {
                let newest = sets.entry(e).or_default();
                *newest = (*newest).max(s.last_ktime_ns);
            }
        }
        let mut pinned = None;
        let mut victims = Vec::new();
        for (&set, &newest) in &sets {
            let over = max.is_some_and(|max| self.disk_bytes() > max);
            if !over && expired.is_none_or(|t| newest >= t) {
                break;
            }
            let pin = *pinned.get_or_insert_with(|| oldest_pin(&self.root));
            if pin.is_some_and(|p| newest >= p) {
                break;
            }
            for seg in &mut self.manifest.segments {
                if seg.evicted || is_metadata(&seg.table) || epoch_of(&seg.file) != Some(set) {
                    continue;
                }
                seg.evicted = true;
                match seg.table.as_str() {
                    EVENTS => self.manifest.counters.events_evicted += seg.rows,
                    LIFECYCLE => self.manifest.counters.lifecycle_evicted += seg.rows,
                    _ => {}
                }
                tracing::debug!("evicted {} ({} rows)", seg.file, seg.rows);
                victims.push(seg.file.clone());
            }
        }
        if victims.is_empty() {
            return Ok(());
        }
        let unfolded = self
            .manifest
            .segments
            .iter()
            .filter(|s| s.evicted && s.folded.is_none())
            .count();
        if unfolded >= FOLD_AFTER {
            self.manifest.fold_evicted(2);
        }
        // The files go once the manifest that lists them evicted is on disk.
        let mut job = Job {
            always: true,
            ..Job::default()
        };
        for file in victims {
            let (table, name) = file
                .split_once('/')
                .expect("the writer names files table/part");
            job.removals
                .push((self.table_dir(table).try_clone()?, name.to_owned()));
        }
        self.publish(job)
    }

    /// Seals the open segments now (a cut of the newest rows needs them),
    /// as a rotation would; returns whether any was sealed (the caller
    /// then writes the process snapshot that opens the next set).
    pub fn seal_now(&mut self) -> Result<bool, CaptureError> {
        let sealed = self.seal_all()?;
        if sealed {
            self.list_status(self.epoch - 1, false)?;
        }
        self.evict_before(self.retention.max_capture_bytes, self.epoch)?;
        // A cut reads the manifest next: it must list what was just sealed.
        self.syncer.wait()?;
        Ok(sealed)
    }

    /// Answers a cut's request to seal (see `control`), if one waits:
    /// everything up to `end_ktime_ns` (the caller's last drain) is sealed
    /// when it returns. Returns whether segments were sealed.
    pub fn serve_seal_request(&mut self, end_ktime_ns: u64) -> Result<bool, CaptureError> {
        let Some(nonce) = pending_seal(&self.root) else {
            return Ok(false);
        };
        let sealed = self.seal_now()?;
        answer_seal(&self.root, &nonce, end_ktime_ns)?;
        Ok(sealed)
    }

    /// Seals every open segment as set `epoch`; returns whether any was.
    fn seal_all(&mut self) -> Result<bool, CaptureError> {
        let mut job = Job::default();
        let sealed = [
            // In the order of `tick`'s flushes, for the same reason.
            self.user_namespaces.seal(&mut job)?,
            self.containers.seal(&mut job)?,
            self.lifecycle.seal(&mut job)?,
            self.events.seal(&mut job)?,
            // Open only when `finish` makes an empty one.
            self.processes.seal(&mut job)?,
        ];
        self.epoch += 1;
        let any = sealed.iter().any(Option::is_some);
        if any {
            self.list(sealed.into_iter().flatten().collect(), job)?;
        }
        Ok(any)
    }

    /// Writes the `captures` row of the manifest as it stands (as set
    /// `set`) and lists it.
    fn list_status(&mut self, set: u32, final_row: bool) -> Result<(), CaptureError> {
        let mut job = Job {
            always: true,
            ..Job::default()
        };
        let seg = write_status(
            &self.captures,
            &self.manifest,
            set,
            final_row,
            Some(&mut job),
        )?;
        self.manifest.segments.push(seg);
        self.publish(job)
    }

    /// Updates the kernel-side counters; the row counts are the writer's own.
    /// The kernel's losses by process (bounded by its map: 8192 pids),
    /// and the folded calls by process (bounded by the session).
    pub fn set_by_pid(&mut self, lost: BTreeMap<u32, u64>, folded: BTreeMap<u32, u64>) {
        self.manifest.lost_by_pid = lost;
        self.manifest.folded_by_pid = folded;
    }

    pub fn set_counters(&mut self, counters: Counters) {
        let c = &self.manifest.counters;
        self.manifest.counters = Counters {
            events_written: c.events_written,
            lifecycle_written: c.lifecycle_written,
            events_evicted: c.events_evicted,
            lifecycle_evicted: c.lifecycle_evicted,
            events_lost_io: c.events_lost_io,
            lifecycle_lost_io: c.lifecycle_lost_io,
            ..counters
        };
    }

    /// Seals the open segments and the manifest. Every table exists
    /// afterwards, even if nothing happened.
    pub fn finish(mut self, end: crate::manifest::Instant) -> Result<Manifest, CaptureError> {
        for table in missing_tables(&self.manifest) {
            match table {
                EVENTS => self.events.start_segment(self.epoch)?,
                LIFECYCLE => self.lifecycle.start_segment(self.epoch)?,
                CONTAINERS => self.containers.start_segment(self.epoch)?,
                USER_NAMESPACES => self.user_namespaces.start_segment(self.epoch)?,
                _ => self.processes.start_segment(self.epoch)?,
            }
        }
        self.seal_all()?;
        // The last seal can take the capture over its budget (a final drain
        // writes without ticks): the budget holds for the sealed capture
        // too, the newest segments always kept.
        // With room for the final `captures` row.
        self.evict_before(
            self.retention
                .max_capture_bytes
                .map(|max| max.saturating_sub(STATUS_ROOM)),
            self.epoch.saturating_sub(1),
        )?;
        self.manifest.end = Some(end);
        self.manifest.state = CaptureState::Sealed;
        self.release_reserve();
        // One manifest write lists the final state and its `captures` row
        // together: a crash before it leaves a capture `recover` seals.
        self.list_status(self.epoch, true)?;
        self.syncer.wait()?;
        Ok(self.manifest)
    }

    /// The writer is finishing: the room reserved for the last manifest
    /// is given back, and `status` no longer finds it writing.
    fn release_reserve(&self) {
        let _ = self.root.remove(RESERVE_FILE);
        let _ = self.root.remove(RECORDER_FILE);
    }

    /// The folder of one of the writer's tables.
    fn table_dir(&self, table: &str) -> &Dir {
        match table {
            EVENTS => &self.events.dir,
            LIFECYCLE => &self.lifecycle.dir,
            CONTAINERS => &self.containers.dir,
            USER_NAMESPACES => &self.user_namespaces.dir,
            CAPTURES => &self.captures,
            _ => &self.processes.dir,
        }
    }

    /// Ends a capture after a write error (disk full, I/O error): the open
    /// segments are sealed up to their last checkpoint (or set aside),
    /// every event that reached the writer but not a sealed segment is
    /// counted as lost, and the manifest says why recording stopped. The
    /// space reserved at start makes room for that last manifest.
    /// `delivered` is (events, lifecycle records) handed to the writer.
    pub fn fail(
        mut self,
        error: &str,
        delivered: (u64, u64),
        end: crate::manifest::Instant,
    ) -> Result<Manifest, CaptureError> {
        // What was queued first (a failing disk may fail it again).
        let _ = self.syncer.wait();
        self.release_reserve();
        let salvaged = [
            self.events.abandon(),
            self.lifecycle.abandon(),
            self.containers.abandon(),
            self.user_namespaces.abandon(),
        ];
        for s in &salvaged {
            if let Some(p) = &s.problem {
                tracing::error!("{p}");
            }
        }
        self.manifest
            .segments
            .extend(salvaged.into_iter().filter_map(|s| s.segment));
        // Best effort on a disk that just failed: readers of the manifest
        // take a missing table as empty anyway.
        match seal_missing_tables(&self.root, &self.manifest, self.epoch + 1) {
            Ok(empty) => self.manifest.segments.extend(empty),
            Err(e) => tracing::warn!("cannot write the empty tables of the stopped capture: {e}"),
        }
        let (events, lifecycle) = (
            self.manifest.rows_in(EVENTS),
            self.manifest.rows_in(LIFECYCLE),
        );
        let c = &mut self.manifest.counters;
        c.events_written = events;
        c.lifecycle_written = lifecycle;
        c.events_lost_io = delivered.0.saturating_sub(events);
        c.lifecycle_lost_io = delivered.1.saturating_sub(lifecycle);
        self.manifest.state = CaptureState::Failed;
        self.manifest.error = Some(error.to_owned());
        self.manifest.end = Some(end);
        // Best effort, as above: the manifest says it all without the row.
        match write_status(&self.captures, &self.manifest, self.epoch + 1, true, None) {
            Ok(seg) => self.manifest.segments.push(seg),
            Err(e) => tracing::warn!("cannot write the captures row of the stopped capture: {e}"),
        }
        self.manifest.write(&self.root, self.key.as_ref())?;
        Ok(self.manifest)
    }
}

/// The pid of the process writing the capture `root`, when it can be
/// proved alive: the folder is ours and writable by nobody else, its lock is
/// held, its `.recorder` file (ours, one link) names a process that runs
/// now (same boot, same start time, so not a reused pid), and that process
/// holds the folder's lock (`/proc/locks`). None otherwise: a manifest in
/// state `recording` or a lock alone proves nothing, since anyone who could
/// write them could fake them.
pub fn recorder_pid(root: &Dir) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    root.check_private().ok()?;
    if root.lock().is_ok() {
        return None;
    }
    let f = root.open_file(RECORDER_FILE).ok()?;
    let meta = f.metadata().ok()?;
    if meta.uid() != fs::euid() || meta.nlink() != 1 {
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 256), &mut text).ok()?;
    let mut it = text.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    let boot = it.next()?;
    if boot != crate::host::boot_id() || crate::host::process_start_ticks(pid)? != start {
        return None;
    }
    let inode = root.inode().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks
        .lines()
        .any(|l| holds_flock(l, pid, inode))
        .then_some(pid)
}

/// Whether a `/proc/locks` line is a held write `flock` of `pid` on `inode`
/// (`1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; waiters read `->`).
fn holds_flock(line: &str, pid: u32, inode: u64) -> bool {
    let f: Vec<&str> = line.split_whitespace().collect();
    matches!(&f[..], [_, "FLOCK", _, "WRITE", p, dev_ino, ..]
        if p.parse::<u32>() == Ok(pid)
            && dev_ino.rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(inode))
}

/// Tables of metadata that later rows rest on, whatever their age: never
/// evicted. (A set's `captures` row goes with its set: the newest row
/// carries every counter so far.)
fn is_metadata(table: &str) -> bool {
    table == CONTAINERS || table == USER_NAMESPACES
}

/// Seals an empty segment `part-{epoch}` of every table the manifest lists
/// no readable segment of (after a crash or a write error; `finish` does
/// the same with its own writers).
pub(crate) fn seal_missing_tables(
    root: &Dir,
    manifest: &Manifest,
    epoch: u32,
) -> Result<Vec<Segment>, CaptureError> {
    fn empty<T: Table>(root: &Dir, epoch: u32) -> Result<Option<Segment>, CaptureError> {
        let mut w = TableWriter::<T>::new(root)?;
        w.start_segment(epoch)?;
        let mut job = Job::default();
        let sealed = w.seal(&mut job)?;
        // Durable before the caller lists it; its checkpoints have no use.
        job.run(root, true)?;
        if let Some(seg) = &sealed {
            let open_name = format!("{}.open", seg.file.rsplit('/').next().unwrap_or_default());
            crate::checkpoint::remove_checkpoints(&w.dir, &open_name)?;
        }
        Ok(sealed)
    }
    let mut sealed = Vec::new();
    for table in missing_tables(manifest) {
        let seg = match table {
            EVENTS => empty::<Event>(root, epoch)?,
            LIFECYCLE => empty::<ProcEvent>(root, epoch)?,
            CONTAINERS => empty::<ContainerRow>(root, epoch)?,
            USER_NAMESPACES => empty::<UsernsRow>(root, epoch)?,
            _ => empty::<ProcessRow>(root, epoch)?,
        };
        sealed.extend(seg);
    }
    Ok(sealed)
}

/// The first segment number no file in `tables` uses yet.
pub(crate) fn next_free_epoch<'a>(tables: impl IntoIterator<Item = &'a Dir>) -> u32 {
    tables
        .into_iter()
        .filter_map(|d| d.names().ok())
        .flatten()
        .filter_map(|name| {
            let n = name.strip_prefix("part-")?;
            n.get(..n.find('.')?)?.parse::<u32>().ok()
        })
        .max()
        .map_or(0, |e| e + 1)
}

/// Deletes the file of an evicted segment; one that cannot go is logged
/// and left for `recover` (the manifest already says it is evicted).
pub(crate) fn remove_evicted(dir: &Dir, name: &str) {
    if let Err(e) = dir.remove(name) {
        tracing::error!("cannot evict: {e}");
    }
}

/// Takes `dir` as a new capture directory, or creates it (0700): absent,
/// or an empty directory that is not a symlink, owned by us and writable by
/// nobody else (a directory someone else prepared could be renamed or
/// relinked under the recorder), in a folder the root rules of
/// `fs::Dir::open_root` allow. Refuses files, foreign non-empty directories
/// and existing captures, touching none of them. Returns the handle every
/// file of the capture is then created through.
pub(crate) fn create_capture_dir(dir: &Path) -> Result<Dir, CaptureError> {
    let (parent, name) = split_capture_path(dir)?;
    let parent = Dir::open_root(parent)?;
    check_capture_entry(&parent, name, dir)?;
    let d = parent.create_subdir(name)?;
    let (owner, me) = (d.owner()?, fs::euid());
    if owner != me {
        return Err(CaptureError::Unsafe {
            path: dir.to_owned(),
            message: format!(
                "is owned by uid {owner}, not by the recorder's uid {me}; its owner could rename or relink the capture while it records (remove it, or let credtrail-record create it)"
            ),
        });
    }
    if !d.names()?.is_empty() {
        return Err(CaptureError::ForeignDirectory {
            path: dir.to_owned(),
        });
    }
    d.make_private()?;
    Ok(d)
}

/// A capture path's folder and its own name (a plain one).
fn split_capture_path(dir: &Path) -> Result<(&Path, &str), CaptureError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| CaptureError::Unsafe {
            path: dir.to_owned(),
            message: "does not end in a plain folder name; name the capture's own folder".into(),
        })?;
    Ok((dir.parent().unwrap_or(Path::new(".")), name))
}

/// Checks that `dir` can become a new capture without touching anything:
/// its folder, if it exists, is one a capture may be made in, and `dir` is
/// absent or an empty directory (not a symlink) owned by us and not writable
/// by group or others. Returns whether it exists.
pub fn check_capture_dir(dir: &Path) -> Result<bool, CaptureError> {
    let (parent, name) = split_capture_path(dir)?;
    let parent_path = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if !parent_path.exists() {
        return Ok(false);
    }
    check_capture_entry(&Dir::open_root(parent_path)?, name, dir)
}

/// [`check_capture_dir`] of the entry `name` in the folder `parent`, by
/// handle: what is checked is what is then used.
fn check_capture_entry(parent: &Dir, name: &str, dir: &Path) -> Result<bool, CaptureError> {
    match parent.kind(name)? {
        None => return Ok(false),
        Some(rustix::fs::FileType::Symlink) => {
            return Err(CaptureError::Symlink {
                path: dir.to_owned(),
            });
        }
        Some(rustix::fs::FileType::Directory) => {}
        Some(_) => {
            return Err(CaptureError::NotADirectory {
                path: dir.to_owned(),
            });
        }
    }
    let d = parent.subdir(name)?;
    if !d.names()?.is_empty() {
        return Err(if d.exists(MANIFEST_FILE) {
            CaptureError::ExistingCapture {
                path: dir.to_owned(),
            }
        } else {
            CaptureError::ForeignDirectory {
                path: dir.to_owned(),
            }
        });
    }
    d.check_private().map_err(|_| {
        let (owner, mode) = d.owner_and_mode().unwrap_or_default();
        CaptureError::Unsafe {
            path: dir.to_owned(),
            message: format!(
                "was made by uid {owner} with mode {mode:o}: only an empty directory owned by the recorder's uid {} and writable by nobody else is taken (its owner could rename or relink the capture while it records); remove it, or let credtrail-record create it",
                fs::euid()
            ),
        }
    })?;
    Ok(true)
}
