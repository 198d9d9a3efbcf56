//! The service as an operator runs it in production: what its log says about the fleet, how
//! instances share a database, accounts and tokens, TLS.

mod common;

use std::time::{Duration, Instant};

use common::{
    service::Service,
    sshd::{Sshd, client_key},
};
use serde_json::{Value, json};

/// Waits until host `id` has `status`.
async fn wait_status(svc: &Service, token: &str, id: i64, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, host) = svc
            .call("GET", &format!("/api/v1/hosts/{id}"), token, None)
            .await;
        if host["status"] == status {
            return host;
        }
        assert!(
            Instant::now() < deadline,
            "host {id} is not {status}: {host}\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn register(svc: &Service, token: &str, name: &str, port: u16, key: &str) -> i64 {
    let (status, host) = svc
        .call(
            "POST",
            "/api/v1/hosts",
            token,
            Some(json!({"name": name, "address": "127.0.0.1", "port": port,
                        "username": "hwtest", "private_key": key,
                        "schedule": "*/1 * * * * *"})),
        )
        .await;
    assert_eq!(status, 201, "{host}");
    host["id"].as_i64().unwrap()
}

#[tokio::test]
async fn the_log_names_unreachable_hosts_and_changed_keys_without_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key, public) = client_key("ed25519", "");
    let mut gone = Sshd::start();
    let mut rekeyed = Sshd::start();
    gone.authorize(&public);
    rekeyed.authorize(&public);
    let svc = Service::start(&data, None, &["--poll-timeout", "3s"]).await;
    let token = svc.admin_token();
    let a = register(&svc, &token, "web-gone", gone.port, &key).await;
    let b = register(&svc, &token, "db-rekeyed", rekeyed.port, &key).await;
    wait_status(&svc, &token, a, "ok").await;
    wait_status(&svc, &token, b, "ok").await;

    gone.stop();
    rekeyed.restart_with_new_host_key();
    wait_status(&svc, &token, a, "unreachable").await;
    wait_status(&svc, &token, b, "host_key_mismatch").await;
    // The API shows a status as soon as it is stored; the log file may get its line a moment
    // later (seen once on a cold CI run): wait for each line, not only the last.
    svc.wait_log("host unreachable", Duration::from_secs(10))
        .await;
    let log = svc
        .wait_log("host key changed", Duration::from_secs(10))
        .await;
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in the log:\n{log}"))
            .to_owned()
    };
    let unreachable = line("host unreachable");
    assert!(unreachable.contains("WARN"), "{unreachable}");
    assert!(unreachable.contains("web-gone"), "{unreachable}");
    assert!(
        unreachable.contains(&format!("host_id={a}")),
        "{unreachable}"
    );
    let changed = line("host key changed");
    assert!(changed.contains("db-rekeyed"), "{changed}");
    assert!(changed.contains(&format!("host_id={b}")), "{changed}");
    // Both are alerts too, and each alert is logged.
    let fired = line("kind=host_key");
    assert!(fired.contains("alert:"), "{fired}");
    // Written to a file: plain text, no colour.
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log}");
    // Requests are not logged at info unless asked for.
    assert!(
        !log.contains("/api/v1/hosts/"),
        "access lines at info:\n{log}"
    );
}

#[test]
fn log_format_json_writes_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = std::process::Command::new(common::service::BIN)
        .args(["--log-format", "json", "migrate", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "migrations applied" && l["level"] == "INFO"),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_instance_on_one_sqlite_data_dir_exits_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Service::start(&data, None, &[]).await;
    let mut second = Service::spawn(&data, None, &[]);
    let code = second.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(1), "{}", second.log());
    let log = second.log();
    assert!(
        log.contains(&format!("PID {}", first.pid())),
        "the message names the holder: {log}"
    );
    assert!(log.contains("hostwatch.db.lock"), "{log}");
    // It stopped before starting anything.
    assert!(!log.contains("scheduler started"), "{log}");
    assert!(!log.contains("listening"), "{log}");
    // The first one is untouched.
    let (status, _) = first.call("GET", "/readyz", "", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_taken_port_stops_the_service_before_it_touches_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = dir.path().join("data");
    let mut svc = Service::spawn_on(&data, None, &[], port);
    assert_eq!(svc.wait_exit(Duration::from_secs(20)), Some(1));
    let log = svc.log();
    assert!(log.contains("Address already in use"), "{log}");
    assert!(
        !data.join("hostwatch.db").exists(),
        "migrated before binding"
    );
    assert!(!data.join("master.key").exists());
}

