// The model version page: its sections as tabs, and its curves drawn with uPlot.
// Without this script every section shows, one after the other, and the curves are
// missing (their numbers are in the page's tables and the stored report).
(function () {
  "use strict";

  var COLOURS = ["#2f6feb", "#9a6700", "#1a7f37", "#cf222e"];

  // Each `.chart[data-chart]` holds its data as JSON: {x_label, y_label, x, series:
  // [{label, values}]}; a series named "chance" or "perfect" is the dashed reference.
  function draw(element) {
    if (element.dataset.drawn || typeof uPlot === "undefined") {
      return;
    }
    var chart = JSON.parse(element.dataset.chart);
    var series = [{label: chart.x_label}];
    var data = [chart.x];
    chart.series.forEach(function (one, index) {
      var reference = one.label === "chance" || one.label === "perfect";
      series.push({
        label: one.label,
        stroke: reference ? "#8c959f" : COLOURS[index % COLOURS.length],
        width: reference ? 1 : 2,
        dash: reference ? [4, 4] : undefined,
        points: {show: one.label === "observed"},
      });
      data.push(one.values);
    });
    new uPlot({
      width: 420,
      height: 300,
      series: series,
      scales: {x: {time: false, range: [0, 1]}, y: {range: [0, 1]}},
      axes: [{label: chart.x_label}, {label: chart.y_label}],
      legend: {live: false},
      cursor: {drag: {x: false, y: false}},
    }, data, element);
    element.dataset.drawn = "true";
  }

  function drawVisible() {
    document.querySelectorAll(".chart[data-chart]").forEach(function (element) {
      if (!element.closest("[hidden]")) {
        draw(element);
      }
    });
  }

  // Tabs: the section named by the URL's #fragment (or the first) shows, the others
  // hide; a click switches and keeps the fragment, so a tab is a link to share.
  function show(panels, links, id) {
    var found = panels.some(function (panel) { return panel.id === id; });
    var wanted = found ? id : panels[0].id;
    panels.forEach(function (panel) { panel.hidden = panel.id !== wanted; });
    links.forEach(function (link) {
      if (link.getAttribute("href") === "#" + wanted) {
        link.setAttribute("aria-current", "true");
      } else {
        link.removeAttribute("aria-current");
      }
    });
    drawVisible();
  }

  function start() {
    var panels = Array.prototype.slice.call(document.querySelectorAll("section.tab-panel"));
    var links = Array.prototype.slice.call(document.querySelectorAll("nav.tabs a"));
    if (!panels.length) {
      return;
    }
    document.documentElement.classList.add("tabbed");
    links.forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var id = link.getAttribute("href").slice(1);
        history.replaceState(null, "", "#" + id);
        show(panels, links, id);
      });
    });
    window.addEventListener("hashchange", function () {
      show(panels, links, location.hash.slice(1));
    });
    show(panels, links, location.hash.slice(1));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
