//! TokenNetwork functions one by one: open, deposit (also gasless), withdraw, cooperative
//! settle, close, update (also by a delegate), settle, unlock, views and constructor.

use super::{
    FlowResult, Settlement, balances, block_time, events, expect_revert, expected_settlement, keys,
    remaining, revert_reason, sent_balances, word,
};
use crate::flows::token::gasless_user;
use crate::{Lifecycle, SETTLE_TIMEOUT, SignedBalance, smt};
use alloy::sol_types::{SolCall, SolConstructor, SolValue};
use smartmesh_chain::ChainError;
use smartmesh_chain::token_network::{
    Balance, ChannelOutcome, calls, no_balance, opened_channel_id,
};
use smartmesh_contracts::{SmartMeshToken, TokenNetwork, artifacts};
use smartmesh_primitives::{Address, B256, Bytes, PrivateKey, U256, eip712, keccak256};

// ---------------------------------------------------------------- shared helpers

/// Opens a channel `a`–`b` (participant1 = `a`) and deposits `d1` for `a`, `d2` for `b`.
pub async fn open_funded(
    lc: &mut Lifecycle,
    a: &PrivateKey,
    b: &PrivateKey,
    d1: U256,
    d2: U256,
) -> Result<U256, ChainError> {
    let (id, _) = lc.open(a, b).await?;
    if !d1.is_zero() {
        lc.deposit(id, a, d1).await?;
    }
    if !d2.is_zero() {
        lc.deposit(id, b, d2).await?;
    }
    Ok(id)
}

/// Opens a channel between `p1` and `p2`, sent by `by`.
pub async fn open_by(
    lc: &mut Lifecycle,
    by: &PrivateKey,
    p1: Address,
    p2: Address,
) -> Result<U256, ChainError> {
    let receipt = lc.tn(by, calls::open(p1, p2, SETTLE_TIMEOUT)).await?;
    opened_channel_id(&receipt.logs)
        .ok_or_else(|| ChainError::InvalidResponse("no ChannelOpened".into()))
}

/// A balance `sender` signs with explicit locked amount and locksroot (which need not
/// match any lock list: for tests of absurd proofs).
pub fn raw_proof(lc: &Lifecycle, sender: &PrivateKey, id: U256, balance: Balance) -> SignedBalance {
    let message_hash = keccak256(format!("raw message {id}/{}", balance.nonce));
    let signature = lc.signer.balance_proof(sender, id, &balance, message_hash);
    SignedBalance {
        balance,
        message_hash,
        signature,
    }
}

/// A balance with no locks.
pub fn plain(nonce: u64, transferred: U256) -> Balance {
    Balance {
        nonce,
        transferredAmount: transferred,
        lockedAmount: U256::ZERO,
        locksroot: B256::ZERO,
    }
}

/// Settles channel `id` now (the timeout must have passed) and checks the payout against
/// the reference settlement: the `ChannelSettled` amounts, every balance moved to the
/// unit, the retained lock amounts, the commitment deleted.
pub async fn settle_checked_now(
    lc: &mut Lifecycle,
    id: U256,
    by: &PrivateKey,
) -> Result<Settlement, ChainError> {
    let ch = lc.channel(id)?;
    let expected = expected_settlement(&ch);
    let network = lc.deployment.token_network;
    let who = [ch.participant1, ch.participant2, network];
    let before = balances(lc, &who).await?;
    let receipt = lc.settle_now(id, by).await?;
    let settled = events::<TokenNetwork::ChannelSettled>(&receipt);
    assert_eq!(settled.len(), 1, "one ChannelSettled");
    assert_eq!(
        (settled[0].amount1, settled[0].amount2),
        (expected.amount1, expected.amount2),
        "settled amounts"
    );
    let after = balances(lc, &who).await?;
    assert_eq!(
        after[0],
        before[0] + expected.amount1,
        "participant1 paid exactly"
    );
    assert_eq!(
        after[1],
        before[1] + expected.amount2,
        "participant2 paid exactly"
    );
    assert_eq!(
        after[2],
        before[2] - expected.amount1 - expected.amount2,
        "the network keeps exactly the locks"
    );
    let (b1, b2) = sent_balances(&ch);
    let kept1 = lc
        .pending_locked_amount(id, ch.participant1, ch.participant2, b1.locksroot)
        .await?;
    let kept2 = lc
        .pending_locked_amount(id, ch.participant2, ch.participant1, b2.locksroot)
        .await?;
    assert_eq!(
        (kept1, kept2),
        (expected.kept1, expected.kept2),
        "retained lock amounts"
    );
    assert_eq!(
        lc.channel_hash(id).await?,
        B256::ZERO,
        "a settled channel has no commitment"
    );
    assert_eq!(
        lc.tracker.outcome(id),
        Some(&ChannelOutcome::Settled {
            amount1: expected.amount1,
            amount2: expected.amount2
        })
    );
    Ok(expected)
}

/// Moves time past the settle timeout, then [`settle_checked_now`].
pub async fn settle_checked(
    lc: &mut Lifecycle,
    id: U256,
    by: &PrivateKey,
) -> Result<Settlement, ChainError> {
    let ch = lc.channel(id)?;
    lc.increase_time(ch.settleTimeout + 1).await?;
    settle_checked_now(lc, id, by).await
}

// ---------------------------------------------------------------- flows

/// The whole life of a channel with exact balances: open, two deposits, transfers both
/// ways, close with the partner's newest proof, confirmation, settlement. Participants: 2.
pub async fn channel_lifecycle(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let network = lc.deployment.token_network;
    let who = [a.address(), b.address(), network];
    let start = balances(lc, &who).await?;

    let (id, receipt) = lc.open(a, b).await?;
    let opened = events::<TokenNetwork::ChannelOpened>(&receipt);
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (
            opened[0].participant1,
            opened[0].participant2,
            opened[0].settleTimeout
        ),
        (a.address(), b.address(), SETTLE_TIMEOUT)
    );
    let counter = lc
        .view(network, TokenNetwork::channelCounterCall {})
        .await?;
    assert_eq!(counter, id, "the counter is the newest id");

    let receipt = lc.deposit(id, a, smt(100)).await?;
    let dep = events::<TokenNetwork::ChannelDeposit>(&receipt);
    assert_eq!(
        (dep[0].id, dep[0].participant, dep[0].totalDeposit),
        (id, a.address(), smt(100))
    );
    lc.deposit(id, b, smt(50)).await?;
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(100), start[1] - smt(50), start[2] + smt(150)]
    );

    // Off chain: a pays 10 then 30 in total; b pays 5.
    let _a1 = lc.proof(a, id, 1, smt(10));
    let a2 = lc.proof(a, id, 2, smt(30));
    let b1 = lc.proof(b, id, 1, smt(5));

    lc.close(id, a, Some(&b1), &a2.balance).await?;
    let receipt = lc.update(id, b, &a2).await?;
    let confirmed = events::<TokenNetwork::NonClosingBalanceProofUpdated>(&receipt);
    assert_eq!(
        (confirmed[0].id, confirmed[0].closer, confirmed[0].nonce),
        (id, a.address(), 2)
    );
    assert!(lc.channel(id)?.confirmed);

    let s = settle_checked(lc, id, b).await?;
    assert_eq!(
        (s.amount1, s.amount2),
        (smt(75), smt(75)),
        "a: 100 - 30 + 5, b: 50 + 30 - 5"
    );
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(25), start[1] + smt(25), start[2]]
    );
    Ok(())
}

