// End-to-end test of the supervisor board (issue 12) in a real browser: Debian's chromium
// driven by playwright-core, against a real gridcall on a temporary database.
//
//   node tests/dashboard/board.mjs --bin target/debug/gridcall [--shots docs/dashboard]
//                                  [--database-url postgres://…/fresh_db] [--chromium /usr/bin/chromium]
//                                  [--seed-orders 20000]   (a seeded history first, for screenshots)
//
// Prints one line per check and exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const BIN = resolve(args.bin ?? 'target/debug/gridcall');
const CHROMIUM = args.chromium ?? '/usr/bin/chromium';
const SHOTS = args.shots ? resolve(args.shots) : null;
const PASSWORD = 'board-e2e-password-1';

const work = mkdtempSync(join(tmpdir(), 'gridcall-board-'));
let server = null;
let browser = null;

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok   ${what}`);
}

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

// A policy whose urgent repairs must be dispatched within 4 s: a breach the test can wait for.
const POLICY = `
version = "board-e2e-1"
warn_at = 0.5
escalations = ["1h"]

[[rules]]
name = "urgent repair (seconds, for the board test)"
kinds = ["repair"]
priorities = ["urgent"]
[rules.targets]
dispatch = { target = "4s" }
arrival = { target = "1h" }

[[rules]]
name = "repair"
kinds = ["repair"]
[rules.targets]
dispatch = { target = "5m" }
accept = { target = "5m" }
arrival = { target = "45m" }
restore = { target = "3h" }
callback = { target = "24h" }

