//! Attacks on the TokenNetwork: lying closers (the penalty rule), honest closers that
//! must never be punished, replays across channels, contracts and chains, malleable
//! signatures, token reentrancy, and settlement arithmetic at the edge of uint256.

use super::channel::{open_funded, plain, raw_proof, settle_checked};
use super::{
    FlowResult, balances, block_time, events, expect_revert, expected_settlement, high_s_twin,
    keys, remaining, word,
};
use crate::{Lifecycle, SETTLE_TIMEOUT, SignedBalance, smt};
use alloy::sol_types::{SolCall, SolConstructor};
use smartmesh_chain::token_network::{
    Balance, Channel, ChannelOutcome, ChannelTracker, TokenNetworkSigner, calls, no_balance,
    opened_channel_id,
};
use smartmesh_chain::{ChainError, TxReceipt};
use smartmesh_contracts::{ReentrantToken, SmartMeshToken, TokenNetwork, artifacts};
use smartmesh_primitives::{Address, B256, Bytes, ChainId, PrivateKey, U256, eip712, keccak256};

// ---------------------------------------------------------------- a second network

/// A TokenNetwork deployed by a flow (over any ERC-20), driven like the lifecycle's own:
/// its own signer (domain) and channel tracker.
pub struct OtherNetwork {
    /// Where it is.
    pub address: Address,
    /// Its token.
    pub token: Address,
    /// Signs its typed data.
    pub signer: TokenNetworkSigner,
    /// Its channels, from its events.
    pub tracker: ChannelTracker,
}

impl OtherNetwork {
    /// Deploys a TokenNetwork over `token` with the lifecycle's registry and timeouts.
    pub async fn deploy(
        lc: &Lifecycle,
        by: &PrivateKey,
        token: Address,
    ) -> Result<Self, ChainError> {
        let args = TokenNetwork::constructorCall {
            token_: token,
            secretRegistry_: lc.deployment.secret_registry,
            minSettleTimeout_: lc.deployment.min_settle_timeout,
            maxSettleTimeout_: lc.deployment.max_settle_timeout,
        };
        let mut code = artifacts::token_network().bytecode.to_vec();
        code.extend_from_slice(&args.abi_encode());
        let address = lc.deploy_contract(by, code).await?;
        Ok(Self {
            address,
            token,
            signer: TokenNetworkSigner::new(lc.deployment.chain_id, address),
            tracker: ChannelTracker::new(address),
        })
    }

    /// Sends `data` to this network and tracks its events.
    pub async fn send(
        &mut self,
        lc: &Lifecycle,
        from: &PrivateKey,
        data: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        let receipt = lc.send(from, self.address, data).await?;
        self.tracker.apply_all(&receipt.logs);
        Ok(receipt)
    }

    /// The tracked state of channel `id`.
    pub fn channel(&self, id: U256) -> Result<Channel, ChainError> {
        self.tracker
            .channel(id)
            .cloned()
            .ok_or_else(|| ChainError::Invalid(format!("channel {id} is not open")))
    }

    /// Opens a channel `a`–`b` from `a`.
    pub async fn open(
        &mut self,
        lc: &Lifecycle,
        a: &PrivateKey,
        b: &PrivateKey,
    ) -> Result<U256, ChainError> {
        let receipt = self
            .send(lc, a, calls::open(a.address(), b.address(), SETTLE_TIMEOUT))
            .await?;
        opened_channel_id(&receipt.logs)
            .ok_or_else(|| ChainError::InvalidResponse("no ChannelOpened".into()))
    }

    /// Raises `who`'s total deposit.
    pub async fn deposit(
        &mut self,
        lc: &Lifecycle,
        id: U256,
        who: &PrivateKey,
        total: U256,
    ) -> Result<TxReceipt, ChainError> {
        let ch = self.channel(id)?;
        self.send(
            lc,
            who,
            calls::set_total_deposit(id, &ch, who.address(), total),
        )
        .await
    }

    /// Token balance of `who` (any ERC-20).
    pub async fn balance_of(&self, lc: &Lifecycle, who: Address) -> Result<U256, ChainError> {
        lc.view(self.token, SmartMeshToken::balanceOfCall { account: who })
            .await
    }

    /// Token balances of several accounts.
    pub async fn balances(&self, lc: &Lifecycle, who: &[Address]) -> Result<Vec<U256>, ChainError> {
        let mut out = Vec::new();
        for account in who {
            out.push(self.balance_of(lc, *account).await?);
        }
        Ok(out)
    }
}

/// Approves `spender` for everything of `token` from each key.
async fn approve_all(
    lc: &Lifecycle,
    token: Address,
    spender: Address,
    owners: &[&PrivateKey],
) -> FlowResult {
    for owner in owners {
        let call = SmartMeshToken::approveCall {
            spender,
            value: U256::MAX,
        };
        lc.send(owner, token, call.abi_encode().into()).await?;
    }
    Ok(())
}

