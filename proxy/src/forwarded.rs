//! The values of the headers the proxy adds to every request (`X-Forwarded-For`, `X-Real-IP`,
//! `X-Forwarded-Host`, `X-Forwarded-Port`, `X-Request-ID`), written byte by byte into stack
//! buffers.
//!
//! They are on every request's path: `core::fmt` formatting an address or a port and `format!`
//! of a random id cost about 1 % of the proxy's CPU per request in a profile (the address's
//! `Display` alone 0.8 %), more than the route lookup. The client's address, the host and the
//! listener's port repeat from request to request (a kept-alive connection's requests are served
//! by one thread), so each thread keeps the last value it made of each and hands out clones (a
//! reference count) instead of making the same value again (an allocation, a copy and a free
//! each: ~870 instructions per request together over HTTP/1.1, against ~210 for the memo —
//! callgrind, bench/RESULTS.md 2026-12-07 (j)).

use std::cell::RefCell;
use std::net::IpAddr;

use http::HeaderValue;

/// The longest address text: an IPv6 address with an embedded IPv4 one.
const IP_MAX: usize = 45;

/// `ip` as text (`192.168.56.1`, `fd00::1`), the same as its `Display`, into `buf`.
pub fn ip_text(ip: IpAddr, buf: &mut [u8; IP_MAX]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                n += decimal(u16::from(octet), &mut buf[n..]);
            }
            &buf[..n]
        }
        // IPv6 is rare enough here to keep the standard formatting (its `::` rules).
        IpAddr::V6(_) => {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{ip}");
            let n = cursor.position() as usize;
            &buf[..n]
        }
    }
}

/// `v` in decimal at the start of `out`; how many bytes were written (at most 5).
fn decimal(v: u16, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    len
}

/// `X-Forwarded-For` and `X-Real-IP` for a client at `ip` (its address written once for both):
/// the value the client sent followed by its address (`a, b, client`), or the address alone
/// when it sent none; and the address.
pub fn client_values(previous: Option<&[u8]>, ip: IpAddr) -> (HeaderValue, HeaderValue) {
    let client = LAST.with_borrow_mut(|last| {
        remembered(&mut last.client, ip, || {
            let mut buf = [0u8; IP_MAX];
            value(ip_text(ip, &mut buf))
        })
    });
    match previous {
        Some(prev) if !prev.is_empty() => (forwarded_for(prev, client.as_bytes()), client),
        _ => (client.clone(), client),
    }
}

/// `X-Forwarded-For` from the (non-empty) value the client sent and its address's text.
fn forwarded_for(prev: &[u8], client: &[u8]) -> HeaderValue {
    let mut joined = Vec::with_capacity(prev.len() + 2 + client.len());
    joined.extend_from_slice(prev);
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(client);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)).unwrap_or_else(|_| value(client))
}

/// A port as a header value (`X-Forwarded-Port`).
pub fn port_value(port: u16) -> HeaderValue {
    LAST.with_borrow_mut(|last| {
        remembered(&mut last.port, port, || {
            let mut buf = [0u8; 5];
            let n = decimal(port, &mut buf);
            value(&buf[..n])
        })
    })
}

/// A (normalised) host as a header value (`X-Forwarded-Host`); an empty value for text that
/// cannot be one.
pub fn host_value(host: &str) -> HeaderValue {
    LAST.with_borrow_mut(|last| match &last.host {
        Some(v) if v.as_bytes() == host.as_bytes() => v.clone(),
        _ => {
            let v = value(host.as_bytes());
            last.host = Some(v.clone());
            v
        }
    })
}

/// The values this thread made last, by what they were made from.
struct Last {
    client: Option<(IpAddr, HeaderValue)>,
    port: Option<(u16, HeaderValue)>,
    host: Option<HeaderValue>,
}

thread_local! {
    static LAST: RefCell<Last> = const {
        RefCell::new(Last { client: None, port: None, host: None })
    };
}

/// The value made from `key`: `slot`'s when it was made from the same key, else a new one,
/// kept in `slot`.
fn remembered<K: PartialEq + Copy>(
    slot: &mut Option<(K, HeaderValue)>,
    key: K,
    make: impl FnOnce() -> HeaderValue,
) -> HeaderValue {
    match slot {
        Some((k, v)) if *k == key => v.clone(),
        _ => {
            let v = make();
            *slot = Some((key, v.clone()));
            v
        }
    }
}

