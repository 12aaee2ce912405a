//! Running the engine as a service (`aes67 run --config FILE`): the TOML
//! [`config`], the [`supervisor`] that starts, restarts (with back-off) and
//! reloads streams, the one [`model`] of their status that feeds the
//! [`metrics`] (Prometheus text), the status socket ([`control`]) and
//! `aes67 status`, and the systemd notifications ([`notify`]).
//!
//! Everything here is control plane: it runs on ordinary threads and never
//! on the engine's real-time threads.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod metrics;
pub mod model;
pub mod nmos;
pub mod notify;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::{Config, ConfigErrors};
use model::ServiceStatus;
use supervisor::Supervisor;

/// How often the service loop checks its streams, signals and health.
const TICK: Duration = Duration::from_millis(100);

/// Environment variable enabling the test hooks (`1`): SIGUSR1 stops every
/// PTP thread for good, so the health check (and the watchdog) fails.
pub const TEST_HOOKS_ENV: &str = "AES67_TEST_HOOKS";

/// The one STATUS= line: `2/2 receivers, 1/1 senders, PTP eth0 SLAVE locked`.
fn status_line(st: &ServiceStatus) -> String {
    let rx = st
        .receivers
        .iter()
        .filter(|r| r.run == model::RunState::Running)
        .count();
    let tx = st
        .senders
        .iter()
        .filter(|r| r.run == model::RunState::Running)
        .count();
    let mut s = format!(
        "{rx}/{} receivers, {tx}/{} senders",
        st.receivers.len(),
        st.senders.len()
    );
    for p in &st.ptp {
        s += &format!(
            ", PTP {} {}{}",
            p.interface,
            if p.state.is_empty() {
                p.run.name()
            } else {
                &p.state
            },
            if p.locked { " locked" } else { "" }
        );
    }
    if !st.healthy {
        s += &format!(", UNHEALTHY: {}", st.health_reason.as_deref().unwrap_or(""));
    }
    s
}

