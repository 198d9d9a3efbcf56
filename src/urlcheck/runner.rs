//! Running one URL check: an HTTP(S) request with reqwest, and for https a separate TLS
//! handshake that records the certificate chain and whether it validates — so the dates of an
//! expired, self-signed or wrong-name certificate are still reported.
//!
//! Failures are classified: `dns`, `refused`, `connect`, `tls`, `timeout`, `redirect`, `http`
//! (anything else on the wire) and `status` (an answer outside the expected set).

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use entity::types::UrlErrorKind;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};

use super::{
    StatusSet,
    cert::{self, CertInfo},
};

/// Most bytes of a response body read (the rest is not needed to time the response).
const BODY_CAP: usize = 1 << 20;

/// Name resolution, replaceable so tests can make a name fail without sending a DNS query off
/// this machine.
pub trait HostResolver: Send + Sync + 'static {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (`getaddrinfo`, so /etc/hosts and DNS).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A name that did not resolve (kept as its own type so it can be told apart in error chains).
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {reason}")]
pub struct DnsError {
    pub host: String,
    pub reason: String,
}

struct ReqwestResolver(Arc<dyn HostResolver>);

impl reqwest::dns::Resolve for ReqwestResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match resolver.lookup(host.clone()).await {
                Ok(ips) if !ips.is_empty() => {
                    Ok(Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)))
                        as reqwest::dns::Addrs)
                }
                Ok(_) => Err(Box::new(DnsError {
                    host,
                    reason: "no addresses".into(),
                }) as _),
                Err(e) => Err(Box::new(DnsError {
                    host,
                    reason: e.to_string(),
                }) as _),
            }
        })
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub url: url::Url,
    pub expected: StatusSet,
    pub timeout: Duration,
    pub follow_redirects: bool,
    /// Read the certificate and report it (dates, subject, fingerprint; expiry alerts).
    pub check_tls: bool,
    /// Extra trusted roots (PEM), for services behind an internal CA.
    pub ca_pem: Option<String>,
    /// Whether the request needs a chain that validates (off for self-signed services).
    pub tls_verify: bool,
    /// A pinned leaf certificate (SHA-256 of its DER, lowercase hex): trusted whatever signs
    /// it, and nothing else is.
    pub tls_fingerprint: Option<String>,
}

/// The certificate a server presented, and whether its chain validates.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsReport {
    pub cert: CertInfo,
    pub chain_valid: bool,
    pub chain_error: Option<String>,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub response_ms: Option<i64>,
    /// `(kind, message)` when the check failed.
    pub error: Option<(UrlErrorKind, String)>,
    pub tls: Option<TlsReport>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs URL checks.
pub struct UrlChecker {
    resolver: Arc<dyn HostResolver>,
    provider: Arc<CryptoProvider>,
    base_roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for UrlChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UrlChecker({} roots)", self.base_roots.len())
    }
}

/// The handshake-signature checks, left to the wrapped webpki verifier `self.inner`: whatever
/// a verifier decides about the chain, the server must prove it holds the certificate's key.
macro_rules! webpki_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The leaf certificate (DER) a server presented, and the verifier's verdict on its chain.
type Seen = (Vec<u8>, Result<(), String>);

/// Records the chain and the verdict of the real verifier, and lets the handshake finish.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    chain: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map(|_| ())
            .map_err(|e| describe_tls(&e, cert::self_signed(end_entity)));
        *self.chain.lock().expect("not poisoned") = Some((end_entity.to_vec(), verdict));
        Ok(ServerCertVerified::assertion())
    }

    webpki_signatures!();
}

/// A presented certificate that is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the certificate's SHA-256 fingerprint {seen} is not the pinned {pinned}")]
struct PinMismatch {
    seen: String,
    pinned: String,
}

