//! The scheduler: runs every enabled host and URL check on its 6-field cron schedule, with one
//! tokio-cron-scheduler job per distinct schedule (a fleet shares a few schedules; one job per
//! host cost tokio-cron-scheduler a cron parse and several task spawns per host per tick).
//!
//! Schedules are validated with the exact parser and settings tokio-cron-scheduler uses, so a
//! schedule the API accepts is one the scheduler runs (the `cron` crate numbers weekdays
//! differently and would accept other strings). A job never overlaps itself: a tick that finds
//! the previous poll still running is skipped and recorded as an overrun. A global semaphore
//! bounds concurrent polls, and each host starts in one of twenty fixed slots of its period, so a
//! fleet on one schedule neither fires at once nor wakes the runtime once per host.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use croner::parser::{CronParser, Seconds};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    logs::Untrusted,
    poller::{PollError, Poller},
    store::{self, now_ms},
    urlcheck::service::UrlCheckService,
};

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
}

/// Checks that `schedule` is a 6-field cron expression the scheduler accepts.
pub fn validate_schedule(schedule: &str) -> Result<(), String> {
    let fields = schedule.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "expected 6 fields (second minute hour day-of-month month day-of-week), got {fields}"
        ));
    }
    parser()
        .parse(schedule)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The time between two runs of `schedule` from now (for spreading start times).
pub fn period(schedule: &str) -> Option<Duration> {
    let cron = parser().parse(schedule).ok()?;
    let now = chrono::Utc::now();
    let first = cron.find_next_occurrence(&now, false).ok()?;
    let second = cron.find_next_occurrence(&first, false).ok()?;
    (second - first).to_std().ok()
}

/// How many start slots a schedule's spread window is cut into. The hosts of one slot start
/// together, so their polls share the runtime's wake-ups and the writer's transactions, far
/// cheaper per poll than an offset of their own; the price is queueing within a slot (a few
/// milliseconds of poll latency; `docs/performance.md` has the figures).
pub const START_SLOTS: u32 = 20;

/// Consecutive host ids that share a start slot. Their polls are then stored in the same
/// transactions next to each other in id order: a batch rewrites a few pages of the `hosts`
/// table (and of young per-host indexes) where ids scattered over the slots cost one page per
/// host.
const SLOT_RUN: u64 = 16;

/// A host's fixed start offset within its period: one of [`START_SLOTS`] evenly spaced slots
/// over the first 90 % of the period (a poll started late in the window still ends before the
/// next tick), at most 10 s, so a fleet on one schedule spreads its load over the period.
pub fn start_offset(host_id: i64, period: Duration) -> Duration {
    let window = (period * 9 / 10).min(Duration::from_secs(10));
    // Fibonacci hashing: the product's high bits spread consecutive runs evenly over the slots.
    // (+1: run 0, the first hosts of every database, would always hash to slot 0.)
    let run = (host_id as u64) / SLOT_RUN + 1;
    let hash = run.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let slot = (hash * u64::from(START_SLOTS)) >> 32;
    window * slot as u32 / START_SLOTS
}

/// When the job of `key` on `schedule` next starts after `now`: the schedule's tick plus the
/// job's start offset (which is why a host on `19 * * * * *` may poll at :25).
pub fn next_start(
    schedule: &str,
    key: JobKey,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let cron = parser().parse(schedule).ok()?;
    let offset = period(schedule).map_or(Duration::ZERO, |p| start_offset(key.id(), p));
    let offset = chrono::Duration::from_std(offset).ok()?;
    use chrono::SubsecRound;
    let tick = cron
        .find_next_occurrence(&(now - offset).trunc_subsecs(0), false)
        .ok()?;
    Some(tick + offset)
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

/// Slots of the scheduler's internal channels: room for this many jobs (distinct schedules, not
/// hosts) to tick at once. tokio-cron-scheduler allocates ten channels of this size up front, so
/// a much larger size costs tens of MiB for nothing.
const SCHEDULER_CHANNEL: usize = 4096;

/// What a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKey {
    Host(i64),
    UrlCheck(i64),
}

impl JobKey {
    pub fn id(self) -> i64 {
        match self {
            Self::Host(id) | Self::UrlCheck(id) => id,
        }
    }
}

