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

//! The case-preserving names of a header's fields (metalgate patch).
//!
//! A `RequestHeader` or `ResponseHeader` keeps its values in an `http::HeaderMap` and, to write
//! each name as it was given, the names in a second map walked beside the first. As released
//! that second map is another `HeaderMap`: every field parsed, inserted or appended is hashed
//! and placed twice, and a header's copy or drop pays for two hash tables. Here the names are a
//! plain list in the value map's own order, told after each change to the value map what that
//! change was (a new name, another value under a name, a name's values replaced, a name
//! removed), so nothing is hashed twice. The order it mirrors is the value map's: its entries
//! in the order their names first came, each name's values in the order they were added; a
//! removed entry's place taken by the last entry (`Vec::swap_remove`, as `HeaderMap::remove`
//! does). Finding a repeated name is a walk over the names before it: cheap for the few dozen
//! fields of a real message, quadratic in the worst case (256 fields, a name repeated 128 times
//! at the end: ~1.4× the released maps' time). The feature `stock-case-map` keeps the released
//! second `HeaderMap`.

use crate::case_header_name::CaseHeaderName;
use crate::HMap;
use http::header::{AsHeaderName, HeaderName};

/// The names as given of a header map's fields, in the value map's order.
#[cfg(not(feature = "stock-case-map"))]
#[derive(Debug, Clone)]
pub(crate) struct CaseMap {
    /// One per name of the value map, in its entries' order.
    entries: Vec<CaseEntry>,
    /// The cases of the values appended under a name after its first, each with its entry's
    /// index, in the order they were appended (rare: kept apart so that an entry is two names
    /// and nothing to free).
    more: Vec<(usize, CaseHeaderName)>,
}

/// One name of the value map: its key and the case its first value came with.
#[cfg(not(feature = "stock-case-map"))]
#[derive(Debug, Clone)]
struct CaseEntry {
    name: HeaderName,
    first: CaseHeaderName,
}

#[cfg(not(feature = "stock-case-map"))]
impl CaseMap {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        CaseMap {
            entries: Vec::with_capacity(capacity),
            more: Vec::new(),
        }
    }

    fn index_of(&self, name: &HeaderName) -> Option<usize> {
        self.entries.iter().position(|e| e.name == *name)
    }

    fn push(&mut self, name: HeaderName, first: CaseHeaderName) {
        self.entries.push(CaseEntry { name, first });
    }

    /// The value map appended a value under `name`; `existed`: it had the name already.
    pub(crate) fn appended(&mut self, name: HeaderName, case: CaseHeaderName, existed: bool) {
        match existed.then(|| self.index_of(&name)).flatten() {
            Some(at) => self.more.push((at, case)),
            None => self.push(name, case),
        }
    }

    /// The value map inserted a value under `name`, replacing every value it had there when
    /// `existed`.
    pub(crate) fn inserted(&mut self, name: HeaderName, case: CaseHeaderName, existed: bool) {
        match existed.then(|| self.index_of(&name)).flatten() {
            Some(at) => {
                self.entries[at].first = case;
                if !self.more.is_empty() {
                    self.more.retain(|(of, _)| *of != at);
                }
            }
            None => self.push(name, case),
        }
    }

    /// The value map removed the entry of a name (given as `_name`, found in `value_map` as it
    /// is now): the entry whose place no longer matches is the one removed, and the last one
    /// takes its place, as in the value map.
    pub(crate) fn removed<'a, N: ?Sized, T>(&mut self, _name: &'a N, value_map: &HMap<T>)
    where
        &'a N: 'a + AsHeaderName,
    {
        let at = self
            .entries
            .iter()
            .zip(value_map.keys())
            .position(|(mine, theirs)| mine.name != *theirs)
            .unwrap_or(value_map.keys_len());
        if at >= self.entries.len() {
            return;
        }
        let last = self.entries.len() - 1;
        self.entries.swap_remove(at);
        if !self.more.is_empty() {
            self.more.retain(|(of, _)| *of != at);
            for (of, _) in &mut self.more {
                if *of == last {
                    *of = at;
                }
            }
        }
    }

    /// Each field's key and case-preserving name, in the value map's iteration order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            entries: self.entries.iter().enumerate(),
            more: &self.more,
            current: None,
            scan: 0,
        }
    }
}

/// [`CaseMap::iter`]: an entry's first case, then the cases appended under it.
#[cfg(not(feature = "stock-case-map"))]
pub(crate) struct Iter<'a> {
    entries: std::iter::Enumerate<std::slice::Iter<'a, CaseEntry>>,
    more: &'a [(usize, CaseHeaderName)],
    /// The entry whose appended cases are being looked for, and its index.
    current: Option<(usize, &'a CaseEntry)>,
    /// Where in `more` the look goes on.
    scan: usize,
}

#[cfg(not(feature = "stock-case-map"))]
impl<'a> Iterator for Iter<'a> {
    type Item = (&'a HeaderName, &'a CaseHeaderName);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((at, entry)) = self.current {
            while let Some((of, case)) = self.more.get(self.scan) {
                self.scan += 1;
                if *of == at {
                    return Some((&entry.name, case));
                }
            }
            self.current = None;
        }
        let (at, entry) = self.entries.next()?;
        if !self.more.is_empty() {
            self.current = Some((at, entry));
            self.scan = 0;
        }
        Some((&entry.name, &entry.first))
    }
}

