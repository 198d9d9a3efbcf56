//! What the SSH side reads and writes: decrypted logins, pinned host keys, the service's own key,
//! and the switch to the provisioned login.

use entity::{
    host, host_credential, host_key, service_secret,
    types::{AuthMethod, CredentialSource, HostStatus},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TryIntoModel,
};
use zeroize::Zeroizing;

use crate::{
    crypto::SecretBox,
    error::{Error, Result},
    store::{
        hosts::{PASSPHRASE_PURPOSE, PASSWORD_PURPOSE, PRIVATE_KEY_PURPOSE},
        now_ms,
    },
};

/// A host's login, decrypted for the length of a dial.
pub struct Login {
    pub credential_id: i64,
    pub updated_at: i64,
    pub private_key: Option<Zeroizing<String>>,
    pub passphrase: Option<Zeroizing<String>>,
    pub password: Option<Zeroizing<String>>,
}

/// Decrypts a host's credentials.
pub async fn login(db: &impl ConnectionTrait, secrets: &SecretBox, host_id: i64) -> Result<Login> {
    let c = host_credential::Entity::find()
        .filter(host_credential::Column::HostId.eq(host_id))
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("host {host_id} has no credentials")))?;
    let open = |purpose: &str, v: &Option<Vec<u8>>| {
        v.as_deref()
            .map(|b| secrets.open_str(purpose, b))
            .transpose()
    };
    Ok(Login {
        credential_id: c.id,
        updated_at: c.updated_at,
        private_key: open(PRIVATE_KEY_PURPOSE, &c.private_key_enc)?,
        passphrase: open(PASSPHRASE_PURPOSE, &c.passphrase_enc)?,
        password: open(PASSWORD_PURPOSE, &c.password_enc)?,
    })
}

/// The host key trusted for a host, if any.
pub async fn trusted_key(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<host_key::Model>> {
    Ok(host_key::Entity::find()
        .filter(host_key::Column::HostId.eq(host_id))
        .filter(host_key::Column::Trusted.eq(true))
        .one(db)
        .await?)
}

/// A presented host key in storable form.
#[derive(Debug, Clone)]
pub struct SeenKey {
    pub algorithm: String,
    pub public_key: String,
    pub fingerprint: String,
}

/// Records a key as seen: updates `last_seen_at` of a known one, or adds it (trusted or not).
pub async fn record_key(
    db: &impl ConnectionTrait,
    host_id: i64,
    key: &SeenKey,
    trusted: bool,
) -> Result<host_key::Model> {
    let now = now_ms();
    let existing = host_key::Entity::find()
        .filter(host_key::Column::HostId.eq(host_id))
        .filter(host_key::Column::Fingerprint.eq(key.fingerprint.as_str()))
        .one(db)
        .await?;
    let mut model: host_key::ActiveModel = match existing {
        Some(row) => row.into(),
        None => host_key::ActiveModel {
            host_id: Set(host_id),
            algorithm: Set(key.algorithm.clone()),
            public_key: Set(key.public_key.clone()),
            fingerprint: Set(key.fingerprint.clone()),
            first_seen_at: Set(now),
            ..Default::default()
        },
    };
    model.trusted = Set(trusted);
    model.last_seen_at = Set(now);
    Ok(model.save(db).await?.try_into_model()?)
}

/// Makes `key` the only trusted key of the host.
pub async fn trust_only(
    db: &sea_orm::DatabaseConnection,
    host_id: i64,
    key: &SeenKey,
) -> Result<host_key::Model> {
    let txn = super::begin_write(db).await?;
    host_key::Entity::update_many()
        .col_expr(
            host_key::Column::Trusted,
            sea_orm::sea_query::Expr::value(false),
        )
        .filter(host_key::Column::HostId.eq(host_id))
        .exec(&txn)
        .await?;
    let row = record_key(&txn, host_id, key, true).await?;
    txn.commit().await?;
    Ok(row)
}

/// Where the host's credentials came from (`None` without credentials).
pub async fn credential_source(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<CredentialSource>> {
    Ok(host_credential::Entity::find()
        .filter(host_credential::Column::HostId.eq(host_id))
        .one(db)
        .await?
        .map(|c| c.source))
}

/// Sets a host's status and message.
pub async fn set_status(
    db: &impl ConnectionTrait,
    host_id: i64,
    status: HostStatus,
    message: Option<String>,
) -> Result<()> {
    host::Entity::update_many()
        .col_expr(
            host::Column::Status,
            sea_orm::sea_query::Expr::value(status),
        )
        .col_expr(
            host::Column::StatusMessage,
            sea_orm::sea_query::Expr::value(message),
        )
        .col_expr(
            host::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now_ms()),
        )
        .filter(host::Column::Id.eq(host_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The service's own SSH key pair (OpenSSH private key text, public key line), made on first use.
pub async fn service_key(
    db: &impl ConnectionTrait,
    secrets: &SecretBox,
) -> Result<(Zeroizing<String>, String)> {
    const NAME: &str = "ssh_key";
    const PURPOSE: &str = "service_secret.ssh_key";
    if let Some(row) = service_secret::Entity::find()
        .filter(service_secret::Column::Name.eq(NAME))
        .one(db)
        .await?
    {
        let public = row.public.clone().unwrap_or_default();
        return Ok((secrets.open_str(PURPOSE, &row.value_enc)?, public));
    }
    let key = russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
        .map_err(|e| Error::Secret(format!("generating the service key: {e}")))?;
    let private = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| Error::Secret(format!("encoding the service key: {e}")))?;
    let mut public_key = key.public_key().clone();
    public_key.set_comment("hostwatch");
    let public = public_key
        .to_openssh()
        .map_err(|e| Error::Secret(format!("encoding the service key: {e}")))?;
    let private = Zeroizing::new(private.to_string());
    let inserted = service_secret::ActiveModel {
        name: Set(NAME.into()),
        value_enc: Set(secrets.seal_str(PURPOSE, &private)?),
        public: Set(Some(public.clone())),
        created_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(db)
    .await;
    match inserted {
        Ok(_) => Ok((private, public)),
        // Another task made it first: use theirs.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Box::pin(service_key(db, secrets)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// After provisioning: the host is polled as `hostwatch` with the service key, and the
/// bootstrap password (if any) is erased.
pub async fn switch_to_provisioned(
    db: &sea_orm::DatabaseConnection,
    secrets: &SecretBox,
    host_id: i64,
    private_key: &str,
    public_key: &str,
) -> Result<()> {
    let txn = super::begin_write(db).await?;
    host_credential::Entity::delete_many()
        .filter(host_credential::Column::HostId.eq(host_id))
        .exec(&txn)
        .await?;
    host_credential::ActiveModel {
        host_id: Set(host_id),
        auth_method: Set(AuthMethod::PrivateKey),
        source: Set(CredentialSource::Provisioned),
        private_key_enc: Set(Some(secrets.seal_str(PRIVATE_KEY_PURPOSE, private_key)?)),
        passphrase_enc: Set(None),
        password_enc: Set(None),
        public_key: Set(Some(public_key.to_owned())),
        key_algorithm: Set(Some("ssh-ed25519".into())),
        updated_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    host::Entity::update_many()
        .col_expr(
            host::Column::Username,
            sea_orm::sea_query::Expr::value("hostwatch"),
        )
        .col_expr(
            host::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now_ms()),
        )
        .filter(host::Column::Id.eq(host_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}
