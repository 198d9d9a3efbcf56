//! fleetsim: a fleet of simulated SSH hosts on loopback, for benchmarks (not part of the
//! service). Host `i` listens on `127.0.0.1:<base-port + i>`, accepts any key or password, and
//! answers every exec with realistic probe output: counters that advance with time, four CPUs,
//! several interfaces, disks and mounts, and optionally two GPUs.
//!
//! Misbehaving hosts for failure scenarios, taken from the start of the range in this order:
//! `--slow` (answer after `--slow-ms`), `--mute` (never answer an exec), `--drop` (close the
//! channel on exec without output or exit status), `--flood` (2 MB of output), `--garbage`
//! (answer the TCP connection with endless bytes that are not SSH), `--tarpit` (accept the TCP
//! connection and never send a byte).
//!
//! `fleetsim --help` lists the flags.

use std::{sync::Arc, time::Duration};

use clap::Parser;
use russh::{
    Channel, ChannelId,
    keys::{Algorithm, PrivateKey},
    server::{self, Auth, Msg, Session},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Normal,
    Slow(Duration),
    Mute,
    Drop,
    Flood,
    Garbage,
    Tarpit,
}

#[derive(Clone)]
struct Host {
    index: usize,
    behaviour: Behaviour,
    gpus: bool,
    started: std::time::Instant,
    boot_epoch: u64,
}

