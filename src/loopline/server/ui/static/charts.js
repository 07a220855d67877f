// Metric charts (the run page and the compare page): each <figure class="chart"
// data-key="..."> inside <section class="charts" data-runs="id,id"> is drawn by uPlot
// from /charts/metric, which answers at most two points per pixel column. Dragging
// across a chart asks again for the range selected (finer points); a double-click, or
// "Show all", asks for the whole range. The x axis (step or time) is chosen for every
// chart of the section at once. A chart is fetched when it scrolls into view.
//
// Stored strings (metric keys, run names) only ever reach the page as textContent or
// uPlot labels (which uPlot sets as textContent); nothing here builds HTML.
(function () {
  "use strict";

  var HEIGHT = 220;
  var ACCENT = "#2f6feb";

  function colorOf(index, count) {
    // the compare page's legend swatches hold the run colours (ui.css, .swatch.cN)
    var swatch = count > 1 ? document.querySelector(".swatch.run-c" + index) : null;
    return swatch ? getComputedStyle(swatch).backgroundColor : ACCENT;
  }

  function axisOf(section) {
    var picked = section.querySelector("fieldset.axis input:checked");
    return picked ? picked.value : "step";
  }

  function chartUrl(section, figure, range) {
    var query = new URLSearchParams({
      key: figure.dataset.key,
      runs: section.dataset.runs,
      x: axisOf(section),
      width: String(Math.max(10, Math.min(4000, Math.round(widthOf(figure))))),
    });
    if (range) {
      query.set("start", String(range[0]));
      query.set("end", String(range[1]));
    }
    return "/charts/metric?" + query.toString();
  }

  function widthOf(figure) {
    return Math.max(200, figure.querySelector(".plot").clientWidth || 600);
  }

  function fetchChart(section, figure, range) {
    figure.dataset.state = "loading";
    return fetch(chartUrl(section, figure, range), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (answer) {
      return answer.json().then(function (body) {
        if (!answer.ok) {
          var error = body && body.error ? body.error.message : "HTTP " + answer.status;
          throw new Error(error);
        }
        return body;
      });
    });
  }

  // uPlot wants one shared x array: one run's [xs, ys] as is, several joined (a run
  // without a point at some x has null there, drawn across by spanGaps).
  function tableOf(body) {
    var tables = body.series.map(function (one) {
      return [one.xs, one.ys];
    });
    if (tables.length === 1) {
      return tables[0];
    }
    return uPlot.join(tables);
  }

  function noteOf(body, range) {
    var points = 0;
    var drawn = 0;
    var skipped = 0;
    var cut = false;
    body.series.forEach(function (one) {
      points += one.points;
      drawn += one.xs.length;
      skipped += one.skipped;
      cut = cut || one.truncated;
    });
    var parts = [points.toLocaleString() + " points"];
    if (drawn < points) {
      parts.push(drawn.toLocaleString() + " drawn (lowest and highest per pixel column)");
    }
    if (skipped) {
      parts.push(skipped.toLocaleString() + " NaN or infinite left out");
    }
    if (cut) {
      parts.push("the first 2,000,000 only: zoom in for the rest");
    }
    if (range) {
      parts.push("zoomed in");
    }
    return parts.join(" · ");
  }

  function draw(section, figure, body, range) {
    var plot = figure.querySelector(".plot");
    var note = figure.querySelector(".chart-note");
    var count = body.series.length;
    var series = [{ label: body.x }];
    body.series.forEach(function (one, index) {
      series.push({
        label: one.name,
        stroke: colorOf(index, count),
        width: 1.5,
        spanGaps: true,
      });
    });
    var options = {
      width: widthOf(figure),
      height: HEIGHT,
      scales: { x: { time: body.x === "time" } },
      series: series,
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [
          function (chart) {
            if (chart.select.width < 3) {
              return;
            }
            var low = chart.posToVal(chart.select.left, "x");
            var high = chart.posToVal(chart.select.left + chart.select.width, "x");
            chart.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            load(section, figure, [low, high]);
          },
        ],
      },
    };
    if (figure._chart) {
      figure._chart.destroy();
    }
    plot.textContent = "";
    var data = tableOf(body);
    if (data[0].length === 0) {
      note.textContent = "No finite points" + (range ? " in this range." : ".");
    } else {
      note.textContent = noteOf(body, range);
    }
    figure._chart = new uPlot(options, data, plot);
    figure._chart.over.addEventListener("dblclick", function () {
      if (figure.dataset.zoomed === "true") {
        load(section, figure, null);
      }
    });
    figure.dataset.zoomed = range ? "true" : "false";
    figure.dataset.series = String(count);
    figure.dataset.points = String(data[0].length);
    figure.dataset.drawnMs = String(Math.round(performance.now()));
    figure.dataset.state = "drawn";
    resetButton(section, figure, range);
  }

  function resetButton(section, figure, range) {
    var button = figure.querySelector("button.reset");
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "reset";
      button.textContent = "Show all";
      button.addEventListener("click", function () {
        load(section, figure, null);
      });
      figure.querySelector("figcaption").appendChild(button);
    }
    button.hidden = !range;
  }

  function load(section, figure, range) {
    // only the latest request of a chart is drawn (an axis switched while one loads)
    var ticket = (figure._ticket = (figure._ticket || 0) + 1);
    return fetchChart(section, figure, range)
      .then(function (body) {
        if (ticket === figure._ticket) {
          draw(section, figure, body, range);
        }
      })
      .catch(function (error) {
        if (ticket !== figure._ticket) {
          return;
        }
        figure.dataset.state = "error";
        figure.querySelector(".chart-note").textContent = "Not drawn: " + error.message;
      });
  }

  function setUp(section) {
    var figures = Array.prototype.slice.call(section.querySelectorAll("figure.chart"));
    var seen = new WeakSet();
    var observer = new IntersectionObserver(
      function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting && !seen.has(entry.target)) {
            seen.add(entry.target);
            load(section, entry.target, null);
          }
        });
      },
      { rootMargin: "200px" },
    );
    figures.forEach(function (figure) {
      observer.observe(figure);
    });
    section.querySelectorAll("fieldset.axis input").forEach(function (input) {
      input.addEventListener("change", function () {
        figures.forEach(function (figure) {
          if (seen.has(figure)) {
            load(section, figure, null);
          }
        });
      });
    });
  }

  function start() {
    if (typeof uPlot === "undefined") {
      return;
    }
    document.querySelectorAll("section.charts[data-runs]").forEach(setUp);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
