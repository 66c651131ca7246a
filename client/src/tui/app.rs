//! The chat client's state and its one `update(Event)` function. No I/O
//! here: the loop feeds events in, takes [`Action`]s out, and the view
//! draws whatever the state says. Tests drive this directly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use sockchat_shared::text::{Command, Severity};
use sockchat_shared::{ChatKind, ClientMsg, ErrorCode, ServerMsg};

use crate::net::{
    CloseReason, Fault, HalfClose, LineId, NetCmd, SocketEvent, SocketInfo, Transport, WireNews,
};
use crate::present::command::{Input, InputLimits, Local, command_names, parse_input};
use crate::present::text::{error_text, event_line, half_close_text};

use super::input::LineEditor;
use super::mention::Mentions;
pub use super::rooms::{ChatLine, LineKind, Room, RoomId, Rooms};

/// Lines typed and not yet confirmed, kept at most (the net task fails
/// what it cannot send long before).
const PENDING_MAX: usize = 1000;
/// Joins typed and not yet answered, remembered at most.
const JOINS_MAX: usize = 256;
/// Event log entries kept.
const LOG_MAX: usize = 1000;
/// Samples kept for the sparklines.
const SPARK_MAX: usize = 120;
/// Nicks ignored at most (`/ignore`), and away marks kept at most.
const IGNORE_MAX: usize = 1000;
const AWAY_MAX: usize = 100_000;
/// Chat lines queued for the chat log files between two loop turns, at
/// most (the loop writes them after every batch of events).
const CHATLOG_QUEUE_MAX: usize = 100_000;

/// When the terminal bell rings (`[client] bell`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bell {
    Off,
    /// Lines that mention us, and private messages (the default).
    Mentions,
    /// Private messages only.
    Pms,
    /// Every chat line or private message from someone else.
    All,
}

impl Bell {
    pub fn parse(s: &str) -> Result<Bell, String> {
        Ok(match s {
            "off" => Bell::Off,
            "mentions" => Bell::Mentions,
            "pms" => Bell::Pms,
            "all" => Bell::All,
            other => {
                return Err(format!(
                    "[client] bell must be \"off\", \"mentions\", \"pms\" or \"all\", not {other:?}"
                ));
            }
        })
    }
}

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
    /// Bytes of chat lines kept across all rooms (`[client] scrollback_bytes`).
    pub scrollback_bytes: usize,
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
    /// When the terminal bell rings.
    pub bell: Bell,
    /// Write every room's lines to a file in this folder (`[client]
    /// chat_log_dir`); `None`: no chat log.
    pub chat_log: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            server: "127.0.0.1:7878".into(),
            scrollback_bytes: sockchat_shared::config::ClientConfig::default().scrollback_bytes
                as usize,
            timestamps: true,
            colors: true,
            panel: PanelMode::Auto,
            utc_offset_secs: 0,
            limits: InputLimits::default(),
            info_poll: Duration::from_millis(250),
            room: "lobby".into(),
            keys: super::keys::KeyMap::default(),
            bell: Bell::Mentions,
            chat_log: false,
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
    /// How long the current ping has waited for its answer (while it
    /// waits; cleared by the answer).
    pub lag: Option<Duration>,
    pub last_close: Option<String>,
}

/// One event log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub ts_ms: u64,
    pub text: String,
    pub error: bool,
}

/// A line the user typed that the server has not confirmed yet. It is
/// drawn below its room's lines, dimmed, until the net task reports it
/// delivered (the server's echo then shows it for good) or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The room the user was looking at when they pressed Enter.
    pub room: RoomId,
    /// What it says, as it will read: `alice: hi`, `* alice waves`,
    /// `[pm] -> bob: hi`.
    pub text: String,
    pub since: Instant,
}

/// The whole client state.
#[derive(Debug, Clone)]
pub struct App {
    pub cfg: UiConfig,
    pub nick: String,
    pub server_name: String,
    /// Cluster mode: the node we are on and its link (from its notices).
    pub cluster: Option<sockchat_shared::cluster::ClusterState>,
    pub rooms: Rooms,
    /// The room the user is looking at (and typing into).
    pub current: RoomId,
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
    /// Rooms whose Who answer we asked for ourselves (not shown as a line).
    auto_who: HashSet<String>,
    /// The Who reply whose pages are arriving (PROTOCOL.md "Paged
    /// replies"): its room and last nick only (all `page::continues`
    /// looks at), and whether it is shown as a line. Only while Who pages
    /// arrive back to back.
    who_reply: Option<(ServerMsg, bool)>,
    /// Joins the user typed, oldest first, not yet answered: the room, and
    /// the room the user was in before (where a refused join leads back).
    joins: VecDeque<(RoomId, RoomId)>,
    /// Lines typed and not yet confirmed or failed, by id.
    pub pending: BTreeMap<LineId, Pending>,
    next_line: u64,
    /// Events dropped because a bound was reached (rooms, members), so the
    /// user is told once, not per event.
    over_bound_told: bool,
    /// File transfers moving now (bars above the input line).
    pub transfers: super::transfer::Transfers,
    /// This connection's packets and the kernel's socket after our close.
    pub wire: super::wire_view::WireLog,
    /// F4: the wire view in the chat's place.
    pub show_wire: bool,
    /// Our nick's identity key, to find mentions.
    mentions: Mentions,
    /// Bells owed to the terminal (the loop rings once and clears).
    pub bells: u32,
    /// Ctrl-L: the loop clears the terminal and draws everything again.
    pub redraw: bool,
    /// Lines scrolled up in the help overlay and in the F3 event log.
    pub help_scroll: usize,
    pub log_scroll: usize,
    /// Away marks of other users (nick -> text), from `Away` messages.
    pub away: HashMap<String, String>,
    /// Our own away text, while we are away.
    pub away_me: Option<String>,
    /// Identity keys of the nicks `/ignore`d, and the nicks as typed.
    ignored: BTreeSet<String>,
    ignored_names: BTreeSet<String>,
    /// The current connection outage: its one chat line (room, line
    /// number), what ended the connection, and when.
    outage: Option<Outage>,
    /// The last `/search` text and the line number it found.
    pub search: Option<(String, Option<u64>)>,
    /// Rooms with lines not yet seen, in the order they got them (the
    /// activity line when the sidebar is hidden; never a walk over every
    /// room).
    pub activity: Vec<RoomId>,
    /// Lines for the chat log files (room name, line) when `chat_log` is
    /// on; the loop writes them (as `view::plain_line`).
    pub chatlog: Vec<(String, ChatLine)>,
    /// `--record`: the lines the user sent since the loop last took them
    /// (`tui/replay.rs`); `None` when not recording.
    pub typed: Option<Vec<String>>,
}

