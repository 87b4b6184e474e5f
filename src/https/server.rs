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

use super::held::{self, Head, HeldHandler, HeldRequest, Rewind};
use super::lean_tls::LeanTls;
use super::listen::BadListen;
use super::metrics::LimitRefusals;
use super::tls::{self, CertResolver, TlsError};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Everything that stops a server from starting. Each command wraps it in its own error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Listen(#[from] BadListen),
    /// `--request-timeout`, `--max-connections`.
    #[error("{0}")]
    Limit(#[from] LimitError),
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
            ServeError::Listen(_) | ServeError::Tls(_) | ServeError::Limit(_) => exit::USAGE,
            ServeError::Bind { .. } | ServeError::Signal(_) => exit::OTHER,
        }
    }
}

/// How every server reads requests and holds connections: the one place for the
/// per-connection policy of the webhook, the hub and the admin port, applied by the accept
/// loop ([`Limits::max_connections`]) and by the connection task, which reads each request
/// body itself before the router sees it ([`Limits::body_read`], [`Limits::max_body`]).
///
/// The body is copied into one buffer as it arrives, so what a connection holds is the bytes
/// it sent (at most twice, as the buffer grows) plus a fixed amount: the frames hyper and
/// rustls hand out keep their whole read buffer alive (about 4 KiB for a 1-byte TLS record)
/// and are dropped at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time a client may take for the TLS handshake.
    pub handshake: Duration,
    /// Longest time a client may take to send the request headers.
    pub header_read: Duration,
    /// Longest time from the end of the request headers to the end of its body; then the
    /// answer is `408` and the connection is closed.
    pub body_read: Duration,
    /// Largest request body, bytes: a larger `Content-Length` is answered `413` before any
    /// of the body is read; a chunked body is cut (`413`) when it passes this.
    pub max_body: usize,
    /// Most connections open at once; a connection beyond is closed as soon as it is
    /// accepted (plain HTTP first gets a `503`).
    pub max_connections: usize,
    /// Longest time the requests in flight get after shutdown starts.
    pub grace: Duration,
    /// Paths whose `POST` requests may be held long (the hub's long poll): the connection
    /// task reads them itself and holds no HTTP/1 buffers while they wait ([`super::held`]);
    /// every other request is hyper's. The limits above apply the same.
    pub held: &'static [&'static str],
}

impl Limits {
    /// The limits of the sidecar's admin port (`GET` only: no bodies to speak of); the
    /// webhook and the hub start from these and set their own body size and connections.
    pub const DEFAULT: Limits = Limits {
        handshake: Duration::from_secs(10),
        header_read: Duration::from_secs(10),
        body_read: Duration::from_secs(10),
        max_body: 16 * 1024,
        max_connections: 64,
        grace: Duration::from_secs(20),
        held: &[],
    };
}

/// Bounds of the limit flags of the webhook and the hub.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

/// A limit flag out of range; the message names the flag and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "--request-timeout must be between {MIN_REQUEST_TIMEOUT:?} and {MAX_REQUEST_TIMEOUT:?}, not {0:?}"
    )]
    RequestTimeout(Duration),
    #[error("--max-connections must be between 1 and {MAX_MAX_CONNECTIONS}, not {0}")]
    MaxConnections(usize),
}

