//! BASS error codes the add-on sets (`BASS_ErrorGetCode()` after a failed
//! call), and the text of the last failure (`BASS_AES67_GetLastErrorText()`).
//!
//! | code | name | when |
//! |---|---|---|
//! | 0 | BASS_OK | stream created |
//! | 2 | BASS_ERROR_FILEOPEN | the engine could not open the stream (socket, bind, multicast join, playout buffer allocation, `sdp=` file not found or unreadable) |
//! | 8 | BASS_ERROR_INIT | BASS's add-on function table could not be found (BASS too old or not loaded) |
//! | 20 | BASS_ERROR_ILLPARAM | an `aes67://` URL that does not parse (bad group, port or parameter, `jitter=` outside 1-1000 ms; the text names it); an `sdp=` name or file refused (UNC, device or pseudo-file path, not a regular file, over 64 KiB); also every rejected `BASS_SetConfig` (BASS's own code for a FALSE config proc) |
//! | 37 | BASS_ERROR_NOTAVAIL | this build has no engine (Windows without the `windows-engine` feature) |
//! | 41 | BASS_ERROR_FILEFORM | not an `aes67://` URL: declined so BASS tries its other handlers |
//! | -1 | BASS_ERROR_UNKNOWN | an internal error (a caught panic) |
//!
//! BASS itself may also fail `CreateStream` (e.g. 8 when `BASS_Init` was not
//! called for a non-decode stream); its code is left as BASS set it.

use crate::state::with_out;

/// No error.
pub const BASS_OK: i32 = 0;
/// The stream could not be opened (socket/join/file).
pub const BASS_ERROR_FILEOPEN: i32 = 2;
/// BASS's add-on table is missing.
pub const BASS_ERROR_INIT: i32 = 8;
/// A malformed `aes67://` URL.
pub const BASS_ERROR_ILLPARAM: i32 = 20;
/// No engine in this build.
pub const BASS_ERROR_NOTAVAIL: i32 = 37;
/// Not an `aes67://` URL (declined).
pub const BASS_ERROR_FILEFORM: i32 = 41;
/// Internal error.
pub const BASS_ERROR_UNKNOWN: i32 = -1;

/// Why a stream could not be opened: the BASS code and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// One of the codes above.
    pub code: i32,
    /// Human-readable reason, e.g. `invalid channel count 0 in ch=0`.
    pub text: String,
}

impl OpenError {
    /// A malformed-URL error.
    pub fn url(text: impl Into<String>) -> OpenError {
        OpenError {
            code: BASS_ERROR_ILLPARAM,
            text: text.into(),
        }
    }
    /// An engine/IO error.
    pub fn open(text: impl Into<String>) -> OpenError {
        OpenError {
            code: BASS_ERROR_FILEOPEN,
            text: text.into(),
        }
    }
}

/// Records `e`'s text as the last failure and returns its code.
pub fn fail(e: &OpenError) -> i32 {
    set_text(&e.text);
    e.code
}

/// Records `t` as the calling thread's last failure text.
pub fn set_text(t: &str) {
    with_out(|o| o.last_error.set(t));
}

/// The calling thread's last failure text.
pub fn last_text() -> String {
    with_out(|o| o.last_error.as_str().to_string())
}

/// Address of the calling thread's NUL-terminated last failure text: a
/// buffer of this thread, rewritten only by this thread's next failed
/// stream creation; valid until the thread exits or the add-on is unloaded
/// (see `crate::state`).
pub fn last_text_ptr() -> *const std::ffi::c_char {
    with_out(|o| o.last_error.ptr(false).cast())
}
