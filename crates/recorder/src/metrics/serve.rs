//! The scrape endpoint: `GET /metrics` on one thread of its own.
//!
//! Anyone who can reach the port can connect, so a connection costs the
//! recorder little and not for long: at most [`MAX_CONNECTIONS`] are
//! served at once (more are closed at accept), each has [`HEAD_TIMEOUT`]
//! to send a request's head (into a small buffer) and lives
//! [`LIFETIME`] at most. The recording never waits for this thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use super::Metrics;

/// Connections served at once; Prometheus uses one per target.
const MAX_CONNECTIONS: usize = 8;
/// Time to send a request's head (a connection idle this long between
/// requests is closed too).
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// A kept-alive connection's life (Prometheus reconnects after it).
const LIFETIME: Duration = Duration::from_secs(60);
/// Bytes of a request's head read at most.
const MAX_HEAD: usize = 8192;
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` (so a bad address or a port in use is an error before
/// recording starts); [`serve`] answers on it later.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("--metrics-addr {addr}: cannot listen there (a port in use, or an address not on this node)")
    })?;
    listener
        .set_nonblocking(true)
        .context("--metrics-addr: cannot make the socket non-blocking")?;
    Ok(listener)
}

/// Serves scrapes on `listener` from a thread of its own until the process
/// ends. Called once the recorder has dropped its capabilities: the thread
/// that parses what the network sends holds none of them.
pub fn serve(listener: std::net::TcpListener, metrics: Metrics) -> anyhow::Result<()> {
    let bound = listener.local_addr().context("--metrics-addr")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("--metrics-addr: cannot start the server's runtime")?;
    std::thread::Builder::new()
        .name("credtrail-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => accept(l, Arc::new(metrics)).await,
                    Err(e) => tracing::error!("metrics endpoint stopped: {e}"),
                }
            })
        })
        .context("--metrics-addr: cannot start the server's thread")?;
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(())
}

async fn accept(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: wait, rather than spin.
                tracing::debug!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: this connection is closed unanswered.
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = Arc::clone(&metrics);
                async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = tokio::time::sleep(LIFETIME) => {
                    // Kept alive long enough: the answer in flight is
                    // finished, then the connection closed.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(HEAD_TIMEOUT, conn).await;
                }
            }
            drop(slot);
        });
    }
}

fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status, kind: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, OPENMETRICS, metrics.encode()),
        (&Method::GET, "/") => reply(
            StatusCode::OK,
            "text/plain",
            "credtrail-record: metrics at /metrics\n".into(),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
