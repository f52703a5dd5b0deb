//! Who is signed in: the console-wide session state, asked of the server at start-up and kept fresh.
//!
//! The session itself is an HttpOnly cookie the console cannot read; this state is only the console's
//! belief about it. Any 401 from the server corrects that belief (see [`Session::notice`]).
//!
//! The console language chosen on the account comes with `Me`: it is put in force on sign-in, and
//! whenever it changed on the account (from another browser); [`Session::choose_language`] switches
//! and remembers a new choice.

use crate::api_client::{self, ClientError};
use crate::i18n::{I18n, Lang, server_text, t, tf};
use api::v1::{Language, Me, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// How often the console trades its session token for a fresh one (tokens live 15 minutes).
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

#[derive(Clone, Debug, PartialEq)]
pub enum SessionState {
    /// Asking the server whether the session cookie is still good.
    Checking,
    SignedIn(Me),
    /// Nobody is signed in. `return_here` is true when the session ended by itself (expired), so the
    /// login page should bring the person back to where they were; false after "Sign out".
    SignedOut {
        return_here: bool,
    },
    /// The server could not be asked (down or unreachable); the message says why.
    Unreachable(String),
}

/// [`SessionState`] without its data, so that views depending on it do not re-render on a refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionPhase {
    Checking,
    SignedIn,
    SignedOut,
    Unreachable,
}

/// What a role may do, as the console offers it. The server checks the same on every call; the console
/// only hides or disables what would be refused, and says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ability {
    /// Start, stop, restart VMs; deploy VMs where placement chooses the host.
    OperateVms,
    /// Acknowledge alerts (those who watch the pool and act on it).
    AcknowledgeAlerts,
    /// Compute offerings, host enable/disable/maintenance/tags/removal, migration, deploy to a chosen host.
    ManagePool,
    /// VM HA settings (protection, restart priority, order, delay) and a cluster's host failure limit.
    ManageHa,
    /// Proceed past an overcommit warning, or lower the host failure limit to proceed.
    OverrideOvercommit,
    /// Read the audit log.
    ReadAudit,
    /// Users and roles.
    AdministerPool,
}

impl Ability {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Ability::OperateVms | Ability::AcknowledgeAlerts => {
                matches!(role, Role::PoolAdmin | Role::PoolOperator | Role::VmOperator)
            }
            Ability::ManagePool | Ability::ManageHa | Ability::OverrideOvercommit | Ability::ReadAudit => {
                matches!(role, Role::PoolAdmin | Role::PoolOperator)
            }
            Ability::AdministerPool => role == Role::PoolAdmin,
        }
    }

    /// Who may, in words (translated), for "why can't I?" texts.
    fn who(self) -> &'static str {
        match self {
            Ability::OperateVms | Ability::AcknowledgeAlerts => t("VM operators, pool operators and pool admins"),
            Ability::ManagePool | Ability::ManageHa | Ability::OverrideOvercommit | Ability::ReadAudit => {
                t("pool operators and pool admins")
            }
            Ability::AdministerPool => t("pool admins"),
        }
    }

    /// What the ability is, in words (translated).
    fn what(self) -> &'static str {
        match self {
            Ability::OperateVms => t("operate VMs"),
            Ability::AcknowledgeAlerts => t("acknowledge alerts"),
            Ability::ManagePool => t("change the pool's hosts, offerings and placement"),
            Ability::ManageHa => t("change HA settings"),
            Ability::OverrideOvercommit => t("proceed past an overcommit warning or lower the host failure limit"),
            Ability::ReadAudit => t("read the audit log"),
            Ability::AdministerPool => t("manage users"),
        }
    }

    /// Why `role` may not: "Your role (read-only) cannot operate VMs; only … can."
    fn refusal(self, role: Role) -> String {
        tf(
            "Your role ({role}) cannot {what}; only {who} can.",
            &[("role", crate::pages::account::role_name(role)), ("what", self.what()), ("who", self.who())],
        )
    }
}

/// The account's language as the console's.
pub fn lang_of(language: Language) -> Lang {
    match language {
        Language::En => Lang::En,
        Language::Ko => Lang::Ko,
    }
}

