//! The HA scenario runner: drives the pure decision core (`decide`) against a simulated world on
//! virtual time, from a scenario file (docs/ha-scenarios.md), checking invariants after every tick.
//!
//! * [`format`]: the scenario file (TOML): pool, fault schedule, expected outcome.
//! * [`world`]: hosts with agents (network and storage heartbeats, peer heartbeats, self-fencing,
//!   the partition rule, stale-command refusal), BMCs, shared storage, management servers with a
//!   leader lease; and the runtime's part (observations in, actions out).
//! * [`invariants`]: the rules checked after every tick and at every engine action.
//! * [`random`]: seeded random fault schedules (`PARAPET_HA_SEED` replays one seed).
//!
//! `parapet scenario FILE` runs one file and prints the timeline and the verdict.

pub mod format;
pub mod invariants;
pub mod random;
mod runtime;
#[cfg(test)]
mod tests;
pub mod world;

pub use format::{Scenario, ScenarioError};
pub use world::{Outcome, run};

/// Reads, checks and runs one scenario file.
pub fn run_file(path: &std::path::Path) -> Result<Outcome, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ScenarioError::Read { path: path.display().to_string(), message: error.to_string() })?;
    let scenario = Scenario::parse(&text)?;
    Ok(run(&scenario))
}
