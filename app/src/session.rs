//! Who is signed in: the console-wide session state, asked of the server at start-up and kept fresh.
//!
//! The session itself is an HttpOnly cookie the console cannot read; this state is only the console's
//! belief about it. Any 401 from the server corrects that belief (see [`Session::notice`]).

use crate::api_client::{self, ClientError};
use api::v1::{Me, Role};
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

    /// Who may, in words, for "why can't I?" texts.
    fn who(self) -> &'static str {
        match self {
            Ability::OperateVms | Ability::AcknowledgeAlerts => "VM operators, pool operators and pool admins",
            Ability::ManagePool | Ability::ManageHa | Ability::OverrideOvercommit | Ability::ReadAudit => {
                "pool operators and pool admins"
            }
            Ability::AdministerPool => "pool admins",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Ability::OperateVms => "operate VMs",
            Ability::AcknowledgeAlerts => "acknowledge alerts",
            Ability::ManagePool => "change the pool's hosts, offerings and placement",
            Ability::ManageHa => "change HA settings",
            Ability::OverrideOvercommit => "proceed past an overcommit warning or lower the host failure limit",
            Ability::ReadAudit => "read the audit log",
            Ability::AdministerPool => "manage users",
        }
    }
}

#[derive(Clone, Copy)]
pub struct Session {
    state: RwSignal<SessionState>,
    phase: Memo<SessionPhase>,
}

impl Session {
    /// Creates the session context for the whole console and starts asking the server who we are.
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
        let session = Session { state, phase };
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
            let state = match api_client::me().await {
                Ok(me) => SessionState::SignedIn(me),
                Err(error) if error.is_unauthorized() => SessionState::SignedOut { return_here: true },
                Err(error) => SessionState::Unreachable(error.to_string()),
            };
            self.state.set(state);
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
            Some(role) => {
                Err(format!("Your role ({}) cannot {}; only {} can.", role.as_str(), ability.what(), ability.who()))
            }
            None => Err("Sign in first.".to_owned()),
        }
    }

    pub fn signed_in(self, me: Me) {
        self.state.set(SessionState::SignedIn(me));
    }

    /// The person chose to sign out: the login page then starts afresh.
    pub fn signed_out(self) {
        self.state.set(SessionState::SignedOut { return_here: false });
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
