//! What notifications say: the title and message of every alert transition and status change,
//! in one place. Pure: names, values and rules in, text out.

use entity::types::UrlErrorKind;

use super::{
    Direction,
    machine::{Rule, Transition},
};

/// The URL-check metric of the response time.
pub const URL_RESPONSE_MS: &str = "url.response_ms";
/// The URL-check metric of a certificate's days left.
pub const CERT_DAYS_LEFT: &str = "cert.days_left";
/// The derived host metric of a mount's hours until full at its recent rate.
pub const DISK_HOURS_TO_FULL: &str = "disk.hours_to_full";

/// "after 1 poll", "after 3 consecutive polls".
pub fn after_polls(n: u32) -> String {
    if n <= 1 {
        "after 1 poll".to_owned()
    } else {
        format!("after {n} consecutive polls")
    }
}

/// The host or URL check a notification is about, as it names it.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub name: &'a str,
    pub place: Place<'a>,
}

/// Where a subject is, as messages show it.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    Address { address: &'a str, port: i32 },
    Url(&'a str),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address { address, port } => write!(f, "{address}:{port}"),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// A notification's words, and the value and threshold it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub title: String,
    pub message: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
}

/// A number as messages show it: whole numbers without decimals, others with one.
pub fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn comparison(direction: Direction) -> &'static str {
    match direction {
        Direction::Above => "≥",
        Direction::Below => "≤",
    }
}

/// A host threshold's transition.
pub fn threshold(
    host: Named<'_>,
    metric: &str,
    label: &str,
    rule: &Rule,
    value: Option<f64>,
    tr: Transition,
    now_ms: i64,
) -> Described {
    let name = host.name;
    let what = if label.is_empty() {
        metric.to_owned()
    } else {
        format!("{metric} {label}")
    };
    let level = tr.level();
    let threshold = rule.threshold(level);
    let cmp = comparison(rule.direction);
    let th = threshold.map(number).unwrap_or_default();
    let v = value.map(number).unwrap_or_default();
    let title = match tr {
        Transition::Fired(l) => format!("{name}: {what} is {l} ({v} {cmp} {th})"),
        Transition::Escalated { to, .. } => format!("{name}: {what} rose to {to} ({v} {cmp} {th})"),
        Transition::DeEscalated { to, .. } => format!("{name}: {what} is down to {to} ({v})"),
        Transition::Reminder(l) => format!("{name}: {what} is still {l} ({v} {cmp} {th})"),
        Transition::Resolved { from } => {
            format!("{name}: {what} is back to normal ({v}, was {from})")
        }
    };
    let mut message = format!(
        "{what} on {name} ({}) is {v}; {level} level {th} (hysteresis {}, fires {}). Event: {}.",
        host.place,
        number(rule.hysteresis),
        after_polls(rule.for_polls),
        tr.event()
    );
    if metric == DISK_HOURS_TO_FULL
        && tr.firing()
        && let Some(hours) = value
    {
        let full_at =
            chrono::DateTime::from_timestamp_millis(now_ms + (hours * 3_600_000.0) as i64)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
        message.push_str(&format!(
            " At the rate of the recent hours {label} is full in about {} hours, around {full_at}.",
            number(hours)
        ));
    }
    Described {
        title,
        message,
        value,
        threshold,
    }
}

/// `host_unreachable` fires.
pub fn unreachable(host: Named<'_>, failures: u32, after: u32, error: &str) -> Described {
    Described {
        title: format!("{} is unreachable", host.name),
        message: format!(
            "{} ({}) failed {failures} polls in a row; last error: {error}",
            host.name, host.place
        ),
        value: Some(f64::from(failures)),
        threshold: Some(f64::from(after)),
    }
}

/// `host_unreachable` resolves: a poll worked after `failures` failed ones.
pub fn reachable_again(host: Named<'_>, failures: u32) -> Described {
    Described {
        title: format!("{} is reachable again", host.name),
        message: format!(
            "{} ({}) answered a poll after {failures} failed ones.",
            host.name, host.place
        ),
        value: None,
        threshold: None,
    }
}

/// `url_status` fires (the check fails) or resolves.
pub fn url_status(
    check: Named<'_>,
    status: Option<u16>,
    response_ms: Option<i64>,
    error: Option<&(UrlErrorKind, String)>,
    failing: f64,
    tr: Transition,
) -> Described {
    let (title, message) = match (tr, error) {
        (Transition::Resolved { .. }, _) | (_, None) => (
            format!("{} is answering again", check.name),
            format!(
                "{} answered {} in {} ms.",
                check.place,
                status.map_or("-".into(), |s| s.to_string()),
                response_ms.unwrap_or(0)
            ),
        ),
        (_, Some((kind, error))) => (
            format!("{} is failing ({kind})", check.name),
            format!("{}: {error}", check.place),
        ),
    };
    Described {
        title,
        message,
        value: Some(failing),
        threshold: None,
    }
}

