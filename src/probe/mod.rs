//! The probe: the script hostwatch runs on a host, and pure functions from its output to a
//! [`Snapshot`] of typed values.
//!
//! Pure: no I/O, no SSH, no database. Rates (CPU %, bytes/s) come from the difference with the
//! previous [`Counters`] of the same host; a counter that went backwards (reboot, wrap, device
//! replaced) gives no rate for that poll rather than a negative or huge one.

pub mod cpu;
pub mod df;
pub mod diskstats;
pub mod enrollment;
pub mod memory;
pub mod net;
pub mod nvidia;
pub mod osinfo;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::{Deserialize, Serialize};

pub use memory::{Load, Memory};
pub use nvidia::Gpu;

/// The probe script, sent to `sh -s` on the host.
pub const PROBE_SCRIPT: &str = include_str!("../../scripts/probe.sh");
/// The enrollment script.
pub const ENROLL_SCRIPT: &str = include_str!("../../scripts/enroll.sh");

/// The section each /proc file of the `procfs` section stands for.
const PROC_FILES: [(&str, &str); 7] = [
    ("/proc/stat", "stat"),
    ("/proc/meminfo", "meminfo"),
    ("/proc/loadavg", "loadavg"),
    ("/proc/uptime", "uptime"),
    ("/proc/net/dev", "net_dev"),
    ("/proc/diskstats", "diskstats"),
    ("/proc/mounts", "mounts"),
];

/// Splits output into sections: a line `<<<name>>>` starts one, running to the next. The
/// `procfs` section (head(1) over several files, each after a line `==> FILE <==`) is split into
/// one section per file, named as if each had its own marker.
pub fn split_sections(text: &str) -> HashMap<&str, &str> {
    let mut out = split_markers(text, "<<<", ">>>", Some);
    if let Some(proc) = out.remove("procfs") {
        let files = split_markers(proc, "==> ", " <==", |path| {
            PROC_FILES
                .iter()
                .find(|(file, _)| *file == path)
                .map(|(_, section)| *section)
        });
        out.extend(files);
    }
    out
}

/// Splits `text` at its marker lines: a line (without its line ending) that starts with `open`
/// and ends with `close`, whose middle `name` maps to a section name. Text before the first
/// marker is dropped.
///
/// Candidates are found by searching for the first character of `open` rather than by looking
/// at every line: a poll's output is a few kilobytes of short lines and a dozen markers.
fn split_markers<'a>(
    text: &'a str,
    open: &str,
    close: &str,
    name: impl Fn(&'a str) -> Option<&'a str>,
) -> HashMap<&'a str, &'a str> {
    let mut out = HashMap::new();
    let mut current: Option<(&str, usize)> = None;
    let mut from = 0;
    let first = open.chars().next().expect("a marker has an opening");
    while let Some(found) = text[from..].find(first) {
        let start = from + found;
        if !text[start..].starts_with(open) || (start > 0 && text.as_bytes()[start - 1] != b'\n') {
            from = start + first.len_utf8();
            continue;
        }
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |n| start + n + 1);
        from = end;
        let line = text[start..end].trim_end_matches(['\n', '\r']);
        let Some(section) = line
            .strip_prefix(open)
            .and_then(|rest| rest.strip_suffix(close))
            .and_then(&name)
        else {
            continue;
        };
        if let Some((prev, body)) = current.take() {
            out.insert(prev, &text[body..start]);
        }
        current = Some((section, end));
    }
    if let Some((prev, body)) = current {
        out.insert(prev, &text[body..]);
    }
    out
}

/// CPU figures of one poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct Cpu {
    /// Logical CPUs (cpuN lines).
    pub count: u32,
    /// Busy %, all CPUs; `null` on the first poll (a rate needs two readings).
    pub usage_pct: Option<f64>,
    pub iowait_pct: Option<f64>,
    pub steal_pct: Option<f64>,
    pub per_core: Vec<CoreUsage>,
}

/// One CPU's busy %.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct CoreUsage {
    pub core: u32,
    pub usage_pct: Option<f64>,
}

/// One mounted file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct Disk {
    pub mount: String,
    pub device: String,
    pub fs_type: Option<String>,
    pub total_bytes: u64,
    pub used_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// used / (used + available), as df computes it (reserved blocks excluded).
    pub used_pct: Option<f64>,
    pub inodes_used_pct: Option<f64>,
}

/// I/O rates of one block device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct DiskIo {
    pub device: String,
    pub read_bytes_per_s: Option<f64>,
    pub write_bytes_per_s: Option<f64>,
}

