// The console's state, free of the DOM and of MQTT: alerts by id with their retained
// state, lanes from their retained status, shelves, the flood rule and the list order.
// Contract 5 v1.1 (DESIGN.md); alarm conventions from ISA-18.2 (notes/control-room.md).

export type Priority = 'high' | 'medium' | 'low';

export const DISPOSITIONS = ['cleared', 'searched-nothing-found', 'seized', 'referred'] as const;
export type Disposition = (typeof DISPOSITIONS)[number];

/** A CloudEvent as published on …/alerts (only what the console reads). */
export interface CloudEvent {
  id: string;
  type: string;
  source: string;
  time: string;
  subject?: string;
  seq?: number;
  data: Record<string, any>;
}

export interface AckNote {
  time: string;
  by: string | null;
  disposition: string | null;
}

/** One alert as the console knows it. */
export interface Alert {
  event: CloudEvent;
  site: string;
  lane: string;
  device: string;
  state: 'open' | 'acked' | 'closed';
  by: string | null;
  disposition: string | null;
  ackTime: string | null;
  notes: AckNote[];
  ackSentAt: number; // when this console sent an ack the lane has not confirmed yet (0: none)
}

export interface Lane {
  site: string;
  lane: string;
  state: 'online' | 'offline' | 'unknown';
  reason?: string;
  devices: Record<string, { state: string; detail?: string }>;
  time?: string;
}

/** One shelf: a whole lane (device null) or one device, until an expiry. */
export interface Shelf {
  device: string | null;
  until: string;
  by: string | null;
  reason?: string;
}

/** An ack the lane has not confirmed within this long may be sent again (it was refused or lost). */
export const ACK_WAIT_MS = 30_000;

export function ackPending(a: Alert, now: number): boolean {
  return a.ackSentAt > 0 && now - a.ackSentAt < ACK_WAIT_MS;
}

export const FLOOD_WINDOW_MS = 10 * 60 * 1000;
export const FLOOD_START = 10; // more than this many alarms in the window
export const FLOOD_END = 5; // the flood ends below this many

export function laneKey(site: string, lane: string): string {
  return `${site}/${lane}`;
}

/** lanegate://{site}/{lane}/{device} → its parts, or null. */
export function parseSource(source: string): { site: string; lane: string; device: string } | null {
  const m = /^lanegate:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(source);
  return m ? { site: m[1], lane: m[2], device: m[3] } : null;
}

export function priorityOf(e: CloudEvent): Priority {
  if (e.type === 'org.lanegate.test') return 'low';
  return e.data && e.data.priority === 'high' ? 'high' : 'medium';
}

const PRIORITY_RANK: Record<Priority, number> = { high: 0, medium: 1, low: 2 };

export function isShelved(a: Alert, shelves: Map<string, Shelf[]>, now: number): boolean {
  const list = shelves.get(laneKey(a.site, a.lane)) || [];
  return list.some((s) => Date.parse(s.until) > now && (s.device === null || s.device === a.device));
}

/** The alarm list's order: unshelved first, then priority, then newest first. */
export function sortAlerts(alerts: Alert[], shelves: Map<string, Shelf[]>, now: number): Alert[] {
  return [...alerts].sort((x, y) => {
    const sx = isShelved(x, shelves, now) ? 1 : 0;
    const sy = isShelved(y, shelves, now) ? 1 : 0;
    if (sx !== sy) return sx - sy;
    const p = PRIORITY_RANK[priorityOf(x.event)] - PRIORITY_RANK[priorityOf(y.event)];
    if (p !== 0) return p;
    return Date.parse(y.event.time) - Date.parse(x.event.time) || x.event.id.localeCompare(y.event.id);
  });
}

/** Alarms (not shelved) whose time falls in the flood window ending at `now`. */
export function alarmsInWindow(alerts: Alert[], shelves: Map<string, Shelf[]>, now: number): number {
  return alerts.filter((a) => {
    const t = Date.parse(a.event.time);
    return now - t <= FLOOD_WINDOW_MS && t <= now + 60_000 && !isShelved(a, shelves, now);
  }).length;
}

/** ISA-18.2: a flood starts above FLOOD_START alarms in 10 minutes and ends below FLOOD_END. */
export function floodNext(wasFlood: boolean, count: number): boolean {
  return wasFlood ? count >= FLOOD_END : count > FLOOD_START;
}

/** Parses a retained shelves message; drops malformed entries (hostile input stays bounded). */
export function parseShelves(text: string): Shelf[] {
  if (text.length === 0 || text.length > 65536) return [];
  let j: any;
  try {
    j = JSON.parse(text);
  } catch {
    return [];
  }
  if (!j || !Array.isArray(j.shelves)) return [];
  const out: Shelf[] = [];
  for (const s of j.shelves.slice(0, 100)) {
    if (!s || typeof s.until !== 'string' || Number.isNaN(Date.parse(s.until))) continue;
    if (s.device !== null && typeof s.device !== 'string') continue;
    out.push({
      device: s.device,
      until: s.until,
      by: typeof s.by === 'string' ? s.by : null,
      reason: typeof s.reason === 'string' ? s.reason : undefined,
    });
  }
  return out;
}

/** A finding's kind in words. */
export function findingWords(kind: string): string {
  const words: Record<string, string> = {
    organic_mass: 'organic mass',
    structural: 'in the structure',
    opaque: 'opaque region (beam did not penetrate)',
    manifest_mismatch: 'does not match the manifest',
    anomaly: 'anomaly',
  };
  return words[kind] || kind;
}

export function dispositionWords(d: string | null): string {
  const words: Record<string, string> = {
    cleared: 'cleared',
    'searched-nothing-found': 'searched, nothing found',
    seized: 'seized',
    referred: 'referred',
  };
  return d ? words[d] || d : 'no disposition';
}

export function ageWords(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/** Lowercase hex of a digest. */
export function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}
