//! The chat client's state and its one `update(Event)` function. No I/O
//! here: the loop feeds events in, takes [`Action`]s out, and the view
//! draws whatever the state says. Tests drive this directly.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use sockchat_shared::{ChatKind, ClientMsg, ServerMsg};

use crate::net::command::{COMMANDS, Fault, Input, InputLimits, parse_input};
use crate::net::text::event_line;
use crate::net::{CloseReason, HalfClose, NetCmd, SocketEvent, SocketInfo, Transport};

use super::input::LineEditor;

/// Lines kept per room; older ones scroll away for good.
const SCROLLBACK: usize = 5000;
/// Event log entries kept.
const LOG_MAX: usize = 1000;
/// Samples kept for the sparklines.
const SPARK_MAX: usize = 120;

/// Everything that can happen to the app.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    Socket(SocketEvent),
    /// Time passes (drives countdowns); carries "now".
    Tick(Instant),
}

/// What the app asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Net(NetCmd),
    /// `/fault crash`: restore the terminal, print this, abort.
    Crash {
        did: String,
        peer_sees: String,
    },
}

/// When the socket panel is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelMode {
    /// On when the terminal is at least [`PANEL_AUTO_WIDTH`] wide.
    Auto,
    On,
    Off,
}

/// Width from which the panel is shown in `auto` mode.
pub const PANEL_AUTO_WIDTH: u16 = 110;

/// UI settings from config and flags.
#[derive(Debug, Clone)]
pub struct UiConfig {
    pub server: String,
    pub timestamps: bool,
    pub colors: bool,
    pub panel: PanelMode,
    /// Local time offset from UTC for timestamps (seconds).
    pub utc_offset_secs: i64,
    pub limits: InputLimits,
    /// The TCP_INFO poll period (to turn byte deltas into rates).
    pub info_poll: Duration,
    pub room: String,
    /// The rebindable keys (`[client] key_*`).
    pub keys: super::keys::KeyMap,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            server: "127.0.0.1:7878".into(),
            timestamps: true,
            colors: true,
            panel: PanelMode::Auto,
            utc_offset_secs: 0,
            limits: InputLimits::default(),
            info_poll: Duration::from_millis(250),
            room: "lobby".into(),
            keys: super::keys::KeyMap::default(),
        }
    }
}

/// Our connection as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting {
        attempt: u32,
    },
    Established,
    HalfClosed(HalfClose),
    Closed(String),
    /// Waiting to reconnect.
    Waiting {
        until: Instant,
        attempt: u32,
    },
    /// The net task ended (quit, or reconnect off).
    Finished,
}

/// What the socket panel shows.
#[derive(Debug, Clone)]
pub struct ConnView {
    pub state: ConnState,
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub transport: Transport,
    pub info: Option<SocketInfo>,
    /// The UDP numbers (with `--udp`), instead of TCP_INFO.
    pub udp: Option<crate::net::udp::UdpInfo>,
    /// When the last poll arrived (for keepalive countdowns).
    pub info_at: Option<Instant>,
    /// Smoothed RTT samples (µs) from TCP_INFO.
    pub rtt_hist: VecDeque<u64>,
    /// Bytes in + out per poll interval.
    pub thr_hist: VecDeque<u64>,
    last_total: Option<u64>,
    /// Round trip of our own Ping/Pong.
    pub latency: Option<Duration>,
    pub last_close: Option<String>,
}

/// What kind of line a chat line is (it decides the colours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Chat { from: String, me: bool },
    Private { from: String, to: String },
    System,
    Error,
}

/// One line in a room's scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    pub ts_ms: u64,
    pub kind: LineKind,
    pub text: String,
    /// Replayed history (drawn dimmer).
    pub history: bool,
}

/// A room buffer: its lines, members and where the user is scrolled to.
#[derive(Debug, Clone)]
pub struct Room {
    pub name: String,
    pub lines: VecDeque<ChatLine>,
    pub unread: usize,
    pub members: BTreeSet<String>,
    pub joined: bool,
    /// We were in this room when the connection dropped: the net task will
    /// rejoin it after reconnecting, so the view stays on it.
    pub rejoin: bool,
    /// Lines scrolled up from the bottom (0: following new lines).
    pub scroll: usize,
    /// New lines that arrived below the view while scrolled up.
    pub new_below: usize,
}

