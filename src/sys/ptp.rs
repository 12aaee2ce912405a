//! The PTP transport: UDP event (319) and general (320) sockets on the PTP
//! group with kernel timestamps, TX timestamps, interface capabilities and
//! the PHC. The portable types are here; the OS parts come from the OS
//! module (Linux: `SO_TIMESTAMPING`, ethtool, `/dev/ptpN`; elsewhere:
//! stand-ins whose constructors return `Unsupported`).

use std::net::{IpAddr, Ipv4Addr};

use super::RxTimestamp;

pub use super::imp::ptp::*;

/// PTP primary multicast group (IEEE 1588-2019 Annex C).
pub const PTP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 129);
/// Event port.
pub const EVENT_PORT: u16 = 319;
/// General port.
pub const GENERAL_PORT: u16 = 320;

/// One received PTP datagram's metadata (its bytes are in the caller's
/// buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtpRx {
    /// Bytes received.
    pub len: usize,
    /// Kernel receive timestamp (event socket; hardware in hardware mode).
    pub ts: Option<RxTimestamp>,
    /// Source address (`msg_name`), when known.
    pub src: Option<IpAddr>,
    /// Destination address from the IP header (`IP_PKTINFO`), when known:
    /// a unicast destination where the PTP group is expected can be dropped.
    pub dst: Option<IpAddr>,
}

impl PtpRx {
    /// The datagram was sent to a unicast address (known destination, not
    /// multicast).
    pub fn is_unicast(&self) -> bool {
        self.dst.is_some_and(|d| !d.is_multicast())
    }
}

/// Interface timestamping capabilities (`ETHTOOL_GET_TS_INFO` on Linux;
/// none elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsInfo {
    /// `SOF_TIMESTAMPING_*` bits supported.
    pub so_timestamping: u32,
    /// PHC index (`/dev/ptpN`), −1 if none.
    pub phc_index: i32,
    /// `HWTSTAMP_TX_*` bitmask.
    pub tx_types: u32,
    /// `HWTSTAMP_FILTER_*` bitmask.
    pub rx_filters: u32,
}

/// Which transport of IEEE 1588 carries the PTP messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// UDP over IPv4 (Annex C): ports 319/320, group 224.0.1.129.
    #[default]
    Udp4,
    /// IEEE 802.3 / Ethernet (Annex E): ethertype 0x88F7, destination
    /// 01-1B-19-00-00-00 ([`crate::ptp::ieee8023`]). ptp4l's `-2`.
    L2,
}

from_names!(Transport, "transport", {
    "udp4" => Udp4,
    "l2" => L2,
});

impl Transport {
    /// The name on the command line, in configs and in status.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp4 => "udp4",
            Transport::L2 => "l2",
        }
    }
}

/// Timestamping mode of a socket pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsMode {
    /// Kernel software timestamps (`CLOCK_REALTIME`).
    Software,
    /// NIC hardware timestamps (PHC).
    Hardware,
}
