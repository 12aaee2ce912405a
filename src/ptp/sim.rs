//! Virtual-time simulation of masters and a slave on a network with path
//! delay, asymmetry, jitter, timestamp spikes and oscillator offsets
//! (quinn-proto's test shape: a deterministic event queue, no real clock).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Add;

use super::clock::{ClockMap, ServoState};
use super::msg::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Flags, Header, Message, MessageType,
    PortIdentity,
};
use super::port::{Action, Port, PortConfig, PortState};
use super::servo::{ServoConfig, ServoKind};
use super::time::{LocalNs, LogInterval, PtpTimestamp};
use crate::units::Nanos;

const S: i64 = 1_000_000_000;

/// A simple simulated two-step (or one-step) grandmaster.
struct SimMaster {
    id: ClockIdentity,
    priority1: u8,
    /// PTP time at true time 0, ns.
    offset: i128,
    /// Rate error vs true time, ppb.
    rate_ppb: f64,
    alive: bool,
    answers_delay_req: bool,
    two_step: bool,
    sync_seq: u16,
    ann_seq: u16,
    /// Announce flagField (e.g. ptpTimescale | currentUtcOffsetValid).
    ann_flags: u16,
}

impl SimMaster {
    fn new(id: u8, priority1: u8, offset: i128, rate_ppb: f64) -> SimMaster {
        SimMaster {
            id: ClockIdentity([id, 0, 0, 0xff, 0xfe, 0, 0, id]),
            priority1,
            offset,
            rate_ppb,
            alive: true,
            answers_delay_req: true,
            two_step: true,
            sync_seq: 0,
            ann_seq: 0,
            ann_flags: 0,
        }
    }
    fn time(&self, t: i64) -> PtpTimestamp {
        PtpTimestamp::from_nanos(
            self.offset + t as i128 + (t as f64 * self.rate_ppb * 1e-9).round() as i128,
        )
    }
    fn port(&self) -> PortIdentity {
        PortIdentity {
            clock_identity: self.id,
            port_number: 1,
        }
    }
}

#[derive(Debug)]
enum Ev {
    SyncTick(usize),
    AnnounceTick(usize),
    /// (event port?, bytes, receive-timestamp noise ns)
    ToSlave(bool, Vec<u8>, i64),
    /// Delay_Req to master i, with its noise.
    ToMaster(usize, Vec<u8>, i64),
    SlaveTimer,
    Probe,
}

/// Network and clock parameters.
#[derive(Clone, Copy)]
struct Net {
    delay_ms: i64,
    delay_sm: i64,
    /// Uniform jitter amplitude on delivery, ns.
    jitter: i64,
    /// Probability (per mille) of a 15-53 µs timestamp spike.
    spike_permille: u64,
    /// Slave oscillator error vs true time, ppb.
    slave_ppb: f64,
    /// The masters' logSyncInterval.
    log_sync: i8,
    /// One-sided receive latency of the slave's Sync stamps (user-space
    /// stamps after a wake-up, as under wine): `(floor, mean excess)` ns,
    /// floor + an exponential of that mean. `None`: none.
    rx_latency: Option<(i64, i64)>,
    /// One-sided send latency of the slave's Delay_Reqs (a user-space t3
    /// read before the send): the request leaves this much after its
    /// stamp, `(floor, mean excess)` ns as [`Net::rx_latency`].
    tx_latency: Option<(i64, i64)>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            delay_ms: 30_000,
            delay_sm: 30_000,
            jitter: 1_500,
            spike_permille: 10,
            slave_ppb: 100_000.0,
            log_sync: -3,
            rx_latency: None,
            tx_latency: None,
        }
    }
}

struct Sim {
    now: i64,
    q: BinaryHeap<Reverse<(i64, u64, usize)>>,
    evs: Vec<Option<Ev>>,
    seq: u64,
    rng: u64,
    net: Net,
    masters: Vec<SimMaster>,
    slave: Port,
    slave_l0: i64,
    timer_at: Option<i64>,
    map: Option<ClockMap>,
    /// Last published UTC offset (s to subtract from PTP time for UTC).
    utc_offset_s: Option<i32>,
    /// (true time, error of our clock vs the current parent master, port state, servo state)
    probes: Vec<(i64, Option<i64>, PortState, ServoState)>,
    /// Index of the parent master at each probe.
    parents: Vec<Option<usize>>,
    first_sync_rx: Option<i64>,
    /// True time the port first entered SLAVE (locked), ns.
    first_slave: Option<i64>,
}

impl Sim {
    fn new(net: Net, masters: Vec<SimMaster>, cfg: PortConfig) -> Sim {
        Sim::with_seed(net, masters, cfg, 0x9E37_79B9_7F4A_7C15)
    }

    /// [`Sim::new`] with another seed for the network's random delays and
    /// spikes (non-zero).
    fn with_seed(net: Net, masters: Vec<SimMaster>, mut cfg: PortConfig, seed: u64) -> Sim {
        cfg.slave_only = cfg.slave_only || !cfg.master_only;
        let slave_l0 = 5 * S;
        let slave = Port::new(cfg, LocalNs::from_ns(slave_l0));
        let mut s = Sim {
            now: 0,
            q: BinaryHeap::new(),
            evs: Vec::new(),
            seq: 0,
            rng: seed,
            net,
            masters,
            slave,
            slave_l0,
            timer_at: None,
            map: None,
            utc_offset_s: None,
            probes: Vec::new(),
            parents: Vec::new(),
            first_sync_rx: None,
            first_slave: None,
        };
        for i in 0..s.masters.len() {
            s.push(1_000_000 * (i as i64 + 1), Ev::AnnounceTick(i));
            s.push(3_000_000 * (i as i64 + 1), Ev::SyncTick(i));
        }
        s.push(0, Ev::Probe);
        s.reschedule_timer();
        s
    }

