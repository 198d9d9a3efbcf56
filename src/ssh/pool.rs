//! One persistent, authenticated connection per host, reused by every poll.
//!
//! Each host has a slot guarded by its own lock, so hosts never wait on each other and a host's
//! polls never overlap. A connection that died (closed, keepalives unanswered, exec failing) is
//! re-dialled once within the same poll; a host whose dials keep failing is re-dialled with
//! exponential backoff rather than on every poll. Changing a host's address, login or key (its
//! "identity") drops the old connection.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::types::PollErrorKind;
use russh::keys::PublicKey;
use tokio::time::Instant;

use super::client::{self, ExecOutput, Session, SshError, Target};

/// Longest wait between dials of a failing host; authentication failures wait longer, since
/// retrying a refused login achieves nothing until someone changes it.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const MAX_AUTH_BACKOFF: Duration = Duration::from_secs(300);

/// What a connection was made with: when any of it changes, the connection is dropped and the
/// host dialled again. (Pinning the key seen on first use does not change it: that is not a
/// reason to re-dial; re-trusting a key drops the connection explicitly.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnIdentity {
    pub address: String,
    pub port: u16,
    pub username: String,
    /// The stored credential's row and its last change.
    pub credential_id: i64,
    pub credential_updated_at: i64,
    pub expected_fingerprint: Option<String>,
}

#[derive(Default)]
struct SlotState {
    session: Option<Session>,
    identity: ConnIdentity,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// The per-host connections.
#[derive(Default)]
pub struct SshPool {
    slots: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<SlotState>>>>,
    dials: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SshPool({} hosts)",
            self.slots.lock().expect("not poisoned").len()
        )
    }
}

/// One script to run through the pool.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub script: &'a [u8],
    /// Most bytes of output accepted.
    pub cap: usize,
    /// Waiting for the host's previous run, dialling and logging in end by this instant.
    pub connect_by: Instant,
    /// When the script must have finished.
    pub finish_by: Finish,
    /// Dial even during backoff (an operator asked).
    pub force: bool,
}

/// When a script must have finished.
#[derive(Debug, Clone, Copy)]
pub enum Finish {
    /// By this instant, connecting included (a poll's one deadline).
    At(Instant),
    /// Within this long of starting, however long connecting took (enrollment, which may
    /// create a user, gets its own time once it is in).
    After(Duration),
}

impl Finish {
    fn deadline(self) -> Instant {
        match self {
            Self::At(at) => at,
            Self::After(budget) => Instant::now() + budget,
        }
    }
}

/// The result of a script run through the pool.
#[derive(Debug)]
pub struct PoolRun {
    pub output: ExecOutput,
    pub host_key: PublicKey,
    /// Whether this run had to dial (first use, or the old connection was dead).
    pub dialled: bool,
}

/// Why a run did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("not re-dialled yet: waiting {0:?} after repeated failures (last: {1})")]
    Backoff(Duration, String),
}

impl PoolError {
    /// A short, stable class of failure.
    pub fn kind(&self) -> PollErrorKind {
        match self {
            Self::Ssh(e) => e.kind(),
            Self::Backoff(..) => PollErrorKind::Backoff,
        }
    }
}

fn backoff(failures: u32, auth: bool) -> Duration {
    let cap = if auth { MAX_AUTH_BACKOFF } else { MAX_BACKOFF };
    Duration::from_secs(1u64 << failures.min(16).saturating_sub(1)).min(cap)
}

impl SshPool {
    fn slot(&self, host_id: i64) -> Arc<tokio::sync::Mutex<SlotState>> {
        self.slots
            .lock()
            .expect("not poisoned")
            .entry(host_id)
            .or_default()
            .clone()
    }

    /// Drops a host's connection (deleted, re-keyed, credentials replaced).
    pub async fn forget(&self, host_id: i64) {
        let slot = self.slots.lock().expect("not poisoned").remove(&host_id);
        if let Some(slot) = slot
            && let Some(session) = slot.lock().await.session.take()
        {
            session.close().await;
        }
    }

    /// Drops every connection.
    pub async fn forget_all(&self) {
        let slots: Vec<_> = self
            .slots
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for slot in slots {
            if let Some(session) = slot.lock().await.session.take() {
                session.close().await;
            }
        }
    }

