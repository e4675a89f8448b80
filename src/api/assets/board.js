// The status board: stations coloured by stage, trend arrows, open alerts with their
// acknowledgement, and a hydrograph of the selected station. Plain JS, no build step; live
// over server-sent events (/api/v1/events), never reloads.
(function () {
  "use strict";

  // Set once per page load: a test (or a curious officer) can tell that updates arrived
  // without a reload.
  window.__boardLoadId = Math.random().toString(36).slice(2) + Date.now().toString(36);

  // With `http.read_token` configured, the board asks for the token once and exchanges it
  // (POST /api/v1/session, in the body) for an HttpOnly, SameSite=Strict session cookie,
  // which fetch and EventSource send by themselves. The token never goes into a URL, where
  // server and proxy logs would keep it.

  var TEXT = {
    zh: {
      title: "水情值班看板", connecting: "连接中…", live: "实时", disconnected: "已断开",
      col_station: "站点", col_river: "河流", col_level: "水位 m", col_stage: "状态",
      col_trend: "涨落 m/h", col_next: "下一特征水位", col_rain: "今日雨量 mm",
      col_updated: "更新时间", col_alerts: "告警",
      open_alerts: "未解除告警", no_alerts: "无未解除告警", normal: "正常", nodata: "无数据",
      offline: "离线", maintenance: "维护", acked_by: "已确认：", not_acked: "未确认",
      since: "开始于", level: "水位", rain: "雨量", hours: "小时", minutes: "分钟",
      to: "距", about: "约", unauthorized: "需要读取令牌：请在上方输入",
      login_label: "读取令牌", login_button: "登录", login_failed: "令牌不正确",
      login_limited: "失败次数过多，请稍后再试",
      load_failed: "加载失败：", stations_over: "超", stations_count: "站", all_normal: "全部正常",
      hydrograph: "水位过程线", no_series: "该时段无数据", pick: "点击站点查看水位过程线",
      value: "值", threshold: "阈值", team: "责任队伍", deliveries: "演示巡堤队收到的通知",
      failed_notifications: "发送失败的通知", attempts: "次尝试",
      unreached: "未叫醒", paged_people: "已呼叫", tried: "已尝试", callouts: "叫应记录",
      acked_person: "应答人：",
      kind_page: "通知", kind_redial: "重呼", kind_escalation: "呼叫上级", kind_delivered: "已送达",
      kind_delivery_failed: "发送失败", kind_delivery_pending: "待发送", kind_call_placed: "已拨出", kind_call_result: "呼叫结果",
      kind_acknowledgement: "确认",
      bulletin: "水雨情日报"
    },
    en: {
      title: "Status board", connecting: "connecting…", live: "live", disconnected: "disconnected",
      col_station: "Station", col_river: "River", col_level: "Level m", col_stage: "Stage",
      col_trend: "Trend m/h", col_next: "Next stage", col_rain: "Rain today mm",
      col_updated: "Updated", col_alerts: "Alerts",
      open_alerts: "Open alerts", no_alerts: "No open alerts", normal: "normal", nodata: "no data",
      offline: "offline", maintenance: "maintenance", acked_by: "acknowledged by ", not_acked: "not acknowledged",
      since: "since", level: "Level", rain: "Rain", hours: "h", minutes: "min",
      to: "to ", about: "≈", unauthorized: "A read token is needed: enter it above",
      login_label: "Read token", login_button: "Sign in", login_failed: "That is not the read token",
      login_limited: "Too many failed attempts; try again later",
      load_failed: "Loading failed: ", stations_over: "≥", stations_count: "", all_normal: "all normal",
      hydrograph: "Hydrograph", no_series: "no readings in this period", pick: "Click a station for its hydrograph",
      value: "value", threshold: "threshold", team: "team",
      failed_notifications: "Failed notifications", attempts: "attempts",
      unreached: "Unreached", paged_people: "called", tried: "tried", callouts: "Callout log",
      acked_person: "answered by ",
      kind_page: "paged", kind_redial: "called again", kind_escalation: "superior called", kind_delivered: "delivered",
      kind_delivery_failed: "delivery failed", kind_delivery_pending: "pending", kind_call_placed: "call placed", kind_call_result: "call result",
      kind_acknowledgement: "acknowledged",
      bulletin: "Daily bulletin"
    }
  };
  var STAGE_NAMES = {
    zh: { guard: "设防", warning: "警戒", guaranteed: "保证", record: "历史最高",
          action: "行动水位", minor: "小洪水", moderate: "中洪水", major: "大洪水",
          limit: "旱限", drought_warning: "旱警" },
    en: { guard: "guard", warning: "warning", guaranteed: "guaranteed", record: "record",
          action: "action", minor: "minor flood", moderate: "moderate flood", major: "major flood",
          limit: "drought limit", drought_warning: "drought warning" }
  };
  var RULE_NAMES = {
    zh: { stage: "水位", rise_rate: "涨率", drought: "旱情", dry_spell: "连续无雨", offline: "离线",
          sensor: "传感器", rain: "雨量", rain_level: "山洪预警" },
    en: { stage: "stage", rise_rate: "rise rate", drought: "drought", dry_spell: "dry spell",
          offline: "offline", sensor: "sensor", rain: "rain", rain_level: "rain warning" }
  };
  var STATE_NAMES = {
    zh: { pending: "待定", firing: "告警", escalated: "升级", deescalated: "降级", resolved: "解除",
          acknowledged: "已确认", unanswered: "未应答" },
    en: { pending: "pending", firing: "firing", escalated: "escalated", deescalated: "de-escalated",
          resolved: "resolved", acknowledged: "acknowledged", unanswered: "unanswered" }
  };
  // Chinese signal colours (SL 758: blue, yellow, orange, red), NWS stages mapped alongside.
  var STAGE_COLOUR = {
    guard: "blue", action: "blue",
    warning: "yellow", minor: "yellow",
    guaranteed: "orange", moderate: "orange",
    major: "red", record: "red"
  };
  var COLOUR_RANK = { normal: 0, nodata: 0, drought: 1, blue: 2, yellow: 3, orange: 4, red: 5 };
  var CSS_COLOUR = { blue: "#2f81f7", yellow: "#e3b341", orange: "#f0883e", red: "#f85149", drought: "#b08800" };

  var lang = localStorage.getItem("hydrowatch.lang") === "en" ? "en" : "zh";
  var stations = [];
  var alerts = [];
  var selected = decodeURIComponent((location.hash.match(/station=([^&]+)/) || [])[1] || "");
  var chart = null;
  var chartStation = null;

  function t(key) { return key in TEXT[lang] ? TEXT[lang][key] : key; }
  function stageName(name, drought) {
    if (drought && name === "warning") return STAGE_NAMES[lang].drought_warning;
    return STAGE_NAMES[lang][name] || name;
  }
  function ruleName(rule) {
    if (RULE_NAMES[lang][rule]) return RULE_NAMES[lang][rule];
    if (rule.indexOf("rain_") === 0) return RULE_NAMES[lang].rain + " " + rule.slice(5);
    return RULE_NAMES[lang][rule] || rule;
  }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "class") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function fmt(x, digits) { return x == null || isNaN(x) ? "–" : Number(x).toFixed(digits); }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function timeText(ms) {
    if (ms == null) return "–";
    var d = new Date(ms), now = new Date();
    var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (d.toDateString() === now.toDateString()) return hm;
    return (d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hm;
  }
  function durationText(s) {
    if (s == null || !isFinite(s)) return "";
    if (s < 3600) return Math.max(1, Math.round(s / 60)) + " " + t("minutes");
    return (s / 3600).toFixed(1) + " " + t("hours");
  }

  // ---- data ----------------------------------------------------------------------------

  var signIns = 0; // successful sign-ins on this page so far

  function api(path) {
    var headers = { Accept: "application/json" };
    // A request sent before the last sign-in went without the cookie: its 401 is stale.
    var asked = signIns;
    return fetch(path, { headers: headers, cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) {
        var e = new Error(t("unauthorized"));
        if (asked === signIns) showLogin(); else e.stale = true;
        throw e;
      }
      if (!r.ok) return r.json().then(function (b) { throw new Error(b.error || r.statusText); });
      return r.json();
    });
  }

  function showError(e) {
    if (e && e.stale) return;
    var p = document.getElementById("error");
    if (!e) { p.hidden = true; return; }
    p.hidden = false;
    p.textContent = (e.message === t("unauthorized") ? "" : t("load_failed")) + e.message;
  }

  function refresh() {
    return Promise.all([api("/api/v1/stations"), api("/api/v1/alerts?state=open")])
      .then(function (res) {
        stations = res[0];
        alerts = res[1];
        showError(null);
        render();
      })
      .then(refreshDeliveries)
      .then(refreshFailed)
      .then(refreshUnreached)
      .catch(showError);
  }

  // Notifications no receiver took (refused, given up on, channel removed): the duty officer
  // must reach those people another way, so they stay in sight until the journal drops them.
  var FAILED_SHOWN = 50;
  var failed = [];
  function refreshFailed() {
    return api("/api/v1/notifications?state=failed&limit=" + FAILED_SHOWN).then(function (list) {
      failed = list;
      renderFailed();
    });
  }

  function renderFailed() {
    var panel = document.getElementById("failed-panel");
    panel.hidden = !failed.length;
    document.getElementById("failed-count").textContent =
      failed.length ? "(" + failed.length + (failed.length >= FAILED_SHOWN ? "+" : "") + ")" : "";
    var ul = document.getElementById("failed");
    ul.textContent = "";
    failed.slice(0, 8).forEach(function (n) {
      var s = stationById(n.station);
      ul.appendChild(el("li", { "data-event": n.event_id, "data-channel": n.channel }, [
        el("div", { class: "what", text: (s ? s.name : n.station) + " · " + (STATE_NAMES[lang][n.event_state] || n.event_state) +
          " → " + teamName(n.team) + " · " + n.kind }),
        el("div", { class: "meta", text: timeText(n.failed_at) + " · " + n.attempts + " " + t("attempts") }),
        el("div", { class: "meta", text: n.last_error || "" })
      ]));
    });
  }

  // 未叫醒: alerts whose page nobody answered in time, with who was called and what was
  // tried. Timers move them without a reading, so they are looked for often too.
  var unreached = [];
  var knownPeople = {}; // person id -> name, as the unreached list named them
  function refreshUnreached() {
    return api("/api/v1/unreached").then(function (list) {
      unreached = list;
      list.forEach(function (u) { u.paged.forEach(function (p) { knownPeople[p.person] = p.name; }); });
      renderUnreached();
    });
  }

  function kindText(kind) { return t("kind_" + kind); }

  function renderUnreached() {
    var panel = document.getElementById("unreached-panel");
    panel.hidden = !unreached.length;
    document.getElementById("unreached-count").textContent = unreached.length ? "(" + unreached.length + ")" : "";
    var ul = document.getElementById("unreached");
    ul.textContent = "";
    unreached.forEach(function (u) {
      var people = u.paged.map(function (p) { return p.name + (p.phone ? " " + p.phone : ""); }).join("、");
      var attempts = u.tried.filter(function (e) { return e.kind !== "page"; }).slice(-6).map(function (e) {
        return timeText(e.at) + " " + kindText(e.kind) + (e.name ? " " + e.name : "") + (e.channel ? " · " + e.channel : "") +
          (e.kind === "call_result" && e.detail ? " (" + e.detail.split(" (")[0] + ")" : "");
      });
      var li = el("li", { "data-alert": u.alert_id, "data-station": u.station }, [
        el("div", { class: "what", text: u.station_name + " · " + ruleName(u.rule) + " · " + t("since") + " " + timeText(u.since) }),
        el("div", { class: "meta", text: t("paged_people") + "：" + people }),
        el("div", { class: "meta", text: t("tried") + "：" + attempts.join("；") })
      ]);
      li.addEventListener("click", function () { select(u.station); });
      ul.appendChild(li);
    });
  }

  // The alert view's callout log: every page, delivery, call result and acknowledgement.
  function toggleCallouts(li, alertId, button) {
    var box = li.querySelector("table.callouts");
    if (box) { box.remove(); return; }
    api("/api/v1/alerts/" + encodeURIComponent(alertId) + "/callouts").then(function (entries) {
      var table = el("table", { class: "callouts" });
      entries.slice(-40).forEach(function (e) {
        table.appendChild(el("tr", { "data-kind": e.kind }, [
          el("td", { text: timeText(e.at) }),
          el("td", { text: kindText(e.kind) }),
          el("td", { text: (e.name || e.person || "") + (e.phone ? " " + e.phone : "") }),
          el("td", { text: (e.channel || "") + (e.detail ? " " + e.detail : "") })
        ]));
      });
      li.insertBefore(table, button.nextSibling);
    }).catch(showError);
  }

  // `hydrowatch demo` runs a patrol team's webhook receiver in-process and lists what it
  // received; elsewhere the route does not exist and the panel stays hidden.
  var demoMode = null;
  var deliveries = [];
  function refreshDeliveries() {
    if (demoMode === false) return;
    return api("/api/v1/demo/deliveries").then(function (list) {
      demoMode = true;
      deliveries = list;
      renderDeliveries();
    }, function () { demoMode = false; });
  }

  function renderDeliveries() {
    var panel = document.getElementById("deliveries-panel");
    panel.hidden = !demoMode;
    var ul = document.getElementById("deliveries");
    ul.textContent = "";
    deliveries.slice(0, 8).forEach(function (d) {
      ul.appendChild(el("li", { class: "state-" + d.state }, [
        el("div", { class: "meta", text: (STATE_NAMES[lang][d.state] || d.state) + " · " + timeText(Date.parse(d.observed_at)) }),
        el("div", { text: d.message || "" })
      ]));
    });
  }

  // Many readings arrive together after a backlog flush: refresh once for the lot.
  var refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, 200);
  }
  var seriesTimer = null;
  function seriesSoon() {
    if (seriesTimer) return;
    seriesTimer = setTimeout(function () { seriesTimer = null; loadChart(selected); }, 500);
  }

  // ---- classification ------------------------------------------------------------------

  // How a station looks: its severity colour (class sev-*) and the label in its stage tag.
  function severity(s) {
    var st = s.status;
    if (!st || st.latest_level_m == null) return { colour: "nodata", stage: "none", label: t("nodata") };
    if (st.stage) {
      var colour = STAGE_COLOUR[st.stage];
      if (!colour) {
        // A stage name outside both vocabularies: colour by its place from the top.
        var fromTop = s.stages.length - 1 - (st.stage_index || 0);
        colour = ["red", "orange", "yellow", "blue"][Math.min(fromTop, 3)];
      }
      return { colour: colour, stage: st.stage, label: stageName(st.stage, false) };
    }
    if (st.drought) return { colour: "drought", stage: "drought_" + st.drought, label: stageName(st.drought, true) };
    return { colour: "normal", stage: "normal", label: t("normal") };
  }

  function alertColour(a) {
    if (a.rule === "stage") return STAGE_COLOUR[a.stage] || "red";
    if (a.rule === "drought" || a.rule === "dry_spell") return "drought";
    if (a.rule === "offline" || a.rule === "sensor") return "grey";
    return "orange";
  }

  function trendCell(st, s) {
    var v = st && st.trend_m_per_h;
    if (v == null) return el("td", { class: "num" }, [el("span", { class: "trend steady", text: "–" })]);
    var fast = s.rise_rate_m_per_h != null ? v >= s.rise_rate_m_per_h : v >= 0.3;
    var cls = v > 0.01 ? (fast ? "fast" : "up") : v < -0.01 ? "down" : "steady";
    var arrow = v > 0.01 ? (fast ? "⇈" : "↑") : v < -0.01 ? "↓" : "→";
    return el("td", { class: "num" }, [
      el("span", { class: "trend " + cls, text: arrow }), " ", (v > 0 ? "+" : "") + fmt(v, 2)
    ]);
  }

  // ---- rendering -----------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (e) { e.textContent = t(e.getAttribute("data-i18n")); });
    document.getElementById("lang").textContent = lang === "zh" ? "English" : "中文";
    document.title = "hydrowatch · " + t("title");
    var legend = document.getElementById("legend");
    legend.textContent = "";
    [["blue", "guard"], ["yellow", "warning"], ["orange", "guaranteed"], ["red", "record"]].forEach(function (p) {
      legend.appendChild(el("span", null, [el("span", { class: "sw", style: "background:" + CSS_COLOUR[p[0]] }),
        stageName(p[1], false) + (lang === "zh" ? "" : " stage")]));
    });
    legend.appendChild(el("span", null, [el("span", { class: "sw", style: "background:" + CSS_COLOUR.drought }),
      stageName("warning", true) + " / " + stageName("limit", true)]));
    legend.appendChild(el("span", null, ["⇈ ↑ → ↓"]));
    setConn(connUp);
  }

  function render() {
    renderSummary();
    renderStations();
    renderAlerts();
    renderFailed();
    if (!selected && stations.length) {
      // Start on the most severe station.
      var best = stations.slice().sort(function (a, b) {
        return COLOUR_RANK[severity(b).colour] - COLOUR_RANK[severity(a).colour];
      })[0];
      select(best.id);
    } else if (selected && chartStation !== selected) {
      loadChart(selected);
    } else {
      updateChartTitle();
    }
  }

  function renderSummary() {
    var counts = {};
    var offline = 0;
    stations.forEach(function (s) {
      var c = severity(s).colour;
      counts[c] = (counts[c] || 0) + 1;
      if (s.status && s.status.offline) offline++;
    });
    var box = document.getElementById("summary");
    box.textContent = "";
    var any = false;
    [["red", "record"], ["orange", "guaranteed"], ["yellow", "warning"], ["blue", "guard"]].forEach(function (p) {
      if (!counts[p[0]]) return;
      any = true;
      box.appendChild(el("span", { class: "chip sev-" + p[0], text: t("stations_over") + stageName(p[1], false) + " " + counts[p[0]] + " " + t("stations_count") }));
    });
    if (counts.drought) { any = true; box.appendChild(el("span", { class: "chip sev-drought", text: stageName("warning", true) + " " + counts.drought })); }
    if (offline) { any = true; box.appendChild(el("span", { class: "chip sev-offline", text: t("offline") + " " + offline })); }
    if (!any) box.appendChild(el("span", { class: "chip ok", text: t("all_normal") }));
  }

  function renderStations() {
    var body = document.querySelector("#stations tbody");
    body.textContent = "";
    stations.forEach(function (s) {
      var st = s.status;
      var sev = severity(s);
      var cls = "station sev-" + sev.colour + (st && st.offline ? " offline" : "") + (s.id === selected ? " selected" : "");
      var nameCell = el("td", null, [
        el("span", { class: "name", text: s.name }), el("span", { class: "sid", text: s.id }),
        st && st.offline ? el("span", { class: "badge", text: t("offline") }) : null,
        s.maintenance ? el("span", { class: "badge maint", text: t("maintenance") }) : null
      ]);
      var next = "";
      if (st && st.next_stage && st.latest_level_m != null) {
        var gap = st.next_stage[1] - st.latest_level_m;
        next = t("to") + stageName(st.next_stage[0], false) + " " + fmt(gap, 2) + " m";
      }
      var eta = st && st.time_to_next_stage_s != null ? " · " + t("about") + " " + durationText(st.time_to_next_stage_s) : "";
      var open = s.open_alerts || [];
      var unacked = open.filter(function (a) { return !a.acknowledged_by; }).length;
      var alertCell = el("td", null, open.length ? [el("span", {
        class: "alert-dot" + (unacked ? "" : " acked"), title: unacked + " " + t("not_acked"), text: String(open.length)
      })] : []);
      var row = el("tr", { class: cls, "data-station": s.id, "data-stage": sev.stage, "data-severity": sev.colour }, [
        nameCell,
        el("td", { text: s.river || "" }),
        el("td", { class: "num level", text: fmt(st && st.latest_level_m, 2) }),
        el("td", null, [el("span", { class: "stage-tag", text: sev.label })]),
        trendCell(st, s),
        el("td", { class: "next" }, [next, el("span", { class: "eta", text: eta })]),
        el("td", { class: "num", text: st ? fmt(st.rain_today_mm, 1) : "–" }),
        el("td", { text: timeText(st && st.level_time) }),
        alertCell
      ]);
      row.addEventListener("click", function () { select(s.id); });
      body.appendChild(row);
    });
  }

  function stationById(id) {
    for (var i = 0; i < stations.length; i++) if (stations[i].id === id) return stations[i];
    return null;
  }

  // Unacknowledged first, then the most severe, then the most recent.
  function alertOrder(a, b) {
    var acked = (a.acknowledged_by ? 1 : 0) - (b.acknowledged_by ? 1 : 0);
    if (acked) return acked;
    var rank = (COLOUR_RANK[alertColour(b)] || 1) - (COLOUR_RANK[alertColour(a)] || 1);
    return rank || b.updated_at - a.updated_at;
  }

  function renderAlerts() {
    alerts.sort(alertOrder);
    var list = document.getElementById("alerts");
    list.textContent = "";
    document.getElementById("alert-count").textContent = alerts.length ? "(" + alerts.length + ")" : "";
    if (!alerts.length) { list.appendChild(el("li", { class: "empty", text: t("no_alerts") })); return; }
    alerts.forEach(function (a) {
      var s = stationById(a.station);
      var what = (s ? s.name : a.station) + " · " + (a.rule === "stage" ? "≥ " + stageName(a.stage, false)
        : a.rule === "drought" ? "≤ " + stageName(a.stage, true) : ruleName(a.rule));
      var ack = a.acknowledged_by
        ? el("div", { class: "ack yes", text: "✔ " + t("acked_by") + teamName(a.acknowledged_by) + " " + timeText(a.acknowledged_at) +
            ackPerson(a) })
        : el("div", { class: "ack no", text: "✖ " + t("not_acked") });
      var toggle = el("button", { type: "button", class: "callouts-toggle", text: t("callouts") });
      var li = el("li", { class: "sev-" + alertColour(a), "data-alert": a.alert_id, "data-rule": a.rule, "data-station": a.station, "data-acknowledged": a.acknowledged_by ? "yes" : "no" }, [
        el("div", { class: "what", text: what }),
        el("div", { class: "meta", text: (STATE_NAMES[lang][a.state] || a.state) + " · " + t("value") + " " + fmt(a.value, 2) +
          " / " + t("threshold") + " " + fmt(a.threshold, 2) + " · " + t("since") + " " + timeText(a.opened_at) }),
        ack,
        toggle
      ]);
      toggle.addEventListener("click", function (ev) { ev.stopPropagation(); toggleCallouts(li, a.alert_id, toggle); });
      li.addEventListener("click", function () { select(a.station); });
      list.appendChild(li);
    });
  }

  // Who answered, from the alert's latest acknowledged event (when a person was named).
  function ackPerson(a) {
    var events = a.events || [];
    for (var i = events.length - 1; i >= 0; i--) {
      if (events[i].state === "acknowledged") {
        return events[i].acknowledged_person ? " · " + t("acked_person") + personName(events[i].acknowledged_person) : "";
      }
    }
    return "";
  }
  function personName(id) { return knownPeople[id] || id; }

  function teamName(id) {
    for (var i = 0; i < stations.length; i++) if (stations[i].team === id && stations[i].team_name) return stations[i].team_name;
    return id;
  }

  // ---- hydrograph ----------------------------------------------------------------------

  function select(id) {
    selected = id;
    history.replaceState(null, "", location.pathname + location.search + "#station=" + encodeURIComponent(id));
    document.querySelectorAll("tr.station").forEach(function (r) {
      r.classList.toggle("selected", r.getAttribute("data-station") === id);
    });
    loadChart(id);
  }

  function updateChartTitle() {
    var s = stationById(selected);
    var title = document.getElementById("chart-title");
    title.textContent = "";
    if (!s) { title.textContent = t("pick"); return; }
    title.appendChild(document.createTextNode(t("hydrograph") + " · " + s.name));
    title.appendChild(el("span", { class: "sub", text: s.id + (s.river ? " · " + s.river : "") }));
  }

  function loadChart(id) {
    if (!id) return;
    var q = "/api/v1/stations/" + encodeURIComponent(id) + "/series?element=";
    Promise.all([api(q + "level_m"), api(q + "rain_mm")]).then(function (res) {
      if (id !== selected) return;
      chartStation = id;
      drawChart(stationById(id), res[0], res[1]);
    }).catch(showError);
  }

  function drawChart(s, level, rain) {
    updateChartTitle();
    var box = document.getElementById("chart");
    if (chart) { chart.destroy(); chart = null; }
    box.textContent = "";
    if (!s) return;
    // One x axis for both series: the union of their times, gaps where one has no value.
    var byTime = {};
    level.points.forEach(function (p) { (byTime[p[0]] = byTime[p[0]] || [null, null])[0] = p[1]; });
    // No bar for a dry period: zero rain is drawn as nothing, not as a flat stub.
    rain.points.forEach(function (p) { if (p[1] > 0) (byTime[p[0]] = byTime[p[0]] || [null, null])[1] = p[1]; });
    var times = Object.keys(byTime).map(Number).sort(function (a, b) { return a - b; });
    if (!times.length) { box.appendChild(el("p", { class: "eta", text: t("no_series") })); return; }
    var xs = times.map(function (ms) { return ms / 1000; });
    var data = [xs, times.map(function (ms) { return byTime[ms][0]; })];
    var series = [{}, {
      label: t("level") + " (m)", stroke: "#58a6ff", width: 2.5, spanGaps: true, scale: "m",
      value: function (u, v) { return v == null ? "–" : v.toFixed(2); }
    }];
    var stageLines = s.stages.map(function (st) { return [st, STAGE_COLOUR[st.name] || "red", false]; })
      .concat(s.drought.map(function (st) { return [st, "drought", true]; }));
    stageLines.forEach(function (p) {
      data.push(xs.map(function () { return p[0].level_m; }));
      series.push({
        label: stageName(p[0].name, p[2]) + " " + p[0].level_m.toFixed(2), stroke: CSS_COLOUR[p[1]], width: 1.5,
        dash: [8, 5], scale: "m", points: { show: false }, value: function () { return ""; }
      });
    });
    var hasRain = rain.points.some(function (p) { return p[1] > 0; });
    if (hasRain) {
      data.push(times.map(function (ms) { return byTime[ms][1]; }));
      series.push({
        label: t("rain") + " (mm)", scale: "mm", fill: "#3fb95088", stroke: "#3fb950", width: 1,
        paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false }
      });
    }
    // Keep every stage line near the level in view, not the whole ladder.
    var ys = data[1].filter(function (v) { return v != null; });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    // Keep in view the stages near the level and always the next one up: how far the
    // river still has to go is the first question.
    var nextUp = null;
    s.stages.forEach(function (st) { if (st.level_m > hi && (nextUp == null || st.level_m < nextUp)) nextUp = st.level_m; });
    var top = hi;
    stageLines.forEach(function (p) {
      var l = p[0].level_m;
      if ((l >= lo - 1.5 && l <= hi + 1.5) || l === nextUp) { lo = Math.min(lo, l); top = Math.max(top, l); }
    });
    hi = top;
    var pad = Math.max(0.2, (hi - lo) * 0.08);
    var axisStyle = { stroke: "#8b949e", grid: { stroke: "#30363d", width: 1 }, ticks: { stroke: "#30363d" } };
    var opts = {
      width: Math.max(400, box.clientWidth || 800),
      height: 320,
      scales: {
        x: { time: true },
        m: { range: function () { return [lo - pad, hi + pad]; } },
        mm: { range: function (u, min, max) { return [0, Math.max(5, (max || 0) * 2.5)]; } }
      },
      axes: [
        Object.assign({}, axisStyle, { values: timeTicks, space: 60 }),
        Object.assign({}, axisStyle, { scale: "m", label: t("level") + " m", size: 60 }),
      ].concat(hasRain ? [Object.assign({}, axisStyle, { scale: "mm", side: 1, label: t("rain") + " mm", grid: { show: false } })] : []),
      series: series,
      legend: { live: true }
    };
    chart = new uPlot(opts, data, box);
  }

  // 24-hour clock, with the date under the first tick of each day.
  function timeTicks(u, splits) {
    var lastDay = null;
    return splits.map(function (sec) {
      var d = new Date(sec * 1000);
      var day = (d.getMonth() + 1) + "-" + pad(d.getDate());
      var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
      if (day !== lastDay) { lastDay = day; return hm + "\n" + day; }
      return hm;
    });
  }

  window.addEventListener("resize", function () {
    if (chart) chart.setSize({ width: Math.max(400, document.getElementById("chart").clientWidth), height: 320 });
  });

  // ---- live ----------------------------------------------------------------------------

  var connUp = false;
  function setConn(up) {
    connUp = up;
    var c = document.getElementById("conn");
    c.className = "conn " + (up ? "up" : "down");
    c.textContent = up ? "● " + t("live") : "○ " + t("disconnected");
  }

  // ---- sign-in (only when the server has a read token) -----------------------------------

  var needLogin = false;
  function showLogin() {
    if (needLogin) return;
    needLogin = true;
    var form = document.getElementById("login");
    form.hidden = false;
    document.getElementById("login-token").focus();
  }

  document.getElementById("login").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = document.getElementById("login-token");
    var message = document.getElementById("login-error");
    fetch("/api/v1/session", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: input.value })
    }).then(function (r) {
      if (r.status === 204) {
        signIns++;
        input.value = "";
        message.textContent = "";
        document.getElementById("login").hidden = true;
        needLogin = false;
        refresh();
        connect();
      } else {
        message.textContent = t(r.status === 429 ? "login_limited" : "login_failed");
      }
    }, function (err) { message.textContent = t("load_failed") + err.message; });
  });

  var source = null;
  var retryTimer = null;
  function connect() {
    if (source) source.close();
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    source = new EventSource("/api/v1/events");
    var mine = source;
    // After every (re)connection, catch up on what was missed.
    source.addEventListener("open", function () { setConn(true); refresh(); if (selected) seriesSoon(); });
    source.addEventListener("error", function () {
      setConn(false);
      // A refusal (401 without a session, 503 when too many streams are open) ends an
      // EventSource for good; find out why, and try again unless a sign-in is needed.
      if (mine.readyState === EventSource.CLOSED && source === mine) {
        refresh().then(function () {
          if (!needLogin && source === mine) retryTimer = setTimeout(connect, 5000);
        });
      }
    });
    // The server could not keep up with this board (it fell too far behind the live
    // stream): updates were skipped, so reload everything rather than trust what is shown.
    source.addEventListener("resync", function () {
      window.__boardResyncs = (window.__boardResyncs || 0) + 1;
      refresh();
      if (selected) seriesSoon();
    });
    source.addEventListener("reading", function (e) {
      var r;
      try { r = JSON.parse(e.data); } catch (err) { return; }
      refreshSoon();
      if (r.station === selected) seriesSoon();
    });
    source.addEventListener("alert", function () { refreshSoon(); });
  }

  function tick() {
    var d = new Date();
    document.getElementById("clock").textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  document.getElementById("lang").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("hydrowatch.lang", lang);
    applyLanguage();
    render();
    if (selected) loadChart(selected);
  });

  applyLanguage();
  tick();
  setInterval(tick, 1000);
  // Offline detection and time-to-stage move with the wall clock too.
  setInterval(refresh, 60000);
  // A notification fails without any event on the live stream: look for new ones often.
  setInterval(function () { refreshFailed().catch(showError); }, 10000);
  setInterval(function () { refreshUnreached().catch(showError); }, 5000);
  refresh();
  connect();
})();
