//! "Ensure tools": install what a fresh machine lacks, skip what is present at the right version.
//!
//! The versions, and why: trunk 0.21.14 (0.22 needs a newer rustc); wasm-bindgen-cli equal to
//! Cargo.lock's wasm-bindgen (installed without `--locked`); wasm-opt from npm `binaryen@132.0.0`
//! (Debian's binaryen breaks the module); wasm-split-cli from crates.io `wasm_split_cli_support` 0.2.4
//! (splits the console per route group; see console.rs); Debian's chromium (Playwright
//! must never download a browser). Network-bound installs (apt, npm) and the
//! smaller cargo install run in the background while trunk compiles in the foreground: on 2 cores
//! trunk's single-threaded LTO tail leaves a core free.

use crate::proc::{self, Background};
use crate::{Ctx, report};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Instant;

pub const TRUNK_VERSION: &str = "0.21.14";
/// The console's splitter (`cargo xtask console-wasm`): crates.io `wasm_split_cli_support`, whose
/// bin `wasm-split-cli` needs the `build-binary` feature. It matches leptos 0.8's `wasm_split_helpers`.
const WASM_SPLIT_CRATE: &str = "wasm_split_cli_support";
const WASM_SPLIT_VERSION: &str = "0.2.4";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// What `wasm-opt --version` prints for npm's binaryen 132 (found first on PATH: node_modules/.bin).
const WASM_OPT_VERSION: &str = "wasm-opt version 132 (version_132)";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Written into node_modules after a successful `npm ci`: a hash of package.json + package-lock.json.
const NPM_STAMP: &str = ".xtask-lock-hash";

/// What the caller needs beyond the console build (which every command needs).
pub struct Needs {
    /// Debian's chromium, for the Playwright tests.
    pub chromium: bool,
    /// Debian's postgresql package (only when no PostgreSQL server answers and none is installed).
    pub postgres_package: bool,
    /// libvirt's C library and headers, for the agent's libvirt backend and its tests.
    pub libvirt: bool,
    /// The real peers the tests talk to: OpenIPMI's `ipmi_sim` and `ipmitool` (Debian), and the PyPI
    /// packages pinned in requirements-test.txt (sushy-tools' Redfish emulator).
    pub test_peers: bool,
}

/// Debian packages of the tests' real peers, each with the program that shows it is there.
const PEER_PACKAGES: [(&str, &str); 2] = [("openipmi", "/usr/bin/ipmi_sim"), ("ipmitool", "/usr/bin/ipmitool")];
/// A file of Debian's `fonts-nanum` (Hangul), for the console's Korean in Chromium.
const KOREAN_FONT: &str = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf";
/// PyPI packages of the tests' real peers, pinned.
const PYTHON_REQUIREMENTS: &str = "requirements-test.txt";

