// The dashboard polls /dashboard/data every two seconds and redraws in place: no reloads.
// Everything from the server goes into the page as text (textContent), never as HTML: call
// records carry client tags and metadata. Links (to a call's trace) are set as attributes, http(s) only.
"use strict";

const POLL_MS = 2000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777"];
const $ = (id) => document.getElementById(id);

function makeChart(id, type, options = {}) {
  return new Chart($(id), {
    type,
    data: { labels: [], datasets: [] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { labels: { boxWidth: 12 } } },
      ...options,
    },
  });
}

const charts = {
  latency: makeChart("chart-latency", "line", { spanGaps: true, scales: { y: { beginAtZero: true } } }),
  traffic: makeChart("chart-traffic", "bar", { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }),
  tokens: makeChart("chart-tokens", "bar", { scales: { x: { stacked: true }, y: { stacked: true } } }),
  cost: makeChart("chart-cost", "bar", { plugins: { legend: { display: false } } }),
  causes: makeChart("chart-causes", "bar", { indexAxis: "y", plugins: { legend: { display: false } } }),
};
window.llmDashboard = { charts, last: null };

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
const seconds = (s) => (s === null || s === undefined ? "–" : `${s.toFixed(2)} s`);
const percent = (x) => `${(100 * x).toFixed(1)}%`;
const usd = (text) => `$${Number(text).toFixed(4)}`;

function setSeries(chart, labels, series) {
  chart.data.labels = labels;
  chart.data.datasets = series.map(([label, data], i) => ({
    label, data, borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
    pointRadius: chart.config.type === "line" ? 2 : 0, borderWidth: 2,
  }));
  chart.update("none");
}

function fillTable(id, rows, cells) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const [text, className] of cells(row)) {
      const td = document.createElement("td");
      if (text instanceof Node) td.append(text);
      else td.textContent = text ?? "";
      if (className) td.className = className;
      tr.append(td);
    }
    return tr;
  }));
}

function renderTotals(totals) {
  $("total-calls").textContent = totals.calls;
  $("total-error-rate").textContent = percent(totals.error_rate);
  $("total-fallback-rate").textContent = percent(totals.fallback_rate);
  $("total-latency").textContent = `${seconds(totals.latency_s.p50)} / ${seconds(totals.latency_s.p95)}`;
  $("total-first-token").textContent = seconds(totals.first_token_s.p50);
  $("total-tokens").textContent = totals.total_tokens.toLocaleString();
  $("total-cost").textContent = usd(totals.cost_usd);
}

function renderCharts(data) {
  const labels = data.timeline.map((p) => clock(p.at));
  const column = (key) => data.timeline.map((p) => p[key]);
  setSeries(charts.latency, labels, [
    ["p50", column("latency_p50_s")], ["p95", column("latency_p95_s")], ["first token p50", column("first_token_p50_s")],
  ]);
  setSeries(charts.traffic, labels, [
    ["calls", column("calls")], ["errors", column("errors")], ["fallback answers", column("fallback_answers")],
  ]);
  const models = Object.keys(data.models);
  setSeries(charts.tokens, models, [
    ["input", models.map((m) => data.models[m].input_tokens)],
    ["output", models.map((m) => data.models[m].output_tokens)],
  ]);
  setSeries(charts.cost, models, [["cost", models.map((m) => Number(data.models[m].cost_usd))]]);
  const causes = Object.keys(data.causes);
  setSeries(charts.causes, causes, [["failed calls", causes.map((c) => data.causes[c])]]);
}

