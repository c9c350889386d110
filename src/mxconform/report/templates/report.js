// Filters by verdict, spec area and target, kept in the URL fragment so a link reproduces a view.
(function () {
  "use strict";
  var groups = ["verdict", "area", "target"];
  function read() {
    var params = new URLSearchParams(location.hash.slice(1));
    var state = {};
    groups.forEach(function (g) {
      var v = params.get(g);
      state[g] = v ? new Set(v.split(",")) : null;
    });
    return state;
  }
  function apply() {
    var state = read();
    document.querySelectorAll("input[data-group]").forEach(function (box) {
      var wanted = state[box.dataset.group];
      box.checked = !wanted || wanted.has(box.value);
    });
    var shown = 0;
    document.querySelectorAll("tr.check").forEach(function (row) {
      var ok = groups.every(function (g) { return !state[g] || state[g].has(row.dataset[g]); });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var counter = document.getElementById("shown-count");
    if (counter) { counter.textContent = String(shown); }
  }
  function write() {
    var params = new URLSearchParams();
    groups.forEach(function (g) {
      var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-group="' + g + '"]'));
      var on = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      if (on.length !== boxes.length) { params.set(g, on.join(",")); }
    });
    history.replaceState(null, "", "#" + params.toString());
    apply();
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("input[data-group]")) { write(); }
  });
  window.addEventListener("hashchange", apply);
  apply();
})();
