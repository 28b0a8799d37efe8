//! Engine and node values as API bodies.

use crate::types::{Amount, BalanceInfo, ChannelInfo, OutcomeInfo, PaymentInfo};
use smartmesh_engine::{Balance, ChannelOutcome, ChannelState, ChannelStatus, PaymentFailure};
use smartmesh_node::PaymentStatus;
use smartmesh_wire::PaymentId;

pub(crate) fn amount(a: smartmesh_primitives::TokenAmount) -> Amount {
    Amount(a.0)
}

fn balance(b: &Balance) -> BalanceInfo {
    BalanceInfo {
        nonce: b.nonce.0,
        transferred_amount: amount(b.transferred_amount),
        locked_amount: amount(b.locked_amount),
        locksroot: b.locksroot,
    }
}

pub(crate) fn status_name(status: ChannelStatus) -> &'static str {
    match status {
        ChannelStatus::Opened => "opened",
        ChannelStatus::Settling => "settling",
        ChannelStatus::Closing => "closing",
        ChannelStatus::Closed => "closed",
        ChannelStatus::Settled => "settled",
    }
}

pub(crate) fn outcome(o: &ChannelOutcome) -> OutcomeInfo {
    match o {
        ChannelOutcome::Settled { ours, partner } => OutcomeInfo::Settled {
            ours: amount(*ours),
            partner: amount(*partner),
        },
        ChannelOutcome::CooperativelySettled { ours, partner } => {
            OutcomeInfo::CooperativelySettled {
                ours: amount(*ours),
                partner: amount(*partner),
            }
        }
        ChannelOutcome::Penalized {
            beneficiary,
            amount: a,
        } => OutcomeInfo::Penalized {
            beneficiary: *beneficiary,
            amount: amount(*a),
        },
    }
}

pub(crate) fn channel(c: &ChannelState) -> ChannelInfo {
    ChannelInfo {
        channel_id: c.channel_id.0.to_string(),
        partner: c.partner_address(),
        status: status_name(c.status).to_owned(),
        settle_timeout: c.settle_timeout,
        our_deposit: amount(c.our.deposit),
        our_withdrawn: amount(c.our.withdrawn),
        partner_deposit: amount(c.partner.deposit),
        partner_withdrawn: amount(c.partner.withdrawn),
        our_capacity: amount(c.our_capacity()),
        partner_capacity: amount(c.partner_capacity()),
        our_balance: balance(&c.our.balance()),
        partner_balance: balance(&c.partner.balance()),
        closer: c.close.as_ref().map(|i| i.closer),
        outcome: c.outcome.as_ref().map(outcome),
    }
}

pub(crate) fn failure_text(f: &PaymentFailure) -> String {
    match f {
        PaymentFailure::Rejected(e) => format!("refused before sending: {e}"),
        PaymentFailure::Refused(code) => format!("a hop refused the transfer (reason code {code})"),
        PaymentFailure::LockExpired => "the lock expired before the secret was revealed".into(),
    }
}

pub(crate) fn payment(id: PaymentId, status: &PaymentStatus) -> PaymentInfo {
    let mut info = PaymentInfo {
        payment_id: id.to_string(),
        status: String::new(),
        role: "initiator".into(),
        target: None,
        initiator: None,
        amount: None,
        fee_earned: None,
        failure: None,
    };
    match status {
        PaymentStatus::Pending => info.status = "pending".into(),
        PaymentStatus::Sent { target, amount: a } => {
            info.status = "sent".into();
            info.target = Some(*target);
            info.amount = Some(amount(*a));
        }
        PaymentStatus::Received {
            initiator,
            amount: a,
        } => {
            info.status = "received".into();
            info.role = "target".into();
            info.initiator = Some(*initiator);
            info.amount = Some(amount(*a));
        }
        PaymentStatus::Mediated { received, paid } => {
            info.status = "mediated".into();
            info.role = "mediator".into();
            info.amount = Some(amount(*paid));
            info.fee_earned = received.0.checked_sub(paid.0).map(Amount);
        }
        PaymentStatus::Failed(reason) => {
            info.status = "failed".into();
            info.failure = Some(failure_text(reason));
        }
    }
    info
}
