//! Alerts you can act on, end to end on SQLite and PostgreSQL: an alert appears in `/alerts`
//! when a real poll fires it and leaves when it resolves; an acknowledgement records who and
//! is cleared by an escalation; a silence keeps notifications from a real webhook receiver and
//! the alert is delivered exactly once when the silence ends while it still fires; a
//! maintenance window holds delivery, pauses polls with `collect: false` (no
//! `host_unreachable` while sshd is down) and shows on the host; tmpfs never alerts; enrollment
//! and deleted hosts' alerts resolve.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{
    Backend,
    sshd::{self, Sshd},
};
use entity::types::{AlertKind, Event, Level};
use hostwatch::{
    alerts::evaluate::{AlertKey, Notice, Subject},
    api,
    crypto::SecretBox,
    delivery::worker::DeliverySettings,
    poller::PollerSettings,
    services::Services,
    store,
};
use poem::{
    EndpointExt, Request, Response,
    endpoint::BoxEndpoint,
    http::StatusCode,
    listener::{Acceptor, Listener},
    test::TestClient,
};
use serde_json::{Value, json};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_polled_alert_is_listed_acked_escalated_and_resolved,
    a_silence_holds_delivery_until_it_ends_then_delivers_once,
    maintenance_holds_delivery_and_pauses_polls,
    enrollment_and_deleted_hosts_alerts_resolve,
    the_migration_keeps_status_alerts_and_one_threshold_each,
);

/// A webhook receiver that records every body it gets.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Value>>>);

impl Receiver {
    async fn start(&self) -> u16 {
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let got = self.0.clone();
        let ep = poem::endpoint::make(move |mut req: Request| {
            let got = got.clone();
            async move {
                let body = req.take_body().into_string().await.unwrap_or_default();
                got.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                Response::builder().status(StatusCode::OK).body("ok")
            }
        });
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
        port
    }

