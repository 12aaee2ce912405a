//! The node's resources (IS-04 v1.3) and their IS-05 v1.1 connection state.
//!
//! One node, one device; per AES67 sender one source, flow and sender (the
//! sender's SDP is its manifest); per AES67 receiver one receiver whose caps
//! are what the engine really takes (BCP-004-01). Every resource has a
//! stable id (UUID v5 of the node's seed and the stream's name) and a
//! version (TAI) bumped on every change.
//!
//! IS-05: each sender and receiver has a *staged* and an *active* set of
//! parameters (one RTP leg). A PATCH to `/staged` changes the staged set
//! and may activate it now (`activate_immediate`), at a TAI time
//! (`activate_scheduled_absolute`) or after a delay
//! (`activate_scheduled_relative`); [`Node::tick`] fires due activations.
//! Each activation returns an [`Effect`] for the engine: play a stream, stop
//! a receiver, move or stop a sender.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Tai;
use crate::media::session::{RefClock, SenderSdp};
use crate::media::stream::StreamConfig;

/// The IS-04 API version served and registered.
pub const NODE_API_VERSION: &str = "v1.3";
/// The IS-05 API version served.
pub const CONNECTION_API_VERSION: &str = "v1.1";
/// The IS-05 transport of every sender and receiver (RTP; unicast and
/// multicast, IS-05 v1.1 §"Transport types").
pub const TRANSPORT_RTP: &str = "urn:x-nmos:transport:rtp";
/// Sample rates a receiver takes, Hz (BCP-004-01 `sample_rate` caps).
pub const RX_SAMPLE_RATES: [u32; 3] = [44_100, 48_000, 96_000];
/// Channels a receiver takes (BCP-004-01 `channel_count`).
pub const RX_CHANNELS: (u16, u16) = (1, 64);
/// Packet times a receiver takes, ms (BCP-004-01 `packet_time`).
pub const RX_PACKET_TIME_MS: (f64, f64) = (0.125, 5.0);

/// A network interface of the node (IS-04 v1.3 `interfaces`: LLDP chassis
/// and port ids; here the interface's MAC for both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetInterface {
    /// OS interface name (`eth0`), the `interface_bindings` value.
    pub name: String,
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// MAC address.
    pub mac: [u8; 6],
}

/// The node's PTP clock as last seen (IS-04 v1.3 `clocks`, `ref_type: ptp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtpClockInfo {
    /// grandmasterIdentity, 8 bytes (IEEE 1588-2019 §7.6.2.2).
    pub gmid: [u8; 8],
    /// The servo is locked to it.
    pub locked: bool,
    /// The grandmaster's Announce says its time is traceable
    /// (timeTraceable, IEEE 1588-2019 §7.6.2.8).
    pub traceable: bool,
}

/// An AES67 sender as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct SenderSetup {
    /// Unique stream name.
    pub name: String,
    /// The stream as configured (destination, format, packet time).
    pub stream: StreamConfig,
    /// The interface it sends on.
    pub iface: NetInterface,
    /// Frames per packet.
    pub frames: u32,
}

/// An AES67 receiver as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverSetup {
    /// Unique stream name.
    pub name: String,
    /// The interface it receives on.
    pub iface: NetInterface,
    /// The configured stream (what it plays at start-up), if any.
    pub stream: Option<StreamConfig>,
}

/// Everything the node is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSetup {
    /// Seed of the stable ids (e.g. the host name): the same seed and names
    /// give the same ids after a restart (IS-04 "Node resource IDs persist").
    pub seed: String,
    /// Host name (IS-04 node `hostname`).
    pub hostname: String,
    /// Node and device label.
    pub label: String,
    /// Node and device description.
    pub description: String,
    /// Tags (IS-04 `tags`).
    pub tags: BTreeMap<String, Vec<String>>,
    /// The address the APIs are served on (`href`, `api.endpoints`).
    pub host: Ipv4Addr,
    /// The HTTP port of both APIs.
    pub port: u16,
    /// The node's interfaces.
    pub interfaces: Vec<NetInterface>,
    /// Senders, in config order.
    pub senders: Vec<SenderSetup>,
    /// Receivers, in config order.
    pub receivers: Vec<ReceiverSetup>,
    /// The PTP clock, if the node has a PTP port.
    pub ptp: Option<PtpClockInfo>,
}

/// What an activation asks of the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Receiver `name` plays `stream` (restarting if it played another),
    /// or stops (`None`: `master_enable` or `rtp_enabled` false).
    Receiver {
        /// The receiver's config name.
        name: String,
        /// The stream to play.
        stream: Option<StreamConfig>,
    },
    /// Sender `name` sends `stream` (restarting if the destination
    /// changed), or stops (`None`).
    Sender {
        /// The sender's config name.
        name: String,
        /// The stream to send.
        stream: Option<StreamConfig>,
    },
}

/// A resource type, for registration and `ver_*` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The node (`self`).
    Node,
    /// The device.
    Device,
    /// A source.
    Source,
    /// A flow.
    Flow,
    /// A sender.
    Sender,
    /// A receiver.
    Receiver,
}

impl Kind {
    /// The IS-04 type name (`node`, `device`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Device => "device",
            Kind::Source => "source",
            Kind::Flow => "flow",
            Kind::Sender => "sender",
            Kind::Receiver => "receiver",
        }
    }
}

/// An IS-05 activation (`activation` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activation {
    /// `null`, or `activate_immediate` / `activate_scheduled_absolute` /
    /// `activate_scheduled_relative`.
    pub mode: Option<Mode>,
    /// As requested: absolute TAI, or an offset for relative mode.
    pub requested: Option<Tai>,
    /// When it takes (took) effect, TAI.
    pub at: Option<Tai>,
}

/// IS-05 activation modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `activate_immediate`.
    Immediate,
    /// `activate_scheduled_absolute`.
    Absolute,
    /// `activate_scheduled_relative`.
    Relative,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Immediate => "activate_immediate",
            Mode::Absolute => "activate_scheduled_absolute",
            Mode::Relative => "activate_scheduled_relative",
        }
    }
}

impl Activation {
    fn json(&self) -> Value {
        json!({
            "mode": self.mode.map(Mode::name),
            "requested_time": self.requested.map(|t| t.to_string()),
            "activation_time": self.at.map(|t| t.to_string()),
        })
    }
    fn scheduled(&self) -> bool {
        matches!(self.mode, Some(Mode::Absolute | Mode::Relative))
    }
}

/// One side's IS-05 parameters (staged or active).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `master_enable`.
    pub master_enable: bool,
    /// `receiver_id` (senders) or `sender_id` (receivers).
    pub peer_id: Option<String>,
    /// One RTP leg's `transport_params` (JSON object).
    pub leg: Map<String, Value>,
    /// Receivers: `transport_file.data` (SDP text).
    pub transport_file: Option<String>,
    /// The activation.
    pub activation: Activation,
}

/// An IS-05 request failure: HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (400, 404, 423, ...).
    pub code: u16,
    /// What is wrong, naming the field.
    pub error: String,
}

