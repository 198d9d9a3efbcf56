//! bench: hostwatch's benchmark driver (not part of the service; run by `scripts/bench.sh`).
//!
//! `bench a --port P --user U --key FILE [--parallel 8] [--seconds 15] [--rounds 5]
//!   [--only hostwatch|ssh|local]`
//!   against a real sshd: polls/s of hostwatch's poller (SSH, parse, store), of `ssh` subprocesses
//!   running the same probe (a new connection per poll), and of `sh` running it locally; the three
//!   take turns in `--rounds` rounds; `--only` runs one of them (for profiling).
//! `bench b --hosts N --sim PATH [--base-port 20000] [--seconds 60] [--history-minutes 0]`
//!   a simulated fleet on a 10 s schedule: polls on time / late / missed, latency, CPU, memory,
//!   samples written; `--history-minutes` first gives each host that much past history (polls
//!   with empty sample sets), so the database is not a young one.
//! `bench h [--database-url URL] [--hosts 10000] [--storage-hosts 100] [--storage-hours 6]`
//!   history: bytes on disk per poll (raw tier, with its index share; and the JSON form it
//!   replaced, same polls) and per host per day (all tiers), the write path's CPU per poll with
//!   rollups; then step-query latency (server side: plan, read, buckets) p50/p99 for a 24 h and
//!   a 30-day `step=auto` chart of one host, and a fleet top-10 over 24 h, in a database holding
//!   `--hosts` hosts' rollups (31 days of hours, 2 days of 10 minutes, 26 h of minutes). SQLite in
//!   a temporary file unless `--database-url` names an empty PostgreSQL database.
//! `bench c --hosts N --sim PATH [--base-port 20000] [--seconds 60]`
//!   the same simulated fleet as bare SSH connections (hostwatch's client on russh running the
//!   probe every 10 s, with no parse, store or scheduler): CPU per run and RSS per connection,
//!   the part of `b`'s figures that is the connection itself.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use entity::series::{Aggregate, SeriesKey};
use entity::{host, poll};
use hostwatch::tiers::Tier;
use hostwatch::{
    crypto::SecretBox,
    poller::PollerSettings,
    probe::{MetricValue, PROBE_SCRIPT},
    scheduler,
    services::Services,
    ssh::client::{self, Auth, HostKeyPolicy, Target},
    store::{
        self,
        hosts::{NewCredential, NewHost},
    },
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    sea_query::Expr,
};
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

/// hostwatch's benchmark driver; `scripts/bench.sh` runs each part.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    part: Part,
}

#[derive(Debug, Subcommand)]
enum Part {
    /// Polls/s against a real sshd: hostwatch's poller, `ssh` subprocesses, local `sh`.
    A(PartA),
    /// A simulated fleet on a 10 s schedule, polled by the whole service.
    B(PartB),
    /// The simulated fleet as bare SSH connections running the probe.
    C(Fleet),
    /// History: storage per poll and per host-day, write CPU, step-query latency.
    H(PartH),
}

#[derive(Debug, Args)]
struct PartH {
    /// An empty PostgreSQL database; SQLite in a temporary file when absent.
    #[arg(long)]
    database_url: Option<String>,
    /// Hosts whose rollups the query part's database holds.
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    /// Hosts the storage part writes polls for.
    #[arg(long, default_value_t = 100)]
    storage_hosts: usize,
    /// Hours of 10 s polls the storage part writes for each.
    #[arg(long, default_value_t = 6)]
    storage_hours: u64,
    /// Queries timed per chart range.
    #[arg(long, default_value_t = 200)]
    queries: usize,
}

#[derive(Debug, Args)]
struct PartA {
    /// The sshd's port on 127.0.0.1.
    #[arg(long, default_value_t = 2222)]
    port: u16,
    /// The user to log in as.
    #[arg(long)]
    user: String,
    /// Its private key (unencrypted).
    #[arg(long)]
    key: std::path::PathBuf,
    /// Polls in flight at once, each way.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Seconds each way runs in all.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Rounds the three ways take turns in.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Run only one way (for profiling).
    #[arg(long, value_enum)]
    only: Option<Way>,
}

/// How part A polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Way {
    Hostwatch,
    Ssh,
    Local,
}

/// A simulated fleet.
#[derive(Debug, Args)]
struct Fleet {
    /// Simulated hosts.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// The fleet simulator's binary.
    #[arg(long)]
    sim: std::path::PathBuf,
    /// The first simulated host's port (one port per host from here).
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// The measured window, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

#[derive(Debug, Args)]
struct PartB {
    #[command(flatten)]
    fleet: Fleet,
    /// Hosts talked to over SSH at once.
    #[arg(long, default_value_t = 128)]
    max_concurrent_polls: usize,
    /// Minutes of past polls each host gets first, so the database is not a young one.
    #[arg(long, default_value_t = 0)]
    history_minutes: u64,
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct passed.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// CPU seconds (user + system) the given processes have used.
fn children_cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks)
        })
        .sum()
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

async fn state(dir: &std::path::Path, poll_timeout: Duration) -> Services {
    let db = store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("bench.db").display()
    ))
    .await
    .expect("database");
    store::migrate(&db).await.expect("migrations");
    let settings = PollerSettings {
        poll_timeout,
        enroll_on_create: false,
        ..Default::default()
    };
    Services::start(
        db,
        SecretBox::load(None, dir).expect("master key"),
        settings,
    )
}

/// A host on 127.0.0.1, enabled, without labels, a pinned key or provisioning.
fn loopback_host(
    name: String,
    port: u16,
    username: &str,
    credential: NewCredential,
    schedule: &str,
) -> NewHost {
    NewHost {
        name,
        address: "127.0.0.1".into(),
        port,
        username: username.into(),
        credential,
        schedule: schedule.into(),
        labels: vec![],
        expected_host_key_fingerprint: None,
        provision: false,
        enabled: true,
    }
}