pub fn ensure(ctx: &Ctx, needs: &Needs) -> Result<()> {
    let started = Instant::now();

    let mut apt_packages = Vec::new();
    if needs.chromium {
        match proc::probe(ctx.command(CHROMIUM).arg("--version")) {
            Some(version) => println!("xtask: chromium: present ({version})"),
            None => apt_packages.push("chromium"),
        }
        // The console speaks Korean too: without a Hangul font Chromium draws empty boxes (the
        // Korean end-to-end screenshots would show nothing readable).
        if std::path::Path::new(KOREAN_FONT).exists() {
            println!("xtask: fonts-nanum: present ({KOREAN_FONT})");
        } else {
            apt_packages.push("fonts-nanum");
        }
    }
    if needs.postgres_package {
        apt_packages.push("postgresql");
    }
    if needs.libvirt {
        match proc::probe(ctx.command("pkg-config").args(["--modversion", "libvirt"])) {
            Some(version) => println!("xtask: libvirt-dev: present ({version})"),
            None => apt_packages.extend(["libvirt-dev", "pkg-config"]),
        }
    }
    if needs.test_peers {
        for (package, program) in PEER_PACKAGES {
            if std::path::Path::new(program).exists() {
                println!("xtask: {package}: present ({program})");
            } else {
                apt_packages.push(package);
            }
        }
    }
    let apt_job = if apt_packages.is_empty() { None } else { Some(apt_install(ctx, &apt_packages)?) };
    let npm_job = npm_packages(ctx)?;
    let pip_job = if needs.test_peers { Some(python_packages(ctx)?) } else { None };

    wasm_target(ctx)?;
    cargo_fetch(ctx)?;
    let wasm_bindgen_job = wasm_bindgen_cli(ctx)?;
    let wasm_split_job = wasm_split_cli(ctx)?;
    trunk(ctx)?;

    for job in [wasm_bindgen_job, wasm_split_job, apt_job, pip_job].into_iter().flatten() {
        job.join(ctx)?;
    }
    if let Some((job, stamp)) = npm_job {
        job.join(ctx)?;
        let stamp_path = ctx.root.join("node_modules").join(NPM_STAMP);
        std::fs::write(&stamp_path, stamp).with_context(|| format!("cannot write {}", stamp_path.display()))?;
    }
    // Re-check what was installed, so that a wrong binary earlier on PATH is an error here, not a
    // puzzling failure later.
    if let Some(version) = wanted_wasm_bindgen(ctx)? {
        check_version(ctx, "wasm-bindgen", &format!("wasm-bindgen {version}"))?;
    }
    check_version(ctx, "trunk", &format!("trunk {TRUNK_VERSION}"))?;
    if !wasm_split_installed(ctx) {
        bail!("cargo install --list does not show {WASM_SPLIT_CRATE} v{WASM_SPLIT_VERSION} after installing it");
    }
    check_version(ctx, "wasm-opt", WASM_OPT_VERSION)?;
    if needs.chromium && proc::probe(ctx.command(CHROMIUM).arg("--version")).is_none() {
        bail!("{CHROMIUM} --version still fails after installing chromium");
    }
    if needs.test_peers {
        for (package, program) in PEER_PACKAGES {
            if !std::path::Path::new(program).exists() {
                bail!("{program} is still missing after installing {package}");
            }
        }
    }
    if needs.libvirt && proc::probe(ctx.command("pkg-config").args(["--modversion", "libvirt"])).is_none() {
        bail!("pkg-config still finds no libvirt after installing libvirt-dev");
    }
    println!("xtask: tools ready ({})", report::seconds(started.elapsed()));
    Ok(())
}

fn check_version(ctx: &Ctx, program: &str, expected: &str) -> Result<()> {
    let found = proc::probe(ctx.command(program).arg("--version"));
    if found.as_deref() != Some(expected) {
        bail!(
            "`{program} --version` says {found:?}, expected `{expected}`: is another \
             {program} earlier on PATH?"
        );
    }
    Ok(())
}

fn wasm_target(ctx: &Ctx) -> Result<()> {
    let installed = proc::probe(ctx.command("rustup").args(["target", "list", "--installed"]))
        .context("`rustup target list --installed` failed")?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        println!("xtask: rust target {WASM_TARGET}: present");
        return Ok(());
    }
    println!("xtask: rust target {WASM_TARGET}: installing");
    proc::run_ok(ctx, ctx.command("rustup").args(["target", "add", WASM_TARGET]))
}

/// Trunk runs cargo `--offline` (Trunk.toml), so every crate must be downloaded beforehand.
fn cargo_fetch(ctx: &Ctx) -> Result<()> {
    let mut command = ctx.cargo();
    command.arg("fetch");
    if ctx.root.join("Cargo.lock").exists() {
        command.arg("--locked");
    }
    command.arg("--quiet");
    proc::run_ok(ctx, &mut command)
}

fn trunk(ctx: &Ctx) -> Result<()> {
    let expected = format!("trunk {TRUNK_VERSION}");
    let found = proc::probe(ctx.command("trunk").arg("--version"));
    if found.as_deref() == Some(expected.as_str()) {
        println!("xtask: trunk: present ({expected})");
        return Ok(());
    }
    println!(
        "xtask: trunk: {} -> installing {TRUNK_VERSION} from crates.io (takes ~15 min on 2 cores, once)",
        found.as_deref().unwrap_or("missing")
    );
    let started = Instant::now();
    proc::run_ok(ctx, ctx.cargo().args(["install", "--locked", "trunk", "--version", TRUNK_VERSION]))?;
    println!("xtask: trunk installed in {}", report::seconds(started.elapsed()));
    Ok(())
}

