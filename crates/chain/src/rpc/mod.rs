//! [`RpcChain`]: the [`Chain`] interface over any Ethereum JSON-RPC node (geth, reth,
//! Hardhat, Ganache, Anvil, our [`crate::devchain`]) through alloy's HTTP client.
//!
//! * A node that is down is a normal state: [`RpcChain::connect`] never contacts the
//!   node, every call made while it is down returns [`ChainError::Unreachable`], and the
//!   next call after it comes back simply works.
//! * Transactions are signed locally (EIP-1559, or legacy on a chain without a base
//!   fee) with a per-signer nonce cache, after a gas estimation that doubles as a
//!   pre-flight check: a transaction that would revert is reported with the contract's
//!   error name and never sent.
//! * Events are delivered only from blocks `confirmations` deep, and a cursor records the
//!   hash of the last block scanned, so that a reorg shallower than the confirmation
//!   depth never delivers an event twice nor loses one, and a deeper one is reported as
//!   [`ChainError::ReorgTooDeep`] instead of silently delivering a different history.
//!
//! Only the JSON-RPC methods every node has are used: `eth_chainId`, `eth_blockNumber`,
//! `eth_getBlockByNumber`, `eth_getBalance`, `eth_call`, `eth_estimateGas`,
//! `eth_getTransactionCount`, `eth_sendRawTransaction`, `eth_getTransactionReceipt`,
//! `eth_getLogs`, plus `eth_maxPriorityFeePerGas` / `eth_gasPrice` (both optional).
//! Responses are read leniently (only the fields used here are required).

mod errors;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{TxKind, U64, U256 as AlloyU256};
use alloy::rpc::client::RpcClient;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use alloy::transports::{RpcError, TransportError};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use smartmesh_primitives::{
    Address, B256, BlockNumber, Bytes, ChainId, ChainTime, PrivateKey, U256,
};
use tokio::time::Instant;

use crate::{
    CallRequest, Chain, ChainError, ChainEvent, ChainHead, EventBatch, EventCursor, EventFilter,
    TxReceipt, TxRequest,
};

use errors::{certainly_not_delivered, map_error};

/// Blocks scanned per [`Chain::events_since`] call when the filter says 0.
pub const DEFAULT_MAX_BLOCKS: u64 = 2_000;

/// Priority fee used when the node has no `eth_maxPriorityFeePerGas` (1 gwei).
const FALLBACK_PRIORITY_FEE: u128 = 1_000_000_000;

/// The most gas one transaction may use since Osaka (EIP-7825); the estimate's safety
/// margin never goes beyond it.
const TX_GAS_CAP: u64 = 1 << 24;

/// How to reach a JSON-RPC node and how careful to be with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The node's HTTP endpoint, e.g. `http://127.0.0.1:8545`. This build has no TLS, so
    /// only `http://` is accepted (put a TLS-terminating proxy in front of a remote node).
    pub url: String,
    /// Blocks an event must be buried under before [`Chain::events_since`] delivers it.
    /// Use more than the deepest reorg expected (2 on a dev chain, 12+ on a public one);
    /// automining dev nodes in tests use 0 or 1.
    pub confirmations: u64,
    /// Limit for one JSON-RPC request, connection included.
    pub request_timeout: Duration,
    /// How long [`Chain::send`] waits for a sent transaction to be included.
    pub inclusion_timeout: Duration,
    /// How often [`Chain::send`] asks for the receipt while waiting.
    pub poll_interval: Duration,
}

impl RpcConfig {
    /// Defaults for a real node at `url`: 2 confirmations, 10 s per request, 120 s for
    /// inclusion, polling every second.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            confirmations: 2,
            request_timeout: Duration::from_secs(10),
            inclusion_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// Settings for an automining local dev node (Hardhat, Anvil, our devchain): the given
    /// confirmations, 5 s per request, 10 s for inclusion, polling every 20 ms.
    pub fn dev(url: impl Into<String>, confirmations: u64) -> Self {
        Self {
            url: url.into(),
            confirmations,
            request_timeout: Duration::from_secs(5),
            inclusion_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(20),
        }
    }
}

impl Default for RpcConfig {
    /// [`RpcConfig::new`] for `http://127.0.0.1:8545`.
    fn default() -> Self {
        Self::new("http://127.0.0.1:8545")
    }
}

