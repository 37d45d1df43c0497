//! The fleet layout: many nodes' captures under one root, as
//! `ROOT/node=<node>/<start>/` (`<start>` the capture's start in UTC,
//! `20261202T181502Z`, with `-2`, `-3`, … when two start in one second).
//! `credtrail-record --out-root ROOT` names its capture so. There is no date
//! level: a capture that runs past midnight would belong to two; time
//! ranges are pruned by each manifest's start and end (credtrail-query) and
//! by the row-group statistics of `time` (any Parquet engine).

use std::path::{Path, PathBuf};

use crate::error::CaptureError;

/// The folder of a node's captures, `node=<node>`; a node name that is not
/// one plain path component is refused.
pub fn node_folder(node: &str) -> Result<String, CaptureError> {
    let plain = !node.is_empty()
        && node != "."
        && node != ".."
        && !node.contains(['/', '\0', '='])
        && !node.chars().any(char::is_control);
    if !plain {
        return Err(CaptureError::Layout {
            message: format!(
                "node name {node:?} cannot name a folder of the fleet layout (node=<node>): use --node-name with letters, digits, '.', '-' or '_'"
            ),
        });
    }
    Ok(format!("node={node}"))
}

/// A new capture's directory under `root` for `node`, started at
/// `start_unix_s` (not created: the capture writer creates it, 0700).
pub fn capture_dir(root: &Path, node: &str, start_unix_s: i64) -> Result<PathBuf, CaptureError> {
    let base = chrono::DateTime::from_timestamp(start_unix_s, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let parent = root.join(node_folder(node)?);
    let mut dir = parent.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = parent.join(format!("{base}-{n}"));
        n += 1;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_are_named_by_node_and_start() {
        let tmp = tempfile::tempdir().unwrap();
        let d = capture_dir(tmp.path(), "node-a", 1_796_234_917).unwrap();
        assert_eq!(d, tmp.path().join("node=node-a/20261202T180837Z"));
        std::fs::create_dir_all(&d).unwrap();
        let again = capture_dir(tmp.path(), "node-a", 1_796_234_917).unwrap();
        assert_eq!(again, tmp.path().join("node=node-a/20261202T180837Z-2"));
        for bad in ["", "..", "a/b", "a=b", "x\ny"] {
            let e = capture_dir(tmp.path(), bad, 0).unwrap_err().to_string();
            assert!(e.contains("--node-name"), "{e}");
        }
    }
}
