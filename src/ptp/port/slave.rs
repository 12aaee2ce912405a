//! The slave side of the port: two-step and one-step Sync (IEEE 1588-2019
//! §9.5.9, §11.3), Delay_Req scheduling (§9.5.11.2) and Delay_Resp, the
//! meanPathDelay filter and the offsetFromMaster samples fed to the servo.
//! Times in ns on the local reference clock ([`LocalNs`]) or PTP time.

use std::collections::VecDeque;

use super::timers::Timer;
use super::{Action, Actions, Port, PortState, TxKind, ns_from_corr};
use crate::ptp::clock::ServoState;
use crate::ptp::msg::{Body, Flags, Header, Message, MessageType, PortIdentity};
use crate::ptp::time::{LocalNs, LogInterval, PtpTimestamp};
use crate::units::Nanos;

/// A two-step Sync waiting for its Follow_Up.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingSync {
    seq: u16,
    t2: LocalNs,
    correction: i64,
    source: PortIdentity,
}

/// A received Sync: one-step gives its (t1, t2) pair now, two-step waits
/// for its Follow_Up.
enum SyncIn {
    /// (t1 = originTimestamp + correctionField, t2).
    Pair(PtpTimestamp, LocalNs),
    Pending(PendingSync),
}

impl SyncIn {
    /// The Sync of header `h`, with `origin_timestamp`, received at `rx`.
    fn of(h: &Header, origin_timestamp: PtpTimestamp, rx: LocalNs) -> SyncIn {
        if h.flags.has(Flags::TWO_STEP) {
            SyncIn::Pending(PendingSync {
                seq: h.sequence_id,
                t2: rx,
                correction: h.correction,
                source: h.source_port,
            })
        } else {
            SyncIn::Pair(
                origin_timestamp + Nanos::from_ns(ns_from_corr(h.correction)),
                rx,
            )
        }
    }
}

impl PendingSync {
    /// The (t1, t2) pair the Follow_Up `h` completes (§9.5.10: the same
    /// sequenceId and source; t1 = preciseOriginTimestamp + both
    /// correctionFields), or `None` when it is not this Sync's.
    fn complete(
        &self,
        h: &Header,
        precise_origin_timestamp: PtpTimestamp,
    ) -> Option<(PtpTimestamp, LocalNs)> {
        (self.seq == h.sequence_id && self.source == h.source_port).then(|| {
            (
                precise_origin_timestamp
                    + Nanos::from_ns(ns_from_corr(self.correction) + ns_from_corr(h.correction)),
                self.t2,
            )
        })
    }
}

/// A sent Delay_Req waiting for its TX timestamp (t3) and Delay_Resp.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingDelayReq {
    seq: u16,
    t3: Option<LocalNs>,
    /// (t1, t2) of the Sync this request was paired with.
    sync: (PtpTimestamp, LocalNs),
}

/// One meanPathDelay measurement (IEEE 1588-2019 §11.3.2): its two legs,
/// kept apart so the slave leg is scaled by the frequency known when
/// meanPathDelay is computed, not only by the one known when it arrived.
#[derive(Debug, Clone, Copy)]
struct DelayMeas {
    /// t4 − t1 (correctionFields applied), master ns.
    master_leg: i64,
    /// t3 − t2, local ns.
    slave_leg: i64,
    /// (t1, t2) of the Sync the request was paired with.
    t1: PtpTimestamp,
    t2: LocalNs,
}

impl DelayMeas {
    /// The measurement with the local clock running at `ratio` (PTP ns
    /// per local ns): ((t4 − t1) − (t3 − t2)·ratio) / 2, ns.
    fn delay(&self, ratio: f64) -> i64 {
        ((self.master_leg as f64 - self.slave_leg as f64 * ratio) / 2.0).round() as i64
    }
}

/// The Syncs of a foreign master seen while we had no parent (LISTENING),
/// kept on its foreign-master record.
///
/// Qualification (IEEE 1588-2019 §9.3.2.4.4) takes two Announces: 2 s at
/// the default logAnnounceInterval 1. Those Syncs are not used while the
/// master is unqualified (nothing is published from them), but once it
/// qualifies they become the servo's first samples together with the first
/// meanPathDelay, so the servo locks on the next Delay_Resp instead of
/// collecting its samples only then. Bounded: [`CANDIDATE_SYNCS`] pairs
/// within [`CANDIDATE_AGE_NS`] of the newest, per record (and the record
/// table is bounded).
#[derive(Debug, Default)]
pub(super) struct CandidateSyncs {
    pending: Option<PendingSync>,
    /// (t1 incl. correctionField, t2) pairs, oldest first.
    pairs: VecDeque<(PtpTimestamp, LocalNs)>,
}

/// Sync pairs kept per candidate (and in [`SlaveSide::backlog`]).
const CANDIDATE_SYNCS: usize = 64;
/// The newest kept pairs fed with the first meanPathDelay: as many as the
/// slowest servo needs to lock (linreg: 6 samples over ≥ 0.5 s, 0.75 s at
/// 8 Sync/s) and two more for samples its outlier test may reject (with 6,
/// one bridge-rig run locked one Sync after the backlog was fed; the
/// simulation, without such noise, locks on 6). More would rest that many
/// samples on a single path-delay measurement.
const BACKLOG_FED: usize = 8;
/// Age beyond which a kept Sync pair is dropped, ns (the servo's window).
const CANDIDATE_AGE_NS: i64 = 4_000_000_000;

