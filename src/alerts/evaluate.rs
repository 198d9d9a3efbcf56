//! The evaluator: from rules, stored alert states and what was just observed, to the states to
//! store and the notifications they cause. Pure: the caller reads the states, passes the time,
//! and writes [`Changes`] in the same transaction as the observation (`store::alerts::apply`).
//!
//! Three observations step alerts: a host's successful poll (its threshold alerts, and its
//! `host_unreachable` alert resets), a host's failed poll (`host_unreachable` counts), and a URL
//! check's run (`url_status`, `url_latency`, `cert_expiry` per certificate serial).

use std::collections::{BTreeSet, HashMap};

use entity::types::{AlertKind, Event, Level, NotificationState, UrlErrorKind};

use super::{
    Direction,
    machine::{self, AlertState, Phase, Rule, Transition},
    text::{self, Described},
};
use crate::probe::MetricValue;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Host(i64),
    UrlCheck(i64),
}

impl Subject {
    pub fn host_id(self) -> Option<i64> {
        match self {
            Self::Host(id) => Some(id),
            Self::UrlCheck(_) => None,
        }
    }

    pub fn url_check_id(self) -> Option<i64> {
        match self {
            Self::UrlCheck(id) => Some(id),
            Self::Host(_) => None,
        }
    }
}

/// Which alert: one per (subject, kind, metric, label).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub subject: Subject,
    pub kind: AlertKind,
    /// Empty for alerts that are not about a metric.
    pub metric: String,
    /// Mount, GPU index, certificate serial…; empty for host-wide metrics.
    pub label: String,
}

impl AlertKey {
    /// The alert of `kind` about `subject`'s `metric` and `label` (empty when not about one).
    pub fn new(
        subject: Subject,
        kind: AlertKind,
        metric: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            subject,
            kind,
            metric: metric.into(),
            label: label.into(),
        }
    }
}

/// An alert as the database holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: i64,
    pub key: AlertKey,
    pub state: AlertState,
    pub last_value: Option<f64>,
    /// Acknowledged (and the acknowledgement has not expired): no reminders.
    pub acked: bool,
}

/// A state to write: over the stored row `id`, or a new row.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub id: Option<i64>,
    pub key: AlertKey,
    pub state: AlertState,
    pub last_value: Option<f64>,
}

/// A notification to write: what a step causes, or a status change says.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The alert it is about.
    pub key: AlertKey,
    pub level: Level,
    pub event: Event,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub title: String,
    pub message: String,
}

impl Notice {
    /// A notice without a value or threshold.
    pub fn new(
        key: AlertKey,
        level: Level,
        event: Event,
        title: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            key,
            level,
            event,
            value: None,
            threshold: None,
            title: title.into(),
            message: message.into(),
        }
    }

    /// Whether the alert is firing after the event (the notification's `state`).
    pub fn state(&self) -> NotificationState {
        match self.event {
            Event::Resolved => NotificationState::Resolved,
            _ => NotificationState::Firing,
        }
    }
}

/// What one evaluation leaves to be written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub states: Vec<StateChange>,
    pub notices: Vec<Notice>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.states.is_empty() && self.notices.is_empty()
    }

    /// Records `after` for the alert (when it differs from what is stored) and the notice of
    /// `transition`, worded by `describe`.
    fn record(
        &mut self,
        stored: Option<&StoredAlert>,
        key: impl FnOnce() -> AlertKey,
        after: AlertState,
        value: Option<f64>,
        transition: Option<Transition>,
        describe: impl FnOnce(Transition) -> Described,
    ) {
        let unchanged = match stored {
            Some(row) => row.state == after && row.last_value == value.or(row.last_value),
            // An alert at rest needs no row until it leaves "ok".
            None => after.phase == Phase::Ok && after.pending_polls == 0,
        };
        if unchanged && transition.is_none() {
            return;
        }
        let key = stored.map_or_else(key, |row| row.key.clone());
        // An acknowledged alert sends no reminders.
        let transition = transition
            .filter(|t| !(matches!(t, Transition::Reminder(_)) && stored.is_some_and(|s| s.acked)));
        if let Some(tr) = transition {
            let d = describe(tr);
            self.notices.push(Notice {
                key: key.clone(),
                level: tr.level(),
                event: tr.event(),
                value: d.value,
                threshold: d.threshold,
                title: d.title,
                message: d.message,
            });
        }
        if !unchanged {
            self.states.push(StateChange {
                id: stored.map(|row| row.id),
                key,
                state: after,
                last_value: value.or(stored.and_then(|row| row.last_value)),
            });
        }
    }
}

