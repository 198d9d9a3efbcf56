//! Reads of what polling and URL checks recorded: poll attempts, and URL checks' response
//! times and certificate days in buckets. (Host metric series are `store::series`.)

use entity::{
    poll,
    series::Aggregate,
    types::{PollErrorKind, PollOutcome},
    url_check_result,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};

use crate::error::Result;

/// A poll attempt as listed: its row without the metric values it carries.
#[derive(Debug, Clone, PartialEq, sea_orm::FromQueryResult)]
pub struct PollRecord {
    pub id: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: PollOutcome,
    pub error_kind: Option<PollErrorKind>,
    pub error: Option<String>,
}

/// A page of a host's polls, newest first, and how many it has in all.
pub async fn polls(
    db: &impl ConnectionTrait,
    host_id: i64,
    limit: u64,
    offset: u64,
) -> Result<(Vec<PollRecord>, u64)> {
    use poll::Column as C;
    let total = poll::Entity::find()
        .filter(poll::Column::HostId.eq(host_id))
        .count(db)
        .await?;
    // Not the values (a kilobyte or two a row): the listing does not show them.
    let rows = poll::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::StartedAt,
            C::DurationMs,
            C::Outcome,
            C::ErrorKind,
            C::Error,
        ])
        .filter(poll::Column::HostId.eq(host_id))
        .order_by_desc(poll::Column::StartedAt)
        .order_by_desc(poll::Column::Id)
        .limit(limit)
        .offset(offset)
        .into_model::<PollRecord>()
        .all(db)
        .await?;
    Ok((rows, total))
}

/// A URL check's value a bucket query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlValue {
    ResponseMs,
    CertDaysLeft,
}

/// A URL check's `value` over `[from_ms, to_ms)` in buckets of `step_ms`, oldest first; a
/// bucket with no run that measured it is absent.
pub async fn url_buckets(
    db: &impl ConnectionTrait,
    check_id: i64,
    value: UrlValue,
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
) -> Result<Vec<(i64, Aggregate)>> {
    #[derive(FromQueryResult)]
    struct Bucket {
        bucket: i64,
        count: i64,
        avg: f64,
        min: f64,
        max: f64,
    }
    let column = match value {
        UrlValue::ResponseMs => url_check_result::Column::ResponseMs,
        UrlValue::CertDaysLeft => url_check_result::Column::TlsDaysLeft,
    };
    let step = Ord::max(step_ms, 1);
    // The bucket's start, the same on both backends. Written out rather than bound: PostgreSQL
    // matches the grouped expression to the selected one by its text, and two bound copies of
    // the step are two parameters to it.
    let bucket = Expr::cust(format!("checked_at - (checked_at % {step})"));
    let as_real = |e: Expr| e.cast_as("DOUBLE PRECISION");
    let select = Query::select()
        .expr_as(bucket.clone(), "bucket")
        .expr_as(Expr::col(column).count(), "count")
        .expr_as(as_real(Expr::col(column).avg()), "avg")
        .expr_as(as_real(Expr::col(column).min()), "min")
        .expr_as(as_real(Expr::col(column).max()), "max")
        .from(url_check_result::Entity)
        .and_where(url_check_result::Column::UrlCheckId.eq(check_id))
        .and_where(url_check_result::Column::CheckedAt.gte(from_ms))
        .and_where(url_check_result::Column::CheckedAt.lt(to_ms))
        .and_where(Expr::col(column).is_not_null())
        .add_group_by([bucket.clone()])
        .order_by_expr(bucket, sea_orm::Order::Asc)
        .take();
    let rows = Bucket::find_by_statement(db.get_database_backend().build(&select))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|b| {
            (
                b.bucket,
                Aggregate {
                    count: b.count as u32,
                    sum: b.avg * b.count as f64,
                    min: b.min,
                    max: b.max,
                },
            )
        })
        .collect())
}
