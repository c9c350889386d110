// Filters by level, verdict, area and target (columns), and "changed only", kept in the URL
// fragment (#level=MUST&target=a,b&verdict=FAIL&changed=1) so a link reproduces a view;
// "SKIP" names both kinds of SKIP.
(function () {
  "use strict";
  var groups = ["level", "verdict", "area", "target"];
  var aliases = {SKIP: ["NOT_APPLICABLE", "NOT_TESTED"]};
  function read() {
    var params = new URLSearchParams(location.hash.slice(1));
    var state = {changed: params.get("changed") === "1"};
    groups.forEach(function (g) {
      var v = params.get(g);
      state[g] = null;
      if (v) {
        state[g] = new Set();
        v.split(",").forEach(function (x) { (aliases[x] || [x]).forEach(function (a) { state[g].add(a); }); });
      }
    });
    return state;
  }
  function apply() {
    var state = read();
    document.querySelectorAll("input[data-group]").forEach(function (box) {
      var wanted = state[box.dataset.group];
      box.checked = !wanted || wanted.has(box.value);
    });
    document.getElementById("changed-only").checked = state.changed;
    document.querySelectorAll("#matrix [data-col]").forEach(function (el) {
      el.hidden = !!state.target && !state.target.has(el.dataset.col);
    });
    var shown = 0;
    var groupShown = {};
    document.querySelectorAll("#matrix tr.req").forEach(function (row) {
      var ok = (!state.level || state.level.has(row.dataset.level)) &&
               (!state.area || state.area.has(row.dataset.area));
      if (ok && (state.verdict || state.changed)) {
        var cells = Array.prototype.filter.call(row.querySelectorAll("td[data-col]"),
          function (td) { return !td.hidden; });
        ok = cells.some(function (td) {
          return (!state.verdict || state.verdict.has(td.dataset.v)) &&
                 (!state.changed || td.classList.contains("changed"));
        });
      }
      row.hidden = !ok;
      if (ok) {
        shown += 1;
        groupShown[row.dataset.area + "\u0000" + row.dataset.level] = true;
      }
    });
    document.querySelectorAll("#matrix tr.group").forEach(function (row) {
      row.hidden = !groupShown[row.dataset.area + "\u0000" + row.dataset.level];
    });
    document.getElementById("shown-count").textContent = String(shown);
  }
  function write() {
    var params = new URLSearchParams();
    groups.forEach(function (g) {
      var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-group="' + g + '"]'));
      var on = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      if (on.length !== boxes.length) { params.set(g, on.join(",")); }
    });
    if (document.getElementById("changed-only").checked) { params.set("changed", "1"); }
    history.replaceState(null, "", "#" + params.toString());
    apply();
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("input[data-group], #changed-only")) { write(); }
  });
  window.addEventListener("hashchange", function () {
    if (location.hash.indexOf("=") >= 0 || location.hash.length <= 1) { apply(); }  // not #req-X
  });
  apply();
})();
