//! Foreign-master records (IEEE 1588-2019 §9.3.2.4), the best master clock
//! algorithm runs (§9.3) and announceReceiptTimeout (§9.2.6.12).

use std::collections::VecDeque;
use std::net::IpAddr;

use super::slave::CandidateSyncs;
use super::timers::Timer;
use super::{Actions, Port, PortState};
use crate::ptp::bmca::{self, Dataset, Decision};
use crate::ptp::msg::{AnnounceBody, Flags, Header};
use crate::ptp::time::{LocalNs, LogInterval};
use crate::units::Nanos;

/// What we know of one foreign master.
#[derive(Debug)]
pub(super) struct Foreign {
    announce: AnnounceBody,
    flags: Flags,
    /// Receive times of its Announces within the qualification window.
    times: VecDeque<LocalNs>,
    last: LocalNs,
    /// Source address of its last Announce (if the IO layer gave one).
    addr: Option<IpAddr>,
    /// Its Syncs while we have no parent, for a servo that starts the
    /// moment it qualifies.
    candidate: CandidateSyncs,
}

impl Foreign {
    /// Its kept Syncs ([`CandidateSyncs`]) for a message from `src`
    /// (`None`: unknown), or `None` when its Announces came from another
    /// address.
    pub(super) fn candidate_from(&mut self, src: Option<IpAddr>) -> Option<&mut CandidateSyncs> {
        (src.is_none() || self.addr.is_none() || self.addr == src).then_some(&mut self.candidate)
    }
}

impl Port {
    /// announceReceiptTimeout (§9.2.6.12): announceReceiptTimeout intervals
    /// plus up to one interval of randomness, so several slaves do not all
    /// become master at once.
    pub(super) fn announce_timeout(&mut self) -> Nanos {
        let iv = self.cfg.log_announce_interval.as_nanos();
        let r = self.rand() % 1000;
        Nanos::from_ns(
            iv.as_ns() * self.cfg.announce_receipt_timeout as i64 + iv.as_ns() / 1000 * r as i64,
        )
    }

    fn arm_announce_receipt(&mut self) {
        let t = self.now + self.announce_timeout();
        self.timers.set(Timer::AnnounceReceipt, t);
    }

    /// An Announce (§9.5.3): record it, then run the BMCA.
    pub(super) fn on_announce(&mut self, h: &Header, a: &AnnounceBody, out: &mut Actions) {
        self.counters.announces += 1;
        if a.steps_removed >= 255 || a.gm_identity == self.cfg.clock_identity {
            return; // §9.3.2.5: too many hops, or our own announce relayed
        }
        let acc = &self.cfg.acceptable_masters;
        if !acc.is_empty()
            && !acc.contains(&a.gm_identity)
            && !acc.contains(&h.source_port.clock_identity)
        {
            self.counters.unacceptable_master += 1;
            return; // §17.6 acceptable master table
        }
        let now = self.now;
        let window = Nanos::from_ns(
            LogInterval::new(h.log_message_interval)
                .clamp(-3, 4)
                .as_nanos()
                .as_ns()
                * 4,
        );
        // Prune stale records (none newer than 4 of our announce intervals,
        // nor than the sender's own window) on every Announce, whatever the
        // state, and bound the table.
        let stale =
            Nanos::from_ns(self.cfg.log_announce_interval.as_nanos().as_ns() * 4).max(window);
        let parent = self.parent;
        self.foreign
            .retain(|p, f| Some(*p) == parent || now.since(f.last) <= stale);
        if !self.foreign.contains_key(&h.source_port) && self.foreign.len() >= super::MAX_FOREIGN {
            self.counters.foreign_table_full += 1;
            return;
        }
        let src = self.src;
        let e = self.foreign.entry(h.source_port).or_insert(Foreign {
            announce: *a,
            flags: h.flags,
            times: VecDeque::new(),
            last: now,
            addr: src,
            candidate: CandidateSyncs::default(),
        });
        e.announce = *a;
        e.flags = h.flags;
        e.last = now;
        e.addr = src;
        e.times.push_back(now);
        while e.times.front().is_some_and(|t| now.since(*t) > window) {
            e.times.pop_front();
        }
        if Some(h.source_port) == self.parent {
            self.parent_announce = Some(*a);
            self.parent_flags = h.flags;
            if self.state != PortState::Master {
                self.arm_announce_receipt();
            }
        }
        self.run_bmca(out);
    }

