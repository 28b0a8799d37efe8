//! The contract's settlement formula, off-chain, to the unit (`TokenNetwork.settleChannel`
//! with `_clampedNet` and `_kept`).

use crate::state::Balance;
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{B256, TokenAmount, U256};

/// What `settleChannel` pays and retains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// Paid to participant1 at settlement.
    pub amount1: TokenAmount,
    /// Paid to participant2 at settlement.
    pub amount2: TokenAmount,
    /// Retained for `unlock` of participant1's locks (towards participant2).
    pub kept1: TokenAmount,
    /// Retained for `unlock` of participant2's locks.
    pub kept2: TokenAmount,
}

/// The deposits of a channel as the contract holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Deposits {
    /// participant1's total deposit.
    pub deposit1: TokenAmount,
    /// participant1's total withdrawn.
    pub withdrawn1: TokenAmount,
    /// participant2's total deposit.
    pub deposit2: TokenAmount,
    /// participant2's total withdrawn.
    pub withdrawn2: TokenAmount,
}

impl Deposits {
    /// `deposit1 + deposit2 - withdrawn1 - withdrawn2`, `None` if the contract could
    /// never hold these totals.
    pub fn remaining(&self) -> Option<U256> {
        self.deposit1
            .0
            .checked_add(self.deposit2.0)?
            .checked_sub(self.withdrawn1.0)?
            .checked_sub(self.withdrawn2.0)
    }
}

/// `clamp(d1 - w1 + t2 - t1, 0, total)` exactly as the contract computes it.
fn clamped_net(d1: U256, w1: U256, t1: U256, t2: U256, total: U256) -> Option<U256> {
    if t2 >= t1 {
        let gain = t2 - t1;
        if gain >= total.checked_add(w1)? {
            return Some(total);
        }
        let plus = d1.checked_add(gain)?;
        if plus <= w1 {
            return Some(U256::ZERO);
        }
        let net = plus - w1;
        Some(net.min(total))
    } else {
        let loss = t1 - t2;
        if d1 <= w1 {
            return Some(U256::ZERO);
        }
        let avail = d1 - w1;
        if avail <= loss {
            return Some(U256::ZERO);
        }
        Some((avail - loss).min(total))
    }
}

fn kept(b: &Balance, net: U256) -> U256 {
    if b.locksroot == B256::ZERO {
        U256::ZERO
    } else {
        b.locked_amount.0.min(net)
    }
}

/// What `settleChannel` pays, given the deposits and what each participant sent
/// (`b1`: participant1's balance, `b2`: participant2's). `None` only for deposit totals
/// the contract can never hold (withdrawn above deposited, or sums above 2^256).
pub fn settlement_amounts(deposits: &Deposits, b1: &Balance, b2: &Balance) -> Option<Settlement> {
    let total = deposits.remaining()?;
    let net1 = clamped_net(
        deposits.deposit1.0,
        deposits.withdrawn1.0,
        b1.transferred_amount.0,
        b2.transferred_amount.0,
        total,
    )?;
    let net2 = total - net1;
    let kept1 = kept(b1, net1);
    let kept2 = kept(b2, net2);
    Some(Settlement {
        amount1: TokenAmount(net1 - kept1),
        amount2: TokenAmount(net2 - kept2),
        kept1: TokenAmount(kept1),
        kept2: TokenAmount(kept2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amt(v: u128) -> TokenAmount {
        TokenAmount::from_u128(v)
    }

    fn bal(t: u128, l: u128, root: u8) -> Balance {
        Balance {
            transferred_amount: amt(t),
            locked_amount: amt(l),
            locksroot: B256::repeat_byte(root),
            ..Balance::default()
        }
    }

    #[test]
    fn plain_transfers_net_out() {
        let d = Deposits {
            deposit1: amt(100),
            deposit2: amt(50),
            ..Deposits::default()
        };
        let s = settlement_amounts(&d, &bal(30, 0, 0), &bal(10, 0, 0)).expect("valid");
        assert_eq!((s.amount1, s.amount2), (amt(80), amt(70)));
    }

    #[test]
    fn locks_are_kept_only_with_a_locksroot_and_clamped() {
        let d = Deposits {
            deposit1: amt(100),
            deposit2: amt(0),
            withdrawn1: amt(10),
            ..Deposits::default()
        };
        let s = settlement_amounts(&d, &bal(20, 5, 1), &bal(0, 7, 0)).expect("valid");
        assert_eq!(s.kept1, amt(5));
        assert_eq!(s.kept2, amt(0), "no locksroot retains nothing");
        assert_eq!((s.amount1, s.amount2), (amt(65), amt(20)));
        // Absurd transferred amounts clamp instead of failing.
        let s = settlement_amounts(&d, &bal(u128::MAX, 0, 0), &bal(0, 0, 0)).expect("valid");
        assert_eq!((s.amount1, s.amount2), (amt(0), amt(90)));
        let huge = Balance {
            transferred_amount: TokenAmount(U256::MAX),
            ..Balance::default()
        };
        let s = settlement_amounts(&d, &bal(0, 0, 0), &huge).expect("valid");
        assert_eq!((s.amount1, s.amount2), (amt(90), amt(0)));
    }

    proptest! {
        #[test]
        fn never_pays_more_than_the_deposit(
            d1 in 0u128..1_000_000, d2 in 0u128..1_000_000,
            w1f in 0u128..100, w2f in 0u128..100,
            t1 in 0u128..3_000_000, t2 in 0u128..3_000_000,
            l1 in 0u128..3_000_000, l2 in 0u128..3_000_000,
        ) {
            let w1 = d1 * w1f / 200;
            let w2 = d2 * w2f / 200;
            let d = Deposits { deposit1: amt(d1), deposit2: amt(d2), withdrawn1: amt(w1), withdrawn2: amt(w2) };
            let s = settlement_amounts(&d, &bal(t1, l1, 1), &bal(t2, l2, 2)).expect("valid");
            let paid = s.amount1.0 + s.amount2.0 + s.kept1.0 + s.kept2.0;
            prop_assert_eq!(paid, U256::from(d1 + d2 - w1 - w2));
            // The formula in signed arithmetic, for comparison.
            let total = (d1 + d2 - w1 - w2) as i128;
            let net1 = ((d1 as i128) - (w1 as i128) + (t2 as i128) - (t1 as i128)).clamp(0, total);
            let net2 = total - net1;
            let k1 = (l1 as i128).min(net1);
            let k2 = (l2 as i128).min(net2);
            prop_assert_eq!(s.amount1, amt((net1 - k1) as u128));
            prop_assert_eq!(s.amount2, amt((net2 - k2) as u128));
        }
    }
}
