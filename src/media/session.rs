//! What a sender announces and how it packetises: the sender's SDP
//! (RFC 4566, RFC 7273, RFC 4570, AES67-2018 §8, ST 2110-30 §6), the
//! packet size for a packet time (AES67-2018 §7.2), the 1440-byte payload
//! limit (AES67-2023 §6.3), and the SDP version that follows the
//! grandmaster.
//!
//! Sans-IO: values in, text and errors out.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::media::stream::{Encoding, StreamConfig};
use crate::ptp::msg::ClockIdentity;

/// Largest RTP payload, bytes: 1500-byte MTU less IP, UDP and RTP headers
/// (AES67-2023 §6.3).
pub const MAX_PAYLOAD_BYTES: usize = 1440;
/// Shortest packet time, µs (AES67-2018 §7.2: 125 µs).
pub const MIN_PACKET_TIME_US: u32 = 125;
/// Longest packet time, µs (5 ms: Livewire "standard" streams).
pub const MAX_PACKET_TIME_US: u32 = 5000;

/// The reference clock of the sender's RTP timestamps (RFC 7273 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefClock {
    /// A PTP grandmaster (IEEE 1588-2008 profile naming, as AES67-2018 §8.2
    /// and ST 2110-10 §8.2 require) and its domain:
    /// `ptp=IEEE1588-2008:<EUI-64 upper-case, dash-separated>:<domain>`.
    Ptp {
        /// grandmasterIdentity.
        gm: ClockIdentity,
        /// domainNumber, 0-127.
        domain: u8,
    },
    /// The sender's own free-running clock, named by its interface's MAC
    /// (RFC 7273 §4.8 `localmac=`, upper-case dash-separated).
    LocalMac([u8; 6]),
}

impl RefClock {
    /// The `a=ts-refclk` value, e.g. `ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0`
    /// or `localmac=00-1D-C1-12-34-56`.
    pub fn value(&self) -> String {
        fn hex(b: &[u8]) -> String {
            b.iter()
                .map(|x| format!("{x:02X}"))
                .collect::<Vec<_>>()
                .join("-")
        }
        match self {
            RefClock::Ptp { gm, domain } => format!("ptp=IEEE1588-2008:{}:{domain}", hex(&gm.0)),
            RefClock::LocalMac(m) => format!("localmac={}", hex(m)),
        }
    }
}

/// A sender's session description (RFC 4566 §5), rendered by [`Self::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderSdp {
    /// The stream: destination (`c=`), port and payload type (`m=`), rtpmap,
    /// TTL (`c=` `/ttl`, default 32), `s=` name (default `aes67`).
    pub stream: StreamConfig,
    /// Frames per packet (see [`packet_frames`]); gives `ptime`/`maxptime`.
    pub frames: u32,
    /// The sender's own address: `o=` and the `source-filter` source.
    pub origin: Ipv4Addr,
    /// `o=` sess-id (RFC 4566 §5.2: an NTP-format timestamp is suggested).
    pub session_id: u64,
    /// `o=` sess-version; bump it with every change ([`SdpVersion`]).
    pub version: u64,
    /// `a=ts-refclk` (media level, ST 2110-10 §8.2).
    pub refclk: RefClock,
    /// `a=mediaclk:direct=<offset>` (RFC 7273 §5.2).
    pub mediaclk_offset: u32,
    /// `a=fmtp:<pt> channel-order=<value>` (ST 2110-30 §6.2.2), e.g.
    /// `SMPTE2110.(ST)`, if given.
    pub channel_order: Option<String>,
}

/// Formats a packet time in ms with a `.` decimal point whatever the
/// locale, and at most 8 decimals, trailing zeros trimmed: `0.125`, `1`,
/// `1.08843537` (48 frames at 44.1 kHz), `5`.
pub fn format_ptime_ms(frames: u32, rate: u32) -> String {
    // Integer arithmetic: ms × 10^8, rounded.
    let scaled = (frames as u128 * 100_000_000_000 + rate as u128 / 2) / rate.max(1) as u128;
    let (int, frac) = (scaled / 100_000_000, scaled % 100_000_000);
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:08}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

