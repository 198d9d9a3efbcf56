//! `/channels`: where notifications are sent (webhook, Slack, Telegram, email), and their
//! delivery log. Secret settings (webhook headers, Slack URL, bot token, SMTP password) are
//! write-only: responses name which are set, never their values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{
    channel as channel_row, delivery as delivery_row,
    types::{ChannelKind, DeliveryStatus, Level},
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};

use crate::{
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    channel::{
        PublicSettings, SecretSettings, SmtpTls, split_webhook_url, validate as validate_settings,
    },
    crypto::SecretBox,
    error::{Error, Result},
    services::Services,
    store::channels::{self as store, ChannelSettings},
    validate,
};

/// Settings of a channel; which fields apply depends on its kind:
/// webhook `url` (+ `headers`; a URL with a user, password or query is stored sealed and
/// shown redacted); slack `webhook_url`; telegram `bot_token`, `chat_id`
/// (+ `api_base_url`); email `smtp_host`, `from`, `to` (+ `smtp_port`, `tls`, `username`,
/// `password`).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct ChannelSettingsInput {
    pub url: Option<String>,
    /// Extra request headers (e.g. an Authorization header). Write-only.
    #[oai(write_only)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Slack incoming-webhook URL. Write-only.
    #[oai(write_only)]
    pub webhook_url: Option<String>,
    /// Telegram bot token. Write-only.
    #[oai(write_only)]
    pub bot_token: Option<String>,
    pub chat_id: Option<String>,
    /// Telegram Bot API base URL; default `https://api.telegram.org`.
    pub api_base_url: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub tls: Option<SmtpTls>,
    pub username: Option<String>,
    /// SMTP password. Write-only.
    #[oai(write_only)]
    pub password: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    /// Email: let `tls: none` log in with the password in the clear (refused otherwise).
    pub allow_plaintext_auth: Option<bool>,
}

impl ChannelSettingsInput {
    fn split(self) -> (PublicSettings, SecretSettings) {
        // A webhook URL with credentials in it is sealed whole and shown redacted.
        let (url, sealed_url) = match self.url {
            Some(url) => {
                let (shown, sealed) = split_webhook_url(url);
                (Some(shown), sealed)
            }
            None => (None, None),
        };
        (
            PublicSettings {
                url,
                chat_id: self.chat_id,
                api_base_url: self.api_base_url,
                smtp_host: self.smtp_host,
                smtp_port: self.smtp_port,
                tls: self.tls,
                username: self.username,
                from: self.from,
                to: self.to.unwrap_or_default(),
                allow_plaintext_auth: self.allow_plaintext_auth.unwrap_or(false),
            },
            SecretSettings {
                headers: self.headers.unwrap_or_default(),
                url: sealed_url,
                webhook_url: self.webhook_url,
                bot_token: self.bot_token,
                password: self.password,
            },
        )
    }
}

/// A new channel.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct ChannelCreate {
    /// Unique display name, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    pub kind: ChannelKind,
    pub settings: ChannelSettingsInput,
    /// Only notifications at this level or above; default `warning`.
    pub min_level: Option<Level>,
    /// Only this host's notifications.
    pub host_id: Option<i64>,
    /// Only notifications of hosts carrying this label.
    pub label: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A partial update. `settings`, when given, replaces the settings; secret fields left out of
/// it keep their stored values while the kind stays the same.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct ChannelUpdate {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    pub kind: Option<ChannelKind>,
    pub settings: Option<ChannelSettingsInput>,
    pub min_level: Option<Level>,
    pub host_id: MaybeUndefined<i64>,
    pub label: MaybeUndefined<String>,
    pub enabled: Option<bool>,
}

/// Channel settings as shown: everything but the secrets.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChannelSettingsView {
    pub url: Option<String>,
    pub chat_id: Option<String>,
    pub api_base_url: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub tls: Option<SmtpTls>,
    pub username: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub allow_plaintext_auth: bool,
    /// Names of the secret settings that are set (their values are never shown). `url`: the
    /// webhook URL holds credentials; it is sealed, and `url` above shows it redacted.
    pub secrets_set: Vec<String>,
}

