#!/usr/bin/env python3
"""Writes the committed seed corpus (one small file per interesting input,
built from PROTOCOL.md's encodings) into seeds/TARGET/. Run it again after
a protocol change; the fuzzer grows its own corpus from these."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))

def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(b)) + b

def frame(payload):
    return struct.pack(">I", len(payload)) + payload

hello = b"\x01" + s("alice")
say = b"\x05" + s("") + s("hi")
join = b"\x03" + s("#dev")
priv = b"\x07" + s("bob") + s("psst")
ping = b"\x0a" + struct.pack(">Q", 7)
quit_ = b"\x0c" + s("bye")
sockinfo = b"\x0d" + s("")
reason = lambda code, param, detail: bytes([code]) + struct.pack(">I", param) + s(detail)
welcome = b"\x81" + s("alice") + s("lobby") + s("sockchat-server 0.1.0")
chat = b"\x82" + s("lobby") + s("bob") + s("hello \x1b[2J") + b"\x00" + struct.pack(">Q", 1700000000000) + b"\x00"
left = b"\x85" + s("lobby") + s("bob") + b"\x01" + reason(3, 0, "")
who = b"\x87" + s("lobby") + struct.pack(">H", 2) + s("alice") + s("bob")
rooms = b"\x88" + struct.pack(">H", 1) + s("lobby") + struct.pack(">I", 2)
error = b"\x8a" + struct.pack(">H", 1) + s("nick already taken: alice")
bye = b"\x8e" + reason(7, 90, "")
sha = bytes(range(32))
offer = bytes([1]) + struct.pack(">Q", 1) + s("bob") + s("notes.txt") + struct.pack(">Q", 5) + sha
accept = bytes([2]) + struct.pack(">QQIIB", 1, 0, 1 << 20, 32768, 1)
chunk = bytes([5]) + struct.pack(">QQI", 7, 65536, 2) + b"hi"
ack = bytes([6]) + struct.pack(">QQB", 7, 10, 2) + struct.pack(">QQQQ", 20, 30, 40, 50)
xerr = bytes([8]) + struct.pack(">QH", 1, 9) + s("window overrun")
hostile_name = bytes([1]) + struct.pack(">Q", 2) + s("alice") + s("../../.bashrc\u202e") + struct.pack(">Q", 1) + sha

seeds = {
    "frame": {
        "preamble-hello": b"\x00" + b"\x00SCK\x01" + frame(hello),
        "many": b"\x08" + frame(hello) + frame(say) + frame(join) + frame(priv) + frame(ping) + frame(quit_),
        "server": b"\x0a" + frame(welcome) + frame(chat) + frame(left) + frame(who) + frame(rooms) + frame(error) + frame(bye),
        "sockinfo-split": b"\xff" + frame(sockinfo) + frame(b"\x20" + offer),
        "zero-length": b"\x02" + b"\x00\x00\x00\x00",
        "huge-length": b"\x02" + b"\xff\xff\xff\xff" + b"x" * 8,
        "max-plus-one": b"\x02" + struct.pack(">I", 65537) + b"x",
        "truncated": b"\x02" + frame(hello)[:7],
    },
    "text": {
        "say": b"hello world\r\n",
        "join": b"/join #dev",
        "msg": b"/msg bob  hi there",
        "nick": b"/nick \xd0\xb0lice",
        "escapes": b"\x1b[2J\x1b]52;c;aGk=\x07\x1b]8;;http://x\x1b\\link\xe2\x80\xae",
        "invalid-utf8": b"/me \xff\xfe\xc3",
        "quit": b"/quit goodbye everyone",
        "reason": b"idle timeout (30 s)",
        "reason-errno": b"no route to host (EHOSTUNREACH 113)",
        "render-chat": chat,
        "render-bye": bye,
        "render-left": left,
    },
    "udp": {
        "rooms": b"\x02" + bytes.fromhex("535501000000000709"),
        "ping-token": b"\x02" + bytes.fromhex("5355010200000008 0123456789abcdef 0a".replace(" ", "")) + struct.pack(">Q", 5),
        "hello-padded": b"\x02" + b"SU\x01\x04" + struct.pack(">I", 0) + struct.pack(">H", len(hello)) + hello + b"\x00" * 40,
        "hello-cookie": b"\x02" + b"SU\x01\x06" + struct.pack(">I", 1) + struct.pack(">Q", 99) + struct.pack(">H", len(hello)) + hello + b"\x00" * 40,
        "retry": b"\x02" + b"SU\x01\x03" + struct.pack(">IQ", 0, 0xdeadbeef),
        "server-welcome": b"\x02" + b"SU\x01\x01" + struct.pack(">I", 0) + welcome,
        "bad-padding": b"\x02" + b"SU\x01\x04" + struct.pack(">I", 0) + struct.pack(">H", 3) + hello[:3] + b"\x01",
        "sequence-walk": b"\x06" + struct.pack(">I", 0xfffffff0) + b"".join(struct.pack(">h", d) for d in [1, 1, -1, 5, -3, 1024, -2000, 0, 2, 2]),
    },
    "transfer": {
        "offer": offer,
        "accept": accept,
        "chunk": chunk,
        "ack": ack,
        "error": xerr,
        "decline": bytes([3]) + struct.pack(">Q", 1),
        "hostile-name": hostile_name,
        "sack-17": bytes([6]) + struct.pack(">QQB", 7, 10, 17) + struct.pack(">QQ", 20, 30) * 17,
    },
    "rudp": {
        "receiver-in-order": b"\x00" + struct.pack(">IHH", 4096 << 8, 0, 256) + b"".join(
            b"\x00" + struct.pack(">IH", (64 + 0) << 16, 512 << 4) for _ in range(8)),
        "receiver-overlap": b"\x00" + struct.pack(">IHH", 1 << 28, 0, 4096) + b"".join(
            b"\x00" + struct.pack(">IH", (64 + 100 + i) << 16, 4000 << 4) for i in range(64)),
        "sender-acks": b"\x01" + struct.pack(">IHHBB", 65536 << 8, 0, 1024 << 4, 8, 0) + b"".join(
            struct.pack(">HIB", 10, 1024 * i, 1) + struct.pack(">IH", 1024 * (i + 2), 1023) for i in range(16)),
        "sender-lossless": b"\x01" + struct.pack(">IHHBB", 4096 << 8, 0, 100 << 4, 3, 1) + struct.pack(">HIB", 1, 300, 0) * 20,
    },
}

for target, items in seeds.items():
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for name, data in items.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
