//! Hosts, their labels, credentials and pinned host keys.
//!
//! Creating or changing a host touches several tables; each change runs in one transaction so a
//! failure never leaves a host without its credentials or thresholds.

use std::collections::HashMap;

use entity::{
    host, host_credential, host_key, host_label,
    types::{AuthMethod, CredentialSource, HostStatus},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use zeroize::Zeroizing;

use crate::{
    crypto::SecretBox,
    error::{Error, Result},
    store::now_ms,
};

/// Purposes the credential columns are sealed under.
pub const PRIVATE_KEY_PURPOSE: &str = "host_credential.private_key";
pub const PASSPHRASE_PURPOSE: &str = "host_credential.passphrase";
pub const PASSWORD_PURPOSE: &str = "host_credential.password";

/// Login material for a host, in clear only for as long as it takes to seal it.
pub enum NewCredential {
    PrivateKey {
        key: Zeroizing<String>,
        passphrase: Option<Zeroizing<String>>,
        algorithm: String,
        public_key: String,
    },
    Password(Zeroizing<String>),
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PrivateKey { algorithm, .. } => write!(f, "PrivateKey({algorithm}, <redacted>)"),
            Self::Password(_) => f.write_str("Password(<redacted>)"),
        }
    }
}

/// A validated registration.
#[derive(Debug)]
pub struct NewHost {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub credential: NewCredential,
    pub schedule: String,
    pub labels: Vec<String>,
    pub expected_host_key_fingerprint: Option<String>,
    pub provision: bool,
    pub enabled: bool,
}

/// A validated partial update; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct HostChanges {
    pub name: Option<String>,
    pub address: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub credential: Option<NewCredential>,
    pub schedule: Option<String>,
    pub labels: Option<Vec<String>>,
    pub expected_host_key_fingerprint: Option<Option<String>>,
    pub provision: Option<bool>,
    pub enabled: Option<bool>,
}

/// A host with what the API shows about it.
#[derive(Debug, Clone)]
pub struct HostView {
    pub host: host::Model,
    pub labels: Vec<String>,
    pub auth_method: Option<AuthMethod>,
    pub key_algorithm: Option<String>,
    pub public_key: Option<String>,
    pub trusted_key: Option<host_key::Model>,
}

/// Filters and paging for [`list`].
#[derive(Debug, Default)]
pub struct HostFilter {
    pub status: Option<HostStatus>,
    pub label: Option<String>,
    pub limit: u64,
    pub offset: u64,
}

fn sealed_credential(
    secrets: &SecretBox,
    host_id: i64,
    credential: &NewCredential,
) -> Result<host_credential::ActiveModel> {
    let mut model = host_credential::ActiveModel {
        host_id: Set(host_id),
        source: Set(CredentialSource::Registered),
        updated_at: Set(now_ms()),
        ..Default::default()
    };
    match credential {
        NewCredential::PrivateKey {
            key,
            passphrase,
            algorithm,
            public_key,
        } => {
            model.auth_method = Set(AuthMethod::PrivateKey);
            model.private_key_enc = Set(Some(secrets.seal_str(PRIVATE_KEY_PURPOSE, key)?));
            model.passphrase_enc = Set(match passphrase {
                Some(p) => Some(secrets.seal_str(PASSPHRASE_PURPOSE, p)?),
                None => None,
            });
            model.password_enc = Set(None);
            model.key_algorithm = Set(Some(algorithm.clone()));
            model.public_key = Set(Some(public_key.clone()));
        }
        NewCredential::Password(password) => {
            model.auth_method = Set(AuthMethod::Password);
            model.private_key_enc = Set(None);
            model.passphrase_enc = Set(None);
            model.password_enc = Set(Some(secrets.seal_str(PASSWORD_PURPOSE, password)?));
            model.key_algorithm = Set(None);
            model.public_key = Set(None);
        }
    }
    Ok(model)
}

