//! `cargo xtask`: the project's two commands (`demo`, `test`) and the tool installs they need.
//!
//! CI runs `cargo xtask test` in a fresh clone on a fresh machine, so everything that machine lacks
//! (the wasm target, trunk, wasm-bindgen-cli, wasm-opt, Playwright, Debian's chromium, maybe
//! PostgreSQL) is installed here, each step skipped when already present at the right version. Written
//! in Rust rather than shell so that process lifetimes (servers started for tests are always stopped),
//! timeouts and the final test count are handled in one place that can be unit tested.

mod bench;
mod console;
mod e2e;
mod postgres;
mod proc;
mod report;
mod steps;
mod tools;

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  demo [-- ARGS...]  install missing tools, build the binaries and the console, then run
                     `target/debug/parapet demo --web-dir dist ARGS...` (Ctrl-C stops it)
  test               install missing tools, then run every check and test: rustfmt, cargo test
                     (with PostgreSQL), the console build, the Playwright end-to-end tests, clippy;
                     ends with `xtask: N passed, M failed` and a non-zero exit if anything failed.
                     PostgreSQL: $PARAPET_TEST_POSTGRES_URL, else 127.0.0.1:5432, else a throwaway
                     cluster (PARAPET_TEST_POSTGRES_URL=throwaway forces one)
  e2e                like `test`, but only builds and runs the Playwright end-to-end tests
  tools              only install the missing tools
  console-wasm       build the console's wasm, split per route group, into target/console-pkg/
                     (Trunk's pre_build hook runs this; `trunk build --release` builds everything)
  bench-api [--vms N] [--seconds S] [--connections C]
                     p50/p99 of GET /api/v1/vms with N VMs (default 5000) on SQLite and PostgreSQL,
                     loaded by wrk from a second process; prints figures, asserts no times
  help               this text";

/// Set by SIGINT / SIGTERM / SIGHUP; every wait loop checks it so that xtask can stop what it started.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What every part of xtask needs to know about where it runs.
pub struct Ctx {
    /// The workspace root (the parent of xtask/).
    pub root: PathBuf,
    /// `PATH` with `<root>/node_modules/.bin` first (so trunk finds wasm-opt 132, not a Debian one)
    /// and cargo's bin directory present (where `cargo install` puts trunk and wasm-bindgen).
    pub path: OsString,
    /// The cargo that runs us (`$CARGO`), so every build uses the same toolchain.
    pub cargo: OsString,
}

impl Ctx {
    fn new() -> Result<Ctx> {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask/ has no parent directory")?.to_path_buf();
        let mut path_entries = vec![root.join("node_modules").join(".bin")];
        let cargo_bin = cargo_home().join("bin");
        let inherited: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
        path_entries.extend(inherited.iter().cloned());
        if !inherited.contains(&cargo_bin) {
            path_entries.push(cargo_bin);
        }
        let path = std::env::join_paths(path_entries).context("cannot build PATH")?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Ctx { root, path, cargo })
    }

    /// A command that runs at the workspace root with our PATH and the environment every tool here
    /// wants: trunk must not look for a newer version of itself (no internet), and Playwright must
    /// never download a browser (we use Debian's chromium).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.root)
            .env("PATH", &self.path)
            .env("TRUNK_SKIP_VERSION_CHECK", "true")
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        command
    }

    pub fn cargo(&self) -> Command {
        self.command(&self.cargo)
    }

    /// Where xtask keeps its logs (inside target/, which git ignores).
    pub fn log_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("target").join("xtask");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    pub fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }

    pub fn bail_if_interrupted(&self) -> Result<()> {
        if self.interrupted() {
            bail!("interrupted");
        }
        Ok(())
    }
}

fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home);
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo")
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "help".to_owned());
    let rest: Vec<String> = args.collect();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, &INTERRUPTED).context("cannot install a signal handler")?;
    }
    let ctx = Ctx::new()?;
    match command.as_str() {
        "demo" => {
            let extra = match rest.first().map(String::as_str) {
                Some("--") => rest[1..].to_vec(),
                _ => rest,
            };
            steps::demo(&ctx, &extra)
        }
        "test" => {
            no_options(&command, &rest)?;
            steps::test(&ctx, steps::Scope::Everything)
        }
        "e2e" => {
            no_options(&command, &rest)?;
            steps::test(&ctx, steps::Scope::EndToEndOnly)
        }
        "tools" => {
            no_options(&command, &rest)?;
            tools::ensure(
                &ctx,
                &tools::Needs { chromium: true, postgres_package: false, libvirt: true, test_peers: true },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        "console-wasm" => {
            no_options(&command, &rest)?;
            console::build(&ctx)?;
            Ok(ExitCode::SUCCESS)
        }
        "bench-api" => bench::run(&ctx, &bench::Options::parse(&rest)?),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn no_options(command: &str, rest: &[String]) -> Result<()> {
    if !rest.is_empty() {
        bail!("`cargo xtask {command}` takes no options (got {rest:?}); see `cargo xtask help`");
    }
    Ok(())
}
