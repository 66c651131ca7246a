//! Plain mode: stdin lines in (chat text and `/commands`, `/fault` too), one
//! line per event out — or one JSON object per line with `--json`. This is
//! what scripts and tests drive; it is also used automatically when stdout
//! is not a terminal.

use std::io::Write;

use std::collections::BTreeMap;

use sockchat_shared::names::normalize_room;
use sockchat_shared::text::Command;
use sockchat_shared::{ClientMsg, ServerMsg};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::net::{self, Fault, LineId, NetCmd, NetConfig, SocketEvent};
use crate::present::command::{Input, InputLimits, help_lines, parse_input};
use crate::present::text::{event_json, event_line};
use crate::record::format::Entry;
use crate::record::write::Recorder;

/// Entry point from the command line.
pub fn run(args: crate::cli::ChatArgs) -> anyhow::Result<std::process::ExitCode> {
    let settings = args.settings()?;
    crate::cli::init_file_log(&settings)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = args.json;
    let record = match &args.record {
        Some(p) => Some(crate::record::open(
            p,
            "plain",
            &settings,
            std::time::Instant::now(),
            sockchat_shared::now_ms(),
        )?),
        None => None,
    };
    let code = rt.block_on(run_with(
        settings.net,
        json,
        tokio::io::stdin(),
        std::io::stdout(),
        record,
    ))?;
    // Do not wait for the stdin reader: its blocking read() only returns
    // at the next line or EOF, and a driver that stopped for good (a
    // changed TLS certificate) must end the process now, not then.
    rt.shutdown_background();
    Ok(std::process::ExitCode::from(code))
}

/// Where the user is, as far as plain mode needs to know.
struct Where {
    nick: String,
    /// The focused room: where a typed line goes. `/join` moves it at once
    /// (the line after it is meant for the new room); a Welcome moves it
    /// only the first time (after a reconnect the driver rejoins our rooms
    /// and the focus stays where the user put it).
    room: String,
    /// The rooms we are in, oldest join first.
    rooms: Vec<String>,
    welcomed: bool,
}

impl Where {
    /// Follow our nick, our rooms (and the first room) from what the server
    /// says. Leaving the focused room moves the focus to the room joined
    /// last, as the server's own "current room" does.
    fn follow(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Welcome { nick, room, .. } => {
                self.nick = nick.clone();
                if !self.welcomed && self.room.is_empty() {
                    self.room = room.clone();
                }
                self.welcomed = true;
            }
            ServerMsg::NickChanged { old, new } if *old == self.nick => self.nick = new.clone(),
            ServerMsg::Joined { room, nick } if *nick == self.nick => {
                let r = normalize_room(room).to_string();
                if !self.rooms.contains(&r) {
                    // Joined by the server (the default room, a rejoin):
                    // known, but the focus stays.
                    self.rooms.insert(0, r);
                }
            }
            ServerMsg::Left { room, nick, .. } if *nick == self.nick => self.leave(room),
            _ => {}
        }
    }

    /// `/join ROOM`: the focus moves there at once.
    fn join(&mut self, room: &str) {
        let r = normalize_room(room).to_string();
        if !self.rooms.contains(&r) {
            self.rooms.push(r.clone());
        }
        self.room = r;
    }

    /// `/leave ROOM` or our Left: if it was the focused room, the focus
    /// moves to the room joined last.
    fn leave(&mut self, room: &str) {
        let r = normalize_room(room);
        self.rooms.retain(|x| x != r);
        if self.room == r
            && let Some(last) = self.rooms.last()
        {
            self.room = last.clone();
        }
    }
}

/// The lines typed and not yet confirmed or failed, and whether any failed:
/// what the exit status is made of.
#[derive(Default)]
struct Outcomes {
    next: u64,
    waiting: BTreeMap<LineId, String>,
    failed: u64,
}

impl Outcomes {
    /// Give a typed line (Say, Me, Private) its id; commands keep none.
    fn assign(&mut self, cmd: NetCmd, line: &str) -> NetCmd {
        match cmd {
            NetCmd::Send { id: None, msg }
                if matches!(
                    msg,
                    ClientMsg::Say { .. } | ClientMsg::Me { .. } | ClientMsg::Private { .. }
                ) =>
            {
                self.next += 1;
                let id = LineId(self.next);
                self.waiting.insert(id, line.to_string());
                NetCmd::Send { id: Some(id), msg }
            }
            other => other,
        }
    }
}

fn out_line(out: &mut impl Write, json: bool, text: String, mut value: serde_json::Value) {
    // A closed stdout (reader went away) is not worth a panic: ignore.
    let _ = if json {
        // When we saw it (Unix ms), so scripts can time events.
        value["at_ms"] = serde_json::json!(sockchat_shared::now_ms());
        writeln!(out, "{value}")
    } else {
        writeln!(out, "{text}")
    };
    let _ = out.flush();
}

