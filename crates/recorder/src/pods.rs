//! Pod metadata on a live node: OCI bundle annotations written by the
//! container runtime, and `kubectl get pods -A -o json` given with `--pods`.
//! Every reader here treats its input as hostile: a missing or malformed
//! source is a warning and an empty answer, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use credtrail_capture::model::container::{
    ContainerRow, PodInfo, is_container_id as is_id, parse_time,
};
use credtrail_pipeline::enrich::PodSource;
use serde::Deserialize;

/// Pod fields from OCI `config.json` annotations (containerd's
/// `io.kubernetes.cri.*` or CRI-O's `io.kubernetes.pod.*` / `cri-o.*`).
pub fn pod_from_annotations(annotations: &BTreeMap<String, String>) -> PodInfo {
    let get = |keys: &[&str]| keys.iter().find_map(|k| annotations.get(*k).cloned());
    let mut labels = BTreeMap::new();
    if let Some(json) = annotations.get("io.kubernetes.cri-o.Labels")
        && let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(json)
    {
        // CRI-O mixes its own io.kubernetes.* keys into the pod's labels.
        labels.extend(
            map.into_iter()
                .filter(|(k, _)| !k.starts_with("io.kubernetes.")),
        );
    }
    // Podman also writes some io.kubernetes.cri-o.* keys: trust the
    // manager annotation first.
    let has_prefix = |p: &str| annotations.keys().any(|k| k.starts_with(p));
    let runtime = match annotations.get("io.container.manager").map(String::as_str) {
        Some("libpod") => Some("podman"),
        Some("cri-o") => Some("cri-o"),
        _ if has_prefix("io.kubernetes.cri-o.") => Some("cri-o"),
        _ if has_prefix("io.kubernetes.cri.") => Some("containerd"),
        _ => None,
    }
    .map(str::to_owned);
    PodInfo {
        runtime,
        pod_namespace: get(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        pod_name: get(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        pod_uid: get(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"]),
        container_name: get(&[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ]),
        image_name: get(&[
            "io.kubernetes.cri.image-name",
            "io.kubernetes.cri-o.ImageName",
            "io.kubernetes.cri-o.Image",
        ]),
        image_id: None,
        pod_labels: labels,
        start_time: annotations
            .get("io.kubernetes.cri-o.Created")
            .and_then(|t| parse_time(t)),
        source: Vec::new(),
        ..PodInfo::default()
    }
}

#[derive(Deserialize)]
struct OciConfig {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Where runtimes keep a container's OCI bundle `config.json`.
fn bundle_candidates(root: &Path, id: &str) -> Vec<PathBuf> {
    let mut v = vec![
        root.join(format!(
            "run/containers/storage/overlay-containers/{id}/userdata/config.json"
        )),
        root.join(format!(
            "var/lib/containers/storage/overlay-containers/{id}/userdata/config.json"
        )),
    ];
    // containerd: one directory per namespace (k8s.io, moby, default, ...).
    if let Ok(nss) = std::fs::read_dir(root.join("run/containerd/io.containerd.runtime.v2.task")) {
        let mut nss: Vec<_> = nss.flatten().map(|e| e.path()).collect();
        nss.sort();
        v.extend(nss.into_iter().map(|ns| ns.join(id).join("config.json")));
    }
    v
}

/// Limit on metadata files read: annotations files are small; anything
/// bigger is not what we are looking for.
const MAX_META_BYTES: u64 = 4 << 20;
/// `kubectl get pods -A -o json` of a large cluster runs to tens of MB.
const MAX_PODS_BYTES: u64 = 512 << 20;

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    credtrail_capture::fs::read_bounded(path, MAX_META_BYTES)
}

/// Pod metadata from the first OCI bundle found for `id` under `root`
/// (normally `/`). Unreadable or malformed files are logged and skipped.
fn pod_from_bundles(root: &Path, id: &str) -> Option<PodInfo> {
    for path in bundle_candidates(root, id) {
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", path.display());
                continue;
            }
        };
        match serde_json::from_slice::<OciConfig>(&bytes) {
            Ok(cfg) => {
                let mut info = pod_from_annotations(&cfg.annotations);
                if info.runtime.is_none() && path.to_string_lossy().contains("/containers/storage/")
                {
                    info.runtime = Some("podman".to_owned());
                }
                info.source.push(path.display().to_string());
                return Some(info);
            }
            Err(e) => tracing::warn!("{} is not an OCI config: {e}", path.display()),
        }
    }
    None
}

#[derive(Deserialize)]
struct PodList {
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct Pod {
    metadata: PodMeta,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize)]
struct PodMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(default, rename = "containerID")]
    container_id: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default, rename = "imageID")]
    image_id: Option<String>,
    #[serde(default)]
    state: ContainerState,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ContainerState {
    #[serde(default)]
    running: Option<StartedAt>,
    #[serde(default)]
    terminated: Option<StartedAt>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartedAt {
    #[serde(default)]
    started_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodsFileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not `kubectl get pods -A -o json` output: {source}",
        path.display()
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Pod metadata by container id (64 hex), from `kubectl get pods -A -o json`.
pub fn parse_pods(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, PodInfo>, PodsFileError> {
    let list: PodList = serde_json::from_slice(bytes).map_err(|source| PodsFileError::Json {
        path: path.to_owned(),
        source,
    })?;
    let mut out = BTreeMap::new();
    for pod in list.items {
        let statuses = pod
            .status
            .container_statuses
            .iter()
            .chain(&pod.status.init_container_statuses)
            .chain(&pod.status.ephemeral_container_statuses);
        for cs in statuses {
            let Some(full) = cs.container_id.as_deref() else {
                continue;
            };
            let (runtime, id) = match full.split_once("://") {
                Some((rt, id)) => (Some(rt.to_owned()), id),
                None => (None, full),
            };
            if !is_id(id) {
                continue;
            }
            out.insert(
                id.to_owned(),
                PodInfo {
                    runtime,
                    pod_namespace: pod.metadata.namespace.clone(),
                    pod_name: Some(pod.metadata.name.clone()),
                    pod_uid: pod.metadata.uid.clone(),
                    container_name: Some(cs.name.clone()),
                    image_name: cs.image.clone(),
                    image_id: cs.image_id.clone(),
                    pod_labels: pod.metadata.labels.clone(),
                    start_time: cs
                        .state
                        .running
                        .as_ref()
                        .or(cs.state.terminated.as_ref())
                        .and_then(|s| s.started_at.as_deref())
                        .and_then(parse_time),
                    source: vec![path.display().to_string()],
                    ..PodInfo::default()
                },
            );
        }
    }
    Ok(out)
}

/// Reads a `--pods` file.
pub fn read_pods_file(path: &Path) -> Result<BTreeMap<String, PodInfo>, PodsFileError> {
    let bytes = credtrail_capture::fs::read_bounded(path, MAX_PODS_BYTES).map_err(|source| {
        PodsFileError::Io {
            path: path.to_owned(),
            source,
        }
    })?;
    parse_pods(path, &bytes)
}

/// Live node: OCI bundle annotations under `root`, then a `--pods` file.
#[derive(Debug, Default)]
pub struct NodePods {
    pub root: std::path::PathBuf,
    pub pods_file: BTreeMap<String, PodInfo>,
    /// The runtime's CRI socket, asked first.
    pub cri: Option<crate::cri::CriSource>,
}

impl PodSource for NodePods {
    fn container_row(&mut self, runtime: &str, id: &str, ktime: u64) -> ContainerRow {
        let sources = [
            self.cri.as_ref().and_then(|c| c.pod_info(id)),
            pod_from_bundles(&self.root, id),
            self.pods_file.get(id).cloned(),
        ];
        // The first source found wins each field; the others fill the gaps.
        let info = sources.into_iter().flatten().reduce(|mut a, b| {
            a.merge(b);
            a
        });
        ContainerRow::new(ktime, runtime, id, info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "55936e548de63f77ceb595d64966dd8e267b391ff0ef63b26c17eb8c2f6510be";

    #[test]
    fn containerd_and_crio_annotations() {
        let ann: BTreeMap<String, String> = [
            ("io.kubernetes.cri.sandbox-name", "xwing"),
            ("io.kubernetes.cri.sandbox-namespace", "default"),
            ("io.kubernetes.cri.sandbox-uid", "u-1"),
            ("io.kubernetes.cri.container-name", "spaceship"),
            (
                "io.kubernetes.cri.image-name",
                "docker.io/tgraf/netperf:latest",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = pod_from_annotations(&ann);
        assert_eq!(p.runtime.as_deref(), Some("containerd"));
        assert_eq!(
            (p.pod_namespace.as_deref(), p.pod_name.as_deref()),
            (Some("default"), Some("xwing"))
        );
        assert_eq!(p.container_name.as_deref(), Some("spaceship"));
        assert_eq!(
            p.image_name.as_deref(),
            Some("docker.io/tgraf/netperf:latest")
        );

        let ann: BTreeMap<String, String> = [
            ("io.kubernetes.pod.name", "xwing"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.container.name", "spaceship"),
            (
                "io.kubernetes.cri-o.ImageName",
                "docker.io/tgraf/netperf:latest",
            ),
            (
                "io.kubernetes.cri-o.Labels",
                r#"{"class":"xwing","io.kubernetes.pod.name":"xwing","org":"alliance"}"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = pod_from_annotations(&ann);
        assert_eq!(p.runtime.as_deref(), Some("cri-o"));
        assert_eq!(p.pod_labels.len(), 2, "{:?}", p.pod_labels);
        assert_eq!(p.pod_labels["org"], "alliance");
    }

    #[test]
    fn kubectl_pods_json_and_malformed_input() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "List",
            "items": [{
                "metadata": {"name": "xwing", "namespace": "default", "uid": "u-1",
                              "labels": {"app.kubernetes.io/name": "xwing", "class": "xwing", "org": "alliance"}},
                "status": {"containerStatuses": [{
                    "name": "spaceship",
                    "containerID": format!("containerd://{ID}"),
                    "image": "docker.io/tgraf/netperf:latest",
                    "imageID": "docker.io/tgraf/netperf@sha256:8e86f744bfea165fd4ce68caa05abc96500f40130b857773186401926af7e9e6",
                    "state": {"running": {"startedAt": "2023-07-05T18:45:16Z"}}
                }, {"name": "waiting"}]}
            }, {"metadata": {"name": "pending"}}]
        });
        let pods = parse_pods(Path::new("pods.json"), json.to_string().as_bytes()).unwrap();
        assert_eq!(pods.len(), 1);
        let p = &pods[ID];
        assert_eq!(p.runtime.as_deref(), Some("containerd"));
        assert_eq!(p.pod_name.as_deref(), Some("xwing"));
        assert_eq!(p.container_name.as_deref(), Some("spaceship"));
        assert!(p.image_id.as_deref().unwrap().contains("@sha256:8e86"));
        assert_eq!(p.pod_labels.len(), 3);
        assert_eq!(p.start_time, Some(1_688_582_716_000_000_000));

        for bad in [&b"not json"[..], b"{}", b"{\"items\": 5}", b"[1,2]", b""] {
            let err = parse_pods(Path::new("pods.json"), bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("pods.json is not `kubectl get pods"),
                "{err}"
            );
        }
    }

    #[test]
    fn bundle_lookup_reads_podman_and_containerd_layouts() {
        let root = tempfile::tempdir().unwrap();
        let podman = root.path().join(format!(
            "run/containers/storage/overlay-containers/{ID}/userdata"
        ));
        std::fs::create_dir_all(&podman).unwrap();
        std::fs::write(
            podman.join("config.json"),
            r#"{"ociVersion":"1.0","annotations":{"io.container.manager":"libpod","io.kubernetes.cri-o.TTY":"false","io.kubernetes.pod.name":"xwing","io.kubernetes.pod.namespace":"default"}}"#,
        )
        .unwrap();
        let p = pod_from_bundles(root.path(), ID).unwrap();
        assert_eq!(p.pod_name.as_deref(), Some("xwing"));
        assert_eq!(p.runtime.as_deref(), Some("podman"));
        // Malformed: a warning and nothing, not a crash.
        std::fs::write(podman.join("config.json"), b"{garbage").unwrap();
        assert_eq!(pod_from_bundles(root.path(), ID), None);
        assert_eq!(pod_from_bundles(root.path(), &"0".repeat(64)), None);
    }
}
