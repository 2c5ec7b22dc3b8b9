// App Bridge's stand-in for the sandbox and the browser tests (loaded instead of Shopify's CDN
// script when SKILVIS_SANDBOX is on): just enough of `window.shopify` for the pages, with ID
// tokens from the local Shopify stand-in through /sandbox/id-token.
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var shop = params.get("shop");
  // Pages reached by a link may not carry ?shop=; keep the one the frame was opened with.
  try {
    if (shop) window.sessionStorage.setItem("skilvis-sandbox-shop", shop);
    else shop = window.sessionStorage.getItem("skilvis-sandbox-shop");
  } catch (e) { /* storage refused: the endpoint falls back to the demo shop */ }

  function idToken() {
    var url = "/sandbox/id-token" + (shop ? "?shop=" + encodeURIComponent(shop) : "");
    return fetch(url, { cache: "no-store" }).then(function (resp) {
      if (!resp.ok) throw new Error("sandbox id-token: HTTP " + resp.status);
      return resp.json();
    }).then(function (body) { return body.id_token; });
  }

  function toast(message, options) {
    var el = document.createElement("div");
    el.setAttribute("role", "status");
    el.setAttribute("data-testid", "toast");
    el.textContent = message;
    el.style.cssText = "position:fixed;left:50%;bottom:24px;transform:translateX(-50%);z-index:1000;padding:8px 14px;" +
      "border-radius:8px;color:#fff;font:14px sans-serif;background:" + (options && options.isError ? "#8e1f0b" : "#303030");
    document.body.appendChild(el);
    setTimeout(function () { el.remove(); }, (options && options.duration) || 3000);
  }

  var existing = window.shopify || {};
  window.shopify = Object.assign(existing, {
    idToken: idToken,
    config: { apiKey: (document.querySelector('meta[name="shopify-api-key"]') || {}).content, shop: shop,
              locale: params.get("locale") || "is" },
    toast: { show: toast, hide: function () {} },
    loading: function () {},
  });

  // Only a path on this app, the rule of auth.is_own_path: the reload carries a fresh ID token,
  // and browsers read "//host" and "/\host" as another host and drop tabs and newlines first.
  function isOwnPath(target) {
    if (!target || target.charAt(0) !== "/" || target.charAt(1) === "/" || target.charAt(1) === "\\") return false;
    if (/[\\\u0000-\u001f\u007f-\u009f]/.test(target)) return false;
    return new URL(target, window.location.origin).origin === window.location.origin;
  }

  // Shopify's "patch ID token" page: App Bridge gets a token and reloads `shopify-reload` with it.
  var reload = params.get("shopify-reload");
  if (reload && isOwnPath(reload)) {
    idToken().then(function (token) {
      var target = new URL(reload, window.location.origin);
      target.searchParams.set("id_token", token);
      window.location.replace(target.pathname + target.search);
    });
  }
})();
