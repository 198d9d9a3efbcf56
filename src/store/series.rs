//! Metric history as stored: layouts (a host's series keys), raw polls' packed values, rollup
//! buckets; and the reads that answer step queries, fleet questions and exports over them.
//!
//! A read goes down the tiers: the coarsest one the query plan names answers the range up to
//! the end of its newest bucket for each host, and what lies after — the current hour, which
//! no 1-hour bucket holds yet — comes from the next finer tier, down to the raw polls, so a
//! chart of a month ends at the latest poll like a chart of an hour does.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use entity::{
    poll,
    series::{self, Aggregate, SeriesKey},
    series_layout,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Alias, Expr, ExprTrait, OnConflict, Query},
};

use crate::{error::Result, store::polls::ladder_chunks, tiers::Tier};

/// How long before a range's start a poll may have started and still have taken its values
/// inside the range. Polls are found by when they started (the indexed column) and their values
/// belong to when they were taken, a poll's duration later. An hour is 120 times the default
/// 30 s poll deadline; a poll that took longer would be missed at a range's very start.
pub const POLL_SPAN_MS: i64 = 3_600_000;

/// Hosts per statement of a fleet-wide read.
const HOSTS_PER_READ: usize = 256;

/// A host's series keys as one `series_layouts` row stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub id: i64,
    pub host_id: i64,
    pub keys: Vec<SeriesKey>,
}

/// The layouts of `host_ids` (every host's when `None`), by id; a row whose keys cannot be read
/// is left out (its rows read as no values).
pub async fn layouts(
    db: &impl ConnectionTrait,
    host_ids: Option<&[i64]>,
) -> Result<HashMap<i64, Arc<Layout>>> {
    let mut rows = Vec::new();
    match host_ids {
        None => rows = series_layout::Entity::find().all(db).await?,
        Some(ids) => {
            for chunk in ids.chunks(HOSTS_PER_READ) {
                rows.extend(
                    series_layout::Entity::find()
                        .filter(series_layout::Column::HostId.is_in(chunk.iter().copied()))
                        .all(db)
                        .await?,
                );
            }
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                r.id,
                Arc::new(Layout {
                    id: r.id,
                    host_id: r.host_id,
                    keys: series::keys_from_json(&r.keys)?,
                }),
            ))
        })
        .collect())
}

/// Stores a new layout of `host_id`; returns it.
pub async fn insert_layout(
    db: &impl ConnectionTrait,
    host_id: i64,
    keys: Vec<SeriesKey>,
) -> Result<Arc<Layout>> {
    let row = series_layout::ActiveModel {
        host_id: sea_orm::Set(host_id),
        keys: sea_orm::Set(series::keys_to_json(&keys)),
        ..Default::default()
    };
    let id = series_layout::Entity::insert(row)
        .exec(db)
        .await?
        .last_insert_id;
    Ok(Arc::new(Layout { id, host_id, keys }))
}

/// One stored row of packed values: a raw poll (`start` is when its values were taken) or a
/// rollup bucket (`start` is the bucket's).
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct PackedRow {
    pub host_id: i64,
    pub start: i64,
    pub layout_id: i64,
    pub data: Vec<u8>,
}

