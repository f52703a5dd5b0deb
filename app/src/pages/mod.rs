//! The console's screens, one file each (the HA plan page's parts are in `ha_*.rs`, host operations in
//! `host_actions.rs`); each screen has exactly one `<h1>`.

pub mod account;
pub mod alerts;
pub mod audit;
pub mod clusters;
pub mod email_settings;
pub mod ha_failure;
pub mod ha_incident;
pub mod ha_incidents;
pub mod ha_limit;
pub mod ha_pause;
pub mod ha_plan;
pub mod ha_priorities;
pub mod ha_safeguards;
pub mod ha_timing;
pub mod ha_verdict;
pub mod ha_wizard;
pub mod host_actions;
pub mod host_detail;
pub mod host_oobm;
pub mod hosts;
pub mod infrastructure;
pub mod login;
pub mod not_found;
pub mod offerings;
pub mod users;
pub mod vm_detail;
pub mod vms;
pub mod zones;
