// storemon's page: trigger a report, watch it, download it, chart it. No framework, no build.
// Every value from the server goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "storemon.token";
const $ = (selector) => document.querySelector(selector);

class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

// --- talking to the API ------------------------------------------------------------------

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
  });
  if (response.status === 401) {
    $("#token-box").hidden = false;
  }
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).detail;
    } catch (_) {
      detail = response.statusText;
    }
    throw new HttpError(response.status, detail);
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();

// --- small DOM helpers ---------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function when(text) {
  if (!text) return "–";
  const instant = new Date(text);
  return Number.isNaN(instant.getTime()) ? text : instant.toISOString().slice(0, 19).replace("T", " ");
}

function say(text, kind = "info") {
  const message = $("#message");
  message.textContent = text;
  message.dataset.kind = kind;
}

// --- health --------------------------------------------------------------------------------

async function showHealth() {
  const line = $("#health");
  try {
    const response = await fetch("/health", { headers: { Accept: "application/json" } });
    const body = await response.json();
    line.dataset.status = body.status;
    const latest = body.details && body.details.latest_poll;
    const poll = latest ? ` · latest poll ${when(latest)} UTC` : "";
    line.textContent = body.status === "ok"
      ? `Service ready${poll}`
      : `Service degraded: ${body.reasons.join("; ")}${poll}`;
  } catch (error) {
    line.dataset.status = "unavailable";
    line.textContent = `The API is not answering (${error.message})`;
  }
}

// --- a report: trigger, watch, download ----------------------------------------------------

let watching = null;

async function trigger() {
  const button = $("#trigger");
  button.disabled = true;
  say("");
  try {
    const { report_id: reportId } = await (await api("/trigger_report", { method: "POST" })).json();
    watch(reportId);
  } catch (error) {
    say(`Could not start a report: ${error.message}`, "error");
    button.disabled = false;
  }
}

function watch(reportId) {
  if (watching) clearTimeout(watching.timer);
  const started = Date.now();
  watching = { reportId, timer: null };
  $("#current").hidden = false;
  $("#current-id").textContent = reportId;
  $("#download").hidden = true;
  $("#download").dataset.reportId = reportId;
  setStatus("Running", "");

  const poll = async () => {
    if (!watching || watching.reportId !== reportId) return;
    let report;
    try {
      report = await getJson(`/reports/${reportId}`);
    } catch (error) {
      setStatus("Running", `(cannot ask for the status: ${error.message}; retrying)`);
      watching.timer = setTimeout(poll, POLL_MS * 3);
      return;
    }
    const seconds = Math.round((Date.now() - started) / 1000);
    if (report.status === "Running") {
      setStatus("Running", `(${(report.dagster_status || "").toLowerCase()}, ${seconds} s)`);
      watching.timer = setTimeout(poll, POLL_MS);
      return;
    }
    $("#trigger").disabled = false;
    if (report.status === "Complete") {
      setStatus("Complete", `as of ${when(report.as_of)} UTC, ${report.stores} stores`);
      $("#download").hidden = false;
      showSummary(reportId);
    } else {
      setStatus("Failed", report.error || "");
    }
    loadReports();
  };
  poll();
}

function setStatus(status, detail) {
  const node = $("#current-status");
  node.textContent = status;
  node.dataset.status = status;
  $("#current-detail").textContent = detail;
}

