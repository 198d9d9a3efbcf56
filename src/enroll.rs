//! Enrollment: run `enroll.sh` once on a new host (and on demand), record what the host is, keep
//! the whole transcript, and — when asked and possible — provision a dedicated `hostwatch` user
//! with the service's own key, then switch the host to it and erase the bootstrap password.
//!
//! The new login is proved (a real SSH login as `hostwatch`) before the stored credentials are
//! replaced, so a provisioning that half-worked never locks hostwatch out.

use std::sync::Arc;

use entity::{enrollment_run, host, host_credential};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::{
    error::Error,
    poller::{PollError, Poller, status},
    probe::{self, osinfo, split_sections},
    ssh::{
        client::{self, Auth, Target},
        keys,
    },
    store::{
        notifications::{self, NewNotification},
        now_ms, ssh as ssh_store,
    },
};

/// The facts enrollment found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub os_id: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel_name: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub uname: Option<String>,
    pub cpu_model: Option<String>,
    pub cpu_count: Option<u32>,
    pub memory_total_bytes: Option<u64>,
    pub has_nvidia: bool,
    pub has_proc: bool,
    /// The provisioning section's lines, when provisioning ran.
    pub provision: Option<String>,
}

impl Facts {
    /// Whether hostwatch can poll this host (Linux with /proc).
    pub fn supported(&self) -> bool {
        self.has_proc && self.kernel_name.as_deref() == Some("Linux")
    }
}

fn line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Reads the enrollment script's output. Pure.
pub fn parse_enrollment(output: &str) -> Facts {
    let s = split_sections(output);
    let get = |name: &str| s.get(name).copied().unwrap_or("");
    let os = osinfo::parse_os_release(get("os_release"));
    let cpu = osinfo::parse_cpuinfo(get("cpuinfo"));
    let uname_a = line(get("uname_a"));
    let from_a = uname_a.as_deref().and_then(osinfo::parse_uname_a);
    Facts {
        os_id: os.get("ID").cloned(),
        os_name: os.get("PRETTY_NAME").or(os.get("NAME")).cloned(),
        os_version: os.get("VERSION_ID").cloned(),
        kernel_name: line(get("uname_s"))
            .or_else(|| from_a.as_ref().map(|u| u.kernel_name.clone())),
        kernel: line(get("uname_r")).or_else(|| from_a.as_ref().map(|u| u.release.clone())),
        arch: line(get("uname_m")),
        hostname: line(get("hostname")).or_else(|| from_a.as_ref().map(|u| u.nodename.clone())),
        uname: uname_a,
        cpu_model: cpu.model,
        cpu_count: cpu.count,
        memory_total_bytes: probe::memory::parse_meminfo(get("meminfo")).map(|m| m.total_bytes),
        has_nvidia: get("nvidia").lines().any(|l| l.starts_with("GPU ")),
        has_proc: line(get("proc")).as_deref() == Some("yes"),
        provision: s.get("provision").map(|t| t.trim().to_owned()),
    }
}

/// A public key line safe to place inside single quotes in the script (it is ours, but check).
fn quotable(public_key: &str) -> bool {
    public_key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" +/=-_@.".contains(&b))
}

