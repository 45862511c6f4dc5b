// The console: login, the accident alert form, the live feed. Panels are in panels.js.
// No storage: the API key goes to the server once, at login; the session is an HttpOnly
// cookie and the CSRF token lives in this page's memory only.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const FEED_MAX = 200;
  const FINAL_OK = new Set(["delivered", "acknowledged", "sent", "listened", "moved"]);
  const FINAL_BAD = new Set(["undeliverable", "expired", "rejected", "failed", "disputed",
    "no_input", "unreachable", "cancelled"]);
  const S = { csrf: "", loginCsrf: "", role: "", lang: location.hash === "#en" ? "en" : "zh-CN",
    es: null, lastId: "", seen: new Set(), seenOrder: [], statuses: new Map(), sent: new Map(),
    types: [], previewSeq: 0, previewTimer: 0 };

  function T(key, vars) {
    let s = I18N[S.lang][key] ?? I18N["zh-CN"][key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", String(v));
    return s;
  }
  function label(group, value) {
    const table = I18N[S.lang][group] || {};
    return table[value] || (S.lang === "en" ? String(value || "").replace(/_/g, " ") : value);
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
    return node;
  }
  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString(S.lang, { hour12: false });
  }

  async function api(method, path, body, opts = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = opts.csrf ?? S.csrf;
    if (opts.background) headers["X-Console-Background"] = "1";
    let resp;
    try {
      resp = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { status: 0, ok: false, data: null };
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401 && !opts.login && S.csrf) sessionEnded(T("session_ended"));
    return { status: resp.status, ok: resp.ok, data };
  }
  const errorText = (r) => (r.data && r.data.error ? r.data.error.message : "HTTP " + r.status);

  function applyTexts() {
    document.documentElement.lang = S.lang;
    document.title = T("title");
    for (const node of document.querySelectorAll("[data-t]")) node.textContent = T(node.dataset.t);
    $("lang").textContent = T("switch_to");
    fillTypes();
    for (const [id, item] of S.sent) item.badge.textContent = label("statuses", S.statuses.get(id));
    if (window.Panels && S.csrf) window.Panels.refresh();
  }

  // -- session -------------------------------------------------------------------------------
  function showLogin(token, message) {
    S.loginCsrf = token || "";
    $("app-view").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    $("login-key").focus();
  }
  async function enter(session) {
    S.csrf = session.csrf_token;
    S.role = session.role;
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = session.key_name + " · " + session.role;
    await loadTypes();
    startStream();
    window.Panels.start({ api, T, label, el, clock, role: S.role });
    $("f-type").focus();
  }
  async function sessionEnded(message) {
    S.csrf = "";
    stopStream();
    window.Panels.stop();
    const r = await api("GET", "/console/session", undefined, { login: true });
    if (r.data && r.data.logged_in) return enter(r.data);
    showLogin(r.data ? r.data.login_csrf_token : "", message);
  }
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("login-key");
    const r = await api("POST", "/console/login", { key: input.value.trim() },
      { csrf: S.loginCsrf, login: true });
    input.value = "";  // the key is not kept, not even in the field
    if (r.ok) return enter(r.data);
    const again = await api("GET", "/console/session", undefined, { login: true });
    showLogin(again.data ? again.data.login_csrf_token : "", T("login_refused") + errorText(r));
  });
  $("logout").addEventListener("click", async () => {
    await api("POST", "/console/logout", {});
    sessionEnded("");
  });
  $("lang").addEventListener("click", () => {
    S.lang = S.lang === "en" ? "zh-CN" : "en";
    history.replaceState(null, "", S.lang === "en" ? "#en" : "#");
    applyTexts();
  });

  // -- the alert form ------------------------------------------------------------------------
  async function loadTypes() {
    if (S.types.length) return;
    const r = await api("GET", "/v1/templates?channel=sms");
    if (!r.ok) return;
    S.types = r.data.templates.filter((t) => t.name.startsWith("accident_"))
      .map((t) => ({ type: t.name.slice("accident_".length), text: t.text }));
    fillTypes();
    schedulePreview();
  }
  function fillTypes() {
    const select = $("f-type");
    const chosen = select.value;
    select.replaceChildren(...S.types.map((t) => el("option", { value: t.type }, label("types", t.type))));
    if (chosen) select.value = chosen;
  }
  function formValues() {
    return { accident_type: $("f-type").value, reporter_phone: $("f-phone").value.trim(),
      location: $("f-location").value.trim(), case_id: $("f-case").value.trim() };
  }
  function schedulePreview() {
    clearTimeout(S.previewTimer);
    S.previewTimer = setTimeout(preview, 120);
  }
  async function preview() {
    const seq = ++S.previewSeq;
    const r = await api("POST", "/v1/accident-alerts/preview", formValues());
    if (seq !== S.previewSeq || !r.ok) return;
    const d = r.data;
    $("preview").textContent = d.text || "";
    const parts = $("sms-parts");
    parts.className = d.error ? "hint bad" : "hint";
    parts.textContent = d.error ? T("too_long") + d.error
      : d.segments ? T("parts", { n: d.segments, enc: d.encoding, chars: d.chars }) : "";
    parts.dataset.segments = d.segments || "";
    const phone = $("f-phone"), check = $("phone-check");
    if (!phone.value.trim()) {
      check.textContent = ""; check.className = "hint"; phone.removeAttribute("aria-invalid");
    } else if (d.phone.valid) {
      check.textContent = T("phone_ok", { masked: d.phone.masked }); check.className = "hint ok";
      phone.setAttribute("aria-invalid", "false");
    } else {
      check.textContent = T("phone_bad") + d.phone.message; check.className = "hint bad";
      phone.setAttribute("aria-invalid", "true");
    }
  }
  for (const id of ["f-type", "f-phone", "f-location", "f-case"]) {
    $(id).addEventListener("input", schedulePreview);
  }
  $("alert-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = formValues();
    const error = $("alert-error");
    const empty = ["f-phone", "f-location", "f-case"].find((id) => !$(id).value.trim());
    if (empty) { error.textContent = T("required"); $(empty).focus(); return; }
    const button = $("alert-submit");
    button.disabled = true; button.textContent = T("sending"); error.textContent = "";
    const r = await api("POST", "/v1/accident-alerts", values);
    button.disabled = false; button.textContent = T("send");
    if (!r.ok) {
      error.textContent = errorText(r);
      if (r.data && r.data.error && /phone/.test(r.data.error.message)) $("f-phone").focus();
      return;
    }
    addSent(r.data, values.case_id);
    for (const id of ["f-phone", "f-location", "f-case"]) $(id).value = "";
    schedulePreview();
    $("f-phone").focus();
  });

  function addSent(notice, caseId) {
    const badge = el("span", { class: "badge", "data-status": "" });
    const li = el("li", { "data-id": notice.id },
      el("span", {}, caseId + " · " + notice.to), badge,
      el("span", { class: "sub" }, notice.id));
    $("sent").prepend(li);
    S.sent.set(notice.id, { li, badge });
    setStatus(notice.id, S.statuses.get(notice.id) || notice.status);
  }
  function setStatus(id, status) {
    S.statuses.set(id, status);
    if (S.statuses.size > 5000) S.statuses.delete(S.statuses.keys().next().value);
    const item = S.sent.get(id);
    if (!item) return;
    item.badge.textContent = label("statuses", status);
    item.badge.dataset.status = status;
    item.badge.className = "badge" + (FINAL_OK.has(status) ? " final-ok" : FINAL_BAD.has(status) ? " final-bad" : "");
  }

  // -- the live feed -------------------------------------------------------------------------
  function startStream() {
    stopStream();
    const url = "/v1/events/stream?" + (S.lastId ? "last_event_id=" + encodeURIComponent(S.lastId) : "backlog=" + FEED_MAX);
    const es = new EventSource(url);
    S.es = es;
    const onEvent = (ev) => {
      if (ev.lastEventId) S.lastId = ev.lastEventId;
      const d = JSON.parse(ev.data);
      if (S.seen.has(d.event_id)) return;
      S.seen.add(d.event_id); S.seenOrder.push(d.event_id);
      if (S.seenOrder.length > 2000) S.seen.delete(S.seenOrder.shift());
      d.type = ev.type;
      if (d.type === "status" || d.type === "follow_up") setStatus(d.id, d.status);
      feedAdd(d);
      window.Panels.onEvent(d);
    };
    for (const t of ["status", "suspected_cloned_plate", "accident_reply", "follow_up"]) {
      es.addEventListener(t, onEvent);
    }
    es.addEventListener("session_ended", () => sessionEnded(T("session_ended")));
    es.onopen = () => { $("feed-state").className = "dot on"; window.Panels.streamState(true); };
    es.onerror = async () => {
      $("feed-state").className = "dot off";
      window.Panels.streamState(false);
      if (es.readyState !== EventSource.CLOSED || S.es !== es) return;
      const r = await api("GET", "/console/session", undefined, { background: true, login: true });
      if (r.data && r.data.logged_in) setTimeout(() => S.csrf && startStream(), 2000);
      else sessionEnded(T("session_ended"));
    };
  }
  function stopStream() {
    if (S.es) { S.es.close(); S.es = null; }
  }
  function addOption(select, value, text) {
    if (!value || [...select.options].some((o) => o.value === value)) return;
    select.append(el("option", { value }, text));
  }
  function shown(tr) {
    const kind = $("filter-kind").value, status = $("filter-status").value;
    return (!kind || tr.dataset.kind === kind) && (!status || tr.dataset.status === status);
  }
  function feedAdd(d) {
    const kind = d.type === "suspected_cloned_plate" ? "suspected_cloned_plate" : d.kind;
    addOption($("filter-kind"), kind, label("kinds", kind));
    addOption($("filter-status"), d.status, label("statuses", d.status));
    const what = d.type === "accident_reply" ? label("replies", d.reply)
      : d.type === "suspected_cloned_plate" ? d.plate + " ×" + d.count : label("statuses", d.status);
    const tr = el("tr", { class: "new", "data-kind": kind, "data-status": d.status, "data-id": d.id },
      el("td", {}, clock(d.at)), el("td", {}, label("kinds", kind)), el("td", {}, what),
      el("td", {}, d.to || ""), el("td", { title: d.id }, d.id));
    tr.classList.toggle("hidden", !shown(tr));
    const box = $("feed-box"), body = $("feed");
    const keepView = box.scrollTop > 0;  // a reader scrolled down keeps their rows in place
    body.prepend(tr);
    while (body.rows.length > FEED_MAX) body.deleteRow(-1);
    if (keepView && !tr.classList.contains("hidden")) box.scrollTop += tr.getBoundingClientRect().height;
  }
  for (const id of ["filter-kind", "filter-status"]) {
    $(id).addEventListener("change", () => {
      for (const tr of $("feed").rows) tr.classList.toggle("hidden", !shown(tr));
    });
  }

  // -- start ---------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", async () => {
    applyTexts();
    const r = await api("GET", "/console/session", undefined, { login: true });
    if (r.data && r.data.logged_in) enter(r.data);
    else showLogin(r.data ? r.data.login_csrf_token : "", r.ok ? "" : errorText(r));
  });
})();
