//! The sans-IO PTP port of an ordinary clock (IEEE 1588-2019 §9.2, §11.3).
//!
//! # Driving a [`Port`] (call-order contract)
//! All times are readings of the local reference clock ([`LocalNs`],
//! `CLOCK_MONOTONIC_RAW` at run time), passed in explicitly; the port never
//! reads a clock, never sleeps and never does IO.
//! 1. Every datagram received on UDP port 319 (event) goes to
//!    [`Port::handle_event`] with its receive timestamp converted to
//!    `LocalNs`; every datagram on port 320 (general) goes to
//!    [`Port::handle_general`].
//! 2. Each `handle_*` returns `#[must_use]` [`Action`]s, to be executed in
//!    order: send an event message (to 224.0.1.129:319) and report its
//!    transmit timestamp back with [`Port::handle_tx_timestamp`] using the
//!    [`TxToken`] it came with (or [`Port::handle_tx_failed`] if none
//!    arrives within the IO layer's timeout); send a general message (to
//!    224.0.1.129:320); publish a new [`ClockMap`] to the
//!    [`super::clock::PtpClockHandle`].
//! 3. After handling input, ask [`Port::poll_timeout`] for the next deadline
//!    and call [`Port::handle_timeout`] when it has passed (calling it early
//!    is harmless).
//!
//! `now` must never go backwards.
//!
//! # Behaviour
//! - States LISTENING, UNCALIBRATED, SLAVE, MASTER, PASSIVE, FAULTY (§9.2.5).
//! - BMCA (§9.3) over qualified foreign masters (≥ 2 Announces within 4
//!   announce intervals, §9.3.2.4.4; a single one when it is the only
//!   candidate and we have no parent, for a fast start) and our own clock, at each Announce and
//!   at each announceReceiptTimeout.
//! - E2E delay request-response (§11.3), one-step and two-step masters.
//! - One-way fallback: after [`PortConfig::one_way_after`] unanswered
//!   Delay_Reqs, samples use the last measured (or the configured assumed)
//!   meanPathDelay and [`PortStatus::one_way`] is set; a Delay_Resp ends it.
//! - Master role: Announce, two-step Sync + Follow_Up, Delay_Resp.
//! - Master loss: announceReceiptTimeout → the servo goes to holdover (keeps
//!   its last frequency); [`PortStatus::holdover_age`] counts from the last
//!   Sync.

use std::collections::{HashMap, VecDeque};
use std::ops::Add;

use super::bmca::{self, Dataset, Decision};
use super::clock::{ClockMap, ServoState};
use super::msg::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Flags, Header, Message, MessageType,
    PortIdentity,
};
use super::servo::{Servo, ServoConfig, new_servo};
use super::time::{LocalNs, PtpTimestamp};
use crate::units::{Nanos, Ppb};

/// Port states (§9.2.5), as printed in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PortState {
    /// Waiting for Announces.
    Listening,
    /// Slave to a chosen master, servo not yet locked.
    Uncalibrated,
    /// Slave, servo locked.
    Slave,
    /// Master.
    Master,
    /// A better master exists; silent.
    Passive,
    /// Repeated IO faults (e.g. missing TX timestamps).
    Faulty,
}

impl PortState {
    /// Upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            PortState::Listening => "LISTENING",
            PortState::Uncalibrated => "UNCALIBRATED",
            PortState::Slave => "SLAVE",
            PortState::Master => "MASTER",
            PortState::Passive => "PASSIVE",
            PortState::Faulty => "FAULTY",
        }
    }
}

/// Static configuration of a port (defaults: IEEE 1588 default profile
/// with AES67's 8 Sync/s for our master role).
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Our clockIdentity.
    pub clock_identity: ClockIdentity,
    /// Our portNumber (1).
    pub port_number: u16,
    /// domainNumber.
    pub domain: u8,
    /// priority1 (128).
    pub priority1: u8,
    /// priority2 (128).
    pub priority2: u8,
    /// Our clockQuality (class 248 default; 255 when slave-only).
    pub quality: ClockQuality,
    /// Never become master.
    pub slave_only: bool,
    /// Always master (no BMCA).
    pub master_only: bool,
    /// logAnnounceInterval (1 → 2 s).
    pub log_announce_interval: i8,
    /// logSyncInterval of our master role (−3 → 125 ms, AES67 media profile).
    pub log_sync_interval: i8,
    /// logMinDelayReqInterval used until a Delay_Resp tells us the master's (0 → 1 s).
    pub log_min_delay_req_interval: i8,
    /// announceReceiptTimeout in announce intervals (3).
    pub announce_receipt_timeout: u8,
    /// Unanswered Delay_Reqs before one-way mode (4).
    pub one_way_after: u32,
    /// meanPathDelay assumed in one-way mode when none was ever measured.
    pub assumed_delay: Nanos,
    /// currentUtcOffset we announce as master (37 s).
    pub utc_offset: i16,
    /// Announce ptpTimescale (TAI) as master; false = ARB.
    pub ptp_timescale: bool,
    /// timeSource we announce (0xA0 internal oscillator).
    pub time_source: u8,
    /// Servo tuning.
    pub servo: ServoConfig,
    /// Initial clock map for the master role before any sync (e.g.
    /// `CLOCK_REALTIME` + UTC offset); `None` = PTP time equals local time.
    pub initial_map: Option<ClockMap>,
    /// Missing TX timestamps in a row before FAULTY (5).
    pub faulty_after: u32,
}

