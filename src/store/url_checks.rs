//! URL checks and their results.

use entity::{host, types::UrlErrorKind, url_check, url_check_result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::{
    error::{Error, Result},
    store::now_ms,
};

/// A validated URL check.
#[derive(Debug, Clone)]
pub struct UrlCheckSettings {
    pub name: String,
    pub url: String,
    pub schedule: String,
    pub expected_status: String,
    pub timeout_ms: i32,
    pub follow_redirects: bool,
    pub check_tls: bool,
    pub host_id: Option<i64>,
    pub enabled: bool,
    pub ca_pem: Option<String>,
    pub tls_verify: bool,
    /// Normalized: lowercase hex without separators.
    pub tls_fingerprint: Option<String>,
}

fn not_found(id: i64) -> Error {
    Error::NotFound(format!("no URL check with id {id}"))
}

async fn check_refs(
    db: &impl ConnectionTrait,
    s: &UrlCheckSettings,
    except: Option<i64>,
) -> Result<()> {
    if let Some(host_id) = s.host_id
        && host::Entity::find_by_id(host_id).count(db).await? == 0
    {
        return Err(Error::invalid(
            "host_id",
            format!("no host with id {host_id}"),
        ));
    }
    let mut same_name =
        url_check::Entity::find().filter(url_check::Column::Name.eq(s.name.as_str()));
    if let Some(id) = except {
        same_name = same_name.filter(url_check::Column::Id.ne(id));
    }
    if same_name.count(db).await? > 0 {
        return Err(Error::Conflict(format!(
            "a URL check named {:?} already exists",
            s.name
        )));
    }
    Ok(())
}

fn apply(model: &mut url_check::ActiveModel, s: UrlCheckSettings) {
    model.name = Set(s.name);
    model.url = Set(s.url);
    model.schedule = Set(s.schedule);
    model.expected_status = Set(s.expected_status);
    model.timeout_ms = Set(s.timeout_ms);
    model.follow_redirects = Set(s.follow_redirects);
    model.check_tls = Set(s.check_tls);
    model.host_id = Set(s.host_id);
    model.enabled = Set(s.enabled);
    model.ca_pem = Set(s.ca_pem);
    model.tls_verify = Set(s.tls_verify);
    model.tls_fingerprint = Set(s.tls_fingerprint);
    model.updated_at = Set(now_ms());
}

/// Creates a URL check with its default thresholds.
pub async fn create(
    db: &sea_orm::DatabaseConnection,
    s: UrlCheckSettings,
) -> Result<url_check::Model> {
    let txn = super::begin_write(db).await?;
    check_refs(&txn, &s, None).await?;
    let name = s.name.clone();
    let mut model = url_check::ActiveModel {
        created_at: Set(now_ms()),
        ..Default::default()
    };
    apply(&mut model, s);
    let row = model.insert(&txn).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a URL check named {name:?} already exists"))
    })?;
    crate::store::thresholds::create_url_defaults(&txn, row.id).await?;
    txn.commit().await?;
    Ok(row)
}

/// Every URL check (the scheduler's start-up list).
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<url_check::Model>> {
    Ok(url_check::Entity::find()
        .order_by_asc(url_check::Column::Id)
        .all(db)
        .await?)
}

/// One URL check.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<url_check::Model> {
    url_check::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| not_found(id))
}

/// URL checks by id, with the total.
pub async fn list(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<url_check::Model>, u64)> {
    let total = url_check::Entity::find().count(db).await?;
    let items = url_check::Entity::find()
        .order_by_asc(url_check::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((items, total))
}

/// Replaces a URL check's settings (the API merges a PATCH into the current settings first).
pub async fn update(
    db: &impl ConnectionTrait,
    id: i64,
    s: UrlCheckSettings,
) -> Result<url_check::Model> {
    let current = get(db, id).await?;
    check_refs(db, &s, Some(id)).await?;
    let name = s.name.clone();
    let mut model: url_check::ActiveModel = current.into();
    apply(&mut model, s);
    model.update(db).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a URL check named {name:?} already exists"))
    })
}

/// Deletes a URL check and its results.
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    if url_check::Entity::delete_by_id(id)
        .exec(db)
        .await?
        .rows_affected
        == 0
    {
        return Err(not_found(id));
    }
    Ok(())
}

/// The latest results of a check, newest first.
pub async fn results(
    db: &impl ConnectionTrait,
    id: i64,
    limit: u64,
    offset: u64,
) -> Result<(Vec<url_check_result::Model>, u64)> {
    get(db, id).await?;
    let of_check =
        || url_check_result::Entity::find().filter(url_check_result::Column::UrlCheckId.eq(id));
    let total = of_check().count(db).await?;
    let rows = of_check()
        .order_by_desc(url_check_result::Column::CheckedAt)
        .order_by_desc(url_check_result::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// What one run of a check found, as its result row stores it.
#[derive(Debug, Clone, Default)]
pub struct NewResult {
    pub checked_at: i64,
    pub status_code: Option<u16>,
    pub response_ms: Option<i64>,
    pub error: Option<(UrlErrorKind, String)>,
    pub tls: Option<TlsFacts>,
}

/// The certificate a run saw.
#[derive(Debug, Clone)]
pub struct TlsFacts {
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub days_left: f64,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub serial: String,
    pub chain_valid: bool,
    pub chain_error: Option<String>,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint: String,
}

/// One check, when it exists.
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<url_check::Model>> {
    Ok(url_check::Entity::find_by_id(id).one(db).await?)
}

/// Every check's id, whether it is enabled, and its schedule: what the scheduler needs.
pub async fn schedules(db: &impl ConnectionTrait) -> Result<Vec<(i64, bool, String)>> {
    Ok(url_check::Entity::find()
        .select_only()
        .columns([
            url_check::Column::Id,
            url_check::Column::Enabled,
            url_check::Column::Schedule,
        ])
        .into_tuple()
        .all(db)
        .await?)
}

/// Stores the result of one run of check `id`.
pub async fn insert_result(
    db: &impl ConnectionTrait,
    id: i64,
    r: NewResult,
) -> Result<url_check_result::Model> {
    let tls = r.tls;
    let (error_kind, error) = r.error.map_or((None, None), |(k, m)| (Some(k), Some(m)));
    Ok(url_check_result::ActiveModel {
        url_check_id: Set(id),
        checked_at: Set(r.checked_at),
        ok: Set(error_kind.is_none()),
        status_code: Set(r.status_code.map(i32::from)),
        response_ms: Set(r.response_ms),
        error_kind: Set(error_kind),
        error: Set(error),
        tls_not_before: Set(tls.as_ref().map(|t| t.not_before_ms)),
        tls_not_after: Set(tls.as_ref().map(|t| t.not_after_ms)),
        tls_days_left: Set(tls.as_ref().map(|t| t.days_left)),
        tls_subject: Set(tls.as_ref().map(|t| t.subject.clone())),
        tls_issuer: Set(tls.as_ref().map(|t| t.issuer.clone())),
        tls_sans: Set(tls.as_ref().map(|t| t.sans.join("\n"))),
        tls_serial: Set(tls.as_ref().map(|t| t.serial.clone())),
        chain_valid: Set(tls.as_ref().map(|t| t.chain_valid)),
        chain_error: Set(tls.as_ref().and_then(|t| t.chain_error.clone())),
        tls_fingerprint: Set(tls.map(|t| t.fingerprint)),
        ..Default::default()
    }
    .insert(db)
    .await?)
}
