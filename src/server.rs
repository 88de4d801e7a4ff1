//! The listener: accept loop, hyper-util's auto builder (HTTP/1.1 and h2c on
//! one port) behind a bounded read of the first bytes, serving each
//! connection's requests with `stack::inbound`, and graceful shutdown. On SIGTERM/SIGINT
//! /ready turns 503 at once while the listener keeps serving for
//! `shutdown_delay`; then it stops accepting and in-flight requests get
//! `shutdown_grace` to finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

mod connection;

use connection::{refuse, Connection};

use crate::app::App;
use crate::config::{subject_cn, Config, DynamicConfig};
use crate::proxy::headers::ClientAddr;
use crate::stack::{inbound, Conn, ProbesOnly, MAX_HEADER_BYTES, MAX_HEADER_FIELDS};
use crate::tenant::InFlight;

/// hyper's HTTP/1 read buffer cap. Request headers beyond it get hyper's own
/// 431; between 64 KiB and this, `App` answers 431 itself.
const H1_MAX_BUF: usize = 128 * 1024;
/// HPACK counts 32 bytes of overhead per field on top of name and value.
const H2_MAX_HEADER_LIST: u32 = (MAX_HEADER_BYTES + 32 * MAX_HEADER_FIELDS) as u32;

/// Serve until a shutdown signal, then drain. Returns when done.
pub async fn run(config: &Config, app: Arc<App>, listener: TcpListener) -> io::Result<()> {
    serve(config, app, listener, shutdown_signal()?).await
}

/// Serve until `stop` resolves, then drain (tests pass their own `stop`).
pub async fn serve(
    config: &Config,
    app: Arc<App>,
    listener: TcpListener,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    tracing::info!(listen = %listener.local_addr()?, "serving");

    let mut limits = Limits::new(&app.current().config);
    accept_until(&listener, &graceful, &app, stop, &mut limits).await;
    app.start_draining();
    tracing::info!(delay = ?config.startup.shutdown_delay, "shutdown: /ready is 503, still serving");
    accept_until(
        &listener,
        &graceful,
        &app,
        tokio::time::sleep(config.startup.shutdown_delay),
        &mut limits,
    )
    .await;
    drop(listener);
    tracing::info!(grace = ?config.startup.shutdown_grace, "shutdown: listener closed, draining in-flight requests");
    match tokio::time::timeout(config.startup.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("shutdown: all connections closed"),
        Err(_) => {
            tracing::warn!(grace = ?config.startup.shutdown_grace, "shutdown: grace period over, exiting with requests in flight")
        }
    }
    Ok(())
}

/// Serve one connection over any byte stream as the listener serves an
/// accepted one (no `max_connections`, no TLS), until it ends. The fuzz
/// target `http_exchange` drives the whole service through this.
pub async fn serve_stream<I>(config: &Config, app: Arc<App>, io: I, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let conn = Connection {
        builder: Arc::new(connection_builder(config)),
        watcher: graceful.watcher(),
        app,
        peer: ClientAddr::new(peer, false),
        first_bytes_timeout: config.header_read_timeout,
        probes_only: None,
        _slot: None,
    };
    conn.serve(io, None, Vec::new()).await;
}

/// Connections admitted beyond `max_connections` that may only ask for
/// /health, /ready or /metrics: idle or slow clients holding every slot
/// can't fail kubelet's probes or the scrape.
const PROBE_RESERVE: usize = 8;
/// A reserve connection must send its request this fast (or within
/// `header_read_timeout`, if shorter) and is closed after one answer.
const PROBE_FIRST_BYTES: Duration = Duration::from_secs(2);

/// What the accept loop takes from the config in force: the connection
/// builders (`header_read_timeout` and the HTTP limits) and
/// `max_connections` with the probe reserve beyond it. A reload rebuilds
/// the builders for the connections after it and moves the cap; the
/// counter of open connections is kept, so a reload never admits past it.
struct Limits {
    /// The config these were made from.
    config: Arc<DynamicConfig>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    probe_builder: Arc<auto::Builder<TokioExecutor>>,
    /// Every open connection holds a slot; without `max_connections` the
    /// cap is `usize::MAX`, so one set later counts the ones already open.
    connections: Arc<InFlight>,
    probe_reserve: Arc<InFlight>,
}

