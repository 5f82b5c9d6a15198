// storemon's page: the open alerts; trigger a report, watch it, download it, chart it; an SLA
// period's availability across stores; open one store's week to see how each of its numbers
// was made.
// No framework, no build, no charting library: the charts are small hand-written SVG.
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
    const warnings = (body.warnings || []).length ? ` · ${body.warnings.join("; ")}` : "";
    line.textContent = body.status === "ok"
      ? `Service ready${poll}${warnings}`
      : `Service degraded: ${body.reasons.join("; ")}${poll}${warnings}`;
  } catch (error) {
    line.dataset.status = "unavailable";
    line.textContent = `The API is not answering (${error.message})`;
  }
}

// --- the open alerts ---------------------------------------------------------------------------
// Each store links to its week at the alert: the link GET /alerts gives (timeline_url).

async function loadAlerts() {
  const section = $("#alerts");
  const message = $("#alerts-message");
  let body;
  try {
    body = await getJson("/alerts?state=open");
  } catch (error) {
    section.dataset.state = "error";
    message.dataset.kind = "error";
    message.textContent = `Cannot list the open alerts: ${error.message}`;
    return;
  }
  const poll = body.as_of ? `, as of the latest poll ${when(body.as_of)} UTC` : "";
  message.dataset.kind = "info";
  message.textContent = body.alerts.length ? "" : `No open alerts${poll}.`;
  $("#alerts-caption").textContent =
    `Stores down long enough in their business hours to raise an alert${poll}.`;
  $("#alerts-open").hidden = !body.alerts.length;
  $("#alerts-open tbody").replaceChildren(...body.alerts.map((alert) => {
    const clock = zoneClock(alert.timezone);
    return el("tr", { dataset: { alertId: alert.alert_id, storeId: alert.store_id } },
      el("td", { class: "mono" },
        el("a", { href: alert.timeline_url, class: "store-link" }, alert.store_id)),
      el("td", {}, when(alert.down_since)),
      el("td", {}, clock.known
        ? `${clock.label(ms(alert.down_since))} ${alert.timezone}` : alert.timezone),
      el("td", { class: "number" }, alert.business_minutes_down.toFixed(2)));
  }));
  section.dataset.state = body.alerts.length ? "open" : "none";
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
      loadFleet();  // the run may have added a partition
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
  try {
    await saveCsv(`/reports/${reportId}/csv`, `report_${reportId}.csv`);
  } catch (error) {
    say(`Could not download the report: ${error.message}`, "error");
  }
}

// A fetch, not a plain link: the request may need the Authorization header. The file is
// `name`, or as the server names it (Content-Disposition).
async function saveCsv(path, name = null) {
  const response = await api(path, { headers: { Accept: "text/csv" } });
  const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name || (named ? named[1] : "download.csv") });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
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
  // Each store links to its week as of this report's instant: the numbers there are this row's.
  $("#worst tbody").replaceChildren(...summary.worst.map((store) => el(
    "tr", {},
    el("td", { class: "mono" },
      el("a", { href: storeHash(store.store_id, summary.as_of), class: "store-link" }, store.store_id)),
    el("td", { class: "number" }, pct(store.uptime_percent)),
    el("td", { class: "number" }, store.uptime_last_week.toFixed(2)),
    el("td", { class: "number" }, store.downtime_last_week.toFixed(2)),
  )));
}

// bins: [{ lower, upper, stores }] in percent; `marker`: a percent to draw a dashed line at.
function drawHistogram(container, bins, {
  what = "Stores by last-week uptime share",
  axis = "uptime share of last week's business time (%)",
  marker = null,
} = {}) {
  const width = 720, height = 260;
  const margin = { top: 16, right: 12, bottom: 40, left: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const most = Math.max(1, ...bins.map((bin) => bin.stores));
  const barW = plotW / bins.length;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "histogram", "aria-label": what,
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
    axis));
  if (marker != null) {
    const x = (marker / 100) * plotW;
    const line = svg("line", { x1: x, x2: x, y1: -6, y2: plotH, class: "target" });
    line.append(svg("title", {}, `target ${marker} %`));
    plot.append(line);
  }
  plot.append(svg("text", {
    x: -plotH / 2, y: -42, class: "axis", "text-anchor": "middle", transform: "rotate(-90)",
  }, "stores"));
  container.replaceChildren(chart);
}

// --- time helpers --------------------------------------------------------------------------

