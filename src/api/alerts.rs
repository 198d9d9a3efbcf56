//! `/alerts`: every alert that is not ok (pending or firing), for hosts and URL checks, with
//! its acknowledgement and whether a silence or maintenance window holds its notifications
//! back; one alert with the notifications it wrote; acknowledging and un-acknowledging.
//!
//! An alert keeps its id across episodes: it is the (subject, kind, metric, label) it watches.

use chrono::{DateTime, Utc};
use entity::types::{AlertKind, AlertPhase, Level};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    alerts::{evaluate::AlertKey, maintenance::Window, silence::Silence},
    api::{
        ApiResult, ApiTags, Auth, Page,
        notifications::Notification,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::Error,
    services::Services,
    store::{
        alerts::{self as store, AlertFilter, AlertView, Suppressor},
        maintenance, now_ms, silences,
    },
};

/// Who acknowledged an alert, and until when.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Acknowledgement {
    /// The user (and token) that acknowledged it.
    pub by: String,
    pub at: DateTime<Utc>,
    pub comment: String,
    /// It lapses then; without it, it lasts until the alert resolves or escalates.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One alert.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Alert {
    pub id: i64,
    /// The host it is about (for a URL check's alert, the host the check is attached to).
    pub host_id: Option<i64>,
    pub url_check_id: Option<i64>,
    /// The host's or URL check's name.
    pub subject_name: Option<String>,
    pub kind: AlertKind,
    pub metric: Option<String>,
    /// Mount, GPU index, certificate serial…
    pub label: Option<String>,
    /// The level firing (none while pending or ok).
    pub level: Option<Level>,
    pub state: AlertPhase,
    /// When it entered its state.
    pub since: DateTime<Utc>,
    /// The latest value seen.
    pub value: Option<f64>,
    /// The level crossed.
    pub threshold: Option<f64>,
    /// The notification that opened this episode.
    pub opened_notification_id: Option<i64>,
    pub acknowledged: bool,
    pub acknowledgement: Option<Acknowledgement>,
    /// The silence holding its notifications back now.
    pub silenced_by: Option<i64>,
    /// The maintenance window holding its notifications back now.
    pub maintenance_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

fn view(v: AlertView, silences: &[Silence], windows: &[Window], now: i64) -> Alert {
    let r = v.row;
    let held = r.level.and_then(|level| {
        let subject = store::subject_of(&r)?;
        let key = AlertKey::new(subject, r.kind, r.metric.clone(), r.label.clone());
        store::suppressor(silences, windows, &v.facts, &key, level, now)
    });
    let acknowledged = store::acked_at(&r, now);
    Alert {
        id: r.id,
        host_id: v.facts.host_id,
        url_check_id: r.url_check_id,
        subject_name: v.facts.name,
        kind: r.kind,
        metric: (!r.metric.is_empty()).then_some(r.metric),
        label: (!r.label.is_empty()).then_some(r.label),
        level: r.level,
        state: r.state,
        since: ts(r.since_at),
        value: r.last_value,
        threshold: r.threshold,
        opened_notification_id: r.opened_notification_id,
        acknowledged,
        acknowledgement: match (acknowledged, r.acked_by, r.acked_at) {
            (true, Some(by), Some(at)) => Some(Acknowledgement {
                by,
                at: ts(at),
                comment: r.ack_comment.unwrap_or_default(),
                expires_at: r.ack_expires_at.map(ts),
            }),
            _ => None,
        },
        silenced_by: Suppressor::silence_id(held),
        maintenance_id: Suppressor::maintenance_id(held),
        updated_at: ts(r.updated_at),
    }
}

/// How many alerts of the filtered list are in each state and level.
#[derive(Debug, Default, Object)]
pub struct AlertCounts {
    pub critical: u64,
    pub warning: u64,
    pub pending: u64,
    pub acknowledged: u64,
    /// Held back by a silence or maintenance window.
    pub silenced: u64,
}

/// A page of alerts, most severe first, then oldest.
#[derive(Debug, Object)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    /// Over the whole filtered list, not only this page.
    pub counts: AlertCounts,
}

#[derive(ApiResponse)]
pub enum ListAlertsResponse {
    #[oai(status = 200)]
    Ok(Json<AlertPage>),
}

#[derive(ApiResponse)]
pub enum AlertResponse {
    #[oai(status = 200)]
    Ok(Json<Alert>),
}

#[derive(ApiResponse)]
pub enum AlertHistoryResponse {
    #[oai(status = 200)]
    Ok(Json<Page<Notification>>),
}

/// An acknowledgement to record.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AckRequest {
    /// What is being done about it (1 to 1000 characters).
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub comment: String,
    /// When it lapses: RFC 3339 or relative (`+4h`). Without it, it lasts until the alert
    /// resolves or escalates.
    pub expires_at: Option<String>,
}

/// The alerts resource.
pub struct AlertsApi(pub Services);

impl AlertsApi {
    async fn context(&self) -> crate::error::Result<(Vec<Silence>, Vec<Window>, i64)> {
        let now = now_ms();
        Ok((
            silences::in_force(&self.0.db, now).await?,
            maintenance::all(&self.0.db).await?,
            now,
        ))
    }