/// The console's language as the account's.
pub fn language_of(lang: Lang) -> Language {
    match lang {
        Lang::En => Language::En,
        Lang::Ko => Language::Ko,
    }
}

/// The language to put in force when `Me` arrives: the account's, on a fresh sign-in or when it changed
/// on the account since the console last heard (another browser); otherwise the console keeps what it
/// shows (a periodic refresh must not undo a choice the server failed to save).
fn language_to_apply(fresh_sign_in: bool, known: Option<Language>, arrived: Option<Language>) -> Option<Lang> {
    let arrived = arrived?;
    (fresh_sign_in || known != Some(arrived)).then(|| lang_of(arrived))
}

#[derive(Clone, Copy)]
pub struct Session {
    state: RwSignal<SessionState>,
    phase: Memo<SessionPhase>,
    i18n: I18n,
    /// The language the account is known to have: from the last `Me`, or the last choice it saved.
    account_language: StoredValue<Option<Language>>,
    /// Why the last language choice could not be saved on the account; the signed-in frame shows it
    /// as the store's problem (the frame is rebuilt by the switch, so it cannot be handed over directly).
    language_problem: RwSignal<Option<String>>,
}

impl Session {
    /// Creates the session context for the whole console and starts asking the server who we are.
    /// Needs the [`I18n`] context.
    pub fn provide() -> Session {
        let state = RwSignal::new(SessionState::Checking);
        let phase = Memo::new(move |_| {
            state.with(|state| match state {
                SessionState::Checking => SessionPhase::Checking,
                SessionState::SignedIn(_) => SessionPhase::SignedIn,
                SessionState::SignedOut { .. } => SessionPhase::SignedOut,
                SessionState::Unreachable(_) => SessionPhase::Unreachable,
            })
        });
        let session = Session {
            state,
            phase,
            i18n: I18n::expect(),
            account_language: StoredValue::new(None),
            language_problem: RwSignal::new(None),
        };
        provide_context(session);
        session.check();
        session
    }

    pub fn expect() -> Session {
        expect_context::<Session>()
    }

    /// Asks the server whether the session cookie is (still) good.
    pub fn check(self) {
        self.state.set(SessionState::Checking);
        spawn_local(async move {
            match api_client::me().await {
                Ok(me) => self.signed_in(me),
                Err(error) if error.is_unauthorized() => self.state.set(SessionState::SignedOut { return_here: true }),
                Err(error) => self.state.set(SessionState::Unreachable(server_text(&error.to_string()))),
            }
        });
    }

    pub fn phase(self) -> SessionPhase {
        self.phase.get()
    }

    /// The reason the server could not be asked, when it could not.
    pub fn unreachable_reason(self) -> Option<String> {
        self.state.with(|state| match state {
            SessionState::Unreachable(reason) => Some(reason.clone()),
            _ => None,
        })
    }

    pub fn username(self) -> Option<String> {
        self.state.with(|state| match state {
            SessionState::SignedIn(me) => Some(me.username.clone()),
            _ => None,
        })
    }

    pub fn role(self) -> Option<Role> {
        self.state.with(|state| match state {
            SessionState::SignedIn(me) => Some(me.role),
            _ => None,
        })
    }

    /// Read-only accounts see the pool but cannot power VMs on or off. Untracked on purpose: see
    /// [`crate::components::vm_power`].
    pub fn can_operate_vms_untracked(self) -> bool {
        self.may_untracked(Ability::OperateVms).is_ok()
    }

    /// `Ok` when the signed-in role may do this, else the reason in words ("Your role (read-only) cannot
    /// operate VMs; VM operators, ... can."). Untracked for the same reason as
    /// [`Session::can_operate_vms_untracked`].
    pub fn may_untracked(self, ability: Ability) -> Result<(), String> {
        let role = self.state.with_untracked(|state| match state {
            SessionState::SignedIn(me) => Some(me.role),
            _ => None,
        });
        match role {
            Some(role) if ability.allows(role) => Ok(()),
            Some(role) => Err(ability.refusal(role)),
            None => Err(t("Sign in first.").to_owned()),
        }
    }

