//! The REST API end to end over real databases: every test runs on a fresh SQLite file and on a
//! fresh PostgreSQL database (module `postgres`), through the full HTTP stack (routing, auth,
//! error mapping).

mod common;

use common::{Backend, TestApp, assert_error, ssh_keygen};
use entity::{host, host_credential, host_label, threshold};
use poem::http::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = super::TestApp::start(super::Backend::Sqlite).await.unwrap();
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = super::TestApp::start(super::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    host_crud_round_trip,
    host_list_filters_and_pages,
    auth_is_required_and_a_viewer_cannot_write,
    secrets_are_write_only,
    host_validation_errors,
    malformed_bodies_are_client_errors,
    credentials_can_be_replaced,
    thresholds_defaults_and_updates,
    threshold_rules_precedence_and_patch_put_delete,
    metric_catalog_and_series_names,
    notifications_cursor_filters_and_read,
    notifications_long_poll_wakes_on_write,
    url_checks_crud_and_validation,
    channels_crud_secrets_and_validation,
    history_routes_answer_honestly,
    roles_sessions_and_revocation,
);

fn key_host(name: &str) -> Value {
    json!({
        "name": name,
        "address": "127.0.0.1",
        "port": 2222,
        "username": "deploy",
        "private_key": ssh_keygen("ed25519", ""),
        "labels": ["env=prod", "role=web"],
    })
}

async fn host_count(app: &TestApp) -> u64 {
    host::Entity::find().count(app.db()).await.unwrap()
}