fn bad(e: impl Into<String>) -> ApiError {
    ApiError {
        code: 400,
        error: e.into(),
    }
}

struct SenderRes {
    setup: SenderSetup,
    id: String,
    source_id: String,
    flow_id: String,
    version: Tai,
    source_version: Tai,
    flow_version: Tai,
    staged: Params,
    active: Params,
    sdp_session: u64,
    sdp_version: u64,
}

struct ReceiverRes {
    setup: ReceiverSetup,
    id: String,
    version: Tai,
    staged: Params,
    active: Params,
    /// The stream of the last activation's SDP (or the configured one).
    base: Option<StreamConfig>,
    caps_version: Tai,
}

/// The node: resources, IS-05 state, change tracking. See the module docs.
pub struct Node {
    setup: NodeSetup,
    node_id: String,
    device_id: String,
    node_version: Tai,
    device_version: Tai,
    senders: Vec<SenderRes>,
    receivers: Vec<ReceiverRes>,
    last_version: Tai,
    /// Changed resources not yet taken by [`Node::take_changes`].
    changes: Vec<(Kind, String)>,
    /// `ver_*` counters (IS-04 peer-to-peer TXT records), wrapping at 255.
    counters: BTreeMap<Kind, u8>,
}

/// The stable id of `what` under `seed` (UUID v5, URL namespace).
pub fn stable_id(seed: &str, what: &str) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("aes67:{seed}:{what}").as_bytes(),
    )
    .to_string()
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("-")
}

fn sender_leg(s: &SenderSetup) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("source_ip".into(), json!(s.iface.ip.to_string()));
    m.insert("destination_ip".into(), json!(s.stream.dest.to_string()));
    m.insert("source_port".into(), json!(s.stream.port));
    m.insert("destination_port".into(), json!(s.stream.port));
    m.insert("rtp_enabled".into(), json!(true));
    m
}

fn receiver_leg(r: &ReceiverSetup) -> Map<String, Value> {
    let mut m = Map::new();
    let (mcast, src, port) = match &r.stream {
        Some(s) => (
            s.dest.is_multicast().then(|| s.dest.to_string()),
            s.source.map(|a| a.to_string()),
            s.port,
        ),
        None => (None, None, 5004),
    };
    m.insert("source_ip".into(), json!(src));
    m.insert("multicast_ip".into(), json!(mcast));
    m.insert("interface_ip".into(), json!(r.iface.ip.to_string()));
    m.insert("destination_port".into(), json!(port));
    m.insert("rtp_enabled".into(), json!(true));
    m
}

impl Node {
    /// Builds the node at TAI `now` (the first version of every resource).
    pub fn new(setup: NodeSetup, now: Tai) -> Node {
        let seed = setup.seed.clone();
        let senders = setup
            .senders
            .iter()
            .map(|s| {
                let leg = sender_leg(s);
                let p = Params {
                    master_enable: true,
                    peer_id: None,
                    leg: leg.clone(),
                    transport_file: None,
                    activation: Activation::default(),
                };
                SenderRes {
                    setup: s.clone(),
                    id: stable_id(&seed, &format!("sender/{}", s.name)),
                    source_id: stable_id(&seed, &format!("source/{}", s.name)),
                    flow_id: stable_id(&seed, &format!("flow/{}", s.name)),
                    version: now,
                    source_version: now,
                    flow_version: now,
                    staged: Params {
                        leg: leg.clone(),
                        ..p.clone()
                    },
                    active: p,
                    sdp_session: now.secs(),
                    sdp_version: 1,
                }
            })
            .collect();
        let receivers = setup
            .receivers
            .iter()
            .map(|r| {
                let p = Params {
                    master_enable: r.stream.is_some(),
                    peer_id: None,
                    leg: receiver_leg(r),
                    transport_file: None,
                    activation: Activation::default(),
                };
                ReceiverRes {
                    setup: r.clone(),
                    id: stable_id(&seed, &format!("receiver/{}", r.name)),
                    version: now,
                    staged: p.clone(),
                    active: p,
                    base: r.stream.clone(),
                    caps_version: now,
                }
            })
            .collect();
        Node {
            node_id: stable_id(&seed, "node"),
            device_id: stable_id(&seed, "device"),
            node_version: now,
            device_version: now,
            senders,
            receivers,
            last_version: now,
            changes: Vec::new(),
            counters: BTreeMap::new(),
            setup,
        }
    }

    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The setup the node was built from.
    pub fn setup(&self) -> &NodeSetup {
        &self.setup
    }

    /// A fresh version, strictly after every earlier one.
    fn bump(&mut self, now: Tai, kind: Kind, id: String) -> Tai {
        let v = if now > self.last_version {
            now
        } else {
            self.last_version.plus_ns(1)
        };
        self.last_version = v;
        self.changes.push((kind, id));
        let c = self.counters.entry(kind).or_insert(0);
        *c = c.wrapping_add(1);
        v
    }

    /// Resources changed since the last call, in registration order (node,
    /// device, source, flow, sender, receiver), each once.
    pub fn take_changes(&mut self) -> Vec<(Kind, String)> {
        let mut c = std::mem::take(&mut self.changes);
        c.sort();
        c.dedup();
        c
    }

    /// The `ver_*` TXT record values of peer-to-peer mode (IS-04 v1.3
    /// "Discovery: Peer to Peer"): `ver_slf`, `ver_src`, `ver_flw`,
    /// `ver_dvc`, `ver_snd`, `ver_rcv`, each 0-255, wrapping.
    pub fn ver_txt(&self) -> Vec<(&'static str, String)> {
        let c = |k| self.counters.get(&k).copied().unwrap_or(0).to_string();
        vec![
            ("ver_slf", c(Kind::Node)),
            ("ver_src", c(Kind::Source)),
            ("ver_flw", c(Kind::Flow)),
            ("ver_dvc", c(Kind::Device)),
            ("ver_snd", c(Kind::Sender)),
            ("ver_rcv", c(Kind::Receiver)),
        ]
    }

    /// Updates the PTP clock seen in `clocks` (a change bumps the node).
    pub fn set_ptp(&mut self, now: Tai, ptp: Option<PtpClockInfo>) {
        if self.setup.ptp != ptp {
            self.setup.ptp = ptp;
            let v = self.bump(now, Kind::Node, self.node_id.clone());
            self.node_version = v;
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}:{}", self.setup.host, self.setup.port)
    }

    fn common(&self, id: &str, version: Tai, label: &str, description: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("version".into(), json!(version.to_string()));
        m.insert("label".into(), json!(label));
        m.insert("description".into(), json!(description));
        m.insert("tags".into(), json!(self.setup.tags));
        m
    }