/// The `wasm-bindgen` version Cargo.lock pins (None when the console does not depend on it yet).
fn wanted_wasm_bindgen(ctx: &Ctx) -> Result<Option<String>> {
    let lock_path = ctx.root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("cannot read {} (run a cargo command first)", lock_path.display()))?;
    Ok(locked_version(&lock, "wasm-bindgen"))
}

/// wasm-bindgen-cli must equal the library in Cargo.lock exactly. Installed WITHOUT `--locked`: its own
/// lock pins a crate version that the registry here lacks.
fn wasm_bindgen_cli(ctx: &Ctx) -> Result<Option<Background>> {
    let Some(version) = wanted_wasm_bindgen(ctx)? else {
        println!("xtask: wasm-bindgen-cli: Cargo.lock has no wasm-bindgen yet; nothing to match");
        return Ok(None);
    };
    let expected = format!("wasm-bindgen {version}");
    let found = proc::probe(ctx.command("wasm-bindgen").arg("--version"));
    if found.as_deref() == Some(expected.as_str()) {
        println!("xtask: wasm-bindgen-cli: present ({expected})");
        return Ok(None);
    }
    println!("xtask: wasm-bindgen-cli: {} -> installing {version} (~2.5 min)", found.as_deref().unwrap_or("missing"));
    let mut command = ctx.cargo();
    command.args(["install", "wasm-bindgen-cli", "--version", &version]);
    Ok(Some(Background::spawn(ctx, "wasm-bindgen-cli", command)?))
}

/// Whether `cargo install --list` shows the splitter at our version, with its `wasm-split-cli` bin.
fn wasm_split_installed(ctx: &Ctx) -> bool {
    let Some(list) = proc::probe(ctx.cargo().args(["install", "--list"])) else { return false };
    installed_bin(&list, WASM_SPLIT_CRATE, WASM_SPLIT_VERSION, "wasm-split-cli")
        && proc::probe(ctx.command("wasm-split-cli").arg("--help")).is_some()
}

/// The splitter, installed from its own lock file (it builds on rustc 1.95 as published).
fn wasm_split_cli(ctx: &Ctx) -> Result<Option<Background>> {
    if wasm_split_installed(ctx) {
        println!("xtask: wasm-split-cli: present ({WASM_SPLIT_CRATE} {WASM_SPLIT_VERSION})");
        return Ok(None);
    }
    println!("xtask: wasm-split-cli: installing {WASM_SPLIT_CRATE} {WASM_SPLIT_VERSION} (~3 min)");
    let mut command = ctx.cargo();
    command.args([
        "install",
        "--locked",
        WASM_SPLIT_CRATE,
        "--version",
        WASM_SPLIT_VERSION,
        "--features",
        "build-binary",
    ]);
    Ok(Some(Background::spawn(ctx, "wasm-split-cli", command)?))
}

/// Whether a `cargo install --list` output has `krate vVERSION:` with `bin` listed under it.
fn installed_bin(list: &str, krate: &str, version: &str, bin: &str) -> bool {
    let heading = format!("{krate} v{version}:");
    let mut lines = list.lines().skip_while(|line| line.trim() != heading);
    lines.next().is_some()
        && lines.take_while(|line| line.starts_with(char::is_whitespace)).any(|line| line.trim() == bin)
}

/// `pip install -r requirements-test.txt`: quick and offline when every pin is already satisfied.
fn python_packages(ctx: &Ctx) -> Result<Background> {
    if proc::probe(ctx.command("python3").args(["-m", "pip", "--version"])).is_none() {
        bail!("python3 with pip is missing (Debian: apt-get install -y python3-pip)");
    }
    let mut command = ctx.command("python3");
    command
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-r"])
        .arg(ctx.root.join(PYTHON_REQUIREMENTS));
    Background::spawn(ctx, "pip", command)
}

