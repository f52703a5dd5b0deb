// The foundation's user tasks, end to end: sign in, see the demo pool's hosts, open one, and watch a VM's
// state change arrive live (pushed by the server, no reload) when it is stopped and started from outside
// the page. Runs against `parapet demo` (six simulated hosts in two clusters, seeded VMs running).
import { test, expect, type APIRequestContext, type Page, type TestInfo } from '@playwright/test';

const adminPassword = process.env.PARAPET_ADMIN_PASSWORD ?? '';

/** The demo pool: cluster name -> host names. */
const demoPool: Record<string, string[]> = {
  'cluster-a': ['kvm-a1', 'kvm-a2', 'kvm-a3'],
  'cluster-b': ['kvm-b1', 'kvm-b2', 'kvm-b3'],
};

/** Mutating API calls must carry this header (CSRF defence; see api::v1::CSRF_HEADER). */
const csrf = { 'x-parapet-csrf': '1' };

type HostJson = { id: string; name: string };
type VmJson = { id: string; name: string; host_id: string | null; state: string };

async function screenshot(page: Page, testInfo: TestInfo, name: string) {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
}

async function openLoginPage(page: Page) {
  await page.goto('/');
  await expect(page.getByLabel('Username')).toBeVisible();
}

async function signIn(page: Page, username: string, password: string) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The navigation's "Hosts" link (only there once signed in). */
function hostsNavLink(page: Page) {
  return page.getByRole('navigation').getByRole('link', { name: 'Hosts', exact: true }).first();
}

/** A VM's state badge: the `[data-state]` element holding a VM state (other badges, such as the HA
 * flag's on/off, carry data-state too). */
const vmStateBadge = ['stopped', 'starting', 'running', 'stopping', 'unknown', 'error']
  .map((state) => `[data-state="${state}"]`)
  .join(', ');

/** GET a JSON list from the API, accepting a bare array or an object wrapping one. */
async function getList<T>(request: APIRequestContext, path: string, key: string): Promise<T[]> {
  const response = await request.get(path);
  expect(response.ok(), `GET ${path}: ${response.status()} ${await response.text()}`).toBeTruthy();
  const body = await response.json();
  const list = Array.isArray(body) ? body : body[key] ?? body.items;
  expect(Array.isArray(list), `GET ${path} returned no list: ${JSON.stringify(body)}`).toBeTruthy();
  return list as T[];
}

async function vmAction(request: APIRequestContext, vm: VmJson, action: 'stop' | 'start') {
  const response = await request.post(`/api/v1/vms/${vm.id}/${action}`, { headers: csrf });
  expect(response.ok(), `${action} ${vm.name}: ${response.status()} ${await response.text()}`).toBeTruthy();
}

test('an admin signs in, sees the pool, opens a host and watches a VM stop and start live', async ({
  page,
}, testInfo) => {
  await test.step('sign in', async () => {
    await openLoginPage(page);
    await screenshot(page, testInfo, '01-login');
    await signIn(page, 'admin', adminPassword);
    await expect(hostsNavLink(page)).toBeVisible();
    await screenshot(page, testInfo, '02-signed-in');
  });

  await test.step('see the demo pool\'s six hosts', async () => {
    await hostsNavLink(page).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Hosts' })).toBeVisible();
    const table = page.getByRole('table').filter({ has: page.getByRole('link', { name: 'kvm-a1', exact: true }) });
    for (const [cluster, hosts] of Object.entries(demoPool)) {
      for (const host of hosts) {
        const row = table.getByRole('row').filter({ has: page.getByRole('link', { name: host, exact: true }) });
        await expect(row).toHaveCount(1);
        await expect(row).toContainText(cluster);
      }
    }
    await expect(table.getByRole('link', { name: /^kvm-/ })).toHaveCount(6);
    await screenshot(page, testInfo, '03-hosts');
  });

  // The API shares the page's session cookie, so it is "another client of the same user".
  const hosts = await getList<HostJson>(page.request, '/api/v1/hosts', 'hosts');
  const vms = await getList<VmJson>(page.request, '/api/v1/vms', 'vms');
  const byName = [...hosts].sort((a, b) => a.name.localeCompare(b.name));
  const host = byName.find((h) => vms.some((vm) => vm.host_id === h.id && vm.state === 'running'));
  expect(host, `no host with a running VM; VMs: ${JSON.stringify(vms)}`).toBeTruthy();
  const vm = vms
    .filter((v) => v.host_id === host!.id && v.state === 'running')
    .sort((a, b) => a.name.localeCompare(b.name))[0];

  const vmTable = page.getByRole('table', { name: 'Virtual machines on this host' });
  const vmRow = vmTable.getByRole('row').filter({ has: page.getByText(vm.name, { exact: true }) });
  const badge = vmRow.locator(vmStateBadge);

  await test.step(`open host ${host!.name}`, async () => {
    await page.getByRole('link', { name: host!.name, exact: true }).click();
    await expect(page.getByRole('heading', { level: 1, name: host!.name, exact: true })).toBeVisible();
    await expect(vmRow).toHaveCount(1);
    await expect(badge).toHaveText('running');
    await expect(badge).toHaveAttribute('data-state', 'running');
    await screenshot(page, testInfo, '04-host');
  });

  // Marks this document: if the page reloaded, the mark would be gone.
  await page.evaluate(() => ((window as unknown as Record<string, unknown>).parapetNoReload = true));

  await test.step(`stop ${vm.name} from outside the page and see it live`, async () => {
    await vmAction(page.request, vm, 'stop');
    await expect(badge).toHaveText('stopped', { timeout: 30_000 });
    await expect(badge).toHaveAttribute('data-state', 'stopped');
    await screenshot(page, testInfo, '05-vm-stopped');
  });

  await test.step(`start ${vm.name} again and see it live`, async () => {
    await vmAction(page.request, vm, 'start');
    await expect(badge).toHaveText('running', { timeout: 30_000 });
    await expect(badge).toHaveAttribute('data-state', 'running');
    await screenshot(page, testInfo, '06-vm-running-again');
  });

  expect(
    await page.evaluate(() => (window as unknown as Record<string, unknown>).parapetNoReload),
    'the page reloaded instead of updating live',
  ).toBe(true);
});

test('a wrong password shows an error and stays on the login page', async ({ page }, testInfo) => {
  await openLoginPage(page);
  await signIn(page, 'admin', `${adminPassword}-wrong`);
  await expect(page.getByRole('alert')).toBeVisible();
  await expect(page.getByRole('alert')).not.toBeEmpty();
  await expect(page.getByLabel('Username')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await expect(hostsNavLink(page)).toHaveCount(0);
  await screenshot(page, testInfo, '01-wrong-password');
});
