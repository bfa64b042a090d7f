// Vaka console script: keeps the server-rendered pages live (event stream, fragment reloads)
// and sends staff's actions to the JSON API with the session's CSRF token. Every page works
// read-only without it; it needs no library.
"use strict";
const T = JSON.parse(document.getElementById("words").textContent);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const VIEW = document.body.dataset.view;
const sleep = ms => new Promise(r => setTimeout(r, ms));
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));

async function api(method, url, body) {
  const r = await fetch(url, {method, headers: {"content-type": "application/json", "x-csrf-token": CSRF},
    body: body === undefined ? undefined : JSON.stringify(body)});
  if (r.status === 401) location.href = "/login";
  return r;
}

// Sends a form's JSON; on success reloads (or goes to `then`), else shows the API's problems
// (each naming its field) in `out`.
async function apiSend(method, url, body, out, then) {
  const r = await api(method, url, body);
  if (r.ok) { if (then) location.href = then; else location.reload(); return; }
  const b = await r.json().catch(() => ({}));
  out.textContent = T.failed + ": " + (b.problems || [b.message || r.status]).join("; ");
}

// Times as the server writes them: Swedish format, Stockholm time, whatever the device's settings.
const localTime = t => new Date(t).toLocaleString("sv-SE", {timeZone: "Europe/Stockholm"});

// "12 min" / "1 h 5 min" since a timestamp, for [data-since] elements.
function since(ms) {
  const m = Math.max(0, Math.floor((Date.now() - ms) / 60000));
  if (m < 60) return `${m} min ${T.ago}`;
  return `${Math.floor(m / 60)} h ${m % 60} min ${T.ago}`;
}
function tickAges() {
  for (const el of document.querySelectorAll("[data-since]")) el.textContent = since(Date.parse(el.dataset.since));
}

// Replaces a fragment from the server, keeping keyboard focus on the same control.
async function reload(id, url) {
  const r = await fetch(url);
  if (r.status === 401) { location.href = "/login"; return; }
  if (!r.ok) return;
  const focused = document.activeElement && document.activeElement.id;
  document.getElementById(id).innerHTML = await r.text();
  if (focused) { const el = document.getElementById(focused); if (el) el.focus(); }
  tickAges();
  signal(false);
}

// --- The live stream -------------------------------------------------------------------------
const handlers = {event: [], device: [], alarm: [], alarm_handled: [], reconnect: []};
function live() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/v1/stream");
  let opened = false;
  es.onopen = () => { conn.textContent = T.live; if (opened) handlers.reconnect.forEach(f => f()); opened = true; };
  es.onerror = () => { conn.textContent = T.offline; };
  for (const name of ["event", "device", "alarm", "alarm_handled"]) {
    es.addEventListener(name, m => { const d = JSON.parse(m.data); handlers[name].forEach(f => f(d)); });
  }
  es.addEventListener("lagged", () => handlers.reconnect.forEach(f => f()));
  // A page left for another must not keep its stream open: the browser allows only a few
  // connections per server (HTTP/1.1), and a page kept for "back" would hold one each.
  window.addEventListener("pagehide", () => es.close());
  window.addEventListener("pageshow", e => { if (e.persisted) location.reload(); });
}

// --- Now: alarms and escalations -------------------------------------------------------------
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.15;
    o.connect(g); g.connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.35);
  } catch (_) { /* no sound before the first tap: the banner still flashes */ }
}
// Shows the banner while any alarm is unacknowledged; `repeat` flashes it and sounds.
function signal(repeat) {
  const box = document.getElementById("signal");
  if (!box) return;
  const n = document.querySelectorAll("[data-unacked]").length;
  box.classList.toggle("show", n > 0);
  box.querySelector(".n").textContent = n;
  document.title = (n > 0 ? `(${n}) ` : "") + document.title.replace(/^\(\d+\) /, "");
  if (n > 0 && repeat) {
    box.classList.add("flash"); setTimeout(() => box.classList.remove("flash"), 600);
    beep();
  }
}

async function alarmAction(btn) {
  const id = btn.dataset.alarm, act = btn.dataset.act;
  let body = {};
  if (act === "assign-self") body = {to: "me"};
  if (act === "assign-patrol") body = {patrol: document.getElementById(`patrol-${id}`).value};
  if (act === "resolve") body = {outcome: document.getElementById(`outcome-${id}`).value, note: document.getElementById(`note-${id}`).value || null};
  const path = {"ack": "acknowledge", "assign-self": "assign", "assign-patrol": "assign", "resolve": "resolve"}[act];
  btn.disabled = true;
  const r = await api("POST", `/api/v1/alarms/${id}/${path}`, body);
  if (!r.ok) { btn.disabled = false; alert(`${T.failed}: ${(await r.json()).message}`); return; }
  await reload("items", "/now/items");
}

