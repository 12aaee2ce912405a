//! BASS 2.4 add-on for AES67: `BASS_StreamCreateURL("aes67://GROUP:PORT?...")`
//! opens a receive stream of the aes67 engine as a BASS float stream.
//!
//! Drop-in compatible with the seeds' add-on (BassAES67): the same URL
//! parameters and aliases, channel type 0x1f200 and config ids
//! 0x20000-0x2001A (see [`config`], `bass_aes67.h`). Built as
//! `libbass_aes67.so` / `bass_aes67.dll`; load it with `BASS_PluginLoad`.
//!
//! Layout:
//! - `ffi` (private): the add-on ABI, the only module with `unsafe`;
//! - [`state`]: all process-wide state (option values, static string
//!   buffers, the open-stream registry, the PTP slave slot);
//! - [`counters`]: per-stream counters (a leaf);
//! - [`config`]: the config options; [`stats`]: the clock status and stats line;
//! - [`urlparam`]: the add-on's own URL parameters (`fill=`, `jitter=`);
//! - [`stream`]: URL → engine config, the STREAMPROC fill;
//! - [`sapdir`]: `aes67://sap/NAME` and the SAP session list;
//! - `engine`: the seam to the engine's receiver (absent from Windows builds
//!   without the `windows-engine` feature: streams then fail with error 37);
//! - `ptpslave`: the one in-process PTP slave and the streams' PTP media
//!   clock (Linux);
//! - `output`: the output side (`BASS_AES67_Output*`): a BASS channel read
//!   with `BASS_ChannelGetData` into the engine's sender (and its registry
//!   of outputs, process-wide state kept there to keep the graph acyclic);
//! - [`errors`]: the BASS error codes the add-on sets.
//!
//! The `crate::` imports form a DAG (no cycles): `counters ← state ←
//! {errors, ptpslave}`; `stats ← {state, counters, ptpslave}`; `config ←
//! {state, stats}`; `engine ← {errors, ptpslave}`; `urlparam ← {errors,
//! state}`; `sapdir ← {errors, state, urlparam}`; `stream ← {state,
//! counters, errors, steer, engine, ptpslave, sapdir, urlparam}`;
//! `output ← {errors, state, ptpslave}`; `ffi ← {config, errors, stream,
//! ptpslave, output}`.
#![warn(missing_docs)]

pub mod config;
pub mod counters;
#[cfg(engine)]
pub mod engine;
pub mod errors;
#[allow(unsafe_code)]
mod ffi;
#[cfg(engine)]
pub mod output;
#[cfg(engine)]
pub mod ptpslave;
pub mod sapdir;
pub mod state;
pub mod stats;
#[cfg(engine)]
pub mod steer;
pub mod stream;
pub mod urlparam;
