//! PTP message parse and serialize (IEEE 1588-2019 §13).
//!
//! Supported: Sync, Delay_Req, Follow_Up, Delay_Resp, Announce and Signaling
//! (parse and serialize); Pdelay_Req, Pdelay_Resp and Pdelay_Resp_Follow_Up
//! (parse and serialize, not used by the E2E port). Management messages are
//! recognised and reported as [`MsgError::Unsupported`].
//!
//! Parsing never panics: every length is checked, and malformed input gives a
//! [`MsgError`].

use super::time::PtpTimestamp;

/// Length of the common header (§13.3.1).
pub const HEADER_LEN: usize = 34;

/// messageType values (§13.3.2.2, Table 36).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Sync = 0x0,
    DelayReq = 0x1,
    PdelayReq = 0x2,
    PdelayResp = 0x3,
    FollowUp = 0x8,
    DelayResp = 0x9,
    PdelayRespFollowUp = 0xA,
    Announce = 0xB,
    Signaling = 0xC,
    Management = 0xD,
}

impl MessageType {
    fn from_nibble(n: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match n {
            0x0 => Sync,
            0x1 => DelayReq,
            0x2 => PdelayReq,
            0x3 => PdelayResp,
            0x8 => FollowUp,
            0x9 => DelayResp,
            0xA => PdelayRespFollowUp,
            0xB => Announce,
            0xC => Signaling,
            0xD => Management,
            _ => return None,
        })
    }
    /// Event messages are timestamped and go to UDP port 319 (§7.3.1).
    pub fn is_event(self) -> bool {
        (self as u8) < 8
    }
    /// controlField value (§13.3.2.13, Table 42), kept for PTPv1 hardware.
    fn control_field(self) -> u8 {
        match self {
            MessageType::Sync => 0,
            MessageType::DelayReq => 1,
            MessageType::FollowUp => 2,
            MessageType::DelayResp => 3,
            MessageType::Management => 4,
            _ => 5,
        }
    }
}

/// A clockIdentity (§5.3.4): 8 octets, usually EUI-64 from the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClockIdentity(pub [u8; 8]);

impl ClockIdentity {
    /// EUI-48 → EUI-64 by inserting `ff:fe` in the middle (§7.5.2.2.2).
    pub fn from_mac(mac: [u8; 6]) -> ClockIdentity {
        ClockIdentity([mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
    }
}

impl std::fmt::Display for ClockIdentity {
    /// 16 lower-case hex digits, as in the seeds' status string.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ClockIdentity {
    type Err = String;
    /// 16 hex digits, optionally grouped by `-`, `:` or `.` (e.g.
    /// `001dc1fffe123456`, `00-1D-C1-FF-FE-12-34-56`, ptp4l's
    /// `001dc1.fffe.123456`).
    fn from_str(s: &str) -> Result<ClockIdentity, String> {
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | ':' | '.'))
            .collect();
        if hex.len() != 16 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("clockIdentity {s:?}: expected 16 hex digits"));
        }
        let mut id = [0u8; 8];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(ClockIdentity(id))
    }
}

/// A portIdentity (§5.3.5): clockIdentity + portNumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PortIdentity {
    /// The clock.
    pub clock_identity: ClockIdentity,
    /// The port number, 1-based.
    pub port_number: u16,
}

impl std::fmt::Display for PortIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.clock_identity, self.port_number)
    }
}

/// clockQuality (§5.3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockQuality {
    /// clockClass (§7.6.2.5): 6 = locked to a primary reference, 248 = default,
    /// 255 = slave-only.
    pub clock_class: u8,
    /// clockAccuracy (§7.6.2.6), 0xFE = unknown.
    pub clock_accuracy: u8,
    /// offsetScaledLogVariance (§7.6.3).
    pub offset_scaled_log_variance: u16,
}

impl Default for ClockQuality {
    fn default() -> Self {
        ClockQuality {
            clock_class: 248,
            clock_accuracy: 0xFE,
            offset_scaled_log_variance: 0xFFFF,
        }
    }
}

