//! `/url-checks`: URLs watched for status, response time and TLS certificate expiry.

use chrono::{DateTime, Utc};
use entity::{types::UrlErrorKind, url_check, url_check_result};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};

use crate::{
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    scheduler,
    services::Services,
    store::url_checks::{self as store, UrlCheckSettings},
    urlcheck::{self, StatusSet, TIMEOUT_MS_RANGE},
    validate,
};

/// A new URL check.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct UrlCheckCreate {
    /// Unique display name, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// http or https URL.
    pub url: String,
    /// 6-field cron (with seconds); default once a minute at a second spread by name.
    pub schedule: Option<String>,
    /// Expected statuses: codes or inclusive ranges, e.g. `["200-299", "418"]`. Default
    /// `["200-399"]`.
    pub expected_status: Option<Vec<String>>,
    /// Milliseconds, 100 to 60000; default 10000.
    #[oai(validator(minimum(value = "100"), maximum(value = "60000")))]
    pub timeout_ms: Option<u32>,
    /// Default true.
    pub follow_redirects: Option<bool>,
    /// Read and report the certificate of https URLs (dates, subject, fingerprint) and alert
    /// on its expiry. Default true.
    pub check_tls: Option<bool>,
    /// Attach the check to a host.
    pub host_id: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Extra trusted CA certificates (PEM), for services behind an internal CA.
    pub ca_pem: Option<String>,
    /// Require a certificate chain that validates. Default true; false monitors a
    /// self-signed service (its certificate is still read, reported and alerted on).
    pub tls_verify: Option<bool>,
    /// Trust exactly this certificate, whatever signs it: the SHA-256 of its DER in hex
    /// (colons allowed), as `openssl x509 -noout -fingerprint -sha256` prints it.
    pub tls_fingerprint: Option<String>,
}

/// A partial update of a URL check.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct UrlCheckUpdate {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    pub url: Option<String>,
    pub schedule: Option<String>,
    pub expected_status: Option<Vec<String>>,
    /// Milliseconds, 100 to 60000.
    #[oai(validator(minimum(value = "100"), maximum(value = "60000")))]
    pub timeout_ms: Option<u32>,
    pub follow_redirects: Option<bool>,
    pub check_tls: Option<bool>,
    /// `null` detaches the check from its host.
    pub host_id: MaybeUndefined<i64>,
    pub enabled: Option<bool>,
    /// `null` removes the extra CA certificates.
    pub ca_pem: MaybeUndefined<String>,
    pub tls_verify: Option<bool>,
    /// `null` removes the pin.
    pub tls_fingerprint: MaybeUndefined<String>,
}

/// A URL check.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UrlCheck {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub schedule: String,
    pub expected_status: Vec<String>,
    pub timeout_ms: i32,
    pub follow_redirects: bool,
    pub check_tls: bool,
    pub host_id: Option<i64>,
    pub enabled: bool,
    pub ca_pem: Option<String>,
    pub tls_verify: bool,
    /// The pinned certificate's SHA-256, lowercase hex.
    pub tls_fingerprint: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<url_check::Model> for UrlCheck {
    fn from(c: url_check::Model) -> Self {
        Self {
            id: c.id,
            name: c.name,
            url: c.url,
            schedule: c.schedule,
            expected_status: StatusSet::stored_to_items(&c.expected_status),
            timeout_ms: c.timeout_ms,
            follow_redirects: c.follow_redirects,
            check_tls: c.check_tls,
            host_id: c.host_id,
            enabled: c.enabled,
            ca_pem: c.ca_pem,
            tls_verify: c.tls_verify,
            tls_fingerprint: c.tls_fingerprint,
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
        }
    }
}

/// A page of URL checks.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UrlCheckPage {
    pub items: Vec<UrlCheck>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// One run of a URL check.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UrlCheckResult {
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub ok: bool,
    pub status: Option<i32>,
    pub response_ms: Option<i64>,
    pub error_kind: Option<UrlErrorKind>,
    pub error: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    pub days_left: Option<f64>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub sans: Vec<String>,
    pub serial: Option<String>,
    /// Whether the chain validates against the trusted roots (reported even when the check
    /// does not require it).
    pub chain_valid: Option<bool>,
    /// Why it does not, in plain words (`self-signed certificate`, `expired`, …).
    pub chain_error: Option<String>,
    /// SHA-256 of the certificate's DER, lowercase hex: what `tls_fingerprint` pins.
    pub fingerprint: Option<String>,
}

