//! The registry: the one place that changes what is monitored. Every write of a host, its
//! credentials, labels, thresholds or host key — and every change of a URL check — goes through
//! here, which also drops what the poller has cached about the host and brings its scheduled
//! job in line. No caller has to remember either, or the order they go in.
//!
//! When several nodes share a database, each change is also written to the change log: the
//! leader follows the changes made through other nodes' APIs ([`Registry::follow`]) the same
//! way it applies its own.

use std::sync::{Arc, RwLock};

use entity::{
    config_change, enrollment_run, host_key, maintenance_window, threshold, threshold_rule,
    types::ChangeKind, url_check,
};
use sea_orm::DatabaseConnection;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    alerts::evaluate::Subject,
    crypto::SecretBox,
    error::Result,
    poller::{PollError, Poller},
    scheduler::{JobKey, PollScheduler},
    store::{
        self, alerts, cluster,
        hosts::{self, HostChanges, HostView, NewHost},
        maintenance::{self, WindowSettings},
        notifications::NotificationHub,
        thresholds::{self, Owner, RuleSettings, ThresholdSettings},
        url_checks::{self, UrlCheckSettings},
    },
};

/// A host after an update.
#[derive(Debug)]
pub struct Updated {
    pub view: HostView,
    /// Its connection was dropped and it is polled again at once with the new settings.
    pub redialled: bool,
}

/// Changes hosts and URL checks, keeping the poller's cache and the schedule in line.
#[derive(Debug)]
pub struct Registry {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    poller: Arc<Poller>,
    /// Told of the notifications a deletion writes.
    hub: NotificationHub,
    /// Present while hosts are polled on their schedules (`serve`, on the leader); absent in
    /// API-only uses and on a standby.
    scheduler: RwLock<Option<Arc<PollScheduler>>>,
    /// Where background work (an enrollment after registration) is spawned, and when it
    /// stops.
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Registry {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        poller: Arc<Poller>,
        hub: NotificationHub,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        Self {
            db,
            secrets,
            poller,
            hub,
            scheduler: RwLock::new(None),
            tasks,
            stop,
        }
    }

    /// From now on, changes reach `scheduler` too.
    pub(crate) fn attach_scheduler(&self, scheduler: Arc<PollScheduler>) {
        *self.scheduler.write().expect("not poisoned") = Some(scheduler);
    }

    /// Changes stop reaching the scheduler (it is being shut down); returns it.
    pub(crate) fn detach_scheduler(&self) -> Option<Arc<PollScheduler>> {
        self.scheduler.write().expect("not poisoned").take()
    }

    /// The scheduler, while hosts are polled on their schedules.
    pub fn scheduler(&self) -> Option<Arc<PollScheduler>> {
        self.scheduler.read().expect("not poisoned").clone()
    }

    /// This node's id, when it shares its database with other nodes.
    pub(crate) fn node_id(&self) -> Option<String> {
        self.poller.fence().node_id().map(str::to_owned)
    }

    /// Writes a change to the log the leader follows, when there are other nodes (a failure is
    /// logged: the change itself is committed, and the leader's next start reads it).
    async fn note(&self, kind: ChangeKind, id: i64) {
        let Some(node) = self.poller.fence().node_id() else {
            return;
        };
        if let Err(e) = cluster::note_change(&self.db, node, kind, id).await {
            tracing::error!(%kind, id, error = %e, "could not log a change for the other nodes");
        }
    }

