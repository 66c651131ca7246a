//! The pure view: draws an [`App`] into a frame. Nothing here changes state
//! or does I/O, so a `TestBackend` shows exactly what a person would see.
//!
//! **Invariant:** every string that came from the network (nicks, room
//! names, text) passes through [`clean`] here, at display time: the state
//! keeps the originals, which the protocol needs to address a room.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Sparkline};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use sockchat_shared::sanitize::sanitize;
use sockchat_shared::text::Severity;

use super::app::{App, ChatLine, ConnState, LineKind};
pub use super::clock::{date_text, day_of, hms, iso_date};
pub use super::wrap::{wrap, wrap_indent};
use crate::net::{HalfClose, Transport};
use crate::present::command::help_lines;
use crate::present::duration::fmt_duration;

/// A string from the network as it may be shown: control characters and
/// bidi overrides replaced (`shared::sanitize`).
pub fn clean(s: &str) -> String {
    sanitize(s).into_owned()
}

/// Sidebar width (rooms and members).
const SIDEBAR: u16 = 18;
/// Socket panel width.
const PANEL: u16 = 46;
/// Below this width the sidebar is hidden.
const SIDEBAR_MIN_WIDTH: u16 = 64;

const PALETTE: [Color; 12] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
    Color::LightGreen,
    Color::LightCyan,
    Color::LightMagenta,
    Color::LightBlue,
    Color::LightYellow,
    Color::Red,
];

/// A nick's colour: the same nick gets the same colour in every session
/// (FNV-1a of its bytes picks from a fixed palette).
pub fn nick_color(nick: &str) -> Color {
    let mut h: u32 = 0x811c_9dc5;
    for b in nick.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    PALETTE[(h as usize) % PALETTE.len()]
}

