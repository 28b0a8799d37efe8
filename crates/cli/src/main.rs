//! `smartmesh`: the command-line entry point. Thin: it parses flags and calls the
//! library crates.

mod account;
mod chain_demo;
mod client_cmds;
mod demo;
mod deploy;
mod devchain;
mod mesh_cmds;
mod node;

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
    /// Run a node: libp2p links, payment channels, the REST API on loopback.
    Node(node::NodeArgs),
    /// Show a running node's status (chain, balances, peers, channels).
    Status(client_cmds::StatusArgs),
    /// List, open, fund, withdraw from, close and settle channels.
    Channel(client_cmds::ChannelArgs),
    /// Pay an address (directly or over a route).
    Pay(client_cmds::PayArgs),
    /// Payments the node took part in.
    Payments(client_cmds::PaymentsArgs),
    /// The node's peers.
    Peers(client_cmds::PeersArgs),
    /// Recent node events.
    Events(client_cmds::EventsArgs),
    /// Mediation fees.
    Fee(client_cmds::FeeArgs),
    /// Send a text or a file to a node address over the mesh (end-to-end encrypted).
    Send(mesh_cmds::SendArgs),
    /// Messages and files received over the mesh.
    Inbox(mesh_cmds::InboxArgs),
    /// Mesh neighbours and routes.
    Routes(mesh_cmds::RoutesArgs),
    /// Pay-for-forward accounts: what each neighbour carried, owes and paid; earnings.
    Earnings(mesh_cmds::EarningsArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,smartmesh=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            Command::Node(args) => node::run(args).await,
            Command::Status(args) => client_cmds::status(args).await,
            Command::Channel(args) => client_cmds::channel(args).await,
            Command::Pay(args) => client_cmds::pay(args).await,
            Command::Payments(args) => client_cmds::payments(args).await,
            Command::Peers(args) => client_cmds::peers(args).await,
            Command::Events(args) => client_cmds::events(args).await,
            Command::Fee(args) => client_cmds::fee(args).await,
            Command::Send(args) => mesh_cmds::send(args).await,
            Command::Inbox(args) => mesh_cmds::inbox(args).await,
            Command::Routes(args) => mesh_cmds::routes(args).await,
            Command::Earnings(args) => mesh_cmds::earnings(args).await,
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
