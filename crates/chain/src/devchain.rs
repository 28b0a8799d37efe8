//! A development chain server: standard Ethereum JSON-RPC 2.0 over HTTP in front of an
//! [`EmbeddedChain`], so several processes (nodes, wallets, alloy/ethers/viem scripts)
//! share one chain.
//!
//! `POST /` with a single request or a batch. Besides the usual `eth_*`, `net_*` and
//! `web3_*` methods it has Hardhat's development methods (`evm_increaseTime`,
//! `evm_mine`, `evm_snapshot`, `evm_revert`, `evm_setNextBlockTimestamp`). Reverts are
//! error code 3 with the revert payload as `data`, like geth, so clients decode custom
//! errors. Bodies are limited to [`MAX_BODY_BYTES`] and batches to [`MAX_BATCH`].
//!
//! State is only kept for the newest block: state queries for an older block number
//! fail with a clear error; block, transaction, receipt and log queries cover the whole
//! history.

use std::future::Future;
use std::net::SocketAddr;

use alloy::consensus::transaction::Recovered;
use alloy::consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom};
use alloy::eips::eip4895::Withdrawals;
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Bloom, TxKind};
use alloy::rpc::types::{
    Block, BlockTransactions, FeeHistory, Filter, FilterBlockOption, Header as RpcHeader,
    Log as RpcLog, Transaction as RpcTransaction, TransactionReceipt, TransactionRequest,
};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use smartmesh_primitives::{Address, B256, Bytes, U256};
use tokio::net::TcpListener;

use crate::TxRequest;
use crate::embedded::{
    BASE_FEE, BLOCK_GAS_LIMIT, EmbeddedBlock, EmbeddedChain, EmbeddedReceipt, TX_GAS_CAP,
};
use crate::{ChainError, ChainEvent};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most requests in one batch.
pub const MAX_BATCH: usize = 1_000;
/// Most blocks `eth_feeHistory` reports at once.
const MAX_FEE_HISTORY: u64 = 1_024;

/// Binds `127.0.0.1:port` (0 picks a free port) and returns the listener and the
/// address it is bound to.
pub async fn bind(port: u16) -> Result<(TcpListener, SocketAddr), ChainError> {
    bind_addr(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Binds any address (`0.0.0.0:8545` to serve other machines).
pub async fn bind_addr(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ChainError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| ChainError::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ChainError::Invalid(format!("cannot read the bound address: {e}")))?;
    Ok((listener, local))
}

/// The HTTP router (`POST /`), for embedding in another axum app.
pub fn router(chain: EmbeddedChain) -> axum::Router {
    axum::Router::new()
        .route("/", post(http_handler).get(http_info))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(chain)
}

/// Serves JSON-RPC for `chain` on `listener` until `shutdown` completes.
pub async fn serve(
    chain: EmbeddedChain,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ChainError> {
    axum::serve(listener, router(chain))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ChainError::Invalid(format!("devchain server failed: {e}")))
}

/// A devchain server running in a background task (convenient for tests).
#[derive(Debug)]
pub struct DevchainServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ChainError>>,
}

impl DevchainServer {
    /// Binds `127.0.0.1:port` (0 for any free port) and starts serving `chain`.
    pub async fn start(chain: EmbeddedChain, port: u16) -> Result<Self, ChainError> {
        let (listener, addr) = bind(port).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(chain, listener, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), ChainError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| ChainError::Invalid(format!("devchain task failed: {e}")))?
    }
}

impl Drop for DevchainServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the CLI prints at start: the funded accounts with their private keys (as
/// Hardhat does) and the deployed contracts.
pub fn startup_banner(chain: &EmbeddedChain) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let head = chain.head();
    let _ = writeln!(
        out,
        "SmartMesh devchain: chain id {}, block {}",
        chain.chain_id_sync().0,
        head.number.0
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Accounts");
    let _ = writeln!(out, "========");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "WARNING: These accounts, and their private keys, are publicly known.\n\
         Any funds sent to them on Mainnet or any other live network WILL BE LOST."
    );
    let _ = writeln!(out);
    for (i, key) in chain.dev_keys().iter().enumerate() {
        let address = key.address();
        let _ = writeln!(
            out,
            "Account #{i}: {address} ({} ETH)",
            format_ether(chain.balance(address))
        );
        let _ = writeln!(out, "Private Key: 0x{}", alloy::hex::encode(key.to_bytes()));
        let _ = writeln!(out);
    }
    if let Some(deployment) = chain.deployment() {
        let _ = writeln!(
            out,
            "Contracts (deployed by {} from block {})",
            deployment.deployer, deployment.start_block.0
        );
        let _ = writeln!(out, "=========");
        let _ = writeln!(out, "SmartMeshToken  {}", deployment.token);
        let _ = writeln!(out, "SecretRegistry  {}", deployment.secret_registry);
        let _ = writeln!(out, "TokenNetwork    {}", deployment.token_network);
        let _ = writeln!(
            out,
            "Settle timeout  {}..={} s",
            deployment.min_settle_timeout, deployment.max_settle_timeout
        );
        for vesting in &deployment.vesting {
            let _ = writeln!(
                out,
                "Vesting wallet  {} for {} ({} SMT)",
                vesting.wallet,
                vesting.allocation.beneficiary,
                format_ether(vesting.allocation.amount)
            );
        }
    } else {
        let _ = writeln!(out, "No contracts deployed.");
    }
    out
}