/// `url_latency` (the `url.response_ms` threshold) fires, changes level or resolves.
pub fn url_latency(check: Named<'_>, rule: &Rule, value: Option<f64>, tr: Transition) -> Described {
    let threshold = rule.threshold(tr.level());
    let v = value.map(number).unwrap_or_default();
    let title = if tr.firing() {
        format!("{} is slow: {v} ms ({})", check.name, tr.level())
    } else {
        format!("{} is fast again: {v} ms", check.name)
    };
    Described {
        title,
        message: format!(
            "{} answered in {v} ms; {} level {} ms. Event: {}.",
            check.place,
            tr.level(),
            threshold.map(number).unwrap_or_default(),
            tr.event()
        ),
        value,
        threshold,
    }
}

/// `cert_expiry` (the `cert.days_left` threshold of the certificate served) fires, changes
/// level or resolves.
pub fn cert_expiry(
    check: Named<'_>,
    serial: &str,
    days_left: f64,
    not_after_ms: i64,
    rule: &Rule,
    tr: Transition,
) -> Described {
    let threshold = rule.threshold(tr.level());
    let days = number(days_left);
    let title = if tr.firing() {
        format!(
            "{}: certificate expires in {days} days ({})",
            check.name,
            tr.level()
        )
    } else {
        format!(
            "{}: certificate expiry is no longer close ({days} days)",
            check.name
        )
    };
    let expires = chrono::DateTime::from_timestamp_millis(not_after_ms)
        .unwrap_or_default()
        .to_rfc3339();
    Described {
        title,
        message: format!(
            "{} serves certificate {serial}, valid until {expires}; {} level {} days. Event: {}.",
            check.place,
            tr.level(),
            threshold.map(number).unwrap_or_default(),
            tr.event()
        ),
        value: Some(days_left),
        threshold,
    }
}

/// A certificate's `cert_expiry` alert resolves because another certificate is served now.
pub fn cert_replaced(check: Named<'_>, serial: &str, last_days_left: Option<f64>) -> Described {
    Described {
        title: format!("{}: the expiring certificate was replaced", check.name),
        message: format!(
            "{} no longer serves the certificate with serial {serial}.",
            check.place
        ),
        value: last_days_left,
        threshold: None,
    }
}

/// A host status that is an alert of its own (`auth_failed`, `host_key_mismatch`), entered or
/// left, and enrollment failures.
pub mod status {
    use super::Place;

    /// The host presented another key than the pinned one.
    pub fn key_changed(
        name: &str,
        place: Place<'_>,
        host_id: i64,
        error: &str,
    ) -> (String, String) {
        (
            format!("Host key of {name} changed"),
            format!(
                "{name} ({place}) presented a different host key: {error}. Polls are refused \
                 until the key is re-trusted with POST /api/v1/hosts/{host_id}/host-key/trust."
            ),
        )
    }

    /// The host refused the login.
    pub fn login_refused(
        name: &str,
        place: Place<'_>,
        host_id: i64,
        reason: &str,
    ) -> (String, String) {
        (
            format!("Cannot log in to {name}"),
            format!(
                "{name} ({place}): {reason}. Replace the credentials with \
                 PATCH /api/v1/hosts/{host_id}."
            ),
        )
    }

    /// A poll worked again after the host's failure status.
    pub fn answered(name: &str, status: &str) -> (String, String) {
        (
            format!("{name} is reachable again"),
            format!("{name} answered a poll; its {status} status is cleared."),
        )
    }

    /// Enrollment worked after the host's failure status.
    pub fn enrolled(name: &str) -> (String, String) {
        (
            format!("{name} is reachable again"),
            format!("{name} was enrolled."),
        )
    }

    /// An enrollment worked after one that failed.
    pub fn enrollment_worked(name: &str) -> (String, String) {
        (
            format!("{name}: enrollment works again"),
            format!("{name} was enrolled; the failed enrollment before is resolved."),
        )
    }

    /// An operator trusted the key the host presents now.
    pub fn key_trusted(name: &str, fingerprint: &str) -> (String, String) {
        (
            format!("Host key of {name} trusted"),
            format!("The key {fingerprint} is now trusted for {name}; polls resume."),
        )
    }

    /// Provisioning the `hostwatch` user failed; the bootstrap login stays in use.
    pub fn provision_failed(
        name: &str,
        place: Place<'_>,
        host_id: i64,
        reason: &str,
    ) -> (String, String) {
        (
            format!("Provisioning of {name} failed"),
            format!(
                "{name} ({place}): {reason}. Polls go on with the bootstrap login; fix the host \
                 and retry with POST /api/v1/hosts/{host_id}/enroll."
            ),
        )
    }

    /// Provisioning completed after it had failed.
    pub fn provisioned(name: &str) -> (String, String) {
        (
            format!("{name} is provisioned"),
            format!("{name} is polled as the user hostwatch with the service's key now."),
        )
    }

    /// Enrollment failed.
    pub fn enrollment_failed(name: &str, place: Place<'_>, error: &str) -> (String, String) {
        (
            format!("Enrollment of {name} failed"),
            format!("{name} ({place}): {error}"),
        )
    }
}
