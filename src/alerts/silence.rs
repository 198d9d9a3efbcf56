//! Silence matchers, Alertmanager-style: each compares one fact of an alert (its host, a host
//! label, its check, kind, metric, label or level) for equality or against a regular
//! expression anchored at both ends; a silence selects an alert when all its matchers do.
//!
//! Pure: the caller gathers the facts and the silences in force.

use entity::types::{AlertKind, Level, MatchField, MatchOp};
use regex::Regex;

/// What an alert is, as matchers see it.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    /// The host's name; for a URL check, its host's (when attached).
    pub host: Option<&'a str>,
    pub host_labels: &'a [String],
    /// The URL check's name, for a URL check's alert.
    pub check: Option<&'a str>,
    pub kind: AlertKind,
    pub metric: &'a str,
    pub label: &'a str,
    pub level: Level,
}

/// One compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub field: MatchField,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

/// Longest value or pattern a matcher takes.
pub const MAX_VALUE_LEN: usize = 256;

impl Matcher {
    /// A matcher; `Err` says why the pattern is not a usable regular expression.
    pub fn new(field: MatchField, op: MatchOp, value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        if value.len() > MAX_VALUE_LEN {
            return Err(format!("at most {MAX_VALUE_LEN} characters"));
        }
        if field == MatchField::Level
            && matches!(op, MatchOp::Equal | MatchOp::NotEqual)
            && Level::parse(&value).is_none()
        {
            return Err(format!(
                "{value:?} is not a level; one of info, warning, critical"
            ));
        }
        if field == MatchField::Kind
            && matches!(op, MatchOp::Equal | MatchOp::NotEqual)
            && AlertKind::parse(&value).is_none()
        {
            return Err(format!("{value:?} is not an alert kind"));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 16)
                    .build()
                    .map_err(|e| format!("not a regular expression: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self {
            field,
            op,
            value,
            regex,
        })
    }

    fn test(&self, candidate: &str) -> bool {
        match (&self.regex, self.op) {
            (Some(re), _) => re.is_match(candidate),
            (None, _) => candidate == self.value,
        }
    }

    /// Whether the alert passes this matcher.
    pub fn matches(&self, a: &AlertFacts<'_>) -> bool {
        let positive = matches!(self.op, MatchOp::Equal | MatchOp::Regex);
        let hit = match self.field {
            MatchField::HostLabel => {
                // Any label satisfies a positive matcher; a negative one needs every label to
                // differ (a host without labels passes `not_equal`).
                return if positive {
                    a.host_labels.iter().any(|l| self.test(l))
                } else {
                    !a.host_labels.iter().any(|l| self.test(l))
                };
            }
            MatchField::Host => self.test(a.host.unwrap_or("")),
            MatchField::Check => self.test(a.check.unwrap_or("")),
            MatchField::Kind => self.test(a.kind.as_str()),
            MatchField::Metric => self.test(a.metric),
            MatchField::Label => self.test(a.label),
            MatchField::Level => self.test(a.level.as_str()),
        };
        hit == positive
    }
}

/// A silence as the matcher sees it: its id, matchers and when it is in force.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl Silence {
    /// Whether it is in force at `now_ms` (from its start, until before its end).
    pub fn active_at(&self, now_ms: i64) -> bool {
        self.starts_at <= now_ms && now_ms < self.ends_at
    }

    /// Whether it selects the alert (a silence without matchers selects nothing).
    pub fn selects(&self, a: &AlertFacts<'_>) -> bool {
        !self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(a))
    }
}

/// The first silence in force at `now_ms` that selects the alert.
pub fn silenced_by<'s>(
    silences: &'s [Silence],
    a: &AlertFacts<'_>,
    now_ms: i64,
) -> Option<&'s Silence> {
    silences
        .iter()
        .find(|s| s.active_at(now_ms) && s.selects(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(labels: &'a [String]) -> AlertFacts<'a> {
        AlertFacts {
            host: Some("web-1"),
            host_labels: labels,
            check: None,
            kind: AlertKind::Threshold,
            metric: "disk.used_pct",
            label: "/data",
            level: Level::Warning,
        }
    }

    fn m(field: MatchField, op: MatchOp, value: &str) -> Matcher {
        Matcher::new(field, op, value).unwrap()
    }

    #[test]
    fn equality_and_anchored_regexes() {
        let labels = vec!["env=prod".to_owned(), "role=web".to_owned()];
        let a = facts(&labels);
        assert!(m(MatchField::Host, MatchOp::Equal, "web-1").matches(&a));
        assert!(!m(MatchField::Host, MatchOp::Equal, "web").matches(&a));
        assert!(m(MatchField::Host, MatchOp::Regex, "web-.*").matches(&a));
        // Anchored: a pattern matching part of the name does not match it.
        assert!(!m(MatchField::Host, MatchOp::Regex, "web").matches(&a));
        assert!(m(MatchField::Host, MatchOp::NotRegex, "db-.*").matches(&a));
        assert!(m(MatchField::HostLabel, MatchOp::Equal, "env=prod").matches(&a));
        assert!(!m(MatchField::HostLabel, MatchOp::NotEqual, "env=prod").matches(&a));
        assert!(m(MatchField::HostLabel, MatchOp::NotEqual, "env=dev").matches(&a));
        assert!(m(MatchField::Level, MatchOp::Equal, "warning").matches(&a));
        assert!(m(MatchField::Metric, MatchOp::Regex, "disk\\..*").matches(&a));
        assert!(m(MatchField::Label, MatchOp::Equal, "/data").matches(&a));
        assert!(!m(MatchField::Check, MatchOp::Regex, ".+").matches(&a));
    }

    #[test]
    fn bad_matchers_are_refused_with_a_reason() {
        assert!(
            Matcher::new(MatchField::Host, MatchOp::Regex, "(")
                .unwrap_err()
                .contains("regular expression")
        );
        assert!(Matcher::new(MatchField::Level, MatchOp::Equal, "loud").is_err());
        assert!(Matcher::new(MatchField::Kind, MatchOp::Equal, "nope").is_err());
        assert!(Matcher::new(MatchField::Host, MatchOp::Equal, "x".repeat(300)).is_err());
    }

    #[test]
    fn a_silence_needs_every_matcher_and_its_time() {
        let labels = vec!["env=prod".to_owned()];
        let a = facts(&labels);
        let s = Silence {
            id: 7,
            matchers: vec![
                m(MatchField::HostLabel, MatchOp::Equal, "env=prod"),
                m(MatchField::Metric, MatchOp::Equal, "disk.used_pct"),
            ],
            starts_at: 1_000,
            ends_at: 2_000,
        };
        assert!(silenced_by(std::slice::from_ref(&s), &a, 999).is_none());
        assert_eq!(
            silenced_by(std::slice::from_ref(&s), &a, 1_000).unwrap().id,
            7
        );
        assert!(silenced_by(std::slice::from_ref(&s), &a, 2_000).is_none());
        let other = Silence {
            matchers: vec![m(MatchField::Metric, MatchOp::Equal, "cpu.usage_pct")],
            ..s.clone()
        };
        assert!(!other.selects(&a));
        let empty = Silence {
            matchers: vec![],
            ..s
        };
        assert!(!empty.selects(&a));
    }
}
