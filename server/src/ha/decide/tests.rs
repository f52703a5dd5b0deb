//! The decision core, table-driven through one `check(scenario, pool, expected)` helper.
//!
//! A `Pool` is a tiny world just rich enough to answer the engine: hosts whose network and storage
//! heartbeats stop and resume at given times, BMCs that answer OFF / STATUS / RESET (or fail), agents
//! that run what they are told. `check` steps `decide` every 500 ms (the state goes through JSON
//! between steps, as the runtime stores it) and compares what happened with the expectation.

use super::*;
use api::v1::{OobmErrorKind, PowerState, RestartPriority, VmState};

const STEP: Millis = 500;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bmc {
    Ok,
    Unreachable,
    Auth,
}

#[derive(Clone, Debug)]
struct H {
    name: &'static str,
    cluster: usize,
    /// Intervals [from, until) without network heartbeats.
    net_down: Vec<(Millis, Millis)>,
    /// Intervals [from, until) without storage heartbeat writes.
    storage_down: Vec<(Millis, Millis)>,
    /// Powered on again at this time (after an OFF).
    power_on_at: Option<Millis>,
    /// The host reads the others' storage records (is a witness).
    reads: bool,
    /// Powered (the BMC reports On); OFF clears it, and the host then stops everything.
    powered: bool,
    /// Its record says self_fenced with no VM, from this time on.
    self_fenced_at: Option<Millis>,
    bmc: Bmc,
    oobm: bool,
    ha: bool,
    provider: bool,
    maintenance: bool,
    memory_mb: u64,
    tags: Vec<String>,
    storage: Vec<u128>,
    /// A RESET brings it back (else the BMC accepts it and nothing happens).
    reset_works: bool,
    /// Writes to its storage fail (primary storage outage) from/until.
    writes_fail: Option<(Millis, Millis)>,
}

fn host(name: &'static str) -> H {
    H {
        name,
        cluster: 0,
        net_down: Vec::new(),
        storage_down: Vec::new(),
        power_on_at: None,
        reads: true,
        powered: true,
        self_fenced_at: None,
        bmc: Bmc::Ok,
        oobm: true,
        ha: true,
        provider: true,
        maintenance: false,
        memory_mb: 16384,
        tags: Vec::new(),
        storage: vec![1],
        reset_works: true,
        writes_fail: None,
    }
}

#[derive(Clone, Debug)]
struct V {
    name: &'static str,
    host: usize,
    state: VmState,
    stop_cause: Option<StopCause>,
    generation: i64,
    priority: RestartPriority,
    start_order: i32,
    start_delay_s: u32,
    memory_mb: u64,
    shared: bool,
    host_tags: Vec<String>,
    /// Stopped by its host's storage outage at this time.
    storage_lost_at: Option<Millis>,
}

fn vm(name: &'static str, host: usize) -> V {
    V {
        name,
        host,
        state: VmState::Running,
        stop_cause: None,
        generation: 1,
        priority: RestartPriority::Restart,
        start_order: 0,
        start_delay_s: 0,
        memory_mb: 2048,
        shared: true,
        host_tags: Vec::new(),
        storage_lost_at: None,
    }
}

#[derive(Clone, Debug)]
struct Pool {
    hosts: Vec<H>,
    vms: Vec<V>,
    /// Cluster index -> zone index.
    zones: Vec<usize>,
    timing: Timing,
    ha_tag: Option<String>,
    /// Run until (ms).
    until: Millis,
    /// The engine does not step before this time (a gap: a new leader).
    gap: Option<(Millis, Millis)>,
}

fn pool(hosts: Vec<H>, vms: Vec<V>, until: Millis) -> Pool {
    Pool { hosts, vms, zones: vec![0], timing: Timing::default(), ha_tag: None, until, gap: None }
}

fn host_id(i: usize) -> HostId {
    HostId(uuid::Uuid::from_u128(0x100 + i as u128))
}
fn vm_id(i: usize) -> VmId {
    VmId(uuid::Uuid::from_u128(0x200 + i as u128))
}
fn storage_id(n: u128) -> StoragePoolId {
    StoragePoolId(uuid::Uuid::from_u128(0x300 + n))
}
fn cluster_id(i: usize) -> ClusterId {
    ClusterId(uuid::Uuid::from_u128(0x400 + i as u128))
}
fn zone_id(i: usize) -> ZoneId {
    ZoneId(uuid::Uuid::from_u128(0x500 + i as u128))
}

const NEVER: Millis = Millis::MAX;

fn down(intervals: &[(Millis, Millis)], t: Millis) -> bool {
    intervals.iter().any(|(from, until)| t >= *from && t < *until)
}

