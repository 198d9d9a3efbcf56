//! The link to a host: what both polling and enrollment need to talk to it. It turns a host's
//! rows into a dial target (decrypting its login, choosing its host-key policy), runs a script
//! over the host's pooled connection before a deadline, pins the key the host presents (trust on
//! first use), and moves the host in and out of the failure statuses that SSH errors imply,
//! with their notifications.

use std::{sync::Arc, time::Duration};

use entity::{
    host,
    types::{AlertKind, Event, HostStatus, Level, PollErrorKind},
};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use super::{PollError, Prepared, cache::HostCache};
use crate::{
    alerts::{
        evaluate::{AlertKey, Notice, Subject},
        text,
    },
    crypto::SecretBox,
    error::Error,
    logs::Untrusted,
    ssh::{
        client::{self, Auth, HostKeyPolicy, SshError, Target},
        keys::{self, fingerprint},
        pool::{ConnIdentity, Finish, Job, PoolError, PoolRun, SshPool},
    },
    store::{
        alerts,
        cluster::Fence,
        notifications::NotificationHub,
        ssh::{self as ssh_store, SeenKey},
    },
};

/// How often a pinned key's `last_seen_at` is refreshed.
const KEY_SEEN_REFRESH: Duration = Duration::from_secs(3600);

/// The SSH side of every host: connections, targets, keys and failure statuses.
#[derive(Debug)]
pub(crate) struct Link {
    pub db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    pub pool: SshPool,
    pub hub: NotificationHub,
    pub cache: HostCache,
    /// What its writes need: only the leader stores what hosts said.
    pub fence: Fence,
    /// Most bytes of script output accepted.
    output_cap: usize,
}

/// A presented key in storable form.
pub(super) fn seen_key(key: &russh::keys::PublicKey) -> SeenKey {
    SeenKey {
        algorithm: key.algorithm().as_str().to_owned(),
        public_key: key.to_openssh().unwrap_or_default(),
        fingerprint: fingerprint(key),
    }
}

