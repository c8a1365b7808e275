//! The HTTP server: poem's endpoints on hyper, with the limits a public service needs
//! against clients that hold connections open.
//!
//! poem's own `Server` sets no header-read timeout (hyper's needs a timer), and its
//! idle timeout cannot close a connection stuck in the middle of a request head: a
//! client that sends half a request and then nothing keeps its socket, and enough of
//! them exhaust the file descriptors. Here:
//! - **header-read timeout** (hyper's, with a Tokio timer): a request head must arrive
//!   whole within it — from the first byte of the connection on, so a client that
//!   connects and sends nothing is closed too — or the connection is closed. It also
//!   bounds an idle keep-alive connection's wait for its next request;
//! - **write timeout** (`Stalled`): a client that stops reading its answer (a zero
//!   receive window) is cut off once no byte could be written for that long;
//! - **body-read timeout** ([`crate::limit::BodyLimit`]): the body must arrive within
//!   it, or `408 request_timeout`;
//! - **connection limit**: at most so many connections at once. When a new client
//!   arrives at the limit, the oldest connection that has not yet sent a whole
//!   request head is closed to make room ([`Unstarted`]): clients that hold sockets
//!   without asking anything cannot keep out one that asks (health checks, patients).
//!   Only when every connection is serving requests does the newcomer wait, in the
//!   kernel's queue, until one closes — and the timeouts make sure slow ones do.
//!
//! HTTP/1.1 only: the server sits behind a reverse proxy that terminates TLS (and
//! HTTP/2), and hyper's HTTP/1 is where the header timeout starts at the first byte
//! (the auto-detecting builder first waits, without a deadline, for enough bytes to
//! tell HTTP/2 apart).
//!
//! Shutdown is graceful: the listener stops, connections in flight finish within the
//! grace period.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, IntoEndpoint};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

/// How long and how many: what one slow or hostile client may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request head (or, on a kept-alive connection, the next one) must arrive
    /// within this.
    pub header_read_timeout: Duration,
    /// At most this many connections at once.
    pub max_connections: usize,
    /// A response that cannot be written for this long (the client stopped reading)
    /// ends the connection.
    pub write_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets connections in
