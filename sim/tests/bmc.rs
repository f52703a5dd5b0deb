//! Integration: simulated hosts with their Redfish BMCs, against a minimal management server that
//! speaks the agent protocol's handshake and records every hello, heartbeat, inventory and lost
//! connection. A real HTTP client (reqwest, with timeouts) drives the BMCs. Tests poll with deadlines.

use agent::Hypervisor;
use api::agent::{AgentMessage, AgentVmState, CONNECT_PATH, Frame, ServerMessage, VmReport, VmSpec};
use api::{HostId, VmId};
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};
use sim::{BmcFault, BmcInfo, BmcSettings, SimBmc, SimHostSpec, SimPool};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bmc-test-password";

/// What the fake management server saw, in order. `connection` tells agent sessions apart.
#[derive(Clone, Debug)]
enum Seen {
    Hello { host: String, connection: u64 },
    Heartbeat { host: String },
    Inventory { connection: u64, vms: Vec<VmReport> },
    Closed { connection: u64 },
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicU64>,
}

impl Recorder {
    fn record(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The connections (in order) on which `host` said hello.
    fn connections_of(&self, host: &str) -> Vec<u64> {
        self.seen()
            .iter()
            .filter_map(|seen| match seen {
                Seen::Hello { host: name, connection } if name == host => Some(*connection),
                _ => None,
            })
            .collect()
    }

    fn heartbeats(&self, host: &str) -> usize {
        self.seen().iter().filter(|seen| matches!(seen, Seen::Heartbeat { host: name } if name == host)).count()
    }

    fn closed(&self, connection: u64) -> bool {
        self.seen().iter().any(|seen| matches!(seen, Seen::Closed { connection: closed } if *closed == connection))
    }

    /// Inventories received on `connection`, in order.
    fn inventories(&self, connection: u64) -> Vec<Vec<VmReport>> {
        self.seen()
            .into_iter()
            .filter_map(|seen| match seen {
                Seen::Inventory { connection: on, vms } if on == connection => Some(vms),
                _ => None,
            })
            .collect()
    }
}

/// A management server that welcomes every agent with a 100 ms heartbeat interval and records what
/// it receives.
async fn fake_server() -> (String, Recorder) {
    let recorder = Recorder::default();
    let app = axum::Router::new().route(CONNECT_PATH, axum::routing::get(connect)).with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, recorder)
}

async fn connect(upgrade: WebSocketUpgrade, State(recorder): State<Recorder>) -> Response {
    upgrade.on_upgrade(move |socket| agent_session(socket, recorder))
}

fn parse(message: &Message) -> Option<AgentMessage> {
    match message {
        Message::Text(text) => serde_json::from_str::<Frame<AgentMessage>>(text.as_str()).ok().map(|frame| frame.body),
        _ => None,
    }
}

async fn agent_session(mut socket: WebSocket, recorder: Recorder) {
    let connection = recorder.connections.fetch_add(1, Ordering::SeqCst);
    let Some(Ok(first)) = socket.recv().await else { return };
    let Some(AgentMessage::Hello { host }) = parse(&first) else { return };
    let host = host.name;
    recorder.record(Seen::Hello { host: host.clone(), connection });
    let welcome = Frame::v1(ServerMessage::Welcome {
        host_id: HostId::new_random(),
        heartbeat_interval_ms: 100,
        cluster_peers: Vec::new(),
        self_fence_timeout_ms: api::agent::DEFAULT_SELF_FENCE_TIMEOUT_MS,
        storage_timeout_ms: api::agent::DEFAULT_STORAGE_TIMEOUT_MS,
        peer_timeout_ms: api::agent::DEFAULT_PEER_TIMEOUT_MS,
    });
    if socket.send(Message::Text(serde_json::to_string(&welcome).unwrap().into())).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.recv().await {
        match parse(&message) {
            Some(AgentMessage::Heartbeat { seq, .. }) => {
                recorder.record(Seen::Heartbeat { host: host.clone() });
                // Acknowledged, as a real server does: agents count only acks as contact.
                let ack = Frame::v1(ServerMessage::HeartbeatAck { seq });
                if socket.send(Message::Text(serde_json::to_string(&ack).unwrap().into())).await.is_err() {
                    break;
                }
            }
            Some(AgentMessage::Inventory { vms }) => recorder.record(Seen::Inventory { connection, vms }),
            _ if matches!(message, Message::Close(_)) => break,
            _ => {}
        }
    }
    recorder.record(Seen::Closed { connection });
}