/// One connection outage: a single line in the chat that the following
/// attempts update (their details are in the event log).
#[derive(Debug, Clone)]
struct Outage {
    room: RoomId,
    line: u64,
    first: String,
    /// The latest failure after the first, and the attempt it ended.
    last: Option<(u32, String)>,
    attempt: u32,
    /// The attempt that was up when it started.
    start: u32,
    since: Instant,
}

impl Outage {
    /// The line: what ended the connection, then the latest attempt.
    fn text(&self) -> String {
        match &self.last {
            Some((n, why)) => format!("{} — attempt {n}: {why}", self.first),
            None => self.first.clone(),
        }
    }
}

impl App {
    pub fn new(cfg: UiConfig, nick: &str, now: Instant, wall_ms: u64) -> Self {
        let first_name = if cfg.room.is_empty() {
            "lobby".to_string()
        } else {
            cfg.room.clone()
        };
        let mut rooms = Rooms::new(&first_name, cfg.scrollback_bytes);
        let current = rooms.first();
        // The configured room is where the user wants to be: the net task
        // joins it after the welcome, and the focus stays on it meanwhile.
        if let Some(r) = rooms.get_mut(current) {
            r.rejoin = true;
        }
        Self {
            cfg,
            nick: nick.to_string(),
            server_name: String::new(),
            cluster: None,
            rooms,
            current,
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
                lag: None,
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
            auto_who: HashSet::new(),
            who_reply: None,
            joins: VecDeque::new(),
            pending: BTreeMap::new(),
            next_line: 1,
            over_bound_told: false,
            transfers: Default::default(),
            wire: Default::default(),
            show_wire: false,
            mentions: Mentions::default(),
            bells: 0,
            redraw: false,
            help_scroll: 0,
            log_scroll: 0,
            away: HashMap::new(),
            away_me: None,
            ignored: BTreeSet::new(),
            ignored_names: BTreeSet::new(),
            outage: None,
            search: None,
            activity: Vec::new(),
            chatlog: Vec::new(),
            typed: None,
        }
    }

    /// Wall-clock Unix ms for "now" (follows `Tick`s, so tests are stable).
    pub fn wall_ms(&self) -> u64 {
        self.wall0_ms + self.now.saturating_duration_since(self.started).as_millis() as u64
    }

    /// The room the user is looking at.
    pub fn room(&self) -> &Room {
        match self.rooms.get(self.current) {
            Some(r) => r,
            // `current` always names a room: every removal moves it first.
            None => self.first_room(),
        }
    }

    fn first_room(&self) -> &Room {
        let mut it = self.rooms.iter();
        match it.next() {
            Some((_, r)) => r,
            // Rooms never drops its last room.
            None => unreachable!("Rooms always holds a room"),
        }
    }

    fn room_mut(&mut self) -> Option<&mut Room> {
        self.rooms.get_mut(self.current)
    }

