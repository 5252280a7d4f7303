// Times as people read them.

/** 75.4 -> "1:15", 3725 -> "1:02:05". */
export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const h = Math.floor(whole / 3600);
  const m = Math.floor(whole / 60) % 60;
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** An ISO 8601 duration for <time datetime>: 75.4 -> "PT75.40S". */
export function duration(seconds) {
  return `PT${Math.max(0, seconds).toFixed(2)}S`;
}
