//! URL checks of self-signed and internal services: whether the chain must validate, a pinned
//! certificate fingerprint, and the fingerprint each run saw.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One column per statement: SQLite alters one at a time.
async fn add(
    manager: &SchemaManager<'_>,
    table: &'static str,
    column: ColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).add_column(column).take())
        .await
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: &'static str,
    column: &'static str,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).take())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add(
            manager,
            "url_checks",
            boolean("tls_verify").default(true).take(),
        )
        .await?;
        add(manager, "url_checks", text_null("tls_fingerprint")).await?;
        add(manager, "url_check_results", text_null("tls_fingerprint")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop(manager, "url_check_results", "tls_fingerprint").await?;
        drop(manager, "url_checks", "tls_fingerprint").await?;
        drop(manager, "url_checks", "tls_verify").await
    }
}
