// batchy web UI: the only script. It (1) re-fetches the server-rendered live parts of a page
// ([data-live] elements, from body[data-fragment]) when an event stream reports a change (the
// dashboard only the rows changed), after every action, and on a timer without a stream, (2) performs
// actions by POSTing to the v1 API after a confirmation, (3) fetches a dashboard row's action
// buttons when its menu opens, and (4) appends the workflow's event stream (Server-Sent Events) to
// the live tail. Everything it inserts from data is set as text.
(() => {
  'use strict';
  const body = document.body;
  const csrf = document.querySelector('meta[name="batchy-csrf"]');

  // ---- Results of actions: a visible message, also announced to screen readers.
  const box = document.getElementById('result-box');
  const result = document.getElementById('result');
  const announce = document.getElementById('announce');
  let resultTimer = 0;
  function say(text, isError) {
    if (!box) return;
    clearTimeout(resultTimer);
    const msg = (isError ? 'Error: ' : 'Done: ') + text;
    result.textContent = msg;
    box.classList.toggle('error', !!isError);
    box.hidden = false;
    announce.textContent = msg;
    if (!isError) resultTimer = setTimeout(() => { box.hidden = true; }, 8000);
  }
  if (box) document.getElementById('result-close').addEventListener('click', () => { box.hidden = true; });

  // ---- Live parts.
  const liveStatus = document.getElementById('live-status');
  const lastHTML = new Map();
  document.querySelectorAll('[data-live]').forEach((el) => lastHTML.set(el.id, el.innerHTML));
  let inflight = null;
  let again = false;
  // refocus: the button of a row's action menu that had the keyboard focus when a live update
  // replaced the row, focused again once the reopened menu holds it again (loadMenu).
  let refocus = '';

  // setLive shows the live parts' state. The region is announced to screen readers only when
  // that state changes (paused, expired, back), not at every refresh's new time.
  let lastProblem = null;
  function setLive(text, problem) {
    liveStatus.setAttribute('aria-live', problem !== lastProblem ? 'polite' : 'off');
    lastProblem = problem;
    liveStatus.textContent = text;
    liveStatus.classList.toggle('problem', problem);
  }

  // apply swaps in the fresh live parts that changed, keeping open <details> open and the
  // keyboard focus where it was.
  // It returns false when the answer holds no live part: not the page's fragment (the login page,
  // once the session has expired).
  function apply(html) {
    const tpl = document.createElement('template');
    tpl.innerHTML = html;
    const parts = tpl.content.querySelectorAll('[data-live]');
    if (parts.length === 0) return false;
    parts.forEach((fresh) => {
      const cur = document.getElementById(fresh.id);
      if (!cur || lastHTML.get(fresh.id) === fresh.innerHTML) return;
      const open = [...cur.querySelectorAll('details[open]')].map((d) => d.id).filter(Boolean);
      const active = document.activeElement;
      const hadFocus = !!active && active !== cur && cur.contains(active);
      const focusId = hadFocus ? active.id : '';
      cur.innerHTML = fresh.innerHTML;
      lastHTML.set(fresh.id, fresh.innerHTML);
      open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
      if (hadFocus) {
        // Keep the focus on the same control, or, when the refresh removed it (the Close button of
        // a batch just closed), on its live part, so a keyboard user does not start over at the top.
        const el = focusId && document.getElementById(focusId);
        if (el) { el.focus(); } else { cur.tabIndex = -1; cur.focus(); refocus = focusId; }
      }
    });
    return true;
  }

  // ---- Staleness: when the store (or the event stream) stops answering, the live parts are
  // dimmed and a banner says since when, and what the data below dates from, until it answers.
  const staleBox = document.getElementById('stale');
  const hhmmss = (d) => d.toISOString().slice(11, 19) + 'Z';
  let lastOK = new Date(body.dataset.now || Date.now());
  const problems = new Map(); // what is down → since when
  let retryTimer = 0;
  function showStale() {
    const down = problems.size > 0;
    body.classList.toggle('stale', down);
    if (!staleBox) return;
    if (!down) { staleBox.hidden = true; staleBox.textContent = ''; return; }
    const parts = [...problems].map(([what, since]) => what + ' since ' + hhmmss(since) + ' (' + ago(since) + ' ago)');
    staleBox.textContent = 'Not up to date: ' + parts.join('; ') + '. What is shown dates from ' + hhmmss(lastOK) + '; retrying every few seconds.';
    staleBox.hidden = false;
  }
  function ago(since) {
    const s = Math.max(0, Math.round((Date.now() - since) / 1000));
    return s < 60 ? s + 's' : s < 3600 ? Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's' : Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
  }
  function problem(what, on) {
    if (on && !problems.has(what)) problems.set(what, new Date());
    if (!on) problems.delete(what);
    showStale();
  }
  window.batchyStale = () => [...problems.keys()];

  // reason reads the error page's message out of a failed fragment's answer.
  async function reason(res) {
    try {
      const tpl = document.createElement('template');
      tpl.innerHTML = await res.text();
      const m = tpl.content.querySelector('.error-message');
      if (m && m.textContent.trim()) return m.textContent.trim() + ' (HTTP ' + res.status + ')';
    } catch (e) { /* no body */ }
    return 'HTTP ' + res.status;
  }

  // Times marked data-rel read relative to now ("3m ago", "in 5m"); the absolute one stays on
  // hover. Kept up to date here, so the server's answer does not change with the clock.
  function relTimes() {
    const now = Date.now();
    document.querySelectorAll('time[data-rel]').forEach((el) => {
      const t = Date.parse(el.dateTime);
      if (isNaN(t)) return;
      const d = Math.round((now - t) / 1000);
      const a = Math.abs(d);
      const txt = a < 5 ? 'just now' : a < 60 ? a + 's' : a < 3600 ? Math.floor(a / 60) + 'm' : a < 172800 ? Math.floor(a / 3600) + 'h' + String(Math.floor(a / 60) % 60).padStart(2, '0') + 'm' : Math.floor(a / 86400) + 'd' + Math.floor(a / 3600) % 24 + 'h';
      el.textContent = a < 5 ? txt : d > 0 ? txt + ' ago' : 'in ' + txt;
    });
  }
  relTimes();
  setInterval(relTimes, 15000);

  // UTC or local time: the server writes UTC; the switch (remembered by the browser) shows the
  // browser's time zone instead, with its offset. Hover titles follow.
  const tzBtn = document.getElementById('tz-switch');
  const tzNote = document.getElementById('tz-note');
  let local = false;
  try { local = localStorage.getItem('batchy-tz') === 'local'; } catch (e) { /* storage off */ }
  function fmtLocal(d, short) {
    const p = (n) => String(n).padStart(2, '0');
    const off = -d.getTimezoneOffset();
    const zone = (off >= 0 ? '+' : '-') + p(Math.floor(Math.abs(off) / 60)) + ':' + p(Math.abs(off) % 60);
    if (short) return p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + zone;
  }
  function applyTZ() {
    if (!tzBtn) return;
    document.querySelectorAll('time[datetime]').forEach((el) => {
      const d = new Date(el.dateTime);
      if (isNaN(d)) return;
      if (el.title) {
        if (el.dataset.utcTitle === undefined) el.dataset.utcTitle = el.title;
        el.title = local ? fmtLocal(d, false) : el.dataset.utcTitle;
      }
      if (el.dataset.rel !== undefined) return; // relative: the same in every zone
      if (el.dataset.utc === undefined) el.dataset.utc = el.textContent;
      el.textContent = local ? fmtLocal(d, el.dataset.utc.length <= 16) : el.dataset.utc;
    });
    if (tzNote) tzNote.textContent = local ? 'Times in your time zone' : 'Times in UTC';
    tzBtn.textContent = local ? 'Show UTC' : 'Show local time';
  }
  if (tzBtn) {
    tzBtn.hidden = false;
    tzBtn.addEventListener('click', () => {
      local = !local;
      try { localStorage.setItem('batchy-tz', local ? 'local' : 'utc'); } catch (e) { /* storage off */ }
      applyTZ();
    });
    applyTZ();
  }
  let etag = '';
  // afterRefresh runs after new live parts were applied (the dashboard follows its new rows).
  let afterRefresh = () => {};

  async function refresh() {
    const url = body.dataset.fragment;
    if (!url) return;
    if (inflight) { again = true; return inflight; }
    inflight = (async () => {
      try {
        let res;
        try {
          const headers = { Accept: 'text/html' };
          if (etag) headers['If-None-Match'] = etag;
          res = await fetch(url, { headers, cache: 'no-store', credentials: 'same-origin' });
        } catch (err) {
          throw Object.assign(new Error('batchy is not answering'), { down: 'batchy is not answering' });
        }
        if (res.status >= 500) {
          const why = await reason(res);
          // The banner's key stays the same while the outage lasts, whatever the message says.
          throw Object.assign(new Error(why), { down: res.status === 503 ? 'the store is not answering' : 'batchy answers HTTP ' + res.status });
        }
        if (res.status !== 304) {
          if (!res.ok) throw new Error('HTTP ' + res.status);
          if (res.redirected || !apply(await res.text())) {
            throw new Error('your session has expired: reload the page to log in again');
          }
          etag = res.headers.get('ETag') || '';
          relTimes();
          applyTZ();
          afterRefresh();
        }
        lastOK = new Date();
        [...problems.keys()].filter((k) => k !== streamDown).forEach((k) => problems.delete(k));
        showStale();
        setLive('Updated ' + hhmmss(lastOK), false);
      } catch (err) {
        setLive('Live updates paused: ' + err.message, true);
        if (err.down) {
          [...problems.keys()].filter((k) => k !== streamDown && k !== err.down).forEach((k) => problems.delete(k));
          problem(err.down, true);
          clearTimeout(retryTimer);
          retryTimer = setTimeout(refresh, 3000); // retry sooner than the timer while down
        }
      }
    })();
    await inflight;
    inflight = null;
    if (again) { again = false; await refresh(); }
  }
  window.batchyRefresh = refresh;

  const streamDown = 'the live event stream is disconnected';

  // A page shown because the store did not answer loads itself again once it does.
  if (body.dataset.retry) {
    const every = (parseInt(body.dataset.retry, 10) || 5) * 1000;
    const state = document.getElementById('retry-state');
    setInterval(async () => {
      try {
        const res = await fetch(window.location.href, { method: 'HEAD', cache: 'no-store', credentials: 'same-origin' });
        if (res.ok) { window.location.reload(); return; }
        if (state) state.textContent = 'Last try: ' + hhmmss(new Date()) + ', still HTTP ' + res.status + '.';
      } catch (e) {
        if (state) state.textContent = 'Last try: ' + hhmmss(new Date()) + ': batchy is not answering either.';
      }
    }, every);
  }

  // pushed: the dashboard's change stream is open and brings the changes; the timer is then a
  // safety net only (for the counts of the workflows off the page), every 12th tick.
  let pushed = false;
  if (body.dataset.fragment) {
    const every = (parseInt(body.dataset.refresh, 10) || 5) * 1000;
    let ticks = 0;
    setInterval(() => {
      if (document.hidden || (pushed && ++ticks % 12 !== 0)) return;
      refresh();
    }, every);
    document.addEventListener('visibilitychange', () => { if (!document.hidden && !pushed) refresh(); });
  }

  // ---- Dashboard: its rows follow the installation's change stream (GET /v1/changes), filtered
  // to the range of names the page shows. A change of a row shown fetches that row alone (and the
  // counts); a workflow that joins or leaves the page (a load, a status filter no longer met)
  // re-fetches the page's fragment once, as does a reconnection (changes meanwhile were not
  // sent) or a "reset". Without the stream (an error answer, no EventSource), the timer polls.
  if (body.dataset.page === 'dashboard' && body.dataset.fragment && window.EventSource) {
    const params = new URLSearchParams(window.location.search);
    const shownStatus = params.get('status') || '';
    const pending = new Set();
    let es = null;
    let esURL = '';
    let rowsTimer = 0;
    const streamURL = () => {
      const p = new URLSearchParams();
      const q = (params.get('q') || '').trim();
      if (q) p.set('prefix', q);
      if (params.get('cursor')) p.set('after', params.get('cursor'));
      const rows = document.querySelectorAll('#dash tr.wf');
      if (document.querySelector('#dash a[rel=next]') && rows.length) p.set('until', rows[rows.length - 1].dataset.workflow);
      const qs = p.toString();
      return '/v1/changes' + (qs ? '?' + qs : '');
    };
    const swapRow = (cur, fresh) => {
      if (cur.outerHTML === fresh.outerHTML) return;
      const open = [...cur.querySelectorAll('details[open]')].map((d) => d.id).filter(Boolean);
      const active = document.activeElement;
      const focusId = active && cur.contains(active) ? active.id : '';
      cur.replaceWith(document.importNode(fresh, true));
      open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
      if (focusId) { const el = document.getElementById(focusId); if (el) { el.focus(); } else { refocus = focusId; } }
    };
    const fetchRows = async () => {
      const names = [...pending];
      pending.clear();
      if (!names.length) return;
      const p = new URLSearchParams();
      ['q', 'status'].forEach((k) => { if (params.get(k)) p.set(k, params.get(k)); });
      names.forEach((n) => p.append('wf', n));
      try {
        const res = await fetch('/ui/fragment/dashboard/rows?' + p, { headers: { Accept: 'text/html' }, cache: 'no-store', credentials: 'same-origin' });
        if (!res.ok || res.redirected) throw new Error('HTTP ' + res.status);
        const tpl = document.createElement('template');
        tpl.innerHTML = await res.text();
        const counts = tpl.content.querySelector('nav.counts');
        if (!counts) throw new Error('not the dashboard');
        for (const n of names) {
          const fresh = tpl.content.getElementById('wf-' + n);
          const cur = document.getElementById('wf-' + n);
          if (!fresh || !cur) throw new Error('row ' + n + ' left the page');
          swapRow(cur, fresh);
        }
        const curCounts = document.querySelector('#dash nav.counts');
        if (curCounts && curCounts.innerHTML !== counts.innerHTML) curCounts.innerHTML = counts.innerHTML;
        // The page no longer is the fragment last fetched whole: the next one is applied, not a 304.
        etag = '';
        lastHTML.delete('dash');
        relTimes();
        applyTZ();
        lastOK = new Date();
        setLive('Updated ' + hhmmss(lastOK), false);
      } catch (err) {
        refresh(); // the whole fragment, which also says what is wrong when batchy is
      }
    };
    const changed = (name, status) => {
      const row = document.getElementById('wf-' + name);
      const shown = !!status && (!shownStatus || shownStatus === status);
      if (row && shown) {
        pending.add(name);
        clearTimeout(rowsTimer);
        rowsTimer = setTimeout(fetchRows, 30); // the rows of one message burst in one request
      } else if (row || shown) {
        refresh(); // a row joins or leaves the page
      }
    };
    const onData = (f) => (m) => { try { f(JSON.parse(m.data)); } catch (err) { /* not JSON */ } };
    // follow (re)opens the stream when the page's range of names changed (after a refresh).
    const follow = () => {
      const url = streamURL();
      if (es && url === esURL) return; // the same, or closed for good (an error answer): the timer polls
      if (es) es.close();
      esURL = url;
      let opened = false;
      es = new EventSource(url);
      es.addEventListener('change', onData((s) => changed(s.workflow, s.status)));
      es.addEventListener('removed', onData((s) => changed(s.workflow, '')));
      es.addEventListener('reset', () => refresh());
      es.onopen = () => {
        pushed = true;
        body.dataset.changes = 'open';
        if (opened) refresh(); // reconnected: what changed meanwhile was not sent
        opened = true;
      };
      es.onerror = () => {
        pushed = false; // the timer polls until the stream is back, or for good if it closed
        body.dataset.changes = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
      };
    };
    afterRefresh = follow;
    follow();
    window.addEventListener('pagehide', () => { if (es) es.close(); });
  }

  // ---- A page whose live parts change with a workflow's events (a run in progress) refreshes
  // when one arrives, and when the stream (re)opens (it sends only the events after that); its
  // timer is then a safety net.
  if (body.dataset.follow && body.dataset.fragment && window.EventSource) {
    const es = new EventSource(body.dataset.follow);
    let soon = 0;
    const onEvent = () => { clearTimeout(soon); soon = setTimeout(refresh, 250); };
    (body.dataset.followTypes || '').split(' ').filter(Boolean).forEach((t) => es.addEventListener(t, onEvent));
    es.addEventListener('message', onEvent);
    let opened = false;
    es.onopen = () => {
      problem(streamDown, false);
      if (opened) refresh();
      opened = true;
    };
    es.onerror = () => { if (es.readyState !== EventSource.CLOSED) problem(streamDown, true); };
    window.addEventListener('pagehide', () => es.close());
  }

  // ---- A dashboard row's action menu holds no buttons until it opens (they were half a row's
  // HTML, sent on every view): each opening fetches them from its .menu-items[data-src], in the
  // workflow's state of that moment, and each closing drops them, so no menu shows buttons older
  // than its opening. A row replaced by a live update while its menu is open is reopened above
  // (open = true), which fetches the new state's buttons too. `toggle` does not bubble: one
  // listener in the capture phase sees every menu's, rows swapped in later included. The buttons'
  // clicks are handled by the document's click listener below.
  // The number of each menu's latest opening or closing: an answer to an earlier one is dropped.
  // Kept off the DOM, so that a row whose menu was opened once still equals its fresh HTML.
  let menuSeq = 0;
  const menuLatest = new WeakMap();
  function menuNote(text, isError) {
    const p = document.createElement('p');
    p.className = 'menu-note' + (isError ? ' error' : '');
    p.setAttribute('role', isError ? 'alert' : 'status');
    p.textContent = text;
    return p;
  }
  async function loadMenu(menu) {
    const items = menu.querySelector('.menu-items[data-src]');
    if (!items) return;
    const seq = ++menuSeq;
    menuLatest.set(items, seq);
    if (!menu.open) { items.replaceChildren(); return; }
    items.replaceChildren(menuNote('Loading…', false));
    let buttons;
    try {
      let res;
      try {
        res = await fetch(items.dataset.src, { headers: { Accept: 'text/html' }, cache: 'no-store', credentials: 'same-origin' });
      } catch (err) {
        throw new Error('batchy is not answering');
      }
      if (!res.ok) throw new Error(await reason(res));
      const tpl = document.createElement('template');
      tpl.innerHTML = await res.text();
      // Not the buttons: the login page, once the session has expired.
      if (res.redirected || !tpl.content.querySelector('button[data-api]')) throw new Error('your session has expired: reload the page to log in again');
      buttons = tpl.content;
    } catch (err) {
      if (menuLatest.get(items) === seq) items.replaceChildren(menuNote('The actions could not be loaded: ' + err.message + '. Close and open the menu to try again.', true));
      return;
    }
    if (menuLatest.get(items) !== seq) return;
    items.replaceChildren(buttons);
    const el = refocus && document.getElementById(refocus);
    if (el && items.contains(el)) {
      refocus = '';
      const at = document.activeElement;
      if (!at || at === document.body || at.contains(menu)) el.focus();
    }
  }
  document.addEventListener('toggle', (e) => {
    if (e.target instanceof HTMLDetailsElement && e.target.matches('details.menu')) loadMenu(e.target);
  }, true);

  // ---- Actions: POST to the v1 API, say what happened, refresh.
  async function act(el, url, payload, question, done, controls) {
    if (question && !window.confirm(question)) return;
    // Disabling the focused control sends the focus to the page's top: give it back afterwards.
    const focused = document.activeElement;
    controls.forEach((c) => { c.disabled = true; });
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = csrf.content;
    try {
      const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(payload), credentials: 'same-origin' });
      let data = null;
      try { data = await res.json(); } catch (e) { /* not JSON */ }
      if (!res.ok) {
        const msg = data && data.error && data.error.message ? data.error.message : 'HTTP ' + res.status;
        say(msg, true);
      } else {
        let text = done || 'done';
        if (data && typeof data.id === 'string') text += ' (run ' + data.id + ')';
        say(text, false);
        const menu = el.closest('details.menu');
        if (menu) { menu.open = false; const s = menu.querySelector('summary'); if (s) s.focus(); }
        // A page without live parts (a workflow not loaded yet) shows the change by loading again.
        if (!body.dataset.fragment) { setTimeout(() => window.location.reload(), 800); return; }
      }
    } catch (err) {
      say('the request did not reach batchy: ' + err.message, true);
    } finally {
      controls.forEach((c) => { c.disabled = false; });
      if (focused && focused.isConnected && document.activeElement === document.body) focused.focus();
    }
    await refresh();
  }

  document.addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-api]');
    if (!btn) return;
    e.preventDefault();
    let payload = {};
    try { if (btn.dataset.body) payload = JSON.parse(btn.dataset.body); } catch (err) { payload = {}; }
    act(btn, btn.dataset.api, payload, btn.dataset.confirm, btn.dataset.done, [btn]);
  });

  // A form's fields become the JSON body; a field with data-path fills {name} in the URL instead.
  // Checkboxes are booleans, empty fields are left out.
  document.addEventListener('submit', (e) => {
    const form = e.target.closest('form[data-api]');
    if (!form) return;
    e.preventDefault();
    let url = form.dataset.api;
    const payload = {};
    const said = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === 'checkbox') {
        said[el.name] = el.checked ? 'yes' : 'no';
        if (el.checked) payload[el.name] = true;
        continue;
      }
      const v = el.value.trim();
      said[el.name] = v || 'now';
      if (el.dataset.path) { url = url.replace('{' + el.dataset.path + '}', encodeURIComponent(v)); continue; }
      if (v !== '') payload[el.name] = v;
    }
    const question = (form.dataset.confirm || '').replace(/\{(\w+)\}/g, (m, k) => (k in said ? said[k] : m));
    act(form, url, payload, question, form.dataset.done, [...form.querySelectorAll('button')]);
  });

  // ---- Live tail of the workflow's events.
  const tail = document.getElementById('tail');
  function fmtTime(s) {
    const d = new Date(s);
    return isNaN(d) ? s : d.toISOString().slice(0, 19).replace('T', ' ') + 'Z';
  }
  function span(cls, text) {
    const el = document.createElement('span');
    el.className = cls;
    el.textContent = text;
    return el;
  }
  // Lines are batched: at most one DOM update per animation frame, however many lines arrive
  // (at 100 lines/s a per-line append, trim and scroll kept the main thread busy and clicks slow).
  const tailMax = 500;
  let queued = [];
  let flushing = 0;
  const seen = new Set();
  if (tail) tail.querySelectorAll('li[data-id]').forEach((li) => seen.add(li.dataset.id));
  function append(e) {
    if (e.id) {
      if (seen.has(e.id)) return;
      seen.add(e.id);
    }
    queued.push(e);
    if (!flushing) flushing = requestAnimationFrame(flush);
  }
  function flush() {
    flushing = 0;
    const batch = queued.slice(-tailMax);
    queued = [];
    const atBottom = tail.scrollTop + tail.clientHeight >= tail.scrollHeight - 8;
    const frag = document.createDocumentFragment();
    batch.forEach((e) => frag.append(line(e, batch.length <= 5)));
    tail.append(frag);
    let extra = tail.children.length - tailMax;
    while (extra-- > 0) {
      const old = tail.firstElementChild;
      seen.delete(old.dataset.id);
      old.remove();
    }
    if (local) applyTZ();
    if (atBottom) tail.scrollTop = tail.scrollHeight;
    const empty = document.getElementById('tail-empty');
    if (empty) empty.remove();
  }
  function line(e, flash) {
    const li = document.createElement('li');
    li.className = 'ev' + (flash ? ' fresh' : '') + ' lvl-' + String(e.level || 'info').replace(/[^a-z]/g, '');
    li.dataset.id = e.id || '';
    const t = document.createElement('time');
    t.dateTime = e.time || '';
    t.textContent = fmtTime(e.time || '');
    li.append(t, ' ', span('lvl', e.level || 'info'), ' ', span('type', e.type || ''));
    if (e.job) li.append(' ', span('job', e.job));
    if (e.run_id) li.append(' ', span('run', 'run ' + e.run_id));
    li.append(' ', span('msg', e.message || ''));
    return li;
  }
  if (tail && tail.dataset.stream && window.EventSource) {
    tail.scrollTop = tail.scrollHeight;
    const state = document.getElementById('tail-state');
    const es = new EventSource(tail.dataset.stream);
    let soon = 0;
    const onEvent = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      append(e);
      if (e.type !== 'log') { clearTimeout(soon); soon = setTimeout(refresh, 250); }
    };
    (tail.dataset.types || '').split(' ').filter(Boolean).forEach((t) => es.addEventListener(t, onEvent));
    es.addEventListener('message', onEvent);
    es.onopen = () => {
      state.textContent = 'Live: new events appear at the bottom as they happen.';
      state.classList.remove('problem');
      problem(streamDown, false);
    };
    es.onerror = () => {
      problem(streamDown, true);
      refresh();
      state.textContent = es.readyState === EventSource.CLOSED
        ? 'The live stream stopped; reload the page to resume it.'
        : 'Reconnecting to the live stream…';
      state.classList.add('problem');
    };
    window.addEventListener('pagehide', () => es.close());
  }
})();