/// A threshold of a host or URL check as the evaluator applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    pub metric: String,
    /// The one label it is about; empty for every label of the metric.
    pub label: String,
    pub rule: Rule,
}

/// Whether a metric's labels are mounts (the metrics pseudo filesystems are left out of).
pub fn labelled_by_mount(metric: &str) -> bool {
    matches!(
        metric,
        "disk.used_pct" | "disk.inodes_used_pct" | text::DISK_HOURS_TO_FULL
    )
}

/// The host or URL check an evaluation is about, and how its notifications name it.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub subject: Subject,
    pub named: text::Named<'a>,
}

fn at_rest(now_ms: i64) -> AlertState {
    AlertState::new(now_ms)
}

/// The stored alerts of one subject by (kind, metric, label), borrowed.
struct Index<'a>(HashMap<(AlertKind, &'a str, &'a str), &'a StoredAlert>);

impl<'a> Index<'a> {
    fn new(stored: &'a [StoredAlert]) -> Self {
        Self(
            stored
                .iter()
                .map(|s| ((s.key.kind, s.key.metric.as_str(), s.key.label.as_str()), s))
                .collect(),
        )
    }

    fn get(&self, kind: AlertKind, metric: &str, label: &str) -> Option<&'a StoredAlert> {
        self.0.get(&(kind, metric, label)).copied()
    }

    fn labels<'s>(
        &'s self,
        kind: AlertKind,
        metric: &'s str,
    ) -> impl Iterator<Item = &'a str> + 's {
        self.0
            .keys()
            .filter(move |(k, m, _)| *k == kind && *m == metric)
            .map(|(_, _, label)| *label)
    }
}

/// After a successful poll: every threshold alert of the host steps with the poll's values
/// (a label with no value this time — a mount gone, a GPU not reporting — keeps its state),
/// and its `host_unreachable` alert resets, resolving if it fired.
///
/// A label is judged by the rule about it, else by the metric's every-label rule — except a
/// mount in `pseudo_mounts` (tmpfs and the like), which only a rule about it judges. A stored
/// alert no rule judges any more resolves with its next value.
pub fn after_poll(
    host: Who<'_>,
    rules: &[ThresholdRule],
    stored: &[StoredAlert],
    values: &[MetricValue],
    pseudo_mounts: &[String],
    now_ms: i64,
) -> Changes {
    let mut changes = Changes::default();
    let index = Index::new(stored);
    let metrics: BTreeSet<&str> = rules
        .iter()
        .map(|r| r.metric.as_str())
        .chain(
            stored
                .iter()
                .filter(|s| s.key.kind == AlertKind::Threshold)
                .map(|s| s.key.metric.as_str()),
        )
        .collect();
    for metric in metrics {
        let every = rules
            .iter()
            .find(|r| r.metric == metric && r.label.is_empty());
        let mut by_label: HashMap<&str, f64> = HashMap::new();
        for v in values.iter().filter(|v| v.name == metric) {
            by_label.insert(v.label.as_str(), v.value);
        }
        let labels: BTreeSet<&str> = by_label
            .keys()
            .copied()
            .chain(index.labels(AlertKind::Threshold, metric))
            .collect();
        for label in labels {
            let own = rules
                .iter()
                .find(|r| r.metric == metric && r.label == label);
            let pseudo = labelled_by_mount(metric) && pseudo_mounts.iter().any(|m| m == label);
            let rule = own.or(every.filter(|_| !pseudo)).map(|t| &t.rule);
            let existing = index.get(AlertKind::Threshold, metric, label);
            let Some(rule) = rule.cloned().or_else(|| {
                // Nothing judges it: an alert left from before resolves, none starts.
                existing.map(|_| Rule {
                    enabled: false,
                    ..unreachable_rule(1)
                })
            }) else {
                continue;
            };
            let before = existing.map_or_else(|| at_rest(now_ms), |s| s.state);
            let value = by_label.get(label).copied();
            let (after, transition) = machine::step(before, &rule, value, now_ms);
            changes.record(
                existing,
                || AlertKey {
                    subject: host.subject,
                    kind: AlertKind::Threshold,
                    metric: metric.to_owned(),
                    label: label.to_owned(),
                },
                after,
                value,
                transition,
                |tr| text::threshold(host.named, metric, label, &rule, value, tr, now_ms),
            );
        }
    }
    if let Some(row) = index.get(AlertKind::HostUnreachable, "", "") {
        let failures = row.state.pending_polls;
        let (after, transition) = machine::clear(row.state, now_ms);
        changes.record(
            Some(row),
            || row.key.clone(),
            after,
            None,
            transition,
            |_| text::reachable_again(host.named, failures),
        );
    }
    changes
}