/// Poll `check` every 20 ms until it gives a value; fail naming `what` after 10 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Context {
    recorder: Recorder,
    pool: SimPool,
    client: reqwest::Client,
}

impl Context {
    async fn start(hosts: &[&str], settings: BmcSettings) -> Context {
        let (url, recorder) = fake_server().await;
        let specs = hosts
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let mut spec = SimHostSpec::standard(name, "cluster-a", "nfs://storage/primary", index);
                spec.boot_delay = Duration::from_millis(100);
                spec.shutdown_delay = Duration::from_millis(100);
                spec
            })
            .collect();
        let pool = SimPool::start_with_bmcs(&url, "join-token", specs, &settings).unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let context = Context { recorder, pool, client };
        for host in hosts {
            context.wait_for_heartbeats(host, 2).await;
        }
        context
    }

    async fn with_password(hosts: &[&str]) -> Context {
        Self::start(hosts, BmcSettings { password: Some(PASSWORD.into()), ..BmcSettings::default() }).await
    }

    fn bmc(&self, host: &str) -> &Arc<SimBmc> {
        self.pool.bmc(host).unwrap()
    }

    async fn wait_for_heartbeats(&self, host: &str, count: usize) {
        let recorder = &self.recorder;
        eventually(&format!("{host} has sent {count} heartbeats"), || async move {
            (recorder.heartbeats(host) >= count).then_some(())
        })
        .await;
    }

    /// The host's current agent connection (its latest hello).
    fn connection(&self, host: &str) -> u64 {
        *self.recorder.connections_of(host).last().unwrap()
    }

    async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        let bmc = self.bmc(host);
        self.client.get(format!("{}{path}", bmc.url())).basic_auth(bmc.username(), Some(PASSWORD)).send().await.unwrap()
    }

    async fn power_state(&self, host: &str) -> String {
        let system: Value = self.get(host, &self.bmc(host).system_path()).await.json().await.unwrap();
        system["PowerState"].as_str().unwrap().to_owned()
    }

    async fn reset(&self, host: &str, body: Value) -> reqwest::Response {
        let bmc = self.bmc(host);
        self.client
            .post(format!("{}{}/Actions/ComputerSystem.Reset", bmc.url(), bmc.system_path()))
            .basic_auth(bmc.username(), Some(PASSWORD))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Start a VM on the host's hypervisor and wait until the server has been told it runs.
    async fn running_vm(&self, host: &str) -> VmId {
        let vm = VmSpec {
            vm_id: VmId::new_random(),
            name: format!("vm-on-{host}"),
            generation: 1,
            cpu_cores: 1,
            cpu_mhz: 1000,
            memory_mb: 1024,
            storage_url: "nfs://storage/primary".into(),
        };
        self.pool.host(host).unwrap().hypervisor.start_vm(&vm).await.unwrap();
        let connection = self.connection(host);
        let recorder = &self.recorder;
        eventually("the server hears that the VM runs", || async move {
            recorder
                .inventories(connection)
                .last()?
                .iter()
                .any(|report| report.vm_id == vm.vm_id && report.state == AgentVmState::Running)
                .then_some(())
        })
        .await;
        vm.vm_id
    }

    /// Wait until `connection` has closed and `host` said hello on a newer one; answers the new one.
    async fn reconnected(&self, host: &str, old: u64) -> u64 {
        let recorder = &self.recorder;
        eventually(&format!("{host} registers again"), || async move {
            let latest = *recorder.connections_of(host).last()?;
            (latest != old && recorder.closed(old)).then_some(latest)
        })
        .await
    }
}

