//! A server TLS stream whose buffers are its own and empty while it waits: rustls's
//! unbuffered API ([`UnbufferedServerConnection`]) over a [`TcpStream`]. The buffered
//! `ServerConnection` keeps a 4 KiB record buffer for a connection's whole life; here the
//! bytes received but not yet decrypted, the bytes decrypted but not yet read and the bytes
//! encrypted but not yet sent are three vectors that are freed whenever they are empty, so a
//! connection that waits (the hub's held long poll, [`super::Limits::held`]) holds only
//! rustls's session state.
//!
//! Used for the servers with held routes; the others keep tokio-rustls.

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time.
const READ: usize = 4096;
/// Most bytes of application data encrypted per write (one record).
const WRITE: usize = 16 * 1024;
/// Most undecrypted bytes held: a TLS record is at most 16 KiB + 2 KiB, a handshake
/// message at most 64 KiB (rustls's own limit).
const MAX_INCOMING: usize = 64 * 1024 + 5;

/// A TLS server connection over TCP; see the module documentation.
pub struct LeanTls {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Received, not yet processed by rustls.
    incoming: Vec<u8>,
    /// Decrypted, not yet read (from `plain_at`).
    plain: Vec<u8>,
    plain_at: usize,
    /// Encrypted, not yet sent (from `sent`).
    outgoing: Vec<u8>,
    sent: usize,
    /// The peer sent close_notify, or closed the socket: reads end.
    eof: bool,
    close_queued: bool,
}

/// What one call into rustls did.
#[derive(PartialEq, Eq)]
enum Step {
    /// Something was handled: call again.
    Progress,
    /// rustls needs more bytes from the peer (`writable`: application data may be sent).
    NeedRead { writable: bool },
    /// The connection is closed for reading.
    Eof,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Appends what `write` puts into a buffer to `out`, growing the buffer as rustls asks.
fn append<E>(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    size: impl Fn(&E) -> Option<usize>,
) -> io::Result<()>
where
    E: std::fmt::Debug,
{
    let start = out.len();
    let mut room = 256;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => {
                out.truncate(start);
                match size(&e) {
                    Some(required) if required > room => room = required,
                    _ => return Err(invalid(format!("{e:?}"))),
                }
            }
        }
    }
}

