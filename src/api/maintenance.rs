//! `/maintenance-windows`: planned periods, once or recurring (daily, weekly on given days) at
//! a local time in a time zone, for hosts chosen by id or label. During one the hosts'
//! notifications are recorded but not delivered; with `collect: false` their polls pause too
//! (no `host_unreachable` during a planned reboot).

use chrono::{DateTime, Utc};
use entity::{
    maintenance_window,
    types::{Recurrence, Weekday},
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    alerts::maintenance::max_minutes,
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    services::Services,
    store::maintenance::{self as store, WindowSettings},
    validate,
};

/// A maintenance window.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MaintenanceWindow {
    pub id: i64,
    pub name: String,
    /// Hosts it covers by id.
    pub host_ids: Vec<i64>,
    /// Hosts carrying any of these labels are covered too.
    pub labels: Vec<String>,
    pub recurrence: Recurrence,
    /// Local start: `YYYY-MM-DDTHH:MM` (once) or `HH:MM` (daily, weekly).
    pub starts: String,
    /// For weekly windows.
    pub weekdays: Vec<Weekday>,
    /// IANA time zone of `starts`, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub duration_minutes: i32,
    /// A recurring window has no occurrence starting after this.
    pub until: Option<DateTime<Utc>>,
    /// Whether covered hosts are polled during it.
    pub collect: bool,
    pub comment: String,
    /// Whether an occurrence is in force now.
    pub active: bool,
    /// When the occurrence in force ends.
    pub active_until: Option<DateTime<Utc>>,
    /// When the next occurrence starts (within eight days, for recurring windows).
    pub next_start: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn shown(row: maintenance_window::Model) -> MaintenanceWindow {
    let window = store::window(&row);
    let now = Utc::now();
    let occurrence = window.as_ref().and_then(|w| w.active_at(now));
    MaintenanceWindow {
        id: row.id,
        host_ids: serde_json::from_str(&row.host_ids).unwrap_or_default(),
        labels: serde_json::from_str(&row.labels).unwrap_or_default(),
        recurrence: Recurrence::parse(&row.recurrence).unwrap_or(Recurrence::Once),
        weekdays: serde_json::from_str(&row.weekdays).unwrap_or_default(),
        active: occurrence.is_some(),
        active_until: occurrence.map(|(_, end)| end),
        next_start: window.as_ref().and_then(|w| w.next_start(now)),
        name: row.name,
        starts: row.starts,
        time_zone: row.time_zone,
        duration_minutes: row.duration_minutes,
        until: row.until_at.map(ts),
        collect: row.collect,
        comment: row.comment,
        created_by: row.created_by,
        created_at: ts(row.created_at),
        updated_at: ts(row.updated_at),
    }
}

/// A window's settings (create and replace).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct MaintenanceWindowPut {
    /// 1 to 64 characters, unique.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    /// Hosts by id (at most 1000).
    #[oai(default, validator(max_items = 1000))]
    pub host_ids: Vec<i64>,
    /// Hosts by label (at most 32): a host carrying any of them is covered.
    #[oai(default, validator(max_items = 32))]
    pub labels: Vec<String>,
    pub recurrence: Recurrence,
    /// `YYYY-MM-DDTHH:MM` for `once`, `HH:MM` for `daily` and `weekly`; local to `time_zone`.
    pub starts: String,
    /// Days of a `weekly` window.
    #[oai(default, validator(max_items = 7))]
    pub weekdays: Vec<Weekday>,
    /// IANA time zone (default `UTC`).
    pub time_zone: Option<String>,
    /// 1 to 1440 (daily), 10080 (weekly) or 44640 (once).
    #[oai(validator(minimum(value = "1"), maximum(value = "44640")))]
    pub duration_minutes: i32,
    /// RFC 3339: a recurring window has no occurrence starting after this.
    pub until: Option<DateTime<Utc>>,
    /// Poll covered hosts during the window (default true); `false` pauses their polls.
    pub collect: Option<bool>,
    /// At most 1000 characters.
    #[oai(validator(max_length = 1000))]
    pub comment: Option<String>,
}

