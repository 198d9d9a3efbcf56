//! `/hosts`: register, list, read, change and delete monitored hosts.
//!
//! Credentials are write-only: a request may carry a private key, passphrase or password; no
//! response ever does. The request types deliberately do not implement `Debug`.

use chrono::{DateTime, Utc};
use entity::types::{AuthMethod, HostStatus};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use zeroize::Zeroizing;

use crate::{
    alerts::maintenance::Window,
    api::{
        ApiResult, ApiTags, Auth,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    logs::Untrusted,
    scheduler,
    services::Services,
    ssh::keys::{self, KeyError},
    store::{
        hosts::{self as store, HostChanges, HostFilter, HostView, NewCredential, NewHost},
        maintenance,
    },
    validate,
};

/// A host registration. Give exactly one of `private_key` (with `passphrase` if it is
/// encrypted) or `password`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct HostCreate {
    /// Unique display name, 1 to 100 characters.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// IP address or DNS name.
    #[oai(validator(min_length = 1, max_length = 253))]
    pub address: String,
    /// SSH port, 1 to 65535.
    #[oai(
        default = "default_port",
        validator(minimum(value = "1"), maximum(value = "65535"))
    )]
    pub port: u32,
    /// Login name on the host.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub username: String,
    /// OpenSSH or PEM private key text. Write-only.
    #[oai(write_only)]
    pub private_key: Option<String>,
    /// Passphrase of an encrypted private key. Write-only.
    #[oai(write_only)]
    pub passphrase: Option<String>,
    /// Password, when no key is given. Write-only.
    #[oai(write_only)]
    pub password: Option<String>,
    /// 6-field cron (with seconds). Defaults to once a minute at a second spread by name.
    pub schedule: Option<String>,
    /// Labels to filter by, e.g. `env=prod`.
    #[oai(default)]
    pub labels: Vec<String>,
    /// Expected host key fingerprint (`SHA256:…`); without it the first key seen is trusted.
    pub host_key_fingerprint: Option<String>,
    /// Create a dedicated `hostwatch` user on enrollment when the login can become root.
    #[oai(default)]
    pub provision: bool,
    /// Poll this host on its schedule. A host registered disabled is still enrolled (its host
    /// key pinned, its login tried) but not polled until it is enabled.
    #[oai(default = "default_true")]
    pub enabled: bool,
}

fn default_port() -> u32 {
    22
}

fn default_true() -> bool {
    true
}

/// A partial update; absent fields stay as they are. Giving `private_key` or `password`
/// replaces the stored credentials.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct HostUpdate {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    #[oai(validator(min_length = 1, max_length = 253))]
    pub address: Option<String>,
    #[oai(validator(minimum(value = "1"), maximum(value = "65535")))]
    pub port: Option<u32>,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub username: Option<String>,
    /// Write-only.
    #[oai(write_only)]
    pub private_key: Option<String>,
    /// Write-only.
    #[oai(write_only)]
    pub passphrase: Option<String>,
    /// Write-only.
    #[oai(write_only)]
    pub password: Option<String>,
    pub schedule: Option<String>,
    /// Replaces all labels.
    pub labels: Option<Vec<String>>,
    /// `null` removes the expected fingerprint.
    pub host_key_fingerprint: MaybeUndefined<String>,
    pub provision: Option<bool>,
    pub enabled: Option<bool>,
}

/// The host key hostwatch trusts for a host.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HostKeyInfo {
    pub algorithm: String,
    pub fingerprint: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// What enrollment found on the host (empty until it has run).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HostFacts {
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
    pub enrolled_at: Option<DateTime<Utc>>,
}

