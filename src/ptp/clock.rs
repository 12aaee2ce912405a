//! The virtual PTP clock: an affine overlay over the local reference clock
//! (`CLOCK_MONOTONIC_RAW`), in the manner of statime's overlay clock. It never
//! touches the system clock.
//!
//! The servo owns a [`ClockMap`]; after each update the port emits it and the
//! IO loop publishes it to a [`PtpClockHandle`], which any thread (including a
//! real-time audio thread: reads are lock-free and never allocate) can use to
//! read PTP time.
//!
//! ## Media clock (AES67 / RFC 7273 `mediaclk:direct`)
//! For a stream with `a=mediaclk:direct=<offset>` at `rate` Hz:
//! `rtp_ts = (ptp_time_seconds × rate + offset) mod 2^32`. With a handle:
//! ```no_run
//! # use aes67::ptp::clock::PtpClockHandle;
//! # fn f(h: &PtpClockHandle) {
//! if let Some(t) = h.now_ptp() {            // None until the servo has an estimate
//!     let rtp_now: u32 = t.to_rtp(48_000, 0); // mediaclk:direct=0, 48 kHz
//! #   let _ = rtp_now;
//! }
//! # }
//! ```
//! [`PtpClockHandle::rtp_at_mono`] does the same for a `CLOCK_MONOTONIC`
//! instant (e.g. an ALSA htstamp).

use std::ops::Add;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use super::time::{LocalNs, PtpTimestamp, local_now};
use crate::units::{MonoNs, Nanos, Ppb};

/// The affine map local reference clock → PTP time:
/// `ptp(local) = ref_ptp + (local − ref_local) × (1 + freq·10⁻⁹)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockMap {
    /// Local reading of the reference point.
    pub ref_local: LocalNs,
    /// PTP time at the reference point.
    pub ref_ptp: PtpTimestamp,
    /// Rate of PTP time relative to the local clock, minus one, in ppb.
    pub freq: Ppb,
}

impl ClockMap {
    /// The identity-rate map putting `ptp` at `local`.
    pub fn new(local: LocalNs, ptp: PtpTimestamp) -> ClockMap {
        ClockMap {
            ref_local: local,
            ref_ptp: ptp,
            freq: Ppb::ZERO,
        }
    }
    /// PTP time at local instant `local`.
    pub fn to_ptp(&self, local: LocalNs) -> PtpTimestamp {
        let dl = local.0 as i128 - self.ref_local.0 as i128;
        let adj = (dl as f64 * self.freq.0 * 1e-9).round() as i128;
        PtpTimestamp(self.ref_ptp.0 + dl + adj)
    }
    /// Local instant at PTP time `t` (inverse of [`Self::to_ptp`]).
    pub fn to_local(&self, t: PtpTimestamp) -> LocalNs {
        let dp = (t.0 - self.ref_ptp.0) as f64;
        let dl = dp / self.freq.as_ratio();
        LocalNs(self.ref_local.0.saturating_add(dl.round() as i64))
    }
    /// The same map re-anchored at `local` (numerically identical; keeps the
    /// reference point recent).
    pub fn rebased(&self, local: LocalNs) -> ClockMap {
        ClockMap {
            ref_local: local,
            ref_ptp: self.to_ptp(local),
            freq: self.freq,
        }
    }
    /// Shifts PTP time by `d` (a step).
    pub fn stepped(&self, d: Nanos) -> ClockMap {
        ClockMap {
            ref_local: self.ref_local,
            ref_ptp: self.ref_ptp.add(d),
            freq: self.freq,
        }
    }
}

/// Servo state (linuxptp's s0..s3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServoState {
    /// s0: no estimate yet.
    #[default]
    Unlocked,
    /// s1: the clock was just stepped.
    Jump,
    /// s2: locked.
    Locked,
    /// s3: locked and stable (window full, offsets small).
    LockedStable,
    /// Master lost: free-running on the last frequency estimate.
    Holdover,
}

