//! The real `kubectl` against `metalgate run`'s embedded store, as a user runs it: applying
//! and reading (`apply`), workloads and RBAC (`workloads`), every `create` generator
//! (`generators`), cascading deletes and selector watches (`cascade`), and everyday edits
//! (`everyday`).

#[path = "../common/mod.rs"]
mod common;

mod apply;
mod cascade;
mod everyday;
mod generators;
mod workloads;

pub(crate) const APPS: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: apps
  labels: {app: podinfo}
spec:
  type: LoadBalancer
  ports:
  - name: http
    port: 80
    targetPort: 9898
";

pub(crate) const CONFIG: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: apps
data:
  color: blue
";

pub(crate) fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
