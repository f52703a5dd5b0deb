//! `cargo xtask bench-api`: latency of `GET /api/v1/vms` with a large inventory, on SQLite and PostgreSQL.
//!
//! For each backend: seed a fresh database with `server/examples/seed_vms.rs`, start the release
//! `parapet serve` on it (127.0.0.1, a free port), sign in with curl, then load the route with wrk from
//! a second process on loopback and print wrk's p50/p99 and throughput. Figures only: nothing here
//! asserts a time. It fails only when the setup fails or a response is not 2xx.

use crate::proc;
use crate::{Ctx, postgres};
use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What `cargo xtask bench-api` may be told.
pub struct Options {
    pub vms: usize,
    pub seconds: u32,
    pub connections: u32,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options { vms: 5000, seconds: 15, connections: 8 };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let value = rest.next().with_context(|| format!("{flag} needs a value"))?;
            let number = |what: &str| -> Result<u64> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{what} must be a positive number, got {value:?}"))
            };
            match flag.as_str() {
                "--vms" => options.vms = number("--vms")? as usize,
                "--seconds" => options.seconds = number("--seconds")? as u32,
                "--connections" => options.connections = number("--connections")? as u32,
                other => bail!("unknown option {other} (known: --vms N, --seconds S, --connections C)"),
            }
        }
        Ok(options)
    }
}

/// One backend's figures, as wrk printed them.
struct Figures {
    backend: &'static str,
    p50: String,
    p99: String,
    requests_per_second: String,
}

pub fn run(ctx: &Ctx, options: &Options) -> Result<ExitCode> {
    if !wrk_present(ctx) {
        ensure!(proc::is_root(), "wrk is missing; install it with: apt-get install -y wrk");
        proc::run_ok(ctx, ctx.command("sh").args(["-c", "apt-get update && apt-get install -y wrk"]))?;
    }
    proc::run_ok(
        ctx,
        ctx.cargo().args(["build", "--release", "-p", "server", "--bin", "parapet", "--example", "seed_vms"]),
    )?;
    let release = ctx.root.join("target").join("release");
    let mut all = Vec::new();

    let data_dir = proc::fresh_temp_dir("parapet-bench-sqlite")?;
    let sqlite_url = format!("sqlite://{}?mode=rwc", data_dir.join("parapet.db").display());
    let figures = measure(ctx, options, &release, "sqlite", &sqlite_url, &["--data-dir".into(), path_arg(&data_dir)]);
    let _ = std::fs::remove_dir_all(&data_dir);
    all.push(figures?);

    let postgres::Found::Answering(admin_url) = postgres::probe(ctx)? else {
        bail!("no PostgreSQL answers (set {} to one)", postgres::URL_VARIABLE);
    };
    let database = format!("parapet_bench_{}", proc::random_hex(4)?);
    psql(ctx, &admin_url, &format!("CREATE DATABASE {database}"))?;
    let pg_url = with_database(&admin_url, &database);
    let pg_dir = proc::fresh_temp_dir("parapet-bench-pg")?;
    let figures = measure(
        ctx,
        options,
        &release,
        "postgresql",
        &pg_url,
        &["--data-dir".into(), path_arg(&pg_dir), "--database-url".into(), pg_url.clone()],
    );
    let _ = std::fs::remove_dir_all(&pg_dir);
    psql(ctx, &admin_url, &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))?;
    all.push(figures?);

    println!();
    println!(
        "GET /api/v1/vms with {} VMs, wrk -t2 -c{} -d{}s on 127.0.0.1 (release build):",
        options.vms, options.connections, options.seconds
    );
    println!("{:<12} {:>10} {:>10} {:>12}", "backend", "p50", "p99", "requests/s");
    for figures in &all {
        println!("{:<12} {:>10} {:>10} {:>12}", figures.backend, figures.p50, figures.p99, figures.requests_per_second);
    }
    Ok(ExitCode::SUCCESS)
}

fn wrk_present(ctx: &Ctx) -> bool {
    // `wrk -v` exits 1 while printing its version; any output means it is there.
    ctx.command("wrk")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| !out.stdout.is_empty() || !out.stderr.is_empty())
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

fn psql(ctx: &Ctx, url: &str, sql: &str) -> Result<()> {
    proc::run_ok(ctx, ctx.command("psql").args([url, "-Atqc", sql]).stdin(Stdio::null()))
}

/// The same server URL naming another database.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

