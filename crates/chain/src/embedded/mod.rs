//! An Ethereum chain in-process: revm over an in-memory database, funded development
//! accounts, the SmartMesh contracts deployed at genesis, blocks on demand or on an
//! interval.
//!
//! [`EmbeddedChain`] has a synchronous core (fast: no sleeping, no runtime needed) that
//! tests and the gas report use directly, and implements [`Chain`] on top of it.
//! [`crate::devchain`] serves it over JSON-RPC.
//!
//! # Rules of this chain
//!
//! * Current mainnet rules (revm's default spec, Osaka): the per-transaction gas limit
//!   is 2^24 ([`TX_GAS_CAP`]); blocks have a 30M gas limit ([`BLOCK_GAS_LIMIT`]).
//! * The base fee is fixed at 1 gwei ([`BASE_FEE`]) and gas is charged for real, so
//!   balances move as on a real chain. Priority fees go to the zero address (coinbase).
//! * Block timestamps: `max(previous + 1, clock)`, where the clock is the genesis time
//!   plus the wall-clock seconds since [`EmbeddedChain::new`] plus the offset moved by
//!   [`EmbeddedChain::advance_clock`] / [`EmbeddedChain::increase_time`]; or exactly the
//!   time set with [`EmbeddedChain::set_next_block_timestamp`].
//! * [`Mining::Instant`]: every successful transaction is mined in its own new block.
//! * In-process transactions ([`EmbeddedChain::execute`], [`Chain::send`]) that revert
//!   or halt are **not included**: the error is returned, and nothing changes (no
//!   nonce, no gas), as when a client's gas estimation refuses to send. Their errors
//!   carry no `tx_hash`, since nothing was mined.
//! * Signed transactions ([`EmbeddedChain::execute_signed_raw`], the devchain's
//!   `eth_sendRawTransaction`) that revert are included with status 0, consuming the
//!   nonce and the gas, as on any Ethereum node: the signer already committed to them.
//! * In-process transactions are unsigned. Their hash is a keccak over the chain id,
//!   sender, nonce and content; over RPC they appear as EIP-1559 transactions with a
//!   zero signature.
//! * State root, transactions root and receipts root in headers are not Merkle tries;
//!   block hashes are the keccak of the RLP header, unique per block (a block mined
//!   after [`EmbeddedChain::revert_to`] never reuses the hash of the block it replaced).

mod engine;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::consensus::{Header, Transaction as _, TxEnvelope};
use alloy::eips::Typed2718;
use alloy::eips::eip2718::Decodable2718;
use async_trait::async_trait;
use smartmesh_primitives::{
    Address, B256, BlockNumber, Bytes, ChainId, ChainTime, PrivateKey, U256,
};

use crate::deploy::{DeployConfig, Deployment};
use crate::{
    CallRequest, Chain, ChainError, ChainEvent, ChainHead, EventBatch, EventCursor, EventFilter,
    TxReceipt, TxRequest,
};
use engine::{Engine, Outcome, Pending, TxSource, Waiter};

/// The well-known development mnemonic (Hardhat, Anvil, Foundry).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// Gas limit of every block.
pub const BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// The fixed base fee per gas, in wei (1 gwei).
pub const BASE_FEE: u64 = 1_000_000_000;
/// Per-transaction gas limit cap under Osaka (EIP-7825).
pub const TX_GAS_CAP: u64 = 1 << 24;
/// The endpoint named in [`ChainError::Unreachable`] errors of the embedded chain.
pub const ENDPOINT: &str = "embedded";

/// When blocks are mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mining {
    /// Every transaction is mined at once in its own block.
    #[default]
    Instant,
    /// Transactions wait in a pool; a background task (spawned on the tokio runtime
    /// current at [`EmbeddedChain::new`], if any) mines a block every interval, empty or
    /// not. Without a runtime, blocks are mined by [`EmbeddedChain::mine`] and by
    /// [`EmbeddedChain::execute`].
    Interval(Duration),
}

