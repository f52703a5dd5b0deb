//! Failed sign-ins are throttled per account and per client address: after too many failures inside
//! a window, further attempts are refused until the oldest failure leaves the window. Guessing a
//! password then takes years; a user who mistyped waits a few minutes and is told how long.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub failures: usize,
    pub window: Duration,
}

pub struct LoginThrottle {
    per_account: Limit,
    per_address: Limit,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(
            Limit { failures: 5, window: Duration::from_secs(300) },
            Limit { failures: 20, window: Duration::from_secs(300) },
        )
    }
}

fn account_key(username: &str) -> String {
    format!("account:{}", username.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

impl LoginThrottle {
    pub fn new(per_account: Limit, per_address: Limit) -> Self {
        LoginThrottle { per_account, per_address, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(message)` when this account or address must wait; the message says which and how long.
    pub fn check(&self, username: &str, address: &str, now: Instant) -> Result<(), String> {
        let mut failures = self.failures.lock().unwrap();
        for (key, limit, what) in [
            (account_key(username), self.per_account, format!("account {username:?}")),
            (address_key(address), self.per_address, format!("your address ({address})")),
        ] {
            if let Some(times) = failures.get_mut(&key) {
                while times.front().is_some_and(|time| now.duration_since(*time) >= limit.window) {
                    times.pop_front();
                }
                if times.len() >= limit.failures {
                    let oldest = times[times.len() - limit.failures];
                    let wait = limit.window.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
                    return Err(format!("too many failed sign-ins for {what}; try again in {wait} s"));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, username: &str, address: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap();
        for key in [account_key(username), address_key(address)] {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            // Keep memory bounded whatever an attacker sends.
            while times.len() > 64 {
                times.pop_front();
            }
        }
        // Forget keys whose failures are all old, so the map cannot grow without bound.
        let window = self.per_account.window.max(self.per_address.window);
        failures.retain(|_, times| times.back().is_some_and(|time| now.duration_since(*time) < window));
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn record_success(&self, username: &str) {
        self.failures.lock().unwrap().remove(&account_key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            Limit { failures: 3, window: Duration::from_secs(60) },
            Limit { failures: 5, window: Duration::from_secs(60) },
        )
    }

    #[test]
    fn an_account_is_held_after_its_failures_and_released_by_time() {
        let throttle = throttle();
        let start = Instant::now();
        for second in 0..3 {
            assert!(throttle.check("alice", "10.0.0.1", start + Duration::from_secs(second)).is_ok());
            throttle.record_failure("alice", "10.0.0.1", start + Duration::from_secs(second));
        }
        let refused = throttle.check("Alice", "10.0.0.2", start + Duration::from_secs(10)).unwrap_err();
        assert!(refused.contains("account \"Alice\"") && refused.contains("50 s"), "{refused}");
        assert!(throttle.check("bob", "10.0.0.2", start + Duration::from_secs(10)).is_ok(), "other accounts are free");
        assert!(throttle.check("alice", "10.0.0.2", start + Duration::from_secs(61)).is_ok(), "the window passes");
    }

    #[test]
    fn an_address_trying_many_accounts_is_held() {
        let throttle = throttle();
        let now = Instant::now();
        for user in ["a", "b", "c", "d", "e"] {
            throttle.record_failure(user, "10.0.0.9", now);
        }
        let refused = throttle.check("f", "10.0.0.9", now).unwrap_err();
        assert!(refused.contains("your address"), "{refused}");
        assert!(throttle.check("f", "10.0.0.8", now).is_ok());
    }

    #[test]
    fn success_clears_the_accounts_failures() {
        let throttle = throttle();
        let now = Instant::now();
        for _ in 0..2 {
            throttle.record_failure("alice", "10.0.0.1", now);
        }
        throttle.record_success("alice");
        throttle.record_failure("alice", "10.0.0.1", now);
        assert!(throttle.check("alice", "10.0.0.1", now).is_ok());
    }
}
