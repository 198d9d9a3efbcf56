//! The `serve` command and what other commands share: data directory, master key, database,
//! first admin token, and the HTTP server, which stops with the service on SIGINT/SIGTERM.

use std::{net::SocketAddr, path::Path, time::Duration};

use sea_orm::DatabaseConnection;

use entity::types::Role;

use crate::{
    accounts,
    api::{self, RequestLimits},
    cluster::{self, DataDirLock, LeaseTiming, Mode},
    config::{ServeArgs, StorageArgs},
    crypto::{self, SecretBox},
    delivery::worker::DeliverySettings,
    error::{Error, Result},
    poller::PollerSettings,
    server,
    services::{Services, WorkerSettings},
    store::{
        self,
        cluster::{Fence, NodeInfo},
        tokens, users,
    },
};

/// Raises the open-file limit as far as allowed: every monitored host holds a connection.
/// Returns the soft limit in force afterwards.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur >= wanted {
            return lim.rlim_cur;
        }
        // Root may raise the hard limit too; others get the hard limit.
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return wanted;
        }
        let capped = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &capped) == 0 {
            return lim.rlim_max;
        }
        lim.rlim_cur
    }
    #[cfg(not(unix))]
    wanted
}

/// Creates the data directory (0700) when it does not exist.
pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(dir, perms)
            .map_err(|e| Error::io(format!("restricting {}", dir.display()), e))?;
    }
    Ok(())
}

/// Opens storage for `serve`: data directory (created on first start), master key, database
/// connection, migrations.
pub async fn open(storage: &StorageArgs) -> Result<(DatabaseConnection, SecretBox)> {
    ensure_data_dir(&storage.data_dir)?;
    let opened = connect(storage).await?;
    // Files made before the service set its umask may be readable by others.
    if storage.database_url.is_none() {
        for name in ["hostwatch.db", "hostwatch.db-wal", "hostwatch.db-shm"] {
            crypto::restrict_to_owner(&storage.data_dir.join(name))?;
        }
    }
    Ok(opened)
}

/// What `--data-dir` to pass, for messages about a data directory that is not there.
fn data_dir_advice(storage: &StorageArgs) -> String {
    format!(
        "no hostwatch data directory at {} (`hostwatch serve` creates it on its first start): \
         pass --data-dir or set HOSTWATCH_DATA_DIR to the one the service uses",
        storage.data_dir.display()
    )
}

/// Opens the storage of an existing data directory, for the commands other than `serve`:
/// they refuse to create one (which would bring a new master key and an empty database the
/// running service knows nothing of). With `need_database`, the default SQLite file must
/// exist too.
pub async fn open_existing(
    storage: &StorageArgs,
    need_database: bool,
) -> Result<(DatabaseConnection, SecretBox)> {
    if !storage.data_dir.is_dir() {
        return Err(Error::Config(data_dir_advice(storage)));
    }
    // Its own directory, for the service's user only.
    ensure_data_dir(&storage.data_dir)?;
    let file = storage.data_dir.join("hostwatch.db");
    if need_database && storage.database_url.is_none() && !file.exists() {
        return Err(Error::Config(format!(
            "no database at {}: {}",
            file.display(),
            data_dir_advice(storage)
        )));
    }
    connect(storage).await
}

async fn connect(storage: &StorageArgs) -> Result<(DatabaseConnection, SecretBox)> {
    let secrets = SecretBox::load(storage.master_key.as_deref(), &storage.data_dir)?;
    let db = store::connect(&storage.database_url()).await?;
    store::migrate(&db).await?;
    Ok((db, secrets))
}

/// On first start (no user at all), creates user `admin` with a random password written to
/// `<data-dir>/admin.password` (0600), gives it the tokens made before accounts, and — when
/// there is no token at all — creates the admin token in `<data-dir>/admin.token` (0600). The
/// log gets the paths, never the secrets.
pub async fn ensure_admin(db: &DatabaseConnection, data_dir: &Path) -> Result<()> {
    let admin = match users::find_by_name(db, "admin").await? {
        Some(admin) => Some(admin),
        None if !users::any(db).await? => create_admin_user(db, data_dir).await?,
        None => None,
    };
    let Some(admin) = admin else {
        return Ok(());
    };
    let adopted = tokens::adopt_orphans(db, admin.id).await?;
    if adopted > 0 {
        tracing::info!(
            tokens = adopted,
            "tokens from before accounts now belong to admin"
        );
    }
    if tokens::any(db).await? {
        return Ok(());
    }
    let path = data_dir.join("admin.token");
    if path.exists() {
        return Err(Error::Conflict(format!(
            "{} exists but the database has no tokens: move it away to get a new admin token",
            path.display()
        )));
    }
    let (token, _) = tokens::create(
        db,
        tokens::NewToken {
            user_id: admin.id,
            name: "admin",
            role: Role::Admin,
        },
    )
    .await?;
    let token = zeroize::Zeroizing::new(token);
    crypto::write_private_file(&path, format!("{}\n", token.as_str()).as_bytes())?;
    tracing::info!(path = %path.display(), "created the admin API token; read it from this file");
    Ok(())
}

