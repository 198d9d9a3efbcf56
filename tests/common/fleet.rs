//! The fleet simulator (`src/bin/fleetsim.rs`) as a test fixture: simulated SSH hosts on
//! consecutive loopback ports, registered in a database as enrolled hosts.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use entity::{host, types::HostStatus};
use hostwatch::store::{
    self,
    hosts::{NewCredential, NewHost},
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};
use zeroize::Zeroizing;

/// A running simulator.
pub struct Fleet {
    pub base: u16,
    pub hosts: u16,
    child: tokio::process::Child,
}

/// A base port with `count` free ports after it.
fn free_range(count: u16) -> u16 {
    loop {
        let base = super::free_port();
        if base.checked_add(count).is_some()
            && (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

impl Fleet {
    /// Starts `hosts` simulated hosts; `extra` are further fleetsim flags (`--gpus 2`,
    /// `--drop 1`, …). Returns once they listen.
    pub async fn start(dir: &Path, hosts: u16, extra: &[&str]) -> Self {
        let base = free_range(hosts);
        let ready = dir.join(format!("fleet-{base}.ready"));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetsim"))
            .args([
                "--hosts",
                &hosts.to_string(),
                "--base-port",
                &base.to_string(),
            ])
            .args(extra)
            .arg("--ready-file")
            .arg(&ready)
            .kill_on_drop(true)
            .spawn()
            .expect("fleetsim starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "fleetsim did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { base, hosts, child }
    }

    /// Registers every simulated host as `<prefix>-<i>` with `schedule`, marked enrolled (the
    /// simulator answers the probe, not the enrollment script); returns their ids in port order.
    pub async fn register(
        &self,
        db: &DatabaseConnection,
        secrets: &hostwatch::crypto::SecretBox,
        prefix: &str,
        schedule: &str,
    ) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 0..self.hosts {
            let view = store::hosts::create(
                db,
                secrets,
                NewHost {
                    name: format!("{prefix}-{i}"),
                    address: "127.0.0.1".into(),
                    port: self.base + i,
                    username: "monitor".into(),
                    credential: NewCredential::Password(Zeroizing::new("sim".into())),
                    schedule: schedule.into(),
                    labels: vec![],
                    expected_host_key_fingerprint: None,
                    provision: false,
                    enabled: true,
                },
            )
            .await
            .unwrap();
            ids.push(view.host.id);
        }
        host::Entity::update_many()
            .col_expr(host::Column::EnrolledAt, Expr::value(store::now_ms()))
            .col_expr(host::Column::Status, Expr::value(HostStatus::Ok))
            .filter(host::Column::Id.is_in(ids.clone()))
            .exec(db)
            .await
            .unwrap();
        ids
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