impl Limits {
    fn new(config: &Arc<DynamicConfig>) -> Self {
        Limits {
            config: config.clone(),
            builder: Arc::new(connection_builder(config)),
            probe_builder: Arc::new(probe_builder(config)),
            connections: InFlight::new(config.max_connections.unwrap_or(usize::MAX)),
            probe_reserve: InFlight::new(PROBE_RESERVE),
        }
    }

    /// Follow the config in force (a pointer compare when it is the same).
    fn follow(&mut self, config: &Arc<DynamicConfig>) {
        if Arc::ptr_eq(&self.config, config) {
            return;
        }
        self.config = config.clone();
        self.builder = Arc::new(connection_builder(config));
        self.probe_builder = Arc::new(probe_builder(config));
        self.connections
            .set_max(config.max_connections.unwrap_or(usize::MAX));
    }
}

/// HTTP/1.1 only, one request per connection, headers within
/// `PROBE_FIRST_BYTES`: for the probe reserve.
fn probe_builder(config: &DynamicConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout.min(PROBE_FIRST_BYTES))
        .keep_alive(false)
        .max_buf_size(H1_MAX_BUF)
        .max_headers(MAX_HEADER_FIELDS);
    builder
}

/// Serve /health, /ready and /metrics on `admin_listen`: no client limits,
/// no TLS, nothing else (404), until the process exits.
pub async fn serve_admin(app: Arc<App>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(admin_listen = %addr, "serving probes and metrics");
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(H1_MAX_BUF)
        .max_headers(MAX_HEADER_FIELDS);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let stack = inbound(Arc::new(Conn {
            app: app.clone(),
            peer: Arc::new(ClientAddr::new(peer, false)),
            peer_cn: None,
            seen: Arc::default(),
            probes_only: Some(ProbesOnly::Admin),
        }));
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = TowerToHyperService::new(stack);
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn connection_builder(config: &DynamicConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(H1_MAX_BUF)
        .max_headers(MAX_HEADER_FIELDS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

async fn accept_until(
    listener: &TcpListener,
    graceful: &GracefulShutdown,
    app: &Arc<App>,
    stop: impl Future<Output = ()>,
    limits: &mut Limits,
) {
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let state = app.current();
                limits.follow(&state.config);
                let mut first_bytes_timeout = state.config.header_read_timeout;
                let mut conn_builder = limits.builder.clone();
                let mut probes_only = None;
                let tls = state.config.tls.as_ref().map(|t| t.config.clone());
                let conn_slot = match limits.connections.try_acquire() {
                    Some(slot) => slot,
                    // Full: one probe-or-metrics request, if the small
                    // reserve has room; else 503 at once.
                    None => match limits.probe_reserve.try_acquire() {
                        Some(slot) => {
                            probes_only = Some(ProbesOnly::Reserve);
                            conn_builder = limits.probe_builder.clone();
                            first_bytes_timeout = first_bytes_timeout.min(PROBE_FIRST_BYTES);
                            slot
                        }
                        // A TLS client expects a handshake, not a
                        // plaintext answer: it only sees the close.
                        None if tls.is_some() => continue,
                        None => {
                            tokio::spawn(refuse(stream));
                            continue;
                        }
                    },
                };
                let conn = Connection {
                    builder: conn_builder,
                    watcher: graceful.watcher(),
                    app: app.clone(),
                    peer: ClientAddr::new(peer, tls.is_some()),
                    first_bytes_timeout,
                    probes_only,
                    _slot: Some(conn_slot),
                };
                match tls {
                    None => {
                        tokio::spawn(conn.serve(stream, None, Vec::new()));
                    }
                    Some(tls) => {
                        tokio::spawn(async move {
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                            match tokio::time::timeout(
                                conn.first_bytes_timeout,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(stream)) => {
                                    let chain = stream.get_ref().1.peer_certificates();
                                    let cn = chain
                                        .and_then(|c| c.first())
                                        .and_then(subject_cn)
                                        .map(Arc::<str>::from);
                                    let chain: Vec<_> = chain
                                        .unwrap_or_default()
                                        .iter()
                                        .map(|c| c.clone().into_owned())
                                        .collect();
                                    conn.serve(stream, cn, chain).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// SIGTERM and SIGINT handlers, registered now, before the listener is
/// announced: a signal that arrives before the first poll is still caught
/// and never gets the default action (exit by signal, no drain).
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown signal received");
    })
}