impl Limits {
    /// The limits of the webhook or the hub (pure): their `--request-timeout` (the whole
    /// body) and `--max-connections` checked, and their largest body.
    pub fn server(
        request_timeout: Duration,
        max_connections: usize,
        max_body: usize,
    ) -> Result<Limits, LimitError> {
        if !(MIN_REQUEST_TIMEOUT..=MAX_REQUEST_TIMEOUT).contains(&request_timeout) {
            return Err(LimitError::RequestTimeout(request_timeout));
        }
        if !(1..=MAX_MAX_CONNECTIONS).contains(&max_connections) {
            return Err(LimitError::MaxConnections(max_connections));
        }
        Ok(Limits {
            body_read: request_timeout,
            max_connections,
            max_body,
            ..Limits::DEFAULT
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why the server answered a request itself, or closed a connection, instead of passing it
/// to the router: the `limit` label of `{server}_limit_refusals_total`
/// ([`super::metrics::LimitRefusals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body is larger than [`Limits::max_body`] (`413`).
    BodySize,
    /// The body took longer than [`Limits::body_read`] (`408`).
    BodyTime,
    /// [`Limits::max_connections`] were open: the new connection was closed.
    Connections,
    /// The body could not be read (bad chunked encoding, the client went away) (`400`).
    BodyBroken,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BodySize => "body_size",
            Refusal::BodyTime => "body_time",
            Refusal::Connections => "connections",
            Refusal::BodyBroken => "body_broken",
        }
    }
}

/// HTTPS, or plain HTTP (the sidecar's admin port, inside the pod's network).
#[derive(Clone)]
enum Transport {
    /// tokio-rustls for servers without held routes; [`LeanTls`] (the same config) for
    /// those with ([`Limits::held`]): its buffers are empty while a request waits.
    Tls(TlsAcceptor, Arc<rustls::ServerConfig>),
    Plain,
}

/// A bound listening socket, ready to [`serve`](Server::serve).
pub struct Server {
    listener: TcpListener,
    transport: Transport,
    limits: Limits,
    refusals: LimitRefusals,
    held: Option<HeldHandler>,
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
        let config = Arc::new(tls::server_config(resolver)?);
        let acceptor = TlsAcceptor::from(config.clone());
        let server = Server::bind(addr, Transport::Tls(acceptor, config)).await?;
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
            refusals: LimitRefusals::default(),
            held: None,
        })
    }

    /// Serves with `limits` instead of [`Limits::DEFAULT`].
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    /// Answers the requests of [`Limits::held`] read on the small path with `handler`
    /// instead of the router (which still answers those that go to hyper: other framings,
    /// HTTP/1.0). A held request then keeps only the handler's future.
    pub fn holding(mut self, handler: HeldHandler) -> Server {
        self.held = Some(handler);
        self
    }

    /// Counts what the limits refuse in `refusals` (registered in the server's metrics).
    pub fn counting(mut self, refusals: LimitRefusals) -> Server {
        self.refusals = refusals;
        self
    }

    /// The address bound (the port chosen, for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes; then stops accepting, asks open
    /// connections to close after their current request and waits for them (at most
    /// [`Limits::grace`]). The router sees each request with its whole body read
    /// ([`Limits`]) and the client's address as [`ConnectInfo<SocketAddr>`].
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()> + Send) {
        let Server {
            listener,
            transport,
            limits,
            refusals,
            held,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            transport: transport.clone(),
            limits,
            router,
            held,
            refusals: refusals.clone(),
        });
        let mut connections = JoinSet::new();
        let mut full = FullLog::default();
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
                    while connections.try_join_next().is_some() {}
                    if connections.len() >= limits.max_connections {
                        refusals.record(Refusal::Connections);
                        full.refused(limits.max_connections, peer);
                        refuse_connection(&transport, tcp);
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(shared.clone(), tcp, peer, stop_rx.clone()));
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

/// How often "too many connections" is logged at most.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs the connections refused at [`Limits::max_connections`], at most once per
/// [`FULL_LOG_EVERY`] (with how many since the last line).
#[derive(Default)]
struct FullLog {
    last: Option<tokio::time::Instant>,
    since: u64,
}

impl FullLog {
    fn refused(&mut self, max: usize, peer: SocketAddr) {
        self.since += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= FULL_LOG_EVERY)
        {
            tracing::warn!(
                max_connections = max,
                refused = self.since,
                %peer,
                "{max} connections are open: new connections are closed at once"
            );
            self.last = Some(now);
            self.since = 0;
        }
    }
}

