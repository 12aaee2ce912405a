//! The IS-04 v1.3 registration client's decisions, sans-IO ("Behaviour:
//! Registration"): which registry to use (the lowest `pri` among the
//! advertised ones that serve `v1.3` over `http`), what to send next (the
//! resources in referential order, then a heartbeat every 5 s), and what an
//! answer means:
//!
//! - a 5xx or no answer: that registry is failed; the next one by priority
//!   gets a heartbeat first (a cluster already knows the node), and the
//!   full registration only if it answers 404;
//! - 404 to a heartbeat: the registry forgot the node; register everything
//!   again;
//! - 200 to the *first* POST of the node: the registry holds a stale copy;
//!   DELETE the node, then register again;
//! - other 4xx: the resource is refused (logged by the caller), the rest
//!   goes on.
//!
//! With no usable registry the node is in peer-to-peer mode
//! ([`Registration::peer_to_peer`]) and the caller advertises
//! `_nmos-node._tcp`.

use std::collections::VecDeque;

use serde_json::{Value, json};

use super::model::{Kind, NODE_API_VERSION, Node};
use crate::units::{MonoNs, Nanos};

/// Heartbeat interval (IS-04 v1.3 "Heartbeating": 5 s by default).
pub const HEARTBEAT: Nanos = Nanos::from_secs(5);
/// How long a failed registry is passed over (unless re-advertised).
pub const FAILED_FOR: Nanos = Nanos::from_secs(60);

/// A registry found by DNS-SD (`_nmos-register._tcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAd {
    /// The DNS-SD instance name (the registry's identity here).
    pub name: String,
    /// Base URL, `http://ADDRESS:PORT`.
    pub url: String,
    /// `pri` TXT record: lower is preferred.
    pub pri: u32,
}

/// Whether a DNS-SD advertisement's TXT records (`api_ver`, `api_proto`,
/// `api_auth`) name a registry this node can use: IS-04 `v1.3` over plain
/// HTTP without authorization.
pub fn usable(api_ver: Option<&str>, api_proto: Option<&str>, api_auth: Option<&str>) -> bool {
    api_ver.is_some_and(|v| v.split(',').any(|x| x.trim() == NODE_API_VERSION))
        && api_proto.is_none_or(|p| p == "http")
        && api_auth.is_none_or(|a| a != "true")
}

/// One HTTP call to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `POST` or `DELETE`.
    pub method: &'static str,
    /// Full URL.
    pub url: String,
    /// JSON body (`None`: empty, as heartbeats and DELETEs are).
    pub body: Option<String>,
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status.
    Status(u16),
    /// No answer: refused, unreachable, timed out.
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Post { kind: Kind, body: Value },
    DeleteNode,
    Heartbeat,
}

/// The registration state. See the module docs.
#[derive(Debug, Default)]
pub struct Registration {
    ads: Vec<RegistryAd>,
    failed: Vec<(String, MonoNs)>,
    current: Option<RegistryAd>,
    queue: VecDeque<Req>,
    in_flight: Option<Req>,
    next_hb: Option<MonoNs>,
    /// The node is registered at (a member of) the registry cluster.
    known: bool,
    /// The next node POST is the first one at this registry.
    first_post: bool,
    /// Counters for the status.
    pub errors: u64,
}

impl Registration {
    /// A client with no registry yet.
    pub fn new() -> Registration {
        Registration::default()
    }

    /// The registry in use, if any.
    pub fn current(&self) -> Option<&RegistryAd> {
        self.current.as_ref()
    }

    /// True when no registry is usable: advertise the Node API for
    /// peer-to-peer discovery.
    pub fn peer_to_peer(&self) -> bool {
        self.current.is_none()
    }

    /// The registries advertised now (from DNS-SD). An advertisement that
    /// reappears clears its failure mark. When none is left, the next one
    /// found gets a full registration.
    pub fn set_ads(&mut self, ads: Vec<RegistryAd>) {
        self.failed.retain(|(n, _)| {
            ads.iter().any(|a| &a.name == n) && self.ads.iter().any(|a| &a.name == n)
        });
        if ads.is_empty() {
            self.known = false;
        }
        if let Some(c) = &self.current
            && !ads.iter().any(|a| a.name == c.name)
        {
            self.current = None;
        }
        self.ads = ads;
    }

    /// Resources changed on the node: POST them again (when registered).
    pub fn changed(&mut self, node: &Node, changes: &[(Kind, String)]) {
        if !self.known {
            return;
        }
        for (k, id) in changes {
            if let Some(body) = node.resource(*k, id) {
                self.queue.push_back(Req::Post { kind: *k, body });
            }
        }
    }

    fn pick(&mut self, now: MonoNs) -> Option<RegistryAd> {
        self.failed
            .retain(|(_, t)| now.since(*t).as_ns() < FAILED_FOR.as_ns());
        let mut c: Vec<&RegistryAd> = self
            .ads
            .iter()
            .filter(|a| !self.failed.iter().any(|(n, _)| n == &a.name))
            .collect();
        c.sort_by_key(|a| (a.pri, a.name.clone()));
        c.first().map(|a| (*a).clone())
    }

