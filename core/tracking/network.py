"""Driving channels over the network: VMC protocol and plain OSC out, ARKit-style blendshape streams in.

Out (`ChannelSender`): one OSC bundle per frame.
    VMC (VSeeFace, VMagicMirror, VNyan, ...):  /VMC/Ext/Blend/Val <ARKit name> <value> per expression,
        /VMC/Ext/Blend/Apply, /VMC/Ext/Root/Pos and /VMC/Ext/Bone/Pos <Unity bone> px py pz qx qy qz qw for
        head and body bones, /VMC/Ext/OK 1.
    plain OSC:  /lca/<channel> <value> for every channel (e.g. /lca/expr.jawOpen 0.4).
VMC poses are in Unity's left-handed frame (x to the avatar's right, y up, z forward): our world (y up, person
facing +z, x to the person's left) is mirrored in x, so positions flip x and quaternions flip y and z.

In (`BlendshapeReceiver`): an OSC server on a background thread that turns what face-capture bridges send
(iFacialMocap / Live Link Face bridges, VMC performers) into `DrivingFrame`s:
    /VMC/Ext/Blend/Val <name> <value> ... /VMC/Ext/Blend/Apply;  /VMC/Ext/Bone/Pos <bone> ...;
    /ARKit/<name> <value>;  /<ARKit name> <value>;  /lca/<channel> <value> (our own output, for loop-backs).
It listens on 127.0.0.1 unless given another host, and trusts nothing it receives: one thread handles the
datagrams in turn (a flood cannot spawn threads), addresses are matched exactly (no OSC pattern expansion, no
bundle timetags honoured), and every message is checked (argument count and types, finite numbers in range,
known channel names, at most MAX_CHANNELS distinct channels) before it is used; the rest is counted in `rejected`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from core.tracking.types import DrivingFrame

log = logging.getLogger(__name__)

# Unity HumanBodyBones -> the body model's bones whose rotations compose into it (chain order, parent first).
VMC_BONES: dict[str, tuple[str, ...]] = {
    "Hips": ("root",),
    "Spine": ("spine05", "spine04"),
    "Chest": ("spine03", "spine02"),
    "UpperChest": ("spine01",),
    "Neck": ("neck01", "neck02"),
    "Head": ("neck03", "head"),
    "LeftEye": ("eye.L",),
    "RightEye": ("eye.R",),
}
for _side, _s in (("Left", "L"), ("Right", "R")):
    VMC_BONES.update({
        f"{_side}Shoulder": (f"clavicle.{_s}", f"shoulder01.{_s}"),
        f"{_side}UpperArm": (f"upperarm01.{_s}", f"upperarm02.{_s}"),
        f"{_side}LowerArm": (f"lowerarm01.{_s}", f"lowerarm02.{_s}"),
        f"{_side}Hand": (f"wrist.{_s}",),
        f"{_side}UpperLeg": (f"upperleg01.{_s}", f"upperleg02.{_s}"),
        f"{_side}LowerLeg": (f"lowerleg01.{_s}", f"lowerleg02.{_s}"),
        f"{_side}Foot": (f"foot.{_s}",),
    })  # fmt: skip
    for _i, _finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Little"), start=1):
        for _k, _seg in enumerate(("Proximal", "Intermediate", "Distal"), start=1):
            VMC_BONES[f"{_side}{_finger}{_seg}"] = (f"finger{_i}-{_k}.{_s}",)
# The body model's bone that a received Unity bone drives (the first of each chain).
BONE_OF_VMC: dict[str, str] = {unity: chain[-1] if unity == "Head" else chain[0] for unity, chain in VMC_BONES.items()}
# VRM preset blendshapes that some performers send instead of ARKit names.
VRM_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "Blink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "Blink_L": ("eyeBlinkLeft",),
    "Blink_R": ("eyeBlinkRight",),
    "A": ("jawOpen",),
    "O": ("mouthFunnel",),
    "U": ("mouthPucker",),
    "Joy": ("mouthSmileLeft", "mouthSmileRight"),
}


# The 52 ARKit blendshape names (the body model's facial actions use the same names).
ARKIT_NAMES: frozenset[str] = frozenset(
    """browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft
    cheekSquintRight eyeBlinkLeft eyeBlinkRight eyeLookDownLeft eyeLookDownRight eyeLookInLeft eyeLookInRight
    eyeLookOutLeft eyeLookOutRight eyeLookUpLeft eyeLookUpRight eyeSquintLeft eyeSquintRight eyeWideLeft
    eyeWideRight jawForward jawLeft jawOpen jawRight mouthClose mouthDimpleLeft mouthDimpleRight mouthFrownLeft
    mouthFrownRight mouthFunnel mouthLeft mouthLowerDownLeft mouthLowerDownRight mouthPressLeft mouthPressRight
    mouthPucker mouthRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthSmileLeft
    mouthSmileRight mouthStretchLeft mouthStretchRight mouthUpperUpLeft mouthUpperUpRight noseSneerLeft
    noseSneerRight tongueOut""".split()
)
MAX_CHANNELS = 512  # distinct channels one receiver keeps (the rig's channels, about 370, all fit)
MAX_ANGLE_DEG = 360.0  # pose and gaze channels beyond this are refused, not wrapped
MAX_ROOT_M = 100.0  # root translation and VMC positions
MAX_ADDRESS_CHARS = 128
_JOINT = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,47}")


@functools.cache
def rig_joints() -> frozenset[str]:
    """The joints a pose channel may name: the baked body's bones (read from its header only) and the bones VMC
    drives. Made-up joint names are refused, so a sender cannot fill the channel table with them."""
    joints = {bone for chain in VMC_BONES.values() for bone in chain}
    try:
        from safetensors import safe_open

        from core.body.paths import body_asset_path

        with safe_open(str(body_asset_path()), "np") as f:
            names = json.loads(f.metadata()["json"])["bone_names"]
        joints.update(n for n in names if isinstance(n, str) and _JOINT.fullmatch(n))
    except (OSError, KeyError, TypeError, ValueError, RecursionError) as e:
        log.warning("the body asset's bone names are unavailable (%s): network pose channels limited to VMC bones", e)
    return frozenset(joints)


def validate_channel(name: object, value: object) -> float | None:
    """The value to use for driving channel `name`, or None when the name is not a channel of the rig or the value
    not a finite number in its range. Expressions are clamped to [0, 1]; angles (degrees) must lie within
    +-MAX_ANGLE_DEG and root translations (metres) within +-MAX_ROOT_M; pose channels must name a bone of the body
    rig (`rig_joints`), so the channels a sender can create are bounded by the rig's."""
    if not isinstance(name, str) or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    v = float(value)
    if not math.isfinite(v):
        return None
    if name.startswith("expr."):
        return min(max(v, 0.0), 1.0) if name[5:] in ARKIT_NAMES else None
    if name in ("gaze.yaw", "gaze.pitch"):
        return v if abs(v) <= MAX_ANGLE_DEG else None
    if name.startswith("pose.") and name[-2:] in (".x", ".y", ".z") and name[5:-2] in rig_joints():
        return v if abs(v) <= MAX_ANGLE_DEG else None
    if name in ("root.x", "root.y", "root.z"):
        return v if abs(v) <= MAX_ROOT_M else None
    return None


