//! An enrollment run counts its repeats: a host whose enrollment fails the same way at every
//! tick (unreachable since registration, say) keeps one row with a count and the time of the
//! last attempt, instead of a row per tick.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("enrollment_runs")
                    .add_column(integer("repeats").default(1))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("enrollment_runs")
                    .add_column(big_integer_null("last_started_at"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["last_started_at", "repeats"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("enrollment_runs")
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