const HOUR_MS = 3_600_000;
const ms = (text) => Date.parse(text);
const sharePct = (share) => (share == null ? "–" : `${(share * 100).toFixed(1)} %`);
const hours = (milliseconds) => milliseconds / HOUR_MS;

function formatHours(h) {
  return h < 1 ? `${Math.round(h * 60)} min` : `${Number(h.toFixed(2))} h`;
}

// A clock in the store's own zone, for tooltips and the hour grid. The browser knows the IANA
// zones the feeds use; should it not know one, the page says UTC rather than guess an offset.
function zoneClock(zone) {
  let format;
  try {
    format = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, weekday: "short", day: "numeric", month: "short",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
  } catch (_) {
    format = null;
  }
  const parts = (instant) => Object.fromEntries(
    format.formatToParts(new Date(instant)).map((part) => [part.type, part.value]));
  return {
    known: format !== null,
    // "Wed 18 Jan 09:00" (":SS" only when not zero)
    label(instant) {
      if (!format) return `${when(new Date(instant).toISOString())} UTC`;
      const p = parts(instant);
      const seconds = p.second === "00" ? "" : `:${p.second}`;
      return `${p.weekday} ${p.day} ${p.month} ${p.hour}:${p.minute}${seconds}`;
    },
    // the local wall-clock hour and minute, for the grid lines
    hourMinute(instant) {
      const p = parts(instant);
      return [Number(p.hour), Number(p.minute)];
    },
  };
}

// "2023-01-18" (a local calendar date) -> "Wed 18 Jan", independent of the browser's zone
function dayLabel(date) {
  return new Date(`${date}T12:00:00Z`).toLocaleDateString("en-GB", {
    timeZone: "UTC", weekday: "short", day: "numeric", month: "short",
  });
}

// "09:30:00" -> "09:30" (seconds only when not zero)
const clockText = (text) => (text.endsWith(":00") ? text.slice(0, 5) : text);

// A weekly or special row's local times; an end not after the start is the next day's.
function rowSpan(row) {
  if (row.start_local === row.end_local) return "all day";
  const next = row.end_local < row.start_local ? " (next day)" : "";
  return `${clockText(row.start_local)}–${clockText(row.end_local)}${next}`;
}

// "closed: Lunar New Year", "special hours 10:00–14:00: inventory"
function specialText(special) {
  const what = special.closed
    ? "closed"
    : `special hours ${special.windows.map(rowSpan).join(", ")}`;
  return special.reason ? `${what}: ${special.reason}` : what;
}

// What the date would have had without its special rows.
function replacedText(special) {
  if (special.replaced_open_24x7) return "open 24x7";
  if (!special.replaced_weekly.length) return `closed on ${special.day}s`;
  return special.replaced_weekly.map(rowSpan).join(", ");
}

// --- the store's week: where it lives in the URL --------------------------------------------
// The view is in the URL hash (#store=<id>&as_of=<ISO>): a store's week can be linked to, and
// the back button returns to the front page or to the store seen before.

function storeHash(storeId, asOf) {
  const params = new URLSearchParams({ store: storeId });
  if (asOf) params.set("as_of", asOf);
  return `#${params}`;
}

function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  const storeId = params.get("store");
  if (storeId) openStore(storeId, params.get("as_of"));
  else setView("front");
}

function setView(view) {
  document.body.dataset.view = view;
}

// The as-of field shows seconds in UTC; the hash may hold microseconds. Remember both, so that
// searching another store "as of" an untouched field keeps the exact instant.
let shownAsOf = { exact: null, field: "" };

function asOfField(asOf) {
  const instant = asOf ? new Date(asOf) : null;
  if (!instant || Number.isNaN(instant.getTime())) return "";
  return instant.toISOString().slice(0, 19);
}

function searchStore(event) {
  event.preventDefault();
  const storeId = $("#store-id").value.trim();
  const field = $("#store-as-of").value;
  let asOf = null;
  if (field && field === shownAsOf.field) asOf = shownAsOf.exact;
  else if (field) asOf = `${field.length === 16 ? `${field}:00` : field}Z`;  // the field is UTC
  const hash = storeHash(storeId, asOf);
  if (location.hash === hash) route();  // the same address: no hashchange, so load it again
  else location.hash = hash;
}

// --- the store's week: loading ---------------------------------------------------------------

let storeTicket = 0;  // the newest store asked for: an older answer arriving late is dropped

function storeSay(text, kind = "info") {
  const message = $("#store-message");
  message.textContent = text;
  message.dataset.kind = kind;
}