    /// The BCP-002-02 asset tags of the node and device: manufacturer,
    /// product, instance id (the host name), function.
    fn asset_tags(&self, m: &mut Map<String, Value>) {
        if let Some(Value::Object(t)) = m.get_mut("tags") {
            for (k, v) in [
                ("urn:x-nmos:tag:asset:manufacturer/v1.0", "aes67 project"),
                ("urn:x-nmos:tag:asset:product/v1.0", "aes67"),
                (
                    "urn:x-nmos:tag:asset:instance-id/v1.0",
                    self.setup.seed.as_str(),
                ),
                ("urn:x-nmos:tag:asset:function/v1.0", "AES67 audio"),
            ] {
                t.insert(k.into(), json!([v]));
            }
        }
    }

    /// The node resource (`/self`).
    pub fn node_json(&self) -> Value {
        let s = &self.setup;
        let mut m = self.common(&self.node_id, self.node_version, &s.label, &s.description);
        self.asset_tags(&mut m);
        let mut clocks = vec![json!({"name": "clk0", "ref_type": "internal"})];
        if let Some(p) = &s.ptp {
            let gmid = p
                .gmid
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join("-");
            clocks.push(json!({
                "name": "clk1",
                "ref_type": "ptp",
                "traceable": p.traceable,
                "version": "IEEE1588-2008",
                "gmid": gmid,
                "locked": p.locked,
            }));
        }
        m.insert("href".into(), json!(format!("{}/", self.base_url())));
        m.insert("hostname".into(), json!(s.hostname));
        m.insert(
            "api".into(),
            json!({
                "versions": [NODE_API_VERSION],
                "endpoints": [{"host": s.host.to_string(), "port": s.port, "protocol": "http", "authorization": false}],
            }),
        );
        m.insert("caps".into(), json!({}));
        m.insert("services".into(), json!([]));
        m.insert("clocks".into(), json!(clocks));
        m.insert(
            "interfaces".into(),
            json!(
                s.interfaces
                    .iter()
                    .map(|i| json!({
                        "name": i.name,
                        "chassis_id": mac_text(&i.mac),
                        "port_id": mac_text(&i.mac),
                    }))
                    .collect::<Vec<_>>()
            ),
        );
        Value::Object(m)
    }

    /// The device resource.
    pub fn device_json(&self) -> Value {
        let s = &self.setup;
        let mut m = self.common(
            &self.device_id,
            self.device_version,
            &s.label,
            &s.description,
        );
        self.asset_tags(&mut m);
        m.insert("type".into(), json!("urn:x-nmos:device:generic"));
        m.insert("node_id".into(), json!(self.node_id));
        m.insert(
            "senders".into(),
            json!(self.senders.iter().map(|x| &x.id).collect::<Vec<_>>()),
        );
        m.insert(
            "receivers".into(),
            json!(self.receivers.iter().map(|x| &x.id).collect::<Vec<_>>()),
        );
        m.insert(
            "controls".into(),
            json!([{
                "href": format!("{}/x-nmos/connection/{CONNECTION_API_VERSION}/", self.base_url()),
                "type": format!("urn:x-nmos:control:sr-ctrl/{CONNECTION_API_VERSION}"),
                "authorization": false,
            }]),
        );
        Value::Object(m)
    }

    /// All sources.
    pub fn sources_json(&self) -> Vec<Value> {
        self.senders
            .iter()
            .map(|x| {
                let st = &x.setup.stream;
                let mut m = self.common(
                    &x.source_id,
                    x.source_version,
                    &x.setup.name,
                    &format!("AES67 sender {} source", x.setup.name),
                );
                m.insert("format".into(), json!("urn:x-nmos:format:audio"));
                m.insert("caps".into(), json!({}));
                m.insert("device_id".into(), json!(self.device_id));
                m.insert("parents".into(), json!([]));
                m.insert("clock_name".into(), json!("clk0"));
                m.insert(
                    "channels".into(),
                    json!(
                        (1..=st.channels)
                            .map(|c| json!({"label": format!("Channel {c}")}))
                            .collect::<Vec<_>>()
                    ),
                );
                Value::Object(m)
            })
            .collect()
    }

    /// All flows.
    pub fn flows_json(&self) -> Vec<Value> {
        self.senders
            .iter()
            .map(|x| {
                let st = &x.setup.stream;
                let mut m = self.common(
                    &x.flow_id,
                    x.flow_version,
                    &x.setup.name,
                    &format!("AES67 sender {} flow", x.setup.name),
                );
                m.insert("format".into(), json!("urn:x-nmos:format:audio"));
                m.insert("source_id".into(), json!(x.source_id));
                m.insert("device_id".into(), json!(self.device_id));
                m.insert("parents".into(), json!([]));
                m.insert(
                    "media_type".into(),
                    json!(format!("audio/{}", st.encoding.name())),
                );
                m.insert(
                    "sample_rate".into(),
                    json!({"numerator": st.sample_rate, "denominator": 1}),
                );
                m.insert("bit_depth".into(), json!(st.encoding.bits()));
                Value::Object(m)
            })
            .collect()
    }

    fn sender_json(&self, x: &SenderRes) -> Value {
        let mut m = self.common(
            &x.id,
            x.version,
            &x.setup.name,
            &format!("AES67 sender {}", x.setup.name),
        );
        m.insert("flow_id".into(), json!(x.flow_id));
        m.insert("transport".into(), json!(TRANSPORT_RTP));
        m.insert("device_id".into(), json!(self.device_id));
        m.insert(
            "manifest_href".into(),
            json!(format!(
                "{}/x-nmos/connection/{CONNECTION_API_VERSION}/single/senders/{}/transportfile",
                self.base_url(),
                x.id
            )),
        );
        m.insert("interface_bindings".into(), json!([x.setup.iface.name]));
        m.insert(
            "subscription".into(),
            json!({
                "receiver_id": x.active.peer_id.as_ref().filter(|_| x.active.master_enable),
                "active": x.active.master_enable,
            }),
        );
        Value::Object(m)
    }

    /// All senders.
    pub fn senders_json(&self) -> Vec<Value> {
        self.senders.iter().map(|x| self.sender_json(x)).collect()
    }

    fn receiver_json(&self, x: &ReceiverRes) -> Value {
        let mut m = self.common(
            &x.id,
            x.version,
            &x.setup.name,
            &format!("AES67 receiver {}", x.setup.name),
        );
        m.insert("format".into(), json!("urn:x-nmos:format:audio"));
        let rates: Vec<Value> = RX_SAMPLE_RATES
            .iter()
            .map(|r| json!({"numerator": r}))
            .collect();
        m.insert(
            "caps".into(),
            json!({
                "media_types": ["audio/L24", "audio/L16"],
                "constraint_sets": [{
                    "urn:x-nmos:cap:format:media_type": {"enum": ["audio/L24", "audio/L16"]},
                    "urn:x-nmos:cap:format:sample_rate": {"enum": rates},
                    "urn:x-nmos:cap:format:channel_count": {"minimum": RX_CHANNELS.0, "maximum": RX_CHANNELS.1},
                    "urn:x-nmos:cap:transport:packet_time": {"minimum": RX_PACKET_TIME_MS.0, "maximum": RX_PACKET_TIME_MS.1},
                }],
                "version": x.caps_version.to_string(),
            }),
        );
        m.insert("device_id".into(), json!(self.device_id));
        m.insert("transport".into(), json!(TRANSPORT_RTP));
        m.insert("interface_bindings".into(), json!([x.setup.iface.name]));
        m.insert(
            "subscription".into(),
            json!({
                "sender_id": x.active.peer_id.as_ref().filter(|_| x.active.master_enable),
                "active": x.active.master_enable,
            }),
        );
        Value::Object(m)
    }