/// A value known to be digits, dots, colons and hex letters (or a previous valid value).
fn value(text: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request's id (`X-Request-ID`): the one the client sent, or one made here — 128 random bits
/// as 32 lower-case hex digits, like nginx's `$request_id` (a thread-local generator: no system
/// call per request), kept inline until it is written.
#[derive(Debug, Clone)]
pub enum RequestId {
    /// The client's own header value (visible ASCII, at most 200 bytes).
    Given(HeaderValue),
    /// Made for this request.
    Made([u8; 32]),
}

impl Default for RequestId {
    /// An empty id: a request refused before its id was read.
    fn default() -> Self {
        RequestId::Given(HeaderValue::from_static(""))
    }
}

impl RequestId {
    /// The client's `X-Request-ID` when it is usable (non-empty visible ASCII, at most 200
    /// bytes), else a new random one.
    pub fn from_client(given: Option<&HeaderValue>) -> Self {
        match given {
            Some(v) if !v.is_empty() && v.len() <= 200 && v.to_str().is_ok() => {
                RequestId::Given(v.clone())
            }
            _ => RequestId::random(),
        }
    }

    /// A new random id.
    pub fn random() -> Self {
        RequestId::Made(hex32(rand::random()))
    }

    /// The id as text (for the access log).
    pub fn as_str(&self) -> &str {
        match self {
            RequestId::Given(v) => v.to_str().unwrap_or(""),
            RequestId::Made(digits) => std::str::from_utf8(digits).unwrap_or(""),
        }
    }

    /// The id as the value of the header sent upstream.
    pub fn header_value(&self) -> HeaderValue {
        match self {
            RequestId::Given(v) => v.clone(),
            RequestId::Made(digits) => value(digits),
        }
    }
}

/// `bits` as 32 lower-case hex digits, most significant first (`format!("{bits:032x}")`).
fn hex32(bits: u128) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bits.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn addresses_read_as_their_display() {
        let mut v4: Vec<IpAddr> = vec![
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv4Addr::new(192, 168, 56, 1).into(),
            Ipv4Addr::new(10, 0, 100, 9).into(),
        ];
        // Every octet value in every position.
        v4.extend((0..=255u8).map(|b| IpAddr::from([b, 255 - b, b / 3, b.wrapping_mul(7)])));
        let v6: Vec<IpAddr> = vec![
            Ipv6Addr::LOCALHOST.into(),
            "fd00::1".parse().unwrap(),
            "2001:db8:85a3::8a2e:370:7334".parse().unwrap(),
            "::ffff:192.168.56.1".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        ];
        for ip in v4.into_iter().chain(v6) {
            let mut buf = [0u8; IP_MAX];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes(), "{ip}");
            assert_eq!(client_values(None, ip).1.to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let ip: IpAddr = Ipv4Addr::new(192, 168, 56, 1).into();
        let xff = |previous| client_values(previous, ip).0;
        assert_eq!(xff(None), "192.168.56.1");
        assert_eq!(xff(Some(b"")), "192.168.56.1");
        assert_eq!(
            xff(Some(b"203.0.113.7, 10.0.0.1")),
            "203.0.113.7, 10.0.0.1, 192.168.56.1"
        );
        assert_eq!(client_values(Some(b"203.0.113.7"), ip).1, "192.168.56.1");
    }

    #[test]
    fn ports_read_as_their_display() {
        for port in [0u16, 1, 9, 10, 80, 443, 8080, 9999, 10000, 65535] {
            assert_eq!(port_value(port).to_str().unwrap(), port.to_string());
        }
    }

    #[test]
    fn a_remembered_value_is_the_one_its_own_key_makes() {
        // Keys alternating, repeating and coming back: each answer is the value of the key
        // asked for, never the one made for the key before it.
        let ips: [IpAddr; 3] = [
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 10).into(),
            "fd00::1".parse().unwrap(),
        ];
        let hosts = [
            "podinfo.192.168.56.200.nip.io",
            "argocd.192.168.56.200.nip.io",
            "",
        ];
        for i in [0usize, 0, 1, 0, 2, 2, 1, 0, 1, 1, 2, 0] {
            let ip = ips[i];
            let (xff, real_ip) = client_values(None, ip);
            assert_eq!(
                (xff.to_str().unwrap(), real_ip.to_str().unwrap()),
                (&*ip.to_string(), &*ip.to_string())
            );
            let (xff, real_ip) = client_values(Some(b"203.0.113.7"), ip);
            assert_eq!(xff.to_str().unwrap(), format!("203.0.113.7, {ip}"));
            assert_eq!(real_ip.to_str().unwrap(), ip.to_string());
            let port = [80u16, 8443, 443][i];
            assert_eq!(port_value(port).to_str().unwrap(), port.to_string());
            assert_eq!(host_value(hosts[i]).to_str().unwrap(), hosts[i]);
        }
        // Text that cannot be a header value is sent as an empty one, and is not remembered as
        // the host before it.
        assert_eq!(host_value("bad\nhost"), "");
        assert_eq!(host_value(hosts[0]), hosts[0]);
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let a = RequestId::random();
        let b = RequestId::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.header_value(), a.as_str());
        for bits in [
            0,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            1 << 127,
            0xf0 << 64,
        ] {
            assert_eq!(hex32(bits), format!("{bits:032x}").as_bytes(), "{bits:x}");
        }
    }

    #[test]
    fn a_usable_client_id_is_kept_and_any_other_replaced() {
        let kept = RequestId::from_client(Some(&HeaderValue::from_static("trace-42")));
        assert_eq!(kept.as_str(), "trace-42");
        assert_eq!(kept.header_value(), "trace-42");
        let long = HeaderValue::from_str(&"x".repeat(201)).unwrap();
        let opaque = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        for given in [
            None,
            Some(HeaderValue::from_static("")),
            Some(long),
            Some(opaque),
        ] {
            let id = RequestId::from_client(given.as_ref());
            assert_eq!(id.as_str().len(), 32, "{given:?} replaced by a new id");
        }
        assert_eq!(RequestId::default().as_str(), "");
    }
}
