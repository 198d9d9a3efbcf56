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
