// The operations pages' charts (deployments, monitoring): each <figure data-chart> holds
// its figures as JSON ({title, unit, x: [unix seconds], series: [{label, values}]}),
// computed by the server; this draws them with the vendored uPlot, in UTC as every time
// on the pages. A null value is a gap (no requests in that bucket). Without JavaScript
// the pages show the same figures as tables.
(function () {
  "use strict";

  var COLOURS = ["#2f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989"];
  var HEIGHT = 220;
  var COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7];

  // counts tick in whole numbers; a percentage spans 0-100; anything else from 0 up
  function yAxis(unit) {
    var axis = { label: unit, size: 60 };
    if (unit === "requests") {
      axis.incrs = COUNTS;
    }
    return axis;
  }

  function yRange(unit) {
    return function (chart, low, high) {
      if (unit === "%") {
        return [0, 100];
      }
      return [Math.min(0, low), Math.max(high, unit === "requests" ? 1 : high * 1.1 || 1)];
    };
  }

  function draw(figure) {
    var spec = JSON.parse(figure.dataset.chart);
    var width = Math.max(figure.clientWidth, 320);
    var series = [{ label: "UTC" }];
    var data = [spec.x];
    spec.series.forEach(function (one, index) {
      series.push({
        label: one.label,
        stroke: COLOURS[index % COLOURS.length],
        width: 1.5,
        spanGaps: false,
        points: { show: true, size: spec.x.length < 40 ? 5 : 3 },
        value: function (chart, value) {
          return value == null ? "–" : +value.toFixed(3) + " " + spec.unit;
        },
      });
      data.push(one.values);
    });
    var chart = new uPlot(
      {
        width: width,
        height: HEIGHT,
        series: series,
        tzDate: function (seconds) {
          return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
        },
        axes: [{}, yAxis(spec.unit)],
        scales: { y: { range: yRange(spec.unit) } },
      },
      data,
      figure
    );
    figure.classList.add("drawn");
    return chart;
  }

  function drawAll(root) {
    root.querySelectorAll("figure[data-chart]:not(.drawn)").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
  // parts swapped in by htmx may hold charts too
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
