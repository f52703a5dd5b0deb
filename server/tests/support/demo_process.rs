//! `parapet demo` as a separate OS process, for HA tests and the process benchmark: the demo server in one
//! process and `parapet-sim` (the real agent code for every simulated host, each with a simulated
//! Redfish BMC on 127.0.0.1) in another, its child. Everything goes through the REST API; the simulator's
//! fault commands go to its standard input (the demo passes its own through), and its answers come back
//! on standard error (the demo's, inherited), as lines starting with `parapet-sim: `.
//!
//! The demo runs in its own process group, so stopping it (SIGTERM, then SIGKILL) by that group's id
//! also reaches the simulator it started, even if the demo is killed without a chance to clean up.
//!
//! Shared by `tests/ha_processes.rs` and `examples/failover_bench_processes.rs` (`#[path]`-included).

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub const PASSWORD: &str = "ha-processes-pass-1";

/// What a demo pool looks like.
#[derive(Clone, Copy, Debug)]
pub struct DemoShape {
    pub hosts_per_cluster: u8,
    /// The demo's own seeded VMs (spread over every host).
    pub vms: u16,
}

pub struct DemoProcess {
    child: tokio::process::Child,
    pgid: i32,
    stdin: tokio::process::ChildStdin,
    /// Answers of `parapet-sim` (its stderr lines, prefix removed).
    sim_lines: mpsc::UnboundedReceiver<String>,
    /// The last lines of the demo's standard error, for failure messages.
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stopped: bool,
    pub base: String,
    pub client: reqwest::Client,
    pub hosts: Vec<HostInfo>,
    pub zone_id: String,
    _data_dir: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct HostInfo {
    pub id: String,
    pub name: String,
    pub cluster_id: String,
}

/// One host as `parapet-sim`'s `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimHostLine {
    pub powered_on: bool,
    /// VMs its hypervisor holds (any state; a powered-off host holds none).
    pub vms: usize,
}

/// Where the `parapet` binary's sibling `parapet-sim` is.
pub fn sim_next_to(parapet: &Path) -> PathBuf {
    parapet.with_file_name("parapet-sim")
}

