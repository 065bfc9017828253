//! A minimal HTTP/1.1 keep-alive client for load generation: one request at a time per
//! connection, nothing between the socket and the measurement (no pool, no redirects,
//! no TLS). Responses must carry `Content-Length`, as every latchkey and baseline
//! response does.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The cookie refresh chains follow.
const REFRESH_COOKIE: &[u8] = b"lk_refresh=";

pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    /// Bytes of the previous response, dropped before the next one is read.
    consumed: usize,
}

/// A response, borrowed from the connection's buffer until the next request.
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
    /// The value of a `Set-Cookie: lk_refresh=…` header, if there was one.
    pub refresh_cookie: Option<&'a str>,
}

impl Response<'_> {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Where the parts of a parsed head sit in the buffer.
struct Head {
    status: u16,
    len: usize,
    content_length: usize,
    cookie: Option<(usize, usize)>,
}

fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid("malformed response head")),
    };
    let mut content_length = None;
    let mut cookie = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        } else if header.name.eq_ignore_ascii_case("set-cookie")
            && header.value.starts_with(REFRESH_COOKIE)
        {
            let value = &header.value[REFRESH_COOKIE.len()..];
            let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
            let start = value.as_ptr() as usize - buf.as_ptr() as usize;
            cookie = Some((start, start + end));
        }
    }
    let status = response.code.unwrap_or(0);
    // 204 and 304 have no body and need no length (RFC 9110 §8.6).
    let content_length = match status {
        204 | 304 => content_length.unwrap_or(0),
        _ => content_length.ok_or_else(|| invalid("no Content-Length"))?,
    };
    Ok(Some(Head {
        status,
        len,
        content_length,
        cookie,
    }))
}

impl Connection {
    pub async fn open(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: vec![0; 16 * 1024],
            filled: 0,
            consumed: 0,
        })
    }

    /// Sends one complete request and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response<'_>> {
        self.buf.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        self.stream.write_all(request).await?;
        let head = loop {
            if let Some(head) = parse_head(&self.buf[..self.filled])? {
                break head;
            }
            self.read_more().await?;
        };
        let total = head.len + head.content_length;
        while self.filled < total {
            self.read_more().await?;
        }
        self.consumed = total;
        let cookie = match head.cookie {
            Some((start, end)) => Some(
                std::str::from_utf8(&self.buf[start..end])
                    .map_err(|_| invalid("cookie is not UTF-8"))?,
            ),
            None => None,
        };
        Ok(Response {
            status: head.status,
            body: &self.buf[head.len..total],
            refresh_cookie: cookie,
        })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= 1024 * 1024 {
                return Err(invalid("response over 1 MiB"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += n;
        Ok(())
    }
}

/// A `GET` with optional extra header lines (each ending in `\r\n`).
pub fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}\r\n").into_bytes()
}

/// A `POST` with a JSON body.
pub fn post_json(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A bodiless `POST` carrying one cookie.
pub fn post_with_cookie(path: &str, cookie: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}
