// What the specs share: the demo's address and admin password (set by `cargo xtask test`), signing in,
// navigation, screenshots and small API helpers. Lives outside tests/ so Playwright does not run it.
import {
  expect,
  request as playwrightRequest,
  type APIRequestContext,
  type Locator,
  type Page,
  type TestInfo,
} from '@playwright/test';

export const baseURL = process.env.PARAPET_URL ?? '';
export const adminPassword = process.env.PARAPET_ADMIN_PASSWORD ?? '';

/** Mutating API calls must carry this header (CSRF defence; see api::v1::CSRF_HEADER). */
export const csrf = { 'x-parapet-csrf': '1' };

/** A suffix that keeps names unique if a suite runs twice against one server. */
export function runId(): string {
  return Math.random().toString(36).slice(2, 7);
}

export type VmJson = { id: string; name: string; host_id: string | null; state: string };

/** A VM's state badge: the `[data-state]` element holding a VM state (other badges, such as the HA
 * flag's on/off, carry data-state too). */
export const vmStateBadge = ['stopped', 'starting', 'running', 'stopping', 'migrating', 'unknown', 'error']
  .map((state) => `[data-state="${state}"]`)
  .join(', ');

export async function screenshot(page: Page, testInfo: TestInfo, name: string) {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
}

/** A link of the console's navigation (only there once signed in). */
export function nav(page: Page, name: string): Locator {
  return page.getByRole('navigation').getByRole('link', { name, exact: true }).first();
}

/** Signs in on the login page and waits for the signed-in frame. */
export async function signIn(page: Page, username = 'admin', password = adminPassword) {
  await page.goto('/login');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(nav(page, 'Hosts')).toBeVisible();
}

/** GET `path` and its JSON; a non-2xx answer fails with its status and body. */
export async function getJson<T>(request: APIRequestContext, path: string): Promise<T> {
  const response = await request.get(path);
  expect(response.ok(), `GET ${path}: ${response.status()} ${await response.text()}`).toBeTruthy();
  return (await response.json()) as T;
}

/** An API client of its own (own cookie jar) signed in as `username`; dispose it when done. */
export async function apiAs(username: string, password: string): Promise<APIRequestContext> {
  const api = await playwrightRequest.newContext({ baseURL });
  const login = await api.post('/api/v1/auth/login', { headers: csrf, data: { username, password } });
  expect(login.ok(), `sign-in of ${username}: ${login.status()} ${await login.text()}`).toBeTruthy();
  return api;
}

/** Picks the option of `select` whose text contains `text` (option texts often carry extra facts). */
export async function chooseOption(select: Locator, text: string) {
  const option = select.locator('option', { hasText: text }).first();
  await expect(option).toHaveCount(1);
  const value = await option.getAttribute('value');
  expect(value, `option "${text}" has no value`).toBeTruthy();
  await select.selectOption(value!);
}
