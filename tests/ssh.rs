//! The SSH engine against a real OpenSSH sshd on loopback: authentication methods, enrollment
//! and provisioning, polls whose numbers match this machine, host-key pinning and changes,
//! failures that must stay contained (closed port, silent listener, flooding host), and
//! re-dialling after sshd restarts.

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, TestApp, assert_error, local_truth,
    sshd::{self, PASSWORD, Sshd},
};
use poem::http::StatusCode;
use serde_json::{Value, json};

async fn app() -> TestApp {
    TestApp::start_with(Backend::Sqlite, true).await.unwrap()
}

async fn register(app: &TestApp, body: Value) -> i64 {
    let (status, host) = app.post("/api/v1/hosts", body).await;
    assert_eq!(status, StatusCode::CREATED, "{host}");
    host["id"].as_i64().unwrap()
}

fn key_host(name: &str, sshd: &Sshd, user: &str, key: &str) -> Value {
    json!({"name": name, "address": "127.0.0.1", "port": sshd.port, "username": user, "private_key": key})
}

/// Waits for the background enrollment started by registration.
async fn wait_enrollment(app: &TestApp, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, run) = app.get(&format!("/api/v1/hosts/{id}/enrollment")).await;
        if status == StatusCode::OK {
            return run;
        }
        assert!(Instant::now() < deadline, "no enrollment within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Authorizes a new ed25519 key on `sshd`, registers a host with it, and waits for its
/// (successful) enrollment.
async fn enrolled_host(app: &TestApp, sshd: &Sshd, name: &str) -> i64 {
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let id = register(app, key_host(name, sshd, "hwtest", &key)).await;
    let run = wait_enrollment(app, id).await;
    assert_eq!(run["ok"], true, "{run}");
    id
}

async fn poll(app: &TestApp, id: i64) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/hosts/{id}/poll"), json!({}))
        .await
}

async fn notifications(app: &TestApp, id: i64) -> Vec<Value> {
    let (_, page) = app
        .get(&format!("/api/v1/notifications?host_id={id}&limit=500"))
        .await;
    page["items"].as_array().unwrap().clone()
}

fn assert_matches_this_machine(snapshot: &Value) {
    assert_eq!(
        snapshot["memory"]["total_bytes"].as_u64().unwrap(),
        local_truth::mem_total_bytes()
    );
    assert_eq!(
        snapshot["cpu"]["count"].as_u64().unwrap(),
        u64::from(local_truth::cpu_count())
    );
    let root = snapshot["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mount"] == "/")
        .expect("a / mount");
    assert_eq!(
        root["total_bytes"].as_u64().unwrap(),
        local_truth::root_size_bytes()
    );
    assert!(
        snapshot["unavailable"].as_array().unwrap().is_empty(),
        "{}",
        snapshot["unavailable"]
    );
}

