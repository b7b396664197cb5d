//! The accept loop: a bounded number of open connections, a header-read timeout and an
//! idle timeout per connection, and graceful draining at shutdown.
//!
//! axum's `serve` has none of these knobs, so connections are served with hyper's
//! HTTP/1 builder directly (the same one axum uses inside). When the connection cap is
//! reached, the loop stops accepting until one closes (new clients wait in the kernel's
//! backlog) instead of accepting and dropping, so a flood of idle sockets costs at most
//! `max_connections` descriptors and is cleared by the timeouts.

use crate::http::AppState;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A socket that records when bytes last moved in either direction.
struct Tracked {
    stream: TcpStream,
    started: Instant,
    last_activity_ms: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last_activity_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Resolves once no byte moved for `idle` (checked at a quarter of it).
async fn idle_for(started: Instant, last_activity_ms: &AtomicU64, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    loop {
        let now_ms = started.elapsed().as_millis() as u64;
        let quiet_ms = now_ms.saturating_sub(last_activity_ms.load(Ordering::Relaxed));
        if quiet_ms >= idle_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(
            (idle_ms - quiet_ms).max(idle_ms / 4).max(1),
        ))
        .await;
    }
}

/// Serves one connection until it ends, is idle too long, or shutdown drains it
/// (requests in flight finish first, then the connection closes).
async fn serve_connection(stream: TcpStream, app: Router, state: AppState) {
    let limits = state.limits.clone();
    let started = Instant::now();
    let last_activity_ms = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        stream,
        started,
        last_activity_ms: last_activity_ms.clone(),
    });
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)))
        .keep_alive(true)
        // Pipelined requests (several written before the first answer is read) get
        // their answers written together instead of one flush each.
        .pipeline_flush(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut shutdown = state.shutdown_signal();
    let idle = Duration::from_millis(limits.idle_timeout_ms.max(1));
    let mut draining = *shutdown.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = idle_for(started, &last_activity_ms, idle), if !draining => {
                state.metrics_extra.idle_closed.fetch_add(1, Ordering::Relaxed);
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            changed = shutdown.changed(), if !draining => {
                if changed.is_err() || *shutdown.borrow() {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Accepts connections until `shutdown` resolves, then waits (bounded) for open
/// connections to drain.
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max_connections = state.limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors (EMFILE) and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let state = state.clone();
        state
            .metrics_extra
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            serve_connection(stream, app, state.clone()).await;
            state
                .metrics_extra
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    state.begin_shutdown();
    drop(listener);
    // Every connection drains on the shutdown signal; wait for them, but not forever.
    let drain = Duration::from_millis(state.limits.request_timeout_ms.saturating_add(1_000));
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; shutting down anyway");
    }
}

/// Connection figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    pub connections_open: AtomicU64,
    /// Connections closed by the idle timeout.
    pub idle_closed: AtomicU64,
}