/// Registers a host and marks it enrolled (the benchmark measures steady-state polling).
async fn add_host(
    state: &Services,
    name: String,
    port: u16,
    username: &str,
    credential: NewCredential,
    schedule: &str,
) -> i64 {
    let view = store::hosts::create(
        &state.db,
        &state.secrets,
        loopback_host(name, port, username, credential, schedule),
    )
    .await
    .expect("host");
    view.host.id
}

async fn mark_enrolled(state: &Services) {
    host::Entity::update_many()
        .col_expr(host::Column::EnrolledAt, Expr::value(store::now_ms()))
        .col_expr(host::Column::Status, Expr::value("ok"))
        .exec(&state.db)
        .await
        .expect("enrolled");
}

/// The series a simulated host reports, and plausible values of them (none zero).
fn sim_series() -> Vec<(SeriesKey, f64)> {
    let mut out = Vec::new();
    let mut key = |name: &str, label: &str, value: f64| {
        out.push((SeriesKey::new(name, label), value));
    };
    for (name, value) in [
        ("cpu.usage_pct", 23.417),
        ("cpu.iowait_pct", 1.25),
        ("cpu.steal_pct", 0.31),
        ("load.per_core", 0.4175),
        ("memory.used_pct", 61.0912),
        ("swap.used_pct", 3.5),
        ("load.one", 1.67),
        ("load.five", 1.42),
        ("load.fifteen", 1.21),
        ("uptime.seconds", 8_123_456.78),
    ] {
        key(name, "", value);
    }
    for (mount, used) in [
        ("/", 48.913),
        ("/boot", 21.4),
        ("/var", 72.08),
        ("/data", 88.2),
    ] {
        key("disk.used_pct", mount, used);
        key("disk.inodes_used_pct", mount, used / 7.0);
    }
    for dev in ["sda", "sdb"] {
        key("disk.read_bytes_per_s", dev, 1_234_567.0);
        key("disk.write_bytes_per_s", dev, 7_654_321.0);
    }
    for iface in ["eth0", "eth1"] {
        key("net.rx_bytes_per_s", iface, 12_345_678.9);
        key("net.tx_bytes_per_s", iface, 2_345_678.1);
    }
    out
}

/// `bytes` as an SQL literal of `db`'s backend.
fn blob_literal(db: &sea_orm::DatabaseConnection, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("'\\x{hex}'::bytea"),
        _ => format!("X'{hex}'"),
    }
}

/// One layout of the simulator's series for every host that has none, as the writer's first
/// poll would write it.
async fn seed_layouts(db: &sea_orm::DatabaseConnection) {
    let keys: Vec<SeriesKey> = sim_series().into_iter().map(|(k, _)| k).collect();
    db.execute_unprepared(&format!(
        "INSERT INTO series_layouts (host_id, keys) SELECT h.id, '{}' FROM hosts h \
         WHERE NOT EXISTS (SELECT 1 FROM series_layouts l WHERE l.host_id = h.id) ORDER BY h.id",
        entity::series::keys_to_json(&keys)
    ))
    .await
    .expect("layouts");
}

/// A rollup bucket of the simulator's series: `count` polls each.
fn sim_bucket(count: u32) -> Vec<u8> {
    let aggs: Vec<Aggregate> = sim_series()
        .into_iter()
        .map(|(_, v)| Aggregate {
            count,
            sum: v * f64::from(count),
            min: v * 0.9,
            max: v * 1.1,
        })
        .collect();
    entity::series::encode_aggregates(&aggs)
}

/// Gives every host `minutes` of past polls, one per 10 s with the simulator's values, and the
/// rollups of them, inserted in time order as a running service would, so the per-host indexes
/// have their steady-state shape: each host's entries on pages of their own rather than
/// sharing pages with its neighbours' as in a young database. One statement per 10 s step,
/// hosts in id order: one statement for the whole hour needed a sort of every row, which SQLite
/// keeps in memory (`temp_store`), and the process's peak RSS would have been the setup's, not
/// the poller's.
async fn age_history(state: &Services, minutes: u64) {
    use sea_orm::ConnectionTrait;
    if minutes == 0 {
        return;
    }
    let db = &state.db;
    seed_layouts(db).await;
    let values: Vec<Option<f64>> = sim_series().into_iter().map(|(_, v)| Some(v)).collect();
    let data = blob_literal(db, &entity::series::encode_values(&values));
    let end = store::now_ms() - 10_000;
    let start = end - minutes as i64 * 60_000;
    for ts in (start..end).step_by(10_000) {
        db.execute_unprepared(&format!(
            "INSERT INTO polls (host_id, started_at, duration_ms, outcome, sampled_at, layout_id, data) \
             SELECT h.id, {ts}, 20, 'ok', {ts} + 20, l.id, {data} FROM hosts h \
             JOIN series_layouts l ON l.host_id = h.id ORDER BY h.id"
        ))
        .await
        .expect("history");
    }
    // The rollups of the whole buckets among them, as the writer would have left them (the
    // writer's catch-up, running meanwhile, may have written some already).
    // Minutes of built 10-minute buckets are chunks.
    for tier in Tier::ROLLUPS {
        let width = tier.width_ms();
        let bucket = blob_literal(db, &sim_bucket((width / 10_000) as u32));
        let mut b = tier.bucket(start) + width;
        while b + width <= tier.bucket(end) {
            let built = Tier::TenMinutes.bucket(b) + Tier::TenMinutes.width_ms()
                <= Tier::TenMinutes.bucket(Tier::Minute.bucket(end));
            if tier != Tier::Minute || !built {
                seed_buckets(db, rollup_table(tier), b, &bucket, None).await;
            } else if b == Tier::TenMinutes.bucket(b) || b == tier.bucket(start) + width {
                // The chunk's minutes from here to its end.
                let ten = Tier::TenMinutes.bucket(b);
                let minutes = (b..ten + Tier::TenMinutes.width_ms()).step_by(60_000);
                let chunk = blob_literal(db, &minute_chunk(ten, minutes));
                seed_buckets(db, "rollups_1m_chunks", ten, &chunk, None).await;
            }
            b += width;
        }
    }
}

