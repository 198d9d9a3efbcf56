//! The REST API (v1): one file per resource, generated into an OpenAPI document with
//! poem-openapi, served with Swagger UI.
//!
//! Operations read through `store`, change hosts and checks through the registry, and reach
//! hosts over SSH through the poller, never directly.

pub mod alerts;
pub mod auth;
pub mod body_errors;
pub mod channels;
pub mod docs;
pub mod error;
pub mod guard;
pub mod history;
pub mod hosts;
pub mod maintenance;
pub mod notifications;
pub mod polling;
pub mod service;
pub mod session;
pub mod silences;
pub mod threshold_rules;
pub mod thresholds;
pub mod tokens;
pub mod url_checks;
pub mod users;

use chrono::{DateTime, Utc};
use poem::{EndpointExt, IntoEndpoint, Route, endpoint::make_sync};
use poem_openapi::{OpenApiService, Tags};

pub use self::{
    auth::Auth,
    error::{ApiResult, status},
    guard::RequestLimits,
};
use crate::services::Services;

/// Groups of operations in the spec and in Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Monitored hosts: registration, credentials, labels.
    Hosts,
    /// Thresholds that turn metrics into notifications: a host's own, fleet-wide rules by
    /// label, the defaults.
    Thresholds,
    /// Alerts firing now, acknowledgements, silences and maintenance windows.
    Alerts,
    /// Poll attempts, metric history and enrollment transcripts.
    History,
    /// Notification records: follow them with the `after_id` cursor.
    Notifications,
    /// URLs checked for status, response time and TLS certificate expiry.
    UrlChecks,
    /// Where notifications are sent: webhook, Slack, Telegram, email.
    Channels,
    /// Users, API tokens and browser sessions.
    Accounts,
    /// Health, readiness, and the nodes sharing the database.
    Service,
}

/// The API version in the spec.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

type Apis = (
    hosts::HostsApi,
    polling::PollingApi,
    thresholds::ThresholdsApi,
    threshold_rules::ThresholdRulesApi,
    alerts::AlertsApi,
    silences::SilencesApi,
    maintenance::MaintenanceApi,
    history::HistoryApi,
    notifications::NotificationsApi,
    url_checks::UrlChecksApi,
    channels::ChannelsApi,
    users::UsersApi,
    tokens::TokensApi,
    session::SessionApi,
    service::ServiceApi,
);

/// The OpenAPI service over every resource.
pub fn service(state: Services) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            hosts::HostsApi(state.clone()),
            polling::PollingApi(state.clone()),
            thresholds::ThresholdsApi(state.clone()),
            threshold_rules::ThresholdRulesApi(state.clone()),
            alerts::AlertsApi(state.clone()),
            silences::SilencesApi(state.clone()),
            maintenance::MaintenanceApi(state.clone()),
            history::HistoryApi(state.clone()),
            notifications::NotificationsApi(state.clone()),
            url_checks::UrlChecksApi(state.clone()),
            channels::ChannelsApi(state.clone()),
            users::UsersApi(state.clone()),
            tokens::TokensApi(state.clone()),
            session::SessionApi(state.clone()),
            service::ServiceApi(state),
        ),
        "hostwatch",
        API_VERSION,
    )
    .description(
        "Agentless SSH monitoring for Linux fleets. Every /api/v1 operation needs \
         `Authorization: Bearer <token>`; errors are JSON `{\"error\", \"message\"}`. \
         `/healthz` and `/readyz` need nothing.",
    )
}

/// The spec as pretty JSON, exactly as `/openapi.json` serves it and `openapi/openapi.json` holds.
pub fn spec_json() -> String {
    // The spec does not depend on the state's contents; a lazy connection is never used.
    service_for_spec().spec()
}

/// The spec as JSON, parsed once (the request guard reads schemas from it).
pub fn spec_value() -> &'static serde_json::Value {
    static SPEC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| serde_json::from_str(&spec_json()).expect("the spec is JSON"))
}

fn service_for_spec() -> OpenApiService<Apis, ()> {
    service(Services::unstarted())
}

/// The whole HTTP app with the default request limits.
pub fn app(state: Services) -> impl poem::Endpoint {
    app_with(state, RequestLimits::default(), false)
}

/// The whole HTTP app: `/api/v1`, `/docs`, `/openapi.json`, `/healthz`, behind the request
/// guard (writes authenticated before their body is read, bodies bounded in size and time),
/// with JSON errors and the security headers on every response.
pub fn app_with(state: Services, limits: RequestLimits, access_log: bool) -> impl poem::Endpoint {
    let api = service(state.clone());
    let docs = docs::endpoint(api.swagger_ui_html());
    let spec = api.spec();
    Route::new()
        .nest("/", api)
        .nest("/docs", Route::new().at("/", docs))
        .at(
            "/openapi.json",
            make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .around(move |ep, req| guard::guard(ep, req, limits))
        // Outside the guard, which reads the session cookie before the API does.
        .with(poem::middleware::CookieJarManager::new())
        .data(state)
        .around(error::json_errors)
        .around(guard::security_headers)
        .around(move |ep, req| guard::access_log(ep, req, access_log))
        .into_endpoint()
}

/// Reads a time parameter: RFC 3339 (`2026-12-01T10:00:00Z`), `now`, or relative to now
/// (`-90s`, `-30m`, `-6h`, `-7d`, `-2w`; `+1h` ahead).
pub fn time_param(
    field: &'static str,
    text: &str,
    now: DateTime<Utc>,
) -> crate::error::Result<DateTime<Utc>> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        crate::error::Error::invalid(
            field,
            format!(
                "{text:?} is not a time: RFC 3339 (2026-12-01T10:00:00Z), now, or relative                  such as -1h, -30m, -7d"
            ),
        )
    };
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => return Err(bad()),
    };
    let unit_at = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = rest.split_at(unit_at);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let delta = n
        .checked_mul(seconds)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .ok_or_else(bad)?;
    Ok(now + chrono::Duration::seconds(sign * delta))
}

/// A stored time (Unix ms) as an API timestamp.
pub fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A page of a list, the one shape every list answers in: `items`, how many there are in all,
/// and the window asked for (`limit` items from `offset`).
#[derive(Debug, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Page<T: poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON> {
    pub items: Vec<T>,
    /// Items in the whole list.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// Paging bounds shared by list operations.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// Clamps a requested page size; 0 or missing means the default.
pub fn limit(requested: Option<u32>) -> u64 {
    u64::from(
        requested
            .filter(|l| *l > 0)
            .unwrap_or(DEFAULT_LIMIT)
            .min(MAX_LIMIT),
    )
}