/// Removes a job from the running set when its run ends, however it ends.
struct RunningGuard {
    running: Arc<Mutex<HashSet<JobKey>>>,
    key: JobKey,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running.lock().expect("not poisoned").remove(&self.key);
    }
}

/// The scheduled work: what each key runs on, and the one job of each schedule.
#[derive(Default)]
struct Jobs {
    schedule_of: HashMap<JobKey, String>,
    groups: HashMap<String, Group>,
}

/// The keys that share one schedule, and their tokio-cron-scheduler job.
struct Group {
    job: Uuid,
    /// Each member with its start offset within the period.
    members: Arc<Mutex<HashMap<JobKey, Duration>>>,
}

/// Polls every enabled host, and runs every enabled URL check, on its schedule.
pub struct PollScheduler {
    sched: JobScheduler,
    poller: Arc<Poller>,
    url_checks: Arc<UrlCheckService>,
    jobs: tokio::sync::Mutex<Jobs>,
    running: Arc<Mutex<HashSet<JobKey>>>,
    permits: Arc<Semaphore>,
    /// Cancelled by [`PollScheduler::shutdown`] (or by the service's shutdown): slots still
    /// waiting in the period start nothing.
    stop: CancellationToken,
    /// The polls and checks started, so shutdown can wait for those in flight.
    runs: TaskTracker,
    /// The other tasks it spawns (waiting slots, overrun records).
    tasks: TaskTracker,
    me: Weak<PollScheduler>,
}

impl std::fmt::Debug for PollScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PollScheduler({} running)",
            self.running.lock().expect("not poisoned").len()
        )
    }
}

impl PollScheduler {
    /// Starts the scheduler with a job for every enabled host and URL check. It stops when
    /// `stop` is cancelled (and [`PollScheduler::shutdown`] waits for the runs in flight); the
    /// tasks it spawns besides the runs go on `tasks`.
    pub async fn start(
        poller: Arc<Poller>,
        url_checks: Arc<UrlCheckService>,
        max_concurrent_polls: usize,
        stop: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Arc<Self>> {
        // The scheduler fans ticks out over a broadcast channel; with its default size (200) a
        // fleet of thousands of jobs overflows it and ticks are lost ("Lagged").
        let sched = JobScheduler::new_with_channel_size(SCHEDULER_CHANNEL).await?;
        sched.start().await?;
        let db = poller.db().clone();
        let this = Arc::new_cyclic(|me| Self {
            sched,
            poller,
            url_checks,
            jobs: Default::default(),
            running: Default::default(),
            stop,
            permits: Arc::new(Semaphore::new(max_concurrent_polls.max(1))),
            runs: TaskTracker::new(),
            tasks,
            me: me.clone(),
        });
        let hosts = store::hosts::schedules(&db).await?;
        let checks = store::url_checks::schedules(&db).await?;
        let (host_count, check_count) = (hosts.len(), checks.len());
        for (id, enabled, schedule) in hosts {
            this.apply(JobKey::Host(id), enabled, &schedule).await?;
        }
        for (id, enabled, schedule) in checks {
            this.apply(JobKey::UrlCheck(id), enabled, &schedule).await?;
        }
        tracing::info!(
            hosts = host_count,
            url_checks = check_count,
            "scheduler started"
        );
        Ok(this)
    }

    /// Brings a job in line with its row: added, re-scheduled, or removed (deleted or disabled).
    pub async fn sync(&self, key: JobKey) -> Result<()> {
        let db = self.poller.db();
        let row = match key {
            JobKey::Host(id) => store::hosts::find(db, id)
                .await?
                .map(|h| (h.enabled, h.schedule)),
            JobKey::UrlCheck(id) => match store::url_checks::get(db, id).await {
                Ok(c) => Some((c.enabled, c.schedule)),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        match row {
            Some((enabled, schedule)) => self.apply(key, enabled, &schedule).await,
            None => self.remove(key).await,
        }
    }

    async fn apply(&self, key: JobKey, enabled: bool, schedule: &str) -> Result<()> {
        if !enabled {
            return self.remove(key).await;
        }
        let mut jobs = self.jobs.lock().await;
        if jobs.schedule_of.get(&key).is_some_and(|s| s == schedule) {
            return Ok(());
        }
        self.leave_group(&mut jobs, key).await?;
        let offset = period(schedule)
            .map(|p| start_offset(key.id(), p))
            .unwrap_or_default();
        if !jobs.groups.contains_key(schedule) {
            let members: Arc<Mutex<HashMap<JobKey, Duration>>> = Default::default();
            let (me, due) = (self.me.clone(), members.clone());
            let job = Job::new_async(schedule, move |_, _| {
                let (me, due) = (me.clone(), due.clone());
                Box::pin(async move {
                    if let Some(me) = me.upgrade() {
                        me.start_slots(&due);
                    }
                })
            })?;
            let id = self.sched.add(job).await?;
            jobs.groups
                .insert(schedule.to_owned(), Group { job: id, members });
        }
        jobs.groups[schedule]
            .members
            .lock()
            .expect("not poisoned")
            .insert(key, offset);
        jobs.schedule_of.insert(key, schedule.to_owned());
        Ok(())
    }

    /// A group's tick: one waiting task per start slot, not one per member (a member's poll
    /// task, several KiB, exists only from its slot on).
    fn start_slots(&self, due: &Arc<Mutex<HashMap<JobKey, Duration>>>) {
        let mut slots: BTreeMap<Duration, Vec<JobKey>> = BTreeMap::new();
        for (key, offset) in due.lock().expect("not poisoned").iter() {
            slots.entry(*offset).or_default().push(*key);
        }
        for (offset, keys) in slots {
            let (me, due, stop) = (self.me.clone(), due.clone(), self.stop.clone());
            self.tasks.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(offset) => {}
                    () = stop.cancelled() => return,
                }
                let Some(me) = me.upgrade() else { return };
                // Not those removed, disabled or moved to another schedule since the tick (the
                // loop does not await: the slot starts as one step).
                let members = due.lock().expect("not poisoned");
                for key in keys.into_iter().filter(|k| members.contains_key(k)) {
                    me.tick(key, false);
                }
            });
        }
    }

