// OpenID Connect sign-in for the stand-alone page (an ES module, no build step): the authorization code flow
// with PKCE (S256) for a public client (no secret), against the issuer the API's JWT authorizer trusts.
//
// The API gets the ID token: OpenID Connect guarantees it is a JWT signed by the issuer with `aud` = the client
// id, which is what the authorizer checks (JwtIssuer, JwtAudience); access tokens may be opaque (the local
// provider's are). The tokens stay in this tab's sessionStorage. Before each request `token()` renews a token
// that is about to expire with the refresh token, or, without one or when that fails, signs in again through
// the provider (a redirect that comes back to the same URL). The ID token is taken from the token endpoint over
// the connection the browser checked, so its claims are checked (issuer, audience, nonce, expiry), not its
// signature (OpenID Connect Core §3.1.3.7); the API verifies the signature on every request.

const SESSION_KEY = "imageRecovery.oidc.session"; // {issuer, clientId, idToken, refreshToken, claims}
const PENDING_KEY = "imageRecovery.oidc.pending"; // {state, nonce, verifier, returnTo} while at the provider
const SIGNED_OUT_KEY = "imageRecovery.oidc.signedOut"; // set: no sign-in until asked
const SIGNED_OUT_FROM_KEY = "imageRecovery.oidc.signedOutFrom"; // shown again after the provider's sign-out
const RENEW_BEFORE_S = 60; // renew this long before expiry (a quarter of the lifetime for shorter tokens)

export class SignInError extends Error {}

export class OidcSignIn {
  #issuer;
  #clientId;
  #redirectUri;
  #scope;
  #loginHint;
  #storage;
  #discovery = null;
  #renewing = null;

  // issuer and clientId as the API's authorizer has them; redirectUri: the page's URL as registered with the
  // provider; loginHint: passed on to the provider (the local one signs that subject in without a form).
  constructor({ issuer, clientId, redirectUri, scope = "openid profile email", loginHint = null }, storage) {
    this.#issuer = issuer; // exactly as the ID tokens' iss has it (Auth0's ends with "/")
    this.#clientId = clientId;
    this.#redirectUri = redirectUri;
    this.#scope = scope;
    this.#loginHint = () => (typeof loginHint === "function" ? loginHint() : loginHint);
    this.#storage = storage || window.sessionStorage;
  }

  // The signed-in user's ID token claims (sub, and name or email when the provider gives them), or null.
  get user() {
    return this.#session()?.claims || null;
  }

  // True after signOut() until signIn(): the page waits for the user instead of signing in by itself.
  get signedOut() {
    return this.#storage.getItem(SIGNED_OUT_KEY) !== null;
  }

