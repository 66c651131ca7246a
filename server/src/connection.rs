//! A TCP socket and its framing, nothing about commands (in the spirit of
//! mini-redis's `Connection`): the first-byte detection of framed vs text,
//! the preamble, length-prefixed frames and text lines.
//!
//! [`Connection::on_readable`] reads once into a per-thread scratch buffer
//! and hands *every* complete frame or line of that read to the caller, so
//! the caller can fan out a read's worth of chat at once. Only an incomplete
//! trailing frame/line is copied into the connection's own `BytesMut`, and
//! that buffer is freed as soon as it is empty: an idle connection owns no
//! read buffer. Keeping the tail in the struct makes the read cancel-safe
//! inside `select!`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use sockchat_shared::ClientMsg;
use sockchat_shared::codec::{self, DecodeError};
use sockchat_shared::proto::PREAMBLE_LEN;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::hub::Format;

/// Size of the per-thread read buffer.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    /// Reads land here first; only an incomplete tail is copied into the
    /// connection. One per runtime thread, never held across an await.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// One unit of input, as the caller sees it.
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// A framed client's preamble: valid (answer with ours) or not (answer
    /// with ours, then the error, then end the connection).
    Preamble(Result<(), DecodeError>),
    /// A framed client's message.
    Msg(ClientMsg),
    /// A text user's line, without its `\n` (and `\r`); invalid UTF-8 is
    /// replaced by U+FFFD.
    Line(Cow<'a, str>),
    /// A text line longer than the limit: ignored, the user is told.
    LineTooLong,
    /// A bad frame (length, tag, fields, UTF-8): the connection must end.
    Bad(DecodeError),
}

/// What one [`Connection::on_readable`] call did.
#[derive(Debug)]
pub(crate) enum Read<B> {
    /// Spurious readiness: nothing was read.
    Nothing,
    /// Bytes were read and every complete unit handled.
    Handled,
    /// The handler stopped with this value (the rest of the read stays
    /// buffered: [`Connection::process_buffered`] hands it over later).
    Stopped(B),
    /// `read` returned 0: the peer sent FIN (a final unterminated text line
    /// was handed over first).
    Eof,
    /// The kernel reported an error.
    Failed(io::Error),
}

/// A TCP socket and its framing state.
pub(crate) struct Connection {
    stream: Arc<TcpStream>,
    format: Format,
    /// Incomplete frame/line carried over to the next read; empty (no
    /// allocation) most of the time.
    pending: BytesMut,
    preamble_done: bool,
    /// Text mode: skipping the rest of an over-long line.
    discarding: bool,
    max_line: usize,
    max_frame: usize,
}

/// The first read's size: a framed client's preamble + hello or a typed
/// line. More stays in the kernel for the next read.
const FIRST_READ: usize = 512;

/// Read once (waiting for readiness) into `buf`: the first bytes, for
/// [`detect`].
async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(FIRST_READ);
    loop {
        stream.readable().await?;
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// How the first bytes went.
pub(crate) enum Detected {
    /// The format, and the bytes read so far (the caller hands them to
    /// [`Connection::new`]).
    Format(Format, BytesMut),
    Eof,
    Failed(io::Error),
}

/// Framed clients start with a NUL byte (no person types one first); a
/// client silent for `wait` (nc waiting for a prompt) is a text user.
pub(crate) async fn detect(stream: &TcpStream, wait: Duration) -> Detected {
    let mut first = BytesMut::new();
    match tokio::time::timeout(wait, read_some(stream, &mut first)).await {
        Err(_) => Detected::Format(Format::Text, first),
        Ok(r) => classify(r, first),
    }
}

/// [`detect`] without waiting: `None` while nothing has arrived. A framed
/// client sends its preamble and Hello right after the handshake, so they
/// are usually there by the time its task first runs; read straight from
/// the socket, because tokio would first wait for its I/O driver to report
/// the new socket readable: a task wake-up, and the `wait` timer set and
/// cancelled, per connection (issue 10's churn). Tokio's readiness is
/// untouched: its next read finds what is left, or nothing and waits.
pub(crate) fn detect_now(stream: &TcpStream) -> Option<Detected> {
    let mut buf = [0u8; FIRST_READ];
    let sock = socket2::SockRef::from(stream);
    let mut reader: &socket2::Socket = &sock;
    match io::Read::read(&mut reader, &mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            None
        }
        r => {
            let n = r.as_ref().map_or(0, |n| *n);
            Some(classify(r, BytesMut::from(&buf[..n])))
        }
    }
}

