//! The SAP listener's directory of sessions (RFC 2974 §3.2), sans-IO:
//! [`Directory::handle`] takes a datagram and `now`, [`Directory::expire`]
//! drops sessions that stopped being announced.
//!
//! - A session is one (originating source, message id hash) pair.
//! - A new hash for the same session (same originating source and the same
//!   SDP `o=` username, session id and address, RFC 4566 §5.2) replaces the
//!   old entry: a new version. Some announcers (PipeWire 1.4) send hash 0
//!   and session id 0 for every session: for hash 0 the session name is part
//!   of the identity, and a different text under the same identity is a new
//!   version.
//! - Deletions (T bit) remove the entry with that origin and hash, or, for
//!   hash 0 or an unknown hash, the one with the `o=` identity of the
//!   deletion's payload.
//! - Timeout (RFC 2974 §3.2): 10 × the observed announcement interval or
//!   [`DirectoryConfig::min_timeout`] (1 h), whichever is greater, after the
//!   last announcement.
//! - Bounded: at most [`DirectoryConfig::max_sessions`] entries of at most
//!   [`MAX_PACKET`](super::MAX_PACKET) bytes each. When full, new sessions
//!   are dropped and counted (those already listed keep being refreshed).
//!
//! Each entry holds the SDP parsed by [`StreamConfig::from_sdp`] (or why it
//! could not be), ready to play.

use std::net::IpAddr;

use serde::Serialize;

use super::codec::{self, MessageType, SapError};
use crate::media::stream::{ConfigError, StreamConfig};
use crate::units::{MonoNs, Nanos};

/// Directory settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// Most sessions held; default 512.
    pub max_sessions: usize,
    /// The timeout floor; default 1 h (RFC 2974 §3.2). Tests shorten it.
    pub min_timeout: Nanos,
    /// The timeout in observed intervals; default 10 (RFC 2974 §3.2).
    pub timeout_intervals: u32,
}

impl Default for DirectoryConfig {
    fn default() -> DirectoryConfig {
        DirectoryConfig {
            max_sessions: 512,
            min_timeout: Nanos::from_secs(3600),
            timeout_intervals: 10,
        }
    }
}

/// Gaps between two announcements of a session shorter than this are
/// repeats (e.g. an announcer's burst), not its interval.
const MIN_INTERVAL: Nanos = Nanos::from_ms(500);

/// One announced session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SAP originating source (RFC 2974 §3).
    pub origin: IpAddr,
    /// SAP message id hash of the current version.
    pub hash: u16,
    /// The session description as announced.
    pub sdp: String,
    /// `s=`: the session name ("" when absent).
    pub name: String,
    /// `o=` fields: username, session id, version, address (RFC 4566 §5.2).
    pub o: OriginField,
    /// The stream, parsed for playing, or why it cannot be played.
    pub stream: Result<StreamConfig, ConfigError>,
    /// When the session was first heard (any version).
    pub first_heard: MonoNs,
    /// When its last announcement was heard.
    pub last_heard: MonoNs,
    /// The last observed gap between two announcements, if two were heard.
    pub interval: Option<Nanos>,
    /// Versions seen after the first (hash or text changes).
    pub changes: u32,
}

impl Session {
    /// The timeout of this session under `cfg` (RFC 2974 §3.2).
    pub fn timeout(&self, cfg: &DirectoryConfig) -> Nanos {
        let by_interval = self
            .interval
            .map(|i| Nanos::from_ns(i.as_ns().saturating_mul(i64::from(cfg.timeout_intervals))))
            .unwrap_or(Nanos::ZERO);
        by_interval.max(cfg.min_timeout)
    }

    fn ident(&self) -> Ident {
        Ident::new(self.origin, self.hash, &self.o, &self.name)
    }
}

/// The SDP `o=` line's fields (RFC 4566 §5.2), as text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OriginField {
    /// `<username>`.
    pub username: String,
    /// `<sess-id>`.
    pub session_id: String,
    /// `<sess-version>`.
    pub version: String,
    /// `<unicast-address>`.
    pub address: String,
}