    fn rand(&mut self) -> u64 {
        super::port::xorshift64(&mut self.rng)
    }
    fn jitter(&mut self) -> i64 {
        let j = self.net.jitter.max(1) as u64;
        (self.rand() % j) as i64
    }
    fn spike(&mut self) -> i64 {
        if self.rand() % 1000 < self.net.spike_permille {
            15_000 + (self.rand() % 38_000) as i64
        } else {
            0
        }
    }
    /// The slave's receive-stamp latency for one Sync, ns ([`Net::rx_latency`]).
    fn rx_latency(&mut self) -> i64 {
        let l = self.net.rx_latency;
        self.latency(l)
    }
    /// Floor + an exponential of the mean excess, ns (0 for `None`).
    fn latency(&mut self, l: Option<(i64, i64)>) -> i64 {
        let Some((floor, mean)) = l else {
            return 0;
        };
        let u = ((self.rand() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        floor + (-(mean as f64) * u.ln()) as i64
    }
    fn push(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.evs.push(Some(ev));
        self.q.push(Reverse((at, self.seq, self.evs.len() - 1)));
    }
    fn local(&self, t: i64) -> LocalNs {
        LocalNs::from_ns(self.slave_l0 + t + (t as f64 * self.net.slave_ppb * 1e-9).round() as i64)
    }
    fn true_of_local(&self, l: LocalNs) -> i64 {
        ((l.as_ns() - self.slave_l0) as f64 / (1.0 + self.net.slave_ppb * 1e-9)).ceil() as i64
    }
    fn reschedule_timer(&mut self) {
        if let Some(d) = self.slave.poll_timeout() {
            let t = self.true_of_local(d).max(self.now);
            if self.timer_at != Some(t) {
                self.timer_at = Some(t);
                self.push(t, Ev::SlaveTimer);
            }
        }
    }

    fn do_actions(&mut self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::SendEvent { data, token } => {
                    let tx_local = self.local(self.now);
                    let more = self.slave.handle_tx_timestamp(token, tx_local);
                    self.do_actions(more);
                    let l = self.net.tx_latency;
                    let late = self.latency(l);
                    for i in 0..self.masters.len() {
                        if self.masters[i].alive {
                            let d = late + self.net.delay_sm + self.jitter();
                            let n = self.spike();
                            self.push(self.now + d, Ev::ToMaster(i, data.clone(), n));
                        }
                    }
                }
                Action::SendGeneral { .. } => {}
                Action::PublishClock {
                    map, utc_offset_s, ..
                } => {
                    self.map = Some(map);
                    self.utc_offset_s = Some(utc_offset_s);
                }
            }
        }
    }

    fn error_now(&self) -> Option<i64> {
        let parent = self.slave.status(self.local(self.now)).parent?;
        let m = self
            .masters
            .iter()
            .find(|m| m.port().to_string() == parent)?;
        let ours = self.map?.to_ptp(self.local(self.now));
        Some((ours.as_nanos() - m.time(self.now).as_nanos()) as i64)
    }

    fn run_until(&mut self, end: i64) {
        while let Some(Reverse((at, _, idx))) = self.q.peek().copied() {
            if at > end {
                break;
            }
            self.q.pop();
            self.now = at;
            let ev = self.evs[idx].take().expect("event once");
            match ev {
                Ev::SyncTick(i) => {
                    let m = &mut self.masters[i];
                    if m.alive {
                        let seq = m.sync_seq;
                        m.sync_seq = seq.wrapping_add(1);
                        let t1 = m.time(at);
                        let mut h = Header::new(MessageType::Sync, 0, m.port(), seq);
                        h.log_message_interval = self.net.log_sync;
                        let two = m.two_step;
                        if two {
                            h.flags = Flags(Flags::TWO_STEP);
                        }
                        // Put 1.5 ns of a residence-time correction in, to exercise correctionField.
                        h.correction = 1 << 16;
                        let origin = if two {
                            PtpTimestamp::from_nanos(t1.as_nanos() - 5_000)
                        } else {
                            PtpTimestamp::from_nanos(t1.as_nanos() - 1)
                        };
                        let sync = Message {
                            header: h,
                            body: Body::Sync {
                                origin_timestamp: origin,
                            },
                        }
                        .to_bytes();
                        let d = self.net.delay_ms + self.jitter();
                        let n = self.spike() + self.rx_latency();
                        self.push(at + d, Ev::ToSlave(true, sync, n));
                        if two {
                            let m = &self.masters[i];
                            let mut h = Header::new(MessageType::FollowUp, 0, m.port(), seq);
                            h.correction = 0;
                            let fu = Message {
                                header: h,
                                body: Body::FollowUp {
                                    precise_origin_timestamp: PtpTimestamp::from_nanos(
                                        t1.as_nanos() - 1,
                                    ),
                                },
                            }
                            .to_bytes();
                            self.push(at + d + 50_000, Ev::ToSlave(false, fu, 0));
                        }
                    }
                    let iv = LogInterval::new(self.net.log_sync).as_nanos().as_ns();
                    self.push(at + iv, Ev::SyncTick(i));
                }
                Ev::AnnounceTick(i) => {
                    let m = &mut self.masters[i];
                    if m.alive {
                        let seq = m.ann_seq;
                        m.ann_seq = seq.wrapping_add(1);
                        let mut h = Header::new(MessageType::Announce, 0, m.port(), seq);
                        h.log_message_interval = 1;
                        h.flags = Flags(m.ann_flags);
                        let body = AnnounceBody {
                            origin_timestamp: m.time(at),
                            current_utc_offset: 37,
                            gm_priority1: m.priority1,
                            gm_clock_quality: ClockQuality {
                                clock_class: 6,
                                clock_accuracy: 0x21,
                                offset_scaled_log_variance: 0x4e5d,
                            },
                            gm_priority2: 128,
                            gm_identity: m.id,
                            steps_removed: 0,
                            time_source: 0x20,
                        };
                        let b = Message {
                            header: h,
                            body: Body::Announce(body),
                        }
                        .to_bytes();
                        self.push(at + self.net.delay_ms, Ev::ToSlave(false, b, 0));
                    }
                    self.push(at + 2 * S, Ev::AnnounceTick(i));
                }
                Ev::ToSlave(event, data, noise) => {
                    let now_l = self.local(at);
                    let acts = if event {
                        // The first Sync the slave can use: a master is
                        // qualified (2 Announces, §9.3.2.4.4).
                        if self.first_sync_rx.is_none()
                            && matches!(
                                self.slave.state(),
                                PortState::Uncalibrated | PortState::Slave
                            )
                        {
                            self.first_sync_rx = Some(at);
                        }
                        self.slave
                            .handle_event(&data, now_l.add(Nanos::from_ns(noise)), now_l)
                    } else {
                        self.slave.handle_general(&data, now_l)
                    };
                    self.do_actions(acts);
                }
                Ev::ToMaster(i, data, noise) => {
                    let m = &self.masters[i];
                    if m.alive
                        && m.answers_delay_req
                        && let Ok(req) = Message::parse(&data)
                    {
                        let t4 = m.time(at + noise);
                        let mut h = Header::new(
                            MessageType::DelayResp,
                            0,
                            m.port(),
                            req.header.sequence_id,
                        );
                        h.log_message_interval = 0;
                        let resp = Message {
                            header: h,
                            body: Body::DelayResp {
                                receive_timestamp: t4,
                                requesting_port: req.header.source_port,
                            },
                        }
                        .to_bytes();
                        self.push(at + self.net.delay_ms, Ev::ToSlave(false, resp, 0));
                    }
                }
                Ev::SlaveTimer => {
                    if self.timer_at == Some(at) {
                        self.timer_at = None;
                    }
                    let acts = self.slave.handle_timeout(self.local(at));
                    self.do_actions(acts);
                }
                Ev::Probe => {
                    let st = self.slave.status(self.local(at));
                    let e = self.error_now();
                    self.probes.push((at, e, st.state, st.servo));
                    let pi = st
                        .parent
                        .and_then(|p| self.masters.iter().position(|m| m.port().to_string() == p));
                    self.parents.push(pi);
                    self.push(at + S / 10, Ev::Probe);
                }
            }
            if self.first_slave.is_none() && self.slave.state() == PortState::Slave {
                self.first_slave = Some(at);
            }
            self.reschedule_timer();
        }
        self.now = end;
    }

