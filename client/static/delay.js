// The caption delay: when a partial arrives, how long ago the audio it covers (up to its
// `audio_end`, seconds from the stream's first sample) was captured. Each sent frame leaves a
// mark (audio seconds sent so far, capture time); a partial finds the first mark at or past its
// `audio_end`. Without a lagging network or server this is the window's hop plus lookahead.

export class DelayMeter {
  constructor(rate) {
    this.rate = rate;
    this.samples = 0;
    this.marks = [];
  }

  /** `count` samples captured at `capturedAt` (performance.now() milliseconds) were sent. */
  sent(count, capturedAt) {
    this.samples += count;
    this.marks.push({ end: this.samples / this.rate, at: capturedAt });
  }

  /** Seconds from capture to this partial, or null when its audio was never marked. */
  measure(audioEnd, now) {
    const index = this.marks.findIndex((mark) => mark.end >= audioEnd - 1e-6);
    if (index < 0) return null;
    const mark = this.marks[index];
    this.marks.splice(0, index); // partials only move forward
    return Math.max(0, (now - mark.at) / 1000);
  }
}