/// The table of a rollup tier's rows.
fn rollup_table(tier: Tier) -> &'static str {
    match tier {
        Tier::Minute => "rollups_1m",
        Tier::TenMinutes => "rollups_10m",
        _ => "rollups_1h",
    }
}

/// A `rollups_1m_chunks` row's data for the chunk at `start` holding `minutes` of the
/// simulator's values (each under the row's layout, whichever host's row it is).
fn minute_chunk(start: i64, minutes: impl Iterator<Item = i64>) -> Vec<u8> {
    let minute = sim_bucket(6);
    let entries: Vec<entity::series::MinuteEntry> = minutes
        .map(|m| entity::series::MinuteEntry {
            start: m,
            layout_id: 0,
            data: &minute,
        })
        .collect();
    entity::series::encode_minutes(start, 0, &entries)
}

/// Writes one row of a rollup `table` at `start` for every host (those with ids in `hosts`
/// when given).
async fn seed_buckets(
    db: &sea_orm::DatabaseConnection,
    table: &str,
    start: i64,
    data: &str,
    hosts: Option<(i64, i64)>,
) {
    use sea_orm::ConnectionTrait;
    // A WHERE clause either way: SQLite reads `ON CONFLICT` after a bare join as its `ON`.
    let range = hosts.map_or("WHERE true".to_owned(), |(lo, hi)| {
        format!("WHERE h.id BETWEEN {lo} AND {hi}")
    });
    db.execute_unprepared(&format!(
        "INSERT INTO {table} (host_id, bucket_start, layout_id, data) \
         SELECT h.id, {start}, l.id, {data} FROM hosts h JOIN series_layouts l ON l.host_id = h.id {range} ORDER BY h.id \
         ON CONFLICT DO NOTHING"
    ))
    .await
    .expect("rollups");
}

/// Completed runs over a measured time, summed over rounds.
#[derive(Default)]
struct Tally {
    runs: u64,
    seconds: f64,
}

impl Tally {
    fn add(&mut self, (runs, seconds): (u64, f64)) {
        self.runs += runs;
        self.seconds += seconds;
    }

    fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.runs as f64 / self.seconds
        } else {
            f64::NAN
        }
    }
}

