//! The server picker: the TUI started with no server named (no `--server`,
//! no `[client] server`) browses the LAN (`discover::browse`) and lists
//! what answers; ↑/↓ choose, Enter connects (with TLS and the announced
//! fingerprint when the server announces TLS), `r` browses again, `a`
//! types an address instead, `q`/Esc quits. When nothing answers within
//! `discover::DEFAULT_TIMEOUT`, the checks of `discover::diagnose` are
//! shown under the empty list (browsing goes on).
//!
//! State + `key`/`update` + a pure `render`, like the chat's `App`; [`pick`]
//! is the loop, generic over the backend and the input stream.

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{Event as C, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::{Frame, Terminal};
use sockchat_shared::netif::Iface;

use crate::discover::browse::{Browser, Update};
use crate::discover::diagnose::{self, Finding, Status};
use crate::discover::{Choice, DEFAULT_TIMEOUT, Found};
use crate::present::discover::{found_details, found_title};

/// Redraw period (the "searching… N s" counter).
const TICK: Duration = Duration::from_millis(250);

/// What a key asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Connect(Choice),
    /// Forget the list and browse again.
    Refresh,
    Quit,
}

/// The picker's state.
#[derive(Debug)]
pub struct Picker {
    pub entries: Vec<Found>,
    pub selected: usize,
    /// `Some` while an address is being typed.
    pub typing: Option<String>,
    /// The interfaces asked (shown in the title).
    pub queried: Vec<Iface>,
    pub since: Instant,
    pub now: Instant,
    /// The checks, once nothing answered in time.
    pub checks: Option<Vec<Finding>>,
    /// A one-line message (an entry that cannot be used, a browse error).
    pub note: Option<String>,
}

impl Picker {
    pub fn new(queried: Vec<Iface>, now: Instant) -> Picker {
        Picker {
            entries: Vec::new(),
            selected: 0,
            typing: None,
            queried,
            since: now,
            now,
            checks: None,
            note: None,
        }
    }

    /// Browsing again: the list and the checks start over.
    pub fn restart(&mut self, now: Instant) {
        self.entries.clear();
        self.selected = 0;
        self.checks = None;
        self.note = None;
        self.since = now;
        self.now = now;
    }

    /// True when it is time to run the checks: nothing answered within
    /// [`DEFAULT_TIMEOUT`] and they have not run yet.
    pub fn checks_due(&self) -> bool {
        self.entries.is_empty()
            && self.checks.is_none()
            && self.now.duration_since(self.since) >= DEFAULT_TIMEOUT
    }

    /// A browse update: add, refresh (same full name) or remove an entry.
    pub fn update(&mut self, u: Update) {
        match u {
            Update::Found(f) => match self.entries.iter_mut().find(|e| e.fullname == f.fullname) {
                Some(e) => *e = *f,
                None => self.entries.push(*f),
            },
            Update::Gone(name) => {
                self.entries.retain(|e| e.fullname != name);
                self.selected = self.selected.min(self.entries.len().saturating_sub(1));
            }
        }
    }

    /// A key; `Some` when the picker is done or must browse again.
    pub fn key(&mut self, k: KeyEvent) -> Option<Outcome> {
        if k.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c' | '\\')) {
            return Some(Outcome::Quit);
        }
        if let Some(text) = &mut self.typing {
            match k.code {
                KeyCode::Esc => self.typing = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Enter => {
                    let t = text.trim().to_string();
                    if t.is_empty() {
                        self.typing = None;
                    } else {
                        let server = crate::cli::with_default_port(&t);
                        return Some(Outcome::Connect(Choice {
                            name: server.clone(),
                            server,
                            tls: None,
                            udp: None,
                        }));
                    }
                }
                KeyCode::Char(c) if !ctrl && !c.is_control() && text.len() < 255 => text.push(c),
                _ => {}
            }
            return None;
        }
        match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return Some(Outcome::Quit),
            KeyCode::Char('r') | KeyCode::F(5) => return Some(Outcome::Refresh),
            KeyCode::Char('a') => {
                self.typing = Some(String::new());
                self.note = None;
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.entries.len().saturating_sub(1));
            }
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = self.entries.len().saturating_sub(1),
            KeyCode::Enter => match self.entries.get(self.selected).map(Found::choice) {
                Some(Some(c)) => return Some(Outcome::Connect(c)),
                Some(None) => {
                    self.note = Some(
                        "this server announced no address to connect to (only a link-local \
                         IPv6 one): press a to type one"
                            .into(),
                    );
                }
                None => {}
            },
            _ => {}
        }
        None
    }
}

