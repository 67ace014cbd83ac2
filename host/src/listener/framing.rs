//! A read-side guard for HTTP/1 request framing.
//!
//! hyper follows RFC 9112 §6.1 for a request with both `Content-Length` and
//! `Transfer-Encoding`: it drops the length and reads chunked. A gateway must do better
//! and refuse it (400), because the upstream or another hop may frame it the other way —
//! the classic request-smuggling setup. hyper removes the evidence before the request
//! reaches us, so this wrapper follows the byte stream itself: it parses each request
//! head with `httparse` (hyper's own parser), skips bodies by their framing, and queues
//! one verdict per request head. The service pops a verdict for each HTTP/1 request, in
//! order, and answers 400 for a conflicting one. After a conflict, an upgrade or an
//! unparseable head it stops looking; hyper closes such connections anyway.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Verdicts for the request heads seen on one connection, oldest first.
#[derive(Debug, Default)]
pub struct FramingVerdicts(Mutex<VecDeque<bool>>);

impl FramingVerdicts {
    /// `true` when the next HTTP/1 request's framing is unambiguous.
    pub fn next_is_sound(&self) -> bool {
        self.0
            .lock()
            .map(|mut q| q.pop_front().unwrap_or(true))
            .unwrap_or(true)
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
                    let take = (n as usize).min(data.len());
                    data = &data[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Fixed(left)
                    };
                }
                State::ChunkData(n) => {
                    let take = (n as usize).min(data.len());
                    data = &data[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::ChunkCrlf(2)
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkCrlf(n) => {
                    let take = (n as usize).min(data.len());
                    data = &data[take..];
                    let left = n - take as u8;
                    self.state = if left == 0 {
                        State::ChunkSize
                    } else {
                        State::ChunkCrlf(left)
                    };
                }
                State::Head | State::ChunkSize | State::Trailers => {
                    let before = self.buf.len();
                    self.buf.extend_from_slice(data);
                    let consumed = self.parse_buffered();
                    match consumed {
                        // Everything buffered is still an incomplete head or line.
                        None => {
                            if self.buf.len() > self.max_head {
                                self.off();
                            }
                            return;
                        }
                        Some(used) => {
                            // `used` counts bytes of buf; the rest of `data` follows.
                            let from_data = used.saturating_sub(before);
                            data = &data[from_data.min(data.len())..];
                            self.buf.clear();
                        }
                    }
                }
            }
        }
    }

    fn off(&mut self) {
        self.state = State::Off;
        self.buf = Vec::new();
    }

    /// Parses what `buf` holds in the current state; `Some(bytes used)` when a whole
    /// element was found, `None` when more bytes are needed.
    fn parse_buffered(&mut self) -> Option<usize> {
        match self.state {
            State::Head => {
                // Blank lines between requests are allowed (RFC 9112 §2.2).
                let skip = self
                    .buf
                    .iter()
                    .take_while(|b| **b == b'\r' || **b == b'\n')
                    .count();
                let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers.max(1) + 1];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf[skip..]) {
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => {
                        self.off();
                        None
                    }
                    Ok(httparse::Status::Complete(n)) => {
                        let mut lengths = Vec::new();
                        let mut te = None;
                        let mut upgrade = false;
                        for h in req.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                lengths.push(h.value.to_vec());
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                te = Some(h.value.to_vec());
                            } else if h.name.eq_ignore_ascii_case("upgrade") {
                                upgrade = true;
                            }
                        }
                        let conflict = te.is_some() && !lengths.is_empty();
                        self.verdicts.push(!conflict);
                        let is_connect = req.method == Some("CONNECT");
                        if conflict || upgrade || is_connect {
                            self.off();
                            return None;
                        }
                        self.state = match (te, lengths.first()) {
                            (Some(te), _) if ends_with_chunked(&te) => State::ChunkSize,
                            (Some(_), _) => State::Off,
                            (None, Some(len)) => match std::str::from_utf8(len)
                                .ok()
                                .and_then(|s| s.trim().parse::<u64>().ok())
                            {
                                Some(0) => State::Head,
                                Some(n) => State::Fixed(n),
                                None => State::Off,
                            },
                            (None, None) => State::Head,
                        };
                        Some(skip + n)
                    }
                }
            }
            State::ChunkSize => match httparse::parse_chunk_size(&self.buf) {
                Ok(httparse::Status::Partial) => None,
                Err(_) => {
                    self.off();
                    None
                }
                Ok(httparse::Status::Complete((n, 0))) => {
                    self.state = State::Trailers;
                    Some(n)
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    self.state = State::ChunkData(size);
                    Some(n)
                }
            },
            State::Trailers => {
                let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers.max(1) + 1];
                match httparse::parse_headers(&self.buf, &mut headers) {
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => {
                        self.off();
                        None
                    }
                    Ok(httparse::Status::Complete((n, _))) => {
                        self.state = State::Head;
                        Some(n)
                    }
                }
            }
            _ => None,
        }
    }
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
    fn flags_content_length_with_transfer_encoding() {
        let stream: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ];
        assert_eq!(verdicts(stream), vec![false]);
    }
}
