//! hostwatch under load and hostile input: concurrent writes while the fleet is polled, on
//! SQLite and PostgreSQL.

mod common;

use std::{collections::BTreeMap, sync::Arc};

use common::{Backend, TestApp, fleet::Fleet};
use serde_json::{Value, json};

/// Operations per client in the concurrent-write test.
const OPS: usize = 150;
const CLIENTS: usize = 8;

/// What one client's writes left, to read back.
#[derive(Debug, Default)]
struct Written {
    /// Host id → the labels of its last accepted PATCH.
    labels: BTreeMap<i64, Vec<String>>,
    /// Host id → the warning level of its last accepted threshold PUT.
    warning: BTreeMap<i64, f64>,
    url_checks: Vec<i64>,
    /// Status → how many answers had it.
    statuses: BTreeMap<u16, usize>,
}

async fn one_client(app: Arc<TestApp>, client: usize, polled: Vec<i64>) -> Written {
    let mut w = Written::default();
    let mut own = Vec::new();
    let note = |w: &mut Written, status: poem::http::StatusCode| {
        *w.statuses.entry(status.as_u16()).or_default() += 1;
        status.is_success()
    };
    for i in 0..OPS {
        match i % 5 {
            0 => {
                let (status, host) = app
                    .post(
                        "/api/v1/hosts",
                        json!({"name": format!("c{client}-h{i}"), "address": "127.0.0.1",
                               "port": 1, "username": "u", "password": "p", "enabled": false}),
                    )
                    .await;
                if note(&mut w, status) {
                    let id = host["id"].as_i64().unwrap();
                    own.push(id);
                    w.labels.insert(id, Vec::new());
                }
            }
            1 if !own.is_empty() => {
                let id = own[i % own.len()];
                let labels = vec![format!("round={i}"), format!("client={client}")];
                let (status, _) = app
                    .patch(&format!("/api/v1/hosts/{id}"), json!({"labels": labels}))
                    .await;
                if note(&mut w, status) {
                    w.labels.insert(id, labels);
                }
            }
            2 => {
                let (status, check) = app
                    .post(
                        "/api/v1/url-checks",
                        json!({"name": format!("c{client}-u{i}"), "url": "http://127.0.0.1:1/",
                               "enabled": false}),
                    )
                    .await;
                if note(&mut w, status) {
                    w.url_checks.push(check["id"].as_i64().unwrap());
                }
            }
            3 if !own.is_empty() => {
                let id = own[i % own.len()];
                let warning = 50.0 + (i % 40) as f64;
                let (status, _) = app
                    .call(
                        "PUT",
                        &format!("/api/v1/hosts/{id}/thresholds/cpu.usage_pct"),
                        &app.admin.clone(),
                        Some(json!({"warning": warning, "critical": 95.0})),
                    )
                    .await;
                if note(&mut w, status) {
                    w.warning.insert(id, warning);
                }
            }
            _ => {
                // A host the poll writer is updating every second.
                let id = polled[(client + i) % polled.len()];
                let labels = vec![format!("touched={client}-{i}")];
                let (status, _) = app
                    .patch(&format!("/api/v1/hosts/{id}"), json!({"labels": labels}))
                    .await;
                note(&mut w, status);
            }
        }
    }
    w
}

