//! Prometheus metrics of a [`ServiceStatus`], in the OpenMetrics text format
//! (prometheus-client), served over HTTP by a small control-plane server
//! (tiny_http) on its own thread.
//!
//! Names follow the Prometheus conventions: prefix `aes67_`, base units in
//! the name (`_seconds`, `_ratio`), counters end in `_total`. Streams are
//! labelled `name`, PTP ports `interface`. The full list: `docs/config.md`
//! ("Metrics").

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::model::{RunState, ServiceStatus};

type Labels = Vec<(String, String)>;
type CounterF = Family<Labels, Counter>;
type GaugeF = Family<Labels, Gauge<f64, AtomicU64>>;

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// Registers and returns a counter family.
fn counter(r: &mut Registry, name: &str, help: &str) -> CounterF {
    let f = CounterF::default();
    r.register(name, help, f.clone());
    f
}

/// Registers and returns a gauge family.
fn gauge(r: &mut Registry, name: &str, help: &str) -> GaugeF {
    let f = GaugeF::default();
    r.register(name, help, f.clone());
    f
}

/// The port state's number in `aes67_ptp_port_state` (IEEE 1588-2019
/// Table 20 order): 1 INITIALIZING, 2 FAULTY, 3 DISABLED, 4 LISTENING,
/// 5 PRE_MASTER, 6 MASTER, 7 PASSIVE, 8 UNCALIBRATED, 9 SLAVE; 0 unknown.
fn port_state_number(s: &str) -> f64 {
    match s {
        "INITIALIZING" => 1.0,
        "FAULTY" => 2.0,
        "DISABLED" => 3.0,
        "LISTENING" => 4.0,
        "PRE_MASTER" => 5.0,
        "MASTER" => 6.0,
        "PASSIVE" => 7.0,
        "UNCALIBRATED" => 8.0,
        "SLAVE" => 9.0,
        _ => 0.0,
    }
}

