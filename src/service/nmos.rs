//! The NMOS node's IO ([`crate::nmos`] is its sans-IO core): the HTTP
//! server of the IS-04 Node API and IS-05 Connection API (tiny_http), the
//! DNS-SD side over mDNS (mdns-sd: browsing `_nmos-register._tcp`,
//! advertising `_nmos-node._tcp` in peer-to-peer mode) and the
//! registration client (ureq). Two ordinary threads, `nmos-http` and
//! `nmos`; never a real-time one. IS-05 activations come out as
//! [`Effect`]s that the service loop hands to the supervisor
//! ([`NmosService::take_effects`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

use super::config::Config;
use crate::engine::ptp_clock::PtpClockHandle;
use crate::media::session::check_format;
use crate::nmos::Tai;
use crate::nmos::api;
use crate::nmos::model::{
    Effect, NetInterface, Node, NodeSetup, PtpClockInfo, ReceiverSetup, SenderSetup,
};
use crate::nmos::registration::{Call, Outcome, Registration, RegistryAd, usable};
use crate::units::MonoNs;

/// Largest request body taken, bytes (an SDP or a bulk PATCH is far less).
const MAX_BODY: u64 = 1 << 20;
/// TAI − UTC, s, when no PTP clock gives TAI (IERS, since 2017).
const TAI_UTC_S: i64 = 37;
/// Connect and answer timeouts of a registry call: well inside the 5 s
/// heartbeat interval, so a failover happens within one interval.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const CALL_TIMEOUT: Duration = Duration::from_millis(2000);
/// DNS-SD service types (IS-04 v1.3 "Discovery").
const REGISTER_TYPE: &str = "_nmos-register._tcp.local.";
const NODE_TYPE: &str = "_nmos-node._tcp.local.";

type Clock = Arc<Mutex<Option<PtpClockHandle>>>;

/// TAI now: the PTP clock when locked, else `CLOCK_REALTIME` + 37 s.
fn tai_now(clock: &Clock) -> Tai {
    if let Ok(g) = clock.lock()
        && let Some(h) = g.as_ref()
        && h.locked()
        && let Some(t) = h.now_ptp()
        && t.as_nanos() > 0
    {
        return Tai(t.as_nanos() as u128);
    }
    let ns = crate::sys::clock::realtime_now_ns() + TAI_UTC_S * 1_000_000_000;
    Tai(ns.max(0) as u128)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "aes67".into())
}

fn iface_of(name: &str) -> Result<NetInterface, String> {
    let i = crate::sys::socket::lookup(name).map_err(|e| format!("nmos: {name}: {e}"))?;
    Ok(NetInterface {
        name: i.name,
        ip: i.ipv4,
        mac: i.mac.unwrap_or([0; 6]),
    })
}

/// The node's setup from the config (interfaces looked up now).
fn node_setup(cfg: &Config, port: u16) -> Result<NodeSetup, String> {
    let n = cfg.nmos.as_ref().ok_or("no [nmos] section")?;
    let main = iface_of(&n.interface)?;
    let mut interfaces = vec![main.clone()];
    let mut get = |name: Option<&String>| -> Result<NetInterface, String> {
        let name = name.unwrap_or(&n.interface);
        if let Some(i) = interfaces.iter().find(|i| &i.name == name) {
            return Ok(i.clone());
        }
        let i = iface_of(name)?;
        interfaces.push(i.clone());
        Ok(i)
    };
    let mut senders = Vec::new();
    for s in &cfg.senders {
        let iface = get(s.stream.iface.as_ref())?;
        let frames = check_format(&s.stream, s.stream.packet_time_us.unwrap_or(1000))
            .map_err(|e| format!("nmos: sender {}: {e}", s.name))?;
        senders.push(SenderSetup {
            name: s.name.clone(),
            stream: s.stream.clone(),
            iface,
            frames,
        });
    }
    let mut receivers = Vec::new();
    for r in &cfg.receivers {
        let iface = get(r.stream.iface.as_ref())?;
        receivers.push(ReceiverSetup {
            name: r.name.clone(),
            iface,
            stream: Some(r.stream.clone()),
        });
    }
    let hostname = host_name();
    let mut tags = BTreeMap::new();
    tags.insert(
        "urn:x-aes67:version".to_string(),
        vec![env!("CARGO_PKG_VERSION").to_string()],
    );
    Ok(NodeSetup {
        seed: hostname.clone(),
        label: n.label.clone().unwrap_or_else(|| hostname.clone()),
        description: n.description.clone(),
        hostname,
        tags,
        host: main.ip,
        port,
        interfaces,
        senders,
        receivers,
        ptp: None,
    })
}

