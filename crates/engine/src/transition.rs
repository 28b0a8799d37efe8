//! The state transition: one input in, the state mutated in place, events out.
//! Deterministic: no clock, no randomness, no I/O (signing is RFC 6979).

use crate::event::{ActionError, ContractSend, Event, InvalidReason, PaymentFailure};
use crate::input::{Input, TransferVia};
use crate::mediated;
use crate::state::*;
use smartmesh_primitives::{Address, ChainTime, ChannelId, PrivateKey, TokenAmount};
use smartmesh_wire::{
    Ack, BalanceProofData, CooperativeSettleConfirmation, CooperativeSettleData,
    CooperativeSettleRequest, DirectTransfer, Domain, EMPTY_SIGNATURE, Message, MessageId,
    PaymentId, WithdrawConfirmation, WithdrawData, WithdrawRequest,
};

/// What a transition needs besides the state: the node's key (to sign) and the
/// EIP-712 domain (to sign and verify).
#[derive(Debug, Clone)]
pub struct Context {
    /// The node's key; its address must be `NodeState::our_address`.
    pub key: PrivateKey,
    /// The TokenNetwork's EIP-712 domain.
    pub domain: Domain,
}

impl Context {
    /// A context for `key` on the TokenNetwork of `state`.
    pub fn new(key: PrivateKey, state: &NodeState) -> Self {
        Self {
            domain: Domain::new(state.chain_id, state.token_network),
            key,
        }
    }
}