impl CandidateSyncs {
    fn push(pairs: &mut VecDeque<(PtpTimestamp, LocalNs)>, t1: PtpTimestamp, t2: LocalNs) {
        pairs.push_back((t1, t2));
        while pairs.len() > CANDIDATE_SYNCS
            || pairs
                .front()
                .is_some_and(|(_, t)| t2.since(*t) > Nanos::from_ns(CANDIDATE_AGE_NS))
        {
            pairs.pop_front();
        }
    }
}

/// The slave side's state.
#[derive(Debug, Default)]
pub(super) struct SlaveSide {
    pending_sync: Option<PendingSync>,
    /// Sync pairs of the parent not yet fed to the servo because no
    /// meanPathDelay exists yet (the candidate's, then the first parent
    /// Syncs); fed in order with the first one. Bounded like
    /// [`CandidateSyncs`].
    backlog: VecDeque<(PtpTimestamp, LocalNs)>,
    /// The parent's last Syncs (the kept ones first), for the rate
    /// meanPathDelay scales slave legs by ([`rate_of`]). Bounded like
    /// [`CandidateSyncs`].
    rate_pairs: VecDeque<(PtpTimestamp, LocalNs)>,
    last_sync: Option<(PtpTimestamp, LocalNs)>,
    pub(super) last_sync_at: Option<LocalNs>,
    delay_req_seq: u16,
    pending_delay: Option<PendingDelayReq>,
    /// Whether [`Timer::DelayReq`] is a scheduled send (true) or the
    /// hold-off after the last request (false: when it has passed, the next
    /// Sync may schedule one).
    pub(super) delay_req_scheduled: bool,
    /// The master's logMinDelayReqInterval (from its Delay_Resp).
    master_log_delay_req: Option<LogInterval>,
    unanswered: u32,
    pub(super) one_way: bool,
    /// meanPathDelay measurements, oldest first.
    delays: VecDeque<DelayMeas>,
    pub(super) mean_path_delay: Option<Nanos>,
    pub(super) last_offset: Option<Nanos>,
    /// (local time, offsetFromMaster ns) of the accepted samples, 10 s.
    pub(super) offsets: VecDeque<(LocalNs, i64)>,
    pub(super) locked_since: Option<LocalNs>,
    pub(super) holdover_since: Option<LocalNs>,
    /// Consecutive Syncs beyond [`super::PortConfig::sync_sanity_limit`].
    insane_in_row: u32,
    /// Residences (t2 − t1 − meanPathDelay under our clock, ns) of the last
    /// [`RESIDENCE_WINDOW`] Syncs, delayed ones included.
    residences: VecDeque<i64>,
    /// Scratch for the median / MAD (no allocation per Sync once full).
    scratch: Vec<i64>,
    /// Consecutive Syncs dropped as delayed.
    delayed_in_row: u32,
    /// One-sided receive latency: the last [`ENVELOPE_WINDOW`] Sync pairs
    /// (t1, t2), and the published clock's shift onto their lower envelope.
    envelope: VecDeque<(PtpTimestamp, LocalNs)>,
    pub(super) envelope_shift: Nanos,
    /// The last lower-envelope line, for meanPathDelay.
    envelope_line: Option<EnvelopeLine>,
    /// The servo's step count when the envelope was last updated.
    envelope_steps: u64,
    /// The envelope's rate against the local clock, averaged over Syncs
    /// (PTP ns per local ns, minus one), and the sum of its weights (s²).
    envelope_rate: Option<(f64, f64)>,
}

/// The lower envelope of one-sided receive latency
/// ([`super::PortConfig::one_sided_rx`]), as found by `envelope_update`:
/// residuals (t2 under `map`, minus t1 + `d`, ns) on it are
/// `q_new + slope·(t2 − t_new)`.
#[derive(Debug, Clone, Copy)]
struct EnvelopeLine {
    map: crate::ptp::clock::ClockMap,
    d: Nanos,
    /// Residual at `t_new`, ns.
    q_new: f64,
    /// Local time, ns.
    t_new: f64,
    /// ns per ns.
    slope: f64,
}

impl EnvelopeLine {
    /// How far the stamp t2 of the Sync sent at t1 lies above the line, ns
    /// (`None` when not finite).
    fn excess(&self, t1: PtpTimestamp, t2: LocalNs) -> Option<f64> {
        let r = residence(&self.map, t1, t2, self.d) as f64;
        let x = r - (self.q_new + self.slope * (t2.as_ns() as f64 - self.t_new));
        x.is_finite().then_some(x)
    }
}

/// The mean local time of `pairs[from..to]`, ns relative to `now`.
fn mean_local_time(
    pairs: &VecDeque<(PtpTimestamp, LocalNs)>,
    from: usize,
    to: usize,
    now: i64,
) -> f64 {
    let k = (to - from).max(1) as f64;
    pairs
        .range(from..to)
        .map(|p| (p.1.as_ns() - now) as f64)
        .sum::<f64>()
        / k
}

/// A Sync's residence under `map`: t2 in master time, minus t1 + `d`
/// (meanPathDelay), ns; clamped to ±2⁶² (a forged t1 cannot overflow what
/// is done with it).
fn residence(map: &crate::ptp::clock::ClockMap, t1: PtpTimestamp, t2: LocalNs, d: Nanos) -> i64 {
    let r = map.to_ptp(t2).as_nanos() - t1.as_nanos() - d.as_ns() as i128;
    r.clamp(i64::MIN as i128 / 2, i64::MAX as i128 / 2) as i64
}

