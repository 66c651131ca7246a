//! The `/fault` actions the net task carries out on its own socket (abrupt
//! disconnect demos). The UI parses `/fault NAME` into one of these.

/// The `/fault` actions: ways to end or stall a TCP connection on purpose so
/// the other side's reaction can be watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// shutdown(SHUT_WR): send FIN, keep reading.
    Fin,
    /// SO_LINGER {on, 0} then close(): send RST.
    Rst,
    /// close() while unread bytes wait in the receive queue: RST.
    CloseUnread,
    /// Stop reading the socket: our receive window fills and closes.
    StopReading,
    /// Start reading again.
    Resume,
    /// abort(): die without any cleanup.
    Crash,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Fin,
        Fault::Rst,
        Fault::CloseUnread,
        Fault::StopReading,
        Fault::Resume,
        Fault::Crash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Fin => "fin",
            Fault::Rst => "rst",
            Fault::CloseUnread => "close-unread",
            Fault::StopReading => "stop-reading",
            Fault::Resume => "resume",
            Fault::Crash => "crash",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// What `/fault crash` does and what the peer should observe (the UI
    /// prints it before aborting; the net task never sees a crash).
    pub fn crash_text() -> (&'static str, &'static str) {
        (
            "abort(): the process dies without closing anything; the kernel closes the socket for us",
            "EOF (FIN) if nothing was unread in our receive queue, otherwise ECONNRESET (104)",
        )
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
