//! Which container a task is in, from its cgroup path.

use credtrail_capture::model::container::is_container_id as is_id;

/// The container a cgroup path belongs to: `(runtime, id)`. `components`
/// run leaf first. Patterns: `cri-containerd-<id>.scope`, `crio-<id>.scope`
/// (not `crio-conmon-`), `docker-<id>.scope`, `libpod-<id>[.scope]` (not
/// `libpod-conmon-`), `/docker/<id>`, and a bare `<id>` (kubepods cgroupfs).
pub fn container_from_components<S: AsRef<str>>(
    components: &[S],
) -> Option<(&'static str, String)> {
    for (i, c) in components.iter().enumerate() {
        let c = c.as_ref();
        let c = c.strip_suffix(".scope").unwrap_or(c);
        for (prefix, runtime) in [
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("docker-", "docker"),
            ("libpod-", "podman"),
        ] {
            if let Some(id) = c.strip_prefix(prefix).filter(|id| is_id(id)) {
                return Some((runtime, id.to_owned()));
            }
        }
        if is_id(c) {
            let parent = components.get(i + 1).map(|p| p.as_ref());
            let runtime = match parent {
                Some("docker") => "docker",
                _ => "",
            };
            return Some((runtime, c.to_owned()));
        }
    }
    None
}

/// Same, for a whole path like `/kubepods/besteffort/pod<uid>/<id>`.
pub fn container_from_path(path: &str) -> Option<(&'static str, String)> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).rev().collect();
    container_from_components(&comps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "55936e548de63f77ceb595d64966dd8e267b391ff0ef63b26c17eb8c2f6510be";

    #[test]
    fn every_reference_cgroup_pattern() {
        let cases = [
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0c5a5c0e_8d1f_4b5a.slice/cri-containerd-{ID}.scope"
                ),
                "containerd",
            ),
            (
                format!("/kubepods/besteffort/pod0c5a5c0e-8d1f-4b5a/{ID}"),
                "",
            ),
            (
                format!(
                    "/system.slice/docker-aaaa{}.scope/kubepods/besteffort/pod1/{ID}",
                    &ID[4..]
                ),
                "",
            ),
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/docker/{ID}"), "docker"),
            (format!("/machine.slice/libpod-{ID}.scope"), "podman"),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                "podman",
            ),
            (format!("/libpod_parent/libpod-{ID}"), "podman"),
            (
                format!("/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"),
                "cri-o",
            ),
        ];
        for (path, runtime) in &cases {
            assert_eq!(
                container_from_path(path),
                Some((*runtime, ID.to_owned())),
                "{path}"
            );
        }
        // The kind/minikube nesting reports the innermost (pod) container.
        let nested = format!(
            "/system.slice/docker-{}.scope/kubepods/besteffort/pod1/{ID}",
            "b".repeat(64)
        );
        assert_eq!(container_from_path(&nested).unwrap().1, ID);
        for path in [
            format!("/kubepods.slice/crio-conmon-{ID}.scope"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            "/user.slice/user-1000.slice/session-2.scope".to_owned(),
            "/".to_owned(),
            format!("/docker/{}", &ID[1..]),
            format!("/docker/{}zz", &ID[2..]),
        ] {
            assert_eq!(container_from_path(&path), None, "{path}");
        }
    }
}