#[tokio::test]
async fn bad_configuration_fails_at_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases: [(&[&str], Option<&str>, &str); 3] = [
        (
            &[
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            None,
            "--tls-cert /nonexistent/cert.pem",
        ),
        (
            &["--lease-period", "5s", "--poll-timeout", "10s"],
            Some("postgres://postgres@127.0.0.1:1/none"),
            "--poll-timeout",
        ),
        (
            &["--lease-period", "15s"],
            Some("postgres://hw:secret-pw@127.0.0.1:1/none"),
            "does not answer",
        ),
    ];
    for (flags, url, needle) in cases {
        let mut svc = Service::spawn(&data, url, flags);
        assert_eq!(svc.wait_exit(Duration::from_secs(30)), Some(1), "{flags:?}");
        let log = svc.log();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{flags:?}: one line: {log}");
        assert!(lines[0].contains(needle), "{flags:?}: {log}");
        assert!(
            !log.contains("secret-pw"),
            "the password is not logged: {log}"
        );
        assert!(!log.contains("scheduler started"));
    }
}

/// A lease held by one node is refused to another until it expires; the new holder gets the
/// next epoch, and the old holder's fenced transactions fail even though it still believes it
/// leads.
#[tokio::test]
async fn the_lease_fences_a_deposed_leader() {
    use hostwatch::store::cluster::{self, Fence};
    let Some(url) = common::postgres_url().await else {
        return;
    };
    let db = hostwatch::store::connect(&url).await.unwrap();
    hostwatch::store::migrate(&db).await.unwrap();
    let (a, b) = (Fence::leased("a"), Fence::leased("b"));
    let epoch_a = cluster::try_lease(&db, "a", 1500).await.unwrap().unwrap();
    a.hold(epoch_a);
    assert_eq!(cluster::try_lease(&db, "b", 1500).await.unwrap(), None);
    // Renewal keeps the epoch.
    assert_eq!(
        cluster::try_lease(&db, "a", 1500).await.unwrap(),
        Some(epoch_a)
    );
    a.begin(&db).await.unwrap().commit().await.unwrap();
    assert!(b.begin(&db).await.is_err(), "b holds nothing");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    // Expired: a's own writes are refused already, before anyone takes over.
    assert!(a.begin(&db).await.is_err());
    let epoch_b = cluster::try_lease(&db, "b", 5000).await.unwrap().unwrap();
    assert_eq!(epoch_b, epoch_a + 1);
    b.hold(epoch_b);
    b.begin(&db).await.unwrap().commit().await.unwrap();
    // a still thinks it holds epoch_a: refused.
    assert!(a.is_leader());
    let refused = a.begin(&db).await.unwrap_err();
    assert!(refused.to_string().contains("lease"), "{refused}");
    // And cannot take it back while b holds it.
    assert_eq!(cluster::try_lease(&db, "a", 1500).await.unwrap(), None);
    // A transaction of the holder share-locks the lease row: a change of the lease (here its
    // release) waits until that transaction has ended.
    let txn = b.begin(&db).await.unwrap();
    let db2 = db.clone();
    let release = tokio::spawn(async move { cluster::release(&db2, "b", epoch_b).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !release.is_finished(),
        "the lease changed under a fenced transaction"
    );
    txn.commit().await.unwrap();
    release.await.unwrap().unwrap();
    assert!(b.begin(&db).await.is_err(), "released");
    db.close().await.ok();
}

/// Ok polls of every host, by start time.
async fn ok_polls(db: &sea_orm::DatabaseConnection) -> std::collections::BTreeMap<i64, Vec<i64>> {
    use entity::{poll, types::PollOutcome};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let mut by_host: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for p in poll::Entity::find()
        .filter(poll::Column::Outcome.eq(PollOutcome::Ok))
        .order_by_asc(poll::Column::StartedAt)
        .all(db)
        .await
        .unwrap()
    {
        by_host.entry(p.host_id).or_default().push(p.started_at);
    }
    by_host
}

/// Which node holds the lease, asked of `node`.
async fn holder(node: &Service, token: &str) -> Option<String> {
    let (status, cluster) = node.call("GET", "/api/v1/cluster", token, None).await;
    assert_eq!(status, 200, "{cluster}");
    let lease = &cluster["lease"];
    let live = lease["expires_at"].as_str()? > cluster["database_time"].as_str()?;
    live.then(|| lease["holder"].as_str().unwrap().to_owned())
}

/// Waits until a node other than `not` holds the lease; returns its index in `nodes`.
async fn wait_new_leader(nodes: &[&Service], ask: &Service, token: &str, not: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(h) = holder(ask, token).await
            && h != not
        {
            return nodes
                .iter()
                .position(|n| h.ends_with(&format!(":{}", n.port)))
                .expect("a known node");
        }
        if Instant::now() > deadline {
            let (_, cluster) = ask.call("GET", "/api/v1/cluster", token, None).await;
            panic!("no new leader: {cluster}\n{}", ask.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_postgres_fail_over_without_losing_or_repeating_work() {
    use common::fleet::Fleet;
    use hostwatch::store::cluster;
    use sea_orm::EntityTrait;
    let Some(url) = common::postgres_url().await else {
        return;
    };
    const PERIOD_S: u64 = 3;
    let flags = ["--lease-period", "3s", "--poll-timeout", "2s"];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fleet = Fleet::start(dir.path(), 6, &["--gpus", "4"]).await;
    let (rx_port, received) = common::outbox::receiver().await;

    let mut a = Service::start(&data, Some(&url), &flags).await;
    let token = a.admin_token();
    let mut b = Service::start(&data, Some(&url), &flags).await;
    let mut c = Service::start(&data, Some(&url), &flags).await;
    let a_id = holder(&b, &token).await.expect("a lease");
    assert!(
        a_id.ends_with(&format!(":{}", a.port)),
        "the first node leads"
    );

    // Hosts written to the database and announced in the change log, as another node's API
    // would; thresholds and the channel through the standbys' APIs.
    let db = hostwatch::store::connect(&url).await.unwrap();
    let secrets = hostwatch::crypto::SecretBox::load(None, &data).unwrap();
    let ids = fleet.register(&db, &secrets, "gpu", "*/1 * * * * *").await;
    for id in &ids {
        cluster::note_change(&db, "test", entity::types::ChangeKind::HostCreated, *id)
            .await
            .unwrap();
        let (status, body) = b
            .call(
                "PUT",
                &format!("/api/v1/hosts/{id}/thresholds/gpu.util_pct"),
                &token,
                Some(json!({"warning": 50, "critical": 80, "hysteresis": 0})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = c
        .call(
            "POST",
            "/api/v1/channels",
            &token,
            Some(json!({"name": "rx", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{rx_port}/hook")}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A standby does no SSH work: it says who does.
    let (status, body) = b
        .call(
            "POST",
            &format!("/api/v1/hosts/{}/poll", ids[0]),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "not_leader", "{body}");

    // The leader polls what it learnt from the change log.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok_polls(&db)
        .await
        .values()
        .map(Vec::len)
        .min()
        .unwrap_or(0)
        < 3
        || ok_polls(&db).await.len() < ids.len()
    {
        assert!(
            Instant::now() < deadline,
            "the leader does not poll: {}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // kill -9 the leader: a standby takes over within the lease period.
    let killed_at = hostwatch::store::now_ms();
    a.kill();
    let nodes = [&a, &b, &c];
    let next = wait_new_leader(&nodes, &b, &token, &a_id).await;
    let took_over_ms = loop {
        let newest = ok_polls(&db)
            .await
            .values()
            .filter_map(|p| p.last().copied())
            .max()
            .unwrap_or(0);
        if newest > killed_at {
            break newest - killed_at;
        }
        assert!(
            hostwatch::store::now_ms() - killed_at < 20_000,
            "nobody polls after the leader died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The lease period, plus at most one tick of the hosts' 1 s schedule.
    assert!(
        took_over_ms <= (PERIOD_S as i64 + 1) * 1000 + 500,
        "first poll {took_over_ms} ms after the kill"
    );

    // Freeze the new leader (a partition, a stalled VM): the third node takes over; thawed,
    // the old one finds its lease gone and stands by without committing anything more.
    let (frozen, other) = if next == 1 {
        (&mut b, &c)
    } else {
        (&mut c, &b)
    };
    let frozen_id = holder(other, &token).await.unwrap();
    let frozen_pid = frozen.pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &frozen_pid])
        .status()
        .unwrap();
    wait_new_leader(&[other], other, &token, &frozen_id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::process::Command::new("kill")
        .args(["-CONT", &frozen_pid])
        .status()
        .unwrap();
    frozen
        .wait_log("lost the lease", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Stop polling, let delivery finish, and count.
    entity::host::Entity::update_many()
        .col_expr(
            entity::host::Column::Enabled,
            sea_orm::sea_query::Expr::value(false),
        )
        .exec(&db)
        .await
        .unwrap();
    for id in &ids {
        cluster::note_change(&db, "test", entity::types::ChangeKind::Host, *id)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = entity::delivery::Entity::find().all(&db).await.unwrap();
        if rows
            .iter()
            .all(|d| d.status == entity::types::DeliveryStatus::Sent)
        {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries still pending");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(b.terminate() && c.terminate(), "clean exits");
    fleet.stop().await;

    let polls = ok_polls(&db).await;
    let mut total = 0;
    for (host, starts) in &polls {
        total += starts.len();
        for pair in starts.windows(2) {
            assert!(
                pair[1] - pair[0] >= 500,
                "host {host} polled twice within {} ms (at {} and {})",
                pair[1] - pair[0],
                pair[0],
                pair[1]
            );
        }
    }
    let (notes, deliveries, twice) = common::outbox::delivered_once_each(&db, &received, 10).await;
    eprintln!(
        "failover on PostgreSQL: first poll {took_over_ms} ms after kill -9 of the leader \
         (lease period {PERIOD_S} s); {total} polls of {} hosts, none twice; {notes} \
         notifications, {deliveries} deliveries, all sent, 0 lost, {twice} received twice",
        ids.len()
    );
    db.close().await.ok();
}

#[tokio::test]
async fn the_api_is_served_over_https_with_tls_cert_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, made.cert.pem()).unwrap();
    std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
    let svc = Service::spawn(
        &data,
        None,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", svc.port).parse().unwrap();
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .no_proxy()
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", svc.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match https.get(format!("{base}/healthz")).send().await {
            Ok(r) if r.status() == 200 => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no HTTPS answer: {}", svc.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The token works over HTTPS; plain HTTP on the same port gets no API answer.
    let token = svc.admin_token();
    let hosts = https
        .get(format!("{base}/api/v1/hosts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(hosts.status(), 200);
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let in_clear = plain
        .get(svc.url("/api/v1/hosts"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(
        in_clear.as_ref().map_or(true, |r| r.status() != 200),
        "{in_clear:?}"
    );
    // A browser session over HTTPS gets a Secure cookie.
    let password = std::fs::read_to_string(data.join("admin.password")).unwrap();
    let login = https
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"username": "admin", "password": password.trim()}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.split("; ").any(|a| a == flag), "{flag}: {cookie}");
    }
}

/// The back-off a refused poll of host `id` reports (`not re-dialled yet: waiting 12.3s …`),
/// once it is at least `at_least`.
async fn back_off_of(svc: &Service, token: &str, id: i64, at_least: Duration) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, polls) = svc
            .call(
                "GET",
                &format!("/api/v1/hosts/{id}/polls?limit=5"),
                token,
                None,
            )
            .await;
        let waiting = polls["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|p| {
                let error = p["error"].as_str()?;
                let rest = error.split("not re-dialled yet: waiting ").nth(1)?;
                let secs: f64 = rest.split('s').next()?.parse().ok()?;
                Some(Duration::from_secs_f64(secs))
            });
        if let Some(w) = waiting.filter(|w| *w >= at_least) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "no back-off of {at_least:?} reported: {polls}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_credential_patch_redials_at_once_without_the_old_back_off() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(&dir.path().join("data"), None, &[]).await;
    let token = svc.admin_token();
    let (status, host) = svc
        .call(
            "POST",
            "/api/v1/hosts",
            &token,
            Some(
                json!({"name": "wrong-password", "address": "127.0.0.1", "port": sshd.port,
                        "username": "hwtest", "password": "not-the-password",
                        "schedule": "* * * * * *"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{host}");
    let id = host["id"].as_i64().unwrap();
    wait_status(&svc, &token, id, "auth_failed").await;
    // Refused again and again, the host is dialled ever more rarely.
    let waiting = back_off_of(&svc, &token, id, Duration::from_secs(6)).await;
    let (status, patched) = svc
        .call(
            "PATCH",
            &format!("/api/v1/hosts/{id}"),
            &token,
            Some(json!({"password": common::sshd::PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert!(
        patched["notice"]
            .as_str()
            .is_some_and(|n| n.contains("polled again now")),
        "{patched}"
    );
    let patched_at = Instant::now();
    wait_status(&svc, &token, id, "ok").await;
    assert!(
        patched_at.elapsed() < waiting.min(Duration::from_secs(5)),
        "ok {:?} after the PATCH, with {waiting:?} of back-off left before it",
        patched_at.elapsed()
    );
}
