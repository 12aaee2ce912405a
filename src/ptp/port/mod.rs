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
//!    [`PtpClockHandle`](crate::engine::ptp_clock::PtpClockHandle).
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
//!   its last frequency); [`PortStatus::holdover_age_s`] counts from the last
//!   Sync.

//!
//! # Layout
//! - this file: [`Port`], its configuration, actions, status and the
//!   dispatch of datagrams and timers;
//! - `slave.rs`: Sync / Follow_Up / Delay_Req / Delay_Resp and the offset
//!   and path-delay measurement (§9.5.9-9.5.11, §11.3);
//! - `master.rs`: Announce, Sync, Follow_Up and Delay_Resp sending;
//! - `foreign.rs`: foreign-master records, BMCA runs and
//!   announceReceiptTimeout (§9.3, §9.5.3);
//! - `timers.rs`: one table of the port's deadlines.

mod foreign;
mod master;
mod slave;
mod timers;

use std::collections::HashMap;
use std::net::IpAddr;

use super::bmca::Dataset;
use super::clock::{ClockMap, ServoState};
use super::msg::{AnnounceBody, Body, ClockIdentity, ClockQuality, Flags, Message, PortIdentity};
use super::servo::{Servo, ServoConfig, new_servo};
use super::time::{LocalNs, LogInterval, PtpTimestamp};
use crate::units::{Nanos, Ppb};
use foreign::Foreign;
use master::MasterSide;
use slave::SlaveSide;
use timers::{Timer, TimerTable};

/// Port states (IEEE 1588-2019 §9.2.5, Table 20), as printed in status.
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

/// Static configuration of a port (defaults: the IEEE 1588-2019 default
/// Delay Request-Response profile, Annex I.3, with AES67's 8 Sync/s for our
/// master role). The port data set members are those of §8.2.15.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Our clockIdentity (§7.5.2.2).
    pub clock_identity: ClockIdentity,
    /// Our portNumber (1).
    pub port_number: u16,
    /// domainNumber (§7.1).
    pub domain: u8,
    /// priority1 (128; §7.6.2.3), for the BMCA (§9.3).
    pub priority1: u8,
    /// priority2 (128; §7.6.2.4), for the BMCA (§9.3).
    pub priority2: u8,
    /// Our clockQuality (§7.6.2.5; class 248 default, 255 when slave-only).
    pub quality: ClockQuality,
    /// Never become master (slaveOnly, §9.2.2.2).
    pub slave_only: bool,
    /// Always master (no BMCA; masterOnly, §9.2.2.1).
    pub master_only: bool,
    /// logAnnounceInterval, log2 s (1 → 2 s; §7.7.2.2).
    pub log_announce_interval: LogInterval,
    /// logSyncInterval of our master role, log2 s (−3 → 125 ms, AES67 media
    /// profile; §7.7.2.3).
    pub log_sync_interval: LogInterval,
    /// logMinDelayReqInterval, log2 s, used until a Delay_Resp tells us the
    /// master's (0 → 1 s; §7.7.2.4).
    pub log_min_delay_req_interval: LogInterval,
    /// announceReceiptTimeout in announce intervals (3; §7.7.3.1).
    pub announce_receipt_timeout: u8,
    /// Unanswered Delay_Reqs before one-way mode (4; not in IEEE 1588).
    pub one_way_after: u32,
    /// meanPathDelay (ns) assumed in one-way mode when none was ever measured.
    pub assumed_delay: Nanos,
    /// currentUtcOffset we announce as master, s (37; §7.2.4).
    pub utc_offset: i16,
    /// Announce ptpTimescale (TAI) as master; false = ARB (§7.2.1).
    pub ptp_timescale: bool,
    /// timeSource we announce (0xA0 internal oscillator; §7.6.2.8).
    pub time_source: u8,
    /// Servo tuning.
    pub servo: ServoConfig,
    /// Initial clock map for the master role before any sync (e.g.
    /// `CLOCK_REALTIME` + UTC offset); `None` = PTP time equals local time.
    pub initial_map: Option<ClockMap>,
    /// Missing TX timestamps in a row before FAULTY (5; FAULTY lasts 16 s).
    pub faulty_after: u32,
    /// Sanity bound on a Sync once the servo is locked, ns (10 s): a sample
    /// whose offsetFromMaster exceeds it is dropped and counted
    /// ([`PortCounters::sync_insane`]) instead of reaching the servo (a
    /// forged or corrupt origin timestamp). Not in IEEE 1588 (the servo is
    /// implementation-defined, §11.1); a real grandmaster jump passes after
    /// [`Self::sync_sanity_confirm`] such samples in a row.
    pub sync_sanity_limit: Nanos,
    /// Consecutive out-of-bound Syncs before they are believed (8, ≈1 s at
    /// 8 Sync/s); the servo then re-anchors on them.
    pub sync_sanity_confirm: u32,
    /// Acceptable master table (IEEE 1588-2019 §17.6), as clockIdentities:
    /// an Announce is considered only when its grandmasterIdentity or its
    /// sender's clockIdentity is listed. Empty (default) = any master.
    pub acceptable_masters: Vec<ClockIdentity>,
    /// Master role: Delay_Resp messages sent per second at most (256; each
    /// goes to the multicast group, so a Delay_Req flood is bounded);
    /// beyond, Delay_Reqs are dropped and counted
    /// ([`PortCounters::delay_req_dropped`]).
    pub max_delay_resp_per_s: u32,
    /// Timestamps are read in user space (Windows without `SO_TIMESTAMP`,
    /// wine): each receive stamp carries the scheduler's wake-up latency,
    /// and each transmit stamp, read before the send, the send's; both
    /// one-sided (t2 never early, t3 never late) and heavy-tailed, so a fit
    /// of them sits on the mean latency, and so does meanPathDelay. The
    /// servo still fits every sample (that latency does not bias its
    /// frequency), but the published clock ([`Port::clock_map`]) is moved
    /// onto the lower envelope of the last 1024 Syncs (its rate from the
    /// 1st percentiles of their older and newer halves, its height their
    /// 1st percentile at the newest Sync), each meanPathDelay measurement
    /// has its Sync's stamp put on that envelope, and meanPathDelay is their
    /// 10th percentile. What remains is half the difference of the two
    /// directions' latency floors, which no two-way exchange can see (IEEE
    /// 1588-2019 §7.4.2: asymmetry). Default false (kernel or hardware
    /// stamps).
    pub one_sided_rx: bool,
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
            log_announce_interval: LogInterval::new(1),
            log_sync_interval: LogInterval::new(-3),
            log_min_delay_req_interval: LogInterval::new(0),
            announce_receipt_timeout: 3,
            one_way_after: 4,
            assumed_delay: Nanos::ZERO,
            utc_offset: 37,
            ptp_timescale: true,
            time_source: 0xA0,
            servo: ServoConfig::default(),
            initial_map: None,
            faulty_after: 5,
            sync_sanity_limit: Nanos::from_secs(10),
            sync_sanity_confirm: 8,
            acceptable_masters: Vec::new(),
            one_sided_rx: false,
            max_delay_resp_per_s: 256,
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
    /// Send to 224.0.1.129:319 (event port, Annex C), then report the TX
    /// timestamp with `token`.
    SendEvent {
        /// Message bytes.
        data: Vec<u8>,
        /// Token to return with the TX timestamp.
        token: TxToken,
    },
    /// Send to 224.0.1.129:320 (general port, Annex C).
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
    /// Datagrams that failed to parse (§13) or were inconsistent.
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
    /// Syncs from the locked parent dropped as insane: offsetFromMaster
    /// beyond [`PortConfig::sync_sanity_limit`] (not yet confirmed).
    pub sync_insane: u64,
    /// Syncs from the locked parent dropped as delayed: residence
    /// (t2 − t1 − meanPathDelay under our clock) beyond the running median
    /// plus 4 spreads (one-sided: queueing only ever adds delay).
    pub sync_delayed: u64,
    /// Announces dropped: neither grandmaster nor sender in
    /// [`PortConfig::acceptable_masters`] (§17.6).
    pub unacceptable_master: u64,
    /// Sync / Follow_Up / Delay_Resp from a port other than the parent
    /// (or with no parent), dropped.
    pub not_from_parent: u64,
    /// Messages claiming the parent's portIdentity from a source address
    /// other than the one its Announces come from, dropped.
    pub wrong_source: u64,
    /// Announces from new foreign masters dropped because the table was
    /// full ([`MAX_FOREIGN`] records).
    pub foreign_table_full: u64,
    /// Announce / Sync / Follow_Up sent to a unicast address where the
    /// PTP group is expected, dropped by the IO layer
    /// ([`Port::count_unicast_dropped`]).
    pub unicast_dropped: u64,
    /// Delay_Reqs not answered (master role): beyond
    /// [`PortConfig::max_delay_resp_per_s`].
    pub delay_req_dropped: u64,
}

