//! Writing a capture: the writer of all five tables, rotation, the disk
//! budget (what it gives up is `retention`'s), sealing, and stopping
//! cleanly after a write error. The folder it writes into is `folder`'s.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{checkpoint_name, live_checkpoint_name};
use crate::control::{answer_seal, pending_seal};
use crate::durable::{Job, Syncer};
use crate::error::CaptureError;
use crate::folder::{RECORDER_FILE, create_capture_dir, write_recorder_file};
use crate::fs::{self, Dir};
use crate::manifest::{CaptureState, Counters, FORMAT_VERSION, Manifest, Segment, SigningKey};
use crate::model::{ContainerRow, Event, ProcEvent, ProcessRow, UsernsRow};
use crate::retention::{Retention, mark_evicted};
use crate::segment::{Rotation, TableWriter};
use crate::status::write_status;
use crate::table::{
    CAPTURES, CONTAINERS, EVENTS, LIFECYCLE, Table, USER_NAMESPACES, missing_tables,
};

/// Room kept free from the start so that a full disk still leaves space
/// for the final manifest that says what was lost.
pub(crate) const RESERVE_FILE: &str = ".reserve";
const RESERVE_BYTES: usize = 256 << 10;
/// What a `captures` row's file takes at most (≈ 5.5 KB measured).
const STATUS_ROOM: u64 = 8 << 10;

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
        retention.note_in(&mut manifest.settings);
        write_recorder_file(&root)?;
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
        self.manifest.kept_bytes() + self.open_bytes()
    }

    /// Bytes the open segments take now.
    fn open_bytes(&self) -> u64 {
        self.events.open_bytes()
            + self.lifecycle.open_bytes()
            + self.containers.open_bytes()
            + self.user_namespaces.open_bytes()
    }

    /// Deletes the oldest segment sets before set `keep` that the budget
    /// `max` or `--keep` give up (see `retention::mark_evicted`). The
    /// manifest lists them as evicted before the files go, so a crash in
    /// between leaves files `recover` deletes, never a listed file missing.
    fn evict_before(&mut self, max: Option<u64>, keep: u32) -> Result<(), CaptureError> {
        let open_bytes = self.open_bytes();
        let victims = mark_evicted(
            &mut self.manifest,
            &self.retention,
            &self.root,
            open_bytes,
            max,
            keep,
        );
        if victims.is_empty() {
            return Ok(());
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