/// flagField bits (§13.3.2.8, Table 37): octet 0 in the high byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// alternateMasterFlag.
    pub const ALTERNATE_MASTER: u16 = 0x0100;
    /// twoStepFlag: a Follow_Up carries the precise origin timestamp.
    pub const TWO_STEP: u16 = 0x0200;
    /// unicastFlag.
    pub const UNICAST: u16 = 0x0400;
    /// leap61.
    pub const LEAP61: u16 = 0x0001;
    /// leap59.
    pub const LEAP59: u16 = 0x0002;
    /// currentUtcOffsetValid.
    pub const UTC_OFFSET_VALID: u16 = 0x0004;
    /// ptpTimescale: the grandmaster's time is TAI (else ARB).
    pub const PTP_TIMESCALE: u16 = 0x0008;
    /// timeTraceable.
    pub const TIME_TRACEABLE: u16 = 0x0010;
    /// frequencyTraceable.
    pub const FREQUENCY_TRACEABLE: u16 = 0x0020;
    /// Whether `bit` is set.
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// The common header (§13.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// majorSdoId (transportSpecific), 0 for the default profiles.
    pub sdo_id: u8,
    /// messageType.
    pub message_type: MessageType,
    /// versionPTP (2) and minorVersionPTP (0 or 1) as `minor << 4 | major`.
    pub version: u8,
    /// messageLength in bytes, as sent.
    pub message_length: u16,
    /// domainNumber.
    pub domain: u8,
    /// flagField.
    pub flags: Flags,
    /// correctionField in ns × 2^16 (§13.3.2.9).
    pub correction: i64,
    /// sourcePortIdentity.
    pub source_port: PortIdentity,
    /// sequenceId.
    pub sequence_id: u16,
    /// logMessageInterval (0x7F = not applicable).
    pub log_message_interval: i8,
}

impl Header {
    /// A header with defaults for `message_type` (length filled on serialize).
    pub fn new(
        message_type: MessageType,
        domain: u8,
        source_port: PortIdentity,
        sequence_id: u16,
    ) -> Header {
        Header {
            sdo_id: 0,
            message_type,
            version: 0x12,
            message_length: 0,
            domain,
            flags: Flags::default(),
            correction: 0,
            source_port,
            sequence_id,
            log_message_interval: 0x7F,
        }
    }
    /// correctionField in whole ns (the 2^-16 ns fraction dropped, rounded
    /// toward −∞).
    pub fn correction_ns(&self) -> i64 {
        self.correction >> 16
    }
}

/// The grandmaster-describing body of an Announce (§13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceBody {
    /// originTimestamp (approximate).
    pub origin_timestamp: PtpTimestamp,
    /// currentUtcOffset in s (TAI − UTC).
    pub current_utc_offset: i16,
    /// grandmasterPriority1.
    pub gm_priority1: u8,
    /// grandmasterClockQuality.
    pub gm_clock_quality: ClockQuality,
    /// grandmasterPriority2.
    pub gm_priority2: u8,
    /// grandmasterIdentity.
    pub gm_identity: ClockIdentity,
    /// stepsRemoved.
    pub steps_removed: u16,
    /// timeSource (§7.6.2.8), e.g. 0x20 GNSS, 0xA0 internal oscillator.
    pub time_source: u8,
}

