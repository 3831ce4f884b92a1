// The stand-alone page: hands config.js's settings (window.IMAGE_RECOVERY_CONFIG = {apiBase, token |
// tokenProvider}) to its <missing-images-panel>. Runs before the element is defined, which takes them over.
(() => {
  "use strict";
  const config = window.IMAGE_RECOVERY_CONFIG;
  const panel = document.querySelector("missing-images-panel");
  if (!config) {
    const message = document.createElement("p");
    message.textContent = "config.js is missing: it must set window.IMAGE_RECOVERY_CONFIG.";
    panel.replaceWith(message);
    return;
  }
  panel.setAttribute("api-base", config.apiBase || "");
  panel.tokenProvider = typeof config.tokenProvider === "function" ? config.tokenProvider : () => config.token;
})();
