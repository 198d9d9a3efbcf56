//! The poll writer's side of history: packing each poll's values against its host's layout,
//! and keeping the rollup tiers as polls arrive.
//!
//! Each host's current minute is summed in memory and written as one `rollups_1m` row when the
//! host's first poll of a later minute arrives (or, for a host that stopped answering, when the
//! writer's sweep finds the minute long over). A 10-minute bucket is built from its ten minute
//! rows when the first minute after it is written (and the ten are then stored as one
//! `rollups_1m_chunks` row in their place: a chart reads a tenth of the rows), an hour from its
//! six 10-minute rows: a poll costs no database read, and an hour's rollup costs six small rows
//! once an hour.
//!
//! A restart loses only memory: the raw polls are stored first. The first time the writer sees
//! a host it sums that host's current minute from the raw polls already stored in it (two or
//! three small reads, so a fleet's first round after a start stays cheap), and from then on
//! memory is right for that host. What lies before — the minutes after its newest minute row,
//! the buckets after the newest coarser rows, left unwritten when the service stopped — is
//! caught up by the sweep, a few hosts at a time in transactions of their own (every host,
//! polled since or not): nothing is counted twice (a bucket is written whole, over any earlier
//! copy) and nothing is lost.
//!
//! A batch takes the state of its hosts into a [`Stage`] and gives it back when it commits; a
//! batch that rolls back drops it, and those hosts rebuild their state from what is stored at
//! their next poll, as after a restart. Nothing is copied per poll.

use std::{collections::HashMap, sync::Arc};

use entity::series::{self, Aggregate, SeriesKey};
use sea_orm::ConnectionTrait;

use crate::{
    error::Result,
    probe::MetricValue,
    store::series::{self as stored, Layout, PackedRow},
    tiers::Tier,
};

/// How long after a minute ends the sweep writes it for a host that sent no later poll: longer
/// than a poll may take between taking its values and reaching the writer.
const MINUTE_GRACE_MS: i64 = 90_000;
/// How long after a 10-minute or 1-hour bucket ends the sweep builds it (after the minute
/// grace, so its last minute is written first).
const BUCKET_GRACE_MS: i64 = 120_000;

/// A bucket's sums, per series key in first-seen order.
#[derive(Debug, Clone, Default)]
struct Sums {
    start: i64,
    /// The layout whose keys the sums follow, while they do (nearly always: a host's keys
    /// change seldom); polls of it add without a key search, and its keys are not copied.
    shared: Option<Arc<Layout>>,
    /// The keys once they no longer follow one layout.
    own: Vec<SeriesKey>,
    aggs: Vec<Aggregate>,
}

impl Sums {
    fn new(start: i64) -> Self {
        Self {
            start,
            ..Default::default()
        }
    }

    fn keys(&self) -> &[SeriesKey] {
        match &self.shared {
            Some(l) => &l.keys,
            None => &self.own,
        }
    }

    fn slot(&mut self, key: &SeriesKey) -> usize {
        if let Some(i) = self.keys().iter().position(|k| k == key) {
            return i;
        }
        if let Some(l) = self.shared.take() {
            self.own = l.keys.clone();
        }
        self.own.push(key.clone());
        self.aggs.push(Aggregate::default());
        self.own.len() - 1
    }

    /// Starts following `layout` when nothing was added yet.
    fn adopt(&mut self, layout: &Arc<Layout>) {
        if self.aggs.is_empty() {
            self.shared = Some(layout.clone());
            self.aggs = vec![Aggregate::default(); layout.keys.len()];
        }
    }

    fn follows(&self, layout: &Layout) -> bool {
        self.shared.as_ref().is_some_and(|l| l.id == layout.id)
    }

    /// Adds a poll's values, packed against `layout`.
    fn add_poll(&mut self, layout: &Arc<Layout>, values: &[MetricValue]) {
        self.adopt(layout);
        if self.follows(layout) {
            for (agg, v) in self.aggs.iter_mut().zip(values) {
                agg.add(v.value);
            }
            return;
        }
        for (key, v) in layout.keys.iter().zip(values) {
            let i = self.slot(key);
            self.aggs[i].add(v.value);
        }
    }