impl PortConfig {
    /// Defaults for `clock_identity`.
    pub fn new(clock_identity: ClockIdentity) -> PortConfig {
        PortConfig {
            clock_identity,
            port_number: 1,
            domain: 0,
            priority1: 128,
            priority2: 128,
            quality: ClockQuality::default(),
            slave_only: false,
            master_only: false,
            log_announce_interval: 1,
            log_sync_interval: -3,
            log_min_delay_req_interval: 0,
            announce_receipt_timeout: 3,
            one_way_after: 4,
            assumed_delay: Nanos::ZERO,
            utc_offset: 37,
            ptp_timescale: true,
            time_source: 0xA0,
            servo: ServoConfig::default(),
            initial_map: None,
            faulty_after: 5,
        }
    }
    fn port_identity(&self) -> PortIdentity {
        PortIdentity {
            clock_identity: self.clock_identity,
            port_number: self.port_number,
        }
    }
}

/// A one-use token for one sent event message; hand it back with its TX
/// timestamp. Not `Clone`: each send gets exactly one timestamp report.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TxToken(pub(crate) u64);

impl TxToken {
    /// The token's number (for the IO layer's bookkeeping, e.g. keyed by
    /// SOF_TIMESTAMPING_OPT_ID).
    pub fn id(&self) -> u64 {
        self.0
    }
}

/// What the IO layer must do.
#[derive(Debug)]
pub enum Action {
    /// Send to 224.0.1.129:319, then report the TX timestamp with `token`.
    SendEvent {
        /// Message bytes.
        data: Vec<u8>,
        /// Token to return with the TX timestamp.
        token: TxToken,
    },
    /// Send to 224.0.1.129:320.
    SendGeneral {
        /// Message bytes.
        data: Vec<u8>,
    },
    /// Publish the virtual clock.
    PublishClock {
        /// New map.
        map: ClockMap,
        /// Servo state (for `locked()`).
        servo: ServoState,
        /// Seconds to subtract from PTP time for UTC (0 on ARB).
        utc_offset_s: i32,
    },
}

/// Actions from one call.
pub type Actions = Vec<Action>;

/// Counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PortCounters {
    /// Datagrams that failed to parse or were inconsistent.
    pub malformed: u64,
    /// Messages for another domain.
    pub other_domain: u64,
    /// Sync samples fed to the servo.
    pub sync_samples: u64,
    /// Delay_Resp received for us.
    pub delay_resp: u64,
    /// Delay_Req sent.
    pub delay_req_sent: u64,
    /// TX timestamps that never came.
    pub tx_timestamp_failures: u64,
    /// Announces received.
    pub announces: u64,
    /// Delay_Req answered (master role).
    pub delay_req_answered: u64,
    /// Syncs sent (master role).
    pub syncs_sent: u64,
}

/// A snapshot of the port for status lines and JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortStatus {
    /// Port state.
    pub state: PortState,
    /// Servo state.
    pub servo: ServoState,
    /// The parent (master) port, when slave/uncalibrated.
    pub parent: Option<String>,
    /// grandmasterIdentity (ours when master).
    pub gm_identity: String,
    /// Last offsetFromMaster, ns.
    pub offset_from_master_ns: Option<i64>,
    /// meanPathDelay, ns (filtered).
    pub mean_path_delay_ns: Option<i64>,
    /// Frequency of our clock vs the local reference, ppb.
    pub freq_ppb: f64,
    /// One-way mode (no Delay_Resp).
    pub one_way: bool,
    /// rms of offsetFromMaster over the last status window, ns.
    pub rms_ns: Option<f64>,
    /// max |offsetFromMaster| over the last status window, ns.
    pub max_abs_ns: Option<i64>,
    /// Time since the servo last became locked, s.
    pub locked_for_s: Option<f64>,
    /// Time since the last Sync sample while in holdover, s.
    pub holdover_age_s: Option<f64>,
    /// Outliers rejected by the servo.
    pub outliers: u64,
    /// Clock steps (re-anchors) so far.
    pub steps: u64,
    /// The master's timescale is PTP (TAI).
    pub ptp_timescale: bool,
    /// currentUtcOffset of the master (or ours), s.
    pub utc_offset_s: i16,
    /// Counters.
    pub counters: PortCounters,
}

#[derive(Debug)]
struct Foreign {
    announce: AnnounceBody,
    flags: Flags,
    times: VecDeque<LocalNs>,
    last: LocalNs,
}

