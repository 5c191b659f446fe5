//! Random raw HTTP/1 request heads against the running proxy (#13 item 8): every one is
//! answered with a status line (none hangs or drops the connection unanswered), one whose
//! request line has a control character or whose Content-Length is not digits never reaches
//! the backend, and the proxy serves a plain request afterwards. Bounded for CI (200 heads);
//! `PROPTEST_CASES=5000` for a longer run.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::common::{Backend, Env};
use crate::{one_route, raw};

#[derive(Debug, Clone)]
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    eol: &'static str,
}

impl Head {
    /// The bytes on the wire: always ending in an empty line, so the proxy has a whole head;
    /// a body only as long as a well-formed Content-Length says, or an empty chunked one.
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} {}{}",
            self.method, self.target, self.version, self.eol
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}{}", self.eol));
        }
        out.push_str("\r\n");
        if self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
        {
            out.push_str("0\r\n\r\n");
        } else if let Some(n) = self.content_length().filter(|n| *n <= 64) {
            out.push_str(&"x".repeat(n));
        }
        out.into_bytes()
    }

    fn content_length(&self) -> Option<usize> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
    }

    /// What must never be forwarded: a control character (or a third space) in the request
    /// line, or a Content-Length that is not all digits.
    fn must_not_pass(&self) -> bool {
        let line = format!("{} {} {}", self.method, self.target, self.version);
        let bad_line = line.bytes().any(|b| b < 0x20 || b == 0x7f) || line.matches(' ').count() > 2;
        let bad_cl = self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-length")
                && (v.trim().is_empty() || !v.trim().bytes().all(|b| b.is_ascii_digit()))
        });
        bad_line || bad_cl
    }
}

fn head() -> impl Strategy<Value = Head> {
    let method = prop_oneof![
        6 => Just("GET".to_string()),
        4 => Just("POST".to_string()),
        1 => Just("HEAD".to_string()),
        1 => Just("DELETE".to_string()),
        1 => "[A-Z]{1,8}",
        1 => "[ -~]{0,6}",
        1 => Just("G\u{0}T".to_string()),
    ];
    let target = prop_oneof![
        3 => Just("/".to_string()),
        3 => "/[a-z]{0,6}",
        4 => proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just(".."),
                Just("."),
                Just("%2e"),
                Just("%2E%2e"),
                Just("%2f"),
                Just("%"),
                Just("%zz"),
                Just("%+1"),
                Just("?"),
                Just("#"),
                Just("a"),
                Just("//"),
                Just("\t"),
                Just(" "),
                Just("\u{1}"),
                Just("é"),
                Just("*"),
                Just("http://g.test"),
            ],
            0..8
        )
        .prop_map(|p| format!("/{}", p.concat())),
    ];
    let version = prop_oneof![
        8 => Just("HTTP/1.1"),
        2 => Just("HTTP/1.0"),
        1 => Just("HTTP/9.9"),
        1 => Just("http/1.1"),
        1 => Just(""),
        1 => Just("HTTP/1.1 x"),
    ];
    let name = prop_oneof![
        Just("Host".to_string()),
        Just("Content-Length".to_string()),
        Just("Transfer-Encoding".to_string()),
        Just("Connection".to_string()),
        Just("Expect".to_string()),
        "[A-Za-z-]{1,10}",
        "[ -9;-~]{0,6}",
    ];
    let value = prop_oneof![
        Just("g.test".to_string()),
        Just("G.TEST:80".to_string()),
        Just("6".to_string()),
        Just("0".to_string()),
        Just("+6".to_string()),
        Just("-1".to_string()),
        Just("1, 1".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("chunked".to_string()),
        Just("gzip, chunked".to_string()),
        Just("close".to_string()),
        Just("100-continue".to_string()),
        "[ -~]{0,12}",
        "[\u{0}-\u{ff}]{0,4}",
    ];
    (
        method,
        target,
        version,
        proptest::collection::vec((name, value), 0..5),
        prop_oneof![Just("\r\n"), Just("\n")],
    )
        .prop_map(|(method, target, version, mut headers, eol)| {
            // The route's host first, so that what is let through reaches the backend.
            headers.insert(0, ("Host".into(), "g.test".into()));
            Head {
                method,
                target,
                version: version.to_string(),
                headers,
                eol,
            }
        })
}

/// The status line the proxy answers `bytes` with (read until its end, 3 s at most), or what
/// came instead.
fn status_line(addr: std::net::SocketAddr, bytes: &[u8]) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // The proxy may answer and close before it has read everything: a write error then is
    // not a failure, the answer is.
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(3);
    while !got.windows(2).any(|w| w == b"\r\n") && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&got))),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let line = text.split("\r\n").next().unwrap_or_default().to_string();
    let ok = line.len() >= 12
        && line.starts_with("HTTP/1.1 ")
        && line.as_bytes()[9..12].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(line)
    } else {
        Err(format!("no status line: {text:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_request_heads_are_answered_and_malformed_ones_never_reach_the_backend() {
    let env = Env::start().await;
    let be = Backend::start("random").await;
    one_route(&env, &be, "r", "g.test").await;
    let addr = env.http;
    let hits = be.hits.clone();
    let forwarded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = forwarded.clone();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let result = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&head(), |h| {
                let before = hits.load(std::sync::atomic::Ordering::SeqCst);
                let line = status_line(addr, &h.bytes())
                    .map_err(|e| TestCaseError::fail(format!("{h:?}: {e}")))?;
                // The backend answers on its own connection; give a forwarded request time to
                // arrive before counting.
                std::thread::sleep(Duration::from_millis(5));
                let reached = hits.load(std::sync::atomic::Ordering::SeqCst) > before;
                if reached {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                prop_assert!(
                    !(h.must_not_pass() && reached),
                    "{h:?} reached the backend ({line})"
                );
                Ok(())
            })
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    if let Err(e) = result {
        panic!("{e}");
    }
    let forwarded = forwarded.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{cases} random heads: {forwarded} reached the backend, the rest were answered by the proxy"
    );
    assert!(
        forwarded > 0,
        "no head reached the backend: the property saw nothing pass"
    );
    let after = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: g.test\r\nConnection: close\r\n\r\n",
    );
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
}
