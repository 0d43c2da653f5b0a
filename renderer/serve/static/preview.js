// mailsmith preview: the page's behaviour. Plain DOM, no framework, no build step.
// Every value from the server goes in with textContent (never as markup); the
// emails load in sandboxed iframes from /email/<id>.html, the build's own bytes.
"use strict";

const CLIP = 102 * 1024; // Gmail clips HTML past this many bytes
const INBOX_CHARS = 100; // subject + preheader an inbox row shows before cutting

// kind: "recipient" (a real profile, /email/<id>) or "persona" (a fixture, /fixture/<name>)
const state = { id: null, kind: "recipient", variants: {}, tab: "email", generation: null };
const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function query() {
  const params = new URLSearchParams();
  for (const [key, arm] of Object.entries(state.variants)) {
    if (arm) params.append("variant", `${key}=${arm}`);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

const enc = (id) => encodeURIComponent(id);

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  return { ok: response.ok, status: response.status, body: await response.json() };
}

// --- recipients ----------------------------------------------------------------

async function loadRecipients() {
  const params = new URLSearchParams({ q: $("#search").value, limit: "200" });
  if ($("#segment").value) params.set("segment", $("#segment").value);
  const { ok, body } = await getJSON(`/api/recipients?${params}`);
  const list = $("#recipient-list");
  list.replaceChildren();
  if (!ok) return;
  for (const r of body.recipients) {
    const item = el("li", { "data-id": r.id, title: r.segments.join(", ") }, r.id);
    if (r.held_out.length) item.append(el("span", { class: "badge", text: "held out" }));
    item.append(el("span", { class: "email", text: r.email }));
    if (r.id === state.id && state.kind === "recipient") item.classList.add("on");
    item.addEventListener("click", () => select(r.id));
    list.append(item);
  }
  if (state.id === null && body.recipients.length) select(body.recipients[0].id);
}

async function loadPersonas() {
  const { ok, body } = await getJSON("/api/personas");
  const list = $("#persona-list");
  list.replaceChildren();
  $("#personas").hidden = !ok || body.length === 0;
  if (!ok) return;
  for (const p of body) {
    const item = el("li", { "data-persona": p.name, title: p.description }, p.name);
    item.append(el("span", { class: "email", text: p.description }));
    if (p.name === state.id && state.kind === "persona") item.classList.add("on");
    item.addEventListener("click", () => select(p.name, undefined, "persona"));
    list.append(item);
  }
}

function select(id, variants, kind = "recipient") {
  state.id = id;
  state.kind = kind;
  if (variants) {
    state.variants = { ...variants };
    for (const box of document.querySelectorAll("#variants select")) {
      box.value = state.variants[box.dataset.experiment] || "";
    }
  }
  for (const item of document.querySelectorAll("#recipient-list li")) {
    item.classList.toggle("on", kind === "recipient" && item.dataset.id === id);
  }
  for (const item of document.querySelectorAll("#persona-list li")) {
    item.classList.toggle("on", kind === "persona" && item.dataset.persona === id);
  }
  if (variants) showTab("email");
  return showRecipient();
}

// --- one recipient -------------------------------------------------------------

async function showRecipient() {
  if (state.id === null) return;
  const id = state.id;
  const persona = state.kind === "persona";
  const base = persona ? `/fixture/${enc(id)}` : `/email/${enc(id)}`;
  const explainUrl = persona ? `/api/explain-fixture/${enc(id)}` : `/api/explain/${enc(id)}`;
  const [html, text, explained] = await Promise.all([
    fetch(`${base}.html${query()}`, { cache: "no-store" }),
    fetch(`${base}.txt${query()}`, { cache: "no-store" }),
    getJSON(`${explainUrl}${query()}`),
  ]);
  if (id !== state.id) return; // another recipient was chosen meanwhile
  const refusal = $("#refusal");
  if (html.ok) {
    const source = await html.text();
    refusal.hidden = true;
    $("#source").textContent = source;
    $("#text").textContent = await text.text();
    const url = `${base}.html${query()}`;
    $("#frame-desktop").src = url;
    $("#frame-phone").src = url;
    showSize(new TextEncoder().encode(source).length);
  } else {
    const problem = await html.json();
    refusal.textContent = `No email (${html.status}): ${problem.error}` + (problem.hint ? ` (${problem.hint})` : "");
    refusal.hidden = false;
    for (const frame of ["#frame-desktop", "#frame-phone"]) $(frame).removeAttribute("src");
    $("#source").textContent = "";
    $("#text").textContent = "";
    $("#size").textContent = "";
  }
  if (explained.ok) showExplain(explained.body);
  else $("#explain").replaceChildren(el("p", { class: "no", text: explained.body.error }));
}

function showSize(bytes) {
  const size = $("#size");
  size.textContent = `HTML ${(bytes / 1024).toFixed(1)} KB of Gmail's ${CLIP / 1024} KB clip`;
  size.classList.toggle("over", bytes > CLIP);
}

function showInbox(inbox) {
  $("#inbox-sender").textContent = inbox.sender;
  $("#inbox-subject").textContent = inbox.subject;
  const room = Math.max(0, INBOX_CHARS - inbox.subject.length);
  const pre = inbox.preheader || "";
  $("#inbox-preheader").textContent = pre.length > room ? `${pre.slice(0, Math.max(0, room - 1)).trimEnd()}…` : pre;
}

function mark(value) {
  return el("span", { class: value ? "yes" : "no", text: value ? "✓" : "✗" });
}

function showExplain(data) {
  showInbox(data.inbox);
  const variants = data.experiments.map((e) => `${e.key}=${e.held_out ? "held out" : e.variant ?? "outside"}`);
  const who = data.persona ? `persona ${data.persona} (id ${data.id})` : `${data.id} · row ${data.row}`;
  $("#recipient-meta").textContent = `${who} · ${variants.join(", ") || "no experiments"}`;
  const panel = $("#explain");
  panel.replaceChildren(el("h3", { text: "Segments" }));
  const table = el("table", { id: "explain-segments" });
  for (const segment of data.segments) {
    const row = el("tr", { "data-segment": segment.name }, el("td", {}, mark(segment.matched)), el("td", { text: segment.name }));
    const why = el("td");
    for (const c of segment.conditions) {
      const bare = c.op === "exists" || c.op === "missing"; // no threshold to show
      const threshold = bare ? "" : c.percentile ? `${c.percentile} (${fmt(c.threshold)})` : fmt(c.threshold);
      why.append(el("div", {}, mark(c.matched), ` ${c.field} ${c.op}${threshold ? ` ${threshold}` : ""}: ${fmt(c.actual)}`));
    }
    for (const [ref, hit] of Object.entries(segment.uses)) why.append(el("div", {}, mark(hit), ` segment ${ref}`));
    row.append(why);
    table.append(row);
  }
  panel.append(table);
  const groups = Object.entries(data.groups).map(([k, v]) => `${k}: ${v ?? "none"}`);
  const clusters = Object.entries(data.clusters).map(([k, v]) => `${k}: ${v ?? "none"}`);
  panel.append(el("h3", { text: "Groups and clusters" }), el("p", { text: [...groups, ...clusters].join(" · ") || "none" }));
  panel.append(el("h3", { text: "Variants" }));
  for (const e of data.experiments) {
    const split = e.split.map((s) => `${s.variant} [${s.from}, ${s.to})`).join(" ");
    let line = `${e.key}: ${e.held_out ? "held out" : e.variant ?? "outside"} · bucket ${e.bucket} · ${split}`;
    if (e.holdout_share) line += ` · holdout draw ${e.holdout_bucket} < ${e.holdout_share}?`;
    if (e.audience) line += ` · audience ${e.audience}${e.in_audience ? "" : " (not in it)"}`;
    panel.append(el("p", { class: "experiment", text: line }));
  }
  panel.append(el("h3", { text: "Blocks" }));
  const blocks = el("table", { id: "explain-blocks" });
  for (const b of data.blocks) {
    blocks.append(el("tr", { "data-block": b.name }, el("td", {}, mark(b.shown)), el("td", { text: b.name }), el("td", { text: b.reasons.join("; ") })));
  }
  panel.append(blocks);
  panel.append(el("h3", { text: "Fallbacks used" }));
  const used = data.fallbacks.map((f) => `${f.field} (${short(f.file)}${f.line ? `:${f.line}` : ""})`);
  panel.append(el("p", { id: "explain-fallbacks", text: used.join(", ") || "none" }));
  if (data.no_email) panel.append(el("p", { class: "no", text: data.no_email.message }));
}

const fmt = (value) => {
  if (value === null || value === undefined) return "missing";
  if (Array.isArray(value)) return value.map(fmt).join(", ");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
};
const short = (path) => String(path).split("/").slice(-2).join("/");

// --- tabs and matrix -----------------------------------------------------------

function showTab(name) {
  state.tab = name;
  for (const button of document.querySelectorAll(".tabs button")) button.classList.toggle("on", button.dataset.tab === name);
  for (const tab of ["email", "text", "source", "matrix"]) $(`#tab-${tab}`).hidden = tab !== name;
  if (name === "matrix") loadMatrix();
}

async function loadMatrix() {
  const { ok, body } = await getJSON("/api/matrix");
  const grid = $("#matrix");
  grid.replaceChildren();
  if (!ok) return;
  for (const cell of body) {
    const params = new URLSearchParams();
    for (const [key, arm] of Object.entries(cell.variants)) params.append("variant", `${key}=${arm}`);
    const suffix = params.toString() ? `?${params}` : "";
    const label = [cell.group ? `${cell.group}: ${cell.label}` : cell.label, ...Object.entries(cell.variants).map(([k, v]) => `${k}=${v}`)].join(" · ");
    const frame = el("iframe", { sandbox: "", loading: "lazy", title: label, src: `/email/${enc(cell.id)}.html${suffix}` });
    const open = el("button", { type: "button", title: `open ${cell.id}` });
    open.addEventListener("click", () => select(cell.id, cell.variants));
    grid.append(el("div", { class: "cell" }, frame, el("span", { class: "label", text: `${label} (${cell.id})` }), open));
  }
}

// --- live reload and the error overlay ------------------------------------------

function showProblem(problem) {
  const overlay = $("#overlay");
  if (!problem) {
    overlay.hidden = true;
    return;
  }
  $("#overlay-kind").textContent = problem.kind;
  $("#overlay-where").textContent = problem.file ? `${problem.file}${problem.line ? `:${problem.line}` : ""}` : "";
  $("#overlay-message").textContent = problem.message;
  $("#overlay-hint").textContent = problem.hint || "";
  const source = $("#overlay-source");
  source.replaceChildren();
  for (const [number, text] of problem.excerpt) {
    const line = el("span", { text: `${String(number).padStart(4)}  ${text}` });
    if (number === problem.line) line.className = "at";
    source.append(line, "\n");
  }
  overlay.hidden = false;
}

function listen() {
  const events = new EventSource("/api/events");
  const handle = (message) => {
    const event = JSON.parse(message.data);
    showProblem(event.problem);
    const changed = state.generation !== null && event.generation !== state.generation;
    state.generation = event.generation;
    document.body.dataset.generation = String(event.generation);
    if (changed && !event.problem) refresh(event.generation);
  };
  events.addEventListener("reload", handle);
  events.addEventListener("problem", handle);
  // the connection dropped (the server stopped?): EventSource retries by itself
  events.addEventListener("error", () => $("#live").classList.add("off"));
  events.addEventListener("open", () => $("#live").classList.remove("off"));
}

async function refresh(generation) {
  await loadPersonas();
  await loadRecipients();
  await showRecipient();
  if (state.tab === "matrix") loadMatrix();
  document.body.dataset.shown = String(generation); // tests wait for this
}

// --- start -----------------------------------------------------------------------

function start() {
  let timer = null;
  $("#search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(loadRecipients, 150);
  });
  $("#segment").addEventListener("change", loadRecipients);
  for (const box of document.querySelectorAll("#variants select")) {
    box.addEventListener("change", () => {
      state.variants[box.dataset.experiment] = box.value;
      showRecipient();
      if (state.tab === "matrix") loadMatrix();
    });
  }
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  for (const item of document.querySelectorAll("#rejected li")) {
    item.addEventListener("click", () => item.dataset.id && select(item.dataset.id));
  }
  loadPersonas();
  loadRecipients();
  listen();
}

document.addEventListener("DOMContentLoaded", start);
