//! Best master clock algorithm: the dataset comparison of IEEE 1588-2019
//! §9.3.4 (Figures 34 and 35) and the ordinary-clock state decision of §9.3.3.

use std::cmp::Ordering;

use super::msg::{AnnounceBody, ClockIdentity, ClockQuality, PortIdentity};

/// The fields the comparison looks at, for a foreign master (from its
/// Announce) or for our own clock (D0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    /// grandmasterPriority1.
    pub priority1: u8,
    /// grandmasterIdentity.
    pub gm_identity: ClockIdentity,
    /// grandmasterClockQuality.
    pub quality: ClockQuality,
    /// grandmasterPriority2.
    pub priority2: u8,
    /// stepsRemoved.
    pub steps_removed: u16,
    /// sourcePortIdentity of the Announce (for D0: our port).
    pub sender: PortIdentity,
    /// The receiving port (ours).
    pub receiver: PortIdentity,
}

impl Dataset {
    /// From a received Announce.
    pub fn from_announce(
        a: &AnnounceBody,
        sender: PortIdentity,
        receiver: PortIdentity,
    ) -> Dataset {
        Dataset {
            priority1: a.gm_priority1,
            gm_identity: a.gm_identity,
            quality: a.gm_clock_quality,
            priority2: a.gm_priority2,
            steps_removed: a.steps_removed,
            sender,
            receiver,
        }
    }
}

/// §9.3.4 comparison. `Ordering::Less` means `a` is the better master.
pub fn compare(a: &Dataset, b: &Dataset) -> Ordering {
    if a.gm_identity != b.gm_identity {
        // Figure 34: different grandmasters.
        return a
            .priority1
            .cmp(&b.priority1)
            .then(a.quality.clock_class.cmp(&b.quality.clock_class))
            .then(a.quality.clock_accuracy.cmp(&b.quality.clock_accuracy))
            .then(
                a.quality
                    .offset_scaled_log_variance
                    .cmp(&b.quality.offset_scaled_log_variance),
            )
            .then(a.priority2.cmp(&b.priority2))
            .then(a.gm_identity.cmp(&b.gm_identity));
    }
    // Figure 35: same grandmaster, topology decides.
    a.steps_removed
        .cmp(&b.steps_removed)
        .then(a.sender.clock_identity.cmp(&b.sender.clock_identity))
        .then(a.sender.port_number.cmp(&b.sender.port_number))
        .then(a.receiver.port_number.cmp(&b.receiver.port_number))
}

/// Recommended state of an ordinary clock's single port (§9.3.3, Figure 33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// M1/M2: our clock is the best; be master.
    Master,
    /// P1: a better master exists but our clockClass is 1..127; stay passive.
    Passive,
    /// S1: slave to this foreign master.
    Slave(PortIdentity),
    /// No qualified foreign master and we may not be master.
    Listening,
}

/// §9.3.3 for one port. `best` is Erbest (the best qualified foreign
/// master), `own` is D0.
pub fn decide(
    own: &Dataset,
    best: Option<&Dataset>,
    slave_only: bool,
    master_only: bool,
) -> Decision {
    if master_only {
        return Decision::Master;
    }
    let Some(best) = best else {
        return if slave_only {
            Decision::Listening
        } else {
            Decision::Master
        };
    };
    if slave_only {
        return Decision::Slave(best.sender);
    }
    if compare(own, best) == Ordering::Less {
        Decision::Master
    } else if own.quality.clock_class <= 127 {
        Decision::Passive
    } else {
        Decision::Slave(best.sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn ds(p1: u8, class: u8, id: u8) -> Dataset {
        let pid = PortIdentity {
            clock_identity: ClockIdentity([id; 8]),
            port_number: 1,
        };
        Dataset {
            priority1: p1,
            gm_identity: ClockIdentity([id; 8]),
            quality: ClockQuality {
                clock_class: class,
                clock_accuracy: 0xFE,
                offset_scaled_log_variance: 0xFFFF,
            },
            priority2: 128,
            steps_removed: 0,
            sender: pid,
            receiver: pid,
        }
    }
    #[test]
    fn comparison_order() {
        assert_eq!(
            compare(&ds(1, 248, 9), &ds(128, 6, 1)),
            Ordering::Less,
            "priority1 first"
        );
        assert_eq!(
            compare(&ds(128, 6, 9), &ds(128, 248, 1)),
            Ordering::Less,
            "then clockClass"
        );
        assert_eq!(
            compare(&ds(128, 248, 1), &ds(128, 248, 2)),
            Ordering::Less,
            "identity tie-break"
        );
        let mut a = ds(128, 248, 3);
        let mut b = a;
        a.steps_removed = 1;
        b.steps_removed = 2;
        assert_eq!(compare(&a, &b), Ordering::Less, "fewer steps");
    }
    #[test]
    fn decisions() {
        let own = ds(128, 248, 5);
        let better = ds(1, 6, 9);
        let worse = ds(200, 248, 1);
        assert_eq!(decide(&own, None, false, false), Decision::Master);
        assert_eq!(decide(&own, None, true, false), Decision::Listening);
        assert_eq!(
            decide(&own, Some(&better), false, false),
            Decision::Slave(better.sender)
        );
        assert_eq!(decide(&own, Some(&worse), false, false), Decision::Master);
        assert_eq!(
            decide(&own, Some(&worse), true, false),
            Decision::Slave(worse.sender)
        );
        assert_eq!(decide(&own, Some(&better), false, true), Decision::Master);
        let gm_class = ds(128, 6, 5);
        assert_eq!(
            decide(&gm_class, Some(&better), false, false),
            Decision::Passive
        );
    }
}
