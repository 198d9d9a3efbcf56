//! The tiers history is kept in — raw polls, then 1-minute, 10-minute and 1-hour buckets — and
//! which tier and step answer a query: pure arithmetic, no I/O.
//!
//! A chart asks for a range and gets at most [`POINT_BUDGET`] points a series: a day is 1,440
//! one-minute buckets, a week 1,008 ten-minute ones, a month 720 hours. The step is a "nice"
//! width from a short ladder; the tier is the coarsest one whose buckets tile the step exactly
//! (so an average over a step is the average of its polls, not of averages of uneven parts)
//! and whose retention still reaches back to the range's start.

use std::time::Duration;

/// Where a series' values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Each poll's values.
    Raw,
    Minute,
    TenMinutes,
    Hour,
}

impl Tier {
    /// The rollup tiers, finest first: each is built from the one before it (the first from raw
    /// polls).
    pub const ROLLUPS: [Tier; 3] = [Tier::Minute, Tier::TenMinutes, Tier::Hour];

    /// Bucket width; raw polls have none (1 ms, which divides every step).
    pub fn width_ms(self) -> i64 {
        match self {
            Tier::Raw => 1,
            Tier::Minute => 60_000,
            Tier::TenMinutes => 600_000,
            Tier::Hour => 3_600_000,
        }
    }

    /// As the API names it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::Minute => "1m",
            Tier::TenMinutes => "10m",
            Tier::Hour => "1h",
        }
    }

    /// The tier it is built from; `None` for raw polls.
    pub fn finer(self) -> Option<Tier> {
        match self {
            Tier::Raw => None,
            Tier::Minute => Some(Tier::Raw),
            Tier::TenMinutes => Some(Tier::Minute),
            Tier::Hour => Some(Tier::TenMinutes),
        }
    }

    /// The tier built from it.
    pub fn coarser(self) -> Option<Tier> {
        match self {
            Tier::Raw => Some(Tier::Minute),
            Tier::Minute => Some(Tier::TenMinutes),
            Tier::TenMinutes => Some(Tier::Hour),
            Tier::Hour => None,
        }
    }

    /// The start of the bucket holding `ts`.
    pub fn bucket(self, ts: i64) -> i64 {
        floor(ts, self.width_ms())
    }
}

/// `ts` rounded down to a multiple of `width`.
pub fn floor(ts: i64, width: i64) -> i64 {
    ts - ts.rem_euclid(width.max(1))
}

/// How long each tier is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub ten_minutes: Duration,
    pub hour: Duration,
    /// URL-check results (one row a run, with its response time).
    pub url_results: Duration,
}

impl Default for Retention {
    /// Raw polls two days (an incident's detail), minutes eight days (a week's charts at full
    /// detail), ten minutes five weeks (a month at 1,008 points a week), hours 400 days (a year
    /// against the last); URL-check results 30 days (one row a run).
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            raw: Duration::from_secs(2 * DAY),
            minute: Duration::from_secs(8 * DAY),
            ten_minutes: Duration::from_secs(35 * DAY),
            hour: Duration::from_secs(400 * DAY),
            url_results: Duration::from_secs(30 * DAY),
        }
    }
}

impl Retention {
    pub fn of(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Raw => self.raw,
            Tier::Minute => self.minute,
            Tier::TenMinutes => self.ten_minutes,
            Tier::Hour => self.hour,
        }
    }

    /// Whether `tier` still holds values from `from_ms` when it is `now_ms`.
    fn reaches(&self, tier: Tier, from_ms: i64, now_ms: i64) -> bool {
        from_ms >= now_ms - self.of(tier).as_millis() as i64
    }
}

/// Most points a `step=auto` series gets.
pub const POINT_BUDGET: i64 = 1_500;
/// Most points a series with an explicit step may ask for.
pub const MAX_POINTS: i64 = 20_000;

/// The longest step (the longest retention's default).
const MAX_STEP_MS: i64 = 400 * 86_400_000;

/// Auto steps, in seconds: each divides the next tier's width or is a multiple of it.
const LADDER_S: [i64; 8] = [10, 30, 60, 300, 600, 3_600, 21_600, 86_400];

