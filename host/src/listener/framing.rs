//! A read-side guard for HTTP/1 request framing.
//!
//! hyper follows RFC 9112 §6.1 for a request with both `Content-Length` and
//! `Transfer-Encoding`: it drops the length and reads chunked. A gateway must do better
//! and refuse it (400), because the upstream or another hop may frame it the other way —
//! the classic request-smuggling setup. hyper removes the evidence before the request
//! reaches us, so this wrapper follows the byte stream itself: it parses each request
//! head with `httparse` (hyper's own parser), skips bodies by their framing, and queues
//! one verdict per request head. The service pops a verdict for each HTTP/1 request, in
//! order, and answers 400 for a conflicting one.
//!
//! It fails closed: after a conflict, an unparseable head or chunk line, or a head past
//! the size cap, it stops looking, and every later request on the connection is
//! answered 400 (hyper closes most such connections anyway). A request that asks for an
//! upgrade is followed like any other; if the upgrade happens, nobody asks again.
//!
//! The cost is linear in the bytes read: elements (heads, chunk-size lines, trailers)
//! are parsed in place from each read, and only an element cut by the end of a read is
//! copied, once, to be completed by the next.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Verdicts for the request heads seen on one connection, oldest first.
#[derive(Debug, Default)]
pub struct FramingVerdicts(Mutex<VecDeque<bool>>);

impl FramingVerdicts {
    /// `true` when the next HTTP/1 request's framing is unambiguous. hyper parses a head
    /// only after the guard has seen its bytes, so an empty queue means the guard gave up
    /// on this connection: fail closed.
    pub fn next_is_sound(&self) -> bool {
        self.0
            .lock()
            .map(|mut q| q.pop_front().unwrap_or(false))
            .unwrap_or(false)
    }

    /// The verdicts not taken yet, oldest first: for tests and the fuzz target, which
    /// compare what the guard decides for the same bytes read in different pieces.
    pub fn pending(&self) -> Vec<bool> {
        self.0
            .lock()
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    fn push(&self, sound: bool) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(sound);
        }
    }
}

#[derive(Debug)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailers,
    /// No longer parsing (h2, upgraded, conflicting or malformed stream).
    Off,
}

#[derive(Debug)]
pub struct FramingGuard {
    state: State,
    buf: Vec<u8>,
    max_head: usize,
    max_headers: usize,
    verdicts: Arc<FramingVerdicts>,
}

impl FramingGuard {
    pub fn new(max_head: usize, max_headers: usize, verdicts: Arc<FramingVerdicts>) -> Self {
        Self {
            state: State::Head,
            buf: Vec::new(),
            max_head,
            max_headers,
            verdicts,
        }
    }

