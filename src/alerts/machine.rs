//! The alert state machine of one (subject, metric, label): `ok → pending → firing(level) → ok`.
//!
//! - A level fires after `for_polls` consecutive values over it (escalation to critical too).
//! - A firing level holds until the value is back under its threshold by `hysteresis`; falling
//!   under critical (minus hysteresis) but not under warning de-escalates.
//! - Missing data (`None`) changes nothing: no firing, no resolving, no counting.
//! - While firing, a reminder every `repeat_seconds`, if set.
//!
//! Pure: the caller passes the time and stores the state.

use entity::types::{Event, Level, NotificationState};
use serde::{Deserialize, Serialize};

use super::Direction;

/// The rule an alert follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub direction: Direction,
    pub for_polls: u32,
    pub hysteresis: f64,
    pub repeat_seconds: Option<u32>,
    pub enabled: bool,
}

impl Rule {
    /// The level's threshold, if the rule has that level.
    pub fn threshold(&self, level: Level) -> Option<f64> {
        match level {
            Level::Warning => self.warning,
            Level::Critical => self.critical,
            Level::Info => None,
        }
    }

    fn over(&self, value: f64, threshold: f64) -> bool {
        match self.direction {
            Direction::Above => value >= threshold,
            Direction::Below => value <= threshold,
        }
    }

    fn back_under(&self, value: f64, threshold: f64) -> bool {
        match self.direction {
            Direction::Above => value < threshold - self.hysteresis,
            Direction::Below => value > threshold + self.hysteresis,
        }
    }

    /// The highest level the value is over, before hysteresis.
    fn raw_level(&self, value: f64) -> Option<Level> {
        [Level::Critical, Level::Warning]
            .into_iter()
            .find(|l| self.threshold(*l).is_some_and(|t| self.over(value, t)))
    }

    /// The level the value holds while `current` fires: a level at or below `current` that the
    /// value has not left by the hysteresis.
    fn held_level(&self, value: f64, current: Level) -> Option<Level> {
        [Level::Critical, Level::Warning]
            .into_iter()
            .filter(|l| *l <= current)
            .find(|l| {
                self.threshold(*l)
                    .is_some_and(|t| !self.back_under(value, t))
            })
    }
}

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Ok,
    /// Over a level, fewer than `for_polls` times in a row.
    Pending,
    Firing(Level),
}

/// The stored state of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub phase: Phase,
    /// Consecutive values over the level being waited for (to fire, or to escalate).
    pub pending_polls: u32,
    /// When the phase was entered (ms).
    pub since_ms: i64,
    /// When a notification was last written for this alert (ms).
    pub last_notified_ms: Option<i64>,
}

impl AlertState {
    /// A new alert, at rest.
    pub fn new(now_ms: i64) -> Self {
        Self {
            phase: Phase::Ok,
            pending_polls: 0,
            since_ms: now_ms,
            last_notified_ms: None,
        }
    }
}

/// What happened at a step, when something worth a notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired(Level),
    Escalated { from: Level, to: Level },
    DeEscalated { from: Level, to: Level },
    Resolved { from: Level },
    Reminder(Level),
}

impl Transition {
    /// The notification's `event`.
    pub fn event(self) -> Event {
        match self {
            Self::Fired(_) => Event::Fired,
            Self::Escalated { .. } => Event::Escalated,
            Self::DeEscalated { .. } => Event::DeEscalated,
            Self::Resolved { .. } => Event::Resolved,
            Self::Reminder(_) => Event::Reminder,
        }
    }

    /// The notification's `state`.
    pub fn state(self) -> NotificationState {
        if self.firing() {
            NotificationState::Firing
        } else {
            NotificationState::Resolved
        }
    }

    /// The level the notification carries (the level left, for a resolution).
    pub fn level(self) -> Level {
        match self {
            Self::Fired(l) | Self::Reminder(l) => l,
            Self::Escalated { to, .. } | Self::DeEscalated { to, .. } => to,
            Self::Resolved { from } => from,
        }
    }

    /// Whether the alert is firing after it.
    pub fn firing(self) -> bool {
        !matches!(self, Self::Resolved { .. })
    }
}

