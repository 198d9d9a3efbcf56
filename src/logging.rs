//! The service's log: where it goes, how it looks, and what is in it by default.
//!
//! Lines go to stderr, as text for people (colours only when stderr is a terminal and
//! `NO_COLOR` is not set) or as JSON objects for log shippers. `RUST_LOG` chooses what is
//! logged; without it the service's own events are logged at info, HTTP requests only at debug
//! (unless `--access-log`), and the libraries' routine start-up chatter not at all.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is not set: hostwatch at info, libraries at warn.
pub const DEFAULT_FILTER: &str = "info,sea_orm_migration=warn,sqlx=warn,hyper=warn,poem=warn";

/// Whether colours may be used on stderr.
fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colours()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}
