/**
 * The monitor's page: static HTML and a small script (no framework: a list, a few counters and a waterfall), kept
 * as strings so that the bundled image carries them with the code. The script polls the JSON API once a second;
 * the page works from the monitor's own origin only (the security headers' CSP allows no inline script), and uses
 * relative URLs so that it also works behind a proxy that serves it under a path prefix.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Saga monitor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
  header { padding: 12px 20px; background: #1d2330; color: #fff; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  .counter b { font-size: 18px; }
  main { display: grid; grid-template-columns: minmax(420px, 1fr) 1.3fr; gap: 16px; padding: 16px 20px; }
  section { background: #fff; border-radius: 6px; padding: 12px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { width: 100%; border-collapse: collapse; }
  td, th { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eceef2; font-size: 13px; }
  tr.saga { cursor: pointer; }
  tr.saga:hover, tr.selected { background: #eef3ff; }
  .PENDING { color: #a15c00; } .CONFIRMED { color: #137333; } .CANCELLED { color: #b3261e; } .stuck { color: #b3261e; font-weight: 600; }
  code { font-size: 12px; }
  .wf { position: relative; margin-top: 8px; }
  .wf-row { display: grid; grid-template-columns: 180px 1fr 90px; align-items: center; gap: 8px; height: 26px; }
  .wf-track { position: relative; height: 14px; background: #f0f1f4; border-radius: 3px; }
  .wf-bar { position: absolute; top: 0; height: 14px; min-width: 3px; border-radius: 3px; background: #4a6cf7; }
  .svc-order { background: #4a6cf7; } .svc-inventory { background: #2e9d6a; } .svc-payment { background: #d08a1f; }
  .muted { color: #6b7280; }
  #empty { color: #6b7280; }
</style>
</head>
<body>
<header>
  <h1>Saga monitor</h1>
  <span class="counter">pending <b id="n-pending">–</b></span>
  <span class="counter">stuck <b id="n-stuck" class="stuck">–</b></span>
  <span class="counter">confirmed (1 h) <b id="n-confirmed">–</b></span>
  <span class="counter">cancelled (1 h) <b id="n-cancelled">–</b></span>
  <span class="stuck" id="behind" hidden>monitor behind: stuck counts up to the newest event consumed</span>
  <span class="muted" id="updated"></span>
</header>
<main>
  <div>
    <section id="stuck-section">
      <h2>Stuck sagas</h2>
      <table><tbody id="stuck"></tbody></table>
      <p id="no-stuck" class="muted">None.</p>
    </section>
    <section style="margin-top:16px">
      <h2>Recent sagas</h2>
      <table>
        <thead><tr><th>order</th><th>status</th><th>duration</th><th>last event</th></tr></thead>
        <tbody id="recent"></tbody>
      </table>
    </section>
  </div>
  <section id="detail">
    <h2>Timeline</h2>
    <p id="empty">Select a saga to see its timeline.</p>
    <div id="saga" hidden>
      <div><code id="saga-id"></code> <b id="saga-status"></b> <span id="saga-reason" class="muted"></span></div>
      <div class="muted" id="saga-times"></div>
      <div class="muted" id="saga-waiting"></div>
      <div class="wf" id="waterfall"></div>
    </div>
  </section>
</main>
<script src="monitor.js"></script>
</body>
</html>
`;

export const PAGE_SCRIPT = `'use strict';
(function () {
  var selected = null;
  try { selected = decodeURIComponent(location.hash.slice(1)) || null; } catch (e) { selected = null; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function ms(v) { return v === null || v === undefined ? '–' : v < 1000 ? v + ' ms' : (v / 1000).toFixed(2) + ' s'; }
  function get(url) { return fetch(url, { headers: { accept: 'application/json' } }).then(function (r) { return r.ok ? r.json() : Promise.reject(new Error(url + ': ' + r.status)); }); }
  function row(s) {
    var tr = el('tr', { class: 'saga' + (s.orderId === selected ? ' selected' : ''), 'data-order-id': s.orderId, 'data-status': s.status });
    tr.appendChild(el('td', {}, s.orderId.slice(0, 8)));
    tr.appendChild(el('td', { class: s.stuck ? 'stuck' : s.status }, s.stuck ? 'STUCK (' + s.status + ')' : s.status + (s.settled ? '' : ' …')));
    tr.appendChild(el('td', {}, ms(s.durationMs)));
    tr.appendChild(el('td', { class: 'muted' }, s.lastEventType + (s.waitingFor ? ' → ' + s.waitingFor.service : '')));
    tr.addEventListener('click', function () { selected = s.orderId; location.hash = s.orderId; refresh(); });
    return tr;
  }
  function fill(id, sagas) {
    var body = document.getElementById(id);
    body.replaceChildren.apply(body, sagas.map(row));
  }
  function showSaga(s) {
    document.getElementById('empty').hidden = true;
    var box = document.getElementById('saga');
    box.hidden = false;
    box.setAttribute('data-order-id', s.orderId);
    box.setAttribute('data-status', s.status);
    box.setAttribute('data-settled', String(s.settled));
    document.getElementById('saga-id').textContent = s.orderId;
    var st = document.getElementById('saga-status');
    st.textContent = s.stuck ? 'STUCK (' + s.status + ')' : s.status + (s.settled ? '' : ', not settled');
    st.className = s.stuck ? 'stuck' : s.status;
    document.getElementById('saga-reason').textContent = s.reason || '';
    document.getElementById('saga-times').textContent = 'started ' + (s.startedAt || '–') + ', finished ' + (s.finishedAt || '–') + ', took ' + ms(s.durationMs);
    var waiting = s.waitingFor ? 'waits for ' + s.waitingFor.service + ' to ' + s.waitingFor.step : '';
    if (s.deadLetters && s.deadLetters.length) waiting += ' — dead-lettered: ' + s.deadLetters.map(function (d) { return d.type + ' in ' + d.queue + ' (' + d.reason + ')'; }).join(', ');
    document.getElementById('saga-waiting').textContent = waiting;
    var total = Math.max(1, s.events.reduce(function (m, e) { return Math.max(m, e.offsetMs); }, 0));
    var wf = document.getElementById('waterfall');
    wf.replaceChildren.apply(wf, s.events.map(function (e) {
      var r = el('div', { class: 'wf-row event', 'data-type': e.type });
      r.appendChild(el('div', {}, e.type));
      var track = el('div', { class: 'wf-track' });
      var start = e.offsetMs - (e.hopMs || 0);
      var bar = el('div', { class: 'wf-bar svc-' + e.service, title: e.service + ' ' + e.at + (e.traceparent ? ' trace ' + e.traceparent.split('-')[1] : '') });
      // A producer clock behind its cause's gives a negative hop: draw it as a mark at the event's own time.
      var hop = Math.max(0, e.hopMs || 0);
      bar.style.left = (100 * Math.max(0, Math.min(start, e.offsetMs)) / total).toFixed(2) + '%';
      bar.style.width = (100 * hop / total).toFixed(2) + '%';
      track.appendChild(bar);
      r.appendChild(track);
      r.appendChild(el('div', { class: 'muted' }, e.hopMs === null ? 'start' : '+' + ms(e.hopMs)));
      return r;
    }));
  }
  function refresh() {
    return Promise.all([get('stats'), get('sagas?limit=50'), get('sagas?state=stuck&limit=50')]).then(function (all) {
      var stats = all[0];
      document.getElementById('n-pending').textContent = String(stats.pending);
      document.getElementById('n-stuck').textContent = String(stats.stuck);
      document.getElementById('n-confirmed').textContent = String(stats.confirmedLastHour);
      document.getElementById('n-cancelled').textContent = String(stats.cancelledLastHour);
      document.getElementById('behind').hidden = !stats.behind;
      fill('recent', all[1].sagas);
      fill('stuck', all[2].sagas);
      document.getElementById('no-stuck').hidden = all[2].sagas.length > 0;
      document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      return selected ? get('sagas/' + encodeURIComponent(selected)).then(showSaga, function () {}) : undefined;
    }).catch(function (err) { document.getElementById('updated').textContent = String(err); });
  }
  // The next poll starts a second after the previous one ended: a slow server never gets requests piling up.
  (function loop() { refresh().then(function () { setTimeout(loop, 1000); }); })();
})();
`;