[[rules]]
name = "catch-all"
[rules.targets]
`;

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  writeFileSync(join(work, 'sla.toml'), POLICY);
  const env = {
    ...process.env,
    DATABASE_URL: args['database-url'] ?? join(work, 'board.db'),
    GRIDCALL__SERVER__BIND: `127.0.0.1:${port}`,
    GRIDCALL__SLA__POLICY_FILE: join(work, 'sla.toml'),
    GRIDCALL__MAIL__DIR: join(work, 'mail'),
    GRIDCALL__MAIL__BASE_URL: base,
    GRIDCALL__AUTH__ARGON2_MEMORY_KIB: '8192',
    GRIDCALL__AUTH__ARGON2_ITERATIONS: '1',
    // one-minute access tokens: the board rotates its pair every few seconds during the test
    GRIDCALL__AUTH__ACCESS_TOKEN_MINUTES: '1',
    RUST_LOG: 'warn',
  };
  if (args['seed-orders']) {
    const seeded = spawnSync(BIN, ['seed', '--orders', args['seed-orders']], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    check(seeded.status === 0, `seeded ${args['seed-orders']} orders of history`);
  }
  const made = spawnSync(BIN, ['user', 'create', '--username', 'admin', '--role', 'admin', '--password-stdin'],
    { env, input: `${PASSWORD}\n` });
  check(made.status === 0, `admin created (${made.stderr?.toString().trim().split('\n').pop() ?? ''})`);
  let serverLog = '';
  const startServer = async () => {
    server = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    server.stderr.on('data', (d) => { serverLog = (serverLog + d).slice(-4000); });
    for (let i = 0; ; i++) {
      try { if ((await fetch(`${base}/readyz`)).ok) break; } catch { /* not yet */ }
      if (i > 300) throw new Error(`server did not start:\n${serverLog}`);
      await sleep(100);
    }
  };
  await startServer();

  // ------------------------------------------------ reference data over the API
  const call = async (token, method, path, body) => {
    const r = await fetch(`${base}/api/v1${path}`, {
      method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path} → ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const login = async (username) => (await (await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }),
  })).json()).access_token;
  const admin = await login('admin');
  await call(admin, 'POST', '/areas', { code: 'SZ-FT-01', name: '福田一区', region_class: 'urban' });
  await call(admin, 'POST', '/areas', { code: 'SZ-NS-01', name: '南山一区', region_class: 'urban' });
  const crew = await call(admin, 'POST', '/crews', { code: 'FT-C1', name: '福田抢修一班', kind: 'field', area_codes: ['SZ-FT-01'], skills: ['repair', 'metering'], capacity: 5 });
  await call(admin, 'POST', '/crews', { code: 'NS-C1', name: '南山抢修一班', kind: 'field', area_codes: ['SZ-NS-01'], skills: ['repair'], capacity: 5 });
  for (const [username, role, extra] of [['super1', 'supervisor', {}], ['disp1', 'dispatcher', {}], ['agent1', 'agent', {}], ['crew1', 'crew', { crew_id: crew.id }]]) {
    await call(admin, 'POST', '/users', { username, password: PASSWORD, role, display_name: `${role} ${username}`, ...extra });
  }
  const agent = await login('agent1');
  const dispatcher = await login('disp1');
  let phone = 13800138000;
  const order = (extra = {}) => call(agent, 'POST', '/work-orders', {
    kind: 'repair', channel: 'phone', area_code: 'SZ-FT-01', description: '整栋楼停电',
    caller: { name: '张三', phone: String(phone++) }, address: '福田区某路 1 号', ...extra,
  });
  // some history for the reports and the chart
  for (let i = 0; i < 4; i++) {
    const o = await order();
    await call(dispatcher, 'POST', `/work-orders/${o.id}/dispatch`, { crew_id: crew.id });
  }
  await call(dispatcher, 'POST', '/outages', { area_codes: ['SZ-NS-01'], cause: '10kV 线路故障', started_at: new Date().toISOString(),
    estimated_restore_at: new Date(Date.now() + 2 * 3600e3).toISOString() });
  await call(agent, 'POST', '/work-orders', { kind: 'repair', channel: 'phone', area_code: 'SZ-NS-01', description: '停电', caller: { name: '李四', phone: '13900139000' } });

  // ------------------------------------------------ the browser
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true, timezoneId: 'Asia/Shanghai', locale: 'zh-CN' });
  const outside = [];
  const problems = [];
  const streams = [];
  const answered = { refresh: [], logout: [] };
  context.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path === '/api/v1/auth/refresh') answered.refresh.push(r.status());
    if (path === '/api/v1/auth/logout') answered.logout.push(r.status());
  });
  context.on('request', (r) => {
    if (r.url().includes('/api/v1/events/stream')) streams.push(r.url()); if (!r.url().startsWith(base) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) outside.push(r.url()); });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/401|403|404|409|410|ERR_CONNECTION_REFUSED/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
  const shot = async (name) => { if (SHOTS) { mkdirSync(SHOTS, { recursive: true }); await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true }); } };
  const signIn = async (username, path = '/') => {
    await page.goto(`${base}${path}`);
    await page.fill('#login input[name=username]', username);
    await page.fill('#login input[name=password]', PASSWORD);
    await page.click('#login button[type=submit]');
  };
  const signOut = async () => { await page.click('#logout'); await page.waitForSelector('#login'); };

  const headers = (await fetch(`${base}/`)).headers;
  check(/default-src 'none'/.test(headers.get('content-security-policy') ?? ''), 'the board is served with a Content-Security-Policy that allows nothing from outside');
  await page.goto(`${base}/`);
  await page.waitForSelector('#login');
  await shot('login');

  // a role the board is not for
  await signIn('agent1');
  await page.waitForSelector('#refused', { timeout: 5000 });
  check(await page.isVisible('#refused'), 'an agent is told the board is not for their role');
  await shot('not-for-your-role');
  await signOut();
  await signIn('crew1');
  await page.waitForSelector('#refused', { timeout: 5000 });
  check(true, 'a crew member is told the board is not for their role');
  await signOut();

  // the supervisor's live board
  await signIn('super1');
  await page.waitForSelector('#panel-latest table', { timeout: 5000 });
  await page.waitForSelector('#live.on', { timeout: 5000 });
  check(true, 'a supervisor signs in and the live stream connects (ticket, not a token in the URL)');
  const created = await order();
  const t0 = Date.now();
  await page.waitForSelector(`#panel-latest [data-order="${created.id}"]`, { timeout: 2000 });
  check(Date.now() - t0 <= 2000, `an order created over the API appears on the board in ${Date.now() - t0} ms (≤ 2 s)`);

  // the server restarts: the board shows it is offline, takes a new ticket and resumes after
  // the last event it saw, so an order created before it reconnected still appears
  const before = streams.length;
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  await page.waitForSelector('#live.off', { timeout: 5000 });
  await startServer();
  const during = await order();
  await page.waitForSelector(`#panel-latest [data-order="${during.id}"]`, { timeout: 20000 });
  await page.waitForSelector('#live.on', { timeout: 5000 });
  const resumed = streams.slice(before).map((u) => new URL(u).searchParams);
  check(resumed.length > 0 && resumed.every((q) => q.get('ticket') && Number(q.get('after')) > 0 && !q.get('access_token')),
    `after a server restart the board reconnects with a new ticket and after=<last event id> (${resumed.length} attempts) and the order created meanwhile appears`);
  await page.waitForSelector('#panel-backlog td', { timeout: 7000 });

  // a breach: an urgent repair with a 4 s dispatch target, recorded by the server's scanner
  const urgent = await order({ priority: 'urgent' });
  let breach = null;
  for (let i = 0; i < 200 && !breach; i++) {
    await sleep(50);
    breach = (await call(admin, 'GET', `/work-orders/${urgent.id}/events`)).items.find((e) => e.type === 'sla_breach');
  }
  check(breach, 'the scanner records the urgent order\'s dispatch breach');
  const key = `${urgent.id}/dispatch/1`;
  await page.waitForSelector(`#panel-breaches [data-breach="${key}"]`, { timeout: 3000 });
  const lag = Date.now() - Date.parse(breach.at);
  check(lag <= 3000, `the breach appears on the board ${lag} ms after the scanner recorded it (≤ 3 s)`);
  await page.waitForSelector(`#panel-timers td`, { timeout: 7000 });
  await sleep(5500); // let the aggregates take the new orders in (≤ 5 s after the events)
  await shot('board');

  // CSV downloads hold the same rows as the JSON reports
  const backlogJson = (await call(admin, 'GET', '/reports/backlog')).rows;
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#panel-backlog [data-csv]')]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
  const head = csv[0].split(',');
  const csvRows = csv.slice(1).map((line) => Object.fromEntries(line.split(',').map((v, i) => [head[i], v])));
  const same = csvRows.length === backlogJson.length && backlogJson.every((r, i) =>
    csvRows[i].status === r.status && csvRows[i].age_bucket === r.age_bucket && csvRows[i].sla_state === r.sla_state && Number(csvRows[i].count) === r.count);
  check(same, `the backlog CSV has the JSON report's ${backlogJson.length} rows`);
  const [download2] = await Promise.all([page.waitForEvent('download'), page.click('#panel-breaches [data-csv]')]);
  const breachCsv = readFileSync(await download2.path(), 'utf8');
  check(breachCsv.includes(urgent.id) && breachCsv.startsWith('work_order_id,'), 'the breaches CSV lists the breach');

  // approving an appeal updates the board
  const appeal = await call(dispatcher, 'POST', '/appeals', { work_order_id: urgent.id, stage: 'dispatch', instance: 1, reason_code: 'weather', reason: '台风导致无法派单' });
  await page.click('[data-tab=appeals]');
  await page.waitForSelector(`[data-appeal="${appeal.id}"]`, { timeout: 5000 });
  await page.waitForSelector(`#panel-breaches [data-breach="${key}"]`, { timeout: 5000 });
  await shot('appeals');
  await page.click(`[data-approve="${appeal.id}"]`);
  await page.waitForSelector(`[data-appeal="${appeal.id}"]`, { state: 'detached', timeout: 3000 });
  await page.waitForSelector(`#panel-breaches [data-breach="${key}"] .s-excused`, { timeout: 3000 });
  const timer = (await call(admin, 'GET', `/work-orders/${urgent.id}`)).sla.find((x) => x.stage === 'dispatch');
  check(timer.state === 'excused', 'approving the appeal on the board excuses the timer and the board shows it');

  // the other views
  for (const tab of ['crews', 'trend', 'scorecard']) {
    await page.click(`[data-tab=${tab}]`);
    await page.waitForSelector(`#panel-${tab} table, #panel-${tab} svg`, { timeout: 5000 });
    await shot(tab);
    check(true, `the ${tab} view renders`);
  }
  await page.click('[data-tab=crews]');
  await page.waitForSelector('#panel-crews table', { timeout: 5000 });
  const [download3] = await Promise.all([page.waitForEvent('download'), page.click('#panel-crews [data-csv]')]);
  const crewsCsv = readFileSync(await download3.path(), 'utf8').trim().split(/\r?\n/);
  const now = new Date();
  const monthStart = new Date(Date.UTC(new Date(now.getTime() + 8 * 3600e3).getUTCFullYear(), new Date(now.getTime() + 8 * 3600e3).getUTCMonth(), 1) - 8 * 3600e3);
  const crewsJson = (await call(admin, 'GET', `/reports/crews?from=${monthStart.toISOString()}&to=${new Date(now.getTime() + 60e3).toISOString()}`)).rows;
  check(crewsCsv.length - 1 === crewsJson.length && crewsJson.every((r) => crewsCsv.some((l) => l.includes(r.crew_id))),
    `the crews CSV has the JSON report's ${crewsJson.length} rows`);

  // English by a switch
  await page.click('[data-tab=board]');
  await page.waitForSelector('#panel-latest table', { timeout: 5000 });
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('#panel-latest h2')?.textContent.includes('Latest orders'), null, { timeout: 3000 });
  check(true, 'the language switch turns the labels to English');
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('#panel-latest h2')?.textContent.includes('最新工单'), null, { timeout: 3000 });
  await signOut();

  // a mail link opens the order's page on the board (the tokens live in memory: sign in first)
  await signIn('super1', `/orders/${created.id}`);
  await page.waitForSelector('[data-order-status]', { timeout: 5000 });
  check(page.url().endsWith(`/orders/${created.id}`), 'a mail link (/orders/{id}) opens the order on the board after signing in');
  await call(agent, 'POST', `/work-orders/${created.id}/notes`, { text: '客户再次来电' });
  await page.waitForSelector('[data-event=note]', { timeout: 3000 });
  check(true, 'the order page follows the order live');
  await shot('order');
  await signOut();

  // a dispatcher gets the live board of its areas, not the reports
  await signIn('disp1');
  await page.waitForSelector('#panel-latest table', { timeout: 5000 });
  check(!(await page.$('#panel-backlog')) && !(await page.$('[data-tab=crews]')), 'a dispatcher sees the live board without the reports');
  await shot('dispatcher-board');
  await signOut();

  check(answered.refresh.length > 0 && answered.refresh.every((s) => s === 200),
    `the board rotated its tokens ${answered.refresh.length} times (one-minute access tokens), every rotation answered 200`);
  check(answered.logout.length > 0 && answered.logout.every((s) => s < 300), `signing out revoked the refresh chain (${answered.logout.length} logouts)`);
  check(outside.length === 0, `no request left the server's origin (${outside.join(', ')})`);
  check(problems.length === 0, `no page errors or CSP violations (${problems.join('; ')})`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failed = false;
try {
  await main();
  console.log('board e2e: all checks passed');
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
