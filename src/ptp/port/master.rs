//! The master side of the port: Announce (IEEE 1588-2019 §9.5.8, §13.5),
//! two-step Sync + Follow_Up (§9.5.9, §9.5.10, §11.3) at their log2-second
//! intervals, and Delay_Resp (§9.5.12).

use super::timers::Timer;
use super::{Action, Actions, Port, TxKind};
use crate::ptp::msg::{AnnounceBody, Body, Flags, Header, Message, MessageType};
use crate::ptp::time::{LocalNs, LogInterval};
use crate::units::Nanos;

/// The master side's state.
#[derive(Debug, Default)]
pub(super) struct MasterSide {
    sync_seq: u16,
    announce_seq: u16,
    /// Delay_Resp rate limit: the current 1 s window's start and count.
    resp_window: Option<(LocalNs, u32)>,
}

impl Port {
    /// A header from us for the master role: two-step, with the timescale
    /// flags (§13.3.2.8) and `log` as logMessageInterval.
    fn master_header(&self, t: MessageType, seq: u16, log: LogInterval) -> Header {
        let mut h = Header::new(t, self.cfg.domain, self.cfg.port_identity(), seq);
        h.log_message_interval = log.as_i8();
        let mut f = Flags::TWO_STEP;
        if self.cfg.ptp_timescale {
            f |= Flags::PTP_TIMESCALE | Flags::UTC_OFFSET_VALID;
        }
        h.flags = Flags(f);
        h
    }

    /// Runs the expired AnnounceTx / SyncTx timers (MASTER only).
    pub(super) fn master_timeouts(&mut self, now: LocalNs, out: &mut Actions) {
        if let Some(at) = self.timers.get(Timer::AnnounceTx)
            && now >= at
        {
            self.send_announce(out);
            let iv = self.cfg.log_announce_interval.as_nanos();
            self.timers.set(Timer::AnnounceTx, (at + iv).max(now));
        }
        if let Some(at) = self.timers.get(Timer::SyncTx)
            && now >= at
        {
            self.send_sync(out);
            let iv = self.cfg.log_sync_interval.as_nanos();
            let mut next = at + iv;
            if next < now {
                next = now + iv;
            }
            self.timers.set(Timer::SyncTx, next);
        }
    }

    fn send_announce(&mut self, out: &mut Actions) {
        let seq = self.master.announce_seq;
        self.master.announce_seq = seq.wrapping_add(1);
        let mut h = self.master_header(MessageType::Announce, seq, self.cfg.log_announce_interval);
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
        let seq = self.master.sync_seq;
        self.master.sync_seq = seq.wrapping_add(1);
        let msg = Message {
            header: self.master_header(MessageType::Sync, seq, self.cfg.log_sync_interval),
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

    /// The Follow_Up carrying our Sync `seq`'s transmit time.
    pub(super) fn send_follow_up(&mut self, seq: u16, ts: LocalNs, out: &mut Actions) {
        let msg = Message {
            header: self.master_header(MessageType::FollowUp, seq, self.cfg.log_sync_interval),
            body: Body::FollowUp {
                precise_origin_timestamp: self.own_map().to_ptp(ts),
            },
        };
        out.push(Action::SendGeneral {
            data: msg.to_bytes(),
        });
    }

    /// Answers a Delay_Req received at `rx` with its t4.
    pub(super) fn answer_delay_req(&mut self, req: &Header, rx: LocalNs, out: &mut Actions) {
        // Bound the multicast answers a Delay_Req flood can cause.
        let now = self.now;
        let (start, n) = match self.master.resp_window {
            Some((s, n)) if now.since(s) < Nanos::from_secs(1) => (s, n),
            _ => (now, 0),
        };
        if n >= self.cfg.max_delay_resp_per_s {
            self.counters.delay_req_dropped += 1;
            return;
        }
        self.master.resp_window = Some((start, n + 1));
        let t4 = self.own_map().to_ptp(rx);
        let mut h = Header::new(
            MessageType::DelayResp,
            self.cfg.domain,
            self.cfg.port_identity(),
            req.sequence_id,
        );
        h.correction = req.correction;
        h.log_message_interval = self.cfg.log_min_delay_req_interval.as_i8();
        let msg = Message {
            header: h,
            body: Body::DelayResp {
                receive_timestamp: t4,
                requesting_port: req.source_port,
            },
        };
        self.counters.delay_req_answered += 1;
        out.push(Action::SendGeneral {
            data: msg.to_bytes(),
        });
    }
}
