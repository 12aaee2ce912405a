//! HTTP routing of the IS-04 v1.3 Node API and the IS-05 v1.1 Connection
//! API, sans-IO: a method, a path and a body in, a [`Response`] and the
//! engine [`Effect`]s out. Both APIs share one port (`/x-nmos/node/…`,
//! `/x-nmos/connection/…`).
//!
//! Every response is JSON (`application/json`) except a sender's
//! `/transportfile` (`application/sdp`); errors are IS-04/IS-05 error
//! objects `{"code", "error", "debug"}`. CORS headers go on every response
//! (IS-04 v1.3 "APIs: Server Side Implementation").

use serde_json::{Value, json};

use super::Tai;
use super::model::{ApiError, CONNECTION_API_VERSION, Effect, Kind, NODE_API_VERSION, Node};

/// An HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body (JSON or SDP text).
    pub body: String,
    /// `Location` header, for redirects.
    pub location: Option<String>,
    /// `Allow` header, for 405.
    pub allow: Option<&'static str>,
}

fn ok(status: u16, v: &Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: serde_json::to_string(v).unwrap_or_default(),
        location: None,
        allow: None,
    }
}

fn err(status: u16, error: &str) -> Response {
    ok(
        status,
        &json!({"code": status, "error": error, "debug": Value::Null}),
    )
}

fn not_found() -> Response {
    err(404, "not found")
}

fn method_not_allowed(allow: &'static str) -> Response {
    Response {
        allow: Some(allow),
        ..err(405, "method not allowed")
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        err(e.code, &e.error)
    }
}

/// Handles one request at TAI `now`. `path` is the URL path (a query
/// string is ignored); a trailing `/` is optional. Returns the response
/// and the effects of any activation.
pub fn handle(
    node: &mut Node,
    method: &str,
    path: &str,
    body: &[u8],
    now: Tai,
) -> (Response, Vec<Effect>) {
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if method == "OPTIONS" {
        return (ok(200, &json!({})), Vec::new());
    }
    match segs.as_slice() {
        [] => get_only(method, json!(["x-nmos/"])),
        ["x-nmos"] => get_only(method, json!(["node/", "connection/"])),
        ["x-nmos", "node"] => get_only(method, json!([format!("{NODE_API_VERSION}/")])),
        ["x-nmos", "node", v, rest @ ..] if *v == NODE_API_VERSION => {
            node_api(node, method, rest, body, now)
        }
        ["x-nmos", "connection"] => get_only(method, json!([format!("{CONNECTION_API_VERSION}/")])),
        ["x-nmos", "connection", v, rest @ ..] if *v == CONNECTION_API_VERSION => {
            connection_api(node, method, rest, body, now)
        }
        _ => (not_found(), Vec::new()),
    }
}

fn get_only(method: &str, v: Value) -> (Response, Vec<Effect>) {
    if method == "GET" || method == "HEAD" {
        (ok(200, &v), Vec::new())
    } else {
        (method_not_allowed("GET, HEAD, OPTIONS"), Vec::new())
    }
}

fn parse_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| err(400, &format!("the body is not JSON: {e}")))
}

fn node_api(
    node: &mut Node,
    method: &str,
    rest: &[&str],
    body: &[u8],
    now: Tai,
) -> (Response, Vec<Effect>) {
    let list = |v: Vec<Value>| json!(v);
    match rest {
        [] => get_only(
            method,
            json!([
                "self/",
                "sources/",
                "flows/",
                "devices/",
                "senders/",
                "receivers/"
            ]),
        ),
        ["self"] => get_only(method, node.node_json()),
        ["devices"] => get_only(method, json!([node.device_json()])),
        ["sources"] => get_only(method, list(node.sources_json())),
        ["flows"] => get_only(method, list(node.flows_json())),
        ["senders"] => get_only(method, list(node.senders_json())),
        ["receivers"] => get_only(method, list(node.receivers_json())),
        ["receivers", id, "target"] => {
            if method != "PUT" {
                return (method_not_allowed("PUT, OPTIONS"), Vec::new());
            }
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return (r, Vec::new()),
            };
            match node.put_target(id, &v, None, now) {
                Ok(e) => (ok(202, &v), vec![e]),
                Err(e) => (e.into(), Vec::new()),
            }
        }
        [kind, id] => {
            let k = match *kind {
                "devices" => Kind::Device,
                "sources" => Kind::Source,
                "flows" => Kind::Flow,
                "senders" => Kind::Sender,
                "receivers" => Kind::Receiver,
                _ => return (not_found(), Vec::new()),
            };
            match node.resource(k, id) {
                Some(r) => get_only(method, r),
                None => (not_found(), Vec::new()),
            }
        }
        _ => (not_found(), Vec::new()),
    }
}