#[tokio::test]
async fn force_off_through_redfish_pulls_the_plug_and_on_brings_the_host_back() {
    let context = Context::with_password(&["kvm-1", "kvm-2"]).await;
    let vm = context.running_vm("kvm-1").await;
    let before = context.connection("kvm-1");
    assert_eq!(context.power_state("kvm-1").await, "On");

    let response = context.reset("kvm-1", json!({"ResetType": "ForceOff"})).await;
    assert_eq!(response.status(), 204);
    // The plug is pulled before the BMC answers: the host is off and its VMs are gone at once.
    let host = context.pool.host("kvm-1").unwrap();
    assert!(!host.is_powered_on());
    assert!(host.hypervisor.list_vms_now().is_empty(), "the VMs died with the power");
    assert_eq!(context.power_state("kvm-1").await, "Off");

    let recorder = &context.recorder;
    eventually("the server sees kvm-1's connection drop", || async move { recorder.closed(before).then_some(()) })
        .await;
    let heartbeats_at_loss = recorder.heartbeats("kvm-1");
    // kvm-2 keeps heartbeating: give kvm-1 five of its intervals to show any sign of life.
    let heartbeats_of_neighbour = recorder.heartbeats("kvm-2");
    context.wait_for_heartbeats("kvm-2", heartbeats_of_neighbour + 5).await;
    assert_eq!(recorder.heartbeats("kvm-1"), heartbeats_at_loss, "a host without power sends no heartbeat");
    assert_eq!(recorder.connections_of("kvm-1"), vec![before], "nor does it register again");
    // No goodbye: the last inventory the server got still has the VM running (nothing was stopped).
    let last = recorder.inventories(before).last().cloned().unwrap();
    assert!(last.iter().any(|report| report.vm_id == vm && report.state == AgentVmState::Running), "{last:?}");

    assert_eq!(context.reset("kvm-1", json!({"ResetType": "ForceOff"})).await.status(), 204, "off again is fine");
    let response = context.reset("kvm-1", json!({"ResetType": "On"})).await;
    assert_eq!(response.status(), 204);
    let after = context.reconnected("kvm-1", before).await;
    assert_eq!(context.power_state("kvm-1").await, "On");
    eventually("kvm-1 reports an empty inventory after the power loss", || async move {
        recorder.inventories(after).first().map(|vms| assert!(vms.is_empty(), "{vms:?}"))
    })
    .await;
    let heartbeats = recorder.heartbeats("kvm-1");
    context.wait_for_heartbeats("kvm-1", heartbeats + 2).await;
}

