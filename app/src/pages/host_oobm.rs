//! The "Out-of-band management" panel of the host detail page: the power state (live, from the
//! store), the BMC configuration (never its password, only whether one is set), the host's own
//! switch and whether OOBM is in effect, and, for pool operators and up, "Configure out-of-band
//! management", "Issue power action" and "Change BMC password". Other roles see "Why can't I …?".
//!
//! The configuration is fetched from `GET /hosts/{id}/oobm` (404: none yet) and fetched again when the
//! host's power state or OOBM status changes, or the inventory reloads.

use crate::api_client::{self, ClientError};
use crate::components::badges::PowerStateBadge;
use crate::components::dialog::WhyNot;
use crate::components::oobm_dialog::{
    ChangeBmcPasswordDialog, ConfigureOobmDialog, driver_label, failure_text, may_manage_oobm,
};
use crate::components::oobm_switch::{OobmSwitch, OobmTarget, not_in_effect_text, parents_off};
use crate::components::power_dialog::PowerActionDialog;
use crate::components::time::RelativeTime;
use crate::i18n::{server_text, t, tf};
use crate::session::Session;
use crate::store::Store;
use api::v1::{Host, HostOobm, OobmDriver};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// What is known of the host's BMC configuration.
#[derive(Clone, PartialEq)]
enum Loaded {
    Loading,
    NotConfigured,
    Configured(HostOobm),
    Failed(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Configure,
    Power,
    Password,
}

#[component]
pub fn HostOobmPanel(host: Memo<Host>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let permitted = may_manage_oobm(session);
    let (id, name) = host.with_untracked(|host| (host.id, host.name.clone()));
    let loaded = RwSignal::new(Loaded::Loading);
    let open = RwSignal::new(None::<Open>);
    let done = RwSignal::new(None::<String>);

    // Answers may arrive out of order: only the latest request's answer is kept.
    let latest = StoredValue::new(0u64);
    let fetch = move || {
        let ticket = latest.get_value() + 1;
        latest.set_value(ticket);
        spawn_local(async move {
            let answer = api_client::host_oobm(id).await;
            if latest.get_value() != ticket {
                return;
            }
            loaded.set(match answer {
                Ok(oobm) => Loaded::Configured(oobm),
                Err(ClientError::Api { status: 404, .. }) => Loaded::NotConfigured,
                Err(error) => {
                    session.notice(&error);
                    Loaded::Failed(server_text(&error.to_string()))
                }
            });
        });
    };
    let watched = Memo::new(move |_| {
        let (power, effective) = host.with(|host| (host.power_state, host.oobm_enabled_effective));
        (power, effective, store.reloads.get())
    });
    Effect::new(move || {
        watched.track();
        fetch();
    });

    let configured = Memo::new(move |_| {
        loaded.with(|loaded| match loaded {
            Loaded::Configured(oobm) => Some(oobm.clone()),
            _ => None,
        })
    });
    let saved = Callback::new(move |oobm: HostOobm| loaded.set(Loaded::Configured(oobm)));
    let power = Signal::derive(move || host.with(|host| host.power_state));
    let read_at =
        Signal::derive(move || configured.with(|oobm| oobm.as_ref().and_then(|oobm| oobm.power_state_read_at)));
    let host_on = Signal::derive(move || configured.with(|oobm| oobm.as_ref().is_some_and(|oobm| oobm.enabled)));
    let effective = Memo::new(move |_| host.with(|host| host.oobm_enabled_effective));
    let parents = Memo::new(move |_| {
        let (zone, cluster) = host.with(|host| (host.zone_id, host.cluster_id));
        parents_off(store, zone, Some(cluster))
    });
    // Why OOBM is not in effect, naming every switch that is off (or that nothing is configured).
    let host_label = tf("host {name}", &[("name", &name)]);
    let why_not_effective = move || {
        if effective.get() {
            return None;
        }
        match loaded.get() {
            Loaded::NotConfigured => Some(t("Not in effect: no BMC is configured for this host.").to_owned()),
            Loaded::Configured(oobm) => {
                let mut off = parents.get();
                if !oobm.enabled {
                    off.push(host_label.clone());
                }
                not_in_effect_text(&off)
            }
            Loaded::Loading | Loaded::Failed(_) => None,
        }
    };
    let switch_unavailable = Signal::derive(move || {
        matches!(loaded.get(), Loaded::NotConfigured)
            .then(|| t("Configure out-of-band management first; then it can be switched on.").to_owned())
    });

    let details = move || match loaded.get() {
        Loaded::Loading => view! { <p class="muted">{t("Loading…")}</p> }.into_any(),
        Loaded::Failed(message) => view! { <p class="form-error">{message}</p> }.into_any(),
        Loaded::NotConfigured => view! { <p class="muted">{t("No BMC configured.")}</p> }.into_any(),
        Loaded::Configured(oobm) => {
            let endpoint = match oobm.driver {
                OobmDriver::Redfish => {
                    format!("{}://{}:{}", if oobm.redfish_https { "https" } else { "http" }, oobm.address, oobm.port)
                }
                OobmDriver::Ipmitool => {
                    let port = oobm.port.to_string();
                    let suite = oobm.ipmi_cipher_suite.to_string();
                    tf(
                        "{address}:{port} (cipher suite {suite})",
                        &[("address", &oobm.address), ("port", &port), ("suite", &suite)],
                    )
                }
            };
            view! {
                <dl class="facts oobm-facts">
                    <dt>{t("Driver")}</dt>
                    <dd>{driver_label(oobm.driver)}</dd>
                    <dt>{t("BMC")}</dt>
                    <dd class="mono">{endpoint}</dd>
                    <dt>{t("Username")}</dt>
                    <dd class="mono">{if oobm.username.is_empty() { t("(none)").to_owned() } else { oobm.username.clone() }}</dd>
                    <dt>{t("Password")}</dt>
                    <dd data-password-set=oobm.password_set.to_string()>
                        {if oobm.password_set { t("Set (never shown)") } else { t("Not set") }}
                    </dd>
                    {oobm
                        .last_error
                        .map(|failure| {
                            view! {
                                <dt>{t("Last error")}</dt>
                                <dd class="oobm-last-error">
                                    {failure_text(&failure)}
                                </dd>
                            }
                        })}
                </dl>
            }
            .into_any()
        }
    };

    let actions = match permitted {
        Ok(()) => view! {
            <div class="host-actions" role="group" aria-label=t("Out-of-band management actions")>
                <button type="button" class="button" on:click=move |_| open.set(Some(Open::Configure))>
                    {t("Configure out-of-band management")}
                </button>
                {move || {
                    if effective.get() {
                        view! {
                            <button type="button" class="button" on:click=move |_| open.set(Some(Open::Power))>
                                {t("Issue power action")}
                            </button>
                        }
                        .into_any()
                    } else {
                        view! {
                            <WhyNot
                                action=t("issue a power action")
                                reason=t("Power actions need out-of-band management in effect: a BMC configured, and the switch on for the host, its cluster and its zone.")
                            />
                        }
                        .into_any()
                    }
                }}
                <Show when=move || configured.with(Option::is_some)>
                    <button type="button" class="button" on:click=move |_| open.set(Some(Open::Password))>
                        {t("Change BMC password")}
                    </button>
                </Show>
            </div>
        }
        .into_any(),
        Err(reason) => {
            view! { <WhyNot action=t("configure out-of-band management or issue power actions") reason /> }.into_any()
        }
    };

    let close = Callback::new(move |()| open.set(None));
    let dialogs = {
        let name = name.clone();
        move || match open.get() {
            Some(Open::Configure) => view! {
                <ConfigureOobmDialog
                    host_id=id
                    host_name=name.clone()
                    current=configured.get_untracked()
                    on_saved=Callback::new(move |oobm: HostOobm| {
                        saved.run(oobm);
                        done.set(Some(t("Out-of-band management settings saved.").to_owned()));
                    })
                    on_close=close
                />
            }
            .into_any(),
            Some(Open::Power) => view! { <PowerActionDialog host on_close=close /> }.into_any(),
            Some(Open::Password) => match configured.get_untracked() {
                Some(oobm) => view! {
                    <ChangeBmcPasswordDialog
                        host_id=id
                        host_name=name.clone()
                        driver=oobm.driver
                        username=oobm.username
                        on_changed=Callback::new(move |oobm: HostOobm| {
                            saved.run(oobm);
                            done.set(Some(t("BMC password changed on the BMC and in Parapet's store.").to_owned()));
                        })
                        on_close=close
                    />
                }
                .into_any(),
                None => ().into_any(),
            },
            None => ().into_any(),
        }
    };

    view! {
        <section class="panel oobm-panel" aria-label=t("Out-of-band management")>
            <div class="oobm-panel-head">
                <h2>{t("Out-of-band management")}</h2>
                <span class="oobm-power">
                    <span class="muted">{t("Power")}</span>
                    {move || view! { <PowerStateBadge power=power.get() /> }}
                    <span class="muted oobm-read-at">
                        <RelativeTime at=read_at />
                    </span>
                </span>
                <span class="oobm-host-switch">
                    <span class="muted">{t("Host switch")}</span>
                    <OobmSwitch
                        target=OobmTarget::Host(id)
                        name=tf("host {name}", &[("name", &name)])
                        on=host_on
                        unavailable=switch_unavailable
                        on_host_changed=saved
                    />
                </span>
            </div>
            {move || why_not_effective().map(|text| view! { <p class="oobm-not-in-effect">{text}</p> })}
            {details}
            {actions}
            {move || done.get().map(|text| view! { <p class="oobm-done" role="status">{text}</p> })}
            {dialogs}
        </section>
    }
}
