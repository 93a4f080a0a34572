// The Mosaic dashboard: reads the JSON API, renders with the DOM, and
// reloads what it shows when the server says the cluster changed
// (server-sent events on /api/events). Strings come from strings.js.
"use strict";

const params = new URLSearchParams(location.search);
const LANG = params.get("lang") || (navigator.language || "en").split("-")[0];
const STRINGS = window.MOSAIC_STRINGS;
const TABLE = STRINGS[LANG] || STRINGS.en;

// "NVIDIA A100-SXM4-80GB", not "NVIDIA · NVIDIA A100-SXM4-80GB": the vendor
// only where the model name does not already start with it.
function modelLabel(m) {
  if (!m.vendor || m.model.toLowerCase().startsWith(m.vendor.toLowerCase())) return m.model;
  return m.vendor + " · " + m.model;
}

// t looks a string up and fills in its arguments.
function t(key, ...args) {
  let s = TABLE[key] !== undefined ? TABLE[key] : (STRINGS.en[key] !== undefined ? STRINGS.en[key] : key);
  args.forEach((a, i) => { s = s.split("{" + i + "}").join(String(a)); });
  return s;
}

// el builds an element: el("td", {class: "num"}, "text", child, ...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const $ = (id) => document.getElementById(id);

function gib(mib) {
  if (mib === undefined || mib === null) return t("usedUnknown");
  return mib >= 1024 ? (mib / 1024).toFixed(1) + " GiB" : Math.round(mib) + " MiB";
}
function pct(v) { return v === undefined || v === null ? t("usedUnknown") : Math.round(v) + "%"; }
function share(part, whole) { return whole > 0 ? Math.max(0, Math.min(100, part * 100 / whole)) : 0; }

const state = { nodes: 0, pods: 0, pending: 0, gen: 0 };
const PAGE = { nodes: 20, pods: 25, pending: 10 };

function filters() {
  return {
    q: $("q").value, node: $("f-node").value, model: $("f-model").value,
    namespace: $("f-namespace").value, pod: $("f-pod").value,
  };
}

async function api(path, extra) {
  const q = new URLSearchParams(Object.assign(filters(), extra || {}));
  for (const [k, v] of [...q.entries()]) if (v === "") q.delete(k);
  const r = await fetch(path + "?" + q.toString());
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function applyStrings() {
  document.title = t("title");
  document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((e) => { e.placeholder = t(e.dataset.i18nPlaceholder); });
  document.documentElement.lang = STRINGS[LANG] ? LANG : "en";
}

function setOptions(select, values, label) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "" }, label));
  for (const v of values) select.append(el("option", { value: v.value }, v.text));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function renderOverview(o) {
  $("overview-counts").textContent = t("overviewCounts", o.nodes, o.pods, o.pending);
  const row = (m, name, cls) => el("tr", { class: cls, "data-model": m.model || "" },
    el("td", {}, name, m.unhealthyCards ? el("span", { class: "bad" }, " · " + t("unhealthy", m.unhealthyCards)) : null),
    el("td", { class: "num", "data-field": "cards" }, m.cards),
    el("td", { class: "num", "data-field": "memAllocated" }, gib(m.allocatedMemoryMiB) + " / " + gib(m.memoryMiB)),
    el("td", { class: "num", "data-field": "memUsed" }, gib(m.usedMemoryMiB)),
    el("td", { class: "num", "data-field": "memFree" }, gib(m.freeMemoryMiB)),
    el("td", { class: "num", "data-field": "coresAllocated" }, pct(m.allocatedCores / Math.max(1, m.cards)) + " · " + m.allocatedCores + "/" + m.cores),
    el("td", { class: "num", "data-field": "coresUsed" }, m.usedCores === undefined ? t("usedUnknown") : pct(m.usedCores / Math.max(1, m.cards))),
    el("td", { class: "num", "data-field": "shares" }, m.allocatedShares + "/" + m.shares));
  const body = $("overview-table").tBodies[0];
  body.replaceChildren(...(o.models || []).map((m) => row(m, modelLabel(m), "model")),
    row(o.total, t("total"), "total"));
  const models = (o.models || []).map((m) => ({ value: m.model, text: m.model }));
  setOptions($("f-model"), models, t("allModels"));
  setOptions($("f-namespace"), (o.namespaces || []).map((n) => ({ value: n, text: n })), t("allNamespaces"));
  const helperModels = (o.models || []).map((m) => ({ value: m.vendor + "|" + m.model, text: modelLabel(m) }));
  setOptions($("h-model"), helperModels, t("anyModel"));
}

