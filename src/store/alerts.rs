//! Alerts: their states, read for the evaluator and written back with the notifications they
//! cause (inside the caller's transaction); acknowledgements; the notifications silences and
//! maintenance windows held back, delivered when those end; and the alerts listed by the API.
//!
//! A row exists once an alert left "ok" and stays, back at "ok", when it resolves: its id is
//! the alert's (`GET /alerts/{id}`), its `alert_key` names it uniquely. Every notification goes
//! through [`notify`], which links it to its row, marks what suppressed it and enqueues its
//! deliveries only when nothing did.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    alert_state, host, host_label, notification,
    types::{AlertKind, AlertPhase, Event, Level},
    url_check,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, sea_query::Expr,
};

use crate::{
    alerts::{
        evaluate::{AlertKey, Changes, Notice, StoredAlert, Subject},
        machine::{AlertState, Phase},
        maintenance::{self as calendar, Window},
        silence::{self, AlertFacts, Silence},
    },
    error::{Error, Result},
    store::{
        deliveries, maintenance as windows,
        notifications::{self, Marks},
        now_ms, silences, thresholds,
    },
};

/// The unique text key of an alert, as the `alert_key` column holds it.
fn key_text(key: &AlertKey) -> String {
    let (prefix, id) = match key.subject {
        Subject::Host(id) => ('h', id),
        Subject::UrlCheck(id) => ('u', id),
    };
    format!("{prefix}{id}|{}|{}|{}", key.kind, key.metric, key.label)
}

/// Whether an acknowledgement is in force at `now`.
pub fn acked_at(row: &alert_state::Model, now: i64) -> bool {
    row.acked_at.is_some() && row.ack_expires_at.is_none_or(|e| e > now)
}

/// The host or URL check an alert row is about.
pub fn subject_of(row: &alert_state::Model) -> Option<Subject> {
    match (row.host_id, row.url_check_id) {
        (Some(id), _) => Some(Subject::Host(id)),
        (None, Some(id)) => Some(Subject::UrlCheck(id)),
        (None, None) => None,
    }
}

fn phase_of(row: &alert_state::Model) -> Phase {
    match (row.state, row.level) {
        (AlertPhase::Firing, Some(level)) if level > Level::Info => Phase::Firing(level),
        (AlertPhase::Pending, _) => Phase::Pending,
        _ => Phase::Ok,
    }
}

fn stored(row: alert_state::Model) -> Option<StoredAlert> {
    let subject = subject_of(&row)?;
    let acked = acked_at(&row, now_ms());
    Some(StoredAlert {
        id: row.id,
        state: AlertState {
            phase: phase_of(&row),
            pending_polls: row.pending_polls.max(0) as u32,
            since_ms: row.since_at,
            last_notified_ms: row.last_notified_at,
        },
        key: AlertKey {
            subject,
            kind: row.kind,
            metric: row.metric,
            label: row.label,
        },
        last_value: row.last_value,
        acked,
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

async fn row_of(db: &impl ConnectionTrait, key: &AlertKey) -> Result<Option<alert_state::Model>> {
    Ok(alert_state::Entity::find()
        .filter(alert_state::Column::AlertKey.eq(key_text(key)))
        .one(db)
        .await?)
}

/// One alert, when it has a row.
pub async fn find(db: &impl ConnectionTrait, key: &AlertKey) -> Result<Option<StoredAlert>> {
    Ok(row_of(db, key).await?.and_then(stored))
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
                insert_row(
                    db,
                    &change.key,
                    change.state.phase,
                    change.state.pending_polls,
                    change.last_value,
                    change.state.since_ms,
                    change.state.last_notified_ms,
                    now_ms,
                )
                .await?;
            }
        }
    }
    let mut written = Vec::with_capacity(changes.notices.len());
    if changes.notices.is_empty() {
        return Ok(written);
    }
    let mut suppression = Suppression::load(db).await?;
    for n in changes.notices {
        written.extend(notify_with(db, n, &mut suppression).await?);
    }
    Ok(written)
}

