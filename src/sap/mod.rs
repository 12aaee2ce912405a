//! SAP, the Session Announcement Protocol (RFC 2974): how AES67 streams are
//! found on a LAN. Dante, aes67-daemon and PipeWire announce their SDPs to
//! `239.255.255.255:9875`.
//!
//! Sans-IO, like the other cores: bytes and an explicit `now` ([`MonoNs`])
//! in, packets and directory changes out; no sockets, no threads, no clock
//! reads. The engine's control-plane thread (`engine::sap`) owns the socket.
//!
//! - [`codec`]: parse and build SAP packets (RFC 2974 §3);
//! - [`announcer`]: the announcement timer of one SDP (RFC 2974 §3.1):
//!   interval with ±1/3 jitter, a new message id hash and a deletion when the
//!   SDP changes, deletions on a clean stop;
//! - [`directory`]: the listener's table of sessions heard (RFC 2974 §3.2),
//!   keyed by origin and message id hash, with deletions and timeouts, bounded
//!   against a LAN attacker.
//!
//! [`MonoNs`]: crate::units::MonoNs
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

pub mod announcer;
pub mod codec;
pub mod directory;

pub use announcer::{Announcer, AnnouncerConfig};
pub use codec::{MessageType, SapError, SapPacket};
pub use directory::{Change, Directory, DirectoryConfig, DirectoryStats, Session};

/// The SAP UDP port (RFC 2974 §3: "MUST be 9875").
pub const SAP_PORT: u16 = 9875;

/// The SAP group of the administratively scoped range 239.255.0.0/16: its
/// highest address (RFC 2974 §3, RFC 2365). AES67 devices use it.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 255);

/// Largest SAP datagram accepted or built, bytes. RFC 2974 §6 asks for
/// announcements under 1 KB; 4 KiB leaves room for multi-stream SDPs and
/// bounds what a LAN attacker can make a listener store per session.
pub const MAX_PACKET: usize = 4096;
