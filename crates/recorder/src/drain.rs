//! The ring buffer's drain: a thread that only copies records out of the
//! kernel's ring into a bounded spool, so the ring keeps room while the
//! session decodes, enriches and encodes at its own pace (a storm no longer
//! overflows the ring just because encoding is slower than the callers for
//! a while). The spool holds batches in memory up to a bound, then in an
//! unlinked file beside the capture up to another; when both are full the
//! drain waits and the ring fills, and the kernel counts what it cannot
//! take (`ringbuf_full`), as before. Batches leave the spool in ring order.
//!
//! A killed recorder loses what the spool held (at most both bounds): the
//! kernel's counters at the last checkpoint still count those events as
//! produced and not written (`recover`'s `events_lost_at_least`), and the
//! unlinked file disappears with the process.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use credtrail_capture::host;
use credtrail_recorder_bpf::{self as bpf, MapHandle};

/// Records taken from the ring per poll at most: a batch outgrows
/// [`BATCH_BYTES`] by one poll at most (~330 KB of credential events).
const POLL_BATCH: usize = 1024;
/// A batch is handed over once it holds this much (or the ring is empty).
const BATCH_BYTES: usize = 1 << 20;
/// The longest the drain sleeps while the ring is empty. Records never wake
/// it (see CT_SUBMIT_FLAGS in credtrail.bpf.c), so this is how late a quiet
/// system's event is read.
const POLL_PERIOD: Duration = Duration::from_millis(20);
/// The same while records are flowing: a burst after a pause does not get
/// 20 ms to fill the ring.
const BUSY_POLL_PERIOD: Duration = Duration::from_millis(1);
/// Emptied batch buffers kept for reuse (a fresh 1 MiB buffer is page
/// faults on every batch).
const FREE_BUFFERS: usize = 4;

/// How much the spool may hold.
#[derive(Debug, Clone)]
pub struct SpoolLimits {
    pub memory_bytes: usize,
    /// On disk, in an unlinked file in `dir` (none without a directory).
    pub disk_bytes: u64,
    pub dir: Option<PathBuf>,
}

/// Records copied out of the ring, each as a native-endian u32 length and
/// its bytes.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Boot-clock instant at which the drain that ended this batch began,
    /// when it emptied the ring: every record made before it is in this
    /// batch or an earlier one.
    pub caught_up: Option<u64>,
}

impl Batch {
    /// The raw records, in ring order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.bytes[..];
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (rec, tail) = tail.split_at(u32::from_ne_bytes(*len) as usize);
            rest = tail;
            Some(rec)
        })
    }
}

/// What the spool went through, for the manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpoolStats {
    /// The most it held at once (memory and disk).
    pub peak_bytes: u64,
    /// Bytes that went through the disk.
    pub spilled_bytes: u64,
}

enum Entry {
    Memory(Batch),
    Disk {
        offset: u64,
        len: usize,
        caught_up: Option<u64>,
    },
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    memory: usize,
    /// Bytes on disk not yet read back; the file is emptied when it is 0.
    disk: u64,
    disk_end: u64,
    file: Option<File>,
    free: Vec<Vec<u8>>,
    /// Writing the file failed once: memory only from then on.
    disk_failed: bool,
    closed: bool,
    error: Option<String>,
    stats: SpoolStats,
}

impl State {
    /// Keeps an emptied batch buffer for reuse.
    fn give_back(&mut self, mut buf: Vec<u8>) {
        // Small copies, and a batch of exec records grown past the usual
        // size, are not kept.
        if buf.capacity() < BATCH_BYTES
            || buf.capacity() > 2 * BATCH_BYTES
            || self.free.len() >= FREE_BUFFERS
        {
            return;
        }
        buf.clear();
        self.free.push(buf);
    }
}

struct Spool {
    limits: SpoolLimits,
    state: Mutex<State>,
    /// A batch was queued, or the drain ended.
    ready: Condvar,
    /// A batch was taken: room again.
    room: Condvar,
}

