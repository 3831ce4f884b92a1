// The stand-alone page: hands config.js's settings (window.IMAGE_RECOVERY_CONFIG) to its <missing-images-panel>.
// A host app that hands over a token (config.token or config.tokenProvider) signs the user in and out itself;
// otherwise the page signs in with OpenID Connect (config.oidc = {issuer, clientId, redirectUri, loginHint},
// see oidc.js), shows who is signed in and offers sign-out.
import { OidcSignIn } from "./oidc.js";

const config = window.IMAGE_RECOVERY_CONFIG;
const panel = document.querySelector("missing-images-panel");
const byId = (id) => document.getElementById(id);

function showUser(claims) {
  byId("user-name").textContent = claims.name || claims.preferred_username || claims.email || claims.sub;
  byId("signed-out").hidden = true;
  byId("signed-in").hidden = false;
}

function showSignedOut(message) {
  panel.tokenProvider = null; // the panel waits for a sign-in and sends nothing meanwhile
  byId("signed-out-message").textContent = message;
  byId("signed-in").hidden = true;
  byId("signed-out").hidden = false;
}

async function signInWithOidc(settings) {
  const oidc = new OidcSignIn(settings);
  byId("sign-in").addEventListener("click", () => oidc.signIn().catch((error) => showSignedOut(error.message)));
  byId("sign-out").addEventListener("click", () => {
    showSignedOut("You are signed out.");
    oidc.signOut();
  });
  try {
    await oidc.completeSignIn();
  } catch (error) {
    showSignedOut(`Sign-in failed: ${error.message}.`);
    return;
  }
  if (oidc.signedOut) {
    oidc.completeSignOut();
    showSignedOut("You are signed out.");
    return;
  }
  if (!oidc.user) {
    await oidc.signIn().catch((error) => showSignedOut(`Sign-in failed: ${error.message}.`));
    return;
  }
  showUser(oidc.user);
  panel.tokenProvider = async () => {
    const token = await oidc.token();
    if (oidc.user) showUser(oidc.user);
    return token;
  };
}

if (!config) {
  const message = document.createElement("p");
  message.textContent = "config.js is missing: it must set window.IMAGE_RECOVERY_CONFIG.";
  panel.replaceWith(message);
} else {
  panel.setAttribute("api-base", config.apiBase || "");
  if (typeof config.tokenProvider === "function") panel.tokenProvider = config.tokenProvider;
  else if (config.token || !config.oidc) panel.tokenProvider = () => config.token;
  else signInWithOidc(config.oidc);
}
