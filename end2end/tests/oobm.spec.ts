// Out-of-band management in the console, end to end on `parapet demo` (issue #4, point 7): every
// simulated host has a Redfish BMC, configured by the demo and switched on at zone, cluster and host.
// On kvm-b3 (cluster-b; the other specs work in cluster-a), a pool admin
//   - sees the host's power badge "on" in the hosts list and on the host page;
//   - opens "Configure out-of-band management": the stored password is never shown, "Test connection"
//     works, a closed port is reported unreachable, and Cancel stores nothing;
//   - powers the host OFF (the confirmation names the host and its running VMs) and sees the badge
//     and the agent's connection change live, then powers it ON and sees it come back;
//   - switches the host's OOBM off (power actions withheld, with the reason) and on again.
// Read-only and VM-operator users see the badge but get neither the buttons nor the API call.
// The host is left powered on with OOBM enabled (an afterAll puts it back if a step failed).
import * as net from 'node:net';
import {
  test,
  expect,
  request as playwrightRequest,
  type APIRequestContext,
  type Locator,
  type Page,
  type TestInfo,
} from '@playwright/test';
import { adminPassword, baseURL, csrf, getJson, runId, screenshot, signIn } from '../support';

const hostName = 'kvm-b3';
/** A suffix that keeps names unique if the suite runs twice against one server. */
const run = runId();
const userPassword = `e2e-oobm-${run}-long`;

/** The host's power goes off and comes back, and its agent registers again: allow a reboot. */
const reboot = { timeout: 60_000 };

type HostJson = { id: string; name: string; connection: string; power_state: string };
type VmJson = { id: string; name: string; host_id: string | null; state: string };
type HostOobmJson = {
  host_id: string;
  driver: string;
  address: string;
  port: number;
  username: string;
  password_set: boolean;
  redfish_https: boolean;
  redfish_auth: string;
  redfish_system_id: string | null;
  enabled: boolean;
  enabled_effective: boolean;
  power_state: string;
};

function hostsNavLink(page: Page) {
  return page.getByRole('navigation').getByRole('link', { name: 'Hosts', exact: true }).first();
}

async function findHost(request: APIRequestContext): Promise<HostJson> {
  const hosts = await getJson<HostJson[]>(request, '/api/v1/hosts');
  const host = hosts.find((h) => h.name === hostName);
  expect(host, `no host ${hostName} in ${JSON.stringify(hosts.map((h) => h.name))}`).toBeTruthy();
  return host!;
}

/** GET the host's BMC configuration, checking that the answer never carries a password. */
async function getOobm(request: APIRequestContext, hostId: string): Promise<HostOobmJson> {
  const response = await request.get(`/api/v1/hosts/${hostId}/oobm`);
  const text = await response.text();
  expect(response.ok(), `GET oobm: ${response.status()} ${text}`).toBeTruthy();
  const body = JSON.parse(text) as Record<string, unknown>;
  const passwordKeys = Object.keys(body).filter((key) => /pass/i.test(key));
  expect(passwordKeys, 'the only password field of the answer is password_set').toEqual(['password_set']);
  expect(typeof body.password_set).toBe('boolean');
  return body as unknown as HostOobmJson;
}

/** A TCP port on 127.0.0.1 that nothing listens on: bound by the system, then released. */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error(`unexpected address ${String(address)}`));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** The host page's parts this spec looks at. */
function hostPage(page: Page) {
  const panel = page.getByRole('region', { name: 'Out-of-band management' });
  const titleRow = page.locator('.title-row');
  return {
    panel,
    titlePower: titleRow.locator('[data-power-state]'),
    panelPower: panel.locator('.oobm-power [data-power-state]'),
    connection: titleRow.locator('[data-state="connected"], [data-state="disconnected"]'),
    configureButton: panel.getByRole('button', { name: 'Configure out-of-band management', exact: true }),
    powerButton: panel.getByRole('button', { name: 'Issue power action', exact: true }),
    passwordButton: panel.getByRole('button', { name: 'Change BMC password', exact: true }),
    hostSwitch: panel.getByRole('switch', { name: `Out-of-band management of host ${hostName}` }),
  };
}

