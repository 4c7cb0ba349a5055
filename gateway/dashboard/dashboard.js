// The gateway's built-in dashboard: polls /metrics and /v1/economics, draws with inline SVG. No dependencies.
"use strict";
(() => {
  const POLL_MS = 2000;
  const REJECTED = "unknown"; // the route label of requests refused before routing (gateway/ledger.py)
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const num = (v) => (v == null || !isFinite(v) ? "—" : Math.round(v).toLocaleString("en-US"));
  const compact = (v) => (v == null || !isFinite(v) ? "—"
    : new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(v));
  const pct = (v) => (v == null || !isFinite(v) ? "—" : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`);
  const secs = (v) => (v == null ? "—" : v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(2)} s`);

  function usd(v) { // 4 significant digits below $1, cents above, compact from $10k
    if (v == null || !isFinite(v)) return "—";
    const a = Math.abs(v), sign = v < 0 ? "-" : "";
    if (a === 0) return "$0.00";
    if (a >= 10000) return `${sign}$${compact(a)}`;
    if (a >= 1) return `${sign}$${a.toFixed(2)}`;
    const digits = Math.min(12, 3 - Math.floor(Math.log10(a)));
    return `${sign}$${a.toFixed(digits).replace(/(\.\d\d\d*?)0+$/, "$1")}`;
  }
  const DAYS_PER_MONTH = 365.25 / 12;
  const crossingDate = (m) => (m == null ? "never"
    : new Date(Date.now() + m * DAYS_PER_MONTH * 864e5).toISOString().slice(0, 10));
  const months = (v) => (v == null ? "never" : v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toPrecision(2));

  const niceStep = (span, n) => { // 1, 2 or 5 times a power of ten
    const raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 5, 10].find((m) => m * mag >= raw) * mag;
  };
  function ticks(lo, hi, step) {
    const out = [];
    for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) out.push(i * step);
    return out;
  }

  // Prometheus text format -> [{name, labels, value}]
  function parseMetrics(text) {
    const out = [];
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
      const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : parseFloat(m[3]);
      out.push({ name: m[1], labels, value });
    }
    return out;
  }

  // Sum of `name` grouped by key(labels), over samples passing where(labels).
  function group(samples, name, key, where = () => true) {
    const out = new Map();
    for (const s of samples) {
      if (s.name !== name || !where(s.labels)) continue;
      const k = key(s.labels);
      out.set(k, (out.get(k) || 0) + s.value);
    }
    return out;
  }
  const total = (samples, name, where) => group(samples, name, () => "", where).get("") || 0;

  // histogram_quantile over cumulative buckets {le: count}, interpolating linearly inside a bucket.
  function quantile(q, buckets) {
    const bs = [...buckets].map(([le, c]) => [le === "+Inf" ? Infinity : parseFloat(le), c]).sort((a, b) => a[0] - b[0]);
    const n = bs.length ? bs[bs.length - 1][1] : 0;
    if (!n) return null;
    const rank = q * n;
    let lo = 0, below = 0;
    for (const [le, c] of bs) {
      if (c >= rank) return le === Infinity ? lo : lo + ((le - lo) * (rank - below)) / (c - below || 1);
      lo = le; below = c;
    }
    return lo;
  }

  function economicsFromGauges(samples) { // when /v1/economics refused the page: the numbers, no verdict
    const rows = {};
    for (const s of samples) {
      if (s.name !== "gateway_economics") continue;
      const row = (rows[s.labels.route] ||= { route: s.labels.route, verdict: null, missing: {} });
      const q = s.labels.quantity;
      if (q.startsWith("missing_")) row.missing[q.slice(8)] = s.value;
      else row[q] = isFinite(s.value) ? s.value : null;
    }
    for (const row of Object.values(rows)) row.enough_traffic = row.enough_traffic === 1;
    return Object.values(rows);
  }

  function verdictClass(v) {
    if (!v || /^not enough traffic/.test(v)) return "wait";
    if (/never|stay with prompting/.test(v)) return "bad";
    return /^fine-tune|within a year/.test(v) ? "good" : "meh";
  }

  // "not enough traffic yet: ..." from the gauges' missing_* when /v1/economics refused the page
  function shortfall(e) {
    const m = e.missing || {}, parts = [];
    if (m.requests > 0) parts.push(`${num(m.requests)} more requests`);
    if (m.seconds > 0) parts.push(`${Math.ceil(m.seconds / 60)} more minutes`);
    if (m.prompted_requests > 0) parts.push(`${num(m.prompted_requests)} more prompted requests`);
    return `not enough traffic yet: ${parts.join(", ")}`;
  }
  const isoMinute = (epoch) => (epoch == null ? "—" : new Date(epoch * 1000).toISOString().slice(0, 16).replace("T", " "));
  const span = (s) => (s == null ? "—" : s >= 172800 ? `${(s / 86400).toFixed(1)} d` : s >= 7200 ? `${(s / 3600).toFixed(1)} h` : `${Math.round(s / 60)} min`);

  function breakEvenChart(e) {
    const W = 560, H = 220, L = 64, R = 16, T = 16, B = 40;
    const s = e.savings_monthly_usd || 0, up = e.upfront_usd || 0, be = e.months_to_break_even;
    const horizon = Math.max(1, e.horizon_months || 12);
    // zoom on the crossing: twice its month when it comes within the horizon, a little past it when later
    const maxM = be == null ? horizon : be <= horizon ? Math.max(be * 2, 1e-6) : Math.min(be * 1.2, horizon * 4);
    const rawMax = Math.max(up * 1.25, s * maxM, 1e-9), rawMin = Math.min(0, s * maxM);
    const yStep = niceStep(rawMax - rawMin, 4);
    const yMax = Math.ceil(rawMax / yStep - 1e-9) * yStep, yMin = Math.floor(rawMin / yStep + 1e-9) * yStep;
    const x = (m) => L + (m / maxM) * (W - L - R);
    const y = (v) => H - B - ((v - yMin) / (yMax - yMin)) * (H - T - B);
    const parts = [];
    for (const v of ticks(yMin, yMax, yStep)) {
      parts.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>`,
        `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${esc(usd(v))}</text>`);
    }
    for (const m of ticks(0, maxM, niceStep(maxM, 8))) parts.push(`<text x="${x(m)}" y="${H - B + 15}" text-anchor="middle">${+m.toPrecision(3)}</text>`);
    parts.push(`<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">months from now</text>`);
    if (horizon < maxM) parts.push(`<line class="horizon" x1="${x(horizon)}" x2="${x(horizon)}" y1="${T}" y2="${H - B}"/>`,
      `<text x="${x(horizon) - 4}" y="${T + 10}" text-anchor="end">horizon</text>`);
    parts.push(`<path class="area" d="M${x(0)},${y(0)} L${x(maxM)},${y(s * maxM)} L${x(maxM)},${y(0)} Z"/>`,
      `<line class="upfront" x1="${L}" x2="${W - R}" y1="${y(up)}" y2="${y(up)}"/>`,
      `<text x="${W - R - 4}" y="${y(up) - 6}" text-anchor="end">upfront ${esc(usd(up))}</text>`,
      `<line class="savings" x1="${x(0)}" y1="${y(0)}" x2="${x(maxM)}" y2="${y(s * maxM)}"/>`);
    if (be != null && be <= maxM) {
      const anchor = x(be) > W - 140 ? "end" : "start", dx = anchor === "end" ? -8 : 8;
      parts.push(`<line class="guide" x1="${x(be)}" x2="${x(be)}" y1="${y(up)}" y2="${H - B}"/>`,
        `<circle class="cross" cx="${x(be)}" cy="${y(up)}" r="4.5"/>`,
        `<text class="strong" x="${x(be) + dx}" y="${y(up) + 16}" text-anchor="${anchor}">break-even: month ${months(be)}</text>`);
    } else {
      parts.push(`<text class="strong" x="${W - R}" y="${T + 10}" text-anchor="end">${be == null ? "no break-even: savings ≤ 0" : `break-even at month ${Math.round(be)} →`}</text>`);
    }
    return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="Cumulative savings against the upfront cost">${parts.join("")}</svg>`;
  }

  // What a query costs as served, beside routing alone and prompting alone: a cascade's or ensemble's price.
  function perQuery(econ) {
    const actual = econ.actual_cost_per_query_usd, routed = econ.routing_only_cost_per_query_usd;
    if (actual == null || routed == null) return "";
    return `<div class="kv per-query">
        <div><span>per query, as served</span><b>${usd(actual)}</b></div>
        <div><span>routing alone</span><b>${usd(routed)}</b></div>
        <div><span>prompting alone</span><b>${usd(econ.prompted_only_cost_per_query_usd)}</b></div></div>`;
  }

  function economicsSection(econ) {
    const evidence = `<p class="muted window">window ${span(econ.window_s)}, evidence from ${isoMinute(econ.window_start)} UTC: ${num(econ.requests)} requests (${num(econ.prompted_requests)} prompted) in ${span(econ.observed_s)}</p>`;
    const keyNote = econ.verdict == null ? ' <span class="muted">(the verdict needs a key for /v1/economics)</span>' : "";
    if (!econ.enough_traffic) { // nothing to extrapolate yet: say what is missing, draw no break-even
      const text = econ.verdict || shortfall(econ);
      return `<h3>Break-even</h3><span class="verdict wait">${esc(text)}</span>${keyNote}${evidence}`;
    }
    const share = econ.volume_share_of_projection;
    return `<h3>Break-even</h3><div class="kv">
        <div><span>months to break even</span><b>${months(econ.months_to_break_even)}</b></div>
        <div><span>savings / month</span><b>${usd(econ.savings_monthly_usd)}</b></div>
        <div><span>upfront</span><b>${usd(econ.upfront_usd)}</b></div>
        <div><span>saved in window</span><b>${usd(econ.saved_in_window_usd)}</b></div>
        <div><span>projected crossing</span><b>${crossingDate(econ.months_to_break_even)}</b></div></div>
        ${econ.verdict ? `<span class="verdict ${verdictClass(econ.verdict)}">${esc(econ.verdict)}</span>` : ""}${keyNote}
        ${evidence}${perQuery(econ)}
        <div class="bar${share >= 1 ? " over" : ""}" style="margin-top:12px"><span style="width:${Math.min(1, share || 0) * 100}%"></span></div>
        <span class="muted">volume ${compact(econ.observed_monthly_queries)}/mo observed vs ${compact(econ.projected_monthly_queries)}/mo projected (${pct(share)})</span>
        ${breakEvenChart(econ)}`;
  }

  // Percentages of `counts` to one decimal that add up to exactly 100.0 (largest remainder).
  function shares(counts) {
    const sum = counts.reduce((a, b) => a + b, 0);
    if (!sum) return counts.map(() => null);
    const tenths = counts.map((n) => (n * 1000) / sum), out = tenths.map(Math.floor);
    let left = 1000 - out.reduce((a, b) => a + b, 0);
    for (const i of tenths.map((t, i) => i).sort((a, b) => (tenths[b] - out[b]) - (tenths[a] - out[a]))) {
      if (left-- <= 0) break;
      out[i] += 1;
    }
    return out.map((t) => `${(t / 10).toFixed(1)}%`);
  }

  function table(head, rows, cls = "") {
    return `<table${cls ? ` class="${cls}"` : ""}><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</table>`;
  }

  // Feedback per arm (POST /v1/feedback) and when the fine-tune is due for retraining (gateway_retraining).
  function qualitySection(samples, on) {
    const scores = group(samples, "gateway_feedback_score_sum", (l) => l.arm, on);
    const counts = group(samples, "gateway_feedback_score_count", (l) => l.arm, on);
    const verdicts = group(samples, "gateway_feedback_success_total", (l) => `${l.arm}\u0000${l.success}`, on);
    const retraining = new Map(samples.filter((x) => x.name === "gateway_retraining" && on(x.labels))
      .map((x) => [x.labels.quantity, x.value]));
    const arms = [...new Set([...counts.keys(), ...[...verdicts.keys()].map((k) => k.split("\u0000")[0])])].sort();
    if (!arms.length && !retraining.size) return "";
    const baseline = retraining.get("quality_baseline");
    const rows = arms.map((arm) => {
      const n = counts.get(arm) || 0, yes = verdicts.get(`${arm}\u0000true`) || 0, no = verdicts.get(`${arm}\u0000false`) || 0;
      const mean = n ? (scores.get(arm) || 0) / n : null;
      const low = arm === "fine_tuned" && baseline != null && mean != null
        && mean < baseline - (retraining.get("quality_drop_alert") || 0);
      return [`<span class="swatch ${esc(arm)}"></span>${esc(arm)}`, num(n),
        `<span class="${low ? "low" : ""}">${mean == null ? "—" : mean.toFixed(3)}</span>`,
        yes + no ? pct(yes / (yes + no)) : "—"];
    });
    let html = `<h3>Quality and retraining</h3>`;
    if (rows.length) html += table(["arm", "scores", "mean score", "success"], rows, "quality");
    const age = retraining.get("model_age_months"), every = retraining.get("every_months");
    const parts = [];
    if (baseline != null) parts.push(`fine-tuned baseline ${baseline.toFixed(3)} (alert below ${(baseline - (retraining.get("quality_drop_alert") || 0)).toFixed(3)})`);
    if (age != null) parts.push(`model ${months(age)} months old${every != null ? ` of a ${months(every)}-month cadence` : ""}`);
    if (retraining.get("due") === 1) parts.push('<b class="due">retraining due</b>');
    else if (every != null && age != null) parts.push(`retraining in ${months(Math.max(every - age, 0))} months`);
    return html + (parts.length ? `<div class="muted retraining">${parts.join(" · ")}</div>` : "");
  }

  // strategy: cascade: how many fine-tuned answers were escalated, and which acceptor turned them down.
  function cascadeSection(samples, on) {
    const outcomes = group(samples, "gateway_cascade_total", (l) => l.outcome, on);
    const n = [...outcomes.values()].reduce((a, b) => a + b, 0);
    if (!n) return "";
    const escalated = outcomes.get("escalated") || 0, kept = outcomes.get("kept") || 0;
    const rejections = group(samples, "gateway_cascade_rejections_total", (l) => l.acceptor, on);
    let html = `<h3>Cascade</h3><div class="bar prompted"><span style="width:${(escalated / n) * 100}%"></span></div>`;
    html += `<span class="muted cascade">${pct(escalated / n)} of ${num(n)} requests escalated to the prompted arm` +
      `${kept ? `, ${num(kept)} kept the rejected answer (the prompted arm failed)` : ""}</span>`;
    if (rejections.size) html += table(["rejected by", "count"], [...rejections].sort().map(([a, c]) => [esc(a), num(c)]), "rejections");
    return html;
  }

  function ensembleSection(samples, on) {
    const outcomes = group(samples, "gateway_ensemble_total", (l) => l.outcome, on);
    const n = [...outcomes.values()].reduce((a, b) => a + b, 0);
    if (!n) return "";
    return `<h3>Ensemble</h3>` + table(["answer returned", "requests", "share"],
      [...outcomes].sort().map(([o, c]) => [esc(o), num(c), pct(c / n)]), "ensemble");
  }

  function cacheSection(samples, on) {
    const lookups = group(samples, "gateway_cache_lookups_total", (l) => l.result, on);
    const n = [...lookups.values()].reduce((a, b) => a + b, 0);
    if (!n) return "";
    const hits = lookups.get("hit") || 0, saved = total(samples, "gateway_cache_saved_usd_total", on);
    return `<h3>Cache</h3><span class="muted cache">${pct(hits / n)} of ${num(n)} lookups answered from the cache, ${usd(saved)} not spent</span>`;
  }

  function routeCard(route, samples, econ) {
    const on = (l) => l.route === route;
    const requests = total(samples, "gateway_requests_total", on), cost = total(samples, "gateway_cost_usd_total", on);
    const ok = total(samples, "gateway_requests_total", (l) => on(l) && l.status === "200");
    const byArm = group(samples, "gateway_requests_total", (l) => l.arm, on);
    const costArm = group(samples, "gateway_cost_usd_total", (l) => l.arm, on);
    const armRows = [...byArm.keys()].sort().map((arm) => {
      const buckets = (name) => group(samples, name, (l) => l.le, (l) => on(l) && l.arm === arm);
      const latency = buckets("gateway_request_duration_seconds_bucket");
      const n = byArm.get(arm), c = costArm.get(arm) || 0;
      return [`<span class="swatch ${esc(arm)}"></span>${esc(arm)}`, num(n), usd(c), usd(n ? c / n : null),
        secs(quantile(0.5, latency)), secs(quantile(0.95, latency)),
        secs(quantile(0.5, buckets("gateway_time_to_first_token_seconds_bucket")))];
    });
    let html = `<div class="route-head"><h2>${esc(route)}</h2><span class="nums"><b id="requests-${esc(route)}" data-value="${requests}">${num(requests)}</b> requests · <b id="cost-${esc(route)}" data-value="${cost}">${usd(cost)}</b> · ${pct(requests ? ok / requests : null)} ok</span></div>`;
    html += `<h3>Arms</h3>${armRows.length ? table(["arm", "requests", "cost", "per query", "p50 ≈", "p95 ≈", "TTFT p50 ≈"], armRows) : '<p class="muted">No requests yet.</p>'}`;
    const variants = group(samples, "gateway_requests_total", (l) => l.variant, (l) => on(l) && l.variant && l.variant !== "none");
    if (variants.size) { // shares of the experiment's own requests (a forced arm or an error has no variant)
      const vcost = group(samples, "gateway_cost_usd_total", (l) => l.variant, on);
      const rows = [...variants].sort(), share = shares(rows.map(([, n]) => n));
      html += `<h3>A/B variants</h3>${table(["variant", "requests", "share", "cost", "per query"], rows.map(([v, n], i) =>
        [esc(v), num(n), share[i], usd(vcost.get(v) || 0), usd((vcost.get(v) || 0) / n)]), "variants")}`;
    }
    const decisions = group(samples, "gateway_classifier_decisions_total", (l) => l.arm, on);
    const judged = [...decisions.values()].reduce((a, b) => a + b, 0);
    if (judged) {
      const share = (decisions.get("prompted") || 0) / judged;
      html += `<h3>Classifier</h3><div class="bar prompted"><span style="width:${share * 100}%"></span></div><span class="muted">${pct(share)} of ${num(judged)} decisions sent to the prompted arm</span>`;
      const score = (v) => (Number.isFinite(v) ? v.toFixed(4) : "—");
      const gauge = (name) => samples.find((x) => x.name === name && on(x.labels))?.value ?? null; // NaN: none
      const threshold = gauge("gateway_classifier_threshold"), target = gauge("gateway_classifier_strong_share");
      html += `<div class="muted calibration">${Number.isFinite(target) ? `live threshold ${score(threshold)} for a ${pct(target)} target`
        : `fixed threshold ${score(threshold)}`} · ${pct(gauge("gateway_classifier_prompted_share"))} prompted in the calibration window</div>`;
    }
    html += cascadeSection(samples, on) + ensembleSection(samples, on) + cacheSection(samples, on);
    const fallbacks = group(samples, "gateway_fallbacks_total", (l) => `${l.from_target}\u0000${l.to_target}\u0000${l.reason}`, on);
    html += `<h3>Fallbacks</h3>${fallbacks.size ? table(["from → to", "reason", "count"], [...fallbacks].map(([k, n]) => {
      const [from, to, reason] = k.split("\u0000");
      return [`${esc(from)} → ${esc(to)}`, esc(reason), num(n)];
    })) : '<p class="muted">None.</p>'}`;
    html += qualitySection(samples, on);
    if (econ) html += economicsSection(econ);
    return `<section class="card route" data-route="${esc(route)}">${html}</section>`;
  }

  function render(samples, economics) {
    const all = () => true;
    const requests = total(samples, "gateway_requests_total", all), cost = total(samples, "gateway_cost_usd_total", all);
    const tokens = group(samples, "gateway_tokens_total", (l) => l.direction);
    const put = (id, value, text) => { $(id).textContent = text; $(id).dataset.value = value; };
    put("total-requests", requests, num(requests));
    put("total-cost", cost, usd(cost));
    const saved = economics.map((e) => e.saved_in_window_usd).filter((v) => v != null);
    put("total-saved", saved.reduce((a, b) => a + b, 0), saved.length ? usd(saved.reduce((a, b) => a + b, 0)) : "—");
    $("total-tokens").textContent = `${compact(tokens.get("input") || 0)} / ${compact(tokens.get("output") || 0)}`;
    const econ = new Map(economics.map((e) => [e.route, e]));
    const counts = group(samples, "gateway_requests_total", (l) => l.route);
    // Requests refused before a route was known (auth, unreadable body, unknown model) carry route="unknown":
    // a line of their own, not a route that looks 0% ok.
    const rejected = group(samples, "gateway_requests_total", (l) => l.status, (l) => l.route === REJECTED);
    const nRejected = [...rejected.values()].reduce((a, b) => a + b, 0);
    counts.delete(REJECTED);
    $("rejected").hidden = !nRejected;
    $("rejected").textContent = `${num(nRejected)} request${nRejected === 1 ? "" : "s"} rejected before a route was known (${
      [...rejected].sort().map(([status, n]) => `${status}: ${num(n)}`).join(", ")})`;
    const routes = [...new Set([...counts.keys(), ...econ.keys()])]
      .sort((a, b) => (econ.has(b) - econ.has(a)) || (counts.get(b) || 0) - (counts.get(a) || 0) || a.localeCompare(b));
    $("routes").innerHTML = routes.length ? routes.map((r) => routeCard(r, samples, econ.get(r))).join("")
      : '<p class="empty">No requests yet.</p>';
  }

  async function refresh() {
    try {
      const [metrics, economics] = await Promise.all([
        fetch("metrics", { cache: "no-store" }).then((r) => { if (!r.ok) throw new Error(`/metrics: HTTP ${r.status}`); return r.text(); }),
        fetch("v1/economics", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)).catch(() => null),
      ]);
      const samples = parseMetrics(metrics);
      render(samples, economics ? economics.routes : economicsFromGauges(samples));
      $("last-updated").textContent = new Date().toLocaleTimeString("en-GB");
      $("live-dot").className = "dot ok";
      $("error").hidden = true;
      document.body.dataset.state = "ready";
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes) + 1);
    } catch (err) {
      $("live-dot").className = "dot bad";
      $("error").textContent = `Refresh failed: ${err.message}`;
      $("error").hidden = false;
    }
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();