    /// Probes in [from, to) true seconds.
    fn window(&self, from: f64, to: f64) -> Vec<&(i64, Option<i64>, PortState, ServoState)> {
        self.probes
            .iter()
            .filter(|p| p.0 as f64 >= from * 1e9 && (p.0 as f64) < to * 1e9)
            .collect()
    }
    fn stats(&self, from: f64, to: f64) -> (f64, i64, f64) {
        let v: Vec<i64> = self.window(from, to).iter().filter_map(|p| p.1).collect();
        assert!(!v.is_empty(), "no probes with a parent in {from}..{to}");
        let mean = v.iter().sum::<i64>() as f64 / v.len() as f64;
        let rms = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        (rms, v.iter().map(|x| x.abs()).max().unwrap_or(0), mean)
    }
    /// Like [`Self::locked_at`], with master `idx` as the parent.
    fn locked_to_at(&self, from: f64, bound: i64, idx: usize) -> Option<f64> {
        let ok = |i: usize| {
            let q = &self.probes[i];
            q.2 == PortState::Slave
                && q.1.is_some_and(|e| e.abs() < bound)
                && self.parents[i] == Some(idx)
        };
        (0..self.probes.len())
            .filter(|&i| self.probes[i].0 as f64 >= from * 1e9)
            .find(|&i| (i..(i + 10).min(self.probes.len())).all(ok))
            .map(|i| self.probes[i].0 as f64 / 1e9)
    }
    /// First true time ≥ `from` s when the slave is SLAVE with |error| < bound for 1 s straight.
    fn locked_at(&self, from: f64, bound: i64) -> Option<f64> {
        let w = self.window(from, 1e9);
        for (i, p) in w.iter().enumerate() {
            let ok = |q: &&(i64, Option<i64>, PortState, ServoState)| {
                q.2 == PortState::Slave && q.1.is_some_and(|e| e.abs() < bound)
            };
            if ok(p) && w[i..].iter().take(10).all(ok) {
                return Some(p.0 as f64 / 1e9);
            }
        }
        None
    }
}

fn cfg() -> PortConfig {
    let mut c = PortConfig::new(ClockIdentity([0xaa, 1, 2, 0xff, 0xfe, 3, 4, 5]));
    c.slave_only = true;
    c
}

/// [`cfg`] with servo `kind` (its default tuning).
fn cfg_with(kind: ServoKind) -> PortConfig {
    let mut c = cfg();
    c.servo = ServoConfig {
        kind,
        ..ServoConfig::default()
    };
    c
}