/// Open: zero address, same participants, timeouts outside [min, max] are refused; the
/// bounds themselves work; anyone may open; several channels between the same pair get
/// consecutive ids; the commitment is the hash of the initial struct. Participants: 3.
pub async fn open_rules(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let (min, max) = (
        lc.deployment.min_settle_timeout,
        lc.deployment.max_settle_timeout,
    );
    let network = lc.deployment.token_network;
    let first = lc
        .view(network, TokenNetwork::channelCounterCall {})
        .await?
        + U256::from(1);

    expect_revert(
        lc.tn(c, calls::open(Address::ZERO, b.address(), SETTLE_TIMEOUT))
            .await,
        "ZeroParticipant",
    );
    expect_revert(
        lc.tn(c, calls::open(a.address(), Address::ZERO, SETTLE_TIMEOUT))
            .await,
        "ZeroParticipant",
    );
    expect_revert(
        lc.tn(c, calls::open(a.address(), a.address(), SETTLE_TIMEOUT))
            .await,
        "SameParticipants",
    );
    expect_revert(
        lc.tn(c, calls::open(a.address(), b.address(), min - 1))
            .await,
        "SettleTimeoutOutOfRange",
    );
    let err = expect_revert(
        lc.tn(c, calls::open(a.address(), b.address(), max + 1))
            .await,
        "SettleTimeoutOutOfRange",
    );
    assert!(
        revert_reason(&err).contains(&(max + 1).to_string()),
        "{err}"
    );

    let r1 = lc.tn(c, calls::open(a.address(), b.address(), min)).await?;
    let r2 = lc.tn(c, calls::open(b.address(), a.address(), max)).await?;
    let r3 = lc
        .tn(a, calls::open(a.address(), b.address(), SETTLE_TIMEOUT))
        .await?;
    let ids: Vec<U256> = [&r1, &r2, &r3]
        .iter()
        .filter_map(|r| opened_channel_id(&r.logs))
        .collect();
    assert_eq!(
        ids,
        vec![first, first + U256::from(1), first + U256::from(2)],
        "consecutive ids, never failed ones"
    );
    assert_eq!(
        lc.view(network, TokenNetwork::channelCounterCall {})
            .await?,
        first + U256::from(2)
    );
    assert_eq!(lc.channel(ids[0])?.settleTimeout, min);
    let second = lc.channel(ids[1])?;
    assert_eq!(
        (
            second.participant1,
            second.participant2,
            second.settleTimeout
        ),
        (b.address(), a.address(), max)
    );
    for id in ids {
        let ch = lc.channel(id)?;
        let stored = lc.channel_hash(id).await?;
        assert_eq!(
            stored,
            keccak256(ch.abi_encode()),
            "commitment = keccak256(abi.encode(channel))"
        );
        assert_eq!(
            lc.view(network, TokenNetwork::hashChannelCall { ch })
                .await?,
            stored
        );
    }
    Ok(())
}

/// `openChannelWithDeposit`: opened and deposited in one call (events in order), zero
/// deposit, refusals, and a missing allowance. Participants: 2.
pub async fn open_with_deposit(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let network = lc.deployment.token_network;
    let who = [a.address(), network];
    let start = balances(lc, &who).await?;

    let (id, receipt) = lc.open_with_deposit(a, b, smt(40)).await?;
    let opened = events::<TokenNetwork::ChannelOpened>(&receipt);
    let deposited = events::<TokenNetwork::ChannelDeposit>(&receipt);
    assert_eq!((opened.len(), deposited.len()), (1, 1));
    assert_eq!(
        (
            deposited[0].id,
            deposited[0].participant,
            deposited[0].totalDeposit
        ),
        (id, a.address(), smt(40))
    );
    let opened_at = receipt.logs.iter().position(|l| {
        l.topics[0] == <TokenNetwork::ChannelOpened as alloy::sol_types::SolEvent>::SIGNATURE_HASH
    });
    let deposit_at = receipt.logs.iter().position(|l| {
        l.topics[0] == <TokenNetwork::ChannelDeposit as alloy::sol_types::SolEvent>::SIGNATURE_HASH
    });
    assert!(opened_at < deposit_at, "ChannelOpened comes first");
    let ch = lc.channel(id)?;
    assert_eq!(
        (ch.participant1, ch.participant2, ch.deposit1, ch.deposit2),
        (a.address(), b.address(), smt(40), U256::ZERO)
    );
    assert_eq!(lc.channel_hash(id).await?, keccak256(ch.abi_encode()));
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(40), start[1] + smt(40)]
    );

    let (zero, receipt) = lc.open_with_deposit(b, a, U256::ZERO).await?;
    assert!(events::<TokenNetwork::ChannelDeposit>(&receipt).is_empty());
    assert_eq!(lc.channel(zero)?.participant1, b.address());

    expect_revert(
        lc.tn(
            a,
            calls::open_with_deposit(a.address(), SETTLE_TIMEOUT, smt(1)),
        )
        .await,
        "SameParticipants",
    );
    expect_revert(
        lc.tn(
            a,
            calls::open_with_deposit(Address::ZERO, SETTLE_TIMEOUT, smt(1)),
        )
        .await,
        "ZeroParticipant",
    );
    expect_revert(
        lc.tn(a, calls::open_with_deposit(b.address(), 1, smt(1)))
            .await,
        "SettleTimeoutOutOfRange",
    );

    // Without an allowance the token refuses, and nothing is opened.
    let counter = lc
        .view(network, TokenNetwork::channelCounterCall {})
        .await?;
    let approve = |value: U256| -> Bytes {
        SmartMeshToken::approveCall {
            spender: network,
            value,
        }
        .abi_encode()
        .into()
    };
    lc.token_send(a, approve(U256::ZERO)).await?;
    expect_revert(
        lc.tn(
            a,
            calls::open_with_deposit(b.address(), SETTLE_TIMEOUT, smt(1)),
        )
        .await,
        "ERC20InsufficientAllowance",
    );
    lc.token_send(a, approve(U256::MAX)).await?;
    assert_eq!(
        lc.view(network, TokenNetwork::channelCounterCall {})
            .await?,
        counter
    );
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(40), start[1] + smt(40)]
    );
    Ok(())
}

