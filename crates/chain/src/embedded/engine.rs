//! The synchronous core of the embedded chain: one revm instance over an in-memory
//! database, the block history, the clock and the snapshots. Everything here runs under
//! the [`super::EmbeddedChain`] mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Instant;

use alloy::consensus::{
    EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header, Signed, Transaction as _, TxEip1559, TxEnvelope,
};
use alloy::eips::Typed2718;
use alloy::eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy::primitives::{
    Address, B64, B256, Bloom, Bytes, Log, Signature, TxKind, U256, keccak256,
};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{MainnetContext, MainnetEvm};
use revm::state::AccountInfo;
use revm::{Context, DatabaseRef, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

use crate::deploy::Deployment;
use crate::{ChainError, ChainEvent, ChainHead, TxReceipt, TxRequest};
use smartmesh_primitives::{BlockNumber, ChainTime};

use super::{
    BASE_FEE, BLOCK_GAS_LIMIT, EmbeddedBlock, EmbeddedReceipt, EmbeddedTransaction, LogEntry,
    TX_GAS_CAP,
};

pub(super) type Db = CacheDB<EmptyDB>;
type Evm = MainnetEvm<MainnetContext<Db>>;
type EvmError = EVMError<Infallible, InvalidTransaction>;

/// Called with the outcome of a queued transaction (interval mining).
pub(super) type Waiter = Box<dyn FnOnce(Result<TxReceipt, ChainError>) + Send>;

/// Where a transaction came from.
#[derive(Debug, Clone)]
pub(super) enum TxSource {
    /// Executed in-process as `from`, unsigned; the nonce is assigned at inclusion.
    Local { request: TxRequest },
    /// A signed EIP-2718 envelope.
    Signed { envelope: Box<TxEnvelope> },
}

/// A transaction waiting for a block (or being mined right now).
pub(super) struct Pending {
    pub from: Address,
    pub source: TxSource,
    pub waiter: Option<Waiter>,
}

/// What happened to one transaction offered to a block.
pub(super) enum Outcome {
    /// In the block (successful, or a signed transaction that failed with status 0).
    Included {
        receipt: TxReceipt,
        success: bool,
        output: Bytes,
    },
    /// Not in the block and never will be.
    Dropped(ChainError),
    /// Does not fit the block's remaining gas; try the next block.
    Deferred,
}

/// A mined transaction with its receipt data, stored compactly.
#[derive(Debug, Clone)]
struct StoredTx {
    hash: B256,
    from: Address,
    source: StoredSource,
    success: bool,
    gas_used: u64,
    cumulative_gas_used: u64,
    contract_address: Option<Address>,
    /// Index of the first log in the block.
    first_log_index: u64,
    logs: Vec<Log>,
    /// Revert data of a failed transaction (empty otherwise).
    revert_data: Bytes,
}

#[derive(Debug, Clone)]
enum StoredSource {
    Local {
        nonce: u64,
        gas_limit: u64,
        to: Option<Address>,
        value: U256,
        input: Bytes,
    },
    Signed(Box<TxEnvelope>),
}

#[derive(Debug, Clone)]
struct StoredBlock {
    hash: B256,
    header: Header,
    txs: Vec<StoredTx>,
}

/// A saved state for `revert_to`.
struct Snapshot {
    db: Db,
    block_count: usize,
    time_offset: i64,
    next_timestamp: Option<u64>,
}

/// Chain time: the genesis time plus the wall-clock seconds since start plus an offset
/// moved by `increase_time` / `set_next_block_timestamp`.
struct Clock {
    genesis_time: u64,
    started: Instant,
    offset: i64,
    next_timestamp: Option<u64>,
}

impl Clock {
    fn now(&self) -> u64 {
        let t = self.genesis_time as i128
            + self.started.elapsed().as_secs() as i128
            + self.offset as i128;
        t.clamp(0, u64::MAX as i128) as u64
    }
}

/// Block environment choice for simulations.
#[derive(Clone, Copy)]
enum SimBlock {
    /// The newest mined block (what `eth_call` on `latest` sees).
    Latest,
    /// The block that would be mined next (for gas estimation).
    Pending,
}

pub(super) struct Engine {
    /// The state. Moved into a short-lived EVM for each block or simulation (revm's
    /// EVM is not `Send`, so it cannot live behind the shared mutex).
    db: Db,
    cfg: CfgEnv,
    pub chain_id: u64,
    blocks: Vec<StoredBlock>,
    tx_index: HashMap<B256, (usize, usize)>,
    clock: Clock,
    snapshots: BTreeMap<u64, Snapshot>,
    next_snapshot_id: u64,
    /// Bumped on every `revert_to`, mixed into new blocks so that a block mined after a
    /// revert never has the hash of the block it replaced.
    fork: u64,
    pub pending: VecDeque<Pending>,
    pub deployment: Option<Deployment>,
}

fn evm_error(error: EvmError) -> ChainError {
    match error {
        EVMError::Transaction(invalid) => ChainError::Rejected(invalid.to_string()),
        EVMError::Header(header) => ChainError::Evm(format!("invalid block header: {header}")),
        other => ChainError::Evm(other.to_string()),
    }
}

/// The error of a failed execution: a revert with its data, or a halt (out of gas, ...)
/// named by the halt reason.
fn failure_error(result: &ExecutionResult) -> ChainError {
    match result {
        ExecutionResult::Revert { output, .. } => ChainError::reverted(output.clone(), None),
        ExecutionResult::Halt { reason, .. } => ChainError::Reverted {
            reason: Some(format!("{reason:?}")),
            data: Bytes::new(),
            tx_hash: None,
        },
        ExecutionResult::Success { .. } => ChainError::Evm("not a failure".into()),
    }
}

/// Hash of an unsigned in-process transaction: unique per chain, sender and nonce, and
/// covering the content so a different transaction re-sent after a revert differs.
fn local_tx_hash(chain_id: u64, from: Address, nonce: u64, request: &TxRequest) -> B256 {
    let mut buf = Vec::with_capacity(128 + request.data.len());
    buf.extend_from_slice(b"smartmesh-embedded-tx");
    buf.extend_from_slice(&chain_id.to_be_bytes());
    buf.extend_from_slice(from.as_slice());
    buf.extend_from_slice(&nonce.to_be_bytes());
    match request.to {
        Some(to) => buf.extend_from_slice(to.as_slice()),
        None => buf.push(0),
    }
    buf.extend_from_slice(&request.value.to_be_bytes::<32>());
    buf.extend_from_slice(&request.data);
    keccak256(&buf)
}

fn block_env(number: u64, timestamp: u64, basefee: u64, prevrandao: B256) -> BlockEnv {
    BlockEnv {
        number: U256::from(number),
        beneficiary: Address::ZERO,
        timestamp: U256::from(timestamp),
        gas_limit: BLOCK_GAS_LIMIT,
        basefee,
        difficulty: U256::ZERO,
        prevrandao: Some(prevrandao),
        ..BlockEnv::default()
    }
}

fn tx_env_from_envelope(envelope: &TxEnvelope, from: Address) -> Result<TxEnv, ChainError> {
    let (gas_price, priority) = match envelope {
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) => (envelope.max_fee_per_gas(), None),
        TxEnvelope::Eip1559(_) => (
            envelope.max_fee_per_gas(),
            envelope.max_priority_fee_per_gas(),
        ),
        _ => {
            return Err(ChainError::Rejected(format!(
                "transaction type {} is not supported by the embedded chain",
                envelope.ty()
            )));
        }
    };
    Ok(TxEnv {
        tx_type: envelope.ty(),
        caller: from,
        gas_limit: envelope.gas_limit(),
        gas_price,
        kind: envelope.kind(),
        value: envelope.value(),
        data: envelope.input().clone(),
        nonce: envelope.nonce(),
        chain_id: envelope.chain_id(),
        access_list: envelope.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: priority,
        ..TxEnv::default()
    })
}