fn color(app: &App, c: Color) -> Style {
    if app.cfg.colors {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

/// The spans of one chat line (before wrapping) and the hanging indent
/// of its continuation rows: the width of its time and nick.
fn line_spans(app: &App, l: &ChatLine) -> (Vec<Span<'static>>, usize) {
    let mut v = Vec::new();
    let rule = |t: String| {
        vec![Span::styled(
            format!("── {t} ──"),
            color(app, Color::DarkGray).add_modifier(Modifier::BOLD),
        )]
    };
    match &l.kind {
        LineKind::Day => return (rule(date_text(day_of(l.ts_ms, app.cfg.utc_offset_secs))), 0),
        LineKind::HistoryStart => {
            return (
                rule(
                    "history: the room's last messages before you joined, at the server's time"
                        .into(),
                ),
                0,
            );
        }
        _ => {}
    }
    if app.cfg.timestamps {
        v.push(Span::styled(
            format!("{} ", hms(l.ts_ms, app.cfg.utc_offset_secs)),
            color(app, Color::DarkGray),
        ));
    }
    let dim = if l.history {
        Style::default().add_modifier(Modifier::DIM)
    } else if l.mention {
        // A line for us stands out in every colour scheme.
        color(app, Color::LightYellow).add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    if l.history {
        v.push(Span::styled("↶ ".to_string(), color(app, Color::DarkGray)));
    }
    let mut indent = v.iter().map(|s| s.content.width()).sum::<usize>();
    match &l.kind {
        LineKind::Chat { from, me } => {
            let mut ns = color(app, nick_color(from));
            if *from == app.nick {
                ns = ns.add_modifier(Modifier::BOLD);
            }
            if l.mention {
                ns = ns.add_modifier(Modifier::REVERSED);
            }
            let from = clean(from);
            if *me {
                v.push(Span::styled("* ".to_string(), dim));
                indent += 2;
                v.push(Span::styled(from, ns));
                v.push(Span::styled(format!(" {}", clean(&l.text)), dim));
            } else {
                indent += from.width() + 2;
                v.push(Span::styled(from, ns));
                v.push(Span::styled(format!(": {}", clean(&l.text)), dim));
            }
        }
        LineKind::Private { from, to } => {
            // `[pm] -> bob: hi` for ours, `[pm] bob: hi` for theirs (the
            // shapes of shared::text::render).
            let head = if *from == app.nick && *to != app.nick {
                format!("[pm] -> {to}: ")
            } else {
                format!("[pm] {from}: ")
            };
            let head = clean(&head);
            indent += head.width();
            let st = if l.mention {
                color(app, Color::Magenta).add_modifier(Modifier::BOLD)
            } else {
                color(app, Color::Magenta)
            };
            v.push(Span::styled(head, st));
            v.push(Span::styled(clean(&l.text), st));
        }
        LineKind::System => {
            indent += 2;
            v.push(Span::styled(
                format!("* {}", clean(&l.text)),
                color(app, Color::Yellow),
            ))
        }
        LineKind::Error => {
            indent += 2;
            v.push(Span::styled(
                format!("! {}", clean(&l.text)),
                error_style(app),
            ))
        }
        LineKind::Rendered(sev) => {
            indent += 2;
            v.push(Span::styled(
                clean(&l.text),
                match sev {
                    Severity::Error => error_style(app),
                    Severity::Private => color(app, Color::Magenta),
                    Severity::Chat | Severity::Notice => color(app, Color::Yellow),
                },
            ))
        }
        LineKind::Day | LineKind::HistoryStart => {}
    }
    (v, indent)
}

/// One chat line as plain text, the way the chat log file keeps it
/// (`2026-12-06 14:03:07 bob: hi`); sanitised like the screen.
pub fn plain_line(app: &App, l: &ChatLine) -> String {
    let (spans, _) = line_spans(app, l);
    let body: String = spans.iter().map(|s| s.content.as_ref()).collect();
    let body = if app.cfg.timestamps {
        body.get(9..).unwrap_or("").to_string()
    } else {
        body
    };
    let day = day_of(l.ts_ms, app.cfg.utc_offset_secs);
    format!(
        "{} {} {body}",
        iso_date(day),
        hms(l.ts_ms, app.cfg.utc_offset_secs)
    )
}

fn error_style(app: &App) -> Style {
    color(app, Color::LightRed).add_modifier(Modifier::BOLD)
}

/// The spans of a line typed but not yet confirmed by the server: dimmed,
/// marked, with how long it has waited once that is noticeable.
fn pending_spans(app: &App, p: &super::app::Pending) -> Vec<Span<'static>> {
    let waited = app.now.saturating_duration_since(p.since);
    let mut text = format!("⋯ {} ", clean(&p.text));
    text.push_str(&if waited >= std::time::Duration::from_secs(1) {
        format!("(sending, {:.0} s)", waited.as_secs_f64())
    } else {
        "(sending)".to_string()
    });
    vec![Span::styled(
        text,
        color(app, Color::DarkGray).add_modifier(Modifier::DIM | Modifier::ITALIC),
    )]
}

/// Draw the whole screen.
pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    let [main, bars, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(app.transfers.height()),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    if bars.height > 0 {
        super::transfer::render(&app.transfers, f, bars);
    }
    let show_panel = app.panel_visible() && main.width >= PANEL + 30;
    let show_sidebar = area.width >= SIDEBAR_MIN_WIDTH;
    let mut chat = main;
    if show_panel {
        let [left, right] =
            Layout::horizontal([Constraint::Min(20), Constraint::Length(PANEL)]).areas(chat);
        chat = left;
        render_panel(app, f, right);
    }
    if show_sidebar {
        let [side, rest] =
            Layout::horizontal([Constraint::Length(SIDEBAR), Constraint::Min(10)]).areas(chat);
        chat = rest;
        render_sidebar(app, f, side);
    }
    if app.show_wire {
        let key = super::keys::KeyMap::label(&app.cfg.keys.wire);
        super::wire_view::render(&app.wire, app.now, app.cfg.colors, &key, f, chat);
    } else {
        render_chat(app, f, chat);
    }
    render_input(app, f, input);
    render_status(app, f, status);
    if app.show_help {
        render_help(app, f, area);
    } else if app.show_log {
        f.render_widget(Clear, main);
        let title = if app.log_scroll > 0 {
            format!(" event log, {} up (↑↓ PgUp PgDn End) ", app.log_scroll)
        } else {
            " event log (↑↓ PgUp PgDn; other keys close) ".to_string()
        };
        let block = Block::default().borders(Borders::ALL).title(title);
        let inner = block.inner(main);
        f.render_widget(block, main);
        render_log(app, f, inner, app.log_scroll);
    }
    // Last: flags as two cells every terminal agrees on (tui/flags.rs).
    super::flags::split(f.buffer_mut());
}

fn render_chat(app: &App, f: &mut Frame, area: Rect) {
    let room = app.room();
    let title = match (&room.query, &room.topic) {
        (Some(peer), _) => format!(" private: {} ", clean(peer)),
        (None, Some(topic)) => format!(" {} — {} ", clean(&room.name), clean(topic)),
        (None, None) => format!(" {} ", clean(&room.name)),
    };
    let block = Block::default().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height as usize;
    let width = inner.width as usize;
    if height == 0 || width == 0 {
        return;
    }
    let marker = room.scroll > 0 && room.new_below > 0;
    let rows_avail = if marker { height - 1 } else { height };
    // The search match, drawn reversed.
    let found = app
        .search
        .as_ref()
        .and_then(|(_, at)| *at)
        .and_then(|no| no.checked_sub(room.front_no()))
        .map(|i| i as usize);
    let spans_of = |i: usize, l: &ChatLine| {
        let (mut sp, indent) = line_spans(app, l);
        if found == Some(i) {
            for s in &mut sp {
                s.style = s.style.add_modifier(Modifier::REVERSED);
            }
        }
        (sp, indent)
    };
    // Walk back from the last visible logical line, wrapping until full.
    // Lines still waiting for the server's echo come last, below the
    // room's lines (only when following the newest lines).
    let mut end = room.lines.len().saturating_sub(room.scroll);
    let pending: Vec<(Vec<Span<'static>>, usize)> = if room.scroll == 0 {
        app.pending_here()
            .map(|p| (pending_spans(app, p), 0))
            .collect()
    } else {
        Vec::new()
    };
    let mut rows: Vec<Line<'static>> = Vec::new();
    {
        let logical = pending.into_iter().rev().chain(
            room.lines
                .iter()
                .enumerate()
                .take(end)
                .rev()
                .map(|(i, l)| spans_of(i, l)),
        );
        for (spans, indent) in logical {
            let mut wrapped = wrap_indent(spans, width, indent);
            while let Some(last) = wrapped.pop() {
                rows.push(last);
                if rows.len() >= rows_avail {
                    break;
                }
            }
            if rows.len() >= rows_avail {
                break;
            }
        }
    }
    rows.reverse();
    // Scrolled up past the oldest line: the screen stays full (the lines
    // below it come up) instead of showing an empty top.
    while rows.len() < rows_avail && end < room.lines.len() {
        let (spans, indent) = spans_of(end, &room.lines[end]);
        for r in wrap_indent(spans, width, indent) {
            if rows.len() < rows_avail {
                rows.push(r);
            }
        }
        end += 1;
    }
    if marker {
        rows.push(Line::from(Span::styled(
            format!(
                "── {} new message{} below (PgDn/Esc) ──",
                room.new_below,
                if room.new_below == 1 { "" } else { "s" }
            ),
            color(app, Color::Black).bg(Color::Yellow),
        )));
    }
    // Bottom-align: pad above when there are fewer lines than rows.
    let pad = height.saturating_sub(rows.len());
    let mut all = vec![Line::default(); pad];
    all.extend(rows);
    f.render_widget(Paragraph::new(all), inner);
}

/// Cut `s` to at most `max` cells (by grapheme cluster), with `…` when cut.
pub fn fit(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let w = g.width();
        if used + w + 1 > max {
            break;
        }
        out.push_str(g);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// `(3)` unread, `(3 @1)` when one of them is for us.
pub fn counts(unread: usize, mentions: usize) -> String {
    match (unread, mentions) {
        (0, _) => String::new(),
        (u, 0) => format!("({u})"),
        (u, m) => format!("({u} @{m})"),
    }
}

fn render_sidebar(app: &App, f: &mut Frame, area: Rect) {
    let block = Block::default().borders(Borders::RIGHT | Borders::TOP);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height as usize;
    let room = app.room();
    let me_listed = room.joined && !app.nick.is_empty();
    let member_count = room.members.len() + usize::from(me_listed);
    // Rows for the room list: all of them when everything fits, else about
    // half, as a window around the room in view (never a walk over every
    // room: there may be 100,000).
    let room_rows = if app.rooms.len() + member_count + 3 <= height {
        app.rooms.len()
    } else {
        app.rooms.len().min((height.saturating_sub(3) / 2).max(1))
    };
    let mut lines: Vec<Line> = vec![Line::from(Span::styled(
        format!("Rooms ({})", app.rooms.len()),
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    let w = inner.width as usize;
    for (id, r) in app.rooms.window(app.current, room_rows / 2, room_rows) {
        // The counts always show: the name gives way (`projectdisc… (3)`).
        let n = counts(r.unread, r.mentions);
        let room_w = w.saturating_sub(1 + if n.is_empty() { 0 } else { n.width() + 1 });
        let name = fit(&clean(&r.name), room_w);
        let mut st = Style::default();
        if id == app.current {
            st = st.add_modifier(Modifier::REVERSED);
        } else if r.unread > 0 {
            st = st.add_modifier(Modifier::BOLD);
        }
        if !r.joined && r.query.is_none() {
            st = st.add_modifier(Modifier::DIM);
        }
        let mut row = vec![Span::styled(format!(" {name}"), st)];
        if !n.is_empty() {
            let nst = if r.mentions > 0 {
                color(app, Color::LightMagenta).add_modifier(Modifier::BOLD)
            } else {
                st
            };
            row.push(Span::styled(format!(" {n}"), nst));
        }
        lines.push(Line::from(row));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        format!("Members ({member_count})"),
        Style::default().add_modifier(Modifier::BOLD),
    )));
    let fit = height.saturating_sub(lines.len());
    let me = me_listed.then(|| {
        Span::styled(
            format!(" {}", clean(&app.nick)),
            color(app, nick_color(&app.nick)).add_modifier(Modifier::BOLD),
        )
    });
    // An away member is dimmed and marked.
    let others = room.members.iter().map(|m| {
        let away = app.away.contains_key(m);
        let st = color(app, nick_color(m));
        if away {
            Span::styled(
                format!(" {} (away)", clean(m)),
                st.add_modifier(Modifier::DIM),
            )
        } else {
            Span::styled(format!(" {}", clean(m)), st)
        }
    });
    lines.extend(me.into_iter().chain(others).take(fit).map(Line::from));
    f.render_widget(Paragraph::new(lines), inner);
}

fn render_input(app: &App, f: &mut Frame, area: Rect) {
    let prompt = format!("[{}] ", clean(&app.room().name));
    let pw = prompt.width() as u16;
    if area.width <= pw + 1 {
        let (text, cur) = app.input.view(area.width as usize);
        f.render_widget(Paragraph::new(text), area);
        f.set_cursor_position((area.x + cur as u16, area.y));
        return;
    }
    let avail = (area.width - pw) as usize;
    let (text, cur) = app.input.view(avail);
    let line = Line::from(vec![
        Span::styled(prompt, color(app, Color::Cyan)),
        Span::raw(text),
    ]);
    f.render_widget(Paragraph::new(line), area);
    f.set_cursor_position((area.x + pw + cur as u16, area.y));
}

/// The state as a person reads it in the status bar and the panel.
pub fn state_text(app: &App) -> String {
    match &app.conn.state {
        ConnState::Connecting { attempt } => format!("CONNECTING (attempt {attempt})"),
        // TCP's own state name: the kernel's word for it.
        ConnState::Established if app.conn.transport == Transport::Tcp => "ESTABLISHED".into(),
        // UDP has no connection state: what is true is that the handshake
        // was answered (the cookie worked) and whether the server still is.
        ConnState::Established => match lag(app) {
            Some(l) => format!("no reply for {:.0} s", l.as_secs_f64()),
            None => "session up (cookie ok)".into(),
        },
        ConnState::HalfClosed(HalfClose::WeSentFin) => "HALF-CLOSED (we sent FIN)".into(),
        ConnState::HalfClosed(HalfClose::PeerSentFin) => "HALF-CLOSED (peer sent FIN)".into(),
        ConnState::Closed(r) => format!("CLOSED: {r}"),
        ConnState::Waiting { until, attempt } => {
            let left = until.saturating_duration_since(app.now);
            format!(
                "RECONNECTING in {:.1} s (attempt {attempt})",
                left.as_secs_f64()
            )
        }
        ConnState::Finished => match &app.conn.last_close {
            Some(r) => format!("CLOSED: {r}"),
            None => "CLOSED".into(),
        },
    }
}

/// How long the unanswered ping has waited, once that is long enough to
/// matter (a normal round trip is far shorter).
pub fn lag(app: &App) -> Option<std::time::Duration> {
    app.conn
        .lag
        .filter(|l| *l >= LAG_SHOWN && app.conn.state == ConnState::Established)
}

/// A ping unanswered for this long shows as lag instead of the last RTT.
const LAG_SHOWN: std::time::Duration = std::time::Duration::from_secs(1);

fn state_style(app: &App) -> Style {
    let c = match app.conn.state {
        ConnState::Established if lag(app).is_some() => Color::LightRed,
        ConnState::Established => Color::Green,
        ConnState::Connecting { .. } | ConnState::Waiting { .. } => Color::Yellow,
        ConnState::HalfClosed(_) => Color::Magenta,
        ConnState::Closed(_) | ConnState::Finished => Color::Red,
    };
    color(app, c).add_modifier(Modifier::BOLD)
}

fn render_status(app: &App, f: &mut Frame, area: Rect) {
    // Narrow terminals drop the least useful parts first.
    let wide = area.width >= 70;
    let sep = Span::raw(" │ ");
    let mut spans = Vec::new();
    if wide {
        spans.push(Span::raw(format!(" {}", app.cfg.server)));
        spans.push(sep.clone());
    }
    spans.extend([
        Span::styled(
            if app.nick.is_empty() {
                "(no nick yet)".to_string()
            } else {
                clean(&app.nick)
            },
            Style::default().add_modifier(Modifier::BOLD),
        ),
        sep.clone(),
        Span::raw(clean(&app.room().name)),
        sep.clone(),
        Span::styled(state_text(app), state_style(app)),
    ]);
    if let Some(l) = lag(app) {
        // The ping is unanswered: its growing wait, not the last good RTT.
        spans.push(sep.clone());
        spans.push(Span::styled(
            format!("no answer for {:.1} s", l.as_secs_f64()),
            error_style(app),
        ));
    } else if let Some(l) = app.conn.latency
        && app.conn.state == ConnState::Established
    {
        spans.push(sep.clone());
        spans.push(Span::raw(format!("ping {}", fmt_duration(l))));
    }
    if !app.pending.is_empty() {
        spans.push(sep.clone());
        spans.push(Span::styled(
            format!("{} sending", app.pending.len()),
            color(app, Color::DarkGray),
        ));
    }
    if app.away_me.is_some() {
        spans.push(sep.clone());
        spans.push(Span::styled("away", color(app, Color::DarkGray)));
    }
    // Without the sidebar, the rooms with new lines (weechat's hotlist,
    // irssi's Act:), those with lines for us first.
    if area.width < SIDEBAR_MIN_WIDTH && !app.activity.is_empty() {
        spans.push(sep.clone());
        spans.push(Span::raw("Act: "));
        let mut act: Vec<_> = app
            .activity
            .iter()
            .filter_map(|id| app.rooms.get(*id))
            .collect();
        act.sort_by_key(|r| r.mentions == 0);
        for r in act.iter().take(8) {
            let st = if r.mentions > 0 {
                color(app, Color::LightMagenta).add_modifier(Modifier::BOLD)
            } else {
                Style::default().add_modifier(Modifier::BOLD)
            };
            spans.push(Span::styled(
                format!(
                    "{}{} ",
                    fit(&clean(&r.name), 12),
                    counts(r.unread, r.mentions)
                ),
                st,
            ));
        }
        if act.len() > 8 {
            spans.push(Span::raw(format!("+{}", act.len() - 8)));
        }
    }
    if let ConnState::Waiting { .. } = app.conn.state
        && let Some(r) = &app.conn.last_close
    {
        spans.push(sep.clone());
        spans.push(Span::raw(format!("last: {r}")));
    }
    if wide {
        spans.push(sep);
        let k = &app.cfg.keys;
        let l = super::keys::KeyMap::label;
        spans.push(Span::styled(
            format!(
                "{} help {} panel {} log {} wire",
                l(&k.help),
                l(&k.panel),
                l(&k.log),
                l(&k.wire)
            ),
            color(app, Color::DarkGray),
        ));
    }
    let bar = Paragraph::new(Line::from(spans)).style(Style::default().bg(if app.cfg.colors {
        Color::Rgb(30, 30, 46)
    } else {
        Color::Reset
    }));
    f.render_widget(bar, area);
}

/// Every key, for the help overlay (docs/CLIENT.md has the same list).
pub fn key_lines(app: &App) -> Vec<(String, &'static str)> {
    let k = &app.cfg.keys;
    let l = super::keys::KeyMap::label;
    vec![
        ("Enter".into(), "send the line"),
        ("Up / Down".into(), "input history"),
        (
            "Tab".into(),
            "complete a nick, a /command, a room after /join",
        ),
        ("PgUp / PgDn, wheel".into(), "scroll the room"),
        ("Esc".into(), "back to the newest line"),
        (
            format!("{} / {}", l(&k.next_room), l(&k.prev_room)),
            "next / previous room",
        ),
        ("Alt-→ / Alt-←".into(), "next / previous room"),
        ("Alt-1..9, Alt-0".into(), "room 1..9, room 10"),
        (l(&k.help), "this help (↑↓ PgUp PgDn scroll it)"),
        (l(&k.panel), "socket panel on/off"),
        (l(&k.log), "event log (↑↓ PgUp PgDn scroll it)"),
        (l(&k.wire), "wire view: this connection's packets"),
        ("Ctrl-L".into(), "redraw the screen"),
        ("←/→, Home/End, Ctrl-A/E".into(), "move in the line"),
        ("Ctrl-←/→, Alt-b / Alt-f".into(), "word left / right"),
        ("Ctrl-W / Alt-d".into(), "cut the word before / after"),
        ("Ctrl-U / Ctrl-K".into(), "cut to the start / end"),
        ("Ctrl-Y".into(), "paste what was cut last"),
        ("Ctrl-C".into(), "clear the line; on an empty line quit"),
        ("Ctrl-D".into(), "quit (on an empty line)"),
        ("Ctrl-\\".into(), "quit, even with a typed line"),
    ]
}

fn render_help(app: &App, f: &mut Frame, area: Rect) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = vec![Line::from(Span::styled("sockchat — keys", bold))];
    lines.extend(
        key_lines(app)
            .into_iter()
            .map(|(k, what)| Line::from(format!(" {k:<24} {what}"))),
    );
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Commands", bold)));
    lines.extend(help_lines().into_iter().skip(1).map(Line::from));
    lines.push(Line::default());
    lines.push(Line::from(
        " any other key closes this help (and does what it always does: typing goes on in the input line)",
    ));
    let w = area.width.min(78);
    let h = area.height.min(lines.len() as u16 + 2);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    // Scrolled within what the box shows (wrapped rows counted); the
    // title says where the rest is.
    let inner_w = w.saturating_sub(2) as usize;
    let total: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner_w.max(1)))
        .sum();
    let inner_h = h.saturating_sub(2) as usize;
    let max = total.saturating_sub(inner_h);
    let top = app.help_scroll.min(max);
    let title = if max == 0 {
        " help ".to_string()
    } else {
        format!(
            " help {}/{} (↑↓ PgUp PgDn) ",
            top + inner_h.min(total),
            total
        )
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .scroll((top.min(u16::MAX as usize) as u16, 0))
            .block(Block::default().borders(Borders::ALL).title(title)),
        r,
    );
}

/// `n/a` for a field the kernel did not report.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "n/a".into())
}