/// Foreign-master records kept at most (a bound against Announce floods;
/// IEEE 1588-2019 §9.3.2.4.3 leaves the table size to the implementation,
/// at least 5).
pub const MAX_FOREIGN: usize = 8;

/// A snapshot of the port for status lines and JSON (times in ns or s,
/// frequency in ppb, as the field names say).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortStatus {
    /// Port state.
    pub state: PortState,
    /// Servo state.
    pub servo: ServoState,
    /// The parent (master) portIdentity (§8.2.3.2), when slave/uncalibrated.
    pub parent: Option<String>,
    /// grandmasterIdentity (§8.2.3.6; ours when master).
    pub gm_identity: String,
    /// Last offsetFromMaster (§11.2), ns.
    #[serde(rename = "offset_from_master_ns")]
    pub offset_from_master: Option<Nanos>,
    /// meanPathDelay (§11.3), ns (median-filtered).
    #[serde(rename = "mean_path_delay_ns")]
    pub mean_path_delay: Option<Nanos>,
    /// Frequency of our clock vs the local reference, ppb.
    #[serde(rename = "freq_ppb")]
    pub freq: Ppb,
    /// One-way mode (no Delay_Resp; meanPathDelay assumed).
    pub one_way: bool,
    /// rms of offsetFromMaster over the last status window, ns.
    pub rms_ns: Option<f64>,
    /// max |offsetFromMaster| over the last status window, ns.
    #[serde(rename = "max_abs_ns")]
    pub max_abs: Option<Nanos>,
    /// Time since the servo last became locked, s.
    pub locked_for_s: Option<f64>,
    /// Time since the last Sync sample while in holdover, s.
    pub holdover_age_s: Option<f64>,
    /// Outliers rejected by the servo.
    pub outliers: u64,
    /// Clock steps (re-anchors) so far.
    pub steps: u64,
    /// Steps refused (beyond the servo's `max_step`).
    pub steps_refused: u64,
    /// The master's timescale is PTP (TAI).
    pub ptp_timescale: bool,
    /// The parent's Announce has timeTraceable set (IEEE 1588-2019 §7.6.2.8,
    /// the flagField bit of §13.3.2.8): its time is traceable to a primary
    /// reference. False when we are not a slave.
    pub time_traceable: bool,
    /// currentUtcOffset of the master (or ours), s (§7.2.4).
    pub utc_offset_s: i16,
    /// Counters.
    pub counters: PortCounters,
}

#[derive(Debug)]
enum TxKind {
    Sync(u16),
    DelayReq(u16),
}

/// Event messages waiting for their TX timestamps.
#[derive(Debug)]
struct TxState {
    next_token: u64,
    pending: HashMap<u64, TxKind>,
    failures_in_row: u32,
}

/// Sub-nanosecond precision is lost: correctionField (§13.3.2.9, ns·2^16)
/// is handled in whole ns.
fn ns_from_corr(c: i64) -> i64 {
    c >> 16
}

