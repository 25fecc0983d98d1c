/// The HTML report's style sheet and script, written into every `index.html` (no file is fetched: the page opens
/// offline from `file://`). The script reads the report from the page's JSON element and draws with the DOM, putting
/// every name in as text, never as markup; the only markup it inserts is the detail SVG emc drew and escaped.
enum HTMLAssets {
    static let css = #"""
    :root { --ink: #1d2127; --muted: #5b6470; --line: #d9dde3; --band: #f5f7f9; --accent: #1f6feb; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; }
    header, main { max-width: 1600px; margin: 0 auto; padding: 0 20px; }
    header { padding-top: 16px; border-bottom: 1px solid var(--line); }
    h1 { font-size: 22px; margin: 6px 0; }
    h2 { font-size: 18px; margin: 22px 0 8px; }
    h3 { font-size: 15px; margin: 10px 0 4px; }
    .meta, .note { color: var(--muted); max-width: 1100px; }
    code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--band); padding: 1px 4px; border-radius: 3px; }
    #filters { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: end; margin-bottom: 8px; }
    #filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
    #filters select, #filters input { font: inherit; padding: 3px 6px; min-width: 140px; max-width: 260px; }
    .scroll { overflow-x: auto; }
    table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
    th, td { padding: 4px 7px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
    td.num, th.num { text-align: right; }
    td.wrap { white-space: normal; overflow-wrap: break-word; max-width: 260px; }
    thead th { background: var(--band); position: sticky; top: 0; }
    thead th button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; color: inherit; }
    th[aria-sort="ascending"] button::after { content: " ▲"; }
    th[aria-sort="descending"] button::after { content: " ▼"; }
    #table tbody tr { cursor: pointer; }
    #table tbody tr:hover, #table tbody tr:focus { background: #eef4ff; outline: none; }
    #table tbody tr.selected { background: #dde9ff; }
    .bound { color: #9a6700; }
    .tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 9px; background: #fff4d6; color: #7a5200; margin-right: 4px; }
    #pager { display: flex; gap: 8px; align-items: center; margin: 8px 0 16px; }
    #pager button { font: inherit; padding: 2px 10px; }
    .finding { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; max-width: 1100px; }
    .finding summary { cursor: pointer; }
    .verdict { display: inline-block; min-width: 88px; text-align: center; font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px; margin-right: 8px; }
    .verdict-supports { background: #dafbe1; color: #116329; }
    .verdict-contradicts { background: #ffebe9; color: #a40e26; }
    .verdict-mixed { background: #fff8c5; color: #7d4e00; }
    .verdict-undecided, .verdict-not-measured { background: #eaeef2; color: #424a53; }
    .finding .rule { color: var(--muted); }
    .finding li { margin: 2px 0; }
    #plot-panels { display: flex; flex-wrap: wrap; gap: 12px; }
    .panel { border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
    .panel svg { display: block; }
    .panel .caption { font-weight: 600; font-size: 12px; max-width: 430px; padding: 2px 6px; overflow-wrap: anywhere; }
    .panel svg .point { cursor: pointer; }
    #detail { border: 2px solid var(--accent); border-radius: 8px; padding: 4px 16px 16px; margin: 16px 0; }
    #detail .head { display: flex; justify-content: space-between; align-items: baseline; gap: 16px; }
    #detail dl { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr); gap: 2px 16px; margin: 8px 0; }
    #detail dd { overflow-wrap: anywhere; }
    #detail dt { color: var(--muted); }
    #detail dd { margin: 0; }
    #detail .lines li { margin: 2px 0; }
    #detail .svg { overflow-x: auto; }
    #detail .trials { max-height: 420px; overflow: auto; }
    .result-fitted { color: #116329; }
    .result-converged-unfit, .result-diverged { color: #a40e26; }
    .result-budget-exhausted { color: #9a4d00; }
    .result-saddle { color: #6f42c1; }
    """#

    static let script = #"""
    "use strict";
    (function () {
      const DATA = JSON.parse(document.getElementById("emc-report").textContent);
      window.EMC_REPORT = DATA;
      const SVGNS = "http://www.w3.org/2000/svg";
      const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
      const PAGE = 50, PANELS = 12, EVIDENCE = 200;
      const num = (x) => typeof x === "number" && isFinite(x);
      const count = (x) => num(x) ? Math.round(x).toLocaleString("en-US") : "-";
      const fixed = (x, d) => num(x) ? x.toFixed(d) : "-";
      const VIEWS = DATA.report.rows.map((r, i) => ({
        r: r, i: i,
        family: r.model.split(":")[0],
        condition: r.variant ? r.data + " [" + r.variant + "]" : r.data,
        optimizer: r.optimizer.split(":")[0],
        trainer: r.trainer || "native",
        budget: r.budget || "",
      }));
      const DETAILS = {};
      let current = null;
      const state = { filters: {}, text: "", bound: "", sort: null, dir: 1, page: 0 };

      function el(tag, attrs, children) {
        const e = document.createElement(tag);
        for (const k in attrs || {}) {
          const v = attrs[k];
          if (k === "text") e.textContent = v;
          else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
          else e.setAttribute(k, v);
        }
        for (const c of children || []) e.append(c);
        return e;
      }
      function sv(tag, attrs, text) {
        const e = document.createElementNS(SVGNS, tag);
        for (const k in attrs) e.setAttribute(k, attrs[k]);
        if (text != null) e.textContent = text;
        return e;
      }

      function interval(r) {
        const b = r.boundary;
        if (!b) return "-";
        return (b.lowIsBound ? "≤" : "") + count(b.low) + "–" + count(b.high) + (b.highIsBound ? "+" : "");
      }
      function notes(r) {
        const out = [];
        if (r.budgetBound) out.push("budget-bound");
        if (r.unfinished) out.push("unfinished");
        if (!r.boundary) out.push("no failure yet");
        return out;
      }
      const headline = (r) => (r.lowerBound ? "≥ " : "") + count(r.emc);

      const COLUMNS = [
        { key: "data", label: "data", value: (v) => v.condition, wrap: true },
        { key: "model", label: "model", value: (v) => v.r.model, wrap: true },
        { key: "optimizer", label: "optimizer", value: (v) => v.r.optimizer, wrap: true },
        { key: "trainer", label: "trainer", value: (v) => v.trainer, varying: true },
        { key: "budget", label: "budget", value: (v) => v.budget, varying: true },
        { key: "batch", label: "batch", value: (v) => v.r.batch, num: true, varying: true },
        { key: "threshold", label: "threshold", value: (v) => v.r.fitThreshold, num: true, varying: true },
        { key: "protocol", label: "protocol", value: (v) => v.r.protocol || "emc", varying: true },
        { key: "seedSet", label: "seed set", value: (v) => v.r.seedSet || "all", varying: true },
        { key: "parameters", label: "params", value: (v) => v.r.parameters, num: true, show: (v) => count(v.r.parameters) },
        { key: "emc", label: "EMC (n50)", value: (v) => v.r.emc, num: true, show: (v) => headline(v.r) },
        { key: "interval", label: "90% interval", value: (v) => v.r.boundary ? v.r.boundary.low : null, num: true, show: (v) => interval(v.r) },
        { key: "seeds", label: "seeds' EMC (range)", value: (v) => v.r.emcMedian, num: true,
          show: (v) => count(v.r.emcMedian) + (v.r.emcMin === v.r.emcMax ? "" : " (" + count(v.r.emcMin) + "–" + count(v.r.emcMax) + ")") },
        { key: "seedCount", label: "seeds", value: (v) => v.r.seeds.length, num: true },
        { key: "perParameter", label: "EMC/params", value: (v) => v.r.emcPerParameter, num: true, show: (v) => fixed(v.r.emcPerParameter, 3) },
        { key: "test", label: "test acc", value: (v) => v.r.testAccuracy, num: true, show: (v) => fixed(v.r.testAccuracy, 3) },
        { key: "gap", label: "gen. gap", value: (v) => v.r.generalizationGap, num: true, show: (v) => fixed(v.r.generalizationGap, 3) },
        { key: "notes", label: "notes", value: (v) => notes(v.r).join(", ") },
      ].filter((c) => !c.varying || new Set(VIEWS.map((v) => String(c.value(v)))).size > 1);

      const FILTERS = [
        { key: "condition", label: "data" },
        { key: "family", label: "model family" },
        { key: "optimizer", label: "optimizer" },
        { key: "trainer", label: "trainer" },
        { key: "budget", label: "budget" },
      ];

      function buildFilters() {
        const form = document.getElementById("filters");
        for (const f of FILTERS) {
          const tally = new Map();
          for (const v of VIEWS) tally.set(v[f.key], (tally.get(v[f.key]) || 0) + 1);
          // An option's value is "=" and the value ("=" alone: rows without one); "" is every row.
          const select = el("select", { name: f.key, "data-filter": f.key, onchange: (e) => { state.filters[f.key] = e.target.value; state.page = 0; update(); } },
            [el("option", { value: "", text: "all (" + tally.size + ")" })]);
          for (const value of [...tally.keys()].sort()) select.append(el("option", { value: "=" + value, text: (value || "(none)") + " · " + tally.get(value) }));
          form.append(el("label", {}, [f.label, select]));
        }
        const bound = el("select", { name: "bound", "data-filter": "bound", onchange: (e) => { state.bound = e.target.value; state.page = 0; update(); } }, [
          el("option", { value: "", text: "all" }),
          el("option", { value: "estimate", text: "estimates only" }),
          el("option", { value: "lower", text: "lower bounds (≥) only" }),
        ]);
        form.append(el("label", {}, ["EMC", bound]));
        const search = el("input", { type: "search", name: "search", placeholder: "model, optimizer, data…", oninput: (e) => { state.text = e.target.value.toLowerCase(); state.page = 0; update(); } });
        form.append(el("label", {}, ["contains", search]));
      }

      function kept() {
        return VIEWS.filter((v) => {
          for (const k in state.filters) if (state.filters[k] !== "" && "=" + v[k] !== state.filters[k]) return false;
          if (state.bound === "estimate" && v.r.lowerBound) return false;
          if (state.bound === "lower" && !v.r.lowerBound) return false;
          if (state.text && !(v.condition + " " + v.r.model + " " + v.r.optimizer + " " + v.budget).toLowerCase().includes(state.text)) return false;
          return true;
        });
      }

      function sorted(views) {
        const column = COLUMNS.find((c) => c.key === state.sort);
        if (!column) return views;
        const dir = state.dir;
        return views.slice().sort((a, b) => {
          const x = column.value(a), y = column.value(b);
          const missing = (z) => column.num ? !num(z) : z == null || z === "";
          const xm = missing(x), ym = missing(y);
          if (xm || ym) return xm === ym ? a.i - b.i : (xm ? 1 : -1);
          if (column.num) return (x - y) * dir || a.i - b.i;
          return String(x).localeCompare(String(y)) * dir || a.i - b.i;
        });
      }

      function buildHead() {
        const row = el("tr");
        for (const c of COLUMNS) {
          const th = el("th", { class: c.num ? "num" : "", "data-key": c.key, "aria-sort": "none" }, [
            el("button", { type: "button", text: c.label, onclick: () => {
              state.dir = state.sort === c.key ? -state.dir : 1;
              state.sort = c.key;
              update();
            } }),
          ]);
          row.append(th);
        }
        document.querySelector("#table thead").append(row);
      }

      function update() {
        const views = sorted(kept());
        for (const th of document.querySelectorAll("#table thead th")) {
          th.setAttribute("aria-sort", th.dataset.key === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none");
        }
        const pages = Math.max(1, Math.ceil(views.length / PAGE));
        state.page = Math.min(state.page, pages - 1);
        const first = state.page * PAGE, shown = views.slice(first, first + PAGE);
        const body = document.querySelector("#table tbody");
        body.replaceChildren(...shown.map((v) => {
          const tr = el("tr", { "data-index": v.i, tabindex: "0", class: (v.r.lowerBound ? "lower-bound " : "") + (v.i === current ? "selected" : ""),
            onclick: () => openDetail(v.i), onkeydown: (e) => { if (e.key === "Enter") openDetail(v.i); } });
          for (const c of COLUMNS) {
            const td = el("td", { class: c.num ? "num" : c.wrap ? "wrap" : "" });
            if (c.key === "notes") for (const n of notes(v.r)) td.append(el("span", { class: "tag", text: n }));
            else td.textContent = c.show ? c.show(v) : String(c.value(v) ?? "-");
            if (c.key === "emc" && v.r.lowerBound) td.classList.add("bound");
            tr.append(td);
          }
          return tr;
        }));
        document.getElementById("count").textContent = VIEWS.length === 0 ? "This report has no configurations (check the log and the filters it was written with)." :
          views.length === 0 ? "No configuration passes these filters." :
          "Configurations " + (first + 1) + "–" + (first + shown.length) + " of " + views.length +
          (views.length < VIEWS.length ? " (filtered from " + VIEWS.length + ")" : "") + ". Click a row for its trials and curves.";
        const pager = document.getElementById("pager");
        pager.replaceChildren();
        if (pages > 1) {
          pager.append(el("button", { type: "button", "data-page": "previous", text: "← previous", onclick: () => { state.page--; update(); } }));
          pager.append(el("span", { text: "page " + (state.page + 1) + " of " + pages }));
          pager.append(el("button", { type: "button", "data-page": "next", text: "next →", onclick: () => { state.page++; update(); } }));
          pager.children[0].disabled = state.page === 0;
          pager.children[2].disabled = state.page === pages - 1;
        }
        drawPanels(views);
      }

      function logAxis(values, from, to) {
        let lo = Infinity, hi = -Infinity;
        for (const v of values) if (v > 0 && isFinite(v)) { const l = Math.log10(v); lo = Math.min(lo, l); hi = Math.max(hi, l); }
        if (lo > hi) { lo = 0; hi = 1; }
        if (hi - lo < 0.3) { const m = (hi + lo) / 2; lo = m - 0.15; hi = m + 0.15; }
        const pad = (hi - lo) * 0.06;
        lo -= pad; hi += pad;
        return {
          lo: lo, hi: hi,
          px: (v) => from + (Math.log10(Math.max(v, 1e-300)) - lo) / (hi - lo) * (to - from),
          ticks: () => {
            const out = [], fine = hi - lo < 3;
            for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
              for (const m of fine ? [1, 2, 5] : [1]) { const v = m * Math.pow(10, d); if (Math.log10(v) >= lo && Math.log10(v) <= hi) out.push(v); }
            }
            return out;
          },
        };
      }
      function tickLabel(v) {
        const t = (x) => String(+x.toPrecision(3));
        return v >= 1e6 ? t(v / 1e6) + "M" : v >= 1e3 ? t(v / 1e3) + "k" : t(v);
      }

      function drawPanels(views) {
        const holder = document.getElementById("plot-panels");
        holder.replaceChildren();
        const groups = new Map();
        for (const v of views) {
          if (!(v.r.emc > 0)) continue;
          const key = v.family + " on " + v.condition;
          if (!groups.has(key)) groups.set(key, []);
          groups.get(key).push(v);
        }
        if (groups.size === 0) { holder.append(el("p", { class: "note", text: "No fitted configuration to plot." })); return; }
        let drawn = 0;
        for (const [key, members] of groups) {
          if (drawn++ === PANELS) {
            holder.append(el("p", { class: "note", text: (groups.size - PANELS) + " more panel(s): filter by data or model family to see them." }));
            break;
          }
          holder.append(el("div", { class: "panel", "data-panel": key }, [el("div", { class: "caption", text: key }), panel(key, members)]));
        }
      }

      function panel(key, members) {
        const W = 430, H = 290, L = 58, R = 12, T = 10, B = 70;
        const svg = sv("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "font-family": "sans-serif", "font-size": "11", role: "img" });
        svg.append(sv("title", {}, "EMC against parameters: " + key));
        const bars = (r) => r.boundary ? [r.boundary.low, r.boundary.high] : [Math.max(1, r.emcMin), Math.max(1, r.emcMax)];
        const xs = members.map((v) => v.r.parameters);
        const ys = members.flatMap((v) => [v.r.emc].concat(bars(v.r)));
        const ax = logAxis(xs, L, W - R), ay = logAxis(ys, H - B, T);
        for (const t of ax.ticks()) {
          svg.append(sv("line", { x1: ax.px(t), y1: T, x2: ax.px(t), y2: H - B, stroke: "#eee" }));
          svg.append(sv("text", { x: ax.px(t), y: H - B + 14, "text-anchor": "middle" }, tickLabel(t)));
        }
        for (const t of ay.ticks()) {
          svg.append(sv("line", { x1: L, y1: ay.px(t), x2: W - R, y2: ay.px(t), stroke: "#eee" }));
          svg.append(sv("text", { x: L - 5, y: ay.px(t) + 4, "text-anchor": "end" }, tickLabel(t)));
        }
        svg.append(sv("rect", { x: L, y: T, width: W - R - L, height: H - B - T, fill: "none", stroke: "#444" }));
        svg.append(sv("text", { x: (L + W - R) / 2, y: H - B + 30, "text-anchor": "middle" }, "parameters"));
        svg.append(sv("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", transform: "rotate(-90 14 " + (T + H - B) / 2 + ")" }, "EMC (n50)"));
        const a = Math.max(Math.pow(10, ax.lo), Math.pow(10, ay.lo)), b = Math.min(Math.pow(10, ax.hi), Math.pow(10, ay.hi));
        if (a < b) svg.append(sv("line", { x1: ax.px(a), y1: ay.px(a), x2: ax.px(b), y2: ay.px(b), stroke: "#999", "stroke-dasharray": "6 4" }));
        const series = new Map();
        for (const v of members) {
          const s = v.r.optimizer + (v.budget ? ", " + v.budget : "") + (v.trainer !== "native" ? ", " + v.trainer : "");
          if (!series.has(s)) series.set(s, []);
          series.get(s).push(v);
        }
        let k = 0;
        for (const [name, line] of series) {
          const colour = COLOURS[k % COLOURS.length];
          line.sort((p, q) => p.r.parameters - q.r.parameters);
          if (line.length > 1) {
            svg.append(sv("polyline", { points: line.map((v) => ax.px(v.r.parameters) + "," + ay.px(v.r.emc)).join(" "), fill: "none", stroke: colour, "stroke-width": "1.2" }));
          }
          for (const v of line) {
            const x = ax.px(v.r.parameters), y = ay.px(v.r.emc), [lo, hi] = bars(v.r);
            if (hi > lo) svg.append(sv("line", { x1: x, y1: ay.px(lo), x2: x, y2: ay.px(hi), stroke: colour, "stroke-dasharray": v.r.boundary ? "" : "3 2" }));
            const mark = v.r.lowerBound
              ? sv("path", { d: "M" + x + "," + (y - 6) + " L" + (x + 5) + "," + (y + 4) + " L" + (x - 5) + "," + (y + 4) + " Z", fill: "white", stroke: colour, "stroke-width": "1.5" })
              : sv("circle", { cx: x, cy: y, r: 4, fill: colour });
            mark.setAttribute("class", "point");
            mark.setAttribute("data-index", v.i);
            mark.append(sv("title", {}, v.r.model + ", " + v.r.optimizer + ": EMC " + headline(v.r) + " (" + interval(v.r) + "), " + count(v.r.parameters) + " parameters"));
            mark.addEventListener("click", () => openDetail(v.i));
            svg.append(mark);
          }
          if (k < 4) {
            const ly = H - B + 44 + k * 13;
            svg.append(sv("circle", { cx: L + 4, cy: ly - 4, r: 4, fill: colour }));
            svg.append(sv("text", { x: L + 12, y: ly }, name.length > 60 ? name.slice(0, 57) + "…" : name));
          } else if (k === 4) {
            svg.append(sv("text", { x: L + 250, y: H - B + 44 }, "+" + (series.size - 4) + " more series"));
          }
          k++;
        }
        return svg;
      }

      function findings() {
        const holder = document.getElementById("findings-body");
        const list = DATA.findings;
        if (!list) { holder.append(el("p", { class: "note", text: "Not judged in this report." })); }
        else {
          for (const f of list) {
            const verdict = f.verdict;
            const box = el("details", { class: "finding", "data-finding": f.number }, [
              el("summary", {}, [
                el("span", { class: "verdict verdict-" + verdict.replace(" ", "-"), text: verdict }),
                el("strong", { text: f.number + ". " + f.claim }),
                el("span", { class: "note", text: "  · " + f.forClaim + " for, " + f.against + " against, " + f.notSignificant + " not significant" }),
              ]),
              el("p", { class: "rule", text: f.rule }),
              el("ul", { class: "evidence" }, [el("li", { class: "note", text: "loading the evidence (findings.js)…" })]),
            ]);
            holder.append(box);
          }
        }
        const report = DATA.report;
        if (num(report.gainGapCorrelation)) {
          holder.append(el("p", { text: "Rank correlation between the log EMC gained from true labels and the generalization gap at n = " +
            report.gainGapN + ": ρ = " + report.gainGapCorrelation.toFixed(3) + " over " + report.gainGapPairs + " model pair(s)." }));
        }
        for (const p of report.trainerPairs) {
          holder.append(el("p", { text: p.condition + ", " + p.model + ": the native and torch trainers' n50 intervals " + (p.overlap ? "overlap" : "do not overlap") +
            " (native " + count(p.nativeInterval[0]) + "–" + count(p.nativeInterval[1]) + ", torch " + count(p.torchInterval[0]) + "–" + count(p.torchInterval[1]) + ")." }));
        }
      }

      function openDetail(i) {
        const v = VIEWS[i];
        if (!v) return;
        current = i;
        for (const tr of document.querySelectorAll("#table tbody tr")) tr.classList.toggle("selected", Number(tr.dataset.index) === i);
        const r = v.r, b = r.boundary;
        const section = document.getElementById("detail");
        section.hidden = false;
        section.dataset.index = i;
        const facts = [
          ["data", v.condition], ["model", r.model], ["optimizer", r.optimizer], ["budget", r.budget || "-"],
          ["batch", r.batch == null ? "-" : String(r.batch)], ["fit threshold", r.fitThreshold == null ? "-" : String(r.fitThreshold)],
          ["trainer", v.trainer], ["protocol", r.protocol || "emc"], ["parameters", count(r.parameters)],
          ["EMC (n50)", headline(r) + (b ? ", " + Math.round(b.level * 100) + "% interval " + interval(r) : "")],
          ["notes", notes(r).join(", ") || "-"], ["Nakkiran's EMC", r.nakkiranEMC == null ? "-" : count(r.nakkiranEMC)],
          ["test accuracy, gap", fixed(r.testAccuracy, 3) + ", " + fixed(r.generalizationGap, 3)],
          ["trials", r.trials + " (" + r.budgetExhaustedTrials + " out of budget), " + count(r.sampleEpochs) + " sample-epochs, " + fixed(r.seconds, 1) + " s"],
          ["configuration", r.config],
        ];
        section.replaceChildren(
          el("div", { class: "head" }, [
            el("h2", { text: r.model + " · " + r.optimizer + " · " + v.condition }),
            el("button", { type: "button", id: "close-detail", text: "close", onclick: closeDetail }),
          ]),
          el("dl", {}, facts.flatMap(([k, t]) => [el("dt", { text: k }), el("dd", { text: t })])),
          el("div", { id: "detail-body" }, [el("p", { class: "note", text: "loading detail/" + i + ".js…" }), el("h3", { text: "Seeds" }), seedsTable(r)]),
        );
        history.replaceState(null, "", "#config-" + i);
        if (DETAILS[i]) renderDetail(i);
        else {
          const script = el("script", { src: "detail/" + i + ".js" });
          script.onerror = () => {
            const body = document.getElementById("detail-body");
            if (current !== i || !body || !body.firstChild) return;
            body.firstChild.replaceWith(el("p", { class: "note",
              text: "The detail file detail/" + i + ".js is missing or unreadable: write the report again with emc report --html." }));
          };
          document.body.append(script);
        }
        section.scrollIntoView({ block: "start" });
      }

      function seedsTable(r) {
        return el("table", { class: "seeds" }, [
          el("thead", {}, [el("tr", {}, ["seed", "EMC", "first unfitted", "finished", "trials"].map((h) => el("th", { text: h })))]),
          el("tbody", {}, r.seeds.map((s) => el("tr", {}, [String(s.seed), count(s.emc), s.firstUnfitted == null ? "-" : count(s.firstUnfitted),
            s.finished ? "yes" : "no (no confirmed failure)", String(s.trials)].map((t) => el("td", { text: t }))))),
        ]);
      }

      function closeDetail() {
        current = null;
        const section = document.getElementById("detail");
        section.hidden = true;
        section.replaceChildren();
        for (const tr of document.querySelectorAll("#table tbody tr.selected")) tr.classList.remove("selected");
        history.replaceState(null, "", location.pathname);
      }

      function renderDetail(i) {
        const d = DETAILS[i], body = document.getElementById("detail-body");
        if (!body || current !== i) return;
        const picture = el("div", { class: "svg" });
        picture.innerHTML = d.svg;  // drawn and escaped by emc (BoundaryPlot.detailSVG)
        const columns = ["seed", "n", "replicate", "role", "result", "epochs", "steps", "train acc", "wrong", "test acc", "loss", "seconds"];
        const trials = el("table", { class: "trials" }, [
          el("thead", {}, [el("tr", {}, columns.map((h) => el("th", { text: h })))]),
          el("tbody", {}, d.trials.map((t) => el("tr", { class: "result-" + t.result }, [String(t.seed), count(t.n), String(t.replicate), t.role || "-", t.result,
            String(t.epochs), String(t.steps), fixed(t.trainAccuracy, 4), String(t.wrong), fixed(t.testAccuracy, 4), fixed(t.loss, 4), fixed(t.seconds, 2)]
            .map((x) => el("td", { text: x }))))),
        ]);
        body.replaceChildren(
          el("h3", { text: "p(fit | n), the EMC against budget and against the fit threshold" }),
          picture,
          el("ul", { class: "lines" }, d.lines.map((line) => el("li", { text: line }))),
          el("h3", { text: "Seeds" }), seedsTable(VIEWS[i].r),
          el("h3", { text: "Trials (" + d.trials.length + ")" }),
          el("div", { class: "trials" }, [trials]),
        );
      }

      // The findings' evidence, from findings.js: put back into the report's data, and drawn (a long list, its start).
      window.emcFindings = function (evidence) {
        const boxes = document.querySelectorAll("#findings .finding");
        (DATA.findings || []).forEach((f, k) => {
          f.evidence = evidence[k] || [];
          const list = boxes[k] && boxes[k].querySelector("ul.evidence");
          if (!list) return;
          const lines = f.evidence.slice(0, EVIDENCE).map((line) => el("li", { text: line }));
          if (f.evidence.length > EVIDENCE) {
            lines.push(el("li", { class: "note", text: "… and " + (f.evidence.length - EVIDENCE) + " more comparisons (emc report --findings lists them all)." }));
          }
          list.replaceChildren(...lines);
        });
        window.EMC_FINDINGS_LOADED = true;
      };

      function loadFindings() {
        if (!DATA.findings || DATA.findings.length === 0) { window.EMC_FINDINGS_LOADED = true; return; }
        const script = el("script", { src: "findings.js" });
        script.onerror = () => {
          for (const list of document.querySelectorAll("#findings ul.evidence")) {
            list.replaceChildren(el("li", { class: "note", text: "findings.js is missing: write the report again with emc report --html." }));
          }
        };
        document.body.append(script);
      }

      window.emcDetail = function (i, detail) {
        DETAILS[i] = detail;
        if (current === i) renderDetail(i);
      };

      buildFilters();
      buildHead();
      findings();
      update();
      loadFindings();
      function followHash() {
        const deep = /^#config-(\d+)$/.exec(location.hash);
        if (deep && Number(deep[1]) !== current) openDetail(Number(deep[1]));
      }
      window.addEventListener("hashchange", followHash);
      followHash();
    })();
    """#
}
