//! The composition root: the running service's parts, built once and shared by the HTTP API,
//! the `serve` command, the benchmark and the tests — and its one shutdown.
//!
//! Every task the service spawns belongs to its task tracker and watches its one cancellation
//! token. [`Services::shutdown`] stops them in an order that loses nothing: the scheduler
//! starts no more polls and waits for those in flight, the poll writer stores what is queued
//! and ends, the newest snapshots are written, the remaining tasks (deliveries under way, which
//! record their outcome; background enrollments stop) get a bounded time to end, and the
//! database closes last.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    crypto::SecretBox,
    delivery::worker::{DeliveryService, DeliverySettings},
    error::Result,
    poller::{Poller, PollerSettings},
    registry::Registry,
    scheduler::PollScheduler,
    store::{self, notifications::NotificationHub},
    urlcheck::{runner::SystemResolver, service::UrlCheckService},
};

/// How much longer than a delivery's own deadline shutdown waits for the tasks left once
/// polling and storing have stopped (deliveries under way, which then record their outcome)
/// before it closes the database anyway.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);

/// The service's parts. Cheap to clone: every part is shared.
#[derive(Clone, Debug)]
pub struct Services {
    pub db: DatabaseConnection,
    pub secrets: Arc<SecretBox>,
    /// Wakes long-polls when notifications are written.
    pub hub: NotificationHub,
    /// The only way anything reaches a host over SSH.
    pub poller: Arc<Poller>,
    /// The only way anything changes a host or a URL check.
    pub registry: Arc<Registry>,
    pub url_checks: Arc<UrlCheckService>,
    /// Sends the notification outbox.
    pub delivery: Arc<DeliveryService>,
    lifecycle: Arc<Lifecycle>,
}

/// What shutdown needs: the token every task watches, the tracker that owns them, and the
/// poll writer's task, joined on its own.
#[derive(Debug, Default)]
struct Lifecycle {
    stop: CancellationToken,
    tasks: TaskTracker,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// How long shutdown waits for the last tasks.
    drain: Duration,
}

impl Services {
    /// The service over `db` with its poll writer running (nothing else yet: see
    /// [`Services::run_scheduler`], [`Services::run_delivery`], [`Services::run_retention`]).
    pub fn start(db: DatabaseConnection, secrets: SecretBox, settings: PollerSettings) -> Self {
        Self::start_with_delivery(db, secrets, settings, DeliverySettings::default())
    }

    /// [`Services::start`] with chosen delivery settings.
    pub fn start_with_delivery(
        db: DatabaseConnection,
        secrets: SecretBox,
        settings: PollerSettings,
        delivery: DeliverySettings,
    ) -> Self {
        let services = Self::build(db, secrets, settings, delivery);
        let writer = services
            .lifecycle
            .tasks
            .spawn(services.poller.start_writer());
        *services.lifecycle.writer.lock().expect("not poisoned") = Some(writer);
        services
    }

    /// The parts with nothing running: what describing the API needs (no runtime, no
    /// database).
    pub(crate) fn unstarted() -> Self {
        Self::build(
            DatabaseConnection::default(),
            SecretBox::new(&[0; 32]),
            PollerSettings::default(),
            DeliverySettings::default(),
        )
    }

    fn build(
        db: DatabaseConnection,
        secrets: SecretBox,
        settings: PollerSettings,
        delivery: DeliverySettings,
    ) -> Self {
        let secrets = Arc::new(secrets);
        let hub = NotificationHub::default();
        let lifecycle = Arc::new(Lifecycle {
            drain: delivery.timeout + DRAIN_MARGIN,
            ..Default::default()
        });
        let poller = Arc::new(Poller::new(
            db.clone(),
            secrets.clone(),
            hub.clone(),
            settings,
        ));
        let registry = Arc::new(Registry::new(
            db.clone(),
            secrets.clone(),
            poller.clone(),
            lifecycle.tasks.clone(),
            lifecycle.stop.clone(),
        ));
        let url_checks = Arc::new(UrlCheckService::new(
            db.clone(),
            hub.clone(),
            Arc::new(SystemResolver),
        ));
        // Building the HTTP client only fails on a broken TLS set-up, which is fixed at build time.
        let delivery = Arc::new(
            DeliveryService::new(
                db.clone(),
                secrets.clone(),
                hub.clone(),
                delivery,
                lifecycle.tasks.clone(),
                lifecycle.stop.clone(),
            )
            .expect("the delivery HTTP client builds"),
        );
        Self {
            db,
            secrets,
            hub,
            poller,
            registry,
            url_checks,
            delivery,
            lifecycle,
        }
    }

    /// The token every task of the service watches: cancelled when shutdown begins.
    pub fn stop_token(&self) -> CancellationToken {
        self.lifecycle.stop.clone()
    }

    /// Tasks of the service still running (0 once shutdown has drained them).
    pub fn running_tasks(&self) -> usize {
        self.lifecycle.tasks.len()
    }

    /// Polls every enabled host and runs every URL check on its schedule, at most
    /// `max_concurrent_polls` at once.
    pub async fn run_scheduler(&self, max_concurrent_polls: usize) -> Result<Arc<PollScheduler>> {
        let scheduler = PollScheduler::start(
            self.poller.clone(),
            self.url_checks.clone(),
            max_concurrent_polls,
            self.lifecycle.stop.child_token(),
            self.lifecycle.tasks.clone(),
        )
        .await?;
        self.registry.attach_scheduler(scheduler.clone());
        Ok(scheduler)
    }

    /// Sends the notification outbox until shutdown.
    pub fn run_delivery(&self) {
        self.lifecycle.tasks.spawn(self.delivery.clone().run());
    }

    /// Deletes history older than `retention` now and every ten minutes, until shutdown.
    pub fn run_retention(&self, retention: Duration) {
        let db = self.db.clone();
        let stop = self.lifecycle.stop.clone();
        self.lifecycle
            .tasks
            .spawn(retention_loop(db, retention, stop));
    }

    /// Stops everything in order (see the module's documentation) and closes the database.
    pub async fn shutdown(&self) -> Result<()> {
        let life = &self.lifecycle;
        life.stop.cancel();
        if let Some(scheduler) = self.registry.scheduler() {
            scheduler.shutdown().await;
        }
        self.poller.close_writer();
        let writer = life.writer.lock().expect("not poisoned").take();
        if let Some(writer) = writer
            && let Err(e) = writer.await
        {
            tracing::error!(error = %e, "the poll writer ended badly");
        }
        match self.poller.flush_newest().await {
            Ok(rows) => tracing::info!(rows, "latest snapshots written"),
            Err(e) => tracing::error!(error = %e, "could not write the latest snapshots"),
        }
        life.tasks.close();
        if tokio::time::timeout(life.drain, life.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = life.tasks.len(),
                "tasks still running after {:?}; closing the database anyway",
                life.drain
            );
        } else {
            tracing::info!("every task has ended");
        }
        self.db.clone().close().await?;
        Ok(())
    }
}

/// Deletes history older than `retention`, now and then every ten minutes, until `stop`.
async fn retention_loop(db: DatabaseConnection, retention: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let cutoff = store::now_ms() - retention.as_millis() as i64;
        match store::retention::purge(&db, cutoff).await {
            Ok(p) if p != Default::default() => tracing::info!(
                samples = p.samples,
                polls = p.polls,
                url_results = p.url_results,
                "retention purge"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
    }
}