/// What the first read (`r`, which put `first` in the buffer) says.
fn classify(r: io::Result<usize>, first: BytesMut) -> Detected {
    match r {
        Ok(0) => Detected::Eof,
        Ok(_) if first.first() == Some(&0) => Detected::Format(Format::Framed, first),
        Ok(_) => Detected::Format(Format::Text, first),
        Err(e) => Detected::Failed(e),
    }
}

impl Connection {
    /// `first`: the bytes [`detect`] read. `max_line`: the longest text
    /// line accepted; `max_frame`: the longest frame payload.
    pub(crate) fn new(
        stream: Arc<TcpStream>,
        format: Format,
        first: BytesMut,
        max_line: usize,
        max_frame: usize,
    ) -> Self {
        Connection {
            stream,
            format,
            pending: first,
            preamble_done: false,
            discarding: false,
            max_line,
            max_frame,
        }
    }

    pub(crate) fn stream(&self) -> &Arc<TcpStream> {
        &self.stream
    }

    /// Hand every complete unit already buffered (the first bytes) to `f`.
    pub(crate) fn process_buffered<B>(
        &mut self,
        mut f: impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if self.pending.is_empty() {
            return ControlFlow::Continue(());
        }
        let mut buf = std::mem::take(&mut self.pending);
        let (used, flow) = self.process(&buf, &mut f);
        buf.advance(used);
        if !buf.is_empty() {
            self.pending = BytesMut::from(&buf[..]);
        }
        flow
    }

