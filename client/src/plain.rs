//! Plain mode: stdin lines in (chat text and `/commands`, `/fault` too), one
//! line per event out — or one JSON object per line with `--json`. This is
//! what scripts and tests drive; it is also used automatically when stdout
//! is not a terminal.

use std::io::Write;

use sockchat_shared::ServerMsg;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::net::command::{Fault, Input, InputLimits, help_lines, parse_input};
use crate::net::text::{event_json, event_line};
use crate::net::{self, NetCmd, NetConfig, SocketEvent};

/// Entry point from the command line.
pub fn run(args: crate::cli::ChatArgs) -> anyhow::Result<std::process::ExitCode> {
    let settings = args.settings()?;
    crate::cli::init_file_log(&settings.client.log_file)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = args.json;
    let code = rt.block_on(run_with(
        settings.net,
        json,
        tokio::io::stdin(),
        std::io::stdout(),
    ))?;
    Ok(std::process::ExitCode::from(code))
}

/// Where the user is, as far as plain mode needs to know.
struct Where {
    nick: String,
    room: String,
}

impl Where {
    /// Follow our nick and current room from what the server says.
    fn follow(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Welcome { nick, room, .. } => {
                self.nick = nick.clone();
                self.room = room.clone();
            }
            ServerMsg::Joined { room, nick } if *nick == self.nick => self.room = room.clone(),
            ServerMsg::NickChanged { old, new } if *old == self.nick => self.nick = new.clone(),
            _ => {}
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

/// Run plain mode with the given input and output (tests pass pipes).
/// Returns the exit code: 0 after `/quit` or end of input, 1 when the
/// connection ended and reconnect is off.
pub async fn run_with(
    cfg: NetConfig,
    json: bool,
    input: impl AsyncRead + Unpin,
    mut out: impl Write,
) -> anyhow::Result<u8> {
    let limits = InputLimits {
        max_message_len: cfg.max_message_len,
        ..InputLimits::default()
    };
    let mut here = Where {
        nick: cfg.nick.clone(),
        room: cfg.room.clone(),
    };
    let (cmd_tx, mut events) = net::spawn(cfg);
    let mut lines = BufReader::new(input).lines();
    let mut input_open = true;
    let mut quitting = false;
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
                    Ok(Some(l)) => l,
                    Ok(None) | Err(_) => {
                        // End of input: say goodbye properly.
                        input_open = false;
                        quitting = true;
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
                        std::process::abort();
                    }
                    Ok(input) => {
                        if matches!(input, Input::Quit(_)) {
                            quitting = true;
                            input_open = false;
                        }
                        pending = input.to_net(&here.room);
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(if quitting { 0 } else { 1 }) };
                if let SocketEvent::Server(m) = &ev {
                    here.follow(m);
                }
                if let SocketEvent::Finished = ev {
                    return Ok(if quitting { 0 } else { 1 });
                }
                if let (Some(text), Some(value)) = (event_line(&ev), event_json(&ev)) {
                    out_line(&mut out, json, text, value);
                }
            }
        }
    }
}