#[tokio::test]
async fn ed25519_key_enrolls_and_polls_with_local_numbers() {
    let sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let app = app().await;
    let id = register(&app, key_host("ed", &sshd, "hwtest", &key)).await;

    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], true, "{run}");
    assert_eq!(run["exit_code"], 0);
    let stdout = run["stdout"].as_str().unwrap();
    for section in [
        "<<<os_release>>>",
        "<<<uname_a>>>",
        "<<<cpuinfo>>>",
        "<<<end>>>",
    ] {
        assert!(stdout.contains(section), "transcript lacks {section}");
    }
    assert!(run["duration_ms"].as_i64().is_some() && run["finished_at"].is_string());
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "ok", "{host}");
    assert_eq!(
        host["facts"]["kernel"].as_str().unwrap(),
        String::from_utf8(
            std::process::Command::new("uname")
                .arg("-r")
                .output()
                .unwrap()
                .stdout
        )
        .unwrap()
        .trim()
    );
    assert_eq!(
        host["facts"]["cpu_count"].as_u64().unwrap(),
        u64::from(local_truth::cpu_count())
    );
    assert_eq!(
        host["facts"]["memory_total_bytes"].as_u64().unwrap(),
        local_truth::mem_total_bytes()
    );
    assert_eq!(host["facts"]["os_id"], "debian");
    assert_eq!(
        host["trusted_host_key"]["fingerprint"],
        sshd.fingerprint(),
        "trust on first use pinned the key"
    );

    let (status, first) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_matches_this_machine(&first["snapshot"]);
    // The second poll reuses the connection and, with two readings, has rates.
    let (status, second) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        second["new_connection"], false,
        "the connection is persistent"
    );
    assert!(
        second["snapshot"]["cpu"]["usage_pct"].is_number(),
        "{}",
        second["snapshot"]["cpu"]
    );
    let (status, latest) = app.get(&format!("/api/v1/hosts/{id}/metrics/latest")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest, second["snapshot"]);
    let (_, polls) = app.get(&format!("/api/v1/hosts/{id}/polls")).await;
    // The host's poll times are the second poll's, though its row waits a minute for them.
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let newest_start = polls["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| time(&p["started_at"]))
        .max()
        .unwrap();
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    let (_, page) = app.get("/api/v1/hosts").await;
    let listed = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .unwrap();
    for shown in [&host, listed] {
        assert_eq!(
            time(&shown["last_ok_at"]),
            time(&second["snapshot"]["taken_at"])
        );
        assert_eq!(time(&shown["last_poll_at"]), newest_start);
    }
    assert!(
        polls["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["outcome"] == "ok")
            .count()
            >= 2
    );
    let (_, series) = app
        .get(&format!(
            "/api/v1/hosts/{id}/metrics?name=memory.used_pct&from=-5m&step=1s"
        ))
        .await;
    // Every poll's value is in a bucket (two polls in one second share one).
    let values: u64 = series["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert!(values >= 2, "{series}");
    // One sshd session served every poll.
    assert_eq!(
        sshd.log().matches("Accepted publickey").count(),
        1,
        "{}",
        sshd.log()
    );
}

#[tokio::test]
async fn rsa_key_signs_with_sha2() {
    // This sshd takes RSA keys only with SHA-2 signatures: a login proves rsa-sha2-*.
    let sshd = Sshd::start_with("PubkeyAcceptedAlgorithms rsa-sha2-512,rsa-sha2-256");
    let (key, public) = sshd::client_key("rsa", "");
    sshd.authorize(&public);
    let app = app().await;
    let id = register(&app, key_host("rsa", &sshd, "hwtest", &key)).await;
    assert_eq!(wait_enrollment(&app, id).await["ok"], true);
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        sshd.log().contains("Accepted publickey for hwtest"),
        "{}",
        sshd.log()
    );
}

#[tokio::test]
async fn rsa_never_falls_back_to_sha1() {
    // This one would take only SHA-1 (ssh-rsa) signatures: hostwatch refuses and says why.
    let sshd = Sshd::start_with("PubkeyAcceptedAlgorithms ssh-rsa");
    let (key, public) = sshd::client_key("rsa", "");
    sshd.authorize(&public);
    let app = app().await;
    let id = register(&app, key_host("rsa-sha1", &sshd, "hwtest", &key)).await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], false);
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("only SHA-1 RSA signatures")
            || error.contains("SHA-1 ssh-rsa signatures are never used"),
        "{error}"
    );
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[tokio::test]
async fn encrypted_key_with_passphrase() {
    let sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "open sesame");
    sshd.authorize(&public);
    let app = app().await;
    let mut body = key_host("enc", &sshd, "hwtest", &key);
    body["passphrase"] = json!("open sesame");
    let id = register(&app, body).await;
    assert_eq!(wait_enrollment(&app, id).await["ok"], true);
    assert_eq!(poll(&app, id).await.0, StatusCode::OK);
}

#[tokio::test]
async fn password_auth() {
    let sshd = Sshd::start();
    let app = app().await;
    let id = register(&app, json!({"name": "pw", "address": "127.0.0.1", "port": sshd.port, "username": "hwtest", "password": PASSWORD})).await;
    assert_eq!(wait_enrollment(&app, id).await["ok"], true);
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_matches_this_machine(&body["snapshot"]);
    assert!(sshd.log().contains("Accepted password for hwtest"));
}

