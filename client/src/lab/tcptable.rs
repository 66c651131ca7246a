//! The kernel's TCP socket table, read the way `ss -tan` shows it, from
//! `/proc/net/tcp`: state, addresses, queues and the running timer. The
//! lab uses it for what no file descriptor can show: the TIME_WAIT socket a
//! close left behind (it has no fd any more) and a listener's accept queue
//! (for a LISTEN row the kernel prints the number of connections waiting
//! for `accept()` in the rx_queue column).

use std::net::SocketAddr;
use std::time::Duration;

use sockchat_shared::sockopt::tcp_state_name;
use sockchat_shared::udp::procfs::hex_addr;

/// `tcp_state` numbers (include/net/tcp_states.h) the lab looks for.
pub const ESTABLISHED: u8 = 1;
pub const TIME_WAIT: u8 = 6;
pub const LISTEN: u8 = 10;

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    /// Bytes not yet acknowledged (a LISTEN row: 0).
    pub tx_queue: u64,
    /// Bytes not yet read; for a LISTEN row, connections in the accept queue.
    pub rx_queue: u64,
    /// Which timer runs (`tr`: 1 retransmit, 2 keepalive, 3 TIME_WAIT,
    /// 4 zero-window probe) and when it fires.
    pub timer: u8,
    pub timer_left: Duration,
}

impl TcpRow {
    /// `TIME-WAIT 127.0.0.1:40000 -> 127.0.0.1:5555 timer 59.6s`, ss style.
    pub fn describe(&self) -> String {
        let timer = match self.timer {
            0 => String::new(),
            t => format!(
                " timer:({},{:.1}s)",
                match t {
                    1 => "on",
                    2 => "keepalive",
                    3 => "timewait",
                    4 => "persist",
                    _ => "other",
                },
                self.timer_left.as_secs_f64()
            ),
        };
        format!(
            "{} recv-q {} send-q {} {} -> {}{timer}",
            tcp_state_name(self.state).replace('_', "-"),
            self.rx_queue,
            self.tx_queue,
            self.local,
            self.remote,
        )
    }
}

/// Clock ticks per second: /proc prints timers in them (USER_HZ).
fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Parse one data line (`sl local rem st tx:rx tr:when ...`); `None` for
/// the header or a malformed line.
pub fn parse_line(line: &str, hz: u64) -> Option<TcpRow> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || !f[0].ends_with(':') {
        return None;
    }
    let (tx, rx) = f[4].split_once(':')?;
    let (tr, when) = f[5].split_once(':')?;
    let ticks = u64::from_str_radix(when, 16).ok()?;
    Some(TcpRow {
        local: hex_addr(f[1])?,
        remote: hex_addr(f[2])?,
        state: u8::from_str_radix(f[3], 16).ok()?,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
        timer: u8::from_str_radix(tr, 16).ok()?,
        timer_left: Duration::from_millis(ticks.saturating_mul(1000) / hz.max(1)),
    })
}

/// Every IPv4 row of this network namespace whose local port is `port`.
pub fn rows_on_port(port: u16) -> std::io::Result<Vec<TcpRow>> {
    let hz = ticks_per_sec();
    Ok(std::fs::read_to_string("/proc/net/tcp")?
        .lines()
        .filter_map(|l| parse_line(l, hz))
        .filter(|r| r.local.port() == port)
        .collect())
}

/// Poll (bounded) until a row on `port` in `state` exists.
pub fn wait_row(port: u16, state: u8, limit: Duration) -> anyhow::Result<TcpRow> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(r) = rows_on_port(port)?.into_iter().find(|r| r.state == state) {
            return Ok(r);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "no {} socket on port {port} within {limit:?}",
                tcp_state_name(state)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A counter of `/proc/net/netstat` (`TcpExt`), e.g. `ListenOverflows`:
/// per network namespace, so other programs' sockets count too.
pub fn tcpext_counter(name: &str) -> Option<u64> {
    netstat_counter(
        &std::fs::read_to_string("/proc/net/netstat").ok()?,
        "TcpExt:",
        name,
    )
}

/// A counter of `/proc/net/snmp` (`Udp`, `Tcp`, ...), e.g. `RcvbufErrors`.
pub fn snmp_counter(section: &str, name: &str) -> Option<u64> {
    netstat_counter(
        &std::fs::read_to_string("/proc/net/snmp").ok()?,
        &format!("{section}:"),
        name,
    )
}

/// These files hold pairs of lines: `Section: Name1 Name2 ...` then
/// `Section: value1 value2 ...`.
fn netstat_counter(text: &str, section: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(section));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let i = names.split_whitespace().position(|n| n == name)?;
        if let Some(v) = values.split_whitespace().nth(i) {
            return v.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_wait_and_listen_rows() {
        let tw = "   1: 0100007F:DEDE 0100007F:9E63 06 00000000:00000000 03:0000157C 00000000     0        0 0 3 000000004c403cd9";
        let r = parse_line(tw, 100).expect("row");
        assert_eq!(r.state, TIME_WAIT);
        assert_eq!(r.local, "127.0.0.1:57054".parse().expect("addr"));
        assert_eq!(r.timer, 3);
        assert_eq!(r.timer_left, Duration::from_millis(55_000));
        assert!(r.describe().starts_with("TIME-WAIT"), "{}", r.describe());
        assert!(r.describe().contains("timer:(timewait,55.0s)"));
        let l = "   0: 0100007F:07E8 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 309 1 00000000d08f2ce3 100 0 0 10 0";
        let r = parse_line(l, 100).expect("row");
        assert_eq!((r.state, r.rx_queue), (LISTEN, 2));
        assert!(parse_line("  sl  local_address rem_address   st", 100).is_none());
    }

    #[test]
    fn counters_by_name() {
        let t = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: A\nIpExt: 1\n";
        assert_eq!(netstat_counter(t, "TcpExt:", "ListenOverflows"), Some(7));
        assert_eq!(netstat_counter(t, "TcpExt:", "Nope"), None);
    }
}