impl H {
    fn net_at(&self, t: Millis) -> bool {
        self.powered && !down(&self.net_down, t)
    }
    fn storage_at(&self, t: Millis) -> bool {
        self.powered
            && !down(&self.storage_down, t)
            && !self.writes_fail.is_some_and(|(from, until)| t >= from && t < until)
    }
    /// Silent on both channels during [from, until).
    fn silent(mut self, from: Millis, until: Millis) -> H {
        self.net_down.push((from, until));
        self.storage_down.push((from, until));
        self
    }
}

/// Last time (<= now, on the 1 s heartbeat grid) the predicate held.
fn last_true(now: Millis, holds: impl Fn(Millis) -> bool) -> Option<Millis> {
    let mut t = now - now.rem_euclid(1000);
    while t >= 0 {
        if holds(t) {
            return Some(t);
        }
        t -= 1000;
    }
    None
}

impl Pool {
    fn observe(&self, now: Millis, oobm_results: Vec<OobmResult>, start_results: Vec<StartResult>) -> Observations {
        let clusters = self
            .zones
            .iter()
            .enumerate()
            .map(|(c, zone)| ClusterObservation {
                id: cluster_id(c),
                zone: zone_id(*zone),
                name: format!("c{}", c + 1),
                timing: self.timing.clone(),
            })
            .collect();
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let last_heartbeat_ms = last_true(now, |t| h.net_at(t));
                let mut storage_seen = Vec::new();
                for (o, observer) in self.hosts.iter().enumerate() {
                    if o == i || !observer.reads || !observer.net_at(now) {
                        continue;
                    }
                    for &storage in h.storage.iter().filter(|s| observer.storage.contains(s)) {
                        let Some(read_at) = last_true(now, |t| observer.storage_at(t)) else { continue };
                        let Some(written) = last_true(read_at, |t| h.storage_at(t)) else { continue };
                        storage_seen.push(StorageSighting {
                            observer: host_id(o),
                            storage: storage_id(storage),
                            counter: (written / 1000) as u64,
                            advanced_at_ms: written + 200,
                            read_at_ms: read_at + 200,
                            self_fenced: h.self_fenced_at.is_some_and(|at| written >= at),
                            running_vms: if h.self_fenced_at.is_some_and(|at| written >= at) { 0 } else { 1 },
                        });
                    }
                }
                HostObservation {
                    id: host_id(i),
                    name: h.name.into(),
                    cluster: cluster_id(h.cluster),
                    zone: zone_id(self.zones[h.cluster]),
                    ha_disabled: (!h.ha).then(|| "HA is off for the cluster".to_owned()),
                    provider: h.provider.then_some(HaProvider::Sim),
                    maintenance: h.maintenance,
                    accepts_vms: true,
                    oobm: OobmObservation {
                        configured: h.oobm,
                        enabled: h.oobm,
                        power: PowerState::Unknown,
                        power_read_at_ms: None,
                    },
                    last_heartbeat_ms,
                    memory_mb: h.memory_mb,
                    cpu_mhz: 32000,
                    tags: h.tags.clone(),
                    shared_storage: h.storage.iter().map(|s| storage_id(*s)).collect(),
                    storage_seen,
                    storage_writes: if h.net_at(now) {
                        h.storage
                            .iter()
                            .map(|s| StorageWrite { storage: storage_id(*s), ok: h.storage_at(now), at_ms: now - 100 })
                            .collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        let vms = self
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let h = &self.hosts[v.host];
                let state = if !h.net_at(now) && v.state != VmState::Stopped { VmState::Unknown } else { v.state };
                VmObservation {
                    id: vm_id(i),
                    name: v.name.into(),
                    host: Some(host_id(v.host)),
                    state,
                    stop_cause: v.stop_cause,
                    generation: v.generation,
                    priority: v.priority,
                    start_order: v.start_order,
                    start_delay_s: v.start_delay_s,
                    memory_mb: v.memory_mb,
                    cpu_mhz: 1000,
                    shared_storage: v.shared,
                    storage: if v.shared { vec![storage_id(1)] } else { Vec::new() },
                    host_tags: v.host_tags.clone(),
                }
            })
            .collect();
        Observations { clusters, hosts, vms, ha_tag: self.ha_tag.clone(), oobm_results, start_results }
    }
}

/// What happened in a run.
struct Run {
    actions: Vec<(Millis, Action)>,
    state: EngineState,
    pool: Pool,
}

