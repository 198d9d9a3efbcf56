//! The evaluator: the I/O around the pure state machine in `alerts::machine`. It steps a host's
//! thresholds after a poll and its `host_unreachable` alert after failures, and a URL check's
//! status, latency and certificate alerts after each run.
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

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Host(i64),
    UrlCheck(i64),
}

impl Subject {
    fn host_id(self) -> Option<i64> {
        match self {
            Self::Host(id) => Some(id),
            Self::UrlCheck(_) => None,
        }
    }

    fn url_check_id(self) -> Option<i64> {
        match self {
            Self::UrlCheck(id) => Some(id),
            Self::Host(_) => None,
        }
    }
}

fn key(subject: Subject, kind: &str, metric: &str, label: &str) -> String {
    match subject {
        Subject::Host(id) => format!("h{id}|{kind}|{metric}|{label}"),
        Subject::UrlCheck(id) => format!("u{id}|{kind}|{metric}|{label}"),
    }
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
    subject: Subject,
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
                alert_key: Set(key(subject, kind, metric, label)),
                host_id: Set(subject.host_id()),
                url_check_id: Set(subject.url_check_id()),
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

/// Which alert a step is about.
struct Alert<'a> {
    subject: Subject,
    kind: &'a str,
    metric: &'a str,
    label: &'a str,
}

