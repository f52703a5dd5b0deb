//! The simulated BMC's one account and its Redfish sessions: who may call, by HTTP basic auth or by a
//! session token (`X-Auth-Token`), with idle expiry and a limit on open sessions as real BMCs have (a
//! client that never logs out runs out of sessions here as it would on a real one).

use rand::Rng;
use rand::distributions::Alphanumeric;
use std::time::{Duration, Instant};

/// The Redfish id of the one account (`/redfish/v1/AccountService/Accounts/1`).
pub const ACCOUNT_ID: &str = "1";
/// Password length limits, published in the AccountService resource as real BMCs do.
pub const MIN_PASSWORD_LENGTH: usize = 8;
pub const MAX_PASSWORD_LENGTH: usize = 64;

/// A random password of 20 letters and digits.
pub fn random_password() -> String {
    random_text(20)
}

fn random_text(length: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(length).map(char::from).collect()
}

/// Whether `password` fits the account policy; the error says why (without repeating the password).
pub fn validate_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length) {
        return Err(format!(
            "must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long, but has {length}"
        ));
    }
    if password.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    Ok(())
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    /// The session the request came with; `None` for basic auth.
    pub session_id: Option<String>,
}

/// An open session, as the Sessions collection lists it.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub username: String,
    token: String,
    last_used: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SessionRefused {
    BadCredentials,
    LimitReached,
}

pub struct Accounts {
    username: String,
    password: String,
    sessions: Vec<Session>,
    next_session: u64,
    session_timeout: Duration,
    max_sessions: usize,
}

impl Accounts {
    pub fn new(username: &str, password: &str, session_timeout: Duration, max_sessions: usize) -> Accounts {
        Accounts {
            username: username.to_owned(),
            password: password.to_owned(),
            sessions: Vec::new(),
            next_session: 1,
            session_timeout,
            max_sessions,
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    pub fn check_password(&self, username: &str, password: &str) -> bool {
        username == self.username && password == self.password
    }

    /// Change the password. Open sessions stay valid (a session token is a credential of its own),
    /// unless the caller also ends them with [`Accounts::end_all_sessions`].
    pub fn set_password(&mut self, password: &str) {
        password.clone_into(&mut self.password);
    }

    pub fn end_all_sessions(&mut self) {
        self.sessions.clear();
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.session_timeout;
        self.sessions.retain(|session| now.saturating_duration_since(session.last_used) < timeout);
    }

    /// The principal behind a session token, refreshing the session's idle timer.
    pub fn authenticate_token(&mut self, token: &str, now: Instant) -> Option<Principal> {
        self.expire(now);
        let session = self.sessions.iter_mut().find(|session| session.token == token)?;
        session.last_used = now;
        Some(Principal { username: session.username.clone(), session_id: Some(session.id.clone()) })
    }

    /// The principal behind basic-auth credentials.
    pub fn authenticate_password(&self, username: &str, password: &str) -> Option<Principal> {
        self.check_password(username, password).then(|| Principal { username: username.to_owned(), session_id: None })
    }

    /// Log in: a new session and its token.
    pub fn create_session(
        &mut self,
        username: &str,
        password: &str,
        now: Instant,
    ) -> Result<(Session, String), SessionRefused> {
        if !self.check_password(username, password) {
            return Err(SessionRefused::BadCredentials);
        }
        self.expire(now);
        if self.sessions.len() >= self.max_sessions {
            return Err(SessionRefused::LimitReached);
        }
        let token = random_text(40);
        let session = Session {
            id: self.next_session.to_string(),
            username: username.to_owned(),
            token: token.clone(),
            last_used: now,
        };
        self.next_session += 1;
        self.sessions.push(session.clone());
        Ok((session, token))
    }

    pub fn sessions(&mut self, now: Instant) -> Vec<Session> {
        self.expire(now);
        self.sessions.clone()
    }

    pub fn session(&mut self, id: &str, now: Instant) -> Option<Session> {
        self.expire(now);
        self.sessions.iter().find(|session| session.id == id).cloned()
    }

    /// Log out; false when no such session is open.
    pub fn delete_session(&mut self, id: &str) -> bool {
        let before = self.sessions.len();
        self.sessions.retain(|session| session.id != id);
        self.sessions.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::new("admin", "secret-pass", Duration::from_secs(60), 2)
    }

    #[test]
    fn sessions_need_the_password_expire_when_idle_and_are_limited() {
        let mut accounts = accounts();
        let start = Instant::now();
        assert_eq!(accounts.create_session("admin", "wrong", start).unwrap_err(), SessionRefused::BadCredentials);
        let (first, token) = accounts.create_session("admin", "secret-pass", start).unwrap();
        accounts.create_session("admin", "secret-pass", start).unwrap();
        assert_eq!(accounts.create_session("admin", "secret-pass", start).unwrap_err(), SessionRefused::LimitReached);
        // Use keeps a session alive; idleness ends it.
        let later = start + Duration::from_secs(50);
        assert_eq!(accounts.authenticate_token(&token, later).unwrap().session_id, Some(first.id.clone()));
        let much_later = start + Duration::from_secs(100);
        assert_eq!(accounts.sessions(much_later).len(), 1, "the unused second session expired");
        assert!(accounts.authenticate_token(&token, much_later).is_some());
        assert!(accounts.authenticate_token(&token, much_later + Duration::from_secs(61)).is_none());
        assert!(accounts.authenticate_token("made-up", much_later).is_none());
    }

    #[test]
    fn logging_out_ends_the_session() {
        let mut accounts = accounts();
        let now = Instant::now();
        let (session, token) = accounts.create_session("admin", "secret-pass", now).unwrap();
        assert!(accounts.delete_session(&session.id));
        assert!(!accounts.delete_session(&session.id));
        assert!(accounts.authenticate_token(&token, now).is_none());
    }

    #[test]
    fn a_password_change_applies_to_basic_auth_and_new_sessions() {
        let mut accounts = accounts();
        let now = Instant::now();
        let (_, token) = accounts.create_session("admin", "secret-pass", now).unwrap();
        accounts.set_password("another-pass");
        assert!(accounts.authenticate_password("admin", "secret-pass").is_none());
        assert!(accounts.authenticate_password("admin", "another-pass").is_some());
        assert!(accounts.authenticate_token(&token, now).is_some(), "open sessions survive a change");
        accounts.end_all_sessions();
        assert!(accounts.authenticate_token(&token, now).is_none());
    }

    #[test]
    fn the_password_policy_names_its_limits() {
        assert!(validate_password("short").unwrap_err().contains("8 to 64"));
        assert!(validate_password(&"x".repeat(65)).is_err());
        assert!(validate_password("has a space").is_err());
        assert!(validate_password("fine-password").is_ok());
        assert!(validate_password(&random_password()).is_ok());
    }
}