/// `setTotalDeposit`: totals must increase, anyone may deposit for a participant (and
/// pays), non-participants, stale or unknown structs, overflow, closed channels.
/// Participants: 3.
pub async fn deposit_rules(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let network = lc.deployment.token_network;
    let who = [a.address(), b.address(), c.address(), network];
    let start = balances(lc, &who).await?;
    let (id, _) = lc.open(a, b).await?;
    let fresh = lc.channel(id)?;

    lc.deposit(id, a, smt(100)).await?;
    let err = expect_revert(lc.deposit(id, a, smt(100)).await, "DepositNotIncreasing");
    assert!(revert_reason(&err).contains(&smt(100).to_string()), "{err}");
    expect_revert(lc.deposit(id, a, smt(99)).await, "DepositNotIncreasing");

    // c deposits for b and pays for it.
    let ch = lc.channel(id)?;
    let receipt = lc
        .tn(c, calls::set_total_deposit(id, &ch, b.address(), smt(30)))
        .await?;
    let dep = events::<TokenNetwork::ChannelDeposit>(&receipt);
    assert_eq!(
        (dep[0].participant, dep[0].totalDeposit),
        (b.address(), smt(30))
    );
    assert_eq!(lc.channel(id)?.deposit2, smt(30));
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            start[0] - smt(100),
            start[1],
            start[2] - smt(30),
            start[3] + smt(130)
        ]
    );

    let ch = lc.channel(id)?;
    expect_revert(
        lc.tn(c, calls::set_total_deposit(id, &ch, c.address(), smt(1)))
            .await,
        "NotParticipant",
    );
    expect_revert(
        lc.tn(
            a,
            calls::set_total_deposit(id, &fresh, a.address(), smt(200)),
        )
        .await,
        "ChannelStateMismatch",
    );
    let unknown = id + U256::from(1000);
    expect_revert(
        lc.tn(
            a,
            calls::set_total_deposit(unknown, &ch, a.address(), smt(200)),
        )
        .await,
        "ChannelStateMismatch",
    );
    // deposit1 + deposit2 must stay representable.
    let err = expect_revert(
        lc.tn(a, calls::set_total_deposit(id, &ch, a.address(), U256::MAX))
            .await,
        "DepositOverflow",
    );
    assert!(revert_reason(&err).contains(&smt(30).to_string()), "{err}");

    lc.close(id, a, None, &no_balance()).await?;
    expect_revert(lc.deposit(id, b, smt(40)).await, "ChannelIsClosed");
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            start[0] - smt(100),
            start[1],
            start[2] - smt(30),
            start[3] + smt(130)
        ]
    );
    settle_checked(lc, id, c).await?;
    Ok(())
}

/// Gasless deposit: a user without ether signs a permit and a `DepositAuthorization`;
/// the agent submits both, pays the gas and earns the fee. Wrong agent, expiry (exact
/// boundary), replay, and authorizations for another channel, participant, total or
/// fee fail. Participants: 3 (funder, partner, agent).
pub async fn gasless_deposit(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (funder, partner, agent) = (&k[0], &k[1], &k[2]);
    let network = lc.deployment.token_network;
    let user = gasless_user(lc, funder, smt(1_000)).await?;
    let id = open_by(lc, agent, user.address(), partner.address()).await?;
    let other = open_by(lc, agent, user.address(), funder.address()).await?;
    let who = [user.address(), agent.address(), network];
    let start = balances(lc, &who).await?;

    let now = lc.now().await?;
    let deadline = U256::from(now + 3_600);
    lc.permit(agent, &user, network, smt(1_000), deadline)
        .await?;
    let receipt = lc
        .deposit_with_authorization(id, agent, &user, smt(500), smt(2), deadline)
        .await?;
    let dep = events::<TokenNetwork::ChannelDeposit>(&receipt);
    assert_eq!(
        (dep[0].id, dep[0].participant, dep[0].totalDeposit),
        (id, user.address(), smt(500))
    );
    assert_eq!(lc.channel(id)?.deposit1, smt(500));
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(502), start[1] + smt(2), start[2] + smt(500)]
    );
    assert_eq!(
        lc.chain.balance(user.address()).await?,
        U256::ZERO,
        "the user never paid gas"
    );

    let sign =
        |lc: &Lifecycle, id: U256, total: U256, agent: Address, fee: U256, deadline: U256| {
            lc.signer
                .deposit_authorization(&user, id, total, agent, fee, deadline)
        };
    // Replay of the used authorization: the total does not increase.
    let used = sign(lc, id, smt(500), agent.address(), smt(2), deadline);
    let replay = lc
        .submit_deposit_with_authorization(
            id,
            agent,
            user.address(),
            smt(500),
            smt(2),
            deadline,
            used,
        )
        .await;
    expect_revert(replay, "DepositNotIncreasing");

    // Another agent cannot use it (the digest names msg.sender as the agent).
    let auth = sign(lc, id, smt(600), agent.address(), smt(1), deadline);
    let wrong_agent = lc
        .submit_deposit_with_authorization(
            id,
            partner,
            user.address(),
            smt(600),
            smt(1),
            deadline,
            auth.clone(),
        )
        .await;
    expect_revert(wrong_agent, "InvalidSigner");
    // Another total, fee, participant or channel than signed.
    for (cid, participant, total, fee) in [
        (id, user.address(), smt(700), smt(1)),
        (id, user.address(), smt(600), smt(5)),
        (id, partner.address(), smt(600), smt(1)),
    ] {
        let r = lc
            .submit_deposit_with_authorization(
                cid,
                agent,
                participant,
                total,
                fee,
                deadline,
                auth.clone(),
            )
            .await;
        expect_revert(r, "InvalidSigner");
    }
    let for_other = sign(lc, other, smt(600), agent.address(), smt(1), deadline);
    let r = lc
        .submit_deposit_with_authorization(
            id,
            agent,
            user.address(),
            smt(600),
            smt(1),
            deadline,
            for_other,
        )
        .await;
    expect_revert(r, "InvalidSigner");

    // Expiry: valid while now <= deadline.
    let now = lc.now().await?;
    let tight = U256::from(now + 50);
    let auth_tight = sign(lc, id, smt(600), agent.address(), smt(1), tight);
    lc.set_next_block_timestamp(now + 51).await?;
    let late = lc
        .submit_deposit_with_authorization(
            id,
            agent,
            user.address(),
            smt(600),
            smt(1),
            tight,
            auth_tight.clone(),
        )
        .await;
    expect_revert(late, "AuthorizationExpired");
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(502), start[1] + smt(2), start[2] + smt(500)]
    );
    lc.set_next_block_timestamp(now + 50).await?;
    lc.submit_deposit_with_authorization(
        id,
        agent,
        user.address(),
        smt(600),
        smt(1),
        tight,
        auth_tight,
    )
    .await?;
    assert_eq!(lc.channel(id)?.deposit1, smt(600));
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] - smt(603), start[1] + smt(3), start[2] + smt(600)]
    );

    // More than the permit allows: the token refuses.
    let deadline = U256::from(lc.now().await? + 3_600);
    let big = sign(lc, id, smt(1_000), agent.address(), U256::ZERO, deadline);
    let r = lc
        .submit_deposit_with_authorization(
            id,
            agent,
            user.address(),
            smt(1_000),
            U256::ZERO,
            deadline,
            big,
        )
        .await;
    expect_revert(r, "ERC20InsufficientAllowance");
    assert_eq!(lc.chain.balance(user.address()).await?, U256::ZERO);
    Ok(())
}