#[tokio::test]
async fn wrong_key_is_auth_failed_once_then_recovers() {
    let sshd = Sshd::start();
    // The key that works is ECDSA, so that algorithm logs in over real SSH too.
    let (good, public) = sshd::client_key("ecdsa", "");
    sshd.authorize(&public);
    let (wrong, _) = sshd::client_key("ed25519", "");
    let app = app().await;
    let id = register(&app, key_host("wrong", &sshd, "hwtest", &wrong)).await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], false);
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("authentication failed"),
        "{run}"
    );
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "auth_failed");

    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    // Not retried on every request: the second attempt waits out its backoff.
    let (_, again) = poll(&app, id).await;
    assert!(
        again["error"] == "backoff"
            || again["error"] == "enrollment_failed"
            || again["error"] == "auth_failed",
        "{again}"
    );
    let fired: Vec<_> = notifications(&app, id)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "auth_failed")
        .collect();
    assert_eq!(
        fired.len(),
        1,
        "one notification for the failure, not one per attempt: {fired:?}"
    );
    assert_eq!(fired[0]["level"], "critical");

    let (status, _) = app
        .patch(&format!("/api/v1/hosts/{id}"), json!({"private_key": good}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = poll(&app, id).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "new credentials are used at once: {body}"
    );
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "ok");
    let kinds: Vec<(String, String)> = notifications(&app, id)
        .await
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("auth_failed".into(), "resolved".into())),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn host_key_change_refuses_until_trusted() {
    let mut sshd = Sshd::start();
    let app = app().await;
    let id = enrolled_host(&app, &sshd, "hk").await;
    assert_eq!(poll(&app, id).await.0, StatusCode::OK);
    let old = sshd.fingerprint();

    sshd.restart_with_new_host_key();
    let new = sshd.fingerprint();
    assert_ne!(old, new);
    let mismatch = poll(&app, id).await;
    assert_error(&mismatch, StatusCode::BAD_GATEWAY, &new);
    assert_eq!(mismatch.1["error"], "host_key_mismatch");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "host_key_mismatch");
    assert_eq!(
        host["trusted_host_key"]["fingerprint"], old,
        "the old key stays pinned"
    );
    let accepted_before = sshd.log().matches("Accepted publickey").count();
    // Refused without even dialling until an operator acts.
    assert_error(
        &poll(&app, id).await,
        StatusCode::CONFLICT,
        "host-key/trust",
    );
    assert_eq!(
        sshd.log().matches("Accepted publickey").count(),
        accepted_before
    );
    let alerts: Vec<_> = notifications(&app, id)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "host_key_mismatch")
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0]["level"].as_str(), alerts[0]["state"].as_str()),
        (Some("critical"), Some("firing"))
    );

    let reader = app.reader.clone();
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/hosts/{id}/host-key/trust"),
            &reader,
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (status, trusted) = app
        .post(&format!("/api/v1/hosts/{id}/host-key/trust"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{trusted}");
    assert_eq!(trusted["fingerprint"], new);
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(
        (
            host["status"].as_str(),
            host["trusted_host_key"]["fingerprint"].as_str()
        ),
        (Some("ok"), Some(new.as_str()))
    );
    assert!(
        notifications(&app, id)
            .await
            .iter()
            .any(|n| n["kind"] == "host_key_mismatch" && n["state"] == "resolved")
    );
}

#[tokio::test]
async fn expected_fingerprint_is_checked_on_first_contact() {
    let sshd = Sshd::start();
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let app = app().await;
    let mut wrong = key_host("fp-wrong", &sshd, "hwtest", &key);
    wrong["host_key_fingerprint"] = json!(format!("SHA256:{}", "B".repeat(43)));
    let id = register(&app, wrong).await;
    assert_eq!(wait_enrollment(&app, id).await["ok"], false);
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "host_key_mismatch");
    assert_eq!(host["trusted_host_key"], Value::Null, "nothing was trusted");

    let mut right = key_host("fp-right", &sshd, "hwtest", &key);
    right["host_key_fingerprint"] = json!(sshd.fingerprint());
    let id = register(&app, right).await;
    assert_eq!(wait_enrollment(&app, id).await["ok"], true);
    assert_eq!(poll(&app, id).await.0, StatusCode::OK);
}