/// Enrolls a host and returns the stored run. SSH failures are recorded in the run (and the
/// host's status) and returned as an unsuccessful run, not as an error.
pub async fn enroll(
    poller: &Poller,
    host_id: i64,
    force: bool,
) -> Result<enrollment_run::Model, PollError> {
    let prepared = poller.prepare(host_id).await?;
    let host = prepared.host.clone();
    let credential = host_credential::Entity::find()
        .filter(host_credential::Column::HostId.eq(host_id))
        .one(&poller.db)
        .await
        .map_err(Error::from)?;
    let already_provisioned = credential
        .as_ref()
        .is_some_and(|c| c.source == "provisioned");
    let provision = host.provision && !already_provisioned;
    let mut script = String::new();
    let mut service_key = None;
    if provision {
        let (private, public) = ssh_store::service_key(&poller.db, &poller.secrets).await?;
        if !quotable(&public) {
            return Err(
                Error::Crypto("the service public key has unexpected characters".into()).into(),
            );
        }
        script.push_str(&format!("HW_PROVISION=1 HW_PUBKEY='{public}'\n"));
        service_key = Some((private, public));
    }
    script.push_str(probe::ENROLL_SCRIPT);

    let started_ms = now_ms();
    let started = std::time::Instant::now();
    let result = poller
        .run(
            &prepared,
            script.as_bytes(),
            poller.settings.enroll_timeout,
            force,
        )
        .await;
    let mut run = enrollment_run::ActiveModel {
        host_id: Set(host_id),
        started_at: Set(started_ms),
        provisioned: Set(already_provisioned),
        ..Default::default()
    };
    let mut error: Option<String> = None;
    let mut facts = None;
    match result {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.output.stdout).into_owned();
            run.stdout = Set(stdout.clone());
            run.stderr = Set(String::from_utf8_lossy(&out.output.stderr).into_owned());
            run.exit_code = Set(out.output.exit_status.map(|c| c as i32));
            if out.output.exit_status != Some(0) {
                error = Some(format!(
                    "enroll.sh exited with {:?}",
                    out.output.exit_status
                ));
            }
            facts = Some(parse_enrollment(&stdout));
        }
        Err(err) => {
            run.stdout = Set(String::new());
            run.stderr = Set(String::new());
            error = Some(err.to_string());
        }
    }

    if let (Some(f), None) = (&facts, &error) {
        apply_facts(poller, &host, f).await?;
        if f.supported() && provision {
            match (&f.provision, &service_key) {
                (Some(report), Some((private, public)))
                    if report.lines().any(|l| l == "provisioned") =>
                {
                    match verify_login(poller, &prepared.target, private).await {
                        Ok(()) => {
                            ssh_store::switch_to_provisioned(
                                &poller.db,
                                &poller.secrets,
                                host_id,
                                private,
                                public,
                            )
                            .await?;
                            poller.pool.forget(host_id).await;
                            run.provisioned = Set(true);
                        }
                        Err(e) => {
                            error = Some(format!(
                                "provisioning: the new login as hostwatch does not work: {e}"
                            ))
                        }
                    }
                }
                (report, _) => {
                    error = Some(format!(
                        "provisioning: {}",
                        report
                            .as_deref()
                            .and_then(|r| r.lines().last())
                            .unwrap_or("no report from the host")
                    ));
                }
            }
        }
    }
    let finished_ms = now_ms();
    run.finished_at = Set(Some(finished_ms));
    run.duration_ms = Set(Some(started.elapsed().as_millis() as i64));
    run.ok = Set(error.is_none());
    run.error = Set(error.clone());
    let previous_ok = enrollment_run::Entity::find()
        .filter(enrollment_run::Column::HostId.eq(host_id))
        .order_by_desc(enrollment_run::Column::Id)
        .one(&poller.db)
        .await
        .map_err(Error::from)?
        .is_none_or(|r| r.ok);
    let stored = run.insert(&poller.db).await.map_err(Error::from)?;
    // Facts, status, login or key may have changed.
    poller.invalidate(host_id);
    if let Some(message) = error {
        let reported_elsewhere = matches!(
            host::Entity::find_by_id(host_id).one(&poller.db).await.map_err(Error::from)?.map(|h| h.status),
            Some(s) if s == status::AUTH_FAILED || s == status::HOST_KEY_MISMATCH
        );
        if previous_ok && !reported_elsewhere {
            let n = notifications::insert(
                &poller.db,
                NewNotification {
                    host_id: Some(host_id),
                    kind: "enrollment_failed".into(),
                    level: "warning".into(),
                    state: "firing".into(),
                    event: Some("fired".into()),
                    title: format!("Enrollment of {} failed", host.name),
                    message: format!("{} ({}:{}): {message}", host.name, host.address, host.port),
                    ..Default::default()
                },
            )
            .await?;
            poller.hub.published(n.id);
        }
    }
    Ok(stored)
}

