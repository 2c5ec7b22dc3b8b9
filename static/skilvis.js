// Skilvís pages: fetches carry a fresh App Bridge ID token as a Bearer header and the page's
// language (the admin user's, from Shopify's `locale`); links to other pages get a fresh
// `id_token` too, so no page load needs the bounce through App Bridge. Form values are read
// from the Polaris elements (`value`, `checked`), which Polaris or polaris-fallback.js draw.
(function () {
  "use strict";
  const POLL_MS = 3000;
  const $ = function (id) { return document.getElementById(id); };
  const LANG = document.documentElement.lang || "is";

  function bridge() { return window.shopify && typeof window.shopify.idToken === "function" ? window.shopify : null; }

  async function token() {
    const app = bridge();
    return app ? await app.idToken() : null;
  }

  // Shopify's parameters of this page, carried on the fetches whose answers hold links (a
  // refreshed row links to its case as the page's own rows do).
  const PAGE = new URLSearchParams(window.location.search);
  function carried(path) {
    const url = new URL(path, window.location.href);
    ["shop", "host", "locale"].forEach(function (k) { if (PAGE.get(k) && !url.searchParams.has(k)) url.searchParams.set(k, PAGE.get(k)); });
    return url.pathname + url.search;
  }

  async function api(path, options) {
    options = options || {};
    path = carried(path);
    const headers = Object.assign({ "Accept": "application/json", "X-Skilvis-Locale": LANG },
                                  options.body ? { "Content-Type": "application/json" } : {});
    const bearer = await token();
    if (bearer) headers.Authorization = "Bearer " + bearer;
    let resp;
    try {
      resp = await fetch(path, { method: options.method || "GET", headers: headers,
                                 body: options.body ? JSON.stringify(options.body) : undefined });
    } catch (e) {
      return { ok: false, message: e.message, httpStatus: 0 };
    }
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { ok: false, message: resp.statusText }; }
    data.httpStatus = resp.status;
    return data;
  }

  function toast(message, isError) {
    const app = window.shopify;
    if (message && app && app.toast) app.toast.show(message, { isError: !!isError });
  }

  async function go(href) {
    const url = new URL(href, window.location.href);
    const fresh = await token().catch(function () { return null; });
    if (fresh) url.searchParams.set("id_token", fresh);
    window.location.assign(url.toString());
  }

  // Internal links: add a fresh ID token (the one in the address bar expires within a minute).
  // Without App Bridge there is no token to add, and the link is followed as it is.
  document.addEventListener("click", function (event) {
    const link = event.target.closest("a[href]");
    if (!link || link.target || event.ctrlKey || event.metaKey || event.shiftKey || !bridge()) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin) return;
    event.preventDefault();
    go(url.toString());
  });

  function setMessage(el, data) {
    if (!el) return;
    el.textContent = data.message || "";
    el.dataset.ok = data.ok ? "true" : "false";
  }

  function replaceRow(row) {
    const old = document.querySelector('s-table-row[data-case-id="' + row.id + '"]');
    if (!old) return;
    const tmp = document.createElement("template");
    tmp.innerHTML = row.html.trim();
    old.replaceWith(tmp.content.firstElementChild);
  }

  // --- home: filters, live refresh, retry ---------------------------------------------------
  const filters = $("list-filters");
  if (filters) {
    const submit = function (event) {
      if (event) event.preventDefault();
      const url = new URL(filters.action, window.location.href);
      const status = $("status-filter").value;
      const q = ($("search").value || "").trim();
      url.searchParams.delete("after");
      status ? url.searchParams.set("status", status) : url.searchParams.delete("status");
      q ? url.searchParams.set("q", q) : url.searchParams.delete("q");
      go(url.toString());
    };
    filters.addEventListener("submit", submit);
    $("status-filter").addEventListener("change", submit);
  }

  // Credit by hand for any order: found by its name in Shopify.
  const findOrder = $("find-order");
  if (findOrder) {
    findOrder.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = await api("/api/orders/find", { method: "POST", body: { name: $("order-name").value } });
      setMessage($("find-message"), data.ok ? { ok: true, message: "" } : data);
      if (data.ok) go(data.url);
    });
  }

  let polling = null;
  function inFlight() {
    return Array.from(document.querySelectorAll("s-table-row[data-case-id]"))
      .filter(function (row) { return row.dataset.status === "processing" || row.dataset.status === "pending_settlement"; })
      .map(function (row) { return row.dataset.caseId; });
  }
  async function poll() {
    polling = null;
    const ids = inFlight();
    if (!ids.length) return;
    try {
      const data = await api("/api/cases?ids=" + ids.join(","));
      (data.rows || []).forEach(replaceRow);
    } catch (e) { /* the next round tries again */ }
    schedule();
  }
  function schedule() {
    if (!polling && inFlight().length) polling = setTimeout(poll, POLL_MS);
  }
  schedule();

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-action=retry]");
    if (!button || button.disabled) return;
    button.disabled = true;
    const data = await api("/api/cases/" + button.dataset.caseId + "/retry", { method: "POST", body: {} });
    toast(data.message, !data.ok);
    if (data.row && document.querySelector('s-table-row[data-case-id="' + data.row.id + '"]')) {
      replaceRow(data.row);
      schedule();
    } else if (data.ok && button.dataset.reload) {
      go(window.location.href);
    } else {
      button.disabled = false;
    }
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-action=read-again]");
    if (!button || button.disabled) return;
    button.disabled = true;
    const data = await api("/api/orders/" + button.dataset.orderId + "/read-again", { method: "POST", body: {} });
    toast(data.message, !data.ok);
    if (!data.ok) button.disabled = false;
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-action=download-export]");
    if (!button) return;
    const bearer = await token();
    const resp = await fetch("/api/data-requests/" + button.dataset.requestId,
                             { headers: Object.assign({ "X-Skilvis-Locale": LANG }, bearer ? { "Authorization": "Bearer " + bearer } : {}) });
    if (!resp.ok) { toast(resp.statusText, true); return; }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await resp.blob());
    link.download = "skilvis-data-request-" + button.dataset.requestId + ".json";
    link.click();
    URL.revokeObjectURL(link.href);
  });

  // --- credit by hand: preview, then confirm exactly what the preview showed -------------------
  const creditForm = $("credit-form");
  if (creditForm) {
    const orderId = creditForm.dataset.orderId;
    const message = $("credit-message");
    const confirmSection = $("credit-confirm");
    let previewed = null;
    const body = function () {
      const quantities = {};
      creditForm.querySelectorAll('s-number-field[name^="qty-"]').forEach(function (field) {
        const n = parseInt(field.value || "0", 10);
        if (n) quantities[field.getAttribute("name").slice(4)] = n;
      });
      const shipping = $("shipping");
      return { token: creditForm.dataset.token, quantities: quantities, shipping: !!(shipping && shipping.checked) };
    };
    const hidePreview = function () { previewed = null; confirmSection.hidden = true; };
    creditForm.addEventListener("submit", function (event) { event.preventDefault(); });
    creditForm.addEventListener("input", hidePreview);
    creditForm.addEventListener("change", hidePreview);
    $("preview").addEventListener("click", async function () {
      const asked = body();
      const data = await api("/api/orders/" + orderId + "/credit/preview", { method: "POST", body: asked });
      setMessage(message, data.ok ? { ok: true, message: "" } : data);
      if (!data.ok) { hidePreview(); return; }
      $("credit-preview").innerHTML = data.html;
      previewed = Object.assign(asked, data.confirm ? { confirm: data.confirm } : {});
      confirmSection.hidden = false;
      $("create").focus();
    });
    $("change").addEventListener("click", function () { hidePreview(); creditForm.querySelector("s-number-field:not([disabled])").focus(); });
    const create = $("create");
    create.addEventListener("click", async function () {
      if (!previewed || create.disabled) return;
      create.disabled = true;
      const data = await api("/api/orders/" + orderId + "/credit", { method: "POST", body: previewed });
      setMessage(message, data);
      if (data.ok && data.url) { go(data.url); return; }
      create.disabled = false;
      toast(data.message, true);
      if (data.httpStatus === 409 && data.preview) {
        // What would be made changed since the preview (another hand credit): show the new one to confirm.
        $("credit-preview").innerHTML = data.preview.html;
        previewed.confirm = data.preview.confirm;
      }
    });
  }

  // --- settings: saved from Shopify's save bar (or ours, without App Bridge's) --------------------
  const settingsForm = $("settings-form");
  if (settingsForm) {
    const credentials = function () {
      return { client_id: ($("payday-client-id").value || "").trim(), client_secret: $("payday-client-secret").value || "",
               environment: $("payday-environment").value };
    };
    const optionsHtml = function () { return $("payment-type-options").innerHTML; };
    const fillTypes = function (types) {
      const template = $("payment-type-options");
      const first = template.content.querySelector("s-option").outerHTML;
      template.innerHTML = first + types.map(function (t) {
        const opt = document.createElement("s-option");
        opt.setAttribute("value", t.id); opt.textContent = t.title;
        return opt.outerHTML;
      }).join("");
      // Each gateway's select drawn again with Payday's types, keeping its choice.
      settingsForm.querySelectorAll("s-select.payment-type").forEach(function (select) {
        select.replaceWith(paymentSelect(select.dataset.gateway, select.getAttribute("label"), select.value, select.id));
      });
    };
    let serial = 0;
    const paymentSelect = function (gateway, label, chosen, id) {
      const select = document.createElement("s-select");
      select.className = "payment-type";
      select.dataset.gateway = gateway;
      serial += 1;
      select.id = id || "payment-type-new-" + serial;
      select.setAttribute("label", label);
      select.innerHTML = optionsHtml();
      select.querySelectorAll("s-option").forEach(function (o) { if (o.getAttribute("value") === chosen) o.setAttribute("selected", ""); });
      return select;
    };
    // The accounting system: each system's own section shows while it is chosen.
    const systemConfig = function (system) {
      const config = {};
      settingsForm.querySelectorAll('[data-system="' + system + '"] [data-config-key]').forEach(function (field) {
        config[field.dataset.configKey] = field.value || "";
      });
      return config;
    };
    $("accounting").addEventListener("change", function () {
      const chosen = $("accounting").value;
      settingsForm.querySelectorAll("[data-system]:not([data-action])").forEach(function (part) {
        part.hidden = part.dataset.system !== chosen;
      });
    });
    settingsForm.addEventListener("click", async function (event) {
      const button = event.target.closest("[data-action=test-system]");
      if (!button) return;
      const result = button.parentElement.querySelector("[data-testid=system-result]");
      result.textContent = "…";
      const data = await api("/api/settings/test-connection", { method: "POST",
        body: { accounting: button.dataset.system, accounting_config: systemConfig(button.dataset.system) } });
      setMessage(result, data);
    });
    $("test-connection").addEventListener("click", async function () {
      const result = $("connection-result");
      result.textContent = "…";
      delete result.dataset.ok;
      const data = await api("/api/settings/test-connection", { method: "POST", body: credentials() });
      setMessage(result, data);
      if (data.ok && data.payment_types) fillTypes(data.payment_types);
    });
    $("add-gateway").addEventListener("click", function () {
      // Kept exactly as typed: Payday matches custom POS payment types by exact name.
      const name = $("custom-gateway").value || "";
      if (!name.trim() || Array.from(settingsForm.querySelectorAll("s-select.payment-type")).some(function (s) { return s.dataset.gateway === name; })) return;
      const holder = $("payment-types");
      const empty = holder.querySelector(".empty");
      if (empty) empty.remove();
      const label = $("payment-type-label").innerHTML.replace("{gateway}", name);
      const tmp = document.createElement("textarea");
      tmp.innerHTML = label;   // the template's text is HTML-escaped
      holder.appendChild(paymentSelect(name, tmp.value, ""));
      $("custom-gateway").value = "";
      changed();
    });
    $("find-customer").addEventListener("click", async function () {
      const data = await api("/api/settings/payday-customers?q=" + encodeURIComponent($("customer-search").value || ""));
      setMessage($("customer-search-message"), data.ok ? { ok: true, message: data.message } : data);
      if (!data.ok) return;
      const old = $("default-customer");
      const chosen = old.value;
      const select = document.createElement("s-select");
      select.id = old.id; select.setAttribute("name", old.getAttribute("name")); select.setAttribute("label", old.getAttribute("label"));
      const keep = Array.from(old.querySelectorAll("option, s-option")).filter(function (o) { return !o.value || o.value === chosen; });
      const options = keep.map(function (o) { return [o.value, o.textContent]; })
        .concat((data.customers || []).filter(function (c) { return c.id !== chosen; }).map(function (c) { return [c.id, c.label]; }));
      options.forEach(function ([value, text]) {
        const opt = document.createElement("s-option");
        opt.setAttribute("value", value); opt.textContent = text;
        if (value === (chosen || ((data.customers || [])[0] || {}).id)) opt.setAttribute("selected", "");
        select.appendChild(opt);
      });
      old.replaceWith(select);
      changed();
    });

    // The save bar: App Bridge shows Shopify's for a form with data-save-bar and submits or
    // resets the form; without App Bridge's, ours does the same.
    const ownBar = $("fallback-save-bar");
    const bridgeBar = window.shopify && window.shopify.saveBar;
    function changed() { if (!bridgeBar && ownBar) ownBar.hidden = false; }
    settingsForm.addEventListener("input", changed);
    settingsForm.addEventListener("change", changed);
    if (ownBar) {
      $("save-settings").addEventListener("click", function () { settingsForm.requestSubmit(); });
      $("discard-settings").addEventListener("click", function () { go(window.location.href); });
    }
    settingsForm.addEventListener("reset", function () { go(window.location.href); });
    settingsForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const mapping = {};
      settingsForm.querySelectorAll("s-select.payment-type").forEach(function (select) {
        if (select.value) mapping[select.dataset.gateway] = select.value;
      });
      const body = Object.assign(credentials(), {
        payment_types: mapping,
        kennitala_from_company: $("kennitala-from-company").checked,
        payday_keeps_stock: $("payday-keeps-stock").checked,
        send_email: $("send-email").checked,
        auto_process: $("auto-process").checked,
        invoices_from: $("invoices-from").value,
        default_customer_id: $("default-customer").value,
      });
      const paydayApp = ($("payday-app").values || [])[0];
      if (paydayApp) body.payday_app = paydayApp;
      body.accounting = $("accounting").value;
      if (body.accounting !== "payday") body.accounting_config = systemConfig(body.accounting);
      const data = await api("/api/settings", { method: "POST", body: body });
      setMessage($("settings-message"), data);
      toast(data.message, !data.ok);
      if (data.ok) go(window.location.href);   // the checklist and switches follow the saved state
    });
  }
})();
