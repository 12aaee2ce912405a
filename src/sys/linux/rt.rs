//! Real-time thread set-up on Linux: `SCHED_FIFO` and `mlockall(2)`.

use std::io;

/// Puts the calling thread in `SCHED_FIFO` at `prio` (clamped to 1-99).
/// Returns false when denied (no CAP_SYS_NICE, RLIMIT_RTPRIO 0).
pub fn set_fifo(prio: u8) -> bool {
    use thread_priority::*;
    let Ok(v) = ThreadPriorityValue::try_from(prio.clamp(1, 99)) else {
        return false;
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(v),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .is_ok()
}

/// Locks the process's current and future pages in RAM
/// (`mlockall(MCL_CURRENT | MCL_FUTURE)`), so a real-time thread never takes
/// a major page fault.
///
/// Errors: the errno of `mlockall` (EPERM without CAP_IPC_LOCK, ENOMEM over
/// RLIMIT_MEMLOCK).
pub fn lock_memory() -> io::Result<()> {
    use nix::sys::mman::{MlockAllFlags, mlockall};
    mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE).map_err(io::Error::from)
}