/// A channel.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub kind: ChannelKind,
    pub enabled: bool,
    pub min_level: Level,
    pub host_id: Option<i64>,
    pub label: Option<String>,
    pub settings: ChannelSettingsView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(secrets: &SecretBox, row: channel_row::Model) -> Result<Channel> {
    let s = store::settings_of(secrets, &row)?;
    Ok(Channel {
        id: row.id,
        name: row.name,
        kind: row.kind,
        enabled: row.enabled,
        min_level: row.min_level,
        host_id: row.host_id,
        label: row.label,
        settings: ChannelSettingsView {
            url: s.public.url,
            chat_id: s.public.chat_id,
            api_base_url: s.public.api_base_url,
            smtp_host: s.public.smtp_host,
            smtp_port: s.public.smtp_port,
            tls: s.public.tls,
            username: s.public.username,
            from: s.public.from,
            to: s.public.to,
            allow_plaintext_auth: s.public.allow_plaintext_auth,
            secrets_set: s.secret.names(),
        },
        created_at: ts(row.created_at),
        updated_at: ts(row.updated_at),
    })
}

/// A page of channels.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChannelPage {
    pub items: Vec<Channel>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// One notification's delivery through a channel.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: i64,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<delivery_row::Model> for Delivery {
    fn from(d: delivery_row::Model) -> Self {
        Self {
            id: d.id,
            notification_id: d.notification_id,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: ts(d.next_attempt_at),
            last_error: d.last_error,
            sent_at: d.sent_at.map(ts),
            created_at: ts(d.created_at),
        }
    }
}

#[derive(ApiResponse)]
pub enum CreateChannelResponse {
    #[oai(status = 201)]
    Created(Json<Channel>),
}

#[derive(ApiResponse)]
pub enum ChannelResponse {
    #[oai(status = 200)]
    Ok(Json<Channel>),
}

#[derive(ApiResponse)]
pub enum ListChannelsResponse {
    #[oai(status = 200)]
    Ok(Json<ChannelPage>),
}

#[derive(ApiResponse)]
pub enum DeleteChannelResponse {
    #[oai(status = 204)]
    Deleted,
}

/// The outcome of a test message.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChannelTestResult {
    /// Whether the receiver accepted the message.
    pub ok: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(ApiResponse)]
pub enum TestChannelResponse {
    /// The test ran; `ok` says whether the receiver accepted it.
    #[oai(status = 200)]
    Ok(Json<ChannelTestResult>),
}

#[derive(ApiResponse)]
pub enum DeliveriesResponse {
    #[oai(status = 200)]
    Ok(Json<Page<Delivery>>),
}

fn validated(s: ChannelSettings) -> Result<ChannelSettings> {
    validate::name("name", &s.name)?;
    if let Some(label) = &s.label {
        validate::labels(std::slice::from_ref(label)).map_err(|_| {
            Error::invalid("label", "1 to 64 characters of letters, digits and ._:=/-")
        })?;
    }
    validate_settings(s.kind, &s.public, &s.secret).map_err(|r| Error::invalid("settings", r))?;
    Ok(s)
}

