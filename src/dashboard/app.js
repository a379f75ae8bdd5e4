// gridcall supervisor board: one ES module, no build step, no outside resources.
// It reads the same REST API as every other client (API.md); it computes no figures of its
// own: counts, rates and scores come from the reports, and the live stream only says which
// of them to re-read (at most once per 5 s after an event, at least once a minute).

const TZ = 'Asia/Shanghai';
const TZ_OFFSET_MS = 8 * 3600 * 1000; // Asia/Shanghai has had no daylight saving since 1991
const DAY_MS = 86400 * 1000;
const EVENT_TYPES = [
  'created', 'dispatch', 'reassign', 'accept', 'reject', 'depart', 'arrive', 'contact',
  'resolve', 'suspend', 'resume', 'callback', 'close', 'reopen', 'merge', 'unmerge', 'cancel',
  'urge', 'note', 'update', 'linked_to_outage', 'sla_warning', 'sla_breach', 'sla_escalation',
  'sla_recalculated', 'sla_excused', 'auto_resumed', 'master_resolved', 'no_eligible_crew',
  'outage_updated', 'outage_cancelled',
];
const MIN_GAP_MS = 5000;   // an aggregate is re-read at most this often after events
const MAX_AGE_MS = 60000;  // and at least this often

const I18N = {
  zh: {
    title: '95598 SLA 看板', login: '登录', username: '用户名', password: '密码', sign_in: '登录',
    logout: '退出', live: '实时', offline: '离线', lang: 'English',
    tab_board: '实时看板', tab_crews: '班组排名', tab_trend: '达标趋势', tab_scorecard: '月度考核', tab_appeals: '免责申请',
    backlog: '在途工单（状态 × SLA）', latest: '最新工单', timers: '即将超时', breaches_today: '今日超时',
    breached_orders: '超时工单', outages: '停电事件', crews: '班组排名（本月）', trend: 'SLA 达标率（近 30 天，按日）',
    scorecard: '月度考核', appeals: '待审免责申请', order: '工单',
    area: '区域', all_areas: '全部区域', status: '状态', total: '合计', csv: '下载 CSV', refresh: '刷新',
    number: '工单号', kind: '类型', stage: '环节', instance: '次', due: '时限', left: '剩余', created: '受理时间',
    breached_at: '超时时间', overdue: '超时(分)', excused_col: '免责', crew: '班组', cause: '原因',
    started: '开始', restore_eta: '预计恢复', linked: '关联来电', areas: '区域', rank: '名次', code: '编码',
    name: '名称', score: '得分', orders: '工单', praise: '表扬', sample_ok: '样本足够',
    p_on_time_arrival_rate: '到达及时率', p_resolve_in_target_rate: '修复及时率', p_satisfaction_rate: '满意率',
    p_reopen_rate: '返修率', p_complaints_per_100: '百单投诉', p_reject_rate: '退单率',
    compliance: '达标率', met: '达标', breached: '超时', day: '日期', all_stages: '全部环节',
    period: '月份', period_status: '状态', open: '未关账', closed: '已关账', closed_at: '关账时间', close_month: '关账',
    filed_at: '申请时间', reason_code: '原因类别', reason: '说明', approve: '批准', reject: '驳回',
    reject_reason: '驳回理由', none_yet: '暂无', not_for_role: '此看板不适用于您的角色',
    not_for_role_detail: '看板供班长、管理员和调度员使用。请使用坐席或班组应用。',
    session_expired: '会话已过期，请重新登录', bad_login: '用户名或密码错误', too_many: '尝试过多，请稍后再试',
    yes: '是', no: '否', events: '事件', timers_of_order: 'SLA 计时', back: '返回看板', at: '时间',
    actor: '操作人', event_type: '事件', description: '描述', address: '地址', priority: '优先级',
    assigned_crew: '派往班组', confirm_close: '确认关账？关账后本月考核不可更改。', done: '已完成',
    system: '系统',
  },
  en: {
    title: '95598 SLA board', login: 'Sign in', username: 'Username', password: 'Password', sign_in: 'Sign in',
    logout: 'Sign out', live: 'live', offline: 'offline', lang: '中文',
    tab_board: 'Live board', tab_crews: 'Crews', tab_trend: 'Trend', tab_scorecard: 'Scorecard', tab_appeals: 'Appeals',
    backlog: 'Open orders (status × SLA)', latest: 'Latest orders', timers: 'About to breach', breaches_today: 'Breaches today',
    breached_orders: 'Breached orders', outages: 'Active outages', crews: 'Crew scoreboard (this month)', trend: 'SLA compliance (last 30 days, by day)',
    scorecard: 'Monthly scorecard', appeals: 'Pending appeals', order: 'Work order',
    area: 'Area', all_areas: 'All areas', status: 'Status', total: 'Total', csv: 'CSV', refresh: 'Refresh',
    number: 'Number', kind: 'Kind', stage: 'Stage', instance: '#', due: 'Due', left: 'Left', created: 'Opened',
    breached_at: 'Breached', overdue: 'Overdue (min)', excused_col: 'Excused', crew: 'Crew', cause: 'Cause',
    started: 'Started', restore_eta: 'Restore ETA', linked: 'Linked calls', areas: 'Areas', rank: 'Rank', code: 'Code',
    name: 'Name', score: 'Score', orders: 'Orders', praise: 'Praise', sample_ok: 'Sample ok',
    p_on_time_arrival_rate: 'On-time arrival', p_resolve_in_target_rate: 'Resolve in target', p_satisfaction_rate: 'Satisfaction',
    p_reopen_rate: 'Reopen', p_complaints_per_100: 'Complaints/100', p_reject_rate: 'Returns',
    compliance: 'Compliance', met: 'Met', breached: 'Breached', day: 'Day', all_stages: 'All stages',
    period: 'Month', period_status: 'Status', open: 'open', closed: 'closed', closed_at: 'Closed at', close_month: 'Close month',
    filed_at: 'Filed', reason_code: 'Reason code', reason: 'Reason', approve: 'Approve', reject: 'Reject',
    reject_reason: 'Reason for rejecting', none_yet: 'None', not_for_role: 'This board is not for your role',
    not_for_role_detail: 'The board is for supervisors, admins and dispatchers. Use the agent desktop or the crew app.',
    session_expired: 'Your session has expired; sign in again', bad_login: 'Wrong username or password', too_many: 'Too many attempts; try again later',
    yes: 'yes', no: 'no', events: 'Events', timers_of_order: 'SLA timers', back: 'Back to the board', at: 'At',
    actor: 'Actor', event_type: 'Event', description: 'Description', address: 'Address', priority: 'Priority',
    assigned_crew: 'Assigned crew', confirm_close: 'Close this month? A closed scorecard is frozen.', done: 'Done',
    system: 'system',
  },
};
const LABELS = {
  zh: {
    new: '新建', dispatched: '已派单', accepted: '已接单', en_route: '在途', on_site: '到达现场', contacted: '已联系',
    suspended: '挂起', resolved: '已处理', closed: '已归档', reopened: '重新打开', merged: '已合并', cancelled: '已撤销',
    running: '正常', warning: '预警', breached: '超时', none: '无', excused: '已免责', met: '达标', stopped: '停止', paused: '暂停',
    dispatch: '派单', accept: '接单', arrival: '到达现场', restore: '恢复供电', contact: '联系客户', reply: '答复', callback: '回访',
    repair: '故障报修', service_request: '服务申请', complaint: '投诉', report: '举报', inquiry: '业务咨询', opinion: '意见',
    suggestion: '建议', praise: '表扬', urgent: '紧急', high: '高', normal: '普通', low: '低',
    weather: '天气', customer_unreachable: '客户无法联系', access_denied: '无法进入现场', third_party: '第三方原因',
    upstream_outage: '上级电网停电', other: '其他', field: '抢修班组', unit: '处理单位',
    created: '受理', reassign: '改派', reject: '退单', depart: '出发', arrive: '到达', resolve: '处理完毕',
    suspend: '挂起', resume: '恢复', close: '归档', reopen: '重新打开', merge: '合并', unmerge: '取消合并',
    cancel: '撤销', urge: '催办', note: '备注', update: '修改', linked_to_outage: '关联停电',
    sla_warning: 'SLA 预警', sla_breach: 'SLA 超时', sla_escalation: 'SLA 升级', sla_recalculated: 'SLA 重算',
    sla_excused: 'SLA 免责', auto_resumed: '自动恢复', master_resolved: '主单处理完毕',
    no_eligible_crew: '无可派班组', outage_updated: '停电更新', outage_cancelled: '停电取消',
  },
  en: {},
};