    /// Adds a stored row of `tier` packed against `layout`.
    fn add_row(&mut self, tier: Tier, layout: &Arc<Layout>, data: &[u8]) {
        self.adopt(layout);
        let same = self.follows(layout);
        if tier == Tier::Raw {
            let values = series::decode_values(data, layout.keys.len());
            for (i, (key, v)) in layout.keys.iter().zip(values).enumerate() {
                if let Some(v) = v {
                    let i = if same { i } else { self.slot(key) };
                    self.aggs[i].add(v);
                }
            }
        } else {
            let aggs = series::decode_aggregates(data, layout.keys.len());
            for (i, (key, a)) in layout.keys.iter().zip(aggs).enumerate() {
                if !a.is_empty() {
                    let i = if same { i } else { self.slot(key) };
                    self.aggs[i].merge(&a);
                }
            }
        }
    }
}

/// What the writer knows of one host's history.
#[derive(Debug, Clone, Default)]
struct HostHistory {
    /// Every layout of the host, oldest first.
    layouts: Vec<Arc<Layout>>,
    /// The layout of its latest poll.
    current: Option<Arc<Layout>>,
    /// The minute being summed.
    open: Option<Sums>,
    /// The end of the newest minute written.
    minutes_through: i64,
    /// The 10-minute and 1-hour buckets whose finer rows are being written, to build once they
    /// end.
    pending: [Option<i64>; 2],
    /// The minute from which this state is right; what lies before it is written by the
    /// catch-up once `caught_up`.
    since: i64,
    caught_up: bool,
}

impl HostHistory {
    fn layout(&self, id: i64) -> Option<&Arc<Layout>> {
        self.layouts.iter().rev().find(|l| l.id == id)
    }
}

/// The writer's history state, one entry a host seen since it started.
#[derive(Debug, Default)]
pub struct Rollups {
    hosts: HashMap<i64, HostHistory>,
}

/// One batch's changes to [`Rollups`], kept by [`Rollups::commit`] once the batch is committed.
#[derive(Debug, Default)]
pub struct Stage {
    hosts: HashMap<i64, HostHistory>,
}

impl Rollups {
    pub fn stage(&self) -> Stage {
        Stage::default()
    }

    /// Keeps a committed batch's changes.
    pub fn commit(&mut self, stage: Stage) {
        self.hosts.extend(stage.hosts);
    }

