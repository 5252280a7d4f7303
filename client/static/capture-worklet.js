// AudioWorklet processor: microphone samples (at the AudioContext's own rate) to the main
// thread in Float32 frames of `frameSeconds` (default 40 ms), channels averaged to mono.
// Messages in: "flush" (post what is buffered, then {flushed: true}) and "close".
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const seconds = (options.processorOptions && options.processorOptions.frameSeconds) || 0.04;
    this.frameSize = Math.max(128, Math.round(sampleRate * seconds));
    this.buffer = new Float32Array(this.frameSize);
    this.filled = 0;
    this.open = true;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post();
        this.port.postMessage({ flushed: true });
      } else if (event.data === "close") {
        this.open = false;
      }
    };
  }

  post() {
    if (this.filled === 0) return;
    const frame = this.buffer.slice(0, this.filled);
    this.port.postMessage(frame, [frame.buffer]);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return this.open;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      let sum = 0;
      for (let c = 0; c < channels.length; c++) sum += channels[c][i];
      this.buffer[this.filled++] = sum / channels.length;
      if (this.filled === this.frameSize) this.post();
    }
    return this.open;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
