//! A container credtrail saw and the pod metadata found for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A container credtrail saw, with whatever pod metadata was found.
/// Stored in `DIR/containers/` so offline analysis needs no cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRow {
    /// When it was first seen (boot clock).
    pub first_seen_ktime_ns: u64,
    /// 64 hex characters.
    pub container_id: String,
    /// `containerd`, `cri-o`, `docker`, `podman`, or empty when unknown.
    pub runtime: String,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub container_name: Option<String>,
    pub image_name: Option<String>,
    pub image_id: Option<String>,
    /// `key=value`, sorted.
    pub pod_labels: Vec<String>,
    /// When the runtime started the container (ns since the epoch), from
    /// the pods file's `startedAt` or the runtime's `Created` annotation.
    pub container_start_time: Option<i64>,
    /// Where the metadata came from (file paths, `cri:SOCKET`), `;`-separated.
    pub source: String,
    /// Pod annotations as `key=value`, sorted (from the CRI API; absent
    /// from captures made before they were recorded: read as empty).
    #[serde(default)]
    pub pod_annotations: Vec<String>,
    /// The pod's owning workload and its kind (`Deployment`, `DaemonSet`,
    /// `StatefulSet`, `Job`, `CronJob`, `Node` for static pods), derived
    /// from the pod's labels and name: CRI carries no owner references.
    #[serde(default)]
    pub workload: Option<String>,
    #[serde(default)]
    pub workload_kind: Option<String>,
}

/// A container id: 64 hex characters.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pod metadata for one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub runtime: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub container_name: Option<String>,
    pub image_name: Option<String>,
    pub image_id: Option<String>,
    pub pod_labels: BTreeMap<String, String>,
    pub start_time: Option<i64>,
    pub source: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub workload: Option<String>,
    pub workload_kind: Option<String>,
}

/// RFC 3339 text to ns since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
}

impl PodInfo {
    /// Fills what `self` (annotations) lacks from `other` (a pods file):
    /// labels merge; `other` wins on runtime, image id and start time.
    pub fn merge(&mut self, other: PodInfo) {
        fn fill(a: &mut Option<String>, b: Option<String>) {
            if a.is_none() {
                *a = b;
            }
        }
        // The cluster's name for the runtime (kubectl's containerID prefix)
        // is what users search by.
        if other.runtime.is_some() {
            self.runtime = other.runtime;
        }
        fill(&mut self.pod_namespace, other.pod_namespace);
        fill(&mut self.pod_name, other.pod_name);
        fill(&mut self.pod_uid, other.pod_uid);
        fill(&mut self.container_name, other.container_name);
        fill(&mut self.image_name, other.image_name);
        if other.image_id.is_some() {
            self.image_id = other.image_id;
        }
        // The orchestrator's start time beats the runtime's creation time.
        if other.start_time.is_some() {
            self.start_time = other.start_time;
        }
        self.pod_labels.extend(other.pod_labels);
        self.source.extend(other.source);
        self.annotations.extend(other.annotations);
        fill(&mut self.workload, other.workload);
        fill(&mut self.workload_kind, other.workload_kind);
    }
}

impl ContainerRow {
    pub fn new(first_seen_ktime_ns: u64, runtime: &str, id: &str, info: Option<PodInfo>) -> Self {
        let info = info.unwrap_or_default();
        ContainerRow {
            first_seen_ktime_ns,
            container_id: id.to_owned(),
            runtime: info.runtime.unwrap_or_else(|| runtime.to_owned()),
            pod_namespace: info.pod_namespace,
            pod_name: info.pod_name,
            pod_uid: info.pod_uid,
            container_name: info.container_name,
            image_name: info.image_name,
            image_id: info.image_id,
            pod_labels: info
                .pod_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            container_start_time: info.start_time.map(super::micros),
            source: info.source.join(";"),
            pod_annotations: info
                .annotations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            workload: info.workload,
            workload_kind: info.workload_kind,
        }
    }
}
