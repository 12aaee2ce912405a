//! Per-stream counters: written lock-free by a stream's STREAMPROC, read by
//! the config proc (`BASS_CONFIG_AES67_BUFFER_LEVEL`, `..._PACKETS_*`, ...).
//!
//! A leaf module (imports nothing of this crate): the `state` module keeps the registry
//! of open streams as [`StatsSource`]s.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Counters of one stream, written by the stream and read by the config proc.
#[derive(Debug, Default)]
pub struct SharedStats {
    /// RTP packets accepted by the receiver.
    pub packets_received: AtomicU64,
    /// Packets late or dropped by the receiver.
    pub packets_late: AtomicU64,
    /// STREAMPROC calls that found the buffer empty (playing streams: silence was output).
    pub underruns: AtomicU64,
    /// Frames buffered for BASS right now.
    pub buffered_frames: AtomicU32,
    /// Target buffer, frames (jitter depth × rate).
    pub target_frames: AtomicU32,
    /// Frames per packet (packet time × rate), 0 until known.
    pub frames_per_packet: AtomicU32,
    /// Packet time, µs; 0 until known.
    pub packet_time_us: AtomicU32,
}

/// A plain copy of [`SharedStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// See [`SharedStats::packets_received`].
    pub packets_received: u64,
    /// See [`SharedStats::packets_late`].
    pub packets_late: u64,
    /// See [`SharedStats::underruns`].
    pub underruns: u64,
    /// See [`SharedStats::buffered_frames`].
    pub buffered_frames: u32,
    /// See [`SharedStats::target_frames`].
    pub target_frames: u32,
    /// See [`SharedStats::frames_per_packet`].
    pub frames_per_packet: u32,
    /// See [`SharedStats::packet_time_us`].
    pub packet_time_us: u32,
}

/// Something the stream registry can ask for a [`StreamStats`] (an open
/// stream's shared half).
pub trait StatsSource: Send + Sync {
    /// The stream's current figures.
    fn snapshot(&self) -> StreamStats;
}

impl StreamStats {
    /// Buffer fill in % of target, 0-200 (100 = at target).
    pub fn buffer_level_percent(&self) -> u32 {
        if self.target_frames == 0 {
            return 100;
        }
        ((self.buffered_frames as u64 * 100 / self.target_frames as u64).min(200)) as u32
    }
    /// Buffered audio in whole packets (0 while the packet size is unknown).
    pub fn buffer_packets(&self) -> u32 {
        self.buffered_frames
            .checked_div(self.frames_per_packet)
            .unwrap_or(0)
    }
    /// Target buffer in packets, rounded up (0 while the packet size is unknown).
    pub fn target_packets(&self) -> u32 {
        if self.frames_per_packet == 0 {
            0
        } else {
            self.target_frames.div_ceil(self.frames_per_packet)
        }
    }
}

impl SharedStats {
    /// A consistent-enough copy (each field read atomically).
    pub fn snapshot(&self) -> StreamStats {
        let r = Ordering::Relaxed;
        StreamStats {
            packets_received: self.packets_received.load(r),
            packets_late: self.packets_late.load(r),
            underruns: self.underruns.load(r),
            buffered_frames: self.buffered_frames.load(r),
            target_frames: self.target_frames.load(r),
            frames_per_packet: self.frames_per_packet.load(r),
            packet_time_us: self.packet_time_us.load(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_figures() {
        let s = StreamStats {
            packets_received: 0,
            packets_late: 0,
            underruns: 0,
            buffered_frames: 480,
            target_frames: 480,
            frames_per_packet: 48,
            packet_time_us: 1000,
        };
        assert_eq!(s.buffer_level_percent(), 100);
        assert_eq!(s.buffer_packets(), 10);
        assert_eq!(s.target_packets(), 10);
        let empty = StreamStats {
            target_frames: 0,
            frames_per_packet: 0,
            ..s
        };
        assert_eq!(empty.buffer_level_percent(), 100);
        assert_eq!(empty.buffer_packets(), 0);
        let over = StreamStats {
            buffered_frames: 5000,
            ..s
        };
        assert_eq!(over.buffer_level_percent(), 200);
    }
}
