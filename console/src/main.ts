// The control room's web console: MQTT 5 over WebSockets to the site's or the centre's
// broker; lanes from their retained status, alerts from their retained state (so a console
// opened later sees every open alert), images checked against the alert's SHA-256, acks
// with a disposition, shelves shared through a retained message, a flood banner.
import mqtt, { type MqttClient } from 'mqtt';
import './style.css';
import {
  type Alert,
  type CloudEvent,
  type Lane,
  type Shelf,
  DISPOSITIONS,
  ackPending,
  ageWords,
  alarmsInWindow,
  dispositionWords,
  findingWords,
  floodNext,
  hex,
  isShelved,
  laneKey,
  parseShelves,
  parseSource,
  priorityOf,
  sortAlerts,
} from './model';

const MAX_PAYLOAD = 16 * 1024 * 1024; // an image bigger than this is not shown
const MAX_ALERTS = 5000; // the oldest acked alerts go first beyond this
const IMAGE_CACHE = 20;

interface ImageEntry {
  bytes: Uint8Array;
  url: string;
  sha256: string | null; // null when WebCrypto is not available (not a secure context)
}

const alerts = new Map<string, Alert>();
const stateTopics = new Map<string, string>(); // state topic → alert id
const lanes = new Map<string, Lane>();
const shelves = new Map<string, Shelf[]>();
const images = new Map<string, ImageEntry>(); // image topic → bytes
const imageTopicsWanted = new Set<string>();
let client: MqttClient | null = null;
let username = '';
let selected: string | null = null;
let flood = false;
let connected = false;
let everConnected = false;
let renderQueued = false;

// ---------------------------------------------------------------- DOM helpers

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) if (c !== null) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}

function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e;
}

function typeWords(type: string): string {
  if (type === 'org.lanegate.xray.hit') return 'X-ray hit';
  if (type === 'org.lanegate.trace.hit') return 'Trace hit';
  if (type === 'org.lanegate.test') return 'Test alert';
  return type;
}

function subjectOf(e: CloudEvent): string {
  return e.subject || (e.data && e.data.conveyance && (e.data.conveyance.ids || [])[0]) || '—';
}

// ---------------------------------------------------------------- MQTT

function prefixes(): string[] {
  const text = (document.getElementById('login-lanes') as HTMLInputElement).value.trim();
  return (text || 'lanegate/v1/+/+')
    .split(',')
    .map((s) => s.trim().replace(/\/+$/, ''))
    .filter((s) => s.length > 0);
}

