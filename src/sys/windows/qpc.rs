//! Windows clock arithmetic, pure (no OS calls), so its tests run on Linux
//! too: QueryPerformanceCounter ticks ↔ ns, and FILETIME (100 ns units since
//! 1601-01-01 UTC, `GetSystemTimePreciseAsFileTime`) → ns since the Unix
//! epoch.

/// FILETIME of the Unix epoch (1970-01-01T00:00:00Z), 100 ns units since
/// 1601-01-01.
pub(crate) const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// QPC `ticks` at `freq` Hz (`QueryPerformanceFrequency`, > 0) → ns, floor,
/// exact for any tick count (no overflow: the seconds and the remainder are
/// scaled apart, the remainder in i128).
pub(crate) fn ticks_to_ns(ticks: i64, freq: i64) -> i64 {
    debug_assert!(freq > 0, "QueryPerformanceFrequency is never 0 on XP+");
    let freq = freq.max(1);
    let (s, r) = (ticks.div_euclid(freq), ticks.rem_euclid(freq));
    s.saturating_mul(1_000_000_000)
        .saturating_add((r as i128 * 1_000_000_000 / freq as i128) as i64)
}

/// ns → QPC ticks at `freq` Hz, floor (the inverse of [`ticks_to_ns`] up
/// to one tick, or to 1 ns's worth of ticks above 1 GHz).
#[cfg(test)]
pub(crate) fn ns_to_ticks(ns: i64, freq: i64) -> i64 {
    let freq = freq.max(1);
    let (s, r) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    s.saturating_mul(freq)
        .saturating_add((r as i128 * freq as i128 / 1_000_000_000) as i64)
}

/// FILETIME (100 ns units since 1601, UTC) → ns since the Unix epoch.
pub(crate) fn filetime_to_unix_ns(ft: u64) -> i64 {
    (ft as i64 - FILETIME_UNIX_EPOCH as i64).saturating_mul(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frequencies seen in the field: 10 MHz (Windows 10+ and wine),
    /// the ACPI PM timer (3.579545 MHz), TSC-derived (2.4 GHz), and a 1 Hz
    /// worst case.
    const FREQS: [i64; 4] = [10_000_000, 3_579_545, 2_400_000_000, 1];

    #[test]
    fn ticks_to_ns_is_exact_at_10_mhz() {
        assert_eq!(ticks_to_ns(0, 10_000_000), 0);
        assert_eq!(ticks_to_ns(1, 10_000_000), 100);
        assert_eq!(ticks_to_ns(10_000_000, 10_000_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(-1, 10_000_000), -100);
        // One year of uptime at 10 MHz: no overflow, exact.
        let year = 365 * 86_400 * 10_000_000i64 + 7;
        assert_eq!(ticks_to_ns(year, 10_000_000), year * 100);
    }

    #[test]
    fn ticks_to_ns_floors_odd_frequencies() {
        // 3 579 545 ticks = 1 s; 1 tick = 279.365… ns.
        assert_eq!(ticks_to_ns(1, 3_579_545), 279);
        assert_eq!(ticks_to_ns(3_579_545, 3_579_545), 1_000_000_000);
        assert_eq!(ticks_to_ns(3_579_546, 3_579_545), 1_000_000_279);
        // 2.4 GHz: 12 ticks = 5 ns; a day of ticks is exact.
        assert_eq!(ticks_to_ns(12, 2_400_000_000), 5);
        let day = 86_400 * 2_400_000_000i64;
        assert_eq!(ticks_to_ns(day, 2_400_000_000), 86_400 * 1_000_000_000);
    }

    #[test]
    fn round_trip_within_one_tick_and_monotonic() {
        for f in FREQS {
            let tick_ns = 1_000_000_000 / f + 1;
            let mut last = i64::MIN;
            let mut ticks = [
                0i64,
                1,
                2,
                999,
                1_000_003,
                86_400 * f + 12_345,
                i64::MAX / 1_000_000_000,
            ];
            ticks.sort_unstable();
            for t in ticks {
                let ns = ticks_to_ns(t, f);
                assert!(ns >= last, "monotonic at {t} ticks, {f} Hz");
                last = ns;
                let back = ns_to_ticks(ns, f);
                // One tick, or one ns's worth of ticks where a tick is < 1 ns.
                let tol = f / 1_000_000_000 + 1;
                assert!((back - t).abs() <= tol, "{t} → {ns} ns → {back} at {f} Hz");
                assert!((ticks_to_ns(back, f) - ns).abs() <= tick_ns);
            }
        }
    }

    #[test]
    fn filetime_epochs() {
        assert_eq!(filetime_to_unix_ns(FILETIME_UNIX_EPOCH), 0);
        assert_eq!(filetime_to_unix_ns(FILETIME_UNIX_EPOCH + 1), 100);
        // 2026-01-01T00:00:00Z = 1 767 225 600 s since 1970.
        let ft = FILETIME_UNIX_EPOCH + 1_767_225_600 * 10_000_000;
        assert_eq!(filetime_to_unix_ns(ft), 1_767_225_600 * 1_000_000_000);
        assert!(filetime_to_unix_ns(0) < 0, "before 1970 is negative");
    }
}
