//! The JSON tables of workload messages: Pods and their templates (what `kubectl run` and
//! `kubectl create deployment|job|cronjob` send), Deployments, Jobs and CronJobs. The fields
//! a generator or a short manifest sets are read; volumes, probes, security contexts and
//! affinity are refused from protobuf (send those objects as JSON, as `kubectl apply` does).

use k8s_pb::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};

use super::typed::{objects, to_json};

objects!(core::Pod, apps::Deployment, batch::Job, batch::CronJob);

to_json!(core::PodTemplateSpec {
    metadata: "metadata",
    spec: "spec",
});

to_json!(core::PodSpec {
    init_containers: "initContainers",
    containers: "containers",
    restart_policy: "restartPolicy",
    dns_policy: "dnsPolicy",
    node_selector: "nodeSelector",
    service_account_name: "serviceAccountName",
    service_account: "serviceAccount",
    node_name: "nodeName",
    host_network: "hostNetwork",
    host_pid: "hostPID",
    host_ipc: "hostIPC",
    image_pull_secrets: "imagePullSecrets",
    hostname: "hostname",
    subdomain: "subdomain",
    scheduler_name: "schedulerName",
    tolerations: "tolerations",
    priority_class_name: "priorityClassName",
    runtime_class_name: "runtimeClassName",
    preemption_policy: "preemptionPolicy";
    exact
    termination_grace_period_seconds: "terminationGracePeriodSeconds",
    active_deadline_seconds: "activeDeadlineSeconds",
    automount_service_account_token: "automountServiceAccountToken",
    share_process_namespace: "shareProcessNamespace",
    priority: "priority",
    enable_service_links: "enableServiceLinks",
    set_hostname_as_fqdn: "setHostnameAsFQDN",
    host_users: "hostUsers";
    refused
    volumes: "volumes",
    ephemeral_containers: "ephemeralContainers",
    security_context: "securityContext",
    affinity: "affinity",
    host_aliases: "hostAliases",
    dns_config: "dnsConfig",
    readiness_gates: "readinessGates",
    overhead: "overhead",
    topology_spread_constraints: "topologySpreadConstraints",
    os: "os",
    scheduling_gates: "schedulingGates",
    resource_claims: "resourceClaims",
    resources: "resources",
    hostname_override: "hostnameOverride",
    workload_ref: "workloadRef",
});

to_json!(core::Container {
    name: "name",
    image: "image",
    command: "command",
    args: "args",
    working_dir: "workingDir",
    ports: "ports",
    env: "env",
    resources: "resources",
    restart_policy: "restartPolicy",
    termination_message_path: "terminationMessagePath",
    termination_message_policy: "terminationMessagePolicy",
    image_pull_policy: "imagePullPolicy",
    stdin: "stdin",
    stdin_once: "stdinOnce",
    tty: "tty";
    refused
    env_from: "envFrom",
    resize_policy: "resizePolicy",
    restart_policy_rules: "restartPolicyRules",
    volume_mounts: "volumeMounts",
    volume_devices: "volumeDevices",
    liveness_probe: "livenessProbe",
    readiness_probe: "readinessProbe",
    startup_probe: "startupProbe",
    lifecycle: "lifecycle",
    security_context: "securityContext",
});

to_json!(core::ContainerPort {
    name: "name",
    host_port: "hostPort",
    protocol: "protocol",
    host_ip: "hostIP";
    exact container_port: "containerPort",
});

to_json!(core::EnvVar {
    name: "name",
    value: "value";
    refused value_from: "valueFrom",
});

to_json!(core::ResourceRequirements {
    limits: "limits",
    requests: "requests";
    refused claims: "claims",
});

to_json!(core::LocalObjectReference { name: "name" });

to_json!(core::Toleration {
    key: "key",
    operator: "operator",
    value: "value",
    effect: "effect";
    exact toleration_seconds: "tolerationSeconds",
});

to_json!(apps::DeploymentSpec {
    selector: "selector",
    template: "template",
    strategy: "strategy",
    min_ready_seconds: "minReadySeconds",
    paused: "paused";
    exact
    replicas: "replicas",
    revision_history_limit: "revisionHistoryLimit",
    progress_deadline_seconds: "progressDeadlineSeconds",
});

to_json!(apps::DeploymentStrategy {
    r#type: "type",
    rolling_update: "rollingUpdate",
});

to_json!(apps::RollingUpdateDeployment {
    ;
    exact max_unavailable: "maxUnavailable", max_surge: "maxSurge",
});

to_json!(batch::JobSpec {
    selector: "selector",
    template: "template",
    completion_mode: "completionMode",
    pod_replacement_policy: "podReplacementPolicy",
    managed_by: "managedBy";
    exact
    parallelism: "parallelism",
    completions: "completions",
    active_deadline_seconds: "activeDeadlineSeconds",
    backoff_limit: "backoffLimit",
    backoff_limit_per_index: "backoffLimitPerIndex",
    max_failed_indexes: "maxFailedIndexes",
    manual_selector: "manualSelector",
    ttl_seconds_after_finished: "ttlSecondsAfterFinished",
    suspend: "suspend";
    refused
    pod_failure_policy: "podFailurePolicy",
    success_policy: "successPolicy",
});

to_json!(batch::CronJobSpec {
    schedule: "schedule",
    time_zone: "timeZone",
    concurrency_policy: "concurrencyPolicy",
    job_template: "jobTemplate";
    exact
    starting_deadline_seconds: "startingDeadlineSeconds",
    suspend: "suspend",
    successful_jobs_history_limit: "successfulJobsHistoryLimit",
    failed_jobs_history_limit: "failedJobsHistoryLimit",
});

to_json!(batch::JobTemplateSpec {
    metadata: "metadata",
    spec: "spec",
});
