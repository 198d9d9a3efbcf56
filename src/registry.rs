//! The registry: the one place that changes what is monitored. Every write of a host, its
//! credentials, labels, thresholds or host key — and every change of a URL check — goes through
//! here, which also drops what the poller has cached about the host and brings its scheduled
//! job in line. No caller has to remember either, or the order they go in.

use std::sync::{Arc, OnceLock};

use entity::{enrollment_run, host_key, threshold, url_check};
use sea_orm::DatabaseConnection;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    crypto::SecretBox,
    error::Result,
    poller::{PollError, Poller},
    scheduler::{JobKey, PollScheduler},
    store::{
        hosts::{self, HostChanges, HostView, NewHost},
        thresholds::{self, Owner, ThresholdSettings},
        url_checks::{self, UrlCheckSettings},
    },
};

/// Changes hosts and URL checks, keeping the poller's cache and the schedule in line.
#[derive(Debug)]
pub struct Registry {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    poller: Arc<Poller>,
    /// Present once hosts are polled on their schedules (`serve`); absent in API-only uses.
    scheduler: OnceLock<Arc<PollScheduler>>,
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
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        Self {
            db,
            secrets,
            poller,
            scheduler: OnceLock::new(),
            tasks,
            stop,
        }
    }

    /// From now on, changes reach `scheduler` too.
    pub(crate) fn attach_scheduler(&self, scheduler: Arc<PollScheduler>) {
        if self.scheduler.set(scheduler).is_err() {
            tracing::warn!("a scheduler was already attached; the second is ignored");
        }
    }

    /// The scheduler, once hosts are polled on their schedules.
    pub fn scheduler(&self) -> Option<&Arc<PollScheduler>> {
        self.scheduler.get()
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
        let host_id = view.host.id;
        match self.scheduler() {
            Some(scheduler) if view.host.enabled => {
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
        Ok(view)
    }

    /// Applies a partial update of a host. A status such as `auth_failed` stays until a poll
    /// with the new settings proves otherwise.
    pub async fn update_host(&self, id: i64, changes: HostChanges) -> Result<HostView> {
        let view = hosts::update(&self.db, &self.secrets, id, changes).await?;
        self.poller.host_changed(id);
        self.sync(JobKey::Host(id)).await;
        Ok(view)
    }

    /// Deletes a host with everything recorded about it, its job and its connection.
    pub async fn delete_host(&self, id: i64) -> Result<()> {
        hosts::delete(&self.db, id).await?;
        self.sync(JobKey::Host(id)).await;
        self.poller.host_deleted(id).await;
        Ok(())
    }

    /// Sets (creates or replaces) one threshold of a host or URL check.
    pub async fn put_threshold(
        &self,
        owner: Owner,
        metric: &str,
        settings: &ThresholdSettings,
    ) -> Result<threshold::Model> {
        let row = thresholds::put(&self.db, owner, metric, settings).await?;
        if let Owner::Host(id) = owner {
            self.poller.host_changed(id);
        }
        Ok(row)
    }

    /// Accepts the key the host presents now as its only trusted key.
    pub async fn trust_host_key(&self, id: i64) -> Result<host_key::Model, PollError> {
        let key = self.poller.trust_host_key(id).await?;
        self.poller.host_changed(id);
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
        self.sync(JobKey::UrlCheck(id)).await;
        Ok(row)
    }

    /// Deletes a URL check with its results and its job.
    pub async fn delete_url_check(&self, id: i64) -> Result<()> {
        url_checks::delete(&self.db, id).await?;
        self.sync(JobKey::UrlCheck(id)).await;
        Ok(())
    }
}
