//! Evaluating a host's thresholds after a poll, and its `host_unreachable` alert after failures:
//! the I/O around the pure state machine in `alerts::machine`.
//!
//! Everything here runs inside the caller's transaction, so a sample and the notifications it
//! causes are committed together or not at all. The caller publishes the returned notifications
//! to the hub after the commit.

use std::collections::{BTreeSet, HashMap};

use entity::{alert_state, host, notification, threshold};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::{
    alerts::{
        self, Direction,
        machine::{self, AlertState, Level, Phase, Rule, Transition},
    },
    error::Result,
    probe::MetricValue,
    store::notifications::{self, NewNotification},
};

const THRESHOLD: &str = "threshold";
const UNREACHABLE: &str = "host_unreachable";

fn key(host_id: i64, kind: &str, metric: &str, label: &str) -> String {
    format!("h{host_id}|{kind}|{metric}|{label}")
}

fn to_state(row: &alert_state::Model) -> AlertState {
    let phase = match (
        row.state.as_str(),
        row.level.as_deref().and_then(Level::parse),
    ) {
        ("firing", Some(level)) => Phase::Firing(level),
        ("pending", _) => Phase::Pending,
        _ => Phase::Ok,
    };
    AlertState {
        phase,
        pending_polls: row.pending_polls.max(0) as u32,
        since_ms: row.since_at,
        last_notified_ms: row.last_notified_at,
    }
}

fn phase_columns(phase: Phase) -> (&'static str, Option<String>) {
    match phase {
        Phase::Ok => ("ok", None),
        Phase::Pending => ("pending", None),
        Phase::Firing(l) => ("firing", Some(l.as_str().to_owned())),
    }
}

