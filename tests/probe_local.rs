//! The real probe script, run here under dash and BusyBox sh (the shells DESIGN.md requires),
//! parsed, and compared with what this machine reports about itself.

mod common;

use common::local_truth;
use hostwatch::poller::local;

async fn check(shell: &str) {
    let snap = local::snapshot(shell, std::time::Duration::from_millis(300))
        .await
        .unwrap_or_else(|e| panic!("{shell}: {e}"));
    assert!(
        snap.unavailable.is_empty(),
        "{shell}: {:?}",
        snap.unavailable
    );
    assert_eq!(
        snap.memory.as_ref().unwrap().total_bytes,
        local_truth::mem_total_bytes(),
        "{shell}"
    );
    let cpu = snap.cpu.as_ref().unwrap();
    assert_eq!(cpu.count, local_truth::cpu_count(), "{shell}");
    assert!(
        cpu.usage_pct.is_some_and(|u| (0.0..=100.0).contains(&u)),
        "{shell}: {cpu:?}"
    );
    let root = snap
        .disks
        .iter()
        .find(|d| d.mount == "/")
        .unwrap_or_else(|| panic!("{shell}: no / in {:?}", snap.disks));
    assert_eq!(root.total_bytes, local_truth::root_size_bytes(), "{shell}");
    assert!(snap.load.is_some() && snap.uptime_seconds.is_some() && snap.host_time.is_some());
    assert!(
        snap.network
            .iter()
            .any(|n| n.iface == "lo" && n.rx_bytes_per_s.is_some()),
        "{shell}"
    );
}

#[tokio::test]
async fn probe_under_dash() {
    check("dash").await;
}

#[tokio::test]
async fn probe_under_busybox_sh() {
    check("busybox sh").await;
}

#[test]
fn probe_writes_nothing() {
    // Every redirection in the probe goes to /dev/null or another descriptor: no files are made.
    let script = hostwatch::probe::PROBE_SCRIPT;
    for (n, line) in script.lines().enumerate() {
        // Drop comments and single-quoted text (the section marker format has '>' in it).
        let code: String = line
            .split('#')
            .next()
            .unwrap()
            .split('\'')
            .step_by(2)
            .collect();
        for (i, _) in code.match_indices('>') {
            let rest = &code[i + 1..];
            assert!(
                rest.starts_with("/dev/null") || rest.starts_with('&'),
                "line {}: {line}",
                n + 1
            );
        }
    }
    assert!(!script.contains("mktemp") && !script.contains("tee "));
}