/// `npm ci` at the root unless node_modules already matches package.json + package-lock.json.
/// Returns the running job and the stamp to write once it succeeded.
fn npm_packages(ctx: &Ctx) -> Result<Option<(Background, String)>> {
    let package_json = ctx.root.join("package.json");
    let lock = ctx.root.join("package-lock.json");
    let mut hash = FNV_OFFSET;
    for path in [&package_json, &lock] {
        if let Ok(bytes) = std::fs::read(path) {
            hash = fnv1a(&bytes, hash);
        }
    }
    let stamp = format!("{hash:016x}\n");
    let node_modules = ctx.root.join("node_modules");
    let present = std::fs::read_to_string(node_modules.join(NPM_STAMP)).ok().as_deref() == Some(stamp.as_str())
        && ["wasm-opt", "playwright"].iter().all(|bin| node_modules.join(".bin").join(bin).exists());
    if present {
        println!("xtask: npm packages: present (node_modules matches package-lock.json)");
        return Ok(None);
    }
    if proc::probe(ctx.command("npm").arg("--version")).is_none() {
        bail!("npm is missing: install Node.js (Debian: apt-get install -y nodejs npm)");
    }
    let _ = std::fs::remove_file(node_modules.join(NPM_STAMP));
    let mut command = ctx.command("npm");
    if lock.exists() {
        command.arg("ci");
    } else {
        command.arg("install");
    }
    command.args(["--no-audit", "--no-fund"]);
    println!("xtask: npm packages: installing (binaryen for wasm-opt, @playwright/test)");
    Ok(Some((Background::spawn(ctx, "npm", command)?, stamp)))
}

fn apt_install(ctx: &Ctx, packages: &[&str]) -> Result<Background> {
    let list = packages.join(" ");
    if !proc::is_root() {
        bail!("Debian packages missing: {list}. Run as root: apt-get update && apt-get install -y {list}");
    }
    println!("xtask: Debian packages missing: {list} -> apt-get update + install");
    let mut command = ctx.command("sh");
    command
        .args(["-c", "apt-get update && apt-get install -y \"$@\"", "sh"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    Background::spawn(ctx, "apt", command)
}

/// The newest `/usr/lib/postgresql/<major>/bin`, if Debian's postgresql is installed.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let Ok(major) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("initdb").exists() && best.as_ref().is_none_or(|(seen, _)| major > *seen) {
            best = Some((major, bin));
        }
    }
    best.map(|(_, bin)| bin)
}

/// The `version` of package `name` in a Cargo.lock.
pub fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: a stable hash (unlike std's) to remember which lock file node_modules was installed from.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_version_reads_the_package_right_after_its_name() {
        let lock = "\
[[package]]
name = \"wasm-bindgen-macro\"
version = \"0.2.99\"

[[package]]
name = \"wasm-bindgen\"
version = \"0.2.130\"
source = \"registry+https://github.com/rust-lang/crates.io-index\"
";
        assert_eq!(locked_version(lock, "wasm-bindgen").as_deref(), Some("0.2.130"));
        assert_eq!(locked_version(lock, "leptos"), None);
    }

    #[test]
    fn installed_bin_needs_the_version_and_the_bin() {
        let list = "\
trunk v0.21.14:
    trunk
wasm_split_cli_support v0.2.4:
    wasm-split-cli
";
        assert!(installed_bin(list, "wasm_split_cli_support", "0.2.4", "wasm-split-cli"));
        assert!(!installed_bin(list, "wasm_split_cli_support", "0.2.3", "wasm-split-cli"));
        assert!(!installed_bin(list, "trunk", "0.21.14", "wasm-split-cli"));
        assert!(!installed_bin(
            "wasm_split_cli_support v0.2.4:\n",
            "wasm_split_cli_support",
            "0.2.4",
            "wasm-split-cli"
        ));
    }

    #[test]
    fn fnv1a_is_stable() {
        assert_eq!(fnv1a(b"", FNV_OFFSET), FNV_OFFSET);
        assert_eq!(fnv1a(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c);
    }
}