/// Co-signed withdraw: pays the increase; refused when expired (exact boundary), not
/// increasing, exceeding the deposits, for a non-participant, with a signature missing,
/// wrong or made for someone else, and on a closed channel; anyone may submit.
/// Participants: 3.
pub async fn withdraw_rules(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let network = lc.deployment.token_network;
    let who = [a.address(), b.address(), c.address(), network];
    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let start = balances(lc, &who).await?;
    let now = lc.now().await?;
    let exp = U256::from(now + 1_000);

    let receipt = lc.withdraw(id, a, b, smt(30), exp).await?;
    let ev = events::<TokenNetwork::ChannelWithdraw>(&receipt);
    assert_eq!(
        (ev[0].id, ev[0].participant, ev[0].totalWithdraw),
        (id, a.address(), smt(30))
    );
    assert_eq!(lc.channel(id)?.withdrawn1, smt(30));
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] + smt(30), start[1], start[2], start[3] - smt(30)]
    );

    expect_revert(
        lc.withdraw(id, a, b, smt(30), exp).await,
        "WithdrawNotIncreasing",
    );
    expect_revert(
        lc.withdraw(id, a, b, smt(20), exp).await,
        "WithdrawNotIncreasing",
    );
    // deposits 150, a withdrew 30: b may take at most 120 in total.
    let err = expect_revert(
        lc.withdraw(id, b, a, smt(121), exp).await,
        "WithdrawExceedsDeposits",
    );
    assert!(revert_reason(&err).contains(&smt(150).to_string()), "{err}");
    expect_revert(
        lc.withdraw(id, b, a, smt(151), exp).await,
        "WithdrawExceedsDeposits",
    );
    expect_revert(lc.withdraw(id, c, a, smt(1), exp).await, "NotParticipant");

    // Signatures: missing, by a third party, for another participant, swapped order.
    let ch = lc.channel(id)?;
    let total = smt(40);
    let sig_b = lc.signer.withdraw(b, id, b.address(), total, exp);
    let sig_a = lc.signer.withdraw(a, id, b.address(), total, exp);
    let sig_c = lc.signer.withdraw(c, id, b.address(), total, exp);
    let for_a = lc.signer.withdraw(a, id, a.address(), total, exp);
    let attempt = |p: Bytes, q: Bytes| calls::withdraw(id, &ch, b.address(), total, exp, p, q);
    expect_revert(
        lc.tn(b, attempt(sig_b.clone(), Bytes::new())).await,
        "ECDSAInvalidSignatureLength",
    );
    expect_revert(
        lc.tn(b, attempt(Bytes::new(), sig_a.clone())).await,
        "ECDSAInvalidSignatureLength",
    );
    expect_revert(
        lc.tn(b, attempt(sig_b.clone(), sig_c.clone())).await,
        "InvalidSigner",
    );
    expect_revert(
        lc.tn(b, attempt(sig_c, sig_a.clone())).await,
        "InvalidSigner",
    );
    expect_revert(
        lc.tn(b, attempt(sig_b.clone(), for_a)).await,
        "InvalidSigner",
    );
    expect_revert(
        lc.tn(b, attempt(sig_a.clone(), sig_b.clone())).await,
        "InvalidSigner",
    );
    let other_exp = calls::withdraw(
        id,
        &ch,
        b.address(),
        total,
        exp + U256::from(1),
        sig_b.clone(),
        sig_a.clone(),
    );
    expect_revert(lc.tn(b, other_exp).await, "InvalidSigner");
    // Anyone may submit the co-signed proof; the participant is paid.
    lc.tn(c, attempt(sig_b, sig_a)).await?;
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            start[0] + smt(30),
            start[1] + smt(40),
            start[2],
            start[3] - smt(70)
        ]
    );

    // Expiry: valid while now < expiration.
    let now = lc.now().await?;
    let exp = U256::from(now + 20);
    lc.set_next_block_timestamp(now + 20).await?;
    let err = expect_revert(lc.withdraw(id, a, b, smt(35), exp).await, "WithdrawExpired");
    assert!(
        revert_reason(&err).contains(&(now + 20).to_string()),
        "{err}"
    );
    lc.set_next_block_timestamp(now + 19).await?;
    lc.withdraw(id, a, b, smt(35), exp).await?;

    lc.close(id, b, None, &no_balance()).await?;
    let exp = U256::from(lc.now().await? + 1_000);
    expect_revert(lc.withdraw(id, a, b, smt(36), exp).await, "ChannelIsClosed");
    let s = settle_checked(lc, id, c).await?;
    assert_eq!(
        (s.amount1, s.amount2),
        (smt(65), smt(10)),
        "a: 100 - 35, b: 50 - 40"
    );
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            start[0] + smt(100),
            start[1] + smt(50),
            start[2],
            start[3] - smt(150)
        ]
    );
    Ok(())
}

/// Cooperative settle: mismatching balances, wrong or swapped signatures, anyone
/// submits, withdrawn amounts count, the channel is finished (a second time fails), and
/// it also works on a closed channel. Participants: 3.
pub async fn cooperative_settle(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let network = lc.deployment.token_network;
    let who = [a.address(), b.address(), c.address(), network];
    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let exp = U256::from(lc.now().await? + 1_000);
    lc.withdraw(id, a, b, smt(20), exp).await?;
    let start = balances(lc, &who).await?;
    let ch = lc.channel(id)?;

    let sign = |lc: &Lifecycle, key: &PrivateKey, b1: U256, b2: U256| {
        lc.signer.cooperative_settle(key, id, &ch, b1, b2)
    };
    let (b1, b2) = (smt(40), smt(90));
    let s1 = sign(lc, a, b1, b2);
    let s2 = sign(lc, b, b1, b2);
    for (x, y) in [
        (smt(70), smt(70)),
        (smt(131), U256::ZERO),
        (U256::MAX, smt(1)),
        (smt(40), smt(91)),
    ] {
        let r = lc
            .tn(
                c,
                calls::cooperative_settle(id, &ch, x, y, sign(lc, a, x, y), sign(lc, b, x, y)),
            )
            .await;
        expect_revert(r, "CooperativeSettleBalanceMismatch");
    }
    expect_revert(
        lc.tn(
            c,
            calls::cooperative_settle(id, &ch, b1, b2, s2.clone(), s1.clone()),
        )
        .await,
        "InvalidSigner",
    );
    expect_revert(
        lc.tn(
            c,
            calls::cooperative_settle(id, &ch, b1, b2, s1.clone(), sign(lc, c, b1, b2)),
        )
        .await,
        "InvalidSigner",
    );
    let other = sign(lc, b, smt(41), smt(89));
    expect_revert(
        lc.tn(
            c,
            calls::cooperative_settle(id, &ch, b1, b2, s1.clone(), other),
        )
        .await,
        "InvalidSigner",
    );
    expect_revert(
        lc.tn(
            c,
            calls::cooperative_settle(id, &ch, b1, b2, s1.clone(), Bytes::new()),
        )
        .await,
        "ECDSAInvalidSignatureLength",
    );

    let receipt = lc
        .tn(
            c,
            calls::cooperative_settle(id, &ch, b1, b2, s1.clone(), s2.clone()),
        )
        .await?;
    let ev = events::<TokenNetwork::CooperativeSettled>(&receipt);
    assert_eq!((ev[0].id, ev[0].amount1, ev[0].amount2), (id, b1, b2));
    assert_eq!(
        balances(lc, &who).await?,
        vec![start[0] + b1, start[1] + b2, start[2], start[3] - smt(130)]
    );
    assert_eq!(lc.channel_hash(id).await?, B256::ZERO);
    assert_eq!(
        lc.tracker.outcome(id),
        Some(&ChannelOutcome::CooperativelySettled {
            amount1: b1,
            amount2: b2
        })
    );
    expect_revert(
        lc.tn(c, calls::cooperative_settle(id, &ch, b1, b2, s1, s2))
            .await,
        "ChannelStateMismatch",
    );

    // On a closed channel.
    let id = open_funded(lc, a, b, smt(10), smt(10)).await?;
    lc.close(id, a, None, &no_balance()).await?;
    let before = balances(lc, &who).await?;
    lc.cooperative_settle(id, a, b, smt(5), smt(15)).await?;
    assert_eq!(
        balances(lc, &who).await?,
        vec![
            before[0] + smt(5),
            before[1] + smt(15),
            before[2],
            before[3] - smt(20)
        ]
    );
    Ok(())
}