  // When this page is the provider's redirect back (?code=…&state=… or ?error=…), exchanges the code and puts
  // the URL the sign-in started from back into the address bar; true when it did. Throws SignInError when the
  // provider refused or the answer is not the one this tab asked for.
  async completeSignIn() {
    const params = new URLSearchParams(window.location.search);
    const pending = this.#read(PENDING_KEY);
    if (!pending || !params.has("state") || !(params.has("code") || params.has("error"))) return false;
    this.#storage.removeItem(PENDING_KEY);
    const returnTo = new URL(pending.returnTo, window.location.href);
    history.replaceState(null, "", returnTo.origin === window.location.origin ? returnTo.href : "/");
    if (params.get("state") !== pending.state) throw new SignInError("the answer was not for this sign-in");
    if (params.has("error")) {
      throw new SignInError(params.get("error_description") || params.get("error"));
    }
    const tokens = await this.#tokenRequest({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: this.#redirectUri,
      code_verifier: pending.verifier,
    });
    this.#store(tokens, { nonce: pending.nonce });
    return true;
  }

  // Sends the browser to the provider's sign-in; it comes back to the current URL. Never resolves.
  async signIn() {
    const discovery = await this.#discover();
    const [state, nonce, verifier] = [randomText(), randomText(), randomText()];
    const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    this.#storage.removeItem(SIGNED_OUT_KEY);
    this.#write(PENDING_KEY, { state, nonce, verifier, returnTo: window.location.href });
    const url = new URL(discovery.authorization_endpoint);
    const hint = this.#loginHint();
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: this.#clientId,
      redirect_uri: this.#redirectUri,
      scope: this.#scope,
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: "S256",
      ...(hint ? { login_hint: hint } : {}),
    });
    window.location.assign(url.href);
    return new Promise(() => {});
  }

  // The ID token for the API: the stored one while it is fresh, else a renewed one, else (signing in again)
  // never. Null when signed out.
  async token() {
    const session = this.#session();
    if (!session) return this.signedOut ? null : this.signIn();
    if (!expiresSoon(session.claims)) return session.idToken;
    this.#renewing ||= this.#renew(session).finally(() => {
      this.#renewing = null;
    });
    return this.#renewing;
  }

  // Forgets the tokens and ends the session at the provider when it says where (end_session_endpoint), which
  // sends the browser back to the page; without it the page just stays, signed out.
  async signOut() {
    const session = this.#session();
    this.#storage.removeItem(SESSION_KEY);
    this.#storage.setItem(SIGNED_OUT_KEY, "1");
    const discovery = await this.#discover().catch(() => ({}));
    if (!discovery.end_session_endpoint) return;
    this.#storage.setItem(SIGNED_OUT_FROM_KEY, window.location.href);
    const url = new URL(discovery.end_session_endpoint);
    url.search = new URLSearchParams({
      client_id: this.#clientId,
      post_logout_redirect_uri: this.#redirectUri,
      ...(session ? { id_token_hint: session.idToken } : {}),
    });
    window.location.assign(url.href);
  }

  // Back from the provider's sign-out (at redirectUri): the URL signed out from goes back into the address bar.
  completeSignOut() {
    const from = this.#storage.getItem(SIGNED_OUT_FROM_KEY);
    this.#storage.removeItem(SIGNED_OUT_FROM_KEY);
    const url = from && new URL(from, window.location.href);
    if (url && url.origin === window.location.origin) history.replaceState(null, "", url.href);
  }

  async #renew(session) {
    if (session.refreshToken) {
      try {
        const tokens = await this.#tokenRequest({ grant_type: "refresh_token", refresh_token: session.refreshToken });
        this.#store(tokens, { nonce: session.claims.nonce, sub: session.claims.sub, refresh: session.refreshToken });
        return tokens.id_token;
      } catch {
        // a refused or failed renewal (or one without an ID token): sign in again below
      }
    }
    this.#storage.removeItem(SESSION_KEY);
    return this.signIn();
  }

  async #tokenRequest(fields) {
    const discovery = await this.#discover();
    let response;
    try {
      response = await fetch(discovery.token_endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams({ ...fields, client_id: this.#clientId }),
      });
    } catch {
      throw new SignInError("the identity provider could not be reached");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new SignInError(body.error_description || body.error || `HTTP ${response.status}`);
    if (typeof body.id_token !== "string") throw new SignInError("the identity provider sent no ID token");
    return body;
  }

  // Keeps a token response after checking its ID token (idTokenProblem).
  #store(tokens, { nonce, sub = null, refresh = null }) {
    const claims = decodeClaims(tokens.id_token);
    const problem = idTokenProblem(claims, { issuer: this.#issuer, clientId: this.#clientId, nonce, sub });
    if (problem) throw new SignInError(`the identity provider's ID token was refused: ${problem}`);
    this.#write(SESSION_KEY, {
      issuer: this.#issuer,
      clientId: this.#clientId,
      idToken: tokens.id_token,
      refreshToken: tokens.refresh_token || refresh,
      claims,
    });
  }

  // The stored session when it is this issuer's and this client's (a page reconfigured keeps none).
  #session() {
    const session = this.#read(SESSION_KEY);
    return session && session.issuer === this.#issuer && session.clientId === this.#clientId ? session : null;
  }

  #discover() {
    this.#discovery ||= fetch(`${this.#issuer.replace(/\/$/, "")}/.well-known/openid-configuration`)
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`HTTP ${response.status}`))))
      .then((document) => {
        if (document.issuer !== this.#issuer) throw new Error("it names another issuer");
        return document;
      })
      .catch((error) => {
        this.#discovery = null;
        throw new SignInError(`the identity provider's configuration could not be read (${error.message})`);
      });
    return this.#discovery;
  }

  #read(key) {
    try {
      return JSON.parse(this.#storage.getItem(key));
    } catch {
      return null;
    }
  }

  #write(key, value) {
    this.#storage.setItem(key, JSON.stringify(value));
  }
}

// Why an ID token is not for this page, or null: it must come from this issuer, name this client among its
// audiences, not have expired and carry this sign-in's nonce; a renewed one (sub given) is for the same user
// and carries the nonce only if it is the original one.
function idTokenProblem(claims, { issuer, clientId, nonce, sub }) {
  if (!claims) return "it is not a JWT";
  if (claims.iss !== issuer) return "another issuer signed it";
  if (!(Array.isArray(claims.aud) ? claims.aud : [claims.aud]).includes(clientId)) return "it is for another client";
  if (!(claims.exp > Date.now() / 1000)) return "it has expired";
  if (sub === null ? claims.nonce !== nonce : "nonce" in claims && claims.nonce !== nonce) {
    return "it is not the answer to this sign-in";
  }
  if (sub !== null && claims.sub !== sub) return "it is for another user";
  return null;
}

function expiresSoon(claims) {
  const lifetime = claims.exp - (claims.iat ?? claims.exp - 4 * RENEW_BEFORE_S);
  return claims.exp - Date.now() / 1000 < Math.min(RENEW_BEFORE_S, lifetime / 4);
}

function decodeClaims(jwt) {
  try {
    const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

function randomText() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function base64url(buffer) {
  const bytes = new Uint8Array(buffer);
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}
