//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: one thread, one request per
//! connection, replies chosen by the request path, every request counted.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the server sends for a path.
pub enum Reply {
    /// `200 OK` and the whole body, with or without `Content-Length` (then close-delimited).
    Body { body: Vec<u8>, content_length: bool },
    /// A status line with a short text body.
    Status(u16, &'static str),
    /// `200 OK` announcing `announced` bytes, then only `body`, then the connection closes.
    Cut { announced: u64, body: Vec<u8> },
}

/// A running server; it lives until the test process ends.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    hits: Arc<AtomicUsize>,
}

impl Server {
    /// Serve `route(path)` for every request.
    pub fn start(route: impl Fn(&str) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(path) = read_request_path(&mut stream) else {
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                // The client may hang up early (e.g. on an oversized announcement): ignore errors.
                let _ = respond(&mut stream, route(&path));
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        Server { base, hits }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn refused_base() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Read the request head (up to 16 KiB) and return its path.
fn read_request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
    line.split_whitespace().nth(1).map(str::to_string)
}

fn respond(stream: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Body { body, content_length } => {
            let length = if content_length {
                format!("Content-Length: {}\r\n", body.len())
            } else {
                String::new()
            };
            write!(stream, "HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n")?;
            stream.write_all(&body)?;
        }
        Reply::Status(code, text) => {
            write!(
                stream,
                "HTTP/1.1 {code} {text}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )?;
        }
        Reply::Cut { announced, body } => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
            )?;
            stream.write_all(&body)?;
        }
    }
    stream.flush()
}
