//! Instances sharing a database: node heartbeats, the lease that says which node polls, the
//! fence that keeps a deposed leader from committing, and the log of configuration changes the
//! leader follows.
//!
//! Every time here is the database's clock, never the application's: nodes on different
//! machines disagree about the time, the database is the one clock they all read. A lease is
//! one row; taking it over raises its epoch, and every transaction that stores the results of
//! leader-only work (polls, alert changes, URL check results, deliveries) first reads the row
//! `FOR SHARE` and requires its own holder, epoch and an unexpired lease. The shared row lock
//! makes a takeover wait for those transactions to end, so once a new holder has the lease no
//! transaction of the old one can commit.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use entity::{
    cluster_lease, cluster_node, config_change,
    types::{ChangeKind, NodeRole},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value, prelude::Expr,
};

use crate::error::{Error, Result};

/// The lease's one row.
const LEASE_ID: i32 = 1;

/// The database's time in Unix milliseconds, as SQL.
fn now_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

/// A statement with `$n` placeholders (PostgreSQL) or `?` (SQLite).
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                        chars.next();
                    }
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    Statement::from_sql_and_values(backend, sql.replace("{now}", now_sql(backend)), values)
}

/// The database's clock now.
pub async fn db_now(db: &impl ConnectionTrait) -> Result<i64> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(statement(backend, "SELECT {now} AS now", vec![]))
        .await?
        .ok_or_else(|| Error::Internal("the clock query returned nothing".into()))?;
    Ok(row.try_get::<i64>("", "now")?)
}

/// Who a node is, for its row.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_id: String,
    pub hostname: String,
    pub pid: u32,
    pub listen: String,
    pub version: String,
    /// When it started (its own clock: only shown).
    pub started_at: i64,
}

