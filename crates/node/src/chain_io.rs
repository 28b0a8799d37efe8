//! Everything between the node and the chain: decoding contract events into engine
//! inputs, building the calldata of the engine's on-chain actions, the chain watcher
//! and the on-chain executor.

use crate::error::NodeError;
use alloy::sol_types::{SolCall, SolEventInterface};
use serde::{Deserialize, Serialize};
use smartmesh_chain::deploy::Deployment;
use smartmesh_chain::token_network::{self, Channel, ChannelTracker, calls, no_balance};
use smartmesh_chain::{
    Chain, ChainError, ChainEvent, EventCursor, EventFilter, TxReceipt, TxRequest,
};
use smartmesh_contracts::SecretRegistry::SecretRegistryEvents;
use smartmesh_contracts::TokenNetwork::TokenNetworkEvents;
use smartmesh_contracts::{SecretRegistry, SmartMeshToken};
use smartmesh_engine::{Balance, ContractSend, Input, SignedBalanceProof};
use smartmesh_primitives::{
    Address, Bytes, ChainTime, ChannelId, Nonce, PrivateKey, TokenAmount, U256,
};
use std::sync::{Arc, Mutex};

/// Meta key of the chain cursor in storage.
pub const CURSOR_KEY: &str = "chain_cursor";

/// How far the engine has seen the chain; stored in storage meta in the same append as
/// the input it belongs to, so a restart neither repeats nor skips an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCursor {
    /// `(block, log index)` of the newest chain event turned into an input.
    pub last_event: Option<(u64, u64)>,
    /// Newest block reported with `ChainSynced`.
    pub synced_block: u64,
}

impl ChainCursor {
    /// Encoded for storage meta.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decoded from storage meta (`None` when absent or unreadable: start over).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The node's access to the chain: the backend, its key, where the contracts are, and
/// the TokenNetwork's channel structs rebuilt from events (the contract wants the exact
/// current `Channel` in most calls).
pub struct ChainAccess {
    /// The backend.
    pub chain: Arc<dyn Chain>,
    /// The node's key (signs transactions).
    pub key: PrivateKey,
    /// Contract addresses.
    pub deployment: Deployment,
    /// Channel structs from the events the watcher scanned.
    pub tracker: Mutex<ChannelTracker>,
    /// Newest block the watcher scanned (for "wait until the node saw my transaction").
    pub scanned: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for ChainAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainAccess")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

impl ChainAccess {
    /// Access for `key` to the contracts of `deployment` on `chain`.
    pub fn new(chain: Arc<dyn Chain>, key: PrivateKey, deployment: Deployment) -> Self {
        let tracker = Mutex::new(ChannelTracker::new(deployment.token_network));
        Self {
            chain,
            key,
            deployment,
            tracker,
            scanned: tokio::sync::watch::channel(0).0,
        }
    }

    /// The tracked on-chain struct of channel `id`.
    pub fn channel(&self, id: ChannelId) -> Option<Channel> {
        self.tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .channel(id.0)
            .cloned()
    }

    /// Waits (bounded) until the watcher scanned block `block`.
    pub async fn wait_scanned(
        &self,
        block: u64,
        limit: std::time::Duration,
    ) -> Result<(), NodeError> {
        let mut rx = self.scanned.subscribe();
        let wait = rx.wait_for(|b| *b >= block);
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => Err(NodeError::Timeout(format!(
                "chain watcher to reach block {block}"
            ))),
        }
    }

    /// Sends a TokenNetwork call from the node's key.
    pub async fn send_tn(&self, data: Bytes) -> Result<TxReceipt, ChainError> {
        self.chain
            .send(
                &self.key,
                TxRequest::call(self.deployment.token_network, data),
            )
            .await
    }

    /// `approve(TokenNetwork, amount)` on the token from the node's key.
    pub async fn approve(&self, amount: U256) -> Result<TxReceipt, ChainError> {
        let call = SmartMeshToken::approveCall {
            spender: self.deployment.token_network,
            value: amount,
        };
        self.chain
            .send(
                &self.key,
                TxRequest::call(self.deployment.token, call.abi_encode()),
            )
            .await
    }

    /// SMT balance of `who`.
    pub async fn smt_balance(&self, who: Address) -> Result<U256, ChainError> {
        let call = SmartMeshToken::balanceOfCall { account: who };
        let out = self
            .chain
            .call(smartmesh_chain::CallRequest::new(
                self.deployment.token,
                call.abi_encode(),
            ))
            .await?;
        SmartMeshToken::balanceOfCall::abi_decode_returns(&out)
            .map_err(|e| ChainError::InvalidResponse(format!("balanceOf: {e}")))
    }