#[allow(clippy::too_many_arguments)]
async fn insert_row(
    db: &impl ConnectionTrait,
    key: &AlertKey,
    phase: Phase,
    pending_polls: u32,
    last_value: Option<f64>,
    since_ms: i64,
    last_notified_ms: Option<i64>,
    now_ms: i64,
) -> Result<alert_state::Model> {
    let (state, level) = phase_columns(phase);
    Ok(alert_state::ActiveModel {
        alert_key: Set(key_text(key)),
        host_id: Set(key.subject.host_id()),
        url_check_id: Set(key.subject.url_check_id()),
        kind: Set(key.kind),
        metric: Set(key.metric.clone()),
        label: Set(key.label.clone()),
        state: Set(state),
        level: Set(level),
        pending_polls: Set(pending_polls as i32),
        last_value: Set(last_value),
        since_at: Set(since_ms),
        last_notified_at: Set(last_notified_ms),
        updated_at: Set(now_ms),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Alerts whose state is the host's status (or an enrollment's outcome) rather than a state
/// machine's: [`notify`] moves them with their notifications.
pub fn is_status_alert(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::AuthFailed
            | AlertKind::HostKeyMismatch
            | AlertKind::EnrollmentFailed
            | AlertKind::ProvisionFailed
    )
}

/// What kept a notification from channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressor {
    Silence(i64),
    Maintenance(i64),
}

impl Suppressor {
    /// The silence's id, when it is one.
    pub fn silence_id(held: Option<Self>) -> Option<i64> {
        match held {
            Some(Self::Silence(id)) => Some(id),
            _ => None,
        }
    }

    /// The maintenance window's id, when it is one.
    pub fn maintenance_id(held: Option<Self>) -> Option<i64> {
        match held {
            Some(Self::Maintenance(id)) => Some(id),
            _ => None,
        }
    }
}

/// What suppression looks at, read once for the notices of one evaluation (they are all about
/// one subject): the silences in force, the windows, and the subject's facts.
pub struct Suppression {
    now: i64,
    silences: Vec<Silence>,
    windows: Vec<Window>,
    facts: Option<(Subject, SubjectFacts)>,
}

impl Suppression {
    pub async fn load(db: &impl ConnectionTrait) -> Result<Self> {
        let now = now_ms();
        Ok(Self {
            now,
            silences: silences::in_force(db, now).await?,
            windows: windows::all(db).await?,
            facts: None,
        })
    }

    /// What holds back a notification of `level` about `key` now.
    async fn of(
        &mut self,
        db: &impl ConnectionTrait,
        key: &AlertKey,
        level: Level,
    ) -> Result<Option<Suppressor>> {
        if self.facts.as_ref().is_none_or(|(s, _)| *s != key.subject) {
            self.facts = Some((key.subject, facts_of(db, key.subject).await?));
        }
        let facts = &self.facts.as_ref().expect("read above").1;
        Ok(suppressor(
            &self.silences,
            &self.windows,
            facts,
            key,
            level,
            self.now,
        ))
    }
}

/// The facts of an alert's subject matchers and windows look at.
#[derive(Debug, Clone, Default)]
pub struct SubjectFacts {
    pub name: Option<String>,
    /// The host: the alert's own, or the one a URL check is attached to.
    pub host_id: Option<i64>,
    pub host_name: Option<String>,
    pub host_labels: Vec<String>,
    pub check_name: Option<String>,
}

/// Reads the facts of `subject` (empty when it is gone).
pub async fn facts_of(db: &impl ConnectionTrait, subject: Subject) -> Result<SubjectFacts> {
    let mut facts = SubjectFacts::default();
    let host_id = match subject {
        Subject::Host(id) => Some(id),
        Subject::UrlCheck(id) => {
            let check = url_check::Entity::find_by_id(id).one(db).await?;
            facts.check_name = check.as_ref().map(|c| c.name.clone());
            facts.name = facts.check_name.clone();
            check.and_then(|c| c.host_id)
        }
    };
    if let Some(id) = host_id
        && let Some(h) = host::Entity::find_by_id(id).one(db).await?
    {
        facts.host_id = Some(id);
        facts.host_name = Some(h.name.clone());
        if matches!(subject, Subject::Host(_)) {
            facts.name = Some(h.name);
        }
        facts.host_labels = thresholds::host_labels(db, id).await?;
    }
    Ok(facts)
}

