//! The manifest's loss and bookkeeping counters: every path that can lose
//! an event has one, and what the losses must add up to.

use serde::{Deserialize, Serialize};

/// Loss and bookkeeping counters. Every path that can lose an event has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Event rows written to `events/` segments.
    pub events_written: u64,
    /// Events the kernel programs produced: calls completed (enter and
    /// exit both seen) and unexplained changes.
    pub kernel_events: u64,
    /// Lost: the ring buffer was full (kernel side, summed over CPUs).
    pub ringbuf_full: u64,
    /// Lost: the enter hook could not remember the call (in-flight map full).
    pub enter_store_failures: u64,
    /// Exits without a remembered enter: calls already under way when the
    /// hooks attached, or whose enter store failed (counted above too).
    pub exit_without_enter: u64,
    /// Lost: ring buffer records userspace could not decode.
    pub decode_errors: u64,
    /// Lifecycle rows written to `lifecycle/` segments.
    pub lifecycle_written: u64,
    /// Lifecycle records the kernel produced.
    pub kernel_lifecycle: u64,
    /// Lost: lifecycle records dropped because the ring buffer was full.
    pub lifecycle_ringbuf_full: u64,
    /// Execs whose pre-exec credentials were not stashed (exec already under
    /// way at start): such an exec cannot yield an `execve` credential event.
    pub exec_without_stash: u64,
    /// Lost: events decoded but never made durable because writing the
    /// capture failed (disk full, I/O error): see the manifest's `error`.
    #[serde(default)]
    pub events_lost_io: u64,
    /// Lost: lifecycle records never made durable (write failure).
    #[serde(default)]
    pub lifecycle_lost_io: u64,
    /// Captured, then deleted by `--max-capture-bytes` (oldest first).
    #[serde(default)]
    pub events_evicted: u64,
    #[serde(default)]
    pub lifecycle_evicted: u64,
    // Counters added in format 3 are left out of the JSON while zero: the
    // chain head of a format 2 capture hashes its counters as they were,
    // and must still verify.
    /// User namespace records the kernel produced (a namespace first seen,
    /// or its maps written), and those lost to a full ring buffer (the
    /// namespace-local ids of its rows are then unknown until it is sent
    /// again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kernel_user_namespaces: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user_namespaces_ringbuf_full: u64,
    /// Unexplained credential changes found (`unexplained` events), and
    /// those lost to a full ring buffer (also in `kernel_events` and
    /// `ringbuf_full`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unexplained: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unexplained_ringbuf_full: u64,
    /// Credential checks run (recorded calls, exec, fork, exit,
    /// switch-outs, sweeps), and new struct cred pointers they examined.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tasks_checked: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cred_swaps_examined: u64,
    /// Sweeps run (`--sweep-interval`), their total time and the tasks
    /// they visited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sweeps: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sweep_ns: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sweep_tasks: u64,
    /// Returns to user space whose subjective credentials (`task->cred`)
    /// were compared with the objective ones (`--subjective-check`), and tasks found running with subjective
    /// credentials that are not their objective ones (each reported once
    /// per override as an `unexplained` event marked `subjective`, also in
    /// `unexplained`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub returns_checked: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subjective_overrides: u64,
    /// `-- COMMAND`: credential calls of processes outside the command's
    /// tree, left out in the kernel (by design, not lost), and processes of
    /// the tree the kernel could not follow (more than 65,536 at once):
    /// their events were not recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outside_scope: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scope_full: u64,
    /// Tasks whose last known credentials could not be stored: not checked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unchecked_tasks: u64,
    /// `--policy`: events no policy posted (left out in the kernel, by
    /// design: not lost), of those the ones a `rateLimit` held back, and
    /// events left out for their pod (a TracingPolicyNamespaced's
    /// namespace, a podSelector), which only userspace knows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub policy_filtered: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub policy_rate_limited: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub policy_pod_filtered: u64,
    /// The recorder's spool between the ring buffer and the encoder: the
    /// most it held at once, and the bytes that went through its file on
    /// disk (the encoder fell behind for a while; nothing was lost to it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spool_peak_bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spool_spilled_bytes: u64,
    /// Calls the kernel folded: their process was over its share of a
    /// filling ring buffer, and each repeat of one transition was counted
    /// instead of sent. Not lost: they are the `repeat_count` of
    /// `folded_rows` rows (`kernel_events` counts them too).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folded_calls: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folded_rows: u64,
    /// Lost: such calls the fold map could not hold (full, or more than 16
    /// groups to carry). Per process, with `ringbuf_full`, in the
    /// manifest's `lost_by_pid`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fold_full: u64,
    /// Of the losses, those whose process the kernel could not name (its
    /// table of losing processes was full).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_unattributed: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Counters {
    /// Events known to be lost (saturating: see [`Counters::implausible`]).
    pub fn lost(&self) -> u64 {
        [
            self.ringbuf_full,
            self.fold_full,
            self.enter_store_failures,
            self.decode_errors,
            self.events_lost_io,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }

    /// Calls the written rows stand for: each row one call, a folded row
    /// its `repeat_count`.
    pub fn calls_written(&self) -> u64 {
        self.events_written
            .saturating_sub(self.folded_rows)
            .saturating_add(self.folded_calls)
    }

    /// Lifecycle records known to be lost.
    pub fn lifecycle_lost(&self) -> u64 {
        self.lifecycle_ringbuf_full
            .saturating_add(self.lifecycle_lost_io)
    }

    /// Why these counters cannot be a recorder's (a crafted or damaged
    /// manifest), if they cannot: losses beyond every event the kernel
    /// produced and the writer wrote, or a count beyond what any table
    /// stores (2^63 - 1). Readers report such counters as corrupt rather
    /// than showing a wrapped or saturated number as if it were real.
    pub fn implausible(&self) -> Option<String> {
        let value = serde_json::to_value(self).ok()?;
        let huge = value.as_object()?.iter().find_map(|(k, v)| {
            v.as_u64()
                .filter(|n| *n > i64::MAX as u64)
                .map(|n| format!("{k} = {n}"))
        });
        if let Some(h) = huge {
            return Some(format!(
                "counters are corrupt: {h} is beyond what any recorder counts"
            ));
        }
        let events = self.events_written.saturating_add(self.kernel_events);
        if self.lost() > events {
            return Some(format!(
                "counters are corrupt: {} events lost of at most {events} produced",
                self.lost()
            ));
        }
        let lifecycle = self.lifecycle_written.saturating_add(self.kernel_lifecycle);
        if self.lifecycle_lost() > lifecycle {
            return Some(format!(
                "counters are corrupt: {} lifecycle records lost of at most {lifecycle} produced",
                self.lifecycle_lost()
            ));
        }
        None
    }
}
