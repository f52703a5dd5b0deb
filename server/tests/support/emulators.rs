//! Real BMC emulators we did not write, started and stopped by the tests: sushy-tools'
//! `sushy-emulator` (PyPI `sushy-tools`, fake driver; Redfish) and OpenIPMI's `ipmi_sim` (Debian
//! `openipmi`; IPMI v2.0 lanplus), plus "BMCs" that accept a connection or a datagram and never
//! answer. Each emulator runs in its own temporary directory on a free loopback port and is killed
//! when dropped. A missing program fails the test with the package to install.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Fail clearly when an external program is missing (never skip silently).
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false);
    assert!(found, "these tests need `{program}` on PATH: install {package}");
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// A loopback TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One fake system of a sushy emulator.
#[derive(Clone, Debug)]
pub struct FakeSystem {
    pub uuid: String,
    pub name: String,
    pub power_on: bool,
}

impl FakeSystem {
    pub fn new(index: usize, power_on: bool) -> FakeSystem {
        FakeSystem { uuid: format!("27946b59-9e44-4fa7-8e91-{index:012}"), name: format!("node-{index}"), power_on }
    }
}

/// sushy-emulator with the fake driver. Its power changes apply 1 to 11 s after the request.
pub struct Sushy {
    pub port: u16,
    pub https: bool,
    pub username: String,
    pub password: String,
    pub systems: Vec<FakeSystem>,
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Sushy {
    /// An emulator with basic auth (`admin` / `password`) serving `systems`, over HTTPS with a
    /// self-signed certificate when `https`.
    pub async fn start(systems: Vec<FakeSystem>, password: &str, https: bool) -> Sushy {
        require_program("sushy-emulator", "the PyPI package sushy-tools (pip install sushy-tools)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port();
        let htpasswd = dir.path().join("htpasswd");
        write_htpasswd(&htpasswd, "admin", password).await;
        let systems_python: Vec<String> = systems
            .iter()
            .map(|system| {
                format!(
                    "{{'uuid': '{}', 'name': '{}', 'power_state': '{}', 'external_notifier': False, \
                     'nics': [{{'mac': '00:5c:52:31:3a:9c', 'ip': '172.22.0.100'}}]}}",
                    system.uuid,
                    system.name,
                    if system.power_on { "On" } else { "Off" }
                )
            })
            .collect();
        let mut config = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n\
             SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n\
             SUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{}'\n",
            systems_python.join(", "),
            dir.path().join("state").display(),
            htpasswd.display()
        );
        if https {
            let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
            let cert = dir.path().join("cert.pem");
            let key = dir.path().join("key.pem");
            std::fs::write(&cert, certified.cert.pem()).unwrap();
            std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
            config.push_str(&format!(
                "SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n",
                cert.display(),
                key.display()
            ));
        }
        let config_path = dir.path().join("emulator.conf");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let child = Command::new("sushy-emulator")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start sushy-emulator (PyPI package sushy-tools)");
        let mut sushy = Sushy {
            port,
            https,
            username: "admin".into(),
            password: password.into(),
            systems,
            child: Some(child),
            dir,
        };
        sushy.wait_until_serving().await;
        sushy
    }

    async fn wait_until_serving(&mut self) {
        let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        // The systems collection, not just the root: its first request creates the emulator's fake
        // driver, which is not safe to create from several requests at once (a racing creation
        // can reset a system and drop a pending power change).
        let url = format!("{}://127.0.0.1:{}/redfish/v1/Systems", if self.https { "https" } else { "http" }, self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = client.get(&url).basic_auth(&self.username, Some(&self.password)).send().await;
            if answer.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("sushy-emulator exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "sushy-emulator did not serve within 30 s: {}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// Stop the emulator now (its port stops answering).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// An Apache-style password file with a bcrypt hash (the only kind sushy-tools reads), made with
/// the `bcrypt` module sushy-tools itself depends on. The password goes through the environment.
async fn write_htpasswd(path: &Path, user: &str, password: &str) {
    let output = Command::new("python3")
        .arg("-c")
        .arg("import bcrypt, os; print(bcrypt.hashpw(os.environ['PW'].encode(), bcrypt.gensalt(4)).decode())")
        .env("PW", password)
        .output()
        .await
        .expect("python3 is needed to hash the emulator's password (it comes with sushy-tools)");
    assert!(output.status.success(), "bcrypt hashing failed: {}", String::from_utf8_lossy(&output.stderr));
    let hash = String::from_utf8(output.stdout).unwrap();
    std::fs::write(path, format!("{user}:{}\n", hash.trim())).unwrap();
}

/// OpenIPMI's `ipmi_sim`: one BMC on a loopback UDP port, user 2 `admin`, whose chassis power is a
/// file (`power`: 1 on, 0 off) written by its chassis-control program. Like some real BMCs, it keeps
/// only the first 16 bytes of a 20-byte password and still answers "success".
pub struct IpmiSim {
    pub port: u16,
    pub username: String,
    pub password: String,
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl IpmiSim {
    pub async fn start(password: &str, power_on: bool) -> IpmiSim {
        require_program("ipmi_sim", "the Debian package openipmi (apt-get install openipmi)");
        require_program("ipmitool", "the Debian package ipmitool (apt-get install ipmitool)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let power_file = dir.path().join("power");
        std::fs::write(&power_file, if power_on { "1\n" } else { "0\n" }).unwrap();
        let control = dir.path().join("chassis-control");
        // ipmi_sim runs `<program> <device> get|set <parm> [<value>] ...` on chassis control.
        std::fs::write(
            &control,
            format!(
                "#!/bin/sh\nstate='{}'\nlog='{}'\nshift\nop=$1\nshift\n\
                 case $op in\n\
                 get) while [ -n \"$1\" ]; do case $1 in power) v=$(cat \"$state\");; boot) v=default;; *) exit 1;; esac; echo \"$1:$v\"; shift; done;;\n\
                 set) while [ -n \"$1\" ]; do p=$1; v=$2; shift 2; echo \"$p $v\" >> \"$log\"; case $p in power) echo \"$v\" > \"$state\";; esac; done;;\n\
                 *) exit 1;;\n\
                 esac\n",
                power_file.display(),
                dir.path().join("chassis.log").display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let lan_conf = dir.path().join("lan.conf");
        std::fs::write(
            &lan_conf,
            format!(
                "name \"parapet-test\"\n\
                 set_working_mc 0x20\n\
                 startlan 1\n\
                 addr 127.0.0.1 {port}\n\
                 priv_limit admin\n\
                 allowed_auths_callback none md2 md5 straight\n\
                 allowed_auths_user none md2 md5 straight\n\
                 allowed_auths_operator none md2 md5 straight\n\
                 allowed_auths_admin none md2 md5 straight\n\
                 guid a123456789abcdefa123456789abcdef\n\
                 endlan\n\
                 chassis_control \"{} 0x20\"\n\
                 user 1 false \"\" \"\" user 10 none md2 md5 straight\n\
                 user 2 true \"admin\" \"{password}\" admin 10 none md2 md5 straight\n",
                control.display()
            ),
        )
        .unwrap();
        let emu = dir.path().join("bmc.emu");
        std::fs::write(
            &emu,
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 0x09 0x08 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("ipmi_sim.log")).unwrap();
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(&lan_conf)
            .arg("-f")
            .arg(&emu)
            .arg("-s")
            .arg(dir.path().join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start ipmi_sim (Debian package openipmi)");
        let mut sim = IpmiSim { port, username: "admin".into(), password: password.into(), child: Some(child), dir };
        sim.wait_until_serving().await;
        sim
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.ipmitool(&self.password.clone(), &["chassis", "power", "status"]).await.is_some() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("ipmi_sim exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "ipmi_sim did not answer within 20 s: {}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run ipmitool against this BMC with `password`; its output when it succeeded.
    pub async fn ipmitool(&self, password: &str, command: &[&str]) -> Option<String> {
        let port = self.port.to_string();
        let output = Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", "127.0.0.1", "-p", &port, "-U"])
            .arg(&self.username)
            .arg("-E")
            .args(command)
            .env("IPMI_PASSWORD", password)
            .kill_on_drop(true)
            .output()
            .await
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The chassis power as the emulator's control program last set it.
    pub fn power_file_says_on(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("power")).unwrap_or_default().trim() == "1"
    }

    /// Every chassis control the BMC carried out, one `<parm> <value>` a line (`power 0`, `reset 1`).
    pub fn chassis_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("chassis.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| line.trim().to_owned())
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ipmi_sim.log")).unwrap_or_default()
    }
}

/// A TCP port that accepts connections and never says a word (a hung BMC web server).
pub async fn silent_tcp_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// A UDP port that takes datagrams and never answers (a hung IPMI stack).
pub async fn silent_udp_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut buffer = [0u8; 1024];
        while socket.recv_from(&mut buffer).await.is_ok() {}
    });
    (port, task)
}

/// The p50 of some durations (the lower middle for an even count).
pub fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() - 1) / 2]
}