fn measure(
    ctx: &Ctx,
    options: &Options,
    release: &Path,
    backend: &'static str,
    database_url: &str,
    serve_args: &[String],
) -> Result<Figures> {
    println!("xtask: bench-api [{backend}]: seeding {} VMs", options.vms);
    proc::run_ok(
        ctx,
        ctx.command(release.join("examples").join("seed_vms")).args([
            "--database",
            database_url,
            "--vms",
            &options.vms.to_string(),
        ]),
    )?;
    let password = proc::random_hex(12)?;
    let mut command = ctx.command(release.join("parapet"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve_args)
        .env("PARAPET_ADMIN_PASSWORD", &password)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = Running(command.spawn().context("cannot start parapet serve")?);
    let base = wait_for_listening(&mut server.0)?;

    let cookie = sign_in(ctx, &base, &password)?;
    let url = format!("{base}api/v1/vms");
    let probe = curl(ctx, &["-sS", "-f", "-H", &format!("Cookie: {cookie}"), &url])?;
    let listed: serde_json::Value = serde_json::from_str(&probe).context("GET /api/v1/vms did not answer JSON")?;
    let count = listed.as_array().map_or(0, Vec::len);
    ensure!(count == options.vms, "GET /api/v1/vms listed {count} VMs, expected {}", options.vms);

    println!("xtask: bench-api [{backend}]: wrk for {} s", options.seconds);
    let output = ctx
        .command("wrk")
        .args(["-t2", &format!("-c{}", options.connections), &format!("-d{}s", options.seconds), "--latency"])
        .args(["-H", &format!("Cookie: {cookie}"), &url])
        .stdin(Stdio::null())
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{text}");
    ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    ensure!(!text.contains("Non-2xx"), "some responses were not 2xx (the session expired or the server failed)");
    let percentile = |label: &str| -> Result<String> {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(label).map(|rest| rest.trim().to_owned()))
            .with_context(|| format!("wrk printed no {label} latency"))
    };
    let requests_per_second = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:").map(|rest| rest.trim().to_owned()))
        .context("wrk printed no Requests/sec")?;
    Ok(Figures { backend, p50: percentile("50%")?, p99: percentile("99%")?, requests_per_second })
}

/// The server process; stopped by its PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        proc::signal(&self.0.id().to_string(), "TERM");
        if !proc::wait_until_exit(&mut self.0, Duration::from_secs(10)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads the server's "Parapet is listening on http://ADDR/" line; gives "http://ADDR/".
fn wait_for_listening(child: &mut Child) -> Result<String> {
    const MARKER: &str = "Parapet is listening on ";
    let stdout = child.stdout.take().context("no stdout")?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split(MARKER).nth(1) {
                let _ = sender.send(url.trim().to_owned());
            }
        }
    });
    receiver.recv_timeout(Duration::from_secs(60)).context("the server did not say where it listens within 60 s")
}

fn curl(ctx: &Ctx, args: &[&str]) -> Result<String> {
    let output = ctx.command("curl").args(args).stdin(Stdio::null()).output().context("cannot run curl")?;
    ensure!(output.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Signs in as admin and gives the `name=value` of the session cookie.
fn sign_in(ctx: &Ctx, base: &str, password: &str) -> Result<String> {
    let body = serde_json::json!({ "username": "admin", "password": password }).to_string();
    let headers = curl(
        ctx,
        &[
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "content-type: application/json",
            "-H",
            "x-parapet-csrf: 1",
            "--data",
            &body,
            &format!("{base}api/v1/auth/login"),
        ],
    )?;
    headers
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| value.trim().split(';').next().unwrap_or("").to_owned())
        })
        .filter(|cookie| cookie.starts_with("parapet_session="))
        .context("the login answered without a session cookie")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(with_database("postgres://u@h:1/x?sslmode=disable", "b"), "postgres://u@h:1/b?sslmode=disable");
        assert_eq!(with_database("postgres://u@h:1", "b"), "postgres://u@h:1/b");
    }

    #[test]
    fn options_name_what_is_wrong() {
        let parsed = Options::parse(&["--vms".into(), "10".into()]).unwrap();
        assert_eq!(parsed.vms, 10);
        let error = Options::parse(&["--vms".into(), "ten".into()]).err().unwrap().to_string();
        assert!(error.contains("--vms"), "{error}");
        assert!(Options::parse(&["--fast".into(), "1".into()]).is_err());
    }
}