    async fn one(&self, id: i64) -> crate::error::Result<Alert> {
        let v = store::get(&self.0.db, id).await?;
        let (s, w, now) = self.context().await?;
        Ok(view(v, &s, &w, now))
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Alerts")]
impl AlertsApi {
    /// Active alerts
    ///
    /// Every alert that is not ok — pending or firing — for hosts and URL checks, most severe
    /// first, with counts over the whole filtered list.
    #[oai(path = "/alerts", method = "get", operation_id = "list_alerts")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: Auth,
        host_id: Query<Option<i64>>,
        url_check_id: Query<Option<i64>>,
        /// Hosts carrying this label (`env=prod`), and the URL checks attached to them.
        host_label: Query<Option<String>>,
        kind: Query<Option<AlertKind>>,
        level: Query<Option<Level>>,
        /// `pending` or `firing`.
        state: Query<Option<AlertPhase>>,
        acknowledged: Query<Option<bool>>,
        /// `true`: only those a silence or maintenance window holds back; `false`: only the
        /// others.
        silenced: Query<Option<bool>>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListAlertsResponse, (BadRequest,)> {
        let filter = AlertFilter {
            host_id: host_id.0,
            url_check_id: url_check_id.0,
            host_label: host_label.0,
            kind: kind.0,
            level: level.0,
            state: state.0,
        };
        let rows = store::active(&self.0.db, &filter).await?;
        let (s, w, now) = self.context().await?;
        let all: Vec<Alert> = rows
            .into_iter()
            .map(|v| view(v, &s, &w, now))
            .filter(|a| acknowledged.0.is_none_or(|want| a.acknowledged == want))
            .filter(|a| {
                silenced.0.is_none_or(|want| {
                    (a.silenced_by.is_some() || a.maintenance_id.is_some()) == want
                })
            })
            .collect();
        let mut counts = AlertCounts::default();
        for a in &all {
            match (a.state, a.level) {
                (AlertPhase::Firing, Some(Level::Critical)) => counts.critical += 1,
                (AlertPhase::Firing, Some(_)) => counts.warning += 1,
                _ => counts.pending += 1,
            }
            counts.acknowledged += u64::from(a.acknowledged);
            counts.silenced += u64::from(a.silenced_by.is_some() || a.maintenance_id.is_some());
        }
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let total = all.len() as u64;
        Ok(ListAlertsResponse::Ok(Json(AlertPage {
            items: all
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .collect(),
            total,
            limit,
            offset,
            counts,
        })))
    }

    /// One alert
    ///
    /// Whatever its state: an alert that resolved is `ok` until it fires again.
    #[oai(path = "/alerts/:id", method = "get", operation_id = "get_alert")]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<AlertResponse, (BadRequest, NotFound)> {
        Ok(AlertResponse::Ok(Json(self.one(id.0).await?)))
    }

    /// An alert's notifications
    ///
    /// Every notification the alert wrote, oldest first: its history across episodes.
    #[oai(
        path = "/alerts/:id/notifications",
        method = "get",
        operation_id = "list_alert_notifications"
    )]
    async fn history(
        &self,
        _auth: Auth,
        id: Path<i64>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<AlertHistoryResponse, (BadRequest, NotFound)> {
        store::get(&self.0.db, id.0).await?;
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::history(&self.0.db, id.0, limit, offset).await?;
        Ok(AlertHistoryResponse::Ok(Json(Page {
            items: rows.into_iter().map(Notification::from).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Acknowledge an alert
    ///
    /// Says someone is on it: no reminders while it lasts. It lasts until the alert resolves,
    /// escalates (warning to critical) or `expires_at`. 409 when the alert is not firing.
    #[oai(path = "/alerts/:id/ack", method = "post", operation_id = "ack_alert")]
    async fn ack(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<AckRequest>,
    ) -> ApiResult<
        AlertResponse,
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
        let comment = body.0.comment.trim();
        if comment.is_empty() {
            return Err(
                Error::invalid("comment", "say what is being done (1 to 1000 characters)").into(),
            );
        }
        let now = Utc::now();
        let expires = match &body.0.expires_at {
            Some(t) => {
                let at = super::time_param("expires_at", t, now)?;
                if at <= now {
                    return Err(Error::invalid("expires_at", "must be in the future").into());
                }
                Some(at.timestamp_millis())
            }
            None => None,
        };
        store::ack(&self.0.db, id.0, &auth.principal().who(), comment, expires).await?;
        Ok(AlertResponse::Ok(Json(self.one(id.0).await?)))
    }

    /// Take an acknowledgement back
    ///
    /// Reminders resume. An alert without one is answered as it is.
    #[oai(
        path = "/alerts/:id/ack",
        method = "delete",
        operation_id = "unack_alert"
    )]
    async fn unack(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<AlertResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        store::unack(&self.0.db, id.0).await?;
        Ok(AlertResponse::Ok(Json(self.one(id.0).await?)))
    }
}