impl From<url_check_result::Model> for UrlCheckResult {
    fn from(r: url_check_result::Model) -> Self {
        Self {
            id: r.id,
            checked_at: ts(r.checked_at),
            ok: r.ok,
            status: r.status_code,
            response_ms: r.response_ms,
            error_kind: r.error_kind,
            error: r.error,
            not_before: r.tls_not_before.map(ts),
            not_after: r.tls_not_after.map(ts),
            days_left: r.tls_days_left,
            subject: r.tls_subject,
            issuer: r.tls_issuer,
            sans: r
                .tls_sans
                .map(|s| s.split('\n').map(str::to_owned).collect())
                .unwrap_or_default(),
            serial: r.tls_serial,
            chain_valid: r.chain_valid,
            chain_error: r.chain_error,
            fingerprint: r.tls_fingerprint,
        }
    }
}

#[derive(ApiResponse)]
pub enum CreateUrlCheckResponse {
    #[oai(status = 201)]
    Created(Json<UrlCheck>),
}

#[derive(ApiResponse)]
pub enum UrlCheckResponse {
    #[oai(status = 200)]
    Ok(Json<UrlCheck>),
}

#[derive(ApiResponse)]
pub enum ListUrlChecksResponse {
    #[oai(status = 200)]
    Ok(Json<UrlCheckPage>),
}

