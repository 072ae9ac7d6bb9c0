"""A baked glTF read by the tools that import it: Khronos' validator (npm gltf-validator) finds no errors, Blender's
own importer (headless) makes shape keys whose keyframes are the motion's weights, and three.js (npm) in headless
Chromium plays the morph animation with those weights and draws the face (the screenshot lands in the test's
tmp folder)."""
import functools
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from backchannel.bridge.cli import main
from backchannel.calibration.rigs import rig_map
from backchannel.models.motion import ARKIT_NAMES, BS

from . import browser
from .bake_fixtures import read_jsonl, write_exchange

JS = Path(__file__).parent / "js"
SHAPES = ("JawOpen", "EyeBlinkLeft", "MouthSmileLeft", "BrowInnerUp", "MouthClose")


def needs(*what: str) -> None:
    """Skip (a failure under CI=true, tests/conftest.py) where setup has not installed a reader."""
    if "node" in what and (not shutil.which("node") or not (JS / "node_modules" / "gltf-validator").is_dir()):
        pytest.skip("no node or tests/js/node_modules: run scripts/setup.sh (npm ci)")
    if "blender" in what and not shutil.which("blender"):
        pytest.skip("no blender (Debian package blender)")
    if "browser" in what:
        if not (JS / "node_modules" / "three").is_dir():
            pytest.skip("no tests/js/node_modules/three: run scripts/setup.sh (npm ci)")
        if reason := browser.missing():
            pytest.skip(reason)


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gltf")
    line, partner = write_exchange(folder)
    common = ["bake", "--self", str(line), "--other", str(partner), "--generator", "baseline", "--seed", "1"]
    assert main([*common, "--out", str(folder / "line.glb"), "--out", str(folder / "line.jsonl")]) == 0
    assert main([*common, "--names", "vrm0", "--fps", "60", "--out", str(folder / "vrm.gltf")]) == 0
    return {"folder": folder, "glb": folder / "line.glb", "gltf": folder / "vrm.gltf",
            "motion": read_jsonl(folder / "line.jsonl")}


def test_khronos_validator_finds_no_errors(baked):
    needs("node")
    reports = subprocess.run(["node", str(JS / "validate.mjs"), str(baked["glb"]), str(baked["gltf"])],
                             capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(reports) == 2
    for report in map(json.loads, reports):
        issues = report["issues"]
        assert issues["numErrors"] == 0, issues["messages"]
        assert issues["numWarnings"] == 0, issues["messages"]
        info = report["info"]
        assert info["animationCount"] == 1 and info["hasMorphTargets"] is True


@pytest.fixture(scope="module")
def blender(baked):
    """What Blender's importer made of the GLB (tests/blender_read.py), one Blender start for the module."""
    needs("blender")
    result = baked["folder"] / "blender.json"
    run = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(Path(__file__).parent / "blender_read.py"),
                          "--", str(baked["glb"]), str(result)], capture_output=True, text=True, timeout=120)
    assert result.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(result.read_text())


def test_blender_imports_shape_keys_keyed_with_the_motions_weights(baked, blender):
    assert blender["objects"] == {"Head": "EMPTY", "Face": "MESH", "LeftEye": "MESH", "RightEye": "MESH"}
    assert blender["shape_keys"]["Face"] == ["Basis", *ARKIT_NAMES]
    weights = baked["motion"]["weights"]
    n = len(weights)
    for name in SHAPES:
        keys = np.array(blender["shape_key_curves"][f'key_blocks["{name}"].value'])
        assert len(keys) == n
        assert keys[:, 0] == pytest.approx(np.arange(n))  # one key a frame at the scene's 30 fps
        assert keys[:, 1] == pytest.approx(weights[:, BS[name]], abs=1e-4)
    assert max(np.array(blender["shape_key_curves"]['key_blocks["JawOpen"].value'])[:, 1]) > 0.2


def test_blender_keys_the_head_turn(baked, blender):
    """Blender turns glTF's Y-up into its Z-up, so compare what survives that: each frame's angle of turn."""
    curves = blender["node_curves"]["Head"]
    w = np.array([[v for _, v in curves[f"rotation_quaternion[{i}]"]] for i in range(4)])[0]  # Blender: w first
    from scipy.spatial.transform import Rotation

    head = baked["motion"]["head"]
    expected = Rotation.from_euler("YXZ", np.stack([head[:, 1], head[:, 0], -head[:, 2]], 1)).magnitude()
    assert 2 * np.arccos(np.clip(np.abs(w), 0, 1)) == pytest.approx(expected, abs=1e-3)
    assert expected.max() > np.radians(1)  # the head does move