/// meanPathDelay measurements kept (the filter's window).
const DELAY_WINDOW: usize = 63;
/// Bounds of the sync interval a Delay_Req is placed in (2⁻⁷ s, 16 s).
const SYNC_INTERVAL_MIN: Nanos = Nanos::from_ns(7_812_500);
const SYNC_INTERVAL_MAX: Nanos = Nanos::from_ns(16_000_000_000);
/// Longest span after a Sync the fast start's Delay_Reqs are spread over.
const FAST_SPREAD: Nanos = Nanos::from_ns(100_000_000);
/// Largest leg (t4 − t1, t3 − t2) of a meanPathDelay measurement kept, ns
/// (100 s: a forged or stale timestamp is dropped, never overflows).
const LEG_LIMIT_NS: i128 = 100_000_000_000;
/// Syncs in the residence statistics.
const RESIDENCE_WINDOW: usize = 64;
/// Sync pairs in the lower-envelope estimate of
/// [`super::PortConfig::one_sided_rx`] (128 s at 8 Sync/s; 24 KiB).
const ENVELOPE_WINDOW: usize = 1024;
/// Fewest residences before delayed Syncs are judged.
const RESIDENCE_MIN: usize = 16;
/// Most consecutive Syncs dropped as delayed: then they reach the servo
/// (whose step / restart logic decides), so a real shift is never hidden.
const DELAYED_MAX_IN_ROW: u32 = 3;
/// Residence spreads (1.4826·MAD, ≈ σ) beyond the median that mark a Sync
/// as delayed.
const DELAYED_SPREADS: f64 = 4.0;
/// Smallest excess residence that marks a Sync as delayed, ns.
const DELAYED_FLOOR_NS: f64 = 500.0;

impl SlaveSide {
    /// A new parent (§9.3 decision change): forget the old path and pending
    /// exchanges. The Delay_Req timer is stopped by the caller.
    pub(super) fn new_parent(&mut self) {
        self.pending_sync = None;
        self.backlog.clear();
        self.rate_pairs.clear();
        self.pending_delay = None;
        self.delays.clear();
        self.mean_path_delay = None;
        self.master_log_delay_req = None;
        self.unanswered = 0;
        self.one_way = false;
        self.delay_req_scheduled = false;
        self.locked_since = None;
        self.insane_in_row = 0;
        self.residences.clear();
        self.delayed_in_row = 0;
        self.envelope_reset();
    }

    /// Forgets the lower envelope (a new parent, or a step of the clock).
    fn envelope_reset(&mut self) {
        self.envelope.clear();
        self.envelope_shift = Nanos::ZERO;
        self.envelope_line = None;
        self.envelope_rate = None;
    }

    /// The new parent's Syncs from before it qualified become the backlog
    /// (those within [`CANDIDATE_AGE_NS`] of `now`); the record keeps none.
    pub(super) fn take_candidate(&mut self, c: &mut CandidateSyncs, now: LocalNs) {
        c.pending = None;
        self.backlog = std::mem::take(&mut c.pairs);
        self.backlog
            .retain(|(_, t)| now.since(*t) <= Nanos::from_ns(CANDIDATE_AGE_NS));
        self.rate_pairs.clone_from(&self.backlog);
    }

    /// The parent was lost: drop the exchanges in flight.
    pub(super) fn parent_lost(&mut self) {
        self.pending_sync = None;
        self.pending_delay = None;
        if self.holdover_since.is_none() {
            self.holdover_since = self.last_sync_at;
        }
        self.locked_since = None;
    }

    /// Still in the fast start: fewer than 16 delays measured, two-way.
    fn fast_start(&self) -> bool {
        self.delays.len() < 16 && !self.one_way
    }
}

/// The Sync pairs of `pairs` that were not delayed: those whose residence
/// (t2 at `ratio`, PTP ns per local ns, against t1; up to a constant) is
/// within [`DELAYED_SPREADS`] spreads (1.4826·MAD) or [`DELAYED_FLOOR_NS`]
/// of the median, oldest first; all of them when fewer than 4. `residences`
/// is set to every pair's residence about the median, so the delayed-Sync
/// test of the Syncs that follow has its statistics at once.
fn undelayed(
    pairs: &VecDeque<(PtpTimestamp, LocalNs)>,
    ratio: f64,
    residences: &mut VecDeque<i64>,
) -> Vec<(PtpTimestamp, LocalNs)> {
    let Some(&(r1, r2)) = pairs.back() else {
        return Vec::new();
    };
    if pairs.len() < 4 {
        return pairs.iter().copied().collect();
    }
    let e: Vec<i64> = pairs
        .iter()
        .map(|&(t1, t2)| {
            let local = (t2.as_ns() - r2.as_ns()) as f64 * ratio;
            let master = (t1.as_nanos() - r1.as_nanos()) as f64;
            (local - master).clamp(-1e15, 1e15) as i64
        })
        .collect();
    let mut v = e.clone();
    let mid = v.len() / 2;
    let med = *v.select_nth_unstable(mid).1;
    for x in v.iter_mut() {
        *x = (*x - med).abs();
    }
    let mad = *v.select_nth_unstable(mid).1 as f64;
    let limit = (DELAYED_SPREADS * 1.4826 * mad).max(DELAYED_FLOOR_NS);
    residences.clear();
    residences.extend(e.iter().rev().take(RESIDENCE_WINDOW).rev().map(|x| x - med));
    pairs
        .iter()
        .zip(&e)
        .filter(|(_, x)| ((*x - med) as f64) <= limit)
        .map(|(p, _)| *p)
        .collect()
}