impl Room {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            lines: VecDeque::new(),
            unread: 0,
            members: BTreeSet::new(),
            joined: false,
            rejoin: false,
            scroll: 0,
            new_below: 0,
        }
    }

    fn push(&mut self, line: ChatLine) {
        self.lines.push_back(line);
        if self.lines.len() > SCROLLBACK {
            self.lines.pop_front();
        }
        if self.scroll > 0 {
            // Keep the view where the user put it.
            self.scroll = (self.scroll + 1).min(self.lines.len().saturating_sub(1));
            self.new_below += 1;
        }
    }
}

/// One event log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub ts_ms: u64,
    pub text: String,
    pub error: bool,
}

/// The whole client state.
#[derive(Debug, Clone)]
pub struct App {
    pub cfg: UiConfig,
    pub nick: String,
    pub server_name: String,
    pub rooms: Vec<Room>,
    pub current: usize,
    pub conn: ConnView,
    pub log: VecDeque<LogEntry>,
    pub input: LineEditor,
    pub show_help: bool,
    /// F3: the event log full-screen (for terminals too narrow for the panel).
    pub show_log: bool,
    /// F2 toggles; None follows [`PanelMode`].
    pub panel_override: Option<bool>,
    pub size: (u16, u16),
    pub now: Instant,
    /// Wall clock (Unix ms) at `started`, so timestamps follow `now`.
    wall0_ms: u64,
    started: Instant,
    /// `/quit` or Ctrl-C was asked for.
    pub quitting: bool,
    /// The loop should end.
    pub done: bool,
    /// Room to switch to when the server confirms our join.
    pending_switch: Option<String>,
    /// Rooms whose Who answer we asked for ourselves (not shown as a line).
    auto_who: BTreeSet<String>,
    /// The Who reply being assembled from its pages (PROTOCOL.md "Paged
    /// replies"), and whether it is shown as a line; only while Who pages
    /// arrive back to back.
    who_reply: Option<(ServerMsg, bool)>,
}

impl App {
    pub fn new(cfg: UiConfig, nick: &str, now: Instant, wall_ms: u64) -> Self {
        let first_name = if cfg.room.is_empty() {
            "lobby".to_string()
        } else {
            cfg.room.clone()
        };
        let first = Room::new(&first_name);
        Self {
            cfg,
            nick: nick.to_string(),
            server_name: String::new(),
            rooms: vec![first],
            current: 0,
            conn: ConnView {
                state: ConnState::Connecting { attempt: 1 },
                local: None,
                peer: None,
                transport: Transport::Tcp,
                info: None,
                udp: None,
                info_at: None,
                rtt_hist: VecDeque::new(),
                thr_hist: VecDeque::new(),
                last_total: None,
                latency: None,
                last_close: None,
            },
            log: VecDeque::new(),
            input: LineEditor::default(),
            show_help: false,
            show_log: false,
            panel_override: None,
            size: (80, 24),
            now,
            wall0_ms: wall_ms,
            started: now,
            quitting: false,
            done: false,
            // The configured room is where the user wants to be once the
            // net task has joined it.
            pending_switch: Some(first_name),
            auto_who: BTreeSet::new(),
            who_reply: None,
        }
    }

    /// Wall-clock Unix ms for "now" (follows `Tick`s, so tests are stable).
    pub fn wall_ms(&self) -> u64 {
        self.wall0_ms + self.now.saturating_duration_since(self.started).as_millis() as u64
    }

    pub fn room(&self) -> &Room {
        &self.rooms[self.current]
    }

    /// Is the socket panel visible at the current size?
    pub fn panel_visible(&self) -> bool {
        match self.panel_override {
            Some(v) => v,
            None => match self.cfg.panel {
                PanelMode::On => true,
                PanelMode::Off => false,
                PanelMode::Auto => self.size.0 >= PANEL_AUTO_WIDTH,
            },
        }
    }

    /// Rows of chat visible (for page-sized scrolling).
    fn page(&self) -> usize {
        (self.size.1 as usize).saturating_sub(5).max(1)
    }

    fn room_index(&mut self, name: &str) -> usize {
        if let Some(i) = self.rooms.iter().position(|r| r.name == name) {
            return i;
        }
        self.rooms.push(Room::new(name));
        self.rooms.len() - 1
    }

    fn push_to(&mut self, idx: usize, line: ChatLine) {
        let counts = matches!(line.kind, LineKind::Chat { .. } | LineKind::Private { .. });
        if idx != self.current && counts {
            self.rooms[idx].unread += 1;
        }
        self.rooms[idx].push(line);
    }