/// A read-only execution (call or estimate): gas price 0 on a zero-base-fee block.
struct Simulation {
    chain_id: u64,
    from: Address,
    nonce: u64,
    to: Option<Address>,
    data: Bytes,
    value: U256,
}

impl Simulation {
    fn run(&self, evm: &mut Evm, gas_limit: u64) -> Result<ExecutionResult, ChainError> {
        let tx = TxEnv {
            tx_type: 0,
            caller: self.from,
            gas_limit,
            gas_price: 0,
            kind: self.to.map_or(TxKind::Create, TxKind::Call),
            value: self.value,
            data: self.data.clone(),
            nonce: self.nonce,
            chain_id: Some(self.chain_id),
            ..TxEnv::default()
        };
        // `transact` does not commit: the journal is dropped.
        evm.transact(tx).map(|r| r.result).map_err(evm_error)
    }
}

/// The block being built by [`Engine::mine`].
struct BlockBuilder {
    chain_id: u64,
    number: u64,
    timestamp: u64,
    cumulative: u64,
    log_index: u64,
    txs: Vec<StoredTx>,
}

impl BlockBuilder {
    /// Executes one transaction on top of the block being built.
    fn include(&mut self, evm: &mut Evm, item: &Pending) -> Outcome {
        let remaining = BLOCK_GAS_LIMIT - self.cumulative;
        let from = item.from;
        let (tx_env, hash, source, explicit_limit) = match &item.source {
            TxSource::Local { request } => {
                let account = evm
                    .ctx
                    .journaled_state
                    .database
                    .basic_ref(from)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let nonce = account.nonce;
                let explicit = request.gas_limit.is_some();
                let gas_limit = match request.gas_limit {
                    Some(limit) => limit,
                    None => {
                        let Some(spendable) = account.balance.checked_sub(request.value) else {
                            return Outcome::Dropped(ChainError::Rejected(format!(
                                "insufficient funds for value: balance {}, value {}",
                                account.balance, request.value
                            )));
                        };
                        let affordable = spendable / U256::from(BASE_FEE);
                        let affordable = u64::try_from(affordable).unwrap_or(u64::MAX);
                        TX_GAS_CAP.min(remaining).min(affordable)
                    }
                };
                let tx_env = TxEnv {
                    tx_type: 2,
                    caller: from,
                    gas_limit,
                    gas_price: BASE_FEE as u128,
                    gas_priority_fee: Some(0),
                    kind: request.to.map_or(TxKind::Create, TxKind::Call),
                    value: request.value,
                    data: request.data.clone(),
                    nonce,
                    chain_id: Some(self.chain_id),
                    ..TxEnv::default()
                };
                let hash = local_tx_hash(self.chain_id, from, nonce, request);
                let source = StoredSource::Local {
                    nonce,
                    gas_limit,
                    to: request.to,
                    value: request.value,
                    input: request.data.clone(),
                };
                (tx_env, hash, source, explicit)
            }
            TxSource::Signed { envelope } => {
                let tx_env = match tx_env_from_envelope(envelope, from) {
                    Ok(env) => env,
                    Err(e) => return Outcome::Dropped(e),
                };
                let hash = *envelope.tx_hash();
                (tx_env, hash, StoredSource::Signed(envelope.clone()), true)
            }
        };
        if explicit_limit && tx_env.gas_limit > remaining {
            if tx_env.gas_limit > BLOCK_GAS_LIMIT {
                return Outcome::Dropped(ChainError::Rejected(format!(
                    "gas limit {} exceeds the block gas limit {BLOCK_GAS_LIMIT}",
                    tx_env.gas_limit
                )));
            }
            return Outcome::Deferred;
        }
        let is_local = matches!(item.source, TxSource::Local { .. });
        let outcome = match evm.transact(tx_env) {
            Ok(outcome) => outcome,
            Err(e) => return Outcome::Dropped(evm_error(e)),
        };
        let result = outcome.result;
        let gas_used = result.tx_gas_used();
        if gas_used > remaining {
            // Only possible for an estimated limit: the state was not committed.
            return Outcome::Deferred;
        }
        let success = result.is_success();
        if !success && is_local {
            // In-process transactions that fail are not included (see the module docs).
            return Outcome::Dropped(failure_error(&result));
        }
        evm.commit(outcome.state);
        self.cumulative += gas_used;
        let contract_address = result.created_address();
        let (logs, output, revert_data) = match result {
            ExecutionResult::Success { logs, output, .. } => {
                (logs, output.into_data(), Bytes::new())
            }
            ExecutionResult::Revert { output, .. } => (Vec::new(), output.clone(), output),
            ExecutionResult::Halt { .. } => (Vec::new(), Bytes::new(), Bytes::new()),
        };
        let first_log_index = self.log_index;
        self.log_index += logs.len() as u64;
        let events = logs
            .iter()
            .enumerate()
            .map(|(i, log)| ChainEvent {
                block_number: BlockNumber(self.number),
                block_hash: B256::ZERO, // filled in once the block is sealed
                block_time: ChainTime(self.timestamp),
                tx_hash: hash,
                log_index: first_log_index + i as u64,
                address: log.address,
                topics: log.data.topics().to_vec(),
                data: log.data.data.clone(),
            })
            .collect();
        let receipt = TxReceipt {
            tx_hash: hash,
            block_number: BlockNumber(self.number),
            gas_used,
            contract_address,
            logs: events,
        };
        self.txs.push(StoredTx {
            hash,
            from,
            source,
            success,
            gas_used,
            cumulative_gas_used: self.cumulative,
            contract_address,
            first_log_index,
            logs,
            revert_data,
        });
        Outcome::Included {
            receipt,
            success,
            output,
        }
    }
}