/// The rate of the master's clock against ours from Sync pairs (PTP ns
/// per local ns; newest against oldest), when they span ≥ 0.5 s and give a
/// rate within ±1000 ppm (pairs across a step of the master's time do
/// not). Precise enough for a slave leg: 10 µs of Sync noise over 0.5 s is
/// 20 ppm, 2.5 ns on a 125 ms leg.
fn rate_of(pairs: &VecDeque<(PtpTimestamp, LocalNs)>) -> Option<f64> {
    let (&(a1, a2), &(b1, b2)) = (pairs.front()?, pairs.back()?);
    let local = b2.since(a2).as_ns();
    if local < 500_000_000 {
        return None;
    }
    let r = (b1.as_nanos() - a1.as_nanos()) as f64 / local as f64;
    ((r - 1.0).abs() < 1e-3).then_some(r)
}

impl Port {
    /// A Sync from the parent (§9.5.9): one-step samples now, two-step ones
    /// wait for the Follow_Up.
    pub(super) fn on_sync_msg(
        &mut self,
        h: &Header,
        origin_timestamp: PtpTimestamp,
        rx: LocalNs,
        out: &mut Actions,
    ) {
        if Some(h.source_port) != self.parent {
            self.counters.not_from_parent += 1;
            return;
        }
        match SyncIn::of(h, origin_timestamp, rx) {
            SyncIn::Pending(p) => self.slave.pending_sync = Some(p),
            SyncIn::Pair(t1, t2) => {
                self.on_sync(t1, t2, LogInterval::new(h.log_message_interval), out);
            }
        }
    }

    /// A Sync while we have no parent (LISTENING): kept on the record of
    /// the foreign master that sent it ([`CandidateSyncs`]) when it has
    /// announced itself from the same address, else dropped and counted
    /// as `not_from_parent`.
    pub(super) fn on_candidate_sync(
        &mut self,
        h: &Header,
        origin_timestamp: PtpTimestamp,
        rx: LocalNs,
    ) {
        let src = self.src;
        let kept = !self.cfg.master_only
            && self.parent.is_none()
            && match self
                .foreign
                .get_mut(&h.source_port)
                .and_then(|f| f.candidate_from(src))
            {
                Some(c) => {
                    match SyncIn::of(h, origin_timestamp, rx) {
                        SyncIn::Pending(p) => c.pending = Some(p),
                        SyncIn::Pair(t1, t2) => CandidateSyncs::push(&mut c.pairs, t1, t2),
                    }
                    true
                }
                _ => false,
            };
        if !kept {
            self.counters.not_from_parent += 1;
        }
    }

    /// A Follow_Up from a foreign master that is not our parent: completes
    /// its kept two-step Sync while we have no parent. Whether it was taken.
    fn on_candidate_follow_up(
        &mut self,
        h: &Header,
        precise_origin_timestamp: PtpTimestamp,
    ) -> bool {
        if self.parent.is_some() || self.state != PortState::Listening {
            return false;
        }
        let src = self.src;
        let Some(c) = self
            .foreign
            .get_mut(&h.source_port)
            .and_then(|f| f.candidate_from(src))
        else {
            return false;
        };
        match c
            .pending
            .and_then(|p| p.complete(h, precise_origin_timestamp))
        {
            Some((t1, t2)) => {
                c.pending = None;
                CandidateSyncs::push(&mut c.pairs, t1, t2);
                true
            }
            None => false,
        }
    }

    /// A Follow_Up (§9.5.10) completing the pending two-step Sync.
    pub(super) fn on_follow_up(
        &mut self,
        h: &Header,
        precise_origin_timestamp: PtpTimestamp,
        out: &mut Actions,
    ) {
        if Some(h.source_port) != self.parent {
            if !self.on_candidate_follow_up(h, precise_origin_timestamp) {
                self.counters.not_from_parent += 1;
            }
            return;
        }
        if let Some((t1, t2)) = self
            .slave
            .pending_sync
            .and_then(|p| p.complete(h, precise_origin_timestamp))
            && matches!(self.state, PortState::Slave | PortState::Uncalibrated)
        {
            self.slave.pending_sync = None;
            self.on_sync(t1, t2, LogInterval::new(h.log_message_interval), out);
        }
    }

