// Live updates without a framework: the server sends an event when an Application changes;
// the page fetches itself again and swaps <main>. Forms and links work without this script.
(function () {
  var live = document.getElementById("live");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname + location.search, { headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main"), main = document.getElementById("main");
        if (fresh && main && fresh.innerHTML !== main.innerHTML) main.innerHTML = fresh.innerHTML;
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var url = document.body.getAttribute("data-stream");
  if (!url || !window.EventSource) return;
  var es = new EventSource(url);
  es.onopen = function () { live && live.classList.add("on"); };
  es.onerror = function () { live && live.classList.remove("on"); };
  es.onmessage = refresh;
})();