impl Host {
    /// The probe's output now: cumulative counters grow with the seconds since start.
    fn render(&self) -> String {
        let t = self.started.elapsed().as_secs_f64() + 3600.0 + (self.index % 600) as f64;
        let j = |rate: f64| (t * rate) as u64;
        let i = self.index as u64;
        let mut out = String::with_capacity(8192);
        out.push_str("\n<<<procfs>>>\n==> /proc/stat <==\n");
        out.push_str(&format!(
            "cpu  {} {} {} {} {} 0 {} {} 0 0\n",
            j(60.0),
            j(2.0),
            j(20.0),
            j(300.0),
            j(5.0),
            j(3.0),
            j(1.0)
        ));
        for c in 0..4 {
            out.push_str(&format!(
                "cpu{c} {} {} {} {} {} 0 {} {} 0 0\n",
                j(15.0),
                j(0.5),
                j(5.0),
                j(75.0),
                j(1.25),
                j(0.75),
                j(0.25)
            ));
        }
        out.push_str(&format!(
            "intr {} 0 0\nctxt {}\nbtime {}\nprocesses {}\nprocs_running 2\nprocs_blocked 0\n",
            j(900.0),
            j(2000.0),
            self.boot_epoch,
            j(3.0)
        ));
        let total = 16_384_000u64 + (i % 8) * 1_048_576;
        let avail = total / 2 + (t as u64 * 37 + i * 4099) % (total / 4);
        out.push_str(&format!(
            "\n==> /proc/meminfo <==\nMemTotal:       {total} kB\nMemFree:        {} kB\nMemAvailable:   {avail} kB\nBuffers:          204800 kB\nCached:          4096000 kB\nSwapCached:            0 kB\nSwapTotal:       2097148 kB\nSwapFree:        2000000 kB\n",
            avail / 2
        ));
        out.push_str(&format!(
            "\n==> /proc/loadavg <==\n{:.2} {:.2} {:.2} 2/345 {}\n",
            0.5 + (i % 7) as f64 * 0.1,
            0.45,
            0.4,
            10_000 + i
        ));
        out.push_str(&format!("\n==> /proc/uptime <==\n{t:.2} {:.2}\n", t * 3.5));
        out.push_str("\n==> /proc/net/dev <==\nInter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n");
        for (name, rate) in [
            ("lo", 2_000.0),
            ("eth0", 1_250_000.0),
            ("eth1", 80_000.0),
            ("docker0", 4_000.0),
        ] {
            out.push_str(&format!(
                "{name:>7}: {} {} 0 0 0 0 0 0 {} {} 0 0 0 0 0 0\n",
                j(rate),
                j(rate / 800.0),
                j(rate * 0.6),
                j(rate / 900.0)
            ));
        }
        out.push_str("\n==> /proc/diskstats <==\n");
        for (maj, min, dev, rate) in [
            (8, 0, "sda", 400.0),
            (8, 1, "sda1", 400.0),
            (259, 0, "nvme0n1", 4000.0),
            (259, 1, "nvme0n1p1", 4000.0),
        ] {
            out.push_str(&format!(
                "{maj:>4} {min:>7} {dev} {} 0 {} 0 {} 0 {} 0 0 0 0 0 0 0 0 0 0 0\n",
                j(rate / 8.0),
                j(rate),
                j(rate / 16.0),
                j(rate / 2.0)
            ));
        }
        out.push_str("\n==> /proc/mounts <==\n/dev/sda1 / ext4 rw,relatime 0 0\n/dev/nvme0n1p1 /data xfs rw,relatime 0 0\ntmpfs /run tmpfs rw,nosuid 0 0\n");
        let used = 20_000_000 + (i % 50) * 1_000_000;
        out.push_str(&format!(
            "\n<<<df>>>\nFilesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/sda1         98303432 {used} {} {}% /\n/dev/nvme0n1p1   976284672 400000000 576284672 41% /data\ntmpfs              1638400     1200   1637200 1% /run\n",
            98_303_432 - used,
            used * 100 / 98_303_432
        ));
        out.push_str("\n<<<df_inodes>>>\nFilesystem       Inodes  IUsed    IFree IUse% Mounted on\n/dev/sda1       6553600 412345  6141255    7% /\n/dev/nvme0n1p1 97656256 120000 97536256    1% /data\ntmpfs            409600    900   408700    1% /run\n");
        out.push_str("\n<<<nvidia>>>\n");
        if self.gpus {
            for g in 0..2 {
                out.push_str(&format!(
                    "{g}, GPU-{i:08x}-0000-0000-0000-{g:012}, NVIDIA L40S, 595.80, {}, {}, 9, 46068, {}, 40000, 144.97, 350.00, [N/A], P0, 2520\n",
                    50 + (t as u64 + g) % 30,
                    (t as u64 * 7 + g) % 100,
                    6000 + (t as u64 % 1000)
                ));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        out.push_str(&format!("\n<<<time>>>\n{now}\n\n<<<end>>>\n"));
        out
    }
}

struct Conn {
    host: Host,
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _: &str,
        _: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_password(&mut self, _: &str, _: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let handle = session.handle();
        let host = self.host.clone();
        match host.behaviour {
            Behaviour::Mute => return Ok(()),
            Behaviour::Drop => {
                tokio::spawn(async move {
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                });
                return Ok(());
            }
            _ => {}
        }
        tokio::spawn(async move {
            let body = match host.behaviour {
                Behaviour::Flood => "x".repeat(2 << 20),
                Behaviour::Slow(d) => {
                    tokio::time::sleep(d).await;
                    host.render()
                }
                _ => host.render(),
            };
            let _ = handle.data(channel, body.into_bytes()).await;
            let _ = handle.exit_status_request(channel, 0).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }
}

/// A fleet of simulated SSH hosts on loopback. Misbehaving hosts are taken from the start of
/// the range in the order of their flags.
#[derive(Debug, Parser)]
#[command(name = "fleetsim")]
struct Cli {
    /// Simulated hosts.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Host `i` listens on this port plus `i`.
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// Hosts (the last ones) with two GPUs.
    #[arg(long, default_value_t = 0)]
    gpus: usize,
    /// Hosts that answer after `--slow-ms`.
    #[arg(long, default_value_t = 0)]
    slow: usize,
    #[arg(long, default_value_t = 3000)]
    slow_ms: u64,
    /// Hosts that never answer an exec.
    #[arg(long, default_value_t = 0)]
    mute: usize,
    /// Hosts that close the connection on exec.
    #[arg(long, default_value_t = 0)]
    drop: usize,
    /// Hosts that answer with 2 MB of output.
    #[arg(long, default_value_t = 0)]
    flood: usize,
    /// Hosts that send endless bytes that are not SSH.
    #[arg(long, default_value_t = 0)]
    garbage: usize,
    /// Hosts that accept the connection and never send a byte.
    #[arg(long, default_value_t = 0)]
    tarpit: usize,
    /// Written once every host listens.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() {
    let Cli {
        hosts,
        base_port: base,
        gpus,
        slow,
        slow_ms,
        mute,
        drop,
        flood,
        garbage,
        tarpit,
        ready_file: ready,
    } = Cli::parse();
    let files = hostwatch::app::raise_fd_limit((hosts as u64) * 3 + 1024);
    assert!(
        files >= hosts as u64 * 2 + 64,
        "open-file limit {files} is too low for {hosts} hosts"
    );

    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("host key");
    let config = Arc::new(server::Config {
        keys: vec![key],
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        nodelay: true,
        inactivity_timeout: None,
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let boot_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        - 3600;
    for index in 0..hosts {
        let behaviour = match index {
            i if i < slow => Behaviour::Slow(Duration::from_millis(slow_ms)),
            i if i < slow + mute => Behaviour::Mute,
            i if i < slow + mute + drop => Behaviour::Drop,
            i if i < slow + mute + drop + flood => Behaviour::Flood,
            i if i < slow + mute + drop + flood + garbage => Behaviour::Garbage,
            i if i < slow + mute + drop + flood + garbage + tarpit => Behaviour::Tarpit,
            _ => Behaviour::Normal,
        };
        let host = Host {
            index,
            behaviour,
            gpus: index >= hosts.saturating_sub(gpus),
            started,
            boot_epoch,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", base + index as u16))
            .await
            .unwrap_or_else(|e| panic!("port {}: {e}", base as usize + index));
        let config = config.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                match host.behaviour {
                    Behaviour::Garbage => {
                        tokio::spawn(async move {
                            use tokio::io::AsyncWriteExt;
                            let junk = b"HTTP/1.1 400 Bad Request\r\n\x00\xff garbage\r\n";
                            while socket.write_all(junk).await.is_ok() {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        });
                        continue;
                    }
                    Behaviour::Tarpit => {
                        // Held open, silent, until the client gives up.
                        tokio::spawn(async move {
                            let mut sink = [0u8; 1024];
                            use tokio::io::AsyncReadExt;
                            while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                        });
                        continue;
                    }
                    _ => {}
                }
                let conn = Conn { host: host.clone() };
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(session) = server::run_stream(config, socket, conn).await {
                        let _ = session.await;
                    }
                });
            }
        });
    }
    eprintln!(
        "fleetsim: {hosts} hosts on 127.0.0.1:{base}-{}",
        base as usize + hosts - 1
    );
    if let Some(path) = ready {
        std::fs::write(path, "ready\n").expect("ready file");
    }
    tokio::signal::ctrl_c().await.ok();
}
