//! URL checks and their results.

use entity::{host, url_check, url_check_result};
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
    model.updated_at = Set(now_ms());
}

/// Creates a URL check with its default thresholds.
pub async fn create(
    db: &sea_orm::DatabaseConnection,
    s: UrlCheckSettings,
) -> Result<url_check::Model> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
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
) -> Result<Vec<url_check_result::Model>> {
    get(db, id).await?;
    Ok(url_check_result::Entity::find()
        .filter(url_check_result::Column::UrlCheckId.eq(id))
        .order_by_desc(url_check_result::Column::CheckedAt)
        .order_by_desc(url_check_result::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