/// Advances an alert by one value (`None`: no data this time).
pub fn step(
    state: AlertState,
    rule: &Rule,
    value: Option<f64>,
    now_ms: i64,
) -> (AlertState, Option<Transition>) {
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return (state, None);
    };
    let mut next = state;
    let notify = |mut s: AlertState, t: Transition| {
        s.last_notified_ms = Some(now_ms);
        (s, Some(t))
    };
    let enter = |mut s: AlertState, phase: Phase| {
        if s.phase != phase {
            s.since_ms = now_ms;
        }
        s.phase = phase;
        s
    };
    let for_polls = rule.for_polls.max(1);
    match state.phase {
        Phase::Ok | Phase::Pending => {
            let target = if rule.enabled {
                rule.raw_level(value)
            } else {
                None
            };
            match target {
                None => {
                    next.pending_polls = 0;
                    (enter(next, Phase::Ok), None)
                }
                Some(level) => {
                    next.pending_polls += 1;
                    if next.pending_polls >= for_polls {
                        next.pending_polls = 0;
                        notify(enter(next, Phase::Firing(level)), Transition::Fired(level))
                    } else {
                        (enter(next, Phase::Pending), None)
                    }
                }
            }
        }
        Phase::Firing(current) => {
            let target = if rule.enabled {
                rule.raw_level(value).max(rule.held_level(value, current))
            } else {
                None
            };
            match target {
                None => {
                    next.pending_polls = 0;
                    notify(
                        enter(next, Phase::Ok),
                        Transition::Resolved { from: current },
                    )
                }
                Some(level) if level > current => {
                    next.pending_polls += 1;
                    if next.pending_polls >= for_polls {
                        next.pending_polls = 0;
                        notify(
                            enter(next, Phase::Firing(level)),
                            Transition::Escalated {
                                from: current,
                                to: level,
                            },
                        )
                    } else {
                        (next, None)
                    }
                }
                Some(level) if level < current => {
                    next.pending_polls = 0;
                    notify(
                        enter(next, Phase::Firing(level)),
                        Transition::DeEscalated {
                            from: current,
                            to: level,
                        },
                    )
                }
                Some(_) => {
                    next.pending_polls = 0;
                    let due = rule.repeat_seconds.is_some_and(|r| {
                        state
                            .last_notified_ms
                            .is_none_or(|at| now_ms - at >= i64::from(r) * 1000)
                    });
                    if due {
                        notify(next, Transition::Reminder(current))
                    } else {
                        (next, None)
                    }
                }
            }
        }
    }
}

