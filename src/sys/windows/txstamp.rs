//! Windows transmit timestamps: the decisions, pure (no OS calls, no
//! `unsafe`), so their tests run on Linux too. The Winsock calls are in
//! `windows/ptp.rs`, which feeds their results in here.
//!
//! Paths, best first (Microsoft Learn, "Winsock timestamping"):
//! 1. **Kernel.** `SIO_TIMESTAMPING` with `TIMESTAMPING_FLAG_TX` (and
//!    `TxTimestampsBuffered`) on the event socket; each event message goes
//!    out by `WSASendMsg` with a `SOL_SOCKET`/`SO_TIMESTAMP_ID` control
//!    message holding a `UINT32` id; `SIO_GET_TX_TIMESTAMP` with that id
//!    then returns the stamp (QPC ticks for the NIC driver's software stamps)
//!    and removes it, or fails with `WSAEWOULDBLOCK` while it is not there
//!    (it never blocks). Windows build ≥ 20348 with the NIC's
//!    `*SoftwareTimestamp` setting.
//! 2. **User space.** QueryPerformanceCounter read just before the send.
//!
//! Run-time detection, as for receive stamps: the ioctl enabling TX stamps
//! failing (`WSAEOPNOTSUPP` before build 20348 and under wine) selects path
//! 2 at open; so does `SIO_GET_TX_TIMESTAMP` failing with anything but
//! `WSAEWOULDBLOCK`, or [`MISSING_LIMIT`] sends in a row whose stamp did not
//! come within [`TX_WAIT_NS`] before any stamp came. A send whose kernel
//! stamp does not come (or is implausible) gets its QPC-before-send reading.

use std::collections::VecDeque;

use crate::sys::qpc;

/// `TIMESTAMPING_FLAG_RX` (`mstcpip.h`).
pub(crate) const FLAG_RX: u32 = 1;
/// `TIMESTAMPING_FLAG_TX` (`mstcpip.h`).
pub(crate) const FLAG_TX: u32 = 2;
/// `WSAEWOULDBLOCK`: `SIO_GET_TX_TIMESTAMP`'s "not there yet".
pub(crate) const WSAEWOULDBLOCK: i32 = 10035;
/// `WSAEOPNOTSUPP`: `SIO_TIMESTAMPING` before build 20348 and under wine.
pub(crate) const WSAEOPNOTSUPP: i32 = 10045;

/// Sends in a row without a kernel TX stamp, before any came, after which
/// the user-space path is chosen for good.
pub(crate) const MISSING_LIMIT: u32 = 8;
/// How long a kernel TX stamp is polled for before the send falls back to
/// its QPC-before-send reading (well inside the PTP engine's 100 ms).
pub(crate) const TX_WAIT_NS: i64 = 20_000_000;
/// Sends awaiting a stamp, at most (older ones are dropped: the engine
/// times them out).
const MAX_PENDING: usize = 16;
/// Ids given up on, still polled so that a late stamp leaves the kernel's
/// per-socket buffer (a full buffer discards new stamps).
const MAX_STALE: usize = 16;
/// `TxTimestampsBuffered` asked for: the pending and the stale ids fit.
pub(crate) const TX_BUFFERED: u16 = (MAX_PENDING + MAX_STALE) as u16;

/// The status text of the kernel TX path.
pub(crate) const KERNEL_TEXT: &str = "SIO_GET_TX_TIMESTAMP (kernel QPC)";
/// The status text of the user-space TX path.
pub(crate) const USER_TEXT: &str = "QPC before send (user space)";

/// Which transmit timestamps event messages get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxPath {
    /// `WSASendMsg` with `SO_TIMESTAMP_ID`, polled by `SIO_GET_TX_TIMESTAMP`.
    Kernel,
    /// QPC just before the send; the text says why.
    User(&'static str),
}

impl TxPath {
    /// (path, note) for the status: the note says why not the kernel's.
    pub(crate) fn describe(self, kernel_note: &'static str) -> (&'static str, &'static str) {
        match self {
            TxPath::Kernel => (KERNEL_TEXT, kernel_note),
            TxPath::User(why) => (USER_TEXT, why),
        }
    }
}

