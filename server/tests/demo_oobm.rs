//! Integration: the demo pool's out-of-band management end to end. A real server on a loopback port,
//! simulated hosts with their simulated Redfish BMCs, OOBM configured exactly as `parapet demo` does
//! (the simulator's BMC lines through `demo::DemoBmc::parse_line` and `demo::configure_oobm`); then
//! every host's power state must become On, an OFF through the API must cut a host's power (its
//! agent disconnects, the state goes Off, consoles hear it live) and an ON must bring it back (the
//! agent registers again). Tests poll for conditions with deadlines.

use api::v1::{AgentConnection, Event, Host, HostOobm, PowerActionResult, PowerState};
use futures::StreamExt;
use server::config::ServerArgs;
use server::{Server, demo};
use sim::{BmcSettings, SimHostSpec, SimPool};
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "demo-oobm-integration-1";

struct TestPool {
    base: String,
    client: reqwest::Client,
    pool: SimPool,
    state: server::state::AppState,
    _data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestPool {
    /// A server seeded like the demo (one cluster of `hosts` hosts), the hosts simulated with BMCs,
    /// and OOBM configured from the BMC lines the way `parapet demo` does.
    async fn start(hosts: usize) -> TestPool {
        let data_dir = tempfile::tempdir().unwrap();
        let args = ServerArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.path().to_owned()),
            ..Default::default()
        };
        let server = Server::prepare(&args.resolve().unwrap(), Some(ADMIN_PASSWORD.into())).await.unwrap();
        let state = server.state.clone();
        let seeded = demo::seed(&state.db, 1, hosts).await.unwrap();
        let base = format!("http://{}", server.local_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        let specs = seeded
            .hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                let mut spec = SimHostSpec::standard(&host.name, &host.cluster, &host.storage_url, index);
                spec.boot_delay = Duration::from_millis(300);
                spec.shutdown_delay = Duration::from_millis(200);
                spec
            })
            .collect();
        let pool = SimPool::start_with_bmcs(&base, &seeded.join_token, specs, &BmcSettings::default()).unwrap();
        demo::wait_for_hosts(&state, hosts, Duration::from_secs(20)).await.unwrap();

        // What `parapet-sim` prints on stdout, read as `parapet demo` reads it.
        let bmcs: Vec<demo::DemoBmc> = pool
            .bmcs
            .iter()
            .map(|bmc| {
                let line = serde_json::to_string(&bmc.info()).unwrap();
                demo::DemoBmc::parse_line(&line).unwrap().expect("a BMC line")
            })
            .collect();
        assert_eq!(demo::configure_oobm(&state, seeded.zone_id, &bmcs).await.unwrap(), hosts);

        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let context = TestPool { base, client, pool, state, _data_dir: data_dir, stop: Some(stop) };
        let response = context
            .client
            .post(format!("{}/api/v1/auth/login", context.base))
            .header(api::v1::CSRF_HEADER, "1")
            .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        context
    }

    async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    async fn hosts(&self) -> Vec<Host> {
        serde_json::from_str(&self.get_text("/api/v1/hosts").await).unwrap()
    }

    async fn host(&self, name: &str) -> Host {
        self.hosts().await.into_iter().find(|host| host.name == name).unwrap()
    }

    async fn power(&self, host: &Host, action: &str) -> PowerActionResult {
        let response = self
            .client
            .post(format!("{}/api/v1/hosts/{}/oobm/power", self.base, host.id))
            .header(api::v1::CSRF_HEADER, "1")
            .json(&serde_json::json!({ "action": action }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{action} on {}: {body}", host.name);
        serde_json::from_str(&body).unwrap()
    }

    async fn stop(mut self) {
        self.pool.shutdown().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Poll `check` until it answers Some, or fail after `seconds` naming what was awaited.
async fn eventually<T, F, Fut>(what: &str, seconds: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {seconds} s waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_demo_pool_shows_live_power_states_and_its_hosts_obey_their_bmcs() {
    let context = TestPool::start(3).await;

    // Every host's power state becomes On through the background sync, with OOBM in effect.
    eventually("every host reads power On", 20, || async {
        let hosts = context.hosts().await;
        hosts.iter().all(|host| host.oobm_enabled_effective && host.power_state == PowerState::On).then_some(())
    })
    .await;

    // The password is sealed at rest and never in an answer.
    for host in context.hosts().await {
        let bmc = context.pool.bmc(&host.name).unwrap();
        let password = bmc.password();
        let body = context.get_text(&format!("/api/v1/hosts/{}/oobm", host.id)).await;
        assert!(!body.contains(&password), "GET oobm of {} shows the password", host.name);
        let oobm: HostOobm = serde_json::from_str(&body).unwrap();
        assert!(oobm.password_set && oobm.enabled_effective, "{}: {oobm:?}", host.name);
        assert_eq!((oobm.address.as_str(), oobm.port), ("127.0.0.1", bmc.address().port()));
        let stored = context.state.db.oobm_fetch(host.id).await.unwrap().unwrap();
        assert!(!stored.password_sealed.contains(&password), "{}: the stored password is not sealed", host.name);
    }

    let victim = context.host("kvm-a2").await;
    assert_eq!(victim.connection, AgentConnection::Connected);

    // A console's event stream, open before the power goes.
    let events = context.client.get(format!("{}/api/v1/events", context.base)).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream();

    let off = context.power(&victim, "OFF").await;
    assert_eq!(off.power_state, PowerState::Off, "the BMC reports Off right after OFF: {off:?}");
    assert!(!context.pool.host("kvm-a2").unwrap().is_powered_on(), "OFF really cut the simulated host's power");
    eventually("kvm-a2's agent disconnects and its power reads Off", 15, || async {
        let host = context.host("kvm-a2").await;
        (host.connection == AgentConnection::Disconnected && host.power_state == PowerState::Off).then_some(())
    })
    .await;

    // Consoles hear the new power state without asking.
    let mut buffer = String::new();
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = events.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                let Some(data) = message.lines().find_map(|line| line.strip_prefix("data:")) else { continue };
                if let Ok(Event::HostChanged { host }) = serde_json::from_str::<Event>(data.trim())
                    && host.id == victim.id
                    && host.power_state == PowerState::Off
                {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "the event stream must announce kvm-a2's power Off");

    // The other hosts are untouched.
    for host in context.hosts().await.iter().filter(|host| host.id != victim.id) {
        assert_eq!((host.connection, host.power_state), (AgentConnection::Connected, PowerState::On), "{}", host.name);
    }

    // ON boots it: the agent registers again as the same host, and the power reads On.
    let on = context.power(&victim, "ON").await;
    assert_eq!(on.power_state, PowerState::On, "{on:?}");
    eventually("kvm-a2's agent registers again and its power reads On", 20, || async {
        let host = context.host("kvm-a2").await;
        (host.connection == AgentConnection::Connected && host.power_state == PowerState::On).then_some(())
    })
    .await;
    let hosts = context.hosts().await;
    assert_eq!(hosts.len(), 3, "a host that comes back is the same host, not a new one");
    assert!(hosts.iter().any(|host| host.id == victim.id));
    context.stop().await;
}

#[tokio::test]
async fn power_actions_wait_for_every_switch_and_say_which_is_off() {
    let context = TestPool::start(1).await;
    let host = context.host("kvm-a1").await;
    eventually("kvm-a1 reads power On", 20, || async {
        (context.host("kvm-a1").await.power_state == PowerState::On).then_some(())
    })
    .await;

    // The cluster's switch off: OOBM is no longer in effect, the state reads Disabled, OFF is refused.
    let response = context
        .client
        .put(format!("{}/api/v1/clusters/{}/oobm/enabled", context.base, host.cluster_id))
        .header(api::v1::CSRF_HEADER, "1")
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let host = eventually("kvm-a1 reads Disabled", 10, || async {
        let host = context.host("kvm-a1").await;
        (!host.oobm_enabled_effective && host.power_state == PowerState::Disabled).then_some(host)
    })
    .await;
    let response = context
        .client
        .post(format!("{}/api/v1/hosts/{}/oobm/power", context.base, host.id))
        .header(api::v1::CSRF_HEADER, "1")
        .json(&serde_json::json!({"action": "OFF"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let error: api::v1::ApiError = response.json().await.unwrap();
    assert_eq!(error.code, "oobm-disabled");
    assert!(error.message.contains("its cluster"), "{}", error.message);
    assert!(context.pool.host("kvm-a1").unwrap().is_powered_on(), "a refused OFF leaves the host running");
    context.stop().await;
}
