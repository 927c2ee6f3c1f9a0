// What the Chromium drivers of e2e/stream share: a log with seconds since
// start, waiting for a page condition with the player's state in the
// error, Debian's Chromium launched with the flags every test needs (plus
// the driver's), a publish page sending the fake camera over WHIP, and the
// run of a driver's steps ending in its one "RESULT {json}" line.
import { chromium } from 'playwright-core';

const t0 = Date.now();
export const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

// waitFor resolves, with the time it took, when fn(arg) holds on the page
// within timeoutMs.
export async function waitFor(page, what, fn, arg, timeoutMs) {
  const start = Date.now();
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 200 });
  } catch (e) {
    const st = await page.evaluate(() => window.hedgePlayer || window.hedgePublisher).catch(() => null);
    throw new Error(`${what}: not within ${timeoutMs} ms; state ${JSON.stringify(st)}`);
  }
  return Date.now() - start;
}

// launch starts headless Chromium ($CHROMIUM, else Debian's) with a fake
// camera and the flags that keep it from reaching the network, and args.
export function launch(args) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--use-fake-device-for-media-stream=fps=30',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--autoplay-policy=no-user-gesture-required',
      ...args,
    ],
  });
}

// publish opens the publish page of stream in a context of its own and
// waits until the studio is live with frames encoded; it returns the page.
export async function publish(browser, base, stream, token) {
  const ctx = await browser.newContext();
  const pub = await ctx.newPage();
  pub.on('console', (m) => m.type() !== 'log' && log('publisher console:', m.text()));
  pub.on('response', (r) => r.status() >= 400 && log('publisher got', r.status(), 'for', r.url()));
  await pub.goto(`${base}/live/${stream}/publish`);
  await pub.fill('#token', token);
  await pub.click('#start');
  await waitFor(pub, 'publisher live', () => window.hedgePublisher.state === 'live' && window.hedgePublisher.framesEncoded > 0, null, 30000);
  return pub;
}

// run performs steps with browser, then closes it and prints the driver's
// last line, "RESULT {json}" of result: ok set when the steps finished,
// error set to why they did not.
export async function run(browser, result, steps) {
  try {
    await steps();
    result.ok = true;
  } catch (e) {
    result.error = String(e && e.message ? e.message : e);
    log('FAILED:', result.error);
  } finally {
    await browser.close().catch(() => {});
    console.log('RESULT ' + JSON.stringify(result));
  }
}