    /// Keeps only the hosts `keep` says (the others deleted, say): a host forgotten rebuilds
    /// its state from what is stored at its next poll.
    pub fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        self.hosts.retain(|id, _| keep(*id));
    }

    /// How many hosts it holds state for.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Whether every host of `host_ids` has been caught up (see the module's documentation).
    pub fn caught_up(&self, host_ids: &std::collections::HashSet<i64>) -> bool {
        host_ids
            .iter()
            .all(|id| self.hosts.get(id).is_some_and(|h| h.caught_up))
    }

    /// Catches up one host of `host_ids` not caught up yet, in `db` (a transaction): writes the
    /// buckets that ended before the writer's state of it begins and were never written.
    /// Returns whether there was one.
    pub async fn catch_up_one(
        &mut self,
        stage: &mut Stage,
        db: &impl ConnectionTrait,
        host_ids: &std::collections::HashSet<i64>,
        now_ms: i64,
    ) -> Result<bool> {
        let Some(host_id) = host_ids.iter().copied().find(|id| {
            !stage.hosts.contains_key(id) && !self.hosts.get(id).is_some_and(|h| h.caught_up)
        }) else {
            return Ok(false);
        };
        let mut host = match self.hosts.remove(&host_id) {
            Some(h) => h,
            // Not polled since the start: its state begins now.
            None => start(db, host_id, now_ms).await?,
        };
        catch_up(db, &mut host, host_id).await?;
        stage.hosts.insert(host_id, host);
        Ok(true)
    }

    /// Stores one poll's values in `db` (a transaction): finds or writes the host's layout for
    /// them, folds them into its rollups (writing the buckets that closed), and returns the
    /// layout id and packed values for the poll's row. A host's first poll since the writer
    /// started rebuilds its state from what is stored first.
    pub async fn record(
        &mut self,
        stage: &mut Stage,
        db: &impl ConnectionTrait,
        host_id: i64,
        sampled_ms: i64,
        values: &[MetricValue],
    ) -> Result<(i64, Vec<u8>)> {
        if let std::collections::hash_map::Entry::Vacant(slot) = stage.hosts.entry(host_id) {
            let state = match self.hosts.remove(&host_id) {
                Some(s) => s,
                None => start(db, host_id, sampled_ms).await?,
            };
            slot.insert(state);
        }
        let host = stage.hosts.get_mut(&host_id).expect("inserted above");
        let layout = layout_for(db, host, host_id, values).await?;
        let data = series::encode_values(&values.iter().map(|v| Some(v.value)).collect::<Vec<_>>());

        let minute = Tier::Minute.bucket(sampled_ms);
        if minute < host.minutes_through || host.open.as_ref().is_some_and(|o| minute < o.start) {
            // Later than its minute was written (a slow poll, a clock step): that minute is
            // rebuilt from raw polls once this one is stored with them.
            late_minute(db, host, host_id, minute, &layout, &data).await?;
            return Ok((layout.id, data));
        }
        if host.open.as_ref().is_some_and(|o| o.start != minute) {
            close_minute(db, host, host_id).await?;
        }
        host.open
            .get_or_insert_with(|| Sums::new(minute))
            .add_poll(&layout, values);
        Ok((layout.id, data))
    }

    /// Writes the buckets of hosts that stopped sending polls once they are long over.
    pub async fn sweep(
        &mut self,
        stage: &mut Stage,
        db: &impl ConnectionTrait,
        now_ms: i64,
    ) -> Result<()> {
        let hosts_due: Vec<i64> = self
            .hosts
            .iter()
            .filter(|(_, state)| {
                let (minute_due, bucket_due) = due(state, now_ms);
                minute_due || bucket_due
            })
            .map(|(id, _)| *id)
            .collect();
        for host_id in hosts_due {
            let mut host = self.hosts.remove(&host_id).expect("listed above");
            let (minute_due, _) = due(&host, now_ms);
            if minute_due {
                close_minute(db, &mut host, host_id).await?;
            }
            for (slot, tier) in [Tier::TenMinutes, Tier::Hour].into_iter().enumerate() {
                if let Some(p) = host.pending[slot]
                    && p + tier.width_ms() + BUCKET_GRACE_MS <= now_ms
                    && host.open.is_none()
                {
                    host.pending[slot] = None;
                    build(db, &mut host, host_id, tier, p).await?;
                    if let Some(coarser) = tier.coarser() {
                        note_written(db, &mut host, host_id, coarser, p).await?;
                    }
                }
            }
            stage.hosts.insert(host_id, host);
        }
        Ok(())
    }
}

/// Whether a host's open minute, and whether one of its pending buckets, is long enough over to
/// write without waiting for its next poll.
fn due(state: &HostHistory, now_ms: i64) -> (bool, bool) {
    let minute = state
        .open
        .as_ref()
        .is_some_and(|o| o.start + Tier::Minute.width_ms() + MINUTE_GRACE_MS <= now_ms);
    let bucket = [Tier::TenMinutes, Tier::Hour]
        .iter()
        .zip(state.pending)
        .any(|(t, p)| p.is_some_and(|p| p + t.width_ms() + BUCKET_GRACE_MS <= now_ms));
    (minute, bucket)
}

/// The host's layout for `values` (its current one when the keys match, as they almost always
/// do), written when new.
async fn layout_for(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    values: &[MetricValue],
) -> Result<Arc<Layout>> {
    let matches = |l: &Layout| {
        l.keys.len() == values.len()
            && l.keys
                .iter()
                .zip(values)
                .all(|(k, v)| k.name == v.name && k.label == v.label)
    };
    if let Some(current) = host.current.as_ref().filter(|l| matches(l)) {
        return Ok(current.clone());
    }
    let layout = match host.layouts.iter().rev().find(|l| matches(l)) {
        Some(l) => l.clone(),
        None => {
            let keys = values
                .iter()
                .map(|v| SeriesKey::new(v.name, v.label.clone()))
                .collect();
            let l = stored::insert_layout(db, host_id, keys).await?;
            host.layouts.push(l.clone());
            l
        }
    };
    host.current = Some(layout.clone());
    Ok(layout)
}

