// The volunteers page's monthly ranking (Apache ECharts, vendored), from
// /console/volunteers/ranking. Labels render on the canvas: names never become HTML.
"use strict";
(function () {
  const root = document.getElementById("volunteer-charts");
  if (!root || !window.echarts) return;
  const font = getComputedStyle(document.body).fontFamily;
  const charts = [];

  function bars(id, rows) {
    const el = document.getElementById(id);
    if (!el) return;
    const chart = echarts.init(el, null, { renderer: "canvas" });
    charts.push(chart);
    const top = rows.slice(0, 20).reverse();
    chart.setOption({
      textStyle: { fontFamily: font },
      color: ["#b3261e", "#0b57d0"],
      animation: false,
      tooltip: { trigger: "axis", renderMode: "richText" },
      legend: { top: 0 },
      grid: { left: 8, right: 24, top: 32, bottom: 8, containLabel: true },
      title: rows.length ? undefined : {
        text: "本月暂无已确认的服务", left: "center", top: "middle",
        textStyle: { color: "#59636e", fontSize: 14, fontWeight: "normal", fontFamily: font },
      },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: top.map((r) => r.name), axisLabel: { width: 160, overflow: "truncate" } },
      series: [
        { name: "服务项数", type: "bar", data: top.map((r) => r.items) },
        { name: "服务时长（小时）", type: "bar", data: top.map((r) => r.hours) },
      ],
    });
  }

  fetch(root.dataset.source, { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error(r.status); return r.json(); })
    .then((data) => {
      bars("chart-volunteers", data.volunteers);
      bars("chart-communities", data.communities);
      bars("chart-branches", data.branches);
      root.setAttribute("data-loaded", "1");
    })
    .catch(() => root.setAttribute("data-error", "1"));
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
})();
