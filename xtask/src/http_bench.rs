//! `cargo xtask bench http`: the release server under wrk on loopback.
//!
//! For SQLite (a file) and, when `TEST_POSTGRES_URL` names a server, PostgreSQL: start
//! `consultpay serve` (sandbox), time it to ready and read its idle RSS, prepare N paid
//! consultations over HTTP (`examples/loadprep`), then measure with wrk
//! `GET /api/v1/pay/{token}/access`, `POST …/validate` (captures, then idempotent
//! replays), and the same read by a bare poem handler (`examples/bare`) doing the same
//! single SQL query. Figures are printed and written to `target/bench/http.md`; they
//! are reported, never asserted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::probe::{free_port, wait_ready};

const PREPARED: usize = 2000;
const DURATION_SECS: u64 = 8;
const THREADS: u32 = 2;
const CONNECTIONS: u32 = 16;
/// How long a server may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn json_field(json: &str, key: &str) -> Option<String> {
    let marker = format!("\"{key}\":\"");
    let start = json.find(&marker)? + marker.len();
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_owned())
}

struct WrkFigures {
    rps: String,
    p50: String,
    p99: String,
    requests: String,
}

/// Runs wrk with `script` against `url` (`script_args` go to the script's `init`).
fn wrk(
    script: &Path,
    url: &str,
    list: &Path,
    token: &str,
    secs: u64,
    script_args: &[&str],
) -> Result<WrkFigures> {
    let mut command = Command::new("wrk");
    command
        .args([
            &format!("-t{THREADS}"),
            &format!("-c{CONNECTIONS}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url);
    if !script_args.is_empty() {
        command.arg("--").args(script_args);
    }
    let out = command
        .env("BENCH_LIST", list)
        .env("BENCH_TOKEN", token)
        .env("BENCH_THREADS", THREADS.to_string())
        .output()
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let pick = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    if text.contains("Non-2xx") {
        eprintln!("wrk: some answers were not 2xx:\n{text}");
    }
    Ok(WrkFigures {
        rps: pick("Requests/sec:"),
        p50: pick("50%"),
        p99: pick("99%"),
        requests,
    })
}

fn start(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<Server> {
    let child = Command::new(bin)
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok(Server(child))
}

fn backend(root: &Path, name: &str, database_url: &str, report: &mut String) -> Result {
    let release = root.join("target/release");
    let work = root.join("target/bench");
    let consultpay = release.join("consultpay");
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let envs = [
        ("DATABASE_URL", database_url),
        ("CONSULTPAY_LISTEN", listen.as_str()),
        ("CONSULTPAY_DEMO", "false"),
        ("CONSULTPAY_RECONCILE_INTERVAL_SECS", "0"),
        // Passes to the video room, valid from five hours before the start (the
        // prepared consultations start in four): `GET …/pass` signs one per request.
        (
            "CONSULTPAY_VIDEO_URL",
            "https://meet.example.org/{room}?jwt={jwt}",
        ),
        (
            "CONSULTPAY_VIDEO_JWT_SECRET",
            "bench-video-secret-0123456789abcdef",
        ),
        ("CONSULTPAY_VIDEO_OPEN_BEFORE_MINUTES", "300"),
        // The load generator is one client: measure the work, not its quota.
        ("CONSULTPAY_RATE_LIMIT_PAY", "0"),
        ("CONSULTPAY_ADMIN_LISTEN", "off"),
    ];
    let migrate = Command::new(&consultpay)
        .arg("migrate")
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| e.to_string())?;
    if !migrate.success() {
        return Err("migrate failed".into());
    }
    let user = Command::new(&consultpay)
        .args([
            "user",
            "add",
            "--role",
            "practitioner",
            "--name",
            "Dr Bench",
        ])
        .envs(envs.iter().copied())
        .output()
        .map_err(|e| e.to_string())?;
    let user = String::from_utf8_lossy(&user.stdout).to_string();
    let (id, token) = json_field(&user, "id")
        .zip(json_field(&user, "token"))
        .ok_or(format!("user add printed {user}"))?;

    let started = Instant::now();
    let server = start(&consultpay, &["serve"], &envs)?;
    wait_ready(port, "/readyz", READY_WITHIN)?;
    let ready = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(server.0.id()).unwrap_or(0);

    eprintln!("[{name}] preparing {PREPARED} paid consultations…");
    let prep = Command::new(release.join("examples/loadprep"))
        .args([
            base.as_str(),
            id.as_str(),
            token.as_str(),
            &PREPARED.to_string(),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !prep.status.success() {
        return Err(format!(
            "loadprep: {}",
            String::from_utf8_lossy(&prep.stderr)
        ));
    }
    let list = work.join(format!("{name}-consultations.txt"));
    std::fs::write(&list, &prep.stdout).map_err(|e| e.to_string())?;
    let scripts = root.join("xtask/bench");

    eprintln!("[{name}] GET access…");
    let access = wrk(
        &scripts.join("access.lua"),
        &base,
        &list,
        &token,
        DURATION_SECS,
        &[],
    )?;
    eprintln!("[{name}] GET pass…");
    let pass = wrk(
        &scripts.join("access.lua"),
        &base,
        &list,
        &token,
        DURATION_SECS,
        &["/api/v1/pay/%s/pass"],
    )?;
    eprintln!("[{name}] POST validate…");
    let validate = wrk(
        &scripts.join("validate.lua"),
        &base,
        &list,
        &token,
        DURATION_SECS,
        &[],
    )?;
    let loaded_rss = rss_kib(server.0.id()).unwrap_or(0);
    drop(server);

    let bare_port = free_port()?;
    let bare_listen = format!("127.0.0.1:{bare_port}");
    let bare = start(
        &release.join("examples/bare"),
        &[database_url, bare_listen.as_str()],
        &[],
    )?;
    let probe = format!("/bare/{}", "x".repeat(43));
    wait_ready(bare_port, &probe, READY_WITHIN)?;
    eprintln!("[{name}] bare poem handler…");
    let bare_figures = wrk(
        &scripts.join("access.lua"),
        &format!("http://{bare_listen}"),
        &list,
        "",
        DURATION_SECS,
        &["/bare/%s"],
    );
    drop(bare);
    let bare_figures = bare_figures?;
    // wrk prints "1234.56": compare in hundredths, in integers (the workspace denies
    // float arithmetic).
    let hundredths = |s: &str| s.replace('.', "").parse::<u64>().ok();
    let ratio = match (hundredths(&access.rps), hundredths(&bare_figures.rps)) {
        (Some(a), Some(b)) if b > 0 => format!("{}%", a * 100 / b),
        _ => "?".into(),
    };
    report.push_str(&format!(
        "| {name} | ready in {} ms, idle RSS {} MiB, after load {} MiB | access: {} req/s, p50 {}, p99 {} | pass (HS256): {} req/s, p50 {}, p99 {} | validate: {} req/s, p50 {}, p99 {} ({} requests over {PREPARED} holds) | bare handler: {} req/s, p50 {}, p99 {}; access/bare = {ratio} |\n",
        ready.as_millis(),
        idle_rss / 1024,
        loaded_rss / 1024,
        access.rps, access.p50, access.p99,
        pass.rps, pass.p50, pass.p99,
        validate.rps, validate.p50, validate.p99, validate.requests,
        bare_figures.rps, bare_figures.p50, bare_figures.p99,
    ));
    Ok(())
}

fn postgres_database(server: &str) -> Result<(String, String)> {
    let name = format!("consultpay_bench_{}", std::process::id());
    let ok = Command::new("psql")
        .args([server, "-q", "-c", &format!("CREATE DATABASE \"{name}\"")])
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if !ok.success() {
        return Err("cannot create the benchmark database".into());
    }
    let url = match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{server}/{name}"),
    };
    Ok((name, url))
}

pub fn run(root: &Path) -> Result {
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "consultpay",
            "--bin",
            "consultpay",
            "--example",
            "loadprep",
            "--example",
            "bare",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("release build failed".into());
    }
    let work: PathBuf = root.join("target/bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut report = format!(
        "wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_SECS}s on loopback, server and load generator sharing the machine's cores\n\n"
    );
    let sqlite = format!("sqlite://{}?mode=rwc", work.join("bench.db").display());
    backend(root, "SQLite file", &sqlite, &mut report)?;
    if let Ok(server) = std::env::var("TEST_POSTGRES_URL") {
        let (name, url) = postgres_database(&server)?;
        let result = backend(root, "PostgreSQL", &url, &mut report);
        let _ = Command::new("psql")
            .args([
                server.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            ])
            .status();
        result?;
    } else {
        eprintln!("note: TEST_POSTGRES_URL is not set; PostgreSQL is not measured");
    }
    println!("{report}");
    std::fs::write(work.join("http.md"), &report).map_err(|e| e.to_string())?;
    Ok(())
}
