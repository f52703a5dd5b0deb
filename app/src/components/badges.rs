//! Coloured state badges: `<span class="badge badge-STATE" data-state="STATE">`, the same look everywhere.
//!
//! Only states wear the `badge` class: a VM's state (text = the state word, "running"), a host's agent
//! connection ("Connected") and an alert's severity ("critical"), so that "the badge of this row" is
//! never ambiguous. Settings (host
//! allocation, HA and out-of-band switches) look alike but use `pill pill-WORD`. The `data-state`
//! attribute is always the lower-case word, for tests and for CSS. A host's power state (out-of-band
//! management) is a badge too, but its word sits in `data-power-state`, because "unknown" and
//! "disabled" are also words of other states.

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
        AgentConnection::Connected => ("connected", "Connected"),
        AgentConnection::Disconnected => ("disconnected", "Disconnected"),
    }
}

pub fn allocation_word(allocation: HostAllocation) -> (&'static str, &'static str) {
    match allocation {
        HostAllocation::Enabled => ("enabled", "Enabled"),
        HostAllocation::Disabled => ("disabled", "Disabled"),
        HostAllocation::Maintenance => ("maintenance", "Maintenance"),
    }
}

#[component]
pub fn VmStateBadge(state: VmState) -> impl IntoView {
    badge(state.as_str(), state.as_str())
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
    badge(severity.as_str(), severity.as_str())
}

/// An on/off feature flag such as HA or out-of-band management.
#[component]
pub fn FlagBadge(on: bool) -> impl IntoView {
    if on { pill("on", "On") } else { pill("off", "Off") }
}

pub fn power_word(power: PowerState) -> (&'static str, &'static str) {
    match power {
        PowerState::On => ("on", "On"),
        PowerState::Off => ("off", "Off"),
        PowerState::Unknown => ("unknown", "Unknown"),
        PowerState::Disabled => ("disabled", "Disabled"),
    }
}

/// A host's power as its BMC last reported it: colour plus the word, with a title saying what it means.
#[component]
pub fn PowerStateBadge(power: PowerState) -> impl IntoView {
    let (word, text) = power_word(power);
    let title = match power {
        PowerState::On => "Power: on (as the BMC reports it)",
        PowerState::Off => "Power: off (as the BMC reports it)",
        PowerState::Unknown => "Power: unknown (the BMC did not answer, refused us, or was unclear)",
        PowerState::Disabled => "Power: not watched (out-of-band management is off or not configured)",
    };
    view! {
        <span class=format!("badge badge-power badge-power-{word}") data-power-state=word title=title>
            {text}
        </span>
    }
}
