// Skilvís pages: fetches carry a fresh App Bridge ID token as a Bearer header; links to other
// pages get a fresh `id_token` too, so no page load needs the bounce through App Bridge.
(function () {
  "use strict";
  const POLL_MS = 3000;

  async function token() {
    return await window.shopify.idToken();
  }

  async function api(path, options) {
    options = options || {};
    const headers = Object.assign({ "Authorization": "Bearer " + (await token()), "Accept": "application/json" },
                                  options.body ? { "Content-Type": "application/json" } : {});
    const resp = await fetch(path, { method: options.method || "GET", headers: headers,
                                     body: options.body ? JSON.stringify(options.body) : undefined });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { ok: false, message: resp.statusText }; }
    data.httpStatus = resp.status;
    return data;
  }

  async function go(href) {
    const url = new URL(href, window.location.href);
    url.searchParams.set("id_token", await token());
    window.location.assign(url.toString());
  }

  // Internal links: add a fresh ID token (the one in the address bar expires within a minute).
  document.addEventListener("click", function (event) {
    const link = event.target.closest("a[href]");
    if (!link || link.target || event.ctrlKey || event.metaKey || event.shiftKey) return;
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
    const old = document.querySelector('tr[data-case-id="' + row.id + '"]');
    if (!old) return;
    const tmp = document.createElement("tbody");
    tmp.innerHTML = row.html.trim();
    old.replaceWith(tmp.firstElementChild);
  }

  // --- home: filters, live refresh, retry ---------------------------------------------------
  const filters = document.getElementById("list-filters");
  if (filters) {
    const submit = function (event) {
      if (event) event.preventDefault();
      const url = new URL(filters.action, window.location.href);
      const status = document.getElementById("status-filter").value;
      const q = document.getElementById("search").value.trim();
      url.searchParams.delete("after");
      status ? url.searchParams.set("status", status) : url.searchParams.delete("status");
      q ? url.searchParams.set("q", q) : url.searchParams.delete("q");
      go(url.toString());
    };
    filters.addEventListener("submit", submit);
    document.getElementById("status-filter").addEventListener("change", submit);
  }

  // Credit by hand for any order: found by its name in Shopify.
  const findOrder = document.getElementById("find-order");
  if (findOrder) {
    findOrder.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = await api("/api/orders/find", { method: "POST",
                                                   body: { name: document.getElementById("order-name").value } });
      setMessage(document.getElementById("find-message"), data.ok ? { ok: true, message: "" } : data);
      if (data.ok) go(data.url);
    });
  }

  let polling = null;
  function inFlight() {
    return Array.from(document.querySelectorAll("tr[data-case-id]"))
      .filter(function (tr) { return tr.dataset.status === "processing" || tr.dataset.status === "pending_settlement"; })
      .map(function (tr) { return tr.dataset.caseId; });
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
    const button = event.target.closest("button[data-action=retry]");
    if (!button) return;
    button.disabled = true;
    const data = await api("/api/cases/" + button.dataset.caseId + "/retry", { method: "POST", body: {} });
    if (data.row && document.querySelector('tr[data-case-id="' + data.row.id + '"]')) {
      replaceRow(data.row);
      schedule();
    } else if (data.ok && button.dataset.reload) {
      go(window.location.href);
    } else {
      button.disabled = false;
      if (data.message) window.alert(data.message);
    }
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-action=read-again]");
    if (!button) return;
    button.disabled = true;
    const data = await api("/api/orders/" + button.dataset.orderId + "/read-again", { method: "POST", body: {} });
    setMessage(document.getElementById("read-again-message"), data);
    if (!data.ok) button.disabled = false;
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-action=download-export]");
    if (!button) return;
    const resp = await fetch("/api/data-requests/" + button.dataset.requestId,
                             { headers: { "Authorization": "Bearer " + (await token()) } });
    if (!resp.ok) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await resp.blob());
    link.download = "skilvis-data-request-" + button.dataset.requestId + ".json";
    link.click();
    URL.revokeObjectURL(link.href);
  });

  // --- credit by hand ---------------------------------------------------------------------
  const creditForm = document.getElementById("credit-form");
  if (creditForm) {
    const orderId = creditForm.dataset.orderId;
    const message = document.getElementById("credit-message");
    const preview = document.getElementById("credit-preview");
    const body = function () {
      const quantities = {};
      creditForm.querySelectorAll('input[name^="qty-"]').forEach(function (input) {
        const n = parseInt(input.value || "0", 10);
        if (n) quantities[input.name.slice(4)] = n;
      });
      const shipping = creditForm.querySelector("input[name=shipping]");
      return { token: creditForm.dataset.token, quantities: quantities, shipping: !!(shipping && shipping.checked) };
    };
    creditForm.addEventListener("submit", function (event) { event.preventDefault(); });
    document.getElementById("preview").addEventListener("click", async function () {
      const data = await api("/api/orders/" + orderId + "/credit/preview", { method: "POST", body: body() });
      preview.innerHTML = data.ok ? data.html : "";
      setMessage(message, data.ok ? { ok: true, message: "" } : data);
    });
    const create = document.getElementById("create");
    create.addEventListener("click", async function () {
      create.disabled = true;
      const data = await api("/api/orders/" + orderId + "/credit", { method: "POST", body: body() });
      setMessage(message, data);
      if (data.ok && data.url) { go(data.url); } else { create.disabled = false; }
    });
  }

  // --- settings ---------------------------------------------------------------------------
  const settingsForm = document.getElementById("settings-form");
  if (settingsForm) {
    const $ = function (id) { return document.getElementById(id); };
    const credentials = function () {
      return { client_id: $("payday-client-id").value.trim(), client_secret: $("payday-client-secret").value,
               environment: $("payday-environment").value };
    };
    const fillTypes = function (types) {
      const template = $("payment-type-options");
      let html = template.innerHTML.split("</option>")[0] + "</option>";
      types.forEach(function (t) {
        const opt = document.createElement("option");
        opt.value = t.id; opt.textContent = t.title;
        html += opt.outerHTML;
      });
      template.innerHTML = html;
      settingsForm.querySelectorAll("select.payment-type").forEach(function (select) {
        const chosen = select.value;
        select.innerHTML = html;
        select.value = chosen;
      });
    };
    settingsForm.addEventListener("submit", function (event) { event.preventDefault(); });
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
      const name = $("custom-gateway").value;
      if (!name.trim() || settingsForm.querySelector('select.payment-type[data-gateway="' + CSS.escape(name) + '"]')) return;
      const tbody = $("payment-types").querySelector("tbody");
      const empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      const tr = document.createElement("tr");
      tr.dataset.gateway = name;
      const td1 = document.createElement("td"); td1.textContent = name;
      const td2 = document.createElement("td");
      const select = document.createElement("select");
      select.className = "payment-type"; select.dataset.gateway = name;
      select.innerHTML = $("payment-type-options").innerHTML;
      td2.appendChild(select); tr.append(td1, td2); tbody.appendChild(tr);
      $("custom-gateway").value = "";
    });
    $("find-customer").addEventListener("click", async function () {
      const data = await api("/api/settings/payday-customers?q=" + encodeURIComponent($("customer-search").value));
      setMessage($("customer-search-message"), data.ok ? { ok: true, message: data.message } : data);
      if (!data.ok) return;
      const select = $("default-customer");
      const chosen = select.value;
      select.querySelectorAll("option").forEach(function (opt) { if (opt.value && opt.value !== chosen) opt.remove(); });
      (data.customers || []).forEach(function (c) {
        if (c.id === chosen) return;
        const opt = document.createElement("option");
        opt.value = c.id; opt.textContent = c.label;
        select.appendChild(opt);
      });
      if (data.customers && data.customers.length && !chosen) select.value = data.customers[0].id;
    });
    $("save-settings").addEventListener("click", async function () {
      const mapping = {};
      settingsForm.querySelectorAll("select.payment-type").forEach(function (select) {
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
      const paydayApp = settingsForm.querySelector('input[name="payday_app"]:checked');
      if (paydayApp) body.payday_app = paydayApp.value;
      const data = await api("/api/settings", { method: "POST", body: body });
      setMessage($("settings-message"), data);
      if (data.ok) go(window.location.href);   // the checklist and switches follow the saved state
    });
  }
})();
