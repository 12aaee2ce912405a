//! Stream description: an `aes67://` URL or an SDP file (RFC 4566, RFC 7273,
//! AES67-2018 §8) becomes one [`StreamConfig`].
//!
//! Errors name the field at fault, e.g. `invalid channel count 0 in ch=0`.

use std::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

/// Default RTP port for AES67 streams (AES67-2018 §8.3 convention).
pub const DEFAULT_PORT: u16 = 5004;
/// Default dynamic payload type.
pub const DEFAULT_PT: u8 = 96;
/// Default jitter allowance, ms (the seeds' add-on default).
pub const DEFAULT_JITTER_MS: u32 = 10;

/// Linear PCM payload encoding (AES67-2018 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Encoding {
    /// 16-bit big-endian (RFC 3551 §4.5.11).
    L16,
    /// 24-bit big-endian (RFC 3190 §4).
    L24,
}

impl Encoding {
    /// Bytes per sample on the wire: 2 or 3.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Encoding::L16 => 2,
            Encoding::L24 => 3,
        }
    }
    /// Bits per sample: 16 or 24.
    pub fn bits(self) -> u16 {
        (self.bytes_per_sample() * 8) as u16
    }
    /// The encoding name used in SDP rtpmap and URLs.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::L16 => "L16",
            Encoding::L24 => "L24",
        }
    }
}

/// Everything needed to receive one AES67 stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamConfig {
    /// Destination address: a multicast group or a local unicast address.
    pub dest: IpAddr,
    /// Destination UDP port.
    pub port: u16,
    /// Interface to join on: an interface name (`eth0`) or a local IPv4 address.
    pub iface: Option<String>,
    /// Source address for a source-specific join (RFC 4570 source-filter / `source=`).
    pub source: Option<Ipv4Addr>,
    /// RTP payload type expected; other payload types are counted and dropped.
    pub payload_type: u8,
    /// Channels per frame, 1-64.
    pub channels: u16,
    /// Media clock rate, Hz: 44100, 48000 or 96000.
    pub sample_rate: u32,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Jitter allowance, ms (the seeds' `jitter=`).
    pub jitter_ms: u32,
    /// Packet time from SDP `a=ptime`, µs, if known. Receivers accept any size.
    pub packet_time_us: Option<u32>,
    /// `a=mediaclk:direct=<offset>` (RFC 7273 §5.2): RTP ts = media clock + offset.
    pub mediaclk_offset: Option<u32>,
    /// `a=ts-refclk` value (RFC 7273 §4), e.g. `ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0`.
    pub ts_refclk: Option<String>,
    /// Multicast TTL from the SDP `c=` line.
    pub ttl: Option<u8>,
    /// Session name (SDP `s=`), if any.
    pub name: Option<String>,
}

/// A URL or SDP that cannot be used. Every variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A field has an unusable value: `{what} in {field}={value}`.
    #[error("{what} in {field}={value}")]
    Invalid {
        /// What is wrong, e.g. `invalid channel count 0`.
        what: String,
        /// The field (URL parameter or SDP line/attribute).
        field: String,
        /// The value as given.
        value: String,
    },
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(String),
    /// The text is not a URL / SDP at all.
    #[error("{0}")]
    Syntax(String),
}

/// The longest stream URL accepted, in bytes: a stream URL with every
/// parameter is under 300 bytes, so this is only a bound on the parsers' work.
pub const MAX_URL_BYTES: usize = 2048;

/// Whether `s` (after leading whitespace) starts `aes67://`, in any case
/// (RFC 3986 §3.1: schemes are case-insensitive).
pub fn has_aes67_scheme(s: &str) -> bool {
    let b = s.trim_start().as_bytes();
    b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"aes67://")
}

/// Refuses, without parsing, a URL over [`MAX_URL_BYTES`] or one whose scheme
/// is not `aes67` (case-insensitive, RFC 3986 §3.1).
///
/// Errors: [`ConfigError::Invalid`] naming `url` (with the length) or `scheme`.
pub fn check_url_shape(s: &str) -> Result<(), ConfigError> {
    let t = s.trim();
    if t.len() > MAX_URL_BYTES {
        return Err(invalid(
            format!("URL longer than {MAX_URL_BYTES} bytes"),
            "url",
            &format!("{} bytes", t.len()),
        ));
    }
    if !has_aes67_scheme(t) {
        let scheme = t.split(':').next().unwrap_or("");
        let scheme: String = scheme.chars().take(32).collect();
        return Err(invalid(
            "unsupported scheme (expected aes67://)",
            "scheme",
            &scheme,
        ));
    }
    Ok(())
}

