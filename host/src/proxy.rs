//! Header work around the upstream call: hop-by-hop removal, `X-Forwarded-*`, the client
//! address behind trusted proxies, request ids. (Upgraded tunnels: `listener::tunnel`.)

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Headers the gateway itself writes or reads the client's identity from. `Connection`
/// may not name them: `Connection: X-Forwarded-For` from behind a trusted proxy would
/// otherwise drop the chain the gateway took the client's address from, and the
/// upstream would see the proxy as the client (hop-by-hop header abuse).
static NOT_HOP_BY_HOP: [HeaderName; 7] = [
    header::HOST,
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-real-ip"),
    X_REQUEST_ID,
];

/// Removes hop-by-hop headers and those the `Connection` header names (except the
/// gateway's own, [`NOT_HOP_BY_HOP`]). With `upgrade`, the `Upgrade` handshake headers
/// are kept so the tunnel can be set up end to end.
///
/// A message framed by `Transfer-Encoding` loses its `Content-Length` too: the encoding
/// overrode it, and forwarding it beside a body framed anew would cut the body short
/// (RFC 9112 §6.3: a proxy MUST remove it; found with an upstream sending both).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One look at the names first: most requests carry none of these, and a response
    // with `Connection: keep-alive` is spared a hashed lookup for each name it lacks.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut upgrade_present = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        } else if name == header::UPGRADE {
            upgrade_present = true;
        }
    }
    let [connection, _, _, _, te, _, transfer_encoding] = present;
    if transfer_encoding {
        headers.remove(header::CONTENT_LENGTH);
    }
    // Names `Connection` lists beyond the hop-by-hop ones (rare), which go below.
    let named: Vec<HeaderName> = if connection {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| h.as_str().eq_ignore_ascii_case(t))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|name| !NOT_HOP_BY_HOP.contains(name) && name != header::UPGRADE)
            .collect()
    } else {
        Vec::new()
    };
    // `TE: trailers` is end-to-end in practice (gRPC needs it).
    let te_trailers = te
        && headers
            .get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named {
        headers.remove(&name);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if upgrade_present {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The client's address, walked from the peer leftwards through `X-Forwarded-For` the
/// way nginx's `real_ip_recursive on` does: each hop is believed only while the one to
/// its right is a trusted proxy, so the walk stops at the first untrusted address and
/// never parses what lies left of it (a client writes whatever it likes there).
///
/// `Err` when a trusted proxy handed over an entry that is not an address: the request
/// cannot be attributed to anyone, and attributing it to the proxy itself would let a
/// client borrow the proxy's standing with IP policies (or share its rate-limit bucket
/// with everyone behind it). Entries may carry a port (`1.2.3.4:5678`, `[::1]:80`).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, MalformedForwardedFor> {
    let mut current = peer.to_canonical();
    if !is_trusted(current, trusted) {
        return Ok(current);
    }
    // Later header lines are nearer to us, as are later entries within a line.
    let lines: Vec<&HeaderValue> = headers.get_all(X_FORWARDED_FOR).iter().collect();
    for line in lines.into_iter().rev() {
        let text = line.to_str().map_err(|_| MalformedForwardedFor)?;
        for entry in text.rsplit(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            current = parse_hop(entry).ok_or(MalformedForwardedFor)?;
            if !is_trusted(current, trusted) {
                return Ok(current);
            }
        }
    }
    // Every hop is a trusted proxy: the leftmost is the best the chain can tell.
    Ok(current)
}

/// A trusted proxy's `X-Forwarded-For` holds an entry that is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedForwardedFor;

impl MalformedForwardedFor {
    /// Public text for the 400's `detail`.
    pub fn reason(self) -> &'static str {
        "X-Forwarded-For from a trusted proxy holds an entry that is not an address"
    }
}

fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// Headers by which some upstream framework reads the client's address, scheme, port
/// or path prefix. From a peer that is not a trusted proxy they are a forgery, and go.
///
/// The list follows what frameworks and CDNs read: the address (`X-Real-IP`,
/// `True-Client-IP`, `X-Client-IP`, `X-Cluster-Client-IP`), the scheme, port, host and
/// prefix (`X-Forwarded-Scheme/Port/Prefix/Server`, `X-Host`, `X-Original-Host`), and
/// the URL rewrite headers some frameworks obey (`X-Original-URL`, `X-Rewrite-URL`,
/// `X-Forwarded-Uri`), which would route a request past the gateway's path policies.
static CLIENT_CLAIMS: [HeaderName; 15] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-forwarded-ssl"),
];