fn connection_api(
    node: &mut Node,
    method: &str,
    rest: &[&str],
    body: &[u8],
    now: Tai,
) -> (Response, Vec<Effect>) {
    let ids = |v: Vec<String>| json!(v.iter().map(|i| format!("{i}/")).collect::<Vec<_>>());
    match rest {
        [] => get_only(method, json!(["bulk/", "single/"])),
        ["single"] => get_only(method, json!(["senders/", "receivers/"])),
        ["bulk"] => get_only(method, json!(["senders/", "receivers/"])),
        ["bulk", kind @ ("senders" | "receivers")] => {
            if method != "POST" {
                return (method_not_allowed("POST, OPTIONS"), Vec::new());
            }
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return (r, Vec::new()),
            };
            let Some(items) = v.as_array() else {
                return (err(400, "bulk: expected an array"), Vec::new());
            };
            let mut out = Vec::new();
            let mut effects = Vec::new();
            for it in items {
                let id = it.get("id").and_then(Value::as_str).unwrap_or("");
                let params = it.get("params").cloned().unwrap_or(Value::Null);
                if id.is_empty() || !params.is_object() {
                    return (
                        err(400, "bulk: each item needs \"id\" and \"params\""),
                        Vec::new(),
                    );
                }
                let r = if *kind == "senders" {
                    node.patch_sender(id, &params, now)
                } else {
                    node.patch_receiver(id, &params, now)
                };
                match r {
                    Ok((code, _, e)) => {
                        effects.extend(e);
                        out.push(json!({"id": id, "code": code}));
                    }
                    Err(e) => {
                        out.push(json!({"id": id, "code": e.code, "error": e.error, "debug": null}))
                    }
                }
            }
            (ok(200, &json!(out)), effects)
        }
        ["single", "senders"] => get_only(method, ids(node.sender_ids())),
        ["single", "receivers"] => get_only(method, ids(node.receiver_ids())),
        ["single", "senders", id, rest @ ..] => {
            if !node.sender_ids().iter().any(|s| s == id) {
                return (not_found(), Vec::new());
            }
            match rest {
                [] => get_only(
                    method,
                    json!([
                        "constraints/",
                        "staged/",
                        "active/",
                        "transportfile/",
                        "transporttype/"
                    ]),
                ),
                ["constraints"] => {
                    get_only(method, node.sender_constraints(id).unwrap_or_default())
                }
                ["active"] => get_only(method, node.sender_params(id, true).unwrap_or_default()),
                ["transporttype"] => get_only(method, json!(super::model::TRANSPORT_RTP)),
                ["staged"] => staged(node, method, id, body, now, false),
                ["transportfile"] => {
                    if method != "GET" && method != "HEAD" {
                        return (method_not_allowed("GET, HEAD, OPTIONS"), Vec::new());
                    }
                    match node.sender_sdp(id) {
                        Some(sdp) => (
                            Response {
                                status: 200,
                                content_type: "application/sdp",
                                body: sdp,
                                location: None,
                                allow: None,
                            },
                            Vec::new(),
                        ),
                        None => (not_found(), Vec::new()),
                    }
                }
                _ => (not_found(), Vec::new()),
            }
        }
        ["single", "receivers", id, rest @ ..] => {
            if !node.receiver_ids().iter().any(|s| s == id) {
                return (not_found(), Vec::new());
            }
            match rest {
                [] => get_only(
                    method,
                    json!(["constraints/", "staged/", "active/", "transporttype/"]),
                ),
                ["constraints"] => {
                    get_only(method, node.receiver_constraints(id).unwrap_or_default())
                }
                ["active"] => get_only(method, node.receiver_params(id, true).unwrap_or_default()),
                ["transporttype"] => get_only(method, json!(super::model::TRANSPORT_RTP)),
                ["staged"] => staged(node, method, id, body, now, true),
                _ => (not_found(), Vec::new()),
            }
        }
        _ => (not_found(), Vec::new()),
    }
}

