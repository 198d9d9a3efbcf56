//! The `hostwatch` command: `serve`, `migrate`, `openapi`, `token create`.

use std::process::ExitCode;

use clap::Parser;
use hostwatch::{
    api, app,
    config::{Cli, Command, TokenCommand},
    store::tokens,
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => app::serve(args).await,
        Command::Migrate(storage) => app::open(&storage).await.map(|_| {
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
        Command::Token {
            command:
                TokenCommand::Create {
                    name,
                    read_only,
                    storage,
                },
        } => match app::open(&storage).await {
            Ok((db, _)) => tokens::create(&db, &name, read_only)
                .await
                .map(|token| println!("{token}")),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hostwatch: {err}");
            ExitCode::FAILURE
        }
    }
}