/// The answer plain HTTP gets beyond [`Limits::max_connections`] (HTTPS is closed before
/// the handshake: an answer would cost one).
const FULL_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: application/json\r\nContent-Length: 37\r\n\r\n\
{\"error\":\"too many open connections\"}";

/// Closes a connection beyond the limit at once; plain HTTP first gets a `503` if the
/// socket takes it without waiting.
fn refuse_connection(transport: &Transport, tcp: TcpStream) {
    if matches!(transport, Transport::Plain) {
        let _ = tcp.try_write(FULL_ANSWER);
    }
    drop(tcp);
}

/// One client: the TLS handshake (HTTPS), then HTTP/1.1 until the client closes or the
/// server stops.
///
/// The task of a connection lives as long as the connection, and its size is that of its
/// largest state: the handshake and the requests are boxed, so that a held request's
/// connection keeps only what holding needs ([`held_requests`]).
async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let limits = &shared.limits;
    let client = Client {
        shared: shared.clone(),
        peer,
    };
    match &shared.transport {
        Transport::Plain => Box::pin(requests(tcp, client, stop)).await,
        // `let … else`, not `if let` around the requests: the handshake's result is not kept
        // in the task while they run.
        Transport::Tls(_, config) if !limits.held.is_empty() => {
            let accept = LeanTls::accept(tcp, config.clone());
            let Some(tls) = Box::pin(handshake(limits, peer, accept)).await else {
                return;
            };
            Box::pin(requests(tls, client, stop)).await;
        }
        Transport::Tls(acceptor, _) => {
            let accept = acceptor.accept(tcp);
            let Some(tls) = Box::pin(handshake(limits, peer, accept)).await else {
                return;
            };
            Box::pin(requests(tls, client, stop)).await;
        }
    }
}

/// The TLS handshake within [`Limits::handshake`]; `None`, logged, if it fails or takes
/// too long. Boxed by the caller, so that it is gone from the task once done.
async fn handshake<S>(
    limits: &Limits,
    peer: SocketAddr,
    accept: impl Future<Output = std::io::Result<S>>,
) -> Option<S> {
    match tokio::time::timeout(limits.handshake, accept).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The requests of one connection: those for [`Limits::held`] on the small path while they
/// come, then (from the first other request on) hyper's HTTP/1.1 server, which is given the
/// bytes read already (boxed: only a connection that needs it pays for it).
async fn requests<S>(mut io: S, client: Client, mut stop: tokio::sync::watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if client.shared.limits.held.is_empty() {
        return Box::pin(http(TokioIo::new(io), client, stop)).await;
    }
    if let Some(read) = held_requests(&mut io, &client, &mut stop).await {
        Box::pin(http(TokioIo::new(Rewind::new(read, io)), client, stop)).await;
    }
}

/// Bytes asked of the stream at a time while a request head is read.
const HEAD_READ: usize = 2048;

/// Serves the small path ([`held`]) until the connection ends (`None`) or a request comes
/// that is hyper's: then that request's bytes read so far.
///
/// Each request's head must arrive within [`Limits::header_read`] (else the connection is
/// closed, as hyper does), its body within [`Limits::body_read`] (else `408`). While the
/// router holds the request, the connection keeps only the stream, the router's future and
/// whatever the client sends early (a pipelined request, at most [`held::MAX_HEAD`] bytes):
/// reading, parsing and answering are boxed and gone by then. A client that closes drops
/// the held request.
async fn held_requests<S>(
    io: &mut S,
    client: &Client,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Out of its box at once: a box moved out of is freed only at the end of its scope.
        let head = match Box::pin(read_head(io, &mut buf, client, stop)).await {
            Next::Held(head) => *head,
            Next::Hyper => return Some(buf),
            Next::Done => return None,
        };
        let close = head.close;
        let request = Box::pin(read_held_body(io, &mut buf, head, client)).await?;
        let mut answer = client.hold(request);
        let response = tokio::select! {
            response = &mut answer => response,
            () = gone(io, &mut buf) => {
                tracing::debug!(peer = %client.peer, "the client went away while its request was held");
                return None;
            }
        };
        drop(answer);
        let close = close || *stop.borrow();
        match Box::pin(write_answer(io, response, close, &client.shared.limits)).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::debug!(peer = %client.peer, "connection ended: {e}");
                return None;
            }
        }
        if buf.is_empty() {
            buf = Vec::new();
        }
    }
}