impl Spool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking holder leaves consistent state: the queue ops are
        // single pushes and pops.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a batch, waiting while memory and disk are full. Empty
    /// batches only move the last one's `caught_up` on.
    fn push(&self, batch: Batch) {
        let len = batch.bytes.len();
        let mut st = self.lock();
        if len == 0 {
            match st.queue.back_mut() {
                Some(Entry::Memory(b)) if b.bytes.is_empty() => b.caught_up = batch.caught_up,
                _ => st.queue.push_back(Entry::Memory(batch)),
            }
            self.ready.notify_one();
            return;
        }
        loop {
            // Held memory is the buffer's capacity, not its length.
            let cost = batch.bytes.capacity();
            if st.memory + cost <= self.limits.memory_bytes || st.queue.is_empty() {
                st.memory += cost;
                st.queue.push_back(Entry::Memory(batch));
                break;
            }
            if let Some(dir) = &self.limits.dir
                && !st.disk_failed
                && st.disk + len as u64 <= self.limits.disk_bytes
            {
                match self.spill(&mut st, dir, &batch) {
                    Ok(()) => {
                        st.give_back(batch.bytes);
                        break;
                    }
                    Err(e) => {
                        // A full disk must not end the recording: without
                        // the file the ring fills and the kernel counts.
                        tracing::warn!(
                            "the recorder's spool file in {} failed ({e}); spooling in memory only",
                            dir.display()
                        );
                        st.disk_failed = true;
                        continue;
                    }
                }
            }
            st = self.room.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let held = st.memory as u64 + st.disk;
        st.stats.peak_bytes = st.stats.peak_bytes.max(held);
        self.ready.notify_one();
    }

    fn spill(&self, st: &mut State, dir: &Path, batch: &Batch) -> std::io::Result<()> {
        if st.file.is_none() {
            // Unlinked (O_TMPFILE): gone with the process, whatever ends it.
            st.file = Some(tempfile::tempfile_in(dir)?);
        }
        let file = st.file.as_ref().expect("just made");
        let offset = st.disk_end;
        file.write_all_at(&batch.bytes, offset)?;
        let len = batch.bytes.len();
        st.disk_end += len as u64;
        st.disk += len as u64;
        st.stats.spilled_bytes += len as u64;
        st.queue.push_back(Entry::Disk {
            offset,
            len,
            caught_up: batch.caught_up,
        });
        Ok(())
    }

    /// The next queued batch in ring order, waiting up to `wait` for it.
    /// None when the drain has ended and everything was taken, or on
    /// timeout.
    fn take(&self, wait: Duration) -> anyhow::Result<Option<Batch>> {
        let mut st = self.lock();
        if st.queue.is_empty() && !st.closed && !wait.is_zero() {
            st = self
                .ready
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(e) = &st.error {
            anyhow::bail!("{e}");
        }
        let batch = match st.queue.pop_front() {
            None => return Ok(None),
            Some(Entry::Memory(b)) => {
                st.memory -= b.bytes.capacity();
                b
            }
            Some(Entry::Disk {
                offset,
                len,
                caught_up,
            }) => {
                let mut bytes = st.free.pop().unwrap_or_default();
                bytes.resize(len, 0);
                let file = st.file.as_ref().expect("a disk entry has its file");
                file.read_exact_at(&mut bytes, offset)
                    .context("cannot read back the recorder's spool file")?;
                if st.disk == len as u64 {
                    // Read back whole: start the file over, freeing the disk.
                    file.set_len(0).context("cannot empty the spool file")?;
                    st.disk_end = 0;
                }
                st.disk -= len as u64;
                Batch { bytes, caught_up }
            }
        };
        self.room.notify_all();
        Ok(Some(batch))
    }
}

/// The drain thread and the spool it fills.
pub struct Drain {
    spool: Arc<Spool>,
    finish: Arc<AtomicBool>,
    /// The ring's unread bytes before the drain's last poll, and its size.
    ring: Arc<[AtomicU64; 2]>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    /// Starts draining `map` (the kernel's ring buffer).
    pub fn start(map: MapHandle, limits: SpoolLimits) -> anyhow::Result<Self> {
        let spool = Arc::new(Spool {
            limits,
            state: Mutex::default(),
            ready: Condvar::new(),
            room: Condvar::new(),
        });
        let finish = Arc::new(AtomicBool::new(false));
        let ring = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let thread = {
            let (spool, finish) = (Arc::clone(&spool), Arc::clone(&finish));
            let fill = Arc::clone(&ring);
            std::thread::Builder::new()
                .name("credtrail-drain".into())
                .spawn(move || {
                    let result = drain(&map, &spool, &finish, &fill);
                    let mut st = spool.lock();
                    if let Err(e) = result {
                        st.error = Some(format!("{e:#}"));
                    }
                    st.closed = true;
                    spool.ready.notify_all();
                })
                .context("cannot start the ring buffer's drain thread")?
        };
        Ok(Drain {
            spool,
            finish,
            ring,
            thread: Some(thread),
        })
    }

    /// The next batch in ring order, waiting up to `wait` for one: a batch
    /// at a time keeps the session's bookkeeping on time and its memory
    /// flat.
    pub fn take(&self, wait: Duration) -> anyhow::Result<Option<Batch>> {
        self.spool.take(wait)
    }

    /// Hands a processed batch's buffer back for reuse.
    pub fn recycle(&self, batch: Batch) {
        self.spool.lock().give_back(batch.bytes);
    }

    /// Drains what the ring holds now and ends (call once the programs are
    /// detached); [`Drain::ended`] then says when everything was taken.
    pub fn finish(&self) {
        self.finish.store(true, Ordering::Relaxed);
    }

    /// The drain has ended and its every batch was taken.
    pub fn ended(&self) -> bool {
        let st = self.spool.lock();
        st.closed && st.queue.is_empty()
    }

    /// Bytes the spool holds now, in memory and on disk: how far the
    /// encoder is behind the ring.
    pub fn backlog_bytes(&self) -> u64 {
        let st = self.spool.lock();
        st.memory as u64 + st.disk
    }

    pub fn stats(&self) -> SpoolStats {
        self.spool.lock().stats
    }

    /// The kernel ring's unread bytes (as the drain last found it) and
    /// its size.
    pub fn ring_fill(&self) -> (u64, u64) {
        (
            self.ring[0].load(Ordering::Relaxed),
            self.ring[1].load(Ordering::Relaxed),
        )
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.finish();
        {
            // A drain waiting for room must see it to end.
            let mut st = self.spool.lock();
            st.queue.clear();
            st.memory = 0;
            st.disk = 0;
            self.spool.room.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: copy records into batches, hand them over, never decode.
fn drain(
    map: &MapHandle,
    spool: &Spool,
    finish: &AtomicBool,
    fill: &[AtomicU64; 2],
) -> anyhow::Result<()> {
    let buf = RefCell::new(Vec::with_capacity(BATCH_BYTES + 4096));
    let count = Cell::new(0usize);
    let ring = bpf::ring::ring_buffer_of(map, |rec| {
        let mut b = buf.borrow_mut();
        b.extend_from_slice(&(rec.len() as u32).to_ne_bytes());
        b.extend_from_slice(rec);
        count.set(count.get() + 1);
        0
    })?;
    let mut last = 0;
    loop {
        let finishing = finish.load(Ordering::Relaxed);
        let wait = if finishing {
            Duration::ZERO
        } else if last > 0 {
            BUSY_POLL_PERIOD
        } else {
            POLL_PERIOD
        };
        let start = host::boottime_ns();
        let (used, size) = bpf::ring::ring_fill(&ring);
        fill[0].store(used, Ordering::Relaxed);
        fill[1].store(size, Ordering::Relaxed);
        last = bpf::ring::poll_batch(&ring, POLL_BATCH, wait)?;
        let caught_up = (last < POLL_BATCH).then_some(start);
        if caught_up.is_some() || buf.borrow().len() >= BATCH_BYTES {
            let bytes = hand_over(&mut buf.borrow_mut(), spool);
            spool.push(Batch { bytes, caught_up });
        }
        if finishing && caught_up.is_some() {
            return Ok(());
        }
    }
}

/// Takes what `buf` has gathered, leaving it empty with room for a batch.
fn hand_over(buf: &mut Vec<u8>, spool: &Spool) -> Vec<u8> {
    if buf.len() < BATCH_BYTES / 4 {
        // A few records (the ring was emptied): an exact copy, so a queue of
        // small batches does not hold a 1.5 MiB buffer each.
        let bytes = buf.clone();
        buf.clear();
        return bytes;
    }
    let fresh = spool
        .lock()
        .free
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 2));
    std::mem::replace(buf, fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[&[u8]], caught_up: Option<u64>) -> Batch {
        let mut bytes = Vec::with_capacity(records.iter().map(|r| 4 + r.len()).sum());
        for r in records {
            bytes.extend_from_slice(&(r.len() as u32).to_ne_bytes());
            bytes.extend_from_slice(r);
        }
        Batch { bytes, caught_up }
    }

    fn spool(memory_bytes: usize, disk_bytes: u64, dir: Option<PathBuf>) -> Spool {
        Spool {
            limits: SpoolLimits {
                memory_bytes,
                disk_bytes,
                dir,
            },
            state: Mutex::default(),
            ready: Condvar::new(),
            room: Condvar::new(),
        }
    }

    fn take_all(s: &Spool) -> Vec<Batch> {
        std::iter::from_fn(|| s.take(Duration::ZERO).unwrap()).collect()
    }

    fn records(batches: &[Batch]) -> Vec<Vec<u8>> {
        batches
            .iter()
            .flat_map(|b| b.records().map(<[u8]>::to_vec))
            .collect()
    }

    #[test]
    fn batches_leave_in_order_through_memory_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        // Room in memory for one batch of 3 records of 8 bytes.
        let s = spool(40, 1 << 20, Some(dir.path().to_owned()));
        let mut want = Vec::new();
        for i in 0..10u8 {
            let recs: Vec<Vec<u8>> = (0..3).map(|j| vec![i * 3 + j; 8]).collect();
            want.extend(recs.iter().cloned());
            let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
            s.push(batch(&refs, Some(u64::from(i))));
        }
        let stats = s.lock().stats;
        assert_eq!(
            stats.spilled_bytes,
            9 * 36,
            "all but the first went to disk"
        );
        let got = take_all(&s);
        assert_eq!(records(&got), want);
        assert_eq!(got.last().unwrap().caught_up, Some(9));
        // Read back whole: the file is emptied.
        let st = s.lock();
        assert_eq!((st.disk, st.disk_end), (0, 0));
        assert_eq!(st.file.as_ref().unwrap().metadata().unwrap().len(), 0);
        // Nothing named was left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn empty_batches_only_move_the_drained_instant() {
        let s = spool(1 << 20, 0, None);
        s.push(batch(&[], Some(1)));
        s.push(batch(&[], Some(2)));
        assert_eq!(s.lock().queue.len(), 1);
        s.push(batch(&[b"abc"], Some(3)));
        s.push(batch(&[], Some(4)));
        let got = take_all(&s);
        assert_eq!(
            got.iter().map(|b| b.caught_up).collect::<Vec<_>>(),
            [Some(2), Some(3), Some(4)]
        );
        assert_eq!(records(&got), vec![b"abc".to_vec()]);
    }

    #[test]
    fn small_batches_cost_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let s = spool(8 << 20, 1 << 30, Some(dir.path().to_owned()));
        let mut buf = Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 2);
        // The ring emptied 4,000 times with a few records each, nothing taken.
        for i in 0..4000u32 {
            buf.extend_from_slice(&3000u32.to_ne_bytes());
            buf.extend_from_slice(&[i as u8; 3000]);
            let bytes = hand_over(&mut buf, &s);
            s.push(Batch {
                bytes,
                caught_up: Some(u64::from(i)),
            });
        }
        let st = s.lock();
        let held: usize = st
            .queue
            .iter()
            .map(|e| match e {
                Entry::Memory(b) => b.bytes.capacity(),
                Entry::Disk { .. } => 0,
            })
            .sum();
        assert_eq!(held, st.memory);
        assert!(held <= 8 << 20, "{held} bytes of buffers held in memory");
        assert_eq!(st.queue.len(), 4000);
        assert!(st.stats.spilled_bytes > 0);
    }

    #[test]
    fn a_full_spool_makes_the_drain_wait_for_room() {
        // The disk part cannot be made: memory only, not an error.
        let s = Arc::new(spool(16, 1 << 20, Some("/nonexistent/spool".into())));
        s.push(batch(&[&[1; 12]], None));
        let pusher = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || s.push(batch(&[&[2; 12]], None)))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!pusher.is_finished(), "no room: the second push waits");
        assert!(s.lock().disk_failed);
        let first = s.take(Duration::ZERO).unwrap().unwrap();
        assert_eq!(records(&[first]), vec![vec![1; 12]]);
        pusher.join().unwrap();
        assert_eq!(records(&take_all(&s)), vec![vec![2; 12]]);
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    fn rss_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn spilling_keeps_memory_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool {
            limits: SpoolLimits {
                memory_bytes: 8 << 20,
                disk_bytes: 4 << 30,
                dir: Some(dir.path().to_owned()),
            },
            state: Mutex::default(),
            ready: Condvar::new(),
            room: Condvar::new(),
        });
        let before = rss_kib();
        let producer = {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || {
                for i in 0..600u32 {
                    let mut bytes = spool
                        .lock()
                        .free
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 2));
                    while bytes.len() < BATCH_BYTES {
                        bytes.extend_from_slice(&320u32.to_ne_bytes());
                        bytes.extend_from_slice(&[i as u8; 320]);
                    }
                    spool.push(Batch {
                        bytes,
                        caught_up: None,
                    });
                }
            })
        };
        let mut peak = 0;
        let mut taken = 0;
        while taken < 600 {
            if let Some(b) = spool.take(Duration::from_millis(1)).unwrap() {
                taken += usize::from(!b.bytes.is_empty());
                spool.lock().give_back(b.bytes);
            }
            std::thread::sleep(Duration::from_micros(200));
            peak = peak.max(rss_kib());
        }
        producer.join().unwrap();
        let grew = peak.saturating_sub(before);
        eprintln!("RSS grew {grew} KiB while 600 MiB went through the spool");
        assert!(grew < 64 << 10, "RSS grew {grew} KiB");
    }
}
