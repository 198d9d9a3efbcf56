//! History in one compact raw form with rollup tiers beside it.
//!
//! A poll's values were a JSON text in its `polls` row, about a kilobyte a poll once indexed:
//! at 10,000 hosts every 10 s, 90 GB a day. Now a host's (metric, label) keys are stored once in
//! `series_layouts` and a poll packs only its numbers (`polls.data`, see
//! `entity::series`), about a tenth of the size. Every existing poll is converted here, and
//! the two older forms (`metric_samples` rows, `metric_sample_sets` rows) are converted into
//! the `polls` rows they belonged to and their tables dropped: one format is read, not three.
//!
//! `rollups_1m`, `rollups_10m` and `rollups_1h` hold, per host and bucket, each series' count,
//! average, minimum and maximum, packed against a layout the same way. Keyed by (host, bucket)
//! and nothing else — on SQLite `WITHOUT ROWID`, so the key is the table and no second index
//! doubles it. `rollups_1m_chunks` holds the same minute buckets ten to a row (one per host and
//! 10-minute bucket) once their 10-minute bucket is built, and `rollups_1m` only the minutes
//! after: a day of minutes is 144 rows to read, not 1,440. The service builds them from the raw
//! rows when it starts (this migration does not: the service also does it after a crash, with
//! one code path).

use std::collections::{BTreeMap, HashMap};

