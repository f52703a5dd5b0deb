//! Out-of-band management dialogs of a host: "Configure out-of-band management" (driver and its
//! options, address, port, credentials, a "Test connection" that tries the unsaved settings) and
//! "Change BMC password"; plus who may use them ([`may_manage_oobm`]).
//!
//! The stored BMC password never comes back from the server (only `password_set`): the dialog says
//! that one is stored and sends a password only when one was typed. A refusal that names a field
//! (`invalid-address`, "address: …") is shown next to that field; every other failure below the form.

use crate::api_client::{self, ClientError};
use crate::components::dialog::{Dialog, FormError};
use crate::components::form::{Choice, ChoiceSelect};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use api::HostId;
use api::v1::{
    ConfigureOobmRequest, HostOobm, OobmDriver, OobmErrorKind, OobmFailure, OobmTestResult, PowerState, RedfishAuth,
    TestOobmRequest,
};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// IPMI v2.0 limits a password to 20 bytes (the server refuses longer ones for the IPMI driver).
const IPMI_MAX_PASSWORD: usize = 20;

/// `Ok` when the signed-in role may configure OOBM, switch it and issue power actions (the server's
/// `ManageOobm`: pool operators and pool admins), else the reason in words. Untracked, like
/// [`Session::may_untracked`].
pub fn may_manage_oobm(session: Session) -> Result<(), String> {
    // Same roles as managing the pool's hosts; only the wording differs.
    session.may_untracked(Ability::ManagePool).map_err(|reason| match untrack(|| session.role()) {
        Some(role) => tf(
            "Your role ({role}) cannot configure out-of-band management or issue power actions; only pool operators and pool admins can.",
            &[("role", crate::pages::account::role_name(role))],
        ),
        None => reason,
    })
}

/// A field of the configuration form, for showing a refusal next to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Address,
    Port,
    Username,
    Password,
    CipherSuite,
    SystemId,
    /// The "Repeat new password" field of the password change.
    PasswordAgain,
}

/// The field a server refusal names: by its code, else by the "field: …" start of its message.
pub fn field_of(code: &str, message: &str) -> Option<Field> {
    let by_code = match code {
        "invalid-address" => Some(Field::Address),
        "invalid-port" => Some(Field::Port),
        "invalid-username" => Some(Field::Username),
        "invalid-password" | "missing-password" => Some(Field::Password),
        "invalid-cipher-suite" => Some(Field::CipherSuite),
        "invalid-system-id" => Some(Field::SystemId),
        _ => None,
    };
    by_code.or_else(|| {
        let (field, _) = message.split_once(':')?;
        match field.trim().trim_start_matches("settings.") {
            "address" => Some(Field::Address),
            "port" => Some(Field::Port),
            "username" => Some(Field::Username),
            "password" | "new_password" => Some(Field::Password),
            "ipmi_cipher_suite" => Some(Field::CipherSuite),
            "redfish_system_id" => Some(Field::SystemId),
            _ => None,
        }
    })
}

/// The configuration form as typed, before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct OobmForm {
    pub driver: OobmDriver,
    pub address: String,
    pub port: String,
    pub username: String,
    /// Empty: keep the stored password.
    pub password: String,
    pub cipher_suite: String,
    pub https: bool,
    pub accept_self_signed: bool,
    pub auth: RedfishAuth,
    pub system_id: String,
}

