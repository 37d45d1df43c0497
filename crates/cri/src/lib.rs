//! Kubernetes pod metadata for a container id, from the node's CRI socket.
//!
//! The recorder maps a task's cgroup path to a 64-hex container id
//! (`cri-containerd-<id>.scope`, `crio-<id>.scope`, or a bare `<id>` under
//! `/kubepods/...` with the cgroupfs driver). [`CriClient::pod_for_container`]
//! turns that id into a [`PodMeta`] with two CRI round trips:
//!
//! 1. `ListContainers{filter.id}` (gives `pod_sandbox_id`, which
//!    `ContainerStatus` does not carry) together with `ContainerStatus`
//!    (gives `image_ref`, the digest reference), concurrently;
//! 2. `PodSandboxStatus(pod_sandbox_id)` (pod name, namespace, uid, labels,
//!    annotations).
//!
//! If the id is a sandbox (the pause container's cgroup), step 1 finds no
//! container and the id is looked up as a sandbox; `container_name` is then
//! `None`.
//!
//! Only CRI `runtime.v1` is spoken (containerd >= 1.5/1.6, CRI-O >= 1.20).

pub mod api {
    //! Generated from CRI `runtime.v1` api.proto by `codegen/` (client only).
    #![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    include!("gen/runtime.v1.rs");
}
pub mod blocking;
pub mod owner;
pub mod testpod;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};

pub use owner::Workload;

/// Well-known CRI sockets, tried in order by [`CriClient::connect_default`].
pub const DEFAULT_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
];

/// Kubelet's labels on every sandbox and container (pkg/kubelet/types/labels.go).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connect to CRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("no CRI socket found (tried {0:?})")]
    NoSocket(Vec<String>),
    #[error("CRI {rpc}: {status}")]
    Rpc {
        rpc: &'static str,
        status: tonic::Status,
    },
    #[error("container or sandbox {0} is not known to the runtime")]
    NotFound(String),
    #[error("runtime reply to {0} had no status")]
    Missing(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn rpc(rpc: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Rpc { rpc, status }
}

/// What the recorder attaches to an event from a Kubernetes container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub sandbox_id: String,
    /// Pod labels as the kubelet passed them (pod labels + `io.kubernetes.pod.*`).
    pub labels: BTreeMap<String, String>,
    /// Pod annotations (kubelet adds `kubernetes.io/config.source`, `.seen`).
    pub annotations: BTreeMap<String, String>,
    /// The id looked up.
    pub container_id: String,
    /// `None` when the id is the pod sandbox (pause) itself.
    pub container_name: Option<String>,
    /// Image as the pod spec named it (`ContainerStatus.image.image`; containerd
    /// 1.6 reports the resolved name, e.g. `localhost/credtrail/busybox:1`).
    pub image: Option<String>,
    /// `ContainerStatus.image_ref`: `repo@sha256:<manifest digest>` when the
    /// runtime knows a repo digest, else the image id.
    pub image_ref: Option<String>,
    /// Image id (`Container.image_ref` from ListContainers: config digest on containerd).
    pub image_id: Option<String>,
    /// Derived owner, a heuristic: CRI carries no ownerReferences.
    pub workload: Option<Workload>,
}

/// A CRI `runtime.v1` client on a Unix socket. Cheap to clone; one HTTP/2
/// connection is shared by clones.
#[derive(Debug, Clone)]
pub struct CriClient {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
}