    /// A Delay_Resp (§9.5.12, §11.3.2): t4 for our pending request gives a
    /// meanPathDelay measurement.
    pub(super) fn on_delay_resp(
        &mut self,
        h: &Header,
        receive_timestamp: PtpTimestamp,
        requesting_port: PortIdentity,
        out: &mut Actions,
    ) {
        if requesting_port != self.cfg.port_identity() || Some(h.source_port) != self.parent {
            return;
        }
        if h.log_message_interval != 0x7F {
            self.slave.master_log_delay_req =
                Some(LogInterval::new(h.log_message_interval).clamp(-7, 7));
        }
        let Some(pd) = self.slave.pending_delay else {
            return;
        };
        if pd.seq != h.sequence_id {
            return;
        }
        let Some(t3) = pd.t3 else { return };
        self.slave.pending_delay = None;
        self.counters.delay_resp += 1;
        self.slave.unanswered = 0;
        self.slave.one_way = false;
        let t4 = receive_timestamp + Nanos::from_ns(-ns_from_corr(h.correction));
        let (t1, t2) = pd.sync;
        let master_leg = t4.as_nanos() - t1.as_nanos();
        let slave_leg = t3.as_ns() as i128 - t2.as_ns() as i128;
        let ratio = self.delay_ratio();
        let m = DelayMeas {
            master_leg: master_leg.clamp(-LEG_LIMIT_NS, LEG_LIMIT_NS) as i64,
            slave_leg: slave_leg.clamp(-LEG_LIMIT_NS, LEG_LIMIT_NS) as i64,
            t1,
            t2,
        };
        if master_leg.abs() < LEG_LIMIT_NS
            && slave_leg.abs() < LEG_LIMIT_NS
            && m.delay(ratio).abs() < 1_000_000_000
        {
            let s = &mut self.slave;
            s.delays.push_back(m);
            while s.delays.len() > DELAY_WINDOW {
                s.delays.pop_front();
            }
            // Mean of the middle half (interquartile mean: as robust as the
            // median against the queueing tail, and its steps as the window
            // slides are smaller), each measurement at today's frequency.
            // One-sided receive latency: each measurement's Sync stamp is
            // put on the current lower envelope, as the published clock is
            // (half of its excess over the envelope was in that round
            // trip), so meanPathDelay and the clock rest on one latency.
            let line = s.envelope_line;
            let mut v: Vec<i64> = s
                .delays
                .iter()
                .map(|m| {
                    let d = m.delay(ratio);
                    match line.and_then(|l| l.excess(m.t1, m.t2)) {
                        Some(x) if x.abs() < 1e9 => d - (x / 2.0).round() as i64,
                        _ => d,
                    }
                })
                .collect();
            v.sort_unstable();
            let est = if self.cfg.one_sided_rx {
                // The Delay_Req's user-space stamp t3 is read before the
                // send and so is early by the send's latency, never late:
                // t4 − t3 has a one-sided excess too. The lower envelope
                // here is the 10th percentile of the measurements (their
                // Sync halves on the Sync envelope once it has a line; the
                // raw ones before, whose excess is one-sided as well: under
                // wine their interquartile mean was 0.9-1.2 ms for the first
                // 6 s, ~0.1 ms after), never below zero (an early line can
                // overcorrect).
                v[v.len() / 10].max(0)
            } else {
                let (lo, hi) = (v.len() / 4, v.len() - v.len() / 4);
                let mid = &v[lo..hi.max(lo + 1)];
                (mid.iter().map(|&x| x as i128).sum::<i128>() / mid.len() as i128) as i64
            };
            let old = s.mean_path_delay;
            let d = Nanos::from_ns(est);
            s.mean_path_delay = Some(d);
            // Every sample the servo holds used the old meanPathDelay, so
            // they move with it (`Servo::shift_master`); otherwise the servo
            // takes the change for the master's, and a filter with a long
            // memory keeps the first measurements' error (bridge rig, Kalman:
            // a first measurement of 16 µs where the next 60 averaged
            // 26.5 µs left the clock 5 µs off for the whole 50 s run).
            if let Some(old) = old {
                self.servo.shift_master(d - old);
            }
            let first = old.is_none();
            // The first meanPathDelay also completes the Syncs kept without
            // one: the parent's from before it qualified and those since
            // (the one this request was paired with among them), fed in
            // order, so the servo locks now rather than on Syncs to come
            // (what matters at 1 Sync/s and after a 2 s qualification).
            if first
                && matches!(self.state, PortState::Slave | PortState::Uncalibrated)
                && !self.servo.state().usable()
            {
                // Delayed Syncs among them are left out, as `sync_is_delayed`
                // leaves them out once locked (bridge rig: ~1 % of Syncs
                // 50-70 µs late; one among the first samples put the clock
                // 30-60 µs off for its first second).
                let kept = undelayed(&self.slave.backlog, ratio, &mut self.slave.residences);
                self.slave.backlog.clear();
                let from = kept.len().saturating_sub(BACKLOG_FED);
                for &(t1, t2) in &kept[from..] {
                    self.feed_servo(t1, t2, d, out);
                }
                if self.cfg.one_sided_rx {
                    // The envelope takes the older ones too, before those
                    // (its line needs a record 4 s long; these are up to
                    // 4 s old; the servo's anchor above reset it).
                    let e = &mut self.slave.envelope;
                    for &p in kept[..from].iter().rev() {
                        if e.len() < ENVELOPE_WINDOW {
                            e.push_front(p);
                        }
                    }
                }
            }
        } else {
            self.counters.malformed += 1;
        }
    }

    /// The rate (PTP ns per local ns) meanPathDelay scales slave legs by:
    /// the parent's last Syncs' (the kept ones included, so the first
    /// measurement, which locks the servo, has one), else the servo's (a
    /// seed, or 1). Not the servo's first: in the first seconds after lock
    /// the Kalman filter's frequency swung ±100 ppm on the bridge rig, 11 µs
    /// on a 112 ms slave leg.
    fn delay_ratio(&self) -> f64 {
        rate_of(&self.slave.rate_pairs).unwrap_or_else(|| self.servo.freq().as_ratio())
    }

    /// The TX timestamp (t3) of our Delay_Req `seq`.
    pub(super) fn on_delay_req_sent(&mut self, seq: u16, t3: LocalNs) {
        if let Some(pd) = self.slave.pending_delay.as_mut()
            && pd.seq == seq
        {
            pd.t3 = Some(t3);
        }
    }