/// A message body, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Sync: originTimestamp (§13.6).
    Sync {
        /// originTimestamp (precise for one-step, approximate for two-step).
        origin_timestamp: PtpTimestamp,
    },
    /// Delay_Req: originTimestamp (§13.6).
    DelayReq {
        /// originTimestamp (approximate).
        origin_timestamp: PtpTimestamp,
    },
    /// Follow_Up: preciseOriginTimestamp (§13.7).
    FollowUp {
        /// preciseOriginTimestamp of the matching Sync.
        precise_origin_timestamp: PtpTimestamp,
    },
    /// Delay_Resp (§13.8).
    DelayResp {
        /// receiveTimestamp of the Delay_Req at the master.
        receive_timestamp: PtpTimestamp,
        /// requestingPortIdentity.
        requesting_port: PortIdentity,
    },
    /// Pdelay_Req (§13.9).
    PdelayReq {
        /// originTimestamp.
        origin_timestamp: PtpTimestamp,
    },
    /// Pdelay_Resp (§13.10).
    PdelayResp {
        /// requestReceiptTimestamp.
        request_receipt_timestamp: PtpTimestamp,
        /// requestingPortIdentity.
        requesting_port: PortIdentity,
    },
    /// Pdelay_Resp_Follow_Up (§13.11).
    PdelayRespFollowUp {
        /// responseOriginTimestamp.
        response_origin_timestamp: PtpTimestamp,
        /// requestingPortIdentity.
        requesting_port: PortIdentity,
    },
    /// Announce (§13.5).
    Announce(AnnounceBody),
    /// Signaling (§13.12): targetPortIdentity and the raw TLVs.
    Signaling {
        /// targetPortIdentity.
        target_port: PortIdentity,
        /// TLVs, as (tlvType, value) pairs.
        tlvs: Vec<(u16, Vec<u8>)>,
    },
}

/// A whole PTP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The common header.
    pub header: Header,
    /// The type-specific body.
    pub body: Body,
}

/// Why a datagram was not a usable PTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// Shorter than the header or the type's body.
    #[error("message too short: {got} bytes, need {need}")]
    TooShort {
        /// Bytes present.
        got: usize,
        /// Bytes required.
        need: usize,
    },
    /// versionPTP is not 2.
    #[error("unsupported PTP version {0}")]
    Version(u8),
    /// Reserved messageType value.
    #[error("unknown messageType {0:#x}")]
    UnknownType(u8),
    /// A timestamp's nanosecondsField ≥ 10^9.
    #[error("nanosecondsField out of range")]
    BadNanos,
    /// A TLV runs past the end of the message.
    #[error("malformed TLV")]
    BadTlv,
    /// Recognised but not handled (Management).
    #[error("unsupported message type {0:?}")]
    Unsupported(MessageType),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn read_ts(b: &[u8], at: usize) -> Result<PtpTimestamp, MsgError> {
    let mut s = [0u8; 8];
    s[2..].copy_from_slice(&b[at..at + 6]);
    let secs = u64::from_be_bytes(s);
    let nanos = u32::from_be_bytes([b[at + 6], b[at + 7], b[at + 8], b[at + 9]]);
    if nanos >= 1_000_000_000 {
        return Err(MsgError::BadNanos);
    }
    Ok(PtpTimestamp::from_parts(secs, nanos))
}

fn read_port(b: &[u8], at: usize) -> PortIdentity {
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[at..at + 8]);
    PortIdentity {
        clock_identity: ClockIdentity(id),
        port_number: be16(b, at + 8),
    }
}

fn write_ts(out: &mut Vec<u8>, t: PtpTimestamp) {
    let (s, n) = t.to_parts();
    out.extend_from_slice(&s.to_be_bytes()[2..]);
    out.extend_from_slice(&n.to_be_bytes());
}

fn write_port(out: &mut Vec<u8>, p: &PortIdentity) {
    out.extend_from_slice(&p.clock_identity.0);
    out.extend_from_slice(&p.port_number.to_be_bytes());
}

/// Parses only the header (to route a datagram before the body is needed).
pub fn parse_header(b: &[u8]) -> Result<Header, MsgError> {
    if b.len() < HEADER_LEN {
        return Err(MsgError::TooShort {
            got: b.len(),
            need: HEADER_LEN,
        });
    }
    if b[1] & 0x0F != 2 {
        return Err(MsgError::Version(b[1] & 0x0F));
    }
    let message_type =
        MessageType::from_nibble(b[0] & 0x0F).ok_or(MsgError::UnknownType(b[0] & 0x0F))?;
    Ok(Header {
        sdo_id: b[0] >> 4,
        message_type,
        version: b[1],
        message_length: be16(b, 2),
        domain: b[4],
        flags: Flags(be16(b, 6)),
        correction: i64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        source_port: read_port(b, 20),
        sequence_id: be16(b, 30),
        log_message_interval: b[33] as i8,
    })
}

