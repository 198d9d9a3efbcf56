//! The delivery outbox: one row per (notification, matching channel), created in the
//! notification's own transaction, then sent, retried or given up by the delivery worker.

use std::collections::HashMap;

use entity::{
    channel, delivery, host_label, notification,
    types::{AlertKind, DeliveryStatus},
    url_check,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::{error::Result, store::now_ms};

/// Creates the delivery rows of a new notification: one per enabled channel whose level, host
/// and label filters it passes. A URL check attached to a host counts as that host's.
pub async fn enqueue(db: &impl ConnectionTrait, n: &notification::Model) -> Result<usize> {
    enqueue_routed(db, n, None).await
}

/// [`enqueue`] for a notification whose subject is gone: routed by the host (id and labels) it
/// was about, read before the deletion.
pub async fn enqueue_routed(
    db: &impl ConnectionTrait,
    n: &notification::Model,
    gone_host: Option<(i64, &[String])>,
) -> Result<usize> {
    let channels = channel::Entity::find()
        .filter(channel::Column::Enabled.eq(true))
        .all(db)
        .await?;
    if channels.is_empty() {
        return Ok(0);
    }
    if let Some((host_id, labels)) = gone_host {
        return insert_rows(db, n, &channels, Some(host_id), labels).await;
    }
    let host_id = match (n.host_id, n.url_check_id) {
        (Some(h), _) => Some(h),
        (None, Some(u)) => url_check::Entity::find_by_id(u)
            .one(db)
            .await?
            .and_then(|c| c.host_id),
        (None, None) => None,
    };
    let labels: Vec<String> = match host_id {
        Some(h) if channels.iter().any(|c| c.label.is_some()) => host_label::Entity::find()
            .filter(host_label::Column::HostId.eq(h))
            .all(db)
            .await?
            .into_iter()
            .map(|l| l.label)
            .collect(),
        _ => Vec::new(),
    };
    insert_rows(db, n, &channels, host_id, &labels).await
}

async fn insert_rows(
    db: &impl ConnectionTrait,
    n: &notification::Model,
    channels: &[channel::Model],
    host_id: Option<i64>,
    labels: &[String],
) -> Result<usize> {
    let now = now_ms();
    let rows: Vec<delivery::ActiveModel> = channels
        .iter()
        .filter(|c| n.level >= c.min_level)
        .filter(|c| c.host_id.is_none() || c.host_id == host_id)
        .filter(|c| c.label.as_ref().is_none_or(|l| labels.contains(l)))
        .map(|c| delivery::ActiveModel {
            channel_id: Set(c.id),
            notification_id: Set(n.id),
            status: Set(DeliveryStatus::Pending),
            attempts: Set(0),
            next_attempt_at: Set(now),
            created_at: Set(now),
            ..Default::default()
        })
        .collect();
    let count = rows.len();
    delivery::Entity::insert_many(rows).exec(db).await?;
    Ok(count)
}

/// Which alert a notification belongs to, as deliveries are ordered by: its subject, kind,
/// metric and label.
pub type AlertOf = (
    Option<i64>,
    Option<i64>,
    AlertKind,
    Option<String>,
    Option<String>,
);

/// Pending deliveries, oldest first, each with the alert of its notification: due ones and
/// those waiting for a retry alike (a later delivery of the same alert waits behind one
/// waiting for its retry).
pub async fn pending(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<(delivery::Model, AlertOf)>> {
    let rows = delivery::Entity::find()
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending))
        .order_by_asc(delivery::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    use notification::Column as N;
    let alerts: HashMap<i64, AlertOf> = notification::Entity::find()
        .select_only()
        .columns([
            N::Id,
            N::HostId,
            N::UrlCheckId,
            N::Kind,
            N::Metric,
            N::Label,
        ])
        .filter(N::Id.is_in(rows.iter().map(|d| d.notification_id)))
        .into_tuple::<(
            i64,
            Option<i64>,
            Option<i64>,
            AlertKind,
            Option<String>,
            Option<String>,
        )>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, host, check, kind, metric, label)| (id, (host, check, kind, metric, label)))
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|d| {
            let alert = alerts.get(&d.notification_id)?.clone();
            Some((d, alert))
        })
        .collect())
}

/// Records a successful send.
pub async fn mark_sent(db: &impl ConnectionTrait, d: &delivery::Model) -> Result<()> {
    let mut m: delivery::ActiveModel = d.clone().into();
    m.status = Set(DeliveryStatus::Sent);
    m.attempts = Set(d.attempts + 1);
    m.sent_at = Set(Some(now_ms()));
    m.last_error = Set(None);
    m.update(db).await?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or given up (`None`).
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    d: &delivery::Model,
    error: &str,
    retry_at: Option<i64>,
) -> Result<()> {
    let mut m: delivery::ActiveModel = d.clone().into();
    m.attempts = Set(d.attempts + 1);
    m.last_error = Set(Some(error.to_owned()));
    match retry_at {
        Some(at) => m.next_attempt_at = Set(at),
        None => m.status = Set(DeliveryStatus::Failed),
    }
    m.update(db).await?;
    Ok(())
}
