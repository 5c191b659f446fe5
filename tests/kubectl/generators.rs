//! Every `kubectl create` generator, `run` and `expose` (protobuf bodies), and the `auth`
//! commands.

use crate::common::{self, Metalgate, free_port, write};

#[test]
fn kubectl_create_generators_and_auth_commands_work_through_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let mg = Metalgate::start(&dir.path().join("data"), free_port(), &[]);
    let said = |args: &[&str]| mg.kubectl_ok(args).trim().to_string();
    assert_eq!(
        said(&["create", "namespace", "apps"]),
        "namespace/apps created"
    );
    assert_eq!(
        said(&[
            "create",
            "configmap",
            "ui",
            "-n",
            "apps",
            "--from-literal=PODINFO_UI_COLOR=#34577c"
        ]),
        "configmap/ui created"
    );
    assert_eq!(
        said(&[
            "create",
            "secret",
            "generic",
            "pw",
            "-n",
            "apps",
            "--from-literal=password=s3cret"
        ]),
        "secret/pw created"
    );
    let cert =
        rcgen::generate_simple_self_signed(vec!["podinfo.192.168.56.200.nip.io".into()]).unwrap();
    let crt = write(dir.path(), "tls.crt", &cert.cert.pem());
    let key = write(dir.path(), "tls.key", &cert.signing_key.serialize_pem());
    assert_eq!(
        said(&[
            "create",
            "secret",
            "tls",
            "podinfo-tls",
            "-n",
            "apps",
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap()
        ]),
        "secret/podinfo-tls created"
    );
    assert_eq!(
        said(&["create", "serviceaccount", "bot", "-n", "apps"]),
        "serviceaccount/bot created"
    );
    assert_eq!(
        said(&[
            "create",
            "role",
            "read-config",
            "-n",
            "apps",
            "--verb=get,list",
            "--resource=configmaps"
        ]),
        "role.rbac.authorization.k8s.io/read-config created"
    );
    assert_eq!(
        said(&[
            "create",
            "rolebinding",
            "bot-reads",
            "-n",
            "apps",
            "--role=read-config",
            "--serviceaccount=apps:bot"
        ]),
        "rolebinding.rbac.authorization.k8s.io/bot-reads created"
    );

    // The workload and network generators, and `run`/`expose`.
    assert_eq!(
        said(&[
            "create",
            "deployment",
            "podinfo",
            "-n",
            "apps",
            "--image=ghcr.io/stefanprodan/podinfo:6.7.0",
            "--port=9898",
            "--replicas=2"
        ]),
        "deployment.apps/podinfo created"
    );
    assert_eq!(
        said(&[
            "create",
            "deployment",
            "idle",
            "-n",
            "apps",
            "--image=busybox",
            "--replicas=0"
        ]),
        "deployment.apps/idle created"
    );
    assert_eq!(
        said(&[
            "create",
            "service",
            "loadbalancer",
            "podinfo",
            "-n",
            "apps",
            "--tcp=80:9898"
        ]),
        "service/podinfo created"
    );
    assert_eq!(
        said(&[
            "expose",
            "deployment",
            "podinfo",
            "-n",
            "apps",
            "--name=podinfo-internal",
            "--port=9898"
        ]),
        "service/podinfo-internal exposed"
    );
    assert_eq!(
        said(&[
            "create",
            "ingress",
            "podinfo",
            "-n",
            "apps",
            "--class=metalgate",
            "--rule=podinfo.192.168.56.200.nip.io/*=podinfo:80"
        ]),
        "ingress.networking.k8s.io/podinfo created"
    );
    assert_eq!(
        said(&[
            "create",
            "cronjob",
            "tick",
            "-n",
            "apps",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "date"
        ]),
        "cronjob.batch/tick created"
    );
    assert_eq!(
        said(&[
            "create",
            "job",
            "hello",
            "-n",
            "apps",
            "--image=busybox",
            "--",
            "echo",
            "hi"
        ]),
        "job.batch/hello created"
    );
    assert_eq!(
        said(&[
            "create",
            "job",
            "tick-now",
            "-n",
            "apps",
            "--from=cronjob/tick"
        ]),
        "job.batch/tick-now created"
    );
    assert_eq!(
        said(&[
            "create",
            "poddisruptionbudget",
            "podinfo",
            "-n",
            "apps",
            "--selector=app=podinfo",
            "--min-available=1"
        ]),
        "poddisruptionbudget.policy/podinfo created"
    );
    assert_eq!(
        said(&[
            "create",
            "quota",
            "small",
            "-n",
            "apps",
            "--hard=pods=10,cpu=2"
        ]),
        "resourcequota/small created"
    );
    assert_eq!(
        said(&[
            "run",
            "shell",
            "-n",
            "apps",
            "--image=busybox",
            "--env=GREETING=hi",
            "--port=8080"
        ]),
        "pod/shell created"
    );
    let get = |args: &[&str], path: &str| {
        let mut all = vec!["get"];
        all.extend(args);
        let jp = format!("jsonpath={path}");
        all.extend(["-n", "apps", "-o", &jp]);
        said(&all)
    };
    let podinfo = ["deployment", "podinfo"];
    assert_eq!(get(&podinfo, "{.spec.replicas}"), "2");
    assert_eq!(
        get(
            &podinfo,
            "{.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "9898"
    );
    assert_eq!(get(&podinfo, "{.spec.selector.matchLabels.app}"), "podinfo");
    assert_eq!(get(&["deployment", "idle"], "{.spec.replicas}"), "0");
    let svc = ["service", "podinfo"];
    assert_eq!(get(&svc, "{.spec.type}"), "LoadBalancer");
    assert_eq!(
        get(&svc, "{.spec.ports[0].port}/{.spec.ports[0].targetPort}"),
        "80/9898"
    );
    assert_eq!(
        get(&["service", "podinfo-internal"], "{.spec.selector.app}"),
        "podinfo"
    );
    let ing = ["ingress", "podinfo"];
    assert_eq!(
        get(
            &ing,
            "{.spec.ingressClassName} {.spec.rules[0].host} {.spec.rules[0].http.paths[0].pathType} {.spec.rules[0].http.paths[0].backend.service.port.number}"
        ),
        "metalgate podinfo.192.168.56.200.nip.io Prefix 80"
    );
    assert_eq!(
        get(
            &["job", "hello"],
            "{.spec.template.spec.containers[0].command}"
        ),
        r#"["echo","hi"]"#
    );
    assert_eq!(
        get(&["job", "tick-now"], "{.metadata.ownerReferences[0].name}"),
        "tick"
    );
    assert_eq!(get(&["cronjob", "tick"], "{.spec.schedule}"), "*/5 * * * *");
    assert_eq!(get(&["pdb", "podinfo"], "{.spec.minAvailable}"), "1");
    assert_eq!(get(&["quota", "small"], "{.spec.hard.pods}"), "10");
    assert_eq!(
        get(&["pod", "shell"], "{.spec.containers[0].env[0].value}"),
        "hi"
    );

    // What the user reads back.
    let cm = said(&[
        "get",
        "configmap",
        "ui",
        "-n",
        "apps",
        "-o",
        "jsonpath={.data.PODINFO_UI_COLOR}",
    ]);
    assert_eq!(cm, "#34577c");
    let secrets = said(&["get", "secrets", "-n", "apps"]);
    assert!(
        secrets.contains("pw") && secrets.contains("Opaque"),
        "{secrets}"
    );
    assert!(
        secrets.contains("podinfo-tls") && secrets.contains("kubernetes.io/tls"),
        "{secrets}"
    );

    // kubectl auth can-i --as: impersonation and a SelfSubjectAccessReview.
    let can = |args: &[&str]| {
        let out = mg.kubectl(args);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let bot = "--as=system:serviceaccount:apps:bot";
    assert_eq!(
        can(&["auth", "can-i", "get", "configmaps", "-n", "apps", bot]),
        "yes"
    );
    assert_eq!(
        can(&["auth", "can-i", "delete", "configmaps", "-n", "apps", bot]),
        "no"
    );
    assert_eq!(
        can(&["auth", "can-i", "get", "configmaps", "-n", "default", bot]),
        "no"
    );
    assert_eq!(
        can(&["auth", "can-i", "get", "secrets", "-n", "apps", bot]),
        "no"
    );
    let whoami = said(&["auth", "whoami", bot]);
    assert!(
        whoami.contains("system:serviceaccount:apps:bot"),
        "{whoami}"
    );

    // kubectl create token: a token that acts as the account.
    let token = said(&["create", "token", "bot", "-n", "apps"]);
    let kc = mg.kubeconfig_with_token(dir.path(), "bot.kubeconfig", &token);
    let read = common::kubectl_with(
        &kc,
        &["get", "configmap", "ui", "-n", "apps", "-o", "name"],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "configmap/ui");
    let denied = common::kubectl_with(&kc, &["get", "secrets", "-n", "apps"], None);
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains(
            "cannot list resource \"secrets\" in API group \"\" in the namespace \"apps\""
        ),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
}