/// Checks a penalty: the `ChannelPenalized` event, the whole remaining deposit to the
/// non-closer, nothing to the closer, the channel finished for good.
async fn assert_penalized(
    lc: &mut Lifecycle,
    id: U256,
    ch: &Channel,
    receipt: &TxReceipt,
    beneficiary: Address,
    before: &[U256],
) -> FlowResult {
    let amount = remaining(ch);
    let ev = events::<TokenNetwork::ChannelPenalized>(receipt);
    assert_eq!(ev.len(), 1, "one ChannelPenalized");
    assert_eq!(
        (ev[0].id, ev[0].beneficiary, ev[0].amount),
        (id, beneficiary, amount)
    );
    let closer = ch.closer;
    let who = [closer, beneficiary, lc.deployment.token_network];
    let after = balances(lc, &who).await?;
    assert_eq!(
        after,
        vec![before[0], before[1] + amount, before[2] - amount],
        "everything to the non-closer"
    );
    assert_eq!(lc.channel_hash(id).await?, B256::ZERO);
    assert_eq!(
        lc.tracker.outcome(id),
        Some(&ChannelOutcome::Penalized {
            beneficiary,
            amount
        })
    );
    // Finished: nothing more can happen to it.
    lc.increase_time(ch.settleTimeout + 1).await?;
    let by = lc.keys[0].clone();
    expect_revert(
        lc.tn(&by, calls::settle(id, ch)).await,
        "ChannelStateMismatch",
    );
    let again = calls::update(id, ch, no_balance(), B256::ZERO, Bytes::new(), Bytes::new());
    expect_revert(lc.tn(&by, again).await, "ChannelStateMismatch");
    let coop =
        calls::cooperative_settle(id, ch, U256::ZERO, U256::ZERO, Bytes::new(), Bytes::new());
    expect_revert(lc.tn(&by, coop).await, "ChannelStateMismatch");
    Ok(())
}

// ---------------------------------------------------------------- penalties

/// A stale close: the closer declares an older proof than one it signed; the
/// non-closer's newer proof (higher nonce) takes the whole remaining deposit, even after
/// it had first confirmed the stale declaration. A proof the closer never signed proves
/// nothing. Participants: 2.
pub async fn penalty_higher_nonce(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let id = open_funded(lc, a, b, smt(100), smt(50)).await?;
    let exp = U256::from(lc.now().await? + 1_000);
    lc.withdraw(id, a, b, smt(10), exp).await?;
    let a1 = lc.proof(a, id, 1, smt(10));
    let _a2 = lc.proof(a, id, 2, smt(20));
    let a3 = lc.proof(a, id, 3, smt(35));
    let b1 = lc.proof(b, id, 1, smt(5));
    lc.close(id, a, Some(&b1), &a1.balance).await?;

    // A "newer proof" the closer never signed.
    let forged = SignedBalance {
        signature: lc
            .signer
            .balance_proof(b, id, &plain(4, smt(90)), a3.message_hash),
        balance: plain(4, smt(90)),
        ..a3.clone()
    };
    expect_revert(lc.update(id, b, &forged).await, "InvalidSigner");
    let unsigned = SignedBalance {
        signature: Bytes::new(),
        ..a3.clone()
    };
    expect_revert(
        lc.update(id, b, &unsigned).await,
        "ECDSAInvalidSignatureLength",
    );

    lc.update(id, b, &a1).await?; // b first confirms the stale declaration...
    let ch = lc.channel(id)?;
    let before = balances(lc, &[a.address(), b.address(), lc.deployment.token_network]).await?;
    let receipt = lc.update(id, b, &a3).await?; // ...then finds the newer proof
    assert_eq!(remaining(&ch), smt(140));
    assert_penalized(lc, id, &ch, &receipt, b.address(), &before).await?;

    // Declaring "nothing sent" (nonce 0) after having sent something.
    let id = open_funded(lc, a, b, smt(30), smt(20)).await?;
    let a1 = lc.proof(a, id, 1, smt(1));
    lc.close(id, a, None, &no_balance()).await?;
    let ch = lc.channel(id)?;
    let before = balances(lc, &[a.address(), b.address(), lc.deployment.token_network]).await?;
    let receipt = lc.update(id, b, &a1).await?;
    assert_penalized(lc, id, &ch, &receipt, b.address(), &before).await
}