/// The released second `HeaderMap` (the feature `stock-case-map`, for the unpatched floor).
#[cfg(feature = "stock-case-map")]
#[derive(Debug, Clone)]
pub(crate) struct CaseMap(HMap<CaseHeaderName>);

#[cfg(feature = "stock-case-map")]
impl CaseMap {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        CaseMap(HMap::with_capacity(capacity))
    }

    pub(crate) fn appended(&mut self, name: HeaderName, case: CaseHeaderName, _existed: bool) {
        // As released it is `try_append`; the value map, appended to first, has the same size.
        let _ = self.0.try_append(name, case);
    }

    pub(crate) fn inserted(&mut self, name: HeaderName, case: CaseHeaderName, _existed: bool) {
        self.0.insert(name, case);
    }

    pub(crate) fn removed<'a, N: ?Sized, T>(&mut self, name: &'a N, _value_map: &HMap<T>)
    where
        &'a N: 'a + AsHeaderName,
    {
        self.0.remove(name);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&HeaderName, &CaseHeaderName)> + '_ {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use crate::case_header_name::CaseHeaderName;
    use crate::{HMap, RequestHeader, ResponseHeader};
    use http::header::{HeaderName, HeaderValue};

    /// Names in several cases, standard and custom, so that operations meet the same key
    /// spelled differently.
    const NAMES: [&str; 14] = [
        "Host",
        "HOST",
        "host",
        "X-Forwarded-For",
        "x-forwarded-for",
        "Set-Cookie",
        "set-cookie",
        "Via",
        "X-Custom-1",
        "x-CUSTOM-1",
        "X-Custom-2",
        "Connection",
        "Content-Type",
        "X-Other",
    ];

    /// A header's fields as the released crate keeps them (a second `HeaderMap` of names,
    /// changed with the first), written as `header_to_h1_wire` writes them: the oracle.
    #[derive(Default)]
    struct Released {
        values: HMap<HeaderValue>,
        names: HMap<CaseHeaderName>,
    }

    impl Released {
        fn wire(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for ((k1, case), (k2, v)) in self.names.iter().zip(self.values.iter()) {
                assert_eq!(k1, k2);
                out.extend_from_slice(case.as_slice());
                out.extend_from_slice(b": ");
                out.extend_from_slice(v.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out
        }
    }

    enum Op {
        Append(&'static str, String),
        Insert(&'static str, String),
        Remove(&'static str),
    }

    /// A fixed pseudo-random sequence of operations (xorshift; no dependency for it).
    fn ops(seed: u64, n: usize) -> Vec<Op> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let name = NAMES[(next() % NAMES.len() as u64) as usize];
                match next() % 20 {
                    0..=8 => Op::Append(name, format!("a{i}")),
                    9..=14 => Op::Insert(name, format!("i{i}")),
                    _ => Op::Remove(name),
                }
            })
            .collect()
    }

    fn key(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes()).unwrap()
    }

    #[test]
    fn names_are_written_in_their_case_and_the_value_maps_order_after_any_changes() {
        for seed in 1..=400u64 {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            let mut resp = ResponseHeader::build(200, None).unwrap();
            let mut released = Released::default();
            for (step, op) in ops(seed, 40).into_iter().enumerate() {
                match op {
                    Op::Append(name, value) => {
                        req.append_header(name.to_string(), value.as_str()).unwrap();
                        resp.append_header(name.to_string(), value.as_str()).unwrap();
                        released
                            .names
                            .append(key(name), CaseHeaderName::new(name.to_string()));
                        released
                            .values
                            .append(key(name), HeaderValue::from_str(&value).unwrap());
                    }
                    Op::Insert(name, value) => {
                        req.insert_header(name.to_string(), value.as_str()).unwrap();
                        resp.insert_header(name.to_string(), value.as_str()).unwrap();
                        released
                            .names
                            .insert(key(name), CaseHeaderName::new(name.to_string()));
                        released
                            .values
                            .insert(key(name), HeaderValue::from_str(&value).unwrap());
                    }
                    Op::Remove(name) => {
                        let got = req.remove_header(name);
                        assert_eq!(got.is_some(), resp.remove_header(name).is_some());
                        released.names.remove(name);
                        assert_eq!(got, released.values.remove(name), "seed {seed} step {step}");
                    }
                }
                let want = released.wire();
                let mut got = Vec::new();
                req.header_to_h1_wire(&mut got);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "request, seed {seed}, step {step}"
                );
                let mut got = Vec::new();
                resp.header_to_h1_wire(&mut got);
                assert_eq!(got, want, "response, seed {seed}, step {step}");
            }
            // A copy writes the same, and so does each one through `map`.
            let copy = req.clone();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            req.header_to_h1_wire(&mut a);
            copy.header_to_h1_wire(&mut b);
            assert_eq!(a, b);
            let mut via_map = Vec::new();
            copy.map(|name, value| {
                let crate::HeaderNameVariant::Case(name) = name else {
                    panic!("a header built with case has its names");
                };
                via_map.extend_from_slice(name.as_slice());
                via_map.extend_from_slice(b": ");
                via_map.extend_from_slice(value.as_bytes());
                via_map.extend_from_slice(b"\r\n");
                Ok(())
            })
            .unwrap();
            assert_eq!(via_map, a);
        }
    }
}