/// What comes next on a connection of the small path.
enum Next {
    Held(Box<held::HeldHead>),
    /// A request for hyper (its bytes so far are in the buffer).
    Hyper,
    /// The connection is over (closed, failed, too slow, or the server stops while it is
    /// idle).
    Done,
}

/// Reads into `buf` until it holds a whole request head, within [`Limits::header_read`].
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    client: &Client,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Next {
    let limits = &client.shared.limits;
    let peer = client.peer;
    let deadline = tokio::time::Instant::now() + limits.header_read;
    loop {
        match held::classify(buf, limits.held, limits.max_body) {
            Head::Held(head) => return Next::Held(head),
            Head::Other => return Next::Hyper,
            Head::Partial => {}
        }
        let idle = buf.is_empty();
        buf.reserve(HEAD_READ);
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, io.read_buf(buf)) => read,
            _ = stop.wait_for(|stopping| *stopping), if idle => return Next::Done,
        };
        match read {
            Ok(Ok(0)) => return Next::Done,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, "connection ended: {e}");
                return Next::Done;
            }
            Err(_) => {
                tracing::debug!(%peer, "request head not received within {:?}", limits.header_read);
                return Next::Done;
            }
        }
    }
}

/// Reads the body of `head` (whose bytes start `buf`) within [`Limits::body_read`]; the
/// request for the router, and in `buf` what follows it (the next request's bytes). A
/// body too slow or cut short is refused as [`read_body`] refuses it, and the connection
/// closed (`None`).
async fn read_held_body<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    head: held::HeldHead,
    client: &Client,
) -> Option<HeldRequest> {
    let limits = &client.shared.limits;
    let total = head.len + head.content_length;
    let deadline = tokio::time::Instant::now() + limits.body_read;
    while buf.len() < total {
        if buf.len() == buf.capacity() {
            buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        }
        let refused = match tokio::time::timeout_at(deadline, io.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            Ok(Ok(_)) => Refused::broken("the client closed the connection"),
            Ok(Err(e)) => Refused::broken(e),
            Err(_) => Refused::too_slow(limits.body_read),
        };
        client.refused(&refused);
        let _ = write_answer(io, refused.response(), true, limits).await;
        return None;
    }
    let next = buf.split_off(total);
    let mut body = std::mem::replace(buf, next);
    body.drain(..head.len);
    Some(HeldRequest::new(client.peer, head, body))
}

/// Completes when the client closes the connection (or it fails); bytes it sends meanwhile
/// are kept in `early` (the next request), up to [`held::MAX_HEAD`], then no more is read.
async fn gone<S: AsyncRead + Unpin>(io: &mut S, early: &mut Vec<u8>) {
    let mut byte = [0u8; 1];
    while early.len() < held::MAX_HEAD {
        match io.read(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(_) => early.push(byte[0]),
        }
    }
    std::future::pending::<()>().await;
}

/// Writes `response` as hyper would ([`held::encode`]); with `close`, or when the answer
/// says `connection: close`, it says `connection: close` and then closes the stream.
/// Whether the connection goes on.
async fn write_answer<S: AsyncWrite + Unpin>(
    io: &mut S,
    response: Response,
    close: bool,
    limits: &Limits,
) -> std::io::Result<bool> {
    let (mut parts, body) = response.into_parts();
    let close = close || held::says_close(&parts.headers);
    if close {
        held::closing(&mut parts.headers);
    }
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let bytes = held::encode(parts.status, &parts.headers, &body, &date);
    drop(body);
    io.write_all(&bytes).await?;
    io.flush().await?;
    if close {
        // The TLS close_notify and FIN; a client that reads nothing cannot hold us.
        let _ = tokio::time::timeout(limits.handshake, io.shutdown()).await;
    }
    Ok(!close)
}

/// What every connection of a server is served with: one allocation per server, so that
/// a connection (whose task and futures keep their arguments for their whole life) keeps
/// one pointer to it.
struct Shared {
    transport: Transport,
    limits: Limits,
    router: Router,
    /// Answers the small path's requests instead of the router ([`Server::holding`]).
    held: Option<HeldHandler>,
    refusals: LimitRefusals,
}

