//! Maintenance windows: when one is in force and which hosts it covers. A recurring window
//! starts at a local wall-clock time in its time zone, so "daily 02:00 Europe/Berlin" starts
//! at 02:00 in winter and in summer; on the night the clocks jump forward past the start it
//! starts at the first minute that exists after it, and on the night they fall back it starts
//! at the first of the two 02:00s. Its duration is elapsed time.
//!
//! Pure: the caller passes the time.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use entity::types::{Recurrence, Weekday};

/// When a window starts, in its own time zone.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A `once` window: a local date and time.
    At(NaiveDateTime),
    /// A recurring window: a local time of day.
    Daily(NaiveTime),
    /// On these weekdays at a local time.
    Weekly(NaiveTime, Vec<Weekday>),
}

/// A window as the calendar needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub id: i64,
    pub name: String,
    pub host_ids: Vec<i64>,
    /// A host carrying any of these is covered.
    pub labels: Vec<String>,
    pub start: Start,
    pub tz: Tz,
    pub duration: Duration,
    /// No occurrence starts after this (recurring windows).
    pub until: Option<DateTime<Utc>>,
    /// Whether covered hosts are polled meanwhile.
    pub collect: bool,
}

/// Longest duration per recurrence, in minutes: a recurring window ends before it would start
/// again.
pub fn max_minutes(r: Recurrence) -> i64 {
    match r {
        Recurrence::Once => 31 * 24 * 60,
        Recurrence::Daily => 24 * 60,
        Recurrence::Weekly => 7 * 24 * 60,
    }
}

fn chrono_weekday(w: Weekday) -> chrono::Weekday {
    match w {
        Weekday::Mon => chrono::Weekday::Mon,
        Weekday::Tue => chrono::Weekday::Tue,
        Weekday::Wed => chrono::Weekday::Wed,
        Weekday::Thu => chrono::Weekday::Thu,
        Weekday::Fri => chrono::Weekday::Fri,
        Weekday::Sat => chrono::Weekday::Sat,
        Weekday::Sun => chrono::Weekday::Sun,
    }
}

/// The instant a local time names in `tz`: the earlier of two in the hour the clocks fall
/// back, the first existing minute after it when they jump forward over it.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..=180 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    // No zone skips three hours; read it as UTC rather than fail.
    Utc.from_utc_datetime(&local)
}

impl Window {
    /// The occurrences that start on the local dates `from ..= to`.
    fn starts_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        match &self.start {
            Start::At(at) => {
                let date = at.date();
                if date >= from && date <= to {
                    out.push(resolve_local(self.tz, *at));
                }
            }
            Start::Daily(time) | Start::Weekly(time, _) => {
                let mut day = from;
                while day <= to {
                    let wanted = match &self.start {
                        Start::Weekly(_, days) => {
                            days.iter().any(|d| chrono_weekday(*d) == day.weekday())
                        }
                        _ => true,
                    };
                    if wanted {
                        let start = resolve_local(self.tz, day.and_time(*time));
                        if self.until.is_none_or(|u| start <= u) {
                            out.push(start);
                        }
                    }
                    let Some(next) = day.succ_opt() else { break };
                    day = next;
                }
            }
        }
        out
    }

    /// The occurrence in force at `now`, as (start, end).
    pub fn active_at(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&self.tz).date_naive();
        let back = self.duration.num_days() + 1;
        let from = today - Duration::days(back);
        self.starts_between(from, today)
            .into_iter()
            .map(|s| (s, s + self.duration))
            .find(|(s, e)| *s <= now && now < *e)
    }

    /// The next occurrence to start after `now`, within eight days (for a `once` window,
    /// whenever it is).
    pub fn next_start(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Start::At(at) = &self.start {
            return Some(resolve_local(self.tz, *at)).filter(|s| *s > now);
        }
        let today = now.with_timezone(&self.tz).date_naive();
        self.starts_between(today, today + Duration::days(8))
            .into_iter()
            .find(|s| *s > now)
    }

    /// Whether the window covers the host.
    pub fn covers(&self, host_id: i64, labels: &[String]) -> bool {
        self.host_ids.contains(&host_id) || self.labels.iter().any(|l| labels.contains(l))
    }
}

