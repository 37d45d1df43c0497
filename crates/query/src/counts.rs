//! `summary` on the column scan (`columns.rs`): calls per node, syscall,
//! result, pod and binary, and the processes behind them. Counted per
//! string id and pid on every core (a few thousand entries, whatever the
//! events), then labelled: the `pod` and `result` text is made once per
//! counted entry, not per event. The same answer as the polars plan in
//! `questions::summary`, which older captures and `--policy` still take.

use std::collections::HashSet;

use arrow::array::Array;
use polars::prelude::*;

use crate::changes::Question;
use crate::changes::kinds::Failed;
use crate::columns::{self, Batch, NULL, Strings, TextIds};
use crate::filters::Filters;
use crate::{CaptureInfo, QueryError};

/// What `summary` counts by: string ids, the pid, the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    node: u32,
    syscall: u32,
    pod_namespace: u32,
    pod_name: u32,
    /// Only where no pod names the row (the label uses it then alone).
    container_id: u32,
    binary: u32,
    pid: i64,
    failed: bool,
}

/// The text columns counted by, in `ids`' order.
const TEXT: [&str; 6] = [
    "node_name",
    "syscall",
    "pod_namespace",
    "pod_name",
    "container_id",
    "binary",
];

struct Counts {
    calls: PlHashMap<Key, u64>,
    ids: [TextIds; 6],
}

pub(crate) fn summary(caps: &[CaptureInfo], f: &Filters) -> Result<DataFrame, QueryError> {
    let strings = Strings::default();
    let mut columns: Vec<&str> = TEXT.to_vec();
    columns.extend(["pid", crate::REPEAT_COUNT]);
    columns.extend(Failed.test_columns());
    columns.extend(f.columns());
    let counts = columns::fold(
        caps,
        credtrail_capture::EVENTS,
        &columns,
        None,
        || Counts {
            calls: PlHashMap::default(),
            ids: Default::default(),
        },
        |c, b| count(c, b, f, &strings),
        |a, b| {
            for (k, n) in b.calls {
                *a.calls.entry(k).or_insert(0) += n;
            }
        },
    )?;
    label(counts.calls, &strings)
}

fn count(c: &mut Counts, b: &Batch, f: &Filters, strings: &Strings) -> Result<(), QueryError> {
    let keep = f.keep(b)?;
    let failed = Failed.prepare(b)?;
    let pid = b.need_ints("pid")?;
    let repeat = b.ints(crate::REPEAT_COUNT);
    let [node, syscall, ns, name, cid, binary] = &mut c.ids;
    let node = node.of(strings, b, TEXT[0]);
    let syscall = syscall.of(strings, b, TEXT[1]);
    let ns = ns.of(strings, b, TEXT[2]);
    let name = name.of(strings, b, TEXT[3]);
    let cid = cid.of(strings, b, TEXT[4]);
    let binary = binary.of(strings, b, TEXT[5]);
    for i in 0..b.len() {
        if keep.as_ref().is_some_and(|k| !k[i]) {
            continue;
        }
        let pod_name = name.id(i);
        let key = Key {
            node: node.id(i),
            syscall: syscall.id(i),
            pod_namespace: ns.id(i),
            pod_name,
            container_id: if pod_name == NULL { cid.id(i) } else { NULL },
            binary: binary.id(i),
            pid: if pid.is_null(i) {
                i64::MIN
            } else {
                pid.value(i)
            },
            failed: failed(i).is_some(),
        };
        let calls = columns::opt_int(repeat, i).map_or(1, |n| n.max(1) as u64);
        *c.calls.entry(key).or_insert(0) += calls;
    }
    Ok(())
}

/// The counted entries as `summary`'s rows: labels made, calls summed and
/// distinct processes counted per label, in the plan's order.
fn label(calls: PlHashMap<Key, u64>, strings: &Strings) -> Result<DataFrame, QueryError> {
    let text = |id: u32| strings.get(id).map(|s| s.to_string());
    type Label = (
        Option<String>,
        Option<String>,
        bool,
        Option<String>,
        Option<String>,
    );
    let mut groups: PlHashMap<Label, (u64, HashSet<i64>)> = PlHashMap::default();
    for (k, n) in calls {
        // `ns/name` when a pod is named, else the container id's first 12
        // characters (as `questions::pod_expr`).
        let pod = match text(k.pod_name) {
            Some(name) => Some(match text(k.pod_namespace) {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            }),
            None => text(k.container_id).map(|id| id.chars().take(12).collect()),
        };
        let g = groups
            .entry((text(k.node), text(k.syscall), k.failed, pod, text(k.binary)))
            .or_default();
        g.0 += n;
        g.1.insert(k.pid);
    }
    let rows: Vec<(Label, (u64, HashSet<i64>))> = groups.into_iter().collect();
    let strs =
        |f: &dyn Fn(&Label) -> Option<String>| rows.iter().map(|(l, _)| f(l)).collect::<Vec<_>>();
    let df = DataFrame::new_infer_height(vec![
        Column::new("node_name".into(), strs(&|l| l.0.clone())),
        Column::new("syscall".into(), strs(&|l| l.1.clone())),
        Column::new(
            "result".into(),
            strs(&|l| Some(if l.2 { "failed" } else { "ok" }.to_owned())),
        ),
        Column::new("pod".into(), strs(&|l| l.3.clone())),
        Column::new("binary".into(), strs(&|l| l.4.clone())),
        Column::new(
            "events".into(),
            rows.iter().map(|(_, g)| g.0).collect::<Vec<u64>>(),
        ),
        Column::new(
            "processes".into(),
            rows.iter()
                .map(|(_, g)| g.1.len() as IdxSize)
                .collect::<Vec<_>>(),
        ),
    ])?;
    Ok(df.sort(
        ["events", "node_name", "syscall", "result", "pod", "binary"],
        SortMultipleOptions::default()
            .with_order_descending_multi([true, false, false, false, false, false])
            .with_nulls_last(true),
    )?)
}