    /// Read once (the socket is readable) and hand every complete unit to
    /// `f`, in order, until it breaks.
    pub(crate) fn on_readable<B>(
        &mut self,
        mut f: impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> Read<B> {
        SCRATCH_BUF.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let n = match self.stream.try_read(&mut scratch[..]) {
                Ok(0) => return self.on_eof(&mut f),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::Nothing,
                Err(e) => return Read::Failed(e),
            };
            let flow = if self.pending.is_empty() {
                let data = &scratch[..n];
                let (used, flow) = self.process(data, &mut f);
                // Kept after a break too: a parked session (a password
                // being checked) handles the rest once it resumes.
                if used < n {
                    self.pending = BytesMut::from(&data[used..]);
                }
                flow
            } else {
                let mut buf = std::mem::take(&mut self.pending);
                buf.extend_from_slice(&scratch[..n]);
                let (used, flow) = self.process(&buf, &mut f);
                buf.advance(used);
                if !buf.is_empty() {
                    self.pending = buf;
                }
                flow
            };
            match flow {
                ControlFlow::Continue(()) => Read::Handled,
                ControlFlow::Break(b) => Read::Stopped(b),
            }
        })
    }

    /// FIN: a text user's last line counts even without its `\n` (`printf
    /// 'hi' | nc ...`); an incomplete frame is simply dropped.
    fn on_eof<B>(&mut self, f: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>) -> Read<B> {
        let rest = std::mem::take(&mut self.pending);
        if self.format == Format::Text && !self.discarding && !rest.is_empty() {
            let mut line = &rest[..];
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if let ControlFlow::Break(b) = f(Frame::Line(String::from_utf8_lossy(line))) {
                return Read::Stopped(b);
            }
        }
        Read::Eof
    }

    /// Handle every complete unit in `data`; returns how many bytes were used.
    fn process<B>(
        &mut self,
        data: &[u8],
        f: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> (usize, ControlFlow<B>) {
        match self.format {
            Format::Framed => self.process_framed(data, f),
            Format::Text => self.process_text(data, f),
        }
    }

    fn process_framed<B>(
        &mut self,
        data: &[u8],
        f: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> (usize, ControlFlow<B>) {
        let mut pos = 0;
        if !self.preamble_done {
            if data.len() < PREAMBLE_LEN {
                return (0, ControlFlow::Continue(()));
            }
            self.preamble_done = true;
            pos = PREAMBLE_LEN;
            let r = codec::check_preamble(&data[..PREAMBLE_LEN]).map(|_| ());
            let bad = r.is_err();
            let flow = f(Frame::Preamble(r));
            if bad || flow.is_break() {
                return (pos, flow);
            }
        }
        loop {
            // The one frame splitter (shared with the client, the bots and
            // the codec's proptests): the length is checked before waiting
            // for the payload.
            let (payload, used) = match codec::split_frame(&data[pos..], self.max_frame) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return (data.len(), f(Frame::Bad(e))),
            };
            pos += used;
            let flow = match codec::decode_client(payload) {
                Ok(msg) => f(Frame::Msg(msg)),
                Err(e) => f(Frame::Bad(e)),
            };
            if flow.is_break() {
                return (pos, flow);
            }
        }
        (pos, ControlFlow::Continue(()))
    }

    fn process_text<B>(
        &mut self,
        data: &[u8],
        f: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> (usize, ControlFlow<B>) {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    pos += i + 1;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let mut line = &rest[..i];
                    if let Some(l) = line.strip_suffix(b"\r") {
                        line = l;
                    }
                    let flow = if line.len() > self.max_line {
                        f(Frame::LineTooLong)
                    } else {
                        f(Frame::Line(String::from_utf8_lossy(line)))
                    };
                    if flow.is_break() {
                        return (pos, flow);
                    }
                }
                None => {
                    if self.discarding {
                        return (data.len(), ControlFlow::Continue(()));
                    }
                    if rest.len() > self.max_line {
                        self.discarding = true;
                        return (data.len(), f(Frame::LineTooLong));
                    }
                    break;
                }
            }
        }
        (pos, ControlFlow::Continue(()))
    }

    /// Read and discard until EOF, an error or the deadline, so unread data
    /// never turns our close into RST. (Reads go to the thread's scratch
    /// buffer: a buffer here would sit in every connection's future.)
    pub(crate) async fn drain(&self, until: Instant) {
        let stream = &self.stream;
        let _ = tokio::time::timeout_at(until, async {
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                let r = SCRATCH_BUF.with(|cell| stream.try_read(&mut cell.borrow_mut()[..]));
                match r {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connected pair on loopback: (client, server side).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        (c, s)
    }

    /// Wait (bounded) until the server side has `n` bytes queued, without
    /// reading them.
    async fn queued(s: &TcpStream, n: usize) {
        let mut buf = [0u8; 64];
        for _ in 0..500 {
            if s.peek(&mut buf).await.expect("peek") >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} bytes never arrived");
    }

    /// `detect_now` reads what is already there without waiting (framed,
    /// text, EOF) and says `None`, reading nothing, while nothing arrived;
    /// `detect` then still finds the bytes that come later.
    #[tokio::test]
    async fn detect_now_reads_what_is_there_and_never_waits() {
        let (mut c, s) = pair().await;
        assert!(detect_now(&s).is_none(), "nothing sent yet");
        c.write_all(&[0, b'S', b'C', b'K', 1]).await.expect("write");
        queued(&s, 5).await;
        match detect_now(&s) {
            Some(Detected::Format(Format::Framed, first)) => assert_eq!(&first[..], b"\0SCK\x01"),
            _ => panic!("framed preamble not detected"),
        }
        assert!(detect_now(&s).is_none(), "all of it was read");

        let (mut c, s) = pair().await;
        c.write_all(b"hi\n").await.expect("write");
        queued(&s, 3).await;
        assert!(
            matches!(detect_now(&s), Some(Detected::Format(Format::Text, f)) if &f[..] == b"hi\n")
        );

        let (c, s) = pair().await;
        drop(c);
        let mut eof = None;
        for _ in 0..500 {
            eof = detect_now(&s);
            if eof.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(eof, Some(Detected::Eof)), "a closed client is EOF");

        // Nothing yet: the waiting path gets the bytes once they come.
        let (mut c, s) = pair().await;
        assert!(detect_now(&s).is_none());
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.write_all(b"\0").await.expect("write");
            c
        });
        let d = detect(&s, Duration::from_secs(10)).await;
        assert!(matches!(d, Detected::Format(Format::Framed, _)));
        drop(later.await);
    }
}
