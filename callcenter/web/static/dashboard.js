// Supervisor review console: the dashboard (/review/dashboard).
// Charts are inline SVG drawn here (createElementNS); no chart library. Presentation is
// by class (style-src 'self'), geometry by SVG attributes. Plain ES2020.
"use strict";

(() => {
  const C = window.Callbot; // common.js
  const { el, valueText, detailText, ApiError, retriable, showGlobalError, loadLang, CATEGORY_LABELS, QA_LABELS } = C;

  // ---------------------------------------------------------------- strings

  const I18N = {
    vi: {
      ...C.I18N.vi,
      title: "Thống kê cuộc gọi 113/114",
      nav: "Điều hướng",
      nav_calls: "Cuộc gọi",
      nav_dashboard: "Thống kê",
      f_from: "Từ",
      f_to: "Đến",
      f_line: "Đường dây",
      opt_all: "Tất cả",
      apply: "Xem",
      last7: "7 ngày qua",
      last24: "24 giờ qua",
      export: "Xuất CSV",
      c_totals: "Tổng quan",
      calls_total: "cuộc gọi",
      c_handoff: "tỉ lệ chuyển cán bộ",
      latency_median: "độ trễ trả lời, trung vị",
      latency_p95: "độ trễ trả lời, p95",
      c_hourly: "Số cuộc gọi theo giờ",
      c_categories: "Cơ cấu loại sự việc",
      c_latency: "Phân bố độ trễ trả lời của bot",
      c_latency_sub: "Từ lúc người gọi dừng nói đến tiếng đầu của câu trả lời; mục tiêu 800 ms.",
      c_qa: "Tỉ lệ đạt các tiêu chí QA",
      c_asr: "Phân bố độ tin cậy nhận dạng giọng nói",
      c_asr_sub: "Mỗi lượt nói của người gọi; dưới 0,6 là tin cậy thấp.",
      ax_hour: "Giờ (giờ địa phương)",
      ax_calls_per_hour: "Cuộc gọi / giờ",
      ax_calls: "Số cuộc gọi",
      ax_latency: "Độ trễ trả lời",
      ax_replies: "Số câu trả lời",
      ax_rate: "Tỉ lệ đạt (%)",
      ax_confidence: "Độ tin cậy nhận dạng",
      ax_turns: "Số lượt nói",
      tip_hour: "{time} – đường dây {line}: {n} cuộc gọi",
      tip_category: "{label}: {n} cuộc gọi ({p}%)",
      tip_latency: "{range}: {n} câu trả lời",
      tip_qa: "{label}: đạt {p}%",
      tip_asr: "Độ tin cậy {range}: {n} lượt nói",
      mark_median: "trung vị {v}",
      mark_p95: "p95 {v}",
      mark_target: "mục tiêu 800 ms",
      mark_low: "ngưỡng 0,6",
      no_data: "Không có dữ liệu trong khoảng thời gian này.",
      range_text: "{from} – {to}",
      updated: "Cập nhật lúc {time}",
      cat_unknown: "Chưa phân loại",
      err_bad_range: "Thời điểm \"Từ\" phải trước \"Đến\".",
      forbidden_hint: "Trang này chỉ dành cho trưởng ca và quản trị viên.",
    },
    en: {
      ...C.I18N.en,
      title: "Call statistics 113/114",
      nav: "Navigation",
      nav_calls: "Calls",
      nav_dashboard: "Dashboard",
      f_from: "From",
      f_to: "To",
      f_line: "Line",
      opt_all: "All",
      apply: "Show",
      last7: "Last 7 days",
      last24: "Last 24 hours",
      export: "Export CSV",
      c_totals: "Overview",
      calls_total: "calls",
      c_handoff: "handed to a human",
      latency_median: "reply latency, median",
      latency_p95: "reply latency, p95",
      c_hourly: "Calls per hour",
      c_categories: "Category mix",
      c_latency: "Bot reply latency",
      c_latency_sub: "From the end of the caller's speech to the first audio of the reply; target 800 ms.",
      c_qa: "QA pass rates",
      c_asr: "Speech recognition confidence",
      c_asr_sub: "Per caller turn; below 0.6 is low confidence.",
      ax_hour: "Hour (local time)",
      ax_calls_per_hour: "Calls / hour",
      ax_calls: "Calls",
      ax_latency: "Reply latency",
      ax_replies: "Replies",
      ax_rate: "Pass rate (%)",
      ax_confidence: "ASR confidence",
      ax_turns: "Caller turns",
      tip_hour: "{time} – line {line}: {n} calls",
      tip_category: "{label}: {n} calls ({p}%)",
      tip_latency: "{range}: {n} replies",
      tip_qa: "{label}: {p}% passed",
      tip_asr: "Confidence {range}: {n} turns",
      mark_median: "median {v}",
      mark_p95: "p95 {v}",
      mark_target: "target 800 ms",
      mark_low: "0.6 threshold",
      no_data: "No data in this period.",
      range_text: "{from} – {to}",
      updated: "Updated {time}",
      cat_unknown: "Not classified",
      err_bad_range: "\"From\" must be before \"To\".",
      forbidden_hint: "This page is for supervisors and admins only.",
    },
  };

  const RETRY_MS = 5000;
  const LATENCY_TARGET_MS = 800;
  const LOW_CONFIDENCE = 0.6;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HOUR_MS = 3600 * 1000;

  // ---------------------------------------------------------------- state

  const state = {
    lang: "vi",
    me: null,
    csrf: "",
    redirecting: false,
    forbidden: false,
    data: null,
    range: null, // {from: Date, to: Date, line}
    loadSeq: 0,
    retryTimer: 0,
    loadedAt: null,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (sel) => document.querySelector(sel);

  function t(key, vars) {
    return C.translate(I18N, state.lang, key, vars);
  }

  function locale() {
    return C.locale(state.lang);
  }

  function pick(pair, fallback) {
    return C.pick(pair, fallback, state.lang);
  }

  function categoryLabel(code) {
    if (code === null || code === undefined || code === "" || code === "unknown" || code === "null" || code === "none") return t("cat_unknown");
    return pick(CATEGORY_LABELS[code], String(code));
  }

  function qaLabel(name) {
    return pick(QA_LABELS[name], String(name).replace(/_/g, " "));
  }

  function num(n, digits) {
    return Number(n).toLocaleString(locale(), { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function fmtMs(ms) {
    if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
    if (ms < 1000) return num(Math.round(ms)) + " ms";
    return num(ms / 1000, 2) + " s";
  }

  function fmtPct(x, digits) {
    if (typeof x !== "number" || !Number.isFinite(x)) return "—";
    return num(x * 100, digits === undefined ? 0 : digits) + "%";
  }

  function fmtDateTime(d) {
    return d.toLocaleDateString(locale()) + " " + d.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
  }

  // An SVG element; `text` becomes its text content (for <text> and <title>).
  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (name === "text") node.textContent = String(value);
        else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
      }
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function svgRoot(width, height, label) {
    return s("svg", {
      viewBox: "0 0 " + width + " " + height,
      width,
      height,
      role: "img",
      "aria-label": label,
      preserveAspectRatio: "xMinYMin meet",
    });
  }

  // Drawn at the container's own width, so that 1 SVG unit is 1 CSS pixel and text keeps its size.
  function widthOf(container, fallback) {
    const width = Math.floor(container.clientWidth || 0);
    return width >= 280 ? width : fallback;
  }

  function r1(x) {
    return Math.round(x * 10) / 10;
  }

  // Round tick steps: 1, 2, 5 × 10^n, about `count` of them up to `max`.
  function niceTicks(max, count) {
    const top = max > 0 ? max : 1;
    const raw = top / (count || 5);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) || 10 * power;
    const step = Math.max(unit, Number.isInteger(top) && top < 5 ? 1 : unit);
    const ticks = [];
    for (let v = 0; v <= top + step * 0.999; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
    if (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  function noData(container, width, height, label) {
    const svg = svgRoot(width, height, label);
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "no-data", text: t("no_data") }));
    container.replaceChildren(svg);
  }

  // Y axis with grid lines for a vertical-bar chart.
  function yAxis(svg, box, ticks, format, title) {
    const maxV = ticks[ticks.length - 1] || 1;
    for (const v of ticks) {
      const y = r1(box.y + box.h - (v / maxV) * box.h);
      svg.append(s("line", { x1: box.x, x2: box.x + box.w, y1: y, y2: y, class: v === 0 ? "ax" : "grid" }));
      svg.append(s("text", { x: box.x - 6, y: y + 4, "text-anchor": "end", class: "ax-text", text: format(v) }));
    }
    svg.append(s("line", { x1: box.x, x2: box.x, y1: box.y, y2: box.y + box.h, class: "ax" }));
    const cy = box.y + box.h / 2;
    svg.append(s("text", { x: 14, y: cy, transform: "rotate(-90 14 " + cy + ")", "text-anchor": "middle", class: "ax-title", text: title }));
    return maxV;
  }

  // ---------------------------------------------------------------- API

  function goLogin() {
    C.goLogin(state);
  }

  function api(method, path, body) {
    return C.api({ t, csrf: state.csrf, goLogin }, method, path, body);
  }

  function showForbidden() {
    state.forbidden = true;
    $("#forbidden").hidden = false;
    $("#content").hidden = true;
    showGlobalError("");
  }

  // ---------------------------------------------------------------- dates

  function isoWithOffset(d) {
    const pad = (n) => String(Math.abs(Math.trunc(n))).padStart(2, "0");
    const offset = -d.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      sign + pad(Math.abs(offset) / 60) + ":" + pad(Math.abs(offset) % 60);
  }

  function toLocalInput(d) {
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function fromLocalInput(value) {
    if (!value) return null;
    const d = new Date(value);
    return Number.isFinite(d.getTime()) ? d : null;
  }

  function setLastHours(hours) {
    const to = new Date();
    to.setSeconds(0, 0);
    to.setMinutes(to.getMinutes() + 1); // include the current minute
    const from = new Date(to.getTime() - hours * HOUR_MS);
    $("#d-from").value = toLocalInput(from);
    $("#d-to").value = toLocalInput(to);
  }

  function readRange() {
    const from = fromLocalInput($("#d-from").value);
    const to = fromLocalInput($("#d-to").value);
    return { from, to, line: $("#d-line").value };
  }

  // The range both as from/to (the documented names) and since/until (what the
  // calls search takes); the server ignores the pair it does not read.
  function statsParams(range) {
    const params = new URLSearchParams();
    params.set("from", isoWithOffset(range.from));
    params.set("to", isoWithOffset(range.to));
    params.set("since", isoWithOffset(range.from));
    params.set("until", isoWithOffset(range.to));
    if (range.line) params.set("line", range.line);
    return params;
  }

  function syncUrlAndExport(range) {
    const params = statsParams(range);
    $("#export-csv").setAttribute("href", "/api/v1/review/export.csv?" + params.toString());
    const page = new URLSearchParams();
    page.set("from", toLocalInput(range.from));
    page.set("to", toLocalInput(range.to));
    if (range.line) page.set("line", range.line);
    window.history.replaceState(null, "", window.location.pathname + "?" + page.toString());
  }

  function rangeFromUrl() {
    const params = new URLSearchParams(window.location.search);
    const from = fromLocalInput(params.get("from") || "");
    const to = fromLocalInput(params.get("to") || "");
    if (from && to && from < to) {
      $("#d-from").value = toLocalInput(from);
      $("#d-to").value = toLocalInput(to);
    } else {
      setLastHours(7 * 24);
    }
    const line = params.get("line");
    if (line === "113" || line === "114") $("#d-line").value = line;
  }

  // ---------------------------------------------------------------- language

  function setLang(lang) {
    state.lang = C.saveLang(lang);
    applyLang();
  }

  function applyLang() {
    C.applyStaticTexts(t, state.lang);
    document.title = t("title");
    renderUser();
    render();
  }

  function renderUser() {
    C.renderUser(state.me, t);
  }

  // ---------------------------------------------------------------- loading

  async function loadStats() {
    if (state.forbidden) return;
    const range = readRange();
    if (!range.from || !range.to || range.from >= range.to) {
      showGlobalError(t("err_bad_range"));
      return;
    }
    showGlobalError("");
    syncUrlAndExport(range);
    const seq = ++state.loadSeq;
    window.clearTimeout(state.retryTimer);
    $("#dash-status").textContent = t("loading");
    try {
      const data = await api("GET", "/api/v1/review/stats?" + statsParams(range).toString());
      if (seq !== state.loadSeq) return;
      state.data = data || {};
      state.range = range;
      state.loadedAt = new Date();
      render();
    } catch (err) {
      if (seq !== state.loadSeq || err.status === 401) return;
      if (err.status === 403) {
        showForbidden();
        return;
      }
      $("#dash-status").textContent = "";
      showGlobalError(err.message);
      if (retriable(err)) state.retryTimer = window.setTimeout(loadStats, RETRY_MS);
    }
  }

  // ---------------------------------------------------------------- rendering

  function render() {
    const data = state.data;
    if (!data || !state.range) return;
    $("#dash-status").textContent = state.loadedAt
      ? t("updated", { time: state.loadedAt.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" }) })
      : "";
    $("#range-text").textContent = t("range_text", { from: fmtDateTime(state.range.from), to: fmtDateTime(state.range.to) });
    $("#calls-total").textContent = typeof data.calls === "number" ? num(data.calls) : "—";
    $("#handoff-rate").textContent = fmtPct(data.handoff_rate, 1);
    const latency = data.latency_ms || {};
    $("#latency-median").textContent = fmtMs(latency.median);
    $("#latency-p95").textContent = fmtMs(latency.p95);
    drawHourly($("#chart-hourly"), Array.isArray(data.calls_per_hour) ? data.calls_per_hour : []);
    drawCategories($("#chart-categories"), data.categories && typeof data.categories === "object" ? data.categories : {});
    drawLatency($("#chart-latency"), latency);
    drawQa($("#chart-qa"), data.qa_pass_rates && typeof data.qa_pass_rates === "object" ? data.qa_pass_rates : {});
    drawAsr($("#chart-asr"), data.asr_confidence || {});
  }

  // Calls per hour, stacked by line, on a time axis.
  function drawHourly(container, rows) {
    const W = widthOf(container, 1000);
    const H = 270;
    const label = t("c_hourly");
    const start = Math.floor(state.range.from.getTime() / HOUR_MS) * HOUR_MS;
    const end = Math.max(start + HOUR_MS, Math.ceil(state.range.to.getTime() / HOUR_MS) * HOUR_MS);
    const byHour = new Map(); // hour ms -> {113: n, 114: n}
    let total = 0;
    for (const row of rows) {
      const ms = Date.parse(row && row.hour);
      const count = Number(row && row.count);
      if (!Number.isFinite(ms) || !Number.isFinite(count) || count <= 0) continue;
      const hour = Math.floor(ms / HOUR_MS) * HOUR_MS;
      const slot = byHour.get(hour) || { "113": 0, "114": 0 };
      const line = String(row.line) === "114" ? "114" : "113";
      slot[line] += count;
      byHour.set(hour, slot);
      total += count;
    }
    if (!total) {
      noData(container, W, 120, label);
      return;
    }
    const lo = Math.min(start, ...byHour.keys());
    const hi = Math.max(end, ...[...byHour.keys()].map((h) => h + HOUR_MS));
    const hours = Math.max(1, Math.round((hi - lo) / HOUR_MS));
    const box = { x: 56, y: 10, w: W - 56 - 14, h: H - 10 - 58 };
    const svg = svgRoot(W, H, label);
    let maxCount = 0;
    for (const slot of byHour.values()) maxCount = Math.max(maxCount, slot["113"] + slot["114"]);
    const ticks = niceTicks(maxCount, 4);
    const maxV = yAxis(svg, box, ticks, (v) => num(v), t("ax_calls_per_hour"));
    const slotW = box.w / hours;
    const barW = Math.max(0.8, slotW * 0.82);
    const xOf = (ms) => box.x + ((ms - lo) / HOUR_MS) * slotW;
    // time axis: a tick every `step` hours, on local midnights when step is whole days
    const steps = [1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720];
    const step = steps.find((n) => hours / n <= 12) || 720;
    const first = new Date(lo);
    if (step >= 24) {
      first.setHours(0, 0, 0, 0);
      if (first.getTime() < lo) first.setDate(first.getDate() + 1);
    } else {
      first.setMinutes(0, 0, 0);
      while (first.getHours() % step !== 0) first.setHours(first.getHours() + 1);
    }
    for (let tick = new Date(first); tick.getTime() <= hi; ) {
      const x = r1(xOf(tick.getTime()));
      svg.append(s("line", { x1: x, x2: x, y1: box.y + box.h, y2: box.y + box.h + 5, class: "ax" }));
      const date = tick.toLocaleDateString(locale(), { day: "2-digit", month: "2-digit" });
      const time = tick.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
      const text = s("text", { x, y: box.y + box.h + 18, "text-anchor": "middle", class: "ax-text" });
      if (step >= 24) text.textContent = date;
      else if (tick.getHours() === 0 || tick.getTime() === first.getTime()) {
        text.append(s("tspan", { x, text: time }), s("tspan", { x, dy: 13, text: date }));
      } else text.textContent = time;
      svg.append(text);
      if (step >= 24) tick.setDate(tick.getDate() + step / 24);
      else tick.setHours(tick.getHours() + step);
    }
    svg.append(s("text", { x: box.x + box.w / 2, y: H - 6, "text-anchor": "middle", class: "ax-title", text: t("ax_hour") }));
    const bars = s("g", { class: "bars" });
    for (const [hour, slot] of [...byHour.entries()].sort((a, b) => a[0] - b[0])) {
      const x = r1(xOf(hour) + (slotW - barW) / 2);
      let base = box.y + box.h;
      const when = new Date(hour);
      const whenText = when.toLocaleDateString(locale(), { day: "2-digit", month: "2-digit" }) + " " +
        when.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
      for (const line of ["113", "114"]) {
        const n = slot[line];
        if (!n) continue;
        const h = (n / maxV) * box.h;
        base -= h;
        bars.append(s("rect", {
          x, y: r1(base), width: r1(barW), height: r1(Math.max(h, 0.5)),
          class: "bar b" + line, "data-hour": when.toISOString(), "data-line": line, "data-count": n,
        }, s("title", { text: t("tip_hour", { time: whenText, line, n: num(n) }) })));
      }
    }
    svg.append(bars);
    container.replaceChildren(svg);
  }

  // Category mix: horizontal bars, largest first.
  function drawCategories(container, categories) {
    const label = t("c_categories");
    const rows = Object.entries(categories)
      .map(([code, n]) => [code, Number(n)])
      .filter(([, n]) => Number.isFinite(n) && n > 0)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const W = widthOf(container, 560);
    if (!rows.length) {
      noData(container, W, 100, label);
      return;
    }
    const total = rows.reduce((sum, [, n]) => sum + n, 0);
    const rowH = 24;
    const box = { x: 190, y: 8, w: W - 190 - 50, h: rows.length * rowH };
    const H = box.y + box.h + 44;
    const svg = svgRoot(W, H, label);
    const ticks = niceTicks(rows[0][1], 4);
    const maxV = ticks[ticks.length - 1] || 1;
    for (const v of ticks) {
      const x = r1(box.x + (v / maxV) * box.w);
      svg.append(s("line", { x1: x, x2: x, y1: box.y, y2: box.y + box.h, class: v === 0 ? "ax" : "grid" }));
      svg.append(s("text", { x, y: box.y + box.h + 15, "text-anchor": "middle", class: "ax-text", text: num(v) }));
    }
    rows.forEach(([code, n], i) => {
      const y = box.y + i * rowH;
      const name = categoryLabel(code);
      const w = (n / maxV) * box.w;
      svg.append(s("text", { x: box.x - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "ax-text", text: name.length > 30 ? name.slice(0, 29) + "…" : name }));
      svg.append(s("rect", { x: box.x, y: y + 4, width: r1(Math.max(w, 1)), height: rowH - 8, class: "bar cat", "data-category": code, "data-count": n },
        s("title", { text: t("tip_category", { label: name, n: num(n), p: num((n / total) * 100, 1) }) })));
      svg.append(s("text", { x: r1(box.x + w + 5), y: y + rowH / 2 + 4, class: "bar-label", text: num(n) }));
    });
    svg.append(s("text", { x: box.x + box.w / 2, y: H - 6, "text-anchor": "middle", class: "ax-title", text: t("ax_calls") }));
    container.replaceChildren(svg);
  }

  // Buckets [{le, count}] (counts per bucket, upper bounds ascending; le null/"+Inf" = overflow).
  function normalBuckets(buckets) {
    return (Array.isArray(buckets) ? buckets : [])
      .map((b) => {
        const le = b && (b.le === null || b.le === undefined || b.le === "+Inf" || b.le === "inf" ? Infinity : Number(b.le));
        return { le: Number.isNaN(le) ? Infinity : le, count: Math.max(0, Number(b && b.count) || 0) };
      })
      .sort((a, b) => a.le - b.le);
  }

  // Reply latency histogram with median, p95 and the 800 ms target.
  function drawLatency(container, latency) {
    const label = t("c_latency");
    const buckets = normalBuckets(latency.buckets);
    const W = widthOf(container, 560);
    const H = 290;
    const total = buckets.reduce((sum, b) => sum + b.count, 0);
    if (!buckets.length || !total) {
      noData(container, W, 100, label);
      return;
    }
    const box = { x: 56, y: 46, w: W - 56 - 12, h: H - 46 - 50 };
    const svg = svgRoot(W, H, label);
    const maxV = yAxis(svg, box, niceTicks(Math.max(...buckets.map((b) => b.count)), 4), (v) => num(v), t("ax_replies"));
    const slotW = box.w / buckets.length;
    const lows = buckets.map((b, i) => (i === 0 ? 0 : buckets[i - 1].le));
    const short = (ms) => (ms >= 1000 ? num(ms / 1000, 2) + "s" : num(ms) + "ms");
    buckets.forEach((b, i) => {
      const x = box.x + i * slotW;
      const h = (b.count / maxV) * box.h;
      const range = Number.isFinite(b.le) ? num(lows[i]) + "–" + num(b.le) + " ms" : "> " + num(lows[i]) + " ms";
      svg.append(s("rect", {
        x: r1(x + slotW * 0.08), y: r1(box.y + box.h - h), width: r1(slotW * 0.84), height: r1(Math.max(h, b.count ? 0.5 : 0)),
        class: "bar" + (Number.isFinite(b.le) && b.le <= LATENCY_TARGET_MS ? "" : " low"), "data-le": Number.isFinite(b.le) ? b.le : "inf", "data-count": b.count,
      }, s("title", { text: t("tip_latency", { range, n: num(b.count) }) })));
      // bucket edges on the axis: the upper bound at the right edge of its bar
      const every = Math.max(1, Math.ceil(buckets.length / Math.max(1, Math.floor(box.w / 42))));
      if (Number.isFinite(b.le)) {
        const xe = r1(x + slotW);
        svg.append(s("line", { x1: xe, x2: xe, y1: box.y + box.h, y2: box.y + box.h + 4, class: "ax" }));
        if (i % every === every - 1 || i === buckets.length - 2) {
          svg.append(s("text", { x: xe, y: box.y + box.h + 16, "text-anchor": "middle", class: "ax-text", text: short(b.le) }));
        }
      } else if (slotW >= 44) {
        svg.append(s("text", { x: r1(x + slotW / 2), y: box.y + box.h + 16, "text-anchor": "middle", class: "ax-text", text: ">" + short(lows[i]) }));
      }
    });
    svg.append(s("text", { x: box.x, y: box.y + box.h + 16, "text-anchor": "middle", class: "ax-text", text: "0" }));
    svg.append(s("line", { x1: box.x, x2: box.x, y1: box.y + box.h, y2: box.y + box.h + 4, class: "ax" }));
    svg.append(s("text", { x: box.x + box.w / 2, y: H - 6, "text-anchor": "middle", class: "ax-title", text: t("ax_latency") }));
    // a value's position: linear inside its bucket
    const xOf = (v) => {
      for (let i = 0; i < buckets.length; i += 1) {
        const lo = lows[i];
        const hi = buckets[i].le;
        if (v <= hi) {
          const width = Number.isFinite(hi) ? hi - lo : lo || 1;
          const frac = Number.isFinite(hi) ? (v - lo) / (width || 1) : Math.min(1, (v - lo) / width);
          return box.x + (i + Math.max(0, Math.min(1, frac))) * slotW;
        }
      }
      return box.x + box.w;
    };
    const marks = [
      ["mark-target", LATENCY_TARGET_MS, t("mark_target")],
      ["mark-median", latency.median, t("mark_median", { v: fmtMs(latency.median) })],
      ["mark-p95", latency.p95, t("mark_p95", { v: fmtMs(latency.p95) })],
    ];
    const placed = [];
    for (const [cls, value, text] of marks) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      const x = r1(xOf(value));
      svg.append(s("line", { x1: x, x2: x, y1: box.y - 4, y2: box.y + box.h, class: "mark-line " + cls, "data-mark": cls.replace("mark-", "") },
        s("title", { text })));
      // stagger the labels so that close marks do not overlap
      let row = 0;
      while (placed.some(([px, pr]) => pr === row && Math.abs(px - x) < 110)) row += 1;
      placed.push([x, row]);
      const anchor = x > box.x + box.w - 80 ? "end" : x < box.x + 60 ? "start" : "middle";
      svg.append(s("text", { x, y: box.y - 8 - row * 13, "text-anchor": anchor, class: "mark-text " + cls, text }));
    }
    container.replaceChildren(svg);
  }

  // QA pass rates: horizontal bars on a 0–100 % scale.
  function drawQa(container, rates) {
    const label = t("c_qa");
    const rows = Object.entries(rates)
      .map(([name, rate]) => [name, Number(rate)])
      .filter(([, rate]) => Number.isFinite(rate));
    const W = widthOf(container, 560);
    if (!rows.length) {
      noData(container, W, 100, label);
      return;
    }
    const rowH = 24;
    const box = { x: 210, y: 8, w: W - 210 - 50, h: rows.length * rowH };
    const H = box.y + box.h + 44;
    const svg = svgRoot(W, H, label);
    for (const v of [0, 25, 50, 75, 100]) {
      const x = r1(box.x + (v / 100) * box.w);
      svg.append(s("line", { x1: x, x2: x, y1: box.y, y2: box.y + box.h, class: v === 0 ? "ax" : "grid" }));
      svg.append(s("text", { x, y: box.y + box.h + 15, "text-anchor": "middle", class: "ax-text", text: v + "%" }));
    }
    rows.forEach(([name, rate], i) => {
      const y = box.y + i * rowH;
      const clamped = Math.max(0, Math.min(1, rate));
      const w = clamped * box.w;
      const grade = clamped >= 0.9 ? "qa-good" : clamped >= 0.7 ? "qa-mid" : "qa-bad";
      const text = qaLabel(name);
      svg.append(s("text", { x: box.x - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "ax-text", text: text.length > 32 ? text.slice(0, 31) + "…" : text }));
      svg.append(s("rect", { x: box.x, y: y + 4, width: box.w, height: rowH - 8, class: "bar-bg" }));
      svg.append(s("rect", { x: box.x, y: y + 4, width: r1(Math.max(w, 1)), height: rowH - 8, class: "bar " + grade, "data-check": name, "data-rate": rate },
        s("title", { text: t("tip_qa", { label: text, p: num(clamped * 100, 1) }) })));
      svg.append(s("text", { x: r1(box.x + box.w + 5), y: y + rowH / 2 + 4, class: "bar-label", text: fmtPct(clamped) }));
    });
    svg.append(s("text", { x: box.x + box.w / 2, y: H - 6, "text-anchor": "middle", class: "ax-title", text: t("ax_rate") }));
    container.replaceChildren(svg);
  }

  // ASR confidence histogram on a 0–1 axis, the buckets under 0.6 in amber.
  function drawAsr(container, asr) {
    const label = t("c_asr");
    const buckets = normalBuckets(asr.buckets).filter((b) => Number.isFinite(b.le));
    const W = widthOf(container, 560);
    const H = 260;
    const total = buckets.reduce((sum, b) => sum + b.count, 0);
    if (!buckets.length || !total) {
      noData(container, W, 100, label);
      return;
    }
    const box = { x: 56, y: 22, w: W - 56 - 14, h: H - 22 - 56 };
    const svg = svgRoot(W, H, label);
    const maxV = yAxis(svg, box, niceTicks(Math.max(...buckets.map((b) => b.count)), 4), (v) => num(v), t("ax_turns"));
    const top = Math.max(1, buckets[buckets.length - 1].le);
    const xOf = (v) => box.x + (v / top) * box.w;
    buckets.forEach((b, i) => {
      const lo = i === 0 ? 0 : buckets[i - 1].le;
      const x0 = xOf(lo);
      const x1 = xOf(b.le);
      const h = (b.count / maxV) * box.h;
      const range = num(lo, 2) + "–" + num(b.le, 2);
      svg.append(s("rect", {
        x: r1(x0 + 1), y: r1(box.y + box.h - h), width: r1(Math.max(1, x1 - x0 - 2)), height: r1(Math.max(h, b.count ? 0.5 : 0)),
        class: "bar" + (b.le <= LOW_CONFIDENCE + 1e-9 ? " low" : ""), "data-le": b.le, "data-count": b.count,
      }, s("title", { text: t("tip_asr", { range, n: num(b.count) }) })));
    });
    for (let v = 0; v <= top + 1e-9; v += top / 10) {
      const x = r1(xOf(v));
      svg.append(s("line", { x1: x, x2: x, y1: box.y + box.h, y2: box.y + box.h + 5, class: "ax" }));
      svg.append(s("text", { x, y: box.y + box.h + 18, "text-anchor": "middle", class: "ax-text", text: num(v, 1) }));
    }
    const xLow = r1(xOf(LOW_CONFIDENCE));
    svg.append(s("line", { x1: xLow, x2: xLow, y1: box.y - 4, y2: box.y + box.h, class: "mark-line mark-target" }, s("title", { text: t("mark_low") })));
    svg.append(s("text", { x: xLow, y: box.y - 8, "text-anchor": "middle", class: "mark-text mark-target", text: t("mark_low") }));
    svg.append(s("text", { x: box.x + box.w / 2, y: H - 6, "text-anchor": "middle", class: "ax-title", text: t("ax_confidence") }));
    container.replaceChildren(svg);
  }

  // ---------------------------------------------------------------- wiring

  async function logout() {
    try {
      await api("POST", "/auth/logout", {});
    } catch (err) {
      if (err.status === 401) return;
    }
    state.redirecting = true;
    window.location.assign("/login");
  }

  function wire() {
    for (const button of document.querySelectorAll(".lang-switch button")) {
      button.addEventListener("click", () => setLang(button.dataset.lang));
    }
    $("#logout-button").addEventListener("click", logout);
    $("#range").addEventListener("submit", (event) => {
      event.preventDefault();
      loadStats();
    });
    $("#d-line").addEventListener("change", loadStats);
    let resizeTimer = 0;
    let lastWidth = window.innerWidth;
    window.addEventListener("resize", () => {
      window.clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(() => {
        if (window.innerWidth === lastWidth) return;
        lastWidth = window.innerWidth;
        render();
      }, 150);
    });
    $("#d-last7").addEventListener("click", () => {
      setLastHours(7 * 24);
      loadStats();
    });
    $("#d-last24").addEventListener("click", () => {
      setLastHours(24);
      loadStats();
    });
  }

  async function start() {
    try {
      const me = await api("GET", "/auth/me");
      state.me = me || {};
      state.csrf = (me && me.csrf_token) || "";
      showGlobalError("");
    } catch (err) {
      if (err.status === 401) return;
      if (err.status === 403) {
        showForbidden();
        return;
      }
      showGlobalError(err.message);
      window.setTimeout(start, RETRY_MS);
      return;
    }
    renderUser();
    loadStats();
  }

  function boot() {
    state.lang = loadLang();
    rangeFromUrl();
    const range = readRange();
    if (range.from && range.to) syncUrlAndExport(range);
    wire();
    applyLang();
    start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
