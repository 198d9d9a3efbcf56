//! The first schema: hosts and their credentials, host keys, enrollment runs, polls, metric
//! samples, thresholds and alert state, notifications, URL checks, channels, deliveries and API
//! tokens.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A foreign key from `table.column` to `target.id`.
fn fk(
    table: &'static str,
    column: &'static str,
    target: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(target, "id")
        .on_delete(on_delete)
        .take()
}

/// An index on `columns` of `table`, unique or not.
fn index(table: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("ix_{table}_{}", columns.join("_")))
        .table(table);
    for column in columns {
        stmt.col(*column);
    }
    if unique {
        stmt.unique();
    }
    stmt.take()
}

fn table(name: &'static str) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(big_pk_auto("id"))
        .take()
}

use ForeignKeyAction::{Cascade, SetNull};

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = vec![
            table("api_tokens")
                .col(string("name"))
                .col(string_uniq("token_hash"))
                .col(boolean("read_only"))
                .col(big_integer("created_at"))
                .col(big_integer_null("last_used_at"))
                .take(),
            table("hosts")
                .col(string_uniq("name"))
                .col(string("address"))
                .col(integer("port"))
                .col(string("username"))
                .col(string("status"))
                .col(text_null("status_message"))
                .col(boolean("enabled"))
                .col(string("schedule"))
                .col(boolean("provision"))
                .col(string_null("expected_host_key_fingerprint"))
                .col(string_null("os_id"))
                .col(string_null("os_name"))
                .col(string_null("os_version"))
                .col(string_null("kernel"))
                .col(string_null("arch"))
                .col(string_null("hostname"))
                .col(string_null("cpu_model"))
                .col(integer_null("cpu_count"))
                .col(big_integer_null("memory_total_bytes"))
                .col(boolean_null("has_nvidia"))
                .col(text_null("uname"))
                .col(big_integer_null("enrolled_at"))
                .col(big_integer_null("last_poll_at"))
                .col(big_integer_null("last_ok_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .take(),
            table("host_labels")
                .col(big_integer("host_id"))
                .col(string("label"))
                .foreign_key(&mut fk("host_labels", "host_id", "hosts", Cascade))
                .take(),
            table("host_credentials")
                .col(big_integer_uniq("host_id"))
                .col(string("auth_method"))
                .col(string("source"))
                .col(blob_null("private_key_enc"))
                .col(blob_null("passphrase_enc"))
                .col(blob_null("password_enc"))
                .col(text_null("public_key"))
                .col(string_null("key_algorithm"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("host_credentials", "host_id", "hosts", Cascade))
                .take(),
            table("host_keys")
                .col(big_integer("host_id"))
                .col(string("algorithm"))
                .col(text("public_key"))
                .col(string("fingerprint"))
                .col(boolean("trusted"))
                .col(big_integer("first_seen_at"))
                .col(big_integer("last_seen_at"))
                .foreign_key(&mut fk("host_keys", "host_id", "hosts", Cascade))
                .take(),
            table("enrollment_runs")
                .col(big_integer("host_id"))
                .col(big_integer("started_at"))
                .col(big_integer_null("finished_at"))
                .col(boolean("ok"))
                .col(integer_null("exit_code"))
                .col(text("stdout"))
                .col(text("stderr"))
                .col(text_null("error"))
                .col(boolean("provisioned"))
                .col(big_integer_null("duration_ms"))
                .foreign_key(&mut fk("enrollment_runs", "host_id", "hosts", Cascade))
                .take(),
            table("polls")
                .col(big_integer("host_id"))
                .col(big_integer("started_at"))
                .col(big_integer("duration_ms"))
                .col(string("outcome"))
                .col(string_null("error_kind"))
                .col(text_null("error"))
                .foreign_key(&mut fk("polls", "host_id", "hosts", Cascade))
                .take(),
            table("metric_samples")
                .col(big_integer("host_id"))
                .col(string("name"))
                .col(string("label"))
                .col(big_integer("ts"))
                .col(double("value"))
                .foreign_key(&mut fk("metric_samples", "host_id", "hosts", Cascade))
                .take(),
            table("latest_snapshots")
                .col(big_integer_uniq("host_id"))
                .col(big_integer("taken_at"))
                .col(text("snapshot"))
                .col(text("counters"))
                .foreign_key(&mut fk("latest_snapshots", "host_id", "hosts", Cascade))
                .take(),
            table("url_checks")
                .col(string_uniq("name"))
                .col(text("url"))
                .col(string("schedule"))
                .col(string("expected_status"))
                .col(integer("timeout_ms"))
                .col(boolean("follow_redirects"))
                .col(boolean("check_tls"))
                .col(big_integer_null("host_id"))
                .col(boolean("enabled"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("url_checks", "host_id", "hosts", SetNull))
                .take(),
            table("url_check_results")
                .col(big_integer("url_check_id"))
                .col(big_integer("checked_at"))
                .col(boolean("ok"))
                .col(integer_null("status_code"))
                .col(big_integer_null("response_ms"))
                .col(string_null("error_kind"))
                .col(text_null("error"))
                .col(big_integer_null("tls_not_before"))
                .col(big_integer_null("tls_not_after"))
                .col(double_null("tls_days_left"))
                .col(text_null("tls_subject"))
                .col(text_null("tls_issuer"))
                .col(text_null("tls_sans"))
                .col(string_null("tls_serial"))
                .col(boolean_null("chain_valid"))
                .col(text_null("chain_error"))
                .foreign_key(&mut fk(
                    "url_check_results",
                    "url_check_id",
                    "url_checks",
                    Cascade,
                ))
                .take(),
            table("thresholds")
                .col(big_integer_null("host_id"))
                .col(big_integer_null("url_check_id"))
                .col(string("metric"))
                .col(double_null("warning"))
                .col(double_null("critical"))
                .col(integer("for_polls"))
                .col(double("hysteresis"))
                .col(integer_null("repeat_seconds"))
                .col(boolean("enabled"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("thresholds", "host_id", "hosts", Cascade))
                .foreign_key(&mut fk("thresholds", "url_check_id", "url_checks", Cascade))
                .take(),
            table("alert_states")
                .col(string_uniq("alert_key"))
                .col(big_integer_null("host_id"))
                .col(big_integer_null("url_check_id"))
                .col(string("kind"))
                .col(string("metric"))
                .col(string("label"))
                .col(string("state"))
                .col(string_null("level"))
                .col(integer("pending_polls"))
                .col(double_null("last_value"))
                .col(big_integer("since_at"))
                .col(big_integer_null("last_notified_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("alert_states", "host_id", "hosts", Cascade))
                .foreign_key(&mut fk(
                    "alert_states",
                    "url_check_id",
                    "url_checks",
                    Cascade,
                ))
                .take(),
            table("notifications")
                .col(big_integer_null("host_id"))
                .col(big_integer_null("url_check_id"))
                .col(string("kind"))
                .col(string_null("metric"))
                .col(string_null("label"))
                .col(string("level"))
                .col(string("state"))
                .col(double_null("value"))
                .col(double_null("threshold"))
                .col(text("title"))
                .col(text("message"))
                .col(big_integer("created_at"))
                .col(big_integer_null("read_at"))
                .foreign_key(&mut fk("notifications", "host_id", "hosts", Cascade))
                .foreign_key(&mut fk(
                    "notifications",
                    "url_check_id",
                    "url_checks",
                    Cascade,
                ))
                .take(),
            table("channels")
                .col(string_uniq("name"))
                .col(string("kind"))
                .col(boolean("enabled"))
                .col(string("min_level"))
                .col(big_integer_null("host_id"))
                .col(string_null("label"))
                .col(text("settings"))
                .col(blob_null("secrets_enc"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("channels", "host_id", "hosts", Cascade))
                .take(),
            table("deliveries")
                .col(big_integer("channel_id"))
                .col(big_integer("notification_id"))
                .col(string("status"))
                .col(integer("attempts"))
                .col(big_integer("next_attempt_at"))
                .col(text_null("last_error"))
                .col(big_integer_null("sent_at"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("deliveries", "channel_id", "channels", Cascade))
                .foreign_key(&mut fk(
                    "deliveries",
                    "notification_id",
                    "notifications",
                    Cascade,
                ))
                .take(),
        ];
        for stmt in tables {
            manager.create_table(stmt).await?;
        }
        let indexes = [
            index("host_labels", &["host_id", "label"], true),
            index("host_labels", &["label"], false),
            index("hosts", &["status"], false),
            index("host_keys", &["host_id", "fingerprint"], true),
            index("enrollment_runs", &["host_id"], false),
            index("polls", &["host_id", "started_at"], false),
            index("metric_samples", &["host_id", "name", "label", "ts"], false),
            index("metric_samples", &["ts"], false),
            index("url_check_results", &["url_check_id", "checked_at"], false),
            index("thresholds", &["host_id", "metric"], false),
            index("thresholds", &["url_check_id", "metric"], false),
            index("notifications", &["host_id"], false),
            index("notifications", &["url_check_id"], false),
            index("deliveries", &["channel_id", "notification_id"], true),
            index("deliveries", &["status", "next_attempt_at"], false),
        ];
        for stmt in indexes {
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "deliveries",
            "channels",
            "notifications",
            "alert_states",
            "thresholds",
            "url_check_results",
            "url_checks",
            "latest_snapshots",
            "metric_samples",
            "polls",
            "enrollment_runs",
            "host_keys",
            "host_credentials",
            "host_labels",
            "hosts",
            "api_tokens",
        ] {
            manager
                .drop_table(Table::drop().table(name).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