    /// Takes a key out of its schedule's group; the group's job goes with its last member.
    async fn leave_group(&self, jobs: &mut Jobs, key: JobKey) -> Result<()> {
        let Some(schedule) = jobs.schedule_of.remove(&key) else {
            return Ok(());
        };
        let empty = jobs.groups.get(&schedule).is_some_and(|g| {
            let mut members = g.members.lock().expect("not poisoned");
            members.remove(&key);
            members.is_empty()
        });
        if empty && let Some(group) = jobs.groups.remove(&schedule) {
            self.sched.remove(&group.job).await?;
        }
        Ok(())
    }

    /// Removes a job.
    pub async fn remove(&self, key: JobKey) -> Result<()> {
        let mut jobs = self.jobs.lock().await;
        self.leave_group(&mut jobs, key).await
    }

    /// Runs a job as soon as a slot is free (a new host is enrolled, then polled), through the
    /// same overlap guard as scheduled runs.
    pub fn run_now(&self, key: JobKey) {
        self.tick(key, true);
    }

    /// Runs a job now if it is scheduled (an enabled host or check).
    pub async fn run_now_if_scheduled(&self, key: JobKey) {
        if self.jobs.lock().await.schedule_of.contains_key(&key) {
            self.tick(key, true);
        }
    }

    /// How many jobs are scheduled.
    pub async fn scheduled(&self) -> usize {
        self.jobs.lock().await.schedule_of.len()
    }

    fn tick(&self, key: JobKey, force: bool) {
        if self.stop.is_cancelled() {
            return;
        }
        if !self.running.lock().expect("not poisoned").insert(key) {
            match key {
                // Not awaited: a group's tick goes on to the other members at once.
                JobKey::Host(host_id) => {
                    self.tasks
                        .spawn(record_overrun(self.poller.db().clone(), host_id));
                }
                JobKey::UrlCheck(id) => {
                    tracing::warn!(url_check_id = id, "URL check still running; tick skipped")
                }
            }
            return;
        }
        let guard = RunningGuard {
            running: self.running.clone(),
            key,
        };
        let poller = self.poller.clone();
        let url_checks = self.url_checks.clone();
        let permits = self.permits.clone();
        let stop = self.stop.clone();
        self.runs.spawn(async move {
            let _guard = guard;
            // A run still waiting for its turn when shutdown begins is not in flight: it does
            // not start (nor does one spawned by a tick that raced the shutdown).
            let permit = tokio::select! {
                permit = permits.acquire_owned() => permit,
                () = stop.cancelled() => return,
            };
            let Ok(permit) = permit else { return };
            if stop.is_cancelled() {
                return;
            }
            match key {
                JobKey::Host(host_id) => {
                    match poller.poll_holding(host_id, force, Some(permit)).await {
                        Ok(_) | Err(PollError::Refused(_)) => {}
                        Err(e) => tracing::debug!(host_id, error = %Untrusted(&e), "poll failed"),
                    }
                }
                JobKey::UrlCheck(id) => {
                    let _permit = permit;
                    if let Err(e) = url_checks.run(id).await {
                        tracing::warn!(url_check_id = id, error = %Untrusted(&e), "URL check did not run");
                    }
                }
            }
        });
    }

