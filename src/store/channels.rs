//! Notification channels (settings JSON plus sealed secrets) and their delivery log.

use entity::{
    channel, delivery, host,
    types::{ChannelKind, Level},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::{
    channel::{PublicSettings, SecretSettings},
    crypto::SecretBox,
    error::{Error, Result},
    store::now_ms,
};

/// The purpose channel secrets are sealed under.
pub const SECRETS_PURPOSE: &str = "channel.secrets";

/// A validated channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub name: String,
    pub kind: ChannelKind,
    pub enabled: bool,
    pub min_level: Level,
    pub host_id: Option<i64>,
    pub label: Option<String>,
    pub public: PublicSettings,
    pub secret: SecretSettings,
}

fn not_found(id: i64) -> Error {
    Error::NotFound(format!("no channel with id {id}"))
}

/// Reads a stored channel back into settings, opening its secrets.
pub fn settings_of(secrets: &SecretBox, row: &channel::Model) -> Result<ChannelSettings> {
    let public: PublicSettings = serde_json::from_str(&row.settings)
        .map_err(|e| Error::stored(format!("settings of channel {}", row.id), e))?;
    let secret = match &row.secrets_enc {
        Some(sealed) => {
            let json = secrets.open_str(SECRETS_PURPOSE, sealed)?;
            serde_json::from_str(&json)
                .map_err(|e| Error::stored(format!("secrets of channel {}", row.id), e))?
        }
        None => SecretSettings::default(),
    };
    Ok(ChannelSettings {
        name: row.name.clone(),
        kind: row.kind,
        enabled: row.enabled,
        min_level: row.min_level,
        host_id: row.host_id,
        label: row.label.clone(),
        public,
        secret,
    })
}

async fn check_refs(
    db: &impl ConnectionTrait,
    s: &ChannelSettings,
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
    let mut same = channel::Entity::find().filter(channel::Column::Name.eq(s.name.as_str()));
    if let Some(id) = except {
        same = same.filter(channel::Column::Id.ne(id));
    }
    if same.count(db).await? > 0 {
        return Err(Error::Conflict(format!(
            "a channel named {:?} already exists",
            s.name
        )));
    }
    Ok(())
}

fn apply(secrets: &SecretBox, model: &mut channel::ActiveModel, s: &ChannelSettings) -> Result<()> {
    model.name = Set(s.name.clone());
    model.kind = Set(s.kind);
    model.enabled = Set(s.enabled);
    model.min_level = Set(s.min_level);
    model.host_id = Set(s.host_id);
    model.label = Set(s.label.clone());
    model.settings = Set(serde_json::to_string(&s.public).expect("settings serialise"));
    model.secrets_enc = Set(if s.secret == SecretSettings::default() {
        None
    } else {
        let json =
            zeroize::Zeroizing::new(serde_json::to_string(&s.secret).expect("secrets serialise"));
        Some(secrets.seal_str(SECRETS_PURPOSE, &json)?)
    });
    model.updated_at = Set(now_ms());
    Ok(())
}

/// Creates a channel.
pub async fn create(
    db: &impl ConnectionTrait,
    secrets: &SecretBox,
    s: &ChannelSettings,
) -> Result<channel::Model> {
    check_refs(db, s, None).await?;
    let mut model = channel::ActiveModel {
        created_at: Set(now_ms()),
        ..Default::default()
    };
    apply(secrets, &mut model, s)?;
    model.insert(db).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a channel named {:?} already exists", s.name))
    })
}

/// One channel.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<channel::Model> {
    channel::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Channels by id, with the total.
pub async fn list(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<channel::Model>, u64)> {
    let total = channel::Entity::find().count(db).await?;
    let items = channel::Entity::find()
        .order_by_asc(channel::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((items, total))
}

/// Replaces a channel's settings.
pub async fn update(
    db: &impl ConnectionTrait,
    secrets: &SecretBox,
    id: i64,
    s: &ChannelSettings,
) -> Result<channel::Model> {
    let current = get(db, id).await?;
    check_refs(db, s, Some(id)).await?;
    let mut model: channel::ActiveModel = current.into();
    apply(secrets, &mut model, s)?;
    model.update(db).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a channel named {:?} already exists", s.name))
    })
}

/// Deletes a channel and its delivery log.
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    if channel::Entity::delete_by_id(id)
        .exec(db)
        .await?
        .rows_affected
        == 0
    {
        return Err(not_found(id));
    }
    Ok(())
}

/// A channel's deliveries, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    id: i64,
    limit: u64,
    offset: u64,
) -> Result<(Vec<delivery::Model>, u64)> {
    get(db, id).await?;
    let of_channel = || delivery::Entity::find().filter(delivery::Column::ChannelId.eq(id));
    let total = of_channel().count(db).await?;
    let rows = of_channel()
        .order_by_desc(delivery::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}
