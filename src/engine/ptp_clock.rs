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
    /// Which receive timestamps are in use, e.g. `"SO_TIMESTAMPING software
    /// (kernel)"` (Linux), `"SO_TIMESTAMP (kernel QPC)"` or `"QPC after wait
    /// (user space)"` (Windows).
    pub timestamps: &'static str,
    /// Why that path (Windows: why not the kernel's stamps); may be empty.
    pub timestamps_note: &'static str,
    /// Which transmit timestamps event messages get: on Linux the same
    /// kind as the receive ones; on Windows `"SIO_GET_TX_TIMESTAMP (kernel
    /// QPC)"` or `"QPC before send (user space)"`.
    pub tx_timestamps: &'static str,
    /// Why that transmit path; may be empty.
    pub tx_timestamps_note: &'static str,
    /// `"udp4"` or `"l2"` ([`crate::sys::ptp::Transport::name`]).
    pub transport: &'static str,
    /// Layer-2 frames received and not taken (short, VLAN-tagged, another
    /// ethertype); zero over UDP.
    pub frame_drops: crate::ptp::ieee8023::FrameDrops,
    /// Event messages received with a hardware, a software, or no kernel
    /// receive timestamp (the last ones use the time read after the wake-up).
    pub rx_stamps: RxStampCounts,
    /// Our PTP clock (as UTC) minus `CLOCK_REALTIME` at the time of the status.
    pub clock_minus_realtime: Option<Nanos>,
    /// The port's state, servo and counters.
    pub port: PortStatus,
}

/// Receive timestamps of event messages, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RxStampCounts {
    /// With a hardware (PHC) timestamp.
    pub hardware: u64,
    /// With a kernel software timestamp.
    pub software: u64,
    /// With none (hardware mode: the NIC did not stamp it).
    pub missing: u64,
}

/// One copy of the published map: a seqlock (its `seq` is odd while the
/// writer fills it).
#[derive(Debug, Default)]
struct Slot {
    seq: AtomicU64,
    ref_local: AtomicU64,
    ref_ptp_hi: AtomicU64,
    ref_ptp_lo: AtomicU64,
    freq_bits: AtomicU64,
    /// bit 0: has map; bits 8..16: servo state; bits 32..64: UTC offset (s, i32)
    /// to subtract from PTP time for UTC (0 on an ARB timescale).
    flags: AtomicU64,
}

/// Shared state behind a [`PtpClockHandle`]: two [`Slot`]s. The writer
/// fills the slot readers are not directed to, then publishes its index
/// (`current`, the number of publishes: slot `current & 1` is the one to
/// read). A writer stopped in the middle of an update (preempted, being a
/// normal-priority thread) therefore never stands in a reader's way: the
/// current slot is complete.
#[derive(Debug)]
struct Shared {
    current: AtomicU64,
    slots: [Slot; 2],
    status: Mutex<Option<PtpStatus>>,
}

/// How many times [`PtpClockHandle::snapshot`] tries before it gives up.
/// A try fails only when the writer published twice during it (it then
/// overwrites the slot being read), which takes two PTP messages.
pub const SNAPSHOT_TRIES: u32 = 4;

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
            current: AtomicU64::new(0),
            slots: Default::default(),
            status: Mutex::new(None),
        }))
    }

    /// Publishes a new map, servo state and UTC offset (seconds to subtract
    /// from PTP time to get UTC; 0 when the grandmaster's timescale is ARB).
    /// Single writer only. Lock-free, never blocks readers.
    pub fn publish(&self, map: &ClockMap, servo: ServoState, utc_offset_s: i32) {
        let st = match servo {
            ServoState::Unlocked => 0u64,
            ServoState::Jump => 1,
            ServoState::Locked => 2,
            ServoState::LockedStable => 3,
            ServoState::Holdover => 4,
        };
        let n = self.0.current.load(Ordering::Relaxed);
        let slot = &self.0.slots[((n + 1) & 1) as usize];
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.ref_local
            .store(map.ref_local.as_ns() as u64, Ordering::Relaxed);
        slot.ref_ptp_hi
            .store((map.ref_ptp.as_nanos() >> 64) as u64, Ordering::Relaxed);
        slot.ref_ptp_lo
            .store(map.ref_ptp.as_nanos() as u64, Ordering::Relaxed);
        slot.freq_bits
            .store(map.freq.as_ppb().to_bits(), Ordering::Relaxed);
        slot.flags.store(
            1 | (st << 8) | ((utc_offset_s as u32 as u64) << 32),
            Ordering::Relaxed,
        );
        slot.seq.store(seq + 2, Ordering::Release);
        self.0.current.store(n + 1, Ordering::Release);
    }

    /// Test hook: leaves the writer stopped in the middle of an update of
    /// the slot it writes next (its seqlock odd), as a writer preempted
    /// mid-publish would.
    #[doc(hidden)]
    pub fn stall_writer_mid_update(&self) {
        let n = self.0.current.load(Ordering::Relaxed);
        let slot = &self.0.slots[((n + 1) & 1) as usize];
        slot.seq.fetch_or(1, Ordering::Release);
        slot.ref_ptp_lo.store(0xDEAD, Ordering::Relaxed);
    }

    /// Test hook: both slots left mid-update (cannot happen with one
    /// writer): readers must still return, with `None`.
    #[cfg(test)]
    fn stall_both_slots(&self) {
        for slot in &self.0.slots {
            slot.seq.fetch_or(1, Ordering::Release);
        }
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
    ///
    /// Bounded and wait-free for the reader: at most [`SNAPSHOT_TRIES`]
    /// tries, never a spin on the writer. It reads the last completed
    /// publish, so a writer stopped mid-update (preempted) does not delay it.
    /// A try is retried only when the writer completed two publishes while
    /// it read; after [`SNAPSHOT_TRIES`] such tries (the writer publishing
    /// faster than a reader can copy six words) it returns `None`, as
    /// before the first publish. Safe on real-time threads (the BASS
    /// STREAMPROC, the `SCHED_FIFO` ingest thread): no lock, no allocation.
    pub fn snapshot(&self) -> Option<(ClockMap, ServoState, i32)> {
        let sh = &self.0;
        for _ in 0..SNAPSHOT_TRIES {
            let n = sh.current.load(Ordering::Acquire);
            let s = &sh.slots[(n & 1) as usize];
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
                std::hint::spin_loop();
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
        None
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

    /// Issue 13 #9: a writer stopped in the middle of a publish (its
    /// seqlock left odd) cannot hang a reader: readers get the last complete
    /// publish at once; with both slots mid-update (impossible with one
    /// writer) they still return, with `None`, within the try bound.
    #[test]
    fn stuck_writer_cannot_hang_a_reader() {
        let h = PtpClockHandle::new();
        let map = ClockMap::new(LocalNs::from_ns(1_000), PtpTimestamp::from_nanos(77_000));
        h.publish(&map, ServoState::Locked, 37);
        h.stall_writer_mid_update();
        let r = h.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let mut got = None;
            for _ in 0..100_000 {
                got = r.snapshot();
            }
            let _ = tx.send((got, t0.elapsed()));
        });
        let (got, took) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reader hung on a writer stopped mid-update");
        let (m, s, utc) = got.expect("the last complete publish");
        assert_eq!(
            (m.ref_ptp, m.ref_local, s, utc),
            (map.ref_ptp, map.ref_local, ServoState::Locked, 37)
        );
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
        h.stall_both_slots();
        let r = h.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send((r.snapshot(), r.locked()));
        });
        let (got, locked) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reader hung with both slots mid-update");
        assert!(got.is_none() && !locked);
    }

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