/// Applies `input` to `state` and returns what must be done. Never panics on any
/// input; invalid peer input becomes [`Event::InvalidReceived`], refused local actions
/// [`Event::ActionRejected`] or [`Event::PaymentFailed`].
pub fn transition(state: &mut NodeState, ctx: &Context, input: Input) -> Vec<Event> {
    let mut out = Vec::new();
    match input {
        Input::Tick { now } => {
            if now > state.now {
                state.now = now;
            }
            on_time(state, ctx, &mut out);
        }
        Input::ChainUnreachable => state.chain_status = ChainStatus::Unreachable,
        Input::ChainReachable => state.chain_status = ChainStatus::Syncing,
        Input::ChainSynced { chain_time } => {
            if chain_time > state.chain_time {
                state.chain_time = chain_time;
            }
            // Back in sync after a disconnection or a replay: release everything queued
            // meanwhile (performing an action twice is harmless). While already synced,
            // this only advances chain time.
            if state.chain_status != ChainStatus::Synced {
                state.chain_status = ChainStatus::Synced;
                for (id, pending) in &mut state.pending_onchain {
                    pending.retry_at = None;
                    out.push(Event::ContractSend {
                        id: *id,
                        action: pending.action.clone(),
                    });
                }
            }
            on_time(state, ctx, &mut out);
        }
        Input::ActionDirectTransfer {
            via,
            amount,
            payment_id,
        } => {
            if let Err(reason) = direct_transfer(state, ctx, via, amount, payment_id, &mut out) {
                out.push(Event::PaymentFailed {
                    payment_id,
                    reason: PaymentFailure::Rejected(reason),
                });
            }
        }
        Input::ActionMediatedTransfer {
            target,
            amount,
            payment_id,
            secret,
        } => mediated::action_initiate(state, ctx, target, amount, payment_id, secret, &mut out),
        Input::ActionClose { channel_id } => {
            reject_on_err(close(state, channel_id, &mut out), &mut out)
        }
        Input::ActionWithdraw {
            channel_id,
            total_withdraw,
        } => reject_on_err(
            withdraw(state, ctx, channel_id, total_withdraw, &mut out),
            &mut out,
        ),
        Input::ActionCooperativeSettle { channel_id } => reject_on_err(
            cooperative_settle(state, ctx, channel_id, &mut out),
            &mut out,
        ),
        Input::ActionUpdateFeeSchedule { node, fee } => mediated::update_fees(state, node, fee),
        Input::ActionOnchainDone { id } => {
            state.pending_onchain.remove(&id);
        }
        Input::ActionOnchainFailed { id, retry } => {
            if retry {
                let at = state
                    .now
                    .checked_add_secs(state.config.onchain_retry_interval);
                if let Some(pending) = state.pending_onchain.get_mut(&id) {
                    pending.retry_at = Some(at.unwrap_or(state.now));
                }
            } else {
                state.pending_onchain.remove(&id);
            }
        }
        Input::ReceiveMessage { sender, message } => receive(state, ctx, sender, message, &mut out),
        Input::ContractReceiveChannelOpened {
            channel_id,
            participant1,
            participant2,
            settle_timeout,
        } => {
            mediated::graph_opened(state, channel_id, participant1, participant2);
            let us = state.our_address;
            if (participant1 == us || participant2 == us)
                && participant1 != participant2
                && !state.channels.contains_key(&channel_id)
            {
                let we1 = participant1 == us;
                let partner = if we1 { participant2 } else { participant1 };
                state.channels.insert(
                    channel_id,
                    ChannelState {
                        channel_id,
                        we_are_participant1: we1,
                        settle_timeout,
                        status: ChannelStatus::Opened,
                        our: EndState::new(us),
                        partner: EndState::new(partner),
                        close: None,
                        coop_settle: None,
                        outcome: None,
                    },
                );
                out.push(Event::ChannelStatusChanged {
                    channel_id,
                    status: ChannelStatus::Opened,
                });
            }
        }
        Input::ContractReceiveChannelDeposit {
            channel_id,
            participant,
            total_deposit,
        } => {
            mediated::graph_deposit(state, channel_id, participant, total_deposit);
            if let Some(ch) = state.channels.get_mut(&channel_id)
                && let Some(end) = end_of(ch, participant)
                && total_deposit > end.deposit
            {
                end.deposit = total_deposit;
            }
        }
        Input::ContractReceiveChannelWithdraw {
            channel_id,
            participant,
            total_withdraw,
        } => {
            mediated::graph_withdraw(state, channel_id, participant, total_withdraw);
            if let Some(ch) = state.channels.get_mut(&channel_id)
                && let Some(end) = end_of(ch, participant)
            {
                if total_withdraw > end.withdrawn {
                    end.withdrawn = total_withdraw;
                }
                if end
                    .pending_withdraw
                    .as_ref()
                    .is_some_and(|p| p.total_withdraw <= end.withdrawn)
                {
                    end.pending_withdraw = None;
                }
            }
            drop_onchain(state, |a| {
                matches!(a, ContractSend::Withdraw { channel_id: c, participant: p, .. }
                    if *c == channel_id && *p == participant)
            });
        }
        Input::ContractReceiveChannelClosed {
            channel_id,
            closer,
            closed_at,
            closer_balance,
            partner_balance,
        } => {
            mediated::graph_closed(state, channel_id);
            channel_closed(
                state,
                channel_id,
                closer,
                closed_at,
                closer_balance,
                partner_balance,
                &mut out,
            );
            on_time(state, ctx, &mut out);
        }
        Input::ContractReceiveNonClosingBalanceProofUpdated { .. } => {}
        Input::ContractReceiveChannelSettled {
            channel_id,
            amount1,
            amount2,
        } => {
            let outcome = |ours, partner| ChannelOutcome::Settled { ours, partner };
            finish(state, channel_id, amount1, amount2, outcome, &mut out);
            mediated::after_settle(state, channel_id, &mut out);
        }
        Input::ContractReceiveChannelCooperativeSettled {
            channel_id,
            amount1,
            amount2,
        } => {
            let outcome = |ours, partner| ChannelOutcome::CooperativelySettled { ours, partner };
            finish(state, channel_id, amount1, amount2, outcome, &mut out);
        }
        Input::ContractReceiveChannelPenalized {
            channel_id,
            beneficiary,
            amount,
        } => {
            let outcome = |_, _| ChannelOutcome::Penalized {
                beneficiary,
                amount,
            };
            finish(state, channel_id, amount, amount, outcome, &mut out);
        }
        Input::ContractReceiveSecretRevealed {
            secrethash,
            secret,
            revealed_at,
        } => {
            mediated::secret_registered(state, ctx, secrethash, secret, revealed_at, &mut out);
        }
    }
    out
}

fn reject_on_err(result: Result<(), ActionError>, out: &mut Vec<Event>) {
    if let Err(reason) = result {
        out.push(Event::ActionRejected { reason });
    }
}

fn end_of(ch: &mut ChannelState, participant: Address) -> Option<&mut EndState> {
    if ch.our.address == participant {
        Some(&mut ch.our)
    } else if ch.partner.address == participant {
        Some(&mut ch.partner)
    } else {
        None
    }
}

// ------------------------------------------------------------------ queues

/// The next message id, checked to be takeable (so that taking it after mutating the
/// state cannot fail).
/// The channel `id` if we know it and `sender` is our partner in it, for peer messages.
fn partner_channel(
    state: &NodeState,
    id: ChannelId,
    sender: Address,
) -> Result<&ChannelState, Reject> {
    let ch = state
        .channels
        .get(&id)
        .ok_or(InvalidReason::UnknownChannel)?;
    if ch.partner.address != sender {
        return Err(InvalidReason::NotPartner.into());
    }
    Ok(ch)
}

/// The channel `id` if we know it and it is open, for local actions.
pub(crate) fn open_channel(state: &NodeState, id: ChannelId) -> Result<&ChannelState, ActionError> {
    let ch = state.channels.get(&id).ok_or(ActionError::UnknownChannel)?;
    if !ch.is_open() {
        return Err(ActionError::ChannelNotOpen);
    }
    Ok(ch)
}

