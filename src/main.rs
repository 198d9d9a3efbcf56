//! The `hostwatch` command: `serve`, `migrate`, `openapi`, `probe`, `user …`, `token …`.

use std::process::ExitCode;

use clap::Parser;
use hostwatch::{
    api, app, commands,
    config::{Cli, Command},
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    hostwatch::logging::init(cli.log_format);
    // Everything this process creates (the database, its WAL, keys, tokens) is for its owner
    // only.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let result = match cli.command {
        Command::Serve(args) => app::serve(*args).await,
        Command::Migrate(storage) => app::open_existing(&storage, false).await.map(|_| {
            tracing::info!("migrations applied");
        }),
        Command::Openapi => {
            println!("{}", api::spec_json());
            Ok(())
        }
        Command::Probe { local: _, shell } => {
            match hostwatch::poller::local::snapshot(&shell, std::time::Duration::from_secs(1))
                .await
            {
                Ok(snapshot) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&snapshot).expect("snapshot serialises")
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Command::Token { command } => commands::token(command).await,
        Command::User { command } => commands::user(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hostwatch: {err}");
            ExitCode::FAILURE
        }
    }
}
