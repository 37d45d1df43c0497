//! `--policy`: the events a set of TracingPolicy files keeps, decided by
//! the pipeline's policy pass over each capture replayed (the recorder's own
//! decision), then applied to the events table as a row filter and the
//! `policy` column.

use std::sync::Arc;

use credtrail_capture::model::{ContainerRow, Event, ProcEvent, UsernsRow};
use credtrail_pipeline::playback;
use credtrail_pipeline::policy::Rules;
use credtrail_pipeline::policy::decide::FilterCounts;
use credtrail_pipeline::sink::Sink;

use crate::kept::Kept;
use crate::{CaptureInfo, QueryError, invalid};

/// Gathers the `seq` of each event the policy pass passes on.
struct Collect<'a>(&'a mut Kept);

impl Sink for Collect<'_> {
    fn lifecycle(&mut self, _: &ProcEvent) -> anyhow::Result<()> {
        Ok(())
    }

    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        let name = ev.policy.as_deref();
        if let Some((_, seqs)) = self
            .0
            .by_policy
            .iter_mut()
            .find(|(n, _)| Some(n.as_str()) == name)
        {
            seqs.push(ev.seq);
        }
        Ok(())
    }

    fn container(&mut self, _: &ContainerRow) -> anyhow::Result<()> {
        Ok(())
    }

    fn user_namespace(&mut self, _: &UsernsRow) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Decides, for every capture, which of its events `rules` keeps: the
/// capture replayed through the enrichment (the ancestry `followChildren`
/// and `followForks` look at is rebuilt there) and the policy pass, as
/// `credtrail-replay --policy` does.
pub fn apply(caps: &mut [CaptureInfo], rules: &Rules) -> Result<FilterCounts, QueryError> {
    let mut total = FilterCounts::default();
    for c in caps.iter_mut() {
        // The capture as discovery checked it, through the handles it
        // opened: never the path again.
        let cap = c.capture();
        let mut kept = Kept {
            by_policy: rules.names().into_iter().map(|n| (n, Vec::new())).collect(),
        };
        let inputs = playback::open(&cap).map_err(invalid)?;
        let counts = playback::run_with_policy(&cap, inputs, Some(rules), &mut Collect(&mut kept))
            .map_err(invalid)?;
        total.filtered += counts.filtered;
        total.rate_limited += counts.rate_limited;
        total.pod_filtered += counts.pod_filtered;
        c.policy = Some(Arc::new(kept));
    }
    Ok(total)
}