    fn best_foreign(&self) -> Option<Dataset> {
        let me = self.cfg.port_identity();
        // §9.3.2.4.4: a foreign master is qualified after
        // FOREIGN_MASTER_THRESHOLD (2) Announces within
        // FOREIGN_MASTER_TIME_WINDOW (4 announce intervals), the first
        // master included: one forged packet never picks a master.
        let threshold = 2;
        self.foreign
            .iter()
            .filter(|(_, f)| f.times.len() >= threshold)
            .map(|(p, f)| Dataset::from_announce(&f.announce, *p, me))
            .min_by(bmca::compare)
    }

    /// The state decision (§9.3.3) and its consequences.
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
                self.set_state(PortState::Passive);
                if self.timers.get(Timer::AnnounceReceipt).is_none() {
                    self.arm_announce_receipt();
                }
            }
            Decision::Listening => {
                if self.state != PortState::Listening && self.state != PortState::Master {
                    self.set_state(PortState::Listening);
                }
            }
            Decision::Slave(p) => {
                let changed = self.parent != Some(p);
                if changed {
                    let first_parent = self.parent.is_none() && !self.servo.state().usable();
                    let had_parent = self.parent.is_some() || self.servo.map().is_some();
                    self.parent = Some(p);
                    self.parent_addr = None;
                    if let Some(f) = self.foreign.get(&p) {
                        self.parent_announce = Some(f.announce);
                        self.parent_flags = f.flags;
                        self.parent_addr = f.addr;
                    }
                    self.slave.new_parent();
                    // (A map seeded for the master role, `initial_map`, is
                    // no estimate: the servo is not usable.)
                    if first_parent && let Some(f) = self.foreign.get_mut(&p) {
                        // Its Syncs from before qualification start the
                        // servo as soon as meanPathDelay is measured.
                        self.slave.take_candidate(&mut f.candidate, self.now);
                    }
                    self.timers.stop(Timer::DelayReq);
                    if had_parent && self.servo.map().is_some() {
                        self.servo.reset_keep_freq();
                    }
                    self.set_state(PortState::Uncalibrated);
                }
                if self.state == PortState::Master
                    || self.state == PortState::Listening
                    || self.state == PortState::Passive
                {
                    self.set_state(PortState::Uncalibrated);
                }
                // Only the parent's Announces (or a new parent) restart the timer.
                if changed || self.timers.get(Timer::AnnounceReceipt).is_none() {
                    self.arm_announce_receipt();
                }
                self.publish(out);
            }
        }
    }

    fn enter_master(&mut self, out: &mut Actions) {
        if self.state != PortState::Master {
            self.set_state(PortState::Master);
            self.parent = None;
            self.parent_announce = None;
            self.timers.set(Timer::AnnounceTx, self.now);
            self.timers.set(Timer::SyncTx, self.now);
            if self.servo.state().usable() {
                self.servo.enter_holdover();
            }
            self.publish(out);
        }
        if !self.cfg.master_only {
            // Keep watching for better masters (their Announces re-run BMCA).
            self.timers.stop(Timer::AnnounceReceipt);
        }
    }

    /// announceReceiptTimeout expired (§9.2.6.12): the parent sent no
    /// Announce for announceReceiptTimeout intervals.
    pub(super) fn on_announce_timeout(&mut self, out: &mut Actions) {
        let now = self.now;
        // Drop the parent, and any other record that old.
        let limit = Nanos::from_ns(
            self.cfg.log_announce_interval.as_nanos().as_ns()
                * self.cfg.announce_receipt_timeout as i64,
        );
        if let Some(p) = self.parent {
            self.foreign.remove(&p);
        }
        self.foreign.retain(|_, f| now.since(f.last) < limit);
        if self.parent.is_some() {
            // Master lost.
            self.parent = None;
            self.slave.parent_lost();
            self.servo.enter_holdover();
            self.set_state(PortState::Listening);
            self.publish(out);
        }
        self.timers.stop(Timer::AnnounceReceipt);
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
                if self.timers.get(Timer::AnnounceReceipt).is_none() {
                    let t = now + self.announce_timeout();
                    self.timers.set(Timer::AnnounceReceipt, t);
                }
            }
        }
    }
}
