//! TLS by SNI (two certificates, one replaced live), redirects and HTTP/2; websockets and
//! gRPC over h2c.

use std::time::{Duration, Instant};

use crate::common::{Backend, Env, cert};
use crate::{all_to_svc, echo, one_route, rule, websocket};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_by_sni_with_two_certificates_one_replaced_live_redirect_and_h2() {
    let env = Env::start().await;
    let be = Backend::start("secure").await;
    env.service("svc", &[be.addr]).await;
    let (a_pem, a_key, a_der) = cert("a.test");
    let (b_pem, b_key, b_der) = cert("b.test");
    env.tls_secret("a-tls", &a_pem, &a_key).await;
    env.tls_secret("b-tls", &b_pem, &b_key).await;
    env.ingress(
        "tls",
        json!({}),
        json!({
            "tls": [{"hosts": ["a.test"], "secretName": "a-tls"}, {"hosts": ["b.test"], "secretName": "b-tls"}],
            "rules": [rule("a.test", &[("Prefix", "/", "svc")]), rule("b.test", &[("Prefix", "/", "svc")])]
        }),
    )
    .await;
    env.ingress(
        "plain",
        json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
        json!({
            "tls": [{"hosts": ["c.test"], "secretName": "a-tls"}],
            "rules": [rule("c.test", &[("Prefix", "/", "svc")])]
        }),
    )
    .await;
    let client = env.client_for(&["a.test", "b.test", "c.test"]);
    let https = env.https.port();
    // A fresh client per probe: a reused TLS session would skip the certificate.
    let presented = |host: &'static str| {
        let client = env.client_for(&["a.test", "b.test", "c.test"]);
        async move {
            let r = client
                .get(format!("https://{host}:{https}/"))
                .send()
                .await
                .unwrap();
            let der = r
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|t| t.peer_certificate().map(<[u8]>::to_vec))
                .unwrap_or_default();
            (
                r.status().as_u16(),
                r.version(),
                der,
                r.text().await.unwrap(),
            )
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, _, der, _) = presented("a.test").await;
        if der == a_der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a.test never got its certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, version, der, body) = presented("b.test").await;
    assert_eq!(der, b_der, "b.test gets its own certificate");
    assert_eq!(code, 200);
    assert_eq!(version, reqwest::Version::HTTP_2, "h2 through ALPN");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert_eq!(v["headers"]["x-forwarded-port"], https.to_string());

    // HTTP → HTTPS: 308 to the same path and query, unless the Ingress turns it off.
    let r = client
        .get(format!("http://a.test:{}/p?q=1", env.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://a.test:{https}/p?q=1")
    );
    // c.test's Ingress may land in the table after a.test's certificate did: wait for it.
    env.eventually("c.test", "/", |c, _| c == 200).await;
    let hits = be.hits();
    let (c, body) = env.get("c.test", "/").await;
    assert_eq!(c, 200, "ssl-redirect: false serves plain HTTP");
    // Each listener's own port, though the proxy made the other's value just before.
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["headers"]["x-forwarded-port"],
        env.http.port().to_string()
    );
    assert_eq!(v["headers"]["x-forwarded-proto"], "http");
    assert_eq!(be.hits(), hits + 1);

    // Replace a.test's certificate: the next handshakes get the new one, no restart.
    let (n_pem, n_key, n_der) = cert("a.test");
    env.tls_secret("a-tls", &n_pem, &n_key).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, _, der, _) = presented("a.test").await;
        assert_eq!(code, 200);
        if der == n_der {
            break;
        }
        assert_eq!(der, a_der);
        assert!(
            Instant::now() < deadline,
            "the new certificate never showed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, der, _) = presented("b.test").await;
    assert_eq!(der, b_der, "b.test untouched by a.test's rotation");
}

/// One websocket after another, each with a fresh handshake: whichever of the backend's 101 and
/// the upgrade request's own end the proxy sees first, the tunnel must stay open
/// (cloudflare/pingora#946 tore it down about once in 40 handshakes when the 101 came first;
/// patched in `third_party/pingora-proxy`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_when_the_backend_answers_first() {
    let env = Env::start().await;
    let be = Backend::start("ws").await;
    one_route(&env, &be, "ws", "ws.test").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..300 {
        assert!(Instant::now() < deadline, "300 handshakes took over 60 s");
        // A plain request first leaves a warm upstream connection in the pool, so the upgrade
        // request goes out at once and the 101 can come back before anything else happens.
        assert_eq!(env.get("ws.test", "/").await.0, 200);
        let mut ws = websocket(&env, "ws.test").await;
        let msg = format!("ping {i}");
        match echo(&mut ws, &msg).await {
            Some(Ok(m)) => assert_eq!(m.into_text().unwrap().as_str(), msg),
            other => panic!("handshake {i}: the tunnel closed after the 101: {other:?}"),
        }
        ws.close(None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_and_grpc_h2c_backends() {
    let env = Env::start().await;
    let be = Backend::start("ws").await;
    env.service("svc", &[be.addr]).await;
    env.ingress("ws", json!({}), all_to_svc("ws.test")).await;
    env.ingress(
        "grpc",
        json!({"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}),
        all_to_svc("grpc.test"),
    )
    .await;
    env.eventually("ws.test", "/", |c, _| c == 200).await;

    let mut ws = websocket(&env, "ws.test").await;
    for i in 0..3 {
        let msg = format!("hello {i}");
        let back = echo(&mut ws, &msg).await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();

    // backend-protocol GRPC: the proxy speaks HTTP/2 (prior knowledge) to the backend.
    let (_, body) = env.eventually("grpc.test", "/", |c, _| c == 200).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], "HTTP/2.0", "{body}");
    let (_, body) = env.get("ws.test", "/").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], "HTTP/1.1");
}
