//! `smartmesh deploy`: the contracts onto any Ethereum JSON-RPC node.

use clap::Args;
use smartmesh_chain::deploy::{DeployConfig, deploy};
use smartmesh_chain::rpc::{RpcChain, RpcConfig};
use smartmesh_primitives::PrivateKey;
use std::path::PathBuf;

/// Flags of `smartmesh deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the Ethereum node.
    #[arg(long, value_name = "URL")]
    eth_rpc: String,
    /// File holding the deployer's private key as hex (or set SMARTMESH_DEPLOYER_KEY).
    #[arg(long, value_name = "FILE", conflicts_with = "dev_account")]
    key_file: Option<PathBuf>,
    /// Deploy from development account N of the well-known dev mnemonic (dev chains only).
    #[arg(long, value_name = "N")]
    dev_account: Option<u32>,
    /// Deployment config (TOML or JSON): supply, settle timeouts, vesting, grants.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where to write the deployment file.
    #[arg(long, value_name = "FILE", default_value = "deployment.json")]
    out: PathBuf,
    /// Blocks to wait before trusting events from this node.
    #[arg(long, default_value_t = 0)]
    confirmations: u64,
}

fn deployer_key(args: &DeployArgs) -> Result<PrivateKey, String> {
    if let Some(index) = args.dev_account {
        return smartmesh_chain::embedded::dev_keys(index as usize + 1)
            .pop()
            .ok_or_else(|| format!("no development account {index}"));
    }
    let hex = match &args.key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?,
        None => std::env::var("SMARTMESH_DEPLOYER_KEY").map_err(|_| {
            "no deployer key: pass --key-file, --dev-account or set SMARTMESH_DEPLOYER_KEY"
                .to_string()
        })?,
    };
    PrivateKey::from_hex(&hex).map_err(|e| format!("deployer key: {e}"))
}

/// Runs `smartmesh deploy`.
pub async fn run(args: DeployArgs) -> Result<(), String> {
    let key = deployer_key(&args)?;
    let config = match &args.config {
        Some(path) => DeployConfig::from_file(path).map_err(|e| e.to_string())?,
        None => DeployConfig::default(),
    };
    let chain = RpcChain::connect(RpcConfig {
        confirmations: args.confirmations,
        ..RpcConfig::new(&args.eth_rpc)
    })
    .map_err(|e| e.to_string())?;
    eprintln!("deploying from {} to {}", key.address(), args.eth_rpc);
    let deployment = deploy(&chain, &key, &config, |done, total| {
        eprintln!("  transaction {done}/{total} mined")
    })
    .await
    .map_err(|e| e.to_string())?;
    deployment.write(&args.out).map_err(|e| e.to_string())?;
    println!("token          {}", deployment.token);
    println!("secret registry {}", deployment.secret_registry);
    println!("token network  {}", deployment.token_network);
    println!("wrote {}", args.out.display());
    Ok(())
}
