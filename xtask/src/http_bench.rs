//! `cargo xtask bench http`: the release server under wrk on loopback, each figure
//! beside its anchor — the same work with no product layers — as a ratio.
//!
//! For SQLite (a file) and, when `TEST_POSTGRES_URL` names a server, PostgreSQL:
//!
//! 1. start `consultpay serve` (sandbox), time it to ready, read its idle RSS;
//! 2. prepare [`PREPARED`] paid consultations over HTTP (`examples/loadprep`);
//! 3. measure with wrk `GET /api/v1/pay/{token}/access`, `…/pass`, the `/pay/{token}`
//!    page, `POST …/validate` on fresh holds only (each hold captured once; the
//!    idempotent replays are measured apart) and signed webhooks, each event new;
//! 4. start the anchors (`examples/bare`, the server's pool sizing) and measure the
//!    access query and a webhook's verify + `INSERT … ON CONFLICT DO NOTHING`;
//! 5. on PostgreSQL, pgbench on the same server: a capture-shaped transaction
//!    (conditional `UPDATE` + `INSERT`, commit) and a lone `INSERT`, and the time to
//!    ready over TLS (`sslmode=require`).
//!
//! `BENCH_SERVER=path/to/consultpay` measures another build of the server (the
//! anchors and the load generators are this checkout's).
//!
//! The table goes to stdout and `target/bench/http.md`. Figures are reported, never
//! asserted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::probe::{free_port, wait_ready};

/// Paid consultations prepared per backend (each validated once, fresh).
const PREPARED: usize = 3000;
/// Signed webhook events per run (each delivered once): more than a run can take.
const EVENTS: usize = 40_000;
const DURATION_SECS: u64 = 8;
/// The runs that use each prepared item once (fresh holds, new events): short enough
/// that the items last (wrk runs its whole duration; a script cannot end it sooner).
const COUNTED_SECS: u64 = 3;
const THREADS: u32 = 2;
const CONNECTIONS: u32 = 16;
/// The run's databases and prepared items, made afresh each run.
const HTTP_WORK: &str = "target/bench/http";

/// How long a server may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(60);
const WEBHOOK_SECRET: &str = "whsec_bench0123456789";

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

/// A throughput in hundredths of a unit per second (the workspace denies float
/// arithmetic).
#[derive(Clone, Copy)]
struct Rate(u64);

impl Rate {
    /// wrk's "1234.56".
    fn parse(text: &str) -> Option<Rate> {
        let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
        let frac = format!("{frac:0<2}");
        Some(Rate(
            whole.parse::<u64>().ok()? * 100 + frac.get(..2)?.parse::<u64>().ok()?,
        ))
    }

    /// `n` done in `micros`.
    fn of(n: u64, micros: u64) -> Rate {
        Rate((n * 100_000_000).checked_div(micros).unwrap_or(0))
    }

