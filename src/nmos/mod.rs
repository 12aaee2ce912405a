//! An AMWA NMOS node, sans-IO: the IS-04 v1.3 resource model (node,
//! device, sources, flows, senders, receivers, clocks, interfaces), the
//! IS-05 v1.1 staging/activation state machine, the HTTP routing of both
//! APIs ([`api`]), and the IS-04 registration client's decisions
//! ([`registration`]: registry choice by priority, heartbeats, failover).
//!
//! Nothing here does IO: requests come in as (method, path, body) with an
//! explicit `now` (TAI for versions and activations, [`MonoNs`] for
//! heartbeats), and results go out as responses and [`model::Effect`]s that
//! the service (`service::nmos`) applies to the real receivers and senders.
//! Tested in virtual time.
//!
//! Sources: AMWA IS-04 v1.3 (Node API, Registration API, behaviour), AMWA
//! IS-05 v1.1 (Connection API), BCP-002-02, BCP-004-01 (receiver caps).
//!
//! [`MonoNs`]: crate::units::MonoNs
#![forbid(unsafe_code)]

pub mod api;
pub mod model;
pub mod registration;

/// A TAI time (IS-04 versions, IS-05 activation times): seconds and
/// nanoseconds since the PTP epoch, written `"<secs>:<nanos>"` (IS-04
/// v1.3 "Resource versions", IS-05 v1.1 "Activations").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Tai(
    /// Nanoseconds since 1970-01-01T00:00:00 TAI.
    pub u128,
);

impl Tai {
    /// From seconds and nanoseconds.
    pub fn new(secs: u64, nanos: u32) -> Tai {
        Tai(u128::from(secs) * 1_000_000_000 + u128::from(nanos.min(999_999_999)))
    }
    /// Whole seconds.
    pub fn secs(self) -> u64 {
        (self.0 / 1_000_000_000) as u64
    }
    /// Nanoseconds within the second.
    pub fn nanos(self) -> u32 {
        (self.0 % 1_000_000_000) as u32
    }
    /// `self` plus `ns` nanoseconds.
    pub fn plus_ns(self, ns: u128) -> Tai {
        Tai(self.0 + ns)
    }
    /// Parses `"<secs>:<nanos>"` (nanos 0-999999999). Errors: a message
    /// naming what is wrong.
    pub fn parse(s: &str) -> Result<Tai, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not <seconds>:<nanoseconds>"))?;
        let secs: u64 = a.parse().map_err(|_| format!("{s:?}: bad seconds {a:?}"))?;
        let nanos: u32 = b
            .parse()
            .map_err(|_| format!("{s:?}: bad nanoseconds {b:?}"))?;
        if nanos > 999_999_999 {
            return Err(format!("{s:?}: nanoseconds above 999999999"));
        }
        Ok(Tai::new(secs, nanos))
    }
}

impl std::fmt::Display for Tai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.secs(), self.nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tai_round_trips_and_rejects_bad_text() {
        let t = Tai::parse("1700000000:5").unwrap();
        assert_eq!(t.to_string(), "1700000000:5");
        assert_eq!(t.plus_ns(999_999_996).to_string(), "1700000001:1");
        assert!(Tai::parse("1:1000000000").is_err());
        assert!(Tai::parse("x:1").is_err());
        assert!(Tai::parse("12").is_err());
    }
}