fn invalid(what: impl Into<String>, field: &str, value: &str) -> ConfigError {
    ConfigError::Invalid {
        what: what.into(),
        field: field.into(),
        value: value.into(),
    }
}

impl StreamConfig {
    /// A config for `dest:port` with all defaults (L24, 2 ch, 48 kHz, pt 96).
    pub fn new(dest: IpAddr, port: u16) -> StreamConfig {
        StreamConfig {
            dest,
            port,
            iface: None,
            source: None,
            payload_type: DEFAULT_PT,
            channels: 2,
            sample_rate: 48_000,
            encoding: Encoding::L24,
            jitter_ms: DEFAULT_JITTER_MS,
            packet_time_us: None,
            mediaclk_offset: None,
            ts_refclk: None,
            ttl: None,
            name: None,
        }
    }

    /// The PTP grandmaster and domain named by `a=ts-refclk`
    /// (`ptp=IEEE1588-2008:<EUI-64 as 8 hex pairs>:<domain>`, RFC 7273 §4.8;
    /// also IEEE1588-2002/2019); `None` for other clocks, `traceable`, or a
    /// malformed value. Used as the PTP acceptable-master list (IEEE
    /// 1588-2019 §17.6) of a receiver.
    pub fn ptp_grandmaster(&self) -> Option<(crate::ptp::msg::ClockIdentity, u8)> {
        let v = self.ts_refclk.as_deref()?.strip_prefix("ptp=")?;
        let mut it = v.split(':');
        let _version = it.next().filter(|x| x.starts_with("IEEE1588-"))?;
        let gm = it.next()?;
        let domain = match it.next() {
            Some(d) => d.trim().parse::<u8>().ok().filter(|d| *d <= 127)?,
            None => 0,
        };
        let parts: Vec<&str> = gm.trim().split('-').collect();
        if parts.len() != 8 {
            return None;
        }
        let mut id = [0u8; 8];
        for (b, p) in id.iter_mut().zip(parts) {
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        Some((crate::ptp::msg::ClockIdentity(id), domain))
    }

    /// Bytes per frame on the wire (channels × bytes per sample).
    pub fn frame_bytes(&self) -> usize {
        self.channels as usize * self.encoding.bytes_per_sample()
    }

    /// Parses `aes67://GROUP[:PORT][?iface=IP|NAME&pt=N&jitter=MS&ch=N&rate=HZ&enc=L24|L16&source=IP]`.
    ///
    /// Aliases (the seeds' add-on): `interface`, `payload`, `channels`,
    /// `samplerate`. Defaults: port 5004, pt 96, jitter 10 ms, 2 ch, 48000 Hz, L24.
    ///
    /// Errors: [`ConfigError`] naming the parameter, e.g.
    /// `invalid channel count 0 in ch=0`; unknown parameters are errors; a
    /// URL over [`MAX_URL_BYTES`] or of another scheme is refused before it
    /// is parsed (a general URL parser's work, e.g. IDNA on a long `http:`
    /// host, grows faster than the length).
    pub fn from_url(s: &str) -> Result<StreamConfig, ConfigError> {
        check_url_shape(s)?;
        let url = url::Url::parse(s.trim())
            .map_err(|e| ConfigError::Syntax(format!("invalid URL {s:?}: {e}")))?;
        // check_url_shape has refused every other scheme.
        let dest: IpAddr = match url.host() {
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
            // Non-special schemes carry opaque hosts: parse the IP ourselves.
            Some(url::Host::Domain(d)) => d
                .parse()
                .map_err(|_| invalid("not an IP address", "group", d))?,
            None => {
                return Err(ConfigError::Missing(
                    "group address (aes67://GROUP:PORT)".into(),
                ));
            }
        };
        let port = url.port().unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(invalid("invalid port 0", "port", "0"));
        }
        let mut c = StreamConfig::new(dest, port);
        for (k, v) in url.query_pairs() {
            let (k, v) = (k.as_ref(), v.as_ref());
            match k {
                "iface" | "interface" => {
                    if v.is_empty() {
                        return Err(invalid("empty interface", k, v));
                    }
                    c.iface = Some(v.to_string());
                }
                "pt" | "payload" => c.payload_type = parse_num(k, v, "payload type", 0, 127)? as u8,
                "jitter" => c.jitter_ms = parse_num(k, v, "jitter", 0, 10_000)? as u32,
                "ch" | "channels" => c.channels = parse_num(k, v, "channel count", 1, 64)? as u16,
                "rate" | "samplerate" => c.sample_rate = parse_rate(k, v)?,
                "enc" | "encoding" => c.encoding = parse_enc(k, v)?,
                "source" => {
                    c.source = Some(
                        v.parse()
                            .map_err(|_| invalid("invalid source IPv4 address", k, v))?,
                    )
                }
                _ => return Err(invalid("unknown parameter", k, v)),
            }
        }
        Ok(c)
    }

