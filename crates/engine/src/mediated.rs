//! Mediated (hash-locked) transfers: the initiator, mediator and target roles.
//!
//! Flow (Raiden's): the initiator locks `amount + fees` towards the first hop; each
//! mediator locks what it received less its fee towards the next hop, with the same
//! secret hash and expiration; the target asks the initiator for the secret
//! (`SecretRequest`), gets it (`RevealSecret`), and reveals it to its payer; every
//! payer that learns the secret from its payee sends `Unlock` (the lock's amount
//! becomes transferred) and reveals the secret to its own payer. A lock that is never
//! revealed leaves by `LockExpired` once chain time is surely past its expiration. A
//! payee holding the secret of a lock whose payer does not unlock registers the secret
//! on chain `reveal_timeout` before the expiration, so the lock stays claimable.

use crate::Context;
use crate::event::{ActionError, ContractSend, Event, InvalidReason, PaymentFailure};
use crate::routing::{ChannelGraph, FeeSchedule, find_route};
use crate::state::{ChannelState, ChannelStatus, NodeState, SignedBalanceProof};
use crate::transition::{
    Reject, check_envelope, open_channel, queue_onchain, send_queued, take_message_id, verify_from,
};
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{Address, B256, ChainTime, ChannelId, TokenAmount};
use smartmesh_wire::{
    BalanceProofData, EMPTY_SIGNATURE, HashLock, LockExpired, LockedTransfer, Message, PaymentId,
    RevealSecret, SecretRequest, TransferRefused, Unlock, locksroot, secrethash,
};
use std::collections::BTreeMap;

/// Reason codes of [`TransferRefused`].
pub mod refusal {
    /// No channel to the next hop with the capacity.
    pub const NO_CAPACITY: u8 = 1;
    /// The lock does not cover this node's fee.
    pub const FEE_TOO_LOW: u8 = 2;
    /// The lock expires too soon to mediate or accept safely.
    pub const EXPIRATION_TOO_SOON: u8 = 3;
    /// The route is malformed (loops, or names this node twice).
    pub const INVALID_ROUTE: u8 = 4;
    /// The target's lock is smaller than the payment.
    pub const AMOUNT_TOO_LOW: u8 = 5;
    /// The same secret hash is already in use here.
    pub const DUPLICATE_SECRETHASH: u8 = 6;
}

/// A payment we started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiatorPayment {
    /// Payment id.
    pub payment_id: PaymentId,
    /// Who is paid.
    pub target: Address,
    /// What the target receives.
    pub amount: TokenAmount,
    /// The secret.
    pub secret: B256,
    /// Our channel to the first hop.
    pub channel_id: ChannelId,
    /// The first hop.
    pub first_hop: Address,
    /// Our lock towards the first hop.
    pub lock: HashLock,
    /// Whether the secret went to the target.
    pub revealed_to_target: bool,
    /// Whether a hop refused it (it then only waits for the lock to expire).
    pub refused: bool,
}

/// A payment through us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediatorPayment {
    /// Payment id.
    pub payment_id: PaymentId,
    /// Who pays.
    pub initiator: Address,
    /// Who is paid.
    pub target: Address,
    /// Our payer (the previous hop).
    pub payer: Address,
    /// The channel with the payer.
    pub payer_channel: ChannelId,
    /// The lock the payer sent us.
    pub in_lock: HashLock,
    /// Our payee (the next hop) and channel.
    pub payee: Address,
    /// The channel with the payee.
    pub payee_channel: ChannelId,
    /// Our lock towards the payee.
    pub out_lock: HashLock,
    /// The secret, once known.
    pub secret: Option<B256>,
    /// Whether we passed a refusal back.
    pub refused: bool,
    /// Whether the secret's on-chain registration was queued.
    pub register_queued: bool,
    /// What became of the payer's lock.
    pub in_state: LockState,
    /// What became of our lock towards the payee.
    pub out_state: LockState,
}

/// What became of one lock of a mediated payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockState {
    /// Still pending.
    Pending,
    /// Unlocked off-chain (paid).
    Unlocked,
    /// Removed by expiry (not paid).
    Expired,
}

/// A payment to us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetPayment {
    /// Payment id.
    pub payment_id: PaymentId,
    /// Who pays.
    pub initiator: Address,
    /// The last hop.
    pub payer: Address,
    /// The channel with the payer.
    pub channel_id: ChannelId,
    /// The lock the payer sent us.
    pub lock: HashLock,
    /// The secret, once revealed.
    pub secret: Option<B256>,
    /// Whether the secret's on-chain registration was queued.
    pub register_queued: bool,
}