/// flight finish for at most `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    let local = listener.local_addr()?;
    let endpoint = Arc::new(endpoint.into_endpoint().map_to_response());
    let slots = Arc::new(Semaphore::new(connection_slots(limits.max_connections)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut unstarted = Unstarted::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A slot for it: at the limit, the oldest connection still without a request
        // makes room; if every one is serving, wait (new clients queue in the kernel).
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                unstarted.evict_oldest();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let state = unstarted.track();
        let service = service(endpoint.clone(), local, peer, state.clone());
        let stream = Stalled::new(stream, limits.write_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::pin!(conn);
            loop {
                tokio::select! {
                    done = &mut conn => {
                        if let Err(e) = done {
                            tracing::debug!(error = %e, %peer, "connection closed");
                        }
                        break;
                    }
                    // A request that arrived meanwhile keeps its connection.
                    () = state.evicted.notified() => if !state.started.load(Ordering::Acquire) {
                        tracing::debug!(%peer, "connection without a request closed to make room");
                        break;
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period: closing them");
    }
    Ok(())
}

/// Descriptors kept for everything but client connections: the listeners, the
/// database pool, the SMTP and Stripe clients, files.
const RESERVED_DESCRIPTORS: u64 = 64;

/// `wanted`, or fewer if the process may not open that many descriptors: past the
/// limit, `accept` fails and the slots would go to connections that cannot exist.
fn connection_slots(wanted: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let slots = within_descriptors(wanted, limit);
    if slots < wanted {
        tracing::warn!(
            wanted,
            slots,
            descriptors = limit,
            "CONSULTPAY_MAX_CONNECTIONS is above what the file-descriptor limit allows: serving fewer at once (raise LimitNOFILE / ulimit -n)"
        );
    }
    slots
}

/// The connections `limit` descriptors allow, at most `wanted` and at least one.
fn within_descriptors(wanted: usize, limit: Option<u64>) -> usize {
    let allowed = limit.map_or(usize::MAX, |l| {
        usize::try_from(l.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX)
    });
    wanted.min(allowed).max(1)
}

/// What hyper sends back: poem's response as a boxed body.
type HyperResponse = hyper::Response<BoxBody<Bytes, std::io::Error>>;

/// A connection as the limit sees it.
#[derive(Debug, Default)]
struct Connection {
    /// A whole request head arrived on it.
    started: AtomicBool,
    /// Told to close to make room.
    evicted: Notify,
}

/// The connections that have not sent a whole request head yet, oldest first: the
/// first to go when the server is full. Entries of connections that started or ended
/// are dropped as they are met.
#[derive(Debug, Default)]
struct Unstarted(VecDeque<Weak<Connection>>);

impl Unstarted {
    /// A new connection, tracked until it starts or ends.
    fn track(&mut self) -> Arc<Connection> {
        self.forget_settled();
        let conn = Arc::new(Connection::default());
        self.0.push_back(Arc::downgrade(&conn));
        conn
    }

    /// Closes the oldest connection still without a request, if there is one.
    fn evict_oldest(&mut self) {
        while let Some(weak) = self.0.pop_front() {
            if let Some(conn) = weak.upgrade()
                && !conn.started.load(Ordering::Acquire)
            {
                conn.evicted.notify_one();
                return;
            }
        }
    }

    /// Drops the entries at the front that no longer wait.
    fn forget_settled(&mut self) {
        while self.0.front().is_some_and(|weak| {
            weak.upgrade()
                .is_none_or(|conn| conn.started.load(Ordering::Acquire))
        }) {
            self.0.pop_front();
        }
    }
}

/// One connection's service: each request into poem, its response back to hyper.
fn service<E>(
    endpoint: Arc<E>,
    local: SocketAddr,
    peer: SocketAddr,
    conn: Arc<Connection>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = HyperResponse,
    Error = Infallible,
    Future = impl Future<Output = Result<HyperResponse, Infallible>> + Send,
> + Clone
where
    E: Endpoint<Output = poem::Response> + 'static,
{
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        conn.started.store(true, Ordering::Release);
        let endpoint = endpoint.clone();
        async move {
            let req: poem::Request = (
                req,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(peer)),
                poem::http::uri::Scheme::HTTP,
            )
                .into();
            let resp = endpoint.get_response(req).await;
            Ok::<_, Infallible>(resp.into())
        }
    })
}

/// A socket whose writes may not stall: once a write (or flush) has waited `timeout`
/// without progress, it fails, and hyper closes the connection. Reads are left to the
/// header and body timeouts.
#[derive(Debug)]
struct Stalled<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Stalled<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Stalled {
            inner,
            timeout,
            deadline: None,
        }
    }

    /// A write that could not proceed: fail once the deadline passes.
    fn waited(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Error> {
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Stalled<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Stalled<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, buf) {
            std::task::Poll::Pending => self.waited(cx).map(Err),
            done => {
                self.deadline = None;
                done
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.inner).poll_flush(cx) {
            std::task::Poll::Pending => self.waited(cx).map(Err),
            done => {
                self.deadline = None;
                done
            }
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_under_the_descriptor_limit() {
        assert_eq!(within_descriptors(1024, None), 1024, "unlimited");
        assert_eq!(within_descriptors(1024, Some(1_048_576)), 1024);
        assert_eq!(within_descriptors(1024, Some(256)), 192);
        assert_eq!(within_descriptors(100, Some(256)), 100);
        assert_eq!(within_descriptors(1024, Some(10)), 1, "never none");
    }

    #[test]
    fn the_oldest_connection_without_a_request_is_the_one_evicted() {
        let mut unstarted = Unstarted::default();
        let first = unstarted.track();
        let second = unstarted.track();
        let third = unstarted.track();
        first.started.store(true, Ordering::Release);
        unstarted.evict_oldest();
        // `second` was told; `first` started, so it is not the one.
        assert!(futures_util::FutureExt::now_or_never(second.evicted.notified()).is_some());
        assert!(futures_util::FutureExt::now_or_never(first.evicted.notified()).is_none());
        assert!(futures_util::FutureExt::now_or_never(third.evicted.notified()).is_none());
        drop(third);
        unstarted.evict_oldest();
        assert!(unstarted.0.is_empty(), "ended connections are forgotten");
    }
}
