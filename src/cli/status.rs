//! The one receiver status formatter: the text line (stderr) and the JSON
//! object (stdout, `--json`) of `aes67 play`, `aes67 demo` and
//! `aes67 monitor`. Keys and fields: `docs/cli.md`.

use aes67::engine::playout::StatsSnapshot;
use aes67::engine::receiver::ReceiverStats;
use serde_json::{Map, Value, json};

/// One stream's figures at one instant, as printed.
pub(crate) struct ReceiverStatus<'a> {
    /// The receiver's counters.
    pub(crate) stats: &'a ReceiverStats,
    /// Sample rate, Hz (frames → ms).
    pub(crate) rate: u32,
    /// The link offset asked for, ms.
    pub(crate) link_offset_ms: f64,
    /// The part of it held in the playout buffer, ms (the link offset, or
    /// with a real-time output the link offset minus the playout target).
    pub(crate) buffer_target_ms: f64,
    /// Output underruns and xruns (`None`: no output, `monitor`).
    pub(crate) output: Option<(u64, u64)>,
    /// Frames written by a plain output (WAV, null).
    pub(crate) output_frames: Option<u64>,
    /// The real-time playout thread's figures (ALSA and sim outputs).
    pub(crate) playout: Option<StatsSnapshot>,
    /// Seconds since start (`None`: the final report).
    pub(crate) t_s: Option<f64>,
}

/// The receive counters: `pkts … lost … late … reord … dup … bad … | SSRC …`.
fn counters(s: &ReceiverStats) -> String {
    let p = &s.playout;
    format!(
        "pkts {} lost {} late {} reord {} dup {} bad {} | SSRC {:08x}",
        p.packets,
        p.lost,
        p.late,
        p.reordered,
        p.duplicates,
        p.malformed + p.wrong_pt,
        s.ssrc
    )
}

/// The media clock state's name (`free_run`, `ptp_locked`, …).
fn clock_name(s: &ReceiverStats) -> String {
    serde_json::to_value(s.clock)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl ReceiverStatus<'_> {
    fn ms(&self, frames: u64) -> f64 {
        frames as f64 * 1000.0 / self.rate as f64
    }

    /// What the buffer fill is relative to: `link offset 5.0 ms`, or with a
    /// real-time output `target 5.0 ms of link offset 25.0 ms`.
    fn buffer_reference(&self) -> String {
        if (self.buffer_target_ms - self.link_offset_ms).abs() < 1e-9 {
            format!("link offset {:.1} ms", self.link_offset_ms)
        } else {
            format!(
                "target {:.1} ms of link offset {:.1} ms",
                self.buffer_target_ms, self.link_offset_ms
            )
        }
    }

    /// The text line (without the `[   3s]` prefix):
    /// `pkts 2986 lost 0 late 0 reord 0 dup 0 bad 0 | SSRC 2ece0f7f | buf 5.9 ms
    /// (link offset 5.0 ms) ring 1.0 ms | underruns 0 xruns 0 | clock free_run`.
    pub(crate) fn line(&self) -> String {
        let s = self.stats;
        let mut l = format!(
            "{} | buf {:.1} ms ({}) ring {:.1} ms",
            counters(s),
            self.ms(s.buffer_frames),
            self.buffer_reference(),
            self.ms(s.ring_frames),
        );
        if let Some((under, xruns)) = self.output {
            l += &format!(" | underruns {under} xruns {xruns}");
        }
        l += &format!(" | clock {}", clock_name(s));
        if let Some(p) = &self.playout {
            l += &format!(
                " | ratio {:+.1} ppm delay {:.1} ms fill {:.1} ms rate resets {}",
                p.ratio_ppm, p.device_delay_ms, p.fill_ms, p.rate_resets
            );
        }
        l
    }

    /// The JSON object: every [`ReceiverStats`] field, plus `ssrc` as hex,
    /// `buffer_ms`, `link_offset_ms`, `buffer_target_ms`, `ring_ms`,
    /// `underruns`/`xruns` (with an output), `output_frames` (plain
    /// output), the playout figures (real-time
    /// output) and `t_s`, or `"final": true` for the final report.
    pub(crate) fn json(&self) -> Map<String, Value> {
        let s = self.stats;
        let mut o = match serde_json::to_value(s) {
            Ok(Value::Object(o)) => o,
            _ => Map::new(),
        };
        match self.t_s {
            Some(t) => o.insert("t_s".into(), json!((t * 10.0).round() / 10.0)),
            None => o.insert("final".into(), json!(true)),
        };
        o.insert("ssrc".into(), json!(format!("{:08x}", s.ssrc)));
        o.insert("buffer_ms".into(), json!(self.ms(s.buffer_frames)));
        o.insert("link_offset_ms".into(), json!(self.link_offset_ms));
        o.insert("buffer_target_ms".into(), json!(self.buffer_target_ms));
        o.insert("ring_ms".into(), json!(self.ms(s.ring_frames)));
        if let Some((under, xruns)) = self.output {
            o.insert("underruns".into(), json!(under));
            o.insert("xruns".into(), json!(xruns));
        }
        if let Some(f) = self.output_frames {
            o.insert("output_frames".into(), json!(f));
        }
        if let Some(p) = &self.playout {
            o.insert("ratio_ppm".into(), json!(p.ratio_ppm));
            o.insert("feed_forward_ppm".into(), json!(p.feed_forward_ppm));
            o.insert("device_delay_ms".into(), json!(p.device_delay_ms));
            o.insert("fill_ms".into(), json!(p.fill_ms));
            o.insert("latency_error_ms".into(), json!(p.filtered_error_ms));
            o.insert("resyncs".into(), json!(p.resyncs));
            o.insert("rate_resets".into(), json!(p.rate_resets));
            o.insert("playout".into(), json!(p));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> ReceiverStats {
        let mut s = ReceiverStats {
            ssrc: 0x2ece0f7f,
            buffer_frames: 283,
            ring_frames: 48,
            ..Default::default()
        };
        s.playout.packets = 2986;
        s
    }

    #[test]
    fn buffer_fill_names_what_it_is_relative_to() {
        let s = stats();
        let mut st = ReceiverStatus {
            stats: &s,
            rate: 48000,
            link_offset_ms: 5.0,
            buffer_target_ms: 5.0,
            output: Some((0, 0)),
            output_frames: None,
            playout: None,
            t_s: Some(3.0),
        };
        let l = st.line();
        assert!(
            l.starts_with("pkts 2986 lost 0 late 0 reord 0 dup 0 bad 0 | SSRC 2ece0f7f | buf 5.9 ms (link offset 5.0 ms) ring 1.0 ms | underruns 0 xruns 0 | clock "),
            "{l}"
        );
        assert!(!l.contains('%'), "{l}");
        st.link_offset_ms = 25.0;
        assert!(
            st.line()
                .contains("buf 5.9 ms (target 5.0 ms of link offset 25.0 ms)"),
            "{}",
            st.line()
        );
        st.output = None;
        assert!(!st.line().contains("underruns"));
        let j = st.json();
        assert_eq!(j["ssrc"], "2ece0f7f");
        assert_eq!(j["link_offset_ms"], 25.0);
        assert_eq!(j["buffer_target_ms"], 5.0);
        assert_eq!(j["t_s"], 3.0);
        assert!(j.get("buffer_pct").is_none() && j.get("underruns").is_none());
        st.t_s = None;
        assert_eq!(st.json()["final"], true);
    }
}