// ---------------------------------------------------------------- small helpers

let lang = localStorage.getItem('gridcall.lang') === 'en' ? 'en' : 'zh';
const t = (key) => I18N[lang][key] ?? key;
const label = (v) => (v == null ? '' : (LABELS[lang][v] ?? String(v).replaceAll('_', ' ')));

/** Builds an element; children are nodes or text (never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'line', 'polyline', 'circle', 'text', 'g', 'rect', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel) => document.querySelector(sel);

function fmtTime(iso, withDate = true) {
  if (!iso) return '';
  const opts = { timeZone: TZ, hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false };
  if (withDate) Object.assign(opts, { year: 'numeric', month: '2-digit', day: '2-digit' });
  return new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', opts).format(new Date(iso));
}
function fmtLeft(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const text = `${hh}:${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}`;
  return ms < 0 ? `-${text}` : text;
}
const pct = (r) => (r == null ? '–' : `${(r * 100).toFixed(1)}%`);
const num = (x, d = 1) => (x == null ? '–' : Number(x).toFixed(d));
/** Local (Asia/Shanghai) midnight of today, as an instant. */
function localDayStart(now = Date.now()) {
  return new Date(Math.floor((now + TZ_OFFSET_MS) / DAY_MS) * DAY_MS - TZ_OFFSET_MS);
}
function localMonth(now = Date.now(), back = 0) {
  const d = new Date(now + TZ_OFFSET_MS);
  const m = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - back, 1));
  return `${m.getUTCFullYear()}-${String(m.getUTCMonth() + 1).padStart(2, '0')}`;
}
function monthStart(period) {
  const [y, m] = period.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, 1) - TZ_OFFSET_MS);
}
const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const orderLink = (id, text) => h('a', { href: `/orders/${id}`, 'data-nav': '' }, text || id.slice(0, 8));

