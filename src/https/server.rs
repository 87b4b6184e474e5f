//! The one server of the webhook, the hub and the sidecar's admin port: bind the listen
//! address ([`Server::https`], [`Server::http`]), then an accept loop with one task per
//! connection (for HTTPS a TLS handshake with a time limit, then hyper's HTTP/1.1 server
//! over the router) until the shutdown future completes ([`Server::serve`]); then it stops
//! accepting, asks open connections to close after their current request and waits for
//! them (at most [`Limits::grace`]). Plain HTTP sent to the HTTPS port gets no answer: the
//! handshake fails and the connection is closed.
//!
//! How connections are read and held is decided in one place, [`Limits`], applied by the
//! accept loop and the connection task: a new limit goes there, not into a router.

use super::listen::BadListen;
use super::tls::{self, CertResolver, TlsError};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Everything that stops a server from starting. Each command wraps it in its own error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Listen(#[from] BadListen),
    /// The certificate files, or the TLS set-up.
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers (SIGTERM, SIGINT, SIGHUP): {0}")]
    Signal(#[source] std::io::Error),
}

impl ServeError {
    /// The process exit code ([`crate::exit`]): a bad `--listen` or certificate files are
    /// usage errors (2); a port taken or signals are other errors (1).
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            ServeError::Listen(_) | ServeError::Tls(_) => exit::USAGE,
            ServeError::Bind { .. } | ServeError::Signal(_) => exit::OTHER,
        }
    }
}

/// How every server reads requests and holds connections: the one place for the
/// per-connection policy of the webhook, the hub and the admin port.
///
/// Still to come here (issue 16, hostile clients): a deadline for reading a request body,
/// the largest body (today each router's own: the webhook's `DefaultBodyLimit`, the hub's
/// `hub_protocol::MAX_BODY`), and the most connections open at once (checked by the accept
/// loop before it spawns a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time a client may take for the TLS handshake.
    pub handshake: Duration,
    /// Longest time a client may take to send the request headers.
    pub header_read: Duration,
    /// Longest time the requests in flight get after shutdown starts.
    pub grace: Duration,
}

impl Limits {
    /// The limits of every server.
    pub const DEFAULT: Limits = Limits {
        handshake: Duration::from_secs(10),
        header_read: Duration::from_secs(10),
        grace: Duration::from_secs(20),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// HTTPS, or plain HTTP (the sidecar's admin port, inside the pod's network).
#[derive(Clone)]
enum Transport {
    Tls(TlsAcceptor),
    Plain,
}

/// A bound listening socket, ready to [`serve`](Server::serve).
pub struct Server {
    listener: TcpListener,
    transport: Transport,
    limits: Limits,
}

impl Server {
    /// The webhook's and the hub's start-up: HTTPS with the certificates of `resolver`
    /// (TLS 1.2+, [`tls::server_config`]), SIGTERM, SIGINT and SIGHUP caught from now on
    /// (the returned [`StopSignal`]), then `addr` bound. No HTTPS before a certificate is
    /// in hand: make the resolver first.
    pub async fn https(
        addr: SocketAddr,
        resolver: Arc<CertResolver>,
    ) -> Result<(Server, StopSignal), ServeError> {
        let stop = StopSignal::install(resolver.clone())?;
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(resolver)?));
        let server = Server::bind(addr, Transport::Tls(acceptor)).await?;
        Ok((server, stop))
    }

    /// The sidecar's admin port: plain HTTP on `addr`. It handles no signal: the watch
    /// loop does, and stops the server with the future given to [`Server::serve`].
    pub async fn http(addr: SocketAddr) -> Result<Server, ServeError> {
        Server::bind(addr, Transport::Plain).await
    }

    async fn bind(addr: SocketAddr, transport: Transport) -> Result<Server, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Server {
            listener,
            transport,
            limits: Limits::DEFAULT,
        })
    }

    /// The address bound (the port chosen, for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes; then stops accepting, asks open
    /// connections to close after their current request and waits for them (at most
    /// [`Limits::grace`]).
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()> + Send) {
        let Server {
            listener,
            transport,
            limits,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: wait a little, go on.
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(
                        transport.clone(),
                        limits,
                        tcp,
                        peer,
                        router.clone(),
                        stop_rx.clone(),
                    ));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(limits.grace, drain).await.is_err() {
            tracing::warn!("requests still open after {:?}: closing them", limits.grace);
        }
    }
}

/// One client: the TLS handshake (HTTPS), then HTTP/1.1 until the client closes or the
/// server stops.
async fn connection(
    transport: Transport,
    limits: Limits,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    match transport {
        Transport::Plain => http(TokioIo::new(tcp), limits, peer, router, stop).await,
        Transport::Tls(acceptor) => {
            match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => http(TokioIo::new(tls), limits, peer, router, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    limits: Limits,
    peer: SocketAddr,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let conn = http.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
    }
}

/// The signals of the webhook and the hub, caught from [`StopSignal::install`] on: SIGTERM
/// and SIGINT stop the server; SIGHUP checks the serving certificate now (the files are
/// re-read, or with `--tls-secret` the CA Secret) and never stops it.
pub struct StopSignal {
    term: Signal,
    int: Signal,
    hup: Signal,
    resolver: Arc<CertResolver>,
}

impl StopSignal {
    /// Catches SIGTERM, SIGINT and SIGHUP from now on; SIGHUP asks the keeper of
    /// `resolver` for a check ([`CertResolver::check_now`]).
    pub fn install(resolver: Arc<CertResolver>) -> Result<StopSignal, ServeError> {
        let caught = |kind| signal(kind).map_err(ServeError::Signal);
        Ok(StopSignal {
            term: caught(SignalKind::terminate())?,
            int: caught(SignalKind::interrupt())?,
            hup: caught(SignalKind::hangup())?,
            resolver,
        })
    }

    /// Completes at the first SIGTERM or SIGINT; each SIGHUP meanwhile is logged and asks
    /// for a certificate check.
    pub async fn wait(mut self) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    match self.resolver.origin() {
                        tls::Origin::Files { cert, key } => tracing::info!(
                            cert = %cert.display(),
                            key = %key.display(),
                            "SIGHUP: re-reading the certificate files now"
                        ),
                        tls::Origin::Secret => {
                            tracing::info!("SIGHUP: re-reading the CA Secret and checking the serving certificate now");
                        }
                    }
                    self.resolver.check_now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request on a new connection; the whole answer as text.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn router() -> Router {
        Router::new().route(
            "/healthz",
            axum::routing::get(super::super::routes::healthz),
        )
    }

    #[tokio::test]
    async fn plain_http_answers_on_a_real_socket_and_shuts_down_gracefully() {
        let server = Server::http("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let addr = server.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(router(), async {
            let _ = stopped.await;
        }));
        let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let answer = tokio::time::timeout(Duration::from_secs(10), exchange(addr, request))
            .await
            .expect("answered in time");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");

        stop.send(()).expect("server still running");
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("shut down in time")
            .expect("no panic");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer accepting"
        );
    }

    #[tokio::test]
    async fn a_port_taken_is_named_and_exits_1() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("local addr");
        let e = Server::http(addr).await.err().expect("the port is taken");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{e}"
        );
        assert_eq!(e.exit_code(), crate::exit::OTHER);
        let e = ServeError::from(super::super::listen::parse_listen("x").expect_err("bad"));
        assert_eq!(e.exit_code(), crate::exit::USAGE);
    }
}