def _finite_numbers(values: tuple, limit: float) -> bool:
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= limit for v in values
    )


def parse_host_port(text: str, default_port: int = 39539) -> tuple[str, int]:
    """'127.0.0.1:39539' -> ('127.0.0.1', 39539); 'host' alone takes the default port (VMC's 39539)."""
    host, _, port = text.strip().rpartition(":")
    if not host:
        host, port = port, str(default_port)
    try:
        value = int(port)
    except ValueError:
        value = -1
    if not host or not 0 <= value <= 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:39539, got {text!r}")
    return host, value


# Rotations ------------------------------------------------------------------------------------------------
def quat_from_axis_angle_deg(v: np.ndarray) -> np.ndarray:  # [3] -> [4] (x, y, z, w)
    """Unit quaternion (x, y, z, w) of an axis-angle vector in degrees."""
    v = np.asarray(v, dtype=np.float64) * (np.pi / 180.0)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    return np.array([*(np.sin(angle / 2) * v / angle), np.cos(angle / 2)])


def axis_angle_deg_from_quat(q: np.ndarray) -> np.ndarray:  # [4] (x, y, z, w) -> [3]
    """Axis-angle vector in degrees (angle in [0, 180]) of a quaternion (x, y, z, w), normalised first."""
    q = np.asarray(q, dtype=np.float64)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    if q[3] < 0:
        q = -q
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return np.zeros(3)
    return q[:3] / s * (2.0 * np.degrees(np.arctan2(s, q[3])))


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [4], [4] (x, y, z, w) -> [4]
    """Hamilton product a * b (apply b, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])  # fmt: skip


def to_unity(q: np.ndarray) -> np.ndarray:  # [4] -> [4]
    """A rotation in our right-handed world as a rotation in Unity's frame (mirror in x); its own inverse."""
    return np.array([q[0], -q[1], -q[2], q[3]])