/// Checks the form as the server does (so most mistakes show before a round trip) and builds the
/// request, or names the field that is wrong.
pub fn oobm_request(form: &OobmForm, password_stored: bool) -> Result<ConfigureOobmRequest, (Field, String)> {
    let address = form.address.trim();
    if address.is_empty() {
        return Err((Field::Address, t("Address: give the BMC's host name or IP address.").to_owned()));
    }
    if address.contains(char::is_whitespace) {
        return Err((Field::Address, t("Address: no spaces; give one host name or IP address.").to_owned()));
    }
    let port = match form.port.trim() {
        "" => None,
        text => match text.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err((Field::Port, t("Port: a number from 1 to 65535.").to_owned())),
        },
    };
    let username = form.username.trim().to_owned();
    if form.driver == OobmDriver::Redfish && username.is_empty() {
        return Err((Field::Username, t("Username: required for Redfish.").to_owned()));
    }
    let password = (!form.password.is_empty()).then(|| form.password.clone());
    match &password {
        None if !password_stored => {
            return Err((Field::Password, t("Password: required the first time.").to_owned()));
        }
        Some(password) if form.driver == OobmDriver::Ipmitool && password.len() > IPMI_MAX_PASSWORD => {
            let max = IPMI_MAX_PASSWORD.to_string();
            return Err((Field::Password, tf("Password: IPMI allows at most {max} bytes.", &[("max", &max)])));
        }
        _ => {}
    }
    let ipmi_cipher_suite = match form.driver {
        OobmDriver::Ipmitool => match form.cipher_suite.trim().parse::<u8>() {
            Ok(suite) if (1..=17).contains(&suite) => Some(suite),
            _ => {
                return Err((
                    Field::CipherSuite,
                    t("IPMI cipher suite: a number from 1 to 17 (0 has no authentication).").to_owned(),
                ));
            }
        },
        OobmDriver::Redfish => None,
    };
    let system_id = form.system_id.trim();
    let redfish_system_id = match form.driver {
        OobmDriver::Redfish if !system_id.is_empty() => {
            if !system_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
                return Err((Field::SystemId, t("System id: letters, digits, '.', '-' or '_'.").to_owned()));
            }
            Some(system_id.to_owned())
        }
        _ => None,
    };
    let redfish = form.driver == OobmDriver::Redfish;
    Ok(ConfigureOobmRequest {
        driver: form.driver,
        address: address.to_owned(),
        port,
        username,
        password,
        ipmi_cipher_suite,
        redfish_https: redfish.then_some(form.https),
        redfish_accept_self_signed: redfish && form.https && form.accept_self_signed,
        redfish_auth: form.auth,
        redfish_system_id,
    })
}

fn driver_value(driver: OobmDriver) -> &'static str {
    match driver {
        OobmDriver::Ipmitool => "ipmitool",
        OobmDriver::Redfish => "redfish",
    }
}

/// The driver's name for people.
pub fn driver_label(driver: OobmDriver) -> &'static str {
    match driver {
        OobmDriver::Ipmitool => "IPMI v2.0 (lanplus, ipmitool)",
        OobmDriver::Redfish => "Redfish",
    }
}

/// A failed BMC call's kind, in words.
pub fn failure_label(kind: OobmErrorKind) -> &'static str {
    match kind {
        OobmErrorKind::Unreachable => t("BMC unreachable"),
        OobmErrorKind::Auth => t("Authentication failed"),
        OobmErrorKind::Timeout => t("No answer within the timeout"),
        OobmErrorKind::Unsupported => t("Not supported by the BMC"),
        OobmErrorKind::Protocol => t("Unexpected answer from the BMC"),
    }
}

/// A failed BMC call in one sentence. The server's message already says what went wrong ("the BMC
/// is unreachable: …", "the BMC refused the credentials: …"), so it is shown as it is, capitalised;
/// the kind's label only stands in for an empty message.
pub fn failure_text(failure: &OobmFailure) -> String {
    let message = server_text(failure.message.trim());
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => failure_label(failure.kind).to_owned(),
    }
}

fn power_label(power: PowerState) -> &'static str {
    crate::components::badges::power_word(power).1
}

/// What a connection test found, in one sentence.
pub fn test_summary(result: &OobmTestResult) -> String {
    match &result.error {
        None => tf(
            "Connection works: the BMC reports power {power} ({ms} ms).",
            &[("power", power_label(result.power_state)), ("ms", &result.elapsed_ms.to_string())],
        ),
        Some(failure) => tf(
            "Connection failed. {failure} ({ms} ms)",
            &[("failure", &failure_text(failure)), ("ms", &result.elapsed_ms.to_string())],
        ),
    }
}

/// Refusals per field, shown next to each field.
type FieldErrors = RwSignal<Vec<(Field, String)>>;

fn error_of(errors: FieldErrors, field: Field) -> Signal<Option<String>> {
    Signal::derive(move || {
        errors.with(|errors| errors.iter().find(|(known, _)| *known == field).map(|(_, message)| message.clone()))
    })
}

/// Puts a failed call's message next to the field it names, or below the form.
fn show_failure(failure: &ClientError, errors: FieldErrors, general: RwSignal<Option<String>>) {
    let message = failure.to_string();
    match failure {
        ClientError::Api { status: 400, error } => match field_of(&error.code, &error.message) {
            Some(field) => errors.set(vec![(field, server_text(message.trim_start_matches("settings.")))]),
            None => general.set(Some(server_text(&message))),
        },
        _ => general.set(Some(server_text(&message))),
    }
}

