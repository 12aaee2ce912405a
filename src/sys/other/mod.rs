//! Every OS but Linux (Windows first): std and socket2 sockets with user-space
//! receive timestamps, the `Instant`/`SystemTime` clocks.

pub mod clock;
pub mod rt;
