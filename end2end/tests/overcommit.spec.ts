// Admission control end to end on `parapet demo` (issue 6, point 9): starting a VM that would break a
// cluster's failover plan.
//   - a VM operator gets the overcommit warning with only Cancel and a sentence saying why; Cancel
//     leaves the VM stopped;
//   - a pool admin points alert mail at a real SMTP server (aiosmtpd, started here) through
//     Settings > Email, mailing only "pool overcommitted";
//   - a pool operator gets "Proceed anyway (pool becomes overcommitted)" and "Lower the failure limit
//     to N and proceed"; proceeding starts the VM, the "pool-overcommitted" alert appears on the
//     Alerts page and its mail reaches the SMTP server (and none for the kind not chosen);
//   - the audit log holds each decision and who took it.
//
// The set-up goes through the API as admin: two accounts, an HA offering big enough, a stopped
// protected VM on the cluster's emptiest host, and a host failure limit of 2 on cluster-a, where the
// demo's protected VMs fit on any one host (capacity 2) until that VM starts (capacity 1). At the end
// everything is put back: VM stopped and destroyed, offering deleted, limit restored, this spec's
// alerts acknowledged, alert mail off, SMTP server stopped.
import {
  test,
  expect,
  request as playwrightRequest,
  type APIRequestContext,
  type Page,
  type TestInfo,
  type Locator,
} from '@playwright/test';
import { adminPassword, baseURL, csrf, getJson, nav, runId, screenshot, signIn, vmStateBadge, type VmJson } from '../support';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** A suffix that keeps names unique if the suite runs twice against one server. */
const run = runId();
const password = `e2e-pass-${run}-long`;
const vmOperator = `oc-vm-op-${run}`;
const poolOperator = `oc-pool-op-${run}`;
const offeringName = `e2e-overcommit-${run}`;
const vmName = `e2e-big-${run}`;
const recipient = `ops-${run}@e2e.test`;
const fromAddress = `Parapet <parapet-${run}@e2e.test>`;
/** The cluster this spec changes (foundation and lifecycle only stop/start or add small VMs there;
 * the OOBM spec powers a host of cluster-b off and on). */
const clusterName = 'cluster-a';
/** The failure limit set for the test: the demo's protected VMs fit on any one host of three. */
const testLimit = 2;
const smtpScript = path.resolve(__dirname, '../../server/tests/support/smtp_server.py');

type Resources = { cpu_cores: number; cpu_mhz: number; memory_mb: number };
type ClusterJson = { id: string; name: string; ha_failure_limit: number };
type HostJson = {
  id: string;
  name: string;
  cluster_id: string;
  connection: string;
  allocation: string;
  capacity: Resources;
  allocated: Resources;
};
type PlanVm = { name: string; memory_mb: number; cpu_mhz: number; host: string | null; priority: string; shared_storage: boolean };
type PlanReport = { max_failure_capacity: number | null; failure_limit: number; plan_exists_for: number; overcommitted: boolean };
type ClusterPlan = { report: PlanReport; pool: { hosts: { name: string; memory_mb: number; live: boolean }[]; vms: PlanVm[]; failure_limit: number } };
type AlertJson = { id: string; kind: string; severity: string; cluster_id: string | null; message: string; cleared_at: string | null; acknowledged_at: string | null };
type AuditJson = { actor: string; action: string; target: string; outcome: string; status: number; detail: string | null };
type OutboxJson = { alert_id: string; alert_kind: string; status: string };
type Mail = { mail_from: string; rcpt_tos: string[]; subject: string; from: string; to: string; message_id: string; body: string };

async function ok(response: Awaited<ReturnType<APIRequestContext['get']>>, what: string) {
  expect(response.ok(), `${what}: ${response.status()} ${await response.text()}`).toBeTruthy();
  return response.status() === 204 ? null : response.json();
}

async function send<T>(api: APIRequestContext, method: 'post' | 'put' | 'patch' | 'delete', url: string, data?: unknown): Promise<T> {
  const response = await api[method](url, { headers: csrf, data });
  return (await ok(response, `${method.toUpperCase()} ${url}`)) as T;
}

