//! `parapet-sim`: runs simulated hosts against a management server. Reads fault commands on standard
//! input, one per line: `off NAME` (power loss), `on NAME` (boot), `crash NAME VM_ID`, `list`.

use clap::Parser;
use sim::{SimHostSpec, SimPool};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(name = "parapet-sim", version, about = "Simulated Parapet hosts")]
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
    let pool = SimPool::start(&args.server, &args.token, specs);
    eprintln!("parapet-sim: {} simulated hosts powered on", pool.hosts.len());

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line() => match line {
                Ok(Some(line)) => command(&pool, line.trim()),
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

fn command(pool: &SimPool, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["off", name] | ["on", name] => match pool.host(name) {
            Some(host) if words[0] == "off" => {
                host.power_off();
                eprintln!("parapet-sim: {name} powered off");
            }
            Some(host) => {
                host.power_on();
                eprintln!("parapet-sim: {name} powered on");
            }
            None => eprintln!("parapet-sim: no host named {name}"),
        },
        ["crash", name, vm] => match (pool.host(name), vm.parse()) {
            (Some(host), Ok(vm)) if host.hypervisor.crash(vm) => eprintln!("parapet-sim: VM {vm} crashed on {name}"),
            _ => eprintln!("parapet-sim: no VM {vm} on host {name}"),
        },
        ["list"] => {
            for host in &pool.hosts {
                let power = if host.is_powered_on() { "on" } else { "off" };
                eprintln!("{} {} {}", host.spec.name, host.spec.cluster, power);
            }
        }
        [] => {}
        _ => eprintln!("parapet-sim: unknown command {line:?} (off NAME | on NAME | crash NAME VM_ID | list)"),
    }
}
