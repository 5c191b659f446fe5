//! How the store proves itself to a node's agent when it forwards `kubectl logs`, as
//! kube-apiserver does to the kubelet: each request to the agent carries
//! `X-Metalgate-Signature: TS.HMAC`, an HMAC-SHA256 over the method, the path with its query and
//! the Unix time `TS`, keyed with the store's token (which every node's agent holds: it is the
//! credential the agent talks to the store with). The token itself never crosses the wire; a
//! signature is good for [`WINDOW_SECS`] either way of the agent's clock. Pure.

use ring::hmac;

/// The header the signature travels in.
pub const HEADER: &str = "x-metalgate-signature";

/// How far (seconds) the signing time may be from the verifier's clock.
pub const WINDOW_SECS: i64 = 30;

fn message(method: &str, path_and_query: &str, ts: i64) -> String {
    format!("{method}\n{path_and_query}\n{ts}")
}

/// The header value for a request signed at Unix time `ts`.
pub fn sign(key: &str, method: &str, path_and_query: &str, ts: i64) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let tag = hmac::sign(&k, message(method, path_and_query, ts).as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{ts}.{hex}")
}

/// Whether `header` signs this request with `key` within the window around `now`. An empty
/// key verifies nothing (fails closed).
pub fn verify(key: &str, method: &str, path_and_query: &str, header: &str, now: i64) -> bool {
    if key.is_empty() {
        return false;
    }
    let Some((ts, hex)) = header.split_once('.') else {
        return false;
    };
    let Ok(ts) = ts.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > WINDOW_SECS || hex.len() != 64 {
        return false;
    }
    let Some(tag) = (0..32)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    hmac::verify(&k, message(method, path_and_query, ts).as_bytes(), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_request_key_and_window_only() {
        let p = "/containerLogs/podinfo/podinfo-abc/podinfo?tailLines=5";
        let s = sign("token", "GET", p, 1000);
        assert!(verify("token", "GET", p, &s, 1000));
        assert!(verify("token", "GET", p, &s, 1000 + WINDOW_SECS));
        assert!(
            !verify("token", "GET", p, &s, 1000 + WINDOW_SECS + 1),
            "too old"
        );
        assert!(
            !verify("token", "GET", p, &s, 1000 - WINDOW_SECS - 1),
            "from the future"
        );
        assert!(!verify("other", "GET", p, &s, 1000), "another key");
        assert!(!verify("token", "POST", p, &s, 1000), "another method");
        assert!(
            !verify("token", "GET", "/containerLogs/kube-system/x/y", &s, 1000),
            "another path"
        );
        assert!(
            !verify("", "GET", p, &sign("", "GET", p, 1000), 1000),
            "no key"
        );
        for bad in ["", "1000", "1000.zz", "x.00", &s[..s.len() - 2]] {
            assert!(!verify("token", "GET", p, bad, 1000), "{bad:?}");
        }
    }
}
