// Accessibility of the console (issue #7 point 5), measured with axe-core against WCAG 2.1 A and AA
// (labels tied to inputs, names of buttons and links, colour contrast, landmarks, ARIA use): the HA
// setup wizard's eight steps and the pages around them, in English and in Korean. Read-only: it
// changes nothing in the pool. Korean is chosen in this browser only (localStorage), so the admin
// account's language stays unset for the other specs.
import { test, expect, type Page, type TestInfo } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { adminPassword, csrf, getJson, signIn } from '../support';

type Named = { id: string; name: string };

/** Fails with every serious or critical WCAG A/AA violation on the page as it is now. */
async function expectAccessible(page: Page, testInfo: TestInfo, what: string) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await testInfo.attach(`axe-${what}.json`, {
    body: JSON.stringify(results.violations, null, 2),
    contentType: 'application/json',
  });
  const described = serious.map(
    (v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join('\n  ')}`,
  );
  expect.soft(described, `${what}: ${results.passes.length} rules pass; violations:\n${described.join('\n')}`).toEqual([]);
}

for (const language of ['en', 'ko'] as const) {
  test(`wizard steps and HA pages pass WCAG A/AA checks (${language})`, async ({ page }, testInfo) => {
    test.setTimeout(240_000);
    if (language === 'ko') {
      await page.addInitScript(() => window.localStorage.setItem('parapet.language', 'ko'));
    }
    await page.goto('/login');
    await expect(page.locator('html')).toHaveAttribute('lang', language);
    await expect(page.locator('form input').first()).toBeVisible();
    await expectAccessible(page, testInfo, `${language}-login`);
    if (language === 'en') {
      await signIn(page);
    } else {
      // The login form is in Korean now; sign in through the API (the cookie is the browser's).
      const login = await page.request.post('/api/v1/auth/login', {
        headers: csrf,
        data: { username: 'admin', password: adminPassword },
      });
      expect(login.ok(), `sign-in: ${login.status()}`).toBeTruthy();
      await page.goto('/');
    }

    const zone = (await getJson<Named[]>(page.request, '/api/v1/zones')).find((z) => z.name === 'zone-1')!;
    const cluster = (await getJson<Named[]>(page.request, '/api/v1/clusters')).find((c) => c.name === 'cluster-b')!;
    const host = (await getJson<Named[]>(page.request, '/api/v1/hosts')).find((h) => h.name === 'kvm-b1')!;
    expect(zone && cluster && host, 'the demo pool has zone-1, cluster-b and kvm-b1').toBeTruthy();

    for (let step = 1; step <= 8; step++) {
      await page.goto(`/ha/setup?step=${step}&zone=${zone.id}&cluster=${cluster.id}&host=${host.id}`);
      await expect(page.getByTestId(`ha-wizard-step-${step}`)).toBeVisible();
      await expectAccessible(page, testInfo, `${language}-wizard-step-${step}`);
    }
    for (const [what, path] of [
      ['infrastructure', '/'],
      ['hosts', '/hosts'],
      ['clusters', '/clusters'],
      ['cluster-ha', `/clusters/${cluster.id}/ha`],
      ['host', `/hosts/${host.id}`],
      ['alerts', '/alerts'],
      ['incidents', '/ha/incidents'],
    ]) {
      await page.goto(path);
      await expect(page.locator('main h1')).toBeVisible();
      await expectAccessible(page, testInfo, `${language}-${what}`);
    }
  });
}
