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