/// Close: only a participant, the partner's signature must be the partner's over this
/// exact proof, nonce-0 balances must be empty, the event and the recorded state, no
/// second close. Participants: 3.
pub async fn close_rules(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let b2 = lc.proof(b, id, 2, smt(20));
    let a1 = lc.proof(a, id, 1, smt(5));

    expect_revert(
        lc.close(id, c, Some(&b2), &no_balance()).await,
        "NotParticipant",
    );
    // The partner proof signed by the closer itself, by a third party, or tampered.
    let self_signed = SignedBalance {
        signature: lc.signer.balance_proof(a, id, &b2.balance, b2.message_hash),
        ..b2.clone()
    };
    expect_revert(
        lc.close(id, a, Some(&self_signed), &a1.balance).await,
        "InvalidSigner",
    );
    let third = SignedBalance {
        signature: lc.signer.balance_proof(c, id, &b2.balance, b2.message_hash),
        ..b2.clone()
    };
    expect_revert(
        lc.close(id, a, Some(&third), &a1.balance).await,
        "InvalidSigner",
    );
    let mut tampered = b2.clone();
    tampered.balance.transferredAmount = smt(21);
    expect_revert(
        lc.close(id, a, Some(&tampered), &a1.balance).await,
        "InvalidSigner",
    );
    let mut other_message = b2.clone();
    other_message.message_hash = word("another message");
    expect_revert(
        lc.close(id, a, Some(&other_message), &a1.balance).await,
        "InvalidSigner",
    );
    // Nonce 0 stands for "nothing sent" and must be all zero, on either side.
    let not_empty = Balance {
        nonce: 0,
        transferredAmount: smt(1),
        lockedAmount: U256::ZERO,
        locksroot: B256::ZERO,
    };
    let fake = SignedBalance {
        balance: not_empty.clone(),
        message_hash: B256::ZERO,
        signature: Bytes::new(),
    };
    expect_revert(
        lc.close(id, a, Some(&fake), &a1.balance).await,
        "InvalidEmptyBalanceProof",
    );
    expect_revert(
        lc.close(id, a, Some(&b2), &not_empty).await,
        "InvalidEmptyBalanceProof",
    );
    let locked_only = Balance {
        nonce: 0,
        transferredAmount: U256::ZERO,
        lockedAmount: U256::ZERO,
        locksroot: word("root"),
    };
    expect_revert(
        lc.close(id, a, Some(&b2), &locked_only).await,
        "InvalidEmptyBalanceProof",
    );

    let receipt = lc.close(id, a, Some(&b2), &a1.balance).await?;
    let closed = events::<TokenNetwork::ChannelClosed>(&receipt);
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].id, closed[0].closer), (id, a.address()));
    assert_eq!(closed[0].closedAt, block_time(lc, &receipt));
    assert_eq!(
        (&closed[0].closerBalance, &closed[0].partnerBalance),
        (&a1.balance, &b2.balance)
    );
    let ch = lc.channel(id)?;
    assert_eq!(
        (ch.closer, ch.closedAt, ch.confirmed),
        (a.address(), closed[0].closedAt, false)
    );
    assert_eq!(
        lc.channel_hash(id).await?,
        keccak256(ch.abi_encode()),
        "events rebuild the committed struct"
    );

    expect_revert(
        lc.close(id, a, Some(&b2), &a1.balance).await,
        "ChannelIsClosed",
    );
    expect_revert(
        lc.close(id, b, Some(&a1), &b2.balance).await,
        "ChannelIsClosed",
    );

    // Closing without any partner proof needs no signature.
    let quiet = open_funded(lc, a, b, smt(10), U256::ZERO).await?;
    lc.close(quiet, b, None, &no_balance()).await?;
    let s = settle_checked(lc, quiet, c).await?;
    assert_eq!((s.amount1, s.amount2), (smt(10), U256::ZERO));
    let s = settle_checked(lc, id, c).await?;
    assert_eq!(
        (s.amount1, s.amount2),
        (smt(115), smt(85)),
        "a: 100 - 5 + 20"
    );
    Ok(())
}

/// Update by the non-closer: needs a closed channel, an older proof is rejected
/// (`BalanceProofTooOld`), the declared one confirms once (`AlreadyConfirmed`), without
/// needing the closer's signature; the closer itself needs an authorization; updating
/// after the timeout is fine until someone settles. Participants: 2.
pub async fn update_rules(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let open = open_funded(lc, a, b, smt(1), smt(1)).await?;
    let a1 = lc.proof(a, id, 1, smt(10));
    let a3 = lc.proof(a, id, 3, smt(30));
    let b1 = lc.proof(b, id, 1, smt(4));

    let early = lc.proof(a, open, 1, smt(1));
    expect_revert(lc.update(open, b, &early).await, "ChannelNotClosed");

    lc.close(id, a, Some(&b1), &a3.balance).await?;
    let err = expect_revert(lc.update(id, b, &a1).await, "BalanceProofTooOld");
    assert!(
        revert_reason(&err).contains("nonce=1") && revert_reason(&err).contains("declaredNonce=3"),
        "{err}"
    );
    // The closer presenting its own proof is a delegate without authorization.
    expect_revert(lc.update(id, a, &a3).await, "ECDSAInvalidSignatureLength");
    lc.update(id, b, &a3).await?;
    assert!(lc.channel(id)?.confirmed);
    expect_revert(lc.update(id, b, &a3).await, "AlreadyConfirmed");
    expect_revert(lc.update(id, b, &a1).await, "BalanceProofTooOld");

    // Confirming needs no closer signature (it proves nothing against the closer), and is
    // allowed after the settle timeout as long as nobody settled.
    lc.close(open, b, None, &plain(2, smt(1))).await?;
    lc.increase_time(SETTLE_TIMEOUT + 100).await?;
    let unsigned = SignedBalance {
        balance: plain(2, smt(1)),
        message_hash: B256::ZERO,
        signature: Bytes::new(),
    };
    lc.update(open, a, &unsigned).await?;
    assert!(lc.channel(open)?.confirmed);

    let s = settle_checked_now(lc, id, b).await?;
    assert_eq!((s.amount1, s.amount2), (smt(74), smt(126)));
    let s = settle_checked_now(lc, open, a).await?;
    assert_eq!((s.amount1, s.amount2), (smt(2), U256::ZERO));
    Ok(())
}

