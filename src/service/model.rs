//! The service's status model: the crate's one status model,
//! [`crate::status`] (re-exported here so the service's modules keep their
//! paths).

pub use crate::status::{PtpPortStatus, ReceiverStatus, RunState, SenderStatus, ServiceStatus};
