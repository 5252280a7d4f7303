// What a live and a file session share: the connection, its messages routed to the page, and
// how it ends (done, or one of failures.js with what to do). Subclasses feed the audio.

import { StreamConnection, startMessage, streamUrl } from "./connection.js";
import { closeFailure, diagnoseRefusal } from "./failures.js";

/**
 * `view` receives: status(text, state), ready(message), partial(message), final(message),
 * lagging(message), failed(key, detail), done(session, end) and, from subclasses, level, time,
 * delay and progress figures. `choices`: {token, preset, language}.
 */
export class Session {
  constructor(view, choices) {
    this.view = view;
    this.choices = choices;
    this.stopping = false;
    this.over = false;
    this.end = null;
  }

  connect(sampleRate, channels) {
    const { token, preset, language } = this.choices;
    this.view.status("connecting…", "connecting");
    this.connection = new StreamConnection(streamUrl(token), startMessage({ sampleRate, channels, preset, language }), {
      onReady: (message) => {
        this.view.ready(message);
        this.ready(message);
      },
      onPartial: (message) => {
        this.view.partial(message);
        this.partial(message);
      },
      onFinal: (message) => {
        this.view.final(message);
        this.partial(message);
      },
      onLagging: (message) => this.view.lagging(message),
      onEnd: (message) => {
        this.end = message;
      },
      onClose: (info) => this.closed(info),
    });
  }

  /** Hooks for subclasses. */
  ready() {}
  partial() {}
  release() {}

  stop() {
    if (this.stopping || this.over) return;
    this.stopping = true;
    this.view.status("finishing…", "stopping");
    this.stopAudio();
  }

  /** Default: no more audio, so the server flushes. Live sessions flush the microphone first. */
  stopAudio() {
    if (this.connection) this.connection.stop();
    else this.finish(null);
  }

  async closed(info) {
    this.release();
    if (info.ended || (this.stopping && !info.error && (info.code === 1000 || !info.opened))) {
      this.finish(null);
    } else if (!info.opened) {
      this.finish(await diagnoseRefusal(Boolean(this.choices.token)));
    } else {
      this.finish(closeFailure(info), info.error ? `${info.error.code}: ${info.error.message}` : `close ${info.code}`);
    }
  }

  /** Ends the session once: `failure` is a key of FAILURES, or null when it ended well. */
  finish(failure, detail = "") {
    if (this.over) return;
    this.over = true;
    this.release();
    if (failure) this.view.failed(failure, detail, this);
    else this.view.done(this, this.end);
  }
}