/// The layout of the host whose keys are `keys`, written when new.
async fn layout_of_keys(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    keys: &[SeriesKey],
) -> Result<Arc<Layout>> {
    if let Some(l) = host.layouts.iter().rev().find(|l| l.keys == keys) {
        return Ok(l.clone());
    }
    let l = stored::insert_layout(db, host_id, keys.to_vec()).await?;
    host.layouts.push(l.clone());
    Ok(l)
}

/// Writes `sums` as a bucket of `tier`.
async fn write_bucket(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    tier: Tier,
    sums: &Sums,
) -> Result<()> {
    if sums.aggs.is_empty() {
        return Ok(());
    }
    let layout = match &sums.shared {
        Some(l) => l.clone(),
        None => layout_of_keys(db, host, host_id, &sums.own).await?,
    };
    let row = PackedRow {
        host_id,
        start: sums.start,
        layout_id: layout.id,
        data: series::encode_aggregates(&sums.aggs),
    };
    stored::upsert_buckets(db, tier, std::slice::from_ref(&row)).await
}

/// Writes the open minute and notes it for the coarser tiers.
async fn close_minute(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
) -> Result<()> {
    let Some(open) = host.open.take() else {
        return Ok(());
    };
    write_bucket(db, host, host_id, Tier::Minute, &open).await?;
    host.minutes_through = open.start + Tier::Minute.width_ms();
    note_written(db, host, host_id, Tier::TenMinutes, open.start).await
}

/// Notes that a row inside `tier`'s bucket at `ts` was written: the bucket pending before, if
/// it is another one, is over and is built (and noted in turn for the tier above).
async fn note_written(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    tier: Tier,
    ts: i64,
) -> Result<()> {
    let slot = match tier {
        Tier::TenMinutes => 0,
        Tier::Hour => 1,
        _ => return Ok(()),
    };
    let bucket = tier.bucket(ts);
    match host.pending[slot] {
        Some(p) if p == bucket => Ok(()),
        Some(p) if p > bucket => Ok(()),
        previous => {
            host.pending[slot] = Some(bucket);
            if let Some(p) = previous {
                build(db, host, host_id, tier, p).await?;
                if let Some(coarser) = tier.coarser() {
                    Box::pin(note_written(db, host, host_id, coarser, p)).await?;
                }
            }
            Ok(())
        }
    }
}

/// Builds `tier`'s bucket at `start` from the finer tier's stored rows.
async fn build(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    tier: Tier,
    start: i64,
) -> Result<()> {
    let finer = tier.finer().expect("a rollup tier");
    let rows = stored::tier_rows(db, finer, &[host_id], start, start + tier.width_ms()).await?;
    write_built(db, host, host_id, tier, start, &rows).await
}

/// Writes `tier`'s bucket at `start` summed from `rows`, its finer tier's rows in it. A
/// 10-minute bucket's minutes are stored as one chunk from then on.
async fn write_built(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    tier: Tier,
    start: i64,
    rows: &[PackedRow],
) -> Result<()> {
    let finer = tier.finer().expect("a rollup tier");
    let mut sums = Sums::new(start);
    for row in rows {
        if let Some(layout) = known_layout(db, host, host_id, row.layout_id).await? {
            sums.add_row(finer, &layout, &row.data);
        }
    }
    write_bucket(db, host, host_id, tier, &sums).await?;
    if tier == Tier::TenMinutes {
        stored::store_minute_chunk(db, host_id, start, rows).await?;
    }
    Ok(())
}

/// A layout by id, read when the writer has not seen it (rows written before a layout change
/// this writer did not see).
async fn known_layout(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    id: i64,
) -> Result<Option<Arc<Layout>>> {
    if let Some(l) = host.layout(id) {
        return Ok(Some(l.clone()));
    }
    let Some(l) = stored::layouts(db, Some(&[host_id])).await?.remove(&id) else {
        return Ok(None);
    };
    host.layouts.push(l.clone());
    Ok(Some(l))
}