async function openStore(storeId, asOf) {
  const ticket = ++storeTicket;
  setView("store");
  window.scrollTo(0, 0);
  $("#store-id").value = storeId;
  $("#store-as-of").value = asOfField(asOf);
  // read back: the browser normalises the field's text (drops ":00" seconds)
  shownAsOf = { exact: asOf, field: $("#store-as-of").value };
  $("#store-title").textContent = storeId;
  const section = $("#timeline");
  section.dataset.storeId = storeId;
  section.dataset.state = "loading";
  $("#store-body").hidden = true;
  storeSay("Loading the store's week…");

  const query = asOf ? `?${new URLSearchParams({ as_of: asOf })}` : "";
  let timeline;
  try {
    timeline = await getJson(`/stores/${encodeURIComponent(storeId)}/timeline${query}`);
  } catch (error) {
    if (ticket !== storeTicket) return;
    section.dataset.state = "error";
    storeSay(storeErrorText(storeId, error), "error");
    return;
  }
  if (ticket !== storeTicket) return;
  renderTimeline(timeline);
  section.dataset.asOf = timeline.as_of;
  section.dataset.state = "ready";
  storeSay("");
  loadStoreHistory(storeId, timeline.as_of, ticket);
}

// What went wrong, in words, for the message line (never an exception on the page).
function storeErrorText(storeId, error) {
  switch (error.status) {
    case 404: return `No store “${storeId}” in the data (${error.message}).`;
    case 422: return `“${storeId}” is not a store id: ${error.message}.`;
    case 401: return "This server needs an access token: enter it above, then search again.";
    case 503: return `The service is busy (${error.message}); try again in a few seconds.`;
    default: return `Could not load the store's week: ${error.message}`;
  }
}

function renderTimeline(t) {
  const clock = zoneClock(t.timezone);
  $("#store-caption").textContent =
    `As of ${when(t.as_of)} UTC (${clock.label(ms(t.as_of))} in the store's time) · ` +
    `the week reported: ${when(t.week.start)} → ${when(t.week.end)} UTC.`;
  drawWeek($("#store-week"), t, clock);
  renderValues(t);
  renderFacts(t);
  renderSource(t.source);
  $("#store-body").hidden = false;
}

// --- the store's week: the six values, the facts, where the numbers came from ----------------

// The report's units: minutes for the last hour, hours for the last day and week.
const PERIODS = [
  { period: "hour", unit: "min" },
  { period: "day", unit: "h" },
  { period: "week", unit: "h" },
];

function renderValues(t) {
  const body = $("#store-values tbody");
  if (!t.values) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 4 },
      "No poll at or before this instant: the report has no row for this store.")));
    return;
  }
  body.replaceChildren(...PERIODS.map(({ period, unit }) => {
    const up = t.values[`uptime_last_${period}`];
    const down = t.values[`downtime_last_${period}`];
    const cell = (field, value) => el("td", {
      class: "number", dataset: { field, value: String(value) },
    }, `${value.toFixed(2)} ${unit}`);
    return el("tr", { dataset: { period } },
      el("th", { scope: "row" }, period),
      cell(`uptime_last_${period}`, up),
      cell(`downtime_last_${period}`, down),
      el("td", { class: "number" }, up + down > 0 ? sharePct(up / (up + down)) : "closed"));
  }));
}

function renderFacts(t) {
  const zone = t.timezone_defaulted
    ? `${t.timezone} (the default: the feed has no valid time zone for this store)`
    : t.timezone;
  const used = t.polls.filter((poll) => poll.used).length;
  const sequence = t.sequence === "all polls"
    ? `all polls: none fell in business hours, so every poll counts (${used} shown)`
    : `the polls in business hours (${used} used, ${t.polls.length - used} outside hours ignored)`;
  const facts = [
    ["Time zone", zone],
    ["Business hours", businessHoursList(t)],
    ...(t.special_dates.length ? [["Special dates", specialDatesList(t)]] : []),
    ["Polls used", sequence],
  ];
  $("#store-facts").replaceChildren(...facts.flatMap(([term, detail]) => [
    el("dt", {}, term), el("dd", {}, detail),
  ]));
}

// The weekly rows as the feed has them, one line per weekday (local times); a weekday with a
// special date this week says which date keeps other hours.
function businessHoursList(t) {
  if (t.open_24x7) return "open 24x7 by default (the feed has no business hours for this store)";
  const byDay = new Map();
  for (const row of [...t.business_hours].sort((a, b) => a.day_of_week - b.day_of_week)) {
    byDay.set(row.day, [...(byDay.get(row.day) || []), rowSpan(row)]);
  }
  return el("ul", { class: "hours-list" }, ...[...byDay].map(([day, spans]) => {
    const dates = t.special_dates.filter((special) => special.day === day).map((s) => dayLabel(s.date));
    return el("li", {}, `${day.slice(0, 3)} ${spans.join(", ")}`,
      dates.length ? el("span", { class: "special-note" }, ` (not on ${dates.join(", ")})`) : "");
  }));
}

