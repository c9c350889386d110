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

// Evidence of PASS, SKIP and INFO checks is built when its button is first pressed, from the
// inert JSON block (a plain button keeps thousands of rows cheap to load); everything a server
// sent goes in as text, never as markup.
(function () {
  "use strict";
  var data = null;
  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function pretty(value) {
    if (value === null || value === undefined) { return ""; }
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }
  function block(headers, body) {
    var lines = headers.map(function (h) { return h[0] + ": " + h[1]; }).join("\n");
    var text = pretty(body);
    return el("pre", lines + (text ? "\n\n" + text : ""));
  }
  function build(key) {
    if (data === null) { data = JSON.parse(document.getElementById("lazy-evidence").textContent); }
    var holder = el("div");
    holder.className = "evidence";
    (data[key] || []).forEach(function (e) {
      var box = el("div");
      box.className = "exchange";
      var outcome = e.status ? String(e.status) : String(e.error);
      box.appendChild(el("code", e.method + " " + e.url));
      box.appendChild(document.createTextNode(" → " + outcome + " in " + e.duration_ms + " ms" +
        (e.note ? " (" + e.note + ")" : "")));
      box.appendChild(block(e.request_headers, e.request_body));
      box.appendChild(block(e.response_headers, e.response_body));
      var curl = el("details");
      curl.appendChild(el("summary", "as curl (secrets as $PLACEHOLDERS)"));
      curl.appendChild(el("pre", e.curl));
      box.appendChild(curl);
      holder.appendChild(box);
    });
    return holder;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.lazy-evidence") : null;
    if (!button) { return; }
    var shown = button.nextElementSibling;
    if (shown && shown.classList.contains("evidence")) {
      shown.hidden = !shown.hidden;
    } else {
      button.insertAdjacentElement("afterend", build(button.dataset.evidence));
    }
    button.setAttribute("aria-expanded", String(!(button.nextElementSibling.hidden)));
  });
})();
