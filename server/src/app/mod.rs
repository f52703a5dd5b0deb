//! The rules per resource: authentication, authorization, validation. No axum and no SQL here: handlers
//! in `http/` call these, and these call `db/` and the agent hub.

pub mod admission;
pub mod alerts;
pub mod auth;
pub mod clusters;
pub mod email;
pub mod error;
pub mod ha;
pub mod hosts;
pub mod offerings;
pub mod oobm;
pub mod permission;
pub mod placement;
pub mod throttle;
pub mod users;
pub mod vms;

pub use error::AppError;
