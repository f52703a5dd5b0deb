//! The console's wasm, split per route group: `cargo xtask console-wasm`.
//!
//! Trunk 0.21 cannot split a wasm module (trunk-rs/trunk#1022), so the Rust half of the console build
//! happens here and Trunk keeps the HTML and CSS (index.html copies our output folder to `dist/pkg/`).
//! Trunk runs this as its `pre_build` hook (Trunk.toml), so `trunk build --release` still builds all.
//!
//! 1. `cargo build` of the `app` bin for wasm32 (profile `wasm-release`; `.cargo/config.toml` adds
//!    `--emit-relocs`, which the splitter reads);
//! 2. `wasm-split-cli` (crates.io `wasm_split_cli_support`): the main module, one module per route
//!    group (`app/src/routes.rs`), chunks of code groups share, and the `__wasm_split.js` loader;
//! 3. `wasm-bindgen --target web` on the main module only (`app.js` + `app_bg.wasm`);
//! 4. `wasm-opt -Oz` on every module.
//!
//! The result goes to `target/console-pkg/` (emptied first). The figures printed at the end are what
//! `docs/console-size.md` records: the main module is what a first visit must download before
//! anything shows.

use crate::{Ctx, proc, report};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the finished files go (index.html: `<link data-trunk rel="copy-dir" href="target/console-pkg">`).
pub const OUT_DIR: &str = "target/console-pkg";
/// The wasm features rustc 1.95 emits for wasm32-unknown-unknown by default; wasm-opt must accept
/// them or it refuses the module.
const WASM_FEATURES: [&str; 5] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-sign-ext",
    "--enable-mutable-globals",
];

pub fn build(ctx: &Ctx) -> Result<()> {
    let started = Instant::now();
    let target_dir = ctx.root.join("target");
    let linked = target_dir.join("wasm32-unknown-unknown").join("wasm-release").join("app.wasm");
    proc::run_ok(
        ctx,
        ctx.cargo().args([
            "build",
            "--package",
            "app",
            "--bin",
            "app",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ]),
    )?;

    let split_dir = target_dir.join("console-split");
    let out_dir = ctx.root.join(OUT_DIR);
    for dir in [&split_dir, &out_dir] {
        empty_dir(dir)?;
    }
    proc::run_ok(
        ctx,
        ctx.command("wasm-split-cli")
            .arg(&linked)
            .arg(&split_dir)
            .args(["--target", "web", "--out-name", "app"])
            // The splitter logs through `tracing`; only its warnings are worth a line here.
            .env("RUST_LOG", "warn"),
    )?;

    // The main module: wasm-bindgen writes app.js (the glue `__wasm_split.js` imports) and app_bg.wasm.
    // `--keep-lld-exports`: the split modules import the main module's functions through lld's exports.
    proc::run_ok(
        ctx,
        ctx.command("wasm-bindgen").arg(split_dir.join("app.wasm")).arg("--out-dir").arg(&out_dir).args([
            "--out-name",
            "app",
            "--target",
            "web",
            "--no-typescript",
            "--keep-lld-exports",
        ]),
    )?;

    let mut modules = Vec::new();
    for entry in std::fs::read_dir(&split_dir).with_context(|| format!("cannot read {}", split_dir.display()))? {
        let path = entry?.path();
        let name = file_name(&path)?;
        if name == "app.wasm" {
            continue; // replaced by wasm-bindgen's app_bg.wasm
        }
        let destination = out_dir.join(&name);
        std::fs::copy(&path, &destination)
            .with_context(|| format!("cannot copy {} to {}", path.display(), destination.display()))?;
        if name.ends_with(".wasm") {
            modules.push(destination);
        }
    }
    modules.push(out_dir.join("app_bg.wasm"));
    for module in &modules {
        let mut command = ctx.command("wasm-opt");
        command.arg("-Oz").args(WASM_FEATURES).arg(module).arg("-o").arg(module);
        proc::run_ok(ctx, &mut command)?;
    }

    let sizes = Sizes::measure(&out_dir)?;
    println!(
        "xtask: console wasm in {}: main module {} gzip ({} raw); {} more modules {} gzip; JS {} gzip ({})",
        out_dir.strip_prefix(&ctx.root).unwrap_or(&out_dir).display(),
        kilobytes(sizes.main_gzip),
        kilobytes(sizes.main_raw),
        sizes.other_count,
        kilobytes(sizes.other_gzip),
        kilobytes(sizes.js_gzip),
        report::seconds(started.elapsed()),
    );
    Ok(())
}

fn empty_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn file_name(path: &Path) -> Result<String> {
    match path.file_name().and_then(|name| name.to_str()) {
        Some(name) => Ok(name.to_owned()),
        None => bail!("unexpected file name {}", path.display()),
    }
}

fn kilobytes(bytes: u64) -> String {
    format!("{} KB", bytes.div_ceil(1000))
}

/// What the browser downloads, gzip-compressed as the server sends it.
struct Sizes {
    main_raw: u64,
    main_gzip: u64,
    other_count: usize,
    other_gzip: u64,
    js_gzip: u64,
}

impl Sizes {
    fn measure(dir: &Path) -> Result<Sizes> {
        let mut sizes = Sizes { main_raw: 0, main_gzip: 0, other_count: 0, other_gzip: 0, js_gzip: 0 };
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
        paths.sort();
        for path in paths {
            let name = file_name(&path)?;
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let gzip = gzip_size(&bytes)?;
            if name == "app_bg.wasm" {
                sizes.main_raw = bytes.len() as u64;
                sizes.main_gzip = gzip;
            } else if name.ends_with(".wasm") {
                sizes.other_count += 1;
                sizes.other_gzip += gzip;
            } else if name.ends_with(".js") {
                sizes.js_gzip += gzip;
            }
        }
        Ok(sizes)
    }
}

/// `gzip -9 | wc -c` (xtask has no compression crate: it must compile in seconds on a fresh machine).
fn gzip_size(bytes: &[u8]) -> Result<u64> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run gzip")?;
    let mut stdin = child.stdin.take().context("gzip has no stdin")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().context("gzip failed")?;
    writer.join().map_err(|_| anyhow::anyhow!("gzip writer panicked"))??;
    if !output.status.success() {
        bail!("gzip failed ({})", output.status);
    }
    Ok(output.stdout.len() as u64)
}