    /// `me` arrived (sign-in, start-up, refresh, password change): keeps it, and puts the account's
    /// language in force on a fresh sign-in or when it changed on the account.
    pub fn signed_in(self, me: Me) {
        let fresh = self.phase.get_untracked() != SessionPhase::SignedIn;
        if fresh {
            self.language_problem.set(None);
        }
        let apply = language_to_apply(fresh, self.account_language.get_value(), me.language);
        self.account_language.set_value(me.language);
        self.state.set(SessionState::SignedIn(me));
        if let Some(lang) = apply {
            self.i18n.apply(lang);
        }
    }

    /// The person chose to sign out: the login page then starts afresh.
    pub fn signed_out(self) {
        self.language_problem.set(None);
        self.state.set(SessionState::SignedOut { return_here: false });
    }

    /// The person chose `lang` (language menu): the console switches at once and remembers it in this
    /// browser and, when someone is signed in, on their account. A failure to save it on the account
    /// shows as [`Session::language_problem`].
    pub fn choose_language(self, lang: Lang) {
        self.language_problem.set(None);
        self.i18n.set(lang);
        if self.phase.get_untracked() != SessionPhase::SignedIn {
            return;
        }
        let language = language_of(lang);
        spawn_local(async move {
            match api_client::set_language(language).await {
                Ok(()) => self.account_language.set_value(Some(language)),
                Err(error) => {
                    self.notice(&error);
                    let problem = tf(
                        "Your language could not be saved on your account: {error}",
                        &[("error", &server_text(&error.to_string()))],
                    );
                    self.language_problem.set(Some(problem));
                }
            }
        });
    }

    /// Why the last language choice could not be saved on the account (tracked).
    pub fn language_problem(self) -> Option<String> {
        self.language_problem.get()
    }

    /// Whether the login page should return to the current page after the next sign-in.
    pub fn return_here(self) -> bool {
        self.state.with_untracked(|state| matches!(state, SessionState::SignedOut { return_here: true }))
    }

    /// Learns from a failed call: a 401 means the session expired, so the console asks for a new sign-in
    /// and comes back here afterwards.
    pub fn notice(self, error: &ClientError) {
        if error.is_unauthorized() && self.phase.get_untracked() == SessionPhase::SignedIn {
            self.state.set(SessionState::SignedOut { return_here: true });
        }
    }

    /// Trades the session for a fresh one; called periodically while the console is open.
    pub fn refresh(self) {
        spawn_local(async move {
            match api_client::refresh().await {
                Ok(me) => self.signed_in(me),
                Err(error) => self.notice(&error),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_convert_both_ways() {
        for lang in Lang::ALL {
            assert_eq!(lang_of(language_of(lang)), lang);
            assert_eq!(language_of(lang).as_str(), lang.tag());
        }
    }

    #[test]
    fn the_account_language_applies_on_sign_in_and_when_it_changed() {
        use Language::{En, Ko};
        assert_eq!(language_to_apply(true, None, Some(Ko)), Some(Lang::Ko));
        assert_eq!(language_to_apply(true, Some(Ko), Some(Ko)), Some(Lang::Ko), "a fresh sign-in always applies");
        assert_eq!(language_to_apply(true, Some(Ko), None), None, "never chosen: the browser's stays");
        assert_eq!(language_to_apply(false, Some(Ko), Some(Ko)), None, "a refresh keeps what is shown");
        assert_eq!(language_to_apply(false, Some(Ko), Some(En)), Some(Lang::En), "changed in another browser");
        assert_eq!(language_to_apply(false, None, None), None);
    }

    #[test]
    fn refusals_name_the_role_the_ability_and_who_may() {
        assert_eq!(
            Ability::OperateVms.refusal(Role::ReadOnly),
            "Your role (read-only) cannot operate VMs; only VM operators, pool operators and pool admins can."
        );
        assert!(Ability::AdministerPool.allows(Role::PoolAdmin) && !Ability::AdministerPool.allows(Role::PoolOperator));
        crate::i18n::with_lang(Lang::Ko, || {
            assert_eq!(
                Ability::AdministerPool.refusal(Role::VmOperator),
                "현재 역할(가상머신 운영자)에는 사용자 관리 권한이 없습니다. 풀 관리자만 할 수 있습니다."
            );
        });
    }
}