#[derive(Debug, Clone, Copy)]
struct PendingSync {
    seq: u16,
    t2: LocalNs,
    correction: i64,
    source: PortIdentity,
}

#[derive(Debug, Clone, Copy)]
struct PendingDelayReq {
    seq: u16,
    t3: Option<LocalNs>,
    /// (t1, t2) of the Sync this request was paired with.
    sync: (PtpTimestamp, LocalNs),
    /// Sent during the fast start (right after a Sync).
    fast: bool,
}

#[derive(Debug)]
enum TxKind {
    Sync(u16),
    DelayReq(u16),
}

/// Sub-nanosecond precision is lost: correctionField is handled in whole ns.
fn ns_from_corr(c: i64) -> i64 {
    c >> 16
}

fn interval(log: i8) -> Nanos {
    let log = log.clamp(-10, 10) as i32;
    if log >= 0 {
        Nanos(1_000_000_000i64 << log)
    } else {
        Nanos(1_000_000_000i64 >> (-log))
    }
}

/// The port. See the module doc for the call-order contract.
#[derive(Debug)]
pub struct Port {
    cfg: PortConfig,
    state: PortState,
    servo: Box<dyn Servo>,
    foreign: HashMap<PortIdentity, Foreign>,
    parent: Option<PortIdentity>,
    parent_flags: Flags,
    parent_announce: Option<AnnounceBody>,
    announce_deadline: Option<LocalNs>,
    // slave side
    pending_sync: Option<PendingSync>,
    last_sync: Option<(PtpTimestamp, LocalNs)>,
    last_sync_at: Option<LocalNs>,
    delay_req_seq: u16,
    pending_delay: Option<PendingDelayReq>,
    next_delay_req: LocalNs,
    delay_req_at: Option<LocalNs>,
    master_log_delay_req: Option<i8>,
    unanswered: u32,
    one_way: bool,
    /// meanPathDelay measurements (ns, sent during the fast start?).
    delays: VecDeque<(i64, bool)>,
    mean_path_delay: Option<Nanos>,
    last_offset: Option<Nanos>,
    offsets: VecDeque<(LocalNs, i64)>,
    locked_since: Option<LocalNs>,
    holdover_since: Option<LocalNs>,
    // master side
    sync_seq: u16,
    announce_seq: u16,
    next_announce: LocalNs,
    next_sync: LocalNs,
    // tx tokens
    next_token: u64,
    tx: HashMap<u64, TxKind>,
    tx_failures_in_row: u32,
    fault_until: Option<LocalNs>,
    rng: u64,
    counters: PortCounters,
    now: LocalNs,
}

impl Port {
    /// A port in LISTENING at `now`.
    pub fn new(cfg: PortConfig, now: LocalNs) -> Port {
        let mut servo = new_servo(cfg.servo);
        if let Some(m) = cfg.initial_map {
            servo.seed(m);
        }
        let rng = u64::from_be_bytes(cfg.clock_identity.0) | 1;
        let mut p = Port {
            state: PortState::Listening,
            servo,
            foreign: HashMap::new(),
            parent: None,
            parent_flags: Flags::default(),
            parent_announce: None,
            announce_deadline: None,
            pending_sync: None,
            last_sync: None,
            last_sync_at: None,
            delay_req_seq: 0,
            pending_delay: None,
            next_delay_req: now,
            delay_req_at: None,
            master_log_delay_req: None,
            unanswered: 0,
            one_way: false,
            delays: VecDeque::new(),
            mean_path_delay: None,
            last_offset: None,
            offsets: VecDeque::new(),
            locked_since: None,
            holdover_since: None,
            sync_seq: 0,
            announce_seq: 0,
            next_announce: now,
            next_sync: now,
            next_token: 1,
            tx: HashMap::new(),
            tx_failures_in_row: 0,
            fault_until: None,
            rng,
            counters: PortCounters::default(),
            now,
            cfg,
        };
        if p.cfg.master_only {
            p.state = PortState::Master;
        } else {
            p.announce_deadline = Some(now.add(p.announce_timeout()));
        }
        p
    }

    /// Current state.
    pub fn state(&self) -> PortState {
        self.state
    }

    /// The servo (read-only).
    pub fn servo(&self) -> &dyn Servo {
        &*self.servo
    }

    /// Our clock's map, if any.
    pub fn clock_map(&self) -> Option<ClockMap> {
        self.servo.map().or(self.cfg.initial_map)
    }

    fn own_map(&self) -> ClockMap {
        self.clock_map()
            .unwrap_or(ClockMap::new(LocalNs(0), PtpTimestamp(0)))
    }

    fn announce_timeout(&mut self) -> Nanos {
        // §9.2.6.12: announceReceiptTimeout intervals (plus up to one interval
        // of randomness so several slaves do not all become master at once).
        let iv = interval(self.cfg.log_announce_interval);
        let r = self.rand() % 1000;
        Nanos(iv.0 * self.cfg.announce_receipt_timeout as i64 + iv.0 / 1000 * r as i64)
    }

