//! The test run's bookkeeping: per-phase timings and outcomes, test counts, the final summary line.
//!
//! The last line of `cargo xtask test` is `xtask: N passed, M failed`. N and M add up the
//! `test result: ... N passed; M failed` lines of cargo test and Playwright's JSON report. A step that
//! fails without any failing test to show for it (rustfmt, clippy, a build error, a server that never
//! became ready) adds 1 to M, so that `M == 0` exactly when the run succeeded.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Not run, and why (e.g. nothing to test because an earlier step failed).
    Skipped(String),
    /// Failed; the text says how.
    Failed(String),
}

struct Phase {
    name: String,
    took: Duration,
    outcome: Outcome,
    note: String,
}

#[derive(Default)]
pub struct Report {
    phases: Vec<Phase>,
    pub passed: u64,
    pub failed: u64,
}

impl Report {
    /// Records a finished phase. `tests_failed` says whether this phase's failure is already counted in
    /// `failed` (failing tests); if not, the failed phase itself counts as one failure.
    pub fn record(&mut self, name: &str, took: Duration, outcome: Outcome, note: &str, tests_failed: bool) {
        let status = match &outcome {
            Outcome::Passed => "ok".to_owned(),
            Outcome::Skipped(why) => format!("skipped: {why}"),
            Outcome::Failed(why) => format!("FAILED: {why}"),
        };
        println!("xtask: <== {name}: {status} ({})", seconds(took));
        if matches!(outcome, Outcome::Failed(_)) && !tests_failed {
            self.failed += 1;
        }
        self.phases.push(Phase { name: name.to_owned(), took, outcome, note: note.to_owned() });
    }

    pub fn any_failed(&self) -> bool {
        self.failed > 0 || self.phases.iter().any(|phase| matches!(phase.outcome, Outcome::Failed(_)))
    }

    pub fn phase_passed(&self, name: &str) -> bool {
        self.phases.iter().any(|phase| phase.name == name && phase.outcome == Outcome::Passed)
    }

    /// The timing table, the failed phases, and the summary line as the very last line.
    pub fn print_summary(&self, total: Duration) {
        println!();
        println!("xtask: phases");
        for phase in &self.phases {
            let status = match &phase.outcome {
                Outcome::Passed => "ok",
                Outcome::Skipped(_) => "skipped",
                Outcome::Failed(_) => "FAILED",
            };
            println!("  {:<14} {:>9}  {:<7} {}", phase.name, seconds(phase.took), status, phase.note);
        }
        println!("  {:<14} {:>9}", "total", seconds(total));
        for phase in &self.phases {
            if let Outcome::Failed(why) = &phase.outcome {
                println!("xtask: FAILED {}: {why}", phase.name);
            }
        }
        println!("{}", summary_line(self.passed, self.failed));
    }
}

pub fn summary_line(passed: u64, failed: u64) -> String {
    format!("xtask: {passed} passed, {failed} failed")
}

pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 60.0 { format!("{}m{:04.1}s", (secs / 60.0).floor(), secs % 60.0) } else { format!("{secs:.1}s") }
}

/// Counts from one line of libtest output such as
/// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
pub fn parse_cargo_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_verdict, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(label)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match label {
            "passed" => passed = Some(number),
            "failed" => failed = Some(number),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// (passed, failed) from Playwright's JSON report: flaky tests passed in the end, unexpected ones failed.
pub fn parse_playwright_json(text: &str) -> anyhow::Result<(u64, u64)> {
    let json: serde_json::Value = serde_json::from_str(text)?;
    let stats = json.get("stats").ok_or_else(|| anyhow::anyhow!("no `stats` in Playwright's JSON report"))?;
    let count = |key: &str| stats.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut failed = count("unexpected");
    // A run that died before any test (config error, global timeout) has errors and no results.
    let errors = json.get("errors").and_then(serde_json::Value::as_array).map_or(0, Vec::len) as u64;
    if failed == 0 && errors > 0 {
        failed = errors;
    }
    Ok((count("expected") + count("flaky"), failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_test_result_lines_are_counted_whatever_the_verdict() {
        assert_eq!(
            parse_cargo_test_result(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            parse_cargo_test_result(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s"
            ),
            Some((3, 2))
        );
        assert_eq!(parse_cargo_test_result("running 3 tests"), None);
        assert_eq!(parse_cargo_test_result("test result_is_ok ... ok"), None);
    }

    #[test]
    fn playwright_json_stats_become_passed_and_failed() {
        let report = r#"{"stats": {"expected": 2, "unexpected": 1, "flaky": 1, "skipped": 3}, "errors": []}"#;
        assert_eq!(parse_playwright_json(report).unwrap(), (3, 1));
        let broken =
            r#"{"stats": {"expected": 0, "unexpected": 0, "flaky": 0, "skipped": 0}, "errors": [{"message": "x"}]}"#;
        assert_eq!(parse_playwright_json(broken).unwrap(), (0, 1));
        assert!(parse_playwright_json("{}").is_err());
    }

    #[test]
    fn the_summary_line_has_the_agreed_shape() {
        assert_eq!(summary_line(57, 0), "xtask: 57 passed, 0 failed");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(seconds(Duration::from_millis(1234)), "1.2s");
        assert_eq!(seconds(Duration::from_secs(125)), "2m05.0s");
    }
}