/// A [`Chain`] backed by an Ethereum JSON-RPC node over HTTP. Cheap to share behind an
/// `Arc`; safe to use from many tasks (sends from one key are serialised per key).
pub struct RpcChain {
    config: RpcConfig,
    client: RpcClient,
    chain_id: OnceLock<u64>,
    /// Per signer: the next nonce to use (`None`: ask the node), behind a lock that also
    /// keeps two sends of one key from racing for the same nonce.
    nonces: Mutex<HashMap<Address, Arc<tokio::sync::Mutex<Option<u64>>>>>,
}

impl std::fmt::Debug for RpcChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcChain")
            .field("url", &self.config.url)
            .field("confirmations", &self.config.confirmations)
            .field("chain_id", &self.chain_id.get())
            .finish_non_exhaustive()
    }
}

/// The block fields used here (nodes differ in the rest).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcBlock {
    number: U64,
    hash: B256,
    parent_hash: B256,
    timestamp: U64,
    #[serde(default)]
    base_fee_per_gas: Option<AlloyU256>,
}

/// The receipt fields used here.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReceipt {
    transaction_hash: B256,
    #[serde(default)]
    block_number: Option<U64>,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default)]
    status: Option<U64>,
    gas_used: U64,
    #[serde(default)]
    contract_address: Option<Address>,
    #[serde(default)]
    logs: Vec<RpcLog>,
}

/// The log fields used here.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcLog {
    address: Address,
    topics: Vec<B256>,
    data: Bytes,
    #[serde(default)]
    block_number: Option<U64>,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default)]
    block_timestamp: Option<U64>,
    #[serde(default)]
    transaction_hash: Option<B256>,
    #[serde(default)]
    log_index: Option<U64>,
    #[serde(default)]
    removed: bool,
}

impl RpcLog {
    fn into_event(self, block_time: u64) -> Result<ChainEvent, ChainError> {
        let missing = |field: &str| ChainError::InvalidResponse(format!("log without {field}"));
        Ok(ChainEvent {
            block_number: BlockNumber(
                self.block_number
                    .ok_or_else(|| missing("blockNumber"))?
                    .to(),
            ),
            block_hash: self.block_hash.ok_or_else(|| missing("blockHash"))?,
            block_time: ChainTime(block_time),
            tx_hash: self
                .transaction_hash
                .ok_or_else(|| missing("transactionHash"))?,
            log_index: self.log_index.ok_or_else(|| missing("logIndex"))?.to(),
            address: self.address,
            topics: self.topics,
            data: self.data,
        })
    }
}

