//! A PostgreSQL for the DB tests: the machine's own if one answers, else a throwaway cluster.
//!
//! Machines of our kind run PostgreSQL on 127.0.0.1:5432 with trust auth, but nothing guarantees it.
//! When none answers, we initdb a cluster in a temp dir (as the `postgres` user: initdb refuses root),
//! start it on a free port with trust auth and its socket in that dir, and stop it by its PID when
//! the guard is dropped, whatever happened in between.

use crate::proc;
use crate::{Ctx, tools};
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const URL_VARIABLE: &str = "PARAPET_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// `PARAPET_TEST_POSTGRES_URL=throwaway` skips the machine's server and always starts a throwaway
/// cluster (the path a machine without PostgreSQL takes; also a clean slate on demand).
const FORCE_THROWAWAY: &str = "throwaway";

/// What `probe` found.
pub enum Found {
    /// A server answers at this URL.
    Answering(String),
    /// None answers; `package_missing` says whether Debian's postgresql must be installed first.
    Missing { package_missing: bool },
}

/// Checks the URL from the environment (or the default) without starting anything.
pub fn probe(ctx: &Ctx) -> Result<Found> {
    let explicit = std::env::var(URL_VARIABLE).ok().filter(|url| !url.is_empty());
    if explicit.as_deref() == Some(FORCE_THROWAWAY) {
        println!("xtask: postgres: {URL_VARIABLE}={FORCE_THROWAWAY}: will start a throwaway cluster");
        return Ok(Found::Missing { package_missing: tools::postgres_bin_dir().is_none() });
    }
    let url = explicit.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    if answers(ctx, &url) {
        return Ok(Found::Answering(url));
    }
    if explicit.is_some() {
        bail!("{URL_VARIABLE}={url} does not answer (unset it to let xtask start a throwaway PostgreSQL)");
    }
    println!("xtask: postgres: nothing answers at {url}; will start a throwaway cluster");
    Ok(Found::Missing { package_missing: tools::postgres_bin_dir().is_none() })
}

/// True if a TCP connection to the URL's host:port succeeds and, when psql is installed, `select 1`
/// works with the URL's credentials.
fn answers(ctx: &Ctx, url: &str) -> bool {
    let Some((host, port)) = host_and_port(url) else {
        return false;
    };
    let Some(address) = (host.as_str(), port).to_socket_addrs().ok().and_then(|mut all| all.next()) else {
        return false;
    };
    if TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err() {
        return false;
    }
    let mut psql = ctx.command("psql");
    psql.args([url, "-Atqc", "select 1"]).env("PGCONNECT_TIMEOUT", "5");
    match psql.stdin(Stdio::null()).stderr(Stdio::null()).output() {
        Ok(output) => output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "1",
        Err(_) => true, // no psql on this machine: the open port has to do
    }
}

/// `postgres://user:pw@host:port/db?x=y` -> (host, port); port 5432 when absent.
pub fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, after)| after);
    if host_port.is_empty() {
        return None;
    }
    let (host, port) = match host_port.strip_prefix('[') {
        // [v6-address]:port
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

/// A throwaway cluster; dropping it stops the server (fast shutdown) and deletes its directory.
pub struct Throwaway {
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl Throwaway {
    pub fn start(ctx: &Ctx) -> Result<Throwaway> {
        let bin = tools::postgres_bin_dir()
            .context("Debian's postgresql is not installed (/usr/lib/postgresql/*/bin/initdb)")?;
        let dir = proc::fresh_temp_dir("parapet-test-pg")?;
        let owner = if proc::is_root() {
            let (uid, gid) = passwd_ids("postgres")
                .or_else(|| passwd_ids("nobody"))
                .context("running as root, and neither user postgres nor nobody exists for initdb")?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("cannot chown {}", dir.display()))?;
            Some((uid, gid))
        } else {
            None
        };
        let as_owner = |command: &mut Command| {
            if let Some((uid, gid)) = owner {
                command.uid(uid).gid(gid);
            }
            command.current_dir(&dir).env_remove("PGDATA");
        };
        let data = dir.join("data");
        let log_path = ctx.log_dir()?.join("postgres.log");

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdout(Stdio::null());
        as_owner(&mut initdb);
        let status = initdb.status().context("cannot run initdb")?;
        if !status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!("initdb failed ({status})");
        }

        let port = proc::free_port()?;
        let log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            // A throwaway cluster needs no durability; this keeps the DB tests quick.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot duplicate a file handle")?)
            .stderr(log);
        as_owner(&mut server);
        let child = server.spawn().context("cannot start postgres")?;
        let mut throwaway = Throwaway { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), child, dir };
        println!(
            "xtask: postgres: throwaway cluster starting (pid {}, log {})",
            throwaway.child.id(),
            log_path.display()
        );

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            ctx.bail_if_interrupted()?;
            if let Some(status) = throwaway.child.try_wait()? {
                proc::print_tail(&log_path, 40);
                bail!("the throwaway postgres exited at start-up ({status})");
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if ready && answers(ctx, &throwaway.url) {
                return Ok(throwaway);
            }
            if Instant::now() > deadline {
                proc::print_tail(&log_path, 40);
                bail!("the throwaway postgres did not accept connections within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's "fast shutdown": roll back, close connections, exit.
        proc::signal(&self.child.id().to_string(), "INT");
        if !proc::wait_until_exit(&mut self.child, Duration::from_secs(15)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        println!("xtask: postgres: throwaway cluster stopped");
    }
}

/// uid and gid of a user from /etc/passwd.
fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == user {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_from_the_url() {
        let pair = |host: &str, port| Some((host.to_owned(), port));
        assert_eq!(host_and_port("postgres://postgres@127.0.0.1:5432/postgres"), pair("127.0.0.1", 5432));
        assert_eq!(host_and_port("postgres://u:p%40ss@db.example:6000/x?sslmode=disable"), pair("db.example", 6000));
        assert_eq!(host_and_port("postgresql://localhost/test"), pair("localhost", 5432));
        assert_eq!(host_and_port("postgres://[::1]:5433/db"), pair("::1", 5433));
        assert_eq!(host_and_port("not a url"), None);
    }
}
