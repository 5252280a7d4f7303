// Browser client for protocol v1: microphone -> AudioWorklet -> f32le over a websocket at
// ws(s)://<this host>/v1/stream; partials and finals shown in the page.
//
// Page URL parameters: ?token=T is passed on to the websocket (?token=T); ?autostart=1 starts
// recording on load (needs an autoplay policy that allows audio without a click).

const params = new URLSearchParams(window.location.search);
const token = params.get("token");
const MAX_PENDING_SECONDS = 10; // audio kept while the socket opens
const MAX_BUFFERED_SECONDS = 5; // audio the socket may hold unsent before frames are dropped

const $ = (id) => document.getElementById(id);
const ui = {
  button: $("toggle"),
  status: $("status"),
  finals: $("finals"),
  committed: $("partial-committed"),
  provisional: $("partial-provisional"),
};

let session = null;

function streamUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${window.location.host}/v1/stream${query}`;
}

function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
}

function showPartial(committed, text) {
  const rest = text.startsWith(committed) ? text.slice(committed.length) : text;
  ui.committed.textContent = text.startsWith(committed) ? committed : "";
  ui.provisional.textContent = rest;
}

function addFinal(message) {
  const line = document.createElement("p");
  line.className = "final";
  line.textContent = message.text;
  line.title = `${message.start.toFixed(2)}–${message.end.toFixed(2)} s`;
  ui.finals.appendChild(line);
  ui.finals.appendChild(document.createTextNode("\n"));
  showPartial("", "");
}

class Session {
  constructor() {
    this.ready = false;
    this.stopping = false;
    this.closed = false;
    this.pending = [];
    this.pendingSamples = 0;
    this.dropped = 0;
    this.failed = false;
    this.opened = false;
  }

  async start() {
    setStatus("asking for the microphone…", "starting");
    this.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    this.context = new AudioContext(); // the device's native rate: no resampling here
    await this.context.audioWorklet.addModule(new URL("capture-worklet.js", import.meta.url));
    this.source = this.context.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(this.context, "capture-processor", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      processorOptions: { frameSeconds: 0.04 },
    });
    this.mute = this.context.createGain();
    this.mute.gain.value = 0; // keeps the node pulled by the graph without playing anything
    this.node.port.onmessage = (event) => this.onFrame(event.data);
    this.source.connect(this.node).connect(this.mute).connect(this.context.destination);
    await this.context.resume();
    this.rate = this.context.sampleRate;
    this.open();
  }

  open() {
    setStatus(`connecting (${this.rate} Hz)…`, "connecting");
    this.socket = new WebSocket(streamUrl());
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => {
      this.opened = true;
      this.socket.send(
        JSON.stringify({
          type: "start",
          sample_rate: this.rate,
          encoding: "f32le",
          channels: 1,
          partials: true,
          words: true,
        }),
      );
    };
    this.socket.onmessage = (event) => this.onMessage(event.data);
    this.socket.onclose = (event) => this.onClose(event);
  }

  onFrame(data) {
    if (data && data.flushed) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: "stop" }));
      }
      return;
    }
    if (!this.ready) {
      this.pending.push(data);
      this.pendingSamples += data.length;
      while (this.pendingSamples > MAX_PENDING_SECONDS * this.rate) {
        this.pendingSamples -= this.pending.shift().length;
        this.dropped++;
      }
      return;
    }
    this.send(data);
  }

  send(frame) {
    // Float32Array bytes are little-endian on every platform browsers run on: f32le as is.
    if (this.socket.bufferedAmount > MAX_BUFFERED_SECONDS * this.rate * 4) {
      this.dropped++;
      return;
    }
    this.socket.send(frame);
  }

  onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.type) {
      case "ready":
        this.ready = true;
        setStatus(`listening — ${message.model} (${message.precision}), ${this.rate} Hz`, "listening");
        for (const frame of this.pending) this.send(frame);
        this.pending = [];
        this.pendingSamples = 0;
        break;
      case "partial":
        showPartial(message.committed || "", message.text || "");
        break;
      case "final":
        addFinal(message);
        break;
      case "error":
        this.failed = true;
        setStatus(`error: ${message.code}: ${message.message}`, "error");
        break;
      case "end":
        setStatus(`stopped — ${Number(message.audio_seconds).toFixed(1)} s of audio`, "idle");
        break;
    }
  }

  onClose(event) {
    const unexpected = !this.failed && !(this.stopping && event.code === 1000);
    if (unexpected && !this.opened) {
      // The browser hides the HTTP answer: a wrong ?token= (401), a busy or loading server (503).
      setStatus(`cannot connect to ${streamUrl().split("?")[0]} (wrong token, or server down?)`, "error");
    } else if (unexpected) {
      setStatus(`disconnected (${event.code}${event.reason ? ": " + event.reason : ""})`, "error");
    }
    this.release();
  }

  stop() {
    if (this.stopping) return;
    this.stopping = true;
    setStatus("stopping…", "stopping");
    if (this.source) this.source.disconnect();
    if (this.media) this.media.getTracks().forEach((track) => track.stop());
    if (this.ready && this.node) {
      this.node.port.postMessage("flush"); // the rest of the audio, then stop (onFrame)
    } else if (this.socket) {
      this.socket.close(1000);
    } else {
      this.release();
    }
  }

  release() {
    if (this.closed) return;
    this.closed = true;
    if (this.node) this.node.port.postMessage("close");
    if (this.media) this.media.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.close();
    if (this.dropped) console.warn(`dropped ${this.dropped} audio frame(s)`);
    session = null;
    ui.button.textContent = "Start";
    ui.button.disabled = false;
  }
}

async function toggle() {
  if (session) {
    session.stop();
    return;
  }
  session = new Session();
  ui.button.textContent = "Stop";
  try {
    await session.start();
  } catch (error) {
    setStatus(`error: ${error.message || error}`, "error");
    if (session) session.release();
  }
}

ui.button.addEventListener("click", toggle);
setStatus("idle — press Start", "idle");
if (params.get("autostart") === "1") toggle();
