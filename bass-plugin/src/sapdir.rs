//! SAP in the add-on (RFC 2974): `aes67://sap/NAME` streams, and the list
//! of announced sessions (`BASS_CONFIG_AES67_SAP_SESSIONS`).
//!
//! A SAP listener ([`aes67::engine::sap::SapHandle`], a control-plane
//! thread, never the audio thread) on the INTERFACE option's interface
//! starts on the first read of `SAP_SESSIONS` and runs until
//! `BASS_SetConfigPtr(SAP_SESSIONS, NULL)` or unload (state in
//! [`crate::state`]). While it runs the add-on stays mapped: a running thread
//! of ours pins the library (glibc), as the PTP slave does. Opening
//! `aes67://sap/NAME` uses that listener when it runs on the stream's
//! interface, else a temporary one that stops once the name is resolved.

#[cfg(engine)]
use aes67::media::stream::StreamConfig;

use crate::errors::OpenError;
#[cfg(engine)]
use crate::state::StreamDefaults;
use crate::urlparam::{Fill, parse_jitter};

/// Default wait for the announcement of `aes67://sap/NAME`, ms.
pub const DEFAULT_TIMEOUT_MS: u32 = 5000;

/// A parsed `aes67://sap/NAME[?iface=&jitter=&fill=&timeout=MS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SapUrl {
    /// The session name (URL-decoded): exact, or a unique prefix.
    pub name: String,
    /// `iface=` / `interface=`: where to listen and receive.
    pub iface: Option<String>,
    /// `jitter=`, ms.
    pub jitter_ms: Option<u32>,
    /// `fill=`.
    pub fill: Fill,
    /// `timeout=`: how long to wait for the announcement, ms (0-60000).
    pub timeout_ms: u32,
}

/// `Some` when `url` is an `aes67://sap/...` URL, with its parts or the
/// error naming the field (BASS_ERROR_ILLPARAM); `None` for other URLs.
pub fn parse_sap_url(url: &str) -> Option<Result<SapUrl, OpenError>> {
    let u = url::Url::parse(url.trim()).ok()?;
    if !u.scheme().eq_ignore_ascii_case("aes67") || u.host_str() != Some("sap") {
        return None;
    }
    Some(parse_parts(&u))
}

fn parse_parts(u: &url::Url) -> Result<SapUrl, OpenError> {
    let raw = u.path().trim_start_matches('/');
    let name = url::form_urlencoded::parse(format!("n={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(OpenError::url(
            "missing session name in aes67://sap/NAME (URL-encoded)",
        ));
    }
    let mut s = SapUrl {
        name,
        iface: None,
        jitter_ms: None,
        fill: Fill::Silence,
        timeout_ms: DEFAULT_TIMEOUT_MS,
    };
    for (k, v) in u.query_pairs() {
        let (k, v) = (k.as_ref(), v.as_ref());
        let num = |max: u32| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| OpenError::url(format!("invalid value (0-{max}) in {k}={v}")))
        };
        match k {
            "iface" | "interface" if !v.is_empty() => s.iface = Some(v.to_owned()),
            "jitter" => s.jitter_ms = Some(parse_jitter(v)?),
            "timeout" => s.timeout_ms = num(60_000)?,
            "fill" => s.fill = Fill::parse(v)?,
            _ => {
                return Err(OpenError::url(format!(
                    "parameter not allowed with aes67://sap/ in {k}={v}"
                )));
            }
        }
    }
    Ok(s)
}

/// The listener on `iface` (started on first use).
#[cfg(engine)]
fn with_listener<T>(
    iface: Option<&str>,
    f: impl FnOnce(&aes67::engine::sap::SapHandle) -> T,
) -> Result<T, String> {
    let key = iface.unwrap_or("").to_owned();
    let mut l = crate::state::lock(&crate::state::SAP_LISTENERS);
    if !l.iter().any(|(k, _)| *k == key) {
        let h = aes67::engine::sap::SapHandle::start(aes67::engine::sap::SapOptions {
            iface: iface.map(str::to_owned),
            ..Default::default()
        })
        .map_err(|e| format!("SAP: {e}"))?;
        l.push((key.clone(), h));
    }
    let (_, h) = l.iter().find(|(k, _)| *k == key).expect("just added");
    Ok(f(h))
}

/// Starts the listener on the INTERFACE option's interface if it is not
/// running (the first read of `SAP_SESSIONS`; `ffi` calls it on a thread of
/// its own, see `on_fresh_thread` there).
#[cfg(engine)]
pub fn ensure_default_listener() {
    let iface = crate::state::stream_defaults().iface;
    let _ = with_listener(iface.as_deref(), |_| ());
}

/// Stops every SAP listener (add-on unload).
#[cfg(engine)]
pub fn shutdown() {
    let all = std::mem::take(&mut *crate::state::lock(&crate::state::SAP_LISTENERS));
    for (_, h) in all {
        h.stop();
    }
}

