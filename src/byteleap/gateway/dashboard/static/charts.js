// Hand-drawn SVG charts (no CDN is reachable from a subnet's gateway, and two chart kinds
// do not need a library): stacked bars and lines, each with axes and a legend.
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 220, PAD = { l: 44, r: 10, t: 10, b: 24 };
  const PALETTE = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#f85149", "#39c5cf", "#ff7b72", "#a5d6ff"];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function frame(container, maxY, xLabels) {
    container.replaceChildren();
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" }, container);
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    el("line", { x1: PAD.l, y1: PAD.t + plotH, x2: W - PAD.r, y2: PAD.t + plotH, class: "axis" }, svg);
    el("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: PAD.t + plotH, class: "axis" }, svg);
    for (const f of [0, 0.5, 1]) {
      const y = PAD.t + plotH * (1 - f);
      const t = el("text", { x: PAD.l - 4, y: y + 3, "text-anchor": "end" }, svg);
      t.textContent = format(maxY * f);
    }
    const step = Math.max(1, Math.ceil(xLabels.length / 6));
    xLabels.forEach((label, i) => {
      if (i % step) return;
      const x = PAD.l + (xLabels.length > 1 ? (plotW * i) / (xLabels.length - 1) : plotW / 2);
      const t = el("text", { x, y: H - 6, "text-anchor": "middle" }, svg);
      t.textContent = label;
    });
    return { svg, plotW, plotH };
  }

  function format(v) {
    if (v === 0) return "0";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString();
    if (Math.abs(v) >= 10) return v.toFixed(0);
    return v.toFixed(2);
  }

  function legend(container, series) {
    const div = document.createElement("div");
    div.className = "legend";
    series.forEach((s, i) => {
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = s.color || PALETTE[i % PALETTE.length];
      span.append(swatch, s.name);
      div.appendChild(span);
    });
    container.appendChild(div);
  }

  function empty(container, message) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = message;
    container.appendChild(p);
  }

  // series: [{name, color, values: [number per label]}], stacked bottom to top
  function bars(container, labels, series) {
    const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    const maxY = Math.max(1, ...totals);
    const { svg, plotW, plotH } = frame(container, maxY, labels);
    const slot = plotW / Math.max(1, labels.length), bw = Math.max(1, slot * 0.8);
    labels.forEach((_, i) => {
      let base = 0;
      series.forEach((s, k) => {
        const v = s.values[i] || 0;
        if (!v) return;
        const h = (plotH * v) / maxY;
        const y = PAD.t + plotH - ((plotH * base) / maxY) - h;
        const rect = el("rect", {
          x: PAD.l + slot * i + (slot - bw) / 2, y, width: bw, height: h,
          fill: s.color || PALETTE[k % PALETTE.length],
        }, svg);
        el("title", {}, rect).textContent = `${s.name}: ${v}`;
        base += v;
      });
    });
    legend(container, series);
  }

  // series: [{name, values: [number|null per label]}]
  function lines(container, labels, series, maxY) {
    if (!labels.length || !series.length) return empty(container, "no data yet");
    const top = maxY || Math.max(1e-9, ...series.flatMap((s) => s.values.filter((v) => v != null)));
    const { svg, plotW, plotH } = frame(container, top, labels);
    const x = (i) => PAD.l + (labels.length > 1 ? (plotW * i) / (labels.length - 1) : plotW / 2);
    const y = (v) => PAD.t + plotH * (1 - v / top);
    series.forEach((s, k) => {
      const color = s.color || PALETTE[k % PALETTE.length];
      const pts = s.values.map((v, i) => (v == null ? null : [x(i), y(v)])).filter(Boolean);
      if (pts.length > 1) {
        el("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2 }, svg);
      }
      pts.forEach(([cx, cy]) => el("circle", { cx, cy, r: 2.5, fill: color }, svg));
    });
    legend(container, series);
  }

  return { bars, lines, empty };
})();