impl Engine {
    pub fn new(chain_id: u64, genesis_time: u64, accounts: &[(Address, U256)]) -> Self {
        let mut db = CacheDB::new(EmptyDB::new());
        for (address, balance) in accounts {
            db.insert_account_info(*address, AccountInfo::from_balance(*balance));
        }
        let mut cfg = CfgEnv::default();
        cfg.chain_id = chain_id;
        let mut engine = Self {
            db,
            cfg,
            chain_id,
            blocks: Vec::new(),
            tx_index: HashMap::new(),
            clock: Clock {
                genesis_time,
                started: Instant::now(),
                offset: 0,
                next_timestamp: None,
            },
            snapshots: BTreeMap::new(),
            next_snapshot_id: 1,
            fork: 0,
            pending: VecDeque::new(),
            deployment: None,
        };
        let genesis = engine.seal(
            B256::ZERO,
            0,
            genesis_time,
            keccak256(b"smartmesh genesis"),
            Vec::new(),
        );
        engine.push_block(genesis);
        engine
    }

    fn db(&self) -> &Db {
        &self.db
    }

    fn db_mut(&mut self) -> &mut Db {
        &mut self.db
    }

    /// Runs `f` with an EVM over the state and `block`; the state comes back afterwards.
    ///
    /// revm's EVM is not `Send`, so it cannot live in the engine behind the shared
    /// mutex; building one allocates its frame stack, which costs more than a token
    /// transfer. So each thread keeps one EVM and lends it our state for the duration.
    fn with_evm<R>(&mut self, block: BlockEnv, f: impl FnOnce(&mut Evm) -> R) -> R {
        thread_local! {
            static EVM: std::cell::RefCell<Option<Evm>> = const { std::cell::RefCell::new(None) };
        }
        let mut evm = EVM
            .with(|cell| cell.borrow_mut().take())
            .unwrap_or_else(|| {
                Context::mainnet()
                    .with_db(Db::default())
                    .with_cfg(CfgEnv::default())
                    .build_mainnet()
            });
        std::mem::swap(&mut evm.ctx.journaled_state.database, &mut self.db);
        evm.ctx.block = block;
        evm.ctx.cfg.chain_id = self.cfg.chain_id;
        let result = f(&mut evm);
        std::mem::swap(&mut evm.ctx.journaled_state.database, &mut self.db);
        // Nothing of ours stays behind; the EVM is reused by the next call on this thread.
        EVM.with(|cell| *cell.borrow_mut() = Some(evm));
        result
    }

