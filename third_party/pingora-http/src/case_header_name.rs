// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::*;
use bytes::Bytes;
use http::header;

#[derive(Debug, Clone)]
pub struct CaseHeaderName(Bytes);

impl CaseHeaderName {
    pub fn new(name: String) -> Self {
        CaseHeaderName(name.into())
    }
}

impl CaseHeaderName {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(Bytes::copy_from_slice(buf))
    }
}

/// A trait that converts into case-sensitive header names.
pub trait IntoCaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName;

    /// The case-preserving name and the map's key (metalgate patch). By default the key is
    /// parsed from the case-preserving bytes, as the released crate does on every insert and
    /// append; a `HeaderName` given is its own key, so it is not parsed (lowercased, matched
    /// against the standard names, a custom one copied into a new allocation) per header.
    fn into_names(self) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName>
    where
        Self: Sized,
    {
        let case = self.into_case_header_name();
        let name = HeaderName::from_bytes(case.as_slice())?;
        Ok((case, name))
    }
}

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.into())
    }
}

impl IntoCaseHeaderName for &'static str {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.into())
    }

    /// A name already in lower case is the map's key as it is (metalgate patch):
    /// `HeaderName::from_static` borrows it, where parsing copies a custom name into a new
    /// allocation per header. Any other name is parsed, as released.
    #[cfg(not(feature = "stock-names"))]
    fn into_names(
        self,
    ) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName> {
        let name = if is_lowercase_token(self) {
            HeaderName::from_static(self)
        } else {
            HeaderName::from_bytes(self.as_bytes())?
        };
        Ok((CaseHeaderName(Bytes::from_static(self.as_bytes())), name))
    }
}

/// Whether `name` is a header name `HeaderName::from_static` takes (it panics on any other):
/// non-empty, short, and only RFC 9110 token characters with no upper-case letter.
#[cfg(not(feature = "stock-names"))]
fn is_lowercase_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| LOWERCASE_TOKEN[b as usize])
}

/// The bytes of a lower-case token (RFC 9110 `tchar` without `A`–`Z`).
#[cfg(not(feature = "stock-names"))]
static LOWERCASE_TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(&self))
    }

    #[cfg(not(feature = "stock-names"))]
    fn into_names(self) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName> {
        Ok((CaseHeaderName(titled_header_name(&self)), self))
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(self))
    }

    #[cfg(not(feature = "stock-names"))]
    fn into_names(self) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName> {
        Ok((CaseHeaderName(titled_header_name(self)), self.clone()))
    }
}

/// A `HeaderName` that lives as long as the program (a `static`), given to insert or append
/// (metalgate patch). Its own key, and the case-preserving name its text — titled as a
/// `HeaderName` given is, borrowed for good — so nothing is checked, parsed or copied per
/// header: a custom `HeaderName` given by reference had its text copied into a new allocation
/// on every insert (http has no way to share its bytes), and a `&'static str` is checked and
/// made into a key each time.
#[derive(Debug, Clone, Copy)]
pub struct StaticHeaderName(pub &'static HeaderName);

impl IntoCaseHeaderName for StaticHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        let text = titled_header_name_str(self.0).unwrap_or(self.0.as_str());
        CaseHeaderName(Bytes::from_static(text.as_bytes()))
    }

    fn into_names(self) -> std::result::Result<(CaseHeaderName, HeaderName), header::InvalidHeaderName> {
        Ok((self.into_case_header_name(), self.0.clone()))
    }
}

impl IntoCaseHeaderName for Bytes {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self)
    }
}

fn titled_header_name(header_name: &HeaderName) -> Bytes {
    titled_header_name_str(header_name).map_or_else(
        || Bytes::copy_from_slice(header_name.as_str().as_bytes()),
        |s| Bytes::from_static(s.as_bytes()),
    )
}

pub(crate) fn titled_header_name_str(header_name: &HeaderName) -> Option<&'static str> {
    Some(match *header_name {
        header::ACCEPT_RANGES => "Accept-Ranges",
        header::AGE => "Age",
        header::CACHE_CONTROL => "Cache-Control",
        header::CONNECTION => "Connection",
        header::CONTENT_TYPE => "Content-Type",
        header::CONTENT_ENCODING => "Content-Encoding",
        header::CONTENT_LENGTH => "Content-Length",
        header::DATE => "Date",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        header::HOST => "Host",
        header::SERVER => "Server",
        header::SET_COOKIE => "Set-Cookie",
        // TODO: add more const header here to map to their titled case
        // TODO: automatically upper case the first letter?
        _ => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_given_keep_their_key_and_case() {
        for (given, key, case) in [
            ("x-forwarded-for", "x-forwarded-for", "x-forwarded-for"),
            ("X-Forwarded-For", "x-forwarded-for", "X-Forwarded-For"),
            ("host", "host", "host"),
            ("Host", "host", "Host"),
            ("a!#$%&'*+-.^_`|~9", "a!#$%&'*+-.^_`|~9", "a!#$%&'*+-.^_`|~9"),
        ] {
            let (c, k) = given.into_names().unwrap();
            assert_eq!((c.as_slice(), k.as_str()), (case.as_bytes(), key), "{given}");
        }
        for bad in ["", "a b", "a:b", "caf\u{e9}", "x\n"] {
            assert!(bad.into_names().is_err(), "{bad:?}");
        }
        let (c, k) = header::HOST.into_names().unwrap();
        assert_eq!((c.as_slice(), k), (&b"Host"[..], header::HOST));
        let custom = HeaderName::from_static("x-request-id");
        let (c, k) = (&custom).into_names().unwrap();
        assert_eq!((c.as_slice(), k), (&b"x-request-id"[..], custom));
        // A static name: the same key and case as given by reference, the text not copied.
        static CUSTOM: HeaderName = HeaderName::from_static("x-request-id");
        let (c, k) = StaticHeaderName(&CUSTOM).into_names().unwrap();
        assert_eq!((c.as_slice(), &k), (&b"x-request-id"[..], &CUSTOM));
        assert_eq!(c.as_slice().as_ptr(), CUSTOM.as_str().as_ptr());
        static HOST: HeaderName = header::HOST;
        let (c, k) = StaticHeaderName(&HOST).into_names().unwrap();
        assert_eq!((c.as_slice(), k), (&b"Host"[..], header::HOST));
    }

    #[test]
    fn test_case_header_name() {
        assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
        assert_eq!("FoO".to_string().into_case_header_name().as_slice(), b"FoO");
        assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
    }
}