    /// One (t1, t2) pair: a servo sample (offsetFromMaster, §11.2) and the
    /// Delay_Req timing.
    fn on_sync(
        &mut self,
        t1: PtpTimestamp,
        t2: LocalNs,
        log_interval: LogInterval,
        out: &mut Actions,
    ) {
        if !self.sync_is_sane(t1, t2) {
            return;
        }
        if self.sync_is_delayed(t1, t2) {
            self.counters.sync_delayed += 1;
            return;
        }
        // The sync interval the next Delay_Req is placed in: as the header
        // says, else (Follow_Up may carry 0x7F, "unspecified") as measured
        // from the previous Sync (a parent's, else a kept one) unless that
        // is stale, else 1 s.
        let prev = (self.slave.last_sync_at).or(self.slave.backlog.back().map(|p| p.1));
        let interval = match prev {
            _ if (-7..=4).contains(&log_interval.as_i8()) => log_interval.as_nanos(),
            Some(p) if t2 > p && t2.since(p) <= Nanos::from_secs(4) => t2.since(p),
            _ => Nanos::from_secs(1),
        }
        .clamp(SYNC_INTERVAL_MIN, SYNC_INTERVAL_MAX);
        self.slave.last_sync = Some((t1, t2));
        self.slave.last_sync_at = Some(t2);
        CandidateSyncs::push(&mut self.slave.rate_pairs, t1, t2);
        // Path delay: measured, or one-way fallback.
        let delay = match (self.slave.mean_path_delay, self.slave.one_way) {
            (Some(d), _) => Some(d),
            (None, true) => Some(self.cfg.assumed_delay),
            (None, false) => None,
        };
        if let Some(d) = delay {
            // Samples flow (one-way fallback included): a backlog kept
            // before is older than them and must never be fed after them.
            self.slave.backlog.clear();
            self.feed_servo(t1, t2, d, out);
        } else {
            CandidateSyncs::push(&mut self.slave.backlog, t1, t2);
        }
        self.schedule_delay_req(interval);
    }

    /// The port may be SLAVE with the servo in `st`: usable and not in
    /// holdover; with one-sided receive latency also only once the envelope
    /// has a line (its halves 2 s apart): until then the clock rests on raw
    /// user-space stamps, ms off under wine while the process starts (wine
    /// runs: −3.8 to +0.7 ms in the first 5 s).
    fn slave_ready(&self, st: ServoState) -> bool {
        st.usable()
            && st != ServoState::Holdover
            && (!self.cfg.one_sided_rx || self.slave.envelope_line.is_some())
    }

    /// One servo sample: master time t1 + meanPathDelay at local t2
    /// (offsetFromMaster, §11.2), then the port state and the published map.
    fn feed_servo(&mut self, t1: PtpTimestamp, t2: LocalNs, d: Nanos, out: &mut Actions) {
        {
            let was_usable = self.slave_ready(self.servo.state());
            let r = self.servo.sample(t2, t1 + d);
            self.counters.sync_samples += 1;
            if self.cfg.one_sided_rx {
                // Between the servo and the publication: the shift is taken
                // against the map published with it (taken before the
                // servo, each Sync's refit of a ms-noisy fit moved the
                // clock by up to ~100 µs under the old shift).
                self.envelope_update(t1, t2, d);
            }
            let usable = self.slave_ready(r.state);
            let s = &mut self.slave;
            s.last_offset = Some(r.offset);
            if r.accepted && !r.stepped {
                s.offsets.push_back((t2, r.offset.as_ns()));
            }
            while s
                .offsets
                .front()
                .is_some_and(|(t, _)| t2.since(*t) > Nanos::from_secs(10))
            {
                s.offsets.pop_front();
            }
            if usable && !was_usable {
                s.locked_since = Some(t2);
            }
            if !usable {
                s.locked_since = None;
            }
            if usable {
                s.holdover_since = None;
            }
            self.set_state(if usable {
                PortState::Slave
            } else {
                PortState::Uncalibrated
            });
            self.publish(out);
        }
    }

    /// The Delay_Req after a Sync.
    fn schedule_delay_req(&mut self, interval: Nanos) {
        let now = self.now;
        // Delay_Req timing (§11.3): at a random point of the following sync
        // interval, so the request does not travel in the same phase as the
        // master's Sync traffic. The fast start included: on the bridge rig
        // (software stamps) requests sent ~0.1 ms after a Sync measured
        // 12-15 µs where random-phase ones measured 21-33 µs, and the first
        // meanPathDelay, from such a request, put the clock 15-19 µs off for
        // its first 5 s. Each measurement's slave leg is scaled by the
        // frequency known when meanPathDelay is computed (`DelayMeas`), so
        // the longer t3 − t2 costs nothing once the frequency is known.
        let may_schedule = match self.timers.get(Timer::DelayReq) {
            None => true,
            Some(at) => !self.slave.delay_req_scheduled && now >= at,
        };
        if may_schedule {
            // The fast start spreads its requests over at most 100 ms after
            // the Sync: at 1 Sync/s the first meanPathDelay, and so the
            // lock, still follows that Sync within 0.1 s.
            let iv = if self.slave.fast_start() {
                interval.min(FAST_SPREAD)
            } else {
                interval
            }
            .as_ns()
            .max(1);
            let r = (self.rand() % 1000) as i64;
            self.timers.set(
                Timer::DelayReq,
                now + Nanos::from_ns(iv / 1000 * r * 9 / 10),
            );
            self.slave.delay_req_scheduled = true;
        }
    }

