// A file session: the browser decodes the file (whatever it can: decodeAudioData) at the file's
// own rate, and its samples go through the same websocket as fast as the server takes them:
// the next chunk waits while the socket holds more than HIGH_WATER_BYTES unsent. Progress is
// the audio the server has decoded (partials' `audio_end`, finals' `end`) over the file's length.

import { nativeRate } from "./audio-rate.js";
import { Session } from "./session.js";

const CHUNK_SECONDS = 0.1;
const HIGH_WATER_BYTES = 256 * 1024;
const DRAIN_POLL_MS = 10; // WebSocket has no drain event: bufferedAmount is polled

/** The file decoded at its own rate: an AudioBuffer. Rejects when the browser cannot decode it. */
export async function decodeFile(file) {
  const bytes = await file.arrayBuffer();
  const context = new OfflineAudioContext(1, 1, nativeRate(bytes));
  return context.decodeAudioData(bytes);
}

/** Frames of `seconds`: interleaved for one or two channels (the server averages), else mono. */
export function* frames(audio, seconds) {
  const step = Math.max(1, Math.round(audio.sampleRate * seconds));
  const count = audio.numberOfChannels;
  const data = Array.from({ length: count }, (_, c) => audio.getChannelData(c));
  for (let at = 0; at < audio.length; at += step) {
    const length = Math.min(step, audio.length - at);
    if (count === 1) {
      yield data[0].slice(at, at + length);
      continue;
    }
    const out = new Float32Array(count === 2 ? length * 2 : length);
    for (let i = 0; i < length; i++) {
      if (count === 2) {
        out[2 * i] = data[0][at + i];
        out[2 * i + 1] = data[1][at + i];
      } else {
        let sum = 0;
        for (let c = 0; c < count; c++) sum += data[c][at + i];
        out[i] = sum / count;
      }
    }
    yield out;
  }
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class FileSession extends Session {
  constructor(view, choices, file) {
    super(view, choices);
    this.file = file;
    this.decoded = 0;
  }

  async start() {
    this.view.status(`decoding ${this.file.name}…`, "starting");
    try {
      this.audio = await decodeFile(this.file);
    } catch (error) {
      this.finish("bad_file", `${this.file.name}: ${error.message || error}`);
      return;
    }
    if (this.stopping) {
      this.finish(null);
      return;
    }
    this.started = performance.now();
    this.view.progress(0);
    this.connect(this.audio.sampleRate, this.audio.numberOfChannels === 2 ? 2 : 1);
  }

  async ready() {
    const rate = this.audio.sampleRate;
    this.view.status(`transcribing ${this.file.name} (${rate} Hz)…`, "listening");
    const channels = this.audio.numberOfChannels === 2 ? 2 : 1;
    let sent = 0;
    for (const frame of frames(this.audio, CHUNK_SECONDS)) {
      while (this.connection.open && this.connection.bufferedAmount > HIGH_WATER_BYTES) await pause(DRAIN_POLL_MS);
      if (!this.connection.open) return; // stopped, or the server ended the session
      this.connection.sendAudio(frame);
      sent += frame.length / channels;
      this.view.level(frame, frame.length / channels / rate);
      this.view.time(sent / rate);
    }
    this.connection.stop();
  }

  partial(message) {
    const seconds = message.type === "final" ? message.end : message.audio_end;
    this.decoded = Math.max(this.decoded, seconds);
    this.view.progress(Math.min(1, this.decoded / this.audio.duration));
    const wall = (performance.now() - this.started) / 1000;
    if (wall > 0) this.view.speed(this.decoded / wall);
  }

  release() {
    if (this.end) this.view.progress(1);
  }
}
