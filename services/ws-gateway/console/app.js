// The console page: wires the form controls to a GatewayClient (client.js).
//
// Everything shown comes from the gateway's replies; every failure becomes
// the alert box's title + advice. Text from the server is always inserted
// with textContent, never as HTML: message bodies are anybody's data.
//
// Not here: the wire protocol and the wording of errors (client.js).

import {
  ConsoleError, GatewayClient, defaultGatewayUrl, explainReply,
} from "./client.js";

const $ = (id) => document.getElementById(id);
const FRAME_LOG_SIZE = 50;

const state = {
  client: null,
  queue: null, // the selected queue's name
  subscription: null, // {id, queue, mode}
  claims: new Map(), // message id -> claim id, from this page's claims
  counts: { sent: { text: 0, binary: 0 }, received: { text: 0, binary: 0 } },
};

// -- small helpers ----------------------------------------------------------

/** A random (version 4) UUID; crypto.randomUUID exists only on https/localhost. */
function uuid4() {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A message body for display: JSON, or the size of msgpack binary data. */
function formatBody(value) {
  if (value instanceof Uint8Array) {
    return `(binary, ${value.length} bytes)`;
  }
  return JSON.stringify(value, (_key, v) => (v instanceof Uint8Array ? `(binary, ${v.length} bytes)` : v));
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) {
    node.textContent = text;
  }
  if (className) {
    node.className = className;
  }
  return node;
}

function button(text, onClick, label) {
  const node = element("button", text, "secondary");
  node.type = "button";
  if (label) {
    node.setAttribute("aria-label", label);
  }
  node.addEventListener("click", onClick);
  return node;
}

function setStatus(text, stateName) {
  $("status").textContent = text;
  $("status").dataset.state = stateName;
}

function showError(error) {
  const consoleError = error instanceof ConsoleError
    ? error
    : new ConsoleError(`Unexpected error: ${error.message || error}`, "");
  $("alert-title").textContent = consoleError.title;
  $("alert-advice").textContent = consoleError.advice;
  $("alert").hidden = false;
}

function clearError() {
  $("alert").hidden = true;
}

/** Run an action handler; any failure goes to the alert box. */
function guarded(handler) {
  return async (event) => {
    if (event && event.preventDefault) {
      event.preventDefault();
    }
    try {
      await handler(event);
    } catch (error) {
      showError(error);
    }
  };
}

function refreshControls() {
  const connected = Boolean(state.client && state.client.connected);
  for (const node of document.querySelectorAll(".needs-connection")) {
    node.disabled = !connected;
  }
  for (const node of document.querySelectorAll(".needs-queue")) {
    node.disabled = !connected || !state.queue;
  }
  $("post-message").disabled = !connected || !state.queue || !bodyIsValid();
  // One connection subscription at a time: a second create on the same
  // queue answers 409, and the page shows one queue's pushes anyway.
  $("subscribe").disabled = !connected || !state.queue || Boolean(state.subscription);
  $("unsubscribe").disabled = !connected || !state.subscription;
  $("connect").disabled = connected;
  $("disconnect").disabled = !connected;
  $("current-queue").textContent = state.queue || "(select a queue)";
}

// -- requests -----------------------------------------------------------------

/** One API call; resolves with the reply for statuses < 400, else throws. */
async function call(action, body) {
  if (!state.client || !state.client.connected) {
    throw new ConsoleError("Not connected.", "Connect to a gateway first (Connection, above).");
  }
  const headers = { "Client-ID": $("client-id").value.trim(), "X-Project-ID": $("project-id").value.trim() };
  const reply = await state.client.request(action, headers, body);
  if (reply.status >= 400) {
    throw explainReply(action, reply.status, reply.body);
  }
  clearError();
  return reply;
}

// -- connection ---------------------------------------------------------------

async function connect() {
  clearError();
  const url = $("gateway-url").value.trim();
  if (!$("client-id").value.trim()) {
    $("client-id").value = uuid4();
  }
  const client = new GatewayClient(url);
  client.mode = document.querySelector('input[name="mode"]:checked').value;
  client.addEventListener("push", (event) => showPush(event.detail));
  client.addEventListener("frame", (event) => logFrame(event.detail));
  client.addEventListener("close", (event) => {
    state.client = null;
    state.subscription = null;
    $("subscription-info").textContent = "";
    setStatus("Disconnected", "disconnected");
    refreshControls();
    if (event.detail.code !== 1000) {
      showError(new ConsoleError("The connection to the gateway closed.", event.detail.explanation));
    }
  });
  setStatus(`Connecting to ${url}…`, "connecting");
  try {
    await client.connect(window.location.origin);
  } catch (error) {
    setStatus("Not connected", "error");
    throw error;
  }
  state.client = client;
  setStatus(`Connected to ${url} (${client.mode === "json" ? "JSON text" : "msgpack binary"} frames)`,
    "connected");
  refreshControls();
  await listQueues();
}

