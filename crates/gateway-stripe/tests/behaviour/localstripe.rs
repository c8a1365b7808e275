//! localstripe (PyPI `localstripe`, a third-party stateful Stripe server) as a test
//! peer: started once per test binary on 127.0.0.1 and a free port, reset before each
//! test, used by one test at a time.
//!
//! Its stock command binds every interface, so its aiohttp app is started from Python
//! with host 127.0.0.1. It keeps its state in one fixed file
//! (`/tmp/localstripe.pickle`), so two must never run at once: every test that uses it
//! holds [`acquire`]'s process-wide lock, and they all live in this one test binary.
//! The Python process exits when its stdin closes, i.e. when this binary exits,
//! however it exits.
//!
//! The interpreter is `$LOCALSTRIPE_PYTHON`, else `<workspace>/target/peers/venv/bin/python`
//! (what `cargo xtask peers` creates). Without one, the tests are skipped with a note,
//! except under `CI=true` where they fail.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::MutexGuard;

const SCRIPT: &str = r#"
import os, sys, threading
def _exit_with_parent():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=_exit_with_parent, daemon=True).start()
from aiohttp import web
from localstripe import server
web.run_app(server.app, host='127.0.0.1', port=int(sys.argv[1]), print=None)
"#;

/// A running localstripe.
pub struct Localstripe {
    pub base: String,
    /// Kept so the process (and the stdin pipe that keeps it alive) lives as long as
    /// the test binary.
    _child: Mutex<Child>,
}

static SERVER: OnceLock<Result<Localstripe, String>> = OnceLock::new();
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn interpreter() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOCALSTRIPE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = workspace().join("target/peers/venv/bin/python");
    venv.exists().then_some(venv)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn start(python: &PathBuf) -> Result<Localstripe, String> {
    let port = free_port()?;
    let log =
        std::env::temp_dir().join(format!("consultpay-localstripe-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut err));
            return Err(format!("localstripe exited ({status}): {}", err.trim()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("localstripe did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Started: its log is only needed to explain a failed start.
    let _ = std::fs::remove_file(&log);
    Ok(Localstripe {
        base: format!("http://127.0.0.1:{port}"),
        _child: Mutex::new(child),
    })
}

/// Exclusive use of a freshly reset localstripe, or `None` (after a note) when none
/// can run here outside CI.
pub async fn acquire() -> Option<(MutexGuard<'static, ()>, &'static Localstripe)> {
    let guard = EXCLUSIVE.lock().await;
    let server = SERVER.get_or_init(|| match interpreter() {
        Some(python) => start(&python),
        None => Err(
            "no Python with localstripe: run `cargo xtask peers` or set LOCALSTRIPE_PYTHON".into(),
        ),
    });
    match server {
        Ok(server) => {
            reset(server).await;
            Some((guard, server))
        }
        Err(why) if in_ci() => panic!("CI=true and localstripe is unavailable: {why}"),
        Err(why) => {
            eprintln!("note: localstripe test skipped: {why}");
            None
        }
    }
}

async fn reset(server: &Localstripe) {
    let resp = crate::harness::http()
        .delete(format!("{}/_config/data", server.base))
        .send()
        .await
        .expect("localstripe answers");
    assert!(resp.status().is_success(), "reset: {}", resp.status());
}
