// Drives Debian's Chromium for protocols_test.go: publish the fake camera
// via WHIP, then play it in LL-HLS (the viewer's WHEP offers are refused,
// so the player falls back at once and stays there) over the protocol the
// test names, and report which protocol the browser itself used for each
// request (Resource Timing's nextHopProtocol) and the LL-HLS latency.
// With lose-hlsjs, the page's first request for hls.min.js fails as a
// network handover fails it, and the player must load it again.
// Prints progress lines and, last, one line "RESULT {json}".
//
//   node play.mjs BASE STREAM TOKEN h2|h3 SPKI HOST:PORT [lose-hlsjs]
import { launch, log, publish, run, waitFor } from './chromium.mjs';

const [base, stream, token, proto, spki, hostport, fault] = process.argv.slice(2);
if (!base || !stream || !token || !proto || !spki || !hostport) {
  console.error('usage: node play.mjs BASE STREAM TOKEN h2|h3 SPKI HOST:PORT');
  process.exit(2);
}
const result = { ok: false };
const host = hostport.slice(0, hostport.lastIndexOf(':'));

const args = [
  `--host-resolver-rules=MAP ${host} 127.0.0.1`,
  // Trusts the test node's certificates (their public keys), and only them.
  `--ignore-certificate-errors-spki-list=${spki}`,
];
if (proto === 'h3') {
  args.push('--enable-quic', `--origin-to-force-quic-on=${hostport}`);
} else {
  args.push('--disable-quic');
}
const browser = await launch(args);
await run(browser, result, async () => {
  await publish(browser, base, stream, token);
  log('publisher live');

  const viewCtx = await browser.newContext();
  // LL-HLS makes many requests: keep every one's timing entry.
  await viewCtx.addInitScript(() => performance.setResourceTimingBufferSize(100000));
  await viewCtx.route('**/whep', (r) => (r.request().method() === 'POST' ? r.abort('connectionrefused') : r.continue()));
  result.hlsLibLoads = 0;
  await viewCtx.route('**/hls.min.js', (r) =>
    ++result.hlsLibLoads === 1 && fault === 'lose-hlsjs' ? r.abort('internetdisconnected') : r.continue(),
  );
  const view = await viewCtx.newPage();
  view.on('console', (m) => m.type() !== 'log' && log('player console:', m.text()));
  view.on('response', async (r) => {
    if (r.status() >= 400) log('player got', r.status(), 'for', r.url(), await r.text().catch(() => ''));
  });
  await view.goto(`${base}/live/${stream}/?retry=600000`);
  await waitFor(view, 'LL-HLS playing', () => window.hedgePlayer.mode === 'hls' && window.hedgePlayer.playing, null, 30000);
  const start = await view.evaluate(() => window.hedgePlayer.currentTime);
  await waitFor(view, 'LL-HLS advancing', ([s]) => window.hedgePlayer.currentTime > s + 2, [start], 15000);
  result.hlsTTFF = await view.evaluate(() => window.hedgePlayer.ttff.hls);
  log('LL-HLS playing, time to first frame', result.hlsTTFF, 'ms');
  const samples = [];
  for (let i = 0; i < 16; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s = await view.evaluate(() => [window.hedgePlayer.latency, window.hedgePlayer.mode]);
    if (s[1] !== 'hls') throw new Error('left LL-HLS although every WHEP offer is refused');
    if (s[0] !== null) samples.push(s[0]);
  }
  samples.sort((a, b) => a - b);
  result.hlsLatency = { median: samples[Math.floor(samples.length / 2)], min: samples[0], max: samples[samples.length - 1], n: samples.length };
  result.hlsStalls = await view.evaluate(() => window.hedgePlayer.hlsStalls);
  // The protocol of every request the page made, as the browser reports it.
  result.protocols = await view.evaluate(() => {
    const by = {};
    for (const e of [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]) {
      if (e.name.endsWith('/whep')) continue; // refused by the driver, never sent
      const kind = e.entryType === 'navigation' ? 'page' : e.name.includes('/hls/') ? 'hls' : 'other';
      // A request hls.js abandoned (a blocking playlist reload it no longer
      // needs) has no response and no protocol.
      const k = e.responseStatus === 0 ? `${kind} abandoned` : `${kind} ${e.nextHopProtocol || '(none)'}`;
      by[k] = (by[k] || 0) + 1;
    }
    return by;
  });
  log('protocols', JSON.stringify(result.protocols));
});
