//! Payment routing over the known channel graph: by capacity, fees and hop count.
//!
//! The graph holds every channel of the TokenNetwork seen in chain events. Our own
//! channels have exact capacities; for others only the sender's deposit less its
//! withdrawals is known, an upper bound. Fees are each node's advertised schedule.

use crate::state::NodeState;
use serde::{Deserialize, Serialize};
use smartmesh_primitives::{Address, ChannelId, TokenAmount, U256};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Millionths in a whole (the unit of proportional fees).
const PPM: u64 = 1_000_000;

/// A mediator's fee: `flat + ceil(amount * proportional_ppm / 1e6)`, charged on the
/// amount it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Flat part, in token units.
    pub flat: TokenAmount,
    /// Proportional part, millionths of the forwarded amount.
    pub proportional_ppm: u64,
}

impl FeeSchedule {
    /// The fee for forwarding `amount`, `None` on overflow.
    pub fn fee(&self, amount: TokenAmount) -> Option<TokenAmount> {
        let product = amount.0.checked_mul(U256::from(self.proportional_ppm))?;
        let proportional = product.div_ceil(U256::from(PPM));
        self.flat.0.checked_add(proportional).map(TokenAmount)
    }

    /// What must come in so that `amount` goes out: `amount + fee(amount)`.
    pub fn incoming_for(&self, amount: TokenAmount) -> Option<TokenAmount> {
        amount.checked_add(self.fee(amount)?).ok()
    }

    /// The most that can go out of `incoming` with this fee taken (the inverse of
    /// [`Self::incoming_for`], rounding in the mediator's favour).
    pub fn outgoing_for(&self, incoming: TokenAmount) -> Option<TokenAmount> {
        let after_flat = incoming.checked_sub(self.flat).ok()?;
        let denominator = U256::from(PPM).checked_add(U256::from(self.proportional_ppm))?;
        let mut out = after_flat.0.checked_mul(U256::from(PPM))? / denominator;
        // Ceil in the fee may push one unit over; step down until it fits.
        for _ in 0..3 {
            let needed = self.incoming_for(TokenAmount(out))?;
            if needed <= incoming {
                return Some(TokenAmount(out));
            }
            out = out.checked_sub(U256::from(1))?;
        }
        None
    }
}

/// One channel of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphChannel {
    /// participant1.
    pub participant1: Address,
    /// participant2.
    pub participant2: Address,
    /// participant1's deposit less withdrawals.
    pub available1: TokenAmount,
    /// participant2's deposit less withdrawals.
    pub available2: TokenAmount,
    /// Deposits and withdrawals, for recomputing `available*`.
    pub totals: [TokenAmount; 4],
}

/// The TokenNetwork's open channels, and the fee schedules nodes advertised.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelGraph {
    /// Open channels by id.
    pub channels: BTreeMap<ChannelId, GraphChannel>,
    /// Fee schedules by node (absent: no fee known, taken as zero).
    pub fees: BTreeMap<Address, FeeSchedule>,
}

impl ChannelGraph {
    /// Records an opened channel.
    pub fn opened(&mut self, id: ChannelId, p1: Address, p2: Address) {
        self.channels.entry(id).or_insert(GraphChannel {
            participant1: p1,
            participant2: p2,
            available1: TokenAmount::ZERO,
            available2: TokenAmount::ZERO,
            totals: [TokenAmount::ZERO; 4],
        });
    }

    /// Records a deposit (`withdraw == false`) or withdraw total.
    pub fn total_changed(
        &mut self,
        id: ChannelId,
        participant: Address,
        total: TokenAmount,
        withdraw: bool,
    ) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let side = if participant == ch.participant1 {
            0
        } else if participant == ch.participant2 {
            1
        } else {
            return;
        };
        let slot = side * 2 + usize::from(withdraw);
        if let Some(value) = ch.totals.get_mut(slot)
            && total > *value
        {
            *value = total;
        }
        let [d1, w1, d2, w2] = ch.totals;
        ch.available1 = d1.checked_sub(w1).unwrap_or_default();
        ch.available2 = d2.checked_sub(w2).unwrap_or_default();
    }

    /// Forgets a closed or finished channel.
    pub fn closed(&mut self, id: ChannelId) {
        self.channels.remove(&id);
    }
}

/// A route: the hops after us, ending with the target, and the amount each receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Next hops in order; the last is the target.
    pub hops: Vec<Address>,
    /// `amounts[i]` is what `hops[i]` receives in its incoming lock; the last is the
    /// target's amount, the first is what we lock.
    pub amounts: Vec<TokenAmount>,
    /// Our channel to the first hop.
    pub first_channel: ChannelId,
}

impl Route {
    /// Total fees paid to mediators.
    pub fn fees(&self) -> TokenAmount {
        match (self.amounts.first(), self.amounts.last()) {
            (Some(first), Some(last)) => first.checked_sub(*last).unwrap_or_default(),
            _ => TokenAmount::ZERO,
        }
    }
}

/// Why no route was found.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum NoRoute {
    /// The target has no open channel we know of.
    #[error("the target has no known open channel")]
    TargetUnknown,
    /// We have no open channel.
    #[error("we have no open channel")]
    NoOpenChannels,
    /// Paths exist, but none has the capacity for the amount plus fees.
    #[error("paths exist but none has the capacity for the amount plus fees")]
    InsufficientCapacity,
    /// Paths exist only with more hops than allowed.
    #[error("the only paths are longer than {0} hops")]
    TooManyHops(usize),
    /// The target is in another part of the graph.
    #[error("no path connects us to the target")]
    Disconnected,
    /// Amounts overflowed.
    #[error("amount overflow")]
    Overflow,
}