/// Mediated payments in flight and the channel graph they route over.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentsState {
    /// The TokenNetwork's channels and fee schedules.
    pub graph: ChannelGraph,
    /// Payments we started, by secret hash.
    pub initiated: BTreeMap<B256, InitiatorPayment>,
    /// Payments through us, by secret hash.
    pub mediated: BTreeMap<B256, MediatorPayment>,
    /// Payments to us, by secret hash.
    pub targeted: BTreeMap<B256, TargetPayment>,
    /// Secrets registered on chain: secret and registration time.
    pub registered: BTreeMap<B256, (B256, ChainTime)>,
}

impl PaymentsState {
    /// Whether `lock` can still be claimed thanks to an on-chain registration in time.
    fn registered_in_time(&self, lock: &HashLock) -> bool {
        self.registered
            .get(&lock.secrethash)
            .is_some_and(|(_, at)| *at <= lock.expiration)
    }
}

// ------------------------------------------------------------------ graph upkeep

pub(crate) fn graph_opened(state: &mut NodeState, id: ChannelId, p1: Address, p2: Address) {
    state.payments.graph.opened(id, p1, p2);
}

pub(crate) fn graph_deposit(
    state: &mut NodeState,
    id: ChannelId,
    who: Address,
    total: TokenAmount,
) {
    state.payments.graph.total_changed(id, who, total, false);
}

pub(crate) fn graph_withdraw(
    state: &mut NodeState,
    id: ChannelId,
    who: Address,
    total: TokenAmount,
) {
    state.payments.graph.total_changed(id, who, total, true);
}

pub(crate) fn graph_closed(state: &mut NodeState, id: ChannelId) {
    state.payments.graph.closed(id);
}

/// Records a node's advertised fee schedule (ours updates the config too).
pub(crate) fn update_fees(state: &mut NodeState, node: Address, fee: FeeSchedule) {
    if node == state.our_address {
        state.config.fee_flat = fee.flat;
        state.config.fee_proportional_ppm = fee.proportional_ppm;
    }
    state.payments.graph.fees.insert(node, fee);
}

// ------------------------------------------------------------------ building messages

fn sum_locks(locks: &[HashLock]) -> Option<TokenAmount> {
    locks
        .iter()
        .try_fold(TokenAmount::ZERO, |acc, l| acc.checked_add(l.amount).ok())
}

fn balance_proof_for(
    state: &NodeState,
    ch: &ChannelState,
    transferred: TokenAmount,
    locks: &[HashLock],
) -> Result<BalanceProofData, ActionError> {
    Ok(BalanceProofData {
        chain_id: state.chain_id,
        token_network: state.token_network,
        channel_id: ch.channel_id,
        nonce: ch.our.nonce().next().map_err(|_| ActionError::Overflow)?,
        transferred_amount: transferred,
        locked_amount: sum_locks(locks).ok_or(ActionError::Overflow)?,
        locksroot: locksroot(locks),
    })
}