impl DemoProcess {
    /// Start `parapet demo` (one cluster) and wait for "Parapet demo is ready", then sign in.
    pub async fn start(parapet: &Path, sim: &Path, shape: DemoShape) -> DemoProcess {
        use std::process::Stdio;
        assert!(
            sim.exists(),
            "{} is missing: build it first (`cargo build -p sim --bin parapet-sim`, or `cargo test --workspace`)",
            sim.display()
        );
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new(parapet);
        command
            .arg("demo")
            .args(["--listen", "127.0.0.1:0", "--clusters", "1"])
            .arg("--hosts-per-cluster")
            .arg(shape.hosts_per_cluster.to_string())
            .arg("--vms")
            .arg(shape.vms.to_string())
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--sim-bin")
            .arg(sim)
            .env("PARAPET_ADMIN_PASSWORD", PASSWORD)
            .env("PARAPET_LOG", std::env::var("DEMO_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().expect("cannot start parapet demo");
        let pgid = child.id().expect("the demo's pid") as i32;
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();

        let (sim_sender, sim_lines) = mpsc::unbounded_channel();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(answer) = line.strip_prefix("parapet-sim: ") {
                    let _ = sim_sender.send(answer.to_owned());
                }
                let mut tail = tail.lock().unwrap();
                tail.push_back(line);
                if tail.len() > 40 {
                    tail.pop_front();
                }
            }
        });
        let (ready_sender, mut ready) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("Parapet demo is ready at ") {
                    let _ = ready_sender.send(url.trim_end_matches('/').to_owned());
                }
            }
        });
        let base = match tokio::time::timeout(Duration::from_secs(180), ready.recv()).await {
            Ok(Some(url)) => url,
            outcome => {
                let tail = stderr_tail.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n");
                let _ = kill_group(pgid, "KILL");
                panic!("the demo did not get ready ({outcome:?}); its stderr ended with:\n{tail}");
            }
        };
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let mut demo = DemoProcess {
            child,
            pgid,
            stdin,
            sim_lines,
            stderr_tail,
            stopped: false,
            base,
            client,
            hosts: Vec::new(),
            zone_id: String::new(),
            _data_dir: data_dir,
        };
        let (status, body) =
            demo.call("POST", "/api/v1/auth/login", Some(json!({"username": "admin", "password": PASSWORD}))).await;
        assert_eq!(status, 200, "sign-in: {body}");
        let (_, hosts) = demo.call("GET", "/api/v1/hosts", None).await;
        demo.hosts = hosts
            .as_array()
            .unwrap()
            .iter()
            .map(|host| HostInfo {
                id: host["id"].as_str().unwrap().to_owned(),
                name: host["name"].as_str().unwrap().to_owned(),
                cluster_id: host["cluster_id"].as_str().unwrap().to_owned(),
            })
            .collect();
        demo.hosts.sort_by(|a, b| a.name.cmp(&b.name));
        let (_, zones) = demo.call("GET", "/api/v1/zones", None).await;
        demo.zone_id = zones[0]["id"].as_str().unwrap().to_owned();
        demo
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr_tail.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// One API call: status and JSON body (Null when none).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base)).header(api::v1::CSRF_HEADER, "1");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|error| panic!("{path}: {error}"));
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub fn host(&self, name: &str) -> &HostInfo {
        self.hosts.iter().find(|host| host.name == name).unwrap_or_else(|| panic!("no host {name}"))
    }

    /// HA on for the zone and for the (one) cluster with all its hosts, through the API.
    pub async fn enable_ha(&self) {
        let (status, body) =
            self.call("PUT", &format!("/api/v1/zones/{}/ha", self.zone_id), Some(json!({"enabled": true}))).await;
        assert_eq!(status, 200, "zone HA: {body}");
        let cluster = &self.hosts[0].cluster_id;
        let request = json!({"enabled": true, "include_hosts": true});
        let (status, body) = self.call("PUT", &format!("/api/v1/clusters/{cluster}/ha"), Some(request)).await;
        assert_eq!(status, 200, "cluster HA: {body}");
    }

    /// The host's HA state name (`available`, `fenced`, ...) and the whole answer.
    pub async fn ha_state(&self, name: &str) -> (String, Value) {
        let (status, body) = self.call("GET", &format!("/api/v1/hosts/{}/ha", self.host(name).id), None).await;
        assert_eq!(status, 200, "{body}");
        (body["state"].as_str().unwrap_or_default().to_owned(), body)
    }

    pub async fn wait_all_available(&self, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let mut waiting = Vec::new();
            for host in &self.hosts {
                let (state, body) = self.ha_state(&host.name).await;
                if state != "available" {
                    waiting.push(format!("{}: {state} ({})", host.name, body["reason"]));
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "hosts not Available after {seconds} s: {waiting:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An HA offering (creating it through the API unless one of that name exists): its id.
    pub async fn ha_offering(&self, name: &str, memory_mb: u64, cpu_mhz: u32) -> String {
        let (_, offerings) = self.call("GET", "/api/v1/offerings", None).await;
        if let Some(found) = offerings.as_array().unwrap().iter().find(|offering| offering["name"] == name) {
            return found["id"].as_str().unwrap().to_owned();
        }
        let request =
            json!({"name": name, "cpu_cores": 1, "cpu_mhz": cpu_mhz, "memory_mb": memory_mb, "offer_ha": true});
        let (status, body) = self.call("POST", "/api/v1/offerings", Some(request)).await;
        assert_eq!(status, 201, "creating offering {name}: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Deploy `count` VMs of `offering` onto `host` through the API and wait until they all run
    /// there; checking meanwhile that no VM is on two hypervisors. Answers their ids.
    pub async fn deploy_on(&mut self, host: &str, offering: &str, count: usize) -> Vec<String> {
        let target = self.host(host).clone();
        let (_, templates) = self.call("GET", "/api/v1/templates", None).await;
        let template = templates[0]["id"].as_str().unwrap().to_owned();
        let (_, pools) = self.call("GET", "/api/v1/storage-pools", None).await;
        let pool = pools
            .as_array()
            .unwrap()
            .iter()
            .find(|pool| pool["cluster_id"] == target.cluster_id.as_str())
            .expect("the cluster's primary storage")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut ids = Vec::new();
        for index in 0..count {
            let request = json!({
                "name": format!("{host}-p{index:03}"),
                "offering_id": offering,
                "template_id": template,
                "storage_pool_id": pool,
                "host_id": target.id,
                "start": true,
            });
            let (status, body) = self.call("POST", "/api/v1/vms", Some(request)).await;
            assert_eq!(status, 201, "deploying VM {index} on {host}: {body}");
            ids.push(body["vm"]["id"].as_str().unwrap().to_owned());
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let vms = self.vms().await;
            self.check_hypervisors(vms.len()).await;
            let running = ids
                .iter()
                .filter(|id| {
                    vms.get(*id).is_some_and(|vm| vm["state"] == "running" && vm["host_id"] == target.id.as_str())
                })
                .count();
            if running == ids.len() {
                return ids;
            }
            assert!(Instant::now() < deadline, "only {running} of {count} VMs running on {host}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every VM by id, as GET /vms answers; fails if one id is listed twice (reported on two hosts).
    pub async fn vms(&self) -> HashMap<String, Value> {
        let (status, body) = self.call("GET", "/api/v1/vms", None).await;
        assert_eq!(status, 200, "{body}");
        let mut vms = HashMap::new();
        for vm in body.as_array().unwrap() {
            let id = vm["id"].as_str().unwrap().to_owned();
            assert!(vms.insert(id.clone(), vm.clone()).is_none(), "VM {id} is listed twice (on two hosts?)");
        }
        vms
    }

    /// Send one command line to `parapet-sim`'s standard input.
    pub async fn sim_command(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Send a command to `parapet-sim` and wait (10 s at most) for its answer line containing `expected`.
    pub async fn sim_expect(&mut self, line: &str, expected: &str) -> String {
        while self.sim_lines.try_recv().is_ok() {}
        self.sim_command(line).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.sim_lines.recv()).await {
                Ok(Some(answer)) if answer.contains(expected) => return answer,
                Ok(Some(_)) => {}
                _ => panic!(
                    "parapet-sim did not answer {line:?} with {expected:?}; the demo said:\n{}",
                    self.stderr_tail()
                ),
            }
        }
    }

    /// How many times `host` entered `state` (`suspect`, `fencing`, ...), from its stored transitions.
    pub async fn entered(&self, host: &str, state: &str) -> usize {
        let (_, body) = self.ha_state(host).await;
        body["transitions"]
            .as_array()
            .map(|transitions| transitions.iter().filter(|transition| transition["to"] == state).count())
            .unwrap_or(0)
    }

    /// `parapet-sim`'s `list`: every simulated host's power and how many VMs its hypervisor holds.
    pub async fn sim_list(&mut self) -> HashMap<String, SimHostLine> {
        while self.sim_lines.try_recv().is_ok() {}
        self.sim_command("list").await;
        let mut found = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while found.len() < self.hosts.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, self.sim_lines.recv()).await {
                Ok(Some(line)) => line,
                _ => panic!("parapet-sim did not answer `list` within 10 s; the demo said:\n{}", self.stderr_tail()),
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(vms) = words.iter().find_map(|word| word.strip_prefix("vms=")) else { continue };
            if words.len() < 3 || !self.hosts.iter().any(|host| host.name == words[0]) {
                continue;
            }
            let line = SimHostLine { powered_on: words[2] == "on", vms: vms.parse().unwrap() };
            found.insert(words[0].to_owned(), line);
        }
        found
    }

    /// The hypervisors' truth through `list`: together they hold no more VMs than exist (every VM
    /// is on at most one simulated hypervisor: a copy on a second one would push the sum over).
    /// Sound only while no VM was stopped or migrated (that leaves a stopped entry behind), which
    /// holds in these tests.
    pub async fn check_hypervisors(&mut self, known_vms: usize) -> HashMap<String, SimHostLine> {
        let list = self.sim_list().await;
        let total: usize = list.values().map(|line| line.vms).sum();
        assert!(
            total <= known_vms,
            "the simulated hypervisors hold {total} VMs of {known_vms}: a VM runs twice: {list:?}"
        );
        list
    }

    /// Power a host off through its BMC (the API's OOBM power action: a hard ForceOff).
    pub async fn power_off(&self, name: &str) {
        let path = format!("/api/v1/hosts/{}/oobm/power", self.host(name).id);
        let (status, body) = self.call("POST", &path, Some(json!({"action": "OFF"}))).await;
        assert_eq!(status, 200, "power off {name}: {body}");
    }

    /// Poll until every VM of `ids` is Running on a host other than `failed`, and the simulated
    /// hypervisors agree (the failed host is off and holds none; all of them are held elsewhere).
    /// At every poll: no VM listed twice by the API, no VM on two hypervisors. Answers the time
    /// from `since` and the number of polls.
    pub async fn wait_failover(
        &mut self,
        ids: &[String],
        failed: &str,
        since: Instant,
        seconds: u64,
    ) -> (Duration, usize) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let failed_id = self.host(failed).id.clone();
        let mut polls = 0;
        loop {
            polls += 1;
            let vms = self.vms().await;
            let list = self.check_hypervisors(vms.len()).await;
            let elsewhere = ids
                .iter()
                .filter(|id| {
                    vms.get(*id).is_some_and(|vm| {
                        vm["state"] == "running" && vm["host_id"].as_str().is_some_and(|host| host != failed_id)
                    })
                })
                .count();
            if elsewhere == ids.len() {
                let on_failed = list.get(failed).map(|line| (line.powered_on, line.vms));
                let held: usize =
                    list.iter().filter(|(name, _)| name.as_str() != failed).map(|(_, line)| line.vms).sum();
                if on_failed == Some((false, 0)) && held == vms.len() {
                    return (since.elapsed(), polls);
                }
            }
            assert!(
                Instant::now() < deadline,
                "after {seconds} s only {elsewhere} of {} VMs run away from {failed}; hypervisors: {list:?}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many times `host` entered Fencing, from its stored transitions.
    pub async fn fences(&self, host: &str) -> usize {
        self.entered(host, "fencing").await
    }

    /// Stop the demo: SIGTERM to its process group (the server and the simulator), SIGKILL after 15 s.
    pub async fn stop(mut self) {
        self.stopped = true;
        let _ = kill_group(self.pgid, "TERM");
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await.is_err() {
            let _ = kill_group(self.pgid, "KILL");
            let _ = self.child.wait().await;
        }
        // Whatever is left of the group (a simulator that outlived the demo) goes too.
        let _ = kill_group(self.pgid, "KILL");
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = kill_group(self.pgid, "KILL");
        }
    }
}

/// Signal the process group `pgid` (the demo's own; never another).
fn kill_group(pgid: i32, signal: &str) -> std::io::Result<std::process::ExitStatus> {
    assert!(pgid > 1);
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(std::process::Stdio::null())
        .status()
}