    /// Parses an SDP session description (RFC 4566) for its first audio
    /// `RTP/AVP` media: `c=` (with TTL), `m=` port and payload type,
    /// `a=rtpmap`, `a=ptime`, `a=ts-refclk`, `a=mediaclk:direct=` (RFC 7273),
    /// `a=source-filter` (RFC 4570).
    ///
    /// Errors: [`ConfigError`] naming the line or attribute at fault.
    pub fn from_sdp(text: &str) -> Result<StreamConfig, ConfigError> {
        let sdp = sdp_types::Session::parse(text.as_bytes())
            .map_err(|e| ConfigError::Syntax(format!("invalid SDP: {e}")))?;
        let media = sdp
            .medias
            .iter()
            .find(|m| m.media == "audio")
            .ok_or_else(|| ConfigError::Missing("audio media (m=audio)".into()))?;
        if !media.proto.starts_with("RTP/AVP") {
            return Err(invalid(
                "unsupported transport",
                "m=audio proto",
                &media.proto,
            ));
        }
        let pt_str = media.fmt.split_whitespace().next().unwrap_or("");
        let pt = parse_num("m=audio fmt", pt_str, "payload type", 0, 127)? as u8;
        let conn = media
            .connections
            .first()
            .or(sdp.connection.as_ref())
            .ok_or_else(|| ConfigError::Missing("connection (c=)".into()))?;
        let mut addr_parts = conn.connection_address.split('/');
        let addr_s = addr_parts.next().unwrap_or("");
        let dest: IpAddr = addr_s
            .parse()
            .map_err(|_| invalid("invalid address", "c", &conn.connection_address))?;
        let ttl = match addr_parts.next() {
            Some(t) if dest.is_ipv4() => Some(parse_num("c", t, "invalid TTL", 0, 255)? as u8),
            _ => None,
        };
        if media.port == 0 {
            return Err(invalid("invalid port 0", "m=audio port", "0"));
        }
        let mut c = StreamConfig::new(dest, media.port);
        c.payload_type = pt;
        c.ttl = ttl;
        c.name = Some(sdp.session_name.clone()).filter(|s| !s.trim().is_empty() && s != "-");
        let attrs = media.attributes.iter().chain(sdp.attributes.iter());
        let mut have_rtpmap = false;
        for a in attrs {
            let v = a.value.as_deref().unwrap_or("").trim();
            match a.attribute.as_str() {
                "rtpmap" if !have_rtpmap => {
                    let (p, rest) = v
                        .split_once(' ')
                        .ok_or_else(|| invalid("malformed rtpmap", "a=rtpmap", v))?;
                    if p.trim() != pt_str {
                        continue;
                    }
                    have_rtpmap = true;
                    let mut it = rest.trim().split('/');
                    c.encoding = parse_enc("a=rtpmap", it.next().unwrap_or(""))?;
                    c.sample_rate = parse_rate("a=rtpmap", it.next().unwrap_or(""))?;
                    c.channels = match it.next() {
                        Some(ch) => parse_num("a=rtpmap", ch, "channel count", 1, 64)? as u16,
                        None => 1, // RFC 4566 §6: channels default to 1
                    };
                }
                "ptime" => {
                    let ms: f64 = v
                        .parse()
                        .map_err(|_| invalid("invalid packet time", "a=ptime", v))?;
                    if !(0.1..=20.0).contains(&ms) {
                        return Err(invalid("packet time out of range 0.1-20 ms", "a=ptime", v));
                    }
                    c.packet_time_us = Some((ms * 1000.0).round() as u32);
                }
                "ts-refclk" if c.ts_refclk.is_none() => c.ts_refclk = Some(v.to_string()),
                "mediaclk" => {
                    let first = v.split_whitespace().next().unwrap_or("");
                    if let Some(off) = first.strip_prefix("direct=") {
                        c.mediaclk_offset = Some(
                            off.parse()
                                .map_err(|_| invalid("invalid direct offset", "a=mediaclk", v))?,
                        );
                    } else if first == "direct" {
                        c.mediaclk_offset = Some(0);
                    } else {
                        return Err(invalid(
                            "unsupported media clock (only direct)",
                            "a=mediaclk",
                            v,
                        ));
                    }
                }
                "source-filter" => {
                    // " incl IN IP4 <dest> <src...>"
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.len() >= 5 && f[0] == "incl" && f[2] == "IP4" {
                        c.source = Some(f[4].parse().map_err(|_| {
                            invalid("invalid source address", "a=source-filter", v)
                        })?);
                    }
                }
                _ => {}
            }
        }
        if !have_rtpmap {
            return Err(ConfigError::Missing(format!(
                "a=rtpmap for payload type {pt}"
            )));
        }
        Ok(c)
    }