/// Whether a rejection is about the nonce (too low, too high, already used).
fn is_stale_nonce(message: &str) -> bool {
    [
        "nonce",
        "already known",
        "already imported",
        "replacement transaction underpriced",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Quantity as JSON-RPC hex.
fn quantity(value: u64) -> String {
    format!("{value:#x}")
}

impl RpcChain {
    /// A client for the node at `config.url`. Does not contact the node: a node that is
    /// down is not an error here, only later calls report [`ChainError::Unreachable`].
    /// Fails with [`ChainError::Invalid`] on a malformed or non-`http` URL or zero
    /// timeouts.
    pub fn connect(config: RpcConfig) -> Result<Self, ChainError> {
        let url: reqwest::Url = config
            .url
            .parse()
            .map_err(|e| ChainError::Invalid(format!("bad node URL {:?}: {e}", config.url)))?;
        if url.scheme() != "http" {
            return Err(ChainError::Invalid(format!(
                "node URL {:?}: only http:// is supported (this build has no TLS)",
                config.url
            )));
        }
        if config.request_timeout.is_zero() || config.poll_interval.is_zero() {
            return Err(ChainError::Invalid(
                "request_timeout and poll_interval must be positive".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| ChainError::Invalid(format!("HTTP client: {e}")))?;
        let client = RpcClient::new_http_with_client(http, url);
        Ok(Self {
            config,
            client,
            chain_id: OnceLock::new(),
            nonces: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration this chain was made with.
    pub fn config(&self) -> &RpcConfig {
        &self.config
    }

    /// One JSON-RPC request; JSON-RPC errors become [`ChainError::Rejected`].
    async fn request<R>(&self, method: &'static str, params: Value) -> Result<R, ChainError>
    where
        R: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    {
        self.raw(method, params)
            .await
            .map_err(|e| map_error(&self.config.url, e, false))
    }

    /// One JSON-RPC request whose errors may be reverts (calls, gas estimation).
    async fn request_revertible<R>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<R, ChainError>
    where
        R: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    {
        self.raw(method, params)
            .await
            .map_err(|e| map_error(&self.config.url, e, true))
    }

    async fn raw<R>(&self, method: &'static str, params: Value) -> Result<R, TransportError>
    where
        R: serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + Unpin + 'static,
    {
        tracing::trace!(method, %params, "json-rpc request");
        self.client.request::<Value, R>(method, params).await
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        let number: U64 = self.request("eth_blockNumber", json!([])).await?;
        Ok(number.to())
    }

    /// Block `number`'s header fields, or `None` if the node has no such block.
    async fn block(&self, number: u64) -> Result<Option<RpcBlock>, ChainError> {
        self.request("eth_getBlockByNumber", json!([quantity(number), false]))
            .await
    }

    async fn existing_block(&self, number: u64) -> Result<RpcBlock, ChainError> {
        self.block(number).await?.ok_or_else(|| {
            ChainError::InvalidResponse(format!("block {number} is missing (chain shortened?)"))
        })
    }

    async fn latest_block(&self) -> Result<RpcBlock, ChainError> {
        self.request::<Option<RpcBlock>>("eth_getBlockByNumber", json!(["latest", false]))
            .await?
            .ok_or_else(|| ChainError::InvalidResponse("no latest block".to_owned()))
    }

    async fn receipt(&self, tx_hash: B256) -> Result<Option<RpcReceipt>, ChainError> {
        self.request("eth_getTransactionReceipt", json!([tx_hash]))
            .await
    }

    fn signer_slot(&self, account: Address) -> Arc<tokio::sync::Mutex<Option<u64>>> {
        let mut map = self
            .nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(account).or_default().clone()
    }

    /// The JSON object of a call or gas estimation.
    fn call_object(
        from: Option<Address>,
        to: Option<Address>,
        data: &Bytes,
        value: U256,
        gas: Option<u64>,
    ) -> Value {
        let mut object = serde_json::Map::new();
        if let Some(from) = from {
            object.insert("from".into(), json!(from));
        }
        if let Some(to) = to {
            object.insert("to".into(), json!(to));
        }
        // `data`, not `input`: every node accepts `data`, some reject both at once.
        object.insert("data".into(), json!(data));
        if !value.is_zero() {
            object.insert("value".into(), json!(format!("{value:#x}")));
        }
        if let Some(gas) = gas {
            object.insert("gas".into(), json!(quantity(gas)));
        }
        Value::Object(object)
    }

    /// Fees for a new transaction: `Some((max_fee, priority_fee))` on an EIP-1559 chain,
    /// `None` with the legacy gas price otherwise.
    async fn fees(&self) -> Result<(Option<(u128, u128)>, u128), ChainError> {
        let latest = self.latest_block().await?;
        match latest.base_fee_per_gas {
            Some(base_fee) => {
                let base_fee: u128 = base_fee.saturating_to();
                let priority = match self
                    .request::<U64>("eth_maxPriorityFeePerGas", json!([]))
                    .await
                {
                    Ok(fee) => u128::from(fee.to::<u64>()),
                    Err(err @ ChainError::Unreachable { .. }) => return Err(err),
                    Err(_) => FALLBACK_PRIORITY_FEE,
                };
                let max_fee = base_fee.saturating_mul(2).saturating_add(priority);
                Ok((Some((max_fee, priority)), 0))
            }
            None => {
                let price: AlloyU256 = self.request("eth_gasPrice", json!([])).await?;
                Ok((None, price.saturating_to()))
            }
        }
    }

    /// Block time of `number`, from a cache or the node; checks the block's hash when
    /// `expected_hash` is given (a mismatch means the range reorganised while scanning).
    async fn block_time(
        &self,
        cache: &mut BTreeMap<u64, (B256, u64)>,
        number: u64,
        expected_hash: B256,
    ) -> Result<u64, ChainError> {
        if let Some((hash, time)) = cache.get(&number) {
            if *hash != expected_hash {
                return Err(ChainError::ReorgTooDeep {
                    block: BlockNumber(number),
                });
            }
            return Ok(*time);
        }
        let block = self.existing_block(number).await?;
        if block.hash != expected_hash {
            return Err(ChainError::ReorgTooDeep {
                block: BlockNumber(number),
            });
        }
        let time = block.timestamp.to();
        cache.insert(number, (block.hash, time));
        Ok(time)
    }

    /// Turns a mined receipt into our result: success with its logs, or the revert.
    async fn finish(
        &self,
        receipt: RpcReceipt,
        from: Address,
        request: &TxRequest,
        gas_limit: u64,
    ) -> Result<TxReceipt, ChainError> {
        let tx_hash = receipt.transaction_hash;
        let block_number: u64 = receipt
            .block_number
            .ok_or_else(|| ChainError::InvalidResponse("mined receipt without blockNumber".into()))?
            .to();
        let succeeded = receipt.status.map(|s| s.to::<u64>() == 1).unwrap_or(true);
        if !succeeded {
            // Replay at that block for the revert data; a replay that does not revert
            // (out of gas, state moved on) leaves the reason unknown. Nodes that keep
            // only the newest state refuse an older block number: then `latest`.
            let call = Self::call_object(
                Some(from),
                request.to,
                &request.data,
                request.value,
                Some(gas_limit),
            );
            let mut data = Bytes::new();
            for block in [json!(quantity(block_number)), json!("latest")] {
                match self
                    .request_revertible::<Bytes>("eth_call", json!([call.clone(), block]))
                    .await
                {
                    Err(ChainError::Reverted { data: found, .. }) => {
                        data = found;
                        break;
                    }
                    Err(ChainError::Rejected(_) | ChainError::InvalidResponse(_)) => continue,
                    _ => break,
                }
            }
            return Err(ChainError::reverted(data, Some(tx_hash)));
        }
        let block_time = match &receipt.block_hash {
            Some(hash) => {
                let block = self.existing_block(block_number).await?;
                if block.hash != *hash {
                    tracing::warn!(%tx_hash, block_number, "receipt's block was reorganised away");
                }
                block.timestamp.to()
            }
            None => self.existing_block(block_number).await?.timestamp.to(),
        };
        let logs = receipt
            .logs
            .into_iter()
            .map(|mut log| {
                log.block_number.get_or_insert(U64::from(block_number));
                if let Some(hash) = receipt.block_hash {
                    log.block_hash.get_or_insert(hash);
                }
                log.transaction_hash.get_or_insert(tx_hash);
                log.into_event(block_time)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TxReceipt {
            tx_hash,
            block_number: BlockNumber(block_number),
            gas_used: receipt.gas_used.to(),
            contract_address: receipt.contract_address,
            logs,
        })
    }

    /// Polls for the receipt of `tx_hash` until the inclusion timeout. A node that is
    /// briefly unreachable while waiting is retried; at the end, [`ChainError::NotIncluded`].
    async fn wait_for_receipt(&self, tx_hash: B256) -> Result<RpcReceipt, ChainError> {
        let deadline = Instant::now() + self.config.inclusion_timeout;
        loop {
            match self.receipt(tx_hash).await {
                Ok(Some(receipt)) if receipt.block_number.is_some() => return Ok(receipt),
                Ok(_) => {}
                Err(ChainError::Unreachable { reason, .. }) => {
                    tracing::debug!(%tx_hash, %reason, "node unreachable while waiting for receipt");
                }
                Err(err) => return Err(err),
            }
            if Instant::now() >= deadline {
                return Err(ChainError::NotIncluded(tx_hash));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }
}

#[async_trait]
impl Chain for RpcChain {
    async fn chain_id(&self) -> Result<ChainId, ChainError> {
        if let Some(id) = self.chain_id.get() {
            return Ok(ChainId(*id));
        }
        let id: U64 = self.request("eth_chainId", json!([])).await?;
        Ok(ChainId(*self.chain_id.get_or_init(|| id.to())))
    }

    async fn head(&self) -> Result<ChainHead, ChainError> {
        let block = self.latest_block().await?;
        Ok(ChainHead {
            number: BlockNumber(block.number.to()),
            hash: block.hash,
            timestamp: ChainTime(block.timestamp.to()),
        })
    }

    async fn balance(&self, account: Address) -> Result<U256, ChainError> {
        self.request("eth_getBalance", json!([account, "latest"]))
            .await
    }

    async fn nonce(&self, account: Address) -> Result<u64, ChainError> {
        let count: U64 = self
            .request("eth_getTransactionCount", json!([account, "pending"]))
            .await?;
        Ok(count.to())
    }

    async fn call(&self, request: CallRequest) -> Result<Bytes, ChainError> {
        let call = Self::call_object(
            request.from,
            Some(request.to),
            &request.data,
            U256::ZERO,
            None,
        );
        self.request_revertible("eth_call", json!([call, "latest"]))
            .await
    }

    async fn send(&self, signer: &PrivateKey, request: TxRequest) -> Result<TxReceipt, ChainError> {
        let wallet = PrivateKeySigner::from_bytes(&B256::from(signer.to_bytes()))
            .map_err(|e| ChainError::Invalid(format!("signing key: {e}")))?;
        let from = signer.address();
        let chain_id = self.chain_id().await?.0;

        // Pre-flight: a transaction that would revert fails here, named, and is not sent.
        // (Without the caller's gas limit: a limit below the need is the caller's choice
        // and fails on chain, not here.)
        let estimate_object =
            Self::call_object(Some(from), request.to, &request.data, request.value, None);
        let estimate: U64 = self
            .request_revertible("eth_estimateGas", json!([estimate_object]))
            .await?;
        let estimate: u64 = estimate.to();
        let gas_limit = request.gas_limit.unwrap_or_else(|| {
            // A fifth on top, for state that moves between estimation and inclusion.
            estimate
                .saturating_add(estimate / 5)
                .min(TX_GAS_CAP.max(estimate))
        });
        let (eip1559, gas_price) = self.fees().await?;
        let to = request.to.map_or(TxKind::Create, TxKind::Call);

        let slot = self.signer_slot(from);
        let mut attempt = 0;
        let tx_hash = loop {
            attempt += 1;
            let mut next_nonce = slot.lock().await;
            let nonce = match *next_nonce {
                Some(nonce) => nonce,
                None => self.nonce(from).await?,
            };
            let sign = |hash: B256| {
                wallet
                    .sign_hash_sync(&hash)
                    .map_err(|e| ChainError::Invalid(format!("signing: {e}")))
            };
            let envelope: TxEnvelope = match eip1559 {
                Some((max_fee_per_gas, max_priority_fee_per_gas)) => {
                    let tx = TxEip1559 {
                        chain_id,
                        nonce,
                        gas_limit,
                        max_fee_per_gas,
                        max_priority_fee_per_gas,
                        to,
                        value: request.value,
                        access_list: Default::default(),
                        input: request.data.clone(),
                    };
                    let signature = sign(tx.signature_hash())?;
                    tx.into_signed(signature).into()
                }
                None => {
                    let tx = TxLegacy {
                        chain_id: Some(chain_id),
                        nonce,
                        gas_price,
                        gas_limit,
                        to,
                        value: request.value,
                        input: request.data.clone(),
                    };
                    let signature = sign(tx.signature_hash())?;
                    tx.into_signed(signature).into()
                }
            };
            let tx_hash = *envelope.tx_hash();
            let raw = Bytes::from(envelope.encoded_2718());
            tracing::debug!(%tx_hash, %from, nonce, gas_limit, "sending transaction");

            let err = match self
                .raw::<B256>("eth_sendRawTransaction", json!([raw]))
                .await
            {
                Ok(returned) => {
                    *next_nonce = Some(nonce + 1);
                    if returned != tx_hash {
                        tracing::warn!(%returned, %tx_hash, "node returned a different transaction hash");
                    }
                    break tx_hash;
                }
                Err(err) => err,
            };
            // Whatever happened, ask the node for the nonce next time.
            *next_nonce = None;
            drop(next_nonce);
            match &err {
                RpcError::Transport(_) if certainly_not_delivered(&err) => {
                    return Err(map_error(&self.config.url, err, false));
                }
                // Timed out or cut off mid-request: it may have arrived. Wait for it.
                RpcError::Transport(_) => {
                    tracing::debug!(%tx_hash, "send may have failed; waiting for the receipt");
                    break tx_hash;
                }
                _ => {
                    let message = err.to_string().to_ascii_lowercase();
                    // The key was used elsewhere since the nonce was cached (or that
                    // use was reorganised away): once more with the node's count. An
                    // identical transaction "already known" is one more such case: with
                    // a current nonce it would not be identical.
                    if is_stale_nonce(&message) {
                        if attempt < 2 {
                            tracing::debug!(%from, nonce, %message, "stale nonce; retrying with the node's count");
                            continue;
                        }
                        return Err(map_error(&self.config.url, err, false));
                    }
                    // Rejected — or, on Hardhat, mined and failed (it reports the
                    // failure of an automined transaction as an error). Tell them apart.
                    if let Ok(Some(receipt)) = self.receipt(tx_hash).await
                        && receipt.block_number.is_some()
                    {
                        return self.finish(receipt, from, &request, gas_limit).await;
                    }
                    return Err(map_error(&self.config.url, err, false));
                }
            }
        };
        let receipt = self.wait_for_receipt(tx_hash).await?;
        self.finish(receipt, from, &request, gas_limit).await
    }

    async fn events_since(
        &self,
        cursor: &EventCursor,
        filter: &EventFilter,
    ) -> Result<EventBatch, ChainError> {
        let head = self.block_number().await?;
        let final_block = head.saturating_sub(self.config.confirmations);
        let from = cursor.next_block.0;
        if from > final_block {
            return Ok(EventBatch {
                events: Vec::new(),
                cursor: *cursor,
                final_block: BlockNumber(final_block),
                caught_up: true,
            });
        }
        let max_blocks = if filter.max_blocks == 0 {
            DEFAULT_MAX_BLOCKS
        } else {
            filter.max_blocks
        };
        let to = final_block.min(from.saturating_add(max_blocks - 1));

        let first = self.existing_block(from).await?;
        if let Some(last_hash) = cursor.last_hash
            && from > 0
            && first.parent_hash != last_hash
        {
            return Err(ChainError::ReorgTooDeep {
                block: BlockNumber(from),
            });
        }
        let mut known: BTreeMap<u64, (B256, u64)> = BTreeMap::new();
        known.insert(from, (first.hash, first.timestamp.to()));
        let last_hash = if to == from {
            first.hash
        } else {
            let last = self.existing_block(to).await?;
            known.insert(to, (last.hash, last.timestamp.to()));
            last.hash
        };

        let mut log_filter = serde_json::Map::new();
        log_filter.insert("fromBlock".into(), json!(quantity(from)));
        log_filter.insert("toBlock".into(), json!(quantity(to)));
        if !filter.addresses.is_empty() {
            log_filter.insert("address".into(), json!(filter.addresses));
        }
        let logs: Vec<RpcLog> = self
            .request("eth_getLogs", json!([Value::Object(log_filter)]))
            .await?;

        let mut events = Vec::with_capacity(logs.len());
        for log in logs.into_iter().filter(|log| !log.removed) {
            let number: u64 = log
                .block_number
                .ok_or_else(|| ChainError::InvalidResponse("log without blockNumber".into()))?
                .to();
            let hash = log
                .block_hash
                .ok_or_else(|| ChainError::InvalidResponse("log without blockHash".into()))?;
            if number < from || number > to {
                return Err(ChainError::InvalidResponse(format!(
                    "eth_getLogs returned block {number} outside {from}..={to}"
                )));
            }
            let time = match (known.get(&number), log.block_timestamp) {
                (None, Some(time)) => {
                    known.insert(number, (hash, time.to()));
                    time.to()
                }
                _ => self.block_time(&mut known, number, hash).await?,
            };
            events.push(log.into_event(time)?);
        }
        events.sort_by_key(|event| (event.block_number, event.log_index));

        Ok(EventBatch {
            events,
            cursor: EventCursor {
                next_block: BlockNumber(to + 1),
                last_hash: Some(last_hash),
            },
            final_block: BlockNumber(final_block),
            caught_up: to >= final_block,
        })
    }
}