    /// Follows `data`, the next bytes read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Off => return,
                State::Fixed(n) => {
                    let left = skip(&mut data, n);
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Fixed(left)
                    };
                }
                State::ChunkData(n) => {
                    let left = skip(&mut data, n);
                    self.state = if left == 0 {
                        State::ChunkCrlf(2)
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkCrlf(n) => {
                    let left = skip(&mut data, u64::from(n));
                    // `left` is at most 2, from `n`.
                    self.state = if left == 0 {
                        State::ChunkSize
                    } else {
                        State::ChunkCrlf(left as u8)
                    };
                }
                State::Head | State::ChunkSize | State::Trailers if self.buf.is_empty() => {
                    // The common case: the element starts in this read; parse it in place.
                    match self.parse(data) {
                        Parsed::Element(used) => data = &data[used.min(data.len())..],
                        Parsed::Partial => {
                            self.keep_partial(data);
                            return;
                        }
                        Parsed::Stop => return,
                    }
                }
                State::Head | State::ChunkSize | State::Trailers => {
                    // An element cut by the previous read: complete it with this one.
                    let before = self.buf.len();
                    self.buf.extend_from_slice(data);
                    let buf = std::mem::take(&mut self.buf);
                    match self.parse(&buf) {
                        Parsed::Element(used) => {
                            // `used` counts bytes of buf; the rest of `data` follows.
                            let from_data = used.saturating_sub(before);
                            data = &data[from_data.min(data.len())..];
                        }
                        Parsed::Partial => {
                            self.buf = buf;
                            self.keep_partial(&[]);
                            return;
                        }
                        Parsed::Stop => return,
                    }
                }
            }
        }
    }

    /// Whether a request head has started and not ended: the bytes so far are kept,
    /// waiting for the rest. False between requests, in bodies, and once off (HTTP/2,
    /// tunnels; streams hyper itself refuses).
    pub fn partial_head(&self) -> bool {
        matches!(self.state, State::Head) && !self.buf.is_empty()
    }

    fn off(&mut self) {
        self.state = State::Off;
        self.buf = Vec::new();
    }

    /// Keeps the start of an element cut by the end of a read (`more` appended to what
    /// is kept already), or gives up when it outgrows any head hyper would accept.
    fn keep_partial(&mut self, more: &[u8]) {
        if self.buf.len() + more.len() > self.max_head {
            self.off();
        } else {
            self.buf.extend_from_slice(more);
        }
    }

    /// Parses the element the current state expects at the start of `buf`.
    fn parse(&mut self, buf: &[u8]) -> Parsed {
        match self.state {
            State::Head => {
                // Blank lines between requests are allowed (RFC 9112 §2.2).
                let skip = buf
                    .iter()
                    .take_while(|b| **b == b'\r' || **b == b'\n')
                    .count();
                match parse_head(&buf[skip..], self.max_headers) {
                    HeadParse::Partial => Parsed::Partial,
                    HeadParse::Invalid => {
                        self.off();
                        Parsed::Stop
                    }
                    HeadParse::Complete(n, head) => {
                        let conflict =
                            head.transfer_encoding.is_some() && head.content_length.is_some();
                        self.verdicts.push(!conflict);
                        if conflict || head.connect {
                            self.off();
                            return Parsed::Stop;
                        }
                        self.state = match (head.transfer_encoding, head.content_length) {
                            (Some(true), _) => State::ChunkSize,
                            (Some(false), _) => State::Off,
                            (None, Some(Some(0))) | (None, None) => State::Head,
                            (None, Some(Some(n))) => State::Fixed(n),
                            (None, Some(None)) => State::Off,
                        };
                        Parsed::Element(skip + n)
                    }
                }
            }
            State::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Partial) => Parsed::Partial,
                Err(_) => {
                    self.off();
                    Parsed::Stop
                }
                Ok(httparse::Status::Complete((n, 0))) => {
                    self.state = State::Trailers;
                    Parsed::Element(n)
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    self.state = State::ChunkData(size);
                    Parsed::Element(n)
                }
            },
            State::Trailers => {
                let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers + 1];
                match httparse::parse_headers(buf, &mut headers) {
                    Ok(httparse::Status::Partial) => Parsed::Partial,
                    Err(_) => {
                        self.off();
                        Parsed::Stop
                    }
                    Ok(httparse::Status::Complete((n, _))) => {
                        self.state = State::Head;
                        Parsed::Element(n)
                    }
                }
            }
            _ => Parsed::Stop,
        }
    }
}

/// What one parse of the element at the start of a buffer found.
enum Parsed {
    /// A whole element of this many bytes.
    Element(usize),
    /// More bytes are needed.
    Partial,
    /// The guard gave up on this connection.
    Stop,
}

/// What the framing of one request head says.
struct HeadFacts {
    /// `Some(is_chunked_last)` when Transfer-Encoding is present.
    transfer_encoding: Option<bool>,
    /// `Some(parsed value)` when Content-Length is present.
    content_length: Option<Option<u64>>,
    /// A CONNECT turns the connection into a tunnel at once.
    connect: bool,
}

