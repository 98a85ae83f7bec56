// Live check: re-run the server-side check as the proposal changes and swap in the rendered panel.
// Without JavaScript the form still works: "Check" posts it and the page re-renders.
(function () {
  "use strict";
  var form = document.getElementById("proposal-form");
  if (!form) { return; }
  var panel = document.getElementById("result");
  var timer = null;
  var sequence = 0;

  function query() {
    var fields = ["dose_value", "dose_mode", "phase", "origin", "origin_reason"];
    return fields.map(function (name) {
      var element = form.elements[name];
      return encodeURIComponent(name) + "=" + encodeURIComponent(element ? element.value : "");
    }).join("&");
  }

  function refresh() {
    var mine = ++sequence;
    fetch(form.dataset.checkUrl + "?" + query(), { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (mine !== sequence) { return; }  // a newer keystroke already asked
        if (body.html !== undefined) { panel.innerHTML = body.html; }
        else if (body.error) { panel.textContent = body.error; }
      })
      .catch(function () { panel.textContent = "The check could not be reached; press Check to try again."; });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 250);
  }

  ["dose_value", "origin_reason"].forEach(function (name) {
    if (form.elements[name]) { form.elements[name].addEventListener("input", schedule); }
  });
  ["dose_mode", "phase", "origin"].forEach(function (name) {
    if (form.elements[name]) { form.elements[name].addEventListener("change", schedule); }
  });
})();
