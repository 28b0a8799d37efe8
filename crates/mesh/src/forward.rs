//! What a carrier checks before forwarding a packet: its hop limit and whether it saw
//! the packet already (bounded memory, oldest forgotten first).

use std::collections::{HashSet, VecDeque};

/// A packet's identity for duplicate suppression (e.g. a hash of its source, session and
/// counter).
pub type PacketId = [u8; 32];

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it with this (decremented) hop limit.
    Forward {
        /// The hop limit to put on the forwarded packet.
        hop_limit: u8,
    },
    /// Seen already: drop.
    Duplicate,
    /// The hop limit ran out: drop.
    HopLimit,
}

/// Duplicate suppression and hop limits for one node.
#[derive(Debug)]
pub struct Forwarder {
    seen: HashSet<PacketId>,
    order: VecDeque<PacketId>,
    capacity: usize,
}

impl Forwarder {
    /// Remembers at most `capacity` packet ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// Packet ids remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Checks a packet arriving with `hop_limit` and remembers it.
    pub fn check(&mut self, id: PacketId, hop_limit: u8) -> Verdict {
        if self.seen.contains(&id) {
            return Verdict::Duplicate;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(id);
        self.order.push_back(id);
        match hop_limit.checked_sub(1) {
            Some(left) if left > 0 => Verdict::Forward { hop_limit: left },
            _ => Verdict::HopLimit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_spent_hop_limits_are_dropped_with_bounded_memory() {
        let mut f = Forwarder::new(3);
        assert_eq!(f.check([1; 32], 8), Verdict::Forward { hop_limit: 7 });
        assert_eq!(f.check([1; 32], 8), Verdict::Duplicate);
        assert_eq!(f.check([2; 32], 1), Verdict::HopLimit);
        assert_eq!(f.check([3; 32], 0), Verdict::HopLimit);
        assert_eq!(f.check([4; 32], 2), Verdict::Forward { hop_limit: 1 });
        assert_eq!(f.remembered(), 3);
        // [1] was forgotten first.
        assert_eq!(f.check([1; 32], 8), Verdict::Forward { hop_limit: 7 });
        assert_eq!(f.remembered(), 3);
    }
}
