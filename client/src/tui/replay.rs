//! Record and replay at the one place the app receives events. Live,
//! [`feed`] hands every event to `App::update` and records what the app
//! got from the net task, the lines the user sent and the rooms they moved
//! to. `sockchat replay FILE` ([`run`]) builds a fresh app from the header
//! and [`apply`]s the same entries at the same (virtual) times, so the
//! socket panel, the event log and the chat come out as they were, by
//! construction. It opens no socket: what the app asks of the network is
//! dropped.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Paragraph;

use super::app::{Action, App, Bell, Event, PanelMode, UiConfig};
use crate::present::command::{Input, parse_input};
use crate::record::format::{Entry, Header, Stamped};
use crate::record::read::{Recording, read_file};
use crate::record::write::Recorder;

/// Slowest and fastest replay (`--speed`, `-`/`+`).
pub const SPEED_MIN: f64 = 1.0 / 16.0;
pub const SPEED_MAX: f64 = 1024.0;
/// Redraw at least this often (the clock on the status line moves).
const TICK: Duration = Duration::from_millis(100);
/// And at most this often.
const FRAME: Duration = Duration::from_millis(16);

/// `sockchat replay FILE [--speed N]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// A recording made with `sockchat --record FILE`.
    pub file: PathBuf,
    /// Play N times faster than it happened (0.5: half speed), from 1/16
    /// to 1024. `+` and `-` double and halve it while playing.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
}

// ------------------------------------------------------------- live side

/// Apply `e` to the app (live) and, when recording, record what it brings:
/// a socket event before the app sees it; after it, the lines the user
/// sent (secrets as `***`) and a move to another room made by a key.
pub fn feed(app: &mut App, e: Event, rec: Option<&mut Recorder>) -> Vec<Action> {
    let Some(rec) = rec else {
        return app.update(e);
    };
    if app.typed.is_none() {
        app.typed = Some(Vec::new());
    }
    let by_user = matches!(e, Event::Key(_) | Event::Mouse(_));
    let before = app.current;
    let quitting = app.quitting;
    if let Event::Socket(ev) = &e {
        rec.socket(ev, app.now);
    }
    let actions = app.update(e);
    let mut lines = app.typed.as_mut().map(std::mem::take).unwrap_or_default();
    if by_user && app.quitting && !quitting && lines.is_empty() {
        // Ctrl-C (or Ctrl-D) quit: the replay must know it was asked for,
        // or the close that follows reads as a lost connection.
        lines.push("/quit".into());
    }
    for line in lines {
        rec.entry(&Entry::Typed(line), app.now);
    }
    if by_user && app.current != before {
        rec.entry(&Entry::Focus(app.room().name.clone()), app.now);
    }
    actions
}

// ----------------------------------------------------------- replay side

/// The app a recording starts from: what the recorded client started with
/// (nick, room, server, clock, time zone), drawn with the default keys.
pub fn replay_app(h: &Header, base: Instant) -> App {
    let ui = UiConfig {
        server: h.server.clone(),
        room: h.room.clone(),
        utc_offset_secs: h.utc_offset_secs,
        panel: PanelMode::Auto,
        // A replay does not ring.
        bell: Bell::Off,
        chat_log: false,
        ..UiConfig::default()
    };
    App::new(ui, &h.nick, base, h.start_ms)
}

/// Apply one recorded entry at its time (`base` is `t_ms` 0). What the app
/// asks of the network is dropped.
pub fn apply(app: &mut App, base: Instant, s: &Stamped) {
    let now = base + s.t;
    if now > app.now {
        app.update(Event::Tick(now));
    }
    match &s.entry {
        Entry::Socket(ev) => {
            app.update(Event::Socket(ev.clone()));
        }
        Entry::Typed(line) => {
            // The help overlay was closed by a key, which is not recorded.
            if matches!(parse_input(line, &app.cfg.limits), Ok(Input::Help)) {
                return;
            }
            // As it was sent: the input line, then Enter.
            app.input.set(line);
            app.update(Event::Key(KeyEvent::new(
                KeyCode::Enter,
                KeyModifiers::NONE,
            )));
        }
        Entry::Focus(room) => {
            app.show_room(room);
        }
    }
}

/// The replay's clock and position.
#[derive(Debug)]
pub struct Player {
    rec: Recording,
    /// The next entry to apply.
    next: usize,
    /// `t_ms` 0 in the app's clock.
    base: Instant,
    /// The last entry's time.
    end: Duration,
    /// Where the replay is in the recording's time.
    pos: Duration,
    pub speed: f64,
    pub paused: bool,
    /// When `pos` was last moved.
    last: Instant,
}

impl Player {
    pub fn new(rec: Recording, base: Instant, speed: f64, now: Instant) -> Player {
        let end = rec.entries.iter().map(|e| e.t).max().unwrap_or_default();
        Player {
            rec,
            next: 0,
            base,
            end,
            pos: Duration::ZERO,
            speed: if speed.is_finite() {
                speed.clamp(SPEED_MIN, SPEED_MAX)
            } else {
                1.0
            },
            paused: false,
            last: now,
        }
    }

    /// Every entry applied.
    pub fn finished(&self) -> bool {
        self.next >= self.rec.entries.len()
    }

    /// Move the clock to `now` (at the speed, unless paused) and apply
    /// every entry that is due.
    pub fn advance(&mut self, app: &mut App, now: Instant) {
        if !self.paused && !self.finished() {
            let dt = now.saturating_duration_since(self.last);
            self.pos = self
                .pos
                .saturating_add(dt.mul_f64(self.speed))
                .min(self.end);
        }
        self.last = now;
        while let Some(e) = self.rec.entries.get(self.next)
            && e.t <= self.pos
        {
            apply(app, self.base, e);
            self.next += 1;
        }
        let at = self.base + self.pos;
        if at > app.now {
            app.update(Event::Tick(at));
        }
    }