pub(crate) fn peek_message_id(state: &NodeState) -> Result<MessageId, ActionError> {
    let id = state.next_message_id;
    id.checked_add(1).map(|_| id).ok_or(ActionError::Overflow)
}

/// Takes the next message id.
pub(crate) fn take_message_id(state: &mut NodeState) -> Result<MessageId, ActionError> {
    let id = state.next_message_id;
    state.next_message_id = id.checked_add(1).ok_or(ActionError::Overflow)?;
    Ok(id)
}

/// Queues `message` until its ack arrives and emits it.
pub(crate) fn send_queued(
    state: &mut NodeState,
    recipient: Address,
    message: Message,
    out: &mut Vec<Event>,
) {
    out.push(Event::SendMessage {
        recipient,
        message: message.clone(),
    });
    state.queued_messages.insert(
        message.message_id(),
        QueuedMessage {
            recipient,
            message,
            last_sent: state.now,
        },
    );
}

/// Emits an `Ack` (never queued).
pub(crate) fn send_ack(recipient: Address, message_id: MessageId, out: &mut Vec<Event>) {
    out.push(Event::SendMessage {
        recipient,
        message: Message::Ack(Ack { message_id }),
    });
}

/// Queues an on-chain action until it is reported mined; emits it now if the chain is
/// synced.
pub(crate) fn queue_onchain(state: &mut NodeState, action: ContractSend, out: &mut Vec<Event>) {
    if state.pending_onchain.values().any(|p| p.action == action) {
        return;
    }
    let id = state.next_onchain_id;
    state.next_onchain_id = id.saturating_add(1);
    if state.chain_status == ChainStatus::Synced {
        out.push(Event::ContractSend {
            id,
            action: action.clone(),
        });
    }
    state.pending_onchain.insert(
        id,
        PendingOnchain {
            action,
            retry_at: None,
        },
    );
}

fn drop_onchain(state: &mut NodeState, matches: impl Fn(&ContractSend) -> bool) {
    state.pending_onchain.retain(|_, p| !matches(&p.action));
}

// ------------------------------------------------------------------ time

fn on_time(state: &mut NodeState, ctx: &Context, out: &mut Vec<Event>) {
    let now = state.now;
    let retry = state.config.retry_interval;
    for queued in state.queued_messages.values_mut() {
        if queued.last_sent.saturating_add_secs(retry) <= now {
            queued.last_sent = now;
            out.push(Event::SendMessage {
                recipient: queued.recipient,
                message: queued.message.clone(),
            });
        }
    }
    if state.chain_status == ChainStatus::Synced {
        for (id, pending) in &mut state.pending_onchain {
            if pending.retry_at.is_some_and(|at| at <= now) {
                pending.retry_at = None;
                out.push(Event::ContractSend {
                    id: *id,
                    action: pending.action.clone(),
                });
            }
        }
    }
    // Settle closed channels once the timeout surely passed on chain.
    let safe = state.safe_chain_time();
    let due: Vec<ChannelId> = state
        .channels
        .values_mut()
        .filter(|ch| ch.status == ChannelStatus::Closed)
        .filter_map(|ch| {
            let settle_timeout = ch.settle_timeout;
            let close = ch.close.as_mut()?;
            let settle_at = close.closed_at.saturating_add_secs(settle_timeout);
            if !close.settle_queued && safe >= settle_at {
                close.settle_queued = true;
                Some(ch.channel_id)
            } else {
                None
            }
        })
        .collect();
    for channel_id in due {
        queue_onchain(state, ContractSend::Settle { channel_id }, out);
    }
    // A withdraw that was not mined before its expiration can never be: once the chain
    // (seen fully synced) is past it, it no longer counts.
    if state.chain_status == ChainStatus::Synced {
        let chain_time = state.chain_time;
        for ch in state.channels.values_mut() {
            for end in [&mut ch.our, &mut ch.partner] {
                if end
                    .pending_withdraw
                    .as_ref()
                    .is_some_and(|p| chain_time >= p.expiration)
                {
                    end.pending_withdraw = None;
                }
            }
        }
    }
    mediated::on_time(state, ctx, out);
}

trait SaturatingSecs {
    fn saturating_add_secs(self, secs: u64) -> Self;
}

impl SaturatingSecs for ChainTime {
    fn saturating_add_secs(self, secs: u64) -> Self {
        ChainTime(self.0.saturating_add(secs))
    }
}

// ------------------------------------------------------------------ direct transfers

