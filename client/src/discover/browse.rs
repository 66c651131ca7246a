//! Browsing `_sockchat._tcp.local.` with mdns-sd, on the interfaces given
//! and no other (the daemon starts with every interface off). The daemon
//! runs on its own thread; its events become [`Update`]s, read blocking
//! (`--discover`) or awaited (the TUI's picker). Every record is checked by
//! `sockchat_shared::discovery::Txt::from_pairs` (it may come from anyone
//! on the link).

use std::time::Instant;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};
use sockchat_shared::discovery::{SERVICE_TYPE, Txt};
use sockchat_shared::netif::Iface;

use super::{Found, order_addrs};

/// What the browser learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A server resolved (address, port, TXT), or announced again with new
    /// values (same `fullname`).
    Found(Box<Found>),
    /// A server withdrew its record (its full name).
    Gone(String),
}

/// A running browse; stopped on [`Browser::stop`] or drop.
pub struct Browser {
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
}

impl Browser {
    /// Browse on `ifaces` only.
    pub fn start(ifaces: &[Iface]) -> anyhow::Result<Browser> {
        let fail = |e: mdns_sd::Error| anyhow::anyhow!("mDNS: {e}");
        let daemon = ServiceDaemon::new().map_err(fail)?;
        daemon.disable_interface(IfKind::All).map_err(fail)?;
        daemon
            .enable_interface(
                ifaces
                    .iter()
                    .map(|i| IfKind::Name(i.name.clone()))
                    .collect::<Vec<_>>(),
            )
            .map_err(fail)?;
        let events = daemon.browse(SERVICE_TYPE).map_err(fail)?;
        Ok(Browser { daemon, events })
    }

    /// The next update before `deadline` (blocking); `None` at the
    /// deadline or when the daemon is gone.
    pub fn next_until(&self, deadline: Instant) -> Option<Update> {
        loop {
            let e = self.events.recv_deadline(deadline).ok()?;
            if let Some(u) = update(e) {
                return Some(u);
            }
        }
    }

    /// The next update (async); `None` when the daemon is gone.
    pub async fn next(&self) -> Option<Update> {
        loop {
            let e = self.events.recv_async().await.ok()?;
            if let Some(u) = update(e) {
                return Some(u);
            }
        }
    }

    /// Stop browsing and the daemon's thread.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.daemon.stop_browse(SERVICE_TYPE);
        let _ = self.daemon.shutdown();
    }
}

/// A daemon event as an [`Update`] (searches started/stopped and bare
/// names not resolved yet are not news).
fn update(e: ServiceEvent) -> Option<Update> {
    match e {
        ServiceEvent::ServiceResolved(r) => {
            let txt = Txt::from_pairs(r.txt_properties.iter().map(|p| {
                let v = p.val().and_then(|v| std::str::from_utf8(v).ok());
                (p.key(), v)
            }));
            let instance = r
                .fullname
                .strip_suffix(SERVICE_TYPE)
                .unwrap_or(&r.fullname)
                .trim_end_matches('.')
                .to_string();
            Some(Update::Found(Box::new(Found {
                instance,
                fullname: r.fullname.clone(),
                host: r.host.clone(),
                addrs: order_addrs(r.addresses.iter().map(|a| a.to_ip_addr()).collect()),
                port: r.port,
                txt,
            })))
        }
        ServiceEvent::ServiceRemoved(_, fullname) => Some(Update::Gone(fullname)),
        _ => None,
    }
}
