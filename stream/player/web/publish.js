// hedge studio page: sends the camera and microphone to
// /live/{stream}/whip (WHIP, RFC 9725) with the studio's bearer token.
// H.264 is preferred so that the edge can also package LL-HLS. State is on
// window.hedgePublisher.
(() => {
  'use strict';

  const { gathered } = window.hedgeWebRTC;
  const state = (window.hedgePublisher = {
    state: 'idle', // idle | starting | live | stopped | failed
    error: null,
    resource: null, // WHIP session URL
    codec: null, // negotiated video codec
    framesEncoded: 0,
    // What the encoder does under CPU or bandwidth limits: a resolution
    // change sends new parameter sets, which cut an LL-HLS segment short.
    frameWidth: 0,
    frameHeight: 0,
    resolutionChanges: 0,
    qualityLimitation: null,
  });

  const form = document.getElementById('form');
  const tokenField = document.getElementById('token');
  const startBtn = document.getElementById('start');
  const stopBtn = document.getElementById('stop');
  const preview = document.getElementById('preview');
  const status = document.getElementById('status');
  // The page is /live/{stream}/publish; WHIP is /live/{stream}/whip.
  const whip = new URL('whip', location.href);
  const streamName = decodeURIComponent(location.pathname.split('/').slice(-2, -1)[0] || '');
  document.getElementById('title').textContent = 'Publish ' + streamName;

  let pc = null;
  let media = null;
  let statsTimer = null;
  // The session's resource answers only to the studio token that created
  // it (RFC 9725 §4.4): kept here, so editing the field does not matter.
  let sessionToken = null;

  const set = (s, err) => {
    state.state = s;
    state.error = err || null;
    status.textContent = err ? s + ': ' + err : s;
  };

  function preferH264(transceiver) {
    if (!RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
    const codecs = RTCRtpSender.getCapabilities('video').codecs;
    const rank = (c) => {
      if (c.mimeType.toLowerCase() !== 'video/h264') return 2;
      // Constrained baseline with packetization-mode=1 is what every
      // browser decodes and what the LL-HLS muxer expects.
      const f = c.sdpFmtpLine || '';
      return f.includes('packetization-mode=1') && f.includes('profile-level-id=42e0') ? 0 : 1;
    };
    transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
  }

  async function keepResolution(sender) {
    try {
      const p = sender.getParameters();
      p.degradationPreference = 'maintain-resolution';
      await sender.setParameters(p);
    } catch (e) {
      // Not settable before negotiation in some browsers: contentHint
      // asks for the same.
    }
  }

  async function start() {
    const token = tokenField.value.trim();
    if (!token) return set('idle', 'enter the studio token');
    startBtn.disabled = true;
    set('starting');
    try {
      media = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
        audio: true,
      });
      preview.srcObject = media;
      pc = new RTCPeerConnection();
      for (const track of media.getTracks()) {
        // A table's cards must stay legible, and a resolution change sends
        // new parameter sets, which cut an LL-HLS segment short (and hls.js
        // often stalls there): under CPU or bandwidth limits the encoder
        // should drop frames, not resolution.
        if (track.kind === 'video' && 'contentHint' in track) track.contentHint = 'detail';
        const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
        if (track.kind === 'video') {
          preferH264(t);
          keepResolution(t.sender);
        }
      }
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') set('live');
        if (pc.connectionState === 'failed') set('failed', 'ICE failed');
      });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 2000);
      const res = await fetch(whip, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token },
        body: pc.localDescription.sdp,
      });
      const body = await res.text();
      if (res.status !== 201) throw new Error('WHIP answered ' + res.status + ': ' + body.slice(0, 300));
      if (res.headers.get('Location')) state.resource = new URL(res.headers.get('Location'), whip).href;
      sessionToken = token;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
      const m = /a=rtpmap:\d+ (H264|VP8|VP9|AV1)\//i.exec(body);
      state.codec = m ? m[1] : null;
      stopBtn.disabled = false;
      statsTimer = setInterval(async () => {
        if (!pc) return;
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
          state.framesEncoded = s.framesEncoded || 0;
          state.frameWidth = s.frameWidth || 0;
          state.frameHeight = s.frameHeight || 0;
          state.resolutionChanges = s.qualityLimitationResolutionChanges || 0;
          state.qualityLimitation = s.qualityLimitationReason || null;
        });
      }, 1000);
    } catch (e) {
      stop();
      set('failed', e.message);
    }
  }

  function stop() {
    clearInterval(statsTimer);
    if (state.resource) {
      fetch(state.resource, { method: 'DELETE', headers: { Authorization: 'Bearer ' + sessionToken } }).catch(() => {});
      state.resource = null;
      sessionToken = null;
    }
    if (pc) pc.close();
    pc = null;
    if (media) media.getTracks().forEach((t) => t.stop());
    media = null;
    startBtn.disabled = false;
    stopBtn.disabled = true;
    if (state.state !== 'failed') set('stopped');
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    start();
  });
  stopBtn.addEventListener('click', stop);
  window.addEventListener('pagehide', stop);
})();
