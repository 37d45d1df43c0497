//! The pod's owning workload, guessed from labels, annotations and the pod
//! name. CRI has no ownerReferences: the kubelet passes the pod's labels and
//! annotations (plus `io.kubernetes.pod.*`) to RunPodSandbox, nothing else.
//! Every result is a heuristic and says which rule produced it; the exact
//! answer needs the API server (`GET pod` -> `metadata.ownerReferences`).
//!
//! Rules, first match wins:
//! - annotation `kubernetes.io/config.source` = `file`|`http`, or a
//!   `kubernetes.io/config.mirror` annotation: a static pod (owner: the Node).
//! - label `pod-template-hash=H` and name `X-H-xxxxx`: ReplicaSet `X-H`,
//!   owned by Deployment `X` (the hash label is set only by the Deployment
//!   controller).
//! - label `statefulset.kubernetes.io/pod-name` (+ `controller-revision-hash`):
//!   StatefulSet = name without its trailing `-<ordinal>`.
//! - labels `controller-revision-hash` + `pod-template-generation`: DaemonSet
//!   = name without its trailing `-xxxxx`.
//! - label `batch.kubernetes.io/job-name` or `job-name`: Job; a job name
//!   `X-<8+ digits>` (scheduled minute since the epoch) is reported as
//!   CronJob `X`, owner Job.
//! - otherwise `None` (a bare pod, or a ReplicaSet/ReplicationController/
//!   custom controller that leaves no label: not guessable).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Top-level controller kind: Deployment, StatefulSet, DaemonSet, Job, CronJob, Node.
    pub kind: &'static str,
    pub name: String,
    /// Direct owner of the pod when it differs (ReplicaSet of a Deployment,
    /// Job of a CronJob), as `(kind, name)`.
    pub owner: Option<(&'static str, String)>,
    /// Which rule matched (for the event's provenance).
    pub rule: &'static str,
}

fn strip_suffix_after_dash(name: &str, ok: impl Fn(&str) -> bool) -> Option<&str> {
    let (head, tail) = name.rsplit_once('-')?;
    (!head.is_empty() && ok(tail)).then_some(head)
}

fn is_generate_suffix(s: &str) -> bool {
    // apiserver generateName suffix: 5 chars of "bcdfghjklmnpqrstvwxz2456789".
    s.len() == 5
        && s.bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

pub fn derive(
    pod_name: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<Workload> {
    let l = |k: &str| labels.get(k).map(String::as_str);
    let src = annotations
        .get("kubernetes.io/config.source")
        .map(String::as_str);
    if matches!(src, Some("file" | "http"))
        || annotations.contains_key("kubernetes.io/config.mirror")
    {
        // Static pod: named <manifest name>-<node name>; the node is not in CRI.
        return Some(Workload {
            kind: "Node",
            name: String::new(),
            owner: None,
            rule: "static-pod annotation",
        });
    }
    if let Some(hash) = l("pod-template-hash") {
        let rs = strip_suffix_after_dash(pod_name, is_generate_suffix)?;
        let deploy = rs.strip_suffix(hash)?.strip_suffix('-')?;
        return Some(Workload {
            kind: "Deployment",
            name: deploy.to_owned(),
            owner: Some(("ReplicaSet", rs.to_owned())),
            rule: "pod-template-hash label + name X-<hash>-xxxxx",
        });
    }
    if l("statefulset.kubernetes.io/pod-name").is_some() {
        let sts = strip_suffix_after_dash(pod_name, |t| {
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
        })?;
        return Some(Workload {
            kind: "StatefulSet",
            name: sts.to_owned(),
            owner: None,
            rule: "statefulset pod-name label + name X-<ordinal>",
        });
    }
    if l("controller-revision-hash").is_some() && l("pod-template-generation").is_some() {
        let ds = strip_suffix_after_dash(pod_name, is_generate_suffix)?;
        return Some(Workload {
            kind: "DaemonSet",
            name: ds.to_owned(),
            owner: None,
            rule: "controller-revision-hash + pod-template-generation labels",
        });
    }
    if let Some(job) = l("batch.kubernetes.io/job-name").or(l("job-name")) {
        if let Some(cj) = strip_suffix_after_dash(job, |t| {
            t.len() >= 8 && t.bytes().all(|b| b.is_ascii_digit())
        }) {
            return Some(Workload {
                kind: "CronJob",
                name: cj.to_owned(),
                owner: Some(("Job", job.to_owned())),
                rule: "job-name label X-<minutes>",
            });
        }
        return Some(Workload {
            kind: "Job",
            name: job.to_owned(),
            owner: None,
            rule: "job-name label",
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn deployment() {
        let w = derive(
            "web-7d4b9c8f6d-x2kqz",
            &m(&[("pod-template-hash", "7d4b9c8f6d")]),
            &m(&[]),
        )
        .unwrap();
        assert_eq!((w.kind, w.name.as_str()), ("Deployment", "web"));
        assert_eq!(w.owner, Some(("ReplicaSet", "web-7d4b9c8f6d".into())));
    }
    #[test]
    fn statefulset_daemonset_job_cronjob_static_bare() {
        let sts = derive(
            "db-12",
            &m(&[
                ("statefulset.kubernetes.io/pod-name", "db-12"),
                ("controller-revision-hash", "db-5f7c"),
            ]),
            &m(&[]),
        )
        .unwrap();
        assert_eq!((sts.kind, sts.name.as_str()), ("StatefulSet", "db"));
        let ds = derive(
            "node-exporter-bx7t4",
            &m(&[
                ("controller-revision-hash", "6c9d"),
                ("pod-template-generation", "3"),
            ]),
            &m(&[]),
        )
        .unwrap();
        assert_eq!((ds.kind, ds.name.as_str()), ("DaemonSet", "node-exporter"));
        let job = derive(
            "migrate-abcde",
            &m(&[("batch.kubernetes.io/job-name", "migrate")]),
            &m(&[]),
        )
        .unwrap();
        assert_eq!((job.kind, job.name.as_str()), ("Job", "migrate"));
        let cj = derive(
            "backup-28912345-q9zxk",
            &m(&[("job-name", "backup-28912345")]),
            &m(&[]),
        )
        .unwrap();
        assert_eq!((cj.kind, cj.name.as_str()), ("CronJob", "backup"));
        let st = derive(
            "etcd-node1",
            &m(&[]),
            &m(&[("kubernetes.io/config.source", "file")]),
        )
        .unwrap();
        assert_eq!(st.kind, "Node");
        assert_eq!(
            derive(
                "cri-pod",
                &m(&[("app", "credtrail-test")]),
                &m(&[("kubernetes.io/config.source", "api")])
            ),
            None
        );
    }
}