impl MaintenanceWindowPut {
    fn validate(self) -> Result<WindowSettings> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "1 to 64 characters, no control characters",
            ));
        }
        if self.host_ids.is_empty() && self.labels.is_empty() {
            return Err(Error::invalid(
                "host_ids",
                "a window covers hosts: give host_ids or labels",
            ));
        }
        let labels = validate::labels(&self.labels)?;
        let time_zone = self.time_zone.unwrap_or_else(|| "UTC".into());
        if time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(Error::invalid(
                "time_zone",
                format!("{time_zone:?} is not an IANA time zone (e.g. Europe/Berlin, UTC)"),
            ));
        }
        let mut weekdays = self.weekdays;
        weekdays.sort();
        weekdays.dedup();
        match self.recurrence {
            Recurrence::Weekly if weekdays.is_empty() => {
                return Err(Error::invalid(
                    "weekdays",
                    "a weekly window needs its days (mon … sun)",
                ));
            }
            Recurrence::Once | Recurrence::Daily if !weekdays.is_empty() => {
                return Err(Error::invalid(
                    "weekdays",
                    "only a weekly window has weekdays",
                ));
            }
            _ => {}
        }
        store::parse_start(self.recurrence, self.starts.trim(), &weekdays)
            .map_err(|r| Error::invalid("starts", r))?;
        let max = max_minutes(self.recurrence);
        if !(1..=max).contains(&i64::from(self.duration_minutes)) {
            return Err(Error::invalid(
                "duration_minutes",
                format!("must be 1 to {max} for a {} window", self.recurrence),
            ));
        }
        if self.until.is_some() && self.recurrence == Recurrence::Once {
            return Err(Error::invalid(
                "until",
                "only a recurring window has an end of its recurrence",
            ));
        }
        Ok(WindowSettings {
            name,
            host_ids: self.host_ids,
            labels,
            recurrence: self.recurrence,
            starts: self.starts.trim().to_owned(),
            weekdays,
            time_zone,
            duration_minutes: self.duration_minutes,
            until_at: self.until.map(|u| u.timestamp_millis()),
            collect: self.collect.unwrap_or(true),
            comment: self.comment.unwrap_or_default(),
        })
    }
}

#[derive(ApiResponse)]
pub enum CreateWindowResponse {
    #[oai(status = 201)]
    Created(Json<MaintenanceWindow>),
}

#[derive(ApiResponse)]
pub enum WindowResponse {
    #[oai(status = 200)]
    Ok(Json<MaintenanceWindow>),
}

#[derive(ApiResponse)]
pub enum ListWindowsResponse {
    #[oai(status = 200)]
    Ok(Json<Page<MaintenanceWindow>>),
}

#[derive(ApiResponse)]
pub enum DeleteWindowResponse {
    #[oai(status = 204)]
    Deleted,
}

/// The maintenance windows resource.
pub struct MaintenanceApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Alerts")]
impl MaintenanceApi {
    /// Create a maintenance window
    #[oai(
        path = "/maintenance-windows",
        method = "post",
        operation_id = "create_maintenance_window"
    )]
    async fn create(
        &self,
        auth: Auth,
        body: Json<MaintenanceWindowPut>,
    ) -> ApiResult<
        CreateWindowResponse,
        (
            BadRequest,
            Forbidden,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let settings = body.0.validate()?;
        let row = self
            .0
            .registry
            .create_window(settings, auth.principal().who())
            .await?;
        Ok(CreateWindowResponse::Created(Json(shown(row))))
    }

    /// List maintenance windows
    #[oai(
        path = "/maintenance-windows",
        method = "get",
        operation_id = "list_maintenance_windows"
    )]
    async fn list(
        &self,
        _auth: Auth,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListWindowsResponse, (BadRequest,)> {
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::list(&self.0.db, limit, offset).await?;
        Ok(ListWindowsResponse::Ok(Json(Page {
            items: rows.into_iter().map(shown).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Get a maintenance window
    #[oai(
        path = "/maintenance-windows/:id",
        method = "get",
        operation_id = "get_maintenance_window"
    )]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<WindowResponse, (BadRequest, NotFound)> {
        Ok(WindowResponse::Ok(Json(shown(
            store::get(&self.0.db, id.0).await?,
        ))))
    }

    /// Replace a maintenance window
    #[oai(
        path = "/maintenance-windows/:id",
        method = "put",
        operation_id = "put_maintenance_window"
    )]
    async fn put(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<MaintenanceWindowPut>,
    ) -> ApiResult<
        WindowResponse,
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
        let settings = body.0.validate()?;
        let row = self.0.registry.update_window(id.0, settings).await?;
        Ok(WindowResponse::Ok(Json(shown(row))))
    }

    /// Delete a maintenance window
    ///
    /// Alerts it held back that still fire are delivered within a second or two.
    #[oai(
        path = "/maintenance-windows/:id",
        method = "delete",
        operation_id = "delete_maintenance_window"
    )]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<DeleteWindowResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        self.0.registry.delete_window(id.0).await?;
        Ok(DeleteWindowResponse::Deleted)
    }
}