/// Wei as ether with up to 4 decimals, trailing zeros trimmed.
fn format_ether(wei: U256) -> String {
    let unit = U256::from(10u64).pow(U256::from(18u64));
    let whole = wei / unit;
    let frac = (wei % unit) / U256::from(100_000_000_000_000u64);
    if frac.is_zero() {
        whole.to_string()
    } else {
        format!(
            "{whole}.{}",
            format!("{:04}", frac.to::<u64>()).trim_end_matches('0')
        )
    }
}

async fn http_info() -> &'static str {
    "SmartMesh devchain: send JSON-RPC 2.0 requests with POST /\n"
}

async fn http_handler(State(chain): State<EmbeddedChain>, body: axum::body::Bytes) -> Response {
    match handle_body(&chain, &body).await {
        Some(reply) => ([(header::CONTENT_TYPE, "application/json")], reply).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Answers one HTTP body: a request or a batch. `None` when there is nothing to answer
/// (only notifications).
pub async fn handle_body(chain: &EmbeddedChain, body: &[u8]) -> Option<String> {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => {
            return Some(
                error_response(Value::Null, PARSE_ERROR, &format!("parse error: {e}"), None)
                    .to_string(),
            );
        }
    };
    match parsed {
        Value::Array(batch) => {
            if batch.is_empty() {
                return Some(
                    error_response(Value::Null, INVALID_REQUEST, "empty batch", None).to_string(),
                );
            }
            if batch.len() > MAX_BATCH {
                let message = format!(
                    "batch of {} requests exceeds the limit of {MAX_BATCH}",
                    batch.len()
                );
                return Some(
                    error_response(Value::Null, INVALID_REQUEST, &message, None).to_string(),
                );
            }
            let mut replies = Vec::with_capacity(batch.len());
            for request in batch {
                if let Some(reply) = handle_request(chain, request).await {
                    replies.push(reply);
                }
            }
            (!replies.is_empty()).then(|| Value::Array(replies).to_string())
        }
        single => handle_request(chain, single)
            .await
            .map(|reply| reply.to_string()),
    }
}

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
const SERVER_ERROR: i64 = -32000;
const EXECUTION_REVERTED: i64 = 3;

fn error_response(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// A JSON-RPC error.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn invalid_params(message: impl Into<String>) -> Self {
        Self {
            code: INVALID_PARAMS,
            message: message.into(),
            data: None,
        }
    }

    fn server(message: impl Into<String>) -> Self {
        Self {
            code: SERVER_ERROR,
            message: message.into(),
            data: None,
        }
    }
}

impl From<ChainError> for RpcError {
    fn from(error: ChainError) -> Self {
        match error {
            ChainError::Reverted { reason, data, .. } => {
                let message = match reason {
                    Some(reason) => format!("execution reverted: {reason}"),
                    None => "execution reverted".to_owned(),
                };
                Self {
                    code: EXECUTION_REVERTED,
                    message,
                    data: Some(Value::String(data.to_string())),
                }
            }
            ChainError::Rejected(message) => Self::server(message),
            ChainError::Invalid(message) => Self::server(message),
            ChainError::NotIncluded(hash) => {
                Self::server(format!("transaction {hash} not included in time"))
            }
            other => Self {
                code: INTERNAL_ERROR,
                message: other.to_string(),
                data: None,
            },
        }
    }
}

type RpcResult = Result<Value, RpcError>;

