//! Step 3: out-of-band management for the cluster's hosts, several at a time (Mold's guide: "호스트
//! 원격 관리 구성"). A table of the hosts with a checkbox each, the BMC's address and port per host
//! (they differ from host to host), and driver, protocol, username and password above it, applied to
//! the hosts chosen; "Test connection" per host tries the settings as typed, saving nothing. The same
//! calls and checks as the host's own dialog (`components::oobm_dialog`).

use super::{Step, Wizard, may_take};
use crate::api_client;
use crate::components::oobm_dialog::{OobmForm, oobm_request};
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::session::Session;
use crate::store::Store;
use api::HostId;
use api::v1::{HostOobm, OobmDriver, OobmTestResult, RedfishAuth, TestOobmRequest};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::{BTreeMap, BTreeSet};

/// The hosts' OOBM configurations as last read: `Some(None)` for a host with none; shared by steps 3
/// and 4 (provided by the wizard's page).
#[derive(Clone, Copy)]
pub struct OobmConfigs {
    pub known: RwSignal<BTreeMap<HostId, Option<HostOobm>>>,
    asked: StoredValue<BTreeSet<HostId>>,
}

impl OobmConfigs {
    pub fn provide() -> OobmConfigs {
        let configs = OobmConfigs { known: RwSignal::new(BTreeMap::new()), asked: StoredValue::new(BTreeSet::new()) };
        provide_context(configs);
        configs
    }

    pub fn expect() -> OobmConfigs {
        expect_context::<OobmConfigs>()
    }

    /// Reads the configuration of the hosts not asked about yet.
    pub fn want(self, hosts: &[HostId]) {
        for &host in hosts {
            if self.asked.with_value(|asked| asked.contains(&host)) {
                continue;
            }
            self.asked.update_value(|asked| {
                asked.insert(host);
            });
            self.fetch(host);
        }
    }

    /// Reads one host's configuration (again).
    pub fn fetch(self, host: HostId) {
        spawn_local(async move {
            match api_client::host_oobm(host).await {
                Ok(config) => self.set(config),
                Err(failure) => {
                    Session::expect().notice(&failure);
                    let none = matches!(&failure, api_client::ClientError::Api { status: 404 | 409, .. })
                        || failure.code() == Some("oobm-not-configured");
                    if none {
                        self.known.update(|known| {
                            known.insert(host, None);
                        });
                    } else {
                        // Unknown: ask again next time.
                        self.asked.update_value(|asked| {
                            asked.remove(&host);
                        });
                    }
                }
            }
        });
    }

    pub fn set(self, config: HostOobm) {
        self.known.update(|known| {
            known.insert(config.host_id, Some(config));
        });
    }

    /// The host's configuration (tracked): `None` while unknown, `Some(None)` when there is none.
    pub fn get(self, host: HostId) -> Option<Option<HostOobm>> {
        self.known.with(|known| known.get(&host).cloned())
    }
}

/// Done once every host of the chosen cluster has OOBM configured, with a password stored.
pub fn oobm_configure_done(wizard: Wizard) -> bool {
    let Some(configs) = use_context::<OobmConfigs>() else { return false };
    let hosts = wizard.cluster_hosts();
    configs.want(&hosts);
    !hosts.is_empty()
        && configs.known.with(|known| {
            hosts
                .iter()
                .all(|host| known.get(host).is_some_and(|config| config.as_ref().is_some_and(|c| c.password_set)))
        })
}

/// One host's row as typed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Row {
    chosen: bool,
    address: String,
    port: String,
    /// What the last test or save found: worked, and the sentence.
    outcome: Option<(bool, String)>,
    busy: bool,
}

/// The settings applied to every host chosen.
#[derive(Clone, Copy)]
struct Shared {
    driver: RwSignal<OobmDriver>,
    https: RwSignal<bool>,
    self_signed: RwSignal<bool>,
    username: RwSignal<String>,
    password: RwSignal<String>,
}

/// What the server's check or the console's says, as one sentence in the console's language.
fn problem_text(message: &str) -> String {
    server_text(message)
}

fn test_text(result: &OobmTestResult) -> String {
    let ms = result.elapsed_ms.to_string();
    match &result.error {
        None => tf(
            "Connection works: the BMC reports power {power} ({ms} ms).",
            &[("power", crate::components::badges::power_word(result.power_state).1), ("ms", &ms)],
        ),
        Some(failure) => tf(
            "Connection failed: {reason} ({ms} ms)",
            &[("reason", &server_text(&crate::components::oobm_dialog::failure_text(failure))), ("ms", &ms)],
        ),
    }
}