/// Why `SIO_TIMESTAMPING` failed with Winsock error `code`.
pub(crate) fn refused(code: i32) -> &'static str {
    if code == WSAEOPNOTSUPP {
        "SIO_TIMESTAMPING unsupported (WSAEOPNOTSUPP: build < 20348 or wine)"
    } else {
        "SIO_TIMESTAMPING refused"
    }
}

/// The receive and transmit paths chosen at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Configured {
    /// `Ok` when receive stamps are on, else why not.
    pub rx: Result<(), &'static str>,
    /// The transmit path.
    pub tx: TxPath,
}

/// Enables the stamps with `ioctl(flags)` (`SIO_TIMESTAMPING` on the event
/// socket with `TIMESTAMPING_CONFIG { flags, TX_BUFFERED }`, returning the
/// Winsock error): RX and TX together; if that is refused, RX alone (TX
/// then takes the user-space path).
pub(crate) fn configure(mut ioctl: impl FnMut(u32) -> Result<(), i32>) -> Configured {
    match ioctl(FLAG_RX | FLAG_TX) {
        Ok(()) => Configured {
            rx: Ok(()),
            tx: TxPath::Kernel,
        },
        Err(both) => match ioctl(FLAG_RX) {
            Ok(()) => Configured {
                rx: Ok(()),
                tx: TxPath::User(if both == WSAEOPNOTSUPP {
                    "TIMESTAMPING_FLAG_TX unsupported (WSAEOPNOTSUPP)"
                } else {
                    "TIMESTAMPING_FLAG_TX refused"
                }),
            },
            Err(rx) => Configured {
                rx: Err(refused(rx)),
                tx: TxPath::User(refused(rx)),
            },
        },
    }
}

/// What one `SIO_GET_TX_TIMESTAMP` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// The stamp (QPC ticks), now removed from the kernel's buffer.
    Stamp(u64),
    /// `WSAEWOULDBLOCK`: not there (yet).
    NotYet,
    /// Another Winsock error.
    Failed(i32),
}

impl Poll {
    /// What `SIO_GET_TX_TIMESTAMP` failing with Winsock error `code` means.
    pub(crate) fn from_error(code: i32) -> Poll {
        if code == WSAEWOULDBLOCK {
            Poll::NotYet
        } else {
            Poll::Failed(code)
        }
    }
}

/// One event message's transmit timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxStamp {
    /// The id `sent` was given.
    pub id: u32,
    /// The stamp, ns on the local clock (QPC).
    pub ns: i64,
    /// It is the kernel's (else QPC before the send).
    pub kernel: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u32,
    /// QPC ticks just before the send.
    before: i64,
}

/// The sends awaiting their transmit timestamp, and the path.
#[derive(Debug)]
pub(crate) struct TxTracker {
    path: TxPath,
    freq: i64,
    pending: VecDeque<Pending>,
    stale: VecDeque<u32>,
    stamps_seen: u64,
    missing_in_row: u32,
    fallbacks: u64,
}

impl TxTracker {
    /// A tracker on `path`, QPC at `freq` Hz.
    pub(crate) fn new(path: TxPath, freq: i64) -> TxTracker {
        TxTracker {
            path,
            freq: freq.max(1),
            pending: VecDeque::with_capacity(MAX_PENDING),
            stale: VecDeque::with_capacity(MAX_STALE),
            stamps_seen: 0,
            missing_in_row: 0,
            fallbacks: 0,
        }
    }

    /// The path in use.
    pub(crate) fn path(&self) -> TxPath {
        self.path
    }

    /// Kernel stamps received so far.
    #[cfg(test)]
    pub(crate) fn kernel_stamps(&self) -> u64 {
        self.stamps_seen
    }

    /// Sends that got the QPC-before-send reading on the kernel path.
    #[cfg(test)]
    pub(crate) fn fallbacks(&self) -> u64 {
        self.fallbacks
    }

    /// Sends on the kernel path await their stamp (the caller should come
    /// back soon: nothing signals a stamp's arrival).
    pub(crate) fn awaiting_kernel(&self) -> bool {
        self.path == TxPath::Kernel && !self.pending.is_empty()
    }

