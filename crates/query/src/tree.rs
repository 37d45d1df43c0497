//! `tree`: a process's ancestry as it was when it existed, rebuilt by
//! replaying its capture through the recorder's own process cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::*;

use credtrail_pipeline::process::{Image, ProcInfo};

use crate::{CaptureInfo, QueryError, invalid};

/// A process image and its ancestors, the image first, as far as the
/// process cache keeps them (`tree`, and the report's trees); and how many
/// ancestors above those it counted but did not keep.
pub(crate) fn ancestry(p: &ProcInfo) -> (Vec<&Image>, u64) {
    let chain = std::iter::once(&*p.image)
        .chain(p.ancestors.iter().map(|a| &**a))
        .collect();
    (chain, p.ancestors_left_out())
}

/// The first `n` characters of a container id (a hostile capture's id need
/// be neither hex nor long).
pub(crate) fn short_id(id: &str, n: usize) -> String {
    id.chars().take(n).collect()
}

/// The ancestry of a process image as it was when it existed, rebuilt by
/// replaying the capture through the recorder's own process cache.
pub fn tree(caps_: &[CaptureInfo], exec_id: &str) -> Result<DataFrame, QueryError> {
    for c in crate::answered(caps_) {
        let (found, sink) = replay(c, exec_id)?;
        let Some(p) = found else { continue };
        return frame(&rows(&p), c.manifest.realtime_offset_ns, &sink);
    }
    Err(QueryError::Invalid(format!(
        "no process with exec_id {exec_id} in these captures"
    )))
}

/// Replays capture `c` to its end: the process image `exec_id` as the
/// cache kept it, if it is there, and the unexplained changes seen.
fn replay(
    c: &CaptureInfo,
    exec_id: &str,
) -> Result<(Option<Arc<ProcInfo>>, crate::unexplained::Collector), QueryError> {
    use credtrail_pipeline::sink::Record;
    let cap = c.capture();
    let mut inputs = credtrail_pipeline::playback::open(&cap).map_err(invalid)?;
    let mut enricher = credtrail_pipeline::playback::enricher(&cap, &mut inputs);
    let m = &c.manifest;
    let mut found = enricher.find(exec_id);
    // To the end: an ancestor's credentials may have changed
    // unexplained after the process was found.
    let mut sink = crate::unexplained::Collector::exec_ids_only(&m.node_name);
    for rec in inputs.records {
        let rec = rec.map_err(invalid)?;
        // The image a lifecycle record makes is its pid's entry.
        let pid = match &rec {
            Record::Proc(p) if found.is_none() => Some(p.pid),
            _ => None,
        };
        enricher.apply(rec, &mut sink).map_err(invalid)?;
        if let Some(pid) = pid {
            found = enricher
                .process(pid)
                .filter(|p| p.exec_id == exec_id)
                .cloned();
        }
    }
    sink.finish()?;
    Ok((found, sink))
}

/// The tree's rows by depth: the image, its ancestors, and a row saying
/// how many more the cache did not keep.
fn rows(p: &ProcInfo) -> BTreeMap<usize, Image> {
    let (chain, left_out) = ancestry(p);
    let mut rows: BTreeMap<usize, Image> = chain.into_iter().cloned().enumerate().collect();
    if left_out > 0 {
        // The cache keeps a bounded ancestry: say how much is above it.
        let depth = rows.len();
        rows.insert(
            depth,
            Image {
                binary: format!("… {left_out} more ancestors, not kept"),
                ..Image::default()
            },
        );
    }
    rows
}

/// The answer's frame of `rows`; `realtime_offset_ns` makes their start
/// times wall-clock, `sink` tells the unexplained.
fn frame(
    rows: &BTreeMap<usize, Image>,
    realtime_offset_ns: i64,
    sink: &crate::unexplained::Collector,
) -> Result<DataFrame, QueryError> {
    let get = |f: &dyn Fn(&Image) -> String| rows.values().map(f).collect::<Vec<String>>();
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
                if p.exec_id.is_empty() {
                    return String::new();
                }
                credtrail_capture::host::rfc3339_ns(
                    (p.ktime_ns as i64).saturating_add(realtime_offset_ns),
                )
            }),
        ),
        Column::new(
            "container_id".into(),
            get(&|p| {
                p.container
                    .as_ref()
                    .map(|(_, id)| short_id(id, 12))
                    .unwrap_or_default()
            }),
        ),
        Column::new("exec_id".into(), get(&|p| p.exec_id.clone())),
        // Credentials of this process changed with no call to explain it.
        Column::new(
            "unexplained".into(),
            rows.values()
                .map(|p| !p.exec_id.is_empty() && sink.exec_ids.contains(&p.exec_id))
                .collect::<Vec<_>>(),
        ),
    ])?;
    Ok(df)
}