function pager(id, key, p) {
  const box = $(id);
  box.replaceChildren();
  if (p.total <= p.limit) return;
  const prev = el("button", { type: "button", disabled: p.offset === 0 ? "" : null }, t("prev"));
  const next = el("button", { type: "button", disabled: p.offset + p.limit >= p.total ? "" : null }, t("next"));
  prev.onclick = () => { state[key] = Math.max(0, p.offset - p.limit); refresh(key); };
  next.onclick = () => { state[key] = p.offset + p.limit; refresh(key); };
  box.append(prev, el("span", { class: "muted" }, t("pageOf", p.offset + 1, Math.min(p.total, p.offset + p.limit), p.total)), next);
}

function renderPending(p) {
  $("pending-count").textContent = "(" + p.total + ")";
  const body = $("pending-table").tBodies[0];
  if (!p.items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "muted" }, t("noPending"))));
  } else {
    body.replaceChildren(...p.items.map((x) => el("tr", { "data-pod": x.namespace + "/" + x.name },
      el("td", {}, x.namespace + "/" + x.name),
      el("td", {}, x.request),
      el("td", { class: "reason" }, x.reason || el("span", { class: "muted" }, t("notTriedYet"))))));
  }
  pager("pending-pager", "pending", p);
}

// bar draws one card resource: a segment per holder as wide as its
// allocation, filled as far as it uses it.
function bar(kind, card, total, holders, alloc, used) {
  const b = el("div", { class: "bar", "data-kind": kind });
  for (const h of holders) {
    const a = alloc(h), u = used(h);
    const seg = el("span", {
      class: "seg", "data-pod": h.namespace + "/" + h.pod, "data-alloc": a, "data-used": u === undefined ? "" : u,
      style: "width:" + share(a, total) + "%",
      title: t("usedBy", h.namespace + "/" + h.pod, kind === "memory" ? gib(a) : pct(a), kind === "memory" ? gib(u) : pct(u)),
    });
    if (u !== undefined && u !== null) seg.append(el("span", { class: "used", style: "width:" + share(u, a) + "%" }));
    b.append(seg);
  }
  return b;
}

function renderNode(n) {
  const box = el("div", { class: "node", "data-node": n.name },
    el("h3", {}, n.name, n.nri ? null : el("span", { class: "muted" }, " · " + t("noNRI"))));
  if (n.error) box.append(el("p", { class: "bad" }, t("noInventory", n.error)));
  for (const c of n.cards) {
    box.append(el("div", { class: "card", "data-uuid": c.uuid, "data-index": c.index },
      el("div", { class: "card-name" }, t("card", c.index) + " " + c.model,
        el("small", {}, t("numaNode", c.numa) + " · " + c.uuid), c.healthy ? null : el("small", { class: "bad" }, t("cardUnhealthy"))),
      el("div", {}, bar("memory", c, c.memoryMiB, c.holders, (h) => h.memoryMiB, (h) => h.usedMemoryMiB),
        el("div", { class: "bar-label" }, t("memoryBar", gib(c.allocatedMemoryMiB), gib(c.memoryMiB)) +
          (c.usedMemoryMiB !== undefined ? " · " + t("legendUsed") + " " + gib(c.usedMemoryMiB) : ""))),
      el("div", {}, bar("cores", c, c.cores, c.holders, (h) => h.cores, (h) => h.usedCores),
        el("div", { class: "bar-label" }, t("coresBar", c.allocatedCores, c.cores) +
          (c.usedCores !== undefined ? " · " + t("legendUsed") + " " + pct(c.usedCores) : ""))),
      el("div", { class: "slots" }, t("slots", c.allocatedSlots, c.slots), c.exclusive ? el("small", { class: "muted" }, " " + t("exclusive")) : null)));
  }
  return box;
}

function renderNodes(p) {
  $("nodes-count").textContent = "(" + p.total + ")";
  const list = $("node-list");
  list.replaceChildren(...(p.items.length ? p.items.map(renderNode) : [el("p", { class: "muted" }, t("noNodes"))]));
  pager("nodes-pager", "nodes", p);
}

