//! Talking to a server this workflow started: a free port, the status of a `GET`, and
//! waiting until it is ready. Plain `std` (xtask has no dependencies).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Result;

/// A port nothing listens on right now, on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The status of `GET path`, or `None` when nothing answers.
pub fn status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Waits (at most `within`) until `GET path` answers 200; how long that took.
pub fn wait_ready(port: u16, path: &str, within: Duration) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if status(port, path) == Some(200) {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!(
        "{path} did not answer 200 on port {port} within {within:?}"
    ))
}
