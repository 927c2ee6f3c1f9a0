// Drives Debian's Chromium for stream_test.go: publish the fake camera via
// WHIP, play via WHEP, break WebRTC (the edge's test proxy drops the viewer's
// UDP), expect LL-HLS, restore, expect WebRTC again. Prints progress lines
// and, last, one line "RESULT {json}".
//
//   node drive.mjs BASE STREAM TOKEN
import { launch, log, publish, run, waitFor } from './chromium.mjs';

const [base, stream, token] = process.argv.slice(2);
if (!base || !stream || !token) {
  console.error('usage: node drive.mjs BASE STREAM TOKEN');
  process.exit(2);
}
const result = { ok: false };

// advancing resolves when the player's currentTime advances by more than
// `by` seconds in mode `mode` within timeoutMs.
async function advancing(page, mode, by, timeoutMs) {
  const start = await page.evaluate(() => window.hedgePlayer.currentTime);
  return waitFor(
    page,
    `${mode}: currentTime advancing`,
    ([m, s, b]) => window.hedgePlayer.mode === m && window.hedgePlayer.currentTime > s + b,
    [mode, start, by],
    timeoutMs,
  );
}

// edgeLag is how long after its last media the edge served a media
// playlist: the arrival time of the answer minus the PROGRAM-DATE-TIME of
// the playlist's live edge (the last dated segment plus what follows it).
// It is the part of the LL-HLS latency the server adds before any player
// buffering; the edge and the browser share this machine's clock.
const edgeLags = [];
function edgeLag(pl, at) {
  const i = pl.lastIndexOf('#EXT-X-PROGRAM-DATE-TIME:');
  if (i < 0) return null;
  const lines = pl.slice(i).split('\n');
  const pdt = Date.parse(lines[0].slice('#EXT-X-PROGRAM-DATE-TIME:'.length));
  if (isNaN(pdt)) return null;
  let seg = 0;
  let parts = 0;
  for (const l of lines.slice(1)) {
    if (l.startsWith('#EXTINF:')) {
      seg += parseFloat(l.slice(8));
      parts = 0;
    } else if (l.startsWith('#EXT-X-PART:')) {
      const m = /DURATION=([0-9.]+)/.exec(l);
      if (m) parts += parseFloat(m[1]);
    }
  }
  return (at - pdt) / 1000 - seg - parts;
}

