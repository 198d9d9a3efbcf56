//! Alert states: read for the evaluator, and the evaluator's [`Changes`] written back with the
//! notifications they cause, inside the caller's transaction.
//!
//! A row exists only once an alert left "ok"; its `alert_key` names the alert uniquely.

use std::collections::HashMap;

use entity::{
    alert_state, notification,
    types::{AlertPhase, Level},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr,
};

use crate::{
    alerts::{
        evaluate::{AlertKey, Changes, StoredAlert, Subject},
        machine::{AlertState, Phase},
    },
    error::Result,
    store::notifications,
};

/// The unique text key of an alert, as the `alert_key` column holds it.
fn key_text(key: &AlertKey) -> String {
    let (prefix, id) = match key.subject {
        Subject::Host(id) => ('h', id),
        Subject::UrlCheck(id) => ('u', id),
    };
    format!("{prefix}{id}|{}|{}|{}", key.kind, key.metric, key.label)
}

fn stored(row: alert_state::Model) -> Option<StoredAlert> {
    let subject = match (row.host_id, row.url_check_id) {
        (Some(id), _) => Subject::Host(id),
        (None, Some(id)) => Subject::UrlCheck(id),
        (None, None) => return None,
    };
    let phase = match (row.state, row.level) {
        (AlertPhase::Firing, Some(level)) if level > Level::Info => Phase::Firing(level),
        (AlertPhase::Pending, _) => Phase::Pending,
        _ => Phase::Ok,
    };
    Some(StoredAlert {
        id: row.id,
        key: AlertKey {
            subject,
            kind: row.kind,
            metric: row.metric,
            label: row.label,
        },
        state: AlertState {
            phase,
            pending_polls: row.pending_polls.max(0) as u32,
            since_ms: row.since_at,
            last_notified_ms: row.last_notified_at,
        },
        last_value: row.last_value,
    })
}

/// Every stored alert of the given hosts, by host: one query for a batch of polls.
pub async fn of_hosts(
    db: &impl ConnectionTrait,
    host_ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, Vec<StoredAlert>>> {
    let mut by_host: HashMap<i64, Vec<StoredAlert>> = HashMap::new();
    for row in alert_state::Entity::find()
        .filter(alert_state::Column::HostId.is_in(host_ids))
        .all(db)
        .await?
    {
        if let Some(alert) = stored(row)
            && let Subject::Host(id) = alert.key.subject
        {
            by_host.entry(id).or_default().push(alert);
        }
    }
    Ok(by_host)
}

/// Every stored alert of one URL check.
pub async fn of_url_check(db: &impl ConnectionTrait, id: i64) -> Result<Vec<StoredAlert>> {
    Ok(alert_state::Entity::find()
        .filter(alert_state::Column::UrlCheckId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .filter_map(stored)
        .collect())
}

/// One alert, when it has a row.
pub async fn find(db: &impl ConnectionTrait, key: &AlertKey) -> Result<Option<StoredAlert>> {
    Ok(alert_state::Entity::find()
        .filter(alert_state::Column::AlertKey.eq(key_text(key)))
        .one(db)
        .await?
        .and_then(stored))
}

fn phase_columns(phase: Phase) -> (AlertPhase, Option<Level>) {
    match phase {
        Phase::Ok => (AlertPhase::Ok, None),
        Phase::Pending => (AlertPhase::Pending, None),
        Phase::Firing(level) => (AlertPhase::Firing, Some(level)),
    }
}

/// Writes the evaluator's changes: the states, then the notifications (with their deliveries).
/// Returns the notifications written, for the caller to publish once committed.
pub async fn apply(
    db: &impl ConnectionTrait,
    changes: Changes,
    now_ms: i64,
) -> Result<Vec<notification::Model>> {
    use alert_state::Column as C;
    for change in &changes.states {
        let (state, level) = phase_columns(change.state.phase);
        match change.id {
            Some(id) => {
                alert_state::Entity::update_many()
                    .col_expr(C::State, Expr::value(state))
                    .col_expr(C::Level, Expr::value(level))
                    .col_expr(
                        C::PendingPolls,
                        Expr::value(change.state.pending_polls as i32),
                    )
                    .col_expr(C::SinceAt, Expr::value(change.state.since_ms))
                    .col_expr(
                        C::LastNotifiedAt,
                        Expr::value(change.state.last_notified_ms),
                    )
                    .col_expr(C::LastValue, Expr::value(change.last_value))
                    .col_expr(C::UpdatedAt, Expr::value(now_ms))
                    .filter(C::Id.eq(id))
                    .exec(db)
                    .await?;
            }
            None => {
                let key = &change.key;
                alert_state::ActiveModel {
                    alert_key: Set(key_text(key)),
                    host_id: Set(key.subject.host_id()),
                    url_check_id: Set(key.subject.url_check_id()),
                    kind: Set(key.kind),
                    metric: Set(key.metric.clone()),
                    label: Set(key.label.clone()),
                    state: Set(state),
                    level: Set(level),
                    pending_polls: Set(change.state.pending_polls as i32),
                    last_value: Set(change.last_value),
                    since_at: Set(change.state.since_ms),
                    last_notified_at: Set(change.state.last_notified_ms),
                    updated_at: Set(now_ms),
                    ..Default::default()
                }
                .insert(db)
                .await?;
            }
        }
    }
    let mut written = Vec::with_capacity(changes.notices.len());
    for n in changes.notices {
        written.push(notifications::insert(db, n).await?);
    }
    Ok(written)
}