/// Stores the facts and the status they imply.
async fn apply_facts(poller: &Poller, host: &host::Model, f: &Facts) -> Result<(), PollError> {
    let mut model: host::ActiveModel = host.clone().into();
    model.os_id = Set(f.os_id.clone());
    model.os_name = Set(f.os_name.clone());
    model.os_version = Set(f.os_version.clone());
    model.kernel = Set(f.kernel.clone());
    model.arch = Set(f.arch.clone());
    model.hostname = Set(f.hostname.clone());
    model.uname = Set(f.uname.clone());
    model.cpu_model = Set(f.cpu_model.clone());
    model.cpu_count = Set(f.cpu_count.map(|c| c as i32));
    model.memory_total_bytes = Set(f.memory_total_bytes.map(|m| m as i64));
    model.has_nvidia = Set(Some(f.has_nvidia));
    model.enrolled_at = Set(Some(now_ms()));
    model.updated_at = Set(now_ms());
    if f.supported() {
        if host.status != status::OK {
            model.status = Set(status::OK.into());
            model.status_message = Set(Some("enrolled".into()));
        }
    } else {
        model.status = Set(status::UNSUPPORTED.into());
        model.status_message = Set(Some(format!(
            "not a Linux host with /proc: {}",
            f.uname
                .clone()
                .unwrap_or_else(|| "uname -a printed nothing".into())
        )));
    }
    model.update(&poller.db).await.map_err(Error::from)?;
    if f.supported() && host.status != status::OK {
        poller
            .leave_status(
                host,
                format!("{} is reachable again", host.name),
                format!("{} was enrolled.", host.name),
            )
            .await?;
    }
    Ok(())
}

/// Logs in as `hostwatch` with the service key and checks who we are.
async fn verify_login(
    poller: &Poller,
    bootstrap: &Target,
    private_key: &str,
) -> Result<(), String> {
    let key = keys::decode_private_key(private_key, None).map_err(|e| e.to_string())?;
    let target = Target {
        username: "hostwatch".into(),
        auth: Auth::Key(Arc::new(key)),
        ..bootstrap.clone()
    };
    let work = async {
        let session = client::connect(&target, true)
            .await
            .map_err(|e| e.to_string())?;
        let out = session
            .run_script(b"id -un\n", 4096)
            .await
            .map_err(|e| e.to_string())?;
        session.close().await;
        let who = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if who == "hostwatch" {
            Ok(())
        } else {
            Err(format!("logged in as {who:?}"))
        }
    };
    tokio::time::timeout(poller.settings.poll_timeout, work)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_from_a_transcript() {
        let out = "\n<<<os_release>>>\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n\
                   <<<uname_s>>>\nLinux\n<<<uname_r>>>\n6.1.0\n<<<uname_m>>>\nx86_64\n<<<uname_a>>>\nLinux vm 6.1.0 #1 SMP x86_64 GNU/Linux\n\
                   <<<hostname>>>\nvm\n<<<proc>>>\nyes\n<<<cpuinfo>>>\nprocessor\t: 0\nmodel name\t: Xeon\n\
                   <<<meminfo>>>\nMemTotal: 1024 kB\nMemFree: 512 kB\n<<<nvidia>>>\nGPU 0: NVIDIA L40S (UUID: GPU-1)\n<<<whoami>>>\nroot\n<<<end>>>\n";
        let f = parse_enrollment(out);
        assert!(f.supported());
        assert_eq!(f.os_id.as_deref(), Some("debian"));
        assert_eq!(f.os_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(
            (f.kernel.as_deref(), f.arch.as_deref()),
            (Some("6.1.0"), Some("x86_64"))
        );
        assert_eq!(
            (f.cpu_model.as_deref(), f.cpu_count),
            (Some("Xeon"), Some(1))
        );
        assert_eq!(f.memory_total_bytes, Some(1024 * 1024));
        assert!(f.has_nvidia);
        assert_eq!(f.provision, None);
    }

    #[test]
    fn non_linux_is_unsupported() {
        let out = "<<<uname_s>>>\nFreeBSD\n<<<uname_a>>>\nFreeBSD rootkit 14.0-RELEASE FreeBSD 14.0-RELEASE #0\n<<<proc>>>\n\n<<<end>>>\n";
        let f = parse_enrollment(out);
        assert!(!f.supported());
        assert_eq!(
            f.uname.as_deref(),
            Some("FreeBSD rootkit 14.0-RELEASE FreeBSD 14.0-RELEASE #0")
        );
        assert!(!f.has_nvidia);
    }

    #[test]
    fn service_keys_are_quotable() {
        assert!(quotable(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+/x= hostwatch"
        ));
        assert!(!quotable("ssh-ed25519 AAAA' ; rm -rf / '"));
    }
}