// The special dates of the week: their hours and reason, and what they replaced.
function specialDatesList(t) {
  return el("ul", { class: "hours-list special-list" }, ...t.special_dates.map((special) => el(
    "li", { dataset: { date: special.date } },
    `${dayLabel(special.date)}: ${specialText(special)} (instead of ${replacedText(special)})`,
  )));
}

function renderSource(source) {
  const line = $("#source");
  if (!source) {
    line.replaceChildren("Computed for this page: no stored report partition is as of exactly "
      + "this instant.");
    return;
  }
  const link = (href, cls, text) =>
    el("a", { href, class: cls, target: "_blank", rel: "noopener" }, text);
  line.replaceChildren(
    "These numbers are report partition ",
    link(source.dagster_partition_url, "partition", source.partition),
    ", made by Dagster run ",
    link(source.dagster_run_url, "run", source.run_id.slice(0, 8)),
    ".",
  );
}

// --- the store's week: the timeline ------------------------------------------------------------
// One row per local calendar day, all on one scale (a 23-hour day of a daylight-saving change is
// shorter), so a band's width is its duration wherever it is. Anything that crosses midnight
// (an overnight window, a run, a 24x7 store's time) is cut at the row's ends.

const WEEK = { width: 760, label: 84, right: 44, top: 24, rowH: 30, gap: 8, bottom: 6 };
const ROW = { band: [9, 12], run: [24, 4], poll: 4.5 };  // [y, height] within a row

function drawWeek(container, t, clock) {
  const days = t.days.map((day) => ({ ...day, start: ms(day.start_utc), end: ms(day.end_utc) }));
  const plotW = WEEK.width - WEEK.label - WEEK.right;
  const longest = Math.max(24 * HOUR_MS, ...days.map((day) => day.end - day.start));
  const pxPerMs = plotW / longest;
  const height = WEEK.top + days.length * (WEEK.rowH + WEEK.gap) + WEEK.bottom;
  const chart = svg("svg", {
    viewBox: `0 0 ${WEEK.width} ${height}`, role: "img", class: "week",
    "aria-label": `Store ${t.store_id}: business hours, up and down time and polls, per local day`,
  });
  for (let h = 0; h <= 24; h += 6) {
    chart.append(svg("text", {
      x: WEEK.label + h * HOUR_MS * pxPerMs, y: WEEK.top - 8, class: "tick", "text-anchor": "middle",
    }, `${String(h).padStart(2, "0")}:00`));
  }
  const intervals = {
    outside: [[-Infinity, ms(t.week.start)], [ms(t.week.end), Infinity]],
    hours: t.business_windows.map((w) => [ms(w.start_utc), ms(w.end_utc)]),
  };
  const specials = new Map(t.special_dates.map((special) => [special.date, special]));
  days.forEach((day, i) => {
    const special = specials.get(day.date);
    const row = svg("g", {
      class: special ? "day special" : "day",
      transform: `translate(${WEEK.label},${WEEK.top + i * (WEEK.rowH + WEEK.gap)})`,
      "data-date": day.date, "data-start": day.start_utc, "data-end": day.end_utc,
      ...(special ? { "data-special": specialText(special) } : {}),
    });
    drawDay(row, day, t, clock, pxPerMs, intervals);
    if (special) drawSpecial(row, day, special, pxPerMs, intervals);
    chart.append(row);
  });
  container.replaceChildren(chart);
}