/// How to build an [`EmbeddedChain`].
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// EIP-155 chain id (default 1337).
    pub chain_id: ChainId,
    /// How many development accounts to fund, derived from [`DEV_MNEMONIC`] (default 10).
    pub dev_accounts: usize,
    /// Balance of each development account (default 10,000 ether).
    pub dev_balance: U256,
    /// Timestamp of the genesis block (default: the wall clock at creation).
    pub genesis_time: Option<ChainTime>,
    /// When blocks are mined (default instant).
    pub mining: Mining,
    /// Contracts to deploy at genesis, from development account 0 (default none).
    pub deploy: Option<DeployConfig>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            chain_id: ChainId(1337),
            dev_accounts: 10,
            dev_balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            genesis_time: None,
            mining: Mining::Instant,
            deploy: None,
        }
    }
}

impl EmbeddedConfig {
    /// The default configuration with the SmartMesh contracts deployed at genesis.
    pub fn with_contracts() -> Self {
        Self {
            deploy: Some(DeployConfig::default()),
            ..Self::default()
        }
    }
}

/// A mined block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedBlock {
    /// Height.
    pub number: u64,
    /// Hash (keccak of the RLP header).
    pub hash: B256,
    /// Hash of the parent block (zero for genesis).
    pub parent_hash: B256,
    /// `block.timestamp`.
    pub timestamp: u64,
    /// Gas used by all its transactions.
    pub gas_used: u64,
    /// Its transactions, in order.
    pub tx_hashes: Vec<B256>,
    /// The full header, as served over RPC.
    pub header: Header,
}

/// A mined transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedTransaction {
    /// Transaction hash.
    pub hash: B256,
    /// Sender.
    pub from: Address,
    /// The transaction; for in-process transactions an EIP-1559 envelope with a zero
    /// signature (see the module docs).
    pub envelope: TxEnvelope,
    /// Whether `envelope` carries a real signature.
    pub signed: bool,
    /// Block height.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp.
    pub block_time: u64,
    /// Index in the block.
    pub index: u64,
    /// Wei paid per gas.
    pub effective_gas_price: u128,
}

/// The receipt of a mined transaction (including failed signed ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedReceipt {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block height.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp.
    pub block_time: u64,
    /// Index in the block.
    pub transaction_index: u64,
    /// Sender.
    pub from: Address,
    /// Recipient, `None` for deployments.
    pub to: Option<Address>,
    /// Created contract, for deployments.
    pub contract_address: Option<Address>,
    /// Status 1 (`true`) or 0.
    pub success: bool,
    /// Gas used after refunds.
    pub gas_used: u64,
    /// Gas used in the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Wei paid per gas.
    pub effective_gas_price: u128,
    /// EIP-2718 type (0 legacy, 1, 2).
    pub tx_type: u8,
    /// Logs, in order, located in the chain.
    pub logs: Vec<ChainEvent>,
    /// Revert data of a failed transaction (empty otherwise).
    pub revert_data: Bytes,
}

impl EmbeddedReceipt {
    /// The receipt as the [`Chain`] interface reports it.
    pub fn to_tx_receipt(&self) -> TxReceipt {
        TxReceipt {
            tx_hash: self.tx_hash,
            block_number: BlockNumber(self.block_number),
            gas_used: self.gas_used,
            contract_address: self.contract_address,
            logs: self.logs.clone(),
        }
    }
}

/// A log found by [`EmbeddedChain::logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The log, located in the chain.
    pub event: ChainEvent,
    /// Index of its transaction in the block.
    pub transaction_index: u64,
}

