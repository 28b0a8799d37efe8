//! Prometheus text (format 0.0.4), written by hand: payments by role and status, payment
//! latency, answers by HTTP status; gauges are read at scrape time.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the payment latency histogram, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Payments started through the API whose outcome is awaited for the histogram.
const MAX_STARTED: usize = 10_000;

/// Counters kept by the API server.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    payments: BTreeMap<(&'static str, &'static str), u64>,
    requests: BTreeMap<u16, u64>,
    started: HashMap<u64, Instant>,
    latency_buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
}

/// Values read from the node at scrape time.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub(crate) peers_connected: u64,
    pub(crate) channels_open: u64,
    pub(crate) queued_messages: u64,
    pub(crate) queued_onchain_actions: u64,
    pub(crate) chain_synced: bool,
    pub(crate) chain_reachable: bool,
    pub(crate) links: crate::types::LinkStatsInfo,
    pub(crate) events_buffered: u64,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn count_request(&self, status: u16) {
        *self.lock().requests.entry(status).or_default() += 1;
    }

    pub(crate) fn count_payment(&self, role: &'static str, status: &'static str) {
        *self.lock().payments.entry((role, status)).or_default() += 1;
    }

    /// A payment started through the API (its latency is observed when it ends).
    pub(crate) fn started(&self, payment_id: u64) {
        let mut inner = self.lock();
        if inner.started.len() < MAX_STARTED {
            inner.started.insert(payment_id, Instant::now());
        }
    }

    /// A payment we started reached a final status.
    pub(crate) fn finished(&self, payment_id: u64) {
        let mut inner = self.lock();
        if let Some(start) = inner.started.remove(&payment_id) {
            let secs = start.elapsed().as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    inner.latency_buckets[i] += 1;
                }
            }
            inner.latency_count += 1;
            inner.latency_sum += secs;
        }
    }

    /// Median of the observed latencies' histogram (an upper bound: the first bucket
    /// holding half of them), for reports.
    pub fn latency_p50(&self) -> Option<Duration> {
        let inner = self.lock();
        let half = inner.latency_count.div_ceil(2);
        if half == 0 {
            return None;
        }
        BUCKETS
            .iter()
            .zip(inner.latency_buckets)
            .find(|(_, n)| *n >= half)
            .map(|(b, _)| Duration::from_secs_f64(*b))
    }

    pub(crate) fn render(&self, g: &Gauges) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let n = "smartmesh_payments_total";
        family(
            &mut out,
            n,
            "counter",
            "Payments by our role and final status.",
        );
        for ((role, status), count) in &inner.payments {
            let _ = writeln!(out, "{n}{{role=\"{role}\",status=\"{status}\"}} {count}");
        }
        let n = "smartmesh_payment_latency_seconds";
        family(
            &mut out,
            n,
            "histogram",
            "Time from an API payment request to its final status.",
        );
        for (bound, count) in BUCKETS.iter().zip(inner.latency_buckets) {
            let _ = writeln!(out, "{n}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{n}_bucket{{le=\"+Inf\"}} {}", inner.latency_count);
        let _ = writeln!(out, "{n}_sum {}", inner.latency_sum);
        let _ = writeln!(out, "{n}_count {}", inner.latency_count);
        let single: [(&str, &str, &str, u64); 14] = [
            (
                "smartmesh_peers_connected",
                "gauge",
                "Peers with a link up.",
                g.peers_connected,
            ),
            (
                "smartmesh_channels_open",
                "gauge",
                "Open channels.",
                g.channels_open,
            ),
            (
                "smartmesh_queued_messages",
                "gauge",
                "Channel messages sent and not yet acknowledged.",
                g.queued_messages,
            ),
            (
                "smartmesh_queued_onchain_actions",
                "gauge",
                "On-chain actions waiting for the chain.",
                g.queued_onchain_actions,
            ),
            (
                "smartmesh_chain_synced",
                "gauge",
                "1 when the node is synced with the chain.",
                u64::from(g.chain_synced),
            ),
            (
                "smartmesh_chain_reachable",
                "gauge",
                "1 when the chain answers.",
                u64::from(g.chain_reachable),
            ),
            (
                "smartmesh_link_messages_sent_total",
                "counter",
                "Messages handed to a link.",
                g.links.messages_sent,
            ),
            (
                "smartmesh_link_messages_acked_total",
                "counter",
                "Messages acknowledged by the peer's link.",
                g.links.messages_acked,
            ),
            (
                "smartmesh_link_messages_dropped_total",
                "counter",
                "Messages dropped by the link layer (sent again by the engine).",
                g.links.messages_dropped,
            ),
            (
                "smartmesh_link_messages_received_total",
                "counter",
                "Messages received.",
                g.links.messages_received,
            ),
            (
                "smartmesh_link_outbound_queue",
                "gauge",
                "Sends waiting for the link task.",
                g.links.outbound_queue_depth,
            ),
            (
                "smartmesh_link_inbound_queue",
                "gauge",
                "Received messages waiting for the node.",
                g.links.inbound_queue_depth,
            ),
            (
                "smartmesh_link_connections",
                "gauge",
                "Open connections.",
                g.links.connections,
            ),
            (
                "smartmesh_api_events_buffered",
                "gauge",
                "Events kept for /v1/events.",
                g.events_buffered,
            ),
        ];
        for (name, kind, help, value) in single {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        let n = "smartmesh_api_requests_total";
        family(&mut out, n, "counter", "API answers by HTTP status.");
        for (status, count) in &inner.requests {
            let _ = writeln!(out, "{n}{{status=\"{status}\"}} {count}");
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
