//! The composition root: the running service's parts, built once and shared by the HTTP API,
//! the `serve` command, the benchmark and the tests — and its one shutdown.
//!
//! Every task the service spawns belongs to its task tracker and watches its one cancellation
//! token. [`Services::shutdown`] stops them in an order that loses nothing: the scheduler
//! starts no more polls and waits for those in flight, the poll writer stores what is queued
//! and ends, the newest snapshots are written, the remaining tasks (deliveries under way, which
//! record their outcome; background enrollments stop) get a bounded time to end, and the
//! database closes last.
//!
//! The leader-only workers (scheduler, delivery, retention, following other nodes' changes)
//! run for a term: [`Services::lead`] starts them, [`Services::step_down`] stops them when the
//! node loses the lease, and a later term starts them afresh.

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
    store::{
        self,
        cluster::{Fence, NodeInfo},
        notifications::NotificationHub,
    },
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
    /// The leader's workers, while this node leads.
    term: tokio::sync::Mutex<Option<Term>>,
    /// Who this node is, and its lease period when it shares the database (`serve` only).
    node: std::sync::OnceLock<(NodeInfo, Option<Duration>)>,
}

/// What the leader runs.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub max_concurrent_polls: usize,
    /// How long each history tier is kept.
    pub retention: crate::tiers::Retention,
    /// How often the leader reads the changes other nodes made (when it shares the database).
    pub follow_every: Duration,
}

