//! Running child processes: echo what runs, wait while watching for Ctrl-C, signal by PID or group.
//!
//! Signals go through `sh -c 'kill ...'` because the workspace forbids `unsafe` (no direct libc::kill)
//! and a POSIX shell is on every machine.

use crate::Ctx;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `program arg arg`, for the log.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            text.push_str(&format!(" '{arg}'"));
        } else {
            text.push(' ');
            text.push_str(&arg);
        }
    }
    text
}

/// Runs `command` with inherited stdio, echoing it first. Returns its exit status; an error only when
/// it cannot start or we were interrupted (then the child is stopped too).
pub fn run(ctx: &Ctx, command: &mut Command) -> Result<ExitStatus> {
    println!("xtask: $ {}", describe(command));
    let mut child = command.spawn().with_context(|| format!("cannot start `{}`", describe(command)))?;
    wait(ctx, &mut child)
}

/// Like [`run`], but a non-zero exit is an error.
pub fn run_ok(ctx: &Ctx, command: &mut Command) -> Result<()> {
    let status = run(ctx, command)?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Waits for `child`, polling so that a SIGTERM sent to xtask alone (not to its process group, as a
/// terminal's Ctrl-C is) still stops the child.
pub fn wait(ctx: &Ctx, child: &mut Child) -> Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for a child process")? {
            return Ok(status);
        }
        if ctx.interrupted() {
            signal(&child.id().to_string(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    bail!("interrupted");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The trimmed stdout of a quick probe such as `trunk --version`; None if it cannot run or fails.
pub fn probe(command: &mut Command) -> Option<String> {
    let output = command.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Sends SIG`name` to `target`: a PID, or `-PGID` for a whole process group. Errors (such as "no such
/// process" when it already ended) are ignored: this is cleanup.
pub fn signal(target: &str, name: &str) {
    let _ = Command::new("sh")
        .args(["-c", "kill -s \"$1\" -- \"$2\" 2>/dev/null", "sh", name, target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `limit` for `child` to end; true if it did.
pub fn wait_until_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A command started in the background with its output going to a log file, joined later.
pub struct Background {
    pub name: String,
    child: Child,
    log: std::path::PathBuf,
    started: Instant,
}

impl Background {
    pub fn spawn(ctx: &Ctx, name: &str, mut command: Command) -> Result<Background> {
        let log = ctx.log_dir()?.join(format!("{name}.log"));
        let file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let file_for_stderr = file.try_clone().context("cannot duplicate a log file handle")?;
        println!("xtask: [{name}] in the background: {} (log: {})", describe(&command), log.display());
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file_for_stderr)
            .spawn()
            .with_context(|| format!("cannot start `{}`", describe(&command)))?;
        Ok(Background { name: name.to_owned(), child, log, started: Instant::now() })
    }

    /// Waits for the job; on failure prints the end of its log and returns an error.
    pub fn join(mut self, ctx: &Ctx) -> Result<()> {
        let status = wait(ctx, &mut self.child)?;
        let took = crate::report::seconds(self.started.elapsed());
        if status.success() {
            println!("xtask: [{}] done in {took}", self.name);
            return Ok(());
        }
        eprintln!("xtask: [{}] FAILED after {took} ({status}); end of {}:", self.name, self.log.display());
        print_tail(&self.log, 60);
        bail!("{} failed (log: {})", self.name, self.log.display());
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Only reached without join() when another step failed first: do not leave it running.
        if self.child.try_wait().ok().flatten().is_none() {
            signal(&self.child.id().to_string(), "TERM");
            if !wait_until_exit(&mut self.child, Duration::from_secs(5)) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Prints the last `lines` lines of a text file to stderr.
pub fn print_tail(path: &Path, lines: usize) {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    if start > 0 {
        eprintln!("    ... ({start} earlier lines in {})", path.display());
    }
    for line in &all[start..] {
        eprintln!("    | {line}");
    }
}

/// Reads `reader` line by line on a thread, handing each line to `each` (lossy UTF-8).
pub fn read_lines<R, F>(reader: R, mut each: F) -> std::thread::JoinHandle<()>
where
    R: Read + Send + 'static,
    F: FnMut(String) + Send + 'static,
{
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer);
                    each(line.trim_end_matches(['\n', '\r']).to_owned());
                }
            }
        }
    })
}

/// A fresh, empty directory under the system temp dir.
pub fn fresh_temp_dir(prefix: &str) -> Result<std::path::PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// `bytes` random bytes as hex, from the kernel.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut buffer)).context("cannot read /dev/urandom")?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A free TCP port on 127.0.0.1 (the OS picks; the tiny race with another process is acceptable).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("no local address")?.port())
}

pub fn is_root() -> bool {
    // /proc/self is owned by our effective uid; no libc (and no unsafe) needed.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|meta| meta.uid() == 0).unwrap_or(false)
}
