//! The shared, thread-safe handle to the virtual PTP clock: the PTP driver
//! thread publishes each new [`ClockMap`] to it, and any thread (including a
//! real-time audio thread) reads PTP time from it lock-free.

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};

use crate::media::clock::{PtpReading, PtpTimeSource};
use crate::ptp::port::PortStatus;
use crate::ptp::{ClockMap, LocalNs, PtpTimestamp, ServoState};
use crate::sys::clock::{local_now, mono_raw_pair, raw_realtime_pair};
use crate::units::{MonoNs, Nanos, Ppb};

/// The PTP port's status, published once per second by the driver thread
/// ([`crate::engine::ptp::run_with`]).
#[derive(Debug, Clone)]
pub struct PtpStatus {
    /// Time since the port started.
    pub uptime: Nanos,
    /// `"hw"`, `"sw"` or `"one-way"` (no Delay_Resp seen).
    pub mode: &'static str,
    /// Hardware timestamps are in use.
    pub hardware_timestamps: bool,
    /// Our PTP clock (as UTC) minus `CLOCK_REALTIME` at the time of the status.
    pub clock_minus_realtime: Option<Nanos>,
    /// The port's state, servo and counters.
    pub port: PortStatus,
}

/// Shared state behind a [`PtpClockHandle`]: a seqlock over the map.
#[derive(Debug)]
struct Shared {
    seq: AtomicU64,
    ref_local: AtomicU64,
    ref_ptp_hi: AtomicU64,
    ref_ptp_lo: AtomicU64,
    freq_bits: AtomicU64,
    /// bit 0: has map; bits 8..16: servo state; bits 32..64: UTC offset (s, i32)
    /// to subtract from PTP time for UTC (0 on an ARB timescale).
    flags: AtomicU64,
    status: Mutex<Option<PtpStatus>>,
}

/// A cloneable, thread-safe reader (and, for the IO loop, writer) of the
/// virtual PTP clock.
///
/// Reads are lock-free (a seqlock over atomics), never allocate, and are safe
/// to call from a real-time thread. A single writer (the PTP IO loop) calls
/// [`Self::publish`].
#[derive(Debug, Clone)]
pub struct PtpClockHandle(Arc<Shared>);

impl Default for PtpClockHandle {
    fn default() -> Self {
        Self::new()
    }
}

fn servo_from(b: u64) -> ServoState {
    match b {
        1 => ServoState::Jump,
        2 => ServoState::Locked,
        3 => ServoState::LockedStable,
        4 => ServoState::Holdover,
        _ => ServoState::Unlocked,
    }
}

impl PtpClockHandle {
    /// A handle with no map yet (`now_ptp()` returns `None`).
    pub fn new() -> PtpClockHandle {
        PtpClockHandle(Arc::new(Shared {
            seq: AtomicU64::new(0),
            ref_local: AtomicU64::new(0),
            ref_ptp_hi: AtomicU64::new(0),
            ref_ptp_lo: AtomicU64::new(0),
            freq_bits: AtomicU64::new(0),
            flags: AtomicU64::new(0),
            status: Mutex::new(None),
        }))
    }

    /// Publishes a new map, servo state and UTC offset (seconds to subtract
    /// from PTP time to get UTC; 0 when the grandmaster's timescale is ARB).
    /// Single writer only.
    pub fn publish(&self, map: &ClockMap, servo: ServoState, utc_offset_s: i32) {
        let s = &self.0;
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        s.ref_local
            .store(map.ref_local.as_ns() as u64, Ordering::Relaxed);
        s.ref_ptp_hi
            .store((map.ref_ptp.as_nanos() >> 64) as u64, Ordering::Relaxed);
        s.ref_ptp_lo
            .store(map.ref_ptp.as_nanos() as u64, Ordering::Relaxed);
        s.freq_bits
            .store(map.freq.as_ppb().to_bits(), Ordering::Relaxed);
        let st = match servo {
            ServoState::Unlocked => 0u64,
            ServoState::Jump => 1,
            ServoState::Locked => 2,
            ServoState::LockedStable => 3,
            ServoState::Holdover => 4,
        };
        s.flags.store(
            1 | (st << 8) | ((utc_offset_s as u32 as u64) << 32),
            Ordering::Relaxed,
        );
        s.seq.store(seq + 2, Ordering::Release);
    }

    /// Stores the latest status snapshot (once per second, by the PTP
    /// driver thread). Not for real-time threads.
    pub fn set_status(&self, v: PtpStatus) {
        if let Ok(mut g) = self.0.status.lock() {
            *g = Some(v);
        }
    }

    /// The latest status snapshot, if any. Takes a lock: not for real-time
    /// threads.
    pub fn status(&self) -> Option<PtpStatus> {
        self.0.status.lock().ok().and_then(|g| g.clone())
    }

