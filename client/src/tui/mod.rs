//! The full-screen chat UI: state ([`app::App`]) + `update(Event)` + a pure
//! view ([`view::render`]). One loop ([`run_loop`]) owns the terminal and
//! selects over terminal input, socket events and a tick; it is generic over
//! the ratatui `Backend` and takes its event sources as parameters so tests
//! replay events into a `TestBackend`.
//!
//! **Invariant:** the terminal is restored on every exit path: normal return
//! (Drop of [`TerminalGuard`]), panic (the hook), and `/fault crash` (restored
//! by hand just before `abort`).

pub mod app;
pub mod chatlog;
pub mod clock;
pub mod flags;
pub mod input;
pub mod keys;
pub mod mention;
pub mod picker;
pub mod replay;
pub mod rooms;
pub mod term_input;
pub mod transfer;
pub mod view;
pub mod wire_view;
pub mod wrap;

use std::io;
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use crate::net::{self, NetCmd, SocketEvent};
use app::{Action, App, Event, PanelMode, UiConfig};

/// How often the screen is refreshed when nothing happens (countdowns).
const TICK: Duration = Duration::from_millis(250);
/// Shortest time between two draws (60 per second at most).
const FRAME: Duration = Duration::from_millis(16);
/// After /quit, how long we wait for the net task to close cleanly.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Entry point from the command line.
pub fn run(args: crate::cli::ChatArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut settings = args.settings()?;
    crate::cli::init_file_log(&settings)?;
    let c = &settings.client;
    let panel = match c.socket_panel.as_str() {
        "auto" => PanelMode::Auto,
        "on" => PanelMode::On,
        "off" => PanelMode::Off,
        other => anyhow::bail!(
            "[client] socket_panel must be \"auto\", \"on\" or \"off\", not {other:?}"
        ),
    };
    let mut ui = UiConfig {
        server: c.server.clone(),
        timestamps: c.timestamps,
        colors: c.colors,
        panel,
        utc_offset_secs: clock::local_utc_offset(),
        scrollback_bytes: usize::try_from(c.scrollback_bytes).unwrap_or(usize::MAX),
        limits: crate::present::command::InputLimits {
            max_message_len: settings.net.max_message_len,
            ..Default::default()
        },
        info_poll: settings.net.info_poll,
        room: c.room.clone(),
        keys: keys::KeyMap::from_config(c).map_err(|e| anyhow::anyhow!(e))?,
        bell: app::Bell::parse(&c.bell).map_err(|e| anyhow::anyhow!(e))?,
        chat_log: !c.chat_log_dir.is_empty(),
    };
    let chatlog = if c.chat_log_dir.is_empty() {
        None
    } else {
        let dir = std::path::Path::new(&c.chat_log_dir);
        Some(
            chatlog::ChatLog::new(dir)
                .map_err(|e| anyhow::anyhow!("[client] chat_log_dir {}: {e}", dir.display()))?,
        )
    };
    let nick = c.nick.clone();
    // One "start" for the app's clock and the recording's, so a replay
    // shows the same times. With the picker both start once a server is
    // chosen (the recording's header names it).
    let open_record = |settings: &crate::cli::ChatSettings| -> anyhow::Result<_> {
        let (t0, wall0) = (Instant::now(), sockchat_shared::now_ms());
        let record = match &args.record {
            Some(p) => Some(crate::record::open(p, "tui", settings, t0, wall0)?),
            None => None,
        };
        Ok((t0, wall0, record))
    };
    let mut started = if settings.pick_server {
        None
    } else {
        Some(open_record(&settings)?)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let crash = rt.block_on(async {
        let guard = TerminalGuard::enter()?;
        let mut terminal = Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))?;
        terminal.clear()?;
        // SIGTERM/SIGHUP become a Ctrl-\: quit cleanly and restore the
        // terminal instead of dying with it in raw mode.
        let mut events = futures::stream::select(term_input::events()?, quit_signals());
        if settings.pick_server {
            match picker::pick(&mut terminal, &mut events).await? {
                Some(choice) => {
                    use_choice(&mut settings, &args, choice);
                    // No `terminal.clear()` here: it asks the terminal
                    // for the cursor position, whose answer the input
                    // thread now reads. The chat's first draw replaces
                    // every cell the picker drew.
                    ui.server = settings.net.server.clone();
                }
                None => {
                    drop(guard);
                    return Ok(None);
                }
            }
        }
        let (t0, wall0, record) = match started.take() {
            Some(s) => s,
            None => open_record(&settings)?,
        };
        // The TUI always captures its connection (when it may): the wire
        // view must have the handshake when it is opened later.
        let (cmd_tx, ev_rx) = net::spawn(net::NetConfig {
            wire: true,
            ..settings.net.clone()
        });
        let mut app = App::new(ui, &nick, t0, wall0);
        if let Ok(s) = terminal.size() {
            app.size = (s.width, s.height);
        }
        if std::env::var_os("SOCKCHAT_DEBUG_PANIC").is_some() {
            // Test seam for the restore-on-panic guarantee (the tmux test
            // uses it): draw once in raw mode on the alternate screen, then
            // panic. The hook must leave the terminal as it was found.
            terminal.draw(|f| view::render(&app, f))?;
            panic!("SOCKCHAT_DEBUG_PANIC is set: deliberate panic");
        }
        let r = run_loop(
            &mut terminal,
            &mut app,
            events,
            ev_rx,
            cmd_tx,
            Outputs {
                bell: Box::new(io::stdout()),
                chatlog,
                record,
            },
        )
        .await;
        drop(guard);
        r
    })?;
    if let Some(Action::Crash { did, peer_sees }) = crash {
        // The terminal is already restored (guard dropped); nothing else is.
        eprintln!("sockchat: fault crash: {did}; the peer should see: {peer_sees}");
        std::process::abort();
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Connect where the picker said: its address (the announced UDP port
/// with `--udp`), with TLS and the announced fingerprint when the server
/// announced TLS (trusted as a first use: an existing pin still wins).
fn use_choice(
    settings: &mut crate::cli::ChatSettings,
    args: &crate::cli::ChatArgs,
    c: crate::discover::Choice,
) {
    let net = &mut settings.net;
    if net.udp.is_some() {
        net.server = c.udp.unwrap_or(c.server);
    } else {
        net.server = c.server;
        if let Some(fp) = c.tls {
            let known = crate::net::known_servers::default_path(
                args.known_servers.as_deref(),
                &settings.client.known_servers,
            );
            let opts = net.tls.get_or_insert(crate::net::tls::TlsOptions {
                fingerprint: None,
                known_servers: known,
                announced: None,
            });
            opts.announced = Some(fp);
        }
    }
    settings.client.server = net.server.clone();
}

/// A stream that yields a Ctrl-\ key event (quit) for each SIGTERM or SIGHUP.
pub(crate) fn quit_signals() -> impl Stream<Item = io::Result<crossterm::event::Event>> + Unpin {
    use crossterm::event::{Event as C, KeyCode, KeyEvent, KeyModifiers};
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let hup = signal(SignalKind::hangup()).ok();
    Box::pin(futures::stream::unfold(
        (term, hup),
        |(mut t, mut h)| async move {
            let got = async {
                match (&mut t, &mut h) {
                    (Some(t), Some(h)) => tokio::select! {
                        r = t.recv() => r,
                        r = h.recv() => r,
                    },
                    (Some(t), None) => t.recv().await,
                    (None, Some(h)) => h.recv().await,
                    (None, None) => std::future::pending().await,
                }
            }
            .await;
            got?;
            // Ctrl-\ quits even with a half-typed line (Ctrl-C would
            // only clear it).
            let quit = C::Key(KeyEvent::new(KeyCode::Char('\\'), KeyModifiers::CONTROL));
            Some((Ok(quit), (t, h)))
        },
    ))
}

/// Raw mode + alternate screen + mouse + bracketed paste, undone on Drop
/// and by the panic hook.
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter() -> io::Result<Self> {
        crossterm::terminal::enable_raw_mode()?;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            hook(info);
        }));
        crossterm::execute!(
            io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::event::EnableMouseCapture,
            crossterm::event::EnableBracketedPaste
        )?;
        Ok(Self)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Put the terminal back the way we found it (safe to call twice).
