//! The small path for requests that are held long (the hub's long poll, [`Limits::held`]):
//! the connection task reads and parses the request head itself, into a buffer it frees
//! once the request is read, so that a held request keeps no HTTP/1 read or write buffer
//! (hyper keeps 8 KiB of each for a connection's whole life). Every other request goes to
//! hyper as before, with the bytes read so far replayed first ([`Rewind`]).
//!
//! [`classify`] is pure: bytes in, what to do with them out. The server does the I/O
//! ([`super::server`]).
//!
//! [`Limits::held`]: super::Limits::held

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest request head read on the small path; a longer one goes to hyper, which has its
/// own limit (and answers 431 past it).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines of a request on the small path (hyper's own default is 100; a longer
/// head goes to hyper, which answers 431).
const MAX_HEADERS: usize = 64;

/// What the bytes read so far are.
#[derive(Debug)]
pub enum Head {
    /// Not a whole request head yet (and shorter than [`MAX_HEAD`]).
    Partial,
    /// A request for the small path.
    Held(Box<HeldHead>),
    /// Anything else (another route, another framing, a bad or long head): hyper's.
    Other,
}

/// A request head for the small path: `POST` to a held path, HTTP/1.1, a `Content-Length`
/// body (no `Transfer-Encoding`, no `Expect`, no `Upgrade`).
#[derive(Debug)]
pub struct HeldHead {
    /// Bytes of the head, up to and with its blank line.
    pub len: usize,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The declared body length (at most `max_body`).
    pub content_length: usize,
    /// The client asked to close the connection after the answer (`Connection: close`).
    pub close: bool,
}

/// What `buf` (the start of a request) is, for a server whose small-path routes are
/// `held` and whose largest body is `max_body` (larger ones go to hyper, which refuses them
/// with 413 as every server does).
pub fn classify(buf: &[u8], held: &[&str], max_body: usize) -> Head {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut lines);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Head::Other,
    };
    if len > MAX_HEAD
        || request.method != Some("POST")
        || request.version != Some(1)
        || !request.path.is_some_and(|p| held.contains(&p))
    {
        return Head::Other;
    }
    let Some(uri) = request.path.and_then(|p| p.parse::<Uri>().ok()) else {
        return Head::Other;
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    let mut content_length = None;
    let mut close = false;
    for line in request.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line.name.as_bytes()),
            HeaderValue::from_bytes(line.value),
        ) else {
            return Head::Other;
        };
        if name == header::TRANSFER_ENCODING || name == header::EXPECT || name == header::UPGRADE {
            return Head::Other;
        }
        if name == header::CONTENT_LENGTH {
            // Exactly one, all digits: anything else is hyper's to judge.
            let digits = line.value;
            if content_length.is_some()
                || digits.is_empty()
                || digits.len() > 19
                || !digits.iter().all(u8::is_ascii_digit)
            {
                return Head::Other;
            }
            let n = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            content_length = Some(n);
        }
        if name == header::CONNECTION {
            for token in line.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Head::Other;
                }
            }
        }
        headers.append(name, value);
    }
    match content_length.and_then(|n| usize::try_from(n).ok()) {
        Some(content_length) if content_length <= max_body => Head::Held(Box::new(HeldHead {
            len,
            uri,
            headers,
            content_length,
            close,
        })),
        _ => Head::Other,
    }
}