/// A host as the API shows it: never with secrets.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Host {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub port: i32,
    pub username: String,
    pub auth_method: Option<AuthMethod>,
    /// Algorithm of the stored private key.
    pub key_algorithm: Option<String>,
    /// Public half of the stored private key (`authorized_keys` form).
    pub public_key: Option<String>,
    pub status: HostStatus,
    pub status_message: Option<String>,
    pub enabled: bool,
    /// 6-field cron. Each poll starts a fixed offset (up to 10 s, the same for the host every
    /// time) after the schedule's tick, which spreads a fleet on one schedule: `next_poll_at`
    /// is when the next one starts.
    pub schedule: String,
    /// When the next scheduled poll starts (`null` while the host is disabled).
    pub next_poll_at: Option<DateTime<Utc>>,
    pub labels: Vec<String>,
    pub provision: bool,
    pub host_key_fingerprint: Option<String>,
    pub trusted_host_key: Option<HostKeyInfo>,
    pub facts: HostFacts,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The maintenance window it is in now, when it is in one.
    pub maintenance: Option<HostMaintenance>,
    /// Only in the answer to a change: what happens next because of it.
    pub notice: Option<String>,
}

/// The maintenance window a host is in.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HostMaintenance {
    pub window_id: i64,
    pub name: String,
    /// When this occurrence ends.
    pub until: DateTime<Utc>,
    /// Whether it is polled meanwhile (`false`: polls pause).
    pub collect: bool,
}

impl From<HostView> for Host {
    fn from(v: HostView) -> Self {
        let h = v.host;
        Self {
            id: h.id,
            name: h.name,
            address: h.address,
            port: h.port,
            username: h.username,
            auth_method: v.auth_method,
            key_algorithm: v.key_algorithm,
            public_key: v.public_key,
            status: h.status,
            status_message: h.status_message,
            enabled: h.enabled,
            next_poll_at: h
                .enabled
                .then(|| {
                    crate::scheduler::next_start(
                        &h.schedule,
                        crate::scheduler::JobKey::Host(h.id),
                        Utc::now(),
                    )
                })
                .flatten(),
            schedule: h.schedule,
            labels: v.labels,
            provision: h.provision,
            host_key_fingerprint: h.expected_host_key_fingerprint,
            trusted_host_key: v.trusted_key.map(|k| HostKeyInfo {
                algorithm: k.algorithm,
                fingerprint: k.fingerprint,
                first_seen_at: ts(k.first_seen_at),
                last_seen_at: ts(k.last_seen_at),
            }),
            facts: HostFacts {
                os_id: h.os_id,
                os_name: h.os_name,
                os_version: h.os_version,
                kernel: h.kernel,
                arch: h.arch,
                hostname: h.hostname,
                cpu_model: h.cpu_model,
                cpu_count: h.cpu_count,
                memory_total_bytes: h.memory_total_bytes,
                has_nvidia: h.has_nvidia,
                uname: h.uname,
                enrolled_at: h.enrolled_at.map(ts),
            },
            last_poll_at: h.last_poll_at.map(ts),
            last_ok_at: h.last_ok_at.map(ts),
            created_at: ts(h.created_at),
            updated_at: ts(h.updated_at),
            maintenance: None,
            notice: None,
        }
    }
}

/// A page of hosts.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HostPage {
    pub items: Vec<Host>,
    /// How many hosts match the filters in all.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

#[derive(ApiResponse)]
pub enum CreateHostResponse {
    /// The host was registered.
    #[oai(status = 201)]
    Created(Json<Host>),
}

#[derive(ApiResponse)]
pub enum HostResponse {
    #[oai(status = 200)]
    Ok(Json<Host>),
}

#[derive(ApiResponse)]
pub enum ListHostsResponse {
    #[oai(status = 200)]
    Ok(Json<HostPage>),
}

#[derive(ApiResponse)]
pub enum DeleteHostResponse {
    /// The host and everything recorded about it were deleted.
    #[oai(status = 204)]
    Deleted,
}