    fn register_all(&mut self, node: &Node) {
        self.queue.clear();
        for (kind, body) in node.all_resources() {
            self.queue.push_back(Req::Post { kind, body });
        }
        self.first_post = true;
        self.next_hb = None;
    }

    /// The next call to make at `now`, if any (one at a time: call
    /// [`Self::done`] with its outcome first).
    pub fn poll(&mut self, now: MonoNs, node: &Node) -> Option<Call> {
        if self.in_flight.is_some() {
            return None;
        }
        if self.current.is_none() {
            let r = self.pick(now)?;
            self.current = Some(r);
            if self.known {
                // Failover: the cluster knows us; a heartbeat first.
                self.next_hb = Some(now);
            } else {
                self.register_all(node);
            }
        }
        let base = format!(
            "{}/x-nmos/registration/{NODE_API_VERSION}",
            self.current.as_ref()?.url
        );
        let req = if self.next_hb.is_some_and(|t| now >= t) {
            self.next_hb = Some(now.add(HEARTBEAT));
            Req::Heartbeat
        } else {
            self.queue.pop_front()?
        };
        let call = match &req {
            Req::Heartbeat => Call {
                method: "POST",
                url: format!("{base}/health/nodes/{}", node.node_id()),
                body: None,
            },
            Req::DeleteNode => Call {
                method: "DELETE",
                url: format!("{base}/resource/nodes/{}", node.node_id()),
                body: None,
            },
            Req::Post { kind, body } => Call {
                method: "POST",
                url: format!("{base}/resource"),
                body: Some(json!({"type": kind.name(), "data": body}).to_string()),
            },
        };
        self.in_flight = Some(req);
        Some(call)
    }

    /// The outcome of the call [`Self::poll`] gave, at `now`. Returns a
    /// line for the log when something went wrong.
    pub fn done(&mut self, now: MonoNs, outcome: Outcome, node: &Node) -> Option<String> {
        let req = self.in_flight.take()?;
        let name = self
            .current
            .as_ref()
            .map(|c| c.url.clone())
            .unwrap_or_default();
        let code = match outcome {
            Outcome::Status(c) if c < 500 => c,
            _ => {
                // Failover (IS-04 "Registration: Error handling").
                self.errors += 1;
                if let Some(c) = self.current.take() {
                    self.failed.push((c.name, now));
                }
                if matches!(req, Req::Post { .. } | Req::DeleteNode) {
                    self.queue.push_front(req);
                }
                return Some(format!(
                    "registry {name}: {}; failing over",
                    match outcome {
                        Outcome::Status(c) => format!("HTTP {c}"),
                        Outcome::Failed => "no answer".into(),
                    }
                ));
            }
        };
        match (&req, code) {
            (Req::Heartbeat, 200..=299) => None,
            (Req::Heartbeat, 404) => {
                self.known = false;
                self.register_all(node);
                Some(format!("registry {name}: heartbeat 404, registering again"))
            }
            (
                Req::Post {
                    kind: Kind::Node, ..
                },
                200,
            ) if self.first_post => {
                // A stale copy of us: delete it, then register afresh.
                self.first_post = false;
                let rest: Vec<Req> = self.queue.drain(..).collect();
                self.queue.push_back(Req::DeleteNode);
                self.queue.push_back(req.clone());
                self.queue.extend(rest);
                Some(format!(
                    "registry {name}: node already registered (200); deleting and registering again"
                ))
            }
            (
                Req::Post {
                    kind: Kind::Node, ..
                },
                200..=299,
            ) => {
                self.first_post = false;
                self.known = true;
                self.next_hb = Some(now.add(HEARTBEAT));
                None
            }
            (Req::Post { .. } | Req::DeleteNode, 200..=299) => None,
            (_, c) => {
                self.errors += 1;
                Some(format!("registry {name}: HTTP {c} to {req:?}"))
            }
        }
    }

