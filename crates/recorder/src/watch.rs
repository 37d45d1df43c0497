//! What the session notes about each row on its way to the capture: rows
//! by call and result, unexplained rows by check (for `--metrics-addr`),
//! and the events that trigger a cut (`--cut-on`). A sink in front of the
//! capture's, after the policy's: it sees exactly the rows written.

use std::time::{Duration, Instant as MonoInstant};

use credtrail_capture::model::Event;
use credtrail_pipeline::sink::Stage;

use crate::autocut::Cuts;
use crate::metrics::Tally;

/// The stage that notes, in front of the capture's sink.
pub struct Watch<'a> {
    pub tally: &'a mut Tally,
    pub cuts: Option<&'a mut Cuts>,
}

impl Stage for Watch<'_> {
    fn delivered(&mut self, e: &Event) {
        // Counted once delivered, as the manifest counts it.
        self.tally.count(e);
        if let Some(c) = self.cuts.as_deref_mut() {
            c.seen(e);
        }
    }
}

/// Log lines allowed per second of one kind: a storm of findings is a few
/// lines and a count, not a flooded log collector.
#[derive(Default)]
pub struct LogBudget {
    since: Option<MonoInstant>,
    logged: u32,
    skipped: u64,
}

impl LogBudget {
    const PER_SECOND: u32 = 20;

    /// Whether this one may be logged (reporting those skipped before).
    pub fn take(&mut self) -> bool {
        let now = MonoInstant::now();
        if self
            .since
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            if self.skipped > 0 {
                tracing::warn!(
                    "{} more unexplained credential changes were not logged (the capture holds them all)",
                    self.skipped
                );
            }
            *self = LogBudget {
                since: Some(now),
                ..LogBudget::default()
            };
        }
        if self.logged < Self::PER_SECOND {
            self.logged += 1;
            return true;
        }
        self.skipped += 1;
        false
    }
}