/// The workers of one term as leader.
#[derive(Debug)]
struct Term {
    stop: CancellationToken,
    scheduler: Arc<PollScheduler>,
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
        Self::start_fenced(db, secrets, settings, delivery, Fence::sole())
    }

    /// [`Services::start_with_delivery`] for one of several nodes on a database: leader-only
    /// work and its writes need `fence`.
    pub fn start_fenced(
        db: DatabaseConnection,
        secrets: SecretBox,
        settings: PollerSettings,
        delivery: DeliverySettings,
        fence: Fence,
    ) -> Self {
        let services = Self::build(db, secrets, settings, delivery, fence);
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
            Fence::sole(),
        )
    }

    fn build(
        db: DatabaseConnection,
        secrets: SecretBox,
        settings: PollerSettings,
        delivery: DeliverySettings,
        fence: Fence,
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
            fence.clone(),
        ));
        let registry = Arc::new(Registry::new(
            db.clone(),
            secrets.clone(),
            poller.clone(),
            hub.clone(),
            lifecycle.tasks.clone(),
            lifecycle.stop.clone(),
        ));
        let url_checks = Arc::new(UrlCheckService::new(
            db.clone(),
            hub.clone(),
            Arc::new(SystemResolver),
            fence.clone(),
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
                fence,
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

    /// Names this node (`serve`): `GET /cluster` shows it, and shutdown removes its row and
    /// gives its lease up.
    pub fn set_node(&self, node: NodeInfo, lease_period: Option<Duration>) {
        let _ = self.lifecycle.node.set((node, lease_period));
    }

    /// This node and its lease period (`None` for the only process on its database), when it
    /// was named.
    pub fn node(&self) -> Option<&(NodeInfo, Option<Duration>)> {
        self.lifecycle.node.get()
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
    /// `max_concurrent_polls` at once, until shutdown.
    pub async fn run_scheduler(&self, max_concurrent_polls: usize) -> Result<Arc<PollScheduler>> {
        self.start_scheduler(max_concurrent_polls, self.lifecycle.stop.child_token())
            .await
    }

    async fn start_scheduler(
        &self,
        max_concurrent_polls: usize,
        stop: CancellationToken,
    ) -> Result<Arc<PollScheduler>> {
        self.registry.reload_maintenance().await;
        let scheduler = PollScheduler::start(
            self.poller.clone(),
            self.url_checks.clone(),
            max_concurrent_polls,
            stop,
            self.lifecycle.tasks.clone(),
        )
        .await?;
        self.registry.attach_scheduler(scheduler.clone());
        Ok(scheduler)
    }

    /// Sends the notification outbox until shutdown.
    pub fn run_delivery(&self) {
        let stop = self.lifecycle.stop.clone();
        self.lifecycle.tasks.spawn(self.delivery.clone().run(stop));
    }

    /// Deletes history older than its tier's retention now and every ten minutes, until
    /// shutdown.
    pub fn run_retention(&self, retention: crate::tiers::Retention) {
        let db = self.db.clone();
        let stop = self.lifecycle.stop.clone();
        self.lifecycle
            .tasks
            .spawn(retention_loop(db, retention, stop));
    }

    /// Starts a term as leader: the scheduler, delivery, retention and (when this node shares
    /// its database) following the changes other nodes make, until [`Services::step_down`] or
    /// shutdown. What this node cached as a standby is dropped first.
    pub async fn lead(&self, workers: WorkerSettings) -> Result<()> {
        let mut term = self.lifecycle.term.lock().await;
        if term.is_some() {
            return Ok(());
        }
        let stop = self.lifecycle.stop.child_token();
        self.poller.forget_all();
        // Read before the scheduler loads the rows: a change committed in between is followed.
        let shared = !self.poller.fence().is_sole();
        let followed_from = if shared {
            store::cluster::last_change_id(&self.db).await?
        } else {
            0
        };
        let scheduler = self
            .start_scheduler(workers.max_concurrent_polls, stop.child_token())
            .await?;
        let tasks = &self.lifecycle.tasks;
        tasks.spawn(self.delivery.clone().run(stop.clone()));
        tasks.spawn(retention_loop(
            self.db.clone(),
            workers.retention,
            stop.clone(),
        ));
        if shared {
            tasks.spawn(follow_changes(
                self.registry.clone(),
                self.db.clone(),
                followed_from,
                workers.follow_every,
                stop.clone(),
            ));
        }
        *term = Some(Term { stop, scheduler });
        Ok(())
    }

    /// Ends the term as leader: no more polls start, those in flight end (their writes are
    /// refused once the lease is gone), delivery stops, and every SSH connection closes.
    pub async fn step_down(&self) {
        let Some(term) = self.lifecycle.term.lock().await.take() else {
            return;
        };
        term.stop.cancel();
        self.registry.detach_scheduler();
        term.scheduler.shutdown().await;
        self.poller.disconnect_all().await;
    }

    /// Whether this node runs the leader's workers now.
    pub async fn leading(&self) -> bool {
        self.lifecycle.term.lock().await.is_some()
    }

    /// Stops everything in order (see the module's documentation) and closes the database.
    pub async fn shutdown(&self) -> Result<()> {
        let life = &self.lifecycle;
        life.stop.cancel();
        let term = life.term.lock().await.take();
        if let Some(term) = term {
            self.registry.detach_scheduler();
            term.scheduler.shutdown().await;
        } else if let Some(scheduler) = self.registry.detach_scheduler() {
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
        if let Some((node, _)) = life.node.get() {
            // Handed over now rather than when it expires: a standby takes over at its next
            // look.
            if let Some(epoch) = self.poller.fence().epoch() {
                self.poller.fence().lose();
                if let Err(e) = store::cluster::release(&self.db, &node.node_id, epoch).await {
                    tracing::warn!(error = %e, "could not give the lease up");
                }
            }
            if let Err(e) = store::cluster::remove_node(&self.db, &node.node_id).await {
                tracing::warn!(error = %e, "could not remove this node's row");
            }
        }
        self.db.clone().close().await?;
        Ok(())
    }
}

/// How long the change log keeps a change: far longer than any node takes to read it.
const CHANGES_KEPT: Duration = Duration::from_secs(3600);

/// Applies the changes other nodes' APIs make, read every `every` from after `after_id`, until
/// `stop`; prunes old ones now and then.
async fn follow_changes(
    registry: Arc<Registry>,
    db: DatabaseConnection,
    mut after_id: i64,
    every: Duration,
    stop: CancellationToken,
) {
    let Some(me) = registry.node_id() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        rounds += 1;
        match store::cluster::changes_after(&db, after_id, 500).await {
            Ok(changes) => {
                for change in changes {
                    after_id = change.id;
                    if change.node_id != me {
                        registry.follow(&change).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the change log"),
        }
        if rounds.is_multiple_of(600) {
            let before = store::now_ms() - CHANGES_KEPT.as_millis() as i64;
            if let Err(e) = store::cluster::prune_changes(&db, before).await {
                tracing::warn!(error = %e, "could not prune the change log");
            }
        }
    }
}

/// Deletes history older than its tier's retention, now and then every ten minutes, until
/// `stop`.
async fn retention_loop(
    db: DatabaseConnection,
    retention: crate::tiers::Retention,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = store::now_ms();
        let before = |d: Duration| now - d.as_millis() as i64;
        let cutoffs = store::retention::Cutoffs {
            raw: before(retention.raw),
            minute: before(retention.minute),
            ten_minutes: before(retention.ten_minutes),
            hour: before(retention.hour),
            url_results: before(retention.url_results),
        };
        if let Err(e) = store::sessions::prune(&db).await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
        match store::retention::purge(&db, &cutoffs).await {
            Ok(p) if p != Default::default() => tracing::info!(
                polls = p.polls,
                buckets_1m = p.buckets[0],
                buckets_10m = p.buckets[1],
                buckets_1h = p.buckets[2],
                url_results = p.url_results,
                "retention purge"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
    }
}
