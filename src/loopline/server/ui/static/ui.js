// loopline's own script: small behaviours on top of htmx. Loaded from /static (the
// Content-Security-Policy allows no inline script), and nothing here is needed for a
// page to work: links and forms go to the same URLs without it.
(function () {
  "use strict";

  // "/" puts the cursor in the page's filter box, as search boxes do on many sites.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    var target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) {
      return;
    }
    var box = document.querySelector("input.filter");
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  // While htmx fetches a new table, the column picker closes (its choice is sent).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var picker = event.target.closest && event.target.closest("section.runs");
    if (picker) {
      picker.querySelectorAll("details.picker[open]").forEach(function (details) {
        details.open = false;
      });
    }
  });
})();