/// The rule of `host_unreachable`: critical at the `after`-th failed poll in a row.
fn unreachable_rule(after: u32) -> Rule {
    Rule {
        warning: None,
        critical: Some(f64::from(after.max(1))),
        direction: Direction::Above,
        for_polls: 1,
        hysteresis: 0.0,
        repeat_seconds: None,
        enabled: true,
    }
}

/// After a failed poll of a host whose status is `unreachable`: counts the failure in its
/// `host_unreachable` alert (`stored`, when it has a row), which fires at the `after`-th
/// failure in a row.
pub fn after_failed_poll(
    host: Who<'_>,
    stored: Option<&StoredAlert>,
    error: &str,
    after: u32,
    now_ms: i64,
) -> Changes {
    let mut changes = Changes::default();
    let before = stored.map_or_else(|| at_rest(now_ms), |s| s.state);
    let failures = before.pending_polls + 1;
    let (mut state, transition) = machine::step(
        before,
        &unreachable_rule(after),
        Some(f64::from(failures)),
        now_ms,
    );
    // The count of failures in a row is kept while firing too.
    state.pending_polls = failures;
    // Only the firing is news; later failures while it fires only count.
    let transition = transition.filter(|t| matches!(t, Transition::Fired(_)));
    changes.record(
        stored,
        || AlertKey {
            subject: host.subject,
            kind: AlertKind::HostUnreachable,
            metric: String::new(),
            label: String::new(),
        },
        state,
        Some(f64::from(failures)),
        transition,
        |_| text::unreachable(host.named, failures, after, error),
    );
    changes
}

/// What one run of a URL check found, as the evaluator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlObservation {
    pub status: Option<u16>,
    pub response_ms: Option<i64>,
    /// Why the check failed, when it did.
    pub error: Option<(UrlErrorKind, String)>,
    /// The leaf certificate served, for https.
    pub cert: Option<CertSeen>,
}

/// A served certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertSeen {
    pub serial: String,
    pub days_left: f64,
    pub not_after_ms: i64,
}

/// The rule of `url_status`: critical while the check fails.
fn failing_rule() -> Rule {
    Rule {
        warning: None,
        critical: Some(1.0),
        direction: Direction::Above,
        for_polls: 1,
        hysteresis: 0.0,
        repeat_seconds: None,
        enabled: true,
    }
}

