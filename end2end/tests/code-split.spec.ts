// The console's code arrives in parts (app/src/routes.rs, docs/console-size.md): the main module (login,
// frame, infrastructure view) first; the four page groups once signed in; the Korean texts only when
// Korean is chosen. This spec checks that order in the browser, prints what each part weighs on the
// wire, and checks that a group that cannot be downloaded is reported on its page and is fetched again
// once the network is back. It changes nothing in the pool; the admin's language is put back.
import { test, expect, type Browser, type Page } from '@playwright/test';
import { adminPassword, csrf, nav, screenshot, signIn } from '../support';

type Fetched = { name: string; wire: number };

const GROUPS = ['split_inventory.wasm', 'split_ha.wasm', 'split_wizard.wasm', 'split_admin.wasm'];

/** Records every wasm file the page fetches under /pkg/, with its bytes on the wire (gzip). */
function recordModules(page: Page): Fetched[] {
  const fetched: Fetched[] = [];
  page.on('requestfinished', async (request) => {
    const path = new URL(request.url()).pathname;
    if (!path.startsWith('/pkg/') || !path.endsWith('.wasm')) return;
    const sizes = await request.sizes();
    fetched.push({ name: path.slice('/pkg/'.length), wire: sizes.responseBodySize });
  });
  return fetched;
}

const names = (fetched: Fetched[]) => fetched.map((file) => file.name).sort();
const kilobytes = (files: Fetched[]) => `${Math.ceil(files.reduce((sum, file) => sum + file.wire, 0) / 1000)} KB`;

test.describe('the console loads its code in parts', () => {
  test('the first page needs only the main module; the page groups follow sign-in; Korean only when chosen', async ({
    page,
  }, testInfo) => {
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    const fetched = recordModules(page);

    await page.goto('/login');
    await expect(page.getByLabel('Username')).toBeVisible();
    await page.waitForLoadState('networkidle');
    expect(names(fetched), 'the login page needs the main module alone').toEqual(['app_bg.wasm']);
    const main = [...fetched];

    // Signed in on this very page (signIn() would load the console again).
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(adminPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Infrastructure' })).toBeVisible();
    await screenshot(page, testInfo, '01-infrastructure');

    // The frame preloads every group (and the chunks they share) once it is up.
    await expect
      .poll(() => GROUPS.filter((group) => !names(fetched).includes(group)), { timeout: 20_000 })
      .toEqual([]);
    await page.waitForLoadState('networkidle');
    const afterSignIn = [...fetched];
    expect(names(afterSignIn), 'no Korean texts for an English console').not.toContain('split_korean.wasm');
    const counts = new Map<string, number>();
    for (const file of afterSignIn) counts.set(file.name, (counts.get(file.name) ?? 0) + 1);
    expect([...counts].filter(([, count]) => count > 1), 'each file is fetched once').toEqual([]);

    // Korean, chosen in the top bar: its module arrives, then the console speaks it.
    await page.locator('#topbar-language').selectOption('ko');
    await expect(nav(page, '호스트')).toBeVisible();
    expect(names(fetched)).toContain('split_korean.wasm');
    const korean = fetched.filter((file) => file.name === 'split_korean.wasm');
    await screenshot(page, testInfo, '02-korean');
    await page.locator('#topbar-language').selectOption('en');
    await expect(nav(page, 'Hosts')).toBeVisible();

    const groups = afterSignIn.filter((file) => file.name.startsWith('split_'));
    const chunks = afterSignIn.filter((file) => file.name.startsWith('chunk_'));
    console.log(
      `figure: console download on the wire: main module ${kilobytes(main)} (all the login page and the ` +
        `infrastructure view need); after sign-in ${groups.length} page groups ${kilobytes(groups)} + ` +
        `${chunks.length} shared chunks ${kilobytes(chunks)}; Korean texts ${kilobytes(korean)}`,
    );
    for (const file of afterSignIn) console.log(`  ${file.name}: ${file.wire} bytes`);
    expect(pageErrors, 'no errors in the page').toEqual([]);
  });

  test('a page whose code cannot be downloaded says so, and opens once the network is back', async ({
    page,
  }, testInfo) => {
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    const blocked = '**/pkg/split_admin.wasm';
    let refused = 0;
    await page.route(blocked, (route) => {
      refused += 1;
      return route.abort('internetdisconnected');
    });

    await signIn(page);
    await nav(page, 'Users').click();
    await expect(page.getByRole('alert').getByRole('heading', { name: 'This page could not be loaded' })).toBeVisible();
    expect(refused, 'the admin group was requested and refused').toBeGreaterThan(0);
    await screenshot(page, testInfo, '01-not-loaded');

    // The network is back: the next page of the same group fetches the module again, and opens.
    await page.unroute(blocked);
    await nav(page, 'Audit log').click();
    await expect(page.getByRole('heading', { level: 1, name: 'Audit log' })).toBeVisible();
    await nav(page, 'Users').click();
    await expect(page.getByRole('heading', { level: 1, name: 'Users' })).toBeVisible();
    await expect(page.getByText('This page could not be loaded')).toHaveCount(0);
    await screenshot(page, testInfo, '02-loaded');
    expect(pageErrors, 'no errors in the page').toEqual([]);
  });

  test('figures: opening the console over a slow link (80 ms, 10 Mbit/s), with an empty cache', async ({
    browser,
  }) => {
    // Milliseconds from navigation to the page's heading, in a fresh browser context (nothing cached)
    // whose network Chromium slows down. Figures only: nothing here is asserted about time.
    async function open(browser: Browser, path: string, heading: string, signedIn: boolean) {
      const context = await browser.newContext();
      const page = await context.newPage();
      if (signedIn) {
        const login = await page.request.post('/api/v1/auth/login', {
          headers: csrf,
          data: { username: 'admin', password: adminPassword },
        });
        expect(login.ok(), `sign-in: ${login.status()}`).toBeTruthy();
      }
      const requested: string[] = [];
      page.on('request', (request) => {
        if (request.url().endsWith('.wasm')) requested.push(request.url());
      });
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 80,
        downloadThroughput: (10 * 1000 * 1000) / 8,
        uploadThroughput: (10 * 1000 * 1000) / 8,
      });
      const started = Date.now();
      await page.goto(path);
      await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible({ timeout: 30_000 });
      const took = Date.now() - started;
      const wasmFiles = requested.length;
      await context.close();
      return `${path}: ${(took / 1000).toFixed(1)} s (${wasmFiles} wasm files requested by then)`;
    }
    const figures = [
      await open(browser, '/login', 'Sign in to the console', false),
      await open(browser, '/', 'Infrastructure', true),
      await open(browser, '/ha/setup', 'HA setup', true),
      await open(browser, '/hosts', 'Hosts', true),
    ];
    console.log(`figure: first visit at 80 ms and 10 Mbit/s: ${figures.join('; ')}`);
  });
});