fn direct_transfer(
    state: &mut NodeState,
    ctx: &Context,
    via: TransferVia,
    amount: TokenAmount,
    payment_id: PaymentId,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    if amount.is_zero() {
        return Err(ActionError::ZeroAmount);
    }
    if state.queued_messages.len() >= state.config.max_queued_messages {
        return Err(ActionError::QueueFull);
    }
    let channel_id = match via {
        TransferVia::Channel(id) => id,
        TransferVia::Partner(partner) => state
            .channel_to(partner, amount)
            .map(|ch| ch.channel_id)
            .ok_or(ActionError::NoChannelWithCapacity)?,
    };
    let (chain_id, token_network) = (state.chain_id, state.token_network);
    let message_id = peek_message_id(state)?;
    let ch = state
        .channels
        .get_mut(&channel_id)
        .ok_or(ActionError::UnknownChannel)?;
    if !ch.is_open() {
        return Err(ActionError::ChannelNotOpen);
    }
    let available = ch.our_capacity();
    if available < amount {
        return Err(ActionError::InsufficientCapacity { available });
    }
    let balance_proof = BalanceProofData {
        chain_id,
        token_network,
        channel_id,
        nonce: ch.our.nonce().next().map_err(|_| ActionError::Overflow)?,
        transferred_amount: ch
            .our
            .transferred()
            .checked_add(amount)
            .map_err(|_| ActionError::Overflow)?,
        locked_amount: ch.our.locked(),
        locksroot: ch.our.locksroot(),
    };
    let recipient = ch.partner.address;
    let mut message = Message::DirectTransfer(DirectTransfer {
        message_id,
        payment_id,
        balance_proof,
        recipient,
        signature: EMPTY_SIGNATURE,
    });
    let message_hash = message.sign(&ctx.key, &ctx.domain);
    let signature = message.signature().copied().unwrap_or(EMPTY_SIGNATURE);
    ch.our.proof = Some(SignedBalanceProof {
        data: balance_proof,
        message_hash,
        signature,
    });
    take_message_id(state)?;
    send_queued(state, recipient, message, out);
    out.push(Event::PaymentSent {
        payment_id,
        target: recipient,
        amount,
    });
    Ok(())
}

/// A refused peer message: the reason, and whether to acknowledge it anyway (every
/// refusal is acknowledged except a nonce ahead of order, which may become valid once
/// the missing message arrives).
pub(crate) struct Reject {
    pub reason: InvalidReason,
    pub ack: bool,
}

impl From<InvalidReason> for Reject {
    fn from(reason: InvalidReason) -> Self {
        Self { reason, ack: true }
    }
}

/// The checks every received balance-proof message passes first. `Ok(None)`: an
/// already applied proof (a retry) that only needs its ack again.
pub(crate) fn check_envelope<'a>(
    state: &'a mut NodeState,
    sender: Address,
    bp: &BalanceProofData,
    recipient: Address,
) -> Result<Option<&'a mut ChannelState>, Reject> {
    let (chain_id, token_network, us) = (state.chain_id, state.token_network, state.our_address);
    // Not acked: the partner may have seen the channel open on chain before we did, and
    // its retry must find us once we have (an ack would make it drop the proof for good).
    let ch = state.channels.get_mut(&bp.channel_id).ok_or(Reject {
        reason: InvalidReason::UnknownChannel,
        ack: false,
    })?;
    if ch.partner.address != sender {
        return Err(InvalidReason::NotPartner.into());
    }
    if bp.chain_id != chain_id || bp.token_network != token_network {
        return Err(InvalidReason::WrongDomain.into());
    }
    if recipient != us {
        return Err(InvalidReason::WrongRecipient.into());
    }
    let current = ch.partner.nonce();
    if bp.nonce <= current {
        return Ok(None);
    }
    if !ch.is_open() {
        return Err(InvalidReason::ChannelNotOpen.into());
    }
    let expected = current.next().map_err(|_| InvalidReason::Overflow)?;
    if bp.nonce != expected {
        return Err(Reject {
            reason: InvalidReason::NonceAhead {
                expected: expected.0,
                got: bp.nonce.0,
            },
            ack: false,
        });
    }
    Ok(Some(ch))
}

/// Recovers the signer of a received balance-proof message and requires the partner.
pub(crate) fn verify_from(
    ctx: &Context,
    message: &Message,
    partner: Address,
) -> Result<SignedBalanceProof, Reject> {
    let (bp, signature) = message.balance_proof().ok_or(InvalidReason::BadSignature)?;
    match message.verify(&ctx.domain) {
        Some(Ok(v)) if v.signer == partner => Ok(SignedBalanceProof {
            data: *bp,
            message_hash: v.message_hash,
            signature: *signature,
        }),
        _ => Err(InvalidReason::BadSignature.into()),
    }
}

pub(crate) fn emit_reject(
    sender: Address,
    message: &Message,
    reject: Reject,
    out: &mut Vec<Event>,
) {
    out.push(Event::InvalidReceived {
        sender,
        kind: message.kind().to_string(),
        reason: reject.reason,
    });
    if reject.ack {
        send_ack(sender, message.message_id(), out);
    }
}

