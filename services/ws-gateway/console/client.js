// The console's WebSocket client: Herald's API v2 over one websocket
// (shared/spec/websocket.md), in JSON text frames or msgpack binary frames.
//
// What it does: opens the connection, sends request envelopes, matches each
// reply to its request, hands push frames (websocket.md §6: the bare
// notification payload, no envelope) to a listener, and turns every failure
// into a sentence a person can act on (`explainHandshakeFailure`,
// `explainClose`, `explainReply`).
//
// What it must not do: touch the page (app.js does), or encode msgpack by
// hand (the vendored @msgpack/msgpack bundle does, global `MessagePack`).

// Replies echo their request (websocket.md §3), headers included, so a
// header of our own names each request; the gateway's schemas allow extra
// headers. Replies come in completion order, not request order.
const REQUEST_HEADER = "Console-Request-ID";
const REQUEST_TIMEOUT_MS = 30000;

// Close codes a person may meet, in words.
const CLOSE_REASONS = {
  1000: "The connection was closed normally.",
  1001: "The gateway is shutting down (close code 1001). Connect again; another gateway may answer.",
  1006: "The connection was lost without a close frame (code 1006): the gateway stopped, crashed or the network dropped.",
  1008: "The gateway closed the connection because this page did not read its replies fast enough (code 1008). Connect again.",
  1009: "The gateway closed the connection because a frame was too large (code 1009). Send fewer or smaller messages, or raise [ws_gateway] max_frame_size.",
  1011: "The gateway hit an internal error (code 1011); its log says more.",
  4003: "Authentication expired (code 4003). Authenticate again with a fresh token.",
};

// What to do about each error status of an API reply.
const STATUS_HINTS = {
  400: "The request was refused as invalid: correct the field the description names.",
  401: "Authentication failed: check the token.",
  403: "Not allowed: the gateway requires authentication, or a claimed message needs its claim id.",
  404: "It does not exist (any more): refresh the list.",
  409: "It already exists.",
  500: "The gateway or a storage worker hit a bug; their logs have the details.",
  503: "No storage worker answered in time: check that `herald storage` (or `herald run`) is running, then try again.",
};

/** The page-side origin of a gateway URL: ws://h:p/ -> http://h:p */
export function httpOriginOf(wsUrl) {
  const url = new URL(wsUrl);
  const scheme = url.protocol === "wss:" ? "https:" : "http:";
  return `${scheme}//${url.host}`;
}

/** The gateway this page most likely wants: the one that served it. */
export function defaultGatewayUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/`;
}

/** A failure with a short title and the advice a person needs. */
export class ConsoleError extends Error {
  constructor(title, advice, details = "") {
    super(`${title} ${advice}`);
    this.title = title;
    this.advice = advice;
    this.details = details;
  }
}

/**
 * Why a handshake failed, in words. Browsers tell a page nothing about a
 * failed handshake (no status, no reason: a 403 of the origin check looks
 * exactly like a refused TCP connection), so ask the gateway's HTTP side:
 * if GET /health gets any answer the gateway runs and refused the
 * handshake; if not, nobody listens there. `mode: "no-cors"` because the
 * answer itself is not readable cross-origin and need not be.
 */
export async function explainHandshakeFailure(wsUrl, pageOrigin, fetchImpl = fetch) {
  let reachable = false;
  try {
    await fetchImpl(`${httpOriginOf(wsUrl)}/health`, { mode: "no-cors", cache: "no-store" });
    reachable = true;
  } catch (_networkError) {
    reachable = false;
  }
  if (!reachable) {
    return new ConsoleError(
      `Cannot reach the gateway at ${wsUrl}; is \`herald ws-gateway\` running?`,
      "Start it (or `herald run`, which includes it), or correct the gateway address " +
        "above: it must match the gateway's [ws_gateway] bind and port.",
    );
  }
  if (httpOriginOf(wsUrl) === pageOrigin) {
    return new ConsoleError(
      `The gateway at ${wsUrl} refused the WebSocket handshake.`,
      "This page comes from that gateway, so the origin check is not the cause; " +
        "the gateway's log says why (is it shutting down?).",
    );
  }
  return new ConsoleError(
    `The gateway at ${wsUrl} is running but refused the WebSocket handshake from this page.`,
    `The likely cause is its origin check: this page's origin ${pageOrigin} is not the ` +
      "gateway's own and is not listed in its [ws_gateway] allowed_origins option. Add " +
      `${pageOrigin} to allowed_origins in herald.conf (or set ` +
      `OS_WS_GATEWAY__ALLOWED_ORIGINS=${pageOrigin}) and restart the gateway, or open ` +
      `the console the gateway serves itself: ${httpOriginOf(wsUrl)}/console/`,
  );
}

/** Why an open connection closed, in words. */
export function explainClose(code, reason) {
  const known = CLOSE_REASONS[code] || `The connection closed with code ${code}.`;
  return reason ? `${known} The gateway said: "${reason}".` : known;
}

