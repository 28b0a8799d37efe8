//! Reliable ordered byte streams over sealed datagrams, pure: the sender keeps what is
//! not acknowledged and sends it again from the first gap when acknowledgements stop
//! (go-back-N; the links are reliable and ordered, so losses are rare: a reroute, a full
//! queue); the receiver takes bytes only in order and acknowledges cumulatively.

use std::collections::VecDeque;

/// Bytes sent and not yet acknowledged, at most.
pub const SEND_WINDOW: u64 = 1 << 20;
/// Bytes one stream datagram carries, at most.
pub const SEGMENT: usize = 32 * 1024;

/// The sending half.
#[derive(Debug, Default)]
pub struct SendHalf {
    /// Offset of `buf[0]` (everything before is acknowledged).
    base: u64,
    buf: VecDeque<u8>,
    /// Next offset to send.
    next: u64,
    /// The application closed its side: the last byte is `base + buf.len()`.
    fin: bool,
    /// The fin was acknowledged.
    fin_acked: bool,
    /// When the last acknowledgement moved `base` (or the first send), ms.
    progress_ms: u64,
}

impl SendHalf {
    /// Queues bytes from the application.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
    }

    /// The application closed its side.
    pub fn finish(&mut self) {
        self.fin = true;
    }

    /// Bytes queued (sent or not) and not acknowledged.
    pub fn queued(&self) -> usize {
        self.buf.len()
    }

    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// What to send now: (offset, fin, bytes) segments within the window; after `rto_ms`
    /// without progress everything unacknowledged is sent again. The fin takes one
    /// virtual offset after the last byte.
    pub fn to_send(&mut self, now_ms: u64, rto_ms: u64) -> Vec<(u64, bool, Vec<u8>)> {
        if self.fin_acked {
            return Vec::new();
        }
        if self.next > self.base && now_ms.saturating_sub(self.progress_ms) >= rto_ms {
            self.next = self.base;
        }
        let end = self.end();
        let window_end = self.base + SEND_WINDOW;
        let limit = (end + u64::from(self.fin)).min(window_end);
        let mut out = Vec::new();
        while self.next < limit {
            if self.next == self.base {
                self.progress_ms = now_ms;
            }
            let data_end = end.min(window_end);
            let n = (data_end.saturating_sub(self.next) as usize).min(SEGMENT);
            let fin = self.fin && self.next + n as u64 == end;
            if n == 0 && !fin {
                break;
            }
            let from = (self.next - self.base) as usize;
            let body: Vec<u8> = self.buf.range(from..from + n).copied().collect();
            out.push((self.next, fin, body));
            self.next += n as u64 + u64::from(fin);
        }
        out
    }

    /// The peer has every byte before `offset` (one past the last byte acknowledges the
    /// fin).
    pub fn ack(&mut self, offset: u64, now_ms: u64) {
        let end = self.end();
        if offset > self.base {
            let upto = offset.min(end);
            let n = (upto - self.base) as usize;
            self.buf.drain(..n);
            self.base = upto;
            self.progress_ms = now_ms;
        }
        if self.fin && offset == end + 1 {
            self.fin_acked = true;
        }
        self.next = self.next.max(offset.min(end + u64::from(self.fin)));
    }

    /// Everything including the fin is acknowledged.
    pub fn done(&self) -> bool {
        self.fin_acked
    }
}

/// The receiving half.
#[derive(Debug, Default)]
pub struct RecvHalf {
    expected: u64,
    /// The peer's fin arrived (all its bytes taken).
    pub fin: bool,
}

impl RecvHalf {
    /// Whether a segment at `offset` is the next in order (take it, then [`Self::took`]).
    pub fn in_order(&self, offset: u64) -> bool {
        !self.fin && offset == self.expected
    }

    /// A segment of `len` bytes (and maybe the fin) was taken.
    pub fn took(&mut self, len: usize, fin: bool) {
        self.expected += len as u64;
        if fin {
            self.fin = true;
        }
    }

    /// The cumulative acknowledgement to send (one past the end once the fin is in).
    pub fn ack(&self) -> u64 {
        self.expected + u64::from(self.fin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves segments from `s` to `r` (dropping those `lose` says), acks back.
    fn exchange(
        s: &mut SendHalf,
        r: &mut RecvHalf,
        got: &mut Vec<u8>,
        now: u64,
        lose: &mut impl FnMut() -> bool,
    ) {
        for (offset, fin, body) in s.to_send(now, 100) {
            if lose() {
                continue;
            }
            if r.in_order(offset) {
                got.extend_from_slice(&body);
                r.took(body.len(), fin);
            }
            s.ack(r.ack(), now);
        }
    }

    #[test]
    fn bytes_arrive_once_in_order_despite_losses_and_the_fin_closes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let mut s = SendHalf::default();
        let mut r = RecvHalf::default();
        let mut got = Vec::new();
        s.push(&data[..1_000_000]);
        let mut n = 0u32;
        let mut lose = || {
            n += 1;
            n % 7 == 3
        };
        let mut now = 0;
        while got.len() < 1_000_000 {
            exchange(&mut s, &mut r, &mut got, now, &mut lose);
            now += 50;
            assert!(now < 1_000_000, "no progress");
        }
        s.push(&data[1_000_000..]);
        s.finish();
        while !s.done() {
            exchange(&mut s, &mut r, &mut got, now, &mut lose);
            now += 50;
            assert!(now < 2_000_000, "no progress");
        }
        assert_eq!(got, data);
        assert!(r.fin);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn an_empty_stream_closes_and_nothing_is_sent_twice_without_a_timeout() {
        let mut s = SendHalf::default();
        let mut r = RecvHalf::default();
        s.finish();
        let first = s.to_send(0, 100);
        assert_eq!(first, vec![(0, true, Vec::new())]);
        assert!(s.to_send(10, 100).is_empty(), "waits for the ack");
        assert_eq!(s.to_send(200, 100), vec![(0, true, Vec::new())], "timeout");
        assert!(r.in_order(0));
        r.took(0, true);
        s.ack(r.ack(), 210);
        assert!(s.done());
        assert!(!r.in_order(0), "nothing after the fin");
    }

    #[test]
    fn the_window_bounds_what_is_in_flight() {
        let mut s = SendHalf::default();
        s.push(&vec![0; 3 * SEND_WINDOW as usize]);
        let sent: usize = s.to_send(0, 100).iter().map(|(_, _, b)| b.len()).sum();
        assert_eq!(sent as u64, SEND_WINDOW);
        assert!(s.to_send(1, 100).is_empty());
        s.ack(SEGMENT as u64, 2);
        let more: usize = s.to_send(3, 100).iter().map(|(_, _, b)| b.len()).sum();
        assert_eq!(more, SEGMENT);
    }
}
