// The dashboard: reads /v1/network/* and draws it; refreshes every REFRESH_MS.
// Every number shown from the API sits in an element with data-field="<path>", so a test
// (or a curious reader) can match the page against the JSON.
"use strict";
const REFRESH_MS = 10000;

const percent = (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`);
const short = (key) => (key.length > 14 ? `${key.slice(0, 12)}…` : key);
const clock = (epoch) => new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function setField(name, value) {
  for (const node of document.querySelectorAll(`[data-field="${name}"]`)) node.textContent = value;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function renderOverview(o) {
  setField("chain.block", o.chain.block ?? "–");
  setField("chain.netuid", o.chain.netuid ?? "–");
  setField("miners", o.miners);
  setField("workers", o.workers);
  setField("workers_online", o.workers_online);
  setField("gpus", o.gpus);
  setField("challenges.passed", o.challenges.passed);
  setField("challenges.failed", o.challenges.failed);
  setField("challenges.pass_rate", percent(o.challenges.pass_rate));
  setField("availability", percent(o.availability));
  renderCounts("jobs", o.jobs);
  renderCounts("leases", o.leases);
  renderCounts("services", o.services);
}

function renderCounts(kind, counts) {
  const table = document.getElementById(kind);
  table.replaceChildren();
  if (counts == null) {
    cell(table.insertRow(), "not offered by this gateway yet", "muted");
    return;
  }
  const states = Object.keys(counts).sort();
  if (!states.length) cell(table.insertRow(), "none", "muted");
  for (const state of states) {
    const row = table.insertRow();
    cell(row, state);
    cell(row, String(counts[state])).dataset.field = `${kind}.${state}`;
  }
}

// A GPU worker's claim is its own word; say what its challenges measured beside it.
function measuredNote(w) {
  if (!w.gpus.length) return "";
  if (w.measured_throughput == null) return " · not measured yet";
  const as = w.measured_gpu_class ?? "no known GPU";
  return w.gpu_model_mismatch ? ` · measures as ${as} (claim refuted)` : ` · measures as ${as}`;
}

function renderMiners(list) {
  const body = document.querySelector("#miners tbody");
  body.replaceChildren();
  for (const m of list.miners) {
    const row = body.insertRow();
    row.dataset.hotkey = m.hotkey;
    cell(row, m.uid ?? "–");
    cell(row, short(m.hotkey), "mono").title = m.hotkey;
    cell(row, `${m.workers_online}/${m.workers}`);
    cell(row, m.gpus);
    cell(row, m.passed, "ok").dataset.field = `miner.${m.hotkey}.passed`;
    cell(row, m.failed, m.failed ? "bad" : "").dataset.field = `miner.${m.hotkey}.failed`;
    cell(row, percent(m.pass_rate));
    cell(row, m.weight == null ? "–" : m.weight.toFixed(4)).dataset.field = `miner.${m.hotkey}.weight`;
    for (const w of m.worker_list) {
      const wr = body.insertRow();
      wr.className = "worker";
      const hw = w.gpus.length ? w.gpus.map((g) => g.model).join(", ") : `${w.cpu_cores ?? "?"} CPU cores`;
      cell(wr, `${w.online ? "●" : "○"} ${w.state}`, w.online ? "ok" : "");
      cell(wr, short(w.worker_key), "mono").title = w.worker_key;
      const measured = cell(wr, hw + measuredNote(w), w.gpu_model_mismatch ? "bad" : "");
      measured.dataset.field = `worker.${w.worker_key}.measured`;
      if (w.measured_throughput != null) {
        measured.title = `median pass ${(w.measured_throughput / 1e12).toFixed(1)} TFLOP/s`;
      }
      cell(wr, w.gpus.length);
      cell(wr, w.passed);
      cell(wr, w.failed);
      cell(wr, `avail ${percent(w.availability)}`);
      cell(wr, w.mean_throughput == null ? "" : `${(w.mean_throughput / 1e9).toFixed(2)} GFLOP/s`);
    }
  }
}

function renderChallenges(history) {
  const labels = history.timeline.map((p) => clock(p.start));
  Charts.bars(document.getElementById("chart-challenges"), labels, [
    { name: "passed", color: "#3fb950", values: history.timeline.map((p) => p.passed) },
    { name: "failed", color: "#f85149", values: history.timeline.map((p) => p.failed) },
    { name: "other", color: "#8b98a5", values: history.timeline.map((p) => p.other) },
  ]);
  const body = document.querySelector("#recent tbody");
  body.replaceChildren();
  for (const c of history.recent) {
    const row = body.insertRow();
    cell(row, clock(c.issued_at));
    cell(row, short(c.miner_hotkey), "mono").title = c.miner_hotkey;
    cell(row, short(c.worker_key), "mono").title = c.worker_key;
    cell(row, c.profile);
    cell(row, c.n);
    cell(row, c.status, c.status === "passed" ? "ok" : c.status === "failed" ? "bad" : "");
    cell(row, c.failure_reason ?? "");
    cell(row, c.throughput == null ? "" : (c.throughput / 1e9).toFixed(2));
  }
}

function byHotkey(points, pick) {
  const hotkeys = [...new Set(points.flatMap((p) => Object.keys(pick(p))))].sort();
  return hotkeys.map((hotkey) => ({ name: short(hotkey), values: points.map((p) => pick(p)[hotkey] ?? null) }));
}

function renderScores(history) {
  const snaps = history.snapshots;
  const finals = (s) => Object.fromEntries(s.miners.map((m) => [m.hotkey, m.final]));
  Charts.lines(document.getElementById("chart-scores"), snaps.map((s) => clock(s.at)), byHotkey(snaps, finals), 1);
}

function renderWeights(history) {
  const sets = history.sets;
  const labels = sets.map((s) => (s.block == null ? clock(s.computed_at) : `#${s.block}`));
  Charts.lines(document.getElementById("chart-weights"), labels, byHotkey(sets, (s) => s.weights), 1);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [overview, miners, challenges, scores, weights] = await Promise.all([
      getJson("/v1/network/overview"),
      getJson("/v1/network/miners"),
      getJson("/v1/network/challenges"),
      getJson("/v1/network/scores"),
      getJson("/v1/network/weights"),
    ]);
    renderOverview(overview);
    renderMiners(miners);
    renderChallenges(challenges);
    renderScores(scores);
    renderWeights(weights);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    error.hidden = true;
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded) + 1);
  } catch (exc) {
    error.textContent = String(exc);
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
