// Drive headless Chromium through test sessions and write what the page logged as JSON.
//   node drive_chromium.mjs config.json
// config: {"node_modules": dir with playwright-core, "executable": "/usr/bin/chromium",
//          "sessions": [{"name", "url", "timeout_s", "bench_runs"}], "out": result path}
// bench_runs > 0: after the session, time that many more session.run calls in the page on the
// rows it logged (steady-state latency; the in-session numbers are on the log).
// Sessions run one after another in fresh browser contexts (no shared storage: dash.js keeps
// its last throughput estimate in localStorage).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(join(config.node_modules, 'noop.js'));
const { chromium } = require('playwright-core');

const browser = await chromium.launch({
    executablePath: config.executable,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const results = [];
try {
    for (const session of config.sessions) {
        const context = await browser.newContext();
        const page = await context.newPage();
        const consoleLines = [];
        page.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
        page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));
        const started = Date.now();
        let error = null;
        try {
            await page.goto(session.url);
            await page.waitForFunction(
                () => window.llmabrPage && (window.llmabrPage.done || window.llmabrPage.error),
                null, { timeout: session.timeout_s * 1000, polling: 200 });
        } catch (caught) {
            error = `session ${session.name}: ${caught.message}`;
        }
        let bench = null;
        if (!error && session.bench_runs > 0) {
            bench = await page.evaluate(async (runs) => {
                const abr = window.llmabr;
                const { size, input } = abr.log.layout;
                const rows = abr.log.decisions.map((decision) => Float32Array.from(decision.row));
                const runMs = [];
                for (let i = 0; i < runs; i++) {
                    const tensor = new abr.ort.Tensor('float32', rows[i % rows.length], [1, size]);
                    const started = performance.now();
                    await abr.session.run({ [input]: tensor });
                    runMs.push(performance.now() - started);
                }
                return { runMs };
            }, session.bench_runs).catch((caught) => ({ error: caught.message }));
        }
        const state = await page.evaluate(() => ({
            page: window.llmabrPage || null,
            log: window.llmabrLog || null,
            summary: window.llmabr ? window.llmabr.summary() : null,
        })).catch((caught) => ({ page: null, log: null, summary: null, evalError: caught.message }));
        results.push({ name: session.name, wall_s: (Date.now() - started) / 1000, error, console: consoleLines,
            browser: browser.version(), bench, ...state });
        await context.close();
    }
} finally {
    await browser.close();
}
writeFileSync(config.out, JSON.stringify(results));