#[test]
fn locks_within_3s_with_drift_jitter_and_spikes() {
    for slave_ppb in [100_000.0, -100_000.0] {
        let net = Net {
            slave_ppb,
            ..Net::default()
        };
        let mut sim = Sim::new(
            net,
            vec![SimMaster::new(1, 128, 1_700_000_000 * S as i128, 0.0)],
            cfg(),
        );
        sim.run_until(60 * S);
        let first = sim.first_sync_rx.unwrap() as f64 / 1e9;
        let lock = sim.locked_at(0.0, 2_000).expect("locked");
        let (rms, max, mean) = sim.stats(20.0, 60.0);
        eprintln!(
            "slave {slave_ppb} ppb: first sync {first:.2}s lock {lock:.2}s; rms {rms:.0} ns max {max} ns mean {mean:.0}; outliers {}",
            sim.slave.servo().outliers()
        );
        assert!(lock - first < 3.0, "lock {lock} first Sync {first}");
        assert!(rms < 600.0, "rms {rms}");
        assert!(max < 2_500, "max {max}");
        let st = sim.slave.status(sim.local(sim.now));
        assert!(
            sim.slave.servo().outliers() + st.counters.sync_delayed > 0,
            "spikes were injected and must be rejected"
        );
        let f = sim.slave.freq().as_ppb();
        // PTP runs at 1/(1+e) of our oscillator: about −e.
        assert!((f + slave_ppb).abs() < 200.0, "freq {f}");
    }
}

/// The Syncs of the master seen while it was being qualified (2 Announces,
/// 2 s apart, §9.3.2.4.4) are the servo's first samples once the first
/// Delay_Resp gives meanPathDelay: lock follows qualification by about one
/// Sync interval, not by the servo's whole warm-up. Linreg and Kalman at
/// 8 Sync/s, with no seeded map and with one near or far from the truth;
/// Kalman (whose lock needs 3 samples, linreg's 6) at 1 Sync/s, within 3
/// Syncs of the first.
#[test]
fn lock_follows_qualification_on_the_syncs_kept_before_it() {
    // The second Announce (sent at 2.001 s) arrives 30 µs later.
    let qualified = 2.001 + 30e-6;
    let first_sync = 0.003 + 30e-6;
    const NEAR: Option<i128> = Some(3_000);
    const FAR: Option<i128> = Some(1_000_000_000);
    for (kind, log_sync, seeded) in [
        (ServoKind::LinReg, -3i8, None),
        (ServoKind::LinReg, -3, NEAR),
        (ServoKind::LinReg, -3, FAR),
        (ServoKind::Kalman, -3, None),
        (ServoKind::Kalman, -3, NEAR),
        (ServoKind::Kalman, -3, FAR),
        (ServoKind::Kalman, 0, NEAR),
    ] {
        for slave_ppb in [100_000.0, -100_000.0] {
            let net = Net {
                slave_ppb,
                log_sync,
                spike_permille: 0,
                ..Net::default()
            };
            let mut c = cfg_with(kind);
            if let Some(off) = seeded {
                // As the engine does: a rough map for the master role
                // (there CLOCK_REALTIME, so near the truth on one host),
                // which is no estimate.
                c.initial_map = Some(ClockMap::new(
                    LocalNs::from_ns(5 * S),
                    PtpTimestamp::from_nanos(1_700_000_000 * S as i128 + off),
                ));
            }
            let mut sim = Sim::new(
                net,
                vec![SimMaster::new(1, 128, 1_700_000_000 * S as i128, 0.0)],
                c,
            );
            sim.run_until(15 * S);
            // Probes every 0.1 s: the first one at or after the lock.
            let lock = sim.locked_at(0.0, 2_000).expect("locked");
            let iv = 2f64.powi(log_sync.into());
            let slave_at = sim.first_slave.unwrap_or(0) as f64 / 1e9;
            eprintln!(
                "{kind:?} logSyncInterval {log_sync} seeded {seeded:?} slave {slave_ppb} ppb: SLAVE {:.4} s after qualification, {:.3} s after the first Sync; within 2 µs at the probe {lock:.1} s",
                slave_at - qualified,
                slave_at - first_sync
            );
            // SLAVE: at the first Delay_Resp after the first Sync after
            // qualification (one Sync interval at most, and a round trip).
            let slave = sim.first_slave.expect("SLAVE") as f64 / 1e9;
            assert!(slave > qualified, "locked before qualification: {slave}");
            assert!(
                slave - qualified <= iv + 0.001,
                "{kind:?} {log_sync} seeded {seeded:?} {slave_ppb}: SLAVE at {slave} s, qualified {qualified} s"
            );
            // And the clock is right from then on (probes every 0.1 s).
            assert!(
                lock - slave <= 0.1,
                "{kind:?} {log_sync} seeded {seeded:?} {slave_ppb}: within 2 µs at {lock} s, SLAVE at {slave} s"
            );
            if log_sync == 0 {
                assert!(
                    lock - first_sync <= 2.0 * iv + 0.1,
                    "not within 3 Syncs: {lock}"
                );
            }
        }
    }
}

#[test]
fn asymmetry_shows_as_half_the_difference() {
    // 60 µs out, 40 µs back: E2E cannot see asymmetry; the error is +10 µs
    // (we run late by half the difference... sign: ours − master = −(dms−dsm)/2).
    let net = Net {
        delay_ms: 60_000,
        delay_sm: 40_000,
        spike_permille: 0,
        ..Net::default()
    };
    let mut sim = Sim::new(
        net,
        vec![SimMaster::new(1, 128, 1_000 * S as i128, 0.0)],
        cfg(),
    );
    sim.run_until(30 * S);
    let (_, _, mean) = sim.stats(10.0, 30.0);
    eprintln!("asymmetry mean error {mean:.0} ns");
    assert!((mean + 10_000.0).abs() < 1_000.0, "mean {mean}");
}

#[test]
fn master_step_plus_minus_one_second_relocks_within_2s() {
    let mut sim = Sim::new(
        Net::default(),
        vec![SimMaster::new(1, 128, 5_000 * S as i128, 20_000.0)],
        cfg(),
    );
    sim.run_until(30 * S);
    for (k, step) in [(0, S as i128), (1, -(S as i128))] {
        let at = 30 + 30 * k;
        sim.run_until(at * S);
        sim.masters[0].offset += step;
        sim.run_until((at + 30) * S);
        let relock = sim.locked_at(at as f64 + 0.01, 2_000).expect("relocked") - at as f64;
        let (rms, _, _) = sim.stats(at as f64 + 10.0, at as f64 + 30.0);
        eprintln!("step {step}: relock {relock:.2}s, rms after {rms:.0}");
        assert!(relock < 2.0, "relock {relock}");
        assert!(rms < 600.0);
    }
}

