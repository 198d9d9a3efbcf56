//! `/notifications`: follow notification records with an id cursor, optionally long-polling.
//!
//! A client keeps `next_after_id` from each answer and passes it as `after_id` next time; with
//! `wait_seconds` the request blocks until something new matches or the wait ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{
    notification,
    types::{AlertKind, Event, Level, NotificationState},
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    api::{
        ApiResult, ApiTags, Auth,
        status::{BadRequest, Forbidden, Invalid, NotFound},
        ts,
    },
    error::Error,
    services::Services,
    store::notifications::{self as store, NotificationFilter},
};

/// A notification record.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Notification {
    pub id: i64,
    pub host_id: Option<i64>,
    pub url_check_id: Option<i64>,
    pub kind: AlertKind,
    pub metric: Option<String>,
    /// Mount point, GPU index, interface… for per-label metrics.
    pub label: Option<String>,
    pub level: Level,
    pub state: NotificationState,
    /// The transition recorded.
    pub event: Option<Event>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub title: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    /// The alert it is about (`GET /alerts/{id}`).
    pub alert_id: Option<i64>,
    /// The silence that kept it from channels.
    pub silence_id: Option<i64>,
    /// The maintenance window that kept it from channels.
    pub maintenance_id: Option<i64>,
}

impl From<notification::Model> for Notification {
    fn from(n: notification::Model) -> Self {
        Self {
            id: n.id,
            host_id: n.host_id,
            url_check_id: n.url_check_id,
            kind: n.kind,
            metric: n.metric,
            label: n.label,
            level: n.level,
            state: n.state,
            event: n.event,
            value: n.value,
            threshold: n.threshold,
            title: n.title,
            message: n.message,
            created_at: ts(n.created_at),
            read_at: n.read_at.map(ts),
            alert_id: n.alert_id,
            silence_id: n.silence_id,
            maintenance_id: n.maintenance_id,
        }
    }
}

/// A page of notifications, oldest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Pass as `after_id` to get what comes next (the last item's id, or the `after_id` sent).
    pub next_after_id: i64,
}

#[derive(ApiResponse)]
pub enum ListNotificationsResponse {
    #[oai(status = 200)]
    Ok(Json<NotificationPage>),
}

#[derive(ApiResponse)]
pub enum MarkReadResponse {
    #[oai(status = 200)]
    Ok(Json<Notification>),
}

/// Longest allowed long-poll.
pub const MAX_WAIT_SECONDS: u32 = 60;

/// The notifications resource.
pub struct NotificationsApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Notifications")]
impl NotificationsApi {
    /// List notifications
    ///
    /// Items with an id greater than `after_id`, oldest first. With `wait_seconds` (up to 60)
    /// and nothing to return yet, waits until a matching notification is written or the time
    /// is up, then answers (possibly with no items).
    #[oai(
        path = "/notifications",
        method = "get",
        operation_id = "list_notifications"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: Auth,
        /// Cursor: only ids greater than this.
        after_id: Query<Option<i64>>,
        host_id: Query<Option<i64>>,
        level: Query<Option<Level>>,
        /// `true`: only unread; `false`: only read.
        unread: Query<Option<bool>>,
        /// `firing` or `resolved`: what the notification said.
        state: Query<Option<NotificationState>>,
        kind: Query<Option<AlertKind>>,
        /// Only the notifications of this alert.
        alert_id: Query<Option<i64>>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// Long-poll for up to this many seconds (0 to 60).
        #[oai(validator(maximum(value = "60")))]
        wait_seconds: Query<Option<u32>>,
    ) -> ApiResult<ListNotificationsResponse, (BadRequest, Invalid)> {
        let wait = wait_seconds.0.unwrap_or(0);
        if wait > MAX_WAIT_SECONDS {
            return Err(
                Error::invalid("wait_seconds", format!("must be 0 to {MAX_WAIT_SECONDS}")).into(),
            );
        }
        let after_id = after_id.0.unwrap_or(0);
        let filter = NotificationFilter {
            after_id,
            host_id: host_id.0,
            level: level.0,
            unread: unread.0,
            state: state.0,
            kind: kind.0,
            alert_id: alert_id.0,
            limit: super::limit(limit.0),
        };
        // Subscribe before the first read so a write between the read and the wait is not missed.
        let mut changes = self.0.hub.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
        let items = loop {
            changes.borrow_and_update();
            let items = store::list(&self.0.db, &filter).await?;
            if !items.is_empty() || wait == 0 {
                break items;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => break items,
            }
        };
        let next_after_id = items.last().map_or(after_id, |n| n.id);
        Ok(ListNotificationsResponse::Ok(Json(NotificationPage {
            items: items.into_iter().map(Notification::from).collect(),
            next_after_id,
        })))
    }

    /// Mark a notification read
    #[oai(
        path = "/notifications/:id/read",
        method = "post",
        operation_id = "mark_notification_read"
    )]
    async fn mark_read(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<MarkReadResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        Ok(MarkReadResponse::Ok(Json(
            store::mark_read(&self.0.db, id.0).await?.into(),
        )))
    }
}