/// Most hops a route may have (mediators plus the target).
pub const MAX_HOPS: usize = 8;

/// Finds the cheapest route (fewest fees, then fewest hops) that can carry `amount` to
/// `target`: a Dijkstra search backwards from the target over what each node must
/// receive. Deterministic (ties broken by address order).
pub fn find_route(
    state: &NodeState,
    target: Address,
    amount: TokenAmount,
) -> Result<Route, NoRoute> {
    let us = state.our_address;
    let graph = &state.payments.graph;
    // Directed edges u -> v with u's capacity towards v, keyed by v.
    let mut incoming: BTreeMap<Address, Vec<(Address, TokenAmount, ChannelId)>> = BTreeMap::new();
    let mut any_ours = false;
    for (id, ch) in &graph.channels {
        let (c1, c2) = match state.channels.get(id) {
            Some(own) if own.is_open() => {
                any_ours = true;
                if own.we_are_participant1 {
                    (own.our_capacity(), own.partner_capacity())
                } else {
                    (own.partner_capacity(), own.our_capacity())
                }
            }
            Some(_) => continue,
            None => (ch.available1, ch.available2),
        };
        incoming
            .entry(ch.participant2)
            .or_default()
            .push((ch.participant1, c1, *id));
        incoming
            .entry(ch.participant1)
            .or_default()
            .push((ch.participant2, c2, *id));
    }
    if !incoming.contains_key(&target) {
        return Err(NoRoute::TargetUnknown);
    }
    if !any_ours {
        return Err(NoRoute::NoOpenChannels);
    }
    let fee_of = |node: &Address| -> FeeSchedule {
        if *node == us {
            FeeSchedule::default()
        } else {
            graph.fees.get(node).copied().unwrap_or_default()
        }
    };

    // best[v] = (amount v must receive, hops from v to target, next hop, channel to next).
    type Label = (TokenAmount, usize, Option<(Address, ChannelId)>);
    let mut best: BTreeMap<Address, Label> = BTreeMap::new();
    let mut frontier: BTreeSet<(TokenAmount, usize, Address)> = BTreeSet::new();
    best.insert(target, (amount, 0, None));
    frontier.insert((amount, 0, target));
    let mut done: BTreeSet<Address> = BTreeSet::new();
    let mut capacity_blocked = false;
    let mut hops_blocked = false;
    while let Some((need, hops, v)) = frontier.pop_first() {
        if !done.insert(v) {
            continue;
        }
        if v == us {
            break;
        }
        // v receives `need`; a payer u of v must send `need`, and receive more if u
        // is a mediator.
        for (u, capacity, channel) in incoming.get(&v).map(Vec::as_slice).unwrap_or(&[]) {
            if done.contains(u) || (*u == target) {
                continue;
            }
            if *capacity < need {
                capacity_blocked = true;
                continue;
            }
            if hops + 1 > MAX_HOPS {
                hops_blocked = true;
                continue;
            }
            let u_need = if *u == us {
                need
            } else {
                fee_of(u).incoming_for(need).ok_or(NoRoute::Overflow)?
            };
            let better = match best.get(u) {
                None => true,
                Some((old, old_hops, _)) => (u_need, hops + 1) < (*old, *old_hops),
            };
            if better {
                if let Some((old, old_hops, _)) = best.get(u) {
                    frontier.remove(&(*old, *old_hops, *u));
                }
                best.insert(*u, (u_need, hops + 1, Some((v, *channel))));
                frontier.insert((u_need, hops + 1, *u));
            }
        }
    }
    let Some((_, _, Some((first, first_channel)))) = best.get(&us).cloned() else {
        return Err(if capacity_blocked {
            NoRoute::InsufficientCapacity
        } else if hops_blocked {
            NoRoute::TooManyHops(MAX_HOPS)
        } else {
            NoRoute::Disconnected
        });
    };
    let mut hops = Vec::new();
    let mut amounts = Vec::new();
    let mut cursor = Some(first);
    while let Some(node) = cursor {
        let (need, _, next) = best.get(&node).cloned().ok_or(NoRoute::Disconnected)?;
        hops.push(node);
        amounts.push(need);
        cursor = next.map(|(n, _)| n);
        if hops.len() > MAX_HOPS {
            return Err(NoRoute::TooManyHops(MAX_HOPS));
        }
    }
    Ok(Route {
        hops,
        amounts,
        first_channel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_invert() {
        let schedule = FeeSchedule {
            flat: TokenAmount::from_u128(3),
            proportional_ppm: 2_500,
        };
        for out in [0u128, 1, 7, 399, 400, 401, 1_000_000, 123_456_789] {
            let out = TokenAmount::from_u128(out);
            let incoming = schedule.incoming_for(out).expect("no overflow");
            let back = schedule.outgoing_for(incoming).expect("fits");
            assert!(back >= out, "forwarding never gives less than planned");
            assert!(schedule.incoming_for(back).expect("no overflow") <= incoming);
        }
        assert_eq!(schedule.outgoing_for(TokenAmount::from_u128(2)), None);
    }
}
