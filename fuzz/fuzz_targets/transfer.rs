//! Fuzz target: the file-transfer messages (`shared/src/transfer.rs`),
//! as a client sends them (`Transfer`, tag 0x20) and as the server relays
//! them (tag 0xA0). The bytes after the tag are arbitrary.
//!
//! Checked beyond "no panic": a decoded message honours the limits the
//! decoder promises (a file name of at most 255 bytes, at most 16
//! selective-ack ranges, each non-empty, a chunk whose end fits in 64
//! bits) and re-encodes to the very same bytes; giving it another id (the
//! server's id mapping) changes nothing else.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockchat_shared::transfer::{self, MAX_NAME_LEN, MAX_SACK, Xfer};
use sockchat_shared::{ClientMsg, ServerMsg, codec};

fuzz_target!(|data: &[u8]| {
    let mut client = Vec::with_capacity(data.len() + 1);
    client.push(transfer::TAG_CLIENT);
    client.extend_from_slice(data);
    if let Ok(ClientMsg::Transfer(x)) = codec::decode_client(&client) {
        check(&x);
        let mut again = BytesMut::new();
        codec::encode_client_payload(&ClientMsg::Transfer(x.clone()), &mut again);
        assert_eq!(&again[..], &client[..], "not canonical: {x:?}");
        remap(x);
    }

    let mut server = client;
    server[0] = transfer::TAG_SERVER;
    if let Ok(ServerMsg::Transfer(x)) = codec::decode_server(&server) {
        check(&x);
        let mut again = BytesMut::new();
        codec::encode_server_payload(&ServerMsg::Transfer(x.clone()), &mut again);
        assert_eq!(&again[..], &server[..], "not canonical: {x:?}");
    }
});

fn check(x: &Xfer) {
    match x {
        Xfer::Offer { name, .. } => assert!(name.len() <= MAX_NAME_LEN),
        Xfer::Ack { sack, .. } => {
            assert!(sack.len() <= MAX_SACK);
            assert!(sack.iter().all(|(a, b)| a < b));
        }
        Xfer::Chunk { offset, data, .. } => {
            assert!(offset.checked_add(data.len() as u64).is_some());
        }
        _ => {}
    }
}

fn remap(x: Xfer) {
    let id = x.id();
    let moved = x.clone().with_id(id ^ 0x5a5a);
    assert_eq!(moved.id(), id ^ 0x5a5a);
    assert_eq!(moved.with_id(id), x);
}
