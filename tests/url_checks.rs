//! URL checks against real servers started here on loopback: an HTTP server answering chosen
//! statuses and delays, and HTTPS servers with certificates made by rcgen — valid for 30 days
//! under a test CA, expiring in 2 days, expired, self-signed, for another host name — plus a
//! refused port, a silent port and a name that does not resolve.

mod common;

use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{Backend, TestApp, assert_error};
use hostwatch::urlcheck::{
    StatusSet,
    runner::{CheckSpec, HostResolver, UrlChecker},
};
use poem::{
    EndpointExt, Route, handler,
    http::StatusCode,
    listener::{Acceptor, Listener},
    web::Path,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[handler]
fn answer_status(Path(code): Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

#[handler]
async fn delay(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slow"
}

/// An HTTP server: `/status/{code}` answers `code`, `/delay/{ms}` answers after `ms`.
async fn http_server() -> u16 {
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = Route::new()
        .at("/status/:code", answer_status)
        .at("/delay/:ms", delay)
        .map_to_response();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    port
}

/// An HTTPS server presenting `chain`; every request gets `200 ok`.
async fn https_server(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> u16 {
    hostwatch::crypto::install_tls_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Clients that reject the certificate end the handshake: nothing to answer.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn test_ca() -> TestCa {
    test_ca_named("hostwatch test CA")
}

fn test_ca_named(name: &str) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = now() - time::Duration::days(1);
    params.not_after = now() + time::Duration::days(365);
    let pem = params.self_signed(&key).unwrap().pem();
    TestCa { params, key, pem }
}

/// A leaf for `names`, valid from `from_days` to `to_days` (relative to now), signed by `ca`
/// or self-signed.
fn leaf(
    ca: Option<&TestCa>,
    names: &[&str],
    from_days: i64,
    to_days: i64,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.not_before = now() + time::Duration::days(from_days);
    params.not_after = now() + time::Duration::days(to_days);
    let cert = match ca {
        Some(ca) => params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone()], key_der)
}

async fn app() -> TestApp {
    TestApp::start(Backend::Sqlite).await.unwrap()
}

async fn create(app: &TestApp, body: Value) -> i64 {
    let (status, check) = app.post("/api/v1/url-checks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    check["id"].as_i64().unwrap()
}

async fn run(app: &TestApp, id: i64) -> Value {
    let (status, result) = app
        .post(&format!("/api/v1/url-checks/{id}/run"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    result
}

async fn notes(app: &TestApp, id: i64, kind: &str) -> Vec<String> {
    let (_, page) = app.get("/api/v1/notifications?limit=500").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["url_check_id"] == id && n["kind"] == kind)
        .map(|n| {
            format!(
                "{}:{}",
                n["event"].as_str().unwrap(),
                n["level"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn statuses_latency_and_timeouts() {
    let port = http_server().await;
    let app = app().await;
    let base = format!("http://127.0.0.1:{port}");

    let ok = create(
        &app,
        json!({"name": "ok", "url": format!("{base}/status/200")}),
    )
    .await;
    let r = run(&app, ok).await;
    assert_eq!(
        (r["ok"].as_bool(), r["status"].as_i64()),
        (Some(true), Some(200)),
        "{r}"
    );
    assert!(r["response_ms"].as_i64().unwrap() >= 0);
    assert_eq!(r["not_after"], Value::Null, "no TLS on http");

    let down = create(
        &app,
        json!({"name": "down", "url": format!("{base}/status/503")}),
    )
    .await;
    let r = run(&app, down).await;
    assert_eq!(
        (
            r["ok"].as_bool(),
            r["status"].as_i64(),
            r["error_kind"].as_str()
        ),
        (Some(false), Some(503), Some("status"))
    );
    assert!(r["error"].as_str().unwrap().contains("503"), "{r}");
    run(&app, down).await;
    assert_eq!(
        notes(&app, down, "url_status").await,
        ["fired:critical"],
        "one notification for a failing check"
    );
    app.patch(
        &format!("/api/v1/url-checks/{down}"),
        json!({"url": format!("{base}/status/204")}),
    )
    .await;
    run(&app, down).await;
    assert_eq!(
        notes(&app, down, "url_status").await,
        ["fired:critical", "resolved:critical"]
    );

    let expected = create(&app, json!({"name": "maint", "url": format!("{base}/status/503"), "expected_status": ["500-599"]})).await;
    assert_eq!(run(&app, expected).await["ok"], true);

    // Response time over the thresholds set for this check.
    let slow = create(
        &app,
        json!({"name": "slow", "url": format!("{base}/delay/400"), "timeout_ms": 3000}),
    )
    .await;
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/url-checks/{slow}/thresholds/url.response_ms"),
            &app.admin.clone(),
            Some(json!({"warning": 100, "critical": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = run(&app, slow).await;
    assert!(r["response_ms"].as_i64().unwrap() >= 400, "{r}");
    assert_eq!(notes(&app, slow, "url_latency").await, ["fired:critical"]);
    let (_, thresholds) = app
        .get(&format!("/api/v1/url-checks/{slow}/thresholds"))
        .await;
    assert_eq!(
        thresholds["items"].as_array().unwrap().len(),
        2,
        "{thresholds}"
    );

    // A timeout is a timeout, on time.
    let stuck = create(
        &app,
        json!({"name": "stuck", "url": format!("{base}/delay/5000"), "timeout_ms": 500}),
    )
    .await;
    let t = Instant::now();
    let r = run(&app, stuck).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(r["error_kind"], "timeout", "{r}");
    assert!(r["error"].as_str().unwrap().contains("500 ms"));

    let closed = create(
        &app,
        json!({"name": "closed", "url": format!("http://127.0.0.1:{}/", common::free_port())}),
    )
    .await;
    let r = run(&app, closed).await;
    assert_eq!(r["error_kind"], "refused", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("connection refused by 127.0.0.1"),
        "{r}"
    );

    let (_, results) = app.get(&format!("/api/v1/url-checks/{down}/results")).await;
    assert_eq!(
        results["items"].as_array().unwrap().len(),
        3,
        "history kept, newest first"
    );
    assert_eq!(results["items"][0]["status"], 204);
}

/// Resolves nothing but `known.test`: a name that does not resolve, without a DNS query leaving
/// this machine.
struct OneName;

impl HostResolver for OneName {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            if host == "known.test" {
                Ok(vec![IpAddr::from([127, 0, 0, 1])])
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such host",
                ))
            }
        })
    }
}

#[tokio::test]
async fn dns_failure_is_its_own_error() {
    let port = http_server().await;
    let checker = UrlChecker::new(Arc::new(OneName));
    let spec = |url: String| CheckSpec {
        url: url::Url::parse(&url).unwrap(),
        expected: StatusSet::parse(&StatusSet::default_text()).unwrap(),
        timeout: Duration::from_secs(2),
        follow_redirects: true,
        check_tls: true,
        ca_pem: None,
        tls_verify: true,
        tls_fingerprint: None,
    };
    let out = checker
        .check(&spec(format!("http://no-such-host.test:{port}/status/200")))
        .await;
    let (kind, message) = out.error.unwrap();
    assert_eq!(kind.as_str(), "dns");
    assert!(
        message.contains("cannot resolve no-such-host.test"),
        "{message}"
    );
    let out = checker
        .check(&spec(format!("https://no-such-host.test:{port}/")))
        .await;
    assert_eq!(out.error.unwrap().0.as_str(), "dns");
    let out = checker
        .check(&spec(format!("http://known.test:{port}/status/200")))
        .await;
    assert!(out.ok(), "{out:?}");
}

#[tokio::test]
async fn valid_certificate_under_a_test_ca() {
    let ca = test_ca();
    let (chain, key) = leaf(Some(&ca), &["localhost"], -1, 30);
    let port = https_server(chain, key).await;
    let app = app().await;
    let id = create(
        &app,
        json!({"name": "tls-ok", "url": format!("https://localhost:{port}/"), "ca_pem": ca.pem}),
    )
    .await;
    let r = run(&app, id).await;
    assert_eq!(
        (
            r["ok"].as_bool(),
            r["status"].as_i64(),
            r["chain_valid"].as_bool()
        ),
        (Some(true), Some(200), Some(true)),
        "{r}"
    );
    let days = r["days_left"].as_f64().unwrap();
    assert!((29.9..=30.01).contains(&days), "{days}");
    assert!(r["issuer"].as_str().unwrap().contains("hostwatch test CA"));
    assert!(r["subject"].as_str().unwrap().contains("localhost"));
    assert_eq!(r["sans"], json!(["localhost", "127.0.0.1"]));
    assert!(r["serial"].as_str().unwrap().contains(':'));
    assert!(r["not_before"].is_string() && r["not_after"].is_string());
    assert!(notes(&app, id, "cert_expiry").await.is_empty());
    // The same server without the CA: untrusted, but the dates are still there.
    let bare = create(
        &app,
        json!({"name": "tls-no-ca", "url": format!("https://localhost:{port}/")}),
    )
    .await;
    let r = run(&app, bare).await;
    assert_eq!(
        (
            r["ok"].as_bool(),
            r["error_kind"].as_str(),
            r["chain_valid"].as_bool()
        ),
        (Some(false), Some("tls"), Some(false)),
        "{r}"
    );
    assert!(r["days_left"].as_f64().unwrap() > 29.0);
}

#[tokio::test]
async fn expiring_certificate_alerts_once_and_renewal_resolves() {
    let ca = test_ca();
    let (chain, key) = leaf(Some(&ca), &["localhost"], -80, 2);
    let old_port = https_server(chain, key).await;
    let app = app().await;
    let id = create(
        &app,
        json!({"name": "soon", "url": format!("https://localhost:{old_port}/"), "ca_pem": ca.pem}),
    )
    .await;
    let r = run(&app, id).await;
    assert_eq!(
        (r["ok"].as_bool(), r["chain_valid"].as_bool()),
        (Some(true), Some(true)),
        "still valid: {r}"
    );
    assert!((1.9..=2.01).contains(&r["days_left"].as_f64().unwrap()));
    let old_serial = r["serial"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        run(&app, id).await;
    }
    assert_eq!(
        notes(&app, id, "cert_expiry").await,
        ["fired:critical"],
        "a short-lived cert notifies once"
    );
    let (_, page) = app.get("/api/v1/notifications?limit=500").await;
    let fired = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "cert_expiry")
        .unwrap()
        .clone();
    assert_eq!(fired["label"], old_serial.as_str());
    assert_eq!(fired["threshold"], 3.0);

    // Renewed: a new certificate (new serial) valid for 90 days.
    let (chain, key) = leaf(Some(&ca), &["localhost"], -1, 90);
    let new_port = https_server(chain, key).await;
    app.patch(
        &format!("/api/v1/url-checks/{id}"),
        json!({"url": format!("https://localhost:{new_port}/")}),
    )
    .await;
    let r = run(&app, id).await;
    assert_ne!(r["serial"].as_str().unwrap(), old_serial);
    run(&app, id).await;
    assert_eq!(
        notes(&app, id, "cert_expiry").await,
        ["fired:critical", "resolved:critical"]
    );
}

#[tokio::test]
async fn broken_certificates_still_report_their_dates() {
    let ca = test_ca();
    let app = app().await;
    let cases = [
        (
            "expired",
            leaf(Some(&ca), &["localhost"], -60, -1),
            "expired",
        ),
        (
            "self-signed",
            leaf(None, &["localhost"], -1, 30),
            "self-signed certificate",
        ),
        (
            // What `openssl req -x509` makes: a CA certificate served as the server's own,
            // refused even when it is given as the trusted CA.
            "self-signed-ca",
            {
                let (der, key, _) = self_signed_ca_style(&["localhost"], 30);
                (vec![der], key)
            },
            "self-signed certificate",
        ),
        (
            "unknown-issuer",
            leaf(
                Some(&test_ca_named("a CA nobody trusts")),
                &["localhost"],
                -1,
                30,
            ),
            "unknown issuer",
        ),
        (
            "wrong-name",
            leaf(Some(&ca), &["other.example"], -1, 30),
            "name mismatch",
        ),
    ];
    for (name, (chain, key), reason) in cases {
        // The self-signed CA-style certificate is given as the trusted CA itself.
        let ca_pem = if name == "self-signed-ca" {
            pem_of(&chain[0])
        } else {
            ca.pem.clone()
        };
        let port = https_server(chain, key).await;
        let id = create(
            &app,
            json!({"name": name, "url": format!("https://localhost:{port}/"),
                   "ca_pem": ca_pem}),
        )
        .await;
        let r = run(&app, id).await;
        let error = r["error"].as_str().unwrap();
        assert!(
            !error.contains("Other(") && !error.contains("CaUsedAsEndEntity"),
            "plain words, not debug text: {error}"
        );
        assert_eq!(
            (
                r["ok"].as_bool(),
                r["chain_valid"].as_bool(),
                r["error_kind"].as_str()
            ),
            (Some(false), Some(false), Some("tls")),
            "{name}: {r}"
        );
        assert!(
            r["chain_error"].as_str().unwrap().contains(reason),
            "{name}: {r}"
        );
        assert!(r["error"].as_str().unwrap().contains(reason), "{name}: {r}");
        assert!(
            r["not_before"].is_string() && r["not_after"].is_string(),
            "{name}: dates reported"
        );
        assert_eq!(
            notes(&app, id, "url_status").await,
            ["fired:critical"],
            "{name}"
        );
        if name == "expired" {
            assert!(r["days_left"].as_f64().unwrap() < 0.0);
            assert_eq!(notes(&app, id, "cert_expiry").await, ["fired:critical"]);
        }
    }
}

/// A self-signed certificate marked as a CA, for `names` and valid for `to_days`: its DER,
/// key and PEM.
fn self_signed_ca_style(
    names: &[&str],
    to_days: i64,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.not_before = now() - time::Duration::days(1);
    params.not_after = now() + time::Duration::days(to_days);
    let cert = params.self_signed(&key).unwrap();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key_der, cert.pem())
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn sha256_hex(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(der))
}

#[tokio::test]
async fn self_signed_services_are_monitored_with_tls_verify_off_or_a_pinned_fingerprint() {
    let app = app().await;
    // An internal service with a self-signed certificate ending in two days.
    let (der, key, _) = self_signed_ca_style(&["localhost"], 2);
    let fingerprint = sha256_hex(&der);
    let port = https_server(vec![der], key).await;
    let url = format!("https://localhost:{port}/");

    let unverified = create(
        &app,
        json!({"name": "internal", "url": url, "tls_verify": false}),
    )
    .await;
    for _ in 0..2 {
        let r = run(&app, unverified).await;
        assert_eq!(
            (r["ok"].as_bool(), r["status"].as_i64()),
            (Some(true), Some(200)),
            "{r}"
        );
        // The certificate is still read and reported, the chain's verdict included.
        let days = r["days_left"].as_f64().unwrap();
        assert!((1.9..=2.01).contains(&days), "{r}");
        assert_eq!(r["fingerprint"], fingerprint.as_str());
        assert!(r["subject"].as_str().unwrap().contains("localhost"), "{r}");
        assert_eq!(r["chain_valid"], false);
        assert!(
            r["chain_error"]
                .as_str()
                .unwrap()
                .contains("self-signed certificate"),
            "{r}"
        );
    }
    // Near expiry, it alerts (once), and the check itself stays up.
    assert_eq!(
        notes(&app, unverified, "cert_expiry").await,
        ["fired:critical"]
    );
    assert!(notes(&app, unverified, "url_status").await.is_empty());

    // Pinned: this certificate is trusted, with the chain required otherwise.
    let colons = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let (status, pinned_check) = app
        .post(
            "/api/v1/url-checks",
            json!({"name": "pinned", "url": url, "tls_fingerprint": colons}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pinned_check}");
    assert_eq!(
        pinned_check["tls_fingerprint"],
        fingerprint.as_str(),
        "stored normalized"
    );
    let pinned = pinned_check["id"].as_i64().unwrap();
    let r = run(&app, pinned).await;
    assert_eq!(r["ok"], true, "{r}");
    // Another certificate on the same service is refused by the pin.
    let wrong = "00".repeat(32);
    app.patch(
        &format!("/api/v1/url-checks/{pinned}"),
        json!({"tls_fingerprint": wrong}),
    )
    .await;
    let r = run(&app, pinned).await;
    assert_eq!(
        (r["ok"].as_bool(), r["error_kind"].as_str()),
        (Some(false), Some("tls")),
        "{r}"
    );
    assert!(
        r["error"].as_str().unwrap().contains("is not the pinned"),
        "{r}"
    );
    assert_error(
        &app.patch(
            &format!("/api/v1/url-checks/{pinned}"),
            json!({"tls_fingerprint": "abc"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "tls_fingerprint",
    );
    // Verified (the default), the same service fails in plain words.
    let strict = create(&app, json!({"name": "strict", "url": url})).await;
    let r = run(&app, strict).await;
    assert_eq!(r["ok"], false);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("self-signed certificate"),
        "{r}"
    );
}

#[tokio::test]
async fn a_silent_tls_port_times_out_on_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let app = app().await;
    let id = create(
        &app,
        json!({"name": "mute", "url": format!("https://127.0.0.1:{port}/"), "timeout_ms": 700}),
    )
    .await;
    let t = Instant::now();
    let r = run(&app, id).await;
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r["error_kind"], "timeout", "{r}");
}
