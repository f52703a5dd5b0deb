//! The console's screens, one file each; each has exactly one `<h1>`.

pub mod account;
pub mod audit;
pub mod clusters;
pub mod host_actions;
pub mod host_detail;
pub mod hosts;
pub mod infrastructure;
pub mod login;
pub mod not_found;
pub mod offerings;
pub mod users;
pub mod vm_detail;
pub mod vms;
pub mod zones;