#[test]
fn master_loss_60s_holdover_and_return() {
    let mut sim = Sim::new(
        Net::default(),
        vec![SimMaster::new(1, 128, 5_000 * S as i128, -30_000.0)],
        cfg(),
    );
    sim.run_until(30 * S);
    sim.masters[0].alive = false;
    sim.run_until(50 * S);
    let st = sim.slave.status(sim.local(sim.now));
    eprintln!(
        "at 50 s: {:?} {:?} age {:?}",
        st.state, st.servo, st.holdover_age_s
    );
    assert_eq!(st.servo, ServoState::Holdover);
    assert_eq!(st.state, PortState::Listening);
    let age = st.holdover_age_s.expect("holdover age");
    assert!((19.0..21.0).contains(&age), "age {age}");
    sim.run_until(90 * S);
    // Holdover error after 60 s: our clock against the (absent) master's time.
    let ours = sim.map.unwrap().to_ptp(sim.local(sim.now));
    let drift = (ours.as_nanos() - sim.masters[0].time(sim.now).as_nanos()) as i64;
    eprintln!("holdover error after 60 s: {drift} ns");
    assert!(drift.abs() < 5_000, "holdover drift {drift}");
    sim.masters[0].alive = true;
    sim.run_until(130 * S);
    let relock = sim.locked_to_at(90.0, 2_000, 0).expect("relocked") - 90.0;
    eprintln!("relock after return {relock:.2}s");
    // Two Announces (2 s apart) qualify the master again, then one Sync.
    assert!(relock < 6.0, "relock {relock}");
}

#[test]
fn bmca_switches_between_two_masters_and_back() {
    let a = SimMaster::new(1, 100, 5_000 * S as i128, 0.0);
    let b = SimMaster::new(2, 120, 5_000 * S as i128 + 3_000_000, 20_000.0);
    let mut sim = Sim::new(Net::default(), vec![a, b], cfg());
    sim.run_until(30 * S);
    assert_eq!(
        sim.slave.status(sim.local(sim.now)).gm_identity,
        sim.masters[0].id.to_string()
    );
    sim.masters[0].alive = false;
    sim.run_until(60 * S);
    let st = sim.slave.status(sim.local(sim.now));
    assert_eq!(st.gm_identity, sim.masters[1].id.to_string());
    let sw = sim.locked_to_at(30.0, 2_000, 1).expect("locked to B") - 30.0;
    eprintln!("switch to B locked after {sw:.2}s");
    assert!(sw < 12.0, "switch {sw}");
    sim.masters[0].alive = true;
    sim.run_until(90 * S);
    let st = sim.slave.status(sim.local(sim.now));
    assert_eq!(
        st.gm_identity,
        sim.masters[0].id.to_string(),
        "better master A is chosen again"
    );
    let back = sim.locked_to_at(60.0, 2_000, 0).expect("back on A") - 60.0;
    eprintln!("back to A locked after {back:.2}s");
    assert!(back < 8.0);
    let (rms, _, _) = sim.stats(75.0, 90.0);
    assert!(rms < 600.0);
}

/// The seeds' bug: "PTP goes UNLOCKED after a few minutes and never
/// relocks". Ten minutes with spike bursts, a sub-threshold shift, a
/// 40 µs-then-back excursion, a 12 s outage and a 1 ms step: the servo must
/// be locked ≥ 97 % of the time after the first lock, never unlocked for
/// more than 10 s, and locked at the end.
#[test]
fn regression_never_stuck_unlocked() {
    let net = Net {
        spike_permille: 30,
        ..Net::default()
    };
    let mut sim = Sim::new(
        net,
        vec![SimMaster::new(1, 128, 9_000 * S as i128, 50_000.0)],
        cfg(),
    );
    sim.run_until(120 * S);
    sim.net.spike_permille = 300; // a burst: 30 % spikes for 10 s
    sim.run_until(130 * S);
    sim.net.spike_permille = 30;
    sim.run_until(200 * S);
    sim.masters[0].offset += 20_000; // 20 µs shift (below step threshold)
    sim.run_until(260 * S);
    sim.net.delay_ms += 40_000; // route change: +40 µs one way
    sim.run_until(300 * S);
    sim.net.delay_ms -= 40_000;
    sim.run_until(360 * S);
    sim.masters[0].alive = false;
    sim.run_until(372 * S);
    sim.masters[0].alive = true;
    sim.run_until(450 * S);
    sim.masters[0].offset += 1_000_000;
    sim.run_until(600 * S);
    let first_lock = sim.locked_at(0.0, 5_000).unwrap();
    let after: Vec<_> = sim.window(first_lock, 600.0);
    let locked = after.iter().filter(|p| p.2 == PortState::Slave).count();
    let mut longest = 0;
    let mut run = 0;
    for p in &after {
        if p.2 == PortState::Slave {
            run = 0;
        } else {
            run += 1;
            longest = longest.max(run);
        }
    }
    let frac = locked as f64 / after.len() as f64;
    eprintln!(
        "locked {:.1}% of the time, longest non-SLAVE stretch {:.1}s",
        frac * 100.0,
        longest as f64 / 10.0
    );
    assert!(frac > 0.97, "locked fraction {frac}");
    assert!(longest <= 100, "not locked for {} s", longest as f64 / 10.0);
    assert!(sim.locked_at(590.0, 5_000).is_some() || after.last().unwrap().2 == PortState::Slave);
}

