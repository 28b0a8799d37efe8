//! The TokenNetwork as seen from outside: channel state rebuilt from the contract's
//! events (the contract stores only a hash of it), and the calldata of every operation.
//!
//! The contract checks `keccak256(abi.encode(channel))` against its stored word, so a
//! caller must pass exactly the current [`Channel`]; [`ChannelTracker`] keeps it.

use crate::ChainEvent;
use alloy::sol_types::{SolCall, SolEventInterface};
use smartmesh_contracts::TokenNetwork::{self, TokenNetworkEvents};
use smartmesh_primitives::{Address, B256, Bytes, PrivateKey, U256, eip712};
use std::collections::BTreeMap;

pub use smartmesh_contracts::TokenNetwork::{Balance, Channel};

/// What became of a channel that no longer has state on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOutcome {
    /// Settled after the timeout: amounts paid to participant1 and participant2.
    Settled {
        /// Paid to participant1.
        amount1: U256,
        /// Paid to participant2.
        amount2: U256,
    },
    /// Settled cooperatively.
    CooperativelySettled {
        /// Paid to participant1.
        amount1: U256,
        /// Paid to participant2.
        amount2: U256,
    },
    /// The closer lied; everything went to `beneficiary`.
    Penalized {
        /// The non-closer.
        beneficiary: Address,
        /// The whole remaining deposit.
        amount: U256,
    },
}

/// Channel states of one TokenNetwork, rebuilt by applying its events in chain order.
#[derive(Debug, Clone, Default)]
pub struct ChannelTracker {
    token_network: Address,
    open: BTreeMap<U256, Channel>,
    finished: BTreeMap<U256, ChannelOutcome>,
}

impl ChannelTracker {
    /// A tracker for the TokenNetwork at `token_network`.
    pub fn new(token_network: Address) -> Self {
        Self {
            token_network,
            ..Self::default()
        }
    }

    /// The current state of channel `id` (open or closed, not yet settled).
    pub fn channel(&self, id: U256) -> Option<&Channel> {
        self.open.get(&id)
    }

    /// How channel `id` ended, if it did.
    pub fn outcome(&self, id: U256) -> Option<&ChannelOutcome> {
        self.finished.get(&id)
    }

    /// Channels with state on chain.
    pub fn channels(&self) -> impl Iterator<Item = (&U256, &Channel)> {
        self.open.iter()
    }

    /// Applies events in chain order; events of other contracts are ignored. Returns the
    /// ids of the channels that changed.
    pub fn apply_all<'a>(&mut self, events: impl IntoIterator<Item = &'a ChainEvent>) -> Vec<U256> {
        events
            .into_iter()
            .filter_map(|event| self.apply(event))
            .collect()
    }

    /// Applies one event; returns the channel it changed, if any.
    pub fn apply(&mut self, event: &ChainEvent) -> Option<U256> {
        if event.address != self.token_network {
            return None;
        }
        let decoded = TokenNetworkEvents::decode_raw_log(&event.topics, &event.data).ok()?;
        use TokenNetworkEvents as E;
        match decoded {
            E::ChannelOpened(e) => {
                let channel = Channel {
                    participant1: e.participant1,
                    participant2: e.participant2,
                    settleTimeout: e.settleTimeout,
                    ..empty_channel()
                };
                self.open.insert(e.id, channel);
                Some(e.id)
            }
            E::ChannelDeposit(e) => {
                let ch = self.open.get_mut(&e.id)?;
                if e.participant == ch.participant1 {
                    ch.deposit1 = e.totalDeposit;
                } else {
                    ch.deposit2 = e.totalDeposit;
                }
                Some(e.id)
            }
            E::ChannelWithdraw(e) => {
                let ch = self.open.get_mut(&e.id)?;
                if e.participant == ch.participant1 {
                    ch.withdrawn1 = e.totalWithdraw;
                } else {
                    ch.withdrawn2 = e.totalWithdraw;
                }
                Some(e.id)
            }
            E::ChannelClosed(e) => {
                let ch = self.open.get_mut(&e.id)?;
                ch.closedAt = e.closedAt;
                ch.closer = e.closer;
                ch.closerBalance = e.closerBalance;
                ch.partnerBalance = e.partnerBalance;
                Some(e.id)
            }
            E::NonClosingBalanceProofUpdated(e) => {
                self.open.get_mut(&e.id)?.confirmed = true;
                Some(e.id)
            }
            E::ChannelPenalized(e) => self.finish(
                e.id,
                ChannelOutcome::Penalized {
                    beneficiary: e.beneficiary,
                    amount: e.amount,
                },
            ),
            E::ChannelSettled(e) => self.finish(
                e.id,
                ChannelOutcome::Settled {
                    amount1: e.amount1,
                    amount2: e.amount2,
                },
            ),
            E::CooperativeSettled(e) => self.finish(
                e.id,
                ChannelOutcome::CooperativelySettled {
                    amount1: e.amount1,
                    amount2: e.amount2,
                },
            ),
            _ => None,
        }
    }

    fn finish(&mut self, id: U256, outcome: ChannelOutcome) -> Option<U256> {
        self.open.remove(&id);
        self.finished.insert(id, outcome);
        Some(id)
    }
}