impl CriClient {
    /// Connect eagerly (fails now if the socket is absent or refuses).
    /// `timeout` bounds connecting and every request.
    pub async fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Self> {
        let socket = path.as_ref().to_path_buf();
        // The URI is required by tonic but unused: the connector ignores it.
        let endpoint = Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .timeout(timeout);
        let sock = socket.clone();
        let channel =
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let sock = sock.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(sock).await?))
                    }
                }))
                .await
                .map_err(|source| Error::Connect {
                    path: socket.clone(),
                    source,
                })?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            socket,
        })
    }

    /// Connect to the first of [`DEFAULT_SOCKETS`] that exists and answers `Version`.
    pub async fn connect_default(timeout: Duration) -> Result<Self> {
        let mut tried = Vec::new();
        for s in DEFAULT_SOCKETS {
            if !Path::new(s).exists() {
                tried.push(format!("{s}: absent"));
                continue;
            }
            match Self::connect(s, timeout).await {
                Ok(c) => match c.version().await {
                    Ok(_) => return Ok(c),
                    Err(e) => tried.push(format!("{s}: {e}")),
                },
                Err(e) => tried.push(format!("{s}: {e}")),
            }
        }
        Err(Error::NoSocket(tried))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
    /// The generated runtime client, for calls this wrapper does not cover.
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }
    pub fn images(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// `Version`: runtime name/version. `Unimplemented` here means the runtime
    /// speaks only v1alpha2 (containerd < 1.5, CRI-O < 1.20).
    pub async fn version(&self) -> Result<api::VersionResponse> {
        let r = self
            .runtime()
            .version(api::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map_err(rpc("Version"))?;
        Ok(r.into_inner())
    }

    /// Pod metadata for a container id (or a sandbox id) as found in a cgroup path.
    pub async fn pod_for_container(&self, id: &str) -> Result<PodMeta> {
        let mut rt1 = self.runtime();
        let mut rt2 = self.runtime();
        let list = rt1.list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                id: id.to_owned(),
                ..Default::default()
            }),
        });
        let status = rt2.container_status(api::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        });
        let (list, status) = tokio::join!(list, status);
        let container = list
            .map_err(rpc("ListContainers"))?
            .into_inner()
            .containers
            .into_iter()
            .next();
        let status = match status {
            Ok(r) => r.into_inner().status,
            Err(s) if s.code() == Code::NotFound => None,
            Err(s) => return Err(rpc("ContainerStatus")(s)),
        };

        let Some(c) = container else {
            // Not a container: maybe the sandbox (pause) itself.
            return match self.sandbox_status(id).await? {
                Some(sb) => Ok(pod_from_sandbox(id, sb, None)),
                None => Err(Error::NotFound(id.to_owned())),
            };
        };
        let sb = self.sandbox_status(&c.pod_sandbox_id).await?;
        let mut meta = match sb {
            Some(sb) => pod_from_sandbox(id, sb, Some(&c.labels)),
            // Sandbox vanished between the calls: fall back on the container's kubelet labels.
            None => pod_from_labels(id, &c.pod_sandbox_id, &c.labels),
        };
        meta.container_name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .or_else(|| c.labels.get(LABEL_CONTAINER_NAME).cloned());
        meta.image = status
            .as_ref()
            .and_then(|s| s.image.as_ref())
            .or(c.image.as_ref())
            .map(|i| i.image.clone())
            .filter(|s| !s.is_empty());
        meta.image_ref = status
            .as_ref()
            .map(|s| s.image_ref.clone())
            .filter(|s| !s.is_empty());
        meta.image_id = Some(c.image_ref.clone()).filter(|s| !s.is_empty());
        Ok(meta)
    }

    /// `PodSandboxStatus`, `None` if the runtime does not know the id.
    pub async fn sandbox_status(&self, id: &str) -> Result<Option<api::PodSandboxStatus>> {
        match self
            .runtime()
            .pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_owned(),
                verbose: false,
            })
            .await
        {
            Ok(r) => r
                .into_inner()
                .status
                .map(Some)
                .ok_or(Error::Missing("PodSandboxStatus")),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(rpc("PodSandboxStatus")(s)),
        }
    }

    /// All pods the runtime knows, as `PodMeta` without container fields. One
    /// call: a recorder can prefill a sandbox-id cache with it at start.
    pub async fn list_pods(&self) -> Result<Vec<PodMeta>> {
        let r = self
            .runtime()
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await
            .map_err(rpc("ListPodSandbox"))?;
        Ok(r.into_inner()
            .items
            .into_iter()
            .map(|p| {
                let status = api::PodSandboxStatus {
                    id: p.id.clone(),
                    metadata: p.metadata,
                    state: p.state,
                    created_at: p.created_at,
                    labels: p.labels,
                    annotations: p.annotations,
                    runtime_handler: p.runtime_handler,
                    ..Default::default()
                };
                pod_from_sandbox(&p.id, status, None)
            })
            .collect())
    }
}

fn sorted(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn pod_from_sandbox(
    id: &str,
    sb: api::PodSandboxStatus,
    container_labels: Option<&std::collections::HashMap<String, String>>,
) -> PodMeta {
    let md = sb.metadata.unwrap_or_default();
    let label = |k: &str| {
        sb.labels
            .get(k)
            .or_else(|| container_labels.and_then(|l| l.get(k)))
            .cloned()
            .unwrap_or_default()
    };
    let pick = |v: String, k: &str| if v.is_empty() { label(k) } else { v };
    let name = pick(md.name, LABEL_POD_NAME);
    let namespace = pick(md.namespace, LABEL_POD_NAMESPACE);
    let uid = pick(md.uid, LABEL_POD_UID);
    let labels = sorted(&sb.labels);
    let annotations = sorted(&sb.annotations);
    let workload = owner::derive(&name, &labels, &annotations);
    PodMeta {
        namespace,
        name,
        uid,
        sandbox_id: sb.id,
        labels,
        annotations,
        container_id: id.to_owned(),
        workload,
        ..Default::default()
    }
}

fn pod_from_labels(
    id: &str,
    sandbox_id: &str,
    l: &std::collections::HashMap<String, String>,
) -> PodMeta {
    let get = |k: &str| l.get(k).cloned().unwrap_or_default();
    PodMeta {
        namespace: get(LABEL_POD_NAMESPACE),
        name: get(LABEL_POD_NAME),
        uid: get(LABEL_POD_UID),
        sandbox_id: sandbox_id.to_owned(),
        container_id: id.to_owned(),
        ..Default::default()
    }
}
