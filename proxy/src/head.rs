//! A request's header block as it arrives, read by read — pure: where it ends (`\r\n\r\n`, also
//! across reads) and whether its request line is one RFC 9112 allows. The header deadline
//! ([`crate::deadline`]) runs every read of a header block through `HeadScan`.

/// What a read's bytes did to the header block being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// The block goes on past this read.
    More,
    /// The block ended in this read.
    Ended,
    /// The request line is malformed: the request gets a 400.
    Malformed,
}

/// A header block's state between reads: its request line so far and its last bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct HeadScan {
    line: RequestLine,
    /// The last bytes seen, to find `\r\n\r\n` across reads.
    tail: u32,
}

/// Where the request line's check left a read.
enum LineStep {
    /// The line is fine (or still arriving); the block's bytes after it start here.
    Rest(usize),
    Ended,
    Malformed,
}

impl HeadScan {
    /// Takes the next read's bytes.
    pub(crate) fn feed(&mut self, new: &[u8]) -> Scanned {
        let step = match self.whole_line(new) {
            Some(step) => step,
            None => self.line_by_byte(new),
        };
        self.after_line(new, step)
    }

    /// The usual case at once: a fresh block whose request line ends in this read, checked over
    /// its bytes as a slice (memchr to its end, then one pass without branches) — the same
    /// verdict and state as [`RequestLine::feed`] byte by byte, in fewer instructions.
    /// `None` when the case does not apply (leading empty lines, a line split across reads).
    fn whole_line(&mut self, new: &[u8]) -> Option<LineStep> {
        if self.line != RequestLine::default() || matches!(new.first(), None | Some(b'\r' | b'\n'))
        {
            return None;
        }
        let nl = memchr::memchr(b'\n', new)?;
        let (text, cr) = match new[..nl].split_last() {
            Some((b'\r', text)) => (text, true),
            _ => (&new[..nl], false),
        };
        // One pass without branches: spaces counted, control characters and DEL flagged.
        let (spaces, bad) = text.iter().fold((0usize, false), |(n, bad), b| {
            (
                n + usize::from(*b == b' '),
                bad | (*b < 0x20) | (*b == 0x7f),
            )
        });
        if spaces > 2 || bad {
            return Some(LineStep::Malformed);
        }
        self.line = RequestLine {
            started: true,
            done: true,
            spaces: spaces as u8,
            cr,
        };
        // No `\r\n\r\n` can end inside the line: it has one LF, its last byte.
        self.tail = last_bytes(self.tail, &new[..=nl]);
        Some(LineStep::Rest(nl + 1))
    }

    /// The request line byte by byte, as far as it goes in `new`.
    fn line_by_byte(&mut self, new: &[u8]) -> LineStep {
        for (i, b) in new.iter().enumerate() {
            if self.line.done {
                return LineStep::Rest(i);
            }
            if !self.line.feed(*b) {
                return LineStep::Malformed;
            }
            self.tail = (self.tail << 8) | u32::from(*b);
            if self.tail == CRLF_CRLF {
                return LineStep::Ended;
            }
        }
        LineStep::Rest(new.len())
    }

    /// The rest of the block after the line: only its line ends are looked at.
    fn after_line(&mut self, new: &[u8], step: LineStep) -> Scanned {
        let rest = match step {
            LineStep::Rest(i) => &new[i..],
            LineStep::Ended => return Scanned::Ended,
            LineStep::Malformed => return Scanned::Malformed,
        };
        if rest.is_empty() {
            return Scanned::More;
        }
        // Whether the block ends here, not where: a read that ends with the blank line (a
        // request with no body, the usual case) is answered without a search.
        let end = last_bytes(self.tail, rest);
        if end == CRLF_CRLF || blank_line_end(self.tail, rest).is_some() {
            Scanned::Ended
        } else {
            self.tail = end;
            Scanned::More
        }
    }

    /// [`HeadScan::feed`] without the slice check: the reference the tests hold it to.
    #[cfg(test)]
    fn feed_by_byte(&mut self, new: &[u8]) -> Scanned {
        let step = self.line_by_byte(new);
        self.after_line(new, step)
    }
}

/// The end of a header block, `\r\n\r\n`, as the last four bytes seen (newest lowest).
const CRLF_CRLF: u32 = 0x0d0a_0d0a;

/// Where the first `\r\n\r\n` ends in `data` (the index after it), given the bytes read before
/// it (`tail`, the newest in the low byte). Only line ends are looked at, found by memchr.
fn blank_line_end(tail: u32, data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', data).find_map(|p| {
        let window = match p.checked_sub(3) {
            Some(i) => u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[p]]),
            // Near the start: the bytes before `data` come from `tail`.
            None => last_bytes(tail, &data[..=p]),
        };
        (window == CRLF_CRLF).then_some(p + 1)
    })
}

/// `tail` after `data`: its last four bytes, earlier ones from `tail` when `data` is shorter.
fn last_bytes(tail: u32, data: &[u8]) -> u32 {
    data[data.len().saturating_sub(4)..]
        .iter()
        .fold(tail, |t, b| (t << 8) | u32::from(*b))
}

/// Checks a request line byte by byte, across reads: leading empty lines are skipped (RFC 9112
/// §2.2), then at most two spaces, no control character, CR only right before LF.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct RequestLine {
    started: bool,
    done: bool,
    spaces: u8,
    cr: bool,
}