    fn system(&mut self, text: String) {
        let ts = self.wall_ms();
        let cur = self.current;
        self.push_to(
            cur,
            ChatLine {
                ts_ms: ts,
                kind: LineKind::System,
                text,
                history: false,
            },
        );
    }

    fn error(&mut self, text: String) {
        let ts = self.wall_ms();
        let cur = self.current;
        self.push_to(
            cur,
            ChatLine {
                ts_ms: ts,
                kind: LineKind::Error,
                text,
                history: false,
            },
        );
    }

    /// Show a local error in the current room (used by the loop).
    pub fn note_error(&mut self, text: String) {
        self.error(text);
    }

    fn log(&mut self, text: String, error: bool) {
        let ts = self.wall_ms();
        self.log.push_back(LogEntry {
            ts_ms: ts,
            text,
            error,
        });
        if self.log.len() > LOG_MAX {
            self.log.pop_front();
        }
    }

    fn switch_to(&mut self, idx: usize) {
        if idx < self.rooms.len() {
            self.current = idx;
            self.rooms[idx].unread = 0;
        }
    }

    /// Every known nick (for Tab completion): current room first.
    pub fn known_nicks(&self) -> Vec<String> {
        let mut v: Vec<String> = self.room().members.iter().cloned().collect();
        for r in &self.rooms {
            for m in &r.members {
                if !v.contains(m) {
                    v.push(m.clone());
                }
            }
        }
        v
    }

    /// The one entry point: apply an event, return what the loop must do.
    pub fn update(&mut self, ev: Event) -> Vec<Action> {
        match ev {
            Event::Tick(now) => {
                self.now = now;
                Vec::new()
            }
            Event::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Event::Paste(s) => {
                self.input.insert_str(&s);
                Vec::new()
            }
            Event::Mouse(m) => {
                self.mouse(m);
                Vec::new()
            }
            Event::Key(k) => self.key(k),
            Event::Socket(s) => self.socket(s),
        }
    }

