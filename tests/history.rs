//! History at every range, on SQLite and PostgreSQL: rollups equal their raw polls across a
//! writer restart mid-bucket, step queries pick their tier by range and keep gaps as gaps, the
//! migration converts a database of the previous release, and an export streams.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Backend, TestApp};
use entity::series::{self as packed, Aggregate, SeriesKey};
use hostwatch::{
    probe::MetricValue,
    store::{self, polls::OkPoll, rollups::Rollups, series},
    tiers::Tier,
};
use poem::http::StatusCode;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// Registers a host (never polled: its address answers nothing) and returns its id.
async fn host(app: &TestApp, name: &str) -> i64 {
    let (status, body) = app
        .call(
            "POST",
            "/api/v1/hosts",
            &app.admin,
            Some(
                json!({"name": name, "address": "127.0.0.1", "port": common::free_port(),
                        "username": "hw", "password": "x", "enabled": false}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// The values of a poll at `ts`: a few varying gauges, a zero, a large rate, and a second mount
/// that appears only from `mount_from` on (a layout change mid-bucket).
fn values_at(ts: i64, mount_from: i64) -> Vec<MetricValue> {
    let n = ts / 10_000;
    let v = |name: &'static str, label: &str, value: f64| MetricValue {
        name,
        label: label.into(),
        value,
    };
    let mut out = vec![
        v("cpu.usage_pct", "", (n * 7_919 % 1_000) as f64 / 10.0),
        v("memory.used_pct", "", 40.0 + (n % 13) as f64 * 0.37),
        v("swap.used_pct", "", 0.0),
        v("disk.used_pct", "/", 61.25),
        v(
            "net.rx_bytes_per_s",
            "eth0",
            1.0e6 + (n * 104_729 % 100_000) as f64,
        ),
    ];
    if ts >= mount_from {
        out.push(v("disk.used_pct", "/data", 12.5 + (n % 3) as f64));
    }
    out
}

/// Stores polls as the poll writer does: one transaction each, the rollups staged with it.
async fn store_polls(
    db: &DatabaseConnection,
    rollups: &mut Rollups,
    host_id: i64,
    polls: &[(i64, Vec<MetricValue>)],
) {
    for (ts, values) in polls {
        let txn = store::begin_write(db).await.unwrap();
        let mut stage = rollups.stage();
        let (layout_id, data) = rollups
            .record(&mut stage, &txn, host_id, *ts, values)
            .await
            .unwrap();
        let poll = OkPoll {
            host_id,
            started_ms: ts - 20,
            duration_ms: 20,
            sampled_ms: *ts,
            layout_id,
            data: &data,
        };
        store::polls::write_ok(&txn, &[poll], &[], &[])
            .await
            .unwrap();
        txn.commit().await.unwrap();
        rollups.commit(stage);
    }
}

/// What each bucket of `tier` must hold, from the raw values (as stored: `f32`).
fn expected(
    polls: &[(i64, Vec<MetricValue>)],
    tier: Tier,
) -> BTreeMap<i64, BTreeMap<SeriesKey, Aggregate>> {
    let mut out: BTreeMap<i64, BTreeMap<SeriesKey, Aggregate>> = BTreeMap::new();
    for (ts, values) in polls {
        for v in values {
            out.entry(tier.bucket(*ts))
                .or_default()
                .entry(SeriesKey::new(v.name, v.label.clone()))
                .or_default()
                .add(f64::from(v.value as f32));
        }
    }
    out
}

/// The buckets of `tier` stored for `host_id`, decoded.
async fn stored(
    db: &DatabaseConnection,
    host_id: i64,
    tier: Tier,
) -> BTreeMap<i64, BTreeMap<SeriesKey, Aggregate>> {
    let layouts = series::layouts(db, Some(&[host_id])).await.unwrap();
    let rows = series::tier_rows(db, tier, &[host_id], 0, i64::MAX / 2)
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            let layout = &layouts[&r.layout_id];
            let aggs = packed::decode_aggregates(&r.data, layout.keys.len());
            (
                r.start,
                layout
                    .keys
                    .iter()
                    .cloned()
                    .zip(aggs)
                    .filter(|(_, a)| !a.is_empty())
                    .collect(),
            )
        })
        .collect()
}

fn assert_same(
    got: &BTreeMap<i64, BTreeMap<SeriesKey, Aggregate>>,
    want: &BTreeMap<i64, BTreeMap<SeriesKey, Aggregate>>,
    what: &str,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: buckets"
    );
    for (start, keys) in want {
        let have = &got[start];
        assert_eq!(
            have.keys().collect::<Vec<_>>(),
            keys.keys().collect::<Vec<_>>(),
            "{what} at {start}: keys"
        );
        for (key, w) in keys {
            let h = have[key];
            assert_eq!(h.count, w.count, "{what} at {start}, {key:?}: count");
            let close = |a: f64, b: f64| (a - b).abs() <= b.abs() * 2e-7 + 1e-9;
            assert!(
                close(h.min, w.min),
                "{what} {key:?}: min {} vs {}",
                h.min,
                w.min
            );
            assert!(
                close(h.max, w.max),
                "{what} {key:?}: max {} vs {}",
                h.max,
                w.max
            );
            let (ha, wa) = (h.avg().unwrap(), w.avg().unwrap());
            assert!(
                close(ha, wa),
                "{what} at {start}, {key:?}: avg {ha} vs {wa}"
            );
        }
    }
}