// ---------------------------------------------------------------- session (tokens in memory only)

const S = { access: null, refresh: null, user: null, refreshTimer: null, es: null, lastEventId: 0, retry: 1000 };

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function keepTokens(body) {
  S.access = body.access_token;
  S.refresh = body.refresh_token;
  clearTimeout(S.refreshTimer);
  // rotate a minute before the access token expires
  const inMs = Math.max(5, (body.expires_in || 900) - 60) * 1000;
  S.refreshTimer = setTimeout(() => { rotate(); }, inMs);
}

let rotating = null;
/** Trades the refresh token for a new pair (rotation); false when the session is over. */
function rotate() {
  if (!S.refresh) return Promise.resolve(false);
  rotating ??= (async () => {
    try {
      const r = await fetch('/api/v1/auth/refresh', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: S.refresh }),
      });
      if (!r.ok) return false;
      keepTokens(await r.json());
      return true;
    } catch { return false; } finally { rotating = null; }
  })();
  return rotating;
}

async function api(path, { method = 'GET', body, csv = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Authorization: `Bearer ${S.access}`, Accept: csv ? 'text/csv' : 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && attempt === 0 && await rotate()) continue;
    if (r.status === 401) { signOut(t('session_expired')); throw new ApiError(401, {}); }
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
    return csv ? r.blob() : r.json();
  }
}

async function signIn(username, password) {
  const r = await fetch('/api/v1/auth/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
  });
  const body = await r.json().catch(() => ({}));
  if (r.status === 429) throw new Error(t('too_many'));
  if (!r.ok) throw new Error(r.status === 401 ? t('bad_login') : (body.detail || `HTTP ${r.status}`));
  keepTokens(body);
  S.user = body.user;
}

