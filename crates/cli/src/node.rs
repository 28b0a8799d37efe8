//! `smartmesh node`: one process is one node — identity from a keystore (or a dev key),
//! the chain embedded or over JSON-RPC, libp2p links, the REST API on loopback.
//! Settings come from flags, then the environment, then a TOML file, then defaults.

use clap::Args;
use serde::Deserialize;
use smartmesh_api::types::{LinkStatsInfo, PeerInfo};
use smartmesh_api::{ApiConfig, PeerSource};
use smartmesh_chain::Chain;
use smartmesh_chain::deploy::{DeployConfig, Deployment, Grant};
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
/// SMT (whole tokens) granted at genesis of the embedded chain to the node's identity.
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
    /// Our price for carrying mesh data, token base units per KiB. Default 0.
    #[arg(long, value_name = "N")]
    mesh_price: Option<u64>,
    /// Pay a mesh neighbour once we owe it this much (base units). Default 1000000.
    #[arg(long, value_name = "N")]
    mesh_settle_threshold: Option<u128>,
    /// A mesh neighbour owing us more than half this is throttled, more than this cut
    /// off (base units). Default 4000000.
    #[arg(long, value_name = "N")]
    mesh_credit_limit: Option<u128>,
    /// Be an internet gateway: open TCP connections to the outside for mesh streams,
    /// advertised at this price (base units per KiB).
    #[arg(long, value_name = "N")]
    gateway_price: Option<u64>,
    /// Serve SOCKS5 here (loopback); its connections go through the mesh to the best
    /// gateway.
    #[arg(long, value_name = "ADDR")]
    socks_listen: Option<SocketAddr>,
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
    mesh_price: Option<u64>,
    mesh_settle_threshold: Option<u128>,
    mesh_credit_limit: Option<u128>,
    gateway_price: Option<u64>,
    socks_listen: Option<SocketAddr>,
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
    mesh_price: u64,
    mesh_settle_threshold: Option<u128>,
    mesh_credit_limit: Option<u128>,
    gateway_price: Option<u64>,
    socks_listen: Option<SocketAddr>,
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
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    let line = e.span().map(|span| {
                        let before = text.get(..span.start).unwrap_or_default();
                        let number = before.matches('\n').count() + 1;
                        let shown: String = text
                            .lines()
                            .nth(number - 1)
                            .unwrap_or_default()
                            .trim()
                            .chars()
                            .take(80)
                            .collect();
                        (number, shown)
                    });
                    match line {
                        Some((number, shown)) => format!(
                            "config {} line {number} ({shown}): {}",
                            path.display(),
                            e.message()
                        ),
                        None => format!("config {}: {}", path.display(), e.message()),
                    }
                })?
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
            mesh_price: self.mesh_price.or(file.mesh_price).unwrap_or(0),
            mesh_settle_threshold: self.mesh_settle_threshold.or(file.mesh_settle_threshold),
            mesh_credit_limit: self.mesh_credit_limit.or(file.mesh_credit_limit),
            gateway_price: self.gateway_price.or(file.gateway_price),
            socks_listen: self.socks_listen.or(file.socks_listen),
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

/// Chain ids of development chains (ours and Hardhat/Anvil): the only chains a
/// publicly known development key may be used on, and where events need no burial.
const DEV_CHAIN_IDS: [u64; 2] = [1337, 31337];

