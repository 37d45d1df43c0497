//! Fairness under a flood, the loader's side (fair.bpf.h has the kernel's):
//! the folded transitions taken out of the kernel, the losses it counted
//! by process, and the encoder's backlog told to the hooks.

use std::collections::BTreeMap;
use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags};

use crate::{
    BpfError, EVENT_HEAD_SIZE, EVENT_SIZE, FOLD_GROUPS, Tracer, ct_event, ct_fold, ct_fold_key,
};

/// Calls of one transition the kernel counted instead of sending
/// ([`Tracer::drain_folds`]).
#[derive(Debug, Clone)]
pub struct Folded {
    /// A ring record of the transition (`ct_event` head and groups), its
    /// time the first call's.
    pub record: Vec<u8>,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Tracer<'_> {
    /// Takes every transition folded so far out of the kernel. Flips the
    /// generation the hooks fold into, waits until no hook still folds
    /// into the old one, then reads and deletes its entries: no count is
    /// read twice or lost between the read and the delete.
    pub fn drain_folds(&self) -> Result<Vec<Folded>, BpfError> {
        use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
        let bss = self.bss.as_ptr();
        // SAFETY: the mapping lives as long as the skeleton, which we own;
        // the kernel and we touch these words only atomically.
        let (generation, active) = unsafe {
            (
                AtomicU32::from_ptr(std::ptr::addr_of_mut!((*bss).fold_gen)),
                [
                    AtomicU64::from_ptr(std::ptr::addr_of_mut!((*bss).fold_active[0])),
                    AtomicU64::from_ptr(std::ptr::addr_of_mut!((*bss).fold_active[1])),
                ],
            )
        };
        let old = generation.load(Ordering::SeqCst) & 1;
        generation.store(old ^ 1, Ordering::SeqCst);
        // A hook folds for microseconds; one preempted mid-fold is waited
        // for (bounded: a stuck count leaves the entries for the next round).
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while active[old as usize].load(Ordering::SeqCst) != 0 {
            if std::time::Instant::now() > deadline {
                tracing::warn!("fold generation {old} still busy after 1 s: drained next time");
                return Ok(Vec::new());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let map = &self.skel.maps.folds;
        let map_err = |source| BpfError::Map {
            map: "folds",
            source,
        };
        let keys: Vec<Vec<u8>> = map
            .keys()
            .filter(|k| k.len() >= 4 && u32::from_ne_bytes(k[..4].try_into().unwrap()) == old)
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let Some(v) = map.lookup_and_delete(&k).map_err(map_err)? else {
                continue;
            };
            let mut key = ct_fold_key::default();
            let mut fold = ct_fold::default();
            if plain::copy_from_bytes(&mut key, &k).is_err()
                || plain::copy_from_bytes(&mut fold, &v).is_err()
            {
                continue;
            }
            // The head as the ring would carry it, timed at the first call.
            let mut record = vec![0u8; EVENT_SIZE];
            record[..EVENT_HEAD_SIZE].copy_from_slice(&key.head);
            let at = std::mem::offset_of!(ct_event, ktime_ns);
            record[at..at + 8].copy_from_slice(&fold.first_ns.to_ne_bytes());
            let mut event = ct_event::default();
            if plain::copy_from_bytes(&mut event, &record).is_err() {
                continue;
            }
            let kept = (event.req_kept as usize)
                .saturating_add(event.old_kept as usize)
                .saturating_add(event.new_kept as usize)
                .min(FOLD_GROUPS);
            for (i, g) in key.groups[..kept].iter().enumerate() {
                record[EVENT_HEAD_SIZE + 4 * i..][..4].copy_from_slice(&g.to_ne_bytes());
            }
            record.truncate(EVENT_HEAD_SIZE + 4 * kept);
            out.push(Folded {
                record,
                count: fold.count,
                first_ns: fold.first_ns,
                last_ns: fold.last_ns,
            });
        }
        Ok(out)
    }

    /// Tells the hooks how far behind the encoder is (0 none .. 3 far):
    /// past level 0, processes over their share are folded even while the
    /// drain keeps the ring itself empty.
    pub fn set_backlog_level(&self, level: u32) {
        use std::sync::atomic::{AtomicU32, Ordering};
        // SAFETY: as in drain_folds: mapped for the skeleton's life, and
        // only accessed atomically.
        let word = unsafe {
            AtomicU32::from_ptr(std::ptr::addr_of_mut!((*self.bss.as_ptr()).backlog_level))
        };
        word.store(level.min(3), Ordering::Relaxed);
    }

    /// Events lost so far (ring buffer full, or not foldable), by process.
    pub fn lost_by_tgid(&self) -> BTreeMap<u32, u64> {
        let map = &self.skel.maps.lost_by_tgid;
        map.keys()
            .filter_map(|k| {
                let tgid = u32::from_ne_bytes(k.get(..4)?.try_into().ok()?);
                let v = map.lookup(&k, MapFlags::ANY).ok()??;
                Some((tgid, u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
            })
            .collect()
    }
}
