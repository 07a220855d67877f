// The compare page: parallel coordinates of the runs, drawn on a canvas from the diff
// table's differing rows (each cell's data-value), and the "only the rows that differ"
// switch (without JavaScript, the same checkbox is sent by its form as &only=diff).
//
// One vertical axis per field (up to MAX_AXES), one polyline per run in the run's
// colour (the legend's swatch). A field whose values are all numbers is a linear axis
// from its lowest to its highest value (a run without a value breaks its line there);
// any other is ordered categories, "(none)" among them. Text is drawn with fillText (canvas text is
// never markup).
(function () {
  "use strict";

  var MAX_AXES = 16;
  var MARGIN = { top: 34, bottom: 30, side: 60 };
  var LABEL = 18; // characters of an axis name or a category shown

  function short(text) {
    return text.length > LABEL ? text.slice(0, LABEL - 1) + "…" : text;
  }

  function numberText(value) {
    return String(Number(value.toPrecision(6)));
  }

  function axesOf(table) {
    var rows = table.querySelectorAll("tbody tr.differs[data-axis]");
    var axes = [];
    rows.forEach(function (row) {
      if (axes.length >= MAX_AXES) {
        return;
      }
      var values = Array.prototype.map.call(row.querySelectorAll("td"), function (cell) {
        return cell.dataset.value || "";
      });
      var present = values.filter(function (value) {
        return value !== "";
      });
      if (present.length === 0) {
        return;
      }
      var numeric = present.every(function (value) {
        return value.trim() !== "" && isFinite(Number(value));
      });
      var axis = { name: row.dataset.axis, values: values, numeric: numeric };
      if (numeric) {
        var numbers = present.map(Number);
        axis.low = Math.min.apply(null, numbers);
        axis.high = Math.max.apply(null, numbers);
      } else {
        // a run without the field is a category of its own, shown as "(none)", first
        axis.categories = Array.from(new Set(values)).sort();
      }
      axes.push(axis);
    });
    return axes;
  }

  // where a value lies on its axis, 0 (bottom) to 1 (top); null for a missing value
  function position(axis, value) {
    if (axis.numeric) {
      if (value === "") {
        return null;
      }
      var span = axis.high - axis.low;
      return span > 0 ? (Number(value) - axis.low) / span : 0.5;
    }
    var count = axis.categories.length;
    return count > 1 ? axis.categories.indexOf(value) / (count - 1) : 0.5;
  }

  function colorOf(index) {
    var swatch = document.querySelector(".swatch.run-c" + index);
    return swatch ? getComputedStyle(swatch).backgroundColor : "#2f6feb";
  }

  function draw(canvas, table) {
    var axes = axesOf(table);
    var ratio = window.devicePixelRatio || 1;
    var width = Math.max(400, canvas.parentElement.clientWidth);
    var height = Number(canvas.getAttribute("height")) || 340;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px"; // CSSOM, which the page's policy allows
    canvas.style.height = height + "px";
    var context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    context.font = "12px system-ui, sans-serif";
    context.textAlign = "center";
    if (axes.length < 2) {
      context.fillStyle = "#59636e";
      context.fillText("Fewer than two fields differ: nothing to draw across.", width / 2, height / 2);
      canvas.dataset.lines = "0";
      return;
    }
    var plotHeight = height - MARGIN.top - MARGIN.bottom;
    var step = (width - 2 * MARGIN.side) / (axes.length - 1);
    function xOf(index) {
      return MARGIN.side + index * step;
    }
    function yOf(where) {
      return MARGIN.top + (1 - where) * plotHeight;
    }
    axes.forEach(function (axis, index) {
      var x = xOf(index);
      context.strokeStyle = "#d1d9e0";
      context.lineWidth = 1;
      context.beginPath();
      context.moveTo(x, yOf(1));
      context.lineTo(x, yOf(0));
      context.stroke();
      context.fillStyle = "#1f2328";
      context.fillText(short(axis.name), x, MARGIN.top - 18);
      context.fillStyle = "#59636e";
      if (axis.numeric) {
        context.fillText(numberText(axis.high), x, MARGIN.top - 4);
        context.fillText(numberText(axis.low), x, height - MARGIN.bottom + 16);
      } else if (axis.categories.length <= 12) {
        axis.categories.forEach(function (category) {
          var label = category === "" ? "(none)" : short(category);
          context.fillText(label, x, yOf(position(axis, category)) - 4);
        });
      }
    });
    var runs = axes[0].values.length;
    var drawn = 0;
    for (var run = 0; run < runs; run += 1) {
      context.strokeStyle = colorOf(run);
      context.lineWidth = 2;
      context.beginPath();
      var pen = false;
      axes.forEach(function (axis, index) {
        var where = position(axis, axis.values[run]);
        if (where === null) {
          pen = false;
          return;
        }
        if (pen) {
          context.lineTo(xOf(index), yOf(where));
        } else {
          context.moveTo(xOf(index), yOf(where));
          pen = true;
        }
      });
      context.stroke();
      // a dot on every axis the run has a value on: a value between two gaps shows too
      context.fillStyle = context.strokeStyle;
      axes.forEach(function (axis, index) {
        var where = position(axis, axis.values[run]);
        if (where !== null) {
          context.beginPath();
          context.arc(xOf(index), yOf(where), 3, 0, 2 * Math.PI);
          context.fill();
        }
      });
      drawn += 1;
    }
    canvas.dataset.axes = String(axes.length);
    canvas.dataset.lines = String(drawn);
  }

  function start() {
    var table = document.querySelector("table.diff");
    if (!table) {
      return;
    }
    var only = document.getElementById("only-diff");
    var apply = document.querySelector("form.diff-options button.apply");
    if (apply) {
      apply.hidden = true; // the checkbox acts at once
    }
    if (only) {
      only.addEventListener("change", function () {
        table.classList.toggle("only-diff", only.checked);
      });
    }
    var canvas = document.querySelector("canvas.parallel");
    if (canvas) {
      draw(canvas, table);
      var waiting = null;
      window.addEventListener("resize", function () {
        clearTimeout(waiting);
        waiting = setTimeout(function () {
          draw(canvas, table);
        }, 150);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