/// The closer signed two different proofs with the same nonce (transferred amount,
/// locked amount or locksroot differ): presenting the one it did not declare is a
/// penalty. The same content with another message hash is the same proof (a
/// confirmation). The closer here is participant2. Participants: 2.
pub async fn penalty_same_nonce_different_content(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let root = word("locksroot");
    let declared = Balance {
        nonce: 4,
        transferredAmount: smt(40),
        lockedAmount: smt(3),
        locksroot: root,
    };
    let variants = [
        Balance {
            transferredAmount: smt(41),
            ..declared.clone()
        },
        Balance {
            lockedAmount: smt(2),
            ..declared.clone()
        },
        Balance {
            locksroot: word("other root"),
            ..declared.clone()
        },
        Balance {
            transferredAmount: smt(10),
            lockedAmount: U256::ZERO,
            locksroot: B256::ZERO,
            ..declared.clone()
        },
    ];
    for evidence in variants {
        let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
        lc.close(id, b, None, &declared).await?;
        let proof = raw_proof(lc, b, id, evidence);
        let ch = lc.channel(id)?;
        let before = balances(lc, &[b.address(), a.address(), lc.deployment.token_network]).await?;
        let receipt = lc.update(id, a, &proof).await?;
        assert_penalized(lc, id, &ch, &receipt, a.address(), &before).await?;
    }
    // The declared content under another message hash: a confirmation, not a penalty.
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    lc.close(id, b, None, &declared).await?;
    let same = raw_proof(lc, b, id, declared.clone());
    let receipt = lc.update(id, a, &same).await?;
    assert!(events::<TokenNetwork::ChannelPenalized>(&receipt).is_empty());
    assert!(lc.channel(id)?.confirmed);
    Ok(())
}

/// The closer declares a higher nonce than it ever signed but a lower transferred amount
/// than a proof it did sign: transferred amounts never decrease, so that older proof is a
/// penalty. An older proof with the same or a lower amount proves nothing.
/// Participants: 2.
pub async fn penalty_lower_nonce_higher_transferred(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let a4 = lc.proof(a, id, 4, smt(40));
    let a5 = lc.proof(a, id, 5, smt(50));
    lc.close(id, a, None, &plain(9, smt(40))).await?;
    expect_revert(lc.update(id, b, &a4).await, "BalanceProofTooOld");
    let ch = lc.channel(id)?;
    let before = balances(lc, &[a.address(), b.address(), lc.deployment.token_network]).await?;
    let receipt = lc.update(id, b, &a5).await?;
    assert_penalized(lc, id, &ch, &receipt, b.address(), &before).await
}

/// A watchtower holding the non-closer's `UpdateAuthorization` proves the lie; the
/// deposit goes to the non-closer, not to the watchtower. Participants: 3.
pub async fn penalty_by_delegate(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let id = open_funded(lc, a, b, smt(70), smt(30)).await?;
    let a1 = lc.proof(a, id, 1, smt(10));
    let a2 = lc.proof(a, id, 2, smt(60));
    lc.close(id, a, None, &a1.balance).await?;
    // Without the non-closer's authorization the delegate cannot act.
    let ch = lc.channel(id)?;
    let call = calls::update(
        id,
        &ch,
        a2.balance.clone(),
        a2.message_hash,
        a2.signature.clone(),
        Bytes::new(),
    );
    expect_revert(lc.tn(c, call).await, "ECDSAInvalidSignatureLength");
    let watcher = lc.smt_balance(c.address()).await?;
    let before = balances(lc, &[a.address(), b.address(), lc.deployment.token_network]).await?;
    let receipt = lc.update_by_delegate(id, c, b, &a2).await?;
    assert_penalized(lc, id, &ch, &receipt, b.address(), &before).await?;
    assert_eq!(
        lc.smt_balance(c.address()).await?,
        watcher,
        "the watchtower gains nothing on chain"
    );
    Ok(())
}

/// Every proof an honest closer ever signed: one with the closer as participant1 and
/// one as participant2, proofs with changing locks and amounts; presented by the
/// partner and by its watchtower, each is either rejected as too old or confirms (once)
/// — never a penalty — and settlement pays the ledger. Participants: 3.
pub async fn honest_closer_never_punished(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    honest_case(lc, a, b, c, true).await?;
    honest_case(lc, a, b, c, false).await
}

