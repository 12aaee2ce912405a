//! Source pinning for one RTP stream: which sender (source address and
//! SSRC, RFC 3550 §8) the receiver plays, and when another may take over.
//!
//! Sans-IO: the receiver asks [`SourceLock::check`] for every parsed packet
//! with its source address and local arrival time ([`MonoNs`]).
//! - The first packet's (address, SSRC) becomes the current source, unless
//!   a source address is pinned (SDP `a=source-filter` / URL `source=`,
//!   RFC 4570), which then is the only address ever accepted.
//! - A packet from another (address, SSRC) is dropped and counted
//!   ([`SourceLock::foreign`]), except that it takes over when the current
//!   source has been silent for longer than [`SourceLockConfig::silence`]
//!   (the link offset), or after [`SourceLockConfig::takeover_packets`]
//!   packets from it in sequence with none from the current source between.

use std::net::IpAddr;

use crate::units::{MonoNs, Nanos};

/// Settings of a [`SourceLock`].
#[derive(Debug, Clone, Copy)]
pub struct SourceLockConfig {
    /// The only source address accepted (`None`: the first one seen).
    pub pinned: Option<IpAddr>,
    /// Silence of the current source (ns; the link offset) after which
    /// another source takes over at its first packet.
    pub silence: Nanos,
    /// Packets in sequence (consecutive RTP sequence numbers) from another
    /// source, with none from the current one between, that take over (8).
    pub takeover_packets: u32,
}

impl SourceLockConfig {
    /// `pinned` address (if any), silence = `link_offset`, 8 packets.
    pub fn new(pinned: Option<IpAddr>, link_offset: Nanos) -> SourceLockConfig {
        SourceLockConfig {
            pinned,
            silence: link_offset,
            takeover_packets: 8,
        }
    }
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the current source.
    Accept,
    /// From a new source that just became current (the first packet, or a
    /// takeover): play it; the buffer resynchronises.
    Switch,
    /// From another source: drop (counted).
    Foreign,
}

/// A sender: source address (if known) and SSRC.
type Source = (Option<IpAddr>, u32);

/// The source pinning state. See the module doc.
#[derive(Debug, Clone)]
pub struct SourceLock {
    cfg: SourceLockConfig,
    current: Option<Source>,
    last_seen: MonoNs,
    /// A would-be source: who, the next sequence number expected, count.
    candidate: Option<(Source, u16, u32)>,
    foreign: u64,
    switches: u64,
}

impl SourceLock {
    /// No source yet.
    pub fn new(cfg: SourceLockConfig) -> SourceLock {
        SourceLock {
            cfg,
            current: None,
            last_seen: MonoNs::from_ns(0),
            candidate: None,
            foreign: 0,
            switches: 0,
        }
    }

    /// Packets dropped as from another source so far.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// Takeovers so far (the first source not counted).
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// The current (address, SSRC), if any.
    pub fn current(&self) -> Option<(Option<IpAddr>, u32)> {
        self.current
    }

    /// Judges one packet from `src` (address, if known) with `ssrc` and RTP
    /// sequence number `seq`, arrived at `now`. See the module doc.
    pub fn check(&mut self, src: Option<IpAddr>, ssrc: u32, seq: u16, now: MonoNs) -> Verdict {
        if let (Some(pin), Some(a)) = (self.cfg.pinned, src)
            && pin != a
        {
            self.foreign += 1;
            return Verdict::Foreign;
        }
        let me = (src, ssrc);
        let Some(cur) = self.current else {
            self.current = Some(me);
            self.last_seen = now;
            return Verdict::Switch;
        };
        // An unknown address matches any (platforms without msg_name).
        if cur.1 == ssrc && (cur.0 == src || cur.0.is_none() || src.is_none()) {
            self.last_seen = now;
            self.candidate = None;
            return Verdict::Accept;
        }
        let silent = now.since(self.last_seen) > self.cfg.silence;
        let count = match self.candidate {
            Some((c, next, n)) if c == me && next == seq => n + 1,
            _ => 1,
        };
        if silent || count >= self.cfg.takeover_packets.max(1) {
            self.current = Some(me);
            self.last_seen = now;
            self.candidate = None;
            self.switches += 1;
            return Verdict::Switch;
        }
        self.candidate = Some((me, seq.wrapping_add(1), count));
        self.foreign += 1;
        Verdict::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn locks_to_the_first_source_and_counts_interleaved_foreign_packets() {
        let mut l = SourceLock::new(SourceLockConfig::new(None, Nanos::from_ms(5)));
        assert_eq!(
            l.check(ip("10.0.0.1"), 1, 0, MonoNs::from_ns(0)),
            Verdict::Switch
        );
        // A rogue sender interleaved with the real one never takes over,
        // by SSRC or by address.
        for k in 1..100u16 {
            let t = MonoNs::from_ns(k as u64 * MS);
            assert_eq!(l.check(ip("10.0.0.1"), 1, k, t), Verdict::Accept);
            assert_eq!(l.check(ip("10.0.0.66"), 1, k, t), Verdict::Foreign);
            assert_eq!(l.check(ip("10.0.0.1"), 2, k, t), Verdict::Foreign);
        }
        assert_eq!(l.foreign(), 198);
        assert_eq!(l.current(), Some((ip("10.0.0.1"), 1)));
    }

    #[test]
    fn takes_over_after_silence_or_eight_packets_in_sequence() {
        let mut l = SourceLock::new(SourceLockConfig::new(None, Nanos::from_ms(5)));
        let _ = l.check(ip("10.0.0.1"), 1, 0, MonoNs::from_ns(0));
        // Silent for 6 ms > link offset: the next source takes over at once.
        assert_eq!(
            l.check(ip("10.0.0.2"), 9, 500, MonoNs::from_ns(6 * MS)),
            Verdict::Switch
        );
        // Back-to-back: 7 packets in sequence are not enough, the 8th is.
        for k in 0..7u16 {
            let v = l.check(
                ip("10.0.0.3"),
                5,
                100 + k,
                MonoNs::from_ns(6 * MS + k as u64),
            );
            assert_eq!(v, Verdict::Foreign, "{k}");
        }
        assert_eq!(
            l.check(ip("10.0.0.3"), 5, 107, MonoNs::from_ns(6 * MS + 7)),
            Verdict::Switch
        );
        // A gap in the sequence restarts the count.
        for (k, seq) in [0u16, 1, 2, 4, 5, 6, 7, 8, 9, 10].into_iter().enumerate() {
            let v = l.check(
                ip("10.0.0.4"),
                5,
                seq,
                MonoNs::from_ns(6 * MS + 8 + k as u64),
            );
            assert_eq!(v, Verdict::Foreign, "{seq}");
        }
        assert_eq!(l.switches(), 2);
    }

    #[test]
    fn a_pinned_address_is_the_only_one_ever_accepted() {
        let mut l = SourceLock::new(SourceLockConfig::new(ip("10.0.0.1"), Nanos::from_ms(5)));
        for k in 0..20u16 {
            let t = MonoNs::from_ns(k as u64 * 10 * MS);
            assert_eq!(l.check(ip("10.0.0.2"), 1, k, t), Verdict::Foreign);
        }
        assert_eq!(
            l.check(ip("10.0.0.1"), 7, 0, MonoNs::from_ns(300 * MS)),
            Verdict::Switch
        );
        assert_eq!(l.foreign(), 20);
    }
}
