//! A text-mode (nc-style) connection to a live sockchat-server, as the lab
//! uses it: send a line, read lines with deadlines, keep what was seen for
//! the report. Used by the remote scenarios and by the text-sender child.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The first address `server` (HOST:PORT) resolves to.
pub fn resolve(server: &str) -> anyhow::Result<std::net::SocketAddr> {
    server
        .to_socket_addrs()
        .with_context(|| format!("bad server address {server:?}"))?
        .next()
        .with_context(|| format!("{server:?} resolves to nothing"))
}

/// A text-mode (nc-style) connection to the server.
pub struct TextConn {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// Every line received, for the report when something goes wrong.
    pub seen: Vec<String>,
}

impl TextConn {
    pub fn connect(server: &str) -> anyhow::Result<Self> {
        let addr = resolve(server)?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .with_context(|| format!("connect {server}"))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(TextConn {
            stream,
            reader,
            seen: Vec::new(),
        })
    }

    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(format!("{line}\n").as_bytes())
    }

    /// The next line, or `None` if none came within `limit` (or the
    /// connection ended).
    pub fn line(&mut self, limit: Duration) -> Option<String> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(limit.max(Duration::from_millis(1))))
            .ok()?;
        let mut s = String::new();
        match self.reader.read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let l = s.trim_end_matches(['\r', '\n']).to_string();
                self.seen.push(l.clone());
                Some(l)
            }
        }
    }

    /// Read lines until one satisfies `pred`.
    pub fn wait_for(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.line(left) {
                Some(l) if pred(&l) => return Some(l),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// Read and discard until the server has been quiet for `quiet`, so
    /// that nothing is left unread in our receive queue.
    pub fn drain(&mut self, quiet: Duration) {
        while self.line(quiet).is_some() {}
    }
}
