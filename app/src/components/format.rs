//! Plain text formatting of sizes, frequencies, ages and restart priorities, shared by every page (pure
//! functions, tested).

use crate::i18n::{t, tf};
use api::v1::RestartPriority;
use chrono::{DateTime, Utc};

/// Every restart priority, from most to least protected.
pub const PRIORITIES: [RestartPriority; 3] =
    [RestartPriority::Restart, RestartPriority::BestEffort, RestartPriority::DoNotRestart];

/// A restart priority as the API spells it: "restart", "best-effort", "do-not-restart".
pub fn priority_word(priority: RestartPriority) -> &'static str {
    match priority {
        RestartPriority::Restart => "restart",
        RestartPriority::BestEffort => "best-effort",
        RestartPriority::DoNotRestart => "do-not-restart",
    }
}

/// A restart priority as XenCenter names it: "Restart", "Restart if possible", "Do not restart".
pub fn priority_label(priority: RestartPriority) -> &'static str {
    match priority {
        RestartPriority::Restart => t("Restart"),
        RestartPriority::BestEffort => t("Restart if possible"),
        RestartPriority::DoNotRestart => t("Do not restart"),
    }
}

/// The restart priority named by its API word.
pub fn parse_priority(word: &str) -> Option<RestartPriority> {
    PRIORITIES.into_iter().find(|priority| priority_word(*priority) == word)
}

/// "1 VM", "3 VMs".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Memory in the unit an operator reads fastest: MiB below 1 GiB, GiB with one decimal above.
pub fn memory(megabytes: u64) -> String {
    if megabytes < 1024 { format!("{megabytes} MiB") } else { format!("{:.1} GiB", megabytes as f64 / 1024.0) }
}

/// "used / total unit" for memory, both in the unit of the total so that they compare at a glance.
pub fn memory_of(used_megabytes: u64, total_megabytes: u64) -> String {
    if total_megabytes < 1024 {
        format!("{used_megabytes} / {total_megabytes} MiB")
    } else {
        format!("{:.1} / {:.1} GiB", used_megabytes as f64 / 1024.0, total_megabytes as f64 / 1024.0)
    }
}

/// "used / total MHz".
pub fn mhz_of(used: u32, total: u32) -> String {
    format!("{used} / {total} MHz")
}

/// A VM's size in CPU: its virtual cores and the MHz it reserves, e.g. "4 vCPU · 8000 MHz".
pub fn vcpus(cores: u32, mhz: u32) -> String {
    format!("{cores} vCPU · {mhz} MHz")
}

/// Share of `total` taken by `used`, in percent, clamped to 0..=100 (0 when there is no total).
pub fn percent(used: u64, total: u64) -> u32 {
    if total == 0 {
        return 0;
    }
    let share = (used as f64 / total as f64 * 100.0).round();
    share.clamp(0.0, 100.0) as u32
}

/// How long ago `at` was, as "2 s ago", "5 min ago", "3 h ago" or "4 d ago" ("never" for none).
/// A time slightly in the future (clocks differ) reads as "0 s ago".
pub fn ago(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> String {
    let Some(at) = at else {
        return t("never").to_owned();
    };
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..60 => tf("{n} s ago", &[("n", &seconds.to_string())]),
        60..3600 => tf("{n} min ago", &[("n", &(seconds / 60).to_string())]),
        3600..86400 => tf("{n} h ago", &[("n", &(seconds / 3600).to_string())]),
        _ => tf("{n} d ago", &[("n", &(seconds / 86400).to_string())]),
    }
}

/// An absolute time for tooltips, in UTC so that every operator reads the same value.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn memory_switches_to_gib_at_one_gib() {
        assert_eq!(memory(512), "512 MiB");
        assert_eq!(memory(2048), "2.0 GiB");
        assert_eq!(memory_of(1536, 65536), "1.5 / 64.0 GiB");
        assert_eq!(memory_of(256, 512), "256 / 512 MiB");
    }

    #[test]
    fn priorities_read_back_from_their_words() {
        for priority in PRIORITIES {
            assert_eq!(parse_priority(priority_word(priority)), Some(priority));
        }
        assert_eq!(parse_priority("always"), None);
        assert_eq!(count(1, "failure", "failures"), "1 failure");
        assert_eq!(count(0, "failure", "failures"), "0 failures");
    }

    #[test]
    fn percent_is_clamped_and_safe_with_no_total() {
        assert_eq!(percent(1, 4), 25);
        assert_eq!(percent(5, 4), 100);
        assert_eq!(percent(1, 0), 0);
    }

    #[test]
    fn ages_read_like_an_operator_says_them() {
        let now = Utc::now();
        assert_eq!(ago(now, None), "never");
        assert_eq!(ago(now, Some(now - TimeDelta::seconds(2))), "2 s ago");
        assert_eq!(ago(now, Some(now + TimeDelta::seconds(1))), "0 s ago");
        assert_eq!(ago(now, Some(now - TimeDelta::seconds(125))), "2 min ago");
        assert_eq!(ago(now, Some(now - TimeDelta::hours(5))), "5 h ago");
        assert_eq!(ago(now, Some(now - TimeDelta::days(3))), "3 d ago");
    }

    #[test]
    fn ages_and_priorities_read_in_korean() {
        use crate::i18n::{Lang, with_lang};
        let now = Utc::now();
        with_lang(Lang::Ko, || {
            assert_eq!(ago(now, Some(now - TimeDelta::seconds(2))), "2초 전");
            assert_eq!(ago(now, Some(now - TimeDelta::seconds(125))), "2분 전");
            assert_eq!(ago(now, Some(now - TimeDelta::hours(5))), "5시간 전");
            assert_eq!(ago(now, Some(now - TimeDelta::days(3))), "3일 전");
            assert_eq!(priority_label(RestartPriority::BestEffort), "가능하면 재시작");
        });
    }
}
