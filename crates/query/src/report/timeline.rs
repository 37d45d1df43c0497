//! The timeline's data: each lane (a pod, a container, or a process
//! outside containers, on a node) with its events counted in equal slices
//! of the range, and the findings as marks. Counting is one polars
//! aggregation over the events, so its size is lanes × buckets however
//! many events there are.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use super::data::{Lane, Mark};
use crate::filters::{Filters, time_ns};
use crate::names::NS_COLUMN;
use crate::questions::{events, failed_expr, has_column, pod_expr};
use crate::{CaptureInfo, QueryError, Streaming};

/// Slices of the range each lane is counted in.
pub const BUCKETS: u32 = 160;
/// Lanes drawn; the rest are merged into one.
pub const MAX_LANES: usize = 30;

/// The filtered events' first and last time (ns) and their number.
pub fn extent(caps: &[CaptureInfo], f: &Filters) -> Result<(Option<(i64, i64)>, u64), QueryError> {
    let df = events(caps, f)?
        .select([
            time_ns().min().alias("lo"),
            time_ns().max().alias("hi"),
            len().cast(DataType::UInt64).alias("n"),
        ])
        .collect_streaming()?;
    let get = |name: &str| -> Result<Option<i64>, QueryError> {
        Ok(df.column(name)?.cast(&DataType::Int64)?.i64()?.get(0))
    };
    let n = df.column("n")?.u64()?.get(0).unwrap_or(0);
    Ok((get("lo")?.zip(get("hi")?), n))
}

/// Where a row goes: (node, lane label). `pod` is the questions' `pod`
/// column (`ns/name`, or a container id's first 12 characters when no pod
/// names it); `container` a container id for rows that keep it apart.
pub fn lane_of(
    node: Option<&str>,
    pod: Option<&str>,
    container: Option<&str>,
    binary: Option<&str>,
) -> (String, String) {
    let label = match (pod, container) {
        (Some(p), _) if p.contains('/') => format!("pod {p}"),
        // By characters: a hostile capture's id need not be hex.
        (Some(c), _) | (None, Some(c)) => {
            format!("container {}", c.chars().take(12).collect::<String>())
        }
        (None, None) => format!("process {}", binary.unwrap_or("(unknown binary)")),
    };
    (node.unwrap_or("").to_owned(), label)
}

/// Events and refused attempts per lane and bucket of `start_ns..=end_ns`.
pub fn counts(
    caps: &[CaptureInfo],
    f: &Filters,
    start_ns: i64,
    end_ns: i64,
) -> Result<BTreeMap<(String, String), Lane>, QueryError> {
    let mut lf = events(caps, f)?;
    let has_namespaces = has_column(&mut lf, NS_COLUMN)?;
    // Float: an offset times BUCKETS may not fit an integer over years.
    let per_ns = f64::from(BUCKETS) / ((end_ns - start_ns) as f64 + 1.0);
    let df = lf
        .with_columns([
            pod_expr(),
            ((time_ns() - lit(start_ns)).cast(DataType::Float64) * lit(per_ns))
                .cast(DataType::UInt32)
                .alias("bucket"),
        ])
        .group_by([
            col("node_name"),
            col("pod"),
            // Processes outside pods have a lane each; in a pod, one lane.
            when(col("pod").is_null())
                .then(col("binary"))
                .otherwise(lit(NULL).cast(DataType::String))
                .alias("binary"),
            col("bucket"),
        ])
        .agg([
            len().cast(DataType::UInt64).alias("n"),
            failed_expr(has_namespaces)
                .cast(DataType::UInt64)
                .sum()
                .alias("refused"),
        ])
        .collect_streaming()?;
    let text = |name: &str| super::data::text_column(&df, name);
    let (node, pod, binary) = (text("node_name")?, text("pod")?, text("binary")?);
    let bucket = df.column("bucket")?.u32()?;
    let n = df.column("n")?.u64()?;
    let refused = df.column("refused")?.u64()?;
    let mut lanes: BTreeMap<(String, String), Lane> = BTreeMap::new();
    for i in 0..df.height() {
        let key = lane_of(
            node[i].as_deref(),
            pod[i].as_deref(),
            None,
            binary[i].as_deref(),
        );
        let lane = lanes.entry(key.clone()).or_insert_with(|| Lane {
            node: key.0,
            label: key.1,
            events: 0,
            cells: Vec::new(),
        });
        let b = bucket.get(i).unwrap_or(0).min(BUCKETS - 1);
        let (n, r) = (n.get(i).unwrap_or(0), refused.get(i).unwrap_or(0));
        lane.events += n;
        lane.cells.push((b, n, r));
    }
    for lane in lanes.values_mut() {
        // Two groups can share a bucket (a pod's processes): one cell each.
        let mut merged: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for (b, n, r) in lane.cells.drain(..) {
            let e = merged.entry(b).or_default();
            e.0 += n;
            e.1 += r;
        }
        lane.cells = merged.into_iter().map(|(b, (n, r))| (b, n, r)).collect();
    }
    Ok(lanes)
}