#[derive(ApiResponse)]
pub enum DeleteUrlCheckResponse {
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum RunUrlCheckResponse {
    /// The check ran; `ok` and `error_kind` say how it went.
    #[oai(status = 200)]
    Ok(Json<UrlCheckResult>),
}

#[derive(ApiResponse)]
pub enum UrlCheckResultsResponse {
    #[oai(status = 200)]
    Ok(Json<Page<UrlCheckResult>>),
}

fn validated(s: UrlCheckSettings) -> Result<UrlCheckSettings> {
    validate::name("name", &s.name)?;
    if let Some(pem) = &s.ca_pem {
        urlcheck::validate_ca_pem(pem).map_err(|r| Error::invalid("ca_pem", r))?;
    }
    urlcheck::validate_url(&s.url).map_err(|r| Error::invalid("url", r))?;
    scheduler::validate_schedule(&s.schedule).map_err(|r| Error::invalid("schedule", r))?;
    Ok(s)
}

/// A pinned fingerprint in its stored form.
fn pin(given: Option<String>) -> Result<Option<String>> {
    given
        .map(|f| {
            urlcheck::cert::normalize_fingerprint(&f)
                .map_err(|r| Error::invalid("tls_fingerprint", r))
        })
        .transpose()
}

fn expected(items: Vec<String>) -> Result<String> {
    StatusSet::parse(&items)
        .map(|s| s.to_stored())
        .map_err(|r| Error::invalid("expected_status", r))
}

fn timeout(ms: u32) -> Result<i32> {
    if TIMEOUT_MS_RANGE.contains(&ms) {
        Ok(ms as i32)
    } else {
        Err(Error::invalid(
            "timeout_ms",
            format!(
                "must be {} to {}",
                TIMEOUT_MS_RANGE.start(),
                TIMEOUT_MS_RANGE.end()
            ),
        ))
    }
}

/// The URL checks resource.
pub struct UrlChecksApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::UrlChecks")]
impl UrlChecksApi {
    /// Create a URL check
    #[oai(
        path = "/url-checks",
        method = "post",
        operation_id = "create_url_check"
    )]
    async fn create(
        &self,
        auth: Auth,
        body: Json<UrlCheckCreate>,
    ) -> ApiResult<
        CreateUrlCheckResponse,
        (
            BadRequest,
            Forbidden,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let b = body.0;
        let settings = validated(UrlCheckSettings {
            schedule: b
                .schedule
                .unwrap_or_else(|| scheduler::default_schedule(&b.name)),
            name: b.name,
            url: b.url,
            expected_status: expected(b.expected_status.unwrap_or_else(StatusSet::default_text))?,
            timeout_ms: timeout(b.timeout_ms.unwrap_or(10_000))?,
            follow_redirects: b.follow_redirects.unwrap_or(true),
            check_tls: b.check_tls.unwrap_or(true),
            host_id: b.host_id,
            enabled: b.enabled.unwrap_or(true),
            ca_pem: b.ca_pem,
            tls_verify: b.tls_verify.unwrap_or(true),
            tls_fingerprint: pin(b.tls_fingerprint)?,
        })?;
        let row = self.0.registry.create_url_check(settings).await?;
        Ok(CreateUrlCheckResponse::Created(Json(row.into())))
    }

    /// List URL checks
    #[oai(path = "/url-checks", method = "get", operation_id = "list_url_checks")]
    async fn list(
        &self,
        _auth: Auth,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListUrlChecksResponse, (BadRequest,)> {
        let limit = super::limit(limit.0);
        let offset = offset.0.unwrap_or(0);
        let (items, total) = store::list(&self.0.db, limit, offset).await?;
        Ok(ListUrlChecksResponse::Ok(Json(UrlCheckPage {
            items: items.into_iter().map(UrlCheck::from).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Get a URL check
    #[oai(
        path = "/url-checks/:id",
        method = "get",
        operation_id = "get_url_check"
    )]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<UrlCheckResponse, (BadRequest, NotFound)> {
        Ok(UrlCheckResponse::Ok(Json(
            store::get(&self.0.db, id.0).await?.into(),
        )))
    }

    /// Change a URL check
    #[oai(
        path = "/url-checks/:id",
        method = "patch",
        operation_id = "update_url_check"
    )]
    async fn update(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<UrlCheckUpdate>,
    ) -> ApiResult<
        UrlCheckResponse,
        (
            BadRequest,
            Forbidden,
            NotFound,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let current = store::get(&self.0.db, id.0).await?;
        let b = body.0;
        let settings = validated(UrlCheckSettings {
            name: b.name.unwrap_or(current.name),
            url: b.url.unwrap_or(current.url),
            schedule: b.schedule.unwrap_or(current.schedule),
            expected_status: match b.expected_status {
                Some(items) => expected(items)?,
                None => current.expected_status,
            },
            timeout_ms: match b.timeout_ms {
                Some(ms) => timeout(ms)?,
                None => current.timeout_ms,
            },
            follow_redirects: b.follow_redirects.unwrap_or(current.follow_redirects),
            check_tls: b.check_tls.unwrap_or(current.check_tls),
            host_id: match b.host_id {
                MaybeUndefined::Undefined => current.host_id,
                MaybeUndefined::Null => None,
                MaybeUndefined::Value(v) => Some(v),
            },
            enabled: b.enabled.unwrap_or(current.enabled),
            ca_pem: match b.ca_pem {
                MaybeUndefined::Undefined => current.ca_pem,
                MaybeUndefined::Null => None,
                MaybeUndefined::Value(v) => Some(v),
            },
            tls_verify: b.tls_verify.unwrap_or(current.tls_verify),
            tls_fingerprint: match b.tls_fingerprint {
                MaybeUndefined::Undefined => current.tls_fingerprint,
                MaybeUndefined::Null => None,
                MaybeUndefined::Value(v) => pin(Some(v))?,
            },
        })?;
        let row = self.0.registry.update_url_check(id.0, settings).await?;
        Ok(UrlCheckResponse::Ok(Json(row.into())))
    }

    /// Delete a URL check
    #[oai(
        path = "/url-checks/:id",
        method = "delete",
        operation_id = "delete_url_check"
    )]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<DeleteUrlCheckResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        self.0.registry.delete_url_check(id.0).await?;
        Ok(DeleteUrlCheckResponse::Deleted)
    }

    /// Results of a URL check
    ///
    /// Newest first.
    #[oai(
        path = "/url-checks/:id/results",
        method = "get",
        operation_id = "list_url_check_results"
    )]
    async fn results(
        &self,
        _auth: Auth,
        id: Path<i64>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<UrlCheckResultsResponse, (BadRequest, NotFound)> {
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::results(&self.0.db, id.0, limit, offset).await?;
        Ok(UrlCheckResultsResponse::Ok(Json(Page {
            items: rows.into_iter().map(UrlCheckResult::from).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Run a URL check now
    ///
    /// Runs the check at once (outside its schedule), stores the result and evaluates its
    /// alerts, and returns the result.
    #[oai(
        path = "/url-checks/:id/run",
        method = "post",
        operation_id = "run_url_check"
    )]
    async fn run(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<RunUrlCheckResponse, (BadRequest, Forbidden, NotFound, Invalid)> {
        auth.require_write()?;
        let row = self.0.url_checks.run(id.0).await?;
        Ok(RunUrlCheckResponse::Ok(Json(row.into())))
    }
}