    /// All receivers.
    pub fn receivers_json(&self) -> Vec<Value> {
        self.receivers
            .iter()
            .map(|x| self.receiver_json(x))
            .collect()
    }

    /// The resource `id` of `kind`, as the Node API serves it.
    pub fn resource(&self, kind: Kind, id: &str) -> Option<Value> {
        let by_id = |v: Vec<Value>| v.into_iter().find(|r| r["id"] == id);
        match kind {
            Kind::Node => (id == self.node_id).then(|| self.node_json()),
            Kind::Device => (id == self.device_id).then(|| self.device_json()),
            Kind::Source => by_id(self.sources_json()),
            Kind::Flow => by_id(self.flows_json()),
            Kind::Sender => by_id(self.senders_json()),
            Kind::Receiver => by_id(self.receivers_json()),
        }
    }

    /// Every resource in registration order (IS-04 "Referential
    /// integrity": node, device, sources, flows, senders, receivers).
    pub fn all_resources(&self) -> Vec<(Kind, Value)> {
        let mut v = vec![
            (Kind::Node, self.node_json()),
            (Kind::Device, self.device_json()),
        ];
        v.extend(self.sources_json().into_iter().map(|r| (Kind::Source, r)));
        v.extend(self.flows_json().into_iter().map(|r| (Kind::Flow, r)));
        v.extend(self.senders_json().into_iter().map(|r| (Kind::Sender, r)));
        v.extend(
            self.receivers_json()
                .into_iter()
                .map(|r| (Kind::Receiver, r)),
        );
        v
    }

    /// Sender ids, in config order.
    pub fn sender_ids(&self) -> Vec<String> {
        self.senders.iter().map(|s| s.id.clone()).collect()
    }

    /// Receiver ids, in config order.
    pub fn receiver_ids(&self) -> Vec<String> {
        self.receivers.iter().map(|s| s.id.clone()).collect()
    }

    /// The id of the sender or receiver called `name` in the config.
    pub fn id_of(&self, name: &str) -> Option<String> {
        self.senders
            .iter()
            .find(|s| s.setup.name == name)
            .map(|s| s.id.clone())
            .or_else(|| {
                self.receivers
                    .iter()
                    .find(|s| s.setup.name == name)
                    .map(|s| s.id.clone())
            })
    }

    /// The stream a sender sends with its active parameters.
    fn sender_stream(x: &SenderRes) -> StreamConfig {
        let mut st = x.setup.stream.clone();
        if let Some(ip) = lv(&x.active.leg, "destination_ip")
            .as_str()
            .and_then(|s| s.parse().ok())
        {
            st.dest = ip;
        }
        if let Some(p) = lv(&x.active.leg, "destination_port").as_u64() {
            st.port = p as u16;
        }
        st
    }

    /// The SDP of sender `id` with its active parameters (its
    /// `manifest_href`, IS-05 `/transportfile`); `None` for an unknown id. Served
    /// also while `master_enable` is false (what it sends when enabled).
    pub fn sender_sdp(&self, id: &str) -> Option<String> {
        let x = self.senders.iter().find(|s| s.id == id)?;
        let mut stream = Self::sender_stream(x);
        stream.name = Some(x.setup.name.clone());
        let origin = lv(&x.active.leg, "source_ip")
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(x.setup.iface.ip);
        let text = SenderSdp {
            mediaclk_offset: stream.mediaclk_offset.unwrap_or(0),
            stream,
            frames: x.setup.frames,
            origin,
            session_id: x.sdp_session,
            version: x.sdp_version,
            refclk: RefClock::LocalMac(x.setup.iface.mac),
            channel_order: None,
        }
        .render();
        Some(media_level_connection(&text))
    }

    /// IS-05 constraints of sender `id` (one leg).
    pub fn sender_constraints(&self, id: &str) -> Option<Value> {
        let x = self.senders.iter().find(|s| s.id == id)?;
        Some(json!([{
            "source_ip": {"enum": [x.setup.iface.ip.to_string()]},
            "destination_ip": {},
            "source_port": {"minimum": 1, "maximum": 65535},
            "destination_port": {"minimum": 1, "maximum": 65535},
            "rtp_enabled": {},
        }]))
    }

    /// IS-05 constraints of receiver `id` (one leg).
    pub fn receiver_constraints(&self, id: &str) -> Option<Value> {
        let x = self.receivers.iter().find(|s| s.id == id)?;
        Some(json!([{
            "source_ip": {},
            "multicast_ip": {},
            "interface_ip": {"enum": [x.setup.iface.ip.to_string()]},
            "destination_port": {"minimum": 1, "maximum": 65535},
            "rtp_enabled": {},
        }]))
    }

    fn params_json(p: &Params, receiver: bool) -> Value {
        let mut m = Map::new();
        m.insert(
            if receiver { "sender_id" } else { "receiver_id" }.into(),
            json!(p.peer_id),
        );
        m.insert("master_enable".into(), json!(p.master_enable));
        m.insert("activation".into(), p.activation.json());
        m.insert("transport_params".into(), json!([p.leg]));
        if receiver {
            m.insert(
                "transport_file".into(),
                json!({
                    "data": p.transport_file,
                    "type": p.transport_file.as_ref().map(|_| "application/sdp"),
                }),
            );
        }
        Value::Object(m)
    }

    /// `/staged` or `/active` of sender `id`.
    pub fn sender_params(&self, id: &str, active: bool) -> Option<Value> {
        let x = self.senders.iter().find(|s| s.id == id)?;
        Some(Self::params_json(
            if active { &x.active } else { &x.staged },
            false,
        ))
    }

    /// `/staged` or `/active` of receiver `id`.
    pub fn receiver_params(&self, id: &str, active: bool) -> Option<Value> {
        let x = self.receivers.iter().find(|s| s.id == id)?;
        Some(Self::params_json(
            if active { &x.active } else { &x.staged },
            true,
        ))
    }

    /// Applies a PATCH to sender `id`'s `/staged` at `now`. Returns the
    /// HTTP status (200, or 202 for a scheduled activation), the staged
    /// parameters to answer with, and the effects of an immediate
    /// activation. Errors: 404 unknown id, 400 a bad field (named), 423 a
    /// scheduled activation is pending (IS-05 v1.1 "Activations").
    pub fn patch_sender(
        &mut self,
        id: &str,
        body: &Value,
        now: Tai,
    ) -> Result<(u16, Value, Vec<Effect>), ApiError> {
        let i = stage_patch(&mut self.senders, "sender", id, body, now)?;
        self.after_patch(false, i, now)
    }

