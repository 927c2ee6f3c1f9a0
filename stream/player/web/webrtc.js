// What the player and the studio page share about WebRTC; both pages load
// it before their own script. It is on window.hedgeWebRTC.
(() => {
  'use strict';

  // gathered resolves once pc has gathered its ICE candidates, or after ms
  // at the latest: the offer then carries the candidates found so far.
  function gathered(pc, ms) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(t);
          resolve();
        }
      });
    });
  }

  window.hedgeWebRTC = { gathered };
})();