/// Eight clients write at once while twenty hosts are polled every second: no write fails
/// with a server error, and every accepted write reads back.
async fn concurrent_writes_never_fail(app: TestApp) {
    let fleet = Fleet::start(app.dir.path(), 20, &[]).await;
    let polled = fleet
        .register(app.db(), &app.state.secrets, "polled", "*/1 * * * * *")
        .await;
    app.state.run_scheduler(16).await.unwrap();
    // The fleet is being polled before the clients start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, polls) = app
            .get(&format!("/api/v1/hosts/{}/polls", polled[19]))
            .await;
        if polls["items"].as_array().is_some_and(|p| p.len() >= 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet is not polled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let app = Arc::new(app);
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(one_client(app.clone(), c, polled.clone())))
        .collect();
    let mut results = Vec::new();
    for c in clients {
        results.push(c.await.unwrap());
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for w in &results {
        for (s, n) in &w.statuses {
            *statuses.entry(*s).or_default() += n;
        }
    }
    eprintln!(
        "concurrent writes ({:?}): {} in {:.1} s, by status {statuses:?}",
        sea_orm::ConnectionTrait::get_database_backend(app.db()),
        statuses.values().sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        statuses.keys().all(|s| (200..300).contains(s)),
        "writes that failed: {statuses:?}"
    );
    // Every accepted write reads back.
    for w in &results {
        for (id, labels) in &w.labels {
            let (status, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
            assert_eq!(status, 200, "{host}");
            let shown: Vec<String> = serde_json::from_value(host["labels"].clone()).unwrap();
            assert_eq!(&shown, labels, "host {id}");
        }
        for (id, warning) in &w.warning {
            let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
            let cpu = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["metric"] == "cpu.usage_pct")
                .cloned()
                .unwrap_or(Value::Null);
            assert_eq!(cpu["warning"], *warning, "host {id}");
        }
        for id in &w.url_checks {
            let (status, _) = app.get(&format!("/api/v1/url-checks/{id}")).await;
            assert_eq!(status, 200, "url check {id}");
        }
    }
    // Eight clients racing for one name: one is registered, the others told it is taken.
    let racers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    "/api/v1/hosts",
                    json!({"name": "contested", "address": "127.0.0.1", "port": 1,
                           "username": "u", "password": "p", "enabled": false}),
                )
                .await
                .0
                .as_u16()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.unwrap());
    }
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [201, 409, 409, 409, 409, 409, 409, 409],
        "{outcomes:?}"
    );
    // The polling went on: every polled host has stored polls from the window.
    for id in &polled {
        let (_, polls) = app.get(&format!("/api/v1/hosts/{id}/polls")).await;
        assert!(
            polls["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["outcome"] == "ok"),
            "host {id}: {polls}"
        );
    }
    fleet.stop().await;
    app.state.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writes_never_fail() {
    concurrent_writes_never_fail(TestApp::start(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_writes_never_fail() {
    if let Some(app) = TestApp::start(Backend::Postgres).await {
        concurrent_writes_never_fail(app).await;
    }
}

/// The error kind each hostile simulated host's poll fails with, in fleetsim's order.
const HOSTILE: [(&str, &[&str]); 6] = [
    ("slow", &["timeout"]),
    ("mute", &["timeout"]),
    ("drop", &["dropped"]),
    ("flood", &["output_too_large"]),
    ("garbage", &["protocol", "connect"]),
    ("tarpit", &["timeout"]),
];

/// Hostile hosts (slow, mute, dropping the channel, flooding, garbage instead of SSH, a
/// tarpit) each fail alone within the poll deadline with their own error, while the normal
/// hosts polled at the same time answer; the dropping host's failures count towards
/// `host_unreachable` like any other.
async fn hostile_hosts_fail_alone(app: TestApp) {
    let fleet = Fleet::start(
        app.dir.path(),
        10,
        &[
            "--slow",
            "1",
            "--slow-ms",
            "60000",
            "--mute",
            "1",
            "--drop",
            "1",
            "--flood",
            "1",
            "--garbage",
            "1",
            "--tarpit",
            "1",
        ],
    )
    .await;
    let ids = fleet
        .register(app.db(), &app.state.secrets, "sim", "0 0 0 1 1 *")
        .await;
    let deadline = app.state.poller.settings().poll_timeout;
    let app = Arc::new(app);
    let started = std::time::Instant::now();
    let polls: Vec<_> = ids
        .iter()
        .map(|id| {
            let (app, id) = (app.clone(), *id);
            tokio::spawn(async move {
                let (status, body) = app
                    .post(&format!("/api/v1/hosts/{id}/poll"), json!({}))
                    .await;
                (status, body, started.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for p in polls {
        answers.push(p.await.unwrap());
    }
    for (i, (status, body, took)) in answers.iter().enumerate() {
        assert!(
            *took < deadline + std::time::Duration::from_secs(2),
            "host {i} took {took:?}"
        );
        match HOSTILE.get(i) {
            Some((what, kinds)) => {
                assert_eq!(status.as_u16(), 502, "{what}: {body}");
                let kind = body["error"].as_str().unwrap();
                assert!(kinds.contains(&kind), "{what}: {body}");
            }
            None => {
                assert_eq!(status.as_u16(), 200, "normal host {i}: {body}");
                // Not held up by the hostile ones: answered well before the deadline.
                assert!(*took < deadline, "normal host {i} took {took:?}");
            }
        }
    }
    // The dropping host is unreachable, and after enough failed polls it says so.
    let drop = ids[2];
    let (_, host) = app.get(&format!("/api/v1/hosts/{drop}")).await;
    assert_eq!(host["status"], "unreachable", "{host}");
    for _ in 0..3 {
        app.post(&format!("/api/v1/hosts/{drop}/poll"), json!({}))
            .await;
    }
    let (_, page) = app
        .get(&format!("/api/v1/notifications?host_id={drop}"))
        .await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "host_unreachable" && n["state"] == "firing"),
        "{page}"
    );
    let (_, recorded) = app.get(&format!("/api/v1/hosts/{drop}/polls")).await;
    assert!(
        recorded["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outcome"] == "error" && p["error_kind"] == "dropped"),
        "{recorded}"
    );
    fleet.stop().await;
    app.state.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_hostile_hosts_fail_alone() {
    hostile_hosts_fail_alone(TestApp::start(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_hostile_hosts_fail_alone() {
    if let Some(app) = TestApp::start(Backend::Postgres).await {
        hostile_hosts_fail_alone(app).await;
    }
}

mod http_limits {
    use std::{
        io::{Read, Write},
        net::TcpStream,
        time::{Duration, Instant},
    };

    use hostwatch::{
        api::RequestLimits,
        app::{self, HttpSettings},
        server,
    };

    use super::{Backend, TestApp};

    /// The service's HTTP server on a free loopback port with small limits.
    async fn serve(app: &TestApp) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
        let stop = tokio_util::sync::CancellationToken::new();
        let http = HttpSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            connections: server::Limits {
                max_connections: 8,
                header_timeout: Duration::from_secs(1),
            },
            requests: RequestLimits::default(),
            access_log: false,
            tls: None,
        };
        let running = app::start(http, app.state.clone(), stop.clone())
            .await
            .unwrap();
        (running.addr, stop)
    }

    /// Sends `head`, then up to `body` bytes of filler, and returns the answer's first line
    /// and how many body bytes went out before it came.
    fn send_until_answered(addr: std::net::SocketAddr, head: &str, body: usize) -> (String, usize) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Err(_) if sent < body => {
                    let n = chunk.len().min(body - sent);
                    if s.write_all(&chunk[..n]).is_err() {
                        continue;
                    }
                    sent += n;
                }
                Err(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        (text.lines().next().unwrap_or_default().to_owned(), sent)
    }

    async fn limits_hold(app: TestApp) {
        let (addr, stop) = serve(&app).await;
        let admin = app.admin.clone();
        let reader = app.reader.clone();
        let big = 50 << 20;
        tokio::task::spawn_blocking(move || {
            // A 50 MB body declared: refused before it is read.
            let head = format!(
                "POST /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
                 Content-Type: application/json\r\nContent-Length: {big}\r\n\r\n"
            );
            let (status, sent) = send_until_answered(addr, &head, big);
            assert!(status.contains(" 413 "), "{status}");
            assert!(sent <= 2 << 20, "{sent} bytes were read before the 413");
            // The same without a length: cut off once past the limit.
            let head = format!(
                "POST /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                 3200000\r\n"
            );
            let (status, sent) = send_until_answered(addr, &head, big);
            assert!(status.contains(" 413 "), "{status}");
            assert!(sent <= 4 << 20, "{sent} bytes were read before the 413");
            // A read-only token gets its 403 before its body is read.
            let head = format!(
                "POST /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {reader}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            );
            let (status, sent) = send_until_answered(addr, &head, 1_000_000);
            assert!(status.contains(" 403 "), "{status}");
            assert!(sent < 1_000_000, "the whole body was read before the 403");

            // Headers sent a byte at a time are cut off at the deadline.
            let mut slow = TcpStream::connect(addr).unwrap();
            slow.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let started = Instant::now();
            let mut closed = false;
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            {
                if slow.write_all(&[*b]).is_err() {
                    closed = true;
                    break;
                }
                let mut buf = [0u8; 64];
                if matches!(slow.read(&mut buf), Ok(0) | Ok(_)) {
                    closed = true;
                    break;
                }
            }
            assert!(closed, "a slow client was never cut off");
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{:?}",
                started.elapsed()
            );

            // Idle connections up to the limit; one more is refused at once with 503; once
            // the idle ones are closed by the deadline, a new one is served.
            let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
            std::thread::sleep(Duration::from_millis(200));
            let mut extra = TcpStream::connect(addr).unwrap();
            extra
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut answer = String::new();
            let _ = extra.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
            assert!(answer.contains("\"error\":\"busy\""), "{answer:?}");
            std::thread::sleep(Duration::from_millis(1500));
            let (status, _) =
                send_until_answered(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0);
            assert!(status.contains(" 200 "), "{status}");
            drop(idle);
        })
        .await
        .unwrap();
        stop.cancel();
        app.state.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_http_limits_hold() {
        limits_hold(TestApp::start(Backend::Sqlite).await.unwrap()).await;
    }

    #[tokio::test]
    async fn every_response_has_the_security_headers() {
        let app = TestApp::start(Backend::Sqlite).await.unwrap();
        for path in ["/healthz", "/api/v1/hosts", "/nowhere", "/docs"] {
            let resp = app.client.get(path).send().await;
            let headers = resp.0.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        }
        let resp = app.client.get("/docs").send().await;
        let policy = resp.0.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(
            policy.starts_with("default-src 'none'; script-src 'sha256-"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"), "{policy}");
    }
}

/// Enrollment of a host that accepts the connection and never speaks gives up at the poll
/// deadline (dial and login), not at the longer enrollment deadline meant for the script.
#[tokio::test]
async fn enrolling_a_tarpit_ends_at_the_poll_deadline() {
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let fleet = Fleet::start(app.dir.path(), 1, &["--tarpit", "1"]).await;
    let (status, host) = app
        .post(
            "/api/v1/hosts",
            json!({"name": "tarpit", "address": "127.0.0.1", "port": fleet.base,
                   "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(status, 201, "{host}");
    let settings = app.state.poller.settings().clone();
    assert!(settings.enroll_timeout > settings.poll_timeout * 2);
    let started = std::time::Instant::now();
    let (status, run) = app
        .post(&format!("/api/v1/hosts/{}/enroll", host["id"]), json!({}))
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["ok"], false, "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("connecting and authenticating"),
        "{run}"
    );
    assert!(
        took >= settings.poll_timeout
            && took < settings.poll_timeout + std::time::Duration::from_secs(2),
        "enrollment took {took:?} (poll deadline {:?}, enrollment {:?})",
        settings.poll_timeout,
        settings.enroll_timeout
    );
    fleet.stop().await;
}

/// A host whose enrollment fails the same way at every tick keeps one run with a count, not a
/// run per tick; and no host keeps more than the newest runs.
#[tokio::test]
async fn a_repeated_enrollment_failure_is_counted_not_stored_again() {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    app.state.run_scheduler(4).await.unwrap();
    let port = common::free_port();
    let (status, host) = app
        .post(
            "/api/v1/hosts",
            json!({"name": "never-up", "address": "127.0.0.1", "port": port, "username": "u",
                   "password": "p", "schedule": "*/1 * * * * *"}),
        )
        .await;
    assert_eq!(status, 201, "{host}");
    let id = host["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let run = loop {
        let (_, run) = app.get(&format!("/api/v1/hosts/{id}/enrollment")).await;
        if run["repeats"].as_i64().unwrap_or(0) >= 3 {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "{run}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        run["error"].as_str().unwrap().contains("cannot connect"),
        "{run}"
    );
    assert!(run["last_started_at"].as_str().unwrap() > run["started_at"].as_str().unwrap());
    let rows = entity::enrollment_run::Entity::find()
        .filter(entity::enrollment_run::Column::HostId.eq(id))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(rows, 1, "one run for every identical failure");
    // Runs that differ are kept up to the limit.
    for i in 0..30 {
        hostwatch::store::enrollment::insert(
            app.db(),
            hostwatch::store::enrollment::NewRun {
                host_id: id,
                started_at: i,
                finished_at: i,
                error: Some(format!("failure {i}")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let rows = entity::enrollment_run::Entity::find()
        .filter(entity::enrollment_run::Column::HostId.eq(id))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(rows, hostwatch::store::enrollment::RUNS_KEPT);
    app.state.shutdown().await.unwrap();
}
