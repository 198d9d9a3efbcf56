//! Instances sharing one database: the nodes that serve it (with their heartbeats), the one
//! lease whose holder polls, and a log of configuration changes made through any node's API,
//! which the leader follows to keep its schedule and cache in line.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("cluster_nodes")
                    .if_not_exists()
                    .col(string("node_id").primary_key())
                    .col(string("hostname"))
                    .col(integer("pid"))
                    .col(string("listen"))
                    .col(string("version"))
                    .col(string("role"))
                    .col(big_integer("started_at"))
                    .col(big_integer("heartbeat_at"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("cluster_lease")
                    .if_not_exists()
                    .col(integer("id").primary_key())
                    .col(string("holder"))
                    .col(big_integer("epoch"))
                    .col(big_integer("acquired_at"))
                    .col(big_integer("expires_at"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("config_changes")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string("kind"))
                    .col(big_integer("target_id"))
                    .col(string("node_id"))
                    .col(big_integer("at"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["config_changes", "cluster_lease", "cluster_nodes"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
