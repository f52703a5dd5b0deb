// Roles, offerings and the VM lifecycle, end to end on `parapet demo`:
//   - a pool admin creates the accounts through the Users page;
//   - a pool operator creates an HA offering, deploys a VM onto a chosen host, stops and starts it, and
//     finds both in the audit log;
//   - a VM operator starts and stops a VM but gets neither the offering editor nor the host choice;
//   - a read-only user looks but cannot act (and the server refuses the call the console withholds).
// The tests share the accounts, so they run in order.
import { test, expect, type Page, type TestInfo, type Locator } from '@playwright/test';
import { adminPassword, csrf, nav, runId, screenshot, signIn, vmStateBadge, type VmJson } from '../support';

/** A suffix that keeps names unique if the suite runs twice against one server. */
const run = runId();
const password = `e2e-pass-${run}-long`;
const users = {
  operator: { name: `pool-op-${run}`, role: 'pool operator' },
  vmOperator: { name: `vm-op-${run}`, role: 'VM operator' },
  viewer: { name: `viewer-${run}`, role: 'read-only' },
};
const offeringName = `e2e-ha-${run}`;
const vmName = `e2e-vm-${run}`;
const targetHost = 'kvm-a2';

/** Picks the option of `select` whose text contains `text` (option texts carry extra facts). */
async function chooseOption(select: Locator, text: string) {
  const option = select.locator('option', { hasText: text }).first();
  await expect(option).toHaveCount(1);
  const value = await option.getAttribute('value');
  expect(value, `option "${text}" has no value`).toBeTruthy();
  await select.selectOption(value!);
}

/** A running VM of the demo pool (not the one this suite deploys). */
async function runningDemoVm(page: Page): Promise<VmJson> {
  const response = await page.request.get('/api/v1/vms');
  expect(response.ok()).toBeTruthy();
  const vms = (await response.json()) as VmJson[];
  const vm = vms.filter((v) => v.state === 'running' && !v.name.startsWith('e2e-')).sort((a, b) => a.name.localeCompare(b.name))[0];
  expect(vm, `no running demo VM: ${JSON.stringify(vms)}`).toBeTruthy();
  return vm;
}

async function stopAndStart(page: Page, testInfo: TestInfo, label: string) {
  const badge = page.locator('.page-header').locator(vmStateBadge).first();
  await expect(badge).toHaveText('running', { timeout: 30_000 });
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await expect(badge).toHaveText('stopped', { timeout: 30_000 });
  await screenshot(page, testInfo, `${label}-stopped`);
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await expect(badge).toHaveText('running', { timeout: 30_000 });
  await screenshot(page, testInfo, `${label}-running`);
}

