//! The store: connecting to the database, running migrations, and the queries the API and the
//! pollers share, one module per resource over the `entity` crate.
//!
//! SQLite is opened in WAL mode with foreign keys on, so deleting a host removes its rows and
//! readers never block the writer; PostgreSQL is used as given by `DATABASE_URL`.

pub mod channels;
pub mod deliveries;
pub mod history;
pub mod hosts;
pub mod notifications;
pub mod retention;
pub mod ssh;
pub mod thresholds;
pub mod tokens;
pub mod url_checks;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

use crate::error::Result;

/// Opens the database at `url`, creating a SQLite file when needed.
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
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
        });
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's rule; a small pool keeps readers concurrent in WAL mode.
        options.max_connections(4).min_connections(1);
    } else {
        options.max_connections(16);
    }
    Ok(Database::connect(options).await?)
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