/// The private keys of the first `count` development accounts, derived from
/// [`DEV_MNEMONIC`] at `m/44'/60'/0'/0/i` exactly as Hardhat and Anvil do.
pub fn dev_keys(count: usize) -> Vec<PrivateKey> {
    static CACHE: OnceLock<Mutex<Vec<[u8; 32]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut keys = cache.lock().unwrap_or_else(|p| p.into_inner());
    if keys.len() < count {
        use alloy::signers::local::{MnemonicBuilder, coins_bip39::English};
        let parent = MnemonicBuilder::<English>::default()
            .phrase(DEV_MNEMONIC)
            .derivation_path("m/44'/60'/0'/0/0")
            .and_then(|b| b.build_parent_key())
            .expect("the development mnemonic and path are valid");
        for index in keys.len()..count {
            let index = u32::try_from(index).expect("fewer than 2^31 development accounts");
            let signer = parent
                .child(index)
                .expect("non-hardened child derivation")
                .signer();
            keys.push(signer.to_bytes().0);
        }
    }
    keys[..count]
        .iter()
        .map(|bytes| PrivateKey::from_bytes(bytes).expect("derived keys are valid"))
        .collect()
}

struct Shared {
    engine: Mutex<Engine>,
    reachable: AtomicBool,
    mining: Mining,
    miner_running: AtomicBool,
    dev_keys: Vec<PrivateKey>,
}

/// An in-process Ethereum chain. Cheap to clone; clones share the chain.
#[derive(Clone)]
pub struct EmbeddedChain {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = self.head();
        f.debug_struct("EmbeddedChain")
            .field("chain_id", &self.chain_id_sync())
            .field("head", &head.number)
            .field("mining", &self.shared.mining)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unreachable() -> ChainError {
    ChainError::Unreachable {
        endpoint: ENDPOINT.to_owned(),
        reason: "the embedded chain is set unreachable (simulated outage)".to_owned(),
    }
}

/// Hands the outcome of a mined (or dropped) queued transaction to its waiter.
fn notify(item: Pending, result: Result<TxReceipt, ChainError>) {
    if let Some(waiter) = item.waiter {
        waiter(result);
    }
}

/// Mines one block from the pool (and `extra`, after it), notifying waiters; items
/// that do not fit stay queued in order.
fn mine_pool(engine: &mut Engine, extra: Option<Pending>, force: bool) -> Vec<(Outcome, bool)> {
    let mut items: Vec<Pending> = engine.pending.drain(..).collect();
    let has_extra = extra.is_some();
    items.extend(extra);
    let count = items.len();
    let outcomes = engine.mine(items, force);
    let mut deferred = Vec::new();
    let mut extra_outcome = Vec::new();
    for (i, (item, outcome)) in outcomes.into_iter().enumerate() {
        let is_extra = has_extra && i + 1 == count;
        match outcome {
            Outcome::Deferred => {
                if is_extra {
                    extra_outcome.push((Outcome::Deferred, true));
                }
                deferred.push(item);
            }
            Outcome::Included {
                receipt,
                success,
                output,
            } => {
                let result = if success {
                    Ok(receipt.clone())
                } else {
                    Err(ChainError::Reverted {
                        reason: smartmesh_contracts::revert_reason(&output),
                        data: output.clone(),
                        tx_hash: Some(receipt.tx_hash),
                    })
                };
                notify(item, result);
                if is_extra {
                    extra_outcome.push((
                        Outcome::Included {
                            receipt,
                            success,
                            output,
                        },
                        true,
                    ));
                }
            }
            Outcome::Dropped(error) => {
                notify(item, Err(error.clone()));
                if is_extra {
                    extra_outcome.push((Outcome::Dropped(error), true));
                }
            }
        }
    }
    for item in deferred.into_iter().rev() {
        engine.pending.push_front(item);
    }
    extra_outcome
}

impl EmbeddedChain {
    /// Creates the chain: funds the development accounts and, if `config.deploy` is set,
    /// deploys the contracts from development account 0 (one block per transaction,
    /// starting at block 1).
    pub fn new(config: EmbeddedConfig) -> Result<Self, ChainError> {
        let keys = dev_keys(config.dev_accounts);
        let accounts: Vec<(Address, U256)> = keys
            .iter()
            .map(|key| (key.address(), config.dev_balance))
            .collect();
        let genesis_time = config.genesis_time.map_or_else(now_secs, |t| t.0);
        let engine = Engine::new(config.chain_id.0, genesis_time, &accounts);
        let chain = Self {
            shared: Arc::new(Shared {
                engine: Mutex::new(engine),
                reachable: AtomicBool::new(true),
                mining: config.mining,
                miner_running: AtomicBool::new(false),
                dev_keys: keys,
            }),
        };
        if let Some(deploy) = &config.deploy {
            chain.deploy_at_genesis(deploy)?;
        }
        if let Mining::Interval(interval) = config.mining {
            chain.spawn_miner(interval);
        }
        Ok(chain)
    }

