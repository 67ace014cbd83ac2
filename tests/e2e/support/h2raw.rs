//! A raw HTTP/2 client that writes frames by hand, for the flood tests: it does what a
//! well-behaved client library never would (reset every stream at once, send endless
//! CONTINUATION frames, never read, advertise a zero window).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame: 9-byte header and payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block for `GET http://h<path>`: static-table indexes for the method and
/// scheme, and literals without indexing for the path and authority.
pub fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    // `:path` (static index 4) as a literal value, not indexed.
    block.push(0x04);
    block.push(path.len() as u8);
    block.extend_from_slice(path.as_bytes());
    // `:authority` (static index 1).
    block.extend_from_slice(&[0x01, 0x01, b'h']);
    block
}

/// A `SETTINGS` payload.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(id, value)| {
            let mut p = id.to_be_bytes().to_vec();
            p.extend_from_slice(&value.to_be_bytes());
            p
        })
        .collect()
}

/// A connection that has sent the preface and its SETTINGS.
pub struct RawH2 {
    pub tcp: TcpStream,
    read: Vec<u8>,
}

/// A frame the server sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl RawH2 {
    pub async fn connect(addr: SocketAddr, settings_pairs: &[(u16, u32)]) -> Self {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &settings(settings_pairs)));
        tcp.write_all(&hello).await.expect("preface");
        Self {
            tcp,
            read: Vec::new(),
        }
    }

    /// Writes frames; `false` once the server has closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// The next frame, or `None` when the connection closed (or nothing came within
    /// `wait`).
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            if self.read.len() >= 9 {
                let len =
                    u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]) as usize;
                if self.read.len() >= 9 + len {
                    let f = Frame {
                        kind: self.read[3],
                        flags: self.read[4],
                        stream: u32::from_be_bytes([
                            self.read[5],
                            self.read[6],
                            self.read[7],
                            self.read[8],
                        ]) & 0x7fff_ffff,
                        payload: self.read[9..9 + len].to_vec(),
                    };
                    self.read.drain(..9 + len);
                    return Some(f);
                }
            }
            let mut buf = [0u8; 16 * 1024];
            match tokio::time::timeout(wait, self.tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.read.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
    }

    /// Reads frames until one matches, or the connection closes; returns it.
    pub async fn until(
        &mut self,
        wait: Duration,
        wanted: impl Fn(&Frame) -> bool,
    ) -> Option<Frame> {
        while let Some(f) = self.next_frame(wait).await {
            if wanted(&f) {
                return Some(f);
            }
        }
        None
    }
}

/// The error code of a `GOAWAY` or `RST_STREAM` frame.
pub fn error_code(f: &Frame) -> u32 {
    let at = if f.kind == GOAWAY { 4 } else { 0 };
    f.payload
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
