//! The add-on's own URL parameters, shared by `aes67://GROUP:PORT` streams
//! ([`crate::stream`]) and `aes67://sap/NAME` streams ([`crate::sapdir`]):
//! `fill=` and `jitter=`. A leaf: it imports only [`crate::errors`] and
//! [`crate::state`]'s limits.

use crate::errors::OpenError;

/// What a stream hands BASS when fewer frames are buffered than asked for
/// (URL parameter `fill=`, an add-on extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// `fill=silence` (default, as the seeds' add-on): always the full
    /// request, silence after the buffered frames, counted as an underrun.
    Silence,
    /// `fill=available`: decode streams get only the buffered frames
    /// (possibly none), never invented samples; the caller pulls again later.
    /// Playing streams always behave as [`Fill::Silence`].
    Available,
}

impl Fill {
    /// Parses a `fill=` value: `silence` or `available`.
    ///
    /// Errors: [`OpenError`] (BASS_ERROR_ILLPARAM) naming `fill=`.
    pub fn parse(v: &str) -> Result<Fill, OpenError> {
        match v {
            "silence" => Ok(Fill::Silence),
            "available" => Ok(Fill::Available),
            _ => Err(OpenError::url(format!(
                "invalid fill mode (expected silence or available) in fill={v}"
            ))),
        }
    }
}

/// Parses the URL's `jitter=` (ms) in the range of the `JITTER` config
/// option, [`crate::state::JITTER_MIN_MS`]-[`crate::state::JITTER_MAX_MS`]:
/// the stream's playout buffer spans about twice the jitter + 250 ms, so the
/// bound caps its memory (at most 64 MiB at 96 kHz x 64 channels).
///
/// Errors: BASS_ERROR_ILLPARAM naming `jitter=` and the range.
pub fn parse_jitter(v: &str) -> Result<u32, OpenError> {
    use crate::state::{JITTER_MAX_MS, JITTER_MIN_MS};
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|j| (JITTER_MIN_MS..=JITTER_MAX_MS).contains(j))
        .ok_or_else(|| {
            OpenError::url(format!(
                "invalid jitter in jitter={v} (allowed {JITTER_MIN_MS}-{JITTER_MAX_MS} ms, as BASS_CONFIG_AES67_JITTER)"
            ))
        })
}