impl Message {
    /// Parses one datagram (§13). Bytes after messageLength (or after the
    /// datagram, whichever is shorter) are ignored.
    pub fn parse(b: &[u8]) -> Result<Message, MsgError> {
        let header = parse_header(b)?;
        let need = |n: usize| -> Result<(), MsgError> {
            if b.len() < n {
                Err(MsgError::TooShort {
                    got: b.len(),
                    need: n,
                })
            } else {
                Ok(())
            }
        };
        use MessageType as T;
        let body = match header.message_type {
            T::Sync => {
                need(44)?;
                Body::Sync {
                    origin_timestamp: read_ts(b, 34)?,
                }
            }
            T::DelayReq => {
                need(44)?;
                Body::DelayReq {
                    origin_timestamp: read_ts(b, 34)?,
                }
            }
            T::FollowUp => {
                need(44)?;
                Body::FollowUp {
                    precise_origin_timestamp: read_ts(b, 34)?,
                }
            }
            T::DelayResp => {
                need(54)?;
                Body::DelayResp {
                    receive_timestamp: read_ts(b, 34)?,
                    requesting_port: read_port(b, 44),
                }
            }
            T::PdelayReq => {
                need(54)?;
                Body::PdelayReq {
                    origin_timestamp: read_ts(b, 34)?,
                }
            }
            T::PdelayResp => {
                need(54)?;
                Body::PdelayResp {
                    request_receipt_timestamp: read_ts(b, 34)?,
                    requesting_port: read_port(b, 44),
                }
            }
            T::PdelayRespFollowUp => {
                need(54)?;
                Body::PdelayRespFollowUp {
                    response_origin_timestamp: read_ts(b, 34)?,
                    requesting_port: read_port(b, 44),
                }
            }
            T::Announce => {
                need(64)?;
                let mut gm = [0u8; 8];
                gm.copy_from_slice(&b[53..61]);
                Body::Announce(AnnounceBody {
                    origin_timestamp: read_ts(b, 34)?,
                    current_utc_offset: be16(b, 44) as i16,
                    gm_priority1: b[47],
                    gm_clock_quality: ClockQuality {
                        clock_class: b[48],
                        clock_accuracy: b[49],
                        offset_scaled_log_variance: be16(b, 50),
                    },
                    gm_priority2: b[52],
                    gm_identity: ClockIdentity(gm),
                    steps_removed: be16(b, 61),
                    time_source: b[63],
                })
            }
            T::Signaling => {
                need(44)?;
                let end = (header.message_length as usize).clamp(44, b.len());
                let mut tlvs = Vec::new();
                let mut at = 44;
                while at < end {
                    if at + 4 > end {
                        return Err(MsgError::BadTlv);
                    }
                    let ty = be16(b, at);
                    let len = be16(b, at + 2) as usize;
                    if at + 4 + len > end {
                        return Err(MsgError::BadTlv);
                    }
                    tlvs.push((ty, b[at + 4..at + 4 + len].to_vec()));
                    at += 4 + len;
                }
                Body::Signaling {
                    target_port: read_port(b, 34),
                    tlvs,
                }
            }
            T::Management => return Err(MsgError::Unsupported(T::Management)),
        };
        Ok(Message { header, body })
    }