/// Update by a delegate (watchtower): works with the non-closer's
/// `UpdateAuthorization`, fails without it, with the delegate's own signature, or with
/// an authorization for another proof or channel. Participants: 3.
pub async fn delegate_update(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let other = open_funded(lc, a, b, smt(1), smt(1)).await?;
    let a1 = lc.proof(a, id, 1, smt(10));
    let a2 = lc.proof(a, id, 2, smt(25));
    lc.close(id, a, None, &a2.balance).await?;
    let ch = lc.channel(id)?;

    let send = |auth: Bytes| {
        calls::update(
            id,
            &ch,
            a2.balance.clone(),
            a2.message_hash,
            a2.signature.clone(),
            auth,
        )
    };
    expect_revert(
        lc.tn(c, send(Bytes::new())).await,
        "ECDSAInvalidSignatureLength",
    );
    let by_delegate =
        lc.signer
            .update_authorization(c, id, a.address(), &a2.balance, a2.message_hash);
    expect_revert(lc.tn(c, send(by_delegate)).await, "InvalidSigner");
    let for_older =
        lc.signer
            .update_authorization(b, id, a.address(), &a1.balance, a1.message_hash);
    expect_revert(lc.tn(c, send(for_older)).await, "InvalidSigner");
    let for_other_channel =
        lc.signer
            .update_authorization(b, other, a.address(), &a2.balance, a2.message_hash);
    expect_revert(lc.tn(c, send(for_other_channel)).await, "InvalidSigner");
    let naming_b = lc
        .signer
        .update_authorization(b, id, b.address(), &a2.balance, a2.message_hash);
    expect_revert(lc.tn(c, send(naming_b)).await, "InvalidSigner");
    assert!(!lc.channel(id)?.confirmed);

    let who = [a.address(), b.address(), c.address()];
    let before = balances(lc, &who).await?;
    lc.update_by_delegate(id, c, b, &a2).await?;
    assert!(lc.channel(id)?.confirmed);
    assert_eq!(
        balances(lc, &who).await?,
        before,
        "a confirmation moves no token"
    );
    // An older proof through the delegate is still too old.
    expect_revert(
        lc.update_by_delegate(id, c, b, &a1).await,
        "BalanceProofTooOld",
    );
    let s = settle_checked(lc, id, c).await?;
    assert_eq!((s.amount1, s.amount2), (smt(75), smt(125)));
    Ok(())
}

/// Settle: not on an open channel, not before `closedAt + settleTimeout` (exact
/// boundary), anyone may settle, and only once. Participants: 3.
pub async fn settle_rules(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let id = open_funded(lc, a, b, smt(60), smt(40)).await?;
    let open = open_funded(lc, a, b, smt(1), U256::ZERO).await?;
    let b1 = lc.proof(b, id, 1, smt(15));
    let receipt = lc.close(id, a, Some(&b1), &plain(1, smt(5))).await?;
    let closed_at = block_time(lc, &receipt);
    let settle_at = closed_at + SETTLE_TIMEOUT;

    let err = expect_revert(lc.settle_now(id, c).await, "SettleTimeoutNotExpired");
    assert!(
        revert_reason(&err).contains(&format!("settleAt={settle_at}")),
        "{err}"
    );
    expect_revert(lc.settle_now(open, c).await, "ChannelNotClosed");
    lc.set_next_block_timestamp(settle_at - 1).await?;
    expect_revert(lc.settle_now(id, c).await, "SettleTimeoutNotExpired");
    lc.set_next_block_timestamp(settle_at).await?;
    let ch = lc.channel(id)?;
    let s = settle_checked_now(lc, id, c).await?;
    assert_eq!((s.amount1, s.amount2), (smt(70), smt(30)));
    expect_revert(
        lc.tn(c, calls::settle(id, &ch)).await,
        "ChannelStateMismatch",
    );
    expect_revert(
        lc.tn(
            a,
            calls::close(
                id,
                &ch,
                no_balance(),
                B256::ZERO,
                Bytes::new(),
                no_balance(),
            ),
        )
        .await,
        "ChannelStateMismatch",
    );
    Ok(())
}

/// Settlement equals the off-chain ledger to the unit, with payments both ways,
/// withdrawals on both sides and a cumulative transferred amount above the sender's own
/// deposit. Participants: 2.
pub async fn settlement_matches_ledger(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let who = [a.address(), b.address()];
    let start = balances(lc, &who).await?;
    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let unit = U256::from(1);
    // a pays 30, b pays 60 (it received 30), a pays up to 130 + 1 wei in total: more than
    // its own deposit of 100.
    let _ = lc.proof(a, id, 1, smt(30));
    let _ = lc.proof(b, id, 1, smt(60));
    let a2 = lc.proof(a, id, 2, smt(130) + unit);
    let b1 = lc.proof(b, id, 1, smt(60));
    let exp = U256::from(lc.now().await? + 1_000);
    lc.withdraw(id, a, b, smt(10), exp).await?;
    lc.withdraw(id, b, a, smt(20), exp).await?;
    lc.close(id, b, Some(&a2), &b1.balance).await?;
    lc.update(id, a, &b1).await?;
    let s = settle_checked(lc, id, a).await?;
    // a: 100 - 10 + 60 - 130 - 1 wei; b: the rest of the 120 left.
    assert_eq!((s.amount1, s.amount2), (smt(20) - unit, smt(100) + unit));
    let end = balances(lc, &who).await?;
    assert_eq!(
        end[0] + smt(70) + unit,
        start[0],
        "a is down exactly 130 - 60 and a wei"
    );
    assert_eq!(end[1], start[1] + smt(70) + unit, "b is up exactly as much");
    Ok(())
}

/// Absurd transferred amounts clamp instead of reverting: a closer declaring more than
/// everything gets nothing, a partner proof of more than everything gives the closer
/// everything, both sides huge, and withdrawals making the net negative. Participants: 2.
pub async fn settlement_clamps(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);

    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    lc.close(id, a, None, &plain(1, U256::MAX)).await?;
    let s = settle_checked(lc, id, b).await?;
    assert_eq!((s.amount1, s.amount2), (U256::ZERO, smt(150)));

    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let huge = raw_proof(lc, b, id, plain(1, U256::MAX));
    lc.close(id, a, Some(&huge), &no_balance()).await?;
    let s = settle_checked(lc, id, b).await?;
    assert_eq!((s.amount1, s.amount2), (smt(150), U256::ZERO));

    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let almost = raw_proof(lc, b, id, plain(1, U256::MAX - smt(7)));
    lc.close(id, a, Some(&almost), &plain(1, U256::MAX)).await?;
    let s = settle_checked(lc, id, b).await?;
    assert_eq!((s.amount1, s.amount2), (smt(93), smt(57)));

    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let exp = U256::from(lc.now().await? + 1_000);
    lc.withdraw(id, a, b, smt(80), exp).await?;
    let a1 = lc.proof(a, id, 1, smt(40));
    lc.close(id, b, Some(&a1), &no_balance()).await?;
    let s = settle_checked(lc, id, b).await?;
    assert_eq!(
        (s.amount1, s.amount2),
        (U256::ZERO, smt(70)),
        "100 - 80 - 40 < 0 clamps to 0"
    );
    Ok(())
}

