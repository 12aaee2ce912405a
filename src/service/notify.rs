//! systemd notifications (`Type=notify`) through the sd-notify crate:
//! READY=1, STATUS=, RELOADING=1, STOPPING=1 and WATCHDOG=1. Without
//! `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Sends the service's notifications; WATCHDOG=1 only when asked with a
/// passing health check, at half the `WATCHDOG_USEC` interval.
pub struct Notifier {
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: String,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// Reads `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment.
    pub fn new() -> Notifier {
        Notifier {
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: None,
            last_status: String::new(),
        }
    }

    fn send(&self, s: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(s) {
            tracing::debug!("sd_notify: {e}");
        }
    }

    /// READY=1 with a STATUS= line.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_status = status.into();
    }

    /// STATUS=, when it changed.
    pub fn status(&mut self, status: &str) {
        if status != self.last_status {
            self.send(&[NotifyState::Status(status)]);
            self.last_status = status.into();
        }
    }

    /// RELOADING=1 (with MONOTONIC_USEC, as systemd ≥ 253 wants).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(m) => self.send(&[NotifyState::Reloading, m]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// STOPPING=1.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// Sends WATCHDOG=1 if the watchdog is on, `healthy` is true and half
    /// the interval has passed since the last one. A failing health check
    /// sends nothing, so systemd restarts the service when it lasts.
    pub fn watchdog(&mut self, healthy: bool) {
        let Some(iv) = self.watchdog else { return };
        if !healthy {
            return;
        }
        if self.last_ping.is_none_or(|t| t.elapsed() >= iv / 2) {
            self.send(&[NotifyState::Watchdog]);
            self.last_ping = Some(Instant::now());
        }
    }
}