    fn head_block(&self) -> &StoredBlock {
        // There is always a genesis block.
        &self.blocks[self.blocks.len() - 1]
    }

    pub fn head(&self) -> ChainHead {
        let head = self.head_block();
        ChainHead {
            number: BlockNumber(head.header.number),
            hash: head.hash,
            timestamp: ChainTime(head.header.timestamp),
        }
    }

    // ----- accounts -----

    fn account(&self, address: Address) -> AccountInfo {
        self.db()
            .basic_ref(address)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn balance(&self, address: Address) -> U256 {
        self.account(address).balance
    }

    /// Nonce of the newest state.
    pub fn nonce(&self, address: Address) -> u64 {
        self.account(address).nonce
    }

    /// Nonce including the queued signed transactions and the in-process ones.
    pub fn pending_nonce(&self, address: Address) -> u64 {
        let queued = self.pending.iter().filter(|p| p.from == address).count() as u64;
        self.nonce(address) + queued
    }

    pub fn code(&self, address: Address) -> Bytes {
        let info = self.account(address);
        if let Some(code) = info.code {
            return code.original_bytes();
        }
        self.db()
            .code_by_hash_ref(info.code_hash)
            .map(|code| code.original_bytes())
            .unwrap_or_default()
    }

    pub fn storage_at(&self, address: Address, slot: U256) -> U256 {
        self.db().storage_ref(address, slot).unwrap_or_default()
    }

    pub fn fund(&mut self, address: Address, wei: U256) {
        let mut info = self.account(address);
        info.balance = info.balance.saturating_add(wei);
        self.db_mut().insert_account_info(address, info);
    }

    // ----- time -----

    /// Timestamp the next block gets, without consuming a pinned timestamp.
    pub fn peek_next_timestamp(&self) -> u64 {
        let prev = self.head_block().header.timestamp;
        self.clock
            .next_timestamp
            .unwrap_or_else(|| self.clock.now().max(prev.saturating_add(1)))
    }

    /// Records that a block with timestamp `t` (from [`Self::peek_next_timestamp`]) was mined.
    fn consume_next_timestamp(&mut self, t: u64) {
        if self.clock.next_timestamp.take().is_some() {
            // The clock continues from the pinned time.
            let now = self.clock.now() as i128;
            self.clock.offset = (self.clock.offset as i128 + t as i128 - now)
                .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        }
    }

    /// Moves the clock forward; returns the total offset in seconds.
    pub fn advance_clock(&mut self, secs: u64) -> i64 {
        self.clock.offset = self
            .clock
            .offset
            .saturating_add(secs.min(i64::MAX as u64) as i64);
        if let Some(t) = self.clock.next_timestamp.as_mut() {
            *t = t.saturating_add(secs);
        }
        self.clock.offset
    }

    pub fn set_next_block_timestamp(&mut self, timestamp: u64) -> Result<(), ChainError> {
        let prev = self.head_block().header.timestamp;
        if timestamp <= prev {
            return Err(ChainError::Invalid(format!(
                "timestamp {timestamp} is not after the newest block's ({prev})"
            )));
        }
        self.clock.next_timestamp = Some(timestamp);
        Ok(())
    }

    // ----- blocks -----

    fn seal(
        &self,
        parent_hash: B256,
        number: u64,
        timestamp: u64,
        mix_hash: B256,
        txs: Vec<StoredTx>,
    ) -> StoredBlock {
        let mut logs_bloom = Bloom::ZERO;
        let mut tx_hashes = Vec::with_capacity(txs.len() * 32);
        let mut receipt_data = Vec::with_capacity(txs.len() * 41);
        for tx in &txs {
            logs_bloom.accrue_logs(&tx.logs);
            tx_hashes.extend_from_slice(tx.hash.as_slice());
            receipt_data.extend_from_slice(tx.hash.as_slice());
            receipt_data.extend_from_slice(&tx.cumulative_gas_used.to_be_bytes());
            receipt_data.push(tx.success as u8);
        }
        let (transactions_root, receipts_root) = if txs.is_empty() {
            (EMPTY_ROOT_HASH, EMPTY_ROOT_HASH)
        } else {
            (keccak256(&tx_hashes), keccak256(&receipt_data))
        };
        let header = Header {
            parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: Address::ZERO,
            state_root: B256::ZERO,
            transactions_root,
            receipts_root,
            logs_bloom,
            difficulty: U256::ZERO,
            number,
            gas_limit: BLOCK_GAS_LIMIT,
            gas_used: txs.last().map_or(0, |tx| tx.cumulative_gas_used),
            timestamp,
            extra_data: Bytes::from_static(b"smartmesh embedded"),
            mix_hash,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(BASE_FEE),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: Some(EMPTY_REQUESTS_HASH),
            ..Header::default()
        };
        StoredBlock {
            hash: header.hash_slow(),
            header,
            txs,
        }
    }

    fn push_block(&mut self, block: StoredBlock) {
        let index = self.blocks.len();
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.insert(tx.hash, (index, i));
        }
        let number = U256::from(block.header.number);
        let hash = block.hash;
        self.db_mut().cache.block_hashes.insert(number, hash);
        self.blocks.push(block);
    }

