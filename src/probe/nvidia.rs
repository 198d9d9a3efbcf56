//! `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`, one row per GPU.
//!
//! nvidia-smi writes `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `ERR!`, `N/A` or nothing for
//! a value it cannot read; each of those becomes "no value", never a number.

use serde::{Deserialize, Serialize};

/// The fields the probe asks for, in order.
pub const QUERY_FIELDS: &[&str] = &[
    "index",
    "uuid",
    "name",
    "driver_version",
    "temperature.gpu",
    "utilization.gpu",
    "utilization.memory",
    "memory.total",
    "memory.used",
    "memory.free",
    "power.draw",
    "power.limit",
    "fan.speed",
    "pstate",
    "clocks.sm",
];

const MIB: f64 = 1024.0 * 1024.0;

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Gpu {
    pub index: u32,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub driver_version: Option<String>,
    pub util_pct: Option<f64>,
    pub memory_util_pct: Option<f64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_used_pct: Option<f64>,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub fan_pct: Option<f64>,
    pub pstate: Option<String>,
    pub sm_clock_mhz: Option<f64>,
}

/// A value, or `None` for nvidia-smi's ways of saying it has none.
fn value(raw: &str) -> Option<&str> {
    let v = raw.trim();
    let missing = v.is_empty()
        || v.starts_with('[')
        || v.eq_ignore_ascii_case("N/A")
        || v.eq_ignore_ascii_case("ERR!")
        || v.eq_ignore_ascii_case("Unknown Error");
    (!missing).then_some(v)
}

fn number(raw: &str) -> Option<f64> {
    // Tolerate a unit if `nounits` was ignored (`81559 MiB`, `71.15 W`).
    let v = value(raw)?;
    let v = v.split_whitespace().next()?;
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Parses the CSV rows; rows without a readable index are skipped.
pub fn parse_nvidia(text: &str) -> Vec<Gpu> {
    let mut gpus = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != QUERY_FIELDS.len() {
            continue;
        }
        let Some(index) = value(cols[0]).and_then(|v| v.parse::<u32>().ok()) else {
            continue;
        };
        let text_at = |i: usize| value(cols[i]).map(str::to_owned);
        let total = number(cols[7]).filter(|v| *v >= 0.0);
        let used = number(cols[8]).filter(|v| *v >= 0.0);
        let pct = |i: usize| number(cols[i]).filter(|v| (0.0..=100.0).contains(v));
        gpus.push(Gpu {
            index,
            uuid: text_at(1),
            name: text_at(2),
            driver_version: text_at(3),
            temperature_c: number(cols[4]),
            util_pct: pct(5),
            memory_util_pct: pct(6),
            memory_total_bytes: total.map(|m| (m * MIB) as u64),
            memory_used_bytes: used.map(|m| (m * MIB) as u64),
            memory_used_pct: match (used, total) {
                (Some(u), Some(t)) if t > 0.0 => Some(u * 100.0 / t),
                _ => None,
            },
            power_w: number(cols[10]),
            power_limit_w: number(cols[11]),
            fan_pct: pct(12),
            pstate: text_at(13),
            sm_clock_mhz: number(cols[14]),
        });
    }
    gpus
}
