//! TLS at both ends: SNI certificate choice, HTTP/2 by ALPN, and mTLS to an upstream.

use std::sync::Arc;

use http::Version;

use crate::support::TestGateway;
use crate::support::certs::TestCa;
use crate::support::client::{Conn, get, get_once};
use crate::support::upstream::{TestUpstream, UpstreamTls};

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_picks_h2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Portcullis Test CA");
    let a = ca.leaf(dir.path(), "a", &["a.example.test"], false);
    let b = ca.leaf(dir.path(), "b", &["*.b.example.test"], false);
    let config = r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
[listeners.tls]
certificates = [
  { cert = "a.crt", key = "a.key" },
  { cert = "b.crt", key = "b.key" },
]

[[routes]]
id = "hello"
respond = { body = "secure" }
"#;
    let gw = TestGateway::start_in(dir, config).await;

    let (mut conn, leaf) = Conn::tls(
        gw.addr(),
        "x.b.example.test",
        ca.der(),
        &[b"h2", b"http/1.1"],
    )
    .await;
    assert_eq!(leaf.as_ref(), pem_der(&b.cert_pem).as_slice());
    let reply = conn.send(get("x.b.example.test", "/")).await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.text(), "secure");

    let (mut conn, leaf) = Conn::tls(gw.addr(), "a.example.test", ca.der(), &[b"http/1.1"]).await;
    assert_eq!(leaf.as_ref(), pem_der(&a.cert_pem).as_slice());
    let reply = conn.send(get("a.example.test", "/")).await;
    assert_eq!(reply.version, Version::HTTP_11);
    assert_eq!(reply.text(), "secure");
}

#[tokio::test]
async fn forwarded_proto_is_https_behind_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("CA");
    ca.leaf(dir.path(), "gw", &["gw.example.test"], false);
    let up = TestUpstream::start("svc").await;
    let config = format!(
        r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
tls = {{ certificates = [{{ cert = "gw.crt", key = "gw.key" }}] }}
[upstreams.svc]
targets = ["{}"]
[[routes]]
id = "all"
upstream = "svc"
"#,
        up.addr
    );
    let gw = TestGateway::start_in(dir, &config).await;
    let (mut conn, _) = Conn::tls(gw.addr(), "gw.example.test", ca.der(), &[b"h2"]).await;
    let seen = conn.send(get("gw.example.test", "/")).await.json();
    assert_eq!(
        seen["headers"]["x-forwarded-proto"],
        serde_json::json!(["https"])
    );
}