def joint_rotations(channels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """{joint: [3] axis-angle degrees} from pose.<joint>.x|y|z channels (missing axes are 0)."""
    out: dict[str, np.ndarray] = {}
    for name, value in channels.items():
        if name.startswith("pose.") and name[-2:] in (".x", ".y", ".z"):
            out.setdefault(name[5:-2], np.zeros(3))["xyz".index(name[-1])] = float(value)
    return out


def vmc_bone_quats(channels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """{Unity bone: [4] quaternion (x, y, z, w) in Unity's frame} for every bone some channel moves."""
    rots = joint_rotations(channels)
    gaze = None
    if "gaze.yaw" in channels or "gaze.pitch" in channels:
        # as core.body.lbs.rotation_about_axes: R_y(yaw) @ R_x(-pitch), on top of each eye's own pose
        yaw, pitch = channels.get("gaze.yaw", 0.0), channels.get("gaze.pitch", 0.0)
        gaze = quat_mul(quat_from_axis_angle_deg([0.0, yaw, 0.0]), quat_from_axis_angle_deg([-pitch, 0.0, 0.0]))
    out = {}
    for unity, chain in VMC_BONES.items():
        present = [rots[j] for j in chain if j in rots]
        is_eye = unity in ("LeftEye", "RightEye")
        if not present and not (is_eye and gaze is not None):
            continue
        q = np.array([0.0, 0.0, 0.0, 1.0])
        for r in present:  # rotations about world axes: a child's rotation applies after its parent's
            q = quat_mul(quat_from_axis_angle_deg(r), q)
        if is_eye and gaze is not None:
            q = quat_mul(q, gaze)
        out[unity] = to_unity(q)
    return out


# Sending --------------------------------------------------------------------------------------------------
class ChannelSender:
    """Sends driving channels to one UDP address as VMC or plain OSC, one bundle per call."""

    def __init__(self, host: str = "127.0.0.1", port: int = 39539, *, protocol: str = "vmc") -> None:
        from pythonosc.udp_client import SimpleUDPClient

        if protocol not in ("vmc", "osc"):
            raise ValueError(f"protocol must be 'vmc' or 'osc', got {protocol!r}")
        self.host, self.port, self.protocol = host, int(port), protocol
        try:
            self._client = SimpleUDPClient(host, self.port)
        except OSError as e:
            raise OSError(f"cannot send OSC to {host}:{port}: {e}; check the host name and port") from e
        self.sent = 0  # bundles sent

    def send(self, channels: Mapping[str, float]) -> None:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder

        bundle = OscBundleBuilder(IMMEDIATELY)
        for address, args in self.messages(channels):
            bundle.add_content(_message(address, args))
        try:
            self._client.send(bundle.build())
        except OSError as e:  # an unreachable host must not stop the studio
            log.warning("OSC send to %s:%d failed: %s", self.host, self.port, e)
            return
        self.sent += 1

    def messages(self, channels: Mapping[str, float]) -> list[tuple[str, list]]:
        """The (address, arguments) list one `send` puts in its bundle."""
        if self.protocol == "osc":
            return [(f"/lca/{name}", [float(v)]) for name, v in sorted(channels.items())]
        msgs: list[tuple[str, list]] = []
        if any(k.startswith("root.") for k in channels):
            p = [-channels.get("root.x", 0.0), channels.get("root.y", 0.0), channels.get("root.z", 0.0)]
            msgs.append(("/VMC/Ext/Root/Pos", ["root", *map(float, p), 0.0, 0.0, 0.0, 1.0]))
        for bone, q in vmc_bone_quats(channels).items():
            msgs.append(("/VMC/Ext/Bone/Pos", [bone, 0.0, 0.0, 0.0, *map(float, q)]))
        for name, v in sorted(channels.items()):
            if name.startswith("expr."):
                msgs.append(("/VMC/Ext/Blend/Val", [name[5:], float(v)]))
        msgs.append(("/VMC/Ext/Blend/Apply", []))
        msgs.append(("/VMC/Ext/OK", [1]))
        return msgs

    def close(self) -> None:
        self._client._sock.close()


def _message(address: str, args: list):
    from pythonosc.osc_message_builder import OscMessageBuilder

    m = OscMessageBuilder(address=address)
    for a in args:
        m.add_arg(a)
    return m.build()


# Receiving ------------------------------------------------------------------------------------------------
class _QuietOSCParser(logging.Filter):
    """Drops the root-logger warnings pythonosc writes for every datagram it cannot parse (a flood of them would
    flood the log and the studio's console); those datagrams are counted in `BlendshapeReceiver.rejected`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and f"pythonosc{os.sep}" in record.pathname)


_QUIET = _QuietOSCParser()


def _exact_dispatcher(on_reject: Callable[[], None]):
    """A pythonosc Dispatcher that matches addresses exactly, ignores bundle timetags and counts unparsable packets.

    pythonosc's own matching turns each received address into a regular expression (a packet of 4,000 `*`s
    backtracks for hours) and sleeps until a bundle's timetag (a timetag years ahead stalls the listener)."""
    from pythonosc import osc_packet
    from pythonosc.dispatcher import Dispatcher

    class ExactDispatcher(Dispatcher):
        def handlers_for_address(self, address_pattern: str):
            handlers = self._map.get(address_pattern) if len(address_pattern) <= MAX_ADDRESS_CHARS else None
            if handlers:
                yield from handlers
            elif self._default_handler is not None:
                yield self._default_handler

        def call_handlers_for_packet(self, data: bytes, client_address) -> list:
            try:
                packet = osc_packet.OscPacket(data)
            except osc_packet.ParseError:
                on_reject()
                return []
            for timed in packet.messages:  # at once, whatever the timetag says
                for handler in self.handlers_for_address(timed.message.address):
                    handler.invoke(client_address, timed.message)
            return []

    return ExactDispatcher(strict_timing=False)


class BlendshapeReceiver:
    """An OSC/VMC server on a background thread; `latest()` gives the newest channels as a DrivingFrame.

    VMC blendshape values are buffered until /VMC/Ext/Blend/Apply; every other message takes effect at once.
    Listens on 127.0.0.1 unless `host` says otherwise ("0.0.0.0": every interface, for a phone on the network).
    Port 0 picks a free port (see `port`). Messages that fail validation are dropped and counted in `rejected`.
    """

    name = "network"
    live = True

    def __init__(self, host: str = "127.0.0.1", port: int = 39539) -> None:
        from pythonosc.osc_server import BlockingOSCUDPServer

        rig_joints()  # read once here, not by the listener thread while datagrams queue up
        d = _exact_dispatcher(self._reject)
        d.map("/VMC/Ext/Blend/Val", self._on_vmc_blend)
        d.map("/VMC/Ext/Blend/Apply", self._on_vmc_apply)
        d.map("/VMC/Ext/Bone/Pos", self._on_vmc_bone)
        d.set_default_handler(self._on_other)
        receiver = self

        class Server(BlockingOSCUDPServer):
            def verify_request(self, request, client_address) -> bool:  # neither an OSC message nor a bundle
                ok = super().verify_request(request, client_address)
                if not ok:
                    receiver._reject()
                return ok

            def handle_error(self, request, client_address) -> None:  # a datagram no parser expected
                receiver._reject()
                log.debug("OSC datagram from %s dropped", client_address, exc_info=True)

        try:
            self._server = Server((host, int(port)), d)
        except (OSError, OverflowError) as e:
            raise OSError(
                f"cannot listen for OSC on {host}:{port}: {e}; another program may use that port, pick another"
            ) from e
        self.host, self.port = host, int(self._server.server_address[1])
        logging.getLogger().addFilter(_QUIET)  # the same object each time: added once
        self._lock = threading.Lock()
        self._channels: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._frame: DrivingFrame | None = None
        self._count = 0
        self._last_t = 0.0
        self.fps = 0.0  # updates per second (smoothed)
        self.messages = 0
        self.rejected = 0  # messages or datagrams dropped by validation
        self.error: str | None = None
        self.finished = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="osc-receiver", daemon=True)
        self._thread.start()
        log.info("listening for ARKit / VMC blendshapes on %s:%d", host, self.port)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _reject(self) -> None:
        self.rejected += 1

    def latest(self) -> DrivingFrame | None:
        with self._lock:
            return self._frame

    def _commit(self, values: Mapping[str, float]) -> None:
        now = time.perf_counter()
        with self._lock:
            for name, v in values.items():
                if name in self._channels or len(self._channels) < MAX_CHANNELS:
                    self._channels[name] = v
                else:
                    self.rejected += 1
            if self._count:
                self.fps = 0.9 * self.fps + 0.1 / max(now - self._last_t, 1e-3)
            self._last_t = now
            self._frame = DrivingFrame(dict(self._channels), self._count, now, {"capture": 0.0})
            self._count += 1

    def _on_vmc_blend(self, address: str, *args) -> None:
        self.messages += 1
        if len(args) != 2 or not isinstance(args[0], str):
            self.rejected += 1
            return
        names = VRM_BLENDSHAPES.get(args[0], (args[0],))
        values = {f"expr.{n}": validate_channel(f"expr.{n}", args[1]) for n in names}
        if any(v is None for v in values.values()):
            self.rejected += 1
            return
        self._pending.update(values)  # only known ARKit names: at most 52 entries

    def _on_vmc_apply(self, address: str, *args) -> None:
        self.messages += 1
        pending, self._pending = self._pending, {}
        if pending:
            self._commit(pending)

    def _on_vmc_bone(self, address: str, *args) -> None:
        self.messages += 1
        if len(args) != 8 or not isinstance(args[0], str) or args[0] not in BONE_OF_VMC:
            self.rejected += 1
            return
        if not _finite_numbers(args[1:4], MAX_ROOT_M) or not _finite_numbers(args[4:8], 1e3):
            self.rejected += 1
            return
        q = np.array(args[4:8], dtype=np.float64)
        if np.linalg.norm(q) < 1e-6:
            self.rejected += 1
            return
        if args[0] in ("LeftEye", "RightEye"):
            return  # gaze comes from the eye blendshapes or gaze channels
        rot = axis_angle_deg_from_quat(to_unity(q))
        joint = BONE_OF_VMC[args[0]]
        self._commit({f"pose.{joint}.{a}": float(v) for a, v in zip("xyz", rot, strict=True)})

    def _on_other(self, address: str, *args) -> None:
        self.messages += 1
        if len(args) != 1:
            self.rejected += 1
            return
        if address.startswith("/lca/"):
            name = address[5:]
        else:
            bare = address[len("/ARKit/") :] if address.startswith("/ARKit/") else address[1:]
            name = f"expr.{bare[:1].lower()}{bare[1:]}"
        value = validate_channel(name, args[0])
        if value is None:
            self.rejected += 1
            return
        self._commit({name: value})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)
        self.finished = True

    def __enter__(self) -> BlendshapeReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
