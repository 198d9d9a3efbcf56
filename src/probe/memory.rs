//! `/proc/meminfo`, `/proc/loadavg` and `/proc/uptime`.

use serde::{Deserialize, Serialize};

/// Memory figures in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Memory {
    pub total_bytes: u64,
    /// Memory available for new work without swapping (`MemAvailable`; estimated on kernels
    /// before 3.14 as MemFree + Buffers + Cached).
    pub available_bytes: u64,
    pub used_pct: f64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// `null` when the host has no swap.
    pub swap_used_pct: Option<f64>,
}

/// Parses meminfo. `None` without a usable MemTotal.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let mut get = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(value), Some("kB")) = (parts.next(), parts.next()) else {
            continue;
        };
        if let Ok(v) = value.parse::<u64>() {
            get.insert(key.trim(), v.saturating_mul(1024));
        }
    }
    let total = *get.get("MemTotal").filter(|t| **t > 0)?;
    let available = match get.get("MemAvailable") {
        Some(v) => *v,
        None => {
            let free = *get.get("MemFree")?;
            free + get.get("Buffers").copied().unwrap_or(0)
                + get.get("Cached").copied().unwrap_or(0)
        }
    }
    .min(total);
    let swap_total = get.get("SwapTotal").copied().unwrap_or(0);
    let swap_free = get
        .get("SwapFree")
        .copied()
        .unwrap_or(swap_total)
        .min(swap_total);
    let swap_used = swap_total - swap_free;
    Some(Memory {
        total_bytes: total,
        available_bytes: available,
        used_pct: (total - available) as f64 * 100.0 / total as f64,
        swap_total_bytes: swap_total,
        swap_used_bytes: swap_used,
        swap_used_pct: (swap_total > 0).then(|| swap_used as f64 * 100.0 / swap_total as f64),
    })
}

/// Load averages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Load {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// Parses `/proc/loadavg` (`0.02 0.04 0.05 1/497 11947`).
pub fn parse_loadavg(text: &str) -> Option<Load> {
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0));
    Some(Load {
        one: it.next()??,
        five: it.next()??,
        fifteen: it.next()??,
    })
}

/// Parses `/proc/uptime` into seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
}