/// Turns key text and passphrase, or a password, into a checked credential.
fn credential(
    private_key: Option<String>,
    passphrase: Option<String>,
    password: Option<String>,
) -> Result<Option<NewCredential>> {
    match (private_key, password) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "password",
            "give private_key or password, not both",
        )),
        (None, None) if passphrase.is_some() => Err(Error::invalid(
            "passphrase",
            "a passphrase needs the private_key it unlocks",
        )),
        (None, None) => Ok(None),
        (None, Some(password)) => {
            if passphrase.is_some() {
                return Err(Error::invalid(
                    "passphrase",
                    "a passphrase goes with private_key, not password",
                ));
            }
            if password.is_empty() {
                return Err(Error::invalid("password", "must not be empty"));
            }
            Ok(Some(NewCredential::Password(Zeroizing::new(password))))
        }
        (Some(key), None) => {
            let key = Zeroizing::new(key);
            let passphrase = passphrase.map(Zeroizing::new);
            let info = keys::inspect_private_key(&key, passphrase.as_deref().map(String::as_str))
                .map_err(|e| match e {
                KeyError::PassphraseRequired | KeyError::WrongPassphrase => {
                    Error::invalid("passphrase", e.to_string())
                }
                KeyError::Unreadable(_) => Error::invalid("private_key", e.to_string()),
            })?;
            Ok(Some(NewCredential::PrivateKey {
                key,
                // A passphrase for a key that is not encrypted is not needed; it is not kept.
                passphrase: if info.encrypted { passphrase } else { None },
                algorithm: info.algorithm,
                public_key: info.public_key,
            }))
        }
    }
}

fn schedule(value: &str) -> Result<()> {
    scheduler::validate_schedule(value).map_err(|reason| Error::invalid("schedule", reason))
}

fn fingerprint(value: &str) -> Result<()> {
    keys::validate_fingerprint(value)
        .map_err(|reason| Error::invalid("host_key_fingerprint", reason))
}

impl HostCreate {
    fn validate(self) -> Result<NewHost> {
        validate::name("name", &self.name)?;
        validate::address(&self.address)?;
        let port = validate::port(self.port)?;
        validate::username(&self.username)?;
        let labels = validate::labels(&self.labels)?;
        let schedule_text = match self.schedule {
            Some(s) => {
                schedule(&s)?;
                s
            }
            None => scheduler::default_schedule(&self.name),
        };
        if let Some(fp) = &self.host_key_fingerprint {
            fingerprint(fp)?;
        }
        let credential = credential(self.private_key, self.passphrase, self.password)?
            .ok_or_else(|| Error::invalid("private_key", "give private_key or password"))?;
        Ok(NewHost {
            name: self.name,
            address: self.address,
            port,
            username: self.username,
            credential,
            schedule: schedule_text,
            labels,
            expected_host_key_fingerprint: self.host_key_fingerprint,
            provision: self.provision,
            enabled: self.enabled,
        })
    }
}

impl HostUpdate {
    fn validate(self) -> Result<HostChanges> {
        if let Some(v) = &self.name {
            validate::name("name", v)?;
        }
        if let Some(v) = &self.address {
            validate::address(v)?;
        }
        let port = self.port.map(validate::port).transpose()?;
        if let Some(v) = &self.username {
            validate::username(v)?;
        }
        if let Some(v) = &self.schedule {
            schedule(v)?;
        }
        let labels = self.labels.as_deref().map(validate::labels).transpose()?;
        let expected_host_key_fingerprint = match self.host_key_fingerprint {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(fp) => {
                fingerprint(&fp)?;
                Some(Some(fp))
            }
        };
        Ok(HostChanges {
            name: self.name,
            address: self.address,
            port,
            username: self.username,
            credential: credential(self.private_key, self.passphrase, self.password)?,
            schedule: self.schedule,
            labels,
            expected_host_key_fingerprint,
            provision: self.provision,
            enabled: self.enabled,
        })
    }
}

/// The hosts resource.
pub struct HostsApi(pub Services);