async function expectPower(badges: Locator[], state: string, options?: { timeout: number }) {
  for (const badge of badges) {
    await expect(badge).toHaveAttribute('data-power-state', state, options);
  }
}

/** Checks the hosts list's power badge of the host ("on"); answers how to open the host's page. */
async function openHostFromList(page: Page) {
  await hostsNavLink(page).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Hosts' })).toBeVisible();
  const row = page
    .getByRole('table', { name: 'Hosts' })
    .getByRole('row')
    .filter({ has: page.getByRole('link', { name: hostName, exact: true }) });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText('cluster-b');
  const badge = row.locator('[data-power-state]');
  await expect(badge).toHaveAttribute('data-power-state', 'on');
  await expect(badge).toHaveText('On');
  return async () => {
    await row.getByRole('link', { name: hostName, exact: true }).click();
    await expect(page.getByRole('heading', { level: 1, name: hostName, exact: true })).toBeVisible();
  };
}

async function powerAction(request: APIRequestContext, hostId: string, action: string) {
  return request.post(`/api/v1/hosts/${hostId}/oobm/power`, { headers: csrf, data: { action } });
}

test.describe.serial('out-of-band management console', () => {
  test.afterAll(async () => {
    // Whatever happened above, the other specs get kvm-b3 powered on with OOBM enabled.
    const admin = await playwrightRequest.newContext({ baseURL });
    try {
      const login = await admin.post('/api/v1/auth/login', {
        headers: csrf,
        data: { username: 'admin', password: adminPassword },
      });
      if (!login.ok()) return;
      const host = await findHost(admin);
      const oobm = await getOobm(admin, host.id);
      if (!oobm.enabled) {
        await admin.put(`/api/v1/hosts/${host.id}/oobm/enabled`, { headers: csrf, data: { enabled: true } });
      }
      if (host.power_state !== 'on' || host.connection === 'disconnected') {
        await powerAction(admin, host.id, 'ON');
      }
    } finally {
      await admin.dispose();
    }
  });

  test('a pool admin configures, tests, powers off and on, and switches OOBM of a host', async ({
    page,
  }, testInfo) => {
    test.setTimeout(4 * 60_000);
    // A panic in the console's wasm stops every handler: report it instead of a mysterious timeout.
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
    await signIn(page, 'admin', adminPassword);
    const host = await findHost(page.request);
    const stored = await getOobm(page.request, host.id);
    expect(stored.driver).toBe('redfish');
    expect(stored.password_set).toBe(true);
    expect(stored.enabled_effective).toBe(true);
    const view = hostPage(page);

    await test.step('1. the power badge says on, in the hosts list and on the host page', async () => {
      const open = await openHostFromList(page);
      await screenshot(page, testInfo, '01-hosts-list-power-on');
      await open();
      await expectPower([view.titlePower, view.panelPower], 'on');
      await expect(view.connection).toHaveAttribute('data-state', 'connected');
      await expect(view.hostSwitch).toHaveAttribute('aria-checked', 'true');
      await expect(view.panel).toContainText(`http://${stored.address}:${stored.port}`);
      await expect(view.panel).toContainText('Set (never shown)');
      await screenshot(page, testInfo, '02-host-power-on');
    });

    // Marks this document: if the page reloaded, the mark would be gone.
    await page.evaluate(() => ((window as unknown as Record<string, unknown>).parapetNoReload = true));

    await test.step('2. configure dialog: password hidden, test works, a closed port is unreachable, cancel keeps all', async () => {
      await view.configureButton.click();
      const dialog = page.getByRole('dialog', { name: `Configure out-of-band management for ${hostName}` });
      await expect(dialog).toBeVisible();
      const password = dialog.getByLabel('Password', { exact: true });
      const port = dialog.getByLabel('Port', { exact: true });
      await expect(password).toHaveAttribute('type', 'password');
      await expect(password).toHaveValue('');
      await expect(password).toHaveAttribute('placeholder', '(stored password)');
      await expect(dialog).toContainText('A password is stored; it is never shown.');
      await expect(dialog.getByLabel('Address', { exact: true })).toHaveValue(stored.address);
      await expect(port).toHaveValue(String(stored.port));
      await expect(dialog.getByLabel('Username', { exact: true })).toHaveValue(stored.username);
      await screenshot(page, testInfo, '03-configure-dialog');

      const testButton = dialog.getByRole('button', { name: 'Test connection' });
      const result = dialog.locator('.oobm-test-result');
      await testButton.click();
      await expect(result).toHaveClass(/oobm-test-ok/, { timeout: 20_000 });
      await expect(result).toContainText('Connection works: the BMC reports power On');
      await expect(password).toHaveValue('');
      await result.scrollIntoViewIfNeeded();
      await screenshot(page, testInfo, '04-test-connection-ok');

      const closed = await closedPort();
      await port.fill(String(closed));
      await testButton.click();
      await expect(result).toHaveClass(/oobm-test-failed/, { timeout: 20_000 });
      await expect(result).toContainText('Connection failed. The BMC is unreachable');
      await expect(result).not.toContainText('Connection works');
      await expect(password).toHaveValue('');
      await result.scrollIntoViewIfNeeded();
      await screenshot(page, testInfo, '05-test-connection-unreachable');

      await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
      await expect(dialog).toHaveCount(0);
      const after = await getOobm(page.request, host.id);
      expect(after.port, 'Cancel must not store the port that was only tested').toBe(stored.port);
      expect(after.port).not.toBe(closed);
      expect(after).toMatchObject({
        driver: stored.driver,
        address: stored.address,
        port: stored.port,
        username: stored.username,
        password_set: true,
        redfish_https: stored.redfish_https,
        redfish_auth: stored.redfish_auth,
        redfish_system_id: stored.redfish_system_id,
        enabled: true,
      });
      await expect(view.panel).toContainText(`http://${stored.address}:${stored.port}`);
      await screenshot(page, testInfo, '06-configure-cancelled');
    });

    await test.step('3a. power OFF: the confirmation names the host and its VMs; the badge goes off live', async () => {
      const vms = await getJson<VmJson[]>(page.request, '/api/v1/vms');
      const running = vms
        .filter((vm) => vm.host_id === host.id && vm.state === 'running')
        .map((vm) => vm.name)
        .sort();
      expect(running.length, `no running VM on ${hostName}: ${JSON.stringify(vms)}`).toBeGreaterThan(0);

      await view.powerButton.click();
      const dialog = page.getByRole('dialog', { name: `Issue power action on ${hostName}` });
      await expect(dialog).toBeVisible();
      await dialog.getByRole('radio', { name: 'OFF', exact: true }).check();
      await dialog.getByRole('button', { name: 'Continue', exact: true }).click();
      const warning = dialog.getByRole('alert');
      await expect(warning).toContainText(`OFF ${hostName}: the host loses its power at once and stays off.`);
      const list = dialog.getByRole('list', { name: `VMs running on ${hostName}` });
      await expect(list.getByRole('listitem')).toHaveCount(running.length);
      for (const name of running) {
        await expect(list.getByRole('listitem').filter({ hasText: name })).toHaveCount(1);
      }
      await screenshot(page, testInfo, '07-power-off-confirmation');

      await dialog.getByRole('button', { name: `Power off ${hostName}`, exact: true }).click();
      await expect(dialog.getByRole('status')).toContainText(`OFF on ${hostName}: accepted by the BMC`, {
        timeout: 20_000,
      });
      await screenshot(page, testInfo, '08-power-off-done');
      await dialog.locator('.dialog-actions').getByRole('button', { name: 'Close', exact: true }).click();
      await expect(dialog, `console errors: ${pageErrors.join(' | ')}`).toHaveCount(0);

      await expectPower([view.titlePower, view.panelPower], 'off', reboot);
      await expect(view.connection).toHaveAttribute('data-state', 'disconnected', reboot);
      await screenshot(page, testInfo, '09-host-off-disconnected');
    });

    await test.step('3b. power ON: the badge returns to on and the agent reconnects', async () => {
      await view.powerButton.click();
      const dialog = page.getByRole('dialog', { name: `Issue power action on ${hostName}` });
      await dialog.getByRole('radio', { name: 'ON', exact: true }).check();
      await dialog.getByRole('button', { name: 'Issue ON', exact: true }).click();
      await expect(dialog.getByRole('status')).toContainText(`ON on ${hostName}: accepted by the BMC`, {
        timeout: 20_000,
      });
      await screenshot(page, testInfo, '10-power-on-done');
      await dialog.locator('.dialog-actions').getByRole('button', { name: 'Close', exact: true }).click();
      await expect(dialog).toHaveCount(0);

      await expectPower([view.titlePower, view.panelPower], 'on', reboot);
      await expect(view.connection).toHaveAttribute('data-state', 'connected', reboot);
      await screenshot(page, testInfo, '11-host-on-connected');
    });

    await test.step('4. the host switch off withholds power actions and says why; on again', async () => {
      await view.hostSwitch.click();
      await expect(view.hostSwitch).toHaveAttribute('aria-checked', 'false');
      await expectPower([view.titlePower, view.panelPower], 'disabled');
      await expect(view.panel.locator('.oobm-not-in-effect')).toHaveText(
        `Not in effect: out-of-band management is off for host ${hostName}.`,
      );
      await expect(view.powerButton).toHaveCount(0);
      const whyNot = view.panel.getByText("Why can't I issue a power action?", { exact: true });
      await whyNot.click();
      await expect(view.panel.getByText('Power actions need out-of-band management in effect')).toBeVisible();
      const oobm = await getOobm(page.request, host.id);
      expect([oobm.enabled, oobm.enabled_effective]).toEqual([false, false]);
      const refused = await powerAction(page.request, host.id, 'STATUS');
      expect(refused.status(), await refused.text()).toBe(409);
      await screenshot(page, testInfo, '12-oobm-switched-off');

      await view.hostSwitch.click();
      await expect(view.hostSwitch).toHaveAttribute('aria-checked', 'true');
      await expectPower([view.titlePower, view.panelPower], 'on', { timeout: 30_000 });
      await expect(view.panel.locator('.oobm-not-in-effect')).toHaveCount(0);
      await expect(view.powerButton).toBeVisible();
      await screenshot(page, testInfo, '13-oobm-switched-on');
    });

    expect(
      await page.evaluate(() => (window as unknown as Record<string, unknown>).parapetNoReload),
      'the page reloaded instead of updating live',
    ).toBe(true);

    expect(pageErrors.filter((text) => /panicked|unreachable/.test(text)), 'the console panicked').toEqual([]);
    const end = await getOobm(page.request, host.id);
    expect([end.enabled, end.enabled_effective, end.power_state]).toEqual([true, true, 'on']);
  });

  for (const [role, label] of [
    ['read-only', 'read-only'],
    ['vm-operator', 'VM operator'],
  ] as const) {
    test(`a ${label} user sees the power badge but cannot configure or power the host`, async ({
      page,
      browser,
    }, testInfo) => {
      const username = `oobm-${role}-${run}`;
      await signIn(page, 'admin', adminPassword);
      const created = await page.request.post('/api/v1/users', {
        headers: csrf,
        data: { username, password: userPassword, role },
      });
      expect(created.status(), await created.text()).toBe(201);
      const host = await findHost(page.request);

      const context = await browser.newContext({ baseURL });
      try {
        const userPage = await context.newPage();
        await signIn(userPage, username, userPassword);
        const open = await openHostFromList(userPage);
        await screenshot(userPage, testInfo, `01-${role}-hosts-list`);
        await open();
        const view = hostPage(userPage);
        await expectPower([view.titlePower, view.panelPower], 'on');
        await expect(view.panel).toBeVisible();
        await expect(view.configureButton).toHaveCount(0);
        await expect(view.powerButton).toHaveCount(0);
        await expect(view.passwordButton).toHaveCount(0);
        await expect(view.hostSwitch).toHaveCount(0);
        await view.panel
          .getByText("Why can't I configure out-of-band management or issue power actions?", { exact: true })
          .click();
        await expect(view.panel).toContainText(`Your role (${label}) cannot configure out-of-band management`);
        await screenshot(userPage, testInfo, `02-${role}-host-page`);

        // The console withholds the action; the server refuses it too.
        const refused = await powerAction(context.request, host.id, 'OFF');
        expect(refused.status(), await refused.text()).toBe(403);
        const oobm = await getOobm(context.request, host.id);
        expect(oobm.power_state).toBe('on');
        await expect(view.titlePower).toHaveAttribute('data-power-state', 'on');
      } finally {
        await context.close();
      }
    });
  }
});
