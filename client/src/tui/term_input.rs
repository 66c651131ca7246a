//! Terminal input: the keys, pastes and mouse events the user sends, read
//! from the tty by one thread and handed to the loop as crossterm events.
//!
//! Why not crossterm's `EventStream`: its reader takes at most 1,024 bytes
//! per readiness event from an edge-triggered epoll and returns as soon as
//! those give an event, so when more than 1 KiB is queued at once (a
//! non-bracketed paste, `tmux send-keys` of a long line) the rest stays in
//! the tty, unread and unannounced, until the next key arrives. Here a
//! blocking thread reads whatever is queued (up to 64 KiB per read) and
//! parses every byte of it with `termina`'s input parser (crossterm's own
//! parser, kept public there) before it waits again, so nothing typed
//! waits for a later key.
//!
//! Resizes come from SIGWINCH (tokio's signal stream) and the size is
//! asked of the terminal, as crossterm does.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crossterm::event::{
    Event as C, KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers, MouseButton,
    MouseEvent, MouseEventKind,
};
use futures::Stream;
use tokio::sync::mpsc;

/// Bytes taken from the tty per read.
const READ_BUF: usize = 64 * 1024;
/// Batches of events waiting for the loop; past it the reader thread
/// waits (the tty then buffers, and the kernel tells the writer to wait).
const QUEUE: usize = 64;

/// The tty to read: stdin when it is one, else `/dev/tty`.
fn tty() -> io::Result<Option<OwnedFd>> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Ok(None);
    }
    Ok(Some(std::fs::File::open("/dev/tty")?.into()))
}

/// Start the reader thread; the stream yields every input event, and ends
/// when the tty does.
pub fn events() -> io::Result<impl Stream<Item = io::Result<C>> + Unpin> {
    let own = tty()?;
    let (tx, rx) = mpsc::channel::<io::Result<Vec<C>>>(QUEUE);
    std::thread::Builder::new()
        .name("tty-input".into())
        .spawn(move || {
            let fd = match &own {
                Some(f) => f.as_raw_fd(),
                None => 0,
            };
            // SAFETY: fd 0 stays open for the life of the process; the
            // owned fd lives in this closure as long as the borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            read_loop(fd, &tx);
        })?;
    let resize = resize_events();
    let input = futures::stream::unfold(
        (rx, std::collections::VecDeque::new()),
        |(mut rx, mut queued)| async move {
            loop {
                if let Some(e) = queued.pop_front() {
                    return Some((Ok(e), (rx, queued)));
                }
                match rx.recv().await? {
                    Ok(batch) => queued.extend(batch),
                    Err(e) => return Some((Err(e), (rx, queued))),
                }
            }
        },
    );
    Ok(futures::stream::select(Box::pin(input), resize))
}

/// Read and parse until the tty ends or the loop is gone.
fn read_loop(fd: BorrowedFd<'_>, tx: &mpsc::Sender<io::Result<Vec<C>>>) {
    let mut buf = vec![0u8; READ_BUF];
    let mut parser = termina::Parser::default();
    loop {
        let n = match read_tty(fd, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        // A full buffer may have cut an escape sequence: keep its start
        // for the next read.
        parser.parse(&buf[..n], n == buf.len());
        let batch: Vec<C> = std::iter::from_fn(|| parser.pop())
            .filter_map(convert)
            .collect();
        if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
            return;
        }
    }
}

