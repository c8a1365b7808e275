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
        c.write_timeout_secs = 2;
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

    // A client that connects and sends nothing at all is closed too.
    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    let got = until_closed(&mut silent, Duration::from_secs(30)).await;
    assert_eq!(got.as_deref(), Some(""), "closed without a word");

    // A client that asks and then stops reading (50 pipelined requests for the API's
    // documentation, far more than the sockets' buffers hold) is cut off once nothing
    // could be written for the write timeout.
    let one = reqwest::get(app.url("/docs"))
        .await
        .expect("docs")
        .bytes()
        .await
        .expect("body")
        .len();
    let mut greedy = stall(&addr, &b"GET /docs HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match greedy.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => received += n,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "the connection was closed");
    assert!(
        received < 50 * one,
        "cut off before the end: {received} of {} bytes",
        50 * one
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

/// At the connection limit, a client that asks is let in at once: the oldest
/// connection that never sent a whole request head makes room for it, while one whose
/// request is under way (an upload) keeps its place. The timeouts are a minute away
/// here, so only that rule can let the newcomers in within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_a_client_that_asks_displaces_one_that_never_did() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.header_read_timeout_secs = 60;
        c.body_read_timeout_secs = 60;
        c.max_connections = 16;
    })
    .await
    else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut upload = stall(
        &addr,
        b"POST /api/v1/pay/x/cancel HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\":",
    )
    .await;
    // Its head is read as soon as it arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut heads = Vec::new();
    for _ in 0..100 {
        heads.push(stall(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for _ in 0..5 {
        let health = client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("answered long before any timeout");
        assert_eq!(health.status(), StatusCode::OK);
    }
    // The oldest half-sent heads were closed, without an answer.
    let mut closed = 0;
    for s in &mut heads {
        if let Some(got) = until_closed(s, Duration::from_millis(50)).await {
            assert_eq!(got, "", "closed without an answer");
            closed += 1;
        }
    }
    assert!(closed >= 100 - 16, "{closed} of 100 closed");
    // The upload kept its place: its body completes and is answered.
    upload
        .write_all(b"1}   ")
        .await
        .expect("the upload's connection is open");
    let got = until_closed(&mut upload, Duration::from_secs(10)).await;
    assert!(
        got.as_deref().is_some_and(|g| g.starts_with("HTTP/1.1 ")),
        "{got:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unauthenticated_calls_have_a_quota_per_client_and_say_when_to_come_back() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit_pay = 5;
        c.rate_limit_sign_in = 3;
        c.rate_limit_webhooks = 4;
    })
    .await
    else {
        return;
    };
    let dr = app.practitioner("Dr Estival").await;
    let guess = format!("/api/v1/pay/pay_{}/access", "x".repeat(43));
    let webhook = || {
        app.client
            .post(app.url("/webhooks/stripe"))
            .header("stripe-signature", "t=1,v1=00")
            .body("{}")
            .send()
    };
    let sign_in = || {
        app.client
            .post(app.url("/dashboard/login"))
            .form(&[("csrf_token", "x"), ("token", "wrong")])
            .send()
    };
    // Guessing pay links: the quota runs out, whatever the answers were.
    for _ in 0..5 {
        let (status, _) = app.get(&guess, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let refused = app.client.get(app.url(&guess)).send().await.expect("get");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = refused.json().await.expect("problem");
    assert_eq!(body["code"], "rate_limited");
    // The pay pages share it.
    let page = app
        .client
        .get(app.url(&format!("/pay/pay_{}", "y".repeat(43))))
        .send()
        .await;
    assert_eq!(page.expect("page").status(), StatusCode::TOO_MANY_REQUESTS);

    for _ in 0..3 {
        assert_ne!(
            sign_in().await.expect("sign in").status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(
        sign_in().await.expect("sign in").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..4 {
        assert_eq!(
            webhook().await.expect("webhook").status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        webhook().await.expect("webhook").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Signed-in work is not throttled by any of it.
    let (status, _) = app.get("/api/v1/me", Some(&dr.token)).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