async fn handle_request(chain: &EmbeddedChain, request: Value) -> Option<Value> {
    let Value::Object(mut object) = request else {
        return Some(error_response(
            Value::Null,
            INVALID_REQUEST,
            "a request must be an object",
            None,
        ));
    };
    // A request without an id is a notification: run it, answer nothing.
    let id = object.remove("id");
    let reply_id = id.clone().unwrap_or(Value::Null);
    if !matches!(reply_id, Value::Null | Value::Number(_) | Value::String(_)) {
        return Some(error_response(
            Value::Null,
            INVALID_REQUEST,
            "id must be a number, a string or null",
            None,
        ));
    }
    match object.get("jsonrpc") {
        Some(Value::String(version)) if version == "2.0" => {}
        _ => {
            return Some(error_response(
                reply_id,
                INVALID_REQUEST,
                "jsonrpc must be \"2.0\"",
                None,
            ));
        }
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return Some(error_response(
            reply_id,
            INVALID_REQUEST,
            "method must be a string",
            None,
        ));
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(_) => {
            return Some(error_response(
                reply_id,
                INVALID_PARAMS,
                "params must be an array",
                None,
            ));
        }
    };
    let result = dispatch(chain, &method, Params(params)).await;
    id.as_ref()?;
    Some(match result {
        Ok(value) => json!({ "jsonrpc": "2.0", "id": reply_id, "result": value }),
        Err(error) => error_response(reply_id, error.code, &error.message, error.data),
    })
}

/// Positional parameters.
struct Params(Vec<Value>);

impl Params {
    fn get<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, RpcError> {
        let value = self
            .0
            .get(index)
            .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {name}")))?;
        serde_json::from_value(value.clone())
            .map_err(|e| RpcError::invalid_params(format!("invalid {name}: {e}")))
    }

    fn opt<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<Option<T>, RpcError> {
        match self.0.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.get(index, name).map(Some),
        }
    }

    /// A number given as a JSON number, a hex quantity or a decimal string.
    fn number(&self, index: usize, name: &str) -> Result<u64, RpcError> {
        self.opt_number(index, name)?
            .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {name}")))
    }

    fn opt_number(&self, index: usize, name: &str) -> Result<Option<u64>, RpcError> {
        let bad = || RpcError::invalid_params(format!("invalid {name}: expected a number"));
        match self.0.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) => {
                let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => s.parse::<u64>(),
                };
                parsed.map(Some).map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    }
}

