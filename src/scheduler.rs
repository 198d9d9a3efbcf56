//! Schedules: 6-field cron expressions (with seconds), validated with the exact parser and
//! settings tokio-cron-scheduler uses, so a schedule the API accepts is one the scheduler runs.
//! (The `cron` crate numbers weekdays differently and would accept other strings.)

use croner::parser::{CronParser, Seconds};

/// Checks that `schedule` is a 6-field cron expression the scheduler accepts.
pub fn validate_schedule(schedule: &str) -> Result<(), String> {
    let fields = schedule.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "expected 6 fields (second minute hour day-of-month month day-of-week), got {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(schedule)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The default schedule, every 60 s, at a second of the minute derived from `seed` (the name),
/// so that a fleet registered with defaults does not fire in the same second.
pub fn default_schedule(seed: &str) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{} * * * * *", hash % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_six_fields() {
        validate_schedule("*/10 * * * * *").unwrap();
        validate_schedule("0 0 * * * MON-FRI").unwrap();
        validate_schedule(&default_schedule("web-1")).unwrap();
    }

    #[test]
    fn rejects_with_reason() {
        assert!(
            validate_schedule("* * * * *")
                .unwrap_err()
                .contains("6 fields")
        );
        assert!(validate_schedule("61 * * * * *").is_err());
        assert!(validate_schedule("a b c d e f").is_err());
    }

    #[test]
    fn default_spreads_seconds() {
        let seconds: std::collections::HashSet<_> = (0..100)
            .map(|i| default_schedule(&format!("host-{i}")))
            .collect();
        assert!(
            seconds.len() > 30,
            "only {} distinct seconds",
            seconds.len()
        );
    }
}