/// Renders `st` as OpenMetrics text (ends with `# EOF`).
pub fn render(st: &ServiceStatus) -> String {
    let mut r = Registry::with_prefix("aes67");
    let up = gauge(
        &mut r,
        "healthy",
        "1 when the engine health check passes (what drives the systemd watchdog)",
    );
    up.get_or_create(&vec![])
        .set(if st.healthy { 1.0 } else { 0.0 });
    let uptime = gauge(
        &mut r,
        "uptime_seconds",
        "Seconds since the service started",
    );
    uptime.get_or_create(&vec![]).set(st.uptime_s);
    let reloads = counter(&mut r, "reloads", "Reloads applied (SIGHUP)");
    reloads.get_or_create(&vec![]).inc_by(st.reloads);
    let rerr = counter(
        &mut r,
        "reload_errors",
        "Reloads rejected (invalid config; the running set stayed)",
    );
    rerr.get_or_create(&vec![]).inc_by(st.reload_errors);

    // PTP.
    let p_up = gauge(
        &mut r,
        "ptp_port_up",
        "1 while the PTP port thread runs, 0 in error (retried)",
    );
    let p_state = gauge(
        &mut r,
        "ptp_port_state",
        "IEEE 1588 port state: 4 LISTENING, 6 MASTER, 8 UNCALIBRATED, 9 SLAVE (Table 20 order; 0 unknown)",
    );
    let p_locked = gauge(&mut r, "ptp_locked", "1 while the servo is locked");
    let p_off = gauge(
        &mut r,
        "ptp_offset_from_master_seconds",
        "Last offsetFromMaster",
    );
    let p_mpd = gauge(&mut r, "ptp_mean_path_delay_seconds", "meanPathDelay");
    let p_freq = gauge(
        &mut r,
        "ptp_frequency_offset_ratio",
        "Frequency of the virtual PTP clock vs the local reference (ppb x 1e-9)",
    );
    let p_steps = counter(&mut r, "ptp_steps", "Clock steps (re-anchors)");
    let p_out = counter(
        &mut r,
        "ptp_outliers",
        "Sync samples rejected by the servo as outliers",
    );
    let p_hold = gauge(
        &mut r,
        "ptp_holdover_age_seconds",
        "Time since the last Sync sample while in holdover (0 when not in holdover)",
    );
    let p_restarts = counter(
        &mut r,
        "ptp_port_restarts",
        "Restarts of the PTP port after a failure",
    );
    let p_gm = gauge(
        &mut r,
        "ptp_grandmaster_info",
        "The grandmaster of the port: identity and domain (value 1)",
    );
    for p in &st.ptp {
        let l = label("interface", &p.interface);
        p_up.get_or_create(&l)
            .set(f64::from(u8::from(p.run == RunState::Running)));
        p_state.get_or_create(&l).set(port_state_number(&p.state));
        p_locked
            .get_or_create(&l)
            .set(f64::from(u8::from(p.locked)));
        if let Some(o) = p.offset_from_master_s {
            p_off.get_or_create(&l).set(o);
        }
        if let Some(d) = p.mean_path_delay_s {
            p_mpd.get_or_create(&l).set(d);
        }
        p_freq.get_or_create(&l).set(p.freq_ppb * 1e-9);
        p_steps.get_or_create(&l).inc_by(p.steps);
        p_out.get_or_create(&l).inc_by(p.outliers);
        p_hold
            .get_or_create(&l)
            .set(p.holdover_age_s.unwrap_or(0.0));
        p_restarts.get_or_create(&l).inc_by(p.restarts);
        if !p.gm_identity.is_empty() {
            p_gm.get_or_create(&vec![
                ("interface".to_string(), p.interface.clone()),
                ("gm_identity".to_string(), p.gm_identity.clone()),
                ("domain".to_string(), p.domain.to_string()),
            ])
            .set(1.0);
        }
    }

    // Receivers.
    let s_up = gauge(
        &mut r,
        "stream_up",
        "1 while the receiver runs, 0 in error (retried with back-off)",
    );
    let s_restarts = counter(
        &mut r,
        "stream_restarts",
        "Restarts of the receiver after a failure",
    );
    let s_pk = counter(&mut r, "stream_packets", "RTP packets accepted");
    let s_lost = counter(
        &mut r,
        "stream_lost_packets",
        "RTP packets lost (sequence gaps)",
    );
    let s_late = counter(
        &mut r,
        "stream_late_packets",
        "RTP packets too late for their play time",
    );
    let s_reord = counter(
        &mut r,
        "stream_reordered_packets",
        "RTP packets out of order",
    );
    let s_dup = counter(&mut r, "stream_duplicate_packets", "Duplicate RTP packets");
    let s_bad = counter(
        &mut r,
        "stream_malformed_packets",
        "Malformed packets or a wrong payload type",
    );
    let s_foreign = counter(
        &mut r,
        "stream_foreign_packets",
        "Packets from a source other than the pinned one",
    );
    let s_under = counter(&mut r, "stream_underruns", "Output underruns");
    let s_xrun = counter(&mut r, "stream_xruns", "Output device xruns");
    let s_buf = gauge(
        &mut r,
        "stream_buffer_fill_seconds",
        "Audio held in the playout buffer",
    );
    let s_lo = gauge(
        &mut r,
        "stream_link_offset_seconds",
        "Configured link offset",
    );
    let s_ratio = gauge(
        &mut r,
        "stream_steering_ratio",
        "Resampling ratio of a steered output (1 = nominal)",
    );
    for s in &st.receivers {
        let l = label("name", &s.name);
        s_up.get_or_create(&l)
            .set(f64::from(u8::from(s.run == RunState::Running)));
        s_restarts.get_or_create(&l).inc_by(s.restarts);
        s_pk.get_or_create(&l).inc_by(s.packets);
        s_lost.get_or_create(&l).inc_by(s.lost);
        s_late.get_or_create(&l).inc_by(s.late);
        s_reord.get_or_create(&l).inc_by(s.reordered);
        s_dup.get_or_create(&l).inc_by(s.duplicates);
        s_bad.get_or_create(&l).inc_by(s.malformed);
        s_foreign.get_or_create(&l).inc_by(s.foreign);
        s_under.get_or_create(&l).inc_by(s.underruns);
        s_xrun.get_or_create(&l).inc_by(s.xruns);
        s_buf.get_or_create(&l).set(s.buffer_s);
        s_lo.get_or_create(&l).set(s.link_offset_s);
        if let Some(x) = s.steering_ratio {
            s_ratio.get_or_create(&l).set(x);
        }
    }

    // Senders.
    let t_up = gauge(
        &mut r,
        "sender_up",
        "1 while the sender runs, 0 in error (retried with back-off)",
    );
    let t_pk = counter(&mut r, "sender_packets", "RTP packets sent");
    let t_under = counter(&mut r, "sender_underruns", "Source underruns");
    let t_err = counter(
        &mut r,
        "sender_send_errors",
        "Send errors that stopped the sender",
    );
    let t_late = gauge(
        &mut r,
        "sender_pacing_lateness_max_seconds",
        "Largest delay of a send behind its schedule since the sender's (re)start",
    );
    let c_over = counter(
        &mut r,
        "capture_overruns",
        "Capture device overruns of an alsa: sender source",
    );
    let c_ring = counter(
        &mut r,
        "capture_ring_overflows",
        "Captured chunks dropped because the sender's ring was full",
    );
    let c_ratio = gauge(
        &mut r,
        "capture_steering_ratio",
        "Resampling ratio of a steered capture, media per device frame (1 = nominal)",
    );
    for t in &st.senders {
        let l = label("name", &t.name);
        if let Some(c) = &t.capture {
            c_over.get_or_create(&l).inc_by(c.overruns);
            c_ring.get_or_create(&l).inc_by(c.ring_overflows);
            c_ratio.get_or_create(&l).set(1.0 + c.ratio_ppm * 1e-6);
        }
        t_late.get_or_create(&l).set(t.pacing_lateness_max_s);
        t_up.get_or_create(&l)
            .set(f64::from(u8::from(t.run == RunState::Running)));
        t_pk.get_or_create(&l).inc_by(t.packets);
        t_under.get_or_create(&l).inc_by(t.underruns);
        t_err.get_or_create(&l).inc_by(t.send_errors);
    }

    let mut out = String::new();
    if encode(&mut out, &r).is_err() {
        out = "# EOF\n".into();
    }
    out
}