    fn titles(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["title"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// hostwatch on `backend` with its scheduler (optional) and delivery worker.
struct Harness {
    state: Services,
    client: TestClient<BoxEndpoint<'static, Response>>,
    token: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(backend: Backend, schedule: bool) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("hw.db").display()),
            Backend::Postgres => common::postgres_url().await?,
        };
        let db = store::connect(&url).await.unwrap();
        store::migrate(&db).await.unwrap();
        let token = common::token(&db, "alice", entity::types::Role::Admin).await;
        let state = Services::start_with_delivery(
            db,
            SecretBox::load(None, dir.path()).unwrap(),
            PollerSettings {
                poll_timeout: Duration::from_secs(3),
                enroll_timeout: Duration::from_secs(10),
                unreachable_after: 2,
                enroll_on_create: false,
                ..Default::default()
            },
            DeliverySettings {
                tick: Duration::from_millis(100),
                ..Default::default()
            },
        );
        if schedule {
            state.run_scheduler(8).await.unwrap();
        }
        state.run_delivery();
        let client = TestClient::new(api::app(state.clone()).map_to_response().boxed());
        Some(Self {
            state,
            client,
            token,
            _dir: dir,
        })
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        common::request(&self.client, method, path, &self.token, body).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    async fn webhook(&self, port: u16) -> i64 {
        let ch = self
            .ok(
                "POST",
                "/api/v1/channels",
                Some(
                    json!({"name": "hook", "kind": "webhook", "min_level": "info",
                    "settings": {"url": format!("http://127.0.0.1:{port}/hook")}}),
                ),
            )
            .await;
        ch["id"].as_i64().unwrap()
    }

    /// A host on the test sshd, polled every second (with the scheduler).
    async fn sshd_host(&self, name: &str, sshd: &Sshd, key: &str, labels: Value) -> i64 {
        let h = self
            .ok(
                "POST",
                "/api/v1/hosts",
                Some(
                    json!({"name": name, "address": "127.0.0.1", "port": sshd.port,
                    "username": "hwtest", "private_key": key, "schedule": "*/1 * * * * *",
                    "labels": labels}),
                ),
            )
            .await;
        h["id"].as_i64().unwrap()
    }

    /// A host nobody polls (no scheduler, or nothing listening).
    async fn idle_host(&self, name: &str, labels: Value) -> i64 {
        let h = self
            .ok(
                "POST",
                "/api/v1/hosts",
                Some(
                    json!({"name": name, "address": "127.0.0.1", "port": common::free_port(),
                    "username": "ops", "password": "x", "labels": labels, "enabled": false}),
                ),
            )
            .await;
        h["id"].as_i64().unwrap()
    }

    /// Turns every inherited threshold of the host off but the ones the test sets (the host is
    /// this machine: its disk, CPU and swap would fire or not with its state).
    async fn quiet(&self, id: i64) {
        for metric in [
            "cpu.usage_pct",
            "memory.used_pct",
            "swap.used_pct",
            "disk.used_pct",
            "disk.hours_to_full",
            "gpu.memory_used_pct",
            "gpu.temperature_c",
        ] {
            self.ok(
                "PUT",
                &format!("/api/v1/hosts/{id}/thresholds/{metric}"),
                Some(json!({"enabled": false})),
            )
            .await;
        }
    }

    async fn alerts(&self, query: &str) -> Value {
        self.ok("GET", &format!("/api/v1/alerts{query}"), None)
            .await
    }

    /// Waits until `/alerts{query}` satisfies `done`.
    async fn wait_alerts(&self, query: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = self.alerts(query).await;
            if done(&page) {
                return page;
            }
            assert!(Instant::now() < deadline, "{what}: {page}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn notifications(&self, query: &str) -> Vec<Value> {
        let page = self
            .ok(
                "GET",
                &format!("/api/v1/notifications?limit=500{query}"),
                None,
            )
            .await;
        page["items"].as_array().unwrap().clone()
    }

    async fn ok_polls(&self, id: i64) -> usize {
        let polls = self
            .ok("GET", &format!("/api/v1/hosts/{id}/polls?limit=500"), None)
            .await;
        polls["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["outcome"] == "ok")
            .count()
    }

    async fn notify(&self, notice: Notice) -> i64 {
        let n = store::alerts::notify(&self.state.db, notice)
            .await
            .unwrap()
            .expect("a notification");
        self.state.hub.published(n.id);
        n.id
    }

    async fn stop(self) {
        self.state.shutdown().await.unwrap();
    }
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().unwrap().clone()
}

/// Waits for `cond`, checking every 100 ms for up to `secs`.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cpu_notice(host_id: i64, label: &str, level: Level, event: Event) -> Notice {
    Notice {
        value: Some(97.0),
        threshold: Some(90.0),
        ..Notice::new(
            AlertKey::new(
                Subject::Host(host_id),
                AlertKind::Threshold,
                "gpu.util_pct",
                label,
            ),
            level,
            event,
            format!("web: gpu.util_pct {label} is {level} ({event})"),
            "busy",
        )
    }
}

async fn a_polled_alert_is_listed_acked_escalated_and_resolved(backend: Backend) {
    let Some(h) = Harness::start(backend, true).await else {
        return;
    };
    let sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let id = h
        .sshd_host("alerting", &sshd, &key, json!(["env=prod"]))
        .await;
    h.quiet(id).await;
    // Memory is always in use: over a tiny warning level at the first poll. Disk: every real
    // mount is over a tiny level, but tmpfs and devtmpfs mounts never alert.
    h.ok(
        "PUT",
        &format!("/api/v1/hosts/{id}/thresholds/memory.used_pct"),
        Some(json!({"warning": 0.001, "critical": 100})),
    )
    .await;
    h.ok(
        "PUT",
        &format!("/api/v1/hosts/{id}/thresholds/disk.used_pct"),
        Some(json!({"warning": 0.0000001, "critical": 100})),
    )
    .await;
    let page = h
        .wait_alerts(
            &format!("?host_id={id}&kind=threshold"),
            "memory fires",
            |p| {
                items(p).iter().any(|a| a["metric"] == "memory.used_pct")
                    && items(p).iter().any(|a| a["metric"] == "disk.used_pct")
            },
        )
        .await;
    let mem = items(&page)
        .into_iter()
        .find(|a| a["metric"] == "memory.used_pct")
        .unwrap();
    assert_eq!(
        (
            mem["state"].clone(),
            mem["level"].clone(),
            mem["subject_name"].clone()
        ),
        (json!("firing"), json!("warning"), json!("alerting")),
        "{mem}"
    );
    assert_eq!(mem["threshold"], 0.001);
    assert!(mem["value"].as_f64().unwrap() > 0.001);
    assert_eq!(mem["acknowledged"], false);
    let opened = mem["opened_notification_id"].as_i64().unwrap();
    let alert = mem["id"].as_i64().unwrap();
    let n = h
        .ok(
            "GET",
            &format!("/api/v1/notifications?alert_id={alert}"),
            None,
        )
        .await;
    assert_eq!(
        n["items"][0]["id"], opened,
        "the notification carries its alert: {n}"
    );
    assert!(page["counts"]["warning"].as_u64().unwrap() >= 2, "{page}");
    // tmpfs, devtmpfs and cgroup mounts never alert.
    for a in items(&page)
        .iter()
        .filter(|a| a["metric"] == "disk.used_pct")
    {
        let label = a["label"].as_str().unwrap();
        assert!(
            !label.starts_with("/dev") && !label.starts_with("/sys") && !label.starts_with("/run"),
            "a pseudo filesystem alerts: {a}"
        );
    }
    // The label selector filters; another label does not match.
    assert!(
        h.alerts("?host_label=env=prod").await["total"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert_eq!(h.alerts("?host_label=env=dev").await["total"], 0);

    // Acknowledge: recorded with who, filterable.
    let (status, acked) = h
        .call(
            "POST",
            &format!("/api/v1/alerts/{alert}/ack"),
            Some(json!({"comment": "looking at it", "expires_at": "+2h"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["acknowledged"], true);
    assert_eq!(acked["acknowledgement"]["comment"], "looking at it");
    assert!(
        acked["acknowledgement"]["by"]
            .as_str()
            .unwrap()
            .contains("token alice"),
        "{acked}"
    );
    assert!(acked["acknowledgement"]["expires_at"].is_string());
    let only_acked = h.alerts("?acknowledged=true").await;
    assert_eq!(only_acked["total"], 1, "{only_acked}");
    assert_eq!(only_acked["counts"]["acknowledged"], 1);
    common::assert_error(
        &h.call(
            "POST",
            &format!("/api/v1/alerts/{alert}/ack"),
            Some(json!({"comment": "x", "expires_at": "-1h"})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "expires_at",
    );
    common::assert_error(
        &h.call(
            "POST",
            "/api/v1/alerts/999999/ack",
            Some(json!({"comment": "x"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "no alert",
    );

    // An escalation clears the acknowledgement.
    h.ok(
        "PATCH",
        &format!("/api/v1/hosts/{id}/thresholds/memory.used_pct"),
        Some(json!({"critical": 0.002})),
    )
    .await;
    let page = h
        .wait_alerts(
            &format!("?host_id={id}&level=critical"),
            "memory escalates",
            |p| items(p).iter().any(|a| a["id"] == alert),
        )
        .await;
    let esc = items(&page).into_iter().find(|a| a["id"] == alert).unwrap();
    assert_eq!(
        esc["acknowledged"], false,
        "an escalation clears the ack: {esc}"
    );
    // Un-ack answers the alert as it is.
    h.ok(
        "POST",
        &format!("/api/v1/alerts/{alert}/ack"),
        Some(json!({"comment": "again"})),
    )
    .await;
    let un = h
        .ok("DELETE", &format!("/api/v1/alerts/{alert}/ack"), None)
        .await;
    assert_eq!(un["acknowledged"], false);

    // Resolves: leaves /alerts, stays readable, its history has each step.
    h.ok(
        "PUT",
        &format!("/api/v1/hosts/{id}/thresholds/memory.used_pct"),
        Some(json!({"enabled": false})),
    )
    .await;
    h.wait_alerts(
        &format!("?host_id={id}&kind=threshold"),
        "memory resolves",
        |p| !items(p).iter().any(|a| a["id"] == alert),
    )
    .await;
    let done = h.ok("GET", &format!("/api/v1/alerts/{alert}"), None).await;
    assert_eq!(done["state"], "ok");
    let history = h
        .ok(
            "GET",
            &format!("/api/v1/alerts/{alert}/notifications"),
            None,
        )
        .await;
    let events: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["fired", "escalated", "resolved"], "{history}");
    // `state` filters notifications.
    let resolved = h
        .notifications(&format!("&state=resolved&host_id={id}"))
        .await;
    assert!(resolved.iter().all(|n| n["state"] == "resolved") && !resolved.is_empty());
    h.stop().await;
}

async fn a_silence_holds_delivery_until_it_ends_then_delivers_once(backend: Backend) {
    let Some(h) = Harness::start(backend, false).await else {
        return;
    };
    let rx = Receiver::default();
    let port = rx.start().await;
    h.webhook(port).await;
    let web = h.idle_host("web", json!(["env=prod"])).await;
    // Fired and delivered before the silence; it resolves inside it.
    h.notify(cpu_notice(web, "2", Level::Warning, Event::Fired))
        .await;
    eventually(10, "the first alert is delivered", || {
        rx.titles().len() == 1
    })
    .await;
    let (status, silence) = h
        .call(
            "POST",
            "/api/v1/silences",
            Some(json!({"matchers": [
                {"field": "host_label", "value": "env=prod"},
                {"field": "metric", "op": "regex", "value": "gpu\\..*"}
            ], "duration_minutes": 60, "comment": "GPU driver upgrade"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{silence}");
    assert_eq!(silence["state"], "active");
    assert!(
        silence["created_by"]
            .as_str()
            .unwrap()
            .contains("token alice")
    );
    let sid = silence["id"].as_i64().unwrap();

    // Fires while silenced: recorded with the silence's id, not delivered.
    let fired = h
        .notify(cpu_notice(web, "0", Level::Warning, Event::Fired))
        .await;
    // Another alert fires and resolves inside the silence: nothing of it is ever delivered.
    h.notify(cpu_notice(web, "1", Level::Warning, Event::Fired))
        .await;
    h.notify(cpu_notice(web, "1", Level::Warning, Event::Resolved))
        .await;
    h.notify(cpu_notice(web, "2", Level::Warning, Event::Resolved))
        .await;
    // One the silence does not match goes out at once.
    let mut other = cpu_notice(web, "", Level::Critical, Event::Fired);
    other.key.metric = "cpu.usage_pct".into();
    other.title = "web: cpu is critical".into();
    h.notify(other).await;
    eventually(10, "the unsilenced alert is delivered", || {
        rx.titles().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.titles().len(), 2, "{:?}", rx.titles());
    assert_eq!(rx.titles()[1], "web: cpu is critical");
    let n = h.notifications("&kind=threshold").await;
    let held = n.iter().find(|n| n["id"] == fired).unwrap();
    assert_eq!(held["silence_id"], sid, "{held}");
    let page = h.alerts("?silenced=true").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["silenced_by"], sid);
    assert_eq!(h.alerts("?silenced=false").await["total"], 1);

    // Bad silences are refused, naming the field.
    for (body, field) in [
        (
            json!({"matchers": [], "duration_minutes": 5, "comment": "x"}),
            "matchers",
        ),
        (
            json!({"matchers": [{"field": "host", "op": "regex", "value": "("}], "duration_minutes": 5, "comment": "x"}),
            "matchers",
        ),
        (
            json!({"matchers": [{"field": "host", "value": "a"}], "comment": "x"}),
            "ends_at",
        ),
        (
            json!({"matchers": [{"field": "host", "value": "a"}], "ends_at": "-1h", "comment": "x"}),
            "ends_at",
        ),
        (
            json!({"matchers": [{"field": "level", "value": "loud"}], "duration_minutes": 5, "comment": "x"}),
            "matchers",
        ),
    ] {
        let resp = h.call("POST", "/api/v1/silences", Some(body.clone())).await;
        assert!(resp.0.is_client_error(), "{body}: {resp:?}");
        assert!(
            resp.1["message"].as_str().unwrap().contains(field),
            "{body}: {resp:?}"
        );
    }

    // The silence ends while the first alert still fires: delivered once, then never again.
    let expired = h
        .ok("POST", &format!("/api/v1/silences/{sid}/expire"), None)
        .await;
    assert_eq!(expired["state"], "expired");
    eventually(10, "the held notifications are delivered", || {
        rx.titles().len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The firing one once; the resolution of the one channels saw open; nothing of the one
    // that came and went inside the silence.
    let titles = rx.titles();
    assert_eq!(titles.len(), 4, "{titles:?}");
    let later = &titles[2..];
    assert!(
        later
            .iter()
            .any(|t| t.contains("gpu.util_pct 0 is warning (fired)")),
        "{titles:?}"
    );
    assert!(
        later
            .iter()
            .any(|t| t.contains("gpu.util_pct 2 is warning (resolved)")),
        "{titles:?}"
    );
    assert!(
        !titles.iter().any(|t| t.contains("gpu.util_pct 1")),
        "{titles:?}"
    );
    assert_eq!(h.ok("GET", "/api/v1/silences", None).await["total"], 0);
    assert_eq!(
        h.ok("GET", "/api/v1/silences?state=expired", None).await["total"],
        1
    );
    h.stop().await;
}

/// A daily window in force now: started a minute ago, local to `tz`.
fn window_now(name: &str, host_id: i64, collect: bool, tz: &str) -> Value {
    let zone: chrono_tz::Tz = tz.parse().unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::minutes(1)).with_timezone(&zone);
    json!({"name": name, "host_ids": [host_id], "recurrence": "daily",
        "starts": start.format("%H:%M").to_string(), "time_zone": tz,
        "duration_minutes": 30, "collect": collect, "comment": "planned reboot"})
}

async fn maintenance_holds_delivery_and_pauses_polls(backend: Backend) {
    let Some(h) = Harness::start(backend, true).await else {
        return;
    };
    let rx = Receiver::default();
    let port = rx.start().await;
    h.webhook(port).await;
    let mut sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let id = h.sshd_host("db-1", &sshd, &key, json!([])).await;
    h.quiet(id).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.ok_polls(id).await < 2 {
        assert!(Instant::now() < deadline, "no polls");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // collect: true holds delivery, polls go on.
    let (status, w) = h
        .call(
            "POST",
            "/api/v1/maintenance-windows",
            Some(window_now("patching", id, true, "Asia/Kolkata")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    assert_eq!(w["active"], true, "{w}");
    let wid = w["id"].as_i64().unwrap();
    let host = h.ok("GET", &format!("/api/v1/hosts/{id}"), None).await;
    assert_eq!(host["maintenance"]["window_id"], wid, "{host}");
    let n = h
        .notify(cpu_notice(id, "0", Level::Critical, Event::Fired))
        .await;
    let held = h
        .notifications(&format!(
            "&alert_id={}",
            h.alerts("?kind=threshold").await["items"][0]["id"]
        ))
        .await;
    assert_eq!(held[0]["id"], n);
    assert_eq!(held[0]["maintenance_id"], wid, "{held:?}");
    let before = h.ok_polls(id).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(h.ok_polls(id).await > before, "collect: true keeps polling");
    assert!(rx.titles().is_empty(), "held back: {:?}", rx.titles());

    // collect: false pauses polls: sshd goes down for a planned reboot, nothing fires.
    let mut paused = window_now("reboot", id, false, "America/New_York");
    paused["until"] = json!("2099-01-01T00:00:00Z");
    let (status, w2) = h
        .call("POST", "/api/v1/maintenance-windows", Some(paused))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w2}");
    sshd.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let polls_then = h
        .ok("GET", &format!("/api/v1/hosts/{id}/polls?limit=500"), None)
        .await["total"]
        .clone();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let polls_now = h
        .ok("GET", &format!("/api/v1/hosts/{id}/polls?limit=500"), None)
        .await["total"]
        .clone();
    assert_eq!(
        polls_then, polls_now,
        "polls pause during a collect: false window"
    );
    assert!(
        h.notifications("&kind=host_unreachable").await.is_empty(),
        "no host_unreachable during the planned reboot"
    );
    // Bad windows are refused, naming the field.
    for (body, field) in [
        (
            json!({"name": "x", "host_ids": [id], "recurrence": "weekly", "starts": "02:00", "duration_minutes": 60}),
            "weekdays",
        ),
        (
            json!({"name": "x", "host_ids": [id], "recurrence": "daily", "starts": "25:00", "duration_minutes": 60}),
            "starts",
        ),
        (
            json!({"name": "x", "host_ids": [id], "recurrence": "daily", "starts": "02:00", "time_zone": "Mars/Olympus", "duration_minutes": 60}),
            "time_zone",
        ),
        (
            json!({"name": "x", "host_ids": [id], "recurrence": "daily", "starts": "02:00", "duration_minutes": 2000}),
            "duration_minutes",
        ),
        (
            json!({"name": "x", "recurrence": "daily", "starts": "02:00", "duration_minutes": 60}),
            "host_ids",
        ),
    ] {
        let resp = h
            .call("POST", "/api/v1/maintenance-windows", Some(body.clone()))
            .await;
        assert_eq!(resp.0, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp:?}");
        assert!(
            resp.1["message"].as_str().unwrap().contains(field),
            "{body}: {resp:?}"
        );
    }

    // The windows end: the held alert is delivered once; polls resume and find sshd down.
    for w in [wid, w2["id"].as_i64().unwrap()] {
        let (status, _) = h
            .call("DELETE", &format!("/api/v1/maintenance-windows/{w}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    eventually(10, "the held alert is delivered", || rx.titles().len() == 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.notifications("&kind=host_unreachable").await.is_empty() {
        assert!(Instant::now() < deadline, "polls did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let host = h.ok("GET", &format!("/api/v1/hosts/{id}"), None).await;
    assert!(host.get("maintenance").is_none(), "{host}");
    h.stop().await;
}

async fn enrollment_and_deleted_hosts_alerts_resolve(backend: Backend) {
    let Some(h) = Harness::start(backend, false).await else {
        return;
    };
    let sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let h_res = h
        .ok(
            "POST",
            "/api/v1/hosts",
            Some(
                json!({"name": "enrollee", "address": "127.0.0.1", "port": sshd.port,
                "username": "hwtest", "private_key": key, "enabled": false}),
            ),
        )
        .await;
    let id = h_res["id"].as_i64().unwrap();
    // An enrollment that failed after one that worked fires `enrollment_failed`, as the poller
    // writes it.
    h.notify(Notice::new(
        AlertKey::new(Subject::Host(id), AlertKind::EnrollmentFailed, "", ""),
        Level::Warning,
        Event::Fired,
        "enrollee: enrollment failed",
        "sh: not found",
    ))
    .await;
    let page = h.alerts("?kind=enrollment_failed").await;
    assert_eq!(page["total"], 1, "{page}");
    let alert = page["items"][0]["id"].as_i64().unwrap();
    // An enrollment that works resolves it.
    let run = h
        .ok("POST", &format!("/api/v1/hosts/{id}/enroll"), None)
        .await;
    assert_eq!(run["ok"], true, "{run}");
    let page = h.alerts("?kind=enrollment_failed").await;
    assert_eq!(page["total"], 0, "{page}");
    let history = h
        .ok(
            "GET",
            &format!("/api/v1/alerts/{alert}/notifications"),
            None,
        )
        .await;
    assert_eq!(history["items"][1]["event"], "resolved", "{history}");

    // Deleting a host resolves what it had firing, in a notification that outlives it.
    h.notify(cpu_notice(id, "0", Level::Critical, Event::Fired))
        .await;
    let alert = h.alerts("?kind=threshold").await["items"][0]["id"]
        .as_i64()
        .unwrap();
    let (status, _) = h.call("DELETE", &format!("/api/v1/hosts/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(h.alerts("").await["total"], 0);
    let gone = h.notifications(&format!("&alert_id={alert}")).await;
    let last = gone.last().unwrap();
    assert_eq!(
        (last["event"].clone(), last["state"].clone()),
        (json!("resolved"), json!("resolved"))
    );
    assert!(
        last["title"].as_str().unwrap().contains("host was deleted"),
        "{last}"
    );
    assert!(last.get("host_id").is_none(), "{last}");
    h.stop().await;
}

async fn the_migration_keeps_status_alerts_and_one_threshold_each(backend: Backend) {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("hw.db").display()),
        Backend::Postgres => match common::postgres_url().await {
            Some(u) => u,
            None => return,
        },
    };
    let db = store::connect(&url).await.unwrap();
    // The schema before this issue, with a host whose login is refused and the thresholds a
    // host used to get at creation (one of them twice, as a race could leave it).
    migration::Migrator::up(&db, Some(11)).await.unwrap();
    let secrets = SecretBox::load(None, dir.path()).unwrap();
    let view = store::hosts::create(
        &db,
        &secrets,
        store::hosts::NewHost {
            name: "locked-out".into(),
            address: "127.0.0.1".into(),
            port: 22,
            username: "ops".into(),
            credential: store::hosts::NewCredential::Password(zeroize::Zeroizing::new(
                "x".to_owned(),
            )),
            schedule: "0 * * * * *".into(),
            labels: vec![],
            expected_host_key_fingerprint: None,
            provision: false,
            enabled: true,
        },
    )
    .await
    .unwrap();
    let id = view.host.id;
    let truth = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        "TRUE"
    } else {
        "1"
    };
    db.execute_unprepared(&format!(
        "UPDATE hosts SET status = 'auth_failed' WHERE id = {id}"
    ))
    .await
    .unwrap();
    for (metric, w, c) in [
        ("cpu.usage_pct", 80.0, 90.0),
        ("memory.used_pct", 70.0, 90.0),
        ("memory.used_pct", 75.0, 90.0),
    ] {
        db.execute_unprepared(&format!(
            "INSERT INTO thresholds (host_id, metric, warning, critical, for_polls, hysteresis, \
             enabled, updated_at) VALUES ({id}, '{metric}', {w:.1}, {c:.1}, 1, 5.0, {truth}, 0)"
        ))
        .await
        .unwrap();
    }
    store::migrate(&db).await.unwrap();
    // The copy of the default went, the newest duplicate stayed, and a third cannot be added.
    let own = store::thresholds::list(&db, store::thresholds::Owner::Host(id))
        .await
        .unwrap();
    let kept: Vec<(String, Option<f64>)> =
        own.iter().map(|t| (t.metric.clone(), t.warning)).collect();
    assert_eq!(kept, [("memory.used_pct".to_owned(), Some(75.0))]);
    assert!(
        db.execute_unprepared(&format!(
            "INSERT INTO thresholds (host_id, metric, label, warning, critical, for_polls, \
             hysteresis, enabled, updated_at) VALUES ({id}, 'memory.used_pct', '', 1.0, 2.0, 1, \
             5.0, {truth}, 0)"
        ))
        .await
        .is_err(),
        "a second threshold for the same metric and label is refused"
    );
    // The refused login is an alert that is firing, so leaving the status resolves it.
    let resolved = store::alerts::notify(
        &db,
        Notice::new(
            AlertKey::new(Subject::Host(id), AlertKind::AuthFailed, "", ""),
            Level::Critical,
            Event::Resolved,
            "locked-out is reachable again",
            "the login works",
        ),
    )
    .await
    .unwrap();
    assert!(resolved.is_some(), "the resolution was written");
    let page = store::alerts::active(&db, &Default::default())
        .await
        .unwrap();
    assert!(page.is_empty(), "{page:?}");
    db.close().await.unwrap();
}