fn receive(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    message: Message,
    out: &mut Vec<Event>,
) {
    let result = match &message {
        Message::Ack(ack) => {
            if state
                .queued_messages
                .get(&ack.message_id)
                .is_some_and(|q| q.recipient == sender)
            {
                state.queued_messages.remove(&ack.message_id);
            }
            return;
        }
        Message::DirectTransfer(m) => receive_direct_transfer(state, ctx, sender, m, &message, out),
        Message::WithdrawRequest(m) => {
            receive_withdraw_request(state, ctx, sender, m, &message, out)
        }
        Message::WithdrawConfirmation(m) => {
            receive_withdraw_confirmation(state, ctx, sender, m, &message, out)
        }
        Message::CooperativeSettleRequest(m) => {
            receive_coop_request(state, ctx, sender, m, &message, out)
        }
        Message::CooperativeSettleConfirmation(m) => {
            receive_coop_confirmation(state, ctx, sender, m, &message, out)
        }
        Message::LockedTransfer(_)
        | Message::SecretRequest(_)
        | Message::RevealSecret(_)
        | Message::Unlock(_)
        | Message::LockExpired(_)
        | Message::TransferRefused(_) => mediated::receive(state, ctx, sender, &message, out),
    };
    match result {
        Ok(()) => send_ack(sender, message.message_id(), out),
        Err(reject) => emit_reject(sender, &message, reject, out),
    }
}

fn receive_direct_transfer(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &DirectTransfer,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let Some(ch) = check_envelope(state, sender, &m.balance_proof, m.recipient)? else {
        return Ok(());
    };
    let bp = &m.balance_proof;
    if bp.locked_amount != ch.partner.locked() || bp.locksroot != ch.partner.locksroot() {
        return Err(InvalidReason::LocksMismatch.into());
    }
    let previous = ch.partner.transferred();
    if bp.transferred_amount <= previous {
        return Err(InvalidReason::TransferredAmountMismatch.into());
    }
    let amount = bp
        .transferred_amount
        .checked_sub(previous)
        .map_err(|_| InvalidReason::Overflow)?;
    if amount > ch.partner_capacity() {
        return Err(InvalidReason::InsufficientCapacity.into());
    }
    let proof = verify_from(ctx, message, sender)?;
    ch.partner.proof = Some(proof);
    out.push(Event::PaymentReceived {
        payment_id: m.payment_id,
        initiator: sender,
        amount,
    });
    Ok(())
}

// ------------------------------------------------------------------ close, settle

fn close(
    state: &mut NodeState,
    channel_id: ChannelId,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    let ch = state
        .channels
        .get_mut(&channel_id)
        .ok_or(ActionError::UnknownChannel)?;
    if !matches!(ch.status, ChannelStatus::Opened | ChannelStatus::Settling) {
        return Err(ActionError::WrongChannelState);
    }
    ch.status = ChannelStatus::Closing;
    let action = ContractSend::Close {
        channel_id,
        partner_proof: ch.partner.proof.clone(),
        our_declared: ch.our.balance(),
    };
    out.push(Event::ChannelStatusChanged {
        channel_id,
        status: ChannelStatus::Closing,
    });
    queue_onchain(state, action, out);
    Ok(())
}

/// Whether the closer's declaration is contradicted by `proof` (signed by the closer):
/// the contract's penalty rule.
pub fn proves_lie(declared: &Balance, proof: &Balance) -> bool {
    if proof.nonce.0 == 0 {
        return false;
    }
    match proof.nonce.cmp(&declared.nonce) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => !proof.same_amounts(declared),
        std::cmp::Ordering::Less => proof.transferred_amount > declared.transferred_amount,
    }
}

fn channel_closed(
    state: &mut NodeState,
    channel_id: ChannelId,
    closer: Address,
    closed_at: ChainTime,
    closer_balance: Balance,
    partner_balance: Balance,
    out: &mut Vec<Event>,
) {
    let Some(ch) = state.channels.get_mut(&channel_id) else {
        return;
    };
    if matches!(ch.status, ChannelStatus::Closed | ChannelStatus::Settled) {
        return;
    }
    ch.status = ChannelStatus::Closed;
    ch.close = Some(CloseInfo {
        closer,
        closed_at,
        closer_balance,
        partner_balance,
        settle_queued: false,
    });
    out.push(Event::ChannelStatusChanged {
        channel_id,
        status: ChannelStatus::Closed,
    });
    let penalty = if closer == ch.partner.address {
        ch.partner
            .proof
            .as_ref()
            .filter(|proof| proves_lie(&closer_balance, &proof.balance()))
            .cloned()
    } else {
        None
    };
    drop_onchain(
        state,
        |a| matches!(a, ContractSend::Close { channel_id: c, .. } | ContractSend::CooperativeSettle { channel_id: c, .. } | ContractSend::Withdraw { channel_id: c, .. } if *c == channel_id),
    );
    state.queued_messages.retain(|_, q| {
        q.message
            .balance_proof()
            .is_none_or(|(bp, _)| bp.channel_id != channel_id)
    });
    if let Some(closer_proof) = penalty {
        out.push(Event::PenaltyDetected {
            channel_id,
            declared: closer_balance,
            ours: closer_proof.balance(),
        });
        queue_onchain(
            state,
            ContractSend::Penalty {
                channel_id,
                closer_proof,
            },
            out,
        );
    }
}