/// What a connection's requests are served with.
#[derive(Clone)]
struct Client {
    shared: Arc<Shared>,
    peer: SocketAddr,
}

async fn http<I>(io: I, client: Client, mut stop: tokio::sync::watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let peer = client.peer;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(client.shared.limits.header_read);
    let service = hyper::service::service_fn(move |request| {
        let client = client.clone();
        async move { Ok::<_, Infallible>(client.answer(request).await) }
    });
    let conn = http.serve_connection(io, service);
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

impl Client {
    /// Reads the body within the limits, then passes the request to the router; or answers
    /// the refusal itself and closes the connection.
    async fn answer(self, request: Request<Incoming>) -> Response {
        let (mut parts, body) = request.into_parts();
        let body = match read_body(&parts.headers, body, &self.shared.limits).await {
            Ok(body) => body,
            Err(refused) => {
                self.refused(&refused);
                return refused.response();
            }
        };
        parts.extensions.insert(ConnectInfo(self.peer));
        self.route(Request::from_parts(parts, axum::body::Body::from(body)))
            .await
    }

    /// The answer to a request of the small path: the [`HeldHandler`]'s, else the
    /// router's.
    fn hold(
        &self,
        request: HeldRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>> {
        match &self.shared.held {
            Some(handler) => handler(request),
            None => Box::pin(self.route(request.into_routed())),
        }
    }

    /// The router's answer to a request read whole.
    fn route(
        &self,
        request: Request<axum::body::Body>,
    ) -> impl Future<Output = Response> + Send + 'static {
        let router = TowerToHyperService::new(self.shared.router.clone());
        async move {
            match hyper::service::Service::call(&router, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }

    /// Counts and logs a request the limits refused.
    fn refused(&self, refused: &Refused) {
        self.shared.refusals.record(refused.refusal);
        tracing::debug!(peer = %self.peer, limit = refused.refusal.label(), "{}", refused.message);
    }
}

/// A request the limits refused: what the client is told.
#[derive(Debug)]
struct Refused {
    refusal: Refusal,
    message: String,
}

impl Refused {
    /// The body could not be read: `reason` says why.
    fn broken(reason: impl std::fmt::Display) -> Refused {
        Refused {
            refusal: Refusal::BodyBroken,
            message: format!("the request body could not be read: {reason}"),
        }
    }

    /// The body did not arrive within `limit` ([`Limits::body_read`]).
    fn too_slow(limit: Duration) -> Refused {
        Refused {
            refusal: Refusal::BodyTime,
            message: format!("the request body was not received within {limit:?}"),
        }
    }

    fn status(&self) -> StatusCode {
        match self.refusal {
            Refusal::BodySize => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BodyTime => StatusCode::REQUEST_TIMEOUT,
            Refusal::Connections => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::BodyBroken => StatusCode::BAD_REQUEST,
        }
    }

    /// `{"error": MESSAGE}`, and the connection closes after it (the rest of the body is
    /// never read).
    fn response(&self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        (
            self.status(),
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONNECTION, "close"),
            ],
            body,
        )
            .into_response()
    }
}

/// Most bytes reserved for a body before they arrive (the declared length, up to this):
/// the buffer grows with what is received, not with what is announced.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Reads the whole body within [`Limits::body_read`] and [`Limits::max_body`], copying each
/// frame into one buffer as it arrives so that the frame (and the read buffer it keeps
/// alive) is released at once.
async fn read_body(
    headers: &HeaderMap,
    mut body: Incoming,
    limits: &Limits,
) -> Result<Vec<u8>, Refused> {
    let max = limits.max_body;
    let too_large = || Refused {
        refusal: Refusal::BodySize,
        message: format!("the request body is larger than {max} bytes"),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let reserve = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(RESERVE_AHEAD));
    let mut buf = Vec::with_capacity(reserve);
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(Refused::broken)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limits.body_read, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(refused)) => Err(refused),
        Err(_) => Err(Refused::too_slow(limits.body_read)),
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

    /// A held client's connection keeps its requests future for its whole life: what it
    /// takes beyond the stream is the per-server state behind one pointer, not copies of
    /// the limits and the router (416 bytes over a `TcpStream`; it was 672).
    #[tokio::test]
    async fn a_connection_keeps_small_futures() {
        fn size<F>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            transport: Transport::Plain,
            limits: Limits::DEFAULT,
            router: Router::new(),
            held: None,
            refusals: LimitRefusals::default(),
        });
        let client = Client {
            shared: shared.clone(),
            peer: addr,
        };
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let task = connection(shared, tcp, addr, stop.clone());
        assert!(
            size(&task) <= 256,
            "the connection task's future: {} bytes",
            size(&task)
        );
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let requests = requests(tcp, client, stop);
        assert!(
            size(&requests) <= 512,
            "the requests future: {} bytes",
            size(&requests)
        );
    }

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

    /// A plain-HTTP server with `limits` whose `POST /echo` answers the body's length and
    /// the client's address; stopped when the sender is dropped.
    async fn limited(
        limits: Limits,
    ) -> (SocketAddr, LimitRefusals, tokio::sync::oneshot::Sender<()>) {
        let refusals = LimitRefusals::default();
        let server = Server::http("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind")
            .with_limits(limits)
            .counting(refusals.clone());
        let addr = server.local_addr().expect("local addr");
        let echo = |ConnectInfo(peer): ConnectInfo<SocketAddr>, body: axum::body::Bytes| async move {
            format!("{} from {}", body.len(), peer.ip())
        };
        let router = router().route("/echo", axum::routing::post(echo));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(router, async {
            let _ = stopped.await;
        }));
        (addr, refusals, stop)
    }

    const SMALL: Limits = Limits {
        body_read: Duration::from_millis(300),
        max_body: 100,
        max_connections: 2,
        ..Limits::DEFAULT
    };

    fn status(answer: &str) -> &str {
        answer.split(' ').nth(1).unwrap_or("")
    }

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_size_and_time_limits() {
        let (addr, refusals, _stop) = limited(SMALL).await;
        let within =
            |r: &'static [u8]| tokio::time::timeout(Duration::from_secs(10), exchange(addr, r));
        // At the limit, in chunks: read whole; the router sees the client's address.
        let ok = within(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n01234567890123456789012345678901234567890123456789\r\n32\r\n01234567890123456789012345678901234567890123456789\r\n0\r\n\r\n").await.expect("in time");
        assert!(ok.ends_with("100 from 127.0.0.1"), "{ok}");
        // A declared length above the limit: 413 at once, nothing read, connection closed
        // (the client sends no body at all and still gets the answer).
        let big = within(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
            .await
            .expect("in time");
        assert_eq!(status(&big), "413", "{big}");
        assert!(big.contains("connection: close"), "{big}");
        assert!(
            big.ends_with("{\"error\":\"the request body is larger than 100 bytes\"}"),
            "{big}"
        );
        // A chunked body is cut when it passes the limit.
        let chunked = within(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n01234567890123456789012345678901234567890123456789\r\n33\r\n012345678901234567890123456789012345678901234567890\r\n").await.expect("in time");
        assert_eq!(status(&chunked), "413", "{chunked}");
        // A body that does not arrive in time: 408 and the connection closed (exchange
        // reads to the end: it returns only because the server closed).
        let started = std::time::Instant::now();
        let slow =
            within(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this")
                .await
                .expect("closed in time");
        assert_eq!(status(&slow), "408", "{slow}");
        assert!(
            started.elapsed() >= SMALL.body_read,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(refusals.count(Refusal::BodySize), 2);
        assert_eq!(refusals.count(Refusal::BodyTime), 1);
        assert_eq!(refusals.count(Refusal::Connections), 0);
    }

    #[tokio::test]
    async fn connections_beyond_the_most_are_refused_at_once_until_one_closes() {
        let (addr, refusals, _stop) = limited(SMALL).await;
        // Two idle connections hold the two places (each answered once, so they are open).
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write");
            let mut buf = [0u8; 256];
            let n = c.read(&mut buf).await.expect("read");
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            held.push(c);
        }
        let third = tokio::time::timeout(
            Duration::from_secs(5),
            exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await
        .expect("refused at once");
        assert_eq!(status(&third), "503", "{third}");
        assert!(
            third.ends_with("{\"error\":\"too many open connections\"}"),
            "{third}"
        );
        assert_eq!(refusals.count(Refusal::Connections), 1);
        drop(held.pop());
        let answer = within_deadline(addr).await;
        assert_eq!(status(&answer), "200", "{answer}");
    }

    /// `GET /healthz` until it is answered 200 (the server notices a closed connection
    /// after the client's close reaches it), at most 10 s.
    async fn within_deadline(addr: SocketAddr) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let a = exchange(
                addr,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await;
            if status(&a) == "200" || std::time::Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What the held route of [`holding`] has seen.
    #[derive(Default)]
    struct Seen {
        started: std::sync::atomic::AtomicUsize,
        dropped: std::sync::atomic::AtomicUsize,
    }

    /// Counts a held request dropped before its answer.
    struct Unanswered(Arc<Seen>, bool);
    impl Drop for Unanswered {
        fn drop(&mut self) {
            if !self.1 {
                self.0
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// A plain-HTTP server with `limits` whose `POST /held` (and `POST /echo` of [`limited`])
    /// are on the small path: `/held` answers the length of its body at once if the body is
    /// `now`, else once `release` is sent `true`.
    async fn holding(
        limits: Limits,
    ) -> (
        SocketAddr,
        Arc<Seen>,
        tokio::sync::watch::Sender<bool>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let seen = Arc::new(Seen::default());
        let (release, released) = tokio::sync::watch::channel(false);
        let server = Server::http("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind")
            .with_limits(Limits {
                held: &["/held", "/echo"],
                ..limits
            });
        let addr = server.local_addr().expect("local addr");
        let s = seen.clone();
        let held = move |body: axum::body::Bytes| {
            let (seen, mut released) = (s.clone(), released.clone());
            async move {
                seen.started
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut guard = Unanswered(seen, false);
                if &body[..] != b"now" {
                    let _ = released.wait_for(|r| *r).await;
                }
                guard.1 = true;
                format!("{} bytes", body.len())
            }
        };
        let echo = |ConnectInfo(peer): ConnectInfo<SocketAddr>, body: axum::body::Bytes| async move {
            format!("{} from {}", body.len(), peer.ip())
        };
        let router = router()
            .route("/held", axum::routing::post(held))
            .route("/echo", axum::routing::post(echo));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(router, async {
            let _ = stopped.await;
        }));
        (addr, seen, release, stop)
    }

    /// The answer without its `date` line (the only part that moves).
    fn dateless(answer: &str) -> String {
        answer
            .split("\r\n")
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[tokio::test]
    async fn the_small_path_answers_byte_for_byte_as_hyper_does() {
        let (hyper_addr, _, _hyper_stop) = limited(SMALL).await;
        let (small_addr, _, _, _small_stop) = holding(SMALL).await;
        let both = |request: &'static [u8]| async move {
            let within =
                |addr| tokio::time::timeout(Duration::from_secs(10), exchange(addr, request));
            let a = within(hyper_addr).await.expect("hyper in time");
            let b = within(small_addr).await.expect("small path in time");
            (a, b)
        };
        // An answer, a refusal of a body too slow (hyper writes `connection: close`).
        for request in [
            &b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"[..],
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nhello",
        ] {
            let (a, b) = both(request).await;
            assert!(a.contains("\r\ndate: "), "{a}");
            assert!(b.contains("\r\ndate: "), "{b}");
            assert_eq!(dateless(&a), dateless(&b));
        }
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_and_others_go_to_hyper() {
        let (addr, seen, _release, _stop) = holding(SMALL).await;
        let request = b"POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nnow\
POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nnow\
GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
POST /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nnow";
        let answer = tokio::time::timeout(Duration::from_secs(10), exchange(addr, request))
            .await
            .expect("in time");
        let statuses: Vec<&str> = answer
            .split("HTTP/1.1 ")
            .skip(1)
            .map(|a| a.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(statuses, ["200", "200", "200", "200"], "{answer}");
        assert_eq!(answer.matches("3 bytes").count(), 3, "{answer}");
        assert!(answer.contains("\r\n\r\nok\n"), "{answer}");
        // The last one was hyper's: the connection went to hyper at /healthz.
        assert_eq!(seen.started.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn garbage_other_framings_and_large_bodies_are_hyper_s_answers() {
        let (addr, _, _release, _stop) = holding(SMALL).await;
        let within =
            |r: &'static [u8]| tokio::time::timeout(Duration::from_secs(10), exchange(addr, r));
        let garbage = within(b"\x16\x03\x01 not HTTP\r\n\r\n")
            .await
            .expect("in time");
        assert_eq!(status(&garbage), "400", "{garbage}");
        let chunked = within(b"POST /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnow\r\n0\r\n\r\n").await.expect("in time");
        assert!(chunked.ends_with("3 bytes"), "{chunked}");
        let big = within(b"POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
            .await
            .expect("in time");
        assert_eq!(status(&big), "413", "{big}");
    }

    #[tokio::test]
    async fn a_slow_head_is_closed_at_the_header_deadline_and_a_slow_body_gets_408() {
        let limits = Limits {
            header_read: Duration::from_millis(300),
            ..SMALL
        };
        let (addr, _, _release, _stop) = holding(limits).await;
        let started = std::time::Instant::now();
        let slow = tokio::time::timeout(
            Duration::from_secs(10),
            exchange(addr, b"POST /held HTTP/1.1\r\nHost: x\r\nContent-Len"),
        )
        .await
        .expect("closed in time");
        assert_eq!(slow, "", "closed without an answer, as hyper does");
        assert!(
            started.elapsed() >= limits.header_read,
            "{:?}",
            started.elapsed()
        );
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            exchange(
                addr,
                b"POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nnow",
            ),
        )
        .await
        .expect("closed in time");
        assert_eq!(status(&body), "408", "{body}");
        assert!(body.contains("connection: close"), "{body}");
    }

    /// Polls `count` until it is `n`, at most 10 s.
    async fn until(count: &std::sync::atomic::AtomicUsize, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count.load(std::sync::atomic::Ordering::SeqCst) != n {
            assert!(std::time::Instant::now() < deadline, "never {n}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_client_that_goes_away_drops_its_held_request_and_one_that_stays_is_answered() {
        let (addr, seen, release, stop) = holding(SMALL).await;
        let request = b"POST /held HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwait";
        let mut gone = TcpStream::connect(addr).await.expect("connect");
        gone.write_all(request).await.expect("write");
        until(&seen.started, 1).await;
        drop(gone);
        until(&seen.dropped, 1).await;

        // Held, then the server stops: answered when released, then closed (no
        // `Connection: close` asked for).
        let mut stays = TcpStream::connect(addr).await.expect("connect");
        stays.write_all(request).await.expect("write");
        until(&seen.started, 2).await;
        stop.send(()).expect("running");
        release.send(true).expect("held");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stays.read_to_end(&mut answer))
            .await
            .expect("closed in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n4 bytes"), "{answer}");
        assert_eq!(seen.dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn the_limit_flags_are_checked() {
        let ok = Limits::server(Duration::from_secs(10), 1024, 8).expect("valid");
        assert_eq!(
            (ok.body_read, ok.max_connections, ok.max_body),
            (Duration::from_secs(10), 1024, 8)
        );
        assert_eq!(ok.handshake, Limits::DEFAULT.handshake);
        assert_eq!(
            Limits::server(Duration::from_millis(999), 1, 8)
                .expect_err("short")
                .to_string(),
            "--request-timeout must be between 1s and 600s, not 999ms"
        );
        assert_eq!(
            Limits::server(Duration::from_secs(1), 0, 8)
                .expect_err("none")
                .to_string(),
            "--max-connections must be between 1 and 1000000, not 0"
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
