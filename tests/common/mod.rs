//! Test support: a hostwatch app over a real database (a fresh SQLite file, or a fresh database
//! on the PostgreSQL that `scripts/test.sh` starts), driven through poem's test client.

#![allow(dead_code)]

pub mod fleet;
pub mod outbox;
pub mod service;
pub mod sshd;

use entity::types::{AlertKind, Event, Level, Role};
use hostwatch::{
    alerts::evaluate::{AlertKey, Notice, Subject},
    api,
    crypto::SecretBox,
    poller::PollerSettings,
    services::Services,
    store::{self, tokens},
};
use poem::{EndpointExt, Response, endpoint::BoxEndpoint, http::StatusCode, test::TestClient};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::Value;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server URL the test script exports (a maintenance database on loopback).
pub const PG_ENV: &str = "HOSTWATCH_TEST_PG_URL";

/// A running app with an admin and a read-only token.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub state: Services,
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub admin: String,
    pub reader: String,
    pub database_url: String,
}

/// A fresh PostgreSQL database for one test, or `None` when no server is configured outside CI.
pub async fn postgres_url() -> Option<String> {
    let Ok(server) = std::env::var(PG_ENV) else {
        assert!(
            std::env::var("CI").is_err(),
            "{PG_ENV} is not set: run the suite with scripts/test.sh, which starts PostgreSQL"
        );
        eprintln!("skipping: {PG_ENV} is not set (scripts/test.sh sets it)");
        return None;
    };
    let admin = sea_orm::Database::connect(&server)
        .await
        .expect("connect to test PostgreSQL");
    let name = format!("hw_test_{}", hex_id());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let base = server.rsplit_once('/').expect("URL has a database path").0;
    Some(format!("{base}/{name}"))
}

/// A token of `role` for user `admin` (created, with a password nobody knows, when missing).
pub async fn token(db: &DatabaseConnection, name: &str, role: Role) -> String {
    let admin = match store::users::find_by_name(db, "admin").await.unwrap() {
        Some(u) => u,
        None => store::users::create(
            db,
            store::users::NewUser {
                username: "admin".into(),
                password_hash: "!".into(),
                role: Role::Admin,
            },
        )
        .await
        .unwrap(),
    };
    let new = tokens::NewToken {
        user_id: admin.id,
        name,
        role,
    };
    tokens::create(db, new).await.unwrap().0
}

/// Whether `GET /healthz` on `addr` answers 200 within a second (the service binds its port
/// before its database is ready, so a connection alone says nothing).
pub fn healthy(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_millis(500);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    stream.write_all(req.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.ends_with(b" 200")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hex_id() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestApp {
    /// A new app on `backend`, or `None` when that backend is not available here. Hosts are
    /// not enrolled on registration (the API tests register hosts that do not exist).
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, false).await
    }

    /// Like [`TestApp::start`], choosing whether registration enrolls the host over SSH.
    pub async fn start_with(backend: Backend, enroll_on_create: bool) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("hostwatch.db").display()
            ),
            Backend::Postgres => postgres_url().await?,
        };
        let db = store::connect(&database_url).await.unwrap();
        store::migrate(&db).await.unwrap();
        let secrets = SecretBox::load(None, dir.path()).unwrap();
        let admin = token(&db, "admin", Role::Admin).await;
        let reader = token(&db, "dashboard", Role::Viewer).await;
        let settings = PollerSettings {
            poll_timeout: std::time::Duration::from_secs(5),
            enroll_timeout: std::time::Duration::from_secs(20),
            enroll_on_create,
            ..Default::default()
        };
        let state = Services::start(db, secrets, settings);
        let client = TestClient::new(api::app(state.clone()).map_to_response().boxed());
        Some(Self {
            dir,
            state,
            client,
            admin,
            reader,
            database_url,
        })
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    /// Sends a request with `token` (none when empty) and returns the status and JSON body
    /// (`Null` for an empty body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        request(&self.client, method, path, token, body).await
    }

    /// Sends a raw body (for malformed JSON tests).
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: &'static str,
    ) -> (StatusCode, Value) {
        let req = match method {
            "POST" => self.client.post(path),
            "PATCH" => self.client.patch(path),
            other => panic!("method {other}"),
        };
        let resp = req
            .header("authorization", format!("Bearer {}", self.admin))
            .content_type("application/json")
            .body(body)
            .send()
            .await;
        let status = resp.0.status();
        let text = resp.0.into_body().into_string().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, &self.admin.clone(), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, &self.admin.clone(), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("PATCH", path, &self.admin.clone(), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call("DELETE", path, &self.admin.clone(), None).await
    }
}

/// Sends a JSON request through `client` with `token` (none when empty); returns the status and
/// the JSON body (`Null` when empty; anything else that is not JSON fails the test).
pub async fn request(
    client: &TestClient<BoxEndpoint<'static, Response>>,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = match method {
        "GET" => client.get(path),
        "POST" => client.post(path),
        "PATCH" => client.patch(path),
        "PUT" => client.put(path),
        "DELETE" => client.delete(path),
        other => panic!("method {other}"),
    };
    let req = if token.is_empty() {
        req
    } else {
        req.header("authorization", format!("Bearer {token}"))
    };
    let req = match body {
        Some(b) => req.body_json(&b),
        None => req,
    };
    let resp = req.send().await;
    let status = resp.0.status();
    let text = resp.0.into_body().into_string().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, json)
}

/// A `cpu.usage_pct` threshold notification of `host_id` firing at `level` ("warning" or
/// "critical") with `value` over 90.
pub fn cpu_fired(host_id: i64, level: &str, value: f64, title: &str, message: &str) -> Notice {
    let key = AlertKey::new(
        Subject::Host(host_id),
        AlertKind::Threshold,
        "cpu.usage_pct",
        "",
    );
    let level = Level::parse(level).expect("a level");
    Notice {
        value: Some(value),
        threshold: Some(90.0),
        ..Notice::new(key, level, Event::Fired, title, message)
    }
}

/// An OpenSSH private key made by ssh-keygen, optionally encrypted.
pub fn ssh_keygen(kind: &str, passphrase: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "test", "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd.output().expect("ssh-keygen runs (openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path).unwrap()
}

/// Asserts an error response: status, JSON shape, and a message containing `needle`.
#[track_caller]
pub fn assert_error(resp: &(StatusCode, Value), status: StatusCode, needle: &str) {
    assert_eq!(resp.0, status, "body: {}", resp.1);
    let error = resp.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {}", resp.1));
    assert!(!error.is_empty());
    let message = resp.1["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {}", resp.1));
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "message {message:?} does not mention {needle:?}"
    );
}

/// What this machine says about itself, to compare a probe's numbers with.
pub mod local_truth {
    /// MemTotal in bytes.
    pub fn mem_total_bytes() -> u64 {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    /// The number of cpuN lines in /proc/stat.
    pub fn cpu_count() -> u32 {
        let text = std::fs::read_to_string("/proc/stat").unwrap();
        text.lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count() as u32
    }

    /// The size of `/` from `df -P -k /`, in bytes.
    pub fn root_size_bytes() -> u64 {
        let out = std::process::Command::new("df")
            .args(["-P", "-k", "/"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().nth(1).unwrap();
        line.split_whitespace()
            .rev()
            .nth(4)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }
}
