//! Real-time thread set-up on other OSes: the highest priority the
//! `thread-priority` crate can set (THREAD_PRIORITY_TIME_CRITICAL on Windows).

use std::io;

/// Raises the calling thread to the OS's highest thread priority; `prio` is
/// the Linux SCHED_FIFO priority it stands for (unused here). Returns false
/// when denied.
pub fn set_fifo(_prio: u8) -> bool {
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Max).is_ok()
}

/// Page locking is not done on this OS.
///
/// Errors: always `Unsupported`.
pub fn lock_memory() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "mlockall is Linux-only",
    ))
}