#[tokio::test]
async fn mtls_to_the_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Upstream CA");
    let server = ca.leaf(dir.path(), "upstream", &["backend.internal"], false);
    ca.leaf(dir.path(), "client", &["gateway.internal"], true);
    ca.write_pem(dir.path(), "ca.pem");
    let up = TestUpstream::start_with(
        "secure-backend",
        Some(UpstreamTls {
            cert_pem: server.cert_pem.clone(),
            key_pem: server.key_pem.clone(),
            client_ca: Some(ca.der()),
        }),
    )
    .await;
    let config = format!(
        r#"version = 1
[[listeners]]
address = "127.0.0.1:0"

[upstreams.with-cert]
targets = ["{addr}"]
[upstreams.with-cert.tls]
ca = "ca.pem"
server_name = "backend.internal"
client_cert = "client.crt"
client_key = "client.key"

[upstreams.without-cert]
targets = ["{addr}"]
tls = {{ ca = "ca.pem", server_name = "backend.internal" }}

[[routes]]
id = "mtls"
path = {{ prefix = "/mtls" }}
upstream = "with-cert"

[[routes]]
id = "no-cert"
path = {{ prefix = "/plain" }}
upstream = "without-cert"
"#,
        addr = up.addr
    );
    let gw = TestGateway::start_in(dir, &config).await;
    let reply = get_once(gw.addr(), "h", "/mtls").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-upstream"), Some("secure-backend"));
    // The upstream offers h2 by ALPN, so the gateway speaks HTTP/2 to it.
    assert_eq!(reply.json()["version"], "HTTP/2.0");
    assert_eq!(
        up.counters
            .client_certs
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let reply = get_once(gw.addr(), "h", "/plain").await;
    assert_eq!(
        reply.status, 502,
        "the upstream requires a client certificate"
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

#[tokio::test]
async fn tls_1_2_clients_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("CA");
    ca.leaf(dir.path(), "gw", &["gw.example.test"], false);
    let config = "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
                  tls = { certificates = [{ cert = \"gw.crt\", key = \"gw.key\" }] }\n\
                  [[routes]]\nid = \"r\"\nrespond = { body = \"ok\" }\n";
    let gw = TestGateway::start_in(dir, config).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).expect("ca");
    let client = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = connect_gw(gw.addr(), client).await;
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

/// Issue 10, finding 14: the server's cipher order, a stapled OCSP response, and HSTS.
#[tokio::test]
async fn server_order_ocsp_stapling_and_hsts() {
    use std::sync::Mutex;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("CA");
    ca.leaf(dir.path(), "gw", &["gw.example.test"], false);
    // Any bytes do for the staple: the gateway hands the file over as it is.
    let staple = b"\x30\x03\x0a\x01\x00".to_vec();
    std::fs::write(dir.path().join("gw.ocsp"), &staple).expect("write ocsp");
    let config = "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
                  [listeners.tls]\n\
                  certificates = [{ cert = \"gw.crt\", key = \"gw.key\", ocsp = \"gw.ocsp\" }]\n\
                  hsts = { max_age = \"365d\", include_subdomains = true }\n\
                  [[routes]]\nid = \"r\"\nrespond = { body = \"ok\" }\n";
    let gw = TestGateway::start_in(dir, config).await;

    // A client that prefers the weakest suite it offers, and records the staple.
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut suites = provider.cipher_suites.clone();
    suites.retain(|s| s.version() == &rustls::version::TLS13);
    assert!(
        suites.len() > 1,
        "the provider has more than one TLS 1.3 suite"
    );
    suites.reverse();
    let client_first = suites[0].suite();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites,
        ..provider
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).expect("ca");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let verifier = Arc::new(StapleRecorder {
        inner: rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier"),
        seen: Arc::clone(&seen),
    });
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let tls = connect_gw(gw.addr(), client).await;
    let chosen = tls
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .expect("suite")
        .suite();
    assert_ne!(chosen, client_first, "the client's preference won");
    assert_eq!(*seen.lock().expect("seen"), staple, "no OCSP staple");

    let (mut conn, _) = Conn::tls(gw.addr(), "gw.example.test", ca.der(), &[b"h2"]).await;
    let reply = conn.send(get("gw.example.test", "/")).await;
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
}

/// A certificate verifier that verifies as usual and keeps the stapled OCSP response.
#[derive(Debug)]
struct StapleRecorder {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for StapleRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = ocsp_response.to_vec();
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS handshake with `client` to the gateway at `addr`, as `gw.example.test`.
async fn connect_gw(
    addr: std::net::SocketAddr,
    client: rustls::ClientConfig,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("gw.example.test".try_into().expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

/// hyper picks HTTP/1 or HTTP/2 from a connection's first bytes, not from ALPN: a client
/// that negotiates h2 and then speaks HTTP/1 reaches a connection without the framing
/// guard, and must be refused (fail closed), not served unguarded.
#[tokio::test]
async fn http1_bytes_after_alpn_h2_are_refused_not_served_unguarded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("CA");
    ca.leaf(dir.path(), "gw", &["gw.example.test"], false);
    let config = r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
[listeners.tls]
certificates = [{ cert = "gw.crt", key = "gw.key" }]
[[routes]]
id = "hello"
respond = { body = "secure" }
"#;
    let gw = TestGateway::start_in(dir, config).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).expect("ca");
    let mut client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("gw.example.test").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(
        b"POST / HTTP/1.1\r\nHost: gw.example.test\r\nContent-Length: 4\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tls.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("secure"), "{answer}");
}