/// The raw polls of `host_ids` whose values were taken in `[from_ms, to_ms)`, by host then time.
pub async fn raw_rows(
    db: &impl ConnectionTrait,
    host_ids: &[i64],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<PackedRow>> {
    use poll::Column as P;
    let mut out = Vec::new();
    for chunk in host_ids.chunks(HOSTS_PER_READ) {
        out.extend(
            poll::Entity::find()
                .select_only()
                .column(P::HostId)
                .column_as(P::SampledAt, "start")
                .column(P::LayoutId)
                .column(P::Data)
                .filter(P::HostId.is_in(chunk.iter().copied()))
                .filter(P::StartedAt.gte(from_ms.saturating_sub(POLL_SPAN_MS)))
                .filter(P::StartedAt.lt(to_ms))
                .filter(P::SampledAt.gte(from_ms))
                .filter(P::SampledAt.lt(to_ms))
                .filter(P::Data.is_not_null())
                .filter(P::LayoutId.is_not_null())
                .order_by_asc(P::HostId)
                .order_by_asc(P::StartedAt)
                .into_model::<PackedRow>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

fn table(tier: Tier) -> Alias {
    Alias::new(match tier {
        Tier::Raw => "polls",
        Tier::Minute => "rollups_1m",
        Tier::TenMinutes => "rollups_10m",
        Tier::Hour => "rollups_1h",
    })
}

/// The buckets of a rollup tier for `host_ids` starting in `[from_ms, to_ms)`, by host then
/// time; of the minute tier, the single rows only (see [`minute_rows`]).
pub async fn bucket_rows(
    db: &impl ConnectionTrait,
    tier: Tier,
    host_ids: &[i64],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<PackedRow>> {
    debug_assert!(tier != Tier::Raw);
    let mut out = Vec::new();
    for chunk in host_ids.chunks(HOSTS_PER_READ) {
        let select = Query::select()
            .column("host_id")
            .expr_as(Expr::col("bucket_start"), "start")
            .columns(["layout_id", "data"])
            .from(table(tier))
            .and_where(Expr::col("host_id").is_in(chunk.iter().copied()))
            .and_where(Expr::col("bucket_start").gte(from_ms))
            .and_where(Expr::col("bucket_start").lt(to_ms))
            .order_by("host_id", sea_orm::Order::Asc)
            .order_by("bucket_start", sea_orm::Order::Asc)
            .take();
        out.extend(
            PackedRow::find_by_statement(db.get_database_backend().build(&select))
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

/// Where a host's minute buckets are once their 10-minute bucket is built: ten to a row.
const MINUTE_CHUNKS: &str = "rollups_1m_chunks";

/// The minute buckets of `host_ids` starting in `[from_ms, to_ms)`, by host then time: the
/// chunks' minutes, and the single minute rows after them (a single row is the newer copy of
/// a minute a chunk holds too: a late poll rewrote it, and its chunk is rebuilt next).
pub async fn minute_rows(
    db: &impl ConnectionTrait,
    host_ids: &[i64],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<PackedRow>> {
    #[derive(FromQueryResult)]
    struct MinuteRow {
        chunked: i32,
        host_id: i64,
        start: i64,
        layout_id: i64,
        data: Vec<u8>,
    }
    let chunk_from = Tier::TenMinutes.bucket(from_ms);
    let mut out = Vec::new();
    for hosts in host_ids.chunks(HOSTS_PER_READ) {
        // One statement: one snapshot (the writer moving minutes into a chunk between two
        // reads would hide them from both), and one round trip to the database.
        let select = |table: Alias, chunked: i32, from: i64| {
            Query::select()
                .expr_as(Expr::val(chunked), "chunked")
                .column("host_id")
                .expr_as(Expr::col("bucket_start"), "start")
                .columns(["layout_id", "data"])
                .from(table)
                .and_where(Expr::col("host_id").is_in(hosts.iter().copied()))
                .and_where(Expr::col("bucket_start").gte(from))
                .and_where(Expr::col("bucket_start").lt(to_ms))
                .take()
        };
        let union = select(Alias::new(MINUTE_CHUNKS), 1, chunk_from)
            .union(
                sea_orm::sea_query::UnionType::All,
                select(table(Tier::Minute), 0, from_ms),
            )
            .take();
        let rows = MinuteRow::find_by_statement(db.get_database_backend().build(&union))
            .all(db)
            .await?;
        let (chunks, singles): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.chunked == 1);
        let single = |r: MinuteRow| PackedRow {
            host_id: r.host_id,
            start: r.start,
            layout_id: r.layout_id,
            data: r.data,
        };
        let mut minutes: BTreeMap<(i64, i64), PackedRow> = BTreeMap::new();
        if chunks.is_empty() {
            let mut singles: Vec<PackedRow> = singles.into_iter().map(single).collect();
            singles.sort_unstable_by_key(|r| (r.host_id, r.start));
            out.extend(singles);
            continue;
        }
        for c in &chunks {
            // A chunk that does not decode reads as no values, like a row of an unknown layout.
            let Some(entries) = series::decode_minutes(c.start, c.layout_id, &c.data) else {
                continue;
            };
            for m in entries {
                if m.start >= from_ms && m.start < to_ms {
                    minutes.insert(
                        (c.host_id, m.start),
                        PackedRow {
                            host_id: c.host_id,
                            start: m.start,
                            layout_id: m.layout_id,
                            data: m.data.to_vec(),
                        },
                    );
                }
            }
        }
        for r in singles {
            minutes.insert((r.host_id, r.start), single(r));
        }
        out.extend(minutes.into_values());
    }
    Ok(out)
}

/// Stores the minute buckets `minutes` of one host's 10-minute bucket at `chunk_start` as one
/// chunk (over any stored for it) and deletes their single rows.
pub async fn store_minute_chunk(
    db: &impl ConnectionTrait,
    host_id: i64,
    chunk_start: i64,
    minutes: &[PackedRow],
) -> Result<()> {
    let Some(first) = minutes.first() else {
        return Ok(());
    };
    let entries: Vec<series::MinuteEntry> = minutes
        .iter()
        .map(|m| series::MinuteEntry {
            start: m.start,
            layout_id: m.layout_id,
            data: &m.data,
        })
        .collect();
    let row = PackedRow {
        host_id,
        start: chunk_start,
        layout_id: first.layout_id,
        data: series::encode_minutes(chunk_start, first.layout_id, &entries),
    };
    upsert_into(db, Alias::new(MINUTE_CHUNKS), std::slice::from_ref(&row)).await?;
    let delete = Query::delete()
        .from_table(table(Tier::Minute))
        .and_where(Expr::col("host_id").eq(host_id))
        .and_where(Expr::col("bucket_start").gte(chunk_start))
        .and_where(Expr::col("bucket_start").lt(chunk_start + Tier::TenMinutes.width_ms()))
        .take();
    db.execute(&delete).await?;
    Ok(())
}

/// The rows of any tier for `host_ids` starting in `[from_ms, to_ms)`, by host then time: raw
/// polls, minutes (chunked or not) or buckets.
pub async fn tier_rows(
    db: &impl ConnectionTrait,
    tier: Tier,
    host_ids: &[i64],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<PackedRow>> {
    match tier {
        Tier::Raw => raw_rows(db, host_ids, from_ms, to_ms).await,
        Tier::Minute => minute_rows(db, host_ids, from_ms, to_ms).await,
        _ => bucket_rows(db, tier, host_ids, from_ms, to_ms).await,
    }
}

/// The start of the host's newest bucket of `tier` starting before `before_ms`.
pub async fn latest_bucket(
    db: &impl ConnectionTrait,
    tier: Tier,
    host_id: i64,
    before_ms: i64,
) -> Result<Option<i64>> {
    #[derive(FromQueryResult)]
    struct Latest {
        start: Option<i64>,
    }
    let select = Query::select()
        .expr_as(Expr::col("bucket_start").max(), "start")
        .from(table(tier))
        .and_where(Expr::col("host_id").eq(host_id))
        .and_where(Expr::col("bucket_start").lt(before_ms))
        .take();
    let latest = Latest::find_by_statement(db.get_database_backend().build(&select))
        .one(db)
        .await?
        .and_then(|l| l.start);
    if tier != Tier::Minute {
        return Ok(latest);
    }
    // Minutes are single rows only after the newest chunk; with none, the chunk's last minute.
    let select = Query::select()
        .column("host_id")
        .expr_as(Expr::col("bucket_start"), "start")
        .columns(["layout_id", "data"])
        .from(Alias::new(MINUTE_CHUNKS))
        .and_where(Expr::col("host_id").eq(host_id))
        .and_where(Expr::col("bucket_start").lt(before_ms))
        .order_by("bucket_start", sea_orm::Order::Desc)
        .limit(1)
        .take();
    let chunk = PackedRow::find_by_statement(db.get_database_backend().build(&select))
        .one(db)
        .await?;
    let chunked = chunk.and_then(|c| {
        series::decode_minutes(c.start, c.layout_id, &c.data)?
            .iter()
            .map(|m| m.start)
            .filter(|start| *start < before_ms)
            .max()
    });
    Ok(Ord::max(latest, chunked))
}

/// Writes buckets of a rollup tier over any stored for the same host and start (a bucket is
/// always written whole, so the newer one is the right one).
pub async fn upsert_buckets(
    db: &impl ConnectionTrait,
    tier: Tier,
    rows: &[PackedRow],
) -> Result<()> {
    upsert_into(db, table(tier), rows).await
}

async fn upsert_into(db: &impl ConnectionTrait, table: Alias, rows: &[PackedRow]) -> Result<()> {
    for chunk in ladder_chunks(rows, 64) {
        let mut insert = Query::insert();
        insert
            .into_table(table.clone())
            .columns(["host_id", "bucket_start", "layout_id", "data"]);
        for r in chunk {
            insert.values_panic([
                r.host_id.into(),
                r.start.into(),
                r.layout_id.into(),
                r.data.clone().into(),
            ]);
        }
        insert.on_conflict(
            OnConflict::columns([Alias::new("host_id"), Alias::new("bucket_start")])
                .update_columns([Alias::new("layout_id"), Alias::new("data")])
                .to_owned(),
        );
        db.execute(&insert).await?;
    }
    Ok(())
}

/// Deletes the buckets of `tier` older than `cutoff_ms`, at most `chunk` per statement; says
/// how many rows went (a chunk of minutes is one). The tables are keyed by host first, so the
/// oldest buckets are found host by host.
pub async fn purge_tier(
    db: &impl ConnectionTrait,
    tier: Tier,
    host_ids: &[i64],
    cutoff_ms: i64,
    chunk: u64,
) -> Result<u64> {
    let mut deleted = purge_table(db, table(tier), host_ids, cutoff_ms, chunk).await?;
    if tier == Tier::Minute {
        // A chunk goes once all its minutes are past the cutoff: its last one starts 9 minutes
        // after it does.
        let whole = cutoff_ms - 9 * Tier::Minute.width_ms();
        deleted += purge_table(db, Alias::new(MINUTE_CHUNKS), host_ids, whole, chunk).await?;
    }
    Ok(deleted)
}

async fn purge_table(
    db: &impl ConnectionTrait,
    table: Alias,
    host_ids: &[i64],
    cutoff_ms: i64,
    chunk: u64,
) -> Result<u64> {
    let mut deleted = 0;
    for hosts in host_ids.chunks(HOSTS_PER_READ) {
        loop {
            let doomed = Query::select()
                .columns(["host_id", "bucket_start"])
                .from(table.clone())
                .and_where(Expr::col("host_id").is_in(hosts.iter().copied()))
                .and_where(Expr::col("bucket_start").lt(cutoff_ms))
                .limit(chunk)
                .take();
            let delete = Query::delete()
                .from_table(table.clone())
                .and_where(
                    Expr::tuple([Expr::col("host_id"), Expr::col("bucket_start")])
                        .in_subquery(doomed),
                )
                .take();
            let n = db.execute(&delete).await?.rows_affected();
            deleted += n;
            if n < chunk {
                break;
            }
        }
    }
    Ok(deleted)
}

/// Which series of a host a read wants.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Metric names; every metric when empty.
    pub names: Vec<String>,
    /// One label; every label when `None`.
    pub label: Option<String>,
}

impl KeyFilter {
    fn wants(&self, key: &SeriesKey) -> bool {
        (self.names.is_empty() || self.names.contains(&key.name))
            && self.label.as_ref().is_none_or(|l| *l == key.label)
    }
}

/// A read over one or many hosts.
#[derive(Debug, Clone)]
pub struct Read {
    pub host_ids: Vec<i64>,
    pub keys: KeyFilter,
    /// The coarsest tier to read; finer ones fill in after its newest bucket.
    pub tier: Tier,
    pub from_ms: i64,
    /// Exclusive.
    pub to_ms: i64,
    /// Width of the buckets answered; `None`: one bucket for the whole range.
    pub step_ms: Option<i64>,
}

/// What a read found: per host and series, buckets by start.
pub type Found = BTreeMap<(i64, SeriesKey), BTreeMap<i64, Aggregate>>;

/// Answers a read from the tiers (see the module's documentation).
pub async fn read(db: &impl ConnectionTrait, q: &Read) -> Result<Found> {
    let layouts = layouts(db, Some(&q.host_ids)).await?;
    let mut found = Found::new();
    // Per host: where the tiers read so far stop.
    let mut reached: HashMap<i64, i64> = q.host_ids.iter().map(|h| (*h, q.from_ms)).collect();
    // Per layout, the positions of the wanted keys and each one's number among them: buckets
    // are summed by (host, number), and a key is copied once, not once a row.
    let mut wanted: HashMap<i64, Vec<(usize, usize)>> = HashMap::new();
    let mut key_numbers: HashMap<SeriesKey, usize> = HashMap::new();
    let mut sums: HashMap<(i64, usize), BTreeMap<i64, Aggregate>> = HashMap::new();
    let mut tier = Some(q.tier);
    while let Some(t) = tier {
        // Hosts grouped by where the tiers read so far stop for them: each group is read from
        // its own point on, so one host with no coarse buckets does not make every host's
        // finer rows be read from the range's start.
        let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (host, at) in &reached {
            if *at < q.to_ms {
                groups.entry(*at).or_default().push(*host);
            }
        }
        if groups.is_empty() {
            break;
        }
        let mut rows = Vec::new();
        for (from, mut hosts) in groups {
            hosts.sort_unstable();
            rows.extend(tier_rows(db, t, &hosts, from, q.to_ms).await?);
        }
        let mut ends: HashMap<i64, i64> = HashMap::new();
        for row in rows {
            let Some(layout) = layouts.get(&row.layout_id) else {
                continue;
            };
            let keys = wanted.entry(layout.id).or_insert_with(|| {
                layout
                    .keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| q.keys.wants(k))
                    .map(|(i, k)| {
                        let next = key_numbers.len();
                        (i, *key_numbers.entry(k.clone()).or_insert(next))
                    })
                    .collect()
            });
            let bucket = match q.step_ms {
                Some(step) => crate::tiers::floor(row.start, step),
                None => q.from_ms,
            };
            for (index, number) in keys.iter() {
                let aggregate = if t == Tier::Raw {
                    match series::decode_value(&row.data, layout.keys.len(), *index) {
                        Some(v) => Aggregate::of(v),
                        None => continue,
                    }
                } else {
                    series::decode_aggregate(&row.data, *index)
                };
                if aggregate.is_empty() {
                    continue;
                }
                sums.entry((row.host_id, *number))
                    .or_default()
                    .entry(bucket)
                    .or_default()
                    .merge(&aggregate);
            }
            let end = row.start + t.width_ms();
            let e = ends.entry(row.host_id).or_insert(end);
            *e = Ord::max(*e, end);
        }
        for (host, end) in ends {
            reached.insert(host, end);
        }
        tier = t.finer();
    }
    let mut keys: Vec<Option<SeriesKey>> = vec![None; key_numbers.len()];
    for (key, number) in key_numbers {
        keys[number] = Some(key);
    }
    for ((host, number), buckets) in sums {
        if let Some(key) = &keys[number] {
            found.insert((host, key.clone()), buckets);
        }
    }
    Ok(found)
}

/// One raw poll's values, for an export.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub poll_id: i64,
    pub started_at: i64,
    pub sampled_at: i64,
    pub values: Vec<(SeriesKey, f64)>,
}

/// Where an export has got to: the last poll written.
pub type ExportCursor = Option<(i64, i64)>;

/// The next `limit` raw polls of `host_id` taken in `[from_ms, to_ms)` after `cursor`, oldest
/// first, with the layouts seen so far in `layouts` (filled as needed).
pub async fn export_page(
    db: &impl ConnectionTrait,
    host_id: i64,
    from_ms: i64,
    to_ms: i64,
    cursor: ExportCursor,
    limit: u64,
    layouts_seen: &mut HashMap<i64, Arc<Layout>>,
) -> Result<Vec<ExportRow>> {
    use poll::Column as P;
    #[derive(FromQueryResult)]
    struct Row {
        id: i64,
        started_at: i64,
        sampled_at: i64,
        layout_id: i64,
        data: Vec<u8>,
    }
    let mut query = poll::Entity::find()
        .select_only()
        .columns([P::Id, P::StartedAt, P::SampledAt, P::LayoutId, P::Data])
        .filter(P::HostId.eq(host_id))
        .filter(P::StartedAt.gte(from_ms.saturating_sub(POLL_SPAN_MS)))
        .filter(P::StartedAt.lt(to_ms))
        .filter(P::SampledAt.gte(from_ms))
        .filter(P::SampledAt.lt(to_ms))
        .filter(P::Data.is_not_null())
        .filter(P::LayoutId.is_not_null());
    if let Some((started, id)) = cursor {
        query = query.filter(
            sea_orm::Condition::any()
                .add(P::StartedAt.gt(started))
                .add(P::StartedAt.eq(started).and(P::Id.gt(id))),
        );
    }
    let rows = query
        .order_by_asc(P::StartedAt)
        .order_by_asc(P::Id)
        .limit(limit)
        .into_model::<Row>()
        .all(db)
        .await?;
    let missing: HashSet<i64> = rows
        .iter()
        .map(|r| r.layout_id)
        .filter(|id| !layouts_seen.contains_key(id))
        .collect();
    if !missing.is_empty() {
        layouts_seen.extend(layouts(db, Some(&[host_id])).await?);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let values = match layouts_seen.get(&r.layout_id) {
                Some(layout) => layout
                    .keys
                    .iter()
                    .zip(series::decode_values(&r.data, layout.keys.len()))
                    .filter_map(|(k, v)| Some((k.clone(), v?)))
                    .collect(),
                None => Vec::new(),
            };
            ExportRow {
                poll_id: r.id,
                started_at: r.started_at,
                sampled_at: r.sampled_at,
                values,
            }
        })
        .collect())
}