    fn rand(&mut self) -> u64 {
        // xorshift64: deterministic from the clockIdentity.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn token(&mut self, kind: TxKind) -> TxToken {
        let t = self.next_token;
        self.next_token += 1;
        self.tx.insert(t, kind);
        TxToken(t)
    }

    fn own_dataset(&self) -> Dataset {
        let me = self.cfg.port_identity();
        Dataset {
            priority1: self.cfg.priority1,
            gm_identity: self.cfg.clock_identity,
            quality: self.cfg.quality,
            priority2: self.cfg.priority2,
            steps_removed: 0,
            sender: me,
            receiver: me,
        }
    }

    fn utc_offset_s(&self) -> i32 {
        match (&self.parent_announce, self.state) {
            (Some(a), PortState::Slave | PortState::Uncalibrated)
            | (Some(a), PortState::Listening) => {
                if self.parent_flags.has(Flags::PTP_TIMESCALE) {
                    a.current_utc_offset as i32
                } else {
                    0
                }
            }
            _ => {
                if self.cfg.ptp_timescale {
                    self.cfg.utc_offset as i32
                } else {
                    0
                }
            }
        }
    }

    fn publish(&self, out: &mut Actions) {
        if let Some(map) = self.clock_map() {
            let mut servo = self.servo.state();
            if self.state == PortState::Master && servo == ServoState::Unlocked {
                // We are the grandmaster: our clock defines PTP time.
                servo = ServoState::Locked;
            }
            out.push(Action::PublishClock {
                map,
                servo,
                utc_offset_s: self.utc_offset_s(),
            });
        }
    }

    /// Handles one datagram from UDP port 319 with its receive time.
    #[must_use]
    pub fn handle_event(&mut self, data: &[u8], rx: LocalNs, now: LocalNs) -> Actions {
        self.now = now;
        let mut out = Actions::new();
        let Some(m) = self.accept(data) else {
            return out;
        };
        match (&m.body, self.state) {
            (Body::Sync { origin_timestamp }, PortState::Slave | PortState::Uncalibrated) => {
                if Some(m.header.source_port) != self.parent {
                    return out;
                }
                if m.header.flags.has(Flags::TWO_STEP) {
                    self.pending_sync = Some(PendingSync {
                        seq: m.header.sequence_id,
                        t2: rx,
                        correction: m.header.correction,
                        source: m.header.source_port,
                    });
                } else {
                    let t1 = origin_timestamp.add(Nanos(ns_from_corr(m.header.correction)));
                    self.on_sync(t1, rx, m.header.log_message_interval, &mut out);
                }
            }
            (Body::DelayReq { .. }, PortState::Master) => {
                let t4 = self.own_map().to_ptp(rx);
                let mut h = Header::new(
                    MessageType::DelayResp,
                    self.cfg.domain,
                    self.cfg.port_identity(),
                    m.header.sequence_id,
                );
                h.correction = m.header.correction;
                h.log_message_interval = self.cfg.log_min_delay_req_interval;
                let msg = Message {
                    header: h,
                    body: Body::DelayResp {
                        receive_timestamp: t4,
                        requesting_port: m.header.source_port,
                    },
                };
                self.counters.delay_req_answered += 1;
                out.push(Action::SendGeneral {
                    data: msg.to_bytes(),
                });
            }
            (Body::PdelayReq { .. } | Body::PdelayResp { .. }, _) => {} // P2P not used (E2E port)
            _ => {}
        }
        out
    }

