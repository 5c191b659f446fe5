//! The workshop's Git repository in the lab: the seed's layout from `examples/workshop/`
//! (`apps/root.yaml` → `apps/**` → `manifests/**`), with what a VM would change to use it — its
//! `repoURL`s pointing at the lab's copy — and the one thing the lab cannot run swapped for a
//! stand-in: kube-prometheus-stack comes from a Helm chart repository through k3s's helm
//! controller, so `manifests/monitoring/kube-prometheus-stack.yaml` becomes the grafana
//! stand-in behind the Service that chart makes.
//!
//! Pure: the files and their text. `lifecycle` writes them, commits and serves them.

/// The URL the template's Applications name (the attendee's fork).
pub const TEMPLATE_URL: &str = "https://github.com/your-user/ops-demo.git";

/// Where in the repository the lab's stand-in for the Helm chart goes.
pub const STAND_IN_PATH: &str = "manifests/monitoring/kube-prometheus-stack.yaml";

/// The template's files, shipped in the binary: (path in the repository, text).
pub const FILES: [(&str, &str); 11] = [
    (
        "apps/root.yaml",
        include_str!("../../../examples/workshop/apps/root.yaml"),
    ),
    (
        "apps/apps/podinfo.yaml",
        include_str!("../../../examples/workshop/apps/apps/podinfo.yaml"),
    ),
    (
        "apps/monitoring/prometheus-grafana.yaml",
        include_str!("../../../examples/workshop/apps/monitoring/prometheus-grafana.yaml"),
    ),
    (
        "apps/networking/metalgate.yaml",
        include_str!("../../../examples/workshop/apps/networking/metalgate.yaml"),
    ),
    (
        "manifests/apps/podinfo/deployment.yaml",
        include_str!("../../../examples/workshop/manifests/apps/podinfo/deployment.yaml"),
    ),
    (
        "manifests/apps/podinfo/ingress.yaml",
        include_str!("../../../examples/workshop/manifests/apps/podinfo/ingress.yaml"),
    ),
    (
        "manifests/apps/podinfo/service.yaml",
        include_str!("../../../examples/workshop/manifests/apps/podinfo/service.yaml"),
    ),
    (
        "manifests/monitoring/ingress.yaml",
        include_str!("../../../examples/workshop/manifests/monitoring/ingress.yaml"),
    ),
    (
        STAND_IN_PATH,
        include_str!("../../../examples/workshop/manifests/monitoring/kube-prometheus-stack.yaml"),
    ),
    (
        "manifests/networking/ingresses.yaml",
        include_str!("../../../examples/workshop/manifests/networking/ingresses.yaml"),
    ),
    (
        "manifests/networking/metalgate/metalgate.yaml",
        include_str!("../../../examples/workshop/manifests/networking/metalgate/metalgate.yaml"),
    ),
];

/// The grafana stand-in (`examples/lab/40-grafana.yaml`).
pub const GRAFANA_STAND_IN: &str = include_str!("../../../examples/lab/40-grafana.yaml");

/// The repository's files as the lab commits them, its Applications pointing at `url`.
pub fn files(url: &str) -> Vec<(String, String)> {
    FILES
        .iter()
        .map(|(path, text)| {
            let text = if *path == STAND_IN_PATH {
                GRAFANA_STAND_IN.to_string()
            } else {
                text.replace(TEMPLATE_URL, url)
            };
            (path.to_string(), text)
        })
        .collect()
}

/// The post-receive hook of the lab's repository: what GitHub does for ArgoCD on a push — a
/// `push` event to the GitOps module's webhook, here through the workshop's own hostname.
pub fn post_receive_hook(url: &str, webhook: &str) -> String {
    format!(
        "#!/bin/sh\n# A push tells the GitOps module at once, as GitHub's webhook tells ArgoCD.\nwhile read -r _old _new ref; do\n  curl -sS --max-time 5 -o /dev/null -X POST -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \\\n    --data \"{{\\\"ref\\\": \\\"$ref\\\", \\\"repository\\\": {{\\\"clone_url\\\": \\\"{url}\\\"}}}}\" {webhook} || echo 'webhook: the GitOps module did not answer; it will find the push when it polls' >&2\ndone\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                listed(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }

    #[test]
    fn every_file_of_the_template_is_shipped() {
        let base = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/workshop"
        ));
        let mut on_disk = Vec::new();
        listed(base, base, &mut on_disk);
        on_disk.sort();
        let mut shipped: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        shipped.sort();
        assert_eq!(
            shipped, on_disk,
            "examples/workshop/ and workshop::FILES differ"
        );
    }

    #[test]
    fn applications_point_at_the_labs_copy_and_the_chart_is_stood_in_for() {
        let files = files("file:///run/metalgate-lab/git/ops-demo.git");
        let text = |p: &str| files.iter().find(|(q, _)| q == p).unwrap().1.clone();
        for p in [
            "apps/root.yaml",
            "apps/apps/podinfo.yaml",
            "apps/networking/metalgate.yaml",
            "apps/monitoring/prometheus-grafana.yaml",
        ] {
            assert!(
                text(p).contains("repoURL: file:///run/metalgate-lab/git/ops-demo.git"),
                "{p}"
            );
            assert!(!text(p).contains("github.com"), "{p}");
        }
        assert!(text(STAND_IN_PATH).contains("name: prometheus-grafana"));
        assert!(!text(STAND_IN_PATH).contains("HelmChart"));
    }

    #[test]
    fn the_hook_posts_a_push_naming_the_repository() {
        let h = post_receive_hook(
            "file:///r.git",
            "http://argocd.192.168.56.200.nip.io/api/webhook",
        );
        assert!(h.starts_with("#!/bin/sh\n"));
        assert!(h.contains("X-GitHub-Event: push"));
        assert!(
            h.contains("\\\"clone_url\\\": \\\"file:///r.git\\\""),
            "{h}"
        );
    }
}
