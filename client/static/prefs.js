// What the page remembers: theme and view mode (localStorage, across visits) and the access
// token (sessionStorage: this tab only, gone when it closes). A ?token= in the address wins
// and is then taken out of the address bar, so it does not linger in history or screenshots.

const THEME_KEY = "streamasr.theme";
const MODE_KEY = "streamasr.mode";
const TOKEN_KEY = "streamasr.token";
export const THEMES = ["system", "light", "dark"];
export const MODES = ["transcript", "caption"];

function read(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null; // storage blocked: nothing is remembered
  }
}

function write(storage, key, value) {
  try {
    if (value) storage.setItem(key, value);
    else storage.removeItem(key);
  } catch {
    // storage blocked: nothing is remembered
  }
}

export function loadTheme() {
  const theme = read(localStorage, THEME_KEY);
  return THEMES.includes(theme) ? theme : "system";
}

/** "system" follows prefers-color-scheme (style.css); "light" and "dark" override it. */
export function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  write(localStorage, THEME_KEY, theme === "system" ? "" : theme);
}

export function loadMode() {
  const mode = read(localStorage, MODE_KEY);
  return MODES.includes(mode) ? mode : "transcript";
}

export function applyMode(mode) {
  document.documentElement.dataset.mode = mode;
  write(localStorage, MODE_KEY, mode === "transcript" ? "" : mode);
}

export function loadToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given !== null) {
    saveToken(given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url);
    return given;
  }
  return read(sessionStorage, TOKEN_KEY) || "";
}

export function saveToken(token) {
  write(sessionStorage, TOKEN_KEY, token);
}
