// The console's panels: suspected cloned plates, accident replies, reminder jobs, system
// state (/readyz), and the figures of /v1/stats drawn as SVG bars. Refreshed in the
// background (X-Console-Background: these do not keep an idle session alive) and at once
// when the live feed brings an event that concerns them.
"use strict";
window.Panels = (() => {
  const $ = (id) => document.getElementById(id);
  const ACTIVE = new Set(["running", "waiting_window", "receiving"]);
  const SVG = "http://www.w3.org/2000/svg";
  let C = null;  // { api, T, label, el, clock, role }
  let timers = [];
  let streamUp = false;
  let lastReady = null;
  let statsTimer = 0;
  const armed = new Map();  // job id -> when its cancel button was pressed once

  const bg = (path) => C.api("GET", path, undefined, { background: true });
  const empty = () => C.el("li", { class: "empty" }, C.T("none"));

  async function clones() {
    const r = await bg("/v1/suspected-cloned-plates");
    if (!r.ok) return;
    const items = r.data.items.map((c) => C.el("li", { "data-plate": c.plate },
      C.el("strong", {}, c.plate), " · " + C.T("times", { n: c.count }) + " · " + C.clock(c.last_at),
      C.el("div", { class: "sub" }, c.location || ""),
      C.el("ul", { class: "sub" }, ...(c.notices || [{ id: c.last_notice, at: c.last_at }]).map(
        (n) => C.el("li", {}, n.id + " · " + C.clock(n.at) + (n.location ? " · " + n.location : ""))))));
    $("clones").replaceChildren(...(items.length ? items : [empty()]));
  }

  async function replies() {
    const r = await bg("/v1/accident-replies?limit=30");
    if (!r.ok) return;
    const items = r.data.items.map((x) => C.el("li", { "data-id": x.id },
      C.el("strong", {}, C.label("replies", x.reply)), " · " + x.case_id + " · " + C.label("types", x.accident_type),
      C.el("div", { class: "sub" }, C.clock(x.at) + " · " + x.from + " · " + x.text)));
    $("replies").replaceChildren(...(items.length ? items : [empty()]));
  }

  function jobRow(li, job) {
    const total = job.total || 0, done = job.done || 0;
    const pct = total ? Math.round((100 * done) / total) : 0;
    li.querySelector(".job-name").textContent = (job.name || job.job_id) + " · " + C.label("statuses", job.status);
    li.querySelector(".job-count").textContent = done + "/" + total + " (" + pct + "%)";
    const bar = li.querySelector(".progress");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.firstChild.style.width = pct + "%";
    const button = li.querySelector("button");
    if (button) button.hidden = !ACTIVE.has(job.status);
  }
  async function jobs() {
    const r = await bg("/v1/reminder-jobs?limit=20");
    if (!r.ok) return;
    const list = $("jobs");
    const rows = new Map([...list.querySelectorAll("li[data-job]")].map((li) => [li.dataset.job, li]));
    const wanted = [];
    for (const job of r.data.items) {
      let li = rows.get(job.job_id);
      if (!li) {  // rows are updated in place: focus and the layout stay where they are
        li = C.el("li", { "data-job": job.job_id },
          C.el("div", { class: "job-row" }, C.el("span", { class: "job-name" }), C.el("span", { class: "job-count" })),
          C.el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" },
            C.el("span")));
        if (C.role === "admin") {
          const b = C.el("button", { type: "button", "data-cancel": job.job_id }, C.T("cancel"));
          b.addEventListener("click", () => cancel(job.job_id, b));
          li.querySelector(".job-row").append(b);
        }
      }
      jobRow(li, job);
      wanted.push(li);
    }
    list.replaceChildren(...(wanted.length ? wanted : [empty()]));
  }
  async function cancel(id, button) {
    const first = armed.get(id);
    if (!first || Date.now() - first > 5000) {  // press twice: a stray key does not cancel
      armed.set(id, Date.now());
      button.textContent = C.T("cancel_confirm", { id });
      return;
    }
    armed.delete(id);
    button.disabled = true;
    await C.api("POST", "/v1/reminder-jobs/" + encodeURIComponent(id) + "/cancel", {});
    button.disabled = false;
    button.textContent = C.T("cancel");
    jobs();
  }

  function light(name, up, extra) {
    return C.el("li", { "data-check": name, "data-up": String(up) },
      C.el("span", { class: "dot " + (up ? "on" : "off") }), C.T(name) + ": " + C.T(up ? "up" : "down") + (extra || ""));
  }
  function drawSystem() {
    const items = [];
    if (lastReady) {
      const checks = lastReady.checks || {};
      const binds = (lastReady.detail && lastReady.detail.smpp_binds) || [];
      items.push(light("redis", !!checks.redis));
      items.push(light("smpp", !!checks.smpp, binds.length ? " (" + binds.join(", ") + ")" : ""));
      if ("ami" in checks) items.push(light("ami", !!checks.ami));
    }
    items.push(light("stream", streamUp));
    $("system").replaceChildren(...items);
  }
  async function system() {
    const r = await bg("/readyz");
    if (r.data) lastReady = r.data;
    drawSystem();
  }

  function chart(name, title, points) {
    const w = 320, h = 90, top = 10, bottom = 16, n = Math.max(points.length, 1);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
      if (text !== undefined) node.textContent = text;
      svg.append(node);
    };
    add("line", { x1: 0, y1: h - bottom, x2: w, y2: h - bottom, class: "axis" });
    const slot = w / n;
    points.forEach((p, i) => {
      const x = i * slot + slot * 0.2, bw = slot * 0.6, full = h - top - bottom;
      const bh = p.value === null ? 0 : Math.max(1, full * p.value);
      add("rect", { x, y: h - bottom - bh, width: bw, height: bh, class: "chart-bar" });
      add("text", { x: x + bw / 2, y: h - 4, "text-anchor": "middle" }, p.label);
      add("text", { x: x + bw / 2, y: h - bottom - bh - 2, "text-anchor": "middle" },
        p.value === null ? "–" : Math.round(p.value * 100) + "%");
    });
    const last = points.length ? points[points.length - 1].value : null;
    return C.el("div", { class: "chart", "data-chart": name, "data-last": last === null ? "" : String(last) },
      C.el("h3", {}, title), svg);
  }
  const share = (a, b) => (b ? a / b : null);
  async function stats() {
    const r = await bg("/v1/stats");
    if (!r.ok) return;
    const moved = [], settled = [], delivery = [];
    for (const p of r.data.periods) {
      const label = p.start.slice(5);
      moved.push({ label, value: p.parking.moved_share });
      let alerts = 0, self = 0, delivered = 0, sent = 0;
      for (const a of Object.values(p.accidents)) { alerts += a.alerts; self += a.self_settled; delivered += a.delivered; }
      sent = alerts;
      for (const per of Object.values(p.reminders)) {
        if (per.sms) { sent += per.sms.sent; delivered += per.sms.delivered; }
      }
      settled.push({ label, value: share(self, alerts) });
      delivery.push({ label, value: share(delivered, sent) });
    }
    $("charts").replaceChildren(chart("moved", C.T("chart_moved"), moved),
      chart("settled", C.T("chart_settled"), settled), chart("delivery", C.T("chart_delivery"), delivery));
  }

  function every(ms, fn) { fn(); timers.push(setInterval(fn, ms)); }
  return {
    start(ctx) {
      C = ctx;
      this.stop();
      every(10000, clones); every(15000, replies); every(3000, jobs); every(5000, system); every(60000, stats);
    },
    stop() { timers.forEach(clearInterval); timers = []; clearTimeout(statsTimer); statsTimer = 0; },
    refresh() { if (C) { clones(); replies(); jobs(); system(); stats(); } },
    onEvent(d) {
      if (d.type === "suspected_cloned_plate") clones();
      else if (d.type === "accident_reply") replies();
      // The figures move with the statuses: drawn again a few seconds after a burst.
      if (!statsTimer) statsTimer = setTimeout(() => { statsTimer = 0; stats(); }, 3000);
    },
    streamState(up) { streamUp = up; if (C) drawSystem(); },
  };
})();