/// Waits up to `u.timeout_ms` for the session and returns its stream, with
/// the URL's and the config options' interface and jitter.
///
/// Errors: BASS_ERROR_FILEOPEN when it is not heard in time (the text names
/// the timeout and the sessions heard) or the listener cannot start;
/// BASS_ERROR_ILLPARAM for an ambiguous prefix or an unplayable SDP.
#[cfg(engine)]
pub fn resolve(u: &SapUrl, defaults: &StreamDefaults) -> Result<(StreamConfig, Fill), OpenError> {
    use aes67::sap::directory::{FindError, find};
    let iface = u.iface.clone().or_else(|| defaults.iface.clone());
    let key = iface.clone().unwrap_or_default();
    let shared = crate::state::lock(&crate::state::SAP_LISTENERS)
        .iter()
        .any(|(k, _)| *k == key);
    let temp = if shared {
        None
    } else {
        Some(
            aes67::engine::sap::SapHandle::start(aes67::engine::sap::SapOptions {
                iface: iface.clone(),
                ..Default::default()
            })
            .map_err(|e| OpenError::open(format!("SAP: {e}")))?,
        )
    };
    let t0 = std::time::Instant::now();
    let session = loop {
        let snap = match &temp {
            Some(h) => h.snapshot(),
            None => with_listener(iface.as_deref(), |h| h.snapshot()).map_err(OpenError::open)?,
        };
        match find(&snap.sessions, &u.name) {
            Ok(s) => break s.clone(),
            Err(e @ FindError::Ambiguous(..)) => return Err(OpenError::url(e.to_string())),
            Err(FindError::NotFound(_)) => {}
        }
        if t0.elapsed().as_millis() >= u128::from(u.timeout_ms) {
            let heard: Vec<String> = snap
                .sessions
                .iter()
                .map(|s| format!("{:?}", s.name))
                .collect();
            return Err(OpenError::open(format!(
                "no SAP session {:?} heard within {} ms (timeout=); heard: [{}]",
                u.name,
                u.timeout_ms,
                heard.join(", ")
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut cfg = session.stream.map_err(|e| {
        OpenError::url(format!(
            "SAP session {:?} cannot be played: {e}",
            session.name
        ))
    })?;
    cfg.iface = iface;
    cfg.jitter_ms = u.jitter_ms.unwrap_or(defaults.jitter_ms);
    Ok((cfg, u.fill))
}

/// The sessions heard on the INTERFACE option's interface, one per line:
/// `NAME<TAB>GROUP:PORT<TAB>ENC/RATE/CH<TAB>PTIME_MS<TAB>CLOCK<TAB>AGE_S`
/// (`-` where unknown; unplayable sessions show `-` and the reason as the
/// format). The first call starts the listener and returns what was heard
/// so far (nothing): call again after an announcement interval.
#[cfg(engine)]
pub fn sessions_text() -> String {
    let iface = crate::state::stream_defaults().iface;
    let Ok(snap) = with_listener(iface.as_deref(), |h| h.snapshot()) else {
        return String::new();
    };
    let now = aes67::units::MonoNs::now();
    let mut out = String::new();
    for s in &snap.sessions {
        let age = now.since(s.last_heard).as_secs_f64().max(0.0);
        let name = s.name.replace(['\t', '\n'], " ");
        match &s.stream {
            Ok(c) => {
                let clock = match (c.ptp_grandmaster(), &c.ts_refclk) {
                    (Some((gm, d)), _) => format!(
                        "{}:{d}",
                        gm.0.iter()
                            .map(|b| format!("{b:02X}"))
                            .collect::<Vec<_>>()
                            .join("-")
                    ),
                    (None, Some(r)) => r.clone(),
                    (None, None) => "-".into(),
                };
                let pt = c
                    .packet_time_us
                    .map(|p| format!("{}", f64::from(p) / 1000.0))
                    .unwrap_or_else(|| "-".into());
                out += &format!(
                    "{name}\t{}:{}\t{}/{}/{}\t{pt}\t{clock}\t{age:.0}\n",
                    c.dest,
                    c.port,
                    c.encoding.name(),
                    c.sample_rate,
                    c.channels
                );
            }
            Err(e) => {
                out += &format!(
                    "{name}\t-\t{}\t-\t-\t{age:.0}\n",
                    e.to_string().replace(['\t', '\n'], " ")
                )
            }
        }
    }
    out
}

/// Without the engine there is no listener: no sessions.
#[cfg(not(engine))]
pub fn sessions_text() -> String {
    String::new()
}

/// Without the engine there is no listener to stop.
#[cfg(not(engine))]
pub fn shutdown() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sap_urls_parse_and_errors_name_the_field() {
        assert!(parse_sap_url("aes67://239.1.1.1:5004").is_none());
        assert!(parse_sap_url("http://sap/x").is_none());
        let u = parse_sap_url(
            "aes67://sap/Studio%201%20%2B%20B?iface=eth1&jitter=20&timeout=2000&fill=available",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            u,
            SapUrl {
                name: "Studio 1 + B".into(),
                iface: Some("eth1".into()),
                jitter_ms: Some(20),
                fill: Fill::Available,
                timeout_ms: 2000
            }
        );
        let u = parse_sap_url("aes67://sap/pw tx").unwrap().unwrap();
        assert_eq!(
            (u.name.as_str(), u.timeout_ms),
            ("pw tx", DEFAULT_TIMEOUT_MS)
        );
        for (url, needle) in [
            ("aes67://sap/", "missing session name"),
            ("aes67://sap/x?timeout=99999", "timeout=99999"),
            (
                "aes67://sap/x?ch=2",
                "not allowed with aes67://sap/ in ch=2",
            ),
            ("aes67://sap/x?fill=maybe", "fill=maybe"),
            // the same 1-1000 ms as aes67://GROUP:PORT and BASS_CONFIG_AES67_JITTER
            (
                "aes67://sap/x?jitter=10000",
                "jitter=10000 (allowed 1-1000 ms",
            ),
            ("aes67://sap/x?jitter=0", "jitter=0"),
        ] {
            let e = parse_sap_url(url).unwrap().unwrap_err();
            assert!(e.text.contains(needle), "{url}: {}", e.text);
        }
    }
}
