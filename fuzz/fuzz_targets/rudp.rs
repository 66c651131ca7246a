//! Fuzz target: the reliability layer of file transfers (`shared::rudp`)
//! fed by a hostile peer. The receiver gets arbitrary chunks (any offset,
//! any length, overlapping, past the end); the sender gets arbitrary acks
//! (any cumulative offset, any selective ranges) at arbitrary times.
//!
//! Checked beyond "no panic": the receiver delivers each byte once, in
//! order, with the right content; what it holds out of order stays within
//! the bound it was given (a peer must not make it buffer without bound);
//! its ack is well formed. The sender never offers bytes past the file,
//! never more than a chunk at once, its progress never goes backwards, and
//! each `poll` loop ends.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sockchat_shared::rudp::{MAX_SACK, Receiver, Sender};

/// Reads fixed-size numbers off the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The file's byte at `pos`, so every delivered byte can be checked.
fn byte_at(pos: u64) -> u8 {
    (pos ^ (pos >> 8) ^ (pos >> 16)) as u8
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    if input.u8() & 1 == 0 {
        receiver(&mut input);
    } else {
        sender(&mut input);
    }
});

fn receiver(input: &mut Input<'_>) {
    let size = u64::from(input.u32() >> 8);
    let start = u64::from(input.u16()).min(size);
    let max_held = u64::from(input.u16()) * 16;
    let mut rx = Receiver::new(size, start, max_held);
    let mut delivered = start;
    let mut steps = 0;
    while !input.is_empty() && steps < 2048 {
        steps += 1;
        // Offsets near the receiver's position are the interesting ones.
        let near = input.u8() & 1 == 0;
        let raw = u64::from(input.u32());
        let offset = if near {
            rx.offset().saturating_add(raw >> 16).saturating_sub(64)
        } else {
            raw
        };
        let len = u64::from(input.u16() >> 4);
        let data: Bytes = (offset..offset.saturating_add(len)).map(byte_at).collect();
        for piece in rx.on_chunk(offset, data) {
            for (i, b) in piece.iter().enumerate() {
                assert_eq!(
                    *b,
                    byte_at(delivered + i as u64),
                    "wrong byte at {}",
                    delivered + i as u64
                );
            }
            delivered += piece.len() as u64;
        }
        assert_eq!(
            delivered,
            rx.offset(),
            "delivered bytes and offset disagree"
        );
        assert!(rx.offset() <= size);
        assert!(
            rx.held() <= max_held,
            "holds {} bytes out of order, bound {max_held}",
            rx.held()
        );
        let (cum, sack) = rx.ack();
        assert_eq!(cum, rx.offset());
        assert!(sack.len() <= MAX_SACK);
        let mut prev = cum;
        for (a, b) in sack {
            assert!(a > prev && b > a, "bad sack range {a}..{b} after {prev}");
            prev = b;
        }
    }
}

fn sender(input: &mut Input<'_>) {
    let size = u64::from(input.u32() >> 8);
    let start = u64::from(input.u16());
    let chunk = u64::from(input.u16() >> 4).max(1);
    let window = chunk * u64::from(input.u8() % 64 + 1);
    let lossless = input.u8() & 1 == 1;
    let mut tx = Sender::new(size, start, chunk, window, lossless);
    let mut now = Instant::now();
    let mut acked = tx.acked();
    let mut sent_to = start.min(size);
    let mut steps = 0;
    while !input.is_empty() && steps < 1024 {
        steps += 1;
        now += Duration::from_millis(u64::from(input.u16()));
        let mut polls = 0;
        while let Some(s) = tx.poll(now) {
            polls += 1;
            assert!(polls <= 4 * 64 + 16, "poll does not end");
            assert!(
                s.len >= 1 && s.len <= chunk,
                "chunk of {} bytes, max {chunk}",
                s.len
            );
            assert!(s.offset + s.len <= size, "send past the end");
            assert!(s.offset >= acked || s.retransmit);
            if !s.retransmit {
                assert_eq!(s.offset, sent_to, "a new chunk skipped bytes");
                sent_to += s.len;
            }
            assert!(sent_to - tx.acked() <= window, "window overrun");
        }
        let offset = u64::from(input.u32());
        let n = usize::from(input.u8() % (MAX_SACK as u8 + 1));
        let sack: Vec<(u64, u64)> = (0..n)
            .map(|_| {
                let a = u64::from(input.u32());
                (a, a + u64::from(input.u16()) + 1)
            })
            .collect();
        tx.on_ack(offset, &sack, now);
        assert!(tx.acked() >= acked, "progress went backwards");
        assert!(
            tx.acked() <= sent_to.max(start.min(size)),
            "acked bytes never sent"
        );
        acked = tx.acked();
        let _ = tx.deadline();
        let _ = tx.stats();
    }
}
