//! Which threshold applies to a host's metric and label: the host's own, else the most
//! specific fleet-wide rule its labels select, else the built-in default. Within each of those
//! a threshold about the one label (a mount, a GPU index, an interface) comes before one about
//! every label.
//!
//! Pseudo filesystems (tmpfs, proc, cgroup, …) get no disk threshold unless one names their
//! mount.
//!
//! Pure: the caller reads the host's thresholds, labels and the rules.

use entity::types::ThresholdSource;

use super::{MetricSpec, evaluate::ThresholdRule, machine::Rule};

/// The settings of one threshold, wherever it is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub for_polls: i32,
    pub hysteresis: f64,
    pub repeat_seconds: Option<i32>,
    pub enabled: bool,
}

/// A threshold set on a host or a fleet rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub metric: String,
    /// Empty for every label.
    pub label: String,
    pub levels: Levels,
    pub source: ThresholdSource,
    /// For a rule: its id, name and selector.
    pub rule: Option<RuleRef>,
}

/// The fleet rule a threshold comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRef {
    pub id: i64,
    pub name: String,
    pub selector: Vec<String>,
}

impl Candidate {
    /// Whether this rule's selector takes the host: it carries every label of it.
    fn selects(&self, host_labels: &[String]) -> bool {
        self.rule
            .as_ref()
            .is_none_or(|r| r.selector.iter().all(|l| host_labels.contains(l)))
    }

    /// Higher wins: the source first (host, rule, default), then a label of its own, then for
    /// rules the longer selector, then the older rule.
    fn rank(&self) -> (u8, bool, usize, i64) {
        let source = match self.source {
            ThresholdSource::Host => 2,
            ThresholdSource::Rule => 1,
            ThresholdSource::Default => 0,
        };
        let (len, id) = self
            .rule
            .as_ref()
            .map_or((0, 0), |r| (r.selector.len(), -r.id));
        (source, !self.label.is_empty(), len, id)
    }
}

/// The built-in defaults of `catalog` as candidates.
pub fn defaults(catalog: &[MetricSpec], for_polls: i32, hysteresis: f64) -> Vec<Candidate> {
    catalog
        .iter()
        .filter_map(|spec| {
            let (warning, critical) = spec.defaults?;
            Some(Candidate {
                metric: spec.name.to_owned(),
                label: String::new(),
                levels: Levels {
                    warning: Some(warning),
                    critical: Some(critical),
                    for_polls,
                    hysteresis,
                    repeat_seconds: None,
                    enabled: true,
                },
                source: ThresholdSource::Default,
                rule: None,
            })
        })
        .collect()
}

/// The threshold in force for each (metric, label) that has one of its own, and for each
/// metric's every label: the winners among `candidates` that apply to a host with
/// `host_labels`, ordered by metric then label.
pub fn effective(candidates: &[Candidate], host_labels: &[String]) -> Vec<Candidate> {
    use std::collections::BTreeMap;
    let applicable: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.selects(host_labels))
        .collect();
    let mut keys: BTreeMap<(&str, &str), ()> = BTreeMap::new();
    for c in &applicable {
        keys.insert((c.metric.as_str(), ""), ());
        keys.insert((c.metric.as_str(), c.label.as_str()), ());
    }
    let mut out = Vec::new();
    for (metric, label) in keys.into_keys() {
        // For a label: a threshold about it or about every label; for every label: only the
        // latter.
        let winner = applicable
            .iter()
            .filter(|c| c.metric == metric && (c.label.is_empty() || c.label == label))
            .max_by_key(|c| c.rank());
        if let Some(w) = winner
            && (label.is_empty() || w.label == label)
        {
            out.push((*w).clone());
        }
    }
    out
}

/// The evaluator's rules from the effective thresholds (a metric not in `catalog` is left out).
pub fn to_rules(effective: &[Candidate], catalog: &[MetricSpec]) -> Vec<ThresholdRule> {
    effective
        .iter()
        .filter_map(|c| {
            let spec = catalog.iter().find(|m| m.name == c.metric)?;
            let l = &c.levels;
            Some(ThresholdRule {
                metric: c.metric.clone(),
                label: c.label.clone(),
                rule: Rule {
                    warning: l.warning,
                    critical: l.critical,
                    direction: spec.direction,
                    for_polls: l.for_polls.max(1) as u32,
                    hysteresis: l.hysteresis,
                    repeat_seconds: l.repeat_seconds.map(|r| r.max(0) as u32),
                    enabled: l.enabled,
                },
            })
        })
        .collect()
}

