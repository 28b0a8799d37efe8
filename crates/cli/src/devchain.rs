//! `smartmesh devchain`: an embedded chain shared over JSON-RPC on loopback.

use clap::Args;
use smartmesh_chain::deploy::{DeployConfig, Grant};
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig, Mining};
use smartmesh_primitives::ChainId;
use smartmesh_primitives::U256;
use std::path::PathBuf;
use std::time::Duration;

/// Development accounts that hold SMT on a devchain started without a config.
const DEV_ACCOUNTS_WITH_SMT: usize = 10;
/// SMT granted to each of them (whole tokens).
const DEV_GRANT_SMT: u64 = 1_000_000;

/// Flags of `smartmesh devchain`.
#[derive(Debug, Args)]
pub struct DevchainArgs {
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Address to listen on. Loopback by default; another address serves other hosts
    /// (the chain is a development chain with well-known keys: never expose it beyond a
    /// test network).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Chain id.
    #[arg(long, default_value_t = 1337)]
    chain_id: u64,
    /// Mine a block every N milliseconds instead of one per transaction.
    #[arg(long, value_name = "MS")]
    block_time: Option<u64>,
    /// Deployment config (TOML or JSON) for the contracts deployed at genesis.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write the deployment file here for nodes to read.
    #[arg(long, value_name = "FILE")]
    deployment_out: Option<PathBuf>,
}

/// Runs `smartmesh devchain` until Ctrl-C.
pub async fn run(args: DevchainArgs) -> Result<(), String> {
    let deploy = match &args.config {
        Some(path) => DeployConfig::from_file(path).map_err(|e| e.to_string())?,
        // Without a config, every development account but the deployer gets SMT too,
        // so nodes using any dev key can fund channels.
        None => DeployConfig {
            grants: smartmesh_chain::embedded::dev_keys(DEV_ACCOUNTS_WITH_SMT)
                .iter()
                .skip(1)
                .map(|k| Grant {
                    to: k.address(),
                    amount: U256::from(DEV_GRANT_SMT) * U256::from(10u64).pow(U256::from(18u64)),
                })
                .collect(),
            ..DeployConfig::default()
        },
    };
    let mining = match args.block_time {
        Some(0) => return Err("--block-time must be at least 1 ms".into()),
        Some(ms) => Mining::Interval(Duration::from_millis(ms)),
        None => Mining::Instant,
    };
    let chain = EmbeddedChain::new(EmbeddedConfig {
        chain_id: ChainId(args.chain_id),
        mining,
        deploy: Some(deploy),
        ..EmbeddedConfig::default()
    })
    .map_err(|e| format!("cannot start the chain: {e}"))?;
    if let (Some(path), Some(deployment)) = (&args.deployment_out, chain.deployment()) {
        deployment.write(path).map_err(|e| e.to_string())?;
    }
    let (listener, address) =
        smartmesh_chain::devchain::bind_addr(std::net::SocketAddr::new(args.host, args.port))
            .await
            .map_err(|e| e.to_string())?;
    println!("{}", smartmesh_chain::devchain::startup_banner(&chain));
    println!("listening on http://{address}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    smartmesh_chain::devchain::serve(chain, listener, shutdown)
        .await
        .map_err(|e| e.to_string())
}