async function signOut(message) {
  const access = S.access, refresh = S.refresh;
  S.access = S.refresh = S.user = null;
  clearTimeout(S.refreshTimer);
  if (S.es) { S.es.close(); S.es = null; }
  clearInterval(tickTimer);
  if (access && !message) {
    await fetch('/api/v1/auth/logout', {
      method: 'POST', headers: { Authorization: `Bearer ${access}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: refresh }),
    }).catch(() => {});
  }
  showLogin(message || '');
}

// ---------------------------------------------------------------- live stream (ticket, never a JWT in a URL)

const listeners = new Set();

async function connect() {
  if (!S.access) return;
  if (S.es) { S.es.close(); S.es = null; }
  try {
    if (S.lastEventId) {
      // past the resume bound: re-read everything, then follow from the newest event
      try { await api(`/events?after=${S.lastEventId}&limit=1`); } catch (e) {
        if (e.status === 410) { S.lastEventId = 0; reloadAll(); } else throw e;
      }
    }
    const { ticket } = await api('/events/ticket', { method: 'POST' });
    const q = new URLSearchParams({ ticket });
    if (S.lastEventId) q.set('after', S.lastEventId);
    const es = new EventSource(`/api/v1/events/stream?${q}`);
    S.es = es;
    es.onopen = () => { S.retry = 1000; setLive(true); };
    const onEvent = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      S.lastEventId = Math.max(S.lastEventId, Number(m.lastEventId || ev.id) || 0);
      for (const fn of listeners) fn(ev);
    };
    for (const type of EVENT_TYPES) es.addEventListener(type, onEvent);
    es.onmessage = onEvent;
    // A ticket is single use, so the browser's own reconnect cannot work: take a new one
    // and resume after the last event seen.
    es.onerror = () => {
      setLive(false);
      es.close();
      if (S.es === es) S.es = null;
      setTimeout(connect, S.retry);
      S.retry = Math.min(S.retry * 2, 15000);
    };
  } catch (e) {
    setLive(false);
    if (S.access) { setTimeout(connect, S.retry); S.retry = Math.min(S.retry * 2, 15000); }
  }
}
function setLive(on) {
  const el = $('#live');
  el.className = `live ${on ? 'on' : 'off'}`;
  el.textContent = t(on ? 'live' : 'offline');
}

// ---------------------------------------------------------------- panels

/** A card that loads itself, is marked dirty by events, and is re-read on the 5 s / 60 s rule. */
class Panel {
  constructor(id, titleKey, { wide = false, csv = null, tools = [] } = {}) {
    this.id = id;
    this.titleKey = titleKey;
    this.csv = csv;
    this.last = 0;
    this.dirty = true;
    this.loading = false;
    this.body = h('div', { class: 'scroll' });
    const toolbar = h('span', { class: 'tools' }, ...tools,
      csv && h('button', { type: 'button', 'data-csv': id, onclick: () => this.download() }, t('csv')),
      h('button', { type: 'button', 'data-refresh': id, onclick: () => this.reload() }, t('refresh')));
    this.el = h('section', { class: `card${wide ? ' wide' : ''}`, id: `panel-${id}` },
      h('h2', {}, t(titleKey), toolbar), this.body);
  }
  async reload() {
    if (this.loading) { this.dirty = true; return; }
    this.loading = true;
    this.dirty = false;
    this.last = Date.now();
    try {
      const content = await this.load();
      this.body.replaceChildren(content);
      this.tick(Date.now());
      this.el.dataset.loadedAt = String(this.last);
    } catch (e) {
      if (e.status !== 401) this.body.replaceChildren(h('p', { class: 'error' }, e.message));
    } finally { this.loading = false; }
  }
  due(now) {
    return (this.dirty && now - this.last >= MIN_GAP_MS) || now - this.last >= MAX_AGE_MS;
  }
  onEvent() { this.dirty = true; }
  tick() {}
  async download() {
    const blob = await api(this.csv(), { csv: true });
    const a = h('a', { href: URL.createObjectURL(blob), download: `${this.id}-${Date.now()}.csv` });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
}

function table(headers, rows, empty = t('none_yet')) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map(([key, cls]) => h('th', { class: cls }, t(key))))),
    h('tbody', {}, rows));
}

let areaOptions = null;
async function areaSelect(onChange) {
  const sel = h('select', { 'aria-label': t('area'), onchange: () => onChange(sel.value) },
    h('option', { value: '' }, t('all_areas')));
  areaOptions ??= api('/areas?limit=500').then((p) => p.items).catch(() => []);
  for (const a of await areaOptions) sel.append(h('option', { value: a.code }, `${a.code} ${a.name}`));
  return sel;
}

class Backlog extends Panel {
  constructor() {
    const holder = h('span');
    super('backlog', 'backlog', { csv: () => `/reports/backlog${this.area ? `?area_code=${encodeURIComponent(this.area)}` : ''}`, tools: [holder] });
    this.area = '';
    areaSelect((v) => { this.area = v; this.reload(); }).then((s) => holder.append(s));
  }
  async load() {
    const { rows } = await api(this.csv());
    const states = ['breached', 'warning', 'running', 'none'];
    const by = new Map();
    for (const r of rows) {
      const m = by.get(r.status) ?? Object.fromEntries(states.map((s) => [s, 0]));
      m[r.sla_state] = (m[r.sla_state] ?? 0) + r.count;
      by.set(r.status, m);
    }
    const body = [...by].map(([status, m]) => h('tr', { 'data-status': status },
      h('td', {}, label(status)),
      states.map((s) => h('td', { class: `n s-${s}` }, m[s] || '')),
      h('td', { class: 'n' }, states.reduce((a, s) => a + m[s], 0))));
    return table([['status'], ...states.map((s) => [s, 'n']), ['total', 'n']], body);
  }
}
// state names are labels, not I18N keys: let t() fall through to the label table
for (const l of ['zh', 'en']) for (const s of ['warning', 'running', 'none']) I18N[l][s] ??= LABELS[l][s] ?? s;

class Latest extends Panel {
  constructor() { super('latest', 'latest'); this.rows = []; }
  async load() {
    this.rows = (await api('/work-orders?limit=15')).items;
    return this.render();
  }
  render(flashId) {
    return table([['number'], ['kind'], ['area'], ['status'], ['created']], this.rows.map((o) =>
      h('tr', { 'data-order': o.id, class: o.id === flashId ? 'flash' : null },
        h('td', {}, orderLink(o.id, o.number)), h('td', {}, label(o.kind)), h('td', {}, o.area_code),
        h('td', {}, label(o.status)), h('td', {}, fmtTime(o.created_at)))));
  }
  onEvent(ev) {
    // A new order is shown at once, read from the API (not built from the event). In a call
    // surge, one read at a time: the others wait for the list's next read (≤ 5 s).
    if (ev.type === 'created') {
      if (this.fetching) { this.dirty = true; return; }
      this.fetching = true;
      api(`/work-orders/${ev.work_order_id}`).then((o) => {
        this.rows = [o, ...this.rows.filter((r) => r.id !== o.id)].slice(0, 15);
        this.body.replaceChildren(this.render(o.id));
      }).catch(() => { this.dirty = true; }).finally(() => { this.fetching = false; });
    } else if (ev.to_status) {
      const row = this.rows.find((r) => r.id === ev.work_order_id);
      if (row) { row.status = ev.to_status; this.body.replaceChildren(this.render()); }
    }
  }
}

class Timers extends Panel {
  constructor() { super('timers', 'timers', { wide: false }); this.items = []; }
  async load() {
    const warning = (await api('/work-orders?sla_state=warning&limit=200')).items;
    const orders = warning.length >= 30 ? warning
      : [...warning, ...(await api('/work-orders?sla_state=running&limit=200')).items];
    const seen = new Set();
    this.items = [];
    for (const o of orders) {
      for (const tm of o.sla) {
        const key = `${o.id}/${tm.stage}/${tm.instance}`;
        if (tm.state !== 'running' || !tm.due_at || seen.has(key)) continue;
        seen.add(key);
        this.items.push({ o, tm, due: Date.parse(tm.due_at), warned: !!tm.warned_at });
      }
    }
    this.items.sort((a, b) => a.due - b.due);
    this.items = this.items.slice(0, 30);
    this.cells = [];
    return table([['number'], ['stage'], ['area'], ['due'], ['left', 'n']], this.items.map((it) => {
      const cell = h('td', { class: 'n' });
      this.cells.push([cell, it]);
      return h('tr', { 'data-order': it.o.id },
        h('td', {}, orderLink(it.o.id, it.o.number)), h('td', {}, label(it.tm.stage)), h('td', {}, it.o.area_code),
        h('td', {}, fmtTime(it.tm.due_at)), cell);
    }));
  }
  tick(now) {
    for (const [cell, it] of this.cells ?? []) {
      const left = it.due - now;
      cell.textContent = fmtLeft(left);
      cell.className = `n ${left < 0 ? 's-breached' : it.warned ? 's-warning' : 's-running'}`;
    }
  }
}

class Breaches extends Panel {
  constructor(supervisor, wide = false) {
    super('breaches', supervisor ? 'breaches_today' : 'breached_orders', {
      wide, csv: supervisor ? () => this.reportPath() : null,
    });
    this.supervisor = supervisor;
    this.items = [];
  }
  reportPath() {
    const to = new Date(Date.now() + 60000);
    return `/reports/breaches?from=${iso(localDayStart())}&to=${iso(to)}&limit=500`;
  }
  async load() {
    if (this.supervisor) {
      this.items = (await api(this.reportPath())).items.map((b) => ({ ...b }));
    } else {
      const orders = (await api('/work-orders?sla_state=breached&limit=200')).items;
      this.items = orders.flatMap((o) => o.sla.filter((tm) => tm.state === 'breached').map((tm) => ({
        work_order_id: o.id, number: o.number, area_code: o.area_code, stage: tm.stage, instance: tm.instance,
        due_at: tm.due_at, breached_at: tm.breached_at, excused: false,
      })));
    }
    return this.render();
  }
  render(flashKey) {
    const rows = [...this.items].sort((a, b) => String(b.breached_at).localeCompare(String(a.breached_at)));
    return table([['number'], ['stage'], ['area'], ['due'], ['breached_at'], ['excused_col']], rows.map((b) => {
      const key = `${b.work_order_id}/${b.stage}/${b.instance}`;
      return h('tr', { 'data-breach': key, class: key === flashKey ? 'flash' : null },
        h('td', {}, orderLink(b.work_order_id, b.number || undefined)), h('td', {}, `${label(b.stage)} #${b.instance}`),
        h('td', {}, b.area_code ?? ''), h('td', {}, fmtTime(b.due_at)),
        h('td', { class: 's-breached' }, fmtTime(b.breached_at)),
        h('td', { class: b.excused ? 's-excused' : '' }, b.excused ? label('excused') : ''));
    }));
  }
  onEvent(ev) {
    this.dirty = true;
    const d = ev.data || {};
    const key = `${ev.work_order_id}/${d.stage}/${d.instance}`;
    // Shown at once from the event; the next read of the report (≤ 5 s) confirms it.
    if (ev.type === 'sla_breach') {
      const item = { work_order_id: ev.work_order_id, number: null, area_code: null, stage: d.stage,
        instance: d.instance, due_at: d.due_at, breached_at: ev.at, excused: false };
      this.items = [item, ...this.items.filter((b) => `${b.work_order_id}/${b.stage}/${b.instance}` !== key)];
      this.body.replaceChildren(this.render(key));
      if (this.fetching) return; // in a storm of breaches the report's next read fills them in
      this.fetching = true;
      api(`/work-orders/${ev.work_order_id}`).then((o) => {
        item.number = o.number; item.area_code = o.area_code; this.body.replaceChildren(this.render());
      }).catch(() => {}).finally(() => { this.fetching = false; });
    } else if (ev.type === 'sla_excused') {
      const b = this.items.find((x) => `${x.work_order_id}/${x.stage}/${x.instance}` === key);
      if (b) { b.excused = true; this.body.replaceChildren(this.render(key)); }
    }
  }
}

