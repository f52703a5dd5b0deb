//! The end-to-end run: start `parapet demo` on a free port with a fresh data dir, wait until it says it
//! is ready, run Playwright against it, and stop the server's whole process group afterwards (it spawns
//! `parapet-sim`), whatever happened.

use crate::Ctx;
use crate::proc;
use crate::report;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the demo prints once its simulated hosts registered and the seeded VMs run.
const READY_MARKER: &str = "Parapet demo is ready at ";
const READY_DEADLINE: Duration = Duration::from_secs(120);

/// Playwright's verdict.
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
}

pub fn run(ctx: &Ctx) -> Result<Counts> {
    let server_binary = ctx.root.join("target").join("debug").join("parapet");
    if !server_binary.exists() {
        bail!("{} does not exist (the build failed?)", server_binary.display());
    }
    let playwright = ctx.root.join("node_modules").join(".bin").join("playwright");
    let password = proc::random_hex(12)?;
    let data_dir = proc::fresh_temp_dir("parapet-e2e-data")?;
    let log_path = ctx.log_dir()?.join("e2e-server.log");

    let mut command = ctx.command(&server_binary);
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(["--web-dir", "dist"])
        .env("PARAPET_ADMIN_PASSWORD", &password)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that one signal reaches the server and every simulator it started.
        .process_group(0);
    println!("xtask: $ {} (PARAPET_ADMIN_PASSWORD=<random>, log: {})", proc::describe(&command), log_path.display());
    let child = command.spawn().with_context(|| format!("cannot start {}", server_binary.display()))?;
    let mut server = Server { child, data_dir, log_path: log_path.clone() };

    // Both output streams go to the log (and must keep being drained, or the server would block on a
    // full pipe); the first ready line is handed over with its URL.
    let log =
        Arc::new(Mutex::new(File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?));
    let (ready_sender, ready_receiver) = mpsc::channel::<String>();
    for stream in [
        server.child.stdout.take().map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
        server.child.stderr.take().map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(&log);
        let ready_sender = ready_sender.clone();
        proc::read_lines(stream, move |line| {
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{line}");
            }
            if let Some(url) = ready_url(&line) {
                let _ = ready_sender.send(url);
            }
        });
    }
    drop(ready_sender);

    let started = Instant::now();
    let url = loop {
        ctx.bail_if_interrupted()?;
        match ready_receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(url) => break url,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both streams closed: it exited (or closed them); give it a moment to be reaped.
                proc::wait_until_exit(&mut server.child, Duration::from_secs(2));
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            std::thread::sleep(Duration::from_millis(200)); // let the log catch up
            server.print_log();
            bail!("the demo server exited before it was ready ({status})");
        }
        if started.elapsed() > READY_DEADLINE {
            server.print_log();
            bail!("the demo server did not print `{READY_MARKER}...` within {} s", READY_DEADLINE.as_secs());
        }
    };
    println!("xtask: demo server ready at {url} after {}", report::seconds(started.elapsed()));

    let report_dir = ctx.root.join("end2end").join("playwright-report");
    let json_report = report_dir.join("results.json");
    let _ = std::fs::remove_file(&json_report);
    let mut playwright_command = ctx.command(&playwright);
    playwright_command
        .arg("test")
        .current_dir(ctx.root.join("end2end"))
        .env("PARAPET_URL", &url)
        .env("PARAPET_ADMIN_PASSWORD", &password);
    let status = proc::run(ctx, &mut playwright_command)?;
    let counts = match std::fs::read_to_string(&json_report) {
        Ok(text) => {
            report::parse_playwright_json(&text).with_context(|| format!("cannot read {}", json_report.display()))?
        }
        Err(_) => (0, 0),
    };
    let (passed, mut failed) = counts;
    if !status.success() && failed == 0 {
        // Playwright failed without a failing test to show (config error, crash): still a failure.
        failed = 1;
    }
    println!(
        "xtask: Playwright: {passed} passed, {failed} failed; screenshots and traces in {}, report in {}",
        ctx.root.join("end2end").join("test-results").display(),
        report_dir.join("html").display()
    );
    if failed > 0 {
        eprintln!("xtask: end of the demo server's output:");
        proc::print_tail(&server.log_path, 80);
    }
    drop(server);
    Ok(Counts { passed, failed })
}

/// The URL in a ready line, ANSI colours and trailing punctuation removed.
fn ready_url(line: &str) -> Option<String> {
    let plain = strip_ansi(line);
    let after = &plain[plain.find(READY_MARKER)? + READY_MARKER.len()..];
    let url: String = after.split_whitespace().next()?.trim_end_matches([',', ';', ')']).to_owned();
    url.starts_with("http").then_some(url)
}

fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~
                for next in chars.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
}

/// The running demo server; dropping it stops its process group and removes its data dir.
struct Server {
    child: Child,
    data_dir: PathBuf,
    log_path: PathBuf,
}

impl Server {
    fn print_log(&self) {
        eprintln!("xtask: output of the demo server ({}):", self.log_path.display());
        proc::print_tail(&self.log_path, 200);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        proc::signal(&group, "TERM");
        if !proc::wait_until_exit(&mut self.child, Duration::from_secs(10)) {
            eprintln!("xtask: the demo server ignored SIGTERM for 10 s; killing it");
        }
        // Whatever is left of the group (a simulator that outlived the server) goes too.
        proc::signal(&group, "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_dir_quietly(&self.data_dir);
        println!("xtask: demo server stopped");
    }
}

fn remove_dir_quietly(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_gives_the_url() {
        assert_eq!(
            ready_url("Parapet demo is ready at http://127.0.0.1:40123/ (user admin)").as_deref(),
            Some("http://127.0.0.1:40123/")
        );
        assert_eq!(
            ready_url("\u{1b}[32m INFO\u{1b}[0m parapet: Parapet demo is ready at http://127.0.0.1:5/,").as_deref(),
            Some("http://127.0.0.1:5/")
        );
        assert_eq!(ready_url("listening on 127.0.0.1:40123"), None);
    }
}