/// Runs the service of the config at `path` until `stop` is set or SIGTERM
/// arrives: the supervisor, the metrics server, the status socket, SIGHUP
/// reloads and the systemd notifications.
///
/// Errors: only an invalid config at start-up ([`ConfigErrors`], every
/// problem naming its field). Everything later (a stream that cannot
/// start, a metrics port in use, an invalid config on SIGHUP) is logged,
/// shown in the status, and retried or ignored; the service keeps running.
pub fn run(path: &Path, stop: &AtomicBool) -> Result<(), ConfigErrors> {
    let cfg = Config::load(path)?;
    let path_s = path.display().to_string();
    let hup = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGHUP, &hup),
        (signal_hook::consts::SIGTERM, &term),
        (signal_hook::consts::SIGUSR1, &usr1),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            tracing::warn!("cannot handle signal {sig}: {e}");
        }
    }
    let hooks = std::env::var(TEST_HOOKS_ENV).is_ok_and(|v| v == "1");
    let mut notifier = notify::Notifier::new();
    tracing::info!(
        "aes67 {} starting: {} PTP port(s), {} receiver(s), {} sender(s) from {path_s}",
        env!("CARGO_PKG_VERSION"),
        cfg.ptp.len(),
        cfg.receivers.len(),
        cfg.senders.len()
    );
    let mut sup = Supervisor::start(cfg.clone());
    let shared = Arc::new(Mutex::new(sup.status(&path_s)));
    let start_metrics = |c: &Config| {
        c.metrics.as_ref().and_then(|m| {
            match metrics::MetricsServer::start(SocketAddr::new(m.address, m.port), shared.clone())
            {
                Ok(s) => {
                    tracing::info!("metrics on http://{}/metrics", s.addr);
                    Some(s)
                }
                Err(e) => {
                    tracing::error!("{e}");
                    None
                }
            }
        })
    };
    let start_status = |c: &Config| {
        c.status_socket.as_ref().and_then(|p| {
            match control::StatusServer::start(p, shared.clone()) {
                Ok(s) => {
                    tracing::info!("status on {}", p.display());
                    Some(s)
                }
                Err(e) => {
                    tracing::error!("{e}");
                    None
                }
            }
        })
    };
    let start_nmos = |c: &Config, sup: &Supervisor| {
        let n = c.nmos.as_ref()?;
        match nmos::NmosService::start(c, sup.ptp_handle(&n.interface)) {
            Ok(s) => {
                tracing::info!(
                    "NMOS node {} on http://{}/x-nmos/ ({})",
                    s.node_id(),
                    s.addr,
                    if n.registration {
                        "registering by DNS-SD"
                    } else {
                        "peer-to-peer"
                    }
                );
                Some(s)
            }
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    };
    let mut metrics_server = start_metrics(&cfg);
    let mut status_server = start_status(&cfg);
    let mut nmos_node = start_nmos(&cfg, &sup);
    let st = sup.status(&path_s);
    notifier.ready(&status_line(&st));
    tracing::info!("ready: {}", status_line(&st));
    let mut last_publish = Instant::now();
    while !stop.load(Ordering::SeqCst) && !term.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        if hup.swap(false, Ordering::SeqCst) {
            notifier.reloading();
            match Config::load(path) {
                Ok(new) => {
                    // The control plane: restarted only when its section changed.
                    if new.metrics != sup.config().metrics {
                        drop(metrics_server.take());
                        metrics_server = start_metrics(&new);
                    }
                    if new.status_socket != sup.config().status_socket {
                        drop(status_server.take());
                        status_server = start_status(&new);
                    }
                    // The NMOS node describes the streams: rebuilt when they
                    // or its section changed.
                    let rebuild = new.nmos != sup.config().nmos
                        || new.receivers != sup.config().receivers
                        || new.senders != sup.config().senders;
                    let new_for_nmos = rebuild.then(|| new.clone());
                    if rebuild {
                        drop(nmos_node.take());
                    }
                    let changes = sup.reload(new);
                    if let Some(c) = new_for_nmos {
                        nmos_node = start_nmos(&c, &sup);
                    }
                    tracing::info!(
                        "reload: {} change(s){}",
                        changes.len(),
                        if changes.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", changes.join("; "))
                        }
                    );
                }
                Err(e) => {
                    tracing::error!("reload rejected, the running set stays:\n{e}");
                    sup.reject_reload(e.to_string());
                }
            }
            notifier.ready(&status_line(&sup.status(&path_s)));
        }
        if hooks && usr1.swap(false, Ordering::SeqCst) {
            tracing::warn!("test hook: stopping the PTP threads");
            sup.hold_ptp();
        }
        if let Some(n) = &nmos_node {
            for e in n.take_effects() {
                let r = match e {
                    crate::nmos::model::Effect::Receiver { name, stream } => {
                        sup.nmos_receiver(&name, stream)
                    }
                    crate::nmos::model::Effect::Sender { name, stream } => {
                        sup.nmos_sender(&name, stream)
                    }
                };
                if let Err(e) = r {
                    tracing::warn!("nmos activation: {e}");
                }
            }
        }
        sup.tick();
        let healthy = sup.health().is_ok();
        notifier.watchdog(healthy);
        if last_publish.elapsed() >= Duration::from_millis(250) {
            last_publish = Instant::now();
            let st = sup.status(&path_s);
            notifier.status(&status_line(&st));
            if let (Some(n), Some(c)) = (&nmos_node, &sup.config().nmos) {
                n.update_ptp(sup.ptp_handle(&c.interface));
            }
            if let Ok(mut g) = shared.lock() {
                *g = st;
            }
        }
    }
    tracing::info!("stopping");
    notifier.stopping();
    drop(nmos_node);
    drop(metrics_server);
    drop(status_server);
    sup.shutdown();
    Ok(())
}