/// Writes a state row: updates the stored one, or inserts one unless the alert is simply at rest.
#[allow(clippy::too_many_arguments)]
async fn save(
    db: &impl ConnectionTrait,
    existing: Option<&alert_state::Model>,
    host_id: i64,
    kind: &str,
    metric: &str,
    label: &str,
    state: &AlertState,
    value: Option<f64>,
    now_ms: i64,
) -> Result<()> {
    let (phase, level) = phase_columns(state.phase);
    match existing {
        Some(row) => {
            if to_state(row) == *state && row.last_value == value.or(row.last_value) {
                return Ok(());
            }
            let mut model: alert_state::ActiveModel = row.clone().into();
            model.state = Set(phase.into());
            model.level = Set(level);
            model.pending_polls = Set(state.pending_polls as i32);
            model.since_at = Set(state.since_ms);
            model.last_notified_at = Set(state.last_notified_ms);
            if value.is_some() {
                model.last_value = Set(value);
            }
            model.updated_at = Set(now_ms);
            model.update(db).await?;
        }
        None if state.phase == Phase::Ok && state.pending_polls == 0 => {}
        None => {
            alert_state::ActiveModel {
                alert_key: Set(key(host_id, kind, metric, label)),
                host_id: Set(Some(host_id)),
                url_check_id: Set(None),
                kind: Set(kind.into()),
                metric: Set(metric.into()),
                label: Set(label.into()),
                state: Set(phase.into()),
                level: Set(level),
                pending_polls: Set(state.pending_polls as i32),
                last_value: Set(value),
                since_at: Set(state.since_ms),
                last_notified_at: Set(state.last_notified_ms),
                updated_at: Set(now_ms),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
    }
    Ok(())
}

fn rule_of(t: &threshold::Model, direction: Direction) -> Rule {
    Rule {
        warning: t.warning,
        critical: t.critical,
        direction,
        for_polls: t.for_polls.max(1) as u32,
        hysteresis: t.hysteresis,
        repeat_seconds: t.repeat_seconds.map(|r| r.max(0) as u32),
        enabled: t.enabled,
    }
}

fn fmt_value(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The notification text of a threshold transition.
fn describe(
    host: &host::Model,
    t: &threshold::Model,
    label: &str,
    value: f64,
    tr: Transition,
    rule: &Rule,
) -> (String, String, Option<f64>) {
    let what = if label.is_empty() {
        t.metric.clone()
    } else {
        format!("{} {label}", t.metric)
    };
    let level = tr.level();
    let threshold = match level {
        Level::Warning => rule.warning,
        Level::Critical => rule.critical,
    };
    let cmp = match rule.direction {
        Direction::Above => "≥",
        Direction::Below => "≤",
    };
    let th = threshold.map(fmt_value).unwrap_or_default();
    let v = fmt_value(value);
    let title = match tr {
        Transition::Fired(l) => format!("{}: {what} is {} ({v} {cmp} {th})", host.name, l.as_str()),
        Transition::Escalated { to, .. } => format!(
            "{}: {what} rose to {} ({v} {cmp} {th})",
            host.name,
            to.as_str()
        ),
        Transition::DeEscalated { to, .. } => {
            format!("{}: {what} is down to {} ({v})", host.name, to.as_str())
        }
        Transition::Reminder(l) => format!(
            "{}: {what} is still {} ({v} {cmp} {th})",
            host.name,
            l.as_str()
        ),
        Transition::Resolved { from } => format!(
            "{}: {what} is back to normal ({v}, was {})",
            host.name,
            from.as_str()
        ),
    };
    let message = format!(
        "{what} on {} ({}:{}) is {v}; {} level {th} (hysteresis {}, {} consecutive polls to fire). Event: {}.",
        host.name,
        host.address,
        host.port,
        level.as_str(),
        fmt_value(rule.hysteresis),
        rule.for_polls,
        tr.event()
    );
    (title, message, threshold)
}

/// Steps every threshold alert of a host with the values of one poll. Labels with no value this
/// time (a mount gone, a GPU not reporting) keep their state.
pub async fn evaluate_thresholds(
    db: &impl ConnectionTrait,
    host: &host::Model,
    values: &[MetricValue],
    now_ms: i64,
) -> Result<Vec<notification::Model>> {
    let thresholds = threshold::Entity::find()
        .filter(threshold::Column::HostId.eq(host.id))
        .all(db)
        .await?;
    let states: HashMap<(String, String), alert_state::Model> = alert_state::Entity::find()
        .filter(alert_state::Column::HostId.eq(host.id))
        .filter(alert_state::Column::Kind.eq(THRESHOLD))
        .all(db)
        .await?
        .into_iter()
        .map(|s| ((s.metric.clone(), s.label.clone()), s))
        .collect();
    let mut written = Vec::new();
    for t in &thresholds {
        let Some(spec) = alerts::host_metric(&t.metric) else {
            continue;
        };
        let rule = rule_of(t, spec.direction);
        let mut by_label: HashMap<&str, f64> = HashMap::new();
        for v in values.iter().filter(|v| v.name == t.metric) {
            by_label.insert(v.label.as_str(), v.value);
        }
        let labels: BTreeSet<&str> = by_label
            .keys()
            .copied()
            .chain(
                states
                    .keys()
                    .filter(|(m, _)| *m == t.metric)
                    .map(|(_, l)| l.as_str()),
            )
            .collect();
        for label in labels {
            let existing = states.get(&(t.metric.clone(), label.to_owned()));
            let before = existing
                .map(to_state)
                .unwrap_or_else(|| AlertState::new(now_ms));
            let value = by_label.get(label).copied();
            let (after, transition) = machine::step(before, &rule, value, now_ms);
            save(
                db, existing, host.id, THRESHOLD, &t.metric, label, &after, value, now_ms,
            )
            .await?;
            if let (Some(tr), Some(v)) = (transition, value) {
                let (title, message, threshold) = describe(host, t, label, v, tr, &rule);
                written.push(
                    notifications::insert(
                        db,
                        NewNotification {
                            host_id: Some(host.id),
                            kind: THRESHOLD.into(),
                            metric: Some(t.metric.clone()),
                            label: (!label.is_empty()).then(|| label.to_owned()),
                            level: tr.level().as_str().into(),
                            state: if tr.firing() { "firing" } else { "resolved" }.into(),
                            event: Some(tr.event().into()),
                            value: Some(v),
                            threshold,
                            title,
                            message,
                            ..Default::default()
                        },
                    )
                    .await?,
                );
            }
        }
    }
    Ok(written)
}

async fn unreachable_row(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<alert_state::Model>> {
    Ok(alert_state::Entity::find()
        .filter(alert_state::Column::AlertKey.eq(key(host_id, UNREACHABLE, "", "")))
        .one(db)
        .await?)
}

/// Counts a failed poll of an unreachable host; fires `host_unreachable` (critical) at the
/// `after`-th failure in a row.
pub async fn record_unreachable(
    db: &impl ConnectionTrait,
    host: &host::Model,
    error: &str,
    after: u32,
    now_ms: i64,
) -> Result<Option<notification::Model>> {
    let existing = unreachable_row(db, host.id).await?;
    let before = existing
        .as_ref()
        .map(to_state)
        .unwrap_or_else(|| AlertState::new(now_ms));
    let failures = before.pending_polls + 1;
    let rule = Rule {
        warning: None,
        critical: Some(f64::from(after.max(1))),
        direction: Direction::Above,
        for_polls: 1,
        hysteresis: 0.0,
        repeat_seconds: None,
        enabled: true,
    };
    let (mut after_state, transition) =
        machine::step(before, &rule, Some(f64::from(failures)), now_ms);
    // The count of failures in a row is kept while firing too.
    after_state.pending_polls = failures;
    save(
        db,
        existing.as_ref(),
        host.id,
        UNREACHABLE,
        "",
        "",
        &after_state,
        Some(f64::from(failures)),
        now_ms,
    )
    .await?;
    if !matches!(transition, Some(Transition::Fired(_))) {
        return Ok(None);
    }
    Ok(Some(
        notifications::insert(
            db,
            NewNotification {
                host_id: Some(host.id),
                kind: UNREACHABLE.into(),
                level: "critical".into(),
                state: "firing".into(),
                event: Some("fired".into()),
                value: Some(f64::from(failures)),
                threshold: Some(f64::from(after)),
                title: format!("{} is unreachable", host.name),
                message: format!(
                    "{} ({}:{}) failed {failures} polls in a row; last error: {error}",
                    host.name, host.address, host.port
                ),
                ..Default::default()
            },
        )
        .await?,
    ))
}

/// A successful poll: clears the failure count and resolves `host_unreachable` if it fired.
pub async fn record_reachable(
    db: &impl ConnectionTrait,
    host: &host::Model,
    now_ms: i64,
) -> Result<Option<notification::Model>> {
    let Some(row) = unreachable_row(db, host.id).await? else {
        return Ok(None);
    };
    let before = to_state(&row);
    let was_firing = matches!(before.phase, Phase::Firing(_));
    let mut after = AlertState {
        phase: Phase::Ok,
        pending_polls: 0,
        ..before
    };
    if was_firing {
        after.since_ms = now_ms;
        after.last_notified_ms = Some(now_ms);
    }
    save(
        db,
        Some(&row),
        host.id,
        UNREACHABLE,
        "",
        "",
        &after,
        None,
        now_ms,
    )
    .await?;
    if !was_firing {
        return Ok(None);
    }
    Ok(Some(
        notifications::insert(
            db,
            NewNotification {
                host_id: Some(host.id),
                kind: UNREACHABLE.into(),
                level: "critical".into(),
                state: "resolved".into(),
                event: Some("resolved".into()),
                title: format!("{} is reachable again", host.name),
                message: format!(
                    "{} ({}:{}) answered a poll after {} failed ones.",
                    host.name, host.address, host.port, before.pending_polls
                ),
                ..Default::default()
            },
        )
        .await?,
    ))
}