/// The running node. Dropping it stops its threads and withdraws it from
/// the registry.
pub struct NmosService {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    node: Arc<Mutex<Node>>,
    effects: Arc<Mutex<Vec<Effect>>>,
    clock: Clock,
    /// The address the APIs are served on.
    pub addr: SocketAddr,
}

impl NmosService {
    /// Starts the node of `cfg.nmos`: the HTTP server on the interface's
    /// address, registration (or peer-to-peer advertisement). `clock`: the
    /// PTP port's handle, if any (TAI for versions and activations).
    /// Errors: no `[nmos]`, an interface without an IPv4 address, the port
    /// in use, mDNS unavailable.
    pub fn start(cfg: &Config, clock: Option<PtpClockHandle>) -> Result<NmosService, String> {
        let n = cfg.nmos.as_ref().ok_or("no [nmos] section")?;
        let ip = iface_of(&n.interface)?.ip;
        let server = tiny_http::Server::http(SocketAddr::new(IpAddr::V4(ip), n.port))
            .map_err(|e| format!("nmos: cannot listen on {ip}:{}: {e}", n.port))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or("nmos: not an IP listener")?;
        let setup = node_setup(cfg, addr.port())?;
        let clock: Clock = Arc::new(Mutex::new(clock));
        let node = Arc::new(Mutex::new(Node::new(setup, tai_now(&clock))));
        let effects = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mdns = ServiceDaemon::new().map_err(|e| format!("nmos: mDNS: {e}"))?;
        let browse = if n.registration {
            Some(
                mdns.browse(REGISTER_TYPE)
                    .map_err(|e| format!("nmos: mDNS browse: {e}"))?,
            )
        } else {
            None
        };
        let mut threads = Vec::new();
        {
            let (node, effects, stop, clock) =
                (node.clone(), effects.clone(), stop.clone(), clock.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("nmos-http".into())
                    .spawn(move || serve(server, &node, &effects, &stop, &clock))
                    .map_err(|e| format!("nmos: thread: {e}"))?,
            );
        }
        {
            let (node, effects, stop, clock) =
                (node.clone(), effects.clone(), stop.clone(), clock.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("nmos".into())
                    .spawn(move || control(mdns, browse, &node, &effects, &stop, &clock, addr))
                    .map_err(|e| format!("nmos: thread: {e}"))?,
            );
        }
        Ok(NmosService {
            stop,
            threads,
            node,
            effects,
            clock,
            addr,
        })
    }

