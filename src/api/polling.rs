//! `/hosts/{id}/enroll`, `/hosts/{id}/poll`, `/hosts/{id}/host-key/trust`,
//! `/hosts/{id}/metrics/latest`: the operations that reach a host over SSH (through the poller)
//! and the snapshot they leave behind.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use crate::{
    api::{
        ApiResult, ApiTags, Auth,
        history::EnrollmentRun,
        hosts::HostKeyInfo,
        status::{BadGateway, BadRequest, Conflict, Forbidden, NotFound},
        ts,
    },
    error::Error,
    probe::Snapshot,
    services::Services,
    store::hosts,
};

/// The result of a poll made on request.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PollResult {
    /// Time from the request to the last byte of probe output.
    pub duration_ms: i64,
    /// Whether this poll had to open a new SSH connection.
    pub new_connection: bool,
    pub snapshot: Snapshot,
}

#[derive(ApiResponse)]
pub enum EnrollResponse {
    /// Enrollment ran; `ok` says whether it worked, the transcript says what happened.
    #[oai(status = 200)]
    Ok(Json<EnrollmentRun>),
}

#[derive(ApiResponse)]
pub enum PollResponse {
    #[oai(status = 200)]
    Ok(Json<PollResult>),
}

#[derive(ApiResponse)]
pub enum TrustResponse {
    /// The key the host presents now is the only trusted one.
    #[oai(status = 200)]
    Ok(Json<HostKeyInfo>),
}

#[derive(ApiResponse)]
pub enum LatestResponse {
    #[oai(status = 200)]
    Ok(Json<Snapshot>),
}

/// SSH operations on a host.
pub struct PollingApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Hosts")]
impl PollingApi {
    /// Enroll a host again
    ///
    /// Runs the enrollment script now (and provisioning, when the host asks for it and has not
    /// been provisioned yet) and returns the run with its transcript.
    #[oai(
        path = "/hosts/:id/enroll",
        method = "post",
        operation_id = "enroll_host"
    )]
    async fn enroll(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<EnrollResponse, (BadRequest, Forbidden, NotFound, BadGateway)> {
        auth.require_write()?;
        hosts::get(&self.0.db, id.0).await?;
        let run = self.0.registry.enroll(id.0).await?;
        Ok(EnrollResponse::Ok(Json(
            crate::api::history::enrollment_view(run),
        )))
    }

    /// Poll a host now
    ///
    /// Runs the probe over the host's connection and returns the snapshot; a host that cannot
    /// be reached gives 502 with the reason (`error` is the class of failure).
    #[oai(path = "/hosts/:id/poll", method = "post", operation_id = "poll_host")]
    async fn poll(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<PollResponse, (BadRequest, Forbidden, NotFound, Conflict, BadGateway)> {
        auth.require_write()?;
        hosts::get(&self.0.db, id.0).await?;
        let report = self.0.poller.poll(id.0, true).await?;
        Ok(PollResponse::Ok(Json(PollResult {
            duration_ms: report.duration.as_millis() as i64,
            new_connection: report.dialled,
            snapshot: report.snapshot,
        })))
    }

    /// Trust the host key presented now
    ///
    /// Connects, takes the key the host presents, makes it the only trusted key and clears a
    /// `host_key_mismatch` status. Do this only after checking the change is legitimate.
    #[oai(
        path = "/hosts/:id/host-key/trust",
        method = "post",
        operation_id = "trust_host_key"
    )]
    async fn trust(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<TrustResponse, (BadRequest, Forbidden, NotFound, BadGateway)> {
        auth.require_write()?;
        hosts::get(&self.0.db, id.0).await?;
        let key = self.0.registry.trust_host_key(id.0).await?;
        tracing::warn!(
            host_id = id.0,
            fingerprint = %key.fingerprint,
            by = %crate::logs::Untrusted(auth.principal().who()),
            "host key trusted"
        );
        Ok(TrustResponse::Ok(Json(HostKeyInfo {
            algorithm: key.algorithm,
            fingerprint: key.fingerprint,
            first_seen_at: ts(key.first_seen_at),
            last_seen_at: ts(key.last_seen_at),
        })))
    }

    /// The latest snapshot
    ///
    /// What the last successful poll found: CPU, memory, load, uptime, disks, disk I/O,
    /// network and GPUs. 404 until the host has been polled successfully.
    #[oai(
        path = "/hosts/:id/metrics/latest",
        method = "get",
        operation_id = "get_latest_metrics"
    )]
    async fn latest(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<LatestResponse, (BadRequest, NotFound)> {
        hosts::get(&self.0.db, id.0).await?;
        let json = self.0.poller.latest_snapshot(id.0).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "host {} has not been polled successfully yet",
                id.0
            ))
        })?;
        let snapshot: Snapshot = serde_json::from_str(&json)
            .map_err(|e| Error::stored(format!("snapshot of host {}", id.0), e))?;
        Ok(LatestResponse::Ok(Json(snapshot)))
    }
}
