//! Running a stored URL check: the run, its result row and the alerts it causes, in one
//! transaction; notifications are published after the commit.

use std::{sync::Arc, time::Duration};

use entity::url_check_result;
use sea_orm::DatabaseConnection;

use super::{
    StatusSet,
    runner::{CheckSpec, HostResolver, Outcome, UrlChecker},
};
use crate::{
    alerts::{
        evaluate::{self, CertSeen, Subject, UrlObservation, Who},
        text::{Named, Place},
    },
    error::{Error, Result},
    store::{
        alerts,
        cluster::Fence,
        notifications::NotificationHub,
        now_ms,
        thresholds::{self, Owner},
        url_checks::{self, NewResult, TlsFacts},
    },
};

/// Runs URL checks and records what they found.
#[derive(Debug)]
pub struct UrlCheckService {
    db: DatabaseConnection,
    hub: NotificationHub,
    checker: UrlChecker,
    /// Only the leader checks and stores results.
    fence: Fence,
}

impl UrlCheckService {
    /// A service resolving names with `resolver`.
    pub fn new(
        db: DatabaseConnection,
        hub: NotificationHub,
        resolver: Arc<dyn HostResolver>,
        fence: Fence,
    ) -> Self {
        Self {
            db,
            hub,
            checker: UrlChecker::new(resolver),
            fence,
        }
    }

    /// Runs check `id` now and stores its result.
    pub async fn run(&self, id: i64) -> Result<url_check_result::Model> {
        if !self.fence.is_leader() {
            return Err(Error::NotLeader);
        }
        let check = url_checks::get(&self.db, id).await?;
        let spec = CheckSpec {
            url: url::Url::parse(&check.url).map_err(|e| Error::invalid("url", e.to_string()))?,
            expected: StatusSet::parse(&StatusSet::stored_to_items(&check.expected_status))
                .map_err(|e| Error::invalid("expected_status", e))?,
            timeout: Duration::from_millis(check.timeout_ms.max(1) as u64),
            follow_redirects: check.follow_redirects,
            check_tls: check.check_tls,
            ca_pem: check.ca_pem.clone(),
            tls_verify: check.tls_verify,
            tls_fingerprint: check.tls_fingerprint.clone(),
        };
        let checked_at = now_ms();
        let outcome = self.checker.check(&spec).await;
        let seen = observation(&outcome, checked_at);
        let txn = self.fence.begin(&self.db).await?;
        let row = url_checks::insert_result(&txn, id, result(&outcome, checked_at)).await?;
        let rules = thresholds::rules(&txn, Owner::UrlCheck(id)).await?;
        let stored = alerts::of_url_check(&txn, id).await?;
        let who = Who {
            subject: Subject::UrlCheck(id),
            named: Named {
                name: &check.name,
                place: Place::Url(&check.url),
            },
        };
        let changes = evaluate::after_url_check(who, &rules, &stored, &seen, checked_at);
        let written = alerts::apply(&txn, changes, checked_at).await?;
        txn.commit().await?;
        for n in written {
            self.hub.publish(&n);
        }
        Ok(row)
    }
}

/// What the evaluator needs of a run.
fn observation(o: &Outcome, checked_at: i64) -> UrlObservation {
    UrlObservation {
        status: o.status,
        response_ms: o.response_ms,
        error: o.error.clone(),
        cert: o.tls.as_ref().map(|t| CertSeen {
            serial: t.cert.serial.clone(),
            days_left: t.cert.days_left(checked_at),
            not_after_ms: t.cert.not_after_ms,
        }),
    }
}

/// What the result row keeps of a run.
fn result(o: &Outcome, checked_at: i64) -> NewResult {
    NewResult {
        checked_at,
        status_code: o.status,
        response_ms: o.response_ms,
        error: o.error.clone(),
        tls: o.tls.as_ref().map(|t| TlsFacts {
            not_before_ms: t.cert.not_before_ms,
            not_after_ms: t.cert.not_after_ms,
            days_left: t.cert.days_left(checked_at),
            subject: t.cert.subject.clone(),
            issuer: t.cert.issuer.clone(),
            sans: t.cert.sans.clone(),
            serial: t.cert.serial.clone(),
            chain_valid: t.chain_valid,
            chain_error: t.chain_error.clone(),
            fingerprint: t.cert.fingerprint.clone(),
        }),
    }
}