test.describe.serial('roles and the VM lifecycle', () => {
  test('a pool admin creates accounts with roles on the Users page', async ({ page }, testInfo) => {
    await signIn(page, 'admin', adminPassword);
    await nav(page, 'Users').click();
    await expect(page.getByRole('heading', { level: 1, name: 'Users' })).toBeVisible();
    for (const user of Object.values(users)) {
      await page.getByRole('button', { name: 'New user', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'New user' });
      await dialog.getByLabel('Username', { exact: true }).fill(user.name);
      await dialog.getByLabel('Password', { exact: true }).fill(password);
      await dialog.getByLabel('Confirm password', { exact: true }).fill(password);
      await dialog.getByLabel('Role', { exact: true }).selectOption({ label: user.role });
      await dialog.getByRole('button', { name: 'Create user', exact: true }).click();
      await expect(dialog).toHaveCount(0);
      const row = page.getByRole('table', { name: 'Users' }).locator(`tr[data-user="${user.name}"]`);
      await expect(row).toContainText(user.role);
      await expect(row).toContainText('Enabled');
    }
    await screenshot(page, testInfo, '01-users');

    await test.step('a bad password is refused with a message naming the field', async () => {
      await page.getByRole('button', { name: 'New user', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'New user' });
      await dialog.getByLabel('Username', { exact: true }).fill(`short-${run}`);
      await dialog.getByLabel('Password', { exact: true }).fill('short');
      await dialog.getByLabel('Confirm password', { exact: true }).fill('short');
      await dialog.getByRole('button', { name: 'Create user', exact: true }).click();
      await expect(dialog.getByRole('alert')).toContainText('Password');
      await dialog.getByRole('button', { name: 'Close' }).click();
      await expect(page.getByRole('table', { name: 'Users' }).locator(`tr[data-user="short-${run}"]`)).toHaveCount(0);
    });
  });

  test('a pool operator creates an HA offering, deploys onto a chosen host, stops and starts it', async ({
    page,
  }, testInfo) => {
    await signIn(page, users.operator.name, password);

    await test.step('create an HA offering', async () => {
      await nav(page, 'Offerings').click();
      await expect(page.getByRole('heading', { level: 1, name: 'Compute offerings' })).toBeVisible();
      await page.getByRole('button', { name: 'New offering', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'New offering' });
      await dialog.getByLabel('Name', { exact: true }).fill(offeringName);
      await dialog.getByLabel('Description', { exact: true }).fill('end-to-end HA offering');
      await dialog.getByLabel('CPU cores', { exact: true }).fill('1');
      await dialog.getByLabel('CPU speed (MHz)', { exact: true }).fill('500');
      await dialog.getByLabel('Memory (MB)', { exact: true }).fill('512');
      await dialog.getByLabel('Offer HA', { exact: true }).check();
      await dialog.getByRole('button', { name: 'Create offering', exact: true }).click();
      await expect(dialog).toHaveCount(0);
      const row = page.getByRole('table', { name: 'Compute offerings' }).getByRole('row').filter({ hasText: offeringName });
      await expect(row).toHaveCount(1);
      await expect(row).toContainText('1 × 500 MHz');
      await expect(row).toContainText('HA');
      await screenshot(page, testInfo, '02-offering');
    });

    await test.step(`deploy ${vmName} onto ${targetHost}`, async () => {
      await nav(page, 'VMs').click();
      await page.getByRole('button', { name: 'Deploy VM', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Deploy a VM' });
      await dialog.getByLabel('Name', { exact: true }).fill(vmName);
      await chooseOption(dialog.getByLabel('Offering', { exact: true }), offeringName);
      await chooseOption(dialog.getByLabel('Template', { exact: true }), 'debian-12');
      await chooseOption(dialog.getByLabel('Cluster', { exact: true }), 'cluster-a');
      await chooseOption(dialog.getByLabel('Host', { exact: true }), targetHost);
      await screenshot(page, testInfo, '03-deploy-dialog');
      await dialog.getByRole('button', { name: 'Deploy', exact: true }).click();
      await expect(page.getByRole('heading', { level: 1, name: vmName, exact: true })).toBeVisible();
      await expect(page.getByRole('link', { name: targetHost, exact: true })).toBeVisible();
    });

    await test.step('stop and start it', async () => {
      await stopAndStart(page, testInfo, '04-deployed');
    });

    await test.step('the audit log names who did it', async () => {
      await nav(page, 'Audit log').click();
      await expect(page.getByRole('heading', { level: 1, name: 'Audit log' })).toBeVisible();
      await page.getByLabel('User', { exact: true }).fill(users.operator.name);
      await page.getByRole('button', { name: 'Apply filters', exact: true }).click();
      const entries = page.getByRole('table', { name: 'Audit log entries' });
      await expect(entries.getByRole('row').filter({ hasText: 'POST /api/v1/offerings' })).toHaveCount(1);
      await expect(entries.getByRole('row').filter({ hasText: 'POST /api/v1/vms' }).first()).toBeVisible();
      await expect(entries.getByRole('row').filter({ hasText: 'admin' })).toHaveCount(0);
      await screenshot(page, testInfo, '05-audit');
    });
  });

  test('a VM operator starts and stops VMs but gets no offering editor and no host choice', async ({
    page,
  }, testInfo) => {
    await signIn(page, users.vmOperator.name, password);

    await nav(page, 'Offerings').click();
    await expect(page.getByRole('table', { name: 'Compute offerings' }).getByRole('row').filter({ hasText: offeringName })).toHaveCount(1);
    await expect(page.getByRole('button', { name: 'New offering' })).toHaveCount(0);
    await expect(page.getByRole('button', { name: `Edit ${offeringName}` })).toHaveCount(0);
    const why = page.getByText("Why can't I create or change offerings?");
    await why.click();
    // The console names the role as people say it (the server's own messages keep `vm-operator`).
    await expect(page.getByText('Your role (VM operator)')).toBeVisible();
    await screenshot(page, testInfo, '06-vm-operator-offerings');

    await nav(page, 'VMs').click();
    await page.getByRole('button', { name: 'Deploy VM', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Deploy a VM' });
    await expect(dialog.getByLabel('Offering', { exact: true })).toBeVisible();
    await expect(dialog.getByRole('combobox', { name: 'Host' })).toHaveCount(0);
    await expect(dialog.getByText("Why can't I choose the host?")).toBeVisible();
    await screenshot(page, testInfo, '07-vm-operator-deploy');
    await dialog.getByRole('button', { name: 'Close' }).click();

    const vm = await runningDemoVm(page);
    await page.goto(`/vms/${vm.id}`);
    await expect(page.getByRole('heading', { level: 1, name: vm.name, exact: true })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Migrate' })).toHaveCount(0);
    await expect(page.getByRole('button', { name: 'Save HA settings' })).toHaveCount(0);
    await stopAndStart(page, testInfo, '08-vm-operator');
    await expect(nav(page, 'Users')).toHaveCount(0);
  });

  test('a read-only user can look but not act', async ({ page }, testInfo) => {
    await signIn(page, users.viewer.name, password);
    await nav(page, 'VMs').click();
    await expect(page.getByRole('heading', { level: 1, name: 'Virtual machines' })).toBeVisible();
    await expect(page.getByRole('link', { name: vmName, exact: true })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Deploy VM' })).toHaveCount(0);
    await expect(page.getByText("Why can't I deploy VMs?")).toBeVisible();
    for (const button of await page.getByRole('button', { name: /^(Start|Stop) / }).all()) {
      await expect(button).toBeDisabled();
    }

    const vm = await runningDemoVm(page);
    await page.goto(`/vms/${vm.id}`);
    await expect(page.getByRole('heading', { level: 1, name: vm.name, exact: true })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Stop', exact: true })).toBeDisabled();
    await expect(page.getByRole('button', { name: 'Restart', exact: true })).toBeDisabled();
    await expect(page.getByLabel('Restart priority')).toBeDisabled();
    await screenshot(page, testInfo, '09-read-only-vm');

    // What the console withholds, the server refuses too.
    const refused = await page.request.post(`/api/v1/vms/${vm.id}/stop`, { headers: csrf });
    expect(refused.status()).toBe(403);
    expect((await refused.json()).message).toContain('read-only');

    await expect(nav(page, 'Users')).toHaveCount(0);
    await expect(nav(page, 'Audit log')).toHaveCount(0);
    await nav(page, 'Offerings').click();
    await expect(page.getByRole('button', { name: 'New offering' })).toHaveCount(0);
  });
});
