//! Reusable widgets of the console: the layout shell, state badges, table helpers, error and time views,
//! dialogs and form widgets, the overcommit warning, and the VM power, lifecycle and deploy controls.

pub mod admission;
pub mod badges;
pub mod deploy_dialog;
pub mod dialog;
pub mod error_view;
pub mod form;
pub mod format;
pub mod layout;
pub mod table;
pub mod time;
pub mod vm_actions;
pub mod vm_power;
