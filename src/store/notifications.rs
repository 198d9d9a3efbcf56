//! Notifications: listing with an id cursor, marking read, and the hub that wakes long-polls.
//!
//! Ids only grow, so `after_id` is a stable cursor: a client that keeps the `next_after_id` of
//! its last page sees every notification exactly once, oldest first.

use entity::{
    notification,
    types::{AlertKind, Level, NotificationState},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tokio::sync::watch;

use crate::{
    alerts::evaluate::Notice,
    error::{Error, Result},
    store::now_ms,
};

/// Tells long-polling readers that notifications were written. It carries the newest id, so a
/// reader that wakes late still sees that something changed (no lost wake-ups).
#[derive(Debug, Clone)]
pub struct NotificationHub {
    latest: watch::Sender<i64>,
}

impl Default for NotificationHub {
    fn default() -> Self {
        Self {
            latest: watch::channel(0).0,
        }
    }
}

impl NotificationHub {
    /// Call after a transaction that wrote notifications has committed.
    pub fn published(&self, id: i64) {
        self.latest
            .send_modify(|latest| *latest = (*latest).max(id));
    }

    /// Announces a committed notification: logs it (the service's log names every alert that
    /// fires, changes or resolves) and wakes the long-polls.
    pub fn publish(&self, n: &notification::Model) {
        use crate::logs::Untrusted;
        let event = n.event.map_or("-", |e| e.as_str());
        let title = Untrusted(&n.title);
        let loud = n.level == Level::Critical && n.state == NotificationState::Firing;
        if loud {
            tracing::warn!(
                notification_id = n.id,
                host_id = n.host_id,
                url_check_id = n.url_check_id,
                kind = %n.kind,
                level = %n.level,
                event,
                alert_id = n.alert_id,
                silence_id = n.silence_id,
                maintenance_id = n.maintenance_id,
                "alert: {title}"
            );
        } else {
            tracing::info!(
                notification_id = n.id,
                host_id = n.host_id,
                url_check_id = n.url_check_id,
                kind = %n.kind,
                level = %n.level,
                event,
                alert_id = n.alert_id,
                silence_id = n.silence_id,
                maintenance_id = n.maintenance_id,
                "alert: {title}"
            );
        }
        self.published(n.id);
    }

    /// A receiver that wakes on each [`NotificationHub::published`].
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

/// How a notification is written: the alert it is about, what held it back, whether it goes
/// to channels now, and whether its subject is gone (then it names none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    pub alert_id: Option<i64>,
    pub silence_id: Option<i64>,
    pub maintenance_id: Option<i64>,
    pub deliver: bool,
    pub subject_gone: bool,
}

/// Writes a notification and, when it is to be delivered, its delivery rows (inside the
/// caller's transaction, when there is one, so neither exists without the other). The caller
/// tells the hub after committing. Alerts' notifications come through `store::alerts::notify`.
pub async fn insert_marked(
    db: &impl ConnectionTrait,
    n: Notice,
    marks: Marks,
) -> Result<notification::Model> {
    let state = n.state();
    let key = n.key;
    let (host_id, url_check_id) = if marks.subject_gone {
        (None, None)
    } else {
        (key.subject.host_id(), key.subject.url_check_id())
    };
    let row = notification::ActiveModel {
        host_id: Set(host_id),
        url_check_id: Set(url_check_id),
        kind: Set(key.kind),
        metric: Set((!key.metric.is_empty()).then_some(key.metric)),
        label: Set((!key.label.is_empty()).then_some(key.label)),
        level: Set(n.level),
        state: Set(state),
        event: Set(Some(n.event)),
        value: Set(n.value),
        threshold: Set(n.threshold),
        title: Set(n.title),
        message: Set(n.message),
        created_at: Set(now_ms()),
        read_at: Set(None),
        alert_id: Set(marks.alert_id),
        silence_id: Set(marks.silence_id),
        maintenance_id: Set(marks.maintenance_id),
        ..Default::default()
    }
    .insert(db)
    .await?;
    if marks.deliver {
        super::deliveries::enqueue(db, &row).await?;
    }
    Ok(row)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub after_id: i64,
    pub host_id: Option<i64>,
    pub level: Option<Level>,
    pub unread: Option<bool>,
    pub state: Option<NotificationState>,
    pub kind: Option<AlertKind>,
    pub alert_id: Option<i64>,
    pub limit: u64,
}

/// Notifications after the cursor that match, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &NotificationFilter,
) -> Result<Vec<notification::Model>> {
    let mut query =
        notification::Entity::find().filter(notification::Column::Id.gt(filter.after_id));
    if let Some(host_id) = filter.host_id {
        query = query.filter(notification::Column::HostId.eq(host_id));
    }
    if let Some(level) = &filter.level {
        query = query.filter(notification::Column::Level.eq(*level));
    }
    if let Some(state) = filter.state {
        query = query.filter(notification::Column::State.eq(state));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(notification::Column::Kind.eq(kind));
    }
    if let Some(alert_id) = filter.alert_id {
        query = query.filter(notification::Column::AlertId.eq(alert_id));
    }
    match filter.unread {
        Some(true) => query = query.filter(notification::Column::ReadAt.is_null()),
        Some(false) => query = query.filter(notification::Column::ReadAt.is_not_null()),
        None => {}
    }
    Ok(query
        .order_by_asc(notification::Column::Id)
        .limit(filter.limit)
        .all(db)
        .await?)
}

/// One notification, when it exists.
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<notification::Model>> {
    Ok(notification::Entity::find_by_id(id).one(db).await?)
}

/// Marks a notification read (once: a second call keeps the first time).
pub async fn mark_read(db: &impl ConnectionTrait, id: i64) -> Result<notification::Model> {
    let row = notification::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no notification with id {id}")))?;
    if row.read_at.is_some() {
        return Ok(row);
    }
    let mut model: notification::ActiveModel = row.into();
    model.read_at = Set(Some(now_ms()));
    Ok(model.update(db).await?)
}
