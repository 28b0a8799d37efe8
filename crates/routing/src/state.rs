//! The router: routes learned from neighbours, selection under the feasibility
//! condition, announcements within a byte budget.

use crate::types::{
    INFINITY, Message, Metric, NodeId, RouteEntry, RouteInfo, RoutingConfig, RoutingError, Seqno,
};
use std::collections::{BTreeMap, BTreeSet};

/// What the router reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A link to `neighbour` came up with this cost (256 for a perfect link; lossier
    /// links cost more).
    LinkUp {
        /// The neighbour.
        neighbour: NodeId,
        /// Link cost.
        cost: Metric,
    },
    /// The cost of a link changed.
    LinkCost {
        /// The neighbour.
        neighbour: NodeId,
        /// New cost.
        cost: Metric,
    },
    /// A link went down.
    LinkDown {
        /// The neighbour.
        neighbour: NodeId,
    },
    /// A routing message from a neighbour.
    Receive {
        /// The neighbour (authenticated by the link).
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// Our forwarding price per KiB changed.
    SetPrice {
        /// Token base units per KiB.
        price: u64,
    },
    /// Time passed (milliseconds, from any fixed origin, never decreasing).
    Tick {
        /// Now.
        now_ms: u64,
    },
}

/// What the router asks the caller to do or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to the neighbour `to`.
    Send {
        /// The neighbour.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// The selected route to `destination` changed (`None`: unreachable).
    RouteChanged {
        /// The destination.
        destination: NodeId,
        /// The new route.
        route: Option<RouteInfo>,
    },
}

#[derive(Debug, Clone)]
struct Neighbour {
    cost: Metric,
    /// Announcement budget, bytes.
    tokens: u64,
    /// Destinations to announce to this neighbour.
    pending: BTreeSet<NodeId>,
    /// Seqno requests to send to it.
    requests: Vec<(NodeId, Seqno, u8)>,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    seqno: Seqno,
    /// As announced by the neighbour.
    metric: Metric,
    price: u64,
    expires_ms: u64,
}

/// One node's routing state.
#[derive(Debug, Clone)]
pub struct Router {
    me: NodeId,
    config: RoutingConfig,
    seqno: Seqno,
    price: u64,
    now_ms: u64,
    last_dump_ms: u64,
    last_refill_ms: u64,
    neighbours: BTreeMap<NodeId, Neighbour>,
    routes: BTreeMap<(NodeId, NodeId), Route>,
    selected: BTreeMap<NodeId, RouteInfo>,
    /// Feasibility distances: the best (seqno, metric) we announced per destination.
    feasibility: BTreeMap<NodeId, (Seqno, Metric)>,
    /// Seqno requests we sent recently (destination → until), to not repeat them.
    requested: BTreeMap<NodeId, u64>,
}

/// The most a forwarding node's price adds to the metric (16 perfect links).
pub const MAX_PRICE_METRIC: Metric = 16 * 256;

fn add(a: Metric, b: Metric) -> Metric {
    if a == INFINITY || b == INFINITY {
        INFINITY
    } else {
        a.saturating_add(b).min(INFINITY - 1)
    }
}

impl Router {
    /// A router for node `me` (no neighbours yet).
    pub fn new(me: NodeId, config: RoutingConfig) -> Result<Self, RoutingError> {
        config.validate()?;
        Ok(Self {
            me,
            config,
            seqno: Seqno(0),
            price: 0,
            now_ms: 0,
            last_dump_ms: 0,
            last_refill_ms: 0,
            neighbours: BTreeMap::new(),
            routes: BTreeMap::new(),
            selected: BTreeMap::new(),
            feasibility: BTreeMap::new(),
            requested: BTreeMap::new(),
        })
    }

    /// Our address.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Our sequence number.
    pub fn seqno(&self) -> Seqno {
        self.seqno
    }

    /// The selected route to `destination`.
    pub fn route(&self, destination: NodeId) -> Option<RouteInfo> {
        self.selected.get(&destination).copied()
    }