#[test]
fn one_way_fallback_when_no_delay_resp() {
    let mut m = SimMaster::new(1, 128, 5_000 * S as i128, 0.0);
    m.answers_delay_req = false;
    m.two_step = false;
    let mut c = cfg();
    c.assumed_delay = Nanos::from_ns(30_700); // the path's mean delay (30 µs + mean jitter)
    let mut sim = Sim::new(
        Net {
            spike_permille: 0,
            ..Net::default()
        },
        vec![m],
        c,
    );
    sim.run_until(30 * S);
    let st = sim.slave.status(sim.local(sim.now));
    assert!(st.one_way, "status must say one-way");
    assert_eq!(st.state, PortState::Slave);
    let (rms, _, _) = sim.stats(15.0, 30.0);
    eprintln!("one-way rms {rms:.0}");
    assert!(rms < 1_500.0);
}

#[test]
fn pi_reference_servo_also_locks() {
    let c = cfg_with(ServoKind::Pi);
    let net = Net {
        spike_permille: 0,
        slave_ppb: 50_000.0,
        ..Net::default()
    };
    let mut sim = Sim::new(net, vec![SimMaster::new(1, 128, 5_000 * S as i128, 0.0)], c);
    sim.run_until(600 * S);
    let lock =
        sim.locked_at(0.0, 5_000).expect("PI locks") - sim.first_sync_rx.unwrap() as f64 / 1e9;
    let (rms, _, _) = sim.stats(500.0, 600.0);
    // For comparison: the linreg servo on the same network.
    let mut lr = Sim::new(
        net,
        vec![SimMaster::new(1, 128, 5_000 * S as i128, 0.0)],
        cfg(),
    );
    lr.run_until(60 * S);
    let lr_lock =
        lr.locked_at(0.0, 5_000).expect("linreg locks") - lr.first_sync_rx.unwrap() as f64 / 1e9;
    eprintln!(
        "PI (linuxptp sw constants): |e|<5 µs at {lock:.1}s, rms 500-600 s {rms:.0} ns; linreg: {lr_lock:.1}s; PI freq resets {} steps {}",
        sim.slave.servo().freq_resets(),
        sim.slave.servo().steps()
    );
    assert!(rms < 3_000.0);
    // (Measured from the first usable Sync. Before foreignMasterThreshold
    // qualification the PI took ~129 s from t=0 here, now both lock within
    // a second of qualification; the comparison is printed, not asserted.)
    assert!(lock < 130.0 && lr_lock < 3.0, "PI {lock} linreg {lr_lock}");
}

/// Our own master role against our own slave: Announce, two-step Sync +
/// Follow_Up and Delay_Resp from [`Port`] in MASTER.
#[test]
fn our_master_serves_our_slave() {
    // Master: a Port, on an oscillator at −40 ppm vs true time.
    let mut mc = PortConfig::new(ClockIdentity([0xbb, 0, 0, 0xff, 0xfe, 0, 0, 1]));
    mc.priority1 = 10;
    mc.initial_map = Some(ClockMap::new(
        LocalNs::from_ns(0),
        PtpTimestamp::from_nanos(7_000 * S as i128),
    ));
    let m_ppb = -40_000.0;
    let mloc = |t: i64| LocalNs::from_ns(t + (t as f64 * m_ppb * 1e-9).round() as i64);
    let mut master = Port::new(mc, mloc(0));
    let mut slave = Port::new(cfg(), LocalNs::from_ns(0));
    let s_ppb = 60_000.0;
    let sloc = |t: i64| LocalNs::from_ns(t + (t as f64 * s_ppb * 1e-9).round() as i64);
    let delay = 25_000i64;
    // (arrival true time, to_slave?, event?, bytes)
    let mut inflight: Vec<(i64, bool, bool, Vec<u8>)> = Vec::new();
    let mut errs = Vec::new();
    let mut smap: Option<ClockMap> = None;
    let mut first_lock = None;
    let mut t = 0i64;
    while t < 40 * S {
        t += 1_000_000; // 1 ms steps
        let mut mact = master.handle_timeout(mloc(t));
        let mut sact = slave.handle_timeout(sloc(t));
        let mut due: Vec<_> = Vec::new();
        inflight.retain(|x| {
            if x.0 <= t {
                due.push(x.clone());
                false
            } else {
                true
            }
        });
        for (at, to_slave, ev, data) in due {
            if to_slave {
                let r = if ev {
                    slave.handle_event(&data, sloc(at), sloc(t))
                } else {
                    slave.handle_general(&data, sloc(t))
                };
                sact.extend(r);
            } else if ev {
                mact.extend(master.handle_event(&data, mloc(at), mloc(t)));
            }
        }
        while !mact.is_empty() || !sact.is_empty() {
            for a in std::mem::take(&mut mact) {
                match a {
                    Action::SendEvent { data, token } => {
                        sact.extend(Vec::new());
                        mact.extend(master.handle_tx_timestamp(token, mloc(t)));
                        inflight.push((t + delay, true, true, data));
                    }
                    Action::SendGeneral { data } => inflight.push((t + delay, true, false, data)),
                    Action::PublishClock { .. } => {}
                }
            }
            for a in std::mem::take(&mut sact) {
                match a {
                    Action::SendEvent { data, token } => {
                        sact.extend(slave.handle_tx_timestamp(token, sloc(t)));
                        inflight.push((t + delay, false, true, data));
                    }
                    Action::SendGeneral { .. } => {}
                    Action::PublishClock { map, .. } => smap = Some(map),
                }
            }
        }
        if t % (100 * 1_000_000) == 0
            && let (Some(sm), Some(mm)) = (smap, master.clock_map())
        {
            let e = sm.to_ptp(sloc(t)).as_nanos() - mm.to_ptp(mloc(t)).as_nanos();
            if slave.state() == PortState::Slave {
                first_lock.get_or_insert(t);
                errs.push(e as i64);
            }
        }
    }
    assert_eq!(master.state(), PortState::Master);
    let lock = first_lock.expect("slave locked to our master") as f64 / 1e9;
    let tail = &errs[errs.len() - 100..];
    let max = tail.iter().map(|e| e.abs()).max().unwrap();
    eprintln!(
        "our master: slave locked at {lock:.2}s, max |err| last 10 s {max} ns; master answered {} Delay_Req",
        master.status(mloc(t)).counters.delay_req_answered
    );
    assert!(max < 1_000, "max {max}");
    assert!(master.status(mloc(t)).counters.delay_req_answered > 10);
}