    fn deploy_at_genesis(&self, config: &DeployConfig) -> Result<(), ChainError> {
        let deployer = self
            .shared
            .dev_keys
            .first()
            .ok_or_else(|| {
                ChainError::Invalid("deploying needs at least one development account".into())
            })?
            .address();
        let start_nonce = self.nonce(deployer);
        let plan = crate::deploy::plan(config, self.chain_id_sync(), deployer, start_nonce)?;
        let mut deployment = plan.deployment;
        for (i, tx) in plan.txs.into_iter().enumerate() {
            let expected = tx
                .to
                .is_none()
                .then(|| deployer.create(start_nonce + i as u64));
            let receipt = self.execute_now(deployer, tx).map_err(|e| match e {
                ChainError::Reverted { reason, .. } => ChainError::Invalid(format!(
                    "genesis deployment transaction {i} reverted: {}",
                    reason.as_deref().unwrap_or("without a reason")
                )),
                other => other,
            })?;
            if i == 0 {
                deployment.start_block = receipt.block_number;
            }
            if expected.is_some() && receipt.contract_address != expected {
                return Err(ChainError::Evm(format!(
                    "genesis deployment {i} created {:?}, expected {expected:?}",
                    receipt.contract_address
                )));
            }
        }
        self.lock().deployment = Some(deployment);
        Ok(())
    }