enum HeadParse {
    Partial,
    Invalid,
    Complete(usize, HeadFacts),
}

fn parse_head(buf: &[u8], max_headers: usize) -> HeadParse {
    // Most heads fit the stack array; only larger ones pay for a heap one.
    let mut small = [httparse::EMPTY_HEADER; 64];
    match parse_head_with(buf, &mut small) {
        Err(httparse::Error::TooManyHeaders) if max_headers >= small.len() => {
            let mut large = vec![httparse::EMPTY_HEADER; max_headers + 1];
            parse_head_with(buf, &mut large).unwrap_or(HeadParse::Invalid)
        }
        Err(_) => HeadParse::Invalid,
        Ok(parsed) => parsed,
    }
}

fn parse_head_with<'b>(
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
) -> Result<HeadParse, httparse::Error> {
    let mut req = httparse::Request::new(headers);
    let n = match req.parse(buf)? {
        httparse::Status::Partial => return Ok(HeadParse::Partial),
        httparse::Status::Complete(n) => n,
    };
    let mut facts = HeadFacts {
        transfer_encoding: None,
        content_length: None,
        connect: req.method == Some("CONNECT"),
    };
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            facts.content_length = Some(
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok()),
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            facts.transfer_encoding = Some(ends_with_chunked(h.value));
        }
    }
    Ok(HeadParse::Complete(n, facts))
}

/// Skips up to `n` bytes of `data`; returns how many of the `n` are still to come.
fn skip(data: &mut &[u8], n: u64) -> u64 {
    let take = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
    *data = &data[take..];
    n - take as u64
}

fn ends_with_chunked(te: &[u8]) -> bool {
    std::str::from_utf8(te)
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[&[u8]]) -> Vec<bool> {
        let v = Arc::new(FramingVerdicts::default());
        let mut g = FramingGuard::new(64 * 1024, 100, Arc::clone(&v));
        for part in stream {
            g.feed(part);
        }
        let mut out = Vec::new();
        while let Ok(mut q) = v.0.lock() {
            match q.pop_front() {
                Some(x) => out.push(x),
                None => break,
            }
        }
        out
    }

    #[test]
    fn follows_pipelined_requests_across_bodies() {
        let stream: &[&[u8]] = &[
            b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel",
            b"lo",
            b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            b"0\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        assert_eq!(verdicts(stream), vec![true, true, true]);
    }

    #[test]
    fn body_text_that_looks_like_a_request_is_not_parsed() {
        let stream: &[&[u8]] = &[
            b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 60\r\n\r\n",
            b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        assert_eq!(verdicts(stream), vec![true]);
    }

    #[test]
    fn after_giving_up_every_later_request_is_unsound() {
        let v = Arc::new(FramingVerdicts::default());
        let mut g = FramingGuard::new(64 * 1024, 100, Arc::clone(&v));
        g.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\x00\x01 not a request\r\n\r\n");
        assert!(v.next_is_sound());
        assert!(
            !v.next_is_sound(),
            "an unparsable head must not be waved through"
        );
        assert!(!v.next_is_sound());
    }

    #[test]
    fn a_declined_upgrade_is_followed_like_any_request() {
        let stream: &[&[u8]] = &[
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        assert_eq!(verdicts(stream), vec![true, false]);
    }

    #[test]
    fn one_byte_chunks_split_anywhere_are_followed() {
        let mut body = Vec::new();
        body.extend_from_slice(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        for _ in 0..1000 {
            body.extend_from_slice(b"1\r\nx\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
        for split in [1, 2, 3, 5, 7, 4096] {
            let parts: Vec<&[u8]> = body.chunks(split).collect();
            assert_eq!(verdicts(&parts), vec![true, true], "reads of {split} bytes");
        }
    }

    #[test]
    fn flags_content_length_with_transfer_encoding() {
        let stream: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ];
        assert_eq!(verdicts(stream), vec![false]);
    }
}
