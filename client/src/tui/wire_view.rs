//! The wire view (F4, `[client] key_wire`): the last packets of this
//! connection, live, in the lab's tcpdump notation, SYN/FIN/RST in colour,
//! with the kernel's TCP state changes between them, and after the close
//! the socket the kernel keeps (TIME_WAIT and its timer). It takes the
//! chat's place while it is on; the input line stays live, so `/fault rst`
//! typed there shows its `[R.]` as it happens.
//!
//! [`WireLog`] is the state (the app feeds it every socket event);
//! [`render`] draws it. When nothing can be captured the view says why and
//! what to run. A leaf beside the app: it knows no app state, so the app
//! holds it and the view draws it without an import cycle.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::wrap::wrap;
use crate::net::{AfterClose, SocketEvent, Transport, WireNews};
use crate::present::duration::fmt_duration;
use crate::present::wire::segment_line;
use crate::wire::Segment;

/// Entries kept (the view shows the newest that fit).
pub const WIRE_MAX: usize = 500;

/// One row of the wire view.
#[derive(Debug, Clone, PartialEq)]
pub enum WireEntry {
    /// A new connection starts: its addresses.
    Conn(String),
    Seg(Box<Segment>),
    /// The kernel's TCP state changed (TCP_INFO poll).
    State {
        from: &'static str,
        to: &'static str,
    },
    /// Our connection closed, packets lost, the kernel's socket after the
    /// close...
    Note(String),
}

/// What the wire view shows, built from socket events.
#[derive(Debug, Clone, Default)]
pub struct WireLog {
    pub entries: VecDeque<WireEntry>,
    /// Why there are no packets (no CAP_NET_RAW...), while that holds.
    pub off: Option<String>,
    /// The session is UDP: the view shows TCP only.
    pub udp: bool,
    /// The socket the kernel kept after our last close, and when we heard
    /// (its timer counts down from then).
    pub after_close: Option<(AfterClose, Instant)>,
}

impl WireLog {
    fn push(&mut self, e: WireEntry) {
        self.entries.push_back(e);
        while self.entries.len() > WIRE_MAX {
            self.entries.pop_front();
        }
    }

    /// Take what concerns the view from any socket event.
    pub fn on_event(&mut self, ev: &SocketEvent, now: Instant) {
        match ev {
            SocketEvent::Connected {
                local,
                peer,
                transport,
            } => {
                self.udp = *transport == Transport::Udp;
                self.push(WireEntry::Conn(format!("{local} -> {peer} ({transport})")));
            }
            SocketEvent::Wire(n) => match &**n {
                WireNews::Packets { segments, lost } => {
                    self.off = None;
                    if *lost > 0 {
                        self.push(WireEntry::Note(format!(
                            "{lost} packets not kept (the capture fell behind)"
                        )));
                    }
                    for s in segments {
                        self.push(WireEntry::Seg(Box::new(s.clone())));
                    }
                }
                WireNews::Off(why) => self.off = Some(why.clone()),
            },
            SocketEvent::TcpState { from, to } => {
                self.push(WireEntry::State { from, to });
            }
            SocketEvent::Connecting { addr, attempt } => {
                self.push(WireEntry::Note(format!(
                    "connecting to {addr} (attempt {attempt})"
                )));
            }
            // What the system calls said, between the segments that
            // caused it (as the lab shows them).
            SocketEvent::Error(e) => self.push(WireEntry::Note(format!(
                "{}: {} ({})",
                e.syscall,
                e.name(),
                e.errno
            ))),
            SocketEvent::HalfClosed(h) => {
                self.push(WireEntry::Note(
                    crate::present::text::half_close_text(*h).to_string(),
                ));
            }
            SocketEvent::Closed(r) => self.push(WireEntry::Note(format!("CLOSED: {r}"))),
            SocketEvent::AfterClose(a) => {
                self.push(WireEntry::Note(crate::present::wire::after_close_text(a)));
                self.after_close = Some(((**a).clone(), now));
            }
            _ => {}
        }
    }

    /// The kernel's socket after our close with its timer as of `now`:
    /// (state, what is left), while it lasts.
    pub fn kept(&self, now: Instant) -> Option<(&'static str, Option<Duration>)> {
        let (a, at) = self.after_close.as_ref()?;
        let k = a.socket.as_ref()?;
        let passed = now.saturating_duration_since(*at);
        match k.expires {
            Some(e) if passed > e + Duration::from_secs(1) => None,
            Some(e) => Some((k.state, Some(e.saturating_sub(passed)))),
            None => Some((k.state, None)),
        }
    }
}

