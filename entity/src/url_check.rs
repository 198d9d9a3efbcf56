//! A URL watched for its status, response time and TLS certificate.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "url_checks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub url: String,
    pub schedule: String,
    pub expected_status: String,
    pub timeout_ms: i32,
    pub follow_redirects: bool,
    pub check_tls: bool,
    pub host_id: Option<i64>,
    pub enabled: bool,
    /// Extra trusted CA certificates (PEM).
    pub ca_pem: Option<String>,
    /// Whether the request needs a certificate chain that validates.
    pub tls_verify: bool,
    /// A pinned leaf certificate: SHA-256 of its DER, lowercase hex; trusted whatever signs it.
    pub tls_fingerprint: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