/// After a URL check ran: `url_status` (critical while the check fails), `url_latency` (its
/// `url.response_ms` threshold, when a response came) and `cert_expiry` (its `cert.days_left`
/// threshold, per certificate serial; a certificate no longer served has its alert resolved).
pub fn after_url_check(
    check: Who<'_>,
    rules: &[ThresholdRule],
    stored: &[StoredAlert],
    seen: &UrlObservation,
    now_ms: i64,
) -> Changes {
    let mut changes = Changes::default();
    let index = Index::new(stored);
    let key = |kind: AlertKind, metric: &str, label: &str| AlertKey {
        subject: check.subject,
        kind,
        metric: metric.to_owned(),
        label: label.to_owned(),
    };

    let existing = index.get(AlertKind::UrlStatus, "", "");
    let failing = if seen.error.is_some() { 1.0 } else { 0.0 };
    let before = existing.map_or_else(|| at_rest(now_ms), |s| s.state);
    let (after, transition) = machine::step(before, &failing_rule(), Some(failing), now_ms);
    changes.record(
        existing,
        || key(AlertKind::UrlStatus, "", ""),
        after,
        Some(failing),
        transition,
        |tr| {
            text::url_status(
                check.named,
                seen.status,
                seen.response_ms,
                seen.error.as_ref(),
                failing,
                tr,
            )
        },
    );

    // Latency before certificates, whatever order the rules come in.
    let ordered = [text::URL_RESPONSE_MS, text::CERT_DAYS_LEFT]
        .into_iter()
        .filter_map(|metric| rules.iter().find(|t| t.metric == metric));
    for t in ordered {
        match t.metric.as_str() {
            text::URL_RESPONSE_MS => {
                let existing = index.get(AlertKind::UrlLatency, &t.metric, "");
                let before = existing.map_or_else(|| at_rest(now_ms), |s| s.state);
                let value = seen.status.and(seen.response_ms).map(|ms| ms as f64);
                let (after, transition) = machine::step(before, &t.rule, value, now_ms);
                changes.record(
                    existing,
                    || key(AlertKind::UrlLatency, &t.metric, ""),
                    after,
                    value,
                    transition,
                    |tr| text::url_latency(check.named, &t.rule, value, tr),
                );
            }
            text::CERT_DAYS_LEFT => {
                let Some(cert) = &seen.cert else { continue };
                for old in stored.iter().filter(|s| {
                    s.key.kind == AlertKind::CertExpiry
                        && s.key.label != cert.serial
                        && matches!(s.state.phase, Phase::Firing(_))
                }) {
                    let (after, transition) = machine::clear(old.state, now_ms);
                    changes.record(
                        Some(old),
                        || old.key.clone(),
                        after,
                        None,
                        transition,
                        |_| text::cert_replaced(check.named, &old.key.label, old.last_value),
                    );
                }
                let existing = index.get(AlertKind::CertExpiry, &t.metric, &cert.serial);
                let before = existing.map_or_else(|| at_rest(now_ms), |s| s.state);
                let value = Some(cert.days_left);
                let (after, transition) = machine::step(before, &t.rule, value, now_ms);
                changes.record(
                    existing,
                    || key(AlertKind::CertExpiry, &t.metric, &cert.serial),
                    after,
                    value,
                    transition,
                    |tr| {
                        text::cert_expiry(
                            check.named,
                            &cert.serial,
                            cert.days_left,
                            cert.not_after_ms,
                            &t.rule,
                            tr,
                        )
                    },
                );
            }
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn host() -> Who<'static> {
        Who {
            subject: Subject::Host(7),
            named: text::Named {
                name: "web-1",
                place: text::Place::Address {
                    address: "10.0.0.5",
                    port: 22,
                },
            },
        }
    }

    fn check() -> Who<'static> {
        Who {
            subject: Subject::UrlCheck(3),
            named: text::Named {
                name: "site",
                place: text::Place::Url("https://example.test/"),
            },
        }
    }

    fn rule(metric: &str, warning: f64, critical: f64) -> ThresholdRule {
        ThresholdRule {
            metric: metric.into(),
            label: String::new(),
            rule: Rule {
                warning: Some(warning),
                critical: Some(critical),
                direction: super::super::host_metric(metric)
                    .or(super::super::URL_METRICS.iter().find(|m| m.name == metric))
                    .map_or(Direction::Above, |m| m.direction),
                for_polls: 1,
                hysteresis: 5.0,
                repeat_seconds: None,
                enabled: true,
            },
        }
    }

    fn value(name: &'static str, label: &str, value: f64) -> MetricValue {
        MetricValue {
            name,
            label: label.into(),
            value,
        }
    }

    /// The stored rows `changes` leave, given the rows before (ids given to new rows).
    fn stored_after(before: &[StoredAlert], changes: &Changes) -> Vec<StoredAlert> {
        let mut rows = before.to_vec();
        for c in &changes.states {
            match c.id {
                Some(id) => {
                    let row = rows.iter_mut().find(|r| r.id == id).unwrap();
                    row.state = c.state;
                    row.last_value = c.last_value;
                }
                None => {
                    let id = rows.len() as i64 + 100;
                    rows.push(StoredAlert {
                        id,
                        key: c.key.clone(),
                        state: c.state,
                        last_value: c.last_value,
                        acked: false,
                    });
                }
            }
        }
        rows
    }

    #[test]
    fn values_under_every_level_write_nothing() {
        let rules = [
            rule("cpu.usage_pct", 80.0, 90.0),
            rule("disk.used_pct", 85.0, 95.0),
        ];
        let values = [
            value("cpu.usage_pct", "", 12.0),
            value("disk.used_pct", "/", 40.0),
            value("disk.used_pct", "/home", 50.0),
        ];
        let changes = after_poll(host(), &rules, &[], &values, &[], NOW);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn a_threshold_fires_per_label_and_resolves_once() {
        let rules = [rule("disk.used_pct", 85.0, 95.0)];
        let values = [
            value("disk.used_pct", "/", 40.0),
            value("disk.used_pct", "/data", 97.0),
        ];
        let fired = after_poll(host(), &rules, &[], &values, &[], NOW);
        assert_eq!(fired.states.len(), 1);
        assert_eq!(fired.states[0].key.label, "/data");
        assert_eq!(fired.states[0].last_value, Some(97.0));
        let [notice] = fired.notices.as_slice() else {
            panic!("{fired:?}")
        };
        assert_eq!(
            (notice.level, notice.event, notice.value, notice.threshold),
            (Level::Critical, Event::Fired, Some(97.0), Some(95.0))
        );
        assert_eq!(
            notice.title,
            "web-1: disk.used_pct /data is critical (97 ≥ 95)"
        );
        assert!(
            notice.message.contains("critical level 95"),
            "{}",
            notice.message
        );

        // Still over: the value is kept, nothing is said.
        let rows = stored_after(&[], &fired);
        let still = after_poll(
            host(),
            &rules,
            &rows,
            &[value("disk.used_pct", "/data", 98.0)],
            &[],
            NOW + 10_000,
        );
        assert!(still.notices.is_empty());
        assert_eq!(still.states[0].last_value, Some(98.0));
        // The mount gone from this poll: no change at all (missing data is not recovery).
        let rows = stored_after(&rows, &still);
        assert!(after_poll(host(), &rules, &rows, &[], &[], NOW + 20_000).is_empty());
        // Back under the hysteresis: resolved, with the level it had.
        let back = after_poll(
            host(),
            &rules,
            &rows,
            &[value("disk.used_pct", "/data", 70.0)],
            &[],
            NOW + 30_000,
        );
        assert_eq!(back.notices.len(), 1);
        assert_eq!(
            (back.notices[0].event, back.notices[0].level),
            (Event::Resolved, Level::Critical)
        );
        assert_eq!(back.states[0].id, rows[0].id.into());
        assert_eq!(back.states[0].state.phase, Phase::Ok);
    }

    #[test]
    fn failures_count_fire_once_and_a_poll_resolves() {
        let mut rows: Vec<StoredAlert> = Vec::new();
        let mut fired = Vec::new();
        for i in 0..5 {
            let c = after_failed_poll(host(), rows.first(), "timed out", 3, NOW + i * 1000);
            fired.extend(c.notices.iter().map(|n| n.event));
            rows = stored_after(&rows, &c);
        }
        assert_eq!(fired, [Event::Fired]);
        assert_eq!(rows[0].state.pending_polls, 5);
        assert_eq!(rows[0].state.phase, Phase::Firing(Level::Critical));

        let back = after_poll(host(), &[], &rows, &[], &[], NOW + 10_000);
        let [notice] = back.notices.as_slice() else {
            panic!("{back:?}")
        };
        assert_eq!(
            (notice.event, notice.level),
            (Event::Resolved, Level::Critical)
        );
        assert_eq!(notice.title, "web-1 is reachable again");
        assert!(notice.message.contains("after 5 failed ones"));
        assert_eq!(back.states[0].state.pending_polls, 0);

        // A failure that did not fire only resets.
        let one = stored_after(&[], &after_failed_poll(host(), None, "x", 3, NOW));
        let reset = after_poll(host(), &[], &one, &[], &[], NOW + 1000);
        assert!(reset.notices.is_empty());
        assert_eq!(reset.states[0].state.pending_polls, 0);
    }

    fn seen(error: bool, ms: i64, serial: &str, days: f64) -> UrlObservation {
        UrlObservation {
            status: Some(if error { 500 } else { 200 }),
            response_ms: Some(ms),
            error: error.then(|| (UrlErrorKind::Status, "HTTP 500 is not expected".into())),
            cert: Some(CertSeen {
                serial: serial.into(),
                days_left: days,
                not_after_ms: NOW + (days * 86_400_000.0) as i64,
            }),
        }
    }

    #[test]
    fn url_checks_fail_slow_and_expire() {
        let rules = [
            rule("url.response_ms", 1000.0, 3000.0),
            rule("cert.days_left", 14.0, 3.0),
        ];
        let all = after_url_check(check(), &rules, &[], &seen(true, 3500, "01:AB", 2.0), NOW);
        let kinds: Vec<(AlertKind, Level)> =
            all.notices.iter().map(|n| (n.key.kind, n.level)).collect();
        assert_eq!(
            kinds,
            [
                (AlertKind::UrlStatus, Level::Critical),
                (AlertKind::UrlLatency, Level::Critical),
                (AlertKind::CertExpiry, Level::Critical),
            ]
        );
        assert_eq!(all.notices[0].title, "site is failing (status)");
        assert_eq!(all.notices[2].key.label, "01:AB");

        // Fine again, with a renewed certificate: all three resolve, the old certificate's
        // alert through its replacement.
        let rows = stored_after(&[], &all);
        let fine = after_url_check(
            check(),
            &rules,
            &rows,
            &seen(false, 100, "02:CD", 90.0),
            NOW,
        );
        let events: Vec<(AlertKind, &str, Event)> = fine
            .notices
            .iter()
            .map(|n| (n.key.kind, n.key.label.as_str(), n.event))
            .collect();
        assert_eq!(
            events,
            [
                (AlertKind::UrlStatus, "", Event::Resolved),
                (AlertKind::UrlLatency, "", Event::Resolved),
                (AlertKind::CertExpiry, "01:AB", Event::Resolved),
            ]
        );
        assert_eq!(
            fine.notices[2].title,
            "site: the expiring certificate was replaced"
        );
        // The new certificate is far from expiry: no row for it.
        assert!(fine.states.iter().all(|s| s.key.label != "02:CD"));
    }

    #[test]
    fn no_response_is_no_latency_value() {
        let rules = [rule("url.response_ms", 1000.0, 3000.0)];
        let mut down = seen(true, 5000, "x", 90.0);
        down.status = None;
        down.cert = None;
        let changes = after_url_check(check(), &rules, &[], &down, NOW);
        assert_eq!(changes.notices.len(), 1);
        assert_eq!(changes.notices[0].key.kind, AlertKind::UrlStatus);
    }

    #[test]
    fn pseudo_mounts_only_alert_by_a_rule_about_them() {
        let mut rules = vec![rule("disk.used_pct", 85.0, 95.0)];
        let values = [
            value("disk.used_pct", "/dev/shm", 100.0),
            value("disk.used_pct", "/", 50.0),
        ];
        let pseudo = ["/dev/shm".to_owned()];
        assert!(after_poll(host(), &rules, &[], &values, &pseudo, NOW).is_empty());
        // Without the exclusion the same values fire.
        assert_eq!(
            after_poll(host(), &rules, &[], &values, &[], NOW)
                .notices
                .len(),
            1
        );
        // A rule that names the mount judges it anyway.
        rules.push(ThresholdRule {
            label: "/dev/shm".into(),
            ..rule("disk.used_pct", 90.0, 99.0)
        });
        let c = after_poll(host(), &rules, &[], &values, &pseudo, NOW);
        assert_eq!(c.notices.len(), 1);
        assert_eq!(c.notices[0].threshold, Some(99.0));
    }

    #[test]
    fn a_label_rule_overrides_and_an_orphaned_alert_resolves() {
        let rules = vec![
            rule("disk.used_pct", 85.0, 95.0),
            ThresholdRule {
                label: "/data".into(),
                ..rule("disk.used_pct", 97.0, 99.0)
            },
        ];
        let values = [
            value("disk.used_pct", "/data", 96.0),
            value("disk.used_pct", "/", 96.0),
        ];
        let c = after_poll(host(), &rules, &[], &values, &[], NOW);
        let fired: Vec<&str> = c.notices.iter().map(|n| n.key.label.as_str()).collect();
        assert_eq!(fired, ["/"]);
        // The rule goes away while "/" fires: it resolves at its next value.
        let rows = stored_after(&[], &c);
        let c = after_poll(host(), &[], &rows, &values, &[], NOW + 10_000);
        assert_eq!(c.notices.len(), 1);
        assert_eq!(c.notices[0].event, Event::Resolved);
    }

    #[test]
    fn an_acknowledged_alert_sends_no_reminders_but_escalates() {
        let mut cpu = rule("cpu.usage_pct", 80.0, 90.0);
        cpu.rule.repeat_seconds = Some(60);
        let rules = [cpu];
        let fired = after_poll(
            host(),
            &rules,
            &[],
            &[value("cpu.usage_pct", "", 85.0)],
            &[],
            NOW,
        );
        let mut rows = stored_after(&[], &fired);
        rows[0].acked = true;
        let later = after_poll(
            host(),
            &rules,
            &rows,
            &[value("cpu.usage_pct", "", 85.0)],
            &[],
            NOW + 120_000,
        );
        assert!(later.notices.is_empty(), "{later:?}");
        let rows = stored_after(&rows, &later);
        let up = after_poll(
            host(),
            &rules,
            &rows,
            &[value("cpu.usage_pct", "", 95.0)],
            &[],
            NOW + 130_000,
        );
        assert_eq!(up.notices[0].event, Event::Escalated);
        // Not acknowledged: the reminder comes.
        let mut rows = stored_after(&[], &fired);
        rows[0].acked = false;
        let later = after_poll(
            host(),
            &rules,
            &rows,
            &[value("cpu.usage_pct", "", 85.0)],
            &[],
            NOW + 120_000,
        );
        assert_eq!(later.notices[0].event, Event::Reminder);
    }

    #[test]
    fn a_filling_disk_fires_its_forecast_saying_when() {
        use crate::alerts::forecast::{DiskTrend, MountUse};
        let spec = super::super::host_metric(text::DISK_HOURS_TO_FULL).unwrap();
        let (warning, critical) = spec.defaults.unwrap();
        let forecast = ThresholdRule {
            metric: text::DISK_HOURS_TO_FULL.into(),
            label: String::new(),
            rule: Rule {
                warning: Some(warning),
                critical: Some(critical),
                direction: spec.direction,
                for_polls: 1,
                hysteresis: 0.0,
                repeat_seconds: None,
                enabled: true,
            },
        };
        // 2 GiB more used every hour: once the trend is known (a quarter of the window) the
        // disk is full within a day (a warning), and later within 6 hours (critical).
        const GIB: u64 = 1 << 30;
        let mut trend = DiskTrend::new(std::time::Duration::from_secs(6 * 3600));
        let mut rows: Vec<StoredAlert> = Vec::new();
        let mut notices = Vec::new();
        for minute in 0..=300u64 {
            let used = 90 * GIB + minute * 2 * GIB / 60;
            let now = NOW + minute as i64 * 60_000;
            let values = trend.observe(
                now,
                [MountUse {
                    mount: "/var",
                    used_bytes: used,
                    available_bytes: 110 * GIB - used,
                }],
            );
            let c = after_poll(
                host(),
                std::slice::from_ref(&forecast),
                &rows,
                &values,
                &[],
                now,
            );
            rows = stored_after(&rows, &c);
            notices.extend(c.notices);
        }
        let [fired, escalated] = notices.as_slice() else {
            panic!("{notices:?}")
        };
        assert_eq!((fired.event, fired.level), (Event::Fired, Level::Warning));
        assert_eq!(
            (escalated.event, escalated.level),
            (Event::Escalated, Level::Critical)
        );
        assert!(escalated.value.unwrap() <= 6.0);
        assert_eq!(fired.key.label, "/var");
        assert!(fired.message.contains("full in about"), "{}", fired.message);
        assert!(fired.message.contains("UTC"), "{}", fired.message);
    }
}