class Outages extends Panel {
  constructor() { super('outages', 'outages'); }
  async load() {
    const { items } = await api('/outages?active=true&limit=100');
    return table([['areas'], ['cause'], ['started'], ['restore_eta'], ['linked', 'n']], items.map((o) =>
      h('tr', { 'data-outage': o.id },
        h('td', {}, o.area_codes.join(', ')), h('td', {}, orderLink(o.master_id, o.cause)),
        h('td', {}, fmtTime(o.started_at)), h('td', {}, fmtTime(o.estimated_restore_at)),
        h('td', { class: 'n' }, o.linked_count))));
  }
  onEvent(ev) {
    if (['linked_to_outage', 'outage_updated', 'outage_cancelled', 'master_resolved', 'created', 'resolve'].includes(ev.type)) this.dirty = true;
  }
}

const PARTS = ['on_time_arrival_rate', 'resolve_in_target_rate', 'satisfaction_rate', 'reopen_rate', 'complaints_per_100', 'reject_rate'];
function crewRows(rows) {
  return table([['rank', 'n'], ['code'], ['name'], ['kind'], ['score', 'n'], ['orders', 'n'], ['praise', 'n'],
    ...PARTS.map((p) => [`p_${p}`, 'n']), ['sample_ok']], rows.map((r) =>
    h('tr', { 'data-crew': r.crew_id },
      h('td', { class: 'n' }, r.rank), h('td', {}, r.code), h('td', {}, r.name), h('td', {}, label(r.kind)),
      h('td', { class: 'n' }, num(r.score, 3)), h('td', { class: 'n' }, r.orders), h('td', { class: 'n' }, r.praise),
      PARTS.map((p) => h('td', { class: 'n' }, p === 'complaints_per_100' ? num(r.parts[p]) : pct(r.parts[p]))),
      h('td', { class: r.sample_ok ? '' : 'muted' }, t(r.sample_ok ? 'yes' : 'no')))));
}