/// read(2) on the tty.
fn read_tty(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is open.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A resize event per SIGWINCH, with the terminal's new size.
fn resize_events() -> impl Stream<Item = io::Result<C>> + Unpin {
    use tokio::signal::unix::{SignalKind, signal};
    let winch = signal(SignalKind::window_change()).ok();
    Box::pin(futures::stream::unfold(winch, |winch| async move {
        let mut w = winch?;
        w.recv().await?;
        let ev = crossterm::terminal::size().map(|(c, r)| C::Resize(c, r));
        Some((ev, Some(w)))
    }))
}

/// A termina event as the crossterm event the app understands; `None`
/// for what it does not use (focus, terminal replies).
pub fn convert(e: termina::Event) -> Option<C> {
    use termina::Event as T;
    match e {
        T::Key(k) => key(k).map(C::Key),
        T::Mouse(m) => mouse(m).map(C::Mouse),
        T::Paste(s) => Some(C::Paste(s)),
        T::WindowResized(w) => Some(C::Resize(w.cols, w.rows)),
        T::FocusIn | T::FocusOut | T::Csi(_) | T::Osc(_) | T::Dcs(_) => None,
    }
}

fn mods(m: termina::event::Modifiers) -> KeyModifiers {
    use termina::event::Modifiers as M;
    let mut out = KeyModifiers::NONE;
    for (t, c) in [
        (M::SHIFT, KeyModifiers::SHIFT),
        (M::ALT, KeyModifiers::ALT),
        (M::CONTROL, KeyModifiers::CONTROL),
        (M::SUPER, KeyModifiers::SUPER),
        (M::HYPER, KeyModifiers::HYPER),
        (M::META, KeyModifiers::META),
    ] {
        if m.contains(t) {
            out |= c;
        }
    }
    out
}

fn key(k: termina::event::KeyEvent) -> Option<KeyEvent> {
    use termina::event::{KeyCode as T, KeyEventKind as K};
    let code = match k.code {
        T::Char(c) => KeyCode::Char(c),
        T::Enter => KeyCode::Enter,
        T::Backspace => KeyCode::Backspace,
        T::Tab => KeyCode::Tab,
        T::BackTab => KeyCode::BackTab,
        T::Escape => KeyCode::Esc,
        T::Left => KeyCode::Left,
        T::Right => KeyCode::Right,
        T::Up => KeyCode::Up,
        T::Down => KeyCode::Down,
        T::Home => KeyCode::Home,
        T::End => KeyCode::End,
        T::PageUp => KeyCode::PageUp,
        T::PageDown => KeyCode::PageDown,
        T::Insert => KeyCode::Insert,
        T::Delete => KeyCode::Delete,
        T::Function(n) => KeyCode::F(n),
        T::Null => KeyCode::Null,
        _ => return None,
    };
    let kind = match k.kind {
        K::Press => KeyEventKind::Press,
        K::Release => KeyEventKind::Release,
        K::Repeat => KeyEventKind::Repeat,
    };
    Some(KeyEvent {
        code,
        modifiers: mods(k.modifiers),
        kind,
        state: KeyEventState::NONE,
    })
}

fn mouse(m: termina::event::MouseEvent) -> Option<MouseEvent> {
    use termina::event::{MouseButton as B, MouseEventKind as T};
    let button = |b: B| match b {
        B::Left => MouseButton::Left,
        B::Right => MouseButton::Right,
        B::Middle => MouseButton::Middle,
    };
    let kind = match m.kind {
        T::Down(b) => MouseEventKind::Down(button(b)),
        T::Up(b) => MouseEventKind::Up(button(b)),
        T::Drag(b) => MouseEventKind::Drag(button(b)),
        T::Moved => MouseEventKind::Moved,
        T::ScrollDown => MouseEventKind::ScrollDown,
        T::ScrollUp => MouseEventKind::ScrollUp,
        T::ScrollLeft => MouseEventKind::ScrollLeft,
        T::ScrollRight => MouseEventKind::ScrollRight,
    };
    Some(MouseEvent {
        kind,
        column: m.column,
        row: m.row,
        modifiers: mods(m.modifiers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Vec<C> {
        let mut p = termina::Parser::default();
        p.parse(bytes, false);
        std::iter::from_fn(|| p.pop()).filter_map(convert).collect()
    }

    fn k(code: KeyCode, m: KeyModifiers) -> C {
        C::Key(KeyEvent::new(code, m))
    }

    #[test]
    fn keys_the_app_uses() {
        let n = KeyModifiers::NONE;
        assert_eq!(
            parse(b"a/\r\x7f\t\x1bOP\x1b[13~\x03\x1b[A"),
            vec![
                k(KeyCode::Char('a'), n),
                k(KeyCode::Char('/'), n),
                k(KeyCode::Enter, n),
                k(KeyCode::Backspace, n),
                k(KeyCode::Tab, n),
                k(KeyCode::F(1), n),
                k(KeyCode::F(3), n),
                k(KeyCode::Char('c'), KeyModifiers::CONTROL),
                k(KeyCode::Up, n),
            ]
        );
        assert_eq!(
            parse("é世".as_bytes()),
            vec![k(KeyCode::Char('é'), n), k(KeyCode::Char('世'), n)]
        );
        assert_eq!(
            parse(b"\x1b[200~pasted\r\ntext\x1b[201~"),
            vec![C::Paste("pasted\r\ntext".into())]
        );
    }

    #[test]
    fn more_than_a_kilobyte_at_once_is_all_parsed() {
        let mut bytes = vec![b'x'; 3000];
        bytes.push(b'\r');
        let evs = parse(&bytes);
        assert_eq!(evs.len(), 3001);
        assert_eq!(evs.last(), Some(&k(KeyCode::Enter, KeyModifiers::NONE)));
    }
}