/// One honest close by `closer` (participant1 when `closer_first`); `partner` and the
/// watchtower `tower` try everything.
async fn honest_case(
    lc: &mut Lifecycle,
    closer: &PrivateKey,
    partner: &PrivateKey,
    tower: &PrivateKey,
    closer_first: bool,
) -> FlowResult {
    let id = if closer_first {
        open_funded(lc, closer, partner, smt(100), smt(100)).await?
    } else {
        open_funded(lc, partner, closer, smt(100), smt(100)).await?
    };
    assert_eq!(
        lc.channel(id)?.participant1 == closer.address(),
        closer_first
    );
    let now = lc.now().await?;
    let lock = |amount: u64, label: &str| eip712::Lock {
        expiration: now + 5_000,
        amount: smt(amount),
        secrethash: keccak256(word(label)),
    };
    let (x1, x2, x3) = (lock(5, "x1"), lock(7, "x2"), lock(1, "x3"));
    // The closer's whole history: (transferred, locks) per nonce 1..=9.
    let history: Vec<(u64, Vec<eip712::Lock>)> = vec![
        (10, vec![]),
        (10, vec![x1]),
        (10, vec![x1, x2]),
        (15, vec![x2]), // x1 unlocked off chain
        (15, vec![x2, x3]),
        (15, vec![x3]), // x2 expired and removed
        (22, vec![]),   // x3 unlocked
        (22, vec![]),   // the same amount again (e.g. a fee-only update)
        (40, vec![]),
    ];
    let proofs: Vec<SignedBalance> = history
        .iter()
        .enumerate()
        .map(|(i, (t, locks))| lc.proof_with_locks(closer, id, i as u64 + 1, smt(*t), locks))
        .collect();
    let newest = proofs.last().expect("a history").clone();
    let partner_newest = lc.proof(partner, id, 3, smt(7));
    lc.close(id, closer, Some(&partner_newest), &newest.balance)
        .await?;

    let who = [
        closer.address(),
        partner.address(),
        lc.deployment.token_network,
    ];
    let before = balances(lc, &who).await?;
    for round in 0..2 {
        for (i, proof) in proofs.iter().enumerate() {
            let direct = lc.update(id, partner, proof).await;
            let delegated = lc.update_by_delegate(id, tower, partner, proof).await;
            if i + 1 < proofs.len() {
                expect_revert(direct, "BalanceProofTooOld");
                expect_revert(delegated, "BalanceProofTooOld");
            } else if round == 0 {
                let receipt = direct.expect("the newest proof confirms the declaration");
                assert!(events::<TokenNetwork::ChannelPenalized>(&receipt).is_empty());
                assert_eq!(
                    events::<TokenNetwork::NonClosingBalanceProofUpdated>(&receipt).len(),
                    1
                );
                expect_revert(delegated, "AlreadyConfirmed");
            } else {
                expect_revert(direct, "AlreadyConfirmed");
                expect_revert(delegated, "AlreadyConfirmed");
            }
        }
    }
    assert_eq!(
        balances(lc, &who).await?,
        before,
        "no attempt moved a token"
    );
    let ch = lc.channel(id)?;
    assert!(ch.confirmed);
    let s = settle_checked(lc, id, tower).await?;
    let (closer_paid, partner_paid) = if ch.participant1 == closer.address() {
        (s.amount1, s.amount2)
    } else {
        (s.amount2, s.amount1)
    };
    assert_eq!(
        (closer_paid, partner_paid),
        (smt(67), smt(133)),
        "closer: 100 - 40 + 7"
    );
    Ok(())
}

/// As specified (README, "Known limitation"): a closer declaring a higher nonce than it
/// signed, with the same transferred amount and fewer locks, cannot be proven wrong;
/// its locks towards the partner are no longer retained. Participants: 2.
pub async fn known_limitation_higher_declared_nonce(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let now = lc.now().await?;
    let locks = [eip712::Lock {
        expiration: now + 5_000,
        amount: smt(10),
        secrethash: keccak256(word("k1")),
    }];
    let a3 = lc.proof_with_locks(a, id, 3, smt(30), &locks);
    lc.close(id, a, None, &plain(7, smt(30))).await?;
    expect_revert(lc.update(id, b, &a3).await, "BalanceProofTooOld");
    let s = settle_checked(lc, id, b).await?;
    assert_eq!(
        (s.amount1, s.kept1, s.amount2),
        (smt(70), U256::ZERO, smt(130))
    );
    Ok(())
}

// ---------------------------------------------------------------- replays

