//! `smartmesh node`: one process is one node — identity from a keystore (or a dev key),
//! the chain embedded or over JSON-RPC, libp2p links, the REST API on loopback.
//! Settings come from flags, then the environment, then a TOML file, then defaults.

use clap::Args;
use serde::Deserialize;
use smartmesh_api::types::{LinkStatsInfo, PeerInfo};
use smartmesh_api::{ApiConfig, PeerSource};
use smartmesh_chain::Chain;
use smartmesh_chain::deploy::Deployment;
use smartmesh_chain::embedded::{EmbeddedChain, EmbeddedConfig};
use smartmesh_chain::rpc::{RpcChain, RpcConfig};
use smartmesh_engine::{ChainStatus, Input};
use smartmesh_node::{NodeConfig, NodeHandle, SystemClock};
use smartmesh_p2p::{Multiaddr, P2pConfig, P2pNode};
use smartmesh_primitives::{PrivateKey, TokenAmount, U256};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default API address.
pub const DEFAULT_API: &str = "127.0.0.1:5880";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "smartmesh-data";
/// SMT granted from the embedded chain's deployer to a keystore identity at start.
const EMBEDDED_GRANT_SMT: u64 = 1_000_000;

/// Flags of `smartmesh node`.
#[derive(Debug, Args, Default)]
pub struct NodeArgs {
    /// TOML file; keys are the long flag names with `_` for `-`.
    #[arg(long, env = "SMARTMESH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (write-ahead log, api-token, node.json). Default ./smartmesh-data.
    #[arg(long, env = "SMARTMESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keystore v3 file holding the node's key.
    #[arg(long, env = "SMARTMESH_KEYSTORE", value_name = "FILE")]
    keystore: Option<PathBuf>,
    /// File whose first line is the keystore password (or set SMARTMESH_PASSWORD).
    #[arg(long, env = "SMARTMESH_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Use development-mnemonic account N as the identity (development chains only).
    #[arg(long, value_name = "N")]
    dev_key: Option<usize>,
    /// Ethereum JSON-RPC URL; without it the node runs an embedded chain in-process.
    #[arg(long, env = "SMARTMESH_ETH_RPC", value_name = "URL")]
    eth_rpc: Option<String>,
    /// Deployment file (contract addresses); required with --eth-rpc.
    #[arg(long, env = "SMARTMESH_DEPLOYMENT", value_name = "FILE")]
    deployment: Option<PathBuf>,
    /// Blocks a chain event must be buried under before the node acts on it
    /// (default 0 on dev chain ids 1337 and 31337, else 2).
    #[arg(long, value_name = "N")]
    confirmations: Option<u64>,
    /// Listen multiaddr (repeatable). Default /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Static peer multiaddr (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    peer: Vec<String>,
    /// Turn mDNS discovery off.
    #[arg(long)]
    no_mdns: bool,
    /// REST API address (loopback). Port 0 picks a free one. Default 127.0.0.1:5880.
    #[arg(long, env = "SMARTMESH_API_LISTEN", value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// Our mediation fee, flat part (token base units).
    #[arg(long, value_name = "N")]
    fee_flat: Option<u128>,
    /// Our mediation fee, proportional part (millionths).
    #[arg(long, value_name = "N")]
    fee_ppm: Option<u64>,
    /// Settle timeout of channels this node opens, seconds.
    #[arg(long, value_name = "SECS")]
    settle_timeout: Option<u64>,
}

/// The TOML file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    keystore: Option<PathBuf>,
    password_file: Option<PathBuf>,
    dev_key: Option<usize>,
    eth_rpc: Option<String>,
    deployment: Option<PathBuf>,
    confirmations: Option<u64>,
    listen: Option<Vec<String>>,
    peer: Option<Vec<String>>,
    no_mdns: Option<bool>,
    api_listen: Option<SocketAddr>,
    fee_flat: Option<u128>,
    fee_ppm: Option<u64>,
    settle_timeout: Option<u64>,
}