class Crews extends Panel {
  constructor() { super('crews', 'crews', { wide: true, csv: () => `/reports/crews?from=${iso(monthStart(localMonth()))}&to=${iso(new Date())}` }); }
  async load() { return crewRows((await api(this.csv())).rows); }
}

class Trend extends Panel {
  constructor() {
    const stage = h('select', { 'aria-label': t('stage'), onchange: () => { this.stage = stage.value; this.reload(); } },
      h('option', { value: '' }, t('all_stages')),
      ['dispatch', 'accept', 'arrival', 'restore', 'contact', 'reply', 'callback'].map((s) => h('option', { value: s }, label(s))));
    super('trend', 'trend', { wide: true, tools: [stage], csv: () => this.path() });
    this.stage = '';
  }
  path() {
    const to = new Date(Date.now() + 60000);
    const from = new Date(localDayStart().getTime() - 29 * DAY_MS);
    return `/reports/sla?group_by=day&from=${iso(from)}&to=${iso(to)}${this.stage ? `&stage=${this.stage}` : ''}`;
  }
  async load() {
    const rows = (await api(this.path())).rows.filter((r) => r.key).sort((a, b) => a.key.localeCompare(b.key));
    return h('div', {}, chart(rows), table([['day'], ['compliance', 'n'], ['met', 'n'], ['breached', 'n'], ['total', 'n']],
      rows.map((r) => h('tr', { 'data-day': r.key }, h('td', {}, r.key), h('td', { class: 'n' }, pct(r.compliance_rate)),
        h('td', { class: 'n' }, r.met), h('td', { class: 'n' }, r.breached), h('td', { class: 'n' }, r.total)))));
  }
}

