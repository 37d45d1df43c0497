//! Create and remove a host-network pod with one container through CRI, the
//! way the kubelet does (same labels, cgroupfs parent, log layout). For
//! integration tests against a private containerd (see RECIPE.md).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::api::{self, NamespaceMode};
use crate::{
    CriClient, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, Result,
    rpc,
};

#[derive(Debug, Clone)]
pub struct TestPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Pod labels (kubelet adds `io.kubernetes.pod.*` on top; so does this).
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    /// Kubelet (cgroupfs driver) uses `/kubepods/besteffort/pod<uid>`.
    pub cgroup_parent: String,
    /// Kubelet uses `/var/log/pods/<ns>_<name>_<uid>`; created if missing.
    pub log_directory: PathBuf,
    pub container_name: String,
    pub image: String,
    pub command: Vec<String>,
}

impl TestPod {
    pub fn new(log_root: impl Into<PathBuf>, image: &str) -> Self {
        let (namespace, name, uid) = (
            "credtrail-ns",
            "cri-pod",
            "0c5a5c0e-8d1f-4b5a-9f3e-7a1b2c3d4e5f",
        );
        let log_root: PathBuf = log_root.into();
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            labels: HashMap::from([("app".into(), "credtrail-test".into())]),
            annotations: HashMap::from([
                ("kubernetes.io/config.source".into(), "api".into()),
                ("credtrail.dev/test".into(), "yes".into()),
            ]),
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            log_directory: log_root.join(format!("{namespace}_{name}_{uid}")),
            container_name: "worker".into(),
            image: image.into(),
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                // A credential change every 2 s (root -> nobody via su), for the recorder.
                "echo credtrail-cri-test started; while :; do su -s /bin/true nobody; sleep 2; done".into(),
            ],
        }
    }

    fn host_network_ns() -> api::NamespaceOption {
        api::NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ipc: NamespaceMode::Pod as i32,
            ..Default::default()
        }
    }

    pub fn sandbox_config(&self) -> api::PodSandboxConfig {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_POD_NAME.into(), self.name.clone());
        labels.insert(LABEL_POD_NAMESPACE.into(), self.namespace.clone());
        labels.insert(LABEL_POD_UID.into(), self.uid.clone());
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: 0,
            }),
            // Empty for host-network pods, as the kubelet does: with hostname
            // set and no private UTS namespace, runc refuses ("unable to set
            // hostname without a private UTS namespace").
            hostname: String::new(),
            log_directory: self.log_directory.to_string_lossy().into_owned(),
            labels,
            annotations: self.annotations.clone(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(Self::host_network_ns()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn container_config(&self) -> api::ContainerConfig {
        let labels = HashMap::from([
            (LABEL_POD_NAME.into(), self.name.clone()),
            (LABEL_POD_NAMESPACE.into(), self.namespace.clone()),
            (LABEL_POD_UID.into(), self.uid.clone()),
            (LABEL_CONTAINER_NAME.into(), self.container_name.clone()),
        ]);
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: self.container_name.clone(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: self.command.clone(),
            labels,
            annotations: HashMap::from([(
                "io.kubernetes.container.restartCount".into(),
                "0".into(),
            )]),
            log_path: format!("{}/0.log", self.container_name),
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(Self::host_network_ns()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox + CreateContainer + StartContainer. Returns (sandbox id, container id).
    pub async fn run(&self, cri: &CriClient) -> Result<(String, String)> {
        std::fs::create_dir_all(self.log_directory.join(&self.container_name)).ok();
        let mut rt = cri.runtime();
        let sandbox_config = self.sandbox_config();
        let sb = rt
            .run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(sandbox_config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map_err(rpc("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id;
        let created = rt
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sb.clone(),
                config: Some(self.container_config()),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        let ctr = match created {
            Ok(r) => r.into_inner().container_id,
            Err(s) => {
                let _ = remove_pod(cri, &sb).await;
                return Err(rpc("CreateContainer")(s));
            }
        };
        if let Err(s) = rt
            .start_container(api::StartContainerRequest {
                container_id: ctr.clone(),
            })
            .await
        {
            let _ = remove_pod(cri, &sb).await;
            return Err(rpc("StartContainer")(s));
        }
        Ok((sb, ctr))
    }
}

/// StopPodSandbox + RemovePodSandbox (stops and removes its containers too).
pub async fn remove_pod(cri: &CriClient, sandbox_id: &str) -> Result<()> {
    let mut rt = cri.runtime();
    rt.stop_pod_sandbox(api::StopPodSandboxRequest {
        pod_sandbox_id: sandbox_id.into(),
    })
    .await
    .map_err(rpc("StopPodSandbox"))?;
    rt.remove_pod_sandbox(api::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox_id.into(),
    })
    .await
    .map_err(rpc("RemovePodSandbox"))?;
    Ok(())
}

/// Remove the (now empty) pod cgroup directories the runtime leaves behind
/// under every cgroup v1 hierarchy and the v2 mount (the kubelet does this on
/// a real node). Returns how many were removed.
pub fn remove_pod_cgroups(cgroup_parent: &str) -> usize {
    let mut n = 0;
    let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") else {
        return 0;
    };
    for h in hier.flatten() {
        let mut p = h.path().join(cgroup_parent.trim_start_matches('/'));
        // pod<uid>, then besteffort, then kubepods if empty.
        loop {
            if std::fs::remove_dir(&p).is_ok() {
                n += 1;
            }
            if !p.pop() || p == h.path() {
                break;
            }
        }
    }
    n
}
