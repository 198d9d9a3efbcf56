//! Running a stored URL check: the run, its result row and the alerts it causes, in one
//! transaction; notifications are published after the commit.

use std::{sync::Arc, time::Duration};

use entity::url_check_result;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set, TransactionTrait};

use super::{
    StatusSet,
    runner::{CheckSpec, HostResolver, Outcome, UrlChecker},
};
use crate::{
    error::{Error, Result},
    evaluator,
    store::{notifications::NotificationHub, now_ms, url_checks},
};

/// Runs URL checks and records what they found.
#[derive(Debug)]
pub struct UrlCheckService {
    db: DatabaseConnection,
    hub: NotificationHub,
    checker: UrlChecker,
}

impl UrlCheckService {
    /// A service resolving names with `resolver`.
    pub fn new(
        db: DatabaseConnection,
        hub: NotificationHub,
        resolver: Arc<dyn HostResolver>,
    ) -> Self {
        Self {
            db,
            hub,
            checker: UrlChecker::new(resolver),
        }
    }

    /// Runs check `id` now and stores its result.
    pub async fn run(&self, id: i64) -> Result<url_check_result::Model> {
        let check = url_checks::get(&self.db, id).await?;
        let spec = CheckSpec {
            url: url::Url::parse(&check.url).map_err(|e| Error::invalid("url", e.to_string()))?,
            expected: StatusSet::parse(&StatusSet::stored_to_items(&check.expected_status))
                .map_err(|e| Error::invalid("expected_status", e))?,
            timeout: Duration::from_millis(check.timeout_ms.max(1) as u64),
            follow_redirects: check.follow_redirects,
            check_tls: check.check_tls,
            ca_pem: check.ca_pem.clone(),
        };
        let checked_at = now_ms();
        let outcome = self.checker.check(&spec).await;
        let txn = self.db.begin().await?;
        let row = result_row(id, checked_at, &outcome).insert(&txn).await?;
        let written = evaluator::evaluate_url_check(&txn, &check, &outcome, checked_at).await?;
        txn.commit().await?;
        for n in written {
            self.hub.published(n.id);
        }
        Ok(row)
    }
}

fn result_row(id: i64, checked_at: i64, o: &Outcome) -> url_check_result::ActiveModel {
    let tls = o.tls.as_ref();
    url_check_result::ActiveModel {
        url_check_id: Set(id),
        checked_at: Set(checked_at),
        ok: Set(o.ok()),
        status_code: Set(o.status.map(i32::from)),
        response_ms: Set(o.response_ms),
        error_kind: Set(o.error.as_ref().map(|(k, _)| (*k).to_owned())),
        error: Set(o.error.as_ref().map(|(_, m)| m.clone())),
        tls_not_before: Set(tls.map(|t| t.cert.not_before_ms)),
        tls_not_after: Set(tls.map(|t| t.cert.not_after_ms)),
        tls_days_left: Set(tls.map(|t| t.cert.days_left(checked_at))),
        tls_subject: Set(tls.map(|t| t.cert.subject.clone())),
        tls_issuer: Set(tls.map(|t| t.cert.issuer.clone())),
        tls_sans: Set(tls.map(|t| t.cert.sans.join("\n"))),
        tls_serial: Set(tls.map(|t| t.cert.serial.clone())),
        chain_valid: Set(tls.map(|t| t.chain_valid)),
        chain_error: Set(tls.and_then(|t| t.chain_error.clone())),
        ..Default::default()
    }
}
