//! A listener's section of the config (`[[listeners]]`): its shape, its defaults (Envoy's
//! edge hardening guide for the limits) and its checks, and the live [`ListenerSpec`]
//! built from it, ready to bind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::tls;
use crate::config::Diagnostics;

#[derive(Debug)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: ListenerLimits,
    pub paths: crate::canonical::PathOptions,
    /// `Strict-Transport-Security` for every response (TLS listeners only).
    pub hsts: Option<http::HeaderValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `IP:PORT`; port 0 picks a free port (its address is logged at start).
    pub address: Spanned<String>,
    pub tls: Option<Spanned<ListenerTlsConfig>>,
    /// Peers (CIDRs) whose `X-Forwarded-*` headers are trusted and extended; from anyone
    /// else those headers are replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    pub limits: ListenerLimits,
    #[serde(default)]
    pub paths: PathsConfig,
}

/// How a listener puts request paths into canonical form before routing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// Read `//` as `/` (nginx's default).
    pub merge_slashes: bool,
    /// `reject` (400, default) or `keep` (left escaped, within their segment).
    #[serde(default)]
    pub escaped_slashes: crate::canonical::EscapedSlashes,
    /// `reject` (400, default) or `keep` (for backends with matrix parameters).
    #[serde(default)]
    pub semicolons: crate::canonical::Semicolons,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: crate::canonical::EscapedSlashes::default(),
            semicolons: crate::canonical::Semicolons::default(),
        }
    }
}

impl PathsConfig {
    pub fn options(&self) -> crate::canonical::PathOptions {
        crate::canonical::PathOptions {
            merge_slashes: self.merge_slashes,
            escaped_slashes: self.escaped_slashes,
            semicolons: self.semicolons,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificates chosen by SNI from their subject names; the first one also answers
    /// clients that send no SNI.
    pub certificates: Vec<CertificateConfig>,
    /// `Strict-Transport-Security` on every response of this listener (unless the
    /// upstream set one).
    pub hsts: Option<HstsConfig>,
}

/// HTTP Strict Transport Security (RFC 6797).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

impl HstsConfig {
    pub fn header_value(&self) -> http::HeaderValue {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        http::HeaderValue::from_str(&v)
            .unwrap_or_else(|_| http::HeaderValue::from_static("max-age=0"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM chain, leaf first.
    pub cert: Spanned<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<PathBuf>,
    /// A DER OCSP response for the leaf, stapled to handshakes (read at load, so a
    /// refreshed file is picked up by the next start or reload).
    pub ocsp: Option<Spanned<PathBuf>>,
}

/// Edge limits of a listener. The defaults follow Envoy's edge hardening guide.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerLimits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest pause between two reads of a request body (nginx `client_body_timeout`;
    /// on HTTP/2 the request side of Envoy's `stream_idle_timeout`); then 408.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Longest time the client may leave the gateway unable to send: a response chunk
    /// it does not take (a full TCP window, or an HTTP/2 stream window left at zero) or
    /// bytes the socket does not accept. nginx `send_timeout`, the response side of
    /// Envoy's `stream_idle_timeout`. The connection is then closed.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

impl ListenerSpec {
    /// The listener of one `[[listeners]]` table, or `None` after reporting why not.
    pub fn build(l: &ListenerConfig, base: &Path, d: &mut Diagnostics<'_>) -> Option<Self> {
        let address = match l.address.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                d.error(
                    l.address.span(),
                    format!("`{}` is not an IP:PORT address", l.address.get_ref()),
                    Some("write it like \"127.0.0.1:8080\" or \"[::]:443\""),
                );
                None
            }
        };
        let trusted_proxies = crate::policy::cidrs(&l.trusted_proxies, d);
        let tls = l.tls.as_ref().and_then(|t| {
            let mut pairs = Vec::new();
            for c in &t.get_ref().certificates {
                let chain = crate::tls::load_certs(&crate::config::resolve(base, c.cert.get_ref()));
                let key = crate::tls::load_key(&crate::config::resolve(base, c.key.get_ref()));
                let ocsp = match &c.ocsp {
                    None => None,
                    Some(path) => match std::fs::read(crate::config::resolve(base, path.get_ref())) {
                        Ok(bytes) if !bytes.is_empty() => Some(bytes),
                        Ok(_) => {
                            d.error(path.span(), "the OCSP response file is empty", None);
                            continue;
                        }
                        Err(e) => {
                            d.error(
                                path.span(),
                                format!("cannot read the OCSP response: {e}"),
                                Some("paths are relative to the config file; the file holds a DER OCSP response"),
                            );
                            continue;
                        }
                    },
                };
                match (chain, key) {
                    (Ok(chain), Ok(key)) => pairs.push(tls::ServerCertificate { chain, key, ocsp }),
                    (Err(e), _) => d.error(
                        c.cert.span(),
                        e,
                        Some("paths are relative to the config file"),
                    ),
                    (_, Err(e)) => d.error(
                        c.key.span(),
                        e,
                        Some("paths are relative to the config file"),
                    ),
                }
            }
            match tls::server_config(pairs) {
                Ok(cfg) => Some(cfg),
                Err(e) => {
                    d.error(t.span(), e, None);
                    None
                }
            }
        });
        let limits = l.limits.clone();
        if limits.max_connections == 0 {
            d.error(
                l.address.span(),
                "`limits.max_connections` must be at least 1",
                None,
            );
        }
        Some(ListenerSpec {
            address: address?,
            tls,
            trusted_proxies,
            limits,
            paths: l.paths.options(),
            hsts: l
                .tls
                .as_ref()
                .and_then(|t| t.get_ref().hsts.as_ref())
                .map(HstsConfig::header_value),
        })
    }
}