function connect(url: string, user: string, password: string): void {
  username = user;
  const c = mqtt.connect(url, {
    protocolVersion: 5,
    username: user,
    password,
    clientId: `lanegate-console-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 10_000,
  });
  client = c;
  $('login-error').textContent = '';
  c.on('connect', () => {
    connected = true;
    everConnected = true;
    $('login').hidden = true;
    $('app').hidden = false;
    const topics: string[] = [];
    for (const p of prefixes())
      topics.push(`${p}/status`, `${p}/devices/+/status`, `${p}/alerts`, `${p}/alerts/+/state`, `${p}/shelves`);
    c.subscribe(topics, { qos: 1 });
    for (const t of imageTopicsWanted) c.subscribe(t, { qos: 1 });
    queueRender();
  });
  c.on('message', (topic, payload) => onMessage(topic, payload));
  c.on('close', () => {
    connected = false;
    queueRender();
  });
  c.on('offline', () => {
    connected = false;
    queueRender();
  });
  c.on('error', (err: any) => {
    // A refused login: back to the form (reconnecting would only be refused again).
    const code = err && (err.code as number | undefined);
    if (!everConnected || code === 134 || code === 135 || code === 4 || code === 5) {
      $('login-error').textContent = `Cannot connect: ${err && err.message ? err.message : String(err)}`;
      c.end(true);
      client = null;
      $('login').hidden = false;
      $('app').hidden = true;
    }
  });
}

function topicParts(topic: string): { site: string; lane: string; rest: string[] } | null {
  const p = topic.split('/');
  if (p.length < 5 || p[0] !== 'lanegate' || p[1] !== 'v1') return null;
  return { site: p[2], lane: p[3], rest: p.slice(4) };
}

function parseJson(payload: Uint8Array): any {
  if (payload.length === 0 || payload.length > MAX_PAYLOAD) return null;
  try {
    return JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
}

function laneOf(site: string, lane: string): Lane {
  const key = laneKey(site, lane);
  let l = lanes.get(key);
  if (!l) {
    l = { site, lane, state: 'unknown', devices: {} };
    lanes.set(key, l);
  }
  return l;
}

function isEvent(e: any): e is CloudEvent {
  return (
    e && typeof e === 'object' && typeof e.id === 'string' && typeof e.type === 'string' &&
    typeof e.source === 'string' && typeof e.time === 'string' && e.data && typeof e.data === 'object'
  );
}

function upsertAlert(e: CloudEvent): Alert | null {
  let a = alerts.get(e.id);
  if (a) return a;
  const src = parseSource(e.source);
  if (!src) return null;
  a = {
    event: e, site: src.site, lane: src.lane, device: src.device, state: 'open',
    by: null, disposition: null, ackTime: null, notes: [], ackSentAt: 0,
  };
  alerts.set(e.id, a);
  laneOf(src.site, src.lane);
  if (alerts.size > MAX_ALERTS) {
    const oldest = [...alerts.values()]
      .filter((x) => x.state !== 'open')
      .sort((x, y) => Date.parse(x.event.time) - Date.parse(y.event.time))[0];
    if (oldest) alerts.delete(oldest.event.id);
  }
  return a;
}

function onMessage(topic: string, payload: Uint8Array): void {
  if (imageTopicsWanted.has(topic)) {
    onImage(topic, payload);
    return;
  }
  const t = topicParts(topic);
  if (!t) return;
  const { site, lane, rest } = t;
  if (rest.length === 1 && rest[0] === 'status') {
    const j = parseJson(payload);
    if (!j) return;
    const l = laneOf(site, lane);
    l.state = j.state === 'online' ? 'online' : j.state === 'offline' ? 'offline' : 'unknown';
    l.reason = typeof j.reason === 'string' ? j.reason : undefined;
    l.time = typeof j.time === 'string' ? j.time : undefined;
    if (j.devices && typeof j.devices === 'object')
      for (const [name, h] of Object.entries<any>(j.devices))
        if (h && typeof h.state === 'string') l.devices[name] = { state: h.state, detail: h.detail };
  } else if (rest.length === 3 && rest[0] === 'devices' && rest[2] === 'status') {
    const l = laneOf(site, lane);
    const j = parseJson(payload);
    if (!j) delete l.devices[rest[1]];
    else if (typeof j.state === 'string') l.devices[rest[1]] = { state: j.state, detail: j.detail };
  } else if (rest.length === 1 && rest[0] === 'alerts') {
    const e = parseJson(payload);
    if (isEvent(e)) upsertAlert(e);
  } else if (rest.length === 3 && rest[0] === 'alerts' && rest[2] === 'state') {
    const j = parseJson(payload);
    if (!j) {
      // An empty retained message: the alert closed and left the lane's outbox.
      const id = stateTopics.get(topic);
      if (id) {
        alerts.delete(id);
        stateTopics.delete(topic);
        if (selected === id) selected = null;
      }
    } else if (isEvent(j.alert)) {
      const a = upsertAlert(j.alert);
      if (a) {
        stateTopics.set(topic, a.event.id);
        if (j.state === 'acked' || j.state === 'closed') {
          a.state = j.state;
          a.by = typeof j.by === 'string' ? j.by : null;
          a.disposition = typeof j.disposition === 'string' ? j.disposition : null;
          a.ackTime = typeof j.time === 'string' ? j.time : null;
          a.notes = Array.isArray(j.notes) ? j.notes.slice(0, 20) : [];
          a.ackSentAt = 0;
        }
      }
    }
  } else if (rest.length === 1 && rest[0] === 'shelves') {
    shelves.set(laneKey(site, lane), parseShelves(new TextDecoder().decode(payload)));
  }
  queueRender();
}

function wantImage(topic: string): void {
  if (imageTopicsWanted.has(topic)) return;
  imageTopicsWanted.add(topic);
  if (client && connected) client.subscribe(topic, { qos: 1 });
}

async function onImage(topic: string, payload: Uint8Array): Promise<void> {
  if (payload.length === 0 || payload.length > MAX_PAYLOAD) {
    images.delete(topic);
    queueRender();
    return;
  }
  const bytes = new Uint8Array(payload); // a copy the Blob and the digest can keep
  let sha: string | null = null;
  if (window.isSecureContext && crypto.subtle) sha = hex(await crypto.subtle.digest('SHA-256', bytes));
  const old = images.get(topic);
  if (old) URL.revokeObjectURL(old.url);
  images.set(topic, { bytes, url: URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' })), sha256: sha });
  while (images.size > IMAGE_CACHE) {
    const first = images.keys().next().value as string;
    const e = images.get(first);
    if (e) URL.revokeObjectURL(e.url);
    images.delete(first);
    imageTopicsWanted.delete(first);
    if (client) client.unsubscribe(first);
  }
  queueRender();
}

function publishAck(a: Alert, disposition: string): void {
  if (!client || !connected) return;
  const ack = {
    id: a.event.id,
    ack_token: a.event.data.ack_token,
    by: username,
    disposition,
    time: new Date().toISOString(),
  };
  client.publish(`lanegate/v1/${a.site}/${a.lane}/acks`, JSON.stringify(ack), {
    qos: 1,
    properties: { contentType: 'application/json' },
  });
  a.ackSentAt = Date.now();
  queueRender();
}

function publishShelves(site: string, lane: string, list: Shelf[]): void {
  if (!client || !connected) return;
  const now = Date.now();
  const live = list.filter((s) => Date.parse(s.until) > now);
  client.publish(
    `lanegate/v1/${site}/${lane}/shelves`,
    JSON.stringify({ shelves: live, time: new Date().toISOString(), by: username }),
    { qos: 1, retain: true, properties: { contentType: 'application/json' } },
  );
}

// ---------------------------------------------------------------- rendering

function queueRender(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render(): void {
  const now = Date.now();
  const conn = $('conn');
  conn.textContent = connected ? `connected as ${username}` : 'CONNECTION LOST — reconnecting…';
  conn.className = connected ? 'ok' : 'lost';
  document.body.classList.toggle('disconnected', !connected);
  const all = [...alerts.values()];
  const count = alarmsInWindow(all, shelves, now);
  flood = floodNext(flood, count);
  const banner = $('flood-banner');
  banner.hidden = !flood;
  banner.textContent = flood ? `ALARM FLOOD: ${count} alarms in the last 10 minutes — work by priority` : '';
  renderLanes(now);
  renderList(all, now);
  renderAlert(now);
}

let shownLanes = '';

function renderLanes(now: number): void {
  const strip = $('lanes');
  const sorted = [...lanes.values()].sort((x, y) => laneKey(x.site, x.lane).localeCompare(laneKey(y.site, y.lane)));
  // Rebuilt only when what it shows changes: an operator choosing a shelf keeps the choice.
  const unackedBy = (l: Lane) => [...alerts.values()].filter((a) => a.site === l.site && a.lane === l.lane && a.state === 'open').length;
  const live = (l: Lane) => (shelves.get(laneKey(l.site, l.lane)) || []).filter((s) => Date.parse(s.until) > now);
  const key = JSON.stringify([connected, sorted.map((l) => [l, unackedBy(l), live(l)])]);
  if (key === shownLanes) return;
  shownLanes = key;
  strip.replaceChildren();
  if (sorted.length === 0) strip.append(el('div', { class: 'empty' }, 'No lanes yet: waiting for their retained status'));
  for (const l of sorted) {
    const lk = laneKey(l.site, l.lane);
    const unacked = unackedBy(l);
    const offline = l.state !== 'online' || !connected;
    const tile = el('div', { class: `lane ${offline ? 'offline' : 'online'}`, 'data-lane': lk });
    tile.append(
      el('div', { class: 'lane-name' }, lk),
      el('div', { class: 'lane-state' },
        !connected ? 'UNKNOWN (connection lost)' : l.state === 'online' ? 'online' : `LANE OFFLINE${l.reason ? ': ' + l.reason : ''}`),
      el('div', { class: 'lane-unacked' }, `${unacked} unacknowledged`),
    );
    const devs = el('div', { class: 'devices' });
    for (const [name, h] of Object.entries(l.devices))
      devs.append(el('span', { class: `dev dev-${h.state}`, title: h.detail || h.state }, `${name}: ${h.state.replace(/_/g, ' ')}`));
    tile.append(devs);
    const active = live(l);
    for (const s of active) {
      const un = el('button', { class: 'unshelve' }, 'unshelve');
      un.addEventListener('click', () => publishShelves(l.site, l.lane, active.filter((x) => x !== s)));
      tile.append(el('div', { class: 'shelf', 'data-shelf': s.device || '*' },
        `SHELVED ${s.device || 'whole lane'} until ${new Date(s.until).toLocaleTimeString()}${s.by ? ' by ' + s.by : ''} `, un));
    }
    const what = el('select', { class: 'shelve-what' }, el('option', { value: '' }, 'whole lane'));
    for (const name of Object.keys(l.devices)) what.append(el('option', { value: name }, name));
    const dur = el('select', { class: 'shelve-for' });
    for (const [label, s] of [['5 min', 300], ['15 min', 900], ['1 h', 3600], ['8 h', 28800]] as const)
      dur.append(el('option', { value: String(s) }, label));
    const go = el('button', { class: 'shelve' }, 'Shelve');
    go.addEventListener('click', () => {
      const until = new Date(Date.now() + Number(dur.value) * 1000).toISOString();
      publishShelves(l.site, l.lane, [...active, { device: what.value || null, until, by: username }]);
    });
    tile.append(el('div', { class: 'shelve-row' }, what, dur, go));
    strip.append(tile);
  }
}

const rows = new Map<string, HTMLTableRowElement>();

function renderList(all: Alert[], now: number): void {
  const body = $('alarm-rows');
  const order = sortAlerts(all, shelves, now);
  const seen = new Set<string>();
  // Rows are kept and reordered, never rebuilt: the list does not jump or scroll by itself.
  for (const a of order) {
    const id = a.event.id;
    seen.add(id);
    let tr = rows.get(id);
    if (!tr) {
      tr = el('tr', { 'data-id': id });
      tr.addEventListener('click', () => {
        selected = id;
        queueRender();
      });
      rows.set(id, tr);
    }
    const shelved = isShelved(a, shelves, now);
    const lane = lanes.get(laneKey(a.site, a.lane));
    const laneDown = !lane || lane.state !== 'online';
    const status = shelved ? 'SHELVED' : a.state === 'open' ? (ackPending(a, now) ? 'ACK SENT' : 'UNACK') : 'ACKED';
    const prio = priorityOf(a.event);
    tr.className = [
      `prio-${prio}`,
      a.state === 'open' && !shelved ? 'unacked flash' : '',
      a.state !== 'open' ? 'acked' : '',
      shelved ? 'shelved' : '',
      selected === id ? 'selected' : '',
    ].filter(Boolean).join(' ');
    tr.dataset.state = shelved ? 'shelved' : a.state;
    tr.replaceChildren(
      el('td', { class: 'prio' }, prio === 'high' ? '▲ HIGH' : prio === 'medium' ? '■ MED' : '● LOW'),
      el('td', {}, status),
      el('td', {}, typeWords(a.event.type)),
      el('td', {}, `${a.site}/${a.lane}${laneDown ? ' (offline)' : ''}`),
      el('td', {}, subjectOf(a.event)),
      el('td', { title: a.event.time }, ageWords(now - Date.parse(a.event.time))),
    );
  }
  for (const [id, tr] of rows)
    if (!seen.has(id)) {
      tr.remove();
      rows.delete(id);
    }
  order.forEach((a, i) => {
    const tr = rows.get(a.event.id)!;
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  $('alarm-count').textContent = `${order.filter((a) => a.state === 'open').length} unacknowledged, ${order.length} listed`;
}

let shownAlert = '';
const chosen = new Map<string, string>(); // alert id → disposition picked, not yet sent

function renderAlert(now: number): void {
  const view = $('alert-view');
  const a = selected ? alerts.get(selected) : undefined;
  if (!a) {
    if (shownAlert !== '') view.replaceChildren(el('p', { class: 'empty' }, 'Select an alarm to see its image and reasons.'));
    shownAlert = '';
    view.removeAttribute('data-id');
    return;
  }
  const e = a.event;
  const d = e.data;
  const img = d.image && typeof d.image.topic === 'string' ? d.image : null;
  if (img) wantImage(img.topic);
  const entry = img ? images.get(img.topic) : undefined;
  // Rebuild only what changed: a new selection, state or image (keeps the operator's choice).
  const key = `${e.id}|${a.state}|${ackPending(a, now)}|${a.notes.length}|${entry ? entry.url : ''}|${isShelved(a, shelves, now)}|${connected}`;
  if (key === shownAlert) return;
  shownAlert = key;
  view.dataset.id = e.id;
  view.dataset.state = a.state;
  const parts: (Node | string)[] = [];
  parts.push(
    el('h2', {}, `${typeWords(e.type)} — ${a.site}/${a.lane}, ${a.device}`),
    el('div', { class: 'meta' },
      `${new Date(e.time).toLocaleString()} · ${subjectOf(e)} · priority ${priorityOf(e)}${d.verdict ? ' · verdict ' + d.verdict : ''}`),
  );
  if (img) {
    const fig = el('figure', { id: 'alert-figure' });
    if (entry) {
      const verified = entry.sha256 === null ? 'not-verified' : entry.sha256 === img.sha256 && entry.bytes.length === img.bytes ? 'verified' : 'mismatch';
      const image = el('img', {
        id: 'alert-image',
        src: entry.url,
        alt: 'annotated X-ray overlay',
        'data-sha256': entry.sha256 || '',
        'data-bytes': String(entry.bytes.length),
        'data-verified': verified,
      });
      fig.append(image, el('figcaption', { class: `check ${verified}` },
        verified === 'verified' ? `SHA-256 verified (${entry.bytes.length} bytes)`
          : verified === 'mismatch' ? 'IMAGE DOES NOT MATCH THE ALERT (SHA-256 or size differ)'
          : 'not verified (this page is not a secure context: use https, or localhost)'));
    } else {
      fig.append(el('div', { class: 'loading' }, 'image loading… (retained until the alert closes)'));
    }
    parts.push(fig);
  }
  const facts = el('div', { class: 'facts' });
  if (Array.isArray(d.findings) && d.findings.length > 0) {
    const ul = el('ul', { class: 'findings' });
    for (const f of d.findings.slice(0, 50))
      ul.append(el('li', {},
        el('b', {}, `${findingWords(String(f.kind))}`),
        `: ${f.material || 'unknown'} material${typeof f.mass_kg_est === 'number' && f.mass_kg_est > 0 ? `, about ${f.mass_kg_est} kg` : ''}, score ${typeof f.score === 'number' ? f.score.toFixed(2) : '?'}. `,
        String(f.reason || '')));
    facts.append(el('h3', {}, 'Findings'), ul);
  }
  if (Array.isArray(d.substances) && d.substances.length > 0) {
    const ul = el('ul', { class: 'substances' });
    const ours = d.our_verdict && Array.isArray(d.our_verdict.substances) ? d.our_verdict.substances : [];
    for (const s of d.substances.slice(0, 20)) {
      const m = ours.find((o: any) => o && o.name === s);
      ul.append(el('li', {}, el('b', {}, String(s)), m ? ` (K0 ${m.k0}, amplitude ${m.amplitude}, SNR ${m.snr})` : ''));
    }
    facts.append(el('h3', {}, 'Substances'), ul,
      el('p', {}, `Detector alarm: ${d.device_verdict && d.device_verdict.alarm ? 'yes' : 'no'}; lanegate's own analysis: ${d.our_verdict ? d.our_verdict.verdict : '—'}${d.agree === false ? ' (they disagree)' : ''}.`));
  }
  if (d.conveyance && typeof d.conveyance === 'object') {
    const c = d.conveyance;
    const bits: string[] = [String(c.kind || 'conveyance')];
    if (Array.isArray(c.ids) && c.ids.length) bits.push(c.ids.join(', '));
    if (c.plate) bits.push(`plate ${c.plate}`);
    if (c.awb) bits.push(`air waybill ${c.awb}`);
    if (c.declared) {
      if (c.declared.empty) bits.push('declared empty');
      if (c.declared.description) bits.push(`declared "${c.declared.description}"`);
      if (typeof c.declared.gross_kg === 'number') bits.push(`${c.declared.gross_kg} kg gross`);
    }
    if (Array.isArray(c.id_checks))
      for (const k of c.id_checks) if (k && k.valid === false) bits.push(`${k.id} fails its ${k.scheme} check digit`);
    facts.append(el('h3', {}, 'Conveyance'), el('p', { class: 'conveyance' }, bits.join(' · ')));
  }
  if (Array.isArray(d.correlated_alerts) && d.correlated_alerts.length)
    facts.append(el('p', { class: 'correlated' }, `Already flagged by: ${d.correlated_alerts.join(', ')}`));
  if (d.message) facts.append(el('p', {}, String(d.message)));
  parts.push(facts);

  const ackBox = el('div', { class: 'ack-box' });
  if (a.state === 'open') {
    const sel = el('select', { id: 'ack-disposition' });
    for (const x of DISPOSITIONS) sel.append(el('option', { value: x }, dispositionWords(x)));
    // The operator's choice survives a rebuild of the view (an image or a state arriving).
    sel.value = chosen.get(e.id) || DISPOSITIONS[0];
    sel.addEventListener('change', () => chosen.set(e.id, sel.value));
    const btn = el('button', { id: 'ack-button' }, 'Ack');
    if (!connected || ackPending(a, now)) btn.setAttribute('disabled', '');
    btn.addEventListener('click', () => publishAck(a, sel.value));
    ackBox.append(el('span', { class: 'unack-label' }, ackPending(a, now) ? 'Ack sent; waiting for the lane…' : 'Unacknowledged'), sel, btn);
  } else {
    ackBox.append(el('span', { class: 'acked-label', id: 'acked-by' },
      `Acknowledged by ${a.by || 'unknown'} — ${dispositionWords(a.disposition)}${a.ackTime ? ' at ' + new Date(a.ackTime).toLocaleTimeString() : ''}`));
    if (a.notes.length) {
      const ul = el('ul', { class: 'notes' });
      for (const n of a.notes) ul.append(el('li', {}, `later: ${n.by || 'unknown'} — ${dispositionWords(n.disposition)}`));
      ackBox.append(ul);
    }
  }
  parts.push(ackBox);
  view.replaceChildren(...parts);
}

// ---------------------------------------------------------------- start

function start(): void {
  const params = new URLSearchParams(location.search);
  const defUrl = location.host ? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt` : 'ws://localhost:9001/mqtt';
  const url = $('login-url') as HTMLInputElement;
  const user = $('login-user') as HTMLInputElement;
  const lanesInput = $('login-lanes') as HTMLInputElement;
  url.value = params.get('broker') || localStorage.getItem('lanegate.broker') || defUrl;
  user.value = params.get('user') || localStorage.getItem('lanegate.user') || '';
  lanesInput.value = params.get('lanes') || localStorage.getItem('lanegate.lanes') || 'lanegate/v1/+/+';
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    localStorage.setItem('lanegate.broker', url.value);
    localStorage.setItem('lanegate.user', user.value);
    localStorage.setItem('lanegate.lanes', lanesInput.value);
    connect(url.value, user.value, ($('login-pass') as HTMLInputElement).value);
  });
  setInterval(() => queueRender(), 1000);
}

start();