/// Unlock after settlement: a lock whose secret was registered before (or exactly at)
/// its expiration goes to the receiver; registered after, never registered, or of
/// amount 0 goes back to the sender; both directions; twice fails (`NoPendingLocks`),
/// so do wrong lock lists and bad lengths. Participants: 3.
pub async fn unlock(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let network = lc.deployment.token_network;
    let who = [a.address(), b.address(), network];
    let start = balances(lc, &who).await?;
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let now = lc.now().await?;
    let lock = |exp: u64, amount: U256, label: &str| eip712::Lock {
        expiration: exp,
        amount,
        secrethash: keccak256(word(label)),
    };
    let a_locks = vec![
        lock(now + 300, smt(5), "l1"),     // registered at once: paid
        lock(now + 100, smt(7), "l2"),     // registered after expiry: returned
        lock(now + 200, smt(11), "l3"),    // never registered: returned
        lock(now + 250, smt(3), "l4"),     // registered exactly at expiry: paid
        lock(now + 260, U256::ZERO, "l5"), // amount 0: skipped
    ];
    let b_locks = vec![lock(now + 300, smt(2), "l6")];
    let a1 = lc.proof_with_locks(a, id, 1, smt(10), &a_locks);
    let b1 = lc.proof_with_locks(b, id, 1, smt(4), &b_locks);
    assert_eq!(a1.balance.lockedAmount, smt(26));

    lc.close(id, b, Some(&a1), &b1.balance).await?;
    lc.update(id, a, &b1).await?;
    lc.register_secrets(c, &[word("l1"), word("l6"), word("l5")])
        .await?;
    lc.set_next_block_timestamp(now + 150).await?;
    lc.register_secret(c, word("l2")).await?;
    lc.set_next_block_timestamp(now + 250).await?;
    lc.register_secret(c, word("l4")).await?;
    assert_eq!(
        lc.secret_reveal_time(keccak256(word("l4"))).await?,
        now + 250
    );

    // Nothing to unlock before settlement.
    let encoded = eip712::encode_locks(&a_locks);
    expect_revert(
        lc.unlock(id, c, a.address(), b.address(), &a_locks).await,
        "NoPendingLocks",
    );
    let s = settle_checked(lc, id, c).await?;
    assert_eq!(
        (s.amount1, s.kept1, s.amount2, s.kept2),
        (smt(68), smt(26), smt(104), smt(2))
    );

    // Wrong lists and lengths.
    expect_revert(
        lc.unlock(id, c, a.address(), b.address(), &a_locks[..1])
            .await,
        "NoPendingLocks",
    );
    expect_revert(
        lc.unlock(id, c, b.address(), a.address(), &a_locks).await,
        "NoPendingLocks",
    );
    let bad = calls::unlock(id, a.address(), b.address(), encoded[..95].to_vec());
    expect_revert(lc.tn(c, bad).await, "InvalidLocksLength");

    let mid = balances(lc, &who).await?;
    let receipt = lc.unlock(id, c, a.address(), b.address(), &a_locks).await?;
    let ev = events::<TokenNetwork::ChannelUnlocked>(&receipt);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (
            ev[0].id,
            ev[0].sender,
            ev[0].receiver,
            ev[0].locksroot,
            ev[0].unlockedAmount,
            ev[0].returnedAmount
        ),
        (
            id,
            a.address(),
            b.address(),
            keccak256(&encoded),
            smt(8),
            smt(18)
        )
    );
    assert_eq!(
        balances(lc, &who).await?,
        vec![mid[0] + smt(18), mid[1] + smt(8), mid[2] - smt(26)]
    );
    expect_revert(
        lc.unlock(id, c, a.address(), b.address(), &a_locks).await,
        "NoPendingLocks",
    );
    assert_eq!(
        lc.pending_locked_amount(id, a.address(), b.address(), keccak256(&encoded))
            .await?,
        U256::ZERO
    );

    lc.unlock(id, c, b.address(), a.address(), &b_locks).await?;
    expect_revert(
        lc.unlock(id, c, b.address(), a.address(), &b_locks).await,
        "NoPendingLocks",
    );
    // The ledger: a paid 10 + 8 by locks and received 4 + 2; b the opposite.
    let end = balances(lc, &who).await?;
    assert_eq!(end, vec![start[0] - smt(12), start[1] + smt(12), start[2]]);
    Ok(())
}

