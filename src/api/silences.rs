//! `/silences`: Alertmanager-like silences. While one is in force, the notifications of the
//! alerts its matchers select are recorded (with its id) but not delivered; an alert still
//! firing when it ends is delivered then, once.

use chrono::{DateTime, Duration, Utc};
use entity::{
    silence,
    types::{MatchField, MatchOp},
};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    alerts::silence::Matcher,
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    services::Services,
    store::{
        now_ms,
        silences::{self as store, MatcherSpec, NewSilence, SilenceFilter},
    },
};

/// One matcher: `field` compared with `value` (`regex`: a regular expression over the whole
/// value).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct SilenceMatcher {
    pub field: MatchField,
    /// Default `equal`.
    pub op: Option<MatchOp>,
    /// 0 to 256 characters.
    #[oai(validator(max_length = 256))]
    pub value: String,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// In force.
    Active,
    /// Over (expired or run out).
    Expired,
}

/// A silence.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub state: SilenceState,
    pub comment: String,
    /// The user (and token) that created it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn shown(row: silence::Model) -> Silence {
    let now = now_ms();
    let state = if row.ends_at <= now {
        SilenceState::Expired
    } else if row.starts_at > now {
        SilenceState::Pending
    } else {
        SilenceState::Active
    };
    Silence {
        id: row.id,
        matchers: store::matchers_of(&row)
            .into_iter()
            .map(|m| SilenceMatcher {
                field: m.field,
                op: Some(m.op),
                value: m.value,
            })
            .collect(),
        starts_at: ts(row.starts_at),
        ends_at: ts(row.ends_at),
        state,
        comment: row.comment,
        created_by: row.created_by,
        created_at: ts(row.created_at),
        updated_at: ts(row.updated_at),
    }
}

/// A new silence.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SilenceCreate {
    /// 1 to 16 matchers, all of which must match.
    #[oai(validator(min_items = 1, max_items = 16))]
    pub matchers: Vec<SilenceMatcher>,
    /// RFC 3339 or relative (`+30m`); default now.
    pub starts_at: Option<String>,
    /// RFC 3339 or relative (`+2h`); or give `duration_minutes`.
    pub ends_at: Option<String>,
    /// From `starts_at`; 1 to 525600 (a year).
    #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
    pub duration_minutes: Option<i64>,
    /// Why (1 to 1000 characters).
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub comment: String,
}

impl SilenceCreate {
    fn validate(self, created_by: String) -> Result<NewSilence> {
        if self.matchers.is_empty() || self.matchers.len() > 16 {
            return Err(Error::invalid("matchers", "1 to 16 matchers"));
        }
        let mut matchers = Vec::with_capacity(self.matchers.len());
        for (i, m) in self.matchers.into_iter().enumerate() {
            let op = m.op.unwrap_or(MatchOp::Equal);
            Matcher::new(m.field, op, m.value.clone())
                .map_err(|r| Error::invalid("matchers", format!("matcher {i}: {r}")))?;
            matchers.push(MatcherSpec {
                field: m.field,
                op,
                value: m.value,
            });
        }
        let now = Utc::now();
        let starts = match &self.starts_at {
            Some(t) => super::time_param("starts_at", t, now)?,
            None => now,
        };
        let ends = match (&self.ends_at, self.duration_minutes) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "ends_at",
                    "give ends_at or duration_minutes, not both",
                ));
            }
            (Some(t), None) => super::time_param("ends_at", t, now)?,
            (None, Some(m)) if (1..=525_600).contains(&m) => starts + Duration::minutes(m),
            (None, Some(_)) => {
                return Err(Error::invalid("duration_minutes", "must be 1 to 525600"));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "ends_at",
                    "a silence needs an end: ends_at or duration_minutes",
                ));
            }
        };
        if ends <= starts {
            return Err(Error::invalid("ends_at", "must be after starts_at"));
        }
        if ends <= now {
            return Err(Error::invalid("ends_at", "must be in the future"));
        }
        let comment = self.comment.trim().to_owned();
        if comment.is_empty() {
            return Err(Error::invalid("comment", "say why (1 to 1000 characters)"));
        }
        Ok(NewSilence {
            matchers,
            starts_at: starts.timestamp_millis(),
            ends_at: ends.timestamp_millis(),
            comment,
            created_by,
        })
    }
}

/// Which silences to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SilenceListState {
    /// In force or to come (the default).
    Active,
    Expired,
    All,
}

#[derive(ApiResponse)]
pub enum CreateSilenceResponse {
    #[oai(status = 201)]
    Created(Json<Silence>),
}

#[derive(ApiResponse)]
pub enum SilenceResponse {
    #[oai(status = 200)]
    Ok(Json<Silence>),
}

#[derive(ApiResponse)]
pub enum ListSilencesResponse {
    #[oai(status = 200)]
    Ok(Json<Page<Silence>>),
}

/// The silences resource.
pub struct SilencesApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Alerts")]
impl SilencesApi {
    /// Create a silence
    ///
    /// Matchers over `host`, `host_label`, `check`, `kind`, `metric`, `label` and `level`,
    /// each `equal`, `not_equal`, `regex` or `not_regex` (anchored); all must match. It holds
    /// notifications back from `starts_at` until `ends_at`.
    #[oai(path = "/silences", method = "post", operation_id = "create_silence")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<SilenceCreate>,
    ) -> ApiResult<CreateSilenceResponse, (BadRequest, Forbidden, Invalid, UnsupportedMediaType)>
    {
        auth.require_write()?;
        let new = body.0.validate(auth.principal().who())?;
        let row = store::create(&self.0.db, new).await?;
        tracing::info!(
            silence_id = row.id,
            by = %crate::logs::Untrusted(&row.created_by),
            "silence created"
        );
        Ok(CreateSilenceResponse::Created(Json(shown(row))))
    }

    /// List silences
    ///
    /// Newest first; by default those in force or to come.
    #[oai(path = "/silences", method = "get", operation_id = "list_silences")]
    async fn list(
        &self,
        _auth: Auth,
        state: Query<Option<SilenceListState>>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListSilencesResponse, (BadRequest,)> {
        let filter = match state.0.unwrap_or(SilenceListState::Active) {
            SilenceListState::Active => SilenceFilter::Active,
            SilenceListState::Expired => SilenceFilter::Expired,
            SilenceListState::All => SilenceFilter::All,
        };
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::list(&self.0.db, filter, limit, offset).await?;
        Ok(ListSilencesResponse::Ok(Json(Page {
            items: rows.into_iter().map(shown).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Get a silence
    #[oai(path = "/silences/:id", method = "get", operation_id = "get_silence")]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<SilenceResponse, (BadRequest, NotFound)> {
        Ok(SilenceResponse::Ok(Json(shown(
            store::get(&self.0.db, id.0).await?,
        ))))
    }

    /// Expire a silence
    ///
    /// Ends it now. Alerts it held back that still fire are delivered within a second or two.
    #[oai(
        path = "/silences/:id/expire",
        method = "post",
        operation_id = "expire_silence"
    )]
    async fn expire(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<SilenceResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        let row = store::expire(&self.0.db, id.0).await?;
        tracing::info!(silence_id = row.id, by = %crate::logs::Untrusted(auth.principal().who()), "silence expired");
        Ok(SilenceResponse::Ok(Json(shown(row))))
    }
}