async fn series_api(app: &TestApp, host_id: i64, query: &str) -> Value {
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/v1/hosts/{host_id}/metrics?{query}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace('+', "%2B")
}

async fn rollups_match_raw_across_a_restart(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let db = app.db();
    let id = host(&app, "rolled").await;
    // A day ago, on an hour: 25 minutes of polls every 10 s, a gap of 50 minutes (the host
    // unreachable), then polls again past the hour.
    let t0 = Tier::Hour.bucket(store::now_ms() - 24 * HOUR);
    let mount_from = t0 + 12 * MINUTE + 25_000;
    let mut polls: Vec<(i64, Vec<MetricValue>)> = (0..150)
        .map(|i| t0 + 5_000 + i * 10_000)
        .chain((0..12).map(|i| t0 + 75 * MINUTE + i * 10_000))
        .map(|ts| (ts, values_at(ts, mount_from)))
        .collect();
    // A poll within the writer's grace of the last: its 10-minute and hour buckets stay
    // pending until the sweep.
    polls.push((t0 + 78 * MINUTE, values_at(t0 + 78 * MINUTE, mount_from)));

    // The writer stops in the middle of a minute and of a 10-minute bucket (13 min 35 s in),
    // and the service is down for a minute and a half: the minute it stopped in is left
    // unwritten, for the catch-up.
    polls.retain(|(ts, _)| !(t0 + 13 * MINUTE + 35_000..t0 + 15 * MINUTE).contains(ts));
    let split = polls
        .iter()
        .position(|(ts, _)| *ts > t0 + 13 * MINUTE + 35_000)
        .unwrap();
    let mut first = Rollups::default();
    store_polls(db, &mut first, id, &polls[..split]).await;
    drop(first);
    let mut second = Rollups::default();
    // Two minutes of polls after the start — the first of them written by the new writer
    // before the catch-up reaches the host (the sweep does a few hosts at a time) — then the
    // catch-up, then the rest.
    let caught_at = split + 12;
    store_polls(db, &mut second, id, &polls[split..caught_at]).await;
    let hosts = std::collections::HashSet::from([id]);
    assert!(!second.caught_up(&hosts));
    loop {
        let txn = store::begin_write(db).await.unwrap();
        let mut stage = second.stage();
        let more = second
            .catch_up_one(&mut stage, &txn, &hosts, store::now_ms())
            .await
            .unwrap();
        txn.commit().await.unwrap();
        second.commit(stage);
        if !more {
            break;
        }
    }
    assert!(second.caught_up(&hosts));
    store_polls(db, &mut second, id, &polls[caught_at..]).await;
    // Long after: the sweep writes what the last polls left open.
    let txn = store::begin_write(db).await.unwrap();
    let mut stage = second.stage();
    second.sweep(&mut stage, &txn, t0 + 3 * HOUR).await.unwrap();
    txn.commit().await.unwrap();
    second.commit(stage);

    for tier in Tier::ROLLUPS {
        assert_same(
            &stored(db, id, tier).await,
            &expected(&polls, tier),
            &format!("{tier:?} on {backend:?}"),
        );
    }
    // Nothing counted twice: the hour holds every poll of it once.
    let hour = &stored(db, id, Tier::Hour).await[&t0];
    assert_eq!(
        hour[&SeriesKey::new("cpu.usage_pct", "")].count,
        150 - 9,
        "every poll of the hour once (nine fell in the downtime)"
    );
    // Built 10-minute buckets hold their minutes as one chunk row; no single minute row is
    // left once every 10-minute bucket is built.
    let count = |table: &'static str| async move {
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT count(*) AS n FROM {table} WHERE host_id = {id}"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
    };
    assert_eq!(count("rollups_1m").await, 0);
    assert_eq!(
        count("rollups_1m_chunks").await,
        4,
        "00-10, 10-20, 20-30, 1h10-1h20"
    );
    // A poll arriving late, for a minute already in a chunk: the minute, its chunk and the
    // buckets over it are rebuilt, and still no minute row is left beside the chunk.
    let late = t0 + 3 * MINUTE + 7_000;
    polls.push((late, values_at(late, mount_from)));
    polls.sort_by_key(|(ts, _)| *ts);
    store_polls(db, &mut second, id, &[(late, values_at(late, mount_from))]).await;
    for tier in Tier::ROLLUPS {
        assert_same(
            &stored(db, id, tier).await,
            &expected(&polls, tier),
            &format!("{tier:?} on {backend:?} after a late poll"),
        );
    }
    assert_eq!(count("rollups_1m").await, 0);

    // Step queries. Three hours around it: raw polls, 10 s buckets.
    let (from, to) = (rfc3339(t0 - HOUR), rfc3339(t0 + 2 * HOUR));
    let body = series_api(&app, id, &format!("name=cpu.usage_pct&from={from}&to={to}")).await;
    assert_eq!(
        (body["tier"].as_str(), body["step_seconds"].as_i64()),
        (Some("raw"), Some(10))
    );
    assert_eq!(
        body["series"][0]["points"].as_array().unwrap().len(),
        polls.len() - 1,
        "a point each 10 s (the late poll shares its bucket)"
    );
    // By the minute, two metrics, max: each minute's maximum, and a gap where the host was
    // unreachable — no bucket, not a zero.
    let body = series_api(
        &app,
        id,
        &format!("name=cpu.usage_pct&name=disk.used_pct&from={from}&to={to}&step=60s&agg=max"),
    )
    .await;
    assert_eq!(body["tier"], "1m");
    let cpu = &body["series"][0];
    assert_eq!(cpu["name"], "cpu.usage_pct");
    let want = expected(&polls, Tier::Minute);
    let points = cpu["points"].as_array().unwrap();
    assert_eq!(points.len(), want.len());
    for p in points {
        let start = chrono::DateTime::parse_from_rfc3339(p["ts"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let w = want[&start][&SeriesKey::new("cpu.usage_pct", "")];
        assert_eq!(p["count"].as_u64(), Some(u64::from(w.count)));
        assert!((p["value"].as_f64().unwrap() - w.max).abs() < 1e-4, "{p}");
        assert!(
            !(t0 + 26 * MINUTE..t0 + 75 * MINUTE).contains(&start),
            "a bucket in the gap: {p}"
        );
    }
    let labels: Vec<&str> = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "disk.used_pct")
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["/", "/data"]);
    // A week around it: 10-minute buckets; a month: hours, the first holding all its polls.
    let week = series_api(
        &app,
        id,
        &format!(
            "name=cpu.usage_pct&from={}&to={to}",
            rfc3339(t0 - 6 * 24 * HOUR)
        ),
    )
    .await;
    assert_eq!(
        (week["tier"].as_str(), week["step_seconds"].as_i64()),
        (Some("10m"), Some(600))
    );
    let month = series_api(&app, id, "name=cpu.usage_pct&from=-30d").await;
    assert_eq!(
        (month["tier"].as_str(), month["step_seconds"].as_i64()),
        (Some("1h"), Some(3600))
    );
    let hours = month["series"][0]["points"].as_array().unwrap();
    assert_eq!(hours.len(), 2, "{month}");
    assert_eq!(hours[0]["count"], 150 - 9 + 1, "and the late poll");
    // Bad steps name the field.
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&step=fast"),
            &app.admin,
            None,
        )
        .await;
    common::assert_error(&(status, body), StatusCode::UNPROCESSABLE_ENTITY, "step");
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&from=-30d&step=10s"),
            &app.admin,
            None,
        )
        .await;
    common::assert_error(&(status, body), StatusCode::UNPROCESSABLE_ENTITY, "step");
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics?name=cpu.nope"),
            &app.admin,
            None,
        )
        .await;
    common::assert_error(&(status, body), StatusCode::BAD_REQUEST, "cpu.nope");
}

