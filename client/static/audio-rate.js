// A file's own sample rate from its first bytes (WAV, FLAC, Ogg Vorbis/Opus, MP3, WebM), so the
// browser decodes it without resampling and the server gets the very samples the file holds,
// as `asr-client file` sends them. Unknown containers get FALLBACK_RATE (the browser resamples).

export const FALLBACK_RATE = 48000;
const MIN_RATE = 8000; // the server's range (docs/protocol.md)
const MAX_RATE = 192000;
const MP3_RATES = [44100, 48000, 32000];

const ascii = (bytes, at, length) => String.fromCharCode(...bytes.subarray(at, at + length));

function wavRate(bytes, view) {
  if (ascii(bytes, 0, 4) !== "RIFF" || ascii(bytes, 8, 4) !== "WAVE") return null;
  for (let at = 12; at + 16 <= bytes.length; ) {
    const size = view.getUint32(at + 4, true);
    if (ascii(bytes, at, 4) === "fmt ") return view.getUint32(at + 12, true);
    at += 8 + size + (size % 2);
  }
  return null;
}

/** Bytes an ID3v2 tag takes at the start (MP3 and some FLAC files carry one). */
function id3Length(bytes) {
  if (ascii(bytes, 0, 3) !== "ID3") return 0;
  return 10 + ((bytes[6] & 0x7f) << 21) + ((bytes[7] & 0x7f) << 14) + ((bytes[8] & 0x7f) << 7) + (bytes[9] & 0x7f);
}

function flacRate(bytes, start) {
  if (ascii(bytes, start, 4) !== "fLaC") return null;
  const at = start + 18; // "fLaC", the STREAMINFO block header (4), 10 bytes of block and frame sizes
  return (bytes[at] << 12) | (bytes[at + 1] << 4) | (bytes[at + 2] >> 4);
}

function oggRate(bytes, view) {
  if (ascii(bytes, 0, 4) !== "OggS") return null;
  const payload = 27 + bytes[26];
  if (ascii(bytes, payload, 8) === "OpusHead") return 48000; // Opus always decodes at 48 kHz
  if (ascii(bytes, payload + 1, 6) === "vorbis") return view.getUint32(payload + 12, true);
  return null;
}

function mp3Rate(bytes, start) {
  for (let at = start; at + 4 <= Math.min(bytes.length, start + 4096); at++) {
    if (bytes[at] !== 0xff || (bytes[at + 1] & 0xe0) !== 0xe0) continue;
    const version = (bytes[at + 1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    const index = (bytes[at + 2] >> 2) & 3;
    if (version === 1 || index === 3 || ((bytes[at + 1] >> 1) & 3) === 0) continue;
    return MP3_RATES[index] / (version === 3 ? 1 : version === 2 ? 2 : 4);
  }
  return null;
}

function webmRate(bytes, view) {
  if (view.getUint32(0) !== 0x1a45dfa3) return null; // the EBML magic
  for (let at = 4; at + 10 <= Math.min(bytes.length, 65536); at++) {
    if (bytes[at] !== 0xb5) continue; // SamplingFrequency, a float of 4 or 8 bytes
    if (bytes[at + 1] === 0x88) return view.getFloat64(at + 2);
    if (bytes[at + 1] === 0x84) return view.getFloat32(at + 2);
  }
  return null;
}

/** The rate to decode `buffer` (an ArrayBuffer of a whole file) at. */
export function nativeRate(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 64) return FALLBACK_RATE;
  const view = new DataView(buffer);
  const skip = id3Length(bytes);
  const found =
    wavRate(bytes, view) ?? flacRate(bytes, skip) ?? oggRate(bytes, view) ?? webmRate(bytes, view) ?? mp3Rate(bytes, skip);
  const rate = Math.round(found ?? 0);
  return rate >= MIN_RATE && rate <= MAX_RATE ? rate : FALLBACK_RATE;
}