#[tokio::test]
async fn graceful_shutdown_stops_the_vms_before_the_power_and_a_hung_guest_only_delays_it() {
    let settings = BmcSettings {
        password: Some(PASSWORD.into()),
        graceful_shutdown_timeout: Duration::from_millis(1500),
        ..BmcSettings::default()
    };
    let context = Context::start(&["kvm-1"], settings).await;
    let vm = context.running_vm("kvm-1").await;
    let connection = context.connection("kvm-1");

    let response = context.reset("kvm-1", json!({"ResetType": "GracefulShutdown"})).await;
    assert_eq!(response.status(), 204);
    let recorder = &context.recorder;
    eventually("kvm-1 is off", || async { (context.power_state("kvm-1").await == "Off").then_some(()) }).await;
    eventually("the connection ends", || async move { recorder.closed(connection).then_some(()) }).await;
    let stopped = recorder
        .inventories(connection)
        .iter()
        .any(|vms| vms.iter().any(|report| report.vm_id == vm && report.state == AgentVmState::Stopped));
    assert!(stopped, "the agent reported the VM stopped before the power went: {:?}", recorder.inventories(connection));
    assert!(context.pool.host("kvm-1").unwrap().hypervisor.list_vms_now().is_empty());

    // A hung guest ignores the request; the host powers off when the shutdown timeout expires.
    assert_eq!(context.reset("kvm-1", json!({"ResetType": "On"})).await.status(), 204);
    let connection = context.reconnected("kvm-1", connection).await;
    let vm = context.running_vm("kvm-1").await;
    assert!(context.pool.host("kvm-1").unwrap().hypervisor.hang(vm));
    let started = Instant::now();
    assert_eq!(context.reset("kvm-1", json!({"ResetType": "GracefulShutdown"})).await.status(), 204);
    eventually("kvm-1 is off despite the hung guest", || async {
        (context.power_state("kvm-1").await == "Off").then_some(())
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(1400), "off only after the timeout: {:?}", started.elapsed());
    let stopped = recorder
        .inventories(connection)
        .iter()
        .any(|vms| vms.iter().any(|report| report.vm_id == vm && report.state == AgentVmState::Stopped));
    assert!(!stopped, "the hung guest never stopped by itself");
}

#[tokio::test]
async fn force_restart_and_power_cycle_reboot_the_host_without_its_vms() {
    let context = Context::with_password(&["kvm-1"]).await;
    let mut connection = context.connection("kvm-1");
    for reset in ["ForceRestart", "PowerCycle", "GracefulRestart"] {
        context.running_vm("kvm-1").await;
        let response = context.reset("kvm-1", json!({ "ResetType": reset })).await;
        assert_eq!(response.status(), 204, "{reset}");
        connection = context.reconnected("kvm-1", connection).await;
        assert_eq!(context.power_state("kvm-1").await, "On", "{reset}");
        let recorder = &context.recorder;
        eventually("the rebooted host reports no VM", || async move {
            recorder.inventories(connection).first().map(|vms| assert!(vms.is_empty(), "{reset}: {vms:?}"))
        })
        .await;
    }
}

#[tokio::test]
async fn bad_reset_requests_are_refused_with_400_naming_reset_type() {
    let context = Context::with_password(&["kvm-1"]).await;
    for (body, status, mentions) in [
        (json!({"ResetType": "Explode"}), 400, "ResetType"),
        (json!({"ResetType": "Nmi"}), 400, "ResetType"),
        (json!({"ResetType": 7}), 400, "ResetType"),
        (json!({}), 400, "ResetType"),
        (json!(["ForceOff"]), 400, "malformed JSON"),
    ] {
        let response = context.reset("kvm-1", body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{body}: {message}");
        assert!(error["error"]["@Message.ExtendedInfo"][0]["MessageId"].as_str().unwrap().starts_with("Base."));
    }
    assert!(context.pool.host("kvm-1").unwrap().is_powered_on(), "refused resets change nothing");

    let bmc = context.bmc("kvm-1");
    let response = context
        .client
        .post(format!("{}/redfish/v1/Systems/other/Actions/ComputerSystem.Reset", bmc.url()))
        .basic_auth(bmc.username(), Some(PASSWORD))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(context.get("kvm-1", "/redfish/v1/Nothing/Here").await.status(), 404);
    let response = context
        .client
        .delete(format!("{}{}", bmc.url(), bmc.system_path()))
        .basic_auth(bmc.username(), Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(context.pool.host("kvm-1").unwrap().is_powered_on());
}

#[tokio::test]
async fn service_root_is_open_and_every_resource_needs_credentials() {
    let context = Context::with_password(&["kvm-1"]).await;
    let bmc = context.bmc("kvm-1");
    let client = &context.client;
    for path in ["/redfish/v1", "/redfish/v1/"] {
        let root = client.get(format!("{}{path}", bmc.url())).send().await.unwrap();
        assert_eq!(root.status(), 200, "{path}");
        assert_eq!(root.headers()["odata-version"], "4.0");
        let root: Value = root.json().await.unwrap();
        assert_eq!(root["Systems"]["@odata.id"], "/redfish/v1/Systems");
    }
    let systems: Value = context.get("kvm-1", "/redfish/v1/Systems/").await.json().await.unwrap();
    assert_eq!(systems["Members"][0]["@odata.id"], bmc.system_path());
    let system: Value = context.get("kvm-1", &bmc.system_path()).await.json().await.unwrap();
    assert_eq!(
        system["Actions"]["#ComputerSystem.Reset"]["target"],
        format!("{}/Actions/ComputerSystem.Reset", bmc.system_path())
    );

    let anonymous = client.get(format!("{}{}", bmc.url(), bmc.system_path())).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(format!("{}{}", bmc.url(), bmc.system_path()))
        .basic_auth(bmc.username(), Some("wrong-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_reset = client
        .post(format!("{}{}/Actions/ComputerSystem.Reset", bmc.url(), bmc.system_path()))
        .basic_auth(bmc.username(), Some("wrong-password"))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_reset.status(), 401);
    assert!(context.pool.host("kvm-1").unwrap().is_powered_on(), "a refused caller cannot cut the power");
    let body = wrong_reset.text().await.unwrap();
    assert!(!body.contains("wrong-password"), "errors never repeat a password: {body}");
}

async fn log_in(client: &reqwest::Client, bmc: &SimBmc, password: &str) -> reqwest::Response {
    client
        .post(format!("{}/redfish/v1/SessionService/Sessions", bmc.url()))
        .json(&json!({"UserName": bmc.username(), "Password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn session_auth_logs_in_and_out_and_sessions_are_limited() {
    let settings = BmcSettings { password: Some(PASSWORD.into()), max_sessions: 2, ..BmcSettings::default() };
    let context = Context::start(&["kvm-1"], settings).await;
    let bmc = context.bmc("kvm-1");
    let client = &context.client;

    assert_eq!(log_in(client, bmc, "wrong-password").await.status(), 401);
    let response = log_in(client, bmc, PASSWORD).await;
    assert_eq!(response.status(), 201);
    let token = response.headers()["x-auth-token"].to_str().unwrap().to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/redfish/v1/SessionService/Sessions/"), "{location}");
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["@odata.id"], location);

    let with_token = |method: reqwest::Method, path: &str| {
        client.request(method, format!("{}{path}", bmc.url())).header("x-auth-token", &token)
    };
    let system: Value =
        with_token(reqwest::Method::GET, &bmc.system_path()).send().await.unwrap().json().await.unwrap();
    assert_eq!(system["PowerState"], "On");
    let reset = with_token(reqwest::Method::POST, &format!("{}/Actions/ComputerSystem.Reset", bmc.system_path()))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert!(!context.pool.host("kvm-1").unwrap().is_powered_on());
    let bogus = client
        .get(format!("{}{}", bmc.url(), bmc.system_path()))
        .header("x-auth-token", "not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 401);

    // Two sessions at most: a client that never logs out runs out of them, as on a real BMC.
    assert_eq!(log_in(client, bmc, PASSWORD).await.status(), 201);
    let refused = log_in(client, bmc, PASSWORD).await;
    assert_eq!(refused.status(), 503);
    let refused: Value = refused.json().await.unwrap();
    assert!(refused["error"]["code"].as_str().unwrap().ends_with("SessionLimitExceeded"));

    assert_eq!(with_token(reqwest::Method::GET, &location).send().await.unwrap().status(), 200);
    assert_eq!(with_token(reqwest::Method::DELETE, &location).send().await.unwrap().status(), 204);
    assert_eq!(with_token(reqwest::Method::GET, &bmc.system_path()).send().await.unwrap().status(), 401);
    assert_eq!(log_in(client, bmc, PASSWORD).await.status(), 201, "logging out freed a session");
}

#[tokio::test]
async fn sessions_end_when_idle() {
    let settings = BmcSettings {
        password: Some(PASSWORD.into()),
        session_timeout: Duration::from_millis(300),
        ..BmcSettings::default()
    };
    let context = Context::start(&["kvm-1"], settings).await;
    let bmc = context.bmc("kvm-1");
    let response = log_in(&context.client, bmc, PASSWORD).await;
    let token = response.headers()["x-auth-token"].to_str().unwrap().to_owned();
    let with_token =
        || context.client.get(format!("{}/redfish/v1/SessionService", bmc.url())).header("x-auth-token", &token).send();
    assert_eq!(with_token().await.unwrap().status(), 200);
    // Watched with basic auth: using the token would keep the session alive.
    eventually("the idle session expires", || async {
        let sessions: Value = context.get("kvm-1", "/redfish/v1/SessionService/Sessions").await.json().await.unwrap();
        (sessions["Members@odata.count"] == 0).then_some(())
    })
    .await;
    assert_eq!(with_token().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_password_changes_through_the_account_service_and_by_fault_injection() {
    let context = Context::with_password(&["kvm-1"]).await;
    let bmc = context.bmc("kvm-1");
    let client = &context.client;
    let account_path = "/redfish/v1/AccountService/Accounts/1";
    let accounts: Value = context.get("kvm-1", "/redfish/v1/AccountService/Accounts").await.json().await.unwrap();
    assert_eq!(accounts["Members"][0]["@odata.id"], account_path);
    let account: Value = context.get("kvm-1", account_path).await.json().await.unwrap();
    assert_eq!(account["UserName"], "admin");
    assert!(account["Password"].is_null(), "a password is never read back");

    let patch = |body: Value, password: &'static str| {
        client
            .patch(format!("{}{account_path}", bmc.url()))
            .basic_auth(bmc.username(), Some(password))
            .json(&body)
            .send()
    };
    for (body, mentions) in [
        (json!({"Password": "short"}), "Password"),
        (json!({"Password": 12345678}), "Password"),
        (json!({"UserName": "root"}), "UserName"),
        (json!({"Colour": "red"}), "Colour"),
        (json!({}), "Password"),
    ] {
        let response = patch(body.clone(), PASSWORD).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{body}: {message}");
        assert!(!message.contains("short"), "the refused password is not echoed: {message}");
    }
    let response = patch(json!({"Password": "changed-password"}), "wrong-password").await.unwrap();
    assert_eq!(response.status(), 401);

    let session = log_in(client, bmc, PASSWORD).await;
    let token = session.headers()["x-auth-token"].to_str().unwrap().to_owned();
    let response = patch(json!({"Password": "changed-password"}), PASSWORD).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(context.get("kvm-1", &bmc.system_path()).await.status(), 401, "the old password is refused");
    let new = client
        .get(format!("{}{}", bmc.url(), bmc.system_path()))
        .basic_auth(bmc.username(), Some("changed-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
    assert_eq!(bmc.password(), "changed-password");
    let with_session =
        client.get(format!("{}{}", bmc.url(), bmc.system_path())).header("x-auth-token", &token).send().await.unwrap();
    assert_eq!(with_session.status(), 200, "open sessions survive a password change through Redfish");

    // Fault injection: someone changed the password behind our back; every credential we hold fails.
    bmc.set_password("somebody-elses");
    let with_session =
        client.get(format!("{}{}", bmc.url(), bmc.system_path())).header("x-auth-token", &token).send().await.unwrap();
    assert_eq!(with_session.status(), 401);
    let old = client
        .get(format!("{}{}", bmc.url(), bmc.system_path()))
        .basic_auth(bmc.username(), Some("changed-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
}

#[tokio::test]
async fn an_unreachable_bmc_refuses_connections_and_comes_back_on_the_same_port() {
    let context = Context::with_password(&["kvm-1", "kvm-2"]).await;
    let bmc = context.bmc("kvm-1");
    // A client with a pooled connection to the BMC: going unreachable must cut it too.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let get = || client.get(format!("{}{}", bmc.url(), bmc.system_path())).basic_auth(bmc.username(), Some(PASSWORD));
    assert_eq!(get().send().await.unwrap().status(), 200);

    bmc.set_fault(BmcFault::Unreachable).await.unwrap();
    assert_eq!(bmc.fault(), BmcFault::Unreachable);
    let started = Instant::now();
    let error = get().send().await.unwrap_err();
    assert!(error.is_connect(), "a refused connection, not {error:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once: {:?}", started.elapsed());
    let refused = tokio::net::TcpStream::connect(bmc.address()).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(context.power_state("kvm-2").await, "On", "the other BMC still answers");
    assert!(context.pool.host("kvm-1").unwrap().is_powered_on(), "the host does not care about its BMC");

    bmc.set_fault(BmcFault::None).await.unwrap();
    assert_eq!(get().send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_hanging_bmc_accepts_connections_but_never_answers() {
    let context = Context::with_password(&["kvm-1"]).await;
    let bmc = context.bmc("kvm-1");
    let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let get = || client.get(format!("{}{}", bmc.url(), bmc.system_path())).basic_auth(bmc.username(), Some(PASSWORD));
    assert_eq!(get().send().await.unwrap().status(), 200);

    bmc.set_fault(BmcFault::Hang).await.unwrap();
    tokio::net::TcpStream::connect(bmc.address()).await.expect("a hung BMC still accepts connections");
    let started = Instant::now();
    let error = get().send().await.unwrap_err();
    assert!(error.is_timeout(), "the client's timeout ends the wait, not {error:?}");
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    let reset = client
        .post(format!("{}{}/Actions/ComputerSystem.Reset", bmc.url(), bmc.system_path()))
        .basic_auth(bmc.username(), Some(PASSWORD))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await;
    assert!(reset.unwrap_err().is_timeout());
    assert!(context.pool.host("kvm-1").unwrap().is_powered_on(), "a hung BMC carries out nothing");

    bmc.set_fault(BmcFault::None).await.unwrap();
    assert_eq!(get().send().await.unwrap().status(), 200);
}

/// The `parapet-sim` binary: one JSON line per host on stdout, fault commands on stdin.
#[tokio::test]
async fn parapet_sim_prints_how_to_reach_each_bmc_and_takes_fault_commands() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (url, recorder) = fake_server().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parapet-sim"))
        .args(["--server", &url, "--host", "kvm-a1:cluster-a:nfs://s/p", "--host", "kvm-a2:cluster-a:nfs://s/p"])
        .env("PARAPET_JOIN_TOKEN", "join-token")
        .env_remove("PARAPET_SIM_BMC_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut bmcs = Vec::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line()).await.unwrap().unwrap().unwrap();
        bmcs.push(serde_json::from_str::<BmcInfo>(&line).unwrap());
    }
    assert_eq!(bmcs.iter().map(|bmc| bmc.host.as_str()).collect::<Vec<_>>(), ["kvm-a1", "kvm-a2"]);
    assert_ne!(bmcs[0].port, bmcs[1].port, "one port per BMC");
    assert_ne!(bmcs[0].password, bmcs[1].password, "a random password per BMC");
    let info = &bmcs[0];
    assert_eq!((info.kind.as_str(), info.driver.as_str(), info.protocol.as_str()), ("bmc", "redfish", "http"));
    assert_eq!(info.address, "127.0.0.1");
    eventually("both hosts register", || async { (recorder.connections_of("kvm-a2").len() == 1).then_some(()) }).await;

    // No pooled connections: a request right after `bmc-down` must try to connect (and be refused), not
    // go out on a kept-alive connection the BMC is cutting at that moment.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).pool_max_idle_per_host(0).build().unwrap();
    let base = format!("http://{}:{}", info.address, info.port);
    let system = format!("{base}/redfish/v1/Systems/{}", info.system_id);
    let get = |password: &str| client.get(&system).basic_auth(&info.username, Some(password.to_owned())).send();
    let state: Value = get(&info.password).await.unwrap().json().await.unwrap();
    assert_eq!(state["PowerState"], "On");

    let mut command = async |line: &str, acknowledged: &str| {
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        loop {
            let line =
                tokio::time::timeout(Duration::from_secs(10), stderr.next_line()).await.unwrap().unwrap().unwrap();
            assert!(!line.contains("pa55word-new"), "the simulator never prints a password it was given: {line}");
            if line.contains(acknowledged) {
                return;
            }
        }
    };
    command("bmc-down kvm-a1", "kvm-a1: BMC unreachable").await;
    assert!(get(&info.password).await.unwrap_err().is_connect());
    command("bmc-hang kvm-a1", "kvm-a1: BMC hanging").await;
    assert!(get(&info.password).await.unwrap_err().is_timeout());
    command("bmc-up kvm-a1", "kvm-a1: BMC healthy").await;
    assert_eq!(get(&info.password).await.unwrap().status(), 200);
    command("bmc-password kvm-a1 pa55word-new", "kvm-a1: BMC password changed").await;
    assert_eq!(get(&info.password).await.unwrap().status(), 401);
    assert_eq!(get("pa55word-new").await.unwrap().status(), 200);
    command("off kvm-a1", "kvm-a1 powered off").await;
    let state: Value = get("pa55word-new").await.unwrap().json().await.unwrap();
    assert_eq!(state["PowerState"], "Off");
    command("list", "kvm-a2 cluster-a on bmc=127.0.0.1:").await;
    command("bmc-down nobody", "no host named nobody").await;

    // Network, storage and agent faults.
    let before = *recorder.connections_of("kvm-a2").last().unwrap();
    command("net-cut kvm-a2", "kvm-a2 cut from the management servers").await;
    eventually("kvm-a2's connection drops", || async { recorder.closed(before).then_some(()) }).await;
    command("net-heal kvm-a2", "kvm-a2 reaches the servers again").await;
    eventually("kvm-a2 registers again", || async { (recorder.connections_of("kvm-a2").len() == 2).then_some(()) })
        .await;
    command("agent-crash kvm-a2", "kvm-a2: agent crashed; its VMs keep running").await;
    command("list", "kvm-a2 cluster-a on (agent crashed)").await;
    command("agent-start kvm-a2", "kvm-a2: agent started").await;
    eventually("kvm-a2's agent registers again", || async {
        (recorder.connections_of("kvm-a2").len() == 3).then_some(())
    })
    .await;
    command("split kvm-a2|nobody", "no host named nobody").await;
    command("storage-cut kvm-a2", "kvm-a2: storage heartbeat writes fail").await;
    command("list", "cut from storage: kvm-a2").await;
    command("blip kvm-a2 0.2", "kvm-a2: network down for 0.2 s").await;
    drop(stdin);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