fn style(colors: bool, c: Color) -> Style {
    if colors {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

/// The colour of a segment's flags: RST red, SYN green, FIN yellow.
fn flag_style(colors: bool, s: &Segment) -> Style {
    let c = if s.rst {
        Color::LightRed
    } else if s.syn {
        Color::LightGreen
    } else if s.fin {
        Color::Yellow
    } else {
        return Style::default();
    };
    style(colors, c).add_modifier(Modifier::BOLD)
}

/// One segment line, its flags coloured.
fn seg_spans(colors: bool, s: &Segment) -> Vec<Span<'static>> {
    let line = segment_line(s);
    let flags = s.flags();
    match line.find(&flags) {
        Some(i) => vec![
            Span::raw(line[..i].to_string()),
            Span::styled(flags.clone(), flag_style(colors, s)),
            Span::raw(line[i + flags.len()..].to_string()),
        ],
        None => vec![Span::raw(line)],
    }
}

fn entry_spans(colors: bool, e: &WireEntry) -> Vec<Span<'static>> {
    match e {
        WireEntry::Conn(c) => vec![Span::styled(
            format!("── connection {c} ──"),
            style(colors, Color::Cyan).add_modifier(Modifier::BOLD),
        )],
        WireEntry::Seg(s) => seg_spans(colors, s),
        WireEntry::State { from, to } => vec![Span::styled(
            format!("   ---- tcp state {from} -> {to}"),
            style(colors, Color::Cyan),
        )],
        WireEntry::Note(n) => vec![Span::styled(
            format!("   ---- {n}"),
            style(colors, Color::Magenta),
        )],
    }
}

/// The lines the view shows above the packets: why there are none, what
/// the kernel keeps after our close.
fn header(w: &WireLog, now: Instant, colors: bool) -> Vec<Vec<Span<'static>>> {
    let mut v = Vec::new();
    if w.udp {
        v.push(vec![Span::styled(
            "the wire view shows TCP only: this session is UDP (its datagrams are in the socket panel's counts)".to_string(),
            style(colors, Color::Yellow),
        )]);
    }
    if let Some(why) = &w.off {
        v.push(vec![Span::styled(
            why.clone(),
            style(colors, Color::LightRed).add_modifier(Modifier::BOLD),
        )]);
    } else if w.entries.is_empty() && !w.udp {
        v.push(vec![Span::raw("no packets yet")]);
    }
    if let Some((state, left)) = w.kept(now) {
        v.push(vec![Span::styled(
            format!(
                "after our close the kernel keeps the socket in {state}{}",
                left.map(|l| format!(", {} left", fmt_duration(l)))
                    .unwrap_or_default()
            ),
            style(colors, Color::Magenta),
        )]);
    }
    v
}

/// Draw the wire view into `area` (the chat's place); `key` is how the
/// key that closes it is written.
pub fn render(w: &WireLog, now: Instant, colors: bool, key: &str, f: &mut Frame, area: Rect) {
    let block = Block::default()
        .borders(Borders::TOP)
        .title(format!(" wire: this connection's packets ({key} closes) "));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let (height, width) = (inner.height as usize, inner.width as usize);
    if height == 0 || width == 0 {
        return;
    }
    let head: Vec<Line<'static>> = header(w, now, colors)
        .into_iter()
        .flat_map(|s| wrap(s, width))
        .collect();
    let room = height.saturating_sub(head.len());
    // Newest at the bottom: walk back until the rows are full.
    let mut rows: Vec<Line<'static>> = Vec::new();
    for e in w.entries.iter().rev() {
        let mut wrapped = wrap(entry_spans(colors, e), width);
        while let Some(last) = wrapped.pop() {
            if rows.len() >= room {
                break;
            }
            rows.push(last);
        }
        if rows.len() >= room {
            break;
        }
    }
    rows.reverse();
    let mut all = head;
    all.extend(rows);
    f.render_widget(Paragraph::new(all), inner);
}

/// The socket panel's line for the kernel's socket after our close
/// (`kept TIME_WAIT 58 s left (sock_diag)`), while it lasts.
pub fn panel_line(w: &WireLog, now: Instant) -> Option<(String, String)> {
    let (state, left) = w.kept(now)?;
    Some((
        "kept".to_string(),
        format!(
            "{state}{} (sock_diag)",
            left.map(|l| format!(" {} left", fmt_duration(l)))
                .unwrap_or_default()
        ),
    ))
}