#[tokio::test]
async fn closed_port_and_silent_listener_fail_within_the_deadline() {
    let sshd = Sshd::start();
    let app = std::sync::Arc::new(app().await);
    let healthy = enrolled_host(&app, &sshd, "healthy").await;

    let closed = register(&app, json!({"name": "closed", "address": "127.0.0.1", "port": common::free_port(), "username": "hwtest", "password": "x"})).await;
    let run = wait_enrollment(&app, closed).await;
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{run}"
    );

    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mute = register(&app, json!({"name": "mute", "address": "127.0.0.1", "port": silent_port, "username": "hwtest", "password": "x"})).await;
    let started = Instant::now();
    let run = wait_enrollment(&app, mute).await;
    assert!(
        run["error"].as_str().unwrap().contains("timed out"),
        "{run}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "enrollment deadline (20 s) held"
    );

    // A poll of the mute host fails at its 5 s deadline while the service and other hosts carry on.
    let mute_poll = {
        let app = app.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (
                app.post(&format!("/api/v1/hosts/{mute}/poll"), json!({}))
                    .await,
                t.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    assert_eq!(app.get("/api/v1/hosts").await.0, StatusCode::OK);
    assert_eq!(poll(&app, healthy).await.0, StatusCode::OK);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the API and other hosts did not wait for the mute host"
    );
    let ((status, body), elapsed) = mute_poll.await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "enrollment_failed", "{body}");
    assert!(elapsed < Duration::from_secs(25), "{elapsed:?}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{mute}")).await;
    assert_eq!(host["status"], "unreachable");
}

#[tokio::test]
async fn a_silent_enrolled_host_times_out_at_the_poll_deadline() {
    let mut sshd = Sshd::start();
    let app = app().await;
    let id = enrolled_host(&app, &sshd, "goes-mute").await;
    assert_eq!(poll(&app, id).await.0, StatusCode::OK);
    // sshd goes away and a listener that never speaks takes its port.
    sshd.stop();
    let silent = std::net::TcpListener::bind(("127.0.0.1", sshd.port)).unwrap();
    let t = Instant::now();
    let (status, body) = poll(&app, id).await;
    let elapsed = t.elapsed();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(8),
        "5 s deadline, took {elapsed:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn flooding_host_hits_the_output_cap() {
    // A hostile host: whatever is asked, it answers with 3 MB.
    let sshd = Sshd::start_with("ForceCommand head -c 3000000 /dev/zero");
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let app = app().await;
    let id = register(&app, key_host("flood", &sshd, "hwtest", &key)).await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], false);
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("exceeded 1048576 bytes"),
        "{run}"
    );
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body["message"].as_str().unwrap().contains("1048576"),
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn sshd_restart_is_redialled_on_the_next_poll() {
    let mut sshd = Sshd::start();
    let app = app().await;
    let id = enrolled_host(&app, &sshd, "restart").await;
    let (_, first) = poll(&app, id).await;
    assert_eq!(
        first["new_connection"], false,
        "enrollment's connection is reused"
    );
    sshd.restart();
    let (status, after) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["new_connection"], true);
    let (status, next) = poll(&app, id).await;
    assert_eq!(
        (status, next["new_connection"].as_bool()),
        (StatusCode::OK, Some(false))
    );
}

#[tokio::test]
async fn provisioning_creates_a_user_switches_to_it_and_is_idempotent() {
    let _user = HOSTWATCH_USER.lock().await;
    let mut sshd = Sshd::start();
    // A user left by an earlier, interrupted run would make this a second provisioning.
    let _ = std::process::Command::new("userdel")
        .args(["-r", "-f", "hostwatch"])
        .output();
    let app = app().await;
    let body = json!({"name": "prov", "address": "127.0.0.1", "port": sshd.port, "username": "hwadmin",
                      "password": PASSWORD, "provision": true});
    let id = register(&app, body).await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], true, "{run}");
    assert_eq!(run["provisioned"], true);
    assert!(
        run["stdout"].as_str().unwrap().contains("key installed"),
        "{run}"
    );
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(
        (host["username"].as_str(), host["auth_method"].as_str()),
        (Some("hostwatch"), Some("private_key"))
    );
    // The bootstrap password is gone from storage.
    let creds = <entity::host_credential::Entity as sea_orm::EntityTrait>::find()
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(creds.len(), 1);
    assert!(creds[0].password_enc.is_none() && creds[0].source.as_str() == "provisioned");
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(sshd.log().contains("Accepted publickey for hostwatch"));

    // Again through the API: nothing changes.
    let (status, again) = app
        .post(&format!("/api/v1/hosts/{id}/enroll"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["ok"].as_bool(), again["provisioned"].as_bool()),
        (Some(true), Some(true))
    );
    // And the script itself, run again with the bootstrap login by a second host: no change.
    let second = register(
        &app,
        json!({"name": "prov-2", "address": "127.0.0.1", "port": sshd.port, "username": "hwadmin",
                                       "password": PASSWORD, "provision": true}),
    )
    .await;
    let run = wait_enrollment(&app, second).await;
    let out = run["stdout"].as_str().unwrap();
    assert!(
        out.contains("user hostwatch exists") && out.contains("key already installed"),
        "{out}"
    );
    let service_key = host["public_key"].as_str().unwrap().to_owned();
    let keys = std::fs::read_to_string("/home/hostwatch/.ssh/authorized_keys").unwrap();
    assert_eq!(
        keys.lines().collect::<Vec<_>>(),
        [service_key.as_str()],
        "installed once"
    );
    sshd.stop();
    let _ = std::process::Command::new("userdel")
        .args(["-r", "-f", "hostwatch"])
        .output();
}

