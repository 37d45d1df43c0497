//! Fuzz entry points for what only the live recorder parses: raw ring
//! buffer records, `--pods` JSON, OCI annotations and cgroup paths (the
//! capture parsers are in `credtrail_capture::fuzzing`). Any panic is a bug.

use std::collections::BTreeMap;
use std::path::Path;

/// `kubectl get pods -A -o json` output given to `--pods`.
pub fn pods(data: &[u8]) {
    let _ = crate::pods::parse_pods(Path::new("fuzz/pods.json"), data);
}

/// An OCI bundle's `config.json` annotations and a task's cgroup path.
pub fn container_metadata(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = credtrail_pipeline::enrich::containers::container_from_path(&text);
    let comps: Vec<&str> = text.split('/').rev().collect();
    let _ = credtrail_pipeline::enrich::containers::container_from_components(&comps);
    if let Ok(annotations) = serde_json::from_slice::<BTreeMap<String, String>>(data) {
        let _ = crate::pods::pod_from_annotations(&annotations);
    }
}

/// A raw ring buffer record, as the kernel side hands it over.
pub fn raw_record(data: &[u8]) {
    let ctx = crate::decode::DecodeContext {
        node_name: "fuzz".into(),
        realtime_offset_ns: 1_700_000_000_000_000_000,
    };
    // Whatever decodes must also print without panicking.
    if let Ok(credtrail_pipeline::sink::Record::Cred(ev)) = crate::decode::decode_record(data, &ctx)
    {
        for format in [
            credtrail_pipeline::print::PrintFormat::Json,
            credtrail_pipeline::print::PrintFormat::Compact,
            credtrail_pipeline::print::PrintFormat::Tetragon,
            credtrail_pipeline::print::PrintFormat::TetragonCompact,
        ] {
            let _ = credtrail_pipeline::print::print_event(&mut std::io::sink(), format, &ev);
        }
    }
}
