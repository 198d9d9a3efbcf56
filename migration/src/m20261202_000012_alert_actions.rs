//! Alerts you can act on: an alert row knows the notification that opened it, its threshold,
//! its acknowledgement and the notification held back by a silence; a notification knows its
//! alert and what suppressed it; silences, maintenance windows and fleet-wide threshold rules
//! are tables of their own; a threshold may be about one label (a mount, a GPU).
//!
//! Host thresholds that only repeat the built-in defaults (written at host creation until now)
//! are deleted: hosts inherit defaults and label rules instead of copying them.

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

fn index(table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("idx_{table}_{}", cols.join("_")))
        .table(table)
        .if_not_exists();
    for c in cols {
        stmt.col(*c);
    }
    if unique {
        stmt.unique();
    }
    stmt.take()
}

/// The built-in host defaults as they were written at creation: (metric, warning, critical).
const OLD_DEFAULTS: [(&str, f64, f64); 6] = [
    ("cpu.usage_pct", 80.0, 90.0),
    ("memory.used_pct", 80.0, 90.0),
    ("swap.used_pct", 50.0, 80.0),
    ("disk.used_pct", 85.0, 95.0),
    ("gpu.memory_used_pct", 90.0, 95.0),
    ("gpu.temperature_c", 85.0, 95.0),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            big_integer_null("opened_notification_id"),
            double_null("threshold"),
            string_null("acked_by"),
            big_integer_null("acked_at"),
            text_null("ack_comment"),
            big_integer_null("ack_expires_at"),
            big_integer_null("held_notification_id"),
        ] {
            add(manager, "alert_states", col).await?;
        }
        for col in [
            big_integer_null("alert_id"),
            big_integer_null("silence_id"),
            big_integer_null("maintenance_id"),
        ] {
            add(manager, "notifications", col).await?;
        }
        add(manager, "thresholds", string("label").default("").take()).await?;
        manager
            .create_table(
                Table::create()
                    .table("silences")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(text("matchers"))
                    .col(big_integer("starts_at"))
                    .col(big_integer("ends_at"))
                    .col(text("comment"))
                    .col(string("created_by"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("maintenance_windows")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_uniq("name"))
                    .col(text("host_ids"))
                    .col(text("labels"))
                    .col(string("recurrence"))
                    .col(string("starts"))
                    .col(text("weekdays"))
                    .col(string("time_zone"))
                    .col(integer("duration_minutes"))
                    .col(big_integer_null("until_at"))
                    .col(boolean("collect"))
                    .col(text("comment"))
                    .col(string("created_by"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("threshold_rules")
                    .if_not_exists()
                    .col(big_pk_auto("id"))
                    .col(string_uniq("name"))
                    .col(text("selector"))
                    .col(string("metric"))
                    .col(string("label"))
                    .col(double_null("warning"))
                    .col(double_null("critical"))
                    .col(integer("for_polls"))
                    .col(double("hysteresis"))
                    .col(integer_null("repeat_seconds"))
                    .col(boolean("enabled"))
                    .col(string("created_by"))
                    .col(big_integer("created_at"))
                    .col(big_integer("updated_at"))
                    .take(),
            )
            .await?;
        for stmt in [
            index("notifications", &["alert_id"], false),
            index("alert_states", &["state"], false),
            // The delivery worker looks for held notifications every tick.
            index("alert_states", &["held_notification_id"], false),
            index("silences", &["ends_at"], false),
        ] {
            manager.create_index(stmt).await?;
        }
        let db = manager.get_connection();
        // One threshold per (owner, metric, label): keep the newest of any duplicates, then let
        // the database refuse more.
        db.execute_unprepared(
            "DELETE FROM thresholds WHERE id NOT IN (SELECT MAX(id) FROM thresholds \
             GROUP BY host_id, url_check_id, metric, label)",
        )
        .await?;
        for stmt in [
            index("thresholds", &["host_id", "metric", "label"], true),
            index("thresholds", &["url_check_id", "metric", "label"], true),
        ] {
            manager.create_index(stmt).await?;
        }
        // Hosts in a status that is an alert of its own had no alert row: give them one, so
        // that leaving the status resolves it.
        db.execute_unprepared(
            "INSERT INTO alert_states (alert_key, host_id, kind, metric, label, state, level, \
             pending_polls, since_at, last_notified_at, updated_at) \
             SELECT 'h' || CAST(id AS TEXT) || '|' || status || '||', id, status, '', '', \
             'firing', CASE status WHEN 'provision_failed' THEN 'warning' ELSE 'critical' END, \
             0, updated_at, updated_at, updated_at FROM hosts \
             WHERE status IN ('auth_failed', 'host_key_mismatch', 'provision_failed') \
             AND NOT EXISTS (SELECT 1 FROM alert_states a WHERE a.alert_key = \
             'h' || CAST(hosts.id AS TEXT) || '|' || hosts.status || '||')",
        )
        .await?;
        for (metric, warning, critical) in OLD_DEFAULTS {
            db.execute_unprepared(&format!(
                "DELETE FROM thresholds WHERE host_id IS NOT NULL AND metric = '{metric}' \
                 AND warning = {warning:.1} AND critical = {critical:.1} AND for_polls = 1 \
                 AND hysteresis = 5.0 AND repeat_seconds IS NULL AND enabled = {}",
                if manager.get_database_backend()
                    == sea_orm_migration::sea_orm::DatabaseBackend::Postgres
                {
                    "TRUE"
                } else {
                    "1"
                }
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["threshold_rules", "maintenance_windows", "silences"] {
            manager
                .drop_table(Table::drop().table(name).if_exists().take())
                .await?;
        }
        for (table, name) in [
            ("notifications", "idx_notifications_alert_id"),
            ("alert_states", "idx_alert_states_state"),
            ("alert_states", "idx_alert_states_held_notification_id"),
            ("thresholds", "idx_thresholds_host_id_metric_label"),
            ("thresholds", "idx_thresholds_url_check_id_metric_label"),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        drop(manager, "thresholds", "label").await?;
        for col in ["maintenance_id", "silence_id", "alert_id"] {
            drop(manager, "notifications", col).await?;
        }
        for col in [
            "held_notification_id",
            "ack_expires_at",
            "ack_comment",
            "acked_at",
            "acked_by",
            "threshold",
            "opened_notification_id",
        ] {
            drop(manager, "alert_states", col).await?;
        }
        Ok(())
    }
}