impl Run {
    fn host(&self, name: &str) -> usize {
        self.pool.hosts.iter().position(|h| h.name == name).expect("host")
    }
    fn vm(&self, name: &str) -> usize {
        self.pool.vms.iter().position(|v| v.name == name).expect("vm")
    }
    fn state_of(&self, name: &str) -> Option<HaState> {
        self.state.hosts.get(&host_id(self.host(name))).map(|record| record.state)
    }
    fn first(&self, matches: impl Fn(&Action) -> bool) -> Option<Millis> {
        self.actions.iter().find(|(_, action)| matches(action)).map(|(at, _)| *at)
    }
    fn count(&self, matches: impl Fn(&Action) -> bool) -> usize {
        self.actions.iter().filter(|(_, action)| matches(action)).count()
    }
}

/// Steps the engine over the pool; the pool answers the engine's actions.
fn simulate(mut pool: Pool) -> Run {
    let mut state = EngineState::default();
    let mut actions = Vec::new();
    let mut oobm_results: Vec<OobmResult> = Vec::new();
    let mut start_results: Vec<StartResult> = Vec::new();
    let mut now = 0;
    while now <= pool.until {
        // Storage outages stop the VMs on the lost storage (the agent's rule) after the timeout.
        for v in pool.vms.iter_mut() {
            let h = &pool.hosts[v.host];
            if v.state == VmState::Running
                && v.shared
                && h.writes_fail
                    .is_some_and(|(from, until)| now >= from + pool.timing.storage_timeout_ms && now < until)
            {
                v.state = VmState::Stopped;
                v.stop_cause = Some(StopCause::StorageLost);
                v.storage_lost_at = Some(now);
            }
        }
        for h in pool.hosts.iter_mut() {
            if h.power_on_at.is_some_and(|at| now >= at) && !h.powered {
                h.powered = true;
                h.power_on_at = None;
            }
        }
        if pool.gap.is_some_and(|(from, until)| now >= from && now < until) {
            now += STEP;
            continue;
        }
        let observations = pool.observe(now, std::mem::take(&mut oobm_results), std::mem::take(&mut start_results));
        let decision = decide(&state, &observations, now);
        // The runtime stores the state as JSON; a new leader loads it.
        let json = serde_json::to_string(&decision.state).expect("serializes");
        state = serde_json::from_str(&json).expect("loads");
        assert_eq!(state, decision.state, "the engine state survives JSON");
        for action in decision.actions {
            match &action {
                Action::FencePowerOff { host, attempt } | Action::Reset { host, attempt } => {
                    let h = host.0.as_u128() as usize - 0x100;
                    let kind =
                        if matches!(action, Action::Reset { .. }) { OobmAction::Reset } else { OobmAction::PowerOff };
                    let outcome = match pool.hosts[h].bmc {
                        Bmc::Ok => {
                            if kind == OobmAction::PowerOff {
                                pool.hosts[h].powered = false;
                            } else if pool.hosts[h].reset_works {
                                // A reset host comes back after 5 s without its VMs.
                                let host = &mut pool.hosts[h];
                                for (_, until) in host.net_down.iter_mut().chain(host.storage_down.iter_mut()) {
                                    *until = (*until).min(now);
                                }
                                host.net_down.push((now, now + 5000));
                                host.storage_down.push((now, now + 5000));
                                for v in pool.vms.iter_mut().filter(|v| v.host == h) {
                                    v.state = VmState::Stopped;
                                    v.stop_cause = Some(StopCause::Crashed);
                                }
                            }
                            OobmOutcome::Done
                        }
                        Bmc::Unreachable => {
                            OobmOutcome::Failed { kind: OobmErrorKind::Unreachable, message: "no route".into() }
                        }
                        Bmc::Auth => OobmOutcome::Failed { kind: OobmErrorKind::Auth, message: "bad password".into() },
                    };
                    oobm_results.push(OobmResult {
                        host: *host,
                        action: kind,
                        attempt: *attempt,
                        at_ms: now + 200,
                        outcome,
                    });
                }
                Action::PowerStatus { host, attempt } => {
                    let h = host.0.as_u128() as usize - 0x100;
                    let outcome = match pool.hosts[h].bmc {
                        Bmc::Ok => OobmOutcome::Power {
                            power: if pool.hosts[h].powered { PowerState::On } else { PowerState::Off },
                        },
                        Bmc::Unreachable => {
                            OobmOutcome::Failed { kind: OobmErrorKind::Unreachable, message: "no route".into() }
                        }
                        Bmc::Auth => OobmOutcome::Failed { kind: OobmErrorKind::Auth, message: "bad password".into() },
                    };
                    oobm_results.push(OobmResult {
                        host: *host,
                        action: OobmAction::PowerStatus,
                        attempt: *attempt,
                        at_ms: now + 200,
                        outcome,
                    });
                }
                Action::StartVm { vm, host, generation, .. } => {
                    let v = vm.0.as_u128() as usize - 0x200;
                    let h = host.0.as_u128() as usize - 0x100;
                    let vm = &mut pool.vms[v];
                    vm.host = h;
                    vm.generation = *generation;
                    vm.state = VmState::Running;
                    vm.stop_cause = None;
                    start_results.push(StartResult {
                        vm: vm_id(v),
                        host: host_id(h),
                        generation: *generation,
                        at_ms: now + 100,
                        outcome: StartOutcome::Done,
                    });
                }
                Action::MarkVmStopped { vm, generation, .. } => {
                    let v = vm.0.as_u128() as usize - 0x200;
                    pool.vms[v].state = VmState::Stopped;
                    pool.vms[v].generation = *generation;
                }
                Action::PutHostInMaintenance { host, .. } => {
                    pool.hosts[host.0.as_u128() as usize - 0x100].maintenance = true;
                }
                _ => {}
            }
            actions.push((now, action));
        }
        now += STEP;
    }
    Run { actions, state, pool }
}