/// Undecided locks (secret unregistered, not expired) may only be given up by the
/// receiver; the receiver's payout is capped at the retained amount (when the locks
/// exceed the net balance or the signed locked amount); a locked amount without a
/// locksroot retains nothing. Participants: 3.
pub async fn unlock_undecided_and_caps(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let who = [a.address(), b.address()];
    let now = lc.now().await?;
    let lock = |exp: u64, amount: U256, label: &str| eip712::Lock {
        expiration: exp,
        amount,
        secrethash: keccak256(word(label)),
    };

    // Undecided.
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let locks = vec![
        lock(now + 100_000, smt(6), "u1"),
        lock(now + 50, smt(4), "u2"),
    ];
    let a1 = lc.proof_with_locks(a, id, 1, U256::ZERO, &locks);
    lc.close(id, b, Some(&a1), &no_balance()).await?;
    lc.register_secret(c, word("u2")).await?;
    settle_checked(lc, id, c).await?;
    let err = expect_revert(
        lc.unlock(id, a, a.address(), b.address(), &locks).await,
        "LockUndecided",
    );
    assert!(
        revert_reason(&err).contains(&format!("{}", keccak256(word("u1")))),
        "{err}"
    );
    expect_revert(
        lc.unlock(id, c, a.address(), b.address(), &locks).await,
        "LockUndecided",
    );
    let before = balances(lc, &who).await?;
    lc.unlock(id, b, a.address(), b.address(), &locks).await?;
    assert_eq!(
        balances(lc, &who).await?,
        vec![before[0] + smt(6), before[1] + smt(4)],
        "the receiver gave u1 up"
    );

    // Locks above the net balance: retained = net, the receiver gets at most that.
    let now = lc.now().await?;
    let id = open_funded(lc, a, b, smt(10), smt(10)).await?;
    let locks = vec![
        lock(now + 100, smt(30), "v1"),
        lock(now + 100, smt(20), "v2"),
    ];
    let a1 = lc.proof_with_locks(a, id, 1, U256::ZERO, &locks);
    lc.close(id, b, Some(&a1), &no_balance()).await?;
    lc.register_secrets(c, &[word("v1"), word("v2")]).await?;
    let s = settle_checked(lc, id, c).await?;
    assert_eq!(
        (s.amount1, s.kept1, s.amount2),
        (U256::ZERO, smt(10), smt(10))
    );
    let before = balances(lc, &who).await?;
    let receipt = lc.unlock(id, c, a.address(), b.address(), &locks).await?;
    let ev = events::<TokenNetwork::ChannelUnlocked>(&receipt);
    assert_eq!(
        (ev[0].unlockedAmount, ev[0].returnedAmount),
        (smt(10), U256::ZERO)
    );
    assert_eq!(
        balances(lc, &who).await?,
        vec![before[0], before[1] + smt(10)]
    );

    // A signed locked amount below the locks' sum caps the payout too.
    let now = lc.now().await?;
    let id = open_funded(lc, a, b, smt(50), smt(50)).await?;
    let locks = vec![lock(now + 100, smt(30), "w1")];
    let balance = Balance {
        nonce: 1,
        transferredAmount: U256::ZERO,
        lockedAmount: smt(5),
        locksroot: eip712::locksroot(&locks),
    };
    let a1 = raw_proof(lc, a, id, balance);
    lc.close(id, b, Some(&a1), &no_balance()).await?;
    lc.register_secret(c, word("w1")).await?;
    let s = settle_checked(lc, id, c).await?;
    assert_eq!((s.amount1, s.kept1), (smt(45), smt(5)));
    let before = balances(lc, &who).await?;
    lc.unlock(id, c, a.address(), b.address(), &locks).await?;
    assert_eq!(
        balances(lc, &who).await?,
        vec![before[0], before[1] + smt(5)]
    );

    // A locked amount without a locksroot could never be unlocked: nothing is retained.
    let id = open_funded(lc, a, b, smt(50), smt(50)).await?;
    let balance = Balance {
        nonce: 1,
        transferredAmount: smt(1),
        lockedAmount: smt(20),
        locksroot: B256::ZERO,
    };
    let a1 = raw_proof(lc, a, id, balance);
    lc.close(id, b, Some(&a1), &no_balance()).await?;
    let s = settle_checked(lc, id, c).await?;
    assert_eq!(
        (s.amount1, s.kept1, s.amount2),
        (smt(49), U256::ZERO, smt(51))
    );
    Ok(())
}

/// The TokenNetwork's views (token, registry, timeouts, type hashes, domain separator,
/// digest, channel hash) and its constructor checks. Participants: 2.
pub async fn views_and_constructor(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let tn = lc.deployment.token_network;
    assert_eq!(
        lc.view(tn, TokenNetwork::tokenCall {}).await?,
        lc.deployment.token
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::secretRegistryCall {}).await?,
        lc.deployment.secret_registry
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::minSettleTimeoutCall {}).await?,
        lc.deployment.min_settle_timeout
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::maxSettleTimeoutCall {}).await?,
        lc.deployment.max_settle_timeout
    );
    use alloy::sol_types::SolStruct;
    assert_eq!(
        lc.view(tn, TokenNetwork::BALANCE_PROOF_TYPEHASHCall {})
            .await?,
        keccak256(eip712::BalanceProof::eip712_encode_type().as_bytes())
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::UPDATE_AUTHORIZATION_TYPEHASHCall {})
            .await?,
        keccak256(eip712::UpdateAuthorization::eip712_encode_type().as_bytes())
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::WITHDRAW_PROOF_TYPEHASHCall {})
            .await?,
        keccak256(eip712::WithdrawProof::eip712_encode_type().as_bytes())
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::COOPERATIVE_SETTLE_TYPEHASHCall {})
            .await?,
        keccak256(eip712::CooperativeSettle::eip712_encode_type().as_bytes())
    );
    assert_eq!(
        lc.view(tn, TokenNetwork::DEPOSIT_AUTHORIZATION_TYPEHASHCall {})
            .await?,
        keccak256(eip712::DepositAuthorization::eip712_encode_type().as_bytes())
    );
    let domain = eip712::token_network_domain(lc.deployment.chain_id, tn);
    assert_eq!(
        lc.view(tn, TokenNetwork::domainSeparatorCall {}).await?,
        domain.separator()
    );
    let token = lc.deployment.token;
    assert_eq!(
        lc.view(token, SmartMeshToken::DOMAIN_SEPARATORCall {})
            .await?,
        lc.token_domain().separator()
    );
    assert_eq!(
        lc.view(token, SmartMeshToken::TRANSFER_WITH_FEE_TYPEHASHCall {})
            .await?,
        keccak256(eip712::TransferWithFee::eip712_encode_type().as_bytes())
    );
    assert_eq!(
        lc.view(token, SmartMeshToken::CANCEL_AUTHORIZATION_TYPEHASHCall {})
            .await?,
        keccak256(eip712::CancelAuthorization::eip712_encode_type().as_bytes())
    );

    let id = open_funded(lc, a, b, smt(3), smt(4)).await?;
    let p = lc.proof(a, id, 7, smt(2));
    let digest = lc
        .view(
            tn,
            TokenNetwork::balanceProofDigestCall {
                id,
                balance: p.balance.clone(),
                messageHash: p.message_hash,
            },
        )
        .await?;
    assert_eq!(
        digest,
        lc.signer
            .balance_proof_digest(id, &p.balance, p.message_hash)
    );
    let ch = lc.channel(id)?;
    assert_eq!(
        lc.view(tn, TokenNetwork::hashChannelCall { ch: ch.clone() })
            .await?,
        lc.channel_hash(id).await?
    );
    assert_eq!(remaining(&ch), smt(7));

    // Constructor checks.
    let deployer = a;
    let code = |token: Address, registry: Address, min: u64, max: u64| {
        let mut data = artifacts::token_network().bytecode.to_vec();
        let args = TokenNetwork::constructorCall {
            token_: token,
            secretRegistry_: registry,
            minSettleTimeout_: min,
            maxSettleTimeout_: max,
        };
        data.extend_from_slice(&args.abi_encode());
        data
    };
    let registry = lc.deployment.secret_registry;
    expect_revert(
        lc.deploy_contract(deployer, code(b.address(), registry, 10, 100))
            .await,
        "InvalidAddress",
    );
    expect_revert(
        lc.deploy_contract(deployer, code(token, Address::ZERO, 10, 100))
            .await,
        "InvalidAddress",
    );
    expect_revert(
        lc.deploy_contract(deployer, code(token, registry, 0, 100))
            .await,
        "InvalidSettleTimeoutRange",
    );
    expect_revert(
        lc.deploy_contract(deployer, code(token, registry, 101, 100))
            .await,
        "InvalidSettleTimeoutRange",
    );
    let fresh = lc
        .deploy_contract(deployer, code(token, registry, 100, 100))
        .await?;
    assert_eq!(
        lc.view(fresh, TokenNetwork::channelCounterCall {}).await?,
        U256::ZERO
    );
    assert_eq!(
        lc.view(fresh, TokenNetwork::minSettleTimeoutCall {})
            .await?,
        100
    );
    Ok(())
}
