//! The pooled HTTP client of one upstream: keep-alive connections reused across
//! requests, TLS (with a CA bundle and an optional client certificate for mTLS), and
//! HTTP/2 by ALPN or, for plain-text upstreams, with prior knowledge.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::body::ProxyBody;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// TLS settings of an upstream, already loaded from disk.
#[derive(Debug)]
pub struct ClientTls {
    pub roots: Option<Vec<CertificateDer<'static>>>,
    pub server_name: Option<String>,
    pub client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

#[derive(Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_target: usize,
    pub http2_prior_knowledge: bool,
    pub tls: Option<ClientTls>,
}

pub fn build_client(s: ClientSettings) -> Result<UpstreamClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(s.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));

    let connector = match s.tls {
        None => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(plain_roots_config())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http),
        Some(tls) => {
            let mut roots = RootCertStore::empty();
            match tls.roots {
                Some(certs) => {
                    for cert in certs {
                        roots
                            .add(cert)
                            .map_err(|e| format!("invalid CA certificate: {e}"))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
            let config = match tls.client_auth {
                Some((chain, key)) => builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("invalid client certificate or key: {e}"))?,
                None => builder.with_no_client_auth(),
            };
            let b = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_only();
            let b = match tls.server_name {
                Some(name) => {
                    let name = rustls_pki_types::ServerName::try_from(name)
                        .map_err(|e| format!("invalid `server_name`: {e}"))?;
                    b.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
                }
                None => b,
            };
            b.enable_http1().enable_http2().wrap_connector(http)
        }
    };

    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(s.pool_idle_timeout)
        .pool_max_idle_per_host(s.pool_max_idle_per_target)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(s.http2_prior_knowledge)
        .build(connector))
}

/// Plain-text upstreams never use TLS, but the connector type wants a config.
fn plain_roots_config() -> rustls::ClientConfig {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth(),
            )
        })
        .as_ref()
        .clone()
}
