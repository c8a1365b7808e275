//! Clients that hold connections open: half a request head, half a body, an idle
//! keep-alive connection. Each is closed within its timeout, and the server keeps
//! answering real clients meanwhile, even with more slow clients than it serves at
//! once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp};

/// Connects and sends `bytes`, then nothing.
async fn stall(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    s
}

/// Reads until the server closes the connection (or `within` passes): what it sent.
async fn until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_health_answers_meanwhile() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.header_read_timeout_secs = 2;
        c.body_read_timeout_secs = 2;
        c.max_connections = 32;
    })
    .await
    else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();

    // 100 clients send half a request head, three times more than the server serves
    // at once.
    let mut heads = Vec::new();
    for _ in 0..100 {
        heads.push(stall(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await);
    }
    // A real client still gets its answer: the slow ones are cut off, its turn comes.
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), StatusCode::OK);
    // Every half-sent head is closed by the server (within its timeout, once its
    // turn came), without an answer.
    for (i, s) in heads.iter_mut().enumerate() {
        let got = until_closed(s, Duration::from_secs(30)).await;
        assert!(
            got.as_deref().is_some_and(|g| !g.contains("200 OK")),
            "head {i}: {got:?}"
        );
    }

    // Half a body: 408 once the body read timeout passes.
    let mut body = stall(
        &addr,
        b"POST /api/v1/pay/x/cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
    )
    .await;
    let got = until_closed(&mut body, Duration::from_secs(30)).await;
    assert!(
        got.as_deref()
            .is_some_and(|g| g.starts_with("HTTP/1.1 408")),
        "{got:?}"
    );

    // A kept-alive connection left idle after its answer is closed too.
    let mut idle = stall(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let got = until_closed(&mut idle, Duration::from_secs(30)).await;
    assert!(
        got.as_deref()
            .is_some_and(|g| g.starts_with("HTTP/1.1 200")),
        "answered, then closed: {got:?}"
    );
    app.stop().await;
}
