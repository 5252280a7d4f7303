// Transcripts out of the finals: plain text, SRT and WebVTT, and the download itself.
// Cues are cut from the finals' timed words exactly as client/captions.py cuts them for
// `asr-client file --format srt|vtt` (same limits, same rounding), so both clients agree.

export const LIMITS = Object.freeze({ maxSeconds: 7.0, maxLineChars: 42, maxLines: 2, minSeconds: 1.0 });

/** A word as captions show it: with its case and mark when the server punctuates. */
export function shown(word) {
  return word.punctuated ?? word.word;
}

/** Greedy line filling: as many words per line as fit in `maxChars`. */
export function wrap(words, maxChars) {
  const lines = [];
  for (const word of words) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= maxChars) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** As few lines as `wrap` makes, with lengths as even as the words allow. */
export function balancedWrap(words, maxChars) {
  const lines = wrap(words, maxChars);
  if (lines.length < 2) return lines;
  const longest = Math.max(...words.map((w) => w.length));
  const from = Math.max(longest, Math.floor(words.join(" ").length / lines.length));
  for (let width = from; width <= maxChars; width++) {
    const candidate = wrap(words, width);
    if (candidate.length <= lines.length) return candidate;
  }
  return lines;
}

/** The final's words, or its text's words timed in proportion to their lengths. */
export function spreadWords(final) {
  if (final.words && final.words.length) return final.words;
  const texts = final.text.split(/\s+/).filter(Boolean);
  const total = texts.reduce((sum, t) => sum + t.length + 1, 0);
  const span = Math.max(final.end - final.start, 0);
  let at = final.start;
  return texts.map((word) => {
    const step = (span * (word.length + 1)) / total;
    const timed = { word, start: at, end: at + step, confidence: 1 };
    at += step;
    return timed;
  });
}

/** Python's round(): halves to even, so cue times match the command-line client's. */
function roundHalfEven(x) {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

const ms = (seconds) => Math.max(0, roundHalfEven(seconds * 1000));

/** Caption cues `{startMs, endMs, lines}` for `finals` (in order), within `limits`. */
export function cuesFromFinals(finals, limits = LIMITS) {
  const groups = [];
  for (const final of finals) {
    let current = [];
    for (const word of spreadWords(final)) {
      let candidate = [...current, word];
      const tooLong = current.length > 0 && word.end - current[0].start > limits.maxSeconds;
      const lines = wrap(candidate.map(shown), limits.maxLineChars);
      if (current.length && (tooLong || lines.length > limits.maxLines)) {
        groups.push(current);
        candidate = [word];
      }
      current = candidate;
    }
    if (current.length) groups.push(current);
  }
  const cues = [];
  for (const group of groups) {
    const lines = balancedWrap(group.map(shown), limits.maxLineChars);
    let start = ms(group[0].start);
    if (cues.length) start = Math.max(start, cues[cues.length - 1].endMs);
    const end = Math.max(ms(group[group.length - 1].end), start + 1);
    cues.push({ startMs: start, endMs: end, lines });
  }
  const minMs = ms(limits.minSeconds);
  return cues.map((cue, i) => {
    const limit = i + 1 < cues.length ? cues[i + 1].startMs : cue.startMs + minMs;
    return { ...cue, endMs: Math.max(cue.endMs, Math.min(cue.startMs + minMs, limit)) };
  });
}

/** `HH:MM:SS<decimal>mmm`: SRT uses ",", WebVTT ".". */
export function timestamp(totalMs, decimal) {
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const hours = Math.floor(totalMs / 3_600_000);
  const minutes = Math.floor(totalMs / 60_000) % 60;
  const seconds = Math.floor(totalMs / 1000) % 60;
  return `${pad(hours)}:${pad(minutes)}:${pad(seconds)}${decimal}${pad(totalMs % 1000, 3)}`;
}

export function toSrt(cues) {
  return cues
    .map((c, i) => `${i + 1}\n${timestamp(c.startMs, ",")} --> ${timestamp(c.endMs, ",")}\n${c.lines.join("\n")}\n\n`)
    .join("");
}

const vttEscape = (line) => line.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function toVtt(cues) {
  const blocks = cues.map(
    (c) => `${timestamp(c.startMs, ".")} --> ${timestamp(c.endMs, ".")}\n${c.lines.map(vttEscape).join("\n")}\n\n`,
  );
  return `WEBVTT\n\n${blocks.join("")}`;
}

/** One final per line: what people paste into notes. */
export function toText(finals) {
  return finals.map((f) => `${f.text}\n`).join("");
}

export const FORMATS = Object.freeze({
  txt: { type: "text/plain", render: toText },
  srt: { type: "application/x-subrip", render: (finals) => toSrt(cuesFromFinals(finals)) },
  vtt: { type: "text/vtt", render: (finals) => toVtt(cuesFromFinals(finals)) },
});

/** Save `text` as a file named `name` through the browser's download. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
