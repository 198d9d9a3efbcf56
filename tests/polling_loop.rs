//! The polling loop end to end: a real sshd, the scheduler polling on a one-second schedule,
//! history growing, thresholds firing and resolving exactly once, `host_unreachable` when sshd
//! stops, and service restarts in between that duplicate nothing.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::sshd::{self, Sshd};
use entity::types::{PollErrorKind, PollOutcome};
use hostwatch::{
    api,
    crypto::SecretBox,
    poller::PollerSettings,
    scheduler::{JobKey, PollScheduler},
    services::Services,
    store,
};
use poem::{
    EndpointExt, Response,
    endpoint::BoxEndpoint,
    http::StatusCode,
    listener::{Acceptor, Listener},
    test::TestClient,
};
use serde_json::{Value, json};

/// hostwatch with its scheduler over a data directory that outlives it.
struct Service {
    state: Services,
    scheduler: Arc<PollScheduler>,
    client: TestClient<BoxEndpoint<'static, Response>>,
    token: String,
}

impl Service {
    async fn start(dir: &std::path::Path, token: Option<String>) -> Self {
        let url = format!("sqlite://{}?mode=rwc", dir.join("hostwatch.db").display());
        let db = store::connect(&url).await.unwrap();
        store::migrate(&db).await.unwrap();
        let token = match token {
            Some(t) => t,
            None => common::token(&db, "admin", entity::types::Role::Admin).await,
        };
        let secrets = SecretBox::load(None, dir).unwrap();
        let settings = PollerSettings {
            poll_timeout: Duration::from_secs(3),
            enroll_timeout: Duration::from_secs(10),
            unreachable_after: 2,
            ..Default::default()
        };
        let state = Services::start(db, secrets, settings);
        let scheduler = state.run_scheduler(16).await.unwrap();
        let client = TestClient::new(api::app(state.clone()).map_to_response().boxed());
        Self {
            state,
            scheduler,
            client,
            token,
        }
    }

    async fn stop(self) -> String {
        // Polls in flight end before the database goes.
        self.state.shutdown().await.unwrap();
        self.token
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        common::request(&self.client, method, path, &self.token, body).await
    }

    /// Registers a host on the test sshd at `port`, logging in with `key`; returns its id.
    async fn add_host(&self, name: &str, port: u16, key: &str, schedule: &str) -> i64 {
        self.register(name, port, key, schedule, true).await
    }