/// Channel ids are never reused: a channel reopened between the same pair has a new id
/// and every signature of the old one (balance proof, withdraw, cooperative settle) is
/// dead on it; the old struct is dead too. Participants: 2.
pub async fn reopened_channel_old_signatures_dead(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let old = open_funded(lc, a, b, smt(50), smt(50)).await?;
    let old_ch = lc.channel(old)?;
    let b_old = lc.proof(b, old, 1, smt(10));
    let exp = U256::from(lc.now().await? + 10_000);
    let wa = lc.signer.withdraw(a, old, a.address(), smt(5), exp);
    let wb = lc.signer.withdraw(b, old, a.address(), smt(5), exp);
    let ca = lc
        .signer
        .cooperative_settle(a, old, &old_ch, smt(50), smt(50));
    let cb = lc
        .signer
        .cooperative_settle(b, old, &old_ch, smt(50), smt(50));
    lc.cooperative_settle(old, a, b, smt(60), smt(40)).await?;

    let new = open_funded(lc, a, b, smt(50), smt(50)).await?;
    assert!(new > old, "a new id");
    assert_eq!(
        lc.view(
            lc.deployment.token_network,
            TokenNetwork::channelCounterCall {}
        )
        .await?,
        new
    );
    let ch = lc.channel(new)?;
    assert_eq!(
        (ch.participant1, ch.participant2),
        (old_ch.participant1, old_ch.participant2)
    );

    expect_revert(
        lc.close(new, a, Some(&b_old), &no_balance()).await,
        "InvalidSigner",
    );
    let withdraw = calls::withdraw(new, &ch, a.address(), smt(5), exp, wa, wb);
    expect_revert(lc.tn(a, withdraw).await, "InvalidSigner");
    let coop = calls::cooperative_settle(new, &ch, smt(50), smt(50), ca, cb);
    expect_revert(lc.tn(a, coop).await, "InvalidSigner");
    expect_revert(
        lc.tn(a, calls::settle(old, &old_ch)).await,
        "ChannelStateMismatch",
    );
    expect_revert(
        lc.tn(
            a,
            calls::set_total_deposit(old, &old_ch, a.address(), smt(60)),
        )
        .await,
        "ChannelStateMismatch",
    );

    let b_new = lc.proof(b, new, 1, smt(10));
    lc.close(new, a, Some(&b_new), &no_balance()).await?;
    let s = settle_checked(lc, new, b).await?;
    assert_eq!((s.amount1, s.amount2), (smt(60), smt(40)));
    Ok(())
}

/// Signatures made for another chain id, another TokenNetwork (same token, same channel
/// id, same pair) or another channel are refused; each is valid where it was made.
/// Participants: 2.
pub async fn replay_across_domains(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let mut other = OtherNetwork::deploy(lc, a, lc.deployment.token).await?;
    approve_all(lc, lc.deployment.token, other.address, &[a, b]).await?;
    let id = open_funded(lc, a, b, smt(50), smt(50)).await?;
    let sibling = open_funded(lc, a, b, smt(1), smt(1)).await?;
    let mut oid = other.open(lc, a, b).await?;
    while oid < id {
        oid = other.open(lc, a, b).await?;
    }
    assert_eq!(oid, id, "the same channel id on both networks");
    other.deposit(lc, oid, a, smt(20)).await?;

    let balance = plain(1, smt(10));
    let message = word("m");
    let on_other = other.signer.balance_proof(b, id, &balance, message);
    let chain_id = lc.deployment.chain_id;
    let other_chain = TokenNetworkSigner::new(ChainId(chain_id.0 + 1), lc.deployment.token_network);
    let on_other_chain = other_chain.balance_proof(b, id, &balance, message);
    let on_sibling = lc.signer.balance_proof(b, sibling, &balance, message);
    for signature in [on_other.clone(), on_other_chain, on_sibling] {
        let proof = SignedBalance {
            balance: balance.clone(),
            message_hash: message,
            signature,
        };
        expect_revert(
            lc.close(id, a, Some(&proof), &no_balance()).await,
            "InvalidSigner",
        );
    }
    let ch = lc.channel(id)?;
    let exp = U256::from(lc.now().await? + 1_000);
    let w =
        |s: &TokenNetworkSigner, key: &PrivateKey| s.withdraw(key, id, a.address(), smt(5), exp);
    let withdraw = calls::withdraw(
        id,
        &ch,
        a.address(),
        smt(5),
        exp,
        w(&other.signer, a),
        w(&other.signer, b),
    );
    expect_revert(lc.tn(a, withdraw).await, "InvalidSigner");
    let withdraw = calls::withdraw(
        id,
        &ch,
        a.address(),
        smt(5),
        exp,
        w(&other_chain, a),
        w(&other_chain, b),
    );
    expect_revert(lc.tn(a, withdraw).await, "InvalidSigner");
    let coop = calls::cooperative_settle(
        id,
        &ch,
        smt(50),
        smt(50),
        other_chain.cooperative_settle(a, id, &ch, smt(50), smt(50)),
        other_chain.cooperative_settle(b, id, &ch, smt(50), smt(50)),
    );
    expect_revert(lc.tn(a, coop).await, "InvalidSigner");

    // Each signature is good where it was made.
    let proof = SignedBalance {
        balance: balance.clone(),
        message_hash: message,
        signature: on_other.clone(),
    };
    let och = other.channel(oid)?;
    let close = calls::close(
        oid,
        &och,
        proof.balance.clone(),
        proof.message_hash,
        proof.signature.clone(),
        no_balance(),
    );
    other.send(lc, a, close).await?;
    let here = lc.proof(b, id, 1, smt(10));
    lc.close(id, b, None, &here.balance).await?;
    // The penalty cannot be faked with the closer's signatures from elsewhere either: a
    // "newer" proof signed by b for another network, chain or channel proves nothing.
    let newer = plain(2, smt(30));
    let elsewhere = [
        other.signer.balance_proof(b, id, &newer, message),
        other_chain.balance_proof(b, id, &newer, message),
        lc.signer.balance_proof(b, sibling, &newer, message),
    ];
    for signature in elsewhere {
        let proof = SignedBalance {
            balance: newer.clone(),
            message_hash: message,
            signature,
        };
        expect_revert(lc.update(id, a, &proof).await, "InvalidSigner");
    }
    lc.update(id, a, &here).await?;
    let s = settle_checked(lc, id, a).await?;
    assert_eq!((s.amount1, s.amount2), (smt(60), smt(40)));
    Ok(())
}

