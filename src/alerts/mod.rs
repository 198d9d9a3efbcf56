//! Alerts: the metrics thresholds apply to and their defaults; the state machine of one alert
//! (`machine`); the evaluator that steps a subject's alerts with what was observed (`evaluate`);
//! which threshold applies (`rules`); silences and maintenance windows (`silence`,
//! `maintenance`); disk-full forecasts (`forecast`); every metric's description (`catalog`);
//! and what the notifications say (`text`).
//!
//! Pure: nothing here touches the database, SSH or the API.

pub mod catalog;
pub mod evaluate;
pub mod forecast;
pub mod machine;
pub mod maintenance;
pub mod rules;
pub mod silence;
pub mod text;

/// Which side of a threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Values above the level are bad (CPU %, temperature).
    Above,
    /// Values below the level are bad (certificate days left).
    Below,
}

/// A metric a threshold can be set on.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    /// Series name, as in `GET /metrics?name=`.
    pub name: &'static str,
    /// What it measures, for error messages and documentation.
    pub description: &'static str,
    pub direction: Direction,
    /// Defaults written when a host (or URL check) is created: `(warning, critical)`.
    pub defaults: Option<(f64, f64)>,
}

const fn spec(
    name: &'static str,
    description: &'static str,
    defaults: Option<(f64, f64)>,
) -> MetricSpec {
    MetricSpec {
        name,
        description,
        direction: Direction::Above,
        defaults,
    }
}

/// Metrics a host threshold can be set on. Those with defaults get a threshold at host creation.
pub const HOST_METRICS: &[MetricSpec] = &[
    spec(
        "cpu.usage_pct",
        "CPU busy, % of all cores",
        Some((80.0, 90.0)),
    ),
    spec("cpu.iowait_pct", "CPU time waiting for I/O, %", None),
    spec(
        "cpu.steal_pct",
        "CPU time stolen by the hypervisor, %",
        None,
    ),
    spec(
        "memory.used_pct",
        "memory in use (total - available), %",
        Some((80.0, 90.0)),
    ),
    spec("swap.used_pct", "swap in use, %", Some((50.0, 80.0))),
    spec(
        "disk.used_pct",
        "space used per mount, %",
        Some((85.0, 95.0)),
    ),
    spec("disk.inodes_used_pct", "inodes used per mount, %", None),
    spec(
        "load.per_core",
        "1-minute load average divided by the CPU count",
        None,
    ),
    spec("gpu.util_pct", "GPU utilisation per GPU, %", None),
    spec(
        "gpu.memory_used_pct",
        "GPU memory used per GPU, %",
        Some((90.0, 95.0)),
    ),
    spec(
        "gpu.temperature_c",
        "GPU temperature per GPU, °C",
        Some((85.0, 95.0)),
    ),
    MetricSpec {
        name: text::DISK_HOURS_TO_FULL,
        description: "hours until the mount is full at the rate of the recent window",
        direction: Direction::Below,
        defaults: Some((48.0, 6.0)),
    },
];

/// Metrics a URL-check threshold can be set on.
pub const URL_METRICS: &[MetricSpec] = &[
    spec(
        text::URL_RESPONSE_MS,
        "total response time, ms",
        Some((1000.0, 3000.0)),
    ),
    MetricSpec {
        name: text::CERT_DAYS_LEFT,
        description: "days until the TLS certificate expires",
        direction: Direction::Below,
        defaults: Some((14.0, 3.0)),
    },
];

/// Looks a host metric up by name.
pub fn host_metric(name: &str) -> Option<&'static MetricSpec> {
    HOST_METRICS.iter().find(|m| m.name == name)
}

/// Checks that a warning level comes before a critical level in the metric's direction.
pub fn check_levels(
    spec: &MetricSpec,
    warning: Option<f64>,
    critical: Option<f64>,
) -> Result<(), String> {
    for value in [warning, critical].into_iter().flatten() {
        if !value.is_finite() {
            return Err("levels must be finite numbers".into());
        }
    }
    if let (Some(w), Some(c)) = (warning, critical) {
        let ordered = match spec.direction {
            Direction::Above => w <= c,
            Direction::Below => w >= c,
        };
        if !ordered {
            let word = if spec.direction == Direction::Above {
                "above"
            } else {
                "below"
            };
            return Err(format!(
                "critical ({c}) must not be less severe than warning ({w}): {} alerts when \
                 the value is {word} the level",
                spec.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ordered() {
        for spec in HOST_METRICS.iter().chain(URL_METRICS) {
            if let Some((w, c)) = spec.defaults {
                check_levels(spec, Some(w), Some(c)).unwrap();
            }
        }
    }

    #[test]
    fn rejects_inverted_levels() {
        let cpu = host_metric("cpu.usage_pct").unwrap();
        assert!(check_levels(cpu, Some(95.0), Some(90.0)).is_err());
        assert!(check_levels(cpu, Some(f64::NAN), None).is_err());
        check_levels(cpu, None, Some(90.0)).unwrap();
        let cert = &URL_METRICS[1];
        assert!(check_levels(cert, Some(3.0), Some(14.0)).is_err());
    }
}