/// Settings after merging flags, environment, file and defaults.
#[derive(Debug)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    keystore: Option<PathBuf>,
    password_file: Option<PathBuf>,
    dev_key: Option<usize>,
    eth_rpc: Option<String>,
    deployment: Option<PathBuf>,
    confirmations: Option<u64>,
    listen: Vec<Multiaddr>,
    peers: Vec<Multiaddr>,
    mdns: bool,
    api_listen: SocketAddr,
    fee_flat: Option<u128>,
    fee_ppm: Option<u64>,
    settle_timeout: Option<u64>,
}

fn parse_addrs(what: &str, list: Vec<String>) -> Result<Vec<Multiaddr>, String> {
    list.iter()
        .map(|a| {
            a.parse()
                .map_err(|e| format!("--{what} {a:?} is not a multiaddr: {e}"))
        })
        .collect()
}

impl NodeArgs {
    /// Merges flags and environment (already in `self`) over the config file.
    pub fn settings(self) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config {}: {}", path.display(), e.message()))?
            }
            None => FileConfig::default(),
        };
        let listen = if self.listen.is_empty() {
            file.listen.unwrap_or_default()
        } else {
            self.listen
        };
        let listen = if listen.is_empty() {
            smartmesh_p2p::default_listen()
        } else {
            parse_addrs("listen", listen)?
        };
        let peers = if self.peer.is_empty() {
            file.peer.unwrap_or_default()
        } else {
            self.peer
        };
        let settings = Settings {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            keystore: self.keystore.or(file.keystore),
            password_file: self.password_file.or(file.password_file),
            dev_key: self.dev_key.or(file.dev_key),
            eth_rpc: self.eth_rpc.or(file.eth_rpc),
            deployment: self.deployment.or(file.deployment),
            confirmations: self.confirmations.or(file.confirmations),
            listen,
            peers: parse_addrs("peer", peers)?,
            mdns: !(self.no_mdns || file.no_mdns.unwrap_or(false)),
            api_listen: match self.api_listen.or(file.api_listen) {
                Some(addr) => addr,
                None => DEFAULT_API
                    .parse()
                    .map_err(|e| format!("default API address: {e}"))?,
            },
            fee_flat: self.fee_flat.or(file.fee_flat),
            fee_ppm: self.fee_ppm.or(file.fee_ppm),
            settle_timeout: self.settle_timeout.or(file.settle_timeout),
        };
        if settings.dev_key.is_some() && settings.keystore.is_some() {
            return Err("--dev-key and --keystore name two identities: pass one".into());
        }
        if settings.dev_key.is_none() && settings.keystore.is_none() {
            return Err(
                "no identity: pass --keystore FILE (see `smartmesh account new`) or --dev-key N on a development chain"
                    .into(),
            );
        }
        if settings.eth_rpc.is_some() && settings.deployment.is_none() {
            return Err(
                "--eth-rpc needs --deployment FILE (written by `smartmesh deploy` or `smartmesh devchain --deployment-out`)"
                    .into(),
            );
        }
        if settings.fee_ppm.is_some_and(|p| p > 1_000_000) {
            return Err("--fee-ppm is in millionths: at most 1000000".into());
        }
        if !settings.api_listen.ip().is_loopback() {
            return Err(format!(
                "--api-listen {} is not a loopback address: the API moves money and listens on loopback only",
                settings.api_listen
            ));
        }
        Ok(settings)
    }
}

fn identity(settings: &Settings) -> Result<PrivateKey, String> {
    if let Some(index) = settings.dev_key {
        if index >= 100 {
            return Err("--dev-key must be below 100".into());
        }
        return smartmesh_chain::embedded::dev_keys(index + 1)
            .pop()
            .ok_or_else(|| "no such development key".into());
    }
    let path = settings.keystore.as_ref().ok_or("no keystore given")?;
    let password = crate::account::read_password(settings.password_file.as_deref())?;
    smartmesh_keystore::load(path, password.as_bytes())
        .map_err(|e| format!("cannot open keystore {}: {e}", path.display()))
}

struct ChainSetup {
    chain: Arc<dyn Chain>,
    deployment: Deployment,
    endpoint: String,
}

