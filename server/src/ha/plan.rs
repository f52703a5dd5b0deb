//! The failover planner: pure (no IO, no clock), so every answer can be checked in a unit test.
//!
//! *Max failure capacity* is the largest k such that for every set of k live hosts failing in any
//! order, every protected VM (priority `restart`, disks on shared storage) finds a host, placed one at
//! a time by [`choose_host`] — the same rule the HA engine uses. Two ways to prove a k:
//!
//! * **Slot bound** (always, O(n log n)): let m and c be the largest protected VM's memory and CPU;
//!   a surviving host h offers T_h = min(free memory / m, free CPU / c) slots, free meaning capacity less
//!   what its unprotected VMs use. If every protected VM count P fits the slots of the survivors,
//!   P <= sum(T) - (the k largest T), then placing each VM on *any* host with room succeeds in any order:
//!   were a VM left without a host, every survivor would be short of m or c, so it would already hold at
//!   least T_h protected VMs (each takes at most m and c), P in all, which the unplaced VM contradicts.
//! * **Exact search** (where affordable): every ordered sequence of k failures is simulated with the
//!   real sizes; one failing sequence refutes k. It starts above the bound and stops at the first
//!   refuted k (capacity is monotone: a failing sequence stays failing when extended) or when the next
//!   k would cost more than the budget.
//!
//! The answer is sound: no k is claimed that some failure order breaks.

use api::v1::{
    PlanAdmission, PlanFailure, PlanPlacement, PlanPool, PlanReport, PlanSimulateRequest, PlanSimulateResponse,
    RestartPriority,
};
use std::collections::HashMap;

/// Host-checks the exact search may spend per k (keeps 16 hosts x 400 VMs well under 50 ms).
pub const DEFAULT_SEARCH_BUDGET: u64 = 3_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("host name {0:?} appears twice")]
    DuplicateHost(String),
    #[error("VM name {0:?} appears twice")]
    DuplicateVm(String),
    #[error("VM {vm:?} names host {host:?}, which is not in the pool")]
    UnknownVmHost { vm: String, host: String },
    #[error("no host named {0:?}")]
    UnknownHost(String),
    #[error("host {0:?} is not live, so it cannot fail")]
    HostNotLive(String),
    #[error("host {0:?} is named twice in the failure set")]
    RepeatedFailure(String),
    #[error("no VM named {0:?}")]
    UnknownVm(String),
    #[error("VM {vm:?} already runs on {host:?}")]
    AlreadyRunning { vm: String, host: String },
}

#[derive(Clone)]
struct Host {
    name: String,
    memory: i64,
    cpu: i64,
    live: bool,
    dedicated: bool,
}

#[derive(Clone)]
struct Vm {
    name: String,
    memory: i64,
    cpu: i64,
    host: Option<usize>,
    priority: RestartPriority,
    shared: bool,
}

impl Vm {
    fn protected(&self) -> bool {
        self.priority == RestartPriority::Restart && self.shared
    }
}

/// A validated pool with hosts and VMs by index.
pub struct Model {
    hosts: Vec<Host>,
    vms: Vec<Vm>,
    limit: u32,
}

/// Free resources per host, which hosts live, where each VM runs.
#[derive(Clone)]
struct State {
    free_memory: Vec<i64>,
    free_cpu: Vec<i64>,
    alive: Vec<bool>,
    location: Vec<Option<usize>>,
}

