//! A real SMTP server for tests: aiosmtpd (PyPI, installed pinned by `cargo xtask
//! peers`) on 127.0.0.1 and a free port, writing what it receives to a Maildir that
//! [`SmtpPeer::received`] reads back. It can be stopped and started again on the same
//! port, to test a mail server that is down. The Python process exits when its stdin
//! closes (this process exiting, however it exits) or when the peer is dropped.
//!
//! The interpreter is `$PEERS_PYTHON`, else `<workspace>/target/peers/venv/bin/python`.
//! Without one, [`SmtpPeer::start`] answers `None` after a note, except under
//! `CI=true` where it panics.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
import sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
controller = Controller(Mailbox(sys.argv[2]), hostname='127.0.0.1', port=int(sys.argv[1]))
controller.start()
sys.stdin.read()
controller.stop()
"#;

/// One e-mail as the SMTP server stored it, decoded (MIME, quoted-printable, base64,
/// encoded words) by Stalwart's `mail-parser`.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub content_language: Option<String>,
    /// The plain-text body.
    pub text: String,
    /// File name and bytes of each attachment.
    pub attachments: Vec<(String, Vec<u8>)>,
}

fn parse(raw: &[u8]) -> Received {
    use mail_parser::{MessageParser, MimeHeaders};
    let Some(m) = MessageParser::default().parse(raw) else {
        return Received::default();
    };
    let address = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_owned)
    };
    Received {
        message_id: m.message_id().map(str::to_owned),
        from: address(m.from()),
        to: address(m.to()),
        subject: m.subject().map(str::to_owned),
        content_language: m
            .header("Content-Language")
            .and_then(|h| h.as_text())
            .map(str::to_owned),
        text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        attachments: m
            .attachments()
            .map(|a| {
                (
                    a.attachment_name().unwrap_or_default().to_owned(),
                    a.contents().to_vec(),
                )
            })
            .collect(),
    }
}

/// A running (or stopped) aiosmtpd.
#[derive(Debug)]
pub struct SmtpPeer {
    pub port: u16,
    python: PathBuf,
    maildir: tempfile::TempDir,
    child: Option<Child>,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn interpreter() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PEERS_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/peers/venv/bin/python"
    ));
    venv.exists().then_some(venv)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl SmtpPeer {
    /// Starts aiosmtpd, or `None` (after a note) when it cannot run here outside CI.
    pub fn start() -> Option<SmtpPeer> {
        let Some(python) = interpreter() else {
            let why = "no Python with aiosmtpd: run `cargo xtask peers` or set PEERS_PYTHON";
            assert!(!in_ci(), "CI=true and the SMTP peer is unavailable: {why}");
            eprintln!("note: SMTP test skipped: {why}");
            return None;
        };
        let maildir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut peer = SmtpPeer {
            port: free_port(),
            python,
            maildir,
            child: None,
        };
        peer.resume();
        Some(peer)
    }

    /// `smtp://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the port refuses connections until [`SmtpPeer::resume`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            if child.wait_timeout(Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts the server again on the same port and Maildir.
    pub fn resume(&mut self) {
        let log = self.maildir.path().join("aiosmtpd.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log: {e}"));
        let mut child = Command::new(&self.python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(self.port.to_string())
            .arg(self.maildir.path().join("mail"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut err));
                panic!("aiosmtpd exited ({status}): {}", err.trim());
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        let new = self.maildir.path().join("mail").join("new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| parse(&std::fs::read(&path).unwrap_or_default()))
            .collect()
    }

    /// Waits (at most `timeout`) until at least `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

trait WaitTimeout {
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