fn encode_size(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn encrypt_size(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

impl LeanTls {
    /// The server side of a TLS handshake on `tcp` (the caller bounds its time).
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<LeanTls> {
        let conn = UnbufferedServerConnection::new(config).map_err(invalid)?;
        let mut tls = LeanTls {
            tcp,
            conn,
            incoming: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            sent: 0,
            eof: false,
            close_queued: false,
        };
        std::future::poll_fn(|cx| tls.poll_handshake(cx)).await?;
        Ok(tls)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.step()? {
                Step::Progress => continue,
                Step::Eof => {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Step::NeedRead { writable } => {
                    ready!(self.poll_send(cx))?;
                    if writable && !self.conn.is_handshaking() {
                        return Poll::Ready(Ok(()));
                    }
                    if ready!(self.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    }

    /// One call into rustls with the bytes received; what it gives is handled (decrypted
    /// data kept, records to send queued) and the bytes it consumed dropped.
    fn step(&mut self) -> io::Result<Step> {
        let UnbufferedStatus { mut discard, state } =
            self.conn.process_tls_records(&mut self.incoming);
        let step = match state.map_err(invalid)? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(invalid)?;
                    discard += record.discard;
                    self.plain.extend_from_slice(record.payload);
                }
                Step::Progress
            }
            ConnectionState::EncodeTlsData(mut data) => {
                append(&mut self.outgoing, |b| data.encode(b), encode_size)?;
                Step::Progress
            }
            ConnectionState::TransmitTlsData(data) => {
                // Sent before the next read or write ([`LeanTls::poll_send`]).
                data.done();
                Step::Progress
            }
            ConnectionState::BlockedHandshake => Step::NeedRead { writable: false },
            ConnectionState::WriteTraffic(_) => Step::NeedRead { writable: true },
            ConnectionState::PeerClosed | ConnectionState::Closed => Step::Eof,
            _ => return Err(invalid("unexpected TLS state (early data is not accepted)")),
        };
        if discard > 0 {
            self.incoming.drain(..discard);
        }
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        if step == Step::Eof {
            self.eof = true;
        }
        Ok(step)
    }

    /// Reads what the socket has into `incoming` (nothing is allocated while it has
    /// nothing). The bytes read; 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.incoming.len() >= MAX_INCOMING {
            return Poll::Ready(Err(invalid("TLS record too large")));
        }
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            let start = self.incoming.len();
            self.incoming.resize(start + READ, 0);
            let read = self.tcp.try_read(&mut self.incoming[start..]);
            let n = *read.as_ref().unwrap_or(&0);
            self.incoming.truncate(start + n);
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
            match read {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends what is queued; the buffer is freed once it is all sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Brings rustls to the state where application data may be written (queuing what it
    /// has to send first), then calls `write` with it.
    fn with_write_traffic(
        &mut self,
        mut write: impl FnMut(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            // No new bytes: what is received waits for the next read.
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut []);
            debug_assert_eq!(discard, 0);
            match state.map_err(invalid)? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    return write(&mut traffic, &mut self.outgoing);
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    append(&mut self.outgoing, |b| data.encode(b), encode_size)?;
                }
                ConnectionState::TransmitTlsData(data) => data.done(),
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(invalid)?;
                        self.plain.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::PeerClosed => self.eof = true,
                _ => return Err(io::ErrorKind::BrokenPipe.into()),
            }
        }
    }
}

impl AsyncRead for LeanTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if super::held::drain_into(&mut this.plain, &mut this.plain_at, buf) {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match this.step()? {
                Step::Progress => continue,
                Step::Eof => continue,
                Step::NeedRead { .. } => {
                    // Records rustls queued (tickets, alerts) go out before we wait; a
                    // socket that takes nothing now does not stop the read.
                    if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    if ready!(this.poll_fill(cx))? == 0 {
                        // Closed without close_notify: the end, as tokio-rustls reads it.
                        this.eof = true;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for LeanTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() - this.sent >= WRITE {
            ready!(this.poll_send(cx))?;
        }
        let n = data.len().min(WRITE);
        this.with_write_traffic(|traffic, out| {
            append(out, |b| traffic.encrypt(&data[..n], b), encrypt_size)
        })?;
        // Start sending; the rest goes with the next write or the flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_queued {
            this.close_queued = true;
            // A connection that cannot write any more just closes.
            let _ = this.with_write_traffic(|traffic, out| {
                append(out, |b| traffic.queue_close_notify(b), encrypt_size)
            });
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The server's config (a self-signed certificate for `localhost`, as the servers make
    /// it: [`super::super::tls::server_config`]) and a client config that trusts it, for
    /// `versions`.
    fn configs(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        let pair = super::super::tls::parse_pair(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            "cert",
            "key",
        )
        .expect("pair");
        let resolver = Arc::new(super::super::tls::CertResolver::new(pair));
        let server = super::super::tls::server_config(resolver).expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert.der().to_vec()))
            .expect("root");
        let client = rustls::ClientConfig::builder_with_provider(super::super::tls::provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// A client (tokio-rustls) and the server end ([`LeanTls`]) of one connection.
    async fn connected(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (tokio_rustls::client::TlsStream<TcpStream>, LeanTls) {
        let (server, client) = configs(versions);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = async {
            let (tcp, _) = listener.accept().await.expect("accept");
            LeanTls::accept(tcp, server).await.expect("handshake")
        };
        let connect = async {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = ServerName::try_from("localhost").expect("name");
            tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .expect("client handshake")
        };
        let (lean, client) = tokio::join!(accept, connect);
        (client, lean)
    }

    #[tokio::test]
    async fn data_goes_both_ways_over_tls_1_3_and_1_2_and_the_buffers_are_freed() {
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let (mut client, mut server) = connected(versions).await;
            // Larger than a record both ways.
            let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            let sending = big.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&sending).await.expect("client write");
                client.flush().await.expect("client flush");
                let mut back = vec![0u8; 100_000];
                client.read_exact(&mut back).await.expect("client read");
                client.shutdown().await.expect("client close");
                back
            });
            let mut got = vec![0u8; big.len()];
            server.read_exact(&mut got).await.expect("server read");
            assert!(got == big, "{versions:?}: the bytes arrive whole");
            assert_eq!(
                (server.incoming.capacity(), server.plain.capacity()),
                (0, 0),
                "nothing held once read"
            );
            server.write_all(&got).await.expect("server write");
            server.flush().await.expect("server flush");
            assert_eq!(server.outgoing.capacity(), 0, "nothing held once sent");
            let back = writer.await.expect("client");
            assert!(back == big, "{versions:?}: the bytes come back whole");
            // The client's close_notify: the end of the stream.
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.expect("eof");
            assert!(rest.is_empty());
            server.shutdown().await.expect("server close");
        }
    }

    #[tokio::test]
    async fn a_client_that_is_not_tls_fails_the_handshake() {
        let (server, _) = configs(&[&rustls::version::TLS13]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (tcp, _) = listener.accept().await.expect("accept");
        assert!(LeanTls::accept(tcp, server).await.is_err());
        drop(plain);
    }
}
