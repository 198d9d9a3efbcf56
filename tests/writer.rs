//! The batch writer end to end, on SQLite and on PostgreSQL: polls of simulated hosts (the
//! fleet simulator, russh's server side on loopback) land as latest snapshots, packed sample
//! values in poll records, host status, several polls per transaction, and read back as series.

mod common;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use entity::{
    host, latest_snapshot, poll, series::decode_values, series_layout, types::PollOutcome,
};
use hostwatch::{
    crypto::SecretBox,
    poller::PollerSettings,
    services::Services,
    store::{
        self,
        hosts::{HostChanges, NewCredential, NewHost},
        series::{self, KeyFilter, Read},
    },
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use zeroize::Zeroizing;

const HOSTS: u16 = 8;

/// A base port with `HOSTS` free ports after it.
fn free_range() -> u16 {
    loop {
        let base = common::free_port();
        if base.checked_add(HOSTS).is_some()
            && (0..HOSTS).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

/// The `latest_snapshots` rows, each checked to hold the snapshot its host took in `round`.
async fn latest_rows_from_round(
    db: &sea_orm::DatabaseConnection,
    taken_at: &HashMap<(usize, i64), i64>,
    round: usize,
) -> Vec<latest_snapshot::Model> {
    let rows = latest_snapshot::Entity::find().all(db).await.unwrap();
    for row in &rows {
        let expected = taken_at[&(round, row.host_id)];
        assert_eq!(
            row.taken_at, expected,
            "host {}, round {round}",
            row.host_id
        );
    }
    rows
}

async fn polls_are_batched_and_read_back(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let base = free_range();
    let ready = dir.path().join("ready");
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetsim"))
        .args([
            "--hosts",
            &HOSTS.to_string(),
            "--base-port",
            &base.to_string(),
        ])
        .args(["--gpus", "2", "--ready-file"])
        .arg(&ready)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "fleetsim did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let db = store::connect(&url).await.unwrap();
    store::migrate(&db).await.unwrap();
    let state = Services::start(
        db,
        SecretBox::load(None, dir.path()).unwrap(),
        PollerSettings {
            poll_timeout: Duration::from_secs(15),
            enroll_on_create: false,
            ..Default::default()
        },
    );
    let mut ids = Vec::new();
    for i in 0..HOSTS {
        let view = store::hosts::create(
            &state.db,
            &state.secrets,
            NewHost {
                name: format!("sim-{i}"),
                address: "127.0.0.1".into(),
                port: base + i,
                username: "monitor".into(),
                credential: NewCredential::Password(Zeroizing::new("sim".into())),
                schedule: "0 0 0 1 1 *".into(),
                labels: vec![],
                expected_host_key_fingerprint: None,
                provision: false,
                enabled: true,
            },
        )
        .await
        .unwrap();
        ids.push(view.host.id);
    }
    // The simulator answers the probe, not the enrollment script: mark the hosts enrolled.
    // Half are still pending; the others are ok but keep their "waiting for enrollment"
    // message. Either way the first poll clears the status, and the second finds it clear.
    host::Entity::update_many()
        .col_expr(host::Column::EnrolledAt, Expr::value(store::now_ms()))
        .exec(&state.db)
        .await
        .unwrap();
    host::Entity::update_many()
        .col_expr(host::Column::Status, Expr::value("ok"))
        .filter(host::Column::Id.is_in(ids.iter().step_by(2).copied()))
        .exec(&state.db)
        .await
        .unwrap();

    // Two rounds of polls at once; the second has rates.
    let mut taken_at = HashMap::new();
    for round in 0..2 {
        let polls: Vec<_> = ids
            .iter()
            .map(|id| {
                let (poller, id) = (state.poller.clone(), *id);
                tokio::spawn(async move { poller.poll(id, true).await })
            })
            .collect();
        for (id, task) in ids.iter().zip(polls) {
            let report = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}, host {id}: {e}"));
            assert_eq!(report.snapshot.cpu.as_ref().unwrap().count, 4);
            taken_at.insert((round, *id), report.snapshot.taken_at.timestamp_millis());
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let stats = state.poller.writer_stats();
    assert_eq!(stats.results, 2 * u64::from(HOSTS));
    assert!(
        stats.batches < stats.results,
        "several polls share a transaction: {stats:?}"
    );

    // Each poll's values are in its own row, taken when its snapshot was; none go to the table
    // that held them before.
    let polls = poll::Entity::find().all(&state.db).await.unwrap();
    assert_eq!(polls.len(), 2 * HOSTS as usize);
    assert!(polls.iter().all(|p| p.outcome == PollOutcome::Ok));
    let taken: std::collections::BTreeSet<(i64, i64)> =
        taken_at.iter().map(|((_, id), ts)| (*id, *ts)).collect();
    let sampled: std::collections::BTreeSet<(i64, i64)> = polls
        .iter()
        .map(|p| (p.host_id, p.sampled_at.unwrap()))
        .collect();
    assert_eq!(sampled, taken);
    // Each poll's values are packed against a layout of its host's keys.
    let layouts: std::collections::HashMap<i64, series_layout::Model> =
        series_layout::Entity::find()
            .all(&state.db)
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.id, l))
            .collect();
    let counts: Vec<usize> = polls
        .iter()
        .map(|p| {
            let layout = &layouts[&p.layout_id.unwrap()];
            assert_eq!(layout.host_id, p.host_id);
            let keys = entity::series::keys_from_json(&layout.keys).unwrap();
            let values = decode_values(p.data.as_deref().unwrap(), keys.len());
            assert!(values.iter().all(Option::is_some), "{p:?}");
            keys.len()
        })
        .collect();
    // A first poll has no rates yet (13 values, 21 with GPUs); the second has them too (28, 36).
    assert!(counts.iter().all(|c| *c >= 10), "{counts:?}");
    assert_eq!(
        counts.iter().filter(|c| **c > 25).count(),
        HOSTS as usize,
        "{counts:?}"
    );
    // The rows are the first round's: the second came within LATEST_ROW_EVERY_MS. The API
    // reads the newest from the poller.
    let latest = latest_rows_from_round(&state.db, &taken_at, 0).await;
    assert_eq!(latest.len(), HOSTS as usize);
    for row in &latest {
        let newest = state
            .poller
            .latest_snapshot(row.host_id)
            .await
            .unwrap()
            .unwrap();
        let newest: serde_json::Value = serde_json::from_str(&newest).unwrap();
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(newest["taken_at"].as_str().unwrap())
                .unwrap()
                .timestamp_millis(),
            taken_at[&(1, row.host_id)]
        );
    }
    // Likewise the hosts' rows hold the first round's poll times; the API shows the second's.
    let round_times = |id: i64, round: usize| {
        let mut mine: Vec<_> = polls.iter().filter(|p| p.host_id == id).collect();
        mine.sort_by_key(|p| p.started_at);
        (
            Some(mine[round].sampled_at.unwrap()),
            Some(mine[round].started_at),
        )
    };
    for id in &ids {
        let mut h = host::Entity::find_by_id(*id)
            .one(&state.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status.as_str(), (h.last_ok_at, h.last_poll_at)),
            ("ok", round_times(*id, 0)),
            "host {id}"
        );
        state.poller.apply_newest_times(&mut h);
        assert_eq!(
            (h.last_ok_at, h.last_poll_at),
            round_times(*id, 1),
            "host {id}"
        );
    }

    let raw = |name: &str, host_id: i64| {
        let db = state.db.clone();
        let read = Read {
            host_ids: vec![host_id],
            keys: KeyFilter {
                names: vec![name.into()],
                label: None,
            },
            tier: hostwatch::tiers::Tier::Raw,
            from_ms: store::now_ms() - 60_000,
            to_ms: store::now_ms(),
            step_ms: Some(1),
        };
        async move {
            series::read(&db, &read)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|((_, key), points)| {
                    points
                        .into_iter()
                        .map(move |(ts, a)| (key.label.clone(), ts, a.avg().unwrap()))
                })
                .collect::<Vec<_>>()
        }
    };
    // A rate needs two readings: one point. A gauge: one per poll, per mount.
    let cpu = raw("cpu.usage_pct", ids[0]).await;
    assert_eq!(cpu.len(), 1, "{cpu:?}");
    assert!((0.0..=100.0).contains(&cpu[0].2));
    let disks = raw("disk.used_pct", ids[0]).await;
    let root: Vec<_> = disks.iter().filter(|p| p.0 == "/").collect();
    assert_eq!(root.len(), 2, "{disks:?}");
    assert!(root[0].1 < root[1].1);
    // The last two simulated hosts have GPUs, the others none.
    assert!(
        !raw("gpu.util_pct", ids[HOSTS as usize - 1])
            .await
            .is_empty()
    );
    assert!(raw("gpu.util_pct", ids[0]).await.is_empty());
    // Deleting a host removes its polls and their values with it.
    host::Entity::delete_many()
        .filter(host::Column::Id.eq(ids[0]))
        .exec(&state.db)
        .await
        .unwrap();
    assert!(
        poll::Entity::find()
            .filter(poll::Column::HostId.eq(ids[0]))
            .all(&state.db)
            .await
            .unwrap()
            .is_empty()
    );
    // Shutdown writes the newest snapshots and their counters, skipping the deleted host. A
    // host whose counters were dropped (an edit) gets its snapshot; its row keeps the older
    // counters, which say when they were taken.
    state
        .registry
        .update_host(
            ids[1],
            HostChanges {
                labels: Some(vec!["edited".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A failed poll after the newest success records a later `last_poll_at`, which stays.
    let failed_at = store::now_ms() + 5_000;
    host::Entity::update_many()
        .col_expr(host::Column::LastPollAt, Expr::value(failed_at))
        .filter(host::Column::Id.eq(ids[2]))
        .exec(&state.db)
        .await
        .unwrap();
    assert_eq!(
        state.poller.flush_newest().await.unwrap(),
        HOSTS as usize - 1
    );
    let latest = latest_rows_from_round(&state.db, &taken_at, 1).await;
    assert_eq!(latest.len(), HOSTS as usize - 1);
    for row in &latest {
        let counters: serde_json::Value = serde_json::from_str(&row.counters).unwrap();
        let round = if row.host_id == ids[1] { 0 } else { 1 };
        assert_eq!(
            counters["taken_at_ms"],
            taken_at[&(round, row.host_id)],
            "host {}",
            row.host_id
        );
    }
    // And the hosts' rows get the second round's poll times.
    for id in &ids[1..] {
        let h = host::Entity::find_by_id(*id)
            .one(&state.db)
            .await
            .unwrap()
            .unwrap();
        let (ok_at, polled_at) = round_times(*id, 1);
        let polled_at = if *id == ids[2] {
            Some(failed_at)
        } else {
            polled_at
        };
        assert_eq!(
            (h.last_ok_at, h.last_poll_at),
            (ok_at, polled_at),
            "host {id}"
        );
    }
    assert_eq!(
        state.poller.flush_newest().await.unwrap(),
        0,
        "nothing newer"
    );
    sim.kill().await.ok();
}

#[tokio::test]
async fn sqlite_polls_are_batched_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("writer.db").display()
    );
    polls_are_batched_and_read_back(url).await;
}

#[tokio::test]
async fn postgres_polls_are_batched_and_read_back() {
    if let Some(url) = common::postgres_url().await {
        polls_are_batched_and_read_back(url).await;
    }
}