async function download(reportId) {
  // A fetch, not a plain link: the request may need the Authorization header.
  try {
    const blob = await (await api(`/reports/${reportId}/csv`, { headers: { Accept: "text/csv" } })).blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `report_${reportId}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    say(`Could not download the report: ${error.message}`, "error");
  }
}

// --- the list of reports -------------------------------------------------------------------

async function loadReports() {
  const body = $("#reports tbody");
  let reports;
  try {
    reports = (await getJson("/reports")).reports;
  } catch (error) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, `Cannot list reports: ${error.message}`)));
    return;
  }
  if (!reports.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "No reports yet.")));
    return;
  }
  body.replaceChildren(...reports.map((report) => {
    const actions = el("td", { class: "actions" });
    if (report.status === "Complete") {
      actions.append(
        el("button", { type: "button", class: "small", onclick: () => download(report.report_id) }, "CSV"),
        el("button", { type: "button", class: "small", onclick: () => showSummary(report.report_id) }, "Chart"),
      );
    } else if (report.status === "Running") {
      actions.append(el("button", { type: "button", class: "small", onclick: () => watch(report.report_id) }, "Watch"));
    }
    return el(
      "tr",
      { dataset: { reportId: report.report_id, status: report.status } },
      el("td", { class: "mono", title: report.report_id }, report.report_id.slice(0, 8)),
      el("td", {}, when(report.requested || report.created)),
      el("td", { class: `status ${report.status.toLowerCase()}` }, report.status),
      el("td", {}, when(report.as_of)),
      el("td", { class: "number" }, report.stores ?? "–"),
      actions,
    );
  }));
}

// --- the chart -----------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function showSummary(reportId) {
  let summary;
  try {
    summary = await getJson(`/reports/${reportId}/summary?worst=10`);
  } catch (error) {
    say(`Could not load the chart: ${error.message}`, "error");
    return;
  }
  $("#summary").hidden = false;
  $("#summary").dataset.reportId = reportId;
  const pct = (value) => (value == null ? "–" : `${value.toFixed(1)} %`);
  $("#summary-caption").textContent =
    `Report as of ${when(summary.as_of)} UTC: ${summary.stores_with_business_time} of ` +
    `${summary.stores} stores open last week; median uptime ${pct(summary.median_uptime_percent)}, ` +
    `overall ${pct(summary.overall_uptime_percent)}; ${summary.stores_with_full_uptime} never offline.`;
  drawHistogram($("#chart"), summary.bins);
  $("#worst tbody").replaceChildren(...summary.worst.map((store) => el(
    "tr", {},
    el("td", { class: "mono" }, store.store_id),
    el("td", { class: "number" }, pct(store.uptime_percent)),
    el("td", { class: "number" }, store.uptime_last_week.toFixed(2)),
    el("td", { class: "number" }, store.downtime_last_week.toFixed(2)),
  )));
}

function drawHistogram(container, bins) {
  const width = 720, height = 260;
  const margin = { top: 16, right: 12, bottom: 40, left: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const most = Math.max(1, ...bins.map((bin) => bin.stores));
  const barW = plotW / bins.length;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "histogram",
    "aria-label": "Stores by last-week uptime share",
  });
  const plot = svg("g", { transform: `translate(${margin.left},${margin.top})` });
  chart.append(plot);

  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const y = plotH - fraction * plotH;
    plot.append(svg("line", { x1: 0, x2: plotW, y1: y, y2: y, class: "grid" }));
    plot.append(svg("text", { x: -8, y: y + 4, class: "tick", "text-anchor": "end" },
      String(Math.round(fraction * most))));
  }
  bins.forEach((bin, i) => {
    const h = (bin.stores / most) * plotH;
    const bar = svg("rect", {
      x: i * barW + 1, y: plotH - h, width: Math.max(1, barW - 2), height: h,
      class: `bar ${bin.lower >= 90 ? "good" : bin.lower >= 70 ? "fair" : "poor"}`,
    });
    bar.append(svg("title", {}, `${bin.lower}–${bin.upper} %: ${bin.stores} stores`));
    plot.append(bar);
    if (i % 2 === 0) {
      plot.append(svg("text", { x: i * barW, y: plotH + 16, class: "tick", "text-anchor": "middle" },
        `${bin.lower}`));
    }
  });
  plot.append(svg("text", { x: plotW, y: plotH + 16, class: "tick", "text-anchor": "end" }, "100"));
  plot.append(svg("text", { x: plotW / 2, y: plotH + 34, class: "axis", "text-anchor": "middle" },
    "uptime share of last week's business time (%)"));
  plot.append(svg("text", {
    x: -plotH / 2, y: -42, class: "axis", "text-anchor": "middle", transform: "rotate(-90)",
  }, "stores"));
  container.replaceChildren(chart);
}

// --- wiring --------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#trigger").addEventListener("click", trigger);
  $("#download").addEventListener("click", (event) => download(event.target.dataset.reportId));
  $("#refresh").addEventListener("click", loadReports);
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token-box").hidden = true;
    loadReports();
  });
  showHealth();
  loadReports();
  setInterval(showHealth, 30_000);
});
