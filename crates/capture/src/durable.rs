//! Durability off the recorder's path: the writer hands every fsync, the
//! durable checkpoints and the manifest to one thread, so a checkpoint is
//! in the kernel the moment it is taken, whatever the disk is doing.
//!
//! A checkpoint is written twice. Its *live* copy goes to the page cache at
//! once, by the writer: a killed recorder (the kernel keeps the page cache)
//! loses at most the last half second even while the disk takes seconds to
//! sync (measured here: a container image unpacked beside the recorder held
//! one fsync for over a second). Its *durable* copy is written by this
//! thread only after the data it covers is synced: after a power cut or a
//! kernel crash, `recover` falls back to it when the live copy's data did
//! not reach the disk. The manifest is written by this thread alone, after
//! the data of every segment it lists is synced; what it makes obsolete (the
//! checkpoints of segments it lists as sealed, the files it lists as
//! evicted) is removed after it.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::CaptureError;
use crate::fs::Dir;
use crate::manifest::{MANIFEST_FILE, SIGNATURE_FILE};

/// What one round makes durable, in this order.
#[derive(Debug, Default)]
pub(crate) struct Job {
    /// Data whose bytes must be on disk first (segments written since the
    /// last round, open or sealed).
    pub files: Vec<(String, File)>,
    /// Folders whose entries changed (a seal's rename, a new file).
    pub dirs: Vec<Dir>,
    /// Durable checkpoints: (folder, file name, bytes), the newest per name.
    pub checkpoints: Vec<(Dir, String, Vec<u8>)>,
    /// The manifest and its signature, the newest wins.
    pub manifest: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// Files the manifest makes obsolete: removed once it is on disk.
    pub removals: Vec<(Dir, String)>,
    /// Synced even under `--no-fsync`: a seal or an eviction, which the
    /// manifest lists for good (only checkpoints go unsynced there).
    pub always: bool,
}

impl Job {
    fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.dirs.is_empty()
            && self.checkpoints.is_empty()
            && self.manifest.is_none()
            && self.removals.is_empty()
    }

    /// One round: data, folders, durable checkpoints, the manifest of the
    /// capture folder `root`, removals. Also run directly where nothing
    /// waits on it (a cut, recovery).
    pub fn run(self, root: &Dir, fsync: bool) -> Result<(), CaptureError> {
        let job = self;
        let fsync = fsync || job.always;
        if fsync {
            for (name, f) in &job.files {
                f.sync_data()
                    .map_err(CaptureError::io(std::path::Path::new(name), "sync"))?;
            }
            for d in &job.dirs {
                d.sync()?;
            }
        }
        for (dir, name, bytes) in &job.checkpoints {
            dir.replace_file(name, bytes, fsync)?;
        }
        if let Some((text, sig)) = &job.manifest {
            root.replace_file(MANIFEST_FILE, text, fsync)?;
            if let Some(sig) = sig {
                root.replace_file(SIGNATURE_FILE, sig, fsync)?;
            }
        }
        for (dir, name) in &job.removals {
            if let Err(e) = dir.remove(name) {
                tracing::warn!("cannot remove what the manifest made obsolete: {e}");
            }
        }
        Ok(())
    }

    /// Adds a later job to this one (a round not yet started).
    fn merge(&mut self, later: Job) {
        // One handle per file and folder: a disk that stalls for a minute
        // must not pile up a descriptor per checkpoint (syncing any handle
        // of a file syncs the file).
        for (name, f) in later.files {
            self.files.retain(|(n, _)| *n != name);
            self.files.push((name, f));
        }
        for d in later.dirs {
            self.dirs.retain(|e| e.path() != d.path());
            self.dirs.push(d);
        }
        for (dir, name, bytes) in later.checkpoints {
            self.checkpoints
                .retain(|(d, n, _)| !(n == &name && d.path() == dir.path()));
            self.checkpoints.push((dir, name, bytes));
        }
        if later.manifest.is_some() {
            self.manifest = later.manifest;
        }
        self.removals.extend(later.removals);
        self.always |= later.always;
    }
}

#[derive(Default)]
struct State {
    pending: Job,
    /// A round is being written.
    busy: bool,
    closed: bool,
    /// The first failure; every later round still runs.
    error: Option<CaptureError>,
}

struct Shared {
    state: Mutex<State>,
    /// Work arrived, or closing.
    wake: Condvar,
    /// A round ended.
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The thread that makes a capture durable.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread for the capture folder `root`. `fsync` false
    /// (`--no-fsync`): the same writes in the same order, none synced.
    pub fn start(root: &Dir, fsync: bool) -> Result<Syncer, CaptureError> {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Condvar::new(),
            idle: Condvar::new(),
        });
        let path = root.path().to_owned();
        let root = root.try_clone()?;
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("credtrail-sync".into())
                .spawn(move || run(&shared, &root, fsync))
                .map_err(CaptureError::io(&path, "start the sync thread for"))?
        };
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `job` behind what is queued; returns at once.
    pub fn submit(&self, job: Job) {
        if job.is_empty() {
            return;
        }
        let mut st = self.shared.lock();
        st.pending.merge(job);
        self.shared.wake.notify_one();
    }

    /// The first error a round met, taken (the writer then stops).
    pub fn take_error(&self) -> Option<CaptureError> {
        self.shared.lock().error.take()
    }

    /// Waits until everything submitted is written; returns the first
    /// error met since the last call.
    pub fn wait(&self) -> Result<(), CaptureError> {
        let mut st = self.shared.lock();
        while st.busy || !st.pending.is_empty() {
            st = self.shared.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        match st.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, root: &Dir, fsync: bool) {
    loop {
        let job = {
            let mut st = shared.lock();
            while st.pending.is_empty() && !st.closed {
                st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.pending.is_empty() {
                return;
            }
            st.busy = true;
            std::mem::take(&mut st.pending)
        };
        let result = job.run(root, fsync);
        let mut st = shared.lock();
        st.busy = false;
        if let Err(e) = result {
            tracing::error!("{e}");
            st.error.get_or_insert(e);
        }
        shared.idle.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_round_keeps_one_handle_per_file_and_the_newest_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("seg"), b"x").unwrap();
        let mut pending = Job::default();
        for i in 0..1000u32 {
            pending.merge(Job {
                files: vec![("seg".into(), dir.open_file("seg").unwrap())],
                dirs: vec![dir.try_clone().unwrap()],
                checkpoints: vec![(dir.try_clone().unwrap(), "seg.ckpt".into(), vec![i as u8])],
                manifest: Some((vec![i as u8], None)),
                ..Job::default()
            });
        }
        assert_eq!(
            (
                pending.files.len(),
                pending.dirs.len(),
                pending.checkpoints.len()
            ),
            (1, 1, 1)
        );
        assert_eq!(pending.checkpoints[0].2, vec![(999 % 256) as u8]);
        pending.run(&dir, true).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("seg.ckpt")).unwrap(), [231]);
        assert_eq!(
            std::fs::read(tmp.path().join("manifest.json")).unwrap(),
            [231]
        );
    }
}
