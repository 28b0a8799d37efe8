//! Pay-for-forward bookkeeping, pure: flows of sealed data through this node, running
//! accounts per neighbour fed by signed delivery receipts, and what to settle, throttle
//! or cut off.
//!
//! Prices are per KiB; an account keeps `bytes × price` exactly (u128) and shows token
//! base units as that divided by 1024, rounded down, so rounding never accumulates.

use smartmesh_mesh::SessionId;
use smartmesh_primitives::Address;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Flows remembered (the oldest are forgotten beyond).
const MAX_FLOWS: usize = 4096;

/// One neighbour's running account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    /// What it owes us for data we carried for it, in bytes × price per KiB.
    pub owed_to_us_units: u128,
    /// What we owe it for data it carried for us, in bytes × price per KiB.
    pub owed_by_us_units: u128,
    /// Paid to it by channel transfers, base units.
    pub paid_to_them: u128,
    /// Received from it by channel transfers (checked on the channel), base units.
    pub credited_from_them: u128,
    /// Our own price's share of what it owes us (our earnings), bytes × price per KiB.
    pub earned_units: u128,
    /// Receipted bytes we carried for it.
    pub bytes_carried_for_them: u64,
    /// Receipted bytes it carried for us.
    pub bytes_carried_by_them: u64,
}

/// Base units from bytes × price per KiB (rounded down).
pub fn units_to_tokens(units: u128) -> u128 {
    units / 1024
}

impl Account {
    /// What it owes us and has not paid, base units.
    pub fn their_debt(&self) -> u128 {
        units_to_tokens(self.owed_to_us_units).saturating_sub(self.credited_from_them)
    }

    /// What we owe it and have not paid, base units.
    pub fn our_debt(&self) -> u128 {
        units_to_tokens(self.owed_by_us_units).saturating_sub(self.paid_to_them)
    }

    /// Our earnings from its traffic, base units.
    pub fn earned(&self) -> u128 {
        units_to_tokens(self.earned_units)
    }
}

/// How a neighbour's data is treated, from its unpaid debt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Within half its credit.
    Good,
    /// Past half its credit: its data is rate-limited.
    Throttled,
    /// Past its credit: its data is not carried.
    CutOff,
}

impl Standing {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Good => "good",
            Standing::Throttled => "throttled",
            Standing::CutOff => "cut_off",
        }
    }
}

/// Sealed data of one session from one source, through this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    destination: Address,
    /// The neighbour it came from (None: we are the source).
    upstream: Option<Address>,
    /// The neighbour it goes to (None: we are the destination).
    downstream: Option<Address>,
    /// Who pays: the source (the usual case), or the destination (a gateway's answers:
    /// the user who asked pays the carriers and the gateway's uplink).
    destination_pays: bool,
    /// Price per KiB of the nodes on the paid-for side of us: after us when the source
    /// pays, before us (including a gateway's uplink price) when the destination pays.
    price_down: u64,
    /// Our own price per KiB when we carried it.
    own_price: u64,
    /// Sealed bytes sent on.
    sent: u64,
    /// Sealed bytes receipted so far.
    receipted: u64,
}

/// What a receipt changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billed {
    /// Newly receipted bytes.
    pub bytes: u64,
    /// The neighbour the receipt goes on to (None: we are the source).
    pub upstream: Option<Address>,
}

/// Flows and accounts of one node.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Per (session, source, paid by the destination).
    flows: HashMap<(SessionId, Address, bool), Flow>,
    order: VecDeque<(SessionId, Address, bool)>,
    accounts: BTreeMap<Address, Account>,
}

impl Accounts {
    /// Records `bytes` of sealed data of `session` from `source` sent to `downstream`
    /// (from `upstream`, or ours when None) at these prices (see [`Flow`]).
    #[allow(clippy::too_many_arguments)]
    pub fn sent(
        &mut self,
        session: SessionId,
        source: Address,
        destination: Address,
        upstream: Option<Address>,
        downstream: Address,
        price_down: u64,
        own_price: u64,
        bytes: u64,
    ) {
        self.record(
            session,
            source,
            destination,
            upstream,
            Some(downstream),
            false,
            price_down,
            own_price,
            bytes,
        );
    }