    /// Handles one datagram from UDP port 320.
    #[must_use]
    pub fn handle_general(&mut self, data: &[u8], now: LocalNs) -> Actions {
        self.now = now;
        let mut out = Actions::new();
        let Some(m) = self.accept(data) else {
            return out;
        };
        match &m.body {
            Body::Announce(a) => self.on_announce(&m.header, a, &mut out),
            Body::FollowUp {
                precise_origin_timestamp,
            } => {
                if let Some(p) = self.pending_sync
                    && p.seq == m.header.sequence_id
                    && p.source == m.header.source_port
                    && matches!(self.state, PortState::Slave | PortState::Uncalibrated)
                {
                    self.pending_sync = None;
                    let t1 = precise_origin_timestamp.add(Nanos(
                        ns_from_corr(p.correction) + ns_from_corr(m.header.correction),
                    ));
                    self.on_sync(t1, p.t2, m.header.log_message_interval, &mut out);
                }
            }
            Body::DelayResp {
                receive_timestamp,
                requesting_port,
            } => {
                if *requesting_port != self.cfg.port_identity()
                    || Some(m.header.source_port) != self.parent
                {
                    return out;
                }
                if m.header.log_message_interval != 0x7F {
                    self.master_log_delay_req = Some(m.header.log_message_interval.clamp(-7, 7));
                }
                let Some(pd) = self.pending_delay else {
                    return out;
                };
                if pd.seq != m.header.sequence_id {
                    return out;
                }
                let Some(t3) = pd.t3 else { return out };
                self.pending_delay = None;
                self.counters.delay_resp += 1;
                self.unanswered = 0;
                self.one_way = false;
                let t4 = receive_timestamp.add(Nanos(-ns_from_corr(m.header.correction)));
                let (t1, t2) = pd.sync;
                let ratio = self.servo.freq().as_ratio();
                let slave_leg = (t3.0 - t2.0) as f64 * ratio;
                let d = ((t4.0 - t1.0) as f64 - slave_leg) / 2.0;
                if d.is_finite() && d.abs() < 1e9 {
                    self.delays.push_back((d.round() as i64, pd.fast));
                    while self.delays.len() > 31 {
                        self.delays.pop_front();
                    }
                    // Median; once 5 random-phase measurements exist, the
                    // fast-start ones (sent in lock-step with Sync, measured
                    // ~0.5-0.8 µs short here) are left out.
                    let slow = self.delays.iter().filter(|x| !x.1).count();
                    let mut v: Vec<i64> = self
                        .delays
                        .iter()
                        .filter(|x| slow < 5 || !x.1)
                        .map(|x| x.0)
                        .collect();
                    v.sort_unstable();
                    self.mean_path_delay = Some(Nanos(v[v.len() / 2]));
                } else {
                    self.counters.malformed += 1;
                }
            }
            _ => {}
        }
        out
    }

    /// Reports the transmit time (local reference clock) of a sent event message.
    #[must_use]
    pub fn handle_tx_timestamp(&mut self, token: TxToken, ts: LocalNs) -> Actions {
        let mut out = Actions::new();
        self.tx_failures_in_row = 0;
        match self.tx.remove(&token.0) {
            Some(TxKind::Sync(seq)) if self.state == PortState::Master => {
                let t1 = self.own_map().to_ptp(ts);
                let mut h = Header::new(
                    MessageType::FollowUp,
                    self.cfg.domain,
                    self.cfg.port_identity(),
                    seq,
                );
                h.log_message_interval = self.cfg.log_sync_interval;
                self.set_master_flags(&mut h);
                let msg = Message {
                    header: h,
                    body: Body::FollowUp {
                        precise_origin_timestamp: t1,
                    },
                };
                out.push(Action::SendGeneral {
                    data: msg.to_bytes(),
                });
            }
            Some(TxKind::DelayReq(seq)) => {
                if let Some(pd) = self.pending_delay.as_mut()
                    && pd.seq == seq
                {
                    pd.t3 = Some(ts);
                }
            }
            // A Sync stamped after this port left MASTER: no Follow_Up.
            Some(TxKind::Sync(_)) | None => {}
        }
        out
    }

    /// Reports that the TX timestamp for `token` never arrived. Repeated
    /// failures put the port in FAULTY for 16 s (then LISTENING again).
    #[must_use]
    pub fn handle_tx_failed(&mut self, token: TxToken, now: LocalNs) -> Actions {
        self.now = now;
        self.tx.remove(&token.0);
        self.counters.tx_timestamp_failures += 1;
        self.tx_failures_in_row += 1;
        if self.tx_failures_in_row >= self.cfg.faulty_after && self.state != PortState::Faulty {
            self.state = PortState::Faulty;
            self.fault_until = Some(now.add(Nanos::from_secs(16)));
            self.servo.enter_holdover();
        }
        Actions::new()
    }