/// Malleable (high-s) twins of valid signatures are refused everywhere (balance proof
/// at close and at update, withdraw, update authorization), as is a bad `v`; the
/// originals work. Participants: 3.
pub async fn high_s_signatures_rejected(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let id = open_funded(lc, a, b, smt(100), smt(100)).await?;
    let b1 = lc.proof(b, id, 1, smt(10));
    let twin = SignedBalance {
        signature: high_s_twin(&b1.signature),
        ..b1.clone()
    };
    expect_revert(
        lc.close(id, a, Some(&twin), &no_balance()).await,
        "ECDSAInvalidSignatureS",
    );
    let mut bad_v = b1.signature.to_vec();
    bad_v[64] = 0;
    let bad_v = SignedBalance {
        signature: bad_v.into(),
        ..b1.clone()
    };
    expect_revert(
        lc.close(id, a, Some(&bad_v), &no_balance()).await,
        "ECDSAInvalidSignature",
    );

    let ch = lc.channel(id)?;
    let exp = U256::from(lc.now().await? + 1_000);
    let wa = lc.signer.withdraw(a, id, a.address(), smt(5), exp);
    let wb = lc.signer.withdraw(b, id, a.address(), smt(5), exp);
    let twin_call = calls::withdraw(
        id,
        &ch,
        a.address(),
        smt(5),
        exp,
        wa.clone(),
        high_s_twin(&wb),
    );
    expect_revert(lc.tn(a, twin_call).await, "ECDSAInvalidSignatureS");
    let twin_call = calls::withdraw(
        id,
        &ch,
        a.address(),
        smt(5),
        exp,
        high_s_twin(&wa),
        wb.clone(),
    );
    expect_revert(lc.tn(a, twin_call).await, "ECDSAInvalidSignatureS");
    lc.tn(
        a,
        calls::withdraw(id, &ch, a.address(), smt(5), exp, wa, wb),
    )
    .await?;

    let a1 = lc.proof(a, id, 1, smt(10));
    let a2 = lc.proof(a, id, 2, smt(20));
    lc.close(id, a, Some(&b1), &a1.balance).await?;
    let ch = lc.channel(id)?;
    let auth = lc
        .signer
        .update_authorization(b, id, a.address(), &a1.balance, a1.message_hash);
    let call = calls::update(
        id,
        &ch,
        a1.balance.clone(),
        a1.message_hash,
        a1.signature.clone(),
        high_s_twin(&auth),
    );
    expect_revert(lc.tn(c, call).await, "ECDSAInvalidSignatureS");
    let twin_a2 = SignedBalance {
        signature: high_s_twin(&a2.signature),
        ..a2.clone()
    };
    expect_revert(lc.update(id, b, &twin_a2).await, "ECDSAInvalidSignatureS");
    let before = balances(lc, &[a.address(), b.address(), lc.deployment.token_network]).await?;
    let receipt = lc.update(id, b, &a2).await?;
    assert_penalized(lc, id, &ch, &receipt, b.address(), &before).await
}

// ---------------------------------------------------------------- reentrancy

