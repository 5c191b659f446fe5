"""What the bench scripts (and scripts/code_order.py) share: a free port on loopback, the
backend (an nginx answering a fixed body), a self-signed certificate, oha's target per protocol,
the route metalgate's store is given, the store itself (started, waited for), waiting for a proxy to route, and ending the
processes a script started.

The route: a Namespace `bench`, a Service `be` whose one EndpointSlice points at the backend on
loopback, and an Ingress for the bench host to it — with a TLS Secret and the Ingress's `tls`
entry when a certificate is given (bench/proxy.sh writes its own in shell).
"""
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    """A TCP port on 127.0.0.1 nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def backend(d, port, body):
    """Write an nginx configuration in directory `d` answering `body` on 127.0.0.1:`port` (one
    worker, keep-alive without limit); returns the command that runs it."""
    open(f"{d}/nginx.conf", "w").write(f"""worker_processes 1; daemon off; pid {d}/pid;
error_log {d}/error.log; events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{body}"; }} }} }}
""")
    return ["nginx", "-c", f"{d}/nginx.conf", "-p", d]


def self_signed(crt, key, host):
    """A self-signed certificate for `host` (RSA 2048, two days) into the files `crt`, `key`."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)


def stop(procs):
    """End the processes (Popen objects this script started, by PID): SIGTERM, then SIGKILL to
    any still running after 10 s."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def oha_target(proto, host, http, https):
    """oha's arguments for a request to `host` through a proxy on loopback: plain HTTP/1.1
    ("h1") to port `http` with a Host header, or HTTP/1.1 ("tls") or HTTP/2 ("h2") over TLS to
    port `https`, the URL naming the host so that SNI (and HTTP/2's :authority) carry it."""
    if proto == "h1":
        return ["-H", f"Host: {host}", f"http://127.0.0.1:{http}/"]
    return ["--insecure", "--connect-to", f"{host}:{https}:127.0.0.1:{https}",
            *(["--http2"] if proto == "h2" else []), f"https://{host}:{https}/"]


def route_yaml(be_port, host, tls=None):
    """The manifests as one YAML stream; `tls` is (certificate PEM, key PEM) or None."""
    docs = ["""apiVersion: v1
kind: Namespace
metadata: {name: bench}
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


def store_argv(binary, data_dir, manifests):
    """`metalgate run` as the benches' store: its API on a free loopback port, no components,
    the `manifests` file applied."""
    return [binary, "run", "--data-dir", data_dir, "--api-listen", f"127.0.0.1:{free_port()}",
            "--components", "none", "--manifests", manifests]


def store_kubeconfig(data_dir, seconds=10):
    """The kubeconfig a store started with `store_argv` writes into `data_dir`, once it is there;
    ends the script when it is not there after `seconds`."""
    path = f"{data_dir}/kubeconfig"
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"the store wrote no kubeconfig in {seconds} s ({data_dir})")
        time.sleep(0.1)
    return path


def proxy_flags(kubeconfig, node, http, https, admin=None):
    """The proxy's flags (after `metalgate-proxy` or `metalgate proxy`) as the benches run it:
    against `kubeconfig` as node `node`, plain HTTP and HTTPS on the loopback ports `http` and
    `https`, its admin endpoint on `admin` (else a free port), no access log, no Service to
    publish its address in."""
    return ["--kubeconfig", kubeconfig, "--node-name", node, "--http-listen", f"127.0.0.1:{http}",
            "--https-listen", f"127.0.0.1:{https}",
            "--admin-listen", f"127.0.0.1:{admin or free_port()}", "--no-access-log",
            "--publish-service", ""]


def routed(port, host, tries, pause):
    """Whether http://127.0.0.1:`port`/ answers 200 to a request for `host` within `tries`
    tries, `pause` seconds apart (i.e. the proxy there has its route)."""
    for _ in range(tries):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                            f"Host: {host}", f"http://127.0.0.1:{port}/"],
                           capture_output=True, text=True)
        if r.stdout == "200":
            return True
        time.sleep(pause)
    return False
