//! Routers in a simulated network (messages delivered in order, one step per 50 ms of
//! simulated time): routes form on lines and diamonds, price steers traffic, a cut link
//! reroutes (the time it takes is printed), an isolated destination disappears, no
//! forwarding loop ever forms under random failures, and announcements stay within
//! their byte budget.

use proptest::prelude::*;
use smartmesh_primitives::Address;
use smartmesh_routing::{Input, Message, NodeId, Output, Router, RoutingConfig};
use std::collections::{BTreeMap, VecDeque};

const STEP_MS: u64 = 50;

fn id(i: usize) -> NodeId {
    Address::repeat_byte(i as u8 + 1)
}

struct Sim {
    routers: Vec<Router>,
    links: BTreeMap<(usize, usize), u32>,
    queue: VecDeque<(usize, usize, Message)>,
    now_ms: u64,
    /// Bytes sent per (from, to) per second window.
    sent: BTreeMap<(usize, usize, u64), u64>,
}

impl Sim {
    fn new(n: usize, config: RoutingConfig) -> Self {
        Self {
            routers: (0..n)
                .map(|i| Router::new(id(i), config.clone()).expect("router"))
                .collect(),
            links: BTreeMap::new(),
            queue: VecDeque::new(),
            now_ms: 0,
            sent: BTreeMap::new(),
        }
    }

    fn index(&self, node: NodeId) -> usize {
        self.routers
            .iter()
            .position(|r| r.me() == node)
            .expect("known node")
    }

    fn apply(&mut self, at: usize, input: Input) {
        for output in self.routers[at].handle(input) {
            if let Output::Send { to, message } = output {
                let to = self.index(to);
                let window = self.now_ms / 1_000;
                *self.sent.entry((at, to, window)).or_default() += message.wire_bytes() as u64;
                self.queue.push_back((at, to, message));
            }
        }
    }

    fn link(&mut self, a: usize, b: usize, cost: u32) {
        self.links.insert((a.min(b), a.max(b)), cost);
        self.apply(
            a,
            Input::LinkUp {
                neighbour: id(b),
                cost,
            },
        );
        self.apply(
            b,
            Input::LinkUp {
                neighbour: id(a),
                cost,
            },
        );
    }

    fn cut(&mut self, a: usize, b: usize) {
        self.links.remove(&(a.min(b), a.max(b)));
        self.apply(a, Input::LinkDown { neighbour: id(b) });
        self.apply(b, Input::LinkDown { neighbour: id(a) });
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains_key(&(a.min(b), a.max(b)))
    }

    /// Delivers what is queued (over links that are up), then advances the clock.
    fn step(&mut self) {
        let batch: Vec<_> = self.queue.drain(..).collect();
        for (from, to, message) in batch {
            if self.linked(from, to) {
                self.apply(
                    to,
                    Input::Receive {
                        from: id(from),
                        message,
                    },
                );
            }
        }
        self.now_ms += STEP_MS;
        for i in 0..self.routers.len() {
            self.apply(
                i,
                Input::Tick {
                    now_ms: self.now_ms,
                },
            );
        }
    }

    /// Steps until `done` holds; returns the simulated milliseconds it took.
    fn until(&mut self, limit_ms: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.now_ms;
        while self.now_ms - start <= limit_ms {
            if done(self) {
                return Some(self.now_ms - start);
            }
            self.step();
        }
        None
    }

    fn next_hop(&self, from: usize, to: usize) -> Option<usize> {
        self.routers[from]
            .route(id(to))
            .map(|r| self.index(r.next_hop))
    }

    /// Follows next hops from `from` to `to`: `Some(path)` when it arrives, `None` when
    /// a hop has no route; panics on a loop.
    fn path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let mut path = vec![from];
        let mut at = from;
        while at != to {
            let next = self.next_hop(at, to)?;
            assert!(!path.contains(&next), "forwarding loop {path:?} -> {next}");
            path.push(next);
            at = next;
        }
        Some(path)
    }

    fn all_routes_follow_links(&self) -> bool {
        let n = self.routers.len();
        (0..n).all(|a| {
            (0..n).filter(|b| *b != a).all(|b| match self.path(a, b) {
                Some(path) => path.windows(2).all(|w| self.linked(w[0], w[1])),
                None => false,
            })
        })
    }
}

fn fast() -> RoutingConfig {
    RoutingConfig {
        update_interval_ms: 1_000,
        route_expiry_ms: 3_500,
        ..RoutingConfig::default()
    }
}

#[test]
fn a_line_of_five_converges_with_hop_by_hop_metrics() {
    let mut sim = Sim::new(5, fast());
    for i in 0..4 {
        sim.link(i, i + 1, 256);
    }
    let took = sim
        .until(5_000, Sim::all_routes_follow_links)
        .expect("converges");
    println!("line of 5: converged in {took} ms of simulated time");
    assert_eq!(sim.path(0, 4), Some(vec![0, 1, 2, 3, 4]));
    assert_eq!(sim.routers[0].route(id(4)).expect("route").metric, 4 * 256);
}