fn empty_balance() -> Balance {
    Balance {
        nonce: 0,
        transferredAmount: U256::ZERO,
        lockedAmount: U256::ZERO,
        locksroot: B256::ZERO,
    }
}

fn empty_channel() -> Channel {
    Channel {
        participant1: Address::ZERO,
        participant2: Address::ZERO,
        settleTimeout: 0,
        closedAt: 0,
        closer: Address::ZERO,
        confirmed: false,
        deposit1: U256::ZERO,
        deposit2: U256::ZERO,
        withdrawn1: U256::ZERO,
        withdrawn2: U256::ZERO,
        closerBalance: empty_balance(),
        partnerBalance: empty_balance(),
    }
}

/// Balance data with nothing sent (nonce 0).
pub fn no_balance() -> Balance {
    empty_balance()
}

/// The channel id assigned by an `openChannel`/`openChannelWithDeposit` transaction,
/// from its logs.
pub fn opened_channel_id(logs: &[ChainEvent]) -> Option<U256> {
    logs.iter().find_map(|log| {
        match TokenNetworkEvents::decode_raw_log(&log.topics, &log.data).ok()? {
            TokenNetworkEvents::ChannelOpened(e) => Some(e.id),
            _ => None,
        }
    })
}

/// Calldata builders, one per contract operation, so callers never hand-assemble ABI.
pub mod calls {
    use super::*;

    fn encode(call: impl SolCall) -> Bytes {
        call.abi_encode().into()
    }

    /// `openChannel(p1, p2, settleTimeout)`.
    pub fn open(participant1: Address, participant2: Address, settle_timeout: u64) -> Bytes {
        encode(TokenNetwork::openChannelCall {
            participant1,
            participant2,
            settleTimeout: settle_timeout,
        })
    }

    /// `openChannelWithDeposit(partner, settleTimeout, deposit)` (sender is participant1).
    pub fn open_with_deposit(partner: Address, settle_timeout: u64, deposit: U256) -> Bytes {
        encode(TokenNetwork::openChannelWithDepositCall {
            partner,
            settleTimeout: settle_timeout,
            deposit,
        })
    }

    /// `setTotalDeposit(id, ch, participant, total)`.
    pub fn set_total_deposit(id: U256, ch: &Channel, participant: Address, total: U256) -> Bytes {
        encode(TokenNetwork::setTotalDepositCall {
            id,
            ch: ch.clone(),
            participant,
            totalDeposit: total,
        })
    }

    /// `closeChannel(...)`.
    pub fn close(
        id: U256,
        ch: &Channel,
        partner_proof: Balance,
        partner_message_hash: B256,
        partner_signature: Bytes,
        closer_declared: Balance,
    ) -> Bytes {
        encode(TokenNetwork::closeChannelCall {
            id,
            ch: ch.clone(),
            partnerProof: partner_proof,
            partnerMessageHash: partner_message_hash,
            partnerSig: partner_signature,
            closerDeclared: closer_declared,
        })
    }

    /// `updateNonClosingBalanceProof(...)`; `non_closer_signature` may be empty when the
    /// non-closer itself sends it.
    pub fn update(
        id: U256,
        ch: &Channel,
        closer_proof: Balance,
        closer_message_hash: B256,
        closer_signature: Bytes,
        non_closer_signature: Bytes,
    ) -> Bytes {
        encode(TokenNetwork::updateNonClosingBalanceProofCall {
            id,
            ch: ch.clone(),
            closerProof: closer_proof,
            closerMessageHash: closer_message_hash,
            closerSig: closer_signature,
            nonCloserSig: non_closer_signature,
        })
    }

    /// `settleChannel(id, ch)`.
    pub fn settle(id: U256, ch: &Channel) -> Bytes {
        encode(TokenNetwork::settleChannelCall { id, ch: ch.clone() })
    }

    /// `cooperativeSettle(...)`.
    pub fn cooperative_settle(
        id: U256,
        ch: &Channel,
        balance1: U256,
        balance2: U256,
        sig1: Bytes,
        sig2: Bytes,
    ) -> Bytes {
        encode(TokenNetwork::cooperativeSettleCall {
            id,
            ch: ch.clone(),
            balance1,
            balance2,
            sig1,
            sig2,
        })
    }