/// Removes `names` from `headers`, after one pass over the names present: most requests
/// carry none of them, and removing an absent name still hashes it (callgrind: these
/// removals were ~2 200 of the 2 500 instructions a plain request gained in issue 10).
fn remove_present(headers: &mut HeaderMap, names: &[HeaderName]) {
    if headers.keys().any(|k| names.contains(k)) {
        for name in names {
            headers.remove(name);
        }
    }
}

/// Sets `X-Forwarded-For/Proto/Host`. From a trusted proxy the chain is extended and
/// its proto/host kept; from anyone else all three are replaced and the other headers
/// that claim to describe the client (`Forwarded`, `X-Real-IP`, `X-Forwarded-Port`,
/// `X-Forwarded-Prefix`) removed, so a client cannot forge its address or scheme to the
/// upstream.
pub fn set_forwarded(headers: &mut HeaderMap, peer: &ForwardingPeer, tls: bool, host: &str) {
    let from_proxy = peer.trusted;
    if !from_proxy {
        remove_present(headers, &CLIENT_CLAIMS);
    }
    let chain = if from_proxy && headers.contains_key(X_FORWARDED_FOR) {
        let mut chain = String::new();
        for prior in headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            chain.push_str(prior);
            chain.push_str(", ");
        }
        chain.push_str(peer.value.to_str().unwrap_or_default());
        HeaderValue::from_str(&chain).ok()
    } else {
        Some(peer.value.clone())
    };
    if let Some(chain) = chain {
        headers.insert(X_FORWARDED_FOR, chain);
    }
    if !from_proxy || !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(if tls { "https" } else { "http" }),
        );
    }
    if !from_proxy || !headers.contains_key(X_FORWARDED_HOST) {
        // No host (HTTP/1.0 without one) means no claim about it either.
        match HeaderValue::from_str(host) {
            Ok(v) if !host.is_empty() => headers.insert(X_FORWARDED_HOST, v),
            _ => headers.remove(X_FORWARDED_HOST),
        };
    }
}

/// What the forwarding headers say of a connection's peer, worked out once per
/// connection: its address as a header value and whether it is a trusted proxy.
#[derive(Debug, Clone)]
pub struct ForwardingPeer {
    trusted: bool,
    value: HeaderValue,
}

impl ForwardingPeer {
    pub fn new(peer: IpAddr, trusted: &[IpNet]) -> Self {
        let peer = peer.to_canonical();
        Self {
            trusted: is_trusted(peer, trusted),
            value: HeaderValue::from_str(&peer.to_string())
                .expect("an IP address is a valid header value"),
        }
    }
}