/** An API client signed in as `username` (its own cookie jar). */
async function apiAs(username: string, secret: string): Promise<APIRequestContext> {
  const api = await playwrightRequest.newContext({ baseURL });
  await send(api, 'post', '/api/v1/auth/login', { username, password: secret });
  return api;
}

// ---- the SMTP server (server/tests/support/smtp_server.py, PyPI aiosmtpd) ----

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something on 127.0.0.1:`port` greets with SMTP's 220. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (data) => done(data.toString('ascii').startsWith('220')));
  });
}

type Smtp = { port: number; dir: string; child: ChildProcess; log: () => string };

async function startSmtp(): Promise<Smtp> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parapet-e2e-smtp-'));
  const logFile = path.join(dir, 'server.log');
  const logFd = fs.openSync(logFile, 'w');
  const child = spawn('python3', [smtpScript, '--port', String(port), '--dir', dir], {
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  const log = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  await expect
    .poll(async () => {
      expect(exited, `the aiosmtpd server exited (pip install -r requirements-test.txt?): ${log()}`).toBeNull();
      return greets(port);
    }, { message: `the SMTP server on port ${port} did not greet`, timeout: 30_000 })
    .toBe(true);
  return { port, dir, child, log };
}

/** Stops the server by its PID (SIGTERM, then SIGKILL if it lingers) and removes its directory. */
async function stopSmtp(smtp: Smtp) {
  const { child } = smtp;
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
  fs.rmSync(smtp.dir, { recursive: true, force: true });
}

/** Every message the SMTP server accepted so far, in order. */
function receivedMails(smtp: Smtp): Mail[] {
  return fs
    .readdirSync(smtp.dir)
    .filter((name) => /^\d+\.json$/.test(name))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    .map((name) => JSON.parse(fs.readFileSync(path.join(smtp.dir, name), 'utf8')) as Mail);
}

// ---- what the tests share ----

type Setup = {
  admin: APIRequestContext;
  smtp: Smtp;
  cluster: ClusterJson;
  originalLimit: number;
  host: HostJson;
  offeringId: string;
  vm: VmJson;
  /** What the planner says about starting the VM (capacity before and after). */
  capacityBefore: number;
  capacityAfter: number;
  /** When the set-up finished: alerts raised after it are this spec's. */
  since: string;
};

let setup: Setup | undefined;

function shared(): Setup {
  expect(setup, 'the set-up did not complete').toBeTruthy();
  return setup!;
}

async function clusterPlan(api: APIRequestContext, clusterId: string): Promise<ClusterPlan> {
  return getJson<ClusterPlan>(api, `/api/v1/clusters/${clusterId}/ha/plan`);
}

async function openAlerts(api: APIRequestContext, kind: string, clusterId: string): Promise<AlertJson[]> {
  const alerts = await getJson<AlertJson[]>(api, '/api/v1/alerts?status=all&limit=1000');
  return alerts.filter((alert) => alert.kind === kind && alert.cluster_id === clusterId && alert.cleared_at === null);
}

async function vmState(api: APIRequestContext, id: string): Promise<string> {
  return (await getJson<VmJson>(api, `/api/v1/vms/${id}`)).state;
}

/** The overcommit warning and its parts. */
function warning(page: Page) {
  const dialog = page.getByRole('dialog', { name: 'This would break the failover plan' });
  return {
    dialog,
    cancel: dialog.getByRole('button', { name: 'Cancel', exact: true }),
    proceed: dialog.getByRole('button', { name: 'Proceed anyway (pool becomes overcommitted)', exact: true }),
    lower: dialog.getByRole('button', { name: /^Lower the failure limit to \d+ and proceed$/ }),
  };
}

/** The dialog's account of what the start would do. */
function explanation(vm: VmJson, capacityAfter: number) {
  const failures = (n: number) => `${n} host failure${n === 1 ? '' : 's'}`;
  return (
    `Starting VM "${vm.name}" on ${shared().host.name} would leave ${clusterName} able to survive only ` +
    `${failures(capacityAfter)}, while its failover plan covers ${failures(testLimit)} (host failure limit ${testLimit}).`
  );
}

/** Fails the test if the console's wasm panicked (it stops updating then): collects the panics. */
function watchForPanics(page: Page): () => void {
  const panics: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && message.text().includes('panicked')) panics.push(message.text().slice(0, 400));
  });
  page.on('pageerror', (error) => panics.push(String(error).slice(0, 400)));
  return () => expect(panics, 'the console panicked').toEqual([]);
}

