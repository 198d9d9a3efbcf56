//! Enrollment: run `enroll.sh` once on a new host (and on demand), record what the host is, keep
//! the whole transcript, and — when asked and possible — provision a dedicated `hostwatch` user
//! with the service's own key, then switch the host to it and erase the bootstrap password.
//!
//! The new login is proved (a real SSH login as `hostwatch`) before the stored credentials are
//! replaced, so a provisioning that half-worked never locks hostwatch out.

use std::{sync::Arc, time::Duration};

use entity::{
    enrollment_run,
    types::{AlertKind, CredentialSource, Event, HostStatus, Level, PollErrorKind},
};

use super::{PollError, link::Link};
use crate::{
    alerts::{
        evaluate::{AlertKey, Notice, Subject},
        text,
    },
    error::Error,
    probe::{
        self,
        enrollment::{Facts, parse_enrollment},
    },
    ssh::{
        client::{self, Auth, Target},
        keys,
        pool::Finish,
    },
    store::{
        enrollment::{self, NewRun},
        hosts, now_ms, ssh as ssh_store,
    },
};

/// The deadlines enrollment works within.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    /// The script, once connected (it may create a user).
    pub enroll: Duration,
    /// Connecting and logging in (the bootstrap login, and proving the provisioned one).
    pub login: Duration,
}

/// A public key line safe to place inside single quotes in the script (it is ours, but check).
fn quotable(public_key: &str) -> bool {
    public_key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" +/=-_@.".contains(&b))
}

/// Enrolls a host and returns the stored run. SSH failures are recorded in the run (and the
/// host's status) and returned as an unsuccessful run, not as an error.
pub(super) async fn enroll(
    link: &Link,
    deadlines: Deadlines,
    host_id: i64,
    force: bool,
) -> Result<enrollment_run::Model, PollError> {
    let prepared = link.prepare(host_id).await?;
    let host = prepared.host.clone();
    let already_provisioned = ssh_store::credential_source(&link.db, host_id).await?
        == Some(CredentialSource::Provisioned);
    let provision = host.provision && !already_provisioned;
    let mut script = String::new();
    let mut service_key = None;
    if provision {
        let (private, public) = ssh_store::service_key(&link.db, link.secrets()).await?;
        if !quotable(&public) {
            return Err(Error::Internal(format!(
                "the service public key has unexpected characters: {public:?}"
            ))
            .into());
        }
        script.push_str(&format!("HW_PROVISION=1 HW_PUBKEY='{public}'\n"));
        service_key = Some((private, public));
    }
    script.push_str(probe::ENROLL_SCRIPT);

    let started_ms = now_ms();
    let started = std::time::Instant::now();
    // Connecting gets the poll's deadline; the script, once in, its own.
    let result = link
        .run(
            &prepared,
            script.as_bytes(),
            deadlines.login,
            Finish::After(deadlines.enroll),
            force,
        )
        .await;
    let mut run = NewRun {
        host_id,
        started_at: started_ms,
        provisioned: already_provisioned,
        ..Default::default()
    };
    let mut facts: Option<Facts> = None;
    match result {
        Ok(out) => {
            run.stdout = String::from_utf8_lossy(&out.output.stdout).into_owned();
            run.stderr = String::from_utf8_lossy(&out.output.stderr).into_owned();
            run.exit_code = out.output.exit_status.map(|c| c as i32);
            if out.output.exit_status != Some(0) {
                run.error = Some(format!(
                    "enroll.sh exited with {:?}",
                    out.output.exit_status
                ));
            }
            facts = Some(parse_enrollment(&run.stdout));
        }
        // Not an attempt: the host is not dialled again yet after repeated failures.
        Err(
            err @ PollError::Host {
                kind: PollErrorKind::Backoff,
                ..
            },
        ) => return Err(err),
        Err(err) => run.error = Some(err.to_string()),
    }

    if let (Some(f), None) = (&facts, &run.error) {
        enrollment::record_facts(&link.db, &host, f).await?;
        let mut provision_error = None;
        if f.supported() && provision {
            match (&f.provision, &service_key) {
                (Some(report), Some((private, public)))
                    if report.lines().any(|l| l == "provisioned") =>
                {
                    match verify_login(&prepared.target, private, deadlines.login).await {
                        Ok(()) => {
                            ssh_store::switch_to_provisioned(
                                &link.db,
                                link.secrets(),
                                host_id,
                                private,
                                public,
                            )
                            .await?;
                            link.pool.forget(host_id).await;
                            run.provisioned = true;
                        }
                        Err(e) => {
                            provision_error = Some(format!(
                                "the key was installed but the login as hostwatch does not work: {e}"
                            ))
                        }
                    }
                }
                (report, _) => {
                    provision_error = Some(
                        report
                            .as_deref()
                            .and_then(|r| r.lines().rev().find(|l| !l.trim().is_empty()))
                            .unwrap_or("the host printed no provisioning report")
                            .to_owned(),
                    );
                }
            }
        }
        if f.supported() {
            match &provision_error {
                Some(reason) => provision_failed(link, &prepared, reason).await?,
                None if host.status == HostStatus::ProvisionFailed && run.provisioned => {
                    link.leave_status(&host, text::status::provisioned(&host.name))
                        .await?
                }
                None if host.status != HostStatus::Ok => {
                    link.leave_status(&host, text::status::enrolled(&host.name))
                        .await?
                }
                None => {}
            }
        }
        run.error = provision_error.map(|e| format!("provisioning: {e}"));
    }
    run.finished_at = now_ms();
    run.duration_ms = started.elapsed().as_millis() as i64;
    let error = run.error.clone();
    let name = crate::logs::Untrusted(&host.name);
    match (&error, &facts) {
        (None, Some(f)) => tracing::info!(
            host_id,
            host = %name,
            os = %crate::logs::Untrusted(f.os_name.as_deref().unwrap_or("-")),
            kernel = %crate::logs::Untrusted(f.kernel.as_deref().unwrap_or("-")),
            provisioned = run.provisioned,
            "host enrolled"
        ),
        (Some(e), _) => tracing::warn!(
            host_id,
            host = %name,
            error = %crate::logs::Untrusted(e),
            "enrollment failed"
        ),
        (None, None) => {}
    }
    let previous_ok = enrollment::previous_ok(&link.db, host_id).await?;
    let stored = enrollment::insert(&link.db, run).await?;
    // Facts, status, login or key may have changed.
    link.cache.invalidate(host_id);
    if error.is_none() && facts.is_some() {
        link.resolve(
            &host,
            AlertKind::EnrollmentFailed,
            text::status::enrollment_worked(&host.name),
        )
        .await?;
    }
    if let Some(message) = error {
        let reported_elsewhere = hosts::find(&link.db, host_id)
            .await?
            .is_some_and(|h| h.status.is_alerting() || h.status == HostStatus::ProvisionFailed);
        if previous_ok && !reported_elsewhere {
            let (title, body) =
                text::status::enrollment_failed(&host.name, prepared.place(), &message);
            let key = AlertKey::new(Subject::Host(host_id), AlertKind::EnrollmentFailed, "", "");
            link.notify(Notice::new(key, Level::Warning, Event::Fired, title, body))
                .await?;
        }
    }
    Ok(stored)
}

