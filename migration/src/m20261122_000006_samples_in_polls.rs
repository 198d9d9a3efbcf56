//! A successful poll's metric values move into its own `polls` row, and `polls` gets an index
//! on its time alone.
//!
//! Each poll wrote two rows, a `polls` row and a `metric_sample_sets` row, each indexed by
//! (host, time). Once a fleet has some history each host's entries fill index pages of their
//! own, so every poll dirtied one page of each per-host index, and that page (its WAL frame and
//! checkpoint copy) was much of the database's work per poll. One row per poll keeps one
//! per-host index.
//!
//! Retention deletes polls by `started_at`, and the only index on `polls` led with the host, so
//! every purge (one each ten minutes) scanned the whole table while holding the write lock. The
//! new index grows at its right edge only, so a poll adds little for it.
//!
//! `metric_sample_sets` keeps the rows written before this migration; reads still include them
//! and retention empties the table in time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_polls_started_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for mut column in [
            big_integer_null("sampled_at"),
            integer_null("sample_count"),
            text_null("samples"),
        ] {
            manager
                .alter_table(Table::alter().table("polls").add_column(&mut column).take())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("polls")
                    .col("started_at")
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("polls").to_owned())
            .await?;
        for column in ["samples", "sample_count", "sampled_at"] {
            manager
                .alter_table(Table::alter().table("polls").drop_column(column).take())
                .await?;
        }
        Ok(())
    }
}