impl SenderSdp {
    /// The SDP text, CRLF line ends, attributes at media level:
    /// `v o s c t m`, then `a=rtpmap`, `a=fmtp` (if a channel order is
    /// given), `a=ptime`, `a=maxptime`, `a=ts-refclk`, `a=mediaclk`,
    /// `a=source-filter` (multicast only, RFC 4570 §3), `a=recvonly`.
    pub fn render(&self) -> String {
        let c = &self.stream;
        let mut s = String::with_capacity(512);
        let ptime = format_ptime_ms(self.frames, c.sample_rate);
        let name = c.name.as_deref().filter(|n| !n.trim().is_empty());
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "v=0\r\no=- {} {} IN IP4 {}\r\ns={}\r\n",
            self.session_id,
            self.version,
            self.origin,
            name.unwrap_or("aes67")
        );
        if c.dest.is_multicast() {
            let _ = write!(s, "c=IN IP4 {}/{}\r\n", c.dest, c.ttl.unwrap_or(32));
        } else {
            let _ = write!(s, "c=IN IP4 {}\r\n", c.dest);
        }
        let pt = c.payload_type;
        let _ = write!(
            s,
            "t=0 0\r\nm=audio {} RTP/AVP {pt}\r\na=rtpmap:{pt} {}/{}/{}\r\n",
            c.port,
            c.encoding.name(),
            c.sample_rate,
            c.channels
        );
        if let Some(o) = &self.channel_order {
            let _ = write!(s, "a=fmtp:{pt} channel-order={o}\r\n");
        }
        let _ = write!(
            s,
            "a=ptime:{ptime}\r\na=maxptime:{ptime}\r\na=ts-refclk:{}\r\na=mediaclk:direct={}\r\n",
            self.refclk.value(),
            self.mediaclk_offset
        );
        if c.dest.is_multicast() {
            let _ = write!(
                s,
                "a=source-filter: incl IN IP4 {} {}\r\n",
                c.dest, self.origin
            );
        }
        s += "a=recvonly\r\n";
        s
    }
}

/// The `o=` sess-version, bumped when the reference clock (the grandmaster)
/// changes, so that receivers and SAP listeners see a new description
/// (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpVersion {
    version: u64,
    refclk: RefClock,
}

impl SdpVersion {
    /// Version `start` for `refclk`.
    pub fn new(start: u64, refclk: RefClock) -> SdpVersion {
        SdpVersion {
            version: start,
            refclk,
        }
    }
    /// The current version.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The current reference clock.
    pub fn refclk(&self) -> RefClock {
        self.refclk
    }
    /// Notes the reference clock now in use; returns `true` (and bumps the
    /// version) when it differs from the last one.
    pub fn observe(&mut self, refclk: RefClock) -> bool {
        if refclk == self.refclk {
            return false;
        }
        self.refclk = refclk;
        self.version += 1;
        true
    }
}

/// A sender format that cannot be sent. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The packet time is outside 125-5000 µs.
    #[error(
        "invalid packet time {0} µs in --packet-time-us (allowed {MIN_PACKET_TIME_US}-{MAX_PACKET_TIME_US})"
    )]
    PacketTime(u32),
    /// The payload would exceed [`MAX_PAYLOAD_BYTES`].
    #[error(
        "payload of {bytes} bytes is over {MAX_PAYLOAD_BYTES} (AES67-2023 §6.3) in ch={channels}: \
         at most {fit} channels of {enc} fit in {frames} frames per packet"
    )]
    PayloadTooBig {
        /// Payload bytes asked for.
        bytes: usize,
        /// Channels asked for.
        channels: u16,
        /// Most channels that fit.
        fit: usize,
        /// Encoding name.
        enc: &'static str,
        /// Frames per packet.
        frames: u32,
    },
}

/// Frames per packet for a packet time of `packet_time_us` at `rate` Hz
/// (AES67-2018 §7.2). Packet times are defined in 48 kHz samples, so at
/// 44.1 kHz a packet carries the 48 kHz count (1 ms = 48 frames, signalled
/// `ptime:1.08843537`); at 48 and 96 kHz it is `rate × time`, rounded.
pub fn packet_frames(rate: u32, packet_time_us: u32) -> u32 {
    let base = if rate == 44_100 { 48_000 } else { rate };
    ((base as u64 * packet_time_us as u64 + 500_000) / 1_000_000).max(1) as u32
}