function drawDay(row, day, t, clock, pxPerMs, intervals) {
  const x = (instant) => (instant - day.start) * pxPerMs;
  const width = day.end - day.start;
  // The part of [start, end) on this row as a rect, or nothing when they do not meet.
  const piece = (start, end, cls, [y, h], title) => {
    const from = Math.max(start, day.start);
    const to = Math.min(end, day.end);
    if (to <= from) return;
    const rect = svg("rect", { x: x(from), width: x(to) - x(from), y, height: h, class: cls });
    if (title) rect.append(svg("title", {}, title));
    row.append(rect);
  };
  const span = (start, end) =>
    `${clock.label(start)} – ${clock.label(end)} (${formatHours(hours(end - start))})`;
  const full = [0, WEEK.rowH];

  row.append(svg("text", { x: -8, y: WEEK.rowH / 2 + 4, class: "day-label", "text-anchor": "end" },
    dayLabel(day.date)));
  if (Math.abs(width - 24 * HOUR_MS) > 1000) {  // a daylight-saving day: say how long it is
    row.append(svg("text", { x: x(day.end) + 6, y: WEEK.rowH / 2 + 4, class: "tick" },
      `${formatHours(hours(width))}`));
  }
  piece(day.start, day.end, "span", full);
  for (const [start, end] of intervals.outside) piece(start, end, "outside", full);
  for (const [start, end] of intervals.hours) {
    piece(start, end, "hours", full, `open: ${span(start, end)}`);
  }
  drawHourGrid(row, day, clock, x);
  for (const r of t.status_runs) {
    const start = ms(r.start), end = ms(r.end);
    piece(start, end, `run ${statusClass(r.status)}`, ROW.run,
      `interpolated ${r.status}: ${span(start, end)}`);
  }
  for (const s of t.segments) {
    const start = ms(s.start), end = ms(s.end);
    const word = statusClass(s.status);
    piece(start, end, `band ${word}`, ROW.band, `${word}: ${span(start, end)}`);
  }
  for (const poll of t.polls) drawPoll(row, day, poll, clock, x);
  const asOf = ms(t.as_of);
  if (asOf >= day.start && asOf <= day.end) {
    const line = svg("line", { x1: x(asOf), x2: x(asOf), y1: -3, y2: WEEK.rowH + 3, class: "as-of" });
    line.append(svg("title", {}, `as of ${clock.label(asOf)}`));
    row.append(line);
  }
}

const statusClass = (status) => (status === "active" ? "up" : "down");

// A special date: a dashed frame round its row, and its words (closed or its hours, and the
// reason) in the larger free end of the row, so they hide little of the bands; without room
// for the hours (the bands show them), the words name the reason only.
function drawSpecial(row, day, special, pxPerMs, intervals) {
  const width = (day.end - day.start) * pxPerMs;
  const title = `${dayLabel(day.date)}: ${specialText(special)} (instead of ${replacedText(special)})`;
  const frame = svg("rect", {
    x: -1, y: -2, width: width + 2, height: WEEK.rowH + 4, rx: 3, class: "special-date",
  });
  frame.append(svg("title", {}, title));
  row.append(frame);
  const open = intervals.hours.filter(([start, end]) => start < day.end && end > day.start);
  const left = Math.min(day.end, ...open.map(([start]) => start)) - day.start;
  const right = day.end - Math.max(day.start, ...open.map(([, end]) => end));
  const room = Math.max(left, right, (day.end - day.start) / 2) * pxPerMs - 8;
  const short = special.closed || !special.reason ? specialText(special)
    : `special hours: ${special.reason}`;
  const fits = (text) => text.length * 6.5 <= room;  // 11px bold, about 6.5px a character
  let words = [specialText(special), short].find(fits) || short;
  if (!fits(words)) words = `${words.slice(0, Math.max(12, Math.floor(room / 6.5) - 1))}…`;
  const label = svg("text", {
    x: right >= left ? width - 4 : 4, y: WEEK.rowH / 2 + 4, class: "special-label",
    "text-anchor": right >= left ? "end" : "start",
  }, words);
  label.append(svg("title", {}, title));
  row.append(label);
}

function drawPoll(row, day, poll, clock, x) {
  const at = ms(poll.ts);
  if (at < day.start || at >= day.end) return;
  const used = poll.used ? "used" : "unused";
  const mark = svg("circle", {
    cx: x(at), cy: ROW.poll, r: 3.2, class: `poll ${used} ${statusClass(poll.status)}`,
  });
  const why = poll.used ? "used" : `not used: ${poll.unused_reason || "not in the sequence"}`;
  mark.append(svg("title", {},
    `poll ${clock.label(at)} (${when(poll.ts)} UTC): ${poll.status}, ${why}`));
  row.append(mark);
}

// Faint lines at local 06:00, 12:00 and 18:00, found with the zone's own clock (so they are
// right on a daylight-saving day, and for zones half an hour off UTC).
function drawHourGrid(row, day, clock, x) {
  if (!clock.known) return;
  const step = 15 * 60_000;
  for (let instant = day.start + step; instant < day.end; instant += step) {
    const [hour, minute] = clock.hourMinute(instant);
    if (minute === 0 && hour % 6 === 0) {
      row.append(svg("line", { x1: x(instant), x2: x(instant), y1: 0, y2: WEEK.rowH, class: "grid" }));
    }
  }
}