/// What a case must show; every field is checked when set.
#[derive(Default)]
struct Expected {
    /// Host -> final HA state.
    states: Vec<(&'static str, HaState)>,
    /// Hosts that get an OFF command / that must not.
    fenced: Vec<&'static str>,
    not_fenced: Vec<&'static str>,
    /// VM -> the host it restarts on (`None`: anywhere but its first host).
    restarted: Vec<(&'static str, Option<&'static str>)>,
    /// VMs never started.
    not_restarted: Vec<&'static str>,
    /// VMs recorded stopped.
    marked_stopped: Vec<&'static str>,
    alerts: Vec<AlertKind>,
    no_alerts: Vec<AlertKind>,
    /// No StartVm before this time (ms).
    no_start_before: Option<Millis>,
    /// Some StartVm by this time (ms).
    started_by: Option<Millis>,
    /// Events (transition event names) that must appear.
    events: Vec<&'static str>,
    /// (first, then, gap ms): `first` starts at least `gap` before `then`.
    order: Vec<(&'static str, &'static str, Millis)>,
    resets: usize,
}

fn check(scenario: &str, pool: Pool, expected: Expected) {
    let first_hosts: Vec<usize> = pool.vms.iter().map(|v| v.host).collect();
    let run = simulate(pool);
    let timeline: Vec<String> = run
        .actions
        .iter()
        .filter_map(|(at, action)| match action {
            Action::RecordTransition(t) => Some(format!("{at}: {:?} {} -> {} [{}]", t.host, t.from, t.to, t.event)),
            Action::RaiseAlert(alert) => Some(format!("{at}: alert {}", alert.kind.as_str())),
            Action::ClearAlert { .. } | Action::Incident(_) => None,
            other => Some(format!("{at}: {other:?}")),
        })
        .collect();
    let context = format!("{scenario}\ntimeline:\n{}", timeline.join("\n"));
    for (name, state) in &expected.states {
        assert_eq!(run.state_of(name), Some(*state), "{name}'s final state; {context}");
    }
    let fenced = |name: &str| {
        let id = host_id(run.host(name));
        run.count(|action| matches!(action, Action::FencePowerOff { host, .. } if *host == id)) > 0
    };
    for name in &expected.fenced {
        assert!(fenced(name), "{name} should get OFF; {context}");
    }
    for name in &expected.not_fenced {
        assert!(!fenced(name), "{name} must not get OFF; {context}");
    }
    let starts_of = |name: &str| {
        let id = vm_id(run.vm(name));
        run.actions
            .iter()
            .filter_map(|(at, action)| match action {
                Action::StartVm { vm, host, .. } if *vm == id => Some((*at, *host)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    for (name, on) in &expected.restarted {
        let starts = starts_of(name);
        let Some((_, host)) = starts.last() else { panic!("{name} should restart; {context}") };
        match on {
            Some(on) => assert_eq!(*host, host_id(run.host(on)), "{name} should restart on {on}; {context}"),
            None => {
                let first = host_id(first_hosts[run.vm(name)]);
                assert_ne!(*host, first, "{name} should restart elsewhere; {context}");
            }
        }
    }
    for name in &expected.not_restarted {
        assert!(starts_of(name).is_empty(), "{name} must not restart; {context}");
    }
    for name in &expected.marked_stopped {
        let id = vm_id(run.vm(name));
        assert!(
            run.count(|action| matches!(action, Action::MarkVmStopped { vm, .. } if *vm == id)) == 1,
            "{name} should be recorded stopped once; {context}"
        );
    }
    let raised =
        |kind: AlertKind| run.count(|action| matches!(action, Action::RaiseAlert(alert) if alert.kind == kind));
    for kind in &expected.alerts {
        assert!(raised(*kind) > 0, "alert {} should be raised; {context}", kind.as_str());
    }
    for kind in &expected.no_alerts {
        assert_eq!(raised(*kind), 0, "alert {} must not be raised; {context}", kind.as_str());
    }
    let first_start = run.first(|action| matches!(action, Action::StartVm { .. }));
    if let Some(before) = expected.no_start_before {
        assert!(first_start.is_none_or(|at| at >= before), "no StartVm before {before} ms; {context}");
    }
    if let Some(by) = expected.started_by {
        assert!(first_start.is_some_and(|at| at <= by), "a StartVm by {by} ms; {context}");
    }
    for event in &expected.events {
        assert!(
            run.count(|action| matches!(action, Action::RecordTransition(t) if t.event == *event)) > 0,
            "transition event {event} should happen; {context}"
        );
    }
    for (first, then, gap) in &expected.order {
        let (a, b) = (starts_of(first), starts_of(then));
        let (Some((a, _)), Some((b, _))) = (a.first(), b.first()) else {
            panic!("{first} and {then} should start; {context}")
        };
        assert!(b - a >= *gap, "{first} should start {gap} ms before {then} ({a} vs {b}); {context}");
    }
    assert_eq!(run.count(|action| matches!(action, Action::Reset { .. })), expected.resets, "RESETs; {context}");
    // Every transition is recorded from the state the host was in.
    let mut last: BTreeMap<HostId, HaState> = BTreeMap::new();
    for (_, action) in &run.actions {
        if let Action::RecordTransition(t) = action {
            if let Some(previous) = last.get(&t.host) {
                assert_eq!(*previous, t.from, "transitions chain; {context}");
            }
            assert_ne!(t.from, t.to, "a transition changes the state; {context}");
            last.insert(t.host, t.to);
        }
    }
}

fn three_hosts() -> Vec<H> {
    vec![host("h1"), host("h2"), host("h3")]
}

fn dies(h: H, at: Millis) -> H {
    h.silent(at, NEVER)
}

#[test]
fn host_failure_scenarios() {
    use HaState::*;
    check(
        "a healthy pool: everyone Available, nothing happens",
        pool(three_hosts(), vec![vm("a", 0)], 20_000),
        Expected {
            states: vec![("h1", Available), ("h2", Available), ("h3", Available)],
            not_fenced: vec!["h1", "h2", "h3"],
            not_restarted: vec!["a"],
            ..Default::default()
        },
    );
    check(
        "power loss: silent on both channels, fenced through the BMC, VMs restart elsewhere",
        pool(vec![dies(host("h1"), 5000), host("h2"), host("h3")], vec![vm("a", 0), vm("b", 0), vm("c", 1)], 20_000),
        Expected {
            states: vec![("h1", Fenced), ("h2", Available), ("h3", Available)],
            fenced: vec!["h1"],
            not_fenced: vec!["h2", "h3"],
            restarted: vec![("a", None), ("b", None)],
            not_restarted: vec!["c"],
            alerts: vec![AlertKind::HostFailed, AlertKind::HostFenced, AlertKind::VmRestarted],
            no_alerts: vec![AlertKind::FencingFailed],
            events: vec!["network-heartbeat-missed", "dead-on-both-channels", "power-off-confirmed"],
            started_by: Some(12_000),
            ..Default::default()
        },
    );
    let mut blip = host("h1");
    blip.net_down.push((5000, 9000));
    check(
        "a network blip with the storage heartbeat alive: Degraded at worst, never fenced",
        pool(vec![blip, host("h2"), host("h3")], vec![vm("a", 0)], 20_000),
        Expected {
            states: vec![("h1", Available)],
            not_fenced: vec!["h1"],
            not_restarted: vec!["a"],
            no_alerts: vec![AlertKind::HostFailed],
            ..Default::default()
        },
    );
    let mut isolated = host("h1");
    isolated.net_down.push((5000, NEVER));
    check(
        "silent on the network, alive on storage: Degraded for good, rechecked, not fenced",
        pool(vec![isolated, host("h2"), host("h3")], vec![vm("a", 0)], 60_000),
        Expected {
            states: vec![("h1", Degraded)],
            not_fenced: vec!["h1"],
            not_restarted: vec!["a"],
            events: vec!["alive-on-storage"],
            ..Default::default()
        },
    );
    let mut degraded_then_dead = host("h1");
    degraded_then_dead.net_down.push((5000, NEVER));
    degraded_then_dead.storage_down.push((20_000, NEVER));
    check(
        "Degraded, then the storage heartbeat stops too: fenced",
        pool(vec![degraded_then_dead, host("h2")], vec![vm("a", 0)], 40_000),
        Expected {
            states: vec![("h1", Fenced)],
            fenced: vec!["h1"],
            restarted: vec![("a", Some("h2"))],
            no_start_before: Some(20_000),
            ..Default::default()
        },
    );
    let mut self_fenced = host("h1");
    self_fenced.net_down.push((5000, NEVER));
    self_fenced.self_fenced_at = Some(9000);
    self_fenced.bmc = Bmc::Unreachable;
    check(
        "a partitioned host writes self_fenced with no VM: fenced without the BMC, VMs restart",
        pool(vec![self_fenced, host("h2"), host("h3")], vec![vm("a", 0)], 30_000),
        Expected {
            states: vec![("h1", Fenced)],
            not_fenced: vec!["h1"],
            restarted: vec![("a", None)],
            events: vec!["self-fenced"],
            no_start_before: Some(9000),
            ..Default::default()
        },
    );
    let mut unreachable = dies(host("h1"), 5000);
    unreachable.bmc = Bmc::Unreachable;
    check(
        "BMC unreachable: OFF retried, fencing-failed, no restart before the self-fence deadline is proven",
        pool(vec![unreachable, host("h2"), host("h3")], vec![vm("a", 0)], 30_000),
        Expected {
            states: vec![("h1", Fenced)],
            fenced: vec!["h1"],
            restarted: vec![("a", None)],
            alerts: vec![AlertKind::FencingFailed],
            events: vec!["self-fence-deadline-passed"],
            // Last sign of life at ~4.2 s; 8 s + 1 s margin later at the earliest.
            no_start_before: Some(13_200),
            started_by: Some(16_000),
            ..Default::default()
        },
    );
    let mut auth = dies(host("h1"), 5000);
    auth.bmc = Bmc::Auth;
    let mut blind = host("h2");
    blind.reads = false;
    let mut blind3 = host("h3");
    blind3.reads = false;
    check(
        "BMC refuses the password and nobody reads the storage: never restart on a guess",
        pool(vec![auth, blind, blind3], vec![vm("a", 0)], 60_000),
        Expected {
            states: vec![("h1", Fencing)],
            fenced: vec!["h1"],
            not_restarted: vec!["a"],
            alerts: vec![AlertKind::FencingFailed, AlertKind::HostFailed],
            no_alerts: vec![AlertKind::HostFenced],
            ..Default::default()
        },
    );
    check(
        "the whole cluster silent (the engine is the one cut off): nobody is fenced",
        pool(vec![dies(host("h1"), 5000), dies(host("h2"), 5000), dies(host("h3"), 5000)], vec![vm("a", 0)], 40_000),
        Expected { not_fenced: vec!["h1", "h2", "h3"], not_restarted: vec!["a"], ..Default::default() },
    );
    // A storage outage (5 s to 15 s) while h1 is also cut from the servers: a record that did not move
    // while nobody could write proves nothing; h1 writes again a second after the others.
    let mut cut = host("h1");
    cut.net_down.push((6000, NEVER));
    cut.writes_fail = Some((5000, 16_000));
    let (mut w2, mut w3) = (host("h2"), host("h3"));
    w2.writes_fail = Some((5000, 15_000));
    w3.writes_fail = Some((5000, 15_000));
    check(
        "silence during a storage outage is not death: Degraded once it writes again, never fenced",
        pool(vec![cut, w2, w3], vec![], 30_000),
        Expected { states: vec![("h1", Degraded)], not_fenced: vec!["h1"], ..Default::default() },
    );
    let mut comes_back = host("h1").silent(5000, 30_000);
    comes_back.bmc = Bmc::Auth;
    let (mut blind2, mut blind3) = (host("h2"), host("h3"));
    blind2.reads = false;
    blind3.reads = false;
    check(
        "nobody can read its storage: fenced after the storage timeout; heard again while fencing: Available",
        pool(vec![comes_back, blind2, blind3], vec![vm("a", 0)], 40_000),
        Expected {
            states: vec![("h1", Available)],
            fenced: vec!["h1"],
            not_restarted: vec!["a"],
            events: vec!["network-heartbeat-resumed"],
            ..Default::default()
        },
    );
}

#[test]
fn eligibility_scenarios() {
    use HaState::*;
    use IneligibleReason::*;
    type Case = (&'static str, fn(&mut H), HaState);
    let cases: Vec<Case> = vec![
        ("OOBM off", |h| h.oobm = false, Ineligible(OobmNotConfigured)),
        ("maintenance", |h| h.maintenance = true, Ineligible(Maintenance)),
        ("no shared storage", |h| h.storage = vec![], Ineligible(NoSharedStorage)),
        ("no HA provider", |h| h.provider = false, Ineligible(NoProvider)),
        ("HA off", |h| h.ha = false, Disabled),
    ];
    for (what, change, state) in cases {
        let mut h1 = dies(host("h1"), 5000);
        change(&mut h1);
        check(
            &format!("{what}: the host is not protected"),
            pool(vec![h1, host("h2")], vec![vm("a", 0)], 30_000),
            Expected {
                states: vec![("h1", state)],
                not_fenced: vec!["h1"],
                not_restarted: vec!["a"],
                ..Default::default()
            },
        );
    }
    let mut other_storage = host("h2");
    other_storage.storage = vec![2];
    check(
        "no neighbour shares its storage",
        pool(vec![host("h1"), other_storage], vec![], 10_000),
        Expected { states: vec![("h1", Ineligible(NoHealthyNeighbour))], ..Default::default() },
    );
    let mut returns = dies(host("h1"), 5000);
    returns.power_on_at = Some(30_000);
    for (_, until) in returns.net_down.iter_mut().chain(returns.storage_down.iter_mut()) {
        *until = 30_000;
    }
    check(
        "a fenced host that comes back is Ineligible (maintenance) until an operator ends it",
        pool(vec![returns, host("h2")], vec![vm("a", 0)], 40_000),
        Expected {
            states: vec![("h1", Ineligible(Maintenance))],
            fenced: vec!["h1"],
            restarted: vec![("a", Some("h2"))],
            events: vec!["host-returned"],
            ..Default::default()
        },
    );
}

#[test]
fn recovery_scenarios() {
    use HaState::*;
    let hung = dies(host("h1"), 5000);
    let mut recovering = pool(vec![hung, host("h2")], vec![vm("a", 0)], 40_000);
    recovering.timing.recover_attempts = 1;
    recovering.timing.recover_wait_ms = 15_000;
    check(
        "RESET brings a hung host back: Recovering, Recovered, Available; its lost VM restarts",
        recovering,
        Expected {
            states: vec![("h1", Available)],
            not_fenced: vec!["h1"],
            restarted: vec![("a", Some("h1"))],
            events: vec!["reset-done", "network-heartbeat-resumed"],
            resets: 1,
            ..Default::default()
        },
    );
    let mut dead = dies(host("h1"), 5000);
    dead.reset_works = false;
    let mut failed_recovery = pool(vec![dead, host("h2")], vec![vm("a", 0)], 60_000);
    failed_recovery.timing.recover_attempts = 1;
    failed_recovery.timing.recover_wait_ms = 5000;
    check(
        "a host that does not come back after its RESET is fenced",
        failed_recovery,
        Expected {
            states: vec![("h1", Fenced)],
            fenced: vec!["h1"],
            restarted: vec![("a", Some("h2"))],
            events: vec!["recovery-failed"],
            resets: 1,
            ..Default::default()
        },
    );
}

#[test]
fn restart_scenarios() {
    let mut db = vm("db", 0);
    db.start_delay_s = 5;
    let mut app = vm("app", 0);
    app.start_order = 1;
    let mut batch = vm("batch", 0);
    batch.priority = RestartPriority::BestEffort;
    check(
        "priority, then start order with its delay; best-effort after every protected VM",
        pool(vec![dies(host("h1"), 5000), host("h2"), host("h3")], vec![batch, app, db], 40_000),
        Expected {
            restarted: vec![("db", None), ("app", None), ("batch", None)],
            order: vec![("db", "app", 5000), ("app", "batch", 0)],
            ..Default::default()
        },
    );
    let mut local = vm("local", 0);
    local.shared = false;
    let mut manual = vm("manual", 0);
    manual.priority = RestartPriority::DoNotRestart;
    check(
        "local disks and do-not-restart: recorded stopped; only the protected one alerts",
        pool(vec![dies(host("h1"), 5000), host("h2")], vec![local, manual], 30_000),
        Expected {
            marked_stopped: vec!["local", "manual"],
            not_restarted: vec!["local", "manual"],
            alerts: vec![AlertKind::VmRestartFailed],
            ..Default::default()
        },
    );
    let mut big = vm("big", 0);
    big.memory_mb = 20_000;
    check(
        "no host has room: vm-restart-failed says why, no start",
        pool(vec![dies(host("h1"), 5000), host("h2")], vec![big], 40_000),
        Expected { not_restarted: vec!["big"], alerts: vec![AlertKind::VmRestartFailed], ..Default::default() },
    );
    let mut dedicated = host("h3");
    dedicated.tags = vec!["ha_host".into()];
    dedicated.memory_mb = 65536;
    let mut tagged_pool = pool(vec![dies(host("h1"), 5000), host("h2"), dedicated], vec![vm("a", 0)], 30_000);
    tagged_pool.ha_tag = Some("ha_host".into());
    check(
        "the ha.tag host takes the HA restart",
        tagged_pool,
        Expected { restarted: vec![("a", Some("h3"))], ..Default::default() },
    );
    let mut needs_gpu = vm("gpu", 0);
    needs_gpu.host_tags = vec!["gpu".into()];
    let mut gpu_host = host("h3");
    gpu_host.tags = vec!["gpu".into()];
    gpu_host.memory_mb = 4096;
    check(
        "placement respects host tags",
        pool(vec![dies(host("h1"), 5000), host("h2"), gpu_host], vec![needs_gpu], 30_000),
        Expected { restarted: vec![("gpu", Some("h3"))], ..Default::default() },
    );
    let mut same_zone = host("h2");
    same_zone.cluster = 1;
    same_zone.memory_mb = 4096;
    let mut other_zone = host("h3");
    other_zone.cluster = 2;
    other_zone.memory_mb = 65536;
    let mut neighbour = host("h4");
    neighbour.memory_mb = 1024;
    let mut zones = pool(vec![dies(host("h1"), 5000), same_zone, other_zone, neighbour], vec![vm("a", 0)], 30_000);
    zones.zones = vec![0, 0, 1];
    check(
        "the same cluster first (too small here), then the same zone, never another zone",
        zones,
        Expected { restarted: vec![("a", Some("h2"))], ..Default::default() },
    );
    let mut small = host("h3");
    small.memory_mb = 8192;
    let mut huge = vm("huge", 0);
    huge.memory_mb = 30_000;
    check(
        "a restarted VM whose new host fails too restarts again (while another job is still stuck)",
        pool(vec![dies(host("h1"), 5000), dies(host("h2"), 25_000), small], vec![vm("a", 0), huge], 60_000),
        Expected {
            restarted: vec![("a", Some("h3"))],
            not_restarted: vec!["huge"],
            fenced: vec!["h1", "h2"],
            ..Default::default()
        },
    );
    let mut outage = three_hosts();
    for h in outage.iter_mut() {
        h.writes_fail = Some((5000, 25_000));
    }
    check(
        "primary storage outage: alert, no fence; stopped VMs restart on their own host once it is back",
        pool(outage, vec![vm("a", 0), vm("b", 1)], 40_000),
        Expected {
            states: vec![("h1", HaState::Available), ("h2", HaState::Available)],
            not_fenced: vec!["h1", "h2", "h3"],
            restarted: vec![("a", Some("h1")), ("b", Some("h2"))],
            alerts: vec![AlertKind::PrimaryStorageDown],
            no_start_before: Some(25_000),
            ..Default::default()
        },
    );
}

#[test]
fn a_resumed_engine_gives_hosts_a_suspect_timeout_before_judging_silence() {
    // No step between 4 s and 12 s (a new leader); h1's heartbeats resume at 12.2 s.
    let late = host("h1").silent(4000, 12_200);
    let mut resumed = pool(vec![late, host("h2"), host("h3")], vec![vm("a", 0)], 20_000);
    resumed.gap = Some((4000, 12_000));
    check(
        "a resumed engine",
        resumed,
        Expected { states: vec![("h1", HaState::Available)], not_fenced: vec!["h1"], ..Default::default() },
    );
}

#[test]
fn timing_validation_names_the_field() {
    type Case = (fn(&mut Timing), Option<&'static str>);
    let cases: Vec<Case> = vec![
        (|_| {}, None),
        (|t| t.suspect_after_ms = 900, Some("suspect_after_ms")),
        (|t| t.storage_timeout_ms = 1000, Some("storage_timeout_ms")),
        (|t| t.self_fence_timeout_ms = 3000, Some("self_fence_timeout_ms")),
        (|t| t.heartbeat_interval_ms = 0, Some("heartbeat_interval_ms")),
        (|t| t.fence_backoff_max_ms = 10, Some("fence_backoff_max_ms")),
        (|t| t.self_fence_margin_ms = 0, Some("self_fence_margin_ms")),
    ];
    for (change, field) in cases {
        let mut timing = Timing::default();
        change(&mut timing);
        assert_eq!(timing.validate().err().map(|error| error.field), field);
    }
    assert_eq!(Timing::backoff(1000, 30_000, 0), 1000);
    assert_eq!(Timing::backoff(1000, 30_000, 3), 8000);
    assert_eq!(Timing::backoff(1000, 30_000, 40), 30_000);
}