fn staged(
    node: &mut Node,
    method: &str,
    id: &str,
    body: &[u8],
    now: Tai,
    receiver: bool,
) -> (Response, Vec<Effect>) {
    match method {
        "GET" | "HEAD" => {
            let v = if receiver {
                node.receiver_params(id, false)
            } else {
                node.sender_params(id, false)
            };
            (ok(200, &v.unwrap_or_default()), Vec::new())
        }
        "PATCH" => {
            let v = match parse_body(body) {
                Ok(v) => v,
                Err(r) => return (r, Vec::new()),
            };
            let r = if receiver {
                node.patch_receiver(id, &v, now)
            } else {
                node.patch_sender(id, &v, now)
            };
            match r {
                Ok((code, v, e)) => (ok(code, &v), e),
                Err(e) => (e.into(), Vec::new()),
            }
        }
        _ => (method_not_allowed("GET, HEAD, PATCH, OPTIONS"), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmos::model::tests::setup;

    fn get(n: &mut Node, p: &str) -> (u16, Value) {
        let (r, _) = handle(n, "GET", p, b"", Tai::new(100, 0));
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }

    #[test]
    fn the_trees_and_resources_are_served() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        assert_eq!(get(&mut n, "/").1, json!(["x-nmos/"]));
        assert_eq!(get(&mut n, "/x-nmos/node/v1.3/").1[0], "self/");
        let (c, s) = get(&mut n, "/x-nmos/node/v1.3/self");
        assert_eq!((c, s["id"].as_str()), (200, Some(n.node_id())));
        let sid = n.sender_ids()[0].clone();
        assert_eq!(
            get(&mut n, &format!("/x-nmos/node/v1.3/senders/{sid}/")).0,
            200
        );
        assert_eq!(get(&mut n, "/x-nmos/node/v1.3/senders/nope").0, 404);
        assert_eq!(get(&mut n, "/x-nmos/node/v1.2/self").0, 404);
        let (r, _) = handle(
            &mut n,
            "GET",
            &format!("/x-nmos/connection/v1.1/single/senders/{sid}/transportfile"),
            b"",
            Tai::new(100, 0),
        );
        assert_eq!((r.status, r.content_type), (200, "application/sdp"));
        assert!(r.body.contains("a=rtpmap:96 L24/48000/2"), "{}", r.body);
        let (r, _) = handle(
            &mut n,
            "GET",
            "/x-nmos/connection/v1.1/bulk/senders",
            b"",
            Tai::new(100, 0),
        );
        assert_eq!(r.status, 405);
        assert_eq!(r.allow, Some("POST, OPTIONS"));
    }

    #[test]
    fn bulk_patches_each_and_reports_each() {
        let mut n = Node::new(setup(), Tai::new(100, 0));
        let sid = n.sender_ids()[0].clone();
        let body = json!([
            {"id": sid, "params": {"transport_params": [{"destination_port": 6000}], "activation": {"mode": "activate_immediate"}}},
            {"id": "00000000-0000-0000-0000-000000000000", "params": {}},
        ]);
        let (r, e) = handle(
            &mut n,
            "POST",
            "/x-nmos/connection/v1.1/bulk/senders",
            body.to_string().as_bytes(),
            Tai::new(100, 0),
        );
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (v[0]["code"].as_u64(), v[1]["code"].as_u64()),
            (Some(200), Some(404))
        );
        assert_eq!(e.len(), 1);
    }
}
