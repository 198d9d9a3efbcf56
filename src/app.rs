//! The `serve` command and what other commands share: data directory, master key, database,
//! first admin token, and the HTTP server, which stops with the service on SIGINT/SIGTERM.

use std::{net::SocketAddr, path::Path};

use sea_orm::DatabaseConnection;

use crate::{
    api::{self, RequestLimits},
    config::{ServeArgs, StorageArgs},
    crypto::{self, SecretBox},
    error::{Error, Result},
    poller::PollerSettings,
    server,
    services::Services,
    store::{self, tokens},
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

/// On first start (no token at all), creates the admin token and writes it to
/// `<data-dir>/admin.token` (0600). The log gets the path, never the token.
pub async fn ensure_admin_token(db: &DatabaseConnection, data_dir: &Path) -> Result<()> {
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
    let token = zeroize::Zeroizing::new(tokens::create(db, "admin", false).await?);
    crypto::write_private_file(&path, format!("{}\n", token.as_str()).as_bytes())?;
    tracing::info!(path = %path.display(), "created the admin API token; read it from this file");
    Ok(())
}

/// A running server: its address and the task that serves until shutdown.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Where and how the HTTP server listens.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub connections: server::Limits,
    pub requests: RequestLimits,
    /// Log every request at info.
    pub access_log: bool,
}

/// Starts the HTTP server; it stops gracefully when `stop` is cancelled.
pub async fn start(
    http: HttpSettings,
    state: Services,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(http.listen)
        .await
        .map_err(|e| Error::io(format!("listening on {}", http.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listening address", e))?;
    let app = api::app_with(state, http.requests, http.access_log);
    let task = tokio::spawn(server::serve(listener, app, http.connections, stop));
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

/// `hostwatch serve`.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let files = raise_fd_limit(65_536);
    tracing::info!(open_files = files, "open-file limit");
    let (db, secrets) = open(&args.storage).await?;
    tracing::info!(
        backend = store::backend_name(&db),
        data_dir = %args.storage.data_dir.display(),
        "database ready"
    );
    ensure_admin_token(&db, &args.storage.data_dir).await?;
    let settings = PollerSettings {
        poll_timeout: args.poll_timeout,
        unreachable_after: args.unreachable_after,
        ..Default::default()
    };
    let services = Services::start(db, secrets, settings);
    // Whatever ends the service (a signal, a failure to start), it shuts down in order.
    let served = run(&services, &args).await;
    services.shutdown().await?;
    served
}

/// The workers and the HTTP server, until a signal or the server's end.
async fn run(services: &Services, args: &ServeArgs) -> Result<()> {
    services.run_scheduler(args.max_concurrent_polls).await?;
    services.run_delivery();
    services.run_retention(args.retention);
    let stop = services.stop_token();
    let http = HttpSettings {
        listen: args.listen,
        connections: server::Limits {
            max_connections: args.max_connections,
            header_timeout: args.header_timeout,
        },
        requests: RequestLimits {
            max_body: args.max_body,
            body_timeout: args.body_timeout,
        },
        access_log: args.access_log,
    };
    let running = start(http, services.clone(), stop.clone()).await?;
    tracing::info!(addr = %running.addr, "listening; Swagger UI at http://{}/docs", running.addr);
    tokio::select! {
        () = shutdown_signal() => {}
        () = stop.cancelled() => {}
    }
    stop.cancel();
    running
        .task
        .await
        .map_err(|e| Error::Internal(format!("the HTTP server task failed: {e}")))?
        .map_err(|e| Error::io("serving", e))
}