    /// Every selected route.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.selected.values().copied().collect()
    }

    /// Current neighbours.
    pub fn neighbours(&self) -> Vec<NodeId> {
        self.neighbours.keys().copied().collect()
    }

    /// Applies one input.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::LinkUp { neighbour, cost } => {
                if neighbour == self.me {
                    return out;
                }
                let burst = self.config.budget_burst_bytes;
                let entry = self.neighbours.entry(neighbour).or_insert(Neighbour {
                    cost,
                    tokens: burst,
                    pending: BTreeSet::new(),
                    requests: Vec::new(),
                });
                entry.cost = cost.max(1);
                // A new neighbour gets our whole table at once.
                let all = self.announceable();
                if let Some(n) = self.neighbours.get_mut(&neighbour) {
                    n.pending.extend(all);
                }
                self.reselect_all(&mut out);
            }
            Input::LinkCost { neighbour, cost } => {
                if let Some(n) = self.neighbours.get_mut(&neighbour) {
                    n.cost = cost.max(1);
                    self.reselect_all(&mut out);
                }
            }
            Input::LinkDown { neighbour } => {
                if self.neighbours.remove(&neighbour).is_some() {
                    self.routes.retain(|(_, via), _| *via != neighbour);
                    self.reselect_all(&mut out);
                }
            }
            Input::Receive { from, message } => {
                if self.neighbours.contains_key(&from) {
                    self.receive(from, message, &mut out);
                }
            }
            Input::SetPrice { price } => {
                if price != self.price {
                    self.price = price;
                    self.announce_all();
                }
            }
            Input::Tick { now_ms } => self.tick(now_ms, &mut out),
        }
        self.flush(&mut out);
        out
    }

    /// Destinations we can announce: ourselves and every selected route.
    fn announceable(&self) -> Vec<NodeId> {
        std::iter::once(self.me)
            .chain(self.selected.keys().copied())
            .collect()
    }

    fn announce_all(&mut self) {
        let all = self.announceable();
        for n in self.neighbours.values_mut() {
            n.pending.extend(all.iter().copied());
        }
    }

    fn announce(&mut self, destination: NodeId) {
        for n in self.neighbours.values_mut() {
            n.pending.insert(destination);
        }
    }

    fn feasible(&self, destination: NodeId, seqno: Seqno, metric: Metric) -> bool {
        if metric == INFINITY {
            return false;
        }
        match self.feasibility.get(&destination) {
            None => true,
            Some((fd_seqno, fd_metric)) => {
                seqno.newer_than(*fd_seqno) || (seqno == *fd_seqno && metric < *fd_metric)
            }
        }
    }

    fn receive(&mut self, from: NodeId, message: Message, out: &mut Vec<Output>) {
        match message {
            Message::Update(entries) => {
                let mut touched = BTreeSet::new();
                for entry in entries
                    .into_iter()
                    .take(self.config.max_entries_per_message)
                {
                    if entry.destination == self.me {
                        continue;
                    }
                    touched.insert(entry.destination);
                    let key = (entry.destination, from);
                    if entry.metric == INFINITY {
                        self.routes.remove(&key);
                        continue;
                    }
                    if self.feasible(entry.destination, entry.seqno, entry.metric) {
                        if !self.routes.contains_key(&key)
                            && self.routes.len() >= self.config.max_routes
                        {
                            continue;
                        }
                        self.routes.insert(
                            key,
                            Route {
                                seqno: entry.seqno,
                                metric: entry.metric,
                                price: entry.price,
                                expires_ms: self.now_ms.saturating_add(self.config.route_expiry_ms),
                            },
                        );
                    } else {
                        // Unfeasible: not usable; if it is all we could get, ask the
                        // destination for a newer sequence number.
                        self.routes.remove(&key);
                        if !self.selected.contains_key(&entry.destination) {
                            let wanted = self
                                .feasibility
                                .get(&entry.destination)
                                .map_or(entry.seqno, |(s, _)| s.next());
                            self.request(from, entry.destination, wanted, self.config.request_hops);
                        }
                    }
                }
                for destination in touched {
                    self.reselect(destination, out);
                }
            }
            Message::SeqnoRequest {
                destination,
                seqno,
                hop_count,
            } => {
                if destination == self.me {
                    if seqno.newer_than(self.seqno) {
                        self.seqno = seqno;
                    }
                    self.announce(self.me);
                    return;
                }
                match self.selected.get(&destination).copied() {
                    Some(route) if !seqno.newer_than(route.seqno) => {
                        if let Some(n) = self.neighbours.get_mut(&from) {
                            n.pending.insert(destination);
                        }
                    }
                    Some(route) if hop_count > 1 && route.next_hop != from => {
                        self.request(route.next_hop, destination, seqno, hop_count - 1);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Queues a seqno request to `to`, unless one for `destination` went out recently.
    fn request(&mut self, to: NodeId, destination: NodeId, seqno: Seqno, hops: u8) {
        if self
            .requested
            .get(&destination)
            .is_some_and(|until| *until > self.now_ms)
        {
            return;
        }
        self.requested.insert(
            destination,
            self.now_ms.saturating_add(self.config.update_interval_ms),
        );
        if let Some(n) = self.neighbours.get_mut(&to) {
            n.requests.push((destination, seqno, hops));
        }
    }

    fn reselect_all(&mut self, out: &mut Vec<Output>) {
        let destinations: BTreeSet<NodeId> = self
            .routes
            .keys()
            .map(|(d, _)| *d)
            .chain(self.selected.keys().copied())
            .collect();
        for destination in destinations {
            self.reselect(destination, out);
        }
    }

    /// Picks the best feasible route to `destination`; announces a change.
    fn reselect(&mut self, destination: NodeId, out: &mut Vec<Output>) {
        let current = self.selected.get(&destination).copied();
        let mut best: Option<RouteInfo> = None;
        for ((d, via), route) in self.routes.range((destination, NodeId::ZERO)..) {
            if *d != destination {
                break;
            }
            let Some(n) = self.neighbours.get(via) else {
                continue;
            };
            // A stored route stays usable while it is feasible, or while it is the
            // one we already use and its announcement did not get worse.
            let usable = self.feasible(destination, route.seqno, route.metric)
                || current.is_some_and(|c| c.next_hop == *via && c.seqno == route.seqno);
            if !usable {
                continue;
            }
            let candidate = RouteInfo {
                destination,
                next_hop: *via,
                metric: add(route.metric, n.cost),
                price: route.price,
                seqno: route.seqno,
            };
            let better = match best {
                None => true,
                Some(b) => {
                    candidate.metric < b.metric
                        || (candidate.metric == b.metric
                            && current.is_some_and(|c| c.next_hop == candidate.next_hop))
                }
            };
            if better {
                best = Some(candidate);
            }
        }
        if best == current {
            return;
        }
        match best {
            Some(route) => {
                self.selected.insert(destination, route);
            }
            None => {
                self.selected.remove(&destination);
            }
        }
        out.push(Output::RouteChanged {
            destination,
            route: best,
        });
        self.announce(destination);
        if best.is_none() {
            // Lost: ask every neighbour for a newer sequence number of the destination.
            let wanted = self
                .feasibility
                .get(&destination)
                .map_or(Seqno(0), |(s, _)| s.next());
            let neighbours: Vec<NodeId> = self.neighbours.keys().copied().collect();
            let recent = self
                .requested
                .get(&destination)
                .is_some_and(|until| *until > self.now_ms);
            if !recent {
                for n in neighbours {
                    if let Some(nb) = self.neighbours.get_mut(&n) {
                        nb.requests
                            .push((destination, wanted, self.config.request_hops));
                    }
                }
                self.requested.insert(
                    destination,
                    self.now_ms.saturating_add(self.config.update_interval_ms),
                );
            }
        }
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let now_ms = now_ms.max(self.now_ms);
        let elapsed = now_ms - self.last_refill_ms;
        self.now_ms = now_ms;
        // Refill the announcement budgets.
        let refill = elapsed.saturating_mul(self.config.budget_bytes_per_sec) / 1_000;
        if refill > 0 {
            self.last_refill_ms = now_ms;
            for n in self.neighbours.values_mut() {
                n.tokens = n
                    .tokens
                    .saturating_add(refill)
                    .min(self.config.budget_burst_bytes);
            }
        }
        // Expire routes not refreshed.
        let before = self.routes.len();
        self.routes.retain(|_, r| r.expires_ms > now_ms);
        if self.routes.len() != before {
            self.reselect_all(out);
        }
        self.requested.retain(|_, until| *until > now_ms);
        if now_ms.saturating_sub(self.last_dump_ms) >= self.config.update_interval_ms {
            self.last_dump_ms = now_ms;
            self.announce_all();
        }
    }

    /// The entry we announce for `destination`, updating its feasibility distance.
    fn entry_for(&mut self, destination: NodeId) -> RouteEntry {
        if destination == self.me {
            return RouteEntry {
                destination,
                seqno: self.seqno,
                metric: 0,
                price: 0,
            };
        }
        match self.selected.get(&destination).copied() {
            Some(route) => {
                // Capped per hop: a high price (base units of an 18-decimal token) must
                // not saturate the metric, or every route through it looks unreachable.
                let forwarding = u64::from(self.config.price_weight)
                    .saturating_mul(self.price)
                    .min(u64::from(MAX_PRICE_METRIC)) as u32;
                let metric = add(route.metric, forwarding);
                let improves = match self.feasibility.get(&destination) {
                    None => true,
                    Some((s, m)) => {
                        route.seqno.newer_than(*s) || (route.seqno == *s && metric < *m)
                    }
                };
                if improves {
                    self.feasibility.insert(destination, (route.seqno, metric));
                }
                RouteEntry {
                    destination,
                    seqno: route.seqno,
                    metric,
                    price: route.price.saturating_add(self.price),
                }
            }
            None => RouteEntry {
                destination,
                seqno: self
                    .feasibility
                    .get(&destination)
                    .map_or(Seqno(0), |(s, _)| *s),
                metric: INFINITY,
                price: 0,
            },
        }
    }

    /// Sends what is pending to each neighbour, within its byte budget.
    fn flush(&mut self, out: &mut Vec<Output>) {
        let ids: Vec<NodeId> = self.neighbours.keys().copied().collect();
        for id in ids {
            let Some(n) = self.neighbours.get_mut(&id) else {
                continue;
            };
            let requests = std::mem::take(&mut n.requests);
            for (destination, seqno, hop_count) in requests {
                let message = Message::SeqnoRequest {
                    destination,
                    seqno,
                    hop_count,
                };
                let Some(n) = self.neighbours.get_mut(&id) else {
                    break;
                };
                let cost = message.wire_bytes() as u64;
                if n.tokens < cost {
                    break;
                }
                n.tokens -= cost;
                out.push(Output::Send { to: id, message });
            }
            loop {
                let Some(n) = self.neighbours.get(&id) else {
                    break;
                };
                if n.pending.is_empty() {
                    break;
                }
                let per_entry = crate::types::ENTRY_BYTES as u64;
                let affordable = (n.tokens.saturating_sub(4) / per_entry) as usize;
                let count = affordable
                    .min(self.config.max_entries_per_message)
                    .min(n.pending.len());
                if count == 0 {
                    break;
                }
                let batch: Vec<NodeId> = n.pending.iter().take(count).copied().collect();
                let entries: Vec<RouteEntry> = batch.iter().map(|d| self.entry_for(*d)).collect();
                let message = Message::Update(entries);
                let cost = message.wire_bytes() as u64;
                if let Some(n) = self.neighbours.get_mut(&id) {
                    for d in &batch {
                        n.pending.remove(d);
                    }
                    n.tokens = n.tokens.saturating_sub(cost);
                }
                out.push(Output::Send { to: id, message });
            }
        }
    }
}