/// Human bytes: `512 B`, `1.5 KiB`, `2.0 MiB`.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

/// A compact byte rate for a sparkline label: `950B`, `12K`, `3.4M`.
fn rate(bps: f64) -> String {
    if bps < 1000.0 {
        format!("{bps:.0}B")
    } else if bps < 1_000_000.0 {
        format!("{:.0}K", bps / 1024.0)
    } else {
        format!("{:.1}M", bps / (1024.0 * 1024.0))
    }
}

fn us(v: u32) -> String {
    if v >= 1000 {
        format!("{:.1} ms", f64::from(v) / 1000.0)
    } else {
        format!("{v} µs")
    }
}

/// `1m 50s`.
fn mins(secs: u64) -> String {
    if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// The lines of the socket panel (without the sparklines and diagram).
pub fn panel_lines(app: &App) -> Vec<Line<'static>> {
    let c = &app.conn;
    let key = |k: &str| Span::styled(format!("{k:<8} "), color(app, Color::DarkGray));
    let mut lines = vec![
        Line::from(vec![
            key("state"),
            Span::styled(state_text(app), state_style(app)),
        ]),
        Line::from(vec![
            key("local"),
            Span::raw(opt(c.local)),
            Span::raw(format!("  {}", c.transport)),
        ]),
        Line::from(vec![key("peer"), Span::raw(opt(c.peer))]),
    ];
    if let Some(cl) = &app.cluster {
        let node = sockchat_shared::sanitize::sanitize(cl.node.as_deref().unwrap_or("?"));
        let (link, col) = if cl.up {
            ("link up", Color::Green)
        } else {
            ("link down: local rooms only", Color::LightRed)
        };
        lines.push(Line::from(vec![
            key("node"),
            Span::raw(format!("{node}  ")),
            Span::styled(link, color(app, col)),
        ]));
    }
    if let Some(r) = &c.last_close {
        lines.push(Line::from(vec![
            key("last end"),
            Span::styled(r.clone(), color(app, Color::LightRed)),
        ]));
    }
    if let Some((k, v)) = super::wire_view::panel_line(&app.wire, app.now) {
        lines.push(Line::from(vec![
            key(&k),
            Span::styled(v, color(app, Color::Magenta)),
        ]));
    }
    if let Some(u) = &c.udp {
        // UDP has no TCP_INFO: our own counts, the sequence accounting and
        // what the kernel says about the socket.
        for (k, v) in crate::net::udp::panel_fields(u) {
            lines.push(Line::from(vec![key(k), Span::raw(v)]));
        }
        return lines;
    }
    let Some(info) = &c.info else {
        lines.push(Line::from(vec![
            key("tcp_info"),
            Span::raw("n/a (no socket yet)"),
        ]));
        return lines;
    };
    let s = &info.snap;
    let live = matches!(c.state, ConnState::Established | ConnState::HalfClosed(_));
    match &s.info {
        Some(t) => {
            let ssthresh = if t.snd_ssthresh >= 0x7fff_ffff {
                "inf".to_string()
            } else {
                t.snd_ssthresh.to_string()
            };
            lines.push(Line::from(vec![
                key("tcpi"),
                Span::styled(
                    t.state_name().to_string(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("  mss {}", t.snd_mss)),
                Span::styled(
                    if live { "" } else { "  (last poll)" },
                    color(app, Color::DarkGray),
                ),
            ]));
            lines.push(Line::from(vec![
                key("rtt"),
                Span::raw(format!(
                    "{} ±{}  min {}",
                    us(t.rtt_us),
                    us(t.rttvar_us),
                    opt(t.min_rtt_us.map(us))
                )),
            ]));
            lines.push(Line::from(vec![
                key("cwnd"),
                Span::raw(format!(
                    "{}  ssthresh {}  unacked {}",
                    t.snd_cwnd, ssthresh, t.unacked
                )),
            ]));
            lines.push(Line::from(vec![
                key("retrans"),
                Span::raw(format!(
                    "{} now / {} total  rto {}",
                    t.retransmits,
                    t.total_retrans,
                    us(t.rto_us)
                )),
            ]));
            lines.push(Line::from(vec![
                key("acked"),
                Span::raw(format!(
                    "{}  rcvd {}",
                    opt(t.bytes_acked.map(bytes)),
                    opt(t.bytes_received.map(bytes))
                )),
            ]));
            lines.push(Line::from(vec![
                key("notsent"),
                Span::raw(opt(t.notsent_bytes.map(|b| bytes(b.into())))),
            ]));
            // Advertised receive windows (Linux 6.2+ reports them): the
            // peer's limits what we may send; ours drops to 0 when we stop
            // reading.
            lines.push(Line::from(vec![
                key("window"),
                Span::raw(format!(
                    "peer {}  ours {}",
                    opt(t.snd_wnd.map(|b| bytes(b.into()))),
                    opt(t.rcv_wnd.map(|b| bytes(b.into())))
                )),
            ]));
        }
        None => lines.push(Line::from(vec![key("tcp_info"), Span::raw("n/a")])),
    }
    lines.push(Line::from(vec![
        key("buffers"),
        Span::raw(format!(
            "snd {}  rcv {}",
            opt(s.sndbuf.map(|b| bytes(b.into()))),
            opt(s.rcvbuf.map(|b| bytes(b.into())))
        )),
    ]));
    let mut q = vec![
        key("queues"),
        Span::raw(format!(
            "out {}  in {}",
            opt(s.send_queue.map(|b| bytes(b.into()))),
            opt(s.recv_queue.map(|b| bytes(b.into())))
        )),
    ];
    if info.reading_paused {
        q.push(Span::styled(
            "  NOT READING",
            color(app, Color::LightRed).add_modifier(Modifier::BOLD),
        ));
    }
    lines.push(Line::from(q));
    if let Some(t) = &info.tls {
        lines.push(Line::from(vec![
            key("tls"),
            Span::raw(format!("{} {}", t.version, t.cipher)),
        ]));
    }
    let st = info.stats;
    lines.push(Line::from(vec![
        key("frames"),
        Span::raw(format!(
            "in {} / out {}  ({} / {})",
            st.frames_in,
            st.frames_out,
            bytes(st.bytes_in),
            bytes(st.bytes_out)
        )),
    ]));
    lines.extend(keepalive_lines(app));
    lines
}

/// Keepalive and TCP_USER_TIMEOUT with the countdown to when the kernel
/// would declare a silent peer dead.
fn keepalive_lines(app: &App) -> Vec<Line<'static>> {
    let key = |k: &str| Span::styled(format!("{k:<8} "), color(app, Color::DarkGray));
    let Some(info) = &app.conn.info else {
        return Vec::new();
    };
    let Some(k) = &info.snap.keepalive else {
        return vec![Line::from(vec![key("keepalv"), Span::raw("n/a")])];
    };
    // Time since the peer was last heard from, aged by the time since the
    // poll (so the countdown moves between polls).
    let since_poll = app
        .conn
        .info_at
        .map(|t| app.now.saturating_duration_since(t).as_millis() as u64)
        .unwrap_or(0);
    let silent_ms = info
        .snap
        .info
        .as_ref()
        .map(|t| u64::from(t.last_data_recv_ms.min(t.last_ack_recv_ms)) + since_poll);
    let mut out = Vec::new();
    match k.dead_after_secs() {
        Some(dead) => {
            let left = silent_ms.map(|s| (u64::from(dead) * 1000).saturating_sub(s) / 1000);
            out.push(Line::from(vec![
                key("keepalv"),
                Span::raw(format!(
                    "{}s idle + {}×{}s  dead in {}",
                    k.idle_secs,
                    k.count,
                    k.interval_secs,
                    opt(left.map(mins))
                )),
            ]));
        }
        None => out.push(Line::from(vec![key("keepalv"), Span::raw("off")])),
    }
    let ut = if k.user_timeout_ms == 0 {
        "kernel default (tcp_retries2)".to_string()
    } else {
        let unacked = info.snap.info.as_ref().map(|t| t.unacked).unwrap_or(0);
        if unacked > 0 {
            let since_ack = info
                .snap
                .info
                .as_ref()
                .map(|t| u64::from(t.last_ack_recv_ms) + since_poll)
                .unwrap_or(0);
            format!(
                "{} ms  dead in {}",
                k.user_timeout_ms,
                mins(u64::from(k.user_timeout_ms).saturating_sub(since_ack) / 1000)
            )
        } else {
            format!("{} ms (nothing unacked)", k.user_timeout_ms)
        }
    };
    out.push(Line::from(vec![key("user_to"), Span::raw(ut)]));
    out
}

