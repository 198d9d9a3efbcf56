//! One poll of one host: enroll it first if it never was, run the probe over its link, turn the
//! output into a [`Plan`] of what to store (pure), and hand that to the writer; a failure is
//! recorded instead, with the `host_unreachable` count.

use std::{sync::Arc, time::Duration};

use entity::{
    host,
    types::{HostStatus, PollErrorKind, PollOutcome},
};

use super::{LATEST_ROW_EVERY_MS, PollError, Poller, Prepared, who, writer::SuccessRecord};
use crate::{
    alerts::{
        evaluate::{self, AlertKey, ThresholdRule},
        forecast::{DiskTrend, MountUse},
        text,
    },
    error::{Error, Result},
    probe::{self, Counters, MetricValue, Snapshot},
    ssh::{client::ExecOutput, pool::Finish},
    store::{
        alerts,
        notifications::NotificationHub,
        now_ms,
        polls::{self, FailedPoll, LatestRow},
        ssh as ssh_store,
        thresholds::{self, Owner},
    },
};

/// What a successful poll returns.
#[derive(Debug, Clone)]
pub struct PollReport {
    pub snapshot: Snapshot,
    pub duration: Duration,
    pub dialled: bool,
}

/// What a probe's output means for the store: the snapshot and the counters the next rates
/// need, the values to keep, and the `latest_snapshots` row when it is due.
#[derive(Debug)]
pub(super) struct Plan {
    pub snapshot: Snapshot,
    pub counters: Counters,
    pub snapshot_json: Arc<str>,
    pub values: Vec<MetricValue>,
    /// Mounts of pseudo filesystems (tmpfs and the like): no disk threshold unless one names
    /// them.
    pub pseudo_mounts: Vec<String>,
    /// Present when this poll rewrites the host's rows (see [`LATEST_ROW_EVERY_MS`]).
    pub latest: Option<LatestRow>,
}

/// Plans the store of one probe output taken at `now_ms`. A status to clear is written at
/// once; otherwise the host's rows wait their turn. Pure.
pub(super) fn plan(
    output: &str,
    host: &host::Model,
    previous: Option<&Counters>,
    row_written_at: Option<i64>,
    pseudo_filesystems: &[String],
    now_ms: i64,
) -> Plan {
    let (snapshot, counters) = probe::build_snapshot(output, previous, now_ms);
    let snapshot_json: Arc<str> = serde_json::to_string(&snapshot)
        .expect("snapshot serialises")
        .into();
    let status_to_clear = !host.status.survives_polls()
        && (host.status != HostStatus::Ok || host.status_message.is_some());
    let rows_due =
        status_to_clear || row_written_at.is_none_or(|at| now_ms - at >= LATEST_ROW_EVERY_MS);
    let latest = rows_due.then(|| LatestRow {
        host_id: host.id,
        taken_at: now_ms,
        snapshot_json: snapshot_json.clone(),
        counters_json: serde_json::to_string(&counters).expect("counters serialise"),
    });
    let pseudo_mounts = snapshot
        .disks
        .iter()
        .filter(|d| {
            d.fs_type
                .as_ref()
                .is_some_and(|t| pseudo_filesystems.contains(t))
        })
        .map(|d| d.mount.clone())
        .collect();
    Plan {
        values: probe::metric_values(&snapshot),
        pseudo_mounts,
        snapshot,
        counters,
        snapshot_json,
        latest,
    }
}

/// The probe's last section: its output ends with this line.
const END_MARKER: &[u8] = b"\n<<<end>>>";

/// Whether the probe ran to its end: it exited with status 0 (not by a signal, and not on a
/// channel closed without any exit status) and its output reached the end marker. Pure.
pub(super) fn ran_to_the_end(out: &ExecOutput) -> Result<(), (PollErrorKind, String)> {
    let stderr = || {
        let text = String::from_utf8_lossy(&out.stderr);
        match text.trim() {
            "" => String::new(),
            text => format!(": {text}"),
        }
    };
    // The marker is the last line: only the output's tail is searched.
    let tail = &out.stdout[out.stdout.len().saturating_sub(64)..];
    let ended = tail.windows(END_MARKER.len()).any(|w| w == END_MARKER);
    match (out.exit_status, &out.exit_signal) {
        (_, Some(signal)) => Err((
            PollErrorKind::ProbeFailed,
            format!("the probe was killed by signal {signal}{}", stderr()),
        )),
        (None, None) => Err((
            PollErrorKind::Dropped,
            format!(
                "the host closed the channel without an exit status ({} bytes of output)",
                out.stdout.len()
            ),
        )),
        (Some(0), None) if ended => Ok(()),
        (Some(0), None) => Err((
            PollErrorKind::ProbeFailed,
            format!(
                "the probe's output stopped before its end marker ({} bytes)",
                out.stdout.len()
            ),
        )),
        (Some(code), None) => Err((
            PollErrorKind::ProbeFailed,
            format!("the probe exited with status {code}{}", stderr()),
        )),
    }
}

