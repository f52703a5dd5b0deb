//! The console's screens, one file each; each has exactly one `<h1>`.

pub mod clusters;
pub mod host_detail;
pub mod hosts;
pub mod infrastructure;
pub mod login;
pub mod not_found;
pub mod vms;
pub mod zones;
