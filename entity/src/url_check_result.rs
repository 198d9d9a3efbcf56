//! One run of a URL check.

use sea_orm::entity::prelude::*;

use crate::types::UrlErrorKind;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "url_check_results")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub url_check_id: i64,
    pub checked_at: i64,
    pub ok: bool,
    pub status_code: Option<i32>,
    pub response_ms: Option<i64>,
    pub error_kind: Option<UrlErrorKind>,
    pub error: Option<String>,
    pub tls_not_before: Option<i64>,
    pub tls_not_after: Option<i64>,
    pub tls_days_left: Option<f64>,
    pub tls_subject: Option<String>,
    pub tls_issuer: Option<String>,
    pub tls_sans: Option<String>,
    pub tls_serial: Option<String>,
    pub chain_valid: Option<bool>,
    pub chain_error: Option<String>,
    /// SHA-256 of the leaf certificate's DER, lowercase hex.
    pub tls_fingerprint: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