    /// Records `bytes` of a flow the destination pays for: `upstream` is toward the
    /// source (None: we are it), `downstream` toward the paying destination (None: we
    /// are it); `price_up` is what the nodes before us charge per KiB.
    #[allow(clippy::too_many_arguments)]
    pub fn carried_for_destination(
        &mut self,
        session: SessionId,
        source: Address,
        destination: Address,
        upstream: Option<Address>,
        downstream: Option<Address>,
        price_up: u64,
        own_price: u64,
        bytes: u64,
    ) {
        self.record(
            session,
            source,
            destination,
            upstream,
            downstream,
            true,
            price_up,
            own_price,
            bytes,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        session: SessionId,
        source: Address,
        destination: Address,
        upstream: Option<Address>,
        downstream: Option<Address>,
        destination_pays: bool,
        price_down: u64,
        own_price: u64,
        bytes: u64,
    ) {
        let key = (session, source, destination_pays);
        let flow = self.flows.entry(key).or_insert_with(|| {
            self.order.push_back(key);
            Flow {
                destination,
                upstream,
                downstream,
                destination_pays,
                price_down,
                own_price,
                sent: 0,
                receipted: 0,
            }
        });
        // Prices and neighbours as of the latest packet (a reroute changes them).
        flow.upstream = upstream;
        flow.downstream = downstream;
        flow.destination_pays = destination_pays;
        flow.price_down = price_down;
        flow.own_price = own_price;
        flow.sent = flow.sent.saturating_add(bytes);
        while self.order.len() > MAX_FLOWS {
            if let Some(old) = self.order.pop_front() {
                self.flows.remove(&old);
            }
        }
    }

    /// Applies a verified receipt of `destination` for `bytes` sealed bytes of `session`
    /// from `source`: bills upstream and owes downstream for the bytes not billed yet
    /// (never more than we sent). None if we carried nothing of that flow.
    pub fn receipt(
        &mut self,
        session: SessionId,
        source: Address,
        destination: Address,
        bytes: u64,
    ) -> Option<Billed> {
        self.receipt_of_kind(session, source, destination, false, bytes)
    }

    /// [`Self::receipt`] for either kind of flow (`destination_pays`).
    pub fn receipt_of_kind(
        &mut self,
        session: SessionId,
        source: Address,
        destination: Address,
        destination_pays: bool,
        bytes: u64,
    ) -> Option<Billed> {
        let flow = self.flows.get_mut(&(session, source, destination_pays))?;
        if flow.destination != destination {
            return None;
        }
        let new = bytes.min(flow.sent).saturating_sub(flow.receipted);
        flow.receipted += new;
        let flow = *flow;
        if new > 0 {
            // The side that pays us, and the side we pay.
            let (payer, payee) = if flow.destination_pays {
                (flow.downstream, flow.upstream)
            } else {
                (flow.upstream, flow.downstream)
            };
            let n = u128::from(new);
            if let Some(payee) = payee {
                let a = self.accounts.entry(payee).or_default();
                a.owed_by_us_units += n * u128::from(flow.price_down);
                a.bytes_carried_by_them = a.bytes_carried_by_them.saturating_add(new);
            }
            if let Some(payer) = payer {
                let a = self.accounts.entry(payer).or_default();
                let price = u128::from(flow.price_down) + u128::from(flow.own_price);
                a.owed_to_us_units += n * price;
                a.earned_units += n * u128::from(flow.own_price);
                a.bytes_carried_for_them = a.bytes_carried_for_them.saturating_add(new);
            }
        }
        Some(Billed {
            bytes: new,
            upstream: flow.upstream,
        })
    }

    /// How `neighbour`'s data is treated under `credit_limit` (base units).
    pub fn standing(&self, neighbour: Address, credit_limit: u128) -> Standing {
        let debt = self.accounts.get(&neighbour).map_or(0, Account::their_debt);
        if debt > credit_limit {
            Standing::CutOff
        } else if debt > credit_limit / 2 {
            Standing::Throttled
        } else {
            Standing::Good
        }
    }

    /// Records a payment we made.
    pub fn paid(&mut self, neighbour: Address, amount: u128) {
        let a = self.accounts.entry(neighbour).or_default();
        a.paid_to_them = a.paid_to_them.saturating_add(amount);
    }

    /// Takes back a payment that failed.
    pub fn unpaid(&mut self, neighbour: Address, amount: u128) {
        let a = self.accounts.entry(neighbour).or_default();
        a.paid_to_them = a.paid_to_them.saturating_sub(amount);
    }

    /// Records a payment we received (checked on the channel).
    pub fn credited(&mut self, neighbour: Address, amount: u128) {
        let a = self.accounts.entry(neighbour).or_default();
        a.credited_from_them = a.credited_from_them.saturating_add(amount);
    }

    /// Neighbours we owe at least `threshold` base units, with the amount.
    pub fn to_settle(&self, threshold: u128) -> Vec<(Address, u128)> {
        self.accounts
            .iter()
            .map(|(n, a)| (*n, a.our_debt()))
            .filter(|(_, debt)| *debt > 0 && *debt >= threshold)
            .collect()
    }

    /// Every account.
    pub fn all(&self) -> &BTreeMap<Address, Account> {
        &self.accounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn a_carrier_bills_upstream_pays_downstream_and_earns_its_price() {
        // We (a carrier at 10/KiB) forward S's data from 1 to 3; the carriers after us
        // charge 20/KiB in all.
        let mut acc = Accounts::default();
        let s = [7; 16];
        acc.sent(s, a(1), a(9), Some(a(1)), a(3), 20, 10, 10 * 1024);
        // Nothing is billed before a receipt.
        assert_eq!(acc.all().get(&a(1)), None);
        let billed = acc.receipt(s, a(1), a(9), 4 * 1024).expect("our flow");
        assert_eq!(billed.bytes, 4096);
        assert_eq!(billed.upstream, Some(a(1)));
        let up = acc.all()[&a(1)];
        assert_eq!(up.their_debt(), 4 * 30);
        assert_eq!(up.earned(), 4 * 10);
        assert_eq!(acc.all()[&a(3)].our_debt(), 4 * 20);
        // The same receipt again bills nothing; a receipt beyond what we sent bills only
        // what we sent; a receipt signed by another destination does not match.
        assert_eq!(
            acc.receipt(s, a(1), a(9), 4 * 1024).map(|b| b.bytes),
            Some(0)
        );
        assert_eq!(acc.receipt(s, a(1), a(8), 99 * 1024), None);
        assert_eq!(
            acc.receipt(s, a(1), a(9), 99 * 1024).map(|b| b.bytes),
            Some(6 * 1024)
        );
        assert_eq!(acc.all()[&a(1)].their_debt(), 10 * 30);
        assert_eq!(acc.all()[&a(1)].earned(), 10 * 10);
        assert_eq!(acc.all()[&a(1)].bytes_carried_for_them, 10 * 1024);
    }

    #[test]
    fn for_a_gateways_answers_the_user_pays_the_carriers_and_the_uplink() {
        // g (gateway, uplink 5/KiB) -> c (carrier, 10/KiB) -> u (user, pays).
        let (g, c, u) = (a(1), a(2), a(3));
        let s = [9; 16];
        let kib = 1024;
        let mut at_g = Accounts::default();
        let mut at_c = Accounts::default();
        let mut at_u = Accounts::default();
        at_g.carried_for_destination(s, g, u, None, Some(c), 0, 5, 4 * kib);
        at_c.carried_for_destination(s, g, u, Some(g), Some(u), 5, 10, 4 * kib);
        at_u.carried_for_destination(s, g, u, Some(c), None, 15, 0, 4 * kib);
        for acc in [&mut at_g, &mut at_c, &mut at_u] {
            assert!(acc.receipt_of_kind(s, g, u, true, 4 * kib).is_some());
            assert!(acc.receipt(s, g, u, 4 * kib).is_none(), "the other kind");
        }
        // The user owes the carrier 4 × 15; the carrier owes the gateway 4 × 5 and
        // earns 4 × 10; the gateway earns its uplink, 4 × 5.
        assert_eq!(at_u.all()[&c].our_debt(), 60);
        assert_eq!(at_c.all()[&u].their_debt(), 60);
        assert_eq!(at_c.all()[&u].earned(), 40);
        assert_eq!(at_c.all()[&g].our_debt(), 20);
        assert_eq!(at_g.all()[&c].their_debt(), 20);
        assert_eq!(at_g.all()[&c].earned(), 20);
        assert_eq!(at_c.standing(u, 50), Standing::CutOff);
        assert_eq!(at_c.standing(g, 50), Standing::Good);
    }

    #[test]
    fn rounding_does_not_accumulate() {
        let mut acc = Accounts::default();
        let s = [1; 16];
        acc.sent(s, a(1), a(9), Some(a(1)), a(3), 0, 3, 1_000_000);
        for step in 1..=1000u64 {
            acc.receipt(s, a(1), a(9), step * 1000);
        }
        // 1,000,000 bytes × 3 / 1024 = 2929.6875 → 2929, however many receipts.
        assert_eq!(acc.all()[&a(1)].earned(), 2929);
    }

    #[test]
    fn debt_past_half_the_credit_throttles_and_past_the_credit_cuts_off() {
        let mut acc = Accounts::default();
        let s = [2; 16];
        acc.sent(s, a(1), a(9), Some(a(1)), a(3), 0, 1024, 1_000);
        assert_eq!(acc.standing(a(1), 1_000), Standing::Good);
        acc.receipt(s, a(1), a(9), 600);
        assert_eq!(acc.standing(a(1), 1_000), Standing::Throttled);
        acc.receipt(s, a(1), a(9), 1_000);
        assert_eq!(acc.standing(a(1), 999), Standing::CutOff);
        acc.credited(a(1), 1_000);
        assert_eq!(acc.standing(a(1), 999), Standing::Good);
    }

    #[test]
    fn the_source_settles_past_the_threshold() {
        let mut acc = Accounts::default();
        let s = [3; 16];
        acc.sent(s, a(0), a(9), None, a(1), 30, 0, 100 * 1024);
        acc.receipt(s, a(0), a(9), 10 * 1024);
        assert!(acc.to_settle(500).is_empty());
        acc.receipt(s, a(0), a(9), 100 * 1024);
        assert_eq!(acc.to_settle(500), vec![(a(1), 3000)]);
        acc.paid(a(1), 3000);
        assert!(acc.to_settle(1).is_empty());
        acc.unpaid(a(1), 3000);
        assert_eq!(acc.to_settle(1), vec![(a(1), 3000)]);
    }
}
