//! Every metric hostwatch records: its name, unit, what its label is and what it measures, and
//! whether a threshold can be set on it — what `GET /metrics/catalog` lists and what the series
//! and threshold endpoints check names against.

use super::{HOST_METRICS, MetricSpec, URL_METRICS, text};

/// Whose metric it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Host,
    UrlCheck,
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub owner: Owner,
    pub unit: &'static str,
    /// What the label holds; empty for metrics of the whole host.
    pub label: &'static str,
    pub description: &'static str,
}

const fn host(
    name: &'static str,
    unit: &'static str,
    label: &'static str,
    description: &'static str,
) -> Entry {
    Entry {
        name,
        owner: Owner::Host,
        unit,
        label,
        description,
    }
}

/// Every metric, host metrics first.
pub const CATALOG: &[Entry] = &[
    host("cpu.usage_pct", "percent", "", "CPU busy, % of all cores"),
    host("cpu.iowait_pct", "percent", "", "CPU time waiting for I/O"),
    host(
        "cpu.steal_pct",
        "percent",
        "",
        "CPU time stolen by the hypervisor",
    ),
    host(
        "load.per_core",
        "ratio",
        "",
        "1-minute load average divided by the CPU count",
    ),
    host("load.one", "ratio", "", "1-minute load average"),
    host("load.five", "ratio", "", "5-minute load average"),
    host("load.fifteen", "ratio", "", "15-minute load average"),
    host(
        "memory.used_pct",
        "percent",
        "",
        "memory in use (total - available)",
    ),
    host("swap.used_pct", "percent", "", "swap in use"),
    host("uptime.seconds", "seconds", "", "time since boot"),
    host(
        "disk.used_pct",
        "percent",
        "mount point",
        "space used per mount",
    ),
    host(
        "disk.inodes_used_pct",
        "percent",
        "mount point",
        "inodes used per mount",
    ),
    host(
        text::DISK_HOURS_TO_FULL,
        "hours",
        "mount point",
        "hours until the mount is full at the rate of the recent window (least squares); \
         8760 when it is not filling",
    ),
    host(
        "disk.read_bytes_per_s",
        "bytes per second",
        "block device",
        "bytes read per second",
    ),
    host(
        "disk.write_bytes_per_s",
        "bytes per second",
        "block device",
        "bytes written per second",
    ),
    host(
        "net.rx_bytes_per_s",
        "bytes per second",
        "interface",
        "bytes received per second",
    ),
    host(
        "net.tx_bytes_per_s",
        "bytes per second",
        "interface",
        "bytes sent per second",
    ),
    host("gpu.util_pct", "percent", "GPU index", "GPU utilisation"),
    host(
        "gpu.memory_used_pct",
        "percent",
        "GPU index",
        "GPU memory used",
    ),
    host(
        "gpu.temperature_c",
        "degrees Celsius",
        "GPU index",
        "GPU temperature",
    ),
    host("gpu.power_w", "watts", "GPU index", "GPU power draw"),
    Entry {
        name: text::URL_RESPONSE_MS,
        owner: Owner::UrlCheck,
        unit: "milliseconds",
        label: "",
        description: "total response time of a URL check",
    },
    Entry {
        name: text::CERT_DAYS_LEFT,
        owner: Owner::UrlCheck,
        unit: "days",
        label: "certificate serial",
        description: "days until the served TLS certificate expires",
    },
];

/// The metric of `owner` named `name`.
pub fn find(owner: Owner, name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.owner == owner && e.name == name)
}

/// The threshold specification of a metric, when a threshold can be set on it.
pub fn threshold_spec(entry: &Entry) -> Option<&'static MetricSpec> {
    let specs = match entry.owner {
        Owner::Host => HOST_METRICS,
        Owner::UrlCheck => URL_METRICS,
    };
    specs.iter().find(|s| s.name == entry.name)
}

/// The names of `owner`'s metrics, for error messages.
pub fn names(owner: Owner) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|e| e.owner == owner)
        .map(|e| e.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threshold_metric_is_in_the_catalog() {
        for spec in HOST_METRICS {
            assert!(find(Owner::Host, spec.name).is_some(), "{}", spec.name);
        }
        for spec in URL_METRICS {
            assert!(find(Owner::UrlCheck, spec.name).is_some(), "{}", spec.name);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
