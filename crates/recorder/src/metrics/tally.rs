//! Rows counted by label as they are delivered, for the metrics: every
//! event passes here, so the labels of a call row are static names (no
//! allocation per row).

use std::collections::BTreeMap;

use credtrail_capture::model::event::{Outcome, errno_name};
use credtrail_capture::model::{Event, Syscall};

/// Label sets kept at most per count: the names come from fixed tables,
/// so this is only a guard.
const MAX_KEYS: usize = 512;

/// Rows counted by label.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// By (syscall, result): `ok`, an errno name, `refused`, `query`.
    pub by_call: BTreeMap<(&'static str, &'static str), u64>,
    /// Unexplained rows by the check that found them (their `option`).
    pub unexplained_by_check: BTreeMap<String, u64>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, other: K) {
    let key = if map.len() < MAX_KEYS || map.contains_key(&key) {
        key
    } else {
        other
    };
    *map.entry(key).or_default() += 1;
}

impl Tally {
    pub fn count(&mut self, e: &Event) {
        let call = e.syscall_kind().map_or("other", Syscall::name);
        let result = match e.outcome() {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Query => "query",
            Outcome::Failed(ret) => errno_name(ret).unwrap_or("failed"),
        };
        bump(&mut self.by_call, (call, result), ("other", "other"));
        if e.syscall == Syscall::Unexplained.name() {
            let check = e.option.clone().unwrap_or_default();
            bump(&mut self.unexplained_by_check, check, "other".into());
        }
    }
}