    /// Registers a host, enabled or not; returns its id.
    async fn register(
        &self,
        name: &str,
        port: u16,
        key: &str,
        schedule: &str,
        enabled: bool,
    ) -> i64 {
        let (status, host) = self
            .call(
                "POST",
                "/api/v1/hosts",
                Some(json!({"name": name, "address": "127.0.0.1", "port": port,
                    "username": "hwtest", "private_key": key, "schedule": schedule,
                    "enabled": enabled})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{host}");
        host["id"].as_i64().unwrap()
    }

    async fn ok_polls(&self, id: i64) -> usize {
        let (_, polls) = self
            .call("GET", &format!("/api/v1/hosts/{id}/polls?limit=500"), None)
            .await;
        polls["items"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["outcome"] == "ok").count())
    }

    /// Waits for the host's first enrollment run and returns it.
    async fn wait_enrollment(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let (status, run) = self
                .call("GET", &format!("/api/v1/hosts/{id}/enrollment"), None)
                .await;
            if status == StatusCode::OK {
                return run;
            }
            assert!(Instant::now() < deadline, "no enrollment in 40 s: {run}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_ok_polls(&self, id: i64, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.ok_polls(id).await < at_least {
            assert!(
                Instant::now() < deadline,
                "fewer than {at_least} successful polls in 40 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Long-polls for the next notification matching `pred` after `cursor`.
    async fn next_notification(&self, cursor: &mut i64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            assert!(
                Instant::now() < deadline,
                "no matching notification in 45 s"
            );
            let (status, page) = self
                .call(
                    "GET",
                    &format!("/api/v1/notifications?after_id={cursor}&wait_seconds=10"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            *cursor = page["next_after_id"].as_i64().unwrap();
            if let Some(n) = page["items"].as_array().unwrap().iter().find(|n| pred(n)) {
                return n.clone();
            }
        }
    }

    async fn all_notifications(&self) -> Vec<Value> {
        let (_, page) = self
            .call("GET", "/api/v1/notifications?limit=500", None)
            .await;
        page["items"].as_array().unwrap().clone()
    }
}

fn events(all: &[Value], kind: &str, metric: Option<&str>) -> Vec<String> {
    all.iter()
        .filter(|n| n["kind"] == kind && metric.is_none_or(|m| n["metric"] == m))
        .map(|n| n["event"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn the_loop_end_to_end_with_restarts() {
    let mut sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;

    // Registered disabled: enrolled, never polled.
    let id = svc
        .register("loop", sshd.port, &key, "*/1 * * * * *", false)
        .await;
    let run = svc.wait_enrollment(id).await;
    assert_eq!(run["ok"].as_bool(), Some(true), "{run}");
    let (_, polls) = svc
        .call("GET", &format!("/api/v1/hosts/{id}/polls"), None)
        .await;
    assert_eq!(polls["items"], json!([]));

    // The host is this machine: its disk, CPU and swap thresholds would fire or not with the
    // machine's state. Only memory's, which the test moves, stays on.
    let (_, thresholds) = svc
        .call("GET", &format!("/api/v1/hosts/{id}/thresholds"), None)
        .await;
    for t in thresholds["items"].as_array().unwrap() {
        let metric = t["metric"].as_str().unwrap();
        if metric != "memory.used_pct" {
            let (status, body) = svc
                .call(
                    "PUT",
                    &format!("/api/v1/hosts/{id}/thresholds/{metric}"),
                    Some(json!({"warning": t["warning"], "critical": t["critical"], "enabled": false})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let (status, body) = svc
        .call(
            "PATCH",
            &format!("/api/v1/hosts/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Polled every second: history grows.
    svc.wait_ok_polls(id, 3).await;
    let (_, series) = svc
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics?name=memory.used_pct&from=-5m&step=1s"),
            None,
        )
        .await;
    // Every poll's value is in a bucket (two polls in one second share one).
    let values: u64 = series["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert!(values >= 2, "{series}");
    let (_, root) = svc
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics?name=disk.used_pct&label=/&from=-5m&step=1s"),
            None,
        )
        .await;
    assert_eq!(root["series"][0]["label"], "/");
    let (_, cpu) = svc
        .call(
            "GET",
            &format!("/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&from=-5m&step=1s"),
            None,
        )
        .await;
    assert!(
        !cpu["series"][0]["points"].as_array().unwrap().is_empty(),
        "rates after the first poll"
    );

    // A threshold below the current value: exactly one `fired`.
    let mut cursor = 0;
    let (status, _) = svc
        .call(
            "PUT",
            &format!("/api/v1/hosts/{id}/thresholds/memory.used_pct"),
            Some(json!({"warning": 0.001, "critical": 0.002, "hysteresis": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let fired = svc
        .next_notification(&mut cursor, |n| n["metric"] == "memory.used_pct")
        .await;
    assert_eq!(
        (
            fired["event"].as_str(),
            fired["level"].as_str(),
            fired["state"].as_str()
        ),
        (Some("fired"), Some("critical"), Some("firing"))
    );
    assert!(
        fired["value"].as_f64().unwrap() > 0.002 && fired["threshold"] == 0.002,
        "{fired}"
    );

    // The service restarts while the alert fires: no second `fired`.
    let token = svc.stop().await;
    let svc = Service::start(dir.path(), Some(token)).await;
    let before = svc.ok_polls(id).await;
    svc.wait_ok_polls(id, before + 3).await;
    assert_eq!(
        events(
            &svc.all_notifications().await,
            "threshold",
            Some("memory.used_pct")
        ),
        ["fired"]
    );

    // Raised again: exactly one `resolved`.
    svc.call(
        "PUT",
        &format!("/api/v1/hosts/{id}/thresholds/memory.used_pct"),
        Some(json!({"warning": 80, "critical": 90})),
    )
    .await;
    let resolved = svc
        .next_notification(&mut cursor, |n| n["metric"] == "memory.used_pct")
        .await;
    assert_eq!(
        (resolved["event"].as_str(), resolved["state"].as_str()),
        (Some("resolved"), Some("resolved"))
    );
    let before = svc.ok_polls(id).await;
    svc.wait_ok_polls(id, before + 2).await;
    assert_eq!(
        events(
            &svc.all_notifications().await,
            "threshold",
            Some("memory.used_pct")
        ),
        ["fired", "resolved"]
    );

    // sshd stops: host_unreachable fires (after 2 failed polls).
    sshd.stop();
    let down = svc
        .next_notification(&mut cursor, |n| n["kind"] == "host_unreachable")
        .await;
    assert_eq!(
        (down["event"].as_str(), down["level"].as_str()),
        (Some("fired"), Some("critical"))
    );
    let (_, host) = svc.call("GET", &format!("/api/v1/hosts/{id}"), None).await;
    assert_eq!(host["status"], "unreachable");

    // Restart the service while the host is down, then bring sshd back: one resolution.
    let token = svc.stop().await;
    let svc = Service::start(dir.path(), Some(token)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    sshd.restart();
    let up = svc
        .next_notification(&mut cursor, |n| n["kind"] == "host_unreachable")
        .await;
    assert_eq!(up["event"], "resolved", "{up}");
    let before = svc.ok_polls(id).await;
    svc.wait_ok_polls(id, before + 2).await;
    let all = svc.all_notifications().await;
    assert_eq!(
        events(&all, "host_unreachable", None),
        ["fired", "resolved"],
        "{all:#?}"
    );
    assert_eq!(
        events(&all, "threshold", Some("memory.used_pct")),
        ["fired", "resolved"]
    );
    // Metric alerts neither fired nor resolved while there was no data.
    assert_eq!(events(&all, "threshold", None).len(), 2, "{all:#?}");
    let ids: Vec<i64> = all.iter().map(|n| n["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increasing, oldest first"
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_stopped_scheduler_starts_no_poll_still_waiting_for_its_slot() {
    let sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;
    let id = svc
        .add_host("slotted", sshd.port, &key, "*/10 * * * * *")
        .await;
    svc.wait_ok_polls(id, 1).await;
    let period = Duration::from_secs(10);
    let offset = hostwatch::scheduler::start_offset(id, period).as_millis() as i64;
    assert!(
        offset >= 3000,
        "host {id} starts {offset} ms into the period"
    );
    // Well after the tick (so its slot task is surely waiting) and well before this host's slot.
    while !(1200..offset - 1500).contains(&(store::now_ms() % 10_000)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = svc.ok_polls(id).await;
    svc.scheduler.shutdown().await;
    let past_slot = offset + 2000 - store::now_ms() % 10_000;
    tokio::time::sleep(Duration::from_millis(past_slot as u64)).await;
    assert_eq!(
        svc.ok_polls(id).await,
        before,
        "polled after the scheduler stopped"
    );
    svc.stop().await;
}

/// A test sshd where every exec takes 2.5 s longer, and the private key it lets in.
fn slow_sshd() -> (Sshd, String) {
    let sshd = Sshd::start_with("ForceCommand sleep 2.5; eval \"$SSH_ORIGINAL_COMMAND\"");
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    (sshd, key)
}

#[tokio::test]
async fn a_poll_slower_than_its_schedule_is_not_overlapped() {
    // Every exec takes 2.5 s more than it should; the schedule fires every second.
    let (sshd, key) = slow_sshd();
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;
    let id = svc.add_host("slow", sshd.port, &key, "*/1 * * * * *").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let polls = loop {
        let (_, polls) = svc
            .call("GET", &format!("/api/v1/hosts/{id}/polls?limit=500"), None)
            .await;
        let count = |o: &str| {
            polls["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["outcome"] == o)
                .count()
        };
        if count("skipped_overrun") >= 3 && count("ok") >= 2 {
            break polls;
        }
        assert!(Instant::now() < deadline, "no overruns recorded: {polls}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let overrun = polls["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["outcome"] == "skipped_overrun")
        .unwrap();
    assert!(overrun["error"].as_str().unwrap().contains("still running"));
    // sshd saw one session at a time: never two execs of this host at once.
    let log = sshd.log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "one connection: {log}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_poll_in_flight_at_shutdown_is_stored() {
    // A poll started just before shutdown is still in flight when it begins.
    let (sshd, key) = slow_sshd();
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;
    // A schedule that does not fire during the test: registration enrolls and polls once.
    let id = svc
        .add_host("in-flight", sshd.port, &key, "0 0 0 1 1 *")
        .await;
    svc.wait_ok_polls(id, 1).await;
    let before = svc.ok_polls(id).await;
    svc.scheduler.run_now(JobKey::Host(id));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    let services = svc.state.clone();
    let token = svc.stop().await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "shutdown did not wait for the poll in flight ({:?})",
        started.elapsed()
    );
    assert_eq!(services.running_tasks(), 0, "every task ended");
    let svc = Service::start(dir.path(), Some(token)).await;
    assert_eq!(
        svc.ok_polls(id).await,
        before + 1,
        "the poll in flight at shutdown was stored"
    );
    svc.stop().await;
}

#[tokio::test]
async fn retention_deletes_each_tier_past_its_own_age() {
    use entity::{poll, series::Aggregate};
    use hostwatch::{
        store::series::{self, KeyFilter, PackedRow, Read},
        tiers::Tier,
    };
    use sea_orm::{ActiveModelTrait, Set};
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;
    let db = &svc.state.db;
    let id = idle_host(&svc, "ret").await;
    let now = store::now_ms();
    for ts in [now - 3 * DAY, now - DAY, now] {
        // The values in their poll's row, taken 30 ms after it started.
        sampled_poll(db, id, ts - 30, ts, 2.0).await;
    }
    let from = now - DAY / 2;
    // Started before the range, took its values inside it: in the series.
    sampled_poll(db, id, from - 1_000, from + 1_000, 3.0).await;
    // Started and sampled before the range: not in it.
    sampled_poll(db, id, from - 3_000, from - 2_000, 4.0).await;
    // A failed poll has no values.
    poll::ActiveModel {
        host_id: Set(id),
        started_at: Set(now - 1_000),
        duration_ms: Set(5),
        outcome: Set(PollOutcome::Error),
        error_kind: Set(Some(PollErrorKind::Connect)),
        error: Set(Some("refused".into())),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    // Each rollup tier: one bucket just past its retention, one a day old.
    let layout = one_value_layout(db, id).await;
    let data = entity::series::encode_aggregates(&[Aggregate::of(1.0)]);
    let ages = [(Tier::Minute, 8), (Tier::TenMinutes, 35), (Tier::Hour, 400)];
    for (tier, days) in ages {
        let rows: Vec<PackedRow> = [now - days * DAY - tier.width_ms(), now - DAY]
            .into_iter()
            .map(|t| PackedRow {
                host_id: id,
                start: tier.bucket(t),
                layout_id: layout,
                data: data.clone(),
            })
            .collect();
        series::upsert_buckets(db, tier, &rows).await.unwrap();
    }
    let cutoffs = store::retention::Cutoffs {
        raw: now - 2 * DAY,
        minute: now - 8 * DAY,
        ten_minutes: now - 35 * DAY,
        hour: now - 400 * DAY,
        url_results: now - 30 * DAY,
    };
    let purged = store::retention::purge(db, &cutoffs).await.unwrap();
    assert_eq!(purged.polls, 1, "the poll three days old");
    assert_eq!(purged.buckets, [1, 1, 1], "one bucket past each tier's age");
    for (tier, _) in ages {
        let left = series::bucket_rows(db, tier, &[id], 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|r| r.start).collect::<Vec<_>>(),
            vec![tier.bucket(now - DAY)],
            "{tier:?}"
        );
    }
    // The raw tier answers a series query by when values were taken, oldest first.
    let found = series::read(
        db,
        &Read {
            host_ids: vec![id],
            keys: KeyFilter {
                names: vec!["cpu.usage_pct".into()],
                label: None,
            },
            tier: Tier::Raw,
            from_ms: from,
            to_ms: now + 1,
            step_ms: Some(1),
        },
    )
    .await
    .unwrap();
    let got: Vec<(i64, f64)> = found
        .values()
        .flat_map(|b| b.iter().map(|(t, a)| (*t, a.avg().unwrap())))
        .collect();
    assert_eq!(got, vec![(from + 1_000, 3.0), (now, 2.0)]);
    // Again: nothing more is old.
    let again = store::retention::purge(db, &cutoffs).await.unwrap();
    assert_eq!(again, store::retention::Purged::default());
    svc.stop().await;
}

#[tokio::test]
async fn retention_deletes_in_chunks() {
    use entity::poll;
    use sea_orm::EntityTrait;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;
    let id = idle_host(&svc, "chunks").await;
    let now = store::now_ms();
    let cutoff = now - 86_400_000;
    // Five old polls (three chunks of two) and two to keep, one of them exactly at the cutoff.
    for (i, started) in [
        cutoff - 5,
        cutoff - 4,
        cutoff - 3,
        cutoff - 2,
        cutoff - 1,
        cutoff,
        now,
    ]
    .into_iter()
    .enumerate()
    {
        sampled_poll(&svc.state.db, id, started, started + 10, i as f64).await;
    }
    let purged = store::retention::purge_in_chunks(
        &svc.state.db,
        &store::retention::Cutoffs::all(cutoff),
        2,
    )
    .await
    .unwrap();
    assert_eq!(purged.polls, 5);
    // Registering the host started an enrollment that records its own (recent) failed poll:
    // count the stored polls only.
    let left = || async {
        poll::Entity::find()
            .all(&svc.state.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.sampled_at.is_some())
            .map(|p| p.started_at)
            .collect::<Vec<i64>>()
    };
    assert_eq!(left().await, vec![cutoff, now]);
    // A second purge finds nothing old.
    let again = store::retention::purge_in_chunks(
        &svc.state.db,
        &store::retention::Cutoffs::all(cutoff),
        2,
    )
    .await
    .unwrap();
    assert_eq!(again, store::retention::Purged::default());
    assert_eq!(left().await, vec![cutoff, now]);
    svc.stop().await;
}

/// Registers a disabled host named `name` and returns its id. It is never polled; its
/// enrollment is tried once and fails (nothing listens on its port).
async fn idle_host(svc: &Service, name: &str) -> i64 {
    let (_, host) = svc
        .call(
            "POST",
            "/api/v1/hosts",
            Some(
                json!({"name": name, "address": "127.0.0.1", "port": common::free_port(),
               "username": "hwtest", "password": "x", "enabled": false}),
            ),
        )
        .await;
    host["id"].as_i64().unwrap()
}

/// Stores a successful poll of `host_id` whose one value, `cpu.usage_pct`, was taken at
/// `sampled_at`.
async fn sampled_poll(
    db: &sea_orm::DatabaseConnection,
    host_id: i64,
    started_at: i64,
    sampled_at: i64,
    value: f64,
) {
    use sea_orm::{ActiveModelTrait, Set};
    let layout = one_value_layout(db, host_id).await;
    entity::poll::ActiveModel {
        host_id: Set(host_id),
        started_at: Set(started_at),
        duration_ms: Set(sampled_at - started_at),
        outcome: Set(PollOutcome::Ok),
        sampled_at: Set(Some(sampled_at)),
        layout_id: Set(Some(layout)),
        data: Set(Some(entity::series::encode_values(&[Some(value)]))),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
}

/// The host's layout of one key, `cpu.usage_pct`, written the first time.
async fn one_value_layout(db: &sea_orm::DatabaseConnection, host_id: i64) -> i64 {
    use entity::{series::SeriesKey, series_layout};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let keys = vec![SeriesKey::new("cpu.usage_pct", "")];
    let json = entity::series::keys_to_json(&keys);
    if let Some(l) = series_layout::Entity::find()
        .filter(series_layout::Column::HostId.eq(host_id))
        .filter(series_layout::Column::Keys.eq(json))
        .one(db)
        .await
        .unwrap()
    {
        return l.id;
    }
    store::series::insert_layout(db, host_id, keys)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn url_checks_run_on_their_schedule() {
    // A loopback HTTP endpoint: poem answering 200.
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(
        poem::Server::new_with_acceptor(acceptor).run(poem::endpoint::make_sync(|_| "ok")),
    );
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None).await;
    let (status, check) = svc
        .call("POST", "/api/v1/url-checks", Some(json!({"name": "sched", "url": format!("http://127.0.0.1:{port}/"), "schedule": "*/1 * * * * *"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    let id = check["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, results) = svc
            .call("GET", &format!("/api/v1/url-checks/{id}/results"), None)
            .await;
        if results["items"].as_array().unwrap().len() >= 3 {
            assert!(
                results["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["ok"] == true && r["status"] == 200),
                "{results}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than 3 scheduled runs in 20 s: {results}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Disabled: no more runs.
    svc.call(
        "PATCH",
        &format!("/api/v1/url-checks/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(svc.scheduler.scheduled().await, 0);
    svc.stop().await;
}