/// Draw the picker (pure).
pub fn render(p: &Picker, f: &mut Frame) {
    let area = f.area();
    let [title, list, bottom, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(bottom_height(p, area.height)),
        Constraint::Length(1),
    ])
    .areas(area);
    let ifaces: Vec<&str> = p.queried.iter().map(|i| i.name.as_str()).collect();
    let ifaces = if ifaces.is_empty() {
        "no interface".to_string()
    } else {
        ifaces.join(", ")
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" sockchat ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("— servers on the LAN (mDNS on {ifaces})")),
        ])),
        title,
    );
    let mut lines: Vec<Line> = Vec::new();
    for (i, e) in p.entries.iter().enumerate() {
        let chosen = i == p.selected && p.typing.is_none();
        let style = if chosen {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        let mark = if chosen { "> " } else { "  " };
        lines.push(Line::from(Span::styled(
            format!("{mark}{}", found_title(e)),
            style,
        )));
        lines.push(Line::from(Span::styled(
            format!("    {}", found_details(e)),
            Style::default().fg(Color::DarkGray),
        )));
    }
    if p.entries.is_empty() {
        let waited = p.now.duration_since(p.since).as_secs();
        lines.push(Line::from(Span::styled(
            format!("  searching… {waited} s (no server has answered yet)"),
            Style::default().add_modifier(Modifier::DIM),
        )));
    }
    // Keep the chosen entry on screen: two lines per entry.
    let inner = list.height.saturating_sub(2) as usize;
    let first = (p.selected * 2 + 2).saturating_sub(inner);
    f.render_widget(
        Paragraph::new(lines)
            .scroll((first as u16, 0))
            .block(Block::default().borders(Borders::ALL).title(" Servers ")),
        list,
    );
    let mut info: Vec<Line> = Vec::new();
    if let Some(n) = &p.note {
        info.push(Line::from(Span::styled(
            n.clone(),
            Style::default().fg(Color::Yellow),
        )));
    }
    if let Some(checks) = &p.checks {
        info.push(Line::from(Span::styled(
            "Nothing found yet. What was checked:",
            Style::default().add_modifier(Modifier::BOLD),
        )));
        let mut sorted: Vec<&Finding> = checks.iter().collect();
        sorted.sort_by_key(|c| c.status as u8);
        for c in sorted {
            let color = match c.status {
                Status::Cause => Color::LightRed,
                Status::Unknown => Color::Yellow,
                Status::Ok => Color::Green,
                Status::Hint => Color::Cyan,
            };
            info.push(Line::from(vec![
                Span::styled(
                    format!("{}: ", c.status.as_str()),
                    Style::default().fg(color).add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("{}: {}", c.check, c.text)),
            ]));
        }
    }
    f.render_widget(Paragraph::new(info).wrap(Wrap { trim: true }), bottom);
    let help_line = match &p.typing {
        Some(t) => Line::from(vec![
            Span::styled(" address: ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{t}█")),
            Span::styled(
                "  (HOST[:PORT]; Enter connect, Esc back)",
                Style::default().add_modifier(Modifier::DIM),
            ),
        ]),
        None => Line::from(Span::styled(
            " ↑↓ choose  Enter connect  r refresh  a type an address  q quit",
            Style::default().add_modifier(Modifier::DIM),
        )),
    };
    f.render_widget(Paragraph::new(help_line), help);
}

/// Rows for the note and the checks: as many as they need, leaving the
/// list at least 3 rows.
fn bottom_height(p: &Picker, height: u16) -> u16 {
    let want = p.note.is_some() as u16 + p.checks.as_ref().map_or(0, |c| 1 + 2 * c.len() as u16);
    want.min(height.saturating_sub(5))
}

/// Run the picker until a server is chosen (`Some`) or the user quits
/// (`None`). Browses on the usable interfaces; the checks run on a
/// blocking thread (they read files and run `nft`).
pub async fn pick<B, S>(terminal: &mut Terminal<B>, input: &mut S) -> anyhow::Result<Option<Choice>>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<C>> + Unpin,
{
    let all = sockchat_shared::netif::interfaces().unwrap_or_default();
    let queried: Vec<Iface> = all
        .iter()
        .filter(|i| i.usable_for_mdns())
        .cloned()
        .collect();
    let mut p = Picker::new(queried.clone(), Instant::now());
    let start = |p: &mut Picker| {
        if queried.is_empty() {
            return None;
        }
        match Browser::start(&queried) {
            Ok(b) => Some(b),
            Err(e) => {
                p.note = Some(format!("cannot browse: {e:#}"));
                None
            }
        }
    };
    let mut browser = start(&mut p);
    let mut checking: Option<tokio::task::JoinHandle<Vec<Finding>>> = None;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        p.now = Instant::now();
        if p.checks_due() && checking.is_none() {
            let (a, q) = (all.clone(), queried.clone());
            checking = Some(tokio::task::spawn_blocking(move || diagnose::run(&a, &q)));
        }
        terminal.draw(|f| render(&p, f))?;
        tokio::select! {
            e = input.next() => match e {
                Some(Ok(C::Key(k))) => match p.key(k) {
                    Some(Outcome::Connect(c)) => return Ok(Some(c)),
                    Some(Outcome::Quit) => return Ok(None),
                    Some(Outcome::Refresh) => {
                        // The old daemon stops before a new one starts.
                        drop(browser.take());
                        checking = None;
                        p.restart(Instant::now());
                        browser = start(&mut p);
                    }
                    None => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(None),
            },
            u = next_update(browser.as_ref()) => match u {
                Some(u) => p.update(u),
                None => {
                    browser = None;
                    p.note = Some("the mDNS browser stopped: press r to browse again".into());
                }
            },
            c = checks_done(&mut checking) => {
                checking = None;
                p.checks = Some(c);
            }
            _ = ticker.tick() => {}
        }
    }
}

