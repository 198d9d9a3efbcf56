//! The REST API (v1): one file per resource, generated into an OpenAPI document with
//! poem-openapi, served with Swagger UI.
//!
//! Operations reach the database through `store` only; SSH work (enroll, poll) will go through
//! the poller and enrollment services, never from here directly.

pub mod auth;
pub mod channels;
pub mod error;
pub mod history;
pub mod hosts;
pub mod notifications;
pub mod polling;
pub mod thresholds;
pub mod url_checks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{EndpointExt, IntoEndpoint, Route, endpoint::make_sync, middleware::Tracing};
use poem_openapi::{OpenApiService, Tags};
use sea_orm::DatabaseConnection;

use crate::{
    crypto::SecretBox,
    delivery::worker::{DeliveryService, DeliverySettings},
    poller::{Poller, PollerSettings},
    scheduler::{JobKey, PollScheduler},
    store::notifications::NotificationHub,
    urlcheck::{runner::SystemResolver, service::UrlCheckService},
};

/// What every operation needs: the database, the secret box, the notification hub, and the
/// poller (the only way the API reaches SSH).
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub secrets: Arc<SecretBox>,
    pub notifications: NotificationHub,
    pub poller: Arc<Poller>,
    /// Runs URL checks.
    pub url_checks: Arc<UrlCheckService>,
    /// Sends the notification outbox.
    pub delivery: Arc<DeliveryService>,
    /// Present when hosts are polled on their schedules (`serve`); absent in API-only uses.
    pub scheduler: Option<Arc<PollScheduler>>,
}

impl AppState {
    /// The state over a database, with its poller.
    pub fn new(db: DatabaseConnection, secrets: SecretBox, settings: PollerSettings) -> Self {
        Self::with_delivery(db, secrets, settings, DeliverySettings::default())
    }

    /// The state with chosen delivery settings.
    pub fn with_delivery(
        db: DatabaseConnection,
        secrets: SecretBox,
        settings: PollerSettings,
        delivery: DeliverySettings,
    ) -> Self {
        let secrets = Arc::new(secrets);
        let notifications = NotificationHub::default();
        let poller = Arc::new(Poller {
            db: db.clone(),
            secrets: secrets.clone(),
            pool: Default::default(),
            hub: notifications.clone(),
            settings,
            hot: Default::default(),
            writer: Default::default(),
        });
        let url_checks = Arc::new(UrlCheckService::new(
            db.clone(),
            notifications.clone(),
            Arc::new(SystemResolver),
        ));
        // Building the HTTP client only fails on a broken TLS set-up, which is fixed at build time.
        let delivery = Arc::new(
            DeliveryService::new(db.clone(), secrets.clone(), notifications.clone(), delivery)
                .expect("the delivery HTTP client builds"),
        );
        Self {
            db,
            secrets,
            notifications,
            poller,
            url_checks,
            delivery,
            scheduler: None,
        }
    }

    /// Keeps a host's scheduled job in line with its row after a change.
    pub async fn host_changed(&self, host_id: i64) {
        self.job_changed(JobKey::Host(host_id)).await;
    }

    /// Keeps a scheduled job (host or URL check) in line with its row after a change.
    pub async fn job_changed(&self, key: JobKey) {
        if let JobKey::Host(id) = key {
            self.poller.invalidate(id);
        }
        if let Some(s) = &self.scheduler
            && let Err(e) = s.sync(key).await
        {
            tracing::error!(?key, error = %e, "could not update the schedule");
        }
    }
}

/// Groups of operations in the spec and in Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Monitored hosts: registration, credentials, labels.
    Hosts,
    /// Per-host thresholds that turn metrics into notifications.
    Thresholds,
    /// Poll attempts, metric history and enrollment transcripts.
    History,
    /// Notification records: follow them with the `after_id` cursor.
    Notifications,
    /// URLs checked for status, response time and TLS certificate expiry.
    UrlChecks,
    /// Where notifications are sent: webhook, Slack, Telegram, email.
    Channels,
}

/// The API version in the spec.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

type Apis = (
    hosts::HostsApi,
    polling::PollingApi,
    thresholds::ThresholdsApi,
    history::HistoryApi,
    notifications::NotificationsApi,
    url_checks::UrlChecksApi,
    channels::ChannelsApi,
);

/// The OpenAPI service over every resource.
pub fn service(state: AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            hosts::HostsApi(state.clone()),
            polling::PollingApi(state.clone()),
            thresholds::ThresholdsApi(state.clone()),
            history::HistoryApi(state.clone()),
            notifications::NotificationsApi(state.clone()),
            url_checks::UrlChecksApi(state.clone()),
            channels::ChannelsApi(state),
        ),
        "hostwatch",
        API_VERSION,
    )
    .description(
        "Agentless SSH monitoring for Linux fleets. Every /api/v1 operation needs \
         `Authorization: Bearer <token>`; errors are JSON `{\"error\", \"message\"}`.",
    )
    .url_prefix("/api/v1")
}

/// The spec as pretty JSON, exactly as `/openapi.json` serves it and `openapi/openapi.json` holds.
pub fn spec_json() -> String {
    // The spec does not depend on the state's contents; a lazy connection is never used.
    service_for_spec().spec()
}

fn service_for_spec() -> OpenApiService<Apis, ()> {
    service(AppState::new(
        DatabaseConnection::default(),
        SecretBox::new(&[0; 32]),
        PollerSettings::default(),
    ))
}

/// The whole HTTP app: `/api/v1`, `/docs`, `/openapi.json`, `/healthz`.
pub fn app(state: AppState) -> impl poem::Endpoint {
    let api = service(state.clone());
    let docs = api.swagger_ui();
    let spec = api.spec();
    Route::new()
        .nest("/api/v1", api)
        .nest("/docs", docs)
        .at(
            "/openapi.json",
            make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .at(
            "/healthz",
            make_sync(|_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(r#"{"status":"ok"}"#)
            }),
        )
        .data(state)
        .around(error::json_errors)
        .with(Tracing)
        .into_endpoint()
}

/// A stored time (Unix ms) as an API timestamp.
pub fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
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
