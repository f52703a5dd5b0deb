//! The two commands, phase by phase: `demo` (build, then exec the server) and `test` (every check).
//!
//! Debug builds everywhere: `cargo test` needs the debug build anyway, so `demo` and the end-to-end
//! tests reuse it for free, while a release build of the server would compile every dependency a
//! second time (minutes on 2 cores) to save nothing a demo notices. Dependencies get opt-level 1 in
//! the dev profile (root Cargo.toml), which keeps argon2 and sqlite quick.

use crate::report::{self, Outcome, Report};
use crate::{Ctx, e2e, postgres, proc, tools};
use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub enum Scope {
    Everything,
    EndToEndOnly,
}

pub fn demo(ctx: &Ctx, extra: &[String]) -> Result<ExitCode> {
    let total = Instant::now();
    let mut timings = Vec::new();

    let started = Instant::now();
    tools::ensure(ctx, &tools::Needs { chromium: false, postgres_package: false, libvirt: false, test_peers: false })?;
    timings.push(("tools", started.elapsed()));

    let started = Instant::now();
    proc::run_ok(ctx, ctx.cargo().args(["build", "--bins"]))?;
    timings.push(("build", started.elapsed()));

    let started = Instant::now();
    proc::run_ok(ctx, &mut trunk_build(ctx))?;
    timings.push(("console", started.elapsed()));

    for (name, took) in timings {
        println!("xtask: {name:<8} {:>9}", report::seconds(took));
    }
    println!("xtask: ready in {}; starting the demo (Ctrl-C stops it)", report::seconds(total.elapsed()));
    let server = ctx.root.join("target").join("debug").join("parapet");
    let mut command = ctx.command(&server);
    command.args(["demo", "--web-dir", "dist"]).args(extra);
    println!("xtask: $ {}", proc::describe(&command));
    // exec: the server becomes this process, so Ctrl-C and exit codes are its own.
    let error = command.exec();
    Err(error).with_context(|| format!("cannot run {}", server.display()))
}