/// What the check's request trusts: a pinned certificate, any certificate (`tls_verify`
/// off), or a chain that validates. The handshake's signatures are always verified.
#[derive(Debug)]
struct RequestPolicy {
    inner: Arc<WebPkiServerVerifier>,
    verify_chain: bool,
    pin: Option<String>,
}

impl ServerCertVerifier for RequestPolicy {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pinned) = &self.pin {
            let seen = cert::fingerprint(end_entity);
            return if &seen == pinned {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                        seen,
                        pinned: pinned.clone(),
                    }))),
                ))
            };
        }
        if !self.verify_chain {
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    webpki_signatures!();
}

/// A reader's wording of a TLS error: `expired`, `self-signed certificate`, `unknown
/// issuer`, `name mismatch` and the like, never the library's debug text. `self_signed` says
/// whether the leaf names itself as its issuer (an unknown issuer is then the leaf itself).
pub fn describe_tls(e: &rustls::Error, self_signed: bool) -> String {
    use rustls::{CertificateError as C, Error as E};
    let E::InvalidCertificate(c) = e else {
        return match e {
            E::AlertReceived(alert) => {
                format!("the server refused the handshake ({alert:?} alert)")
            }
            E::NoCertificatesPresented => "the server presented no certificate".into(),
            E::PeerIncompatible(_) => {
                "the server offers no TLS version or cipher this client accepts".into()
            }
            other => other.to_string(),
        };
    };
    match c {
        C::Expired => "expired: the certificate is past its end date".into(),
        C::ExpiredContext { not_after, .. } => format!(
            "expired: the certificate ended {}",
            when(not_after.as_secs())
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "not valid yet: the certificate's start date is in the future".into()
        }
        C::UnknownIssuer if self_signed => {
            "self-signed certificate: no trusted CA signed it".into()
        }
        C::UnknownIssuer => "unknown issuer: the certificate is not signed by a trusted CA".into(),
        C::NotValidForName => "name mismatch: the certificate is not for this host name".into(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "name mismatch: the certificate is for {}, not {}",
            if presented.is_empty() {
                "no name".to_owned()
            } else {
                presented.join(", ")
            },
            expected.to_str()
        ),
        C::Revoked => "revoked: the certificate was revoked by its issuer".into(),
        C::BadSignature => "bad signature: the certificate's signature does not verify".into(),
        C::BadEncoding => "unreadable certificate".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "wrong purpose: the certificate is not for TLS servers".into()
        }
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "unsupported signature algorithm in the certificate".into()
        }
        C::UnhandledCriticalExtension => {
            "the certificate has a critical extension this client does not know".into()
        }
        C::Other(other) => {
            let inner = other.0.to_string();
            if inner.starts_with("CaUsedAsEndEntity") {
                // A CA certificate presented by the server itself: what `openssl req -x509`
                // and most generators make.
                "self-signed certificate: the server presents a CA certificate of its own".into()
            } else if other.0.downcast_ref::<PinMismatch>().is_some() {
                inner
            } else {
                "invalid certificate".into()
            }
        }
        _ => "invalid certificate".into(),
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
fn when(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn elapsed_ms(since: Instant) -> i64 {
    since.elapsed().as_millis() as i64
}

impl UrlChecker {
    /// A checker trusting Mozilla's roots (compiled in), resolving with `resolver`.
    pub fn new(resolver: Arc<dyn HostResolver>) -> Self {
        crate::crypto::install_tls_provider();
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self {
            resolver,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            base_roots: Arc::new(roots),
        }
    }

    fn roots(&self, ca_pem: Option<&str>) -> Result<Arc<RootCertStore>, String> {
        let Some(pem) = ca_pem else {
            return Ok(self.base_roots.clone());
        };
        let mut roots = (*self.base_roots).clone();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("ca_pem: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca_pem: {e}"))?;
        }
        Ok(Arc::new(roots))
    }

    fn verifier(&self, roots: Arc<RootCertStore>) -> Result<Arc<WebPkiServerVerifier>, String> {
        WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
            .build()
            .map_err(|e| e.to_string())
    }

    fn client_config(&self, verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig, String> {
        Ok(ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// Runs one check. It never takes longer than the check's timeout (plus scheduling).
    pub async fn check(&self, spec: &CheckSpec) -> Outcome {
        let roots = match self.roots(spec.ca_pem.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    status: None,
                    response_ms: None,
                    error: Some((UrlErrorKind::Config, e)),
                    tls: None,
                };
            }
        };
        let https = spec.url.scheme() == "https";
        let (http, tls) = tokio::join!(self.request(spec, roots.clone()), async {
            if https && spec.check_tls {
                Some(self.tls_probe(spec, roots.clone()).await)
            } else {
                None
            }
        });
        let (status, response_ms, mut error) = http;
        let tls = match tls {
            Some(Ok(report)) => Some(report),
            Some(Err(e)) => {
                error = error.or(Some(e));
                None
            }
            None => None,
        };
        // The request failed on the chain: say why in the words the handshake probe found
        // (it saw the leaf, and can tell a self-signed certificate from an unknown issuer).
        if let (
            Some((UrlErrorKind::Tls, message)),
            Some(TlsReport {
                chain_error: Some(why),
                ..
            }),
        ) = (&mut error, &tls)
            && spec.tls_verify
            && spec.tls_fingerprint.is_none()
        {
            *message = format!("TLS: {why}");
        }
        if error.is_none()
            && let Some(code) = status
            && !spec.expected.contains(code)
        {
            error = Some((
                UrlErrorKind::Status,
                format!(
                    "status {code} is not one of the expected {}",
                    spec.expected.to_stored()
                ),
            ));
        }
        Outcome {
            status,
            response_ms,
            error,
            tls,
        }
    }

    async fn request(
        &self,
        spec: &CheckSpec,
        roots: Arc<RootCertStore>,
    ) -> (Option<u16>, Option<i64>, Option<(UrlErrorKind, String)>) {
        let policy = self.verifier(roots).map(|inner| {
            Arc::new(RequestPolicy {
                inner,
                verify_chain: spec.tls_verify,
                pin: spec.tls_fingerprint.clone(),
            }) as Arc<dyn ServerCertVerifier>
        });
        let config = match policy.and_then(|p| self.client_config(p)) {
            Ok(c) => c,
            Err(e) => return (None, None, Some((UrlErrorKind::Config, e))),
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .dns_resolver(Arc::new(ReqwestResolver(self.resolver.clone())))
            .timeout(spec.timeout)
            .redirect(if spec.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .user_agent(concat!("hostwatch/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build();
        let client = match client {
            Ok(c) => c,
            Err(e) => return (None, None, Some((UrlErrorKind::Config, e.to_string()))),
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let work = async {
            let mut resp = client.get(spec.url.clone()).send().await?;
            let status = resp.status().as_u16();
            let mut read = 0usize;
            while read < BODY_CAP {
                match resp.chunk().await? {
                    Some(chunk) => read += chunk.len(),
                    None => break,
                }
            }
            Ok::<u16, reqwest::Error>(status)
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(status)) => (Some(status), Some(elapsed_ms(started)), None),
            Ok(Err(e)) => (None, None, Some(classify(&e, spec))),
            Err(_) => (
                None,
                None,
                Some((
                    UrlErrorKind::Timeout,
                    format!(
                        "no complete response within {} ms",
                        spec.timeout.as_millis()
                    ),
                )),
            ),
        }
    }

    async fn tls_probe(
        &self,
        spec: &CheckSpec,
        roots: Arc<RootCertStore>,
    ) -> Result<TlsReport, (UrlErrorKind, String)> {
        let host = spec
            .url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = spec.url.port_or_known_default().unwrap_or(443);
        let work = async {
            let ips = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => self.resolver.lookup(host.clone()).await.map_err(|e| {
                    (
                        UrlErrorKind::Dns,
                        DnsError {
                            host: host.clone(),
                            reason: e.to_string(),
                        }
                        .to_string(),
                    )
                })?,
            };
            let ip = *ips.first().ok_or_else(|| {
                (
                    UrlErrorKind::Dns,
                    format!("cannot resolve {host}: no addresses"),
                )
            })?;
            let stream = tokio::net::TcpStream::connect((ip, port))
                .await
                .map_err(|e| connect_error(&e, &host, port))?;
            let capture = Arc::new(Capture {
                inner: self
                    .verifier(roots)
                    .map_err(|e| (UrlErrorKind::Config, e))?,
                chain: Mutex::new(None),
            });
            let config = self
                .client_config(capture.clone())
                .map_err(|e| (UrlErrorKind::Config, e))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| (UrlErrorKind::Config, format!("{host}: {e}")))?;
            let handshake = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, stream)
                .await;
            let seen = capture.chain.lock().expect("not poisoned").take();
            match (seen, handshake) {
                (Some((der, verdict)), _) => {
                    let cert = cert::parse_der(&der).map_err(|e| (UrlErrorKind::Tls, e))?;
                    Ok(TlsReport {
                        cert,
                        chain_valid: verdict.is_ok(),
                        chain_error: verdict.err(),
                    })
                }
                (None, Err(e)) => Err((
                    UrlErrorKind::Tls,
                    format!("TLS handshake failed: {}", describe_io_tls(&e)),
                )),
                (None, Ok(_)) => Err((
                    UrlErrorKind::Tls,
                    "the server presented no certificate".to_owned(),
                )),
            }
        };
        tokio::time::timeout(spec.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err((
                    UrlErrorKind::Timeout,
                    format!("no TLS handshake within {} ms", spec.timeout.as_millis()),
                ))
            })
    }
}

