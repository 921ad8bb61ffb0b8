// Shared helpers for the staff pages (dispatch, review, review-call, dashboard).
// A classic script, loaded before each page's own script; it defines one global, window.Callbot.
// Plain ES2020, no framework. Every piece of data from the server is set with
// textContent / setAttribute, never innerHTML.
"use strict";

window.Callbot = (() => {
  // ------------------------------------------------- strings shared by every page

  const I18N = {
    vi: {
      err_forbidden: "Không được phép",
      err_generic: "Lỗi {status}",
      err_network: "Không kết nối được máy chủ.",
      err_session: "Phiên đăng nhập đã hết.",
      err_unavailable: "Dịch vụ tạm thời gián đoạn, đang thử lại…",
      err_unavailable_action: "Dịch vụ tạm thời gián đoạn, chưa thực hiện được. Vui lòng thử lại.",
      line_113: "113 – Công an",
      line_114: "114 – Cứu hỏa, cứu nạn",
      loading: "Đang tải…",
      logout: "Đăng xuất",
      role_admin: "Quản trị",
      role_dispatcher: "Điều phối viên",
      role_supervisor: "Trưởng ca",
    },
    en: {
      err_forbidden: "Not allowed",
      err_generic: "Error {status}",
      err_network: "Cannot reach the server.",
      err_session: "Your session has ended.",
      err_unavailable: "Service temporarily unavailable, retrying…",
      err_unavailable_action: "Service temporarily unavailable; nothing was changed. Please try again.",
      line_113: "113 – Police",
      line_114: "114 – Fire & rescue",
      loading: "Loading…",
      logout: "Log out",
      role_admin: "Admin",
      role_dispatcher: "Dispatcher",
      role_supervisor: "Supervisor",
    },
  };

  const CATEGORY_LABELS = {
    theft: ["Trộm cắp tài sản", "Theft"],
    robbery: ["Cướp tài sản", "Robbery"],
    assault: ["Đánh nhau, hành hung", "Assault"],
    weapon_threat: ["Đe dọa bằng vũ khí", "Threat with a weapon"],
    domestic_violence: ["Bạo lực gia đình", "Domestic violence"],
    missing_child: ["Trẻ em mất tích", "Missing child"],
    public_disorder: ["Gây rối trật tự công cộng", "Public disorder"],
    traffic_accident: ["Tai nạn giao thông", "Traffic accident"],
    fire: ["Cháy", "Fire"],
    explosion_gas_leak: ["Nổ, rò rỉ khí gas", "Explosion / gas leak"],
    explosion_gas: ["Nổ, rò rỉ khí gas", "Explosion / gas leak"],
    collapse_trapped: ["Sập đổ, người mắc kẹt", "Collapse, people trapped"],
    collapse: ["Sập đổ", "Collapse"],
    drowning_water_rescue: ["Đuối nước, cứu nạn dưới nước", "Drowning / water rescue"],
    drowning: ["Đuối nước", "Drowning"],
    other_rescue: ["Cứu nạn, cứu hộ khác", "Other rescue"],
    rescue_other: ["Cứu nạn, cứu hộ khác", "Other rescue"],
    medical: ["Cấp cứu y tế (chuyển 115)", "Medical (routed to 115)"],
    administrative: ["Hỏi thủ tục hành chính", "Administrative question"],
    prank_silent: ["Im lặng / quấy rối", "Silent or prank call"],
    human_request: ["Yêu cầu gặp cán bộ", "Asks for a human"],
  };

  const CATEGORY_GROUPS = [
    ["line_113", ["theft", "robbery", "assault", "weapon_threat", "domestic_violence",
      "missing_child", "public_disorder", "traffic_accident"]],
    ["line_114", ["fire", "explosion_gas_leak", "collapse_trapped", "drowning_water_rescue",
      "other_rescue"]],
    ["line_other", ["medical", "administrative", "prank_silent", "human_request"]],
  ];

  const FLAG_LABELS = {
    people_trapped: ["Người mắc kẹt", "People trapped"],
    weapon: ["Có vũ khí", "Weapon"],
    not_breathing: ["Ngừng thở", "Not breathing"],
    unconscious: ["Bất tỉnh", "Unconscious"],
    child_in_danger: ["Trẻ em gặp nguy", "Child in danger"],
    gas_leak: ["Rò rỉ gas", "Gas leak"],
    intruder_present: ["Kẻ gian còn tại chỗ", "Intruder present"],
    fire_spreading: ["Cháy lan", "Fire spreading"],
    spreading_fire: ["Cháy lan", "Fire spreading"],
  };

  const QA_LABELS = {
    emergency_type_captured: ["Xác định loại sự việc", "Emergency type captured"],
    location_captured: ["Ghi nhận địa điểm", "Location captured"],
    location_read_back: ["Đọc lại địa điểm", "Location read back"],
    callback_captured: ["Ghi nhận số gọi lại", "Callback number captured"],
    safety_instruction_given: ["Hướng dẫn an toàn", "Safety instruction given"],
    red_flag_handled: ["Xử lý dấu hiệu nguy hiểm", "Red flag handled"],
    time_to_greeting_ms: ["Thời gian đến lời chào", "Time to greeting"],
    time_to_first_question_ms: ["Thời gian đến câu hỏi đầu", "Time to first question"],
    time_to_handoff_ms: ["Thời gian chuyển cán bộ", "Time to hand-off"],
    silence_count: ["Số lần im lặng", "Silences"],
    repeat_count: ["Số lần hỏi lại", "Repeats"],
  };

  const CHANNEL_LABELS = {
    "media-stream": ["Điện thoại (media stream)", "Phone (media stream)"],
    audiosocket: ["Tổng đài (AudioSocket)", "PBX (AudioSocket)"],
    sip: ["SIP", "SIP"],
    webrtc: ["WebRTC", "WebRTC"],
    chat: ["Chat", "Chat"],
  };

  const LANG_KEY = "callbot.lang";

  // ---------------------------------------------------------------- i18n

  // tables: {vi: {...}, en: {...}}; falls back to Vietnamese, then to the key itself.
  function translate(tables, lang, key, vars) {
    const table = tables[lang] || tables.vi;
    let text = table[key];
    if (text === undefined) text = tables.vi[key];
    if (text === undefined) text = key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  }

  function locale(lang) {
    return lang === "en" ? "en-GB" : "vi-VN";
  }

  function pick(pair, fallback, lang) {
    if (!pair) return fallback;
    return lang === "en" ? pair[1] : pair[0];
  }

  function loadLang() {
    try {
      const saved = window.localStorage.getItem(LANG_KEY);
      if (saved === "vi" || saved === "en") return saved;
    } catch (e) {
      /* storage blocked */
    }
    return "vi";
  }

  // Remembers the choice and returns the language to use ("vi" unless "en").
  function saveLang(lang) {
    const chosen = lang === "en" ? "en" : "vi";
    try {
      window.localStorage.setItem(LANG_KEY, chosen);
    } catch (e) {
      /* storage blocked */
    }
    return chosen;
  }

  // The static texts of the page: data-i18n, -placeholder, -title, -aria-label, and the switch.
  function applyStaticTexts(t, lang) {
    document.documentElement.lang = lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.setAttribute("placeholder", t(node.dataset.i18nPlaceholder));
    }
    for (const node of document.querySelectorAll("[data-i18n-title]")) node.setAttribute("title", t(node.dataset.i18nTitle));
    for (const node of document.querySelectorAll("[data-i18n-aria-label]")) {
      node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
    }
    for (const button of document.querySelectorAll(".lang-switch button")) {
      button.setAttribute("aria-pressed", button.dataset.lang === lang ? "true" : "false");
    }
  }

  // ---------------------------------------------------------------- helpers

  function priorityClass(p) {
    return [1, 2, 3, 4].includes(p) ? "p" + p : "pnone";
  }

  function priorityShort(p) {
    return [1, 2, 3, 4].includes(p) ? "P" + p : "P?";
  }

  function el(tag, opts, ...children) {
    const node = document.createElement(tag);
    if (opts) {
      if (opts.cls) node.className = opts.cls;
      if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
      if (opts.attrs) {
        for (const [name, value] of Object.entries(opts.attrs)) {
          if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
        }
      }
      if (opts.data) {
        for (const [name, value] of Object.entries(opts.data)) node.dataset[name] = String(value);
      }
      if (opts.on) {
        for (const [name, fn] of Object.entries(opts.on)) node.addEventListener(name, fn);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function valueText(value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    try {
      return JSON.stringify(value);
    } catch (e) {
      return String(value);
    }
  }

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  function detailText(data) {
    if (!data || data.detail === undefined || data.detail === null) return "";
    const detail = data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => (item && typeof item === "object" && "msg" in item ? String(item.msg) : valueText(item)))
        .join("; ");
    }
    return valueText(detail);
  }

  // The pages other than dispatch: back to the login, then to this very page.
  function goLogin(state) {
    if (state.redirecting) return;
    state.redirecting = true;
    const here = window.location.pathname + window.location.search;
    window.location.assign("/login?next=" + encodeURIComponent(here));
  }

  // ctx: {t, csrf, goLogin} of the calling page.
  async function api(ctx, method, path, body) {
    const t = ctx.t;
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = ctx.csrf || "";
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, t("err_network"), null);
    }
    if (response.status === 401) {
      ctx.goLogin();
      throw new ApiError(401, t("err_session"), null);
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = detailText(data);
      let message;
      if (response.status === 403) message = t("err_forbidden") + (detail ? ": " + detail : ".");
      else if (response.status === 503) message = t(method === "GET" ? "err_unavailable" : "err_unavailable_action");
      else message = detail || t("err_generic", { status: response.status });
      throw new ApiError(response.status, message, data);
    }
    return data;
  }

  function retriable(err) {
    return err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504;
  }

  function showGlobalError(message) {
    const box = document.querySelector("#global-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function renderUser(me, t) {
    const box = document.querySelector("#user-info");
    if (!me) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    document.querySelector("#user-name").textContent = me.name || "";
    const roleKey = "role_" + me.role;
    const role = t(roleKey);
    document.querySelector("#user-role").textContent = role === roleKey ? String(me.role || "") : role;
  }

  return Object.freeze({
    I18N,
    CATEGORY_LABELS,
    CATEGORY_GROUPS,
    FLAG_LABELS,
    QA_LABELS,
    CHANNEL_LABELS,
    translate,
    locale,
    pick,
    loadLang,
    saveLang,
    applyStaticTexts,
    priorityClass,
    priorityShort,
    el,
    valueText,
    ApiError,
    detailText,
    goLogin,
    api,
    retriable,
    showGlobalError,
    renderUser,
  });
})();
