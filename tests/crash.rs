//! `kill -9` under load: the real `hostwatch serve` polls a simulated fleet every second, its
//! GPU alerts fire, escalate and resolve every few seconds, and a webhook channel delivers
//! them to a receiver — while the process is killed with SIGKILL again and again. After every
//! kill the database is intact; at the end no notification is missing or written twice (each
//! alert's events still follow the state machine), every notification has its delivery, and
//! every delivery was sent (twice only when a kill came mid-send: at-least-once).

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::fleet::Fleet;
use entity::{delivery, types::DeliveryStatus};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_hostwatch");
const KILLS: usize = 5;

fn serve(data: &Path, database_url: &str, port: u16) -> Child {
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--poll-timeout", "3s"])
        .env("HOSTWATCH_DATA_DIR", data)
        .env("DATABASE_URL", database_url)
        .env_remove("HOSTWATCH_MASTER_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The port is bound before the database is ready: wait for an answer.
    while !common::healthy(addr) {
        assert!(Instant::now() < deadline, "hostwatch did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

async fn integrity_ok(db: &sea_orm::DatabaseConnection) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "ok");
}

async fn kill_nine_loses_and_duplicates_nothing(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fleet = Fleet::start(dir.path(), 10, &["--gpus", "10"]).await;
    let (rx_port, received) = common::outbox::receiver().await;
    let port = common::free_port();

    // First start: migrations, the admin token; then the fleet, the rules and the channel.
    let mut child = serve(&data, &database_url, port);
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let token = token.trim();
    let db = hostwatch::store::connect(&database_url).await.unwrap();
    let secrets = hostwatch::crypto::SecretBox::load(None, &data).unwrap();
    let ids = fleet.register(&db, &secrets, "gpu", "*/1 * * * * *").await;
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest_like::Client::new(token);
    for id in &ids {
        let (status, body) = client
            .put(
                &format!("{api}/hosts/{id}/thresholds/gpu.util_pct"),
                json!({"warning": 50, "critical": 80, "hysteresis": 0}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = client
        .post(
            &format!("{api}/channels"),
            json!({"name": "rx", "kind": "webhook",
                   "settings": {"url": format!("http://127.0.0.1:{rx_port}/hook")}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A restart picks the new hosts up.
    child.kill().unwrap();
    child.wait().unwrap();

    for kill in 0..KILLS {
        let mut child = serve(&data, &database_url, port);
        tokio::time::sleep(Duration::from_millis(2500 + (kill as u64 * 700) % 2000)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        integrity_ok(&db).await;
    }

    // Last start with the hosts disabled: no new notifications, and what is pending is sent.
    entity::host::Entity::update_many()
        .col_expr(
            entity::host::Column::Enabled,
            sea_orm::sea_query::Expr::value(false),
        )
        .exec(&db)
        .await
        .unwrap();
    let mut child = serve(&data, &database_url, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = delivery::Entity::find().all(&db).await.unwrap();
        if rows.iter().all(|d| d.status == DeliveryStatus::Sent) {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries still pending");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    integrity_ok(&db).await;
    fleet.stop().await;

    let (notes, deliveries, twice) = common::outbox::delivered_once_each(&db, &received, 20).await;
    eprintln!(
        "kill -9 loop ({}): {KILLS} kills, {notes} notifications, {deliveries} deliveries, all \
         sent, 0 lost, {twice} received more than once (a kill mid-send)",
        db.get_database_backend().as_str(),
    );
    db.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_nine_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("crash.db").display()
    );
    kill_nine_loses_and_duplicates_nothing(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_nine_loses_and_duplicates_nothing() {
    if let Some(url) = common::postgres_url().await {
        kill_nine_loses_and_duplicates_nothing(url).await;
    }
}

/// The little HTTP client the test needs, over poem's test-free path: plain reqwest.
mod reqwest_like {
    use serde_json::Value;

    pub struct Client {
        http: reqwest::Client,
        token: String,
    }

    impl Client {
        pub fn new(token: &str) -> Self {
            hostwatch::crypto::install_tls_provider();
            Self {
                http: reqwest::Client::builder().no_proxy().build().unwrap(),
                token: token.to_owned(),
            }
        }

        async fn send(&self, req: reqwest::RequestBuilder, body: Value) -> (u16, Value) {
            let resp = req
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }

        pub async fn put(&self, url: &str, body: Value) -> (u16, Value) {
            self.send(self.http.put(url), body).await
        }

        pub async fn post(&self, url: &str, body: Value) -> (u16, Value) {
            self.send(self.http.post(url), body).await
        }
    }
}