/// A poll for a minute already written: the minute is rebuilt from its raw polls and this one,
/// and the coarser buckets already built over it are rebuilt too.
async fn late_minute(
    db: &impl ConnectionTrait,
    host: &mut HostHistory,
    host_id: i64,
    minute: i64,
    layout: &Arc<Layout>,
    data: &[u8],
) -> Result<()> {
    let rows = stored::raw_rows(db, &[host_id], minute, minute + Tier::Minute.width_ms()).await?;
    let mut sums = Sums::new(minute);
    for row in &rows {
        if let Some(l) = known_layout(db, host, host_id, row.layout_id).await? {
            sums.add_row(Tier::Raw, &l, &row.data);
        }
    }
    sums.add_row(Tier::Raw, layout, data);
    write_bucket(db, host, host_id, Tier::Minute, &sums).await?;
    for (slot, tier) in [Tier::TenMinutes, Tier::Hour].into_iter().enumerate() {
        let bucket = tier.bucket(minute);
        // The pending bucket is built when it ends; one built already is built again.
        if host.pending[slot] != Some(bucket) {
            build(db, host, host_id, tier, bucket).await?;
        }
    }
    Ok(())
}

/// A host's state at its first poll since the writer started, taken at `first_ms` (or, for a
/// host the catch-up reaches first, at the time it does): its layouts, and its current minute
/// summed from the polls already stored in it.
async fn start(db: &impl ConnectionTrait, host_id: i64, first_ms: i64) -> Result<HostHistory> {
    let mut layouts: Vec<Arc<Layout>> = stored::layouts(db, Some(&[host_id]))
        .await?
        .into_values()
        .collect();
    layouts.sort_by_key(|l| l.id);
    let minute = Tier::Minute.bucket(first_ms);
    let written_to = stored::latest_bucket(db, Tier::Minute, host_id, i64::MAX)
        .await?
        .map_or(i64::MIN, |b| b + Tier::Minute.width_ms());
    let mut host = HostHistory {
        current: layouts.last().cloned(),
        layouts,
        minutes_through: minute.max(written_to),
        pending: [
            Some(Tier::TenMinutes.bucket(first_ms)),
            Some(Tier::Hour.bucket(first_ms)),
        ],
        since: minute,
        ..Default::default()
    };
    // A minute written already (a clock stepped back) is rebuilt as late polls come.
    if written_to <= minute {
        let rows = stored::raw_rows(db, &[host_id], minute, first_ms).await?;
        let mut open = Sums::new(minute);
        for row in &rows {
            if let Some(layout) = known_layout(db, &mut host, host_id, row.layout_id).await? {
                open.add_row(Tier::Raw, &layout, &row.data);
            }
        }
        if !open.aggs.is_empty() {
            host.open = Some(open);
        }
    }
    Ok(host)
}

/// Writes the host's buckets that ended before its state begins (`since`) and were never
/// written: minutes from its raw polls after its newest minute row, then each coarser tier from
/// the one below it after its newest row.
async fn catch_up(db: &impl ConnectionTrait, host: &mut HostHistory, host_id: i64) -> Result<()> {
    for tier in Tier::ROLLUPS {
        let finer = tier.finer().expect("a rollup tier");
        // Buckets from here on are the writer's: pending, open, or written since it started
        // (which say nothing of what is missing before them).
        let until = tier.bucket(host.since);
        let latest = stored::latest_bucket(db, tier, host_id, until).await?;
        let from = latest.map_or(i64::MIN / 2, |b| b + tier.width_ms());
        if from >= until {
            continue;
        }
        let rows = stored::tier_rows(db, finer, &[host_id], from, until).await?;
        // Rows come in time order: each run of one bucket's rows is that bucket.
        for run in rows.chunk_by(|a, b| tier.bucket(a.start) == tier.bucket(b.start)) {
            write_built(db, host, host_id, tier, tier.bucket(run[0].start), run).await?;
        }
    }
    // The coarser buckets the state begins in hold minutes written just now: one the writer
    // already built (it ended before this ran) is built again.
    for (slot, tier) in [Tier::TenMinutes, Tier::Hour].into_iter().enumerate() {
        let first = tier.bucket(host.since);
        if host.pending[slot] != Some(first) {
            build(db, host, host_id, tier, first).await?;
        }
    }
    host.caught_up = true;
    Ok(())
}