/// xorshift64: a small deterministic generator (the port seeds it from its
/// clockIdentity, the simulation from its seed).
pub(crate) fn xorshift64(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The port. See the module doc for the call-order contract.
#[derive(Debug)]
pub struct Port {
    cfg: PortConfig,
    state: PortState,
    servo: Box<dyn Servo>,
    /// Foreign-master records (§9.3.2.4), by sender port.
    foreign: HashMap<PortIdentity, Foreign>,
    parent: Option<PortIdentity>,
    /// Source address of the parent's Announces (when the IO layer tells).
    parent_addr: Option<IpAddr>,
    /// Source address of the datagram being handled.
    src: Option<IpAddr>,
    parent_flags: Flags,
    parent_announce: Option<AnnounceBody>,
    timers: TimerTable,
    slave: SlaveSide,
    master: MasterSide,
    tx: TxState,
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
            parent_addr: None,
            src: None,
            parent_flags: Flags::default(),
            parent_announce: None,
            timers: TimerTable::default(),
            slave: SlaveSide::default(),
            master: MasterSide::default(),
            tx: TxState {
                next_token: 1,
                pending: HashMap::new(),
                failures_in_row: 0,
            },
            rng,
            counters: PortCounters::default(),
            now,
            cfg,
        };
        if p.cfg.master_only {
            p.state = PortState::Master;
            p.timers.set(Timer::AnnounceTx, now);
            p.timers.set(Timer::SyncTx, now);
        } else {
            let t = now + p.announce_timeout();
            p.timers.set(Timer::AnnounceReceipt, t);
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
        let shift = self.slave.envelope_shift;
        self.servo
            .map()
            .map(|m| ClockMap {
                ref_ptp: m.ref_ptp + shift,
                ..m
            })
            .or(self.cfg.initial_map)
    }

    fn own_map(&self) -> ClockMap {
        self.clock_map().unwrap_or(ClockMap::new(
            LocalNs::from_ns(0),
            PtpTimestamp::from_nanos(0),
        ))
    }

    /// Changes state; leaving MASTER stops the master-role timers.
    fn set_state(&mut self, s: PortState) {
        if s != PortState::Master {
            self.timers.stop(Timer::AnnounceTx);
            self.timers.stop(Timer::SyncTx);
        }
        self.state = s;
    }

    fn rand(&mut self) -> u64 {
        xorshift64(&mut self.rng)
    }

    fn token(&mut self, kind: TxKind) -> TxToken {
        let t = self.tx.next_token;
        self.tx.next_token += 1;
        self.tx.pending.insert(t, kind);
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

    /// The servo state to report: as grandmaster with no reference, our clock
    /// defines PTP time, so `Unlocked` reads `Locked`.
    fn reported_servo_state(&self) -> ServoState {
        let servo = self.servo.state();
        if self.state == PortState::Master && servo == ServoState::Unlocked {
            ServoState::Locked
        } else {
            servo
        }
    }

    fn publish(&self, out: &mut Actions) {
        if let Some(map) = self.clock_map() {
            out.push(Action::PublishClock {
                map,
                servo: self.reported_servo_state(),
                utc_offset_s: self.utc_offset_s(),
            });
        }
    }

    /// Handles one datagram from UDP port 319 (Sync, Delay_Req; §9.5.9,
    /// §9.5.11) with its receive time (`rx`, local reference clock, ns).
    #[must_use]
    pub fn handle_event(&mut self, data: &[u8], rx: LocalNs, now: LocalNs) -> Actions {
        self.handle_event_from(data, None, rx, now)
    }

    /// [`Self::handle_event`] with the datagram's source address (`None`:
    /// unknown, not checked). Once a parent is chosen, messages claiming it
    /// from another address are dropped and counted.
    #[must_use]
    pub fn handle_event_from(
        &mut self,
        data: &[u8],
        src: Option<IpAddr>,
        rx: LocalNs,
        now: LocalNs,
    ) -> Actions {
        let mut out = Actions::new();
        let Some(m) = self.receive(data, src, now) else {
            return out;
        };
        match (&m.body, self.state) {
            (Body::Sync { origin_timestamp }, PortState::Slave | PortState::Uncalibrated) => {
                self.on_sync_msg(&m.header, *origin_timestamp, rx, &mut out);
            }
            (Body::Sync { origin_timestamp }, PortState::Listening) => {
                self.on_candidate_sync(&m.header, *origin_timestamp, rx);
            }
            (Body::DelayReq { .. }, PortState::Master) => {
                self.answer_delay_req(&m.header, rx, &mut out);
            }
            (Body::PdelayReq { .. } | Body::PdelayResp { .. }, _) => {} // P2P not used (E2E port)
            _ => {}
        }
        out
    }

    /// Takes one datagram received at `now` from `src`: the message when it
    /// is accepted ([`Self::accept`]), `None` when it was dropped (and counted).
    fn receive(&mut self, data: &[u8], src: Option<IpAddr>, now: LocalNs) -> Option<Message> {
        self.now = now;
        self.src = src;
        self.accept(data)
    }

    /// Handles one datagram from UDP port 320 (Announce, Follow_Up,
    /// Delay_Resp; §9.5.3, §9.5.10, §9.5.12).
    #[must_use]
    pub fn handle_general(&mut self, data: &[u8], now: LocalNs) -> Actions {
        self.handle_general_from(data, None, now)
    }

    /// [`Self::handle_general`] with the datagram's source address (`None`:
    /// unknown, not checked); see [`Self::handle_event_from`].
    #[must_use]
    pub fn handle_general_from(
        &mut self,
        data: &[u8],
        src: Option<IpAddr>,
        now: LocalNs,
    ) -> Actions {
        let mut out = Actions::new();
        let Some(m) = self.receive(data, src, now) else {
            return out;
        };
        match &m.body {
            Body::Announce(a) => self.on_announce(&m.header, a, &mut out),
            Body::FollowUp {
                precise_origin_timestamp,
            } => self.on_follow_up(&m.header, *precise_origin_timestamp, &mut out),
            Body::DelayResp {
                receive_timestamp,
                requesting_port,
            } => self.on_delay_resp(&m.header, *receive_timestamp, *requesting_port, &mut out),
            _ => {}
        }
        out
    }

    /// Reports the transmit time (local reference clock, ns) of a sent event
    /// message: a Sync's gives its Follow_Up (§11.3.2 two-step), a
    /// Delay_Req's its t3.
    #[must_use]
    pub fn handle_tx_timestamp(&mut self, token: TxToken, ts: LocalNs) -> Actions {
        let mut out = Actions::new();
        self.tx.failures_in_row = 0;
        match self.tx.pending.remove(&token.0) {
            Some(TxKind::Sync(seq)) if self.state == PortState::Master => {
                self.send_follow_up(seq, ts, &mut out);
            }
            Some(TxKind::DelayReq(seq)) => self.on_delay_req_sent(seq, ts),
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
        self.tx.pending.remove(&token.0);
        self.counters.tx_timestamp_failures += 1;
        self.tx.failures_in_row += 1;
        if self.tx.failures_in_row >= self.cfg.faulty_after && self.state != PortState::Faulty {
            self.set_state(PortState::Faulty);
            // FAULTY runs no timer but its own (both are re-armed on the way
            // out: announceReceiptTimeout on recovery, Delay_Req with a parent).
            self.timers.stop(Timer::AnnounceReceipt);
            if self.slave.delay_req_scheduled {
                self.timers.stop(Timer::DelayReq);
            }
            self.timers
                .set(Timer::FaultRecovery, now + Nanos::from_secs(16));
            self.servo.enter_holdover();
        }
        Actions::new()
    }

    /// The next instant [`Self::handle_timeout`] wants to run: the earliest
    /// of the port's timers (announceReceiptTimeout §9.2.6.12, Delay_Req
    /// §9.5.11.2, Announce §9.5.8 and Sync §9.5.9 transmission, FAULTY
    /// recovery).
    pub fn poll_timeout(&self) -> Option<LocalNs> {
        self.timers.next_timeout()
    }

    /// Runs the expired timers (see [`Self::poll_timeout`]).
    #[must_use]
    pub fn handle_timeout(&mut self, now: LocalNs) -> Actions {
        self.now = now;
        let mut out = Actions::new();
        self.open_delay_req_holdoff(now);
        if self.state == PortState::Faulty {
            if self.timers.is_expired(Timer::FaultRecovery, now) {
                self.timers.stop(Timer::FaultRecovery);
                self.tx.failures_in_row = 0;
                self.set_state(PortState::Listening);
                let t = now + self.announce_timeout();
                self.timers.set(Timer::AnnounceReceipt, t);
            }
            return out;
        }
        if self.timers.is_expired(Timer::AnnounceReceipt, now) {
            self.on_announce_timeout(&mut out);
        }
        if self.timers.is_expired(Timer::DelayReq, now) {
            if matches!(self.state, PortState::Slave | PortState::Uncalibrated) {
                self.send_delay_req(&mut out);
            } else {
                self.timers.stop(Timer::DelayReq);
            }
        }
        if self.state == PortState::Master {
            self.master_timeouts(now, &mut out);
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
        if Some(m.header.source_port) == self.parent
            && let (Some(src), Some(pa)) = (self.src, self.parent_addr)
            && src != pa
        {
            self.counters.wrong_source += 1;
            return None;
        }
        Some(m)
    }

    /// Counts a datagram the IO layer dropped for its unicast destination
    /// (see [`PortCounters::unicast_dropped`]).
    pub fn count_unicast_dropped(&mut self) {
        self.counters.unicast_dropped += 1;
    }

    /// A status snapshot at `now`.
    pub fn status(&self, now: LocalNs) -> PortStatus {
        let (gm, ptp_ts, utc, traceable) = match (&self.parent_announce, self.state) {
            (Some(a), PortState::Slave | PortState::Uncalibrated) => (
                a.gm_identity.to_string(),
                self.parent_flags.has(Flags::PTP_TIMESCALE),
                a.current_utc_offset,
                self.parent_flags.has(Flags::TIME_TRACEABLE),
            ),
            _ => (
                self.cfg.clock_identity.to_string(),
                self.cfg.ptp_timescale,
                self.cfg.utc_offset,
                false,
            ),
        };
        let recent: Vec<i64> = self
            .slave
            .offsets
            .iter()
            .filter(|(t, _)| now.since(*t) <= Nanos::from_secs(10))
            .map(|x| x.1)
            .collect();
        let rms = (!recent.is_empty()).then(|| {
            (recent.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / recent.len() as f64).sqrt()
        });
        let max = recent.iter().map(|x| x.saturating_abs()).max();
        PortStatus {
            state: self.state,
            servo: self.reported_servo_state(),
            parent: self.parent.map(|p| p.to_string()),
            gm_identity: gm,
            offset_from_master: if matches!(self.state, PortState::Slave | PortState::Uncalibrated)
            {
                self.slave.last_offset
            } else {
                None
            },
            mean_path_delay: self.slave.mean_path_delay,
            freq: self.servo.freq(),
            one_way: self.slave.one_way,
            rms_ns: rms,
            max_abs: max.map(Nanos::from_ns),
            locked_for_s: self.slave.locked_since.map(|t| now.since(t).as_secs_f64()),
            holdover_age_s: if self.servo.state() == ServoState::Holdover {
                self.slave
                    .holdover_since
                    .or(self.slave.last_sync_at)
                    .map(|t| now.since(t).as_secs_f64())
            } else {
                None
            },
            outliers: self.servo.outliers(),
            steps: self.servo.steps(),
            steps_refused: self.servo.steps_refused(),
            ptp_timescale: ptp_ts,
            time_traceable: traceable,
            utc_offset_s: utc,
            counters: self.counters,
        }
    }

    /// The frequency estimate of our clock vs the local reference, ppb.
    pub fn freq(&self) -> Ppb {
        self.servo.freq()
    }
}

/// Port tests in virtual time: datagrams in, [`Action`]s out.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ptp::msg::{Header, MessageType};

    const MS: i64 = 1_000_000;
    /// The master's clock minus ours.
    const OFF: i64 = 5_000_000_000;
    /// One-way path delay.
    const D: i64 = 50_000;

    fn our_id() -> ClockIdentity {
        ClockIdentity([0xaa, 1, 2, 0xff, 0xfe, 3, 4, 5])
    }

    /// A remote master whose clock is ours + [`OFF`], [`D`] away.
    struct Peer {
        port: PortIdentity,
        seq: u16,
        priority1: u8,
    }

    impl Peer {
        fn new() -> Peer {
            Peer::with(0xbb, 100)
        }
        /// A peer with clockIdentity `id:01:02:ff:fe:03:04:06` and `priority1`.
        fn with(id: u8, priority1: u8) -> Peer {
            Peer {
                port: PortIdentity {
                    clock_identity: ClockIdentity([id, 1, 2, 0xff, 0xfe, 3, 4, 6]),
                    port_number: 1,
                },
                seq: 0,
                priority1,
            }
        }
        fn header(&self, t: MessageType, seq: u16, log: i8) -> Header {
            let mut h = Header::new(t, 0, self.port, seq);
            h.log_message_interval = log;
            h.flags = Flags(Flags::TWO_STEP | Flags::PTP_TIMESCALE);
            h
        }
        fn announce(&self) -> Vec<u8> {
            let mut h = self.header(MessageType::Announce, 0, 1);
            h.flags.0 &= !Flags::TWO_STEP;
            let a = AnnounceBody {
                origin_timestamp: PtpTimestamp::from_nanos(0),
                current_utc_offset: 37,
                gm_priority1: self.priority1,
                gm_clock_quality: ClockQuality::default(),
                gm_priority2: 128,
                gm_identity: self.port.clock_identity,
                steps_removed: 0,
                time_source: 0x20,
            };
            Message {
                header: h,
                body: Body::Announce(a),
            }
            .to_bytes()
        }
        /// A two-step Sync arriving at our local `t2`: (Sync, Follow_Up).
        fn sync(&mut self, t2: i64) -> (Vec<u8>, Vec<u8>) {
            let seq = self.seq;
            self.seq += 1;
            let t1 = PtpTimestamp::from_nanos((t2 - D + OFF) as i128);
            let sync = Message {
                header: self.header(MessageType::Sync, seq, -3),
                body: Body::Sync {
                    origin_timestamp: t1,
                },
            };
            let fu = Message {
                header: self.header(MessageType::FollowUp, seq, -3),
                body: Body::FollowUp {
                    precise_origin_timestamp: t1,
                },
            };
            (sync.to_bytes(), fu.to_bytes())
        }
        /// The Delay_Resp to our Delay_Req `req`, sent at our local `t3`.
        fn delay_resp(&self, req: &[u8], t3: i64) -> Vec<u8> {
            let m = Message::parse(req).expect("Delay_Req parses");
            assert_eq!(m.header.message_type, MessageType::DelayReq);
            Message {
                header: self.header(MessageType::DelayResp, m.header.sequence_id, 0),
                body: Body::DelayResp {
                    receive_timestamp: PtpTimestamp::from_nanos((t3 + D + OFF) as i128),
                    requesting_port: m.header.source_port,
                },
            }
            .to_bytes()
        }
    }

    fn slave_cfg() -> PortConfig {
        let mut c = PortConfig::new(our_id());
        c.slave_only = true;
        c.initial_map = Some(ClockMap::new(
            LocalNs::from_ns(0),
            PtpTimestamp::from_nanos(0),
        ));
        c
    }

    /// A Delay_Req (originTimestamp 0) from `peer`'s port, as bytes.
    fn delay_req_from(peer: &mut Peer) -> Vec<u8> {
        let (s, _) = peer.sync(0);
        let mut req = parse(&s);
        req.header.message_type = MessageType::DelayReq;
        req.body = Body::DelayReq {
            origin_timestamp: PtpTimestamp::from_nanos(0),
        };
        req.to_bytes()
    }

    fn parse(data: &[u8]) -> Message {
        Message::parse(data).expect("our message parses")
    }

    /// The event messages among `acts`, with their tokens.
    fn events(acts: Actions) -> Vec<(Message, Vec<u8>, TxToken)> {
        acts.into_iter()
            .filter_map(|a| match a {
                Action::SendEvent { data, token } => Some((parse(&data), data, token)),
                _ => None,
            })
            .collect()
    }

    fn general(acts: &Actions) -> Vec<Message> {
        acts.iter()
            .filter_map(|a| match a {
                Action::SendGeneral { data } => Some(parse(data)),
                _ => None,
            })
            .collect()
    }

    /// One Sync (and Follow_Up) at `t2`, then the Delay_Req it schedules
    /// (fired at its deadline, if that is within 125 ms) answered; returns
    /// the Delay_Reqs sent.
    fn exchange(p: &mut Port, m: &mut Peer, t2: i64) -> usize {
        let mut sent = sync_only(p, m, t2);
        if p.slave.delay_req_scheduled
            && let Some(at) = p.timers.get(Timer::DelayReq)
            && at < LocalNs::from_ns(t2 + 125 * MS)
        {
            let acts = p.handle_timeout(at);
            sent += answer(p, m, acts, at.as_ns());
        }
        sent
    }

    /// One Sync (and Follow_Up) at `t2`, no timer run; any Delay_Req sent
    /// at once is stamped at `t2 + 1 ms` and answered. Returns their number.
    fn sync_only(p: &mut Port, m: &mut Peer, t2: i64) -> usize {
        let (s, f) = m.sync(t2);
        let mut acts = p.handle_event(&s, LocalNs::from_ns(t2), LocalNs::from_ns(t2));
        acts.extend(p.handle_general(&f, LocalNs::from_ns(t2 + 10_000)));
        answer(p, m, acts, t2 + MS)
    }

    /// Stamps and answers the Delay_Reqs in `acts`.
    fn answer(p: &mut Port, m: &Peer, acts: Actions, t3: i64) -> usize {
        let ev = events(acts);
        for (msg, data, token) in &ev {
            assert_eq!(msg.header.message_type, MessageType::DelayReq);
            let tok = TxToken(token.0);
            assert!(p.handle_tx_timestamp(tok, LocalNs::from_ns(t3)).is_empty());
            let resp = m.delay_resp(data, t3);
            // Only a clock update (the first meanPathDelay completes its
            // Sync's sample), never a message.
            let acts = p.handle_general(&resp, LocalNs::from_ns(t3 + D));
            assert!(
                acts.iter()
                    .all(|a| matches!(a, Action::PublishClock { .. })),
                "{acts:?}"
            );
        }
        ev.len()
    }

    #[test]
    fn slave_measures_path_delay_and_offset_from_master() {
        let mut p = Port::new(slave_cfg(), LocalNs::from_ns(0));
        let mut m = Peer::new();
        let acts = p.handle_general(&m.announce(), LocalNs::from_ns(MS));
        // One Announce does not qualify a master (§9.3.2.4.4)...
        assert_eq!(p.state(), PortState::Listening);
        assert!(acts.is_empty());
        // ...two within 4 announce intervals do.
        let acts = p.handle_general(&m.announce(), LocalNs::from_ns(2 * MS));
        assert_eq!(p.state(), PortState::Uncalibrated);
        assert!(matches!(acts[..], [Action::PublishClock { .. }]));
        // First Sync: no path delay yet, so a Delay_Req at once (fast
        // start); its Delay_Resp completes the first sample:
        // offsetFromMaster = ours − master's = −OFF; the servo steps onto
        // the master.
        assert_eq!(exchange(&mut p, &mut m, 100 * MS), 1);
        let st = p.status(LocalNs::from_ns(102 * MS));
        assert_eq!(st.offset_from_master, Some(Nanos::from_ns(-OFF)));
        assert_eq!(st.mean_path_delay, Some(Nanos::from_ns(D)));
        assert_eq!(st.counters.delay_resp, 1);
        assert_eq!(st.steps, 1);
        // Second Sync: on the line.
        exchange(&mut p, &mut m, 225 * MS);
        let st = p.status(LocalNs::from_ns(230 * MS));
        assert!(st.offset_from_master.unwrap().abs() <= Nanos::from_ns(1));
        assert_eq!(st.gm_identity, m.port.clock_identity.to_string());
        assert_eq!(st.steps, 1);
        let t = p.clock_map().unwrap().to_ptp(LocalNs::from_ns(300 * MS));
        assert_eq!(t, PtpTimestamp::from_nanos((300 * MS + OFF) as i128));
        // Then locked, with offsets of zero.
        for k in 2..12 {
            exchange(&mut p, &mut m, 100 * MS + k * 125 * MS);
        }
        let st = p.status(LocalNs::from_ns(1_600 * MS));
        assert_eq!(p.state(), PortState::Slave);
        assert!(
            st.offset_from_master.unwrap().abs() <= Nanos::from_ns(1),
            "{st:?}"
        );
        assert!(st.freq.as_ppb().abs() < 1.0);
        assert!(st.locked_for_s.is_some());
    }

    #[test]
    fn delay_req_is_one_timer_scheduled_once_per_interval() {
        let (mut p, mut m) = qualified_port();
        let mut t = 100 * MS;
        // Fast start: each Sync schedules one Delay_Req at a random point
        // of its interval (also not in lock-step with Sync) until 16 delays
        // are measured; no hold-off after it.
        let mut phases = Vec::new();
        for _ in 0..16 {
            assert_eq!(
                sync_only(&mut p, &mut m, t),
                0,
                "nothing sent with the Sync"
            );
            assert!(p.slave.delay_req_scheduled);
            let at = p.timers.get(Timer::DelayReq).expect("scheduled");
            assert!(at >= LocalNs::from_ns(t) && at < LocalNs::from_ns(t + 125 * MS));
            phases.push(at.since(LocalNs::from_ns(t)).as_ns());
            let acts = p.handle_timeout(at);
            assert_eq!(answer(&mut p, &m, acts, at.as_ns()), 1);
            assert_eq!(p.timers.get(Timer::DelayReq), None);
            t += 125 * MS;
        }
        phases.sort_unstable();
        assert!(
            phases[15] - phases[0] > 20 * MS,
            "random phases: {phases:?}"
        );
        // Locked, 16 delays: the next Sync schedules one request within the
        // following sync interval; poll_timeout reports it.
        assert_eq!(sync_only(&mut p, &mut m, t), 0);
        let at = p.timers.get(Timer::DelayReq).expect("scheduled");
        assert!(p.slave.delay_req_scheduled);
        assert!(
            at >= LocalNs::from_ns(t) && at < LocalNs::from_ns(t + 125 * MS),
            "{at:?}"
        );
        assert_eq!(p.poll_timeout(), Some(at));
        // A Sync before the deadline neither sends nor moves it.
        if at > LocalNs::from_ns(t + 10 * MS) {
            assert_eq!(sync_only(&mut p, &mut m, t + 5 * MS), 0);
            assert_eq!(p.timers.get(Timer::DelayReq), Some(at));
        }
        // The deadline sends exactly one, then the same timer holds off the
        // next for 0.5-1.5 × 2^logMinDelayReqInterval (1 s).
        assert!(
            p.handle_timeout(LocalNs::from_ns(at.as_ns() - 1))
                .is_empty()
        );
        let acts = p.handle_timeout(at);
        assert_eq!(answer(&mut p, &m, acts, at.as_ns()), 1);
        assert!(!p.slave.delay_req_scheduled);
        let hold = p.timers.get(Timer::DelayReq).expect("hold-off");
        let since = hold.since(at);
        assert!(since >= Nanos::from_ms(500) && since <= Nanos::from_ms(1500));
        // Syncs during the hold-off send nothing and do not schedule.
        let mut sent = 0;
        t += 125 * MS;
        while LocalNs::from_ns(t) < hold {
            sent += exchange(&mut p, &mut m, t);
            assert_eq!(p.timers.get(Timer::DelayReq), Some(hold));
            t += 125 * MS;
        }
        assert_eq!(sent, 0);
        // The hold-off passing opens the way; the next Sync schedules again.
        assert!(p.handle_timeout(hold).is_empty());
        assert_eq!(p.timers.get(Timer::DelayReq), None);
        assert_eq!(sync_only(&mut p, &mut m, t), 0);
        assert!(p.slave.delay_req_scheduled);
    }

    #[test]
    fn announce_receipt_timeout_returns_to_listening_or_master() {
        for slave_only in [true, false] {
            let mut cfg = slave_cfg();
            cfg.slave_only = slave_only;
            let mut p = Port::new(cfg, LocalNs::from_ns(0));
            // LISTENING: the timer runs from the start.
            let first = p.poll_timeout().expect("announceReceiptTimeout");
            assert!(first >= LocalNs::from_ns(6_000 * MS) && first < LocalNs::from_ns(8_000 * MS));
            let mut m = Peer::new();
            let _ = p.handle_general(&m.announce(), LocalNs::from_ns(MS));
            let _ = p.handle_general(&m.announce(), LocalNs::from_ns(MS));
            exchange(&mut p, &mut m, 100 * MS);
            assert_eq!(p.state(), PortState::Uncalibrated);
            // 3 announce intervals of 2 s (+ up to one of randomness).
            let d = p.timers.get(Timer::AnnounceReceipt).expect("armed");
            assert!(
                d >= LocalNs::from_ns(6_001 * MS) && d < LocalNs::from_ns(8_001 * MS),
                "{d:?}"
            );
            assert!(p.handle_timeout(LocalNs::from_ns(d.as_ns() - 1)).is_empty());
            let acts = p.handle_timeout(d);
            let st = p.status(d);
            assert_eq!(st.parent, None);
            if slave_only {
                assert_eq!(p.state(), PortState::Listening);
                assert!(general(&acts).is_empty());
                assert!(p.poll_timeout().is_some_and(|t| t > d));
            } else {
                // Master at once: Announce and Sync go out in the same call.
                assert_eq!(p.state(), PortState::Master);
                assert_eq!(general(&acts)[0].header.message_type, MessageType::Announce);
                let ev = events(acts);
                assert_eq!(ev.len(), 1);
                assert_eq!(ev[0].0.header.message_type, MessageType::Sync);
                assert_eq!(p.timers.get(Timer::AnnounceReceipt), None);
                assert_eq!(p.poll_timeout(), Some(d + Nanos::from_ms(125)));
            }
        }
    }

    #[test]
    fn master_sends_announce_and_sync_at_their_intervals() {
        let mut cfg = PortConfig::new(our_id());
        cfg.master_only = true;
        let mut p = Port::new(cfg, LocalNs::from_ns(0));
        assert_eq!(p.state(), PortState::Master);
        let (mut announces, mut syncs, mut follow_ups) = (vec![], vec![], 0);
        while let Some(t) = p.poll_timeout()
            && t <= LocalNs::from_ns(4_000 * MS)
        {
            let acts = p.handle_timeout(t);
            for m in general(&acts) {
                assert_eq!(m.header.message_type, MessageType::Announce);
                assert_eq!(m.header.log_message_interval, 1);
                announces.push(t);
            }
            for (m, _, token) in events(acts) {
                assert_eq!(m.header.message_type, MessageType::Sync);
                assert_eq!(m.header.log_message_interval, -3);
                assert!(m.header.flags.has(Flags::TWO_STEP));
                syncs.push(t);
                // Its TX timestamp gives the Follow_Up with the same seq.
                let fu = p.handle_tx_timestamp(token, LocalNs::from_ns(t.as_ns() + 20_000));
                let fu = general(&fu);
                assert_eq!(fu[0].header.message_type, MessageType::FollowUp);
                assert_eq!(fu[0].header.sequence_id, m.header.sequence_id);
                assert_eq!(
                    fu[0].body,
                    Body::FollowUp {
                        precise_origin_timestamp: PtpTimestamp::from_nanos(
                            (t.as_ns() + 20_000) as i128
                        )
                    }
                );
                follow_ups += 1;
            }
        }
        assert_eq!(
            announces,
            [0, 2_000, 4_000].map(|ms| LocalNs::from_ns(ms * MS))
        );
        assert_eq!(syncs.len(), 33);
        assert!(
            syncs
                .windows(2)
                .all(|w| w[1].since(w[0]) == Nanos::from_ms(125))
        );
        assert_eq!(follow_ups, 33);
        // A Delay_Req is answered with its receive time.
        let mut peer = Peer::new();
        let acts = p.handle_event(
            &delay_req_from(&mut peer),
            LocalNs::from_ns(4_100 * MS),
            LocalNs::from_ns(4_100 * MS),
        );
        let resp = general(&acts);
        assert_eq!(
            resp[0].body,
            Body::DelayResp {
                receive_timestamp: PtpTimestamp::from_nanos((4_100 * MS) as i128),
                requesting_port: peer.port,
            }
        );
    }

    /// A slave port whose master [`Peer`] is qualified (two Announces, 1 ms apart).
    fn qualified_port() -> (Port, Peer) {
        let mut p = Port::new(slave_cfg(), LocalNs::from_ns(0));
        let m = Peer::new();
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(MS));
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(2 * MS));
        (p, m)
    }

    /// Locks a slave port on [`Peer`] (two Announces, 12 exchanges).
    fn locked_port() -> (Port, Peer, i64) {
        let (mut p, mut m) = qualified_port();
        let mut t = 100 * MS;
        for _ in 0..14 {
            exchange(&mut p, &mut m, t);
            t += 125 * MS;
        }
        assert_eq!(p.state(), PortState::Slave);
        (p, m, t)
    }

    /// A forged Sync from the parent with t1 ~292 years ahead (beyond i64 ns):
    /// no panic (the old i64::MIN clamp + abs), dropped and counted, the
    /// clock does not move.
    #[test]
    fn forged_sync_292_years_ahead_is_dropped_without_panic() {
        let (mut p, mut m, mut t) = locked_port();
        let probe = LocalNs::from_ns(t + 375 * MS);
        let before = p.clock_map().unwrap().to_ptp(probe);
        for _ in 0..3 {
            let seq = m.seq;
            m.seq += 1;
            let t1 = PtpTimestamp::from_nanos((t - D + OFF) as i128 + 9_300_000_000_000_000_000);
            let mk = |ty, body| {
                Message {
                    header: m.header(ty, seq, -3),
                    body,
                }
                .to_bytes()
            };
            let s = mk(
                MessageType::Sync,
                Body::Sync {
                    origin_timestamp: t1,
                },
            );
            let f = mk(
                MessageType::FollowUp,
                Body::FollowUp {
                    precise_origin_timestamp: t1,
                },
            );
            let _ = p.handle_event(&s, LocalNs::from_ns(t), LocalNs::from_ns(t));
            let _ = p.handle_general(&f, LocalNs::from_ns(t + 10_000));
            t += 125 * MS;
        }
        assert_eq!(p.status(LocalNs::from_ns(t)).counters.sync_insane, 3);
        let after = p.clock_map().unwrap().to_ptp(probe);
        assert!(
            (after.as_nanos() - before.as_nanos()).abs() < 10_000,
            "{before:?} {after:?}"
        );
        assert_eq!(p.servo().steps(), 1);
        // Real Syncs keep it locked.
        exchange(&mut p, &mut m, t);
        assert_eq!(p.state(), PortState::Slave);
    }

    /// §9.3.2.4.4: the first master needs 2 Announces within 4 announce
    /// intervals; a better rogue master takes over only once qualified, not
    /// on one packet.
    #[test]
    fn masters_qualify_on_two_announces_within_four_intervals() {
        let mut p = Port::new(slave_cfg(), LocalNs::from_ns(0));
        let m = Peer::new();
        // Two Announces 9 s apart (> 4 × 2 s): neither qualifies.
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(MS));
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(9_002 * MS));
        assert_eq!(p.state(), PortState::Listening);
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(10_000 * MS));
        assert_eq!(p.state(), PortState::Uncalibrated);
        let (mut p, _m, t) = locked_port();
        let rogue = Peer::with(0xcc, 0);
        let _ = p.handle_general(&rogue.announce(), LocalNs::from_ns(t));
        assert_eq!(
            p.status(LocalNs::from_ns(t)).parent.unwrap(),
            Peer::new().port.to_string()
        );
        assert_eq!(p.state(), PortState::Slave);
        let _ = p.handle_general(&rogue.announce(), LocalNs::from_ns(t + 2_000 * MS));
        assert_eq!(
            p.status(LocalNs::from_ns(t)).parent.unwrap(),
            rogue.port.to_string()
        );
        assert_eq!(p.state(), PortState::Uncalibrated);
    }

    /// §17.6: with an acceptable-master list, other masters' Announces are
    /// dropped and counted.
    #[test]
    fn acceptable_master_list_drops_other_masters() {
        let mut cfg = slave_cfg();
        cfg.acceptable_masters = vec![Peer::new().port.clock_identity];
        let mut p = Port::new(cfg, LocalNs::from_ns(0));
        let rogue = Peer::with(0xcc, 0);
        for k in 1..4 {
            let _ = p.handle_general(&rogue.announce(), LocalNs::from_ns(k * MS));
        }
        assert_eq!(p.state(), PortState::Listening);
        assert_eq!(
            p.status(LocalNs::from_ns(5 * MS))
                .counters
                .unacceptable_master,
            3
        );
        let m = Peer::new();
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(6 * MS));
        let _ = p.handle_general(&m.announce(), LocalNs::from_ns(7 * MS));
        let _ = p.handle_general(&rogue.announce(), LocalNs::from_ns(8 * MS));
        let _ = p.handle_general(&rogue.announce(), LocalNs::from_ns(9 * MS));
        assert_eq!(p.state(), PortState::Uncalibrated);
        let st = p.status(LocalNs::from_ns(10 * MS));
        assert_eq!(st.parent.unwrap(), m.port.to_string());
        assert_eq!(st.counters.unacceptable_master, 5);
    }

    /// Once the parent is chosen from its Announces' source address, a Sync
    /// or Follow_Up claiming it from another address is dropped and counted;
    /// a Follow_Up from a non-parent with the pending sequenceId is ignored.
    #[test]
    fn messages_claiming_the_parent_from_another_address_are_dropped() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let evil: IpAddr = "10.0.0.66".parse().unwrap();
        let mut p = Port::new(slave_cfg(), LocalNs::from_ns(0));
        let mut m = Peer::new();
        let _ = p.handle_general_from(&m.announce(), Some(a), LocalNs::from_ns(MS));
        let _ = p.handle_general_from(&m.announce(), Some(a), LocalNs::from_ns(2 * MS));
        assert_eq!(p.state(), PortState::Uncalibrated);
        // Syncs from the wrong address never produce a Delay_Req or sample.
        let (s, f) = m.sync(100 * MS);
        let acts = p.handle_event_from(
            &s,
            Some(evil),
            LocalNs::from_ns(100 * MS),
            LocalNs::from_ns(100 * MS),
        );
        assert!(acts.is_empty());
        let acts = p.handle_general_from(&f, Some(evil), LocalNs::from_ns(100 * MS));
        assert!(acts.is_empty());
        assert_eq!(
            p.status(LocalNs::from_ns(101 * MS)).counters.wrong_source,
            2
        );
        // From the right address: accepted (a Delay_Req scheduled for the
        // fast start).
        let (s, f) = m.sync(225 * MS);
        let mut acts = p.handle_event_from(
            &s,
            Some(a),
            LocalNs::from_ns(225 * MS),
            LocalNs::from_ns(225 * MS),
        );
        // A Follow_Up with the same sequenceId from another port: ignored.
        let mut other = Peer::with(0xcc, 200);
        other.seq = m.seq - 1;
        let (_, f2) = other.sync(225 * MS);
        assert!(
            p.handle_general_from(&f2, Some(a), LocalNs::from_ns(225 * MS))
                .is_empty()
        );
        assert_eq!(
            p.status(LocalNs::from_ns(226 * MS))
                .counters
                .not_from_parent,
            1
        );
        acts.extend(p.handle_general_from(&f, Some(a), LocalNs::from_ns(225 * MS)));
        assert!(events(acts).is_empty());
        let at = p.timers.get(Timer::DelayReq).expect("Delay_Req scheduled");
        assert_eq!(events(p.handle_timeout(at)).len(), 1);
    }

    /// The foreign-master table stays bounded under an Announce flood from
    /// many identities, and stale records are pruned while a parent lives.
    #[test]
    fn foreign_master_table_is_bounded_and_pruned() {
        let (mut p, _m, mut t) = locked_port();
        for id in 0..100u8 {
            let _ = p.handle_general(&Peer::with(id, 250).announce(), LocalNs::from_ns(t));
            assert!(p.foreign.len() <= MAX_FOREIGN);
        }
        assert!(p.status(LocalNs::from_ns(t)).counters.foreign_table_full > 0);
        // 20 s later, one Announce from a new clock prunes the stale ones
        // (the parent's record stays).
        t += 20_000 * MS;
        let _ = p.handle_general(&Peer::with(0x77, 250).announce(), LocalNs::from_ns(t));
        assert_eq!(p.foreign.len(), 2);
    }

    /// As master, a Delay_Req flood gets at most max_delay_resp_per_s
    /// answers per second; the rest are counted.
    #[test]
    fn master_bounds_delay_resp_rate() {
        let mut cfg = PortConfig::new(our_id());
        cfg.master_only = true;
        let mut p = Port::new(cfg, LocalNs::from_ns(0));
        let mut peer = Peer::new();
        let req = delay_req_from(&mut peer);
        let mut answered = 0;
        for k in 0..1000i64 {
            let t = LocalNs::from_ns(1_000 * MS + k * 1_000_000);
            answered += general(&p.handle_event(&req, t, t)).len();
        }
        assert_eq!(answered, 256);
        let c = p.status(LocalNs::from_ns(2_000 * MS)).counters;
        assert_eq!((c.delay_req_answered, c.delay_req_dropped), (256, 744));
        // The next second answers again.
        let t = LocalNs::from_ns(2_001 * MS);
        assert_eq!(general(&p.handle_event(&req, t, t)).len(), 1);
    }

    #[test]
    fn faulty_runs_only_its_recovery_timer() {
        let mut cfg = PortConfig::new(our_id());
        cfg.master_only = true;
        let mut p = Port::new(cfg, LocalNs::from_ns(0));
        let mut tokens = vec![];
        for (_, _, tok) in events(p.handle_timeout(LocalNs::from_ns(0))) {
            tokens.push(tok);
        }
        let mut t = 0;
        while tokens.len() < 5 {
            t = p.poll_timeout().unwrap().as_ns();
            for (_, _, tok) in events(p.handle_timeout(LocalNs::from_ns(t))) {
                tokens.push(tok);
            }
        }
        for tok in tokens {
            let _ = p.handle_tx_failed(tok, LocalNs::from_ns(t));
        }
        assert_eq!(p.state(), PortState::Faulty);
        let until = LocalNs::from_ns(t) + Nanos::from_secs(16);
        assert_eq!(p.poll_timeout(), Some(until));
        assert!(
            p.handle_timeout(LocalNs::from_ns(until.as_ns() - 1))
                .is_empty()
        );
        let _ = p.handle_timeout(until);
        // Back to LISTENING; master_only re-enters MASTER at the next
        // announceReceiptTimeout.
        assert_eq!(p.state(), PortState::Listening);
        assert_eq!(p.timers.get(Timer::FaultRecovery), None);
        let d = p.poll_timeout().unwrap();
        let _ = p.handle_timeout(d);
        assert_eq!(p.state(), PortState::Master);
    }
}
