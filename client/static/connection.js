// One protocol v1 session over a websocket (docs/protocol.md): `start`, audio frames, `stop`,
// and the server's messages handed to callbacks. No DOM here.

export const CLOSE_NORMAL = 1000;

/** ws(s)://<this host>/v1/stream, with ?token= (browsers cannot set an Authorization header). */
export function streamUrl(token) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${window.location.host}/v1/stream${query}`;
}

/** The `start` message; `preset` and `language` only when chosen (the server rejects unknown fields). */
export function startMessage({ sampleRate, channels = 1, preset = "", language = "" }) {
  const message = { type: "start", sample_rate: sampleRate, encoding: "f32le", channels, partials: true, words: true };
  if (preset) message.preset = preset;
  if (language) message.language = language;
  return JSON.stringify(message);
}

/**
 * Callbacks: onReady(ready), onPartial(partial), onFinal(final), onLagging(lagging), onEnd(end),
 * onError(error message), onClose({code, reason, opened, ended, error}).
 */
export class StreamConnection {
  constructor(url, start, callbacks) {
    this.callbacks = callbacks;
    this.opened = false;
    this.ready = false;
    this.ended = false;
    this.stopped = false;
    this.error = null;
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => {
      this.opened = true;
      this.socket.send(start);
    };
    this.socket.onmessage = (event) => this.receive(event.data);
    this.socket.onclose = (event) =>
      this.call("onClose", {
        code: event.code,
        reason: event.reason,
        opened: this.opened,
        ended: this.ended,
        error: this.error,
      });
  }

  get bufferedAmount() {
    return this.socket.bufferedAmount;
  }

  get open() {
    return this.ready && !this.stopped && this.socket.readyState === WebSocket.OPEN;
  }

  /** A Float32Array of samples: its bytes are f32le on every platform browsers run on. */
  sendAudio(samples) {
    if (this.open) this.socket.send(samples);
  }

  /** No more audio: the server sends the last finals, `end`, and closes. */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ready && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "stop" }));
    } else {
      this.close();
    }
  }

  close() {
    if (this.socket.readyState === WebSocket.CONNECTING || this.socket.readyState === WebSocket.OPEN) {
      this.socket.close(CLOSE_NORMAL);
    }
  }

  receive(data) {
    if (typeof data !== "string") return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message.type) {
      case "ready":
        this.ready = true;
        this.call("onReady", message);
        break;
      case "partial":
        this.call("onPartial", message);
        break;
      case "final":
        this.call("onFinal", message);
        break;
      case "lagging":
        this.call("onLagging", message);
        break;
      case "end":
        this.ended = true;
        this.call("onEnd", message);
        break;
      case "error":
        this.error = message;
        this.call("onError", message);
        break;
      default: // a newer server's message: ignored, as the protocol asks
    }
  }

  call(name, value) {
    const callback = this.callbacks[name];
    if (callback) callback(value);
  }
}