    /// The room called `name`, by its exact (unsanitised) name.
    pub fn find_room(&self, name: &str) -> Option<&Room> {
        self.rooms.find(name).and_then(|id| self.rooms.get(id))
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

    /// The room called `name`, created if new; `None` (and one note to the
    /// user) past the bound on rooms.
    fn room_id(&mut self, name: &str) -> Option<RoomId> {
        let id = self.rooms.ensure(name);
        if id.is_none() {
            self.over_bound(format!(
                "more than {} rooms: events for further rooms are not shown",
                super::rooms::ROOMS_MAX
            ));
        }
        id
    }

    fn over_bound(&mut self, what: String) {
        if !self.over_bound_told {
            self.over_bound_told = true;
            self.log(what.clone(), true);
            self.error(what);
        }
    }

    fn push_to(&mut self, id: RoomId, line: ChatLine) {
        let counts =
            !line.history && matches!(line.kind, LineKind::Chat { .. } | LineKind::Private { .. });
        if id != self.current
            && counts
            && let Some(r) = self.rooms.get_mut(id)
        {
            r.unread += 1;
            if line.mention {
                r.mentions += 1;
            }
            // Its first unread line since it was last in view (switching
            // to it clears both).
            if r.unread == 1 {
                self.activity.push(id);
            }
        }
        self.day_line(id, line.ts_ms);
        if self.cfg.chat_log
            && self.chatlog.len() < CHATLOG_QUEUE_MAX
            && let Some(r) = self.rooms.get(id)
        {
            self.chatlog.push((r.name.clone(), line.clone()));
        }
        self.rooms.push(id, line);
    }

    /// A date line before a line whose (local) day differs from the line
    /// before it in that room, or from today in an empty room.
    fn day_line(&mut self, id: RoomId, ts_ms: u64) {
        let off = self.cfg.utc_offset_secs;
        let day = super::clock::day_of(ts_ms, off);
        let Some(r) = self.rooms.get(id) else {
            return;
        };
        let before = match r.lines.back() {
            Some(l) => super::clock::day_of(l.ts_ms, off),
            None => super::clock::day_of(self.wall_ms(), off),
        };
        if day != before {
            self.rooms
                .push(id, ChatLine::local(ts_ms, LineKind::Day, String::new()));
        }
    }

    fn add_member(&mut self, id: RoomId, nick: &str) {
        // Our own nick is not listed (the sidebar adds it): a rename of
        // ours then costs nothing however many rooms we are in.
        if nick != self.nick && !self.rooms.add_member(id, nick) {
            self.over_bound(format!(
                "more than {} members over all rooms: further members are not listed",
                super::rooms::MEMBERS_MAX
            ));
        }
    }

    fn system(&mut self, text: String) {
        let ts = self.wall_ms();
        let cur = self.current;
        self.push_to(cur, ChatLine::local(ts, LineKind::System, text));
    }

    /// Key/value pairs (`/sockinfo`, `/stats`) as system lines, four a line.
    fn field_block(&mut self, fields: &[(String, String)]) {
        for chunk in fields.chunks(4) {
            let line = chunk
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("  ");
            self.system(format!("  {line}"));
        }
    }

    fn error(&mut self, text: String) {
        let ts = self.wall_ms();
        let cur = self.current;
        self.push_to(cur, ChatLine::local(ts, LineKind::Error, text));
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

    fn switch_to(&mut self, id: RoomId) {
        if let Some(r) = self.rooms.get_mut(id) {
            r.unread = 0;
            r.mentions = 0;
            self.current = id;
            self.activity.retain(|a| *a != id);
        }
    }

    /// Ring the bell for a live line from someone else, as `[client]
    /// bell` says.
    fn ring(&mut self, private: bool, mention: bool) {
        let ring = match self.cfg.bell {
            Bell::Off => false,
            Bell::Mentions => mention || private,
            Bell::Pms => private,
            Bell::All => true,
        };
        if ring {
            self.bells = self.bells.saturating_add(1);
        }
    }

    /// Is `nick` ignored (`/ignore`)?
    fn ignores(&self, nick: &str) -> bool {
        !self.ignored.is_empty()
            && self
                .ignored
                .contains(&sockchat_shared::fold::nick_key(nick))
    }

    /// Is this our own nick (as the server compares nicks)?
    fn is_me(&self, nick: &str) -> bool {
        nick == self.nick || sockchat_shared::fold::same_nick(nick, &self.nick)
    }

    /// The private view with `peer`, created if new.
    fn query_id(&mut self, peer: &str) -> Option<RoomId> {
        let id = self.room_id(&format!("@{peer}"))?;
        if let Some(r) = self.rooms.get_mut(id) {
            r.query = Some(peer.to_string());
        }
        Some(id)
    }

    /// Every room name (for Tab after `/join`), the one in view first.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.query.is_none())
            .take(10_000)
            .map(|(_, r)| r.name.clone())
            .collect()
    }

    /// Every known nick (for Tab completion): current room first.
    pub fn known_nicks(&self) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut v: Vec<String> = Vec::new();
        let cur = std::iter::once(self.room());
        for r in cur.chain(self.rooms.iter().map(|(_, r)| r)) {
            for m in &r.members {
                if seen.insert(m.as_str()) {
                    v.push(m.clone());
                }
            }
        }
        v
    }