impl Link {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        hub: NotificationHub,
        output_cap: usize,
        fence: Fence,
    ) -> Self {
        Self {
            db,
            secrets,
            pool: SshPool::default(),
            hub,
            cache: HostCache::default(),
            fence,
            output_cap,
        }
    }

    /// The master key's box, for the service's own key.
    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    /// The host's target, from memory when nothing changed since it was last read.
    pub async fn prepared(&self, host_id: i64) -> Result<Arc<Prepared>, PollError> {
        if let Some(hit) = self.cache.read(host_id, |e| e.target.clone()) {
            return Ok(hit);
        }
        let generation = self.cache.generation(host_id);
        let loaded = Arc::new(self.prepare(host_id).await?);
        self.cache
            .update_unless_invalidated(host_id, generation, |e| e.target = Some(loaded.clone()));
        Ok(loaded)
    }

    /// Records in the cached host that a poll cleared its status message (an enrolled host's
    /// "enrolled"), as its row now says; else every later poll would find a status to clear
    /// and write the host's rows. Cheaper than dropping the entry: nothing is read again.
    pub fn message_cleared(&self, prepared: &Arc<Prepared>) {
        self.cache.update_existing(prepared.host.id, |e| {
            // An entry replaced or dropped since (the host was edited) is left as it is.
            if let Some(cached) = &mut e.target
                && Arc::ptr_eq(cached, prepared)
            {
                let mut host = prepared.host.clone();
                host.status_message = None;
                *cached = Arc::new(Prepared {
                    host,
                    labels: prepared.labels.clone(),
                    target: prepared.target.clone(),
                    identity: prepared.identity.clone(),
                });
            }
        });
    }

    /// Loads a host, decrypts its login and works out the host-key policy.
    pub async fn prepare(&self, host_id: i64) -> Result<Prepared, PollError> {
        let host = crate::store::hosts::find(&self.db, host_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no host with id {host_id}")))?;
        let login = ssh_store::login(&self.db, &self.secrets, host_id).await?;
        let auth = match (&login.private_key, &login.password) {
            (Some(key), _) => {
                let key =
                    keys::decode_private_key(key, login.passphrase.as_deref().map(String::as_str))
                        .map_err(|e| {
                            Error::Secret(format!("stored private key of host {host_id}: {e}"))
                        })?;
                Auth::Key(Arc::new(key))
            }
            (None, Some(password)) => Auth::Password(Arc::new(password.clone())),
            (None, None) => {
                return Err(
                    Error::NotFound(format!("host {host_id} has no usable credentials")).into(),
                );
            }
        };
        let trusted = ssh_store::trusted_key(&self.db, host_id).await?;
        let host_key = match (&trusted, &host.expected_host_key_fingerprint) {
            (Some(k), _) => HostKeyPolicy::Fingerprint(k.fingerprint.clone()),
            (None, Some(fp)) => HostKeyPolicy::Fingerprint(fp.clone()),
            (None, None) => HostKeyPolicy::AnyKey,
        };
        let port = u16::try_from(host.port).unwrap_or(22);
        let identity = ConnIdentity {
            address: host.address.clone(),
            port,
            username: host.username.clone(),
            credential_id: login.credential_id,
            credential_updated_at: login.updated_at,
            expected_fingerprint: host.expected_host_key_fingerprint.clone(),
        };
        let target = Target {
            address: host.address.clone(),
            port,
            username: host.username.clone(),
            auth,
            host_key,
        };
        let labels = crate::store::thresholds::host_labels(&self.db, host_id).await?;
        Ok(Prepared {
            host,
            labels,
            target,
            identity,
        })
    }

    /// Runs a script on a prepared host, connecting within `connect` and finishing by
    /// `finish`, recording the key it presented; a failure moves the host into the status it
    /// implies.
    pub async fn run(
        &self,
        p: &Prepared,
        script: &[u8],
        connect: Duration,
        finish: Finish,
        force: bool,
    ) -> Result<PoolRun, PollError> {
        let job = Job {
            script,
            cap: self.output_cap,
            connect_by: tokio::time::Instant::now() + connect,
            finish_by: finish,
            force,
        };
        match self.pool.run(p.host.id, &p.target, &p.identity, job).await {
            Ok(run) => {
                self.key_seen(p.host.id, &run).await?;
                Ok(run)
            }
            Err(err) => {
                self.on_failure(p, &err).await?;
                Err(PollError::Host {
                    kind: err.kind(),
                    message: err.to_string(),
                })
            }
        }
    }

    /// Pins the first key seen after a successful login, and refreshes its `last_seen_at`
    /// now and then.
    async fn key_seen(&self, host_id: i64, run: &PoolRun) -> Result<(), PollError> {
        let seen = seen_key(&run.host_key);
        let fresh = self.cache.read(host_id, |e| {
            e.key_seen
                .as_ref()
                .is_some_and(|(fp, at)| *fp == seen.fingerprint && at.elapsed() < KEY_SEEN_REFRESH)
        });
        if !fresh {
            ssh_store::record_key(&self.db, host_id, &seen, true).await?;
            let entry = (seen.fingerprint, std::time::Instant::now());
            self.cache.update(host_id, |e| e.key_seen = Some(entry));
        }
        Ok(())
    }

    /// Status and notifications for a failed SSH operation, in one transaction.
    async fn on_failure(&self, p: &Prepared, err: &PoolError) -> Result<(), Error> {
        if matches!(err, PoolError::Backoff(..)) {
            return Ok(());
        }
        let txn = self.fence.begin(&self.db).await?;
        let written = self.failure_status(&txn, p, err).await?;
        txn.commit().await?;
        if let Some(row) = written {
            self.hub.publish(&row);
        }
        Ok(())
    }

    /// What [`Link::on_failure`] writes; returns the notification it wrote, if any.
    async fn failure_status(
        &self,
        db: &DatabaseTransaction,
        p: &Prepared,
        err: &PoolError,
    ) -> Result<Option<entity::notification::Model>, Error> {
        let host = &p.host;
        match err {
            PoolError::Ssh(SshError::HostKeyMismatch { presented, .. }) => {
                tracing::warn!(
                    host_id = host.id,
                    host = %Untrusted(&host.name),
                    error = %Untrusted(err),
                    "host key changed; polls are refused until it is trusted again"
                );
                ssh_store::record_key(db, host.id, &seen_key(presented), false).await?;
                let (title, body) =
                    text::status::key_changed(&host.name, p.place(), host.id, &err.to_string());
                enter_status(
                    db,
                    host,
                    HostStatus::HostKeyMismatch,
                    err.to_string(),
                    title,
                    body,
                )
                .await
            }
            PoolError::Ssh(SshError::AuthFailed(reason)) => {
                if host.status != HostStatus::AuthFailed {
                    tracing::warn!(
                        host_id = host.id,
                        host = %Untrusted(&host.name),
                        error = %Untrusted(err),
                        "login refused"
                    );
                }
                let (title, body) =
                    text::status::login_refused(&host.name, p.place(), host.id, reason);
                enter_status(
                    db,
                    host,
                    HostStatus::AuthFailed,
                    err.to_string(),
                    title,
                    body,
                )
                .await
            }
            _ => {
                if !host.status.is_alerting() {
                    log_unreachable(host, err);
                    ssh_store::set_status(
                        db,
                        host.id,
                        HostStatus::Unreachable,
                        Some(err.to_string()),
                    )
                    .await?;
                }
                Ok(None)
            }
        }
    }

    /// Leaves a failure status that is an alert of its own: writes its resolution.
    pub async fn leave_status(
        &self,
        host: &host::Model,
        (title, message): (String, String),
    ) -> Result<(), Error> {
        if let Some(kind) = AlertKind::of_status(host.status) {
            // The resolution carries the level that was firing, so a client following
            // level=critical sees both ends.
            let key = AlertKey::new(Subject::Host(host.id), kind, "", "");
            self.notify(Notice::new(
                key,
                kind.status_level(),
                Event::Resolved,
                title,
                message,
            ))
            .await?;
        }
        Ok(())
    }

    /// Writes a notification (only the leader writes them) and tells the hub.
    pub async fn notify(&self, n: Notice) -> Result<(), Error> {
        let txn = self.fence.begin(&self.db).await?;
        let row = alerts::notify(&txn, n).await?;
        txn.commit().await?;
        if let Some(row) = row {
            self.hub.publish(&row);
        }
        Ok(())
    }

    /// Resolves the host's status-like alert of `kind` when it fires (an enrollment that
    /// worked after one that failed).
    pub async fn resolve(
        &self,
        host: &host::Model,
        kind: AlertKind,
        (title, message): (String, String),
    ) -> Result<(), Error> {
        let key = AlertKey::new(Subject::Host(host.id), kind, "", "");
        self.notify(Notice::new(
            key,
            kind.status_level(),
            Event::Resolved,
            title,
            message,
        ))
        .await
    }

    /// Accepts the key the host presents now as its only trusted key, and clears a
    /// `host_key_mismatch` status.
    pub async fn trust_host_key(
        &self,
        host_id: i64,
        timeout: Duration,
    ) -> Result<entity::host_key::Model, PollError> {
        let mut prepared = self.prepare(host_id).await?;
        prepared.target.host_key = HostKeyPolicy::AnyKey;
        let session = tokio::time::timeout(timeout, client::connect(&prepared.target, false))
            .await
            .map_err(|_| PollError::Host {
                kind: PollErrorKind::Timeout,
                message: format!("no SSH handshake within {timeout:?}"),
            })?
            .map_err(|e| PollError::Host {
                kind: e.kind(),
                message: e.to_string(),
            })?;
        let key = seen_key(&session.host_key);
        session.close().await;
        let row = ssh_store::trust_only(&self.db, host_id, &key).await?;
        if prepared.host.status == HostStatus::HostKeyMismatch {
            ssh_store::set_status(
                &self.db,
                host_id,
                HostStatus::Pending,
                Some(format!(
                    "host key {} trusted; waiting for the next poll",
                    key.fingerprint
                )),
            )
            .await?;
            self.leave_status(
                &prepared.host,
                text::status::key_trusted(&prepared.host.name, &key.fingerprint),
            )
            .await?;
        }
        // After every write: a poll meanwhile must not cache the rows from before.
        self.forget_connection(host_id).await;
        Ok(row)
    }

    /// Drops the host's cached rows and its connection (its login or key changed).
    pub async fn forget_connection(&self, host_id: i64) {
        self.cache.invalidate(host_id);
        self.pool.forget(host_id).await;
    }
}

/// Logs that a host is going `unreachable` (once: not when it already is). Every way a poll
/// can lose its host (a dial, a connection ending mid-probe) logs through here, so the log
/// names each host that went unreachable.
pub(super) fn log_unreachable(host: &host::Model, err: &impl std::fmt::Display) {
    if host.status != HostStatus::Unreachable {
        tracing::warn!(
            host_id = host.id,
            host = %Untrusted(&host.name),
            error = %Untrusted(err),
            "host unreachable"
        );
    }
}

/// Moves a host into a failure status that is an alert of its own, with a critical
/// notification on the transition only (returned, to publish once committed).
async fn enter_status(
    db: &DatabaseTransaction,
    host: &host::Model,
    status: HostStatus,
    message: String,
    title: String,
    body: String,
) -> Result<Option<entity::notification::Model>, Error> {
    ssh_store::set_status(db, host.id, status, Some(message)).await?;
    if host.status != status
        && let Some(kind) = AlertKind::of_status(status)
    {
        let key = AlertKey::new(Subject::Host(host.id), kind, "", "");
        let n = Notice::new(key, Level::Critical, Event::Fired, title, body);
        return alerts::notify(db, n).await;
    }
    Ok(None)
}