    /// Applies a change made through another node's API.
    pub(crate) async fn follow(&self, change: &config_change::Model) {
        let id = change.target_id;
        match change.kind {
            ChangeKind::HostCreated => {
                self.poller.host_changed(id);
                match hosts::find(&self.db, id).await {
                    Ok(Some(host)) => self.start_new_host(host.id, host.enabled).await,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(host_id = id, error = %e, "could not read a new host")
                    }
                }
            }
            ChangeKind::Host => {
                self.poller.host_changed(id);
                self.sync(JobKey::Host(id)).await;
            }
            ChangeKind::HostRedial => {
                self.poller.redial(id).await;
                self.sync(JobKey::Host(id)).await;
                if let Some(s) = self.scheduler() {
                    s.run_now_if_scheduled(JobKey::Host(id)).await;
                }
            }
            ChangeKind::HostDeleted => {
                self.sync(JobKey::Host(id)).await;
                self.poller.host_deleted(id).await;
            }
            ChangeKind::UrlCheck => self.sync(JobKey::UrlCheck(id)).await,
            ChangeKind::ThresholdRules => self.poller.rules_changed(),
            ChangeKind::Maintenance => self.reload_maintenance().await,
        }
    }

    /// Brings a job in line with its row (a failure is logged: the row is changed either way,
    /// and the next change or restart schedules it).
    async fn sync(&self, key: JobKey) {
        if let Some(s) = self.scheduler()
            && let Err(e) = s.sync(key).await
        {
            tracing::error!(?key, error = %e, "could not update the schedule");
        }
    }

    /// Registers a host with its credentials, labels and default thresholds, then enrolls it
    /// in the background: with a scheduler an enabled host is enrolled and polled at once; a
    /// host registered disabled (or without a scheduler) is only enrolled — its key pinned, its
    /// login tried — until it is enabled.
    pub async fn create_host(&self, new: NewHost) -> Result<HostView> {
        let view = hosts::create(&self.db, &self.secrets, new).await?;
        self.note(ChangeKind::HostCreated, view.host.id).await;
        self.start_new_host(view.host.id, view.host.enabled).await;
        Ok(view)
    }

    /// Schedules, enrolls and polls a new host — on the leader; a standby leaves that to it.
    async fn start_new_host(&self, host_id: i64, enabled: bool) {
        if !self.poller.fence().is_leader() {
            return;
        }
        match self.scheduler() {
            Some(scheduler) if enabled => {
                self.sync(JobKey::Host(host_id)).await;
                scheduler.run_now(JobKey::Host(host_id));
            }
            _ if self.poller.settings().enroll_on_create => {
                let (poller, stop) = (self.poller.clone(), self.stop.clone());
                self.tasks.spawn(async move {
                    // Stopped by shutdown, it leaves no run: the host is enrolled at its first
                    // poll after the next start.
                    tokio::select! {
                        result = poller.enroll(host_id, true) => {
                            if let Err(err) = result {
                                tracing::warn!(host_id, error = %crate::logs::Untrusted(&err), "enrollment did not run");
                            }
                        }
                        () = stop.cancelled() => {}
                    }
                });
            }
            _ => {}
        }
    }

    /// Applies a partial update of a host. When what it is dialled with changed (address,
    /// port, login, credentials) its connection is dropped with the back-off of the old
    /// settings and it is polled at once (on the leader; a standby's change reaches the leader
    /// through the change log): `redialled` says so. A status such as `auth_failed` stays until
    /// that poll proves otherwise.
    pub async fn update_host(&self, id: i64, changes: HostChanges) -> Result<Updated> {
        let redial = changes.address.is_some()
            || changes.port.is_some()
            || changes.username.is_some()
            || changes.credential.is_some();
        let view = hosts::update(&self.db, &self.secrets, id, changes).await?;
        self.poller.host_changed(id);
        self.sync(JobKey::Host(id)).await;
        let kind = if redial {
            ChangeKind::HostRedial
        } else {
            ChangeKind::Host
        };
        self.note(kind, id).await;
        if redial && self.poller.fence().is_leader() {
            self.poller.redial(id).await;
            if let Some(s) = self.scheduler() {
                s.run_now_if_scheduled(JobKey::Host(id)).await;
            }
        }
        let redialled = redial && view.host.enabled;
        Ok(Updated { view, redialled })
    }

    /// Deletes a host with everything recorded about it, its job and its connection; each of
    /// its alerts that was not ok resolves with a notification saying so.
    pub async fn delete_host(&self, id: i64) -> Result<()> {
        let txn = store::begin_write(&self.db).await?;
        let gone = alerts::before_delete(&txn, Subject::Host(id)).await?;
        hosts::delete(&txn, id).await?;
        let written = alerts::resolve_deleted(&txn, gone, "host").await?;
        txn.commit().await?;
        for n in &written {
            self.hub.publish(n);
        }
        self.note(ChangeKind::HostDeleted, id).await;
        self.sync(JobKey::Host(id)).await;
        self.poller.host_deleted(id).await;
        Ok(())
    }

    /// Sets (creates or replaces) one threshold of a host or URL check.
    pub async fn put_threshold(
        &self,
        owner: Owner,
        metric: &str,
        label: &str,
        settings: &ThresholdSettings,
    ) -> Result<threshold::Model> {
        let txn = store::begin_write(&self.db).await?;
        let row = thresholds::put(&txn, owner, metric, label, settings).await?;
        txn.commit().await?;
        self.threshold_changed(owner).await;
        Ok(row)
    }

    /// Deletes a host's or URL check's own threshold: the inherited one applies again.
    pub async fn delete_threshold(&self, owner: Owner, metric: &str, label: &str) -> Result<bool> {
        let deleted = thresholds::delete(&self.db, owner, metric, label).await?;
        self.threshold_changed(owner).await;
        Ok(deleted)
    }

    async fn threshold_changed(&self, owner: Owner) {
        if let Owner::Host(id) = owner {
            self.poller.host_changed(id);
            self.note(ChangeKind::Host, id).await;
        }
    }

    /// Creates a fleet-wide threshold rule; every host's rules are read again.
    pub async fn create_rule(
        &self,
        settings: RuleSettings,
        created_by: String,
    ) -> Result<threshold_rule::Model> {
        let row = thresholds::create_rule(&self.db, settings, created_by).await?;
        self.rules_changed(row.id).await;
        Ok(row)
    }

    /// Replaces a fleet-wide threshold rule.
    pub async fn update_rule(
        &self,
        id: i64,
        settings: RuleSettings,
    ) -> Result<threshold_rule::Model> {
        let row = thresholds::update_rule(&self.db, id, settings).await?;
        self.rules_changed(id).await;
        Ok(row)
    }

    /// Deletes a fleet-wide threshold rule.
    pub async fn delete_rule(&self, id: i64) -> Result<()> {
        thresholds::delete_rule(&self.db, id).await?;
        self.rules_changed(id).await;
        Ok(())
    }

    async fn rules_changed(&self, id: i64) {
        self.poller.rules_changed();
        self.note(ChangeKind::ThresholdRules, id).await;
    }

    /// Creates a maintenance window; the calendar is read again.
    pub async fn create_window(
        &self,
        settings: WindowSettings,
        created_by: String,
    ) -> Result<maintenance_window::Model> {
        let row = maintenance::create(&self.db, settings, created_by).await?;
        self.window_changed(row.id).await;
        Ok(row)
    }

    /// Replaces a maintenance window.
    pub async fn update_window(
        &self,
        id: i64,
        settings: WindowSettings,
    ) -> Result<maintenance_window::Model> {
        let row = maintenance::update(&self.db, id, settings).await?;
        self.window_changed(id).await;
        Ok(row)
    }

    /// Deletes a maintenance window.
    pub async fn delete_window(&self, id: i64) -> Result<()> {
        maintenance::delete(&self.db, id).await?;
        self.window_changed(id).await;
        Ok(())
    }

    async fn window_changed(&self, id: i64) {
        self.reload_maintenance().await;
        self.note(ChangeKind::Maintenance, id).await;
    }

    /// Reads the maintenance windows again (a failure is logged; the next change or start
    /// reads them).
    pub(crate) async fn reload_maintenance(&self) {
        if let Err(e) = self.poller.reload_maintenance().await {
            tracing::error!(error = %e, "could not read the maintenance windows");
        }
    }

    /// Accepts the key the host presents now as its only trusted key.
    pub async fn trust_host_key(&self, id: i64) -> Result<host_key::Model, PollError> {
        let key = self.poller.trust_host_key(id).await?;
        self.poller.host_changed(id);
        self.note(ChangeKind::Host, id).await;
        self.sync(JobKey::Host(id)).await;
        Ok(key)
    }

    /// Runs enrollment again now.
    pub async fn enroll(&self, id: i64) -> Result<enrollment_run::Model, PollError> {
        self.poller.enroll(id, true).await
    }

    /// Creates a URL check and schedules it.
    pub async fn create_url_check(&self, settings: UrlCheckSettings) -> Result<url_check::Model> {
        let row = url_checks::create(&self.db, settings).await?;
        self.note(ChangeKind::UrlCheck, row.id).await;
        self.sync(JobKey::UrlCheck(row.id)).await;
        Ok(row)
    }

    /// Replaces a URL check's settings and re-schedules it.
    pub async fn update_url_check(
        &self,
        id: i64,
        settings: UrlCheckSettings,
    ) -> Result<url_check::Model> {
        let row = url_checks::update(&self.db, id, settings).await?;
        self.note(ChangeKind::UrlCheck, id).await;
        self.sync(JobKey::UrlCheck(id)).await;
        Ok(row)
    }

    /// Deletes a URL check with its results and its job; its alerts resolve as a host's do.
    pub async fn delete_url_check(&self, id: i64) -> Result<()> {
        let txn = store::begin_write(&self.db).await?;
        let gone = alerts::before_delete(&txn, Subject::UrlCheck(id)).await?;
        url_checks::delete(&txn, id).await?;
        let written = alerts::resolve_deleted(&txn, gone, "URL check").await?;
        txn.commit().await?;
        for n in &written {
            self.hub.publish(n);
        }
        self.note(ChangeKind::UrlCheck, id).await;
        self.sync(JobKey::UrlCheck(id)).await;
        Ok(())
    }
}