pub fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        io::stdout(),
        crossterm::event::DisableBracketedPaste,
        crossterm::event::DisableMouseCapture,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Convert a crossterm event into an app event.
pub fn from_crossterm(e: crossterm::event::Event) -> Option<Event> {
    use crossterm::event::Event as C;
    match e {
        C::Key(k) => Some(Event::Key(k)),
        C::Mouse(m) => Some(Event::Mouse(m)),
        C::Paste(s) => Some(Event::Paste(s)),
        C::Resize(w, h) => Some(Event::Resize(w, h)),
        C::FocusGained | C::FocusLost => None,
    }
}

/// Where the loop sends what is not drawn: the terminal bell (BEL after a
/// draw; stdout for the real terminal) and the chat log files.
pub struct Outputs {
    pub bell: Box<dyn io::Write + Send>,
    pub chatlog: Option<chatlog::ChatLog>,
    /// `--record FILE`: what the app receives, written as it goes.
    pub record: Option<crate::record::write::Recorder>,
}

/// The loop: draw, wait for input / socket events / tick, update, repeat.
/// Everything already queued is applied before the next draw. Returns when
/// the app is done, when every source has ended, or with a crash request.
pub async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: S,
    mut socket: mpsc::Receiver<SocketEvent>,
    net: mpsc::Sender<NetCmd>,
    mut out: Outputs,
) -> anyhow::Result<Option<Action>>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<crossterm::event::Event>> + Unpin,
{
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut input_open = true;
    let mut socket_open = true;
    let mut quit_deadline: Option<Instant> = None;
    // Draw at most once per FRAME: under a flood of messages the screen
    // still updates 60 times a second, but not once per message.
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    loop {
        let finishing = app.done || (!input_open && !socket_open);
        let due = last_draw.is_none_or(|t| t.elapsed() >= FRAME);
        if app.redraw {
            // Ctrl-L: forget what the terminal is believed to show and
            // draw every cell again (whatever another program or a
            // terminal's own idea of a character's width left there).
            app.redraw = false;
            // Not `Terminal::clear`: it asks the terminal for the cursor
            // position, reading the tty behind the input thread's back
            // (the reply is lost, and with the terminal gone crossterm's
            // read loop spins: a client left at 100 % CPU by a test whose
            // tmux went away). Clear the screen and forget the previous
            // frame (one swap resets it; the current one is already
            // empty), so the next draw sends every cell.
            ratatui::backend::Backend::clear_region(
                terminal.backend_mut(),
                ratatui::backend::ClearType::All,
            )?;
            terminal.swap_buffers();
            dirty = true;
        }
        if dirty && (due || finishing) {
            terminal.draw(|f| view::render(app, f))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        if app.bells > 0 {
            // One BEL however many lines asked for it in this turn.
            app.bells = 0;
            let _ = out.bell.write_all(b"\x07").and_then(|()| out.bell.flush());
        }
        if let Some(log) = &mut out.chatlog
            && !app.chatlog.is_empty()
        {
            let lines = std::mem::take(&mut app.chatlog)
                .into_iter()
                .map(|(room, l)| (room, view::plain_line(app, &l)))
                .collect();
            if let Some(e) = log.write(lines) {
                app.note_error(e);
            }
        }
        if app.done {
            return Ok(None);
        }
        if !input_open && !socket_open {
            return Ok(None);
        }
        if app.quitting && quit_deadline.is_none() {
            quit_deadline = Some(Instant::now() + QUIT_GRACE);
        }
        if let Some(d) = quit_deadline
            && Instant::now() >= d
        {
            return Ok(None);
        }
        let redraw_in = last_draw
            .map(|t| FRAME.saturating_sub(t.elapsed()))
            .unwrap_or_default();
        let mut events: Vec<Event> = Vec::new();
        tokio::select! {
            e = input.next(), if input_open => match e {
                Some(Ok(e)) => events.extend(from_crossterm(e)),
                Some(Err(e)) => return Err(e.into()),
                None => input_open = false,
            },
            e = socket.recv(), if socket_open => match e {
                Some(e) => events.push(Event::Socket(e)),
                None => socket_open = false,
            },
            _ = ticker.tick() => {}
            // A frame is owed: wake up to draw it.
            _ = tokio::time::sleep(redraw_in), if dirty => {}
        }
        dirty = true;
        // Everything already queued, then one draw: the rest of a typed
        // burst or paste (bounded, so a flood cannot starve the screen)...
        while input_open && events.len() < 4096 {
            match input.next().now_or_never() {
                Some(Some(Ok(e))) => events.extend(from_crossterm(e)),
                Some(Some(Err(e))) => return Err(e.into()),
                Some(None) => input_open = false,
                None => break,
            }
        }
        // ... and every socket event waiting.
        while socket_open {
            match socket.try_recv() {
                Ok(e) => events.push(Event::Socket(e)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => socket_open = false,
            }
            if events.len() > 1024 {
                break;
            }
        }
        // "Now" first, so countdowns these events start are exact.
        app.update(Event::Tick(Instant::now()));
        if let Some(err) = out.record.as_mut().and_then(|r| r.take_error()) {
            // A full disk: said in the event log and the chat, once.
            events.insert(0, Event::Socket(SocketEvent::Local(err)));
        }
        for e in events {
            for action in replay::feed(app, e, out.record.as_mut()) {
                match action {
                    Action::Net(cmd) => {
                        // Never wait on the net task here: it may itself be
                        // waiting for us to take its events.
                        let (cmd, why) = match net.try_send(cmd) {
                            Ok(()) => continue,
                            Err(mpsc::error::TrySendError::Full(c)) => {
                                (c, "too many commands waiting for the network")
                            }
                            Err(mpsc::error::TrySendError::Closed(c)) => {
                                (c, "the connection is finished")
                            }
                        };
                        match cmd {
                            NetCmd::Send { id: Some(id), .. } => app.line_failed(id, why),
                            _ => app.note_error(format!("{why}; not sent")),
                        }
                    }
                    crash @ Action::Crash { .. } => return Ok(Some(crash)),
                }
            }
        }
        if let Some(r) = &mut out.record {
            r.flush();
        }
        if !socket_open && app.quitting {
            app.done = true;
        }
    }
}
