//! Enrollment runs: every run's whole transcript, success or not (the newest few per host, a
//! failure repeated the same way counted on one run), and the facts a successful run records
//! on the host.

use entity::{enrollment_run, host, types::HostStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::{error::Result, probe::enrollment::Facts, store::now_ms};

/// A finished enrollment run.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub host_id: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub duration_ms: i64,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub provisioned: bool,
}

/// Whether the host's previous run (if any) worked.
pub async fn previous_ok(db: &impl ConnectionTrait, host_id: i64) -> Result<bool> {
    Ok(latest(db, host_id).await?.is_none_or(|r| r.ok))
}

/// Runs kept per host: the newest; older ones are deleted as new ones come.
pub const RUNS_KEPT: u64 = 20;

/// Stores a run. A failure the same as the host's latest run (same error, output and exit
/// code) is counted on that run instead of stored again; a host keeps its [`RUNS_KEPT`] newest
/// runs.
pub async fn insert(db: &impl ConnectionTrait, run: NewRun) -> Result<enrollment_run::Model> {
    if let Some(last) = latest(db, run.host_id).await?
        && !last.ok
        && run.error.is_some()
        && last.error == run.error
        && last.stdout == run.stdout
        && last.stderr == run.stderr
        && last.exit_code == run.exit_code
    {
        let mut repeated: enrollment_run::ActiveModel = last.clone().into();
        repeated.repeats = Set(last.repeats + 1);
        repeated.last_started_at = Set(Some(run.started_at));
        repeated.finished_at = Set(Some(run.finished_at));
        repeated.duration_ms = Set(Some(run.duration_ms));
        return Ok(repeated.update(db).await?);
    }
    let stored = enrollment_run::ActiveModel {
        host_id: Set(run.host_id),
        started_at: Set(run.started_at),
        finished_at: Set(Some(run.finished_at)),
        ok: Set(run.error.is_none()),
        exit_code: Set(run.exit_code),
        stdout: Set(run.stdout),
        stderr: Set(run.stderr),
        error: Set(run.error),
        provisioned: Set(run.provisioned),
        duration_ms: Set(Some(run.duration_ms)),
        repeats: Set(1),
        last_started_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let older: Vec<i64> = enrollment_run::Entity::find()
        .select_only()
        .column(enrollment_run::Column::Id)
        .filter(enrollment_run::Column::HostId.eq(stored.host_id))
        .order_by_desc(enrollment_run::Column::Id)
        .offset(RUNS_KEPT)
        .limit(1000)
        .into_tuple()
        .all(db)
        .await?;
    if !older.is_empty() {
        enrollment_run::Entity::delete_many()
            .filter(enrollment_run::Column::Id.is_in(older))
            .exec(db)
            .await?;
    }
    Ok(stored)
}

/// The most recent enrollment run of a host.
pub async fn latest(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<enrollment_run::Model>> {
    Ok(enrollment_run::Entity::find()
        .filter(enrollment_run::Column::HostId.eq(host_id))
        .order_by_desc(enrollment_run::Column::Id)
        .one(db)
        .await?)
}

/// Records what enrollment found and the status it implies: ok ("enrolled") for a supported
/// host that was not ok, `unsupported` with its `uname -a` otherwise.
pub async fn record_facts(db: &impl ConnectionTrait, host: &host::Model, f: &Facts) -> Result<()> {
    let mut model: host::ActiveModel = host.clone().into();
    model.os_id = Set(f.os_id.clone());
    model.os_name = Set(f.os_name.clone());
    model.os_version = Set(f.os_version.clone());
    model.kernel = Set(f.kernel.clone());
    model.arch = Set(f.arch.clone());
    model.hostname = Set(f.hostname.clone());
    model.uname = Set(f.uname.clone());
    model.cpu_model = Set(f.cpu_model.clone());
    model.cpu_count = Set(f.cpu_count.map(|c| c as i32));
    model.memory_total_bytes = Set(f.memory_total_bytes.map(|m| m as i64));
    model.has_nvidia = Set(Some(f.has_nvidia));
    model.enrolled_at = Set(Some(now_ms()));
    model.updated_at = Set(now_ms());
    if f.supported() {
        if host.status != HostStatus::Ok {
            model.status = Set(HostStatus::Ok);
            model.status_message = Set(Some("enrolled".into()));
        }
    } else {
        model.status = Set(HostStatus::Unsupported);
        model.status_message = Set(Some(format!(
            "not a Linux host with /proc: {}",
            f.uname
                .clone()
                .unwrap_or_else(|| "uname -a printed nothing".into())
        )));
    }
    model.update(db).await?;
    Ok(())
}
