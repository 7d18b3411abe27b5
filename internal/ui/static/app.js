// rcrouter UI script. Every value shown here comes from webhook payloads,
// which anyone who can reach the webhook endpoint controls: the DOM is built
// with createElement and textContent only, never innerHTML.
'use strict';

(function () {
  const CSRF_HEADER = 'X-CSRF-Token';
  const MAX_ROWS = 200; // live rows kept on a destination page
  const STATUSES = ['delivered', 'retrying', 'dead', 'skipped', 'pending', 'running'];

  // el builds an element; string children become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function csrfToken() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : '';
  }

  // api calls the admin API with the session cookie; state changes carry the
  // CSRF token, which the server checks for cookie-authenticated requests.
  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') opts.headers[CSRF_HEADER] = csrfToken();
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      throw new Error((data && data.error) || 'HTTP ' + res.status);
    }
    return data;
  }

  function notice(kind, ...content) {
    const n = document.getElementById('notice');
    if (!n) return;
    n.className = 'notice ' + kind;
    n.replaceChildren(...content);
    n.hidden = false;
  }

  const enc = encodeURIComponent;

  // Formatting mirrors internal/ui/format.go so live rows look like rendered ones.
  function formatTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return '—';
    return d.toISOString().slice(0, 19).replace('T', ' ');
  }

  function formatDuration(ms) {
    ms = Number(ms) || 0;
    return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s';
  }

  function statusClass(s) { return STATUSES.includes(s) ? s : 'other'; }

  // prettyJSON re-indents valid JSON text without parsing it into numbers,
  // so big integers and key order stay exactly as sent.
  function prettyJSON(text) {
    if (typeof text !== 'string' || text === '') return text || '';
    try { JSON.parse(text); } catch (_) { return text; }
    let out = '', depth = 0, inStr = false, esc = false;
    const nl = () => '\n' + '  '.repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inStr) {
        out += c;
        if (esc) esc = false;
        else if (c === '\\') esc = true;
        else if (c === '"') inStr = false;
        continue;
      }
      if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
      if (c === '"') { inStr = true; out += c; continue; }
      if (c === '{' || c === '[') {
        // Keep empty containers on one line, like Go's json.Indent.
        let j = i + 1;
        while (' \n\r\t'.includes(text[j])) j++;
        if (text[j] === (c === '{' ? '}' : ']')) { out += c + text[j]; i = j; continue; }
        depth++;
        out += c + nl();
      } else if (c === '}' || c === ']') {
        depth--;
        out += nl() + c;
      } else if (c === ',') {
        out += ',' + nl();
      } else if (c === ':') {
        out += ': ';
      } else {
        out += c;
      }
    }
    return out;
  }

  function retryButton(deliveryID) {
    return el('button', { type: 'button', class: 'retry', 'data-action': 'retry', 'data-delivery-id': deliveryID, text: 'Retry' });
  }

  // buildRow is the live twin of the "row" template in destination.html.
  function buildRow(d) {
    const req = d.request || {}, resp = d.response || {};
    const code = resp.status_code ? String(resp.status_code) : '';
    const headers = req.headers || {};
    const headerRows = Object.keys(headers).sort().map((k) => el('tr', {}, el('th', { text: k }), el('td', { text: headers[k] })));
    const kv = el('dl', { class: 'kv' },
      el('dt', { text: 'Status code' }), el('dd', { class: 'resp-code', text: code || 'none' }),
      el('dt', { text: 'Duration' }), el('dd', { text: formatDuration(d.duration_ms) }));
    if (resp.error) kv.append(el('dt', { text: 'Error' }), el('dd', { class: 'resp-error error-text', text: resp.error }));
    if (d.next_attempt_at) kv.append(el('dt', { text: 'Next attempt' }), el('dd', { class: 'resp-next', text: formatTime(d.next_attempt_at) }));
    if (d.route) kv.append(el('dt', { text: 'Route' }), el('dd', { text: d.route }));
    kv.append(el('dt', { text: 'Dispatch' }), el('dd', { class: 'mono small', text: d.id }));

    const retryable = d.status === 'dead' || d.status === 'retrying';
    return el('details', {
      class: 'row', 'data-id': d.id, 'data-delivery-id': d.delivery_id, 'data-event-id': d.event_id,
      'data-status': d.status, 'data-created': d.created_at,
    },
    el('summary', {},
      el('time', { class: 'c-time', datetime: d.created_at, text: formatTime(d.created_at) }),
      el('a', { class: 'c-event', href: '/ui/events/' + enc(d.event_id), text: d.event_id }),
      el('span', { class: 'c-type', text: d.event_type }),
      el('span', { class: 'c-attempt', text: '#' + d.attempt }),
      el('span', { class: 'c-status' }, el('span', { class: 'badge badge-' + statusClass(d.status), text: d.status })),
      el('span', { class: 'c-code', text: code || '—' }),
      el('span', { class: 'c-dur', text: formatDuration(d.duration_ms) }),
      el('span', { class: 'c-act' }, retryable ? retryButton(d.delivery_id) : null)),
    el('div', { class: 'detail' },
      el('section', { class: 'req' },
        el('h3', { text: 'Request' }),
        el('p', { class: 'mono line' }, el('span', { class: 'req-method', text: req.method || '' }), ' ', el('span', { class: 'req-url', text: req.url || '' })),
        headerRows.length ? el('table', { class: 'headers' }, ...headerRows) : null,
        el('pre', { class: 'body req-body', text: prettyJSON(req.body) })),
      el('section', { class: 'resp' },
        el('h3', { text: 'Response' }),
        kv,
        el('pre', { class: 'body resp-body', text: prettyJSON(resp.body) }))));
  }

  // rowAfter reports whether a row (rendered or live) sorts after dispatch d
  // in the newest-first order the store uses (created_at, then id).
  function rowAfter(row, d) {
    const a = Date.parse(row.dataset.created), b = Date.parse(d.created_at);
    if (a !== b) return a < b;
    return row.dataset.id < d.id;
  }

  // Feed is the live list of one destination page.
  function startFeed(feed) {
    const dest = feed.dataset.destination;
    const filter = { status: feed.dataset.status, type: feed.dataset.eventType, event: feed.dataset.eventId };
    const liveStatus = document.getElementById('live-status');
    const toggle = document.getElementById('feed-toggle');
    const empty = document.getElementById('feed-empty');
    const seen = new Set(Array.from(feed.querySelectorAll('.row'), (r) => r.dataset.id));
    let paused = false;
    let buffered = [];
    let state = 'connecting';

    function showState() {
      if (!liveStatus) return;
      const s = paused ? 'paused' : state;
      liveStatus.dataset.state = s;
      liveStatus.textContent = {
        live: 'live', paused: 'feed paused', connecting: 'connecting…',
        reconnecting: 'reconnecting…', closed: 'disconnected: reload the page',
      }[s];
      if (toggle) {
        toggle.setAttribute('aria-pressed', String(paused));
        toggle.textContent = paused ? 'Resume feed' + (buffered.length ? ' (' + buffered.length + ' new)' : '') : 'Pause feed';
      }
    }

    function matches(d) {
      return d.destination === dest &&
        (!filter.status || d.status === filter.status) &&
        (!filter.type || d.event_type === filter.type) &&
        (!filter.event || d.event_id === filter.event);
    }

    function insert(d) {
      const row = buildRow(d);
      row.classList.add('fresh');
      let before = null;
      for (const r of feed.querySelectorAll('.row')) {
        if (rowAfter(r, d)) { before = r; break; }
      }
      feed.insertBefore(row, before);
      // Only the newest attempt of a delivery keeps its Retry button (as on
      // the server-rendered page).
      let newest = true;
      for (const r of feed.querySelectorAll('.row')) {
        if (r.dataset.deliveryId !== d.delivery_id) continue;
        // A button whose request is in flight stays: it will say "scheduled".
        if (!newest) r.querySelectorAll('button.retry:not(:disabled)').forEach((b) => b.remove());
        newest = false;
      }
      const rows = feed.querySelectorAll('.row');
      for (let i = MAX_ROWS; i < rows.length; i++) {
        if (!rows[i].open) rows[i].remove();
      }
      if (empty) empty.hidden = true;
    }

    function accept(d) {
      if (!d || !d.id || seen.has(d.id) || !matches(d)) return;
      seen.add(d.id);
      if (paused) {
        buffered.push(d);
        showState();
        return;
      }
      insert(d);
    }

    // catchUp fetches the newest page after every (re)connection: anything
    // dispatched between the page render and the stream opening would
    // otherwise never show.
    async function catchUp() {
      const q = new URLSearchParams({ destination: dest, limit: '50' });
      if (filter.status) q.set('status', filter.status);
      if (filter.type) q.set('event_type', filter.type);
      if (filter.event) q.set('event_id', filter.event);
      try {
        const data = await api('GET', '/api/v1/dispatches?' + q.toString());
        (data.items || []).slice().reverse().forEach(accept);
      } catch (err) {
        notice('bad', 'Could not refresh the feed: ' + err.message);
      }
    }

    if (toggle) {
      toggle.addEventListener('click', () => {
        paused = !paused;
        if (!paused) {
          const rows = buffered;
          buffered = [];
          rows.forEach(insert);
        }
        showState();
      });
    }

    const q = new URLSearchParams({ destination: dest });
    if (filter.event) q.set('event_id', filter.event);
    const es = new EventSource('/api/v1/stream?' + q.toString());
    es.addEventListener('open', () => {
      state = 'live';
      showState();
      catchUp().finally(() => { feed.dataset.stream = 'open'; });
    });
    es.addEventListener('error', () => {
      // EventSource retries by itself, except after an HTTP error such as
      // 401 when the session ended: then only a reload (and login) helps.
      state = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
      feed.dataset.stream = state;
      showState();
    });
    es.addEventListener('dispatch', (m) => {
      let d;
      try { d = JSON.parse(m.data); } catch (_) { return; }
      accept(d);
    });
    window.addEventListener('pagehide', () => es.close());
    showState();
  }

  // startEventPage keeps the per-destination table of an event page current.
  function startEventPage(box) {
    const id = box.dataset.eventId;
    const es = new EventSource('/api/v1/stream?event_id=' + enc(id));
    es.addEventListener('dispatch', (m) => {
      let d;
      try { d = JSON.parse(m.data); } catch (_) { return; }
      const row = document.querySelector('tr[data-delivery-id="' + CSS.escape(d.delivery_id || '') + '"]');
      if (!row) return;
      const badge = row.querySelector('.d-status');
      badge.textContent = d.status;
      badge.className = 'badge badge-' + statusClass(d.status) + ' d-status';
      row.querySelector('.d-attempts').textContent = String(d.attempt);
      if (d.status === 'delivered') {
        row.querySelector('.d-delivered').textContent = formatTime(d.created_at);
        row.querySelector('.d-error').textContent = '';
      } else if (d.response && (d.response.error || d.response.status_code)) {
        row.querySelector('.d-error').textContent = d.response.error || 'HTTP ' + d.response.status_code;
      }
    });
    window.addEventListener('pagehide', () => es.close());
  }

  // startTry wires the routes page's "try an event" box: the pasted body is
  // routed by the running routes (POST /api/v1/routes/test) and nothing is stored.
  function startTry(form) {
    const out = document.getElementById('try-result');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = document.getElementById('try-body').value;
      const btn = form.querySelector('button[type="submit"]');
      btn.disabled = true;
      try {
        const res = await fetch('/api/v1/routes/test', {
          method: 'POST', credentials: 'same-origin',
          headers: { Accept: 'application/json', 'Content-Type': 'application/json', [CSRF_HEADER]: csrfToken() },
          body: text,
        });
        const r = await res.json();
        if (!res.ok) throw new Error(r.error || 'HTTP ' + res.status);
        out.querySelector('.try-summary').replaceChildren(
          'Event ', el('span', { class: 'mono', text: r.event_id }), ' · ' + r.type + ' · ' + r.lifecycle +
          (r.environment ? ' · ' + r.environment : '') + (r.entitlements.length ? ' · entitlements ' + r.entitlements.join(', ') : ''));
        out.querySelector('.try-verdicts tbody').replaceChildren(...r.routes.map((v) => el('tr', { 'data-route': v.name },
          el('td', { 'data-label': 'Route', text: v.name }),
          el('td', { 'data-label': 'Verdict', class: 'verdict' }, el('span', { class: 'badge badge-' + (v.matched ? 'delivered' : 'skipped'), text: v.matched ? 'matched' : 'not matched' })),
          el('td', { 'data-label': 'Reason', text: v.reason }))));
        const dests = r.destinations.map((d) => el('li', { 'data-destination': d.destination }, el('strong', { text: d.destination }), ' via ' + d.route));
        out.querySelector('.try-dests').replaceChildren(...(dests.length ? dests : [el('li', { class: 'muted', text: 'none: the event would be stored as unrouted' })]));
        out.hidden = false;
      } catch (err) {
        out.hidden = true;
        notice('bad', 'Could not route the event: ' + err.message);
      } finally {
        btn.disabled = false;
      }
    });
  }

  // showPreview draws a reload dry run: errors, or per destination the events
  // gained and lost with samples, and the Apply button when the file is valid.
  function showPreview(p) {
    const box = document.getElementById('reload-preview');
    const errs = box.querySelector('.preview-errors');
    const table = box.querySelector('.preview-diff');
    const apply = box.querySelector('[data-action="reload-apply"]');
    errs.replaceChildren(...p.errors.map((e) => el('li', { class: 'mono small', text: e })));
    const names = Object.keys(p.diff).sort();
    let summary;
    if (!p.valid) summary = 'The config file is invalid; nothing can be applied.';
    else if (names.length === 0) summary = 'Valid. Over ' + p.events + ' stored events of the last 7 days, every event reaches the same destinations.';
    else summary = 'Valid. Over ' + p.events + ' stored events of the last 7 days, ' + names.length + ' destination' + (names.length === 1 ? '' : 's') + ' change:';
    box.querySelector('.preview-summary').textContent = summary;
    const samples = (ids, sign) => ids.map((id) => el('a', { class: 'mono small sample', href: '/ui/events/' + enc(id), text: sign + id }));
    table.querySelector('tbody').replaceChildren(...names.map((n) => {
      const c = p.diff[n];
      return el('tr', { 'data-destination': n },
        el('td', { 'data-label': 'Destination', text: n }),
        el('td', { 'data-label': 'Gained', class: 'num d-gained', text: '+' + c.gained }),
        el('td', { 'data-label': 'Lost', class: 'num d-lost', text: '-' + c.lost }),
        el('td', { 'data-label': 'Sample events', class: 'samples' }, ...samples(c.samples_gained, '+'), ...samples(c.samples_lost, '−')));
    }));
    table.hidden = names.length === 0;
    apply.hidden = !p.valid;
    box.hidden = false;
  }

  // sparkBars mirrors newSpark in internal/ui/chart.go.
  function sparkBars(svg, buckets) {
    const W = 96, H = 24;
    const most = Math.max(0, ...buckets.map((b) => b.delivered + b.failed + b.dead));
    const step = W / Math.max(buckets.length, 1);
    const h = (n) => (most === 0 ? 0 : n / most * H);
    const NS = 'http://www.w3.org/2000/svg';
    const rect = (cls, x, y, hh) => {
      const r = document.createElementNS(NS, 'rect');
      r.setAttribute('class', cls); r.setAttribute('x', x.toFixed(1)); r.setAttribute('y', y.toFixed(1));
      r.setAttribute('width', '3'); r.setAttribute('height', hh.toFixed(1));
      return r;
    };
    svg.replaceChildren(...buckets.map((b, i) => {
      const g = document.createElementNS(NS, 'g');
      const bad = b.failed + b.dead, okH = h(b.delivered), badH = h(bad), x = i * step;
      g.setAttribute('data-delivered', String(b.delivered));
      g.setAttribute('data-failed', String(bad));
      g.append(rect('ok', x, H - okH, okH), rect('bad', x, H - okH - badH, badH));
      return g;
    }));
  }

  // startSparks keeps the overview's trends live: a destination's trend is
  // redrawn from the stats API shortly after each of its dispatches (one
  // fetch per second at most), and every trend each minute as hours roll.
  function startSparks() {
    const svgs = new Map(Array.from(document.querySelectorAll('svg.spark[data-destination]'), (s) => [s.dataset.destination, s]));
    if (!svgs.size) return;
    const pending = new Map();
    const refresh = async (name) => {
      pending.delete(name);
      const svg = svgs.get(name);
      try {
        const r = await api('GET', '/api/v1/destinations/' + enc(name) + '/stats?window=24h');
        sparkBars(svg, r.buckets || []);
        svg.dataset.updated = new Date().toISOString();
      } catch (_) { /* keep the last drawing */ }
    };
    const soon = (name) => {
      if (svgs.has(name) && !pending.has(name)) pending.set(name, setTimeout(() => refresh(name), 1000));
    };
    setInterval(() => svgs.forEach((_, name) => soon(name)), 60000);
    const es = new EventSource('/api/v1/stream');
    es.addEventListener('open', () => { document.getElementById('main').dataset.stream = 'open'; });
    es.addEventListener('dispatch', (m) => {
      try { soon(JSON.parse(m.data).destination); } catch (_) { /* not JSON */ }
    });
    window.addEventListener('pagehide', () => es.close());
  }

  // Buttons: one delegated handler, keyed by data-action.
  let replayBody = null;

  async function onAction(b, ev) {
    const action = b.dataset.action;
    const dest = b.dataset.destination;
    switch (action) {
      case 'retry': {
        // The button may sit inside a <summary>: do not toggle the row.
        ev.preventDefault();
        b.disabled = true;
        try {
          await api('POST', '/api/v1/deliveries/' + enc(b.dataset.deliveryId) + '/retry');
          b.replaceWith(el('span', { class: 'scheduled', text: 'scheduled' }));
        } catch (err) {
          b.disabled = false;
          notice('bad', 'Retry failed: ' + err.message);
        }
        return;
      }
      case 'pause':
      case 'resume': {
        b.disabled = true;
        try {
          await api('POST', '/api/v1/destinations/' + enc(dest) + '/' + action);
          location.reload();
        } catch (err) {
          b.disabled = false;
          notice('bad', (action === 'pause' ? 'Pause' : 'Resume') + ' failed: ' + err.message);
        }
        return;
      }
      case 'test': {
        b.disabled = true;
        try {
          const r = await api('POST', '/api/v1/destinations/' + enc(dest) + '/test');
          notice('ok', 'Test event sent: ', el('a', { href: '/ui/events/' + enc(r.event_id), text: r.event_id }));
        } catch (err) {
          notice('bad', 'Test event failed: ' + err.message);
        } finally {
          b.disabled = false;
        }
        return;
      }
      case 'replay': {
        // Count first, so the operator confirms a number, not a guess.
        const body = { status: 'dead' };
        if (b.dataset.eventType) body.event_type = b.dataset.eventType;
        b.disabled = true;
        try {
          const r = await api('POST', '/api/v1/destinations/' + enc(dest) + '/replay', Object.assign({ dry_run: true }, body));
          const n = r.matching || 0;
          if (n === 0) {
            notice('', 'No dead deliveries to replay.');
            return;
          }
          replayBody = { dest, body };
          const box = document.getElementById('replay-confirm');
          box.querySelector('.confirm-text').textContent =
            'Replay ' + n + ' dead deliver' + (n === 1 ? 'y' : 'ies') + (body.event_type ? ' of type ' + body.event_type : '') + '?';
          box.hidden = false;
        } catch (err) {
          notice('bad', 'Replay failed: ' + err.message);
        } finally {
          b.disabled = false;
        }
        return;
      }
      case 'replay-confirm': {
        if (!replayBody) return;
        const { dest: d, body } = replayBody;
        replayBody = null;
        document.getElementById('replay-confirm').hidden = true;
        try {
          const r = await api('POST', '/api/v1/destinations/' + enc(d) + '/replay', body);
          notice('ok', 'Scheduled ' + r.scheduled + ' deliver' + (r.scheduled === 1 ? 'y' : 'ies') + ' for replay.');
        } catch (err) {
          notice('bad', 'Replay failed: ' + err.message);
        }
        return;
      }
      case 'replay-cancel':
        replayBody = null;
        document.getElementById('replay-confirm').hidden = true;
        return;
      case 'reload-preview': {
        b.disabled = true;
        try {
          showPreview(await api('POST', '/api/v1/reload', { dry_run: true }));
        } catch (err) {
          notice('bad', 'Preview failed: ' + err.message);
        } finally {
          b.disabled = false;
        }
        return;
      }
      case 'reload-apply': {
        b.disabled = true;
        try {
          await api('POST', '/api/v1/reload');
          location.assign('/ui/routes?reloaded=1');
        } catch (err) {
          b.disabled = false;
          notice('bad', 'Reload refused: ' + err.message);
        }
        return;
      }
      case 'reload-close':
        document.getElementById('reload-preview').hidden = true;
        return;
    }
  }

  document.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    if (b && b.dataset.action !== 'toggle-feed') onAction(b, ev);
  });

  document.addEventListener('DOMContentLoaded', () => {
    const feed = document.getElementById('feed');
    if (feed && feed.dataset.live === 'true') startFeed(feed);
    const ev = document.getElementById('event');
    if (ev && ev.dataset.eventId) startEventPage(ev);
    const tryForm = document.getElementById('try-form');
    if (tryForm) startTry(tryForm);
    if (document.getElementById('main').dataset.page === 'overview') startSparks();
    if (document.getElementById('main').dataset.page === 'routes' && new URLSearchParams(location.search).has('reloaded')) {
      notice('ok', 'Config reloaded.');
    }
  });
})();