    fn ratio(self, anchor: Rate) -> String {
        match (self.0 * 100).checked_div(anchor.0) {
            Some(r) => format!("{r} %"),
            None => "?".into(),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whole = self.0 / 100;
        if whole >= 1000 {
            write!(f, "{},{:03}", whole / 1000, whole % 1000)
        } else {
            write!(f, "{whole}")
        }
    }
}

struct Figures {
    rate: Rate,
    p50: String,
    p99: String,
    /// What the script's `done` printed.
    said: String,
    /// What the script counted (captures, events); 0 when it counts nothing.
    count: u64,
}

impl Figures {
    fn cell(&self) -> String {
        format!("{} /s (p50 {}, p99 {})", self.rate, self.p50, self.p99)
    }
}

/// Runs wrk with `script` against `url` (`script_args` go to the script's `init`).
/// `counted` names the script's own count (`captures`, `events`): the rate is then
/// that count over the run's duration, not wrk's requests per second.
fn wrk(
    script: &Path,
    url: &str,
    list: &Path,
    envs: &[(&str, &str)],
    script_args: &[&str],
    counted: Option<&str>,
) -> Result<Figures> {
    let mut command = Command::new("wrk");
    command
        .args([
            &format!("-t{THREADS}"),
            &format!("-c{CONNECTIONS}"),
            &format!(
                "-d{}s",
                if counted.is_some() {
                    COUNTED_SECS
                } else {
                    DURATION_SECS
                }
            ),
            // A slow answer is measured, not dropped as a timeout.
            "--timeout",
            "30s",
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
        .env("BENCH_THREADS", THREADS.to_string())
        .envs(envs.iter().copied())
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
    if text.contains("Non-2xx") {
        eprintln!("wrk: some answers were not 2xx:\n{text}");
    }
    let (rate, said, count) = match counted {
        None => (Rate::parse(&pick("Requests/sec:")), String::new(), 0),
        Some(word) => {
            let line = text
                .lines()
                .find(|l| l.starts_with(word))
                .unwrap_or("")
                .to_owned();
            // "captures N of M in U us, T timeouts, K threads ran out"
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.get(9).is_some_and(|k| *k != "0") {
                eprintln!("warning: the prepared items ran out, the rate is low: {line}");
            }
            let count = words.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            let rate = words
                .get(5)
                .and_then(|us| us.parse().ok())
                .map(|us| Rate::of(count, us));
            (rate, line, count)
        }
    };
    let rate = rate.ok_or_else(|| format!("wrk printed no rate:\n{text}"))?;
    Ok(Figures {
        rate,
        p50: pick("50%"),
        p99: pick("99%"),
        said,
        count,
    })
}

fn start(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<Server> {
    let child = Command::new(bin)
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok(Server(child))
}

/// `loadprep webhooks`: `n` events signed now, written to `path`.
fn signed_events(release: &Path, path: &Path, n: usize) -> Result {
    let out = Command::new(release.join("examples/loadprep"))
        .args(["webhooks", WEBHOOK_SECRET, &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "loadprep webhooks: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(path, &out.stdout).map_err(|e| e.to_string())
}

/// The server measured: `target/release/consultpay`, or the binary `BENCH_SERVER`
/// names (an earlier build kept aside, to measure before and after in one sitting).
fn server_binary(root: &Path) -> PathBuf {
    std::env::var_os("BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/consultpay"))
}

/// The server's environment for `database_url` on `listen`.
fn server_env<'a>(database_url: &'a str, listen: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", database_url),
        ("CONSULTPAY_LISTEN", listen),
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
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        // The load generator is one client: measure the work, not its quotas.
        ("CONSULTPAY_RATE_LIMIT_PAY", "0"),
        ("CONSULTPAY_RATE_LIMIT_WEBHOOKS", "0"),
        ("CONSULTPAY_ADMIN_LISTEN", "off"),
    ]
}

/// Starts the server on `database_url` and times it to `/readyz` 200.
fn serve(consultpay: &Path, database_url: &str) -> Result<(Server, u16, Duration)> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let server = start(consultpay, &["serve"], &server_env(database_url, &listen))?;
    wait_ready(port, "/readyz", READY_WITHIN)?;
    Ok((server, port, started.elapsed()))
}

struct Row {
    work: String,
    product: String,
    anchor: String,
    ratio: String,
}

fn backend(root: &Path, name: &str, database_url: &str, rows: &mut Vec<Row>) -> Result {
    let release = root.join("target/release");
    let work = root.join(HTTP_WORK);
    let consultpay = server_binary(root);
    let scripts = root.join("xtask/bench");
    let setup_env = server_env(database_url, "127.0.0.1:0");
    let migrate = Command::new(&consultpay)
        .arg("migrate")
        .envs(setup_env.iter().copied())
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
        .envs(setup_env.iter().copied())
        .output()
        .map_err(|e| e.to_string())?;
    let user = String::from_utf8_lossy(&user.stdout).to_string();
    let (id, token) = json_field(&user, "id")
        .zip(json_field(&user, "token"))
        .ok_or(format!("user add printed {user}"))?;

    let (server, port, ready) = serve(&consultpay, database_url)?;
    let base = format!("http://127.0.0.1:{port}");
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(server.0.id()).unwrap_or(0);

    eprintln!("[{name}] preparing {PREPARED} paid consultations…");
    let prepared = Instant::now();
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
    eprintln!("[{name}] prepared in {:?}", prepared.elapsed());
    let list = work.join(format!("{name}-consultations.txt"));
    std::fs::write(&list, &prep.stdout).map_err(|e| e.to_string())?;
    let auth = [("BENCH_TOKEN", token.as_str())];
    let get = |what: &str, path: &str| {
        eprintln!("[{name}] {what}…");
        wrk(
            &scripts.join("access.lua"),
            &base,
            &list,
            &auth,
            &[path],
            None,
        )
    };
    let access = get("GET access", "/api/v1/pay/%s/access")?;
    let pass = get("GET pass", "/api/v1/pay/%s/pass")?;
    let page = get("GET pay page", "/pay/%s")?;
    eprintln!("[{name}] POST validate, fresh holds…");
    let validate = wrk(
        &scripts.join("validate.lua"),
        &base,
        &list,
        &auth,
        &[],
        Some("captures"),
    )?;
    if validate.count < u64::from(THREADS) * 200 {
        eprintln!(
            "warning: fewer than 200 captures per thread ({}): the replays run includes fresh captures",
            validate.said
        );
    }
    eprintln!("[{name}] POST validate, replays…");
    let replays = wrk(
        &scripts.join("validate.lua"),
        &base,
        &list,
        &[("BENCH_TOKEN", token.as_str()), ("BENCH_MODE", "replay")],
        &[],
        None,
    )?;
    eprintln!("[{name}] POST webhooks…");
    let events = work.join(format!("{name}-events.txt"));
    signed_events(&release, &events, EVENTS)?;
    let webhooks = wrk(
        &scripts.join("webhook.lua"),
        &base,
        &events,
        &[],
        &["/webhooks/stripe"],
        Some("events"),
    )?;
    let loaded_rss = rss_kib(server.0.id()).unwrap_or(0);
    drop(server);

    let bare_port = free_port()?;
    let bare_listen = format!("127.0.0.1:{bare_port}");
    let bare = start(
        &release.join("examples/bare"),
        &[database_url, bare_listen.as_str(), WEBHOOK_SECRET],
        &[],
    )?;
    wait_ready(bare_port, "/healthz", READY_WITHIN)?;
    let bare_base = format!("http://{bare_listen}");
    eprintln!("[{name}] bare handlers…");
    let anchors = wrk(
        &scripts.join("access.lua"),
        &bare_base,
        &list,
        &[],
        &["/bare/%s"],
        None,
    )
    .and_then(|access| {
        signed_events(&release, &events, EVENTS)?;
        let webhook = wrk(
            &scripts.join("webhook.lua"),
            &bare_base,
            &events,
            &[],
            &["/bare/webhook"],
            Some("events"),
        )?;
        Ok((access, webhook))
    });
    drop(bare);
    let (bare_access, bare_webhook) = anchors?;

    let row = |work: &str, product: &Figures, anchor: Option<&Figures>| Row {
        work: format!("{work}, {name}"),
        product: product.cell(),
        anchor: anchor.map(Figures::cell).unwrap_or_else(|| "—".into()),
        ratio: anchor
            .map(|a| product.rate.ratio(a.rate))
            .unwrap_or_else(|| "—".into()),
    };
    rows.push(row(
        "`GET /api/v1/pay/{t}/access`",
        &access,
        Some(&bare_access),
    ));
    rows.push(row(
        "`GET /api/v1/pay/{t}/pass` (HS256)",
        &pass,
        Some(&bare_access),
    ));
    rows.push(row("`GET /pay/{t}` page", &page, Some(&bare_access)));
    let mut capture = row("validate-act, fresh holds (captures/s)", &validate, None);
    capture.product = format!("{} ({})", capture.product, validate.said);
    rows.push(capture);
    rows.push(row("validate-act, idempotent replays", &replays, None));
    let mut hooks = row(
        "signed webhooks, each new (events/s)",
        &webhooks,
        Some(&bare_webhook),
    );
    hooks.product = format!("{} ({})", hooks.product, webhooks.said);
    rows.push(hooks);
    rows.push(Row {
        work: format!("ready (`/readyz` 200), {name}"),
        product: format!(
            "{} ms; idle RSS {} MiB, {} MiB after the runs",
            ready.as_millis(),
            idle_rss / 1024,
            loaded_rss / 1024
        ),
        anchor: "—".into(),
        ratio: "—".into(),
    });
    Ok(())
}

/// pgbench's rate for `script` on `url`: 16 clients, 2 threads.
fn pgbench(url: &str, script: &Path) -> Result<Figures> {
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c16",
            "-j2",
            &format!("-T{DURATION_SECS}"),
            "-r",
            "-f",
        ])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run pgbench (apt-get install postgresql-client): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(Rate::parse)
        .ok_or_else(|| {
            format!(
                "pgbench printed no tps:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let latency = text
        .lines()
        .find(|l| l.starts_with("latency average"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_owned();
    Ok(Figures {
        rate: tps,
        p50: format!("mean {latency} ms"),
        p99: "?".into(),
        said: String::new(),
        count: 0,
    })
}

/// The pgbench anchors on `url`, and the time to ready over TLS.
fn postgres_anchors(root: &Path, url: &str, rows: &mut Vec<Row>) -> Result {
    let scripts = root.join("xtask/bench");
    let setup = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(scripts.join("pgbench-setup.sql"))
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if !setup.success() {
        return Err("pgbench set-up failed".into());
    }
    eprintln!("[PostgreSQL] pgbench…");
    for (work, script) in [
        (
            "pgbench capture-shaped transaction (conditional UPDATE + INSERT, commit)",
            "pgbench-capture.sql",
        ),
        (
            "pgbench `INSERT … ON CONFLICT DO NOTHING`",
            "pgbench-insert.sql",
        ),
    ] {
        let figures = pgbench(url, &scripts.join(script))?;
        rows.push(Row {
            work: format!("{work}, PostgreSQL"),
            product: "—".into(),
            anchor: format!("{} tx/s ({})", figures.rate, figures.p50),
            ratio: "—".into(),
        });
    }
    let consultpay = server_binary(root);
    let tls = if url.contains('?') {
        format!("{url}&sslmode=require")
    } else {
        format!("{url}?sslmode=require")
    };
    let (server, _, ready) = serve(&consultpay, &tls)?;
    drop(server);
    rows.push(Row {
        work: "ready (`/readyz` 200), PostgreSQL over TLS (`sslmode=require`)".into(),
        product: format!("{} ms", ready.as_millis()),
        anchor: "—".into(),
        ratio: "—".into(),
    });
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
    // Its own directory: `bench scale` keeps its million payments in target/bench.
    let work: PathBuf = root.join(HTTP_WORK);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let sqlite = format!("sqlite://{}?mode=rwc", work.join("bench.db").display());
    backend(root, "SQLite", &sqlite, &mut rows)?;
    if let Ok(server) = std::env::var("TEST_POSTGRES_URL") {
        let (name, url) = postgres_database(&server)?;
        let result = backend(root, "PostgreSQL", &url, &mut rows)
            .and_then(|()| postgres_anchors(root, &url, &mut rows));
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
    let mut report = format!(
        "wrk -t{THREADS} -c{CONNECTIONS} on loopback ({DURATION_SECS} s per run, {COUNTED_SECS} s for fresh holds and new events), \
         server and load generator sharing the machine's cores; {PREPARED} prepared holds, \
         {EVENTS} webhook events per run\n\n\
         | work | ConsultPay | anchor (same work, no product layers) | ratio |\n|---|---|---|---|\n"
    );
    for row in rows {
        report.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.work, row.product, row.anchor, row.ratio
        ));
    }
    println!("{report}");
    std::fs::write(root.join("target/bench/http.md"), &report).map_err(|e| e.to_string())?;
    Ok(())
}