impl ServoState {
    /// Whether the clock can be trusted (locked, stable or in holdover).
    pub fn usable(self) -> bool {
        matches!(
            self,
            ServoState::Locked | ServoState::LockedStable | ServoState::Holdover
        )
    }
    /// Lower-case name as printed in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            ServoState::Unlocked => "unlocked",
            ServoState::Jump => "jump",
            ServoState::Locked => "locked",
            ServoState::LockedStable => "locked_stable",
            ServoState::Holdover => "holdover",
        }
    }
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
    status: Mutex<Option<serde_json::Value>>,
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
        s.ref_local.store(map.ref_local.0 as u64, Ordering::Relaxed);
        s.ref_ptp_hi
            .store((map.ref_ptp.0 >> 64) as u64, Ordering::Relaxed);
        s.ref_ptp_lo.store(map.ref_ptp.0 as u64, Ordering::Relaxed);
        s.freq_bits.store(map.freq.0.to_bits(), Ordering::Relaxed);
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

    /// Stores the latest status snapshot (a JSON object, as printed by
    /// `aes67 ptp --json`). Not for real-time threads.
    pub fn set_status(&self, v: serde_json::Value) {
        if let Ok(mut g) = self.0.status.lock() {
            *g = Some(v);
        }
    }

    /// The latest status snapshot, if any. Takes a lock: not for real-time
    /// threads.
    pub fn status(&self) -> Option<serde_json::Value> {
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
                ref_local: LocalNs(rl),
                ref_ptp: PtpTimestamp(ptp),
                freq: Ppb(f64::from_bits(fb)),
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
        let local = LocalNs(raw.0 + (t.0 as i64 - mono.0 as i64));
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
        Some(Nanos(
            (ptp.0 - utc as i128 * 1_000_000_000 - rt as i128) as i64,
        ))
    }
}

/// Reads `(CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW)` as close together as
/// possible (the raw reading is the midpoint of two).
pub fn mono_raw_pair() -> (MonoNs, LocalNs) {
    let a = local_now();
    let m = MonoNs::now();
    let b = local_now();
    (m, LocalNs(a.0 + (b.0 - a.0) / 2))
}

/// Reads `(CLOCK_MONOTONIC_RAW, CLOCK_REALTIME ns)` at one instant (best of
/// three sandwich reads, midpoint of the raw pair).
pub fn raw_realtime_pair() -> (LocalNs, i64) {
    let mut best = (i64::MAX, LocalNs(0), 0i64);
    for _ in 0..3 {
        let a = local_now();
        let rt = crate::units::realtime_now_ns();
        let b = local_now();
        let w = b.0 - a.0;
        if w < best.0 {
            best = (w, LocalNs(a.0 + w / 2), rt);
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip_and_freq() {
        let m = ClockMap {
            ref_local: LocalNs(1_000),
            ref_ptp: PtpTimestamp(5_000_000_000),
            freq: Ppb(100_000.0),
        };
        // 1 s local later, +100 ppm → 1 s + 100 µs of PTP time.
        assert_eq!(
            m.to_ptp(LocalNs(1_000_001_000)).0,
            5_000_000_000 + 1_000_100_000
        );
        let back = m.to_local(m.to_ptp(LocalNs(123_456_789)));
        assert!((back.0 - 123_456_789).abs() <= 1);
        let r = m.rebased(LocalNs(7_000_000_000));
        assert!(
            (r.to_ptp(LocalNs(9_000_000_000)).0 - m.to_ptp(LocalNs(9_000_000_000)).0).abs() <= 1
        );
    }

    #[test]
    fn handle_publish_and_read_across_threads() {
        let h = PtpClockHandle::new();
        assert!(h.now_ptp().is_none());
        assert!(!h.locked());
        let (raw, rt) = raw_realtime_pair();
        h.publish(
            &ClockMap::new(raw, PtpTimestamp(rt as i128 + 37_000_000_000)),
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
                &ClockMap::new(raw, PtpTimestamp(rt as i128 + 37_000_000_000 + i)),
                ServoState::Locked,
                37,
            );
        }
        assert_eq!(t.join().unwrap(), 10_000);
        let e = h.clock_minus_realtime().unwrap();
        assert!(e.0.abs() < 1_000_000, "clock_minus_realtime {e:?}");
        assert!(h.rtp_at_mono(MonoNs::now(), 48_000, 0).is_some());
    }
}