function renderPods(p) {
  $("pods-count").textContent = "(" + p.total + ")";
  const body = $("pod-table").tBodies[0];
  const rows = [];
  for (const x of p.items) {
    x.containers.forEach((c, i) => {
      rows.push(el("tr", { "data-pod": x.namespace + "/" + x.name },
        el("td", {}, i === 0 ? x.namespace + "/" + x.name : ""),
        el("td", {}, i === 0 ? x.node : ""),
        el("td", {}, c.name),
        el("td", { class: "limits" }, Object.entries(c.limits).sort().map(([k, v]) => k + "=" + v).join(" ")),
        el("td", {}, c.cards.map((d) => el("div", {},
          t("cardUse", d.model, d.index, d.memoryMiB, d.usedMemoryMiB === undefined ? t("usedUnknown") : Math.round(d.usedMemoryMiB) + " MiB",
            d.cores, d.usedCores === undefined ? t("usedUnknown") : pct(d.usedCores)))))));
    });
  }
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, t("noPods")))]));
  pager("pods-pager", "pods", p);
}

const loaders = {
  overview: async () => {
    const o = await api("api/overview");
    state.gen = Math.max(state.gen, o.gen);
    renderOverview(o);
  },
  pending: async () => renderPending(await api("api/pending", { offset: state.pending, limit: PAGE.pending })),
  nodes: async () => renderNodes(await api("api/nodes", { offset: state.nodes, limit: PAGE.nodes })),
  pods: async () => renderPods(await api("api/pods", { offset: state.pods, limit: PAGE.pods })),
};

// refresh reloads the named parts (all by default); a failure shows in the
// status line and leaves the part as it was.
async function refresh(...parts) {
  if (!parts.length) parts = Object.keys(loaders);
  await Promise.all(parts.map((k) => loaders[k]().catch((e) => { $("live").textContent = String(e); })));
  document.body.dataset.gen = String(state.gen);
  // The first complete render, for the performance figures (docs/dashboard.md).
  if (!performance.getEntriesByName("mosaic-rendered").length) performance.mark("mosaic-rendered");
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("mosaic-theme", theme);
  $("theme").textContent = theme === "dark" ? t("themeLight") : t("themeDark");
}

function syncURL() {
  const q = new URLSearchParams(filters());
  for (const [k, v] of [...q.entries()]) if (v === "") q.delete(k);
  if (params.get("lang")) q.set("lang", params.get("lang"));
  history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
}

function debounce(fn, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

async function writeSpec(ev) {
  ev.preventDefault();
  const f = new FormData($("helper-form"));
  const [vendor, model] = (f.get("model") || "|").split("|");
  const q = new URLSearchParams({
    name: f.get("name"), namespace: f.get("namespace"), vendor: vendor || "NVIDIA", model: model || "",
    count: f.get("count"), memory: f.get("memory"), cores: f.get("cores"), numa: f.get("numa") ? "true" : "false",
  });
  const r = await fetch("api/podspec?" + q);
  const text = await r.text();
  $("yaml-error").textContent = r.ok ? "" : text;
  $("yaml-out").textContent = r.ok ? text : "";
}

function start() {
  applyStrings();
  for (const [k, id] of [["q", "q"], ["node", "f-node"], ["model", "f-model"], ["namespace", "f-namespace"], ["pod", "f-pod"]]) {
    if (params.get(k)) {
      const e = $(id);
      if (e.tagName === "SELECT") e.append(el("option", { value: params.get(k) }, params.get(k)));
      e.value = params.get(k);
    }
  }
  setTheme(document.documentElement.dataset.theme || "light");
  $("theme").onclick = () => setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  const onFilter = debounce(() => { state.nodes = state.pods = state.pending = 0; syncURL(); refresh("pending", "nodes", "pods"); }, 150);
  for (const id of ["q", "f-node", "f-pod"]) $(id).addEventListener("input", onFilter);
  for (const id of ["f-model", "f-namespace"]) $(id).addEventListener("change", onFilter);
  $("helper-form").addEventListener("submit", writeSpec);
  $("copy-yaml").onclick = async () => {
    try { await navigator.clipboard.writeText($("yaml-out").textContent); $("copy-yaml").textContent = t("copied"); } catch (e) { /* no clipboard: select by hand */ }
  };
  refresh();
  const events = new EventSource("api/events");
  events.addEventListener("change", (e) => {
    const gen = Number(e.data);
    $("live").textContent = t("live") + " · " + t("updated", new Date().toLocaleTimeString());
    if (gen > state.gen) { state.gen = gen; refresh(); }
  });
  events.onerror = () => { $("live").textContent = t("reconnecting"); };
}

start();
