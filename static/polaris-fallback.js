// Polaris web components when Shopify's CDN script is not there (the sandbox, the browser
// tests, or a merchant whose network blocks cdn.shopify.com): each `s-*` element the pages use
// is drawn from plain, accessible HTML in its light DOM, with the properties the pages' script
// reads (`value`, `checked`, `disabled`). Inside Shopify admin, polaris.js defines the elements
// first and nothing here runs.
(function () {
  "use strict";
  if (window.customElements.get("s-page")) return;
  let serial = 0;
  const uid = function (prefix) { serial += 1; return prefix + "-" + serial; };
  const el = function (tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function ([k, v]) { if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v); });
    if (text) node.textContent = text;
    return node;
  };
  const moveChildren = function (from, to) { while (from.firstChild) to.appendChild(from.firstChild); return to; };

  // Each element is built once, when it is in the document with its children parsed.
  class Base extends HTMLElement {
    connectedCallback() {
      if (this._built) return;
      this._built = true;
      this.build();
    }
    build() {}
  }

  const simple = {
    "s-box": null, "s-stack": null, "s-text": null, "s-query-container": null,
    "s-paragraph": null, "s-badge": null, "s-button-group": null,
  };
  Object.keys(simple).forEach(function (name) { customElements.define(name, class extends Base {}); });

  customElements.define("s-grid", class extends Base {
    build() {
      const columns = this.getAttribute("gridTemplateColumns");
      if (columns) this.style.setProperty("--sf-columns", columns);
      const align = this.getAttribute("alignItems");
      if (align) this.style.alignItems = align;
    }
  });

  customElements.define("s-page", class extends Base {
    build() {
      const back = this.querySelector(':scope > [slot="breadcrumb-actions"]');
      const heading = this.getAttribute("heading");
      const head = el("div", { class: "sf-page-head" });
      if (back) head.appendChild(back);
      if (heading) head.appendChild(el("h1", {}, heading));
      const actions = this.querySelectorAll(':scope > [slot="primary-action"], :scope > [slot="secondary-actions"]');
      if (actions.length) {
        const bar = el("div", { class: "sf-page-actions" });
        actions.forEach(function (a) { bar.appendChild(a); });
        head.appendChild(bar);
      }
      this.prepend(head);
    }
  });

  customElements.define("s-section", class extends Base {
    build() {
      const heading = this.getAttribute("heading");
      const nested = this.parentElement && this.parentElement.closest("s-section");
      if (heading) this.prepend(el(nested ? "h3" : "h2", {}, heading));
      if (!heading && this.getAttribute("accessibilityLabel")) this.setAttribute("aria-label", this.getAttribute("accessibilityLabel"));
    }
  });

  customElements.define("s-heading", class extends Base {
    build() {
      const nested = this.closest("s-section") && this.closest("s-section").parentElement.closest("s-section");
      this.setAttribute("role", "heading");
      this.setAttribute("aria-level", nested ? "4" : "3");
    }
  });

  customElements.define("s-banner", class extends Base {
    build() {
      const tone = this.getAttribute("tone") || "info";
      this.setAttribute("role", tone === "critical" ? "alert" : "status");
      const heading = this.getAttribute("heading");
      if (heading) this.prepend(el("strong", { class: "sf-banner-heading" }, heading));
    }
  });

  customElements.define("s-link", class extends Base {
    build() {
      if (this.closest("s-app-nav")) return;
      const a = el("a", { href: this.getAttribute("href"), target: this.getAttribute("target"),
                          "aria-label": this.getAttribute("accessibilityLabel") });
      if (this.getAttribute("target") === "_blank") a.setAttribute("rel", "noopener");
      ["data-testid"].forEach((k) => { if (this.hasAttribute(k)) { a.setAttribute(k, this.getAttribute(k)); this.removeAttribute(k); } });
      this.appendChild(moveChildren(this, a));
    }
  });

  customElements.define("s-button", class extends Base {
    build() {
      const href = this.getAttribute("href");
      const control = href ? el("a", { href: href, target: this.getAttribute("target"), class: "sf-button" })
                           : el("button", { type: this.getAttribute("type") || "button", class: "sf-button" });
      const label = this.getAttribute("accessibilityLabel");
      if (label) control.setAttribute("aria-label", label);
      if (this.hasAttribute("disabled")) control.setAttribute("disabled", "");
      this.appendChild(moveChildren(this, control));
      this._control = control;
    }
    get disabled() { return this.hasAttribute("disabled"); }
    set disabled(on) {
      this.toggleAttribute("disabled", !!on);
      if (this._control) this._control.toggleAttribute("disabled", !!on);
    }
    click() { if (this._control) this._control.click(); else super.click(); }
  });

  // Form fields: a label and a native control; `details` is the hint under it, `error` the error.
  class Field extends Base {
    control() { return el("input", { type: this.inputType() }); }
    inputType() { return "text"; }
    build() {
      const id = (this.id || uid("field")) + "-input";
      const control = this.control();
      control.id = id;
      ["name", "placeholder", "min", "max", "step", "required", "disabled", "maxlength", "minlength", "autocomplete",
       "inputmode", "value"].forEach((k) => {
        if (this.hasAttribute(k)) control.setAttribute(k === "inputmode" ? "inputmode" : k, this.getAttribute(k));
      });
      if (this.hasAttribute("value") && "value" in control) control.value = this.getAttribute("value");
      const label = el("label", { for: id }, this.getAttribute("label") || "");
      if ((this.getAttribute("labelAccessibilityVisibility") || "") === "exclusive") label.className = "sf-visually-hidden";
      this.append(label, control);
      const details = this.getAttribute("details");
      if (details) {
        const hint = el("span", { class: "sf-details", id: id + "-details" }, details);
        control.setAttribute("aria-describedby", hint.id);
        this.appendChild(hint);
      }
      this._control = control;
    }
    get value() { return this._control ? this._control.value : (this.getAttribute("value") || ""); }
    set value(v) { if (this._control) this._control.value = v; else this.setAttribute("value", v); }
    get disabled() { return this._control ? this._control.disabled : this.hasAttribute("disabled"); }
    set disabled(on) { if (this._control) this._control.disabled = !!on; this.toggleAttribute("disabled", !!on); }
    focus() { if (this._control) this._control.focus(); }
  }
  customElements.define("s-text-field", class extends Field {});
  customElements.define("s-password-field", class extends Field { inputType() { return "password"; } });
  customElements.define("s-email-field", class extends Field { inputType() { return "email"; } });
  customElements.define("s-search-field", class extends Field { inputType() { return "search"; } });
  customElements.define("s-number-field", class extends Field { inputType() { return "number"; } });
  customElements.define("s-date-field", class extends Field { inputType() { return "date"; } });

  customElements.define("s-select", class extends Field {
    control() {
      const select = el("select");
      this.querySelectorAll("s-option").forEach(function (option) {
        const native = el("option", { value: option.getAttribute("value") || "" }, option.textContent.trim());
        if (option.hasAttribute("selected")) native.selected = true;
        if (option.hasAttribute("disabled")) native.disabled = true;
        select.appendChild(native);
        option.remove();
      });
      return select;
    }
  });
  customElements.define("s-option", class extends HTMLElement {});

  class Toggle extends Base {
    build() {
      const id = (this.id || uid("toggle")) + "-input";
      const input = el("input", { type: "checkbox", id: id, name: this.getAttribute("name"),
                                  value: this.getAttribute("value") });
      input.checked = this.hasAttribute("checked");
      input.disabled = this.hasAttribute("disabled");
      if (this.localName === "s-switch") input.setAttribute("role", "switch");
      const label = el("label", { for: id, class: "sf-toggle" });
      label.append(input, document.createTextNode(" " + (this.getAttribute("label") || "")));
      this.appendChild(label);
      const details = this.getAttribute("details");
      if (details) {
        const hint = el("span", { class: "sf-details", id: id + "-details" }, details);
        input.setAttribute("aria-describedby", hint.id);
        this.appendChild(hint);
      }
      this._control = input;
    }
    get checked() { return this._control ? this._control.checked : this.hasAttribute("checked"); }
    set checked(on) { if (this._control) this._control.checked = !!on; }
    get disabled() { return this._control ? this._control.disabled : this.hasAttribute("disabled"); }
    set disabled(on) { if (this._control) this._control.disabled = !!on; }
  }
  customElements.define("s-checkbox", class extends Toggle {});
  customElements.define("s-switch", class extends Toggle {});

  customElements.define("s-choice-list", class extends Base {
    build() {
      const name = this.getAttribute("name") || uid("choice");
      const set = el("fieldset", { class: "sf-choices" });
      set.appendChild(el("legend", {}, this.getAttribute("label") || ""));
      this.querySelectorAll("s-choice").forEach(function (choice) {
        const id = uid("choice");
        const input = el("input", { type: "radio", name: name, id: id, value: choice.getAttribute("value") || "" });
        input.checked = choice.hasAttribute("selected");
        const label = el("label", { for: id });
        label.append(input, document.createTextNode(" " + choice.textContent.trim()));
        set.appendChild(label);
        choice.remove();
      });
      this.appendChild(set);
    }
    get values() {
      return Array.from(this.querySelectorAll("input:checked")).map(function (i) { return i.value; });
    }
  });
  customElements.define("s-choice", class extends HTMLElement {});

  // Tables: ARIA table roles on the elements themselves, so the CSS can stack rows on a phone.
  const roles = { "s-table": "table", "s-table-header-row": "row", "s-table-header": "columnheader",
                  "s-table-body": "rowgroup", "s-table-row": "row", "s-table-cell": "cell",
                  "s-ordered-list": "list", "s-unordered-list": "list", "s-list-item": "listitem" };
  Object.entries(roles).forEach(function ([name, role]) {
    customElements.define(name, class extends Base { build() { this.setAttribute("role", role); } });
  });
  customElements.define("s-divider", class extends Base { build() { this.setAttribute("role", "separator"); } });

  // App Bridge's navigation: in Shopify admin it is drawn in the admin's own menu; here, as a
  // navigation bar above the page.
  customElements.define("s-app-nav", class extends Base {
    build() {
      const nav = el("nav", { class: "sf-app-nav", "aria-label": this.getAttribute("accessibilityLabel") || "Skilvís" });
      const here = window.location.pathname;
      this.querySelectorAll("s-link").forEach(function (link) {
        const href = link.getAttribute("href");
        const a = el("a", { href: href }, link.textContent.trim());
        const path = new URL(href, window.location.href).pathname;
        if (path === here || (link.getAttribute("rel") === "home" && here === "/")) a.setAttribute("aria-current", "page");
        nav.appendChild(a);
        link.remove();
      });
      this.appendChild(nav);
    }
  });

  document.documentElement.classList.add("skilvis-fallback");
})();
