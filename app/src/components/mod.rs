//! Reusable widgets of the console: the layout shell, state badges, table helpers, error and time views,
//! dialogs and form widgets, the overcommit warning, the VM power, lifecycle and deploy controls, and the
//! out-of-band management dialogs (BMC configuration and password, host power actions) and switches, and the
//! HA switches and host HA states (`ha_*`).

pub mod admission;
pub mod badges;
pub mod deploy_dialog;
pub mod dialog;
pub mod error_view;
pub mod form;
pub mod format;
pub mod ha_state;
pub mod ha_switch;
pub mod layout;
pub mod oobm_dialog;
pub mod oobm_switch;
pub mod power_dialog;
pub mod table;
pub mod time;
pub mod vm_actions;
pub mod vm_power;