// --- line charts: a store's and the fleet's uptime share over the report partitions ----------

const LINE = { width: 720, height: 210, top: 12, right: 16, bottom: 34, left: 52 };

// points: [{ at: ms, share: 0..1, title, href? }], oldest first. The line breaks where
// partitions are missing (more than an hour and a half apart), rather than bridge a gap.
function drawLineChart(container, points, { yLabel, current }) {
  const plotW = LINE.width - LINE.left - LINE.right;
  const plotH = LINE.height - LINE.top - LINE.bottom;
  const first = points[0].at, last = points[points.length - 1].at;
  const [x0, x1] = first === last ? [first - HOUR_MS, last + HOUR_MS] : [first, last];
  const lowest = Math.min(...points.map((p) => p.share));
  const floor = Math.max(0, Math.floor(lowest * 10) / 10 - 0.1);  // room below the lowest point
  const xOf = (at) => ((at - x0) / (x1 - x0)) * plotW;
  const yOf = (share) => plotH - ((share - floor) / (1 - floor)) * plotH;

  const chart = svg("svg", {
    viewBox: `0 0 ${LINE.width} ${LINE.height}`, role: "img", class: "line-chart-svg",
  });
  const plot = svg("g", { transform: `translate(${LINE.left},${LINE.top})` });
  chart.append(plot);
  for (let i = 0; i <= 4; i += 1) {
    const share = floor + ((1 - floor) * i) / 4;
    plot.append(svg("line", { x1: 0, x2: plotW, y1: yOf(share), y2: yOf(share), class: "grid" }));
    plot.append(svg("text", { x: -8, y: yOf(share) + 4, class: "tick", "text-anchor": "end" },
      `${Math.round(share * 100)} %`));
  }
  for (const tick of timeTicks(x0, x1)) {
    const x = xOf(tick.at);
    plot.append(svg("line", { x1: x, x2: x, y1: plotH, y2: plotH + 4, class: "axis-line" }));
    plot.append(svg("text", { x, y: plotH + 16, class: "tick", "text-anchor": "middle" }, tick.label));
  }
  plot.append(svg("text", { x: plotW / 2, y: plotH + 31, class: "axis", "text-anchor": "middle" },
    "report partition (UTC)"));
  plot.append(svg("text", {
    x: -plotH / 2, y: -40, class: "axis", "text-anchor": "middle", transform: "rotate(-90)",
  }, yLabel));

  const d = points.map((p, i) => {
    const gap = i === 0 || p.at - points[i - 1].at > 1.5 * HOUR_MS;
    return `${gap ? "M" : "L"}${xOf(p.at).toFixed(1)},${yOf(p.share).toFixed(1)}`;
  }).join("");
  plot.append(svg("path", { d, class: "line" }));
  const radius = points.length > 60 ? 1.6 : 3;  // a week of hours: dots small; a few: visible
  for (const p of points) {
    const dot = svg("circle", {
      cx: xOf(p.at), cy: yOf(p.share), r: p.at === current ? 4.5 : radius,
      class: p.at === current ? "point current" : "point",
    });
    dot.append(svg("title", {}, p.title));
    if (p.href) dot.addEventListener("click", () => { location.hash = p.href; });
    plot.append(dot);
  }
  container.replaceChildren(chart);
}

// Ticks on whole UTC hours: every 1, 3, 6 or 12 hours, or every day, whichever gives at most 8.
function timeTicks(x0, x1) {
  const step = [1, 3, 6, 12, 24, 48].map((h) => h * HOUR_MS).find((s) => (x1 - x0) / s <= 8)
    || Math.ceil((x1 - x0) / (8 * 24 * HOUR_MS)) * 24 * HOUR_MS;
  const ticks = [];
  for (let at = Math.ceil(x0 / step) * step; at <= x1; at += step) {
    const iso = new Date(at).toISOString();
    const midnight = iso.slice(11, 16) === "00:00";
    const date = new Date(at).toLocaleDateString("en-GB",
      { timeZone: "UTC", day: "numeric", month: "short" });
    ticks.push({ at, label: midnight ? date : iso.slice(11, 16) });
  }
  return ticks;
}

function chartMessage(container, state, text) {
  container.dataset.state = state;
  container.replaceChildren(el("p", { class: "chart-message" }, text));
}

