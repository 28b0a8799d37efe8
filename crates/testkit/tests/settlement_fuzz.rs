//! Randomised settlement against the reference formula: deposits, withdrawals,
//! transferred and locked amounts across the whole uint256 range (tiny, 128-bit, full
//! width, near 2^255, near the maximum), either participant closing. The contract must
//! pay exactly `flows::expected_settlement` and retain exactly its lock amounts. Each
//! case runs from an embedded-chain snapshot. Deterministic (fixed seed).
#![allow(clippy::unwrap_used, missing_docs)]

use alloy::sol_types::SolCall;
use smartmesh_chain::token_network::{Balance, ChannelTracker, calls, no_balance};
use smartmesh_contracts::{ReentrantToken, TokenNetwork, artifacts};
use smartmesh_primitives::{B256, Bytes, PrivateKey, U256};
use smartmesh_testkit::flows::attacks::OtherNetwork;
use smartmesh_testkit::flows::{events, expected_settlement, sent_balances};
use smartmesh_testkit::{Lifecycle, SETTLE_TIMEOUT};

/// splitmix64: small, deterministic, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn word(&mut self) -> U256 {
        U256::from_limbs([self.next(), self.next(), self.next(), self.next()])
    }

    /// A value from one of several magnitudes.
    fn amount(&mut self) -> U256 {
        let small = U256::from(self.next() % 1_000);
        match self.next() % 7 {
            0 => U256::ZERO,
            1 => small,
            2 => U256::from(self.next()) * U256::from(self.next()),
            3 => self.word(),
            4 => (U256::from(1) << 255) + small,
            5 => (U256::from(1) << 255) - small,
            _ => U256::MAX - small,
        }
    }

    /// A value in `0..=max`.
    fn up_to(&mut self, max: U256) -> U256 {
        let v = self.amount();
        if max == U256::MAX {
            v
        } else {
            v % (max + U256::from(1))
        }
    }
}

fn balance(rng: &mut Rng) -> Balance {
    if rng.next().is_multiple_of(5) {
        return no_balance();
    }
    let locked = if rng.next().is_multiple_of(2) {
        U256::ZERO
    } else {
        rng.amount()
    };
    let locksroot = if rng.next().is_multiple_of(3) {
        B256::ZERO
    } else {
        B256::from(rng.word())
    };
    Balance {
        nonce: 1 + rng.next() % 1_000,
        transferredAmount: rng.amount(),
        lockedAmount: locked,
        locksroot,
    }
}

#[tokio::test]
async fn settlement_matches_the_formula_on_random_channels() {
    let lc = Lifecycle::embedded(2).await.unwrap();
    let chain = lc.embedded_chain().unwrap().clone();
    let (a, b) = (lc.keys[0].clone(), lc.keys[1].clone());
    let ret = lc
        .deploy_contract(&a, artifacts::reentrant_token().bytecode.to_vec())
        .await
        .unwrap();
    let mut net = OtherNetwork::deploy(&lc, &a, ret).await.unwrap();
    for key in [&a, &b] {
        let approve = ReentrantToken::approveCall {
            spender: net.address,
            value: U256::MAX,
        };
        lc.send(key, ret, approve.abi_encode().into())
            .await
            .unwrap();
    }
    let mut rng = Rng(0x5eed_5eed);
    let mut checked = 0;
    let mut snapshot = chain.snapshot();
    for case in 0..300 {
        net.tracker = ChannelTracker::new(net.address);
        let d1 = rng.amount();
        let d2 = rng.up_to(U256::MAX - d1);
        let w1 = rng.up_to(d1 + d2);
        let w2 = rng.up_to(d1 + d2 - w1);
        let closer_is_1 = rng.next().is_multiple_of(2);
        let partner_proof = balance(&mut rng);
        let declared = balance(&mut rng);

        let mint = |to: &PrivateKey, amount| {
            ReentrantToken::mintCall {
                to: to.address(),
                amount,
            }
            .abi_encode()
        };
        lc.send(&a, ret, mint(&a, d1).into()).await.unwrap();
        lc.send(&a, ret, mint(&b, d2).into()).await.unwrap();
        let id = net.open(&lc, &a, &b).await.unwrap();
        if !d1.is_zero() {
            net.deposit(&lc, id, &a, d1).await.unwrap();
        }
        if !d2.is_zero() {
            net.deposit(&lc, id, &b, d2).await.unwrap();
        }
        let exp = U256::from(lc.now().await.unwrap() + 10_000);
        for (who, partner, total) in [(&a, &b, w1), (&b, &a, w2)] {
            if total.is_zero() {
                continue;
            }
            let ch = net.channel(id).unwrap();
            let s1 = net.signer.withdraw(who, id, who.address(), total, exp);
            let s2 = net.signer.withdraw(partner, id, who.address(), total, exp);
            net.send(
                &lc,
                who,
                calls::withdraw(id, &ch, who.address(), total, exp, s1, s2),
            )
            .await
            .unwrap();
        }
        let (closer, partner) = if closer_is_1 { (&a, &b) } else { (&b, &a) };
        let ch = net.channel(id).unwrap();
        let message = B256::from(rng.word());
        let sig = if partner_proof.nonce == 0 {
            Bytes::new()
        } else {
            net.signer
                .balance_proof(partner, id, &partner_proof, message)
        };
        let close = calls::close(
            id,
            &ch,
            partner_proof.clone(),
            message,
            sig,
            declared.clone(),
        );
        net.send(&lc, closer, close).await.unwrap();
        lc.increase_time(SETTLE_TIMEOUT + 1).await.unwrap();

        let ch = net.channel(id).unwrap();
        {
            let expected = expected_settlement(&ch);
            let before = net
                .balances(&lc, &[a.address(), b.address()])
                .await
                .unwrap();
            let receipt = net
                .send(&lc, &a, calls::settle(id, &ch))
                .await
                .unwrap_or_else(|e| panic!("case {case}: settle reverted: {e}\n{ch:?}"));
            let settled = events::<TokenNetwork::ChannelSettled>(&receipt);
            assert_eq!(
                (settled[0].amount1, settled[0].amount2),
                (expected.amount1, expected.amount2),
                "case {case}: {ch:?}"
            );
            let after = net
                .balances(&lc, &[a.address(), b.address()])
                .await
                .unwrap();
            assert_eq!(
                after,
                vec![before[0] + expected.amount1, before[1] + expected.amount2],
                "case {case}"
            );
            let (b1, b2) = sent_balances(&ch);
            let pending = |sender, receiver, root| TokenNetwork::pendingLockedAmountCall {
                id,
                sender,
                receiver,
                locksroot: root,
            };
            let kept1 = lc
                .view(net.address, pending(a.address(), b.address(), b1.locksroot))
                .await
                .unwrap();
            let kept2 = lc
                .view(net.address, pending(b.address(), a.address(), b2.locksroot))
                .await
                .unwrap();
            assert_eq!(
                (kept1, kept2),
                (expected.kept1, expected.kept2),
                "case {case}: {ch:?}"
            );
            checked += 1;
        }
        assert!(chain.revert_to(snapshot));
        snapshot = chain.snapshot();
    }
    println!("settlement fuzz: {checked} cases checked");
}