    /// The calls that withdraw the node (DELETE of the node: the registry
    /// drops its children), for shutdown.
    pub fn withdraw(&self, node: &Node) -> Option<Call> {
        let c = self.current.as_ref()?;
        self.known.then(|| Call {
            method: "DELETE",
            url: format!(
                "{}/x-nmos/registration/{NODE_API_VERSION}/resource/nodes/{}",
                c.url,
                node.node_id()
            ),
            body: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmos::Tai;
    use crate::nmos::model::tests::setup;

    fn ad(n: &str, pri: u32) -> RegistryAd {
        RegistryAd {
            name: n.into(),
            url: format!("http://{n}"),
            pri,
        }
    }

    fn t(ms: u64) -> MonoNs {
        MonoNs::from_ns(ms * 1_000_000)
    }

    /// Runs calls answered by `answer` until none is due; returns them.
    fn run(
        r: &mut Registration,
        n: &Node,
        now: MonoNs,
        answer: &mut dyn FnMut(&Call) -> Outcome,
    ) -> Vec<Call> {
        let mut v = Vec::new();
        while let Some(c) = r.poll(now, n) {
            let o = answer(&c);
            r.done(now, o, n);
            v.push(c);
        }
        v
    }

    #[test]
    fn txt_records_decide_usability() {
        assert!(usable(Some("v1.2,v1.3"), Some("http"), Some("false")));
        assert!(!usable(Some("v9.0"), Some("http"), None));
        assert!(!usable(Some("v1.3"), Some("invalid"), None));
        assert!(!usable(Some("v1.3"), Some("http"), Some("true")));
    }

    #[test]
    fn registers_in_order_heartbeats_and_fails_over_with_a_heartbeat_first() {
        let n = Node::new(setup(), Tai::new(100, 0));
        let mut r = Registration::new();
        assert!(r.peer_to_peer());
        r.set_ads(vec![ad("b", 10), ad("a", 0)]);
        let calls = run(&mut r, &n, t(0), &mut |_| Outcome::Status(201));
        let kinds: Vec<String> = calls
            .iter()
            .map(|c| {
                let v: Value = serde_json::from_str(c.body.as_deref().unwrap()).unwrap();
                v["type"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            ["node", "device", "source", "flow", "sender", "receiver"]
        );
        assert!(
            calls
                .iter()
                .all(|c| c.url == "http://a/x-nmos/registration/v1.3/resource")
        );
        assert!(!r.peer_to_peer());
        // Nothing until the heartbeat is due, 5 s after the node POST.
        assert!(r.poll(t(4999), &n).is_none());
        let hb = r.poll(t(5000), &n).unwrap();
        assert_eq!(
            hb.url,
            format!(
                "http://a/x-nmos/registration/v1.3/health/nodes/{}",
                n.node_id()
            )
        );
        assert_eq!(hb.body, None);
        // The registry fails: the next one gets a heartbeat, not a registration.
        assert!(r.done(t(5000), Outcome::Status(503), &n).is_some());
        let hb = r.poll(t(5001), &n).unwrap();
        assert!(
            hb.url
                .starts_with("http://b/x-nmos/registration/v1.3/health/nodes/"),
            "{hb:?}"
        );
        r.done(t(5001), Outcome::Status(200), &n);
        assert!(r.poll(t(9000), &n).is_none());
        assert!(r.poll(t(10_001), &n).is_some());
        // 404 to a heartbeat: everything again.
        r.done(t(10_001), Outcome::Status(404), &n);
        let calls = run(&mut r, &n, t(10_002), &mut |_| Outcome::Status(201));
        assert_eq!(calls.len(), 6);
        // A timeout with no other registry: peer-to-peer.
        let hb = r.poll(t(15_002), &n).unwrap();
        assert!(hb.url.contains("/health/"));
        r.done(t(15_002), Outcome::Failed, &n);
        assert!(r.poll(t(15_003), &n).is_none());
        assert!(r.peer_to_peer());
    }

    #[test]
    fn a_200_to_the_first_node_post_deletes_and_registers_again() {
        let n = Node::new(setup(), Tai::new(100, 0));
        let mut r = Registration::new();
        r.set_ads(vec![ad("a", 0)]);
        let mut first = true;
        let calls = run(&mut r, &n, t(0), &mut |c| {
            if first && c.method == "POST" {
                first = false;
                Outcome::Status(200)
            } else {
                Outcome::Status(if c.method == "DELETE" { 204 } else { 201 })
            }
        });
        let m: Vec<&str> = calls.iter().map(|c| c.method).collect();
        assert_eq!(m[..3], ["POST", "DELETE", "POST"]);
        assert!(
            calls[1]
                .url
                .ends_with(&format!("/resource/nodes/{}", n.node_id()))
        );
        assert_eq!(calls.len(), 8);
    }

    #[test]
    fn changes_are_posted_and_a_readvertised_registry_is_used_again() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let mut r = Registration::new();
        r.set_ads(vec![ad("a", 0)]);
        run(&mut r, &n, t(0), &mut |_| Outcome::Status(201));
        let rid = n.receiver_ids()[0].clone();
        n.patch_receiver(
            &rid,
            &json!({"activation": {"mode": "activate_immediate"}}),
            Tai::new(101, 0),
        )
        .unwrap();
        let ch = n.take_changes();
        r.changed(&n, &ch);
        let c = run(&mut r, &n, t(1), &mut |_| Outcome::Status(200));
        assert_eq!(c.len(), 1);
        assert!(c[0].body.as_deref().unwrap().contains("\"receiver\""));
        // All gone, then back: a full registration.
        r.set_ads(vec![]);
        assert!(r.peer_to_peer());
        r.set_ads(vec![ad("a", 0)]);
        assert_eq!(
            run(&mut r, &n, t(2), &mut |_| Outcome::Status(201)).len(),
            6
        );
    }
}
