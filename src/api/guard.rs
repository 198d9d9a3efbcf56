//! What every request meets before an operation runs, and every response on its way out.
//!
//! - A write to the API (any method but GET and HEAD under `/api/v1`, but logging in and out)
//!   is authenticated before its body is read: no credentials, unknown ones or a viewer's are
//!   refused at once, whatever the body's size, and a write with the session cookie must come
//!   from the service's own origin. The operation's own check then finds the principal there.
//! - A body larger than the limit is refused with 413: by its `Content-Length` before a byte is
//!   read, or — sent without one — as soon as it passes the limit; a body that does not arrive
//!   within the deadline is refused with 408. The operation gets the body from memory.
//! - Every response says `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
//!   an HTML page without a policy of its own gets `Content-Security-Policy: default-src 'none'`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use poem::{
    Body, Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

use entity::types::Role;

use poem_openapi::error::ParseRequestPayloadError;

use super::{
    auth::SESSION_COOKIE,
    body_errors,
    error::{UNAUTHORIZED_MESSAGE, refusal},
};
use crate::{
    logs::Every,
    services::Services,
    store::{sessions, tokens},
};

/// What a request may send.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Most bytes of a request body.
    pub max_body: usize,
    /// How long the whole body may take to arrive.
    pub body_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            body_timeout: Duration::from_secs(30),
        }
    }
}

static REFUSED: Every = Every::new(Duration::from_secs(10));

/// Logs a refusal, at most once per interval.
fn log_refusal(req: &Request, status: StatusCode, why: &str) {
    if let Some(more) = REFUSED.due() {
        tracing::warn!(
            method = %req.method(),
            path = %crate::logs::Untrusted(req.uri().path()),
            remote = %req.remote_addr(),
            status = status.as_u16(),
            refused_since = more,
            "request refused: {why}"
        );
    }
}

fn is_write(req: &Request) -> bool {
    let path = req.uri().path();
    path.starts_with("/api/v1/")
        // Logging in has no credentials yet; logging out ends whatever session there is.
        && path != "/api/v1/session"
        && !matches!(*req.method(), Method::GET | Method::HEAD)
}

/// The bearer token of `Authorization: Bearer …`, if that is what the header holds.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(req: &Request) -> Option<String> {
    req.cookie()
        .get(SESSION_COOKIE)
        .map(|c| c.value_str().to_owned())
}

/// Whether a browser's write comes from a page of this service: its `Origin` names the host
/// it was sent to. A write authenticated by cookie from anywhere else is a cross-site request
/// (SameSite=Strict keeps browsers from sending the cookie with one; this refuses it anyway).
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host)
}

/// Authenticates an API write before its body is read: a token or a session, with a role
/// that may write at all (operations that need admin check that themselves).
async fn authenticate_write(req: &mut Request) -> Result<(), Response> {
    let Some(services) = req.data::<Services>() else {
        return Ok(());
    };
    let failed = |e: crate::error::Error| {
        tracing::error!(error = %e, "credential lookup failed");
        refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the service log",
        )
    };
    let principal = match (bearer(req), session_cookie(req)) {
        (Some(token), _) => tokens::authenticate(&services.db, token)
            .await
            .map_err(failed)?,
        (None, Some(cookie)) => {
            if !same_origin(req) {
                return Err(refusal(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a write with the session cookie must come from this service's own pages \
                     (its Origin header names another site, or none)",
                ));
            }
            sessions::authenticate(&services.db, &cookie)
                .await
                .map_err(failed)?
        }
        (None, None) => None,
    };
    let Some(principal) = principal else {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            UNAUTHORIZED_MESSAGE,
        ));
    };
    if principal.role < Role::Operator {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} may only read (role {})",
                principal.who(),
                principal.role
            ),
        ));
    }
    req.extensions_mut().insert(principal);
    Ok(())
}

/// Reads the body into memory within the limits; returns a copy (shared, not copied) to
/// explain a body that does not parse.
async fn bounded_body(req: &mut Request, limits: RequestLimits) -> Result<Option<Bytes>, Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over {} bytes", limits.max_body),
        )
    };
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large());
    }
    if declared == Some(0) {
        return Ok(None);
    }
    let mut stream = req.take_body().into_bytes_stream();
    let read = async {
        use futures_util::StreamExt;
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the request body could not be read: {e}"),
                )
            })?;
            if buf.len() + chunk.len() > limits.max_body {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            req.set_body(Body::from_bytes(bytes.clone()));
            Ok(Some(bytes))
        }
        Ok(Err(refused)) => Err(refused),
        Err(_) => Err(refusal(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                limits.body_timeout.as_secs()
            ),
        )),
    }
}

/// The guard around the API's routes (inside the layer that attaches [`Services`]).
pub async fn guard<E: Endpoint>(
    next: E,
    mut req: Request,
    limits: RequestLimits,
) -> poem::Result<Response> {
    if is_write(&req)
        && let Err(refused) = authenticate_write(&mut req).await
    {
        log_refusal(&req, refused.status(), "not authorized to write");
        return Ok(refused);
    }
    let body = match bounded_body(&mut req, limits).await {
        Ok(body) => body,
        Err(refused) => {
            log_refusal(&req, refused.status(), "body over the limit or too slow");
            return Ok(refused);
        }
    };
    match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) => {
            let explained = err
                .downcast_ref::<ParseRequestPayloadError>()
                .and_then(|e| {
                    body_errors::explain(
                        super::spec_value(),
                        &e.reason,
                        body.as_deref().unwrap_or(b""),
                    )
                });
            match explained {
                Some(x) => Ok(refusal(x.status, x.code, x.message)),
                None => Err(err),
            }
        }
    }
}

/// Adds the security headers to every response.
pub async fn security_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    Ok(resp)
}

/// Logs every request: method, path, status and time taken; at info when `loud` (the
/// `--access-log` flag), at debug otherwise.
pub async fn access_log<E: Endpoint>(next: E, req: Request, loud: bool) -> poem::Result<Response> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let remote = req.remote_addr().to_string();
    let resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let path = crate::logs::Untrusted(path);
    if loud {
        tracing::info!(%method, %path, status, ms, %remote, "request");
    } else {
        tracing::debug!(%method, %path, status, ms, %remote, "request");
    }
    Ok(resp)
}