    /// Serializes into `out` (cleared first); messageLength and controlField
    /// are computed.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        out.clear();
        let h = &self.header;
        out.push((h.sdo_id << 4) | (h.message_type as u8 & 0x0F));
        out.push(h.version);
        out.extend_from_slice(&[0, 0]); // length, patched below
        out.push(h.domain);
        out.push(0); // minorSdoId
        out.extend_from_slice(&h.flags.0.to_be_bytes());
        out.extend_from_slice(&h.correction.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // messageTypeSpecific
        write_port(out, &h.source_port);
        out.extend_from_slice(&h.sequence_id.to_be_bytes());
        out.push(h.message_type.control_field());
        out.push(h.log_message_interval as u8);
        match &self.body {
            Body::Sync {
                origin_timestamp: t,
            }
            | Body::DelayReq {
                origin_timestamp: t,
            } => write_ts(out, *t),
            Body::FollowUp {
                precise_origin_timestamp: t,
            } => write_ts(out, *t),
            Body::PdelayReq {
                origin_timestamp: t,
            } => {
                write_ts(out, *t);
                out.extend_from_slice(&[0; 10]);
            }
            Body::DelayResp {
                receive_timestamp: t,
                requesting_port: p,
            }
            | Body::PdelayResp {
                request_receipt_timestamp: t,
                requesting_port: p,
            }
            | Body::PdelayRespFollowUp {
                response_origin_timestamp: t,
                requesting_port: p,
            } => {
                write_ts(out, *t);
                write_port(out, p);
            }
            Body::Announce(a) => {
                write_ts(out, a.origin_timestamp);
                out.extend_from_slice(&a.current_utc_offset.to_be_bytes());
                out.push(0);
                out.push(a.gm_priority1);
                out.push(a.gm_clock_quality.clock_class);
                out.push(a.gm_clock_quality.clock_accuracy);
                out.extend_from_slice(&a.gm_clock_quality.offset_scaled_log_variance.to_be_bytes());
                out.push(a.gm_priority2);
                out.extend_from_slice(&a.gm_identity.0);
                out.extend_from_slice(&a.steps_removed.to_be_bytes());
                out.push(a.time_source);
            }
            Body::Signaling { target_port, tlvs } => {
                write_port(out, target_port);
                for (ty, v) in tlvs {
                    out.extend_from_slice(&ty.to_be_bytes());
                    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                    out.extend_from_slice(v);
                }
            }
        }
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Serializes into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.serialize(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_port() -> impl Strategy<Value = PortIdentity> {
        (any::<[u8; 8]>(), any::<u16>()).prop_map(|(c, n)| PortIdentity {
            clock_identity: ClockIdentity(c),
            port_number: n,
        })
    }
    fn arb_ts() -> impl Strategy<Value = PtpTimestamp> {
        (0u64..(1 << 48), 0u32..1_000_000_000).prop_map(|(s, n)| PtpTimestamp::from_parts(s, n))
    }
    fn arb_body() -> impl Strategy<Value = (MessageType, Body)> {
        prop_oneof![
            arb_ts().prop_map(|t| (
                MessageType::Sync,
                Body::Sync {
                    origin_timestamp: t
                }
            )),
            arb_ts().prop_map(|t| (
                MessageType::DelayReq,
                Body::DelayReq {
                    origin_timestamp: t
                }
            )),
            arb_ts().prop_map(|t| (
                MessageType::FollowUp,
                Body::FollowUp {
                    precise_origin_timestamp: t
                }
            )),
            (arb_ts(), arb_port()).prop_map(|(t, p)| (
                MessageType::DelayResp,
                Body::DelayResp {
                    receive_timestamp: t,
                    requesting_port: p
                }
            )),
            arb_ts().prop_map(|t| (
                MessageType::PdelayReq,
                Body::PdelayReq {
                    origin_timestamp: t
                }
            )),
            (arb_ts(), arb_port()).prop_map(|(t, p)| (
                MessageType::PdelayResp,
                Body::PdelayResp {
                    request_receipt_timestamp: t,
                    requesting_port: p
                }
            )),
            (arb_ts(), arb_port()).prop_map(|(t, p)| (
                MessageType::PdelayRespFollowUp,
                Body::PdelayRespFollowUp {
                    response_origin_timestamp: t,
                    requesting_port: p
                }
            )),
            (
                arb_ts(),
                any::<i16>(),
                any::<u8>(),
                any::<(u8, u8, u16)>(),
                any::<u8>(),
                any::<[u8; 8]>(),
                any::<u16>(),
                any::<u8>()
            )
                .prop_map(|(t, u, p1, q, p2, gm, sr, src)| (
                    MessageType::Announce,
                    Body::Announce(AnnounceBody {
                        origin_timestamp: t,
                        current_utc_offset: u,
                        gm_priority1: p1,
                        gm_clock_quality: ClockQuality {
                            clock_class: q.0,
                            clock_accuracy: q.1,
                            offset_scaled_log_variance: q.2
                        },
                        gm_priority2: p2,
                        gm_identity: ClockIdentity(gm),
                        steps_removed: sr,
                        time_source: src,
                    })
                )),
            (
                arb_port(),
                proptest::collection::vec(
                    (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..20)),
                    0..3
                )
            )
                .prop_map(|(p, tlvs)| (
                    MessageType::Signaling,
                    Body::Signaling {
                        target_port: p,
                        tlvs
                    }
                )),
        ]
    }

    proptest! {
        #[test]
        fn round_trip((ty, body) in arb_body(), port in arb_port(), seq in any::<u16>(), dom in any::<u8>(),
                      corr in any::<i64>(), flags in any::<u16>(), lmi in any::<i8>()) {
            let mut header = Header::new(ty, dom, port, seq);
            header.correction = corr;
            header.flags = Flags(flags);
            header.log_message_interval = lmi;
            let m = Message { header, body };
            let bytes = m.to_bytes();
            let mut back = Message::parse(&bytes).unwrap();
            prop_assert_eq!(back.header.message_length as usize, bytes.len());
            back.header.message_length = 0;
            prop_assert_eq!(back, m);
        }

        #[test]
        fn malformed_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn truncated_is_error((ty, body) in arb_body(), cut in 0usize..64) {
            let m = Message { header: Header::new(ty, 0, PortIdentity::default(), 1), body };
            let bytes = m.to_bytes();
            let cut = cut.min(bytes.len());
            if cut < bytes.len() && !matches!(ty, MessageType::Signaling) {
                prop_assert!(Message::parse(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn known_sync_bytes_and_correction() {
        // A two-step Sync as ptp4l sends it (header fields by hand, §13.3).
        let mut b = vec![0u8; 44];
        b[0] = 0x00;
        b[1] = 0x02;
        b[2..4].copy_from_slice(&44u16.to_be_bytes());
        b[6] = 0x02; // twoStep
        b[8..16].copy_from_slice(&((1500i64 << 16) + 0x8000).to_be_bytes()); // 1500.5 ns
        b[30..32].copy_from_slice(&7u16.to_be_bytes());
        b[33] = 0xFD; // logMessageInterval -3
        b[34..40].copy_from_slice(&[0, 0, 0, 0, 0, 10]);
        b[40..44].copy_from_slice(&5u32.to_be_bytes());
        let m = Message::parse(&b).unwrap();
        assert!(m.header.flags.has(Flags::TWO_STEP));
        assert_eq!(m.header.correction_ns(), 1500);
        assert_eq!(m.header.log_message_interval, -3);
        assert_eq!(m.header.sequence_id, 7);
        assert_eq!(
            m.body,
            Body::Sync {
                origin_timestamp: PtpTimestamp::from_parts(10, 5)
            }
        );
        // Bad nanoseconds and bad version are errors.
        let mut bad = b.clone();
        bad[40..44].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(Message::parse(&bad), Err(MsgError::BadNanos));
        let mut v1 = b.clone();
        v1[1] = 1;
        assert_eq!(Message::parse(&v1), Err(MsgError::Version(1)));
        assert!(matches!(
            Message::parse(&b[..40]),
            Err(MsgError::TooShort { .. })
        ));
    }

    #[test]
    fn clock_identity_parses_common_spellings() {
        let want = ClockIdentity([0x00, 0x1d, 0xc1, 0xff, 0xfe, 0x12, 0x34, 0x56]);
        for t in [
            "001dc1fffe123456",
            "00-1D-C1-FF-FE-12-34-56",
            "001dc1.fffe.123456",
        ] {
            assert_eq!(t.parse::<ClockIdentity>(), Ok(want), "{t}");
        }
        assert_eq!(want.to_string().parse::<ClockIdentity>(), Ok(want));
        for bad in [
            "",
            "001dc1fffe1234",
            "001dc1fffe12345g",
            "001dc1fffe1234567",
        ] {
            assert!(bad.parse::<ClockIdentity>().is_err(), "{bad}");
        }
    }
}