fn finish(
    state: &mut NodeState,
    channel_id: ChannelId,
    amount1: TokenAmount,
    amount2: TokenAmount,
    outcome: impl Fn(TokenAmount, TokenAmount) -> ChannelOutcome,
    out: &mut Vec<Event>,
) {
    mediated::graph_closed(state, channel_id);
    let Some(ch) = state.channels.get_mut(&channel_id) else {
        return;
    };
    if ch.status == ChannelStatus::Settled {
        return;
    }
    let outcome = if ch.we_are_participant1 {
        outcome(amount1, amount2)
    } else {
        outcome(amount2, amount1)
    };
    ch.status = ChannelStatus::Settled;
    ch.outcome = Some(outcome.clone());
    out.push(Event::ChannelStatusChanged {
        channel_id,
        status: ChannelStatus::Settled,
    });
    out.push(Event::ChannelFinished {
        channel_id,
        outcome,
    });
    drop_onchain(state, |a| {
        a.channel_id() == Some(channel_id) && !matches!(a, ContractSend::Unlock { .. })
    });
    state.queued_messages.retain(|_, q| {
        q.message
            .balance_proof()
            .is_none_or(|(bp, _)| bp.channel_id != channel_id)
    });
}

// ------------------------------------------------------------------ withdraw

fn withdraw(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    total_withdraw: TokenAmount,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    let (chain_id, token_network, us) = (state.chain_id, state.token_network, state.our_address);
    let expiration = state
        .now
        .checked_add_secs(state.config.withdraw_timeout)
        .map_err(|_| ActionError::Overflow)?;
    let message_id = peek_message_id(state)?;
    let ch = state
        .channels
        .get_mut(&channel_id)
        .ok_or(ActionError::UnknownChannel)?;
    if !ch.is_open() {
        return Err(ActionError::ChannelNotOpen);
    }
    if ch.our.pending_withdraw.is_some() {
        return Err(ActionError::WrongChannelState);
    }
    if total_withdraw <= ch.our.withdrawn {
        return Err(ActionError::Invalid(
            "total withdraw must exceed the current total".into(),
        ));
    }
    let increase = total_withdraw
        .checked_sub(ch.our.withdrawn)
        .map_err(|_| ActionError::Overflow)?;
    let available = ch.our_capacity();
    if increase > available {
        return Err(ActionError::InsufficientCapacity { available });
    }
    let data = WithdrawData {
        chain_id,
        token_network,
        channel_id,
        participant: us,
        total_withdraw,
        expiration,
    };
    let mut message = Message::WithdrawRequest(WithdrawRequest {
        message_id,
        withdraw: data,
        signature: EMPTY_SIGNATURE,
    });
    message.sign(&ctx.key, &ctx.domain);
    let participant_signature = message.signature().copied().unwrap_or(EMPTY_SIGNATURE);
    ch.our.pending_withdraw = Some(PendingWithdraw {
        total_withdraw,
        expiration,
        participant_signature,
        partner_signature: None,
    });
    let recipient = ch.partner.address;
    take_message_id(state)?;
    send_queued(state, recipient, message, out);
    Ok(())
}

fn check_withdraw_envelope<'a>(
    state: &'a mut NodeState,
    sender: Address,
    w: &WithdrawData,
) -> Result<&'a mut ChannelState, Reject> {
    let (chain_id, token_network) = (state.chain_id, state.token_network);
    let ch = state
        .channels
        .get_mut(&w.channel_id)
        .ok_or(InvalidReason::UnknownChannel)?;
    if ch.partner.address != sender {
        return Err(InvalidReason::NotPartner.into());
    }
    if w.chain_id != chain_id || w.token_network != token_network {
        return Err(InvalidReason::WrongDomain.into());
    }
    if !ch.is_open() {
        return Err(InvalidReason::ChannelNotOpen.into());
    }
    Ok(ch)
}

