"""Network inputs from strangers: the OSC / VMC listener binds 127.0.0.1 by default, validates every message, and
a flood of malformed, oversized and random datagrams neither crashes nor stalls it nor grows its memory."""

from __future__ import annotations

import math
import socket
import threading
import time
import tracemalloc

import numpy as np
import pytest
from hardening_fuzz import Tally
from network_wait import wait_for_frame
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from core.tracking.drive_control import DriveController
from core.tracking.network import MAX_CHANNELS, BlendshapeReceiver, validate_channel


def _msg(address: str, *args) -> bytes:
    m = OscMessageBuilder(address=address)
    for a in args:
        m.add_arg(a)
    return m.build().dgram


def test_listeners_bind_to_localhost_unless_told_otherwise():
    with BlendshapeReceiver(port=0) as rx:
        assert rx.host == "127.0.0.1" and rx._server.server_address[0] == "127.0.0.1"
    c = DriveController()
    assert c.open("network:0"), c.error
    assert c.input.receiver._server.server_address[0] == "127.0.0.1"
    c.shutdown()
    c = DriveController(listen_host="0.0.0.0")  # the user's explicit choice (a phone on the local network)
    assert c.open("network:0"), c.error
    assert c.input.receiver._server.server_address[0] == "0.0.0.0"
    c.shutdown()


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("expr.jawOpen", 0.4, 0.4),
        ("expr.jawOpen", 7.0, 1.0),  # clamped
        ("expr.jawOpen", math.nan, None),
        ("expr.jawOpen", math.inf, None),
        ("expr.jawOpen", True, None),
        ("expr.jawOpen", "0.4", None),
        ("expr.notAShape", 0.4, None),
        ("gaze.yaw", -20.0, -20.0),
        ("gaze.roll", 1.0, None),
        ("gaze.pitch", 1e9, None),
        ("pose.head.y", 30.0, 30.0),
        ("pose.finger1-1.L.z", -10.0, -10.0),
        ("pose.head.w", 1.0, None),
        ("pose.(bad joint).x", 1.0, None),
        ("pose." + "a" * 200 + ".x", 1.0, None),
        ("pose.head.x", -math.inf, None),
        ("root.y", 0.5, 0.5),
        ("root.y", 1e6, None),
        ("bogus", 1.0, None),
        (3, 1.0, None),
    ],
)
def test_validate_channel_accepts_known_finite_in_range_values_only(name, value, expected):
    assert validate_channel(name, value) == expected