async fn chain(settings: &Settings, key: &PrivateKey) -> Result<ChainSetup, String> {
    match &settings.eth_rpc {
        Some(url) => {
            let path = settings.deployment.as_ref().ok_or("no deployment file")?;
            let deployment = Deployment::read(path).map_err(|e| e.to_string())?;
            let confirmations = settings.confirmations.unwrap_or(
                if matches!(deployment.chain_id.0, 1337 | 31337) {
                    0
                } else {
                    2
                },
            );
            let config = if confirmations == 0 {
                RpcConfig::dev(url.clone(), 0)
            } else {
                RpcConfig {
                    confirmations,
                    ..RpcConfig::new(url.clone())
                }
            };
            let chain = RpcChain::connect(config).map_err(|e| format!("--eth-rpc {url}: {e}"))?;
            Ok(ChainSetup {
                chain: Arc::new(chain),
                deployment,
                endpoint: url.clone(),
            })
        }
        None => {
            let chain = EmbeddedChain::new(EmbeddedConfig::with_contracts())
                .map_err(|e| format!("embedded chain: {e}"))?;
            let deployment = chain
                .deployment()
                .ok_or("the embedded chain has no contracts")?;
            // The deployer (dev account 0) holds the SMT supply: give any other identity
            // SMT, and ether when it is not a funded dev account.
            let dev = chain.dev_keys();
            let deployer = dev.first().ok_or("no development account")?;
            if key.address() != deployer.address() {
                if !dev.iter().any(|k| k.address() == key.address()) {
                    let ether = U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64));
                    chain.fund(key.address(), ether);
                }
                let smt = TokenAmount::from_u128(u128::from(EMBEDDED_GRANT_SMT) * 10u128.pow(18));
                use alloy::sol_types::SolCall;
                let transfer = smartmesh_contracts::SmartMeshToken::transferCall {
                    to: key.address(),
                    value: smt.0,
                };
                chain
                    .execute(
                        deployer.address(),
                        smartmesh_chain::TxRequest::call(deployment.token, transfer.abi_encode()),
                    )
                    .map_err(|e| format!("embedded chain grant: {e}"))?;
            }
            Ok(ChainSetup {
                chain: Arc::new(chain),
                deployment,
                endpoint: "embedded".into(),
            })
        }
    }
}

/// The link layer as the API sees it.
struct Links(P2pNode);

impl PeerSource for Links {
    fn peer_id(&self) -> String {
        self.0.peer_id()
    }

    fn listen_addrs(&self) -> Vec<String> {
        self.0.listen_addrs()
    }

    fn peers(&self) -> Vec<PeerInfo> {
        self.0
            .peers()
            .into_iter()
            .map(|p| PeerInfo {
                address: p.address,
                peer_id: p.peer_id,
                addrs: p.addrs,
                connected: p.connected,
                source: p.source.to_string(),
            })
            .collect()
    }

    fn link_stats(&self) -> LinkStatsInfo {
        let s = self.0.stats();
        LinkStatsInfo {
            messages_sent: s.messages_sent,
            messages_acked: s.messages_acked,
            messages_dropped: s.messages_dropped,
            messages_received: s.messages_received,
            outbound_queue_depth: s.outbound_queue_depth,
            inbound_queue_depth: s.inbound_queue_depth,
            connections: s.connections,
        }
    }
}

/// What `node.json` holds (read by the CLI client commands and the demo).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeFile {
    /// The node's address.
    pub address: smartmesh_primitives::Address,
    /// Its peer id.
    pub peer_id: String,
    /// Base URL of its API.
    pub api_url: String,
    /// Its listen multiaddrs.
    pub listen_addrs: Vec<String>,
    /// Its process id.
    pub pid: u32,
}