/// A token that calls back into the TokenNetwork from `transfer`/`transferFrom`: the
/// hook demonstrably fires (a call into the unguarded registry succeeds), and every
/// reentrant call into the network — during open-with-deposit, deposit, withdraw, settle,
/// unlock and cooperative settle — is refused with `ReentrancyGuardReentrantCall` without moving a token;
/// disarmed, the same operations pay exactly the ledger. Participants: 3.
pub async fn token_reentrancy_refused(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 3);
    let (a, b, c) = (&k[0], &k[1], &k[2]);
    let ret = lc
        .deploy_contract(c, artifacts::reentrant_token().bytecode.to_vec())
        .await?;
    let mut net = OtherNetwork::deploy(lc, c, ret).await?;
    for key in [a, b] {
        let mint = ReentrantToken::mintCall {
            to: key.address(),
            amount: smt(1_000),
        };
        lc.send(c, ret, mint.abi_encode().into()).await?;
    }
    approve_all(lc, ret, net.address, &[a, b]).await?;
    let arm = |target: Address, data: Bytes| -> Bytes {
        ReentrantToken::setReentryCall {
            target_: target,
            callData_: data,
        }
        .abi_encode()
        .into()
    };
    let who = [a.address(), b.address(), net.address];

    let id = net.open(lc, a, b).await?;
    net.deposit(lc, id, a, smt(100)).await?;
    net.deposit(lc, id, b, smt(100)).await?;

    // Positive control: the hook fires (the registry has no guard).
    let secret = word("reentrant secret");
    let register = calls_register(secret);
    lc.send(c, ret, arm(lc.deployment.secret_registry, register))
        .await?;
    let receipt = net.deposit(lc, id, a, smt(110)).await?;
    assert_eq!(
        lc.secret_reveal_time(keccak256(secret)).await?,
        block_time(lc, &receipt),
        "the hook ran"
    );
    assert_eq!(
        lc.view(ret, ReentrantToken::targetCall {}).await?,
        Address::ZERO,
        "and disarmed itself"
    );

    // Deposit and open-with-deposit.
    let start = net.balances(lc, &who).await?;
    let ch = net.channel(id)?;
    lc.send(
        c,
        ret,
        arm(
            net.address,
            calls::set_total_deposit(id, &ch, a.address(), smt(500)),
        ),
    )
    .await?;
    expect_revert(
        net.deposit(lc, id, a, smt(120)).await,
        "ReentrancyGuardReentrantCall",
    );
    lc.send(
        c,
        ret,
        arm(
            net.address,
            calls::open_with_deposit(b.address(), SETTLE_TIMEOUT, smt(1)),
        ),
    )
    .await?;
    let r = net
        .send(
            lc,
            a,
            calls::open_with_deposit(b.address(), SETTLE_TIMEOUT, smt(1)),
        )
        .await;
    expect_revert(r, "ReentrancyGuardReentrantCall");
    assert_eq!(net.balances(lc, &who).await?, start);

    // Withdraw: a replay of the same withdraw from inside the transfer.
    let exp = U256::from(lc.now().await? + 10_000);
    let wa = net.signer.withdraw(a, id, a.address(), smt(30), exp);
    let wb = net.signer.withdraw(b, id, a.address(), smt(30), exp);
    let withdraw = calls::withdraw(id, &ch, a.address(), smt(30), exp, wa, wb);
    lc.send(c, ret, arm(net.address, withdraw.clone())).await?;
    expect_revert(
        net.send(lc, c, withdraw.clone()).await,
        "ReentrancyGuardReentrantCall",
    );
    assert_eq!(net.balances(lc, &who).await?, start, "nothing drained");
    lc.send(c, ret, arm(Address::ZERO, Bytes::new())).await?;
    net.send(lc, c, withdraw).await?;
    assert_eq!(
        net.balances(lc, &who).await?,
        vec![start[0] + smt(30), start[1], start[2] - smt(30)]
    );

    // Settle: a second settle, or an unlock of the just-retained locks, from inside.
    let now = lc.now().await?;
    let locks = [eip712::Lock {
        expiration: now + 100,
        amount: smt(5),
        secrethash: keccak256(word("r-lock")),
    }];
    let balance = Balance {
        nonce: 1,
        transferredAmount: smt(10),
        lockedAmount: smt(5),
        locksroot: eip712::locksroot(&locks),
    };
    let message = word("r-msg");
    let sig = net.signer.balance_proof(a, id, &balance, message);
    let ch = net.channel(id)?;
    net.send(
        lc,
        b,
        calls::close(id, &ch, balance.clone(), message, sig, no_balance()),
    )
    .await?;
    lc.register_secret(c, word("r-lock")).await?;
    lc.increase_time(SETTLE_TIMEOUT + 1).await?;
    let ch = net.channel(id)?;
    let expected = expected_settlement(&ch);
    assert_eq!(
        (expected.amount1, expected.kept1, expected.amount2),
        (smt(65), smt(5), smt(110))
    );
    let mid = net.balances(lc, &who).await?;
    let unlock = calls::unlock(id, a.address(), b.address(), eip712::encode_locks(&locks));
    for inner in [calls::settle(id, &ch), unlock.clone()] {
        lc.send(c, ret, arm(net.address, inner)).await?;
        expect_revert(
            net.send(lc, c, calls::settle(id, &ch)).await,
            "ReentrancyGuardReentrantCall",
        );
        assert_eq!(net.balances(lc, &who).await?, mid, "nothing drained");
    }
    lc.send(c, ret, arm(Address::ZERO, Bytes::new())).await?;
    net.send(lc, c, calls::settle(id, &ch)).await?;
    let after = net.balances(lc, &who).await?;
    assert_eq!(
        after,
        vec![mid[0] + smt(65), mid[1] + smt(110), mid[2] - smt(175)]
    );

    // Unlock: the same unlock again from inside the payout.
    lc.send(c, ret, arm(net.address, unlock.clone())).await?;
    expect_revert(
        net.send(lc, c, unlock.clone()).await,
        "ReentrancyGuardReentrantCall",
    );
    assert_eq!(net.balances(lc, &who).await?, after, "nothing drained");
    lc.send(c, ret, arm(Address::ZERO, Bytes::new())).await?;
    net.send(lc, c, unlock.clone()).await?;
    expect_revert(net.send(lc, c, unlock).await, "NoPendingLocks");
    let end = net.balances(lc, &who).await?;
    assert_eq!(
        end,
        vec![after[0], after[1] + smt(5), U256::ZERO],
        "the network is empty, the ledger exact"
    );
    assert_eq!(end[0] + end[1], smt(2_000));

    // Cooperative settle: the same settlement again from inside the first payout.
    let id = net.open(lc, a, b).await?;
    net.deposit(lc, id, a, smt(10)).await?;
    net.deposit(lc, id, b, smt(10)).await?;
    let ch = net.channel(id)?;
    let coop = calls::cooperative_settle(
        id,
        &ch,
        smt(12),
        smt(8),
        net.signer.cooperative_settle(a, id, &ch, smt(12), smt(8)),
        net.signer.cooperative_settle(b, id, &ch, smt(12), smt(8)),
    );
    let before = net.balances(lc, &who).await?;
    lc.send(c, ret, arm(net.address, coop.clone())).await?;
    expect_revert(
        net.send(lc, c, coop.clone()).await,
        "ReentrancyGuardReentrantCall",
    );
    assert_eq!(net.balances(lc, &who).await?, before, "nothing drained");
    lc.send(c, ret, arm(Address::ZERO, Bytes::new())).await?;
    net.send(lc, c, coop.clone()).await?;
    assert_eq!(
        net.balances(lc, &who).await?,
        vec![before[0] + smt(12), before[1] + smt(8), U256::ZERO]
    );
    expect_revert(net.send(lc, c, coop).await, "ChannelStateMismatch");
    Ok(())
}