async fn chain(settings: &Settings, key: &PrivateKey) -> Result<ChainSetup, String> {
    match &settings.eth_rpc {
        Some(url) => {
            let path = settings.deployment.as_ref().ok_or("no deployment file")?;
            let deployment = Deployment::read(path).map_err(|e| e.to_string())?;
            let chain_id = deployment.chain_id.0;
            let dev_chain = DEV_CHAIN_IDS.contains(&chain_id);
            if settings.dev_key.is_some() && !dev_chain {
                return Err(format!(
                    "--dev-key uses a publicly known development key: refused on chain id {chain_id} \
                     (development chains are 1337 and 31337); use --keystore"
                ));
            }
            let config = if dev_chain {
                RpcConfig::dev(url.clone(), settings.confirmations.unwrap_or(0))
            } else {
                let defaults = RpcConfig::new(url.clone());
                RpcConfig {
                    confirmations: settings.confirmations.unwrap_or(defaults.confirmations),
                    ..defaults
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
            // The embedded chain's deployer (dev account 0) holds the SMT supply: any
            // other identity gets SMT at genesis, and ether when it is not a funded dev
            // account.
            let deployer = smartmesh_chain::embedded::dev_keys(1)
                .pop()
                .ok_or("no development account")?;
            let mut deploy = DeployConfig::default();
            if key.address() != deployer.address() {
                let smt = U256::from(EMBEDDED_GRANT_SMT)
                    .checked_mul(U256::from(10u64).pow(U256::from(18u64)))
                    .ok_or("embedded grant overflows")?;
                deploy.grants.push(Grant {
                    to: key.address(),
                    amount: smt,
                });
            }
            let config = EmbeddedConfig {
                deploy: Some(deploy),
                ..EmbeddedConfig::default()
            };
            let chain = EmbeddedChain::new(config).map_err(|e| format!("embedded chain: {e}"))?;
            let deployment = chain
                .deployment()
                .ok_or("the embedded chain has no contracts")?;
            if !chain
                .dev_keys()
                .iter()
                .any(|k| k.address() == key.address())
            {
                let ether = U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64));
                chain.fund(key.address(), ether);
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
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Takes `<data-dir>/node.lock` for the life of the process, so a second node on the
/// same directory stops before it starts anything (links, API) or touches `node.json`.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    let path = data_dir.join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            let running = std::fs::read_to_string(node_file(data_dir))
                .ok()
                .and_then(|t| serde_json::from_str::<NodeFile>(&t).ok())
                .map(|f| format!(" (pid {}, API {})", f.pid, f.api_url))
                .unwrap_or_default();
            Err(format!(
                "data directory {} is in use by another smartmesh node{running}",
                data_dir.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// How often sync progress is logged while the node catches up with the chain.
const SYNC_PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Logs chain status changes in plain words, and sync progress while syncing.
fn watch_chain(node: NodeHandle) {
    let mut notifications = node.subscribe();
    tokio::spawn(async move {
        // Notifications follow commits, so the start-up `ChainReachable` usually
        // arrives here too; the status changes are logged in the order applied.
        let mut last: Option<ChainStatus> = None;
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + SYNC_PROGRESS_EVERY,
            SYNC_PROGRESS_EVERY,
        );
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut logged_block = None;
        loop {
            let applied = tokio::select! {
                received = notifications.recv() => match received {
                    Ok(a) => a,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                _ = progress.tick() => {
                    if last == Some(ChainStatus::Syncing) {
                        let scanned = *node.chain_access().scanned.borrow();
                        if logged_block != Some(scanned) {
                            logged_block = Some(scanned);
                            let head = head_block(&node).await;
                            tracing::info!("syncing: block {scanned} of {head}");
                        }
                    }
                    continue;
                }
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
            // Progress lines follow only once the scan moved past where it started.
            logged_block = Some(*node.chain_access().scanned.borrow());
            log_status(&node, status).await;
        }
    });
}

async fn head_block(node: &NodeHandle) -> String {
    match node.chain_access().chain.head().await {
        Ok(head) => head.number.0.to_string(),
        Err(_) => "?".into(),
    }
}

async fn log_status(node: &NodeHandle, status: ChainStatus) {
    let queued = node.query(|s| s.pending_onchain.len()).await.unwrap_or(0);
    match status {
        ChainStatus::Unreachable => tracing::warn!(
            "chain unreachable: payments over open channels continue, {queued} on-chain actions queued"
        ),
        ChainStatus::Syncing => {
            let scanned = *node.chain_access().scanned.borrow();
            let head = head_block(node).await;
            tracing::info!("chain reachable: syncing from block {scanned} to {head}");
        }
        ChainStatus::Synced => {
            tracing::info!("chain synced: {queued} queued on-chain actions go out")
        }
    }
}

/// Runs `smartmesh node` until SIGINT or SIGTERM.
pub async fn run(args: NodeArgs) -> Result<(), String> {
    // Signals are caught from the start, so a stop during start-up is orderly too.
    let mut stop = Stop::install()?;
    let settings = args.settings()?;
    let key = identity(&settings)?;
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
    let _lock = lock_data_dir(&settings.data_dir)?;
    let (setup, links, node) = tokio::select! {
        started = start_node(&settings, &key) => started?,
        _ = stop.wait() => return Err("stopped during start-up".into()),
    };
    watch_chain(node.clone());
    let node_json = node_file(&settings.data_dir);
    let served = serve(
        &settings, &setup, &key, &node, &links, &node_json, &mut stop,
    )
    .await;
    if served.is_ok() {
        tracing::info!("stopping");
    }
    let _ = std::fs::remove_file(&node_json);
    let stopped = tokio::time::timeout(Duration::from_secs(10), node.shutdown()).await;
    links.shutdown().await;
    served?;
    match stopped {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the node did not stop within 10 s".into()),
    }
}

/// The chain, the links and the node runtime, in that order (the data directory is
/// already locked).
async fn start_node(
    settings: &Settings,
    key: &PrivateKey,
) -> Result<(ChainSetup, P2pNode, NodeHandle), String> {
    let setup = chain(settings, key).await?;
    let bounds = (
        setup.deployment.min_settle_timeout,
        setup.deployment.max_settle_timeout,
    );
    if let Some(timeout) = settings.settle_timeout
        && !(bounds.0..=bounds.1).contains(&timeout)
    {
        return Err(format!(
            "--settle-timeout {timeout}: this token network allows {} to {} seconds",
            bounds.0, bounds.1
        ));
    }
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
        key,
        P2pConfig {
            listen: settings.listen.clone(),
            static_peers: settings.peers.clone(),
            mdns: settings.mdns,
            ..P2pConfig::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    match smartmesh_node::start(
        config,
        setup.chain.clone(),
        Arc::new(links.clone()),
        inbound,
        Arc::new(SystemClock),
    )
    .await
    {
        Ok(node) => Ok((setup, links, node)),
        Err(e) => {
            links.shutdown().await;
            Err(format!("cannot start the node: {e}"))
        }
    }
}

/// Sets our fee, starts the API, announces the node (node.json, the `ready` line) and
/// waits for a stop signal; the API is stopped before this returns.
async fn serve(
    settings: &Settings,
    setup: &ChainSetup,
    key: &PrivateKey,
    node: &NodeHandle,
    links: &P2pNode,
    node_json: &Path,
    stop: &mut Stop,
) -> Result<(), String> {
    if settings.fee_flat.is_some() || settings.fee_ppm.is_some() {
        let fee = smartmesh_engine::FeeSchedule {
            flat: TokenAmount::from_u128(settings.fee_flat.unwrap_or(0)),
            proportional_ppm: settings.fee_ppm.unwrap_or(0),
        };
        node.set_fee_schedule(key.address(), fee)
            .await
            .map_err(|e| format!("cannot set our fee: {e}"))?;
    }
    let token = smartmesh_api::load_or_create_token(&settings.data_dir.join("api-token"))
        .map_err(|e| e.to_string())?;
    let mesh_inbound = links
        .take_mesh_inbound()
        .ok_or("the mesh links were already taken")?;
    let defaults = smartmesh_mesh_service::MeshConfig::default();
    let mesh = smartmesh_mesh_service::start(
        key.clone(),
        smartmesh_mesh_service::MeshConfig {
            price_per_kib: settings.mesh_price,
            receipt_domain: smartmesh_mesh::receipt_domain(
                setup.deployment.chain_id.0,
                setup.deployment.token_network,
            ),
            settle_threshold: settings
                .mesh_settle_threshold
                .unwrap_or(defaults.settle_threshold),
            credit_limit: settings.mesh_credit_limit.unwrap_or(defaults.credit_limit),
            gateway_price: settings.gateway_price,
            ..defaults
        },
        Arc::new(links.clone()),
        mesh_inbound,
        Some(Arc::new(node.clone())),
    )
    .map_err(|e| format!("cannot start the mesh: {e}"))?;
    let socks = match settings.socks_listen {
        Some(addr) if !addr.ip().is_loopback() => {
            return Err(format!(
                "--socks-listen {addr}: SOCKS5 is served on loopback only (it spends our SMT)"
            ));
        }
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot serve SOCKS5 on {addr}: {e}"))?;
            let bound = listener
                .local_addr()
                .map_err(|e| format!("SOCKS5 listener: {e}"))?;
            tracing::info!(
                "SOCKS5 on {bound}: connections go through the mesh to the best gateway"
            );
            Some((
                bound,
                tokio::spawn(smartmesh_mesh_service::serve_socks(listener, mesh.clone())),
            ))
        }
        None => None,
    };
    let api = smartmesh_api::start_with_mesh(
        ApiConfig {
            listen: settings.api_listen,
            token,
            chain_endpoint: setup.endpoint.clone(),
            default_settle_timeout: settings.settle_timeout,
            ..ApiConfig::default()
        },
        node.clone(),
        Arc::new(Links(links.clone())),
        Some(mesh),
    )
    .await
    .map_err(|e| format!("cannot start the API on {}: {e}", settings.api_listen))?;
    let file = NodeFile {
        address: key.address(),
        peer_id: links.peer_id(),
        api_url: api.url(),
        listen_addrs: links.listen_addrs(),
        pid: std::process::id(),
    };
    let announced = serde_json::to_string_pretty(&file)
        .map_err(|e| e.to_string())
        .and_then(|text| write_atomically(node_json, &text));
    if let Err(e) = announced {
        api.stop().await;
        return Err(e);
    }
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
        if let Some((bound, _)) = &socks {
            let _ = writeln!(out, "socks {bound}");
        }
        let _ = out.flush();
    }
    stop.wait().await;
    if let Some((_, task)) = socks {
        task.abort();
    }
    api.stop().await;
    Ok(())
}

/// SIGINT and SIGTERM.
struct Stop {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Stop {
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
        let int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot catch SIGINT: {e}"))?;
        Ok(Self { term, int })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