/// What a datagram did to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A session heard for the first time.
    New,
    /// An announcement of a session already listed, unchanged.
    Refreshed,
    /// A new version of a listed session replaced it.
    Replaced,
    /// A deletion removed a session.
    Deleted,
    /// A deletion of a session not listed.
    UnknownDeletion,
    /// A new session dropped: the directory is full.
    Full,
}

/// Counters of everything the directory was handed (all since creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectoryStats {
    /// Datagrams handed to [`Directory::handle`].
    pub packets: u64,
    /// Announcements accepted.
    pub announcements: u64,
    /// Deletions accepted (known or not).
    pub deletions: u64,
    /// New sessions listed.
    pub new: u64,
    /// Sessions replaced by a new version.
    pub replaced: u64,
    /// Sessions removed by a deletion.
    pub deleted: u64,
    /// Sessions removed by timeout.
    pub expired: u64,
    /// New sessions dropped because the directory was full.
    pub full: u64,
    /// Malformed datagrams (short, long, bad version, not UTF-8, empty).
    pub malformed: u64,
    /// Encrypted or compressed payloads (dropped).
    pub encrypted_or_compressed: u64,
    /// Payload types other than `application/sdp` (dropped).
    pub other_payload_type: u64,
}

/// Identity of a session across versions (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ident {
    origin: IpAddr,
    user: String,
    id: String,
    addr: String,
    /// The name, for hash 0 (announcers that send the same `o=` for all).
    name: Option<String>,
}

impl Ident {
    fn new(origin: IpAddr, hash: u16, o: &OriginField, name: &str) -> Ident {
        Ident {
            origin,
            user: o.username.clone(),
            id: o.session_id.clone(),
            addr: o.address.clone(),
            name: (hash == 0).then(|| name.to_owned()),
        }
    }
}

/// The `o=` fields and `s=` of an SDP, read line by line (no full parse).
fn scan(sdp: &str) -> (OriginField, String) {
    let mut o = OriginField::default();
    let mut name = String::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("o=") {
            let f: Vec<&str> = v.split_whitespace().collect();
            let get = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            o = OriginField {
                username: get(0),
                session_id: get(1),
                version: get(2),
                address: get(5),
            };
        } else if let Some(v) = line.strip_prefix("s=")
            && name.is_empty()
        {
            name = v.trim().to_owned();
        }
    }
    (o, name)
}

/// The listener's directory (see the module docs).
#[derive(Debug, Default)]
pub struct Directory {
    cfg: DirectoryConfig,
    sessions: Vec<Session>,
    stats: DirectoryStats,
}

/// Why [`Directory::find`] found no single session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// No session has that name or a name starting with it.
    #[error("no SAP session named {0:?}")]
    NotFound(String),
    /// Several sessions start with the prefix and none is named exactly so.
    #[error("SAP session name {0:?} is ambiguous: {1}")]
    Ambiguous(String, String),
}

