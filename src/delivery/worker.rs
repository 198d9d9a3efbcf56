//! The delivery worker: sends pending outbox rows through their channels, retries failures with
//! exponential backoff, and gives up after a limit with the last error recorded.
//!
//! Each channel's rows are sent by their own task, so a slow or dead channel delays only
//! itself; polling never waits for delivery. A row is marked sent only after the receiver
//! accepted it, so a crash or restart sends pending rows again (at least once) and never resends
//! a confirmed one.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use entity::{
    delivery, notification,
    types::{AlertKind, ChannelKind, Level, NotificationState},
};
use futures_util::StreamExt;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};
use sea_orm::DatabaseConnection;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::message::{About, Message};
use crate::{
    channel::SmtpTls,
    crypto::SecretBox,
    error::{Error, Result},
    logs::Untrusted,
    store::{
        channels::{self, ChannelSettings},
        cluster::Fence,
        deliveries, hosts,
        notifications::{self, NotificationHub},
        now_ms, url_checks,
    },
};

/// Alerts of one channel sent at once: a slow receiver (a quarter of a second an answer) still
/// takes a few dozen notifications a second, and one alert's notifications stay in order.
pub const SENDS_PER_CHANNEL: usize = 8;

/// Most pending deliveries read per dispatch.
const OUTBOX_READ: u64 = 5000;

/// Delivery limits.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Deadline of one send.
    pub timeout: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// Wait after the first failure; doubles each time.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How often due rows are looked for (new notifications wake the worker at once).
    pub tick: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            tick: Duration::from_secs(1),
        }
    }
}

