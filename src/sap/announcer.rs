//! The announcement timer of one session description (RFC 2974 §3.1),
//! sans-IO: [`Announcer::poll`] takes `now` and returns the SAP packets due.
//!
//! - The first announcement goes out at once; then one every
//!   [`AnnouncerConfig::interval`] (default 30 s, as aes67-daemon ships)
//!   ± a uniformly random third of it, redrawn at every announcement
//!   (RFC 2974 §3.1: "offset ... random ... ± 1/3 of the interval"), so that
//!   announcers started together do not stay in step. The RNG is seeded by
//!   the caller: tests are deterministic.
//! - The message id hash is derived from the SDP (never 0, never the previous
//!   one): when the SDP changes, the hash changes, a deletion carrying the old
//!   SDP goes out first, then the new announcement (RFC 2974 §3, §3.2).
//! - [`Announcer::stop`] sends [`AnnouncerConfig::deletions`] deletions (3),
//!   [`AnnouncerConfig::deletion_spacing`] apart.
//!
//! Deletions carry the whole old SDP, not only its `o=` line: PipeWire's
//! listener parses a deletion's payload as a full SDP and ignores one that
//! does not start with `v=0`.
//!
//! Not done: RFC 2974's bandwidth-scaled interval (`max(300 s,
//! 8·N·size/4000 bit/s)`); the interval is fixed by configuration, as in
//! every AES67 implementation.

use std::net::IpAddr;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::codec::{self, MessageType, SapError};
use crate::units::{MonoNs, Nanos};

/// Announcer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// Mean time between announcements; default 30 s. Jitter of ±1/3 is
    /// added to each.
    pub interval: Nanos,
    /// Deletions sent by [`Announcer::stop`]; default 3.
    pub deletions: u8,
    /// Time between those deletions; default 100 ms.
    pub deletion_spacing: Nanos,
}

impl Default for AnnouncerConfig {
    fn default() -> AnnouncerConfig {
        AnnouncerConfig {
            interval: Nanos::from_secs(30),
            deletions: 3,
            deletion_spacing: Nanos::from_ms(100),
        }
    }
}

/// The message id hash of an SDP: FNV-1a folded to 16 bits, never 0 (RFC
/// 2974 §3 discourages 0) and never `avoid` (the previous hash).
pub fn hash_of(sdp: &str, avoid: Option<u16>) -> u16 {
    let mut h: u32 = 0x811C_9DC5;
    for b in sdp.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut x = ((h >> 16) ^ (h & 0xFFFF)) as u16;
    while x == 0 || Some(x) == avoid {
        x = x.wrapping_add(1);
    }
    x
}

/// The announcer of one session (see the module docs).
#[derive(Debug)]
pub struct Announcer {
    cfg: AnnouncerConfig,
    origin: IpAddr,
    rng: SmallRng,
    /// The current SDP and its hash (none before `set_sdp`, or after `stop`).
    current: Option<(String, u16)>,
    last_hash: Option<u16>,
    next_announce: Option<MonoNs>,
    /// Deletions still to send: (due, packet).
    deletions: Vec<(MonoNs, Vec<u8>)>,
    announcements: u64,
    deletions_sent: u64,
}

impl Announcer {
    /// An announcer for sessions originating at `origin` (the SAP
    /// originating source: the sender's interface address). `seed` seeds the
    /// jitter RNG.
    pub fn new(cfg: AnnouncerConfig, origin: IpAddr, seed: u64) -> Announcer {
        Announcer {
            cfg,
            origin,
            rng: SmallRng::seed_from_u64(seed),
            current: None,
            last_hash: None,
            next_announce: None,
            deletions: Vec::new(),
            announcements: 0,
            deletions_sent: 0,
        }
    }