/// The TLS error inside an I/O error from the handshake, in plain words.
fn describe_io_tls(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => describe_tls(tls, false),
        None => e.to_string(),
    }
}

fn connect_error(e: &std::io::Error, host: &str, port: u16) -> (UrlErrorKind, String) {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        (
            UrlErrorKind::Refused,
            format!("connection refused by {host}:{port}"),
        )
    } else {
        (
            UrlErrorKind::Connect,
            format!("cannot connect to {host}:{port}: {e}"),
        )
    }
}

/// Classifies a reqwest failure by walking its error chain.
fn classify(e: &reqwest::Error, spec: &CheckSpec) -> (UrlErrorKind, String) {
    let host = spec.url.host_str().unwrap_or_default();
    let port = spec.url.port_or_known_default().unwrap_or(0);
    if e.is_timeout() {
        return (
            UrlErrorKind::Timeout,
            format!(
                "no complete response within {} ms",
                spec.timeout.as_millis()
            ),
        );
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(err) = source {
        if let Some(dns) = err.downcast_ref::<DnsError>() {
            return (UrlErrorKind::Dns, dns.to_string());
        }
        // An io::Error's source() skips the error it wraps; look inside, level by level.
        let mut io = err.downcast_ref::<std::io::Error>();
        while let Some(e) = io {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                return connect_error(e, host, port);
            }
            let inner = e.get_ref();
            if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return (
                    UrlErrorKind::Tls,
                    format!("TLS: {}", describe_tls(tls, false)),
                );
            }
            io = inner.and_then(|i| i.downcast_ref::<std::io::Error>());
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return (
                UrlErrorKind::Tls,
                format!("TLS: {}", describe_tls(tls, false)),
            );
        }
        chain.push(err.to_string());
        source = err.source();
    }
    chain.dedup();
    let text = chain.join(": ");
    if e.is_redirect() {
        (UrlErrorKind::Redirect, text)
    } else if e.is_connect() {
        (UrlErrorKind::Connect, text)
    } else {
        (UrlErrorKind::Http, text)
    }
}
