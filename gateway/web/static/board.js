// The live board: cards arrive and change by server-sent events (no polling), age every second,
// and act through the JSON API with the session's CSRF token. Without script the page still works.
"use strict";
(function () {
  const board = document.getElementById("board");
  const empty = document.getElementById("empty");
  const count = document.getElementById("count");
  const live = document.getElementById("live");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const config = JSON.parse(document.getElementById("board-config").textContent);
  const staffOptions = document.getElementById("staff-options").innerHTML;
  const BANDS = [[0.5, "fresh"], [1.0, "waiting"], [2.0, "late"]];
  const ACTIVE = ["open", "paged", "unreached", "acknowledged"];
  const ORDER = { unreached: 0, open: 1, paged: 1, acknowledged: 2 };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function ageText(s) {
    s = Math.max(0, Math.floor(s));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function band(age, timeout) {
    const share = age / Math.max(timeout, 1);
    for (const [limit, name] of BANDS) if (share < limit) return name;
    return "overdue";
  }

  async function api(path, body) {
    const r = await fetch("/api/v1" + path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    if (!r.ok) {
      const detail = await r.json().catch(() => ({ detail: r.statusText }));
      alert(typeof detail.detail === "string" ? detail.detail : "that did not work (" + r.status + ")");
      return null;
    }
    const c = await r.json();
    upsert(c);
    return c;
  }

  function actionForm(c, cls, label, path, withStaff, preferred) {
    const f = el("form", cls);
    let select = null;
    if (withStaff) {
      select = el("select");
      select.name = "staff";
      select.innerHTML = staffOptions;
      if (preferred) select.value = preferred;
      select.setAttribute("aria-label", label);
      f.append(select);
    }
    const b = el("button", cls.replace("-form", ""), label);
    b.type = "submit";
    f.append(b);
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      b.disabled = true;
      api("/incidents/" + c.id + path, select ? { staff: select.value } : {}).finally(() => { b.disabled = false; });
    });
    return f;
  }

  function render(c) {
    const a = el("article", "card");
    a.id = "inc-" + c.id;
    a.dataset.id = c.id;
    a.dataset.since = c.waited_since;
    a.dataset.timeout = c.ack_timeout_s;
    a.dataset.state = c.state;
    a.classList.add("state-" + c.state);
    const h = el("header");
    h.append(el("span", "where", c.where), el("span", "kind", c.kind), el("span", "age", ageText(c.age_s)));
    const status = el("p", "status");
    status.append(el("span", "state", c.state));
    if (c.responder_name) { status.append(" · on it: "); status.append(el("b", "responder", c.responder_name)); }
    if (c.paged.length) { status.append(" · waiting for "); status.append(el("span", "paged", c.paged.map((p) => p.name).join(", "))); }
    if (c.level) status.append(" · level " + c.level);
    if (c.presses > 1) status.append(" · pressed " + c.presses + "×");
    const actions = el("div", "actions");
    if (["open", "paged", "unreached"].includes(c.state)) {
      // a manager enters the ack for the person paged, or for themselves
      const who = c.paged.length ? c.paged[0].id : config.staff_id;
      actions.append(actionForm(c, "ack-form", "On it", "/ack", config.manager, who));
    }
    if (config.manager) actions.append(actionForm(c, "reassign-form", "Reassign", "/reassign", true, null));
    const open = el("a", "open", c.state === "acknowledged" ? "Resolve…" : "Details");
    open.href = "/incidents/" + c.id;
    actions.append(open);
    a.append(h, status, el("p", "zone", c.zone_name + " · " + c.origin), actions);
    tick(a);
    return a;
  }

  function place(card) {
    const key = (e) => [ORDER[e.dataset.state] ?? 3, parseFloat(e.dataset.since)];
    const mine = key(card);
    for (const other of board.children) {
      if (other === card) continue;
      const k = key(other);
      if (mine[0] < k[0] || (mine[0] === k[0] && mine[1] < k[1])) { board.insertBefore(card, other); return; }
    }
    board.append(card);
  }

  function upsert(c) {
    const old = document.getElementById("inc-" + c.id);
    if (!ACTIVE.includes(c.state)) {
      if (old) old.remove();
    } else {
      const fresh = render(c);
      if (old) old.replaceWith(fresh);
      place(fresh);
    }
    counted();
  }

  function counted() {
    const n = board.children.length;
    count.textContent = n;
    empty.hidden = n > 0;
  }

  function tick(card) {
    const age = Date.now() / 1000 - parseFloat(card.dataset.since);
    card.querySelector(".age").textContent = ageText(age);
    for (const c of [...card.classList]) if (c.startsWith("band-")) card.classList.remove(c);
    if (card.dataset.state !== "acknowledged") card.classList.add("band-" + band(age, parseFloat(card.dataset.timeout)));
  }

  async function reload() {
    const r = await fetch("/api/v1/board", { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=/"; return; }
    const cards = await r.json();
    board.replaceChildren();
    for (const c of cards) upsert(c);
    counted();
  }

  function connect() {
    const source = new EventSource("/api/v1/events");
    source.onopen = () => { live.className = "live on"; live.title = "live"; reload(); };
    source.onerror = () => { live.className = "live off"; live.title = "reconnecting"; };
    source.addEventListener("incident", (ev) => upsert(JSON.parse(ev.data)));
    source.addEventListener("resync", reload);
  }

  // Server-rendered forms become one-click API calls.
  for (const card of board.children) {
    const id = card.dataset.id;
    for (const f of card.querySelectorAll("form")) {
      f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const select = f.querySelector("select");
        const path = f.classList.contains("reassign-form") ? "/reassign" : "/ack";
        api("/incidents/" + id + path, select ? { staff: select.value } : {});
      });
    }
  }
  setInterval(() => { for (const card of board.children) tick(card); }, 1000);
  connect();
})();