    /// Whether a host currently holds a live connection.
    pub async fn is_connected(&self, host_id: i64) -> bool {
        let slot = self
            .slots
            .lock()
            .expect("not poisoned")
            .get(&host_id)
            .cloned();
        match slot {
            Some(slot) => slot
                .lock()
                .await
                .session
                .as_ref()
                .is_some_and(|s| !s.is_closed()),
            None => false,
        }
    }

    /// How many connections have been dialled (successfully or not) since start.
    pub fn dials(&self) -> u64 {
        self.dials.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `job.script` on the host, dialling when needed, within the job's deadlines.
    /// `identity` names the target's address, login and credentials; a different one drops the
    /// old connection.
    pub async fn run(
        &self,
        host_id: i64,
        target: &Target,
        identity: &ConnIdentity,
        job: Job<'_>,
    ) -> Result<PoolRun, PoolError> {
        let Job {
            script,
            cap,
            connect_by,
            finish_by,
            force,
        } = job;
        let slot = self.slot(host_id);
        let connect_budget = connect_by.saturating_duration_since(Instant::now());
        let mut state = tokio::time::timeout_at(connect_by, slot.lock())
            .await
            .map_err(|_| {
                SshError::Timeout(connect_budget, "waiting for the host's previous poll")
            })?;
        if state.identity != *identity {
            if let Some(old) = state.session.take() {
                old.close().await;
            }
            *state = SlotState {
                identity: identity.clone(),
                ..Default::default()
            };
        }

        if let Some(session) = state.session.take().filter(|s| !s.is_closed()) {
            let deadline = finish_by.deadline();
            let budget = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout_at(deadline, session.run_script(script, cap)).await {
                Ok(Ok(output)) => {
                    let host_key = session.host_key.clone();
                    state.session = Some(session);
                    return Ok(PoolRun {
                        output,
                        host_key,
                        dialled: false,
                    });
                }
                Ok(Err(err @ SshError::OutputTooLarge(_))) => {
                    // The host misbehaved, not the connection: keep it.
                    state.session = Some(session);
                    return Err(err.into());
                }
                Ok(Err(err)) => {
                    tracing::info!(host_id, error = %crate::logs::Untrusted(&err), "connection failed; re-dialling");
                    session.close().await;
                }
                Err(_) => {
                    session.close().await;
                    return Err(SshError::Timeout(budget, "running the script").into());
                }
            }
        }

        if let Some(retry_at) = state.retry_at.filter(|at| !force && *at > Instant::now()) {
            let last = state.last_error.clone().unwrap_or_default();
            return Err(PoolError::Backoff(retry_at - Instant::now(), last));
        }
        self.dials
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dialled = tokio::time::timeout_at(connect_by, client::connect(target, true))
            .await
            .unwrap_or_else(|_| {
                Err(SshError::Timeout(
                    connect_budget,
                    "connecting and authenticating",
                ))
            });
        let session = match dialled {
            Ok(session) => session,
            Err(err) => {
                state.failures += 1;
                state.retry_at = Some(
                    Instant::now()
                        + backoff(state.failures, matches!(err, SshError::AuthFailed(_))),
                );
                state.last_error = Some(err.to_string());
                return Err(err.into());
            }
        };
        state.failures = 0;
        state.retry_at = None;
        state.last_error = None;
        let deadline = finish_by.deadline();
        let budget = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, session.run_script(script, cap)).await {
            Ok(Ok(output)) => {
                let host_key = session.host_key.clone();
                state.session = Some(session);
                Ok(PoolRun {
                    output,
                    host_key,
                    dialled: true,
                })
            }
            Ok(Err(err)) => {
                if matches!(err, SshError::OutputTooLarge(_)) {
                    state.session = Some(session);
                } else {
                    session.close().await;
                }
                Err(err.into())
            }
            Err(_) => {
                session.close().await;
                Err(SshError::Timeout(budget, "running the script").into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1, false), Duration::from_secs(1));
        assert_eq!(backoff(2, false), Duration::from_secs(2));
        assert_eq!(backoff(5, false), Duration::from_secs(16));
        assert_eq!(backoff(30, false), MAX_BACKOFF);
        assert_eq!(backoff(30, true), MAX_AUTH_BACKOFF);
    }
}