@pytest.fixture()
def site(baked, tmp_path):
    """The player page, three.js and the assets, served from 127.0.0.1 (no CDN, nothing else reached)."""
    root = tmp_path / "site"
    root.mkdir()
    os.symlink(JS / "node_modules", root / "node_modules")
    shutil.copy(JS / "player.html", root)
    for asset in (baked["glb"], baked["gltf"]):
        shutil.copy(asset, root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def play(driver, url: str, timeout_s: float = 60.0) -> dict:
    driver.get(url)
    deadline = time.monotonic() + timeout_s
    while (result := driver.execute_script("return window.result")) is None:
        assert time.monotonic() < deadline, "the page never reported"
        time.sleep(0.1)
    assert result["ok"], result.get("error")
    return result


def test_threejs_in_chromium_plays_the_morph_animation(baked, site, tmp_path):
    needs("browser")
    from PIL import Image
    from selenium.webdriver.common.by import By

    weights = baked["motion"]["weights"]
    frames = [int(np.argmax(weights[:, BS["JawOpen"]])), 10, len(weights) - 1]
    times = ",".join(f"{k / 30:.6f}" for k in frames)
    with browser.chromium(tmp_path / "profile") as driver:
        glb = play(driver, f"{site}/player.html?glb=line.glb&times={times}&names={','.join(SHAPES)}"
                           f"&show={frames[0] / 30:.6f}")
        shot = tmp_path / "threejs.png"
        driver.find_element(By.TAG_NAME, "canvas").screenshot(str(shot))
        vrm = play(driver, f"{site}/player.html?glb=vrm.gltf&times={times}&names=A,Blink,Joy")
    assert glb["clip"] == "line" and glb["morphs"] == list(ARKIT_NAMES)
    assert glb["duration"] == pytest.approx((len(weights) - 1) / 30, abs=1e-4)
    assert {"Face.morphTargetInfluences", "Head.quaternion", "Head.position", "LeftEye.quaternion",
            "RightEye.quaternion"} <= set(glb["tracks"])
    for k, sample in zip(frames, glb["samples"]):
        for name in SHAPES:
            assert sample[name] == pytest.approx(weights[k, BS[name]], abs=1e-4), (k, name, sample)
    assert glb["samples"][0]["JawOpen"] > 0.2
    # the 60 fps .gltf under VRM 0 names: the frames of the 30 fps motion through the rig map
    assert vrm["morphs"] == list(rig_map("vrm0").targets)
    expected = rig_map("vrm0").apply(weights)
    for k, sample in zip(frames, vrm["samples"]):
        for name in ("A", "Blink", "Joy"):
            assert sample[name] == pytest.approx(expected[k, rig_map("vrm0").targets.index(name)], abs=1e-4)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), np.float32)
    assert pixels.shape[0] >= 400 and pixels.std() > 20  # a lit face drawn, not a blank canvas


def user_head(path: Path) -> None:
    """A user's model as Blender's exporter writes one: a mesh whose morph targets are named in its extras (some
    ARKit names, in its own order, and one of its own), under a `Head` node that rests turned, under a turned
    root."""
    import pygltflib as g

    vertices = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0.1, 0.1, 0]], np.float32)
    targets = [np.full_like(vertices, 0.01 * (k + 1)) for k in range(3)]
    arrays = [vertices, *targets, np.array([0, 1, 2, 1, 3, 2], np.uint16)]
    blob, views, accessors = b"", [], []
    for a in arrays:
        views.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=a.nbytes))
        kind, component = ("SCALAR", g.UNSIGNED_SHORT) if a.dtype == np.uint16 else ("VEC3", g.FLOAT)
        bounds = {} if kind == "SCALAR" else {"min": a.min(0).tolist(), "max": a.max(0).tolist()}
        accessors.append(g.Accessor(bufferView=len(views) - 1, componentType=component, count=len(a), type=kind,
                                    **bounds))
        blob += a.tobytes()
    doc = g.GLTF2(
        asset=g.Asset(version="2.0"), scene=0, scenes=[g.Scene(nodes=[0])], bufferViews=views, accessors=accessors,
        buffers=[g.Buffer(byteLength=len(blob))],
        meshes=[g.Mesh(primitives=[g.Primitive(attributes=g.Attributes(POSITION=0), indices=4,
                                               targets=[{"POSITION": 1}, {"POSITION": 2}, {"POSITION": 3}])],
                       weights=[0, 0, 0], extras={"targetNames": ["CustomSmile", "JawOpen", "EyeBlinkLeft"]})],
        nodes=[g.Node(name="Armature", children=[1], rotation=[0, 0.2588190, 0, 0.9659258]),  # 30 deg about Y
               g.Node(name="Head", children=[2], rotation=[0.0871557, 0, 0, 0.9961947]),  # 10 deg about X
               g.Node(name="Body", mesh=0)])
    doc.set_binary_blob(blob)
    doc.save_binary(str(path))