    /// A consistent copy of `(map, servo state, utc offset s)`, or `None`
    /// before the first publish.
    pub fn snapshot(&self) -> Option<(ClockMap, ServoState, i32)> {
        let s = &self.0;
        loop {
            let a = s.seq.load(Ordering::Acquire);
            if a & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let rl = s.ref_local.load(Ordering::Relaxed) as i64;
            let hi = s.ref_ptp_hi.load(Ordering::Relaxed);
            let lo = s.ref_ptp_lo.load(Ordering::Relaxed);
            let fb = s.freq_bits.load(Ordering::Relaxed);
            let fl = s.flags.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) != a {
                continue;
            }
            if fl & 1 == 0 {
                return None;
            }
            let ptp = ((hi as u128) << 64 | lo as u128) as i128;
            let map = ClockMap {
                ref_local: LocalNs::from_ns(rl),
                ref_ptp: PtpTimestamp::from_nanos(ptp),
                freq: Ppb::from_ppb(f64::from_bits(fb)),
            };
            return Some((map, servo_from((fl >> 8) & 0xFF), (fl >> 32) as u32 as i32));
        }
    }

    /// PTP time now, or `None` before the servo's first estimate.
    pub fn now_ptp(&self) -> Option<PtpTimestamp> {
        self.local_to_ptp(local_now())
    }

    /// PTP time at a `CLOCK_MONOTONIC_RAW` instant.
    pub fn local_to_ptp(&self, t: LocalNs) -> Option<PtpTimestamp> {
        self.snapshot().map(|(m, _, _)| m.to_ptp(t))
    }

    /// PTP time at a `CLOCK_MONOTONIC` instant (converted to
    /// `CLOCK_MONOTONIC_RAW` with a paired read of both clocks now; error is
    /// NTP's slew rate × the age of `t`, i.e. ns for recent instants).
    pub fn mono_to_ptp(&self, t: MonoNs) -> Option<PtpTimestamp> {
        let (mono, raw) = mono_raw_pair();
        let local = LocalNs::from_ns(raw.as_ns() + (t.as_ns() as i64 - mono.as_ns() as i64));
        self.local_to_ptp(local)
    }

    /// RTP timestamp for `mediaclk:direct=<offset>` at `rate` Hz at a
    /// `CLOCK_MONOTONIC` instant; `None` until an estimate exists.
    pub fn rtp_at_mono(&self, t: MonoNs, rate: u32, mediaclk_offset: u32) -> Option<u32> {
        self.mono_to_ptp(t).map(|p| p.to_rtp(rate, mediaclk_offset))
    }

    /// Whether the servo reports locked / locked_stable (or holdover: the
    /// clock is still a usable media clock).
    pub fn locked(&self) -> bool {
        self.snapshot().is_some_and(|(_, s, _)| s.usable())
    }

    /// Servo state.
    pub fn servo_state(&self) -> ServoState {
        self.snapshot().map(|(_, s, _)| s).unwrap_or_default()
    }

    /// Frequency of PTP time relative to `CLOCK_MONOTONIC_RAW`, ppb.
    pub fn freq(&self) -> Ppb {
        self.snapshot().map(|(m, _, _)| m.freq).unwrap_or_default()
    }

    /// Our PTP clock (converted to UTC when the grandmaster's timescale is
    /// PTP/TAI) minus `CLOCK_REALTIME`, read at one instant. When the master
    /// runs on this host's `CLOCK_REALTIME` (ptp4l with software timestamps:
    /// ARB timescale, flags 0), this is our clock's error.
    pub fn clock_minus_realtime(&self) -> Option<Nanos> {
        let (map, _, utc) = self.snapshot()?;
        let (raw, rt) = raw_realtime_pair();
        let ptp = map.to_ptp(raw);
        Some(Nanos::from_ns(
            (ptp.as_nanos() - utc as i128 * 1_000_000_000 - rt as i128) as i64,
        ))
    }
}

/// The PTP ordinary clock's handle as a media clock source: locked while the
/// servo is locked or locked-stable; in holdover it still reads time (on its
/// last frequency) with `locked: false`, which [`PtpMediaClock`] follows as
/// [`ClockState::Holdover`].
impl PtpTimeSource for PtpClockHandle {
    fn ptp_time_at(&self, mono: MonoNs) -> Option<PtpReading> {
        let state = self.servo_state();
        if !state.usable() {
            return None;
        }
        let t = self.mono_to_ptp(mono)?;
        Some(PtpReading {
            ptp_ns: t.as_nanos(),
            locked: matches!(state, ServoState::Locked | ServoState::LockedStable),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_publish_and_read_across_threads() {
        let h = PtpClockHandle::new();
        assert!(h.now_ptp().is_none());
        assert!(!h.locked());
        let (raw, rt) = raw_realtime_pair();
        h.publish(
            &ClockMap::new(raw, PtpTimestamp::from_nanos(rt as i128 + 37_000_000_000)),
            ServoState::Locked,
            37,
        );
        let r = h.clone();
        let t = std::thread::spawn(move || {
            let mut ok = 0;
            for _ in 0..10_000 {
                if r.locked() && r.now_ptp().is_some() {
                    ok += 1;
                }
            }
            ok
        });
        for i in 0..1000 {
            h.publish(
                &ClockMap::new(
                    raw,
                    PtpTimestamp::from_nanos(rt as i128 + 37_000_000_000 + i),
                ),
                ServoState::Locked,
                37,
            );
        }
        assert_eq!(t.join().unwrap(), 10_000);
        let e = h.clock_minus_realtime().unwrap();
        assert!(e.as_ns().abs() < 1_000_000, "clock_minus_realtime {e:?}");
        assert!(h.rtp_at_mono(MonoNs::now(), 48_000, 0).is_some());
    }
}
