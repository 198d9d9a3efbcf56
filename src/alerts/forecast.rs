//! Disk-full forecasts: per mount, the hours until it is full at the rate of the recent window,
//! from a least-squares line through the used bytes of the last polls (Prometheus's
//! `predict_linear`, kept per host in memory: a restart starts each trend afresh).
//!
//! A mount that is not filling reports [`NOT_FILLING_HOURS`] rather than nothing, so an alert
//! it had resolves. Pure: the caller passes the time and the mounts.

use std::collections::{HashMap, VecDeque};

use super::text::DISK_HOURS_TO_FULL;
use crate::probe::MetricValue;

/// What a mount that is not filling (or fills slower than this) reports: a year.
pub const NOT_FILLING_HOURS: f64 = 24.0 * 365.0;
/// Points kept per mount over the window.
const POINTS: i64 = 24;
/// The share of the window the points must span before a forecast is made.
const MIN_SPAN_SHARE: i64 = 4;

/// One mount's recent used bytes.
#[derive(Debug, Clone, Default)]
struct Series {
    /// (time ms, used bytes)
    points: VecDeque<(i64, f64)>,
}

/// The trends of one host's mounts.
#[derive(Debug, Clone)]
pub struct DiskTrend {
    window_ms: i64,
    mounts: HashMap<String, Series>,
}

/// A mount as the trend sees it.
#[derive(Debug, Clone, Copy)]
pub struct MountUse<'a> {
    pub mount: &'a str,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

impl DiskTrend {
    pub fn new(window: std::time::Duration) -> Self {
        Self {
            window_ms: (window.as_millis() as i64).max(POINTS),
            mounts: HashMap::new(),
        }
    }

    /// Records the poll's mounts and returns each forecast that can be made: one value per
    /// mount whose points span enough of the window.
    pub fn observe<'a>(
        &mut self,
        now_ms: i64,
        mounts: impl IntoIterator<Item = MountUse<'a>>,
    ) -> Vec<MetricValue> {
        let spacing = self.window_ms / POINTS;
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for m in mounts {
            seen.push(m.mount.to_owned());
            let series = self.mounts.entry(m.mount.to_owned()).or_default();
            let due = series
                .points
                .back()
                .is_none_or(|(t, _)| now_ms - t >= spacing || now_ms < *t);
            if due {
                series.points.push_back((now_ms, m.used_bytes as f64));
            }
            while series
                .points
                .front()
                .is_some_and(|(t, _)| now_ms - t > self.window_ms || *t > now_ms)
            {
                series.points.pop_front();
            }
            if let Some(hours) = hours_to_full(
                &series.points,
                m.available_bytes as f64,
                self.window_ms / MIN_SPAN_SHARE,
            ) {
                out.push(MetricValue {
                    name: DISK_HOURS_TO_FULL,
                    label: m.mount.to_owned(),
                    value: hours,
                });
            }
        }
        self.mounts.retain(|k, _| seen.contains(k));
        out
    }
}

/// Hours until `available` bytes are used at the least-squares rate of `points`, once they
/// span `min_span_ms`; [`NOT_FILLING_HOURS`] at most.
fn hours_to_full(points: &VecDeque<(i64, f64)>, available: f64, min_span_ms: i64) -> Option<f64> {
    let (first, last) = (points.front()?, points.back()?);
    if points.len() < 3 || last.0 - first.0 < min_span_ms {
        return None;
    }
    let n = points.len() as f64;
    let t0 = first.0;
    let mean_t = points.iter().map(|(t, _)| (t - t0) as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, y) in points {
        let dt = (t - t0) as f64 - mean_t;
        cov += dt * (y - mean_y);
        var += dt * dt;
    }
    if var <= 0.0 {
        return None;
    }
    let bytes_per_ms = cov / var;
    if bytes_per_ms <= 0.0 {
        return Some(NOT_FILLING_HOURS);
    }
    let hours = available / bytes_per_ms / 3_600_000.0;
    Some(hours.clamp(0.0, NOT_FILLING_HOURS))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn root(used: u64, total: u64) -> MountUse<'static> {
        MountUse {
            mount: "/",
            used_bytes: used,
            available_bytes: total - used,
        }
    }

    #[test]
    fn a_filling_disk_forecasts_when_it_is_full() {
        // 6 h window; 1 GiB written per hour onto a 100 GiB disk that has 20 GiB left.
        let mut trend = DiskTrend::new(std::time::Duration::from_secs(6 * 3600));
        let mut last = Vec::new();
        for minute in 0..=180 {
            let used = 80 * GIB + minute * GIB / 60;
            last = trend.observe(minute as i64 * 60_000, [root(used, 100 * GIB)]);
            if minute < 90 {
                // Not yet a quarter of the window: no forecast.
                assert!(last.is_empty(), "minute {minute}: {last:?}");
            }
        }
        let [v] = last.as_slice() else {
            panic!("{last:?}")
        };
        assert_eq!((v.name, v.label.as_str()), (DISK_HOURS_TO_FULL, "/"));
        // 17 GiB left at 1 GiB/h.
        assert!((v.value - 17.0).abs() < 0.2, "{}", v.value);
    }

    #[test]
    fn a_steady_or_shrinking_disk_is_not_filling_and_gone_mounts_are_forgotten() {
        let mut trend = DiskTrend::new(std::time::Duration::from_secs(3600));
        let mut last = Vec::new();
        for minute in 0..=60u64 {
            let used = 50 * GIB - minute * GIB / 100;
            last = trend.observe(minute as i64 * 60_000, [root(used, 100 * GIB)]);
        }
        assert_eq!(last[0].value, NOT_FILLING_HOURS);
        assert!(trend.observe(61 * 60_000, []).is_empty());
        assert!(trend.mounts.is_empty());
    }

    #[test]
    fn points_are_spaced_and_bounded_by_the_window() {
        let mut trend = DiskTrend::new(std::time::Duration::from_secs(2400));
        for second in 0..10_000 {
            trend.observe(second * 1000, [root(GIB, 2 * GIB)]);
        }
        let points = &trend.mounts["/"].points;
        assert!(points.len() as i64 <= POINTS + 1, "{}", points.len());
    }
}