    /// The IS-05 activations since the last call, for the supervisor.
    pub fn take_effects(&self) -> Vec<Effect> {
        self.effects
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// The node's id (for logs).
    pub fn node_id(&self) -> String {
        self.node
            .lock()
            .map(|n| n.node_id().to_string())
            .unwrap_or_default()
    }

    /// Updates the PTP clock shown in the node's `clocks` from `h`.
    pub fn update_ptp(&self, h: Option<PtpClockHandle>) {
        let info = h.as_ref().and_then(|h| {
            let st = h.status()?;
            let hex: String = st
                .port
                .gm_identity
                .chars()
                .filter(char::is_ascii_hexdigit)
                .collect();
            let mut gmid = [0u8; 8];
            for (i, b) in gmid.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(PtpClockInfo {
                gmid,
                locked: h.locked(),
                traceable: st.port.time_traceable,
            })
        });
        if let Ok(mut g) = self.clock.lock() {
            *g = h;
        }
        let now = tai_now(&self.clock);
        if let Ok(mut n) = self.node.lock() {
            n.set_ptp(now, info);
        }
    }
}

impl Drop for NmosService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The HTTP server loop (`nmos-http` thread).
fn serve(
    server: tiny_http::Server,
    node: &Mutex<Node>,
    effects: &Mutex<Vec<Effect>>,
    stop: &AtomicBool,
    clock: &Clock,
) {
    while !stop.load(Ordering::SeqCst) {
        // Scheduled activations fire from here too (every 20 ms at most),
        // whatever the registration thread is waiting for.
        if let Ok(mut n) = node.lock() {
            let eff = n.tick(tai_now(clock));
            if !eff.is_empty()
                && let Ok(mut e) = effects.lock()
            {
                e.extend(eff);
            }
        }
        let mut req = match server.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("nmos http: {e}");
                continue;
            }
        };
        let mut body = Vec::new();
        let too_big = req
            .as_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map(|n| n as u64 > MAX_BODY)
            .unwrap_or(true);
        let method = req.method().as_str().to_ascii_uppercase();
        let url = req.url().to_string();
        let (resp, eff) = if too_big {
            (
                api::Response {
                    status: 413,
                    content_type: "application/json",
                    body: r#"{"code":413,"error":"body too large or unreadable","debug":null}"#
                        .into(),
                    location: None,
                    allow: None,
                },
                Vec::new(),
            )
        } else {
            let now = tai_now(clock);
            match node.lock() {
                Ok(mut n) => api::handle(&mut n, &method, &url, &body, now),
                Err(_) => continue,
            }
        };
        if !eff.is_empty()
            && let Ok(mut e) = effects.lock()
        {
            e.extend(eff);
        }
        let h = |k: &str, v: &str| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok();
        let mut out = tiny_http::Response::from_string(resp.body)
            .with_status_code(resp.status)
            .with_header(h("Content-Type", resp.content_type).expect("valid header"));
        for (k, v) in [
            ("Access-Control-Allow-Origin", "*"),
            (
                "Access-Control-Allow-Methods",
                "GET, PUT, POST, PATCH, HEAD, OPTIONS, DELETE",
            ),
            ("Access-Control-Allow-Headers", "Content-Type, Accept"),
            ("Access-Control-Max-Age", "3600"),
        ] {
            if let Some(x) = h(k, v) {
                out.add_header(x);
            }
        }
        if let Some(a) = resp.allow.and_then(|a| h("Allow", a)) {
            out.add_header(a);
        }
        if let Some(l) = resp.location.as_deref().and_then(|l| h("Location", l)) {
            out.add_header(l);
        }
        let _ = req.respond(out);
    }
}

/// Makes one registry call.
fn call(agent: &ureq::Agent, c: &Call) -> Outcome {
    let r = agent
        .request(c.method, &c.url)
        .set("Accept", "application/json");
    let r = match &c.body {
        Some(b) => r.set("Content-Type", "application/json").send_string(b),
        None => r.send_bytes(&[]),
    };
    match r {
        Ok(resp) => Outcome::Status(resp.status()),
        Err(ureq::Error::Status(code, _)) => Outcome::Status(code),
        Err(_) => Outcome::Failed,
    }
}