/// The channels resource.
pub struct ChannelsApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Channels")]
impl ChannelsApi {
    /// Create a channel
    #[oai(path = "/channels", method = "post", operation_id = "create_channel")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<ChannelCreate>,
    ) -> ApiResult<
        CreateChannelResponse,
        (
            BadRequest,
            Forbidden,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let b = body.0;
        let (public, secret) = b.settings.split();
        let settings = validated(ChannelSettings {
            name: b.name,
            kind: b.kind,
            enabled: b.enabled.unwrap_or(true),
            min_level: b.min_level.unwrap_or(Level::Warning),
            host_id: b.host_id,
            label: b.label,
            public,
            secret,
        })?;
        let row = store::create(&self.0.db, &self.0.secrets, &settings).await?;
        Ok(CreateChannelResponse::Created(Json(view(
            &self.0.secrets,
            row,
        )?)))
    }

    /// List channels
    #[oai(path = "/channels", method = "get", operation_id = "list_channels")]
    async fn list(
        &self,
        _auth: Auth,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListChannelsResponse, (BadRequest,)> {
        let limit = super::limit(limit.0);
        let offset = offset.0.unwrap_or(0);
        let (rows, total) = store::list(&self.0.db, limit, offset).await?;
        let items = rows
            .into_iter()
            .map(|r| view(&self.0.secrets, r))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListChannelsResponse::Ok(Json(ChannelPage {
            items,
            total,
            limit,
            offset,
        })))
    }

    /// Get a channel
    #[oai(path = "/channels/:id", method = "get", operation_id = "get_channel")]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<ChannelResponse, (BadRequest, NotFound)> {
        let row = store::get(&self.0.db, id.0).await?;
        Ok(ChannelResponse::Ok(Json(view(&self.0.secrets, row)?)))
    }

    /// Change a channel
    #[oai(
        path = "/channels/:id",
        method = "patch",
        operation_id = "update_channel"
    )]
    async fn update(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<ChannelUpdate>,
    ) -> ApiResult<
        ChannelResponse,
        (
            BadRequest,
            Forbidden,
            NotFound,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let current = store::settings_of(&self.0.secrets, &store::get(&self.0.db, id.0).await?)?;
        let b = body.0;
        let kind = b.kind.unwrap_or(current.kind);
        let (public, secret) = match b.settings {
            Some(input) => {
                let (public, secret) = input.split();
                let secret = if kind == current.kind {
                    secret.or_keep(current.secret)
                } else {
                    secret
                };
                (public, secret)
            }
            None => (current.public, current.secret),
        };
        let settings = validated(ChannelSettings {
            name: b.name.unwrap_or(current.name),
            kind,
            enabled: b.enabled.unwrap_or(current.enabled),
            min_level: b.min_level.unwrap_or(current.min_level),
            host_id: match b.host_id {
                MaybeUndefined::Undefined => current.host_id,
                MaybeUndefined::Null => None,
                MaybeUndefined::Value(v) => Some(v),
            },
            label: match b.label {
                MaybeUndefined::Undefined => current.label,
                MaybeUndefined::Null => None,
                MaybeUndefined::Value(v) => Some(v),
            },
            public,
            secret,
        })?;
        let row = store::update(&self.0.db, &self.0.secrets, id.0, &settings).await?;
        Ok(ChannelResponse::Ok(Json(view(&self.0.secrets, row)?)))
    }

    /// Delete a channel
    #[oai(
        path = "/channels/:id",
        method = "delete",
        operation_id = "delete_channel"
    )]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<DeleteChannelResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        store::delete(&self.0.db, id.0).await?;
        Ok(DeleteChannelResponse::Deleted)
    }

    /// A channel's delivery log
    ///
    /// Newest first: each notification sent (or being sent) through the channel.
    #[oai(
        path = "/channels/:id/deliveries",
        method = "get",
        operation_id = "list_channel_deliveries"
    )]
    async fn deliveries(
        &self,
        _auth: Auth,
        id: Path<i64>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<DeliveriesResponse, (BadRequest, NotFound)> {
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::deliveries(&self.0.db, id.0, limit, offset).await?;
        Ok(DeliveriesResponse::Ok(Json(Page {
            items: rows.into_iter().map(Delivery::from).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Send a test message
    ///
    /// Sends a test message through the channel now (not through the outbox) and reports
    /// whether the receiver accepted it.
    #[oai(
        path = "/channels/:id/test",
        method = "post",
        operation_id = "test_channel"
    )]
    async fn test(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<TestChannelResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        let outcome = self.0.delivery.test_channel(id.0).await?;
        Ok(TestChannelResponse::Ok(Json(ChannelTestResult {
            ok: outcome.ok,
            error: outcome.error,
            duration_ms: outcome.duration.as_millis() as i64,
        })))
    }
}
