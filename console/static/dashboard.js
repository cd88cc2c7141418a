// The dashboard's charts (Apache ECharts, vendored), from /console/dashboard/data.
// Tooltips render as rich text on the canvas: residents' words never become HTML.
"use strict";
(function () {
  const root = document.getElementById("dashboard");
  if (!root || !window.echarts) return;
  const charts = {};
  const palette = ["#b3261e", "#0b57d0", "#1a7f37", "#9a6700", "#8250df", "#bf3989",
    "#0a7ea4", "#6e7781", "#d4a72c", "#57606a", "#116329"];

  function chart(id) {
    const el = document.getElementById(id);
    if (!el) return null;
    if (!charts[id]) charts[id] = echarts.init(el, null, { renderer: "canvas" });
    return charts[id];
  }
  const font = getComputedStyle(document.body).fontFamily;
  const base = () => ({
    color: palette,
    textStyle: { fontFamily: font },
    animation: false,
    tooltip: { trigger: "axis", renderMode: "richText" },
    grid: { left: 40, right: 16, top: 36, bottom: 28, containLabel: true },
  });
  const short = (day) => day.slice(5);
  const pct = (x) => (x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%");

  function draw(data) {
    const days = data.days.map(short);
    chart("chart-cases").setOption(Object.assign(base(), {
      legend: { type: "scroll", top: 0 },
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", minInterval: 1 },
      series: data.categories.map((c) => ({ name: c.name, type: "bar", stack: "cases", data: c.counts })),
    }), true);
    chart("chart-times").setOption(Object.assign(base(), {
      legend: { top: 0 },
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", name: "小时" },
      series: [
        { name: "受理", type: "line", connectNulls: true, data: data.median_hours.accept },
        { name: "办结", type: "line", connectNulls: true, data: data.median_hours.close },
      ],
    }), true);
    document.getElementById("overdue-total").textContent = data.overdue_total + " 件";
    chart("chart-overdue").setOption(Object.assign(base(), {
      xAxis: { type: "category", data: data.overdue.map((o) => o.name), axisLabel: { interval: 0, rotate: 30 } },
      yAxis: { type: "value", minInterval: 1 },
      title: data.overdue.length ? undefined : {
        text: "暂无超期工单", left: "center", top: "middle",
        textStyle: { color: "#59636e", fontSize: 14, fontWeight: "normal", fontFamily: font },
      },
      series: [{ name: "超期", type: "bar", data: data.overdue.map((o) => o.count) }],
    }), true);
    const s = data.satisfaction;
    document.getElementById("satisfaction-rate").textContent = pct(s.rate);
    document.getElementById("satisfaction-counts").textContent =
      "已评价 " + s.rated + " 件，未评价 " + s.unrated + " 件";
    chart("chart-satisfaction").setOption({
      textStyle: { fontFamily: font },
      color: ["#1a7f37", "#9be9a8", "#b3261e", "#d1d9e0"],
      animation: false,
      tooltip: { trigger: "item", renderMode: "richText" },
      legend: { bottom: 0 },
      series: [{
        type: "pie", radius: ["40%", "68%"], center: ["50%", "45%"],
        label: { formatter: "{b}\n{c}" },
        data: [
          { name: "满意", value: s.satisfied },
          { name: "基本满意", value: s.basically },
          { name: "不满意", value: s.dissatisfied },
          { name: "未评价", value: s.unrated },
        ].filter((slice) => slice.value > 0),
      }],
    }, true);
    if (data.nlu) {
      document.getElementById("fallback-rate").textContent = pct(data.nlu.overall);
      document.getElementById("fallback-counts").textContent =
        "共 " + data.nlu.messages + " 条消息，未识别 " + data.nlu.unrecognised +
        " 条；另有 " + data.nlu.taken + " 条模型未识别但已由规则接住";
      chart("chart-fallback").setOption(Object.assign(base(), {
        xAxis: { type: "category", data: days },
        yAxis: { type: "value", axisLabel: { formatter: (v) => (v * 100).toFixed(0) + "%" } },
        series: [{ name: "未识别率", type: "line", connectNulls: true, data: data.nlu.rate }],
      }), true);
      const top = data.nlu.top.slice().reverse();
      // The messages' column: 190px, but at most 45% of a phone's narrow chart.
      const words = Math.min(190, Math.round(root.clientWidth * 0.45));
      chart("chart-unrecognised").setOption(Object.assign(base(), {
        tooltip: { trigger: "axis", renderMode: "richText" },
        grid: { left: words, right: 24, top: 8, bottom: 24, containLabel: false },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: top.map((t) => t.text), axisLabel: { width: words - 14, overflow: "truncate" } },
        series: [{ name: "次数", type: "bar", barMaxWidth: 28, data: top.map((t) => t.count) }],
      }), true);
    }
    if (data.handoffs) {
      const h = data.handoffs;
      document.getElementById("handoff-rate").textContent =
        h.claimed ? pct(h.on_time / h.claimed) + " 按时接入" : "—";
      document.getElementById("handoff-counts").textContent =
        "已接入 " + h.claimed + " 次，时限 " + h.sla_minutes + " 分钟（非工作时间按承诺时间），仍在超时等待 " + h.waiting_late + " 次";
      chart("chart-handoffs").setOption(Object.assign(base(), {
        color: ["#1a7f37", "#b3261e", "#0b57d0"],
        legend: { top: 0 },
        grid: { left: 40, right: 16, top: 64, bottom: 28, containLabel: true },  // legend above the axis names
        xAxis: { type: "category", data: days },
        yAxis: [
          { type: "value", name: "次数", minInterval: 1 },
          { type: "value", name: "分钟" },
        ],
        series: [
          { name: "时限内接入", type: "bar", stack: "handoffs", data: h.within },
          { name: "超时接入", type: "bar", stack: "handoffs", data: h.late },
          {
            name: "等待中位数（分钟）", type: "line", yAxisIndex: 1, connectNulls: true, data: h.median_wait,
            markLine: { symbol: "none", label: { formatter: "时限 {c} 分钟" }, data: [{ yAxis: h.sla_minutes }] },
          },
        ],
      }), true);
    }
    root.setAttribute("data-loaded", "1");
  }

  function load() {
    const days = document.getElementById("days").value;
    fetch(root.dataset.source + "?days=" + encodeURIComponent(days), { credentials: "same-origin" })
      .then((r) => { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(draw)
      .catch(() => root.setAttribute("data-error", "1"));
  }
  document.getElementById("days").addEventListener("change", load);
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  // Canvas text needs the font loaded first (the vendored one on machines without any).
  const ready = document.fonts && document.fonts.load ? document.fonts.load("14px " + font, "工单") : Promise.resolve();
  ready.catch(() => null).then(load);
})();
