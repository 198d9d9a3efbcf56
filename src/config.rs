//! Command-line and environment configuration.
//!
//! Every setting has a flag and an environment variable (flags win), and a default that works on
//! a fresh machine: listen on loopback, keep data in `./data`, use an embedded SQLite file there.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use entity::types::Role;

/// hostwatch: agentless SSH monitoring for Linux fleets.
#[derive(Debug, Parser)]
#[command(name = "hostwatch", version, about)]
pub struct Cli {
    /// How log lines are written: `text` for people, `json` (one object a line) for log
    /// shippers.
    #[arg(
        long,
        global = true,
        env = "HOSTWATCH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: the pollers, the REST API and Swagger UI.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(StorageArgs),
    /// Print the OpenAPI specification as JSON.
    Openapi,
    /// Run the probe on this machine and print the parsed snapshot as JSON: what a host will
    /// report once it is registered.
    Probe {
        /// Run here (the default, and the only mode; kept for older scripts).
        #[arg(long, hide = true)]
        local: bool,
        /// Shell to run the probe with.
        #[arg(long, default_value = "sh")]
        shell: String,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage users: `create`, `list`, `passwd`, `delete`.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

/// Reads a role: `admin`, `operator` or `viewer`.
fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("{text:?} is not a role: admin, operator or viewer"))
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only its hash is stored.
    Create {
        /// A name that says who or what uses the token.
        #[arg(long)]
        name: String,
        /// The user it belongs to.
        #[arg(long, default_value = "admin")]
        user: String,
        /// What it may do (at most the user's role; defaults to it).
        #[arg(long, value_parser = parse_role, conflicts_with = "read_only")]
        role: Option<Role>,
        /// The same as `--role viewer`.
        #[arg(long)]
        read_only: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a token by id: refused from its next request on.
    Revoke {
        id: i64,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// User subcommands. A password is read from stdin with `--password-stdin`; otherwise a random
/// one is made and printed once.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        username: String,
        #[arg(long, value_parser = parse_role, default_value = "viewer")]
        role: Role,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List users.
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Set a user's password (its sessions end).
    Passwd {
        username: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Delete a user with its tokens and sessions (not the last admin).
    Delete {
        username: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// Where data lives.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite file, the master key and the admin token.
    #[arg(long, env = "HOSTWATCH_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL; `sqlite://…` or `postgres://…`. Defaults to `<data-dir>/hostwatch.db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// 32-byte master key for secrets at rest, as 64 hex characters or base64.
    /// Defaults to `<data-dir>/master.key`, created on first start.
    #[arg(long, env = "HOSTWATCH_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// `serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "HOSTWATCH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Deadline of one poll (dial, login, probe, read), e.g. `10s`.
    #[arg(
        long,
        env = "HOSTWATCH_POLL_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub poll_timeout: std::time::Duration,
    /// How long poll records with their raw values are kept, e.g. `2d`.
    #[arg(long, env = "HOSTWATCH_RETENTION_RAW", default_value = "2d", value_parser = parse_duration)]
    pub retention_raw: std::time::Duration,
    /// How long 1-minute rollups (count, average, minimum, maximum per series) are kept.
    #[arg(long, env = "HOSTWATCH_RETENTION_1M", default_value = "8d", value_parser = parse_duration)]
    pub retention_1m: std::time::Duration,
    /// How long 10-minute rollups are kept.
    #[arg(long, env = "HOSTWATCH_RETENTION_10M", default_value = "35d", value_parser = parse_duration)]
    pub retention_10m: std::time::Duration,
    /// How long 1-hour rollups are kept.
    #[arg(long, env = "HOSTWATCH_RETENTION_1H", default_value = "400d", value_parser = parse_duration)]
    pub retention_1h: std::time::Duration,
    /// How long URL-check results are kept.
    #[arg(long, env = "HOSTWATCH_RETENTION_URL_RESULTS", default_value = "30d", value_parser = parse_duration)]
    pub retention_url_results: std::time::Duration,
    /// Hosts talked to over SSH at the same time, across the fleet (URL checks count too).
    #[arg(long, env = "HOSTWATCH_MAX_CONCURRENT_POLLS", default_value_t = 128)]
    pub max_concurrent_polls: usize,
    /// Most bytes of a request body; larger ones are refused with 413 before they are read.
    #[arg(long, env = "HOSTWATCH_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// How long a request body may take to arrive.
    #[arg(long, env = "HOSTWATCH_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: std::time::Duration,
    /// HTTP connections served at once; one more gets 503.
    #[arg(long, env = "HOSTWATCH_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "HOSTWATCH_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Log every HTTP request at info (they are logged at debug otherwise).
    #[arg(long, env = "HOSTWATCH_ACCESS_LOG")]
    pub access_log: bool,
    /// On PostgreSQL, the longest the fleet goes unpolled when the polling node dies: a
    /// standby takes the lease over within this period. Must be longer than `--poll-timeout`.
    #[arg(long, env = "HOSTWATCH_LEASE_PERIOD", default_value = "15s", value_parser = parse_duration)]
    pub lease_period: std::time::Duration,
    /// PEM certificate chain: serve the API over HTTPS (with `--tls-key`).
    #[arg(long, env = "HOSTWATCH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "HOSTWATCH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Failed polls in a row before a host's `host_unreachable` alert fires.
    #[arg(long, env = "HOSTWATCH_UNREACHABLE_AFTER", default_value_t = 3)]
    pub unreachable_after: u32,
    /// Filesystem types left out of disk thresholds unless a threshold names the mount
    /// (comma-separated; default tmpfs, devtmpfs, overlay, squashfs, proc, sysfs, cgroup, …).
    #[arg(long, env = "HOSTWATCH_PSEUDO_FILESYSTEMS", value_delimiter = ',')]
    pub pseudo_filesystems: Option<Vec<String>>,
    /// The window of the disk-full forecast's rate (`disk.hours_to_full`), e.g. `6h`.
    #[arg(long, env = "HOSTWATCH_FORECAST_WINDOW", default_value = "6h", value_parser = parse_duration)]
    pub forecast_window: std::time::Duration,
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl StorageArgs {
    /// Storage settings for a data directory with every other setting left at its default.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            master_key: None,
        }
    }

    /// The SQLite file in use, when the database is SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.database_url {
            None => Some(self.data_dir.join("hostwatch.db")),
            Some(url) => {
                let rest = url.strip_prefix("sqlite:")?;
                let path = rest.trim_start_matches("//");
                let path = path.split('?').next().unwrap_or(path);
                (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
            }
        }
    }

    /// The database URL in force: the one given, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("hostwatch.db").display()
            ),
        }
    }
}

/// Parses `512KiB`, `1MiB`, `4096` (bytes), `2MB`.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: usize = t[..digits]
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 1MiB, 512KiB or 4096"))?;
    let unit: usize = match t[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        other => {
            return Err(format!(
                "{text:?}: unit {other:?} is not one of B, KiB, MiB, KB, MB"
            ));
        }
    };
    match n.checked_mul(unit) {
        Some(0) => Err("must be more than zero".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{text:?} is too large")),
    }
}

/// Parses `500ms`, `30s`, `2m`, `12h`, `7d` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.trim().split_at(
        text.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.trim().len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 30s, 500ms or 2m"))?;
    let d = match unit {
        "" | "s" => std::time::Duration::from_secs(n),
        "ms" => std::time::Duration::from_millis(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        "d" => std::time::Duration::from_secs(n * 86400),
        _ => return Err(format!("{text:?}: unit must be ms, s, m, h or d")),
    };
    if d.is_zero() {
        Err("must be more than zero".into())
    } else {
        Ok(d)
    }
}
