// Playwright configuration for Parapet's end-to-end tests.
//
// `cargo xtask test` starts `parapet demo` on a free port and runs these tests with PARAPET_URL (the
// server's base URL) and PARAPET_ADMIN_PASSWORD set. The browser is Debian's chromium: Playwright must
// never download one (the machines here have no internet beyond the package registries).
import { defineConfig, devices } from '@playwright/test';

const out = process.env.PARAPET_E2E_OUT ?? '.';

export default defineConfig({
  testDir: './tests',
  // Several engineers' runs on one machine each get their own folders (PARAPET_E2E_OUT).
  outputDir: `${out}/test-results`,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  timeout: 90_000,
  globalTimeout: 10 * 60_000,
  expect: { timeout: 10_000 },
  reporter: [
    ['list'],
    // xtask reads this file to count passed and failed tests.
    ['json', { outputFile: `${out}/playwright-report/results.json` }],
    ['html', { outputFolder: `${out}/playwright-report/html`, open: 'never' }],
  ],
  use: {
    baseURL: process.env.PARAPET_URL,
    screenshot: 'on',
    trace: 'retain-on-failure',
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        headless: true,
        viewport: { width: 1280, height: 800 },
        launchOptions: {
          executablePath: '/usr/bin/chromium',
          // Without the background-networking flags chromium keeps trying to reach Google's hosts,
          // which this machine's closed network refuses.
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
          ],
        },
      },
    },
  ],
});