    /// Writes an SDP description of this stream as sent from `origin`
    /// (RFC 4566; AES67-2018 §8.5 attributes).
    pub fn to_sdp(&self, origin: IpAddr, session_id: u64) -> String {
        let ipv = if origin.is_ipv4() { "IP4" } else { "IP6" };
        let ttl = if self.dest.is_multicast() {
            format!("/{}", self.ttl.unwrap_or(32))
        } else {
            String::new()
        };
        let mut s = format!(
            "v=0\r\no=- {session_id} 0 IN {ipv} {origin}\r\ns={}\r\nc=IN {ipv} {}{ttl}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n\
             a=rtpmap:{} {}/{}/{}\r\n",
            self.name.as_deref().unwrap_or("aes67"),
            self.dest,
            self.port,
            self.payload_type,
            self.payload_type,
            self.encoding.name(),
            self.sample_rate,
            self.channels
        );
        if let Some(p) = self.packet_time_us {
            s += &format!("a=ptime:{}\r\n", p as f64 / 1000.0);
        }
        if let Some(r) = &self.ts_refclk {
            s += &format!("a=ts-refclk:{r}\r\n");
        }
        if let Some(o) = self.mediaclk_offset {
            s += &format!("a=mediaclk:direct={o}\r\n");
        }
        s += "a=recvonly\r\n";
        s
    }
}

fn parse_num(field: &str, v: &str, what: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| invalid(format!("invalid {what} {v:?}"), field, v))?;
    if n < min || n > max {
        return Err(invalid(
            format!("invalid {what} {n} (allowed {min}-{max})"),
            field,
            v,
        ));
    }
    Ok(n)
}

fn parse_rate(field: &str, v: &str) -> Result<u32, ConfigError> {
    match v.trim().parse::<u32>() {
        Ok(r @ (44_100 | 48_000 | 96_000)) => Ok(r),
        _ => Err(invalid(
            format!("invalid sample rate {v:?} (allowed 44100, 48000, 96000)"),
            field,
            v,
        )),
    }
}