/// Steps one alert, stores its state and writes the notification of a transition.
#[allow(clippy::too_many_arguments)]
async fn step_and_record(
    db: &impl ConnectionTrait,
    alert: &Alert<'_>,
    existing: Option<&alert_state::Model>,
    before: AlertState,
    rule: &Rule,
    value: Option<f64>,
    now_ms: i64,
    text: impl Fn(Transition, f64) -> (String, String, Option<f64>),
) -> Result<Option<notification::Model>> {
    let (after, transition) = machine::step(before, rule, value, now_ms);
    save(
        db,
        existing,
        alert.subject,
        alert.kind,
        alert.metric,
        alert.label,
        &after,
        value,
        now_ms,
    )
    .await?;
    let (Some(tr), Some(v)) = (transition, value) else {
        return Ok(None);
    };
    let (title, message, threshold) = text(tr, v);
    Ok(Some(
        notifications::insert(
            db,
            NewNotification {
                host_id: alert.subject.host_id(),
                url_check_id: alert.subject.url_check_id(),
                kind: alert.kind.into(),
                metric: (!alert.metric.is_empty()).then(|| alert.metric.to_owned()),
                label: (!alert.label.is_empty()).then(|| alert.label.to_owned()),
                level: tr.level().as_str().into(),
                state: if tr.firing() { "firing" } else { "resolved" }.into(),
                event: Some(tr.event().into()),
                value: Some(v),
                threshold,
                title,
                message,
            },
        )
        .await?,
    ))
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
    let threshold = rule.threshold(level);
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

/// Every stored alert state of the given hosts, by host: one query for both the threshold and
/// the reachability alerts of a batch of polls (rows exist only once an alert left "ok").
pub async fn host_states(
    db: &impl ConnectionTrait,
    host_ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, Vec<alert_state::Model>>> {
    let mut by_host: HashMap<i64, Vec<alert_state::Model>> = HashMap::new();
    for row in alert_state::Entity::find()
        .filter(alert_state::Column::HostId.is_in(host_ids))
        .all(db)
        .await?
    {
        if let Some(id) = row.host_id {
            by_host.entry(id).or_default().push(row);
        }
    }
    Ok(by_host)
}

/// Steps every threshold alert of a host with the values of one poll. Labels with no value this
/// time (a mount gone, a GPU not reporting) keep their state.
pub async fn evaluate_thresholds(
    db: &impl ConnectionTrait,
    host: &host::Model,
    thresholds: &[threshold::Model],
    stored: &[alert_state::Model],
    values: &[MetricValue],
    now_ms: i64,
) -> Result<Vec<notification::Model>> {
    let states: HashMap<(String, String), &alert_state::Model> = stored
        .iter()
        .filter(|s| s.kind == THRESHOLD)
        .map(|s| ((s.metric.clone(), s.label.clone()), s))
        .collect();
    let mut written = Vec::new();
    for t in thresholds {
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
            let existing = states.get(&(t.metric.clone(), label.to_owned())).copied();
            let before = existing
                .map(to_state)
                .unwrap_or_else(|| AlertState::new(now_ms));
            let value = by_label.get(label).copied();
            let alert = Alert {
                subject: Subject::Host(host.id),
                kind: THRESHOLD,
                metric: &t.metric,
                label,
            };
            written.extend(
                step_and_record(
                    db,
                    &alert,
                    existing,
                    before,
                    &rule,
                    value,
                    now_ms,
                    |tr, v| describe(host, t, label, v, tr, &rule),
                )
                .await?,
            );
        }
    }
    Ok(written)
}

async fn unreachable_row(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<alert_state::Model>> {
    Ok(alert_state::Entity::find()
        .filter(alert_state::Column::AlertKey.eq(key(Subject::Host(host_id), UNREACHABLE, "", "")))
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
        Subject::Host(host.id),
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
    stored: &[alert_state::Model],
    now_ms: i64,
) -> Result<Option<notification::Model>> {
    let Some(row) = stored.iter().find(|s| s.kind == UNREACHABLE).cloned() else {
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
        Subject::Host(host.id),
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

/// Steps a URL check's alerts after a run: `url_status` (critical while the check fails),
/// `url_latency` (its `url.response_ms` threshold, when a response came) and `cert_expiry` (its
/// `cert.days_left` threshold, per certificate serial: a renewed certificate resolves the alert
/// of the one it replaced).
pub async fn evaluate_url_check(
    db: &impl ConnectionTrait,
    check: &entity::url_check::Model,
    outcome: &crate::urlcheck::runner::Outcome,
    now_ms: i64,
) -> Result<Vec<notification::Model>> {
    let subject = Subject::UrlCheck(check.id);
    let states: Vec<alert_state::Model> = alert_state::Entity::find()
        .filter(alert_state::Column::UrlCheckId.eq(check.id))
        .all(db)
        .await?;
    let find = |kind: &str, metric: &str, label: &str| {
        states
            .iter()
            .find(|s| s.kind == kind && s.metric == metric && s.label == label)
    };
    let thresholds = threshold::Entity::find()
        .filter(threshold::Column::UrlCheckId.eq(check.id))
        .all(db)
        .await?;
    let mut written = Vec::new();

    // Status: 1 while failing, 0 when fine.
    let status_rule = Rule {
        warning: None,
        critical: Some(1.0),
        direction: Direction::Above,
        for_polls: 1,
        hysteresis: 0.0,
        repeat_seconds: None,
        enabled: true,
    };
    let existing = find("url_status", "", "");
    let before = existing
        .map(to_state)
        .unwrap_or_else(|| AlertState::new(now_ms));
    let failing = if outcome.ok() { 0.0 } else { 1.0 };
    let (kind, error) = outcome.error.clone().unwrap_or(("", String::new()));
    let alert = Alert {
        subject,
        kind: "url_status",
        metric: "",
        label: "",
    };
    written.extend(
        step_and_record(
            db,
            &alert,
            existing,
            before,
            &status_rule,
            Some(failing),
            now_ms,
            |tr, _| match tr {
                Transition::Resolved { .. } => (
                    format!("{} is answering again", check.name),
                    format!(
                        "{} answered {} in {} ms.",
                        check.url,
                        outcome.status.map_or("-".into(), |s| s.to_string()),
                        outcome.response_ms.unwrap_or(0)
                    ),
                    None,
                ),
                _ => (
                    format!("{} is failing ({kind})", check.name),
                    format!("{}: {error}", check.url),
                    None,
                ),
            },
        )
        .await?,
    );

    for t in &thresholds {
        let Some(spec) = alerts::URL_METRICS.iter().find(|m| m.name == t.metric) else {
            continue;
        };
        let rule = rule_of(t, spec.direction);
        match t.metric.as_str() {
            "url.response_ms" => {
                let existing = find("url_latency", &t.metric, "");
                let before = existing
                    .map(to_state)
                    .unwrap_or_else(|| AlertState::new(now_ms));
                let value = outcome.status.and(outcome.response_ms).map(|ms| ms as f64);
                let alert = Alert {
                    subject,
                    kind: "url_latency",
                    metric: &t.metric,
                    label: "",
                };
                written.extend(
                    step_and_record(
                        db,
                        &alert,
                        existing,
                        before,
                        &rule,
                        value,
                        now_ms,
                        |tr, v| {
                            let th = rule.threshold(tr.level());
                            let title = if tr.firing() {
                                format!(
                                    "{} is slow: {} ms ({})",
                                    check.name,
                                    fmt_value(v),
                                    tr.level().as_str()
                                )
                            } else {
                                format!("{} is fast again: {} ms", check.name, fmt_value(v))
                            };
                            (
                                title,
                                format!(
                                    "{} answered in {} ms; {} level {} ms. Event: {}.",
                                    check.url,
                                    fmt_value(v),
                                    tr.level().as_str(),
                                    th.map(fmt_value).unwrap_or_default(),
                                    tr.event()
                                ),
                                th,
                            )
                        },
                    )
                    .await?,
                );
            }
            "cert.days_left" => {
                let current = outcome.tls.as_ref().map(|t| {
                    (
                        t.cert.serial.clone(),
                        t.cert.days_left(now_ms),
                        t.cert.not_after_ms,
                    )
                });
                // Alerts of certificates no longer served are over.
                for old in states
                    .iter()
                    .filter(|s| s.kind == "cert_expiry" && s.state == "firing")
                {
                    if current
                        .as_ref()
                        .is_some_and(|(serial, ..)| *serial != old.label)
                    {
                        let level = old.level.clone().unwrap_or_else(|| "warning".into());
                        let mut model: alert_state::ActiveModel = old.clone().into();
                        model.state = Set("ok".into());
                        model.level = Set(None);
                        model.pending_polls = Set(0);
                        model.since_at = Set(now_ms);
                        model.last_notified_at = Set(Some(now_ms));
                        model.updated_at = Set(now_ms);
                        model.update(db).await?;
                        written.push(
                            notifications::insert(
                                db,
                                NewNotification {
                                    url_check_id: Some(check.id),
                                    kind: "cert_expiry".into(),
                                    metric: Some(t.metric.clone()),
                                    label: Some(old.label.clone()),
                                    level,
                                    state: "resolved".into(),
                                    event: Some("resolved".into()),
                                    value: old.last_value,
                                    title: format!(
                                        "{}: the expiring certificate was replaced",
                                        check.name
                                    ),
                                    message: format!(
                                        "{} no longer serves the certificate with serial {}.",
                                        check.url, old.label
                                    ),
                                    ..Default::default()
                                },
                            )
                            .await?,
                        );
                    }
                }
                let Some((serial, days_left, not_after_ms)) = current else {
                    continue;
                };
                let existing = find("cert_expiry", &t.metric, &serial);
                let before = existing
                    .map(to_state)
                    .unwrap_or_else(|| AlertState::new(now_ms));
                let alert = Alert {
                    subject,
                    kind: "cert_expiry",
                    metric: &t.metric,
                    label: &serial,
                };
                let expires = chrono::DateTime::from_timestamp_millis(not_after_ms)
                    .unwrap_or_default()
                    .to_rfc3339();
                written.extend(
                    step_and_record(db, &alert, existing, before, &rule, Some(days_left), now_ms, |tr, v| {
                        let th = rule.threshold(tr.level());
                        let title = if tr.firing() {
                            format!("{}: certificate expires in {} days ({})", check.name, fmt_value(v), tr.level().as_str())
                        } else {
                            format!("{}: certificate expiry is no longer close ({} days)", check.name, fmt_value(v))
                        };
                        (title, format!("{} serves certificate {serial}, valid until {expires}; {} level {} days. Event: {}.", check.url, tr.level().as_str(), th.map(fmt_value).unwrap_or_default(), tr.event()), th)
                    })
                    .await?,
                );
            }
            _ => {}
        }
    }
    Ok(written)
}