/// `<data-dir>/node.json`.
pub fn node_file(data_dir: &Path) -> PathBuf {
    data_dir.join("node.json")
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Logs chain status changes in plain words, with sync progress.
fn watch_chain(node: NodeHandle) {
    let mut notifications = node.subscribe();
    tokio::spawn(async move {
        let mut last: Option<ChainStatus> = None;
        loop {
            let applied = match notifications.recv().await {
                Ok(a) => a,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let status = match applied.input {
                Input::ChainUnreachable => ChainStatus::Unreachable,
                Input::ChainReachable => ChainStatus::Syncing,
                Input::ChainSynced { .. } => ChainStatus::Synced,
                _ => continue,
            };
            if last == Some(status) {
                continue;
            }
            last = Some(status);
            let queued = node.query(|s| s.pending_onchain.len()).await.unwrap_or(0);
            match status {
                ChainStatus::Unreachable => tracing::warn!(
                    "chain unreachable: payments over open channels continue; {queued} on-chain actions queued"
                ),
                ChainStatus::Syncing => {
                    let access = node.chain_access();
                    let head = access.chain.head().await.map(|h| h.number.0).ok();
                    let scanned = *access.scanned.borrow();
                    tracing::info!(
                        "chain reachable: syncing from block {scanned} to {}",
                        head.map_or("?".into(), |h| h.to_string())
                    );
                }
                ChainStatus::Synced => {
                    tracing::info!("chain synced: {queued} queued on-chain actions go out")
                }
            }
        }
    });
}

/// Runs `smartmesh node` until SIGINT or SIGTERM.
pub async fn run(args: NodeArgs) -> Result<(), String> {
    let settings = args.settings()?;
    let key = identity(&settings)?;
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
    let setup = chain(&settings, &key).await?;
    let mut config = NodeConfig::new(
        settings.data_dir.join("wal"),
        key.clone(),
        setup.deployment.clone(),
    );
    if let Some(flat) = settings.fee_flat {
        config.engine.fee_flat = TokenAmount::from_u128(flat);
    }
    if let Some(ppm) = settings.fee_ppm {
        config.engine.fee_proportional_ppm = ppm;
    }
    let (links, inbound) = smartmesh_p2p::start(
        &key,
        P2pConfig {
            listen: settings.listen.clone(),
            static_peers: settings.peers.clone(),
            mdns: settings.mdns,
            ..P2pConfig::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let node = smartmesh_node::start(
        config,
        setup.chain.clone(),
        Arc::new(links.clone()),
        inbound,
        Arc::new(SystemClock),
    )
    .await
    .map_err(|e| format!("cannot start the node: {e}"))?;
    if settings.fee_flat.is_some() || settings.fee_ppm.is_some() {
        let fee = smartmesh_engine::FeeSchedule {
            flat: TokenAmount::from_u128(settings.fee_flat.unwrap_or(0)),
            proportional_ppm: settings.fee_ppm.unwrap_or(0),
        };
        node.set_fee_schedule(key.address(), fee)
            .await
            .map_err(|e| format!("cannot set our fee: {e}"))?;
    }
    watch_chain(node.clone());
    let token = smartmesh_api::load_or_create_token(&settings.data_dir.join("api-token"))
        .map_err(|e| e.to_string())?;
    let api = smartmesh_api::start(
        ApiConfig {
            listen: settings.api_listen,
            token,
            chain_endpoint: setup.endpoint.clone(),
            default_settle_timeout: settings.settle_timeout,
            ..ApiConfig::default()
        },
        node.clone(),
        Arc::new(Links(links.clone())),
    )
    .await
    .map_err(|e| e.to_string())?;
    let file = NodeFile {
        address: key.address(),
        peer_id: links.peer_id(),
        api_url: api.url(),
        listen_addrs: links.listen_addrs(),
        pid: std::process::id(),
    };
    let node_json = node_file(&settings.data_dir);
    write_atomically(
        &node_json,
        &serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?,
    )?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "ready address={} peer_id={} api={}",
            file.address, file.peer_id, file.api_url
        );
        for addr in &file.listen_addrs {
            let _ = writeln!(out, "listening {addr}");
        }
        let _ = out.flush();
    }
    wait_for_signal().await;
    tracing::info!("stopping");
    let _ = std::fs::remove_file(&node_json);
    api.stop().await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), node.shutdown()).await;
    links.shutdown().await;
    match stopped {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the node did not stop within 10 s".into()),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
