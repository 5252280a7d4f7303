// The page's wiring: controls, figures and messages. The work is done by live.js (microphone
// sessions), file-job.js (file sessions), captions.js, exports.js, level.js, drop.js and
// failures.js.
//
// Page URL parameters: ?token=T (kept in sessionStorage for this tab, then taken out of the
// address) and ?autostart=1 (start the microphone on load, where the autoplay policy allows).

import { CaptionsView } from "./captions.js";
import { acceptDrops } from "./drop.js";
import { FORMATS, download } from "./exports.js";
import { FAILURES, fetchHealth } from "./failures.js";
import { FileSession } from "./file-job.js";
import { clock } from "./format.js";
import { LevelMeter } from "./level.js";
import { LiveSession } from "./live.js";
import { listMicrophones } from "./microphone.js";
import { applyMode, applyTheme, loadMode, loadTheme, loadToken, saveToken } from "./prefs.js";

const $ = (id) => document.getElementById(id);
const ui = {
  toggle: $("toggle"),
  status: $("status"),
  device: $("device"),
  preset: $("preset"),
  language: $("language"),
  file: $("file"),
  timer: $("timer"),
  delay: $("delay"),
  progressField: $("progress-field"),
  progress: $("progress"),
  speed: $("speed"),
  problem: $("problem"),
  tokenForm: $("token-form"),
  token: $("token"),
  hint: $("hint"),
};
const captions = new CaptionsView({
  finals: $("finals"),
  committed: $("partial-committed"),
  provisional: $("partial-provisional"),
  scroller: $("captions"),
});
const meter = new LevelMeter($("level"), $("level-bar"));
const finals = []; // every final of this page, on its timeline, for the downloads
// The page's timeline: sessions back to back, so the downloads of several stay in order.
let offset = 0; // where the current session's second 0 falls
let timelineEnd = 0; // the end of the audio of the sessions so far
let token = loadToken();
let session = null;
let retry = null; // what to run again once a token is entered

function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
}

function showServer({ model, precision, provider }) {
  if (model) $("model").textContent = model;
  if (precision) $("precision").textContent = precision;
  if (provider) $("provider").textContent = provider;
}

function showProblem(key, detail = "") {
  const failure = FAILURES[key];
  $("problem-title").textContent = failure.title;
  $("problem-advice").textContent = failure.advice;
  $("problem-detail").textContent = detail;
  ui.problem.dataset.failure = key;
  ui.problem.hidden = false;
  const asksToken = key === "token_required" || key === "token_refused";
  ui.tokenForm.hidden = !asksToken;
  if (asksToken) ui.token.focus();
}

function hideProblem() {
  ui.problem.hidden = true;
  delete ui.problem.dataset.failure;
}

function updateHint() {
  ui.hint.hidden = finals.length > 0 || $("partial").textContent !== "";
}

/** What the sessions report to the page (see session.js). */
const view = {
  status: setStatus,
  ready: (message) => showServer(message),
  microphoneOpened: () => refreshDevices(),
  partial(message) {
    captions.showPartial(message.committed || "", message.text || "");
    updateHint();
  },
  final(message) {
    const final = shifted(message, offset);
    finals.push(final);
    timelineEnd = Math.max(timelineEnd, final.end);
    captions.addFinal(final);
    updateHint();
  },
  lagging: (message) => setStatus(`the server is ${message.lag_s.toFixed(1)} s behind`, "listening"),
  level: (samples, seconds) => meter.push(samples, seconds),
  time: (seconds) => (ui.timer.textContent = clock(seconds)),
  delay: (seconds) => (ui.delay.textContent = `${seconds.toFixed(seconds < 1 ? 2 : 1)} s`),
  progress(fraction) {
    ui.progressField.hidden = false;
    ui.progress.value = fraction;
    ui.progress.textContent = `${Math.round(fraction * 100)}%`;
  },
  speed: (times) => (ui.speed.textContent = `${times.toFixed(1)}× real time`),
  failed(key, detail, ended) {
    showProblem(key, detail);
    setStatus(FAILURES[key].title, "error");
    idle(ended);
  },
  done(ended, end) {
    if (end) timelineEnd = Math.max(timelineEnd, offset + Number(end.audio_seconds));
    const seconds = end ? `${Number(end.audio_seconds).toFixed(1)} s of audio` : "nothing sent";
    setStatus(`stopped — ${seconds}`, "idle");
    idle(ended);
  },
};