    /// How long until the next entry is due (real time), within
    /// [`FRAME`]..[`TICK`].
    pub fn wait(&self) -> Duration {
        match self.rec.entries.get(self.next) {
            Some(e) if !self.paused => {
                e.t.saturating_sub(self.pos)
                    .div_f64(self.speed)
                    .clamp(FRAME, TICK)
            }
            _ => TICK,
        }
    }

    pub fn toggle_pause(&mut self, now: Instant) {
        self.last = now;
        self.paused = !self.paused;
    }

    /// Double (`true`) or halve the speed, within the bounds.
    pub fn change_speed(&mut self, faster: bool) {
        let s = if faster {
            self.speed * 2.0
        } else {
            self.speed / 2.0
        };
        self.speed = s.clamp(SPEED_MIN, SPEED_MAX);
    }

    /// The status line: where (the recording's time, and its wall clock
    /// there: `app`'s), how fast, and the keys.
    pub fn status(&self, app: &App) -> String {
        let state = if self.finished() {
            "END"
        } else if self.paused {
            "PAUSED"
        } else {
            "PLAYING"
        };
        let mut s = format!(
            " REPLAY {state} {} / {} ({}) x{} · {}/{} events",
            clock(self.pos),
            clock(self.end),
            super::clock::hms(app.wall_ms(), app.cfg.utc_offset_secs),
            self.speed,
            self.next,
            self.rec.entries.len()
        );
        let skipped: u64 = self.rec.skipped.values().sum();
        if skipped > 0 {
            s.push_str(&format!(" · {skipped} skipped"));
        }
        s.push_str(" · space pause, +/- speed, q quit");
        s
    }
}

/// `1:05.3`
fn clock(d: Duration) -> String {
    let ds = d.as_millis() / 100;
    format!("{}:{:02}.{}", ds / 600, (ds / 10) % 60, ds % 10)
}

/// What a key does in a replay: `true` ends it. Nothing can be typed; the
/// keys that look around (rooms, scrolling, F1-F4) work as in the chat.
fn key(app: &mut App, player: &mut Player, k: KeyEvent) -> bool {
    if k.kind == KeyEventKind::Release {
        return false;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let alt = k.modifiers.contains(KeyModifiers::ALT);
    match k.code {
        KeyCode::Char('c' | '\\' | 'd') if ctrl => return true,
        KeyCode::Char('q') if !ctrl && !alt => return true,
        KeyCode::Char(' ') if !ctrl && !alt => player.toggle_pause(Instant::now()),
        KeyCode::Char('+' | '=') if !ctrl && !alt => player.change_speed(true),
        KeyCode::Char('-' | '_') if !ctrl && !alt => player.change_speed(false),
        KeyCode::Char(_) if !ctrl && !alt => {}
        KeyCode::Enter | KeyCode::Backspace | KeyCode::Delete | KeyCode::Tab => {}
        _ => {
            app.update(Event::Key(k));
        }
    }
    false
}

fn draw_status(player: &Player, app: &App, f: &mut ratatui::Frame) {
    let area = f.area();
    if area.height < 2 {
        return;
    }
    // Over the input line, which a replay does not use.
    let row = Rect::new(area.x, area.bottom() - 2, area.width, 1);
    let style = if app.cfg.colors {
        Style::default()
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    f.render_widget(Paragraph::new(player.status(app)).style(style), row);
}

/// Play `player`'s recording into `app` until the user quits (the last
/// screen stays after the end).
pub async fn replay_loop<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: S,
    player: &mut Player,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<crossterm::event::Event>> + Unpin,
{
    use crossterm::event::Event as C;
    loop {
        player.advance(app, Instant::now());
        if app.redraw {
            app.redraw = false;
            terminal.clear()?;
        }
        terminal.draw(|f| {
            super::view::render(app, f);
            draw_status(player, app, f);
        })?;
        tokio::select! {
            e = input.next() => match e {
                Some(Ok(C::Key(k))) => if key(app, player, k) {
                    return Ok(());
                },
                Some(Ok(C::Mouse(m))) => {
                    app.update(Event::Mouse(m));
                }
                Some(Ok(C::Resize(w, h))) => {
                    app.update(Event::Resize(w, h));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = tokio::time::sleep(player.wait()) => {}
        }
    }
}

/// Entry point: `sockchat replay FILE [--speed N]`.
pub fn run(args: ReplayArgs) -> anyhow::Result<std::process::ExitCode> {
    if !(SPEED_MIN..=SPEED_MAX).contains(&args.speed) {
        return Err(crate::usage::usage(format!(
            "--speed {}: give a number from 1/16 ({SPEED_MIN}) to {SPEED_MAX}",
            args.speed
        )));
    }
    let rec = read_file(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("sockchat replay draws in a terminal, and stdout is not one");
    }
    let skipped = rec.skipped_text();
    let base = Instant::now();
    let mut app = replay_app(&rec.header, base);
    let mut player = Player::new(rec, base, args.speed, base);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let guard = super::TerminalGuard::enter()?;
        let mut terminal = Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))?;
        terminal.clear()?;
        if let Ok(s) = terminal.size() {
            app.size = (s.width, s.height);
        }
        let events = futures::stream::select(super::term_input::events()?, super::quit_signals());
        let r = replay_loop(&mut terminal, &mut app, events, &mut player).await;
        drop(guard);
        r
    })?;
    if let Some(s) = skipped {
        eprintln!("sockchat replay: {}: {s}", args.file.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}
