//! Server-side TLS: certificates chosen by SNI, TLS 1.2 minimum, ALPN h2 and http/1.1,
//! the server's cipher-suite order, and stapled OCSP responses where configured.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Picks the first certificate valid for the client's SNI name (wildcards included);
/// the first certificate answers when there is no SNI or nothing matches, so a client
/// that asks for an unknown name sees a name mismatch rather than a bare handshake abort.
#[derive(Debug)]
struct SniResolver {
    certs: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let default = self.certs.first().cloned();
        let Some(name) = hello.server_name() else {
            return default;
        };
        let Ok(name) = ServerName::try_from(name) else {
            return default;
        };
        self.certs
            .iter()
            .find(|ck| {
                ck.end_entity_cert().ok().is_some_and(|leaf| {
                    webpki::EndEntityCert::try_from(leaf)
                        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
                })
            })
            .cloned()
            .or(default)
    }
}

/// One certificate of a listener: its chain, key, and the DER OCSP response to staple.
#[derive(Debug)]
pub struct ServerCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ocsp: Option<Vec<u8>>,
}

/// Builds the acceptor config from the certificates, in config order.
pub fn server_config(
    certificates: Vec<ServerCertificate>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut certs = Vec::new();
    for c in certificates {
        let mut ck = CertifiedKey::from_der(c.chain, c.key, &provider)
            .map_err(|e| format!("certificate and key do not form a usable pair: {e}"))?;
        ck.ocsp = c.ocsp;
        certs.push(Arc::new(ck));
    }
    if certs.is_empty() {
        return Err("`tls.certificates` needs at least one certificate".into());
    }
    // rustls implements TLS 1.2 and 1.3 only, so 1.2 is the floor.
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { certs }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order, not the client's: the provider lists only AEAD suites with
    // forward secrecy, strongest first, and a client that prefers a weaker one of them
    // should not get it (testssl.sh reports "no server cipher order" otherwise).
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}