/// The Prometheus text format 0.0.4 of OpenMetrics text `om` (for
/// scrapers that do not ask for OpenMetrics, and `promtool check
/// metrics`): counter families take their samples' `_total` name in
/// `# HELP`/`# TYPE`, and `# UNIT`/`# EOF` lines go.
pub fn to_prometheus_text(om: &str) -> String {
    let counters: Vec<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for l in om.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| l.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(&name) {
                    out += &format!("{p}{name}_total {tail}");
                } else {
                    out += l;
                }
            }
            None => out += l,
        }
        out.push('\n');
    }
    out
}

/// The metrics HTTP server: `GET /metrics` renders the current status.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `status` on a thread named `aes67-metrics`.
    /// Errors: the address cannot be bound (e.g. port in use), naming it.
    pub fn start(
        addr: SocketAddr,
        status: Arc<Mutex<ServiceStatus>>,
    ) -> Result<MetricsServer, String> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| format!("metrics: cannot listen on {addr}: {e}"))?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let s2 = server.clone();
        let thread = std::thread::Builder::new()
            .name("aes67-metrics".into())
            .spawn(move || {
                for req in s2.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("");
                    let resp = if path == "/metrics" {
                        let st = status.lock().map(|g| g.clone()).unwrap_or_default();
                        let om = req.headers().iter().any(|h| {
                            h.field.equiv("Accept")
                                && h.value.as_str().contains("application/openmetrics-text")
                        });
                        let (body, ct) = if om {
                            (
                                render(&st),
                                &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                            )
                        } else {
                            (
                                to_prometheus_text(&render(&st)),
                                &b"text/plain; version=0.0.4; charset=utf-8"[..],
                            )
                        };
                        let ct = tiny_http::Header::from_bytes(&b"Content-Type"[..], ct).ok();
                        let mut r = tiny_http::Response::from_string(body);
                        if let Some(h) = ct {
                            r = r.with_header(h);
                        }
                        r
                    } else {
                        tiny_http::Response::from_string("aes67: see /metrics\n")
                            .with_status_code(404)
                    };
                    let _ = req.respond(resp);
                }
            })
            .map_err(|e| format!("metrics: cannot start thread: {e}"))?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::model::{PtpPortStatus, ReceiverStatus, SenderStatus};

    #[test]
    fn names_units_and_labels_follow_prometheus_conventions() {
        let st = ServiceStatus {
            healthy: true,
            ptp: vec![PtpPortStatus {
                interface: "veth-a".into(),
                run: RunState::Running,
                state: "SLAVE".into(),
                locked: true,
                gm_identity: "001122.fffe.334455".into(),
                offset_from_master_s: Some(-2.5e-7),
                freq_ppb: 1500.0,
                steps: 1,
                ..Default::default()
            }],
            receivers: vec![ReceiverStatus {
                name: "studio-a".into(),
                run: RunState::Running,
                packets: 1234,
                lost: 2,
                buffer_s: 0.004,
                ..Default::default()
            }],
            senders: vec![
                SenderStatus {
                    name: "tone".into(),
                    packets: 99,
                    pacing_lateness_max_s: 0.00025,
                    ..Default::default()
                },
                SenderStatus {
                    name: "line-in".into(),
                    packets: 7,
                    capture: Some(crate::status::CaptureStatus {
                        overruns: 3,
                        ring_overflows: 1,
                        ratio_ppm: -1000.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let t = render(&st);
        for want in [
            "aes67_stream_packets_total{name=\"studio-a\"} 1234",
            "aes67_stream_lost_packets_total{name=\"studio-a\"} 2",
            "aes67_stream_buffer_fill_seconds{name=\"studio-a\"} 0.004",
            "aes67_ptp_offset_from_master_seconds{interface=\"veth-a\"} -2.5e-7",
            "aes67_ptp_port_state{interface=\"veth-a\"} 9",
            "aes67_ptp_steps_total{interface=\"veth-a\"} 1",
            "gm_identity=\"001122.fffe.334455\"",
            "aes67_sender_packets_total{name=\"tone\"} 99",
            "aes67_sender_up{name=\"tone\"} 0",
            "aes67_sender_pacing_lateness_max_seconds{name=\"tone\"} 0.00025",
            "aes67_capture_overruns_total{name=\"line-in\"} 3",
            "aes67_capture_ring_overflows_total{name=\"line-in\"} 1",
            "aes67_capture_steering_ratio{name=\"line-in\"} 0.999",
            "# TYPE aes67_stream_packets counter",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        assert!(t.ends_with("# EOF\n"), "{t}");
        let p = to_prometheus_text(&t);
        assert!(
            p.contains("# TYPE aes67_stream_packets_total counter\n"),
            "{p}"
        );
        assert!(
            p.contains("# HELP aes67_stream_packets_total RTP packets accepted.\n"),
            "{p}"
        );
        assert!(
            p.contains("# TYPE aes67_stream_buffer_fill_seconds gauge\n"),
            "{p}"
        );
        assert!(!p.contains("# EOF"), "{p}");
    }

    #[test]
    fn serves_both_formats_and_a_port_in_use_is_an_error_naming_it() {
        let st = Arc::new(Mutex::new(ServiceStatus {
            healthy: true,
            ..Default::default()
        }));
        let a = MetricsServer::start("127.0.0.1:0".parse().unwrap(), st.clone()).unwrap();
        let e = MetricsServer::start(a.addr, st).err().unwrap();
        assert!(e.contains(&a.addr.to_string()), "{e}");
        let get = |accept: &str| {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(a.addr).unwrap();
            write!(c, "GET /metrics HTTP/1.0\r\nAccept: {accept}\r\n\r\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let om = get("application/openmetrics-text; version=1.0.0");
        assert!(
            om.contains("application/openmetrics-text") && om.ends_with("# EOF\n"),
            "{om}"
        );
        let text = get("text/plain");
        assert!(
            text.contains("text/plain; version=0.0.4") && text.contains("aes67_healthy 1"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
}