/// The silence or maintenance window that holds an alert's notifications back at `now`.
pub fn suppressor(
    silences: &[Silence],
    windows: &[Window],
    facts: &SubjectFacts,
    key: &AlertKey,
    level: Level,
    now: i64,
) -> Option<Suppressor> {
    let a = AlertFacts {
        host: facts.host_name.as_deref(),
        host_labels: &facts.host_labels,
        check: facts.check_name.as_deref(),
        kind: key.kind,
        metric: &key.metric,
        label: &key.label,
        level,
    };
    if let Some(s) = silence::silenced_by(silences, &a, now) {
        return Some(Suppressor::Silence(s.id));
    }
    let host_id = facts.host_id?;
    let at = DateTime::<Utc>::from_timestamp_millis(now)?;
    calendar::covering(windows, host_id, &facts.host_labels, at)
        .next()
        .map(|(w, _)| Suppressor::Maintenance(w.id))
}

/// Writes a notification about its alert: linked to the alert's row (created for an alert
/// without one; for a status alert, moved to firing or back to ok), marked with the silence
/// or maintenance window that holds it back — then it is kept to be delivered when that ends
/// if the alert still fires — and otherwise enqueued for delivery.
///
/// A status alert's resolution when it was not firing says nothing new: `None`.
pub async fn notify(db: &impl ConnectionTrait, n: Notice) -> Result<Option<notification::Model>> {
    let mut suppression = Suppression::load(db).await?;
    notify_with(db, n, &mut suppression).await
}

/// [`notify`] with what suppression looks at read already.
async fn notify_with(
    db: &impl ConnectionTrait,
    n: Notice,
    suppression: &mut Suppression,
) -> Result<Option<notification::Model>> {
    use alert_state::Column as C;
    let now = now_ms();
    let row = match row_of(db, &n.key).await? {
        Some(row) => row,
        None => {
            if n.event == Event::Resolved {
                return Ok(None);
            }
            let phase = Phase::Firing(n.level.max(Level::Warning));
            insert_row(db, &n.key, phase, 0, n.value, now, Some(now), now).await?
        }
    };
    // A status alert's state is what its notifications say; a state machine's alert was
    // written by `apply` already, and this only catches a notice written on its own.
    let firing = n.event != Event::Resolved;
    if is_status_alert(n.key.kind) && !firing && row.state != AlertPhase::Firing {
        return Ok(None);
    }
    let (state, level) = if firing {
        (AlertPhase::Firing, Some(n.level.max(Level::Warning)))
    } else {
        (AlertPhase::Ok, None)
    };
    if row.state != state || (is_status_alert(n.key.kind) && row.level != level) {
        let since = if row.state == state {
            row.since_at
        } else {
            now
        };
        alert_state::Entity::update_many()
            .col_expr(C::State, Expr::value(state))
            .col_expr(C::Level, Expr::value(level))
            .col_expr(C::SinceAt, Expr::value(since))
            .col_expr(C::PendingPolls, Expr::value(0))
            .col_expr(C::LastNotifiedAt, Expr::value(Some(now)))
            .col_expr(C::UpdatedAt, Expr::value(now))
            .filter(C::Id.eq(row.id))
            .exec(db)
            .await?;
    }
    let held = suppression.of(db, &n.key, n.level).await?;
    let event = n.event;
    let threshold = n.threshold;
    let marks = Marks {
        alert_id: Some(row.id),
        silence_id: Suppressor::silence_id(held),
        maintenance_id: Suppressor::maintenance_id(held),
        deliver: held.is_none(),
        subject_gone: false,
    };
    let written = notifications::insert_marked(db, n, marks).await?;
    let resolved = event == Event::Resolved;
    // A held firing waits to be delivered if the alert still fires when the silence ends. A
    // held resolution waits too, when channels saw the episode open: else they would keep it
    // open; when they never saw it, there is nothing to close.
    let keep = held.is_some() && (!resolved || opening_delivered(db, &row).await?);
    let mut update = alert_state::Entity::update_many()
        .col_expr(
            C::HeldNotificationId,
            Expr::value(keep.then_some(written.id)),
        )
        .filter(C::Id.eq(row.id));
    if event == Event::Fired {
        update = update.col_expr(C::OpenedNotificationId, Expr::value(Some(written.id)));
    }
    if !resolved {
        update = update.col_expr(C::Threshold, Expr::value(threshold));
    }
    if matches!(event, Event::Fired | Event::Escalated | Event::Resolved) {
        // Sticky until ok; an escalation asks for attention again.
        update = update
            .col_expr(C::AckedBy, Expr::value(Option::<String>::None))
            .col_expr(C::AckedAt, Expr::value(Option::<i64>::None))
            .col_expr(C::AckComment, Expr::value(Option::<String>::None))
            .col_expr(C::AckExpiresAt, Expr::value(Option::<i64>::None));
    }
    update.exec(db).await?;
    Ok(Some(written))
}