function disconnect() {
  if (state.client) {
    state.client.close();
  }
}

function setMode(mode) {
  if (state.client) {
    state.client.mode = mode;
    setStatus(`Connected to ${state.client.url} (${mode === "json" ? "JSON text" : "msgpack binary"} frames)`,
      "connected");
  }
}

// -- queues -------------------------------------------------------------------

async function listQueues() {
  const reply = await call("queue_list", { limit: 20 });
  const tbody = $("queues").querySelector("tbody");
  tbody.replaceChildren();
  const queues = reply.body.queues || [];
  for (const { name } of queues) {
    const row = element("tr");
    if (name === state.queue) {
      row.className = "selected";
    }
    row.dataset.queue = name;
    row.append(element("td", name, "mono"));
    const actions = element("td");
    actions.append(
      button("Select", guarded(() => selectQueue(name)), `Select queue ${name}`),
      " ",
      button("Delete", guarded(() => deleteQueue(name)), `Delete queue ${name}`),
    );
    row.append(actions);
    tbody.append(row);
  }
  $("queues-empty").hidden = queues.length > 0;
  $("queues-empty").textContent = "No queues in this project.";
}

async function createQueue() {
  const name = $("queue-name").value.trim();
  if (!name) {
    throw new ConsoleError("No queue name given.", "Type a name: letters, digits, _ and -, at most 64.");
  }
  await call("queue_create", { queue_name: name });
  $("queue-name").value = "";
  await selectQueue(name);
}

async function deleteQueue(name) {
  await call("queue_delete", { queue_name: name });
  if (state.queue === name) {
    state.queue = null;
    renderMessages([]);
  }
  await listQueues();
  refreshControls();
}

async function selectQueue(name) {
  state.queue = name;
  state.claims.clear();
  $("claim-info").textContent = "";
  refreshControls();
  await listQueues();
  await listMessages();
}

// -- messages -----------------------------------------------------------------

function bodyIsValid() {
  try {
    JSON.parse($("message-body").value);
    return true;
  } catch (_error) {
    return false;
  }
}

function validateBody() {
  const feedback = $("message-body-feedback");
  try {
    JSON.parse($("message-body").value);
    feedback.textContent = "Valid JSON.";
    feedback.className = "feedback ok";
    $("message-body").setAttribute("aria-invalid", "false");
  } catch (error) {
    feedback.textContent = `Not valid JSON: ${error.message}`;
    feedback.className = "feedback bad";
    $("message-body").setAttribute("aria-invalid", "true");
  }
  refreshControls();
}

async function postMessage() {
  let body;
  try {
    body = JSON.parse($("message-body").value);
  } catch (error) {
    throw new ConsoleError(`The message body is not valid JSON: ${error.message}`,
      "Correct it in the editor; strings need double quotes.");
  }
  const message = { body };
  const ttl = $("message-ttl").value.trim();
  if (ttl) {
    message.ttl = Number(ttl);
  }
  await call("message_post", { queue_name: state.queue, messages: [message] });
  await listMessages();
}

function renderMessages(messages) {
  const tbody = $("messages").querySelector("tbody");
  tbody.replaceChildren();
  for (const message of messages) {
    const claimId = message.claim_id || state.claims.get(message.id) || null;
    const row = element("tr");
    row.dataset.messageId = message.id;
    row.append(
      element("td", message.id, "mono"),
      element("td", `${message.age} s / ${message.ttl} s`),
      element("td", claimId ? `claimed (${claimId})` : "—", "mono"),
      element("td", formatBody(message.body), "mono message-body"),
    );
    const actions = element("td");
    actions.append(button("Delete", guarded(() => deleteMessage(message.id, claimId)),
      `Delete message ${message.id}`));
    row.append(actions);
    tbody.append(row);
  }
  $("messages-empty").hidden = messages.length > 0;
}

async function listMessages() {
  if (!state.queue) {
    return;
  }
  const reply = await call("message_list", {
    queue_name: state.queue,
    echo: $("list-echo").checked,
    include_claimed: $("list-claimed").checked,
    limit: 20,
  });
  renderMessages(reply.body.messages || []);
}