function renderAlerts(alerts) {
  const items = alerts.firing.map((a) => {
    const li = document.createElement("li");
    li.className = a.severity;
    li.dataset.rule = a.rule;
    li.textContent = `${a.rule}: ${a.message} (since ${clock(a.since)})`;
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "Nothing firing.";
    items.push(li);
  }
  $("firing").replaceChildren(...items);
  fillTable("alert-history", alerts.history, (a) => [
    [clock(a.at)], [a.rule], [a.state], [a.severity], [a.message],
  ]);
}

function renderBreakers(breakers) {
  $("breakers-empty").hidden = breakers.length > 0;
  fillTable("breakers", breakers, (b) => [
    [b.endpoint], [b.state, `state-${b.state}`], [b.reason], [b.state === "closed" ? "" : seconds(b.retry_in_s)],
  ]);
}

function renderBudgets(budgets) {
  $("budgets-empty").hidden = budgets.length > 0;
  fillTable("budgets", budgets, (b) => {
    const state = b.used >= 1 ? "open" : b.used >= Math.min(...b.soft, 1) ? "half_open" : "closed";
    return [
      [b.budget], [`${b.scope} ${b.subject}`], [b.window], [usd(b.spent_usd)], [usd(b.limit_usd)],
      [percent(Math.min(b.used, 9.99)), `state-${state}`], [usd(b.held_usd)], [b.action],
      [new Date(b.resets_at).toLocaleString([], { hour12: false })],
    ];
  });
}

function renderEngine(engine) {
  $("engine-state").textContent = engine.state;
  $("engine-state").className = `state-${engine.state === "ready" ? "closed" : "open"}`;
  $("engine-pid").textContent = engine.pid ?? "–";
  $("engine-restarts").textContent = engine.restarts;
  $("engine-last-exit").textContent = engine.last_exit ? `${engine.last_exit} (${clock(engine.last_exit_at * 1000)})` : "–";
  $("engine-queue").textContent = engine.queue ? `${engine.queue.waiting} of ${engine.queue.capacity} waiting` : "–";
  $("engine-cpu").textContent = (engine.instruction_sets || []).join(" ") || "–";
}

function renderFaults(faults) {
  const active = Object.entries(faults.active).map(([alt, f]) => `${alt}: ${f.kind}${f.kind === "status" ? " " + f.status : ""} (p=${f.probability})`);
  $("faults-active").textContent = active.length ? active.join(", ") : "none";
  $("faults-form").hidden = !faults.control;
  $("faults-locked").hidden = faults.control;
}

function renderRouting(decisions) {
  fillTable("routing", decisions, (d) => [
    [clock(d.at)], [d.user_id], [d.question_type], [d.model], [d.model_reason, "why"],
  ]);
}

// The server fills the trace UI's URL in; the page still refuses any href but http(s) (no javascript:).
function webHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function traceLink(call) {
  const href = typeof call.trace_url === "string" ? webHref(call.trace_url) : null;
  if (!href) return "";
  const link = document.createElement("a");
  link.setAttribute("href", href);
  link.setAttribute("target", "_blank");
  link.setAttribute("rel", "noopener noreferrer");
  link.setAttribute("title", `trace ${call.trace_id ?? ""}`);
  link.textContent = String(call.trace_id ?? "trace").slice(0, 8);
  return link;
}

function renderCalls(calls) {
  fillTable("calls", calls, (c) => [
    [clock(c.started_at)], [c.route], [c.model], [c.rung], [c.cause ? `${c.outcome}: ${c.cause}` : c.outcome, `outcome-${c.outcome}`],
    [seconds(c.duration_s)], [c.total_tokens], [c.cost_usd === null ? "–" : usd(c.cost_usd)], [c.user_id], [c.tags.join(", ")],
    [traceLink(c), "trace"],
  ]);
}

function query() {
  const params = new URLSearchParams({ window_s: $("window").value });
  for (const [name, id] of [["model", "filter-model"], ["tag", "filter-tag"], ["user_id", "filter-user"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function refresh() {
  try {
    const response = await fetch(`/dashboard/data?${query()}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    window.llmDashboard.last = data;
    renderTotals(data.totals);
    renderCharts(data);
    renderAlerts(data.alerts);
    renderBreakers(data.breakers);
    renderBudgets(data.budgets);
    renderEngine(data.local_engine);
    renderFaults(data.faults);
    renderRouting(data.routing);
    renderCalls(data.recent_calls);
    $("status").textContent = `live · updated ${clock(data.now)}`;
    $("status").className = "status live";
  } catch (error) {
    $("status").textContent = `not updating: ${error.message}`;
    $("status").className = "status stale";
  } finally {
    setTimeout(refresh, POLL_MS);
  }
}

async function putFaults(faults) {
  const response = await fetch("/faults", {
    method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(faults),
  });
  const body = await response.json();
  if (!response.ok) alert(body.message);
}

$("faults-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const kind = $("fault-kind").value;
  const spec = { kind, probability: Number($("fault-probability").value) };
  const faults = { ...window.llmDashboard.last?.faults.active, [$("fault-alternative").value]: spec };
  putFaults(faults);
});
$("fault-clear").addEventListener("click", () => putFaults({}));
$("filters").addEventListener("submit", (event) => event.preventDefault());

refresh();
