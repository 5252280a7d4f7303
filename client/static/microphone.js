// The microphone: getUserMedia -> AudioContext at the device's own rate -> the capture worklet,
// which posts Float32 frames of FRAME_SECONDS to `onFrame(samples, capturedAt)`.

export const FRAME_SECONDS = 0.04;

/** The microphone opened but the audio graph could not be built (e.g. the worklet's script did
 * not load because the server went away); `cause` holds the browser's error. */
export class AudioSetupError extends Error {
  constructor(cause) {
    super(`${cause.name}: ${cause.message}`);
    this.name = "AudioSetupError";
    this.cause = cause;
  }
}

const CONSTRAINTS = { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false };

/** Audio inputs as {id, label}; labels are empty until the page has had microphone access. */
export async function listMicrophones() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices
    .filter((d) => d.kind === "audioinput")
    .map((d, i) => ({ id: d.deviceId, label: d.label || `Microphone ${i + 1}` }));
}

export class Microphone {
  /** Opens the device (`deviceId` "" for the default); getUserMedia's DOMException on failure. */
  static async open(deviceId, onFrame) {
    if (!window.isSecureContext || !navigator.mediaDevices) {
      throw new DOMException("microphones need a secure context", "SecurityError");
    }
    const audio = deviceId ? { ...CONSTRAINTS, deviceId: { exact: deviceId } } : CONSTRAINTS;
    const media = await navigator.mediaDevices.getUserMedia({ audio });
    const microphone = new Microphone(media, onFrame);
    try {
      await microphone.connect();
    } catch (error) {
      microphone.close();
      throw new AudioSetupError(error);
    }
    return microphone;
  }

  constructor(media, onFrame) {
    this.media = media;
    this.onFrame = onFrame;
    this.context = new AudioContext(); // the device's native rate: the server resamples
    this.rate = this.context.sampleRate;
    this.flushed = null;
  }

  async connect() {
    await this.context.audioWorklet.addModule(new URL("capture-worklet.js", import.meta.url));
    this.source = this.context.createMediaStreamSource(this.media);
    this.node = new AudioWorkletNode(this.context, "capture-processor", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      processorOptions: { frameSeconds: FRAME_SECONDS },
    });
    this.node.port.onmessage = (event) => this.receive(event.data);
    const mute = this.context.createGain();
    mute.gain.value = 0; // keeps the node pulled by the graph without playing anything
    this.source.connect(this.node).connect(mute).connect(this.context.destination);
    await this.context.resume();
  }

  /** The device's label, for the status line. */
  get label() {
    const track = this.media.getAudioTracks()[0];
    return track ? track.label : "";
  }

  receive(data) {
    if (data && data.flushed) {
      if (this.flushed) this.flushed();
      return;
    }
    this.onFrame(data, performance.now());
  }

  /** Stops capturing; resolves once the worklet has posted its last samples. */
  flush() {
    this.media.getTracks().forEach((track) => track.stop());
    if (this.source) this.source.disconnect();
    if (!this.node) return Promise.resolve();
    return new Promise((resolve) => {
      this.flushed = resolve;
      this.node.port.postMessage("flush");
    });
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.media.getTracks().forEach((track) => track.stop());
    if (this.node) this.node.port.postMessage("close");
    this.context.close();
  }
}
