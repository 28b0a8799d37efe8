//! Contract scenarios that run on any backend: each flow takes a fresh `&mut Lifecycle`
//! (embedded chain, `smartmesh devchain`, Hardhat, ...), drives the contracts through one
//! feature or attack, and asserts exact token balances and exact revert names. A broken
//! expectation panics with a message naming it; a chain failure is returned.
//!
//! The contract tests in `crates/testkit/tests/` call every flow on
//! `Lifecycle::embedded(n)`; the same flows can be pointed at a JSON-RPC node with
//! `Lifecycle::over_rpc(url, n)`. Each flow documents how many participants it needs.
//! Flows only use chain time relative to the newest block (and
//! [`Lifecycle::set_next_block_timestamp`] for exact boundaries), never the wall clock.

pub mod attacks;
pub mod channel;
pub mod registry;
pub mod token;

use crate::Lifecycle;
use alloy::primitives::U512;
use alloy::sol_types::SolEvent;
use smartmesh_chain::token_network::{Balance, Channel};
use smartmesh_chain::{ChainError, TxReceipt};
use smartmesh_primitives::{Address, B256, Bytes, PrivateKey, Signature, U256, keccak256};
use std::fmt::Debug;

/// What a flow returns: chain failures; broken expectations panic.
pub type FlowResult = Result<(), ChainError>;

/// Every backend-agnostic flow, one after the other on one chain (none assumes a fresh
/// chain), so the same contract behaviour is checked on the embedded chain, against
/// `smartmesh devchain` and against a third-party node. Needs 3 participants.
pub async fn run_all(lc: &mut Lifecycle) -> FlowResult {
    token::permit(lc).await?;
    token::transfer_with_fee(lc).await?;
    token::transfer_with_fee_refusals(lc).await?;
    registry::secret_registry(lc).await?;
    channel::channel_lifecycle(lc).await?;
    channel::open_rules(lc).await?;
    channel::open_with_deposit(lc).await?;
    channel::deposit_rules(lc).await?;
    channel::gasless_deposit(lc).await?;
    channel::withdraw_rules(lc).await?;
    channel::cooperative_settle(lc).await?;
    channel::close_rules(lc).await?;
    channel::update_rules(lc).await?;
    channel::delegate_update(lc).await?;
    channel::settle_rules(lc).await?;
    channel::settlement_matches_ledger(lc).await?;
    channel::settlement_clamps(lc).await?;
    channel::unlock(lc).await?;
    channel::unlock_undecided_and_caps(lc).await?;
    channel::views_and_constructor(lc).await?;
    attacks::penalty_higher_nonce(lc).await?;
    attacks::penalty_same_nonce_different_content(lc).await?;
    attacks::penalty_lower_nonce_higher_transferred(lc).await?;
    attacks::penalty_by_delegate(lc).await?;
    attacks::honest_closer_never_punished(lc).await?;
    attacks::known_limitation_higher_declared_nonce(lc).await?;
    attacks::reopened_channel_old_signatures_dead(lc).await?;
    attacks::replay_across_domains(lc).await?;
    attacks::high_s_signatures_rejected(lc).await?;
    attacks::token_reentrancy_refused(lc).await?;
    Ok(())
}

/// Panics unless `result` is a revert of the custom error `name`; returns the error so
/// the caller can look at its arguments.
#[track_caller]
pub fn expect_revert<T: Debug>(result: Result<T, ChainError>, name: &str) -> ChainError {
    match result {
        Ok(value) => panic!("expected a revert {name}, but the transaction succeeded: {value:?}"),
        Err(err) => {
            assert_eq!(
                err.revert_name(),
                Some(name),
                "expected a revert {name}, got: {err}"
            );
            err
        }
    }
}

/// The decoded reason of a revert (`Name(arg=value, ...)`), for checking arguments.
pub fn revert_reason(err: &ChainError) -> String {
    match err {
        ChainError::Reverted {
            reason: Some(reason),
            ..
        } => reason.clone(),
        other => other.to_string(),
    }
}

/// Asserts that the participants of a flow exist.
#[track_caller]
pub fn need(lc: &Lifecycle, participants: usize) {
    assert!(
        lc.keys.len() >= participants,
        "this flow needs {participants} participants, the lifecycle has {}",
        lc.keys.len()
    );
}

/// The first `n` participant keys, cloned (so `lc` can be borrowed mutably).
pub fn keys(lc: &Lifecycle, n: usize) -> Vec<PrivateKey> {
    need(lc, n);
    lc.keys[..n].to_vec()
}