/** An error reply of the API (status >= 400) as a ConsoleError. */
export function explainReply(action, status, body) {
  let description = "";
  if (typeof body === "string") {
    description = body;
  } else if (body && typeof body === "object") {
    // Handler errors carry both (error may be null); framework errors only `error`.
    description = [body.error, body.exception].filter(Boolean).join(" — ");
  }
  const hint = STATUS_HINTS[status] || "";
  return new ConsoleError(
    `${action} failed with status ${status}${description ? `: ${description}` : "."}`,
    hint,
  );
}

/** Frame encoding: JSON text or msgpack binary (the vendored library). */
export const codecs = {
  json: {
    binary: false,
    encode: (value) => JSON.stringify(value),
    decode: (data) => JSON.parse(data),
  },
  msgpack: {
    binary: true,
    encode: (value) => globalThis.MessagePack.encode(value),
    decode: (data) => globalThis.MessagePack.decode(new Uint8Array(data)),
  },
};

/**
 * One connection to a gateway.
 *
 * Events (EventTarget): "push" (detail: {payload, binary}), "frame"
 * (detail: {direction, binary, value} for the page's log), "close"
 * (detail: {code, reason, explanation}) for a connection that was open.
 */
export class GatewayClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.mode = "json";
    this.socket = null;
    this.pending = new Map(); // request id -> {resolve, reject, timer, action}
    this.nextId = 1;
  }

  get connected() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Open the connection; rejects with a ConsoleError that says what to do. */
  connect(pageOrigin) {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(this.url);
      } catch (error) {
        // A malformed URL, or ws:// from an https page (mixed content).
        reject(new ConsoleError(
          `Cannot open a websocket to ${this.url}: ${error.message}`,
          "Use a ws:// or wss:// address; a page served over https needs wss://.",
        ));
        return;
      }
      socket.binaryType = "arraybuffer";
      let opened = false;
      socket.addEventListener("open", () => {
        opened = true;
        this.socket = socket;
        resolve();
      });
      socket.addEventListener("message", (event) => this.receive(event.data));
      socket.addEventListener("close", async (event) => {
        this.socket = null;
        this.failPending(new ConsoleError("The connection closed before the reply came.",
          explainClose(event.code, event.reason)));
        if (!opened) {
          reject(await explainHandshakeFailure(this.url, pageOrigin));
          return;
        }
        this.dispatchEvent(new CustomEvent("close", {
          detail: { code: event.code, reason: event.reason,
                    explanation: explainClose(event.code, event.reason) },
        }));
      });
    });
  }

  close() {
    if (this.socket) {
      this.socket.close(1000, "Closed by the console.");
    }
  }

  /**
   * Send one request; resolves with {status, body} for any status (the
   * caller decides what an error is), rejects if the connection is gone.
   */
  request(action, headers, body) {
    if (!this.connected) {
      return Promise.reject(new ConsoleError("Not connected.", "Connect to a gateway first."));
    }
    const id = String(this.nextId++);
    const envelope = { action, headers: { ...headers, [REQUEST_HEADER]: id } };
    if (body !== undefined) {
      envelope.body = body;
    }
    const codec = codecs[this.mode];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ConsoleError(`${action}: no reply within ${REQUEST_TIMEOUT_MS / 1000} s.`,
          "The gateway may be overloaded or stuck; its log says more."));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer, action });
      this.socket.send(codec.encode(envelope));
      this.dispatchEvent(new CustomEvent("frame", {
        detail: { direction: "sent", binary: codec.binary, value: envelope },
      }));
    });
  }

  receive(data) {
    const binary = typeof data !== "string";
    let value;
    try {
      value = binary ? codecs.msgpack.decode(data) : codecs.json.decode(data);
    } catch (error) {
      this.dispatchEvent(new CustomEvent("frame", {
        detail: { direction: "received", binary, value: `undecodable frame: ${error.message}` },
      }));
      return;
    }
    this.dispatchEvent(new CustomEvent("frame", { detail: { direction: "received", binary, value } }));
    const isReply = value && typeof value === "object" && "request" in value
      && value.headers && typeof value.headers.status === "number";
    if (!isReply) {
      // A push for a subscription of this connection: the payload itself.
      this.dispatchEvent(new CustomEvent("push", { detail: { payload: value, binary } }));
      return;
    }
    const requestHeaders = (value.request && value.request.headers) || {};
    const entry = this.pending.get(requestHeaders[REQUEST_HEADER]);
    if (!entry) {
      return; // a reply to a request that timed out, or a decode error's echo
    }
    this.pending.delete(requestHeaders[REQUEST_HEADER]);
    clearTimeout(entry.timer);
    entry.resolve({ status: value.headers.status, body: value.body });
  }

  failPending(error) {
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
    this.pending.clear();
  }
}