/// TAI vs ARB: `clock_minus_realtime` subtracts currentUtcOffset only when the
/// grandmaster's Announce says ptpTimescale (ptp4l with software timestamps
/// sends CLOCK_REALTIME with flags 0, i.e. ARB, checked on the wire).
#[test]
fn utc_offset_applies_only_on_the_ptp_timescale() {
    for (flags, want) in [(Flags::PTP_TIMESCALE | Flags::UTC_OFFSET_VALID, 37), (0, 0)] {
        let mut m = SimMaster::new(1, 128, 5_000 * S as i128, 0.0);
        m.ann_flags = flags;
        let mut sim = Sim::new(Net::default(), vec![m], cfg());
        sim.run_until(10 * S);
        assert_eq!(sim.utc_offset_s, Some(want), "flags {flags:#x}");
        let st = sim.slave.status(sim.local(sim.now));
        assert_eq!(st.ptp_timescale, want != 0);
        assert_eq!(st.state, PortState::Slave);
    }
}

/// timeTraceable follows the parent's Announce flagField (it feeds the NMOS
/// node's `clocks[].traceable`).
#[test]
fn time_traceable_follows_the_parents_announce() {
    for (flags, want) in [
        (Flags::PTP_TIMESCALE | Flags::TIME_TRACEABLE, true),
        (Flags::PTP_TIMESCALE, false),
    ] {
        let mut m = SimMaster::new(1, 128, 5_000 * S as i128, 0.0);
        m.ann_flags = flags;
        let mut sim = Sim::new(Net::default(), vec![m], cfg());
        sim.run_until(10 * S);
        let st = sim.slave.status(sim.local(sim.now));
        assert_eq!(st.state, PortState::Slave);
        assert_eq!(st.time_traceable, want, "flags {flags:#x}");
    }
}

/// Missing TX timestamps: FAULTY after `faulty_after` in a row, then back
/// to LISTENING (and to MASTER again) after the 16 s fault timeout.
#[test]
fn missing_tx_timestamps_fault_and_recover() {
    let mut c = PortConfig::new(ClockIdentity([0xcc; 8]));
    c.master_only = true;
    let mut p = Port::new(c, LocalNs::from_ns(0));
    let mut now = LocalNs::from_ns(0);
    let mut failed = 0;
    while failed < 5 {
        now = now.add(Nanos::from_ms(125));
        for a in p.handle_timeout(now) {
            if let Action::SendEvent { token, .. } = a {
                let _ = p.handle_tx_failed(token, now);
                failed += 1;
            }
        }
    }
    assert_eq!(p.state(), PortState::Faulty);
    assert_eq!(p.status(now).counters.tx_timestamp_failures, 5);
    // While FAULTY nothing is sent.
    let t = now.add(Nanos::from_secs(1));
    assert!(p.handle_timeout(t).is_empty());
    let t = now.add(Nanos::from_secs(17));
    let _ = p.handle_timeout(t);
    assert_eq!(p.state(), PortState::Listening);
    // master_only: the next announce timeout makes it master again.
    let t = t.add(Nanos::from_secs(10));
    let _ = p.handle_timeout(t);
    assert_eq!(p.state(), PortState::Master);
}

/// A rogue grandmaster (priority1 0, 2 s off) appears while we are locked:
/// with the real one pinned as the only acceptable master (the SDP's
/// ts-refclk), it is ignored and counted, and the clock does not move;
/// without the pin it wins only after foreignMasterThreshold qualification.
#[test]
fn rogue_grandmaster_is_ignored_when_pinned() {
    let real = || SimMaster::new(1, 128, 5_000 * S as i128, 0.0);
    let rogue = || {
        let mut m = SimMaster::new(2, 0, 5_002 * S as i128, 0.0);
        m.alive = false;
        m
    };
    let mut c = cfg();
    c.acceptable_masters = vec![real().id];
    let mut sim = Sim::new(Net::default(), vec![real(), rogue()], c);
    sim.run_until(20 * S);
    sim.masters[1].alive = true;
    sim.run_until(60 * S);
    let st = sim.slave.status(sim.local(sim.now));
    assert_eq!(st.gm_identity, sim.masters[0].id.to_string());
    assert!(st.counters.unacceptable_master >= 10, "{:?}", st.counters);
    let (rms, max, _) = sim.stats(20.0, 60.0);
    assert!(rms < 600.0 && max < 2_500, "rms {rms} max {max}");
    // Unpinned: the better rogue takes over, but not on its first Announce.
    let mut sim = Sim::new(Net::default(), vec![real(), rogue()], cfg());
    sim.run_until(20 * S);
    sim.masters[1].alive = true;
    let mut first_switch = None;
    while sim.now < 40 * S {
        let t = sim.now + S / 8;
        sim.run_until(t);
        let st = sim.slave.status(sim.local(sim.now));
        if first_switch.is_none() && st.gm_identity == sim.masters[1].id.to_string() {
            first_switch = Some(sim.now);
        }
    }
    let sw = first_switch.expect("switched to the better master") as f64 / 1e9 - 20.0;
    // Announces every 2 s: the second one qualifies it (≥ 2 s after it appears).
    assert!(sw >= 1.9, "switched after {sw:.2} s");
}