    /// Announces `sdp` from now on: at once, then every interval. If another
    /// SDP was announced, one deletion of it goes out first and the hash
    /// changes. The same SDP again changes nothing.
    ///
    /// Errors: [`SapError::TooLarge`] / [`SapError::Empty`] for an SDP that
    /// does not fit a SAP packet; the previous SDP stays announced.
    pub fn set_sdp(&mut self, now: MonoNs, sdp: &str) -> Result<(), SapError> {
        if self.current.as_ref().is_some_and(|(s, _)| s == sdp) {
            return Ok(());
        }
        let hash = hash_of(sdp, self.last_hash);
        codec::build(MessageType::Announce, hash, self.origin, sdp)?;
        if let Some((old, old_hash)) = self.current.take() {
            let del = codec::build(MessageType::Delete, old_hash, self.origin, &old)?;
            self.deletions.push((now, del));
        }
        self.current = Some((sdp.to_owned(), hash));
        self.last_hash = Some(hash);
        self.next_announce = Some(now);
        Ok(())
    }

    /// Stops announcing: the configured number of deletions of the current
    /// SDP, spaced, from `now`. Poll until [`Announcer::is_idle`].
    pub fn stop(&mut self, now: MonoNs) {
        self.next_announce = None;
        if let Some((sdp, hash)) = self.current.take()
            && let Ok(del) = codec::build(MessageType::Delete, hash, self.origin, &sdp)
        {
            for i in 0..self.cfg.deletions {
                let at = now.add(Nanos::from_ns(
                    self.cfg.deletion_spacing.as_ns() * i64::from(i),
                ));
                self.deletions.push((at, del.clone()));
            }
        }
    }

