//! Requests that must not get through as sent: smuggling, malformed and oversized requests,
//! dot segments and escapes that name another path.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::{Backend, Env};
use crate::{one_route, raw, rule};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_malformed_and_oversized_requests_never_reach_the_backend() {
    let env = Env::start().await;
    let be = Backend::start("guarded").await;
    one_route(&env, &be, "g", "g.test").await;
    let base = be.hits();
    let addr = env.http;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "CL.TE",
            "POST / HTTP/1.1\r\nHost: g.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "TE obfuscated",
            "POST / HTTP/1.1\r\nHost: g.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "Content-Length with a sign",
            "POST / HTTP/1.1\r\nHost: g.test\r\nContent-Length: +6\r\n\r\nabcdef".into(),
            " 400 ",
        ),
        (
            "a path above the root",
            "GET /../etc/passwd HTTP/1.1\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "two Content-Lengths",
            "POST / HTTP/1.1\r\nHost: g.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".into(),
            " 400 ",
        ),
        (
            "a Content-Length list that disagrees",
            "POST / HTTP/1.1\r\nHost: g.test\r\nContent-Length: 6, 7\r\n\r\nabcdefg".into(),
            " 400 ",
        ),
        (
            // nginx answers 400 to a duplicate too; Pingora would take "3, 3" as 3.
            "a Content-Length list of one value",
            "POST / HTTP/1.1\r\nHost: g.test\r\nContent-Length: 3, 3\r\n\r\nabc".into(),
            " 400 ",
        ),
        (
            "a Content-Length past 2^64",
            "POST / HTTP/1.1\r\nHost: g.test\r\nContent-Length: 18446744073709551616\r\n\r\nab"
                .into(),
            " 400 ",
        ),
        (
            "space in a header name",
            "GET / HTTP/1.1\r\nHost: g.test\r\nBad Header: x\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "unknown HTTP version",
            "GET / HTTP/9.9\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "header line without a colon",
            "GET / HTTP/1.1\r\nHost: g.test\r\nNoColonHere\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "no Host",
            "GET / HTTP/1.1\r\n\r\n".into(),
            " 400 ",
        ),
        // Control characters, spaces and tabs in the target: Pingora would percent-escape and
        // forward them; nginx answers 400.
        (
            "control character in the target",
            "GET /a\x01b HTTP/1.1\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "DEL in the target",
            "GET /a\x7fb HTTP/1.1\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "space in the target",
            "GET /a b HTTP/1.1\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "tab in the target",
            "GET /a\tb HTTP/1.1\r\nHost: g.test\r\n\r\n".into(),
            " 400 ",
        ),
        (
            "too many headers",
            format!("GET / HTTP/1.1\r\nHost: g.test\r\n{many}\r\n"),
            " 431 ",
        ),
        (
            "headers too large",
            format!("GET / HTTP/1.1\r\nHost: g.test\r\n{big}\r\n"),
            " 431 ",
        ),
    ];
    for (name, req, want) in &cases {
        let resp = tokio::task::spawn_blocking({
            let req = req.clone();
            move || raw(addr, req.as_bytes())
        })
        .await
        .unwrap();
        let status = resp.lines().next().unwrap_or_default().to_string();
        assert!(status.contains(want), "{name}: got {status:?}");
        assert!(
            !resp.contains("\"backend\""),
            "{name}: a backend answered:\n{resp}"
        );
    }
    assert_eq!(be.hits(), base, "nothing reached the backend");

    // The request line is checked for every request of a keep-alive connection, not only the
    // first: a good request is proxied, the bad one after it on the same connection is not.
    let (first, second) = two_on_one_connection(
        addr,
        b"GET / HTTP/1.1\r\nHost: g.test\r\n\r\n",
        b"GET /x\x01y HTTP/1.1\r\nHost: g.test\r\n\r\n",
    )
    .await;
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    assert!(second.starts_with("HTTP/1.1 400 "), "{second}");
    assert_eq!(
        be.hits(),
        base + 1,
        "only the good request reached the backend"
    );
    let base = be.hits();

    // A body framed by what Content-Length says, then the next request on the same connection:
    // read one byte too few and the rest of the body starts the next request (a 400); one too
    // many and the first answer never comes.
    let (first, second) = two_on_one_connection(
        addr,
        b"POST /a HTTP/1.1\r\nHost: g.test\r\nContent-Length: 11\r\n\r\nhello world",
        b"GET /b HTTP/1.1\r\nHost: g.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    assert!(first.contains("\"uri\":\"/a\""), "{first}");
    assert!(first.contains("\"body_len\":11"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200 "), "{second}");
    assert!(second.contains("\"uri\":\"/b\""), "{second}");
    assert_eq!(be.hits(), base + 2);
    let base = be.hits();

    // Slowloris: headers dribbled in one byte every 200 ms; the proxy hangs up after its
    // 1 s header deadline instead of waiting for them.
    let t = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let start = Instant::now();
        for b in b"GET / HTTP/1.1\r\nHost: g.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if s.write_all(&[*b]).is_err() {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(200));
            if start.elapsed() > Duration::from_secs(8) {
                break;
            }
        }
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(
        t < Duration::from_secs(4),
        "slowloris connection kept {t:?}"
    );
    assert_eq!(be.hits(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_and_escapes_are_routed_and_guarded_as_the_path_they_name() {
    // A public path and a guarded one on the same host: `/public/../admin` must be the guarded
    // route (refused here), never the public backend, as nginx routes it.
    let env = Env::start().await;
    let public = Backend::start("public").await;
    let admin = Backend::start("admin").await;
    env.service("public", &[public.addr]).await;
    env.service("admin", &[admin.addr]).await;
    env.ingress(
        "public",
        json!({}),
        json!({"rules": [rule("site.test", &[("Prefix", "/public", "public")])]}),
    )
    .await;
    env.ingress(
        "admin",
        json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}),
        json!({"rules": [rule("site.test", &[("Prefix", "/admin", "admin")])]}),
    )
    .await;
    env.eventually("site.test", "/public/x", |c, _| c == 200)
        .await;
    env.eventually("site.test", "/admin", |c, _| c == 403).await;
    let (pub_before, admin_before) = (public.hits(), admin.hits());
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin/",
        "//admin",
        "/public/./../admin/secret",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
        let resp = raw(env.http, req.as_bytes());
        assert!(resp.contains(" 403 "), "{path}: {resp}");
    }
    assert_eq!(
        public.hits(),
        pub_before,
        "nothing reached the public backend"
    );
    assert_eq!(admin.hits(), admin_before, "nor the guarded one");
    // The normalised path routes; the public backend still serves its own paths.
    let (c, _) = env.get("site.test", "/public/a/../b").await;
    assert_eq!(c, 200);
}

/// Sends `first`, reads its answer (one read), then sends `second` on the same connection and
/// reads until the proxy closes it (or 3 s pass): the two answers as text.
async fn two_on_one_connection(
    addr: std::net::SocketAddr,
    first: &'static [u8],
    second: &'static [u8],
) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(first).unwrap();
        let mut one = vec![0u8; 4096];
        let n = s.read(&mut one).unwrap_or(0);
        one.truncate(n);
        s.write_all(second).unwrap();
        let mut two = Vec::new();
        let _ = s.read_to_end(&mut two);
        (
            String::from_utf8_lossy(&one).into_owned(),
            String::from_utf8_lossy(&two).into_owned(),
        )
    })
    .await
    .unwrap()
}