use entity::series::{SeriesKey, encode_values, keys_to_json};
use sea_orm_migration::{
    SchemaManagerConnection,
    prelude::*,
    schema::*,
    sea_orm::{ConnectionTrait, DatabaseBackend, FromQueryResult, TransactionTrait},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The rollup tables, finest first.
pub const ROLLUP_TABLES: [&str; 4] = [
    "rollups_1m",
    "rollups_1m_chunks",
    "rollups_10m",
    "rollups_1h",
];

/// Rows converted per transaction.
const PAGE: u64 = 500;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("series_layouts")
                    .col(big_pk_auto("id"))
                    .col(big_integer("host_id"))
                    .col(text("keys"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_series_layouts_host_id")
                            .from("series_layouts", "host_id")
                            .to("hosts", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_series_layouts_host_id")
                    .table("series_layouts")
                    .col("host_id")
                    .take(),
            )
            .await?;
        for mut column in [big_integer_null("layout_id"), blob("data").null().take()] {
            manager
                .alter_table(Table::alter().table("polls").add_column(&mut column).take())
                .await?;
        }
        let sqlite = manager.get_database_backend() == DatabaseBackend::Sqlite;
        for table in ROLLUP_TABLES {
            let mut create = Table::create();
            create
                .table(table)
                .col(big_integer("host_id"))
                .col(big_integer("bucket_start"))
                .col(big_integer("layout_id"))
                .col(blob("data"))
                .primary_key(Index::create().col("host_id").col("bucket_start"))
                .foreign_key(
                    ForeignKey::create()
                        .name(format!("fk_{table}_host_id"))
                        .from(table, "host_id")
                        .to("hosts", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                );
            if sqlite {
                create.extra("WITHOUT ROWID");
            }
            manager.create_table(create.take()).await?;
        }

        let db = manager.get_connection();
        let mut layouts = Layouts::default();
        convert_polls(db, &mut layouts).await?;
        convert_sets(db, &mut layouts).await?;
        convert_single_samples(db, &mut layouts).await?;

        manager
            .drop_table(Table::drop().table("metric_sample_sets").take())
            .await?;
        manager
            .drop_table(Table::drop().table("metric_samples").take())
            .await?;
        for column in ["samples", "sample_count"] {
            manager
                .alter_table(Table::alter().table("polls").drop_column(column).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the compact history cannot be turned back into JSON; restore a backup instead".into(),
        ))
    }
}

/// The layouts written so far, per host and key list.
#[derive(Default)]
struct Layouts(HashMap<(i64, String), i64>);

impl Layouts {
    async fn id(
        &mut self,
        db: &impl ConnectionTrait,
        host_id: i64,
        keys: &[SeriesKey],
    ) -> Result<i64, DbErr> {
        let json = keys_to_json(keys);
        if let Some(id) = self.0.get(&(host_id, json.clone())) {
            return Ok(*id);
        }
        let mut insert = Query::insert();
        insert
            .into_table("series_layouts")
            .columns(["host_id", "keys"])
            .values_panic([host_id.into(), json.clone().into()]);
        let id = if db.get_database_backend() == DatabaseBackend::Postgres {
            insert.returning_col("id");
            let row = db
                .query_one(&insert)
                .await?
                .ok_or_else(|| DbErr::Migration("no id returned".into()))?;
            row.try_get::<i64>("", "id")?
        } else {
            db.execute(&insert).await?.last_insert_id() as i64
        };
        self.0.insert((host_id, json), id);
        Ok(id)
    }

    /// A packed form of `{"<name>": {"<label>": value}}`, or `None` when it is not that.
    async fn pack(
        &mut self,
        db: &impl ConnectionTrait,
        host_id: i64,
        values: &BTreeMap<String, BTreeMap<String, Option<f64>>>,
    ) -> Result<Option<(i64, Vec<u8>)>, DbErr> {
        let mut keys = Vec::new();
        let mut numbers = Vec::new();
        for (name, labels) in values {
            for (label, value) in labels {
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    keys.push(SeriesKey::new(name.clone(), label.clone()));
                    numbers.push(Some(v));
                }
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        let layout = self.id(db, host_id, &keys).await?;
        Ok(Some((layout, encode_values(&numbers))))
    }
}

type Packed = BTreeMap<String, BTreeMap<String, Option<f64>>>;

#[derive(FromQueryResult)]
struct JsonPoll {
    id: i64,
    host_id: i64,
    samples: String,
}

/// Every poll's JSON values into `layout_id` and `data`.
async fn convert_polls(
    db: &SchemaManagerConnection<'_>,
    layouts: &mut Layouts,
) -> Result<(), DbErr> {
    let mut after = 0i64;
    loop {
        let select = Query::select()
            .columns(["id", "host_id", "samples"])
            .from("polls")
            .and_where(Expr::col("id").gt(after))
            .and_where(Expr::col("samples").is_not_null())
            .order_by("id", Order::Asc)
            .limit(PAGE)
            .take();
        let rows = JsonPoll::find_by_statement(db.get_database_backend().build(&select))
            .all(db)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.id;
        let txn = db.begin().await?;
        for row in rows {
            let values: Packed = serde_json::from_str(&row.samples).unwrap_or_default();
            if let Some((layout, data)) = layouts.pack(&txn, row.host_id, &values).await? {
                txn.execute(
                    &Query::update()
                        .table("polls")
                        .values([("layout_id", layout.into()), ("data", data.into())])
                        .and_where(Expr::col("id").eq(row.id))
                        .take(),
                )
                .await?;
            }
        }
        txn.commit().await?;
    }
}

#[derive(FromQueryResult)]
struct SetRow {
    id: i64,
    host_id: i64,
    ts: i64,
    samples: String,
}

/// `metric_sample_sets` rows into the polls they were written with.
async fn convert_sets(
    db: &SchemaManagerConnection<'_>,
    layouts: &mut Layouts,
) -> Result<(), DbErr> {
    let mut after = 0i64;
    loop {
        let select = Query::select()
            .columns(["id", "host_id", "ts", "samples"])
            .from("metric_sample_sets")
            .and_where(Expr::col("id").gt(after))
            .order_by("id", Order::Asc)
            .limit(PAGE)
            .take();
        let rows = SetRow::find_by_statement(db.get_database_backend().build(&select))
            .all(db)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.id;
        let txn = db.begin().await?;
        for row in rows {
            let values: Packed = serde_json::from_str(&row.samples).unwrap_or_default();
            attach(&txn, layouts, row.host_id, row.ts, &values).await?;
        }
        txn.commit().await?;
    }
}

#[derive(FromQueryResult)]
struct SampleRow {
    host_id: i64,
    ts: i64,
    name: String,
    label: String,
    value: f64,
}

/// `metric_samples` rows, grouped by host and time, into the polls they were written with.
async fn convert_single_samples(
    db: &SchemaManagerConnection<'_>,
    layouts: &mut Layouts,
) -> Result<(), DbErr> {
    let mut after: Option<(i64, i64)> = None;
    loop {
        let mut select = Query::select();
        select
            .columns(["host_id", "ts", "name", "label", "value"])
            .from("metric_samples")
            .order_by("host_id", Order::Asc)
            .order_by("ts", Order::Asc)
            .limit(PAGE * 30);
        if let Some((host, ts)) = after {
            select.cond_where(
                Cond::any()
                    .add(Expr::col("host_id").gt(host))
                    .add(Expr::col("host_id").eq(host).and(Expr::col("ts").gt(ts))),
            );
        }
        let rows = SampleRow::find_by_statement(db.get_database_backend().build(&select))
            .all(db)
            .await?;
        let full = rows.len() as u64 == PAGE * 30;
        let mut groups: BTreeMap<(i64, i64), Packed> = BTreeMap::new();
        for r in rows {
            groups
                .entry((r.host_id, r.ts))
                .or_default()
                .entry(r.name)
                .or_default()
                .insert(r.label, Some(r.value));
        }
        // A full page may end inside a group: that group comes whole with the next page.
        if full && groups.len() > 1 {
            groups.pop_last();
        }
        let Some((&last, _)) = groups.last_key_value() else {
            return Ok(());
        };
        after = Some(last);
        let txn = db.begin().await?;
        for ((host, ts), values) in &groups {
            attach(&txn, layouts, *host, *ts, values).await?;
        }
        txn.commit().await?;
        if !full {
            return Ok(());
        }
    }
}

#[derive(FromQueryResult)]
struct PollId {
    id: i64,
}

/// Stores values taken at `ts` in the host's successful poll that started last before them and
/// has none yet; in a poll row of their own when there is none.
async fn attach(
    db: &impl ConnectionTrait,
    layouts: &mut Layouts,
    host_id: i64,
    ts: i64,
    values: &Packed,
) -> Result<(), DbErr> {
    let Some((layout, data)) = layouts.pack(db, host_id, values).await? else {
        return Ok(());
    };
    let select = Query::select()
        .column("id")
        .from("polls")
        .and_where(Expr::col("host_id").eq(host_id))
        .and_where(Expr::col("outcome").eq("ok"))
        .and_where(Expr::col("data").is_null())
        .and_where(Expr::col("started_at").lte(ts))
        .and_where(Expr::col("started_at").gte(ts - 3_600_000))
        .order_by("started_at", Order::Desc)
        .limit(1)
        .take();
    let poll = PollId::find_by_statement(db.get_database_backend().build(&select))
        .one(db)
        .await?;
    match poll {
        Some(p) => {
            db.execute(
                &Query::update()
                    .table("polls")
                    .values([
                        ("sampled_at", ts.into()),
                        ("layout_id", layout.into()),
                        ("data", data.into()),
                    ])
                    .and_where(Expr::col("id").eq(p.id))
                    .take(),
            )
            .await?;
        }
        None => {
            db.execute(
                &Query::insert()
                    .into_table("polls")
                    .columns([
                        "host_id",
                        "started_at",
                        "duration_ms",
                        "outcome",
                        "sampled_at",
                        "layout_id",
                        "data",
                    ])
                    .values_panic([
                        host_id.into(),
                        ts.into(),
                        0i64.into(),
                        "ok".into(),
                        ts.into(),
                        layout.into(),
                        data.into(),
                    ])
                    .take(),
            )
            .await?;
        }
    }
    Ok(())
}