    /// The packets due at `now`, in order (deletions before announcements).
    pub fn poll(&mut self, now: MonoNs) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.deletions.len() {
            if self.deletions[i].0 <= now {
                out.push(self.deletions.remove(i).1);
                self.deletions_sent += 1;
            } else {
                i += 1;
            }
        }
        if let (Some(due), Some((sdp, hash))) = (self.next_announce, &self.current)
            && due <= now
        {
            if let Ok(p) = codec::build(MessageType::Announce, *hash, self.origin, sdp) {
                out.push(p);
                self.announcements += 1;
            }
            let base = self.cfg.interval.as_ns();
            let third = base / 3;
            let jitter = if third > 0 {
                self.rng.random_range(-third..=third)
            } else {
                0
            };
            self.next_announce = Some(now.add(Nanos::from_ns(base + jitter)));
        }
        out
    }

    /// When [`Announcer::poll`] next has something to send; `None` when idle.
    pub fn poll_timeout(&self) -> Option<MonoNs> {
        let del = self.deletions.iter().map(|d| d.0).min();
        let ann = self.next_announce.filter(|_| self.current.is_some());
        match (del, ann) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Nothing announced and no deletion pending (after `stop` has drained).
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.deletions.is_empty()
    }

    /// The current message id hash, if announcing.
    pub fn hash(&self) -> Option<u16> {
        self.current.as_ref().map(|c| c.1)
    }

    /// The SDP being announced, if any.
    pub fn sdp(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.0.as_str())
    }

    /// Announcements and deletions sent so far.
    pub fn sent(&self) -> (u64, u64) {
        (self.announcements, self.deletions_sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sap::codec::parse;

    const A: &str = "v=0\r\no=- 1 0 IN IP4 10.0.0.1\r\ns=A\r\n";
    const B: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=A\r\n";

    fn t(s: f64) -> MonoNs {
        MonoNs::from_ns((s * 1e9) as u64)
    }

    /// Runs the announcer in virtual time from `from` to `to` s, stepping to
    /// each poll_timeout; returns (time s, packet) pairs.
    fn run(a: &mut Announcer, from: f64, to: f64) -> Vec<(f64, Vec<u8>)> {
        let mut now = t(from);
        let mut out = Vec::new();
        while now <= t(to) {
            for p in a.poll(now) {
                out.push((now.as_ns() as f64 * 1e-9, p));
            }
            match a.poll_timeout() {
                Some(n) if n > now => now = n,
                Some(_) => unreachable!("poll left something due"),
                None => break,
            }
        }
        out
    }

    #[test]
    fn interval_has_one_third_jitter_and_is_seeded() {
        let origin = "10.0.0.1".parse().unwrap();
        let mut a = Announcer::new(AnnouncerConfig::default(), origin, 7);
        a.set_sdp(t(0.0), A).unwrap();
        let sent = run(&mut a, 0.0, 30_000.0);
        assert_eq!(sent[0].0, 0.0, "first announcement at once");
        let gaps: Vec<f64> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.len() > 900, "{}", gaps.len());
        assert!(gaps.iter().all(|g| (20.0..=40.0).contains(g)), "{gaps:?}");
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 30.0).abs() < 0.6, "mean {mean}");
        // Spread over the whole ±10 s: both ends are reached.
        assert!(gaps.iter().any(|g| *g < 21.0) && gaps.iter().any(|g| *g > 39.0));
        for (_, p) in &sent {
            let p = parse(p).unwrap();
            assert_eq!(
                (p.kind, p.sdp, p.origin),
                (MessageType::Announce, A, origin)
            );
        }
        // Same seed, same schedule; another seed, another one.
        let mut b = Announcer::new(AnnouncerConfig::default(), origin, 7);
        b.set_sdp(t(0.0), A).unwrap();
        let again: Vec<f64> = run(&mut b, 0.0, 30_000.0).iter().map(|x| x.0).collect();
        assert_eq!(again, sent.iter().map(|x| x.0).collect::<Vec<_>>());
        let mut c = Announcer::new(AnnouncerConfig::default(), origin, 8);
        c.set_sdp(t(0.0), A).unwrap();
        let other: Vec<f64> = run(&mut c, 0.0, 300.0).iter().map(|x| x.0).collect();
        assert_ne!(other, again[..other.len()].to_vec());
    }

    #[test]
    fn change_sends_deletion_then_new_hash() {
        let origin = "10.0.0.1".parse().unwrap();
        let cfg = AnnouncerConfig {
            interval: Nanos::from_secs(5),
            ..Default::default()
        };
        let mut a = Announcer::new(cfg, origin, 1);
        a.set_sdp(t(0.0), A).unwrap();
        let first = run(&mut a, 0.0, 12.0);
        let h1 = a.hash().unwrap();
        assert_ne!(h1, 0);
        assert!(first.len() >= 2);
        a.set_sdp(t(12.0), A).unwrap(); // unchanged: nothing happens
        assert_eq!(a.poll_timeout().map(|n| n > t(12.0)), Some(true));
        a.set_sdp(t(12.5), B).unwrap();
        let h2 = a.hash().unwrap();
        assert_ne!(h1, h2);
        let pk = a.poll(t(12.5));
        assert_eq!(pk.len(), 2);
        let (d, n) = (parse(&pk[0]).unwrap(), parse(&pk[1]).unwrap());
        assert_eq!((d.kind, d.hash, d.sdp), (MessageType::Delete, h1, A));
        assert_eq!((n.kind, n.hash, n.sdp), (MessageType::Announce, h2, B));
        // Back to A: a hash different from B's (never the previous one).
        a.set_sdp(t(13.0), A).unwrap();
        assert_ne!(a.hash(), Some(h2));
    }

    #[test]
    fn stop_sends_three_spaced_deletions_then_idles() {
        let origin = "fe80::2".parse().unwrap();
        let mut a = Announcer::new(AnnouncerConfig::default(), origin, 3);
        a.set_sdp(t(0.0), A).unwrap();
        let h = a.hash().unwrap();
        assert_eq!(a.poll(t(0.0)).len(), 1);
        a.stop(t(50.0));
        let sent = run(&mut a, 50.0, 100.0);
        let times: Vec<f64> = sent.iter().map(|x| x.0).collect();
        assert_eq!(times.len(), 3);
        assert!((times[2] - times[0] - 0.2).abs() < 1e-6, "{times:?}");
        for (_, p) in &sent {
            let p = parse(p).unwrap();
            assert_eq!((p.kind, p.hash, p.origin), (MessageType::Delete, h, origin));
        }
        assert!(a.is_idle());
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(a.sent(), (1, 3));
    }

    #[test]
    fn hash_never_zero_or_previous() {
        for i in 0..2000 {
            let s = format!("v=0\r\ns={i}\r\n");
            let h = hash_of(&s, None);
            assert_ne!(h, 0);
            assert_ne!(hash_of(&s, Some(h)), h);
        }
        let too_big = "x".repeat(crate::sap::MAX_PACKET);
        let mut a = Announcer::new(AnnouncerConfig::default(), "10.0.0.1".parse().unwrap(), 0);
        assert!(a.set_sdp(t(0.0), &too_big).is_err());
        assert!(a.is_idle());
    }
}
