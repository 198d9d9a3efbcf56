//! The store: connecting to the database, running migrations, and the queries the API and the
//! pollers share, one module per resource over the `entity` crate.
//!
//! SQLite is opened in WAL mode with foreign keys on, so deleting a host removes its rows and
//! readers never block the writer; PostgreSQL is used as given by `DATABASE_URL`.

pub mod alerts;
pub mod channels;
pub mod cluster;
pub mod deliveries;
pub mod enrollment;
pub mod history;
pub mod hosts;
pub mod maintenance;
pub mod notifications;
pub mod polls;
pub mod retention;
pub mod rollups;
pub mod series;
pub mod sessions;
pub mod silences;
pub mod ssh;
pub mod thresholds;
pub mod tokens;
pub mod url_checks;
pub mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::error::Result;

/// WAL pages SQLite lets a commit add before it checkpoints them into the database file
/// (SQLite's default is 1,000). Each checkpoint syncs the WAL and the database file and copies
/// every page the WAL holds, once however many commits rewrote it in the meantime; a large
/// fleet's commits reach 1,000 pages several times a second, so rarer checkpoints copy each hot
/// page fewer times. The WAL then grows to about 40 MB (4 KiB pages) between checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: &str = "10000";
/// What the WAL file is cut back to when a checkpoint empties it (64 MiB): without a limit it
/// keeps the largest size it ever reached, for instance behind a long read.
const WAL_SIZE_LIMIT_BYTES: &str = "67108864";

/// Where SQLite keeps its temporary files, among them the statement journal: the copy of every
/// page a statement changes, kept so that one failing statement can be undone inside its
/// transaction. The poll writer's multi-row statements inside its transactions need one, and
/// past the 64 KiB SQLite holds in memory by default it went to a file in `/var/tmp`, written
/// several times per poll.
///
/// Temporary tables and sorts too large for the page cache then stay in memory as well; the
/// service's queries read in index order with limits and retention deletes in chunks, so none
/// of them builds one.
const TEMP_STORE: &str = "memory";

/// Opens the database at `url`, creating a SQLite file when needed.
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    connect_with(url, None).await
}

/// [`connect`], where PostgreSQL ends any transaction left idle for `idle_in_transaction`:
/// a node frozen mid-transaction (stopped, partitioned) would otherwise hold its share lock on
/// the lease row for as long as its connection stays open, and no standby could take over.
pub async fn connect_with(
    url: &str,
    idle_in_transaction: Option<Duration>,
) -> Result<DatabaseConnection> {
    // PostgreSQL connections may use TLS: the provider must be chosen first.
    crate::crypto::install_tls_provider();
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
                .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES)
                .pragma("temp_store", TEMP_STORE)
        });
    if let Some(idle) = idle_in_transaction {
        let ms = idle.as_millis().max(1).to_string();
        options.map_sqlx_postgres_opts(move |o| {
            o.options([("idle_in_transaction_session_timeout", ms.as_str())])
        });
    }
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's rule; a small pool keeps readers concurrent in WAL mode.
        // A connection is a file handle in this process that cannot drop like a socket: no ping
        // before each use. Each ping is a round trip to the connection's thread, and a thread
        // woken per statement is most of what a short read costs.
        options
            .max_connections(4)
            .min_connections(1)
            .test_before_acquire(false);
    } else {
        options.max_connections(16);
    }
    Ok(Database::connect(options).await?)
}

/// Begins a transaction that writes. On SQLite it starts as a write transaction
/// (`BEGIN IMMEDIATE`): a transaction that reads first and writes later cannot take the write
/// lock while another writer has committed since its read began, and fails at once with
/// "database is locked" where the busy timeout would have waited. Taking the lock up front
/// makes concurrent writers queue within the busy timeout instead. PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    Ok(db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// A short name of the database backend, for logs.
pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "other",
    }
}

/// The current time in Unix milliseconds, the unit of every stored time.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    async fn pragma(db: &DatabaseConnection, name: &str) -> String {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("PRAGMA {name}"),
            ))
            .await
            .unwrap()
            .unwrap();
        match row.try_get_by_index::<String>(0) {
            Ok(text) => text,
            Err(_) => row.try_get_by_index::<i64>(0).unwrap().to_string(),
        }
    }

    #[tokio::test]
    async fn sqlite_connections_get_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = connect(&url).await.unwrap();
        assert_eq!(pragma(&db, "journal_mode").await, "wal");
        assert_eq!(
            pragma(&db, "wal_autocheckpoint").await,
            WAL_AUTOCHECKPOINT_PAGES
        );
        assert_eq!(
            pragma(&db, "journal_size_limit").await,
            WAL_SIZE_LIMIT_BYTES
        );
        // 2 is MEMORY.
        assert_eq!(pragma(&db, "temp_store").await, "2");
    }
}