/// What a query asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Fit the range in [`POINT_BUDGET`] points.
    Auto,
    /// This width, in milliseconds.
    Fixed(i64),
}

/// Reads `auto`, or a width such as `60s`, `10m`, `1h`, `1d` (a bare number is seconds).
pub fn parse_step(text: &str) -> Result<Step, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(Step::Auto);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not `auto` or a width such as 60s, 10m, 1h"))?;
    let unit_ms = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    match number.checked_mul(unit_ms) {
        Some(ms) if ms < 1_000 => Err(format!("{text:?}: the step must be at least 1s")),
        Some(ms) if ms <= MAX_STEP_MS => Ok(Step::Fixed(ms)),
        _ => Err(format!("{text:?}: the step must be at most 400d")),
    }
}

/// How a series query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The coarsest tier read; the part of the range it has no buckets for yet (the current
    /// hour, say) comes from the finer tiers.
    pub tier: Tier,
    pub step_ms: i64,
    /// The range's start rounded down to a step: the first bucket is a whole one.
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The tier and step for `[from_ms, to_ms]` asked for at `now_ms`.
pub fn plan(
    from_ms: i64,
    to_ms: i64,
    step: Step,
    now_ms: i64,
    retention: &Retention,
) -> Result<Plan, String> {
    let range = (to_ms - from_ms).max(1);
    let mut step_ms = match step {
        Step::Auto => {
            let want = (range + POINT_BUDGET - 1) / POINT_BUDGET;
            LADDER_S
                .iter()
                .map(|s| s * 1_000)
                .find(|s| *s >= want)
                .unwrap_or_else(|| {
                    let day = 86_400_000;
                    (want + day - 1) / day * day
                })
        }
        Step::Fixed(ms) => {
            let points = range / ms;
            if points > MAX_POINTS {
                return Err(format!(
                    "a step of {} s gives {points} points over this range; at most {MAX_POINTS}",
                    ms / 1_000
                ));
            }
            ms
        }
    };
    let coarsest_first = [Tier::Hour, Tier::TenMinutes, Tier::Minute, Tier::Raw];
    let tier = coarsest_first
        .into_iter()
        .find(|t| {
            t.width_ms() <= step_ms
                && step_ms % t.width_ms() == 0
                && retention.reaches(*t, from_ms, now_ms)
        })
        .unwrap_or_else(|| {
            // No tier that tiles the step reaches back that far: the finest one that does, at
            // its own width (an hour's buckets for a range a year back).
            let tier = coarsest_first
                .into_iter()
                .rev()
                .find(|t| retention.reaches(*t, from_ms, now_ms))
                .unwrap_or(Tier::Hour);
            let width = tier.width_ms();
            step_ms = (step_ms + width - 1) / width * width;
            tier
        });
    Ok(Plan {
        tier,
        step_ms,
        from_ms: floor(from_ms, step_ms),
        to_ms,
    })
}

