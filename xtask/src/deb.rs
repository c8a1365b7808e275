//! `cargo xtask deb [--check]`: the Debian package of the server, built by cargo-deb
//! (pinned, installed once under `target/tools`) from `crates/app`'s
//! `[package.metadata.deb]`. With `--check`, proof that it installs and runs here:
//! `dpkg -i`, its files where Debian expects them, the installed binary migrating a
//! database and serving `/readyz`, then `dpkg --purge`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::probe::{free_port, wait_ready};
use crate::{Result, root, run};

const CARGO_DEB: &str = "3.8.0";

/// What the package installs, besides the binary.
const INSTALLED: [&str; 4] = [
    "/usr/bin/consultpay",
    "/etc/consultpay/consultpay.env",
    "/usr/share/doc/consultpay/README.md",
    "/usr/share/doc/consultpay/DEPLOYMENT.md",
];

pub fn deb(check: bool) -> Result {
    let deb = build()?;
    if check {
        install_and_run(&deb)?;
    }
    Ok(())
}

/// `target/tools/bin/cargo-deb` at [`CARGO_DEB`], installed if missing.
fn cargo_deb() -> Result<PathBuf> {
    let tools = root().join("target/tools");
    let bin = tools.join("bin/cargo-deb");
    let current = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !current.contains(CARGO_DEB) {
        let root_dir = tools.to_str().ok_or("the workspace path is not UTF-8")?;
        run(
            "cargo",
            &[
                "install",
                "cargo-deb",
                "--version",
                CARGO_DEB,
                "--locked",
                "--root",
                root_dir,
            ],
        )?;
    }
    Ok(bin)
}

/// Builds the release binary and its package; returns the `.deb`'s path.
fn build() -> Result<PathBuf> {
    let cargo_deb = cargo_deb()?;
    let out_dir = root().join("target/debian");
    eprintln!("$ cargo deb -p consultpay");
    let out = Command::new(&cargo_deb)
        .args(["deb", "-p", "consultpay", "--output"])
        .arg(&out_dir)
        .current_dir(root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo-deb: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo deb failed ({})", out.status));
    }
    // cargo-deb prints the package's path last.
    let printed = String::from_utf8_lossy(&out.stdout);
    let deb = printed
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .ok_or("cargo deb did not say where the package is")?;
    eprintln!("built {}", deb.display());
    Ok(deb)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| "a path is not UTF-8".to_owned())
}

fn install_and_run(deb: &Path) -> Result {
    run("dpkg", &["-i", path_str(deb)?])?;
    let outcome = check_installed();
    // Leave the machine as it was, whatever happened.
    let purged = run("dpkg", &["--purge", "consultpay"]);
    outcome.and(purged)
}

fn check_installed() -> Result {
    let unit = ["/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .map(|d| Path::new(d).join("consultpay.service"))
        .find(|p| p.exists())
        .ok_or("the systemd unit is not installed")?;
    for file in INSTALLED {
        if !Path::new(file).exists() {
            return Err(format!("{file} is not installed"));
        }
    }
    let unit_text = std::fs::read_to_string(&unit).map_err(|e| e.to_string())?;
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=consultpay",
    ] {
        if !unit_text.contains(hardening) {
            return Err(format!("{} lacks {hardening}", unit.display()));
        }
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        run("systemd-analyze", &["verify", path_str(&unit)?])?;
    }
    eprintln!("installed: {} and {}", INSTALLED.join(", "), unit.display());

    // The installed binary, as the unit runs it: migrate, then serve until /readyz.
    let dir = root().join("target/debian/check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let database = format!("sqlite://{}/consultpay.db?mode=rwc", path_str(&dir)?);
    let port = free_port()?;
    let installed = |args: &[&str]| {
        let mut c = Command::new("/usr/bin/consultpay");
        c.args(args)
            .env_clear()
            .env("DATABASE_URL", &database)
            .env("CONSULTPAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONSULTPAY_ADMIN_LISTEN", "off")
            .env("CONSULTPAY_DEMO", "false")
            .current_dir(&dir);
        c
    };
    let status = installed(&["migrate"])
        .status()
        .map_err(|e| format!("cannot run the installed binary: {e}"))?;
    if !status.success() {
        return Err(format!("consultpay migrate failed ({status})"));
    }
    let server = installed(&["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the installed server: {e}"))?;
    let ready = ready(port, server);
    eprintln!("the installed consultpay migrated and served /readyz: {ready:?}");
    ready
}

/// Waits (at most 30 s) for `GET /readyz` to answer 200, then stops the server.
fn ready(port: u16, mut server: Child) -> Result {
    let ready = wait_ready(port, "/readyz", Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let stopped = server.wait().map_err(|e| e.to_string())?;
    let after = ready?;
    eprintln!("/readyz: 200 after {after:?}; stopped: {stopped}");
    Ok(())
}
