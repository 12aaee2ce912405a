//! The CLI's one Ctrl-C (SIGINT/SIGTERM) handler and its flag.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once, at start). A failure (a handler already set)
/// is reported on stderr: Ctrl-C would then not stop the command cleanly.
pub(crate) fn install() {
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        eprintln!("aes67: warning: cannot install the Ctrl-C handler: {e}");
    }
}

/// Ctrl-C was pressed.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The flag the handler sets, for engine loops that take a stop flag.
pub(crate) fn flag() -> &'static AtomicBool {
    &INTERRUPTED
}
