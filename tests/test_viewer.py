"""The viewer page (served by `serve --ws` at `/`) in a real headless Chromium while `backchannel send` streams a
conversation: the page finds the session, its frame counter advances at about the frame rate, its state follows the
conversation, and a screenshot is written."""
from __future__ import annotations

import subprocess
import threading
import sys
import time

import numpy as np
import soundfile

from backchannel.bridge.client import spawn_worker

from .browser import chromium
from .helpers import WORKER_COMMAND

RATE = 16000
TURN_S, TURNS = 1.5, 4  # the avatar and its partner take turns: speaking, listening, speaking, listening


def write_conversation(folder) -> tuple[str, str]:
    n = int(TURN_S * RATE)
    t = np.arange(n) / RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    quiet = np.zeros(n, np.float32)
    own = np.concatenate([voice if k % 2 == 0 else quiet for k in range(TURNS)])
    other = np.concatenate([quiet if k % 2 == 0 else voice for k in range(TURNS)])
    paths = str(folder / "self.wav"), str(folder / "other.wav")
    for path, audio in zip(paths, (own, other)):
        soundfile.write(path, audio, RATE)
    return paths


def test_the_viewer_shows_a_live_session_in_chromium(tmp_path):
    own, other = write_conversation(tmp_path)
    with chromium(tmp_path / "profile", size=(1280, 800)) as driver:
        with spawn_worker("--ws", "127.0.0.1:0", "--stats-interval-s", "0.25", command=WORKER_COMMAND) as w:
            driver.get("http" + w["ws"][2:] + "?session=talk")
            deadline = time.time() + 15
            while driver.find_element("id", "status").text != "connected" and time.time() < deadline:
                time.sleep(0.05)
            sender = subprocess.Popen([sys.executable, "-m", "backchannel.bridge.cli", "send", "--to", w["audio_in"],
                                       "--motion-out", w["motion_out"], "--session", "talk", "--self", own,
                                       "--other", other, "--realtime"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
            samples, table = [], ""  # (wall time, frame counter, state); the sessions table as shown
            shot = tmp_path / "viewer.png"
            while sender.poll() is None and time.time() < deadline + 30:
                count = int(driver.find_element("id", "frame-count").text)
                samples.append((time.time(), count, driver.find_element("id", "state").text))
                if count >= 30 * TURN_S * 2.5 and not shot.exists():  # the third turn: the avatar speaks
                    table = driver.find_element("id", "sessions").text
                    driver.save_screenshot(str(shot))
                time.sleep(0.1)
            output = sender.communicate()[0].decode()
            assert sender.returncode == 0, output
    counting = [(t, n) for t, n, _ in samples if 0 < n < 30 * TURN_S * TURNS - 15]
    assert counting, samples
    (t0, n0), (t1, n1) = counting[0], counting[-1]
    assert t1 - t0 > 2 and 20 <= (n1 - n0) / (t1 - t0) <= 40, counting  # real time: 30 a second
    states = [s for _, n, s in samples if n > 0]
    assert "speaking" in states and "listening" in states
    first_listening = states.index("listening")
    assert "speaking" in states[first_listening:]  # and back: it follows the turns
    assert shot.stat().st_size > 10_000 and "talk" in table


def test_the_viewer_shows_rendered_portrait_frames_when_the_worker_renders(tmp_path):
    from backchannel.bridge.client import WebSocketClient, audio_chunks
    from backchannel.bridge.protocol import end_message
    from backchannel.models.render import BUNDLED_PORTRAIT

    own, other = (soundfile.read(path, dtype="float32")[0] for path in write_conversation(tmp_path))
    flags = ("--ws", "127.0.0.1:0", "--portrait", str(BUNDLED_PORTRAIT), "--size", "128", "--framing", "face")
    with chromium(tmp_path / "profile", size=(1280, 800)) as driver:
        with spawn_worker(*flags, command=WORKER_COMMAND) as w, WebSocketClient(w["ws"]) as client:
            driver.get("http" + w["ws"][2:] + "?session=pic")
            deadline = time.time() + 15
            while driver.find_element("id", "status").text != "connected" and time.time() < deadline:
                time.sleep(0.05)
            token = client.call("open", session="pic")["token"]
            for chunk in audio_chunks("pic", {"self": own, "other": other}, RATE, token=token):
                client.send(chunk.message)
            client.send(end_message("pic", token))
            shown = None
            while time.time() < deadline + 15 and not shown:
                shown = driver.execute_script(
                    "const img = document.getElementById('portrait');"
                    "return img.style.display === 'block' && img.complete && img.naturalWidth ? "
                    "[img.naturalWidth, img.naturalHeight, document.getElementById('face').style.display] : null;")
                time.sleep(0.1)
            driver.save_screenshot(str(tmp_path / "portrait.png"))
    assert shown == [128, 128, "none"]  # the rendered JPEG in place of the drawn face


def test_the_viewer_opens_a_session_with_the_browser_microphone_as_the_partner(tmp_path):
    """Chromium's fake capture device (a beep each second) stands in for a microphone."""
    with chromium(tmp_path / "profile", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  "--autoplay-policy=no-user-gesture-required", size=(1280, 800)) as driver:
        with spawn_worker("--ws", "127.0.0.1:0", "--stats-interval-s", "0.25", command=WORKER_COMMAND) as w:
            driver.get("http" + w["ws"][2:])
            deadline = time.time() + 15
            while driver.find_element("id", "status").text != "connected" and time.time() < deadline:
                time.sleep(0.05)
            driver.find_element("id", "mic").click()
            states, count = set(), 0
            while time.time() < deadline + 10 and not ("listening" in states and count > 60):
                count = int(driver.find_element("id", "frame-count").text)
                states.add(driver.find_element("id", "state").text)
                time.sleep(0.1)
            session = driver.find_element("id", "session").get_attribute("value")
            driver.find_element("id", "mic").click()  # stop: the page sends end
            closed = False
            while time.time() < deadline + 15 and not closed:
                closed = session not in driver.find_element("id", "sessions").text
                time.sleep(0.1)
    assert session.startswith("browser-") and count > 60 and "listening" in states, (session, count, states)
    assert closed  # the worker closed the page's session when it stopped


def stream_in_real_time(url: str, session: str, seconds: float) -> threading.Thread:
    """A client that opens `session` and talks in real time on a thread (quietly stopping if its worker goes)."""
    from backchannel.bridge.client import WebSocketClient, audio_chunks
    from backchannel.bridge.protocol import end_message

    t = np.arange(int(seconds * RATE)) / RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)

    def run():
        try:
            with WebSocketClient(url) as client:
                token = client.call("open", session=session)["token"]
                started = time.time()
                for chunk in audio_chunks(session, {"self": voice, "other": np.zeros_like(voice)}, RATE, token=token):
                    time.sleep(max(0.0, chunk.end - 0.1 - (time.time() - started)))
                    client.send(chunk.message)
                client.send(end_message(session, token))
        except Exception:  # the worker stopped under it: that is the test's doing
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for(condition, timeout_s: float):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    return condition()


def test_the_viewer_follows_a_live_session_across_a_worker_restart_unless_pinned(tmp_path):
    from backchannel.bridge.client import WebSocketClient

    from .test_unity import free_ports

    audio, motion, control, ws = free_ports(4)
    flags = ("--audio-in", f"tcp://127.0.0.1:{audio}", "--motion-out", f"tcp://127.0.0.1:{motion}",
             "--control", f"tcp://127.0.0.1:{control}", "--ws", f"127.0.0.1:{ws}", "--stats-interval-s", "0.25")
    page = f"http://127.0.0.1:{ws}/"
    with chromium(tmp_path / "profile", size=(1280, 800)) as driver:
        picked = lambda: driver.find_element("id", "session").get_attribute("value")  # noqa: E731
        counted = lambda: int(driver.find_element("id", "frame-count").text)  # noqa: E731
        with spawn_worker(*flags, command=WORKER_COMMAND), WebSocketClient(f"ws://127.0.0.1:{ws}/") as idle:
            idle.call("open", session="aaa-idle")  # first in the list, and never fed
            driver.get(page)
            assert wait_for(lambda: picked() == "aaa-idle", 15), picked()
            talker = stream_in_real_time(f"ws://127.0.0.1:{ws}/", "live-1", 4.0)
            assert wait_for(lambda: picked() == "live-1" and counted() > 10, 15), (picked(), counted())
            talker.join(10)
        with spawn_worker(*flags, command=WORKER_COMMAND):  # the old sessions are gone with the old worker
            talker = stream_in_real_time(f"ws://127.0.0.1:{ws}/", "live-2", 6.0)
            assert wait_for(lambda: picked() == "live-2" and counted() > 10, 20), (picked(), counted())
            driver.get(page + "?session=ghost")  # pinned: it waits for that one, whatever else is live
            waiting = wait_for(lambda: driver.find_element("id", "waiting").text, 10)
            assert waiting == "waiting for session ghost" and picked() == "ghost"
            driver.save_screenshot(str(tmp_path / "waiting.png"))
            talker.join(10)