    fn mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(3),
            MouseEventKind::ScrollDown => self.scroll_down(3),
            _ => {}
        }
    }

    pub fn scroll_up(&mut self, n: usize) {
        let r = &mut self.rooms[self.current];
        r.scroll = (r.scroll + n).min(r.lines.len().saturating_sub(1));
    }

    pub fn scroll_down(&mut self, n: usize) {
        let r = &mut self.rooms[self.current];
        r.scroll = r.scroll.saturating_sub(n);
        if r.scroll == 0 {
            r.new_below = 0;
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Action> {
        if k.kind == KeyEventKind::Release {
            return Vec::new();
        }
        if self.show_help || self.show_log {
            // Any key closes an overlay.
            self.show_help = false;
            self.show_log = false;
            return Vec::new();
        }
        // The rebindable keys first (they may shadow an editing key).
        let keys = self.cfg.keys;
        if keys.help.matches(&k) {
            self.show_help = true;
            return Vec::new();
        }
        if keys.panel.matches(&k) {
            self.panel_override = Some(!self.panel_visible());
            return Vec::new();
        }
        if keys.log.matches(&k) {
            self.show_log = true;
            return Vec::new();
        }
        if keys.next_room.matches(&k) {
            self.next_room(1);
            return Vec::new();
        }
        if keys.prev_room.matches(&k) {
            self.next_room(-1);
            return Vec::new();
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let alt = k.modifiers.contains(KeyModifiers::ALT);
        match k.code {
            KeyCode::Char('c') if ctrl => return self.quit(String::new()),
            KeyCode::Char('d') if ctrl && self.input.is_empty() => {
                return self.quit(String::new());
            }
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('u') if ctrl => self.input.kill_to_start(),
            KeyCode::Char('k') if ctrl => self.input.kill_to_end(),
            KeyCode::Char('w') if ctrl => self.input.delete_word(),
            KeyCode::Right if alt => self.next_room(1),
            KeyCode::Left if alt => self.next_room(-1),
            KeyCode::Left if ctrl => self.input.word_left(),
            KeyCode::Right if ctrl => self.input.word_right(),
            // Ctrl+Alt is how many terminals report AltGr (`@`, `{`...).
            KeyCode::Char(c) if !ctrl || alt => self.input.insert(c),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up => self.input.history_prev(),
            KeyCode::Down => self.input.history_next(),
            KeyCode::PageUp => self.scroll_up(self.page()),
            KeyCode::PageDown => self.scroll_down(self.page()),
            KeyCode::Esc => self.scroll_down(usize::MAX),
            KeyCode::Tab => {
                let cmds: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
                let faults: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                let nicks = self.known_nicks();
                self.input.complete(&cmds, &faults, &nicks);
            }
            KeyCode::Enter => {
                let line = self.input.submit();
                return self.submit(&line);
            }
            _ => {}
        }
        Vec::new()
    }

    fn next_room(&mut self, step: isize) {
        let n = self.rooms.len() as isize;
        let i = (self.current as isize + step).rem_euclid(n);
        self.switch_to(i as usize);
    }

    fn quit(&mut self, message: String) -> Vec<Action> {
        if self.quitting || matches!(self.conn.state, ConnState::Finished) {
            // Second Ctrl-C, or nothing left to close: leave now.
            self.done = true;
            return Vec::new();
        }
        self.quitting = true;
        vec![Action::Net(NetCmd::Quit(message))]
    }

    /// Enter on a line: a command or chat text.
    pub fn submit(&mut self, line: &str) -> Vec<Action> {
        let input = match parse_input(line, &self.cfg.limits) {
            Ok(i) => i,
            Err(e) => {
                self.error(e);
                return Vec::new();
            }
        };
        let room = self.room().name.clone();
        match &input {
            Input::Empty => return Vec::new(),
            Input::Help => {
                self.show_help = true;
                return Vec::new();
            }
            Input::Quit(m) => return self.quit(m.clone()),
            Input::Fault(Fault::Crash) => {
                let (did, peer) = Fault::crash_text();
                return vec![Action::Crash {
                    did: did.into(),
                    peer_sees: peer.into(),
                }];
            }
            Input::Fault(f) => self.log(format!("fault {f} requested"), false),
            Input::Join(r) => {
                if let Some(i) = self.rooms.iter().position(|x| x.name == *r && x.joined) {
                    self.switch_to(i);
                    return Vec::new();
                }
                self.pending_switch = Some(r.clone());
            }
            Input::Say(_) | Input::Me(_) => {
                // No local echo: the server sends framed senders their own
                // room messages back, which confirms delivery.
                self.scroll_down(usize::MAX);
            }
            _ => {}
        }
        input.to_net(&room).map(Action::Net).into_iter().collect()
    }

    fn socket(&mut self, ev: SocketEvent) -> Vec<Action> {
        // Every event with words goes to the event log.
        if let Some(line) = event_line(&ev)
            && !matches!(ev, SocketEvent::Server(_))
        {
            let (error, text) = match line.strip_prefix("! ") {
                Some(t) => (true, t.to_string()),
                None => (false, line.trim_start_matches("* ").to_string()),
            };
            self.log(text, error);
        }
        let mut actions = Vec::new();
        match ev {
            SocketEvent::Connecting { attempt, .. } => {
                self.conn.state = ConnState::Connecting { attempt };
                // A new socket: the old one's numbers no longer apply.
                self.conn.info = None;
                self.conn.udp = None;
                self.conn.info_at = None;
                self.conn.rtt_hist.clear();
                self.conn.thr_hist.clear();
                self.conn.latency = None;
            }
            SocketEvent::Connected {
                local,
                peer,
                transport,
            } => {
                self.conn.state = ConnState::Established;
                self.conn.local = Some(local);
                self.conn.peer = Some(peer);
                self.conn.transport = transport;
                self.conn.last_total = None;
                self.system(format!("connected {local} -> {peer} ({transport})"));
            }
            SocketEvent::Server(m) => actions = self.server(m),
            SocketEvent::Error(e) => self.error(e.to_string()),
            SocketEvent::HalfClosed(h) => {
                self.conn.state = ConnState::HalfClosed(h);
                self.system(crate::net::text::half_close_text(h).to_string());
            }
            SocketEvent::Closed(r) => {
                let text = r.to_string();
                self.conn.state = ConnState::Closed(text.clone());
                self.conn.last_close = Some(text.clone());
                for room in &mut self.rooms {
                    room.rejoin = room.joined || room.rejoin;
                    room.joined = false;
                    room.members.clear();
                }
                match r {
                    CloseReason::Peer(_) => self.error(format!("CLOSED: {text}")),
                    CloseReason::Local(_) => self.system(format!("CLOSED: {text}")),
                }
                if self.quitting {
                    self.done = true;
                }
            }
            SocketEvent::Reconnecting { delay, attempt } => {
                self.conn.state = ConnState::Waiting {
                    until: self.now + delay,
                    attempt,
                };
            }
            SocketEvent::Info(info) => {
                let total = info.stats.bytes_in + info.stats.bytes_out;
                if let Some(prev) = self.conn.last_total {
                    push_capped(&mut self.conn.thr_hist, total.saturating_sub(prev));
                }
                self.conn.last_total = Some(total);
                if let Some(i) = &info.snap.info {
                    push_capped(&mut self.conn.rtt_hist, u64::from(i.rtt_us));
                }
                self.conn.info = Some(*info);
                self.conn.info_at = Some(self.now);
            }
            SocketEvent::UdpInfo(info) => {
                let c = info.counters;
                let total = c.bytes_in + c.bytes_out;
                if let Some(prev) = self.conn.last_total {
                    push_capped(&mut self.conn.thr_hist, total.saturating_sub(prev));
                }
                self.conn.last_total = Some(total);
                if let Some(r) = info.srtt {
                    push_capped(&mut self.conn.rtt_hist, r.as_micros() as u64);
                }
                self.conn.udp = Some(*info);
                self.conn.info_at = Some(self.now);
            }
            SocketEvent::TcpState { .. } => {}
            SocketEvent::Latency(d) => self.conn.latency = Some(d),
            SocketEvent::FaultDone {
                fault,
                did,
                peer_sees,
            } => self.system(format!(
                "fault {fault}: {did}; the peer should see: {peer_sees}"
            )),
            SocketEvent::Local(s) => self.error(s),
            // Until the UI marks pending lines (its part of the seam), a
            // failure is at least said.
            SocketEvent::LineFailed { why, .. } => self.error(format!("not delivered: {why}")),
            SocketEvent::LineConfirmed { .. } | SocketEvent::Lag { .. } => {}
            SocketEvent::Finished => {
                self.conn.state = ConnState::Finished;
                if self.quitting {
                    self.done = true;
                } else {
                    self.system("disconnected for good (reconnect is off): Ctrl-C to leave".into());
                }
            }
        }
        actions
    }

    fn server(&mut self, m: ServerMsg) -> Vec<Action> {
        let mut actions = Vec::new();
        // A Who page continues the reply before it only if nothing came between.
        let who_reply = self.who_reply.take();
        match m {
            ServerMsg::Welcome { nick, room, server } => {
                self.nick = nick.clone();
                self.server_name = server.clone();
                let i = self.room_index(&room);
                self.rooms[i].joined = true;
                self.rooms[i].rejoin = false;
                self.rooms[i].members.insert(nick.clone());
                let cur = &self.rooms[self.current];
                if !cur.joined && !cur.rejoin {
                    self.switch_to(i);
                }
                self.system(format!("welcome {nick}: you are in {room} ({server})"));
                self.auto_who.insert(room.clone());
                actions.push(Action::Net(NetCmd::Send {
                    id: None,
                    msg: ClientMsg::Who { room },
                }));
            }
            ServerMsg::Chat {
                room,
                from,
                text,
                kind,
                ts_ms,
                history,
            } => {
                let i = self.room_index(&room);
                if !history {
                    self.rooms[i].members.insert(from.clone());
                } else if self.rooms[i].lines.iter().rev().take(500).any(|l| {
                    l.ts_ms == ts_ms
                        && l.text == text
                        && matches!(&l.kind, LineKind::Chat { from: f, .. } if *f == from)
                }) {
                    // Replayed on rejoin after a reconnect: already shown.
                    return actions;
                }
                self.push_to(
                    i,
                    ChatLine {
                        ts_ms,
                        kind: LineKind::Chat {
                            from,
                            me: kind == ChatKind::Me,
                        },
                        text,
                        history,
                    },
                );
            }
            ServerMsg::Private {
                from,
                to,
                text,
                ts_ms,
            } => {
                let cur = self.current;
                self.push_to(
                    cur,
                    ChatLine {
                        ts_ms,
                        kind: LineKind::Private { from, to },
                        text,
                        history: false,
                    },
                );
            }
            ServerMsg::Joined { room, nick } => {
                let i = self.room_index(&room);
                self.rooms[i].members.insert(nick.clone());
                if nick == self.nick {
                    self.rooms[i].joined = true;
                    self.rooms[i].rejoin = false;
                    let switch = self.pending_switch.as_deref() == Some(room.as_str())
                        || !self.rooms[self.current].joined;
                    if switch {
                        self.pending_switch = None;
                        self.switch_to(i);
                    }
                    // Ask for the member list once (the welcome asked already
                    // for the first room).
                    if self.auto_who.insert(room.clone()) {
                        actions.push(Action::Net(NetCmd::Send {
                            id: None,
                            msg: ClientMsg::Who { room: room.clone() },
                        }));
                    }
                }
                let ts = self.wall_ms();
                self.push_to(
                    i,
                    ChatLine {
                        ts_ms: ts,
                        kind: LineKind::System,
                        text: format!("{nick} joined {room}"),
                        history: false,
                    },
                );
            }
            ServerMsg::Left { room, nick, reason } => {
                let text = match &reason {
                    Some(r) => format!("{nick} left {room}: {r}"),
                    None => format!("{nick} left {room}"),
                };
                let abrupt = reason.as_ref().is_some_and(|r| r.errno().is_some());
                let Some(i) = self.rooms.iter().position(|r| r.name == room) else {
                    self.system(text);
                    return actions;
                };
                self.rooms[i].members.remove(&nick);
                if nick == self.nick {
                    // We left: drop the buffer (keep at least one).
                    if self.rooms.len() > 1 {
                        self.rooms.remove(i);
                        if self.current >= self.rooms.len() || self.current == i {
                            self.current = 0;
                        } else if self.current > i {
                            self.current -= 1;
                        }
                        self.system(text);
                    } else {
                        self.rooms[i].joined = false;
                        self.system(text);
                    }
                    return actions;
                }
                let ts = self.wall_ms();
                self.push_to(
                    i,
                    ChatLine {
                        ts_ms: ts,
                        kind: if abrupt {
                            LineKind::Error
                        } else {
                            LineKind::System
                        },
                        text,
                        history: false,
                    },
                );
            }
            ServerMsg::NickChanged { old, new } => {
                if old == self.nick {
                    self.nick = new.clone();
                }
                let ts = self.wall_ms();
                for i in 0..self.rooms.len() {
                    if self.rooms[i].members.remove(&old) {
                        self.rooms[i].members.insert(new.clone());
                        self.push_to(
                            i,
                            ChatLine {
                                ts_ms: ts,
                                kind: LineKind::System,
                                text: format!("{old} is now known as {new}"),
                                history: false,
                            },
                        );
                    }
                }
            }
            ServerMsg::Who { room, nicks } => {
                let i = self.room_index(&room);
                let page = ServerMsg::Who {
                    room: room.clone(),
                    nicks,
                };
                // A later page of a long reply adds to the members; a new
                // reply replaces them.
                let (reply, shown) = match who_reply {
                    Some((mut reply, shown)) if sockchat_shared::page::continues(&reply, &page) => {
                        sockchat_shared::page::merge(&mut reply, &page);
                        (reply, shown)
                    }
                    _ => (page.clone(), !self.auto_who.remove(&room)),
                };
                if let ServerMsg::Who { nicks, .. } = &reply {
                    self.rooms[i].members = nicks.iter().cloned().collect();
                }
                if let (true, ServerMsg::Who { nicks, .. }) = (shown, &page) {
                    self.system(format!("{room}: {}", nicks.join(", ")));
                }
                self.who_reply = Some((reply, shown));
            }
            ServerMsg::SockInfo { nick, fields } => {
                // A block: a header, then a few fields per line.
                self.system(format!("server's view of {nick}'s socket:"));
                for chunk in fields.chunks(4) {
                    let line = chunk
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("  ");
                    self.system(format!("  {line}"));
                }
            }
            other => {
                // Notices, errors, room lists, sockinfo, bye: one line each.
                if let Some(line) = crate::net::text::server_line(&other) {
                    match line.strip_prefix("! ") {
                        Some(t) => self.error(t.to_string()),
                        None => self.system(line.trim_start_matches("* ").to_string()),
                    }
                }
            }
        }
        actions
    }
}

fn push_capped(v: &mut VecDeque<u64>, x: u64) {
    v.push_back(x);
    if v.len() > SPARK_MAX {
        v.pop_front();
    }
}
