//! Running the probe on this machine (`hostwatch probe --local`, and tests that compare a poll
//! with the local /proc).

use std::{process::Stdio, time::Duration};

use tokio::{io::AsyncWriteExt, process::Command};

use crate::{
    error::{Error, Result},
    probe::{self, Snapshot},
    store::now_ms,
};

/// Runs the probe script with `<shell…> -s` (e.g. `sh`, `dash`, `busybox sh`) and returns its
/// output.
pub async fn run_probe(shell: &str) -> Result<String> {
    let mut argv = shell.split_whitespace();
    let program = argv
        .next()
        .ok_or_else(|| Error::invalid("shell", "empty"))?;
    let mut child = Command::new(program)
        .args(argv)
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {shell}"), e))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(probe::PROBE_SCRIPT.as_bytes())
        .await
        .map_err(|e| Error::io("writing the probe to the shell", e))?;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| Error::Probe(format!("{shell} ran over 30 s")))?
        .map_err(|e| Error::io("probe", e))?;
    if !out.status.success() {
        return Err(Error::Probe(format!("{shell} exited with {}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two readings `interval` apart, so the snapshot has rates.
pub async fn snapshot(shell: &str, interval: Duration) -> Result<Snapshot> {
    let first = run_probe(shell).await?;
    let (_, counters) = probe::build_snapshot(&first, None, now_ms());
    tokio::time::sleep(interval).await;
    let second = run_probe(shell).await?;
    Ok(probe::build_snapshot(&second, Some(&counters), now_ms()).0)
}
