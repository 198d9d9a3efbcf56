//! Schema migrations for hostwatch.
//!
//! The schema is written with sea-query builders, never raw SQL, so the same migrations run on
//! SQLite (the embedded default) and PostgreSQL. Times are stored as Unix milliseconds
//! (`BIGINT`): the same type on both backends, cheap to index and compare for time-range queries.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_initial;
mod m20261121_000002_service_secrets;
mod m20261121_000003_notification_event;
mod m20261121_000004_url_check_ca;
mod m20261122_000005_sample_sets;
mod m20261122_000006_samples_in_polls;
mod m20261122_000007_alert_state_owners;
mod m20261201_000008_enrollment_repeats;
mod m20261201_000009_cluster;
mod m20261201_000010_accounts;
mod m20261201_000011_url_tls;
mod m20261202_000012_alert_actions;
pub mod m20261203_000013_compact_history;

/// The list of migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_initial::Migration),
            Box::new(m20261121_000002_service_secrets::Migration),
            Box::new(m20261121_000003_notification_event::Migration),
            Box::new(m20261121_000004_url_check_ca::Migration),
            Box::new(m20261122_000005_sample_sets::Migration),
            Box::new(m20261122_000006_samples_in_polls::Migration),
            Box::new(m20261122_000007_alert_state_owners::Migration),
            Box::new(m20261201_000008_enrollment_repeats::Migration),
            Box::new(m20261201_000009_cluster::Migration),
            Box::new(m20261201_000010_accounts::Migration),
            Box::new(m20261201_000011_url_tls::Migration),
            Box::new(m20261202_000012_alert_actions::Migration),
            Box::new(m20261203_000013_compact_history::Migration),
        ]
    }
}
