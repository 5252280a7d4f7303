// Every failure a user can meet, in words, with what to do about it. A websocket refused
// before it opens hides the HTTP answer from the page (401, 503 all read as close 1006), so
// `diagnoseRefusal` asks /healthz what the server is doing and infers the rest.

export const FAILURES = Object.freeze({
  insecure: {
    title: "The microphone needs a secure page",
    advice: "Open this page as https:// (run the server with --tls-cert and --tls-key) or on localhost.",
  },
  mic_refused: {
    title: "Microphone access was refused",
    advice: "Allow the microphone for this site (the icon in the address bar), then press Start again.",
  },
  no_mic: {
    title: "No microphone found",
    advice: "Plug in or enable a microphone, pick it under Microphone, then press Start again.",
  },
  mic_busy: {
    title: "The microphone cannot be opened",
    advice: "Another program may be using it. Close that program or pick another microphone.",
  },
  audio_setup: {
    title: "The page could not set up audio processing",
    advice: "Reload the page. If this keeps happening, use a current Chromium, Firefox or Safari.",
  },
  unreachable: {
    title: "The server cannot be reached",
    advice: "Check that asr-server is running and this machine can reach it, then reload the page.",
  },
  token_required: {
    title: "This server needs an access token",
    advice: "Enter the token you were given below; it is kept for this browser tab only.",
  },
  token_refused: {
    title: "The server refused the connection",
    advice:
      "The access token was not accepted: enter the right one below. (If the token is right, the " +
      "server's --allowed-origins may not list this page's address.)",
  },
  overloaded: {
    title: "The server is busy",
    advice: "All its sessions or its decoder are in use. Wait a few seconds and press Start again.",
  },
  loading: {
    title: "The server is still loading its model",
    advice: "Wait a few seconds and press Start again.",
  },
  shutting_down: {
    title: "The server is shutting down",
    advice: "It is restarting or stopping; the captions so far are kept. Try again in a minute.",
  },
  server_broken: {
    title: "The server cannot transcribe right now",
    advice: "Its model or inference service failed (see its log or /healthz). Tell whoever runs it.",
  },
  inference_unavailable: {
    title: "The server's inference service is unavailable",
    advice: "The captions so far are kept. Press Start again in a little while, once it is back.",
  },
  idle_timeout: {
    title: "The session timed out",
    advice: "No audio reached the server for a while. Press Start again.",
  },
  too_slow: {
    title: "Audio reached the server too slowly",
    advice: "The network may be congested. Press Start again, or use a faster connection.",
  },
  session_too_long: {
    title: "The session reached the server's time limit",
    advice: "The captions so far are kept. Press Start to continue in a new session.",
  },
  connection_lost: {
    title: "The connection to the server was lost",
    advice: "The captions so far are kept. Check the network and press Start again.",
  },
  bad_file: {
    title: "This file cannot be decoded",
    advice: "The browser could not read it as audio. Try wav, flac, mp3, ogg/opus or webm.",
  },
  server_error: {
    title: "The server ended the session with an error",
    advice: "Press Start to try again; if it happens again, tell whoever runs the server.",
  },
});

/** A failure of getUserMedia (a DOMException by name). */
export function microphoneFailure(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return "mic_refused";
    case "NotFoundError":
    case "OverconstrainedError":
    case "DevicesNotFoundError":
      return "no_mic";
    case "SecurityError":
      return "insecure";
    default:
      return "mic_busy";
  }
}

/** The server's `error` code (docs/protocol.md) as one of FAILURES. */
export function serverFailure(code) {
  switch (code) {
    case "overloaded":
      return "overloaded";
    case "shutting_down":
      return "shutting_down";
    case "inference_unavailable":
    case "idle_timeout":
    case "too_slow":
    case "session_too_long":
      return code;
    default:
      return "server_error";
  }
}

/** A session closed without `end`: the error it sent, else the close code. */
export function closeFailure({ code, error }) {
  if (error) return serverFailure(error.code);
  if (code === 1013) return "overloaded";
  if (code === 1001) return "shutting_down";
  return "connection_lost";
}

/** /healthz: its JSON and HTTP status, or null when the server does not answer. */
export async function fetchHealth() {
  try {
    const answer = await fetch("/healthz", { cache: "no-store" });
    return { status: answer.status, body: await answer.json() };
  } catch {
    return null;
  }
}

/** Why a websocket closed before it opened, from what /healthz says now. */
export async function diagnoseRefusal(hadToken) {
  const health = await fetchHealth();
  if (health === null) return "unreachable";
  const { status, sessions, max_connections: maxConnections } = health.body;
  if (status === "draining") return "shutting_down";
  if (status === "loading") return "loading";
  if (status === "inference_unavailable") return "inference_unavailable";
  if (status !== "ok") return "server_broken";
  if (typeof sessions === "number" && typeof maxConnections === "number" && sessions >= maxConnections) {
    return "overloaded";
  }
  return hadToken ? "token_refused" : "token_required";
}