#[tokio::test]
async fn rollups_match_raw_across_a_restart_sqlite() {
    rollups_match_raw_across_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn rollups_match_raw_across_a_restart_postgres() {
    rollups_match_raw_across_a_restart(Backend::Postgres).await;
}

/// The latest hour comes from finer tiers until its own bucket is built, and fleet questions
/// rank hosts from the rollups.
async fn recent_range_and_fleet_questions(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let db = app.db();
    let busy = host(&app, "busy").await;
    let idle = host(&app, "idle").await;
    let now = store::now_ms();
    let mut rollups = Rollups::default();
    for (id, cpu) in [(busy, 90.0), (idle, 5.0)] {
        let polls: Vec<(i64, Vec<MetricValue>)> = (0..40)
            .map(|i| now - 400_000 + i * 10_000)
            .map(|ts| {
                let mut v = values_at(ts, 0);
                v[0].value = cpu + (ts / 10_000 % 3) as f64;
                (ts, v)
            })
            .collect();
        store_polls(db, &mut rollups, id, &polls).await;
    }
    // A month's chart ends with the latest poll: its hour has no bucket yet.
    let month = series_api(&app, busy, "name=cpu.usage_pct&from=-30d").await;
    let points = month["series"][0]["points"].as_array().unwrap();
    let total: u64 = points.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 40, "{month}");

    let (status, top) = app
        .call(
            "GET",
            "/api/v1/metrics/top?name=cpu.usage_pct&agg=max&from=-1h",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let items = top["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["host_name"].as_str(), items[0]["value"].as_f64()),
        (Some("busy"), Some(92.0))
    );
    assert_eq!(items[1]["host_name"], "idle");
    let (_, low) = app
        .call(
            "GET",
            "/api/v1/metrics/top?name=cpu.usage_pct&agg=min&order=asc&limit=1&from=-1h",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(low["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            low["items"][0]["host_name"].as_str(),
            low["items"][0]["value"].as_f64()
        ),
        (Some("idle"), Some(5.0))
    );
    let (status, body) = app
        .call(
            "GET",
            "/api/v1/metrics/top?name=cpu.usage_pct&order=sideways",
            &app.admin,
            None,
        )
        .await;
    common::assert_error(&(status, body), StatusCode::UNPROCESSABLE_ENTITY, "order");

    let (status, summary) = app
        .call("GET", "/api/v1/metrics/summary", &app.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["hosts"], 2);
    assert_eq!(summary["worst_disks"][0]["label"], "/");
    assert_eq!(summary["worst_disks"][0]["value"], 61.25);
    assert_eq!(summary["busiest_cpus"][0]["host_name"], "busy");
    assert!(summary["hottest_gpus"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn recent_range_and_fleet_questions_sqlite() {
    recent_range_and_fleet_questions(Backend::Sqlite).await;
}

#[tokio::test]
async fn recent_range_and_fleet_questions_postgres() {
    recent_range_and_fleet_questions(Backend::Postgres).await;
}

/// Legacy values: JSON in `polls.samples`, `metric_sample_sets` rows and `metric_samples`
/// rows, written into a schema as the previous release left it, then migrated.
async fn migration_converts_every_legacy_form(backend: Backend) {
    use migration::{Migrator, MigratorTrait};
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()),
        Backend::Postgres => match common::postgres_url().await {
            Some(u) => u,
            None => return,
        },
    };
    let db = store::connect(&url).await.unwrap();
    Migrator::up(&db, Some(12)).await.unwrap();
    let secrets = hostwatch::crypto::SecretBox::load(None, dir.path()).unwrap();
    let host = store::hosts::create(
        &db,
        &secrets,
        store::hosts::NewHost {
            name: "old".into(),
            address: "127.0.0.1".into(),
            port: 22,
            username: "hw".into(),
            credential: hostwatch::store::hosts::NewCredential::Password(zeroize::Zeroizing::new(
                "x".into(),
            )),
            schedule: "*/10 * * * * *".into(),
            labels: vec![],
            expected_host_key_fingerprint: None,
            provision: false,
            enabled: false,
        },
    )
    .await
    .unwrap()
    .host
    .id;
    let base = 1_800_000_000_000i64;
    let exec = |sql: String| {
        let db = db.clone();
        async move { db.execute_unprepared(&sql).await.unwrap() }
    };
    // Today's form, with a label that needs quoting in JSON.
    exec(format!(
        r#"INSERT INTO polls (host_id, started_at, duration_ms, outcome, sampled_at, sample_count, samples)
           VALUES ({host}, {base}, 20, 'ok', {}, 3,
           '{{"cpu.usage_pct":{{"":12.5}},"disk.used_pct":{{"/":40.0,"/mnt/a \"b\"":3.25}}}}')"#,
        base + 20
    ))
    .await;
    // A set, written beside a poll row without values.
    exec(format!(
        "INSERT INTO polls (host_id, started_at, duration_ms, outcome) VALUES ({host}, {}, 20, 'ok')",
        base + 10_000
    ))
    .await;
    exec(format!(
        r#"INSERT INTO metric_sample_sets (host_id, ts, count, samples)
           VALUES ({host}, {}, 1, '{{"cpu.usage_pct":{{"":33.0}}}}')"#,
        base + 10_015
    ))
    .await;
    // Single samples, older still, with no poll row at all.
    for (name, label, value) in [("cpu.usage_pct", "", 44.0), ("load.one", "", 0.5)] {
        exec(format!(
            "INSERT INTO metric_samples (host_id, name, label, ts, value) VALUES ({host}, '{name}', '{label}', {}, {value})",
            base + 20_000
        ))
        .await;
    }
    // A failed poll stays as it was.
    exec(format!(
        "INSERT INTO polls (host_id, started_at, duration_ms, outcome, error_kind, error) VALUES ({host}, {}, 5, 'error', 'connect', 'refused')",
        base + 30_000
    ))
    .await;

    store::migrate(&db).await.unwrap();
    let raw = raw_values(&db, host).await;
    assert_eq!(
        raw,
        vec![
            (base + 20, "cpu.usage_pct".into(), String::new(), 12.5),
            (base + 20, "disk.used_pct".into(), "/".into(), 40.0),
            (
                base + 20,
                "disk.used_pct".into(),
                "/mnt/a \"b\"".into(),
                3.25
            ),
            (base + 10_015, "cpu.usage_pct".into(), String::new(), 33.0),
            (base + 20_000, "cpu.usage_pct".into(), String::new(), 44.0),
            (base + 20_000, "load.one".into(), String::new(), 0.5),
        ]
    );
    let polls = {
        use sea_orm::{EntityTrait, PaginatorTrait};
        entity::poll::Entity::find().count(&db).await.unwrap()
    };
    assert_eq!(
        polls, 4,
        "the set joined its poll; the single samples got one"
    );
    for table in ["metric_samples", "metric_sample_sets"] {
        assert!(
            db.execute_unprepared(&format!("SELECT * FROM {table}"))
                .await
                .is_err(),
            "{table} is dropped"
        );
    }
}

/// Every raw value of the host, oldest first: (taken at, name, label, value).
async fn raw_values(db: &DatabaseConnection, host_id: i64) -> Vec<(i64, String, String, f64)> {
    let mut layouts = HashMap::new();
    let rows = series::export_page(db, host_id, 0, i64::MAX / 2, None, 10_000, &mut layouts)
        .await
        .unwrap();
    let mut out: Vec<(i64, String, String, f64)> = rows
        .into_iter()
        .flat_map(|r| {
            r.values
                .into_iter()
                .map(move |(k, v)| (r.sampled_at, k.name, k.label, v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    out
}

#[tokio::test]
async fn migration_converts_every_legacy_form_sqlite() {
    migration_converts_every_legacy_form(Backend::Sqlite).await;
}

#[tokio::test]
async fn migration_converts_every_legacy_form_postgres() {
    migration_converts_every_legacy_form(Backend::Postgres).await;
}

/// `tests/fixtures/history-0.1.0.sqlite`: a database the previous release wrote, polling two
/// hosts on a real sshd every second (see `tests/fixtures/README.md`). Every value of it reads
/// back after the migration, and the writer's catch-up builds each host's rollups from them.
#[tokio::test]
async fn migration_reads_back_a_database_of_the_previous_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostwatch.db");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/history-0.1.0.sqlite"
        ),
        &path,
    )
    .unwrap();
    let url = format!("sqlite://{}?mode=rw", path.display());
    // Before: what the old release stored, read as it stored it.
    let old = sea_orm::Database::connect(&url).await.unwrap();
    #[derive(sea_orm::FromQueryResult)]
    struct Old {
        host_id: i64,
        sampled_at: i64,
        samples: String,
    }
    let before: Vec<Old> =
        sea_orm::FromQueryResult::find_by_statement(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT host_id, sampled_at, samples FROM polls WHERE samples IS NOT NULL",
        ))
        .all(&old)
        .await
        .unwrap();
    old.close().await.unwrap();
    assert!(before.len() >= 50, "the fixture has its polls");
    let mut want: BTreeMap<i64, Vec<(i64, String, String, f64)>> = BTreeMap::new();
    for p in &before {
        let values: BTreeMap<String, BTreeMap<String, f64>> =
            serde_json::from_str(&p.samples).unwrap();
        for (name, labels) in values {
            for (label, value) in labels {
                want.entry(p.host_id)
                    .or_default()
                    .push((p.sampled_at, name.clone(), label, value));
            }
        }
    }

    let db = store::connect(&url).await.unwrap();
    store::migrate(&db).await.unwrap();
    for (host_id, mut values) in want {
        values.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let got = raw_values(&db, host_id).await;
        assert_eq!(got.len(), values.len(), "host {host_id}");
        for (g, w) in got.iter().zip(&values) {
            assert_eq!((g.0, &g.1, &g.2), (w.0, &w.1, &w.2));
            assert!((g.3 - w.3).abs() <= w.3.abs() * 1e-7, "{g:?} vs {w:?}");
        }
        // The first poll after the upgrade rebuilds the minutes from the converted polls.
        let last = before
            .iter()
            .filter(|p| p.host_id == host_id)
            .map(|p| p.sampled_at)
            .max()
            .unwrap();
        let mut rollups = Rollups::default();
        let next = last + 120_000;
        store_polls(&db, &mut rollups, host_id, &[(next, values_at(next, 0))]).await;
        let hosts = std::collections::HashSet::from([host_id]);
        let txn = store::begin_write(&db).await.unwrap();
        let mut stage = rollups.stage();
        assert!(
            rollups
                .catch_up_one(&mut stage, &txn, &hosts, store::now_ms())
                .await
                .unwrap()
        );
        txn.commit().await.unwrap();
        rollups.commit(stage);
        assert!(rollups.caught_up(&hosts));
        let minutes = stored(&db, host_id, Tier::Minute).await;
        let polls_counted: u32 = minutes
            .values()
            .filter_map(|m| m.get(&SeriesKey::new("memory.used_pct", "")))
            .map(|a| a.count)
            .sum();
        let polls_before = before.iter().filter(|p| p.host_id == host_id).count() as u32;
        assert_eq!(
            polls_counted, polls_before,
            "host {host_id}: every old poll in a minute"
        );
    }
}

/// An export of many polls: every value arrives, a chunk at a time, while the service's memory
/// stays far below the export's size.
async fn export_streams(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let db = app.db();
    let id = host(&app, "exported").await;
    // 40,000 polls of 30 values, written in one statement.
    let keys: Vec<SeriesKey> = (0..30)
        .map(|i| SeriesKey::new("disk.used_pct", format!("/m{i}")))
        .collect();
    let layout = series::insert_layout(db, id, keys).await.unwrap();
    let data = packed::encode_values(&(0..30).map(|i| Some(1.5 + i as f64)).collect::<Vec<_>>());
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let start = store::now_ms() - 2 * HOUR;
    const POLLS: i64 = 40_000;
    let (series_sql, blob) = match backend {
        Backend::Sqlite => (
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) SELECT i FROM n",
                POLLS - 1
            ),
            format!("X'{hex}'"),
        ),
        Backend::Postgres => (
            format!("SELECT generate_series(0, {}) AS i", POLLS - 1),
            format!("'\\x{hex}'::bytea"),
        ),
    };
    db.execute_unprepared(&format!(
        "INSERT INTO polls (host_id, started_at, duration_ms, outcome, sampled_at, layout_id, data) \
         SELECT {id}, {start} + i * 100, 10, 'ok', {start} + i * 100 + 10, {}, {blob} FROM ({series_sql}) AS s",
        layout.id
    ))
    .await
    .unwrap();

    // Bytes the heap holds live (RSS would count pages jemalloc keeps after a free for a while).
    let live = || -> u64 {
        tikv_jemalloc_ctl::epoch::advance().unwrap();
        tikv_jemalloc_ctl::stats::allocated::read().unwrap() as u64
    };
    let resp = app
        .client
        .get(format!(
            "/api/v1/hosts/{id}/metrics/export?from=-3h&format=csv"
        ))
        .header("authorization", format!("Bearer {}", app.admin))
        .send()
        .await;
    resp.assert_status_is_ok();
    resp.assert_content_type("text/csv");
    let before = live();
    let mut peak = before;
    let mut stream = resp.0.into_body().into_bytes_stream();
    let (mut bytes, mut lines, mut chunks) = (0u64, 0u64, 0u64);
    let mut first_line = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.unwrap();
        if first_line.is_empty() {
            first_line = chunk.split(|b| *b == b'\n').next().unwrap().to_vec();
        }
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        chunks += 1;
        if chunks % 16 == 0 {
            peak = peak.max(live());
        }
    }
    assert_eq!(
        String::from_utf8(first_line).unwrap(),
        "time,name,label,value"
    );
    assert_eq!(lines, 1 + POLLS as u64 * 30);
    assert!(chunks > 50, "streamed in pages: {chunks} chunks");
    let grew = peak.saturating_sub(before);
    // A page's rows and text are a few MB at most; an export held whole would be all of it.
    assert!(
        grew < bytes / 2,
        "the heap grew {grew} bytes for a {bytes}-byte export"
    );
    // NDJSON, a metric at a time.
    let (status, _) = app
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics/export?format=ndjson&name=cpu.nope"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = app
        .client
        .get(format!(
            "/api/v1/hosts/{id}/metrics/export?from=-3h&to={}&format=ndjson",
            rfc3339(start + 250)
        ))
        .header("authorization", format!("Bearer {}", app.admin))
        .send()
        .await;
    resp.assert_content_type("application/x-ndjson");
    let text = resp.0.into_body().into_string().await.unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["name"], "disk.used_pct");
    assert_eq!(first["label"], "/m0");
    assert_eq!(first["value"], 1.5);
    assert_eq!(text.lines().count(), 3 * 30, "the polls before `to`");
}

