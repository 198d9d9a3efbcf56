//! `alert_states` gets indexes on its owners, the host and the URL check.
//!
//! The poll writer reads the alert states of each batch's hosts (`host_id IN (…)`), and a URL
//! check reads its own by `url_check_id`; with only `alert_key` indexed, both scanned the whole
//! table, which with thresholds on every host of a large fleet holds several rows per host.
//! Deleting a host or a check also finds their states (the cascading foreign keys) through these
//! indexes instead of a scan.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OWNERS: [&str; 2] = ["host_id", "url_check_id"];

fn name(column: &str) -> String {
    format!("ix_alert_states_{column}")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in OWNERS {
            manager
                .create_index(
                    Index::create()
                        .name(name(column))
                        .table("alert_states")
                        .col(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in OWNERS {
            manager
                .drop_index(
                    Index::drop()
                        .name(name(column))
                        .table("alert_states")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