/// Whether the notification that opened the alert's episode went to channels.
async fn opening_delivered(db: &impl ConnectionTrait, row: &alert_state::Model) -> Result<bool> {
    let Some(id) = row.opened_notification_id else {
        return Ok(false);
    };
    Ok(notifications::find(db, id)
        .await?
        .is_some_and(|n| n.silence_id.is_none() && n.maintenance_id.is_none()))
}

/// Whether any notification is held back (a plain read, before a write transaction).
pub async fn any_held(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(alert_state::Entity::find()
        .filter(alert_state::Column::HeldNotificationId.is_not_null())
        .one(db)
        .await?
        .is_some())
}

/// Delivers the notifications held back by silences and windows that have ended: a firing one
/// while its alert still fires, a resolution whatever the state; each once (the held mark goes
/// in the same transaction). Returns them.
pub async fn release_held(db: &impl ConnectionTrait) -> Result<Vec<notification::Model>> {
    let held = alert_state::Entity::find()
        .filter(alert_state::Column::HeldNotificationId.is_not_null())
        .all(db)
        .await?;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let silences = silences::in_force(db, now).await?;
    let windows = windows::all(db).await?;
    let mut released = Vec::new();
    for row in held {
        let Some(id) = row.held_notification_id else {
            continue;
        };
        let clear = || {
            alert_state::Entity::update_many()
                .col_expr(
                    alert_state::Column::HeldNotificationId,
                    Expr::value(Option::<i64>::None),
                )
                .filter(alert_state::Column::Id.eq(row.id))
                .filter(alert_state::Column::HeldNotificationId.eq(id))
        };
        let Some(n) = notifications::find(db, id).await? else {
            clear().exec(db).await?;
            continue;
        };
        let resolution = n.event == Some(Event::Resolved);
        if !resolution && row.state != AlertPhase::Firing {
            // Resolved since without a resolution to deliver: nothing to send.
            clear().exec(db).await?;
            continue;
        }
        let Some(subject) = subject_of(&row) else {
            continue;
        };
        let level = if resolution {
            n.level
        } else {
            row.level.unwrap_or(n.level)
        };
        let key = AlertKey::new(subject, row.kind, row.metric.clone(), row.label.clone());
        let facts = facts_of(db, subject).await?;
        if suppressor(&silences, &windows, &facts, &key, level, now).is_some() {
            continue;
        }
        // Only the one that clears the mark delivers: another node or pass that raced finds
        // it gone.
        if clear().exec(db).await?.rows_affected == 0 {
            continue;
        }
        deliveries::enqueue(db, &n).await?;
        released.push(n);
    }
    Ok(released)
}

/// An alert with its subject's names, as the API lists it.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub row: alert_state::Model,
    pub facts: SubjectFacts,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub host_id: Option<i64>,
    pub url_check_id: Option<i64>,
    /// Hosts (and the checks attached to them) carrying this label.
    pub host_label: Option<String>,
    pub kind: Option<AlertKind>,
    pub level: Option<Level>,
    pub state: Option<AlertPhase>,
}