    /// Mines one block with as many of `items` as fit, in order. Returns an outcome per
    /// item. When nothing is included and `force` is false, no block is created.
    pub fn mine(&mut self, items: Vec<Pending>, force: bool) -> Vec<(Pending, Outcome)> {
        let parent = self.head_block();
        let parent_hash = parent.hash;
        let number = parent.header.number + 1;
        let timestamp = self.peek_next_timestamp();
        let mut seed = [0u8; 40];
        seed[..32].copy_from_slice(parent_hash.as_slice());
        seed[32..].copy_from_slice(&self.fork.to_be_bytes());
        let mix_hash = keccak256(seed);
        let chain_id = self.chain_id;

        let mut builder = BlockBuilder {
            chain_id,
            number,
            timestamp,
            cumulative: 0,
            log_index: 0,
            txs: Vec::with_capacity(items.len()),
        };
        let mut outcomes = Vec::with_capacity(items.len());
        self.with_evm(block_env(number, timestamp, BASE_FEE, mix_hash), |evm| {
            let mut deferred_any = false;
            for item in items {
                if deferred_any {
                    // Keep the order: once something waits for the next block, so does the rest.
                    outcomes.push((item, Outcome::Deferred));
                    continue;
                }
                let outcome = builder.include(evm, &item);
                if matches!(outcome, Outcome::Deferred) {
                    deferred_any = true;
                }
                outcomes.push((item, outcome));
            }
        });
        if builder.txs.is_empty() && !force {
            return outcomes;
        }
        self.consume_next_timestamp(timestamp);
        let block = self.seal(parent_hash, number, timestamp, mix_hash, builder.txs);
        let hash = block.hash;
        self.push_block(block);
        for (_, outcome) in outcomes.iter_mut() {
            if let Outcome::Included { receipt, .. } = outcome {
                for log in receipt.logs.iter_mut() {
                    log.block_hash = hash;
                }
            }
        }
        outcomes
    }