    /// The sanity check of a Sync once locked: offsetFromMaster (i128, no
    /// overflow for any 80-bit timestamp) within
    /// [`super::PortConfig::sync_sanity_limit`], or confirmed by
    /// `sync_sanity_confirm` such Syncs in a row (then the servo re-anchors).
    fn sync_is_sane(&mut self, t1: PtpTimestamp, t2: LocalNs) -> bool {
        let st = self.servo.state();
        let Some(map) = self.servo.map() else {
            return true;
        };
        if !st.usable() {
            return true;
        }
        let d = self.slave.mean_path_delay.unwrap_or(self.cfg.assumed_delay);
        let off = map.to_ptp(t2).as_nanos() - (t1.as_nanos() + d.as_ns() as i128);
        if off.unsigned_abs() <= self.cfg.sync_sanity_limit.as_ns().unsigned_abs() as u128 {
            self.slave.insane_in_row = 0;
            return true;
        }
        self.slave.insane_in_row += 1;
        if self.slave.insane_in_row >= self.cfg.sync_sanity_confirm.max(1) {
            self.slave.insane_in_row = 0;
            self.servo.reset_keep_freq();
            return true;
        }
        self.counters.sync_insane += 1;
        false
    }

    /// One-sided receive latency ([`super::PortConfig::one_sided_rx`]):
    /// keeps the last [`ENVELOPE_WINDOW`] Sync pairs and sets the published
    /// clock's shift. Called between the servo's sample and the
    /// publication, so the shift is against the map published with it.
    /// Each pair's residual (t2 under the servo's current map, minus t1 +
    /// meanPathDelay, ns; a late stamp reads high) is taken afresh, so all
    /// are against one line. The lower envelope is a line under them:
    /// - its slope is the tilt at which the 1st percentiles of the older
    ///   and the newer half agree (a few fixed-point steps), turned into a
    ///   rate against the local clock and averaged over ~32 Syncs, weighted
    ///   by the halves' distance squared. At that fixed point which Sync is
    ///   a percentile no longer depends on the servo's map, whose frequency
    ///   moves by tens of ppm per Sync when the stamps are ms-noisy. No
    ///   shift until the halves are 2 s apart;
    /// - its height at the newest pair is the 1st percentile of all pairs
    ///   with that slope taken out (the least-delayed Syncs, with a margin
    ///   of 1 % for a stray early stamp).
    ///
    /// The shift moves the clock onto that line. Until [`RESIDENCE_MIN`]
    /// pairs exist, no shift.
    fn envelope_update(&mut self, t1: PtpTimestamp, t2: LocalNs, d: Nanos) {
        let steps = self.servo.steps();
        let s = &mut self.slave;
        if s.envelope_steps != steps {
            // The clock was stepped (re-anchored): the old pairs are on
            // another line.
            s.envelope_steps = steps;
            s.envelope_reset();
        }
        s.envelope.push_back((t1, t2));
        while s.envelope.len() > ENVELOPE_WINDOW {
            s.envelope.pop_front();
        }
        let Some(map) = self.servo.map() else {
            return;
        };
        let n = s.envelope.len();
        if n < RESIDENCE_MIN {
            s.envelope_shift = Nanos::ZERO;
            return;
        }
        let res = |(t1, t2): (PtpTimestamp, LocalNs)| residence(&map, t1, t2, d);
        let now = t2.as_ns();
        // The (1/div)-quantile of `from..to`'s residuals with `slope`
        // (ns per ns) taken out about `now`, ns.
        let mut pct = |from: usize, to: usize, slope: f64, div: usize| {
            s.scratch.clear();
            s.scratch.extend(s.envelope.range(from..to).map(|&p| {
                let tilt = slope * (p.1.as_ns() - now) as f64;
                (res(p) as f64 - tilt).clamp(-4e18, 4e18) as i64
            }));
            let k = s.scratch.len();
            *s.scratch.select_nth_unstable(k / div).1 as f64
        };
        let mean_t = |from: usize, to: usize| mean_local_time(&s.envelope, from, to, now);
        let half = n / 2;
        let (t_old, t_new) = (mean_t(0, half), mean_t(half, n));
        // The slope: until the halves' percentiles agree with the tilt
        // taken out. Which Sync is a half's 1st percentile depends on the
        // tilt of the map the residuals are taken against; at this fixed
        // point it does not, so the servo's ms-noisy frequency (tens of ppm
        // from one Sync to the next) no longer moves the envelope.
        let mut slope = 0.0;
        if t_new > t_old {
            for _ in 0..4 {
                let step = (pct(half, n, slope, 100) - pct(0, half, slope, 100)) / (t_new - t_old);
                slope += step;
                if step.abs() < 1e-9 {
                    break;
                }
            }
        }
        // That slope still wanders by a few ppm from one Sync to the next,
        // and the least-delayed Sync may lie a whole window before the
        // newest (128 s × 1 ppm = 128 µs); the oscillators' rate does not
        // wander so. So the rate it gives (the map's minus the slope) is
        // averaged, each estimate weighted by its precision (the square of
        // the halves' distance in s: early, short windows count little)
        // with a memory of ~32 Syncs, and the slope used is that rate
        // against the map. Until the halves are 2 s apart, no rate of its
        // own: the map's.
        let map_rate = map.freq.as_ppb() * 1e-9;
        let raw = map_rate - slope;
        let dt_s = (t_new - t_old) / 1e9;
        if raw.is_finite() && dt_s >= 2.0 {
            let w = dt_s * dt_s;
            let (r, wsum) = s.envelope_rate.unwrap_or((raw, 0.0));
            let wsum = wsum * (31.0 / 32.0) + w;
            s.envelope_rate = Some((r + (raw - r) * (w / wsum), wsum));
        }
        slope = match s.envelope_rate {
            Some((r, _)) => map_rate - r,
            None => {
                // Too short a record for a line of its own (at start-up
                // under load its few pairs put the clock ms off): no shift
                // yet, and meanPathDelay as without the envelope.
                s.envelope_shift = Nanos::ZERO;
                s.envelope_line = None;
                return;
            }
        };
        // All pairs, de-tilted onto `now`: the envelope at the newest Sync.
        let at_now = pct(0, n, slope, 100);
        if !at_now.is_finite() || at_now.abs() >= self.cfg.servo.step_threshold.as_ns() as f64 {
            // Not a latency: a shift of the master, for the servo to judge.
            s.envelope_reset();
            return;
        }
        s.envelope_shift = Nanos::from_ns(-at_now.round() as i64);
        s.envelope_line = Some(EnvelopeLine {
            map,
            d,
            q_new: at_now,
            t_new: now as f64,
            slope,
        });
    }