fn driver_text(driver: OobmDriver) -> &'static str {
    match driver {
        OobmDriver::Ipmitool => t("IPMI v2.0 (lanplus, ipmitool)"),
        OobmDriver::Redfish => t("Redfish"),
    }
}

#[component]
pub fn OobmConfigureStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let configs = OobmConfigs::expect();
    let may = may_take(Step::ConfigureOobm);
    let hosts = Memo::new(move |_| wizard.cluster_hosts());
    Effect::new(move || configs.want(&hosts.get()));
    let rows = RwSignal::new(BTreeMap::<HostId, Row>::new());
    let shared = Shared {
        driver: RwSignal::new(OobmDriver::Redfish),
        https: RwSignal::new(false),
        self_signed: RwSignal::new(true),
        username: RwSignal::new(String::new()),
        password: RwSignal::new(String::new()),
    };
    // Rows start from what is stored; the shared fields from the first host configured.
    let seeded = StoredValue::new(false);
    Effect::new(move || {
        let hosts = hosts.get();
        let known = configs.known.get();
        rows.update(|rows| {
            for host in &hosts {
                let row = rows.entry(*host).or_default();
                if let Some(Some(config)) = known.get(host) {
                    if row.address.is_empty() {
                        row.address = config.address.clone();
                    }
                    if row.port.is_empty() {
                        row.port = config.port.to_string();
                    }
                }
            }
        });
        if !seeded.get_value()
            && let Some(config) = hosts.iter().find_map(|host| known.get(host).cloned().flatten())
        {
            seeded.set_value(true);
            shared.driver.set(config.driver);
            shared.https.set(config.redfish_https);
            shared.self_signed.set(config.redfish_accept_self_signed);
            shared.username.set(config.username.clone());
        }
    });
    let row = move |host: HostId| rows.with(|rows| rows.get(&host).cloned().unwrap_or_default());
    let edit = move |host: HostId, change: &dyn Fn(&mut Row)| {
        rows.update(|rows| change(rows.entry(host).or_default()));
    };
    // The request for one host: its row plus the shared fields, the rest as stored.
    let request = move |host: HostId| {
        let row = row(host);
        let stored = configs.get(host).flatten();
        let form = OobmForm {
            driver: shared.driver.get_untracked(),
            address: row.address,
            port: row.port,
            username: shared.username.get_untracked(),
            password: shared.password.get_untracked(),
            cipher_suite: stored.as_ref().map_or(3, |stored| stored.ipmi_cipher_suite).to_string(),
            https: shared.https.get_untracked(),
            accept_self_signed: shared.self_signed.get_untracked(),
            auth: stored.as_ref().map_or(RedfishAuth::Basic, |stored| stored.redfish_auth),
            system_id: stored.as_ref().and_then(|stored| stored.redfish_system_id.clone()).unwrap_or_default(),
        };
        oobm_request(&form, stored.as_ref().is_some_and(|stored| stored.password_set))
            .map_err(|(_, message)| problem_text(&message))
    };
    let test = move |host: HostId| {
        let settings = match request(host) {
            Ok(settings) => settings,
            Err(message) => {
                edit(host, &|row| row.outcome = Some((false, message.clone())));
                return;
            }
        };
        edit(host, &|row| row.busy = true);
        spawn_local(async move {
            let outcome = match api_client::test_oobm(host, &TestOobmRequest { settings: Some(settings) }).await {
                Ok(result) => (result.ok, test_text(&result)),
                Err(failure) => {
                    session.notice(&failure);
                    (false, failure.to_string())
                }
            };
            edit(host, &|row| {
                row.busy = false;
                row.outcome = Some(outcome.clone());
            });
        });
    };
    let save = move |host: HostId| {
        let settings = match request(host) {
            Ok(settings) => settings,
            Err(message) => {
                edit(host, &|row| row.outcome = Some((false, message.clone())));
                return;
            }
        };
        edit(host, &|row| row.busy = true);
        spawn_local(async move {
            let outcome = match api_client::configure_oobm(host, &settings).await {
                Ok(stored) => {
                    configs.set(stored);
                    (true, t("Saved.").to_owned())
                }
                Err(failure) => {
                    session.notice(&failure);
                    (false, failure.to_string())
                }
            };
            edit(host, &|row| {
                row.busy = false;
                row.outcome = Some(outcome.clone());
            });
        });
    };
    let chosen = move || {
        let hosts = hosts.get();
        rows.with(|rows| {
            hosts.into_iter().filter(|host| rows.get(host).is_some_and(|row| row.chosen)).collect::<Vec<_>>()
        })
    };
    let chosen_count = Memo::new(move |_| chosen().len());
    let all_chosen = move || {
        let hosts = hosts.get();
        !hosts.is_empty() && rows.with(|rows| hosts.iter().all(|host| rows.get(host).is_some_and(|row| row.chosen)))
    };
    let choose_all = move |on: bool| {
        for host in hosts.get_untracked() {
            edit(host, &|row| row.chosen = on);
        }
    };

    let form = may.then(|| {
        view! {
            <fieldset class="wizard-fieldset" data-testid="ha-wizard-oobm-form">
                <legend>{t("Settings for the chosen hosts")}</legend>
                <div class="field-row">
                    <div class="field">
                        <label for="ha-wizard-oobm-driver">{t("Driver")}</label>
                        <select
                            id="ha-wizard-oobm-driver"
                            on:change=move |event| {
                                shared.driver.set(if event_target_value(&event) == "ipmitool" {
                                    OobmDriver::Ipmitool
                                } else {
                                    OobmDriver::Redfish
                                })
                            }
                        >
                            <option value="redfish" selected=move || shared.driver.get() == OobmDriver::Redfish>
                                {driver_text(OobmDriver::Redfish)}
                            </option>
                            <option value="ipmitool" selected=move || shared.driver.get() == OobmDriver::Ipmitool>
                                {driver_text(OobmDriver::Ipmitool)}
                            </option>
                        </select>
                    </div>
                    <Show when=move || shared.driver.get() == OobmDriver::Redfish>
                        <div class="field">
                            <label for="ha-wizard-oobm-protocol">{t("Protocol")}</label>
                            <select
                                id="ha-wizard-oobm-protocol"
                                on:change=move |event| shared.https.set(event_target_value(&event) == "https")
                            >
                                <option value="https" selected=move || shared.https.get()>"HTTPS"</option>
                                <option value="http" selected=move || !shared.https.get()>"HTTP"</option>
                            </select>
                        </div>
                        <label class="checkbox" for="ha-wizard-oobm-self-signed">
                            <input
                                type="checkbox"
                                id="ha-wizard-oobm-self-signed"
                                disabled=move || !shared.https.get()
                                bind:checked=shared.self_signed
                            />
                            {t("Accept self-signed certificate")}
                        </label>
                    </Show>
                </div>
                <div class="field-row">
                    <div class="field">
                        <label for="ha-wizard-oobm-username">{t("Username")}</label>
                        <input id="ha-wizard-oobm-username" type="text" autocomplete="off" bind:value=shared.username />
                    </div>
                    <div class="field">
                        <label for="ha-wizard-oobm-password">{t("Password")}</label>
                        <input
                            id="ha-wizard-oobm-password"
                            type="password"
                            autocomplete="new-password"
                            aria-describedby="ha-wizard-oobm-password-hint"
                            bind:value=shared.password
                        />
                        <p class="field-hint" id="ha-wizard-oobm-password-hint">
                            {t("Leave empty to keep each host's stored password (required for a host without one).")}
                        </p>
                    </div>
                </div>
                <div class="wizard-action-row">
                    <button
                        type="button"
                        class="button"
                        data-testid="ha-wizard-oobm-test-chosen"
                        disabled=move || chosen_count.get() == 0
                        on:click=move |_| chosen().into_iter().for_each(test)
                    >
                        {t("Test the chosen hosts")}
                    </button>
                    <button
                        type="button"
                        class="button button-primary"
                        data-testid="ha-wizard-oobm-apply"
                        disabled=move || chosen_count.get() == 0
                        on:click=move |_| chosen().into_iter().for_each(save)
                    >
                        {move || tf("Apply to {count} chosen hosts", &[("count", &chosen_count.get().to_string())])}
                    </button>
                </div>
            </fieldset>
        }
    });

    view! {
        <p class="wizard-intro">
            {t("HA powers a failed host off through its BMC before restarting its VMs elsewhere, so every host needs out-of-band management. Choose hosts, give their BMC's address and port, and apply the shared settings to them.")}
        </p>
        {form}
        <DataTable label=t("Out-of-band management of the cluster's hosts")>
            <thead>
                <tr>
                    <th scope="col">
                        {may
                            .then(|| {
                                view! {
                                    <input
                                        type="checkbox"
                                        data-testid="ha-wizard-oobm-choose-all"
                                        aria-label=t("Choose every host")
                                        prop:checked=all_chosen
                                        on:change=move |event| choose_all(event_target_checked(&event))
                                    />
                                }
                            })}
                    </th>
                    <th scope="col">{t("Host")}</th>
                    <th scope="col">{t("BMC address")}</th>
                    <th scope="col">{t("Port")}</th>
                    <th scope="col">{t("Stored")}</th>
                    <th scope="col">{t("Result")}</th>
                    <th scope="col">
                        <span class="visually-hidden">{t("Actions")}</span>
                    </th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let hosts = hosts.get();
                    if hosts.is_empty() {
                        return view! { <EmptyRow columns=7 text=t("Choose a cluster with hosts in step 2.") /> }
                            .into_any();
                    }
                    hosts
                        .into_iter()
                        .map(|host| {
                            let name = store.host_name(host);
                            let id = host.to_string();
                            let address_id = format!("ha-wizard-oobm-address-{id}");
                            let port_id = format!("ha-wizard-oobm-port-{id}");
                            let stored = move || match configs.get(host) {
                                None => t("…").to_owned(),
                                Some(None) => t("Not configured").to_owned(),
                                Some(Some(config)) => {
                                    let password = if config.password_set { t("password set") } else { t("no password") };
                                    format!(
                                        "{} · {}:{} · {}",
                                        driver_text(config.driver),
                                        config.address,
                                        config.port,
                                        password,
                                    )
                                }
                            };
                            let configured = move || {
                                configs.get(host).flatten().is_some_and(|config| config.password_set).to_string()
                            };
                            let outcome = move || {
                                row(host)
                                    .outcome
                                    .map(|(ok, text)| {
                                        view! {
                                            <span
                                                class=if ok { "oobm-test-result oobm-test-ok" } else { "oobm-test-result oobm-test-failed" }
                                                data-ok=ok.to_string()
                                            >
                                                {text}
                                            </span>
                                        }
                                    })
                            };
                            let busy = move || row(host).busy;
                            view! {
                                <tr data-testid=format!("ha-wizard-oobm-host-{name}") data-host=name.clone() data-configured=configured>
                                    <td>
                                        {may
                                            .then(|| {
                                                view! {
                                                    <input
                                                        type="checkbox"
                                                        data-testid="ha-wizard-oobm-choose"
                                                        aria-label=tf("Choose {host}", &[("host", &name)])
                                                        prop:checked=move || row(host).chosen
                                                        on:change=move |event| {
                                                            let on = event_target_checked(&event);
                                                            edit(host, &|row| row.chosen = on)
                                                        }
                                                    />
                                                }
                                            })}
                                    </td>
                                    <th scope="row">{name.clone()}</th>
                                    <td>
                                        <label class="visually-hidden" for=address_id.clone()>
                                            {tf("BMC address of {host}", &[("host", &name)])}
                                        </label>
                                        <input
                                            id=address_id
                                            type="text"
                                            class="wizard-cell-input"
                                            data-testid="ha-wizard-oobm-address"
                                            disabled=!may
                                            prop:value=move || row(host).address
                                            on:input=move |event| {
                                                let value = event_target_value(&event);
                                                edit(host, &|row| row.address = value.clone())
                                            }
                                        />
                                    </td>
                                    <td>
                                        <label class="visually-hidden" for=port_id.clone()>
                                            {tf("BMC port of {host}", &[("host", &name)])}
                                        </label>
                                        <input
                                            id=port_id
                                            type="number"
                                            min="1"
                                            max="65535"
                                            class="wizard-cell-input wizard-port-input"
                                            data-testid="ha-wizard-oobm-port"
                                            disabled=!may
                                            prop:value=move || row(host).port
                                            on:input=move |event| {
                                                let value = event_target_value(&event);
                                                edit(host, &|row| row.port = value.clone())
                                            }
                                        />
                                    </td>
                                    <td data-testid="ha-wizard-oobm-stored">{stored}</td>
                                    <td data-testid="ha-wizard-oobm-result" aria-live="polite">
                                        {move || busy().then(|| t("Working…"))}
                                        {outcome}
                                    </td>
                                    <td>
                                        {may
                                            .then(|| {
                                                view! {
                                                    <button
                                                        type="button"
                                                        class="button button-small"
                                                        data-testid="ha-wizard-oobm-test"
                                                        aria-label=tf("Test connection of {host}", &[("host", &name)])
                                                        disabled=busy
                                                        on:click=move |_| test(host)
                                                    >
                                                        {t("Test connection")}
                                                    </button>
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()
                        .into_any()
                }}
            </tbody>
        </DataTable>
    }
}