/// SMT balances of several accounts.
pub async fn balances(lc: &Lifecycle, who: &[Address]) -> Result<Vec<U256>, ChainError> {
    let mut out = Vec::with_capacity(who.len());
    for account in who {
        out.push(lc.smt_balance(*account).await?);
    }
    Ok(out)
}

/// Every log of `receipt` that decodes as event `E`, in order.
pub fn events<E: SolEvent>(receipt: &TxReceipt) -> Vec<E> {
    receipt
        .logs
        .iter()
        .filter(|log| log.topics.first() == Some(&E::SIGNATURE_HASH))
        .filter_map(|log| E::decode_raw_log(log.topics.iter().copied(), &log.data).ok())
        .collect()
}

/// The chain time of the block that included `receipt`.
pub fn block_time(lc: &Lifecycle, receipt: &TxReceipt) -> u64 {
    receipt
        .logs
        .first()
        .map(|log| log.block_time.0)
        .unwrap_or_else(|| {
            // A receipt without logs: the embedded chain can still tell.
            lc.embedded_chain()
                .and_then(|chain| chain.block(receipt.block_number.0))
                .map(|block| block.timestamp)
                .unwrap_or_default()
        })
}

/// A 32-byte value derived from a label (secrets, authorization nonces).
pub fn word(label: &str) -> B256 {
    keccak256(label.as_bytes())
}

/// The malleable twin of a low-s signature: `s' = n - s`, `v` flipped. It recovers the
/// same signer in raw ECDSA, so only the low-s rule rejects it.
pub fn high_s_twin(signature: &[u8]) -> Bytes {
    let sig = Signature::from_slice(signature).expect("a 65-byte signature");
    let n = U256::from_be_bytes(SECP256K1_ORDER);
    let s_twin = n - sig.s();
    let mut twin = sig.0;
    twin[32..64].copy_from_slice(&s_twin.to_be_bytes::<32>());
    twin[64] = if sig.0[64] == 27 { 28 } else { 27 };
    Bytes::copy_from_slice(&twin)
}

/// The secp256k1 group order `n`.
pub const SECP256K1_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// What settling a closed channel pays, by the settlement formula of
/// `contracts/README.md`, computed independently in 512-bit arithmetic (no clamping
/// tricks): the off-chain ledger the contract must match to the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// Paid to participant1 at settlement.
    pub amount1: U256,
    /// Paid to participant2 at settlement.
    pub amount2: U256,
    /// Retained for participant1's pending locks (towards participant2).
    pub kept1: U256,
    /// Retained for participant2's pending locks (towards participant1).
    pub kept2: U256,
}

/// The balances each participant sent: `(participant1's, participant2's)`.
pub fn sent_balances(ch: &Channel) -> (&Balance, &Balance) {
    if ch.closer == ch.participant1 {
        (&ch.closerBalance, &ch.partnerBalance)
    } else {
        (&ch.partnerBalance, &ch.closerBalance)
    }
}

/// The reference settlement of a closed channel.
pub fn expected_settlement(ch: &Channel) -> Settlement {
    let (b1, b2) = sent_balances(ch);
    let wide = |v: U256| U512::from(v);
    let total = wide(ch.deposit1) + wide(ch.deposit2) - wide(ch.withdrawn1) - wide(ch.withdrawn2);
    // net1 = clamp(deposit1 - withdrawn1 + T2 - T1, 0, total)
    let plus = wide(ch.deposit1) + wide(b2.transferredAmount);
    let minus = wide(ch.withdrawn1) + wide(b1.transferredAmount);
    let net1 = if plus <= minus {
        U512::ZERO
    } else {
        (plus - minus).min(total)
    };
    let net2 = total - net1;
    let kept = |b: &Balance, net: U512| {
        if b.locksroot == B256::ZERO {
            U512::ZERO
        } else {
            wide(b.lockedAmount).min(net)
        }
    };
    let kept1 = kept(b1, net1);
    let kept2 = kept(b2, net2);
    let narrow = |v: U512| U256::from(v);
    Settlement {
        amount1: narrow(net1 - kept1),
        amount2: narrow(net2 - kept2),
        kept1: narrow(kept1),
        kept2: narrow(kept2),
    }
}

/// `deposit1 + deposit2 - withdrawn1 - withdrawn2` of a channel.
pub fn remaining(ch: &Channel) -> U256 {
    ch.deposit1 + ch.deposit2 - ch.withdrawn1 - ch.withdrawn2
}
