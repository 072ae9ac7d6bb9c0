"""Live Link Face and VMC outputs, judged by independent decoders: PyPI pylivelinkface and python-osc's server."""
import math
import socket
import threading

import numpy as np
import pytest
from pylivelinkface import FaceBlendShape, PyLiveLinkFace
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from backchannel.bridge.client import MotionReceiver, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.bridge.outputs.livelink import curve_values, packet
from backchannel.bridge.outputs.vmc import VmcSink, head_quaternion
from backchannel.calibration.rigs import RIGS, VRM0_TABLE, RigMap, rig_map
from backchannel.models.motion import ARKIT_NAMES, BS, HEAD_ROTATION, MOTION_DIM, MotionBlock

from .helpers import WORKER_COMMAND, collect, next_worker_stats, stream


class OscRecorder:
    """A python-osc UDP server on a free loopback port, recording every message it dispatches, in the order the
    datagrams arrive (one thread: a threading server handles datagrams side by side, and two frames' messages
    could interleave under load)."""

    def __init__(self):
        self.messages = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, args)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def frames(self) -> list[list[tuple]]:
        """Messages split into frames at each /VMC/Ext/T."""
        frames, current = [], []
        for msg in self.messages:
            current.append(msg)
            if msg[0] == "/VMC/Ext/T":
                frames.append(current)
                current = []
        return frames

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition, timeout_s=10.0):
    import time

    deadline = time.time() + timeout_s
    while not condition() and time.time() < deadline:
        time.sleep(0.01)
    assert condition()


def test_worker_sends_live_link_and_vmc_that_independent_decoders_read():
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    osc = OscRecorder()
    flags = ["--livelink", f"127.0.0.1:{udp.getsockname()[1]}", "--vmc", f"127.0.0.1:{osc.port}",
             "--vmc-names", "vrm1", "--stats-interval-s", "0.2"]
    try:
        with spawn_worker(*flags, command=WORKER_COMMAND) as ep:
            r = MotionReceiver(ep["motion_out"], ["face"])
            r.wait_ready()
            a, b = synthetic_dialogue(3.0, seed=11)  # both take a turn
            stream(ep, "face", {"self": a, "other": b})
            frames = sorted(collect(r, ["face"])["face"]["motion"], key=lambda f: f["seq"])
            packets = [udp.recvfrom(4096)[0] for _ in frames]
            wait_for(lambda: len(osc.frames()) == len(frames))
            outputs = next_worker_stats(r)["outputs"]  # the first worker stats after the session closed
            r.close()
    finally:
        udp.close()
        osc.close()
    assert len(frames) == 90
    assert outputs == {"livelink": {"sent": 90, "errors": 0}, "vmc": {"sent": 90, "errors": 0}}
    device_ids = set()
    for frame, raw in zip(frames, packets):
        ok, face = PyLiveLinkFace.decode(raw)
        assert ok and face.name == "face" and face.fps == 30 and face._denominator == 1 and face._version == 6
        assert face._frames == frame["seq"]
        device_ids.add(face.uuid)
        np.testing.assert_allclose([face.get_blendshape(FaceBlendShape[n]) for n in ARKIT_NAMES],
                                   frame["blendshapes"], atol=1e-6)
        pitch, yaw, roll = frame["head_rotation"]
        assert face.get_blendshape(FaceBlendShape.HeadPitch) == pytest.approx(pitch / math.pi, abs=1e-6)
        assert face.get_blendshape(FaceBlendShape.HeadYaw) == pytest.approx(yaw / math.pi, abs=1e-6)
        assert face.get_blendshape(FaceBlendShape.HeadRoll) == pytest.approx(-roll / math.pi, abs=1e-6)
    assert len(device_ids) == 1 and len(device_ids.pop()) == 37  # pylivelinkface reads "$" + our 36-char UUID
    assert max(f["head_rotation"][0] for f in frames) > 0  # the nods really travelled
    vmc = osc.frames()
    vrm1 = rig_map("vrm1")
    for frame, msgs in zip(frames, vmc):
        addresses = [m[0] for m in msgs]
        assert addresses == ["/VMC/Ext/Blend/Val"] * len(vrm1.targets) + \
            ["/VMC/Ext/Blend/Apply", "/VMC/Ext/Bone/Pos", "/VMC/Ext/OK", "/VMC/Ext/T"]
        values = dict(m[1] for m in msgs[:len(vrm1.targets)])
        assert list(values) == list(vrm1.targets)
        expected = vrm1.apply(np.array(frame["blendshapes"], np.float32))
        np.testing.assert_allclose([values[n] for n in vrm1.targets], expected, atol=1e-6)
        assert msgs[-1][1][0] == pytest.approx(frame["t"])
    assert max(dict(m[1] for m in msgs[:len(vrm1.targets)])["aa"] for msgs in vmc) > 0.1  # the mouth moved
    # what the receiver got means what the face did (read without rig.apply): the test generator moves only the jaw,
    # so "aa" rises and falls with JawOpen, nothing rounds the lips into "ou" and the eyes stay open and ahead
    received = [dict(m[1] for m in msgs[:len(vrm1.targets)]) for msgs in vmc]
    jaw = np.array([f["blendshapes"][BS["JawOpen"]] for f in frames])
    aa = np.array([v["aa"] for v in received])
    assert np.corrcoef(jaw, aa)[0, 1] > 0.99 and aa[jaw == 0].max(initial=0) == 0
    for name in ("ou", "blink", "blinkLeft", "blinkRight", "lookLeft", "lookRight", "lookUp", "lookDown"):
        assert all(v[name] == 0 for v in received), name