    /// Whether a Sync was delayed on its way (queued behind other traffic):
    /// its residence r = t2 − t1 − meanPathDelay (t2 under our clock, IEEE
    /// 1588-2019 §11.3) exceeds the median of the last
    /// [`RESIDENCE_WINDOW`] residences by more than [`DELAYED_SPREADS`]
    /// spreads (1.4826·MAD) and [`DELAYED_FLOOR_NS`]. One-sided: queueing
    /// only adds delay. Judged only with a usable clock and a measured
    /// meanPathDelay; at most [`DELAYED_MAX_IN_ROW`] in a row are dropped.
    fn sync_is_delayed(&mut self, t1: PtpTimestamp, t2: LocalNs) -> bool {
        let st = self.servo.state();
        let (Some(map), Some(d)) = (self.servo.map(), self.slave.mean_path_delay) else {
            return false;
        };
        if !st.usable() || st == ServoState::Holdover {
            self.slave.residences.clear();
            return false;
        }
        let r = residence(&map, t1, t2, d);
        let s = &mut self.slave;
        let mut delayed = false;
        if s.residences.len() >= RESIDENCE_MIN {
            s.scratch.clear();
            s.scratch.extend(s.residences.iter().copied());
            let mid = s.scratch.len() / 2;
            let med = *s.scratch.select_nth_unstable(mid).1;
            for x in s.scratch.iter_mut() {
                *x = (*x - med).abs();
            }
            let mad = *s.scratch.select_nth_unstable(mid).1 as f64;
            let limit = (DELAYED_SPREADS * 1.4826 * mad).max(DELAYED_FLOOR_NS);
            // Beyond the servo's step threshold it is no queueing delay but a
            // shift of the master: the servo's step logic decides.
            let excess = (r - med) as f64;
            delayed = excess > limit
                && excess < self.cfg.servo.step_threshold.as_ns() as f64
                && s.delayed_in_row < DELAYED_MAX_IN_ROW;
        }
        s.residences.push_back(r);
        while s.residences.len() > RESIDENCE_WINDOW {
            s.residences.pop_front();
        }
        s.delayed_in_row = if delayed { s.delayed_in_row + 1 } else { 0 };
        delayed
    }

    /// A passed Delay_Req hold-off just opens the way for the next Sync.
    pub(super) fn open_delay_req_holdoff(&mut self, now: LocalNs) {
        if !self.slave.delay_req_scheduled && self.timers.is_expired(Timer::DelayReq, now) {
            self.timers.stop(Timer::DelayReq);
        }
    }

    /// Sends a Delay_Req (§9.5.11) and arms the hold-off before the next.
    pub(super) fn send_delay_req(&mut self, out: &mut Actions) {
        let now = self.now;
        let Some((t1, t2)) = self.slave.last_sync else {
            return;
        };
        if self.slave.pending_delay.is_some() {
            self.slave.unanswered += 1;
            if self.slave.unanswered >= self.cfg.one_way_after {
                self.slave.one_way = true;
            }
        }
        let seq = self.slave.delay_req_seq;
        self.slave.delay_req_seq = seq.wrapping_add(1);
        let h = Header::new(
            MessageType::DelayReq,
            self.cfg.domain,
            self.cfg.port_identity(),
            seq,
        );
        let msg = Message {
            header: h,
            body: Body::DelayReq {
                origin_timestamp: self.own_map().to_ptp(now),
            },
        };
        let token = self.token(TxKind::DelayReq(seq));
        let fast = self.slave.fast_start();
        self.slave.pending_delay = Some(PendingDelayReq {
            seq,
            t3: None,
            sync: (t1, t2),
        });
        self.counters.delay_req_sent += 1;
        out.push(Action::SendEvent {
            data: msg.to_bytes(),
            token,
        });
        // Fast start: one request per Sync (each at a random point of its
        // interval) until 16 delays are measured
        // (a deliberate deviation from logMinDelayReqInterval, for a lock in
        // about a second), then the master's logMinDelayReqInterval,
        // randomised 0.5-1.5×.
        self.slave.delay_req_scheduled = false;
        if fast {
            self.timers.stop(Timer::DelayReq);
        } else {
            let base = self
                .slave
                .master_log_delay_req
                .unwrap_or(self.cfg.log_min_delay_req_interval)
                .as_nanos();
            let r = (self.rand() % 1000) as i64;
            let iv = Nanos::from_ns(base.as_ns() / 2 + base.as_ns() / 1000 * r);
            self.timers.set(Timer::DelayReq, now + iv);
        }
    }
}