    /// `withdraw(...)`.
    pub fn withdraw(
        id: U256,
        ch: &Channel,
        participant: Address,
        total_withdraw: U256,
        expiration: U256,
        participant_sig: Bytes,
        partner_sig: Bytes,
    ) -> Bytes {
        encode(TokenNetwork::withdrawCall {
            id,
            ch: ch.clone(),
            participant,
            totalWithdraw: total_withdraw,
            expiration,
            participantSig: participant_sig,
            partnerSig: partner_sig,
        })
    }

    /// `unlock(id, sender, receiver, locks)`.
    pub fn unlock(id: U256, sender: Address, receiver: Address, locks: Vec<u8>) -> Bytes {
        encode(TokenNetwork::unlockCall {
            id,
            sender,
            receiver,
            locks: locks.into(),
        })
    }
}

/// Signs the TokenNetwork's typed data for one contract on one chain.
#[derive(Debug, Clone)]
pub struct TokenNetworkSigner {
    domain: alloy::sol_types::Eip712Domain,
}

impl TokenNetworkSigner {
    /// For the TokenNetwork at `token_network` on `chain_id`.
    pub fn new(chain_id: smartmesh_primitives::ChainId, token_network: Address) -> Self {
        Self {
            domain: smartmesh_primitives::eip712::token_network_domain(chain_id, token_network),
        }
    }

    fn sign<T: alloy::sol_types::SolStruct>(&self, key: &PrivateKey, value: &T) -> Bytes {
        Bytes::copy_from_slice(eip712::sign(key, value, &self.domain).as_bytes())
    }

    /// The EIP-712 digest of a balance proof of channel `id`.
    pub fn balance_proof_digest(&self, id: U256, balance: &Balance, message_hash: B256) -> B256 {
        eip712::digest(&balance_proof(id, balance, message_hash), &self.domain)
    }

    /// `key`'s balance proof for channel `id`.
    pub fn balance_proof(
        &self,
        key: &PrivateKey,
        id: U256,
        balance: &Balance,
        message_hash: B256,
    ) -> Bytes {
        self.sign(key, &balance_proof(id, balance, message_hash))
    }

    /// The non-closer's permission for a delegate to submit the closer's proof.
    pub fn update_authorization(
        &self,
        non_closer: &PrivateKey,
        id: U256,
        closer: Address,
        closer_proof: &Balance,
        closer_message_hash: B256,
    ) -> Bytes {
        let digest = self.balance_proof_digest(id, closer_proof, closer_message_hash);
        self.sign(
            non_closer,
            &eip712::UpdateAuthorization {
                channelId: id,
                closer,
                balanceProofDigest: digest,
            },
        )
    }

    /// A withdraw proof, signed by one side (both sides must sign).
    pub fn withdraw(
        &self,
        key: &PrivateKey,
        id: U256,
        participant: Address,
        total_withdraw: U256,
        expiration: U256,
    ) -> Bytes {
        self.sign(
            key,
            &eip712::WithdrawProof {
                channelId: id,
                participant,
                totalWithdraw: total_withdraw,
                expiration,
            },
        )
    }

    /// A cooperative settlement, signed by one side (both sides must sign).
    pub fn cooperative_settle(
        &self,
        key: &PrivateKey,
        id: U256,
        ch: &Channel,
        balance1: U256,
        balance2: U256,
    ) -> Bytes {
        self.sign(
            key,
            &eip712::CooperativeSettle {
                channelId: id,
                participant1: ch.participant1,
                balance1,
                participant2: ch.participant2,
                balance2,
            },
        )
    }

    /// A participant's permission for `agent` to deposit up to `total_deposit` for it.
    #[allow(clippy::too_many_arguments)]
    pub fn deposit_authorization(
        &self,
        participant: &PrivateKey,
        id: U256,
        total_deposit: U256,
        agent: Address,
        fee: U256,
        deadline: U256,
    ) -> Bytes {
        self.sign(
            participant,
            &eip712::DepositAuthorization {
                channelId: id,
                participant: participant.address(),
                totalDeposit: total_deposit,
                agent,
                fee,
                deadline,
            },
        )
    }
}

fn balance_proof(id: U256, balance: &Balance, message_hash: B256) -> eip712::BalanceProof {
    eip712::BalanceProof {
        channelId: id,
        nonce: balance.nonce,
        transferredAmount: balance.transferredAmount,
        lockedAmount: balance.lockedAmount,
        locksroot: balance.locksroot,
        messageHash: message_hash,
    }
}