def test_malformed_messages_are_counted_and_ignored():
    with BlendshapeReceiver("127.0.0.1", 0) as rx:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bad = [
            _msg("/VMC/Ext/Blend/Val", "jawOpen"),  # missing value
            _msg("/VMC/Ext/Blend/Val", "jawOpen", "x"),
            _msg("/VMC/Ext/Blend/Val", "notAShape", 0.5),
            _msg("/VMC/Ext/Blend/Val", 5, 0.5),
            _msg("/VMC/Ext/Blend/Val", "jawOpen", float("nan")),
            _msg("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # zero quaternion
            _msg("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, float("nan"), 0.0, 0.0, 1.0),
            _msg("/VMC/Ext/Bone/Pos", "Tail", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
            _msg("/VMC/Ext/Bone/Pos", "Head", 0.0),
            _msg("/lca/pose.head.y", float("inf")),
            _msg("/lca/root.x", 1e9),
            _msg("/lca/evil.channel", 1.0),
            _msg("/ARKit/jawOpen", 0.5, 0.6),
            _msg("/ARKit/jawOpen", "wide"),
            _msg("/*", 1.0),
            _msg("/VMC/Ext/*/Val", "jawOpen", 0.9),  # OSC patterns are not expanded
        ]
        for d in bad:
            sock.sendto(d, ("127.0.0.1", rx.port))
        sock.sendto(_msg("/VMC/Ext/Blend/Apply"), ("127.0.0.1", rx.port))
        sock.sendto(_msg("/ARKit/eyeBlinkLeft", 0.25), ("127.0.0.1", rx.port))
        frame = wait_for_frame(rx, lambda c: "expr.eyeBlinkLeft" in c)
        sock.close()
        assert frame.channels == {"expr.eyeBlinkLeft": 0.25}, frame.channels
        assert rx.rejected >= len(bad) - 1  # the pattern address reaches the default handler or nothing
        assert all(math.isfinite(v) for v in frame.channels.values())


def _flood(rng: np.random.Generator, n: int) -> list[bytes]:
    """Random, truncated, oversized and hostile datagrams."""
    good = _msg("/VMC/Ext/Blend/Val", "jawOpen", 0.5)
    out: list[bytes] = []
    for i in range(n):
        k = i % 10
        if k == 0:
            out.append(rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes())
        elif k == 1:
            out.append(good[: int(rng.integers(1, len(good)))])  # truncated
        elif k == 2:
            out.append(b"/" + rng.integers(32, 127, 60000, dtype=np.uint8).tobytes())  # oversized (past 8 KiB)
        elif k == 3:
            out.append(_msg("/" + "*" * 4000, 1.0))  # a pattern that backtracks for hours if expanded
        elif k == 4:
            b = OscBundleBuilder(int(time.time()) + 10**8)  # a bundle timed years ahead
            b.add_content(OscMessageBuilder(address="/ARKit/jawOpen").build())
            out.append(b.build().dgram)
        elif k == 5:
            out.append(_msg(f"/lca/pose.j{int(rng.integers(1 << 30))}.x", 1.0))  # ever new channel names
        elif k == 6:
            out.append(_msg("/VMC/Ext/Blend/Val", "jawOpen", float(rng.choice([np.nan, np.inf, -np.inf, 1e30]))))
        elif k == 7:
            bad = bytearray(good)
            bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
            out.append(bytes(bad))
        elif k == 8:
            out.append(b"#bundle\0" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
        else:
            out.append(_msg("/VMC/Ext/Bone/Pos", "Head", *rng.normal(size=7).tolist()))
    return out


def test_a_flood_of_malformed_packets_neither_crashes_nor_stalls_the_listener():
    n = 5000
    rng = np.random.default_rng(3)
    packets = _flood(rng, n)
    tally = Tally(
        "network input flood (BlendshapeReceiver, UDP)",
        f"{n} malformed / oversized / random datagrams",
        section="faults",
    )
    threads_before = threading.active_count()
    with BlendshapeReceiver("127.0.0.1", 0) as rx:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tracemalloc.start()
        t0 = time.perf_counter()
        for i, d in enumerate(packets):
            try:
                sock.sendto(d, ("127.0.0.1", rx.port))
            except OSError:  # "message too long" for the largest: the kernel refused, nothing was sent
                pass
            if i % 500 == 0:
                assert threading.active_count() <= threads_before + 2, "the listener spawns threads per packet"
            if i % 25 == 0:
                time.sleep(0.002)  # let most datagrams reach the parser rather than overflow the socket buffer
        send_s = time.perf_counter() - t0
        # Afterwards a valid message still gets through, promptly.
        client = SimpleUDPClient("127.0.0.1", rx.port)
        t1 = time.perf_counter()
        deadline = t1 + 10.0
        while time.perf_counter() < deadline:
            client.send_message("/ARKit/mouthSmileLeft", 0.75)
            f = rx.latest()
            if f is not None and f.channels.get("expr.mouthSmileLeft") == 0.75:
                break
            time.sleep(0.02)
        latency = time.perf_counter() - t1
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        f = rx.latest()
        assert rx.running, "the listener thread died"
        assert f is not None and f.channels.get("expr.mouthSmileLeft") == 0.75, "valid messages stopped arriving"
        assert latency < 5.0, f"a valid message took {latency:.1f} s to arrive after the flood"
        assert len(f.channels) <= MAX_CHANNELS
        assert all(math.isfinite(v) for v in f.channels.values())
        assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB traced during the flood"
        sock.close()
        client._sock.close()
        rejected = rx.rejected
    tally.cases, tally.loaded, tally.refused = n, n, rejected
    tally.errors = {"refused by validation": rejected, "ms until a valid message got through": round(latency * 1e3)}
    tally.max_seconds = round(latency, 3)
    tally.record()
    # The kernel drops datagrams the listener has no time for (that is the point: nothing queues without bound);
    # most of these still reached it and were refused.
    assert rejected > n // 10, f"only {rejected} of {n} hostile datagrams reached the listener and were refused"
    print(
        f"flood: {n} datagrams sent in {send_s:.2f} s, {rejected} rejected, valid message after {latency * 1e3:.0f} ms"
    )