    /// As [`Self::patch_sender`], for receiver `id` (a `transport_file`
    /// SDP is checked and its addresses staged).
    pub fn patch_receiver(
        &mut self,
        id: &str,
        body: &Value,
        now: Tai,
    ) -> Result<(u16, Value, Vec<Effect>), ApiError> {
        let i = stage_patch(&mut self.receivers, "receiver", id, body, now)?;
        self.after_patch(true, i, now)
    }

    fn after_patch(
        &mut self,
        receiver: bool,
        i: usize,
        now: Tai,
    ) -> Result<(u16, Value, Vec<Effect>), ApiError> {
        let act = if receiver {
            self.receivers[i].staged.activation
        } else {
            self.senders[i].staged.activation
        };
        match act.mode {
            Some(Mode::Immediate) => {
                let eff = self.activate(receiver, i, now);
                let mut body = if receiver {
                    Self::params_json(&self.receivers[i].staged, true)
                } else {
                    Self::params_json(&self.senders[i].staged, false)
                };
                body["activation"] = Activation {
                    mode: Some(Mode::Immediate),
                    requested: None,
                    at: Some(now),
                }
                .json();
                Ok((200, body, vec![eff]))
            }
            Some(_) => {
                let body = if receiver {
                    Self::params_json(&self.receivers[i].staged, true)
                } else {
                    Self::params_json(&self.senders[i].staged, false)
                };
                Ok((202, body, Vec::new()))
            }
            None => {
                let body = if receiver {
                    Self::params_json(&self.receivers[i].staged, true)
                } else {
                    Self::params_json(&self.senders[i].staged, false)
                };
                Ok((200, body, Vec::new()))
            }
        }
    }

    /// Makes the staged parameters of sender/receiver `i` active at `now`
    /// ("auto" resolved), clears the staged activation, bumps the version.
    fn activate(&mut self, receiver: bool, i: usize, now: Tai) -> Effect {
        if receiver {
            let staged = self.receivers[i].staged.clone();
            let x = &mut self.receivers[i];
            let mut active = staged.clone();
            // A staged SDP replaces the stream played.
            if let Some(sdp) = &staged.transport_file
                && let Ok(mut s) = StreamConfig::from_sdp(sdp)
            {
                s.iface = Some(x.setup.iface.name.clone());
                x.base = Some(s);
            }
            let base = x.base.clone();
            resolve_receiver_leg(&mut active.leg, &x.setup.iface, base.as_ref());
            active.activation = Activation {
                mode: staged.activation.mode,
                requested: staged.activation.requested,
                at: Some(now),
            };
            x.active = active;
            x.staged.activation = Activation::default();
            let stream = receiver_stream(&x.active, base, &x.setup.iface);
            let name = x.setup.name.clone();
            let id = x.id.clone();
            let v = self.bump(now, Kind::Receiver, id);
            self.receivers[i].version = v;
            Effect::Receiver { name, stream }
        } else {
            let staged = self.senders[i].staged.clone();
            let x = &mut self.senders[i];
            let mut active = staged.clone();
            resolve_sender_leg(&mut active.leg, &x.setup);
            active.activation = Activation {
                mode: staged.activation.mode,
                requested: staged.activation.requested,
                at: Some(now),
            };
            let moved = active.leg != x.active.leg;
            x.active = active;
            x.staged.activation = Activation::default();
            if moved {
                x.sdp_version += 1;
            }
            let run =
                x.active.master_enable && lv(&x.active.leg, "rtp_enabled").as_bool() != Some(false);
            let stream = run.then(|| Self::sender_stream(x));
            let name = x.setup.name.clone();
            let id = x.id.clone();
            let v = self.bump(now, Kind::Sender, id);
            self.senders[i].version = v;
            Effect::Sender { name, stream }
        }
    }

    /// Fires the scheduled activations due at `now`; returns their effects.
    pub fn tick(&mut self, now: Tai) -> Vec<Effect> {
        let mut out = Vec::new();
        for i in 0..self.senders.len() {
            let a = self.senders[i].staged.activation;
            if a.scheduled() && a.at.is_some_and(|t| t <= now) {
                out.push(self.activate(false, i, a.at.unwrap_or(now)));
            }
        }
        for i in 0..self.receivers.len() {
            let a = self.receivers[i].staged.activation;
            if a.scheduled() && a.at.is_some_and(|t| t <= now) {
                out.push(self.activate(true, i, a.at.unwrap_or(now)));
            }
        }
        out
    }

    /// The earliest pending scheduled activation, if any.
    pub fn next_activation(&self) -> Option<Tai> {
        self.senders
            .iter()
            .map(|s| s.staged.activation)
            .chain(self.receivers.iter().map(|r| r.staged.activation))
            .filter(|a| a.scheduled())
            .filter_map(|a| a.at)
            .min()
    }

    /// IS-04 `PUT /receivers/{id}/target` (deprecated by IS-05, still
    /// tested): a sender resource subscribes the receiver to it (its SDP,
    /// when the caller gives it as `sdp`, is played); `{}` unsubscribes
    /// and stops. Returns the effect.
    pub fn put_target(
        &mut self,
        id: &str,
        body: &Value,
        sdp: Option<String>,
        now: Tai,
    ) -> Result<Effect, ApiError> {
        let i = self
            .receivers
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| ApiError {
                code: 404,
                error: format!("no receiver {id}"),
            })?;
        let obj = body
            .as_object()
            .ok_or_else(|| bad("target: expected a sender object or {}"))?;
        let patch = if obj.is_empty() {
            json!({"sender_id": null, "master_enable": false, "activation": {"mode": "activate_immediate"}})
        } else {
            let sid = obj
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("target: the sender has no id"))?;
            let mut p = json!({"sender_id": sid, "master_enable": true, "activation": {"mode": "activate_immediate"}});
            if let Some(s) = sdp {
                p["transport_file"] = json!({"data": s, "type": "application/sdp"});
            }
            p
        };
        let (_, _, mut eff) = self.patch_receiver(&self.receivers[i].id.clone(), &patch, now)?;
        eff.pop().ok_or_else(|| bad("target: not activated"))
    }
}

/// The SDP with its `c=` line moved from session to media level (RFC 4566
/// §5.7 allows either): IS-05 clients such as the AMWA testing tool read the
/// destination of each leg from its media description.
fn media_level_connection(sdp: &str) -> String {
    let lines: Vec<&str> = sdp.split_inclusive("\r\n").collect();
    let Some(c) = lines.iter().position(|l| l.starts_with("c=")) else {
        return sdp.to_string();
    };
    let Some(m) = lines.iter().position(|l| l.starts_with("m=")) else {
        return sdp.to_string();
    };
    if c > m {
        return sdp.to_string();
    }
    let mut out = String::with_capacity(sdp.len());
    for (i, l) in lines.iter().enumerate() {
        if i == c {
            continue;
        }
        out += l;
        if i == m {
            out += lines[c];
        }
    }
    out
}