    /// Selects the user-space path for good (`why` is the note), e.g. when
    /// `WSASendMsg` with `SO_TIMESTAMP_ID` fails; sends still pending get
    /// their QPC-before-send readings.
    pub(crate) fn give_up(&mut self, why: &'static str) {
        self.path = TxPath::User(why);
    }

    /// Records a send with id `id`, QPC `before` ticks read just before it.
    pub(crate) fn sent(&mut self, id: u32, before: i64) {
        if self.pending.len() >= MAX_PENDING
            && let Some(p) = self.pending.pop_front()
        {
            self.forget(p.id);
        }
        self.pending.push_back(Pending { id, before });
    }

    fn forget(&mut self, id: u32) {
        if self.path == TxPath::Kernel {
            if self.stale.len() >= MAX_STALE {
                self.stale.pop_front();
            }
            self.stale.push_back(id);
        }
    }

    fn to_ns(&self, ticks: i64) -> i64 {
        qpc::ticks_to_ns(ticks, self.freq)
    }

    fn fall_back(&mut self, i: usize) -> TxStamp {
        let p = self.pending.remove(i).expect("index in range");
        TxStamp {
            id: p.id,
            ns: self.to_ns(p.before),
            kernel: false,
        }
    }

    /// The next transmit timestamp that is ready at QPC `now` ticks, polling
    /// the kernel with `poll(id)` (`SIO_GET_TX_TIMESTAMP`) on the kernel
    /// path; `None` while none is.
    ///
    /// A kernel stamp counts when it is at or after the QPC read before the
    /// send and less than 1 s after it; otherwise, or when none came within
    /// [`TX_WAIT_NS`], the send gets its QPC-before-send reading.
    pub(crate) fn next(&mut self, now: i64, mut poll: impl FnMut(u32) -> Poll) -> Option<TxStamp> {
        if self.path != TxPath::Kernel {
            self.stale.clear();
            return (!self.pending.is_empty()).then(|| self.fall_back(0));
        }
        // Late stamps of sends given up on: out of the kernel's buffer.
        self.stale.retain(|&id| poll(id) == Poll::NotYet);
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            match poll(p.id) {
                Poll::Stamp(k) => {
                    let k = i64::try_from(k).unwrap_or(i64::MIN);
                    if k >= p.before && k - p.before < self.freq {
                        self.pending.remove(i);
                        self.stamps_seen += 1;
                        self.missing_in_row = 0;
                        return Some(TxStamp {
                            id: p.id,
                            ns: self.to_ns(k),
                            kernel: true,
                        });
                    }
                    self.fallbacks += 1;
                    return Some(self.fall_back(i));
                }
                Poll::NotYet if self.to_ns(now) - self.to_ns(p.before) >= TX_WAIT_NS => {
                    self.missing_in_row += 1;
                    if self.stamps_seen == 0 && self.missing_in_row >= MISSING_LIMIT {
                        self.path = TxPath::User(
                            "SIO_GET_TX_TIMESTAMP gave no stamps (NIC *SoftwareTimestamp off?)",
                        );
                    }
                    self.fallbacks += 1;
                    self.forget(p.id);
                    return Some(self.fall_back(i));
                }
                Poll::NotYet => i += 1,
                Poll::Failed(_) => {
                    self.path = TxPath::User("SIO_GET_TX_TIMESTAMP failed");
                    self.fallbacks += 1;
                    return Some(self.fall_back(i));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: i64 = 10_000_000; // 10 MHz: 1 tick = 100 ns
    const MS: i64 = F / 1000; // ticks per ms

    #[test]
    fn configure_prefers_rx_and_tx_then_rx_alone() {
        let mut calls = Vec::new();
        let c = configure(|f| {
            calls.push(f);
            Ok(())
        });
        assert_eq!(calls, [FLAG_RX | FLAG_TX]);
        assert_eq!((c.rx, c.tx), (Ok(()), TxPath::Kernel));

        // TX refused, RX accepted: user-space TX, kernel RX.
        let mut calls = Vec::new();
        let c = configure(|f| {
            calls.push(f);
            if f & FLAG_TX != 0 { Err(10022) } else { Ok(()) }
        });
        assert_eq!(calls, [FLAG_RX | FLAG_TX, FLAG_RX]);
        assert_eq!(c.rx, Ok(()));
        assert_eq!(c.tx, TxPath::User("TIMESTAMPING_FLAG_TX refused"));

        // Wine and builds < 20348: WSAEOPNOTSUPP for both, both user space.
        let c = configure(|_| Err(WSAEOPNOTSUPP));
        let why = "SIO_TIMESTAMPING unsupported (WSAEOPNOTSUPP: build < 20348 or wine)";
        assert_eq!(c.rx, Err(why));
        assert_eq!(c.tx, TxPath::User(why));
        assert_eq!(c.tx.describe("n/a"), (USER_TEXT, why));
        assert_eq!(TxPath::Kernel.describe("note"), (KERNEL_TEXT, "note"));
        assert_eq!(refused(10022), "SIO_TIMESTAMPING refused");
    }

    #[test]
    fn user_path_hands_back_qpc_before_send_at_once() {
        let mut t = TxTracker::new(TxPath::User("wine"), F);
        t.sent(7, 1_000 * MS + 3);
        t.sent(8, 1_001 * MS);
        assert!(!t.awaiting_kernel());
        let never = |_: u32| -> Poll { panic!("no ioctl on the user path") };
        assert_eq!(
            t.next(0, never),
            Some(TxStamp {
                id: 7,
                ns: 1_000_000_300,
                kernel: false
            })
        );
        assert_eq!(
            t.next(0, never).map(|s| (s.id, s.ns)),
            Some((8, 1_001_000_000))
        );
        assert_eq!(t.next(0, never), None);
    }

    #[test]
    fn kernel_stamp_is_converted_from_qpc_ticks() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        let before = 123_456_789; // ticks
        t.sent(1, before);
        assert!(t.awaiting_kernel());
        // 35 µs in the stack: 350 ticks after the user-space read.
        let s = t.next(before + MS, |id| {
            assert_eq!(id, 1);
            Poll::Stamp((before + 350) as u64)
        });
        assert_eq!(
            s,
            Some(TxStamp {
                id: 1,
                ns: (before + 350) * 100,
                kernel: true
            })
        );
        assert!(!t.awaiting_kernel());
        assert_eq!(t.kernel_stamps(), 1);
        // An odd frequency (ACPI PM timer): floor of ticks × 1e9 / f.
        let mut t = TxTracker::new(TxPath::Kernel, 3_579_545);
        t.sent(2, 3_579_545);
        let s = t.next(3_579_545, |_| Poll::Stamp(3_579_546)).unwrap();
        assert_eq!((s.ns, s.kernel), (1_000_000_279, true));
    }

    #[test]
    fn stamps_out_of_order_and_not_yet() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        t.sent(10, 100 * MS);
        t.sent(11, 101 * MS);
        // 10 not there yet, 11 is: 11 first, 10 stays pending.
        let s = t.next(102 * MS, |id| {
            if id == 11 {
                Poll::Stamp((101 * MS + 5) as u64)
            } else {
                Poll::NotYet
            }
        });
        assert_eq!(s.map(|s| (s.id, s.kernel)), Some((11, true)));
        assert_eq!(t.next(102 * MS, |_| Poll::NotYet), None);
        assert!(t.awaiting_kernel());
        assert_eq!(
            t.next(103 * MS, |_| Poll::Stamp((100 * MS + 9) as u64))
                .map(|s| (s.id, s.ns, s.kernel)),
            Some((10, (100 * MS + 9) * 100, true))
        );
        assert_eq!(t.fallbacks(), 0);
    }

    #[test]
    fn implausible_stamps_fall_back_to_qpc_before_send() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        for (id, k) in [
            (1u32, 50 * MS - 1),  // before the send
            (2, 50 * MS + F),     // a second or more after it
            (3, u64::MAX as i64), // not a QPC reading at all
        ] {
            t.sent(id, 50 * MS);
            let s = t.next(51 * MS, |_| Poll::Stamp(k as u64)).unwrap();
            assert_eq!((s.id, s.ns, s.kernel), (id, 50 * MS * 100, false));
        }
        assert_eq!(t.fallbacks(), 3);
        assert_eq!(t.path(), TxPath::Kernel, "implausible is not absent");
    }

