//! A real SMTP server for the mail tests: PyPI `aiosmtpd` (pinned in requirements-test.txt) driven
//! by `smtp_server.py` beside this file, on a loopback port, writing every accepted message to a
//! temporary directory that the test reads. It accepts, or refuses every recipient with 550, and
//! may require AUTH. Killed when dropped. Also a listener that accepts and never says a word.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A loopback TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// Every RCPT gets `550 5.7.1 ... refuses all mail`.
    Reject,
}

/// One message as the SMTP server received it (decoded by Python's email package).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub login: Option<String>,
    pub data: String,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub message_id: String,
    pub body: String,
}

pub struct SmtpPeer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    mode: Mode,
    auth: Option<(String, String)>,
    child: Option<Child>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py")
}

impl SmtpPeer {
    /// A server on a free port; with `auth`, AUTH as (user, password) is required.
    pub async fn start(mode: Mode, auth: Option<(&str, &str)>) -> SmtpPeer {
        Self::start_on(free_tcp_port(), mode, auth).await
    }

    pub async fn start_on(port: u16, mode: Mode, auth: Option<(&str, &str)>) -> SmtpPeer {
        let mut peer = SmtpPeer {
            port,
            dir: tempfile::tempdir().unwrap(),
            mode,
            auth: auth.map(|(user, password)| (user.to_owned(), password.to_owned())),
            child: None,
        };
        peer.spawn().await;
        peer
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut command = Command::new("python3");
        command
            .arg(script())
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        if self.mode == Mode::Reject {
            command.arg("--reject");
        }
        if let Some((user, password)) = &self.auth {
            // The password through the environment, never on the command line.
            command.args(["--auth-user", user]).env("SMTP_TEST_PASSWORD", password);
        }
        self.child = Some(command.spawn().expect("cannot start python3"));
        self.wait_until_serving().await;
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut greeting = [0u8; 3];
                let read = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut greeting)).await;
                if matches!(read, Ok(Ok(_))) && &greeting == b"220" {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the aiosmtpd test server exited with {status} (is the PyPI package aiosmtpd installed? \
                     pip install -r requirements-test.txt): {}",
                    self.log()
                );
            }
            assert!(Instant::now() < deadline, "the SMTP server did not greet within 30 s: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut numbered: Vec<(u64, Received)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let number: u64 = path.file_name()?.to_str()?.strip_suffix(".json")?.parse().ok()?;
                let text = std::fs::read_to_string(&path).ok()?;
                Some((number, serde_json::from_str(&text).unwrap()))
            })
            .collect();
        numbered.sort_by_key(|(number, _)| *number);
        numbered.into_iter().map(|(_, received)| received).collect()
    }

    /// Polls until at least `count` messages arrived; panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(Instant::now() < deadline, "{count} message(s) expected within {within:?}, got {}", received.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop the server now (its port stops answering); messages received stay readable.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A TCP listener that accepts connections and never sends a greeting (an SMTP server that hangs).
pub async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (port, task)
}
