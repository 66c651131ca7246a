//! Fuzz target: the UDP datagram parser and what the server does with the
//! numbers in it. Arbitrary bytes go through `udp::decode_client` and
//! `udp::decode_server` (header, session token, padding, payload) at the
//! datagram maxima that matter; the same bytes drive the sequence tracker
//! (the server's replay window) and the address cookie.
//!
//! Checked beyond "no panic": nothing over the maximum is accepted; a
//! decoded datagram encodes back to one that decodes to the same thing;
//! the tracker's counters add up (received = unique + duplicated + late) and
//! a number it has just taken is a duplicate the second time; a cookie
//! verifies for its address in its epoch and the next, not two later.
#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use sockchat_shared::udp::{self, CookieJar, SeqTracker, SeqVerdict, ServerBody};

/// Datagram maxima to try: the header alone, the Internet-safe size, the
/// Ethernet default and the IPv4 hard limit.
const MAXES: [usize; 4] = [16, 548, 1472, 65_507];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let max = MAXES[usize::from(sel & 3)];
    datagrams(bytes, max);
    sequences(bytes, sel & 4 != 0);
    cookies(bytes);
});

fn datagrams(bytes: &[u8], max: usize) {
    if let Ok(d) = udp::decode_client(bytes, max) {
        assert!(bytes.len() <= max);
        // Unpadded, the same datagram is never longer than what came in.
        let again = udp::encode_in_session(d.seq, d.cookie, &d.msg, max)
            .unwrap_or_else(|e| panic!("re-encoding {d:?}: {e}"));
        assert_eq!(udp::decode_client(&again, max), Ok(d));
    }
    if let Ok(d) = udp::decode_server(bytes, max) {
        assert!(bytes.len() <= max);
        match d.body {
            ServerBody::Msg(m) => {
                let again = udp::encode_server(d.seq, &m, max)
                    .unwrap_or_else(|e| panic!("re-encoding {m:?}: {e}"));
                let back = udp::decode_server(&again, max).map(|x| x.body);
                assert_eq!(back, Ok(ServerBody::Msg(m)));
            }
            ServerBody::Retry { cookie } => {
                let again = udp::encode_retry(cookie);
                let back = udp::decode_server(&again, max.max(again.len())).map(|x| x.body);
                assert_eq!(back, Ok(ServerBody::Retry { cookie }));
            }
        }
    }
}

/// The bytes as a run of sequence numbers: a start, then signed 16-bit
/// steps (small steps reorder and duplicate; big ones leave the window).
fn sequences(bytes: &[u8], expecting: bool) {
    let Some((first, steps)) = bytes.split_first_chunk::<4>() else {
        return;
    };
    let mut seq = u32::from_be_bytes(*first);
    let mut t = if expecting {
        SeqTracker::expecting(seq.wrapping_sub(3))
    } else {
        SeqTracker::new()
    };
    for step in steps.chunks_exact(2).take(4096) {
        seq = seq.wrapping_add(i16::from_be_bytes([step[0], step[1]]) as i32 as u32);
        let in_window = t.in_window(seq);
        let v = t.record(seq);
        if !in_window {
            // The server would not have recorded it; still no panic.
            continue;
        }
        if matches!(v, SeqVerdict::InOrder { .. } | SeqVerdict::Reordered) {
            assert_eq!(t.record(seq), SeqVerdict::Duplicate, "taken twice: {seq}");
        }
        let s = t.stats();
        assert_eq!(s.received, s.unique + s.duplicated + s.late, "{s:?}");
        assert_eq!(s.lost, s.expected.saturating_sub(s.unique));
    }
}

fn cookies(bytes: &[u8]) {
    let Some((k, rest)) = bytes.split_first_chunk::<26>() else {
        return;
    };
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&k[..16]);
    let port = u16::from_be_bytes([k[16], k[17]]);
    let mut t = [0u8; 8];
    t.copy_from_slice(&k[18..26]);
    let now = u64::from_be_bytes(t) >> 2; // room for two epochs on top
    let v6 = Ipv6Addr::from(ip);
    let addr = match v6.to_ipv4_mapped() {
        Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        None => SocketAddr::new(IpAddr::V6(v6), port),
    };
    let jar = CookieJar::new([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210], 30);
    let c = jar.issue(&addr, now);
    assert!(jar.verify(&addr, c, now));
    assert!(jar.verify(&addr, c, now + 30));
    assert!(!jar.verify(&addr, c, now + 60));
    if let Some(guess) = rest.first_chunk::<8>() {
        let g = u64::from_be_bytes(*guess);
        assert_eq!(
            jar.verify(&addr, g, now),
            g == c || g == jar.issue(&addr, now.saturating_sub(30)) && now >= 30
        );
    }
}