    /// The next instant [`Self::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<LocalNs> {
        let mut t: Option<LocalNs> = self.announce_deadline;
        let mut consider = |x: LocalNs| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(d) = self.delay_req_at {
            consider(d);
        }
        match self.state {
            PortState::Master => {
                consider(self.next_announce);
                consider(self.next_sync);
            }
            PortState::Faulty => {
                if let Some(f) = self.fault_until {
                    consider(f);
                }
            }
            _ => {}
        }
        t
    }

    /// Runs expired timers.
    #[must_use]
    pub fn handle_timeout(&mut self, now: LocalNs) -> Actions {
        self.now = now;
        let mut out = Actions::new();
        if self.state == PortState::Faulty {
            if self.fault_until.is_some_and(|f| now >= f) {
                self.fault_until = None;
                self.tx_failures_in_row = 0;
                self.state = PortState::Listening;
                self.announce_deadline = Some(now.add(self.announce_timeout()));
            }
            return out;
        }
        if let Some(d) = self.announce_deadline
            && now >= d
        {
            self.on_announce_timeout(&mut out);
        }
        if self.delay_req_at.is_some_and(|d| now >= d) {
            if matches!(self.state, PortState::Slave | PortState::Uncalibrated) {
                self.send_delay_req(&mut out);
            } else {
                self.delay_req_at = None;
            }
        }
        if self.state == PortState::Master {
            if now >= self.next_announce {
                self.send_announce(&mut out);
                let iv = interval(self.cfg.log_announce_interval);
                self.next_announce = self.next_announce.add(iv).max(now);
            }
            if now >= self.next_sync {
                self.send_sync(&mut out);
                let iv = interval(self.cfg.log_sync_interval);
                self.next_sync = self.next_sync.add(iv);
                if self.next_sync < now {
                    self.next_sync = now.add(iv);
                }
            }
        }
        out
    }

    fn accept(&mut self, data: &[u8]) -> Option<Message> {
        let m = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.counters.malformed += 1;
                return None;
            }
        };
        if m.header.domain != self.cfg.domain {
            self.counters.other_domain += 1;
            return None;
        }
        if m.header.source_port.clock_identity == self.cfg.clock_identity {
            return None; // our own multicast looped back
        }
        if self.state == PortState::Faulty {
            return None;
        }
        Some(m)
    }

    fn set_master_flags(&self, h: &mut Header) {
        let mut f = Flags::TWO_STEP;
        if self.cfg.ptp_timescale {
            f |= Flags::PTP_TIMESCALE | Flags::UTC_OFFSET_VALID;
        }
        h.flags = Flags(f);
    }

    fn send_announce(&mut self, out: &mut Actions) {
        let seq = self.announce_seq;
        self.announce_seq = seq.wrapping_add(1);
        let mut h = Header::new(
            MessageType::Announce,
            self.cfg.domain,
            self.cfg.port_identity(),
            seq,
        );
        h.log_message_interval = self.cfg.log_announce_interval;
        self.set_master_flags(&mut h);
        h.flags.0 &= !Flags::TWO_STEP;
        let body = AnnounceBody {
            origin_timestamp: self.own_map().to_ptp(self.now),
            current_utc_offset: self.cfg.utc_offset,
            gm_priority1: self.cfg.priority1,
            gm_clock_quality: self.cfg.quality,
            gm_priority2: self.cfg.priority2,
            gm_identity: self.cfg.clock_identity,
            steps_removed: 0,
            time_source: self.cfg.time_source,
        };
        out.push(Action::SendGeneral {
            data: Message {
                header: h,
                body: Body::Announce(body),
            }
            .to_bytes(),
        });
    }

    fn send_sync(&mut self, out: &mut Actions) {
        let seq = self.sync_seq;
        self.sync_seq = seq.wrapping_add(1);
        let mut h = Header::new(
            MessageType::Sync,
            self.cfg.domain,
            self.cfg.port_identity(),
            seq,
        );
        h.log_message_interval = self.cfg.log_sync_interval;
        self.set_master_flags(&mut h);
        let msg = Message {
            header: h,
            body: Body::Sync {
                origin_timestamp: self.own_map().to_ptp(self.now),
            },
        };
        let token = self.token(TxKind::Sync(seq));
        self.counters.syncs_sent += 1;
        out.push(Action::SendEvent {
            data: msg.to_bytes(),
            token,
        });
    }

    fn on_announce(&mut self, h: &Header, a: &AnnounceBody, out: &mut Actions) {
        self.counters.announces += 1;
        if a.steps_removed >= 255 || a.gm_identity == self.cfg.clock_identity {
            return; // §9.3.2.5: too many hops, or our own announce relayed
        }
        let now = self.now;
        let window = Nanos(interval(h.log_message_interval.clamp(-3, 4)).0 * 4);
        let e = self.foreign.entry(h.source_port).or_insert(Foreign {
            announce: *a,
            flags: h.flags,
            times: VecDeque::new(),
            last: now,
        });
        e.announce = *a;
        e.flags = h.flags;
        e.last = now;
        e.times.push_back(now);
        while e.times.front().is_some_and(|t| now.since(*t) > window) {
            e.times.pop_front();
        }
        if Some(h.source_port) == self.parent {
            self.parent_announce = Some(*a);
            self.parent_flags = h.flags;
            if self.state != PortState::Master {
                self.announce_deadline = Some(now.add(self.announce_timeout()));
            }
        }
        self.run_bmca(out);
    }

    fn best_foreign(&self) -> Option<Dataset> {
        let me = self.cfg.port_identity();
        // §9.3.2.4.5 qualifies a foreign master after FOREIGN_MASTER_THRESHOLD
        // (2) Announces. Deliberate deviation for a fast start: with no parent
        // and no other candidate, a single Announce qualifies (locks ~1
        // announce interval sooner); with competition the threshold applies.
        let threshold = if self.parent.is_none() && self.foreign.len() == 1 {
            1
        } else {
            2
        };
        self.foreign
            .iter()
            .filter(|(_, f)| f.times.len() >= threshold)
            .map(|(p, f)| Dataset::from_announce(&f.announce, *p, me))
            .min_by(bmca::compare)
    }

    fn run_bmca(&mut self, out: &mut Actions) {
        let best = self.best_foreign();
        let mut decision = bmca::decide(
            &self.own_dataset(),
            best.as_ref(),
            self.cfg.slave_only,
            self.cfg.master_only,
        );
        if decision == Decision::Master && best.is_none() && self.state != PortState::Master {
            // No foreign master: become master only when announceReceiptTimeout expires.
            decision = Decision::Listening;
        }
        match decision {
            Decision::Master => self.enter_master(out),
            Decision::Passive => {
                self.parent = None;
                self.state = PortState::Passive;
                if self.announce_deadline.is_none() {
                    self.announce_deadline = Some(self.now.add(self.announce_timeout()));
                }
            }
            Decision::Listening => {
                if self.state != PortState::Listening && self.state != PortState::Master {
                    self.state = PortState::Listening;
                }
            }
            Decision::Slave(p) => {
                let changed = self.parent != Some(p);
                if changed {
                    let had_parent = self.parent.is_some() || self.servo.map().is_some();
                    self.parent = Some(p);
                    if let Some(f) = self.foreign.get(&p) {
                        self.parent_announce = Some(f.announce);
                        self.parent_flags = f.flags;
                    }
                    self.pending_sync = None;
                    self.pending_delay = None;
                    self.delays.clear();
                    self.mean_path_delay = None;
                    self.master_log_delay_req = None;
                    self.unanswered = 0;
                    self.one_way = false;
                    self.next_delay_req = self.now;
                    self.delay_req_at = None;
                    if had_parent && self.servo.map().is_some() {
                        self.servo.reset_keep_freq();
                    }
                    self.locked_since = None;
                    self.state = PortState::Uncalibrated;
                }
                if self.state == PortState::Master
                    || self.state == PortState::Listening
                    || self.state == PortState::Passive
                {
                    self.state = PortState::Uncalibrated;
                }
                // Only the parent's Announces (or a new parent) restart the timer.
                if changed || self.announce_deadline.is_none() {
                    self.announce_deadline = Some(self.now.add(self.announce_timeout()));
                }
                self.publish(out);
            }
        }
    }

    fn enter_master(&mut self, out: &mut Actions) {
        if self.state != PortState::Master {
            self.state = PortState::Master;
            self.parent = None;
            self.parent_announce = None;
            self.next_announce = self.now;
            self.next_sync = self.now;
            if self.servo.state().usable() {
                self.servo.enter_holdover();
            }
            self.publish(out);
        }
        if !self.cfg.master_only {
            // Keep watching for better masters (their Announces re-run BMCA).
            self.announce_deadline = None;
        }
    }

    fn on_announce_timeout(&mut self, out: &mut Actions) {
        let now = self.now;
        // The timer expired: the parent sent no Announce for
        // announceReceiptTimeout intervals. Drop it, and any other record
        // that old.
        let limit = Nanos(
            interval(self.cfg.log_announce_interval).0 * self.cfg.announce_receipt_timeout as i64,
        );
        if let Some(p) = self.parent {
            self.foreign.remove(&p);
        }
        self.foreign.retain(|_, f| now.since(f.last) < limit);
        if self.parent.is_some() {
            // Master lost.
            self.parent = None;
            self.pending_sync = None;
            self.pending_delay = None;
            self.servo.enter_holdover();
            if self.holdover_since.is_none() {
                self.holdover_since = self.last_sync_at;
            }
            self.locked_since = None;
            self.state = PortState::Listening;
            self.publish(out);
        }
        self.announce_deadline = None;
        let best = self.best_foreign();
        match bmca::decide(
            &self.own_dataset(),
            best.as_ref(),
            self.cfg.slave_only,
            self.cfg.master_only,
        ) {
            Decision::Master => self.enter_master(out),
            _ => {
                self.run_bmca(out);
                if self.announce_deadline.is_none() {
                    self.announce_deadline = Some(now.add(self.announce_timeout()));
                }
            }
        }
    }

    fn on_sync(&mut self, t1: PtpTimestamp, t2: LocalNs, log_interval: i8, out: &mut Actions) {
        let now = self.now;
        self.last_sync = Some((t1, t2));
        self.last_sync_at = Some(t2);
        // Path delay: measured, or one-way fallback.
        let delay = match (self.mean_path_delay, self.one_way) {
            (Some(d), _) => Some(d),
            (None, true) => Some(self.cfg.assumed_delay),
            (None, false) => None,
        };
        if let Some(d) = delay {
            let was_usable =
                self.servo.state().usable() && self.servo.state() != ServoState::Holdover;
            let r = self.servo.sample(t2, t1.add(d));
            self.counters.sync_samples += 1;
            self.last_offset = Some(r.offset);
            if r.accepted && !r.stepped {
                self.offsets.push_back((t2, r.offset.0));
            }
            while self
                .offsets
                .front()
                .is_some_and(|(t, _)| t2.since(*t) > Nanos::from_secs(10))
            {
                self.offsets.pop_front();
            }
            let usable = r.state.usable() && r.state != ServoState::Holdover;
            if usable && !was_usable {
                self.locked_since = Some(t2);
            }
            if !usable {
                self.locked_since = None;
            }
            if usable {
                self.holdover_since = None;
            }
            self.state = if usable {
                PortState::Slave
            } else {
                PortState::Uncalibrated
            };
            self.publish(out);
        }
        // Delay_Req timing (§11.3): during the fast start, right after a Sync
        // (t3 − t2 short while the frequency is still unknown); then at a
        // random point of the following sync interval, so the request does
        // not always travel in the same phase as the master's Sync traffic
        // (measured here: requests sent in lock-step with Sync saw a
        // ~0.5-0.8 µs shorter path with software timestamps, biasing
        // meanPathDelay).
        if now >= self.next_delay_req && self.delay_req_at.is_none() {
            let fast = self.delays.len() < 16 && !self.one_way;
            if fast || !self.servo.state().usable() {
                self.send_delay_req(out);
            } else {
                let iv = interval(log_interval.clamp(-7, 4)).0.max(1);
                let r = (self.rand() % 1000) as i64;
                self.delay_req_at = Some(now.add(Nanos(iv / 1000 * r * 9 / 10)));
            }
        }
    }

    fn send_delay_req(&mut self, out: &mut Actions) {
        let now = self.now;
        let Some((t1, t2)) = self.last_sync else {
            return;
        };
        self.delay_req_at = None;
        if self.pending_delay.is_some() {
            self.unanswered += 1;
            if self.unanswered >= self.cfg.one_way_after {
                self.one_way = true;
            }
        }
        let seq = self.delay_req_seq;
        self.delay_req_seq = seq.wrapping_add(1);
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
        let fast = self.delays.len() < 16 && !self.one_way;
        self.pending_delay = Some(PendingDelayReq {
            seq,
            t3: None,
            sync: (t1, t2),
            fast,
        });
        self.counters.delay_req_sent += 1;
        out.push(Action::SendEvent {
            data: msg.to_bytes(),
            token,
        });
        // Fast start: one request per Sync until 16 delays are measured
        // (a deliberate deviation from logMinDelayReqInterval, for a lock in
        // about a second), then the master's logMinDelayReqInterval,
        // randomised 0.5-1.5×.
        let iv = if fast {
            Nanos(0)
        } else {
            let base = interval(
                self.master_log_delay_req
                    .unwrap_or(self.cfg.log_min_delay_req_interval),
            );
            let r = (self.rand() % 1000) as i64;
            Nanos(base.0 / 2 + base.0 / 1000 * r)
        };
        self.next_delay_req = now.add(iv);
    }

    /// A status snapshot at `now`.
    pub fn status(&self, now: LocalNs) -> PortStatus {
        let (gm, ptp_ts, utc) = match (&self.parent_announce, self.state) {
            (Some(a), PortState::Slave | PortState::Uncalibrated) => (
                a.gm_identity.to_string(),
                self.parent_flags.has(Flags::PTP_TIMESCALE),
                a.current_utc_offset,
            ),
            _ => (
                self.cfg.clock_identity.to_string(),
                self.cfg.ptp_timescale,
                self.cfg.utc_offset,
            ),
        };
        let recent: Vec<i64> = self
            .offsets
            .iter()
            .filter(|(t, _)| now.since(*t) <= Nanos::from_secs(10))
            .map(|x| x.1)
            .collect();
        let rms = (!recent.is_empty()).then(|| {
            (recent.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / recent.len() as f64).sqrt()
        });
        let max = recent.iter().map(|x| x.abs()).max();
        let mut servo = self.servo.state();
        if self.state == PortState::Master && servo == ServoState::Unlocked {
            servo = ServoState::Locked;
        }
        PortStatus {
            state: self.state,
            servo,
            parent: self.parent.map(|p| p.to_string()),
            gm_identity: gm,
            offset_from_master_ns: if matches!(
                self.state,
                PortState::Slave | PortState::Uncalibrated
            ) {
                self.last_offset.map(|o| o.0)
            } else {
                None
            },
            mean_path_delay_ns: self.mean_path_delay.map(|d| d.0),
            freq_ppb: self.servo.freq().0,
            one_way: self.one_way,
            rms_ns: rms,
            max_abs_ns: max,
            locked_for_s: self.locked_since.map(|t| now.since(t).as_secs_f64()),
            holdover_age_s: if self.servo.state() == ServoState::Holdover {
                self.holdover_since
                    .or(self.last_sync_at)
                    .map(|t| now.since(t).as_secs_f64())
            } else {
                None
            },
            outliers: self.servo.outliers(),
            steps: self.servo.steps(),
            ptp_timescale: ptp_ts,
            utc_offset_s: utc,
            counters: self.counters,
        }
    }

    /// The frequency estimate, ppb.
    pub fn freq(&self) -> Ppb {
        self.servo.freq()
    }
}