pub fn test(ctx: &Ctx, scope: Scope) -> Result<ExitCode> {
    let total = Instant::now();
    let mut report = Report::default();
    let everything = matches!(scope, Scope::Everything);

    // Tools, and which PostgreSQL the DB tests will use (decided first so that a missing postgresql
    // package joins the same apt-get run as chromium).
    let started = Instant::now();
    println!("xtask: ==> tools");
    let tools_ready = (|| -> Result<Option<postgres::Found>> {
        let postgres_found = if everything { Some(postgres::probe(ctx)?) } else { None };
        let postgres_package = matches!(postgres_found, Some(postgres::Found::Missing { package_missing: true }));
        tools::ensure(
            ctx,
            &tools::Needs { chromium: true, postgres_package, libvirt: everything, test_peers: everything },
        )?;
        Ok(postgres_found)
    })();
    ctx.bail_if_interrupted()?;
    let postgres_found = match tools_ready {
        Ok(found) => {
            report.record("tools", started.elapsed(), Outcome::Passed, "", false);
            found
        }
        Err(error) => {
            // Nothing can run without the tools; still end with the summary line CI looks for.
            report.record("tools", started.elapsed(), Outcome::Failed(format!("{error:#}")), "", false);
            report.print_summary(total.elapsed());
            return Ok(ExitCode::FAILURE);
        }
    };

    if everything {
        phase(ctx, &mut report, "fmt", "rustfmt --check", || {
            let status = proc::run(ctx, ctx.cargo().args(["fmt", "--all", "--", "--check"]))?;
            Ok(if status.success() {
                Outcome::Passed
            } else {
                Outcome::Failed("code is not rustfmt-formatted: run `cargo fmt --all` (diff above)".into())
            })
        })?;
    }

    phase(ctx, &mut report, "build", "cargo build --bins (debug)", || {
        let status = proc::run(ctx, ctx.cargo().args(["build", "--bins"]))?;
        Ok(if status.success() { Outcome::Passed } else { Outcome::Failed(format!("cargo build ({status})")) })
    })?;

    if everything {
        let started = Instant::now();
        println!("xtask: ==> cargo-test");
        let result = (|| -> Result<(Outcome, bool, String)> {
            let (url, throwaway) = match postgres_found {
                Some(postgres::Found::Answering(url)) => (url, None),
                _ => {
                    let throwaway = postgres::Throwaway::start(ctx)?;
                    (throwaway.url.clone(), Some(throwaway))
                }
            };
            println!("xtask: {}={url}", postgres::URL_VARIABLE);
            let outcome = cargo_test(ctx, &mut report, &url);
            drop(throwaway); // stops a throwaway cluster right after the tests that need it
            let (outcome, counted) = outcome?;
            Ok((outcome, counted, format!("postgres {url}")))
        })();
        let (outcome, counted, note) = match result {
            Ok(triple) => triple,
            Err(error) => (Outcome::Failed(format!("{error:#}")), false, String::new()),
        };
        ctx.bail_if_interrupted()?;
        report.record("cargo-test", started.elapsed(), outcome, &note, counted);
    }

    phase(ctx, &mut report, "console", "trunk build --release", || {
        let status = proc::run(ctx, &mut trunk_build(ctx))?;
        Ok(if status.success() { Outcome::Passed } else { Outcome::Failed(format!("trunk build ({status})")) })
    })?;

    {
        let started = Instant::now();
        println!("xtask: ==> e2e");
        let (outcome, counted) = if !report.phase_passed("build") || !report.phase_passed("console") {
            (Outcome::Skipped("needs the binaries and the console".into()), false)
        } else {
            match e2e::run(ctx) {
                Ok(counts) => {
                    report.passed += counts.passed;
                    report.failed += counts.failed;
                    let outcome = if counts.failed == 0 {
                        Outcome::Passed
                    } else {
                        Outcome::Failed(format!("{} Playwright tests failed", counts.failed))
                    };
                    (outcome, true)
                }
                Err(error) => (Outcome::Failed(format!("{error:#}")), false),
            }
        };
        ctx.bail_if_interrupted()?;
        report.record("e2e", started.elapsed(), outcome, "Playwright, Debian chromium", counted);
    }

    if everything {
        phase(ctx, &mut report, "clippy", "host crates, all targets, -D warnings", || {
            let status =
                proc::run(ctx, ctx.cargo().args(["clippy", "--all-targets", "--quiet", "--", "-D", "warnings"]))?;
            Ok(if status.success() { Outcome::Passed } else { Outcome::Failed("clippy found problems (above)".into()) })
        })?;
        phase(ctx, &mut report, "clippy-app", "console, wasm32, -D warnings", || {
            let status = proc::run(
                ctx,
                ctx.cargo().args([
                    "clippy",
                    "-p",
                    "app",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--quiet",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )?;
            Ok(if status.success() {
                Outcome::Passed
            } else {
                Outcome::Failed("clippy found problems in the console (above)".into())
            })
        })?;
    }

    report.print_summary(total.elapsed());
    Ok(if report.any_failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `trunk build --release` (Trunk.toml: offline, tool versions pinned). Without a backtrace: with the
/// machine's RUST_BACKTRACE=1, trunk prints a long one between the compiler's error and its own summary.
fn trunk_build(ctx: &Ctx) -> std::process::Command {
    let mut command = ctx.command("trunk");
    command.args(["build", "--release"]).env("RUST_BACKTRACE", "0");
    command
}

/// Runs one phase that has no test counts of its own, timing it; an error is a failed phase, except an
/// interruption, which ends the run.
fn phase(ctx: &Ctx, report: &mut Report, name: &str, note: &str, body: impl FnOnce() -> Result<Outcome>) -> Result<()> {
    let started = Instant::now();
    println!("xtask: ==> {name}");
    let outcome = body().unwrap_or_else(|error| Outcome::Failed(format!("{error:#}")));
    ctx.bail_if_interrupted()?;
    report.record(name, started.elapsed(), outcome, note, false);
    Ok(())
}

/// `cargo test` on the whole workspace with the agent's libvirt backend, its stdout echoed and its
/// `test result:` lines added to the report. The console's unit tests (translations, forms) run on
/// the host: `app` compiles there too, only its browser calls would not work.
/// The bool says whether a failure is already counted as failing tests.
fn cargo_test(ctx: &Ctx, report: &mut Report, postgres_url: &str) -> Result<(Outcome, bool)> {
    let mut command = ctx.cargo();
    // The agent's libvirt backend is tested for real against libvirt's built-in test driver.
    command
        .args(["test", "--workspace", "--no-fail-fast", "--features", "agent/libvirt"])
        .env(postgres::URL_VARIABLE, postgres_url)
        .stdout(Stdio::piped());
    println!("xtask: $ {}", proc::describe(&command));
    let mut child = command.spawn().context("cannot start cargo test")?;
    let counts = Arc::new(Mutex::new((0u64, 0u64, 0u64))); // passed, failed, result lines
    let reader = {
        let counts = Arc::clone(&counts);
        let stdout = child.stdout.take().context("no stdout")?;
        proc::read_lines(stdout, move |line| {
            println!("{line}");
            if let Some((passed, failed)) = report::parse_cargo_test_result(&line)
                && let Ok(mut counts) = counts.lock()
            {
                counts.0 += passed;
                counts.1 += failed;
                counts.2 += 1;
            }
        })
    };
    let status = proc::wait(ctx, &mut child)?;
    let _ = reader.join();
    let (passed, failed, result_lines) = *counts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    report.passed += passed;
    report.failed += failed;
    println!("xtask: cargo test: {passed} passed, {failed} failed in {result_lines} test binaries");
    Ok(if status.success() {
        (Outcome::Passed, false)
    } else if failed > 0 {
        (Outcome::Failed(format!("{failed} tests failed")), true)
    } else {
        (Outcome::Failed(format!("cargo test failed without a failing test (build error?) ({status})")), false)
    })
}
