//! Coloured state badges: `<span class="badge badge-STATE" data-state="STATE">`, the same look everywhere.
//!
//! Only states wear the `badge` class: a VM's state (text = the state word, "running"), a host's agent
//! connection ("Connected") and an alert's severity ("critical"), so that "the badge of this row" is
//! never ambiguous. Settings (host
//! allocation, HA and out-of-band switches) look alike but use `pill pill-WORD`. The `data-state`
//! attribute is always the lower-case word, for tests and for CSS. A host's power state (out-of-band
//! management) is a badge too, but its word sits in `data-power-state`, because "unknown" and
//! "disabled" are also words of other states.

use crate::i18n::t;
use api::v1::{AgentConnection, AlertSeverity, HostAllocation, PowerState, VmState};
use leptos::prelude::*;

fn badge(state: &'static str, text: &'static str) -> impl IntoView + use<> {
    view! {
        <span class=format!("badge badge-{state}") data-state=state>
            {text}
        </span>
    }
}

fn pill(word: &'static str, text: &'static str) -> impl IntoView + use<> {
    view! { <span class=format!("pill pill-{word}")>{text}</span> }
}

pub fn connection_word(connection: AgentConnection) -> (&'static str, &'static str) {
    match connection {
        AgentConnection::Connected => ("connected", t("Connected")),
        AgentConnection::Disconnected => ("disconnected", t("Disconnected")),
    }
}

pub fn allocation_word(allocation: HostAllocation) -> (&'static str, &'static str) {
    match allocation {
        HostAllocation::Enabled => ("enabled", t("Enabled")),
        HostAllocation::Disabled => ("disabled", t("Disabled")),
        HostAllocation::Maintenance => ("maintenance", t("Maintenance")),
    }
}

/// A VM's state in words, as its badge shows it (the lower-case API word in English).
pub fn vm_state_label(state: VmState) -> &'static str {
    match state {
        VmState::Stopped => t("stopped"),
        VmState::Starting => t("starting"),
        VmState::Running => t("running"),
        VmState::Stopping => t("stopping"),
        VmState::Migrating => t("migrating"),
        VmState::Unknown => t("unknown"),
        VmState::Error => t("error"),
    }
}

#[component]
pub fn VmStateBadge(state: VmState) -> impl IntoView {
    badge(state.as_str(), vm_state_label(state))
}

#[component]
pub fn ConnectionBadge(connection: AgentConnection) -> impl IntoView {
    let (state, text) = connection_word(connection);
    badge(state, text)
}

#[component]
pub fn AllocationBadge(allocation: HostAllocation) -> impl IntoView {
    let (word, text) = allocation_word(allocation);
    pill(word, text)
}

#[component]
pub fn SeverityBadge(severity: AlertSeverity) -> impl IntoView {
    let text = match severity {
        AlertSeverity::Info => t("info"),
        AlertSeverity::Warning => t("warning"),
        AlertSeverity::Critical => t("critical"),
    };
    badge(severity.as_str(), text)
}

/// An on/off feature flag such as HA or out-of-band management.
#[component]
pub fn FlagBadge(on: bool) -> impl IntoView {
    if on { pill("on", t("On")) } else { pill("off", t("Off")) }
}

pub fn power_word(power: PowerState) -> (&'static str, &'static str) {
    match power {
        PowerState::On => ("on", t("On")),
        PowerState::Off => ("off", t("Off")),
        PowerState::Unknown => ("unknown", t("Unknown")),
        PowerState::Disabled => ("disabled", t("Disabled")),
    }
}

/// A host's power as its BMC last reported it: colour plus the word, with a title saying what it means.
#[component]
pub fn PowerStateBadge(power: PowerState) -> impl IntoView {
    let (word, text) = power_word(power);
    let title = match power {
        PowerState::On => t("Power: on (as the BMC reports it)"),
        PowerState::Off => t("Power: off (as the BMC reports it)"),
        PowerState::Unknown => t("Power: unknown (the BMC did not answer, refused us, or was unclear)"),
        PowerState::Disabled => t("Power: not watched (out-of-band management is off or not configured)"),
    };
    view! {
        <span class=format!("badge badge-power badge-power-{word}") data-power-state=word title=title>
            {text}
        </span>
    }
}