    fn spawn_miner(&self, interval: Duration) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no tokio runtime: the embedded chain mines on demand");
            return;
        };
        let interval = interval.max(Duration::from_millis(1));
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        self.shared.miner_running.store(true, Ordering::SeqCst);
        handle.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(shared) = weak.upgrade() else { break };
                let mut engine = shared.engine.lock().unwrap_or_else(|p| p.into_inner());
                mine_pool(&mut engine, None, true);
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic while holding the lock cannot leave the engine half-updated in a way
        // that matters more than losing the whole chain would.
        self.shared.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_reachable(&self) -> Result<(), ChainError> {
        if self.shared.reachable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(unreachable())
        }
    }

    fn interval_with_miner(&self) -> bool {
        matches!(self.shared.mining, Mining::Interval(_))
            && self.shared.miner_running.load(Ordering::SeqCst)
    }

    // ----- identity -----

    /// The EIP-155 chain id.
    pub fn chain_id_sync(&self) -> ChainId {
        ChainId(self.lock().chain_id)
    }

    /// How blocks are mined.
    pub fn mining(&self) -> Mining {
        self.shared.mining
    }

    /// Private keys of the funded development accounts, in order.
    pub fn dev_keys(&self) -> Vec<PrivateKey> {
        self.shared.dev_keys.clone()
    }

    /// Addresses of the funded development accounts, in order.
    pub fn dev_accounts(&self) -> Vec<Address> {
        self.shared
            .dev_keys
            .iter()
            .map(PrivateKey::address)
            .collect()
    }

    /// Where the genesis deployment put the contracts, if one was configured.
    pub fn deployment(&self) -> Option<Deployment> {
        self.lock().deployment.clone()
    }

    // ----- transactions -----

    /// Executes `request` as `from` (no signature needed) and returns its receipt once
    /// mined. Nonce, balance and gas are checked as on a real chain; without a gas limit
    /// the transaction runs with as much gas as it may use and is charged what it used
    /// after refunds. A revert is [`ChainError::Reverted`] and changes nothing.
    ///
    /// With [`Mining::Interval`] and a running background miner this blocks the calling
    /// thread until the next block; from async code use [`EmbeddedChain::send_as`].
    pub fn execute(&self, from: Address, request: TxRequest) -> Result<TxReceipt, ChainError> {
        if self.interval_with_miner() {
            let (tx, rx) = std::sync::mpsc::channel();
            let waiter: Waiter = Box::new(move |result| {
                let _ = tx.send(result);
            });
            self.lock().pending.push_back(Pending {
                from,
                source: TxSource::Local { request },
                waiter: Some(waiter),
            });
            return rx
                .recv_timeout(self.inclusion_timeout())
                .map_err(|_| ChainError::NotIncluded(B256::ZERO))?;
        }
        self.execute_now(from, request)
    }

    /// Mines `request` now, with whatever is queued ahead of it.
    fn execute_now(&self, from: Address, request: TxRequest) -> Result<TxReceipt, ChainError> {
        let item = Pending {
            from,
            source: TxSource::Local { request },
            waiter: None,
        };
        let mut engine = self.lock();
        match mine_pool(&mut engine, Some(item), false).pop() {
            Some((
                Outcome::Included {
                    receipt,
                    success: true,
                    ..
                },
                _,
            )) => Ok(receipt),
            Some((
                Outcome::Included {
                    receipt, output, ..
                },
                _,
            )) => Err(ChainError::Reverted {
                reason: smartmesh_contracts::revert_reason(&output),
                data: output,
                tx_hash: Some(receipt.tx_hash),
            }),
            Some((Outcome::Dropped(error), _)) => Err(error),
            Some((Outcome::Deferred, _)) | None => {
                // Only possible behind a full pool: take it back out and mine again.
                let item = engine.pending.pop_back();
                drop(item);
                Err(ChainError::Rejected("the block is full; retry".into()))
            }
        }
    }

    fn inclusion_timeout(&self) -> Duration {
        match self.shared.mining {
            Mining::Interval(interval) => (interval * 20).max(Duration::from_secs(60)),
            Mining::Instant => Duration::from_secs(60),
        }
    }

    /// Like [`EmbeddedChain::execute`] but waits asynchronously in interval mode.
    pub async fn send_as(
        &self,
        from: Address,
        request: TxRequest,
    ) -> Result<TxReceipt, ChainError> {
        if !self.interval_with_miner() {
            return self.execute_now(from, request);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter: Waiter = Box::new(move |result| {
            let _ = tx.send(result);
        });
        self.lock().pending.push_back(Pending {
            from,
            source: TxSource::Local { request },
            waiter: Some(waiter),
        });
        match tokio::time::timeout(self.inclusion_timeout(), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(ChainError::NotIncluded(B256::ZERO)),
        }
    }

    /// Accepts a signed EIP-2718 transaction (legacy with EIP-155, EIP-2930, EIP-1559):
    /// recovers the signer, checks the chain id and nonce, and mines it (instant mode)
    /// or queues it (interval mode). A signed transaction that reverts is mined with
    /// status 0. Returns its hash.
    pub fn execute_signed_raw(&self, raw: &[u8]) -> Result<B256, ChainError> {
        let mut slice = raw;
        let envelope = TxEnvelope::decode_2718(&mut slice)
            .map_err(|e| ChainError::Rejected(format!("cannot decode transaction: {e}")))?;
        if !slice.is_empty() {
            return Err(ChainError::Rejected(
                "trailing bytes after the transaction".into(),
            ));
        }
        if !matches!(
            envelope,
            TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_)
        ) {
            return Err(ChainError::Rejected(format!(
                "transaction type {} is not supported by the embedded chain",
                envelope.ty()
            )));
        }
        let chain_id = self.chain_id_sync().0;
        match envelope.chain_id() {
            None => {
                return Err(ChainError::Rejected(
                    "only replay-protected (EIP-155) transactions allowed".into(),
                ));
            }
            Some(id) if id != chain_id => {
                return Err(ChainError::Rejected(format!(
                    "invalid chain id {id}, this chain is {chain_id}"
                )));
            }
            Some(_) => {}
        }
        let signature =
            smartmesh_primitives::Signature::from_slice(&envelope.signature().as_bytes())
                .map_err(|e| ChainError::Rejected(format!("invalid signature: {e}")))?;
        let from = smartmesh_primitives::recover_signer(&envelope.signature_hash(), &signature)
            .map_err(|e| ChainError::Rejected(format!("invalid signature: {e}")))?;
        let hash = *envelope.tx_hash();
        let mut engine = self.lock();
        if engine.knows(&hash) || engine.pending.iter().any(|p| matches!(&p.source, TxSource::Signed { envelope } if *envelope.tx_hash() == hash)) {
            return Err(ChainError::Rejected("already known".into()));
        }
        let expected = engine.pending_nonce(from);
        let nonce = envelope.nonce();
        if nonce < expected {
            return Err(ChainError::Rejected(format!(
                "nonce too low: next nonce {expected}, tx nonce {nonce}"
            )));
        }
        if nonce > expected {
            return Err(ChainError::Rejected(format!(
                "nonce too high: next nonce {expected}, tx nonce {nonce}"
            )));
        }
        let item = Pending {
            from,
            source: TxSource::Signed {
                envelope: Box::new(envelope),
            },
            waiter: None,
        };
        if self.interval_with_miner() {
            if let TxSource::Signed { envelope } = &item.source {
                let cost = U256::from(envelope.gas_limit())
                    .saturating_mul(U256::from(envelope.max_fee_per_gas()))
                    .saturating_add(envelope.value());
                let balance = engine.balance(from);
                if cost > balance {
                    return Err(ChainError::Rejected(format!(
                        "insufficient funds for gas * price + value: balance {balance}, tx cost {cost}"
                    )));
                }
                if envelope.gas_limit() > TX_GAS_CAP {
                    return Err(ChainError::Rejected(format!(
                        "gas limit {} exceeds the cap {TX_GAS_CAP}",
                        envelope.gas_limit()
                    )));
                }
            }
            engine.pending.push_back(item);
            return Ok(hash);
        }
        match mine_pool(&mut engine, Some(item), false).pop() {
            Some((Outcome::Included { .. }, _)) => Ok(hash),
            Some((Outcome::Dropped(error), _)) => Err(error),
            Some((Outcome::Deferred, _)) | None => Ok(hash), // queued for the next block
        }
    }

    // ----- calls -----

    /// Executes a read-only call against the newest block (`eth_call` on `latest`).
    pub fn call_sync(&self, request: CallRequest) -> Result<Bytes, ChainError> {
        let from = request.from.unwrap_or(Address::ZERO);
        self.lock()
            .call(from, Some(request.to), request.data, U256::ZERO, None)
    }

    /// A call with every field `eth_call` has: `to = None` runs creation code.
    pub fn call_raw(
        &self,
        from: Address,
        to: Option<Address>,
        data: Bytes,
        value: U256,
        gas_limit: Option<u64>,
    ) -> Result<Bytes, ChainError> {
        self.lock().call(from, to, data, value, gas_limit)
    }

    /// The gas limit `request` needs as `from` in the next block (binary search, within
    /// 1.5% like geth). `request.gas_limit` caps the search. A revert is an error.
    pub fn estimate_gas(&self, from: Address, request: &TxRequest) -> Result<u64, ChainError> {
        self.lock().estimate_gas(
            from,
            request.to,
            request.data.clone(),
            request.value,
            request.gas_limit,
        )
    }

    // ----- state -----

    /// The newest block.
    pub fn head(&self) -> ChainHead {
        self.lock().head()
    }

    /// Ether balance in wei.
    pub fn balance(&self, address: Address) -> U256 {
        self.lock().balance(address)
    }

    /// Nonce in the newest state (`eth_getTransactionCount` on `latest`).
    pub fn nonce(&self, address: Address) -> u64 {
        self.lock().nonce(address)
    }

    /// Nonce counting queued transactions too (`pending`).
    pub fn pending_nonce(&self, address: Address) -> u64 {
        self.lock().pending_nonce(address)
    }

    /// Runtime code (empty for accounts without code).
    pub fn code(&self, address: Address) -> Bytes {
        self.lock().code(address)
    }

    /// A storage slot.
    pub fn storage_at(&self, address: Address, slot: U256) -> U256 {
        self.lock().storage_at(address, slot)
    }

    /// Number of transactions waiting for a block.
    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    // ----- history -----

    /// Block by height.
    pub fn block(&self, number: u64) -> Option<EmbeddedBlock> {
        self.lock().block(number)
    }

    /// Block by hash.
    pub fn block_by_hash(&self, hash: B256) -> Option<EmbeddedBlock> {
        self.lock().block_by_hash(hash)
    }

    /// Receipt of a mined transaction.
    pub fn receipt(&self, tx_hash: B256) -> Option<EmbeddedReceipt> {
        self.lock().receipt(tx_hash)
    }

    /// A mined transaction.
    pub fn transaction(&self, tx_hash: B256) -> Option<EmbeddedTransaction> {
        self.lock().transaction(tx_hash)
    }

    /// Logs of blocks `from_block..=to_block` from any of `addresses` (all, if empty)
    /// whose topics match `topics` position by position (`None` matches anything, a set
    /// matches any of its members). At most 100,000 logs per query.
    pub fn logs(
        &self,
        from_block: u64,
        to_block: u64,
        addresses: &[Address],
        topics: &[Option<Vec<B256>>],
    ) -> Result<Vec<LogEntry>, ChainError> {
        self.lock()
            .logs(from_block, to_block, addresses, topics, 100_000)
    }

    /// Contract events after `cursor` (confirmation depth 0), as [`Chain::events_since`].
    /// `filter.max_blocks == 0` means no limit. A cursor whose `last_hash` no longer
    /// matches block `next_block - 1` (after [`EmbeddedChain::revert_to`]) is
    /// [`ChainError::ReorgTooDeep`] at that block.
    pub fn events_since_sync(
        &self,
        cursor: &EventCursor,
        filter: &EventFilter,
    ) -> Result<EventBatch, ChainError> {
        let engine = self.lock();
        let head = engine.head().number.0;
        if let (Some(last_hash), Some(previous)) =
            (cursor.last_hash, cursor.next_block.0.checked_sub(1))
            && engine.block_hash(previous) != Some(last_hash)
        {
            return Err(ChainError::ReorgTooDeep {
                block: BlockNumber(previous),
            });
        }
        let start = cursor.next_block.0;
        if start > head {
            return Ok(EventBatch {
                events: Vec::new(),
                cursor: *cursor,
                final_block: BlockNumber(head),
                caught_up: true,
            });
        }
        let end = match filter.max_blocks {
            0 => head,
            n => head.min(start.saturating_add(n - 1)),
        };
        let events = engine
            .logs(start, end, &filter.addresses, &[], usize::MAX)?
            .into_iter()
            .map(|entry| entry.event)
            .collect();
        Ok(EventBatch {
            events,
            cursor: EventCursor {
                next_block: BlockNumber(end + 1),
                last_hash: engine.block_hash(end),
            },
            final_block: BlockNumber(head),
            caught_up: end >= head,
        })
    }

    // ----- development controls -----

    /// Moves the clock forward by `secs` and mines an empty block, so [`Chain::time`]
    /// moves at once. Returns the new head.
    pub fn increase_time(&self, secs: u64) -> ChainHead {
        let mut engine = self.lock();
        engine.advance_clock(secs);
        mine_pool(&mut engine, None, true);
        engine.head()
    }

    /// Moves the clock forward by `secs` without mining (Hardhat's `evm_increaseTime`);
    /// returns the total offset in seconds.
    pub fn advance_clock(&self, secs: u64) -> i64 {
        self.lock().advance_clock(secs)
    }

    /// The next block gets exactly this timestamp; the clock continues from it. It must
    /// be after the newest block's.
    pub fn set_next_block_timestamp(&self, timestamp: u64) -> Result<(), ChainError> {
        self.lock().set_next_block_timestamp(timestamp)
    }

    /// Mines a block with the queued transactions (an empty one if none) and returns the
    /// new head.
    pub fn mine(&self) -> ChainHead {
        let mut engine = self.lock();
        mine_pool(&mut engine, None, true);
        engine.head()
    }

    /// Saves state, blocks and clock; returns an id for [`EmbeddedChain::revert_to`].
    pub fn snapshot(&self) -> u64 {
        self.lock().snapshot()
    }

    /// Restores a snapshot: state, block history and clock, as `evm_revert` does. The
    /// snapshot and every later one are used up; queued transactions are dropped.
    /// Returns false if there is no such snapshot.
    pub fn revert_to(&self, id: u64) -> bool {
        let dropped = self.lock().revert_to(id);
        match dropped {
            Some(items) => {
                for item in items {
                    notify(
                        item,
                        Err(ChainError::Rejected("dropped by a snapshot revert".into())),
                    );
                }
                true
            }
            None => false,
        }
    }

    /// Adds `wei` to an account's balance.
    pub fn fund(&self, address: Address, wei: U256) {
        self.lock().fund(address, wei);
    }

    /// When false, every [`Chain`] method fails with [`ChainError::Unreachable`]
    /// (simulates being off the internet). The synchronous API keeps working.
    pub fn set_reachable(&self, reachable: bool) {
        self.shared.reachable.store(reachable, Ordering::SeqCst);
    }

    /// See [`EmbeddedChain::set_reachable`].
    pub fn is_reachable(&self) -> bool {
        self.shared.reachable.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Chain for EmbeddedChain {
    async fn chain_id(&self) -> Result<ChainId, ChainError> {
        self.check_reachable()?;
        Ok(self.chain_id_sync())
    }

    async fn head(&self) -> Result<ChainHead, ChainError> {
        self.check_reachable()?;
        Ok(EmbeddedChain::head(self))
    }

    async fn balance(&self, account: Address) -> Result<U256, ChainError> {
        self.check_reachable()?;
        Ok(EmbeddedChain::balance(self, account))
    }

    async fn nonce(&self, account: Address) -> Result<u64, ChainError> {
        self.check_reachable()?;
        Ok(self.pending_nonce(account))
    }

    async fn call(&self, request: CallRequest) -> Result<Bytes, ChainError> {
        self.check_reachable()?;
        self.call_sync(request)
    }

    async fn send(&self, signer: &PrivateKey, request: TxRequest) -> Result<TxReceipt, ChainError> {
        self.check_reachable()?;
        self.send_as(signer.address(), request).await
    }

    async fn events_since(
        &self,
        cursor: &EventCursor,
        filter: &EventFilter,
    ) -> Result<EventBatch, ChainError> {
        self.check_reachable()?;
        self.events_since_sync(cursor, filter)
    }

    async fn time(&self) -> Result<ChainTime, ChainError> {
        self.check_reachable()?;
        Ok(EmbeddedChain::head(self).timestamp)
    }
}