async function loadStoreHistory(storeId, asOf, ticket) {
  const container = $("#store-history");
  chartMessage(container, "loading", "Loading the history…");
  // The two weeks before the as-of (and a day after): a long retention must not make the chart
  // read months of rows.
  const range = new URLSearchParams({
    from: new Date(ms(asOf) - 14 * 24 * HOUR_MS).toISOString(),
    to: new Date(ms(asOf) + 24 * HOUR_MS).toISOString(),
  });
  let rows;
  try {
    rows = (await getJson(`/stores/${encodeURIComponent(storeId)}/history?${range}`)).rows;
  } catch (error) {
    if (ticket !== storeTicket) return;
    const text = error.status === 404
      ? "No report partition holds this store yet: no history to chart."
      : `Could not load the history: ${error.message}`;
    chartMessage(container, error.status === 404 ? "empty" : "error", text);
    return;
  }
  if (ticket !== storeTicket) return;
  // The last-day share; an hour whose last day held no business time has no share to plot.
  const points = rows
    .filter((row) => row.uptime_last_day + row.downtime_last_day > 0)
    .map((row) => {
      const open = row.uptime_last_day + row.downtime_last_day;
      const share = row.uptime_last_day / open;
      return {
        at: ms(row.as_of), share, href: storeHash(storeId, row.as_of),
        title: `partition ${row.partition}: up ${sharePct(share)} of the last day's ` +
          `${formatHours(open)} of business time (click: the week as of then)`,
      };
    });
  if (!points.length) {
    chartMessage(container, "empty", "No report partition saw business time for this store.");
    return;
  }
  drawLineChart(container, points, { yLabel: "up, share of the last day", current: ms(asOf) });
  container.dataset.state = "ready";
}

async function loadFleet() {
  const container = $("#fleet-history");
  let rows;
  try {
    rows = (await getJson("/fleet/history")).rows;
  } catch (error) {
    chartMessage(container, "error", `Could not load the fleet's history: ${error.message}`);
    return;
  }
  const points = rows.filter((row) => row.uptime_share_hour != null).map((row) => ({
    at: ms(row.as_of), share: row.uptime_share_hour,
    title: `partition ${row.partition}: ${sharePct(row.uptime_share_hour)} of the last hour's ` +
      `business time up, across ${row.stores} stores`,
  }));
  if (!points.length) {
    chartMessage(container, "empty", "No report partition yet: generate a report.");
    return;
  }
  drawLineChart(container, points, { yLabel: "up, share of the hour" });
  container.dataset.state = "ready";
}

// --- the SLA view: a month or a UTC range, against a target -----------------------------------

const SLA_BELOW_SHOWN = 25;
let slaTicket = 0;  // the newest period asked for: an older answer arriving late is dropped

function slaSay(text, kind = "info") {
  const message = $("#sla-message");
  message.textContent = text;
  message.dataset.kind = kind;
}

// The months to pick from, newest first: the saved ones and those the polls span. The newest
// is picked, and shown.
async function loadSlaMonths() {
  let months;
  try {
    months = (await getJson("/sla/months")).months;
  } catch (error) {
    slaSay(`Could not list the months: ${error.message}`, "error");
    return;
  }
  const select = $("#sla-month");
  select.replaceChildren(
    ...months.map((m) => el("option", { value: m.month }, m.saved ? `${m.month} (saved)` : m.month)),
    el("option", { value: "" }, "from/to →"),
  );
  if (!months.length) {
    slaSay("No polls yet: nothing to compute an SLA on.");
    return;
  }
  select.value = months[0].month;
  showSla();
}

// The period the form asks for, as the query of GET /sla.
function slaQuery() {
  const params = new URLSearchParams();
  const month = $("#sla-month").value;
  if (month) {
    params.set("month", month);
  } else {
    const utc = (field) => (field.length === 16 ? `${field}:00Z` : `${field}Z`);  // the fields are UTC
    if ($("#sla-from").value) params.set("from", utc($("#sla-from").value));
    if ($("#sla-to").value) params.set("to", utc($("#sla-to").value));
  }
  const target = $("#sla-target").value.trim();
  if (target) params.set("target", target);
  return params;
}

async function showSla(event) {
  if (event) event.preventDefault();
  const ticket = ++slaTicket;
  const section = $("#sla");
  const query = slaQuery();
  section.dataset.state = "loading";
  slaSay("Computing the period…");
  let sla;
  try {
    sla = await getJson(`/sla?${query}`);
  } catch (error) {
    if (ticket !== slaTicket) return;
    section.dataset.state = "error";
    slaSay(error.status === 503
      ? `The service is busy (${error.message}); try again in a few seconds.`
      : `Could not compute the period: ${error.message}`, "error");
    return;
  }
  if (ticket !== slaTicket) return;
  renderSla(sla);
  section.dataset.period = sla.period.name;
  section.dataset.state = "ready";
  slaSay("");
}