/// Writes the node's row with its role and a heartbeat at the database's time.
pub async fn heartbeat(db: &DatabaseConnection, node: &NodeInfo, role: NodeRole) -> Result<()> {
    let backend = db.get_database_backend();
    db.execute_raw(statement(
        backend,
        "INSERT INTO cluster_nodes (node_id, hostname, pid, listen, version, role, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, {now}) \
         ON CONFLICT (node_id) DO UPDATE SET role = excluded.role, heartbeat_at = excluded.heartbeat_at",
        vec![
            node.node_id.clone().into(),
            node.hostname.clone().into(),
            (node.pid as i32).into(),
            node.listen.clone().into(),
            node.version.clone().into(),
            role.as_str().into(),
            node.started_at.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Removes a node's row (it stopped).
pub async fn remove_node(db: &DatabaseConnection, node_id: &str) -> Result<()> {
    cluster_node::Entity::delete_by_id(node_id.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes the rows of nodes whose last heartbeat is older than `stale_ms` (database time).
pub async fn prune_nodes(db: &DatabaseConnection, stale_ms: i64) -> Result<u64> {
    let cutoff = db_now(db).await? - stale_ms;
    Ok(cluster_node::Entity::delete_many()
        .filter(cluster_node::Column::HeartbeatAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}

/// Every node's row, oldest start first.
pub async fn nodes(db: &DatabaseConnection) -> Result<Vec<cluster_node::Model>> {
    Ok(cluster_node::Entity::find()
        .order_by_asc(cluster_node::Column::StartedAt)
        .all(db)
        .await?)
}

/// The lease row, when any node ever took it.
pub async fn lease(db: &DatabaseConnection) -> Result<Option<cluster_lease::Model>> {
    Ok(cluster_lease::Entity::find_by_id(LEASE_ID).one(db).await?)
}

/// Takes or renews the lease for `ttl_ms` from the database's now, when it is free, expired or
/// already this node's. Returns its epoch, `None` when another node holds it. A new holder
/// gets the next epoch; a renewal keeps it.
pub async fn try_lease(db: &DatabaseConnection, node_id: &str, ttl_ms: i64) -> Result<Option<i64>> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(statement(
            backend,
            "INSERT INTO cluster_lease (id, holder, epoch, acquired_at, expires_at) \
             VALUES ($1, $2, 1, {now}, {now} + $3) \
             ON CONFLICT (id) DO UPDATE SET \
               epoch = CASE WHEN cluster_lease.holder = excluded.holder \
                            THEN cluster_lease.epoch ELSE cluster_lease.epoch + 1 END, \
               acquired_at = CASE WHEN cluster_lease.holder = excluded.holder \
                            THEN cluster_lease.acquired_at ELSE excluded.acquired_at END, \
               holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE cluster_lease.holder = excluded.holder OR cluster_lease.expires_at < {now} \
             RETURNING epoch",
            vec![LEASE_ID.into(), node_id.to_owned().into(), ttl_ms.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get::<i64>("", "epoch")?),
        None => None,
    })
}

/// Gives the lease up at once (a clean shutdown), so a standby need not wait for it to expire.
pub async fn release(db: &DatabaseConnection, node_id: &str, epoch: i64) -> Result<()> {
    cluster_lease::Entity::update_many()
        .col_expr(cluster_lease::Column::ExpiresAt, Expr::value(0i64))
        .filter(cluster_lease::Column::Holder.eq(node_id))
        .filter(cluster_lease::Column::Epoch.eq(epoch))
        .exec(db)
        .await?;
    Ok(())
}

/// What entitles this process to store the results of leader-only work. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Fence(Option<Arc<Term>>);

#[derive(Debug)]
struct Term {
    node_id: String,
    /// The epoch of the lease this node holds; 0 while it holds none.
    epoch: AtomicI64,
}

impl Fence {
    /// The only writer of its database (SQLite, whose data dir this process has locked; a
    /// test): nothing to check.
    pub fn sole() -> Self {
        Self(None)
    }

    /// One of several nodes on a database: writes need the lease (none held yet).
    pub fn leased(node_id: &str) -> Self {
        Self(Some(Arc::new(Term {
            node_id: node_id.to_owned(),
            epoch: AtomicI64::new(0),
        })))
    }

    /// This node's id, when it shares its database with others.
    pub fn node_id(&self) -> Option<&str> {
        self.0.as_ref().map(|t| t.node_id.as_str())
    }

    /// Whether this process needs no lease.
    pub fn is_sole(&self) -> bool {
        self.0.is_none()
    }

    /// From now on this node holds the lease of `epoch`.
    pub fn hold(&self, epoch: i64) {
        if let Some(term) = &self.0 {
            term.epoch.store(epoch, Ordering::SeqCst);
        }
    }

    /// This node holds no lease any more.
    pub fn lose(&self) {
        if let Some(term) = &self.0 {
            term.epoch.store(0, Ordering::SeqCst);
        }
    }

    /// The epoch held, if any (`None` for a sole writer).
    pub fn epoch(&self) -> Option<i64> {
        self.0
            .as_ref()
            .map(|t| t.epoch.load(Ordering::SeqCst))
            .filter(|e| *e > 0)
    }

    /// Whether this process believes it may do leader-only work (the database decides at
    /// commit).
    pub fn is_leader(&self) -> bool {
        self.is_sole() || self.epoch().is_some()
    }

    /// Begins a write transaction for leader-only work: refused unless this node still holds
    /// the lease (the lease row stays share-locked until the transaction ends).
    pub async fn begin(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction> {
        let txn = super::begin_write(db).await?;
        if let Some(term) = &self.0 {
            self.check_in(&txn, term).await?;
        }
        Ok(txn)
    }

    /// Whether this node still holds the lease, asked of the database (before a delivery is
    /// sent: a deposed leader sends nothing more).
    pub async fn check(&self, db: &DatabaseConnection) -> Result<()> {
        if let Some(term) = &self.0 {
            let txn = super::begin_write(db).await?;
            self.check_in(&txn, term).await?;
            txn.commit().await?;
        }
        Ok(())
    }

    async fn check_in(&self, txn: &DatabaseTransaction, term: &Term) -> Result<()> {
        let epoch = term.epoch.load(Ordering::SeqCst);
        if epoch == 0 {
            return Err(Error::NotLeader);
        }
        let backend = txn.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR SHARE"
        } else {
            ""
        };
        let held = txn
            .query_one_raw(statement(
                backend,
                &format!(
                    "SELECT epoch FROM cluster_lease WHERE id = $1 AND holder = $2 AND epoch = $3 \
                     AND expires_at > {{now}}{lock}"
                ),
                vec![LEASE_ID.into(), term.node_id.clone().into(), epoch.into()],
            ))
            .await?;
        if held.is_none() {
            return Err(Error::NotLeader);
        }
        Ok(())
    }
}

/// Records that `kind` of `target_id` changed through `node_id`'s API, for the leader to
/// follow.
pub async fn note_change(
    db: &DatabaseConnection,
    node_id: &str,
    kind: ChangeKind,
    target_id: i64,
) -> Result<()> {
    config_change::Entity::insert(config_change::ActiveModel {
        kind: Set(kind),
        target_id: Set(target_id),
        node_id: Set(node_id.to_owned()),
        at: Set(super::now_ms()),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(())
}

/// Changes after `after_id`, oldest first, at most `limit`.
pub async fn changes_after(
    db: &DatabaseConnection,
    after_id: i64,
    limit: u64,
) -> Result<Vec<config_change::Model>> {
    Ok(config_change::Entity::find()
        .filter(config_change::Column::Id.gt(after_id))
        .order_by_asc(config_change::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// The newest change's id (0 when none).
pub async fn last_change_id(db: &DatabaseConnection) -> Result<i64> {
    Ok(config_change::Entity::find()
        .order_by_desc(config_change::Column::Id)
        .one(db)
        .await?
        .map_or(0, |c| c.id))
}

/// Deletes changes recorded before `before_ms`.
pub async fn prune_changes(db: &DatabaseConnection, before_ms: i64) -> Result<u64> {
    Ok(config_change::Entity::delete_many()
        .filter(config_change::Column::At.lt(before_ms))
        .exec(db)
        .await?
        .rows_affected)
}

/// Applies every pending migration with the other nodes kept out: on PostgreSQL under a
/// transaction-scoped advisory lock (nodes starting together migrate one after the other; the
/// later ones find nothing to do). SQLite's data dir is locked by the process already.
pub async fn migrate_exclusively(db: &DatabaseConnection) -> Result<()> {
    use migration::{Migrator, MigratorTrait};
    if db.get_database_backend() != DbBackend::Postgres {
        return super::migrate(db).await;
    }
    let txn = super::begin_write(db).await?;
    txn.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        // "hostwatch" in ASCII: the key every node uses.
        "SELECT pg_advisory_xact_lock(6946234126847083892)",
    ))
    .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await?;
    Ok(())
}
