//! Pod metadata from the node's container runtime over its CRI socket
//! (containerd, CRI-O): asked once per new container id, when the
//! enrichment first sees it, and kept with the container's row.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::metrics::Live;
use credtrail_capture::model::container::PodInfo;
use credtrail_cri::{DEFAULT_SOCKETS, PodMeta, blocking::CriClient};

/// Each request's bound: a runtime that hangs costs the recorder this
/// much once per new container, then the bundle and `--pods` sources.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct CriSource {
    client: CriClient,
    socket: PathBuf,
    /// Lookups and their time, for `--metrics-addr`.
    live: Live,
}

impl CriSource {
    /// Connects to `socket`, or to the first well-known socket present.
    /// None (logged) when there is none or it does not answer: pod
    /// metadata then comes from bundles and `--pods` alone.
    pub fn connect(socket: Option<&Path>, live: Live) -> Option<CriSource> {
        let candidates: Vec<PathBuf> = match socket {
            Some(s) => vec![s.to_owned()],
            None => DEFAULT_SOCKETS
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect(),
        };
        for socket in candidates {
            match CriClient::connect(&socket, TIMEOUT).and_then(|c| c.version().map(|v| (c, v))) {
                Ok((client, v)) => {
                    tracing::info!(
                        "pod metadata from {} ({} {}, CRI {})",
                        socket.display(),
                        v.runtime_name,
                        v.runtime_version,
                        v.runtime_api_version
                    );
                    return Some(CriSource {
                        client,
                        socket,
                        live,
                    });
                }
                Err(e) => tracing::warn!(
                    "{e}; pod metadata from OCI bundles and --pods only (pass --cri-socket, or --no-cri)"
                ),
            }
        }
        None
    }

    /// The pod of container `id`, if the runtime knows it.
    pub fn pod_info(&self, id: &str) -> Option<PodInfo> {
        let began = std::time::Instant::now();
        let answer = self.client.pod_for_container(id);
        let result = match &answer {
            Ok(_) => "found",
            Err(credtrail_cri::Error::NotFound(_)) => "not_found",
            Err(_) => "error",
        };
        self.live.cri_lookup(result, began.elapsed());
        match answer {
            Ok(m) => Some(pod_info(m, &self.socket)),
            Err(credtrail_cri::Error::NotFound(_)) => None,
            Err(e) => {
                tracing::warn!("pod metadata of container {id}: {e}");
                None
            }
        }
    }
}

fn pod_info(m: PodMeta, socket: &Path) -> PodInfo {
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    let runtime = if socket.to_string_lossy().contains("crio") {
        "cri-o"
    } else {
        "containerd"
    };
    PodInfo {
        runtime: Some(runtime.into()),
        pod_namespace: some(m.namespace),
        pod_name: some(m.name),
        pod_uid: some(m.uid),
        container_name: m.container_name,
        image_name: m.image,
        image_id: m.image_ref.or(m.image_id),
        // The kubelet's own io.kubernetes.* keys are not the pod's labels.
        pod_labels: m
            .labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("io.kubernetes."))
            .collect(),
        annotations: m.annotations,
        workload_kind: m.workload.as_ref().map(|w| w.kind.to_owned()),
        workload: m.workload.map(|w| w.name),
        start_time: None,
        source: vec![format!("cri:{}", socket.display())],
    }
}