fn calls_register(secret: B256) -> Bytes {
    smartmesh_contracts::SecretRegistry::registerSecretCall { secret }
        .abi_encode()
        .into()
}

// ---------------------------------------------------------------- arithmetic edges

/// Settlement must never revert, "whatever the (signed or declared) transferred amounts
/// are" (README, Settlement). With deposits near 2^255 (a token with a huge supply) and a
/// closer declaring a transferred amount between `total - deposit1` and `total`,
/// the clamp must give participant1 everything. Participants: 2.
pub async fn settlement_never_overflows_with_huge_deposits(lc: &mut Lifecycle) -> FlowResult {
    let k = keys(lc, 2);
    let (a, b) = (&k[0], &k[1]);
    let ret = lc
        .deploy_contract(a, artifacts::reentrant_token().bytecode.to_vec())
        .await?;
    let mut net = OtherNetwork::deploy(lc, a, ret).await?;
    let d1 = U256::from(1) << 255;
    let d2 = U256::from(1) << 254;
    for (key, amount) in [(a, d1), (b, d2)] {
        let mint = ReentrantToken::mintCall {
            to: key.address(),
            amount,
        };
        lc.send(a, ret, mint.abi_encode().into()).await?;
    }
    approve_all(lc, ret, net.address, &[a, b]).await?;
    let id = net.open(lc, a, b).await?;
    net.deposit(lc, id, a, d1).await?;
    net.deposit(lc, id, b, d2).await?;
    // b (participant2) closes declaring it sent 2^255 + 1: more than a's deposit, less
    // than both deposits. net1 = d1 + T2 - T1 exceeds the total: a gets everything.
    let declared = plain(1, d1 + U256::from(1));
    let ch = net.channel(id)?;
    net.send(
        lc,
        b,
        calls::close(id, &ch, no_balance(), B256::ZERO, Bytes::new(), declared),
    )
    .await?;
    lc.increase_time(SETTLE_TIMEOUT + 1).await?;
    let ch = net.channel(id)?;
    let expected = expected_settlement(&ch);
    assert_eq!((expected.amount1, expected.amount2), (d1 + d2, U256::ZERO));
    let receipt = net.send(lc, a, calls::settle(id, &ch)).await.unwrap_or_else(|err| {
        panic!("CONTRACT BUG: settleChannel reverted ({err}) instead of clamping; both deposits are frozen for good")
    });
    let settled = events::<TokenNetwork::ChannelSettled>(&receipt);
    assert_eq!(
        (settled[0].amount1, settled[0].amount2),
        (d1 + d2, U256::ZERO)
    );
    assert_eq!(net.balance_of(lc, a.address()).await?, d1 + d2);
    Ok(())
}