/// The first user; `None` when another node created it meanwhile.
async fn create_admin_user(
    db: &DatabaseConnection,
    data_dir: &Path,
) -> Result<Option<entity::user::Model>> {
    let path = data_dir.join("admin.password");
    if path.exists() {
        return Err(Error::Conflict(format!(
            "{} exists but the database has no users: move it away to get a new admin password",
            path.display()
        )));
    }
    let password = accounts::generate_password();
    let new = users::NewUser {
        username: "admin".into(),
        password_hash: accounts::hash_password(&password)?,
        role: Role::Admin,
    };
    let user = match users::create(db, new).await {
        Ok(user) => user,
        Err(Error::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    crypto::write_private_file(&path, format!("{}\n", password.as_str()).as_bytes())?;
    tracing::info!(
        path = %path.display(),
        "created user admin; its password is in this file (change it with `hostwatch user passwd admin`)"
    );
    Ok(Some(user))
}

/// A running server: its address and the task that serves until shutdown.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Where and how the HTTP server listens.
#[derive(Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub connections: server::Limits,
    pub requests: RequestLimits,
    /// Log every request at info.
    pub access_log: bool,
    /// Serve HTTPS with this.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("listening on {addr}"), e))
}

/// Starts the HTTP server; it stops gracefully when `stop` is cancelled.
pub async fn start(
    http: HttpSettings,
    state: Services,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Running> {
    let listener = bind(http.listen).await?;
    start_on(listener, http, state, stop)
}

/// Starts the HTTP server on a bound listener.
pub fn start_on(
    listener: tokio::net::TcpListener,
    http: HttpSettings,
    state: Services,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Running> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listening address", e))?;
    let app = api::app_with(state, http.requests, http.access_log);
    let task = tokio::spawn(server::serve(
        listener,
        app,
        http.connections,
        http.tls,
        stop,
    ));
    Ok(Running { addr, task })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// A database URL fit for a log line: no password.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Connects to the database, saying in one line why not: a server that refuses or does not
/// answer is named with the reason (the pool itself would only say it timed out).
async fn connect_database(
    url: &str,
    idle_in_transaction: Option<Duration>,
) -> Result<DatabaseConnection> {
    let fail = |why: String| {
        Error::Config(format!(
            "the database at {} does not answer: {why}",
            redacted(url)
        ))
    };
    if let Ok(parsed) = url::Url::parse(url)
        && matches!(parsed.scheme(), "postgres" | "postgresql")
        // A Unix socket (`?host=/run/postgresql`) is left to the driver.
        && !parsed.query_pairs().any(|(k, _)| k == "host")
        && let Some(host) = parsed.host_str().filter(|h| !h.is_empty())
    {
        let host = host.to_owned();
        let port = parsed.port().unwrap_or(5432);
        match tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(fail(format!("{host}:{port}: {e}"))),
            Err(_) => return Err(fail(format!("{host}:{port}: no answer within 10 s"))),
        }
    }
    store::connect_with(url, idle_in_transaction)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// This machine's name, for the node's id.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `hostwatch serve`. Everything that can be wrong with the configuration is found before
/// anything starts: the listener is bound first (a port in use stops it here), then the TLS
/// files are read, the SQLite file is locked (or PostgreSQL answers), the migrations run, and
/// only then do the workers start.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let files = raise_fd_limit(65_536);
    let listener = bind(args.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listening address", e))?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let sqlite = args.storage.sqlite_file();
    let mode = match sqlite {
        Some(_) => Mode::Sole,
        None => Mode::Lease(LeaseTiming::new(args.lease_period, args.poll_timeout)?),
    };
    ensure_data_dir(&args.storage.data_dir)?;
    // Held until the process ends.
    let _lock = match &sqlite {
        Some(file) => Some(DataDirLock::take(&lock_path(file))?),
        None => None,
    };
    let url = args.storage.database_url();
    let idle = match mode {
        Mode::Sole => None,
        Mode::Lease(t) => Some(t.ttl / 2),
    };
    let db = connect_database(&url, idle).await?;
    let secrets = SecretBox::load(args.storage.master_key.as_deref(), &args.storage.data_dir)?;
    store::cluster::migrate_exclusively(&db).await?;
    if sqlite.is_some() && args.storage.database_url.is_none() {
        for name in ["hostwatch.db", "hostwatch.db-wal", "hostwatch.db-shm"] {
            crypto::restrict_to_owner(&args.storage.data_dir.join(name))?;
        }
    }
    tracing::info!(
        backend = store::backend_name(&db),
        data_dir = %args.storage.data_dir.display(),
        open_files = files,
        "database ready"
    );
    ensure_admin(&db, &args.storage.data_dir).await?;
    let node = NodeInfo {
        node_id: format!("{}:{}", hostname(), addr.port()),
        hostname: hostname(),
        pid: std::process::id(),
        listen: addr.to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: store::now_ms(),
    };
    let fence = match mode {
        Mode::Sole => Fence::sole(),
        Mode::Lease(_) => Fence::leased(&node.node_id),
    };
    let defaults = PollerSettings::default();
    let settings = PollerSettings {
        poll_timeout: args.poll_timeout,
        unreachable_after: args.unreachable_after,
        pseudo_filesystems: args
            .pseudo_filesystems
            .clone()
            .map(|list| {
                list.into_iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or(defaults.pseudo_filesystems.clone()),
        forecast_window: args.forecast_window,
        retention: history_retention(&args),
        ..defaults
    };
    let services =
        Services::start_fenced(db, secrets, settings, DeliverySettings::default(), fence);
    let lease_period = match mode {
        Mode::Sole => None,
        Mode::Lease(t) => Some(t.period),
    };
    services.set_node(node.clone(), lease_period);
    let workers = WorkerSettings {
        max_concurrent_polls: args.max_concurrent_polls,
        retention: history_retention(&args),
        follow_every: Duration::from_secs(1),
    };
    let role = tokio::spawn(cluster::run_role(
        services.clone(),
        node.clone(),
        mode,
        workers,
        services.stop_token(),
    ));
    let http = HttpSettings {
        listen: addr,
        connections: server::Limits {
            max_connections: args.max_connections,
            header_timeout: args.header_timeout,
        },
        requests: RequestLimits {
            max_body: args.max_body,
            body_timeout: args.body_timeout,
        },
        access_log: args.access_log,
        tls,
    };
    let scheme = if http.tls.is_some() { "https" } else { "http" };
    // Whatever ends the service (a signal, a failure), it shuts down in order.
    let served = run(&services, listener, http, role).await;
    services.shutdown().await?;
    tracing::info!(addr = %addr, scheme, "stopped");
    served
}

/// The lock file of a SQLite database: next to it.
fn lock_path(db_file: &Path) -> std::path::PathBuf {
    let mut name = db_file.as_os_str().to_owned();
    name.push(".lock");
    name.into()
}

/// The HTTP server and the node's role loop, until a signal, the server's end or the role
/// loop's failure.
async fn run(
    services: &Services,
    listener: tokio::net::TcpListener,
    http: HttpSettings,
    mut role: tokio::task::JoinHandle<Result<()>>,
) -> Result<()> {
    let stop = services.stop_token();
    let scheme = if http.tls.is_some() { "https" } else { "http" };
    let running = start_on(listener, http, services.clone(), stop.clone())?;
    tracing::info!(
        addr = %running.addr,
        "listening; Swagger UI at {scheme}://{}/docs",
        running.addr
    );
    let mut role_ended = None;
    tokio::select! {
        () = shutdown_signal() => {}
        () = stop.cancelled() => {}
        ended = &mut role => role_ended = Some(ended),
    }
    stop.cancel();
    let role_result = match role_ended {
        Some(ended) => ended,
        None => role.await,
    }
    .map_err(|e| Error::Internal(format!("the node's role task failed: {e}")))?;
    running
        .task
        .await
        .map_err(|e| Error::Internal(format!("the HTTP server task failed: {e}")))?
        .map_err(|e| Error::io("serving", e))?;
    role_result
}

/// The history tiers' retention as `serve` was given it.
fn history_retention(args: &ServeArgs) -> crate::tiers::Retention {
    crate::tiers::Retention {
        raw: args.retention_raw,
        minute: args.retention_1m,
        ten_minutes: args.retention_10m,
        hour: args.retention_1h,
        url_results: args.retention_url_results,
    }
}