/// Puts the host in `provision_failed` with the reason, and fires a warning on the way in
/// (a retry that fails again says nothing new). The bootstrap login stays stored and in use.
async fn provision_failed(
    link: &Link,
    prepared: &super::Prepared,
    reason: &str,
) -> Result<(), Error> {
    let host = &prepared.host;
    tracing::warn!(
        host_id = host.id,
        host = %crate::logs::Untrusted(&host.name),
        reason = %crate::logs::Untrusted(reason),
        "provisioning failed; polls go on with the bootstrap login"
    );
    let message = format!(
        "provisioning failed: {reason}; polls go on as {} (the bootstrap login)",
        host.username
    );
    ssh_store::set_status(
        &link.db,
        host.id,
        HostStatus::ProvisionFailed,
        Some(message),
    )
    .await?;
    if host.status != HostStatus::ProvisionFailed {
        let (title, body) =
            text::status::provision_failed(&host.name, prepared.place(), host.id, reason);
        let key = AlertKey::new(Subject::Host(host.id), AlertKind::ProvisionFailed, "", "");
        link.notify(Notice::new(
            key,
            AlertKind::ProvisionFailed.status_level(),
            Event::Fired,
            title,
            body,
        ))
        .await?;
    }
    Ok(())
}

/// Logs in as `hostwatch` with the service key and checks who we are.
async fn verify_login(
    bootstrap: &Target,
    private_key: &str,
    within: Duration,
) -> Result<(), String> {
    let key = keys::decode_private_key(private_key, None).map_err(|e| e.to_string())?;
    let target = Target {
        username: "hostwatch".into(),
        auth: Auth::Key(Arc::new(key)),
        ..bootstrap.clone()
    };
    let work = async {
        let session = client::connect(&target, true)
            .await
            .map_err(|e| e.to_string())?;
        let out = session
            .run_script(b"id -un\n", 4096)
            .await
            .map_err(|e| e.to_string())?;
        session.close().await;
        let who = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if who == "hostwatch" {
            Ok(())
        } else {
            Err(format!("logged in as {who:?}"))
        }
    };
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_are_quotable() {
        assert!(quotable(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+/x= hostwatch"
        ));
        assert!(!quotable("ssh-ed25519 AAAA' ; rm -rf / '"));
    }
}
