//! The TUI's file transfers: what is moving (one progress bar each, above
//! the input line: bytes, percent, throughput, ETA, transport and, over
//! UDP, the reliability layer's numbers) and the line each other transfer
//! event leaves in the room the user is looking at.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use sockchat_shared::sanitize::sanitize;
use sockchat_shared::text::Severity;

use crate::net::transfer::{Dir, Progress, XferEvent};
use crate::present::duration::fmt_duration;
use crate::present::transfer::{grouped, line, rate};

/// At most this many bars are drawn (the rest are counted).
pub const MAX_BARS: usize = 4;

/// The transfers being shown.
#[derive(Debug, Clone, Default)]
pub struct Transfers {
    /// Moving transfers by id, with their last progress.
    pub active: BTreeMap<u64, Progress>,
}

impl Transfers {
    /// Take an event; the line to show in the room (`None` for progress,
    /// which only moves the bar), and whether it is an error.
    pub fn on_event(&mut self, e: &XferEvent) -> Option<(bool, String)> {
        match e {
            XferEvent::Progress(p) => {
                self.active.insert(p.id, p.clone());
                return None;
            }
            XferEvent::Started {
                id,
                dir,
                peer,
                name,
                size,
                transport,
            } => {
                self.active.insert(
                    *id,
                    Progress {
                        id: *id,
                        dir: *dir,
                        peer: peer.clone(),
                        name: name.clone(),
                        size: *size,
                        bytes: 0,
                        elapsed: Default::default(),
                        transport: *transport,
                        sender: None,
                        receiver: None,
                    },
                );
            }
            XferEvent::Done { progress, .. } => {
                self.active.remove(&progress.id);
            }
            XferEvent::Failed { id, .. } => {
                self.active.remove(id);
            }
            // A paused bar stays (with its last numbers) until it resumes
            // or fails.
            XferEvent::Offered { .. }
            | XferEvent::OfferSent { .. }
            | XferEvent::Paused { .. }
            | XferEvent::Resumed { .. } => {}
        }
        let (sev, text) = line(e);
        let text = text
            .strip_prefix("* ")
            .or_else(|| text.strip_prefix("! "))
            .unwrap_or(&text)
            .to_string();
        Some((sev == Severity::Error, text))
    }

    /// Rows the bars need (0 when nothing moves).
    pub fn height(&self) -> u16 {
        self.active.len().min(MAX_BARS) as u16
    }
}

/// One bar: `[3] a.bin -> bob ██████░░░░ 52 % 45.2 MB/s ETA 1.1 s udp retx 5.1 %`.
fn bar_line(p: &Progress, width: usize) -> Line<'static> {
    let pct = (p.bytes as f64 / p.size.max(1) as f64).clamp(0.0, 1.0);
    let who = match p.dir {
        Dir::Send => format!("[{}] {} -> {}", p.id, p.name, p.peer),
        Dir::Receive => format!("[{}] {} <- {}", p.id, p.name, p.peer),
    };
    let who = sanitize(&who).into_owned();
    let eta = p.eta().map(fmt_duration).unwrap_or_else(|| "-".into());
    let mut tail = format!(
        " {:.0} % {}/{} B {} ETA {eta} {}",
        pct * 100.0,
        grouped(p.bytes),
        grouped(p.size),
        rate(p.rate()),
        p.transport
    );
    if let Some(s) = &p.sender
        && s.retransmitted > 0
    {
        tail.push_str(&format!(
            " retx {:.1} % rto {}",
            s.loss_rate() * 100.0,
            fmt_duration(s.rto)
        ));
    }
    if let Some(r) = &p.receiver
        && (r.duplicates > 0 || r.out_of_order > 0)
    {
        tail.push_str(&format!(" dup {} ooo {}", r.duplicates, r.out_of_order));
    }
    let used = who.chars().count() + tail.chars().count() + 3;
    let bar_w = width.saturating_sub(used).clamp(0, 30);
    let filled = (pct * bar_w as f64).round() as usize;
    Line::from(vec![
        Span::styled(who, Style::default().fg(Color::Cyan)),
        Span::raw(" "),
        Span::styled("█".repeat(filled), Style::default().fg(Color::Green)),
        Span::styled(
            "░".repeat(bar_w - filled.min(bar_w)),
            Style::default().fg(Color::DarkGray),
        ),
        Span::raw(tail),
    ])
}

/// Draw the bars in `area` (its height from [`Transfers::height`]).
pub fn render(t: &Transfers, f: &mut Frame, area: Rect) {
    let w = area.width as usize;
    let mut lines: Vec<Line> = t
        .active
        .values()
        .take(MAX_BARS)
        .map(|p| bar_line(p, w))
        .collect();
    if t.active.len() > MAX_BARS
        && let Some(last) = lines.last_mut()
    {
        *last = Line::from(format!(
            "... and {} more transfers",
            t.active.len() - MAX_BARS + 1
        ));
    }
    f.render_widget(Paragraph::new(lines), area);
}