#[test]
fn price_steers_the_route_and_a_cut_link_reroutes() {
    // Diamond: 0 - 1 - 3 and 0 - 2 - 3; node 1 is cheaper on links, node 2 cheaper in price.
    let mut sim = Sim::new(4, fast());
    sim.link(0, 1, 256);
    sim.link(1, 3, 256);
    sim.link(0, 2, 300);
    sim.link(2, 3, 300);
    sim.until(5_000, Sim::all_routes_follow_links)
        .expect("converges");
    assert_eq!(
        sim.path(0, 3),
        Some(vec![0, 1, 3]),
        "links decide without prices"
    );
    sim.apply(1, Input::SetPrice { price: 500 });
    let took = sim
        .until(5_000, |s| s.path(0, 3) == Some(vec![0, 2, 3]))
        .expect("price moves the route");
    let route = sim.routers[0].route(id(3)).expect("route");
    assert_eq!(route.price, 0, "node 2 forwards for free");
    println!("price change rerouted in {took} ms");
    // Node 2 now charges too, less than node 1's price plus its link advantage.
    sim.apply(2, Input::SetPrice { price: 100 });
    sim.until(5_000, |s| {
        s.routers[0]
            .route(id(3))
            .is_some_and(|r| r.price == 100 && r.next_hop == id(2))
    })
    .expect("accumulated price");
    // Cut 2-3: traffic goes back over 1.
    sim.cut(2, 3);
    let took = sim
        .until(10_000, |s| s.path(0, 3) == Some(vec![0, 1, 3]))
        .expect("reroutes after the cut");
    println!("0 -> 3 rerouted {took} ms after the cut");
    let took = sim
        .until(10_000, Sim::all_routes_follow_links)
        .expect("every pair converges after the cut");
    println!("every pair routed again {took} ms later");
}

#[test]
fn an_isolated_node_disappears_without_counting_to_infinity() {
    let mut sim = Sim::new(4, fast());
    for i in 0..3 {
        sim.link(i, i + 1, 256);
    }
    sim.until(5_000, Sim::all_routes_follow_links)
        .expect("converges");
    sim.cut(2, 3);
    let took = sim
        .until(10_000, |s| {
            (0..3).all(|i| s.routers[i].route(id(3)).is_none())
        })
        .expect("everyone forgets node 3");
    println!("unreachable destination withdrawn in {took} ms");
    // It comes back with the link.
    sim.link(2, 3, 256);
    sim.until(10_000, Sim::all_routes_follow_links)
        .expect("back");
}

#[test]
fn announcements_stay_within_the_byte_budget() {
    let config = RoutingConfig {
        update_interval_ms: 1_000,
        route_expiry_ms: 3_500,
        budget_bytes_per_sec: 600,
        budget_burst_bytes: 800,
        ..RoutingConfig::default()
    };
    let n = 12;
    let mut sim = Sim::new(n, config.clone());
    // A star of 11 leaves around node 0, plus a ring among the leaves.
    for i in 1..n {
        sim.link(0, i, 256);
        sim.link(i, if i + 1 < n { i + 1 } else { 1 }, 512);
    }
    sim.until(60_000, Sim::all_routes_follow_links)
        .expect("converges under the budget");
    for _ in 0..200 {
        sim.step();
    }
    let limit = config.budget_bytes_per_sec + config.budget_burst_bytes;
    for ((from, to, window), bytes) in &sim.sent {
        assert!(
            *bytes <= limit,
            "{from}->{to} sent {bytes} bytes in second {window} (limit {limit})"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Random graphs, random cuts and repairs: no forwarding loop at any step, and once
    /// the graph is left alone every connected pair has a route over live links.
    #[test]
    fn no_loops_under_random_failures(
        edges in proptest::collection::btree_set((0usize..7, 0usize..7, 256u32..1024), 6..16),
        events in proptest::collection::vec((0usize..7, 0usize..7, any::<bool>()), 1..12),
    ) {
        let n = 7;
        let mut sim = Sim::new(n, fast());
        for (a, b, cost) in &edges {
            if a != b && !sim.linked(*a, *b) {
                sim.link(*a, *b, *cost);
            }
        }
        for (a, b, up) in events {
            if a == b {
                continue;
            }
            if up && !sim.linked(a, b) {
                sim.link(a, b, 400);
            } else if !up && sim.linked(a, b) {
                sim.cut(a, b);
            }
            for _ in 0..10 {
                sim.step();
                for x in 0..n {
                    for y in 0..n {
                        if x != y {
                            let _ = sim.path(x, y); // panics on a loop
                        }
                    }
                }
            }
        }
        // Left alone, routes settle on the connected components.
        let components = components(&sim, n);
        let settled = sim.until(20_000, |s| {
            (0..n).all(|x| (0..n).all(|y| {
                x == y || (components[x] == components[y]) == s.path(x, y).is_some()
            }))
        });
        prop_assert!(settled.is_some(), "routes did not settle");
    }
}

fn components(sim: &Sim, n: usize) -> Vec<usize> {
    let mut label: Vec<usize> = (0..n).collect();
    loop {
        let mut changed = false;
        for a in 0..n {
            for b in 0..n {
                if sim.linked(a, b) && label[a] != label[b] {
                    let m = label[a].min(label[b]);
                    label[a] = m;
                    label[b] = m;
                    changed = true;
                }
            }
        }
        if !changed {
            return label;
        }
    }
}

#[test]
fn a_huge_price_caps_in_the_metric_and_routes_still_form() {
    // 0 - 1 - 2 with node 1 charging 10^13 base units per KiB (0.00001 of an
    // 18-decimal token): the route exists with a finite metric and the full price.
    let mut sim = Sim::new(3, fast());
    sim.link(0, 1, 256);
    sim.link(1, 2, 256);
    sim.apply(
        1,
        Input::SetPrice {
            price: 10_000_000_000_000,
        },
    );
    sim.until(5_000, |s| {
        s.routers[0]
            .route(id(2))
            .is_some_and(|r| r.metric < smartmesh_routing::INFINITY / 2)
            && s.routers[2]
                .route(id(0))
                .is_some_and(|r| r.metric < smartmesh_routing::INFINITY / 2)
    })
    .expect("routes both ways");
    let route = sim.routers[0].route(id(2)).expect("route");
    assert_eq!(route.price, 10_000_000_000_000);
    assert_eq!(
        route.metric,
        256 + 256 + smartmesh_routing::MAX_PRICE_METRIC
    );
}