    /// Stops scheduling and waits for the polls and checks in flight, which end by their own
    /// deadlines.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let mut sched = self.sched.clone();
        if let Err(e) = sched.shutdown().await {
            tracing::warn!(error = %e, "scheduler shutdown");
        }
        self.runs.close();
        if !self.runs.is_empty() {
            tracing::info!(
                runs = self.runs.len(),
                "waiting for the polls and checks in flight"
            );
        }
        self.runs.wait().await;
    }
}

/// Records a skipped tick of a host whose previous poll was still running.
async fn record_overrun(db: DatabaseConnection, host_id: i64) {
    if let Err(e) = store::polls::write_overrun(&db, host_id, now_ms()).await {
        tracing::warn!(host_id, error = %e, "could not record an overrun");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_start_is_the_tick_plus_the_hosts_offset() {
        use chrono::TimeZone;
        let key = JobKey::Host(7);
        let offset = start_offset(7, Duration::from_secs(60));
        let offset = chrono::Duration::from_std(offset).unwrap();
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 5).unwrap();
        let tick = chrono::Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 19)
            .unwrap();
        assert_eq!(next_start("19 * * * * *", key, now), Some(tick + offset));
        // Between the tick and its offset the poll of this minute is still to come.
        let between = tick + offset / 2;
        if offset > chrono::Duration::zero() {
            assert_eq!(
                next_start("19 * * * * *", key, between),
                Some(tick + offset)
            );
        }
        // After it, the next minute's.
        let after = tick + offset + chrono::Duration::seconds(1);
        assert_eq!(
            next_start("19 * * * * *", key, after),
            Some(tick + chrono::Duration::minutes(1) + offset)
        );
        assert_eq!(next_start("bogus", key, now), None);
    }

    #[test]
    fn periods_and_offsets() {
        assert_eq!(period("*/10 * * * * *"), Some(Duration::from_secs(10)));
        assert_eq!(period("0 * * * * *"), Some(Duration::from_secs(60)));
        let offsets: HashSet<u128> = (1..=10_000)
            .map(|id| start_offset(id, Duration::from_secs(10)).as_millis())
            .collect();
        assert!(offsets.iter().all(|o| *o < 9000));
        // Twenty slots 450 ms apart over the 9 s window, which runs of consecutive ids fill
        // about evenly (500 each).
        assert_eq!(offsets.len(), 20);
        let mut per_slot = [0u32; 20];
        for id in 1..=10_000 {
            let offset = start_offset(id, Duration::from_secs(10)).as_millis();
            assert_eq!(offset % 450, 0, "{offset}");
            per_slot[(offset / 450) as usize] += 1;
        }
        assert!(
            per_slot.iter().all(|n| (400..=600).contains(n)),
            "{per_slot:?}"
        );
        // A run of consecutive ids starts together; the next run elsewhere.
        let run: HashSet<Duration> = (32..48)
            .map(|id| start_offset(id, Duration::from_secs(10)))
            .collect();
        assert_eq!(run.len(), 1);
        assert!(!run.contains(&start_offset(48, Duration::from_secs(10))));
        // A short period gets short slots: every host still starts within 90 % of it.
        let short = Duration::from_secs(1);
        assert!((1..=100).all(|id| start_offset(id, short) < Duration::from_millis(900)));
        assert_eq!(
            start_offset(7, Duration::from_secs(3600)),
            start_offset(7, Duration::from_secs(3600))
        );
        assert!(start_offset(7, Duration::from_secs(3600)) < Duration::from_secs(10));
    }

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