async function claimMessages() {
  const reply = await call("claim_create", {
    queue_name: state.queue,
    limit: Number($("claim-limit").value) || 5,
    ttl: Number($("claim-ttl").value) || 300,
  });
  if (reply.status === 204) {
    $("claim-info").textContent = "Nothing to claim: every message is claimed already, or there is none.";
    return;
  }
  const { claim_id: claimId, messages } = reply.body;
  for (const message of messages) {
    state.claims.set(message.id, claimId);
  }
  $("claim-info").textContent = `Claimed ${messages.length} message(s) with claim ${claimId}. ` +
    "Delete them when done; their claim id is sent along.";
  await listMessages();
}

async function deleteMessage(id, claimId) {
  const body = { queue_name: state.queue, message_id: id };
  if (claimId) {
    body.claim_id = claimId;
  }
  await call("message_delete", body);
  state.claims.delete(id);
  await listMessages();
}

// -- subscriptions and pushes -------------------------------------------------

async function subscribe() {
  const queue = state.queue;
  // No subscriber: the subscriber is this connection (websocket.md §6).
  const reply = await call("subscription_create", { queue_name: queue, ttl: 3600, options: {} });
  state.subscription = { id: reply.body.subscription_id, queue, mode: state.client.mode };
  $("subscription-info").textContent = `Subscribed to ${queue} (subscription ${state.subscription.id}); ` +
    `pushes arrive as ${state.subscription.mode === "json" ? "JSON text" : "msgpack binary"} frames.`;
  refreshControls();
}

async function unsubscribe() {
  const { id, queue } = state.subscription;
  await call("subscription_delete", { queue_name: queue, subscription_id: id });
  state.subscription = null;
  $("subscription-info").textContent = `Unsubscribed from ${queue}.`;
  refreshControls();
}

function showPush({ payload, binary }) {
  const item = element("li");
  item.className = "push";
  const time = new Date().toLocaleTimeString();
  const queue = payload && payload.queue_name ? payload.queue_name : "?";
  const body = payload && "body" in payload ? payload.body : payload;
  item.append(
    element("span", `${time} · ${queue} · ${binary ? "msgpack binary" : "JSON text"} frame · `),
    element("code", formatBody(body), "push-body"),
  );
  $("pushes").prepend(item);
}

function logFrame({ direction, binary, value }) {
  state.counts[direction][binary ? "binary" : "text"] += 1;
  const { sent, received } = state.counts;
  $("frame-counts").textContent = `Sent: ${sent.text} text, ${sent.binary} binary. ` +
    `Received: ${received.text} text, ${received.binary} binary.`;
  const item = element("li", `${direction === "sent" ? "→" : "←"} ${binary ? "bin" : "txt"} ` +
    `${typeof value === "string" ? value : formatBody(value)}`);
  const log = $("frame-log");
  log.prepend(item);
  while (log.children.length > FRAME_LOG_SIZE) {
    log.lastChild.remove();
  }
}

// -- start ------------------------------------------------------------------

function init() {
  const params = new URLSearchParams(window.location.search);
  $("gateway-url").value = params.get("gateway") || defaultGatewayUrl(window.location);
  $("project-id").value = params.get("project") || $("project-id").value;
  $("client-id").value = uuid4();
  if (!globalThis.MessagePack) {
    // Without it JSON frames still work; say why msgpack does not.
    showError(new ConsoleError("The msgpack library did not load (vendor/msgpack.min.js).",
      "JSON frames work; reinstall Herald to get msgpack frames back."));
    document.querySelector('input[value="msgpack"]').disabled = true;
  }

  $("connection-form").addEventListener("submit", guarded(connect));
  $("disconnect").addEventListener("click", disconnect);
  $("new-client-id").addEventListener("click", () => { $("client-id").value = uuid4(); });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => setMode(radio.value));
  }
  $("alert-dismiss").addEventListener("click", clearError);
  $("queue-form").addEventListener("submit", guarded(createQueue));
  $("refresh-queues").addEventListener("click", guarded(listQueues));
  $("message-body").addEventListener("input", validateBody);
  $("post-form").addEventListener("submit", guarded(postMessage));
  $("list-messages").addEventListener("click", guarded(listMessages));
  $("claim-form").addEventListener("submit", guarded(claimMessages));
  $("subscribe").addEventListener("click", guarded(subscribe));
  $("unsubscribe").addEventListener("click", guarded(unsubscribe));
  validateBody();
  refreshControls();
  document.body.dataset.ready = "true"; // for tests: the module ran
}

init();