/// Noisy software timestamps (10 µs uniform jitter on every message, 3 %
/// of them delayed 15-53 µs), the three servos on the same network: the
/// Kalman servo's clock error rms is the lowest and well below the raw
/// jitter (sd 2.9 µs); delayed Syncs are dropped by their residence.
#[test]
fn kalman_beats_linreg_and_pi_on_noisy_timestamps() {
    // One realization decides little: the Kalman filter's rms over 30-90 s
    // ranges 0.37-1.96 µs over 20 seeds of the same network. So 20 seeds,
    // and the medians are compared.
    const SEEDS: u64 = 20;
    let kinds = [ServoKind::Kalman, ServoKind::LinReg, ServoKind::Pi];
    let mut rms_of: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    // Kalman: time from the first usable Sync to |error| < 10 µs, s.
    let mut locks = Vec::new();
    for seed in 1..=SEEDS {
        for (k, kind) in kinds.into_iter().enumerate() {
            let net = Net {
                jitter: 10_000,
                spike_permille: 30,
                slave_ppb: 40_000.0,
                ..Net::default()
            };
            let c = cfg_with(kind);
            let mut sim = Sim::with_seed(
                net,
                vec![SimMaster::new(1, 128, 1_700_000_000 * S as i128, 0.0)],
                c,
                seed * 7919 + 12345,
            );
            sim.run_until(90 * S);
            let first = sim.first_sync_rx.unwrap() as f64 / 1e9;
            let (rms, max, _) = sim.stats(30.0, 90.0);
            let st = sim.slave.status(sim.local(sim.now));
            if kind == ServoKind::Kalman {
                assert!(st.counters.sync_delayed > 0, "spikes must be dropped");
                assert!(max < 6_000, "seed {seed}: max {max}");
                let lock = sim.locked_at(0.0, 10_000).unwrap_or(f64::MAX);
                locks.push(lock - first);
            }
            rms_of[k].push(rms);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let m: Vec<f64> = rms_of.iter_mut().map(median).collect();
    let lock = median(&mut locks);
    let worst = locks.last().copied().unwrap_or(f64::MAX);
    eprintln!("Kalman lock after the first usable Sync: median {lock:.2} s, worst {worst:.2} s");
    assert!(
        lock < 1.5 && worst < 6.0,
        "lock median {lock} worst {worst}"
    );
    eprintln!(
        "median rms over {SEEDS} seeds: Kalman {:.0} ns, LinReg {:.0} ns, Pi {:.0} ns; Kalman/LinReg {:.2}",
        m[0],
        m[1],
        m[2],
        m[0] / m[1]
    );
    assert!(m[0] < 1_500.0, "Kalman median rms {}", m[0]);
    assert!(m[0] < 0.8 * m[1], "kalman vs linreg {m:?}");
    assert!(m[0] < m[2], "kalman vs pi {m:?}");
}

/// User-space stamps (wine, Windows without `SO_TIMESTAMP`): each Sync's t2
/// is late by 100 µs + an exponential of mean 1 ms (wine measured here: p10
/// 0.2 ms, p50 4 ms under load), and each Delay_Req leaves 50 µs + an
/// exponential of mean 300 µs after its t3. The port in its one-sided mode
/// (`PortConfig::one_sided_rx`, the engine's tuning for such stamps) follows
/// the lower envelope of both: its rms is at most a fifth of the
/// default's, whose meanPathDelay and fit carry the mean latencies, and
/// under 60 µs. What remains is mostly half the difference of the two
/// floors, which no two-way exchange can see (the asymmetry it makes is
/// unobservable, IEEE 1588-2019 §7.4.2). Linreg, 8 Sync/s, 5 seeds, 20-80 s.
/// (Measured: mean 19 µs, rms 29 µs, 0.10× the default's 283 µs; with the
/// meanPathDelay's interquartile mean instead of its lower envelope, 125 µs.)
#[test]
fn one_sided_rx_latency_follows_the_lower_envelope() {
    let mut means = [Vec::new(), Vec::new()];
    let mut rmss = [Vec::new(), Vec::new()];
    for seed in 1..=5u64 {
        for (k, one_sided) in [false, true].into_iter().enumerate() {
            let net = Net {
                rx_latency: Some((100_000, 1_000_000)),
                tx_latency: Some((50_000, 300_000)),
                ..Net::default()
            };
            let mut c = cfg_with(ServoKind::LinReg);
            // As the engine sets it for user-space stamps.
            c.servo.step_threshold = Nanos::from_ms(20);
            c.servo.outlier_floor = Nanos::from_ms(2);
            c.servo.restart_after = 16;
            c.servo.stable_bound = Nanos::from_us(500);
            c.servo.window = Nanos::from_secs(8);
            c.one_sided_rx = one_sided;
            let mut sim = Sim::with_seed(
                net,
                vec![SimMaster::new(1, 128, 1_700_000_000 * S as i128, 0.0)],
                c,
                seed * 104_729 + 7,
            );
            sim.run_until(80 * S);
            let (rms, _, mean) = sim.stats(20.0, 80.0);
            means[k].push(mean.abs());
            rmss[k].push(rms);
        }
    }
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (m0, m1) = (avg(&means[0]), avg(&means[1]));
    let (r0, r1) = (avg(&rmss[0]), avg(&rmss[1]));
    eprintln!(
        "one-sided rx latency: |mean error| default {m0:.0} ns, one-sided {m1:.0} ns ({:.2}); rms {r0:.0} / {r1:.0} ns ({:.2})",
        m1 / m0,
        r1 / r0
    );
    assert!(r0 > 150_000.0, "the default should carry the latency: {r0}");
    assert!(m1 < 0.5 * m0, "one-sided mean {m1} vs default {m0}");
    assert!(r1 < 0.2 * r0, "one-sided rms {r1} vs default {r0}");
    assert!(r1 < 60_000.0, "one-sided rms {r1} ns");
}
