// A live session: the microphone's frames go to the level meter and the timer at once, and to
// the server once it is ready (kept meanwhile, up to MAX_PENDING_SECONDS). Partials give the
// caption delay.

import { DelayMeter } from "./delay.js";
import { fetchHealth, microphoneFailure } from "./failures.js";
import { Microphone } from "./microphone.js";
import { Session } from "./session.js";

const MAX_PENDING_SECONDS = 10; // audio kept while the socket opens
const MAX_BUFFERED_SECONDS = 5; // audio the socket may hold unsent before frames are dropped

export class LiveSession extends Session {
  constructor(view, choices, deviceId) {
    super(view, choices);
    this.deviceId = deviceId;
    this.pending = [];
    this.pendingSamples = 0;
    this.captured = 0;
    this.dropped = 0;
  }

  async start() {
    this.view.status("asking for the microphone…", "starting");
    try {
      this.microphone = await Microphone.open(this.deviceId, (samples, at) => this.frame(samples, at));
    } catch (error) {
      const setup = error.name === "AudioSetupError";
      const failure = !setup ? microphoneFailure(error) : (await fetchHealth()) ? "audio_setup" : "unreachable";
      this.finish(failure, `${error.name}: ${error.message}`);
      return;
    }
    if (this.stopping) {
      this.finish(null);
      return;
    }
    this.rate = this.microphone.rate;
    this.delay = new DelayMeter(this.rate);
    this.view.microphoneOpened(this.microphone.label);
    this.connect(this.rate, 1);
  }

  frame(samples, capturedAt) {
    this.captured += samples.length;
    this.view.level(samples, samples.length / this.rate);
    this.view.time(this.captured / this.rate);
    if (!this.connection || !this.connection.ready) {
      this.pending.push([samples, capturedAt]);
      this.pendingSamples += samples.length;
      while (this.pendingSamples > MAX_PENDING_SECONDS * this.rate) {
        this.pendingSamples -= this.pending.shift()[0].length;
        this.dropped++;
      }
      return;
    }
    this.send(samples, capturedAt);
  }

  send(samples, capturedAt) {
    if (this.connection.bufferedAmount > MAX_BUFFERED_SECONDS * this.rate * 4) {
      this.dropped++; // a live source cannot wait: the server gets a gap, the captions go on
      return;
    }
    this.connection.sendAudio(samples);
    this.delay.sent(samples.length, capturedAt);
  }

  ready(message) {
    this.view.status(`listening — ${this.rate} Hz`, "listening");
    for (const [samples, at] of this.pending) this.send(samples, at);
    this.pending = [];
    this.pendingSamples = 0;
  }

  partial(message) {
    if (message.type !== "partial") return;
    const seconds = this.delay.measure(message.audio_end, performance.now());
    if (seconds !== null) this.view.delay(seconds);
  }

  async stopAudio() {
    if (!this.microphone) return; // still asking: start() finishes
    if (this.connection && this.connection.ready) {
      await this.microphone.flush(); // its last frames are sent before `stop`
      this.connection.stop();
    } else if (this.connection) {
      this.connection.close();
    } else {
      this.finish(null);
    }
  }

  release() {
    if (this.microphone) this.microphone.close();
    if (this.dropped) console.warn(`dropped ${this.dropped} audio frame(s)`);
    this.dropped = 0;
  }
}