async function openVm(page: Page, vm: VmJson) {
  await page.goto(`/vms/${vm.id}`);
  await expect(page.getByRole('heading', { level: 1, name: vm.name, exact: true })).toBeVisible();
  return page.locator('.page-header').locator(vmStateBadge).first();
}

test.describe.serial('starting a VM that would overcommit the pool', () => {
  let checkNoPanics: (() => void) | undefined;
  test.beforeEach(({ page }) => {
    checkNoPanics = watchForPanics(page);
  });
  test.afterEach(() => checkNoPanics?.());

  test.beforeAll(async () => {
    const smtp = await startSmtp();
    const admin = await apiAs('admin', adminPassword);
    // Assigned before anything else can fail, so afterAll stops the SMTP server whatever happens.
    setup = { admin, smtp } as Setup;

    const clusters = await getJson<ClusterJson[]>(admin, '/api/v1/clusters');
    const cluster = clusters.find((candidate) => candidate.name === clusterName);
    expect(cluster, `no ${clusterName}: ${JSON.stringify(clusters)}`).toBeTruthy();
    setup.cluster = cluster!;
    setup.originalLimit = cluster!.ha_failure_limit;

    // The VM goes on the cluster's host with the most free memory.
    const hosts = (await getJson<HostJson[]>(admin, '/api/v1/hosts')).filter(
      (host) => host.cluster_id === cluster!.id && host.connection === 'connected' && host.allocation === 'enabled',
    );
    expect(hosts.length, `${clusterName} has ${hosts.length} usable hosts`).toBeGreaterThanOrEqual(3);
    const free = (host: HostJson) => host.capacity.memory_mb - host.allocated.memory_mb;
    const host = [...hosts].sort((a, b) => free(b) - free(a) || a.name.localeCompare(b.name))[0];
    setup.host = host;

    // With limit 2 the plan needs every protected VM to fit on the one host left after two failures:
    // a VM bigger than the room that leaves breaks it; it must still fit where it starts.
    const plan = await clusterPlan(admin, cluster!.id);
    expect(plan.report.max_failure_capacity ?? -1, `${clusterName} must survive 2 host failures: ${JSON.stringify(plan.report)}`).toBeGreaterThanOrEqual(testLimit);
    const protectedMb = plan.pool.vms.filter((vm) => vm.priority === 'restart').reduce((sum, vm) => sum + vm.memory_mb, 0);
    const smallestHost = Math.min(...plan.pool.hosts.filter((candidate) => candidate.live).map((candidate) => candidate.memory_mb));
    const memoryMb = Math.ceil((smallestHost - protectedMb + 4096) / 1024) * 1024;
    expect(memoryMb, `a ${memoryMb} MB VM does not fit on ${host.name} (${free(host)} MB free)`).toBeLessThanOrEqual(free(host) - 1024);

    // Ask the planner about the cluster with that VM running there, as admission control does: it
    // compares the plan without the stopped VM (the live plan) to the plan with it started. (The
    // simulate API's own admit_start counts a stopped protected VM as placed already, so its
    // "before" is not this one.)
    const simulated = await send<{ report: PlanReport }>(admin, 'post', '/api/v1/ha/plan/simulate', {
      pool: {
        ...plan.pool,
        failure_limit: testLimit,
        vms: [...plan.pool.vms, { name: vmName, memory_mb: memoryMb, cpu_mhz: 1000, host: host.name, priority: 'restart', shared_storage: true }],
      },
    });
    setup.capacityBefore = plan.report.max_failure_capacity!;
    expect(simulated.report.max_failure_capacity, `capacity with the VM started: ${JSON.stringify(simulated.report)}`).not.toBeNull();
    setup.capacityAfter = simulated.report.max_failure_capacity!;
    expect(setup.capacityAfter, 'starting the VM must break a plan for 2 host failures').toBeLessThan(testLimit);

    for (const [username, role] of [
      [vmOperator, 'vm-operator'],
      [poolOperator, 'pool-operator'],
    ]) {
      await send(admin, 'post', '/api/v1/users', { username, password, role });
    }
    const offering = await send<{ id: string }>(admin, 'post', '/api/v1/offerings', {
      name: offeringName,
      description: 'end-to-end: big enough to break the failover plan',
      cpu_cores: 1,
      cpu_mhz: 1000,
      memory_mb: memoryMb,
      offer_ha: true,
    });
    setup.offeringId = offering.id;
    const templates = await getJson<{ id: string }[]>(admin, '/api/v1/templates');
    const pools = await getJson<{ id: string; cluster_id: string | null }[]>(admin, '/api/v1/storage-pools');
    const storage = pools.find((pool) => pool.cluster_id === cluster!.id);
    expect(storage, `${clusterName} has no shared primary storage`).toBeTruthy();
    const deployed = await send<{ vm: VmJson }>(admin, 'post', '/api/v1/vms', {
      name: vmName,
      offering_id: offering.id,
      template_id: templates[0].id,
      storage_pool_id: storage!.id,
      host_id: host.id,
      start: false,
    });
    expect(deployed.vm.state).toBe('stopped');
    setup.vm = deployed.vm;

    await send(admin, 'put', `/api/v1/clusters/${cluster!.id}/ha/failure-limit`, { limit: testLimit });
    const ready = await clusterPlan(admin, cluster!.id);
    expect(ready.report, 'the cluster is not overcommitted before the start').toMatchObject({
      max_failure_capacity: setup.capacityBefore,
      failure_limit: testLimit,
      plan_exists_for: testLimit,
      overcommitted: false,
    });
    // A condition's alert mails once, when new: none may be open for this cluster yet.
    expect(await openAlerts(admin, 'pool-overcommitted', cluster!.id)).toEqual([]);
    setup.since = new Date().toISOString();
  });

  test.afterAll(async () => {
    if (!setup) return;
    const { admin, smtp } = setup;
    const problems: string[] = [];
    const attempt = async (what: string, step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        problems.push(`${what}: ${error}`);
      }
    };
    try {
      if (setup.vm) {
        const id = setup.vm.id;
        await attempt('stop the VM', async () => {
          const state = await vmState(admin, id);
          if (state !== 'stopped') {
            if (state === 'running' || state === 'starting') await send(admin, 'post', `/api/v1/vms/${id}/stop`);
            await expect.poll(() => vmState(admin, id), { timeout: 60_000 }).toBe('stopped');
          }
        });
        await attempt('destroy the VM', () => send(admin, 'delete', `/api/v1/vms/${id}`));
      }
      if (setup.offeringId) {
        await attempt('delete the offering', () => send(admin, 'delete', `/api/v1/offerings/${setup!.offeringId}`));
      }
      if (setup.cluster) {
        const cluster = setup.cluster;
        await attempt('restore the failure limit', () =>
          send(admin, 'put', `/api/v1/clusters/${cluster.id}/ha/failure-limit`, { limit: setup!.originalLimit }),
        );
        await attempt('acknowledge this spec\'s alerts', async () => {
          // Once the VM is gone the plan holds again: wait for the reconciler to clear the condition.
          await expect.poll(async () => (await openAlerts(admin, 'pool-overcommitted', cluster.id)).length, { timeout: 30_000 }).toBe(0);
          const alerts = await getJson<(AlertJson & { raised_at: string })[]>(admin, '/api/v1/alerts?status=open&limit=1000');
          for (const alert of alerts) {
            const ours = alert.cluster_id === cluster.id && Date.parse(alert.raised_at) >= Date.parse(setup!.since) &&
              ['pool-overcommitted', 'capacity-dropped'].includes(alert.kind);
            if (ours) await send(admin, 'post', `/api/v1/alerts/${alert.id}/acknowledge`);
          }
        });
      }
      await attempt('turn alert mail off', async () => {
        const settings = await getJson<Record<string, unknown>>(admin, '/api/v1/settings/email');
        if (settings.enabled) {
          const { password_set: _set, updated_at: _at, updated_by: _by, ...form } = settings;
          await send(admin, 'put', '/api/v1/settings/email', { ...form, enabled: false });
        }
      });
      for (const username of [vmOperator, poolOperator]) {
        await attempt(`disable ${username}`, async () => {
          const users = await getJson<{ id: string; username: string }[]>(admin, '/api/v1/users');
          const user = users.find((candidate) => candidate.username === username);
          if (user) await send(admin, 'patch', `/api/v1/users/${user.id}`, { disabled: true });
        });
      }
    } finally {
      await stopSmtp(smtp);
      await admin.dispose();
    }
    expect(problems, 'clean-up').toEqual([]);
  });

  test('a VM operator is warned, may only cancel, and the VM stays stopped', async ({ page }, testInfo) => {
    const { vm, cluster, admin, capacityBefore, capacityAfter } = shared();
    await signIn(page, vmOperator, password);
    const badge = await openVm(page, vm);
    await expect(badge).toHaveText('stopped');
    await screenshot(page, testInfo, '01-vm-operator-vm-stopped');

    await page.getByRole('button', { name: 'Start', exact: true }).click();
    const { dialog, cancel, proceed, lower } = warning(page);
    await expect(dialog).toBeVisible();
    await expect(dialog).toContainText(explanation(vm, capacityAfter));
    await expect(dialog).toContainText(`${capacityBefore} → ${capacityAfter} host failures`);
    await expect(cancel).toBeVisible();
    await expect(proceed).toHaveCount(0);
    await expect(lower).toHaveCount(0);
    await expect(dialog.getByRole('button', { name: /proceed/i })).toHaveCount(0);
    // Why only Cancel, in a sentence on the dialog itself.
    await expect(
      dialog.getByText(
        'Your role (VM operator) cannot proceed past an overcommit warning or lower the host failure limit; only pool ' +
          'operators and pool admins can. You can only cancel, or ask one of them.',
      ),
    ).toBeVisible();
    await expect(dialog).not.toContainText('?overcommit=');
    await screenshot(page, testInfo, '02-vm-operator-warning');

    await cancel.click();
    await expect(dialog).toHaveCount(0);
    await expect(badge).toHaveText('stopped');
    expect(await vmState(admin, vm.id)).toBe('stopped');
    await screenshot(page, testInfo, '03-vm-operator-cancelled');

    // What the console withholds, the server refuses too.
    const refused = await page.request.post(`/api/v1/vms/${vm.id}/start?overcommit=proceed`, { headers: csrf });
    expect(refused.status()).toBe(403);
    expect((await refused.json()).message).toContain('vm-operator');
    expect(await vmState(admin, vm.id)).toBe('stopped');
    expect((await clusterPlan(admin, cluster.id)).report.overcommitted).toBe(false);
  });

  test('a pool admin sends alert mail for "pool overcommitted" to the SMTP server', async ({ page }, testInfo) => {
    const { smtp } = shared();
    await signIn(page, 'admin', adminPassword);
    await nav(page, 'Email settings').click();
    await expect(page.getByRole('heading', { level: 1, name: 'Email' })).toBeVisible();
    const form = page.locator('form.email-form');
    await expect(form).toBeVisible();
    await form.getByLabel('Send alert mail').check();
    await form.getByLabel('SMTP server', { exact: true }).fill('127.0.0.1');
    await form.getByLabel('Security', { exact: true }).selectOption({ label: 'None (plain text)' });
    await form.getByLabel('Port', { exact: true }).fill(String(smtp.port));
    await form.getByLabel('Username (empty: no authentication)').fill('');
    await form.getByLabel('From address', { exact: true }).fill(fromAddress);
    await form.getByLabel('Recipients (one per line)').fill(recipient);
    await form.getByLabel('All kinds, including kinds added later').uncheck();
    const kinds = form.locator('input[id^="email-kind-"]');
    expect(await kinds.count()).toBeGreaterThan(1);
    for (const box of await kinds.all()) {
      const id = await box.getAttribute('id');
      await box.setChecked(id === 'email-kind-pool-overcommitted');
    }
    await expect(form.locator('#email-kind-pool-overcommitted')).toBeChecked();
    await expect(form.locator('#email-kind-capacity-dropped')).not.toBeChecked();
    await screenshot(page, testInfo, '04-email-form');

    await form.getByRole('button', { name: 'Save', exact: true }).click();
    await expect(form.getByText('Saved. Alert mail is on.')).toBeVisible();

    await form.getByRole('button', { name: 'Send test email', exact: true }).click();
    await expect(form.getByText('Accepted by the SMTP server')).toBeVisible({ timeout: 30_000 });
    await expect.poll(() => receivedMails(smtp).length, { message: `no test mail arrived: ${smtp.log()}`, timeout: 30_000 }).toBeGreaterThanOrEqual(1);
    expect(receivedMails(smtp)[0].rcpt_tos).toEqual([recipient]);
    await screenshot(page, testInfo, '05-email-saved-and-tested');

    // The settings as stored.
    const stored = await getJson<{ enabled: boolean; host: string; port: number; security: string; alert_kinds: string[]; all_alert_kinds: boolean; recipients: string[] }>(
      page.request,
      '/api/v1/settings/email',
    );
    expect(stored).toMatchObject({
      enabled: true,
      host: '127.0.0.1',
      port: smtp.port,
      security: 'none',
      alert_kinds: ['pool-overcommitted'],
      all_alert_kinds: false,
      recipients: [recipient],
    });
  });

  test('a pool operator proceeds: the VM starts, the alert shows and its mail arrives', async ({ page }, testInfo) => {
    const { vm, cluster, admin, smtp, capacityBefore, capacityAfter } = shared();
    await signIn(page, poolOperator, password);
    const badge = await openVm(page, vm);
    await expect(badge).toHaveText('stopped');

    await page.getByRole('button', { name: 'Start', exact: true }).click();
    const { dialog, cancel, proceed, lower } = warning(page);
    await expect(dialog).toBeVisible();
    await expect(dialog).toContainText(explanation(vm, capacityAfter));
    await expect(dialog).toContainText(`${capacityBefore} → ${capacityAfter} host failures`);
    await expect(cancel).toBeVisible();
    await expect(proceed).toBeVisible();
    await expect(lower).toHaveText(`Lower the failure limit to ${capacityAfter} and proceed`);
    await expect(dialog).toContainText(`Proceeding anyway leaves ${clusterName} overcommitted`);
    await expect(dialog).not.toContainText('cannot proceed');
    await expect(dialog).not.toContainText('?overcommit=');
    await screenshot(page, testInfo, '06-pool-operator-warning');

    await proceed.click();
    await expect(dialog).toHaveCount(0);
    await expect.poll(() => vmState(admin, vm.id), { message: 'the server says the VM runs', timeout: 30_000 }).toBe('running');
    await expect(badge, 'the console shows it running (live, or after a reload)').toHaveText('running', { timeout: 15_000 });
    await screenshot(page, testInfo, '07-pool-operator-vm-running');

    // Proceeding left the limit alone: the cluster is overcommitted now.
    const after = await clusterPlan(admin, cluster.id);
    expect(after.report).toMatchObject({ max_failure_capacity: capacityAfter, failure_limit: testLimit, overcommitted: true });

    // The capacity reconciler raises the alert.
    let alert: AlertJson | undefined;
    await expect
      .poll(async () => {
        alert = (await openAlerts(admin, 'pool-overcommitted', cluster.id))[0];
        return alert !== undefined;
      }, { message: 'no pool-overcommitted alert', timeout: 30_000 })
      .toBe(true);
    expect(alert!.message).toContain(`cluster ${clusterName} is overcommitted`);

    await test.step('the alert is on the Alerts page', async () => {
      await nav(page, 'Alerts').click();
      await expect(page.getByRole('heading', { level: 1, name: 'Alerts' })).toBeVisible();
      const row = page.getByRole('table', { name: 'Alerts' }).getByRole('row').filter({ hasText: alert!.message });
      await expect(row).toHaveCount(1);
      await expect(row).toContainText('pool-overcommitted');
      await expect(row).toContainText(alert!.severity);
      await expect(row).toContainText(clusterName);
      await expect(row).toContainText('ongoing');
      await expect(row.getByRole('button', { name: `Acknowledge pool-overcommitted on ${clusterName}` })).toBeVisible();
      await screenshot(page, testInfo, '08-alerts-page');
    });

    await test.step('its mail reaches the SMTP server, once', async () => {
      const messageId = `<alert-${alert!.id}@parapet>`;
      await expect
        .poll(() => receivedMails(smtp).filter((mail) => mail.message_id === messageId).length, {
          message: `no mail for alert ${alert!.id}: ${smtp.log()}`,
          timeout: 60_000,
        })
        .toBe(1);
      const mail = receivedMails(smtp).find((candidate) => candidate.message_id === messageId)!;
      expect(mail.rcpt_tos).toEqual([recipient]);
      expect(mail.from).toContain(`parapet-${run}@e2e.test`);
      expect(mail.subject).toContain('pool-overcommitted');
      expect(mail.subject).toContain(clusterName);
      expect(mail.body).toContain(alert!.message);
      expect(mail.body).toContain(`cluster ${clusterName}`);
    });

    await test.step('no mail for a kind that was not chosen', async () => {
      // capacity-dropped is raised in the same evaluation; its mail would be queued as it is raised.
      await expect
        .poll(async () => (await openAlerts(admin, 'capacity-dropped', cluster.id)).length, { timeout: 30_000 })
        .toBeGreaterThan(0);
      const outbox = await getJson<OutboxJson[]>(admin, '/api/v1/settings/email/outbox?limit=500');
      expect(outbox.filter((mail) => mail.alert_kind !== 'pool-overcommitted')).toEqual([]);
      expect(receivedMails(smtp).filter((mail) => mail.subject.includes('capacity-dropped'))).toEqual([]);
    });
  });

  test('the audit log says who decided what', async ({ page }, testInfo) => {
    const { vm, admin } = shared();
    const startPath = `/vms/${vm.id}/start`;
    const entries = async (actor: string) =>
      (await getJson<AuditJson[]>(admin, `/api/v1/audit?actor=${encodeURIComponent(actor)}&target=${vm.id}`)).filter(
        (entry) => entry.action === 'POST /api/v1/vms/{id}/start',
      );

    const byVmOperator = await entries(vmOperator);
    expect(byVmOperator.filter((entry) => entry.status === 409), JSON.stringify(byVmOperator)).toHaveLength(1);
    expect(byVmOperator.find((entry) => entry.status === 409)!.detail).toMatch(/^refused: starting VM .* would overcommit cluster-a/);
    expect(byVmOperator.filter((entry) => entry.outcome === 'ok'), 'a VM operator never started it').toEqual([]);

    const byPoolOperator = await entries(poolOperator);
    const proceeded = byPoolOperator.filter((entry) => entry.outcome === 'ok');
    expect(proceeded, JSON.stringify(byPoolOperator)).toHaveLength(1);
    expect(proceeded[0].target).toContain(startPath);
    expect(proceeded[0].target).toContain('overcommit=proceed');
    expect(proceeded[0].detail).toMatch(/^overcommit=proceed: starting VM .*; cluster-a becomes overcommitted/);
    expect(byPoolOperator.filter((entry) => entry.status === 409)).toHaveLength(1);

    await signIn(page, 'admin', adminPassword);
    await nav(page, 'Audit log').click();
    await expect(page.getByRole('heading', { level: 1, name: 'Audit log' })).toBeVisible();
    await page.getByLabel('User', { exact: true }).fill(poolOperator);
    await page.getByRole('button', { name: 'Apply filters', exact: true }).click();
    const table = page.getByRole('table', { name: 'Audit log entries' });
    await expect(table.getByRole('row').filter({ hasText: 'overcommit=proceed: starting VM' })).toHaveCount(1);
    await expect(table.getByRole('row').filter({ hasText: 'becomes overcommitted' })).toContainText(poolOperator);
    await screenshot(page, testInfo, '09-audit-pool-operator');

    await page.getByLabel('User', { exact: true }).fill(vmOperator);
    await page.getByRole('button', { name: 'Apply filters', exact: true }).click();
    await expect(table.getByRole('row').filter({ hasText: 'would overcommit cluster-a' })).toHaveCount(1);
    await expect(table.getByRole('row').filter({ hasText: 'overcommit=proceed: starting VM' })).toHaveCount(0);
    await screenshot(page, testInfo, '10-audit-vm-operator');
  });
});
