// hedge player: WebRTC (WHEP) first, LL-HLS (hls.js) when WebRTC fails or
// degrades, and back to WebRTC when it works again. Served by hedge at
// /live/{stream}/ next to play.json; its state is on window.hedgePlayer.
(() => {
  'use strict';

  const { gathered } = window.hedgeWebRTC;
  const qs = new URLSearchParams(location.search);
  const num = (k, d) => (qs.has(k) && isFinite(+qs.get(k)) ? +qs.get(k) : d);
  // Thresholds (ms). The query may shorten them for tests: ?stall=2000.
  const cfg = {
    statsEvery: 500,
    firstFrame: num('firstframe', 8000), // no frame decoded this long after connecting
    stall: num('stall', 3000), // no new frame decoded this long
    lossWindow: 2000, // packet loss is judged over windows of this length
    lossRatio: num('loss', 0.1), // a window with more loss than this is bad
    lossWindows: 3, // this many bad windows in a row degrade WebRTC
    retryMin: num('retry', 5000), // first WebRTC retry after a fallback
    retryMax: 30000,
    iceGather: 2000,
    // LL-HLS latency steering (lat below): s, parts, and a playback rate.
    latStallMargin: 0.2, // each stall adds this to the target
    latMaxMargin: 1,
    latDecay: 0.05, // the margin shrinks by this per second of playback
    latMinAhead: 1.5, // play faster only with this many parts buffered ahead
    latRate: num('rate', 1.25),
    latJump: 0.75, // further behind than this: jump ahead inside the buffer
  };
  const token = qs.get('token'); // optional signed viewer token

  const state = (window.hedgePlayer = {
    mode: 'starting', // starting | webrtc | hls
    playing: false, // frames are advancing in the current mode
    framesDecoded: 0, // WebRTC frames decoded in the current WebRTC session
    hlsFrames: 0, // frames the LL-HLS video element has shown
    currentTime: 0, // of the visible video element
    ttff: { webrtc: null, hls: null, webrtcReturn: null }, // ms, first of each
    latency: null, // s, LL-HLS: now minus EXT-X-PROGRAM-DATE-TIME of the playhead
    hlsLiveLatency: null, // s, hls.js's own estimate behind the live edge
    webrtcAttempts: 0,
    hlsStalls: 0, // LL-HLS playback stalls (buffer ran dry)
    hlsTarget: null, // s, the latency LL-HLS playback steers to
    hlsJumps: 0, // jumps ahead inside the buffer after a long stall
    switches: [], // {at, to, reason}
    lastError: null,
    streamState: null, // from play.json
  });

  const vRTC = document.getElementById('webrtc');
  const vHLS = document.getElementById('hls');
  const status = document.getElementById('status');
  document.getElementById('unmute').onclick = () => {
    vRTC.muted = vHLS.muted = false;
    current().play().catch(() => {});
  };

  let desc = null;
  let rtc = null; // {pc, resource, stop(), promoted}
  let hls = null; // {close(), hls}
  let retryTimer = null;
  let retryDelay = cfg.retryMin;
  let hlsStarted = 0;

  const current = () => (state.mode === 'hls' ? vHLS : vRTC);
  const note = (msg) => {
    state.lastError = msg;
    console.warn('hedge player:', msg);
  };

  function show(which) {
    vRTC.hidden = which !== 'webrtc';
    vHLS.hidden = which !== 'hls';
  }

  function setMode(mode, reason) {
    if (state.mode !== mode) {
      state.switches.push({ at: Date.now(), to: mode, reason });
    }
    state.mode = mode;
    state.playing = false;
    show(mode);
  }

  async function loadDescriptor() {
    for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const res = await fetch('play.json', { cache: 'no-store' });
        if (res.ok) return await res.json();
        note('play.json: HTTP ' + res.status);
      } catch (e) {
        note('play.json: ' + e.message);
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  function authHeaders(h, bearer) {
    if (bearer || token) h.Authorization = 'Bearer ' + (bearer || token);
    return h;
  }

  // openWebRTC negotiates one WHEP session into vRTC.
  async function openWebRTC() {
    const pc = new RTCPeerConnection({ iceServers: desc.iceServers || [] });
    // secret: the session's own token (Session-Token), which its resource
    // needs; the Location alone does not end or change the session.
    const sess = { pc, resource: null, secret: null, stop: () => {}, promoted: false, frames: 0 };
    try {
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const ms = new MediaStream();
      pc.ontrack = (ev) => {
        ms.addTrack(ev.track);
        if (vRTC.srcObject !== ms) vRTC.srcObject = ms;
        vRTC.play().catch(() => {});
      };
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, cfg.iceGather);
      const whep = new URL(desc.whep, location.href);
      const res = await fetch(whep, {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/sdp' }),
        body: pc.localDescription.sdp,
      });
      const body = await res.text();
      if (res.status !== 201) throw new Error('WHEP answered ' + res.status + ': ' + body.slice(0, 200));
      if (res.headers.get('Location')) sess.resource = new URL(res.headers.get('Location'), whep).href;
      sess.secret = res.headers.get('Session-Token');
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
      return sess;
    } catch (e) {
      closeWebRTC(sess);
      throw e;
    }
  }

  function closeWebRTC(sess) {
    if (!sess) return;
    sess.stop();
    try {
      sess.pc.close();
    } catch (e) {
      /* already closed */
    }
    if (sess.resource) {
      fetch(sess.resource, { method: 'DELETE', headers: authHeaders({}, sess.secret) }).catch(() => {});
    }
  }

  // watch follows a WebRTC session's getStats: onFrames once frames are
  // decoded, onFail when ICE fails, no frame comes, frames stop, or loss
  // stays high.
  function watch(sess, onFrames, onFail) {
    const started = performance.now();
    let lastFrames = 0;
    let lastProgress = started;
    let seen = false;
    let bad = 0;
    let win = { at: started, lost: 0, recv: 0 };
    let done = false;
    const fail = (reason) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      onFail(reason);
    };
    const timer = setInterval(async () => {
      const pc = sess.pc;
      if (pc.iceConnectionState === 'failed' || pc.connectionState === 'failed') return fail('ICE failed');
      if (pc.connectionState === 'closed') return fail('connection closed');
      let stats;
      try {
        stats = await pc.getStats();
      } catch (e) {
        return;
      }
      if (done) return;
      let frames = 0;
      let lost = 0;
      let recv = 0;
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') frames = s.framesDecoded || 0;
        lost += s.packetsLost || 0;
        recv += s.packetsReceived || 0;
      });
      const now = performance.now();
      sess.frames = frames;
      if (frames > lastFrames) {
        lastFrames = frames;
        lastProgress = now;
        if (!seen) {
          seen = true;
          onFrames();
        }
      }
      if (!seen && now - started > cfg.firstFrame) return fail('no frame decoded ' + cfg.firstFrame + ' ms after connecting');
      if (seen && now - lastProgress > cfg.stall) return fail('no frame decoded for ' + Math.round(now - lastProgress) + ' ms');
      if (now - win.at >= cfg.lossWindow) {
        const dl = lost - win.lost;
        const dr = recv - win.recv;
        bad = dl + dr > 0 && dl / (dl + dr) > cfg.lossRatio ? bad + 1 : 0;
        win = { at: now, lost, recv };
        if (bad >= cfg.lossWindows) return fail('packet loss above ' + cfg.lossRatio * 100 + '% for ' + (bad * cfg.lossWindow) / 1000 + ' s');
      }
    }, cfg.statsEvery);
    sess.stop = () => {
      done = true;
      clearInterval(timer);
    };
  }

  // tryWebRTC opens a session; while LL-HLS plays it is a probe that takes
  // over only once it decodes frames.
  async function tryWebRTC(reason) {
    clearTimeout(retryTimer);
    state.webrtcAttempts++;
    const t0 = performance.now();
    const first = state.ttff.webrtc === null && state.mode === 'starting';
    let sess;
    try {
      sess = await openWebRTC();
    } catch (e) {
      note(e.message);
      return webrtcFailed(null, e.message);
    }
    rtc = sess;
    watch(
      sess,
      () => {
        const ms = Math.round(performance.now() - t0);
        if (first) state.ttff.webrtc = ms;
        else if (state.ttff.webrtcReturn === null) state.ttff.webrtcReturn = ms;
        sess.promoted = true;
        retryDelay = cfg.retryMin;
        closeHLS();
        setMode('webrtc', reason);
        state.playing = true;
      },
      (why) => webrtcFailed(sess, why),
    );
  }

  function webrtcFailed(sess, why) {
    note('WebRTC: ' + why);
    if (sess) closeWebRTC(sess);
    if (rtc === sess) rtc = null;
    startHLS(why);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => tryWebRTC('WebRTC works again'), retryDelay);
    retryDelay = Math.min(retryDelay * 2, cfg.retryMax);
  }

  // hls.js comes with the page, but a request the network lost (a Wi-Fi
  // handover: ERR_NETWORK_CHANGED) leaves no window.Hls, and Chromium would
  // then play the stream itself, which it does for HLS but not through
  // LL-HLS's gaps. So the library is loaded again, backing off as
  // play.json is. After hlsLibTries failures a browser that says it plays
  // HLS itself gets the stream (Safari; Chromium too, as a last resort that
  // stalls at the first gap); the others keep trying.
  const hlsLibTries = 4;
  let hlsLib = null;
  function hlsLibrary() {
    hlsLib ||= (async () => {
      for (let delay = 500, tries = 0; !window.Hls; delay = Math.min(delay * 2, 5000)) {
        if (++tries > hlsLibTries && vHLS.canPlayType('application/vnd.apple.mpegurl')) return null;
        note('LL-HLS: hls.min.js did not load; loading it again');
        await new Promise((done) => {
          const el = document.createElement('script');
          el.src = 'hls.min.js';
          el.onload = done;
          el.onerror = () => {
            el.remove();
            setTimeout(done, delay);
          };
          document.head.appendChild(el);
        });
      }
      return window.Hls;
    })();
    return hlsLib;
  }

  function startHLS(reason) {
    if (hls) return; // already the fallback
    hlsStarted = performance.now();
    state.playing = false;
    setMode('hls', reason);
    // Held while hls.js loads; closeHLS (WebRTC took over) ends the wait.
    const wait = { hls: null, close() {} };
    hls = wait;
    hlsLibrary().then((Hls) => {
      if (hls !== wait) return;
      hls = null;
      attachHLS(Hls);
    });
  }

  function attachHLS(Hls) {
    if (Hls && Hls.isSupported()) {
      const h = new Hls({
        lowLatencyMode: true,
        debug: qs.has('hlsdebug'),
        backBufferLength: 4,
        // hls.js's own catch-up (maxLiveSyncPlaybackRate) only runs while
        // more than a second is buffered ahead, which a target of
        // PART-HOLD-BACK (about 0.6 s) never has: once behind, it stays
        // behind. steer() below does it instead; 1 switches hls.js's off.
        maxLiveSyncPlaybackRate: 1,
        liveSyncOnStallIncrease: 0,
        // hls.js looks the next fragment up with a 0.25 s tolerance: with
        // the buffer ending less than that before a segment's end, it moves
        // on to the next segment and never loads the short part that ends
        // this one (a segment is cut on a keyframe, so its last part is
        // often short), which leaves a hole the player stalls in for a
        // second or two. Parts are 0.2 s: look up exactly.
        maxFragLookUpTolerance: 0.01,
        manifestLoadingMaxRetry: 100,
        levelLoadingMaxRetry: 100,
        fragLoadingMaxRetry: 100,
      });
      h.on(Hls.Events.ERROR, (_, data) => {
        if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) {
          state.hlsStalls++;
          lat.stalled();
        }
        if (!data.fatal) return;
        note('LL-HLS: ' + data.type + ' ' + data.details);
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) h.recoverMediaError();
        else setTimeout(() => hls && hls.hls === h && h.startLoad(), 1000);
      });
      h.loadSource(new URL(desc.hls, location.href).href);
      h.attachMedia(vHLS);
      hls = {
        hls: h,
        close() {
          h.destroy();
        },
      };
    } else if (vHLS.canPlayType('application/vnd.apple.mpegurl')) {
      vHLS.src = new URL(desc.hls, location.href).href; // Safari plays LL-HLS itself
      hls = {
        hls: null,
        close() {
          vHLS.removeAttribute('src');
          vHLS.load();
        },
      };
    } else {
      note('this browser plays neither LL-HLS through Media Source Extensions nor natively');
      return;
    }
    vHLS.play().catch(() => {});
  }

  function closeHLS() {
    if (!hls) return;
    hls.close();
    hls = null;
    lat.reset();
  }

  // lat keeps LL-HLS playback near the live edge: its target is the
  // playlist's PART-HOLD-BACK plus a margin that each stall raises (up to
  // cfg.latMaxMargin) and that decays again while playback is smooth.
  // Behind the target it plays faster (up to cfg.latRate) as long as more
  // than cfg.latMinAhead parts stay buffered, and jumps ahead inside the
  // buffer when far behind (a long stall), so a hiccup costs latency for
  // seconds, not for good.
  const lat = {
    margin: 0,
    at: 0,
    reset() {
      this.margin = 0;
      this.at = 0;
      vHLS.playbackRate = 1;
    },
    stalled() {
      this.margin = Math.min(this.margin + cfg.latStallMargin, cfg.latMaxMargin);
    },
    steer(h) {
      const d = h.latestLevelDetails;
      const now = performance.now();
      const dt = this.at ? (now - this.at) / 1000 : 0;
      this.at = now;
      if (!d || !d.live || vHLS.paused || vHLS.readyState < 3 || !vHLS.buffered.length) return;
      this.margin = Math.max(0, this.margin - dt * cfg.latDecay);
      const part = d.partTarget || 0.2;
      const target = (d.partHoldBack || 3 * part) + this.margin;
      state.hlsTarget = target;
      const latency = h.latency;
      const ahead = vHLS.buffered.end(vHLS.buffered.length - 1) - vHLS.currentTime;
      const behind = latency - target;
      let rate = 1;
      if (behind > cfg.latJump && ahead - behind > cfg.latMinAhead * part) {
        vHLS.currentTime += behind;
        state.hlsJumps++;
      } else if (behind > 0.05 && ahead > cfg.latMinAhead * part) {
        // Gentle close to the target, firmer further away.
        rate = Math.min(cfg.latRate, 1 + Math.max(0.05, behind * 0.5));
      }
      if (vHLS.playbackRate !== rate) vHLS.playbackRate = rate;
    },
  };

  let lastTime = 0;
  let lastTimeAt = 0;
  function tick() {
    const now = performance.now();
    if (rtc) state.framesDecoded = rtc.frames;
    if (state.mode === 'hls') {
      const t = vHLS.currentTime;
      if (t > lastTime) {
        if (!state.playing && state.ttff.hls === null) state.ttff.hls = Math.round(now - hlsStarted);
        state.playing = true;
        lastTimeAt = now;
      } else if (now - lastTimeAt > 2000) {
        state.playing = false;
      }
      lastTime = t;
      const q = vHLS.getVideoPlaybackQuality && vHLS.getVideoPlaybackQuality();
      if (q) state.hlsFrames = q.totalVideoFrames;
      if (hls && hls.hls) {
        lat.steer(hls.hls);
        const d = hls.hls.playingDate;
        if (d) state.latency = (Date.now() - d.getTime()) / 1000;
        state.hlsLiveLatency = hls.hls.latency;
      }
    }
    state.currentTime = current().currentTime;
    const parts = [state.mode === 'starting' ? 'connecting…' : state.mode === 'webrtc' ? 'WebRTC' : 'LL-HLS'];
    if (state.mode === 'hls' && state.latency !== null) parts.push('latency ' + state.latency.toFixed(2) + ' s');
    if (state.lastError && state.mode !== 'webrtc') parts.push(state.lastError);
    status.textContent = parts.join(' · ');
  }

  async function main() {
    desc = await loadDescriptor();
    state.streamState = desc.state;
    setInterval(tick, 250);
    if (desc.preferred === 'hls') {
      startHLS('the server prefers LL-HLS');
      retryTimer = setTimeout(() => tryWebRTC('WebRTC available'), retryDelay);
    } else {
      await tryWebRTC('start');
    }
  }

  main();
})();