/// A leg's value (`null` when absent).
fn lv<'a>(m: &'a Map<String, Value>, k: &str) -> &'a Value {
    m.get(k).unwrap_or(&Value::Null)
}

fn receiver_stream(
    p: &Params,
    base: Option<StreamConfig>,
    iface: &NetInterface,
) -> Option<StreamConfig> {
    if !p.master_enable || p.leg.get("rtp_enabled") == Some(&json!(false)) {
        return None;
    }
    let mut s = base?;
    let mcast: Option<IpAddr> = lv(&p.leg, "multicast_ip")
        .as_str()
        .and_then(|s| s.parse().ok());
    if let Some(m) = mcast {
        s.dest = m;
    }
    if let Some(port) = lv(&p.leg, "destination_port").as_u64() {
        s.port = port as u16;
    }
    s.source = lv(&p.leg, "source_ip")
        .as_str()
        .and_then(|s| s.parse().ok());
    s.iface = Some(iface.name.clone());
    Some(s)
}

fn resolve_receiver_leg(
    leg: &mut Map<String, Value>,
    iface: &NetInterface,
    base: Option<&StreamConfig>,
) {
    let auto = |v: Option<&Value>| v.is_none_or(|v| v == "auto");
    if auto(leg.get("interface_ip")) {
        leg.insert("interface_ip".into(), json!(iface.ip.to_string()));
    }
    if auto(leg.get("destination_port")) {
        leg.insert(
            "destination_port".into(),
            json!(base.map(|b| b.port).unwrap_or(5004)),
        );
    }
    if auto(leg.get("multicast_ip")) {
        leg.insert(
            "multicast_ip".into(),
            json!(
                base.filter(|b| b.dest.is_multicast())
                    .map(|b| b.dest.to_string())
            ),
        );
    }
    if auto(leg.get("source_ip")) {
        leg.insert(
            "source_ip".into(),
            json!(base.and_then(|b| b.source).map(|a| a.to_string())),
        );
    }
    if leg.get("rtp_enabled").is_none() {
        leg.insert("rtp_enabled".into(), json!(true));
    }
}

fn resolve_sender_leg(leg: &mut Map<String, Value>, s: &SenderSetup) {
    let auto = |v: Option<&Value>| v.is_none_or(|v| v == "auto");
    if auto(leg.get("source_ip")) {
        leg.insert("source_ip".into(), json!(s.iface.ip.to_string()));
    }
    if auto(leg.get("destination_ip")) {
        leg.insert("destination_ip".into(), json!(s.stream.dest.to_string()));
    }
    if auto(leg.get("source_port")) {
        leg.insert("source_port".into(), json!(s.stream.port));
    }
    if auto(leg.get("destination_port")) {
        leg.insert("destination_port".into(), json!(s.stream.port));
    }
}

/// The keys of one RTP leg (IS-05 v1.1 `sender_transport_params_rtp`,
/// `receiver_transport_params_rtp`) that this node has.
fn leg_keys(receiver: bool) -> &'static [&'static str] {
    if receiver {
        &[
            "source_ip",
            "multicast_ip",
            "interface_ip",
            "destination_port",
            "rtp_enabled",
        ]
    } else {
        &[
            "source_ip",
            "destination_ip",
            "source_port",
            "destination_port",
            "rtp_enabled",
        ]
    }
}

fn check_leg_value(
    key: &str,
    v: &Value,
    receiver: bool,
    iface: &NetInterface,
) -> Result<(), ApiError> {
    let f = format!("transport_params[0].{key}");
    match key {
        "rtp_enabled" => {
            if !v.is_boolean() {
                return Err(bad(format!("{f}: expected true or false")));
            }
        }
        "destination_port" | "source_port" => {
            let ok = v == "auto"
                || v.as_u64()
                    .is_some_and(|p| (1..=65535).contains(&p) || (key == "source_port" && p == 0));
            if !ok {
                return Err(bad(format!("{f}: expected \"auto\" or a port 1-65535")));
            }
        }
        _ => {
            // Addresses: IPv4 text, "auto" where the schema allows it, or null
            // (receiver source_ip / multicast_ip).
            let nullable = receiver && (key == "source_ip" || key == "multicast_ip");
            if v.is_null() && nullable {
                return Ok(());
            }
            let s = v
                .as_str()
                .ok_or_else(|| bad(format!("{f}: expected an IPv4 address")))?;
            if s == "auto" && !(receiver && key == "multicast_ip") {
                return Ok(());
            }
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| bad(format!("{f}: {s:?} is not an IPv4 address")))?;
            let own = (receiver && key == "interface_ip") || (!receiver && key == "source_ip");
            if own && ip != iface.ip {
                return Err(bad(format!(
                    "{f}: {s} is not this interface's address {} (see /constraints)",
                    iface.ip
                )));
            }
            if receiver && key == "multicast_ip" && !ip.is_multicast() {
                return Err(bad(format!("{f}: {s} is not a multicast address")));
            }
        }
    }
    Ok(())
}

/// The staged parameters after a PATCH `body` (IS-05 v1.1
/// `sender-stage-schema` / `receiver-stage-schema`). Errors name the field.
/// A sender or a receiver resource: what an IS-05 PATCH stages into.
trait Stageable {
    const RECEIVER: bool;
    fn id(&self) -> &str;
    fn iface(&self) -> &NetInterface;
    fn staged(&self) -> &Params;
    fn staged_mut(&mut self) -> &mut Params;
}

impl Stageable for SenderRes {
    const RECEIVER: bool = false;
    fn id(&self) -> &str {
        &self.id
    }
    fn iface(&self) -> &NetInterface {
        &self.setup.iface
    }
    fn staged(&self) -> &Params {
        &self.staged
    }
    fn staged_mut(&mut self) -> &mut Params {
        &mut self.staged
    }
}

impl Stageable for ReceiverRes {
    const RECEIVER: bool = true;
    fn id(&self) -> &str {
        &self.id
    }
    fn iface(&self) -> &NetInterface {
        &self.setup.iface
    }
    fn staged(&self) -> &Params {
        &self.staged
    }
    fn staged_mut(&mut self) -> &mut Params {
        &mut self.staged
    }
}

/// Stages a PATCH `body` into resource `id` of `list` (`kind`: "sender" or
/// "receiver", for the 404 text) and returns its index. Errors: 404 unknown
/// id, 400 a bad field (named, by [`patch_params`]).
fn stage_patch<T: Stageable>(
    list: &mut [T],
    kind: &str,
    id: &str,
    body: &Value,
    now: Tai,
) -> Result<usize, ApiError> {
    let i = list
        .iter()
        .position(|r| r.id() == id)
        .ok_or_else(|| ApiError {
            code: 404,
            error: format!("no {kind} {id}"),
        })?;
    let staged = patch_params(list[i].staged(), body, T::RECEIVER, list[i].iface(), now)?;
    *list[i].staged_mut() = staged;
    Ok(i)
}