fn parse_enc(field: &str, v: &str) -> Result<Encoding, ConfigError> {
    match v.trim().to_ascii_uppercase().as_str() {
        "L24" => Ok(Encoding::L24),
        "L16" => Ok(Encoding::L16),
        _ => Err(invalid(
            format!("unsupported encoding {v:?} (allowed L24, L16)"),
            field,
            v,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_defaults_and_aliases() {
        let c = StreamConfig::from_url("aes67://239.192.76.52").unwrap();
        assert_eq!(
            (
                c.port,
                c.payload_type,
                c.channels,
                c.sample_rate,
                c.encoding,
                c.jitter_ms
            ),
            (5004, 96, 2, 48000, Encoding::L24, 10)
        );
        let c = StreamConfig::from_url(
            "aes67://239.69.1.2:5006?interface=eth1&payload=97&channels=8&samplerate=96000&jitter=4&enc=l16&source=10.0.0.9",
        )
        .unwrap();
        assert_eq!(c.iface.as_deref(), Some("eth1"));
        assert_eq!(
            (
                c.port,
                c.payload_type,
                c.channels,
                c.sample_rate,
                c.jitter_ms
            ),
            (5006, 97, 8, 96000, 4)
        );
        assert_eq!(c.encoding, Encoding::L16);
        assert_eq!(c.source, Some(Ipv4Addr::new(10, 0, 0, 9)));
    }

    #[test]
    fn url_errors_name_the_field() {
        let e = StreamConfig::from_url("aes67://239.1.1.1?ch=0")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid channel count 0 (allowed 1-64) in ch=0");
        let e = StreamConfig::from_url("aes67://239.1.1.1?rate=22050")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("in rate=22050"), "{e}");
        let e = StreamConfig::from_url("aes67://239.1.1.1?bogus=1")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unknown parameter in bogus=1");
        let e = StreamConfig::from_url("http://239.1.1.1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheme=http"), "{e}");
        // Refused before a URL parser sees them: an overlong URL (named, with
        // its length) and another scheme's IDNA host (punycode decoding is
        // quadratic in the label's length).
        let long = format!("aes67://239.1.1.1?iface={}", "e".repeat(MAX_URL_BYTES));
        let e = StreamConfig::from_url(&long).unwrap_err().to_string();
        assert!(e.contains(&format!("url={} bytes", long.len())), "{e}");
        let idna = format!("http://xn--{}", "c".repeat(1500));
        let e = StreamConfig::from_url(&idna).unwrap_err().to_string();
        assert!(e.contains("scheme=http"), "{e}");
        assert!(
            StreamConfig::from_url(&format!("AES67://239.1.1.1?iface={}", "e".repeat(100))).is_ok()
        );
        assert!(
            StreamConfig::from_url("aes67://host.example")
                .unwrap_err()
                .to_string()
                .contains("group=host.example")
        );
        assert!(
            StreamConfig::from_url("aes67://239.1.1.1?enc=L32")
                .unwrap_err()
                .to_string()
                .contains("enc=L32")
        );
    }

    const SDP: &str = "v=0\r\no=- 1311738121 1311738121 IN IP4 192.168.1.1\r\ns=Stage left\r\n\
        c=IN IP4 239.69.1.1/32\r\nt=0 0\r\nm=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L24/48000/8\r\n\
        a=ptime:0.125\r\na=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0\r\n\
        a=mediaclk:direct=142410716\r\na=source-filter: incl IN IP4 239.69.1.1 192.168.1.1\r\na=recvonly\r\n";

    #[test]
    fn sdp_full_aes67_session() {
        let c = StreamConfig::from_sdp(SDP).unwrap();
        assert_eq!(c.dest, "239.69.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (
                c.port,
                c.payload_type,
                c.channels,
                c.sample_rate,
                c.encoding
            ),
            (5004, 96, 8, 48000, Encoding::L24)
        );
        assert_eq!(c.ttl, Some(32));
        assert_eq!(c.packet_time_us, Some(125));
        assert_eq!(c.mediaclk_offset, Some(142410716));
        assert_eq!(
            c.ts_refclk.as_deref(),
            Some("ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0")
        );
        assert_eq!(c.source, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(c.name.as_deref(), Some("Stage left"));
        assert_eq!(
            c.ptp_grandmaster(),
            Some((
                crate::ptp::msg::ClockIdentity([0x00, 0x1D, 0xC1, 0xFF, 0xFE, 0x12, 0x34, 0x56]),
                0
            ))
        );
        let mut c = c;
        for bad in [
            "ptp=IEEE1588-2008:traceable",
            "ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34:0",
            "ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:200",
            "ntp=/traceable/",
        ] {
            c.ts_refclk = Some(bad.into());
            assert_eq!(c.ptp_grandmaster(), None, "{bad}");
        }
    }

    #[test]
    fn sdp_round_trip_through_to_sdp() {
        let c = StreamConfig::from_sdp(SDP).unwrap();
        let again = StreamConfig::from_sdp(&c.to_sdp("192.168.1.1".parse().unwrap(), 7)).unwrap();
        assert_eq!(
            StreamConfig {
                source: c.source,
                ..again
            },
            c
        );
    }

    #[test]
    fn sdp_44k1_ptime_and_errors() {
        let s = SDP
            .replace("L24/48000/8", "L16/44100/2")
            .replace("0.125", "1.08843537");
        let c = StreamConfig::from_sdp(&s).unwrap();
        assert_eq!(
            (c.sample_rate, c.encoding, c.packet_time_us),
            (44100, Encoding::L16, Some(1088))
        );
        let e = StreamConfig::from_sdp(&SDP.replace("L24/48000/8", "L24/48000/0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a=rtpmap"), "{e}");
        let e = StreamConfig::from_sdp(&SDP.replace("rtpmap:96", "rtpmap:97"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rtpmap for payload type 96"), "{e}");
        assert!(StreamConfig::from_sdp("garbage").is_err());
    }
}