/// The control loop (`nmos` thread): DNS-SD, scheduled activations,
/// registration, peer-to-peer advertisement.
#[allow(clippy::too_many_arguments)]
fn control(
    mdns: ServiceDaemon,
    browse: Option<mdns_sd::Receiver<ServiceEvent>>,
    node: &Mutex<Node>,
    effects: &Mutex<Vec<Effect>>,
    stop: &AtomicBool,
    clock: &Clock,
    addr: SocketAddr,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .build();
    let mut reg = Registration::new();
    let mut ads: BTreeMap<String, RegistryAd> = BTreeMap::new();
    let mut advertised: Option<(String, Vec<(&'static str, String)>)> = None;
    let host = host_name();
    let instance = format!("aes67 {host} {}", addr.port());
    while !stop.load(Ordering::SeqCst) {
        // DNS-SD: registries come and go.
        if let Some(rx) = &browse {
            let mut changed = false;
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    ServiceEvent::ServiceResolved(s) => {
                        let ok = usable(
                            s.get_property_val_str("api_ver"),
                            s.get_property_val_str("api_proto"),
                            s.get_property_val_str("api_auth"),
                        );
                        let ip = s.get_addresses_v4().into_iter().next();
                        let pri = s
                            .get_property_val_str("pri")
                            .and_then(|p| p.trim().parse().ok())
                            .unwrap_or(u32::MAX);
                        let name = s.get_fullname().to_string();
                        match (ok, ip) {
                            (true, Some(ip)) => {
                                tracing::info!(
                                    "nmos: registry {name} at {ip}:{} pri {pri}",
                                    s.get_port()
                                );
                                ads.insert(
                                    name.clone(),
                                    RegistryAd {
                                        name,
                                        url: format!("http://{ip}:{}", s.get_port()),
                                        pri,
                                    },
                                );
                            }
                            _ => {
                                tracing::info!(
                                    "nmos: ignoring registry {name} (api_ver/api_proto/api_auth or no IPv4 address)"
                                );
                                ads.remove(&name);
                            }
                        }
                        changed = true;
                    }
                    ServiceEvent::ServiceRemoved(_, name) => {
                        if ads.remove(&name).is_some() {
                            tracing::info!("nmos: registry {name} withdrawn");
                        }
                        changed = true;
                    }
                    _ => {}
                }
            }
            if changed {
                reg.set_ads(ads.values().cloned().collect());
            }
        }
        // Scheduled activations, and changes to register.
        let now = tai_now(clock);
        let mut txt = Vec::new();
        if let Ok(mut n) = node.lock() {
            let eff = n.tick(now);
            if !eff.is_empty()
                && let Ok(mut e) = effects.lock()
            {
                e.extend(eff);
            }
            let ch = n.take_changes();
            reg.changed(&n, &ch);
            txt = n.ver_txt();
        }
        // Registration: one call at a time, outside the node lock.
        let c = node.lock().ok().and_then(|n| reg.poll(mono(), &n));
        if let Some(c) = &c {
            let o = call(&agent, c);
            if let Ok(n) = node.lock()
                && let Some(msg) = reg.done(mono(), o, &n)
            {
                tracing::warn!("nmos: {msg}");
            }
        }
        // Peer-to-peer: advertise the Node API while no registry is in use.
        let want = reg.peer_to_peer();
        match (&advertised, want) {
            (Some((_, t)), true) if *t == txt => {}
            (_, true) => {
                let mut props: Vec<(&str, String)> = vec![
                    ("api_ver", "v1.3".into()),
                    ("api_proto", "http".into()),
                    ("api_auth", "false".into()),
                ];
                props.extend(txt.iter().cloned());
                match ServiceInfo::new(
                    NODE_TYPE,
                    &instance,
                    &format!("{host}.local."),
                    addr.ip(),
                    addr.port(),
                    &props[..],
                ) {
                    Ok(info) => {
                        let full = info.get_fullname().to_string();
                        match mdns.register(info) {
                            Ok(()) => advertised = Some((full, txt.clone())),
                            Err(e) => tracing::warn!("nmos: mDNS advertisement: {e}"),
                        }
                    }
                    Err(e) => tracing::warn!("nmos: mDNS advertisement: {e}"),
                }
            }
            (Some((full, _)), false) => {
                let _ = mdns.unregister(full);
                advertised = None;
            }
            (None, false) => {}
        }
        if c.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Withdraw: DELETE the node at the registry, and the advertisement.
    if let Ok(n) = node.lock()
        && let Some(c) = reg.withdraw(&n)
    {
        let _ = call(&agent, &c);
    }
    if let Some((full, _)) = advertised
        && let Ok(rx) = mdns.unregister(&full)
    {
        let _ = rx.recv_timeout(Duration::from_millis(500));
    }
    let _ = mdns.shutdown();
}

/// The monotonic clock as the registration core takes it.
fn mono() -> MonoNs {
    crate::sys::clock::monotonic_now()
}