/// Filesystem types that are not disks, left out of disk thresholds by default.
pub const PSEUDO_FILESYSTEMS: &[&str] = &[
    "tmpfs",
    "devtmpfs",
    "devpts",
    "overlay",
    "squashfs",
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "ramfs",
    "securityfs",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "pstore",
    "bpf",
    "autofs",
    "efivarfs",
    "nsfs",
    "rpc_pipefs",
    "binfmt_misc",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::HOST_METRICS;

    fn levels(w: f64, c: f64) -> Levels {
        Levels {
            warning: Some(w),
            critical: Some(c),
            for_polls: 1,
            hysteresis: 5.0,
            repeat_seconds: None,
            enabled: true,
        }
    }

    fn rule(id: i64, selector: &[&str], metric: &str, label: &str, w: f64, c: f64) -> Candidate {
        Candidate {
            metric: metric.into(),
            label: label.into(),
            levels: levels(w, c),
            source: ThresholdSource::Rule,
            rule: Some(RuleRef {
                id,
                name: format!("r{id}"),
                selector: selector.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    fn own(metric: &str, label: &str, w: f64, c: f64) -> Candidate {
        Candidate {
            metric: metric.into(),
            label: label.into(),
            levels: levels(w, c),
            source: ThresholdSource::Host,
            rule: None,
        }
    }

    fn find<'a>(e: &'a [Candidate], metric: &str, label: &str) -> Option<&'a Candidate> {
        e.iter().find(|c| c.metric == metric && c.label == label)
    }

    #[test]
    fn host_beats_the_most_specific_rule_which_beats_the_default() {
        let mut all = defaults(HOST_METRICS, 1, 5.0);
        all.push(rule(1, &["env=prod"], "disk.used_pct", "", 80.0, 90.0));
        all.push(rule(
            2,
            &["env=prod", "role=db"],
            "disk.used_pct",
            "",
            70.0,
            85.0,
        ));
        all.push(rule(3, &["env=prod"], "disk.used_pct", "/data", 95.0, 98.0));
        let prod: Vec<String> = vec!["env=prod".into()];
        let e = effective(&all, &prod);
        let disk = find(&e, "disk.used_pct", "").unwrap();
        assert_eq!(disk.rule.as_ref().unwrap().id, 1);
        let data = find(&e, "disk.used_pct", "/data").unwrap();
        assert_eq!(data.levels.warning, Some(95.0));
        // Without the labels, the default.
        let e = effective(&all, &[]);
        let disk = find(&e, "disk.used_pct", "").unwrap();
        assert_eq!(disk.source, ThresholdSource::Default);
        assert!(find(&e, "disk.used_pct", "/data").is_none());
        // Two labels selected: the longer selector wins.
        let db: Vec<String> = vec!["env=prod".into(), "role=db".into()];
        let e = effective(&all, &db);
        assert_eq!(
            find(&e, "disk.used_pct", "")
                .unwrap()
                .rule
                .as_ref()
                .unwrap()
                .id,
            2
        );
        // The host's own threshold wins over every rule, and its every-label threshold hides
        // a rule's label one.
        all.push(own("disk.used_pct", "", 60.0, 70.0));
        let e = effective(&all, &prod);
        assert_eq!(
            find(&e, "disk.used_pct", "").unwrap().source,
            ThresholdSource::Host
        );
        assert!(find(&e, "disk.used_pct", "/data").is_none());
        all.push(own("disk.used_pct", "/boot", 99.0, 99.5));
        let e = effective(&all, &prod);
        assert_eq!(
            find(&e, "disk.used_pct", "/boot").unwrap().levels.warning,
            Some(99.0)
        );
        let rules = to_rules(&e, HOST_METRICS);
        assert!(
            rules
                .iter()
                .any(|r| r.metric == "disk.used_pct" && r.label == "/boot")
        );
    }

    #[test]
    fn an_exclusion_is_a_disabled_label_threshold() {
        let mut all = defaults(HOST_METRICS, 1, 5.0);
        let mut off = rule(4, &[], "disk.used_pct", "/scratch", 0.0, 0.0);
        off.levels.enabled = false;
        all.push(off);
        let e = effective(&all, &[]);
        assert!(
            !find(&e, "disk.used_pct", "/scratch")
                .unwrap()
                .levels
                .enabled
        );
        assert!(find(&e, "disk.used_pct", "").unwrap().levels.enabled);
    }
}