function initNow() {
  const refresh = () => reload("items", "/now/items");
  handlers.alarm.push(refresh); handlers.alarm_handled.push(refresh); handlers.reconnect.push(refresh);
  handlers.event.push(e => { if (e.severity === "alarm") refresh(); });
  document.getElementById("items").addEventListener("click", e => {
    const b = e.target.closest("button[data-act]"); if (b) alarmAction(b);
  });
  // Round states (escalations, unclear pictures) change without a stream message.
  setInterval(refresh, 15000);
  const every = Number(document.body.dataset.signalEvery || 30) * 1000;
  setInterval(() => signal(true), every);
  signal(true);
}

// --- The round: look at an unclear picture, decide, record visits ----------------------------
async function look(btn) {
  const cam = btn.dataset.camera, box = document.getElementById(`snap-${btn.dataset.check}`);
  btn.disabled = true;
  box.textContent = T.snapshot_waiting;
  const asked = await api("POST", `/api/v1/checks/${cam}/snapshot`);
  if (asked.status !== 202 && asked.status !== 409) {
    box.textContent = `${T.snapshot_failed}: ${(await asked.json()).message}`; return;
  }
  for (let i = 0; i < 60; i++) {
    const c = await (await fetch(`/api/v1/checks/${cam}`)).json();
    if (c.snapshot === "available") break;
    if (c.snapshot === "expired" || c.snapshot === "viewed" || c.snapshot === "none") { box.textContent = T.snapshot_failed; return; }
    await sleep(500);
  }
  const r = await fetch(`/api/v1/checks/${cam}/snapshot`);
  if (!r.ok) { box.textContent = T.snapshot_failed; return; }
  let left = Number(r.headers.get("x-vaka-view-seconds") || 10);
  const url = URL.createObjectURL(await r.blob());
  box.innerHTML = `<img src="${url}" alt="${esc(T.snapshot_alt)}"><span class="t count"></span>`;
  const count = box.querySelector(".count");
  const timer = setInterval(() => {
    count.textContent = `${left} ${T.seconds_left}`;
    if (left-- <= 0) {
      clearInterval(timer);
      box.innerHTML = `<span class="muted">${esc(T.snapshot_removed)}</span>`;
      URL.revokeObjectURL(url);
    }
  }, 1000);
}

async function roundAction(btn) {
  const id = btn.dataset.check, act = btn.dataset.act;
  if (act === "look") return look(btn);
  let r;
  if (act === "well" || act === "visit") r = await api("POST", `/api/v1/rounds/checks/${id}/decision`, {well: act === "well"});
  if (act === "record") r = await api("POST", `/api/v1/rounds/checks/${id}/outcome`, {outcome: document.getElementById(`rec-${id}`).value});
  if (r && !r.ok) { alert(`${T.failed}: ${(await r.json()).message}`); return; }
  await reload("round", "/round/table");
}

function initRound() {
  document.getElementById("round").addEventListener("click", e => {
    const b = e.target.closest("button[data-act]"); if (b) roundAction(b);
  });
  // A picture being looked at must not be wiped by a reload.
  setInterval(() => { if (!document.querySelector(".snap img")) reload("round", "/round/table"); }, 20000);
}

// --- A device: first event, test check -------------------------------------------------------
function initDevice() {
  const id = document.body.dataset.device, first = document.getElementById("first");
  handlers.event.push(e => {
    if (e.device !== id || first.classList.contains("seen")) return;
    first.className = "first seen";
    first.textContent = `${T.first_event_seen}: ${e.kind} ${localTime(e.ts)}`;
  });
  const test = document.getElementById("test-check");
  if (test) test.addEventListener("click", async () => {
    const out = document.getElementById("test-result");
    out.textContent = T.test_check_sent;
    const r = await api("POST", `/api/v1/devices/${encodeURIComponent(id)}/camera-check`, {});
    const c = await r.json();
    if (!r.ok) { out.textContent = `${T.failed}: ${c.message}`; return; }
    for (let i = 0; i < 120; i++) {
      await sleep(1000);
      const s = await (await fetch(`/api/v1/checks/${c.check_id}`)).json();
      if (s.status !== "requested") { out.textContent = `${s.status}: ${s.verdict ?? s.refusal ?? ""}`; return; }
    }
  });
  // Revoking certificates: one (a data-serial button) or all; the reason goes to the audit log.
  const revokeOut = document.getElementById("revoke-result");
  const revoke = serial => {
    const reason = document.getElementById("revoke-reason").value.trim();
    if (!reason) { revokeOut.textContent = T.revoke_needs_reason; document.getElementById("revoke-reason").focus(); return; }
    apiSend("POST", `/api/v1/devices/${encodeURIComponent(id)}/revoke`, serial ? {reason, serial} : {reason}, revokeOut);
  };
  for (const b of document.querySelectorAll("button.revoke")) b.addEventListener("click", () => revoke(b.dataset.serial));
  const all = document.getElementById("revoke-all");
  if (all) all.addEventListener("click", () => revoke(null));
}

document.getElementById("conn").textContent = T.connecting;
live();
tickAges();
setInterval(tickAges, 20000);
({now: initNow, round: initRound, device: initDevice}[VIEW] || (() => {}))();