function renderSla(sla) {
  const pct = (value) => (value == null ? "–" : `${value.toFixed(2)} %`);
  const { summary, period } = sla;
  $("#sla-target").placeholder = String(sla.target_pct);
  $("#sla-fleet").textContent = pct(summary.availability_pct);
  const span = period.local
    ? `${period.name}, each store's local ${period.kind}`
    : `${when(period.start)} → ${when(period.end)} UTC`;
  const closed = summary.stores_without_business_time
    ? `, ${summary.stores_without_business_time} without business time` : "";
  $("#sla-caption").textContent =
    `of business time · ${span}, cut at the latest poll ${when(sla.latest_poll)} UTC · ` +
    `${summary.stores_below_target} of ${summary.stores} stores below the target of ` +
    `${sla.target_pct} %${closed}.`;
  drawHistogram($("#sla-chart"), sla.bins, {
    what: "Stores by availability over the period",
    axis: "availability: uptime share of the period's business time (%)",
    marker: sla.target_pct,
  });
  // Each store links to its week as of the end of its worst incident: the incident is in it.
  const below = sla.rows.filter((row) => row.target_met === false)
    .sort((a, b) => a.availability_pct - b.availability_pct || (a.store_id < b.store_id ? -1 : 1));
  $("#sla-below tbody").replaceChildren(...below.slice(0, SLA_BELOW_SHOWN).map((row) => {
    const worst = row.worst_incident;
    const asOf = worst ? worst.end : row.period_end;
    return el("tr", { dataset: { storeId: row.store_id } },
      el("td", { class: "mono" },
        el("a", { href: storeHash(row.store_id, asOf), class: "store-link" }, row.store_id)),
      el("td", { class: "number" }, pct(row.availability_pct)),
      el("td", { class: "number" }, row.downtime_hours.toFixed(2)),
      el("td", { class: "number" }, row.incidents),
      el("td", {}, worst
        ? `${when(worst.start)} → ${when(worst.end)} ` +
          `(${formatHours(worst.business_minutes / 60)} of business time)`
        : "–"));
  }));
  $("#sla-more").textContent = below.length > SLA_BELOW_SHOWN
    ? `The ${SLA_BELOW_SHOWN} lowest of ${below.length}; the CSV has every store.`
    : (below.length ? "" : "Every store with business time met the target.");
  $("#sla-download").href = sla.links.csv;
  renderSlaSource(sla.source);
  $("#sla-body").hidden = false;
}

function renderSlaSource(source) {
  const line = $("#sla-source");
  if (source.kind !== "partition") {
    line.replaceChildren("(computed for this page)");
    return;
  }
  const saved = `saved ${when(source.saved_at)} UTC`;
  line.replaceChildren("(the month ", source.dagster_partition_url
    ? el("a", { href: source.dagster_partition_url, class: "partition", target: "_blank", rel: "noopener" }, saved)
    : saved, ")");
}

async function downloadSla(event) {
  event.preventDefault();
  try {
    await saveCsv(event.currentTarget.getAttribute("href"));
  } catch (error) {
    slaSay(`Could not download the CSV: ${error.message}`, "error");
  }
}

// Editing from/to leaves the month; picking a month empties from/to.
function slaRangeEdited() {
  $("#sla-month").value = "";
}

function slaMonthPicked() {
  if (!$("#sla-month").value) return;
  $("#sla-from").value = "";
  $("#sla-to").value = "";
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
    loadAlerts();
    loadReports();
    loadFleet();
    loadSlaMonths();
    route();
  });
  $("#store-search").addEventListener("submit", searchStore);
  $("#sla-form").addEventListener("submit", showSla);
  $("#sla-download").addEventListener("click", downloadSla);
  $("#sla-from").addEventListener("input", slaRangeEdited);
  $("#sla-to").addEventListener("input", slaRangeEdited);
  $("#sla-month").addEventListener("change", slaMonthPicked);
  window.addEventListener("hashchange", route);
  showHealth();
  loadAlerts();
  loadReports();
  loadFleet();
  loadSlaMonths();
  route();
  setInterval(showHealth, 30_000);
  setInterval(loadAlerts, 60_000);
});
