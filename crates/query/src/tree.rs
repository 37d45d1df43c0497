//! `tree`: a process's ancestry as it was when it existed, rebuilt by
//! replaying its capture through the recorder's own process cache.

use std::collections::BTreeMap;

use polars::prelude::*;

use credtrail_core::enrich::ProcInfo;

use crate::{CaptureInfo, QueryError, invalid};

/// A process image and its ancestors, the image first: the chain of
/// parents the process cache keeps (`tree`, and the report's trees).
pub(crate) fn ancestry(p: &ProcInfo) -> Vec<&ProcInfo> {
    std::iter::successors(Some(p), |p| p.parent.as_deref()).collect()
}

/// The ancestry of a process image as it was when it existed, rebuilt by
/// replaying the capture through the recorder's own process cache.
pub fn tree(caps_: &[CaptureInfo], exec_id: &str) -> Result<DataFrame, QueryError> {
    use credtrail_core::enrich::Record;
    for c in crate::answered(caps_) {
        let cap = credtrail_core::capture::Capture {
            dir: c.dir.clone(),
            manifest: c.manifest.clone(),
            files: std::sync::Arc::clone(&c.files),
        };
        let mut inputs = credtrail_core::replay::open(&cap).map_err(invalid)?;
        let mut enricher = credtrail_core::replay::enricher(&cap, &mut inputs);
        let m = &c.manifest;
        let mut found = enricher.find(exec_id);
        // To the end: an ancestor's credentials may have changed
        // unexplained after the process was found.
        let mut sink = crate::unexplained::Collector::new(&m.node_name);
        for rec in inputs.records {
            let rec = rec.map_err(invalid)?;
            let is_proc = matches!(rec, Record::Proc(_));
            enricher.apply(rec, &mut sink).map_err(invalid)?;
            if is_proc && found.is_none() {
                found = enricher.find(exec_id);
            }
        }
        sink.finish()?;
        let Some(p) = found else { continue };
        let rows: BTreeMap<usize, _> = ancestry(&p).into_iter().enumerate().collect();
        let get =
            |f: &dyn Fn(&ProcInfo) -> String| rows.values().map(|p| f(p)).collect::<Vec<String>>();
        let df = DataFrame::new_infer_height(vec![
            Column::new(
                "depth".into(),
                rows.keys().map(|d| *d as u32).collect::<Vec<_>>(),
            ),
            Column::new(
                "pid".into(),
                rows.values().map(|p| p.pid).collect::<Vec<_>>(),
            ),
            Column::new("binary".into(), get(&|p| p.binary.clone())),
            Column::new("arguments".into(), get(&|p| p.arguments.clone())),
            Column::new("cwd".into(), get(&|p| p.cwd.clone())),
            Column::new("flags".into(), get(&|p| p.flags.clone())),
            Column::new(
                "start_time".into(),
                get(&|p| {
                    credtrail_core::host::rfc3339_ns(p.ktime_ns as i64 + m.realtime_offset_ns)
                }),
            ),
            Column::new(
                "container_id".into(),
                get(&|p| {
                    p.container
                        .as_ref()
                        .map(|(_, id)| id[..12].to_owned())
                        .unwrap_or_default()
                }),
            ),
            Column::new("exec_id".into(), get(&|p| p.exec_id.clone())),
            // Credentials of this process changed with no call to explain it.
            Column::new(
                "unexplained".into(),
                rows.values()
                    .map(|p| sink.exec_ids.contains(&p.exec_id))
                    .collect::<Vec<_>>(),
            ),
        ])?;
        return Ok(df);
    }
    Err(QueryError::Invalid(format!(
        "no process with exec_id {exec_id} in these captures"
    )))
}