impl RequestLine {
    /// Takes the next byte; false when the line is malformed. Bytes after the line are ignored.
    fn feed(&mut self, b: u8) -> bool {
        if self.done {
            return true;
        }
        if !self.started {
            if b == b'\r' || b == b'\n' {
                return true;
            }
            self.started = true;
        }
        if self.cr {
            self.done = b == b'\n';
            return self.done;
        }
        match b {
            b'\n' => self.done = true,
            b'\r' => self.cr = true,
            b' ' => {
                self.spaces += 1;
                return self.spaces <= 2;
            }
            0..=0x1f | 0x7f => return false,
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{HeadScan, RequestLine, Scanned, blank_line_end, last_bytes};
    use proptest::prelude::*;

    /// Where the first `\r\n\r\n` ends, byte by byte: what the scan did before memchr.
    fn reference(all: &[u8]) -> Option<usize> {
        let mut t = 0u32;
        all.iter()
            .position(|b| {
                t = (t << 8) | u32::from(*b);
                t == 0x0d0a_0d0a
            })
            .map(|p| p + 1)
    }

    #[test]
    fn the_end_of_a_header_block_is_found_however_the_reads_split_it() {
        for block in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nX-B: c\r\n\r\n"[..],
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \n\r\n\nB: c\r\r\n\r\n\r\nbody",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r",
            b"\n\n\n\r\n\r",
        ] {
            let want = reference(block);
            for i in 0..=block.len() {
                for j in i..=block.len() {
                    let mut tail = 0;
                    let mut offset = 0;
                    let mut got = None;
                    for chunk in [&block[..i], &block[i..j], &block[j..]] {
                        if let Some(p) = blank_line_end(tail, chunk) {
                            got = Some(offset + p);
                            break;
                        }
                        tail = last_bytes(tail, chunk);
                        offset += chunk.len();
                    }
                    assert_eq!(
                        got,
                        want,
                        "{:?} split at {i}, {j}",
                        block.escape_ascii().to_string()
                    );
                }
            }
        }
    }

    fn ok(bytes: &[u8]) -> bool {
        let mut l = RequestLine::default();
        bytes.iter().all(|b| l.feed(*b))
    }

    #[test]
    fn request_lines_as_rfc_9112_has_them() {
        for good in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /a?b=c%20d HTTP/1.1\r\n",
            b"\r\nGET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\n",
            b"OPTIONS * HTTP/1.1\r\n",
            // What follows the line (headers, a body) is not the line's business.
            b"POST / HTTP/1.1\r\nX-A: b c d\r\n\r\n\x01\x02",
        ] {
            assert!(ok(good), "{:?}", good.escape_ascii().to_string());
        }
        for bad in [
            &b"GET /a\x01b HTTP/1.1\r\n"[..],
            b"GET /a\x7fb HTTP/1.1\r\n",
            b"GET /a\x00 HTTP/1.1\r\n",
            b"GET /a b HTTP/1.1\r\n",
            b"GET /a\tb HTTP/1.1\r\n",
            b"GET / HTTP/1.1\rX",
            b"GE\x1bT / HTTP/1.1\r\n",
        ] {
            assert!(!ok(bad), "{:?}", bad.escape_ascii().to_string());
        }
    }

    #[test]
    fn a_line_split_across_reads_is_the_same_line() {
        let mut l = RequestLine::default();
        assert!(b"GET /a".iter().all(|b| l.feed(*b)));
        assert!(!b" b HTTP/1.1\r\n".iter().all(|b| l.feed(*b)));
    }

    /// A read's worth of bytes near a request line's edge cases: spaces, CR, LF, controls, DEL,
    /// bytes above 0x7f, and ordinary letters.
    fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"GET/HTP1.a:".to_vec()),
            2 => Just(b' '),
            2 => Just(b'\r'),
            2 => Just(b'\n'),
            1 => prop::sample::select(vec![0u8, 0x09, 0x1b, 0x1f, 0x7f, 0x80, 0xff]),
        ];
        prop::collection::vec(byte, 0..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The slice check gives what the byte-by-byte one gives — the verdict on every read and
        /// the state carried to the next — however the block is split into reads.
        #[test]
        fn the_line_at_once_is_the_line_byte_by_byte(
            block in head_bytes(),
            prefix in prop::sample::select(vec![&b""[..], b"GET / HTTP/1.1", b"\r\n", b"GET / HTTP/1.1\r\n"]),
            cuts in prop::collection::vec(0usize..60, 0..4),
        ) {
            let mut all = prefix.to_vec();
            all.extend_from_slice(&block);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(all.len())).collect();
            cuts.push(all.len());
            cuts.sort_unstable();
            let (mut fast, mut slow) = (HeadScan::default(), HeadScan::default());
            let mut from = 0;
            for to in cuts {
                let read = &all[from..to];
                let (a, b) = (fast.feed(read), slow.feed_by_byte(read));
                prop_assert_eq!(a, b, "{:?} read {}..{}", all.escape_ascii().to_string(), from, to);
                if a != Scanned::More {
                    break;
                }
                prop_assert_eq!(fast, slow, "{:?} after {}", all.escape_ascii().to_string(), to);
                from = to;
            }
        }
    }

    #[test]
    fn a_whole_request_in_one_read_ends_its_block() {
        for (read, want) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], Scanned::Ended),
            (b"GET / HTTP/1.1\r\n\r\n", Scanned::Ended),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Scanned::More),
            (b"GET /a b HTTP/1.1\r\n\r\n", Scanned::Malformed),
            (b"GET /\x01 HTTP/1.1\r\n\r\n", Scanned::Malformed),
        ] {
            assert_eq!(
                HeadScan::default().feed(read),
                want,
                "{:?}",
                read.escape_ascii().to_string()
            );
        }
    }
}