/// A labelled input with its hint and, when the field was refused, the reason (announced, and tied to
/// the input with `aria-describedby`).
#[component]
fn OobmInput(
    #[prop(into)] id: String,
    #[prop(into)] label: String,
    value: RwSignal<String>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] placeholder: Option<Signal<String>>,
    #[prop(optional, into)] hint: Option<Signal<String>>,
    #[prop(into)] error: Signal<Option<String>>,
    #[prop(default = "off")] autocomplete: &'static str,
    #[prop(optional)] autofocus: bool,
) -> impl IntoView {
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described = {
        let (hint_id, error_id) = (hint_id.clone(), error_id.clone());
        move || {
            let mut ids = Vec::new();
            if hint.is_some() {
                ids.push(hint_id.clone());
            }
            if error.with(Option::is_some) {
                ids.push(error_id.clone());
            }
            (!ids.is_empty()).then(|| ids.join(" "))
        }
    };
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                id=id
                type=kind
                autocomplete=autocomplete
                spellcheck="false"
                placeholder=move || placeholder.map(|placeholder| placeholder.get())
                autofocus=autofocus
                aria-invalid=move || error.with(Option::is_some).then_some("true")
                aria-describedby=described
                bind:value=value
            />
            {hint.map(|hint| view! { <span id=hint_id class="field-hint">{hint}</span> })}
            {move || error.get().map(|message| view! { <span id=error_id.clone() class="field-error">{message}</span> })}
        </div>
    }
}

