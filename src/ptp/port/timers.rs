//! The port's timers (IEEE 1588-2019 §9.2.6.12 announceReceiptTimeout,
//! §9.5.8 / §9.5.9 Announce and Sync transmission, §9.5.11.2 Delay_Req
//! spacing) as one table of deadlines on the local reference clock.

use crate::ptp::time::LocalNs;

/// The port's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// announceReceiptTimeout (§9.2.6.12): no Announce from the parent (or,
    /// with no parent, from anyone) for announceReceiptTimeout intervals.
    AnnounceReceipt,
    /// The next Delay_Req (§9.5.11.2, E2E §11.3): either a scheduled send, or
    /// the hold-off before the next one may be scheduled (see
    /// `Slave::delay_req_scheduled`).
    DelayReq,
    /// Master role: the next Announce (2^logAnnounceInterval, §9.5.8).
    AnnounceTx,
    /// Master role: the next Sync (2^logSyncInterval, §9.5.9).
    SyncTx,
    /// FAULTY: when the port goes back to LISTENING.
    FaultRecovery,
}

impl Timer {
    const ALL: [Timer; 5] = [
        Timer::AnnounceReceipt,
        Timer::DelayReq,
        Timer::AnnounceTx,
        Timer::SyncTx,
        Timer::FaultRecovery,
    ];
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TimerTable {
    data: [Option<LocalNs>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms (or re-arms) `timer` for `at`.
    pub(super) fn set(&mut self, timer: Timer, at: LocalNs) {
        self.data[timer as usize] = Some(at);
    }
    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }
    /// The deadline of `timer`, if armed.
    pub(super) fn get(&self, timer: Timer) -> Option<LocalNs> {
        self.data[timer as usize]
    }
    /// Whether `timer` is armed and its deadline has passed at `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: LocalNs) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }
    /// The earliest armed deadline.
    pub(super) fn next_timeout(&self) -> Option<LocalNs> {
        self.data.iter().flatten().min().copied()
    }
    /// The timers whose deadlines have passed at `now`, in [`Timer`] order.
    #[cfg(test)]
    pub(super) fn expired(&self, now: LocalNs) -> impl Iterator<Item = Timer> + '_ {
        Timer::ALL
            .into_iter()
            .filter(move |&t| self.is_expired(t, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_stop_next_and_expired() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::SyncTx, LocalNs::from_ns(30));
        t.set(Timer::AnnounceReceipt, LocalNs::from_ns(10));
        t.set(Timer::DelayReq, LocalNs::from_ns(20));
        assert_eq!(t.next_timeout(), Some(LocalNs::from_ns(10)));
        assert_eq!(t.get(Timer::DelayReq), Some(LocalNs::from_ns(20)));
        assert_eq!(
            t.expired(LocalNs::from_ns(20)).collect::<Vec<_>>(),
            [Timer::AnnounceReceipt, Timer::DelayReq]
        );
        t.stop(Timer::AnnounceReceipt);
        assert_eq!(t.next_timeout(), Some(LocalNs::from_ns(20)));
        t.set(Timer::DelayReq, LocalNs::from_ns(40)); // re-arming replaces
        assert_eq!(t.next_timeout(), Some(LocalNs::from_ns(30)));
        assert!(!t.is_expired(Timer::FaultRecovery, LocalNs::from_ns(1_000)));
        assert_eq!(t.expired(LocalNs::from_ns(29)).count(), 0);
    }
}