async fn ensure_name_free(
    db: &impl ConnectionTrait,
    name: &str,
    except: Option<i64>,
) -> Result<()> {
    let mut query = host::Entity::find().filter(host::Column::Name.eq(name));
    if let Some(id) = except {
        query = query.filter(host::Column::Id.ne(id));
    }
    if query.count(db).await? > 0 {
        return Err(Error::Conflict(format!(
            "a host named {name:?} already exists"
        )));
    }
    Ok(())
}

async fn replace_labels(db: &impl ConnectionTrait, host_id: i64, labels: &[String]) -> Result<()> {
    host_label::Entity::delete_many()
        .filter(host_label::Column::HostId.eq(host_id))
        .exec(db)
        .await?;
    let rows = labels.iter().map(|label| host_label::ActiveModel {
        host_id: Set(host_id),
        label: Set(label.clone()),
        ..Default::default()
    });
    host_label::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Registers a host with its credentials and labels (its thresholds are inherited).
pub async fn create(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    new: NewHost,
) -> Result<HostView> {
    let txn = super::begin_write(db).await?;
    ensure_name_free(&txn, &new.name, None).await?;
    let now = now_ms();
    let host = host::ActiveModel {
        name: Set(new.name.clone()),
        address: Set(new.address),
        port: Set(i32::from(new.port)),
        username: Set(new.username),
        status: Set(HostStatus::Pending),
        status_message: Set(Some("waiting for enrollment".into())),
        enabled: Set(new.enabled),
        schedule: Set(new.schedule),
        provision: Set(new.provision),
        expected_host_key_fingerprint: Set(new.expected_host_key_fingerprint),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        Error::conflict_on_unique(e, format!("a host named {:?} already exists", new.name))
    })?;
    sealed_credential(secrets, host.id, &new.credential)?
        .insert(&txn)
        .await?;
    replace_labels(&txn, host.id, &new.labels).await?;
    txn.commit().await?;
    get(db, host.id).await
}

/// One host's row, when it exists.
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<host::Model>> {
    Ok(host::Entity::find_by_id(id).one(db).await?)
}

/// Every host's id, whether it is enabled, and its schedule: what the scheduler needs.
pub async fn schedules(db: &impl ConnectionTrait) -> Result<Vec<(i64, bool, String)>> {
    Ok(host::Entity::find()
        .select_only()
        .columns([
            host::Column::Id,
            host::Column::Enabled,
            host::Column::Schedule,
        ])
        .into_tuple()
        .all(db)
        .await?)
}

/// One host, or `NotFound`.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<HostView> {
    let host = host::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no host with id {id}")))?;
    Ok(views(db, vec![host]).await?.remove(0))
}

/// Hosts matching `filter`, ordered by id, with the total number that match.
pub async fn list(db: &impl ConnectionTrait, filter: &HostFilter) -> Result<(Vec<HostView>, u64)> {
    let mut query = host::Entity::find();
    if let Some(status) = &filter.status {
        query = query.filter(host::Column::Status.eq(*status));
    }
    if let Some(label) = &filter.label {
        let with_label = host_label::Entity::find()
            .select_only()
            .column(host_label::Column::HostId)
            .filter(host_label::Column::Label.eq(label.as_str()))
            .into_query();
        query = query.filter(host::Column::Id.in_subquery(with_label));
    }
    let total = query.clone().count(db).await?;
    let hosts = query
        .order_by_asc(host::Column::Id)
        .limit(filter.limit)
        .offset(filter.offset)
        .all(db)
        .await?;
    Ok((views(db, hosts).await?, total))
}