/// The tier a fleet-wide question over `[from_ms, to_ms]` reads: the coarsest one with at
/// least four buckets in the range that still reaches back to its start. The range is widened
/// to that tier's whole buckets.
pub fn top_tier(from_ms: i64, to_ms: i64, now_ms: i64, retention: &Retention) -> Tier {
    let range = to_ms - from_ms;
    [Tier::Hour, Tier::TenMinutes, Tier::Minute]
        .into_iter()
        .find(|t| t.width_ms() * 4 <= range && retention.reaches(*t, from_ms, now_ms))
        .unwrap_or(if retention.reaches(Tier::Raw, from_ms, now_ms) {
            Tier::Raw
        } else {
            Tier::Hour
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const H: i64 = 3_600_000;

    fn auto(range_ms: i64) -> Plan {
        plan(NOW - range_ms, NOW, Step::Auto, NOW, &Retention::default()).unwrap()
    }

    #[test]
    fn auto_picks_the_coarsest_tier_that_fits_the_budget() {
        let hour = auto(H);
        assert_eq!((hour.tier, hour.step_ms), (Tier::Raw, 10_000));
        let day = auto(24 * H);
        assert_eq!((day.tier, day.step_ms), (Tier::Minute, 60_000));
        assert!((24 * H) / day.step_ms <= POINT_BUDGET);
        let week = auto(7 * 24 * H);
        assert_eq!((week.tier, week.step_ms), (Tier::TenMinutes, 600_000));
        let month = auto(30 * 24 * H);
        assert_eq!((month.tier, month.step_ms), (Tier::Hour, H));
        assert_eq!(month.from_ms % H, 0, "the first bucket is a whole one");
        let year = auto(365 * 24 * H);
        assert_eq!((year.tier, year.step_ms), (Tier::Hour, 6 * H));
        assert!(year.step_ms % Tier::Hour.width_ms() == 0);
    }

    #[test]
    fn a_tier_past_its_retention_is_not_read() {
        let r = Retention::default();
        // Three days back at 1 minute: raw polls are gone, minutes are not.
        let p = plan(NOW - 72 * H, NOW - 71 * H, Step::Fixed(60_000), NOW, &r).unwrap();
        assert_eq!(p.tier, Tier::Minute);
        // Ten seconds three days back: no tier holds that; minutes it is.
        let p = plan(NOW - 72 * H, NOW - 71 * H, Step::Fixed(10_000), NOW, &r).unwrap();
        assert_eq!((p.tier, p.step_ms), (Tier::Minute, 60_000));
        // Two months back at 10 minutes: only hours reach.
        let p = plan(
            NOW - 1500 * H,
            NOW - 1490 * H,
            Step::Fixed(600_000),
            NOW,
            &r,
        )
        .unwrap();
        assert_eq!((p.tier, p.step_ms), (Tier::Hour, H));
        // A step the minute tier does not tile (90 s) is read from raw polls while they last.
        let p = plan(NOW - H, NOW, Step::Fixed(90_000), NOW, &r).unwrap();
        assert_eq!(p.tier, Tier::Raw);
    }

    #[test]
    fn fixed_steps_are_bounded() {
        let r = Retention::default();
        assert!(plan(NOW - 30 * 24 * H, NOW, Step::Fixed(10_000), NOW, &r).is_err());
        assert!(plan(NOW - 24 * H, NOW, Step::Fixed(10_000), NOW, &r).is_ok());
    }

    #[test]
    fn steps_parse() {
        assert_eq!(parse_step("auto"), Ok(Step::Auto));
        assert_eq!(parse_step("60s"), Ok(Step::Fixed(60_000)));
        assert_eq!(parse_step("60"), Ok(Step::Fixed(60_000)));
        assert_eq!(parse_step("10m"), Ok(Step::Fixed(600_000)));
        assert_eq!(parse_step("1h"), Ok(Step::Fixed(3_600_000)));
        assert_eq!(parse_step("2d"), Ok(Step::Fixed(172_800_000)));
        assert!(parse_step("0s").is_err());
        assert!(parse_step("5w").is_err());
        assert!(parse_step("fast").is_err());
        assert!(parse_step("99999999999999999d").is_err());
        assert!(parse_step("9223372036854775s").is_err());
        assert_eq!(parse_step("400d"), Ok(Step::Fixed(400 * 86_400_000)));
    }

    #[test]
    fn fleet_questions_read_coarse_tiers() {
        let r = Retention::default();
        assert_eq!(top_tier(NOW - 24 * H, NOW, NOW, &r), Tier::Hour);
        assert_eq!(top_tier(NOW - H, NOW, NOW, &r), Tier::TenMinutes);
        assert_eq!(top_tier(NOW - 15 * 60_000, NOW, NOW, &r), Tier::Minute);
        assert_eq!(top_tier(NOW - 60_000, NOW, NOW, &r), Tier::Raw);
    }

    #[test]
    fn buckets_floor_to_their_width() {
        assert_eq!(Tier::Minute.bucket(125_000), 120_000);
        assert_eq!(Tier::Hour.bucket(H + 5), H);
        assert_eq!(floor(-1, 1_000), -1_000);
        assert_eq!(Tier::Raw.bucket(12_345), 12_345);
    }
}