/// Traffic of one network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct NetIf {
    pub iface: String,
    pub rx_bytes_per_s: Option<f64>,
    pub tx_bytes_per_s: Option<f64>,
    /// Cumulative error counters.
    pub rx_errors: u64,
    pub tx_errors: u64,
}

/// Everything one poll learned about a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    /// The host's own clock when the probe ran.
    pub host_time: Option<DateTime<Utc>>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub load: Option<Load>,
    pub uptime_seconds: Option<f64>,
    pub disks: Vec<Disk>,
    pub disk_io: Vec<DiskIo>,
    pub network: Vec<NetIf>,
    pub gpus: Vec<Gpu>,
    /// Sections that were empty or unreadable on this host (their values are absent above).
    pub unavailable: Vec<String>,
}

/// The raw counters of one poll, kept to compute the next poll's rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub taken_at_ms: i64,
    pub uptime_seconds: Option<f64>,
    pub cpu: Option<cpu::CpuTimes>,
    pub cores: BTreeMap<u32, cpu::CpuTimes>,
    pub disks: BTreeMap<String, diskstats::DiskCounters>,
    pub nets: BTreeMap<String, net::NetCounters>,
}

fn per_second(prev: u64, now: u64, seconds: f64) -> Option<f64> {
    (now >= prev && seconds > 0.0).then(|| (now - prev) as f64 / seconds)
}

/// Counters older than this give no rates: an average over a long outage (of the host or of
/// hostwatch) would pass for a current rate.
pub const MAX_RATE_GAP_MS: i64 = 15 * 60 * 1000;

/// Builds the snapshot of one probe output taken at `now_ms`, with rates against `prev`.
pub fn build_snapshot(output: &str, prev: Option<&Counters>, now_ms: i64) -> (Snapshot, Counters) {
    let sections = split_sections(output);
    let section = |name: &str| sections.get(name).copied().unwrap_or("");
    let mut unavailable = Vec::new();

    let uptime_seconds = memory::parse_uptime(section("uptime"));
    // A reboot resets every counter: no rate from before it is meaningful.
    let previous_uptime = prev.and_then(|p| p.uptime_seconds);
    let rebooted = matches!((previous_uptime, uptime_seconds), (Some(a), Some(b)) if b < a);
    let prev = prev.filter(|p| {
        !rebooted && now_ms > p.taken_at_ms && now_ms - p.taken_at_ms <= MAX_RATE_GAP_MS
    });
    let elapsed = prev.map_or(0.0, |p| (now_ms - p.taken_at_ms) as f64 / 1000.0);

    let stat = cpu::parse_stat(section("stat"));
    let cpu = stat.total.map(|total| {
        let usage = prev
            .and_then(|p| p.cpu.as_ref())
            .and_then(|p| cpu::usage(p, &total));
        Cpu {
            count: stat.cores.len() as u32,
            usage_pct: usage.map(|u| u.usage_pct),
            iowait_pct: usage.map(|u| u.iowait_pct),
            steal_pct: usage.map(|u| u.steal_pct),
            per_core: stat
                .cores
                .iter()
                .map(|(n, t)| CoreUsage {
                    core: *n,
                    usage_pct: prev
                        .and_then(|p| p.cores.get(n))
                        .and_then(|p| cpu::usage(p, t))
                        .map(|u| u.usage_pct),
                })
                .collect(),
        }
    });

    let mounts = df::parse_mounts(section("mounts"));
    let inodes: HashMap<String, df::DfRow> = df::parse_df(section("df_inodes"))
        .into_iter()
        .map(|r| (r.mount.clone(), r))
        .collect();
    let disks: Vec<Disk> = df::parse_df(section("df"))
        .into_iter()
        .filter_map(|r| {
            let total = r.total.filter(|t| *t > 0)?;
            let pct = |used: Option<u64>, avail: Option<u64>| match (used, avail) {
                (Some(u), Some(a)) if u + a > 0 => Some(u as f64 * 100.0 / (u + a) as f64),
                _ => None,
            };
            let inode_row = inodes
                .get(&r.mount)
                .filter(|i| i.total.is_some_and(|t| t > 0));
            Some(Disk {
                fs_type: mounts.get(&r.mount).cloned(),
                used_pct: pct(r.used, r.available),
                inodes_used_pct: inode_row.and_then(|i| pct(i.used, i.available)),
                total_bytes: total,
                used_bytes: r.used,
                available_bytes: r.available,
                mount: r.mount,
                device: r.device,
            })
        })
        .collect();

    let disk_counters = diskstats::parse_diskstats(section("diskstats"));
    let disk_io = disk_counters
        .iter()
        .map(|(dev, now)| {
            let p = prev.and_then(|p| p.disks.get(dev));
            DiskIo {
                device: dev.clone(),
                read_bytes_per_s: p.and_then(|p| per_second(p.read_bytes, now.read_bytes, elapsed)),
                write_bytes_per_s: p
                    .and_then(|p| per_second(p.write_bytes, now.write_bytes, elapsed)),
            }
        })
        .collect();

    let net_counters = net::parse_net_dev(section("net_dev"));
    let network = net_counters
        .iter()
        .map(|(iface, now)| {
            let p = prev.and_then(|p| p.nets.get(iface));
            NetIf {
                iface: iface.clone(),
                rx_bytes_per_s: p.and_then(|p| per_second(p.rx_bytes, now.rx_bytes, elapsed)),
                tx_bytes_per_s: p.and_then(|p| per_second(p.tx_bytes, now.tx_bytes, elapsed)),
                rx_errors: now.rx_errors,
                tx_errors: now.tx_errors,
            }
        })
        .collect();

    let memory = memory::parse_meminfo(section("meminfo"));
    let load = memory::parse_loadavg(section("loadavg"));
    for (name, missing) in [
        ("stat", cpu.is_none()),
        ("meminfo", memory.is_none()),
        ("loadavg", load.is_none()),
        ("uptime", uptime_seconds.is_none()),
        ("net_dev", net_counters.is_empty()),
        ("diskstats", disk_counters.is_empty()),
        ("df", disks.is_empty()),
    ] {
        if missing {
            unavailable.push(name.to_owned());
        }
    }
    let host_time = section("time")
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0));

    let counters = Counters {
        taken_at_ms: now_ms,
        uptime_seconds,
        cpu: stat.total,
        cores: stat.cores,
        disks: disk_counters.into_iter().collect(),
        nets: net_counters.into_iter().collect(),
    };
    let snapshot = Snapshot {
        taken_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
        host_time,
        cpu,
        memory,
        load,
        uptime_seconds,
        disks,
        disk_io,
        network,
        gpus: nvidia::parse_nvidia(section("nvidia")),
        unavailable,
    };
    (snapshot, counters)
}