fn patch_params(
    old: &Params,
    body: &Value,
    receiver: bool,
    iface: &NetInterface,
    now: Tai,
) -> Result<Params, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object"))?;
    let peer_key = if receiver { "sender_id" } else { "receiver_id" };
    for k in obj.keys() {
        let known = [peer_key, "master_enable", "activation", "transport_params"]
            .contains(&k.as_str())
            || (receiver && k == "transport_file");
        if !known {
            return Err(bad(format!("{k}: not a parameter of this resource")));
        }
    }
    let cancels = obj
        .get("activation")
        .is_some_and(|a| a.get("mode").is_some_and(Value::is_null));
    if old.activation.scheduled() && !cancels {
        return Err(ApiError {
            code: 423,
            error: "a scheduled activation is pending; cancel it first (activation mode null)"
                .into(),
        });
    }
    let mut p = old.clone();
    if let Some(v) = obj.get(peer_key) {
        match v {
            Value::Null => p.peer_id = None,
            Value::String(s) if Uuid::parse_str(s).is_ok() => p.peer_id = Some(s.clone()),
            _ => return Err(bad(format!("{peer_key}: expected a UUID or null"))),
        }
    }
    if let Some(v) = obj.get("master_enable") {
        p.master_enable = v
            .as_bool()
            .ok_or_else(|| bad("master_enable: expected true or false"))?;
    }
    if let Some(tf) = obj.get("transport_file") {
        let tf = tf
            .as_object()
            .ok_or_else(|| bad("transport_file: expected an object"))?;
        for k in tf.keys() {
            if k != "data" && k != "type" {
                return Err(bad(format!("transport_file.{k}: unknown")));
            }
        }
        match tf.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "application/sdp" => {}
            Some(_) => return Err(bad("transport_file.type: expected \"application/sdp\"")),
        }
        match tf.get("data") {
            None | Some(Value::Null) => p.transport_file = None,
            Some(Value::String(sdp)) => {
                let s = StreamConfig::from_sdp(sdp)
                    .map_err(|e| bad(format!("transport_file.data: {e}")))?;
                p.leg.insert(
                    "multicast_ip".into(),
                    json!(s.dest.is_multicast().then(|| s.dest.to_string())),
                );
                p.leg
                    .insert("source_ip".into(), json!(s.source.map(|a| a.to_string())));
                p.leg.insert("destination_port".into(), json!(s.port));
                p.leg.insert("rtp_enabled".into(), json!(true));
                p.transport_file = Some(sdp.clone());
            }
            Some(_) => return Err(bad("transport_file.data: expected SDP text or null")),
        }
    }
    if let Some(tp) = obj.get("transport_params") {
        let legs = tp
            .as_array()
            .ok_or_else(|| bad("transport_params: expected an array"))?;
        if legs.len() != 1 {
            return Err(bad(format!(
                "transport_params: {} legs, this resource has 1",
                legs.len()
            )));
        }
        let leg = legs[0]
            .as_object()
            .ok_or_else(|| bad("transport_params[0]: expected an object"))?;
        for (k, v) in leg {
            if !leg_keys(receiver).contains(&k.as_str()) {
                return Err(bad(format!("transport_params[0].{k}: not supported")));
            }
            check_leg_value(k, v, receiver, iface)?;
        }
        for (k, v) in leg {
            p.leg.insert(k.clone(), v.clone());
        }
    }
    if let Some(a) = obj.get("activation") {
        let a = a
            .as_object()
            .ok_or_else(|| bad("activation: expected an object"))?;
        for k in a.keys() {
            if k != "mode" && k != "requested_time" {
                return Err(bad(format!("activation.{k}: unknown")));
            }
        }
        let mode = match a.get("mode") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(match m.as_str() {
                "activate_immediate" => Mode::Immediate,
                "activate_scheduled_absolute" => Mode::Absolute,
                "activate_scheduled_relative" => Mode::Relative,
                _ => return Err(bad(format!("activation.mode: {m:?} is not a mode"))),
            }),
            Some(_) => return Err(bad("activation.mode: expected a string or null")),
        };
        let requested = match a.get("requested_time") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => {
                Some(Tai::parse(t).map_err(|e| bad(format!("activation.requested_time: {e}")))?)
            }
            Some(_) => return Err(bad("activation.requested_time: expected \"<s>:<ns>\"")),
        };
        p.activation = match mode {
            None => Activation::default(),
            Some(Mode::Immediate) => Activation {
                mode,
                requested: None,
                at: None,
            },
            Some(m) => {
                let r = requested.ok_or_else(|| {
                    bad("activation.requested_time: required for a scheduled activation")
                })?;
                Activation {
                    mode,
                    requested: Some(r),
                    at: Some(if m == Mode::Relative {
                        now.plus_ns(r.0)
                    } else {
                        r
                    }),
                }
            }
        };
    }
    Ok(p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn setup() -> NodeSetup {
        let iface = NetInterface {
            name: "eth0".into(),
            ip: Ipv4Addr::new(10, 0, 0, 2),
            mac: [2, 0, 0, 0, 0, 2],
        };
        let mut tx =
            StreamConfig::from_url("aes67://239.69.2.1:5004?ch=2&enc=L24&rate=48000").unwrap();
        tx.packet_time_us = Some(1000);
        NodeSetup {
            seed: "host".into(),
            hostname: "host".into(),
            label: "aes67 host".into(),
            description: "test".into(),
            tags: BTreeMap::new(),
            host: iface.ip,
            port: 8080,
            interfaces: vec![iface.clone()],
            senders: vec![SenderSetup {
                name: "tone".into(),
                stream: tx,
                iface: iface.clone(),
                frames: 48,
            }],
            receivers: vec![ReceiverSetup {
                name: "studio".into(),
                iface,
                stream: Some(StreamConfig::from_url("aes67://239.69.1.1:5004").unwrap()),
            }],
            ptp: None,
        }
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=gst\r\nc=IN IP4 239.1.2.3/32\r\nt=0 0\r\nm=audio 5006 RTP/AVP 96\r\na=rtpmap:96 L24/48000/2\r\na=ptime:1\r\na=source-filter: incl IN IP4 239.1.2.3 10.0.0.9\r\n";

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = Node::new(setup(), Tai::new(100, 0));
        let b = Node::new(setup(), Tai::new(200, 0));
        assert_eq!(a.node_id(), b.node_id());
        let mut ids: Vec<String> = a
            .all_resources()
            .iter()
            .map(|(_, r)| r["id"].as_str().unwrap().to_string())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "6 resources, 6 ids");
        assert_eq!(n, 6);
    }

    #[test]
    fn immediate_activation_with_an_sdp_plays_it_and_master_enable_false_stops() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let id = n.receiver_ids()[0].clone();
        let body = json!({
            "master_enable": true,
            "transport_file": {"data": SDP, "type": "application/sdp"},
            "activation": {"mode": "activate_immediate"},
        });
        let (code, resp, eff) = n.patch_receiver(&id, &body, Tai::new(101, 0)).unwrap();
        assert_eq!(code, 200);
        assert_eq!(resp["activation"]["activation_time"], "101:0");
        let Effect::Receiver {
            stream: Some(s), ..
        } = &eff[0]
        else {
            panic!("{eff:?}")
        };
        assert_eq!(
            (s.dest.to_string(), s.port, s.iface.as_deref()),
            ("239.1.2.3".into(), 5006, Some("eth0"))
        );
        let active = n.receiver_params(&id, true).unwrap();
        assert_eq!(active["transport_params"][0]["multicast_ip"], "239.1.2.3");
        assert_eq!(active["transport_params"][0]["source_ip"], "10.0.0.9");
        assert_eq!(
            n.receiver_params(&id, false).unwrap()["activation"]["mode"],
            Value::Null
        );
        let (_, _, eff) = n
            .patch_receiver(
                &id,
                &json!({"master_enable": false, "activation": {"mode": "activate_immediate"}}),
                Tai::new(102, 0),
            )
            .unwrap();
        assert!(
            matches!(&eff[0], Effect::Receiver { stream: None, .. }),
            "{eff:?}"
        );
        assert_eq!(n.receivers_json()[0]["subscription"]["active"], false);
    }

    #[test]
    fn scheduled_activations_fire_at_their_time_lock_staged_and_can_be_cancelled() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let id = n.sender_ids()[0].clone();
        let body = json!({
            "transport_params": [{"destination_port": 5010}],
            "activation": {"mode": "activate_scheduled_relative", "requested_time": "2:0"},
        });
        let (code, resp, eff) = n.patch_sender(&id, &body, Tai::new(100, 0)).unwrap();
        assert_eq!((code, eff.len()), (202, 0));
        assert_eq!(resp["activation"]["activation_time"], "102:0");
        let e = n
            .patch_sender(&id, &json!({"master_enable": false}), Tai::new(101, 0))
            .unwrap_err();
        assert_eq!(e.code, 423);
        assert!(n.tick(Tai::new(101, 999_999_999)).is_empty());
        let eff = n.tick(Tai::new(102, 0));
        let Effect::Sender {
            stream: Some(s), ..
        } = &eff[0]
        else {
            panic!("{eff:?}")
        };
        assert_eq!(s.port, 5010);
        assert!(n.sender_sdp(&id).unwrap().contains("m=audio 5010 "));
        // Absolute, then cancelled.
        let body = json!({"activation": {"mode": "activate_scheduled_absolute", "requested_time": "200:0"}});
        assert_eq!(n.patch_sender(&id, &body, Tai::new(103, 0)).unwrap().0, 202);
        assert_eq!(n.next_activation(), Some(Tai::new(200, 0)));
        let (code, _, _) = n
            .patch_sender(
                &id,
                &json!({"activation": {"mode": null}}),
                Tai::new(104, 0),
            )
            .unwrap();
        assert_eq!(code, 200);
        assert!(n.tick(Tai::new(300, 0)).is_empty());
    }

    #[test]
    fn bad_patches_are_refused_naming_the_field() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let rid = n.receiver_ids()[0].clone();
        let sid = n.sender_ids()[0].clone();
        let cases = [
            (
                json!({"transport_params": [{"destination_port": "x"}]}),
                "destination_port",
            ),
            (json!({"transport_params": [{}, {}]}), "2 legs"),
            (
                json!({"transport_params": [{"interface_ip": "10.9.9.9"}]}),
                "interface_ip",
            ),
            (json!({"sender_id": "nope"}), "sender_id"),
            (
                json!({"activation": {"mode": "activate_scheduled_absolute"}}),
                "requested_time",
            ),
            (
                json!({"transport_file": {"data": "garbage", "type": "application/sdp"}}),
                "transport_file.data",
            ),
            (json!({"bogus": 1}), "bogus"),
        ];
        for (b, want) in cases {
            let e = n.patch_receiver(&rid, &b, Tai::new(101, 0)).unwrap_err();
            assert_eq!(e.code, 400, "{b}");
            assert!(e.error.contains(want), "{b}: {}", e.error);
        }
        let e = n
            .patch_sender(
                &sid,
                &json!({"transport_params": [{"source_ip": "1.2.3.4"}]}),
                Tai::new(101, 0),
            )
            .unwrap_err();
        assert!(e.error.contains("source_ip"), "{}", e.error);
        // An empty leg is fine.
        assert_eq!(
            n.patch_sender(&sid, &json!({"transport_params": [{}]}), Tai::new(101, 0))
                .unwrap()
                .0,
            200
        );
    }

    #[test]
    fn the_ptp_clock_and_interfaces_are_in_the_node() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let j = n.node_json();
        assert_eq!(
            j["clocks"],
            json!([{"name": "clk0", "ref_type": "internal"}])
        );
        assert_eq!(j["interfaces"][0]["chassis_id"], "02-00-00-00-00-02");
        assert_eq!(j["interfaces"][0]["port_id"], "02-00-00-00-00-02");
        n.set_ptp(
            Tai::new(101, 0),
            Some(PtpClockInfo {
                gmid: [0x00, 0x1d, 0xc1, 0xff, 0xfe, 0x0a, 0xbc, 0xde],
                locked: true,
                traceable: false,
            }),
        );
        let c = &n.node_json()["clocks"][1];
        assert_eq!(c["ref_type"], "ptp");
        assert_eq!(c["gmid"], "00-1d-c1-ff-fe-0a-bc-de");
        assert_eq!(c["locked"], true);
        assert_eq!(c["version"], "IEEE1588-2008");
        assert_eq!(
            n.take_changes(),
            vec![(Kind::Node, n.node_id().to_string())]
        );
        // The sender's SDP names the interface's MAC, as its port_id.
        let sdp = n.sender_sdp(&n.sender_ids()[0]).unwrap();
        assert!(
            sdp.contains("a=ts-refclk:localmac=02-00-00-00-00-02"),
            "{sdp}"
        );
        // c= at media level, once.
        let m = sdp.find("m=audio").unwrap();
        assert_eq!(sdp.matches("c=IN IP4 239.69.2.1/32").count(), 1, "{sdp}");
        assert!(sdp.find("c=IN IP4").unwrap() > m, "{sdp}");
    }

    #[test]
    fn versions_strictly_increase_and_changes_are_reported_once() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let rid = n.receiver_ids()[0].clone();
        let v0 = n.receivers_json()[0]["version"].clone();
        let imm = json!({"activation": {"mode": "activate_immediate"}});
        n.patch_receiver(&rid, &imm, Tai::new(100, 0)).unwrap();
        n.patch_receiver(&rid, &imm, Tai::new(100, 0)).unwrap();
        let v2 = n.receivers_json()[0]["version"].clone();
        assert_ne!(v0, v2);
        assert_eq!(v2, "100:2");
        assert_eq!(n.take_changes(), vec![(Kind::Receiver, rid)]);
        assert!(n.take_changes().is_empty());
        assert_eq!(n.ver_txt()[5], ("ver_rcv", "2".to_string()));
    }
}
