//! `ssm-injector probe URL`: a tiny HTTP GET for container health checks (ECS runs a
//! command inside the container, and the image has no shell or curl).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0:?} is not a URL like http://127.0.0.1:8099/readyz")]
    BadUrl(String),
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
}

/// Splits `http://HOST:PORT/PATH` into the address and the path.
pub fn parse(url: &str) -> Result<(String, String), ProbeError> {
    let bad = || ProbeError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
        && !path.contains(|c: char| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(bad());
    }
    Ok((addr.to_owned(), path.to_owned()))
}

/// GETs the URL; Ok when the answer is 2xx within `timeout`.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let (addr, path) = parse(url)?;
    let failed = |reason: String| ProbeError::Failed {
        url: url.to_owned(),
        reason,
    };
    let work = async {
        let mut stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| failed(format!("cannot send: {e}")))?;
        let mut head = vec![0u8; 64];
        let n = stream
            .read(&mut head)
            .await
            .map_err(|e| failed(format!("cannot read: {e}")))?;
        let line = String::from_utf8_lossy(&head[..n]);
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| failed("no HTTP status in the answer".into()))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(failed(format!("HTTP {status}")))
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            parse("http://127.0.0.1:8099/readyz").unwrap(),
            ("127.0.0.1:8099".into(), "/readyz".into())
        );
        assert_eq!(parse("http://localhost:80").unwrap().1, "/");
        for bad in [
            "https://x:1/",
            "http://:80/",
            "http://x/",
            "http://x:0/",
            "ftp://x:1",
            "http://x:1/a b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    async fn serve_once(answer: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer.as_bytes()).await;
        });
        format!("http://{addr}/readyz")
    }

    #[tokio::test]
    async fn a_2xx_answer_passes_and_anything_else_fails() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        assert!(probe(&ok, Duration::from_secs(5)).await.is_ok());
        let not_ready = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let e = probe(&not_ready, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().contains("HTTP 503"), "{e}");
    }

    #[tokio::test]
    async fn a_closed_port_fails_with_a_reason() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", l.local_addr().unwrap());
        drop(l);
        let e = probe(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().contains("cannot connect"), "{e}");
    }
}
