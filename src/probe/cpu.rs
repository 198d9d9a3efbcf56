//! `/proc/stat` cpu lines: cumulative jiffies per CPU, and usage from two readings.
//!
//! Lines have 4 to 10 values depending on the kernel (iowait, irq, softirq from 2.6, steal from
//! 2.6.11, guest from 2.6.24, guest_nice from 2.6.33). `guest` and `guest_nice` are already
//! counted in `user` and `nice`, so they are not added again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Cumulative CPU time of one CPU (or all), in jiffies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// All time, busy or not.
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }

    /// Time not idle and not waiting for I/O.
    pub fn busy(&self) -> u64 {
        self.total() - self.idle - self.iowait
    }

    fn parse(values: &[&str]) -> Option<Self> {
        if values.len() < 4 {
            return None;
        }
        let mut n = [0u64; 8];
        for (slot, text) in n.iter_mut().zip(values) {
            *slot = text.parse().ok()?;
        }
        Some(Self {
            user: n[0],
            nice: n[1],
            system: n[2],
            idle: n[3],
            iowait: n[4],
            irq: n[5],
            softirq: n[6],
            steal: n[7],
        })
    }
}

/// The cpu lines of /proc/stat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuStat {
    /// The `cpu` line (all CPUs).
    pub total: Option<CpuTimes>,
    /// `cpuN` lines by N (offline CPUs have no line).
    pub cores: BTreeMap<u32, CpuTimes>,
}

/// Parses /proc/stat; lines other than cpu lines are ignored, broken lines skipped.
pub fn parse_stat(text: &str) -> CpuStat {
    let mut stat = CpuStat::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let Some(suffix) = name.strip_prefix("cpu") else {
            continue;
        };
        let values: Vec<&str> = fields.collect();
        let Some(times) = CpuTimes::parse(&values) else {
            continue;
        };
        if suffix.is_empty() {
            stat.total = Some(times);
        } else if let Ok(n) = suffix.parse::<u32>() {
            stat.cores.insert(n, times);
        }
    }
    stat
}

/// Percentages of one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsage {
    pub usage_pct: f64,
    pub iowait_pct: f64,
    pub steal_pct: f64,
}

/// Usage between two readings; `None` when any counter went backwards (reboot, CPU hot-plug)
/// or no time passed.
pub fn usage(prev: &CpuTimes, now: &CpuTimes) -> Option<CpuUsage> {
    let fields = |t: &CpuTimes| {
        [
            t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal,
        ]
    };
    if fields(now).iter().zip(fields(prev)).any(|(n, p)| *n < p) {
        return None;
    }
    let total = (now.total() - prev.total()) as f64;
    if total <= 0.0 {
        return None;
    }
    let pct = |d: u64| (d as f64 * 100.0 / total).clamp(0.0, 100.0);
    Some(CpuUsage {
        usage_pct: pct(now.busy() - prev.busy()),
        iowait_pct: pct(now.iowait - prev.iowait),
        steal_pct: pct(now.steal - prev.steal),
    })
}