/** The compliance line, drawn as SVG (no chart library). */
function chart(rows) {
  const W = 720, H = 240, L = 44, R = 12, T = 12, B = 28;
  const pts = rows.filter((r) => r.compliance_rate != null);
  const svg = h('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': t('trend') });
  const y = (v) => T + (1 - v) * (H - T - B);
  for (const v of [0, 0.5, 0.9, 1]) {
    svg.append(h('line', { class: v === 0.9 ? 'target' : 'axis', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      h('text', { x: 4, y: y(v) + 4 }, `${Math.round(v * 100)}%`));
  }
  if (!pts.length) { svg.append(h('text', { x: W / 2 - 20, y: H / 2 }, t('none_yet'))); return svg; }
  const x = (i) => (pts.length === 1 ? (L + W - R) / 2 : L + (i * (W - L - R)) / (pts.length - 1));
  svg.append(h('polyline', { class: 'line', points: pts.map((r, i) => `${x(i)},${y(r.compliance_rate)}`).join(' ') }));
  pts.forEach((r, i) => {
    svg.append(h('circle', { class: 'dot', cx: x(i), cy: y(r.compliance_rate), r: 3 },
      h('title', {}, `${r.key}: ${pct(r.compliance_rate)}`)));
  });
  const step = Math.max(1, Math.ceil(pts.length / 8));
  pts.forEach((r, i) => { if (i % step === 0) svg.append(h('text', { x: x(i) - 16, y: H - 8 }, r.key.slice(5))); });
  return svg;
}

class Scorecard extends Panel {
  constructor() {
    const month = h('input', { type: 'month', 'aria-label': t('period'), value: localMonth(Date.now(), 1),
      onchange: () => { this.period = month.value; this.reload(); } });
    super('scorecard', 'scorecard', { wide: true, tools: [month], csv: () => `/scorecards/${this.period}` });
    this.period = month.value;
  }
  async load() {
    const card = await api(`/scorecards/${this.period}`);
    const u = S.user;
    const mayClose = card.status === 'open' && (u.role === 'admin' || (u.role === 'supervisor' && !u.area_codes.length));
    const msg = h('span', { class: 'error', role: 'alert' });
    const close = mayClose && h('button', { type: 'button', 'data-close': card.period, onclick: async () => {
      if (!confirm(t('confirm_close'))) return;
      try { await api(`/scorecards/${card.period}/close`, { method: 'POST' }); this.reload(); } catch (e) { msg.textContent = e.message; }
    } }, t('close_month'));
    return h('div', {},
      h('dl', { class: 'kv' }, h('dt', {}, t('period')), h('dd', {}, card.period),
        h('dt', {}, t('period_status')), h('dd', { 'data-period-status': card.status }, t(card.status)),
        card.closed_at && [h('dt', {}, t('closed_at')), h('dd', {}, fmtTime(card.closed_at))]),
      h('p', {}, close, msg), crewRows(card.rows));
  }
}

class Appeals extends Panel {
  constructor() { super('appeals', 'appeals', { wide: true }); }
  async load() {
    const { items } = await api('/appeals?status=pending&limit=200');
    return table([['filed_at'], ['number'], ['stage'], ['area'], ['reason_code'], ['reason'], ['status']], items.map((a) => {
      const msg = h('span', { class: 'error' });
      const reason = h('input', { placeholder: t('reject_reason'), 'aria-label': t('reject_reason'), size: 14 });
      const act = async (verb) => {
        try {
          await api(`/appeals/${a.id}/${verb}`, { method: 'POST', body: verb === 'reject' ? { reason: reason.value } : {} });
          this.reload();
          dirtyAll();
        } catch (e) { msg.textContent = e.message; }
      };
      return h('tr', { 'data-appeal': a.id },
        h('td', {}, fmtTime(a.filed_at)), h('td', {}, orderLink(a.work_order_id)), h('td', {}, `${label(a.stage)} #${a.instance}`),
        h('td', {}, a.area_code), h('td', {}, label(a.reason_code)), h('td', {}, a.reason),
        h('td', {}, h('button', { type: 'button', 'data-approve': a.id, onclick: () => act('approve') }, t('approve')), ' ',
          reason, h('button', { type: 'button', 'data-reject': a.id, onclick: () => act('reject') }, t('reject')), msg));
    }));
  }
  onEvent(ev) { if (ev.type === 'sla_excused' || ev.type === 'sla_breach') this.dirty = true; }
}

class OrderPage extends Panel {
  constructor(id) { super('order', 'order', { wide: true }); this.orderId = id; }
  async load() {
    const [o, ev] = await Promise.all([api(`/work-orders/${this.orderId}`), api(`/work-orders/${this.orderId}/events?limit=500`)]);
    this.timers = o.sla;
    this.cells = [];
    const timers = table([['stage'], ['instance', 'n'], ['status'], ['due'], ['left', 'n']], o.sla.map((tm) => {
      const cell = h('td', { class: 'n' });
      if (tm.state === 'running' && tm.due_at) this.cells.push([cell, Date.parse(tm.due_at)]);
      return h('tr', {}, h('td', {}, label(tm.stage)), h('td', { class: 'n' }, tm.instance),
        h('td', { class: `s-${tm.state}` }, label(tm.state)), h('td', {}, fmtTime(tm.due_at)), cell);
    }));
    const events = table([['at'], ['event_type'], ['actor'], ['status'], ['reason']], ev.items.map((e) =>
      h('tr', { 'data-event': e.type }, h('td', {}, fmtTime(e.at)), h('td', {}, label(e.type)), h('td', {}, e.actor ? e.actor.username : t('system')),
        h('td', {}, e.to_status ? `${label(e.from_status)} → ${label(e.to_status)}` : ''), h('td', {}, e.reason ?? ''))));
    return h('div', {},
      h('p', {}, h('a', { href: '/', 'data-nav': '' }, `← ${t('back')}`)),
      h('dl', { class: 'kv', 'data-order-status': o.status },
        h('dt', {}, t('number')), h('dd', {}, o.number), h('dt', {}, t('kind')), h('dd', {}, `${label(o.kind)} / ${o.category}`),
        h('dt', {}, t('status')), h('dd', {}, label(o.status)), h('dt', {}, t('priority')), h('dd', {}, label(o.priority)),
        h('dt', {}, t('area')), h('dd', {}, o.area_code), h('dt', {}, t('address')), h('dd', {}, o.address ?? ''),
        h('dt', {}, t('description')), h('dd', {}, o.description), h('dt', {}, t('created')), h('dd', {}, fmtTime(o.created_at)),
        h('dt', {}, t('assigned_crew')), h('dd', {}, o.assigned_crew_id ?? '')),
      h('h3', {}, t('timers_of_order')), timers, h('h3', {}, t('events')), events);
  }
  onEvent(ev) {
    if (ev.work_order_id === this.orderId) { this.last = 0; this.dirty = true; }
  }
  due(now) { return (this.dirty && now - this.last >= 500) || now - this.last >= MAX_AGE_MS; }
  tick(now) { for (const [cell, due] of this.cells ?? []) { cell.textContent = fmtLeft(due - now); cell.className = `n ${due < now ? 's-breached' : ''}`; } }
}

// ---------------------------------------------------------------- pages and navigation

let panels = [];
let tickTimer = null;

function tabsFor(role) {
  if (role === 'supervisor' || role === 'admin') return ['board', 'crews', 'trend', 'scorecard', 'appeals'];
  if (role === 'dispatcher') return ['board'];
  return [];
}

function panelsFor(page, role) {
  const sup = role !== 'dispatcher';
  switch (page) {
    case 'board': return [sup && new Backlog(), new Latest(), new Timers(), new Breaches(sup), new Outages()].filter(Boolean);
    case 'crews': return [new Crews()];
    case 'trend': return [new Trend()];
    case 'scorecard': return [new Scorecard()];
    case 'appeals': return [new Appeals(), new Breaches(true, true)];
    default: return [];
  }
}

function route() {
  const p = location.pathname.replace(/\/+$/, '');
  const order = p.match(/^\/orders\/([0-9a-fA-F-]{36})$/);
  if (order) return { page: 'order', id: order[1] };
  if (p.startsWith('/appeals')) return { page: 'appeals' };
  const page = p.slice(1) || 'board';
  return { page };
}

function render() {
  const main = $('#main');
  const role = S.user.role;
  const tabs = tabsFor(role);
  $('#user').textContent = `${S.user.display_name} (${S.user.username})`;
  $('#logout').hidden = false;
  const nav = $('#tabs');
  nav.hidden = !tabs.length;
  const { page, id } = route();
  nav.replaceChildren(...tabs.map((tab) => h('a', { href: tab === 'board' ? '/' : `/${tab}`, 'data-nav': '', 'data-tab': tab,
    class: tab === page ? 'on' : null }, t(`tab_${tab}`))));
  if (!tabs.length) {
    panels = [];
    main.replaceChildren(h('section', { class: 'card wide refused', id: 'refused' },
      h('h2', {}, t('not_for_role')), h('p', {}, t('not_for_role_detail'))));
    return;
  }
  const allowed = page === 'order' || tabs.includes(page);
  panels = page === 'order' ? [new OrderPage(id)] : panelsFor(allowed ? page : 'board', role);
  main.replaceChildren(...panels.map((p) => p.el));
  document.body.dataset.page = page;
  for (const p of panels) p.reload();
}

function reloadAll() { for (const p of panels) p.reload(); }
function dirtyAll() { for (const p of panels) p.dirty = true; }

function startBoard() {
  listeners.clear();
  listeners.add((ev) => { for (const p of panels) p.onEvent(ev); });
  render();
  clearInterval(tickTimer);
  tickTimer = setInterval(() => {
    const now = Date.now();
    for (const p of panels) { if (p.due(now)) p.reload(); p.tick(now); }
  }, 1000);
  if (tabsFor(S.user.role).length) connect();
}

function showLogin(message) {
  $('#tabs').hidden = true;
  $('#logout').hidden = true;
  $('#user').textContent = '';
  setLive(false);
  panels = [];
  const form = h('form', { id: 'login', class: 'card narrow', autocomplete: 'on' },
    h('h2', {}, t('login')),
    h('label', {}, h('span', {}, t('username')), ' ', h('input', { name: 'username', autocomplete: 'username', required: true })),
    h('label', {}, h('span', {}, t('password')), ' ', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('p', { class: 'error', id: 'login-error', role: 'alert' }, message),
    h('button', { type: 'submit' }, t('sign_in')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    try {
      await signIn(String(data.get('username')), String(data.get('password')));
      startBoard();
    } catch (err) { $('#login-error').textContent = err.message; }
  });
  $('#main').replaceChildren(form);
}

function applyLanguage() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = `gridcall · ${t('title')}`;
  $('#top h1').textContent = t('title');
  $('#lang').textContent = t('lang');
  $('#logout').textContent = t('logout');
  setLive(!!(S.es && S.es.readyState === 1));
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  history.pushState({}, '', a.getAttribute('href'));
  if (S.user) render();
});
window.addEventListener('popstate', () => { if (S.user) render(); });
$('#lang').addEventListener('click', () => {
  lang = lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('gridcall.lang', lang);
  applyLanguage();
  if (S.user) render(); else showLogin('');
});
$('#logout').addEventListener('click', () => signOut());

applyLanguage();
showLogin('');