/// The tests that create, use and delete this machine's `hostwatch` user take turns.
static HOSTWATCH_USER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn remove_hostwatch_user() {
    let _ = std::process::Command::new("userdel")
        .args(["-r", "-f", "hostwatch"])
        .output();
}

/// The owner, group and mode of a file, as `stat` prints them.
fn owner_group_mode(path: &std::path::Path) -> String {
    let out = std::process::Command::new("stat")
        .args(["-c", "%U:%G %a"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn provisioning_installs_the_key_where_a_custom_authorized_keys_file_says() {
    let _user = HOSTWATCH_USER.lock().await;
    remove_hostwatch_user();
    // Keys kept outside the homes, one file per user: the site's own layout.
    let sshd = Sshd::start_with_keys_file("{dir}/keys/%u", "");
    let app = app().await;
    let id = register(
        &app,
        json!({"name": "custom", "address": "127.0.0.1", "port": sshd.port,
               "username": "hwadmin", "password": PASSWORD, "provision": true}),
    )
    .await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(
        (run["ok"].as_bool(), run["provisioned"].as_bool()),
        (Some(true), Some(true)),
        "{run}"
    );
    let file = sshd.dir.path().join("keys/hostwatch");
    let out = run["stdout"].as_str().unwrap();
    assert!(
        out.contains(&format!("key installed in {}", file.display())),
        "{out}"
    );
    assert_eq!(owner_group_mode(&file), "hostwatch:hostwatch 600");
    assert!(
        !std::path::Path::new("/home/hostwatch/.ssh/authorized_keys").exists(),
        "the default place, which this sshd does not read, is left alone"
    );
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(
        (host["username"].as_str(), host["status"].as_str()),
        (Some("hostwatch"), Some("ok")),
        "{host}"
    );
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(sshd.log().contains("Accepted publickey for hostwatch"));
    remove_hostwatch_user();
}

#[tokio::test]
async fn provisioning_that_cannot_work_is_provision_failed_and_a_retry_completes_it() {
    let _user = HOSTWATCH_USER.lock().await;
    remove_hostwatch_user();
    // This sshd reads no key file for hostwatch: a key can be installed nowhere.
    let mut sshd = Sshd::start_with("Match User hostwatch\n    AuthorizedKeysFile none");
    let app = app().await;
    let id = register(
        &app,
        json!({"name": "nokeys", "address": "127.0.0.1", "port": sshd.port,
               "username": "hwadmin", "password": PASSWORD, "provision": true}),
    )
    .await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], false, "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("AuthorizedKeysFile none"), "{error}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "provision_failed", "{host}");
    let message = host["status_message"].as_str().unwrap();
    assert!(
        message.contains("AuthorizedKeysFile none") && message.contains("hwadmin"),
        "{message}"
    );
    // Polls go on with the bootstrap login, and the status stays visible.
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(
        (
            host["status"].as_str(),
            host["username"].as_str(),
            host["auth_method"].as_str()
        ),
        (Some("provision_failed"), Some("hwadmin"), Some("password")),
        "{host}"
    );
    let fired: Vec<Value> = notifications(&app, id)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "provision_failed")
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (fired[0]["level"].as_str(), fired[0]["event"].as_str()),
        (Some("warning"), Some("fired"))
    );
    // A retry that fails the same way says nothing new.
    let (status, again) = app
        .post(&format!("/api/v1/hosts/{id}/enroll"), json!({}))
        .await;
    assert_eq!(
        (status, again["ok"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{again}"
    );
    // The operator fixes sshd; the retry completes provisioning, once.
    sshd.set_extra_config("");
    sshd.restart();
    let (status, fixed) = app
        .post(&format!("/api/v1/hosts/{id}/enroll"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{fixed}");
    assert_eq!(
        (fixed["ok"].as_bool(), fixed["provisioned"].as_bool()),
        (Some(true), Some(true)),
        "{fixed}"
    );
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(
        (host["status"].as_str(), host["username"].as_str()),
        (Some("ok"), Some("hostwatch")),
        "{host}"
    );
    let events: Vec<(String, String)> = notifications(&app, id)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "provision_failed")
        .map(|n| {
            (
                n["event"].as_str().unwrap().to_owned(),
                n["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events.contains(&("resolved".into(), "warning".into())),
        "{events:?}"
    );
    assert_eq!(
        owner_group_mode(std::path::Path::new("/home/hostwatch/.ssh")),
        "hostwatch:hostwatch 700"
    );
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    remove_hostwatch_user();
}

#[tokio::test]
async fn provisioning_without_root_says_why() {
    let sshd = Sshd::start();
    let app = app().await;
    let id = register(
        &app,
        json!({"name": "noroot", "address": "127.0.0.1", "port": sshd.port, "username": "hwtest",
                                    "password": PASSWORD, "provision": true}),
    )
    .await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], false);
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("no passwordless sudo"),
        "{run}"
    );
    // The host is still enrolled and polled with its own login, visibly.
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["username"], "hwtest");
    assert_eq!(host["status"], "provision_failed");
    assert!(
        notifications(&app, id)
            .await
            .iter()
            .any(|n| n["kind"] == "provision_failed")
    );
}

#[tokio::test]
async fn a_host_without_linux_proc_is_unsupported() {
    // A host that answers like FreeBSD, whatever it is asked.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("freebsd.sh");
    std::fs::write(&fake, "#!/bin/sh\ncat >/dev/null\nprintf '<<<uname_s>>>\\nFreeBSD\\n<<<uname_a>>>\\nFreeBSD bsd 14.0-RELEASE FreeBSD 14.0-RELEASE #0 amd64\\n<<<proc>>>\\n<<<end>>>\\n'\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&fake)
        .status()
        .unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(dir.path())
        .status()
        .unwrap();
    let sshd = Sshd::start_with(&format!("ForceCommand {}", fake.display()));
    let (key, public) = sshd::client_key("ed25519", "");
    sshd.authorize(&public);
    let app = app().await;
    let id = register(&app, key_host("bsd", &sshd, "hwtest", &key)).await;
    let run = wait_enrollment(&app, id).await;
    assert_eq!(run["ok"], true, "{run}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["status"], "unsupported");
    assert!(
        host["status_message"]
            .as_str()
            .unwrap()
            .contains("FreeBSD bsd 14.0-RELEASE"),
        "{host}"
    );
    assert_error(
        &poll(&app, id).await,
        StatusCode::CONFLICT,
        "not a supported host",
    );
}

#[tokio::test]
async fn sha1_host_key_signatures_are_refused_and_rsa_sha2_accepted() {
    // Only ssh-rsa (SHA-1) offered: refused, saying what the host offered; no key pinned.
    let legacy = Sshd::start_with_key("rsa", "HostKeyAlgorithms ssh-rsa");
    let app = TestApp::start(Backend::Sqlite).await.unwrap();
    let (key, public) = sshd::client_key("ed25519", "");
    legacy.authorize(&public);
    let id = register(&app, key_host("legacy", &legacy, "hwtest", &key)).await;
    // The first poll enrolls, and enrollment is what fails.
    let (status, err) = poll(&app, id).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{err}");
    assert_eq!(err["error"], "enrollment_failed", "{err}");
    let (_, run) = app.get(&format!("/api/v1/hosts/{id}/enrollment")).await;
    let message = run["error"].as_str().unwrap();
    assert!(
        message.starts_with("no host key algorithm in common"),
        "{message}"
    );
    assert!(message.contains("the host offers ssh-rsa"), "{message}");
    assert!(message.contains("SHA-1"), "{message}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert!(host["trusted_host_key"].is_null(), "{host}");

    // The same RSA key signed with rsa-sha2-256/512 (OpenSSH's default offer): accepted.
    let modern = Sshd::start_with_key("rsa", "");
    modern.authorize(&public);
    let id = register(&app, key_host("modern-rsa", &modern, "hwtest", &key)).await;
    let (status, body) = poll(&app, id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, host) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(host["trusted_host_key"]["algorithm"], "ssh-rsa", "{host}");
}
