// Browser softphone for the 113 / 114 callbot: one WebRTC call, no trickle ICE.
// Plain ES2020. The page's state is in #status[data-state]:
// idle -> connecting -> connected -> ended (or error).
"use strict";

(() => {
  const GATHER_TIMEOUT_MS = 3000;
  const DISCONNECTED_GRACE_MS = 4000; // "disconnected" may recover; give it a moment
  const MESSAGES = {
    idle: "Sẵn sàng / Ready",
    mic: "Đang xin quyền micrô… / Asking for the microphone…",
    connecting: "Đang kết nối… / Connecting…",
    connected: "Đã kết nối – hãy nói / Connected – please speak",
    ended: "Cuộc gọi đã kết thúc / Call ended",
    failed: "Mất kết nối / Connection lost",
    no_mic: "Không dùng được micrô / The microphone is not available",
    busy: "Tổng đài đang bận, vui lòng gọi lại / The line is busy, please call again",
    network: "Không kết nối được máy chủ / Cannot reach the server",
  };

  const $ = (sel) => document.querySelector(sel);
  let pc = null;
  let mic = null;
  let startedAt = 0;
  let graceTimer = 0;

  function show(state, text) {
    const box = $("#status");
    box.dataset.state = state;
    box.textContent = text;
    const active = state === "connecting" || state === "connected";
    $("#call-button").disabled = active;
    $("#hangup-button").disabled = !active;
    for (const id of ["#line", "#lang", "#from"]) $(id).disabled = active;
  }

  function waitForCandidates(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (peer.iceGatheringState !== "complete") return;
        peer.removeEventListener("icegatheringstatechange", done);
        resolve();
      };
      peer.addEventListener("icegatheringstatechange", done);
      window.setTimeout(resolve, GATHER_TIMEOUT_MS); // send what was gathered so far
    });
  }

  function detailText(data) {
    if (!data || !data.detail) return "";
    if (typeof data.detail === "string") return data.detail;
    if (Array.isArray(data.detail)) return data.detail.map((d) => (d && d.msg) || String(d)).join("; ");
    return String(data.detail);
  }

  function release() {
    window.clearTimeout(graceTimer);
    if (pc) {
      pc.onconnectionstatechange = null;
      pc.close();
      pc = null;
    }
    if (mic) {
      for (const track of mic.getTracks()) track.stop();
      mic = null;
    }
    $("#remote").srcObject = null;
  }

  function ended() {
    const wasConnected = $("#status").dataset.state === "connected";
    release();
    show(wasConnected ? "ended" : "error", wasConnected ? MESSAGES.ended : MESSAGES.failed);
  }

  function onConnectionState() {
    if (!pc) return;
    const state = pc.connectionState;
    window.clearTimeout(graceTimer);
    if (state === "connected") {
      if (!$("#status").dataset.connectMs) {
        $("#status").dataset.connectMs = String(Math.round(performance.now() - startedAt));
      }
      show("connected", MESSAGES.connected);
    } else if (state === "failed" || state === "closed") {
      ended();
    } else if (state === "disconnected") {
      graceTimer = window.setTimeout(() => {
        if (pc && pc.connectionState !== "connected") ended();
      }, DISCONNECTED_GRACE_MS);
    }
  }

  // The server hanging up closes DTLS; browsers do not all report that as a
  // connection state, so watch the transport too.
  function watchTransport(peer) {
    const sender = peer.getSenders()[0];
    const transport = sender && sender.transport;
    if (!transport) return;
    transport.addEventListener("statechange", () => {
      if (pc === peer && (transport.state === "closed" || transport.state === "failed")) ended();
    });
  }

  async function call(event) {
    event.preventDefault();
    if (pc) return;
    startedAt = performance.now();
    delete $("#status").dataset.connectMs;
    $("#call-id").hidden = true;
    show("connecting", MESSAGES.mic);
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      release();
      show("error", MESSAGES.no_mic + " (" + err.name + ")");
      return;
    }
    show("connecting", MESSAGES.connecting);
    pc = new RTCPeerConnection({ iceServers: [] });
    const peer = pc;
    for (const track of mic.getAudioTracks()) peer.addTrack(track, mic);
    peer.ontrack = (ev) => {
      $("#remote").srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    };
    peer.onconnectionstatechange = onConnectionState;
    let response;
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await waitForCandidates(peer);
      const from = $("#from").value.trim();
      const body = { sdp: peer.localDescription.sdp, type: "offer", line: $("#line").value, lang: $("#lang").value };
      if (from) body.from = from;
      response = await fetch("/api/v1/phone/calls", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      if (pc === peer) release();
      show("error", MESSAGES.network);
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (pc !== peer) return; // hung up meanwhile
    if (!response.ok || !data || !data.sdp) {
      release();
      const reason = response.status === 503 ? MESSAGES.busy : detailText(data) || "HTTP " + response.status;
      show("error", reason);
      return;
    }
    const callId = $("#call-id");
    callId.textContent = "Mã cuộc gọi / Call id: " + data.call_id;
    callId.hidden = false;
    document.body.dataset.callId = data.call_id;
    try {
      await peer.setRemoteDescription({ type: "answer", sdp: data.sdp });
      watchTransport(peer);
    } catch (err) {
      release();
      show("error", MESSAGES.failed + " (" + err.name + ")");
    }
  }

  function hangUp() {
    const wasActive = !!pc;
    release();
    if (wasActive) show("ended", MESSAGES.ended);
  }

  function boot() {
    $("#dial").addEventListener("submit", call);
    $("#hangup-button").addEventListener("click", hangUp);
    window.addEventListener("pagehide", release);
    if (!window.RTCPeerConnection || !navigator.mediaDevices) {
      show("error", MESSAGES.no_mic);
      $("#call-button").disabled = true;
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
