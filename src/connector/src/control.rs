//! The local control endpoint: connect, disconnect and state over plain HTTP/1.
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `GET /state` | none | `200`, the state as JSON (see [`crate::State::to_json`]) |
//! | `POST /connect` | [`ConnectorHandle::connect`] | `200`, `{"requested": "connect", "state": ...}` |
//! | `POST /disconnect` | [`ConnectorHandle::disconnect`] | `200`, `{"requested": "disconnect", "state": ...}` |
//!
//! There is no authentication: bind it to a loopback address only (the CLI refuses anything
//! else). A request that carries an `Origin` or `Sec-Fetch-Site` field comes from a web
//! browser, maybe on behalf of some web page, and is refused with `403`, as is one whose
//! `Host` is not a loopback name or address (DNS rebinding).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use crate::ConnectorHandle;

/// Longest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client has to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests served at once.
const MAX_CONCURRENT: usize = 16;

/// Serves the control endpoint on `listener` until the connector stops.
pub async fn serve(handle: ConnectorHandle, listener: TcpListener) {
    let mut states = handle.subscribe();
    let stopped = states.wait_for(|s| matches!(s, crate::State::Stopped(_)));
    tokio::pin!(stopped);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "control endpoint listening");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => return,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of descriptors and the like: let it pass rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(&handle, stream, peer)).await;
            drop(permit);
        });
    }
}

async fn answer(handle: &ConnectorHandle, mut stream: TcpStream, peer: SocketAddr) {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_REQUEST {
            return respond(&mut stream, 431, "{\"error\": \"request too large\"}").await;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (
        request_line.next().unwrap_or_default(),
        request_line.next().unwrap_or_default(),
    );
    let mut host_ok = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "origin" || name == "sec-fetch-site" {
            return respond(
                &mut stream,
                403,
                "{\"error\": \"browser requests are refused\"}",
            )
            .await;
        }
        if name == "host" {
            host_ok = is_loopback_host(value.trim());
        }
    }
    if !host_ok {
        return respond(
            &mut stream,
            403,
            "{\"error\": \"Host must be a loopback address\"}",
        )
        .await;
    }
    debug!(%peer, method, path, "control request");
    let requested = match (method, path) {
        ("GET", "/state") => None,
        ("POST", "/connect") => {
            handle.connect();
            Some("connect")
        }
        ("POST", "/disconnect") => {
            handle.disconnect();
            Some("disconnect")
        }
        (_, "/state" | "/connect" | "/disconnect") => {
            return respond(&mut stream, 405, "{\"error\": \"method not allowed\"}").await;
        }
        _ => return respond(&mut stream, 404, "{\"error\": \"not found\"}").await,
    };
    let state = handle.state().to_json();
    let body = match requested {
        None => state,
        Some(what) => serde_json::json!({ "requested": what, "state": state }),
    };
    respond(&mut stream, 200, &body.to_string()).await;
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Client side, for `sluice ctl`: sends `method path` to the endpoint at `addr` and returns the
/// status and body.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let host = match addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut reply = Vec::new();
        (&mut stream)
            .take(MAX_REQUEST as u64 * 8)
            .read_to_end(&mut reply)
            .await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer")
        })?;
    Ok((status, body.trim_end().to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_hosts_pass() {
        for ok in [
            "127.0.0.1:9",
            "localhost",
            "LOCALHOST:80",
            "[::1]:5",
            "127.3.4.5",
        ] {
            assert!(super::is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example", "192.0.2.1:80", "[2001:db8::1]:80", ""] {
            assert!(!super::is_loopback_host(bad), "{bad}");
        }
    }
}