    // ----- simulations -----

    fn sim_env(&self, which: SimBlock) -> BlockEnv {
        let head = &self.head_block().header;
        match which {
            // Calls run with a zero base fee, as geth does for calls without a gas price.
            SimBlock::Latest => block_env(head.number, head.timestamp, 0, head.mix_hash),
            SimBlock::Pending => block_env(
                head.number + 1,
                self.peek_next_timestamp(),
                0,
                head.mix_hash,
            ),
        }
    }

    /// `eth_call` on the newest block.
    pub fn call(
        &mut self,
        from: Address,
        to: Option<Address>,
        data: Bytes,
        value: U256,
        gas_limit: Option<u64>,
    ) -> Result<Bytes, ChainError> {
        let gas = gas_limit.unwrap_or(TX_GAS_CAP).min(TX_GAS_CAP);
        let sim = Simulation {
            chain_id: self.chain_id,
            from,
            nonce: self.nonce(from),
            to,
            data,
            value,
        };
        let result = self.with_evm(self.sim_env(SimBlock::Latest), |evm| sim.run(evm, gas))?;
        match result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            failed => Err(failure_error(&failed)),
        }
    }

    /// The smallest gas limit with which the transaction succeeds in the next block.
    pub fn estimate_gas(
        &mut self,
        from: Address,
        to: Option<Address>,
        data: Bytes,
        value: U256,
        gas_limit: Option<u64>,
    ) -> Result<u64, ChainError> {
        let cap = gas_limit.unwrap_or(TX_GAS_CAP).min(TX_GAS_CAP);
        let sim = Simulation {
            chain_id: self.chain_id,
            from,
            nonce: self.nonce(from),
            to,
            data,
            value,
        };
        self.with_evm(self.sim_env(SimBlock::Pending), |evm| {
            let (spent, refunded) = match sim.run(evm, cap)? {
                ExecutionResult::Success { gas, .. } => {
                    (gas.total_gas_spent(), gas.inner_refunded())
                }
                failed => return Err(failure_error(&failed)),
            };
            let mut lo = spent.saturating_sub(1).max(20_999);
            let mut hi = cap;
            // Most transactions succeed with what they spent plus the refund and a call
            // stipend, scaled for the 63/64 rule: try that first.
            let optimistic = ((spent + refunded + 2_300) * 64 / 63).min(cap);
            if optimistic < hi {
                match sim.run(evm, optimistic) {
                    Ok(r) if r.is_success() => hi = optimistic,
                    _ => lo = optimistic,
                }
            }
            // Stop within 1.5% like geth: estimates are limits, not charges.
            while lo + 1 < hi && (hi - lo) * 1000 / hi >= 15 {
                let mid = lo + (hi - lo) / 2;
                match sim.run(evm, mid) {
                    Ok(r) if r.is_success() => hi = mid,
                    Ok(_) | Err(ChainError::Rejected(_)) => lo = mid, // e.g. below the intrinsic gas
                    Err(e) => return Err(e),
                }
            }
            Ok(hi)
        })
    }

    // ----- history -----

    pub fn block_count(&self) -> u64 {
        self.blocks.len() as u64
    }

    fn block_info(&self, block: &StoredBlock) -> EmbeddedBlock {
        EmbeddedBlock {
            number: block.header.number,
            hash: block.hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
            gas_used: block.header.gas_used,
            tx_hashes: block.txs.iter().map(|tx| tx.hash).collect(),
            header: block.header.clone(),
        }
    }

    pub fn block(&self, number: u64) -> Option<EmbeddedBlock> {
        let index = usize::try_from(number).ok()?;
        self.blocks.get(index).map(|b| self.block_info(b))
    }

    pub fn block_hash(&self, number: u64) -> Option<B256> {
        let index = usize::try_from(number).ok()?;
        self.blocks.get(index).map(|b| b.hash)
    }

    pub fn block_by_hash(&self, hash: B256) -> Option<EmbeddedBlock> {
        // Blocks are few and recent lookups dominate: scan from the head.
        self.blocks
            .iter()
            .rev()
            .find(|b| b.hash == hash)
            .map(|b| self.block_info(b))
    }

    fn located(&self, hash: B256) -> Option<(&StoredBlock, usize, &StoredTx)> {
        let &(block_index, tx_index) = self.tx_index.get(&hash)?;
        let block = self.blocks.get(block_index)?;
        Some((block, tx_index, block.txs.get(tx_index)?))
    }

    fn effective_gas_price(tx: &StoredTx) -> u128 {
        match &tx.source {
            StoredSource::Local { .. } => BASE_FEE as u128,
            StoredSource::Signed(envelope) => envelope.effective_gas_price(Some(BASE_FEE)),
        }
    }

    pub fn transaction(&self, hash: B256) -> Option<EmbeddedTransaction> {
        let (block, index, tx) = self.located(hash)?;
        let (envelope, signed) = match &tx.source {
            StoredSource::Signed(envelope) => ((**envelope).clone(), true),
            StoredSource::Local {
                nonce,
                gas_limit,
                to,
                value,
                input,
            } => {
                let unsigned = TxEip1559 {
                    chain_id: self.chain_id,
                    nonce: *nonce,
                    gas_limit: *gas_limit,
                    max_fee_per_gas: BASE_FEE as u128,
                    max_priority_fee_per_gas: 0,
                    to: to.map_or(TxKind::Create, TxKind::Call),
                    value: *value,
                    access_list: Default::default(),
                    input: input.clone(),
                };
                let signature = Signature::new(U256::ZERO, U256::ZERO, false);
                (
                    TxEnvelope::Eip1559(Signed::new_unchecked(unsigned, signature, tx.hash)),
                    false,
                )
            }
        };
        Some(EmbeddedTransaction {
            hash: tx.hash,
            from: tx.from,
            envelope,
            signed,
            block_number: block.header.number,
            block_hash: block.hash,
            block_time: block.header.timestamp,
            index: index as u64,
            effective_gas_price: Self::effective_gas_price(tx),
        })
    }

    fn events_of(block: &StoredBlock, tx: &StoredTx) -> Vec<ChainEvent> {
        tx.logs
            .iter()
            .enumerate()
            .map(|(i, log)| ChainEvent {
                block_number: BlockNumber(block.header.number),
                block_hash: block.hash,
                block_time: ChainTime(block.header.timestamp),
                tx_hash: tx.hash,
                log_index: tx.first_log_index + i as u64,
                address: log.address,
                topics: log.data.topics().to_vec(),
                data: log.data.data.clone(),
            })
            .collect()
    }

    pub fn receipt(&self, hash: B256) -> Option<EmbeddedReceipt> {
        let (block, index, tx) = self.located(hash)?;
        let (to, tx_type) = match &tx.source {
            StoredSource::Local { to, .. } => (*to, 2u8),
            StoredSource::Signed(envelope) => (envelope.to(), envelope.ty()),
        };
        Some(EmbeddedReceipt {
            tx_hash: tx.hash,
            block_number: block.header.number,
            block_hash: block.hash,
            block_time: block.header.timestamp,
            transaction_index: index as u64,
            from: tx.from,
            to,
            contract_address: tx.contract_address,
            success: tx.success,
            gas_used: tx.gas_used,
            cumulative_gas_used: tx.cumulative_gas_used,
            effective_gas_price: Self::effective_gas_price(tx),
            tx_type,
            logs: Self::events_of(block, tx),
            revert_data: tx.revert_data.clone(),
        })
    }

    /// Logs of blocks `from..=to` (clamped to the chain) matching the addresses (any, if
    /// empty) and the topic filter (position-wise; `None` or an empty set matches any).
    pub fn logs(
        &self,
        from: u64,
        to: u64,
        addresses: &[Address],
        topics: &[Option<Vec<B256>>],
        limit: usize,
    ) -> Result<Vec<LogEntry>, ChainError> {
        let mut out = Vec::new();
        let last = to.min(self.block_count().saturating_sub(1));
        if from > last {
            return Ok(out);
        }
        for block in &self.blocks[from as usize..=last as usize] {
            if block.txs.is_empty() {
                continue;
            }
            for (tx_index, tx) in block.txs.iter().enumerate() {
                for (i, log) in tx.logs.iter().enumerate() {
                    if !addresses.is_empty() && !addresses.contains(&log.address) {
                        continue;
                    }
                    let log_topics = log.data.topics();
                    let topics_match =
                        topics.iter().enumerate().all(|(pos, wanted)| match wanted {
                            None => true,
                            Some(set) if set.is_empty() => true,
                            Some(set) => log_topics.get(pos).is_some_and(|t| set.contains(t)),
                        });
                    if !topics_match {
                        continue;
                    }
                    if out.len() >= limit {
                        return Err(ChainError::Invalid(format!(
                            "query returned more than {limit} logs; narrow the block range"
                        )));
                    }
                    out.push(LogEntry {
                        event: ChainEvent {
                            block_number: BlockNumber(block.header.number),
                            block_hash: block.hash,
                            block_time: ChainTime(block.header.timestamp),
                            tx_hash: tx.hash,
                            log_index: tx.first_log_index + i as u64,
                            address: log.address,
                            topics: log_topics.to_vec(),
                            data: log.data.data.clone(),
                        },
                        transaction_index: tx_index as u64,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Whether the transaction is already in a block.
    pub fn knows(&self, hash: &B256) -> bool {
        self.tx_index.contains_key(hash)
    }

    // ----- snapshots -----

    pub fn snapshot(&mut self) -> u64 {
        let id = self.next_snapshot_id;
        self.next_snapshot_id += 1;
        self.snapshots.insert(
            id,
            Snapshot {
                db: self.db().clone(),
                block_count: self.blocks.len(),
                time_offset: self.clock.offset,
                next_timestamp: self.clock.next_timestamp,
            },
        );
        id
    }

    /// Restores snapshot `id` (state, blocks and clock). That snapshot and every later
    /// one are used up. Returns the queued transactions that were dropped.
    pub fn revert_to(&mut self, id: u64) -> Option<Vec<Pending>> {
        let snapshot = self.snapshots.remove(&id)?;
        self.snapshots.retain(|&other, _| other < id);
        *self.db_mut() = snapshot.db;
        for block in self.blocks.drain(snapshot.block_count..) {
            for tx in &block.txs {
                self.tx_index.remove(&tx.hash);
            }
        }
        self.clock.offset = snapshot.time_offset;
        self.clock.next_timestamp = snapshot.next_timestamp;
        self.fork += 1;
        Some(self.pending.drain(..).collect())
    }
}