    /// The transaction performing `action`, or `None` when there is nothing to do (the
    /// channel is no longer on chain).
    pub fn build(&self, action: &ContractSend) -> Option<TxRequest> {
        let tn = self.deployment.token_network;
        let channel = |id: &ChannelId| self.channel(*id);
        let data = match action {
            ContractSend::Close {
                channel_id,
                partner_proof,
                our_declared,
            } => {
                let ch = channel(channel_id)?;
                let (proof, hash, sig) = match partner_proof {
                    Some(p) => signed_parts(p),
                    None => (no_balance(), Default::default(), Bytes::new()),
                };
                calls::close(channel_id.0, &ch, proof, hash, sig, to_chain(our_declared))
            }
            ContractSend::Penalty {
                channel_id,
                closer_proof,
            } => {
                let ch = channel(channel_id)?;
                let (proof, hash, sig) = signed_parts(closer_proof);
                calls::update(channel_id.0, &ch, proof, hash, sig, Bytes::new())
            }
            ContractSend::Settle { channel_id } => {
                calls::settle(channel_id.0, &channel(channel_id)?)
            }
            ContractSend::Withdraw {
                channel_id,
                participant,
                total_withdraw,
                expiration,
                participant_signature,
                partner_signature,
            } => calls::withdraw(
                channel_id.0,
                &channel(channel_id)?,
                *participant,
                total_withdraw.0,
                U256::from(*expiration),
                Bytes::copy_from_slice(participant_signature.as_bytes()),
                Bytes::copy_from_slice(partner_signature.as_bytes()),
            ),
            ContractSend::CooperativeSettle {
                channel_id,
                balance1,
                balance2,
                signature1,
                signature2,
            } => calls::cooperative_settle(
                channel_id.0,
                &channel(channel_id)?,
                balance1.0,
                balance2.0,
                Bytes::copy_from_slice(signature1.as_bytes()),
                Bytes::copy_from_slice(signature2.as_bytes()),
            ),
            ContractSend::RegisterSecret { secret } => {
                let call = SecretRegistry::registerSecretCall { secret: *secret };
                return Some(TxRequest::call(
                    self.deployment.secret_registry,
                    call.abi_encode(),
                ));
            }
            ContractSend::Unlock {
                channel_id,
                sender,
                receiver,
                locks,
            } => {
                let mut packed = Vec::with_capacity(locks.len() * 96);
                for lock in locks {
                    packed.extend_from_slice(&lock.packed());
                }
                calls::unlock(channel_id.0, *sender, *receiver, packed)
            }
        };
        Some(TxRequest::call(tn, data))
    }
}

fn signed_parts(
    p: &SignedBalanceProof,
) -> (token_network::Balance, alloy::primitives::B256, Bytes) {
    (
        to_chain(&p.balance()),
        p.message_hash,
        Bytes::copy_from_slice(p.signature.as_bytes()),
    )
}

/// The engine's balance as the contract's struct.
pub fn to_chain(b: &Balance) -> token_network::Balance {
    token_network::Balance {
        nonce: b.nonce.0,
        transferredAmount: b.transferred_amount.0,
        lockedAmount: b.locked_amount.0,
        locksroot: b.locksroot,
    }
}

/// The contract's balance struct as the engine's.
pub fn from_chain(b: &token_network::Balance) -> Balance {
    Balance {
        nonce: Nonce(b.nonce),
        transferred_amount: TokenAmount(b.transferredAmount),
        locked_amount: TokenAmount(b.lockedAmount),
        locksroot: b.locksroot,
    }
}

/// The engine input for one contract event, if it concerns the engine.
pub fn decode_event(deployment: &Deployment, event: &ChainEvent) -> Option<Input> {
    if event.address == deployment.token_network {
        let decoded = TokenNetworkEvents::decode_raw_log(&event.topics, &event.data).ok()?;
        use TokenNetworkEvents as E;
        Some(match decoded {
            E::ChannelOpened(e) => Input::ContractReceiveChannelOpened {
                channel_id: ChannelId(e.id),
                participant1: e.participant1,
                participant2: e.participant2,
                settle_timeout: e.settleTimeout,
            },
            E::ChannelDeposit(e) => Input::ContractReceiveChannelDeposit {
                channel_id: ChannelId(e.id),
                participant: e.participant,
                total_deposit: TokenAmount(e.totalDeposit),
            },
            E::ChannelWithdraw(e) => Input::ContractReceiveChannelWithdraw {
                channel_id: ChannelId(e.id),
                participant: e.participant,
                total_withdraw: TokenAmount(e.totalWithdraw),
            },
            E::ChannelClosed(e) => Input::ContractReceiveChannelClosed {
                channel_id: ChannelId(e.id),
                closer: e.closer,
                closed_at: ChainTime(e.closedAt),
                closer_balance: from_chain(&e.closerBalance),
                partner_balance: from_chain(&e.partnerBalance),
            },
            E::NonClosingBalanceProofUpdated(e) => {
                Input::ContractReceiveNonClosingBalanceProofUpdated {
                    channel_id: ChannelId(e.id),
                }
            }
            E::ChannelPenalized(e) => Input::ContractReceiveChannelPenalized {
                channel_id: ChannelId(e.id),
                beneficiary: e.beneficiary,
                amount: TokenAmount(e.amount),
            },
            E::ChannelSettled(e) => Input::ContractReceiveChannelSettled {
                channel_id: ChannelId(e.id),
                amount1: TokenAmount(e.amount1),
                amount2: TokenAmount(e.amount2),
            },
            E::CooperativeSettled(e) => Input::ContractReceiveChannelCooperativeSettled {
                channel_id: ChannelId(e.id),
                amount1: TokenAmount(e.amount1),
                amount2: TokenAmount(e.amount2),
            },
            _ => return None,
        })
    } else if event.address == deployment.secret_registry {
        match SecretRegistryEvents::decode_raw_log(&event.topics, &event.data).ok()? {
            SecretRegistryEvents::SecretRevealed(e) => Some(Input::ContractReceiveSecretRevealed {
                secrethash: e.secrethash,
                secret: e.secret,
                revealed_at: event.block_time,
            }),
        }
    } else {
        None
    }
}

/// The filter of the events the node follows.
pub fn event_filter(deployment: &Deployment) -> EventFilter {
    EventFilter::contracts(vec![deployment.token_network, deployment.secret_registry])
}

/// Where the watcher starts scanning (the deployment's first block).
pub fn start_cursor(deployment: &Deployment) -> EventCursor {
    EventCursor::from_block(deployment.start_block)
}