fn receive_withdraw_request(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &WithdrawRequest,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let now = state.now;
    let max_expiration = now
        .0
        .saturating_add(state.config.withdraw_timeout.saturating_mul(2));
    let message_id = peek_message_id(state).map_err(|_| InvalidReason::Overflow)?;
    let ch = check_withdraw_envelope(state, sender, &m.withdraw)?;
    let w = m.withdraw;
    if let Some(pending) = &ch.partner.pending_withdraw {
        if pending.total_withdraw == w.total_withdraw && pending.expiration == w.expiration {
            return Ok(()); // a retry: our confirmation is queued already
        }
        return Err(InvalidReason::Unacceptable("a withdraw is already pending".into()).into());
    }
    if w.participant != sender {
        return Err(InvalidReason::Unacceptable("withdraw for someone else".into()).into());
    }
    if w.expiration <= now || w.expiration.0 > max_expiration {
        return Err(InvalidReason::Unacceptable("expiration out of range".into()).into());
    }
    if w.total_withdraw <= ch.partner.withdrawn {
        return Err(InvalidReason::Unacceptable("total withdraw not increasing".into()).into());
    }
    let increase = w
        .total_withdraw
        .checked_sub(ch.partner.withdrawn)
        .map_err(|_| InvalidReason::Overflow)?;
    if increase > ch.partner_capacity() {
        return Err(InvalidReason::InsufficientCapacity.into());
    }
    match message.verify(&ctx.domain) {
        Some(Ok(v)) if v.signer == sender => {}
        _ => return Err(InvalidReason::BadSignature.into()),
    }
    let mut confirmation = Message::WithdrawConfirmation(WithdrawConfirmation {
        message_id,
        withdraw: w,
        signature: EMPTY_SIGNATURE,
    });
    confirmation.sign(&ctx.key, &ctx.domain);
    ch.partner.pending_withdraw = Some(PendingWithdraw {
        total_withdraw: w.total_withdraw,
        expiration: w.expiration,
        participant_signature: m.signature,
        partner_signature: confirmation.signature().copied(),
    });
    take_message_id(state).map_err(|_| InvalidReason::Overflow)?;
    send_queued(state, sender, confirmation, out);
    Ok(())
}

fn receive_withdraw_confirmation(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &WithdrawConfirmation,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let us = state.our_address;
    let ch = check_withdraw_envelope(state, sender, &m.withdraw)?;
    let w = m.withdraw;
    let Some(pending) = ch.our.pending_withdraw.as_mut() else {
        return Err(InvalidReason::UnknownPayment.into());
    };
    if w.participant != us
        || pending.total_withdraw != w.total_withdraw
        || pending.expiration != w.expiration
    {
        return Err(InvalidReason::UnknownPayment.into());
    }
    if pending.partner_signature.is_some() {
        return Ok(());
    }
    match message.verify(&ctx.domain) {
        Some(Ok(v)) if v.signer == sender => {}
        _ => return Err(InvalidReason::BadSignature.into()),
    }
    pending.partner_signature = Some(m.signature);
    let action = ContractSend::Withdraw {
        channel_id: w.channel_id,
        participant: us,
        total_withdraw: w.total_withdraw,
        expiration: w.expiration.0,
        participant_signature: pending.participant_signature,
        partner_signature: m.signature,
    };
    out.push(Event::WithdrawConfirmed {
        channel_id: w.channel_id,
        total_withdraw: w.total_withdraw,
    });
    queue_onchain(state, action, out);
    Ok(())
}

// ------------------------------------------------------------------ cooperative settle

/// Final balances `(balance1, balance2)` in contract order if both sides have no
/// pending locks or withdraws.
fn coop_balances(ch: &ChannelState) -> Result<(TokenAmount, TokenAmount), ActionError> {
    if !ch.our.locks.is_empty()
        || !ch.partner.locks.is_empty()
        || !ch.our.locked().is_zero()
        || !ch.partner.locked().is_zero()
    {
        return Err(ActionError::PendingLocks);
    }
    if ch.our.pending_withdraw.is_some() || ch.partner.pending_withdraw.is_some() {
        return Err(ActionError::WrongChannelState);
    }
    let net = |me: &EndState, other: &EndState| -> Option<TokenAmount> {
        me.deposit
            .checked_add(other.transferred())
            .ok()?
            .checked_sub(me.withdrawn)
            .ok()?
            .checked_sub(me.transferred())
            .ok()
    };
    let ours = net(&ch.our, &ch.partner).ok_or(ActionError::Overflow)?;
    let theirs = net(&ch.partner, &ch.our).ok_or(ActionError::Overflow)?;
    Ok(if ch.we_are_participant1 {
        (ours, theirs)
    } else {
        (theirs, ours)
    })
}

fn coop_data(
    state: &NodeState,
    ch: &ChannelState,
    balance1: TokenAmount,
    balance2: TokenAmount,
) -> CooperativeSettleData {
    let (p1, p2) = ch.ends_in_contract_order();
    CooperativeSettleData {
        chain_id: state.chain_id,
        token_network: state.token_network,
        channel_id: ch.channel_id,
        participant1: p1.address,
        balance1,
        participant2: p2.address,
        balance2,
    }
}