/// The browser's next update; never, without a browser.
async fn next_update(b: Option<&Browser>) -> Option<Update> {
    match b {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

/// The checks' result; never, while they are not running.
async fn checks_done(h: &mut Option<tokio::task::JoinHandle<Vec<Finding>>>) -> Vec<Finding> {
    match h {
        Some(h) => h.await.unwrap_or_default(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use sockchat_shared::discovery::{TlsTxt, Txt};
    use sockchat_shared::fingerprint::Fingerprint;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn found(name: &str, ip: &str, tls: bool) -> Found {
        Found {
            instance: name.into(),
            fullname: format!("{name}._sockchat._tcp.local."),
            host: format!("{name}.local."),
            addrs: vec![ip.parse().unwrap()],
            port: 7878,
            txt: Txt {
                users: Some(1),
                rooms: Some(1),
                tls: tls.then_some(TlsTxt {
                    port: 7879,
                    fingerprint: Fingerprint([2; 32]),
                }),
                ..Default::default()
            },
        }
    }

    fn screen(p: &Picker, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(p, f)).unwrap();
        let b = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| b[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn arrows_choose_and_enter_connects_with_tls_when_announced() {
        let now = Instant::now();
        let mut p = Picker::new(Vec::new(), now);
        p.update(Update::Found(Box::new(found("one", "169.254.77.1", false))));
        p.update(Update::Found(Box::new(found("two", "169.254.77.3", true))));
        assert_eq!(p.key(key(KeyCode::Down)), None);
        assert_eq!(p.key(key(KeyCode::Down)), None, "stays on the last");
        let Some(Outcome::Connect(c)) = p.key(key(KeyCode::Enter)) else {
            panic!("Enter connects");
        };
        assert_eq!(c.server, "169.254.77.3:7879");
        assert_eq!(c.tls, Some(Fingerprint([2; 32])));
        p.key(key(KeyCode::Up));
        let Some(Outcome::Connect(c)) = p.key(key(KeyCode::Enter)) else {
            panic!("Enter connects");
        };
        assert_eq!((c.server.as_str(), c.tls), ("169.254.77.1:7878", None));
    }

    #[test]
    fn an_address_can_be_typed_instead() {
        let mut p = Picker::new(Vec::new(), Instant::now());
        assert_eq!(
            p.key(key(KeyCode::Enter)),
            None,
            "empty list: nothing to connect"
        );
        p.key(key(KeyCode::Char('a')));
        for c in "10.0.0.9".chars() {
            p.key(key(KeyCode::Char(c)));
        }
        p.key(key(KeyCode::Char('x')));
        p.key(key(KeyCode::Backspace));
        let Some(Outcome::Connect(c)) = p.key(key(KeyCode::Enter)) else {
            panic!("Enter connects to the typed address");
        };
        assert_eq!(c.server, "10.0.0.9:7878");
        p.key(key(KeyCode::Char('a')));
        p.key(key(KeyCode::Esc));
        assert_eq!(p.typing, None);
        assert_eq!(p.key(key(KeyCode::Char('r'))), Some(Outcome::Refresh));
        assert_eq!(p.key(key(KeyCode::Char('q'))), Some(Outcome::Quit));
    }

    #[test]
    fn a_withdrawn_server_leaves_the_list_and_a_new_record_replaces_the_old() {
        let mut p = Picker::new(Vec::new(), Instant::now());
        p.update(Update::Found(Box::new(found("one", "169.254.77.1", false))));
        let mut again = found("one", "169.254.77.1", false);
        again.txt.users = Some(5);
        p.update(Update::Found(Box::new(again)));
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].txt.users, Some(5));
        p.selected = 0;
        p.update(Update::Gone("one._sockchat._tcp.local.".into()));
        assert!(p.entries.is_empty());
    }

    #[test]
    fn the_screen_lists_servers_then_the_checks_when_none_answers() {
        let now = Instant::now();
        let mut p = Picker::new(Vec::new(), now);
        p.update(Update::Found(Box::new(found("lab", "169.254.77.1", true))));
        let s = screen(&p, 90, 12);
        assert!(s.contains("> lab  169.254.77.1:7878"), "{s}");
        assert!(
            s.contains("users 1  rooms 1  TLS :7879 SHA256:02:02"),
            "{s}"
        );
        assert!(
            s.contains("Enter connect  r refresh  a type an address  q quit"),
            "{s}"
        );

        let mut p = Picker::new(Vec::new(), now);
        assert!(!p.checks_due());
        p.now = now + DEFAULT_TIMEOUT;
        assert!(p.checks_due());
        p.checks = Some(vec![Finding {
            check: "firewall",
            status: Status::Cause,
            text: "nftables drops mDNS".into(),
        }]);
        let s = screen(&p, 90, 12);
        assert!(s.contains("searching… 3 s"), "{s}");
        assert!(s.contains("cause: firewall: nftables drops mDNS"), "{s}");
    }
}