impl HostsApi {
    /// The host as the API shows it: its poll times are the poller's newest, which its row
    /// records only now and then; the maintenance window it is in, from `windows` (read from
    /// the database: a standby's API answers too).
    fn shown(&self, mut view: HostView, windows: &[Window]) -> Host {
        self.0.poller.apply_newest_times(&mut view.host);
        let maintenance =
            crate::alerts::maintenance::covering(windows, view.host.id, &view.labels, Utc::now())
                .next()
                .map(|(w, until)| HostMaintenance {
                    window_id: w.id,
                    name: w.name.clone(),
                    until,
                    collect: w.collect,
                });
        let mut host: Host = view.into();
        host.maintenance = maintenance;
        host
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Hosts")]
impl HostsApi {
    /// Register a host
    ///
    /// Validates the address, port, username, schedule and key (decrypting it with the
    /// passphrase to prove it) and stores the credentials encrypted; its thresholds are
    /// inherited (`GET /hosts/{id}/thresholds`). Enrollment over SSH starts in the background; its transcript appears at
    /// `GET /hosts/{id}/enrollment`.
    #[oai(path = "/hosts", method = "post", operation_id = "create_host")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<HostCreate>,
    ) -> ApiResult<
        CreateHostResponse,
        (
            BadRequest,
            Forbidden,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let new = body.0.validate()?;
        let view = self.0.registry.create_host(new).await?;
        tracing::info!(
            host_id = view.host.id,
            name = %Untrusted(&view.host.name),
            by = %Untrusted(auth.principal().who()),
            "host registered"
        );
        let windows = maintenance::all(&self.0.db).await?;
        Ok(CreateHostResponse::Created(Json(
            self.shown(view, &windows),
        )))
    }

    /// List hosts
    ///
    /// Ordered by id. Filter by `status` and by one `label`.
    #[oai(path = "/hosts", method = "get", operation_id = "list_hosts")]
    async fn list(
        &self,
        _auth: Auth,
        /// Page size, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// Hosts to skip.
        offset: Query<Option<u64>>,
        /// Only hosts with this status.
        status: Query<Option<HostStatus>>,
        /// Only hosts carrying this label.
        label: Query<Option<String>>,
    ) -> ApiResult<ListHostsResponse, (BadRequest,)> {
        let filter = HostFilter {
            status: status.0,
            label: label.0,
            limit: super::limit(limit.0),
            offset: offset.0.unwrap_or(0),
        };
        let (items, total) = store::list(&self.0.db, &filter).await?;
        let windows = maintenance::all(&self.0.db).await?;
        Ok(ListHostsResponse::Ok(Json(HostPage {
            items: items.into_iter().map(|v| self.shown(v, &windows)).collect(),
            total,
            limit: filter.limit,
            offset: filter.offset,
        })))
    }

    /// Get a host
    #[oai(path = "/hosts/:id", method = "get", operation_id = "get_host")]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<HostResponse, (BadRequest, NotFound)> {
        let view = store::get(&self.0.db, id.0).await?;
        let windows = maintenance::all(&self.0.db).await?;
        Ok(HostResponse::Ok(Json(self.shown(view, &windows))))
    }

    /// Change a host
    ///
    /// Only the fields given change. `private_key` or `password` replaces the credentials.
    #[oai(path = "/hosts/:id", method = "patch", operation_id = "update_host")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<HostUpdate>,
    ) -> ApiResult<
        HostResponse,
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
        let changes = body.0.validate()?;
        let updated = self.0.registry.update_host(id.0, changes).await?;
        let windows = maintenance::all(&self.0.db).await?;
        let mut host = self.shown(updated.view, &windows);
        if updated.redialled {
            host.notice = Some(
                "the address or login changed: the old connection and its back-off were \
                 dropped, and the host is polled again now with the new settings"
                    .into(),
            );
        }
        Ok(HostResponse::Ok(Json(host)))
    }

    /// Delete a host
    ///
    /// Deletes the host with its credentials, history, thresholds and notifications. Each of
    /// its alerts that was not ok resolves with a notification saying the host was deleted
    /// (kept, without a `host_id`).
    #[oai(path = "/hosts/:id", method = "delete", operation_id = "delete_host")]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<DeleteHostResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        self.0.registry.delete_host(id.0).await?;
        tracing::info!(host_id = id.0, by = %Untrusted(auth.principal().who()), "host deleted");
        Ok(DeleteHostResponse::Deleted)
    }
}
