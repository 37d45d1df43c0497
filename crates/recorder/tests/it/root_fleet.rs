//! Root eBPF tests of the fleet layout: captures of several nodes under one
//! root, named by the recorder, read as one dataset.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use credtrail_capture::Capture;
use credtrail_testkit::{bpf_available, query_bin, record_bin, serial};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn out_root_names_each_capture_by_node_and_start_and_query_reads_them_as_one() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    for node in ["node-a", "node-b", "node-a"] {
        let o = Command::new(record_bin())
            .arg("--out-root")
            .arg(&root)
            .args(["--node-name", node, "--duration", "1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut found = Vec::new();
    for node in ["node-a", "node-b"] {
        let folder = root.join(format!("node={node}"));
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
        for entry in std::fs::read_dir(&folder).unwrap() {
            let dir = entry.unwrap().path();
            assert_eq!(mode(&dir), 0o700);
            let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
            // 20261202T181502Z, or with -2 when two start in one second.
            assert!(
                name.len() >= 16 && name.as_bytes()[8] == b'T' && name[..16].ends_with('Z'),
                "{name}"
            );
            let cap = Capture::open(&dir).unwrap();
            assert_eq!(cap.manifest.node_name, node);
            found.push(node);
        }
    }
    found.sort();
    assert_eq!(found, ["node-a", "node-a", "node-b"]);
    // One dataset: the root is read whole.
    let o = Command::new(query_bin())
        .arg(&root)
        .args([
            "--sql",
            "select node_name, count(distinct capture) as captures from events group by node_name order by node_name",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out, "node_name,captures\nnode-a,2\nnode-b,1\n");
}