fn quantity(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> RpcResult {
    serde_json::to_value(value).map_err(|e| RpcError {
        code: INTERNAL_ERROR,
        message: e.to_string(),
        data: None,
    })
}

/// Resolves a block tag or number to a height of this chain (`None`: no such block).
fn resolve_number(chain: &EmbeddedChain, tag: BlockNumberOrTag) -> Option<u64> {
    let head = chain.head().number.0;
    match tag {
        BlockNumberOrTag::Latest
        | BlockNumberOrTag::Pending
        | BlockNumberOrTag::Safe
        | BlockNumberOrTag::Finalized => Some(head),
        BlockNumberOrTag::Earliest => Some(0),
        BlockNumberOrTag::Number(n) => (n <= head).then_some(n),
    }
}

/// Checks that a state query is for the newest state; returns whether it asked for the
/// pending state.
fn state_block(chain: &EmbeddedChain, block: Option<BlockId>) -> Result<bool, RpcError> {
    let head = chain.head();
    match block {
        None => Ok(false),
        Some(BlockId::Number(BlockNumberOrTag::Pending)) => Ok(true),
        Some(BlockId::Number(
            BlockNumberOrTag::Latest | BlockNumberOrTag::Safe | BlockNumberOrTag::Finalized,
        )) => Ok(false),
        Some(BlockId::Number(BlockNumberOrTag::Earliest)) if head.number.0 == 0 => Ok(false),
        Some(BlockId::Number(BlockNumberOrTag::Number(n))) if n == head.number.0 => Ok(false),
        Some(BlockId::Hash(hash)) if hash.block_hash == head.hash => Ok(false),
        Some(BlockId::Number(BlockNumberOrTag::Number(n))) if n > head.number.0 => Err(
            RpcError::server(format!("block {n} not found (head is {})", head.number.0)),
        ),
        Some(other) => Err(RpcError::server(format!(
            "historical state is not available for block {other}: the devchain keeps the newest state only"
        ))),
    }
}

async fn dispatch(chain: &EmbeddedChain, method: &str, params: Params) -> RpcResult {
    match method {
        "web3_clientVersion" => Ok(json!(format!(
            "smartmesh-devchain/{}/revm",
            env!("CARGO_PKG_VERSION")
        ))),
        "web3_sha3" => {
            let data: Bytes = params.get(0, "data")?;
            to_json(&alloy::primitives::keccak256(&data))
        }
        "net_version" => Ok(json!(chain.chain_id_sync().0.to_string())),
        "net_listening" => Ok(json!(true)),
        "net_peerCount" => Ok(quantity(0)),
        "eth_chainId" => Ok(quantity(chain.chain_id_sync().0)),
        "eth_syncing" => Ok(json!(false)),
        "eth_mining" => Ok(json!(false)),
        "eth_coinbase" => to_json(&Address::ZERO),
        "eth_accounts" => to_json(&chain.dev_accounts()),
        "eth_blockNumber" => Ok(quantity(chain.head().number.0)),
        "eth_gasPrice" => Ok(quantity(BASE_FEE)),
        "eth_maxPriorityFeePerGas" => Ok(quantity(0)),
        "eth_blobBaseFee" => Ok(quantity(1)),
        "eth_feeHistory" => fee_history(chain, &params),
        "eth_getBalance" => {
            let address: Address = params.get(0, "address")?;
            state_block(chain, params.opt(1, "block")?)?;
            to_json(&chain.balance(address))
        }
        "eth_getTransactionCount" => {
            let address: Address = params.get(0, "address")?;
            let pending = state_block(chain, params.opt(1, "block")?)?;
            Ok(quantity(if pending {
                chain.pending_nonce(address)
            } else {
                chain.nonce(address)
            }))
        }
        "eth_getCode" => {
            let address: Address = params.get(0, "address")?;
            state_block(chain, params.opt(1, "block")?)?;
            to_json(&chain.code(address))
        }
        "eth_getStorageAt" => {
            let address: Address = params.get(0, "address")?;
            let slot: U256 = params.get(1, "slot")?;
            state_block(chain, params.opt(2, "block")?)?;
            to_json(&B256::from(chain.storage_at(address, slot)))
        }
        "eth_call" => {
            let request: TransactionRequest = params.get(0, "transaction")?;
            state_block(chain, params.opt(1, "block")?)?;
            let (from, to, data, value, gas) = call_fields(&request);
            to_json(&chain.call_raw(from, to, data, value, gas)?)
        }
        "eth_estimateGas" => {
            let request: TransactionRequest = params.get(0, "transaction")?;
            state_block(chain, params.opt(1, "block")?)?;
            let (from, to, data, value, gas) = call_fields(&request);
            let tx = TxRequest {
                to,
                data,
                value,
                gas_limit: gas,
            };
            Ok(quantity(chain.estimate_gas(from, &tx)?))
        }
        "eth_sendRawTransaction" => {
            let raw: Bytes = params.get(0, "transaction")?;
            to_json(&chain.execute_signed_raw(&raw)?)
        }
        "eth_sendTransaction" => {
            let request: TransactionRequest = params.get(0, "transaction")?;
            let from = request
                .from
                .ok_or_else(|| RpcError::invalid_params("missing from"))?;
            if !chain.dev_accounts().contains(&from) {
                return Err(RpcError::server(format!(
                    "unknown account {from}: only development accounts can send unsigned"
                )));
            }
            let (_, to, data, value, gas) = call_fields(&request);
            let receipt = chain
                .send_as(
                    from,
                    TxRequest {
                        to,
                        data,
                        value,
                        gas_limit: gas,
                    },
                )
                .await?;
            to_json(&receipt.tx_hash)
        }
        "eth_getBlockByNumber" => {
            let tag: BlockNumberOrTag = params.get(0, "block")?;
            let full: bool = params.opt(1, "full")?.unwrap_or(false);
            match resolve_number(chain, tag).and_then(|n| chain.block(n)) {
                Some(block) => rpc_block(chain, &block, full),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockByHash" => {
            let hash: B256 = params.get(0, "hash")?;
            let full: bool = params.opt(1, "full")?.unwrap_or(false);
            match chain.block_by_hash(hash) {
                Some(block) => rpc_block(chain, &block, full),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockTransactionCountByNumber" => {
            let tag: BlockNumberOrTag = params.get(0, "block")?;
            match resolve_number(chain, tag).and_then(|n| chain.block(n)) {
                Some(block) => Ok(quantity(block.tx_hashes.len() as u64)),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockTransactionCountByHash" => {
            let hash: B256 = params.get(0, "hash")?;
            match chain.block_by_hash(hash) {
                Some(block) => Ok(quantity(block.tx_hashes.len() as u64)),
                None => Ok(Value::Null),
            }
        }
        "eth_getTransactionByHash" => {
            let hash: B256 = params.get(0, "hash")?;
            match rpc_transaction(chain, hash) {
                Some(tx) => to_json(&tx),
                None => Ok(Value::Null),
            }
        }
        "eth_getTransactionByBlockNumberAndIndex" => {
            let tag: BlockNumberOrTag = params.get(0, "block")?;
            let index = params.number(1, "index")?;
            let block = resolve_number(chain, tag).and_then(|n| chain.block(n));
            tx_at(chain, block, index)
        }
        "eth_getTransactionByBlockHashAndIndex" => {
            let hash: B256 = params.get(0, "hash")?;
            let index = params.number(1, "index")?;
            tx_at(chain, chain.block_by_hash(hash), index)
        }
        "eth_getTransactionReceipt" => {
            let hash: B256 = params.get(0, "hash")?;
            match chain.receipt(hash) {
                Some(receipt) => to_json(&rpc_receipt(&receipt)),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockReceipts" => {
            let tag: BlockNumberOrTag = params.get(0, "block")?;
            match resolve_number(chain, tag).and_then(|n| chain.block(n)) {
                Some(block) => {
                    let receipts: Vec<_> = block
                        .tx_hashes
                        .iter()
                        .filter_map(|h| chain.receipt(*h))
                        .map(|r| rpc_receipt(&r))
                        .collect();
                    to_json(&receipts)
                }
                None => Ok(Value::Null),
            }
        }
        "eth_getLogs" => {
            let filter: Filter = params.get(0, "filter")?;
            get_logs(chain, &filter)
        }
        "evm_increaseTime" => {
            let secs = params.number(0, "seconds")?;
            Ok(json!(chain.advance_clock(secs)))
        }
        "evm_setNextBlockTimestamp" => {
            let timestamp = params.number(0, "timestamp")?;
            chain.set_next_block_timestamp(timestamp)?;
            Ok(Value::Null)
        }
        "evm_mine" => {
            if let Some(timestamp) = params.opt_number(0, "timestamp")? {
                chain.set_next_block_timestamp(timestamp)?;
            }
            chain.mine();
            Ok(json!("0x0"))
        }
        "evm_snapshot" => Ok(quantity(chain.snapshot())),
        "evm_revert" => {
            let id = params.number(0, "snapshot id")?;
            Ok(json!(chain.revert_to(id)))
        }
        _ => Err(RpcError {
            code: METHOD_NOT_FOUND,
            message: format!("method {method} not found"),
            data: None,
        }),
    }
}

fn call_fields(
    request: &TransactionRequest,
) -> (Address, Option<Address>, Bytes, U256, Option<u64>) {
    let from = request.from.unwrap_or(Address::ZERO);
    let to = match request.to {
        Some(TxKind::Call(to)) => Some(to),
        Some(TxKind::Create) | None => None,
    };
    let data = request.input.input().cloned().unwrap_or_default();
    let value = request.value.unwrap_or_default();
    (
        from,
        to,
        data,
        value,
        request.gas.map(|gas| gas.min(TX_GAS_CAP)),
    )
}

fn fee_history(chain: &EmbeddedChain, params: &Params) -> RpcResult {
    let count = params.number(0, "blockCount")?.min(MAX_FEE_HISTORY);
    let newest: BlockNumberOrTag = params.get(1, "newestBlock")?;
    let percentiles: Option<Vec<f64>> = params.opt(2, "rewardPercentiles")?;
    let newest = resolve_number(chain, newest)
        .ok_or_else(|| RpcError::server("newest block is after the head"))?;
    let count = count.min(newest + 1);
    let oldest = newest + 1 - count;
    let mut gas_used_ratio = Vec::with_capacity(count as usize);
    for number in oldest..=newest {
        let used = chain.block(number).map_or(0, |b| b.gas_used);
        gas_used_ratio.push(used as f64 / BLOCK_GAS_LIMIT as f64);
    }
    let history = FeeHistory {
        base_fee_per_gas: vec![BASE_FEE as u128; count as usize + 1],
        gas_used_ratio,
        base_fee_per_blob_gas: vec![1; count as usize + 1],
        blob_gas_used_ratio: vec![0.0; count as usize],
        oldest_block: oldest,
        reward: percentiles.map(|p| vec![vec![0u128; p.len()]; count as usize]),
    };
    to_json(&history)
}

fn rpc_log(event: &ChainEvent, transaction_index: u64) -> RpcLog {
    RpcLog {
        inner: alloy::primitives::Log::new_unchecked(
            event.address,
            event.topics.clone(),
            event.data.clone(),
        ),
        block_hash: Some(event.block_hash),
        block_number: Some(event.block_number.0),
        block_timestamp: Some(event.block_time.0),
        transaction_hash: Some(event.tx_hash),
        transaction_index: Some(transaction_index),
        log_index: Some(event.log_index),
        removed: false,
    }
}

fn rpc_receipt(receipt: &EmbeddedReceipt) -> TransactionReceipt {
    let logs: Vec<RpcLog> = receipt
        .logs
        .iter()
        .map(|e| rpc_log(e, receipt.transaction_index))
        .collect();
    let mut logs_bloom = Bloom::ZERO;
    for log in &logs {
        logs_bloom.accrue_log(&log.inner);
    }
    let inner = ReceiptWithBloom {
        receipt: Receipt {
            status: Eip658Value::Eip658(receipt.success),
            cumulative_gas_used: receipt.cumulative_gas_used,
            logs,
        },
        logs_bloom,
    };
    let inner = match receipt.tx_type {
        0 => ReceiptEnvelope::Legacy(inner),
        1 => ReceiptEnvelope::Eip2930(inner),
        _ => ReceiptEnvelope::Eip1559(inner),
    };
    TransactionReceipt {
        inner,
        transaction_hash: receipt.tx_hash,
        transaction_index: Some(receipt.transaction_index),
        block_hash: Some(receipt.block_hash),
        block_number: Some(receipt.block_number),
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: receipt.from,
        to: receipt.to,
        contract_address: receipt.contract_address,
    }
}

fn rpc_transaction(chain: &EmbeddedChain, hash: B256) -> Option<RpcTransaction> {
    let tx = chain.transaction(hash)?;
    Some(RpcTransaction {
        inner: Recovered::new_unchecked(tx.envelope, tx.from),
        block_hash: Some(tx.block_hash),
        block_number: Some(tx.block_number),
        transaction_index: Some(tx.index),
        effective_gas_price: Some(tx.effective_gas_price),
        block_timestamp: Some(tx.block_time),
    })
}

fn tx_at(chain: &EmbeddedChain, block: Option<EmbeddedBlock>, index: u64) -> RpcResult {
    let hash = block.and_then(|b| {
        usize::try_from(index)
            .ok()
            .and_then(|i| b.tx_hashes.get(i).copied())
    });
    match hash.and_then(|h| rpc_transaction(chain, h)) {
        Some(tx) => to_json(&tx),
        None => Ok(Value::Null),
    }
}

fn rpc_block(chain: &EmbeddedChain, block: &EmbeddedBlock, full: bool) -> RpcResult {
    let transactions = if full {
        BlockTransactions::Full(
            block
                .tx_hashes
                .iter()
                .filter_map(|h| rpc_transaction(chain, *h))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(block.tx_hashes.clone())
    };
    let size = alloy::rlp::Encodable::length(&block.header) as u64;
    let rpc = Block {
        header: RpcHeader {
            hash: block.hash,
            inner: block.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(size)),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Withdrawals::default()),
    };
    to_json(&rpc)
}

fn get_logs(chain: &EmbeddedChain, filter: &Filter) -> RpcResult {
    let head = chain.head().number.0;
    let (from, to) = match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            let block = chain
                .block_by_hash(hash)
                .ok_or_else(|| RpcError::server(format!("unknown block {hash}")))?;
            (block.number, block.number)
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let resolve =
                |tag: Option<BlockNumberOrTag>| match tag.unwrap_or(BlockNumberOrTag::Latest) {
                    BlockNumberOrTag::Number(n) => n,
                    BlockNumberOrTag::Earliest => 0,
                    _ => head,
                };
            (resolve(from_block), resolve(to_block))
        }
    };
    if from > to {
        return Err(RpcError::invalid_params(format!(
            "fromBlock {from} is after toBlock {to}"
        )));
    }
    let addresses: Vec<Address> = filter.address.iter().copied().collect();
    let topics: Vec<Option<Vec<B256>>> = filter
        .topics
        .iter()
        .map(|set| (!set.is_empty()).then(|| set.iter().copied().collect()))
        .collect();
    let logs: Vec<RpcLog> = chain
        .logs(from, to, &addresses, &topics)?
        .iter()
        .map(|entry| rpc_log(&entry.event, entry.transaction_index))
        .collect();
    to_json(&logs)
}