impl Model {
    pub fn new(pool: &PlanPool) -> Result<Model, PlanError> {
        let mut index = HashMap::new();
        for (i, host) in pool.hosts.iter().enumerate() {
            if index.insert(host.name.as_str(), i).is_some() {
                return Err(PlanError::DuplicateHost(host.name.clone()));
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut vms = Vec::with_capacity(pool.vms.len());
        for vm in &pool.vms {
            if !names.insert(vm.name.as_str()) {
                return Err(PlanError::DuplicateVm(vm.name.clone()));
            }
            let host = match &vm.host {
                None => None,
                Some(name) => Some(
                    *index
                        .get(name.as_str())
                        .ok_or_else(|| PlanError::UnknownVmHost { vm: vm.name.clone(), host: name.clone() })?,
                ),
            };
            vms.push(Vm {
                name: vm.name.clone(),
                memory: vm.memory_mb as i64,
                cpu: vm.cpu_mhz as i64,
                host,
                priority: vm.priority,
                shared: vm.shared_storage,
            });
        }
        let hosts = pool
            .hosts
            .iter()
            .map(|host| Host {
                name: host.name.clone(),
                memory: host.memory_mb as i64,
                cpu: host.cpu_mhz as i64,
                live: host.live,
                dedicated: host.ha_dedicated,
            })
            .collect();
        Ok(Model { hosts, vms, limit: pool.failure_limit })
    }

    fn host_index(&self, name: &str) -> Result<usize, PlanError> {
        self.hosts.iter().position(|host| host.name == name).ok_or_else(|| PlanError::UnknownHost(name.to_owned()))
    }

    /// Running VMs on live hosts as they are; VMs of dead hosts nowhere.
    fn initial_state(&self) -> State {
        let mut state = State {
            free_memory: self.hosts.iter().map(|host| host.memory).collect(),
            free_cpu: self.hosts.iter().map(|host| host.cpu).collect(),
            alive: self.hosts.iter().map(|host| host.live).collect(),
            location: vec![None; self.vms.len()],
        };
        for (v, vm) in self.vms.iter().enumerate() {
            if let Some(h) = vm.host.filter(|&h| self.hosts[h].live) {
                state.location[v] = Some(h);
                state.free_memory[h] -= vm.memory;
                state.free_cpu[h] -= vm.cpu;
            }
        }
        state
    }

    /// Restart order within one failure: biggest first (they are the hardest to fit), then by name.
    fn restart_order(&self, vms: &mut [usize]) {
        vms.sort_by(|&a, &b| {
            let (a, b) = (&self.vms[a], &self.vms[b]);
            b.memory.cmp(&a.memory).then(b.cpu.cmp(&a.cpu)).then(a.name.cmp(&b.name))
        });
    }

    fn place(&self, state: &mut State, v: usize, allow_dedicated: bool) -> Option<usize> {
        let host = choose_host(self, state, v, allow_dedicated)?;
        state.location[v] = Some(host);
        state.free_memory[host] -= self.vms[v].memory;
        state.free_cpu[host] -= self.vms[v].cpu;
        Some(host)
    }

    /// Place protected VMs that do not run (never started, or on a dead host) on normal hosts.
    /// Answers the first one that fits nowhere.
    fn place_displaced(&self, state: &mut State) -> Result<(), usize> {
        let mut displaced: Vec<usize> =
            (0..self.vms.len()).filter(|&v| self.vms[v].protected() && state.location[v].is_none()).collect();
        self.restart_order(&mut displaced);
        for v in displaced {
            self.place(state, v, false).ok_or(v)?;
        }
        Ok(())
    }

    /// Host `h` fails: its protected VMs restart elsewhere. Answers each protected VM and its new host.
    fn fail(&self, state: &mut State, h: usize) -> Vec<(usize, Option<usize>)> {
        state.alive[h] = false;
        let mut moving = Vec::new();
        for v in 0..self.vms.len() {
            if state.location[v] == Some(h) {
                state.location[v] = None;
                if self.vms[v].protected() {
                    moving.push(v);
                }
            }
        }
        self.restart_order(&mut moving);
        moving.into_iter().map(|v| (v, self.place(state, v, true))).collect()
    }

    fn protected_count(&self) -> usize {
        self.vms.iter().filter(|vm| vm.protected()).count()
    }

    /// The largest k the slot argument proves (see the module documentation).
    fn slot_bound(&self, state: &State) -> u32 {
        let protected: Vec<&Vm> = self.vms.iter().filter(|vm| vm.protected()).collect();
        let m = protected.iter().map(|vm| vm.memory).max().unwrap_or(0).max(1);
        let c = protected.iter().map(|vm| vm.cpu).max().unwrap_or(0).max(1);
        let mut slots: Vec<i64> = Vec::new();
        for (h, host) in self.hosts.iter().enumerate().filter(|(h, _)| state.alive[*h]) {
            let (mut memory, mut cpu) = (host.memory, host.cpu);
            for (v, vm) in self.vms.iter().enumerate() {
                if state.location[v] == Some(h) && !vm.protected() {
                    memory -= vm.memory;
                    cpu -= vm.cpu;
                }
            }
            slots.push((memory / m).min(cpu / c).max(0));
        }
        slots.sort_unstable_by(|a, b| b.cmp(a));
        let needed = protected.len() as i64;
        let mut remaining: i64 = slots.iter().sum();
        let mut k = 0u32;
        for slot in &slots {
            if remaining - slot >= needed {
                remaining -= slot;
                k += 1;
            } else {
                break;
            }
        }
        // With slots left for every protected VM when k hosts fail, k is proven.
        if remaining >= needed { k } else { 0 }
    }

    /// Every ordered sequence of `k` failures, simulated; false at the first that strands a protected VM.
    fn exact(&self, state: &State, k: u32) -> bool {
        if k == 0 {
            return true;
        }
        for h in 0..self.hosts.len() {
            if !state.alive[h] {
                continue;
            }
            let mut next = state.clone();
            if self.fail(&mut next, h).iter().any(|(_, host)| host.is_none()) {
                return false;
            }
            if !self.exact(&next, k - 1) {
                return false;
            }
        }
        true
    }

    /// Rough host-checks the exact search needs for `k`: sequences x VMs to place x hosts to try.
    fn exact_cost(&self, alive: usize, k: u32) -> u64 {
        let per_step = (self.protected_count() as u64 / alive.max(1) as u64 + 1) * alive as u64 + alive as u64;
        let mut sequences = 1u64;
        let mut total = 0u64;
        for i in 0..k as u64 {
            sequences = sequences.saturating_mul((alive as u64).saturating_sub(i));
            total = total.saturating_add(sequences.saturating_mul(per_step));
        }
        total
    }

    fn unprotectable(&self) -> Vec<String> {
        self.vms
            .iter()
            .filter(|vm| vm.priority == RestartPriority::Restart && !vm.shared)
            .map(|vm| vm.name.clone())
            .collect()
    }

    fn needs(&self, v: usize) -> String {
        format!("{} MB memory and {} MHz CPU", self.vms[v].memory, self.vms[v].cpu)
    }

    pub fn report(&self, budget: u64) -> PlanReport {
        let mut state = self.initial_state();
        let unprotectable = self.unprotectable();
        if let Err(v) = self.place_displaced(&mut state) {
            return PlanReport {
                max_failure_capacity: None,
                failure_limit: self.limit,
                plan_exists_for: 0,
                overcommitted: true,
                method: "none".into(),
                unprotectable,
                reason: Some(format!(
                    "protected VM {:?} cannot run anywhere even with no failure: no host has {} free",
                    self.vms[v].name,
                    self.needs(v)
                )),
            };
        }
        let alive = state.alive.iter().filter(|alive| **alive).count();
        let (capacity, method) = if self.protected_count() == 0 {
            (alive as u32, "trivial")
        } else {
            // `exact`: no larger k holds (refuted, or every host counted); `bound`: proven, maybe more.
            let bound = self.slot_bound(&state);
            let mut capacity = bound;
            let mut known = bound as usize >= alive;
            let mut k = bound + 1;
            while !known && self.exact_cost(alive, k) <= budget {
                if !self.exact(&state, k) {
                    known = true;
                    break;
                }
                capacity = k;
                known = k as usize >= alive;
                k += 1;
            }
            (capacity, if known { "exact" } else { "bound" })
        };
        PlanReport {
            max_failure_capacity: Some(capacity),
            failure_limit: self.limit,
            plan_exists_for: capacity.min(self.limit),
            overcommitted: capacity < self.limit,
            method: method.into(),
            unprotectable,
            reason: None,
        }
    }

    /// Where every affected VM goes when `failed` hosts fail in that order.
    pub fn simulate(&self, failed: &[String]) -> Result<PlanFailure, PlanError> {
        let mut order = Vec::new();
        for name in failed {
            let h = self.host_index(name)?;
            if !self.hosts[h].live {
                return Err(PlanError::HostNotLive(name.clone()));
            }
            if order.contains(&h) {
                return Err(PlanError::RepeatedFailure(name.clone()));
            }
            order.push(h);
        }
        let mut state = self.initial_state();
        let _ = self.place_displaced(&mut state);
        let before = state.location.clone();
        let mut placements = Vec::new();
        let mut all = true;
        for &h in &order {
            for (v, host) in self.fail(&mut state, h) {
                let placement = match host {
                    Some(host) => PlanPlacement {
                        vm: self.vms[v].name.clone(),
                        host: Some(self.hosts[host].name.clone()),
                        reason: None,
                    },
                    None => {
                        all = false;
                        PlanPlacement {
                            vm: self.vms[v].name.clone(),
                            host: None,
                            reason: Some(format!("no surviving host has {} free", self.needs(v))),
                        }
                    }
                };
                placements.retain(|earlier: &PlanPlacement| earlier.vm != placement.vm);
                placements.push(placement);
            }
        }
        // Then the VMs of the failed hosts that are not protected: best-effort ones if room is left.
        let mut others: Vec<usize> = (0..self.vms.len())
            .filter(|&v| !self.vms[v].protected() && before[v].is_some_and(|h| order.contains(&h)))
            .collect();
        self.restart_order(&mut others);
        for v in others {
            let vm = &self.vms[v];
            let (host, reason) = match (vm.priority, vm.shared) {
                (_, false) => (None, Some("its disks are on local storage".to_owned())),
                (RestartPriority::DoNotRestart, _) => (None, Some("priority do-not-restart".to_owned())),
                _ => match self.place(&mut state, v, true) {
                    Some(h) => (Some(self.hosts[h].name.clone()), None),
                    None => (None, Some(format!("best-effort: no room left for {}", self.needs(v)))),
                },
            };
            placements.push(PlanPlacement { vm: vm.name.clone(), host, reason });
        }
        Ok(PlanFailure { failed: failed.to_vec(), placements, protected_all_restart: all })
    }

    /// Would starting `vm` (on `on`, or where placement puts it) keep the plan for "plan exists for"?
    /// A pool that is already overcommitted is not blocked further.
    pub fn admit_start(&self, vm: &str, on: Option<&str>, budget: u64) -> Result<PlanAdmission, PlanError> {
        let v = self
            .vms
            .iter()
            .position(|candidate| candidate.name == vm)
            .ok_or_else(|| PlanError::UnknownVm(vm.to_owned()))?;
        let state = self.initial_state();
        if let Some(h) = state.location[v] {
            return Err(PlanError::AlreadyRunning { vm: vm.to_owned(), host: self.hosts[h].name.clone() });
        }
        // "Before" is the pool without this VM: a stopped VM is asked about because it is not running,
        // so it must not count as a protected VM waiting to be placed (that would make the start look
        // free, or the pool look overcommitted already).
        let mut before_model = Model { hosts: self.hosts.clone(), vms: self.vms.clone(), limit: self.limit };
        before_model.vms[v].priority = RestartPriority::DoNotRestart;
        let before = before_model.report(budget);
        let host = match on {
            Some(name) => Some(self.host_index(name)?),
            None => choose_host(self, &state, v, false),
        };
        let Some(host) = host else {
            return Ok(PlanAdmission {
                vm: vm.to_owned(),
                host: None,
                admitted: false,
                capacity_before: before.max_failure_capacity,
                capacity_after: None,
                reason: format!("no host has {} free", self.needs(v)),
            });
        };
        let mut after_model = Model { hosts: self.hosts.clone(), vms: self.vms.clone(), limit: self.limit };
        after_model.vms[v].host = Some(host);
        let after = after_model.report(budget);
        let keeps =
            after.max_failure_capacity.unwrap_or(0) >= before.plan_exists_for && after.max_failure_capacity.is_some();
        let (admitted, reason) = if before.overcommitted {
            (true, "the pool is already overcommitted; this cannot make it worse".to_owned())
        } else if keeps {
            (true, format!("the plan still covers {} host failure(s)", before.plan_exists_for))
        } else {
            (
                false,
                format!(
                    "starting {vm} on {} would leave capacity for {} failure(s); the plan covers {}",
                    self.hosts[host].name,
                    after.max_failure_capacity.map_or("no".to_owned(), |k| k.to_string()),
                    before.plan_exists_for
                ),
            )
        };
        Ok(PlanAdmission {
            vm: vm.to_owned(),
            host: Some(self.hosts[host].name.clone()),
            admitted,
            capacity_before: before.max_failure_capacity,
            capacity_after: after.max_failure_capacity,
            reason,
        })
    }

    pub fn live_host_names(&self) -> Vec<String> {
        self.hosts.iter().filter(|host| host.live).map(|host| host.name.clone()).collect()
    }
}

/// One entry for the CLI (`parapet plan`) and the API (`POST /api/v1/ha/plan/simulate`): the report,
/// then the asked failure set or else every single-host failure, and the asked admission.
pub fn simulate_request(request: &PlanSimulateRequest, budget: u64) -> Result<PlanSimulateResponse, PlanError> {
    let model = Model::new(&request.pool)?;
    let report = model.report(budget);
    let failures = match &request.fail {
        Some(failed) => vec![model.simulate(failed)?],
        None => model.live_host_names().into_iter().map(|name| model.simulate(&[name])).collect::<Result<_, _>>()?,
    };
    let admission = match &request.admit_start {
        Some(vm) => Some(model.admit_start(vm, request.on.as_deref(), budget)?),
        None => None,
    };
    Ok(PlanSimulateResponse { report, failures, admission })
}

/// The engine's placement rule: among live hosts with room (dedicated HA hosts only for restarts),
/// the one with the most free memory; ties go to the earlier host.
fn choose_host(model: &Model, state: &State, v: usize, allow_dedicated: bool) -> Option<usize> {
    let vm = &model.vms[v];
    (0..model.hosts.len())
        .filter(|&h| state.alive[h] && (allow_dedicated || !model.hosts[h].dedicated))
        .filter(|&h| state.free_memory[h] >= vm.memory && state.free_cpu[h] >= vm.cpu)
        .max_by(|&a, &b| state.free_memory[a].cmp(&state.free_memory[b]).then(b.cmp(&a)))
}

#[cfg(test)]
mod tests;