#[tokio::test]
async fn export_streams_sqlite() {
    export_streams(Backend::Sqlite).await;
}

#[tokio::test]
async fn export_streams_postgres() {
    export_streams(Backend::Postgres).await;
}

/// A URL check's response times in buckets: a failed run (no time) leaves its bucket out.
async fn url_check_series(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let (status, check) = app
        .call(
            "POST",
            "/api/v1/url-checks",
            &app.admin,
            Some(json!({"name": "site", "url": "http://127.0.0.1:9/", "enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    let id = check["id"].as_i64().unwrap();
    let t0 = Tier::Hour.bucket(store::now_ms() - 2 * HOUR);
    // Minute 0: 100 and 300 ms; minute 1: a failure; minute 2: 50 ms.
    for (at, ok, ms) in [
        (t0 + 5_000, true, "100"),
        (t0 + 35_000, true, "300"),
        (t0 + MINUTE + 5_000, false, "NULL"),
        (t0 + 2 * MINUTE + 5_000, true, "50"),
    ] {
        app.db()
            .execute_unprepared(&format!(
                "INSERT INTO url_check_results (url_check_id, checked_at, ok, response_ms) \
                 VALUES ({id}, {at}, {ok}, {ms})"
            ))
            .await
            .unwrap();
    }
    let (status, body) = app
        .call(
            "GET",
            &format!(
                "/api/v1/url-checks/{id}/metrics?from={}&to={}&step=1m&agg=max",
                rfc3339(t0),
                rfc3339(t0 + 10 * MINUTE)
            ),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let points = body["series"][0]["points"].as_array().unwrap();
    let got: Vec<(u64, f64, f64)> = points
        .iter()
        .map(|p| {
            (
                p["count"].as_u64().unwrap(),
                p["avg"].as_f64().unwrap(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(2, 200.0, 300.0), (1, 50.0, 50.0)]);
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/v1/url-checks/{id}/metrics?name=cpu.usage_pct"),
            &app.admin,
            None,
        )
        .await;
    common::assert_error(&(status, body), StatusCode::BAD_REQUEST, "url.response_ms");
}

#[tokio::test]
async fn url_check_series_sqlite() {
    url_check_series(Backend::Sqlite).await;
}

#[tokio::test]
async fn url_check_series_postgres() {
    url_check_series(Backend::Postgres).await;
}

/// Minutes read the same chunked or not; a single row of a minute a chunk holds too (a late
/// poll rewrote it, its chunk not rebuilt yet) is the one read; a chunk's last minute counts as
/// the host's newest; retention takes a chunk whole once all its minutes are past the cutoff.
async fn minute_chunks_read_like_rows(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let db = app.db();
    let id = host(&app, "chunked").await;
    let layout = series::insert_layout(db, id, vec![SeriesKey::new("cpu.usage_pct", "")])
        .await
        .unwrap();
    let t0 = Tier::Hour.bucket(store::now_ms() - 24 * HOUR);
    let row = |start: i64, v: f64| series::PackedRow {
        host_id: id,
        start,
        layout_id: layout.id,
        data: packed::encode_aggregates(&[Aggregate::of(v)]),
    };
    // Minutes 0..10 of the hour: 1.0, 2.0, … (minute 4 missing), chunked.
    let minutes: Vec<_> = (0..10)
        .filter(|m| *m != 4)
        .map(|m| row(t0 + m * MINUTE, (m + 1) as f64))
        .collect();
    series::upsert_buckets(db, Tier::Minute, &minutes)
        .await
        .unwrap();
    series::store_minute_chunk(db, id, t0, &minutes)
        .await
        .unwrap();
    assert!(
        series::bucket_rows(db, Tier::Minute, &[id], 0, i64::MAX / 2)
            .await
            .unwrap()
            .is_empty(),
        "the chunked minutes' rows are gone"
    );
    // Minute 3 rewritten, and minute 12 after the chunk.
    series::upsert_buckets(
        db,
        Tier::Minute,
        &[row(t0 + 3 * MINUTE, 40.0), row(t0 + 12 * MINUTE, 13.0)],
    )
    .await
    .unwrap();
    let values = |rows: Vec<series::PackedRow>| -> Vec<(i64, f64)> {
        rows.iter()
            .map(|r| {
                let a = packed::decode_aggregate(&r.data, 0);
                ((r.start - t0) / MINUTE, a.avg().unwrap())
            })
            .collect()
    };
    let all = series::minute_rows(db, &[id], t0, t0 + HOUR).await.unwrap();
    assert_eq!(
        values(all),
        [
            (0, 1.0),
            (1, 2.0),
            (2, 3.0),
            (3, 40.0),
            (5, 6.0),
            (6, 7.0),
            (7, 8.0),
            (8, 9.0),
            (9, 10.0),
            (12, 13.0)
        ]
    );
    // A range starting inside the chunk reads only its part of it.
    let part = series::minute_rows(db, &[id], t0 + 7 * MINUTE, t0 + 13 * MINUTE)
        .await
        .unwrap();
    assert_eq!(values(part), [(7, 8.0), (8, 9.0), (9, 10.0), (12, 13.0)]);
    assert_eq!(
        series::latest_bucket(db, Tier::Minute, id, i64::MAX)
            .await
            .unwrap(),
        Some(t0 + 12 * MINUTE)
    );
    // With only the chunk, its last minute is the newest.
    series::store_minute_chunk(db, id, t0 + 10 * MINUTE, &[row(t0 + 12 * MINUTE, 13.0)])
        .await
        .unwrap();
    let singles = series::bucket_rows(db, Tier::Minute, &[id], 0, i64::MAX / 2)
        .await
        .unwrap();
    assert_eq!(values(singles), [(3, 40.0)]);
    assert_eq!(
        series::latest_bucket(db, Tier::Minute, id, i64::MAX)
            .await
            .unwrap(),
        Some(t0 + 12 * MINUTE)
    );
    // Retention: a cutoff at its last minute's start keeps the first chunk (minute 9 is not
    // older), one just after takes it; the row of minute 3 goes first, as rows do.
    let purged = series::purge_tier(db, Tier::Minute, &[id], t0 + 9 * MINUTE, 100)
        .await
        .unwrap();
    assert_eq!(purged, 1, "the row of minute 3 only");
    let left = values(series::minute_rows(db, &[id], t0, t0 + HOUR).await.unwrap());
    assert_eq!(left.len(), 10, "{left:?}");
    assert_eq!(left[3], (3, 4.0), "the chunk's own minute 3 again");
    let purged = series::purge_tier(db, Tier::Minute, &[id], t0 + 9 * MINUTE + 1, 100)
        .await
        .unwrap();
    assert_eq!(purged, 1, "the first chunk");
    assert_eq!(
        values(series::minute_rows(db, &[id], t0, t0 + HOUR).await.unwrap()),
        [(12, 13.0)]
    );
}

#[tokio::test]
async fn minute_chunks_read_like_rows_sqlite() {
    minute_chunks_read_like_rows(Backend::Sqlite).await;
}

#[tokio::test]
async fn minute_chunks_read_like_rows_postgres() {
    minute_chunks_read_like_rows(Backend::Postgres).await;
}