def test_a_users_head_gets_the_animation_by_target_name(baked, tmp_path):
    needs("node", "browser")
    from scipy.spatial.transform import Rotation

    head = tmp_path / "user.glb"
    user_head(head)
    out = tmp_path / "on-user.glb"
    line = baked["folder"] / "line.wav"
    assert main(["bake", "--self", str(line), "--other", str(baked["folder"] / "partner.wav"), "--generator",
                 "baseline", "--seed", "1", "--head", str(head), "--out", str(out)]) == 0
    report = json.loads(subprocess.run(["node", str(JS / "validate.mjs"), str(out)], capture_output=True, text=True,
                                       timeout=60, check=True).stdout)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"]
    weights, head_turn = baked["motion"]["weights"], baked["motion"]["head"]
    frames = [int(np.argmax(weights[:, BS["JawOpen"]])), 20, 60]
    root = tmp_path / "site"
    root.mkdir()
    os.symlink(JS / "node_modules", root / "node_modules")
    shutil.copy(JS / "player.html", root)
    shutil.copy(out, root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with browser.chromium(tmp_path / "profile") as driver:
            result = play(driver, f"http://127.0.0.1:{server.server_port}/player.html?glb={out.name}"
                                  f"&times={','.join(f'{k / 30:.6f}' for k in frames)}"
                                  "&names=JawOpen,EyeBlinkLeft,CustomSmile")
    finally:
        server.shutdown()
        server.server_close()
    assert result["morphs"] == ["CustomSmile", "JawOpen", "EyeBlinkLeft"]
    rest = Rotation.from_euler("Y", 30, degrees=True) * Rotation.from_euler("X", 10, degrees=True)
    for k, sample, world in zip(frames, result["samples"], result["heads"]):
        assert sample["JawOpen"] == pytest.approx(weights[k, BS["JawOpen"]], abs=1e-4)
        assert sample["EyeBlinkLeft"] == pytest.approx(weights[k, BS["EyeBlinkLeft"]], abs=1e-4)
        assert sample["CustomSmile"] == 0  # a target the rig does not name stays at rest
        # the head turns about the world's axes (glTF: +Y up, facing +Z) by the motion's yaw, pitch and roll
        pitch, yaw, roll = head_turn[k]
        turn = Rotation.from_quat(world) * rest.inv()
        expected = Rotation.from_euler("YXZ", [yaw, pitch, -roll])
        assert (turn * expected.inv()).magnitude() < 1e-4


def test_a_head_the_rig_does_not_name_is_refused_before_baking(baked, tmp_path, capsys):
    head = tmp_path / "user.glb"
    user_head(head)
    out = tmp_path / "x.glb"
    assert main(["bake", "--self", str(baked["folder"] / "line.wav"), "--generator", "baseline", "--names", "vrm0",
                 "--head", str(head), "--out", str(out)]) == 2
    assert "no morph target is named by the vrm0 rig" in capsys.readouterr().err and not out.exists()
    (tmp_path / "not.glb").write_text("{}")
    assert main(["bake", "--self", str(baked["folder"] / "line.wav"), "--head", str(tmp_path / "not.glb"),
                 "--out", str(out)]) == 2
    assert "not a binary glTF" in capsys.readouterr().err