/// The session named `name` in `sessions`: an exact name, or the only name
/// starting with `name`.
///
/// Errors: [`FindError`].
pub fn find<'a>(sessions: &'a [Session], name: &str) -> Result<&'a Session, FindError> {
    if let Some(s) = sessions.iter().find(|s| s.name == name) {
        return Ok(s);
    }
    let m: Vec<&Session> = sessions
        .iter()
        .filter(|s| s.name.starts_with(name))
        .collect();
    match m.as_slice() {
        [one] => Ok(one),
        [] => Err(FindError::NotFound(name.to_owned())),
        many => Err(FindError::Ambiguous(
            name.to_owned(),
            many.iter()
                .map(|s| format!("{:?}", s.name))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

impl Directory {
    /// An empty directory.
    pub fn new(cfg: DirectoryConfig) -> Directory {
        Directory {
            cfg,
            sessions: Vec::new(),
            stats: DirectoryStats::default(),
        }
    }

    /// The sessions listed, in the order first heard.
    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }

    /// The counters.
    pub fn stats(&self) -> DirectoryStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &DirectoryConfig {
        &self.cfg
    }

    /// Handles one SAP datagram received at `now`.
    ///
    /// Errors: the [`SapError`] of a datagram that is not a usable SAP packet;
    /// it is counted in [`DirectoryStats`] and changes nothing else.
    pub fn handle(&mut self, now: MonoNs, datagram: &[u8]) -> Result<Change, SapError> {
        self.stats.packets += 1;
        let p = match codec::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                match e {
                    SapError::Encrypted | SapError::Compressed => {
                        self.stats.encrypted_or_compressed += 1
                    }
                    SapError::PayloadType(_) => self.stats.other_payload_type += 1,
                    _ => self.stats.malformed += 1,
                }
                return Err(e);
            }
        };
        let (o, name) = scan(p.sdp);
        let ident = Ident::new(p.origin, p.hash, &o, &name);
        match p.kind {
            MessageType::Delete => {
                self.stats.deletions += 1;
                let by_hash = (p.hash != 0)
                    .then(|| {
                        self.sessions
                            .iter()
                            .position(|s| s.origin == p.origin && s.hash == p.hash)
                    })
                    .flatten();
                let i = by_hash.or_else(|| self.sessions.iter().position(|s| s.ident() == ident));
                Ok(match i {
                    Some(i) => {
                        self.sessions.remove(i);
                        self.stats.deleted += 1;
                        Change::Deleted
                    }
                    None => Change::UnknownDeletion,
                })
            }
            MessageType::Announce => {
                self.stats.announcements += 1;
                let same = self
                    .sessions
                    .iter()
                    .position(|s| s.origin == p.origin && s.hash == p.hash && s.ident() == ident);
                if let Some(i) = same
                    && self.sessions[i].sdp == p.sdp
                {
                    let s = &mut self.sessions[i];
                    let gap = now.since(s.last_heard);
                    if gap >= MIN_INTERVAL {
                        s.interval = Some(gap);
                    }
                    s.last_heard = now;
                    return Ok(Change::Refreshed);
                }
                let stream = StreamConfig::from_sdp(p.sdp);
                let prev = same.or_else(|| self.sessions.iter().position(|s| s.ident() == ident));
                if let Some(i) = prev {
                    let s = &mut self.sessions[i];
                    let gap = now.since(s.last_heard);
                    *s = Session {
                        origin: p.origin,
                        hash: p.hash,
                        sdp: p.sdp.to_owned(),
                        name,
                        o,
                        stream,
                        first_heard: s.first_heard,
                        last_heard: now,
                        interval: if gap >= MIN_INTERVAL {
                            Some(gap)
                        } else {
                            s.interval
                        },
                        changes: s.changes.saturating_add(1),
                    };
                    self.stats.replaced += 1;
                    return Ok(Change::Replaced);
                }
                if self.sessions.len() >= self.cfg.max_sessions {
                    self.stats.full += 1;
                    return Ok(Change::Full);
                }
                self.sessions.push(Session {
                    origin: p.origin,
                    hash: p.hash,
                    sdp: p.sdp.to_owned(),
                    name,
                    o,
                    stream,
                    first_heard: now,
                    last_heard: now,
                    interval: None,
                    changes: 0,
                });
                self.stats.new += 1;
                Ok(Change::New)
            }
        }
    }

    /// Removes the sessions whose timeout has passed at `now`; returns how
    /// many.
    pub fn expire(&mut self, now: MonoNs) -> usize {
        let cfg = self.cfg;
        let before = self.sessions.len();
        self.sessions
            .retain(|s| now.since(s.last_heard) < s.timeout(&cfg));
        let n = before - self.sessions.len();
        self.stats.expired += n as u64;
        n
    }

    /// When the next session times out, if any.
    pub fn next_expiry(&self) -> Option<MonoNs> {
        self.sessions
            .iter()
            .map(|s| s.last_heard.add(s.timeout(&self.cfg)))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stream::Encoding;
    use crate::sap::announcer::{Announcer, AnnouncerConfig};
    use crate::sap::codec::build;

    fn t(s: f64) -> MonoNs {
        MonoNs::from_ns((s * 1e9) as u64)
    }

    fn sdp(name: &str, id: u32, ver: u32, group: &str, gm: &str) -> String {
        format!(
            "v=0\r\no=- {id} {ver} IN IP4 10.0.0.1\r\ns={name}\r\nc=IN IP4 {group}/32\r\nt=0 0\r\n\
             m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L24/48000/2\r\na=ptime:1\r\n\
             a=ts-refclk:ptp=IEEE1588-2008:{gm}:0\r\na=mediaclk:direct=0\r\n"
        )
    }

    const GM1: &str = "00-1D-C1-FF-FE-12-34-56";
    const GM2: &str = "00-1D-C1-FF-FE-AB-CD-EF";

    fn announce(origin: &str, hash: u16, sdp: &str) -> Vec<u8> {
        build(MessageType::Announce, hash, origin.parse().unwrap(), sdp).unwrap()
    }

    fn delete(origin: &str, hash: u16, sdp: &str) -> Vec<u8> {
        build(MessageType::Delete, hash, origin.parse().unwrap(), sdp).unwrap()
    }

    #[test]
    fn listing_holds_the_parsed_stream() {
        let mut d = Directory::new(DirectoryConfig::default());
        let s = sdp("Studio 1", 7, 0, "239.69.1.1", GM1);
        assert_eq!(
            d.handle(t(1.0), &announce("10.0.0.1", 5, &s)),
            Ok(Change::New)
        );
        let e = &d.sessions()[0];
        assert_eq!(e.name, "Studio 1");
        assert_eq!(e.o.session_id, "7");
        let c = e.stream.as_ref().unwrap();
        assert_eq!(
            (
                c.dest.to_string(),
                c.port,
                c.encoding,
                c.sample_rate,
                c.channels,
                c.packet_time_us
            ),
            (
                "239.69.1.1".into(),
                5004,
                Encoding::L24,
                48000,
                2,
                Some(1000)
            )
        );
        assert_eq!(c.ptp_grandmaster().unwrap().1, 0);
        // An unplayable SDP is listed with its reason.
        let bad = s
            .replace("L24/48000/2", "AM824/48000/2")
            .replace("Studio 1", "Odd");
        d.handle(t(2.0), &announce("10.0.0.2", 9, &bad)).unwrap();
        let e = &d.sessions()[1];
        assert_eq!(e.name, "Odd");
        assert!(e.stream.as_ref().unwrap_err().to_string().contains("AM824"));
    }

    #[test]
    fn refresh_measures_interval_and_timeout_is_ten_times_or_floor() {
        let cfg = DirectoryConfig {
            min_timeout: Nanos::from_secs(60),
            ..Default::default()
        };
        let mut d = Directory::new(cfg);
        let s = sdp("A", 1, 0, "239.69.1.1", GM1);
        let p = announce("10.0.0.1", 5, &s);
        d.handle(t(0.0), &p).unwrap();
        // Only one heard: the floor applies.
        assert_eq!(d.next_expiry(), Some(t(60.0)));
        assert_eq!(d.handle(t(0.1), &p), Ok(Change::Refreshed)); // a repeat, not an interval
        assert_eq!(d.sessions()[0].interval, None);
        for k in 1..=3 {
            assert_eq!(d.handle(t(30.0 * k as f64), &p), Ok(Change::Refreshed));
        }
        assert_eq!(d.sessions()[0].interval, Some(Nanos::from_secs(30)));
        // 10 × 30 s > 60 s floor: expires 300 s after the last (t = 90).
        assert_eq!(d.next_expiry(), Some(t(390.0)));
        assert_eq!(d.expire(t(389.9)), 0);
        assert_eq!(d.expire(t(390.0)), 1);
        assert!(d.sessions().is_empty());
        assert_eq!(d.stats().expired, 1);
        // With the default floor (1 h) a 5 s announcer lasts 1 h.
        let mut d = Directory::new(DirectoryConfig::default());
        d.handle(t(0.0), &p).unwrap();
        d.handle(t(5.0), &p).unwrap();
        assert_eq!(d.next_expiry(), Some(t(3605.0)));
    }

    #[test]
    fn new_hash_replaces_and_deletion_removes() {
        let mut d = Directory::new(DirectoryConfig::default());
        let v1 = sdp("A", 1, 0, "239.69.1.1", GM1);
        let v2 = sdp("A", 1, 1, "239.69.1.1", GM2);
        let other = sdp("B", 2, 0, "239.69.1.2", GM1);
        d.handle(t(0.0), &announce("10.0.0.1", 10, &v1)).unwrap();
        d.handle(t(0.0), &announce("10.0.0.1", 11, &other)).unwrap();
        // Same origin, same o= session, new hash: a new version.
        assert_eq!(
            d.handle(t(5.0), &announce("10.0.0.1", 12, &v2)),
            Ok(Change::Replaced)
        );
        assert_eq!(d.sessions().len(), 2);
        let a = &d.sessions()[0];
        assert_eq!((a.hash, a.changes, a.first_heard), (12, 1, t(0.0)));
        let gm = a.stream.as_ref().unwrap().ptp_grandmaster().unwrap().0;
        assert_eq!(gm.0[5..], [0xAB, 0xCD, 0xEF]);
        // The same o= from another origin is another session.
        assert_eq!(
            d.handle(t(6.0), &announce("10.0.0.9", 12, &v2)),
            Ok(Change::New)
        );
        // Deletion by origin + hash (payload: just the o= line).
        assert_eq!(
            d.handle(
                t(7.0),
                &delete("10.0.0.1", 12, "o=- 1 1 IN IP4 10.0.0.1\r\n")
            ),
            Ok(Change::Deleted)
        );
        assert_eq!(
            d.handle(
                t(7.0),
                &delete("10.0.0.1", 12, "o=- 1 1 IN IP4 10.0.0.1\r\n")
            ),
            Ok(Change::UnknownDeletion)
        );
        let names: Vec<&str> = d.sessions().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["B", "A"]);
        let st = d.stats();
        assert_eq!(
            (st.new, st.replaced, st.deleted, st.deletions),
            (3, 1, 1, 2)
        );
    }

    #[test]
    fn hash_zero_sessions_pipewire_style() {
        // PipeWire 1.4: hash 0 and `o=root 0 0` for every session.
        let mut d = Directory::new(DirectoryConfig::default());
        let a = sdp("pw A", 0, 0, "239.69.1.1", GM1).replace("o=- ", "o=root ");
        let b = sdp("pw B", 0, 0, "239.69.1.2", GM1).replace("o=- ", "o=root ");
        d.handle(t(0.0), &announce("10.0.0.1", 0, &a)).unwrap();
        d.handle(t(0.0), &announce("10.0.0.1", 0, &b)).unwrap();
        assert_eq!(
            d.handle(t(5.0), &announce("10.0.0.1", 0, &a)),
            Ok(Change::Refreshed)
        );
        assert_eq!(d.sessions().len(), 2);
        // A grandmaster change under hash 0: a new version by its text.
        let a2 = a.replace(GM1, GM2);
        assert_eq!(
            d.handle(t(6.0), &announce("10.0.0.1", 0, &a2)),
            Ok(Change::Replaced)
        );
        assert_eq!(d.sessions().len(), 2);
        // A deletion carrying the full SDP (as PipeWire sends it).
        assert_eq!(
            d.handle(t(7.0), &delete("10.0.0.1", 0, &a2)),
            Ok(Change::Deleted)
        );
        assert_eq!(d.sessions()[0].name, "pw B");
    }

    #[test]
    fn bounded_against_a_flood_and_counts_garbage() {
        let cfg = DirectoryConfig {
            max_sessions: 16,
            ..Default::default()
        };
        let mut d = Directory::new(cfg);
        for i in 0..1000u32 {
            let s = sdp(&format!("flood {i}"), i, 0, "239.69.1.1", GM1);
            let r = d
                .handle(t(0.0), &announce("10.0.0.66", (i + 1) as u16, &s))
                .unwrap();
            assert_eq!(r, if i < 16 { Change::New } else { Change::Full });
        }
        assert_eq!(d.sessions().len(), 16);
        assert_eq!(d.stats().full, 984);
        // Listed sessions are still refreshed when full.
        let s = sdp("flood 3", 3, 0, "239.69.1.1", GM1);
        assert_eq!(
            d.handle(t(1.0), &announce("10.0.0.66", 4, &s)),
            Ok(Change::Refreshed)
        );
        // Garbage: counted by kind, the listing untouched.
        assert!(d.handle(t(1.0), b"\x00\x00").is_err());
        assert!(
            d.handle(t(1.0), b"\x22\x00\x00\x01\x0a\x00\x00\x01v=0")
                .is_err()
        );
        assert!(
            d.handle(t(1.0), b"\x20\x00\x00\x01\x0a\x00\x00\x01text/x\x00hi")
                .is_err()
        );
        let st = d.stats();
        assert_eq!(
            (
                st.malformed,
                st.encrypted_or_compressed,
                st.other_payload_type,
                st.packets
            ),
            (1, 1, 1, 1004)
        );
        assert_eq!(d.sessions().len(), 16);
    }

    #[test]
    fn find_exact_or_unique_prefix() {
        let mut d = Directory::new(DirectoryConfig::default());
        for (i, n) in ["Studio 1", "Studio 10", "Booth"].iter().enumerate() {
            let s = sdp(n, i as u32, 0, "239.69.1.1", GM1);
            d.handle(t(0.0), &announce("10.0.0.1", i as u16 + 1, &s))
                .unwrap();
        }
        let s = d.sessions();
        assert_eq!(find(s, "Studio 1").unwrap().name, "Studio 1");
        assert_eq!(find(s, "Studio 10").unwrap().name, "Studio 10");
        assert_eq!(find(s, "Bo").unwrap().name, "Booth");
        assert!(matches!(find(s, "Stu"), Err(FindError::Ambiguous(..))));
        assert_eq!(find(s, "X"), Err(FindError::NotFound("X".into())));
    }

    #[test]
    fn announcer_to_directory_in_virtual_time() {
        // Our announcer feeds our listener: listed, replaced on change,
        // removed by the deletions on stop.
        let cfg = AnnouncerConfig {
            interval: Nanos::from_secs(5),
            ..Default::default()
        };
        let mut a = Announcer::new(cfg, "10.0.0.1".parse().unwrap(), 42);
        let mut d = Directory::new(DirectoryConfig::default());
        let v1 = sdp("Tx", 99, 0, "239.69.1.1", GM1);
        let v2 = sdp("Tx", 99, 1, "239.69.1.1", GM2);
        a.set_sdp(t(0.0), &v1).unwrap();
        let mut now = t(0.0);
        let mut step = |a: &mut Announcer, d: &mut Directory, until: f64| {
            while now <= t(until) {
                for p in a.poll(now) {
                    d.handle(now, &p).unwrap();
                }
                match a.poll_timeout() {
                    Some(n) => now = n,
                    None => break,
                }
            }
        };
        step(&mut a, &mut d, 60.0);
        assert_eq!(d.sessions().len(), 1);
        let iv = d.sessions()[0].interval.unwrap().as_secs_f64();
        assert!((3.3..=6.7).contains(&iv), "{iv}");
        a.set_sdp(t(61.0), &v2).unwrap();
        step(&mut a, &mut d, 70.0);
        assert_eq!(d.sessions().len(), 1);
        assert_eq!(d.sessions()[0].sdp, v2);
        assert_eq!(d.stats().deleted, 1, "the old version's deletion");
        a.stop(t(71.0));
        step(&mut a, &mut d, 80.0);
        assert!(d.sessions().is_empty());
        assert_eq!(d.stats().deleted, 2);
    }
}
