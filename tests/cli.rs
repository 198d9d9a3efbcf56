//! The `hostwatch` binary as an operator runs it: `migrate` on a fresh SQLite file, `serve` on a
//! real socket (admin token file, Swagger UI, spec, graceful SIGTERM), `token create`, and
//! `openapi`.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_hostwatch");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 request over a fresh connection; returns status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("HOSTWATCH_DATA_DIR", data_dir)
            .env_remove("DATABASE_URL")
            .env_remove("HOSTWATCH_MASTER_KEY")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data_dir.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The port is bound first, before the database is ready: wait for an answer.
        while !common::healthy(addr) {
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                log(data_dir)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn log(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn migrate_creates_a_fresh_sqlite_database_and_is_idempotent() {
    use sea_orm::{ConnectionTrait, Statement};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for _ in 0..2 {
        let out = Command::new(BIN)
            .args(["migrate", "--data-dir"])
            .arg(&data)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let url = format!("sqlite://{}", data.join("hostwatch.db").display());
    let db = hostwatch::store::connect(&url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table'",
        ))
        .await
        .unwrap();
    let tables: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    for table in [
        "hosts",
        "host_labels",
        "host_credentials",
        "host_keys",
        "enrollment_runs",
        "polls",
        "series_layouts",
        "rollups_1m",
        "rollups_1m_chunks",
        "rollups_10m",
        "rollups_1h",
        "latest_snapshots",
        "thresholds",
        "alert_states",
        "notifications",
        "url_checks",
        "url_check_results",
        "channels",
        "deliveries",
        "api_tokens",
        "seaql_migrations",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "no table {table} in {tables:?}"
        );
    }
    let journal = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(journal.try_get_by_index::<String>(0).unwrap(), "wal");
    // The hot and periodic lookups find their rows through an index, not a scan of the table:
    // the writer's alert states per batch, a URL check's states, retention's old polls, a
    // host's raw series, its rollup buckets (the WITHOUT ROWID table's key).
    for (query, index) in [
        (
            "SELECT * FROM alert_states WHERE host_id IN (1, 2, 3)",
            "ix_alert_states_host_id",
        ),
        (
            "SELECT * FROM alert_states WHERE url_check_id = 1",
            "ix_alert_states_url_check_id",
        ),
        (
            "SELECT id FROM polls WHERE started_at < 5",
            "ix_polls_started_at",
        ),
        (
            "SELECT sampled_at, data FROM polls WHERE host_id = 1 \
             AND started_at BETWEEN 1 AND 9 AND sampled_at BETWEEN 2 AND 9",
            "ix_polls_host_id_started_at",
        ),
        (
            "SELECT data FROM rollups_1m WHERE host_id IN (1, 2) AND bucket_start >= 5",
            "USING PRIMARY KEY (host_id=? AND bucket_start>?)",
        ),
        (
            "SELECT data FROM rollups_1m_chunks WHERE host_id IN (1, 2) AND bucket_start >= 5",
            "USING PRIMARY KEY (host_id=? AND bucket_start>?)",
        ),
    ] {
        let plan: Vec<String> = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!("EXPLAIN QUERY PLAN {query}"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect();
        assert!(plan.iter().any(|d| d.contains(index)), "{query}: {plan:?}");
    }
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
}

#[test]
fn serve_walkthrough_tokens_and_graceful_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let token_path = data.join("admin.token");
    assert_eq!(mode(&token_path), 0o600);
    let password_path = data.join("admin.password");
    assert_eq!(mode(&password_path), 0o600);
    let admin_password = std::fs::read_to_string(&password_path)
        .unwrap()
        .trim()
        .to_owned();
    assert!(admin_password.len() >= 16, "{admin_password}");
    for file in ["hostwatch.db", "master.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let admin = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    assert!(admin.starts_with("hw_"));
    let logged = log(&data);
    assert!(
        logged.contains("admin.token"),
        "the log names the token file: {logged}"
    );
    assert!(
        !logged.contains(&admin),
        "the log must not contain the token"
    );
    assert!(logged.contains("admin.password"), "{logged}");
    assert!(!logged.contains(&admin_password));
    // The first admin logs in with the password from the file.
    let login = format!(r#"{{"username":"admin","password":"{admin_password}"}}"#);
    let (status, body) = http(server.addr, "POST", "/api/v1/session", None, Some(&login));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""role":"admin""#), "{body}");

    assert_eq!(http(server.addr, "GET", "/healthz", None, None).0, 200);
    let (status, docs) = http(server.addr, "GET", "/docs", None, None);
    assert_eq!(status, 200);
    assert!(docs.to_lowercase().contains("swagger"), "Swagger UI page");
    let (status, spec) = http(server.addr, "GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    assert_eq!(spec.trim_end(), hostwatch::api::spec_json().trim_end());

    let (status, body) = http(server.addr, "GET", "/api/v1/hosts", None, None);
    assert_eq!(status, 401);
    assert!(body.contains("\"error\""));
    // A loopback port nothing listens on: enrollment (which starts at once) fails quickly.
    let host = format!(
        r#"{{"name":"db-1","address":"127.0.0.1","port":{},"username":"monitor","password":"s3cret-pw"}}"#,
        free_port()
    );
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/v1/hosts",
        Some(&admin),
        Some(&host),
    );
    assert_eq!(status, 201, "{body}");
    assert!(!body.contains("s3cret-pw"));

    // A token made by the CLI while the service runs is usable at once.
    let out = Command::new(BIN)
        .args([
            "token",
            "create",
            "--name",
            "grafana",
            "--read-only",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (status, body) = http(server.addr, "GET", "/api/v1/hosts", Some(&reader), None);
    assert_eq!(status, 200);
    assert!(body.contains("db-1"));
    assert_eq!(
        http(
            server.addr,
            "DELETE",
            "/api/v1/hosts/1",
            Some(&reader),
            None
        )
        .0,
        403
    );
    let (status, body) = http(
        server.addr,
        "GET",
        "/api/v1/notifications?after_id=0&wait_seconds=20",
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    // Registration started enrollment in the background; the closed port made it fail, and
    // that is a notification.
    assert!(body.contains("\"kind\":\"enrollment_failed\""), "{body}");
    assert!(body.contains("Connection refused"), "{body}");

    // Users and tokens from the command line, against the running service's data.
    let cli = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cli(
        &[
            "user",
            "create",
            "alice",
            "--role",
            "operator",
            "--password-stdin",
        ],
        "alice-pass-12345\n",
    );
    let users = cli(&["user", "list"], "");
    assert!(
        users
            .lines()
            .any(|l| l.contains("alice") && l.contains("operator")),
        "{users}"
    );
    let login = r#"{"username":"alice","password":"alice-pass-12345"}"#;
    assert_eq!(
        http(server.addr, "POST", "/api/v1/session", None, Some(login)).0,
        200
    );
    // A generated password is printed once, and works.
    let generated = cli(&["user", "passwd", "alice"], "");
    let login = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        generated.trim()
    );
    assert_eq!(
        http(server.addr, "POST", "/api/v1/session", None, Some(&login)).0,
        200
    );
    let tokens = cli(&["token", "list"], "");
    let grafana = tokens
        .lines()
        .find(|l| l.contains("grafana"))
        .unwrap_or_else(|| panic!("{tokens}"));
    assert!(grafana.contains("viewer"), "{grafana}");
    let id = grafana.split_whitespace().next().unwrap();
    cli(&["token", "revoke", id], "");
    assert_eq!(
        http(server.addr, "GET", "/api/v1/hosts", Some(&reader), None).0,
        401,
        "a revoked token is refused at once"
    );
    cli(&["user", "delete", "alice"], "");
    assert!(!cli(&["user", "list"], "").contains("alice"));

    server.stop();
    let logged = log(&data);
    assert!(logged.contains("shutting down"));
    // The newest snapshots are written on the way out (none here: nothing was polled).
    assert!(logged.contains("latest snapshots written"), "{logged}");

    // A restart keeps the admin token and the data.
    let server = Server::start(&data);
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), admin);
    let (status, body) = http(server.addr, "GET", "/api/v1/hosts", Some(&admin), None);
    assert_eq!(status, 200);
    assert!(body.contains("db-1"));
    server.stop();
}

#[test]
fn commands_other_than_serve_refuse_a_missing_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    for args in [vec!["migrate"], vec!["token", "create", "--name", "x"]] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(&missing)
            .env_remove("DATABASE_URL")
            .env_remove("HOSTWATCH_DATA_DIR")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&missing.display().to_string()),
            "{args:?}: {err}"
        );
        assert!(err.contains("--data-dir"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created the data dir");
    }
    // A data dir without a database: token create makes no new one either.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(BIN)
        .args(["token", "create", "--name", "x", "--data-dir"])
        .arg(&empty)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!empty.join("hostwatch.db").exists());
}

#[test]
fn a_bad_master_key_is_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["migrate", "--data-dir"])
        .arg(tmp.path())
        .env("HOSTWATCH_MASTER_KEY", "too-short")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HOSTWATCH_MASTER_KEY"), "{err}");
    assert!(!err.contains("too-short"), "the key value is not echoed");
}

#[test]
fn openapi_subcommand_prints_the_committed_spec() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert_eq!(printed.trim_end(), committed.trim_end());
}