@pytest.mark.parametrize("names", ["arkit", "vrm0", "vrm1"])
def test_vmc_name_sets_over_udp(names):
    osc = OscRecorder()
    rng = np.random.default_rng(0)
    motion = rng.random((3, MOTION_DIM)).astype(np.float32) * 0.5
    sink = VmcSink(f"127.0.0.1:{osc.port}", names)
    try:
        sink.send("s", MotionBlock(10, motion, [1, 1, 2]))
        sink.send("other-session", MotionBlock(0, motion, [1, 1, 2]))  # no filter: sent too
        wait_for(lambda: len(osc.frames()) == 6)
    finally:
        sink.close()
        osc.close()
    rig = rig_map(names)
    for i, msgs in enumerate(osc.frames()[:3]):
        blend = [m[1] for m in msgs if m[0] == "/VMC/Ext/Blend/Val"]
        assert [n for n, _ in blend] == list(rig.targets)
        np.testing.assert_allclose([v for _, v in blend], rig.apply(motion[i, :52]), atol=1e-6)
        bone = next(m[1] for m in msgs if m[0] == "/VMC/Ext/Bone/Pos")
        assert bone[0] == "Head"
        np.testing.assert_allclose(bone[4:], head_quaternion(*motion[i, HEAD_ROTATION]), atol=1e-6)
        assert next(m[1] for m in msgs if m[0] == "/VMC/Ext/OK") == (1, 3, 0, 1)
        assert next(m[1] for m in msgs if m[0] == "/VMC/Ext/T")[0] == pytest.approx((10 + i) / 30)
    if names == "arkit":
        assert rig.targets[0] == "EyeBlinkLeft" and "JawOpen" in rig.targets  # Perfect Sync clip names
    if names == "vrm0":
        assert {"A", "I", "U", "E", "O", "Blink", "Blink_L", "Blink_R", "Joy", "LookUp"} <= set(rig.targets)
    if names == "vrm1":
        assert {"aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "happy", "surprised", "lookUp"} <= set(rig.targets)


# ARKit shapes (left/right: the avatar's own sides; EyeLookOut = that eye turned away from the nose) and the VRM
# expression each must raise, then one it must leave at zero: the meaning, written out without calibration.rigs
MEANINGS = [
    ({"EyeLookOutLeft": 1}, "LookLeft", "LookRight"),  # the left eye turned outwards looks to the avatar's left
    ({"EyeLookInRight": 1}, "LookLeft", "LookRight"),  # and so does the right eye turned towards the nose
    ({"EyeLookInLeft": 1}, "LookRight", "LookLeft"),
    ({"EyeLookOutRight": 1}, "LookRight", "LookLeft"),
    ({"EyeLookUpLeft": 1, "EyeLookUpRight": 1}, "LookUp", "LookDown"),
    ({"EyeLookDownLeft": 1, "EyeLookDownRight": 1}, "LookDown", "LookUp"),
    ({"EyeBlinkLeft": 1}, "Blink_L", "Blink_R"),
    ({"EyeBlinkRight": 1}, "Blink_R", "Blink_L"),
    ({"JawOpen": 1}, "A", "U"),
    ({"MouthPucker": 1}, "U", "A"),
    ({"MouthFunnel": 1}, "O", "A"),
    ({"MouthSmileLeft": 1, "MouthSmileRight": 1}, "Joy", "Sorrow"),
]
VRM1_PRESET = {"LookLeft": "lookLeft", "LookRight": "lookRight", "LookUp": "lookUp", "LookDown": "lookDown",
               "Blink_L": "blinkLeft", "Blink_R": "blinkRight", "A": "aa", "U": "ou", "O": "oh", "Joy": "happy",
               "Sorrow": "sad"}  # the VRM 1.0 spec's names for the VRM 0.x presets


@pytest.mark.parametrize("names", ["vrm0", "vrm1"])
def test_vmc_expressions_received_mean_what_the_arkit_shapes_do(names):
    """Through a python-osc server: gaze to each side, each eye's blink, jaw, pucker, funnel and smile each raise
    their own VRM expression and leave its opposite (other side, other vowel) at zero."""
    motion = np.zeros((len(MEANINGS), MOTION_DIM), np.float32)
    for row, (shapes, _, _) in zip(motion, MEANINGS):
        for shape, value in shapes.items():
            row[BS[shape]] = value
    osc = OscRecorder()
    sink = VmcSink(f"127.0.0.1:{osc.port}", names)
    try:
        sink.send("s", MotionBlock(0, motion, np.zeros(len(motion))))
        wait_for(lambda: len(osc.frames()) == len(MEANINGS))
    finally:
        sink.close()
        osc.close()
    rename = (lambda preset: preset) if names == "vrm0" else VRM1_PRESET.get
    in_order = sorted(osc.frames(), key=lambda msgs: msgs[-1][1][0])  # by /VMC/Ext/T, whatever order UDP kept
    for msgs, (shapes, raised, untouched) in zip(in_order, MEANINGS):
        got = dict(m[1] for m in msgs if m[0] == "/VMC/Ext/Blend/Val")
        assert got[rename(raised)] >= 0.4, (shapes, raised, got)
        assert got[rename(untouched)] == 0, (shapes, untouched, got)


def test_vmc_session_filter():
    osc = OscRecorder()
    sink = VmcSink(f"127.0.0.1:{osc.port}", "vrm0", session="chosen")
    try:
        sink.send("ignored", MotionBlock(0, np.zeros((2, MOTION_DIM)), [0, 0]))
        sink.send("chosen", MotionBlock(0, np.zeros((1, MOTION_DIM)), [0]))
        wait_for(lambda: len(osc.frames()) >= 1)
    finally:
        sink.close()
        osc.close()
    assert len(osc.frames()) == 1


def rotate(q, v):
    x, y, z, w = q
    u = np.array([x, y, z])
    return 2 * u.dot(v) * u + (w * w - u.dot(u)) * np.asarray(v) + 2 * w * np.cross(u, v)


def test_head_quaternion_follows_unity_axes():
    forward, up = np.array([0, 0, 1.0]), np.array([0, 1.0, 0])
    np.testing.assert_allclose(head_quaternion(0, 0, 0), [0, 0, 0, 1])
    assert rotate(head_quaternion(0.3, 0, 0), forward)[1] < -0.2  # +pitch looks down
    assert rotate(head_quaternion(0, 0.3, 0), forward)[0] < -0.2  # +yaw turns to the avatar's left (-x in Unity)
    assert rotate(head_quaternion(0, 0, 0.3), up)[0] < -0.2  # +roll tilts the top of the head to the avatar's left
    q = head_quaternion(0.2, -0.4, 0.1)
    assert np.linalg.norm(q) == pytest.approx(1)


def test_live_link_packet_layout():
    row = np.zeros(MOTION_DIM, np.float32)
    row[BS["JawOpen"]] = 0.75
    row[HEAD_ROTATION] = [math.pi / 4, -math.pi / 2, math.pi / 8]
    raw = packet("0" * 36, "npc", 42, curve_values(row))
    assert raw[0] == 6 and raw[1:5] == b"\x00\x00\x00\x24"  # uint8 version, then the id length big-endian
    assert len(raw) == 1 + 4 + 36 + 4 + 3 + 4 + 4 + 8 + 1 + 61 * 4
    ok, face = PyLiveLinkFace.decode(raw)
    assert ok and face._frames == 42 and face.get_blendshape(FaceBlendShape.JawOpen) == 0.75
    assert face.get_blendshape(FaceBlendShape.HeadPitch) == pytest.approx(0.25)
    assert face.get_blendshape(FaceBlendShape.HeadYaw) == pytest.approx(-0.5)
    assert face.get_blendshape(FaceBlendShape.HeadRoll) == pytest.approx(-0.125)


def test_rig_maps():
    weights = np.zeros((4, 52), np.float32)
    weights[0, BS["EyeBlinkLeft"]] = 1.0
    weights[1, BS["JawOpen"]] = 0.8
    weights[2, [BS["EyeBlinkLeft"], BS["EyeBlinkRight"]]] = 0.9, 0.3
    weights[3, BS["MouthPucker"]] = 1.0
    vrm0 = rig_map("vrm0")
    out = dict(zip(vrm0.targets, vrm0.apply(weights).T))
    # receivers add the expressions' morphs: a blink both eyes share goes out once, each side gets the rest
    assert (out["Blink"][0], out["Blink_L"][0], out["Blink_R"][0]) == (0, 1, 0)
    assert (out["Blink"][2], out["Blink_L"][2], out["Blink_R"][2]) == pytest.approx((0.3, 0.6, 0))
    # and the vowels mix: together as strong as the strongest, A the most of an open jaw, U of a pucker
    vowels = np.array([out[v] for v in "AIUEO"])
    np.testing.assert_allclose(vowels.sum(0)[[1, 3]], [0.8, 1.0], rtol=1e-6)
    assert vowels[:, 1].argmax() == 0 and vowels[:, 3].argmax() == 2
    assert out["U"][1] == 0 and out["A"][3] == 0  # negative terms clip at zero
    np.testing.assert_array_equal(RIGS["arkit"].apply(weights), weights)
    assert rig_map("vrm1").targets[:5] == ("aa", "ih", "ou", "ee", "oh")
    with pytest.raises(ValueError, match="unknown rig"):
        rig_map("metahuman-2077")
    with pytest.raises(ValueError, match="not an ARKit"):
        RigMap.from_table("bad", {"A": {"jawOpen": 1.0}})
    assert len(VRM0_TABLE) == len(vrm0.targets)


def test_a_full_udp_send_buffer_costs_a_counted_packet_not_the_workers_time():
    """Live Link's socket does not block (a full buffer is an error counted, as VMC's client does already)."""
    from backchannel.bridge.outputs.livelink import LiveLinkSink

    sink = LiveLinkSink("127.0.0.1:9")
    try:
        assert sink.sock.getblocking() is False

        def full(*args):
            raise BlockingIOError("send buffer full")

        sink.deliver(full)
        assert sink.stats() == {"sent": 0, "errors": 1}
    finally:
        sink.close()
