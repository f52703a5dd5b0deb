//! `parapet`: the management server binary (serve, demo).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use server::config::{Config, LogFormat, ServerArgs};
use server::{Server, demo, shutdown_signal};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "parapet", version, about = "Parapet: high-availability control plane for virtualization pools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the management server.
    Serve(ServerArgs),
    /// Run a server on a fresh data directory with a seeded pool of simulated hosts.
    Demo(DemoArgs),
    /// Compute a pool's failover plan from a JSON description (see docs/plan-format.md); prints JSON.
    Plan(PlanArgs),
    /// Run an HA scenario file on virtual time (see docs/ha-scenarios.md): prints the timeline and the
    /// verdict; exits non-zero when it fails.
    Scenario(ScenarioArgs),
}

#[derive(Args)]
struct ScenarioArgs {
    /// The scenario file (TOML).
    file: PathBuf,
}

#[derive(Args)]
struct PlanArgs {
    /// The pool description (JSON).
    file: PathBuf,
    /// Hosts that fail, in order, comma-separated: print where each VM goes.
    #[arg(long, value_delimiter = ',', value_name = "HOST,HOST")]
    fail: Option<Vec<String>>,
    /// A VM to start: print whether it is admitted and the capacity before and after.
    #[arg(long, value_name = "VM")]
    admit_start: Option<String>,
    /// The host to start it on [default: where placement puts it].
    #[arg(long, value_name = "HOST", requires = "admit_start")]
    on: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The simulator binary [default: parapet-sim next to this binary].
    #[arg(long, value_name = "FILE")]
    sim_bin: Option<PathBuf>,
    /// Number of clusters (1 to 26).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=26))]
    clusters: u8,
    /// Simulated hosts per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=64))]
    hosts_per_cluster: u8,
    /// Demo VMs to deploy and start.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(0..=2000))]
    vms: u16,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARAPET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn admin_password_from_env() -> Option<String> {
    std::env::var("PARAPET_ADMIN_PASSWORD").ok().filter(|password| !password.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("parapet: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo(args) => run_demo(args).await,
            Command::Plan(args) => plan(args),
            Command::Scenario(args) => scenario(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("parapet: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(args: &ServerArgs) -> anyhow::Result<Config> {
    let config = args.resolve()?;
    init_logging(config.log_format);
    Ok(config)
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = resolve(&args)?;
    let server = Server::prepare(&config, admin_password_from_env()).await?;
    if let Some(password) = &server.created_admin_password {
        println!("Created the first account. Sign in as: admin / {password}  (shown once; change it)");
    }
    println!("Parapet is listening on http://{}/", server.local_addr);
    server.serve(shutdown_signal()).await
}

/// Drains the simulator's stdout: one line per simulated BMC, handed on to be configured. Logged
/// without the password (and an unreadable line without its text, which may hold one).
async fn read_bmc_lines(stdout: tokio::process::ChildStdout, found: tokio::sync::mpsc::UnboundedSender<demo::DemoBmc>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match demo::DemoBmc::parse_line(&line) {
            Ok(Some(bmc)) => {
                tracing::info!(
                    host = %bmc.host,
                    driver = %bmc.driver,
                    address = %format!("{}://{}:{}", bmc.protocol, bmc.address, bmc.port),
                    "simulated BMC"
                );
                // The receiver is gone once the demo has configured what it expected: nothing to do.
                let _ = found.send(bmc);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "ignored a line of the simulator's output"),
        }
    }
}

/// The first `expected` BMC descriptions the simulator printed (it prints them all at start).
async fn collect_bmcs(
    found: &mut tokio::sync::mpsc::UnboundedReceiver<demo::DemoBmc>,
    expected: usize,
    deadline: Duration,
) -> anyhow::Result<Vec<demo::DemoBmc>> {
    let mut bmcs = Vec::with_capacity(expected);
    let collecting = async {
        while bmcs.len() < expected {
            match found.recv().await {
                Some(bmc) => bmcs.push(bmc),
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(deadline, collecting).await;
    anyhow::ensure!(
        bmcs.len() == expected,
        "the simulator described {} of its {expected} BMCs within {} s",
        bmcs.len(),
        deadline.as_secs()
    );
    Ok(bmcs)
}

async fn run_demo(mut args: DemoArgs) -> anyhow::Result<()> {
    // A fresh data directory: a temporary one unless the caller names one that holds no database yet.
    let temporary = match &args.server.data_dir {
        Some(dir) if dir.join("parapet.db").exists() => {
            anyhow::bail!("the demo needs a fresh data directory, and {} already holds a database", dir.display())
        }
        Some(_) => None,
        None => {
            let dir = tempfile::Builder::new().prefix("parapet-demo-").tempdir()?;
            args.server.data_dir = Some(dir.path().to_owned());
            Some(dir)
        }
    };
    let config = resolve(&args.server)?;
    let password = admin_password_from_env().unwrap_or_else(server::app::auth::random_password);
    let server = Server::prepare(&config, Some(password.clone())).await?;
    let state = server.state.clone();
    let address = server.local_addr;
    let pool = demo::seed(&state.db, usize::from(args.clusters), usize::from(args.hosts_per_cluster))
        .await
        .map_err(|error| anyhow::anyhow!("seeding the demo pool: {error}"))?;

    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = server_stopped.await;
    }));

    let sim_bin = match args.sim_bin {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("parapet-sim"),
    };
    let mut sim = tokio::process::Command::new(&sim_bin);
    sim.arg("--server").arg(format!("http://{address}")).env("PARAPET_JOIN_TOKEN", &pool.join_token).kill_on_drop(true);
    for host in &pool.hosts {
        sim.arg("--host").arg(format!("{}:{}:{}", host.name, host.cluster, host.storage_url));
    }
    // The simulator prints one JSON line per host on stdout saying how to reach its BMC, credentials
    // included: read them here so they never reach the terminal or a log.
    sim.stdout(std::process::Stdio::piped());
    let mut sim = sim.spawn().with_context(|| format!("cannot start the simulator {}", sim_bin.display()))?;
    let (found_bmc, mut bmc_found) = tokio::sync::mpsc::unbounded_channel();
    if let Some(stdout) = sim.stdout.take() {
        tokio::spawn(read_bmc_lines(stdout, found_bmc));
    }

    let ready = async {
        demo::wait_for_hosts(&state, pool.hosts.len(), Duration::from_secs(60)).await?;
        // Out-of-band management on for every host, so the pool shows live power states and a host
        // can be powered off through its BMC (the power-off test).
        let bmcs = collect_bmcs(&mut bmc_found, pool.hosts.len(), Duration::from_secs(30)).await?;
        let configured = demo::configure_oobm(&state, pool.zone_id, &bmcs).await?;
        demo::deploy_vms(&state, &pool, usize::from(args.vms), Duration::from_secs(120)).await?;
        anyhow::Ok(configured)
    };
    let bmcs_configured = tokio::select! {
        result = ready => result?,
        status = sim.wait() => anyhow::bail!("the simulator exited early: {:?}", status?),
    };

    println!();
    println!("Parapet demo is ready at http://{address}/");
    println!("  sign in as: admin / {password}");
    println!("  pool: {} hosts in {} clusters, {} running VMs", pool.hosts.len(), args.clusters, args.vms);
    println!(
        "  out-of-band management: {bmcs_configured} simulated Redfish BMCs configured and enabled (passwords stored encrypted)"
    );
    if let Some(dir) = &temporary {
        println!("  data directory (removed on exit): {}", dir.path().display());
    }
    println!("  Ctrl-C stops the demo.");

    tokio::select! {
        () = shutdown_signal() => {}
        status = sim.wait() => tracing::error!("the simulator exited: {:?}", status),
    }
    let _ = sim.start_kill();
    let _ = sim.wait().await;
    let _ = stop_server.send(());
    serving.await??;
    drop(temporary);
    Ok(())
}

fn scenario(args: ScenarioArgs) -> anyhow::Result<()> {
    let outcome = server::ha::scenario::run_file(&args.file)?;
    let _ = write!(std::io::stdout().lock(), "{}", outcome.render());
    anyhow::ensure!(outcome.passed(), "scenario {} failed", args.file.display());
    Ok(())
}

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let pool: api::v1::PlanPool = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid pool description", args.file.display()))?;
    let request = api::v1::PlanSimulateRequest { pool, fail: args.fail, admit_start: args.admit_start, on: args.on };
    let response = server::ha::plan::simulate_request(&request, server::ha::plan::DEFAULT_SEARCH_BUDGET)?;
    let text = serde_json::to_string_pretty(&response)?;
    // A reader that stops early (`| head`) is not an error.
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