/// A mark before it has a lane index.
pub struct Placed {
    pub key: (String, String),
    pub time_ns: Option<i64>,
    pub mark: Mark,
}

/// The lanes drawn, in order: lanes with marks first (by their first
/// mark), then the busiest; past [`MAX_LANES`] the rest are one lane.
/// Gives each mark its lane index; returns the notes on what was merged.
pub fn layout(
    mut counted: BTreeMap<(String, String), Lane>,
    placed: Vec<Placed>,
    several_nodes: bool,
) -> (Vec<Lane>, Vec<Mark>, Vec<String>) {
    // Lanes of marks the event counts do not know (an offline unexplained
    // change of a process with no event in the range) exist all the same.
    for p in &placed {
        counted.entry(p.key.clone()).or_insert_with(|| Lane {
            node: p.key.0.clone(),
            label: p.key.1.clone(),
            events: 0,
            cells: Vec::new(),
        });
    }
    let order = lane_order(&counted, &placed);
    let keep = if order.len() > MAX_LANES {
        MAX_LANES - 1
    } else {
        order.len()
    };
    let index: HashMap<(String, String), usize> = order
        .iter()
        .take(keep)
        .enumerate()
        .map(|(i, k)| ((*k).clone(), i))
        .collect();
    let rest = &order[keep..];
    let mut lanes: Vec<Lane> = order
        .iter()
        .take(keep)
        .map(|k| counted[*k].clone())
        .collect();
    let mut notes = Vec::new();
    if !rest.is_empty() {
        let other = merged_lane(&counted, rest);
        notes.push(format!(
            "{} pods and processes with the fewest events are drawn as one lane ({} events)",
            rest.len(),
            other.events
        ));
        lanes.push(other);
    }
    if several_nodes {
        name_nodes(&mut lanes);
    }
    let other = lanes.len().saturating_sub(1);
    let marks = placed
        .into_iter()
        .map(|p| {
            let mut m = p.mark;
            m.lane = index.get(&p.key).copied().unwrap_or(other);
            m
        })
        .collect();
    (lanes, marks, notes)
}

/// Every lane's key in drawing order: lanes with marks first (by their
/// first mark), then the busiest, then by key.
fn lane_order<'c>(
    counted: &'c BTreeMap<(String, String), Lane>,
    placed: &[Placed],
) -> Vec<&'c (String, String)> {
    let mut first_mark: HashMap<&(String, String), i64> = HashMap::new();
    for p in placed {
        let t = first_mark.entry(&p.key).or_insert(p.mark.t_us);
        *t = (*t).min(p.mark.t_us);
    }
    let mut order: Vec<&(String, String)> = counted.keys().collect();
    order.sort_by(|a, b| {
        let rank = |k: &(String, String)| {
            (
                first_mark.get(k).map_or((1, 0), |t| (0, *t)),
                std::cmp::Reverse(counted[k].events),
            )
        };
        rank(a).cmp(&rank(b)).then(a.cmp(b))
    });
    order
}

/// The lanes `rest` of `counted` drawn as one.
fn merged_lane(counted: &BTreeMap<(String, String), Lane>, rest: &[&(String, String)]) -> Lane {
    let mut other = Lane {
        node: String::new(),
        label: format!("{} other lanes", rest.len()),
        events: 0,
        cells: Vec::new(),
    };
    let mut merged: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for k in rest {
        let lane = &counted[*k];
        other.events += lane.events;
        for (b, n, r) in &lane.cells {
            let e = merged.entry(*b).or_default();
            e.0 += n;
            e.1 += r;
        }
    }
    other.cells = merged.into_iter().map(|(b, (n, r))| (b, n, r)).collect();
    other
}

/// Names each lane's node in its label (when the lane has one).
fn name_nodes(lanes: &mut [Lane]) {
    for lane in lanes {
        if !lane.node.is_empty() {
            lane.label = format!("{}: {}", lane.node, lane.label);
        }
    }
}
