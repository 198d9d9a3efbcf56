//! Notification delivery against real receivers on loopback: an HTTP server standing in for a
//! webhook, Slack's incoming webhooks and Telegram's Bot API (payloads checked against their
//! documented shapes), and aiosmtpd as a real SMTP server.

mod common;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hostwatch::{
    api, crypto::SecretBox, delivery::worker::DeliverySettings, poller::PollerSettings,
    services::Services, store,
};
use poem::{
    EndpointExt, Request, Response,
    endpoint::BoxEndpoint,
    http::StatusCode,
    listener::{Acceptor, Listener},
    test::TestClient,
};
use serde_json::{Value, json};

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    /// The query and the Authorization header the request came with.
    query: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// An HTTP receiver: records every request; `/status-queue` answers are popped per path prefix.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    async fn start(&self) -> u16 {
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let me = self.clone();
        let ep = poem::endpoint::make(move |mut req: Request| {
            let me = me.clone();
            async move {
                let path = req.uri().path().to_owned();
                let query = req.uri().query().unwrap_or_default().to_owned();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let body: Value =
                    serde_json::from_str(&req.take_body().into_string().await.unwrap_or_default())
                        .unwrap_or(Value::Null);
                me.got.lock().unwrap().push(Got {
                    path: path.clone(),
                    query,
                    headers,
                    body,
                });
                use std::sync::atomic::Ordering::SeqCst;
                let now = me.in_flight.fetch_add(1, SeqCst) + 1;
                me.most_in_flight.fetch_max(now, SeqCst);
                if path.starts_with("/quarter") {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                } else if path.starts_with("/slow") {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                me.in_flight.fetch_sub(1, SeqCst);
                let status = me
                    .answers
                    .lock()
                    .unwrap()
                    .iter_mut()
                    .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                    .and_then(|(_, q)| q.pop_front())
                    .unwrap_or(200);
                let body = if path.ends_with("/sendMessage") {
                    json!({"ok": true, "result": {"message_id": 1}}).to_string()
                } else if path.starts_with("/forge") {
                    // A hostile receiver: its error body tries to write a log line of its own.
                    FORGED_BODY.to_owned()
                } else {
                    "ok".to_owned()
                };
                Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .body(body)
            }
        });
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
        port
    }

    fn answer(&self, prefix: &str, statuses: &[u16]) {
        self.answers
            .lock()
            .unwrap()
            .insert(prefix.to_owned(), statuses.iter().copied().collect());
    }

    fn got(&self, prefix: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// What a hostile receiver answers: a line break, a line made to look like hostwatch's own, a
/// Unicode line separator and ANSI colour codes.
const FORGED_BODY: &str = "oops\n2026-12-01T00:00:00.000000Z  INFO hostwatch::api: FORGED LOG LINE admin logged in\u{2028}\x1b[31mred\x1b[0m";

/// Everything the service logs while the guard lives (tests on one thread: their tasks log
/// through this thread's subscriber).
struct CapturedLog {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLog {
    fn start() -> Self {
        let buf: Arc<Mutex<Vec<u8>>> = Default::default();
        let writer = {
            let buf = buf.clone();
            move || LogWriter(buf.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        Self {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// aiosmtpd writing what it receives to a maildir.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("box"))
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("box").join("new");
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fast() -> DeliverySettings {
    DeliverySettings {
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        tick: Duration::from_millis(100),
    }
}

/// hostwatch's API and delivery worker over a data directory that outlives them.
struct Service {
    state: Services,
    client: TestClient<BoxEndpoint<'static, Response>>,
    token: String,
}

impl Service {
    async fn start(dir: &std::path::Path, token: Option<String>, run_worker: bool) -> Self {
        let db = store::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.join("hostwatch.db").display()
        ))
        .await
        .unwrap();
        store::migrate(&db).await.unwrap();
        let token = match token {
            Some(t) => t,
            None => common::token(&db, "admin", entity::types::Role::Admin).await,
        };
        let state = Services::start_with_delivery(
            db,
            SecretBox::load(None, dir).unwrap(),
            PollerSettings {
                enroll_on_create: false,
                ..Default::default()
            },
            fast(),
        );
        let client = TestClient::new(api::app(state.clone()).map_to_response().boxed());
        if run_worker {
            state.run_delivery();
        }
        Self {
            state,
            client,
            token,
        }
    }

    async fn stop(self) -> String {
        self.state.shutdown().await.unwrap();
        self.token
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        common::request(&self.client, method, path, &self.token, body).await
    }

    async fn channel(&self, body: Value) -> i64 {
        let (status, ch) = self.call("POST", "/api/v1/channels", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{ch}");
        ch["id"].as_i64().unwrap()
    }

    async fn host(&self) -> i64 {
        let (status, h) = self
            .call("POST", "/api/v1/hosts", Some(json!({"name": "web-1", "address": "127.0.0.1", "port": 2222, "username": "ops", "password": "x", "labels": ["env=prod"]})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{h}");
        h["id"].as_i64().unwrap()
    }

    async fn notify(&self, host_id: i64, level: &str) -> i64 {
        let title = format!("web-1: cpu.usage_pct is {level} (97.5 ≥ 90)");
        let notice = common::cpu_fired(host_id, level, 97.5, &title, "CPU <busy> & hot");
        let n = hostwatch::store::alerts::notify(&self.state.db, notice)
            .await
            .unwrap()
            .expect("a notification");
        self.state.hub.published(n.id);
        n.id
    }

    async fn deliveries(&self, channel: i64) -> Vec<Value> {
        let (_, d) = self
            .call(
                "GET",
                &format!("/api/v1/channels/{channel}/deliveries"),
                None,
            )
            .await;
        d["items"].as_array().unwrap().clone()
    }

    /// Waits until every delivery of `channel` is in `status`.
    async fn wait_for(&self, channel: i64, status: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let d = self.deliveries(channel).await;
            if d.len() == count && d.iter().all(|d| d["status"] == status) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "channel {channel}: not {count} × {status}: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn every_kind_delivers_in_its_documented_shape() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let base = format!("http://127.0.0.1:{port}");
    let webhook = svc
        .channel(json!({"name": "hook", "kind": "webhook", "settings": {"url": format!("{base}/hook"), "headers": {"Authorization": "Bearer s3cret"}}}))
        .await;
    let slack = svc.channel(json!({"name": "slack", "kind": "slack", "settings": {"webhook_url": format!("{base}/services/T000/B000/XXXX")}})).await;
    let telegram = svc
        .channel(json!({"name": "tg", "kind": "telegram", "settings": {"bot_token": "123456:ABC-token", "chat_id": "-1001234", "api_base_url": base}}))
        .await;
    let email = svc
        .channel(json!({"name": "mail", "kind": "email", "settings": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "tls": "none",
                         "from": "hostwatch@example.com", "to": ["ops@example.com", "oncall@example.com"]}}))
        .await;
    let host = svc.host().await;
    svc.notify(host, "critical").await;
    for ch in [webhook, slack, telegram, email] {
        let d = svc.wait_for(ch, "sent", 1).await;
        assert_eq!(d[0]["attempts"], 1);
        assert!(d[0]["sent_at"].is_string());
    }

    let hook = &rx.got("/hook")[0];
    assert_eq!(
        hook.headers.get("authorization").map(String::as_str),
        Some("Bearer s3cret")
    );
    assert_eq!(
        hook.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let b = &hook.body;
    assert_eq!(
        (
            b["level"].as_str(),
            b["state"].as_str(),
            b["event"].as_str()
        ),
        (Some("critical"), Some("firing"), Some("fired"))
    );
    assert_eq!(
        (b["value"].as_f64(), b["threshold"].as_f64()),
        (Some(97.5), Some(90.0))
    );
    assert_eq!(
        b["about"],
        json!({"type": "host", "name": "web-1", "address": "127.0.0.1", "port": 2222})
    );
    assert!(
        b["text"]
            .as_str()
            .unwrap()
            .contains("Host: web-1 (127.0.0.1:2222)")
    );

    // Slack incoming webhook: `text` fallback plus Block Kit blocks.
    let s = &rx.got("/services/T000/B000/XXXX")[0].body;
    assert!(
        s["text"]
            .as_str()
            .unwrap()
            .contains("[CRITICAL] web-1: cpu.usage_pct is critical")
    );
    let blocks = s["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        (
            blocks[1]["type"].as_str(),
            blocks[1]["text"]["type"].as_str()
        ),
        (Some("section"), Some("mrkdwn"))
    );
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*Value:* 97.50 (threshold 90)")
    );
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("CPU &lt;busy&gt; &amp; hot")
    );

    // Telegram Bot API: POST /bot<token>/sendMessage with chat_id, text, parse_mode.
    let tg = &rx.got("/bot123456:ABC-token/sendMessage")[0].body;
    assert_eq!(
        (tg["chat_id"].as_str(), tg["parse_mode"].as_str()),
        (Some("-1001234"), Some("HTML"))
    );
    let text = tg["text"].as_str().unwrap();
    assert!(text.starts_with("<b>[CRITICAL] web-1"), "{text}");
    assert!(
        text.contains("<b>Host:</b> web-1 (127.0.0.1:2222)")
            && text.contains("CPU &lt;busy&gt; &amp; hot"),
        "{text}"
    );

    // Email: one plain-text message to both recipients.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [CRITICAL] web-1: cpu.usage_pct is critical"),
        "{mail}"
    );
    assert!(mail.contains("From: hostwatch@example.com"));
    assert!(mail.contains("ops@example.com") && mail.contains("oncall@example.com"));
    assert!(mail.to_lowercase().contains("content-type: text/plain"));
    assert!(
        mail.contains("Metric: cpu.usage_pct")
            && mail.contains("Level: critical")
            && mail.contains("State: firing (fired)"),
        "{mail}"
    );

    // The secrets never come back.
    let (_, listed) = svc.call("GET", "/api/v1/channels", None).await;
    for secret in ["s3cret", "ABC-token", "XXXX"] {
        assert!(!listed.to_string().contains(secret), "{secret} in {listed}");
    }
    svc.stop().await;
}

#[tokio::test]
async fn retries_after_500_then_gives_up_at_the_limit() {
    let rx = Receiver::default();
    let port = rx.start().await;
    rx.answer("/flaky", &[500]);
    rx.answer("/down", &[500, 502, 503, 500, 500]);
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let flaky = svc.channel(json!({"name": "flaky", "kind": "webhook", "settings": {"url": format!("http://127.0.0.1:{port}/flaky")}})).await;
    let down = svc.channel(json!({"name": "down", "kind": "webhook", "settings": {"url": format!("http://127.0.0.1:{port}/down")}})).await;
    let host = svc.host().await;
    svc.notify(host, "warning").await;

    let d = svc.wait_for(flaky, "sent", 1).await;
    assert_eq!(d[0]["attempts"], 2, "500, then 200: {d:?}");
    assert_eq!(rx.got("/flaky").len(), 2);

    let d = svc.wait_for(down, "failed", 1).await;
    assert_eq!(d[0]["attempts"], 3, "given up at max_attempts: {d:?}");
    assert!(
        d[0]["last_error"].as_str().unwrap().contains("HTTP 503"),
        "{d:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.got("/down").len(), 3, "nothing after giving up");
    svc.stop().await;
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart_and_are_sent_once() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    // The notification is written while no worker runs (as if the service died right after).
    let svc = Service::start(dir.path(), None, false).await;
    let ch = svc.channel(json!({"name": "hook", "kind": "webhook", "settings": {"url": format!("http://127.0.0.1:{port}/hook")}})).await;
    let host = svc.host().await;
    svc.notify(host, "critical").await;
    assert_eq!(svc.deliveries(ch).await[0]["status"], "pending");
    let token = svc.stop().await;

    let svc = Service::start(dir.path(), Some(token), true).await;
    svc.wait_for(ch, "sent", 1).await;
    let token = svc.stop().await;
    // Another restart: the confirmed delivery is not sent again.
    let svc = Service::start(dir.path(), Some(token), true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.got("/hook").len(), 1);
    svc.stop().await;
}

#[tokio::test]
async fn level_host_and_label_filters() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let critical_only = svc.channel(json!({"name": "crit", "kind": "webhook", "min_level": "critical", "settings": {"url": url}})).await;
    let staging = svc.channel(json!({"name": "staging", "kind": "webhook", "min_level": "info", "label": "env=staging", "settings": {"url": url}})).await;
    let prod = svc.channel(json!({"name": "prod", "kind": "webhook", "min_level": "info", "label": "env=prod", "settings": {"url": url}})).await;
    let host = svc.host().await;
    svc.notify(host, "warning").await;
    svc.wait_for(prod, "sent", 1).await;
    assert!(
        svc.deliveries(critical_only).await.is_empty(),
        "a warning is below critical"
    );
    assert!(
        svc.deliveries(staging).await.is_empty(),
        "the host is not labelled env=staging"
    );
    svc.notify(host, "critical").await;
    svc.wait_for(critical_only, "sent", 1).await;
    svc.wait_for(prod, "sent", 2).await;
    svc.stop().await;
}

#[tokio::test]
async fn a_slow_channel_does_not_delay_the_others() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let slow = svc.channel(json!({"name": "slow", "kind": "webhook", "settings": {"url": format!("http://127.0.0.1:{port}/slow")}})).await;
    let fast = svc.channel(json!({"name": "fast", "kind": "webhook", "settings": {"url": format!("http://127.0.0.1:{port}/hook")}})).await;
    let host = svc.host().await;
    let t = Instant::now();
    svc.notify(host, "critical").await;
    svc.wait_for(fast, "sent", 1).await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(svc.deliveries(slow).await[0]["status"], "pending");
    // The slow one times out (2 s) and is retried, not lost.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let d = svc.deliveries(slow).await;
    assert!(
        d[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no answer within")
            || d[0]["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("timed out"),
        "{d:?}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn the_test_endpoint_reports_the_outcome() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, false).await;
    let good = svc.channel(json!({"name": "good", "kind": "webhook", "settings": {"url": format!("http://127.0.0.1:{port}/hook")}})).await;
    let (status, r) = svc
        .call("POST", &format!("/api/v1/channels/{good}/test"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        rx.got("/hook")[0].body["title"]
            .as_str()
            .unwrap()
            .contains("test message")
    );
    let dead = svc
        .channel(json!({"name": "dead", "kind": "telegram", "settings": {"bot_token": "999:SECRET", "chat_id": "1", "api_base_url": format!("http://127.0.0.1:{}", common::free_port())}}))
        .await;
    let (_, r) = svc
        .call("POST", &format!("/api/v1/channels/{dead}/test"), None)
        .await;
    assert_eq!(r["ok"], false);
    let error = r["error"].as_str().unwrap();
    assert!(
        !error.contains("SECRET"),
        "the token is not in the error: {error}"
    );
    assert!(
        svc.deliveries(good).await.is_empty(),
        "a test is not an outbox row"
    );
    svc.stop().await;
}

#[test]
fn backoff_doubles_and_is_capped() {
    let s = DeliverySettings::default();
    assert_eq!(s.backoff(1), Duration::from_secs(5));
    assert_eq!(s.backoff(2), Duration::from_secs(10));
    assert_eq!(s.backoff(4), Duration::from_secs(40));
    assert_eq!(s.backoff(30), Duration::from_secs(600));
}

#[tokio::test]
async fn a_receivers_error_body_cannot_forge_log_lines() {
    let log = CapturedLog::start();
    let rx = Receiver::default();
    let port = rx.start().await;
    rx.answer("/forge", &[500, 500, 500]);
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let hook = svc
        .channel(json!({"name": "forge", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{port}/forge")}}))
        .await;
    let host = svc.host().await;
    svc.notify(host, "critical").await;
    let d = svc.wait_for(hook, "failed", 1).await;
    assert!(
        d[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("FORGED LOG LINE"),
        "the receiver's answer is kept with the delivery: {d:?}"
    );
    svc.stop().await;
    let text = log.text();
    let gave_up: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("delivery given up"))
        .collect();
    assert_eq!(gave_up.len(), 1, "{text}");
    assert!(gave_up[0].contains("FORGED LOG LINE"), "{}", gave_up[0]);
    // The body stayed inside its field: no line of the log starts with what it forged, and
    // neither the separator nor the escape codes reached it.
    for line in text.lines() {
        assert!(
            !line.contains("FORGED") || line.contains("delivery given up"),
            "a forged line: {line}"
        );
    }
    assert!(
        !text.contains('\x1b') && !text.contains('\u{2028}'),
        "{text}"
    );
}

#[tokio::test]
async fn credentials_in_a_webhook_url_are_sealed_shown_redacted_and_used() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let url = format!("http://user:S3cret@127.0.0.1:{port}/secret-hook?token=T0ken");
    let (status, ch) = svc
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "sealed", "kind": "webhook", "settings": {"url": url}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ch}");
    let shown = ch["settings"]["url"].as_str().unwrap();
    assert_eq!(
        shown,
        format!("http://***@127.0.0.1:{port}/secret-hook?token=***")
    );
    assert!(
        ch["settings"]["secrets_set"]
            .as_array()
            .unwrap()
            .contains(&json!("url"))
    );
    let (_, list) = svc.call("GET", "/api/v1/channels", None).await;
    assert!(!list.to_string().contains("S3cret") && !list.to_string().contains("T0ken"));
    // Nowhere in the database in the clear.
    use sea_orm::EntityTrait;
    for row in entity::channel::Entity::find()
        .all(&svc.state.db)
        .await
        .unwrap()
    {
        assert!(!row.settings.contains("S3cret") && !row.settings.contains("T0ken"));
    }
    // The notification goes to the whole URL.
    let host = svc.host().await;
    svc.notify(host, "warning").await;
    svc.wait_for(ch["id"].as_i64().unwrap(), "sent", 1).await;
    let got = rx.got("/secret-hook");
    assert_eq!(got[0].query, "token=T0ken");
    assert!(
        got[0].headers["authorization"].starts_with("Basic "),
        "{:?}",
        got[0].headers
    );

    // Control characters in a header value or a URL, and a plaintext SMTP login: 422.
    let (status, err) = svc
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "crlf", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{port}/x"),
                                     "headers": {"X-Key": "a\r\nX-Injected: 1"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("headers.X-Key"),
        "{err}"
    );
    let (status, err) = svc
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "nl", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{port}/x\ny")}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, err) = svc
        .call(
            "POST",
            "/api/v1/channels",
            Some(json!({"name": "plain", "kind": "email",
                        "settings": {"smtp_host": "127.0.0.1", "tls": "none", "username": "hw",
                                     "password": "pw", "from": "hw@example.com",
                                     "to": ["ops@example.com"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("allow_plaintext_auth"),
        "{err}"
    );
    svc.stop().await;
}

/// A notification of its own alert: `cpu.usage_pct` with label `label` (a label per alert).
async fn notify_alert(
    svc: &Service,
    host_id: i64,
    label: &str,
    event: entity::types::Event,
) -> i64 {
    let mut notice = common::cpu_fired(host_id, "warning", 95.0, label, "busy");
    notice.key.label = label.to_owned();
    notice.event = event;
    let n = hostwatch::store::alerts::notify(&svc.state.db, notice)
        .await
        .unwrap()
        .expect("a notification");
    svc.state.hub.published(n.id);
    n.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_gets_a_few_alerts_at_once() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let ch = svc
        .channel(json!({"name": "quarter", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{port}/quarter")}}))
        .await;
    let host = svc.host().await;
    // Under the deliveries listing's default page of 50.
    const ALERTS: usize = 48;
    let started = Instant::now();
    for i in 0..ALERTS {
        notify_alert(&svc, host, &format!("cpu{i}"), entity::types::Event::Fired).await;
    }
    svc.wait_for(ch, "sent", ALERTS).await;
    let took = started.elapsed().as_secs_f64();
    let most = rx.most_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "a 250 ms receiver: {ALERTS} deliveries in {took:.2} s = {:.1} deliveries/s, at most {most} at once",
        ALERTS as f64 / took
    );
    assert!(
        (2..=hostwatch::delivery::worker::SENDS_PER_CHANNEL).contains(&most),
        "{most} sends at once"
    );
    svc.stop().await;
}

#[tokio::test]
async fn an_alerts_notifications_arrive_in_order_across_a_retry() {
    let rx = Receiver::default();
    let port = rx.start().await;
    rx.answer("/order", &[500]);
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let ch = svc
        .channel(json!({"name": "order", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{port}/order")}}))
        .await;
    let host = svc.host().await;
    let fired = notify_alert(&svc, host, "disk", entity::types::Event::Fired).await;
    let resolved = notify_alert(&svc, host, "disk", entity::types::Event::Resolved).await;
    svc.wait_for(ch, "sent", 2).await;
    let ids: Vec<i64> = rx
        .got("/order")
        .iter()
        .map(|g| g.body["id"].as_i64().unwrap())
        .collect();
    // The firing failed once and was retried; the resolution waited for it.
    assert_eq!(ids, [fired, fired, resolved]);
    svc.stop().await;
}

#[tokio::test]
async fn a_send_under_way_at_shutdown_finishes_and_is_recorded() {
    let rx = Receiver::default();
    let port = rx.start().await;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), None, true).await;
    let ch = svc
        .channel(json!({"name": "quarter", "kind": "webhook",
                        "settings": {"url": format!("http://127.0.0.1:{port}/quarter")}}))
        .await;
    let host = svc.host().await;
    svc.notify(host, "critical").await;
    // The receiver has the request and takes a quarter of a second to answer it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.got("/quarter").is_empty() {
        assert!(Instant::now() < deadline, "nothing sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let token = svc.stop().await;
    // Restarted without the worker: the delivery was recorded as sent before the database closed.
    let svc = Service::start(dir.path(), Some(token), false).await;
    let (_, d) = svc
        .call("GET", &format!("/api/v1/channels/{ch}/deliveries"), None)
        .await;
    assert_eq!(d["items"][0]["status"], "sent", "{d}");
    assert_eq!(rx.got("/quarter").len(), 1, "sent once");
    svc.stop().await;
}