/// "Configure out-of-band management for NAME". `current` is the stored configuration, if any;
/// `on_saved` receives what the server stored.
#[component]
pub fn ConfigureOobmDialog(
    host_id: HostId,
    #[prop(into)] host_name: String,
    current: Option<HostOobm>,
    on_saved: Callback<HostOobm>,
    on_close: Callback<()>,
) -> impl IntoView {
    let session = Session::expect();
    let password_stored = current.as_ref().is_some_and(|current| current.password_set);
    let initial_driver = current.as_ref().map_or(OobmDriver::Ipmitool, |current| current.driver);
    let initial_https = current.as_ref().is_none_or(|current| current.redfish_https);
    let driver = RwSignal::new(initial_driver);
    let https = RwSignal::new(initial_https);
    let address = RwSignal::new(current.as_ref().map(|current| current.address.clone()).unwrap_or_default());
    let port = RwSignal::new(
        current.as_ref().map_or_else(|| initial_driver.default_port(initial_https), |current| current.port).to_string(),
    );
    let username = RwSignal::new(current.as_ref().map(|current| current.username.clone()).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let cipher_suite = RwSignal::new(current.as_ref().map_or(3, |current| current.ipmi_cipher_suite).to_string());
    let accept_self_signed = RwSignal::new(current.as_ref().is_some_and(|current| current.redfish_accept_self_signed));
    let auth = RwSignal::new(current.as_ref().map(|current| current.redfish_auth).unwrap_or_default());
    let system_id =
        RwSignal::new(current.as_ref().and_then(|current| current.redfish_system_id.clone()).unwrap_or_default());
    let errors: FieldErrors = RwSignal::new(Vec::new());
    let general = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let testing = RwSignal::new(false);
    let tested = RwSignal::new(None::<OobmTestResult>);

    // The port follows the driver (and Redfish's protocol) while it still holds the old default.
    let follow_default = move |old: u16, new: u16| {
        port.update(|port| {
            if port.trim().is_empty() || port.trim() == old.to_string() {
                *port = new.to_string();
            }
        });
    };
    let driver_choices = Signal::stored(vec![
        Choice::new("ipmitool", driver_label(OobmDriver::Ipmitool)),
        Choice::new("redfish", driver_label(OobmDriver::Redfish)),
    ]);
    let driver_text = RwSignal::new(driver_value(initial_driver).to_owned());
    let choose_driver = Callback::new(move |value: String| {
        let chosen = if value == "redfish" { OobmDriver::Redfish } else { OobmDriver::Ipmitool };
        let old = driver.get_untracked();
        follow_default(old.default_port(https.get_untracked()), chosen.default_port(https.get_untracked()));
        driver.set(chosen);
        driver_text.set(value);
        tested.set(None);
    });
    let protocol_choices = Signal::stored(vec![Choice::new("https", "HTTPS"), Choice::new("http", "HTTP")]);
    let protocol_text = RwSignal::new(if initial_https { "https" } else { "http" }.to_owned());
    let choose_protocol = Callback::new(move |value: String| {
        let secure = value == "https";
        let driver = driver.get_untracked();
        follow_default(driver.default_port(https.get_untracked()), driver.default_port(secure));
        https.set(secure);
        protocol_text.set(value);
    });
    let auth_choices = Signal::stored(vec![
        Choice::new("basic", t("Basic (on every request)")),
        Choice::new("session", t("Session (X-Auth-Token)")),
    ]);
    let auth_text =
        RwSignal::new(if auth.get_untracked() == RedfishAuth::Session { "session" } else { "basic" }.to_owned());
    let choose_auth = Callback::new(move |value: String| {
        auth.set(if value == "session" { RedfishAuth::Session } else { RedfishAuth::Basic });
        auth_text.set(value);
    });
    let redfish = Memo::new(move |_| driver.get() == OobmDriver::Redfish);

    let form = move || OobmForm {
        driver: driver.get_untracked(),
        address: address.get_untracked(),
        port: port.get_untracked(),
        username: username.get_untracked(),
        password: password.get_untracked(),
        cipher_suite: cipher_suite.get_untracked(),
        https: https.get_untracked(),
        accept_self_signed: accept_self_signed.get_untracked(),
        auth: auth.get_untracked(),
        system_id: system_id.get_untracked(),
    };
    // Checks the form; a mistake goes next to its field.
    let checked = move || {
        errors.set(Vec::new());
        general.set(None);
        oobm_request(&form(), password_stored).map_err(|(field, message)| errors.set(vec![(field, message)])).ok()
    };

    let test = move |_| {
        let Some(settings) = checked() else {
            return;
        };
        tested.set(None);
        testing.set(true);
        spawn_local(async move {
            match api_client::test_oobm(host_id, &TestOobmRequest { settings: Some(settings) }).await {
                Ok(result) => tested.set(Some(result)),
                Err(failure) => {
                    session.notice(&failure);
                    show_failure(&failure, errors, general);
                }
            }
            testing.set(false);
        });
    };
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let Some(request) = checked() else {
            return;
        };
        pending.set(true);
        spawn_local(async move {
            match api_client::configure_oobm(host_id, &request).await {
                Ok(stored) => {
                    on_saved.run(stored);
                    on_close.run(());
                }
                Err(failure) => {
                    session.notice(&failure);
                    show_failure(&failure, errors, general);
                    pending.set(false);
                }
            }
        });
    };

    let port_hint = Signal::derive(move || {
        let driver = driver.get();
        let default = driver.default_port(https.get()).to_string();
        match driver {
            OobmDriver::Ipmitool => {
                tf("IPMI's port is {port} unless the BMC was set up otherwise.", &[("port", &default)])
            }
            OobmDriver::Redfish => tf(
                "Redfish over {protocol} listens on {port} by default.",
                &[("protocol", &protocol_text.get().to_uppercase()), ("port", &default)],
            ),
        }
    });
    let password_hint = Signal::derive(move || {
        let max = IPMI_MAX_PASSWORD.to_string();
        let args = [("max", max.as_str())];
        match (password_stored, driver.get() == OobmDriver::Ipmitool) {
            (true, true) => tf(
                "A password is stored; it is never shown. Leave this empty to keep it. At most {max} bytes for IPMI.",
                &args,
            ),
            (true, false) => t("A password is stored; it is never shown. Leave this empty to keep it.").to_owned(),
            (false, true) => tf("Required. Stored encrypted; never shown again. At most {max} bytes for IPMI.", &args),
            (false, false) => t("Required. Stored encrypted; never shown again.").to_owned(),
        }
    });
    let password_placeholder = Signal::stored(if password_stored { t("(stored password)") } else { "" }.to_owned());
    let test_result = move || {
        tested.get().map(|result| {
            let class = if result.ok { "oobm-test-result oobm-test-ok" } else { "oobm-test-result oobm-test-failed" };
            view! { <p class=class>{test_summary(&result)}</p> }
        })
    };

    view! {
        <Dialog title=tf("Configure out-of-band management for {name}", &[("name", &host_name)]) on_close>
            <form class="dialog-form oobm-form" on:submit=submit novalidate>
                <ChoiceSelect
                    id="oobm-driver"
                    label=t("Driver")
                    choices=driver_choices
                    value=driver_text
                    on_choose=choose_driver
                    autofocus=true
                />
                <div class="field-row oobm-address-row">
                    <OobmInput
                        id="oobm-address"
                        label=t("Address")
                        value=address
                        placeholder=Signal::stored(t("10.0.0.21 or bmc-1.example").to_owned())
                        error=error_of(errors, Field::Address)
                    />
                    <OobmInput
                        id="oobm-port"
                        label=t("Port")
                        kind="number"
                        value=port
                        hint=port_hint
                        error=error_of(errors, Field::Port)
                    />
                </div>
                <div class="field-row">
                    <OobmInput
                        id="oobm-username"
                        label=t("Username")
                        value=username
                        error=error_of(errors, Field::Username)
                    />
                    <OobmInput
                        id="oobm-password"
                        label=t("Password")
                        kind="password"
                        autocomplete="new-password"
                        value=password
                        placeholder=password_placeholder
                        hint=password_hint
                        error=error_of(errors, Field::Password)
                    />
                </div>
                <Show when=move || password_stored>
                    <p class="oobm-password-set" data-password-set="true">
                        <span class="pill pill-on">{t("Password set")}</span>
                    </p>
                </Show>
                <Show
                    when=move || redfish.get()
                    fallback=move || {
                        view! {
                            <OobmInput
                                id="oobm-cipher-suite"
                                label=t("IPMI cipher suite")
                                kind="number"
                                value=cipher_suite
                                hint=Signal::stored(
                                    t("3 = HMAC-SHA1 / AES-CBC-128, ipmitool's default. 0 is refused: it checks no password.")
                                        .to_owned(),
                                )
                                error=error_of(errors, Field::CipherSuite)
                            />
                        }
                    }
                >
                    <div class="field-row">
                        <ChoiceSelect
                            id="oobm-protocol"
                            label=t("Protocol")
                            choices=protocol_choices
                            value=protocol_text
                            on_choose=choose_protocol
                        />
                        <ChoiceSelect
                            id="oobm-redfish-auth"
                            label=t("Authentication")
                            choices=auth_choices
                            value=auth_text
                            on_choose=choose_auth
                        />
                    </div>
                    <label class="checkbox">
                        <input
                            type="checkbox"
                            id="oobm-self-signed"
                            disabled=move || !https.get()
                            bind:checked=accept_self_signed
                        />
                        {t("Accept self-signed certificate")}
                    </label>
                    <OobmInput
                        id="oobm-system-id"
                        label=t("System id (optional)")
                        value=system_id
                        hint=Signal::stored(t("Which member of /redfish/v1/Systems; empty takes the only one.").to_owned())
                        error=error_of(errors, Field::SystemId)
                    />
                </Show>
                <div class="oobm-test" aria-live="polite">
                    <button
                        type="button"
                        class="button"
                        disabled=move || testing.get() || pending.get()
                        on:click=test
                    >
                        {move || if testing.get() { t("Testing…") } else { t("Test connection") }}
                    </button>
                    <span class="field-hint">{t("Reads the power state with these settings; saves nothing.")}</span>
                    {test_result}
                </div>
                <FormError error=general />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Saving…") } else { t("Save") }}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

/// "Change BMC password of NAME": a new password for the configured BMC user, typed twice; set on the
/// BMC and in the server's store, or neither. `on_changed` receives the configuration afterwards.
#[component]
pub fn ChangeBmcPasswordDialog(
    host_id: HostId,
    #[prop(into)] host_name: String,
    driver: OobmDriver,
    #[prop(into)] username: String,
    on_changed: Callback<HostOobm>,
    on_close: Callback<()>,
) -> impl IntoView {
    let session = Session::expect();
    let first = RwSignal::new(String::new());
    let again = RwSignal::new(String::new());
    let errors: FieldErrors = RwSignal::new(Vec::new());
    let general = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        errors.set(Vec::new());
        general.set(None);
        let new_password = first.get_untracked();
        let problem = if new_password.is_empty() {
            Some((Field::Password, t("New password: type the new password.").to_owned()))
        } else if driver == OobmDriver::Ipmitool && new_password.len() > IPMI_MAX_PASSWORD {
            let max = IPMI_MAX_PASSWORD.to_string();
            Some((Field::Password, tf("New password: IPMI allows at most {max} bytes.", &[("max", &max)])))
        } else if again.with_untracked(|again| *again != new_password) {
            Some((Field::PasswordAgain, t("Repeat new password: the two passwords differ.").to_owned()))
        } else {
            None
        };
        if let Some(problem) = problem {
            errors.set(vec![problem]);
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match api_client::change_oobm_password(host_id, new_password).await {
                Ok(stored) => {
                    on_changed.run(stored);
                    on_close.run(());
                }
                Err(failure) => {
                    session.notice(&failure);
                    show_failure(&failure, errors, general);
                    pending.set(false);
                }
            }
        });
    };

    view! {
        <Dialog title=tf("Change BMC password of {name}", &[("name", &host_name)]) on_close>
            <form class="dialog-form" on:submit=submit novalidate>
                <p>
                    {tf(
                        "Sets a new password for BMC user {username} on the BMC itself and in Parapet's store: both change, or neither does.",
                        &[("username", &username)],
                    )}
                </p>
                <OobmInput
                    id="oobm-new-password"
                    label=t("New password")
                    kind="password"
                    autocomplete="new-password"
                    value=first
                    autofocus=true
                    error=error_of(errors, Field::Password)
                />
                <OobmInput
                    id="oobm-new-password-again"
                    label=t("Repeat new password")
                    kind="password"
                    autocomplete="new-password"
                    value=again
                    error=error_of(errors, Field::PasswordAgain)
                />
                <FormError error=general />
                <div class="dialog-actions">
                    <button type="button" class="button button-quiet" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Changing…") } else { t("Change password") }}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(driver: OobmDriver) -> OobmForm {
        OobmForm {
            driver,
            address: " 10.0.0.5 ".into(),
            port: String::new(),
            username: "admin".into(),
            password: "secret".into(),
            cipher_suite: "3".into(),
            https: true,
            accept_self_signed: true,
            auth: RedfishAuth::Basic,
            system_id: String::new(),
        }
    }

    #[test]
    fn a_blank_port_takes_the_drivers_default_and_options_follow_the_driver() {
        let request = oobm_request(&form(OobmDriver::Ipmitool), false).unwrap();
        assert_eq!((request.address.as_str(), request.port, request.ipmi_cipher_suite), ("10.0.0.5", None, Some(3)));
        assert_eq!((request.redfish_https, request.redfish_accept_self_signed), (None, false));
        let mut plain = form(OobmDriver::Redfish);
        plain.https = false;
        plain.port = "8000".into();
        let request = oobm_request(&plain, false).unwrap();
        assert_eq!((request.port, request.redfish_https, request.ipmi_cipher_suite), (Some(8000), Some(false), None));
        assert!(!request.redfish_accept_self_signed, "no certificate over plain HTTP");
    }

    #[test]
    fn an_empty_password_keeps_the_stored_one_and_is_required_without_one() {
        let mut keep = form(OobmDriver::Redfish);
        keep.password = String::new();
        assert_eq!(oobm_request(&keep, true).unwrap().password, None);
        assert_eq!(oobm_request(&keep, false).unwrap_err().0, Field::Password);
    }

    #[test]
    fn mistakes_name_their_field() {
        let mut bad = form(OobmDriver::Ipmitool);
        bad.port = "70000".into();
        assert_eq!(oobm_request(&bad, true).unwrap_err().0, Field::Port);
        let mut bad = form(OobmDriver::Ipmitool);
        bad.cipher_suite = "0".into();
        assert_eq!(oobm_request(&bad, true).unwrap_err().0, Field::CipherSuite);
        let mut bad = form(OobmDriver::Ipmitool);
        bad.password = "x".repeat(21);
        assert_eq!(oobm_request(&bad, true).unwrap_err().0, Field::Password);
        let mut bad = form(OobmDriver::Redfish);
        bad.username = " ".into();
        assert_eq!(oobm_request(&bad, true).unwrap_err().0, Field::Username);
        let mut bad = form(OobmDriver::Redfish);
        bad.address = String::new();
        assert_eq!(oobm_request(&bad, true).unwrap_err().0, Field::Address);
    }

    #[test]
    fn server_refusals_find_their_field() {
        assert_eq!(field_of("invalid-address", "address: must be…"), Some(Field::Address));
        assert_eq!(field_of("missing-password", "settings.password: nothing is stored yet"), Some(Field::Password));
        assert_eq!(field_of("invalid-body", "port: invalid type"), Some(Field::Port));
        assert_eq!(field_of("oobm-auth", "the BMC refused"), None);
    }

    #[test]
    fn a_failed_test_says_what_the_server_found_once() {
        let failure = |message: &str| OobmFailure { kind: OobmErrorKind::Unreachable, message: message.into() };
        let result = OobmTestResult {
            ok: false,
            power_state: PowerState::Unknown,
            error: Some(failure("the BMC is unreachable: connection refused")),
            elapsed_ms: 3,
        };
        assert_eq!(test_summary(&result), "Connection failed. The BMC is unreachable: connection refused (3 ms)");
        assert_eq!(failure_text(&failure(" ")), "BMC unreachable");
    }
}