/// Adds labels, credential descriptions and trusted keys to hosts, in one query per table.
async fn views(db: &impl ConnectionTrait, hosts: Vec<host::Model>) -> Result<Vec<HostView>> {
    let ids: Vec<i64> = hosts.iter().map(|h| h.id).collect();
    let mut labels: HashMap<i64, Vec<String>> = HashMap::new();
    for row in host_label::Entity::find()
        .filter(host_label::Column::HostId.is_in(ids.clone()))
        .order_by_asc(host_label::Column::Id)
        .all(db)
        .await?
    {
        labels.entry(row.host_id).or_default().push(row.label);
    }
    let mut credentials: HashMap<i64, host_credential::Model> = host_credential::Entity::find()
        .filter(host_credential::Column::HostId.is_in(ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.host_id, c))
        .collect();
    let mut keys: HashMap<i64, host_key::Model> = host_key::Entity::find()
        .filter(host_key::Column::HostId.is_in(ids))
        .filter(host_key::Column::Trusted.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|k| (k.host_id, k))
        .collect();
    Ok(hosts
        .into_iter()
        .map(|host| {
            let credential = credentials.remove(&host.id);
            HostView {
                labels: labels.remove(&host.id).unwrap_or_default(),
                auth_method: credential.as_ref().map(|c| c.auth_method),
                key_algorithm: credential.as_ref().and_then(|c| c.key_algorithm.clone()),
                public_key: credential.and_then(|c| c.public_key),
                trusted_key: keys.remove(&host.id),
                host,
            }
        })
        .collect())
}

/// Applies a partial update. A status such as `auth_failed` stays until a poll with the new
/// settings proves otherwise (and then its resolution is notified).
pub async fn update(
    db: &DatabaseConnection,
    secrets: &SecretBox,
    id: i64,
    changes: HostChanges,
) -> Result<HostView> {
    let txn = super::begin_write(db).await?;
    let current = host::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no host with id {id}")))?;
    if let Some(name) = &changes.name {
        ensure_name_free(&txn, name, Some(id)).await?;
    }
    let mut model: host::ActiveModel = current.clone().into();
    if let Some(v) = changes.name.clone() {
        model.name = Set(v);
    }
    if let Some(v) = changes.address {
        model.address = Set(v);
    }
    if let Some(v) = changes.port {
        model.port = Set(i32::from(v));
    }
    if let Some(v) = changes.username {
        model.username = Set(v);
    }
    if let Some(v) = changes.schedule {
        model.schedule = Set(v);
    }
    if let Some(v) = changes.expected_host_key_fingerprint {
        model.expected_host_key_fingerprint = Set(v);
    }
    if let Some(v) = changes.provision {
        model.provision = Set(v);
    }
    if let Some(v) = changes.enabled {
        model.enabled = Set(v);
    }
    if let Some(credential) = &changes.credential {
        host_credential::Entity::delete_many()
            .filter(host_credential::Column::HostId.eq(id))
            .exec(&txn)
            .await?;
        sealed_credential(secrets, id, credential)?
            .insert(&txn)
            .await?;
    }
    if let Some(labels) = &changes.labels {
        replace_labels(&txn, id, labels).await?;
    }
    model.updated_at = Set(now_ms());
    model.update(&txn).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a host named {:?} already exists", changes.name))
    })?;
    txn.commit().await?;
    get(db, id).await
}

/// Deletes a host and, through foreign keys, everything recorded about it.
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    let result = host::Entity::delete_by_id(id).exec(db).await?;
    if result.rows_affected == 0 {
        return Err(Error::NotFound(format!("no host with id {id}")));
    }
    Ok(())
}

/// Every host's name, by id.
pub async fn names(db: &impl ConnectionTrait) -> Result<std::collections::HashMap<i64, String>> {
    Ok(host::Entity::find()
        .select_only()
        .columns([host::Column::Id, host::Column::Name])
        .into_tuple::<(i64, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// How many hosts have each status.
pub async fn count_by_status(db: &impl ConnectionTrait) -> Result<Vec<(HostStatus, u64)>> {
    let rows: Vec<(HostStatus, i64)> = host::Entity::find()
        .select_only()
        .column(host::Column::Status)
        .column_as(host::Column::Id.count(), "n")
        .group_by(host::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
}