    #[test]
    fn missing_stamps_time_out_then_select_user_space_for_good() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        let mut now = 0;
        for i in 0..MISSING_LIMIT {
            now += 100 * MS;
            t.sent(i, now);
            // Within TX_WAIT_NS: keep waiting.
            assert_eq!(t.next(now + 19 * MS, |_| Poll::NotYet), None);
            assert!(t.awaiting_kernel());
            let s = t.next(now + 20 * MS, |_| Poll::NotYet).unwrap();
            assert_eq!((s.id, s.ns, s.kernel), (i, now * 100, false));
        }
        assert_eq!(
            t.path(),
            TxPath::User("SIO_GET_TX_TIMESTAMP gave no stamps (NIC *SoftwareTimestamp off?)")
        );
        // From now on no ioctl: QPC before the send at once.
        t.sent(99, now + 1);
        let s = t
            .next(now + 1, |_| panic!("no ioctl after the fallback"))
            .unwrap();
        assert_eq!((s.id, s.kernel), (99, false));
    }

    #[test]
    fn a_stamp_seen_keeps_the_kernel_path_through_misses() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        t.sent(0, 0);
        assert!(t.next(1, |_| Poll::Stamp(1)).unwrap().kernel);
        for i in 1..=2 * MISSING_LIMIT {
            let at = i as i64 * 100 * MS;
            t.sent(i, at);
            assert!(!t.next(at + 30 * MS, |_| Poll::NotYet).unwrap().kernel);
        }
        assert_eq!(t.path(), TxPath::Kernel);
    }

    #[test]
    fn ioctl_errors_map_to_not_yet_or_failed() {
        assert_eq!(Poll::from_error(10035), Poll::NotYet);
        assert_eq!(Poll::from_error(10045), Poll::Failed(10045));
        assert_eq!(Poll::from_error(10022), Poll::Failed(10022));
    }

    #[test]
    fn ioctl_failure_selects_user_space_for_good() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        t.sent(1, 10);
        t.sent(2, 20);
        let s = t.next(30, |_| Poll::Failed(10022)).unwrap();
        assert_eq!((s.id, s.ns, s.kernel), (1, 1_000, false));
        assert_eq!(t.path(), TxPath::User("SIO_GET_TX_TIMESTAMP failed"));
        let s = t
            .next(30, |_| panic!("no ioctl after the failure"))
            .unwrap();
        assert_eq!((s.id, s.ns), (2, 2_000));
    }

    #[test]
    fn give_up_hands_back_pending_sends_from_user_space() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        t.sent(3, 40);
        t.give_up("WSASendMsg failed");
        assert_eq!(t.path(), TxPath::User("WSASendMsg failed"));
        assert!(!t.awaiting_kernel());
        let s = t.next(50, |_| panic!("no ioctl after giving up")).unwrap();
        assert_eq!((s.id, s.ns, s.kernel), (3, 4_000, false));
    }

    #[test]
    fn given_up_ids_are_drained_from_the_kernel_buffer() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        t.sent(5, 0);
        assert!(t.next(0, |_| Poll::Stamp(1)).unwrap().kernel);
        t.sent(6, 0);
        assert!(!t.next(25 * MS, |_| Poll::NotYet).unwrap().kernel);
        // 6's stamp comes late: the next call polls it once, taking it out.
        let mut polled = Vec::new();
        assert_eq!(
            t.next(26 * MS, |id| {
                polled.push(id);
                Poll::Stamp(3)
            }),
            None
        );
        assert_eq!(polled, [6]);
        let mut polled = Vec::new();
        t.next(27 * MS, |id| {
            polled.push(id);
            Poll::NotYet
        });
        assert!(polled.is_empty(), "drained ids are not polled again");
    }

    #[test]
    fn pending_is_bounded() {
        let mut t = TxTracker::new(TxPath::Kernel, F);
        for id in 0..40 {
            t.sent(id, 0);
        }
        let mut polled = Vec::new();
        assert_eq!(
            t.next(MS, |id| {
                polled.push(id);
                Poll::NotYet
            }),
            None
        );
        // 16 stale (the oldest dropped, 8..24) then the 16 newest pending.
        let want: Vec<u32> = (8..24).chain(24..40).collect();
        assert_eq!(polled, want);
        assert!(usize::from(TX_BUFFERED) >= MAX_PENDING + MAX_STALE);
    }
}