async fn host_crud_round_trip(app: TestApp) {
    let (status, created) = app.post("/api/v1/hosts", key_host("web-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "web-1");
    assert_eq!(created["port"], 2222);
    assert_eq!(created["status"], "pending");
    assert_eq!(created["auth_method"], "private_key");
    assert_eq!(created["key_algorithm"], "ssh-ed25519");
    assert!(
        created["public_key"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    assert_eq!(created["labels"], json!(["env=prod", "role=web"]));
    // The default schedule is a valid 6-field cron.
    assert_eq!(
        created["schedule"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        6
    );

    let (status, got) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    let (status, patched) = app
        .patch(
            &format!("/api/v1/hosts/{id}"),
            json!({"name": "web-01", "port": 22, "labels": ["env=staging"], "enabled": false,
                   "schedule": "*/30 * * * * *", "host_key_fingerprint": format!("SHA256:{}", "A".repeat(43))}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "web-01");
    assert_eq!(patched["port"], 22);
    assert_eq!(patched["labels"], json!(["env=staging"]));
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["schedule"], "*/30 * * * * *");
    assert_eq!(patched["username"], "deploy", "untouched fields stay");
    assert_eq!(
        patched["host_key_fingerprint"],
        format!("SHA256:{}", "A".repeat(43))
    );
    let (_, cleared) = app
        .patch(
            &format!("/api/v1/hosts/{id}"),
            json!({"host_key_fingerprint": null}),
        )
        .await;
    assert_eq!(cleared["host_key_fingerprint"], Value::Null);

    let (status, body) = app.delete(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &app.get(&format!("/api/v1/hosts/{id}")).await,
        StatusCode::NOT_FOUND,
        "no host",
    );
    assert_error(
        &app.delete(&format!("/api/v1/hosts/{id}")).await,
        StatusCode::NOT_FOUND,
        "no host",
    );
    assert_error(
        &app.patch(&format!("/api/v1/hosts/{id}"), json!({"enabled": true}))
            .await,
        StatusCode::NOT_FOUND,
        "no host",
    );
    // Everything that hung off the host went with it.
    assert_eq!(
        host_credential::Entity::find()
            .count(app.db())
            .await
            .unwrap(),
        0
    );
    assert_eq!(host_label::Entity::find().count(app.db()).await.unwrap(), 0);
    assert_eq!(threshold::Entity::find().count(app.db()).await.unwrap(), 0);
}

async fn host_list_filters_and_pages(app: TestApp) {
    for i in 0..5 {
        let mut body = key_host(&format!("h{i}"));
        body["labels"] = if i % 2 == 0 {
            json!(["gpu"])
        } else {
            json!(["cpu-only"])
        };
        assert_eq!(app.post("/api/v1/hosts", body).await.0, StatusCode::CREATED);
    }
    let (_, page) = app.get("/api/v1/hosts?limit=2&offset=1").await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["h1", "h2"]);
    let (_, gpu) = app.get("/api/v1/hosts?label=gpu").await;
    assert_eq!(gpu["total"], 3);
    assert!(
        gpu["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["labels"] == json!(["gpu"]))
    );
    let (_, pending) = app.get("/api/v1/hosts?status=pending&label=cpu-only").await;
    assert_eq!(pending["total"], 2);
    let (_, none) = app.get("/api/v1/hosts?status=ok").await;
    assert_eq!(none["total"], 0);
    assert_eq!(none["items"], json!([]));
    // The documented range is enforced, naming the parameter.
    assert_error(
        &app.get("/api/v1/hosts?limit=100000").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    let (_, largest) = app.get("/api/v1/hosts?limit=500").await;
    assert_eq!(largest["limit"], 500);
}

async fn auth_is_required_and_a_viewer_cannot_write(app: TestApp) {
    let (_, created) = app.post("/api/v1/hosts", key_host("a")).await;
    let id = created["id"].as_i64().unwrap();
    let routes = [
        ("GET", "/api/v1/hosts".to_owned()),
        ("GET", format!("/api/v1/hosts/{id}")),
        ("GET", format!("/api/v1/hosts/{id}/thresholds")),
        ("GET", "/api/v1/notifications".to_owned()),
        ("GET", "/api/v1/url-checks".to_owned()),
        ("GET", "/api/v1/channels".to_owned()),
        ("DELETE", format!("/api/v1/hosts/{id}")),
    ];
    for (method, path) in &routes {
        assert_error(
            &app.call(method, path, "", None).await,
            StatusCode::UNAUTHORIZED,
            "token",
        );
        assert_error(
            &app.call(method, path, "hw_not-a-real-token", None).await,
            StatusCode::UNAUTHORIZED,
            "token",
        );
        assert_error(
            &app.call(method, path, "garbage", None).await,
            StatusCode::UNAUTHORIZED,
            "token",
        );
    }
    // A read-only token reads…
    let reader = app.reader.clone();
    assert_eq!(
        app.call("GET", "/api/v1/hosts", &reader, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", &format!("/api/v1/hosts/{id}"), &reader, None)
            .await
            .0,
        StatusCode::OK
    );
    // …and every write is refused without changing anything.
    let writes = [
        ("POST", "/api/v1/hosts".to_owned(), Some(key_host("b"))),
        (
            "PATCH",
            format!("/api/v1/hosts/{id}"),
            Some(json!({"name": "renamed"})),
        ),
        ("DELETE", format!("/api/v1/hosts/{id}"), None),
        (
            "PUT",
            format!("/api/v1/hosts/{id}/thresholds/cpu.usage_pct"),
            Some(json!({"warning": 1.0})),
        ),
        (
            "POST",
            "/api/v1/url-checks".to_owned(),
            Some(json!({"name": "u", "url": "http://127.0.0.1/"})),
        ),
        (
            "POST",
            "/api/v1/channels".to_owned(),
            Some(json!({"name": "c", "kind": "webhook", "settings": {"url": "http://127.0.0.1/"}})),
        ),
    ];
    for (method, path, body) in writes {
        assert_error(
            &app.call(method, &path, &reader, body).await,
            StatusCode::FORBIDDEN,
            "role viewer",
        );
    }
    let (_, after) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(after["name"], "a");
    assert_eq!(host_count(&app).await, 1);
}

async fn secrets_are_write_only(app: TestApp) {
    let key = ssh_keygen("ed25519", "correct horse");
    let key_body = key.lines().nth(2).unwrap().to_owned();
    let (status, with_key) = app
        .post(
            "/api/v1/hosts",
            json!({"name": "k", "address": "10.0.0.5", "username": "ops",
                                      "private_key": key, "passphrase": "correct horse"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{with_key}");
    let password = "Tr0ub4dor&3-unique-password";
    let (status, with_password) = app
        .post(
            "/api/v1/hosts",
            json!({"name": "p", "address": "10.0.0.6", "username": "ops", "password": password}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(with_password["auth_method"], "password");

    let mut seen = vec![with_key.to_string(), with_password.to_string()];
    seen.push(app.get("/api/v1/hosts").await.1.to_string());
    seen.push(
        app.get(&format!("/api/v1/hosts/{}", with_key["id"]))
            .await
            .1
            .to_string(),
    );
    for body in &seen {
        for secret in [key_body.as_str(), "correct horse", password, "PRIVATE KEY"] {
            assert!(
                !body.contains(secret),
                "a response contains {secret:?}: {body}"
            );
        }
        for field in ["\"private_key\":", "\"passphrase\":", "\"password\":"] {
            assert!(!body.contains(field), "a response has the field {field}");
        }
    }
    // Debug output of stored rows shows ciphertext only.
    let creds = host_credential::Entity::find().all(app.db()).await.unwrap();
    assert_eq!(creds.len(), 2);
    let debug = format!("{creds:?}");
    assert!(!debug.contains(&key_body) && !debug.contains(password));

    // Not in the database file in clear (SQLite: the file and its WAL).
    if app.database_url.starts_with("sqlite:") {
        let mut bytes = Vec::new();
        for name in ["hostwatch.db", "hostwatch.db-wal"] {
            if let Ok(b) = std::fs::read(app.dir.path().join(name)) {
                bytes.extend(b);
            }
        }
        assert!(bytes.len() > 10_000, "the database files were read");
        for secret in [
            key_body.as_bytes(),
            b"correct horse".as_slice(),
            password.as_bytes(),
            b"OPENSSH PRIVATE",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "database holds {:?} in clear",
                String::from_utf8_lossy(secret)
            );
        }
    }
}

async fn host_validation_errors(app: TestApp) {
    let base = key_host("v");
    let with = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            with("name", json!("evil\u{202E}gnp.exe")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name: must not contain control, bidi-control",
        ),
        (
            with("name", json!("line\u{2028}break")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            with("labels", json!(["env=\u{200B}prod"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "labels",
        ),
        (
            with("address", json!("10.0.0.1; rm -rf /")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "address",
        ),
        (
            with("address", json!("$(reboot)")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "address",
        ),
        (
            with("address", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "address",
        ),
        (
            with("port", json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "port",
        ),
        (
            with("port", json!(70000)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "port",
        ),
        (
            with("username", json!("root; id")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            with("username", json!("with space")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            with("private_key", json!("not a key")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "private_key",
        ),
        (
            with("schedule", json!("* * * * *")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "6 fields",
        ),
        (
            with("schedule", json!("99 * * * * *")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "schedule",
        ),
        (
            with("host_key_fingerprint", json!("MD5:00:11")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "SHA256",
        ),
        (
            with("labels", json!(["has space"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "labels",
        ),
        (
            with("name", json!("  ")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            with("password", json!("pw")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not both",
        ),
    ];
    for (body, status, needle) in cases {
        assert_error(&app.post("/api/v1/hosts", body).await, status, needle);
    }
    let mut no_secret = base.clone();
    no_secret.as_object_mut().unwrap().remove("private_key");
    assert_error(
        &app.post("/api/v1/hosts", no_secret).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "private_key or password",
    );

    let encrypted = ssh_keygen("ed25519", "right");
    let enc = with("private_key", json!(encrypted));
    assert_error(
        &app.post("/api/v1/hosts", enc.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "give its passphrase",
    );
    let mut wrong = enc.clone();
    wrong["passphrase"] = json!("wrong");
    assert_error(
        &app.post("/api/v1/hosts", wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong passphrase",
    );
    assert_eq!(
        host_count(&app).await,
        0,
        "no failed registration left a row"
    );

    let mut right = enc;
    right["passphrase"] = json!("right");
    assert_eq!(
        app.post("/api/v1/hosts", right.clone()).await.0,
        StatusCode::CREATED
    );
    let rsa = with("private_key", json!(ssh_keygen("rsa", "")));
    let mut rsa = rsa;
    rsa["name"] = json!("rsa-host");
    let (status, created) = app.post("/api/v1/hosts", rsa).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["key_algorithm"], "ssh-rsa");
    // Duplicate name.
    assert_error(
        &app.post("/api/v1/hosts", right).await,
        StatusCode::CONFLICT,
        "already exists",
    );
    let id = created["id"].as_i64().unwrap();
    assert_error(
        &app.patch(&format!("/api/v1/hosts/{id}"), json!({"name": "v"}))
            .await,
        StatusCode::CONFLICT,
        "already exists",
    );
    assert_error(
        &app.patch(&format!("/api/v1/hosts/{id}"), json!({"port": 0}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "port",
    );
    assert_eq!(host_count(&app).await, 2);
    let (_, still) = app.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(still["name"], "rsa-host");
}

async fn malformed_bodies_are_client_errors(app: TestApp) {
    for body in ["{\"name\": ", "[]", "null", "{\"name\": 5}", "not json"] {
        let resp = app.call_raw("POST", "/api/v1/hosts", body).await;
        assert!(resp.0.is_client_error(), "{body}: {}", resp.0);
        assert!(resp.1["error"].is_string() && resp.1["message"].is_string());
    }
    // The field is named, as the rest of the API names fields.
    let mut missing = key_host("m");
    missing.as_object_mut().unwrap().remove("address");
    assert_error(
        &app.post("/api/v1/hosts", missing).await,
        StatusCode::BAD_REQUEST,
        "address: required",
    );
    let mut mistyped = key_host("t");
    mistyped["port"] = json!("22");
    assert_error(
        &app.post("/api/v1/hosts", mistyped).await,
        StatusCode::BAD_REQUEST,
        "port: must be an integer",
    );
    let mut out_of_range = key_host("r");
    out_of_range["port"] = json!(70000);
    assert_error(
        &app.post("/api/v1/hosts", out_of_range).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "port: must be 1 to 65535",
    );
    assert_error(
        &app.post("/api/v1/url-checks", json!({"url": "http://127.0.0.1/"}))
            .await,
        StatusCode::BAD_REQUEST,
        "name: required",
    );
    // A body without a JSON content type is refused with the status the spec lists.
    let resp = app
        .client
        .post("/api/v1/hosts")
        .header("authorization", format!("Bearer {}", app.admin))
        .body(key_host("no-type").to_string())
        .send()
        .await
        .0;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = serde_json::from_str(&resp.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(body["error"], "unsupported_media_type", "{body}");
    let mut unknown = key_host("u");
    unknown["sudo_password"] = json!("x");
    assert_error(
        &app.post("/api/v1/hosts", unknown).await,
        StatusCode::BAD_REQUEST,
        "sudo_password",
    );
    assert_error(
        &app.get("/api/v1/hosts/abc").await,
        StatusCode::BAD_REQUEST,
        "",
    );
    assert_error(
        &app.get("/api/v1/hosts?limit=-1").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_error(
        &app.get("/api/v1/notifications?level=loud").await,
        StatusCode::BAD_REQUEST,
        "level",
    );
    assert_error(
        &app.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "",
    );
    assert_eq!(host_count(&app).await, 0);
}

async fn credentials_can_be_replaced(app: TestApp) {
    let (_, created) = app.post("/api/v1/hosts", key_host("c")).await;
    let id = created["id"].as_i64().unwrap();
    let (status, patched) = app
        .patch(
            &format!("/api/v1/hosts/{id}"),
            json!({"password": "new-secret"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["auth_method"], "password");
    assert_eq!(patched["public_key"], Value::Null);
    let creds = host_credential::Entity::find().all(app.db()).await.unwrap();
    assert_eq!(creds.len(), 1);
    assert!(creds[0].private_key_enc.is_none() && creds[0].password_enc.is_some());
    let opened = app
        .state
        .secrets
        .open_str(
            hostwatch::store::hosts::PASSWORD_PURPOSE,
            creds[0].password_enc.as_ref().unwrap(),
        )
        .unwrap();
    assert_eq!(opened.as_str(), "new-secret");
    assert_error(
        &app.patch(&format!("/api/v1/hosts/{id}"), json!({"passphrase": "x"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "passphrase",
    );
    let (_, back) = app
        .patch(
            &format!("/api/v1/hosts/{id}"),
            json!({"private_key": ssh_keygen("ecdsa", "")}),
        )
        .await;
    assert_eq!(back["auth_method"], "private_key");
    assert_eq!(back["key_algorithm"], "ecdsa-sha2-nistp256");
}

async fn thresholds_defaults_and_updates(app: TestApp) {
    let (_, created) = app.post("/api/v1/hosts", key_host("t")).await;
    let id = created["id"].as_i64().unwrap();
    let (status, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], list["items"].as_array().unwrap().len());
    let by_metric = |list: &Value, m: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metric"] == m)
            .cloned()
    };
    for (metric, w, c) in [
        ("cpu.usage_pct", 80.0, 90.0),
        ("memory.used_pct", 80.0, 90.0),
        ("disk.used_pct", 85.0, 95.0),
        ("swap.used_pct", 50.0, 80.0),
        ("gpu.memory_used_pct", 90.0, 95.0),
        ("gpu.temperature_c", 85.0, 95.0),
        ("disk.hours_to_full", 48.0, 6.0),
    ] {
        let t = by_metric(&list, metric).unwrap_or_else(|| panic!("no default for {metric}"));
        assert_eq!(t["source"], "default", "{metric}");
        assert_eq!(
            (t["warning"].as_f64(), t["critical"].as_f64()),
            (Some(w), Some(c)),
            "{metric}"
        );
        assert_eq!(t["for_polls"], 1);
        assert_eq!(t["hysteresis"], 5.0);
        assert_eq!(t["enabled"], true);
    }
    let path = format!("/api/v1/hosts/{id}/thresholds/cpu.usage_pct");
    let (status, put) = app
        .call("PUT", &path, &app.admin.clone(), Some(json!({"warning": 50, "critical": 70, "for_polls": 3, "hysteresis": 2.5, "repeat_seconds": 600})))
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["for_polls"], 3);
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(by_metric(&list, "cpu.usage_pct").unwrap()["warning"], 50.0);
    assert_eq!(by_metric(&list, "cpu.usage_pct").unwrap()["source"], "host");
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        7,
        "PUT replaced, did not add"
    );
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/hosts/{id}/thresholds/load.per_core"),
            &app.admin.clone(),
            Some(json!({"critical": 4})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a metric without a default can be set"
    );
    let admin = app.admin.clone();
    assert_error(
        &app.call(
            "PUT",
            &path,
            &admin,
            Some(json!({"warning": 95, "critical": 90})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "critical",
    );
    assert_error(
        &app.call("PUT", &path, &admin, Some(json!({"for_polls": 0})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "for_polls",
    );
    assert_error(
        &app.call("PUT", &path, &admin, Some(json!({"hysteresis": -1})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "hysteresis",
    );
    assert_error(
        &app.call("PUT", &path, &admin, Some(json!({"repeat_seconds": 5})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "repeat_seconds",
    );
    assert_error(
        &app.call(
            "PUT",
            &format!("/api/v1/hosts/{id}/thresholds/cpu.bogus"),
            &admin,
            Some(json!({})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unknown metric \"cpu.bogus\"",
    );
    assert_error(
        &app.get("/api/v1/hosts/999/thresholds").await,
        StatusCode::NOT_FOUND,
        "no host",
    );
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(
        by_metric(&list, "cpu.usage_pct").unwrap()["critical"],
        70.0,
        "failed PUTs changed nothing"
    );
}

/// One threshold of a host's list in force, by metric and label.
fn in_force(list: &Value, metric: &str, label: &str) -> Option<Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == metric && t["label"] == label)
        .cloned()
}

async fn threshold_rules_precedence_and_patch_put_delete(app: TestApp) {
    let mut prod = key_host("prod-db");
    prod["labels"] = json!(["env=prod", "role=db"]);
    let (_, h) = app.post("/api/v1/hosts", prod).await;
    let id = h["id"].as_i64().unwrap();
    let mut dev = key_host("dev-1");
    dev["labels"] = json!(["env=dev"]);
    let (_, other) = app.post("/api/v1/hosts", dev).await;
    let dev = other["id"].as_i64().unwrap();
    let rule = |name: &str, selector: Value, label: Option<&str>, w: f64, c: f64| {
        let mut body = json!({"name": name, "selector": selector, "metric": "disk.used_pct", "warning": w, "critical": c});
        if let Some(l) = label {
            body["label"] = json!(l);
        }
        body
    };
    let (status, r1) = app
        .post(
            "/api/v1/threshold-rules",
            rule("prod disks", json!(["env=prod"]), None, 80.0, 90.0),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r1}");
    let (status, r2) = app
        .post(
            "/api/v1/threshold-rules",
            rule(
                "prod db disks",
                json!(["env=prod", "role=db"]),
                None,
                70.0,
                85.0,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r2}");
    let (status, r3) = app
        .post(
            "/api/v1/threshold-rules",
            rule("prod data", json!(["env=prod"]), Some("/data"), 95.0, 98.0),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r3}");
    let mut scratch = rule("no scratch", json!([]), Some("/scratch"), 1.0, 2.0);
    scratch["enabled"] = json!(false);
    let (status, _) = app.post("/api/v1/threshold-rules", scratch).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_error(
        &app.post(
            "/api/v1/threshold-rules",
            rule("prod disks", json!([]), None, 1.0, 2.0),
        )
        .await,
        StatusCode::CONFLICT,
        "prod disks",
    );
    assert_error(
        &app.post(
            "/api/v1/threshold-rules",
            json!({"name": "x", "metric": "disk.nope"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "disk.nope",
    );
    assert_error(
        &app.post(
            "/api/v1/threshold-rules",
            json!({"name": "y", "metric": "cpu.usage_pct", "label": "/"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label",
    );

    // The most specific rule wins; a label rule for its label; an exclusion for every host.
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    let disk = in_force(&list, "disk.used_pct", "").unwrap();
    assert_eq!(
        (disk["source"].clone(), disk["rule_id"].clone()),
        (json!("rule"), r2["id"].clone()),
        "{list}"
    );
    assert_eq!(disk["warning"], 70.0);
    let data = in_force(&list, "disk.used_pct", "/data").unwrap();
    assert_eq!(
        (data["warning"].clone(), data["rule_name"].clone()),
        (json!(95.0), json!("prod data"))
    );
    assert_eq!(
        in_force(&list, "disk.used_pct", "/scratch").unwrap()["enabled"],
        false
    );
    // A host without the labels gets the default and the exclusion only.
    let (_, list) = app.get(&format!("/api/v1/hosts/{dev}/thresholds")).await;
    assert_eq!(
        in_force(&list, "disk.used_pct", "").unwrap()["source"],
        "default"
    );
    assert!(in_force(&list, "disk.used_pct", "/data").is_none());

    // PATCH changes only what it names, starting from what is in force.
    let path = format!("/api/v1/hosts/{id}/thresholds/disk.used_pct");
    let (status, patched) = app.patch(&path, json!({"warning": 75})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (
            patched["warning"].clone(),
            patched["critical"].clone(),
            patched["source"].clone()
        ),
        (json!(75.0), json!(85.0), json!("host"))
    );
    let (_, patched) = app
        .patch(&path, json!({"for_polls": 3, "repeat_seconds": 600}))
        .await;
    assert_eq!(
        (
            patched["warning"].clone(),
            patched["for_polls"].clone(),
            patched["repeat_seconds"].clone()
        ),
        (json!(75.0), json!(3), json!(600))
    );
    let (_, patched) = app.patch(&path, json!({"repeat_seconds": null})).await;
    assert!(
        patched.get("repeat_seconds").is_none() || patched["repeat_seconds"].is_null(),
        "{patched}"
    );
    assert_eq!(
        patched["for_polls"], 3,
        "a PATCH keeps what it does not name"
    );
    // PUT replaces: what it leaves out takes the defaults.
    let (_, put) = app
        .call(
            "PUT",
            &path,
            &app.admin.clone(),
            Some(json!({"warning": 85})),
        )
        .await;
    assert_eq!(
        (put["warning"].clone(), put["for_polls"].clone()),
        (json!(85.0), json!(1))
    );
    assert!(
        put.get("critical").is_none() || put["critical"].is_null(),
        "PUT without critical has none: {put}"
    );
    // The host's own wins over every rule, and its every-label one hides the rule's /data.
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(
        in_force(&list, "disk.used_pct", "").unwrap()["source"],
        "host"
    );
    assert!(
        in_force(&list, "disk.used_pct", "/data").is_none(),
        "{list}"
    );
    // A label of its own.
    let (status, boot) = app
        .call(
            "PUT",
            &format!("{path}?label=/boot"),
            &app.admin.clone(),
            Some(json!({"warning": 99, "critical": 99.5})),
        )
        .await;
    assert_eq!(
        (status, boot["label"].clone()),
        (StatusCode::OK, json!("/boot"))
    );
    // DELETE goes back to what is inherited.
    let (status, _) = app.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &app.delete(&path).await,
        StatusCode::NOT_FOUND,
        "no threshold of its own",
    );
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(
        in_force(&list, "disk.used_pct", "").unwrap()["rule_id"],
        r2["id"]
    );
    assert_eq!(
        in_force(&list, "disk.used_pct", "/boot").unwrap()["source"],
        "host"
    );
    // Rules can be changed and deleted.
    let rid = r2["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/threshold-rules/{rid}"),
            &app.admin.clone(),
            Some(rule(
                "prod db disks",
                json!(["env=prod", "role=db"]),
                None,
                60.0,
                80.0,
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(
        in_force(&list, "disk.used_pct", "").unwrap()["warning"],
        60.0
    );
    let (status, _) = app.delete(&format!("/api/v1/threshold-rules/{rid}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&format!("/api/v1/hosts/{id}/thresholds")).await;
    assert_eq!(
        in_force(&list, "disk.used_pct", "").unwrap()["rule_id"],
        r1["id"]
    );
    let (_, rules) = app.get("/api/v1/threshold-rules").await;
    assert_eq!(rules["total"], 3);
    // A viewer reads, and cannot write.
    let reader = app.reader.clone();
    assert_eq!(
        app.call("GET", "/api/v1/threshold-rules", &reader, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.call("PATCH", &path, &reader, Some(json!({"warning": 1})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

async fn metric_catalog_and_series_names(app: TestApp) {
    let (status, catalog) = app.get("/api/v1/metrics/catalog").await;
    assert_eq!(status, StatusCode::OK);
    let entries = catalog.as_array().unwrap();
    let disk = entries
        .iter()
        .find(|e| e["name"] == "disk.used_pct")
        .unwrap();
    assert_eq!(
        (
            disk["unit"].clone(),
            disk["label"].clone(),
            disk["threshold"].clone()
        ),
        (json!("percent"), json!("mount point"), json!(true))
    );
    let load = entries.iter().find(|e| e["name"] == "load.one").unwrap();
    assert_eq!(load["threshold"], false);
    let forecast = entries
        .iter()
        .find(|e| e["name"] == "disk.hours_to_full")
        .unwrap();
    assert_eq!(
        (
            forecast["direction"].clone(),
            forecast["default_critical"].clone()
        ),
        (json!("below"), json!(6.0))
    );
    let (_, h) = app.post("/api/v1/hosts", key_host("cat")).await;
    let id = h["id"].as_i64().unwrap();
    assert_error(
        &app.get(&format!("/api/v1/hosts/{id}/metrics?name=cpu.nope"))
            .await,
        StatusCode::BAD_REQUEST,
        "unknown metric \"cpu.nope\"",
    );
    let (status, series) = app
        .get(&format!(
            "/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&from=-6h&to=now"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(series["series"], json!([]));
    assert_eq!(
        (series["tier"].as_str(), series["step_seconds"].as_i64()),
        (Some("raw"), Some(30))
    );
    let (status, _) = app
        .get(&format!(
            "/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&from=2026-01-01T00:00:00Z&to=-1m"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &app.get(&format!(
            "/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&from=yesterday"
        ))
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "from",
    );
}

async fn notify(app: &TestApp, host_id: i64, level: &str, title: &str) -> i64 {
    let n = hostwatch::store::alerts::notify(
        app.db(),
        common::cpu_fired(
            host_id,
            level,
            97.0,
            title,
            &format!("{title} on host {host_id}"),
        ),
    )
    .await
    .unwrap()
    .expect("a notification");
    app.state.hub.published(n.id);
    n.id
}

async fn notifications_cursor_filters_and_read(app: TestApp) {
    let h1 = app.post("/api/v1/hosts", key_host("n1")).await.1["id"]
        .as_i64()
        .unwrap();
    let h2 = app.post("/api/v1/hosts", key_host("n2")).await.1["id"]
        .as_i64()
        .unwrap();
    let a = notify(&app, h1, "warning", "a").await;
    let b = notify(&app, h2, "critical", "b").await;
    let c = notify(&app, h1, "critical", "c").await;
    let (_, all) = app.get("/api/v1/notifications").await;
    let ids: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [a, b, c], "oldest first");
    assert_eq!(all["next_after_id"], c);
    let first = &all["items"][0];
    for field in [
        "host_id",
        "kind",
        "metric",
        "level",
        "state",
        "value",
        "threshold",
        "title",
        "message",
        "created_at",
    ] {
        assert!(!first[field].is_null(), "{field} missing in {first}");
    }
    let (_, page) = app
        .get(&format!("/api/v1/notifications?after_id={a}&limit=1"))
        .await;
    assert_eq!(page["items"][0]["id"], b);
    assert_eq!(page["next_after_id"], b);
    let (_, empty) = app
        .get(&format!("/api/v1/notifications?after_id={c}"))
        .await;
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["next_after_id"], c, "an empty page keeps the cursor");
    let (_, crit) = app
        .get(&format!(
            "/api/v1/notifications?level=critical&host_id={h1}"
        ))
        .await;
    assert_eq!(crit["items"].as_array().unwrap().len(), 1);
    assert_eq!(crit["items"][0]["id"], c);

    let (status, read) = app
        .post(&format!("/api/v1/notifications/{b}/read"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert!(read["read_at"].is_string());
    let (_, unread) = app.get("/api/v1/notifications?unread=true").await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 2);
    let (_, was_read) = app.get("/api/v1/notifications?unread=false").await;
    assert_eq!(was_read["items"][0]["id"], b);
    assert_error(
        &app.post("/api/v1/notifications/9999/read", json!({})).await,
        StatusCode::NOT_FOUND,
        "notification",
    );
    assert_error(
        &app.get("/api/v1/notifications?wait_seconds=61").await,
        StatusCode::BAD_REQUEST,
        "wait_seconds",
    );
}

async fn notifications_long_poll_wakes_on_write(app: TestApp) {
    let host = app.post("/api/v1/hosts", key_host("lp")).await.1["id"]
        .as_i64()
        .unwrap();
    let app = std::sync::Arc::new(app);
    let waiter = {
        let app = app.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let resp = app
                .get("/api/v1/notifications?after_id=0&wait_seconds=30&level=critical")
                .await;
            (resp, started.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    notify(&app, host, "warning", "not matching").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "a non-matching notification does not end the wait"
    );
    let id = notify(&app, host, "critical", "matching").await;
    let ((status, body), elapsed) =
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["id"], id);
    assert!(
        elapsed < std::time::Duration::from_secs(25),
        "returned on the write, not at the end of the wait"
    );
    // Nothing new: an empty answer after the wait.
    let (_, empty) = app
        .get(&format!(
            "/api/v1/notifications?after_id={id}&wait_seconds=1"
        ))
        .await;
    assert_eq!(empty["items"], json!([]));
}

async fn url_checks_crud_and_validation(app: TestApp) {
    let (status, created) = app
        .post(
            "/api/v1/url-checks",
            json!({"name": "site", "url": "https://127.0.0.1:8443/health"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["expected_status"], json!(["200-399"]));
    assert_eq!(created["timeout_ms"], 10000);
    assert_eq!(created["follow_redirects"], true);
    assert_eq!(created["check_tls"], true);
    let (_, patched) = app
        .patch(
            &format!("/api/v1/url-checks/{id}"),
            json!({"expected_status": ["200", "418"], "timeout_ms": 500}),
        )
        .await;
    assert_eq!(patched["expected_status"], json!(["200", "418"]));
    assert_eq!(patched["timeout_ms"], 500);
    assert_eq!(patched["url"], "https://127.0.0.1:8443/health");
    let (_, page) = app.get("/api/v1/url-checks").await;
    assert_eq!(page["total"], 1);
    let (status, results) = app.get(&format!("/api/v1/url-checks/{id}/results")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["items"], json!([]), "no run yet, no made-up result");
    assert_eq!(results["total"], 0);
    for (body, needle) in [
        (json!({"name": "x", "url": "ftp://127.0.0.1/"}), "scheme"),
        (json!({"name": "x", "url": "not a url"}), "url"),
        (
            json!({"name": "x", "url": "http://127.0.0.1/", "timeout_ms": 5}),
            "timeout_ms",
        ),
        (
            json!({"name": "x", "url": "http://127.0.0.1/", "expected_status": ["299-200"]}),
            "expected_status",
        ),
        (
            json!({"name": "x", "url": "http://127.0.0.1/", "schedule": "@hourly"}),
            "schedule",
        ),
        (
            json!({"name": "x", "url": "http://127.0.0.1/", "host_id": 12345}),
            "host_id",
        ),
        (
            json!({"name": "x", "url": "https://127.0.0.1/", "ca_pem": "not a certificate"}),
            "ca_pem",
        ),
        (
            json!({"name": "site", "url": "http://127.0.0.1/"}),
            "already exists",
        ),
    ] {
        let resp = app.post("/api/v1/url-checks", body).await;
        assert!(
            resp.0 == StatusCode::UNPROCESSABLE_ENTITY || resp.0 == StatusCode::CONFLICT,
            "{}",
            resp.1
        );
        assert_error(&resp, resp.0, needle);
    }
    assert_eq!(
        app.delete(&format!("/api/v1/url-checks/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &app.get(&format!("/api/v1/url-checks/{id}")).await,
        StatusCode::NOT_FOUND,
        "URL check",
    );
}

async fn channels_crud_secrets_and_validation(app: TestApp) {
    let token = "123456:SECRET-bot-token-value";
    let (status, created) = app
        .post(
            "/api/v1/channels",
            json!({"name": "tg", "kind": "telegram", "min_level": "critical",
               "settings": {"bot_token": token, "chat_id": "-100200"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["settings"]["chat_id"], "-100200");
    assert_eq!(created["settings"]["secrets_set"], json!(["bot_token"]));
    assert_eq!(created["min_level"], "critical");
    assert!(!created.to_string().contains(token));
    // A PATCH of public settings keeps the secret.
    let (status, patched) = app
        .patch(
            &format!("/api/v1/channels/{id}"),
            json!({"settings": {"chat_id": "42"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["settings"]["chat_id"], "42");
    assert_eq!(patched["settings"]["secrets_set"], json!(["bot_token"]));
    let (_, listed) = app.get("/api/v1/channels").await;
    assert!(!listed.to_string().contains(token));
    let (status, deliveries) = app.get(&format!("/api/v1/channels/{id}/deliveries")).await;
    assert_eq!((status, &deliveries["items"]), (StatusCode::OK, &json!([])));
    let (status, email) = app
        .post(
            "/api/v1/channels",
            json!({"name": "mail", "kind": "email", "settings": {
            "smtp_host": "127.0.0.1", "smtp_port": 2525, "tls": "none", "from": "hw@example.com",
            "to": ["ops@example.com"], "username": "hw", "password": "smtp-pass",
            "allow_plaintext_auth": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{email}");
    assert_eq!(email["settings"]["secrets_set"], json!(["password"]));
    for (body, needle) in [
        (
            json!({"name": "w", "kind": "webhook", "settings": {}}),
            "needs url",
        ),
        (
            json!({"name": "w", "kind": "webhook", "settings": {"url": "http://127.0.0.1/", "chat_id": "1"}}),
            "chat_id",
        ),
        (
            json!({"name": "w", "kind": "slack", "settings": {"webhook_url": "gopher://x"}}),
            "webhook_url",
        ),
        (
            json!({"name": "w", "kind": "email", "settings": {"smtp_host": "127.0.0.1", "from": "nope", "to": ["a@b.c"]}}),
            "from",
        ),
        (
            json!({"name": "tg", "kind": "webhook", "settings": {"url": "http://127.0.0.1/"}}),
            "already exists",
        ),
    ] {
        let resp = app.post("/api/v1/channels", body).await;
        assert!(
            resp.0 == StatusCode::UNPROCESSABLE_ENTITY || resp.0 == StatusCode::CONFLICT,
            "{}",
            resp.1
        );
        assert_error(&resp, resp.0, needle);
    }
    assert_error(
        &app.post(
            "/api/v1/channels",
            json!({"name": "w", "kind": "pager", "settings": {}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "kind",
    );
    assert_eq!(
        app.delete(&format!("/api/v1/channels/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, listed) = app.get("/api/v1/channels").await;
    assert_eq!(listed["total"], 1);
}

async fn history_routes_answer_honestly(app: TestApp) {
    let id = app.post("/api/v1/hosts", key_host("hist")).await.1["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/hosts/{id}/polls")).await,
        (
            StatusCode::OK,
            json!({"items": [], "total": 0, "limit": 50, "offset": 0})
        )
    );
    let (status, series) = app
        .get(&format!("/api/v1/hosts/{id}/metrics?name=cpu.usage_pct"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        series["series"],
        json!([]),
        "no polls, no buckets: {series}"
    );
    assert_error(
        &app.get(&format!("/api/v1/hosts/{id}/enrollment")).await,
        StatusCode::NOT_FOUND,
        "not been enrolled",
    );
    assert_error(
        &app.get("/api/v1/hosts/999/polls").await,
        StatusCode::NOT_FOUND,
        "no host",
    );
    assert_error(
        &app.get(&format!("/api/v1/hosts/{id}/metrics?name=cpu.usage_pct&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "from",
    );
}

/// Sends a request with extra headers; returns the status, the headers and the JSON body.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, poem::http::HeaderMap, Value) {
    let mut req = match method {
        "GET" => app.client.get(path),
        "POST" => app.client.post(path),
        "DELETE" => app.client.delete(path),
        other => panic!("method {other}"),
    };
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(b) = body {
        req = req.body_json(&b);
    }
    let resp = req.send().await.0;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.into_body().into_string().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json)
}

/// The `name=value` part of the session cookie a response sets, and its attributes.
fn set_cookie(headers: &poem::http::HeaderMap) -> (String, Vec<String>) {
    let raw = headers
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    let mut parts = raw.split(';').map(|p| p.trim().to_owned());
    let pair = parts.next().unwrap();
    (pair, parts.collect())
}

async fn roles_sessions_and_revocation(app: TestApp) {
    let (status, olga) = app
        .post(
            "/api/v1/users",
            json!({"username": "olga", "password": "olga-pass-123456", "role": "operator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{olga}");
    let (status, vic) = app
        .post(
            "/api/v1/users",
            json!({"username": "vic", "password": "vic-pass-1234567", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vic}");
    assert!(vic.get("password").is_none() && vic.get("password_hash").is_none());

    // A token carries at most its user's role.
    assert_error(
        &app.post(
            "/api/v1/tokens",
            json!({"name": "too-much", "user_id": olga["id"], "role": "admin"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "role",
    );
    let (status, created) = app
        .post(
            "/api/v1/tokens",
            json!({"name": "olga-ci", "user_id": olga["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["info"]["role"], "operator");
    let operator = created["token"].as_str().unwrap().to_owned();

    // An operator manages hosts…
    let (status, host) = app
        .call(
            "POST",
            "/api/v1/hosts",
            &operator,
            Some(key_host("by-olga")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{host}");
    // …but neither users nor tokens, not even to read them.
    let admin_only = [
        ("GET", "/api/v1/users".to_owned(), None),
        (
            "POST",
            "/api/v1/users".to_owned(),
            Some(json!({"username": "eve", "password": "eve-pass-1234567", "role": "admin"})),
        ),
        ("GET", format!("/api/v1/users/{}", olga["id"]), None),
        ("GET", "/api/v1/tokens".to_owned(), None),
        (
            "POST",
            "/api/v1/tokens".to_owned(),
            Some(json!({"name": "mine", "role": "operator"})),
        ),
        (
            "DELETE",
            format!("/api/v1/tokens/{}", created["info"]["id"]),
            None,
        ),
    ];
    for (method, path, body) in admin_only {
        assert_error(
            &app.call(method, &path, &operator, body).await,
            StatusCode::FORBIDDEN,
            "admin",
        );
    }
    let (_, users) = app.get("/api/v1/users").await;
    assert_eq!(users["total"], 3, "{users}");

    // A browser logs in: the cookie is HttpOnly, SameSite=Strict, for the whole service.
    let host_header = ("host", "hostwatch.test");
    let own_page = ("origin", "http://hostwatch.test");
    for (username, password) in [("vic", "wrong-password-1"), ("nobody", "vic-pass-1234567")] {
        let (status, _, body) = send(
            &app,
            "POST",
            "/api/v1/session",
            &[host_header],
            Some(json!({"username": username, "password": password})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["message"], "wrong user name or password");
    }
    let login = |username: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let (status, headers, body) = send(
                app,
                "POST",
                "/api/v1/session",
                &[host_header, own_page],
                Some(json!({"username": username, "password": password})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["username"], username);
            let (pair, attributes) = set_cookie(&headers);
            assert!(pair.starts_with("hostwatch_session=hws_"), "{pair}");
            for wanted in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
                assert!(
                    attributes.iter().any(|a| a == wanted),
                    "{wanted}: {attributes:?}"
                );
            }
            // Over plain HTTP the cookie cannot be Secure (the browser would drop it).
            assert!(!attributes.iter().any(|a| a == "Secure"), "{attributes:?}");
            pair
        }
    };
    // A login posted by another site is refused.
    let (status, _, _) = send(
        &app,
        "POST",
        "/api/v1/session",
        &[host_header, ("origin", "https://evil.example")],
        Some(json!({"username": "vic", "password": "vic-pass-1234567"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let viewer_cookie = login("vic", "vic-pass-1234567").await;
    let as_viewer = [host_header, own_page, ("cookie", viewer_cookie.as_str())];
    let (status, _, who) = send(&app, "GET", "/api/v1/session", &as_viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            who["username"].as_str(),
            who["role"].as_str(),
            who["via"].as_str()
        ),
        (Some("vic"), Some("viewer"), Some("session"))
    );
    let (status, _, hosts) = send(&app, "GET", "/api/v1/hosts", &as_viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hosts["total"], 1);
    // A viewer writes nothing, by cookie or by token.
    let (status, _, refused) = send(
        &app,
        "POST",
        "/api/v1/hosts",
        &as_viewer,
        Some(key_host("by-vic")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("role viewer"));
    let (status, _, _) = send(
        &app,
        "DELETE",
        &format!("/api/v1/hosts/{}", host["id"]),
        &as_viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An operator's cookie writes only from this service's own pages.
    let operator_cookie = login("olga", "olga-pass-123456").await;
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let mut headers = vec![host_header, ("cookie", operator_cookie.as_str())];
        headers.extend(origin.map(|o| ("origin", o)));
        let (status, _, body) = send(
            &app,
            "POST",
            "/api/v1/hosts",
            &headers,
            Some(key_host("csrf")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("Origin"),
            "{body}"
        );
    }
    let as_operator = [host_header, own_page, ("cookie", operator_cookie.as_str())];
    let (status, _, body) = send(
        &app,
        "POST",
        "/api/v1/hosts",
        &as_operator,
        Some(key_host("by-page")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        host_count(&app).await,
        2,
        "the refused writes wrote nothing"
    );

    // Logging out ends the session at once and clears the cookie.
    let (status, headers, _) = send(&app, "DELETE", "/api/v1/session", &as_operator, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (pair, attributes) = set_cookie(&headers);
    assert_eq!(pair, "hostwatch_session=");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    let (status, _, _) = send(&app, "GET", "/api/v1/hosts", &as_operator, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The token's use is recorded; revoking it refuses the very next request.
    let (_, tokens) = app
        .get(&format!("/api/v1/tokens?user_id={}", olga["id"]))
        .await;
    assert_eq!(tokens["total"], 1, "{tokens}");
    assert!(tokens["items"][0]["last_used_at"].is_string(), "{tokens}");
    let (status, _) = app
        .delete(&format!("/api/v1/tokens/{}", created["info"]["id"]))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &app.call("GET", "/api/v1/hosts", &operator, None).await,
        StatusCode::UNAUTHORIZED,
        "token",
    );
    // A new password ends the viewer's sessions.
    let (status, _) = app
        .patch(
            &format!("/api/v1/users/{}", vic["id"]),
            json!({"password": "vic-new-pass-12345"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, "GET", "/api/v1/hosts", &as_viewer, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
