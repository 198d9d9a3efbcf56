//! A monitored host: where to reach it, its status and the facts enrollment found.

use sea_orm::entity::prelude::*;

use crate::types::HostStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "hosts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub address: String,
    pub port: i32,
    pub username: String,
    pub status: HostStatus,
    pub status_message: Option<String>,
    pub enabled: bool,
    pub schedule: String,
    pub provision: bool,
    pub expected_host_key_fingerprint: Option<String>,
    pub os_id: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    pub cpu_count: Option<i32>,
    pub memory_total_bytes: Option<i64>,
    pub has_nvidia: Option<bool>,
    pub uname: Option<String>,
    pub enrolled_at: Option<i64>,
    pub last_poll_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
