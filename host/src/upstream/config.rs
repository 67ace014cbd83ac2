//! An upstream's section of the config (`[upstreams.NAME]`): its shape, defaults and
//! checks, and the live [`Upstream`] (pooled client, targets) built from it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::Authority;
use serde::Deserialize;
use toml::Spanned;

use super::{Upstream, UpstreamSettings};
use crate::config::Diagnostics;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` of each target.
    pub targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub balance: Balance,
    #[serde(with = "humantime_serde", default = "connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive.
    #[serde(with = "humantime_serde", default = "request_timeout")]
    pub request_timeout: Duration,
    /// Extra attempts, on another target where there is one, when connecting fails.
    /// Only idempotent requests without a body are retried.
    #[serde(default = "retries")]
    pub retries: u32,
    /// After a connect failure a target is skipped for this long (passive health).
    #[serde(with = "humantime_serde", default = "eject_for")]
    pub eject_for: Duration,
    #[serde(with = "humantime_serde", default = "pool_idle_timeout")]
    pub pool_idle_timeout: Duration,
    #[serde(default = "pool_max_idle_per_target")]
    pub pool_max_idle_per_target: usize,
    /// Speak HTTP/2 with prior knowledge (h2c) to a plain-text upstream.
    #[serde(default)]
    pub http2: bool,
    pub tls: Option<Spanned<UpstreamTlsConfig>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of CAs trusted for this upstream; the public web roots when absent.
    pub ca: Option<Spanned<PathBuf>>,
    /// Name to verify (and send as SNI) instead of the target's host.
    pub server_name: Option<Spanned<String>>,
    /// Client certificate chain (PEM) for mTLS; needs `client_key`.
    pub client_cert: Option<Spanned<PathBuf>>,
    pub client_key: Option<Spanned<PathBuf>>,
}

fn connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn retries() -> u32 {
    1
}
fn eject_for() -> Duration {
    Duration::from_secs(10)
}
fn pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}
fn pool_max_idle_per_target() -> usize {
    64
}

impl Upstream {
    /// The upstream of one `[upstreams.NAME]` table, or `None` after reporting why not.
    pub fn build(
        name: &str,
        u: &Spanned<UpstreamConfig>,
        base: &Path,
        d: &mut Diagnostics<'_>,
    ) -> Option<Self> {
        let cfg = u.get_ref();
        if cfg.targets.is_empty() {
            d.error(
                u.span(),
                format!("upstream `{name}` has no targets"),
                Some("add `targets = [\"127.0.0.1:9000\"]`"),
            );
            return None;
        }
        let mut targets = Vec::new();
        for t in &cfg.targets {
            match t.get_ref().parse::<Authority>() {
                Ok(a) if a.port_u16().is_some() && !t.get_ref().contains('@') => targets.push(a),
                _ => d.error(
                    t.span(),
                    format!("target `{}` is not HOST:PORT", t.get_ref()),
                    Some("write targets without a scheme, like \"10.0.0.5:8080\"; use `[upstreams.NAME.tls]` for HTTPS"),
                ),
            }
        }
        let tls = match &cfg.tls {
            None => None,
            Some(t) => {
                let tc = t.get_ref();
                let roots = tc.ca.as_ref().and_then(|ca| {
                    crate::tls::load_certs(&crate::config::resolve(base, ca.get_ref()))
                        .map_err(|e| d.error(ca.span(), e, None))
                        .ok()
                });
                let client_auth = match (&tc.client_cert, &tc.client_key) {
                    (Some(c), Some(k)) => {
                        let chain =
                            crate::tls::load_certs(&crate::config::resolve(base, c.get_ref()))
                                .map_err(|e| d.error(c.span(), e, None))
                                .ok();
                        let key = crate::tls::load_key(&crate::config::resolve(base, k.get_ref()))
                            .map_err(|e| d.error(k.span(), e, None))
                            .ok();
                        chain.zip(key)
                    }
                    (None, None) => None,
                    _ => {
                        d.error(
                            t.span(),
                            "`client_cert` and `client_key` go together",
                            Some("set both for mTLS, or neither"),
                        );
                        None
                    }
                };
                Some(super::client::ClientTls {
                    roots,
                    server_name: tc.server_name.as_ref().map(|s| s.get_ref().clone()),
                    client_auth,
                })
            }
        };
        let is_tls = tls.is_some();
        // Plain-text HTTP/1.1 takes the lean client; TLS and HTTP/2 the pooled one.
        let direct = (!is_tls && !cfg.http2).then(|| {
            super::DirectPool::new(
                targets.len(),
                cfg.connect_timeout,
                cfg.pool_idle_timeout,
                cfg.pool_max_idle_per_target,
            )
        });
        let client = super::build_client(super::client::ClientSettings {
            connect_timeout: cfg.connect_timeout,
            pool_idle_timeout: cfg.pool_idle_timeout,
            pool_max_idle_per_target: cfg.pool_max_idle_per_target,
            http2_prior_knowledge: cfg.http2 && !is_tls,
            tls,
        })
        .map_err(|e| d.error(u.span(), e, None))
        .ok()?;
        if targets.len() != cfg.targets.len() {
            return None;
        }
        Some(Upstream::new(UpstreamSettings {
            name: name.to_owned(),
            targets,
            balance: cfg.balance,
            tls: is_tls,
            client,
            direct,
            request_timeout: cfg.request_timeout,
            retries: cfg.retries,
            eject_for: cfg.eject_for,
        }))
    }
}
