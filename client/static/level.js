// A level meter: the RMS of each audio frame in dBFS, shown as a bar with a peak that decays.

export const FLOOR_DB = -60;
const RELEASE_DB_PER_S = 20; // how fast the bar falls after a loud frame

/** RMS of `samples` in dBFS (FLOOR_DB for silence). */
export function rmsDb(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  return rms > 0 ? Math.max(FLOOR_DB, 20 * Math.log10(rms)) : FLOOR_DB;
}

export class LevelMeter {
  /** `element` has role="meter" and holds the bar element. */
  constructor(element, bar) {
    this.element = element;
    this.bar = bar;
    this.reset();
  }

  /** One frame of `seconds` of audio. */
  push(samples, seconds) {
    const fallen = this.shown - RELEASE_DB_PER_S * seconds;
    this.show(Math.max(rmsDb(samples), fallen));
  }

  reset() {
    this.show(FLOOR_DB);
  }

  show(db) {
    this.shown = db;
    const rounded = Math.round(db);
    this.bar.style.width = `${(100 * (db - FLOOR_DB)) / -FLOOR_DB}%`;
    this.element.setAttribute("aria-valuenow", String(rounded));
    this.element.setAttribute("aria-valuetext", rounded <= FLOOR_DB ? "silence" : `${rounded} dB`);
  }
}