function median(a) {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

async function control(what) {
  const res = await fetch(`${base}/_test/${what}`, { method: 'POST' });
  if (!res.ok) throw new Error(`control ${what}: HTTP ${res.status}`);
}

const browser = await launch(['--disable-quic']);
await run(browser, result, async () => {
  const pub = await publish(browser, base, stream, token);
  result.publisherCodec = await pub.evaluate(() => window.hedgePublisher.codec);
  log('publisher live, codec', result.publisherCodec);

  const viewCtx = await browser.newContext();
  const view = await viewCtx.newPage();
  view.on('console', (m) => (m.type() !== 'log' || process.env.DRIVE_DEBUG === 'hls') && log('player console:', m.text()));
  view.on('response', async (r) => {
    const at = Date.now();
    if (r.status() >= 400) log('player got', r.status(), 'for', r.url(), await r.text().catch(() => ''));
    if (r.status() === 200 && r.url().includes('_stream.m3u8')) {
      const lag = edgeLag(await r.text().catch(() => ''), at);
      if (lag !== null) edgeLags.push(lag);
    }
    if (process.env.DRIVE_DEBUG && r.url().includes('video1_stream.m3u8') && !globalThis.__shown) {
      globalThis.__shown = true;
      log('playlist', r.status(), await r.text().catch(() => ''));
    }
  });
  if (process.env.DRIVE_DEBUG) view.on('request', (r) => r.url().includes('/hls/') && log('req', r.url().split('/hls/')[1]));
  // Shorter thresholds than a real player's, so the test is quick.
  await view.goto(`${base}/live/${stream}/?stall=2000&retry=4000${process.env.DRIVE_DEBUG === 'hls' ? '&hlsdebug=1' : ''}`);
  await waitFor(view, 'WebRTC frames', () => window.hedgePlayer.mode === 'webrtc' && window.hedgePlayer.framesDecoded > 0, null, 30000);
  await advancing(view, 'webrtc', 1, 10000);
  result.webrtcTTFF = await view.evaluate(() => window.hedgePlayer.ttff.webrtc);
  log('WebRTC playing, time to first frame', result.webrtcTTFF, 'ms');

  await control('block');
  const blockedAt = Date.now();
  log('viewer UDP blocked');
  await waitFor(view, 'fallback to LL-HLS', () => window.hedgePlayer.mode === 'hls', null, 20000);
  result.fallbackDetectMs = Date.now() - blockedAt;
  await waitFor(view, 'LL-HLS playing', () => window.hedgePlayer.mode === 'hls' && window.hedgePlayer.playing, null, 30000);
  await advancing(view, 'hls', 2, 15000);
  result.hlsTTFF = await view.evaluate(() => window.hedgePlayer.ttff.hls);
  result.fallbackToPlayingMs = Date.now() - blockedAt;
  log('LL-HLS playing, detected after', result.fallbackDetectMs, 'ms, time to first frame', result.hlsTTFF, 'ms');
  const samples = [];
  edgeLags.length = 0;
  // Sample over 8 s: hls.js first catches up to its target latency.
  for (let i = 0; i < 16; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s = await view.evaluate(() => [window.hedgePlayer.latency, window.hedgePlayer.hlsLiveLatency, window.hedgePlayer.mode]);
    if (s[2] !== 'hls') throw new Error('left LL-HLS while WebRTC was still blocked');
    if (s[0] !== null) samples.push(s[0]);
    if (process.env.DRIVE_DEBUG) {
      log('hls state', await view.evaluate(() => {
        const v = document.getElementById('hls');
        const b = [];
        for (let i = 0; i < v.buffered.length; i++) b.push(v.buffered.start(i).toFixed(2) + '-' + v.buffered.end(i).toFixed(2));
        const p = window.hedgePlayer;
        return `t=${v.currentTime.toFixed(2)} buf=${b.join(',')} rate=${v.playbackRate} lat=${p.latency && p.latency.toFixed(2)} hlsLat=${p.hlsLiveLatency && p.hlsLiveLatency.toFixed(2)} target=${p.hlsTarget && p.hlsTarget.toFixed(2)} rs=${v.readyState} stalls=${p.hlsStalls}`;
      }));
    }
    if (i === 15) result.hlsLiveLatency = s[1];
    if (i === 15) result.hlsLatencyLast = s[0];
  }
  samples.sort((a, b) => a - b);
  result.hlsLatency = { median: samples[Math.floor(samples.length / 2)], min: samples[0], max: samples[samples.length - 1], n: samples.length };
  log('LL-HLS latency (now - PROGRAM-DATE-TIME at the playhead)', JSON.stringify(result.hlsLatency));
  result.attemptsWhileBlocked = await view.evaluate(() => window.hedgePlayer.webrtcAttempts);
  result.hlsStalls = await view.evaluate(() => window.hedgePlayer.hlsStalls);
  result.hlsJumps = await view.evaluate(() => window.hedgePlayer.hlsJumps);
  result.hlsTarget = await view.evaluate(() => window.hedgePlayer.hlsTarget);
  result.edgeLag = { median: median(edgeLags), n: edgeLags.length, max: edgeLags.length ? Math.max(...edgeLags) : null };
  log('LL-HLS edge lag (playlist served − PROGRAM-DATE-TIME of its live edge)', JSON.stringify(result.edgeLag));

  result.publisher = await pub.evaluate(() => {
    const p = window.hedgePublisher;
    return { width: p.frameWidth, height: p.frameHeight, resolutionChanges: p.resolutionChanges, limitation: p.qualityLimitation };
  });
  log('publisher encoder', JSON.stringify(result.publisher));
  await control('unblock');
  const restoredAt = Date.now();
  log('viewer UDP restored');
  await waitFor(view, 'return to WebRTC', () => window.hedgePlayer.mode === 'webrtc' && window.hedgePlayer.framesDecoded > 0, null, 45000);
  await advancing(view, 'webrtc', 1, 10000);
  result.returnMs = Date.now() - restoredAt;
  result.webrtcReturnTTFF = await view.evaluate(() => window.hedgePlayer.ttff.webrtcReturn);
  result.switches = await view.evaluate(() => window.hedgePlayer.switches);
  log('back on WebRTC', result.returnMs, 'ms after the restore');
});