impl Poller {
    /// [`Poller::poll`] holding `ssh_permit` (a slot of the concurrency limit) only while it
    /// talks to the host: parsing and storing do not hold up the next host's SSH work, and a slow
    /// database commit does not make other polls start late.
    pub async fn poll_holding(
        &self,
        host_id: i64,
        force: bool,
        ssh_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<PollReport, PollError> {
        self.ensure_leader()?;
        let started_ms = now_ms();
        let started = std::time::Instant::now();
        let result = self.poll_inner(host_id, force, ssh_permit).await;
        let (outcome, kind, message) = match &result {
            Ok(_) => return result,
            // Deposed while polling: nothing of this poll may be stored.
            Err(PollError::Service(Error::NotLeader)) => return result,
            Err(PollError::Host { kind, message }) => (PollOutcome::Error, *kind, message.clone()),
            Err(PollError::Refused(m)) => (PollOutcome::Refused, PollErrorKind::Refused, m.clone()),
            Err(PollError::Service(Error::NotFound(_))) => return result,
            Err(PollError::Service(e)) => {
                (PollOutcome::Error, PollErrorKind::Internal, e.to_string())
            }
        };
        // Whatever failed may have changed the host's row (status, key): read it afresh.
        self.link.cache.invalidate(host_id);
        // A scheduled tick on a parked host (key mismatch, unsupported) is not an attempt.
        let parked = !force && outcome == PollOutcome::Refused;
        if !parked {
            let failed = FailedPoll {
                host_id,
                started_ms,
                duration_ms: started.elapsed().as_millis() as i64,
                outcome,
                error_kind: kind,
                error: message,
            };
            self.record_failure(&failed).await?;
        }
        result
    }

    /// The poll record of a failure, and the `host_unreachable` count, in one transaction.
    async fn record_failure(&self, failed: &FailedPoll) -> Result<(), PollError> {
        let db = &self.link.db;
        let txn = self.link.fence.begin(db).await?;
        let host = polls::write_failed(&txn, failed).await?;
        let mut written = Vec::new();
        if let Some(host) = host.filter(|h| h.status == HostStatus::Unreachable) {
            let who = who(&host);
            let key = AlertKey {
                subject: who.subject,
                kind: entity::types::AlertKind::HostUnreachable,
                metric: String::new(),
                label: String::new(),
            };
            let stored = alerts::find(&txn, &key).await?;
            let now = now_ms();
            let changes = evaluate::after_failed_poll(
                who,
                stored.as_ref(),
                &failed.error,
                self.settings.unreachable_after,
                now,
            );
            written = alerts::apply(&txn, changes, now).await?;
        }
        txn.commit().await.map_err(Error::from)?;
        publish(&self.link.hub, &written);
        Ok(())
    }

    async fn poll_inner(
        &self,
        host_id: i64,
        force: bool,
        ssh_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<PollReport, PollError> {
        let mut prepared = self.link.prepared(host_id).await?;
        refuse_parked(&prepared)?;
        if !force {
            self.refuse_in_maintenance(&prepared)?;
        }
        if prepared.host.enrolled_at.is_none() {
            let run = self.enroll(host_id, force).await?;
            prepared = self.link.prepared(host_id).await?;
            if prepared.host.enrolled_at.is_none() {
                return Err(PollError::Host {
                    kind: PollErrorKind::EnrollmentFailed,
                    message: format!(
                        "enrollment failed: {}",
                        run.error.unwrap_or_else(|| format!(
                            "see GET /api/v1/hosts/{host_id}/enrollment"
                        ))
                    ),
                });
            }
            if prepared.host.status == HostStatus::Unsupported {
                return Err(PollError::Refused(
                    prepared.host.status_message.clone().unwrap_or_default(),
                ));
            }
        }
        let started_ms = now_ms();
        let run = self
            .link
            .run(
                &prepared,
                probe::PROBE_SCRIPT.as_bytes(),
                self.settings.poll_timeout,
                Finish::At(tokio::time::Instant::now() + self.settings.poll_timeout),
                force,
            )
            .await?;
        drop(ssh_permit);
        if let Err((kind, message)) = ran_to_the_end(&run.output) {
            let err = PollError::Host { kind, message };
            super::link::log_unreachable(&prepared.host, &err);
            ssh_store::set_status(
                &self.link.db,
                host_id,
                HostStatus::Unreachable,
                Some(err.to_string()),
            )
            .await?;
            return Err(err);
        }
        let text = String::from_utf8_lossy(&run.output.stdout);
        let (cached, row_written_at) = self.link.cache.update(host_id, |e| {
            (
                e.counters.take(),
                e.newest.as_ref().and_then(|n| n.row_written_at),
            )
        });
        let previous = match cached {
            Some(c) => Some(c),
            None => polls::latest_counters(&self.link.db, host_id).await?,
        };
        let now = now_ms();
        let mut plan = plan(
            &text,
            &prepared.host,
            previous.as_ref(),
            row_written_at,
            &self.settings.pseudo_filesystems,
            now,
        );
        let window = self.settings.forecast_window;
        let forecasts = self.link.cache.update(host_id, |e| {
            let trend = e.disk_trend.get_or_insert_with(|| DiskTrend::new(window));
            trend.observe(
                now,
                plan.snapshot
                    .disks
                    .iter()
                    .filter(|d| !plan.pseudo_mounts.contains(&d.mount))
                    .filter_map(|d| {
                        Some(MountUse {
                            mount: &d.mount,
                            used_bytes: d.used_bytes?,
                            available_bytes: d.available_bytes?,
                        })
                    }),
            )
        });
        plan.values.extend(forecasts);
        let rules = self.rules(host_id).await?;
        let wrote_row = plan.latest.is_some();
        let written = self
            .writer
            .store(SuccessRecord {
                prepared: prepared.clone(),
                rules,
                started_ms,
                duration_ms: run.output.duration.as_millis() as i64,
                ts: now,
                latest: plan.latest,
                values: plan.values,
                pseudo_mounts: plan.pseudo_mounts,
            })
            .await?;
        self.link.cache.update(host_id, |e| {
            e.counters = Some(plan.counters);
            e.newest = Some(super::cache::Newest {
                polled_at: started_ms,
                taken_at: now,
                snapshot_json: plan.snapshot_json,
                row_written_at: if wrote_row { Some(now) } else { row_written_at },
            });
        });
        publish(&self.link.hub, &written);
        let status = prepared.host.status;
        if status.survives_polls() {
            // Kept until the enrollment that clears it.
        } else if status != HostStatus::Ok {
            // The cached host row still says the old status.
            self.link.cache.invalidate(host_id);
            let host = &prepared.host;
            tracing::info!(
                host_id,
                host = %crate::logs::Untrusted(&host.name),
                was = %host.status,
                "host answers again"
            );
            self.link
                .leave_status(
                    host,
                    text::status::answered(&host.name, host.status.as_str()),
                )
                .await?;
        } else if prepared.host.status_message.is_some() {
            self.link.message_cleared(&prepared);
        }
        Ok(PollReport {
            snapshot: plan.snapshot,
            duration: run.output.duration,
            dialled: run.dialled,
        })
    }

    /// The host's threshold rules, from memory when they did not change since the last poll.
    async fn rules(&self, host_id: i64) -> Result<Arc<Vec<ThresholdRule>>> {
        if let Some(hit) = self.link.cache.read(host_id, |e| e.rules.clone()) {
            return Ok(hit);
        }
        let generation = self.link.cache.generation(host_id);
        let loaded = Arc::new(thresholds::rules(&self.link.db, Owner::Host(host_id)).await?);
        self.link
            .cache
            .update_unless_invalidated(host_id, generation, |e| e.rules = Some(loaded.clone()));
        Ok(loaded)
    }
}

/// Refuses to poll a host whose status waits for an operator.
impl Poller {
    /// Refuses a scheduled poll of a host in a maintenance window that pauses collection: no
    /// poll, no `host_unreachable` during a planned reboot.
    fn refuse_in_maintenance(&self, prepared: &Prepared) -> Result<(), PollError> {
        let windows = self.maintenance_windows();
        let now = chrono::Utc::now();
        let paused =
            crate::alerts::maintenance::covering(&windows, prepared.host.id, &prepared.labels, now)
                .find(|(w, _)| !w.collect);
        match paused {
            Some((w, until)) => Err(PollError::Refused(format!(
                "in maintenance window {:?} until {}: polls pause",
                w.name,
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))),
            None => Ok(()),
        }
    }
}

fn refuse_parked(prepared: &Prepared) -> Result<(), PollError> {
    let host = &prepared.host;
    match host.status {
        HostStatus::HostKeyMismatch => Err(PollError::Refused(format!(
            "refused: the host key of {} changed; re-trust it with \
             POST /api/v1/hosts/{}/host-key/trust",
            host.name, host.id
        ))),
        HostStatus::Unsupported => Err(PollError::Refused(format!(
            "refused: {} is not a supported host ({}); enroll it again once that changes",
            host.name,
            host.status_message.clone().unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// Tells the hub about notifications once committed.
fn publish(hub: &NotificationHub, written: &[entity::notification::Model]) {
    for n in written {
        hub.publish(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(status: HostStatus, message: Option<&str>) -> host::Model {
        host::Model {
            id: 4,
            name: "h".into(),
            address: "127.0.0.1".into(),
            port: 22,
            username: "u".into(),
            status,
            status_message: message.map(str::to_owned),
            enabled: true,
            schedule: "0 * * * * *".into(),
            provision: false,
            expected_host_key_fingerprint: None,
            os_id: None,
            os_name: None,
            os_version: None,
            kernel: None,
            arch: None,
            hostname: None,
            cpu_model: None,
            cpu_count: None,
            memory_total_bytes: None,
            has_nvidia: None,
            uname: None,
            enrolled_at: Some(1),
            last_poll_at: None,
            last_ok_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    const OUTPUT: &str = "<<<loadavg>>>\n0.50 0.40 0.30 1/100 42\n<<<end>>>\n";

    #[test]
    fn the_rows_are_rewritten_once_a_minute_or_when_a_status_clears() {
        let ok = host(HostStatus::Ok, None);
        let now = 10_000_000;
        assert!(
            plan(OUTPUT, &ok, None, None, &[], now).latest.is_some(),
            "never written"
        );
        assert!(
            plan(OUTPUT, &ok, None, Some(now - 1_000), &[], now)
                .latest
                .is_none()
        );
        let due = plan(OUTPUT, &ok, None, Some(now - LATEST_ROW_EVERY_MS), &[], now);
        assert_eq!(due.latest.as_ref().map(|l| l.taken_at), Some(now));
        for changed in [
            host(HostStatus::Unreachable, Some("timed out")),
            host(HostStatus::Ok, Some("enrolled")),
        ] {
            assert!(
                plan(OUTPUT, &changed, None, Some(now - 1_000), &[], now)
                    .latest
                    .is_some()
            );
        }
    }

    #[test]
    fn a_plan_carries_the_snapshot_and_its_values() {
        let p = plan(OUTPUT, &host(HostStatus::Ok, None), None, None, &[], 5_000);
        assert_eq!(p.snapshot.load.as_ref().map(|l| l.one), Some(0.5));
        assert!(
            p.values
                .iter()
                .any(|v| v.name == "load.one" && v.value == 0.5)
        );
        let stored: Snapshot = serde_json::from_str(&p.snapshot_json).unwrap();
        assert_eq!(stored, p.snapshot);
        assert_eq!(p.counters.taken_at_ms, 5_000);
    }

    fn output(stdout: &str, status: Option<u32>, signal: Option<&str>) -> ExecOutput {
        ExecOutput {
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"sh: oops\n".to_vec(),
            exit_status: status,
            exit_signal: signal.map(str::to_owned),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn a_poll_is_ok_only_when_the_probe_ran_to_its_end() {
        let full = "<<<stat>>>\ncpu 1 2 3\n<<<end>>>\n";
        assert_eq!(ran_to_the_end(&output(full, Some(0), None)), Ok(()));
        let kind = |o: ExecOutput| ran_to_the_end(&o).unwrap_err();
        let (k, m) = kind(output("", None, None));
        assert_eq!(k, PollErrorKind::Dropped);
        assert!(m.contains("without an exit status"), "{m}");
        assert_eq!(kind(output(full, None, None)).0, PollErrorKind::Dropped);
        let (k, m) = kind(output("<<<stat>>>\ncpu 1", Some(0), None));
        assert_eq!(k, PollErrorKind::ProbeFailed);
        assert!(m.contains("end marker"), "{m}");
        let (k, m) = kind(output(full, Some(2), None));
        assert_eq!(k, PollErrorKind::ProbeFailed);
        assert_eq!(m, "the probe exited with status 2: sh: oops");
        assert!(
            kind(output(full, Some(0), Some("KILL")))
                .1
                .contains("signal KILL")
        );
    }
}