/// Checks a stream's packet time (µs) and payload size; returns frames per
/// packet. Errors: [`FormatError`] naming the field, and how many channels
/// fit when the payload is over 1440 bytes.
pub fn check_format(c: &StreamConfig, packet_time_us: u32) -> Result<u32, FormatError> {
    if !(MIN_PACKET_TIME_US..=MAX_PACKET_TIME_US).contains(&packet_time_us) {
        return Err(FormatError::PacketTime(packet_time_us));
    }
    let frames = packet_frames(c.sample_rate, packet_time_us);
    let bytes = frames as usize * c.frame_bytes();
    if bytes > MAX_PAYLOAD_BYTES {
        let per_ch = frames as usize * c.encoding.bytes_per_sample();
        return Err(FormatError::PayloadTooBig {
            bytes,
            channels: c.channels,
            fit: MAX_PAYLOAD_BYTES / per_ch,
            enc: match c.encoding {
                Encoding::L16 => "L16",
                Encoding::L24 => "L24",
            },
            frames,
        });
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(refclk: RefClock) -> SenderSdp {
        let mut c = StreamConfig::new("239.69.1.1".parse().unwrap(), 5004);
        c.name = Some("Studio A".into());
        c.ttl = Some(16);
        SenderSdp {
            stream: c,
            frames: 48,
            origin: Ipv4Addr::new(10, 0, 0, 5),
            session_id: 42,
            version: 3,
            refclk,
            mediaclk_offset: 1234,
            channel_order: Some("SMPTE2110.(ST)".into()),
        }
    }

    #[test]
    fn renders_every_aes67_line_at_media_level() {
        let gm = ClockIdentity([0x00, 0x1d, 0xc1, 0xff, 0xfe, 0x12, 0xab, 0x56]);
        let s = sdp(RefClock::Ptp { gm, domain: 5 }).render();
        assert_eq!(
            s,
            "v=0\r\no=- 42 3 IN IP4 10.0.0.5\r\ns=Studio A\r\nc=IN IP4 239.69.1.1/16\r\nt=0 0\r\n\
             m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L24/48000/2\r\na=fmtp:96 channel-order=SMPTE2110.(ST)\r\n\
             a=ptime:1\r\na=maxptime:1\r\na=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-AB-56:5\r\n\
             a=mediaclk:direct=1234\r\na=source-filter: incl IN IP4 239.69.1.1 10.0.0.5\r\na=recvonly\r\n"
        );
        // It parses back into the same stream.
        let back = StreamConfig::from_sdp(&s).unwrap();
        assert_eq!(back.ptp_grandmaster(), Some((gm, 5)));
        assert_eq!(back.source, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(
            (back.packet_time_us, back.mediaclk_offset, back.ttl),
            (Some(1000), Some(1234), Some(16))
        );
        let l = sdp(RefClock::LocalMac([0x02, 0xab, 0, 1, 2, 3])).render();
        assert!(
            l.contains("\r\na=ts-refclk:localmac=02-AB-00-01-02-03\r\n"),
            "{l}"
        );
    }

    #[test]
    fn ptime_is_locale_independent_ms() {
        assert_eq!(format_ptime_ms(6, 48_000), "0.125");
        assert_eq!(format_ptime_ms(48, 48_000), "1");
        assert_eq!(format_ptime_ms(48, 44_100), "1.08843537");
        assert_eq!(format_ptime_ms(240, 48_000), "5");
        assert_eq!(format_ptime_ms(16, 48_000), "0.33333333");
        assert_eq!(format_ptime_ms(12, 96_000), "0.125");
    }

    #[test]
    fn packet_frames_and_payload_limit() {
        assert_eq!(packet_frames(48_000, 1000), 48);
        assert_eq!(packet_frames(44_100, 1000), 48);
        assert_eq!(packet_frames(96_000, 125), 12);
        assert_eq!(packet_frames(48_000, 333), 16);
        let mut c = StreamConfig::new("239.1.1.1".parse().unwrap(), 5004);
        c.channels = 10;
        assert_eq!(check_format(&c, 1000), Ok(48));
        c.channels = 11;
        let e = check_format(&c, 1000).unwrap_err().to_string();
        assert!(
            e.contains("in ch=11") && e.contains("at most 10 channels"),
            "{e}"
        );
        c.channels = 64;
        assert_eq!(check_format(&c, 125), Ok(6));
        c.encoding = Encoding::L16;
        let e = check_format(&c, 5000).unwrap_err().to_string();
        assert!(e.contains("at most 3 channels of L16"), "{e}");
        let e = check_format(&c, 100).unwrap_err().to_string();
        assert!(e.contains("--packet-time-us"), "{e}");
        assert!(check_format(&c, 5001).is_err());
    }

    #[test]
    fn version_bumps_only_when_the_grandmaster_changes() {
        let a = RefClock::Ptp {
            gm: ClockIdentity([1; 8]),
            domain: 0,
        };
        let b = RefClock::Ptp {
            gm: ClockIdentity([2; 8]),
            domain: 0,
        };
        let mut v = SdpVersion::new(7, a);
        assert!(!v.observe(a));
        assert_eq!(v.version(), 7);
        assert!(v.observe(b));
        assert_eq!((v.version(), v.refclk()), (8, b));
        assert!(!v.observe(b));
        assert!(v.observe(a));
        assert_eq!(v.version(), 9);
    }
}
