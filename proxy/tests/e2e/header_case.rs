//! Header names keep the case they were sent in, both ways: a client's to the backend, a
//! backend's to the client — with repeated names, names spelled twice in different cases, and
//! hop-by-hop headers taken out between them (what nginx and Pingora as released do).

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::Env;
use crate::raw;
use serde_json::json;

/// A backend that answers every request head with that head, as it arrived, for its body, and
/// with header names of its own in mixed case.
async fn head_echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    addr
}

async fn serve(mut tcp: TcpStream) {
    let mut pending = Vec::new();
    while let Some(head) = crate::read_request_head(&mut tcp, &mut pending).await {
        let resp = format!(
            "HTTP/1.1 200 OK\r\nX-Backend-Case: one\r\nContent-Length: {}\r\n\
             Keep-Alive: timeout=5\r\nx-BACKEND-case: two\r\ncontent-TYPE: text/plain\r\n\
             X-Last: three\r\n\r\n",
            head.len()
        );
        if tcp.write_all(resp.as_bytes()).await.is_err() || tcp.write_all(&head).await.is_err() {
            return;
        }
    }
}

/// Whether `lines` holds `want` in this order (others may come between).
fn in_order(lines: &[&str], want: &[&str]) -> bool {
    let mut it = lines.iter();
    want.iter().all(|w| it.any(|l| l == w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_reach_the_backend_and_the_client_in_the_case_they_were_sent() {
    let env = Env::start().await;
    let be = head_echo().await;
    crate::route_to(&env, &[be], "case", json!({}), "case.test").await;

    let addr = env.http;
    let resp = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            b"GET /c HTTP/1.1\r\nHost: case.test\r\nX-Mixed-Case: 1\r\nConnection: close, X-Drop\r\n\
              user-AGENT: raw-test\r\nX-Drop: gone\r\nx-MIXED-case: 2\r\nX-Another: a\r\n\
              ACCEPT: */*\r\n\r\n",
        )
    })
    .await
    .unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("a whole answer");
    let head: Vec<&str> = head.lines().collect();
    let sent: Vec<&str> = body.lines().collect();
    assert_eq!(head[0], "HTTP/1.1 200 OK", "{resp}");

    // What the backend received: each field in its own case beside its own value; the two
    // spellings of one name together, in the order sent; the hop-by-hop ones gone.
    for field in ["user-AGENT: raw-test", "X-Another: a", "ACCEPT: */*"] {
        assert!(
            sent.contains(&field),
            "{field:?} not sent as given:\n{body}"
        );
    }
    assert!(
        in_order(&sent, &["X-Mixed-Case: 1", "x-MIXED-case: 2"]),
        "a repeated name's values, each in its own case and in order:\n{body}"
    );
    assert!(
        !sent.iter().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("connection:") || l.starts_with("x-drop:")
        }),
        "hop-by-hop headers went upstream:\n{body}"
    );
    assert!(
        sent.iter().any(|l| l.starts_with("x-forwarded-for: ")),
        "the proxy's own headers in the case it gives them:\n{body}"
    );

    // What the client received: the backend's names in the backend's case.
    assert!(
        in_order(&head, &["X-Backend-Case: one", "x-BACKEND-case: two"]),
        "{resp}"
    );
    for field in ["content-TYPE: text/plain", "X-Last: three"] {
        assert!(
            head.contains(&field),
            "{field:?} not passed as given:\n{resp}"
        );
    }
}
