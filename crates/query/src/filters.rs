//! The filters every question accepts (`--node`, `--pod`, `--since`, …),
//! as a polars predicate on the events table.

use polars::prelude::*;

/// Filters every question accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filters {
    /// Only this node.
    #[arg(long, global = true)]
    pub node: Option<String>,
    /// Only this pod, as NAMESPACE/NAME.
    #[arg(long, global = true, value_name = "NS/NAME")]
    pub pod: Option<String>,
    /// Only this container: a container id prefix or a container name.
    #[arg(long, global = true)]
    pub container: Option<String>,
    /// Only this binary: a full path, or a file name.
    #[arg(long, global = true)]
    pub binary: Option<String>,
    /// Only this syscall (setuid, capset, execve, ...).
    #[arg(long, global = true)]
    pub syscall: Option<String>,
    /// Only events at or after this time: RFC 3339, or a duration ago (15m, 2h, 1d).
    #[arg(long, global = true, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only events before this time: RFC 3339, or a duration ago.
    #[arg(long, global = true, value_parser = parse_time)]
    pub until: Option<i64>,
}

/// RFC 3339, or `N[smhd]` before now, as ns since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t
            .timestamp_nanos_opt()
            .ok_or_else(|| format!("{s} is out of range"));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is neither RFC 3339 nor a duration like 15m"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    let now = chrono::Utc::now()
        .timestamp_nanos_opt()
        .ok_or("clock out of range")?;
    Ok(now - n * secs * 1_000_000_000)
}

/// `time` in nanoseconds (every capture has `time_ns` as queried).
pub(crate) fn time_ns() -> Expr {
    col(credtrail_capture::storage::TIME_NS)
}

impl Filters {
    /// The predicate on the events table (None: no filter at all, so the
    /// scan needs no extra pass).
    /// `lf` (events) with the filters applied.
    pub(crate) fn apply(&self, lf: LazyFrame) -> LazyFrame {
        match self.events_predicate() {
            Some(p) => lf.filter(p),
            None => lf,
        }
    }

    pub fn events_predicate(&self) -> Option<Expr> {
        let mut preds = Vec::new();
        if let Some(n) = &self.node {
            preds.push(col("node_name").eq(lit(n.as_str())));
        }
        if let Some(pod) = &self.pod {
            preds.push(match pod.split_once('/') {
                Some((ns, name)) => col("pod_namespace")
                    .eq(lit(ns))
                    .and(col("pod_name").eq(lit(name))),
                None => col("pod_name").eq(lit(pod.as_str())),
            });
        }
        if let Some(c) = &self.container {
            preds.push(
                col("container_id")
                    .str()
                    .starts_with(lit(c.as_str()))
                    .or(col("container_name").eq(lit(c.as_str()))),
            );
        }
        if let Some(b) = &self.binary {
            preds.push(
                col("binary")
                    .eq(lit(b.as_str()))
                    .or(col("binary").str().ends_with(lit(format!("/{b}")))),
            );
        }
        if let Some(s) = &self.syscall {
            preds.push(col("syscall").eq(lit(s.as_str())));
        }
        if let Some(t) = self.since {
            preds.push(time_ns().gt_eq(lit(t)));
        }
        if let Some(t) = self.until {
            preds.push(time_ns().lt(lit(t)));
        }
        preds.into_iter().reduce(Expr::and)
    }
}
