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
  transfer to bob running, bob on TCP and bob on UDP: p50 / p99 / max in
  ms (`--server-bin DIR` runs another build's server, e.g. main's from
  `bench/run.sh --baseline main`: target/bench/cmp/bin-base; `--client-bin
  DIR` the clients of another build, e.g. to A/B the sender's
  retransmission rules);
- with `--netns`: SIZE MiB over UDP with 0 %, 1 % and 5 % of packets
  dropped by the **kernel** (an nftables `numgen random mod 100 < N drop`
  rule, each way, in the server's network namespace; clients in another,
  joined by a veth pair), and over TCP under the same rule (needs root,
  `ip` and `nft`).

Usage: bench/transfer.py [SIZE_MIB] [--server-bin DIR] [--client-bin DIR] [--netns] [--only-latency]
(build first: cargo build --release --bins). Prints Markdown tables; every
process it starts is ended by its pid, every namespace it makes deleted.
"""

import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
ARGS = sys.argv[1:]


def flag(name):
    if name in ARGS:
        ARGS.remove(name)
        return True
    return False


def option(name, default):
    if name in ARGS:
        i = ARGS.index(name)
        v = ARGS[i + 1]
        del ARGS[i:i + 2]
        return v
    return default


SERVER_BIN = option("--server-bin", REL)
CLIENT_BIN = option("--client-bin", REL)
NETNS = flag("--netns")
ONLY_LATENCY = flag("--only-latency")
SIZE = int(ARGS[0]) if ARGS else 100
STEP = 600.0
# Prefix for the clients' command (a network namespace), and the server's.
CLIENT_NS = []


def start_server(cfg, listen="127.0.0.1:0", ns=()):
    p = subprocess.Popen(
        list(ns) + [os.path.join(SERVER_BIN, "sockchat-server"), "--config", cfg, "--listen", listen],
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
            CLIENT_NS + [os.path.join(CLIENT_BIN, "sockchat"), "--json", "--no-reconnect", "--server", addr,
             "--nick", nick, "--download-dir", dl] + extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self.lat = []
        # Lines through a reader thread, so every wait is bounded even when
        # the client says nothing.
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        w = self.expect("welcome")
        if w.get("nick") != nick:
            # A UDP session of an earlier run whose Quit datagram was
            # dropped (the kernel rows drop 5 %) still holds the nick.
            raise SystemExit(f"asked for nick {nick}, welcomed as {w.get('nick')}")
        self.nick = nick

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _next(self, deadline):
        """The next line, "" at the end of output, None at the deadline."""
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.time()))
        except queue.Empty:
            return None

    def read_for(self, secs):
        """Read events for `secs` (lines keep coming: the chatter)."""
        deadline = time.time() + secs
        while time.time() < deadline:
            line = self._next(deadline)
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
            line = self._next(deadline)
            if line is None:
                break
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


def chatter(c, stop, to):
    while not stop.is_set():
        c.send(f"/msg {to} lat {int(time.time() * 1000)}")
        time.sleep(0.02)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


# Numbers for fresh nicks, one per transfer.
RUNS = itertools.count(1)


def transfer(addr, src, dl, extra, lat=None, bob_extra=None):
    # Fresh nicks per transfer: an earlier run's UDP session may outlive
    # its client by the server's 30 s session timeout.
    n = next(RUNS)
    a = Client(addr, f"alice{n}", dl, extra)
    b = Client(addr, f"bob{n}", dl, extra if bob_extra is None else bob_extra)
    stop = threading.Event()
    if lat is not None:
        c = Client(addr, f"carol{n}", dl, [])
        # Nobody reads carol's events: her reader thread drains them, so
        # her pipe never fills.
        # Without a transfer first: 1 s of lines.
        th = threading.Thread(target=chatter, args=(c, stop, b.nick))
        th.start()
        b.read_for(1.0)
    t0 = time.time()
    a.send(f"/send {src} {b.nick}")
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


def sh(*cmd, stdin=None):
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True)


class Netns:
    """Server namespace `s` (169.254.79.1) and client namespace `c`
    (169.254.79.2) on a veth pair; `drop(proto, pct)` (re)loads the
    nftables rule in `s`."""

    def __init__(self):
        self.s, self.c = f"sxb-s-{os.getpid()}", f"sxb-c-{os.getpid()}"
        for ns in (self.s, self.c):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "vs", "netns", self.s, "type", "veth", "peer", "name", "vc", "netns", self.c)
        for ns, dev, a in ((self.s, "vs", "169.254.79.1/24"), (self.c, "vc", "169.254.79.2/24")):
            sh("ip", "-n", ns, "addr", "add", a, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def drop(self, proto, pct):
        subprocess.run(["ip", "netns", "exec", self.s, "nft", "delete", "table", "inet", "sxb"],
                       capture_output=True)
        rule = f"meta l4proto {proto} numgen random mod 100 < {pct} counter drop;"
        sh("ip", "netns", "exec", self.s, "nft", "-f", "-", stdin=(
            "table inet sxb {\n"
            f"chain i {{ type filter hook input priority 0; {rule} }}\n"
            f"chain o {{ type filter hook output priority 0; {rule} }}\n"
            "}\n"))

    def dropped(self):
        out = subprocess.run(["ip", "netns", "exec", self.s, "nft", "list", "table", "inet", "sxb"],
                             capture_output=True, text=True).stdout.split()
        return sum(int(out[i + 1]) for i, w in enumerate(out[:-1]) if w == "packets")

    def close(self):
        for ns in (self.s, self.c):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def kernel_drops(src, dl, cfg):
    """SIZE MiB over UDP with 0/1/5 % kernel drops, and TCP under the same
    rule: rows of (name, transport, secs, sent, dropped packets)."""
    global CLIENT_NS
    net = Netns()
    rows = []
    server = None
    try:
        server, addr = start_server(cfg, "169.254.79.1:7878", ("ip", "netns", "exec", net.s))
        CLIENT_NS = ["ip", "netns", "exec", net.c]
        for proto, extra in (("udp", ["--udp"]), ("tcp", [])):
            for pct in (0, 1, 5):
                log("kernel drops", proto, pct)
                net.drop(proto, pct)
                before = net.dropped()
                got, sent, _ = transfer(addr, src, dl, extra)
                rows.append((f"{pct} % of {proto} packets dropped by the kernel each way", proto,
                             got["elapsed_ms"] / 1000, sent, net.dropped() - before))
    finally:
        CLIENT_NS = []
        if server is not None:
            server.kill()
            server.wait()
        net.close()
    return rows


def lat_row(name, xs):
    print(f"| {name} | {len(xs)} | {pct(xs, 0.5)} | {pct(xs, 0.99)} | {max(xs) if xs else 'n/a'} |")


def latency(addr, src, dl, runs=3):
    """Chat latency to bob without and during a transfer to bob, bob on
    TCP and bob on UDP (alice and carol on TCP), pooled over `runs`."""
    out = {}
    for tr, bob_extra in (("tcp", []), ("udp", ["--udp"])):
        idle, busy = [], []
        for i in range(runs):
            log("latency, bob on", tr, "run", i)
            lat = {}
            transfer(addr, src, dl, [], lat, bob_extra)
            idle += lat["idle"]
            busy += lat["busy"]
        out[tr] = (idle, busy)
    return out


def print_latency(lat):
    print(f"Chat line latency to the receiver (carol -> bob, /msg every 20 ms, 3 runs pooled; ms; "
          f"server {os.path.relpath(SERVER_BIN, ROOT)}):\n")
    print("| bob on | | lines | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for tr, (idle, busy) in lat.items():
        for name, xs in (("no transfer", idle), (f"during a {SIZE} MiB transfer to bob", busy)):
            print(f"| {tr} | {name} | {len(xs)} | {pct(xs, 0.5)} | {pct(xs, 0.99)} | {max(xs) if xs else 'n/a'} |")


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
        load0 = os.getloadavg()[0]
        mib = SIZE * (1 << 20)
        rows = []
        server, addr = start_server(cfg)
        try:
            if ONLY_LATENCY:
                lat = latency(addr, src, dl)
            else:
                log("ncat pipe")
                nc = min(ncat_pipe(src, os.path.join(work, "nc.out")) for _ in range(3))
                rows.append(("ncat pipe (raw ceiling, no relay, no hash)", "tcp", nc, None, None))
                best = None
                for i in range(3):
                    log("tcp run", i)
                    got, sent, wall = transfer(addr, src, dl, [])
                    s = got["elapsed_ms"] / 1000
                    if best is None or s < best[0]:
                        best = (s, sent, wall)
                rows.append(("sockchat through the server", "tcp", best[0], best[1], best[2]))
                for drop in ("0", "0.01", "0.05"):
                    log("udp drop", drop)
                    got, sent, wall = transfer(addr, src, dl, ["--udp", "--udp-drop", drop])
                    rows.append((f"sockchat, {float(drop)*100:.0f} % dropped each way (injector)", "udp",
                                 got["elapsed_ms"] / 1000, sent, wall))
                lat = latency(addr, src, dl)
        finally:
            server.kill()
            server.wait()
        if NETNS and not ONLY_LATENCY:
            rows += kernel_drops(src, dl, cfg)
        load1 = os.getloadavg()[0]
        print(f"{SIZE} MiB file, release builds (server {SERVER_BIN}, clients {CLIENT_BIN}); "
              f"load average {load0:.2f} -> {load1:.2f} on {os.cpu_count()} CPUs.\n")
        if rows:
            print("| run | transport | seconds (accept → verified) | MB/s | datagrams sent | retransmitted | probes | timeouts | kernel drops |")
            print("|---|---|---|---|---|---|---|---|---|")
            for name, tr, secs, sent, extra in rows:
                mbs = mib / secs / 1e6
                kd = f"{extra:,}" if "kernel" in name else ""
                if sent is not None and tr == "udp":
                    print(f"| {name} | {tr} | {secs:.3f} | {mbs:.1f} | {sent['datagrams_sent']:,} | "
                          f"{sent['retransmitted']:,} ({sent['retransmitted']/max(1,sent['datagrams_sent'])*100:.1f} %) "
                          f"| {sent.get('probes', '-')} | {sent['timeouts']} | {kd} |")
                else:
                    print(f"| {name} | {tr} | {secs:.3f} | {mbs:.1f} | | | | | {kd} |")
            ratio = rows[1][2] / rows[0][2]
            print(f"\nsockchat over TCP takes {ratio:.1f}x the ncat pipe's time "
                  f"(ncat {rows[0][2]:.3f} s, sockchat {rows[1][2]:.3f} s); /send to done including hashing: {rows[1][4]:.2f} s.\n")
        print_latency(lat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
