//! `parapet-sim`: runs simulated hosts against a management server, each with a Redfish BMC on its own
//! port of 127.0.0.1. On start it prints one JSON line per host on standard output (a [`sim::BmcInfo`]:
//! how to reach that host's BMC, with its credentials) and nothing else there; everything for humans
//! goes to standard error. Reads fault commands on standard input, one per line (see
//! [`sim::commands::USAGE`]): `off NAME` (power loss), `on NAME` (boot), `crash NAME VM_ID`, `list`,
//! `bmc-down NAME`, `bmc-hang NAME`, `bmc-up NAME`, `bmc-password NAME PASSWORD`, and the network and
//! storage faults `net-cut`/`net-heal NAME`, `split A,B|C`, `unsplit`, `storage-cut`/`storage-heal NAME`,
//! `agent-crash`/`agent-start NAME`, `blip NAME SECONDS`.

use clap::Parser;
use sim::{BmcSettings, SimHostSpec, SimPool, commands};
use std::io::Write;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(name = "parapet-sim", version, about = "Simulated Parapet hosts with Redfish BMCs")]
struct Args {
    /// Management server URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "PARAPET_SERVER")]
    server: String,
    /// The zone's join token.
    #[arg(long, env = "PARAPET_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// A host as NAME:CLUSTER:STORAGE_URL (repeatable).
    #[arg(long = "host", value_name = "NAME:CLUSTER:STORAGE_URL", required = true)]
    hosts: Vec<String>,
    /// The user name of every BMC's account.
    #[arg(long, env = "PARAPET_SIM_BMC_USERNAME", default_value = "admin")]
    bmc_username: String,
    /// One password for every BMC [default: a random one per BMC, printed with its port].
    #[arg(long, env = "PARAPET_SIM_BMC_PASSWORD", hide_env_values = true)]
    bmc_password: Option<String>,
}

fn parse_host(text: &str, index: usize) -> anyhow::Result<SimHostSpec> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(cluster), Some(storage))
            if !name.is_empty() && !cluster.is_empty() && !storage.is_empty() =>
        {
            Ok(SimHostSpec::standard(name, cluster, storage, index))
        }
        _ => anyhow::bail!("--host {text:?}: expected NAME:CLUSTER:STORAGE_URL"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PARAPET_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let specs =
        args.hosts.iter().enumerate().map(|(index, text)| parse_host(text, index)).collect::<Result<Vec<_>, _>>()?;
    if args.bmc_username.is_empty() || args.bmc_username.contains(':') {
        anyhow::bail!("--bmc-username (PARAPET_SIM_BMC_USERNAME) must be non-empty and without ':'");
    }
    if let Some(password) = &args.bmc_password {
        sim::bmc::validate_password(password)
            .map_err(|reason| anyhow::anyhow!("--bmc-password (PARAPET_SIM_BMC_PASSWORD) {reason}"))?;
    }
    let settings = BmcSettings { username: args.bmc_username, password: args.bmc_password, ..BmcSettings::default() };
    let pool = SimPool::start_with_bmcs(&args.server, &args.token, specs, &settings)
        .map_err(|error| anyhow::anyhow!("cannot start the simulated BMCs: {error}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        for bmc in &pool.bmcs {
            writeln!(stdout, "{}", serde_json::to_string(&bmc.info())?)?;
        }
        stdout.flush()?;
    }
    eprintln!("parapet-sim: {} simulated hosts powered on, each with a Redfish BMC", pool.hosts.len());

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let answer = match commands::parse(&line) {
                        Ok(command) => commands::execute(&pool, command).await,
                        Err(error) => error,
                    };
                    if !answer.is_empty() {
                        eprintln!("{}", answer.lines().map(|line| format!("parapet-sim: {line}")).collect::<Vec<_>>().join("\n"));
                    }
                }
                // Standard input closed (e.g. started without one): keep running until a signal.
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    break;
                }
            },
        }
    }
    pool.shutdown().await;
    Ok(())
}
