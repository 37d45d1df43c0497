//! What `--policy` kept of one capture's events, as a filter on its
//! `events` table (decided in `policy_pass.rs`).

use polars::prelude::*;

/// The events one capture keeps: per policy (in the order given), the
/// `seq` of each event it names.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub(crate) by_policy: Vec<(String, Vec<u64>)>,
}

impl Kept {
    /// `events` narrowed to the kept rows, each named after its policy.
    pub fn apply(&self, events: LazyFrame) -> LazyFrame {
        let all: Vec<u64> = self
            .by_policy
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        let seqs = |v: &[u64]| lit(Series::new("seq".into(), v)).implode(false);
        let mut name = lit(NULL).cast(DataType::String);
        for (policy, kept) in self.by_policy.iter().rev() {
            name = when(col("seq").is_in(seqs(kept), false))
                .then(lit(policy.as_str()))
                .otherwise(name);
        }
        events
            .filter(col("seq").is_in(seqs(&all), false))
            .with_column(name.alias("policy"))
    }
}
