//! The HTTP server: hyper serving the API's endpoint, with the limits a service reachable over a
//! network needs and poem's own server does not give.
//!
//! - At most `max_connections` connections are served at once; one more is answered
//!   `503 Service Unavailable` and closed, so a crowd of idle or half-open connections cannot
//!   take every file descriptor (and `/healthz` with them).
//! - A request's headers must arrive within `header_timeout`, which also closes a keep-alive
//!   connection left idle that long: a client that sends a byte now and then holds nothing.
//! - On shutdown it stops accepting, lets the requests in flight finish (at most
//!   [`GRACE`]), and closes the rest.
//!
//! - With a certificate it speaks HTTPS (rustls); the handshake must end within the header
//!   deadline.
//!
//! Refusals are logged, at most once per ten seconds with the count of the others.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::{
    Endpoint, EndpointExt,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{io::AsyncWriteExt, net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::logs::Every;

/// How long requests in flight may take to finish once shutdown begins.
pub const GRACE: Duration = Duration::from_secs(10);

/// What one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// The body type hyper sends: poem's response body.
type ResponseBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

static OVER_LIMIT: Every = Every::new(Duration::from_secs(10));
static BROKEN: Every = Every::new(Duration::from_secs(10));

/// The response to a connection over the limit: written straight to the socket, no request
/// read.
fn busy_response() -> Vec<u8> {
    let body = r#"{"error":"busy","message":"too many connections; try again in a moment"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One accepted connection and what serving it needs.
struct Connection {
    endpoint: Arc<poem::endpoint::BoxEndpoint<'static, poem::Response>>,
    builder: http1::Builder,
    local: SocketAddr,
    remote: SocketAddr,
    closing: CancellationToken,
}

impl Connection {
    /// Serves requests on `stream` until the client closes it or shutdown ends it.
    async fn serve<S>(self, stream: S, scheme: poem::http::uri::Scheme)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            endpoint,
            builder,
            local,
            remote,
            closing,
        } = self;
        let service = hyper::service::service_fn(move |req: poem::http::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let scheme = scheme.clone();
            async move {
                let req = poem::Request::from((
                    req,
                    LocalAddr(local.into()),
                    RemoteAddr(remote.into()),
                    scheme,
                ));
                let resp: poem::http::Response<ResponseBody> =
                    endpoint.get_response(req).await.into();
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            () = closing.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            log_connection_error(remote, &e);
        }
    }
}

/// Serves `endpoint` on `listener` (over TLS with `tls`) until `stop` is cancelled, then shuts
/// down gracefully.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let local = listener.local_addr()?;
    let endpoint: Arc<poem::endpoint::BoxEndpoint<'static, poem::Response>> =
        Arc::new(endpoint.map_to_response().boxed());
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Cancelled once accepting stops: each connection then finishes its request in flight.
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    // HTTP/1.1 only: detecting HTTP/2 first would wait for a client's first bytes with no
    // deadline, and a connection that sends nothing would be held for ever.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        let (mut stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: back off a moment rather than spin.
                    if let Some(more) = BROKEN.due() {
                        tracing::warn!(error = %e, refused_since = more, "cannot accept a connection");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(more) = OVER_LIMIT.due() {
                tracing::warn!(
                    %remote,
                    limit = limits.max_connections,
                    refused_since = more,
                    "connection limit reached; answering 503"
                );
            }
            connections.spawn(async move {
                let busy = busy_response();
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            endpoint: endpoint.clone(),
            builder: builder.clone(),
            local,
            remote,
            closing: closing.clone(),
        };
        match &tls {
            None => {
                connections.spawn(async move {
                    conn.serve(stream, poem::http::uri::Scheme::HTTP).await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let deadline = limits.header_timeout;
                connections.spawn(async move {
                    // The handshake counts against the header deadline: a client that opens a
                    // connection and says nothing holds it no longer than one that skips TLS.
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => conn.serve(stream, poem::http::uri::Scheme::HTTPS).await,
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake not done in time"),
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {GRACE:?}; closing their connections");
    }
    Ok(())
}

/// The TLS set-up of `--tls-cert`/`--tls-key`: read and checked at start, so a missing or
/// unreadable file, or a key that does not match, stops the service before it does anything.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> crate::error::Result<tokio_rustls::TlsAcceptor> {
    use crate::error::Error;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    crate::crypto::install_tls_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| Error::Config(format!("--tls-cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "--tls-cert {}: no PEM certificate in it",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Config(format!("--tls-key {}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            Error::Config(format!(
                "--tls-cert {} with --tls-key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A connection that ended badly: the header deadline passed (a slow or idle client), or the
/// client broke the protocol. Debug-level for ordinary disconnects.
fn log_connection_error(remote: SocketAddr, e: &hyper::Error) {
    if e.is_timeout() {
        if let Some(more) = BROKEN.due() {
            tracing::info!(%remote, closed_since = more, "connection closed: request headers not sent in time, or idle");
        }
    } else {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}
