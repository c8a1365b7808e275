//! ConsultPay's development workflows, as Rust rather than shell scripts.
//!
//! `cargo xtask ci` runs exactly what CI runs. Each command is small and does one thing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod deb;
mod http_bench;
mod probe;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fmt") => fmt_check(),
        Some("clippy") => clippy(),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("peers") => peers(),
        Some("openapi") => openapi(),
        Some("deb") => deb::deb(args.get(1).is_some_and(|a| a == "--check")),
        Some("docs") => docs(),
        Some("downstream") => downstream(),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 ci            format check, clippy -D warnings, every test (what CI runs)\n  \
                 fmt           cargo fmt --check\n  \
                 clippy        cargo clippy --all-targets -D warnings\n  \
                 test [ARGS]   the test suite (extra ARGS go to cargo test)\n  \
                 peers         install the non-Rust test peers (localstripe, aiosmtpd, PyJWT, schemathesis in target/peers/venv)\n  \
                 openapi       write docs/openapi.json from the code (a test fails when it is stale)\n  \
                 deb [--check] the Debian package (target/debian); --check installs it, runs it, purges it\n  \
                 docs          billing-core's API docs, every public item documented (rustdoc -D warnings)\n  \
                 downstream    the crate outside the workspace that embeds billing-core: fmt, clippy, tests\n  \
                 bench [core|storage|http|scale]  benchmarks (http: wrk against the release server, beside its anchors;
                               scale: the payments table with a million payments)"
            );
            Err("unknown command".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

/// The workspace this run is about. `cargo run` (the `cargo xtask` alias) sets
/// `CARGO_MANIFEST_DIR` for the process; the compile-time value is only the fallback,
/// since a target directory shared by two checkouts may hold an xtask built in the
/// other one.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(program: &str, args: &[&str]) -> Result {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result {
    fmt_check()?;
    clippy()?;
    docs()?;
    peers()?;
    test(&[])?;
    examples()?;
    downstream()
}

/// billing-core's examples, run (`cargo test` only builds them), with the features
/// each needs.
const EXAMPLES: &[(&str, &str)] = &[
    ("fees_and_state_machine", ""),
    ("validate_in_memory", "testing"),
];

fn examples() -> Result {
    EXAMPLES.iter().try_for_each(|(example, features)| {
        run(
            "cargo",
            &[
                "run",
                "--quiet",
                "-p",
                "billing-core",
                "--features",
                features,
                "--example",
                example,
            ],
        )
    })
}

/// billing-core's documentation with every feature, as docs.rs would build it: a
/// broken link or an undocumented public item (`missing_docs`) fails it.
fn docs() -> Result {
    let status = Command::new("cargo")
        .args([
            "doc",
            "--quiet",
            "--no-deps",
            "-p",
            "billing-core",
            "--all-features",
        ])
        .env("RUSTDOCFLAGS", "-D warnings -D missing_docs")
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo doc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo doc -p billing-core failed ({status})"))
    }
}

