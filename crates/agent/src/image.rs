//! Which process stands in for a container, by its image: the lab has no container runtime,
//! so it runs the images it knows as processes of this build.
//!
//! - `…/metalgate` — this build's `metalgate` binary. The image's entrypoint is `/metalgate`
//!   (see the Dockerfile), so `args` follow it; a `command` whose first word is the binary is
//!   replaced by this build's.
//! - `…/podinfo` (stefanprodan/podinfo) — `metalgate demo-backend --kind podinfo`, listening
//!   on the pod's IP at podinfo's `--port` (default 9898), `--ui-color` and `--ui-message`
//!   passed as podinfo would read them (`PODINFO_UI_*` in `env` work as they are).
//! - `…/grafana` — the grafana stand-in on port 3000.
//!
//! Anything else cannot start, and the reason says which images the lab knows.

use std::path::Path;

use k8s_openapi::api::core::v1::Container;

/// A process to run for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment it needs beyond the container's `env` (flags turned into variables).
    pub env: Vec<(String, String)>,
}

/// The images the lab knows, for messages.
pub const KNOWN: &str = "…/metalgate, …/podinfo (stefanprodan/podinfo), …/grafana";

/// The repository part of an image reference: no registry-less tag, no digest.
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

fn last_segment(image: &str) -> &str {
    let repo = repository(image);
    repo.rsplit('/').next().unwrap_or(repo)
}

/// A flag's value in `--name=value` or `--name value` form.
fn flag(words: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let eq = format!("--{name}=");
    words.iter().enumerate().find_map(|(i, w)| {
        if let Some(v) = w.strip_prefix(&eq) {
            Some(v.to_string())
        } else if *w == long {
            words.get(i + 1).cloned()
        } else {
            None
        }
    })
}

/// The process for container `c` of pod `pod_name`, whose IP is `ip`; `exe` is this build's
/// `metalgate`. An error says why the container cannot start.
pub fn process(c: &Container, pod_name: &str, ip: &str, exe: &Path) -> Result<Process, String> {
    let image = c.image.clone().unwrap_or_default();
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let exe = exe.display().to_string();
    let demo = |kind: &str, port: u16, env: Vec<(String, String)>| Process {
        program: exe.clone(),
        args: vec![
            "demo-backend".into(),
            "--kind".into(),
            kind.into(),
            "--listen".into(),
            format!("{ip}:{port}"),
            "--hostname".into(),
            pod_name.into(),
        ],
        env,
    };
    match last_segment(&image) {
        "metalgate" => {
            let mut argv: Vec<String> = command.into_iter().chain(args).collect();
            let first_is_binary = argv
                .first()
                .is_some_and(|w| w == "metalgate" || w.ends_with("/metalgate"));
            if first_is_binary {
                argv.remove(0);
            } else if c.command.as_ref().is_some_and(|v| !v.is_empty()) {
                return Err(format!(
                    "container {:?}: command {:?} is not the metalgate binary; the lab runs the metalgate image's own entrypoint only",
                    c.name, argv[0]
                ));
            }
            Ok(Process {
                program: exe,
                args: argv,
                env: vec![],
            })
        }
        "podinfo" => {
            let words: Vec<String> = command.into_iter().chain(args).collect();
            let port = match flag(&words, "port") {
                None => 9898,
                Some(p) => p.parse::<u16>().map_err(|_| {
                    format!(
                        "container {:?}: podinfo's --port {p:?} is not a port",
                        c.name
                    )
                })?,
            };
            let mut env = Vec::new();
            if let Some(v) = flag(&words, "ui-color") {
                env.push(("PODINFO_UI_COLOR".to_string(), v));
            }
            if let Some(v) = flag(&words, "ui-message") {
                env.push(("PODINFO_UI_MESSAGE".to_string(), v));
            }
            Ok(demo("podinfo", port, env))
        }
        "grafana" => Ok(demo("grafana", 3000, vec![])),
        _ => Err(format!(
            "image {image:?} of container {:?} has no stand-in in the lab (it runs {KNOWN} as processes, without a container runtime)",
            c.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, command: &[&str], args: &[&str]) -> Container {
        let v = |w: &[&str]| (!w.is_empty()).then(|| w.iter().map(|s| s.to_string()).collect());
        Container {
            name: "c".into(),
            image: Some(image.into()),
            command: v(command),
            args: v(args),
            ..Default::default()
        }
    }

    #[test]
    fn repositories_lose_tags_and_digests_but_not_registry_ports() {
        assert_eq!(
            repository("ghcr.io/stefanprodan/podinfo:6.9.2"),
            "ghcr.io/stefanprodan/podinfo"
        );
        assert_eq!(
            repository("localhost:5000/metalgate"),
            "localhost:5000/metalgate"
        );
        assert_eq!(
            repository("localhost/metalgate@sha256:abc"),
            "localhost/metalgate"
        );
        assert_eq!(last_segment("localhost:5000/metalgate:1.0"), "metalgate");
    }

    #[test]
    fn the_metalgate_image_runs_this_build_with_its_args() {
        let exe = Path::new("/build/metalgate");
        let p = process(
            &container(
                "localhost/metalgate",
                &[],
                &["speaker", "--admin-listen=0.0.0.0:7472"],
            ),
            "sp",
            "10.0.0.1",
            exe,
        )
        .unwrap();
        assert_eq!(p.program, "/build/metalgate");
        assert_eq!(p.args, vec!["speaker", "--admin-listen=0.0.0.0:7472"]);
        let p = process(
            &container(
                "localhost/metalgate:dev",
                &["/metalgate", "proxy"],
                &["--x"],
            ),
            "p",
            "ip",
            exe,
        )
        .unwrap();
        assert_eq!(p.args, vec!["proxy", "--x"]);
        let err = process(
            &container("localhost/metalgate", &["/bin/sh"], &[]),
            "p",
            "ip",
            exe,
        )
        .unwrap_err();
        assert!(err.contains("\"/bin/sh\""), "{err}");
    }

    #[test]
    fn podinfo_listens_on_the_pod_ip_at_its_port_and_keeps_its_ui_flags() {
        let exe = Path::new("/m");
        let p = process(
            &container(
                "ghcr.io/stefanprodan/podinfo:6.9.2",
                &["./podinfo", "--port=9898", "--level=info"],
                &["--ui-color", "#ff0000"],
            ),
            "podinfo-abc",
            "10.42.0.7",
            exe,
        )
        .unwrap();
        assert_eq!(
            p.args,
            vec![
                "demo-backend",
                "--kind",
                "podinfo",
                "--listen",
                "10.42.0.7:9898",
                "--hostname",
                "podinfo-abc"
            ]
        );
        assert_eq!(
            p.env,
            vec![("PODINFO_UI_COLOR".to_string(), "#ff0000".to_string())]
        );
        let p = process(
            &container("stefanprodan/podinfo", &[], &[]),
            "x",
            "1.2.3.4",
            exe,
        )
        .unwrap();
        assert!(p.args.contains(&"1.2.3.4:9898".to_string()));
        assert!(
            process(
                &container("stefanprodan/podinfo", &["./podinfo", "--port=http"], &[]),
                "x",
                "ip",
                exe
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_images_cannot_start_and_say_why() {
        let err = process(
            &container("nginx:1.27", &[], &[]),
            "x",
            "ip",
            Path::new("/m"),
        )
        .unwrap_err();
        assert!(
            err.contains("\"nginx:1.27\"") && err.contains("no stand-in"),
            "{err}"
        );
    }
}