/// The bytes of an answer as hyper writes them to an HTTP/1.1 request: the status line,
/// the headers in order (lower case; the values of `connection` joined), `content-length`
/// if it is not among them, `date`, the blank line, the body. The caller adds
/// `connection: close` when the connection closes after it ([`closing`]).
pub fn encode(status: StatusCode, headers: &HeaderMap, body: &[u8], date: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, values) in headers.keys().map(|name| (name, headers.get_all(name))) {
        if name == header::DATE {
            continue;
        }
        // Each value on its own line, but `connection` on one, joined by ", " (as hyper).
        let mut first = true;
        for value in values {
            if first || name != header::CONNECTION {
                if !first {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
            } else {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(value.as_bytes());
            first = false;
        }
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::CONTENT_LENGTH) {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// Marks an answer after which the connection closes (`connection: close`, added as hyper
/// adds it when keep-alive is off).
pub fn closing(headers: &mut HeaderMap) {
    if !says_close(headers) {
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Whether `connection` says `close`.
pub fn says_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// A request of the small path, read whole: what a [`HeldHandler`] is given.
#[derive(Debug)]
pub struct HeldRequest {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: axum::body::Bytes,
}

/// Answers the requests of the small path without the router (the hub's long poll): the
/// connection keeps only the handler's own future while the request waits, not axum's
/// boxed handler and the router's future around it ([`super::Server::holding`]).
pub type HeldHandler = std::sync::Arc<
    dyn Fn(
            HeldRequest,
        ) -> Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>
        + Send
        + Sync,
>;

impl HeldRequest {
    /// The request read from `head` and its `body`.
    pub fn new(peer: std::net::SocketAddr, head: HeldHead, body: Vec<u8>) -> HeldRequest {
        HeldRequest {
            peer,
            uri: head.uri,
            headers: head.headers,
            body: axum::body::Bytes::from(body),
        }
    }

    /// The same request as the router sees it (with the client's address as
    /// `ConnectInfo`), for servers without a [`HeldHandler`].
    pub fn into_routed(self) -> axum::http::Request<axum::body::Body> {
        let mut request = axum::http::Request::new(axum::body::Body::from(self.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri;
        *request.version_mut() = axum::http::Version::HTTP_11;
        *request.headers_mut() = self.headers;
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        request
    }
}

/// A stream that first yields `read` (bytes taken from `inner` already), then reads
/// `inner`; writes go to `inner`.
pub struct Rewind<S> {
    read: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(read: Vec<u8>, inner: S) -> Rewind<S> {
        Rewind { read, at: 0, inner }
    }
}

/// Copies what `buf` takes of `pending[*at..]`, and frees `pending` once it is all taken.
/// Whether there was anything to copy.
pub fn drain_into(pending: &mut Vec<u8>, at: &mut usize, buf: &mut ReadBuf<'_>) -> bool {
    if *at >= pending.len() {
        return false;
    }
    let n = buf.remaining().min(pending.len() - *at);
    buf.put_slice(&pending[*at..*at + n]);
    *at += n;
    if *at == pending.len() {
        *pending = Vec::new();
        *at = 0;
    }
    true
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if drain_into(&mut this.read, &mut this.at, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    const HELD: &[&str] = &["/v1/watch"];

    fn held(buf: &[u8]) -> HeldHead {
        match classify(buf, HELD, 100) {
            Head::Held(h) => *h,
            other => panic!("not held: {other:?}"),
        }
    }

    fn is_other(buf: &[u8]) -> bool {
        matches!(classify(buf, HELD, 100), Head::Other)
    }

    #[test]
    fn a_watch_with_a_length_is_held_with_its_headers() {
        let head = b"POST /v1/watch HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer t\r\n\
Content-Length: 12\r\nConnection: close\r\n\r\n{\"names\":[]}";
        let h = held(head);
        assert_eq!(h.len, head.len() - 12);
        assert_eq!(h.content_length, 12);
        assert!(h.close);
        assert_eq!(h.uri, "/v1/watch");
        assert_eq!(h.headers[header::AUTHORIZATION], "Bearer t");
        assert_eq!(h.headers[header::HOST], "hub");
        let keep = held(b"POST /v1/watch HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        assert!(!keep.close);
        let peer = "192.0.2.1:4000".parse().expect("address");
        let r = HeldRequest::new(peer, keep, Vec::new()).into_routed();
        assert_eq!((r.method(), r.uri().path()), (&Method::POST, "/v1/watch"));
        let info = r
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        assert_eq!(info.map(|i| i.0), Some(peer));
    }

    #[test]
    fn part_of_a_head_waits_for_more_up_to_the_most() {
        assert!(matches!(classify(b"POST /v1/wa", HELD, 100), Head::Partial));
        assert!(matches!(classify(b"", HELD, 100), Head::Partial));
        let mut long = b"POST /v1/watch HTTP/1.1\r\nX-A: ".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert!(is_other(&long), "a head that fills the buffer is hyper's");
    }

    #[test]
    fn everything_else_is_hyper_s() {
        for head in [
            &b"GET /v1/watch HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
            b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST /v1/watch?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST /v1/watch HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 1\r\nConnection: upgrade\r\n\r\n",
            b"POST /v1/watch HTTP/1.1\r\nContent-Length: 1\r\nUpgrade: h2c\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"POST /v1/watch HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(is_other(head), "{:?}", String::from_utf8_lossy(head));
        }
        let mut many = b"POST /v1/watch HTTP/1.1\r\nContent-Length: 0\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(is_other(&many), "too many headers");
    }

    #[test]
    fn an_answer_is_written_as_hyper_writes_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let out = encode(
            StatusCode::OK,
            &headers,
            b"{}",
            "Sun, 06 Dec 2026 15:00:00 GMT",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
date: Sun, 06 Dec 2026 15:00:00 GMT\r\n\r\n{}"
        );
    }

    #[test]
    fn a_closing_answer_says_so_once() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!says_close(&headers));
        closing(&mut headers);
        closing(&mut headers);
        assert!(says_close(&headers));
        let out = encode(StatusCode::REQUEST_TIMEOUT, &headers, b"", "D");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 408 Request Timeout\r\nconnection: keep-alive, close\r\ncontent-length: 0\r\ndate: D\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn rewind_replays_then_reads_on() {
        let inner: &[u8] = b" world";
        let mut r = Rewind::new(b"hello".to_vec(), inner);
        let mut all = String::new();
        r.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }

    proptest! {
        /// Any bytes: no panic, and a held head is inside the bytes with a length within
        /// the most.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Head::Held(h) = classify(&bytes, HELD, 100) {
                prop_assert!(h.len <= bytes.len());
                prop_assert!(h.content_length <= 100);
            }
        }

        /// A well-formed watch request, cut anywhere, is partial until its head is whole.
        #[test]
        fn a_head_cut_anywhere_is_partial_until_whole(
            token in "[A-Za-z0-9._-]{1,64}",
            len in 0usize..=100,
            cut in 0usize..400,
        ) {
            let head = format!(
                "POST /v1/watch HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\nContent-Length: {len}\r\n\r\n"
            );
            let cut = cut.min(head.len());
            match classify(&head.as_bytes()[..cut], HELD, 100) {
                Head::Partial => prop_assert!(cut < head.len()),
                Head::Held(h) => {
                    prop_assert_eq!(cut, head.len());
                    prop_assert_eq!(h.len, head.len());
                    prop_assert_eq!(h.content_length, len);
                }
                Head::Other => prop_assert!(false, "a good head cut at {}", cut),
            }
        }
    }
}