/// One value of a metric series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub name: &'static str,
    pub label: String,
    pub value: f64,
}

/// The metric series values of a snapshot (names as in `GET /metrics?name=`).
pub fn metric_values(s: &Snapshot) -> Vec<MetricValue> {
    let mut out = Vec::new();
    let mut push = |name: &'static str, label: &str, value: Option<f64>| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            out.push(MetricValue {
                name,
                label: label.to_owned(),
                value,
            });
        }
    };
    if let Some(cpu) = &s.cpu {
        push("cpu.usage_pct", "", cpu.usage_pct);
        push("cpu.iowait_pct", "", cpu.iowait_pct);
        push("cpu.steal_pct", "", cpu.steal_pct);
        if let (Some(load), true) = (&s.load, cpu.count > 0) {
            push("load.per_core", "", Some(load.one / f64::from(cpu.count)));
        }
    }
    if let Some(m) = &s.memory {
        push("memory.used_pct", "", Some(m.used_pct));
        push("swap.used_pct", "", m.swap_used_pct);
    }
    if let Some(l) = &s.load {
        push("load.one", "", Some(l.one));
        push("load.five", "", Some(l.five));
        push("load.fifteen", "", Some(l.fifteen));
    }
    push("uptime.seconds", "", s.uptime_seconds);
    for d in &s.disks {
        push("disk.used_pct", &d.mount, d.used_pct);
        push("disk.inodes_used_pct", &d.mount, d.inodes_used_pct);
    }
    for d in &s.disk_io {
        push("disk.read_bytes_per_s", &d.device, d.read_bytes_per_s);
        push("disk.write_bytes_per_s", &d.device, d.write_bytes_per_s);
    }
    for n in &s.network {
        push("net.rx_bytes_per_s", &n.iface, n.rx_bytes_per_s);
        push("net.tx_bytes_per_s", &n.iface, n.tx_bytes_per_s);
    }
    for g in &s.gpus {
        let label = g.index.to_string();
        push("gpu.util_pct", &label, g.util_pct);
        push("gpu.memory_used_pct", &label, g.memory_used_pct);
        push("gpu.temperature_c", &label, g.temperature_c);
        push("gpu.power_w", &label, g.power_w);
    }
    out
}

#[cfg(test)]
mod tests;