function shifted(final, by) {
  const words = (final.words || []).map((w) => ({ ...w, start: w.start + by, end: w.end + by }));
  return { ...final, start: final.start + by, end: final.end + by, words };
}

function choices() {
  return { token, preset: ui.preset.value, language: ui.language.value };
}

function busy(started) {
  session = started;
  offset = timelineEnd;
  hideProblem();
  meter.reset();
  ui.delay.textContent = "–";
  ui.timer.textContent = clock(0);
  ui.toggle.textContent = "Stop";
  ui.toggle.setAttribute("aria-pressed", "true");
  for (const control of [ui.device, ui.preset, ui.language, ui.file]) control.disabled = true;
}

function idle(ended) {
  if (session !== ended) return;
  session = null;
  meter.reset();
  ui.toggle.textContent = "Start";
  ui.toggle.setAttribute("aria-pressed", "false");
  ui.toggle.disabled = false;
  for (const control of [ui.device, ui.preset, ui.language, ui.file]) control.disabled = false;
}

function startLive() {
  retry = startLive;
  ui.progressField.hidden = true;
  const live = new LiveSession(view, choices(), ui.device.value);
  busy(live);
  live.start();
}

function startFile(file) {
  if (session || !file) return;
  retry = () => startFile(file);
  const job = new FileSession(view, choices(), file);
  busy(job);
  job.start();
}

function toggle() {
  if (session) session.stop();
  else startLive();
}

async function refreshDevices() {
  const chosen = ui.device.value;
  const microphones = await listMicrophones();
  const options = [new Option("Default microphone", "")];
  for (const { id, label } of microphones) if (id && id !== "default") options.push(new Option(label, id));
  ui.device.replaceChildren(...options);
  ui.device.value = microphones.some((m) => m.id === chosen) ? chosen : "";
}

/** A select shown only when /healthz offers its list (issue 12: presets; a multilingual model). */
function offer(select, field, names, serverDefault) {
  const list = Array.isArray(names) ? names.filter((n) => typeof n === "string" && n) : [];
  field.hidden = list.length === 0;
  const label = typeof serverDefault === "string" && serverDefault ? `Server default (${serverDefault})` : "Server default";
  select.replaceChildren(new Option(label, ""), ...list.map((n) => new Option(n, n)));
}

async function loadHealth() {
  const health = await fetchHealth();
  if (health === null) {
    showProblem("unreachable");
    setStatus(FAILURES.unreachable.title, "error");
    return;
  }
  showServer(health.body);
  offer(ui.preset, $("preset-field"), health.body.presets, health.body.preset);
  offer(ui.language, $("language-field"), health.body.languages, health.body.language);
  if (!session && health.body.status !== "ok") setStatus(`server ${health.body.status}`, "idle");
}

function keep(format) {
  const { type, render } = FORMATS[format];
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  download(`transcript-${stamp}.${format}`, render(finals), type);
}

async function copy() {
  const text = FORMATS.txt.render(finals);
  try {
    await navigator.clipboard.writeText(text);
    setStatus(`copied ${finals.length} caption paragraph(s)`, session ? "listening" : "idle");
  } catch {
    setStatus("copying was refused: select the captions and copy them by hand", "error");
  }
}

function clear() {
  finals.length = 0;
  if (!session) timelineEnd = 0;
  captions.clear();
  updateHint();
}

function setUp() {
  const theme = $("theme");
  const mode = $("mode");
  theme.value = loadTheme();
  applyTheme(theme.value);
  mode.value = loadMode();
  applyMode(mode.value);
  theme.addEventListener("change", () => applyTheme(theme.value));
  mode.addEventListener("change", () => applyMode(mode.value));
  ui.toggle.addEventListener("click", toggle);
  ui.file.addEventListener("change", () => {
    const [file] = ui.file.files;
    ui.file.value = ""; // the same file can be chosen again
    startFile(file);
  });
  ui.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    token = ui.token.value.trim();
    saveToken(token);
    ui.token.value = "";
    hideProblem();
    if (retry && !session) retry();
  });
  $("copy").addEventListener("click", copy);
  $("clear").addEventListener("click", clear);
  for (const format of ["txt", "srt", "vtt"]) $(`download-${format}`).addEventListener("click", () => keep(format));
  acceptDrops($("drop-overlay"), () => Boolean(session), startFile);
  ui.toggle.disabled = false;
  setStatus("idle — press Start or choose a file", "idle");
}

setUp();
loadHealth();
refreshDevices();
if (new URLSearchParams(window.location.search).get("autostart") === "1") startLive();