/// The TCP state diagram, current state lit.
pub fn diagram_lines(app: &App) -> Vec<Line<'static>> {
    let current = app
        .conn
        .info
        .as_ref()
        .and_then(|i| i.snap.info.as_ref())
        .map(|t| t.state_name())
        .filter(|_| {
            matches!(
                app.conn.state,
                ConnState::Established | ConnState::HalfClosed(_)
            )
        })
        .unwrap_or(match app.conn.state {
            ConnState::Connecting { .. } => "SYN_SENT",
            // After our close: the socket the kernel keeps (sock_diag).
            _ => app.wire.kept(app.now).map_or("CLOSE", |(s, _)| s),
        });
    let lit = |name: &'static str, label: &'static str| -> Span<'static> {
        if name == current {
            Span::styled(
                label,
                Style::default()
                    .fg(Color::Black)
                    .bg(Color::Green)
                    .add_modifier(Modifier::BOLD),
            )
        } else {
            Span::styled(label, color(app, Color::DarkGray))
        }
    };
    let arrow = || Span::raw("→");
    vec![
        Line::from(vec![
            lit("CLOSE", "CLOSED"),
            arrow(),
            lit("SYN_SENT", "SYN_SENT"),
            arrow(),
            lit("ESTABLISHED", "ESTABLISHED"),
        ]),
        Line::from(vec![
            Span::raw(" we close:  "),
            lit("FIN_WAIT1", "FIN_WAIT1"),
            arrow(),
            lit("FIN_WAIT2", "FIN_WAIT2"),
            arrow(),
            lit("TIME_WAIT", "TIME_WAIT"),
        ]),
        Line::from(vec![
            Span::raw(" both:      "),
            lit("CLOSING", "CLOSING"),
            arrow(),
            lit("TIME_WAIT", "TIME_WAIT"),
        ]),
        Line::from(vec![
            Span::raw(" peer first:"),
            lit("CLOSE_WAIT", "CLOSE_WAIT"),
            arrow(),
            lit("LAST_ACK", "LAST_ACK"),
        ]),
    ]
}