/// The windows in force at `now` that cover the host.
pub fn covering<'w>(
    windows: &'w [Window],
    host_id: i64,
    labels: &[String],
    now: DateTime<Utc>,
) -> impl Iterator<Item = (&'w Window, DateTime<Utc>)> {
    windows.iter().filter_map(move |w| {
        if !w.covers(host_id, labels) {
            return None;
        }
        w.active_at(now).map(|(_, end)| (w, end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(start: Start, tz: &str, minutes: i64) -> Window {
        Window {
            id: 1,
            name: "w".into(),
            host_ids: vec![3],
            labels: vec!["env=prod".into()],
            start,
            tz: tz.parse().unwrap(),
            duration: Duration::minutes(minutes),
            until: None,
            collect: true,
        }
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_daily_window_keeps_its_local_time_across_dst() {
        let w = window(Start::Daily(hm(2, 30)), "Europe/Berlin", 60);
        // Winter: 02:30 CET is 01:30 UTC.
        assert!(w.active_at(utc("2026-01-15T01:30:00Z")).is_some());
        assert!(w.active_at(utc("2026-01-15T02:29:59Z")).is_some());
        assert!(w.active_at(utc("2026-01-15T02:30:00Z")).is_none());
        // Summer: 02:30 CEST is 00:30 UTC.
        assert!(w.active_at(utc("2026-07-15T00:30:00Z")).is_some());
        assert!(w.active_at(utc("2026-07-15T01:30:00Z")).is_none());
        // 29 March 2026: 02:00–03:00 does not exist; it starts at 03:00 CEST (01:00 UTC).
        let (s, e) = w.active_at(utc("2026-03-29T01:10:00Z")).unwrap();
        assert_eq!(s, utc("2026-03-29T01:00:00Z"));
        assert_eq!(e, utc("2026-03-29T02:00:00Z"));
        assert!(w.active_at(utc("2026-03-29T00:45:00Z")).is_none());
        // 25 October 2026: 02:30 happens twice; the first (CEST, 00:30 UTC) counts.
        let (s, _) = w.active_at(utc("2026-10-25T00:40:00Z")).unwrap();
        assert_eq!(s, utc("2026-10-25T00:30:00Z"));
        assert!(w.active_at(utc("2026-10-25T01:40:00Z")).is_none());
    }

    #[test]
    fn weekly_windows_run_on_their_days_and_across_midnight() {
        let w = window(Start::Weekly(hm(23, 0), vec![Weekday::Sat]), "UTC", 120);
        // Saturday 5 December 2026 23:00 to Sunday 01:00.
        assert!(w.active_at(utc("2026-12-05T23:30:00Z")).is_some());
        assert!(w.active_at(utc("2026-12-06T00:59:00Z")).is_some());
        assert!(w.active_at(utc("2026-12-06T01:00:00Z")).is_none());
        assert!(w.active_at(utc("2026-12-04T23:30:00Z")).is_none());
        assert_eq!(
            w.next_start(utc("2026-12-01T12:00:00Z")),
            Some(utc("2026-12-05T23:00:00Z"))
        );
        let until = Window {
            until: Some(utc("2026-12-01T00:00:00Z")),
            ..w
        };
        assert!(until.active_at(utc("2026-12-05T23:30:00Z")).is_none());
    }

    #[test]
    fn a_once_window_and_what_it_covers() {
        let at = NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_time(hm(22, 0));
        let w = window(Start::At(at), "America/New_York", 90);
        // 22:00 EST is 03:00 UTC the next day.
        assert!(w.active_at(utc("2026-12-02T03:00:00Z")).is_some());
        assert!(w.active_at(utc("2026-12-02T04:30:00Z")).is_none());
        assert!(w.active_at(utc("2026-12-01T22:00:00Z")).is_none());
        assert!(w.covers(3, &[]));
        assert!(w.covers(9, &["env=prod".into()]));
        assert!(!w.covers(9, &["env=dev".into()]));
        let now = utc("2026-12-02T03:10:00Z");
        assert_eq!(covering(std::slice::from_ref(&w), 3, &[], now).count(), 1);
        assert_eq!(covering(std::slice::from_ref(&w), 4, &[], now).count(), 0);
    }
}