/// Runs `work` in `parallel` loops for `length`; returns the completed runs and the seconds
/// they took (the last runs finish after `length`).
async fn rate<F, Fut>(parallel: usize, length: Duration, work: F) -> (u64, f64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work);
    let end = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..parallel {
        let (done, work) = (done.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if work(i).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        done.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

async fn run_shell(program: &str, args: &[String]) -> bool {
    let Ok(mut child) = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let mut stdin = child.stdin.take().expect("piped");
    let _ = stdin.write_all(PROBE_SCRIPT.as_bytes()).await;
    drop(stdin);
    matches!(child.wait_with_output().await, Ok(o) if o.status.success() && o.stdout.len() > 1000)
}

async fn part_a(args: PartA) {
    let PartA {
        port,
        user,
        key: key_file,
        parallel,
        seconds,
        rounds,
        only,
    } = args;
    let key_file = key_file.to_string_lossy().into_owned();
    let key = Zeroizing::new(std::fs::read_to_string(&key_file).expect("key file"));
    let info = hostwatch::ssh::keys::inspect_private_key(&key, None).expect("key");

    let dir = tempfile::tempdir().expect("temp dir");
    let st = state(dir.path(), Duration::from_secs(30)).await;
    let mut ids = Vec::new();
    for i in 0..parallel {
        let cred = NewCredential::PrivateKey {
            key: key.clone(),
            passphrase: None,
            algorithm: info.algorithm.clone(),
            public_key: info.public_key.clone(),
        };
        ids.push(add_host(&st, format!("sshd-{i}"), port, &user, cred, "0 0 0 1 1 *").await);
    }
    mark_enrolled(&st).await;
    for id in &ids {
        st.poller.poll(*id, true).await.expect("first poll (dial)");
    }
    let poller = st.poller.clone();
    let ids = Arc::new(ids);
    let hostwatch_poll = move |i: usize| {
        let (poller, ids) = (poller.clone(), ids.clone());
        async move { poller.poll(ids[i], true).await.is_ok() }
    };

    let ssh_args: Vec<String> = [
        "-i",
        &key_file,
        "-p",
        &port.to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        &format!("{user}@127.0.0.1"),
        // The command hostwatch's exec runs, so both ways start the same processes on the host.
        hostwatch::ssh::client::REMOTE_COMMAND,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ssh_args = Arc::new(ssh_args);
    let ssh_poll = move |_| {
        let a = ssh_args.clone();
        async move { run_shell("ssh", &a).await }
    };
    let local_poll = |_| async { run_shell("sh", &["-s".to_owned()]).await };

    // The three ways take turns in short rounds, so a machine that gets faster or slower during
    // the run (other tenants, frequency scaling) shifts all three alike instead of one.
    let slice = Duration::from_secs_f64(seconds as f64 / rounds as f64);
    let runs = |way: Way| only.is_none_or(|o| o == way);
    let (mut hostwatch, mut baseline, mut floor) =
        (Tally::default(), Tally::default(), Tally::default());
    for _ in 0..rounds {
        if runs(Way::Hostwatch) {
            hostwatch.add(rate(parallel, slice, hostwatch_poll.clone()).await);
        }
        if runs(Way::Ssh) {
            baseline.add(rate(parallel, slice, ssh_poll.clone()).await);
        }
        if runs(Way::Local) {
            floor.add(rate(parallel, slice, local_poll).await);
        }
    }
    let (hostwatch, baseline, floor) = (
        hostwatch.per_second(),
        baseline.per_second(),
        floor.per_second(),
    );

    println!(
        "A. real OpenSSH sshd on loopback, {parallel} in parallel, {seconds} s each in {rounds} alternating rounds"
    );
    println!(
        "   hostwatch poller (persistent connection, SSH + parse + store): {hostwatch:8.1} polls/s"
    );
    println!(
        "   ssh subprocess per poll (new connection each time):           {baseline:8.1} polls/s"
    );
    println!(
        "   local sh, no SSH (the floor):                                 {floor:8.1} polls/s"
    );
    println!(
        "   hostwatch / ssh baseline = {:.1}x   (target >= 10x)",
        hostwatch / baseline
    );
    println!(
        "   hostwatch / local floor  = {:.2}x   (target >= 0.5x)",
        hostwatch / floor
    );
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Starts `hosts` simulated hosts on consecutive ports from `base`, split over processes so
/// each stays within its open-file limit (each simulated host holds a listener and a
/// connection); returns once all listen.
async fn start_fleet(
    dir: &std::path::Path,
    sim: &std::path::Path,
    hosts: usize,
    base: u16,
) -> Vec<tokio::process::Child> {
    const PER_SIM: usize = 4000;
    let mut sims = Vec::new();
    for (k, start) in (0..hosts).step_by(PER_SIM).enumerate() {
        let count = PER_SIM.min(hosts - start);
        let ready = dir.join(format!("sim{k}.ready"));
        let mut child = tokio::process::Command::new(sim)
            .args([
                "--hosts",
                &count.to_string(),
                "--base-port",
                &(base as usize + start).to_string(),
            ])
            .args(["--gpus", &(count / 10).to_string()])
            .arg("--ready-file")
            .arg(&ready)
            .kill_on_drop(true)
            .spawn()
            .expect("fleetsim");
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("fleetsim exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sims.push(child);
    }
    sims
}

async fn part_b(args: PartB) {
    let PartB {
        fleet:
            Fleet {
                hosts,
                sim,
                base_port: base,
                seconds,
            },
        max_concurrent_polls: max_concurrent,
        history_minutes,
    } = args;
    const PERIOD_MS: i64 = 10_000;
    let files = hostwatch::app::raise_fd_limit(hosts as u64 * 2 + 4096);

    let dir = tempfile::tempdir().expect("temp dir");
    let sims = start_fleet(dir.path(), &sim, hosts, base).await;

    let setup = Instant::now();
    let st = state(dir.path(), Duration::from_secs(10)).await;
    for i in 0..hosts {
        let cred = NewCredential::Password(Zeroizing::new("sim".into()));
        add_host(
            &st,
            format!("sim-{i}"),
            base + i as u16,
            "monitor",
            cred,
            "*/10 * * * * *",
        )
        .await;
    }
    mark_enrolled(&st).await;
    age_history(&st, history_minutes).await;
    let (rss_before, _) = rss_kib();
    let scheduler = st.run_scheduler(max_concurrent).await.expect("scheduler");
    let setup_s = setup.elapsed().as_secs_f64();

    // Warm-up: every host connected and polled once (or 90 s).
    let warm = Instant::now();
    loop {
        let polled = host::Entity::find()
            .filter(host::Column::LastOkAt.is_not_null())
            .count(&st.db)
            .await
            .unwrap_or(0);
        if polled as usize >= hosts || warm.elapsed() > Duration::from_secs(90) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let warm_s = warm.elapsed().as_secs_f64();
    // After a start the writer catches up each host's rollups in the background (a few hosts
    // every 2 s): the window measures the steady state after it.
    let catch_up = Instant::now();
    while !st.poller.writer_stats().caught_up && catch_up.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let catch_up_s = catch_up.elapsed().as_secs_f64();
    // Start the window on a period boundary.
    let now = store::now_ms();
    tokio::time::sleep(Duration::from_millis((PERIOD_MS - now % PERIOD_MS) as u64)).await;
    let t0 = store::now_ms();
    let sim_pids: Vec<u32> = sims.iter().filter_map(|s| s.id()).collect();
    let dials0 = st.poller.dials();
    let writer0 = st.poller.writer_stats();
    let (rss_window_start, _) = rss_kib();
    let cpu0 = cpu_seconds();
    let sim_cpu0 = children_cpu_seconds(&sim_pids);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu1 = cpu_seconds();
    let sim_cpu1 = children_cpu_seconds(&sim_pids);
    let dials = st.poller.dials() - dials0;
    let writer1 = st.poller.writer_stats();
    let t1 = store::now_ms();
    let (rss_after, hwm) = rss_kib();
    scheduler.shutdown().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let rows = poll::Entity::find()
        .filter(poll::Column::StartedAt.gte(t0))
        .filter(poll::Column::StartedAt.lt(t1))
        .all(&st.db)
        .await
        .expect("polls");
    let period = Duration::from_millis(PERIOD_MS as u64);
    let (mut on_time, mut late, mut failed, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    let mut latencies = Vec::new();
    for p in &rows {
        match p.outcome.as_str() {
            "ok" => {
                let offset = scheduler::start_offset(p.host_id, period).as_millis() as i64;
                let delay = (p.started_at - offset).rem_euclid(PERIOD_MS);
                if delay <= 1000 {
                    on_time += 1
                } else {
                    late += 1
                }
                latencies.push(p.duration_ms);
            }
            "skipped_overrun" => skipped += 1,
            _ => failed += 1,
        }
    }
    latencies.sort_unstable();
    let expected = hosts as u64 * ((t1 - t0) / PERIOD_MS) as u64;
    let missed = expected.saturating_sub(on_time + late);
    let polls = on_time + late;
    let cpu = cpu1 - cpu0;
    let window = (t1 - t0) as f64 / 1000.0;
    let packed: Vec<usize> = rows
        .iter()
        .filter_map(|p| p.data.as_ref().map(Vec::len))
        .collect();
    let on_time_pct = if expected > 0 {
        on_time as f64 * 100.0 / expected as f64
    } else {
        0.0
    };
    println!(
        "B. simulated fleet: {hosts} hosts, 10 s schedule, {window:.0} s window (history {history_minutes} min, setup {setup_s:.0} s, warm-up {warm_s:.0} s, rollup catch-up {catch_up_s:.0} s more, open files {files})"
    );
    println!(
        "   polls expected {expected}: on time {on_time} ({on_time_pct:.2} %), late {late}, missed {missed} (failed {failed}, overrun {skipped})"
    );
    println!(
        "   poll latency p50 {} ms, p99 {} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "   poller CPU {:.1} % of one core, {:.0} us CPU per poll",
        cpu * 100.0 / window,
        if polls > 0 {
            cpu * 1e6 / polls as f64
        } else {
            0.0
        }
    );
    // Both samples fall at the same point of the 10 s cycle. The process's memory still grows
    // over each host's first ten or so polls (a 10,000-host run levelled off after ~12), so a
    // short window shows growth; the end figure is the one to compare.
    let per_host = |rss: u64| rss.saturating_sub(rss_before) as f64 / hosts as f64;
    println!(
        "   peak RSS {:.1} MiB, RSS per host {:.1} KiB at the window's end ({:.1} KiB at its start)",
        hwm as f64 / 1024.0,
        per_host(rss_after),
        per_host(rss_window_start)
    );
    println!(
        "   values packed {:.0} bytes a poll on average",
        packed.iter().sum::<usize>() as f64 / packed.len().max(1) as f64
    );
    let batches = writer1.batches - writer0.batches;
    println!(
        "   writer: {batches} transactions, {:.1} polls each, busy {:.1} % of the time, slowest since start {} ms; connections dialled {dials}",
        (writer1.results - writer0.results) as f64 / batches.max(1) as f64,
        (writer1.busy_us - writer0.busy_us) as f64 / 1e4 / window,
        writer1.slowest_us / 1000
    );
    println!(
        "   (the simulator, on the same cores: CPU {:.1} % of one core)",
        (sim_cpu1 - sim_cpu0) * 100.0 / window
    );
    for mut s in sims {
        let _ = s.kill().await;
    }
}

/// bench c's schedule: every connection runs the probe this often.
const PROBE_PERIOD: Duration = Duration::from_secs(10);

/// Runs the probe on each of `sessions` once per [`PROBE_PERIOD`] until `until`, in one of twenty slots of
/// the period as the scheduler does, each run in a task of its own; counts the outcomes.
async fn run_probes(
    sessions: &[Arc<client::Session>],
    until: Instant,
    ok: &Arc<AtomicU64>,
    failed: &Arc<AtomicU64>,
) {
    const SLOTS: usize = 20;
    let mut tick = tokio::time::interval(PROBE_PERIOD / SLOTS as u32);
    let mut slot = 0;
    while Instant::now() < until {
        tick.tick().await;
        for session in sessions.iter().skip(slot).step_by(SLOTS) {
            let (session, ok, failed) = (session.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                match session.run_script(PROBE_SCRIPT.as_bytes(), 1 << 20).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
        slot = (slot + 1) % SLOTS;
    }
}

/// `bench c`: the simulated fleet held by bare SSH connections, hostwatch's client on russh
/// with no parse, store or scheduler: what a connection costs by itself, to set against `b`'s
/// RSS per host.
async fn part_c(args: Fleet) {
    let Fleet {
        hosts,
        sim,
        base_port: base,
        seconds,
    } = args;
    hostwatch::app::raise_fd_limit(hosts as u64 * 2 + 4096);
    let dir = tempfile::tempdir().expect("temp dir");
    let sims = start_fleet(dir.path(), &sim, hosts, base).await;

    let (rss_before, _) = rss_kib();
    let password = Arc::new(Zeroizing::new("sim".to_string()));
    let dials = Arc::new(tokio::sync::Semaphore::new(64));
    let mut connecting = tokio::task::JoinSet::new();
    for i in 0..hosts {
        let target = Target {
            address: "127.0.0.1".into(),
            port: base + i as u16,
            username: "monitor".into(),
            auth: Auth::Password(password.clone()),
            host_key: HostKeyPolicy::AnyKey,
        };
        let dials = dials.clone();
        connecting.spawn(async move {
            let _permit = dials.acquire().await.expect("open");
            (i, client::connect(&target, true).await)
        });
    }
    let mut sessions: Vec<Option<Arc<client::Session>>> = (0..hosts).map(|_| None).collect();
    while let Some(joined) = connecting.join_next().await {
        let (i, session) = joined.expect("dial task");
        sessions[i] = Some(Arc::new(session.expect("connect")));
    }
    let sessions: Vec<Arc<client::Session>> = sessions.into_iter().flatten().collect();

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // Two periods to settle, then the window.
    run_probes(&sessions, Instant::now() + 2 * PROBE_PERIOD, &ok, &failed).await;
    let (rss_start, _) = rss_kib();
    let (ok0, failed0) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let cpu0 = cpu_seconds();
    run_probes(
        &sessions,
        Instant::now() + Duration::from_secs(seconds),
        &ok,
        &failed,
    )
    .await;
    let cpu1 = cpu_seconds();
    let (rss_end, _) = rss_kib();
    let polls = ok.load(Ordering::Relaxed) - ok0;
    let failures = failed.load(Ordering::Relaxed) - failed0;
    let per_host = |rss: u64| rss.saturating_sub(rss_before) as f64 / hosts as f64;
    println!(
        "C. bare SSH connections (hostwatch's client on russh, no parse, store or scheduler): {hosts} hosts, the probe every 10 s, {seconds} s window"
    );
    println!("   probe runs {polls}, failed {failures}");
    println!(
        "   CPU {:.0} us per run, RSS per connection {:.1} KiB at the window's end ({:.1} KiB at its start)",
        (cpu1 - cpu0) * 1e6 / polls.max(1) as f64,
        per_host(rss_end),
        per_host(rss_start)
    );
    drop(sessions);
    for mut s in sims {
        let _ = s.kill().await;
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().part {
        Part::A(args) => part_a(args).await,
        Part::B(args) => part_b(args).await,
        Part::C(args) => part_c(args).await,
        Part::H(args) => part_h(args).await,
    }
}

/// The part H database: SQLite in `dir` unless a PostgreSQL URL is given. No service runs on
/// it: the bench is its only writer, as the poll writer is a service's.
async fn history_db(
    dir: &std::path::Path,
    url: Option<&str>,
    name: &str,
) -> (sea_orm::DatabaseConnection, SecretBox) {
    let url = url.map_or_else(
        || format!("sqlite://{}?mode=rwc", dir.join(name).display()),
        str::to_owned,
    );
    let db = store::connect(&url).await.expect("database");
    store::migrate(&db).await.expect("migrations");
    (db, SecretBox::load(None, dir).expect("master key"))
}

/// Registers `n` hosts named `prefix-i`; returns their ids.
async fn history_hosts(
    db: &sea_orm::DatabaseConnection,
    secrets: &SecretBox,
    prefix: &str,
    n: usize,
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let view = store::hosts::create(
            db,
            secrets,
            loopback_host(
                format!("{prefix}-{i}"),
                22,
                "monitor",
                NewCredential::Password(Zeroizing::new("x".into())),
                "*/10 * * * * *",
            ),
        )
        .await
        .expect("host");
        ids.push(view.host.id);
    }
    ids
}

/// Bytes each table and index takes, by name.
async fn relation_sizes(
    db: &sea_orm::DatabaseConnection,
) -> std::collections::HashMap<String, u64> {
    #[derive(sea_orm::FromQueryResult)]
    struct Size {
        name: String,
        bytes: i64,
    }
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            // A table's values over ~2 KB (minute chunks) live in its TOAST table: counted
            // with it.
            "SELECT c.relname AS name, (pg_relation_size(c.oid) + CASE WHEN c.reltoastrelid = 0 \
             THEN 0 ELSE pg_total_relation_size(c.reltoastrelid) END)::bigint AS bytes \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema()"
        }
        _ => "SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name",
    };
    let rows: Vec<Size> = sea_orm::FromQueryResult::find_by_statement(
        sea_orm::Statement::from_string(db.get_database_backend(), sql),
    )
    .all(db)
    .await
    .expect("sizes");
    rows.into_iter().map(|r| (r.name, r.bytes as u64)).collect()
}

async fn part_h(args: PartH) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = args.database_url.as_deref();
    let backend = if url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };

    // 1. Storage and the write path: polls as the writer stores them, one transaction a round.
    let (storage_db, secrets) = history_db(dir.path(), url, "storage.db").await;
    let db = &storage_db;
    let ids = history_hosts(db, &secrets, "h", args.storage_hosts).await;
    // The same polls in the form they replaced: JSON in the row, the same two indexes.
    db.execute_unprepared(
        "CREATE TABLE legacy_polls (id BIGINT PRIMARY KEY, host_id BIGINT NOT NULL, \
         started_at BIGINT NOT NULL, duration_ms BIGINT NOT NULL, outcome TEXT NOT NULL, \
         error_kind TEXT, error TEXT, sampled_at BIGINT, sample_count INTEGER, samples TEXT)",
    )
    .await
    .expect("legacy table");
    for (name, cols) in [
        ("ix_legacy_host", "host_id, started_at"),
        ("ix_legacy_time", "started_at"),
    ] {
        db.execute_unprepared(&format!("CREATE INDEX {name} ON legacy_polls ({cols})"))
            .await
            .expect("legacy index");
    }
    let series = sim_series();
    let rounds = args.storage_hours * 360;
    let start = Tier::Hour.bucket(store::now_ms() - 3 * 86_400_000);
    let mut rollups = store::rollups::Rollups::default();
    let mut legacy_id = 0i64;
    let (mut write_cpu, mut legacy_cpu) = (0.0, 0.0);
    for round in 0..rounds as i64 {
        let ts = start + round * 10_000;
        // Values that move from poll to poll, as real ones do.
        let polls: Vec<(i64, Vec<MetricValue>)> = ids
            .iter()
            .map(|id| {
                let wobble = 1.0 + ((round * 31 + id * 17) % 97) as f64 / 1000.0;
                let values = series
                    .iter()
                    .map(|(k, v)| MetricValue {
                        name: catalog_name(&k.name),
                        label: k.label.clone(),
                        value: v * wobble,
                    })
                    .collect();
                (*id, values)
            })
            .collect();
        let cpu0 = cpu_seconds();
        let txn = store::begin_write(db).await.expect("txn");
        let mut stage = rollups.stage();
        let mut packed = Vec::new();
        for (id, values) in &polls {
            packed.push(
                rollups
                    .record(&mut stage, &txn, *id, ts, values)
                    .await
                    .expect("record"),
            );
        }
        let rows: Vec<store::polls::OkPoll<'_>> = polls
            .iter()
            .zip(&packed)
            .map(|((id, _), (layout_id, data))| store::polls::OkPoll {
                host_id: *id,
                started_ms: ts - 25,
                duration_ms: 25,
                sampled_ms: ts,
                layout_id: *layout_id,
                data,
            })
            .collect();
        store::polls::write_ok(&txn, &rows, &[], &[])
            .await
            .expect("polls");
        txn.commit().await.expect("commit");
        rollups.commit(stage);
        let cpu1 = cpu_seconds();
        write_cpu += cpu1 - cpu0;
        // The JSON form, written the way the previous release wrote it (one multi-row insert).
        let mut insert = sea_orm::sea_query::Query::insert();
        insert
            .into_table(sea_orm::sea_query::Alias::new("legacy_polls"))
            .columns(
                [
                    "id",
                    "host_id",
                    "started_at",
                    "duration_ms",
                    "outcome",
                    "sampled_at",
                    "sample_count",
                    "samples",
                ]
                .map(sea_orm::sea_query::Alias::new),
            );
        for (id, values) in &polls {
            legacy_id += 1;
            let mut by_name: std::collections::BTreeMap<
                &str,
                std::collections::BTreeMap<&str, f64>,
            > = Default::default();
            for v in values {
                by_name.entry(v.name).or_default().insert(&v.label, v.value);
            }
            insert.values_panic([
                legacy_id.into(),
                (*id).into(),
                (ts - 25).into(),
                25i64.into(),
                "ok".into(),
                ts.into(),
                (values.len() as i32).into(),
                serde_json::to_string(&by_name).expect("json").into(),
            ]);
        }
        db.execute(&insert).await.expect("legacy polls");
        legacy_cpu += cpu_seconds() - cpu1;
    }
    let polls = rounds * args.storage_hosts as u64;
    let sizes = relation_sizes(db).await;
    let size = |prefix: &str| -> u64 {
        sizes
            .iter()
            .filter(|(n, _)| {
                n.as_str() == prefix
                    || n.starts_with(&format!("ix_{prefix}"))
                    || n.starts_with(&format!("{prefix}_pkey"))
                    || n.starts_with(&format!("sqlite_autoindex_{prefix}"))
            })
            .map(|(_, b)| *b)
            .sum()
    };
    let raw = size("polls");
    let legacy = size("legacy_polls") + size("ix_legacy_host") + size("ix_legacy_time");
    let tiers: Vec<u64> = [
        "rollups_1m",
        "rollups_1m_chunks",
        "rollups_10m",
        "rollups_1h",
    ]
    .map(size)
    .into();
    let layouts = size("series_layouts");
    let host_days = args.storage_hosts as f64 * args.storage_hours as f64 / 24.0;
    println!(
        "H. history on {backend}: {} hosts x {} h of 10 s polls ({polls} polls), then {} hosts' rollups",
        args.storage_hosts, args.storage_hours, args.hosts
    );
    println!(
        "   raw tier {:.0} bytes a poll with its indexes (the JSON form it replaced, same polls: {:.0})",
        raw as f64 / polls as f64,
        legacy as f64 / polls as f64
    );
    println!(
        "   per host per day: raw {:.2} MB, 1m {:.0} KB ({:.0} KB of it in chunks), 10m {:.0} KB, 1h {:.1} KB: all tiers {:.2} MB (and {:.1} KB of layouts a host, once)",
        raw as f64 / host_days / 1e6,
        (tiers[0] + tiers[1]) as f64 / host_days / 1e3,
        tiers[1] as f64 / host_days / 1e3,
        tiers[2] as f64 / host_days / 1e3,
        tiers[3] as f64 / host_days / 1e3,
        (raw + tiers.iter().sum::<u64>()) as f64 / host_days / 1e6,
        layouts as f64 / args.storage_hosts as f64 / 1e3
    );
    println!(
        "   write path CPU per poll (pack, rollups, insert, commit): {:.0} us; the JSON form's insert alone {:.0} us",
        write_cpu * 1e6 / polls as f64,
        legacy_cpu * 1e6 / polls as f64
    );
    // PostgreSQL: the next part's database is a fresh one beside it.
    let fleet_url = match url {
        Some(u) => {
            db.execute_unprepared("DROP DATABASE IF EXISTS hw_bench_fleet")
                .await
                .ok();
            db.execute_unprepared("CREATE DATABASE hw_bench_fleet")
                .await
                .expect("fleet database");
            Some(format!(
                "{}/hw_bench_fleet",
                u.rsplit_once('/').expect("a database path").0
            ))
        }
        None => None,
    };
    storage_db.close().await.ok();

    // 2. Chart queries in a database holding a large fleet's rollups.
    let (fleet_db, secrets) = history_db(dir.path(), fleet_url.as_deref(), "fleet.db").await;
    let db = &fleet_db;
    let seed = Instant::now();
    history_hosts(db, &secrets, "f", args.hosts).await;
    seed_layouts(db).await;
    let now = store::now_ms();
    let values: Vec<Option<f64>> = sim_series().into_iter().map(|(_, v)| Some(v)).collect();
    let raw_blob = blob_literal(db, &entity::series::encode_values(&values));
    let (lo, hi): (i64, i64) = host::Entity::find()
        .select_only()
        .column_as(host::Column::Id.min(), "lo")
        .column_as(host::Column::Id.max(), "hi")
        .into_tuple()
        .one(db)
        .await
        .expect("ids")
        .expect("hosts");
    // Host by host (ids in chunks), each host's buckets in time order: how a running service's
    // tables grow, not one time slot across every host.
    // 26 hours of minutes: those before the current 10-minute bucket as chunks (its 10-minute
    // bucket is built), those in it as single rows.
    let ten_now = Tier::TenMinutes.bucket(now);
    let bucket = |tier: Tier| blob_literal(db, &sim_bucket((tier.width_ms() / 10_000) as u32));
    let mut spans = vec![
        (
            "rollups_1h",
            31 * 24,
            Tier::Hour.bucket(now),
            Tier::Hour.width_ms(),
            bucket(Tier::Hour),
        ),
        (
            "rollups_10m",
            2 * 144,
            ten_now,
            Tier::TenMinutes.width_ms(),
            bucket(Tier::TenMinutes),
        ),
        (
            "rollups_1m_chunks",
            26 * 6,
            ten_now,
            Tier::TenMinutes.width_ms(),
            blob_literal(
                db,
                &minute_chunk(0, (0..10).map(|m| m * Tier::Minute.width_ms())),
            ),
        ),
    ];
    let singles = (Tier::Minute.bucket(now) - ten_now) / Tier::Minute.width_ms();
    if singles > 0 {
        spans.push((
            "rollups_1m",
            singles,
            Tier::Minute.bucket(now),
            Tier::Minute.width_ms(),
            bucket(Tier::Minute),
        ));
    }
    const CHUNK: i64 = 500;
    for (table, buckets, end, width, data) in spans {
        let mut first = lo;
        while first <= hi {
            let last = (first + CHUNK - 1).min(hi);
            let times = match db.get_database_backend() {
                sea_orm::DbBackend::Postgres => format!(
                    "SELECT {end} - g::bigint * {width} AS t FROM generate_series(1, {buckets}) AS g"
                ),
                _ => format!(
                    "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {buckets}) \
                     SELECT {end} - i * {width} AS t FROM g"
                ),
            };
            db.execute_unprepared(&format!(
                "INSERT INTO {table} (host_id, bucket_start, layout_id, data) \
                 SELECT h.id, b.t, l.id, {data} FROM hosts h JOIN series_layouts l ON l.host_id = h.id \
                 CROSS JOIN ({times}) AS b WHERE h.id BETWEEN {first} AND {last} ORDER BY h.id, b.t \
                 ON CONFLICT DO NOTHING"
            ))
            .await
            .expect("seed rollups");
            first = last + 1;
        }
    }
    // The current minute's raw polls.
    let minute = Tier::Minute.bucket(now);
    for ts in (minute..now).step_by(10_000) {
        db.execute_unprepared(&format!(
            "INSERT INTO polls (host_id, started_at, duration_ms, outcome, sampled_at, layout_id, data) \
             SELECT h.id, {ts}, 20, 'ok', {ts} + 20, l.id, {raw_blob} FROM hosts h \
             JOIN series_layouts l ON l.host_id = h.id ORDER BY h.id"
        ))
        .await
        .expect("raw polls");
    }
    let seeded_s = seed.elapsed().as_secs_f64();
    let fleet_bytes: u64 = relation_sizes(db).await.values().sum();
    let retention = hostwatch::tiers::Retention::default();
    let chart = |range_ms: i64| {
        let db = db.clone();
        async move {
            let mut times = Vec::new();
            for q in 0..args.queries as i64 {
                let host = lo + (q * 7_919) % (hi - lo + 1);
                let now = store::now_ms();
                let t = Instant::now();
                let plan = hostwatch::tiers::plan(
                    now - range_ms,
                    now,
                    hostwatch::tiers::Step::Auto,
                    now,
                    &retention,
                )
                .expect("plan");
                let found = store::series::read(
                    &db,
                    &store::series::Read {
                        host_ids: vec![host],
                        keys: store::series::KeyFilter {
                            names: vec!["cpu.usage_pct".into()],
                            label: None,
                        },
                        tier: plan.tier,
                        from_ms: plan.from_ms,
                        to_ms: plan.to_ms + 1,
                        step_ms: Some(plan.step_ms),
                    },
                )
                .await
                .expect("read");
                let points: usize = found.values().map(|b| b.len()).sum();
                assert!(points > 0, "the chart has points");
                times.push(t.elapsed().as_micros() as i64);
            }
            times.sort_unstable();
            (
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                plan_points(range_ms),
            )
        }
    };
    let day = chart(86_400_000).await;
    let month = chart(30 * 86_400_000).await;
    println!(
        "   query database: {} hosts, {:.1} GB, seeded in {seeded_s:.0} s",
        args.hosts,
        fleet_bytes as f64 / 1e9
    );
    for (name, (p50, p99, points)) in [("24 h", day), ("30 d", month)] {
        println!(
            "   {name} chart of one metric of one host (step=auto, {points} points): p50 {:.1} ms, p99 {:.1} ms",
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
    }
    let t = Instant::now();
    let all: Vec<i64> = (lo..=hi).collect();
    let tier = hostwatch::tiers::top_tier(now - 86_400_000, now, now, &retention);
    let found = store::series::read(
        db,
        &store::series::Read {
            host_ids: all,
            keys: store::series::KeyFilter {
                names: vec!["cpu.usage_pct".into()],
                label: None,
            },
            tier,
            from_ms: tier.bucket(now - 86_400_000),
            to_ms: now + 1,
            step_ms: None,
        },
    )
    .await
    .expect("top");
    println!(
        "   fleet top over 24 h ({} hosts, tier {}): {:.0} ms",
        found.len(),
        tier.name(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    fleet_db.close().await.ok();
}

/// Points a `step=auto` chart of `range_ms` has.
fn plan_points(range_ms: i64) -> i64 {
    let p = hostwatch::tiers::plan(
        0,
        range_ms,
        hostwatch::tiers::Step::Auto,
        range_ms,
        &Default::default(),
    )
    .expect("plan");
    range_ms / p.step_ms
}

/// The catalog's own `&'static str` for a metric name.
fn catalog_name(name: &str) -> &'static str {
    hostwatch::alerts::catalog::CATALOG
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.name)
        .expect("a catalog metric")
}