/// Ends an alert whose condition is gone rather than measured below its level (a certificate
/// no longer served, a host that answers again): a firing alert resolves, a pending one goes
/// back to rest, and its count starts over.
pub fn clear(state: AlertState, now_ms: i64) -> (AlertState, Option<Transition>) {
    let mut next = AlertState {
        phase: Phase::Ok,
        pending_polls: 0,
        ..state
    };
    match state.phase {
        Phase::Firing(from) => {
            next.since_ms = now_ms;
            next.last_notified_ms = Some(now_ms);
            (next, Some(Transition::Resolved { from }))
        }
        Phase::Pending => {
            next.since_ms = now_ms;
            (next, None)
        }
        Phase::Ok => (next, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            warning: Some(80.0),
            critical: Some(90.0),
            direction: Direction::Above,
            for_polls: 1,
            hysteresis: 5.0,
            repeat_seconds: None,
            enabled: true,
        }
    }

    /// Feeds values one second apart; returns the transitions.
    fn run(rule: &Rule, values: &[Option<f64>]) -> (AlertState, Vec<Transition>) {
        let mut state = AlertState::new(0);
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let (s, t) = step(state, rule, *v, (i as i64 + 1) * 1000);
            state = s;
            out.extend(t);
        }
        (state, out)
    }

    use Level::{Critical, Warning};

    #[test]
    fn fires_and_resolves_once() {
        let (state, t) = run(
            &rule(),
            &[Some(50.0), Some(95.0), Some(96.0), Some(40.0), Some(41.0)],
        );
        assert_eq!(
            t,
            [
                Transition::Fired(Critical),
                Transition::Resolved { from: Critical }
            ]
        );
        assert_eq!(state.phase, Phase::Ok);
    }

    #[test]
    fn for_polls_needs_consecutive_values() {
        let r = Rule {
            for_polls: 3,
            ..rule()
        };
        let (_, t) = run(
            &r,
            &[Some(85.0), Some(85.0), Some(50.0), Some(85.0), Some(85.0)],
        );
        assert!(t.is_empty(), "an interruption restarts the count: {t:?}");
        let (state, t) = run(&r, &[Some(85.0), Some(85.0), Some(85.0)]);
        assert_eq!(t, [Transition::Fired(Warning)]);
        assert_eq!(state.phase, Phase::Firing(Warning));
        let (state, _) = run(&r, &[Some(85.0), Some(85.0)]);
        assert_eq!((state.phase, state.pending_polls), (Phase::Pending, 2));
    }

    #[test]
    fn hysteresis_stops_flapping() {
        // Around the critical line, then around the warning line: one notification per real change.
        let values: Vec<Option<f64>> = [
            91.0, 89.0, 91.0, 88.0, 90.5, 86.0, 79.0, 81.0, 78.0, 76.0, 74.9,
        ]
        .into_iter()
        .map(Some)
        .collect();
        let (state, t) = run(&rule(), &values);
        assert_eq!(
            t,
            [
                Transition::Fired(Critical),
                // 79 is under 90 - 5 but over 80 - 5: warning holds.
                Transition::DeEscalated {
                    from: Critical,
                    to: Warning
                },
                Transition::Resolved { from: Warning },
            ]
        );
        assert_eq!(state.phase, Phase::Ok);
    }

    #[test]
    fn a_storm_of_flapping_values_gives_one_notification() {
        let values: Vec<Option<f64>> = (0..1000)
            .map(|i| Some(if i % 2 == 0 { 91.0 } else { 87.0 }))
            .collect();
        let (_, t) = run(&rule(), &values);
        assert_eq!(t, [Transition::Fired(Critical)]);
    }

    #[test]
    fn escalates_and_de_escalates() {
        let r = Rule {
            for_polls: 2,
            ..rule()
        };
        let (_, t) = run(
            &r,
            &[
                Some(82.0),
                Some(83.0),
                Some(95.0),
                Some(96.0),
                Some(84.0),
                Some(70.0),
            ],
        );
        assert_eq!(
            t,
            [
                Transition::Fired(Warning),
                Transition::Escalated {
                    from: Warning,
                    to: Critical
                },
                Transition::DeEscalated {
                    from: Critical,
                    to: Warning
                },
                Transition::Resolved { from: Warning },
            ]
        );
        // A single spike does not escalate when two are needed.
        let (state, t) = run(&r, &[Some(82.0), Some(83.0), Some(95.0), Some(83.0)]);
        assert_eq!(t, [Transition::Fired(Warning)]);
        assert_eq!(state.phase, Phase::Firing(Warning));
    }

    #[test]
    fn reminders_while_firing() {
        let r = Rule {
            repeat_seconds: Some(3),
            ..rule()
        };
        let (_, t) = run(&r, &[Some(95.0); 8]);
        // Fired at 1 s, reminders at 4 s and 7 s.
        assert_eq!(
            t,
            [
                Transition::Fired(Critical),
                Transition::Reminder(Critical),
                Transition::Reminder(Critical)
            ]
        );
    }

    #[test]
    fn missing_data_is_not_recovery() {
        let (state, t) = run(&rule(), &[Some(95.0), None, None, None, Some(95.0)]);
        assert_eq!(t, [Transition::Fired(Critical)]);
        assert_eq!(state.phase, Phase::Firing(Critical));
        // Nor does it count towards firing.
        let r = Rule {
            for_polls: 2,
            ..rule()
        };
        let (state, t) = run(&r, &[Some(95.0), None, None]);
        assert!(t.is_empty());
        assert_eq!((state.phase, state.pending_polls), (Phase::Pending, 1));
        let (_, t) = run(&rule(), &[Some(f64::NAN), Some(f64::INFINITY)]);
        assert!(t.is_empty());
    }

    #[test]
    fn raising_the_level_resolves_disabling_resolves() {
        let mut state = AlertState::new(0);
        let low = Rule {
            warning: Some(1.0),
            critical: Some(2.0),
            ..rule()
        };
        let (s, t) = step(state, &low, Some(3.0), 1000);
        assert_eq!(t, Some(Transition::Fired(Critical)));
        state = s;
        let (s, t) = step(state, &rule(), Some(3.0), 2000);
        assert_eq!(t, Some(Transition::Resolved { from: Critical }));
        let (s, _) = step(s, &low, Some(3.0), 3000);
        let (_, t) = step(
            s,
            &Rule {
                enabled: false,
                ..low
            },
            Some(3.0),
            4000,
        );
        assert_eq!(t, Some(Transition::Resolved { from: Critical }));
    }

    #[test]
    fn below_direction_for_days_left() {
        let r = Rule {
            warning: Some(14.0),
            critical: Some(3.0),
            direction: Direction::Below,
            hysteresis: 1.0,
            ..rule()
        };
        let (_, t) = run(
            &r,
            &[
                Some(30.0),
                Some(13.5),
                Some(14.5),
                Some(2.0),
                Some(3.5),
                Some(4.5),
                Some(29.0),
            ],
        );
        assert_eq!(
            t,
            [
                Transition::Fired(Warning),
                Transition::Escalated {
                    from: Warning,
                    to: Critical
                },
                Transition::DeEscalated {
                    from: Critical,
                    to: Warning
                },
                Transition::Resolved { from: Warning },
            ]
        );
    }

    #[test]
    fn only_a_warning_level() {
        let r = Rule {
            critical: None,
            ..rule()
        };
        let (_, t) = run(&r, &[Some(99.0), Some(99.0), Some(10.0)]);
        assert_eq!(
            t,
            [
                Transition::Fired(Warning),
                Transition::Resolved { from: Warning }
            ]
        );
    }

    #[test]
    fn clearing_resolves_only_what_fires() {
        let (firing, _) = step(AlertState::new(0), &rule(), Some(95.0), 1000);
        let (state, t) = clear(firing, 5000);
        assert_eq!(t, Some(Transition::Resolved { from: Critical }));
        assert_eq!(
            (state.phase, state.since_ms, state.last_notified_ms),
            (Phase::Ok, 5000, Some(5000))
        );
        let slow = Rule {
            for_polls: 3,
            ..rule()
        };
        let (pending, _) = step(AlertState::new(0), &slow, Some(95.0), 1000);
        let (state, t) = clear(pending, 5000);
        assert_eq!(t, None);
        assert_eq!((state.phase, state.pending_polls), (Phase::Ok, 0));
        let counting = AlertState {
            pending_polls: 2,
            ..AlertState::new(7)
        };
        let (state, t) = clear(counting, 5000);
        assert_eq!(t, None);
        assert_eq!((state.pending_polls, state.since_ms), (0, 7));
    }
}