/// The downstream example (`crates/billing-core/examples/downstream`), a crate of its
/// own workspace that depends on billing-core alone: formatted, clippy-clean and
/// tested, in this workspace's target directory so nothing is built twice.
fn downstream() -> Result {
    let manifest = "crates/billing-core/examples/downstream/Cargo.toml";
    let target = root().join("target");
    let target = target.to_str().ok_or("the workspace path is not UTF-8")?;
    run("cargo", &["fmt", "--manifest-path", manifest, "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--manifest-path",
            manifest,
            "--target-dir",
            target,
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run(
        "cargo",
        &[
            "test",
            "--manifest-path",
            manifest,
            "--target-dir",
            target,
            "--locked",
        ],
    )
}

/// The test peers from PyPI, pinned: localstripe (a stateful Stripe server the gateway
/// and e2e tests start on 127.0.0.1), aiosmtpd (an SMTP server whose Maildir the mail
/// tests read), PyJWT with cryptography (an independent verifier of the video passes,
/// HS256 and EdDSA through the JWKS), and schemathesis (the API against its OpenAPI
/// document).
const PEERS: [(&str, &str); 5] = [
    ("localstripe", "1.15.10"),
    ("aiosmtpd", "1.4.6"),
    ("PyJWT", "2.10.1"),
    ("cryptography", "44.0.3"),
    ("schemathesis", "4.32.5"),
];

/// Installs the test peers: [`PEERS`] in a virtualenv at `target/peers/venv`, and
/// the OpenID provider ([`oidc_peer`]). Does nothing for what is already there.
fn peers() -> Result {
    oidc_peer()?;
    python_peers()
}

/// panva's `oidc-provider` (a certified OpenID provider, on Debian's `nodejs`) at
/// `target/peers/oidc`: `xtask/peers/oidc` (its `package.json`, `package-lock.json`
/// pinning every package, and `provider.mjs`, the script the tests start) installed
/// with `npm ci`. Nothing is done when the lock file installed is the same.
fn oidc_peer() -> Result {
    let source = root().join("xtask/peers/oidc");
    let target = root().join("target/peers/oidc");
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let lock = std::fs::read(source.join("package-lock.json")).map_err(|e| e.to_string())?;
    let installed = std::fs::read(target.join("package-lock.json")).ok();
    for file in ["package.json", "package-lock.json", "provider.mjs"] {
        std::fs::copy(source.join(file), target.join(file)).map_err(|e| e.to_string())?;
    }
    if installed.as_deref() == Some(lock.as_slice())
        && target.join("node_modules/oidc-provider").exists()
    {
        eprintln!("the OpenID provider is installed in {}", target.display());
        return Ok(());
    }
    let target_str = target.to_str().ok_or("the workspace path is not UTF-8")?;
    run(
        "npm",
        &[
            "ci",
            "--prefix",
            target_str,
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
    )
}

/// Installs [`PEERS`] in a virtualenv at `target/peers/venv`. Does nothing when those
/// versions are already there.
fn python_peers() -> Result {
    let venv = root().join("target/peers/venv");
    let python = venv.join("bin/python");
    let python_str = python.to_str().ok_or("the workspace path is not UTF-8")?;
    let wanted = PEERS
        .iter()
        .map(|(name, version)| format!("('{name}', '{version}')"))
        .collect::<Vec<_>>()
        .join(", ");
    let check = format!(
        "import importlib.metadata as m, sys\n\
         def v(n):\n    try: return m.version(n)\n    except Exception: return None\n\
         sys.exit(any(v(n) != w for n, w in [{wanted}]))"
    );
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", check.as_str()])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        eprintln!("test peers are installed in {}", venv.display());
        return Ok(());
    }
    if !python.exists() {
        let system = env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let venv_str = venv.to_str().ok_or("the workspace path is not UTF-8")?;
        run(&system, &["-m", "venv", venv_str])?;
    }
    let requirements: Vec<String> = PEERS
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let mut args = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    args.extend(requirements.iter().map(String::as_str));
    run(python_str, &args)
}

/// Writes `docs/openapi.json`: the document the server serves, from `consultpay
/// openapi` (default configuration, so the server URL is `http://127.0.0.1:8080`).
fn openapi() -> Result {
    let out = Command::new("cargo")
        .args(["run", "--quiet", "-p", "consultpay", "--", "openapi"])
        .current_dir(root())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "consultpay openapi failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = root().join("docs/openapi.json");
    std::fs::write(&path, &out.stdout).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn fmt_check() -> Result {
    run("cargo", &["fmt", "--all", "--check"])
}

fn clippy() -> Result {
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )
}

fn test(extra: &[String]) -> Result {
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}

fn bench(which: &[String]) -> Result {
    match which.first().map(String::as_str) {
        None | Some("core") => run("cargo", &["bench", "-p", "billing-core", "--bench", "core"]),
        // PostgreSQL figures too when TEST_POSTGRES_URL names a server.
        Some("storage") => run(
            "cargo",
            &["bench", "-p", "storage-seaorm", "--bench", "storage"],
        ),
        Some("http") => http_bench::run(&root()),
        // A million payments, loaded once and kept (target/bench/scale.db, database
        // consultpay_scale); PostgreSQL too when TEST_POSTGRES_URL names a server.
        Some("scale") => run(
            "cargo",
            &[
                "bench",
                "-p",
                "storage-seaorm",
                "--features",
                "bulk",
                "--bench",
                "scale",
            ],
        ),
        Some(other) => Err(format!("unknown benchmark '{other}'")),
    }
}