/// Keeps a client's `x-request-id` when it is a sane token, otherwise makes one.
pub fn request_id(headers: &HeaderMap) -> std::sync::Arc<str> {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(
            || {
                let mut buf = uuid::Uuid::encode_buffer();
                std::sync::Arc::from(&*uuid::Uuid::new_v4().simple().encode_lower(&mut buf))
            },
            std::sync::Arc::from,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn untrusted_peer_replaces_forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let peer: IpAddr = "1.2.3.4".parse().expect("ip");
        h.insert(header::FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-port", HeaderValue::from_static("443"));
        h.insert("x-forwarded-prefix", HeaderValue::from_static("/admin"));
        assert_eq!(client_ip(peer, &h, &[]), Ok(peer));
        set_forwarded(
            &mut h,
            &ForwardingPeer::new(peer, &[]),
            false,
            "example.com",
        );
        for name in &CLIENT_CLAIMS {
            assert!(!h.contains_key(name), "{name} kept from an untrusted peer");
        }
        assert_eq!(h[X_FORWARDED_FOR], "1.2.3.4");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "example.com");
    }

    #[test]
    fn trusted_peer_extends_the_chain() {
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("9.9.9.9, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        let trusted = [net("10.0.0.0/8")];
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("9.9.9.9")));
        set_forwarded(
            &mut h,
            &ForwardingPeer::new(peer, &trusted),
            true,
            "example.com",
        );
        assert_eq!(h[X_FORWARDED_FOR], "9.9.9.9, 10.0.0.2, 10.0.0.1");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(lines: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(X_FORWARDED_FOR, HeaderValue::from_static(line));
        }
        h
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_and_never_parses_beyond_it() {
        let trusted = [net("10.0.0.0/8")];
        let peer = ip("10.0.0.1");
        // A client's garbage left of its own address is never read.
        let h = xff(&["garbage, 203.0.113.7"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("203.0.113.7")));
        // A client claiming an internal address left of its own gains nothing.
        let h = xff(&["10.9.9.9, 203.0.113.7, 10.0.0.2"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("203.0.113.7")));
        // Repeated header lines are one list, the last line nearest.
        let h = xff(&["198.51.100.1", "203.0.113.7", "10.0.0.3"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("203.0.113.7")));
        // Ports and bracketed IPv6 are read; IPv4-mapped IPv6 is canonical.
        let h = xff(&["203.0.113.7:5678"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("203.0.113.7")));
        let h = xff(&["[2001:db8::1]:443"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("2001:db8::1")));
        let h = xff(&["::ffff:203.0.113.7"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("203.0.113.7")));
        // No header: the trusted peer is the client (a health checker on the proxy).
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), Ok(peer));
        // Only trusted hops: the leftmost.
        let h = xff(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(client_ip(peer, &h, &trusted), Ok(ip("10.1.1.1")));
    }

    #[test]
    fn a_malformed_hop_from_a_trusted_proxy_is_never_the_proxy() {
        let trusted = [net("10.0.0.0/8")];
        let peer = ip("10.0.0.1");
        for bad in ["unknown", "203.0.113.7, nonsense", "1.2.3.4.5", "_hidden"] {
            let h = xff(&[bad]);
            assert_eq!(
                client_ip(peer, &h, &trusted),
                Err(MalformedForwardedFor),
                "{bad}"
            );
        }
        // From an untrusted peer the header is never read at all.
        let h = xff(&["unknown"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn connection_cannot_name_the_gateways_own_headers() {
        let mut h = xff(&["203.0.113.7"]);
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("X-Forwarded-For, x-request-id, host, x-other"),
        );
        h.insert(X_REQUEST_ID, HeaderValue::from_static("r1"));
        h.insert(header::HOST, HeaderValue::from_static("a.test"));
        h.insert("x-other", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h[X_FORWARDED_FOR], "203.0.113.7");
        assert!(h.contains_key(X_REQUEST_ID) && h.contains_key(header::HOST));
        assert!(!h.contains_key("x-other"));
    }

    #[test]
    fn a_length_beside_a_transfer_encoding_goes_with_it() {
        let mut h = HeaderMap::new();
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        assert!(!h.contains_key(header::TRANSFER_ENCODING));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h[header::CONTENT_LENGTH], "3");
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-end-to-end", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-secret-hop"));
        assert!(!h.contains_key("keep-alive"));
        assert!(!h.contains_key(header::CONNECTION));
        assert_eq!(h[header::TE], "trailers");
        assert!(h.contains_key("x-end-to-end"));
    }

    #[test]
    fn request_ids_are_kept_only_when_well_formed() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*request_id(&h), "abc-123");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("bad id\"<script>"));
        assert_ne!(&*request_id(&h), "bad id\"<script>");
    }

    /// The rule as RFC 9110 §7.6.1 words it, with no shortcut: every name `Connection`
    /// lists goes (but the gateway's own and `Upgrade`), then every hop-by-hop header.
    fn strip_by_the_book(headers: &mut HeaderMap, upgrade: bool) {
        if headers.contains_key(header::TRANSFER_ENCODING) {
            headers.remove(header::CONTENT_LENGTH);
        }
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|name| !NOT_HOP_BY_HOP.contains(name))
            .collect();
        let te_trailers = headers
            .get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        for name in named.iter().filter(|n| *n != header::UPGRADE) {
            headers.remove(name);
        }
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
        if upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        } else {
            headers.remove(header::UPGRADE);
        }
        if te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }

    #[test]
    fn the_one_pass_strip_does_what_the_rule_says() {
        const NAMES: [&str; 14] = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "content-length",
            "x-hop",
            "close",
            "x-forwarded-for",
            "host",
            "accept",
        ];
        const TOKENS: [&str; 10] = [
            "close",
            "Keep-Alive",
            "x-hop",
            "X-HOP",
            "upgrade",
            "host",
            "te",
            "",
            " x-hop ",
            "bad token",
        ];
        const VALUES: [&str; 3] = ["1", "trailers", "chunked"];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for case in 0..20_000 {
            let mut h = HeaderMap::new();
            for _ in 0..next(7) {
                let name = NAMES[next(NAMES.len())];
                let value = if name == "connection" {
                    (0..=next(3))
                        .map(|_| TOKENS[next(TOKENS.len())])
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    VALUES[next(VALUES.len())].to_owned()
                };
                if let Ok(value) = HeaderValue::from_str(&value) {
                    h.append(HeaderName::from_static(name), value);
                }
            }
            let upgrade = next(2) == 0;
            let mut expected = h.clone();
            strip_by_the_book(&mut expected, upgrade);
            let before = format!("{h:?}");
            strip_hop_by_hop(&mut h, upgrade);
            assert_eq!(h, expected, "case {case}: {before} (upgrade: {upgrade})");
        }
    }
}
