//! `smartmesh`: the command-line entry point. Thin: it parses flags and calls the
//! library crates.

mod account;
mod demo;
mod deploy;
mod devchain;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// SmartMesh: a tokenized mesh network with off-chain payment channels.
#[derive(Debug, Parser)]
#[command(name = "smartmesh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve an embedded development chain over Ethereum JSON-RPC on loopback.
    Devchain(devchain::DevchainArgs),
    /// Deploy the SmartMesh contracts to an Ethereum node and write a deployment file.
    Deploy(deploy::DeployArgs),
    /// Run the on-chain channel lifecycle on an embedded chain and print a report.
    Demo(demo::DemoArgs),
    /// Manage the node's keystore v3 files: new, import, list.
    Account(account::AccountArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Devchain(args) => devchain::run(args).await,
            Command::Deploy(args) => deploy::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Account(args) => account::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
