"""The route every proxy benchmark gives metalgate's store: a Namespace `bench`, a Service `be`
whose one EndpointSlice points at the backend on loopback, and an Ingress for the bench host to
it — with a TLS Secret and the Ingress's `tls` entry when a certificate is given.

Shared by bench/proxy_peers.py and bench/node_memory.py (bench/proxy.sh writes its own in shell).
"""


def route_yaml(be_port, host, tls=None):
    """The manifests as one YAML stream; `tls` is (certificate PEM, key PEM) or None."""
    docs = [f"""apiVersion: v1
kind: Namespace
metadata: {{name: bench}}
""", f"""apiVersion: v1
kind: Service
metadata: {{name: be, namespace: bench}}
spec: {{ports: [{{name: http, port: 80, targetPort: {be_port}}}]}}
""", f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: be-1, namespace: bench, labels: {{kubernetes.io/service-name: be}}}}
addressType: IPv4
ports: [{{name: http, port: {be_port}}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
"""]
    ingress_tls = ""
    annotations = ""
    if tls:
        crt, key = (("\n".join("    " + line for line in pem.splitlines())) for pem in tls)
        docs.append(f"""apiVersion: v1
kind: Secret
metadata: {{name: bench-tls, namespace: bench}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{crt}
  tls.key: |
{key}
""")
        ingress_tls = f"  tls: [{{hosts: [{host}], secretName: bench-tls}}]\n"
        # Plain HTTP is measured too, so no redirect to HTTPS (ingress-nginx's annotation).
        annotations = '  annotations: {nginx.ingress.kubernetes.io/ssl-redirect: "false"}\n'
    docs.append(f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: bench
{annotations}spec:
  ingressClassName: metalgate
{ingress_tls}  rules:
  - host: {host}
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: be, port: {{number: 80}}}}}}}}]}}
""")
    return "---\n".join(docs)