fn cooperative_settle(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    out: &mut Vec<Event>,
) -> Result<(), ActionError> {
    let ch = open_channel(state, channel_id)?;
    let (balance1, balance2) = coop_balances(ch)?;
    let data = coop_data(state, ch, balance1, balance2);
    let recipient = ch.partner.address;
    let message_id = take_message_id(state)?;
    let message = Message::CooperativeSettleRequest(CooperativeSettleRequest {
        message_id,
        settle: data,
        signature: EMPTY_SIGNATURE,
    });
    let coop = CoopSettleState {
        balance1,
        balance2,
        requested_by_us: true,
        our_signature: EMPTY_SIGNATURE,
    };
    sign_and_enter_coop_settle(state, ctx, channel_id, recipient, message, coop, out);
    Ok(())
}

/// Signs our half of a cooperative settlement, marks the channel settling and queues
/// the message; shared by the request we send and the confirmation we answer with.
fn sign_and_enter_coop_settle(
    state: &mut NodeState,
    ctx: &Context,
    channel_id: ChannelId,
    recipient: Address,
    mut message: Message,
    mut coop: CoopSettleState,
    out: &mut Vec<Event>,
) {
    message.sign(&ctx.key, &ctx.domain);
    coop.our_signature = message.signature().copied().unwrap_or(EMPTY_SIGNATURE);
    if let Some(ch) = state.channels.get_mut(&channel_id) {
        ch.status = ChannelStatus::Settling;
        ch.coop_settle = Some(coop);
    }
    out.push(Event::ChannelStatusChanged {
        channel_id,
        status: ChannelStatus::Settling,
    });
    send_queued(state, recipient, message, out);
}

fn receive_coop_request(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &CooperativeSettleRequest,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let channel_id = m.settle.channel_id;
    let ch = partner_channel(state, channel_id, sender)?;
    if ch.status == ChannelStatus::Settling
        && ch.coop_settle.as_ref().is_some_and(|c| {
            !c.requested_by_us && c.balance1 == m.settle.balance1 && c.balance2 == m.settle.balance2
        })
    {
        return Ok(()); // a retry; our confirmation is queued
    }
    if !ch.is_open() {
        return Err(InvalidReason::ChannelNotOpen.into());
    }
    let (balance1, balance2) =
        coop_balances(ch).map_err(|e| Reject::from(InvalidReason::Unacceptable(e.to_string())))?;
    let expected = coop_data(state, ch, balance1, balance2);
    if expected != m.settle {
        return Err(InvalidReason::Unacceptable("balances differ from ours".into()).into());
    }
    match message.verify(&ctx.domain) {
        Some(Ok(v)) if v.signer == sender => {}
        _ => return Err(InvalidReason::BadSignature.into()),
    }
    let message_id = take_message_id(state).map_err(|_| InvalidReason::Overflow)?;
    let confirmation = Message::CooperativeSettleConfirmation(CooperativeSettleConfirmation {
        message_id,
        settle: expected,
        signature: EMPTY_SIGNATURE,
    });
    let coop = CoopSettleState {
        balance1,
        balance2,
        requested_by_us: false,
        our_signature: EMPTY_SIGNATURE,
    };
    sign_and_enter_coop_settle(state, ctx, channel_id, sender, confirmation, coop, out);
    Ok(())
}

fn receive_coop_confirmation(
    state: &mut NodeState,
    ctx: &Context,
    sender: Address,
    m: &CooperativeSettleConfirmation,
    message: &Message,
    out: &mut Vec<Event>,
) -> Result<(), Reject> {
    let channel_id = m.settle.channel_id;
    let ch = partner_channel(state, channel_id, sender)?;
    let Some(coop) = ch.coop_settle.as_ref().filter(|c| c.requested_by_us) else {
        return Err(InvalidReason::UnknownPayment.into());
    };
    if ch.status != ChannelStatus::Settling {
        return Ok(()); // closed meanwhile, or already done
    }
    let expected = coop_data(state, ch, coop.balance1, coop.balance2);
    if expected != m.settle {
        return Err(InvalidReason::Unacceptable("balances differ from our request".into()).into());
    }
    match message.verify(&ctx.domain) {
        Some(Ok(v)) if v.signer == sender => {}
        _ => return Err(InvalidReason::BadSignature.into()),
    }
    let (signature1, signature2) = if ch.we_are_participant1 {
        (coop.our_signature, m.signature)
    } else {
        (m.signature, coop.our_signature)
    };
    let action = ContractSend::CooperativeSettle {
        channel_id,
        balance1: coop.balance1,
        balance2: coop.balance2,
        signature1,
        signature2,
    };
    queue_onchain(state, action, out);
    Ok(())
}
