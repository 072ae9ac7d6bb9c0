// The Backchannel viewer: one WebSocket to the worker's door (engine_plugins/PROTOCOL.md, "WebSocket"), every
// session's stats for the table, and the picked session's motion (and rendered frames, with serve --portrait).
"use strict";
(() => {
  const { encode, decodeMulti } = MessagePack;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const CURVES = [["JawOpen", "#f97316"], ["EyeBlinkLeft", "#38bdf8"], ["MouthSmileLeft", "#facc15"],
                  ["BrowInnerUp", "#a78bfa"], ["pitch", "#34d399"], ["yaw", "#f472b6"]];
  const HISTORY = 150;  // frames of curves shown: 5 s at 30 fps
  let names = null;  // blendshape name -> index, from describe
  // ?session=NAME pins the page to that session (it waits for it); otherwise the page follows a live session: one
  // whose frame count grew in the last LIVE_MS, in preference to an idle one, and another when its own goes away
  const pinned = params.get("session") || "";
  const LIVE_MS = 3000;
  let picked = pinned, auto = !pinned;  // auto: picked by the page, not the user
  const progress = {};  // session -> [frames, when that count last grew (performance.now)]
  let ws = null;
  let frames = 0, history = [], arrivals = [], latencies = [], stats = {};
  let lastFrame = null, portraitUrl = null;
  const pending = new Map();  // request id -> its promise's resolve
  let requests = 0, mic = null;

  const send = (msg) => ws && ws.readyState === WebSocket.OPEN && ws.send(encode({ v: 1, ...msg }));

  function connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/` +
      (token ? `?token=${encodeURIComponent(token)}` : "");
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      status("connected", false);
      send({ type: "describe", id: "describe" });
      send({ type: "subscribe", sessions: "*", topics: ["stats"] });
      if (picked) pick(picked, true);
    };
    ws.onclose = () => { status("disconnected: retrying", true); setTimeout(connect, 1000); };
    ws.onmessage = (event) => {
      const [first, body] = [...decodeMulti(new Uint8Array(event.data))];
      if (typeof first === "string") published(first, body);
      else reply(first);
    };
  }

  function status(text, bad) { $("status").textContent = text; $("status").className = bad ? "bad" : ""; }

  function request(msg) {
    const id = `r${++requests}`;
    return new Promise((resolve) => { pending.set(id, resolve); send({ ...msg, id }); });
  }

  function reply(msg) {
    if (pending.has(msg.id)) {
      pending.get(msg.id)(msg); pending.delete(msg.id);
      if (!msg.ok) status(`${msg.answers}: ${msg.error}: ${msg.message}`, true);
    } else if (msg.answers === "describe" && msg.ok) {
      names = Object.fromEntries(msg.blendshapes.map((name, i) => [name, i]));
    } else if (!msg.ok) {
      status(`${msg.answers || "request"}: ${msg.error}: ${msg.message}`, true);
    }
  }

  function published(topic, body) {
    const slash = topic.indexOf("/");
    const session = topic.slice(0, slash), kind = topic.slice(slash + 1);
    if (kind === "stats") return session === "_worker" ? workerStats(body) : sessionStats(session, body);
    if (session !== picked) return;
    if (kind === "motion") motion(body);
    else if (kind === "frame") portrait(body);
  }

  function pick(session, again) {
    if (session === picked && !again) return;
    if (picked && !again) send({ type: "unsubscribe", sessions: [picked], topics: ["motion", "frame"] });
    picked = session;
    frames = 0; history = []; arrivals = []; latencies = []; lastFrame = null;
    $("frame-count").textContent = "0";
    $("portrait").style.display = "none"; $("face").style.display = "block";
    if (session) send({ type: "subscribe", sessions: [session], topics: ["motion", "frame"] });
    $("session").value = session;
    renderTable();
  }

  const isLive = (name, now) => name in progress && now - progress[name][1] < LIVE_MS;

  function follow(sessions) {
    const now = performance.now(), gone = picked && !sessions.includes(picked);
    if (pinned && picked === pinned) {
      $("waiting").textContent = gone ? `waiting for session ${pinned}` : "";
      return;
    }
    if (picked && !gone && !(auto && !isLive(picked, now))) return;  // the user's pick, or a live one: kept
    const next = sessions.find((name) => isLive(name, now)) || (picked && !gone ? picked : sessions[0] || "");
    if (next !== picked) { auto = true; pick(next); }
  }

  function workerStats(body) {
    const select = $("session");
    const known = new Set(body.sessions);
    for (const name of Object.keys(progress)) if (!known.has(name)) delete progress[name];
    follow(body.sessions);
    for (const option of [...select.options]) if (option.value && !known.has(option.value) && option.value !== pinned) option.remove();
    for (const name of body.sessions) {
      if (![...select.options].some((o) => o.value === name)) select.add(new Option(name, name));
    }
    if (picked && ![...select.options].some((o) => o.value === picked)) select.add(new Option(picked, picked));
    select.value = picked;
    for (const name of Object.keys(stats)) if (!known.has(name)) delete stats[name];
    const cpu = body.uptime_s > 0 ? ` · CPU ${body.cpu_s.toFixed(1)} s` : "";
    const door = (body.outputs || {}).websocket;
    $("worker").textContent = `worker: ${body.sessions.length} sessions · ${body.frames} frames · up ` +
      `${body.uptime_s.toFixed(0)} s${cpu}` + (door ? ` · ${door.connections} WebSocket clients, ${door.dropped} dropped` : "");
    renderTable();
  }

  function sessionStats(session, body) {
    if (body.closed) { delete stats[session]; delete progress[session]; } else stats[session] = body;
    const seen = progress[session];
    if (!body.closed && (!seen || body.frames > seen[0]))
      progress[session] = [body.frames, seen ? performance.now() : -Infinity];  // first sight: not live yet
    if (session === picked) $("generator").textContent = `${body.generator} (seed ${body.seed})`;
    renderTable();
  }

  function renderTable() {
    const rows = Object.values(stats).sort((a, b) => a.session.localeCompare(b.session)).map((s) => {
      const tr = document.createElement("tr");
      if (s.session === picked) tr.className = "picked";
      const errors = Object.entries(s.errors || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "-";
      const lat = s.latency_ms && s.latency_ms.p50 !== undefined ? `${s.latency_ms.p50} / ${s.latency_ms.p95}` : "-";
      for (const text of [s.session, s.generator, s.frames, s.audio_s.toFixed(1), lat, errors]) {
        const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
      }
      tr.onclick = () => { auto = false; pick(s.session); };
      return tr;
    });
    $("sessions").replaceChildren(...rows);
  }

  function motion(body) {
    const now = performance.now();
    frames += 1;
    arrivals.push(now);
    while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
    latencies.push([now, (body.published - body.audio_arrived) * 1000]);
    while (latencies.length && latencies[0][0] < now - 1000) latencies.shift();
    lastFrame = body;
    const bs = (name) => (names && name in names ? body.blendshapes[names[name]] : 0);
    history.push(CURVES.map(([name]) => name === "pitch" ? 0.5 + body.head_rotation[0] * 2
      : name === "yaw" ? 0.5 + body.head_rotation[1] * 2 : bs(name)));
    if (history.length > HISTORY) history.shift();
    $("frame-count").textContent = String(frames);
    $("seq").textContent = String(body.seq);
    const state = $("state");
    state.textContent = body.state; state.className = body.state;
    const deg = body.head_rotation.map((r) => (r * 180 / Math.PI).toFixed(1));
    $("pose").textContent = `pitch ${deg[0]}° yaw ${deg[1]}° roll ${deg[2]}°`;
  }

  function portrait(body) {
    const img = $("portrait");
    if (body.format === "jpeg") {
      if (portraitUrl) URL.revokeObjectURL(portraitUrl);
      portraitUrl = URL.createObjectURL(new Blob([body.data], { type: "image/jpeg" }));
      img.src = portraitUrl;
    } else {  // rgb24: draw it onto a canvas and show that
      const canvas = document.createElement("canvas");
      canvas.width = body.width; canvas.height = body.height;
      const image = canvas.getContext("2d").createImageData(body.width, body.height);
      for (let i = 0, j = 0; i < body.data.length; i += 3, j += 4) {
        image.data.set(body.data.subarray(i, i + 3), j); image.data[j + 3] = 255;
      }
      canvas.getContext("2d").putImageData(image, 0, 0);
      img.src = canvas.toDataURL();
    }
    img.style.display = "block"; $("face").style.display = "none";
  }

  // a face drawn from the blendshapes and head pose: enough to see lips, blinks, smiles, brows and nods
  function drawFace() {
    const ctx = $("face").getContext("2d");
    const W = 336, H = 336;
    ctx.clearRect(0, 0, W, H);
    if (!lastFrame) return;
    const f = lastFrame;
    const bs = (name) => (names && name in names ? f.blendshapes[names[name]] : 0);
    const [pitch, yaw, roll] = f.head_rotation;
    ctx.save();
    ctx.translate(W / 2 - yaw * 120, H / 2 + pitch * 120 - f.head_translation[1] * 400);
    ctx.rotate(-roll);
    ctx.fillStyle = "#e8c4a0"; ctx.strokeStyle = "#6b4f3a"; ctx.lineWidth = 3;
    ctx.beginPath(); ctx.ellipse(0, 0, 105, 135, 0, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    const turn = -yaw * 60;  // features slide the way the head turns
    for (const [side, sx] of [["Left", 1], ["Right", -1]]) {
      // the avatar's left eye is on the viewer's right
      const x = turn + sx * 40, y = -25;
      const open = 1 - Math.min(1, bs(`EyeBlink${side}`));
      ctx.fillStyle = "#fff";
      ctx.beginPath(); ctx.ellipse(x, y, 20, 12 * open + 0.5, 0, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      if (open > 0.15) {
        const gz = side === "Left" ? [f.gaze[0], f.gaze[1]] : [f.gaze[2], f.gaze[3]];
        ctx.fillStyle = "#2f3b4c";
        ctx.beginPath(); ctx.arc(x - gz[0] * 40, y + gz[1] * 40, 6 * Math.min(1, open * 1.5), 0, 2 * Math.PI); ctx.fill();
      }
      const lift = 14 * bs("BrowInnerUp") + 10 * bs(`BrowOuterUp${side}`) - 10 * bs(`BrowDown${side}`);
      ctx.beginPath(); ctx.moveTo(x - 22, y - 24 - lift * 0.6); ctx.quadraticCurveTo(x, y - 34 - lift, x + 22, y - 24 - lift * 0.6);
      ctx.stroke();
    }
    const jaw = Math.min(1, bs("JawOpen")), smileL = bs("MouthSmileLeft"), smileR = bs("MouthSmileRight");
    const width = 38 * (1 + 0.3 * (smileL + smileR) / 2 - 0.4 * bs("MouthPucker") - 0.3 * bs("MouthFunnel"));
    const mx = turn, my = 60;
    ctx.fillStyle = "#7a2e2e";
    ctx.beginPath();
    ctx.moveTo(mx - width, my - 14 * smileR);
    ctx.quadraticCurveTo(mx, my - 6 + 4 * (smileL + smileR), mx + width, my - 14 * smileL);
    ctx.quadraticCurveTo(mx, my + 6 + 50 * jaw, mx - width, my - 14 * smileR);
    ctx.fill(); ctx.stroke();
    ctx.restore();
  }

  function drawCurves() {
    const canvas = $("curves"), ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    ctx.strokeStyle = "#333842"; ctx.lineWidth = 1;
    for (const y of [0.25, 0.5, 0.75]) { ctx.beginPath(); ctx.moveTo(0, H * y); ctx.lineTo(W, H * y); ctx.stroke(); }
    CURVES.forEach(([, color], c) => {
      ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
      history.forEach((row, i) => {
        const x = W - (history.length - 1 - i) * (W / (HISTORY - 1)), y = H - 4 - (H - 8) * Math.max(0, Math.min(1, row[c]));
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      });
      ctx.stroke();
    });
  }

  function tick() {
    drawFace();
    drawCurves();
    $("fps").textContent = arrivals.length.toFixed(1);
    if (latencies.length) {
      const sorted = latencies.map((l) => l[1]).sort((a, b) => a - b);
      $("latency").textContent = sorted[Math.floor(sorted.length / 2)].toFixed(0);
    }
  }

  $("legend").replaceChildren(...CURVES.map(([name, color]) => {
    const span = document.createElement("span"); span.style.color = color;
    span.textContent = name === "pitch" || name === "yaw" ? `head ${name}` : name; return span;
  }));
  $("session").onchange = (event) => { auto = false; pick(event.target.value); };
  $("mic").onclick = () => (mic ? stopMic() : startMic());

  // the microphone as the partner's voice of a session this page opens (its own: others' sessions belong to their
  // clients), in 20 ms chunks of 16-bit PCM at the audio context's rate, `t` counting the audio sent
  async function startMic() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true } });
    } catch (error) {
      return status(`no microphone: ${error.message}`, true);
    }
    const session = `browser-${Math.random().toString(36).slice(2, 8)}`;
    const opened = await request({ type: "open", session });
    if (!opened.ok) { stream.getTracks().forEach((t) => t.stop()); return; }
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const node = context.createScriptProcessor(2048, 1, 1);
    const rate = context.sampleRate, size = Math.round(rate * 0.02);
    let waiting = new Float32Array(0), seq = 0, sent = 0;
    node.onaudioprocess = (event) => {
      const input = event.inputBuffer.getChannelData(0);
      const joined = new Float32Array(waiting.length + input.length);
      joined.set(waiting); joined.set(input, waiting.length);
      let at = 0;
      for (; at + size <= joined.length; at += size) {
        const pcm = new DataView(new ArrayBuffer(size * 2));
        for (let i = 0; i < size; i++) pcm.setInt16(2 * i, Math.max(-1, Math.min(1, joined[at + i])) * 32767, true);
        send({ type: "audio", session, track: "other", seq: seq++, t: sent / rate, sr: rate, format: "s16le",
               pcm: new Uint8Array(pcm.buffer), token: opened.token });
        sent += size;
      }
      waiting = joined.slice(at);
    };
    source.connect(node); node.connect(context.destination);  // a processor runs only when connected (it outputs silence)
    mic = { session, token: opened.token, stream, context };
    $("mic").textContent = "stop microphone";
    auto = false;
    pick(session);
  }

  function stopMic() {
    send({ type: "end", session: mic.session, token: mic.token });
    mic.stream.getTracks().forEach((t) => t.stop());
    mic.context.close();
    mic = null;
    $("mic").textContent = "talk to a face";
  }
  connect();
  setInterval(tick, 33);  // a timer, not requestAnimationFrame: it keeps counting in a hidden or headless tab
})();