/// Signs a balance-proof message built by `build`, makes it our newest proof with
/// `locks` as our pending locks, and queues it.
fn sign_and_send(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    transferred: TokenAmount,
    locks: Vec<HashLock>,
    build: impl FnOnce(u64, BalanceProofData, Address) -> Message,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    let ch = state
        .channels
        .get(&channel_id)
        .ok_or(ActionError::UnknownChannel)?;
    let bp = balance_proof_for(state, ch, transferred, &locks)?;
    let recipient = ch.partner.address;
    let message_id = take_message_id(state)?;
    let mut message = build(message_id, bp, recipient);
    let message_hash = message.sign(&ctx.key, &ctx.domain);
    let signature = message.signature().copied().unwrap_or(EMPTY_SIGNATURE);
    if let Some(ch) = state.channels.get_mut(&channel_id) {
        ch.our.proof = Some(SignedBalanceProof {
            data: bp,
            message_hash,
            signature,
        });
        ch.our.locks = locks;
    }
    send_queued(state, recipient, message, out);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn send_locked_transfer(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    lock: HashLock,
    payment_id: PaymentId,
    initiator: Address,
    target: Address,
    target_amount: TokenAmount,
    route: Vec<Address>,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    let ch = open_channel(state, channel_id)?;
    let available = ch.our_capacity();
    if available < lock.amount {
        return Err(ActionError::InsufficientCapacity { available });
    }
    if ch.our.locks.iter().any(|l| l.secrethash == lock.secrethash) {
        return Err(ActionError::Invalid(
            "secret hash already locked here".into(),
        ));
    }
    let mut locks = ch.our.locks.clone();
    locks.push(lock);
    let transferred = ch.our.transferred();
    sign_and_send(
        state,
        ctx,
        channel_id,
        transferred,
        locks,
        |message_id, balance_proof, recipient| {
            Message::LockedTransfer(LockedTransfer {
                message_id,
                payment_id,
                balance_proof,
                recipient,
                lock,
                initiator,
                target,
                target_amount,
                route,
                signature: EMPTY_SIGNATURE,
            })
        },
        out,
    )
}

/// Unlocks our lock `secrethash` in `channel_id` off-chain. `Ok(false)` if there is no
/// such lock (already unlocked or expired).
fn send_unlock(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    secret: B256,
    payment_id: PaymentId,
    out: &mut Vec<Event>,
) -> Result<bool, ActionError> {
    let hash = secrethash(&secret);
    let Some(ch) = state.channels.get(&channel_id) else {
        return Ok(false);
    };
    if !matches!(ch.status, ChannelStatus::Opened | ChannelStatus::Settling) {
        return Ok(false);
    }
    let Some((_lock, locks, transferred)) = ch
        .our
        .after_unlock(hash)
        .map_err(|_| ActionError::Overflow)?
    else {
        return Ok(false);
    };
    sign_and_send(
        state,
        ctx,
        channel_id,
        transferred,
        locks,
        |message_id, balance_proof, recipient| {
            Message::Unlock(Unlock {
                message_id,
                payment_id,
                balance_proof,
                recipient,
                secret,
                signature: EMPTY_SIGNATURE,
            })
        },
        out,
    )?;
    Ok(true)
}

fn send_lock_expired(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    hash: B256,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    let ch = state
        .channels
        .get(&channel_id)
        .ok_or(ActionError::UnknownChannel)?;
    let locks: Vec<HashLock> = ch
        .our
        .locks
        .iter()
        .filter(|l| l.secrethash != hash)
        .copied()
        .collect();
    let transferred = ch.our.transferred();
    sign_and_send(
        state,
        ctx,
        channel_id,
        transferred,
        locks,
        |message_id, balance_proof, recipient| {
            Message::LockExpired(LockExpired {
                message_id,
                balance_proof,
                recipient,
                secrethash: hash,
                signature: EMPTY_SIGNATURE,
            })
        },
        out,
    )
}

fn queue_plain(
    state: &mut NodeState,
    recipient: Address,
    build: impl FnOnce(u64) -> Message,
    out: &mut Vec<Event>,
) {
    if let Ok(message_id) = take_message_id(state) {
        send_queued(state, recipient, build(message_id), out);
    }
}

fn refuse(
    state: &mut NodeState,
    payer: Address,
    payment_id: PaymentId,
    hash: B256,
    reason: u8,
    out: &mut Vec<Event>,
) {
    queue_plain(
        state,
        payer,
        |message_id| {
            Message::TransferRefused(TransferRefused {
                message_id,
                payment_id,
                secrethash: hash,
                reason,
            })
        },
        out,
    );
}

// ------------------------------------------------------------------ initiator

pub(crate) fn action_initiate(
    state: &mut NodeState,
    ctx: &Context,
    target: Address,
    amount: TokenAmount,
    payment_id: PaymentId,
    secret: B256,
    out: &mut Vec<Event>,
) {
    if let Err(reason) = initiate(state, ctx, target, amount, payment_id, secret, out) {
        out.push(Event::PaymentFailed {
            payment_id,
            reason: PaymentFailure::Rejected(reason),
        });
    }
}

fn initiate(
    state: &mut NodeState,
    ctx: &Context,
    target: Address,
    amount: TokenAmount,
    payment_id: PaymentId,
    secret: B256,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    if amount.is_zero() {
        return Err(ActionError::ZeroAmount);
    }
    if target == state.our_address {
        return Err(ActionError::Invalid("cannot pay ourselves".into()));
    }
    if state.queued_messages.len() >= state.config.max_queued_messages {
        return Err(ActionError::QueueFull);
    }
    let hash = secrethash(&secret);
    if state.payments.initiated.contains_key(&hash)
        || state.payments.mediated.contains_key(&hash)
        || state.payments.targeted.contains_key(&hash)
    {
        return Err(ActionError::Invalid("secret already used".into()));
    }
    let route = find_route(state, target, amount).map_err(ActionError::NoRoute)?;
    let (Some(first_hop), Some(first_amount)) =
        (route.hops.first().copied(), route.amounts.first().copied())
    else {
        return Err(ActionError::NoRoute(crate::routing::NoRoute::Disconnected));
    };
    let expiration = state
        .now
        .checked_add_secs(state.config.lock_timeout)
        .map_err(|_| ActionError::Overflow)?;
    let lock = HashLock {
        expiration,
        amount: first_amount,
        secrethash: hash,
    };
    let rest = route.hops.get(1..).unwrap_or_default().to_vec();
    send_locked_transfer(
        state,
        ctx,
        route.first_channel,
        lock,
        payment_id,
        state.our_address,
        target,
        amount,
        rest,
        out,
    )?;
    state.payments.initiated.insert(
        hash,
        InitiatorPayment {
            payment_id,
            target,
            amount,
            secret,
            channel_id: route.first_channel,
            first_hop,
            lock,
            revealed_to_target: false,
            refused: false,
        },
    );
    Ok(())
}

// ------------------------------------------------------------------ receiving

pub(crate) fn receive(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    match message {
        Message::LockedTransfer(m) => receive_locked_transfer(state, ctx, sender, m, message, out),
        Message::SecretRequest(m) => receive_secret_request(state, sender, m, out),
        Message::RevealSecret(m) => receive_reveal_secret(state, ctx, sender, m, out),
        Message::Unlock(m) => receive_unlock(state, ctx, sender, m, message, out),
        Message::LockExpired(m) => receive_lock_expired(state, ctx, sender, m, message, out),
        Message::TransferRefused(m) => receive_refused(state, sender, m, out),
        _ => Err(InvalidReason::UnknownPayment.into()),
    }
}

/// Checks that `bp` moves the partner from its current locks to `locks` with
/// `transferred`.
fn check_locks(
    bp: &BalanceProofData,
    transferred: TokenAmount,
    locks: &[HashLock],
) -> Result<(), Reject> {
    if bp.transferred_amount != transferred {
        return Err(InvalidReason::TransferredAmountMismatch.into());
    }
    let locked = sum_locks(locks).ok_or(InvalidReason::Overflow)?;
    if bp.locked_amount != locked || bp.locksroot != locksroot(locks) {
        return Err(InvalidReason::LocksMismatch.into());
    }
    Ok(())
}

fn receive_locked_transfer(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &LockedTransfer,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let us = state.our_address;
    let Some(ch) = check_envelope(state, sender, &m.balance_proof, m.recipient)? else {
        return Ok(());
    };
    let lock = m.lock;
    if lock.amount.is_zero() {
        return Err(InvalidReason::InvalidLock("zero amount".into()).into());
    }
    if ch
        .partner
        .locks
        .iter()
        .any(|l| l.secrethash == lock.secrethash)
    {
        return Err(InvalidReason::InvalidLock("secret hash already locked".into()).into());
    }
    if m.target != m.route.last().copied().unwrap_or(m.recipient) {
        return Err(InvalidReason::InvalidLock("route does not end at the target".into()).into());
    }
    let mut locks = ch.partner.locks.clone();
    locks.push(lock);
    check_locks(&m.balance_proof, ch.partner.transferred(), &locks)?;
    if lock.amount > ch.partner_capacity() {
        return Err(InvalidReason::InsufficientCapacity.into());
    }
    let proof = verify_from(ctx, message, sender)?;
    ch.partner.proof = Some(proof);
    ch.partner.locks = locks;
    let payer_channel = ch.channel_id;

    // The lock is ours now; whether we act on it is the payment's business.
    let hash = lock.secrethash;
    let known = state.payments.initiated.contains_key(&hash)
        || state.payments.mediated.contains_key(&hash)
        || state.payments.targeted.contains_key(&hash);
    if known {
        refuse(
            state,
            sender,
            m.payment_id,
            hash,
            refusal::DUPLICATE_SECRETHASH,
            out,
        );
        return Ok(());
    }
    let safe_until = state.now.0.saturating_add(state.config.reveal_timeout);
    if m.target == us {
        let reason = if lock.amount < m.target_amount {
            Some(refusal::AMOUNT_TOO_LOW)
        } else if lock.expiration.0 <= safe_until {
            Some(refusal::EXPIRATION_TOO_SOON)
        } else {
            None
        };
        if let Some(reason) = reason {
            refuse(state, sender, m.payment_id, hash, reason, out);
            return Ok(());
        }
        state.payments.targeted.insert(
            hash,
            TargetPayment {
                payment_id: m.payment_id,
                initiator: m.initiator,
                payer: sender,
                channel_id: payer_channel,
                lock,
                secret: None,
                register_queued: false,
            },
        );
        let request = |message_id| {
            Message::SecretRequest(SecretRequest {
                message_id,
                payment_id: m.payment_id,
                secrethash: hash,
                amount: lock.amount,
                expiration: lock.expiration,
            })
        };
        queue_plain(state, m.initiator, request, out);
        return Ok(());
    }
    // Mediator.
    let next = m.route.first().copied();
    let rest = m.route.get(1..).unwrap_or_default();
    let Some(next) = next
        .filter(|next| *next != us && *next != sender && !rest.contains(&us) && m.initiator != us)
    else {
        refuse(
            state,
            sender,
            m.payment_id,
            hash,
            refusal::INVALID_ROUTE,
            out,
        );
        return Ok(());
    };
    // Twice the reveal timeout: one for our payee to reveal, one for us to claim.
    let mediator_margin = state
        .now
        .0
        .saturating_add(state.config.reveal_timeout.saturating_mul(2));
    if lock.expiration.0 <= mediator_margin {
        refuse(
            state,
            sender,
            m.payment_id,
            hash,
            refusal::EXPIRATION_TOO_SOON,
            out,
        );
        return Ok(());
    }
    let our_fee = FeeSchedule {
        flat: state.config.fee_flat,
        proportional_ppm: state.config.fee_proportional_ppm,
    };
    let Some(out_amount) = our_fee
        .outgoing_for(lock.amount)
        .filter(|a| *a >= m.target_amount && !a.is_zero())
    else {
        refuse(state, sender, m.payment_id, hash, refusal::FEE_TOO_LOW, out);
        return Ok(());
    };
    let Some(payee_channel) = state.channel_to(next, out_amount).map(|c| c.channel_id) else {
        refuse(state, sender, m.payment_id, hash, refusal::NO_CAPACITY, out);
        return Ok(());
    };
    let out_lock = HashLock {
        expiration: lock.expiration,
        amount: out_amount,
        secrethash: hash,
    };
    let sent = send_locked_transfer(
        state,
        ctx,
        payee_channel,
        out_lock,
        m.payment_id,
        m.initiator,
        m.target,
        m.target_amount,
        rest.to_vec(),
        out,
    );
    if sent.is_err() {
        refuse(state, sender, m.payment_id, hash, refusal::NO_CAPACITY, out);
        return Ok(());
    }
    state.payments.mediated.insert(
        hash,
        MediatorPayment {
            payment_id: m.payment_id,
            initiator: m.initiator,
            target: m.target,
            payer: sender,
            payer_channel,
            in_lock: lock,
            payee: next,
            payee_channel,
            out_lock,
            secret: None,
            refused: false,
            register_queued: false,
            in_state: LockState::Pending,
            out_state: LockState::Pending,
        },
    );
    Ok(())
}

/// Emits the outcome of a mediated payment and forgets it once both its locks are
/// resolved.
fn finish_mediation(state: &mut NodeState, hash: B256, out: &mut Vec<Event>) {
    let Some(p) = state.payments.mediated.get(&hash) else {
        return;
    };
    if p.in_state == LockState::Pending || p.out_state == LockState::Pending {
        return;
    }
    let amount = |s: LockState, lock: &HashLock| {
        if s == LockState::Unlocked {
            lock.amount
        } else {
            TokenAmount::ZERO
        }
    };
    out.push(Event::MediationFinished {
        payment_id: p.payment_id,
        received: amount(p.in_state, &p.in_lock),
        paid: amount(p.out_state, &p.out_lock),
    });
    state.payments.mediated.remove(&hash);
}

/// Whether the payer's lock of a mediated payment is still safe to rely on: pending
/// with at least `reveal_timeout` left, or already unlocked to us.
fn payer_lock_safe(state: &NodeState, p: &MediatorPayment) -> bool {
    match p.in_state {
        LockState::Unlocked => true,
        LockState::Expired => false,
        LockState::Pending => {
            state.now.0.saturating_add(state.config.reveal_timeout) < p.in_lock.expiration.0
                || state.payments.registered_in_time(&p.in_lock)
        }
    }
}

/// Queues the on-chain registration of `secret` at once when a lock owed to us is in
/// the danger zone (less than `reveal_timeout` left).
fn register_if_dangerous(state: &mut NodeState, hash: B256, out: &mut Vec<Event>) {
    let horizon = state.now.0.saturating_add(state.config.reveal_timeout);
    let mut secret_to_register = None;
    if let Some(p) = state.payments.targeted.get_mut(&hash)
        && let Some(secret) = p.secret
        && !p.register_queued
        && horizon >= p.lock.expiration.0
    {
        p.register_queued = true;
        secret_to_register = Some(secret);
    }
    if let Some(p) = state.payments.mediated.get_mut(&hash)
        && let Some(secret) = p.secret
        && !p.register_queued
        && p.in_state == LockState::Pending
        && horizon >= p.in_lock.expiration.0
    {
        p.register_queued = true;
        secret_to_register = Some(secret);
    }
    if let Some(secret) = secret_to_register
        && !state.payments.registered.contains_key(&hash)
    {
        queue_onchain(state, ContractSend::RegisterSecret { secret }, out);
    }
}

fn receive_secret_request(
    state: &mut NodeState,
    sender: Address,
    m: &SecretRequest,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let Some(payment) = state.payments.initiated.get_mut(&m.secrethash) else {
        return Err(InvalidReason::UnknownPayment.into());
    };
    if payment.target != sender || payment.refused {
        return Err(InvalidReason::UnknownPayment.into());
    }
    if m.amount < payment.amount || m.expiration != payment.lock.expiration {
        return Err(
            InvalidReason::InvalidLock("secret request does not match the payment".into()).into(),
        );
    }
    if payment.revealed_to_target {
        return Ok(());
    }
    // Too close to the expiration: the target could not claim in time; let it expire.
    let horizon = state.now.0.saturating_add(state.config.reveal_timeout);
    if horizon >= payment.lock.expiration.0 {
        return Ok(()); // acknowledged, not answered: the lock expires
    }
    payment.revealed_to_target = true;
    let secret = payment.secret;
    queue_plain(
        state,
        sender,
        |message_id| Message::RevealSecret(RevealSecret { message_id, secret }),
        out,
    );
    Ok(())
}

fn receive_reveal_secret(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &RevealSecret,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let hash = secrethash(&m.secret);
    let mut handled = false;
    // Target: the secret from the initiator (or anyone: it is self-authenticating).
    if let Some(payment) = state.payments.targeted.get_mut(&hash) {
        handled = true;
        if payment.secret.is_none() {
            payment.secret = Some(m.secret);
            let payer = payment.payer;
            let secret = m.secret;
            queue_plain(
                state,
                payer,
                |message_id| Message::RevealSecret(RevealSecret { message_id, secret }),
                out,
            );
            register_if_dangerous(state, hash, out);
        }
    }
    // Mediator: learn it, pass it upstream, and pay the payee who revealed it, but
    // only while the payer's lock is safe; otherwise register the secret on chain and
    // pay once the registration is seen.
    if let Some(payment) = state.payments.mediated.get_mut(&hash) {
        handled = true;
        let first_time = payment.secret.is_none();
        payment.secret = Some(m.secret);
        let (payer, payee, payee_channel, payment_id) = (
            payment.payer,
            payment.payee,
            payment.payee_channel,
            payment.payment_id,
        );
        if first_time {
            let secret = m.secret;
            queue_plain(
                state,
                payer,
                |message_id| Message::RevealSecret(RevealSecret { message_id, secret }),
                out,
            );
        }
        let safe = state
            .payments
            .mediated
            .get(&hash)
            .is_some_and(|p| payer_lock_safe(state, p));
        if sender == payee && safe {
            let unlocked = send_unlock(state, ctx, payee_channel, m.secret, payment_id, out)
                .map_err(|e| Reject::from(InvalidReason::Unacceptable(e.to_string())))?;
            if unlocked && let Some(p) = state.payments.mediated.get_mut(&hash) {
                p.out_state = LockState::Unlocked;
            }
        } else if sender == payee {
            register_if_dangerous(state, hash, out);
        }
        finish_mediation(state, hash, out);
    }
    // Initiator: the secret came back from the first hop: the target has it.
    if let Some(payment) = state.payments.initiated.get(&hash).cloned() {
        handled = true;
        if sender == payment.first_hop && payment.revealed_to_target {
            let unlocked = send_unlock(
                state,
                ctx,
                payment.channel_id,
                payment.secret,
                payment.payment_id,
                out,
            )
            .map_err(|e| Reject::from(InvalidReason::Unacceptable(e.to_string())))?;
            if unlocked {
                out.push(Event::PaymentSent {
                    payment_id: payment.payment_id,
                    target: payment.target,
                    amount: payment.amount,
                });
                state.payments.initiated.remove(&hash);
            }
        }
    }
    if handled {
        Ok(())
    } else {
        Err(InvalidReason::UnknownPayment.into())
    }
}

fn receive_unlock(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &Unlock,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let Some(ch) = check_envelope(state, sender, &m.balance_proof, m.recipient)? else {
        return Ok(());
    };
    let hash = secrethash(&m.secret);
    let Some((lock, locks, transferred)) = ch
        .partner
        .after_unlock(hash)
        .map_err(|_| InvalidReason::Overflow)?
    else {
        return Err(InvalidReason::InvalidLock("no pending lock for this secret".into()).into());
    };
    check_locks(&m.balance_proof, transferred, &locks)?;
    let proof = verify_from(ctx, message, sender)?;
    ch.partner.proof = Some(proof);
    ch.partner.locks = locks;
    if let Some(payment) = state.payments.targeted.remove(&hash) {
        out.push(Event::PaymentReceived {
            payment_id: payment.payment_id,
            initiator: payment.initiator,
            amount: lock.amount,
        });
    } else if let Some(payment) = state.payments.mediated.get_mut(&hash)
        && payment.payer == sender
    {
        if payment.secret.is_none() {
            payment.secret = Some(m.secret);
        }
        payment.in_state = LockState::Unlocked;
        finish_mediation(state, hash, out);
    }
    Ok(())
}

fn receive_lock_expired(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &LockExpired,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let now = state.now;
    let registered = state.payments.registered.clone();
    let Some(ch) = check_envelope(state, sender, &m.balance_proof, m.recipient)? else {
        return Ok(());
    };
    let Some(lock) = ch
        .partner
        .locks
        .iter()
        .find(|l| l.secrethash == m.secrethash)
        .copied()
    else {
        return Err(InvalidReason::InvalidLock("no pending lock with this hash".into()).into());
    };
    if now <= lock.expiration {
        // Our clock has not reached it yet; the sender retries.
        return Err(Reject {
            reason: InvalidReason::InvalidLock("lock has not expired yet".into()),
            ack: false,
        });
    }
    if registered
        .get(&lock.secrethash)
        .is_some_and(|(_, at)| *at <= lock.expiration)
    {
        return Err(InvalidReason::InvalidLock("secret was registered in time".into()).into());
    }
    let locks: Vec<HashLock> = ch
        .partner
        .locks
        .iter()
        .filter(|l| l.secrethash != m.secrethash)
        .copied()
        .collect();
    check_locks(&m.balance_proof, ch.partner.transferred(), &locks)?;
    let proof = verify_from(ctx, message, sender)?;
    ch.partner.proof = Some(proof);
    ch.partner.locks = locks;
    if state
        .payments
        .targeted
        .get(&m.secrethash)
        .is_some_and(|p| p.payer == sender)
    {
        state.payments.targeted.remove(&m.secrethash);
    }
    if let Some(p) = state.payments.mediated.get_mut(&m.secrethash)
        && p.payer == sender
    {
        p.in_state = LockState::Expired;
        finish_mediation(state, m.secrethash, out);
    }
    Ok(())
}

fn receive_refused(
    state: &mut NodeState,
    sender: Address,
    m: &TransferRefused,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    if let Some(payment) = state.payments.initiated.get_mut(&m.secrethash)
        && payment.first_hop == sender
    {
        if !payment.refused && !payment.revealed_to_target {
            payment.refused = true;
            out.push(Event::PaymentFailed {
                payment_id: payment.payment_id,
                reason: PaymentFailure::Refused(m.reason),
            });
        }
        return Ok(());
    }
    if let Some(payment) = state.payments.mediated.get_mut(&m.secrethash)
        && payment.payee == sender
    {
        if !payment.refused && payment.secret.is_none() {
            payment.refused = true;
            let (payer, payment_id) = (payment.payer, payment.payment_id);
            refuse(state, payer, payment_id, m.secrethash, m.reason, out);
        }
        return Ok(());
    }
    Err(InvalidReason::UnknownPayment.into())
}

// ------------------------------------------------------------------ time and chain

pub(crate) fn on_time(state: &mut NodeState, ctx: &Context, out: &mut Vec<Event>) {
    let safe = state.safe_chain_time();
    // Our locks that surely expired unclaimed: remove them off-chain.
    let mut expired: Vec<(ChannelId, B256)> = Vec::new();
    for ch in state.channels.values() {
        if !ch.is_open() {
            continue;
        }
        for lock in &ch.our.locks {
            if safe > lock.expiration && !state.payments.registered_in_time(lock) {
                expired.push((ch.channel_id, lock.secrethash));
            }
        }
    }
    for (channel_id, hash) in expired {
        if send_lock_expired(state, ctx, channel_id, hash, out).is_err() {
            continue;
        }
        if let Some(payment) = state.payments.initiated.remove(&hash)
            && !payment.refused
        {
            out.push(Event::PaymentFailed {
                payment_id: payment.payment_id,
                reason: PaymentFailure::LockExpired,
            });
        }
        if let Some(p) = state.payments.mediated.get_mut(&hash)
            && p.payee_channel == channel_id
        {
            p.out_state = LockState::Expired;
            finish_mediation(state, hash, out);
        }
    }
    // Locks owed to us whose secret we know but which the payer has not unlocked, close
    // to expiry: register the secret on chain so they stay claimable.
    let hashes: Vec<B256> = state
        .payments
        .targeted
        .keys()
        .chain(state.payments.mediated.keys())
        .copied()
        .collect();
    for hash in hashes {
        register_if_dangerous(state, hash, out);
    }
    // Forget payments to us whose lock is gone (expired, or the channel settled).
    let channels = &state.channels;
    state.payments.targeted.retain(|hash, p| {
        channels
            .get(&p.channel_id)
            .is_some_and(|ch| ch.partner.locks.iter().any(|l| l.secrethash == *hash))
    });
}

pub(crate) fn secret_registered(
    state: &mut NodeState,
    ctx: &Context,
    hash: B256,
    secret: B256,
    revealed_at: ChainTime,
    out: &mut Vec<Event>,
) {
    if secrethash(&secret) != hash {
        return;
    }
    state
        .payments
        .registered
        .entry(hash)
        .or_insert((secret, revealed_at));
    drop_register(state, secret);
    if let Some(payment) = state.payments.mediated.get_mut(&hash)
        && payment.secret.is_none()
    {
        payment.secret = Some(secret);
    }
    if let Some(payment) = state.payments.targeted.get_mut(&hash)
        && payment.secret.is_none()
    {
        payment.secret = Some(secret);
    }
    // Our locks with this hash registered in time are claimable by the payee on chain:
    // unlock them off-chain (a mediator only if its payer's lock is still good).
    let ours: Vec<ChannelId> = state
        .channels
        .values()
        .filter(|ch| ch.is_open())
        .filter(|ch| {
            ch.our
                .locks
                .iter()
                .any(|l| l.secrethash == hash && l.expiration >= revealed_at)
        })
        .map(|ch| ch.channel_id)
        .collect();
    for channel_id in ours {
        if let Some(payment) = state.payments.initiated.get(&hash).cloned()
            && payment.channel_id == channel_id
        {
            if let Ok(true) = send_unlock(state, ctx, channel_id, secret, payment.payment_id, out) {
                out.push(Event::PaymentSent {
                    payment_id: payment.payment_id,
                    target: payment.target,
                    amount: payment.amount,
                });
                state.payments.initiated.remove(&hash);
            }
        } else if let Some(payment) = state.payments.mediated.get(&hash).cloned()
            && payment.payee_channel == channel_id
        {
            if payer_lock_safe(state, &payment)
                && let Ok(true) =
                    send_unlock(state, ctx, channel_id, secret, payment.payment_id, out)
                && let Some(p) = state.payments.mediated.get_mut(&hash)
            {
                p.out_state = LockState::Unlocked;
            }
            finish_mediation(state, hash, out);
        }
    }
}

fn drop_register(state: &mut NodeState, secret: B256) {
    state
        .pending_onchain
        .retain(|_, p| p.action != ContractSend::RegisterSecret { secret });
}

/// After settlement: claim on chain the partner's locks whose secret was registered in
/// time (the rest returns to the partner when anyone unlocks).
pub(crate) fn after_settle(state: &mut NodeState, channel_id: ChannelId, out: &mut Vec<Event>) {
    // Payments to us through this channel are now the on-chain unlock's business.
    state
        .payments
        .targeted
        .retain(|_, p| p.channel_id != channel_id);
    let Some(ch) = state.channels.get(&channel_id) else {
        return;
    };
    let claimable = ch
        .partner
        .locks
        .iter()
        .any(|l| state.payments.registered_in_time(l));
    if claimable && ch.partner.locksroot() != B256::ZERO {
        let action = ContractSend::Unlock {
            channel_id,
            sender: ch.partner.address,
            receiver: state.our_address,
            locks: ch.partner.locks.clone(),
        };
        queue_onchain(state, action, out);
    }
}