impl DeliverySettings {
    /// The wait after the `attempts`-th failure.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let factor = 1u32 << attempts.clamp(1, 20).saturating_sub(1);
        self.base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Sends messages to channels.
pub struct Sender {
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

fn http_error(e: reqwest::Error) -> String {
    // Never the URL: Slack and Telegram URLs carry secrets.
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

impl Sender {
    /// A sender whose every send ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        crate::crypto::install_tls_provider();
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .user_agent(concat!("hostwatch/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Self { http, timeout })
    }

    async fn post_json(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: &serde_json::Value,
    ) -> Result<String, String> {
        let mut req = self.http.post(url).json(body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.map_err(http_error)?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(text)
        } else {
            let snippet: String = text.chars().take(200).collect();
            Err(format!("HTTP {}: {}", status.as_u16(), snippet.trim()))
        }
    }

    /// Sends `msg` through a channel; `Err` says why it was not accepted.
    pub async fn send(&self, ch: &ChannelSettings, msg: &Message) -> Result<(), String> {
        let work = async {
            match ch.kind {
                ChannelKind::Webhook => {
                    // The whole URL when it holds credentials; the public one is redacted.
                    let url = ch
                        .secret
                        .url
                        .as_deref()
                        .or(ch.public.url.as_deref())
                        .ok_or("no url")?;
                    self.post_json(url, &ch.secret.headers, &msg.webhook_payload())
                        .await
                        .map(|_| ())
                }
                ChannelKind::Slack => {
                    let url = ch.secret.webhook_url.as_deref().ok_or("no webhook_url")?;
                    self.post_json(url, &BTreeMap::new(), &msg.slack_payload())
                        .await
                        .map(|_| ())
                }
                ChannelKind::Telegram => {
                    let token = ch.secret.bot_token.as_deref().ok_or("no bot_token")?;
                    let chat = ch.public.chat_id.as_deref().ok_or("no chat_id")?;
                    let base = ch
                        .public
                        .api_base_url
                        .as_deref()
                        .unwrap_or("https://api.telegram.org")
                        .trim_end_matches('/');
                    let body = self
                        .post_json(
                            &format!("{base}/bot{token}/sendMessage"),
                            &BTreeMap::new(),
                            &msg.telegram_payload(chat),
                        )
                        .await
                        .map_err(|e| e.replace(token, "<token>"))?;
                    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    if answer["ok"] == true {
                        Ok(())
                    } else {
                        Err(format!(
                            "Telegram refused: {}",
                            answer["description"].as_str().unwrap_or("no description")
                        ))
                    }
                }
                ChannelKind::Email => self.send_email(ch, msg).await,
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", self.timeout.as_secs())))
    }

    async fn send_email(&self, ch: &ChannelSettings, msg: &Message) -> Result<(), String> {
        let p = &ch.public;
        let host = p.smtp_host.as_deref().ok_or("no smtp_host")?;
        let from: Mailbox = p
            .from
            .as_deref()
            .ok_or("no from")?
            .parse()
            .map_err(|e| format!("from: {e}"))?;
        let mut builder = lettre::Message::builder().from(from).subject(msg.subject());
        for to in &p.to {
            builder = builder.to(to.parse().map_err(|e| format!("to {to}: {e}"))?);
        }
        let email = builder
            .header(ContentType::TEXT_PLAIN)
            .body(msg.plain_text())
            .map_err(|e| e.to_string())?;
        let mut transport = match p.tls.unwrap_or(SmtpTls::Starttls) {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(p.smtp_port.unwrap_or(25)),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| e.to_string())?
                .port(p.smtp_port.unwrap_or(465)),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| e.to_string())?
                .port(p.smtp_port.unwrap_or(587)),
        }
        .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&p.username, &ch.secret.password) {
            transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
        }
        transport
            .build()
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}

/// The outcome of a test message.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub ok: bool,
    pub error: Option<String>,
    pub duration: Duration,
}

/// Sends the outbox.
#[derive(Debug)]
pub struct DeliveryService {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    hub: NotificationHub,
    sender: Sender,
    settings: DeliverySettings,
    busy: Mutex<HashSet<i64>>,
    /// Where each channel's sending task is spawned.
    tasks: TaskTracker,
    /// Cancelled at shutdown: the worker stops, and sending tasks finish the send under way.
    stop: CancellationToken,
    /// Only the leader sends, and records what it sent.
    fence: Fence,
}

impl DeliveryService {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        hub: NotificationHub,
        settings: DeliverySettings,
        tasks: TaskTracker,
        stop: CancellationToken,
        fence: Fence,
    ) -> Result<Self> {
        Ok(Self {
            db,
            secrets,
            hub,
            sender: Sender::new(settings.timeout)?,
            settings,
            busy: Default::default(),
            tasks,
            stop,
            fence,
        })
    }

    /// Runs until `stop` (shutdown, or the end of this node's term as leader): wakes on new
    /// notifications and every tick.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut wake = self.hub.subscribe();
        loop {
            if let Err(e) = self.release_held().await {
                tracing::warn!(error = %e, "could not release held notifications");
            }
            if let Err(e) = self.dispatch().await {
                tracing::warn!(error = %e, "delivery dispatch failed");
            }
            tokio::select! {
                _ = wake.changed() => {}
                _ = tokio::time::sleep(self.settings.tick) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Enqueues the notifications silences and maintenance windows held back, once those have
    /// ended while their alerts still fire.
    async fn release_held(&self) -> Result<()> {
        // A plain read first: most ticks find nothing held, and take no write lock.
        if !crate::store::alerts::any_held(&self.db).await? {
            return Ok(());
        }
        let txn = self.fence.begin(&self.db).await?;
        let released = crate::store::alerts::release_held(&txn).await?;
        txn.commit().await?;
        for n in &released {
            tracing::info!(
                notification_id = n.id,
                alert_id = n.alert_id,
                "silence or maintenance over while the alert fires: delivering its notification"
            );
        }
        Ok(())
    }

    /// Starts one task per channel with due rows (unless that channel is already being sent).
    /// A channel's rows are queued per alert, oldest first: up to [`SENDS_PER_CHANNEL`] alerts
    /// are sent at once, each alert's rows one after the other, and a row waiting for its retry
    /// holds back the later rows of its alert — a resolution never overtakes its firing.
    pub async fn dispatch(self: &Arc<Self>) -> Result<()> {
        let now = now_ms();
        let mut by_channel: BTreeMap<i64, BTreeMap<deliveries::AlertOf, Vec<delivery::Model>>> =
            BTreeMap::new();
        for (d, alert) in deliveries::pending(&self.db, OUTBOX_READ).await? {
            by_channel
                .entry(d.channel_id)
                .or_default()
                .entry(alert)
                .or_default()
                .push(d);
        }
        for (channel_id, alerts) in by_channel {
            // Each alert's rows from its oldest on, up to the first not due yet.
            let queues: Vec<Vec<delivery::Model>> = alerts
                .into_values()
                .map(|rows| {
                    rows.into_iter()
                        .take_while(|d| d.next_attempt_at <= now)
                        .collect::<Vec<_>>()
                })
                .filter(|queue| !queue.is_empty())
                .collect();
            if queues.is_empty() || !self.busy.lock().expect("not poisoned").insert(channel_id) {
                continue;
            }
            let me = self.clone();
            self.tasks.spawn(async move {
                if let Err(e) = me.send_channel(channel_id, queues).await {
                    tracing::warn!(channel_id, error = %Untrusted(&e), "delivery failed");
                }
                me.busy.lock().expect("not poisoned").remove(&channel_id);
            });
        }
        Ok(())
    }

    /// Sends a channel's queues, a few alerts at a time.
    async fn send_channel(&self, channel_id: i64, queues: Vec<Vec<delivery::Model>>) -> Result<()> {
        let settings = match channels::get(&self.db, channel_id).await {
            Ok(row) if row.enabled => Some(channels::settings_of(&self.secrets, &row)?),
            Ok(_) => None,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let settings = settings.as_ref();
        futures_util::stream::iter(queues)
            .map(|queue| self.send_queue(channel_id, settings, queue))
            .buffer_unordered(SENDS_PER_CHANNEL)
            .collect::<Vec<Result<()>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Sends one alert's rows in order; stops at the first that fails (the rest wait for its
    /// retry) and at shutdown (the send under way finishes and is recorded).
    async fn send_queue(
        &self,
        channel_id: i64,
        settings: Option<&ChannelSettings>,
        queue: Vec<delivery::Model>,
    ) -> Result<()> {
        for d in queue {
            if self.stop.is_cancelled() {
                break;
            }
            let Some(settings) = settings else {
                self.mark_failed(&d, "the channel is disabled", None)
                    .await?;
                continue;
            };
            let Some(msg) = self.message(d.notification_id).await? else {
                continue;
            };
            // A node that lost the lease sends nothing more: the new leader will.
            self.fence.check(&self.db).await?;
            match self.sender.send(settings, &msg).await {
                Ok(()) => self.mark_sent(&d).await?,
                Err(error) => {
                    let attempts = d.attempts + 1;
                    let retry_at = (attempts < self.settings.max_attempts)
                        .then(|| now_ms() + self.settings.backoff(attempts).as_millis() as i64);
                    if retry_at.is_none() {
                        tracing::warn!(
                            channel_id,
                            delivery_id = d.id,
                            error = %Untrusted(&error),
                            "delivery given up"
                        );
                    }
                    self.mark_failed(&d, &error, retry_at).await?;
                    if retry_at.is_some() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn mark_sent(&self, d: &delivery::Model) -> Result<()> {
        let txn = self.fence.begin(&self.db).await?;
        deliveries::mark_sent(&txn, d).await?;
        Ok(txn.commit().await?)
    }

    async fn mark_failed(
        &self,
        d: &delivery::Model,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let txn = self.fence.begin(&self.db).await?;
        deliveries::mark_failed(&txn, d, error, retry_at).await?;
        Ok(txn.commit().await?)
    }

    async fn message(&self, notification_id: i64) -> Result<Option<Message>> {
        let Some(n) = notifications::find(&self.db, notification_id).await? else {
            return Ok(None);
        };
        let about = match (n.host_id, n.url_check_id) {
            (Some(h), _) => {
                hosts::find(&self.db, h)
                    .await?
                    .map_or(About::Nothing, |h| About::Host {
                        name: h.name,
                        address: h.address,
                        port: h.port,
                    })
            }
            (None, Some(u)) => url_checks::find(&self.db, u)
                .await?
                .map_or(About::Nothing, |c| About::UrlCheck {
                    name: c.name,
                    url: c.url,
                }),
            _ => About::Nothing,
        };
        Ok(Some(Message {
            notification: n,
            about,
            test: false,
        }))
    }

    /// Sends a test message through channel `id` now (not through the outbox).
    pub async fn test_channel(&self, id: i64) -> Result<TestOutcome> {
        let row = channels::get(&self.db, id).await?;
        let settings = channels::settings_of(&self.secrets, &row)?;
        let msg = Message {
            notification: notification::Model {
                id: 0,
                host_id: None,
                url_check_id: None,
                kind: AlertKind::Threshold,
                metric: None,
                label: None,
                level: Level::Info,
                state: NotificationState::Firing,
                event: None,
                value: None,
                threshold: None,
                title: format!("hostwatch test message for channel {}", row.name),
                message: "If you can read this, hostwatch can deliver notifications here.".into(),
                created_at: now_ms(),
                read_at: None,
                alert_id: None,
                silence_id: None,
                maintenance_id: None,
            },
            about: About::Nothing,
            test: true,
        };
        let started = Instant::now();
        let result = self.sender.send(&settings, &msg).await;
        Ok(TestOutcome {
            ok: result.is_ok(),
            error: result.err(),
            duration: started.elapsed(),
        })
    }
}