/// Every alert that is not ok and passes the filter, most severe first then oldest, with its
/// subject's facts.
pub async fn active(db: &impl ConnectionTrait, f: &AlertFilter) -> Result<Vec<AlertView>> {
    use alert_state::Column as C;
    let mut q = alert_state::Entity::find().filter(C::State.ne(AlertPhase::Ok));
    if let Some(id) = f.host_id {
        q = q.filter(C::HostId.eq(id));
    }
    if let Some(id) = f.url_check_id {
        q = q.filter(C::UrlCheckId.eq(id));
    }
    if let Some(kind) = f.kind {
        q = q.filter(C::Kind.eq(kind));
    }
    if let Some(level) = f.level {
        q = q.filter(C::Level.eq(level));
    }
    if let Some(state) = f.state {
        q = q.filter(C::State.eq(state));
    }
    let rows = q.order_by_asc(C::Id).all(db).await?;
    let views = with_facts(db, rows).await?;
    let mut views: Vec<AlertView> = match &f.host_label {
        Some(l) => views
            .into_iter()
            .filter(|v| v.facts.host_labels.contains(l))
            .collect(),
        None => views,
    };
    views.sort_by_key(|v| (std::cmp::Reverse(v.row.level), v.row.since_at, v.row.id));
    Ok(views)
}

/// The rows with their subjects' facts, read in a few queries for the whole list.
async fn with_facts(
    db: &impl ConnectionTrait,
    rows: Vec<alert_state::Model>,
) -> Result<Vec<AlertView>> {
    let check_ids: Vec<i64> = rows.iter().filter_map(|r| r.url_check_id).collect();
    let checks: HashMap<i64, url_check::Model> = if check_ids.is_empty() {
        HashMap::new()
    } else {
        url_check::Entity::find()
            .filter(url_check::Column::Id.is_in(check_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect()
    };
    let mut host_ids: Vec<i64> = rows.iter().filter_map(|r| r.host_id).collect();
    host_ids.extend(checks.values().filter_map(|c| c.host_id));
    host_ids.sort_unstable();
    host_ids.dedup();
    let mut hosts: HashMap<i64, String> = HashMap::new();
    let mut labels: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in host_ids.chunks(500) {
        for h in host::Entity::find()
            .filter(host::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            hosts.insert(h.id, h.name);
        }
        for l in host_label::Entity::find()
            .filter(host_label::Column::HostId.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            labels.entry(l.host_id).or_default().push(l.label);
        }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let check = row.url_check_id.and_then(|id| checks.get(&id));
            let host_id = row.host_id.or(check.and_then(|c| c.host_id));
            let host_name = host_id.and_then(|id| hosts.get(&id).cloned());
            let facts = SubjectFacts {
                name: match check {
                    Some(c) => Some(c.name.clone()),
                    None => host_name.clone(),
                },
                host_id,
                host_name,
                host_labels: host_id
                    .and_then(|id| labels.get(&id).cloned())
                    .unwrap_or_default(),
                check_name: check.map(|c| c.name.clone()),
            };
            AlertView { row, facts }
        })
        .collect())
}

/// One alert, whatever its state.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<AlertView> {
    let row = alert_state::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no alert with id {id}")))?;
    Ok(with_facts(db, vec![row]).await?.remove(0))
}

