#!/usr/bin/env python3
"""File transfer numbers for docs/BENCHMARKS.md (issue 11 item 5), from a
real run on loopback with release builds:

- SIZE MiB over TCP through the server (two `sockchat --plain --json`
  clients, SHA-256 checked) next to the same file piped through `ncat`
  between two processes (the raw ceiling: one copy, no relay, no hash);
- SIZE MiB over UDP with 0 %, 1 % and 5 % of datagrams dropped by the
  clients' own injector (`--udp-drop`, on both clients: chunks one way,
  acks the other), with retransmissions and timeouts;
- a chat line's latency to the receiver (a third client sends `/msg bob`
  every 20 ms; received time from bob's JSON `at_ms`) with and without a
  TCP transfer to bob running: p50 / p99 / max in ms.

Usage: bench/transfer.py [SIZE_MIB]   (build first: cargo build --release --bins)
Prints a Markdown table; every process it starts is ended by its pid.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 100
STEP = 600.0


def start_server(cfg):
    p = subprocess.Popen(
        [os.path.join(REL, "sockchat-server"), "--config", cfg, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        if "listening on" in line and "tcp" in line.lower():
            addr = line.split("listening on", 1)[1].split()[0]
            return p, addr
    p.kill()
    raise SystemExit("server did not start")


class Client:
    def __init__(self, addr, nick, dl, extra):
        env = dict(os.environ, HOME="/nonexistent")
        self.p = subprocess.Popen(
            [os.path.join(REL, "sockchat"), "--json", "--no-reconnect", "--server", addr,
             "--nick", nick, "--download-dir", dl] + extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self.lat = []
        self.expect("welcome")

    def read_for(self, secs):
        """Read events for `secs` (lines keep coming: the chatter)."""
        deadline = time.time() + secs
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                return
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("event") == "private" and v.get("text", "").startswith("lat "):
                self.lat.append(v["at_ms"] - int(v["text"].split()[1]))

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def expect(self, event):
        deadline = time.time() + STEP
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit(f"client ended waiting for {event}")
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("event") == "private" and v.get("text", "").startswith("lat "):
                self.lat.append(v["at_ms"] - int(v["text"].split()[1]))
            if v.get("event") == event:
                return v
            if v.get("event") == "transfer-failed":
                raise SystemExit(f"transfer failed: {v}")
        raise SystemExit(f"no {event} within {STEP} s")

    def stop(self):
        self.p.stdin.close()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def chatter(c, stop):
    while not stop.is_set():
        c.send(f"/msg bob lat {int(time.time() * 1000)}")
        time.sleep(0.02)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def transfer(addr, src, dl, extra, lat=None):
    a = Client(addr, "alice", dl, extra)
    b = Client(addr, "bob", dl, extra)
    stop = threading.Event()
    if lat is not None:
        c = Client(addr, "carol", dl, [])
        # Nobody reads carol's events: drain them so her pipe never fills.
        threading.Thread(target=lambda: [None for _ in c.p.stdout], daemon=True).start()
        # Without a transfer first: 1 s of lines.
        th = threading.Thread(target=chatter, args=(c, stop))
        th.start()
        b.read_for(1.0)
    t0 = time.time()
    a.send(f"/send {src} bob")
    if lat is not None:
        lat["idle"] = list(b.lat)
        b.lat.clear()
    offer = b.expect("transfer-offered")
    b.send(f"/accept {offer['id']}")
    got = b.expect("transfer-done")
    sent = a.expect("transfer-done")
    wall = time.time() - t0
    if lat is not None:
        stop.set()
        th.join()
        lat["busy"] = list(b.lat)
        c.stop()
    a.stop()
    b.stop()
    saved = got["saved"]
    ok = subprocess.run(["cmp", "-s", src, saved]).returncode == 0
    os.remove(saved)
    if not ok:
        raise SystemExit("received file differs")
    return got, sent, wall


def ncat_pipe(src, out):
    port = 17000 + os.getpid() % 1000
    with open(out, "wb") as f:
        r = subprocess.Popen(["ncat", "-l", "127.0.0.1", str(port)], stdout=f)
        time.sleep(0.3)
        t0 = time.time()
        with open(src, "rb") as i:
            subprocess.run(["ncat", "--send-only", "127.0.0.1", str(port)], stdin=i, check=True)
        r.wait(60)
        took = time.time() - t0
    assert os.path.getsize(out) == os.path.getsize(src)
    os.remove(out)
    return took


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def main():
    work = tempfile.mkdtemp(prefix="sockchat-bench-xfer-")
    try:
        src = os.path.join(work, "file.bin")
        with open(src, "wb") as f:
            for _ in range(SIZE):
                f.write(os.urandom(1 << 20))
        dl = os.path.join(work, "dl")
        os.mkdir(dl)
        cfg = os.path.join(work, "server.toml")
        with open(cfg, "w") as f:
            f.write("[transfer]\nmax_file_size = 4294967296\n")
        server, addr = start_server(cfg)
        load0 = os.getloadavg()[0]
        mib = SIZE * (1 << 20)
        rows = []
        try:
            log("ncat pipe")
            nc = min(ncat_pipe(src, os.path.join(work, "nc.out")) for _ in range(3))
            rows.append(("ncat pipe (raw ceiling, no relay, no hash)", "tcp", nc, None, None))
            best = None
            lat = {}
            for i in range(3):
                log("tcp run", i)
                got, sent, wall = transfer(addr, src, dl, [], lat if i == 0 else None)
                s = got["elapsed_ms"] / 1000
                if best is None or s < best[0]:
                    best = (s, sent, wall)
            rows.append(("sockchat through the server", "tcp", best[0], best[1], best[2]))
            for drop in ("0", "0.01", "0.05"):
                log("udp drop", drop)
                got, sent, wall = transfer(addr, src, dl, ["--udp", "--udp-drop", drop])
                rows.append((f"sockchat, {float(drop)*100:.0f} % dropped each way (injector)", "udp",
                             got["elapsed_ms"] / 1000, sent, wall))
        finally:
            server.kill()
            server.wait()
        load1 = os.getloadavg()[0]
        print(f"{SIZE} MiB file, loopback, release builds; load average {load0:.2f} -> {load1:.2f} "
              f"on {os.cpu_count()} CPUs.\n")
        print("| run | transport | seconds (accept → verified) | MB/s | datagrams sent | retransmitted | timeouts |")
        print("|---|---|---|---|---|---|---|")
        for name, tr, secs, sent, wall in rows:
            mbs = mib / secs / 1e6
            if sent is None:
                print(f"| {name} | {tr} | {secs:.3f} | {mbs:.0f} | | | |")
            elif tr == "udp":
                print(f"| {name} | {tr} | {secs:.3f} | {mbs:.1f} | {sent['datagrams_sent']:,} | "
                      f"{sent['retransmitted']:,} ({sent['retransmitted']/max(1,sent['datagrams_sent'])*100:.1f} %) | {sent['timeouts']} |")
            else:
                print(f"| {name} | {tr} | {secs:.3f} | {mbs:.0f} | | | |")
        print("\nChat line latency to the receiver (carol -> bob, /msg every 20 ms; ms):\n")
        print("| | lines | p50 | p99 | max |")
        print("|---|---|---|---|---|")
        for k, name in (("idle", "no transfer"), ("busy", f"during the {SIZE} MiB TCP transfer to bob")):
            xs = lat.get(k, [])
            print(f"| {name} | {len(xs)} | {pct(xs, 0.5)} | {pct(xs, 0.99)} | {max(xs) if xs else 'n/a'} |")
        ratio = rows[1][2] / rows[0][2]
        print(f"\nsockchat over TCP takes {ratio:.1f}x the ncat pipe's time "
              f"({rows[0][2]:.3f} s vs {rows[1][2]:.3f} s); /send to done including hashing: {rows[1][4]:.2f} s.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