fn render_panel(app: &App, f: &mut Frame, area: Rect) {
    let block = Block::default()
        .borders(Borders::LEFT | Borders::TOP)
        .title(" socket ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let lines = panel_lines(app);
    // The TCP state machine means nothing for UDP: say what UDP has instead.
    let diagram = if app.conn.transport == Transport::Udp {
        vec![
            Line::from(Span::styled(
                "UDP: no handshake, no FIN, no RST.",
                color(app, Color::DarkGray),
            )),
            Line::from(Span::styled(
                "A peer that vanishes is noticed only by timeout.",
                color(app, Color::DarkGray),
            )),
        ]
    } else {
        diagram_lines(app)
    };
    let n = lines.len() as u16;
    let d = diagram.len() as u16;
    let [info_a, spark_a, diag_a, log_a] = Layout::vertical([
        Constraint::Length(n),
        Constraint::Length(2),
        Constraint::Length(d),
        Constraint::Min(0),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(lines), info_a);
    let [rtt_row, thr_row] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(spark_a);
    // Each sparkline is labelled with its latest value.
    let rtt_label = match app.conn.rtt_hist.back() {
        Some(v) if *v >= 1000 => format!("rtt {:.1}ms", *v as f64 / 1000.0),
        Some(v) => format!("rtt {v}µs"),
        None => "rtt".into(),
    };
    let poll_s = app.cfg.info_poll.as_secs_f64().max(0.001);
    let thr_label = match app.conn.thr_hist.back() {
        Some(v) => format!("io {}/s", rate(*v as f64 / poll_s)),
        None => "io".into(),
    };
    spark(app, f, rtt_row, &rtt_label, &app.conn.rtt_hist, Color::Cyan);
    spark(
        app,
        f,
        thr_row,
        &thr_label,
        &app.conn.thr_hist,
        Color::Green,
    );
    f.render_widget(Paragraph::new(diagram), diag_a);
    render_panel_log(app, f, log_a);
}

fn spark(
    app: &App,
    f: &mut Frame,
    area: Rect,
    label: &str,
    data: &std::collections::VecDeque<u64>,
    c: Color,
) {
    if area.width < 16 {
        return;
    }
    let [l, r] = Layout::horizontal([Constraint::Length(12), Constraint::Min(1)]).areas(area);
    f.render_widget(
        Paragraph::new(Span::styled(
            format!("{label:<11} "),
            color(app, Color::DarkGray),
        )),
        l,
    );
    let w = r.width as usize;
    let tail: Vec<u64> = data.iter().rev().take(w).rev().copied().collect();
    f.render_widget(Sparkline::default().data(&tail).style(color(app, c)), r);
}

/// The event log section at the bottom of the socket panel.
fn render_panel_log(app: &App, f: &mut Frame, area: Rect) {
    if area.height < 2 {
        return;
    }
    let block = Block::default().borders(Borders::TOP).title(" events ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    render_log(app, f, inner, 0);
}

/// The event log entries that fit, oldest at the top: the newest, or
/// `skip` entries older (scrolled up in the F3 view; never past the
/// oldest screenful).
fn render_log(app: &App, f: &mut Frame, inner: Rect, skip: usize) {
    let width = inner.width as usize;
    let height = inner.height as usize;
    let skip = skip.min(app.log.len().saturating_sub(height.max(1)));
    let mut rows: Vec<Line<'static>> = Vec::new();
    for e in app.log.iter().rev().skip(skip) {
        let st = if e.error {
            color(app, Color::LightRed)
        } else {
            Style::default()
        };
        let spans = vec![
            Span::styled(
                format!("{} ", hms(e.ts_ms, app.cfg.utc_offset_secs)),
                color(app, Color::DarkGray),
            ),
            Span::styled(e.text.clone(), st),
        ];
        let mut w = wrap_indent(spans, width, 9);
        while let Some(l) = w.pop() {
            rows.push(l);
            if rows.len() >= height {
                break;
            }
        }
        if rows.len() >= height {
            break;
        }
    }
    rows.reverse();
    f.render_widget(Paragraph::new(rows), inner);
}