    /// The pending lines of the room the user is looking at, oldest first.
    pub fn pending_here(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values().filter(|p| p.room == self.current)
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
                self.close_overlays();
                self.input.insert_str(&s);
                Vec::new()
            }
            Event::Mouse(m) => {
                self.mouse(m);
                Vec::new()
            }
            Event::Key(k) => {
                let mut a = self.key(k);
                self.ask_who_here(&mut a);
                a
            }
            Event::Socket(s) => {
                self.socket(s);
                let mut a = Vec::new();
                self.ask_who_here(&mut a);
                a
            }
        }
    }

    /// Ask for the member list of the room in view, once per connection,
    /// when we are in it. Only the room the user looks at: a server that
    /// puts us in 100,000 rooms does not get 100,000 questions back.
    fn ask_who_here(&mut self, actions: &mut Vec<Action>) {
        let Some(r) = self.rooms.get_mut(self.current) else {
            return;
        };
        if !r.joined || r.who_asked || self.quitting {
            return;
        }
        r.who_asked = true;
        let room = r.name.clone();
        self.auto_who.insert(room.clone());
        actions.push(Action::Net(NetCmd::Send {
            id: None,
            msg: ClientMsg::Who { room },
        }));
    }

    fn mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(3),
            MouseEventKind::ScrollDown => self.scroll_down(3),
            _ => {}
        }
    }

    /// Scroll up, but never so far that the oldest line leaves the top of
    /// the screen (the view stops with a full screen, not an empty one).
    pub fn scroll_up(&mut self, n: usize) {
        let rows = self.page();
        if let Some(r) = self.room_mut() {
            let max = r.lines.len().saturating_sub(rows.min(r.lines.len()));
            r.scroll = r.scroll.saturating_add(n).min(max);
        }
    }

    pub fn scroll_down(&mut self, n: usize) {
        if let Some(r) = self.room_mut() {
            r.scroll = r.scroll.saturating_sub(n);
            if r.scroll == 0 {
                r.new_below = 0;
            }
        }
    }

    /// Close the help and the event log; true if one was open.
    fn close_overlays(&mut self) -> bool {
        let open = self.show_help || self.show_log;
        self.show_help = false;
        self.show_log = false;
        self.help_scroll = 0;
        self.log_scroll = 0;
        open
    }

    /// The scroll keys of an open overlay (help, event log): they move it
    /// instead of closing it. True if the key was one.
    fn overlay_scroll(&mut self, k: &KeyEvent) -> bool {
        let page = self.page();
        let pos = if self.show_help {
            &mut self.help_scroll
        } else {
            &mut self.log_scroll
        };
        // The help scrolls down from its top; the log up from its newest.
        let down = self.show_help;
        let (towards_end, n) = match k.code {
            KeyCode::Up => (!down, 1),
            KeyCode::Down => (down, 1),
            KeyCode::PageUp => (!down, page),
            KeyCode::PageDown => (down, page),
            KeyCode::Home => (!down, usize::MAX / 2),
            KeyCode::End => (down, usize::MAX / 2),
            _ => return false,
        };
        *pos = if towards_end {
            pos.saturating_add(n)
        } else {
            pos.saturating_sub(n)
        };
        // The view clamps what is past the end; keep the number small.
        *pos = (*pos).min(if self.show_help { 1000 } else { LOG_MAX });
        true
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Action> {
        if k.kind == KeyEventKind::Release {
            return Vec::new();
        }
        // An open overlay closes on any key, and the key then does what it
        // always does: typed text goes into the input line, Enter sends it.
        // Nothing typed is lost or sent elsewhere because an overlay was
        // open. Only Esc and the overlay's own key just close it.
        let keys = self.cfg.keys;
        if (self.show_help || self.show_log) && self.overlay_scroll(&k) {
            return Vec::new();
        }
        if self.show_help || self.show_log {
            let own = (self.show_help && keys.help.matches(&k))
                || (self.show_log && keys.log.matches(&k));
            self.close_overlays();
            if own || k.code == KeyCode::Esc {
                return Vec::new();
            }
        }
        // The rebindable keys first (they may shadow an editing key).
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
        if keys.wire.matches(&k) {
            self.show_wire = !self.show_wire;
            return Vec::new();
        }
        if keys.next_room.matches(&k) {
            self.next_room(true);
            return Vec::new();
        }
        if keys.prev_room.matches(&k) {
            self.next_room(false);
            return Vec::new();
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let alt = k.modifiers.contains(KeyModifiers::ALT);
        match k.code {
            // A half-typed line is cleared first, as shells do (Ctrl-Y
            // brings it back); Ctrl-C on an empty line quits.
            KeyCode::Char('c') if ctrl && !self.input.is_empty() && !self.quitting => {
                self.input.clear();
            }
            KeyCode::Char('c' | '\\') if ctrl => return self.quit(String::new()),
            KeyCode::Char('l') if ctrl => self.redraw = true,
            KeyCode::Char('y') if ctrl => self.input.yank(),
            KeyCode::Char('b') if alt && !ctrl => self.input.word_left(),
            KeyCode::Char('f') if alt && !ctrl => self.input.word_right(),
            KeyCode::Char('d') if alt && !ctrl => self.input.delete_word_forward(),
            // Alt-1..9: the first nine rooms, Alt-0 the tenth.
            KeyCode::Char(c @ '0'..='9') if alt && !ctrl => {
                let n = c.to_digit(10).map(|d| (d as usize + 9) % 10).unwrap_or(0);
                if let Some(id) = self.rooms.nth(n) {
                    self.switch_to(id);
                }
            }
            KeyCode::Char('d') if ctrl && self.input.is_empty() => {
                return self.quit(String::new());
            }
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('u') if ctrl => self.input.kill_to_start(),
            KeyCode::Char('k') if ctrl => self.input.kill_to_end(),
            KeyCode::Char('w') if ctrl => self.input.delete_word(),
            KeyCode::Right if alt => self.next_room(true),
            KeyCode::Left if alt => self.next_room(false),
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
                let cmds = command_names();
                let faults: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                let nicks = self.known_nicks();
                let rooms = self.room_names();
                self.input.complete(&cmds, &faults, &rooms, &nicks);
            }
            KeyCode::Enter => {
                let line = self.input.submit();
                return self.submit(&line);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Show the room (or private view) called `name`, as a key that moved
    /// there would (a recording's change of room, `tui/replay.rs`).
    pub fn show_room(&mut self, name: &str) -> Vec<Action> {
        if let Some(id) = self.rooms.find(name) {
            self.switch_to(id);
        }
        let mut a = Vec::new();
        self.ask_who_here(&mut a);
        a
    }

    fn next_room(&mut self, forward: bool) {
        let id = self.rooms.step(self.current, forward);
        self.switch_to(id);
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

    /// Enter on a line: a command or chat text. A line is addressed to the
    /// room the user is looking at now (never to "the server's current
    /// room"), and `/join` moves the focus at once, so the next line goes
    /// to the room just joined.
    pub fn submit(&mut self, line: &str) -> Vec<Action> {
        if let Some(t) = &mut self.typed
            && !line.trim().is_empty()
        {
            t.push(line.to_string());
        }
        let mut input = match parse_input(line, &self.cfg.limits) {
            Ok(i) => i,
            Err(e) => {
                self.error(e);
                return Vec::new();
            }
        };
        // In a private view, text goes to the peer; what needs a room
        // does not apply.
        if let Some(peer) = self.room().query.clone() {
            input = match input {
                Input::Send(Command::Say(text)) => Input::Send(Command::Msg { to: peer, text }),
                Input::Send(Command::Leave(None)) => Input::Local(Local::Close),
                Input::Send(Command::Me(_) | Command::Who(None)) => {
                    self.error(format!(
                        "this is a private view with {peer}, not a room: /me and /who work in rooms"
                    ));
                    return Vec::new();
                }
                other => other,
            };
        }
        let room = self.room().name.clone();
        match &input {
            Input::Local(l) => {
                self.local(l.clone());
                return Vec::new();
            }
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
            Input::Send(Command::Join(r) | Command::JoinKey { room: r, .. }) => {
                if let Some(id) = self.rooms.find(r)
                    && self.rooms.get(id).is_some_and(|x| x.joined)
                {
                    self.switch_to(id);
                    return Vec::new();
                }
                let Some(id) = self.room_id(r) else {
                    return Vec::new();
                };
                if let Some(x) = self.rooms.get_mut(id) {
                    // Expected: the net task sends lines for it once joined.
                    x.rejoin = true;
                }
                if self.joins.len() >= JOINS_MAX {
                    self.joins.pop_front();
                }
                self.joins.push_back((id, self.current));
                self.switch_to(id);
            }
            _ => {}
        }
        let id = if input.is_line() {
            if self.pending.len() >= PENDING_MAX {
                self.error(format!(
                    "{PENDING_MAX} lines are still waiting for the server; not sent"
                ));
                return Vec::new();
            }
            let id = LineId(self.next_line);
            self.next_line += 1;
            let text = match &input {
                Input::Send(Command::Me(t)) => format!("* {} {t}", self.nick),
                Input::Send(Command::Msg { to, text }) => format!("[pm] -> {to}: {text}"),
                Input::Send(Command::Say(t)) => format!("{}: {t}", self.nick),
                _ => String::new(),
            };
            self.pending.insert(
                id,
                Pending {
                    room: self.current,
                    text,
                    since: self.now,
                },
            );
            self.scroll_down(usize::MAX);
            Some(id)
        } else {
            None
        };
        input
            .to_net(&room, id)
            .map(Action::Net)
            .into_iter()
            .collect()
    }

    /// The UI's own commands.
    fn local(&mut self, l: Local) {
        match l {
            Local::Query(nick) => {
                if let Some(id) = self.query_id(&nick) {
                    self.switch_to(id);
                }
            }
            Local::Close => {
                if self.room().query.is_none() {
                    self.error("/close closes a private view; to leave a room: /leave".into());
                    return;
                }
                let id = self.current;
                let next = self.rooms.step(id, false);
                self.switch_to(next);
                self.rooms.remove(id);
                self.activity.retain(|a| *a != id);
            }
            Local::Clear => {
                let id = self.current;
                self.rooms.clear_lines(id);
                self.search = None;
            }
            Local::Ignore(None) if self.ignored.is_empty() => {
                self.system("nobody is ignored (/ignore NICK hides a nick's lines)".into())
            }
            Local::Ignore(None) => {
                let list: Vec<String> = self.ignored_nicks();
                self.system(format!("ignored: {}", list.join(", ")));
            }
            Local::Ignore(Some(nick)) => {
                if self.ignored.len() >= IGNORE_MAX {
                    self.error(format!("at most {IGNORE_MAX} nicks can be ignored"));
                    return;
                }
                self.ignored.insert(sockchat_shared::fold::nick_key(&nick));
                self.ignored_names.insert(nick.clone());
                self.system(format!(
                    "ignoring {nick}: their lines and private messages are not shown (/unignore {nick})"
                ));
            }
            Local::Unignore(nick) => {
                let key = sockchat_shared::fold::nick_key(&nick);
                if self.ignored.remove(&key) {
                    self.ignored_names
                        .retain(|n| sockchat_shared::fold::nick_key(n) != key);
                    self.system(format!("no longer ignoring {nick}"));
                } else {
                    self.error(format!("{nick} is not ignored"));
                }
            }
            Local::Search(text) => self.find(text),
        }
    }

    /// The nicks ignored, as typed.
    pub fn ignored_nicks(&self) -> Vec<String> {
        self.ignored_names.iter().cloned().collect()
    }

    /// `/search`: scroll to the newest line above the last match (or the
    /// bottom) that holds the text, case-insensitively.
    fn find(&mut self, text: Option<String>) {
        let (needle, from) = match (text, &self.search) {
            (Some(t), _) => (t, None),
            (None, Some((t, at))) => (t.clone(), *at),
            (None, None) => {
                self.error("usage: /search TEXT (then /search again for older matches)".into());
                return;
            }
        };
        let lower = needle.to_lowercase();
        let page = self.page();
        let Some(r) = self.rooms.get_mut(self.current) else {
            return;
        };
        let front = r.front_no();
        let end = match from {
            Some(no) => no.saturating_sub(front) as usize,
            None => r.lines.len(),
        }
        .min(r.lines.len());
        let hit = (0..end)
            .rev()
            .find(|&i| r.lines[i].text.to_lowercase().contains(&lower) || matches!(&r.lines[i].kind, LineKind::Chat { from, .. } if from.to_lowercase().contains(&lower)));
        match hit {
            Some(i) => {
                // The match a few rows above the bottom of the screen.
                let below = r.lines.len() - 1 - i;
                r.scroll = below
                    .saturating_sub(page / 3)
                    .min(r.lines.len().saturating_sub(1));
                self.search = Some((needle, Some(front + i as u64)));
            }
            None => {
                let more = if from.is_some() {
                    "no older line"
                } else {
                    "no line"
                };
                self.search = Some((needle.clone(), from));
                self.error(format!("{more} in this room holds {needle:?}"));
            }
        }
    }

    /// A typed line was not delivered: it leaves the pending lines and
    /// stays in its room as an error, with what it said and why.
    pub fn line_failed(&mut self, id: LineId, why: &str) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let room = if self.rooms.get(p.room).is_some() {
            p.room
        } else {
            self.current
        };
        let ts = self.wall_ms();
        self.push_to(
            room,
            ChatLine::local(ts, LineKind::Error, format!("not sent: {} — {why}", p.text)),
        );
    }

    fn socket(&mut self, ev: SocketEvent) {
        self.wire.on_event(&ev, self.now);
        // Every event with words goes to the event log (packets have
        // their own view).
        let packets =
            matches!(&ev, SocketEvent::Wire(n) if matches!(**n, WireNews::Packets { .. }));
        if !matches!(ev, SocketEvent::Server(_))
            && !packets
            && let Some(line) = event_line(&ev, &self.nick)
        {
            self.log(line.text, line.severity == Severity::Error);
        }
        match ev {
            SocketEvent::Connecting { attempt, .. } => {
                self.conn.state = ConnState::Connecting { attempt };
                if let Some(o) = &mut self.outage {
                    o.attempt = attempt;
                }
                // A new socket: the old one's numbers no longer apply.
                self.conn.info = None;
                self.conn.udp = None;
                self.conn.info_at = None;
                self.conn.rtt_hist.clear();
                self.conn.thr_hist.clear();
                self.conn.latency = None;
                self.conn.lag = None;
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
                match self.outage.take() {
                    // The outage's one line says it is over.
                    Some(o) => {
                        let down = self.now.saturating_duration_since(o.since);
                        let text = format!(
                            "{} — reconnected after {} ({local} -> {peer})",
                            o.text(),
                            crate::present::duration::fmt_duration(down)
                        );
                        self.rooms.edit(o.room, o.line, text);
                    }
                    None => self.system(format!("connected {local} -> {peer} ({transport})")),
                }
            }
            SocketEvent::Server(m) => self.server(m),
            SocketEvent::Error(e) => self.outage_line(error_text(&e)),
            SocketEvent::HalfClosed(h) => {
                self.conn.state = ConnState::HalfClosed(h);
                match h {
                    // The server is going: the start of an outage.
                    HalfClose::PeerSentFin => self.outage_line(half_close_text(h).to_string()),
                    HalfClose::WeSentFin => self.system(half_close_text(h).to_string()),
                }
            }
            SocketEvent::Closed(r) => {
                let text = r.to_string();
                self.conn.state = ConnState::Closed(text.clone());
                self.conn.last_close = Some(text.clone());
                self.conn.lag = None;
                for room in self.rooms.iter_mut() {
                    room.rejoin = room.joined || room.rejoin;
                    room.joined = false;
                    room.who_asked = false;
                }
                self.rooms.clear_members();
                self.auto_who.clear();
                self.joins.clear();
                match r {
                    CloseReason::Peer(_) => self.outage_note(format!("CLOSED: {text}"), true),
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
                if let Some(o) = &self.outage {
                    let text = format!("{} — reconnecting (F3: every attempt)", o.text());
                    let (room, line) = (o.room, o.line);
                    self.rooms.edit(room, line, text);
                }
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
            SocketEvent::TcpState { .. } | SocketEvent::Wire(_) | SocketEvent::AfterClose(_) => {}
            SocketEvent::Latency(d) => {
                self.conn.latency = Some(d);
                self.conn.lag = None;
            }
            SocketEvent::Lag { waiting_ms } => {
                self.conn.lag = Some(Duration::from_millis(waiting_ms));
            }
            SocketEvent::LineConfirmed { id } => {
                self.pending.remove(&id);
            }
            SocketEvent::LineFailed { id, why } => self.line_failed(id, &why),
            SocketEvent::Transfer(e) => match self.transfers.on_event(&e) {
                Some((true, text)) => self.error(text),
                Some((false, text)) => self.system(text),
                None => {}
            },
            SocketEvent::FaultDone {
                fault,
                did,
                peer_sees,
            } => self.system(format!(
                "fault {fault}: {did}; the peer should see: {peer_sees}"
            )),
            SocketEvent::Local(s) => self.error(s),
            SocketEvent::Finished { .. } => {
                self.conn.state = ConnState::Finished;
                if self.quitting {
                    self.done = true;
                } else {
                    self.system("disconnected for good (reconnect is off): Ctrl-C to leave".into());
                }
            }
        }
    }

    /// What went wrong with the connection. The first thing in an outage
    /// is a line in the chat; what follows until the next connection
    /// (the close, every failed attempt) updates that one line: the event
    /// log keeps every detail.
    fn outage_line(&mut self, what: String) {
        self.outage_note(what, false);
    }

    /// [`App::outage_line`]; a `weak` note (the close that follows an
    /// error) does not replace what the attempt already said.
    fn outage_note(&mut self, what: String, weak: bool) {
        match &mut self.outage {
            Some(o) => {
                let said =
                    o.attempt == o.start || o.last.as_ref().is_some_and(|(n, _)| *n == o.attempt);
                if weak && said {
                    return;
                }
                o.last = Some((o.attempt, what));
                let text = o.text();
                let (room, line) = (o.room, o.line);
                self.rooms.edit(room, line, text);
            }
            None => {
                self.error(what.clone());
                let room = self.current;
                if let Some(line) = self.rooms.last_no(room) {
                    let attempt = match self.conn.state {
                        ConnState::Connecting { attempt } => attempt,
                        _ => 1,
                    };
                    self.outage = Some(Outage {
                        room,
                        line,
                        first: what,
                        last: None,
                        attempt,
                        start: attempt,
                        since: self.now,
                    });
                }
            }
        }
    }

    /// We are in room `i` (a Welcome, or our own Joined). The focus moved
    /// already when the user typed /join; otherwise it stays where the user
    /// is when that is a room we are in or are about to be in again (after a
    /// reconnect, or the configured room): a welcome to lobby does not move
    /// it. Only when the room in view is neither does it follow.
    fn entered(&mut self, i: RoomId) {
        if let Some(r) = self.rooms.get_mut(i) {
            r.joined = true;
            r.rejoin = false;
        }
        let cur = self.room();
        if !cur.joined && !cur.rejoin {
            self.switch_to(i);
        }
    }

    /// The server refused a join (it answers joins in order, so the oldest
    /// one we sent): its room goes unless lines are in it, and the focus
    /// goes back to where the user was. Lines typed for it fail (the net
    /// task says so).
    fn join_refused(&mut self) {
        let Some((room, back)) = self.joins.pop_front() else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(room) {
            r.rejoin = false;
        }
        if self.current == room {
            self.switch_to(back);
        }
        if self
            .rooms
            .get(room)
            .is_some_and(|r| r.lines.is_empty() && !r.joined)
        {
            if self.current == room {
                let next = self.rooms.step(room, false);
                self.switch_to(next);
            }
            self.rooms.remove(room);
        }
    }

    /// Put a line rendered by `shared::text::render` into a room, styled by
    /// `severity`.
    fn push_rendered(&mut self, id: RoomId, text: String, severity: Severity) {
        let ts = self.wall_ms();
        self.push_to(id, ChatLine::local(ts, LineKind::Rendered(severity), text));
    }

    fn server(&mut self, m: ServerMsg) {
        // A Who page continues the reply before it only if nothing came
        // between.
        let who_reply = self.who_reply.take();
        if let ServerMsg::Notice { text } = &m {
            sockchat_shared::cluster::parse(text, &mut self.cluster);
        }
        // The line a person reads, from the one renderer (chat and private
        // lines are drawn from their fields, to colour the nick; a SockInfo
        // is a block).
        let shown = match &m {
            ServerMsg::Chat { .. }
            | ServerMsg::Private { .. }
            | ServerMsg::SockInfo { .. }
            | ServerMsg::Stats { .. } => None,
            _ => sockchat_shared::text::render(&m, &self.nick),
        };
        let (text, severity) = shown
            .map(|l| (l.text, l.severity))
            .unwrap_or((String::new(), Severity::Notice));
        let rendered = text.clone();
        if let ServerMsg::Error { code, .. } = &m
            && matches!(
                code,
                ErrorCode::BadName | ErrorCode::TooManyRooms | ErrorCode::NoSuchRoom
            )
        {
            self.join_refused();
        }
        let cur = self.current;
        match m {
            ServerMsg::Welcome { nick, room, server } => {
                self.nick = nick.clone();
                self.mentions.set_nick(&nick);
                self.server_name = server.clone();
                // A cluster node says so right after (PROTOCOL.md).
                self.cluster = None;
                let Some(i) = self.room_id(&room) else {
                    return;
                };
                self.entered(i);
                let cur = self.current;
                self.push_rendered(cur, text, severity);
            }
            ServerMsg::Chat {
                room,
                from,
                text,
                kind,
                ts_ms,
                history,
            } => {
                let Some(i) = self.room_id(&room) else {
                    return;
                };
                if !history {
                    self.add_member(i, &from);
                } else if self.rooms.get(i).is_some_and(|r| {
                    r.lines.iter().rev().take(500).any(|l| {
                        l.server_ms == ts_ms
                            && l.text == text
                            && matches!(&l.kind, LineKind::Chat { from: f, .. } if *f == from)
                    })
                }) {
                    // Replayed on rejoin after a reconnect: already shown.
                    return;
                }
                if self.ignores(&from) {
                    return;
                }
                let mine = self.is_me(&from);
                let mention = !mine && self.mentions.in_text(&text);
                if history
                    && self
                        .rooms
                        .get(i)
                        .is_some_and(|r| r.lines.back().is_none_or(|l| !l.history))
                {
                    // The start of a replay: say what follows.
                    let now = self.wall_ms();
                    self.rooms.push(
                        i,
                        ChatLine::local(now, LineKind::HistoryStart, String::new()),
                    );
                } else if !history && !mine {
                    self.ring(false, mention);
                }
                // Live lines carry the time they reached us, like every
                // other line on screen (one clock, so the order on screen
                // is the order of arrival); replayed ones the server's
                // time, marked as history.
                let shown_at = if history { ts_ms } else { self.wall_ms() };
                self.push_to(
                    i,
                    ChatLine {
                        ts_ms: shown_at,
                        kind: LineKind::Chat {
                            from,
                            me: kind == ChatKind::Me,
                        },
                        text,
                        history,
                        mention,
                        server_ms: ts_ms,
                    },
                );
            }
            ServerMsg::Private {
                from,
                to,
                text,
                ts_ms,
            } => {
                // Every private message lives in the view of its peer
                // (`/query`), counted as a mention there.
                let ours = self.is_me(&from) && !self.is_me(&to);
                let peer = if ours { to.clone() } else { from.clone() };
                if !ours && self.ignores(&from) {
                    return;
                }
                let Some(i) = self.query_id(&peer) else {
                    return;
                };
                if !ours {
                    self.ring(true, true);
                }
                let now = self.wall_ms();
                self.push_to(
                    i,
                    ChatLine {
                        ts_ms: now,
                        kind: LineKind::Private { from, to },
                        text: text.clone(),
                        history: false,
                        mention: !ours,
                        server_ms: ts_ms,
                    },
                );
                if ours && self.current != i {
                    // Sent from a room: it is confirmed where it was typed.
                    let cur = self.current;
                    self.push_rendered(
                        cur,
                        format!("[pm] -> {peer}: {text} (in /query {peer})"),
                        Severity::Private,
                    );
                }
            }
            ServerMsg::Away { nick, text } => {
                let mine = self.is_me(&nick);
                // The answer to our own /away is always shown.
                let after_who = who_reply
                    .as_ref()
                    .map(|(_, shown)| *shown)
                    .filter(|_| !mine);
                if mine {
                    self.away_me = (!text.is_empty()).then(|| text.clone());
                } else if text.is_empty() {
                    self.away.remove(&nick);
                } else if self.away.len() < AWAY_MAX || self.away.contains_key(&nick) {
                    self.away.insert(nick.clone(), text.clone());
                }
                // Marks that follow a Who reply we asked for ourselves are
                // for the sidebar only.
                if after_who != Some(false) {
                    let cur = self.current;
                    self.push_rendered(cur, rendered, severity);
                }
                if let Some(w) = who_reply {
                    self.who_reply = Some(w);
                }
            }
            ServerMsg::Topic {
                room,
                text,
                changed,
                ..
            } => {
                let i = self.rooms.find(&room);
                if let Some(r) = i.and_then(|i| self.rooms.get_mut(i)) {
                    r.topic = (!text.is_empty()).then_some(text);
                }
                // A change is the room's news; the rest answers us here.
                let to = i.filter(|_| changed).unwrap_or(cur);
                self.push_rendered(to, rendered, severity);
            }
            ServerMsg::Joined { room, nick } => {
                let Some(i) = self.room_id(&room) else {
                    return;
                };
                self.add_member(i, &nick);
                if nick == self.nick {
                    self.joins.retain(|(r, _)| *r != i);
                    self.entered(i);
                }
                self.push_rendered(i, text, severity);
            }
            ServerMsg::Left { room, nick, reason } => {
                // An abrupt end (an errno) stands out.
                let abrupt = reason.as_ref().is_some_and(|r| r.errno().is_some());
                let severity = if abrupt { Severity::Error } else { severity };
                let Some(i) = self.rooms.find(&room) else {
                    self.push_rendered(cur, text, severity);
                    return;
                };
                self.rooms.remove_member(i, &nick);
                if nick == self.nick {
                    // We left: drop the buffer (keep at least one).
                    self.auto_who.remove(&room);
                    if i == self.current {
                        let next = self.rooms.step(i, false);
                        self.switch_to(next);
                    }
                    if !self.rooms.remove(i) {
                        if let Some(r) = self.rooms.get_mut(i) {
                            r.joined = false;
                            r.rejoin = false;
                        }
                        self.rooms.clear_room_members(i);
                    }
                    let cur = self.current;
                    self.push_rendered(cur, text, severity);
                    return;
                }
                self.push_rendered(i, text, severity);
            }
            ServerMsg::NickChanged { old, new } => {
                if let Some(a) = self.away.remove(&old) {
                    self.away.insert(new.clone(), a);
                }
                if old == self.nick {
                    self.mentions.set_nick(&new);
                    self.nick = new;
                    self.push_rendered(cur, text, severity);
                    return;
                }
                // Only the rooms that list the old nick (found by index).
                for i in self.rooms.rename_member(&old, &new) {
                    self.push_rendered(i, text.clone(), severity);
                }
                // A private view follows its peer to the new nick (as
                // irssi's query does), and says so.
                let view = self
                    .rooms
                    .iter()
                    .find(|(_, r)| {
                        r.query
                            .as_deref()
                            .is_some_and(|p| sockchat_shared::fold::same_nick(p, &old))
                    })
                    .map(|(i, _)| i);
                if let Some(i) = view {
                    if self.rooms.rename(i, &format!("@{new}"))
                        && let Some(r) = self.rooms.get_mut(i)
                    {
                        r.query = Some(new.clone());
                    }
                    self.push_rendered(i, text, severity);
                }
            }
            ServerMsg::Who { room, nicks } => {
                let page = ServerMsg::Who {
                    room: room.clone(),
                    nicks: nicks.last().cloned().into_iter().collect(),
                };
                // A later page of a long reply adds to the members; a new
                // reply replaces them.
                let (more, shown) = match &who_reply {
                    Some((reply, shown))
                        if sockchat_shared::page::continues(
                            reply,
                            &ServerMsg::Who {
                                room: room.clone(),
                                nicks: nicks.first().cloned().into_iter().collect(),
                            },
                        ) =>
                    {
                        (true, *shown)
                    }
                    _ => (false, !self.auto_who.remove(&room)),
                };
                // A fresh answer says who is here; the away marks that
                // follow it say who of them is away.
                for n in &nicks {
                    self.away.remove(n);
                }
                if let Some(i) = self.rooms.find(&room) {
                    let me = self.nick.clone();
                    let others = nicks.iter().filter(|n| **n != me);
                    if more {
                        for n in others {
                            self.add_member(i, n);
                        }
                    } else {
                        self.rooms.set_members(i, others);
                    }
                }
                if shown {
                    self.push_rendered(cur, text, severity);
                }
                self.who_reply = Some((page, shown));
            }
            ServerMsg::SockInfo { nick, fields } => {
                // A block: a header, then a few fields per line.
                let who = if nick.is_empty() { "your" } else { &nick };
                self.system(format!("server's view of {who}'s socket:"));
                self.field_block(&fields);
            }
            ServerMsg::Stats { fields } => {
                self.system("server stats (/stats):".to_string());
                self.field_block(&fields);
            }
            // Notices, errors, room lists, bye: one line each, as rendered
            // (ping and pong render to nothing).
            _ if !text.is_empty() => self.push_rendered(cur, text, severity),
            _ => {}
        }
    }
}

fn push_capped(v: &mut VecDeque<u64>, x: u64) {
    v.push_back(x);
    if v.len() > SPARK_MAX {
        v.pop_front();
    }
}