/// The notifications an alert wrote, oldest first, and how many.
pub async fn history(
    db: &impl ConnectionTrait,
    id: i64,
    limit: u64,
    offset: u64,
) -> Result<(Vec<notification::Model>, u64)> {
    let q = notification::Entity::find().filter(notification::Column::AlertId.eq(id));
    let total = q.clone().count(db).await?;
    let rows = q
        .order_by_asc(notification::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Acknowledges a firing or pending alert: `by` is on it.
pub async fn ack(
    db: &impl ConnectionTrait,
    id: i64,
    by: &str,
    comment: &str,
    expires_at: Option<i64>,
) -> Result<AlertView> {
    let view = get(db, id).await?;
    if view.row.state != AlertPhase::Firing {
        return Err(Error::Conflict(format!(
            "alert {id} is {}, not firing: there is nothing to acknowledge",
            view.row.state
        )));
    }
    let mut model: alert_state::ActiveModel = view.row.into();
    model.acked_by = Set(Some(by.to_owned()));
    model.acked_at = Set(Some(now_ms()));
    model.ack_comment = Set(Some(comment.to_owned()));
    model.ack_expires_at = Set(expires_at);
    model.update(db).await?;
    get(db, id).await
}

/// Takes an acknowledgement back (an alert without one is left as it is).
pub async fn unack(db: &impl ConnectionTrait, id: i64) -> Result<AlertView> {
    let view = get(db, id).await?;
    let mut model: alert_state::ActiveModel = view.row.into();
    model.acked_by = Set(None);
    model.acked_at = Set(None);
    model.ack_comment = Set(None);
    model.ack_expires_at = Set(None);
    model.update(db).await?;
    get(db, id).await
}

/// What a subject's deletion must close: its firing alerts, and who it was (for routing and
/// suppression), read before it is deleted.
#[derive(Debug, Clone)]
pub struct Gone {
    pub firing: Vec<alert_state::Model>,
    pub facts: SubjectFacts,
}

/// Reads [`Gone`] for `subject`, before it is deleted.
pub async fn before_delete(db: &impl ConnectionTrait, subject: Subject) -> Result<Gone> {
    Ok(Gone {
        firing: open_of(db, subject).await?,
        facts: facts_of(db, subject).await?,
    })
}

/// The firing alerts of `subject`.
async fn open_of(db: &impl ConnectionTrait, subject: Subject) -> Result<Vec<alert_state::Model>> {
    let q = alert_state::Entity::find().filter(alert_state::Column::State.eq(AlertPhase::Firing));
    let q = match subject {
        Subject::Host(id) => q.filter(alert_state::Column::HostId.eq(id)),
        Subject::UrlCheck(id) => q.filter(alert_state::Column::UrlCheckId.eq(id)),
    };
    Ok(q.all(db).await?)
}

/// After a subject was deleted (in the same transaction): a resolution for each alert it had
/// firing, saying why. They outlive the subject (no subject id), are routed to channels by the
/// host it was (or was attached to), and are held back like any other while a silence or
/// window selected them.
pub async fn resolve_deleted(
    db: &impl ConnectionTrait,
    gone: Gone,
    what: &str,
) -> Result<Vec<notification::Model>> {
    let name = gone.facts.name.clone().unwrap_or_default();
    let now = now_ms();
    let silences = silences::in_force(db, now).await?;
    let windows = windows::all(db).await?;
    let mut written = Vec::new();
    for row in gone.firing {
        let Some(subject) = subject_of(&row) else {
            continue;
        };
        let about = match (row.metric.as_str(), row.label.as_str()) {
            ("", _) => row.kind.as_str().to_owned(),
            (m, "") => m.to_owned(),
            (m, l) => format!("{m} {l}"),
        };
        let level = row.level.unwrap_or(Level::Warning);
        let key = AlertKey::new(subject, row.kind, row.metric.clone(), row.label.clone());
        let held = suppressor(&silences, &windows, &gone.facts, &key, level, now);
        let notice = Notice::new(
            key,
            level,
            Event::Resolved,
            format!("{name}: {about} is resolved: the {what} was deleted"),
            format!(
                "The {what} {name} was deleted while its alert {about} was firing; the alert \
                 ends with it."
            ),
        );
        let marks = Marks {
            alert_id: Some(row.id),
            silence_id: Suppressor::silence_id(held),
            maintenance_id: Suppressor::maintenance_id(held),
            deliver: false,
            subject_gone: true,
        };
        let n = notifications::insert_marked(db, notice, marks).await?;
        if held.is_none() {
            let route = gone
                .facts
                .host_id
                .map(|id| (id, gone.facts.host_labels.as_slice()));
            deliveries::enqueue_routed(db, &n, route).await?;
        }
        written.push(n);
    }
    Ok(written)
}