/// Run plain mode with the given input and output (tests pass pipes),
/// recording into `record` (`--record`) when given.
/// Returns the exit code: 0 when every line typed was delivered (confirmed
/// by the server's echo) and the session ended by `/quit` or end of input;
/// 1 when a line failed, the connection could not be made, or it ended with
/// reconnect off.
pub async fn run_with(
    cfg: NetConfig,
    json: bool,
    input: impl AsyncRead + Unpin,
    mut out: impl Write,
    mut record: Option<Recorder>,
) -> anyhow::Result<u8> {
    let limits = InputLimits {
        max_message_len: cfg.max_message_len,
        ..InputLimits::default()
    };
    let mut here = Where {
        nick: cfg.nick.clone(),
        room: normalize_room(&cfg.room).to_string(),
        // Where the driver will put us (the configured room).
        rooms: Some(normalize_room(&cfg.room).to_string())
            .filter(|r| !r.is_empty())
            .into_iter()
            .collect(),
        welcomed: false,
    };
    let (cmd_tx, mut events) = net::spawn(cfg);
    let mut lines = BufReader::new(input).lines();
    let mut input_open = true;
    let mut outcomes = Outcomes::default();
    // End of input or /quit: the driver carries the Quit out after the
    // lines typed before it have their outcome (or fails them if no
    // session comes), so the exit status can say whether they arrived.
    let mut quit_sent = false;
    // A command the net task had no room for yet. While one waits, stdin is
    // not read (back-pressure on the writer of our stdin), but events keep
    // flowing: the net task may be waiting for us to take them, so we never
    // block on it.
    let mut pending: Option<NetCmd> = None;
    loop {
        tokio::select! {
            permit = cmd_tx.reserve(), if pending.is_some() => {
                // If the net task is gone, its Finished event ends us.
                if let (Ok(p), Some(cmd)) = (permit, pending.take()) {
                    p.send(cmd);
                }
            }
            line = lines.next_line(), if input_open && pending.is_none() => {
                let line = match line {
                    Ok(Some(l)) => {
                        if let Some(r) = &mut record {
                            r.entry(&Entry::Typed(l.clone()), std::time::Instant::now());
                        }
                        l
                    }
                    Ok(None) | Err(_) => {
                        // End of input: say goodbye properly (a /quit, as
                        // the recording says).
                        if let Some(r) = &mut record {
                            r.entry(&Entry::Typed("/quit".into()), std::time::Instant::now());
                        }
                        input_open = false;
                        quit_sent = true;
                        pending = Some(NetCmd::Quit(String::new()));
                        continue;
                    }
                };
                match parse_input(&line, &limits) {
                    Err(e) => out_line(&mut out, json, format!("! {e}"), serde_json::json!({"event": "local-error", "text": e})),
                    Ok(Input::Help) => {
                        for l in help_lines() {
                            out_line(&mut out, json, l.clone(), serde_json::json!({"event": "help", "text": l}));
                        }
                    }
                    Ok(Input::Fault(Fault::Crash)) => {
                        let (did, peer) = Fault::crash_text();
                        out_line(
                            &mut out,
                            json,
                            format!("* fault crash: {did}; the peer should see: {peer}"),
                            serde_json::json!({"event": "fault", "fault": "crash", "did": did, "peer_sees": peer}),
                        );
                        if let Some(r) = &mut record {
                            r.flush();
                        }
                        std::process::abort();
                    }
                    Ok(Input::Local(_)) => {
                        let e = "that command works in the terminal UI only";
                        out_line(&mut out, json, format!("! {e}"), serde_json::json!({"event": "local-error", "text": e}));
                    }
                    Ok(Input::Quit(m)) => {
                        input_open = false;
                        quit_sent = true;
                        pending = Some(NetCmd::Quit(m));
                    }
                    Ok(input) => {
                        pending = input.to_net(&here.room, None).map(|c| outcomes.assign(c, &line));
                        // The line after a /join or /leave is meant for the
                        // room the user then looks at: move the focus now.
                        match &input {
                            Input::Send(Command::Join(r) | Command::JoinKey { room: r, .. }) => {
                                here.join(r)
                            }
                            Input::Send(Command::Leave(r)) => {
                                let r = r.clone().unwrap_or_else(|| here.room.clone());
                                here.leave(&r);
                            }
                            _ => {}
                        }
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(1) };
                if let Some(r) = &mut record {
                    r.socket(&ev, std::time::Instant::now());
                    r.flush();
                    if let Some(e) = r.take_error() {
                        out_line(&mut out, json, format!("! {e}"), serde_json::json!({"event": "local-error", "text": e}));
                    }
                }
                match &ev {
                    SocketEvent::Server(m) => here.follow(m),
                    SocketEvent::LineConfirmed { id } => {
                        outcomes.waiting.remove(id);
                    }
                    SocketEvent::LineFailed { id, why } => {
                        outcomes.failed += 1;
                        if let Some(text) = outcomes.waiting.remove(id) {
                            out_line(
                                &mut out,
                                json,
                                format!("! not delivered: {text:?}: {why}"),
                                serde_json::json!({"event": "line-failed", "id": id.0, "line": text, "why": why}),
                            );
                        }
                        continue;
                    }
                    SocketEvent::Finished { quit } => {
                        // 0 only for a session that was up and ended by
                        // our quit (the driver's verdict: a reset racing
                        // the end of input is not a quit), with every line
                        // delivered.
                        let clean = *quit && quit_sent && here.welcomed && outcomes.failed == 0 && outcomes.waiting.is_empty();
                        return Ok(if clean { 0 } else { 1 });
                    }
                    _ => {}
                }
                // The lag while a ping is unanswered has no text line (it
                // would repeat every tick) but scripts get it in JSON.
                let text = event_line(&ev, &here.nick).map(|l| l.text).or_else(|| {
                    (json && matches!(ev, SocketEvent::Lag { .. })).then(String::new)
                });
                if let (Some(text), Some(value)) = (text, event_json(&ev)) {
                    out_line(&mut out, json, text, value);
                }
            }
        }
    }
}
