//! `/healthz`, `/readyz` and `/api/v1/cluster`: whether the service runs, whether it can serve
//! (its database answers), and which node of those sharing the database polls.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::types::NodeRole;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use crate::{
    api::{ApiResult, ApiTags, Auth, ts},
    services::Services,
    store::cluster,
};

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process answers.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    #[oai(status = 200)]
    Ok(Json<Health>),
}

/// Whether this node can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    Unavailable,
}

/// What `/readyz` found.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Readiness {
    pub status: ReadyStatus,
    /// `ok`, or why the database did not answer.
    pub database: String,
    /// `leader`: this node polls, checks URLs and delivers; `standby`: it serves the API and
    /// takes over when the leader is gone.
    pub role: NodeRole,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The database does not answer within 2 s.
    #[oai(status = 503)]
    Unavailable(Json<Readiness>),
}

/// How a node shares its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ClusterMode {
    /// The only process on its database (SQLite, locked).
    Single,
    /// One of the nodes on a PostgreSQL database, which elect the polling node by lease.
    Shared,
}

/// The lease: which node polls, until when.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LeaseInfo {
    pub holder: String,
    /// Raised at every change of holder.
    pub epoch: i64,
    pub acquired_at: DateTime<Utc>,
    /// The database's time; a standby takes over after it.
    pub expires_at: DateTime<Utc>,
}

/// A node serving this database.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NodeInfo {
    pub node_id: String,
    pub hostname: String,
    pub pid: i32,
    pub listen: String,
    pub version: String,
    pub role: NodeRole,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat, by the database's clock.
    pub heartbeat_at: DateTime<Utc>,
    /// Heard from within two lease periods (or, alone on its database, within a minute).
    pub alive: bool,
    /// The node that answered this request.
    pub this_node: bool,
}

/// The nodes on this database.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Cluster {
    pub mode: ClusterMode,
    /// The node that answered.
    pub this_node: Option<String>,
    /// A standby takes over within this long after the leader is gone.
    pub lease_period_ms: Option<i64>,
    pub lease: Option<LeaseInfo>,
    pub nodes: Vec<NodeInfo>,
    /// The database's clock, which every time above is read from.
    pub database_time: DateTime<Utc>,
}

#[derive(ApiResponse)]
pub enum ClusterResponse {
    #[oai(status = 200)]
    Ok(Json<Cluster>),
}

/// Health and cluster state.
pub struct ServiceApi(pub Services);

impl ServiceApi {
    fn role(&self) -> NodeRole {
        if self.0.poller.fence().is_leader() {
            NodeRole::Leader
        } else {
            NodeRole::Standby
        }
    }
}

#[OpenApi(tag = "ApiTags::Service")]
impl ServiceApi {
    /// Liveness
    ///
    /// The process answers HTTP. No token needed.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Readiness
    ///
    /// The database answers (within 2 s), and this node's role. No token needed: for load
    /// balancers and orchestrators.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> ReadyResponse {
        let role = self.role();
        match tokio::time::timeout(READY_TIMEOUT, cluster::db_now(&self.0.db)).await {
            Ok(Ok(_)) => ReadyResponse::Ready(Json(Readiness {
                status: ReadyStatus::Ready,
                database: "ok".into(),
                role,
            })),
            Ok(Err(e)) => ReadyResponse::Unavailable(Json(Readiness {
                status: ReadyStatus::Unavailable,
                database: e.to_string(),
                role,
            })),
            Err(_) => ReadyResponse::Unavailable(Json(Readiness {
                status: ReadyStatus::Unavailable,
                database: format!("no answer within {READY_TIMEOUT:?}"),
                role,
            })),
        }
    }

    /// Nodes and lease
    ///
    /// Every node serving this database with its role and last heartbeat, and the lease that
    /// says which one polls.
    #[oai(path = "/api/v1/cluster", method = "get", operation_id = "get_cluster")]
    async fn cluster(&self, _auth: Auth) -> ApiResult<ClusterResponse> {
        let db = &self.0.db;
        let now = cluster::db_now(db).await?;
        let (this_node, period) = match self.0.node() {
            Some((node, period)) => (Some(node.node_id.clone()), *period),
            None => (None, None),
        };
        let fresh_ms = period.map_or(60_000, |p| 2 * p.as_millis() as i64);
        let lease = match period {
            Some(_) => cluster::lease(db).await?.map(|l| LeaseInfo {
                holder: l.holder,
                epoch: l.epoch,
                acquired_at: ts(l.acquired_at),
                expires_at: ts(l.expires_at),
            }),
            None => None,
        };
        let nodes = cluster::nodes(db)
            .await?
            .into_iter()
            .map(|n| NodeInfo {
                this_node: this_node.as_deref() == Some(n.node_id.as_str()),
                alive: now - n.heartbeat_at <= fresh_ms,
                node_id: n.node_id,
                hostname: n.hostname,
                pid: n.pid,
                listen: n.listen,
                version: n.version,
                role: n.role,
                started_at: ts(n.started_at),
                heartbeat_at: ts(n.heartbeat_at),
            })
            .collect();
        Ok(ClusterResponse::Ok(Json(Cluster {
            mode: if period.is_some() {
                ClusterMode::Shared
            } else {
                ClusterMode::Single
            },
            this_node,
            lease_period_ms: period.map(|p| p.as_millis() as i64),
            lease,
            nodes,
            database_time: ts(now),
        })))
    }
}
