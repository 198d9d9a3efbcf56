//! Secrets of the service itself, such as the SSH key it installs when provisioning hosts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("service_secrets")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_uniq("name"))
                    .col(blob("value_enc"))
                    .col(text_null("public"))
                    .col(big_integer("created_at"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("service_secrets").if_exists().take())
            .await
    }
}
